//! Histogram samples end to end: the SAMPLES.json shape, validation errors
//! naming metric and cohort, and verdicts on bucketed data.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_canary::{
    Analysis, AnalysisConfig, CanaryError, Histogram, MetricSamples, Outcome, SampleSet, Samples,
    Verdict,
};

const MINIMAL: &str = include_str!("fixtures/minimal.toml");

fn minimal() -> Analysis {
    Analysis::new(AnalysisConfig::from_toml_str(MINIMAL).expect("minimal config parses"))
        .expect("valid")
}

fn lognormal(rng: &mut ChaCha8Rng, n: usize, median: f64, sigma: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            median * (sigma * z).exp()
        })
        .collect()
}

/// Fine exponential bounds (ratio 1.02) from 1 to ~10^4, then +Inf.
fn fine_bounds() -> Vec<f64> {
    let mut le: Vec<f64> = (0..470).map(|i| 1.02f64.powi(i)).collect();
    le.push(f64::INFINITY);
    le
}

/// The cumulative histogram of `v` on `le` (observation `x` counts in the
/// first bucket with `x <= le`), as a Prometheus client would record it.
fn bucket(v: &[f64], le: &[f64]) -> Histogram {
    let mut per = vec![0u64; le.len()];
    for &x in v {
        per[le.partition_point(|&b| b < x)] += 1;
    }
    let cum: Vec<u64> = per
        .iter()
        .scan(0, |s, &c| {
            *s += c;
            Some(*s)
        })
        .collect();
    Histogram::new(le.to_vec(), cum).expect("valid histogram")
}

fn set(lat: MetricSamples, errors: (u64, u64)) -> SampleSet {
    let mut s = SampleSet::default();
    s.insert("latency_ms", lat);
    s.insert(
        "errors",
        MetricSamples::counts((errors.0, 100_000), (errors.1, 100_000)),
    );
    s
}

fn json_with_canary_histogram(histogram: &str) -> String {
    format!(
        r#"{{"metrics": {{
  "latency_ms": {{"baseline": {{"histogram": {{"le": [100, 200, 400, "+Inf"], "counts": [50, 90, 99, 100]}}}},
                 "canary": {{"histogram": {histogram}}}}},
  "errors": {{"baseline": {{"events": 1, "trials": 1000}}, "canary": {{"events": 1, "trials": 1000}}}}
}}}}"#
    )
}

#[test]
fn samples_json_reads_cumulative_buckets_with_inf_as_a_string() {
    let s = SampleSet::from_json_str(&json_with_canary_histogram(
        r#"{"le": ["100", 200, 400.0, "+Inf"], "counts": [40, 85, 98, 100], "sum": 15000}"#,
    ))
    .expect("parses");
    let Samples::Histogram(h) = &s.metrics["latency_ms"].canary else {
        panic!("not a histogram");
    };
    assert_eq!(h.upper_bounds(), &[100.0, 200.0, 400.0, f64::INFINITY]);
    assert_eq!(h.cumulative_counts(), &[40, 85, 98, 100]);
    assert_eq!(h.mean(), Some(150.0));
    // Round trip through the serializer.
    let again =
        SampleSet::from_json_str(&serde_json::to_string(&s).expect("json")).expect("parses");
    assert_eq!(again, s);
    let r = minimal().judge(&s).expect("judges");
    assert_eq!(r.metrics[0].canary.n, 100);
    assert_eq!(r.metrics[0].canary.p50, Some(100.0 + 100.0 * 10.0 / 45.0));
}

#[test]
fn malformed_histograms_are_errors_naming_metric_and_cohort() {
    let cases = [
        (
            r#"{"le": [100, 200, "+Inf"], "counts": [5, -1, 7]}"#,
            "data metrics.latency_ms.canary.histogram.counts[1]: negative count -1",
        ),
        (
            r#"{"le": [100, 200, "+Inf"], "counts": [5, 4, 7]}"#,
            "data metrics.latency_ms.canary.histogram.counts[1]: cumulative count 4 is below the previous 5",
        ),
        (
            r#"{"le": [200, 100, "+Inf"], "counts": [1, 2, 3]}"#,
            "data metrics.latency_ms.canary.histogram.le[1]: bound 100 is not above the previous bound 200",
        ),
        (
            r#"{"le": [100, 200, 300], "counts": [1, 2, 3]}"#,
            "data metrics.latency_ms.canary.histogram.le: the last bound is 300, not +Inf",
        ),
        (
            r#"{"le": [100, "NaN", "+Inf"], "counts": [1, 2, 3]}"#,
            "data metrics.latency_ms.canary.histogram.le[1]: NaN is not a bucket bound",
        ),
        (
            r#"{"le": [100, "+Inf"], "counts": [1, 18446744073709551616]}"#,
            "data metrics.latency_ms.canary.histogram.counts[1]: count 18446744073709552000 overflows",
        ),
        (
            r#"{"le": [100, "+Inf"], "counts": [1, 1099511627777]}"#,
            "data metrics.latency_ms.canary.histogram.counts[1]: count 1099511627777 overflows",
        ),
        (
            r#"{"le": [100, "+Inf"], "counts": [1, 2.5]}"#,
            "data metrics.latency_ms.canary.histogram.counts[1]: 2.5 is not a whole count",
        ),
        (
            r#"{"le": [100, 200, "+Inf"], "counts": [1, 2]}"#,
            "data metrics.latency_ms.canary.histogram: 3 bounds (le) but 2 counts",
        ),
    ];
    for (h, want) in cases {
        let e = SampleSet::from_json_str(&json_with_canary_histogram(h)).expect_err(want);
        let msg = e.to_string();
        assert!(msg.starts_with(want), "{msg}\n  wanted {want}");
        assert!(msg.contains("SAMPLES.json line "), "{msg}");
        assert!(matches!(e, CanaryError::Data { .. }));
    }
    // A bound that is not a number at all is a JSON-shape error with position.
    let e = SampleSet::from_json_str(&json_with_canary_histogram(
        r#"{"le": [100, "fast", "+Inf"], "counts": [1, 2, 3]}"#,
    ))
    .expect_err("bad bound");
    assert!(e.to_string().contains("bucket bound \"fast\""), "{e}");
    // Counts and a histogram in one cohort is ambiguous.
    let e = SampleSet::from_json_str(&json_with_canary_histogram(
        r#"{"le": [100, "+Inf"], "counts": [1, 2]}, "events": 3"#,
    ))
    .expect_err("both");
    assert!(
        e.to_string().contains("either counts or a histogram"),
        "{e}"
    );
}

#[test]
fn histograms_of_a_healthy_canary_promote_and_a_slow_one_rolls_back() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let le = fine_bounds();
    let b = lognormal(&mut rng, 5000, 100.0, 0.3);
    let c = lognormal(&mut rng, 5000, 100.0, 0.3);
    let slow: Vec<f64> = lognormal(&mut rng, 5000, 100.0, 0.3)
        .into_iter()
        .map(|v| v * 1.2)
        .collect();
    let ok = set(
        MetricSamples::histograms(bucket(&b, &le), bucket(&c, &le)),
        (100, 100),
    );
    let r = minimal().judge(&ok).expect("judges");
    assert_eq!(r.verdict, Verdict::Promote, "{}", r.to_table());
    assert!(r.metrics[0].p_value.is_some() && r.metrics[0].ci.is_some());
    let bad = set(
        MetricSamples::histograms(bucket(&b, &le), bucket(&slow, &le)),
        (100, 100),
    );
    let r = minimal().judge(&bad).expect("judges");
    assert_eq!(r.verdict, Verdict::Rollback, "{}", r.to_table());
    let lat = &r.metrics[0];
    assert!(
        lat.failed && lat.result == Outcome::High,
        "{}",
        r.to_table()
    );
    let shift = lat.shift.expect("shift");
    assert!((15.0..25.0).contains(&shift), "shift {shift}");
}

#[test]
fn histogram_verdicts_match_the_raw_samples_they_were_bucketed_from() {
    let le = fine_bounds();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let mut agree = 0;
    let trials = 60;
    for t in 0..trials {
        let scale = [1.0, 1.0, 1.02, 1.15, 1.3][t % 5];
        let b = lognormal(&mut rng, 2000, 120.0, 0.4);
        let c: Vec<f64> = lognormal(&mut rng, 2000, 120.0, 0.4)
            .into_iter()
            .map(|v| v * scale)
            .collect();
        let raw = minimal()
            .judge(&set(MetricSamples::values(b.clone(), c.clone()), (5, 5)))
            .expect("raw");
        let hist = minimal()
            .judge(&set(
                MetricSamples::histograms(bucket(&b, &le), bucket(&c, &le)),
                (5, 5),
            ))
            .expect("hist");
        if raw.verdict == hist.verdict {
            agree += 1;
        } else {
            eprintln!(
                "trial {t} scale {scale}: raw {:?} hist {:?}\n{}\n{}",
                raw.verdict,
                hist.verdict,
                raw.to_table(),
                hist.to_table()
            );
        }
    }
    assert!(agree * 100 >= trials * 95, "{agree} of {trials} agree");
}

#[test]
fn different_bounds_are_merged_to_common_bounds_or_refused() {
    let a = Histogram::new(
        vec![50.0, 100.0, 150.0, 200.0, 400.0, f64::INFINITY],
        vec![10, 50, 70, 90, 99, 100],
    )
    .expect("valid");
    let b = Histogram::new(
        vec![100.0, 200.0, 300.0, f64::INFINITY],
        vec![52, 91, 95, 100],
    )
    .expect("valid");
    let r = minimal()
        .judge(&set(MetricSamples::histograms(a.clone(), b), (1, 1)))
        .expect("merged");
    // On the common bounds 100, 200, +Inf the baseline median is 100.
    assert_eq!(r.metrics[0].baseline.p50, Some(100.0));
    let disjoint = Histogram::new(vec![75.0, f64::INFINITY], vec![60, 100]).expect("valid");
    let e = minimal()
        .judge(&set(MetricSamples::histograms(a.clone(), disjoint), (1, 1)))
        .expect_err("refused");
    assert!(
        e.to_string()
            .starts_with("data metrics.latency_ms: the baseline's bucket bounds (50, 100, 150, 200, 400, +Inf) and the canary's (75, +Inf) share no finite bound"),
        "{e}"
    );
    // A histogram against raw values is a shape error naming the metric.
    let mixed = MetricSamples {
        baseline: Samples::Histogram(a),
        canary: Samples::Values(vec![1.0; 100]),
        unit: None,
    };
    let e = minimal().judge(&set(mixed, (1, 1))).expect_err("mixed");
    assert!(
        e.to_string()
            .starts_with("data metrics.latency_ms: a histogram in one cohort"),
        "{e}"
    );
}

#[test]
fn min_samples_counts_observations_and_unknown_means_are_no_data() {
    let le = vec![100.0, 200.0, f64::INFINITY];
    let few = Histogram::new(le.clone(), vec![20, 40, 49]).expect("valid");
    let r = minimal()
        .judge(&set(MetricSamples::histograms(few.clone(), few), (1, 1)))
        .expect("judged");
    assert_eq!(r.verdict, Verdict::Inconclusive, "{}", r.to_table());
    assert!(
        r.metrics[0]
            .reason
            .contains("49 baseline and 49 canary observations")
    );

    let cfg = MINIMAL.replace(
        "threshold = { p99_max = 500.0 }",
        "threshold = { mean_max = 150.0 }",
    );
    let analysis = Analysis::new(AnalysisConfig::from_toml_str(&cfg).expect("cfg")).expect("ok");
    let h = Histogram::new(le, vec![500, 900, 1000]).expect("valid");
    let r = analysis
        .judge(&set(
            MetricSamples::histograms(h.clone(), h.clone()),
            (1, 1),
        ))
        .expect("judged");
    assert_eq!(r.verdict, Verdict::Inconclusive, "{}", r.to_table());
    let mean_check = r.metrics[0]
        .checks
        .iter()
        .find(|c| c.check == "threshold.mean_max")
        .expect("mean check");
    assert_eq!(mean_check.outcome, Outcome::NoData);
    let with_sum = h.clone().with_sum(1000.0 * 160.0).expect("sum");
    let r = analysis
        .judge(&set(MetricSamples::histograms(h, with_sum), (1, 1)))
        .expect("judged");
    assert_eq!(r.verdict, Verdict::Rollback, "{}", r.to_table());
}

#[test]
fn a_histogram_for_a_count_metric_is_refused() {
    let h = Histogram::new(vec![1.0, f64::INFINITY], vec![1, 2]).expect("valid");
    let mut s = SampleSet::default();
    s.insert(
        "latency_ms",
        MetricSamples::values(vec![1.0; 60], vec![1.0; 60]),
    );
    s.insert("errors", MetricSamples::histograms(h.clone(), h));
    let e = minimal().judge(&s).expect_err("count");
    assert!(
        e.to_string()
            .starts_with("data metrics.errors: a count metric needs"),
        "{e}"
    );
}
