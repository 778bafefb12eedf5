//! A real Prometheus (Debian package, started on loopback by
//! scripts/prometheus.sh) scrapes the example service's `/metrics` and
//! answers `histogram_quantile` with the expected values.

use rollgate_telemetry::{MetricsServer, init};

mod support;
use support::Prometheus;

#[path = "../examples/red_service.rs"]
#[allow(dead_code, unreachable_pub)]
mod red_service;

#[test]
fn prometheus_scrapes_the_example_service_and_computes_its_quantiles() {
    let t = init("red-example")
        .version("0.1.0")
        .cohort("canary")
        .log_writer(std::io::sink())
        .build()
        .expect("valid config");
    // 100 requests on tokio's paused clock: exactly 80 at 20 ms, 20 at 300 ms.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&t.recorder(), || {
        let _d = tracing::dispatcher::set_default(t.dispatch());
        rt.block_on(red_service::drive(100));
    });
    let server = MetricsServer::start("127.0.0.1:0".parse().expect("addr"), t.metrics().clone())
        .expect("metrics listener");
    let prom = Prometheus::start(&server.local_addr().to_string());

    let bucket = "http_server_request_duration_seconds_bucket{service=\"red-example\",cohort=\"canary\",route=\"/api/orders/{id}\"}";
    let p90 = prom.scalar_eventually(&format!("histogram_quantile(0.9, sum by (le) ({bucket}))"));
    let p50 = prom.scalar_eventually(&format!("histogram_quantile(0.5, sum by (le) ({bucket}))"));
    // 20 ms falls in (0.01, 0.025], 300 ms in (0.25, 0.3].
    assert!(p90 > 0.25 && p90 <= 0.3, "p90 {p90}");
    assert!(p50 > 0.01 && p50 <= 0.025, "p50 {p50}");
    // The in-process read gives the same answer as Prometheus.
    let snap = t.metrics().snapshot();
    let h = snap
        .histogram(
            "http_server_request_duration_seconds",
            &[("route", "/api/orders/{id}")],
        )
        .expect("histogram in process");
    assert!((h.quantile(0.9).unwrap_or(f64::NAN) - p90).abs() < 1e-9);
    assert!((h.quantile(0.5).unwrap_or(f64::NAN) - p50).abs() < 1e-9);
    let requests =
        prom.scalar_eventually("sum(http_server_requests_total{service=\"red-example\"})");
    assert_eq!(requests, 100.0);
    let errors = prom.scalar_eventually("sum(http_server_errors_total{service=\"red-example\"})");
    assert_eq!(errors, 2.0);
    server.stop();
}
