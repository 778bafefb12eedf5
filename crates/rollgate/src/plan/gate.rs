//! `[gate]`: the keys every kind shares (limits of [`GatePolicy`], the
//! timeout), then the kind's own: `command`, or `canary` (its analysis
//! file, metric source and metric mappings).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rollgate_canary::{Analysis, AnalysisConfig, MetricKind};
use rollgate_deploy::{CommandTemplate, Error, GatePolicy};
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::file::Ctx;
use crate::scrape::{CounterSelector, MetricMapping};

/// The keys of `[gate]` every kind reads: `kind` and the limits of
/// [`GatePolicy`] and the gate timeout.
const SHARED_GATE_KEYS: &[&str] = &[
    "kind",
    "timeout",
    "max_errors",
    "max_continues",
    "retry_after",
];

/// What every gate kind shares, read once from `[gate]`.
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

/// `[gate] kind = "command"`'s own key.
#[derive(Debug, Deserialize)]
struct RawCommandGate {
    command: Spanned<String>,
}

/// `[gate] kind = "canary"`'s own keys.
#[derive(Debug, Deserialize)]
pub(super) struct RawCanaryGate {
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

/// The gate kinds and their own keys (besides [`SHARED_GATE_KEYS`]), each
/// key declared once, by its struct's field.
fn kinds() -> [(&'static str, &'static [&'static str]); 2] {
    [
        ("command", fields_of::<RawCommandGate>()),
        ("canary", fields_of::<RawCanaryGate>()),
    ]
}

/// The field names of a struct deriving `Deserialize`: serde hands them to
/// `deserialize_struct`.
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

/// A read `[gate]`: what every kind shares, and the kind's own part (a
/// canary gate is finished by [`Ctx::canary`] once the rest of the plan is read).
pub(super) struct GateSection {
    pub(super) kind: String,
    pub(super) policy: GatePolicy,
    pub(super) timeout: Duration,
    pub(super) command: Option<CommandTemplate>,
    pub(super) canary: Option<Spanned<RawCanaryGate>>,
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

impl Ctx<'_> {
    /// `[gate]` of `doc`, if the plan has one.
    pub(super) fn gate(&self, doc: &Spanned<DeTable<'_>>) -> Result<Option<GateSection>, Error> {
        let Some(value) = doc
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref() == "gate")
            .map(|(_, v)| v.clone())
        else {
            return Ok(None);
        };
        let read = |e: toml::de::Error| self.toml_error(&e);
        let common =
            RawGateCommon::deserialize(ValueDeserializer::from(value.clone())).map_err(read)?;
        self.gate_keys(&value, &common.kind)?;
        let mut section = GateSection {
            kind: common.kind.get_ref().clone(),
            policy: GatePolicy::default(),
            timeout: Duration::from_secs(300),
            command: None,
            canary: None,
        };
        if let Some(m) = &common.max_errors {
            section.policy.max_errors = self.count(m, "max_errors", 1)? as u32;
        }
        if let Some(m) = &common.max_continues {
            section.policy.max_continues = self.count(m, "max_continues", 1)? as u32;
        }
        section.policy.retry_after =
            self.opt_duration(&common.retry_after, section.policy.retry_after)?;
        section.timeout = self.opt_duration(&common.timeout, section.timeout)?;
        if section.kind == "command" {
            let g = RawCommandGate::deserialize(ValueDeserializer::from(value)).map_err(read)?;
            section.command = Some(self.template(&g.command, rollgate_deploy::GATE_PLACEHOLDERS)?);
        } else {
            section.canary = Some(
                Spanned::<RawCanaryGate>::deserialize(ValueDeserializer::from(value))
                    .map_err(read)?,
            );
        }
        Ok(Some(section))
    }

    /// A known `kind`, and only the keys it and every kind read.
    fn gate_keys(&self, value: &Spanned<DeValue<'_>>, kind: &Spanned<String>) -> Result<(), Error> {
        let kinds = kinds();
        let Some((_, own)) = kinds.iter().find(|(name, _)| name == kind.get_ref()) else {
            let known: Vec<String> = kinds.iter().map(|(k, _)| format!("{k:?}")).collect();
            return self.err(
                kind.span(),
                format!(
                    "unknown gate kind {:?} (known: {})",
                    kind.get_ref(),
                    known.join(", ")
                ),
            );
        };
        let DeValue::Table(table) = value.get_ref() else {
            return Ok(());
        };
        let allowed = |k: &str| SHARED_GATE_KEYS.contains(&k) || own.contains(&k);
        let Some((k, _)) = table.iter().find(|(k, _)| !allowed(k.get_ref())) else {
            return Ok(());
        };
        let expected: Vec<String> = SHARED_GATE_KEYS
            .iter()
            .chain(own.iter())
            .map(|k| format!("`{k}`"))
            .collect();
        self.err(
            k.span(),
            format!(
                "unknown field `{}`, expected one of {}",
                k.get_ref(),
                expected.join(", ")
            ),
        )
    }

    /// A `[gate] kind = "canary"`: its analysis (read from the file it
    /// names, relative to `dir`, unless `given`), lookback, source and
    /// metric mappings. `bake`: the strategy's.
    pub(super) fn canary(
        &self,
        g: &Spanned<RawCanaryGate>,
        bake: Duration,
        dir: &Path,
        given: Option<(PathBuf, AnalysisConfig)>,
    ) -> Result<CanarySpec, Error> {
        let raw = g.get_ref();
        let (analysis_path, analysis) = match given {
            Some(given) => given,
            None => self.read_analysis(&raw.analysis, dir)?,
        };
        self.check_analysis(&raw.analysis, &analysis_path, &analysis)?;
        let lookback = match &raw.lookback {
            Some(l) => self.positive_duration(l)?,
            None if !bake.is_zero() => bake,
            None => {
                return self.err(
                    g.span(),
                    "a canary gate needs `lookback` when the strategy has no bake",
                );
            }
        };
        let source = self.source(g)?;
        let metrics = self.metric_mappings(g, &analysis_path, &analysis)?;
        Ok(CanarySpec {
            analysis_path,
            analysis,
            lookback,
            source,
            metrics,
        })
    }

    fn read_analysis(
        &self,
        name: &Spanned<String>,
        dir: &Path,
    ) -> Result<(PathBuf, AnalysisConfig), Error> {
        let path = dir.join(name.get_ref());
        let text = std::fs::read_to_string(&path).or_else(|e| {
            self.err(
                name.span(),
                format!("analysis file {} cannot be read: {e}", path.display()),
            )
        })?;
        let analysis = AnalysisConfig::from_toml_str(&text).or_else(|e| {
            self.err(
                name.span(),
                format!(
                    "analysis file {} is not a valid analysis configuration: {e}",
                    path.display()
                ),
            )
        })?;
        Ok((path, analysis))
    }

    /// The analysis builds and judges at least one metric.
    fn check_analysis(
        &self,
        name: &Spanned<String>,
        path: &Path,
        analysis: &AnalysisConfig,
    ) -> Result<(), Error> {
        if let Err(e) = Analysis::new(analysis.clone()) {
            return self.err(
                name.span(),
                format!("analysis file {}: {e}", path.display()),
            );
        }
        if analysis.metrics.is_empty() {
            return self.err(
                name.span(),
                format!(
                    "analysis file {} configures no metrics; add at least one [[metrics]] table",
                    path.display()
                ),
            );
        }
        Ok(())
    }

    /// `source` with its table: `scrape` (default) or `prometheus`.
    fn source(&self, g: &Spanned<RawCanaryGate>) -> Result<SourceSpec, Error> {
        let raw = g.get_ref();
        let source_span = raw.source.as_ref().map_or(0..0, |s| s.span());
        match raw
            .source
            .as_ref()
            .map_or("scrape", |s| s.get_ref().as_str())
        {
            "scrape" => {
                if let Some(p) = &raw.prometheus {
                    return self.err(
                        p.span(),
                        "[gate.prometheus] is only used with source = \"prometheus\"",
                    );
                }
                self.scrape_source(g)
            }
            "prometheus" => {
                let Some(p) = &raw.prometheus else {
                    return self.err(
                        source_span,
                        "source = \"prometheus\" needs a [gate.prometheus] table with url",
                    );
                };
                if let Some(s) = &raw.scrape {
                    return self.err(
                        s.span(),
                        "[gate.scrape] is only used with source = \"scrape\"",
                    );
                }
                self.prometheus_source(p.get_ref(), source_span)
            }
            other => self.err(
                source_span,
                format!("unknown source {other:?} (known: \"scrape\", \"prometheus\")"),
            ),
        }
    }

    /// `[gate.scrape]`: a URL template over `{target}` and the attributes.
    fn scrape_source(&self, g: &Spanned<RawCanaryGate>) -> Result<SourceSpec, Error> {
        let (url, interval) = match &g.get_ref().scrape {
            Some(s) => (
                s.get_ref().url.as_ref(),
                s.get_ref()
                    .interval
                    .as_ref()
                    .map(|i| self.positive_duration(i))
                    .transpose()?,
            ),
            None => (None, None),
        };
        let url_span = url.map_or_else(|| g.span(), |u| u.span());
        let url = url.map_or_else(
            || "http://{addr}/metrics".to_string(),
            |u| u.get_ref().clone(),
        );
        let tpl = CommandTemplate::new(url.clone())
            .or_else(|e| self.err(url_span.clone(), e.to_string()))?;
        let mut allowed = vec!["target"];
        allowed.extend(super::targets::attribute_names(&self.attributes));
        self.wrap(url_span.clone(), tpl.check_placeholders(&allowed))?;
        for p in tpl.placeholders() {
            if p != "target" {
                self.needs_attribute(url_span.clone(), p, "used by [gate.scrape] url")?;
            }
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return self.err(url_span, format!("scrape url {url:?} is not http(s)"));
        }
        Ok(SourceSpec::Scrape {
            url,
            interval: interval.unwrap_or(Duration::from_secs(5)),
        })
    }

    /// `[gate.prometheus]`: a server and the label holding each target's `{addr}`.
    fn prometheus_source(
        &self,
        p: &RawPrometheus,
        source_span: Range<usize>,
    ) -> Result<SourceSpec, Error> {
        let url = p.url.get_ref().trim_end_matches('/').to_string();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return self.err(
                p.url.span(),
                format!("prometheus url {url:?} is not http(s)"),
            );
        }
        self.needs_attribute(source_span, "addr", "matched against instance_label")?;
        let instance_label = p
            .instance_label
            .as_ref()
            .map_or_else(|| "instance".to_string(), |l| l.get_ref().clone());
        if !is_label_name(&instance_label) {
            return self.err(
                p.instance_label.as_ref().map_or(0..0, |l| l.span()),
                format!("{instance_label:?} is not a label name"),
            );
        }
        Ok(SourceSpec::Prometheus {
            url,
            instance_label,
        })
    }

    /// Every target has attribute `name`, used as `what`.
    fn needs_attribute(&self, span: Range<usize>, name: &str, what: &str) -> Result<(), Error> {
        let missing = self.targets.iter().find(|t| {
            !self
                .attributes
                .get(*t)
                .is_some_and(|a| a.contains_key(name))
        });
        match missing {
            Some(t) => self.err(
                span,
                format!("{{{name}}}: target {t} has no attribute {name:?} ({what})"),
            ),
            None => Ok(()),
        }
    }

    /// `[gate.metrics.NAME]`: exactly the analysis file's metrics, each read
    /// as its kind allows.
    fn metric_mappings(
        &self,
        g: &Spanned<RawCanaryGate>,
        analysis_path: &Path,
        analysis: &AnalysisConfig,
    ) -> Result<BTreeMap<String, MetricMapping>, Error> {
        let empty = BTreeMap::new();
        let raw = g.get_ref().metrics.as_ref();
        let tables = raw.map_or(&empty, |m| m.get_ref());
        let span = raw.map_or_else(|| g.span(), |m| m.span());
        if let Some(m) = analysis
            .metrics
            .iter()
            .find(|m| !tables.keys().any(|k| k.get_ref() == &m.name))
        {
            return self.err(
                span,
                format!(
                    "metric {:?} of analysis file {} has no [gate.metrics.{}] table saying how to read it",
                    m.name,
                    analysis_path.display(),
                    m.name
                ),
            );
        }
        let mut metrics = BTreeMap::new();
        for (name, table) in tables {
            let Some(cfg) = analysis.metrics.iter().find(|m| &m.name == name.get_ref()) else {
                return self.err(
                    name.span(),
                    format!(
                        "metric {:?} is not in analysis file {}",
                        name.get_ref(),
                        analysis_path.display()
                    ),
                );
            };
            let metric = Metric {
                name,
                kind: cfg.kind,
                analysis_path,
            };
            metrics.insert(name.get_ref().clone(), self.metric_mapping(&metric, table)?);
        }
        Ok(metrics)
    }

    /// One metric: a histogram family, or events out of trials.
    fn metric_mapping(
        &self,
        m: &Metric<'_>,
        table: &Spanned<RawMetric>,
    ) -> Result<MetricMapping, Error> {
        let r = table.get_ref();
        match (&r.histogram, &r.events, &r.trials) {
            (Some(h), None, None) => self.histogram_mapping(m, table, h),
            (None, Some(e), Some(t)) => self.count_mapping(m, table, e, t),
            _ => self.err(
                table.span(),
                format!(
                    "metric {:?}: give either histogram = \"FAMILY\" or both events and trials",
                    m.name.get_ref()
                ),
            ),
        }
    }

    fn histogram_mapping(
        &self,
        m: &Metric<'_>,
        table: &Spanned<RawMetric>,
        h: &Spanned<String>,
    ) -> Result<MetricMapping, Error> {
        let r = table.get_ref();
        if m.kind == MetricKind::Count {
            return self.err(
                h.span(),
                format!(
                    "metric {:?} is a count in {}: read it with events and trials, not a histogram",
                    m.name.get_ref(),
                    m.analysis_path.display()
                ),
            );
        }
        if !is_metric_name(h.get_ref()) {
            return self.err(h.span(), format!("{:?} is not a metric name", h.get_ref()));
        }
        let scale = match &r.scale {
            Some(s) if !(s.get_ref().is_finite() && *s.get_ref() > 0.0) => {
                return self.err(s.span(), "scale must be a positive number");
            }
            Some(s) => *s.get_ref(),
            None => 1.0,
        };
        Ok(MetricMapping::Histogram {
            family: h.get_ref().clone(),
            scale,
            labels: self.labels(table.span(), &r.labels)?,
        })
    }

    fn count_mapping(
        &self,
        m: &Metric<'_>,
        table: &Spanned<RawMetric>,
        events: &Spanned<RawCounter>,
        trials: &Spanned<RawCounter>,
    ) -> Result<MetricMapping, Error> {
        let r = table.get_ref();
        if !matches!(m.kind, MetricKind::Count | MetricKind::Ratio) {
            return self.err(
                table.span(),
                format!(
                    "metric {:?} is a {} metric in {}: read it from a histogram, not events and trials",
                    m.name.get_ref(),
                    format!("{:?}", m.kind).to_lowercase(),
                    m.analysis_path.display()
                ),
            );
        }
        if let Some(s) = &r.scale {
            return self.err(s.span(), "scale is only used with histogram");
        }
        if r.labels.is_some() {
            return self.err(
                table.span(),
                "labels go inside events and trials for a count metric",
            );
        }
        Ok(MetricMapping::Count {
            events: self.counter(table.span(), events.get_ref())?,
            trials: self.counter(table.span(), trials.get_ref())?,
        })
    }

    /// A counter and its labels; bad label names are named at `table`.
    fn counter(&self, table: Range<usize>, c: &RawCounter) -> Result<CounterSelector, Error> {
        if !is_metric_name(c.counter.get_ref()) {
            return self.err(
                c.counter.span(),
                format!("{:?} is not a metric name", c.counter.get_ref()),
            );
        }
        Ok(CounterSelector {
            counter: c.counter.get_ref().clone(),
            labels: self.labels(table, &c.labels)?,
        })
    }

    fn labels(
        &self,
        table: Range<usize>,
        labels: &Option<BTreeMap<String, String>>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let labels = labels.clone().unwrap_or_default();
        if let Some(k) = labels.keys().find(|k| !is_label_name(k)) {
            return self.err(table, format!("{k:?} is not a label name"));
        }
        Ok(labels)
    }
}

/// A metric of the analysis file, as its mapping is checked.
struct Metric<'a> {
    name: &'a Spanned<String>,
    kind: MetricKind,
    analysis_path: &'a Path,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_gate_keys_are_its_fields() {
        assert_eq!(
            kinds()[1],
            (
                "canary",
                &[
                    "analysis",
                    "lookback",
                    "source",
                    "scrape",
                    "prometheus",
                    "metrics"
                ][..]
            )
        );
        assert_eq!(kinds()[0], ("command", &["command"][..]));
    }
}
