//! The RED layer: metrics per route template, request ids, trace context.

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use rollgate_telemetry::{
    DURATION_SECONDS, ERRORS_TOTAL, REQUESTS_TOTAL, RedLayer, RequestId, Telemetry, init, trace,
};
use serde_json::Value;
use tower::{Layer, ServiceExt, service_fn};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("capture lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

fn telemetry(capture: &Capture) -> Telemetry {
    init("shop")
        .log_filter_env(None)
        .version("2.1.0")
        .cohort("canary")
        .id_seed(11)
        .log_writer(capture.clone())
        .build()
        .expect("valid config")
}

/// A handler that sleeps for `?ms=N` (tokio time, paused in tests), answers
/// 500 on `/fail`, and returns the trace id it saw in a header.
async fn handler(req: Request<String>) -> Result<Response<String>, Infallible> {
    let ms: u64 = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    tracing::info!("handling");
    let ctx = trace::current().expect("handler runs inside the request span");
    let seen_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let status = if req.uri().path() == "/fail" {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let res = Response::builder()
        .status(status)
        .header("x-seen-trace-id", ctx.trace_id.to_string())
        .header("x-seen-request-id", seen_id)
        .body(String::new())
        .expect("valid response");
    Ok(res)
}

fn layer() -> RedLayer {
    RedLayer::new().route("/users/{id}").route("/fail")
}

async fn call(uri: &str, headers: &[(&str, &str)]) -> Response<String> {
    let svc = layer().layer(service_fn(handler));
    let mut req = Request::builder().uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    svc.oneshot(req.body(String::new()).expect("valid request"))
        .await
        .unwrap_or_else(|e: Infallible| match e {})
}

#[tokio::test(start_paused = true)]
async fn request_id_is_generated_echoed_and_logged_with_the_span_trace_id() {
    let capture = Capture::default();
    let t = telemetry(&capture);
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let res = call("/users/7", &[]).await;
    let rid = res.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(rid.len(), 32);
    assert_eq!(res.headers()["x-seen-request-id"], rid.as_str());
    let trace_id = res.headers()["x-seen-trace-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let lines = capture.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        assert_eq!(l["request_id"], rid.as_str());
        assert_eq!(l["trace_id"], trace_id.as_str());
        assert_eq!(l["http.route"], "/users/{id}");
    }
    assert_eq!(lines[1]["message"], "request completed");
    // One status attribute, once in the line.
    assert_eq!(lines[1]["http.response.status_code"], 200);
    assert!(lines[1].get("status").is_none(), "{}", lines[1]);
    let raw = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf-8");
    let completed = raw.lines().nth(1).unwrap_or_default();
    assert_eq!(
        completed.matches("\"http.response.status_code\"").count(),
        1,
        "{completed}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_incoming_request_id_and_traceparent_are_propagated() {
    let capture = Capture::default();
    let t = telemetry(&capture);
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let res = call(
        "/users/7",
        &[
            ("x-request-id", "abc-123"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
        ],
    )
    .await;
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    assert_eq!(
        res.headers()["x-seen-trace-id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    // An id with spaces is not trusted: a fresh one replaces it.
    let res = call("/users/7", &[("x-request-id", "has spaces")]).await;
    assert_ne!(res.headers()["x-request-id"], "has spaces");
}

#[tokio::test(start_paused = true)]
async fn metrics_are_labelled_by_route_template_and_time_comes_from_tokio() {
    let capture = Capture::default();
    let t = telemetry(&capture);
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let recorder = t.recorder();
    let _m = metrics::set_default_local_recorder(&recorder);
    for id in 0..20 {
        call(&format!("/users/{id}?ms=120"), &[]).await;
    }
    call("/fail?ms=600", &[]).await;
    call("/somewhere/else/42", &[]).await;

    let snap = t.metrics().snapshot();
    let users = [("route", "/users/{id}"), ("method", "GET")];
    assert_eq!(
        snap.counter(
            REQUESTS_TOTAL,
            &[("route", "/users/{id}"), ("status", "200")]
        ),
        Some(20)
    );
    assert_eq!(
        snap.counter(REQUESTS_TOTAL, &[("route", "/fail"), ("status", "500")]),
        Some(1)
    );
    assert_eq!(
        snap.counter(REQUESTS_TOTAL, &[("route", "unmatched")]),
        Some(1)
    );
    assert_eq!(snap.counter(ERRORS_TOTAL, &[("route", "/fail")]), Some(1));
    assert_eq!(
        snap.counter(ERRORS_TOTAL, &[("route", "/users/{id}")]),
        None
    );
    // Raw paths never become label values.
    assert_eq!(snap.family(REQUESTS_TOTAL).map(|f| f.series.len()), Some(3));
    let h = snap
        .histogram(DURATION_SECONDS, &users)
        .expect("duration recorded");
    assert_eq!(h.count(), 20);
    assert!(
        (h.sum - 20.0 * 0.120).abs() < 1e-6,
        "paused clock gives exact durations: {}",
        h.sum
    );
    let p99 = h.quantile(0.99).expect("non-empty");
    assert!(p99 > 0.1 && p99 <= 0.15, "{p99}");
    let slow = snap
        .histogram(DURATION_SECONDS, &[("route", "/fail")])
        .expect("recorded");
    assert!(slow.quantile(0.5).is_some_and(|v| v > 0.5 && v <= 0.75));
    // The cohort constant label selects this process' series.
    assert!(
        snap.histogram(DURATION_SECONDS, &[("cohort", "canary")])
            .is_some()
    );
    assert!(
        snap.histogram(DURATION_SECONDS, &[("cohort", "baseline")])
            .is_none()
    );
}

async fn plain(req: Request<String>) -> Result<Response<String>, Infallible> {
    Ok(Response::new(format!("served {}", req.uri().path())))
}

#[tokio::test(start_paused = true)]
async fn excluded_routes_leave_no_series_and_no_log_line() {
    let capture = Capture::default();
    let t = telemetry(&capture);
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let recorder = t.recorder();
    let _m = metrics::set_default_local_recorder(&recorder);
    let red = RedLayer::new()
        .route("/users/{id}")
        .route("/internal/{*rest}")
        .exclude("/internal/{*rest}");
    let send = |red: RedLayer, path: &'static str| async move {
        let res = red
            .layer(service_fn(plain))
            .oneshot(
                Request::get(path)
                    .body(String::new())
                    .expect("valid request"),
            )
            .await
            .unwrap_or_else(|e: Infallible| match e {});
        // Excluded or not, the request reaches the service.
        assert_eq!(res.body(), &format!("served {path}"));
        res
    };
    for path in [
        "/metrics",
        "/healthz",
        "/livez",
        "/readyz",
        "/health",
        "/ping",
        "/internal/a/b",
    ] {
        let res = send(red.clone(), path).await;
        assert!(
            res.headers().get("x-request-id").is_none(),
            "{path} untouched"
        );
    }
    send(red.clone(), "/users/1").await;
    let snap = t.metrics().snapshot();
    let routes: Vec<&str> = snap
        .family(REQUESTS_TOTAL)
        .map(|f| {
            f.series
                .iter()
                .filter_map(|s| s.labels.get("route"))
                .map(String::as_str)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(routes, ["/users/{id}"]);
    assert_eq!(snap.counter_sum(REQUESTS_TOTAL, &[]), 1);
    assert_eq!(
        snap.histogram(DURATION_SECONDS, &[]).map(|h| h.count()),
        Some(1)
    );
    let lines = capture.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["http.route"], "/users/{id}");

    // A default exclusion taken back counts again.
    send(red.include("/healthz").route("/healthz"), "/healthz").await;
    let snap = t.metrics().snapshot();
    assert_eq!(
        snap.counter(REQUESTS_TOTAL, &[("route", "/healthz")]),
        Some(1)
    );
    assert_eq!(capture.lines().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_warn_filter_keeps_the_status_on_failed_request_lines() {
    let capture = Capture::default();
    let t = init("shop")
        .log_filter_env(None)
        .log_filter("warn")
        .log_writer(capture.clone())
        .build()
        .expect("valid config");
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let svc = RedLayer::new()
        .route("/fail")
        .layer(service_fn(|_req: Request<String>| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .body(String::new())
                    .expect("valid response"),
            )
        }));
    svc.oneshot(
        Request::get("/fail")
            .body(String::new())
            .expect("valid request"),
    )
    .await
    .unwrap_or_else(|e: Infallible| match e {});
    let lines = capture.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["message"], "request failed");
    assert_eq!(lines[0]["http.response.status_code"], 503);
}
