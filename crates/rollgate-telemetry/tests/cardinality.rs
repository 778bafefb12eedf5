//! The cardinality guard keeps memory bounded under a label explosion.

use rollgate_telemetry::{MetricsConfig, MetricsRegistry, OVERFLOW_LABEL, OVERFLOW_METRIC};

#[test]
fn a_million_distinct_label_values_stay_bounded_and_the_overflow_is_counted() {
    const DISTINCT: u64 = 1_000_000;
    const CAP: usize = 500;
    let config = MetricsConfig::builder()
        .max_series_per_metric(CAP)
        .build()
        .expect("valid config");
    let registry = MetricsRegistry::new(config);
    metrics::with_local_recorder(&registry.recorder(), || {
        for i in 0..DISTINCT {
            metrics::counter!("requests", "user_id" => i.to_string()).increment(1);
            if i % 1000 == 0 {
                metrics::histogram!("latency_seconds", "user_id" => i.to_string()).record(0.01);
            }
        }
    });
    // counters: CAP kept + 1 overflow; histograms: 1000 distinct -> CAP + 1 overflow.
    assert_eq!(registry.series_count(), 2 * (CAP + 1));
    let snap = registry.snapshot();
    let rejected = DISTINCT - CAP as u64;
    assert_eq!(
        snap.counter(OVERFLOW_METRIC, &[("metric", "requests_total")]),
        Some(rejected)
    );
    assert_eq!(
        snap.counter("requests_total", &[(OVERFLOW_LABEL, "true")]),
        Some(rejected)
    );
    // Nothing is lost in aggregate: all increments are still counted.
    assert_eq!(snap.counter_sum("requests_total", &[]), DISTINCT);
    assert_eq!(
        snap.histogram("latency_seconds", &[]).map(|h| h.count()),
        Some(1000)
    );
    // The exposition stays small: bounded by the cap, not by the label values seen.
    assert!(registry.render().len() < 200 * CAP * 25);
}
