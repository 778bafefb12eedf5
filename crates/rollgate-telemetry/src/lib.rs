#![doc = include_str!("../README.md")]

mod assets;
mod error;
mod event;
mod init;
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
pub use event::{DEPLOY_EVENTS_TOTAL, DEPLOY_TARGET, DeployEvent, GateOutcome};
pub use init::{ServiceInfo, Telemetry, TelemetryBuilder, TelemetryGuard, init};
pub use logs::LogFormat;
pub use recorder::{
    DEFAULT_MAX_SERIES_PER_METRIC, LATENCY_BUCKETS, MetricsConfig, MetricsConfigBuilder,
    MetricsRegistry, OVERFLOW_LABEL, OVERFLOW_METRIC, Recorder,
};
#[cfg(feature = "http")]
pub use red::{
    DURATION_SECONDS, ERRORS_TOTAL, REQUEST_ID_HEADER, REQUESTS_TOTAL, Red, RedLayer, RequestId,
    RouteTemplate, UNMATCHED_ROUTE,
};
pub use redact::{DEFAULT_SENSITIVE_FIELDS, MASK, Redactor};
#[cfg(feature = "prometheus")]
pub use server::MetricsServer;
pub use snapshot::{
    FamilySnapshot, HistogramSnapshot, MetricKind, SeriesSnapshot, Snapshot, Value,
};
pub use trace::{SpanContext, SpanId, TraceId, TraceParent};
