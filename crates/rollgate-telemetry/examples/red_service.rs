//! An example service: RED middleware around a tower handler, metrics served
//! for Prometheus at `/metrics`, JSON logs on stdout.
//!
//! ```sh
//! cargo run -p rollgate-telemetry --all-features --example red_service -- 127.0.0.1:9464 30
//! curl -s 127.0.0.1:9464/metrics | grep http_server_request_duration_seconds
//! ```
//!
//! It drives its own synthetic traffic (so it needs no client): 80 % of
//! requests take 20 ms, 20 % take 300 ms, every 50th answers 500.
//! `tests/prometheus_scrape.rs` reuses this file and checks a real
//! Prometheus computes the expected quantiles from the scraped histogram.

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use rollgate_telemetry::RedLayer;
use tower::{Layer, Service, ServiceExt, service_fn};

/// The handler: latency and status depend only on the order id in the path.
pub async fn handler(req: Request<String>) -> Result<Response<String>, Infallible> {
    let id: u64 = req
        .uri()
        .path()
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let ms = if id % 5 == 4 { 300 } else { 20 };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let status = if id % 50 == 49 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    tracing::debug!(order_id = id, "order read");
    Ok(Response::builder()
        .status(status)
        .body(format!("order {id}\n"))
        .unwrap_or_default())
}

/// The layered service.
pub fn service()
-> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static {
    RedLayer::new()
        .route("/api/orders/{id}")
        .layer(service_fn(handler))
}

/// Sends `n` requests for order ids `0..n`, ten at a time.
pub async fn drive(n: u64) {
    let svc = service();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|id| {
                let req = Request::builder()
                    .uri(format!("/api/orders/{id}"))
                    .body(String::new())
                    .unwrap_or_default();
                tokio::spawn(svc.clone().oneshot(req))
            })
            .collect();
        for t in tasks {
            // The handler is infallible; a panicked task would show in the metrics.
            let _ = t.await;
        }
    }
}

#[allow(dead_code)] // main is unused when tests include this file
fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9464".into())
        .parse()?;
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(60);
    let guard = rollgate_telemetry::init("red-example")
        .version(env!("CARGO_PKG_VERSION"))
        .environment("example")
        .cohort("canary")
        .serve_metrics(addr)
        .install()?;
    tracing::info!(addr = %addr, seconds, "serving metrics");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    rt.block_on(async {
        let start = tokio::time::Instant::now();
        while start.elapsed() < Duration::from_secs(seconds) {
            drive(100).await;
        }
    });
    drop(guard);
    Ok(())
}
