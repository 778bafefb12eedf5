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

#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    }
}

#[test]
fn the_first_overflow_of_each_metric_logs_one_warn_naming_metric_limit_and_the_fix() {
    let logs = Capture::default();
    let t = rollgate_telemetry::init("svc")
        .log_filter_env(None)
        .log_writer(logs.clone())
        .max_series_per_metric(3)
        .build()
        .expect("valid config");
    tracing::dispatcher::with_default(t.dispatch(), || {
        metrics::with_local_recorder(&t.recorder(), || {
            for i in 0..10_000 {
                metrics::counter!("requests", "user_id" => i.to_string()).increment(1);
                if i < 5 {
                    metrics::gauge!("sessions", "user_id" => i.to_string()).set(1.0);
                }
            }
        })
    });
    let warns: Vec<_> = logs
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .collect();
    assert_eq!(warns.len(), 2, "{warns:?}");
    assert_eq!(warns[0]["metric"], "requests_total");
    assert_eq!(warns[0]["limit"], 3);
    let message = warns[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("requests_total") && message.contains("max_series_per_metric"),
        "{message}"
    );
    assert_eq!(warns[1]["metric"], "sessions");
    // The WARN adds to the existing counter; it does not replace it.
    let snap = t.metrics().snapshot();
    assert_eq!(
        snap.counter(OVERFLOW_METRIC, &[("metric", "requests_total")]),
        Some(10_000 - 3)
    );
    assert_eq!(snap.counter_sum("requests_total", &[]), 10_000);
}

#[tokio::test(start_paused = true)]
async fn idle_series_expire_on_tokio_time_and_free_their_place_under_the_cap() {
    use std::time::Duration;
    let registry = MetricsRegistry::new(
        MetricsConfig::builder()
            .max_series_per_metric(3)
            .series_idle_timeout(Some(Duration::from_secs(600)))
            .build()
            .expect("valid config"),
    );
    let rec = registry.recorder();
    let hit = |user: &str| {
        metrics::with_local_recorder(&rec, || {
            metrics::counter!("requests", "user" => user.to_owned()).increment(1);
        })
    };
    let users = |r: &MetricsRegistry| -> Vec<String> {
        let snap = r.snapshot();
        snap.family("requests_total")
            .map(|f| {
                f.series
                    .iter()
                    .map(|s| {
                        s.labels
                            .get("user")
                            .or(s.labels.get(OVERFLOW_LABEL))
                            .cloned()
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // A handle kept in a struct, never recorded to again after the start.
    let held = metrics::with_local_recorder(&rec, || metrics::counter!("held_jobs"));
    held.increment(1);
    for u in ["a", "b", "c", "d"] {
        hit(u); // d is over the cap
    }
    assert_eq!(users(&registry), ["a", "b", "c", "true"]);

    tokio::time::advance(Duration::from_secs(300)).await;
    hit("c");
    assert_eq!(users(&registry), ["a", "b", "c", "true"]);

    // 11 minutes: a and b unchanged for 10, c changed 6 minutes ago.
    tokio::time::advance(Duration::from_secs(360)).await;
    assert_eq!(users(&registry), ["c", "true"]);
    // Their places are free again: e and f are stored, not overflowed.
    hit("e");
    hit("f");
    assert_eq!(users(&registry), ["c", "e", "f", "true"]);
    let snap = registry.snapshot();
    assert_eq!(
        snap.counter(OVERFLOW_METRIC, &[("metric", "requests_total")]),
        Some(1),
        "what overflowed before stays counted"
    );
    assert_eq!(
        snap.counter("requests_total", &[(OVERFLOW_LABEL, "true")]),
        Some(1)
    );
    // A held handle is never dropped: a later update would be lost.
    assert_eq!(snap.counter("held_jobs_total", &[]), Some(1));
    tokio::time::advance(Duration::from_secs(3600)).await;
    // c is dropped; e and f changed after the last check, which this one
    // only now sees: they count as active from now (never dropped early).
    assert_eq!(registry.expire_idle(), 1);
    tokio::time::advance(Duration::from_secs(600)).await;
    assert_eq!(registry.expire_idle(), 2);
    assert_eq!(users(&registry), ["true"]);
    held.increment(1);
    assert_eq!(registry.snapshot().counter("held_jobs_total", &[]), Some(2));
    // A dropped series comes back from zero when recorded again.
    hit("a");
    assert_eq!(
        registry
            .snapshot()
            .counter("requests_total", &[("user", "a")]),
        Some(1)
    );
}

#[tokio::test(start_paused = true)]
async fn without_an_idle_timeout_series_stay_and_a_zero_timeout_is_refused() {
    use std::time::Duration;
    let registry = MetricsRegistry::new(
        MetricsConfig::builder()
            .series_idle_timeout(None)
            .build()
            .expect("valid config"),
    );
    metrics::with_local_recorder(&registry.recorder(), || {
        metrics::counter!("requests", "user" => "a").increment(1);
    });
    tokio::time::advance(Duration::from_secs(86_400)).await;
    assert_eq!(registry.expire_idle(), 0);
    assert_eq!(registry.series_count(), 1);
    let e = MetricsConfig::builder()
        .series_idle_timeout(Some(Duration::ZERO))
        .build()
        .expect_err("zero refused");
    assert!(e.to_string().contains("series_idle_timeout"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn without_any_read_a_metric_at_its_cap_still_frees_idle_places() {
    use std::time::Duration;
    let registry = MetricsRegistry::new(
        MetricsConfig::builder()
            .max_series_per_metric(2)
            .series_idle_timeout(Some(Duration::from_secs(600)))
            .build()
            .expect("valid config"),
    );
    let hit = |user: &str| {
        metrics::with_local_recorder(&registry.recorder(), || {
            metrics::counter!("requests", "user" => user.to_owned()).increment(1);
        })
    };
    hit("a");
    hit("b");
    // Nothing reads the registry; only registrations over the cap check.
    tokio::time::advance(Duration::from_secs(660)).await;
    hit("c"); // the check sees a and b changed since they were made: kept
    tokio::time::advance(Duration::from_secs(660)).await;
    hit("d"); // a and b unchanged for 11 minutes: dropped, d stored
    hit("e");
    let snap = registry.snapshot();
    let users: Vec<&str> = snap
        .family("requests_total")
        .map(|f| {
            f.series
                .iter()
                .filter_map(|s| s.labels.get("user").map(String::as_str))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(users, ["d", "e"]);
    assert_eq!(
        snap.counter(OVERFLOW_METRIC, &[("metric", "requests_total")]),
        Some(1),
        "only c overflowed"
    );
    // d, e and the overflow series; a and b left with their series.
    assert_eq!(snap.counter_sum("requests_total", &[]), 3);
}
