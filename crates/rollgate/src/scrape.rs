//! A [`MetricSource`] that needs no server: it scrapes each target's
//! Prometheus text endpoint every `interval` and judges the increases of
//! its counters and histogram buckets over the window asked for.
//!
//! - Increases are computed per series, as Prometheus's `increase()` does:
//!   a value lower than the one before is a counter reset (a restarted
//!   process), counted from zero, never as a negative count. A series that
//!   appears after a target's first successful scrape counts from zero; the
//!   first scrape of a target is only a starting point.
//! - A target with no successful scrape in the window, or whose latest
//!   scrape in it failed, has no data, and then neither has its cohort:
//!   the judge says inconclusive, never promote.
//! - When no target of either cohort answered in the window the source
//!   fails (a gate error: retried, then rolled back after `max_errors`).
//! - Histograms are judged as histograms: each bucket's increase, summed
//!   over the matching series, with its bound times `scale`.
//!
//! Time is seconds since the source was made, on tokio's clock
//! ([`ScrapeSource::now_secs`]), so tests run on paused time.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rollgate_canary::source::{MetricQuery, MetricSource, Window};
use rollgate_canary::{CanaryError, Cohort, Counts, Histogram, Samples};

use crate::exposition;

/// Series of one counter, chosen by exact label values (other labels are summed over).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSelector {
    /// The series name as exposed (`http_requests_total`).
    pub counter: String,
    /// Labels that must match exactly.
    pub labels: BTreeMap<String, String>,
}

/// How one analysis metric is read from the exposition.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricMapping {
    /// A histogram family: `<family>_bucket{le}` increases, judged as a histogram.
    Histogram {
        /// The family name (`http_request_duration_seconds`).
        family: String,
        /// Multiplies every value (1000: seconds to milliseconds).
        scale: f64,
        /// Labels that must match exactly; others are summed over.
        labels: BTreeMap<String, String>,
    },
    /// Events out of trials, each the increase of a counter.
    Count {
        /// The events (errors).
        events: CounterSelector,
        /// The trials (requests).
        trials: CounterSelector,
    },
}

/// A target to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    /// The target's name (as in the plan).
    pub name: String,
    /// Its exposition URL (`http://127.0.0.1:18081/metrics`).
    pub url: String,
}

#[derive(Debug, Clone, PartialEq)]
enum SelKind {
    Bucket,
    Counter,
}

#[derive(Debug, Clone)]
struct Selector {
    name: String,
    labels: BTreeMap<String, String>,
    kind: SelKind,
}

/// One successful scrape: per selector, per series (labels minus `le`, and
/// `le` for buckets), the value.
type Snapshot = Vec<BTreeMap<(String, u64), f64>>;

#[derive(Debug)]
struct Scrape {
    t: f64,
    result: Result<Snapshot, String>,
}

#[derive(Debug)]
struct Inner {
    targets: Vec<ScrapeTarget>,
    selectors: Vec<Selector>,
    mappings: BTreeMap<String, (MetricMapping, Vec<usize>)>,
    client: reqwest::Client,
    start: tokio::time::Instant,
    retention: usize,
    history: Mutex<BTreeMap<String, VecDeque<Scrape>>>,
}

/// Scrapes targets' `/metrics` pages; [`start`](Self::start) runs the loop,
/// [`cohorts`](Self::cohorts) gives the [`MetricSource`] for one judgement.
///
/// ```
/// use std::collections::BTreeMap;
/// use rollgate::scrape::{MetricMapping, ScrapeSource, ScrapeTarget};
/// let src = ScrapeSource::new(
///     vec![ScrapeTarget { name: "dns-1".into(), url: "http://127.0.0.1:18081/metrics".into() }],
///     [("latency_ms".to_string(), MetricMapping::Histogram {
///         family: "http_request_duration_seconds".into(),
///         scale: 1000.0,
///         labels: BTreeMap::new(),
///     })].into(),
/// )?;
/// # let _ = src;
/// # Ok::<(), rollgate::canary::CanaryError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ScrapeSource {
    inner: Arc<Inner>,
    task: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
}

impl Drop for ScrapeSource {
    fn drop(&mut self) {
        // The last handle stops the loop.
        if Arc::strong_count(&self.task) == 1
            && let Some(h) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            h.abort();
        }
    }
}

fn source_err(metric: &str, why: impl Into<String>) -> CanaryError {
    CanaryError::Source {
        source_name: "scrape".into(),
        metric: metric.to_string(),
        why: why.into(),
        cause: None,
    }
}

impl ScrapeSource {
    /// A source over `targets` reading `mappings` (analysis metric name → mapping).
    /// Call [`start`](Self::start) to begin scraping.
    pub fn new(
        targets: Vec<ScrapeTarget>,
        mappings: BTreeMap<String, MetricMapping>,
    ) -> Result<Self, CanaryError> {
        let mut selectors = Vec::new();
        let mut index = BTreeMap::new();
        for (name, m) in mappings {
            let sels: Vec<Selector> = match &m {
                MetricMapping::Histogram { family, labels, .. } => vec![Selector {
                    name: format!("{family}_bucket"),
                    labels: labels.clone(),
                    kind: SelKind::Bucket,
                }],
                MetricMapping::Count { events, trials } => [events, trials]
                    .into_iter()
                    .map(|c| Selector {
                        name: c.counter.clone(),
                        labels: c.labels.clone(),
                        kind: SelKind::Counter,
                    })
                    .collect(),
            };
            let ids = sels
                .into_iter()
                .map(|s| {
                    selectors.push(s);
                    selectors.len() - 1
                })
                .collect();
            index.insert(name, (m, ids));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| source_err("*", format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                targets,
                selectors,
                mappings: index,
                client,
                start: tokio::time::Instant::now(),
                retention: 4096,
                history: Mutex::new(BTreeMap::new()),
            }),
            task: Arc::new(Mutex::new(None)),
        })
    }

    /// Seconds since the source was made (its timeline).
    pub fn now_secs(&self) -> f64 {
        self.inner.start.elapsed().as_secs_f64()
    }

    /// Scrapes every target now, once, recording the result.
    pub async fn scrape_once(&self) {
        let t = self.now_secs();
        let inner = &self.inner;
        let results =
            futures::future::join_all(inner.targets.iter().map(|tg| inner.scrape(tg))).await;
        let mut h = inner.history.lock().unwrap_or_else(|p| p.into_inner());
        for (tg, result) in inner.targets.iter().zip(results) {
            if let Err(e) = &result {
                tracing::debug!(target: "rollgate::scrape", target_name = %tg.name, error = %e, "scrape failed");
            }
            let q = h.entry(tg.name.clone()).or_default();
            q.push_back(Scrape { t, result });
            while q.len() > inner.retention {
                q.pop_front();
            }
        }
    }

    /// Starts scraping every `interval` in the background (once; later calls
    /// do nothing). The loop ends when the last clone is dropped.
    pub fn start(&self, interval: Duration) {
        let mut task = self.task.lock().unwrap_or_else(|p| p.into_inner());
        if task.is_some() {
            return;
        }
        let me = ScrapeSource {
            inner: Arc::clone(&self.inner),
            task: Arc::new(Mutex::new(None)),
        };
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                me.scrape_once().await;
            }
        });
        *task = Some(handle.abort_handle());
    }

    /// The source for one judgement: `canary` and `baseline` target names;
    /// with `baseline_window`, the baseline is read over that window instead
    /// of the one asked for (the last phase, when no target is left on the
    /// previous artifact).
    pub fn cohorts(
        &self,
        baseline: Vec<String>,
        canary: Vec<String>,
        baseline_window: Option<Window>,
    ) -> CohortView {
        CohortView {
            source: self.clone(),
            baseline,
            canary,
            baseline_window,
        }
    }

    /// Why each target of `targets` has no data in `window` (empty: all have data).
    pub fn unmeasured(&self, targets: &[String], window: Window) -> Vec<(String, String)> {
        let h = self.inner.history.lock().unwrap_or_else(|p| p.into_inner());
        targets
            .iter()
            .filter_map(|t| {
                let why = match h.get(t) {
                    None => "never scraped".to_string(),
                    Some(q) => match points(q, window) {
                        Ok(_) => return None,
                        Err(why) => why,
                    },
                };
                let url = self
                    .inner
                    .targets
                    .iter()
                    .find(|x| &x.name == t)
                    .map_or("", |x| x.url.as_str());
                Some((t.clone(), format!("{url}: {why}")))
            })
            .collect()
    }
}

impl Inner {
    async fn scrape(&self, target: &ScrapeTarget) -> Result<Snapshot, String> {
        let resp = self
            .client
            .get(&target.url)
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let body = resp.text().await.map_err(|e| error_chain(&e))?;
        let page = exposition::parse(&body).map_err(|e| format!("not an exposition page: {e}"))?;
        let mut snap: Snapshot = vec![BTreeMap::new(); self.selectors.len()];
        for s in &page.samples {
            for (i, sel) in self.selectors.iter().enumerate() {
                if s.name != sel.name
                    || !sel
                        .labels
                        .iter()
                        .all(|(k, v)| s.label(k) == Some(v.as_str()))
                {
                    continue;
                }
                let mut key = String::new();
                let mut le = f64::NAN;
                for (k, v) in &s.labels {
                    if sel.kind == SelKind::Bucket && *k == "le" {
                        le = match v.as_ref() {
                            "+Inf" | "Inf" => f64::INFINITY,
                            x => x.parse().unwrap_or(f64::NAN),
                        };
                        continue;
                    }
                    key.push_str(k);
                    key.push('=');
                    key.push_str(v);
                    key.push('\u{1f}');
                }
                if sel.kind == SelKind::Bucket && le.is_nan() {
                    continue; // a bucket without a readable bound
                }
                if !s.value.is_finite() || s.value < 0.0 {
                    continue;
                }
                snap[i].insert((key, le.to_bits()), s.value);
            }
        }
        Ok(snap)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let m = x.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = x.source();
    }
    s
}

/// The successful scrapes that judge `window`: the last one at or before its
/// start (if any) and those inside it; an error when the target has no data.
fn points(q: &VecDeque<Scrape>, w: Window) -> Result<Vec<&Snapshot>, String> {
    let mut anchor = None;
    let mut inside = Vec::new();
    let mut last_inside: Option<&Scrape> = None;
    for s in q {
        if s.t <= w.start {
            if let Ok(snap) = &s.result {
                anchor = Some(snap);
            }
        } else if s.t <= w.end {
            last_inside = Some(s);
            if let Ok(snap) = &s.result {
                inside.push(snap);
            }
        }
    }
    match last_inside {
        None => return Err("not scraped in the window".into()),
        Some(Scrape { result: Err(e), .. }) => return Err(format!("latest scrape failed: {e}")),
        Some(_) => {}
    }
    let mut out: Vec<&Snapshot> = anchor.into_iter().collect();
    out.extend(inside);
    if out.len() < 2 {
        return Err("one successful scrape only; an increase needs two".into());
    }
    Ok(out)
}

/// Per series of selector `sel`, the increase over `pts` (resets counted from zero).
#[cfg(test)]
fn increases(pts: &[&Snapshot], sel: usize) -> BTreeMap<(String, u64), f64> {
    let mut inc: BTreeMap<(String, u64), f64> = BTreeMap::new();
    each_increase(pts, sel, |k, d| *inc.entry(k.clone()).or_default() += d);
    inc
}

/// Calls `add(series, d)` for each step `d` of each series of selector
/// `sel` over `pts`: resets count from zero, a series born after the first
/// scrape from zero, the first scrape is only a starting point. No key is
/// copied (this runs for every target and scrape of a bake).
fn each_increase<'a>(
    pts: &[&'a Snapshot],
    sel: usize,
    mut add: impl FnMut(&'a (String, u64), f64),
) {
    let mut last: BTreeMap<&'a (String, u64), f64> = BTreeMap::new();
    for (i, snap) in pts.iter().enumerate() {
        for (k, &v) in &snap[sel] {
            let d = match last.insert(k, v) {
                Some(p) if v >= p => v - p,
                Some(_) => v,       // reset: the process restarted
                None if i > 0 => v, // born after the first scrape
                None => 0.0,        // the starting point
            };
            add(k, d);
        }
    }
}

/// A [`MetricSource`] over two named cohorts of a [`ScrapeSource`].
#[derive(Debug, Clone)]
pub struct CohortView {
    source: ScrapeSource,
    baseline: Vec<String>,
    canary: Vec<String>,
    baseline_window: Option<Window>,
}

#[async_trait]
impl MetricSource for CohortView {
    async fn samples(&self, q: &MetricQuery) -> Result<Samples, CanaryError> {
        let inner = &self.source.inner;
        let (m, sels) = inner
            .mappings
            .get(&q.metric)
            .ok_or_else(|| source_err(&q.metric, "no mapping is configured for it"))?;
        let (targets, window) = match q.cohort {
            Cohort::Baseline => (&self.baseline, self.baseline_window.unwrap_or(q.window)),
            Cohort::Canary => (&self.canary, q.window),
        };
        let h = inner.history.lock().unwrap_or_else(|p| p.into_inner());
        // No endpoint answering on either cohort: the source cannot judge at all.
        let answered = |names: &[String], w: Window| {
            names
                .iter()
                .any(|t| h.get(t).is_some_and(|hq| points(hq, w).is_ok()))
        };
        if !answered(&self.canary, q.window)
            && !answered(&self.baseline, self.baseline_window.unwrap_or(q.window))
        {
            let all: Vec<&str> = self
                .baseline
                .iter()
                .chain(&self.canary)
                .map(String::as_str)
                .collect();
            return Err(source_err(
                &q.metric,
                format!(
                    "no target answered a scrape in [{:.1}s, {:.1}s): {}",
                    q.window.start,
                    q.window.end,
                    all.join(", ")
                ),
            ));
        }
        let empty = || {
            // The bucket bounds this family has on any target.
            let mut bounds: Vec<f64> = Vec::new();
            for hq in h.values() {
                if let Some(Scrape {
                    result: Ok(snap), ..
                }) = hq.iter().rev().find(|x| x.result.is_ok())
                {
                    bounds.extend(snap[sels[0]].keys().map(|(_, le)| f64::from_bits(*le)));
                }
            }
            no_data(m, &bounds)
        };
        let mut per_target = Vec::with_capacity(targets.len());
        for t in targets {
            match h.get(t).map(|hq| points(hq, window)) {
                Some(Ok(p)) => per_target.push(p),
                // One unmeasured target leaves its cohort without data.
                _ => return Ok(empty()),
            }
        }
        if per_target.is_empty() {
            return Ok(empty());
        }
        Ok(match m {
            MetricMapping::Histogram { scale, .. } => {
                let mut by_le: BTreeMap<u64, f64> = BTreeMap::new();
                for pts in &per_target {
                    each_increase(pts, sels[0], |(_, le), d| {
                        *by_le.entry(*le).or_default() += d;
                    });
                }
                histogram_samples(&by_le, *scale, &q.metric)?
            }
            MetricMapping::Count { .. } => {
                let total = |sel: usize| -> f64 {
                    per_target
                        .iter()
                        .map(|pts| {
                            let mut sum = 0.0;
                            each_increase(pts, sel, |_, d| sum += d);
                            sum
                        })
                        .sum()
                };
                Samples::Counts(Counts {
                    events: total(sels[0]).round() as u64,
                    trials: total(sels[1]).round() as u64,
                    recent: None,
                })
            }
        })
    }
}

/// Cumulative bucket increases (by `le` bits) as a histogram sample, its
/// bounds times `scale`. Increases of separate series can round unevenly:
/// a cumulative count never goes below the one before it.
pub(crate) fn histogram_samples(
    cumulative: &BTreeMap<u64, f64>,
    scale: f64,
    metric: &str,
) -> Result<Samples, CanaryError> {
    let mut b: Vec<(f64, f64)> = cumulative
        .iter()
        .map(|(le, c)| (f64::from_bits(*le), *c))
        .collect();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    if b.last().is_none_or(|l| l.0 != f64::INFINITY) {
        // No +Inf series: the last bucket stands for every observation.
        let last = b.last().map_or(0.0, |l| l.1);
        b.push((f64::INFINITY, last));
    }
    let mut le = Vec::with_capacity(b.len());
    let mut counts = Vec::with_capacity(b.len());
    let mut prev = 0.0_f64;
    for (bound, c) in b {
        let c = c.round().max(prev);
        prev = c;
        le.push(if bound.is_finite() {
            bound * scale
        } else {
            bound
        });
        counts.push(c);
    }
    Histogram::from_f64_counts(le, &counts)
        .map(Samples::Histogram)
        .map_err(|e| source_err(metric, format!("buckets of {metric}: {e}")))
}

/// A cohort without data, in the shape of `m`: for a histogram, zero
/// counts on `bounds` (the family's `le` values seen anywhere, unscaled), so
/// that it lines up with the other cohort's buckets.
pub(crate) fn no_data(m: &MetricMapping, bounds: &[f64]) -> Samples {
    match m {
        MetricMapping::Histogram { scale, .. } => {
            let mut le: Vec<f64> = bounds
                .iter()
                .filter(|b| b.is_finite())
                .map(|b| b * scale)
                .collect();
            le.sort_by(f64::total_cmp);
            le.dedup();
            if le.is_empty() {
                le.push(1.0);
            }
            le.push(f64::INFINITY);
            let zeros = vec![0; le.len()];
            Histogram::new(le, zeros).map_or(Samples::Values(Vec::new()), Samples::Histogram)
        }
        MetricMapping::Count { .. } => Samples::Counts(Counts::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(values: &[((&str, f64), f64)]) -> Snapshot {
        vec![
            values
                .iter()
                .map(|((k, le), v)| ((k.to_string(), le.to_bits()), *v))
                .collect(),
        ]
    }

    #[test]
    fn resets_count_from_zero_never_negative() {
        let a = snap(&[(("r=a", 1.0), 100.0)]);
        let b = snap(&[(("r=a", 1.0), 130.0)]);
        let restarted = snap(&[(("r=a", 1.0), 7.0)]);
        let c = snap(&[(("r=a", 1.0), 20.0), (("r=b", 1.0), 4.0)]);
        let inc = increases(&[&a, &b, &restarted, &c], 0);
        assert_eq!(
            inc[&("r=a".to_string(), 1.0f64.to_bits())],
            30.0 + 7.0 + 13.0
        );
        // Born after the first scrape: counted from zero.
        assert_eq!(inc[&("r=b".to_string(), 1.0f64.to_bits())], 4.0);
        // The first scrape alone is a starting point.
        assert_eq!(increases(&[&c], 0).values().sum::<f64>(), 0.0);
    }

    #[test]
    fn buckets_become_a_histogram_with_scaled_bounds() {
        let cum: BTreeMap<u64, f64> = [
            (0.01f64.to_bits(), 2.0),
            (0.1f64.to_bits(), 4.0),
            (f64::INFINITY.to_bits(), 5.0),
        ]
        .into();
        let Samples::Histogram(h) = histogram_samples(&cum, 1000.0, "latency_ms").expect("valid")
        else {
            panic!("not a histogram");
        };
        assert_eq!(h.upper_bounds(), &[10.0, 100.0, f64::INFINITY]);
        assert_eq!(h.cumulative_counts(), &[2, 4, 5]);
        // Uneven rounding never makes a cumulative count go down; a missing
        // +Inf bucket is added with the last count.
        let cum: BTreeMap<u64, f64> = [(0.01f64.to_bits(), 2.4), (0.1f64.to_bits(), 2.2)].into();
        let Samples::Histogram(h) = histogram_samples(&cum, 1.0, "x").expect("valid") else {
            panic!("not a histogram");
        };
        assert_eq!(h.cumulative_counts(), &[2, 2, 2]);
        assert_eq!(h.upper_bounds().last(), Some(&f64::INFINITY));
    }

    #[test]
    fn a_failed_latest_scrape_or_a_single_one_is_no_data() {
        let w = Window::new(10.0, 20.0).expect("window");
        let ok = |t| Scrape {
            t,
            result: Ok(snap(&[])),
        };
        let bad = |t| Scrape {
            t,
            result: Err("connection refused".into()),
        };
        let q: VecDeque<Scrape> = [ok(9.0), ok(12.0), bad(15.0)].into();
        assert!(points(&q, w).unwrap_err().contains("connection refused"));
        let q: VecDeque<Scrape> = [ok(9.0), bad(12.0), ok(15.0)].into();
        assert_eq!(points(&q, w).map(|p| p.len()), Ok(2));
        let q: VecDeque<Scrape> = [bad(9.0), ok(15.0)].into();
        assert!(points(&q, w).is_err());
        let q: VecDeque<Scrape> = [ok(1.0)].into();
        assert!(points(&q, w).unwrap_err().contains("not scraped"));
    }

    fn closed_port() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let a = l.local_addr().expect("addr");
        drop(l);
        format!("http://{a}/metrics")
    }

    #[tokio::test]
    async fn no_endpoint_answering_on_either_cohort_is_a_source_error() {
        let targets = vec![
            ScrapeTarget {
                name: "a".into(),
                url: closed_port(),
            },
            ScrapeTarget {
                name: "b".into(),
                url: closed_port(),
            },
        ];
        let src = ScrapeSource::new(
            targets,
            [(
                "errors".to_string(),
                MetricMapping::Count {
                    events: CounterSelector {
                        counter: "e_total".into(),
                        labels: BTreeMap::new(),
                    },
                    trials: CounterSelector {
                        counter: "t_total".into(),
                        labels: BTreeMap::new(),
                    },
                },
            )]
            .into(),
        )
        .expect("source");
        src.scrape_once().await;
        src.scrape_once().await;
        let w = Window::new(-1.0, src.now_secs() + 1.0).expect("window");
        let q = MetricQuery {
            metric: "errors".into(),
            kind: rollgate_canary::MetricKind::Count,
            cohort: Cohort::Canary,
            window: w,
        };
        let view = src.cohorts(vec!["a".into()], vec!["b".into()], None);
        let e = view.samples(&q).await.expect_err("nobody answers");
        assert!(e.to_string().contains("no target answered"), "{e}");
        let why = src.unmeasured(&["a".into()], w);
        assert_eq!(why.len(), 1);
        assert!(why[0].1.contains("latest scrape failed"), "{why:?}");
    }
}
