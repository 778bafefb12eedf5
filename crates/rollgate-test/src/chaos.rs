//! Seeded chaos in one process: several real [`Executor`] controllers
//! (leases and fencing as in production) share one store while deployers
//! fail, hang, succeed late or report wrong versions, gates go empty, slow
//! or error, the store errors or is unreachable, and controllers are killed
//! (their tasks aborted) or frozen (every store, deployer and gate call
//! blocks, as under SIGSTOP), two at a time. Time is tokio's paused clock,
//! so hours of rollout take milliseconds. After the run,
//! [`invariants::check`] judges what it left.
//!
//! The same seed gives the same run: every choice comes from one seeded
//! generator, and the runtime is single-threaded with paused time.
//!
//! ```
//! use rollgate_test::chaos::{self, StoreKind};
//! let run = chaos::run_seed(7, StoreKind::Memory);
//! assert!(run.violations.is_empty(), "{}", run.report());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_deploy::{
    Artifact, Created, Decision, Deployer, Destination, Digest, DispatchConfig, Dispatcher, Error,
    Event, EventRecord, Executor, ExecutorConfig, Fence, Gate, GateContext, GatePolicy, LeaseInfo,
    Notification, NotificationId, Notifier, NotifyKind, Outgoing, Percent, PhaseDefaults,
    Readiness, RetryPolicy, Rollout, RolloutId, RolloutRequest, RolloutSummary, SendError,
    StateStore, Status, Strategy, TargetId, UnfinishedRollout, Writer, driving,
};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until};

use crate::invariants::{self, Effect, Evidence, Notice, Violation, Write};

/// A controller's freeze switch: while on, each of its store, deployer and
/// gate calls waits at the door (SIGSTOP); off again, they go on (SIGCONT),
/// woken in the order they came (a `watch` channel wakes in random order,
/// which would make runs differ).
#[derive(Clone, Default)]
pub struct Freeze(Arc<FreezeInner>);

#[derive(Default)]
struct FreezeInner {
    frozen: std::sync::atomic::AtomicBool,
    thawed: tokio::sync::Notify,
}

impl Freeze {
    /// Freezes or thaws.
    pub fn set(&self, frozen: bool) {
        self.0
            .frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
        if !frozen {
            self.0.thawed.notify_waiters();
        }
    }

    /// Waits until not frozen.
    pub async fn thawed(&self) {
        loop {
            let wait = self.0.thawed.notified();
            tokio::pin!(wait);
            wait.as_mut().enable();
            if !self.0.frozen.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            wait.await;
        }
    }
}

/// The run's shared record: a counter giving every change and write its
/// place in one order, and the changes and writes themselves.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<JournalInner>>);

#[derive(Default)]
struct JournalInner {
    next: u64,
    effects: Vec<Effect>,
    writes: Vec<Write>,
}

impl Journal {
    fn lock(&self) -> MutexGuard<'_, JournalInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn effect(&self, mut fx: Effect) {
        let mut g = self.lock();
        g.next += 1;
        fx.order = g.next;
        g.effects.push(fx);
    }
    fn write(&self, mut w: Write) {
        let mut g = self.lock();
        g.next += 1;
        w.order = g.next;
        g.writes.push(w);
    }
    /// The changes made on targets so far.
    pub fn effects(&self) -> Vec<Effect> {
        self.lock().effects.clone()
    }
    /// The controllers' successful appends so far.
    pub fn writes(&self) -> Vec<Write> {
        self.lock().writes.clone()
    }
}

/// A fault of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetFault {
    /// The first `n` deploys fail (transiently).
    FailFirst(u32),
    /// Every deploy fails, restores too.
    FailAlways,
    /// A deploy never answers (the executor's deploy timeout ends it).
    Hang,
    /// A deploy takes effect at once but answers only after this long.
    Late(Duration),
    /// The target reports a build nobody knows instead of what it runs.
    WrongVersion,
    /// Never ready while it runs this digest.
    NeverReadyOn(Digest),
}

#[derive(Default)]
struct FleetInner {
    running: BTreeMap<TargetId, Artifact>,
    faults: BTreeMap<TargetId, TargetFault>,
    attempts: BTreeMap<TargetId, u32>,
    /// Whether `WrongVersion` targets lie yet (after the rollouts exist).
    lying: bool,
}

/// The targets, shared by every controller; each controller gets its own
/// [`Deployer`] door to it ([`Fleet::door`]).
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Mutex<FleetInner>>,
    journal: Journal,
    recheck: bool,
}

impl Fleet {
    /// Targets running nothing, recording changes into `journal`.
    pub fn new(journal: Journal) -> Self {
        Self {
            inner: Arc::default(),
            journal,
            recheck: true,
        }
    }

    /// Without the lease check a frozen controller makes on resuming (see
    /// [`Door`]): only to show that the checker catches what follows.
    pub fn without_recheck(mut self) -> Self {
        self.recheck = false;
        self
    }

    fn lock(&self) -> MutexGuard<'_, FleetInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `target` run `artifact`.
    pub fn put(&self, target: &TargetId, artifact: &Artifact) {
        self.lock().running.insert(target.clone(), artifact.clone());
    }

    /// Injects `fault` on `target`.
    pub fn fault(&self, target: &TargetId, fault: TargetFault) {
        self.lock().faults.insert(target.clone(), fault);
    }

    /// From now on `WrongVersion` targets report a wrong build.
    pub fn start_lying(&self) {
        self.lock().lying = true;
    }

    /// What every target runs.
    pub fn snapshot(&self) -> BTreeMap<TargetId, Digest> {
        self.lock()
            .running
            .iter()
            .map(|(t, a)| (t.clone(), a.digest.clone()))
            .collect()
    }

    /// The door of controller `owner`, frozen by `freeze`.
    pub fn door(&self, owner: &str, freeze: Freeze) -> Door {
        Door {
            fleet: self.clone(),
            owner: owner.to_owned(),
            freeze,
        }
    }
}

/// One controller's way to the fleet. While its controller is frozen every
/// call waits at the door. A deploy that waited there checks the
/// controller's lease when it goes on, as the executor does before every
/// deploy call: a process stopped before that check makes it on resuming.
/// (A stop between the check and the call is not modelled: only a deployer
/// that hands [`Driving::fence`](rollgate_deploy::Driving) to its targets
/// closes that window.)
pub struct Door {
    fleet: Fleet,
    owner: String,
    freeze: Freeze,
}

impl Door {
    fn unknown_build() -> Digest {
        Digest::of_bytes(b"a build nobody released")
    }
}

#[async_trait]
impl Deployer for Door {
    async fn deploy(&self, target: &TargetId, artifact: &Artifact) -> Result<(), Error> {
        self.freeze.thawed().await;
        let lease = driving();
        if self.fleet.recheck
            && let Some(l) = &lease
            && !l.lease_valid()
        {
            return Err(Error::Deploy {
                target: target.clone(),
                reason: "the controller resumed past its lease".into(),
                transient: true,
            });
        }
        let late = {
            let mut g = self.fleet.lock();
            let attempt = {
                let a = g.attempts.entry(target.clone()).or_insert(0);
                *a += 1;
                *a
            };
            let fail = match g.faults.get(target) {
                Some(TargetFault::FailFirst(n)) if attempt <= *n => {
                    Some(format!("injected failure {attempt}/{n}"))
                }
                Some(TargetFault::FailAlways) => Some("injected: disk full".to_string()),
                _ => None,
            };
            if let Some(reason) = fail {
                return Err(Error::Deploy {
                    target: target.clone(),
                    reason,
                    transient: true,
                });
            }
            if g.faults.get(target) == Some(&TargetFault::Hang) {
                None
            } else {
                g.running.insert(target.clone(), artifact.clone());
                self.fleet.journal.effect(Effect {
                    order: 0,
                    rollout: lease.as_ref().map(|l| l.rollout),
                    owner: self.owner.clone(),
                    fence: lease.as_ref().map(|l| l.fence.0),
                    target: target.clone(),
                    digest: artifact.digest.clone(),
                });
                match g.faults.get(target) {
                    Some(TargetFault::Late(d)) => Some(*d),
                    _ => Some(Duration::ZERO),
                }
            }
        };
        match late {
            None => std::future::pending().await,
            Some(d) if !d.is_zero() => sleep(d).await,
            Some(_) => {}
        }
        self.freeze.thawed().await;
        Ok(())
    }

    async fn current(&self, target: &TargetId) -> Result<Option<Digest>, Error> {
        self.freeze.thawed().await;
        let g = self.fleet.lock();
        if g.lying && g.faults.get(target) == Some(&TargetFault::WrongVersion) {
            return Ok(Some(Self::unknown_build()));
        }
        Ok(g.running.get(target).map(|a| a.digest.clone()))
    }

    async fn readiness(&self, target: &TargetId) -> Result<Readiness, Error> {
        self.freeze.thawed().await;
        let g = self.fleet.lock();
        Ok(match (g.faults.get(target), g.running.get(target)) {
            (Some(TargetFault::NeverReadyOn(d)), Some(a)) if a.digest == *d => {
                Readiness::NotReady("injected: health check failing".into())
            }
            _ => Readiness::Ready,
        })
    }
}

/// How the gate (standing for canary analysis over metric sources) answers
/// one phase of one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateFault {
    /// Healthy: promote.
    Promote,
    /// The metrics are bad: roll back.
    Rollback,
    /// Held for a person.
    Hold,
    /// The metric source is empty: inconclusive, ask again.
    Empty,
    /// The metric source errors.
    Error,
    /// The metric source answers after this long (maybe past the gate timeout).
    Slow(Duration),
    /// Errors `n` times, then promotes.
    Flaky(u32),
}

/// Per (service, phase): how the gate answers and how often it was asked.
type GateScript = BTreeMap<(String, usize), (GateFault, u32)>;

/// The gate every controller asks, scripted per (service, phase).
#[derive(Clone, Default)]
pub struct ScriptGate {
    script: Arc<Mutex<GateScript>>,
}

impl ScriptGate {
    fn set(&self, service: &str, phase: usize, fault: GateFault) {
        self.script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((service.to_owned(), phase), (fault, 0));
    }

    /// The door of a controller frozen by `freeze`.
    pub fn door(&self, freeze: Freeze) -> GateDoor {
        GateDoor {
            gate: self.clone(),
            freeze,
        }
    }
}

/// One controller's way to the gate.
pub struct GateDoor {
    gate: ScriptGate,
    freeze: Freeze,
}

#[async_trait]
impl Gate for GateDoor {
    async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
        self.freeze.thawed().await;
        let (fault, calls) = {
            let mut g = self.gate.script.lock().unwrap_or_else(|e| e.into_inner());
            match g.get_mut(&(at.service.clone(), at.phase)) {
                Some((f, n)) => {
                    *n += 1;
                    (f.clone(), *n)
                }
                None => (GateFault::Promote, 1),
            }
        };
        let promote =
            || Decision::Promote(vec![format!("phase {}: error rate 0.1 % < 1 %", at.phase)]);
        let out = match fault {
            GateFault::Promote => Ok(promote()),
            GateFault::Rollback => Ok(Decision::Rollback(vec!["http_p99 812 ms > 500 ms".into()])),
            GateFault::Hold => Ok(Decision::Hold(vec![
                "error budget burn 3.1x: a person decides".into(),
            ])),
            GateFault::Empty => Ok(Decision::Continue(vec![
                "inconclusive: no samples for canary in the window".into(),
            ])),
            GateFault::Error => Err(Error::Gate("metric source: connection refused".into())),
            GateFault::Slow(d) => {
                sleep(d).await;
                Ok(promote())
            }
            GateFault::Flaky(n) if calls <= n => Err(Error::Gate(format!(
                "metric source: HTTP 503 ({calls}/{n})"
            ))),
            GateFault::Flaky(_) => Ok(promote()),
        };
        self.freeze.thawed().await;
        out
    }
}

/// The store's network, shared by every controller: down for a while, or
/// failing some calls.
#[derive(Clone)]
pub struct Net(Arc<Mutex<NetInner>>);

struct NetInner {
    down_until: Option<Instant>,
    error_rate: f64,
    rng: ChaCha8Rng,
}

impl Net {
    fn new(seed: u64) -> Self {
        Self(Arc::new(Mutex::new(NetInner {
            down_until: None,
            error_rate: 0.0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })))
    }
    fn lock(&self) -> MutexGuard<'_, NetInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Unreachable until `until`.
    pub fn down_until(&self, until: Instant) {
        self.lock().down_until = Some(until);
    }
    /// Fails this share of calls.
    pub fn error_rate(&self, rate: f64) {
        self.lock().error_rate = rate;
    }
    /// Before a call: an outage (after a connect timeout) or an error.
    async fn before(&self) -> Result<(), Error> {
        let down = self.lock().down_until.is_some_and(|t| Instant::now() < t);
        if down {
            sleep(Duration::from_secs(2)).await;
            return Err(Error::Store(
                "injected: connection refused (store unreachable)".into(),
                None,
            ));
        }
        self.maybe_error("injected: query failed")
    }
    /// After a call: its answer lost.
    fn after(&self) -> Result<(), Error> {
        self.maybe_error("injected: connection reset before the answer")
    }
    fn maybe_error(&self, what: &str) -> Result<(), Error> {
        let mut g = self.lock();
        let rate = g.error_rate;
        if rate > 0.0 && g.rng.random_bool(rate / 2.0) {
            return Err(Error::Store(what.into(), None));
        }
        Ok(())
    }
}

/// One controller's way to the shared store: frozen with it, through the
/// faulty network, recording its successful appends in the journal.
pub struct StoreDoor {
    inner: Arc<dyn StateStore>,
    freeze: Freeze,
    net: Net,
    journal: Journal,
}

impl StoreDoor {
    async fn call<T, F: Future<Output = Result<T, Error>>>(
        &self,
        f: impl FnOnce() -> F,
    ) -> Result<T, Error> {
        self.freeze.thawed().await;
        self.net.before().await?;
        let out = f().await?;
        self.net.after()?;
        self.freeze.thawed().await;
        Ok(out)
    }
}

/// A store on another thread (SQLite's writer) made synchronous: each call
/// blocks the runtime's only thread until it is answered, so nothing else
/// runs and no time passes meanwhile, and a run stays a function of its
/// seed (answers would otherwise race the runtime).
pub struct Blocking(pub Arc<dyn StateStore>);

#[async_trait]
impl StateStore for Blocking {
    async fn create(&self, req: &RolloutRequest) -> Result<Created, Error> {
        futures::executor::block_on(self.0.create(req))
    }
    async fn find_key(&self, key: &str) -> Result<Option<RolloutId>, Error> {
        futures::executor::block_on(self.0.find_key(key))
    }
    async fn request(&self, id: RolloutId) -> Result<RolloutRequest, Error> {
        futures::executor::block_on(self.0.request(id))
    }
    async fn append_notifying(
        &self,
        id: RolloutId,
        writer: Writer<'_>,
        events: &[Event],
        notify: &[Option<NotifyKind>],
    ) -> Result<u64, Error> {
        futures::executor::block_on(self.0.append_notifying(id, writer, events, notify))
    }
    async fn events(&self, id: RolloutId, after: u64) -> Result<Vec<EventRecord>, Error> {
        futures::executor::block_on(self.0.events(id, after))
    }
    async fn lease(&self, id: RolloutId, owner: &str, ttl: Duration) -> Result<Fence, Error> {
        futures::executor::block_on(self.0.lease(id, owner, ttl))
    }
    async fn release(&self, id: RolloutId, fence: Fence) -> Result<(), Error> {
        futures::executor::block_on(self.0.release(id, fence))
    }
    async fn lease_info(&self, id: RolloutId) -> Result<Option<LeaseInfo>, Error> {
        futures::executor::block_on(self.0.lease_info(id))
    }
    async fn break_lease(&self, id: RolloutId, owner: &str) -> Result<(), Error> {
        futures::executor::block_on(self.0.break_lease(id, owner))
    }
    async fn unfinished(&self) -> Result<Vec<RolloutId>, Error> {
        futures::executor::block_on(self.0.unfinished())
    }
    async fn unfinished_leases(&self) -> Result<Vec<UnfinishedRollout>, Error> {
        futures::executor::block_on(self.0.unfinished_leases())
    }
    async fn list(&self, service: Option<&str>) -> Result<Vec<RolloutSummary>, Error> {
        futures::executor::block_on(self.0.list(service))
    }
    async fn register_artifact(&self, artifact: &Artifact) -> Result<(), Error> {
        futures::executor::block_on(self.0.register_artifact(artifact))
    }
    async fn artifact(&self, digest: &Digest) -> Result<Option<Artifact>, Error> {
        futures::executor::block_on(self.0.artifact(digest))
    }
    async fn claim_notifications(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Notification>, Error> {
        futures::executor::block_on(self.0.claim_notifications(owner, ttl, limit))
    }
    async fn notification_delivered(&self, id: NotificationId, owner: &str) -> Result<(), Error> {
        futures::executor::block_on(self.0.notification_delivered(id, owner))
    }
    async fn notification_failed(
        &self,
        id: NotificationId,
        owner: &str,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), Error> {
        futures::executor::block_on(self.0.notification_failed(id, owner, error, retry_in))
    }
    async fn renew_notification_claim(
        &self,
        id: NotificationId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        futures::executor::block_on(self.0.renew_notification_claim(id, owner, ttl))
    }
    async fn notifications(&self, rollout: Option<RolloutId>) -> Result<Vec<Notification>, Error> {
        futures::executor::block_on(self.0.notifications(rollout))
    }
}

#[async_trait]
impl StateStore for StoreDoor {
    async fn create(&self, req: &RolloutRequest) -> Result<Created, Error> {
        self.call(|| self.inner.create(req)).await
    }
    async fn find_key(&self, key: &str) -> Result<Option<RolloutId>, Error> {
        self.call(|| self.inner.find_key(key)).await
    }
    async fn request(&self, id: RolloutId) -> Result<RolloutRequest, Error> {
        self.call(|| self.inner.request(id)).await
    }
    async fn append_notifying(
        &self,
        id: RolloutId,
        writer: Writer<'_>,
        events: &[Event],
        notify: &[Option<NotifyKind>],
    ) -> Result<u64, Error> {
        self.freeze.thawed().await;
        self.net.before().await?;
        let last = self
            .inner
            .append_notifying(id, writer, events, notify)
            .await?;
        if let Writer::Controller { owner, fence } = writer {
            self.journal.write(Write {
                order: 0,
                rollout: id,
                owner: owner.to_owned(),
                fence: fence.0,
                seqs: (last + 1 - events.len() as u64, last),
            });
        }
        self.net.after()?;
        self.freeze.thawed().await;
        Ok(last)
    }
    async fn events(&self, id: RolloutId, after: u64) -> Result<Vec<EventRecord>, Error> {
        self.call(|| self.inner.events(id, after)).await
    }
    async fn lease(&self, id: RolloutId, owner: &str, ttl: Duration) -> Result<Fence, Error> {
        self.call(|| self.inner.lease(id, owner, ttl)).await
    }
    async fn release(&self, id: RolloutId, fence: Fence) -> Result<(), Error> {
        self.call(|| self.inner.release(id, fence)).await
    }
    async fn lease_info(&self, id: RolloutId) -> Result<Option<LeaseInfo>, Error> {
        self.call(|| self.inner.lease_info(id)).await
    }
    async fn break_lease(&self, id: RolloutId, owner: &str) -> Result<(), Error> {
        self.call(|| self.inner.break_lease(id, owner)).await
    }
    async fn unfinished(&self) -> Result<Vec<RolloutId>, Error> {
        self.call(|| self.inner.unfinished()).await
    }
    async fn unfinished_leases(&self) -> Result<Vec<UnfinishedRollout>, Error> {
        self.call(|| self.inner.unfinished_leases()).await
    }
    async fn list(&self, service: Option<&str>) -> Result<Vec<RolloutSummary>, Error> {
        self.call(|| self.inner.list(service)).await
    }
    async fn register_artifact(&self, artifact: &Artifact) -> Result<(), Error> {
        self.call(|| self.inner.register_artifact(artifact)).await
    }
    async fn artifact(&self, digest: &Digest) -> Result<Option<Artifact>, Error> {
        self.call(|| self.inner.artifact(digest)).await
    }
    async fn claim_notifications(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Notification>, Error> {
        self.call(|| self.inner.claim_notifications(owner, ttl, limit))
            .await
    }
    async fn notification_delivered(&self, id: NotificationId, owner: &str) -> Result<(), Error> {
        self.call(|| self.inner.notification_delivered(id, owner))
            .await
    }
    async fn notification_failed(
        &self,
        id: NotificationId,
        owner: &str,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), Error> {
        self.call(|| self.inner.notification_failed(id, owner, error, retry_in))
            .await
    }
    async fn renew_notification_claim(
        &self,
        id: NotificationId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        self.call(|| self.inner.renew_notification_claim(id, owner, ttl))
            .await
    }
    async fn notifications(&self, rollout: Option<RolloutId>) -> Result<Vec<Notification>, Error> {
        self.call(|| self.inner.notifications(rollout)).await
    }
}

/// The webhook receiver: counts what arrives per outbox row; fails a share
/// of attempts, answers some slowly.
#[derive(Clone)]
pub struct Hooks(Arc<Mutex<HooksInner>>);

struct HooksInner {
    received: BTreeMap<NotificationId, (String, u32)>,
    fail_rate: f64,
    slow: Duration,
    rng: ChaCha8Rng,
}

impl Hooks {
    fn new(seed: u64, fail_rate: f64, slow: Duration) -> Self {
        Self(Arc::new(Mutex::new(HooksInner {
            received: BTreeMap::new(),
            fail_rate,
            slow,
            rng: ChaCha8Rng::seed_from_u64(seed),
        })))
    }
    fn lock(&self) -> MutexGuard<'_, HooksInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// How often each row arrived, with its event id.
    pub fn received(&self) -> BTreeMap<NotificationId, (String, u32)> {
        self.lock().received.clone()
    }
}

/// One controller's way to the receiver.
struct HookDoor {
    hooks: Hooks,
    freeze: Freeze,
}

#[async_trait]
impl Notifier for HookDoor {
    async fn send(&self, out: &Outgoing) -> Result<(), SendError> {
        self.freeze.thawed().await;
        let (fail, slow) = {
            let mut g = self.hooks.lock();
            let rate = g.fail_rate;
            (rate > 0.0 && g.rng.random_bool(rate), g.slow)
        };
        if fail {
            return Err(SendError("HTTP 503 from the hook (injected)".into()));
        }
        {
            let mut g = self.hooks.lock();
            let e = g
                .received
                .entry(out.notification.id)
                .or_insert_with(|| (out.notification.event_id(), 0));
            e.1 += 1;
        }
        // Received; the answer may come too late for the sender.
        if !slow.is_zero() {
            sleep(slow).await;
        }
        self.freeze.thawed().await;
        Ok(())
    }
}

/// Which store the controllers share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// [`rollgate_deploy::MemoryStore`].
    Memory,
    /// [`rollgate_deploy::SqliteStore`] in a temporary file, leases on tokio's clock.
    Sqlite,
}

/// What one seed did and which invariants it broke.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The seed.
    pub seed: u64,
    /// The store.
    pub store: StoreKind,
    /// How each rollout ended (`succeeded`, `held`, ...).
    pub endings: Vec<String>,
    /// The faults injected, in order, for reading a failure.
    pub trace: Vec<String>,
    /// Broken invariants; empty when all held.
    pub violations: Vec<Violation>,
    /// Each rollout's log, one line per event, for reading a failure.
    pub logs: BTreeMap<RolloutId, Vec<String>>,
    /// The evidence the invariants were checked on.
    pub evidence: Evidence,
}

impl RunResult {
    /// A text naming the seed, the endings, the faults and every violation,
    /// with the command that replays it.
    pub fn report(&self) -> String {
        let mut s = format!(
            "chaos seed {} ({:?} store): {} violation(s); endings: {}\n",
            self.seed,
            self.store,
            self.violations.len(),
            self.endings.join(", ")
        );
        for v in &self.violations {
            let _ = writeln!(s, "  VIOLATED {v}");
        }
        for t in &self.trace {
            let _ = writeln!(s, "  {t}");
        }
        let broken: BTreeSet<RolloutId> =
            self.violations.iter().filter_map(|v| v.rollout).collect();
        for id in broken {
            let _ = writeln!(s, "  log of rollout {id}:");
            for line in self.logs.get(&id).into_iter().flatten() {
                let _ = writeln!(s, "    {line}");
            }
        }
        let _ = writeln!(
            s,
            "  replay: CHAOS_SEED={} cargo nextest run -p rollgate-test --test chaos --no-capture --run-ignored only replay",
            self.seed
        );
        s
    }
}

/// The store a seed runs on: every eighth seed on SQLite, the rest in memory.
pub fn store_for(seed: u64) -> StoreKind {
    if seed.is_multiple_of(8) {
        StoreKind::Sqlite
    } else {
        StoreKind::Memory
    }
}

/// Runs seed `seed` on `store` in a fresh single-threaded runtime on paused
/// time, and checks the invariants.
pub fn run_seed(seed: u64, store: StoreKind) -> RunResult {
    run_seed_with(seed, store, true)
}

/// As [`run_seed`]; with `recheck` false a frozen controller does not check
/// its lease on resuming (see [`Fleet::without_recheck`]).
pub fn run_seed_with(seed: u64, store: StoreKind, recheck: bool) -> RunResult {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a runtime: {e}"),
    };
    let dir = match store {
        StoreKind::Memory => None,
        StoreKind::Sqlite => match tempfile_dir() {
            Ok(d) => Some(d),
            Err(e) => panic!("cannot make a temporary directory: {e}"),
        },
    };
    let result = rt.block_on(async {
        let inner: Arc<dyn StateStore> = match &dir {
            None => Arc::new(rollgate_deploy::MemoryStore::new()),
            Some(d) => Arc::new(Blocking(sqlite_store(d))),
        };
        run(seed, store, inner, recheck).await
    });
    drop(rt);
    if let Some(d) = dir {
        let _ = std::fs::remove_dir_all(d);
    }
    result
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let base = std::env::temp_dir();
    for i in 0..1000u32 {
        let d = base.join(format!("rollgate-chaos-{}-{i}", std::process::id()));
        match std::fs::create_dir(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary directory name"))
}

#[cfg(feature = "sqlite")]
fn sqlite_store(dir: &std::path::Path) -> Arc<dyn StateStore> {
    use rollgate_deploy::{Durability, LeaseClock, SqliteOptions, SqliteStore};
    let options = SqliteOptions::default()
        .with_durability(Durability::ProcessCrash)
        .with_lease_clock(LeaseClock::Tokio);
    match SqliteStore::open_with(dir.join("state.db"), &options) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("cannot open the SQLite store: {e}"),
    }
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_store(_: &std::path::Path) -> Arc<dyn StateStore> {
    panic!("the SQLite chaos runs need rollgate-test's `sqlite` feature")
}

/// One planned rollout.
struct Planned {
    request: RolloutRequest,
    abort_at: Option<Duration>,
}

/// A fault of the run as a whole.
#[derive(Debug, Clone)]
enum Chaos {
    /// Kill these controllers; each restarts (a new process) after `restart`.
    Kill(Vec<usize>, Duration),
    /// Freeze these controllers for this long.
    Freeze(Vec<usize>, Duration),
    /// The store is unreachable for this long.
    Outage(Duration),
    /// This share of store calls fails for this long.
    Errors(f64, Duration),
}

/// How the controllers are tuned: short leases so that takeovers happen.
fn controller_config(owner: &str, seed: u64) -> ExecutorConfig {
    ExecutorConfig::default()
        .with_owner(owner)
        .with_lease_ttl(Duration::from_secs(15))
        .with_poll_interval(Duration::from_secs(2))
        .with_retry(RetryPolicy::default().with_seed(seed))
        .with_readiness(Duration::from_secs(60), Duration::from_secs(5))
        .with_gate_timeout(Duration::from_secs(60))
        .with_deploy_timeout(Duration::from_secs(90))
}

fn secs(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> Duration {
    Duration::from_secs(rng.random_range(lo..=hi))
}

/// Plans the rollouts, the fleet's faults and the gate's script.
fn plan_run(
    rng: &mut ChaCha8Rng,
    fleet: &Fleet,
    gate: &ScriptGate,
    trace: &mut Vec<String>,
) -> Vec<Planned> {
    let n = rng.random_range(1..=3usize);
    let mut out = Vec::new();
    for i in 1..=n {
        let service = format!("s{i}");
        let old = crate::artifact(&format!("{service}-v1"));
        let new = crate::artifact(&format!("{service}-v2"));
        let count = rng.random_range(2..=5usize);
        let targets: Vec<TargetId> = (1..=count)
            .map(|j| {
                TargetId::try_from(format!("{service}-t{j}")).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        for t in &targets {
            fleet.put(t, &old);
            let roll = rng.random_range(0..100u32);
            let fault = match roll {
                0..=69 => None,
                70..=79 => Some(TargetFault::FailFirst(rng.random_range(1..=2))),
                80..=81 => Some(TargetFault::FailAlways),
                82..=84 => Some(TargetFault::Hang),
                85..=93 => Some(TargetFault::Late(secs(rng, 5, 120))),
                94..=96 => Some(TargetFault::WrongVersion),
                _ => Some(TargetFault::NeverReadyOn(new.digest.clone())),
            };
            if let Some(f) = fault {
                trace.push(format!("target {t}: {f:?}"));
                fleet.fault(t, f);
            }
        }
        let pct = |p: f64| Percent::new(p).unwrap_or_else(|e| panic!("{e}"));
        let strategy = match rng.random_range(0..3u32) {
            0 => Strategy::Canary {
                steps: vec![pct(25.0), pct(50.0), Percent::FULL],
            },
            1 => Strategy::Rolling {
                max_unavailable: rng.random_range(1..=2),
            },
            _ => Strategy::Linear { step: pct(50.0) },
        };
        let defaults = PhaseDefaults::default().with_bake(secs(rng, 10, 300));
        let plan = strategy
            .compile(&targets, &defaults)
            .unwrap_or_else(|e| panic!("{e}"));
        for p in 0..plan.phases.len() {
            let roll = rng.random_range(0..100u32);
            let fault = match roll {
                0..=69 => None,
                70..=75 => Some(GateFault::Rollback),
                76..=80 => Some(GateFault::Hold),
                81..=86 => Some(GateFault::Empty),
                87..=91 => Some(GateFault::Error),
                92..=95 => Some(GateFault::Slow(secs(rng, 5, 120))),
                _ => Some(GateFault::Flaky(rng.random_range(1..=3))),
            };
            if let Some(f) = fault {
                trace.push(format!("gate {service} phase {p}: {f:?}"));
                gate.set(&service, p, f);
            }
        }
        let mut policy = GatePolicy::default();
        policy.max_errors = 3;
        policy.max_continues = 3;
        policy.retry_after = Duration::from_secs(20);
        let request = RolloutRequest::new(&service, new, plan, "chaos")
            .with_notify([Destination::new("https://hooks.example/rollgate")])
            .with_previous(old)
            .with_gate_policy(policy)
            .with_idempotency_key(format!("{service}-v2"));
        let abort_at = rng.random_bool(0.05).then(|| secs(rng, 0, 1200));
        if let Some(at) = abort_at {
            trace.push(format!("{service}: a person aborts at {}s", at.as_secs()));
        }
        out.push(Planned { request, abort_at });
    }
    out
}

fn plan_chaos(rng: &mut ChaCha8Rng, controllers: usize) -> Vec<(Duration, Chaos)> {
    let n = rng.random_range(2..=6usize);
    let mut out: Vec<(Duration, Chaos)> = (0..n)
        .map(|_| {
            let at = secs(rng, 0, 900);
            let who = |rng: &mut ChaCha8Rng| {
                let first = rng.random_range(0..controllers);
                let mut v = vec![first];
                // Two at a time, half of the time.
                if rng.random_bool(0.5) {
                    let second = (first + rng.random_range(1..controllers)) % controllers;
                    v.push(second);
                }
                v
            };
            let chaos = match rng.random_range(0..100u32) {
                0..=29 => Chaos::Kill(who(rng), secs(rng, 0, 60)),
                // Often past the lease (15 s), so that others take over.
                30..=69 => Chaos::Freeze(who(rng), secs(rng, 1, 90)),
                70..=84 => Chaos::Outage(secs(rng, 1, 40)),
                _ => Chaos::Errors(rng.random_range(0.02..0.3), secs(rng, 10, 120)),
            };
            (at, chaos)
        })
        .collect();
    out.sort_by_key(|(at, _)| *at);
    out
}

/// One controller process: adopts every unfinished rollout, as `serve` does.
struct Controller {
    freeze: Freeze,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    inner: Arc<dyn StateStore>,
    hooks: Hooks,
    fleet: Fleet,
    gate: ScriptGate,
    net: Net,
    journal: Journal,
    seed: u64,
}

fn start_controller(s: &Shared, owner: String) -> Controller {
    let freeze = Freeze::default();
    let store: Arc<dyn StateStore> = Arc::new(StoreDoor {
        inner: Arc::clone(&s.inner),
        freeze: freeze.clone(),
        net: s.net.clone(),
        journal: s.journal.clone(),
    });
    let exec = Executor::new(
        Arc::clone(&store),
        Arc::new(s.fleet.door(&owner, freeze.clone())),
    )
    .with_gate(Arc::new(s.gate.door(freeze.clone())))
    .with_config(controller_config(&owner, s.seed));
    let mut retry = RetryPolicy::default().with_seed(s.seed);
    retry.max_attempts = 4;
    retry.max_backoff = Duration::from_secs(20);
    let dispatcher = Dispatcher::new(
        Arc::clone(&store),
        Arc::new(HookDoor {
            hooks: s.hooks.clone(),
            freeze: freeze.clone(),
        }),
        DispatchConfig::default()
            .with_owner(&owner)
            .with_poll_interval(Duration::from_secs(2))
            .with_claim_ttl(Duration::from_secs(30))
            .with_timeout(Duration::from_secs(10))
            .with_retry(retry),
    );
    let task = tokio::spawn(async move {
        let mut driving: JoinSet<()> = JoinSet::new();
        // The outbox, delivered as `serve` does (not `Dispatcher::run`,
        // whose unbiased select would make runs differ).
        driving.spawn(async move {
            loop {
                let _ = dispatcher.deliver_pending().await;
                sleep(Duration::from_secs(2)).await;
            }
        });
        let mut busy: BTreeSet<RolloutId> = BTreeSet::new();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<RolloutId>();
        loop {
            while let Ok(id) = done_rx.try_recv() {
                busy.remove(&id);
            }
            while driving.try_join_next().is_some() {}
            if let Ok(ids) = store.unfinished().await {
                for id in ids {
                    if busy.insert(id) {
                        let exec = exec.clone();
                        let done = done_tx.clone();
                        driving.spawn(async move {
                            // Errors (a lost lease, a store fault) end this
                            // drive; the next scan tries again.
                            let _ = exec.run(id).await;
                            let _ = done.send(id);
                        });
                    }
                }
            }
            sleep(Duration::from_secs(5)).await;
        }
    });
    Controller { freeze, task }
}

/// Whether every rollout has ended (finished, held or paused), read from
/// the store without faults.
async fn all_ended(inner: &dyn StateStore, ids: &[RolloutId]) -> bool {
    for id in ids {
        let (Ok(req), Ok(log)) = (inner.request(*id).await, inner.events(*id, 0).await) else {
            return false;
        };
        match Rollout::replay(*id, req, &log) {
            Ok(r) if matches!(r.status, Status::Running | Status::RollingBack { .. }) => {
                return false;
            }
            Ok(_) => {}
            Err(_) => return true,
        }
    }
    true
}

/// Whether the receiver got every notification in the outbox.
async fn all_received(inner: &dyn StateStore, hooks: &Hooks) -> bool {
    let got = hooks.received();
    match inner.notifications(None).await {
        Ok(rows) => rows.iter().all(|n| got.get(&n.id).is_some_and(|r| r.1 > 0)),
        Err(_) => false,
    }
}

async fn run(seed: u64, kind: StoreKind, inner: Arc<dyn StateStore>, recheck: bool) -> RunResult {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut trace = Vec::new();
    let journal = Journal::default();
    let mut fleet = Fleet::new(journal.clone());
    if !recheck {
        fleet = fleet.without_recheck();
    }
    let gate = ScriptGate::default();
    let planned = plan_run(&mut rng, &fleet, &gate, &mut trace);
    let before = fleet.snapshot();
    // The webhook's faults draw from a generator of their own, so that adding
    // them left every other choice of a seed as it was.
    let mut hook_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6e6f_7469_6679);
    let hook_fail = if hook_rng.random_bool(0.5) {
        hook_rng.random_range(0.0..0.6)
    } else {
        0.0
    };
    let hook_slow = if hook_rng.random_bool(0.3) {
        secs(&mut hook_rng, 1, 15)
    } else {
        Duration::ZERO
    };
    if hook_fail > 0.0 || !hook_slow.is_zero() {
        trace.push(format!(
            "webhook: fails {:.0} % of attempts, answers after {}s",
            hook_fail * 100.0,
            hook_slow.as_secs()
        ));
    }
    let hooks = Hooks::new(hook_rng.random(), hook_fail, hook_slow);
    let shared = Shared {
        hooks: hooks.clone(),
        inner: Arc::clone(&inner),
        fleet: fleet.clone(),
        gate: gate.clone(),
        net: Net::new(rng.random()),
        journal: journal.clone(),
        seed,
    };

    // Requests come in through a client that sees no faults.
    let client = Executor::new(
        Arc::clone(&inner),
        Arc::new(fleet.door("client", Freeze::default())),
    )
    .with_gate(Arc::new(gate.door(Freeze::default())));
    let mut ids = Vec::new();
    let mut aborts = Vec::new();
    for p in &planned {
        let created = client.create(&p.request).await;
        match created {
            Ok(c) => {
                ids.push(c.id);
                if let Some(at) = p.abort_at {
                    aborts.push((at, c.id));
                }
            }
            Err(e) => trace.push(format!("{}: not created: {e}", p.request.service)),
        }
    }
    fleet.start_lying();

    let count = rng.random_range(2..=3usize);
    let chaos = plan_chaos(&mut rng, count);
    let mut generation = vec![1u32; count];
    let mut dead = vec![false; count];
    let mut controllers: Vec<Controller> = (0..count)
        .map(|i| start_controller(&shared, format!("c{i}.1")))
        .collect();

    let start = Instant::now();
    let mut restarts: Vec<(Instant, usize)> = Vec::new();
    let mut thaws: Vec<(Instant, usize)> = Vec::new();
    let mut pending: std::collections::VecDeque<(Duration, Chaos)> = chaos.into();
    let mut aborts: std::collections::VecDeque<(Duration, RolloutId)> = {
        aborts.sort_by_key(|a| a.0);
        aborts.into()
    };
    let deadline = start + Duration::from_secs(12 * 3600);
    let mut last_check = start;
    loop {
        let now = Instant::now();
        let t = now - start;
        while pending.front().is_some_and(|(at, _)| *at <= t) {
            let Some((_, c)) = pending.pop_front() else {
                break;
            };
            trace.push(format!("{}s: {c:?}", t.as_secs()));
            match c {
                Chaos::Kill(who, restart) => {
                    for i in who {
                        if dead[i] {
                            continue;
                        }
                        dead[i] = true;
                        controllers[i].task.abort();
                        // The killed process's pending calls die with it.
                        controllers[i].freeze.set(false);
                        restarts.push((now + restart, i));
                    }
                }
                Chaos::Freeze(who, d) => {
                    for i in who {
                        controllers[i].freeze.set(true);
                        thaws.push((now + d, i));
                    }
                }
                Chaos::Outage(d) => shared.net.down_until(now + d),
                Chaos::Errors(rate, d) => {
                    shared.net.error_rate(rate);
                    thaws.push((now + d, usize::MAX));
                }
            }
        }
        while aborts.front().is_some_and(|(at, _)| *at <= t) {
            let Some((_, id)) = aborts.pop_front() else {
                break;
            };
            let appended = inner
                .append(id, Writer::Person("oncall"), &[Event::AbortRequested])
                .await;
            trace.push(format!(
                "{}s: oncall aborts rollout {id}: {appended:?}",
                t.as_secs()
            ));
        }
        thaws.retain(|(at, i)| {
            if *at > now {
                return true;
            }
            if *i == usize::MAX {
                shared.net.error_rate(0.0);
            } else {
                controllers[*i].freeze.set(false);
            }
            false
        });
        let mut restarted = Vec::new();
        restarts.retain(|(at, i)| {
            if *at > now {
                return true;
            }
            restarted.push(*i);
            false
        });
        for i in restarted {
            if dead[i] {
                dead[i] = false;
                generation[i] += 1;
                controllers[i] = start_controller(&shared, format!("c{i}.{}", generation[i]));
            }
        }
        let quiet =
            pending.is_empty() && aborts.is_empty() && thaws.is_empty() && restarts.is_empty();
        if quiet && now - last_check >= Duration::from_secs(30) {
            last_check = now;
            let ended = all_ended(&*inner, &ids).await && all_received(&*inner, &hooks).await;
            if ended {
                break;
            }
        }
        if now >= deadline {
            trace.push("12 h passed: stopped waiting".into());
            break;
        }
        let next = [
            pending.front().map(|(at, _)| start + *at),
            aborts.front().map(|(at, _)| start + *at),
            thaws.iter().map(|(at, _)| *at).min(),
            restarts.iter().map(|(at, _)| *at).min(),
            Some(now + Duration::from_secs(30)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
        sleep_until(next.max(now + Duration::from_millis(1))).await;
    }
    for c in &controllers {
        c.task.abort();
        c.freeze.set(false);
    }
    for c in controllers {
        let _ = c.task.await;
    }

    let mut evidence = Evidence {
        before,
        after: fleet.snapshot(),
        effects: journal.effects(),
        writes: journal.writes(),
        ..Evidence::default()
    };
    let mut endings = Vec::new();
    let mut logs = BTreeMap::new();
    for id in &ids {
        let read =
            async { Ok::<_, Error>((inner.request(*id).await?, inner.events(*id, 0).await?)) };
        let read = read.await;
        match read {
            Ok((req, log)) => {
                logs.insert(
                    *id,
                    log.iter()
                        .map(|r| {
                            format!(
                                "{} {} {} {}",
                                r.seq,
                                r.actor,
                                r.event.action(),
                                r.event.outcome_text()
                            )
                        })
                        .collect(),
                );
                let ending = match Rollout::replay(*id, req.clone(), &log) {
                    Ok(r) => match r.status {
                        Status::Finished(o) => o.as_str().to_string(),
                        Status::Held(_) => "held".into(),
                        other => format!("{other:?}"),
                    },
                    Err(e) => format!("unreadable: {e}"),
                };
                endings.push(ending);
                evidence.rollouts.push((*id, req, log));
            }
            Err(e) => endings.push(format!("unreadable: {e}")),
        }
    }
    let got = hooks.received();
    match inner.notifications(None).await {
        Ok(rows) => {
            for n in rows {
                evidence.notices.push(Notice {
                    rollout: n.rollout,
                    id: n.event_id(),
                    received: got.get(&n.id).map_or(0, |r| r.1),
                });
            }
        }
        Err(e) => trace.push(format!("the outbox is unreadable: {e}")),
    }
    let mut violations = invariants::check(&evidence);
    // Every rollout a controller started announced something: an empty
    // outbox would make the delivery invariant hold vacuously.
    for (id, _, log) in &evidence.rollouts {
        let started = log
            .iter()
            .any(|r| matches!(r.event, Event::ControllerStarted { .. }));
        if started && !evidence.notices.iter().any(|n| n.rollout == *id) {
            violations.push(Violation {
                invariant: invariants::Invariant::Notified,
                rollout: Some(*id),
                detail: "it started, but the outbox holds no notification of it".into(),
            });
        }
    }
    RunResult {
        seed,
        store: kind,
        endings,
        trace,
        violations,
        logs,
        evidence,
    }
}
