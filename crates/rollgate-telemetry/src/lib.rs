#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The `metrics` crate this crate's recorder serves (see
/// [`METRICS_FACADE_VERSION`]): record through it, or through the same
/// `metrics` release line, or the records are lost.
pub use metrics;

mod assets;
mod error;
mod facade;
#[doc(hidden)]
pub mod feature_hint;
mod init;
#[cfg(test)]
mod lockfile;
mod logs;
#[cfg(feature = "otlp")]
mod otlp;
mod recorder;
#[cfg(feature = "http")]
mod red;
mod redact;
#[cfg(feature = "prometheus")]
mod server;
mod shard;
mod snapshot;
mod time;
pub mod trace;

pub use assets::{AssetOptions, DASHBOARD_FILE, RULES_FILE};
pub use error::Error;
pub use facade::METRICS_FACADE_VERSION;
pub use init::{
    DEFAULT_LOG_FILTER, LOG_FILTER_ENV, ServiceInfo, Telemetry, TelemetryBuilder, TelemetryGuard,
    init,
};
pub use logs::LogFormat;
pub use recorder::{
    DEFAULT_MAX_SERIES_PER_METRIC, DEFAULT_SERIES_IDLE_TIMEOUT, LATENCY_BUCKETS, MetricsConfig,
    MetricsConfigBuilder, MetricsRegistry, OVERFLOW_LABEL, OVERFLOW_METRIC, Recorder,
};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use red::axum_matched_path;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use red::{
    DEFAULT_EXCLUDED_PATHS, DURATION_SECONDS, ERRORS_TOTAL, REQUEST_ID_HEADER, REQUESTS_TOTAL, Red,
    RedLayer, RequestId, RouteTemplate, UNMATCHED_ROUTE,
};
pub use redact::{DEFAULT_SENSITIVE_FIELDS, MASK, Redactor};
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use server::MetricsServer;
pub use snapshot::{
    FamilySnapshot, HistogramSnapshot, MetricKind, SeriesSnapshot, Snapshot, Value,
};
pub use trace::{SpanContext, SpanId, TraceId, TraceParent};
