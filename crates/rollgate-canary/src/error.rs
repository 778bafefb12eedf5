//! The crate's one error type.

/// Everything that can go wrong in canary analysis.
///
/// Messages are lowercase and name the thing and where it was found, e.g.
/// `data metrics.latency_ms.canary[3]: NaN is not a sample`. A source's
/// underlying error (the HTTP client's, the OS's) is kept whole in `cause`
/// and returned from `source()`; cloning shares it.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CanaryError {
    /// A sample set or statistic input is unusable (NaN, infinite, empty...).
    #[error("{what}: {why}")]
    InvalidInput {
        /// Which input, e.g. `metric "latency_ms" canary[3]`.
        what: String,
        /// Why it is rejected.
        why: String,
    },
    /// The analysis configuration is invalid.
    #[error("config {at}: {why}")]
    Config {
        /// Where in the config, e.g. `metrics[1].threshold.p99_max`.
        at: String,
        /// Why it is rejected.
        why: String,
    },
    /// The samples document is invalid.
    #[error("data {at}: {why}")]
    Data {
        /// Where in the data, e.g. `metrics.latency_ms.canary[3]`.
        at: String,
        /// Why it is rejected.
        why: String,
    },
    /// A metric source failed to answer.
    #[error("source {source_name} for metric \"{metric}\": {why}")]
    Source {
        /// Which source (`prometheus http://...`, `in-memory`, `recorder`).
        source_name: String,
        /// The metric being fetched.
        metric: String,
        /// What went wrong.
        why: String,
        /// The underlying error, if there is one (returned from `source()`).
        #[source]
        cause: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl CanaryError {
    pub(crate) fn input(what: impl Into<String>, why: impl Into<String>) -> Self {
        Self::InvalidInput {
            what: what.into(),
            why: why.into(),
        }
    }
    pub(crate) fn config(at: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Config {
            at: at.into(),
            why: why.into(),
        }
    }
    pub(crate) fn data(at: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Data {
            at: at.into(),
            why: why.into(),
        }
    }
}
