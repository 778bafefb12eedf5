//! A small `metrics` recorder that keeps what this process recorded per
//! cohort, so a service can judge its own canary without a metrics server.
//!
//! Histograms and gauges become value samples, counters become event counts.
//! Only series with a `cohort` label of `baseline` or `canary` are kept; the
//! rest cost one no-op call. Each series keeps at most `capacity` samples
//! (oldest dropped), so memory is bounded. Time is tokio's clock (paused in
//! tests), in seconds since the recorder was made.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use tokio::time::Instant;

use crate::config::MetricKind;
use crate::data::{Cohort, Counts, Samples};
use crate::error::CanaryError;
use crate::source::{MetricQuery, MetricSource};

#[derive(Debug)]
struct Buffer {
    origin: Instant,
    capacity: usize,
    points: Mutex<VecDeque<(f64, f64)>>,
}

impl Buffer {
    fn push(&self, v: f64) {
        let t = self.origin.elapsed().as_secs_f64();
        let mut p = self.points.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() == self.capacity {
            p.pop_front();
        }
        p.push_back((t, v));
    }
}

impl HistogramFn for Buffer {
    fn record(&self, value: f64) {
        self.push(value);
    }
}

impl CounterFn for Buffer {
    fn increment(&self, value: u64) {
        self.push(value as f64);
    }
    fn absolute(&self, _value: u64) {
        // Absolute counter values carry no per-window increment; ignored.
    }
}

impl GaugeFn for Buffer {
    fn increment(&self, _value: f64) {}
    fn decrement(&self, _value: f64) {}
    fn set(&self, value: f64) {
        self.push(value);
    }
}

type Store = Arc<Mutex<BTreeMap<(String, Cohort), Arc<Buffer>>>>;

/// The recorder. Install it as the process's recorder (a binary's choice),
/// or use it locally with `metrics::with_local_recorder`.
///
/// ```
/// use rollgate_canary::recorder::CanaryRecorder;
/// let rec = CanaryRecorder::new(10_000);
/// metrics::with_local_recorder(&rec, || {
///     metrics::histogram!("latency_ms", "cohort" => "canary").record(12.5);
///     metrics::histogram!("latency_ms", "cohort" => "elsewhere").record(99.0); // not kept
/// });
/// assert_eq!(rec.values("latency_ms", rollgate_canary::Cohort::Canary), vec![12.5]);
/// ```
#[derive(Debug, Clone)]
pub struct CanaryRecorder {
    origin: Instant,
    capacity: usize,
    store: Store,
}

impl CanaryRecorder {
    /// A recorder keeping at most `capacity` samples per series (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            origin: Instant::now(),
            capacity: capacity.max(1),
            store: Arc::default(),
        }
    }

    /// Seconds since the recorder was made, on tokio's clock: the timeline
    /// of the windows its source answers.
    pub fn now_secs(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    fn buffer(&self, key: &Key) -> Option<Arc<Buffer>> {
        let cohort = key
            .labels()
            .find(|l| l.key() == "cohort")
            .and_then(|l| match l.value() {
                "baseline" => Some(Cohort::Baseline),
                "canary" => Some(Cohort::Canary),
                _ => None,
            })?;
        let mut s = self.store.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            s.entry((key.name().to_string(), cohort))
                .or_insert_with(|| {
                    Arc::new(Buffer {
                        origin: self.origin,
                        capacity: self.capacity,
                        points: Mutex::new(VecDeque::new()),
                    })
                })
                .clone(),
        )
    }

    fn points(&self, name: &str, cohort: Cohort) -> Vec<(f64, f64)> {
        let s = self.store.lock().unwrap_or_else(|e| e.into_inner());
        s.get(&(name.to_string(), cohort))
            .map(|b| {
                b.points
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every kept value of a series (tests and debugging).
    pub fn values(&self, name: &str, cohort: Cohort) -> Vec<f64> {
        self.points(name, cohort)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// A [`MetricSource`] over this recorder. Count metrics read the counter
    /// named like the metric as events and `<metric>_trials` as trials
    /// (see [`RecorderSource::trials_counter`]).
    pub fn source(&self) -> RecorderSource {
        RecorderSource {
            recorder: self.clone(),
            trials: BTreeMap::new(),
        }
    }
}

impl Recorder for CanaryRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.buffer(key)
            .map(Counter::from_arc)
            .unwrap_or_else(Counter::noop)
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.buffer(key)
            .map(Gauge::from_arc)
            .unwrap_or_else(Gauge::noop)
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.buffer(key)
            .map(Histogram::from_arc)
            .unwrap_or_else(Histogram::noop)
    }
}

/// Reads a [`CanaryRecorder`] back as a [`MetricSource`].
#[derive(Debug, Clone)]
pub struct RecorderSource {
    recorder: CanaryRecorder,
    trials: BTreeMap<String, String>,
}

impl RecorderSource {
    /// Reads the trials of count metric `metric` from counter `counter`
    /// (default `<metric>_trials`).
    pub fn trials_counter(mut self, metric: &str, counter: &str) -> Self {
        self.trials.insert(metric.to_string(), counter.to_string());
        self
    }
}

#[async_trait]
impl MetricSource for RecorderSource {
    async fn samples(&self, q: &MetricQuery) -> Result<Samples, CanaryError> {
        let w = q.window;
        let in_window = |name: &str| -> Vec<f64> {
            self.recorder
                .points(name, q.cohort)
                .into_iter()
                .filter(|(t, _)| w.contains(*t))
                .map(|(_, v)| v)
                .collect()
        };
        if q.kind == MetricKind::Count {
            let trials_name = self
                .trials
                .get(&q.metric)
                .cloned()
                .unwrap_or_else(|| format!("{}_trials", q.metric));
            let sum = |v: Vec<f64>| {
                v.into_iter()
                    .map(|x| x as u64)
                    .fold(0u64, u64::saturating_add)
            };
            Ok(Samples::Counts(Counts {
                events: sum(in_window(&q.metric)),
                trials: sum(in_window(&trials_name)),
                recent: None,
            }))
        } else {
            Ok(Samples::Values(in_window(&q.metric)))
        }
    }
}
