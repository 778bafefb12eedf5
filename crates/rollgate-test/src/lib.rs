#![doc = include_str!("../README.md")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rollgate_deploy::{
    Artifact, Created, Decision, Deployer, Digest, Error, Event, EventRecord, Fence, Gate,
    GateContext, LeaseInfo, Notification, NotificationId, Notifier, NotifyKind, Outgoing,
    Readiness, RolloutId, RolloutRequest, RolloutSummary, SendError, StateStore, TargetId, Writer,
};

pub mod chaos;
pub mod conformance;
pub mod invariants;
pub mod process;
pub mod tls;

/// The path of a helper script kept in this crate's `scripts/` folder, for
/// tests that start real servers on loopback: `prometheus.sh` (a throwaway
/// Prometheus, from Debian's package) and `canary-exporter.sh` (a tiny
/// exporter for it to scrape). Shared here so that every other crate's tests
/// stay inside their own directory.
///
/// ```
/// let sh = rollgate_test::script("prometheus.sh");
/// assert!(sh.is_file());
/// ```
pub fn script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// A fault injected on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every deploy fails (transient, so it is retried, and fails again).
    FailAlways(String),
    /// The first `n` deploy attempts fail, later ones succeed.
    FailTimes(u32),
    /// Deploys succeed but the target never reports ready while it runs this digest.
    NeverReadyOn(Digest),
    /// Deploys of this digest fail; others succeed.
    FailArtifact(Digest),
}

#[derive(Default)]
struct FakeState {
    running: BTreeMap<TargetId, Artifact>,
    faults: BTreeMap<TargetId, Fault>,
    attempts: BTreeMap<TargetId, u32>,
    log: Vec<(TargetId, Digest)>,
    delay: Duration,
}

/// A deployer that keeps what each target runs in memory.
#[derive(Default, Clone)]
pub struct FakeDeployer {
    inner: Arc<Mutex<FakeState>>,
}

impl FakeDeployer {
    /// No target runs anything.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every one of `targets` run `artifact` already.
    pub fn with_running<'a>(
        self,
        targets: impl IntoIterator<Item = &'a TargetId>,
        artifact: &Artifact,
    ) -> Self {
        {
            let mut g = self.lock();
            for t in targets {
                g.running.insert(t.clone(), artifact.clone());
            }
        }
        self
    }

    /// Each deploy takes this long (on tokio's clock).
    pub fn with_delay(self, delay: Duration) -> Self {
        self.lock().delay = delay;
        self
    }

    /// Injects a fault on `target`.
    pub fn set_fault(&self, target: &TargetId, fault: Fault) {
        self.lock().faults.insert(target.clone(), fault);
    }

    /// The version label `target` runs.
    pub fn version_of(&self, target: &TargetId) -> Option<String> {
        self.lock().running.get(target).map(|a| a.version.clone())
    }

    /// What every target runs.
    pub fn snapshot(&self) -> BTreeMap<TargetId, Digest> {
        self.lock()
            .running
            .iter()
            .map(|(t, a)| (t.clone(), a.digest.clone()))
            .collect()
    }

    /// Successful deploys, in order.
    pub fn deploy_log(&self) -> Vec<(TargetId, Digest)> {
        self.lock().log.clone()
    }

    /// How many deploy attempts `target` saw (successful or not).
    pub fn attempts(&self, target: &TargetId) -> u32 {
        self.lock().attempts.get(target).copied().unwrap_or(0)
    }
}

#[async_trait]
impl Deployer for FakeDeployer {
    async fn deploy(&self, target: &TargetId, artifact: &Artifact) -> Result<(), Error> {
        let delay = self.lock().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut g = self.lock();
        let attempt = {
            let a = g.attempts.entry(target.clone()).or_insert(0);
            *a += 1;
            *a
        };
        let fail = match g.faults.get(target) {
            Some(Fault::FailAlways(why)) => Some(why.clone()),
            Some(Fault::FailTimes(n)) if attempt <= *n => {
                Some(format!("injected failure {attempt}/{n}"))
            }
            Some(Fault::FailArtifact(d)) if *d == artifact.digest => {
                Some(format!("{} is broken here", artifact.version))
            }
            _ => None,
        };
        if let Some(reason) = fail {
            return Err(Error::Deploy {
                target: target.clone(),
                reason,
                transient: true,
            });
        }
        g.running.insert(target.clone(), artifact.clone());
        g.log.push((target.clone(), artifact.digest.clone()));
        Ok(())
    }

    async fn current(&self, target: &TargetId) -> Result<Option<Digest>, Error> {
        Ok(self.lock().running.get(target).map(|a| a.digest.clone()))
    }

    async fn readiness(&self, target: &TargetId) -> Result<Readiness, Error> {
        let g = self.lock();
        Ok(match (g.faults.get(target), g.running.get(target)) {
            (Some(Fault::NeverReadyOn(d)), Some(a)) if a.digest == *d => {
                Readiness::NotReady("injected: health check failing".into())
            }
            _ => Readiness::Ready,
        })
    }
}

/// A gate that answers by phase index (default: promote), or fails.
#[derive(Default, Clone)]
pub struct ScriptedGate {
    script: Arc<Mutex<BTreeMap<usize, Result<Decision, String>>>>,
    calls: Arc<AtomicU64>,
}

impl ScriptedGate {
    /// Promotes every phase.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers `decision` at `phase`.
    pub fn at(self, phase: usize, decision: Decision) -> Self {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(phase, Ok(decision));
        self
    }

    /// Fails at `phase` with `error`.
    pub fn failing_at(self, phase: usize, error: &str) -> Self {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(phase, Err(error.into()));
        self
    }

    /// How many times it was asked.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Gate for ScriptedGate {
    async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        match script.get(&at.phase) {
            Some(Ok(d)) => Ok(d.clone()),
            Some(Err(e)) => Err(Error::Gate(e.clone())),
            None => Ok(Decision::Promote(vec![format!(
                "phase {} scripted to pass",
                at.phase
            )])),
        }
    }
}

/// A router that remembers which set serves (blue-green).
#[derive(Default, Clone)]
pub struct FakeRouter {
    active: Arc<Mutex<Option<Vec<TargetId>>>>,
}

impl FakeRouter {
    /// No switch yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set that serves now, if a switch happened.
    pub fn active(&self) -> Option<Vec<TargetId>> {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl rollgate_deploy::Router for FakeRouter {
    async fn switch(&self, _service: &str, active: &[TargetId]) -> Result<(), Error> {
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = Some(active.to_vec());
        Ok(())
    }
}

/// When a [`CrashingStore`] fails its chosen append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// The append does not land (killed before the write).
    BeforeWrite,
    /// The append lands but the caller never hears (killed after the write).
    AfterWrite,
}

/// A store that fails its `n`-th append (1-based), simulating a controller
/// killed there. Every later call fails too, as a dead process makes none.
pub struct CrashingStore {
    inner: Arc<dyn StateStore>,
    crash_at: u64,
    point: CrashPoint,
    appends: AtomicU64,
}

impl CrashingStore {
    /// Wraps `inner`; the `crash_at`-th append fails at `point`.
    pub fn new(inner: Arc<dyn StateStore>, crash_at: u64, point: CrashPoint) -> Self {
        Self {
            inner,
            crash_at,
            point,
            appends: AtomicU64::new(0),
        }
    }

    /// How many appends were attempted so far.
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::SeqCst)
    }

    /// Whether the crash happened.
    pub fn crashed(&self) -> bool {
        self.appends.load(Ordering::SeqCst) >= self.crash_at
    }

    fn dead(&self) -> Result<(), Error> {
        if self.crashed() {
            Err(Error::Store(
                "injected crash: controller is dead".into(),
                None,
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl StateStore for CrashingStore {
    async fn create(&self, req: &RolloutRequest) -> Result<Created, Error> {
        self.dead()?;
        self.inner.create(req).await
    }
    async fn find_key(&self, key: &str) -> Result<Option<RolloutId>, Error> {
        self.dead()?;
        self.inner.find_key(key).await
    }
    async fn request(&self, id: RolloutId) -> Result<RolloutRequest, Error> {
        self.dead()?;
        self.inner.request(id).await
    }
    async fn append_notifying(
        &self,
        id: RolloutId,
        writer: Writer<'_>,
        events: &[Event],
        notify: &[Option<NotifyKind>],
    ) -> Result<u64, Error> {
        self.dead()?;
        let n = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.crash_at {
            if self.point == CrashPoint::AfterWrite {
                self.inner
                    .append_notifying(id, writer, events, notify)
                    .await?;
            }
            return Err(Error::Store(format!("injected crash at append {n}"), None));
        }
        self.inner
            .append_notifying(id, writer, events, notify)
            .await
    }
    async fn events(&self, id: RolloutId, after: u64) -> Result<Vec<EventRecord>, Error> {
        self.dead()?;
        self.inner.events(id, after).await
    }
    async fn lease(&self, id: RolloutId, owner: &str, ttl: Duration) -> Result<Fence, Error> {
        self.dead()?;
        self.inner.lease(id, owner, ttl).await
    }
    async fn release(&self, id: RolloutId, fence: Fence) -> Result<(), Error> {
        // A killed process releases nothing.
        self.dead()?;
        self.inner.release(id, fence).await
    }
    async fn lease_info(&self, id: RolloutId) -> Result<Option<LeaseInfo>, Error> {
        self.inner.lease_info(id).await
    }
    async fn break_lease(&self, id: RolloutId, owner: &str) -> Result<(), Error> {
        self.inner.break_lease(id, owner).await
    }
    async fn unfinished(&self) -> Result<Vec<RolloutId>, Error> {
        self.inner.unfinished().await
    }
    async fn unfinished_leases(&self) -> Result<Vec<rollgate_deploy::UnfinishedRollout>, Error> {
        self.inner.unfinished_leases().await
    }
    async fn list(&self, service: Option<&str>) -> Result<Vec<RolloutSummary>, Error> {
        self.inner.list(service).await
    }
    async fn register_artifact(&self, artifact: &Artifact) -> Result<(), Error> {
        self.dead()?;
        self.inner.register_artifact(artifact).await
    }
    async fn artifact(&self, digest: &Digest) -> Result<Option<Artifact>, Error> {
        self.dead()?;
        self.inner.artifact(digest).await
    }
    async fn claim_notifications(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Notification>, Error> {
        self.dead()?;
        self.inner.claim_notifications(owner, ttl, limit).await
    }
    async fn notification_delivered(&self, id: NotificationId, owner: &str) -> Result<(), Error> {
        self.dead()?;
        self.inner.notification_delivered(id, owner).await
    }
    async fn notification_failed(
        &self,
        id: NotificationId,
        owner: &str,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), Error> {
        self.dead()?;
        self.inner
            .notification_failed(id, owner, error, retry_in)
            .await
    }
    async fn renew_notification_claim(
        &self,
        id: NotificationId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        self.dead()?;
        self.inner.renew_notification_claim(id, owner, ttl).await
    }
    async fn notifications(&self, rollout: Option<RolloutId>) -> Result<Vec<Notification>, Error> {
        self.inner.notifications(rollout).await
    }
}

/// `n` targets named `t1`..`tn`.
pub fn targets(n: usize) -> Vec<TargetId> {
    (1..=n)
        .map(|i| TargetId::try_from(format!("t{i}")).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// An artifact whose digest is the hash of its version label.
pub fn artifact(version: &str) -> Artifact {
    Artifact::new(version, Digest::of_bytes(version.as_bytes()))
}

/// A [`Notifier`] that records what it is sent and fails on demand: the
/// first `fail_first` attempts of every event id and destination fail, and
/// every attempt to a URL marked down fails. For chaos runs and dispatcher
/// tests; the real HTTP one is `rollgate_deploy::WebhookNotifier`.
///
/// ```
/// use rollgate_test::RecordingNotifier;
/// let n = RecordingNotifier::new().failing_first(2);
/// n.set_down("http://127.0.0.1:9/hook", true);
/// assert!(n.delivered().is_empty());
/// ```
#[derive(Clone, Default)]
pub struct RecordingNotifier {
    inner: Arc<Mutex<NotifierState>>,
}

#[derive(Default)]
struct NotifierState {
    fail_first: u32,
    down: BTreeSet<String>,
    attempts: BTreeMap<(String, usize), u32>,
    delivered: Vec<Outgoing>,
}

impl RecordingNotifier {
    /// Delivers everything at the first attempt.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the first `n` attempts of each event and destination.
    pub fn failing_first(self, n: u32) -> Self {
        self.lock().fail_first = n;
        self
    }

    /// Marks `url` unreachable (or reachable again).
    pub fn set_down(&self, url: &str, down: bool) {
        let mut g = self.lock();
        if down {
            g.down.insert(url.to_owned());
        } else {
            g.down.remove(url);
        }
    }

    /// Every successful send, in order.
    pub fn delivered(&self) -> Vec<Outgoing> {
        self.lock().delivered.clone()
    }

    /// Attempts made, successful or not.
    pub fn attempts(&self) -> u32 {
        self.lock().attempts.values().sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NotifierState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Notifier for RecordingNotifier {
    async fn send(&self, out: &Outgoing) -> Result<(), SendError> {
        let mut g = self.lock();
        let key = (out.notification.event_id(), out.notification.destination);
        let n = {
            let n = g.attempts.entry(key).or_default();
            *n += 1;
            *n
        };
        if g.down.contains(&out.destination.url) {
            return Err(SendError(format!("{} is down", out.destination.name)));
        }
        if n <= g.fail_first {
            return Err(SendError(format!("injected failure {n}")));
        }
        g.delivered.push(out.clone());
        Ok(())
    }
}

/// The chaos invariant "every notification was delivered at least once":
/// every outbox row of `store` is marked delivered, and `sent` (what a
/// [`RecordingNotifier`] or a receiver got: event id and destination index)
/// holds each row's event id for its destination. Returns what breaks it.
pub async fn every_notification_delivered(
    store: &dyn StateStore,
    sent: &[(String, usize)],
) -> Result<(), String> {
    let rows = store
        .notifications(None)
        .await
        .map_err(|e| format!("cannot read the outbox: {e}"))?;
    let sent: BTreeSet<(&str, usize)> = sent.iter().map(|(id, d)| (id.as_str(), *d)).collect();
    let mut broken = Vec::new();
    for n in &rows {
        let id = n.event_id();
        if n.delivered_ms.is_none() {
            broken.push(format!(
                "{id} to destination {} ({}) not marked delivered after {} attempt(s){}",
                n.destination,
                n.kind,
                n.attempts,
                n.last_error
                    .as_deref()
                    .map_or(String::new(), |e| format!(": {e}"))
            ));
        } else if !sent.contains(&(id.as_str(), n.destination)) {
            broken.push(format!(
                "{id} to destination {} ({}) marked delivered but never received",
                n.destination, n.kind
            ));
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(broken.join("\n"))
    }
}
