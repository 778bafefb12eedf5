//! The HTTP service: routes, business metrics, and the faults a bad build
//! injects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rollgate_telemetry::metrics::{counter, histogram};
use rollgate_telemetry::{MetricsRegistry, RedLayer, axum_matched_path};

use crate::store::{Record, Store, StoreError};

/// Records created, by `type`.
pub const CREATED: &str = "dns_records_created_total";
/// Records deleted.
pub const DELETED: &str = "dns_records_deleted_total";
/// Failed operations, by `operation` and `reason`.
pub const FAILURES: &str = "dns_record_failures_total";
/// The TTL of created records, in seconds.
pub const TTL: &str = "dns_record_ttl_seconds";
/// Bucket bounds of [`TTL`] (seconds: 30 s to a day).
pub const TTL_BUCKETS: [f64; 8] = [
    30.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0, 43_200.0, 86_400.0,
];

/// Bucket bounds of the RED layer's `http_server_request_duration_seconds`
/// here: from 25 µs, as most answers take well under a millisecond, to
/// 10 s.
pub const REQUEST_BUCKETS: [f64; 18] = [
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The versions built with faults (the demo's bad release).
pub const BAD_VERSIONS: [&str; 1] = ["v2"];

/// Faults a build injects: failed creates on `POST /records`, and slow
/// reads on `GET /records/{name}` (a p99 regression: the median is
/// untouched). Counter-based, so a given request sequence always fails
/// the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// Every n-th create answers 500 (reason `injected_fault`); 0: never.
    pub create_error_every: u64,
    /// Every n-th read waits [`read_delay`](Self::read_delay) first; 0: never.
    pub read_delay_every: u64,
    /// How much longer a delayed read takes.
    pub read_delay: Duration,
}

impl Faults {
    /// A good build.
    pub const NONE: Faults = Faults {
        create_error_every: 0,
        read_delay_every: 0,
        read_delay: Duration::ZERO,
    };
    /// The bad build: one create in 5 fails (20 %), one read in 25 (4 %)
    /// takes 250 ms longer.
    pub const BAD: Faults = Faults {
        create_error_every: 5,
        read_delay_every: 25,
        read_delay: Duration::from_millis(250),
    };

    /// The faults of a version: [`BAD`](Self::BAD) for [`BAD_VERSIONS`],
    /// else none.
    ///
    /// ```
    /// use dns_provisioner::Faults;
    /// assert_eq!(Faults::for_version("v2"), Faults::BAD);
    /// assert_eq!(Faults::for_version("v3"), Faults::NONE);
    /// ```
    pub fn for_version(version: &str) -> Faults {
        if BAD_VERSIONS.contains(&version) {
            Self::BAD
        } else {
            Self::NONE
        }
    }

    /// `auto` (by version), `none` or `bad`.
    pub fn parse(spec: &str, version: &str) -> Option<Faults> {
        match spec {
            "auto" => Some(Self::for_version(version)),
            "none" => Some(Self::NONE),
            "bad" => Some(Self::BAD),
            _ => None,
        }
    }
}

struct AppState {
    store: Store,
    faults: Faults,
    version: String,
    creates: AtomicU64,
    reads: AtomicU64,
}

fn every(counter: &AtomicU64, n: u64) -> bool {
    n > 0 && counter.fetch_add(1, Ordering::Relaxed) % n == n - 1
}

fn fail(operation: &'static str, e: &StoreError) -> Response {
    counter!(FAILURES, "operation" => operation, "reason" => e.reason()).increment(1);
    let status = match e {
        StoreError::InvalidName(_) | StoreError::InvalidValue(_) | StoreError::InvalidTtl(_) => {
            StatusCode::BAD_REQUEST
        }
        StoreError::Duplicate(_) => StatusCode::CONFLICT,
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::error!(operation, reason = e.reason(), error = %e, "operation failed");
    } else {
        tracing::debug!(operation, reason = e.reason(), error = %e, "request refused");
    }
    error_body(status, e.reason(), &e.to_string())
}

fn error_body(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = serde_json::json!({ "error": message, "reason": reason }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json(status: StatusCode, r: &Record) -> Response {
    let body = serde_json::to_string(r).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn create(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let r: Record = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            counter!(FAILURES, "operation" => "create", "reason" => "bad_request").increment(1);
            return error_body(StatusCode::BAD_REQUEST, "bad_request", &e.to_string());
        }
    };
    if every(&s.creates, s.faults.create_error_every) {
        counter!(FAILURES, "operation" => "create", "reason" => "injected_fault").increment(1);
        tracing::error!(name = %r.name, version = %s.version, "create failed: fault injected by this build");
        return error_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected_fault",
            "fault injected by this build",
        );
    }
    match s.store.create(&r) {
        Ok(()) => {
            counter!(CREATED, "type" => r.kind.as_str()).increment(1);
            histogram!(TTL).record(f64::from(r.ttl));
            tracing::info!(name = %r.name, r#type = r.kind.as_str(), ttl = r.ttl, "record created");
            json(StatusCode::CREATED, &r)
        }
        Err(e) => fail("create", &e),
    }
}

async fn read(State(s): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    if every(&s.reads, s.faults.read_delay_every) {
        tokio::time::sleep(s.faults.read_delay).await;
    }
    match s.store.get(&name) {
        Ok(r) => json(StatusCode::OK, &r),
        Err(e) => fail("read", &e),
    }
}

async fn delete(State(s): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    match s.store.delete(&name) {
        Ok(()) => {
            counter!(DELETED).increment(1);
            tracing::info!(name = %name, "record deleted");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => fail("delete", &e),
    }
}

/// The telemetry of one instance: service `dns-provisioner`, its version
/// label, the [`TTL`] histogram's [`TTL_BUCKETS`] and the request
/// durations' [`REQUEST_BUCKETS`]. Add a log writer or
/// filter, then `install()` it once per process.
///
/// ```
/// let telemetry = dns_provisioner::service::telemetry("v3").log_writer(std::io::sink()).build()?;
/// assert!(telemetry.metrics().render().is_empty());
/// # Ok::<(), rollgate_telemetry::Error>(())
/// ```
pub fn telemetry(version: &str) -> rollgate_telemetry::TelemetryBuilder {
    rollgate_telemetry::init("dns-provisioner")
        .version(version)
        .histogram_buckets(TTL, &TTL_BUCKETS)
        .histogram_buckets("http_server_request_duration_seconds", &REQUEST_BUCKETS)
}

/// The service: `POST /records` (a JSON [`Record`]), `GET` and `DELETE
/// /records/{name}`, `GET /health` (`ok VERSION`) and `GET /metrics`
/// (the Prometheus exposition of `metrics`). Every route but the last two
/// is measured by rollgate-telemetry's RED layer and logs with a request id.
///
/// ```
/// use dns_provisioner::{Faults, Store, app};
///
/// let metrics = rollgate_telemetry::MetricsRegistry::default();
/// let router = app(Store::open_in_memory()?, "v1", Faults::NONE, metrics);
/// # drop(router);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn app(store: Store, version: &str, faults: Faults, metrics: MetricsRegistry) -> Router {
    let state = Arc::new(AppState {
        store,
        faults,
        version: version.to_owned(),
        creates: AtomicU64::new(0),
        reads: AtomicU64::new(0),
    });
    let health = format!("ok {version}\n");
    Router::new()
        .route("/records", post(create))
        .route("/records/{name}", get(read).delete(delete))
        .route("/health", get(move || async move { health }))
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
        .with_state(state)
        // Router::layer wraps each route, where axum has set MatchedPath.
        .layer(RedLayer::new().route_with(axum_matched_path))
}
