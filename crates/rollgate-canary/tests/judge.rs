//! End-to-end judgements: the issue's minimal config, verdicts, bad input.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_canary::{
    Analysis, AnalysisConfig, CanaryError, MetricSamples, Outcome, SampleSet, Verdict,
};

const MINIMAL: &str = include_str!("fixtures/minimal.toml");

fn minimal() -> Analysis {
    Analysis::new(AnalysisConfig::from_toml_str(MINIMAL).expect("minimal config parses"))
        .expect("valid")
}

fn lognormal(rng: &mut ChaCha8Rng, n: usize, median: f64, sigma: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            // Box-Muller
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-300), rng.random());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            median * (sigma * z).exp()
        })
        .collect()
}

fn data(lat_b: Vec<f64>, lat_c: Vec<f64>, err_b: (u64, u64), err_c: (u64, u64)) -> SampleSet {
    let mut s = SampleSet::default();
    s.insert("latency_ms", MetricSamples::values(lat_b, lat_c));
    s.insert("errors", MetricSamples::counts(err_b, err_c));
    s
}

#[test]
fn minimal_config_promotes_a_healthy_canary() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let b = lognormal(&mut rng, 2000, 100.0, 0.3);
    let c = lognormal(&mut rng, 2000, 100.0, 0.3);
    let r = minimal()
        .judge(&data(b, c, (10, 10_000), (11, 10_000)))
        .expect("judges");
    assert_eq!(r.verdict, Verdict::Promote, "{}", r.to_table());
    assert_eq!(r.score, Some(100.0));
    assert_eq!(r.metrics.len(), 2);
    assert!(r.metrics.iter().all(|m| m.result == Outcome::Pass));
    assert!(r.metrics[0].p_value.is_some() && r.metrics[0].ci.is_some());
}

#[test]
fn minimal_config_rolls_back_on_p99_over_500() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let b = lognormal(&mut rng, 2000, 300.0, 0.3);
    let c = lognormal(&mut rng, 2000, 300.0, 0.3);
    let r = minimal()
        .judge(&data(b, c, (0, 10_000), (0, 10_000)))
        .expect("judges");
    // p99 of lognormal(300, 0.3) is about 600 > 500 in both; the canary fails the bound.
    assert_eq!(r.verdict, Verdict::Rollback, "{}", r.to_table());
    let lat = &r.metrics[0];
    assert!(lat.failed);
    assert!(
        lat.reason.contains("p99") && lat.reason.contains("500"),
        "{}",
        lat.reason
    );
    assert_eq!(r.score, Some(50.0));
}

#[test]
fn critical_error_regression_rolls_back_whatever_the_score() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let b = lognormal(&mut rng, 1000, 100.0, 0.3);
    let c = lognormal(&mut rng, 1000, 100.0, 0.3);
    // 2x error rate, still under the 1 % ceiling.
    let r = minimal()
        .judge(&data(b, c, (200, 100_000), (400, 100_000)))
        .expect("judges");
    assert_eq!(r.verdict, Verdict::Rollback, "{}", r.to_table());
    assert!(r.reasons[0].starts_with("critical"), "{:?}", r.reasons);
    assert!(r.metrics[1].reason.contains("errors"));
}

#[test]
fn too_few_samples_is_inconclusive_never_a_pass() {
    let r = minimal()
        .judge(&data(vec![100.0; 10], vec![100.0; 10], (0, 100), (0, 100)))
        .expect("judges");
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert_eq!(r.metrics[0].result, Outcome::NoData);
    assert!(r.metrics[0].reason.contains("min_samples 50"));
}

#[test]
fn empty_and_zero_trial_cohorts_are_inconclusive() {
    let r = minimal()
        .judge(&data(vec![], vec![], (0, 0), (0, 0)))
        .expect("judges");
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert_eq!(r.score, None);
    let one = minimal()
        .judge(&data(vec![1.0], vec![1.0], (0, 1), (0, 1)))
        .expect("judges");
    assert_eq!(one.verdict, Verdict::Inconclusive);
}

#[test]
fn sample_order_never_changes_the_report() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let b = lognormal(&mut rng, 500, 100.0, 0.3);
    let c = lognormal(&mut rng, 500, 103.0, 0.3);
    let r1 = minimal()
        .judge(&data(b.clone(), c.clone(), (3, 1000), (5, 1000)))
        .expect("judges");
    let (mut b2, mut c2) = (b, c);
    b2.reverse();
    c2.rotate_left(123);
    let r2 = minimal()
        .judge(&data(b2, c2, (3, 1000), (5, 1000)))
        .expect("judges");
    assert_eq!(r1, r2);
    assert_eq!(r1.to_json(), r2.to_json());
}

fn err_of(analysis: &Analysis, s: &SampleSet) -> String {
    match analysis.judge(s) {
        Err(e) => e.to_string(),
        Ok(r) => panic!("expected an error, got {}", r.to_table()),
    }
}

#[test]
fn bad_values_are_errors_naming_metric_cohort_and_index() {
    let a = minimal();
    let good = vec![100.0; 60];
    let mut nan = good.clone();
    nan[7] = f64::NAN;
    let e = err_of(&a, &data(good.clone(), nan, (0, 1), (0, 1)));
    assert!(
        e.contains("metrics.latency_ms.canary[7]") && e.contains("NaN"),
        "{e}"
    );
    let mut inf = good.clone();
    inf[3] = f64::INFINITY;
    let e = err_of(&a, &data(inf, good.clone(), (0, 1), (0, 1)));
    assert!(e.contains("baseline[3]") && e.contains("inf"), "{e}");
    let mut neg = good.clone();
    neg[0] = -5.0;
    let e = err_of(&a, &data(good.clone(), neg, (0, 1), (0, 1)));
    assert!(e.contains("negative value -5"), "{e}");
    let all_nan = vec![f64::NAN; 60];
    assert!(err_of(&a, &data(all_nan.clone(), all_nan, (0, 1), (0, 1))).contains("NaN"));
    let e = err_of(&a, &data(good.clone(), good.clone(), (5, 1), (0, 1)));
    assert!(e.contains("5 events out of 1 trials"), "{e}");
}

#[test]
fn unknown_and_missing_metrics_are_errors() {
    let a = minimal();
    let mut s = data(vec![1.0; 60], vec![1.0; 60], (0, 1), (0, 1));
    s.insert("latency_p99", MetricSamples::values(vec![1.0], vec![1.0]));
    let e = err_of(&a, &s);
    assert!(e.contains("\"latency_p99\" is not in the config"), "{e}");
    let mut s = SampleSet::default();
    s.insert(
        "latency_ms",
        MetricSamples::values(vec![1.0; 60], vec![1.0; 60]),
    );
    let e = err_of(&a, &s);
    assert!(e.contains("\"errors\" has no samples entry"), "{e}");
}

#[test]
fn mismatched_shapes_and_units_are_errors() {
    let a = minimal();
    let mut s = data(vec![1.0; 60], vec![1.0; 60], (0, 1), (0, 1));
    s.metrics.get_mut("errors").expect("errors").baseline =
        rollgate_canary::Samples::Values(vec![0.0]);
    assert!(err_of(&a, &s).contains("count metric needs"));

    let cfg = MINIMAL.replace("min_samples = 50 ", "unit = \"ms\"\nmin_samples = 50 ");
    let a = Analysis::new(AnalysisConfig::from_toml_str(&cfg).expect("parses")).expect("valid");
    let mut s = data(vec![1.0; 60], vec![1.0; 60], (0, 1), (0, 1));
    s.metrics.get_mut("latency_ms").expect("lat").unit = Some("s".into());
    let e = err_of(&a, &s);
    assert!(
        e.contains("is in \"s\" but the config expects \"ms\""),
        "{e}"
    );
}

#[test]
fn config_errors_name_the_key() {
    let e = |t: &str| match AnalysisConfig::from_toml_str(t) {
        Err(CanaryError::Config { at, why }) => format!("{at}: {why}"),
        other => panic!("expected config error, got {other:?}"),
    };
    assert!(e("alpha = 2.0").contains("alpha"));
    assert!(
        e("[[metrics]]\nname = \"x\"\nkind = \"latency\"\nbad = \"up\"")
            .contains("unknown variant")
    );
    assert!(e("[[metrics]]\nname = \"x\"\nkind = \"latency\"\nbad = \"increase\"\nthreshold = { p999_max = 1 }").contains("unknown field"));
    assert!(e("[score]\npass = 50\nmarginal = 80").contains("score.marginal"));
    let twice = "[[metrics]]\nname = \"x\"\nkind = \"latency\"\nbad = \"increase\"\n";
    assert!(e(&format!("{twice}{twice}")).contains("configured twice"));
}

#[test]
fn samples_json_errors_carry_position() {
    let e = SampleSet::from_json_str(
        "{\"metrics\": {\"a\": {\"baseline\": [1, NaN], \"canary\": []}}}",
    )
    .expect_err("NaN is not JSON");
    let msg = e.to_string();
    assert!(msg.contains("line 1") && msg.contains("NaN"), "{msg}");
    let e = SampleSet::from_json_str(
        "{\"metrics\": {\"a\": {\"baseline\": {\"events\": -1, \"trials\": 2}, \"canary\": []}}}",
    )
    .expect_err("negative count");
    assert!(e.to_string().contains("line 1"), "{e}");
    let e =
        SampleSet::from_json_str("{\"metrics\": {\"a\": {\"baseline\": [1e999], \"canary\": []}}}")
            .expect_err("infinity");
    assert!(e.to_string().contains("out of range"), "{e}");
}

#[test]
fn bimodal_regression_is_caught_by_the_distribution_check() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let b = lognormal(&mut rng, 3000, 100.0, 0.2);
    // 12 % of canary requests take a slow path at 2x; the median barely moves.
    let mut c = lognormal(&mut rng, 3000, 100.0, 0.2);
    for v in c.iter_mut().take(360) {
        *v *= 2.0;
    }
    let cfg = AnalysisConfig::from_toml_str(
        "[[metrics]]\nname = \"latency_ms\"\nkind = \"latency\"\nbad = \"increase\"\nstatistical = { min_effect_pct = 5.0 }\n",
    )
    .expect("parses");
    let a = Analysis::new(cfg).expect("valid");
    let mut s = SampleSet::default();
    s.insert("latency_ms", MetricSamples::values(b, c));
    let r = a.judge(&s).expect("judges");
    let checks = &r.metrics[0].checks;
    let mw = checks
        .iter()
        .find(|c| c.check == "mann-whitney.increase")
        .expect("mw ran");
    assert!(
        !mw.fails,
        "the location test alone misses it: {}",
        mw.reason
    );
    let ks = checks
        .iter()
        .find(|c| c.check == "distribution.up")
        .expect("ks ran");
    assert!(ks.fails, "{}", ks.reason);
    assert_eq!(r.verdict, Verdict::Rollback);
}

#[test]
fn mostly_zero_error_counts_use_the_exact_count_test() {
    let a = minimal();
    let lat = vec![100.0; 60];
    // 0 errors in the baseline, 14 in the canary out of 100k each: Kayenta's
    // ratio of means is undefined here; the conditional binomial test is
    // exact: at the +50 % boundary each error is the canary's with
    // probability 1.5 / 2.5, so p = 0.6^14.
    let r = a
        .judge(&data(lat.clone(), lat.clone(), (0, 100_000), (14, 100_000)))
        .expect("judges");
    assert_eq!(r.verdict, Verdict::Rollback, "{}", r.to_table());
    let p = r.metrics[1].p_value.expect("p");
    assert!((p - 0.6f64.powi(14)).abs() < 1e-12, "{p}");
    // 1 vs 2 errors is noise, not a regression.
    let r = a
        .judge(&data(lat.clone(), lat, (1, 100_000), (2, 100_000)))
        .expect("judges");
    assert_eq!(r.metrics[1].result, Outcome::Pass, "{}", r.to_table());
}

#[test]
fn min_events_makes_the_count_test_inconclusive() {
    let cfg = MINIMAL.replace("min_events = 0", "min_events = 20");
    let a = Analysis::new(AnalysisConfig::from_toml_str(&cfg).expect("parses")).expect("valid");
    let lat = vec![100.0; 60];
    let r = a
        .judge(&data(lat.clone(), lat, (1, 1000), (2, 1000)))
        .expect("judges");
    assert_eq!(r.verdict, Verdict::Inconclusive);
    assert!(r.metrics[1].reason.contains("fewer than min_events 20"));
}

#[test]
fn traffic_dip_and_slo_burn_fail() {
    let cfg = r#"
[[metrics]]
name = "requests"
kind = "throughput"
bad = "decrease"
traffic = { expected_share = 0.5, max_dip_pct = 20 }

[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
slo = { objective = 0.999, max_burn = 14.4 }
statistical = { enabled = false }
"#;
    let a = Analysis::new(AnalysisConfig::from_toml_str(cfg).expect("parses")).expect("valid");
    let s = SampleSet::from_json_str(
        r#"{"metrics": {
        "requests": {"baseline": {"events": 10000}, "canary": {"events": 6000}},
        "errors": {"baseline": {"events": 10, "trials": 10000},
                   "canary": {"events": 200, "trials": 6000, "recent": {"events": 40, "trials": 1000}}}
    }}"#,
    )
    .expect("parses");
    let r = a.judge(&s).expect("judges");
    assert_eq!(r.verdict, Verdict::Rollback, "{}", r.to_table());
    assert!(r.metrics[0].failed && r.metrics[0].reason.contains("6000 of 16000"));
    assert!(r.metrics[1].failed && r.metrics[1].reason.contains("burns"));
    // Healthy traffic and a burst that ended (recent window fine): pass.
    let s = SampleSet::from_json_str(
        r#"{"metrics": {
        "requests": {"baseline": {"events": 10000}, "canary": {"events": 9800}},
        "errors": {"baseline": {"events": 10, "trials": 10000},
                   "canary": {"events": 200, "trials": 6000, "recent": {"events": 0, "trials": 1000}}}
    }}"#,
    )
    .expect("parses");
    let r = a.judge(&s).expect("judges");
    assert_eq!(r.verdict, Verdict::Promote, "{}", r.to_table());
}

#[test]
fn huge_input_over_max_samples_is_a_clear_error() {
    let cfg = MINIMAL.replace("alpha = 0.01", "alpha = 0.01\nmax_samples = 1000");
    let a = Analysis::new(AnalysisConfig::from_toml_str(&cfg).expect("parses")).expect("valid");
    let e = err_of(&a, &data(vec![1.0; 1001], vec![1.0; 60], (0, 1), (0, 1)));
    assert!(e.contains("1001 samples exceed max_samples 1000"), "{e}");
}

#[test]
fn ten_million_samples_are_judged_without_panic() {
    // Threshold and tail checks only, so the debug-build test stays fast;
    // the full statistical path on large inputs runs in the benchmarks.
    let cfg = r#"
[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
threshold = { p99_max = 500.0 }
statistical = { enabled = false }
distribution = { enabled = false }
"#;
    let a = Analysis::new(AnalysisConfig::from_toml_str(cfg).expect("parses")).expect("valid");
    let n = 10_000_000usize;
    let b: Vec<f64> = (0..n).map(|i| (i % 1000) as f64 * 0.4).collect();
    let c: Vec<f64> = (0..n).map(|i| (i % 1000) as f64 * 0.6).collect();
    let mut s = SampleSet::default();
    s.insert("latency_ms", MetricSamples::values(b, c));
    let r = a.judge(&s).expect("judges");
    assert_eq!(r.verdict, Verdict::Rollback, "{}", r.to_table());
    assert_eq!(r.metrics[0].canary.n, n as u64);
}

mod order {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// A verdict never depends on sample order.
        #[test]
        fn report_is_invariant_under_permutation(seed in 0u64..1000, rot in 0usize..200, shift in 0.0f64..20.0) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let b = lognormal(&mut rng, 200, 100.0, 0.3);
            let c: Vec<f64> = lognormal(&mut rng, 200, 100.0, 0.3).iter().map(|v| v + shift).collect();
            let r1 = minimal().judge(&data(b.clone(), c.clone(), (3, 1000), (5, 1000))).expect("judges");
            let (mut b2, mut c2) = (b, c);
            b2.reverse();
            c2.rotate_left(rot);
            let r2 = minimal().judge(&data(b2, c2, (3, 1000), (5, 1000))).expect("judges");
            prop_assert_eq!(r1, r2);
        }
    }
}

#[test]
fn groups_weights_and_marginal_scores() {
    // Group "latency" weighs 3, "errors" 1; inside latency, p50 weighs 3 and p99 1.
    let cfg = r#"
[score]
pass = 90
marginal = 60
[groups]
latency = 3.0
errors = 1.0

[[metrics]]
name = "lat_a"
kind = "latency"
bad = "increase"
group = "latency"
weight = 3.0
threshold = { p99_max = 200.0 }

[[metrics]]
name = "lat_b"
kind = "latency"
bad = "increase"
group = "latency"
weight = 1.0
threshold = { p99_max = 200.0 }

[[metrics]]
name = "errs"
kind = "count"
bad = "increase"
group = "errors"
threshold = { ratio_max = 0.01 }
"#;
    let a = Analysis::new(AnalysisConfig::from_toml_str(cfg).expect("parses")).expect("valid");
    let ok = vec![100.0; 60];
    let slow = vec![300.0; 60];
    let run = |a_vals: &Vec<f64>, b_vals: &Vec<f64>, errs: u64| {
        let mut s = SampleSet::default();
        s.insert("lat_a", MetricSamples::values(ok.clone(), a_vals.clone()));
        s.insert("lat_b", MetricSamples::values(ok.clone(), b_vals.clone()));
        s.insert("errs", MetricSamples::counts((0, 1000), (errs, 1000)));
        a.judge(&s).expect("judges")
    };
    // lat_b fails: latency group 3/4 = 75, errors 100 -> (3*75 + 100) / 4 = 81.25: marginal.
    let r = run(&ok, &slow, 0);
    assert_eq!(r.score, Some(81.25));
    assert_eq!(r.verdict, Verdict::Inconclusive, "{}", r.to_table());
    assert!(r.reasons[0].contains("marginal"), "{:?}", r.reasons);
    // lat_a fails: latency 1/4 = 25 -> (75 + 100) / 4 = 43.75: rollback.
    let r = run(&slow, &ok, 0);
    assert_eq!(r.score, Some(43.75));
    assert_eq!(r.verdict, Verdict::Rollback);
    // errors fail: (300 + 0) / 4 = 75: marginal.
    let r = run(&ok, &ok, 50);
    assert_eq!(r.score, Some(75.0));
    assert_eq!(r.verdict, Verdict::Inconclusive);
}

mod fuzzish {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => 0.0f64..1000.0,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(-1.0),
            1 => Just(0.0),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Arbitrary (often invalid) samples never panic, and a promote
        /// always rests on at least min_samples valid values per cohort.
        #[test]
        fn bad_input_never_panics_or_passes(
            b in proptest::collection::vec(value(), 0..120),
            c in proptest::collection::vec(value(), 0..120),
            eb in 0u64..50, tb in 0u64..50, ec in 0u64..50, tc in 0u64..50,
        ) {
            let s = data(b.clone(), c.clone(), (eb, tb), (ec, tc));
            if let Ok(r) = minimal().judge(&s)
                && r.verdict == Verdict::Promote
            {
                prop_assert!(b.len() >= 50 && c.len() >= 50);
                prop_assert!(b.iter().chain(c.iter()).all(|v| v.is_finite() && *v >= 0.0));
                prop_assert!(eb <= tb && ec <= tc && tb > 0 && tc > 0);
            }
        }
    }
}

#[test]
fn p50_reuses_the_location_test_and_the_tail_tests_get_more_alpha() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let b = lognormal(&mut rng, 2000, 100.0, 0.3);
    let c = lognormal(&mut rng, 2000, 100.0, 0.3);
    let r = minimal()
        .judge(&data(b, c, (10, 10_000), (11, 10_000)))
        .expect("judges");
    let checks = &r.metrics[0].checks;
    let find = |name: &str| {
        checks
            .iter()
            .find(|c| c.check == name)
            .unwrap_or_else(|| panic!("{name} ran: {checks:?}"))
    };
    let (p50, mw) = (find("relative.p50_increase"), find("mann-whitney.increase"));
    assert_eq!(p50.p_value, mw.p_value);
    assert_eq!(p50.level, mw.level);
    assert!(p50.reason.contains("location test: mann-whitney.increase"));
    let level = |name: &str| find(name).level.expect("judged");
    // Nothing rejected: every test at its first-step level; the latency
    // metric (non-critical) shares 10 % of alpha 0.01 by weight 6:1:2:1
    // (p99 tail test, p95, Mann-Whitney, KS), the p50 check adding nothing.
    let (p99, p95, ks) = (
        level("relative.p99_increase"),
        level("relative.p95_increase"),
        level("distribution.up"),
    );
    let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
    assert!(close(p99, 0.001 * 6.0 / 10.0), "{p99}");
    assert!(close(p95, 0.001 / 10.0), "{p95}");
    assert!(close(level("mann-whitney.increase"), 0.001 * 2.0 / 10.0));
    assert!(close(ks, 0.001 / 10.0), "{ks}");
    assert!(
        find("relative.p99_increase").reason.contains("tail test:")
            && find("relative.p99_increase").reason.contains(", exact"),
        "{}",
        find("relative.p99_increase").reason
    );
    let count = r.metrics[1]
        .checks
        .iter()
        .find_map(|c| c.level)
        .expect("count test");
    assert!(close(count, 0.009), "{count}");
}
