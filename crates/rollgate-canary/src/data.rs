//! Samples: what a cohort holds, the `SAMPLES.json` document, summaries.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::CanaryError;
use crate::stats;

/// Which side of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cohort {
    /// The current version, run alongside the canary.
    Baseline,
    /// The new version.
    Canary,
}

impl Cohort {
    /// `"baseline"` or `"canary"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cohort::Baseline => "baseline",
            Cohort::Canary => "canary",
        }
    }
}

impl fmt::Display for Cohort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Event counts: `events` out of `trials` (errors out of requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    /// Number of events (e.g. errors).
    pub events: u64,
    /// Number of trials (e.g. requests); 0 when only events are known.
    #[serde(default)]
    pub trials: u64,
    /// The same counts over a recent, shorter window (SLO multi-window burn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent: Option<RecentCounts>,
}

/// Counts over the recent (short) window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentCounts {
    /// Events in the recent window.
    pub events: u64,
    /// Trials in the recent window.
    pub trials: u64,
}

/// A cohort's samples for one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Samples {
    /// One number per observation (latencies, per-interval rates...).
    Values(Vec<f64>),
    /// Event counts.
    Counts(Counts),
}

impl Samples {
    /// Number of observations (values, or trials for counts).
    pub fn len(&self) -> usize {
        match self {
            Samples::Values(v) => v.len(),
            Samples::Counts(c) => usize::try_from(c.trials).unwrap_or(usize::MAX),
        }
    }
    /// Whether there is nothing to judge.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && !matches!(self, Samples::Counts(c) if c.events > 0)
    }
}

impl<'de> Deserialize<'de> for Samples {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Samples;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of numbers or {\"events\": N, \"trials\": M}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Samples, A::Error> {
                // Streams into one Vec<f64>: 10^7 samples cost 80 MB, not a Value tree.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(v) = seq.next_element::<f64>()? {
                    out.push(v);
                }
                Ok(Samples::Values(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Samples, A::Error> {
                let c = Counts::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Samples::Counts(c))
            }
        }
        d.deserialize_any(V)
    }
}

/// Both cohorts of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSamples {
    /// Baseline cohort.
    pub baseline: Samples,
    /// Canary cohort.
    pub canary: Samples,
    /// Unit the values are in, checked against the config's `unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl MetricSamples {
    /// Two value cohorts.
    pub fn values(baseline: Vec<f64>, canary: Vec<f64>) -> Self {
        Self {
            baseline: Samples::Values(baseline),
            canary: Samples::Values(canary),
            unit: None,
        }
    }
    /// Two count cohorts.
    pub fn counts(baseline: (u64, u64), canary: (u64, u64)) -> Self {
        let c = |(events, trials)| {
            Samples::Counts(Counts {
                events,
                trials,
                recent: None,
            })
        };
        Self {
            baseline: c(baseline),
            canary: c(canary),
            unit: None,
        }
    }
    /// The cohort's samples.
    pub fn cohort(&self, c: Cohort) -> &Samples {
        match c {
            Cohort::Baseline => &self.baseline,
            Cohort::Canary => &self.canary,
        }
    }
}

/// The `SAMPLES.json` document: `{"metrics": {"NAME": {"baseline": ..., "canary": ...}}}`.
///
/// ```
/// use rollgate_canary::data::SampleSet;
/// let s = SampleSet::from_json_str(r#"{"metrics": {
///   "latency_ms": {"baseline": [1, 2, 3], "canary": [2, 3, 4]},
///   "errors": {"baseline": {"events": 1, "trials": 100}, "canary": {"events": 0, "trials": 90}}
/// }}"#).unwrap();
/// assert_eq!(s.metrics.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSet {
    /// Samples per metric name.
    pub metrics: BTreeMap<String, MetricSamples>,
}

impl SampleSet {
    /// Parses a `SAMPLES.json` document; errors carry line and column.
    pub fn from_json_str(text: &str) -> Result<Self, CanaryError> {
        serde_json::from_str(text).map_err(|e| {
            let why = if e.to_string().contains("expected value") {
                format!("{e} (NaN, Infinity and bare words are not JSON numbers)")
            } else {
                e.to_string()
            };
            CanaryError::data("SAMPLES.json", why)
        })
    }
    /// Adds one metric's samples.
    pub fn insert(&mut self, name: impl Into<String>, samples: MetricSamples) -> &mut Self {
        self.metrics.insert(name.into(), samples);
        self
    }
}

/// A cohort summary reported beside each metric's result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of values (or trials for counts).
    pub n: u64,
    /// Mean of the values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Median.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    /// 95th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    /// 99th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    /// Smallest value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Events, for counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// `events / trials`, for counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

impl Summary {
    /// Summary of a sorted sample.
    pub fn of_sorted(v: &[f64]) -> Self {
        if v.is_empty() {
            return Self::default();
        }
        Self {
            n: v.len() as u64,
            mean: Some(stats::sum(v) / v.len() as f64),
            p50: Some(stats::quantile(v, 0.5)),
            p95: Some(stats::quantile(v, 0.95)),
            p99: Some(stats::quantile(v, 0.99)),
            min: v.first().copied(),
            max: v.last().copied(),
            events: None,
            ratio: None,
        }
    }
    /// Summary of counts.
    pub fn of_counts(c: &Counts) -> Self {
        Self {
            n: c.trials,
            events: Some(c.events),
            ratio: (c.trials > 0).then(|| c.events as f64 / c.trials as f64),
            ..Self::default()
        }
    }
}
