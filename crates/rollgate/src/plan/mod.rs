//! The plan file: one TOML format for the `rollgate` CLI and for programs
//! that embed rollgate, read here where deploy, canary and telemetry meet.
//! [`Plan::load`] reads and validates it: `service`, `artifact`,
//! `previous`, `[[known]]`, `[[precheck]]`, `targets` (names, or tables
//! whose string attributes are placeholders such as `{addr}`),
//! `[deployer]`, `[strategy]`, `[router]`, `[gate]` (`command` or
//! `canary`), `[readiness]`, `[retry]`, `[[notify]]` and `[notify_retry]`.
//! Every error names `file:line:column`. [`Plan::executor`] builds the
//! [`Executor`](rollgate_deploy::Executor) it describes, ready to run.
//!
//! ```
//! use rollgate::plan::Plan;
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
//! let plan = Plan::parse(text, "plan.toml")?;
//! assert_eq!(plan.request("alice", None).plan.phases.len(), 2);
//! let err = Plan::parse("service = ", "bad.toml").unwrap_err();
//! assert!(err.to_string().starts_with("bad.toml:1:"), "{err}");
//! # Ok::<(), rollgate::deploy::Error>(())
//! ```
//!
//! A canary gate (`[gate] kind = "canary"`) judges each phase with the
//! canary engine on the targets' own metrics:
//!
//! ```toml
//! targets = [{ name = "dns-1", addr = "127.0.0.1:18081" }, { name = "dns-2", addr = "127.0.0.1:18082" }]
//!
//! [gate]
//! kind = "canary"
//! analysis = "analysis.toml"   # relative to the plan file; the format of `rollgate analyze --config`
//! lookback = "20s"             # window judged at the end of each bake (default: the bake)
//! source = "scrape"            # "scrape" (default) | "prometheus"
//! max_errors = 3               # as for command gates
//!
//! [gate.scrape]
//! url = "http://{addr}/metrics"   # default; {target} and any target attribute
//! interval = "1s"                 # default 5s
//!
//! [gate.prometheus]            # only with source = "prometheus"
//! url = "http://127.0.0.1:9090"
//! instance_label = "instance"  # matched against the cohort's {addr} values
//!
//! [gate.metrics.latency_ms]    # one table per metric in the analysis file
//! histogram = "http_request_duration_seconds"
//! scale = 1000
//! labels = { route = "/records" }
//!
//! [gate.metrics.errors]        # events out of trials
//! events = { counter = "http_requests_total", labels = { code = "500" } }
//! trials = { counter = "http_requests_total" }
//! ```
//!
//! Cohorts come from the executor: the canary is the targets on the new
//! artifact, the baseline the targets still on the previous one. When no
//! target is left on the previous artifact (the last phase of a canary),
//! the baseline is the one judged by the last gate decision before that
//! phase began: the same targets over the same window, re-read from what
//! was scraped then (or asked of Prometheus again). A plan whose first
//! gated phase already holds every target has no baseline: its gate is
//! inconclusive and holds.
//!
//! That baseline, and with `source = "scrape"` every scrape, is kept in the
//! gate's memory only (nothing is written to the state store): a last
//! phase resumed by another controller process has no baseline, and its
//! gate holds for a person to promote or abort.
//!
//! [`Plan::shadow`] judges two named cohorts through the same source
//! without a rollout (`rollgate analyze --plan`).
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("analysis.toml"), r#"
//! [[metrics]]
//! name = "errors"
//! kind = "count"
//! bad = "increase"
//! threshold = { ratio_max = 0.01 }
//! "#)?;
//! let plan = dir.path().join("plan.toml");
//! std::fs::write(&plan, r#"
//! service = "dns"
//! artifact = { version = "v2", digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222" }
//! targets = [{ name = "dns-1", addr = "127.0.0.1:18081" }, { name = "dns-2", addr = "127.0.0.1:18082" }]
//! [deployer]
//! kind = "command"
//! deploy = "./deploy.sh {target} {addr} {version}"
//! current = "cat {target}.version"
//! ready = "./probe.sh {addr}"
//! [strategy]
//! kind = "canary"
//! steps = [50, 100]
//! bake = "30s"
//! [gate]
//! kind = "canary"
//! analysis = "analysis.toml"
//! [gate.metrics.errors]
//! events = { counter = "http_requests_total", labels = { code = "500" } }
//! trials = { counter = "http_requests_total" }
//! "#)?;
//! let plan = rollgate::plan::Plan::load(&plan)?;
//! assert_eq!(plan.gate_kind.as_deref(), Some("canary"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod canary;
mod commands;
mod executor;
mod file;
mod gate;
mod notify;
mod strategy;
mod targets;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rollgate_canary::AnalysisConfig;
use rollgate_deploy::{
    Artifact, CommandDeployer, CommandEnv, CommandGate, CommandRouter, CommandTemplate, Error,
    ExecutorConfig, Gate, GatePolicy, PhaseDefaults, RetryPolicy, RolloutRequest, Strategy,
    TargetAttributes, TargetId,
};

pub use canary::Shadow;
pub use executor::ExecutorBuilder;
pub use gate::{CanarySpec, SourceSpec};
pub use notify::{NotifyConfig, dispatch_config};
pub use targets::{PRECHECK_PLACEHOLDERS, Precheck};

/// A validated plan file: the rollout it asks for, and everything needed to
/// build the parts that run it ([`deployer`](Self::deployer),
/// [`gate`](Self::gate), [`router`](Self::router),
/// [`executor_config`](Self::executor_config)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Plan {
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
    /// The `[gate]` kind (`command` or `canary`), when the plan has a gate.
    pub gate_kind: Option<String>,
    /// The strategy.
    pub strategy: Strategy,
    /// Per-phase settings.
    pub defaults: PhaseDefaults,
    /// Gate limits.
    pub gate_policy: GatePolicy,
    /// The canary gate, when `[gate] kind = "canary"`.
    pub canary: Option<CanarySpec>,
    /// Where notifications go (`[[notify]]`).
    pub notify: Vec<rollgate_deploy::Destination>,
    /// Waits between notification attempts (`[notify_retry]`).
    pub notify_retry: RetryPolicy,
    /// Longest one notification attempt may take (`[notify_retry] timeout`).
    pub notify_timeout: Duration,
    /// The plan's text, kept so a resumed rollout rebuilds the same deployer and gate.
    pub text: String,
    deployer: commands::DeployerSpec,
    command_gate: Option<CommandTemplate>,
    gate_timeout: Duration,
    router: Option<(CommandTemplate, Duration)>,
    ready_timeout: Duration,
    ready_interval: Duration,
    retry: RetryPolicy,
}

/// Reads `path` for a plan, naming it when it cannot.
fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::PlanFile {
        path: path.display().to_string(),
        reason: format!("cannot read: {e}"),
    })
}

impl Plan {
    /// Reads and validates a plan file (and a canary gate's analysis file).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        Self::parse(&read(path)?, &path.display().to_string())
    }

    /// Validates plan text; `path` names it in messages and locates the
    /// analysis file (relative to its directory).
    pub fn parse(text: &str, path: &str) -> Result<Self, Error> {
        Self::parse_in(text, path, Path::new(""))
    }

    /// As [`parse`](Self::parse), with a relative `path` taken from `cwd`
    /// (a recorded plan resumed from another directory).
    pub fn parse_in(text: &str, path: &str, cwd: &Path) -> Result<Self, Error> {
        let dir = cwd.join(Path::new(path).parent().unwrap_or(Path::new("")));
        file::parse(text, path, &dir, None)
    }

    /// As [`load`](Self::load), but a canary gate judges with `analysis`
    /// (read by the caller from `analysis_path`) instead of the analysis
    /// file the plan names, which is then not read: `rollgate analyze
    /// --config A.toml --plan PLAN.toml`. Metrics on one side only are
    /// errors naming `analysis_path`.
    pub fn load_with_analysis(
        path: impl AsRef<Path>,
        analysis_path: &Path,
        analysis: AnalysisConfig,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        Self::parse_with_analysis(
            &read(path)?,
            &path.display().to_string(),
            analysis_path,
            analysis,
        )
    }

    /// As [`parse`](Self::parse), with a canary gate's analysis given as in
    /// [`load_with_analysis`](Self::load_with_analysis): no file is read.
    pub fn parse_with_analysis(
        text: &str,
        path: &str,
        analysis_path: &Path,
        analysis: AnalysisConfig,
    ) -> Result<Self, Error> {
        let given = Some((analysis_path.to_path_buf(), analysis));
        file::parse(text, path, Path::new(""), given)
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
        let d = &self.deployer;
        let mut all: Vec<Artifact> = vec![self.artifact.clone()];
        all.extend(self.previous.clone());
        all.extend(self.known.clone());
        all.extend(known);
        Ok(CommandDeployer::new_with_attributes(
            &self.service,
            d.deploy.clone(),
            d.current.clone(),
            d.ready.clone(),
            d.timeout,
            self.attributes.clone(),
        )?
        .with_env(CommandEnv { cwd })
        .with_known(all))
    }

    /// The gate: a command gate (run in `cwd`), a canary gate (which starts
    /// scraping now, so call it inside a tokio runtime), or none.
    pub fn gate(&self, cwd: Option<PathBuf>) -> Result<Option<Arc<dyn Gate>>, Error> {
        if let Some(spec) = &self.canary {
            return Ok(Some(Arc::new(canary::PlanCanaryGate::new(self, spec)?)));
        }
        let Some(cmd) = &self.command_gate else {
            return Ok(None);
        };
        let gate = CommandGate::new_with_attributes(
            cmd.clone(),
            self.gate_timeout,
            self.attributes.clone(),
        )?
        .with_env(CommandEnv { cwd });
        Ok(Some(Arc::new(gate)))
    }

    /// The command router (blue-green), run in `cwd`, if the plan has one.
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

    /// Executor settings from the plan's readiness, retry and gate sections.
    pub fn executor_config(&self, owner: &str) -> ExecutorConfig {
        ExecutorConfig::default()
            .with_owner(owner)
            .with_retry(self.retry.clone())
            .with_readiness(self.ready_timeout, self.ready_interval)
            .with_gate_timeout(self.gate_timeout)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrape::MetricMapping;

    const ANALYSIS: &str = r#"
[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"

[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
"#;

    const PLAN: &str = r#"service = "dns"
artifact = { version = "v2", digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222" }
targets = [{ name = "dns-1", addr = "127.0.0.1:18081" }, { name = "dns-2", addr = "127.0.0.1:18082" }]

[deployer]
kind = "command"
deploy = "./deploy.sh {target} {addr} {version}"
current = "cat {target}.version"
ready = "./probe.sh {addr}"

[strategy]
kind = "canary"
steps = [50, 100]
bake = "30s"

[gate]
kind = "canary"
analysis = "analysis.toml"
lookback = "20s"
source = "scrape"
max_errors = 3

[gate.scrape]
url = "http://{addr}/metrics"
interval = "1s"

[gate.metrics.latency_ms]
histogram = "http_request_duration_seconds"
scale = 1000
labels = { route = "/records" }

[gate.metrics.errors]
events = { counter = "http_requests_total", labels = { code = "500" } }
trials = { counter = "http_requests_total" }
"#;

    fn parse(plan: &str, analysis: Option<&str>) -> Result<Plan, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        if let Some(a) = analysis {
            std::fs::write(dir.path().join("analysis.toml"), a).expect("write");
        }
        let path = dir.path().join("plan.toml");
        std::fs::write(&path, plan).expect("write");
        Plan::load(&path).map_err(|e| {
            let s = e.to_string();
            s.replace(&format!("{}/", dir.path().display()), "")
        })
    }

    #[test]
    fn the_contract_plan_parses() {
        let p = parse(PLAN, Some(ANALYSIS)).expect("parses");
        let c = p.canary.expect("canary");
        assert_eq!(c.lookback, Duration::from_secs(20));
        assert_eq!(
            c.source,
            SourceSpec::Scrape {
                url: "http://{addr}/metrics".into(),
                interval: Duration::from_secs(1)
            }
        );
        assert_eq!(p.gate_policy.max_errors, 3);
        assert!(matches!(
            &c.metrics["latency_ms"],
            MetricMapping::Histogram { scale, labels, .. } if *scale == 1000.0 && labels["route"] == "/records"
        ));
        // The same plan on Prometheus.
        let prom = PLAN
            .replace("source = \"scrape\"", "source = \"prometheus\"")
            .replace(
                "[gate.scrape]\nurl = \"http://{addr}/metrics\"\ninterval = \"1s\"",
                "[gate.prometheus]\nurl = \"http://127.0.0.1:9090\"\ninstance_label = \"instance\"",
            );
        let p = parse(&prom, Some(ANALYSIS)).expect("parses");
        assert!(matches!(
            p.canary.expect("canary").source,
            SourceSpec::Prometheus { .. }
        ));
    }

    #[test]
    fn errors_name_the_file_the_position_and_the_metric() {
        let cases: Vec<(String, Option<&str>, &str)> = vec![
            (PLAN.into(), None, "plan.toml:18:12: analysis file analysis.toml cannot be read"),
            (
                PLAN.into(),
                Some(&*Box::leak(format!("{ANALYSIS}\n[[metrics]]\nname = \"cpu\"\nkind = \"latency\"\nbad = \"increase\"\n").into_boxed_str())),
                "metric \"cpu\" of analysis file analysis.toml has no [gate.metrics.cpu] table",
            ),
            (
                format!("{PLAN}\n[gate.metrics.cpu]\nhistogram = \"cpu\"\n"),
                Some(ANALYSIS),
                "plan.toml:36:15: metric \"cpu\" is not in analysis file analysis.toml",
            ),
            (PLAN.replace("lookback", "lookbak"), Some(ANALYSIS), "plan.toml:19:1: unknown field `lookbak`"),
            (PLAN.replace("\"scrape\"", "\"statsd\""), Some(ANALYSIS), "plan.toml:20:10: unknown source \"statsd\""),
            (PLAN.replace("{addr}/metrics", "{adr}/metrics"), Some(ANALYSIS), "plan.toml:24:7: \"http://{adr}/metrics\": unknown placeholder {adr}"),
            (
                PLAN.replace("histogram = \"http_request_duration_seconds\"", "events = { counter = \"a\" }\ntrials = { counter = \"b\" }"),
                Some(ANALYSIS),
                "metric \"latency_ms\" is a latency metric in analysis.toml: read it from a histogram",
            ),
            (
                PLAN.replace("events = { counter = \"http_requests_total\", labels = { code = \"500\" } }\n", "histogram = \"x\"\n"),
                Some(ANALYSIS),
                "give either histogram",
            ),
            (PLAN.replace("scale = 1000", "scale = -1"), Some(ANALYSIS), "plan.toml:29:9: scale must be a positive number"),
            (
                PLAN.replace("[gate.scrape]", "[gate.prometheus]\nurl = \"http://x\"\n[gate.scrape]"),
                Some(ANALYSIS),
                "[gate.prometheus] is only used with source = \"prometheus\"",
            ),
            (PLAN.replace("source = \"scrape\"", "source = \"prometheus\""), Some(ANALYSIS), "needs a [gate.prometheus] table"),
            (PLAN.replace("lookback = \"20s\"\n", "").replace("bake = \"30s\"\n", ""), Some(ANALYSIS), "needs `lookback`"),
            (PLAN.into(), Some("alpha = 3"), "analysis file analysis.toml is not a valid analysis configuration"),
            (PLAN.into(), Some(""), "configures no metrics"),
        ];
        for (plan, analysis, want) in cases {
            let e = parse(&plan, analysis).expect_err(want);
            assert!(e.contains(want), "want {want:?}, got {e:?}");
        }
    }

    /// The canary gate's messages no other test pins, with their exact
    /// positions: written before the parser was split into sections.
    #[test]
    fn every_canary_gate_message_keeps_its_text_and_position() {
        let prom = PLAN
            .replace("source = \"scrape\"", "source = \"prometheus\"")
            .replace(
                "[gate.scrape]\nurl = \"http://{addr}/metrics\"\ninterval = \"1s\"",
                "[gate.prometheus]\nurl = \"http://127.0.0.1:9090\"\ninstance_label = \"instance\"",
            );
        let errors_table = "events = { counter = \"http_requests_total\", labels = { code = \"500\" } }\ntrials = { counter = \"http_requests_total\" }";
        let cpu = format!(
            "{ANALYSIS}\n[[metrics]]\nname = \"cpu\"\nkind = \"latency\"\nbad = \"increase\"\n"
        );
        let dup = format!(
            "{ANALYSIS}\n[[metrics]]\nname = \"errors\"\nkind = \"count\"\nbad = \"increase\"\n"
        );
        let cases: Vec<(String, &str, &str)> = vec![
            (
                PLAN.replace("lookback = \"20s\"", "lookback = \"0s\""),
                ANALYSIS,
                "plan.toml:19:12: the duration must be above zero",
            ),
            (
                PLAN.replace("interval = \"1s\"", "interval = \"often\""),
                ANALYSIS,
                "plan.toml:25:12: bad duration \"often\": expected number at 0 (write e.g. \"30s\", \"5m\")",
            ),
            (
                PLAN.replace("http://{addr}/metrics", "ftp://{addr}/metrics"),
                ANALYSIS,
                "plan.toml:24:7: scrape url \"ftp://{addr}/metrics\" is not http(s)",
            ),
            (
                PLAN.replace("http://{addr}/metrics", "http://{zone}/metrics"),
                ANALYSIS,
                "plan.toml:24:7: \"http://{zone}/metrics\": unknown placeholder {zone} (known: {target} {addr})",
            ),
            (
                prom.replace("http://127.0.0.1:9090", "127.0.0.1:9090"),
                ANALYSIS,
                "plan.toml:24:7: prometheus url \"127.0.0.1:9090\" is not http(s)",
            ),
            (
                prom.replace("instance_label = \"instance\"", "instance_label = \"1x\""),
                ANALYSIS,
                "plan.toml:25:18: \"1x\" is not a label name",
            ),
            (
                prom.replace("{ name = \"dns-2\", addr = ", "{ name = \"dns-2\", host = ")
                    .replace(
                        "./deploy.sh {target} {addr} {version}",
                        "./deploy.sh {target} {version}",
                    )
                    .replace("./probe.sh {addr}", "./probe.sh {target}"),
                ANALYSIS,
                "plan.toml:20:10: {addr}: target dns-2 has no attribute \"addr\" (matched against instance_label)",
            ),
            (
                prom.replace("[gate.prometheus]", "[gate.scrape]\n[gate.prometheus]"),
                ANALYSIS,
                "plan.toml:23:1: [gate.scrape] is only used with source = \"scrape\"",
            ),
            (
                PLAN.replace(
                    errors_table,
                    "histogram = \"http_request_duration_seconds\"",
                ),
                ANALYSIS,
                "plan.toml:33:13: metric \"errors\" is a count in analysis.toml: read it with events and trials, not a histogram",
            ),
            (
                PLAN.replace(
                    "histogram = \"http_request_duration_seconds\"",
                    "histogram = \"http-duration\"",
                ),
                ANALYSIS,
                "plan.toml:28:13: \"http-duration\" is not a metric name",
            ),
            (
                PLAN.replace(
                    "trials = { counter = \"http_requests_total\" }",
                    "trials = { counter = \"all requests\" }",
                ),
                ANALYSIS,
                "plan.toml:34:22: \"all requests\" is not a metric name",
            ),
            (
                PLAN.replace(errors_table, &format!("{errors_table}\nscale = 2")),
                ANALYSIS,
                "plan.toml:35:9: scale is only used with histogram",
            ),
            (
                PLAN.replace(
                    errors_table,
                    &format!("{errors_table}\nlabels = {{ code = \"500\" }}"),
                ),
                ANALYSIS,
                "plan.toml:32:1: labels go inside events and trials for a count metric",
            ),
            (
                PLAN.replace(
                    "labels = { route = \"/records\" }",
                    "labels = { \"a-b\" = \"/records\" }",
                ),
                ANALYSIS,
                "plan.toml:27:1: \"a-b\" is not a label name",
            ),
            (
                PLAN.replace("labels = { code = \"500\" }", "labels = { \"\" = \"500\" }"),
                ANALYSIS,
                "plan.toml:32:1: \"\" is not a label name",
            ),
            (
                PLAN.to_string(),
                dup.as_str(),
                "plan.toml:18:12: analysis file analysis.toml is not a valid analysis configuration: config metrics[2].name: metric \"errors\" is configured twice",
            ),
            (
                PLAN.replace("analysis = ", "analysys = "),
                ANALYSIS,
                "plan.toml:18:1: unknown field `analysys`, expected one of `kind`, `timeout`, `max_errors`, `max_continues`, `retry_after`, `analysis`, `lookback`, `source`, `scrape`, `prometheus`, `metrics`",
            ),
            (
                PLAN.replace("[gate.metrics.errors]", "[gate.metrics.errors]\nscales = 1"),
                ANALYSIS,
                "plan.toml:33:1: unknown field `scales`, expected one of `histogram`, `scale`, `labels`, `events`, `trials`",
            ),
            (
                PLAN.replace("lookback = \"20s\"\n", "")
                    .replace("bake = \"30s\"\n", ""),
                ANALYSIS,
                "plan.toml:15:1: a canary gate needs `lookback` when the strategy has no bake",
            ),
            (
                PLAN.to_string(),
                cpu.as_str(),
                "plan.toml:27:7: metric \"cpu\" of analysis file analysis.toml has no [gate.metrics.cpu] table saying how to read it",
            ),
            (
                PLAN[..PLAN.find("[gate.metrics").unwrap()].to_string(),
                ANALYSIS,
                "plan.toml:16:1: metric \"latency_ms\" of analysis file analysis.toml has no [gate.metrics.latency_ms] table saying how to read it",
            ),
            (
                PLAN.replace("analysis = \"analysis.toml\"\n", ""),
                ANALYSIS,
                "plan.toml:16:1: missing field `analysis`",
            ),
            (
                PLAN.replace("lookback = \"20s\"", "lookback = 20"),
                ANALYSIS,
                "plan.toml:19:12: invalid type: integer `20`, expected a string",
            ),
        ];
        for (plan, analysis, want) in &cases {
            let e = parse(plan, Some(analysis)).expect_err(plan);
            assert_eq!(&e, want);
        }
    }
}
