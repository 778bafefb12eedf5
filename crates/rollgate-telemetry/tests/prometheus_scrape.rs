//! A real Prometheus (Debian package, started on loopback by
//! scripts/prometheus.sh) scrapes the example service's `/metrics` and
//! answers `histogram_quantile` with the expected values.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rollgate_telemetry::{MetricsServer, init};
use serde_json::Value;

#[path = "../examples/red_service.rs"]
#[allow(dead_code, unreachable_pub)]
mod red_service;

fn script() -> PathBuf {
    rollgate_test::script("prometheus.sh")
}

/// Stops the Prometheus it started, even when the test fails.
struct Prometheus {
    workdir: tempfile::TempDir,
    url: String,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let workdir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(workdir.path())
            .arg(target)
            .status()
            .expect("run scripts/prometheus.sh");
        assert!(status.success(), "scripts/prometheus.sh start failed");
        let url = std::fs::read_to_string(workdir.path().join("prometheus.url"))
            .expect("prometheus.url written")
            .trim()
            .to_owned();
        Self { workdir, url }
    }

    /// Instant query through the HTTP API; the `data.result` array.
    fn query(&self, promql: &str) -> Vec<Value> {
        let hostport = self.url.trim_start_matches("http://");
        let mut conn = TcpStream::connect(hostport).expect("connect to prometheus");
        let req = format!(
            "GET /api/v1/query?query={} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\n\r\n",
            percent_encode(promql)
        );
        conn.write_all(req.as_bytes()).expect("send query");
        let mut resp = String::new();
        conn.read_to_string(&mut resp).expect("read response");
        let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {resp}"));
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls until the query returns a sample (scrapes happen every second).
    fn scalar_eventually(&self, promql: &str) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self
                .query(promql)
                .first()
                .and_then(|r| r["value"][1].as_str())
            {
                return v.parse().unwrap_or(f64::NAN);
            }
            assert!(Instant::now() < deadline, "no result for {promql}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.workdir.path())
            .status();
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

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
