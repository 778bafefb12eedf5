#![doc = include_str!("../README.md")]

mod error;
mod init;
mod logs;
mod recorder;
mod redact;
#[cfg(feature = "prometheus")]
mod server;
mod snapshot;
mod time;
pub mod trace;

pub use error::Error;
pub use init::{ServiceInfo, Telemetry, TelemetryBuilder, TelemetryGuard, init};
pub use logs::LogFormat;
pub use recorder::{
    DEFAULT_MAX_SERIES_PER_METRIC, LATENCY_BUCKETS, MetricsConfig, MetricsConfigBuilder,
    MetricsRegistry, OVERFLOW_LABEL, OVERFLOW_METRIC, Recorder,
};
pub use redact::{DEFAULT_SENSITIVE_FIELDS, MASK, Redactor};
#[cfg(feature = "prometheus")]
pub use server::MetricsServer;
pub use snapshot::{
    FamilySnapshot, HistogramSnapshot, MetricKind, SeriesSnapshot, Snapshot, Value,
};
pub use trace::{SpanContext, SpanId, TraceId, TraceParent};
