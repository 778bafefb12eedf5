//! The plan file with every gate kind: `rollgate-deploy`'s plan file (its
//! targets, deployer, strategy, router and command gate) plus
//! `[gate] kind = "canary"`, built here where deploy and canary meet.
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
//! assert_eq!(plan.file.gate_kind.as_deref(), Some("canary"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rollgate_canary::source::{MetricSource, Window, collect};
use rollgate_canary::{Analysis, AnalysisConfig, MetricKind};
use rollgate_deploy::{CommandTemplate, Decision, Error, Gate, GateContext, GateEvidence};
use serde::Deserialize;
use toml::Spanned;

use crate::canary_gate::CanaryGate;
use crate::promql::PromQlSource;
use crate::scrape::{CounterSelector, MetricMapping, ScrapeSource, ScrapeTarget};
use file::{GateKind, line_col};
pub use file::{NotifyConfig, PRECHECK_PLACEHOLDERS, PlanFile, Precheck};

#[derive(Debug, Deserialize)]
struct Doc {
    gate: Spanned<RawCanaryGate>,
}

/// `[gate] kind = "canary"`'s own keys. rollgate-deploy reads the keys every
/// gate shares (`kind`, `max_errors`, ...) and refuses keys that are
/// neither shared nor named here ([`fields_of`] hands it this struct's).
#[derive(Debug, Deserialize)]
struct RawCanaryGate {
    analysis: Spanned<String>,
    #[serde(default)]
    lookback: Option<Spanned<String>>,
    #[serde(default)]
    source: Option<Spanned<String>>,
    #[serde(default)]
    scrape: Option<Spanned<RawScrape>>,
    #[serde(default)]
    prometheus: Option<Spanned<RawPrometheus>>,
    #[serde(default)]
    metrics: Option<Spanned<BTreeMap<Spanned<String>, Spanned<RawMetric>>>>,
}

/// The canary gate kind as rollgate-deploy checks it.
fn canary_kind() -> GateKind<'static> {
    GateKind {
        name: "canary",
        keys: fields_of::<RawCanaryGate>(),
    }
}

/// The field names of a struct deriving `Deserialize`: serde hands them to
/// `deserialize_struct`, so each key is declared once, by its field.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScrape {
    #[serde(default)]
    url: Option<Spanned<String>>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrometheus {
    url: Spanned<String>,
    #[serde(default)]
    instance_label: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    #[serde(default)]
    histogram: Option<Spanned<String>>,
    #[serde(default)]
    scale: Option<Spanned<f64>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    events: Option<Spanned<RawCounter>>,
    #[serde(default)]
    trials: Option<Spanned<RawCounter>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCounter {
    counter: Spanned<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Where a canary gate reads its metrics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SourceSpec {
    /// Scrape each target's exposition page.
    Scrape {
        /// URL template (`http://{addr}/metrics`).
        url: String,
        /// Time between scrapes.
        interval: Duration,
    },
    /// A Prometheus server's HTTP API.
    Prometheus {
        /// Base URL.
        url: String,
        /// The label holding each target's `{addr}`.
        instance_label: String,
    },
}

/// A validated `[gate] kind = "canary"`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CanarySpec {
    /// The analysis file, resolved.
    pub analysis_path: PathBuf,
    /// The analysis.
    pub analysis: AnalysisConfig,
    /// The window judged at the end of each bake.
    pub lookback: Duration,
    /// Where metrics come from.
    pub source: SourceSpec,
    /// How each analysis metric is read.
    pub metrics: BTreeMap<String, MetricMapping>,
}

/// A plan file with any gate kind; [`gate`](Self::gate) builds it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Plan {
    /// Everything rollgate-deploy reads (targets, deployer, strategy...).
    pub file: PlanFile,
    /// The canary gate, when `[gate] kind = "canary"`.
    pub canary: Option<CanarySpec>,
}

struct Cx<'a> {
    path: &'a str,
    text: &'a str,
}

impl Cx<'_> {
    fn err(&self, span: std::ops::Range<usize>, reason: impl Into<String>) -> Error {
        let (l, c) = line_col(self.text, span.start);
        Error::PlanFile {
            path: format!("{}:{l}:{c}", self.path),
            reason: reason.into(),
        }
    }

    fn duration(&self, s: &Spanned<String>) -> Result<Duration, Error> {
        let d = humantime::parse_duration(s.get_ref().trim()).map_err(|e| {
            self.err(
                s.span(),
                format!(
                    "bad duration {:?}: {e} (write e.g. \"30s\", \"5m\")",
                    s.get_ref()
                ),
            )
        })?;
        if d.is_zero() {
            return Err(self.err(s.span(), "the duration must be above zero"));
        }
        Ok(d)
    }
}

impl Plan {
    /// Reads and validates a plan file (and its analysis file).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::PlanFile {
            path: path.display().to_string(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Validates plan text; `path` names it in messages and locates the
    /// analysis file (relative to its directory).
    pub fn parse(text: &str, path: &str) -> Result<Self, Error> {
        Self::parse_in(text, path, Path::new(""))
    }

    /// As [`parse`](Self::parse), with a relative `path` taken from `cwd`
    /// (a recorded plan resumed from another directory).
    pub fn parse_in(text: &str, path: &str, cwd: &Path) -> Result<Self, Error> {
        Self::parse_with(text, path, cwd, None)
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
        let text = std::fs::read_to_string(path).map_err(|e| Error::PlanFile {
            path: path.display().to_string(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse_with(
            &text,
            &path.display().to_string(),
            Path::new(""),
            Some((analysis_path.to_path_buf(), analysis)),
        )
    }

    fn parse_with(
        text: &str,
        path: &str,
        cwd: &Path,
        analysis: Option<(PathBuf, AnalysisConfig)>,
    ) -> Result<Self, Error> {
        let file = PlanFile::parse_with_gate_kinds(text, path, &[canary_kind()])?;
        let dir = cwd.join(Path::new(path).parent().unwrap_or(Path::new("")));
        let canary = match file.gate_kind.as_deref() {
            Some("canary") => Some(canary_spec(&file, text, path, &dir, analysis)?),
            _ => None,
        };
        Ok(Self { file, canary })
    }

    /// The gate: a command gate, a canary gate (which starts scraping now,
    /// so call it inside a tokio runtime), or none.
    pub fn gate(&self, cwd: Option<PathBuf>) -> Result<Option<Arc<dyn Gate>>, Error> {
        if let Some(spec) = &self.canary {
            return Ok(Some(Arc::new(PlanCanaryGate::new(&self.file, spec)?)));
        }
        Ok(self.file.gate(cwd)?.map(|g| Arc::new(g) as Arc<dyn Gate>))
    }
}

impl Plan {
    /// Shadow mode: judge two live cohorts of this plan's targets through
    /// its canary gate's source and analysis, without a rollout. Checks the
    /// names now; [`Shadow::judge`] measures.
    ///
    /// Errors: the plan has no `[gate] kind = "canary"`, a name that is not
    /// a target of the plan, a target named twice or in both cohorts, an
    /// empty cohort.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # std::fs::write(dir.path().join("analysis.toml"), "[[metrics]]\nname = \"errors\"\nkind = \"count\"\nbad = \"increase\"\n")?;
    /// # let path = dir.path().join("plan.toml");
    /// # std::fs::write(&path, r#"
    /// # service = "dns"
    /// # artifact = { version = "v2", digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222" }
    /// # targets = [{ name = "dns-1", addr = "127.0.0.1:18081" }, { name = "dns-2", addr = "127.0.0.1:18082" }]
    /// # [deployer]
    /// # kind = "command"
    /// # deploy = "true"
    /// # current = "echo v1"
    /// # ready = "true"
    /// # [strategy]
    /// # kind = "canary"
    /// # steps = [50, 100]
    /// # bake = "30s"
    /// # [gate]
    /// # kind = "canary"
    /// # analysis = "analysis.toml"
    /// # [gate.metrics.errors]
    /// # events = { counter = "http_requests_total", labels = { code = "500" } }
    /// # trials = { counter = "http_requests_total" }
    /// # "#)?;
    /// let plan = rollgate::plan::Plan::load(&path)?;
    /// let shadow = plan.shadow(&["dns-1".into()], &["dns-2".into()])?;
    /// assert_eq!(shadow.lookback(), std::time::Duration::from_secs(30));
    /// // `shadow.judge().await` scrapes both for the lookback, then judges.
    /// assert!(plan.shadow(&["dns-1".into()], &["dns-9".into()]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shadow(&self, baseline: &[String], canary: &[String]) -> Result<Shadow, Error> {
        let bad = |reason: String| Error::PlanFile {
            path: self.file.path.clone(),
            reason,
        };
        let Some(spec) = &self.canary else {
            return Err(bad(format!(
                "shadow analysis needs [gate] kind = \"canary\" (this plan's gate: {})",
                self.file.gate_kind.as_deref().unwrap_or("none")
            )));
        };
        let known: Vec<&str> = self.file.targets.iter().map(|t| t.as_str()).collect();
        let mut seen: Vec<&str> = Vec::new();
        for (cohort, names) in [("baseline", baseline), ("canary", canary)] {
            if names.is_empty() {
                return Err(bad(format!("the {cohort} cohort names no target")));
            }
            for n in names {
                if !known.contains(&n.as_str()) {
                    return Err(bad(format!(
                        "{cohort} target {n:?} is not a target of this plan (targets: {})",
                        known.join(", ")
                    )));
                }
                if seen.contains(&n.as_str()) {
                    return Err(bad(format!("target {n:?} is named twice")));
                }
                seen.push(n);
            }
        }
        Ok(Shadow {
            file: self.file.clone(),
            spec: spec.clone(),
            baseline: baseline.to_vec(),
            canary: canary.to_vec(),
            lookback: spec.lookback,
        })
    }
}

/// Two live cohorts judged without a rollout ([`Plan::shadow`]).
#[derive(Debug, Clone)]
pub struct Shadow {
    file: PlanFile,
    spec: CanarySpec,
    baseline: Vec<String>,
    canary: Vec<String>,
    lookback: Duration,
}

impl Shadow {
    /// Judge this window instead of the gate's `lookback`.
    pub fn with_lookback(mut self, lookback: Duration) -> Self {
        self.lookback = lookback;
        self
    }

    /// The window judged.
    pub fn lookback(&self) -> Duration {
        self.lookback
    }

    /// How long [`judge`](Self::judge) measures before judging: the
    /// lookback when scraping (rollgate keeps no history of its own), none
    /// with Prometheus (it has the history).
    pub fn measures_for(&self) -> Duration {
        match self.spec.source {
            SourceSpec::Scrape { .. } => self.lookback,
            SourceSpec::Prometheus { .. } => Duration::ZERO,
        }
    }

    /// Scrapes both cohorts for the lookback (source `scrape`) or asks
    /// Prometheus about the last lookback, and judges. A target without
    /// data leaves its cohort without data (the report says inconclusive
    /// and adds a reason naming it); no target answering at all is an
    /// error, as for the gate.
    pub async fn judge(&self) -> Result<rollgate_canary::Report, Error> {
        let names: Vec<String> = self.baseline.iter().chain(&self.canary).cloned().collect();
        let backend = Backend::new(&self.file, &self.spec, &names)?;
        if let Backend::Scrape(s) = &backend {
            // A first scrape as the starting point, then the whole lookback.
            s.scrape_once().await;
            tokio::time::sleep(self.lookback).await;
            s.scrape_once().await;
        }
        let now = backend.now();
        let window = Window::new(now - self.lookback.as_secs_f64(), now)
            .map_err(|e| Error::Gate(e.to_string()))?;
        let (source, notes) = backend.view(&self.baseline, &self.canary, window, None);
        let analysis =
            Analysis::new(self.spec.analysis.clone()).map_err(|e| Error::Gate(e.to_string()))?;
        let data = collect(source.as_ref(), analysis.config(), window)
            .await
            .map_err(|e| Error::Gate(rollgate_deploy::error_chain(&e)))?;
        let mut report = analysis
            .judge(&data)
            .map_err(|e| Error::Gate(rollgate_deploy::error_chain(&e)))?;
        report.reasons.extend(notes);
        Ok(report)
    }
}

fn canary_spec(
    file: &PlanFile,
    text: &str,
    path: &str,
    dir: &Path,
    given: Option<(PathBuf, AnalysisConfig)>,
) -> Result<CanarySpec, Error> {
    let cx = Cx { path, text };
    let doc: Doc = toml::from_str(text).map_err(|e: toml::de::Error| {
        cx.err(e.span().unwrap_or(0..0), e.message().trim().to_string())
    })?;
    let g = doc.gate.get_ref();
    let (analysis_path, analysis) = match given {
        Some(given) => given,
        None => {
            let analysis_path = dir.join(g.analysis.get_ref());
            let analysis_text = std::fs::read_to_string(&analysis_path).map_err(|e| {
                cx.err(
                    g.analysis.span(),
                    format!(
                        "analysis file {} cannot be read: {e}",
                        analysis_path.display()
                    ),
                )
            })?;
            let analysis = AnalysisConfig::from_toml_str(&analysis_text).map_err(|e| {
                cx.err(
                    g.analysis.span(),
                    format!(
                        "analysis file {} is not a valid analysis configuration: {e}",
                        analysis_path.display()
                    ),
                )
            })?;
            (analysis_path, analysis)
        }
    };
    Analysis::new(analysis.clone()).map_err(|e| {
        cx.err(
            g.analysis.span(),
            format!("analysis file {}: {e}", analysis_path.display()),
        )
    })?;
    if analysis.metrics.is_empty() {
        return Err(cx.err(
            g.analysis.span(),
            format!(
                "analysis file {} configures no metrics; add at least one [[metrics]] table",
                analysis_path.display()
            ),
        ));
    }
    let lookback = match &g.lookback {
        Some(l) => cx.duration(l)?,
        None if !file.defaults.bake.is_zero() => file.defaults.bake,
        None => {
            return Err(cx.err(
                doc.gate.span(),
                "a canary gate needs `lookback` when the strategy has no bake",
            ));
        }
    };
    let attr_names: Vec<&str> = {
        let mut v: Vec<&str> = file
            .attributes
            .values()
            .flat_map(|a| a.keys().map(String::as_str))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let source_kind = g.source.as_ref().map_or("scrape", |s| s.get_ref().as_str());
    let needs_attr =
        |span: std::ops::Range<usize>, name: &str, what: &str| match file.targets.iter().find(|t| {
            !file
                .attributes
                .get(*t)
                .is_some_and(|a| a.contains_key(name))
        }) {
            Some(t) => Err(cx.err(
                span,
                format!("{{{name}}}: target {t} has no attribute {name:?} ({what})"),
            )),
            None => Ok(()),
        };
    let source = match source_kind {
        "scrape" => {
            if let Some(p) = &g.prometheus {
                return Err(cx.err(
                    p.span(),
                    "[gate.prometheus] is only used with source = \"prometheus\"",
                ));
            }
            let (url, interval) = match &g.scrape {
                Some(s) => (
                    s.get_ref().url.clone(),
                    s.get_ref()
                        .interval
                        .as_ref()
                        .map(|i| cx.duration(i))
                        .transpose()?,
                ),
                None => (None, None),
            };
            let url_span = url.as_ref().map_or_else(|| doc.gate.span(), |u| u.span());
            let url = url.map_or_else(|| "http://{addr}/metrics".to_string(), |u| u.into_inner());
            let tpl = CommandTemplate::new(url.clone())
                .map_err(|e| cx.err(url_span.clone(), e.to_string()))?;
            let mut allowed = vec!["target"];
            allowed.extend(attr_names.iter().copied());
            tpl.check_placeholders(&allowed).map_err(|e| match e {
                Error::Invalid { reason, .. } => cx.err(url_span.clone(), reason),
                other => cx.err(url_span.clone(), other.to_string()),
            })?;
            for p in tpl.placeholders() {
                if p != "target" {
                    needs_attr(url_span.clone(), p, "used by [gate.scrape] url")?;
                }
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(cx.err(url_span, format!("scrape url {url:?} is not http(s)")));
            }
            SourceSpec::Scrape {
                url,
                interval: interval.unwrap_or(Duration::from_secs(5)),
            }
        }
        "prometheus" => {
            let span = g.source.as_ref().map_or(0..0, |s| s.span());
            let Some(p) = &g.prometheus else {
                return Err(cx.err(
                    span,
                    "source = \"prometheus\" needs a [gate.prometheus] table with url",
                ));
            };
            if let Some(s) = &g.scrape {
                return Err(cx.err(
                    s.span(),
                    "[gate.scrape] is only used with source = \"scrape\"",
                ));
            }
            let url = p.get_ref().url.get_ref().trim_end_matches('/').to_string();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(cx.err(
                    p.get_ref().url.span(),
                    format!("prometheus url {url:?} is not http(s)"),
                ));
            }
            needs_attr(span, "addr", "matched against instance_label")?;
            let instance_label = p
                .get_ref()
                .instance_label
                .as_ref()
                .map_or_else(|| "instance".to_string(), |l| l.get_ref().clone());
            if !is_label_name(&instance_label) {
                return Err(cx.err(
                    p.get_ref()
                        .instance_label
                        .as_ref()
                        .map_or(0..0, |l| l.span()),
                    format!("{instance_label:?} is not a label name"),
                ));
            }
            SourceSpec::Prometheus {
                url,
                instance_label,
            }
        }
        other => {
            return Err(cx.err(
                g.source.as_ref().map_or(0..0, |s| s.span()),
                format!("unknown source {other:?} (known: \"scrape\", \"prometheus\")"),
            ));
        }
    };

    // The metrics: the same names on both sides.
    let empty = BTreeMap::new();
    let raw_metrics = g.metrics.as_ref().map_or(&empty, |m| m.get_ref());
    let metrics_span = g
        .metrics
        .as_ref()
        .map_or_else(|| doc.gate.span(), |m| m.span());
    for m in &analysis.metrics {
        if !raw_metrics.keys().any(|k| k.get_ref() == &m.name) {
            return Err(cx.err(
                metrics_span.clone(),
                format!(
                    "metric {:?} of analysis file {} has no [gate.metrics.{}] table saying how to read it",
                    m.name,
                    analysis_path.display(),
                    m.name
                ),
            ));
        }
    }
    let mut metrics = BTreeMap::new();
    for (name, raw) in raw_metrics {
        let Some(cfg) = analysis.metrics.iter().find(|m| &m.name == name.get_ref()) else {
            return Err(cx.err(
                name.span(),
                format!(
                    "metric {:?} is not in analysis file {}",
                    name.get_ref(),
                    analysis_path.display()
                ),
            ));
        };
        let r = raw.get_ref();
        let labels = |l: &Option<BTreeMap<String, String>>| -> Result<_, Error> {
            let l = l.clone().unwrap_or_default();
            if let Some(k) = l.keys().find(|k| !is_label_name(k)) {
                return Err(cx.err(raw.span(), format!("{k:?} is not a label name")));
            }
            Ok(l)
        };
        let mapping = match (&r.histogram, &r.events, &r.trials) {
            (Some(h), None, None) => {
                if cfg.kind == MetricKind::Count {
                    return Err(cx.err(
                        h.span(),
                        format!(
                            "metric {:?} is a count in {}: read it with events and trials, not a histogram",
                            name.get_ref(),
                            analysis_path.display()
                        ),
                    ));
                }
                if !is_metric_name(h.get_ref()) {
                    return Err(cx.err(h.span(), format!("{:?} is not a metric name", h.get_ref())));
                }
                let scale = match &r.scale {
                    Some(s) if !(s.get_ref().is_finite() && *s.get_ref() > 0.0) => {
                        return Err(cx.err(s.span(), "scale must be a positive number"));
                    }
                    Some(s) => *s.get_ref(),
                    None => 1.0,
                };
                MetricMapping::Histogram {
                    family: h.get_ref().clone(),
                    scale,
                    labels: labels(&r.labels)?,
                }
            }
            (None, Some(e), Some(t)) => {
                if !matches!(cfg.kind, MetricKind::Count | MetricKind::Ratio) {
                    return Err(cx.err(
                        raw.span(),
                        format!(
                            "metric {:?} is a {} metric in {}: read it from a histogram, not events and trials",
                            name.get_ref(),
                            format!("{:?}", cfg.kind).to_lowercase(),
                            analysis_path.display()
                        ),
                    ));
                }
                if let Some(s) = &r.scale {
                    return Err(cx.err(s.span(), "scale is only used with histogram"));
                }
                if r.labels.is_some() {
                    return Err(cx.err(
                        raw.span(),
                        "labels go inside events and trials for a count metric",
                    ));
                }
                let sel = |c: &Spanned<RawCounter>| -> Result<CounterSelector, Error> {
                    let c = c.get_ref();
                    if !is_metric_name(c.counter.get_ref()) {
                        return Err(cx.err(
                            c.counter.span(),
                            format!("{:?} is not a metric name", c.counter.get_ref()),
                        ));
                    }
                    Ok(CounterSelector {
                        counter: c.counter.get_ref().clone(),
                        labels: labels(&c.labels)?,
                    })
                };
                MetricMapping::Count {
                    events: sel(e)?,
                    trials: sel(t)?,
                }
            }
            _ => {
                return Err(cx.err(
                    raw.span(),
                    format!(
                        "metric {:?}: give either histogram = \"FAMILY\" or both events and trials",
                        name.get_ref()
                    ),
                ));
            }
        };
        metrics.insert(name.get_ref().clone(), mapping);
    }
    Ok(CanarySpec {
        analysis_path,
        analysis,
        lookback,
        source,
        metrics,
    })
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

fn is_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

enum Backend {
    Scrape(ScrapeSource),
    Prometheus(PromQlSource),
}

/// The canary gate a plan file describes: cohorts from the executor, data
/// from scraping or Prometheus, judged by [`CanaryGate`].
struct PlanCanaryGate {
    backend: Backend,
    analysis: Analysis,
    lookback: Duration,
    targets: Vec<String>,
    /// The last baseline judged (targets, window), for the last phase.
    last_baseline: Mutex<Option<(Vec<String>, Window)>>,
}

impl Backend {
    /// The source over `names` (targets of `file`); scraping starts now.
    fn new(file: &PlanFile, spec: &CanarySpec, names: &[String]) -> Result<Self, Error> {
        let chosen = file
            .targets
            .iter()
            .filter(|t| names.iter().any(|n| n == t.as_str()));
        Ok(match &spec.source {
            SourceSpec::Scrape { url, interval } => {
                let tpl = CommandTemplate::new(url.clone())?;
                let targets = chosen
                    .map(|t| {
                        let mut vars: BTreeMap<&str, &str> = BTreeMap::new();
                        vars.insert("target", t.as_str());
                        if let Some(a) = file.attributes.get(t) {
                            for (k, v) in a {
                                vars.insert(k, v);
                            }
                        }
                        Ok(ScrapeTarget {
                            name: t.to_string(),
                            url: tpl.render(&vars)?,
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                let src = ScrapeSource::new(targets, spec.metrics.clone())
                    .map_err(|e| Error::Gate(e.to_string()))?;
                src.start(*interval);
                Backend::Scrape(src)
            }
            SourceSpec::Prometheus {
                url,
                instance_label,
            } => {
                let addrs = chosen
                    .filter_map(|t| {
                        let a = file.attributes.get(t)?.get("addr")?;
                        Some((t.to_string(), a.clone()))
                    })
                    .collect();
                Backend::Prometheus(
                    PromQlSource::new(url, instance_label, addrs, spec.metrics.clone())
                        .map_err(|e| Error::Gate(e.to_string()))?,
                )
            }
        })
    }

    /// The source for one judgement, and a note per target without data.
    fn view(
        &self,
        baseline: &[String],
        canary: &[String],
        window: Window,
        baseline_window: Option<Window>,
    ) -> (Arc<dyn MetricSource>, Vec<String>) {
        match self {
            Backend::Scrape(s) => {
                let notes = s
                    .unmeasured(baseline, baseline_window.unwrap_or(window))
                    .into_iter()
                    .chain(s.unmeasured(canary, window))
                    .map(|(t, why)| format!("target {t} has no data: {why}"))
                    .collect();
                (
                    Arc::new(s.cohorts(baseline.to_vec(), canary.to_vec(), baseline_window)),
                    notes,
                )
            }
            Backend::Prometheus(p) => (
                Arc::new(p.cohorts(baseline.to_vec(), canary.to_vec(), baseline_window)),
                Vec::new(),
            ),
        }
    }

    fn now(&self) -> f64 {
        match self {
            Backend::Scrape(s) => s.now_secs(),
            Backend::Prometheus(_) => PromQlSource::now_unix(),
        }
    }
}

impl PlanCanaryGate {
    fn new(file: &PlanFile, spec: &CanarySpec) -> Result<Self, Error> {
        let analysis =
            Analysis::new(spec.analysis.clone()).map_err(|e| Error::Gate(e.to_string()))?;
        let targets: Vec<String> = file.targets.iter().map(ToString::to_string).collect();
        Ok(Self {
            backend: Backend::new(file, spec, &targets)?,
            analysis,
            lookback: spec.lookback,
            targets,
            last_baseline: Mutex::new(None),
        })
    }

    fn now(&self) -> f64 {
        self.backend.now()
    }
}

#[async_trait]
impl Gate for PlanCanaryGate {
    async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
        Ok(self.evaluate_with_evidence(at).await?.0)
    }

    async fn evaluate_with_evidence(
        &self,
        at: &GateContext,
    ) -> Result<(Decision, Option<GateEvidence>), Error> {
        let canary: Vec<String> = at.canary_targets.iter().map(ToString::to_string).collect();
        let baseline: Vec<String> = self
            .targets
            .iter()
            .filter(|t| !canary.contains(t))
            .cloned()
            .collect();
        let now = self.now();
        let window = Window::new(now - self.lookback.as_secs_f64(), now)
            .map_err(|e| Error::Gate(e.to_string()))?;
        let mut notes = Vec::new();
        let (baseline, baseline_window) = if baseline.is_empty() {
            let last = self
                .last_baseline
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            match last {
                Some((targets, w)) => {
                    notes.push(format!(
                        "baseline: {} over the window judged before this phase ({:.0}s ago), as no target is left on the previous artifact",
                        targets.join(", "),
                        now - w.end
                    ));
                    (targets, Some(w))
                }
                None => {
                    notes.push(
                        "baseline: none (every target is on the new artifact and no earlier phase was judged)"
                            .to_string(),
                    );
                    (Vec::new(), None)
                }
            }
        } else {
            (baseline, None)
        };
        let (source, unmeasured) = self
            .backend
            .view(&baseline, &canary, window, baseline_window);
        notes.extend(unmeasured);
        let clock_now = now;
        let gate = CanaryGate::new(
            source,
            self.analysis.clone(),
            self.lookback,
            Arc::new(move || clock_now),
        );
        let (decision, evidence) = gate.evaluate_with_evidence(at).await?;
        if baseline_window.is_none() && !baseline.is_empty() {
            *self.last_baseline.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((baseline, window));
        }
        let decision = match decision {
            Decision::Promote(mut r) => {
                r.extend(notes);
                Decision::Promote(r)
            }
            Decision::Continue(mut r) => {
                r.extend(notes);
                Decision::Continue(r)
            }
            Decision::Hold(mut r) => {
                r.extend(notes);
                Decision::Hold(r)
            }
            Decision::Rollback(mut r) => {
                r.extend(notes);
                Decision::Rollback(r)
            }
        };
        Ok((decision, evidence))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_canary_gate_keys_are_its_fields() {
        assert_eq!(
            canary_kind().keys,
            [
                "analysis",
                "lookback",
                "source",
                "scrape",
                "prometheus",
                "metrics"
            ]
        );
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
        assert_eq!(p.file.gate_policy.max_errors, 3);
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
