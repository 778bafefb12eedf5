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
    /// `(kc, r)`: canary observations above the baseline's `r`-th largest,
    /// `r = ceil(n_b (1 - p))`.
    fn exceedance(b: &Self, c: &Self, p: f64) -> (u64, u64);
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
    fn exceedance(b: &Self, c: &Self, p: f64) -> (u64, u64) {
        let nb = b.len();
        let r = ((nb as f64 * (1.0 - p)).ceil() as usize).clamp(1, nb);
        let t = b[nb - r];
        let kc = c.len() - c.partition_point(|&v| v <= t);
        (kc as u64, r as u64)
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
    fn exceedance(b: &Self, c: &Self, p: f64) -> (u64, u64) {
        weighted::exceedance(b, c, p)
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
        }
    }
    fn with_p(mut self, p: f64) -> Self {
        self.p_value = Some(p);
        self
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

/// How many statistical tests a metric's checks run: the judge splits its
/// alpha evenly across all of them (Bonferroni), so one judgement's
/// false-failure probability stays at most alpha.
pub(crate) fn statistical_tests(m: &MetricConfig) -> usize {
    let rel = m.relative.unwrap_or_default();
    if m.kind == MetricKind::Count {
        let count_test = m.statistical.map(|s| s.enabled).unwrap_or(true);
        return usize::from(count_test) + usize::from(m.traffic.is_some());
    }
    let run_stat = match m.statistical {
        Some(s) => s.enabled,
        None => matches!(
            m.kind,
            MetricKind::Latency | MetricKind::Throughput | MetricKind::Ratio
        ),
    };
    let run_dist = match m.distribution {
        Some(d) => d.enabled,
        None => m.kind == MetricKind::Latency,
    };
    let dist_sides = if m.bad == Bad::Either { 2 } else { 1 };
    3 * usize::from(rel.max_increase_pct.is_some())
        + usize::from(rel.max_decrease_pct.is_some())
        + usize::from(run_stat)
        + dist_sides * usize::from(run_dist)
        // traffic on count-shaped throughput data is a binomial test
        + usize::from(m.traffic.is_some())
}

/// Runs every configured check of a value metric on two cohorts (sorted
/// values or histograms on common bounds).
pub(crate) fn value_checks<S: Cohort + ?Sized>(
    m: &MetricConfig,
    alpha: f64,
    ci_alpha: f64,
    b: &S,
    c: &S,
) -> (Vec<CheckResult>, Statistics) {
    let name = &m.name;
    let bad = m.bad;
    let mut out = Vec::new();
    let mut st = Statistics::default();
    let q = |v: &S, p: f64| v.quantile(p);
    let mean = |v: &S| v.mean().unwrap_or(f64::NAN);

    if let Some(t) = &m.threshold {
        for (key, label, bound, value) in [
            ("threshold.p50_max", "p50", t.p50_max, q(c, 0.5)),
            ("threshold.p95_max", "p95", t.p95_max, q(c, 0.95)),
            ("threshold.p99_max", "p99", t.p99_max, q(c, 0.99)),
            ("threshold.mean_max", "mean", t.mean_max, mean(c)),
            ("threshold.ratio_max", "ratio", t.ratio_max, mean(c)),
        ] {
            if let Some(bound) = bound {
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
                // An absolute ceiling fails whatever the configured direction.
                r.fails = o == Outcome::High;
                out.push(r);
            }
        }
        if t.min.is_some() && mean(c).is_nan() {
            out.push(unknown(name, "threshold.min", "mean", bad));
        } else if let Some(min) = t.min {
            let value = mean(c);
            let (o, rel) = if value < min {
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
                    fmt_num(value),
                    fmt_num(min)
                ),
            );
            r.fails = o == Outcome::Low;
            out.push(r);
        }
    }

    let rel = m.relative.unwrap_or_default();
    if let Some(pct) = rel.max_increase_pct {
        for (label, p) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
            let (bv, cv) = (q(b, p), q(c, p));
            let bound = bv + bv.abs() * pct / 100.0;
            let pv = exceedance_p(b, c, p);
            let high = cv > bound && pv < alpha;
            let reason = format!(
                "metric \"{name}\": canary {label} {} vs baseline {} (bound +{}% = {}, tail test p={})",
                fmt_num(cv),
                fmt_num(bv),
                fmt_num(pct),
                fmt_num(bound),
                fmt_num(pv)
            );
            let o = if high { Outcome::High } else { Outcome::Pass };
            out.push(
                CheckResult::new(&format!("relative.{label}_increase"), o, bad, reason).with_p(pv),
            );
        }
    }

    let stat = m.statistical.unwrap_or_default();
    let default_on = matches!(
        m.kind,
        MetricKind::Latency | MetricKind::Throughput | MetricKind::Ratio
    );
    let run_stat = if m.statistical.is_some() {
        stat.enabled
    } else {
        default_on
    };
    let mut mw_p = None;
    if run_stat || rel.max_decrease_pct.is_some() {
        let mw = S::mann_whitney(b, c, stat.method)
            .or_else(|_| S::mann_whitney(b, c, MwMethod::Asymptotic));
        if let Ok(mw) = mw {
            let hl: HodgesLehmann = S::hodges_lehmann(b, c, ci_alpha);
            st = Statistics {
                p_value: Some(mw.p_value),
                shift: Some(hl.shift),
                ci: Some((hl.lo, hl.hi)),
            };
            mw_p = Some(mw.p_value);
            if run_stat {
                let base_med = q(b, 0.5).abs();
                let inc_pct = stat.min_effect_pct.or(rel.max_increase_pct).unwrap_or(1.0);
                let dec_pct = stat.min_effect_pct.or(rel.max_decrease_pct).unwrap_or(1.0);
                let up = base_med * inc_pct / 100.0 + stat.min_effect;
                let down = base_med * dec_pct / 100.0 + stat.min_effect;
                let sig = mw.p_value < alpha;
                let o = if sig && hl.shift > up {
                    Outcome::High
                } else if sig && hl.shift < -down {
                    Outcome::Low
                } else {
                    Outcome::Pass
                };
                let reason = format!(
                    "metric \"{name}\": shift {} [{}, {}] vs effect bound +{}/-{} (p={}, alpha {})",
                    fmt_num(hl.shift),
                    fmt_num(hl.lo),
                    fmt_num(hl.hi),
                    fmt_num(up),
                    fmt_num(down),
                    fmt_num(mw.p_value),
                    fmt_num(alpha)
                );
                out.push(CheckResult::new("mann-whitney", o, bad, reason).with_p(mw.p_value));
            }
        }
    }
    if let Some(pct) = rel.max_decrease_pct {
        let (bv, cv) = (q(b, 0.5), q(c, 0.5));
        let bound = bv - bv.abs() * pct / 100.0;
        let p = mw_p.unwrap_or(1.0);
        let low = cv < bound && p < alpha;
        let o = if low { Outcome::Low } else { Outcome::Pass };
        out.push(
            CheckResult::new(
                "relative.p50_decrease",
                o,
                bad,
                format!(
                    "metric \"{name}\": canary p50 {} vs baseline {} (bound -{}% = {}, p={})",
                    fmt_num(cv),
                    fmt_num(bv),
                    fmt_num(pct),
                    fmt_num(bound),
                    fmt_num(p)
                ),
            )
            .with_p(p),
        );
    }

    let dist = m.distribution.unwrap_or_default();
    let run_dist = if m.distribution.is_some() {
        dist.enabled
    } else {
        m.kind == MetricKind::Latency
    };
    if run_dist {
        let (dp, dm) = S::ks_distances(b, c);
        let (nb, nc) = (b.count() as usize, c.count() as usize);
        let pp = stats::ks_one_sided_p(dp, nb, nc);
        let pm = stats::ks_one_sided_p(dm, nb, nc);
        let lim = dist.max_shifted_fraction;
        let high = bad.high_fails() && dp > lim && pp < alpha;
        let low = bad.low_fails() && dm > lim && pm < alpha;
        let (o, d, p) = if high {
            (Outcome::High, dp, pp)
        } else if low {
            (Outcome::Low, dm, pm)
        } else if bad == Bad::Decrease {
            (Outcome::Pass, dm, pm)
        } else {
            (Outcome::Pass, dp, pp)
        };
        out.push(
            CheckResult::new(
                "distribution",
                o,
                bad,
                format!(
                    "metric \"{name}\": {}% of the canary's mass moved {} (ks p={}, bound {}%)",
                    fmt_num(d * 100.0),
                    if d == dm && bad == Bad::Decrease {
                        "down"
                    } else {
                        "up"
                    },
                    fmt_num(p),
                    fmt_num(lim * 100.0)
                ),
            )
            .with_p(p),
        );
    }

    if let Some(t) = &m.traffic {
        let (sb, sc) = (b.volume(), c.volume());
        out.push(traffic_point(
            name,
            t.expected_share,
            t.max_dip_pct,
            sb,
            sc,
            bad,
        ));
    }
    (out, st)
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

/// One-sided p-value that the canary has more mass above the baseline's
/// `p`-quantile than the baseline: the number of canary values above the
/// baseline's `r`-th largest value (`r = ceil(n_b (1 - p))`) against its
/// exact distribution-free null (the exceedance test; at `p = 0.5` a
/// median test).
fn exceedance_p<S: Cohort + ?Sized>(b: &S, c: &S, p: f64) -> f64 {
    let (kc, r) = S::exceedance(b, c, p);
    stats::exceedance_sf(kc, r, b.count(), c.count())
}

/// Runs every configured check of a count metric.
pub(crate) fn count_checks(
    m: &MetricConfig,
    alpha: f64,
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
                alpha,
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
            let (o, p) = if bad.high_fails() && p_up < alpha {
                (Outcome::High, p_up)
            } else if bad.low_fails() && p_down < alpha {
                (Outcome::Low, p_down)
            } else if bad == Bad::Decrease {
                (Outcome::Pass, p_down)
            } else {
                (Outcome::Pass, p_up)
            };
            st.p_value = Some(p);
            st.shift = Some(rc - rb);
            out.push(
                CheckResult::new(
                    "count-test",
                    o,
                    bad,
                    format!(
                        "metric \"{name}\": canary rate {} ({} of {}) vs baseline {} ({} of {}), bound +{}%/-{}% (p={}, alpha {})",
                        fmt_num(rc),
                        c.events,
                        c.trials,
                        fmt_num(rb),
                        b.events,
                        b.trials,
                        fmt_num(inc),
                        fmt_num(dec),
                        fmt_num(p),
                        fmt_num(alpha)
                    ),
                )
                .with_p(p),
            );
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
            alpha,
            b.trials,
            c.trials,
            bad,
        ));
    }
    (out, st)
}

fn traffic_counts(
    name: &str,
    expected: f64,
    dip: f64,
    alpha: f64,
    b: u64,
    c: u64,
    bad: Bad,
) -> CheckResult {
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
    let low = share < floor && p < alpha;
    let o = if low { Outcome::Low } else { Outcome::Pass };
    let mut r = CheckResult::new(
        "traffic",
        o,
        bad,
        format!(
            "metric \"{name}\": canary got {c} of {total} requests ({}%) vs expected {}% (floor {}%, p={})",
            fmt_num(share * 100.0),
            fmt_num(expected * 100.0),
            fmt_num(floor * 100.0),
            fmt_num(p)
        ),
    )
    .with_p(p);
    r.fails = low;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_short() {
        assert_eq!(fmt_num(500.0), "500");
        assert_eq!(fmt_num(0.0125), "0.0125");
        assert_eq!(fmt_num(1e-9), "1.0000e-9");
    }
}
