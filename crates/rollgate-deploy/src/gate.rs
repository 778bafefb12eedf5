//! The `Gate` seam: asked after each gated phase whether to go on.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::command::{CommandEnv, CommandTemplate, run_shell};
use crate::deployer::{TargetAttributes, attribute_names, joined_attribute};
use crate::{Artifact, Error, Percent, RolloutId, TargetId};

/// What a gate sees when it is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GateContext {
    /// The rollout.
    pub rollout: RolloutId,
    /// The service being rolled out.
    pub service: String,
    /// The artifact being rolled out.
    pub artifact: Artifact,
    /// The artifact it replaces, when known.
    pub previous: Option<Artifact>,
    /// Index of the phase just baked (0-based).
    pub phase: usize,
    /// The phase's name.
    pub phase_name: String,
    /// Share of the targets on the new artifact.
    pub percent: Percent,
    /// Targets that run the new artifact now.
    pub canary_targets: Vec<TargetId>,
    /// How many times the gate was asked in this phase before (continue verdicts).
    pub attempt: u32,
}

/// Why a gate decided what it did: one line per reason.
pub type Reasons = Vec<String>;

/// A gate's verdict. Exhaustive on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", content = "reasons", rename_all = "snake_case")]
pub enum Decision {
    /// Go on to the next phase.
    Promote(Reasons),
    /// Keep baking, then ask again.
    Continue(Reasons),
    /// Inconclusive: stop and wait for a person.
    Hold(Reasons),
    /// Roll back every touched target.
    Rollback(Reasons),
}

impl Decision {
    /// Every verdict's name ([`kind`](Self::kind)).
    pub const KINDS: [&'static str; 4] = ["promote", "continue", "hold", "rollback"];

    /// The verdict's name: `promote`, `continue`, `hold`, `rollback`.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::Promote(_) => "promote",
            Decision::Continue(_) => "continue",
            Decision::Hold(_) => "hold",
            Decision::Rollback(_) => "rollback",
        }
    }

    /// The reasons given.
    pub fn reasons(&self) -> &[String] {
        match self {
            Decision::Promote(r)
            | Decision::Continue(r)
            | Decision::Hold(r)
            | Decision::Rollback(r) => r,
        }
    }
}

/// Decides, after a phase has baked, whether the rollout goes on.
///
/// ```
/// use async_trait::async_trait;
/// use rollgate_deploy::{Decision, Error, Gate, GateContext};
///
/// /// Promotes up to 50 %, then wants a person.
/// struct HalfwayHold;
///
/// #[async_trait]
/// impl Gate for HalfwayHold {
///     async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
///         Ok(if at.percent.get() < 50.0 {
///             Decision::Promote(vec![format!("{} is below 50%", at.percent)])
///         } else {
///             Decision::Hold(vec!["a person signs off past 50%".into()])
///         })
///     }
/// }
/// let _: std::sync::Arc<dyn Gate> = std::sync::Arc::new(HalfwayHold);
/// ```
#[async_trait]
pub trait Gate: Send + Sync + 'static {
    /// The verdict for the phase described by `at`.
    async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error>;
}

const _: Option<&dyn Gate> = None;

/// The placeholders a [`CommandGate`] template may use.
pub const GATE_PLACEHOLDERS: &[&str] = &[
    "rollout",
    "service",
    "version",
    "digest",
    "percent",
    "phase",
    "previous_version",
    "previous_digest",
];

/// A gate that runs a command: exit 0 promotes, 1 rolls back, 3 holds; any
/// other exit, a signal or a timeout is an error (the executor retries and
/// gives up after its consecutive-error limit). Each stdout line is a reason.
///
/// ```
/// use rollgate_deploy::{CommandGate, CommandTemplate};
/// use std::time::Duration;
/// let g = CommandGate::new(CommandTemplate::new("./check.sh {service} {version} {percent}")?, Duration::from_secs(60))?;
/// # Ok::<(), rollgate_deploy::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CommandGate {
    command: CommandTemplate,
    timeout: Duration,
    env: CommandEnv,
    attributes: TargetAttributes,
}

impl CommandGate {
    /// A gate running `command` with `timeout`.
    pub fn new(command: CommandTemplate, timeout: Duration) -> Result<Self, Error> {
        Self::new_with_attributes(command, timeout, TargetAttributes::new())
    }

    /// A gate whose command may also use the targets' attributes: each
    /// expands to the values of the canary targets, space separated.
    pub fn new_with_attributes(
        command: CommandTemplate,
        timeout: Duration,
        attributes: TargetAttributes,
    ) -> Result<Self, Error> {
        let mut allowed = GATE_PLACEHOLDERS.to_vec();
        allowed.extend(attribute_names(&attributes));
        command.check_placeholders(&allowed)?;
        Ok(Self {
            command,
            timeout,
            env: CommandEnv::default(),
            attributes,
        })
    }

    /// Runs the command in this directory.
    pub fn with_env(mut self, env: CommandEnv) -> Self {
        self.env = env;
        self
    }
}

#[async_trait]
impl Gate for CommandGate {
    async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
        let percent = format!("{}", at.percent.get());
        // The phase number for people and scripts: 1-based.
        let phase = (at.phase + 1).to_string();
        let rollout = at.rollout.to_string();
        let mut vars: BTreeMap<&str, &str> = BTreeMap::new();
        vars.insert("rollout", &rollout);
        vars.insert("service", &at.service);
        vars.insert("version", &at.artifact.version);
        vars.insert("digest", at.artifact.digest.as_str());
        vars.insert("percent", &percent);
        vars.insert("phase", &phase);
        if let Some(p) = &at.previous {
            vars.insert("previous_version", &p.version);
            vars.insert("previous_digest", p.digest.as_str());
        }
        let joined: Vec<(&str, String)> = attribute_names(&self.attributes)
            .into_iter()
            .map(|n| (n, joined_attribute(&self.attributes, &at.canary_targets, n)))
            .collect();
        for (n, v) in &joined {
            vars.insert(n, v);
        }
        let line = self.command.render(&vars)?;
        let out = run_shell(&line, &self.env, self.timeout)
            .await
            .map_err(Error::Gate)?;
        let mut reasons: Reasons = out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(20)
            .map(String::from)
            .collect();
        let code = out.code;
        if reasons.is_empty() {
            reasons.push(format!("`{line}` exited with {}", out.status_text()));
        }
        match code {
            Some(0) => Ok(Decision::Promote(reasons)),
            Some(1) => Ok(Decision::Rollback(reasons)),
            Some(3) => Ok(Decision::Hold(reasons)),
            _ => Err(Error::Gate(format!(
                "`{line}` exited with {} (0 promote, 1 rollback, 3 hold): {}",
                out.status_text(),
                out.summary()
            ))),
        }
    }
}
