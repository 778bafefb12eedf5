//! Plan files: the TOML a person writes, validated into a request, a
//! command deployer, a gate and a router. Every error names the file, line
//! and column.
//!
//! ```
//! use rollgate::plan::PlanFile;
//! let text = r#"
//! service = "web"
//! artifact = { version = "v2", digest = "sha256:0000000000000000000000000000000000000000000000000000000000000002" }
//! targets = ["web-1", "web-2", "web-3", "web-4"]
//!
//! [deployer]
//! kind = "command"
//! deploy = "echo {version} > /srv/{target}/current"
//! current = "cat /srv/{target}/current"
//! ready = "test -s /srv/{target}/current"
//!
//! [strategy]
//! kind = "canary"
//! steps = [25, 100]
//! bake = "5s"
//! "#;
//! let plan = PlanFile::parse(text, "plan.toml")?;
//! assert_eq!(plan.request("alice", None).plan.phases.len(), 2);
//! let err = PlanFile::parse("service = ", "bad.toml").unwrap_err();
//! assert!(err.to_string().starts_with("bad.toml:1:"), "{err}");
//! # Ok::<(), rollgate::deploy::Error>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use rollgate_deploy::{
    Artifact, CommandDeployer, CommandEnv, CommandGate, CommandRouter, CommandTemplate, Digest,
    Error, ExecutorConfig, GatePolicy, GateUse, Jitter, Percent, PhaseDefaults, RetryPolicy, Ring,
    RolloutRequest, Strategy, TargetAttributes, TargetId,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    service: Spanned<String>,
    artifact: Spanned<RawArtifact>,
    #[serde(default)]
    previous: Option<Spanned<RawArtifact>>,
    #[serde(default)]
    known: Vec<Spanned<RawArtifact>>,
    #[serde(default)]
    precheck: Vec<Spanned<RawPrecheck>>,
    targets: Spanned<Vec<Spanned<RawTarget>>>,
    deployer: Spanned<RawDeployer>,
    strategy: Spanned<RawStrategy>,
    /// Read by kind from the parsed document (see [`PlanFile::parse_with_gate_kinds`]).
    #[serde(default)]
    gate: Option<Spanned<serde::de::IgnoredAny>>,
    #[serde(default)]
    router: Option<Spanned<RawRouter>>,
    #[serde(default)]
    readiness: Option<RawReadiness>,
    #[serde(default)]
    retry: Option<RawRetry>,
    #[serde(default)]
    notify: Vec<Spanned<RawNotify>>,
    /// Waits between notification attempts: the keys of `[retry]`, and `timeout`.
    #[serde(default)]
    notify_retry: Option<RawNotifyRetry>,
}

/// `[notify_retry]`: the keys of `[retry]` plus an attempt timeout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifyRetry {
    #[serde(default)]
    attempts: Option<Spanned<i64>>,
    #[serde(default)]
    backoff: Option<Spanned<String>>,
    #[serde(default)]
    max_backoff: Option<Spanned<String>>,
    #[serde(default)]
    jitter: Option<Spanned<String>>,
    #[serde(default)]
    seed: Option<Spanned<i64>>,
    /// Longest one POST may take.
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

/// A `[[notify]]` destination.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    url: Spanned<String>,
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    events: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    format: Option<Spanned<String>>,
    #[serde(default)]
    secret_env: Option<Spanned<String>>,
    #[serde(default)]
    secret_file: Option<Spanned<String>>,
}

/// A target: a plain name, or a table with `name` and string attributes.
#[derive(Debug)]
struct RawTarget {
    name: String,
    attributes: std::collections::BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawTarget;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a target name or a table { name = \"...\", attribute = \"...\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawTarget, E> {
                Ok(RawTarget {
                    name: v.to_string(),
                    attributes: Default::default(),
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawTarget, A::Error> {
                use serde::de::Error as _;
                let mut name = None;
                let mut attributes = std::collections::BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value: String = map.next_value().map_err(|e| {
                        A::Error::custom(format!(
                            "target attribute {key:?}: {e} (attributes are strings)"
                        ))
                    })?;
                    if key == "name" {
                        name = Some(value);
                    } else if RESERVED.contains(&key.as_str()) {
                        return Err(A::Error::custom(format!(
                            "target attribute {key:?} would shadow the placeholder {{{key}}}; rename it"
                        )));
                    } else if key.is_empty()
                        || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err(A::Error::custom(format!(
                            "target attribute {key:?}: names are letters, digits and _"
                        )));
                    } else if !rollgate_deploy::attribute_value_ok(&value) {
                        return Err(A::Error::custom(format!(
                            "target attribute {key} = {value:?}: values are 1 to 256 ASCII letters, digits or . _ - : / @ + = , % (they are spliced into shell commands)"
                        )));
                    } else {
                        attributes.insert(key, value);
                    }
                }
                let name = name.ok_or_else(|| A::Error::missing_field("name"))?;
                Ok(RawTarget { name, attributes })
            }
        }
        d.deserialize_any(V)
    }
}

/// The attribute names of `attrs`, sorted, each once.
fn attribute_names(attrs: &TargetAttributes) -> Vec<&str> {
    let mut names: Vec<&str> = attrs
        .values()
        .flat_map(|a| a.keys().map(String::as_str))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Placeholder names of the command templates: no attribute may take one.
const RESERVED: &[&str] = &[
    "service",
    "target",
    "targets",
    "version",
    "digest",
    "artifact",
    "rollout",
    "percent",
    "phase",
    "previous_version",
    "previous_digest",
    "color",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrecheck {
    #[serde(default)]
    name: Option<String>,
    command: Spanned<String>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

/// A policy gate run before anything changes (`[[precheck]]`): exit 0
/// lets the rollout start; any other exit refuses it, with its standard
/// output as the reason.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Precheck {
    /// Its name (`precheck N` when the plan gives none).
    pub name: String,
    /// The command, with `{service}`, `{version}`, `{digest}`, `{artifact}`.
    pub command: CommandTemplate,
    /// How long it may run.
    pub timeout: Duration,
}

/// Placeholders a precheck command may use.
pub const PRECHECK_PLACEHOLDERS: &[&str] = &["service", "version", "digest", "artifact"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    version: Spanned<String>,
    digest: Spanned<String>,
    #[serde(default)]
    sbom: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeployer {
    kind: Spanned<String>,
    deploy: Spanned<String>,
    current: Spanned<String>,
    ready: Spanned<String>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStrategy {
    kind: Spanned<String>,
    #[serde(default)]
    steps: Option<Spanned<Vec<Spanned<f64>>>>,
    #[serde(default)]
    step: Option<Spanned<f64>>,
    #[serde(default)]
    start: Option<Spanned<f64>>,
    #[serde(default)]
    factor: Option<Spanned<f64>>,
    #[serde(default)]
    max_unavailable: Option<Spanned<i64>>,
    #[serde(default)]
    min_healthy: Option<Spanned<i64>>,
    #[serde(default)]
    blue: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    green: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    rings: Option<Spanned<Vec<RawRing>>>,
    #[serde(default)]
    bake: Option<Spanned<String>>,
    #[serde(default)]
    max_failed: Option<Spanned<i64>>,
    #[serde(default)]
    concurrency: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRing {
    name: Spanned<String>,
    targets: Vec<Spanned<String>>,
}

/// What every gate kind shares, read once from `[gate]` (whose keys are
/// checked against these and the kind's own: [`SHARED_GATE_KEYS`]).
#[derive(Debug, Deserialize)]
struct RawGateCommon {
    kind: Spanned<String>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    max_errors: Option<Spanned<i64>>,
    #[serde(default)]
    max_continues: Option<Spanned<i64>>,
    #[serde(default)]
    retry_after: Option<Spanned<String>>,
}

/// The keys of `[gate]` every kind reads: `kind` and the limits of
/// [`GatePolicy`] and the gate timeout.
pub(crate) const SHARED_GATE_KEYS: &[&str] = &[
    "kind",
    "timeout",
    "max_errors",
    "max_continues",
    "retry_after",
];

/// A command gate's own field.
#[derive(Debug, Deserialize)]
struct RawCommandGate {
    command: Spanned<String>,
}

/// A `[gate]` kind besides `command` (`canary`, built in [`super`]): its
/// name and the keys of `[gate]` it reads besides [`SHARED_GATE_KEYS`].
/// Any other key is an error at its position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GateKind<'a> {
    /// `kind = "NAME"`.
    pub name: &'a str,
    /// Its own keys.
    pub keys: &'a [&'a str],
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouter {
    kind: Spanned<String>,
    switch: Spanned<String>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReadiness {
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    #[serde(default)]
    attempts: Option<Spanned<i64>>,
    #[serde(default)]
    backoff: Option<Spanned<String>>,
    #[serde(default)]
    max_backoff: Option<Spanned<String>>,
    /// `"full"` (default) or `"none"`.
    #[serde(default)]
    jitter: Option<Spanned<String>>,
    /// The jitter's seed (default 0).
    #[serde(default)]
    seed: Option<Spanned<i64>>,
}

/// Notification settings on their own: `[[notify]]` tables and
/// `[notify_retry]` exactly as a plan writes them (`rollgate serve --notify
/// FILE` reads one for every rollout it accepts).
///
/// ```
/// use rollgate::plan::NotifyConfig;
/// let c = NotifyConfig::parse(
///     "[[notify]]\nurl = \"https://hooks.example.com/x\"\nsecret_env = \"HOOK_SECRET\"\n",
///     "notify.toml",
/// )?;
/// assert_eq!(c.destinations.len(), 1);
/// let e = NotifyConfig::parse("[[notify]]\nurl = \"https://h/x\"\nevents = [\"done\"]\nsecret_env = \"S\"\n", "notify.toml")
///     .unwrap_err();
/// assert!(e.to_string().starts_with("notify.toml:3:11: unknown notify event \"done\""), "{e}");
/// # Ok::<(), rollgate::deploy::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NotifyConfig {
    /// Where notifications go.
    pub destinations: Vec<rollgate_deploy::Destination>,
    /// Waits between attempts.
    pub retry: RetryPolicy,
    /// Longest one attempt may take.
    pub timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifyFile {
    #[serde(default)]
    notify: Vec<Spanned<RawNotify>>,
    #[serde(default)]
    notify_retry: Option<RawNotifyRetry>,
}

impl NotifyConfig {
    /// Parses a notification config file; errors name `path:line:column`.
    pub fn parse(text: &str, path: &str) -> Result<Self, Error> {
        let cx = Ctx {
            path,
            text,
            attributes: TargetAttributes::new(),
            targets: Vec::new(),
        };
        let raw: RawNotifyFile = toml::from_str(text).map_err(|e| cx.toml_error(&e))?;
        cx.notify_config(&raw.notify, raw.notify_retry, path)
    }
}

/// A validated plan file.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PlanFile {
    /// The file it came from (for messages).
    pub path: String,
    /// The service.
    pub service: String,
    /// The artifact to roll out.
    pub artifact: Artifact,
    /// The artifact it replaces, if written.
    pub previous: Option<Artifact>,
    /// Artifacts targets may run, declared as `[[known]]` version and digest
    /// pairs: targets found running one can be restored to it.
    pub known: Vec<Artifact>,
    /// Policy gates run, in order, before anything changes.
    pub prechecks: Vec<Precheck>,
    /// The targets, in order.
    pub targets: Vec<TargetId>,
    /// Attributes of the targets written as tables (`{ name = "dns-1", addr = "..." }`).
    pub attributes: TargetAttributes,
    /// The `[gate]` kind, when the plan has a gate.
    pub gate_kind: Option<String>,
    /// The strategy.
    pub strategy: Strategy,
    /// Per-phase settings.
    pub defaults: PhaseDefaults,
    /// Gate limits.
    pub gate_policy: GatePolicy,
    deployer: (CommandTemplate, CommandTemplate, CommandTemplate, Duration),
    gate: Option<(CommandTemplate, Duration)>,
    gate_timeout: Duration,
    router: Option<(CommandTemplate, Duration)>,
    ready_timeout: Duration,
    ready_interval: Duration,
    retry: RetryPolicy,
    /// Where notifications go (`[[notify]]`).
    pub notify: Vec<rollgate_deploy::Destination>,
    /// Waits between notification attempts (`[notify_retry]`).
    pub notify_retry: RetryPolicy,
    /// Longest one notification attempt may take (`[notify_retry] timeout`).
    pub notify_timeout: Duration,
    /// The plan's text, kept so a resumed rollout rebuilds the same deployer and gate.
    pub text: String,
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

struct Ctx<'a> {
    path: &'a str,
    text: &'a str,
    attributes: TargetAttributes,
    targets: Vec<TargetId>,
}

impl Ctx<'_> {
    fn err<T>(&self, span: std::ops::Range<usize>, reason: impl Into<String>) -> Result<T, Error> {
        let (l, c) = line_col(self.text, span.start);
        Err(Error::PlanFile {
            path: format!("{}:{l}:{c}", self.path),
            reason: reason.into(),
        })
    }

    fn toml_error(&self, e: &toml::de::Error) -> Error {
        let (l, c) = line_col(self.text, e.span().unwrap_or(0..0).start);
        Error::PlanFile {
            path: format!("{}:{l}:{c}", self.path),
            reason: e.message().trim().to_string(),
        }
    }

    fn wrap<T>(&self, span: std::ops::Range<usize>, r: Result<T, Error>) -> Result<T, Error> {
        r.or_else(|e| {
            let reason = match e {
                Error::Invalid { reason, .. } => reason,
                other => other.to_string(),
            };
            self.err(span, reason)
        })
    }

    fn duration(&self, s: &Spanned<String>) -> Result<Duration, Error> {
        humantime::parse_duration(s.get_ref().trim()).or_else(|e| {
            self.err(
                s.span(),
                format!(
                    "bad duration {:?}: {e} (write e.g. \"30s\", \"5m\")",
                    s.get_ref()
                ),
            )
        })
    }

    fn opt_duration(
        &self,
        s: &Option<Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, Error> {
        s.as_ref().map_or(Ok(default), |s| self.duration(s))
    }

    fn retry(&self, raw: Option<&RawRetry>, mut retry: RetryPolicy) -> Result<RetryPolicy, Error> {
        let Some(r) = raw else {
            return Ok(retry);
        };
        if let Some(a) = &r.attempts {
            retry.max_attempts = self.count(a, "attempts", 1)? as u32;
        }
        retry.initial_backoff = self.opt_duration(&r.backoff, retry.initial_backoff)?;
        retry.max_backoff = self.opt_duration(&r.max_backoff, retry.max_backoff)?;
        if let Some(j) = &r.jitter {
            retry.jitter = match j.get_ref().as_str() {
                "full" => Jitter::Full,
                "none" => Jitter::None,
                other => {
                    return self.err(
                        j.span(),
                        format!("unknown jitter {other:?} (expected \"full\" or \"none\")"),
                    );
                }
            };
        }
        if let Some(seed) = &r.seed {
            retry.seed = self.count(seed, "seed", 0)? as u64;
        }
        Ok(retry)
    }

    /// `[[notify]]` tables and `[notify_retry]`, of a plan or a config file at `path`.
    fn notify_config(
        &self,
        tables: &[Spanned<RawNotify>],
        retry: Option<RawNotifyRetry>,
        path: &str,
    ) -> Result<NotifyConfig, Error> {
        let dispatch = rollgate_deploy::DispatchConfig::default();
        let (retry, timeout) = match retry {
            None => (dispatch.retry, dispatch.timeout),
            Some(r) => {
                let timeout = self.opt_duration(&r.timeout, dispatch.timeout)?;
                if let Some(t) = &r.timeout
                    && timeout.is_zero()
                {
                    return self.err(t.span(), "timeout must be more than 0s");
                }
                let as_retry = RawRetry {
                    attempts: r.attempts,
                    backoff: r.backoff,
                    max_backoff: r.max_backoff,
                    jitter: r.jitter,
                    seed: r.seed,
                };
                (self.retry(Some(&as_retry), dispatch.retry)?, timeout)
            }
        };
        let base = Path::new(path).parent().unwrap_or(Path::new(""));
        let destinations = tables
            .iter()
            .map(|n| self.destination(n, base))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NotifyConfig {
            destinations,
            retry,
            timeout,
        })
    }

    /// A `[[notify]]` table; a relative `secret_file` is taken from `base`
    /// (the plan file's directory).
    fn destination(
        &self,
        n: &Spanned<RawNotify>,
        base: &Path,
    ) -> Result<rollgate_deploy::Destination, Error> {
        use rollgate_deploy::{Destination, NotifyFormat, NotifyKind};
        let raw = n.get_ref();
        let url = raw.url.get_ref().trim();
        // Never echo the URL itself: it may carry credentials.
        let host_ok = url.split_once("://").is_some_and(|(scheme, rest)| {
            matches!(scheme, "http" | "https")
                && rest
                    .split(['/', '?', '#'])
                    .next()
                    .is_some_and(|a| !a.rsplit('@').next().unwrap_or("").is_empty())
        });
        if !host_ok || url.chars().any(char::is_whitespace) {
            return self.err(
                raw.url.span(),
                format!(
                    "notify url {} is not an http:// or https:// URL with a host",
                    rollgate_deploy::redact_url(url)
                ),
            );
        }
        let mut d = Destination::new(url);
        if let Some(name) = &raw.name {
            if name.get_ref().trim().is_empty() {
                return self.err(name.span(), "notify name is empty");
            }
            d = d.with_name(name.get_ref().trim());
        }
        if let Some(events) = &raw.events {
            if events.get_ref().is_empty() {
                return self.err(
                    events.span(),
                    format!(
                        "notify events is empty; leave it out to send every event ({})",
                        NotifyKind::names()
                    ),
                );
            }
            let mut kinds = Vec::new();
            for e in events.get_ref() {
                let kind: NotifyKind = match e.get_ref().parse() {
                    Ok(k) => k,
                    Err(_) => {
                        return self.err(
                            e.span(),
                            format!(
                                "unknown notify event {:?}; valid events: {}",
                                e.get_ref(),
                                NotifyKind::names()
                            ),
                        );
                    }
                };
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            d = d.with_events(kinds);
        }
        if let Some(f) = &raw.format {
            d = d.with_format(match f.get_ref().as_str() {
                "json" => NotifyFormat::Json,
                "slack" => NotifyFormat::Slack,
                other => {
                    return self.err(
                        f.span(),
                        format!("unknown notify format {other:?} (expected \"json\" or \"slack\")"),
                    );
                }
            });
        }
        match (&raw.secret_env, &raw.secret_file) {
            (Some(_), Some(f)) => {
                return self.err(f.span(), "give secret_env or secret_file, not both");
            }
            (Some(env), None) => {
                let name = env.get_ref();
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return self.err(
                        env.span(),
                        format!("secret_env {name:?} is not an environment variable name (letters, digits, _)"),
                    );
                }
                d = d.with_secret_env(name);
            }
            (None, Some(file)) => {
                if file.get_ref().trim().is_empty() {
                    return self.err(file.span(), "secret_file is empty");
                }
                d = d.with_secret_file(base.join(file.get_ref()));
            }
            (None, None) if d.format == NotifyFormat::Json => {
                return self.err(
                    n.span(),
                    "a json notify destination needs secret_env or secret_file: receivers verify X-Rollgate-Signature with it",
                );
            }
            (None, None) => {}
        }
        Ok(d)
    }

    fn count(&self, v: &Spanned<i64>, what: &str, min: i64) -> Result<usize, Error> {
        let n = *v.get_ref();
        if n < min {
            return self.err(v.span(), format!("{what} must be at least {min}, not {n}"));
        }
        Ok(n as usize)
    }

    fn percent(&self, v: &Spanned<f64>) -> Result<Percent, Error> {
        self.wrap(v.span(), Percent::new(*v.get_ref()))
    }

    fn target_specs(&self, list: &[Spanned<RawTarget>]) -> Result<Vec<TargetId>, Error> {
        list.iter()
            .map(|t| self.wrap(t.span(), t.get_ref().name.parse()))
            .collect()
    }

    fn targets(&self, list: &[Spanned<String>]) -> Result<Vec<TargetId>, Error> {
        list.iter()
            .map(|t| self.wrap(t.span(), t.get_ref().parse()))
            .collect()
    }

    fn template(&self, s: &Spanned<String>, allowed: &[&str]) -> Result<CommandTemplate, Error> {
        let t = self.wrap(s.span(), CommandTemplate::new(s.get_ref().clone()))?;
        let names = attribute_names(&self.attributes);
        let mut all = allowed.to_vec();
        all.extend(names.iter().copied());
        self.wrap(s.span(), t.check_placeholders(&all))?;
        for p in t.placeholders() {
            if !names.contains(&p) {
                continue;
            }
            if let Some(target) = self
                .targets
                .iter()
                .find(|t| !self.attributes.get(*t).is_some_and(|a| a.contains_key(p)))
            {
                return self.err(
                    s.span(),
                    format!("{{{p}}}: target {target} has no attribute {p:?}"),
                );
            }
        }
        Ok(t)
    }

    fn artifact(&self, a: &Spanned<RawArtifact>) -> Result<Artifact, Error> {
        let raw = a.get_ref();
        let digest: Digest = self.wrap(raw.digest.span(), raw.digest.get_ref().parse())?;
        let art = Artifact {
            version: raw.version.get_ref().clone(),
            digest,
            sbom: raw.sbom.clone(),
        };
        self.wrap(raw.version.span(), art.validate())?;
        Ok(art)
    }

    fn kind(&self, k: &Spanned<String>, section: &str) -> Result<(), Error> {
        if k.get_ref() != "command" {
            return self.err(
                k.span(),
                format!(
                    "unknown {section} kind {:?} (known: \"command\")",
                    k.get_ref()
                ),
            );
        }
        Ok(())
    }
}

const STRATEGIES: &str =
    "all-at-once | rolling | canary | linear | exponential | blue-green | rings";

impl PlanFile {
    /// Reads and validates a plan file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::PlanFile {
            path: path.display().to_string(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Validates plan text; `path` is used in messages. The only gate kind is `command`.
    pub fn parse(text: &str, path: &str) -> Result<Self, Error> {
        Self::parse_with_gate_kinds(text, path, &[])
    }

    /// Validates plan text whose `[gate]` may also be one of `extra_kinds`,
    /// built by the caller (the umbrella crate builds `canary`). For those,
    /// this crate reads what every gate shares ([`SHARED_GATE_KEYS`]),
    /// refuses keys that are neither shared nor the kind's own, and leaves
    /// the kind's own keys to the caller ([`gate_kind`](Self::gate_kind),
    /// [`text`](Self::text)); [`gate`](Self::gate) then returns `None`.
    pub(crate) fn parse_with_gate_kinds(
        text: &str,
        path: &str,
        extra_kinds: &[GateKind<'_>],
    ) -> Result<Self, Error> {
        let mut cx = Ctx {
            path,
            text,
            attributes: TargetAttributes::new(),
            targets: Vec::new(),
        };
        // Parsed once: the plan is read from this tree, and `[gate]` again by
        // kind, with every position kept.
        let doc = toml::de::DeTable::parse(text).map_err(|e| cx.toml_error(&e))?;
        let raw = RawPlan::deserialize(toml::de::Deserializer::from(doc.clone()))
            .map_err(|e| cx.toml_error(&e))?;
        let service = raw.service.get_ref().trim().to_string();
        if service.is_empty() || service.contains(char::is_whitespace) {
            return cx.err(
                raw.service.span(),
                "service must be a non-empty name without spaces",
            );
        }
        let artifact = cx.artifact(&raw.artifact)?;
        let previous = raw.previous.as_ref().map(|p| cx.artifact(p)).transpose()?;
        if previous
            .as_ref()
            .is_some_and(|p| p.digest == artifact.digest)
        {
            return cx.err(
                raw.previous.as_ref().map_or(0..0, |p| p.span()),
                "previous is the same artifact as artifact",
            );
        }
        let mut prechecks = Vec::new();
        for (i, p) in raw.precheck.iter().enumerate() {
            let p = p.get_ref();
            let timeout = cx.opt_duration(&p.timeout, Duration::from_secs(300))?;
            prechecks.push(Precheck {
                name: p
                    .name
                    .clone()
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| format!("precheck {}", i + 1)),
                command: cx.template(&p.command, PRECHECK_PLACEHOLDERS)?,
                timeout,
            });
        }
        let mut known: Vec<Artifact> = Vec::new();
        for k in &raw.known {
            let a = cx.artifact(k)?;
            let clash = std::iter::once(&artifact)
                .chain(previous.iter())
                .chain(known.iter())
                .find(|o| o.version == a.version || o.digest == a.digest);
            if let Some(o) = clash
                && o != &a
            {
                return cx.err(
                    k.span(),
                    format!("known artifact {a} clashes with {o}: a version names one digest"),
                );
            }
            if clash.is_none() {
                known.push(a);
            }
        }
        let targets = cx.target_specs(raw.targets.get_ref())?;
        for (t, raw_t) in targets.iter().zip(raw.targets.get_ref()) {
            if !raw_t.get_ref().attributes.is_empty() {
                cx.attributes
                    .insert(t.clone(), raw_t.get_ref().attributes.clone());
            }
        }
        cx.targets = targets.clone();
        let cx = cx;
        if targets.is_empty() {
            return cx.err(raw.targets.span(), "the target list is empty");
        }
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].contains(t) {
                return cx.err(
                    raw.targets.get_ref()[i].span(),
                    format!("target {t} is listed twice"),
                );
            }
        }

        let d = raw.deployer.get_ref();
        cx.kind(&d.kind, "deployer")?;
        let deployer = (
            cx.template(&d.deploy, rollgate_deploy::DEPLOYER_PLACEHOLDERS)?,
            cx.template(&d.current, &["service", "target"])?,
            cx.template(&d.ready, &["service", "target"])?,
            cx.opt_duration(&d.timeout, Duration::from_secs(60))?,
        );
        if deployer.3.is_zero() {
            return cx.err(
                d.timeout.as_ref().map_or(0..0, |t| t.span()),
                "deployer timeout must be above zero",
            );
        }

        let s = raw.strategy.get_ref();
        let need = |f: Option<std::ops::Range<usize>>,
                    name: &str|
         -> Result<std::ops::Range<usize>, Error> {
            match f {
                Some(span) => Ok(span),
                None => cx.err(
                    s.kind.span(),
                    format!("strategy {:?} needs `{name}`", s.kind.get_ref()),
                ),
            }
        };
        let strategy = match s.kind.get_ref().as_str() {
            "all-at-once" => Strategy::AllAtOnce,
            "canary" => {
                need(s.steps.as_ref().map(|x| x.span()), "steps")?;
                let steps = s
                    .steps
                    .as_ref()
                    .map(|v| v.get_ref().iter().map(|p| cx.percent(p)).collect())
                    .transpose()?
                    .unwrap_or_default();
                Strategy::Canary { steps }
            }
            "linear" => {
                need(s.step.as_ref().map(|x| x.span()), "step")?;
                Strategy::Linear {
                    step: s
                        .step
                        .as_ref()
                        .map(|p| cx.percent(p))
                        .transpose()?
                        .unwrap_or(Percent::FULL),
                }
            }
            "exponential" => {
                let start = s
                    .start
                    .as_ref()
                    .map(|p| cx.percent(p))
                    .transpose()?
                    .unwrap_or(Percent::new(1.0)?);
                let factor = s.factor.as_ref().map_or(2.0, |f| *f.get_ref());
                Strategy::Exponential { start, factor }
            }
            "rolling" => {
                let max_unavailable = match (&s.max_unavailable, &s.min_healthy) {
                    (Some(m), None) => cx.count(m, "max_unavailable", 1)?,
                    (None, Some(h)) => {
                        let h_n = cx.count(h, "min_healthy", 0)?;
                        if h_n >= targets.len() {
                            return cx.err(
                                h.span(),
                                format!(
                                    "min_healthy {h_n} leaves no target to update (of {})",
                                    targets.len()
                                ),
                            );
                        }
                        targets.len() - h_n
                    }
                    (Some(m), Some(_)) => {
                        return cx.err(m.span(), "give max_unavailable or min_healthy, not both");
                    }
                    (None, None) => 1,
                };
                Strategy::Rolling { max_unavailable }
            }
            "blue-green" => {
                let span = need(s.green.as_ref().map(|x| x.span()), "green")?;
                let green = s
                    .green
                    .as_ref()
                    .map(|g| cx.targets(g.get_ref()))
                    .transpose()?
                    .unwrap_or_default();
                let blue = match &s.blue {
                    Some(b) => cx.targets(b.get_ref())?,
                    None => targets
                        .iter()
                        .filter(|t| !green.contains(t))
                        .cloned()
                        .collect(),
                };
                let st = Strategy::BlueGreen { blue, green };
                cx.wrap(
                    span,
                    st.compile(&targets, &PhaseDefaults::default()).map(|_| ()),
                )?;
                st
            }
            "rings" => {
                let span = need(s.rings.as_ref().map(|x| x.span()), "rings")?;
                let rings = s
                    .rings
                    .as_ref()
                    .map(|r| {
                        r.get_ref()
                            .iter()
                            .map(|ring| {
                                Ok(Ring {
                                    name: ring.name.get_ref().clone(),
                                    targets: cx.targets(&ring.targets)?,
                                })
                            })
                            .collect::<Result<Vec<_>, Error>>()
                    })
                    .transpose()?
                    .unwrap_or_default();
                let st = Strategy::Rings { rings };
                cx.wrap(
                    span,
                    st.compile(&targets, &PhaseDefaults::default()).map(|_| ()),
                )?;
                st
            }
            other => {
                return cx.err(
                    s.kind.span(),
                    format!("unknown strategy {other:?} (known: {STRATEGIES})"),
                );
            }
        };
        let mut defaults = PhaseDefaults::default()
            .with_bake(cx.opt_duration(&s.bake, Duration::ZERO)?)
            .with_gate_use(if raw.gate.is_some() {
                GateUse::Required
            } else {
                GateUse::IfAttached
            });
        if let Some(m) = &s.max_failed {
            defaults = defaults.with_max_failed(cx.count(m, "max_failed", 0)?);
        }
        if let Some(c) = &s.concurrency {
            defaults = defaults.with_concurrency(cx.count(c, "concurrency", 1)?);
        }
        // A canary's steps are what compiling can reject: point at them.
        let compile_span = s
            .steps
            .as_ref()
            .map_or_else(|| raw.strategy.span(), |steps| steps.span());
        cx.wrap(
            compile_span,
            strategy.compile(&targets, &defaults).map(|_| ()),
        )?;

        let mut gate_policy = GatePolicy::default();
        let mut gate_kind = None;
        let mut gate_timeout = Duration::from_secs(300);
        let gate_value = doc
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref() == "gate")
            .map(|(_, v)| v.clone());
        let gate = match gate_value {
            None => None,
            Some(value) => {
                let keys: Vec<Spanned<String>> = match value.get_ref() {
                    toml::de::DeValue::Table(t) => t
                        .iter()
                        .map(|(k, _)| Spanned::new(k.span(), k.get_ref().to_string()))
                        .collect(),
                    _ => Vec::new(),
                };
                let read = |e: toml::de::Error| cx.toml_error(&e);
                let common =
                    RawGateCommon::deserialize(toml::de::ValueDeserializer::from(value.clone()))
                        .map_err(read)?;
                let kind = &common.kind;
                let is_command = kind.get_ref() == "command";
                let Some(own) = (if is_command {
                    Some(&["command"][..])
                } else {
                    extra_kinds
                        .iter()
                        .find(|k| k.name == kind.get_ref())
                        .map(|k| k.keys)
                }) else {
                    let mut known = vec!["\"command\"".to_string()];
                    known.extend(extra_kinds.iter().map(|k| format!("{:?}", k.name)));
                    return cx.err(
                        kind.span(),
                        format!(
                            "unknown gate kind {:?} (known: {})",
                            kind.get_ref(),
                            known.join(", ")
                        ),
                    );
                };
                if let Some(k) = keys.iter().find(|k| {
                    !SHARED_GATE_KEYS.contains(&k.get_ref().as_str())
                        && !own.contains(&k.get_ref().as_str())
                }) {
                    let expected: Vec<String> = SHARED_GATE_KEYS
                        .iter()
                        .chain(own)
                        .map(|k| format!("`{k}`"))
                        .collect();
                    return cx.err(
                        k.span(),
                        format!(
                            "unknown field `{}`, expected one of {}",
                            k.get_ref(),
                            expected.join(", ")
                        ),
                    );
                }
                gate_kind = Some(kind.get_ref().clone());
                if let Some(m) = &common.max_errors {
                    gate_policy.max_errors = cx.count(m, "max_errors", 1)? as u32;
                }
                if let Some(m) = &common.max_continues {
                    gate_policy.max_continues = cx.count(m, "max_continues", 1)? as u32;
                }
                gate_policy.retry_after =
                    cx.opt_duration(&common.retry_after, gate_policy.retry_after)?;
                gate_timeout = cx.opt_duration(&common.timeout, gate_timeout)?;
                if is_command {
                    let g = RawCommandGate::deserialize(toml::de::ValueDeserializer::from(value))
                        .map_err(read)?;
                    Some((
                        cx.template(&g.command, rollgate_deploy::GATE_PLACEHOLDERS)?,
                        gate_timeout,
                    ))
                } else {
                    None
                }
            }
        };
        let router = match &raw.router {
            None => None,
            Some(r) => {
                let r = r.get_ref();
                cx.kind(&r.kind, "router")?;
                Some((
                    cx.template(&r.switch, &["service", "targets", "color"])?,
                    cx.opt_duration(&r.timeout, Duration::from_secs(60))?,
                ))
            }
        };
        if matches!(strategy, Strategy::BlueGreen { .. }) && router.is_none() {
            return cx.err(
                raw.strategy.span(),
                "blue-green needs a [router] section with a switch command",
            );
        }
        if let Some(r) = &raw.router
            && !matches!(strategy, Strategy::BlueGreen { .. })
        {
            return cx.err(
                r.span(),
                "[router] is only used by the blue-green strategy; remove it or use kind = \"blue-green\"",
            );
        }
        let (ready_timeout, ready_interval) = match &raw.readiness {
            Some(r) => (
                cx.opt_duration(&r.timeout, Duration::from_secs(300))?,
                cx.opt_duration(&r.interval, Duration::from_secs(1))?,
            ),
            None => (Duration::from_secs(300), Duration::from_secs(1)),
        };
        let retry = cx.retry(raw.retry.as_ref(), RetryPolicy::default())?;
        let NotifyConfig {
            destinations: notify,
            retry: notify_retry,
            timeout: notify_timeout,
        } = cx.notify_config(&raw.notify, raw.notify_retry, path)?;
        Ok(Self {
            path: path.to_string(),
            service,
            artifact,
            previous,
            known,
            prechecks,
            targets,
            attributes: cx.attributes,
            gate_kind,
            strategy,
            defaults,
            gate_policy,
            deployer,
            gate,
            gate_timeout,
            router,
            ready_timeout,
            ready_interval,
            retry,
            notify,
            notify_retry,
            notify_timeout,
            text: text.to_string(),
        })
    }

    /// The rollout request for this plan.
    pub fn request(&self, actor: &str, idempotency_key: Option<String>) -> RolloutRequest {
        // The plan validated in `parse`; compiling it again cannot fail.
        let plan = self
            .strategy
            .compile(&self.targets, &self.defaults)
            .unwrap_or(rollgate_deploy::Plan {
                phases: Vec::new(),
                max_unavailable: None,
            });
        let mut req = RolloutRequest::new(&self.service, self.artifact.clone(), plan, actor)
            .with_gate_policy(self.gate_policy.clone());
        req.previous = self.previous.clone();
        req.idempotency_key = idempotency_key;
        req.known = self.known.clone();
        req.notify = self.notify.clone();
        req
    }

    /// The command deployer, running in `cwd`, knowing `known` artifacts by version.
    pub fn deployer(
        &self,
        cwd: Option<PathBuf>,
        known: impl IntoIterator<Item = Artifact>,
    ) -> Result<CommandDeployer, Error> {
        let (deploy, current, ready, timeout) = self.deployer.clone();
        let mut all: Vec<Artifact> = vec![self.artifact.clone()];
        all.extend(self.previous.clone());
        all.extend(self.known.clone());
        all.extend(known);
        Ok(CommandDeployer::new_with_attributes(
            &self.service,
            deploy,
            current,
            ready,
            timeout,
            self.attributes.clone(),
        )?
        .with_env(CommandEnv { cwd })
        .with_known(all))
    }

    /// Runs the plan's prechecks in order, in `cwd`. `Ok(None)`: all passed;
    /// `Ok(Some((name, reason)))`: the first that refused, with its standard
    /// output (or, when it printed nothing, its exit status and stderr).
    pub async fn run_prechecks(
        &self,
        cwd: Option<PathBuf>,
    ) -> Result<Option<(String, String)>, Error> {
        let full = format!("{}@{}", self.artifact.version, self.artifact.digest);
        let vars: std::collections::BTreeMap<&str, &str> = [
            ("service", self.service.as_str()),
            ("version", self.artifact.version.as_str()),
            ("digest", self.artifact.digest.as_str()),
            ("artifact", full.as_str()),
        ]
        .into_iter()
        .collect();
        let env = CommandEnv { cwd };
        for p in &self.prechecks {
            let line = p.command.render(&vars)?;
            let out = match rollgate_deploy::run_shell(&line, &env, p.timeout).await {
                Ok(out) => out,
                Err(reason) => return Ok(Some((p.name.clone(), reason))),
            };
            if out.code != Some(0) {
                let said = out.stdout.trim();
                let reason = if said.is_empty() {
                    format!("exited with {}: {}", out.status_text(), out.summary())
                } else {
                    said.to_string()
                };
                return Ok(Some((p.name.clone(), reason)));
            }
        }
        Ok(None)
    }

    /// The command gate, if the plan has one.
    pub fn gate(&self, cwd: Option<PathBuf>) -> Result<Option<CommandGate>, Error> {
        self.gate
            .as_ref()
            .map(|(cmd, timeout)| {
                Ok(CommandGate::new_with_attributes(
                    cmd.clone(),
                    *timeout,
                    self.attributes.clone(),
                )?
                .with_env(CommandEnv { cwd }))
            })
            .transpose()
    }

    /// The command router, if the plan has one.
    pub fn router(&self, cwd: Option<PathBuf>) -> Result<Option<CommandRouter>, Error> {
        let green = match &self.strategy {
            Strategy::BlueGreen { green, .. } => green.clone(),
            _ => Vec::new(),
        };
        self.router
            .as_ref()
            .map(|(cmd, timeout)| {
                Ok(CommandRouter::new_with_attributes(
                    cmd.clone(),
                    green.clone(),
                    *timeout,
                    self.attributes.clone(),
                )?
                .with_env(CommandEnv { cwd }))
            })
            .transpose()
    }

    /// Executor settings from the plan's readiness and retry sections.
    pub fn executor_config(&self, owner: &str) -> ExecutorConfig {
        ExecutorConfig::default()
            .with_owner(owner)
            .with_retry(self.retry.clone())
            .with_readiness(self.ready_timeout, self.ready_interval)
            .with_gate_timeout(self.gate_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn plan(strategy: &str) -> String {
        format!(
            r#"service = "web"
artifact = {{ version = "v2", digest = "{DIGEST}" }}
targets = ["web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-7", "web-8", "web-9", "web-10"]

[deployer]
kind = "command"
deploy = "echo {{version}} > /srv/{{target}}/current"
current = "cat /srv/{{target}}/current"
ready = "test -s /srv/{{target}}/current"
timeout = "30s"

[strategy]
{strategy}

[gate]
kind = "command"
command = "./check.sh {{service}} {{version}} {{percent}}"
"#
        )
    }

    fn err(text: &str) -> String {
        PlanFile::parse(text, "plan.toml").unwrap_err().to_string()
    }

    #[test]
    fn the_minimal_plan_from_the_issue_parses() {
        let p = PlanFile::parse(
            &plan("kind = \"canary\"\nsteps = [10, 50, 100]\nbake = \"5s\""),
            "plan.toml",
        )
        .unwrap();
        let req = p.request("alice", None);
        let sizes: Vec<usize> = req.plan.phases.iter().map(|p| p.targets.len()).collect();
        assert_eq!(sizes, [1, 4, 5]);
        assert!(
            req.plan
                .phases
                .iter()
                .all(|p| p.gate == GateUse::Required && p.bake == Duration::from_secs(5))
        );
        assert!(p.gate(None).unwrap().is_some());
    }

    #[test]
    fn retry_jitter_and_seed_are_read_from_the_plan() {
        let canary = "kind = \"canary\"\nsteps = [10, 100]";
        let with = |retry: &str| format!("{}\n[retry]\n{retry}\n", plan(canary));
        let web: Vec<TargetId> = (1..=10)
            .map(|i| format!("web-{i}").parse().unwrap())
            .collect();

        // Default: full jitter, seed 0, as RetryPolicy::default().
        let p = PlanFile::parse(&plan(canary), "plan.toml").unwrap();
        assert_eq!(p.executor_config("me").retry, RetryPolicy::default());

        // Full jitter with a seed: waits below the backoff, spread over the
        // targets, and the same for the same seed.
        let p = PlanFile::parse(&with("jitter = \"full\"\nseed = 20261206"), "plan.toml").unwrap();
        let retry = p.executor_config("me").retry;
        assert_eq!(retry, RetryPolicy::default().with_seed(20261206));
        let waits: Vec<Duration> = web.iter().map(|t| retry.delay(1, t)).collect();
        assert!(waits.iter().all(|w| *w <= retry.backoff(1)));
        let distinct: std::collections::BTreeSet<_> = waits.iter().collect();
        assert!(distinct.len() >= 9, "{waits:?}");
        let other = PlanFile::parse(&with("seed = 1"), "plan.toml").unwrap();
        let other = other.executor_config("me").retry;
        assert_ne!(
            waits,
            web.iter().map(|t| other.delay(1, t)).collect::<Vec<_>>()
        );

        // No jitter: exactly the exponential backoff.
        let p = PlanFile::parse(&with("jitter = \"none\"\nbackoff = \"2s\""), "plan.toml").unwrap();
        let retry = p.executor_config("me").retry;
        assert_eq!(retry.jitter, Jitter::None);
        assert!(
            web.iter()
                .all(|t| retry.delay(2, t) == Duration::from_secs(4))
        );
    }

    #[test]
    fn bad_retry_jitter_or_seed_is_named_with_position() {
        let canary = "kind = \"canary\"\nsteps = [10, 100]";
        let base = plan(canary);
        let line = base.lines().count() + 4;
        let e = err(&format!(
            "{base}\n[retry]\nattempts = 2\njitter = \"equal\"\n"
        ));
        assert!(
            e.contains(&format!(
                "plan.toml:{line}:10: unknown jitter \"equal\" (expected \"full\" or \"none\")"
            )),
            "{e}"
        );
        let e = err(&format!("{base}\n[retry]\nattempts = 2\nseed = -1\n"));
        assert!(
            e.contains(&format!(
                "plan.toml:{line}:8: seed must be at least 0, not -1"
            )),
            "{e}"
        );
        let e = err(&format!("{base}\n[retry]\nattempts = 2\njitter = 1\n"));
        assert!(e.contains(&format!("plan.toml:{line}:10:")), "{e}");
    }

    #[test]
    fn notify_destinations_are_read_from_the_plan() {
        let base = plan("kind = \"all-at-once\"");
        let text = format!(
            "{base}\n[[notify]]\nurl = \"https://hooks.example.com/rollgate\"\nevents = [\"rolled_back\", \"held\"]\nsecret_env = \"HOOK_SECRET\"\n\n\
             [[notify]]\nname = \"chat\"\nurl = \"https://hooks.slack.com/services/T0/B0/XYZ\"\nformat = \"slack\"\n\n\
             [[notify]]\nurl = \"http://127.0.0.1:9000/h\"\nsecret_file = \"secrets/hook\"\n\n\
             [notify_retry]\nattempts = 4\nbackoff = \"2s\"\nseed = 9\ntimeout = \"3s\"\n"
        );
        let p = PlanFile::parse(&text, "/etc/rollgate/plan.toml").unwrap();
        let n = &p.request("me", None).notify;
        assert_eq!(n.len(), 3);
        assert_eq!(
            n[0].events,
            [
                rollgate_deploy::NotifyKind::RolledBack,
                rollgate_deploy::NotifyKind::Held
            ]
        );
        assert_eq!(
            n[0].secret,
            Some(rollgate_deploy::SecretRef::Env("HOOK_SECRET".into()))
        );
        assert_eq!(n[0].format, rollgate_deploy::NotifyFormat::Json);
        assert_eq!(n[1].name, "chat");
        assert_eq!(n[1].format, rollgate_deploy::NotifyFormat::Slack);
        assert!(n[1].events.is_empty() && n[1].secret.is_none());
        assert_eq!(n[2].name, "http://127.0.0.1:9000/h");
        assert_eq!(
            n[2].secret,
            Some(rollgate_deploy::SecretRef::File(
                "/etc/rollgate/secrets/hook".into()
            )),
            "a relative secret file is found next to the plan"
        );
        assert_eq!(p.notify_retry.max_attempts, 4);
        assert_eq!(p.notify_retry.initial_backoff, Duration::from_secs(2));
        assert_eq!(p.notify_retry.seed, 9);
        assert_eq!(p.notify_timeout, Duration::from_secs(3));
    }

    #[test]
    fn bad_notify_tables_are_named_with_position() {
        let base = plan("kind = \"all-at-once\"");
        // The line of each case's first key.
        let line = base.lines().count() + 3;
        let with = |t: &str| err(&format!("{base}\n[[notify]]\n{t}\n"));
        let e = with(
            "url = \"http://h/x\"\nsecret_env = \"S\"\nevents = [\"started\", \"rolledback\"]",
        );
        assert!(
            e.contains(&format!(
                "plan.toml:{}:22: unknown notify event \"rolledback\"; valid events: started, phase_promoted, held, rolled_back, rollback_failed, finished",
                line + 2
            )),
            "{e}"
        );
        let e = with("url = \"http://h/x\"");
        assert!(
            e.contains(&format!(
                "plan.toml:{}:1: a json notify destination needs secret_env or secret_file",
                line - 1
            )),
            "{e}"
        );
        let e = with("url = \"http://h/x\"\nsecret_env = \"S\"\nsecret_file = \"f\"");
        assert!(
            e.contains(&format!(
                "plan.toml:{}:15: give secret_env or secret_file, not both",
                line + 2
            )),
            "{e}"
        );
        let e = with("url = \"ftp://user:planted-pw@h/x\"\nsecret_env = \"S\"");
        assert!(
            e.contains(&format!("plan.toml:{line}:7: notify url ftp://***@h/x is not an http:// or https:// URL with a host")),
            "{e}"
        );
        assert!(!e.contains("planted-pw"), "{e}");
        let e = with("url = \"http://h/x\"\nformat = \"teams\"");
        assert!(
            e.contains(&format!(
                "plan.toml:{}:10: unknown notify format \"teams\" (expected \"json\" or \"slack\")",
                line + 1
            )),
            "{e}"
        );
        let e = with("url = \"http://h/x\"\nsecret_env = \"NOT-A-NAME\"");
        assert!(e.contains("is not an environment variable name"), "{e}");
        let e = with("url = \"http://h/x\"\nsecret_env = \"S\"\nevents = []");
        assert!(e.contains("notify events is empty"), "{e}");
        let e = with("url = \"http://h/x\"\nsecret = \"inline\"");
        assert!(
            e.contains(&format!("plan.toml:{}:1:", line + 1))
                && e.contains("unknown field `secret`"),
            "{e}"
        );
    }

    #[test]
    fn malformed_toml_names_line_and_column() {
        let e = err("service = \"web\"\nartifact = { version = \"v2\" digest = \"x\" }\n");
        assert!(e.starts_with("plan.toml:2:"), "{e}");
    }

    #[test]
    fn unknown_strategy_is_named_with_position() {
        let e = err(&plan("kind = \"yolo\""));
        assert!(
            e.contains("plan.toml:13:8: unknown strategy \"yolo\""),
            "{e}"
        );
    }

    #[test]
    fn percentages_outside_range_are_rejected_with_position() {
        let e = err(&plan("kind = \"canary\"\nsteps = [10, 150]"));
        assert!(
            e.contains("plan.toml:14:14: percentage 150 is outside 0-100"),
            "{e}"
        );
        let e = err(&plan("kind = \"canary\"\nsteps = [-5]"));
        assert!(e.contains("outside 0-100"), "{e}");
        // Steps that go down are pointed at on their own line, not the header.
        let e = err(&plan("kind = \"canary\"\nsteps = [50, 10, 100]"));
        assert!(e.contains("plan.toml:14:9: steps must increase"), "{e}");
    }

    #[test]
    fn a_router_outside_blue_green_is_rejected_where_it_is() {
        let text = format!(
            "{}\n[router]\nkind = \"command\"\nswitch = \"true\"\n",
            plan("kind = \"canary\"\nsteps = [10, 100]")
        );
        let e = err(&text);
        assert!(
            e.contains("[router] is only used by the blue-green strategy"),
            "{e}"
        );
        assert!(e.starts_with("plan.toml:"), "{e}");
    }

    #[test]
    fn empty_and_duplicate_targets_are_rejected() {
        let text = plan("kind = \"all-at-once\"");
        let e = err(&text.replace(r#"["web-1", "web-2", "web-3", "web-4", "web-5", "web-6", "web-7", "web-8", "web-9", "web-10"]"#, "[]"));
        assert!(
            e.contains("plan.toml:3:11: the target list is empty"),
            "{e}"
        );
        let e = err(&text.replace(r#""web-2", "web-3""#, r#""web-2", "web-2""#));
        assert!(e.contains("target web-2 is listed twice"), "{e}");
    }

    #[test]
    fn unknown_fields_and_placeholders_are_rejected() {
        let e = err(&plan(
            "kind = \"canary\"\nstep = [10]\nsteps = [10]\nbaek = \"5s\"",
        ));
        assert!(e.contains("baek"), "{e}");
        let e = err(&plan("kind = \"all-at-once\"").replace("{percent}", "{percnt}"));
        assert!(e.contains("unknown placeholder {percnt}"), "{e}");
    }

    #[test]
    fn bad_durations_and_digests_are_explained() {
        let e = err(&plan("kind = \"all-at-once\"\nbake = \"5 parsecs\""));
        assert!(e.contains("bad duration \"5 parsecs\""), "{e}");
        let e = err(&plan("kind = \"all-at-once\"").replace(DIGEST, "sha256:abc"));
        assert!(
            e.contains("plan.toml:2:39: digest \"sha256:abc\" must be"),
            "{e}"
        );
    }

    #[test]
    fn every_strategy_kind_parses() {
        for s in [
            "kind = \"all-at-once\"",
            "kind = \"rolling\"\nmax_unavailable = 3",
            "kind = \"rolling\"\nmin_healthy = 8",
            "kind = \"linear\"\nstep = 20",
            "kind = \"exponential\"\nstart = 10\nfactor = 2",
            "kind = \"rings\"\nrings = [{ name = \"a\", targets = [\"web-1\"] }, { name = \"b\", targets = [\"web-2\", \"web-3\", \"web-4\", \"web-5\", \"web-6\", \"web-7\", \"web-8\", \"web-9\", \"web-10\"] }]",
        ] {
            PlanFile::parse(&plan(s), "plan.toml").unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        let bg = plan(
            "kind = \"blue-green\"\ngreen = [\"web-1\", \"web-2\", \"web-3\", \"web-4\", \"web-5\"]",
        );
        let e = err(&bg);
        assert!(e.contains("needs a [router]"), "{e}");
        let bg = format!(
            "{bg}\n[router]\nkind = \"command\"\nswitch = \"ln -sfn {{color}} /srv/live\"\n"
        );
        PlanFile::parse(&bg, "plan.toml").unwrap();
    }

    const TABLES: &str = r#"service = "dns"
artifact = { version = "v2", digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111" }
targets = [{ name = "dns-1", addr = "127.0.0.1:18081" }, { name = "dns-2", addr = "127.0.0.1:18082", zone = "b" }]

[deployer]
kind = "command"
deploy = "./start.sh {target} {addr} {version}"
current = "cat {target}.version"
ready = "./probe.sh {addr}"

[strategy]
kind = "canary"
steps = [50, 100]
"#;

    #[test]
    fn targets_as_tables_carry_attributes_into_the_templates() {
        let p = PlanFile::parse(TABLES, "plan.toml").unwrap();
        assert_eq!(p.targets.len(), 2);
        let t1: TargetId = "dns-1".parse().unwrap();
        assert_eq!(p.attributes[&t1]["addr"], "127.0.0.1:18081");
        assert!(!p.attributes[&t1].contains_key("zone"));
        p.deployer(None, []).unwrap();
        // Plain names and tables mix; a plain name has no attributes.
        let mixed = TABLES.replace(
            r#"{ name = "dns-1", addr = "127.0.0.1:18081" }"#,
            r#""dns-1""#,
        );
        let e = err(&mixed);
        assert_eq!(
            e,
            "plan.toml:7:10: {addr}: target dns-1 has no attribute \"addr\""
        );
        let plain = mixed.replace("{addr}", "{target}");
        PlanFile::parse(&plain, "plan.toml").unwrap();
    }

    #[test]
    fn an_attribute_missing_on_one_target_is_named_where_the_template_uses_it() {
        let e = err(&TABLES.replace("{target} {addr} {version}", "{target} {zone}"));
        assert_eq!(
            e,
            "plan.toml:7:10: {zone}: target dns-1 has no attribute \"zone\""
        );
        let e = err(&TABLES.replace("./probe.sh {addr}", "./probe.sh {adr}"));
        assert!(e.starts_with("plan.toml:9:9: "), "{e}");
        assert!(e.contains("unknown placeholder {adr}"), "{e}");
    }

    #[test]
    fn bad_attributes_are_refused_with_position() {
        let e = err(&TABLES.replace(r#"zone = "b""#, r#"zone = 3"#));
        assert!(e.starts_with("plan.toml:3:"), "{e}");
        assert!(e.contains("attributes are strings"), "{e}");
        let e = err(&TABLES.replace(r#"zone = "b""#, r#"version = "b""#));
        assert!(e.contains("would shadow the placeholder {version}"), "{e}");
        let e = err(&TABLES.replace(r#"zone = "b""#, r#"zone = "b; rm -rf /""#));
        assert!(e.contains("spliced into shell commands"), "{e}");
        let e = err(&TABLES.replace(r#"{ name = "dns-1", "#, "{ "));
        assert!(e.contains("missing field `name`"), "{e}");
    }

    const CANARY: GateKind<'static> = GateKind {
        name: "canary",
        keys: &["analysis"],
    };

    #[test]
    fn other_gate_kinds_are_left_to_the_caller_with_the_shared_limits() {
        let text =
            format!("{TABLES}\n[gate]\nkind = \"canary\"\nmax_errors = 4\nanalysis = \"a.toml\"\n");
        let e = err(&text);
        assert!(
            e.contains("plan.toml:16:8: unknown gate kind \"canary\" (known: \"command\")"),
            "{e}"
        );
        let p = PlanFile::parse_with_gate_kinds(&text, "plan.toml", &[CANARY]).unwrap();
        assert_eq!(p.gate_kind.as_deref(), Some("canary"));
        assert_eq!(p.gate_policy.max_errors, 4);
        assert!(p.gate(None).unwrap().is_none());
        assert!(
            p.request("a", None)
                .plan
                .phases
                .iter()
                .all(|ph| ph.gate == GateUse::Required)
        );
        let e = PlanFile::parse_with_gate_kinds(
            &text.replace("kind = \"canary\"\nmax", "kind = \"canry\"\nmax"),
            "plan.toml",
            &[CANARY],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("(known: \"command\", \"canary\")"), "{e}");
        // A command gate still refuses fields it does not know, where they are.
        let cmd = format!(
            "{TABLES}\n[gate]\nkind = \"command\"\ncommand = \"true {{addr}}\"\nanalysis = \"a.toml\"\n"
        );
        let e = err(&cmd);
        assert!(
            e.starts_with("plan.toml:18:1: unknown field `analysis`"),
            "{e}"
        );
        // Another kind's unknown keys too, naming what it reads.
        let e = PlanFile::parse_with_gate_kinds(
            &text.replace("analysis", "analysys"),
            "plan.toml",
            &[CANARY],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "plan.toml:18:1: unknown field `analysys`, expected one of `kind`, `timeout`, \
             `max_errors`, `max_continues`, `retry_after`, `analysis`"
        );
        // The shared keys are read from the one table, with their positions.
        let e = PlanFile::parse_with_gate_kinds(
            &text.replace("max_errors = 4", "max_errors = 0"),
            "plan.toml",
            &[CANARY],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("plan.toml:17:14: max_errors must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn known_artifacts_are_read_and_clashes_are_named() {
        let v0 = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let text = format!(
            "{}\n[[known]]\nversion = \"v0\"\ndigest = \"{v0}\"\n",
            plan("kind = \"all-at-once\"")
        );
        let p = PlanFile::parse(&text, "plan.toml").unwrap();
        assert_eq!(p.known.len(), 1);
        assert_eq!(p.request("a", None).known[0].version, "v0");
        let clash = format!(
            "{}\n[[known]]\nversion = \"v2\"\ndigest = \"{v0}\"\n",
            plan("kind = \"all-at-once\"")
        );
        let e = err(&clash);
        assert!(e.starts_with("plan.toml:"), "{e}");
        assert!(e.contains("clashes with v2"), "{e}");
    }

    /// Every message the plan file gives that no other test pins, with its
    /// exact position: written before the parser was split into sections,
    /// to prove the split kept them.
    #[test]
    fn every_plan_message_keeps_its_text_and_position() {
        let all = plan("kind = \"all-at-once\"");
        let canary = plan("kind = \"canary\"\nsteps = [10, 100]");
        let v1 = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
        let bg = |s: &str| {
            format!(
                "{}\n[router]\nkind = \"command\"\nswitch = \"true {{color}}\"\n",
                plan(&format!("kind = \"blue-green\"\n{s}"))
            )
        };
        let cases: Vec<(String, &str)> = vec![
            (
                all.replace("service = \"web\"", "service = \"my web\""),
                "plan.toml:1:11: service must be a non-empty name without spaces",
            ),
            (
                all.replace(
                    "\ntargets",
                    &format!("\nprevious = {{ version = \"v1\", digest = \"{DIGEST}\" }}\ntargets"),
                ),
                "plan.toml:3:12: previous is the same artifact as artifact",
            ),
            (
                all.replace("version = \"v2\"", "version = \"v 2\""),
                "plan.toml:2:24: artifact version \"v 2\" contains ' '",
            ),
            (
                all.replace(
                    "\ntargets",
                    &format!("\nknown = [{{ version = \"v2\", digest = \"{v1}\" }}]\ntargets"),
                ),
                "plan.toml:3:10: known artifact v2 (222222222222) clashes with v2 (111111111111): a version names one digest",
            ),
            (
                all.replace("\"web-2\", \"web-3\"", "\"web-2\", \"web-2\""),
                "plan.toml:3:30: target web-2 is listed twice",
            ),
            (
                all.replace("\"web-2\", \"web-3\"", "\"web-2\", \"web 3\""),
                "plan.toml:3:30: target name \"web 3\" contains ' '; use letters, digits and -_.:/@",
            ),
            (
                all.replace("kind = \"command\"\ndeploy", "kind = \"ssh\"\ndeploy"),
                "plan.toml:6:8: unknown deployer kind \"ssh\" (known: \"command\")",
            ),
            (
                all.replace("timeout = \"30s\"", "timeout = \"0s\""),
                "plan.toml:10:11: deployer timeout must be above zero",
            ),
            (
                all.replace("./check.sh", "./check.sh {previous_color}"),
                "plan.toml:17:11: \"./check.sh {previous_color} {service} {version} {percent}\": unknown placeholder {previous_color} (known: {rollout} {service} {version} {digest} {percent} {phase} {previous_version} {previous_digest})",
            ),
            (
                plan("kind = \"canary\""),
                "plan.toml:13:8: strategy \"canary\" needs `steps`",
            ),
            (
                plan("kind = \"linear\""),
                "plan.toml:13:8: strategy \"linear\" needs `step`",
            ),
            (
                plan("kind = \"linear\"\nstep = 0"),
                "plan.toml:12:1: linear step must be above 0%",
            ),
            (
                plan("kind = \"exponential\"\nstart = 10\nfactor = 1"),
                "plan.toml:12:1: exponential factor 1 must be above 1",
            ),
            (
                plan("kind = \"blue-green\""),
                "plan.toml:13:8: strategy \"blue-green\" needs `green`",
            ),
            (
                plan("kind = \"rings\""),
                "plan.toml:13:8: strategy \"rings\" needs `rings`",
            ),
            (
                plan("kind = \"rolling\"\nmin_healthy = 10"),
                "plan.toml:14:15: min_healthy 10 leaves no target to update (of 10)",
            ),
            (
                plan("kind = \"rolling\"\nmax_unavailable = 2\nmin_healthy = 1"),
                "plan.toml:14:19: give max_unavailable or min_healthy, not both",
            ),
            (
                plan("kind = \"rolling\"\nmax_unavailable = 0"),
                "plan.toml:14:19: max_unavailable must be at least 1, not 0",
            ),
            (
                plan("kind = \"all-at-once\"\nmax_failed = -1"),
                "plan.toml:14:14: max_failed must be at least 0, not -1",
            ),
            (
                plan("kind = \"all-at-once\"\nconcurrency = 0"),
                "plan.toml:14:15: concurrency must be at least 1, not 0",
            ),
            (
                bg("green = [\"web-11\"]"),
                "plan.toml:14:9: blue-green blue + green must be exactly the plan's targets",
            ),
            (
                bg("green = [\"web-1\"]\nblue = [\"web-2\"]"),
                "plan.toml:14:9: blue-green blue + green must be exactly the plan's targets",
            ),
            (
                plan("kind = \"rings\"\nrings = [{ name = \"a\", targets = [\"web-1\"] }]"),
                "plan.toml:14:9: the rings must hold exactly the plan's targets",
            ),
            (
                bg("green = [\"web-1\"]")
                    .replace("kind = \"command\"\nswitch", "kind = \"http\"\nswitch"),
                "plan.toml:21:8: unknown router kind \"http\" (known: \"command\")",
            ),
            (
                bg("green = [\"web-1\"]").replace("{color}", "{target}"),
                "plan.toml:22:10: \"true {target}\": unknown placeholder {target} (known: {service} {targets} {color})",
            ),
            (
                format!("{canary}max_continues = 0\n"),
                "plan.toml:19:17: max_continues must be at least 1, not 0",
            ),
            (
                format!("{canary}timeout = \"soon\"\n"),
                "plan.toml:19:11: bad duration \"soon\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!("{canary}retry_after = \"-1s\"\n"),
                "plan.toml:19:15: bad duration \"-1s\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                canary.replace("kind = \"command\"\ncommand", "kind = \"script\"\ncommand"),
                "plan.toml:17:8: unknown gate kind \"script\" (known: \"command\")",
            ),
            (
                canary.replace("command = ", "commnd = "),
                "plan.toml:18:1: unknown field `commnd`, expected one of `kind`, `timeout`, `max_errors`, `max_continues`, `retry_after`, `command`",
            ),
            (
                format!("{canary}\n[readiness]\ntimeout = \"1 fortnight\"\n"),
                "plan.toml:21:11: bad duration \"1 fortnight\": unknown time unit \"fortnight\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations) (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!("{canary}\n[readiness]\ninterval = \"x\"\n"),
                "plan.toml:21:12: bad duration \"x\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!("{canary}\n[retry]\nattempts = 0\n"),
                "plan.toml:21:12: attempts must be at least 1, not 0",
            ),
            (
                format!("{canary}\n[retry]\nbackoff = \"1\"\n"),
                "plan.toml:21:11: bad duration \"1\": time unit needed, for example 1sec or 1ms (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!("{canary}\n[retry]\nmax_backoff = \"y\"\n"),
                "plan.toml:21:15: bad duration \"y\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!("{canary}\n[[precheck]]\ncommand = \"./ok.sh {{target}}\"\n"),
                "plan.toml:21:11: \"./ok.sh {target}\": unknown placeholder {target} (known: {service} {version} {digest} {artifact})",
            ),
            (
                format!("{canary}\n[[precheck]]\ncommand = \"./ok.sh\"\ntimeout = \"z\"\n"),
                "plan.toml:22:11: bad duration \"z\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                format!(
                    "{canary}\n[[notify]]\nurl = \"http://h/x\"\nsecret_env = \"S\"\nname = \" \"\n"
                ),
                "plan.toml:23:8: notify name is empty",
            ),
            (
                format!("{canary}\n[[notify]]\nurl = \"http://h/x\"\nsecret_file = \" \"\n"),
                "plan.toml:22:15: secret_file is empty",
            ),
            (
                format!("{canary}\n[[notify]]\nurl = \"https://\"\nsecret_env = \"S\"\n"),
                "plan.toml:21:7: notify url https:// is not an http:// or https:// URL with a host",
            ),
            (
                format!("{canary}\n[notify_retry]\ntimeout = \"0s\"\n"),
                "plan.toml:21:11: timeout must be more than 0s",
            ),
            (
                format!("{canary}\n[notify_retry]\nattempts = 0\n"),
                "plan.toml:21:12: attempts must be at least 1, not 0",
            ),
            (
                format!("{canary}\n[notify_retry]\njitter = \"half\"\n"),
                "plan.toml:21:10: unknown jitter \"half\" (expected \"full\" or \"none\")",
            ),
            (
                TABLES.replace("zone = \"b\"", "\"z-one\" = \"b\""),
                "plan.toml:3:58: target attribute \"z-one\": names are letters, digits and _",
            ),
            (
                TABLES.replace("zone = \"b\"", "zone = \"\""),
                "plan.toml:3:58: target attribute zone = \"\": values are 1 to 256 ASCII letters, digits or . _ - : / @ + = , % (they are spliced into shell commands)",
            ),
            (
                TABLES.replace("{ name = \"dns-1\", ", "{ name = \"dns 1\", "),
                "plan.toml:3:12: target name \"dns 1\" contains ' '; use letters, digits and -_.:/@",
            ),
            (
                TABLES.replace("[deployer]", "[deployer]\nssh = true"),
                "plan.toml:6:1: unknown field `ssh`, expected one of `kind`, `deploy`, `current`, `ready`, `timeout`",
            ),
            (
                format!("{TABLES}\n[gate]\nkind = \"command\"\ncommand = \"./g.sh {{zone}}\"\n"),
                "plan.toml:17:11: {zone}: target dns-1 has no attribute \"zone\"",
            ),
            (
                "targets = [\"a\"]\n".to_string(),
                "plan.toml:1:1: missing field `service`",
            ),
            (String::new(), "plan.toml:1:1: missing field `service`"),
        ];
        for (text, want) in &cases {
            let e = err(text);
            assert_eq!(&e, want);
        }
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé\nx", 0), (1, 1));
        assert_eq!(line_col("ab\ncdé\nx", 3), (2, 1));
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("ab\ncdé\nx", 7), (2, 4));
    }
}
