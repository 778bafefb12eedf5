//! Samples: what a cohort holds, the `SAMPLES.json` document, summaries.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::CanaryError;
use crate::histogram::{self, Histogram};
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
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// One number per observation (latencies, per-interval rates...).
    Values(Vec<f64>),
    /// Event counts.
    Counts(Counts),
    /// Cumulative histogram buckets (Prometheus's `_bucket` series): the
    /// checks read quantiles as `histogram_quantile` does and run the rank
    /// tests over buckets. In `SAMPLES.json`:
    /// `{"histogram": {"le": [0.005, 0.01, "+Inf"], "counts": [3, 9, 10]}}`.
    Histogram(Histogram),
}

impl Samples {
    /// Number of observations (values, trials for counts, or the
    /// histogram's count).
    pub fn len(&self) -> usize {
        match self {
            Samples::Values(v) => v.len(),
            Samples::Counts(c) => usize::try_from(c.trials).unwrap_or(usize::MAX),
            Samples::Histogram(h) => usize::try_from(h.count()).unwrap_or(usize::MAX),
        }
    }
    /// Whether there is nothing to judge.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && !matches!(self, Samples::Counts(c) if c.events > 0)
    }
}

impl Serialize for Samples {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Samples::Values(v) => v.serialize(s),
            Samples::Counts(c) => c.serialize(s),
            Samples::Histogram(h) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("histogram", h)?;
                m.end()
            }
        }
    }
}

/// Where a samples document failed validation beyond its JSON syntax:
/// `(path, why)`, e.g. `("metrics.lat.canary.histogram.counts[3]", "...")`.
type Failure = RefCell<Option<(String, String)>>;

/// Deserializes one cohort's samples, knowing (when parsed inside a
/// `SAMPLES.json`) which metric and cohort they are, so a histogram that
/// fails validation is named.
struct SamplesSeed<'a> {
    at: String,
    failure: &'a Failure,
}

impl<'de> DeserializeSeed<'de> for SamplesSeed<'_> {
    type Value = Samples;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Samples, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SamplesSeed<'_> {
    type Value = Samples;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "an array of numbers, {\"events\": N, \"trials\": M} or {\"histogram\": {\"le\": [...], \"counts\": [...]}}",
        )
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Samples, A::Error> {
        // Streams into one Vec<f64>: 10^7 samples cost 80 MB, not a Value tree.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
        while let Some(v) = seq.next_element::<f64>()? {
            out.push(v);
        }
        Ok(Samples::Values(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Samples, A::Error> {
        let mut hist: Option<RawHistogram> = None;
        let (mut events, mut trials, mut recent) = (None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "histogram" if hist.is_none() => hist = Some(map.next_value()?),
                "events" if events.is_none() => events = Some(map.next_value::<u64>()?),
                "trials" if trials.is_none() => trials = Some(map.next_value::<u64>()?),
                "recent" if recent.is_none() => recent = Some(map.next_value::<RecentCounts>()?),
                "histogram" | "events" | "trials" | "recent" => {
                    return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                }
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["events", "trials", "recent", "histogram"],
                    ));
                }
            }
        }
        match hist {
            Some(_) if events.is_some() || trials.is_some() || recent.is_some() => Err(
                de::Error::custom("a cohort is either counts or a histogram, not both"),
            ),
            Some(raw) => match raw.build() {
                Ok(h) => Ok(Samples::Histogram(h)),
                Err((sub, why)) => {
                    let at = format!("{}.histogram{sub}", self.at);
                    let msg = format!("{at}: {why}");
                    *self.failure.borrow_mut() = Some((at, why));
                    Err(de::Error::custom(msg))
                }
            },
            None => Ok(Samples::Counts(Counts {
                events: events.ok_or_else(|| de::Error::missing_field("events"))?,
                trials: trials.unwrap_or(0),
                recent,
            })),
        }
    }
}

impl<'de> Deserialize<'de> for Samples {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let failure = Failure::default();
        SamplesSeed {
            at: "samples".into(),
            failure: &failure,
        }
        .deserialize(d)
    }
}

/// A histogram as written in JSON, before validation: bounds may be
/// numbers or strings (`"+Inf"`, `"0.005"`), counts any JSON number.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistogram {
    le: Vec<Bound>,
    counts: Vec<RawCount>,
    #[serde(default)]
    sum: Option<f64>,
}

impl RawHistogram {
    fn build(self) -> Result<Histogram, (String, String)> {
        let counts = self
            .counts
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                match c {
                    RawCount::Whole(u) => Ok(u),
                    RawCount::Negative(v) => Err(format!("negative count {v}")),
                    RawCount::Float(f) => histogram::whole_count(f),
                }
                .map_err(|why| (format!(".counts[{i}]"), why))
            })
            .collect::<Result<Vec<u64>, _>>()?;
        Histogram::checked(self.le.into_iter().map(|b| b.0).collect(), counts, self.sum)
    }
}

/// A bucket bound: a JSON number, or a string as Prometheus writes `le`
/// labels (`"+Inf"`, `"0.25"`, `"NaN"`: kept, then rejected by validation).
struct Bound(f64);

impl<'de> Deserialize<'de> for Bound {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Bound;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a bucket bound: a number or a string such as \"+Inf\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Bound, E> {
                Ok(Bound(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bound, E> {
                Ok(Bound(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bound, E> {
                Ok(Bound(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bound, E> {
                match v.trim() {
                    "+Inf" | "Inf" | "+inf" | "inf" => Ok(Bound(f64::INFINITY)),
                    "-Inf" | "-inf" => Ok(Bound(f64::NEG_INFINITY)),
                    "NaN" | "nan" => Ok(Bound(f64::NAN)),
                    t => t.parse::<f64>().map(Bound).map_err(|_| {
                        E::custom(format_args!("bucket bound \"{v}\" is not a number or +Inf"))
                    }),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A cumulative count as written: validated into a `u64` with its index.
enum RawCount {
    Whole(u64),
    Negative(i64),
    Float(f64),
}

impl<'de> Deserialize<'de> for RawCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawCount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a cumulative count")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawCount, E> {
                Ok(RawCount::Whole(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawCount, E> {
                Ok(u64::try_from(v).map_or(RawCount::Negative(v), RawCount::Whole))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawCount, E> {
                Ok(RawCount::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Both cohorts of one metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricSamples {
    /// Baseline cohort.
    pub baseline: Samples,
    /// Canary cohort.
    pub canary: Samples,
    /// Unit the values are in, checked against the config's `unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

struct MetricSeed<'a> {
    at: String,
    failure: &'a Failure,
}

impl<'de> DeserializeSeed<'de> for MetricSeed<'_> {
    type Value = MetricSamples;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<MetricSamples, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetricSeed<'_> {
    type Value = MetricSamples;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("{\"baseline\": ..., \"canary\": ...}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetricSamples, A::Error> {
        let (mut baseline, mut canary, mut unit) = (None, None, None);
        while let Some(key) = map.next_key::<String>()? {
            let seed = |c: Cohort| SamplesSeed {
                at: format!("{}.{c}", self.at),
                failure: self.failure,
            };
            match key.as_str() {
                "baseline" if baseline.is_none() => {
                    baseline = Some(map.next_value_seed(seed(Cohort::Baseline))?)
                }
                "canary" if canary.is_none() => {
                    canary = Some(map.next_value_seed(seed(Cohort::Canary))?)
                }
                "unit" if unit.is_none() => unit = map.next_value::<Option<String>>()?,
                "baseline" | "canary" | "unit" => {
                    return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                }
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["baseline", "canary", "unit"],
                    ));
                }
            }
        }
        Ok(MetricSamples {
            baseline: baseline.ok_or_else(|| de::Error::missing_field("baseline"))?,
            canary: canary.ok_or_else(|| de::Error::missing_field("canary"))?,
            unit,
        })
    }
}

impl<'de> Deserialize<'de> for MetricSamples {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let failure = Failure::default();
        MetricSeed {
            at: "metric".into(),
            failure: &failure,
        }
        .deserialize(d)
    }
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
    /// Two histogram cohorts.
    ///
    /// ```
    /// use rollgate_canary::{Histogram, MetricSamples};
    /// let le = vec![0.05, 0.1, 0.25, f64::INFINITY];
    /// let m = MetricSamples::histograms(
    ///     Histogram::new(le.clone(), vec![500, 900, 990, 1000])?,
    ///     Histogram::new(le, vec![480, 890, 992, 1000])?,
    /// );
    /// assert_eq!(m.canary.len(), 1000);
    /// # Ok::<(), rollgate_canary::CanaryError>(())
    /// ```
    pub fn histograms(baseline: Histogram, canary: Histogram) -> Self {
        Self {
            baseline: Samples::Histogram(baseline),
            canary: Samples::Histogram(canary),
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
///   "errors": {"baseline": {"events": 1, "trials": 100}, "canary": {"events": 0, "trials": 90}},
///   "latency_s": {"baseline": {"histogram": {"le": [0.1, 0.5, "+Inf"], "counts": [7, 9, 10]}},
///                 "canary":   {"histogram": {"le": [0.1, 0.5, "+Inf"], "counts": [6, 9, 10]}}}
/// }}"#).unwrap();
/// assert_eq!(s.metrics.len(), 3);
/// // A histogram that is not one is named by metric and cohort.
/// let e = SampleSet::from_json_str(r#"{"metrics": {"lat": {"baseline": [1],
///   "canary": {"histogram": {"le": [0.1, 0.5], "counts": [7, 9]}}}}}"#).unwrap_err();
/// assert!(e.to_string().starts_with("data metrics.lat.canary.histogram.le: the last bound is 0.5, not +Inf"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SampleSet {
    /// Samples per metric name.
    pub metrics: BTreeMap<String, MetricSamples>,
}

struct SetSeed<'a> {
    failure: &'a Failure,
}

impl<'de> DeserializeSeed<'de> for SetSeed<'_> {
    type Value = SampleSet;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<SampleSet, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SetSeed<'_> {
    type Value = SampleSet;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("{\"metrics\": {\"NAME\": {\"baseline\": ..., \"canary\": ...}}}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SampleSet, A::Error> {
        let mut metrics = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "metrics" if metrics.is_none() => {
                    metrics = Some(map.next_value_seed(MetricsSeed {
                        failure: self.failure,
                    })?)
                }
                "metrics" => return Err(de::Error::duplicate_field("metrics")),
                other => return Err(de::Error::unknown_field(other, &["metrics"])),
            }
        }
        Ok(SampleSet {
            metrics: metrics.ok_or_else(|| de::Error::missing_field("metrics"))?,
        })
    }
}

struct MetricsSeed<'a> {
    failure: &'a Failure,
}

impl<'de> DeserializeSeed<'de> for MetricsSeed<'_> {
    type Value = BTreeMap<String, MetricSamples>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MetricsSeed<'_> {
    type Value = BTreeMap<String, MetricSamples>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map from metric name to its samples")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let m = map.next_value_seed(MetricSeed {
                at: format!("metrics.{name}"),
                failure: self.failure,
            })?;
            out.insert(name, m);
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for SampleSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let failure = Failure::default();
        SetSeed { failure: &failure }.deserialize(d)
    }
}

impl SampleSet {
    /// Parses a `SAMPLES.json` document; errors carry line and column, and
    /// a histogram that fails validation is named by its path
    /// (`metrics.NAME.COHORT.histogram.counts[3]`).
    pub fn from_json_str(text: &str) -> Result<Self, CanaryError> {
        Self::parse_fast(text).map_or_else(|| Self::parse(text), Ok)
    }

    /// The document with its arrays of numbers parsed by the fast path
    /// (`fastjson`; on two threads when they are large), or `None` when
    /// anything in it is unusual or wrong: the ordinary parse then gives
    /// the same result or error serde_json alone would.
    fn parse_fast(text: &str) -> Option<Self> {
        use crate::fastjson::{self, Part};
        let outline = fastjson::outline(text)?;
        let b = text.as_bytes();
        let ranges: Vec<std::ops::Range<usize>> = outline
            .metrics
            .iter()
            .flat_map(|m| [&m.baseline, &m.canary])
            .filter_map(|p| match p {
                Part::Array(r) => Some(r.clone()),
                Part::Other(_) => None,
            })
            .collect();
        let parse = |r: &std::ops::Range<usize>| {
            fastjson::numbers_at(b, r.start).filter(|(_, end)| *end == r.end)
        };
        let total: usize = ranges.iter().map(|r| r.len()).sum();
        let mut parsed: Vec<Option<Vec<f64>>> = if ranges.len() > 1 && total > 1 << 20 {
            // Two threads, the arrays split by size (largest first, each to
            // the lighter side).
            let mut order: Vec<usize> = (0..ranges.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(ranges[i].len()));
            let (mut sides, mut load) = ([Vec::new(), Vec::new()], [0usize; 2]);
            for i in order {
                let side = usize::from(load[1] < load[0]);
                load[side] += ranges[i].len();
                sides[side].push(i);
            }
            let [a, b] = sides;
            let run = |side: &[usize]| -> Vec<(usize, Option<Vec<f64>>)> {
                side.iter()
                    .map(|&i| (i, parse(&ranges[i]).map(|(v, _)| v)))
                    .collect()
            };
            let (ra, rb) = std::thread::scope(|s| {
                let h = s.spawn(|| run(&b));
                (run(&a), h.join().ok())
            });
            let mut out: Vec<Option<Vec<f64>>> = vec![None; ranges.len()];
            for (i, v) in ra.into_iter().chain(rb?) {
                out[i] = v;
            }
            out
        } else {
            ranges.iter().map(|r| parse(r).map(|(v, _)| v)).collect()
        };
        let mut next = parsed.iter_mut();
        let mut metrics = BTreeMap::new();
        for m in &outline.metrics {
            let at = format!("metrics.{}", m.name);
            let mut cohort = |p: &Part<'_>, c: Cohort| -> Option<Samples> {
                match p {
                    Part::Array(_) => next.next()?.take().map(Samples::Values),
                    Part::Other(t) => {
                        let failure = Failure::default();
                        let mut de = serde_json::Deserializer::from_str(t);
                        let seed = SamplesSeed {
                            at: format!("{at}.{c}"),
                            failure: &failure,
                        };
                        seed.deserialize(&mut de)
                            .and_then(|s| de.end().map(|()| s))
                            .ok()
                    }
                }
            };
            let baseline = cohort(&m.baseline, Cohort::Baseline)?;
            let canary = cohort(&m.canary, Cohort::Canary)?;
            let unit = match m.unit {
                Some(t) => serde_json::from_str::<Option<String>>(t).ok()?,
                None => None,
            };
            metrics.insert(
                m.name.to_string(),
                MetricSamples {
                    baseline,
                    canary,
                    unit,
                },
            );
        }
        Some(SampleSet { metrics })
    }

    /// The ordinary parse (serde_json throughout).
    fn parse(text: &str) -> Result<Self, CanaryError> {
        let failure = Failure::default();
        let mut de = serde_json::Deserializer::from_str(text);
        let parsed = SetSeed { failure: &failure }
            .deserialize(&mut de)
            .and_then(|s| de.end().map(|()| s));
        parsed.map_err(|e| {
            if let Some((at, why)) = failure.take() {
                return CanaryError::data(
                    at,
                    format!(
                        "{why} (SAMPLES.json line {}, column {})",
                        e.line(),
                        e.column()
                    ),
                );
            }
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
    /// Summary of a histogram: quantiles as `histogram_quantile` gives
    /// them, the mean when the sum is known; no min or max (buckets do not
    /// say).
    pub fn of_histogram(h: &Histogram) -> Self {
        if h.count() == 0 {
            return Self::default();
        }
        Self {
            n: h.count(),
            mean: h.mean(),
            p50: Some(h.quantile(0.5)),
            p95: Some(h.quantile(0.95)),
            p99: Some(h.quantile(0.99)),
            ..Self::default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The fast path gives what the ordinary parse gives: the same set, or
    /// the same error (message and position).
    fn same_as_ordinary(doc: &str) -> Result<(), TestCaseError> {
        let fast = SampleSet::from_json_str(doc).map_err(|e| e.to_string());
        let slow = SampleSet::parse(doc).map_err(|e| e.to_string());
        let bits = |r: &Result<SampleSet, String>| {
            r.clone().map(|s| {
                s.metrics
                    .iter()
                    .map(|(k, m)| {
                        let f = |c: &Samples| match c {
                            Samples::Values(v) => {
                                format!("{:?}", v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                            }
                            other => format!("{other:?}"),
                        };
                        (k.clone(), f(&m.baseline), f(&m.canary), m.unit.clone())
                    })
                    .collect::<Vec<_>>()
            })
        };
        prop_assert_eq!(bits(&fast), bits(&slow), "{}", doc);
        Ok(())
    }

    #[test]
    fn fast_path_documents_equal_the_ordinary_parse() {
        let big: Vec<String> = (0..300_000)
            .map(|i| format!("{}.{}", i % 977, i % 13))
            .collect();
        let big = big.join(",");
        for doc in [
            r#"{"metrics": {"a": {"baseline": [1, 2.5, 3e2], "canary": [-0, 4]}}}"#.to_string(),
            r#"{"metrics": {"a": {"baseline": [], "canary": [1]}, "e": {"baseline": {"events": 1, "trials": 9}, "canary": {"events": 2, "trials": 9}}}}"#.to_string(),
            r#"{"metrics": {"h": {"baseline": {"histogram": {"le": [0.1, "+Inf"], "counts": [1, 2]}}, "canary": {"histogram": {"le": [0.1, "+Inf"], "counts": [1, 3]}}, "unit": "s"}}}"#.to_string(),
            // Errors: the ordinary path's message and position.
            r#"{"metrics": {"a": {"baseline": [1, "x"], "canary": [1]}}}"#.to_string(),
            r#"{"metrics": {"a": {"baseline": [1, 1e999], "canary": [1]}}}"#.to_string(),
            r#"{"metrics": {"a": {"baseline": [1, NaN], "canary": [1]}}}"#.to_string(),
            r#"{"metrics": {"h": {"baseline": {"histogram": {"le": [0.5, 0.1, "+Inf"], "counts": [1, 2, 3]}}, "canary": [1]}}}"#.to_string(),
            r#"{"metrics": {"a": {"baseline": [1], "canary": [1]}, "a": {"baseline": {"events": 1}, "canary": [2]}}}"#.to_string(),
            r#"{"metrics": {"a": {"baseline": [1], "canary": [1]}, "a": {"baseline": [3], "canary": [2]}}}"#.to_string(),
            r#"{"metrics": {"a": {"baseline": [1], "canary": [1], "extra": 1}}}"#.to_string(),
            r#"{"metrics": {"a": {"baseline": [1], "canary": [1]}}} trailing"#.to_string(),
            // Large enough for the two-thread split.
            format!(r#"{{"metrics": {{"a": {{"baseline": [{big}], "canary": [{big}, 1]}}, "b": {{"baseline": [{big}], "canary": [2]}}}}}}"#),
        ] {
            if let Err(e) = same_as_ordinary(&doc) {
                panic!("{e}");
            }
        }
        // The fast path itself took these (it declines only on errors or
        // a metric named twice).
        let ok = r#"{"metrics": {"a": {"baseline": [1, 2.5], "canary": [3]}, "e": {"baseline": {"events": 1, "trials": 9}, "canary": {"events": 2, "trials": 9}}}}"#;
        assert!(SampleSet::parse_fast(ok).is_some());
        let big = format!(r#"{{"metrics": {{"a": {{"baseline": [{big}], "canary": [{big}]}}}}}}"#);
        assert!(SampleSet::parse_fast(&big).is_some());
        assert!(
            SampleSet::parse_fast(r#"{"metrics": {"a": {"baseline": [1, "x"], "canary": [1]}}}"#)
                .is_none()
        );
    }

    proptest! {
        #[test]
        fn fast_path_equals_the_ordinary_parse(
            b in proptest::collection::vec(-1e6f64..1e6, 0..30),
            c in proptest::collection::vec(0u32..5000, 0..30),
            junk in proptest::option::of("[\\[\\]0-9a-z\",.:{} -]{1,6}"),
        ) {
            let fmt = |v: Vec<String>| format!("[{}]", v.join(", "));
            let b = fmt(b.iter().map(|x| format!("{x}")).collect());
            let mut c: Vec<String> = c.iter().map(u32::to_string).collect();
            if let Some(j) = junk {
                c.push(j);
            }
            let doc = format!(
                r#"{{"metrics": {{"lat": {{"baseline": {b}, "canary": {}}}, "err": {{"baseline": {{"events": 1, "trials": 5}}, "canary": {{"events": 0, "trials": 5}}}}}}}}"#,
                fmt(c)
            );
            same_as_ordinary(&doc)?;
        }
    }
}
