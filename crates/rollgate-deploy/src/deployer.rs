//! The `Deployer` seam and the shell-command deployer.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::command::{CommandEnv, CommandTemplate, run_shell};
use crate::{Artifact, Digest, Error, TargetId};

/// Whether a target is ready to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Serving.
    Ready,
    /// Not serving yet, and why.
    NotReady(String),
}

/// Puts an artifact on a target. The only thing the executor knows about the
/// world it changes.
///
/// Implementations must be idempotent per target: deploying what a target
/// already runs is a successful no-op, because a resumed controller re-issues
/// any deploy whose outcome it did not record.
///
/// ```
/// use async_trait::async_trait;
/// use rollgate_deploy::{Artifact, Deployer, Digest, Error, Readiness, TargetId};
/// use std::{collections::BTreeMap, sync::Mutex};
///
/// /// Keeps what each target runs in memory.
/// #[derive(Default)]
/// struct InMemory(Mutex<BTreeMap<TargetId, Digest>>);
///
/// #[async_trait]
/// impl Deployer for InMemory {
///     async fn deploy(&self, t: &TargetId, a: &Artifact) -> Result<(), Error> {
///         self.0.lock().unwrap().insert(t.clone(), a.digest.clone());
///         Ok(())
///     }
///     async fn current(&self, t: &TargetId) -> Result<Option<Digest>, Error> {
///         Ok(self.0.lock().unwrap().get(t).cloned())
///     }
///     async fn readiness(&self, _: &TargetId) -> Result<Readiness, Error> {
///         Ok(Readiness::Ready)
///     }
/// }
/// let _: std::sync::Arc<dyn Deployer> = std::sync::Arc::new(InMemory::default());
/// ```
#[async_trait]
pub trait Deployer: Send + Sync + 'static {
    /// Makes `target` run `artifact`; a target already running it is a no-op.
    async fn deploy(&self, target: &TargetId, artifact: &Artifact) -> Result<(), Error>;
    /// The digest `target` runs now, if any.
    async fn current(&self, target: &TargetId) -> Result<Option<Digest>, Error>;
    /// Whether `target` is ready to serve, and why not.
    async fn readiness(&self, target: &TargetId) -> Result<Readiness, Error>;
}

const _: Option<&dyn Deployer> = None;

/// Switches traffic between target sets (blue-green).
#[async_trait]
pub trait Router: Send + Sync + 'static {
    /// Sends all traffic of `service` to `active`.
    async fn switch(&self, service: &str, active: &[TargetId]) -> Result<(), Error>;
}

const _: Option<&dyn Router> = None;

/// Each target's attributes (`addr = "127.0.0.1:18081"`, ...): a plan file's
/// targets written as tables. Every attribute is a placeholder of the
/// command templates: per target in the deployer's, the values of the
/// targets concerned (space separated) in a router's or a gate's.
pub type TargetAttributes = BTreeMap<TargetId, BTreeMap<String, String>>;

/// Whether `value` may be spliced into a shell command as an attribute:
/// non-empty, at most 256 bytes, only ASCII letters, digits and `. _ - : / @ + = , %`.
pub fn attribute_value_ok(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/@+=,%".contains(&b))
}

/// The values of attribute `name` of `targets`, space separated (targets
/// without it are skipped).
pub(crate) fn joined_attribute(
    attrs: &TargetAttributes,
    targets: &[TargetId],
    name: &str,
) -> String {
    targets
        .iter()
        .filter_map(|t| attrs.get(t).and_then(|a| a.get(name)))
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The attribute names of `attrs`, sorted, each once.
pub(crate) fn attribute_names(attrs: &TargetAttributes) -> Vec<&str> {
    let mut names: Vec<&str> = attrs
        .values()
        .flat_map(|a| a.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The placeholders a [`CommandDeployer`] template may use.
pub const DEPLOYER_PLACEHOLDERS: &[&str] = &["service", "target", "version", "digest", "artifact"];

/// A deployer whose three operations are shell command templates.
///
/// - `deploy`: exit 0 means deployed; anything else fails (and is retried).
/// - `current`: stdout is what the target runs: a `sha256:` digest or a version
///   label known to the deployer's catalog (a label it does not know is
///   [`Error::UnknownArtifact`]); empty output (exit 0) means it runs
///   nothing; a non-zero exit means it could not tell (an error).
/// - `ready`: exit 0 means ready; otherwise stderr/stdout says why not.
///
/// Placeholders: `{service}`, `{target}`, `{version}`, `{digest}` and
/// `{artifact}` (`version@digest`).
///
/// ```
/// use rollgate_deploy::{CommandDeployer, CommandTemplate};
/// use std::time::Duration;
/// let d = CommandDeployer::new(
///     "web",
///     CommandTemplate::new("echo {version} > /srv/{target}/current")?,
///     CommandTemplate::new("cat /srv/{target}/current")?,
///     CommandTemplate::new("test -s /srv/{target}/current")?,
///     Duration::from_secs(30),
/// )?;
/// # Ok::<(), rollgate_deploy::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CommandDeployer {
    service: String,
    deploy: CommandTemplate,
    current: CommandTemplate,
    ready: CommandTemplate,
    timeout: Duration,
    env: CommandEnv,
    catalog: BTreeMap<String, Digest>,
    attributes: TargetAttributes,
}

impl CommandDeployer {
    /// A deployer for `service` running each command with `timeout`.
    pub fn new(
        service: impl Into<String>,
        deploy: CommandTemplate,
        current: CommandTemplate,
        ready: CommandTemplate,
        timeout: Duration,
    ) -> Result<Self, Error> {
        Self::new_with_attributes(
            service,
            deploy,
            current,
            ready,
            timeout,
            TargetAttributes::new(),
        )
    }

    /// A deployer whose templates may also use the targets' attributes
    /// (`{addr}`); every target must have each attribute a template uses.
    ///
    /// ```
    /// use rollgate_deploy::{CommandDeployer, CommandTemplate, TargetAttributes};
    /// use std::time::Duration;
    /// let mut attrs = TargetAttributes::new();
    /// attrs.insert("dns-1".parse()?, [("addr".to_string(), "127.0.0.1:18081".to_string())].into());
    /// let d = CommandDeployer::new_with_attributes(
    ///     "dns",
    ///     CommandTemplate::new("./start.sh {target} {addr} {version}")?,
    ///     CommandTemplate::new("cat /srv/{target}/current")?,
    ///     CommandTemplate::new("./probe.sh {addr}")?,
    ///     Duration::from_secs(30),
    ///     attrs,
    /// )?;
    /// # Ok::<(), rollgate_deploy::Error>(())
    /// ```
    pub fn new_with_attributes(
        service: impl Into<String>,
        deploy: CommandTemplate,
        current: CommandTemplate,
        ready: CommandTemplate,
        timeout: Duration,
        attributes: TargetAttributes,
    ) -> Result<Self, Error> {
        let names = attribute_names(&attributes);
        let mut allowed: Vec<&str> = DEPLOYER_PLACEHOLDERS.to_vec();
        allowed.extend(names.iter().copied());
        for t in [&deploy, &current, &ready] {
            t.check_placeholders(&allowed)?;
        }
        for t in [&current, &ready] {
            if t.placeholders()
                .iter()
                .any(|p| *p != "target" && *p != "service" && !names.contains(p))
            {
                return Err(Error::invalid(
                    "deployer",
                    format!(
                        "{:?}: only {{target}}, {{service}} and target attributes are known here",
                        t.as_str()
                    ),
                ));
            }
        }
        check_attributes_everywhere(&attributes, &[&deploy, &current, &ready])?;
        if timeout.is_zero() {
            return Err(Error::invalid("deployer", "timeout must be above zero"));
        }
        Ok(Self {
            service: service.into(),
            deploy,
            current,
            ready,
            timeout,
            env: CommandEnv::default(),
            catalog: BTreeMap::new(),
            attributes,
        })
    }

    /// Runs commands in this directory.
    pub fn with_env(mut self, env: CommandEnv) -> Self {
        self.env = env;
        self
    }

    /// Teaches the deployer artifacts by version label, so `current` output
    /// such as `v1` maps back to a digest.
    pub fn with_known(mut self, artifacts: impl IntoIterator<Item = Artifact>) -> Self {
        for a in artifacts {
            self.catalog.insert(a.version, a.digest);
        }
        self
    }

    async fn run(
        &self,
        target: &TargetId,
        tpl: &CommandTemplate,
        artifact: Option<&Artifact>,
    ) -> Result<crate::command::CommandOutput, Error> {
        let full;
        let mut vars: BTreeMap<&str, &str> = BTreeMap::new();
        vars.insert("service", &self.service);
        vars.insert("target", target.as_str());
        if let Some(attrs) = self.attributes.get(target) {
            for (k, v) in attrs {
                vars.insert(k, v);
            }
        }
        if let Some(a) = artifact {
            full = format!("{}@{}", a.version, a.digest);
            vars.insert("version", &a.version);
            vars.insert("digest", a.digest.as_str());
            vars.insert("artifact", &full);
        }
        let line = tpl.render(&vars)?;
        run_shell(&line, &self.env, self.timeout)
            .await
            .map_err(|reason| Error::Deploy {
                target: target.clone(),
                reason,
                transient: true,
            })
    }
}

#[async_trait]
impl Deployer for CommandDeployer {
    async fn deploy(&self, target: &TargetId, artifact: &Artifact) -> Result<(), Error> {
        let out = self.run(target, &self.deploy, Some(artifact)).await?;
        if out.code == Some(0) {
            Ok(())
        } else {
            Err(Error::Deploy {
                target: target.clone(),
                reason: format!(
                    "deploy command exited with {}: {}",
                    out.status_text(),
                    out.summary()
                ),
                transient: true,
            })
        }
    }

    async fn current(&self, target: &TargetId) -> Result<Option<Digest>, Error> {
        let out = self.run(target, &self.current, None).await?;
        if out.code != Some(0) {
            // Not "runs nothing": we could not tell (ssh down, file missing...).
            return Err(Error::Deploy {
                target: target.clone(),
                reason: format!(
                    "current command exited with {}: {}",
                    out.status_text(),
                    out.summary()
                ),
                transient: true,
            });
        }
        let text = out.stdout.trim();
        if text.is_empty() {
            return Ok(None);
        }
        if text.starts_with("sha256:") {
            return text.parse().map(Some).map_err(|e| Error::Deploy {
                target: target.clone(),
                reason: format!("current command printed a bad digest: {e}"),
                transient: false,
            });
        }
        match self.catalog.get(text) {
            Some(d) => Ok(Some(d.clone())),
            None => Err(Error::UnknownArtifact {
                target: target.clone(),
                runs: text.to_string(),
            }),
        }
    }

    async fn readiness(&self, target: &TargetId) -> Result<Readiness, Error> {
        let out = self.run(target, &self.ready, None).await?;
        if out.code == Some(0) {
            Ok(Readiness::Ready)
        } else {
            let why = out.summary();
            Ok(Readiness::NotReady(if why.is_empty() {
                format!("ready command exited with {}", out.status_text())
            } else {
                why
            }))
        }
    }
}

/// Every attribute a template uses is set on every target that has
/// attributes at all (plain-named targets have none).
fn check_attributes_everywhere(
    attrs: &TargetAttributes,
    templates: &[&CommandTemplate],
) -> Result<(), Error> {
    let names = attribute_names(attrs);
    for t in templates {
        for p in t.placeholders() {
            if !names.contains(&p) {
                continue;
            }
            if let Some((target, _)) = attrs.iter().find(|(_, a)| !a.contains_key(p)) {
                return Err(Error::invalid(
                    "command",
                    format!(
                        "{:?}: target {target} has no attribute {p:?} for {{{p}}}",
                        t.as_str()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A router whose switch is a shell command template with `{service}`,
/// `{targets}` (space separated) and `{color}` (`green` when switching to the
/// new set, `blue` when switching back).
#[derive(Debug, Clone)]
pub struct CommandRouter {
    switch: CommandTemplate,
    green: Vec<TargetId>,
    timeout: Duration,
    env: CommandEnv,
    attributes: TargetAttributes,
}

impl CommandRouter {
    /// A router; `green` is the set that receives the new artifact.
    pub fn new(
        switch: CommandTemplate,
        green: Vec<TargetId>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        Self::new_with_attributes(switch, green, timeout, TargetAttributes::new())
    }

    /// A router whose template may also use the targets' attributes: each
    /// expands to the values of the targets switched to, space separated.
    pub fn new_with_attributes(
        switch: CommandTemplate,
        green: Vec<TargetId>,
        timeout: Duration,
        attributes: TargetAttributes,
    ) -> Result<Self, Error> {
        let mut allowed = vec!["service", "targets", "color"];
        allowed.extend(attribute_names(&attributes));
        switch.check_placeholders(&allowed)?;
        check_attributes_everywhere(&attributes, &[&switch])?;
        Ok(Self {
            switch,
            green,
            timeout,
            env: CommandEnv::default(),
            attributes,
        })
    }

    /// Runs commands in this directory.
    pub fn with_env(mut self, env: CommandEnv) -> Self {
        self.env = env;
        self
    }
}

#[async_trait]
impl Router for CommandRouter {
    async fn switch(&self, service: &str, active: &[TargetId]) -> Result<(), Error> {
        let targets = active
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let color = if active == self.green.as_slice() {
            "green"
        } else {
            "blue"
        };
        let joined: Vec<(&str, String)> = attribute_names(&self.attributes)
            .into_iter()
            .map(|n| (n, joined_attribute(&self.attributes, active, n)))
            .collect();
        let mut vars: BTreeMap<&str, &str> = [
            ("service", service),
            ("targets", targets.as_str()),
            ("color", color),
        ]
        .into_iter()
        .collect();
        for (n, v) in &joined {
            vars.insert(n, v);
        }
        let line = self.switch.render(&vars)?;
        let out = run_shell(&line, &self.env, self.timeout)
            .await
            .map_err(Error::Router)?;
        if out.code == Some(0) {
            Ok(())
        } else {
            Err(Error::Router(format!(
                "switch command exited with {:?}: {}",
                out.code,
                out.summary()
            )))
        }
    }
}
