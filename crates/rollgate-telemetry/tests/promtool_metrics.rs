//! The Prometheus text exposition is checked by the real `promtool`
//! (Debian package `prometheus`, installed by scripts/install-test-deps.sh).

use std::io::Write;
use std::process::{Command, Stdio};

use rollgate_telemetry::{MetricsConfig, MetricsRegistry};

fn promtool_check_metrics(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool must be installed (scripts/install-test-deps.sh)");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(text.as_bytes())
        .expect("write exposition to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), report)
}

#[test]
fn exposition_of_every_metric_kind_passes_promtool_check_metrics() {
    let config = MetricsConfig::builder()
        .constant_label("service", "checkout")
        .constant_label("version", "1.4.2")
        .constant_label("cohort", "canary")
        .max_series_per_metric(2)
        .build()
        .expect("valid config");
    let registry = MetricsRegistry::new(config);
    metrics::with_local_recorder(&registry.recorder(), || {
        metrics::describe_counter!("http_server_requests_total", "Requests served");
        metrics::describe_histogram!(
            "http_server_request_duration_seconds",
            metrics::Unit::Seconds,
            "Request duration"
        );
        for route in ["/a", "/b/{id}", "/c"] {
            metrics::counter!("http_server_requests_total", "route" => route, "status" => "200")
                .increment(7);
            metrics::histogram!("http_server_request_duration_seconds", "route" => route)
                .record(0.042);
        }
        metrics::gauge!("queue.depth", "queue" => "quote\"and\\slash\nnewline").set(-3.5);
        metrics::counter!("plain.events").increment(1);
    });
    let text = registry.render();
    assert!(text.contains("# TYPE http_server_request_duration_seconds histogram"));
    assert!(text.contains("rollgate_telemetry_cardinality_overflow_total{cohort=\"canary\",metric=\"http_server_requests_total\",service=\"checkout\",version=\"1.4.2\"} 1"));
    assert!(text.contains("plain_events_total{"));
    let (ok, report) = promtool_check_metrics(&text);
    assert!(
        ok,
        "promtool rejected the exposition:\n{report}\n---\n{text}"
    );
}

#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn le_and_quantile_misuse_and_reserved_labels_are_renamed_once_and_promtool_passes() {
    let logs = Capture::default();
    let t = rollgate_telemetry::init("checkout")
        .version("1.4.2")
        .log_filter_env(None)
        .log_writer(logs.clone())
        .build()
        .expect("valid config");
    tracing::dispatcher::with_default(t.dispatch(), || {
        metrics::with_local_recorder(&t.recorder(), || {
            for _ in 0..3 {
                metrics::counter!("jobs", "le" => "0.5").increment(1);
                metrics::gauge!("lag_seconds", "quantile" => "0.99").set(2.0);
                metrics::histogram!("size_bytes", "le" => "x", "quantile" => "y").record(3.0);
                metrics::counter!("logins", "service" => "evil", "version" => "0").increment(1);
            }
        })
    });
    let text = t.metrics().render();
    let (ok, report) = promtool_check_metrics(&text);
    assert!(
        ok,
        "promtool rejected the exposition:\n{report}\n---\n{text}"
    );
    assert!(
        text.contains("jobs_total{exported_le=\"0.5\",service=\"checkout\",version=\"1.4.2\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("lag_seconds{exported_quantile=\"0.99\","),
        "{text}"
    );
    assert!(text.contains("size_bytes_bucket{exported_le=\"x\",exported_quantile=\"y\",service=\"checkout\",version=\"1.4.2\",le=\"+Inf\"} 3"), "{text}");
    // The constant labels win; the user's values stay visible under another name.
    assert!(text.contains("logins_total{exported_service=\"evil\",exported_version=\"0\",service=\"checkout\",version=\"1.4.2\"} 3"), "{text}");

    let captured = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    let warns: Vec<serde_json::Value> = captured
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .filter(|v: &serde_json::Value| v["level"] == "WARN")
        .collect();
    let mut renamed: Vec<(String, String)> = warns
        .iter()
        .map(|w| {
            (
                w["metric"].as_str().unwrap_or_default().to_owned(),
                w["renamed_to"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    renamed.sort();
    // Once per metric and label, although each was recorded three times.
    assert_eq!(
        renamed,
        [
            ("jobs_total", "exported_le"),
            ("lag_seconds", "exported_quantile"),
            ("logins_total", "exported_service"),
            ("logins_total", "exported_version"),
            ("size_bytes", "exported_le"),
            ("size_bytes", "exported_quantile"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}
