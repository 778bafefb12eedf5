#![doc = include_str!("../README.md")]

mod error;
mod recorder;
mod snapshot;

pub use error::Error;
pub use recorder::{
    DEFAULT_MAX_SERIES_PER_METRIC, LATENCY_BUCKETS, MetricsConfig, MetricsConfigBuilder,
    MetricsRegistry, OVERFLOW_LABEL, OVERFLOW_METRIC, Recorder,
};
pub use snapshot::{
    FamilySnapshot, HistogramSnapshot, MetricKind, SeriesSnapshot, Snapshot, Value,
};
