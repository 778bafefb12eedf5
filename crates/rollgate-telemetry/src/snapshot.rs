//! Point-in-time reads of the registry: what the canary engine consumes in
//! process, and what the Prometheus text exposition is rendered from.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::Error;

/// The type of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Monotonic count.
    Counter,
    /// Value that goes up and down.
    Gauge,
    /// Distribution in fixed buckets.
    Histogram,
}

impl MetricKind {
    /// The Prometheus `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// Every metric of a registry at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Labels put on every series at exposition (`service`, `version`, `cohort`).
    pub constant_labels: BTreeMap<String, String>,
    /// Metric families sorted by name.
    pub families: Vec<FamilySnapshot>,
    /// Registrations dropped because the name was already used by another kind.
    pub kind_conflicts: u64,
}

/// One metric name with all its series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilySnapshot {
    /// Exposed name (sanitized; counters end in `_total`).
    pub name: String,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Description given with `describe_*!`, if any.
    pub help: Option<String>,
    /// Unit given with `describe_*!`, if any.
    pub unit: Option<String>,
    /// Series sorted by label set.
    pub series: Vec<SeriesSnapshot>,
}

/// One label set of a family and its value. Constant labels are not repeated here.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesSnapshot {
    /// The series' own labels.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: Value,
}

/// The value of one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    /// Counter total.
    Counter(u64),
    /// Gauge value.
    Gauge(f64),
    /// Histogram buckets.
    Histogram(HistogramSnapshot),
}

/// A fixed-bucket histogram read.
///
/// ```
/// use rollgate_telemetry::HistogramSnapshot;
///
/// let h = HistogramSnapshot { bounds: vec![0.1, 0.2, 0.4], counts: vec![50, 40, 10, 0], sum: 12.0 };
/// assert_eq!(h.count(), 100);
/// let p90 = h.quantile(0.9).unwrap_or(f64::NAN);
/// assert!((p90 - 0.2).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramSnapshot {
    /// Upper bounds (inclusive) of the finite buckets, increasing.
    pub bounds: Vec<f64>,
    /// Per-bucket counts (not cumulative); `bounds.len() + 1` entries, the last is `+Inf`.
    pub counts: Vec<u64>,
    /// Sum of all recorded values.
    pub sum: f64,
}

impl HistogramSnapshot {
    /// Number of recorded values.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Mean of the recorded values, `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        (n > 0).then(|| self.sum / n as f64)
    }

    /// Estimates the `q` quantile (0..=1) the way Prometheus'
    /// `histogram_quantile` does: linear interpolation inside the bucket that
    /// holds the rank; a rank in the `+Inf` bucket gives the highest finite bound.
    /// `None` when empty or `q` is outside 0..=1.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total as f64;
        let mut cumulative = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            let before = cumulative;
            cumulative += c;
            if (cumulative as f64) >= rank && c > 0 {
                let Some(&upper) = self.bounds.get(i) else {
                    return self.bounds.last().copied();
                };
                let lower = match i {
                    0 if upper > 0.0 => 0.0,
                    0 => return Some(upper),
                    _ => self.bounds[i - 1],
                };
                let fraction = (rank - before as f64) / c as f64;
                return Some(lower + (upper - lower) * fraction);
            }
        }
        self.bounds.last().copied()
    }

    /// Adds `other` into `self` (same bucket layout required).
    ///
    /// # Errors
    /// [`Error::BucketMismatch`] when the bounds differ.
    pub fn merge(&mut self, other: &HistogramSnapshot, name: &str) -> Result<(), Error> {
        if self.bounds != other.bounds {
            return Err(Error::BucketMismatch { name: name.into() });
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        Ok(())
    }

    /// What was recorded between `earlier` and `self` (a window), for
    /// in-process analysis of the last N seconds.
    ///
    /// # Errors
    /// [`Error::BucketMismatch`] when the bounds differ.
    pub fn since(&self, earlier: &HistogramSnapshot, name: &str) -> Result<Self, Error> {
        if self.bounds != earlier.bounds {
            return Err(Error::BucketMismatch { name: name.into() });
        }
        Ok(Self {
            bounds: self.bounds.clone(),
            counts: self
                .counts
                .iter()
                .zip(&earlier.counts)
                .map(|(a, b)| a.saturating_sub(*b))
                .collect(),
            sum: self.sum - earlier.sum,
        })
    }
}

fn matches(labels: &BTreeMap<String, String>, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| labels.get(*k).is_some_and(|have| have == v))
}

impl Snapshot {
    /// The family with this exposed name.
    pub fn family(&self, name: &str) -> Option<&FamilySnapshot> {
        self.families
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.families.get(i))
    }

    fn series<'a>(
        &'a self,
        name: &str,
        want: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a SeriesSnapshot> + 'a {
        // A wanted constant label must match the constant value, and is not
        // looked up in the series' own labels.
        let (constant, own): (Vec<_>, Vec<_>) = want
            .iter()
            .copied()
            .partition(|(k, _)| self.constant_labels.contains_key(*k));
        let constant_ok = constant
            .iter()
            .all(|(k, v)| self.constant_labels.get(*k).is_some_and(|c| c == v));
        self.family(name)
            .into_iter()
            .filter(move |_| constant_ok)
            .flat_map(|f| f.series.iter())
            .filter(move |s| matches(&s.labels, &own))
    }

    /// The value of the counter series whose labels include all of `labels`
    /// (the first in label order when several match).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<u64> {
        self.series(name, labels).find_map(|s| match s.value {
            Value::Counter(v) => Some(v),
            _ => None,
        })
    }

    /// Sum of every counter series whose labels include all of `labels`.
    pub fn counter_sum(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.series(name, labels)
            .filter_map(|s| match s.value {
                Value::Counter(v) => Some(v),
                _ => None,
            })
            .sum()
    }

    /// The value of the first gauge series whose labels include all of `labels`.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series(name, labels).find_map(|s| match s.value {
            Value::Gauge(v) => Some(v),
            _ => None,
        })
    }

    /// All histogram series whose labels include all of `labels`, merged into
    /// one (e.g. every route of the canary cohort). `None` when nothing matches.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<HistogramSnapshot> {
        let mut merged: Option<HistogramSnapshot> = None;
        for s in self.series(name, labels) {
            if let Value::Histogram(h) = &s.value {
                match &mut merged {
                    None => merged = Some(h.clone()),
                    // Series of one family share the registry's bucket layout
                    // unless configured otherwise; skip a mismatching one.
                    Some(m) => {
                        let _ = m.merge(h, name);
                    }
                }
            }
        }
        merged
    }

    /// Renders the Prometheus text exposition format (0.0.4): `# HELP`,
    /// `# TYPE`, constant labels on every series, histograms as cumulative
    /// `_bucket{le=..}` plus `_sum` and `_count`.
    pub fn to_prometheus_text(&self) -> String {
        let mut out = String::with_capacity(256 * self.families.len().max(1));
        for family in &self.families {
            let help = family
                .help
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| family.name.replace('_', " "));
            let _ = writeln!(out, "# HELP {} {}", family.name, escape_help(&help));
            let _ = writeln!(out, "# TYPE {} {}", family.name, family.kind.as_str());
            for series in &family.series {
                let mut labels = self.constant_labels.clone();
                labels.extend(series.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
                match &series.value {
                    Value::Counter(v) => {
                        write_sample(&mut out, &family.name, "", &labels, None, &v.to_string());
                    }
                    Value::Gauge(v) => {
                        write_sample(&mut out, &family.name, "", &labels, None, &fmt_f64(*v));
                    }
                    Value::Histogram(h) => {
                        let mut cumulative = 0u64;
                        for (i, c) in h.counts.iter().enumerate() {
                            cumulative += c;
                            let le = h
                                .bounds
                                .get(i)
                                .map_or_else(|| "+Inf".to_owned(), |b| fmt_f64(*b));
                            write_sample(
                                &mut out,
                                &family.name,
                                "_bucket",
                                &labels,
                                Some(&le),
                                &cumulative.to_string(),
                            );
                        }
                        write_sample(
                            &mut out,
                            &family.name,
                            "_sum",
                            &labels,
                            None,
                            &fmt_f64(h.sum),
                        );
                        write_sample(
                            &mut out,
                            &family.name,
                            "_count",
                            &labels,
                            None,
                            &cumulative.to_string(),
                        );
                    }
                }
            }
        }
        out
    }
}

fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &BTreeMap<String, String>,
    le: Option<&str>,
    value: &str,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        let pairs = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(le.map(|le| ("le", le)));
        for (k, v) in pairs {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_label_value_into(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

fn escape_label_value_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(h: &str) -> String {
    h.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Formats a float the way Prometheus parses it (`+Inf`, `-Inf`, `NaN`).
pub(crate) fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_prometheus() {
        let h = HistogramSnapshot {
            bounds: vec![1.0, 2.0],
            counts: vec![0, 10, 0],
            sum: 15.0,
        };
        assert_eq!(h.quantile(0.5), Some(1.5));
        assert_eq!(h.quantile(1.0), Some(2.0));
        assert_eq!(h.quantile(1.5), None);
        let inf = HistogramSnapshot {
            bounds: vec![1.0],
            counts: vec![0, 3],
            sum: 9.0,
        };
        assert_eq!(inf.quantile(0.99), Some(1.0));
    }

    #[test]
    fn since_gives_the_window_between_two_reads() {
        let a = HistogramSnapshot {
            bounds: vec![1.0],
            counts: vec![1, 1],
            sum: 3.0,
        };
        let b = HistogramSnapshot {
            bounds: vec![1.0],
            counts: vec![4, 1],
            sum: 5.0,
        };
        let w = b.since(&a, "x").expect("same layout");
        assert_eq!(w.counts, vec![3, 0]);
        let c = HistogramSnapshot {
            bounds: vec![2.0],
            counts: vec![0, 0],
            sum: 0.0,
        };
        assert!(c.since(&a, "x").is_err());
    }

    #[test]
    fn exposition_escapes_label_values_and_formats_infinities() {
        let snap = Snapshot {
            constant_labels: BTreeMap::from([("service".into(), "a\"b".into())]),
            families: vec![FamilySnapshot {
                name: "g".into(),
                kind: MetricKind::Gauge,
                help: Some("line\nbreak".into()),
                unit: None,
                series: vec![SeriesSnapshot {
                    labels: BTreeMap::from([("path".into(), "c:\\d\n".into())]),
                    value: Value::Gauge(f64::INFINITY),
                }],
            }],
            kind_conflicts: 0,
        };
        assert_eq!(
            snap.to_prometheus_text(),
            "# HELP g line\\nbreak\n# TYPE g gauge\ng{path=\"c:\\\\d\\n\",service=\"a\\\"b\"} +Inf\n"
        );
    }
}
