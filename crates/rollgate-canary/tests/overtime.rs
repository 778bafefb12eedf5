//! Analysis over time: limits, early stop, final interval, sequential mode.

use std::time::Duration;

use async_trait::async_trait;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_canary::overtime::{IntervalPolicy, IntervalResult, OverTime, run};
use rollgate_canary::source::InMemorySource;
use rollgate_canary::{
    Analysis, AnalysisConfig, CanaryError, Cohort, MetricQuery, MetricSamples, MetricSource,
    SampleSet, Samples, Verdict,
};

const CFG: &str = r#"
alpha = 0.05
[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
critical = false

[[metrics]]
name = "crashes"
kind = "count"
bad = "increase"
critical = true
threshold = { ratio_max = 0.01 }
statistical = { enabled = false }
"#;

fn analysis() -> Analysis {
    Analysis::new(AnalysisConfig::from_toml_str(CFG).expect("config")).expect("valid")
}

fn data(errors: (u64, u64), crashes: u64, trials: u64) -> SampleSet {
    let mut s = SampleSet::default();
    s.insert(
        "errors",
        MetricSamples::counts((errors.0, trials), (errors.1, trials)),
    );
    s.insert(
        "crashes",
        MetricSamples::counts((0, trials), (crashes, trials)),
    );
    s
}

const OK: (u64, u64) = (10, 10);
const BAD: (u64, u64) = (10, 60);

#[test]
fn critical_failure_stops_at_once() {
    let mut run = OverTime::new(analysis(), IntervalPolicy::new(5).failure_limit(3));
    assert_eq!(
        run.judge_interval(&data(OK, 0, 1000)).expect("judged"),
        Verdict::Continue
    );
    assert_eq!(
        run.judge_interval(&data(OK, 50, 1000)).expect("judged"),
        Verdict::Rollback
    );
    let report = run.report();
    assert_eq!(report.intervals.len(), 2);
    assert!(
        report.reasons[0].contains("critical failure"),
        "{:?}",
        report.reasons
    );
    // Finished runs stay finished.
    assert_eq!(
        run.judge_interval(&data(OK, 0, 1000)).expect("judged"),
        Verdict::Rollback
    );
}

#[test]
fn failure_limit_is_tolerated_but_the_last_interval_must_pass() {
    let mut run = OverTime::new(analysis(), IntervalPolicy::new(3).failure_limit(1));
    assert_eq!(
        run.judge_interval(&data(BAD, 0, 1000)).expect("judged"),
        Verdict::Continue
    );
    assert_eq!(
        run.judge_interval(&data(OK, 0, 1000)).expect("judged"),
        Verdict::Continue
    );
    assert_eq!(
        run.judge_interval(&data(OK, 0, 1000)).expect("judged"),
        Verdict::Promote
    );

    let mut run = OverTime::new(analysis(), IntervalPolicy::new(3).failure_limit(5));
    run.judge_interval(&data(OK, 0, 1000)).expect("judged");
    run.judge_interval(&data(OK, 0, 1000)).expect("judged");
    assert_eq!(
        run.judge_interval(&data(BAD, 0, 1000)).expect("judged"),
        Verdict::Rollback
    );
    assert!(run.report().reasons[0].contains("last interval failed"));

    let mut run = OverTime::new(analysis(), IntervalPolicy::new(5).failure_limit(1));
    run.judge_interval(&data(BAD, 0, 1000)).expect("judged");
    assert_eq!(
        run.judge_interval(&data(BAD, 0, 1000)).expect("judged"),
        Verdict::Rollback
    );
}

#[test]
fn inconclusive_limit_stops_as_inconclusive() {
    let mut run = OverTime::new(analysis(), IntervalPolicy::new(5).inconclusive_limit(1));
    // zero trials: no data
    assert_eq!(
        run.judge_interval(&data((0, 0), 0, 0)).expect("judged"),
        Verdict::Continue
    );
    assert_eq!(
        run.judge_interval(&data((0, 0), 0, 0)).expect("judged"),
        Verdict::Inconclusive
    );
}

struct Flaky;
#[async_trait]
impl MetricSource for Flaky {
    async fn samples(&self, q: &MetricQuery) -> Result<Samples, CanaryError> {
        Err(CanaryError::Source {
            source_name: "flaky".into(),
            metric: q.metric.clone(),
            why: "connection refused".into(),
            cause: None,
        })
    }
}

#[tokio::test(start_paused = true)]
async fn consecutive_errors_past_the_limit_roll_back() {
    let policy = IntervalPolicy::new(10).consecutive_error_limit(2);
    let report = run(&Flaky, analysis(), policy, 0.0, Duration::from_secs(60)).await;
    assert_eq!(report.verdict, Verdict::Rollback);
    assert_eq!(report.intervals.len(), 3);
    assert!(
        matches!(&report.intervals[2], IntervalResult::Error { error, .. } if error.contains("connection refused"))
    );
}

#[tokio::test(start_paused = true)]
async fn driver_walks_windows_on_tokio_time() {
    let src = InMemorySource::new();
    for k in 0..4u32 {
        let t = f64::from(k) * 60.0 + 1.0;
        let canary_errors = if k == 3 { 80 } else { 10 };
        src.add_counts("errors", Cohort::Baseline, t, 10, 1000);
        src.add_counts("errors", Cohort::Canary, t, canary_errors, 1000);
        src.add_counts("crashes", Cohort::Baseline, t, 0, 1000);
        src.add_counts("crashes", Cohort::Canary, t, 0, 1000);
    }
    let started = tokio::time::Instant::now();
    let report = run(
        &src,
        analysis(),
        IntervalPolicy::new(4),
        0.0,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(report.verdict, Verdict::Rollback, "{:?}", report.reasons);
    assert_eq!(report.intervals.len(), 4);
    assert_eq!(started.elapsed(), Duration::from_secs(240));
    let report = run(
        &src,
        analysis(),
        IntervalPolicy::new(3),
        0.0,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(report.verdict, Verdict::Promote, "{:?}", report.reasons);
}

/// A/A runs: the canary's error rate equals the baseline's. Fixed-alpha
/// checking at every interval rolls back far more often than alpha; the
/// sequential mode stays under alpha however many intervals are checked.
#[test]
fn sequential_mode_keeps_false_rollbacks_under_alpha() {
    let cfg = r#"
alpha = 0.05
[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
"#;
    let analysis =
        Analysis::new(AnalysisConfig::from_toml_str(cfg).expect("config")).expect("valid");
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let (runs, intervals, per_interval, p) = (200u32, 20u32, 200u64, 0.05);
    let mut false_rollbacks = [0u32; 2];
    for _ in 0..runs {
        let draws: Vec<(u64, u64)> = (0..intervals)
            .map(|_| {
                let mut e = (0u64, 0u64);
                for _ in 0..per_interval {
                    e.0 += u64::from(rng.random::<f64>() < p);
                    e.1 += u64::from(rng.random::<f64>() < p);
                }
                e
            })
            .collect();
        for (slot, sequential) in [(0usize, false), (1, true)] {
            let policy = IntervalPolicy::new(intervals).sequential(sequential);
            let mut run = OverTime::new(analysis.clone(), policy);
            let (mut cb, mut cc, mut n) = (0u64, 0u64, 0u64);
            for &(b, c) in &draws {
                // fixed mode judges each interval; sequential the cumulative data
                let (eb, ec, t) = if sequential {
                    cb += b;
                    cc += c;
                    n += per_interval;
                    (cb, cc, n)
                } else {
                    (b, c, per_interval)
                };
                let mut s = SampleSet::default();
                s.insert("errors", MetricSamples::counts((eb, t), (ec, t)));
                if run.judge_interval(&s).expect("judged") != Verdict::Continue {
                    break;
                }
            }
            if run.finished() == Some(Verdict::Rollback) {
                false_rollbacks[slot] += 1;
            }
        }
    }
    let rate = |n: u32| f64::from(n) / f64::from(runs);
    eprintln!(
        "A/A false rollbacks over {intervals} intervals: fixed {} sequential {}",
        rate(false_rollbacks[0]),
        rate(false_rollbacks[1])
    );
    assert!(
        rate(false_rollbacks[0]) > 0.2,
        "fixed alpha: {}",
        rate(false_rollbacks[0])
    );
    assert!(
        rate(false_rollbacks[1]) <= 0.05,
        "sequential: {}",
        rate(false_rollbacks[1])
    );
}
