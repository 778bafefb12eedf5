//! The axum example, installed the one-call way, under live traffic: a real
//! Prometheus (scripts/prometheus.sh) scrapes its own `/metrics` route, and
//! every RED query of the generated Grafana dashboard returns data for it.
//! The scrapes themselves (and health checks) leave no series and no log line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rollgate_telemetry::{AssetOptions, init};
use serde_json::Value;

#[path = "../examples/axum_service.rs"]
#[allow(dead_code, unreachable_pub)]
mod axum_service;
mod support;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The dashboard's RED queries: (panel title, expr) of every target that
/// reads the HTTP server metrics.
fn red_queries() -> Vec<(String, String)> {
    let dashboard = AssetOptions::default()
        .grafana_dashboard()
        .expect("dashboard generated");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            if expr.contains("http_server_") {
                out.push((
                    panel["title"].as_str().unwrap_or_default().to_owned(),
                    expr.to_owned(),
                ));
            }
        }
    }
    out
}

#[test]
fn prometheus_scrapes_the_axum_example_and_every_red_query_of_the_dashboard_has_data() {
    let logs = Capture::default();
    let guard = init(axum_service::SERVICE)
        .version("0.1.0")
        .cohort("canary")
        .log_filter_env(None)
        .log_writer(logs.clone())
        .install()
        .expect("first install in this test binary");
    let metrics = guard.metrics().clone();

    // The service and a client sending orders, on their own thread.
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let server = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || -> anyhow::Result<u64> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let addr = axum_service::spawn(metrics, "127.0.0.1:0".parse()?).await?;
                tx.send(addr)?;
                let mut sent = 0;
                while !stop.load(Ordering::Relaxed) {
                    axum_service::drive(addr, sent, 10).await?;
                    sent += 10;
                }
                Ok(sent)
            })
        })
    };
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the service starts");
    let prom = support::Prometheus::start(&addr.to_string());

    let queries = red_queries();
    // Request rate, error ratio, p50/p95/p99, rate by route.
    assert_eq!(queries.len(), 6, "{queries:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    for (title, expr) in &queries {
        // Grafana's variables, as a user picking this service would set them.
        let promql = expr
            .replace("$service", axum_service::SERVICE)
            .replace("$cohort", "canary")
            .replace("$__rate_interval", "15s");
        loop {
            let result = prom.query(&promql);
            let values: Vec<f64> = result
                .iter()
                .filter_map(|r| r["value"][1].as_str()?.parse().ok())
                .collect();
            if !values.is_empty()
                && values.len() == result.len()
                && values.iter().all(|v| v.is_finite() && *v > 0.0)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "panel {title:?}: no data for {promql}: {result:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // The route label is axum's template; 200s and 500s both present.
    let by_route = prom.query(&format!(
        "sum by (route, status) (http_server_requests_total{{service=\"{}\"}})",
        axum_service::SERVICE
    ));
    let mut seen: Vec<(String, String)> = by_route
        .iter()
        .map(|r| {
            let m = &r["metric"];
            (
                m["route"].as_str().unwrap_or_default().to_owned(),
                m["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    seen.sort();
    let route = "/api/orders/{id}".to_owned();
    assert_eq!(
        seen,
        [(route.clone(), "200".to_owned()), (route, "500".to_owned())]
    );
    // Prometheus scraped /metrics every second: no series, no log line.
    for excluded in ["/metrics", "/healthz"] {
        let q = format!("http_server_requests_total{{route=\"{excluded}\"}}");
        assert!(prom.query(&q).is_empty(), "{excluded} counted");
    }
    let scrapes =
        prom.scalar_eventually(&format!("count_over_time(up{{instance=\"{addr}\"}}[5m])"));
    assert!(scrapes >= 2.0, "{scrapes} scrapes");

    stop.store(true, Ordering::Relaxed);
    let sent = server
        .join()
        .expect("server thread")
        .expect("every order answered as expected");
    let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let completed = lines
        .iter()
        .filter(|l| l["message"] == "request completed" || l["message"] == "request failed")
        .count() as u64;
    assert_eq!(completed, sent, "one line per order, none for scrapes");
    assert!(
        lines
            .iter()
            .all(|l| l["http.route"] != "/metrics" && l["http.route"] != "/healthz")
    );
    drop(guard);
}
