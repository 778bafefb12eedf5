//! `ANALYSIS.toml`: what to judge and how (see the crate README for every key).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::CanaryError;
use crate::stats::MwMethod;

/// The whole analysis configuration.
///
/// ```
/// use rollgate_canary::config::AnalysisConfig;
/// let cfg = AnalysisConfig::from_toml_str(r#"
/// alpha = 0.01
/// [score]
/// pass = 95
/// marginal = 75
/// [[metrics]]
/// name = "latency_ms"
/// kind = "latency"
/// bad = "increase"
/// threshold = { p99_max = 500.0 }
/// "#).unwrap();
/// assert_eq!(cfg.metrics[0].name, "latency_ms");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AnalysisConfig {
    /// Significance level of the statistical checks, in `(0, 0.5)`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Score thresholds.
    #[serde(default)]
    pub score: ScoreConfig,
    /// Optional weight per group name (groups without an entry weigh 1).
    #[serde(default)]
    pub groups: BTreeMap<String, f64>,
    /// Largest number of samples accepted per cohort (guards memory).
    #[serde(default = "default_max_samples")]
    pub max_samples: usize,
    /// The metrics to judge.
    #[serde(default)]
    pub metrics: Vec<MetricConfig>,
}

fn default_alpha() -> f64 {
    0.01
}
fn default_max_samples() -> usize {
    20_000_000
}

/// Pass and marginal score thresholds (0-100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ScoreConfig {
    /// `score >= pass`: promote.
    pub pass: f64,
    /// `marginal <= score < pass`: inconclusive; below: rollback.
    pub marginal: f64,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            pass: 95.0,
            marginal: 75.0,
        }
    }
}

/// What kind of data a metric holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Non-negative durations, one sample per request (or per-interval quantiles).
    Latency,
    /// Fractions in `[0, 1]` as values, or `{events, trials}` counts.
    Ratio,
    /// Event counts `{events, trials}` (errors out of requests).
    Count,
    /// Non-negative request rates as values, or `{events}` request counts.
    Throughput,
}

/// Which direction of change is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bad {
    /// Higher canary values fail.
    Increase,
    /// Lower canary values fail.
    Decrease,
    /// Any significant change fails.
    Either,
}

impl Bad {
    /// Whether a `high` result fails under this direction.
    pub fn high_fails(self) -> bool {
        matches!(self, Bad::Increase | Bad::Either)
    }
    /// Whether a `low` result fails under this direction.
    pub fn low_fails(self) -> bool {
        matches!(self, Bad::Decrease | Bad::Either)
    }
}

/// One metric's judgement settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricConfig {
    /// Metric name, as in the samples document or the source.
    pub name: String,
    /// Kind of data.
    pub kind: MetricKind,
    /// Which direction is bad.
    pub bad: Bad,
    /// Weight inside its group (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Group name (default `"default"`).
    #[serde(default = "default_group")]
    pub group: String,
    /// A failure of a critical metric rolls back whatever the score.
    #[serde(default)]
    pub critical: bool,
    /// Fewer samples in either cohort: no data for this metric (default 20).
    #[serde(default = "default_min_samples")]
    pub min_samples: usize,
    /// Fewer events in both cohorts together: the count tests have no data (default 0).
    #[serde(default)]
    pub min_events: u64,
    /// Fewer trials in either cohort: no data for count metrics (default 1).
    #[serde(default = "default_min_trials")]
    pub min_trials: u64,
    /// Unit of the values (e.g. `"ms"`); data that states another unit is rejected.
    #[serde(default)]
    pub unit: Option<String>,
    /// Absolute bounds on the canary.
    #[serde(default)]
    pub threshold: Option<Threshold>,
    /// Bounds relative to the baseline.
    #[serde(default)]
    pub relative: Option<Relative>,
    /// Mann-Whitney + Hodges-Lehmann location check (on by default for values).
    #[serde(default)]
    pub statistical: Option<Statistical>,
    /// Distribution check (one-sided Kolmogorov-Smirnov; on by default for latency).
    #[serde(default)]
    pub distribution: Option<Distribution>,
    /// Traffic-dip check: canary share of requests.
    #[serde(default)]
    pub traffic: Option<Traffic>,
    /// SLO burn-rate check.
    #[serde(default)]
    pub slo: Option<Slo>,
}

fn one() -> f64 {
    1.0
}
fn default_group() -> String {
    "default".to_string()
}
fn default_min_samples() -> usize {
    20
}
fn default_min_trials() -> u64 {
    1
}

/// Absolute bounds on the canary cohort.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Threshold {
    /// Canary median at most this.
    pub p50_max: Option<f64>,
    /// Canary p95 at most this.
    pub p95_max: Option<f64>,
    /// Canary p99 at most this.
    pub p99_max: Option<f64>,
    /// Canary mean at most this.
    pub mean_max: Option<f64>,
    /// Canary ratio (events / trials, or mean of ratio values) at most this.
    pub ratio_max: Option<f64>,
    /// Canary mean (throughput floor) at least this.
    pub min: Option<f64>,
}

/// Bounds relative to the baseline, in percent of the baseline value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Relative {
    /// Canary at most this many percent above the baseline.
    pub max_increase_pct: Option<f64>,
    /// Canary at most this many percent below the baseline.
    pub max_decrease_pct: Option<f64>,
}

/// Mann-Whitney U + Hodges-Lehmann settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Statistical {
    /// Run the check (default true for value metrics).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// p-value method.
    #[serde(default)]
    pub method: MwMethod,
    /// Smallest shift that matters, in percent of the baseline median. The
    /// bound is fixed by the baseline, not scaled by the measured shift.
    /// Defaults to the relative bound in the bad direction, else 1 %.
    pub min_effect_pct: Option<f64>,
    /// Smallest shift that matters, in the metric's unit (added to the percent bound).
    #[serde(default)]
    pub min_effect: f64,
}

impl Default for Statistical {
    fn default() -> Self {
        Self {
            enabled: true,
            method: MwMethod::Auto,
            min_effect_pct: None,
            min_effect: 0.0,
        }
    }
}

fn yes() -> bool {
    true
}

/// Distribution (one-sided Kolmogorov-Smirnov) settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Distribution {
    /// Run the check (default true for latency).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Smallest share of the canary's mass beyond the scaled baseline that
    /// matters (the one-sided KS distance must exceed it as well as being
    /// significant), default 0: any significant share fails.
    #[serde(default = "default_shifted_fraction")]
    pub max_shifted_fraction: f64,
}

impl Default for Distribution {
    fn default() -> Self {
        Self {
            enabled: true,
            max_shifted_fraction: default_shifted_fraction(),
        }
    }
}

fn default_shifted_fraction() -> f64 {
    0.0
}

/// Traffic-dip settings: the canary should receive `expected_share` of the
/// requests of both cohorts together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Traffic {
    /// Expected canary share of all requests, in `(0, 1)`.
    pub expected_share: f64,
    /// Largest allowed dip below the expected share, in percent of it (default 20).
    #[serde(default = "default_dip")]
    pub max_dip_pct: f64,
}

fn default_dip() -> f64 {
    20.0
}

/// SLO burn-rate settings (multi-window: both the whole window and the
/// `recent` window of the data must burn too fast to fail).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Slo {
    /// Objective as a success fraction, e.g. 0.999.
    pub objective: f64,
    /// Largest allowed burn rate (error ratio / error budget), e.g. 14.4.
    pub max_burn: f64,
}

impl AnalysisConfig {
    /// Parses and validates `ANALYSIS.toml` text.
    pub fn from_toml_str(text: &str) -> Result<Self, CanaryError> {
        let cfg: AnalysisConfig = toml::from_str(text)
            .map_err(|e| CanaryError::config("ANALYSIS.toml", e.to_string().trim().to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every bound, weight and name; the error names the key.
    pub fn validate(&self) -> Result<(), CanaryError> {
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(CanaryError::config(
                "alpha",
                format!("{} is not in (0, 0.5)", self.alpha),
            ));
        }
        let s = self.score;
        if !(0.0..=100.0).contains(&s.pass) || !(0.0..=100.0).contains(&s.marginal) {
            return Err(CanaryError::config(
                "score",
                "pass and marginal must lie in 0..=100",
            ));
        }
        if s.marginal > s.pass {
            return Err(CanaryError::config(
                "score.marginal",
                format!("{} is above score.pass {}", s.marginal, s.pass),
            ));
        }
        for (g, w) in &self.groups {
            if !(w.is_finite() && *w >= 0.0) {
                return Err(CanaryError::config(
                    format!("groups.{g}"),
                    format!("weight {w} is not a finite non-negative number"),
                ));
            }
        }
        if self.max_samples == 0 {
            return Err(CanaryError::config("max_samples", "must be at least 1"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, m) in self.metrics.iter().enumerate() {
            let at = |k: &str| format!("metrics[{i}] ({}).{k}", m.name);
            if m.name.trim().is_empty() {
                return Err(CanaryError::config(
                    format!("metrics[{i}].name"),
                    "is empty",
                ));
            }
            if !seen.insert(m.name.as_str()) {
                return Err(CanaryError::config(
                    format!("metrics[{i}].name"),
                    format!("metric \"{}\" is configured twice", m.name),
                ));
            }
            if !(m.weight.is_finite() && m.weight >= 0.0) {
                return Err(CanaryError::config(
                    at("weight"),
                    format!("{} is not a finite non-negative number", m.weight),
                ));
            }
            if m.min_samples == 0 {
                return Err(CanaryError::config(at("min_samples"), "must be at least 1"));
            }
            let finite = |k: &str, v: Option<f64>| -> Result<(), CanaryError> {
                match v {
                    Some(v) if !v.is_finite() => Err(CanaryError::config(
                        at(k),
                        format!("{v} is not a finite number"),
                    )),
                    _ => Ok(()),
                }
            };
            if let Some(t) = &m.threshold {
                finite("threshold.p50_max", t.p50_max)?;
                finite("threshold.p95_max", t.p95_max)?;
                finite("threshold.p99_max", t.p99_max)?;
                finite("threshold.mean_max", t.mean_max)?;
                finite("threshold.ratio_max", t.ratio_max)?;
                finite("threshold.min", t.min)?;
                let quantile_bound =
                    t.p50_max.is_some() || t.p95_max.is_some() || t.p99_max.is_some();
                if quantile_bound && m.kind == MetricKind::Count {
                    return Err(CanaryError::config(
                        at("threshold"),
                        "count metrics have no quantiles; use ratio_max",
                    ));
                }
            }
            if let Some(r) = &m.relative {
                for (k, v) in [
                    ("relative.max_increase_pct", r.max_increase_pct),
                    ("relative.max_decrease_pct", r.max_decrease_pct),
                ] {
                    finite(k, v)?;
                    if let Some(v) = v
                        && v < 0.0
                    {
                        return Err(CanaryError::config(at(k), format!("{v} is negative")));
                    }
                }
                if let Some(v) = r.max_decrease_pct
                    && v > 100.0
                {
                    return Err(CanaryError::config(
                        at("relative.max_decrease_pct"),
                        format!("{v} is above 100"),
                    ));
                }
            }
            if let Some(st) = &m.statistical {
                finite("statistical.min_effect_pct", st.min_effect_pct)?;
                if !(st.min_effect.is_finite() && st.min_effect >= 0.0)
                    || st.min_effect_pct.is_some_and(|v| v < 0.0)
                {
                    return Err(CanaryError::config(
                        at("statistical"),
                        "effect bounds must be finite and non-negative",
                    ));
                }
            }
            if let Some(d) = &m.distribution
                && !(d.max_shifted_fraction >= 0.0 && d.max_shifted_fraction < 1.0)
            {
                return Err(CanaryError::config(
                    at("distribution.max_shifted_fraction"),
                    format!("{} is not in [0, 1)", d.max_shifted_fraction),
                ));
            }
            if let Some(t) = &m.traffic {
                if !(t.expected_share > 0.0 && t.expected_share < 1.0) {
                    return Err(CanaryError::config(
                        at("traffic.expected_share"),
                        format!("{} is not in (0, 1)", t.expected_share),
                    ));
                }
                if !(t.max_dip_pct >= 0.0 && t.max_dip_pct <= 100.0) {
                    return Err(CanaryError::config(
                        at("traffic.max_dip_pct"),
                        format!("{} is not in 0..=100", t.max_dip_pct),
                    ));
                }
            }
            if let Some(slo) = &m.slo {
                if !(slo.objective > 0.0 && slo.objective < 1.0) {
                    return Err(CanaryError::config(
                        at("slo.objective"),
                        format!("{} is not in (0, 1)", slo.objective),
                    ));
                }
                if !(slo.max_burn.is_finite() && slo.max_burn > 0.0) {
                    return Err(CanaryError::config(
                        at("slo.max_burn"),
                        format!("{} is not a positive number", slo.max_burn),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The configured weight of `group` (1 when not listed).
    pub fn group_weight(&self, group: &str) -> f64 {
        self.groups.get(group).copied().unwrap_or(1.0)
    }
}

impl MetricConfig {
    /// A metric with default settings and no checks; add checks with the
    /// `with_*` methods.
    ///
    /// ```
    /// use rollgate_canary::config::{Bad, MetricConfig, MetricKind, Threshold};
    /// let m = MetricConfig::new("latency_ms", MetricKind::Latency, Bad::Increase)
    ///     .with_relative_increase_pct(5.0)
    ///     .critical(true);
    /// assert!(m.critical);
    /// ```
    pub fn new(name: impl Into<String>, kind: MetricKind, bad: Bad) -> Self {
        Self {
            name: name.into(),
            kind,
            bad,
            weight: 1.0,
            group: default_group(),
            critical: false,
            min_samples: default_min_samples(),
            min_events: 0,
            min_trials: default_min_trials(),
            unit: None,
            threshold: None,
            relative: None,
            statistical: None,
            distribution: None,
            traffic: None,
            slo: None,
        }
    }
    /// Marks the metric critical (a failure vetoes the score).
    pub fn critical(mut self, critical: bool) -> Self {
        self.critical = critical;
        self
    }
    /// Sets the weight.
    pub fn weight(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }
    /// Sets the minimum samples per cohort.
    pub fn min_samples(mut self, n: usize) -> Self {
        self.min_samples = n;
        self
    }
    /// Sets `relative.max_increase_pct`.
    pub fn with_relative_increase_pct(mut self, pct: f64) -> Self {
        let mut r = self.relative.unwrap_or_default();
        r.max_increase_pct = Some(pct);
        self.relative = Some(r);
        self
    }
    /// Sets the absolute thresholds.
    pub fn with_threshold(mut self, t: Threshold) -> Self {
        self.threshold = Some(t);
        self
    }
    /// Sets the traffic-dip check.
    pub fn with_traffic(mut self, expected_share: f64, max_dip_pct: f64) -> Self {
        self.traffic = Some(Traffic {
            expected_share,
            max_dip_pct,
        });
        self
    }
    /// Sets the SLO burn-rate check.
    pub fn with_slo(mut self, objective: f64, max_burn: f64) -> Self {
        self.slo = Some(Slo {
            objective,
            max_burn,
        });
        self
    }
}

impl Threshold {
    /// A threshold with only `p99_max`.
    pub fn p99_max(v: f64) -> Self {
        Self {
            p99_max: Some(v),
            ..Self::default()
        }
    }
    /// A threshold with only `ratio_max`.
    pub fn ratio_max(v: f64) -> Self {
        Self {
            ratio_max: Some(v),
            ..Self::default()
        }
    }
    /// A threshold with only the floor `min`.
    pub fn min(v: f64) -> Self {
        Self {
            min: Some(v),
            ..Self::default()
        }
    }
}

impl AnalysisConfig {
    /// A configuration with default alpha and score thresholds.
    pub fn new(metrics: Vec<MetricConfig>) -> Self {
        Self {
            alpha: default_alpha(),
            score: ScoreConfig::default(),
            groups: BTreeMap::new(),
            max_samples: default_max_samples(),
            metrics,
        }
    }
    /// Sets alpha.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.alpha = alpha;
        self
    }
}
