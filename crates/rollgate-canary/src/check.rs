//! Checks: each judges one aspect of one metric and says pass, high, low or
//! no-data with a reason naming the metric, the value and the bound.

use serde::Serialize;

use crate::config::{Bad, MetricConfig, MetricKind};
use crate::data::Counts;
use crate::error::CanaryError;
use crate::histogram::{Histogram, weighted};
use crate::stats::{self, HodgesLehmann, MannWhitney, MwMethod};

/// One cohort as the value checks read it: sorted raw values, or a
/// histogram (quantiles as `histogram_quantile`, rank tests over buckets).
pub(crate) trait Cohort {
    /// Number of observations.
    fn count(&self) -> u64;
    /// The `p`-quantile.
    fn quantile(&self, p: f64) -> f64;
    /// The mean, when known.
    fn mean(&self) -> Option<f64>;
    /// Traffic volume: the sum of rate values, or the number of observations.
    fn volume(&self) -> f64;
    /// Two-sided Mann-Whitney of baseline `b` against canary `c`.
    fn mann_whitney(b: &Self, c: &Self, method: MwMethod) -> Result<MannWhitney, CanaryError>;
    /// Hodges-Lehmann shift `c - b` with its `1 - alpha` interval.
    fn hodges_lehmann(b: &Self, c: &Self, alpha: f64) -> HodgesLehmann;
    /// One-sided KS distances `(max(F_b - F_c), max(F_c - F_b))`.
    fn ks_distances(b: &Self, c: &Self) -> (f64, f64);
    /// `(kc, r)` of the exact exceedance test. Upper: canary observations
    /// above the baseline's `r`-th largest, `r = ceil(n_b (1 - p))`; lower:
    /// canary observations below the baseline's `r`-th smallest,
    /// `r = ceil(n_b p)`.
    fn exceedance(b: &Self, c: &Self, p: f64, upper: bool) -> (u64, u64);
    /// Canary observations strictly above the baseline's `r`-th largest
    /// (`1 <= r <= n_b`); histograms: in buckets strictly above the bucket
    /// holding it (conservative, as for [`Cohort::exceedance`]).
    fn above(b: &Self, c: &Self, r: u64) -> u64;
    /// The cohort with every value `x` mapped to `factor * x + add`
    /// (`factor >= 0`). Histograms keep their bounds: each finite bucket's
    /// observations are spread over the buckets its scaled interval
    /// overlaps (see `histogram::weighted::scaled`); `up` says which way
    /// the unbounded buckets move.
    fn scaled(&self, factor: f64, add: f64, up: bool) -> Box<Self>;
}

impl Cohort for [f64] {
    fn count(&self) -> u64 {
        self.len() as u64
    }
    fn quantile(&self, p: f64) -> f64 {
        stats::quantile(self, p)
    }
    fn mean(&self) -> Option<f64> {
        (!self.is_empty()).then(|| stats::sum(self) / self.len() as f64)
    }
    fn volume(&self) -> f64 {
        stats::sum(self)
    }
    fn mann_whitney(b: &Self, c: &Self, method: MwMethod) -> Result<MannWhitney, CanaryError> {
        stats::mann_whitney_sorted(b, c, method)
    }
    fn hodges_lehmann(b: &Self, c: &Self, alpha: f64) -> HodgesLehmann {
        stats::hodges_lehmann_sorted(b, c, alpha)
    }
    fn ks_distances(b: &Self, c: &Self) -> (f64, f64) {
        stats::ks_distances(b, c)
    }
    fn exceedance(b: &Self, c: &Self, p: f64, upper: bool) -> (u64, u64) {
        let nb = b.len();
        if upper {
            let r = ((nb as f64 * (1.0 - p)).ceil() as usize).clamp(1, nb) as u64;
            (Self::above(b, c, r), r)
        } else {
            let r = ((nb as f64 * p).ceil() as usize).clamp(1, nb);
            let t = b[r - 1];
            let kc = c.partition_point(|&v| v < t);
            (kc as u64, r as u64)
        }
    }
    fn above(b: &Self, c: &Self, r: u64) -> u64 {
        let t = b[b.len() - r as usize];
        (c.len() - c.partition_point(|&v| v <= t)) as u64
    }
    fn scaled(&self, factor: f64, add: f64, _up: bool) -> Box<Self> {
        // factor >= 0 keeps the order; adding 0.0 turns -0.0 into 0.0.
        self.iter().map(|&x| x * factor + add + 0.0).collect()
    }
}

/// Sorted values with many ties (whole milliseconds, bucketed latencies):
/// the same answers as the sorted slice, but the rank statistics and the
/// Hodges-Lehmann selection run over the distinct values with their
/// counts, so their cost grows with the number of distinct values, not
/// with `n` (or `n^2`).
pub(crate) struct Tied {
    sorted: Vec<f64>,
    runs: Vec<(f64, u64)>,
}

impl Tied {
    /// `sorted` as runs when its values repeat enough (on average at least
    /// four times each) for the run path to pay; `Err(sorted)` otherwise.
    pub(crate) fn pair(b: Vec<f64>, c: Vec<f64>) -> Result<(Tied, Tied), (Vec<f64>, Vec<f64>)> {
        let (rb, rc) = (runs_of(&b), runs_of(&c));
        if (rb.len() + rc.len()) * 4 > b.len() + c.len() {
            return Err((b, c));
        }
        Ok((
            Tied {
                sorted: b,
                runs: rb,
            },
            Tied {
                sorted: c,
                runs: rc,
            },
        ))
    }
}

/// Distinct values with their counts, of a sorted slice.
fn runs_of(sorted: &[f64]) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    for &x in sorted {
        match out.last_mut() {
            Some(last) if last.0 == x => last.1 += 1,
            _ => out.push((x, 1)),
        }
    }
    out
}

impl Cohort for Tied {
    fn count(&self) -> u64 {
        self.sorted.len() as u64
    }
    fn quantile(&self, p: f64) -> f64 {
        stats::quantile(&self.sorted, p)
    }
    fn mean(&self) -> Option<f64> {
        self.sorted.mean()
    }
    fn volume(&self) -> f64 {
        self.sorted.volume()
    }
    fn mann_whitney(b: &Self, c: &Self, method: MwMethod) -> Result<MannWhitney, CanaryError> {
        stats::mann_whitney_runs(&b.runs, &c.runs, method)
    }
    fn hodges_lehmann(b: &Self, c: &Self, alpha: f64) -> HodgesLehmann {
        let ties = stats::runs_tie_term(&b.runs, &c.runs);
        stats::hodges_lehmann_runs(&b.runs, &c.runs, ties, alpha)
    }
    fn ks_distances(b: &Self, c: &Self) -> (f64, f64) {
        let (n1, n2) = (b.sorted.len() as f64, c.sorted.len() as f64);
        let (x, y) = (&b.runs, &c.runs);
        let (mut i, mut j, mut cx, mut cy) = (0usize, 0usize, 0u64, 0u64);
        let (mut dp, mut dm) = (0.0f64, 0.0f64);
        while i < x.len() && j < y.len() {
            let v = x[i].0.min(y[j].0);
            if x[i].0 == v {
                cx += x[i].1;
                i += 1;
            }
            if y[j].0 == v {
                cy += y[j].1;
                j += 1;
            }
            let d = cx as f64 / n1 - cy as f64 / n2;
            dp = dp.max(d);
            dm = dm.max(-d);
        }
        (dp, dm)
    }
    fn exceedance(b: &Self, c: &Self, p: f64, upper: bool) -> (u64, u64) {
        <[f64] as Cohort>::exceedance(&b.sorted, &c.sorted, p, upper)
    }
    fn above(b: &Self, c: &Self, r: u64) -> u64 {
        <[f64] as Cohort>::above(&b.sorted, &c.sorted, r)
    }
    fn scaled(&self, factor: f64, add: f64, up: bool) -> Box<Self> {
        let sorted = self.sorted.scaled(factor, add, up).into_vec();
        let mut runs: Vec<(f64, u64)> = Vec::with_capacity(self.runs.len());
        for &(v, k) in &self.runs {
            let v = v * factor + add + 0.0;
            match runs.last_mut() {
                // Rounding may merge neighbouring values: one tie group.
                Some(last) if last.0 == v => last.1 += k,
                _ => runs.push((v, k)),
            }
        }
        Box::new(Tied { sorted, runs })
    }
}

impl Cohort for Histogram {
    fn count(&self) -> u64 {
        Histogram::count(self)
    }
    fn quantile(&self, p: f64) -> f64 {
        Histogram::quantile(self, p)
    }
    fn mean(&self) -> Option<f64> {
        Histogram::mean(self)
    }
    fn volume(&self) -> f64 {
        Histogram::count(self) as f64
    }
    fn mann_whitney(b: &Self, c: &Self, method: MwMethod) -> Result<MannWhitney, CanaryError> {
        stats::mann_whitney_runs(&weighted::rank_runs(b), &weighted::rank_runs(c), method)
    }
    fn hodges_lehmann(b: &Self, c: &Self, alpha: f64) -> HodgesLehmann {
        let ties = stats::runs_tie_term(&weighted::rank_runs(b), &weighted::rank_runs(c));
        stats::hodges_lehmann_runs(
            &weighted::value_runs(b),
            &weighted::value_runs(c),
            ties,
            alpha,
        )
    }
    fn ks_distances(b: &Self, c: &Self) -> (f64, f64) {
        weighted::ks_distances(b, c)
    }
    fn exceedance(b: &Self, c: &Self, p: f64, upper: bool) -> (u64, u64) {
        weighted::exceedance(b, c, p, upper)
    }
    fn above(b: &Self, c: &Self, r: u64) -> u64 {
        weighted::above(b, c, r)
    }
    fn scaled(&self, factor: f64, add: f64, up: bool) -> Box<Self> {
        Box::new(weighted::scaled(self, factor, add, up))
    }
}

/// What a check (or a metric) concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Within bounds.
    Pass,
    /// Canary above the bound (a failure when the metric's bad direction is up).
    High,
    /// Canary below the bound (a failure when the metric's bad direction is down).
    Low,
    /// Too little data to judge: never a pass.
    #[serde(rename = "nodata")]
    NoData,
}

impl Outcome {
    /// `"pass"`, `"high"`, `"low"` or `"nodata"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::High => "high",
            Outcome::Low => "low",
            Outcome::NoData => "nodata",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// Which check, e.g. `threshold.p99_max`, `mann-whitney`, `count-test`.
    pub check: String,
    /// What it concluded.
    pub outcome: Outcome,
    /// Whether this outcome fails the metric (direction-aware).
    pub fails: bool,
    /// Metric, value and bound in words.
    pub reason: String,
    /// p-value, for statistical checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// The significance level the check's test was judged at (its share of
    /// alpha under the judgement's weighted Holm procedure), for
    /// statistical checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<f64>,
    /// A statistical check not judged yet: the outcome if its test is
    /// significant (`Pass` when the effect is inside the bound anyway).
    #[serde(skip)]
    pub(crate) pending: Option<Outcome>,
    /// The check's weight inside its metric's share of alpha (see
    /// [`TAIL_WEIGHTS`]).
    #[serde(skip)]
    pub(crate) weight: f64,
    /// The check whose test this one reuses (its index among the metric's
    /// checks): judged at that test's level with its p-value, spending no
    /// alpha of its own.
    #[serde(skip)]
    pub(crate) follows: Option<usize>,
}

impl CheckResult {
    fn new(check: &str, outcome: Outcome, bad: Bad, reason: String) -> Self {
        let fails = match outcome {
            Outcome::High => bad.high_fails(),
            Outcome::Low => bad.low_fails(),
            _ => false,
        };
        Self {
            check: check.to_string(),
            outcome,
            fails,
            reason,
            p_value: None,
            level: None,
            pending: None,
            weight: 0.0,
            follows: None,
        }
    }

    /// A statistical check whose outcome waits for its level: `if_significant`
    /// (a failing `High` or `Low`, or `Pass`) when `p` is at most the level.
    fn test(check: &str, if_significant: Outcome, reason: String, p: f64) -> Self {
        Self {
            check: check.to_string(),
            outcome: Outcome::Pass,
            fails: false,
            reason,
            p_value: Some(p),
            level: None,
            pending: Some(if_significant),
            weight: 1.0,
            follows: None,
        }
    }

    fn weighted(mut self, weight: f64) -> Self {
        self.weight = weight;
        self
    }

    /// Whether the check still waits for its level.
    #[cfg(test)]
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether the check is a test of its own (pending and not reusing
    /// another check's test): it takes part in the Holm procedure.
    pub(crate) fn is_own_test(&self) -> bool {
        self.pending.is_some() && self.follows.is_none()
    }

    /// Judges a pending check at `level`: its outcome, whether it fails, and
    /// the p-value and level in its reason.
    pub(crate) fn judge_at(&mut self, level: f64) {
        let Some(if_significant) = self.pending.take() else {
            return;
        };
        let p = self.p_value.unwrap_or(1.0);
        let significant = p <= level;
        self.outcome = if significant {
            if_significant
        } else {
            Outcome::Pass
        };
        // A pending test only ever points in a bad direction.
        self.fails = self.outcome != Outcome::Pass;
        self.level = Some(level);
        self.reason = format!(
            "{}: p={} {} level {}",
            self.reason,
            fmt_num(p),
            if significant { "<=" } else { ">" },
            fmt_num(level)
        );
    }
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 || (v.abs() >= 1e-3 && v.abs() < 1e7) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.4e}")
    }
}

/// Statistical details a value-metric judgement reports beside its checks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Statistics {
    /// Mann-Whitney two-sided p-value (or the count test's one-sided p).
    pub p_value: Option<f64>,
    /// Hodges-Lehmann shift canary - baseline (or the ratio difference for counts).
    pub shift: Option<f64>,
    /// Confidence interval of the shift.
    pub ci: Option<(f64, f64)>,
}

/// Relative weights of a value metric's tests inside the metric's share of
/// alpha: latency regressions show first in the tail, so the p99 check's
/// weighted tail test (see [`stats::tail_test`]) gets most of it. A p50
/// check that reuses the location test spends nothing of its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestWeights {
    /// The median test (only when the location test does not run).
    pub p50: f64,
    /// The p95 tail test (canary values above the scaled baseline's top 5 %).
    pub p95: f64,
    /// The p99 check's weighted tail test (canary values above the scaled
    /// baseline's top 0.05 % to 1.6 %).
    pub p99: f64,
    /// The one-sided Mann-Whitney location test, per direction.
    pub location: f64,
    /// The one-sided Kolmogorov-Smirnov distribution test, per direction.
    pub distribution: f64,
}

/// The weights every value metric's tests get (see [`TestWeights`]); the
/// tests of count metrics weigh 1 each.
///
/// ```
/// use rollgate_canary::check::TAIL_WEIGHTS;
/// // A latency metric with every test on, increase bad: p95, p99 (the
/// // weighted tail test), Mann-Whitney and KS share the metric's alpha
/// // 1:6:2:1.
/// let w = TAIL_WEIGHTS;
/// let total = w.p95 + w.p99 + w.location + w.distribution;
/// assert_eq!(w.p99 / total, 6.0 / 10.0);
/// ```
pub const TAIL_WEIGHTS: TestWeights = TestWeights {
    p50: 1.0,
    p95: 1.0,
    p99: 6.0,
    location: 2.0,
    distribution: 1.0,
};

/// The tolerance used when neither `relative` nor `statistical.min_effect_pct`
/// gives one, in percent.
pub const DEFAULT_TOLERANCE_PCT: f64 = 1.0;

/// The one tolerance rule of a value metric: in each bad direction, the
/// canary is compared with the baseline scaled by `1 + T/100` (increase) or
/// `1 - T/100` (decrease), plus `statistical.min_effect` in the metric's
/// unit. `T` is `relative.max_increase_pct` / `max_decrease_pct`, else
/// `statistical.min_effect_pct`, else [`DEFAULT_TOLERANCE_PCT`].
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    /// `T` upward, when an increase is bad.
    up: Option<f64>,
    /// `T` downward, when a decrease is bad.
    down: Option<f64>,
    /// Absolute amount added to the scaled baseline (away from it).
    abs: f64,
}

impl Tolerance {
    fn of(m: &MetricConfig) -> Self {
        let rel = m.relative.unwrap_or_default();
        let stat = m.statistical.unwrap_or_default();
        let pick = |r: Option<f64>| r.or(stat.min_effect_pct).unwrap_or(DEFAULT_TOLERANCE_PCT);
        Self {
            up: m.bad.high_fails().then(|| pick(rel.max_increase_pct)),
            down: m.bad.low_fails().then(|| pick(rel.max_decrease_pct)),
            abs: stat.min_effect,
        }
    }
    fn factor_up(pct: f64) -> f64 {
        1.0 + pct / 100.0
    }
    fn factor_down(pct: f64) -> f64 {
        (1.0 - pct / 100.0).max(0.0)
    }
}

/// The baseline scaled by the tolerance in each bad direction.
struct Scaled<B: ?Sized> {
    up: Option<(f64, Box<B>)>,
    down: Option<(f64, Box<B>)>,
}

/// Runs every configured check of a value metric on two cohorts (sorted
/// values or histograms on common bounds). Statistical checks come back
/// pending: the judge sets the level each is judged at (weighted Holm over
/// the whole judgement) with [`CheckResult::judge_at`].
pub(crate) fn value_checks<S: Cohort + ?Sized>(
    m: &MetricConfig,
    ci_alpha: f64,
    b: &S,
    c: &S,
) -> (Vec<CheckResult>, Statistics) {
    let tol = Tolerance::of(m);
    let scaled = Scaled {
        up: tol.up.map(|pct| {
            let f = Tolerance::factor_up(pct);
            (pct, b.scaled(f, tol.abs, true))
        }),
        down: tol.down.map(|pct| {
            let f = Tolerance::factor_down(pct);
            (pct, b.scaled(f, -tol.abs, false))
        }),
    };
    let mut out = threshold_checks(m, c);
    out.extend(quantile_checks(m, &tol, b, c, &scaled));
    let (location, st) = location_checks(m, ci_alpha, b, c, &scaled);
    out.extend(location);
    // A p50 check reuses the location test of its direction when that
    // runs (the median test is its own test only without it): one
    // hypothesis, one share of alpha.
    for (p50, mw, dir) in [
        ("relative.p50_increase", "mann-whitney.increase", "increase"),
        ("relative.p50_decrease", "mann-whitney.decrease", "decrease"),
    ] {
        let leader = out.iter().position(|r| r.check == mw);
        let follower = out.iter().position(|r| r.check == p50);
        match (leader, follower) {
            (Some(l), Some(f)) => {
                let reason = &out[f].reason;
                let head = reason.split("; ").next().unwrap_or(reason).to_string();
                out[f].reason = format!("{head}; location test: mann-whitney.{dir})");
                out[f].p_value = out[l].p_value;
                out[f].follows = Some(l);
                out[f].weight = 0.0;
            }
            // The location test was to run but did not: the p50 check
            // gets its own median test after all.
            (None, Some(f)) if location_runs(m) => {
                let base = if dir == "increase" {
                    &scaled.up
                } else {
                    &scaled.down
                };
                if let Some((_, base)) = base {
                    let (test, pv) = median_test(base.as_ref(), c, dir == "increase");
                    let reason = &out[f].reason;
                    let head = reason.split("; ").next().unwrap_or(reason).to_string();
                    out[f].reason = format!("{head}; {test})");
                    out[f].p_value = Some(pv);
                }
            }
            _ => {}
        }
    }
    out.extend(distribution_checks(m, c, &scaled));
    if let Some(t) = &m.traffic {
        out.push(traffic_point(
            &m.name,
            t.expected_share,
            t.max_dip_pct,
            b.volume(),
            c.volume(),
            m.bad,
        ));
    }
    (out, st)
}

/// Absolute bounds on the canary: quantile, mean and ratio ceilings (fail
/// whatever `bad` says) and the `min` floor.
fn threshold_checks<S: Cohort + ?Sized>(m: &MetricConfig, c: &S) -> Vec<CheckResult> {
    let (name, bad) = (&m.name, m.bad);
    let mut out = Vec::new();
    let Some(t) = &m.threshold else {
        return out;
    };
    let mean = c.mean().unwrap_or(f64::NAN);
    for (key, label, bound, value) in [
        ("threshold.p50_max", "p50", t.p50_max, c.quantile(0.5)),
        ("threshold.p95_max", "p95", t.p95_max, c.quantile(0.95)),
        ("threshold.p99_max", "p99", t.p99_max, c.quantile(0.99)),
        ("threshold.mean_max", "mean", t.mean_max, mean),
        ("threshold.ratio_max", "ratio", t.ratio_max, mean),
    ] {
        let Some(bound) = bound else { continue };
        if value.is_nan() {
            out.push(unknown(name, key, label, bad));
            continue;
        }
        let (o, rel) = if value > bound {
            (Outcome::High, ">")
        } else {
            (Outcome::Pass, "<=")
        };
        let mut r = CheckResult::new(
            key,
            o,
            bad,
            format!(
                "metric \"{name}\": canary {label} {} {rel} bound {}",
                fmt_num(value),
                fmt_num(bound)
            ),
        );
        r.fails = o == Outcome::High;
        out.push(r);
    }
    if let Some(min) = t.min {
        if mean.is_nan() {
            out.push(unknown(name, "threshold.min", "mean", bad));
        } else {
            let (o, rel) = if mean < min {
                (Outcome::Low, "<")
            } else {
                (Outcome::Pass, ">=")
            };
            let mut r = CheckResult::new(
                "threshold.min",
                o,
                bad,
                format!(
                    "metric \"{name}\": canary mean {} {rel} floor {}",
                    fmt_num(mean),
                    fmt_num(min)
                ),
            );
            r.fails = o == Outcome::Low;
            out.push(r);
        }
    }
    out
}

/// `relative`: canary p50/p95/p99 against the scaled baseline's (increase),
/// p50 (decrease). High when the canary quantile is beyond the scaled one
/// *and* the exact exceedance test against the scaled baseline is
/// significant.
fn quantile_checks<S: Cohort + ?Sized>(
    m: &MetricConfig,
    tol: &Tolerance,
    b: &S,
    c: &S,
    scaled: &Scaled<S>,
) -> Vec<CheckResult> {
    let (name, bad) = (&m.name, m.bad);
    let rel = m.relative.unwrap_or_default();
    let mut out = Vec::new();
    if let (Some(_), Some((pct, up))) = (rel.max_increase_pct, &scaled.up) {
        for (label, p, weight) in [
            ("p50", 0.5, TAIL_WEIGHTS.p50),
            ("p95", 0.95, TAIL_WEIGHTS.p95),
            ("p99", 0.99, TAIL_WEIGHTS.p99),
        ] {
            let (bv, cv) = (b.quantile(p), c.quantile(p));
            let bound = bv * Tolerance::factor_up(*pct) + tol.abs;
            let head = format!(
                "metric \"{name}\": canary {label} {} vs baseline {} (bound +{}% = {}",
                fmt_num(cv),
                fmt_num(bv),
                fmt_num(*pct),
                fmt_num(bound)
            );
            let outcome = if cv > bound {
                Outcome::High
            } else {
                Outcome::Pass
            };
            let (test, pv) = if label == "p99" {
                upper_tail_test(up.as_ref(), c)
            } else if label == "p50" && location_runs(m) {
                // Judged by the location test (see `value_checks`): its
                // own median test would be computed for nothing.
                (String::new(), 1.0)
            } else if label == "p50" {
                median_test(up.as_ref(), c, true)
            } else {
                let (kc, r) = S::exceedance(up, c, p, true);
                let pv = stats::exceedance_sf(kc, r, up.count(), c.count());
                (
                    format!("tail test: {kc} canary above the scaled baseline's top {r}"),
                    pv,
                )
            };
            out.push(
                CheckResult::test(
                    &format!("relative.{label}_increase"),
                    outcome,
                    format!("{head}; {test})"),
                    pv,
                )
                .weighted(weight),
            );
        }
    }
    if let (Some(_), Some((pct, down))) = (rel.max_decrease_pct, &scaled.down) {
        let (bv, cv) = (b.quantile(0.5), c.quantile(0.5));
        let bound = bv * Tolerance::factor_down(*pct) - tol.abs;
        let head = format!(
            "metric \"{name}\": canary p50 {} vs baseline {} (bound -{}% = {}",
            fmt_num(cv),
            fmt_num(bv),
            fmt_num(*pct),
            fmt_num(bound)
        );
        let outcome = if cv < bound {
            Outcome::Low
        } else {
            Outcome::Pass
        };
        // With the location test the check reuses it (see `value_checks`).
        let (test, pv) = if location_runs(m) {
            (String::new(), 1.0)
        } else {
            median_test(down.as_ref(), c, false)
        };
        out.push(
            CheckResult::test(
                "relative.p50_decrease",
                outcome,
                format!("{head}; {test})"),
                pv,
            )
            .weighted(TAIL_WEIGHTS.p50),
        );
    }
    let _ = bad;
    out
}

/// The median test of a p50 check: canary values above the scaled
/// baseline's top half (`up`) or below its bottom half. Returns the
/// reason's clause and the p-value.
fn median_test<S: Cohort + ?Sized>(base: &S, c: &S, up: bool) -> (String, f64) {
    let (kc, r) = S::exceedance(base, c, 0.5, up);
    let pv = stats::exceedance_sf(kc, r, base.count(), c.count());
    let clause = if up {
        format!("median test: {kc} canary above the scaled baseline's top {r}")
    } else {
        format!("median test: {kc} canary below the scaled baseline's bottom {r}")
    };
    (clause, pv)
}

/// The p99 check's test: the weighted upper tail test of the canary
/// against the scaled baseline `up` over [`stats::tail_cutoffs`] (canary
/// values above the scaled baseline's top 0.05 % to 1.6 %, see
/// [`stats::tail_test`]). Returns the reason's clause and the p-value.
fn upper_tail_test<S: Cohort + ?Sized>(up: &S, c: &S) -> (String, f64) {
    let (nb, nc) = (up.count(), c.count());
    let counts: Vec<(u64, u64, u64)> = stats::tail_cutoffs(nb)
        .into_iter()
        .map(|(r, w)| (r, w, S::above(up, c, r)))
        .collect();
    let (p, how) = stats::tail_test(&counts, nb, nc);
    let list = |f: fn(&(u64, u64, u64)) -> u64| {
        counts
            .iter()
            .map(|t| f(t).to_string())
            .collect::<Vec<_>>()
            .join("/")
    };
    let sum: u64 = counts.iter().map(|&(_, w, k)| w * k).sum();
    let how = match how {
        stats::TailMethod::Exact => "exact",
        stats::TailMethod::Capped => "exact bound",
        stats::TailMethod::Bonferroni => "Bonferroni over the cutoffs",
    };
    (
        format!(
            "tail test: {} canary above the scaled baseline's top {}, weighted sum {sum}, {how}",
            list(|t| t.2),
            list(|t| t.0)
        ),
        p,
    )
}

/// One-sided Mann-Whitney p-value that the second sample is stochastically
/// larger (`greater`) or smaller than the first, from the two-sided test.
fn one_sided(mw: &MannWhitney, n1: u64, n2: u64, greater: bool) -> f64 {
    let mu = n1 as f64 * n2 as f64 / 2.0;
    // u1 counts pairs where the first sample is larger.
    let second_larger = mw.u1 < mu;
    let half = (mw.p_value / 2.0).min(0.5);
    if second_larger == greater && mw.u1 != mu {
        half
    } else {
        1.0 - half
    }
}

/// Whether the `statistical` location test runs for the metric.
fn location_runs(m: &MetricConfig) -> bool {
    match m.statistical {
        Some(s) => s.enabled,
        None => matches!(
            m.kind,
            MetricKind::Latency | MetricKind::Throughput | MetricKind::Ratio
        ),
    }
}

/// `statistical`: one-sided Mann-Whitney of the canary against the scaled
/// baseline in each bad direction; the Hodges-Lehmann shift of the canary
/// against the baseline itself (and its interval) is reported beside it.
fn location_checks<S: Cohort + ?Sized>(
    m: &MetricConfig,
    ci_alpha: f64,
    b: &S,
    c: &S,
    scaled: &Scaled<S>,
) -> (Vec<CheckResult>, Statistics) {
    let name = &m.name;
    let stat = m.statistical.unwrap_or_default();
    let mut out = Vec::new();
    let mut st = Statistics::default();
    if !location_runs(m) {
        return (out, st);
    }
    let hl: HodgesLehmann = S::hodges_lehmann(b, c, ci_alpha);
    st.shift = Some(hl.shift);
    st.ci = Some((hl.lo, hl.hi));
    for (dir, sc, greater) in [
        ("increase", &scaled.up, true),
        ("decrease", &scaled.down, false),
    ] {
        let Some((pct, base)) = sc else { continue };
        let mw = S::mann_whitney(base, c, stat.method)
            .or_else(|_| S::mann_whitney(base, c, MwMethod::Asymptotic));
        let Ok(mw) = mw else { continue };
        let p = one_sided(&mw, base.count(), c.count(), greater);
        st.p_value = Some(st.p_value.map_or(p, |q: f64| q.min(p)));
        let sign = if greater { "+" } else { "-" };
        out.push(CheckResult::test(
            &format!("mann-whitney.{dir}"),
            if greater { Outcome::High } else { Outcome::Low },
            format!(
                "metric \"{name}\": shift {} [{}, {}] vs the baseline scaled by {sign}{}%{} (one-sided Mann-Whitney)",
                fmt_num(hl.shift),
                fmt_num(hl.lo),
                fmt_num(hl.hi),
                fmt_num(*pct),
                if stat.min_effect > 0.0 {
                    format!(" {sign} {}", fmt_num(stat.min_effect))
                } else {
                    String::new()
                }
            ),
            p,
        ).weighted(TAIL_WEIGHTS.location));
    }
    (out, st)
}

/// `distribution`: one-sided Kolmogorov-Smirnov of the canary against the
/// scaled baseline in each bad direction: the share of the canary's mass
/// beyond the scaled baseline's distribution.
fn distribution_checks<S: Cohort + ?Sized>(
    m: &MetricConfig,
    c: &S,
    scaled: &Scaled<S>,
) -> Vec<CheckResult> {
    let name = &m.name;
    let dist = m.distribution.unwrap_or_default();
    let run = match m.distribution {
        Some(d) => d.enabled,
        None => m.kind == MetricKind::Latency,
    };
    let mut out = Vec::new();
    if !run {
        return out;
    }
    let lim = dist.max_shifted_fraction;
    for (dir, sc, up) in [("up", &scaled.up, true), ("down", &scaled.down, false)] {
        let Some((pct, base)) = sc else { continue };
        let (dp, dm) = S::ks_distances(base, c);
        let d = if up { dp } else { dm };
        let p = stats::ks_one_sided_p(d, base.count() as usize, c.count() as usize);
        let candidate = match (d > lim, up) {
            (true, true) => Outcome::High,
            (true, false) => Outcome::Low,
            (false, _) => Outcome::Pass,
        };
        out.push(CheckResult::test(
            if up {
                "distribution.up"
            } else {
                "distribution.down"
            },
            candidate,
            format!(
                "metric \"{name}\": {}% of the canary's mass lies {} the baseline scaled by {}{}% (bound {}%, one-sided KS)",
                fmt_num(d * 100.0),
                if up { "above" } else { "below" },
                if up { "+" } else { "-" },
                fmt_num(*pct),
                fmt_num(lim * 100.0)
            ),
            p,
        ).weighted(TAIL_WEIGHTS.distribution));
        let _ = dir;
    }
    out
}

/// A bound on a statistic the data cannot give (a histogram's mean
/// without its sum): no data, never a pass.
fn unknown(name: &str, key: &str, label: &str, bad: Bad) -> CheckResult {
    CheckResult::new(
        key,
        Outcome::NoData,
        bad,
        format!(
            "metric \"{name}\": the canary {label} is unknown (a histogram gives its mean only with its sum)"
        ),
    )
}

fn traffic_point(name: &str, expected: f64, dip: f64, b: f64, c: f64, bad: Bad) -> CheckResult {
    let total = b + c;
    let floor = expected * (1.0 - dip / 100.0);
    if total <= 0.0 {
        return CheckResult::new(
            "traffic",
            Outcome::NoData,
            bad,
            format!("metric \"{name}\": no traffic in either cohort"),
        );
    }
    let share = c / total;
    let o = if share < floor {
        Outcome::Low
    } else {
        Outcome::Pass
    };
    let mut r = CheckResult::new(
        "traffic",
        o,
        bad,
        format!(
            "metric \"{name}\": canary share {}% vs expected {}% (floor {}%)",
            fmt_num(share * 100.0),
            fmt_num(expected * 100.0),
            fmt_num(floor * 100.0)
        ),
    );
    r.fails = o == Outcome::Low;
    r
}

/// Runs every configured check of a count metric.
pub(crate) fn count_checks(
    m: &MetricConfig,
    b: &Counts,
    c: &Counts,
) -> (Vec<CheckResult>, Statistics) {
    let name = &m.name;
    let bad = m.bad;
    let mut out = Vec::new();
    let mut st = Statistics::default();
    // Throughput counts carry requests in `events`.
    if m.kind == MetricKind::Throughput {
        if let Some(t) = &m.traffic {
            out.push(traffic_counts(
                name,
                t.expected_share,
                t.max_dip_pct,
                b.events,
                c.events,
                bad,
            ));
        }
        if let Some(min) = m.threshold.and_then(|t| t.min) {
            let v = c.events as f64;
            let o = if v < min { Outcome::Low } else { Outcome::Pass };
            let mut r = CheckResult::new(
                "threshold.min",
                o,
                bad,
                format!(
                    "metric \"{name}\": canary requests {} vs floor {}",
                    v,
                    fmt_num(min)
                ),
            );
            r.fails = o == Outcome::Low;
            out.push(r);
        }
        return (out, st);
    }
    let rb = b.events as f64 / b.trials as f64;
    let rc = c.events as f64 / c.trials as f64;
    if let Some(max) = m.threshold.and_then(|t| t.ratio_max) {
        let o = if rc > max {
            Outcome::High
        } else {
            Outcome::Pass
        };
        let mut r = CheckResult::new(
            "threshold.ratio_max",
            o,
            bad,
            format!(
                "metric \"{name}\": canary ratio {} ({} of {}) {} bound {}",
                fmt_num(rc),
                c.events,
                c.trials,
                if o == Outcome::High { ">" } else { "<=" },
                fmt_num(max)
            ),
        );
        r.fails = o == Outcome::High;
        out.push(r);
    }
    let rel = m.relative.unwrap_or_default();
    let run = m.statistical.map(|s| s.enabled).unwrap_or(true);
    if run {
        let total = b.events + c.events;
        if total < m.min_events {
            out.push(CheckResult::new(
                "count-test",
                Outcome::NoData,
                bad,
                format!(
                    "metric \"{name}\": {total} events in both cohorts, fewer than min_events {}",
                    m.min_events
                ),
            ));
        } else {
            // Conditional binomial test of rate_c <= r * rate_b: given the
            // total events, the canary's share is Bin(total, p0) at the
            // boundary, exact for any counts (zeros included).
            let inc = rel
                .max_increase_pct
                .or(m.statistical.and_then(|s| s.min_effect_pct))
                .unwrap_or(0.0);
            let dec = rel
                .max_decrease_pct
                .or(m.statistical.and_then(|s| s.min_effect_pct))
                .unwrap_or(0.0);
            let (tb, tc) = (b.trials as f64, c.trials as f64);
            let share = |r: f64| r * tc / (r * tc + tb);
            let r_up = 1.0 + inc / 100.0;
            let p_up = stats::binomial_sf(c.events, total, share(r_up));
            let r_down = (1.0 - dec / 100.0).max(1e-12);
            let p_down = stats::binomial_cdf(c.events, total, share(r_down));
            st.shift = Some(rc - rb);
            for (dir, on, p, o, sign, pct) in [
                ("increase", bad.high_fails(), p_up, Outcome::High, "+", inc),
                ("decrease", bad.low_fails(), p_down, Outcome::Low, "-", dec),
            ] {
                if !on {
                    continue;
                }
                st.p_value = Some(st.p_value.map_or(p, |q: f64| q.min(p)));
                out.push(CheckResult::test(
                    &format!("count-test.{dir}"),
                    o,
                    format!(
                        "metric \"{name}\": canary rate {} ({} of {}) vs baseline {} ({} of {}) scaled by {sign}{}% (exact conditional binomial test)",
                        fmt_num(rc),
                        c.events,
                        c.trials,
                        fmt_num(rb),
                        b.events,
                        b.trials,
                        fmt_num(pct),
                    ),
                    p,
                ));
            }
        }
    }
    if let Some(slo) = &m.slo {
        let budget = 1.0 - slo.objective;
        let burn = rc / budget;
        let recent = c
            .recent
            .filter(|r| r.trials > 0)
            .map(|r| r.events as f64 / r.trials as f64 / budget);
        let high = burn > slo.max_burn && recent.is_none_or(|r| r > slo.max_burn);
        let o = if high { Outcome::High } else { Outcome::Pass };
        let mut r = CheckResult::new(
            "slo-burn",
            o,
            bad,
            format!(
                "metric \"{name}\": canary burns the {}% SLO budget at {}x{} (bound {}x)",
                fmt_num(slo.objective * 100.0),
                fmt_num(burn),
                recent
                    .map(|r| format!(", recent window {}x", fmt_num(r)))
                    .unwrap_or_default(),
                fmt_num(slo.max_burn)
            ),
        );
        r.fails = high;
        out.push(r);
    }
    if let Some(t) = &m.traffic {
        out.push(traffic_counts(
            name,
            t.expected_share,
            t.max_dip_pct,
            b.trials,
            c.trials,
            bad,
        ));
    }
    (out, st)
}

fn traffic_counts(name: &str, expected: f64, dip: f64, b: u64, c: u64, bad: Bad) -> CheckResult {
    let total = b + c;
    if total == 0 {
        return CheckResult::new(
            "traffic",
            Outcome::NoData,
            bad,
            format!("metric \"{name}\": no requests in either cohort"),
        );
    }
    let floor = expected * (1.0 - dip / 100.0);
    let share = c as f64 / total as f64;
    let p = stats::binomial_cdf(c, total, floor);
    CheckResult::test(
        "traffic",
        if share < floor {
            Outcome::Low
        } else {
            Outcome::Pass
        },
        format!(
            "metric \"{name}\": canary got {c} of {total} requests ({}%) vs expected {}% (floor {}%, binomial test)",
            fmt_num(share * 100.0),
            fmt_num(expected * 100.0),
            fmt_num(floor * 100.0)
        ),
        p,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tied_runs_give_the_same_checks_as_the_sorted_values() {
        use crate::config::{Bad, MetricConfig, MetricKind, Relative, Threshold};
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for (case, bad) in [Bad::Increase, Bad::Decrease, Bad::Either]
            .into_iter()
            .enumerate()
        {
            let mut m = MetricConfig::new("lat", MetricKind::Latency, bad)
                .with_threshold(Threshold::p99_max(150.0));
            m.relative = Some(Relative {
                max_increase_pct: Some(5.0),
                max_decrease_pct: Some(5.0),
            });
            let mut b: Vec<f64> = (0..6000).map(|_| (80 + next() % 40) as f64).collect();
            let mut c: Vec<f64> = (0..5000)
                .map(|_| (80 + next() % 40 + case as u64 * 3) as f64)
                .collect();
            stats::sort_floats(&mut b);
            stats::sort_floats(&mut c);
            let plain = value_checks(&m, 0.01, b.as_slice(), c.as_slice());
            let Ok((tb, tc)) = Tied::pair(b.clone(), c.clone()) else {
                panic!("whole numbers in 40 levels are tied");
            };
            let tied = value_checks(&m, 0.01, &tb, &tc);
            assert_eq!(plain, tied, "case {case}");
            assert!(plain.0.iter().any(|r| r.is_pending()));
        }
        // Distinct values stay on the sorted path.
        let v: Vec<f64> = (0..100).map(f64::from).collect();
        assert!(Tied::pair(v.clone(), v).is_err());
    }

    #[test]
    fn numbers_print_short() {
        assert_eq!(fmt_num(500.0), "500");
        assert_eq!(fmt_num(0.0125), "0.0125");
        assert_eq!(fmt_num(1e-9), "1.0000e-9");
    }
}
