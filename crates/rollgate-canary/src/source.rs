//! Metric sources: where the samples of a metric, cohort and window come from.
//!
//! [`MetricSource`] is the seam (object safe, `Arc<dyn MetricSource>`);
//! [`InMemorySource`] holds timestamped samples, the
//! [`CanaryRecorder`](crate::recorder::CanaryRecorder) reads back what this
//! process recorded through the `metrics` facade, and
//! `prometheus::PrometheusSource` (feature
//! `prometheus`) asks a Prometheus server over its HTTP API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::config::{AnalysisConfig, MetricKind};
use crate::data::{Cohort, Counts, MetricSamples, SampleSet, Samples};
use crate::error::CanaryError;

/// A half-open time window `[start, end)` in seconds on the source's own
/// timeline (Unix seconds for Prometheus, seconds since creation for the
/// recorder, whatever the caller used for the in-memory source).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    /// Inclusive start, seconds.
    pub start: f64,
    /// Exclusive end, seconds.
    pub end: f64,
}

impl Window {
    /// A window; `start` must not be after `end`.
    pub fn new(start: f64, end: f64) -> Result<Self, CanaryError> {
        if !(start.is_finite() && end.is_finite() && start <= end) {
            return Err(CanaryError::input(
                "window",
                format!("[{start}, {end}) is not a finite, ordered window"),
            ));
        }
        Ok(Self { start, end })
    }
    /// Whether `t` lies in the window.
    pub fn contains(&self, t: f64) -> bool {
        t >= self.start && t < self.end
    }
    /// Length in seconds.
    pub fn secs(&self) -> f64 {
        self.end - self.start
    }
}

/// What to fetch: one metric, one cohort, one window.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    /// Metric name (as in the analysis config).
    pub metric: String,
    /// Kind of data wanted: counts for `count`, values otherwise.
    pub kind: MetricKind,
    /// Baseline or canary.
    pub cohort: Cohort,
    /// Time window.
    pub window: Window,
}

/// Yields samples for a metric, a cohort and a window.
///
/// ```
/// use std::sync::Arc;
/// use rollgate_canary::source::{InMemorySource, MetricSource};
/// let source: Arc<dyn MetricSource> = Arc::new(InMemorySource::new());
/// # let _ = source;
/// ```
#[async_trait]
pub trait MetricSource: Send + Sync + 'static {
    /// The samples of `q`; an error names the source, metric and cause.
    async fn samples(&self, q: &MetricQuery) -> Result<Samples, CanaryError>;
}

const _: Option<&dyn MetricSource> = None;

/// Fetches every configured metric for both cohorts over `window` into a
/// [`SampleSet`] ready for [`Analysis::judge`](crate::judge::Analysis::judge).
pub async fn collect(
    source: &dyn MetricSource,
    config: &AnalysisConfig,
    window: Window,
) -> Result<SampleSet, CanaryError> {
    let mut set = SampleSet::default();
    for m in &config.metrics {
        let q = |cohort| MetricQuery {
            metric: m.name.clone(),
            kind: m.kind,
            cohort,
            window,
        };
        let baseline = source.samples(&q(Cohort::Baseline)).await?;
        let canary = source.samples(&q(Cohort::Canary)).await?;
        set.insert(
            m.name.clone(),
            MetricSamples {
                baseline,
                canary,
                unit: None,
            },
        );
    }
    Ok(set)
}

#[derive(Debug, Default)]
struct Series {
    values: Vec<(f64, f64)>,
    counts: Vec<(f64, u64, u64)>,
}

/// Timestamped samples held in memory (tests, replays, embedding apps that
/// collect their own data).
///
/// ```
/// use rollgate_canary::config::MetricKind;
/// use rollgate_canary::data::{Cohort, Samples};
/// use rollgate_canary::source::{InMemorySource, MetricQuery, MetricSource, Window};
/// # tokio_test_block(async {
/// let src = InMemorySource::new();
/// src.push_value("latency_ms", Cohort::Canary, 1.0, 120.0);
/// src.push_value("latency_ms", Cohort::Canary, 9.0, 130.0);
/// let q = MetricQuery {
///     metric: "latency_ms".into(),
///     kind: MetricKind::Latency,
///     cohort: Cohort::Canary,
///     window: Window::new(0.0, 5.0).unwrap(),
/// };
/// assert_eq!(src.samples(&q).await.unwrap(), Samples::Values(vec![120.0]));
/// # });
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemorySource {
    series: Arc<Mutex<BTreeMap<(String, Cohort), Series>>>,
}

impl InMemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<(String, Cohort), Series>) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-push; the
        // data is still a valid list of samples.
        let mut g = self.series.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Records one value at time `t`.
    pub fn push_value(&self, metric: &str, cohort: Cohort, t: f64, value: f64) {
        self.with(|s| {
            s.entry((metric.to_string(), cohort))
                .or_default()
                .values
                .push((t, value))
        });
    }

    /// Records many values at time `t`.
    pub fn extend_values(&self, metric: &str, cohort: Cohort, t: f64, values: &[f64]) {
        self.with(|s| {
            s.entry((metric.to_string(), cohort))
                .or_default()
                .values
                .extend(values.iter().map(|&v| (t, v)))
        });
    }

    /// Records `events` out of `trials` at time `t`.
    pub fn add_counts(&self, metric: &str, cohort: Cohort, t: f64, events: u64, trials: u64) {
        self.with(|s| {
            s.entry((metric.to_string(), cohort))
                .or_default()
                .counts
                .push((t, events, trials))
        });
    }
}

#[async_trait]
impl MetricSource for InMemorySource {
    async fn samples(&self, q: &MetricQuery) -> Result<Samples, CanaryError> {
        let key = (q.metric.clone(), q.cohort);
        let w = q.window;
        Ok(self.with(|s| {
            let series = s.get(&key);
            if q.kind == MetricKind::Count || series.is_some_and(|s| !s.counts.is_empty()) {
                let (events, trials) = series
                    .map(|s| {
                        s.counts
                            .iter()
                            .filter(|(t, ..)| w.contains(*t))
                            .fold((0u64, 0u64), |(e, n), (_, de, dn)| {
                                (e.saturating_add(*de), n.saturating_add(*dn))
                            })
                    })
                    .unwrap_or((0, 0));
                Samples::Counts(Counts {
                    events,
                    trials,
                    recent: None,
                })
            } else {
                Samples::Values(
                    series
                        .map(|s| {
                            s.values
                                .iter()
                                .filter(|(t, _)| w.contains(*t))
                                .map(|(_, v)| *v)
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            }
        }))
    }
}
