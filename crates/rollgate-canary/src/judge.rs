//! The judge: validates samples, runs each metric's checks, blends them into
//! a health score and reaches a verdict with the per-metric table behind it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::check::{self, CheckResult, Outcome, Statistics};
use crate::config::{AnalysisConfig, MetricConfig, MetricKind};
use crate::data::{Cohort, Counts, MetricSamples, SampleSet, Samples, Summary};
use crate::error::CanaryError;
use crate::histogram::Histogram;

/// What to do with the canary.
///
/// Exhaustive on purpose: a new verdict must break every caller's `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Healthy: go on to full rollout.
    Promote,
    /// Healthy so far: keep going to the next interval (analysis over time).
    Continue,
    /// Unhealthy: roll back.
    Rollback,
    /// Not enough data or a marginal score: neither promote nor roll back.
    Inconclusive,
}

impl Verdict {
    /// `"promote"`, `"continue"`, `"rollback"` or `"inconclusive"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Promote => "promote",
            Verdict::Continue => "continue",
            Verdict::Rollback => "rollback",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One metric's row in the verdict table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricReport {
    /// Metric name.
    pub name: String,
    /// Combined result of the metric's checks.
    pub result: Outcome,
    /// Whether the result fails the metric.
    pub failed: bool,
    /// Whether the metric is critical.
    pub critical: bool,
    /// Group the metric scores in.
    pub group: String,
    /// Weight inside its group.
    pub weight: f64,
    /// Why: the deciding checks' reasons.
    pub reason: String,
    /// Baseline summary.
    pub baseline: Summary,
    /// Canary summary.
    pub canary: Summary,
    /// The smallest p-value of the metric's location test (one-sided
    /// Mann-Whitney against the baseline scaled by the tolerance) or of its
    /// count test.
    pub p_value: Option<f64>,
    /// Hodges-Lehmann shift canary - baseline (ratio difference for counts).
    pub shift: Option<f64>,
    /// Confidence interval of the shift.
    pub ci: Option<[f64; 2]>,
    /// Every check that ran.
    pub checks: Vec<CheckResult>,
}

/// A verdict with the score and the per-metric table that produced it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What to do.
    pub verdict: Verdict,
    /// Health score 0-100 over the metrics with data (`None`: no metric had data).
    pub score: Option<f64>,
    /// Why, in words, most important first.
    pub reasons: Vec<String>,
    /// One row per configured metric, in config order.
    pub metrics: Vec<MetricReport>,
}

impl Report {
    /// Counts this judgement in `rollgate_analysis_verdicts_total{verdict}`
    /// through the `metrics` facade (nothing happens without a recorder):
    /// what `rollgate analyze` reports on its `--metrics-addr`.
    ///
    /// ```
    /// use rollgate_canary::{Report, Verdict};
    /// let r = Report { verdict: Verdict::Promote, score: Some(100.0), reasons: Vec::new(), metrics: Vec::new() };
    /// r.record_metric(); // no recorder installed: a no-op
    /// ```
    pub fn record_metric(&self) {
        metrics::counter!("rollgate_analysis_verdicts_total", "verdict" => self.verdict.as_str())
            .increment(1);
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// A fixed-width table for people.
    pub fn to_table(&self) -> String {
        let mut s = format!(
            "verdict: {}  score: {}\n",
            self.verdict.as_str(),
            self.score
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "n/a".into())
        );
        for r in &self.reasons {
            s.push_str(&format!("  - {r}\n"));
        }
        s.push_str(&format!(
            "{:<24} {:<7} {:<6} {:>10} {:>12}  reason\n",
            "metric", "result", "failed", "p", "shift"
        ));
        for m in &self.metrics {
            s.push_str(&format!(
                "{:<24} {:<7} {:<6} {:>10} {:>12}  {}\n",
                m.name,
                m.result.as_str(),
                if m.failed { "yes" } else { "no" },
                m.p_value.map(|p| format!("{p:.3e}")).unwrap_or_default(),
                m.shift.map(|p| format!("{p:.4}")).unwrap_or_default(),
                m.reason
            ));
        }
        s
    }
}

/// A validated analysis: judge sample sets against a configuration.
///
/// ```
/// use rollgate_canary::config::AnalysisConfig;
/// use rollgate_canary::data::{MetricSamples, SampleSet};
/// use rollgate_canary::judge::{Analysis, Verdict};
///
/// let cfg = AnalysisConfig::from_toml_str(r#"
/// [[metrics]]
/// name = "latency_ms"
/// kind = "latency"
/// bad = "increase"
/// relative = { max_increase_pct = 5.0 }
/// "#)?;
/// let analysis = Analysis::new(cfg)?;
/// let base: Vec<f64> = (0..200).map(|i| 100.0 + (i % 17) as f64).collect();
/// let slow: Vec<f64> = base.iter().map(|v| v * 1.5).collect();
/// let mut data = SampleSet::default();
/// data.insert("latency_ms", MetricSamples::values(base.clone(), slow));
/// let report = analysis.judge(&data)?;
/// assert_eq!(report.verdict, Verdict::Rollback);
/// assert!(report.metrics[0].reason.contains("latency_ms"));
/// # Ok::<(), rollgate_canary::CanaryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Analysis {
    config: AnalysisConfig,
}

enum Prepared {
    Values(Vec<f64>, Vec<f64>),
    Counts(Counts, Counts),
    /// On common bounds.
    Histograms(Histogram, Histogram),
}

/// The metric's result and reason from its judged checks.
fn summarize(m: &MetricConfig, row: &mut MetricReport) {
    let checks = std::mem::take(&mut row.checks);
    let failing: Vec<&CheckResult> = checks.iter().filter(|c| c.fails).collect();
    let nodata: Vec<&CheckResult> = checks
        .iter()
        .filter(|c| c.outcome == Outcome::NoData)
        .collect();
    if let Some(first) = failing.first() {
        row.result = first.outcome;
        row.failed = true;
        row.reason = failing
            .iter()
            .map(|c| c.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
    } else if !nodata.is_empty() {
        row.result = Outcome::NoData;
        row.reason = nodata
            .iter()
            .map(|c| c.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
    } else if checks.is_empty() {
        row.result = Outcome::NoData;
        row.reason = format!("metric \"{}\": no checks configured", m.name);
    } else {
        let moved: Vec<&CheckResult> = checks
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::High | Outcome::Low))
            .collect();
        row.result = moved.first().map(|c| c.outcome).unwrap_or(Outcome::Pass);
        row.reason = if moved.is_empty() {
            format!(
                "metric \"{}\": all {} checks pass ({})",
                m.name,
                checks.len(),
                checks
                    .iter()
                    .map(|c| c.check.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!(
                "metric \"{}\": moved in the harmless direction: {}",
                m.name,
                moved
                    .iter()
                    .map(|c| c.reason.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
    }

    row.checks = checks;
}

/// Share of alpha that goes to the tests of critical metrics when
/// non-critical metrics have tests too (the rest goes to those), so a
/// critical metric is tested at nearly the full alpha however many other
/// metrics the analysis has.
pub const CRITICAL_SHARE: f64 = 0.9;

/// Weighted Holm step-down over every pending statistical test of one
/// judgement. Weights: critical metrics share [`CRITICAL_SHARE`] of alpha
/// (all of it when there is no other metric with tests), the others the
/// rest; each metric's share is split among its tests in proportion to
/// their weights ([`check::TAIL_WEIGHTS`] for value metrics: the tail
/// tests get more). Tests are taken in order of `p / weight`; each is
/// judged at `alpha · weight / W`, where `W` is the weight of the tests
/// not yet rejected, and a rejected test hands its weight on. The
/// family-wise error rate stays at most alpha (Holm 1979, weighted form),
/// while a strong effect in one metric raises the level of every other
/// test. A check that reuses another's test (a p50 check reading the
/// location test) is judged at that test's level, spending nothing.
fn weighted_holm(metrics: &[MetricConfig], rows: &mut [MetricReport], alpha: f64) {
    let own = |r: &MetricReport| -> f64 {
        r.checks
            .iter()
            .filter(|c| c.is_own_test())
            .map(|c| c.weight)
            .sum()
    };
    let with_tests = |critical: bool| {
        rows.iter()
            .zip(metrics)
            .filter(|(r, m)| m.critical == critical && own(r) > 0.0)
            .count()
    };
    let (crit, other) = (with_tests(true), with_tests(false));
    let (share_crit, share_other) = match (crit > 0, other > 0) {
        (true, true) => (CRITICAL_SHARE, 1.0 - CRITICAL_SHARE),
        (true, false) => (1.0, 0.0),
        (false, true) => (0.0, 1.0),
        (false, false) => return,
    };
    // (row, check, weight, p)
    let mut tests: Vec<(usize, usize, f64, f64)> = Vec::new();
    for (i, (r, m)) in rows.iter().zip(metrics).enumerate() {
        let total = own(r);
        if total <= 0.0 {
            continue;
        }
        let share = if m.critical {
            share_crit / crit as f64
        } else {
            share_other / other as f64
        };
        for (j, c) in r.checks.iter().enumerate() {
            if c.is_own_test() {
                tests.push((i, j, share * c.weight / total, c.p_value.unwrap_or(1.0)));
            }
        }
    }
    tests.sort_by(|a, b| {
        (a.3 / a.2)
            .total_cmp(&(b.3 / b.2))
            .then(a.0.cmp(&b.0))
            .then(a.1.cmp(&b.1))
    });
    let mut remaining: f64 = tests.iter().map(|t| t.2).sum();
    let mut stepping = true;
    for &(i, j, w, p) in &tests {
        let level = (alpha * w / remaining).min(alpha);
        if stepping && p <= level {
            remaining = (remaining - w).max(f64::MIN_POSITIVE);
        } else {
            stepping = false;
        }
        rows[i].checks[j].judge_at(level);
    }
    // Followers: at their test's level.
    for row in rows.iter_mut() {
        for j in 0..row.checks.len() {
            let Some(l) = row.checks[j].follows else {
                continue;
            };
            if let Some(level) = row.checks.get(l).and_then(|c| c.level) {
                row.checks[j].judge_at(level);
            }
        }
    }
}

impl Analysis {
    /// Validates the configuration.
    pub fn new(config: AnalysisConfig) -> Result<Self, CanaryError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &AnalysisConfig {
        &self.config
    }

    /// Judges `data` at the configured alpha.
    pub fn judge(&self, data: &SampleSet) -> Result<Report, CanaryError> {
        self.judge_at(data, self.config.alpha)
    }

    /// Judges `data` with family-wise significance `alpha` (the sequential
    /// mode spends a shrinking alpha per interval). Every statistical test
    /// of the judgement is judged by one weighted Holm step-down procedure
    /// (see [`CRITICAL_SHARE`]), so the probability that any of them fails
    /// a canary that is no worse than its tolerance is at most `alpha`;
    /// confidence intervals are reported at `1 - alpha`.
    pub fn judge_at(&self, data: &SampleSet, alpha: f64) -> Result<Report, CanaryError> {
        if !(alpha > 0.0 && alpha < 1.0) {
            return Err(CanaryError::input(
                "alpha",
                format!("{alpha} is not in (0, 1)"),
            ));
        }
        let configured: BTreeSet<&str> = self
            .config
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        if let Some(extra) = data
            .metrics
            .keys()
            .find(|k| !configured.contains(k.as_str()))
        {
            return Err(CanaryError::data(
                format!("metrics.{extra}"),
                format!(
                    "metric \"{extra}\" is not in the config (configured: {})",
                    configured.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let mut rows = Vec::with_capacity(self.config.metrics.len());
        let mut judged = Vec::with_capacity(self.config.metrics.len());
        for m in &self.config.metrics {
            let samples = data.metrics.get(&m.name).ok_or_else(|| {
                CanaryError::data(
                    format!("metrics.{}", m.name),
                    format!("configured metric \"{}\" has no samples entry", m.name),
                )
            })?;
            let (row, has_checks) = self.judge_metric(m, samples, alpha)?;
            rows.push(row);
            judged.push(has_checks);
        }
        weighted_holm(&self.config.metrics, &mut rows, alpha);
        for ((row, m), has_checks) in rows.iter_mut().zip(&self.config.metrics).zip(judged) {
            if has_checks {
                summarize(m, row);
            }
        }
        Ok(self.verdict(rows))
    }

    /// The metric's row with its checks run (statistical ones pending), and
    /// whether it has checks to summarize (false: no data, reason set).
    fn judge_metric(
        &self,
        m: &MetricConfig,
        s: &MetricSamples,
        ci_alpha: f64,
    ) -> Result<(MetricReport, bool), CanaryError> {
        if let (Some(want), Some(got)) = (&m.unit, &s.unit)
            && want != got
        {
            return Err(CanaryError::data(
                format!("metrics.{}.unit", m.name),
                format!(
                    "metric \"{}\" is in \"{got}\" but the config expects \"{want}\"",
                    m.name
                ),
            ));
        }
        let prepared = self.prepare(m, s)?;
        let (summary_b, summary_c) = match &prepared {
            Prepared::Values(b, c) => (Summary::of_sorted(b), Summary::of_sorted(c)),
            Prepared::Counts(b, c) => (Summary::of_counts(b), Summary::of_counts(c)),
            Prepared::Histograms(b, c) => (Summary::of_histogram(b), Summary::of_histogram(c)),
        };
        let mut row = MetricReport {
            name: m.name.clone(),
            result: Outcome::NoData,
            failed: false,
            critical: m.critical,
            group: m.group.clone(),
            weight: m.weight,
            reason: String::new(),
            baseline: summary_b,
            canary: summary_c,
            p_value: None,
            shift: None,
            ci: None,
            checks: Vec::new(),
        };
        let (checks, st): (Vec<CheckResult>, Statistics) = match prepared {
            Prepared::Values(b, c) => {
                let (nb, nc) = (b.len(), c.len());
                if nb < m.min_samples || nc < m.min_samples {
                    row.reason = format!(
                        "metric \"{}\": {nb} baseline and {nc} canary samples, fewer than min_samples {}",
                        m.name, m.min_samples
                    );
                    return Ok((row, false));
                }
                match check::Tied::pair(b, c) {
                    Ok((b, c)) => check::value_checks(m, ci_alpha, &b, &c),
                    Err((b, c)) => check::value_checks(m, ci_alpha, b.as_slice(), c.as_slice()),
                }
            }
            Prepared::Histograms(b, c) => {
                let (nb, nc) = (b.count(), c.count());
                if nb < m.min_samples as u64 || nc < m.min_samples as u64 {
                    row.reason = format!(
                        "metric \"{}\": {nb} baseline and {nc} canary observations in the histograms, fewer than min_samples {}",
                        m.name, m.min_samples
                    );
                    return Ok((row, false));
                }
                check::value_checks(m, ci_alpha, &b, &c)
            }
            Prepared::Counts(b, c) => {
                let trials_needed = m.kind != MetricKind::Throughput;
                if trials_needed
                    && (b.trials < m.min_trials.max(1) || c.trials < m.min_trials.max(1))
                {
                    row.reason = format!(
                        "metric \"{}\": {} baseline and {} canary trials, fewer than min_trials {}",
                        m.name, b.trials, c.trials, m.min_trials
                    );
                    return Ok((row, false));
                }
                check::count_checks(m, &b, &c)
            }
        };
        row.p_value = st.p_value;
        row.shift = st.shift;
        row.ci = st.ci.map(|(a, b)| [a, b]);
        row.checks = checks;
        Ok((row, true))
    }

    fn prepare(&self, m: &MetricConfig, s: &MetricSamples) -> Result<Prepared, CanaryError> {
        let at = |c: Cohort| format!("metrics.{}.{}", m.name, c);
        let values = |c: Cohort| -> Result<Option<Vec<f64>>, CanaryError> {
            match s.cohort(c) {
                Samples::Values(v) => {
                    if v.len() > self.config.max_samples {
                        return Err(CanaryError::data(
                            at(c),
                            format!(
                                "{} samples exceed max_samples {}",
                                v.len(),
                                self.config.max_samples
                            ),
                        ));
                    }
                    // One branch-free pass says whether every value is fine
                    // (the common case); only then is the slow pass skipped.
                    let nonneg = matches!(
                        m.kind,
                        MetricKind::Latency | MetricKind::Throughput | MetricKind::Ratio
                    );
                    let top = if m.kind == MetricKind::Ratio {
                        1.0
                    } else {
                        f64::MAX
                    };
                    let floor = if nonneg { 0.0 } else { f64::MIN };
                    let all_fine = v.iter().fold(true, |ok, &x| ok & (x >= floor) & (x <= top));
                    for (i, &x) in v
                        .iter()
                        .enumerate()
                        .take(if all_fine { 0 } else { v.len() })
                    {
                        let bad = if !x.is_finite() {
                            Some(format!("{x} is not a finite sample"))
                        } else if x < 0.0
                            && matches!(
                                m.kind,
                                MetricKind::Latency | MetricKind::Throughput | MetricKind::Ratio
                            )
                        {
                            Some(
                                format!("negative value {x} for a {:?} metric", m.kind)
                                    .to_lowercase(),
                            )
                        } else if m.kind == MetricKind::Ratio && x > 1.0 {
                            Some(format!(
                                "ratio {x} is above 1 (ratios are fractions in [0, 1], not percent)"
                            ))
                        } else {
                            None
                        };
                        if let Some(why) = bad {
                            return Err(CanaryError::data(format!("{}[{i}]", at(c)), why));
                        }
                    }
                    Ok(Some(v.clone()))
                }
                Samples::Counts(_) | Samples::Histogram(_) => Ok(None),
            }
        };
        let histogram = |c: Cohort| -> Result<Option<Histogram>, CanaryError> {
            match s.cohort(c) {
                Samples::Histogram(h) => {
                    if m.kind == MetricKind::Latency && h.upper_bounds()[0] < 0.0 {
                        return Err(CanaryError::data(
                            format!("{}.histogram.le[0]", at(c)),
                            format!(
                                "negative bucket bound {} for a latency metric",
                                h.upper_bounds()[0]
                            ),
                        ));
                    }
                    Ok(Some(h.clone()))
                }
                _ => Ok(None),
            }
        };
        let counts = |c: Cohort| -> Result<Option<Counts>, CanaryError> {
            match s.cohort(c) {
                Samples::Counts(k) => {
                    let needs_trials = m.kind != MetricKind::Throughput;
                    if needs_trials && k.events > k.trials {
                        return Err(CanaryError::data(
                            at(c),
                            format!("{} events out of {} trials", k.events, k.trials),
                        ));
                    }
                    if let Some(r) = k.recent
                        && r.events > r.trials
                    {
                        return Err(CanaryError::data(
                            format!("{}.recent", at(c)),
                            format!("{} events out of {} trials", r.events, r.trials),
                        ));
                    }
                    Ok(Some(*k))
                }
                Samples::Values(_) | Samples::Histogram(_) => Ok(None),
            }
        };
        let hb = histogram(Cohort::Baseline)?;
        let hc = histogram(Cohort::Canary)?;
        match (hb, hc) {
            (Some(b), Some(c)) => {
                if m.kind == MetricKind::Count {
                    return Err(CanaryError::data(
                        format!("metrics.{}", m.name),
                        "a count metric needs {\"events\": N, \"trials\": M} in both cohorts, not histograms",
                    ));
                }
                let (b, c) = Histogram::common_bounds(&b, &c)
                    .map_err(|why| CanaryError::data(format!("metrics.{}", m.name), why))?;
                return Ok(Prepared::Histograms(b, c));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(CanaryError::data(
                    format!("metrics.{}", m.name),
                    "a histogram in one cohort needs a histogram in the other (baseline and canary must have the same shape)",
                ));
            }
            (None, None) => {}
        }
        let vb = values(Cohort::Baseline)?;
        let vc = values(Cohort::Canary)?;
        let cb = counts(Cohort::Baseline)?;
        let cc = counts(Cohort::Canary)?;
        let shape_error = |want: &str| {
            CanaryError::data(
                format!("metrics.{}", m.name),
                format!(
                    "a {} metric needs {want} in both cohorts",
                    format!("{:?}", m.kind).to_lowercase()
                ),
            )
        };
        let (vb, vc) = match (vb, vc) {
            (Some(mut b), Some(mut c)) => {
                crate::stats::sort_pair(&mut b, &mut c);
                (Some(b), Some(c))
            }
            other => other,
        };
        match (m.kind, vb, vc, cb, cc) {
            (MetricKind::Count, _, _, Some(b), Some(c)) => Ok(Prepared::Counts(b, c)),
            (MetricKind::Count, ..) => Err(shape_error("{\"events\": N, \"trials\": M}")),
            (MetricKind::Latency, Some(b), Some(c), _, _) => Ok(Prepared::Values(b, c)),
            (MetricKind::Latency, ..) => Err(shape_error("an array of numbers or histograms")),
            (_, Some(b), Some(c), _, _) => Ok(Prepared::Values(b, c)),
            (_, _, _, Some(b), Some(c)) => Ok(Prepared::Counts(b, c)),
            _ => Err(shape_error("the same shape (numbers or counts)")),
        }
    }

    fn verdict(&self, rows: Vec<MetricReport>) -> Report {
        let mut reasons = Vec::new();
        // Group scores over metrics with data; best case counts no-data as pass.
        let mut groups: BTreeMap<&str, (f64, f64, f64)> = BTreeMap::new(); // (passed, with data, all)
        for r in &rows {
            let g = groups.entry(r.group.as_str()).or_default();
            g.2 += r.weight;
            if r.result != Outcome::NoData {
                g.1 += r.weight;
                if !r.failed {
                    g.0 += r.weight;
                }
            }
        }
        let (mut num, mut den, mut best_num, mut best_den) = (0.0, 0.0, 0.0, 0.0);
        for (name, (passed, with_data, all)) in &groups {
            let w = self.config.group_weight(name);
            if *with_data > 0.0 {
                num += w * passed / with_data;
                den += w;
            }
            if *all > 0.0 {
                best_num += w * (passed + (all - with_data)) / all;
                best_den += w;
            }
        }
        let score = (den > 0.0).then(|| 100.0 * num / den);
        let best = if best_den > 0.0 {
            100.0 * best_num / best_den
        } else {
            100.0
        };
        let s = self.config.score;
        let critical_failed: Vec<&MetricReport> =
            rows.iter().filter(|r| r.critical && r.failed).collect();
        let nodata: Vec<&MetricReport> = rows
            .iter()
            .filter(|r| r.result == Outcome::NoData)
            .collect();
        let verdict = if !critical_failed.is_empty() {
            for r in &critical_failed {
                reasons.push(format!("critical {}", r.reason));
            }
            Verdict::Rollback
        } else if rows.is_empty() {
            reasons.push("no metrics configured".to_string());
            Verdict::Inconclusive
        } else if best < s.marginal {
            reasons.push(if nodata.is_empty() {
                format!("score {best:.1} < marginal {}", s.marginal)
            } else {
                format!(
                    "score {best:.1} is below marginal {} even if every metric without data passed",
                    s.marginal
                )
            });
            Verdict::Rollback
        } else if !nodata.is_empty() {
            for r in &nodata {
                reasons.push(format!("no data: {}", r.reason));
            }
            Verdict::Inconclusive
        } else {
            let sc = score.unwrap_or(0.0);
            if sc >= s.pass {
                reasons.push(format!("score {sc:.1} >= pass {}", s.pass));
                Verdict::Promote
            } else if sc >= s.marginal {
                reasons.push(format!(
                    "score {sc:.1} is marginal ({} <= score < {})",
                    s.marginal, s.pass
                ));
                Verdict::Inconclusive
            } else {
                reasons.push(format!("score {sc:.1} < marginal {}", s.marginal));
                Verdict::Rollback
            }
        };
        if verdict != Verdict::Promote {
            for r in rows.iter().filter(|r| r.failed && !r.critical) {
                reasons.push(format!("failed: {}", r.reason));
            }
        }
        Report {
            verdict,
            score,
            reasons,
            metrics: rows,
        }
    }
}
