//! The service in process, over real HTTP on loopback: status codes and
//! failure reasons of every route, the bad build's faults, the business
//! and RED metrics on `/metrics`, and JSON log lines with request ids.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dns_provisioner::{Faults, Store, app};

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn serve(
    faults: Faults,
    version: &str,
) -> (String, Logs, rollgate_telemetry::TelemetryGuard) {
    let logs = Logs::default();
    let guard = dns_provisioner::service::telemetry(version)
        .log_writer(logs.clone())
        .log_filter_env(None)
        .log_filter("info")
        .install()
        .expect("telemetry");
    let router = app(
        Store::open_in_memory().expect("store"),
        version,
        faults,
        guard.metrics().clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, logs, guard)
}

fn record(name: &str, kind: &str, value: &str, ttl: u32) -> String {
    serde_json::json!({ "name": name, "type": kind, "value": value, "ttl": ttl }).to_string()
}

async fn post(c: &reqwest::Client, base: &str, body: String) -> (u16, serde_json::Value) {
    let r = c
        .post(format!("{base}/records"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_answer_with_codes_reasons_metrics_and_request_ids() {
    let (base, logs, _guard) = serve(Faults::NONE, "v1").await;
    let c = reqwest::Client::new();

    let (code, body) = post(&c, &base, record("www.example.com", "A", "192.0.2.7", 300)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["type"], "A");
    let (code, body) = post(&c, &base, record("www.example.com", "A", "192.0.2.8", 300)).await;
    assert_eq!((code, body["reason"].as_str()), (409, Some("duplicate")));
    let (code, body) = post(
        &c,
        &base,
        record("mx.example.com", "MX", "10 mail.example.com", 5),
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("invalid_ttl")));
    let (code, body) = post(&c, &base, record("a.example.com", "AAAA", "192.0.2.1", 60)).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (400, Some("invalid_value"))
    );
    let (code, body) = post(&c, &base, "{\"name\": 1}".into()).await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("bad_request")));
    let (code, _) = post(&c, &base, record("t.example.com", "TXT", "hello", 86_400)).await;
    assert_eq!(code, 201);

    let r = c
        .get(format!("{base}/records/www.example.com"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().contains_key("x-request-id"));
    let got: serde_json::Value = r.json().await.expect("json");
    assert_eq!(got["value"], "192.0.2.7");
    let r = c
        .delete(format!("{base}/records/www.example.com"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(r.status().as_u16(), 204);
    let r = c
        .get(format!("{base}/records/www.example.com"))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status().as_u16(), 404);
    let r = c
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(r.text().await.expect("text"), "ok v1\n");

    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let has = |series: &str, value: &str| {
        text.lines().any(|l| {
            l.starts_with(series.split('{').next().unwrap_or_default())
                && series
                    .split(['{', '}', ','])
                    .skip(1)
                    .filter(|kv| !kv.is_empty())
                    .all(|kv| l.contains(kv))
                && l.ends_with(&format!(" {value}"))
        })
    };
    for (series, value) in [
        ("dns_records_created_total{type=\"A\"}", "1"),
        ("dns_records_created_total{type=\"TXT\"}", "1"),
        ("dns_records_deleted_total{version=\"v1\"}", "1"),
        (
            "dns_record_failures_total{operation=\"create\",reason=\"duplicate\"}",
            "1",
        ),
        (
            "dns_record_failures_total{operation=\"create\",reason=\"invalid_ttl\"}",
            "1",
        ),
        (
            "dns_record_failures_total{operation=\"create\",reason=\"invalid_value\"}",
            "1",
        ),
        (
            "dns_record_failures_total{operation=\"create\",reason=\"bad_request\"}",
            "1",
        ),
        (
            "dns_record_failures_total{operation=\"read\",reason=\"not_found\"}",
            "1",
        ),
        ("dns_record_ttl_seconds_bucket{le=\"300\"}", "1"),
        ("dns_record_ttl_seconds_count{version=\"v1\"}", "2"),
        (
            "http_server_requests_total{method=\"POST\",route=\"/records\",status=\"201\"}",
            "2",
        ),
        (
            "http_server_requests_total{method=\"GET\",route=\"/records/{name}\",status=\"404\"}",
            "1",
        ),
    ] {
        assert!(has(series, value), "{series} {value} not in:\n{text}");
    }
    assert!(
        !text.contains("route=\"/health\""),
        "health checks are not traffic"
    );

    // One JSON object per line; the request's lines carry its id.
    let logs = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let created = lines
        .iter()
        .find(|l| l["message"] == "record created")
        .expect("a record created line");
    assert_eq!(created["name"], "www.example.com");
    assert!(
        created["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{created}"
    );
    assert_eq!(created["version"], "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bad_build_fails_one_create_in_five_and_slows_one_read_in_25() {
    let (base, _logs, _guard) = serve(Faults::for_version("v2"), "v2").await;
    let c = reqwest::Client::new();
    let mut codes = Vec::new();
    for i in 0..10 {
        let (code, body) = post(
            &c,
            &base,
            record(&format!("n{i}.example.com"), "A", "192.0.2.1", 60),
        )
        .await;
        if code == 500 {
            assert_eq!(body["reason"], "injected_fault");
        }
        codes.push(code);
    }
    assert_eq!(codes.iter().filter(|c| **c == 500).count(), 2, "{codes:?}");
    let mut slow = 0;
    for _ in 0..25 {
        let start = Instant::now();
        let r = c
            .get(format!("{base}/records/n0.example.com"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200);
        if start.elapsed() >= Duration::from_millis(250) {
            slow += 1;
        }
    }
    assert_eq!(slow, 1);
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        text.lines()
            .any(|l| l.starts_with("http_server_errors_total{")
                && l.contains("route=\"/records\"")
                && l.ends_with(" 2")),
        "{text}"
    );
}
