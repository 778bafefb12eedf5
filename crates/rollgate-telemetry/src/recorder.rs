//! The metrics registry and its `metrics::Recorder`.
//!
//! Owns storage of every series: counters and gauges as single atomics,
//! histograms as fixed buckets (bounded memory, no raw samples), constant
//! labels, and the cardinality guard that caps distinct label sets per metric.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata,
    SharedString, Unit,
};

use crate::Error;
use crate::shard;
use crate::snapshot::{
    FamilySnapshot, HistogramSnapshot, MetricKind, SeriesSnapshot, Snapshot, Value,
};

/// Default histogram bucket upper bounds, in seconds, chosen for request
/// latency: dense between 5 ms and 1 s so p50/p95/p99 and a 500 ms alert
/// threshold are resolved well.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0,
    1.5, 2.0, 3.0, 5.0, 10.0,
];

/// Default cap on distinct label sets per metric name.
pub const DEFAULT_MAX_SERIES_PER_METRIC: usize = 1_000;

/// Default time after which a series whose value has not changed is dropped.
pub const DEFAULT_SERIES_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Name of the counter that records registrations rejected by the cardinality guard.
pub const OVERFLOW_METRIC: &str = "rollgate_telemetry_cardinality_overflow_total";

/// Label put on the single series that absorbs label sets over the cap.
pub const OVERFLOW_LABEL: &str = "rollgate_overflow";

/// Settings of a [`MetricsRegistry`], built with [`MetricsConfig::builder`].
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    constant_labels: BTreeMap<String, String>,
    max_series_per_metric: usize,
    idle_timeout: Option<Duration>,
    default_buckets: Arc<[f64]>,
    /// (metric name, bounds), exact sanitized name match.
    buckets: Vec<(String, Arc<[f64]>)>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            constant_labels: BTreeMap::new(),
            max_series_per_metric: DEFAULT_MAX_SERIES_PER_METRIC,
            idle_timeout: Some(DEFAULT_SERIES_IDLE_TIMEOUT),
            default_buckets: Arc::from(LATENCY_BUCKETS),
            buckets: Vec::new(),
        }
    }
}

impl MetricsConfig {
    /// Starts a config with no constant labels, [`LATENCY_BUCKETS`], a cap of
    /// [`DEFAULT_MAX_SERIES_PER_METRIC`] label sets per metric and series
    /// expiry after [`DEFAULT_SERIES_IDLE_TIMEOUT`].
    pub fn builder() -> MetricsConfigBuilder {
        MetricsConfigBuilder {
            config: Self::default(),
            error: None,
        }
    }

    fn buckets_for(&self, name: &str) -> Arc<[f64]> {
        self.buckets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| Arc::clone(b))
            .unwrap_or_else(|| Arc::clone(&self.default_buckets))
    }
}

/// Builder of [`MetricsConfig`]; `build` validates every setting.
#[derive(Debug)]
pub struct MetricsConfigBuilder {
    config: MetricsConfig,
    error: Option<Error>,
}

impl MetricsConfigBuilder {
    /// Adds a label put on every series (`service`, `version`, `cohort`, ...).
    /// Constant labels are reserved: a series label of the same name is
    /// renamed `exported_<name>` (with a WARN), never overriding it.
    pub fn constant_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        if !is_valid_label_name(&name) && self.error.is_none() {
            self.error = Some(Error::Config {
                field: "constant_label",
                reason: format!("{name:?} is not a valid Prometheus label name"),
            });
        }
        self.config.constant_labels.insert(name, value.into());
        self
    }

    /// Caps distinct label sets per metric name; later label sets go to one
    /// overflow series and are counted in [`OVERFLOW_METRIC`]. The first
    /// overflow of each metric logs one WARN naming the metric and the cap.
    pub fn max_series_per_metric(mut self, cap: usize) -> Self {
        self.config.max_series_per_metric = cap;
        self
    }

    /// Drops a series whose value has not changed for `idle` (default
    /// [`DEFAULT_SERIES_IDLE_TIMEOUT`]), so one-off label values do not hold
    /// their place under the cap forever; `None` keeps every series.
    ///
    /// Time is tokio's clock (`tokio::time::Instant`: paused time in tests).
    /// Nothing is added to the recording path: the registry compares each
    /// series' value with the one it saw last when it is read (`snapshot`,
    /// `render`, a scrape) and when a metric reaches its cap, at most every
    /// `idle / 4`; a series is dropped once its value has stayed the same
    /// for `idle` between two such checks, so it lives at least `idle` after
    /// its last change. A series whose handle is still held (a `Counter`
    /// kept in a struct) is never dropped, so no later update is lost. A
    /// dropped series comes back from zero when it is recorded again (a
    /// counter reset to Prometheus); what the overflow series and
    /// [`OVERFLOW_METRIC`] counted stays.
    ///
    /// # Errors
    /// `build` refuses a zero duration.
    pub fn series_idle_timeout(mut self, idle: Option<Duration>) -> Self {
        self.config.idle_timeout = idle;
        self
    }

    /// Sets the bucket upper bounds used by histograms without their own.
    pub fn default_buckets(mut self, bounds: &[f64]) -> Self {
        match validate_buckets(bounds) {
            Ok(b) => self.config.default_buckets = b,
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Sets bucket upper bounds for one histogram (by its exposed name).
    pub fn buckets(mut self, metric: impl Into<String>, bounds: &[f64]) -> Self {
        match validate_buckets(bounds) {
            Ok(b) => self
                .config
                .buckets
                .push((sanitize_metric_name(&metric.into()), b)),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Validates and returns the config.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid label name, a zero cap or bad buckets.
    pub fn build(self) -> Result<MetricsConfig, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.config.max_series_per_metric == 0 {
            return Err(Error::Config {
                field: "max_series_per_metric",
                reason: "must be at least 1".into(),
            });
        }
        if self.config.idle_timeout == Some(Duration::ZERO) {
            return Err(Error::Config {
                field: "series_idle_timeout",
                reason: "must be more than zero (None keeps series forever)".into(),
            });
        }
        Ok(self.config)
    }
}

fn validate_buckets(bounds: &[f64]) -> Result<Arc<[f64]>, Error> {
    let err = |reason: &str| Error::Config {
        field: "histogram_buckets",
        reason: reason.into(),
    };
    if bounds.is_empty() {
        return Err(err("at least one bucket bound is needed"));
    }
    if bounds.iter().any(|b| !b.is_finite()) {
        return Err(err("bounds must be finite (+Inf is implicit)"));
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(err("bounds must be strictly increasing"));
    }
    Ok(Arc::from(bounds))
}

// ---------------------------------------------------------------- cells

/// A counter: shared atomic plus per-thread shards (see `shard`).
#[derive(Debug)]
struct CounterCell {
    shared: AtomicU64,
    shards: Box<[OnceLock<Box<PaddedU64>>]>,
}

/// One cache line per shard, so owners do not false-share.
#[derive(Debug, Default)]
#[repr(align(64))]
struct PaddedU64(AtomicU64);

impl Default for CounterCell {
    fn default() -> Self {
        Self {
            shared: AtomicU64::new(0),
            shards: (0..shard::SHARDS).map(|_| OnceLock::new()).collect(),
        }
    }
}

impl CounterCell {
    fn total(&self) -> u64 {
        self.shards
            .iter()
            .filter_map(OnceLock::get)
            .fold(self.shared.load(Ordering::Relaxed), |acc, s| {
                acc.wrapping_add(s.0.load(Ordering::Relaxed))
            })
    }
}

impl CounterFn for CounterCell {
    #[inline]
    fn increment(&self, value: u64) {
        match shard::slot().and_then(|i| self.shards.get(i)) {
            Some(cell) => {
                let s = cell.get_or_init(Box::default);
                // Only this thread writes this shard: no locked RMW needed.
                s.0.store(
                    s.0.load(Ordering::Relaxed).wrapping_add(value),
                    Ordering::Relaxed,
                );
            }
            None => {
                self.shared.fetch_add(value, Ordering::Relaxed);
            }
        }
    }
    fn absolute(&self, value: u64) {
        let current = self.total();
        if value > current {
            self.shared.fetch_add(value - current, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Default)]
struct GaugeCell(AtomicU64);

impl GaugeCell {
    fn update(&self, f: impl Fn(f64) -> f64) {
        // The closure never returns None, so fetch_update cannot fail.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
    }
}

impl GaugeFn for GaugeCell {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

/// Bucket counts and sum of one shard.
#[derive(Debug)]
#[repr(align(64))]
struct HistShard {
    /// `bounds.len() + 1` buckets; the last one is `+Inf`.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl HistShard {
    fn new(buckets: usize) -> Self {
        Self {
            counts: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }
}

/// Fixed-bucket histogram: per-bucket counts plus the sum, in a shared shard
/// and per-thread shards. The count is the sum of the buckets, so `_count`
/// always equals the `+Inf` bucket.
#[derive(Debug)]
struct HistogramCell {
    bounds: Arc<[f64]>,
    shared: HistShard,
    shards: Box<[OnceLock<Box<HistShard>>]>,
}

impl HistogramCell {
    fn new(bounds: Arc<[f64]>) -> Self {
        let shared = HistShard::new(bounds.len() + 1);
        Self {
            bounds,
            shared,
            shards: (0..shard::SHARDS).map(|_| OnceLock::new()).collect(),
        }
    }

    #[inline]
    fn add(&self, value: f64, n: u64) {
        if value.is_nan() {
            return;
        }
        // A branch-free count (vectorizes) beats a binary search on
        // unpredictable latencies for bucket counts this small.
        let idx = self.bounds.iter().filter(|b| **b < value).count();
        let add = value * n as f64;
        match shard::slot().and_then(|i| self.shards.get(i)) {
            Some(cell) => {
                let s = cell.get_or_init(|| Box::new(HistShard::new(self.bounds.len() + 1)));
                // Only this thread writes this shard: plain load + store.
                if let Some(c) = s.counts.get(idx) {
                    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
                }
                let sum = f64::from_bits(s.sum.load(Ordering::Relaxed)) + add;
                s.sum.store(sum.to_bits(), Ordering::Relaxed);
            }
            None => {
                if let Some(c) = self.shared.counts.get(idx) {
                    c.fetch_add(n, Ordering::Relaxed);
                }
                let _ =
                    self.shared
                        .sum
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                            Some((f64::from_bits(bits) + add).to_bits())
                        });
            }
        }
    }

    /// Number of recorded values (all shards).
    fn count(&self) -> u64 {
        let shared: u64 = self
            .shared
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        self.shards
            .iter()
            .filter_map(OnceLock::get)
            .flat_map(|s| s.counts.iter())
            .fold(shared, |acc, c| acc.wrapping_add(c.load(Ordering::Relaxed)))
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut counts: Vec<u64> = self
            .shared
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let mut sum = f64::from_bits(self.shared.sum.load(Ordering::Relaxed));
        for s in self.shards.iter().filter_map(OnceLock::get) {
            for (total, c) in counts.iter_mut().zip(s.counts.iter()) {
                *total += c.load(Ordering::Relaxed);
            }
            sum += f64::from_bits(s.sum.load(Ordering::Relaxed));
        }
        HistogramSnapshot {
            bounds: self.bounds.to_vec(),
            counts,
            sum,
        }
    }
}

impl HistogramFn for HistogramCell {
    #[inline]
    fn record(&self, value: f64) {
        self.add(value, 1);
    }
    fn record_many(&self, value: f64, count: usize) {
        self.add(value, count as u64);
    }
}

#[derive(Debug, Clone)]
enum Cell {
    Counter(Arc<CounterCell>),
    Gauge(Arc<GaugeCell>),
    Histogram(Arc<HistogramCell>),
}

impl Cell {
    fn kind(&self) -> MetricKind {
        match self {
            Cell::Counter(_) => MetricKind::Counter,
            Cell::Gauge(_) => MetricKind::Gauge,
            Cell::Histogram(_) => MetricKind::Histogram,
        }
    }

    /// Changes whenever the series is recorded to (read when checking for
    /// idle series; never on the recording path).
    fn fingerprint(&self) -> u64 {
        match self {
            Cell::Counter(c) => c.total(),
            Cell::Gauge(g) => g.0.load(Ordering::Relaxed),
            Cell::Histogram(h) => h.count(),
        }
    }

    /// Handles to this cell, the registry's own included.
    fn handles(&self) -> usize {
        match self {
            Cell::Counter(c) => Arc::strong_count(c),
            Cell::Gauge(g) => Arc::strong_count(g),
            Cell::Histogram(h) => Arc::strong_count(h),
        }
    }

    fn value(&self) -> Value {
        match self {
            Cell::Counter(c) => Value::Counter(c.total()),
            Cell::Gauge(g) => Value::Gauge(f64::from_bits(g.0.load(Ordering::Relaxed))),
            Cell::Histogram(h) => Value::Histogram(h.snapshot()),
        }
    }
}

// ---------------------------------------------------------------- registry

/// Passes `Key`'s precomputed hash through (it only calls `write_u64`).
#[derive(Default)]
struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Labels = Vec<(String, String)>;

#[derive(Debug)]
struct Family {
    kind: MetricKind,
    series: BTreeMap<Labels, Series>,
    overflow: Option<Cell>,
    /// Registrations of new label sets rejected by the cardinality guard.
    rejected: u64,
    /// Whether the first overflow was logged.
    warned: bool,
}

/// One stored label set.
#[derive(Debug)]
struct Series {
    cell: Cell,
    /// The index keys that point at `cell` (one per spelling: label order,
    /// sanitizing), removed with it when it expires.
    keys: Vec<Key>,
    /// [`Cell::fingerprint`] at the last check, and when it last changed.
    seen: u64,
    active_at: Instant,
}

impl Series {
    /// Whether a handle outside the registry (a `Counter` kept in a struct)
    /// may still record to the cell: the registry holds one per index key
    /// plus its own.
    fn held(&self) -> bool {
        self.cell.handles() > 1 + self.keys.len()
    }
}

/// What the guard logs, after the registry's locks are released.
#[derive(Debug)]
enum Warning {
    Overflow {
        metric: String,
        cap: usize,
    },
    Renamed {
        metric: String,
        label: String,
        to: String,
        why: &'static str,
    },
}

impl Warning {
    fn emit(&self) {
        match self {
            Warning::Overflow { metric, cap } => tracing::warn!(
                metric = %metric,
                limit = *cap,
                "metric {metric} reached its limit of {cap} label sets: new label sets now \
                 go to its series labelled {OVERFLOW_LABEL}=\"true\" and are counted in \
                 {OVERFLOW_METRIC}; raise the limit with max_series_per_metric (on \
                 rollgate_telemetry::init or MetricsConfig::builder), or drop the label with \
                 unbounded values"
            ),
            Warning::Renamed {
                metric,
                label,
                to,
                why,
            } => tracing::warn!(
                metric = %metric,
                label = %label,
                renamed_to = %to,
                "metric {metric}: label {label} is {why}; it is exposed as {to}"
            ),
        }
    }
}

#[derive(Debug, Default)]
struct Description {
    unit: Option<Unit>,
    help: String,
}

#[derive(Debug, Default)]
struct State {
    /// Exposed (sanitized) name -> family, sorted for deterministic output.
    families: BTreeMap<String, Family>,
    /// Registrations rejected because the name is already used by another kind.
    kind_conflicts: u64,
    /// (metric, label) pairs whose renaming was logged.
    renamed: BTreeSet<(String, String)>,
    /// When idle series were last looked for.
    swept_at: Option<Instant>,
}

#[allow(clippy::mutable_key_type)] // Key's Hash only uses its immutable precomputed hash.
type Index = HashMap<Key, Cell, BuildHasherDefault<PrehashedHasher>>;

/// The in-process metrics store: what the recorder writes, what the
/// Prometheus exposition and [`Snapshot`]s read.
///
/// Cheap to clone (an `Arc`); clones share the same series.
///
/// ```
/// use rollgate_telemetry::{MetricsConfig, MetricsRegistry};
///
/// let config = MetricsConfig::builder().constant_label("service", "shop").build()?;
/// let registry = MetricsRegistry::new(config);
/// let recorder = registry.recorder();
/// metrics::with_local_recorder(&recorder, || {
///     metrics::counter!("orders_total", "cohort" => "canary").increment(3);
///     metrics::histogram!("order_latency_seconds").record(0.120);
/// });
/// let snap = registry.snapshot();
/// assert_eq!(snap.counter("orders_total", &[("cohort", "canary")]), Some(3));
/// let p50 = snap.histogram("order_latency_seconds", &[]).and_then(|h| h.quantile(0.5));
/// assert!(p50.is_some_and(|v| v > 0.1 && v <= 0.15));
/// assert!(registry.render().contains("orders_total{cohort=\"canary\",service=\"shop\"} 3"));
/// # Ok::<(), rollgate_telemetry::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MetricsRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: MetricsConfig,
    index: RwLock<Index>,
    state: RwLock<State>,
    descriptions: RwLock<BTreeMap<String, Description>>,
}

impl Default for MetricsRegistry {
    fn default() -> Self {
        Self::new(MetricsConfig::default())
    }
}

impl MetricsRegistry {
    /// Creates an empty registry.
    pub fn new(config: MetricsConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                index: RwLock::new(Index::default()),
                state: RwLock::new(State::default()),
                descriptions: RwLock::new(BTreeMap::new()),
            }),
        }
    }

    /// A `metrics::Recorder` writing into this registry. Install it with
    /// `metrics::set_global_recorder` (the init builder does) or use it
    /// locally with `metrics::with_local_recorder`.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            registry: self.clone(),
        }
    }

    /// The constant labels put on every series.
    pub fn constant_labels(&self) -> &BTreeMap<String, String> {
        &self.inner.config.constant_labels
    }

    /// Number of stored series (label sets) over all metrics, overflow series
    /// included. Bounded by metrics × (cap + 1).
    pub fn series_count(&self) -> usize {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        state
            .families
            .values()
            .map(|f| f.series.len() + usize::from(f.overflow.is_some()))
            .sum()
    }

    /// Drops the series whose value has not changed for the idle timeout
    /// (see [`MetricsConfigBuilder::series_idle_timeout`]) now, whenever the
    /// last check was; returns how many were dropped. Reads (`snapshot`,
    /// `render`) do this on their own at most every `idle / 4`.
    pub fn expire_idle(&self) -> usize {
        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.sweep(&mut state, Instant::now())
    }

    /// The idle check when one is due.
    fn sweep_if_due(&self, state: &mut State, now: Instant) {
        let Some(idle) = self.inner.config.idle_timeout else {
            return;
        };
        if state
            .swept_at
            .is_none_or(|at| now.saturating_duration_since(at) >= idle / 4)
        {
            self.sweep(state, now);
        }
    }

    /// Marks changed series active and drops the ones idle for the timeout.
    fn sweep(&self, state: &mut State, now: Instant) -> usize {
        let Some(idle) = self.inner.config.idle_timeout else {
            return 0;
        };
        state.swept_at = Some(now);
        // First pass with only the state locked, so lookups of existing
        // series (the `counter!` macro path) go on meanwhile.
        let mut candidates: Vec<(String, Labels)> = Vec::new();
        for (name, family) in &mut state.families {
            for (labels, s) in &mut family.series {
                let fp = s.cell.fingerprint();
                if fp != s.seen {
                    s.seen = fp;
                    s.active_at = now;
                } else if now.saturating_duration_since(s.active_at) >= idle && !s.held() {
                    candidates.push((name.clone(), labels.clone()));
                }
            }
        }
        if candidates.is_empty() {
            return 0;
        }
        // Then with the index locked too (lock order: state, then index, as
        // in register_locked): no lookup can hand out a cell now, so a
        // series neither held nor changed can go without losing an update.
        let mut index = self
            .inner
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut dropped = 0;
        for (name, labels) in candidates {
            let Some(family) = state.families.get_mut(&name) else {
                continue;
            };
            let idle = family
                .series
                .get(&labels)
                .is_some_and(|s| !s.held() && s.cell.fingerprint() == s.seen);
            if let Some(s) = idle.then(|| family.series.remove(&labels)).flatten() {
                for k in &s.keys {
                    index.remove(k);
                }
                dropped += 1;
            }
        }
        state
            .families
            .retain(|_, f| !f.series.is_empty() || f.overflow.is_some());
        dropped
    }

    fn register(&self, key: &Key, kind: MetricKind) -> Option<Cell> {
        {
            let index = self
                .inner
                .index
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(cell) = index.get(key).filter(|c| c.kind() == kind) {
                return Some(cell.clone());
            }
        }
        self.register_slow(key, kind)
    }

    #[cold]
    fn register_slow(&self, key: &Key, kind: MetricKind) -> Option<Cell> {
        let mut warnings = Vec::new();
        let cell = self.register_locked(key, kind, &mut warnings);
        // Logged with no lock held: a subscriber may record metrics itself.
        for w in &warnings {
            w.emit();
        }
        cell
    }

    fn register_locked(
        &self,
        key: &Key,
        kind: MetricKind,
        warnings: &mut Vec<Warning>,
    ) -> Option<Cell> {
        let name = exposed_name(key.name(), kind);
        let constant = &self.inner.config.constant_labels;
        let mut labels: Labels = Vec::with_capacity(key.labels().len());
        let mut renamed = Vec::new();
        for l in key.labels() {
            let mut k = sanitize_label_name(l.key());
            let why = match k.as_str() {
                "le" => Some("reserved for histogram buckets"),
                "quantile" => Some("reserved for summary quantiles"),
                c if constant.contains_key(c) => Some("a constant label of this registry"),
                _ => None,
            };
            if let Some(why) = why {
                let to = format!("exported_{k}");
                renamed.push((std::mem::replace(&mut k, to.clone()), to, why));
            }
            labels.retain(|(n, _)| *n != k);
            labels.push((k, l.value().to_owned()));
        }
        labels.sort();

        let mut state = self
            .inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (label, to, why) in renamed {
            if state.renamed.insert((name.clone(), label.clone())) {
                warnings.push(Warning::Renamed {
                    metric: name.clone(),
                    label,
                    to,
                    why,
                });
            }
        }
        let now = Instant::now();
        let cap = self.inner.config.max_series_per_metric;
        let bounds = (kind == MetricKind::Histogram).then(|| self.inner.config.buckets_for(&name));
        let new_cell = || match (kind, &bounds) {
            (MetricKind::Counter, _) => Cell::Counter(Arc::default()),
            (MetricKind::Histogram, Some(b)) => {
                Cell::Histogram(Arc::new(HistogramCell::new(Arc::clone(b))))
            }
            _ => Cell::Gauge(Arc::default()),
        };
        if name == OVERFLOW_METRIC {
            // The guard's own counter is synthesized; never let users shadow it.
            state.kind_conflicts += 1;
            return None;
        }
        let at_cap = state.families.get(&name).is_some_and(|f| {
            f.kind == kind && f.series.len() >= cap && !f.series.contains_key(&labels)
        });
        if at_cap {
            // Idle series may free a place.
            self.sweep_if_due(&mut state, now);
        }
        let state = &mut *state;
        let family = state
            .families
            .entry(name.clone())
            .or_insert_with(|| Family {
                kind,
                series: BTreeMap::new(),
                overflow: None,
                rejected: 0,
                warned: false,
            });
        if family.kind != kind {
            state.kind_conflicts += 1;
            return None;
        }
        let mut index = self
            .inner
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(series) = family.series.get_mut(&labels) {
            // Same label set under a differently spelled key (label order, sanitizing).
            if index_insert(&mut index, key, &series.cell) {
                series.keys.push(key.clone());
            }
            return Some(series.cell.clone());
        }
        if family.series.len() >= cap {
            family.rejected += 1;
            if !family.warned {
                family.warned = true;
                warnings.push(Warning::Overflow {
                    metric: name.clone(),
                    cap,
                });
            }
            return Some(family.overflow.get_or_insert_with(new_cell).clone());
        }
        let cell = new_cell();
        let mut keys = Vec::new();
        if index_insert(&mut index, key, &cell) {
            keys.push(key.clone());
        }
        family.series.insert(
            labels,
            Series {
                cell: cell.clone(),
                keys,
                seen: cell.fingerprint(),
                active_at: now,
            },
        );
        Some(cell)
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        let mut d = self
            .inner
            .descriptions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        d.insert(
            key.as_str().to_owned(),
            Description {
                unit,
                help: help.into_owned(),
            },
        );
    }

    /// Reads every series now. Deterministic: families sorted by name, series
    /// by label set. Includes [`OVERFLOW_METRIC`] when the guard rejected anything.
    pub fn snapshot(&self) -> Snapshot {
        let descriptions = self
            .inner
            .descriptions
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let help_for = |name: &str, kind: MetricKind| -> (Option<String>, Option<String>) {
            descriptions
                .iter()
                .find(|(raw, _)| exposed_name(raw, kind) == name)
                .map(|(_, d)| (Some(d.help.clone()), d.unit.map(|u| u.as_str().to_owned())))
                .unwrap_or((None, None))
        };
        if self.inner.config.idle_timeout.is_some() {
            let mut state = self
                .inner
                .state
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            self.sweep_if_due(&mut state, Instant::now());
        }
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut families = Vec::with_capacity(state.families.len() + 1);
        let mut overflow_series = Vec::new();
        for (name, family) in &state.families {
            let mut series: Vec<SeriesSnapshot> = family
                .series
                .iter()
                .map(|(labels, s)| SeriesSnapshot {
                    labels: labels.iter().cloned().collect(),
                    value: s.cell.value(),
                })
                .collect();
            if let Some(cell) = &family.overflow {
                series.push(SeriesSnapshot {
                    labels: BTreeMap::from([(OVERFLOW_LABEL.to_owned(), "true".to_owned())]),
                    value: cell.value(),
                });
                overflow_series.push(SeriesSnapshot {
                    labels: BTreeMap::from([("metric".to_owned(), name.clone())]),
                    value: Value::Counter(family.rejected),
                });
            }
            let (help, unit) = help_for(name, family.kind);
            families.push(FamilySnapshot {
                name: name.clone(),
                kind: family.kind,
                help,
                unit,
                series,
            });
        }
        if !overflow_series.is_empty() {
            families.push(FamilySnapshot {
                name: OVERFLOW_METRIC.to_owned(),
                kind: MetricKind::Counter,
                help: Some(
                    "Registrations of new label sets rejected by the cardinality guard; \
                     their values go to the series labelled rollgate_overflow=\"true\""
                        .to_owned(),
                ),
                unit: None,
                series: overflow_series,
            });
            families.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Snapshot {
            constant_labels: self.inner.config.constant_labels.clone(),
            families,
            kind_conflicts: state.kind_conflicts,
        }
    }

    /// Renders the Prometheus text exposition format (version 0.0.4).
    /// The cost depends on the number of series, never on the number of samples.
    pub fn render(&self) -> String {
        self.snapshot().to_prometheus_text()
    }
}

/// The `metrics::Recorder` of a [`MetricsRegistry`].
#[derive(Debug, Clone)]
pub struct Recorder {
    registry: MetricsRegistry,
}

impl Recorder {
    /// The registry this recorder writes to.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.registry.describe(key, unit, description);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.registry.describe(key, unit, description);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.registry.describe(key, unit, description);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.registry.register(key, MetricKind::Counter) {
            Some(Cell::Counter(c)) => Counter::from_arc(c),
            _ => Counter::noop(),
        }
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.registry.register(key, MetricKind::Gauge) {
            Some(Cell::Gauge(g)) => Gauge::from_arc(g),
            _ => Gauge::noop(),
        }
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.registry.register(key, MetricKind::Histogram) {
            Some(Cell::Histogram(h)) => Histogram::from_arc(h),
            _ => Histogram::noop(),
        }
    }
}

/// Points `key` at `cell` unless the key is taken; whether it was inserted.
fn index_insert(index: &mut Index, key: &Key, cell: &Cell) -> bool {
    match index.entry(key.clone()) {
        std::collections::hash_map::Entry::Occupied(_) => false,
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(cell.clone());
            true
        }
    }
}

// ---------------------------------------------------------------- names

/// The name a metric is exposed under: invalid characters become `_`, and
/// counters end in `_total`.
pub(crate) fn exposed_name(raw: &str, kind: MetricKind) -> String {
    let mut name = sanitize_metric_name(raw);
    if kind == MetricKind::Counter && !name.ends_with("_total") {
        name.push_str("_total");
    }
    name
}

pub(crate) fn sanitize_metric_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 1);
    for (i, c) in raw.chars().enumerate() {
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
        }
        out.push(if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            c
        } else {
            '_'
        });
    }
    if out.is_empty() {
        out.push_str("unnamed");
    }
    out
}

fn sanitize_label_name(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 1);
    for (i, c) in raw.chars().enumerate() {
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
        }
        out.push(if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        });
    }
    if out.is_empty() {
        out.push_str("label");
    }
    // `__` names are reserved for Prometheus itself.
    if out.starts_with("__") {
        out.insert(0, 'l');
    }
    out
}

fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with("__") && sanitize_label_name(name) == name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(cap: usize) -> MetricsRegistry {
        let config = MetricsConfig::builder()
            .constant_label("service", "api")
            .max_series_per_metric(cap)
            .build()
            .expect("valid test config");
        MetricsRegistry::new(config)
    }

    #[test]
    fn counters_gauges_and_histograms_are_readable_in_process() {
        let reg = registry(10);
        let rec = reg.recorder();
        metrics::with_local_recorder(&rec, || {
            metrics::counter!("hits", "route" => "/a").increment(2);
            metrics::counter!("hits", "route" => "/a").increment(3);
            metrics::gauge!("inflight").set(4.0);
            metrics::gauge!("inflight").decrement(1.5);
            for v in [0.004, 0.02, 0.02, 0.3] {
                metrics::histogram!("latency_seconds").record(v);
            }
        });
        let snap = reg.snapshot();
        assert_eq!(snap.counter("hits_total", &[("route", "/a")]), Some(5));
        assert_eq!(snap.gauge("inflight", &[]), Some(2.5));
        let h = snap
            .histogram("latency_seconds", &[])
            .expect("histogram exists");
        assert_eq!(h.count(), 4);
        assert!((h.sum - 0.344).abs() < 1e-9);
    }

    #[test]
    fn cardinality_guard_routes_excess_label_sets_to_one_overflow_series() {
        let reg = registry(3);
        let rec = reg.recorder();
        metrics::with_local_recorder(&rec, || {
            for i in 0..10 {
                metrics::counter!("req", "user" => i.to_string()).increment(1);
            }
        });
        let snap = reg.snapshot();
        assert_eq!(reg.series_count(), 4);
        assert_eq!(
            snap.counter("req_total", &[(OVERFLOW_LABEL, "true")]),
            Some(7)
        );
        assert_eq!(
            snap.counter(OVERFLOW_METRIC, &[("metric", "req_total")]),
            Some(7)
        );
        assert_eq!(snap.counter_sum("req_total", &[]), 10);
    }

    #[test]
    fn a_name_reused_with_another_kind_is_dropped_and_counted() {
        let reg = registry(3);
        metrics::with_local_recorder(&reg.recorder(), || {
            metrics::gauge!("thing").set(1.0);
            metrics::histogram!("thing").record(1.0);
        });
        let snap = reg.snapshot();
        assert_eq!(snap.kind_conflicts, 1);
        assert_eq!(snap.gauge("thing", &[]), Some(1.0));
    }

    #[test]
    fn bad_buckets_and_label_names_are_config_errors() {
        let e = MetricsConfig::builder()
            .default_buckets(&[1.0, 0.5])
            .build();
        assert!(matches!(
            e,
            Err(Error::Config {
                field: "histogram_buckets",
                ..
            })
        ));
        let e = MetricsConfig::builder()
            .constant_label("bad-name", "x")
            .build();
        assert!(e.is_err_and(|e| e.to_string().contains("bad-name")));
        let e = MetricsConfig::builder().max_series_per_metric(0).build();
        assert!(e.is_err());
    }

    #[test]
    fn names_are_sanitized_and_counters_get_total_suffix() {
        assert_eq!(
            exposed_name("http.requests", MetricKind::Counter),
            "http_requests_total"
        );
        assert_eq!(exposed_name("9lives", MetricKind::Gauge), "_9lives");
        assert_eq!(sanitize_label_name("__name"), "l__name");
        assert_eq!(sanitize_label_name("a-b"), "a_b");
    }

    #[test]
    fn updates_from_many_threads_are_all_counted() {
        let reg = registry(10);
        let (c, h) = metrics::with_local_recorder(&reg.recorder(), || {
            (metrics::counter!("ops"), metrics::histogram!("lat"))
        });
        // More threads than shards, some exiting while others start.
        let threads: Vec<_> = (0..(shard::SHARDS + 8))
            .map(|t| {
                let (c, h) = (c.clone(), h.clone());
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        c.increment(1);
                        h.record(if (i + t as u64).is_multiple_of(2) {
                            0.02
                        } else {
                            0.3
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("worker thread");
        }
        c.absolute(5); // below the total: no effect
        let snap = reg.snapshot();
        let n = 1000 * (shard::SHARDS as u64 + 8);
        assert_eq!(snap.counter("ops_total", &[]), Some(n));
        let hist = snap.histogram("lat", &[]).expect("histogram");
        assert_eq!(hist.count(), n);
        assert!((hist.sum - n as f64 * 0.16).abs() < 1e-6 * n as f64);
        c.absolute(n + 10);
        assert_eq!(reg.snapshot().counter("ops_total", &[]), Some(n + 10));
    }

    #[test]
    fn histogram_bucket_edges_are_inclusive_upper_bounds() {
        let cell = HistogramCell::new(Arc::from(&[1.0, 2.0][..]));
        cell.record(1.0);
        cell.record(1.5);
        cell.record(2.5);
        cell.record(f64::NAN);
        cell.record_many(0.5, 3);
        assert_eq!(cell.snapshot().counts, vec![4, 1, 1]);
    }
}
