//! The simulated world: a fleet's traffic (modelled), the deployer that
//! switches its targets between versions, and the metric source the real
//! canary judge reads.
//!
//! Traffic is a pure function of the seed, the second and which version each
//! target ran at the start of that second, so it does not depend on the
//! order in which the executor, the gate and the deployer's tasks ran.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_distr::{Binomial, Distribution, Poisson};
use rollgate_canary::{
    CanaryError, Cohort, Counts, Histogram, MetricKind, MetricQuery, MetricSource, Samples,
};
use rollgate_deploy::{Artifact, Deployer, Digest, Error, Readiness, TargetId};
use tokio::time::Instant;

/// The metric names the simulated fleet answers.
pub(crate) const ERRORS: &str = "errors";
/// Request latency, a histogram in milliseconds.
pub(crate) const LATENCY: &str = "latency_ms";

/// Which of the two versions a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    /// What the fleet ran before the rollout (v1).
    Old = 0,
    /// The rollout's artifact (v2).
    New = 1,
}

/// How one version serves requests (modelled).
#[derive(Debug, Clone)]
pub(crate) struct Behaviour {
    /// Probability that a request fails.
    pub error_p: f64,
    /// Probability of each latency bucket (non-cumulative), summing to 1.
    pub bucket_p: Vec<f64>,
}

impl Behaviour {
    /// Log-normal latency with this median and shape, bucketed at `le`.
    pub fn new(error_p: f64, p50_ms: f64, sigma: f64, le: &[f64]) -> Self {
        let mu = p50_ms.ln();
        let cdf = |x: f64| {
            if x.is_infinite() {
                1.0
            } else {
                0.5 * libm::erfc(-(x.ln() - mu) / (sigma * std::f64::consts::SQRT_2))
            }
        };
        let mut prev = 0.0;
        let bucket_p = le
            .iter()
            .map(|&b| {
                let c = cdf(b);
                let p = (c - prev).max(0.0);
                prev = c;
                p
            })
            .collect();
        Self { error_p, bucket_p }
    }
}

/// Requests, failures and latency buckets of one version in one second.
#[derive(Debug, Clone, Default)]
pub(crate) struct Agg {
    pub requests: u64,
    pub errors: u64,
    /// Per bucket, not cumulative.
    pub buckets: Vec<u64>,
}

impl Agg {
    fn add(&mut self, o: &Agg) {
        self.requests += o.requests;
        self.errors += o.errors;
        if self.buckets.len() < o.buckets.len() {
            self.buckets.resize(o.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&o.buckets) {
            *a += b;
        }
    }
}

/// The fleet and everything that happened to it.
#[derive(Debug)]
pub(crate) struct World {
    seed: u64,
    rps: f64,
    /// Latency bucket upper bounds (ms), the last one `+Inf`.
    pub le: Vec<f64>,
    behaviour: [Behaviour; 2],
    targets: Vec<TargetId>,
    running: Vec<Version>,
    /// Every change of version: (seconds since the start, target index, to).
    pub switches: Vec<(f64, usize, Version)>,
    applied: usize,
    on_new: usize,
    /// Generated seconds: `seconds[k]` is `[k, k + 1)`, per version.
    pub seconds: Vec<[Agg; 2]>,
    /// When the rollout was submitted (seconds since the start).
    pub rollout_start: f64,
}

impl World {
    pub fn new(
        seed: u64,
        rps: f64,
        le: Vec<f64>,
        old: Behaviour,
        new: Behaviour,
        targets: Vec<TargetId>,
    ) -> Self {
        let n = targets.len();
        Self {
            seed,
            rps,
            le,
            behaviour: [old, new],
            targets,
            running: vec![Version::Old; n],
            switches: Vec::new(),
            applied: 0,
            on_new: 0,
            seconds: Vec::new(),
            rollout_start: 0.0,
        }
    }

    fn index(&self, t: &TargetId) -> Option<usize> {
        self.targets.binary_search(t).ok()
    }

    fn switch(&mut self, at: f64, i: usize, to: Version) {
        if self.running[i] != to {
            self.running[i] = to;
            self.switches.push((at, i, to));
        }
    }

    /// Generates every whole second that ends at or before `until`.
    pub fn generate_until(&mut self, until: f64) {
        let n = self.targets.len();
        while ((self.seconds.len() + 1) as f64) <= until {
            let k = self.seconds.len();
            // Targets serve, for the whole second, what they ran at its start.
            while let Some(&(at, _, to)) = self.switches.get(self.applied) {
                if at > k as f64 {
                    break;
                }
                match to {
                    Version::New => self.on_new += 1,
                    Version::Old => self.on_new -= 1,
                }
                self.applied += 1;
            }
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            rng.set_stream(k as u64);
            let counts = [n - self.on_new, self.on_new];
            let mut second: [Agg; 2] = Default::default();
            for v in [Version::Old, Version::New] {
                // Each target's requests are Poisson(rps); their sum over the
                // targets on one version is Poisson(rps × targets).
                let lambda = self.rps * counts[v as usize] as f64;
                let requests = if lambda > 0.0 {
                    Poisson::new(lambda).map_or(0.0, |d| d.sample(&mut rng)) as u64
                } else {
                    0
                };
                let b = &self.behaviour[v as usize];
                let errors = binomial(&mut rng, requests, b.error_p);
                // Multinomial over the buckets as a chain of binomials.
                let mut buckets = vec![0u64; b.bucket_p.len()];
                let (mut left, mut p_left) = (requests, 1.0);
                for (j, &p) in b.bucket_p.iter().enumerate() {
                    if left == 0 {
                        break;
                    }
                    let x = if j + 1 == b.bucket_p.len() || p >= p_left {
                        left
                    } else {
                        binomial(&mut rng, left, p / p_left)
                    };
                    buckets[j] = x;
                    left -= x;
                    p_left -= p;
                }
                second[v as usize] = Agg {
                    requests,
                    errors,
                    buckets,
                };
            }
            self.seconds.push(second);
        }
    }

    /// The sum over whole seconds `k` with `start <= k` and `k + 1 <= end`.
    pub fn sum(&self, v: Version, start: f64, end: f64) -> Agg {
        let mut total = Agg {
            buckets: vec![0; self.le.len()],
            ..Agg::default()
        };
        let first = start.max(0.0).ceil() as usize;
        let last = end.max(0.0).floor() as usize; // exclusive
        for s in self
            .seconds
            .get(first..last.min(self.seconds.len()))
            .unwrap_or(&[])
        {
            total.add(&s[v as usize]);
        }
        total
    }
}

fn binomial(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    Binomial::new(n, p).map_or(0, |d| d.sample(rng))
}

/// The shared world, with the simulation's clock origin.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub world: Arc<Mutex<World>>,
    pub origin: Instant,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, World> {
        // A poisoned lock only means a task panicked mid-update; the
        // world's vectors are still whole.
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds since the simulation started, on tokio's (paused) clock.
    pub fn now(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }
}

/// A deployer whose targets are the simulated fleet: a deploy takes
/// `deploy_time` of simulated time, then the target serves the artifact.
pub(crate) struct SimDeployer {
    pub shared: Shared,
    pub deploy_time: Duration,
    pub old: Artifact,
    pub new: Artifact,
    /// Told the time of the first switch to the new version.
    pub onset: tokio::sync::watch::Sender<Option<f64>>,
}

impl SimDeployer {
    fn version_of(&self, d: &Digest) -> Option<Version> {
        if *d == self.old.digest {
            Some(Version::Old)
        } else if *d == self.new.digest {
            Some(Version::New)
        } else {
            None
        }
    }
}

#[async_trait]
impl Deployer for SimDeployer {
    async fn deploy(&self, target: &TargetId, artifact: &Artifact) -> Result<(), Error> {
        let to = self
            .version_of(&artifact.digest)
            .ok_or_else(|| Error::Deploy {
                target: target.clone(),
                reason: format!("the simulated fleet has no build of {artifact}"),
                transient: false,
            })?;
        let i = self
            .shared
            .lock()
            .index(target)
            .ok_or_else(|| Error::Deploy {
                target: target.clone(),
                reason: "not a target of the simulated fleet".into(),
                transient: false,
            })?;
        tokio::time::sleep(self.deploy_time).await;
        let now = self.shared.now();
        self.shared.lock().switch(now, i, to);
        if to == Version::New {
            self.onset.send_if_modified(|o| {
                let first = o.is_none();
                if first {
                    *o = Some(now);
                }
                first
            });
        }
        Ok(())
    }

    async fn current(&self, target: &TargetId) -> Result<Option<Digest>, Error> {
        let w = self.shared.lock();
        let i = w.index(target).ok_or_else(|| Error::Deploy {
            target: target.clone(),
            reason: "not a target of the simulated fleet".into(),
            transient: false,
        })?;
        Ok(Some(match w.running[i] {
            Version::Old => self.old.digest.clone(),
            Version::New => self.new.digest.clone(),
        }))
    }

    async fn readiness(&self, _: &TargetId) -> Result<Readiness, Error> {
        Ok(Readiness::Ready)
    }
}

/// The fleet's metrics as the canary judge sees them: the canary cohort is
/// every request the new version served in the window, the baseline every
/// request the old version served. When no target served the old version
/// in the window (all at once, or the last step), the baseline is the old
/// version's traffic over the same length just before the rollout started.
pub(crate) struct SimSource {
    pub shared: Shared,
}

#[async_trait]
impl MetricSource for SimSource {
    async fn samples(&self, q: &MetricQuery) -> Result<Samples, CanaryError> {
        let fail = |why: String| CanaryError::Source {
            source_name: "simulated fleet".into(),
            metric: q.metric.clone(),
            why,
            cause: None,
        };
        let now = self.shared.now();
        let mut w = self.shared.lock();
        // Only seconds that are over: later switches cannot change them.
        w.generate_until(now.min(q.window.end));
        let (v, mut start, mut end) = match q.cohort {
            Cohort::Baseline => (Version::Old, q.window.start, q.window.end),
            Cohort::Canary => (Version::New, q.window.start, q.window.end),
        };
        let mut agg = w.sum(v, start, end);
        if v == Version::Old && agg.requests == 0 {
            end = w.rollout_start;
            start = end - q.window.secs();
            agg = w.sum(v, start, end);
        }
        match (q.metric.as_str(), q.kind) {
            (ERRORS, MetricKind::Count) => Ok(Samples::Counts(Counts {
                events: agg.errors,
                trials: agg.requests,
                recent: None,
            })),
            (LATENCY, MetricKind::Latency) => {
                let mut acc = 0;
                let cumulative = agg
                    .buckets
                    .iter()
                    .map(|c| {
                        acc += c;
                        acc
                    })
                    .collect();
                Histogram::new(w.le.clone(), cumulative)
                    .map(Samples::Histogram)
                    .map_err(|e| fail(e.to_string()))
            }
            (m, k) => Err(fail(format!(
                "the simulated fleet has \"{ERRORS}\" (count) and \"{LATENCY}\" (latency), not \"{m}\" ({k:?})"
            ))),
        }
    }
}
