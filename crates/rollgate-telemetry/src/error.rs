//! The crate's one error type.

/// Everything that can go wrong while configuring or running telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder setting was rejected.
    #[error("telemetry config: {field}: {reason}")]
    Config {
        /// The setting that was rejected (`service`, `histogram_buckets`, ...).
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A global facade (tracing subscriber or metrics recorder) was already installed.
    #[error("telemetry init: a global {what} is already installed in this process")]
    AlreadyInstalled {
        /// `tracing subscriber` or `metrics recorder`.
        what: &'static str,
    },
    /// A W3C `traceparent` header value could not be parsed.
    #[error("traceparent {value:?}: {reason}")]
    TraceParent {
        /// The offending header value (truncated to 64 characters).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two histogram snapshots with different bucket layouts were combined.
    #[error("histogram {name:?}: bucket layouts differ, cannot combine")]
    BucketMismatch {
        /// The metric name.
        name: String,
    },
    /// An I/O operation failed (binding the metrics listener, writing assets).
    #[error("telemetry io: {what} {path}")]
    Io {
        /// What was being done (`bind metrics listener on`, `write asset`).
        what: &'static str,
        /// The address or file path involved.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}
