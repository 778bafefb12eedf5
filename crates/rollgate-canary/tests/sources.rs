//! In-memory and own-recorder sources feeding a judgement.

use std::sync::Arc;
use std::time::Duration;

use rollgate_canary::recorder::CanaryRecorder;
use rollgate_canary::source::{InMemorySource, collect};
use rollgate_canary::{
    Analysis, AnalysisConfig, Cohort, MetricKind, MetricQuery, MetricSource, Samples, Verdict,
    Window,
};

const CFG: &str = r#"
[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
relative = { max_increase_pct = 5.0 }

[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
critical = true
threshold = { ratio_max = 0.05 }
"#;

#[tokio::test]
async fn in_memory_source_filters_by_window_and_feeds_the_judge() {
    let src = Arc::new(InMemorySource::new());
    for i in 0..200 {
        let t = f64::from(i) * 0.1;
        src.push_value("latency_ms", Cohort::Baseline, t, 100.0 + f64::from(i % 13));
        src.push_value(
            "latency_ms",
            Cohort::Canary,
            t,
            100.0 + f64::from((i * 7) % 13),
        );
    }
    src.add_counts("errors", Cohort::Baseline, 1.0, 2, 1000);
    src.add_counts("errors", Cohort::Canary, 1.0, 3, 1000);
    src.add_counts("errors", Cohort::Canary, 50.0, 900, 1000); // outside the window
    let dynsrc: Arc<dyn MetricSource> = src.clone();
    let cfg = AnalysisConfig::from_toml_str(CFG).expect("config");
    let w = Window::new(0.0, 20.0).expect("window");
    let data = collect(dynsrc.as_ref(), &cfg, w).await.expect("collect");
    let report = Analysis::new(cfg.clone())
        .expect("valid")
        .judge(&data)
        .expect("judged");
    assert_eq!(report.verdict, Verdict::Promote, "{}", report.to_table());
    assert_eq!(report.metrics[0].canary.n, 200);

    let wide = Window::new(0.0, 100.0).expect("window");
    let data = collect(dynsrc.as_ref(), &cfg, wide).await.expect("collect");
    let report = Analysis::new(cfg)
        .expect("valid")
        .judge(&data)
        .expect("judged");
    assert_eq!(report.verdict, Verdict::Rollback, "{}", report.to_table());
    assert!(Window::new(5.0, 1.0).is_err());
}

#[tokio::test(start_paused = true)]
async fn own_recorder_reads_back_per_cohort_and_window() {
    let rec = CanaryRecorder::new(100_000);
    let record = |base: f64, slow: f64| {
        metrics::with_local_recorder(&rec, || {
            for i in 0..100 {
                let j = f64::from(i % 10);
                metrics::histogram!("latency_ms", "cohort" => "baseline").record(base + j);
                metrics::histogram!("latency_ms", "cohort" => "canary").record(slow + j);
                metrics::counter!("errors_trials", "cohort" => "baseline").increment(1);
                metrics::counter!("errors_trials", "cohort" => "canary").increment(1);
            }
            metrics::counter!("errors", "cohort" => "canary").increment(2);
            metrics::histogram!("latency_ms", "cohort" => "other").record(1e9);
            metrics::histogram!("latency_ms").record(1e9);
        })
    };
    record(100.0, 100.0);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let t1 = rec.now_secs();
    record(100.0, 150.0);
    let src = rec.source();
    let cfg = AnalysisConfig::from_toml_str(CFG).expect("config");
    let analysis = Analysis::new(cfg.clone()).expect("valid");

    let first = collect(&src, &cfg, Window::new(0.0, t1).expect("w"))
        .await
        .expect("collect");
    let r = analysis.judge(&first).expect("judged");
    assert_eq!(r.verdict, Verdict::Promote, "{}", r.to_table());
    assert_eq!(r.metrics[0].baseline.n, 100);

    let second = collect(&src, &cfg, Window::new(t1, t1 + 1.0).expect("w"))
        .await
        .expect("collect");
    let r = analysis.judge(&second).expect("judged");
    assert_eq!(r.verdict, Verdict::Rollback, "{}", r.to_table());

    let q = MetricQuery {
        metric: "errors".into(),
        kind: MetricKind::Count,
        cohort: Cohort::Canary,
        window: Window::new(0.0, t1 + 1.0).expect("w"),
    };
    let Samples::Counts(c) = src.samples(&q).await.expect("counts") else {
        panic!("counts expected")
    };
    assert_eq!((c.events, c.trials), (4, 200));
}

#[test]
fn recorder_memory_is_bounded() {
    let rec = CanaryRecorder::new(10);
    metrics::with_local_recorder(&rec, || {
        for i in 0..1000 {
            metrics::histogram!("x", "cohort" => "canary").record(f64::from(i));
        }
    });
    let v = rec.values("x", Cohort::Canary);
    assert_eq!(v.len(), 10);
    assert_eq!(v[0], 990.0);
}
