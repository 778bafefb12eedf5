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

    /// The verdict and the measurements behind it, which the executor keeps
    /// with the decision in the log. The executor calls this one; the
    /// default asks [`evaluate`](Gate::evaluate) and has no evidence. Gates
    /// that measure override it (and have `evaluate` drop the evidence);
    /// gates that wrap another gate forward it.
    async fn evaluate_with_evidence(
        &self,
        at: &GateContext,
    ) -> Result<(Decision, Option<GateEvidence>), Error> {
        Ok((self.evaluate(at).await?, None))
    }
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

/// The measurements behind a gate's verdict, kept with the decision in the
/// log (`Event::GateDecided`'s `evidence`) so reports can show what was
/// judged after the fact. Compact by design: per metric a few numbers per
/// cohort, not the samples.
///
/// A gate that measures (the umbrella crate's canary gate) fills it through
/// [`Gate::evaluate_with_evidence`]; command gates leave it out.
///
/// ```
/// use rollgate_deploy::{CohortEvidence, GateEvidence, MetricEvidence};
/// use rollgate_deploy::Number;
/// let n = |v: f64| Number::finite(v);
/// let latency = MetricEvidence {
///     name: "latency_ms".into(),
///     result: "high".into(),
///     failed: true,
///     critical: false,
///     baseline: CohortEvidence { n: 400, p50: n(12.0), p99: n(40.0), ..Default::default() },
///     canary: CohortEvidence { n: 50, p50: n(30.0), p99: n(250.0), ..Default::default() },
///     p_value: n(1e-6),
///     reason: "metric \"latency_ms\": canary p99 250 vs baseline 40 (bound +10% = 44)".into(),
/// };
/// let e = GateEvidence::new("rollback", Some(20.0), vec![latency]);
/// let json = serde_json::to_string(&e)?;
/// assert_eq!(serde_json::from_str::<GateEvidence>(&json)?, e);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GateEvidence {
    /// The analysis's own verdict (`promote`, `continue`, `rollback`,
    /// `inconclusive`), which the gate mapped to its decision.
    pub verdict: String,
    /// The health score 0-100, when the analysis computed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<Number>,
    /// One entry per metric judged, in the analysis's order.
    #[serde(default)]
    pub metrics: Vec<MetricEvidence>,
}

impl GateEvidence {
    /// Evidence with this verdict and score and these metrics.
    pub fn new(
        verdict: impl Into<String>,
        score: Option<f64>,
        metrics: Vec<MetricEvidence>,
    ) -> Self {
        Self {
            verdict: verdict.into(),
            score: score.and_then(Number::finite),
            metrics,
        }
    }
}

/// One metric as a gate judged it: both cohorts' summaries, the result and
/// the reason (which states the value and the bound it was held to).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricEvidence {
    /// The metric's name.
    pub name: String,
    /// Its checks' combined result: `pass`, `high`, `low` or `nodata`.
    pub result: String,
    /// Whether the result fails the metric.
    #[serde(default)]
    pub failed: bool,
    /// Whether the metric is critical (a failure rolls back at once).
    #[serde(default)]
    pub critical: bool,
    /// The baseline cohort.
    #[serde(default)]
    pub baseline: CohortEvidence,
    /// The canary cohort.
    #[serde(default)]
    pub canary: CohortEvidence,
    /// The smallest p-value of the metric's tests, if it was tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<Number>,
    /// Why: the deciding checks' reasons (values and bounds, in words).
    #[serde(default)]
    pub reason: String,
}

/// A cohort's summary for one metric: how many values (or trials), a few
/// quantiles, and for counts the events and their rate. Absent numbers were
/// not measured (no data, or not meaningful for the metric's kind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CohortEvidence {
    /// Values, or trials for counts.
    pub n: u64,
    /// Mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Number>,
    /// Median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<Number>,
    /// 95th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<Number>,
    /// 99th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<Number>,
    /// Events, for counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// `events / trials`, for counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Number>,
}

/// A finite measurement in [`GateEvidence`]. Compared by value bits, so
/// evidence (and the events holding it) can be `Eq`; NaN and infinities are
/// not representable (they do not survive JSON), so they are left out.
///
/// ```
/// use rollgate_deploy::Number;
/// assert_eq!(Number::finite(1.5).map(Number::get), Some(1.5));
/// assert_eq!(Number::finite(f64::NAN), None);
/// let n: Option<Number> = Some(2.0).and_then(Number::finite);
/// assert_eq!(serde_json::to_string(&n)?, "2.0");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Number(f64);

impl Number {
    /// `v`, when it is finite.
    pub fn finite(v: f64) -> Option<Self> {
        v.is_finite().then_some(Self(v))
    }

    /// The value.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Number {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Number {}
