//! An axum 0.8 service instrumented with rollgate-telemetry: JSON logs with
//! request ids, RED metrics labelled by axum's route templates, and the
//! Prometheus exposition on the service's own `/metrics` route (excluded
//! from RED, like `/healthz`).
//!
//! ```sh
//! cargo run -p rollgate-telemetry --features axum --example axum_service -- serve 127.0.0.1:3000
//! curl -s 127.0.0.1:3000/api/orders/7; curl -s 127.0.0.1:3000/metrics
//! # What CI runs: serve on a free port, send N requests, check /metrics, exit.
//! cargo run -p rollgate-telemetry --features axum --example axum_service -- self-test 20
//! ```
//!
//! `tests/axum_dashboard.rs` runs the same app, lets a real Prometheus
//! scrape it, and checks every RED query of the generated dashboard.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::routing::get;
use rollgate_telemetry::{MetricsRegistry, RedLayer, axum_matched_path};

/// The service name its telemetry carries.
pub const SERVICE: &str = "axum-example";

/// An order: 5 ms, every 5th takes 150 ms, every 10th fails with a 500.
async fn order(Path(id): Path<u64>) -> Result<String, StatusCode> {
    let ms = if id % 5 == 4 { 150 } else { 5 };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    tracing::info!(order_id = id, "order read");
    if id % 10 == 9 {
        return Err(StatusCode::INTERNAL_SERVER_ERROR);
    }
    Ok(format!("order {id}\n"))
}

/// The router: business routes, a health check, and the exposition.
pub fn app(metrics: MetricsRegistry) -> Router {
    Router::new()
        .route("/api/orders/{id}", get(order))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let body = metrics.render();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        body,
                    )
                }
            }),
        )
        // Router::layer wraps each route, where axum has set MatchedPath.
        .layer(RedLayer::new().route_with(axum_matched_path))
}

/// Serves `app` on `addr` (port 0 picks one) in the background; the bound address.
pub async fn spawn(metrics: MetricsRegistry, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("bind {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app(metrics)).await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(bound)
}

/// One GET with reqwest: (status, body).
pub async fn fetch(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let url = format!("http://{addr}{path}");
    let response = reqwest::get(&url)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .with_context(|| format!("GET {url}: body"))?;
    Ok((status, body))
}

/// Sends orders `first..first + n` (and a health check and a scrape each
/// ten), checking each answer.
pub async fn drive(addr: SocketAddr, first: u64, n: u64) -> anyhow::Result<()> {
    for id in first..first + n {
        let (status, _) = fetch(addr, &format!("/api/orders/{id}")).await?;
        let want = if id % 10 == 9 { 500 } else { 200 };
        if status != want {
            bail!("GET /api/orders/{id}: status {status}, expected {want}");
        }
        if id % 10 == 0 {
            fetch(addr, "/healthz").await?;
            fetch(addr, "/metrics").await?;
        }
    }
    Ok(())
}

/// The value of the sample line `series` (exact text before the value).
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Serves, sends `n` orders, and checks the service's own exposition:
/// `n` requests on the order route, their errors, and nothing for the
/// excluded `/metrics` and `/healthz`.
async fn self_test(metrics: MetricsRegistry, n: u64) -> anyhow::Result<()> {
    let addr = spawn(metrics, "127.0.0.1:0".parse()?).await?;
    drive(addr, 0, n).await?;
    let (status, text) = fetch(addr, "/metrics").await?;
    if status != 200 {
        bail!("GET /metrics: status {status}");
    }
    let route = "route=\"/api/orders/{id}\"";
    let served: f64 = text
        .lines()
        .filter(|l| l.starts_with("http_server_requests_total{") && l.contains(route))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let errors: f64 = text
        .lines()
        .filter(|l| l.starts_with("http_server_errors_total{") && l.contains(route))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    let want_errors = (0..n).filter(|id| id % 10 == 9).count() as f64;
    if served != n as f64 || errors != want_errors {
        bail!(
            "expected {n} requests and {want_errors} errors, /metrics says {served} and {errors}:\n{text}"
        );
    }
    for excluded in ["route=\"/metrics\"", "route=\"/healthz\""] {
        if text.contains(excluded) {
            bail!("{excluded} must not be counted:\n{text}");
        }
    }
    println!("self-test ok: {n} requests, {errors} errors, /metrics and /healthz not counted");
    Ok(())
}

#[allow(dead_code)] // main is unused when tests include this file
fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "serve".into());
    let guard = rollgate_telemetry::init(SERVICE)
        .version(env!("CARGO_PKG_VERSION"))
        .environment("example")
        .cohort("canary")
        .install()?;
    let metrics = guard.metrics().clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match mode.as_str() {
        "serve" => {
            let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:3000").parse()?;
            rt.block_on(async {
                let addr = spawn(metrics, addr).await?;
                tracing::info!(%addr, "serving; Ctrl-C stops");
                std::future::pending::<anyhow::Result<()>>().await
            })?;
        }
        "self-test" => {
            let n: u64 = args.next().as_deref().unwrap_or("20").parse()?;
            rt.block_on(self_test(metrics, n))?;
        }
        other => bail!("unknown mode {other:?}: serve [ADDR] | self-test [N]"),
    }
    drop(guard);
    Ok(())
}
