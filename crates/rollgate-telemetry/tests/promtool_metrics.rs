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
