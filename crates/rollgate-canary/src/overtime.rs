//! Analysis over time: judge interval after interval with failure,
//! inconclusive and consecutive-error limits, stop early on a critical
//! failure, and require the final interval to pass.
//!
//! ## Sequential mode (always valid)
//!
//! Checking a fixed-alpha test at every interval inflates the false-rollback
//! rate: with alpha = 0.05 and 30 looks an A/A canary is rolled back far more
//! often than 5 % of the time. In sequential mode interval `k` (1-based) is
//! judged at
//!
//! ```text
//! alpha_k = alpha * 6 / (pi^2 k^2)
//! ```
//!
//! an alpha-spending sequence whose sum over every `k >= 1` is exactly
//! `alpha`. By the union bound the probability that *any* interval's
//! statistical checks reject a true null is at most `alpha`, however many
//! intervals are checked and whenever the analysis is stopped: a Bonferroni
//! alpha-spending method, valid under arbitrary dependence between the
//! intervals (so it holds for cumulative windows, which is what the driver
//! uses in this mode to keep power growing with data). Absolute thresholds
//! and SLO bounds are not statistical and are not covered by this bound.

use std::time::Duration;

use serde::Serialize;

use crate::data::SampleSet;
use crate::error::CanaryError;
use crate::judge::{Analysis, Report, Verdict};
use crate::source::{MetricSource, Window, collect};

/// Limits of an analysis over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IntervalPolicy {
    /// Number of intervals; the last one must pass to promote.
    pub intervals: u32,
    /// Roll back when more intervals than this fail.
    pub failure_limit: u32,
    /// Stop as inconclusive when more intervals than this are inconclusive.
    pub inconclusive_limit: u32,
    /// Roll back when more consecutive intervals than this cannot be measured.
    pub consecutive_error_limit: u32,
    /// Judge interval `k` at the alpha-spending level `alpha * 6 / (pi^2 k^2)`
    /// over the cumulative window (see the module docs).
    pub sequential: bool,
}

impl IntervalPolicy {
    /// `intervals` intervals, no failure or inconclusive allowed, up to 2
    /// consecutive measurement errors, fixed alpha.
    pub fn new(intervals: u32) -> Self {
        Self {
            intervals: intervals.max(1),
            failure_limit: 0,
            inconclusive_limit: 0,
            consecutive_error_limit: 2,
            sequential: false,
        }
    }
    /// Sets the failure limit.
    pub fn failure_limit(mut self, n: u32) -> Self {
        self.failure_limit = n;
        self
    }
    /// Sets the inconclusive limit.
    pub fn inconclusive_limit(mut self, n: u32) -> Self {
        self.inconclusive_limit = n;
        self
    }
    /// Sets the consecutive-error limit.
    pub fn consecutive_error_limit(mut self, n: u32) -> Self {
        self.consecutive_error_limit = n;
        self
    }
    /// Turns the always-valid sequential mode on or off.
    pub fn sequential(mut self, on: bool) -> Self {
        self.sequential = on;
        self
    }
}

/// The alpha-spending level of interval `k` (1-based): `alpha * 6 / (pi^2 k^2)`.
///
/// ```
/// use rollgate_canary::overtime::spent_alpha;
/// let total: f64 = (1..=100_000).map(|k| spent_alpha(0.05, k)).sum();
/// assert!(total < 0.05 && total > 0.0499);
/// ```
pub fn spent_alpha(alpha: f64, k: u32) -> f64 {
    let k = f64::from(k.max(1));
    alpha * 6.0 / (std::f64::consts::PI * std::f64::consts::PI * k * k)
}

/// What one interval gave.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum IntervalResult {
    /// The interval was judged.
    Judged {
        /// 1-based interval number.
        interval: u32,
        /// Alpha used for the statistical checks.
        alpha: f64,
        /// The judgement.
        report: Report,
    },
    /// The interval could not be measured.
    Error {
        /// 1-based interval number.
        interval: u32,
        /// Why.
        error: String,
    },
}

/// The running state of an analysis over time: a pure fold of interval
/// results into a verdict (no I/O, no clock).
///
/// ```
/// use rollgate_canary::overtime::{IntervalPolicy, OverTime};
/// use rollgate_canary::{Analysis, AnalysisConfig, MetricSamples, SampleSet, Verdict};
/// let cfg = AnalysisConfig::from_toml_str(r#"
/// [[metrics]]
/// name = "errors"
/// kind = "count"
/// bad = "increase"
/// "#)?;
/// let mut run = OverTime::new(Analysis::new(cfg)?, IntervalPolicy::new(2));
/// let mut data = SampleSet::default();
/// data.insert("errors", MetricSamples::counts((5, 1000), (4, 1000)));
/// assert_eq!(run.judge_interval(&data)?, Verdict::Continue);
/// assert_eq!(run.judge_interval(&data)?, Verdict::Promote);
/// # Ok::<(), rollgate_canary::CanaryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct OverTime {
    analysis: Analysis,
    policy: IntervalPolicy,
    results: Vec<IntervalResult>,
    failures: u32,
    inconclusives: u32,
    consecutive_errors: u32,
    done: Option<Verdict>,
    reasons: Vec<String>,
}

/// The outcome of an analysis over time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverTimeReport {
    /// Final verdict (never `continue`).
    pub verdict: Verdict,
    /// Why.
    pub reasons: Vec<String>,
    /// Every interval, in order.
    pub intervals: Vec<IntervalResult>,
}

impl OverTime {
    /// A fresh run.
    pub fn new(analysis: Analysis, policy: IntervalPolicy) -> Self {
        Self {
            analysis,
            policy,
            results: Vec::new(),
            failures: 0,
            inconclusives: 0,
            consecutive_errors: 0,
            done: None,
            reasons: Vec::new(),
        }
    }

    /// The 1-based number of the next interval.
    pub fn next_interval(&self) -> u32 {
        self.results.len() as u32 + 1
    }

    /// The alpha the next interval is judged at.
    pub fn next_alpha(&self) -> f64 {
        let alpha = self.analysis.config().alpha;
        if self.policy.sequential {
            spent_alpha(alpha, self.next_interval())
        } else {
            alpha
        }
    }

    /// The final verdict once reached.
    pub fn finished(&self) -> Option<Verdict> {
        self.done
    }

    /// Judges the next interval's data and folds it in.
    pub fn judge_interval(&mut self, data: &SampleSet) -> Result<Verdict, CanaryError> {
        if let Some(v) = self.done {
            return Ok(v);
        }
        let alpha = self.next_alpha();
        let report = self.analysis.judge_at(data, alpha)?;
        Ok(self.record(IntervalResult::Judged {
            interval: self.next_interval(),
            alpha,
            report,
        }))
    }

    /// Folds in an interval that could not be measured.
    pub fn record_error(&mut self, error: &CanaryError) -> Verdict {
        if let Some(v) = self.done {
            return v;
        }
        self.record(IntervalResult::Error {
            interval: self.next_interval(),
            error: error.to_string(),
        })
    }

    fn finish(&mut self, v: Verdict, why: String) -> Verdict {
        self.reasons.push(why);
        self.done = Some(v);
        v
    }

    fn record(&mut self, r: IntervalResult) -> Verdict {
        let k = self.next_interval();
        let last = k >= self.policy.intervals;
        let verdict = match &r {
            IntervalResult::Error { error, .. } => {
                self.consecutive_errors += 1;
                let e = error.clone();
                self.results.push(r);
                if self.consecutive_errors > self.policy.consecutive_error_limit {
                    return self.finish(
                        Verdict::Rollback,
                        format!(
                            "interval {k}: {} consecutive measurement errors exceed the limit {} (last: {e})",
                            self.consecutive_errors, self.policy.consecutive_error_limit
                        ),
                    );
                }
                if last {
                    return self.finish(
                        Verdict::Inconclusive,
                        format!("interval {k} (the last) could not be measured: {e}"),
                    );
                }
                return Verdict::Continue;
            }
            IntervalResult::Judged { report, .. } => {
                self.consecutive_errors = 0;
                let critical = report.metrics.iter().any(|m| m.critical && m.failed);
                (report.verdict, critical, report.reasons.clone())
            }
        };
        self.results.push(r);
        let (v, critical, reasons) = verdict;
        let first = reasons.first().cloned().unwrap_or_default();
        if critical {
            return self.finish(
                Verdict::Rollback,
                format!("interval {k}: critical failure stops the analysis: {first}"),
            );
        }
        match v {
            Verdict::Rollback => self.failures += 1,
            Verdict::Inconclusive => self.inconclusives += 1,
            Verdict::Promote | Verdict::Continue => {}
        }
        if self.failures > self.policy.failure_limit {
            return self.finish(
                Verdict::Rollback,
                format!(
                    "interval {k}: {} failed intervals exceed the limit {} ({first})",
                    self.failures, self.policy.failure_limit
                ),
            );
        }
        if self.inconclusives > self.policy.inconclusive_limit {
            return self.finish(
                Verdict::Inconclusive,
                format!(
                    "interval {k}: {} inconclusive intervals exceed the limit {} ({first})",
                    self.inconclusives, self.policy.inconclusive_limit
                ),
            );
        }
        if last {
            return match v {
                Verdict::Promote | Verdict::Continue => self.finish(
                    Verdict::Promote,
                    format!("all {k} intervals judged, the last passed ({first})"),
                ),
                Verdict::Rollback => self.finish(
                    Verdict::Rollback,
                    format!("the last interval failed: {first}"),
                ),
                Verdict::Inconclusive => self.finish(
                    Verdict::Inconclusive,
                    format!("the last interval was inconclusive: {first}"),
                ),
            };
        }
        Verdict::Continue
    }

    /// The report so far (its verdict is `continue` until finished).
    pub fn report(&self) -> OverTimeReport {
        OverTimeReport {
            verdict: self.done.unwrap_or(Verdict::Continue),
            reasons: self.reasons.clone(),
            intervals: self.results.clone(),
        }
    }
}

/// Drives an analysis over time against a source: waits `interval` (tokio's
/// clock) before each evaluation, then judges `[start + (k-1) i, start + k i)`
/// — or the cumulative `[start, start + k i)` in sequential mode. `start` is
/// on the source's timeline; the windows advance by `interval` seconds.
pub async fn run(
    source: &dyn MetricSource,
    analysis: Analysis,
    policy: IntervalPolicy,
    start: f64,
    interval: Duration,
) -> OverTimeReport {
    let step = interval.as_secs_f64();
    let mut state = OverTime::new(analysis, policy);
    while state.finished().is_none() {
        tokio::time::sleep(interval).await;
        let k = f64::from(state.next_interval());
        let from = if policy.sequential {
            start
        } else {
            start + (k - 1.0) * step
        };
        let window = Window {
            start: from,
            end: start + k * step,
        };
        let config = state.analysis.config().clone();
        match collect(source, &config, window).await {
            Ok(data) => {
                if let Err(e) = state.judge_interval(&data) {
                    state.record_error(&e);
                }
            }
            Err(e) => {
                state.record_error(&e);
            }
        }
    }
    state.report()
}
