//! The driver: performs what the pure state machine decides, through the
//! `Deployer`, `Gate`, `Router` and tokio's clock, writing ahead to the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::state::{Action, InFlight, Rollout, Stage, Status};
use crate::store::{Created, StateStore, Writer};
use crate::{
    Artifact, Decision, Deployer, Error, Event, EventRecord, Fence, Gate, GateUse, Outcome,
    PhaseAction, Readiness, RolloutId, RolloutRequest, Router, TargetId,
};

/// How transient deploy errors are retried: exponential backoff with full
/// jitter by default, so targets that fail together do not retry together.
///
/// ```
/// use std::time::Duration;
/// use rollgate_deploy::{Jitter, RetryPolicy, TargetId};
///
/// let policy = RetryPolicy::default().with_seed(7);
/// let web1: TargetId = "web-1".parse().unwrap();
/// let web2: TargetId = "web-2".parse().unwrap();
/// // Full jitter: a wait anywhere in [0, backoff], drawn per target and attempt.
/// let (a, b) = (policy.delay(1, &web1), policy.delay(1, &web2));
/// assert!(a <= policy.backoff(1) && b <= policy.backoff(1));
/// assert_ne!(a, b);
/// // Seeded: the same seed gives the same waits.
/// assert_eq!(a, RetryPolicy::default().with_seed(7).delay(1, &web1));
/// // No jitter: exactly the exponential backoff.
/// let exact = RetryPolicy::default().with_jitter(Jitter::None);
/// assert_eq!(exact.delay(2, &web1), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts per target, including the first (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failure; doubles each time.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// How the wait is spread below [`RetryPolicy::backoff`].
    pub jitter: Jitter,
    /// Seed of the jitter: waits are a pure function of the seed, the
    /// target (or service) and the attempt, so runs are reproducible.
    pub seed: u64,
}

/// How a retry's wait is drawn from its backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// Uniform in `[0, backoff]` ("full jitter"): spreads retries of targets
    /// that failed together.
    #[default]
    Full,
    /// Exactly the backoff.
    None,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            jitter: Jitter::Full,
            seed: 0,
        }
    }
}

impl RetryPolicy {
    /// Sets how waits are jittered.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the jitter's seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The wait before retrying `key` (a target or a service) after failed
    /// attempt `attempt` (1-based): [`RetryPolicy::backoff`] with jitter.
    pub fn delay(&self, attempt: u32, key: &impl std::fmt::Display) -> Duration {
        let cap = self.backoff(attempt);
        match self.jitter {
            Jitter::None => cap,
            Jitter::Full => {
                // FNV-1a over the key, then SplitMix64 with the seed and
                // attempt: a stable, well-mixed draw with no shared state.
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in key.to_string().bytes() {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
                }
                let mut z = h
                    ^ self.seed.rotate_left(17)
                    ^ u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                // A fraction in [0, 1] with 53 bits of precision.
                let fraction = (z >> 11) as f64 / ((1u64 << 53) - 1) as f64;
                cap.mul_f64(fraction)
            }
        }
    }

    /// The longest wait after failed attempt `attempt` (1-based): the
    /// initial backoff doubled per attempt, capped at `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// How the executor drives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutorConfig {
    /// This controller's name in leases and the audit history; unique per process.
    pub owner: String,
    /// Lease length; renewed every third of it.
    pub lease_ttl: Duration,
    /// How often the store is read for requests from people while waiting.
    pub poll_interval: Duration,
    /// Deploy retries.
    pub retry: RetryPolicy,
    /// How long a target may take to become ready after a deploy.
    pub ready_timeout: Duration,
    /// How often readiness is checked.
    pub ready_interval: Duration,
    /// How long one gate evaluation may take.
    pub gate_timeout: Duration,
    /// How long one deploy call may take before it counts as a failed
    /// (transient, so retried) attempt: a hung deployer must not hold a
    /// rollout forever.
    pub deploy_timeout: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            owner: "rollgate".into(),
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            retry: RetryPolicy::default(),
            ready_timeout: Duration::from_secs(300),
            ready_interval: Duration::from_secs(1),
            gate_timeout: Duration::from_secs(300),
            deploy_timeout: Duration::from_secs(600),
        }
    }
}

impl ExecutorConfig {
    /// Config with this owner name.
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }
    /// Config with this lease length.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
    /// Config with this polling interval.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll_interval = poll;
        self
    }
    /// Config with this retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// Config with this readiness timeout and check interval.
    pub fn with_readiness(mut self, timeout: Duration, interval: Duration) -> Self {
        self.ready_timeout = timeout;
        self.ready_interval = interval;
        self
    }
    /// Config with this gate timeout.
    pub fn with_gate_timeout(mut self, t: Duration) -> Self {
        self.gate_timeout = t;
        self
    }
    /// Config with this timeout for one deploy call.
    pub fn with_deploy_timeout(mut self, t: Duration) -> Self {
        self.deploy_timeout = t;
        self
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Report {
    /// The rollout.
    pub id: RolloutId,
    /// The outcome; `None` when the rollout is held for a person.
    pub outcome: Option<Outcome>,
    /// The final state.
    pub rollout: Rollout,
    /// Why the run stopped before the rollout finished or held, when it was
    /// asked to ([`Executor::run_until`]).
    pub interrupted: Option<String>,
}

impl Report {
    /// Whether the rollout waits for a person.
    pub fn is_held(&self) -> bool {
        matches!(self.rollout.status, Status::Held(_))
    }
}

/// Called after each event is applied: for progress displays.
pub type Observer = Arc<dyn Fn(&Rollout, &EventRecord) + Send + Sync>;

/// The lease under which a controller drives a rollout, as its deploy tasks
/// see it: a [`Deployer`] reads it through [`driving`], to pass the fencing
/// token on to its targets or to check the lease before a slow step.
///
/// The executor itself checks [`Driving::lease_valid`] before every deploy
/// call, so a controller that was frozen (SIGSTOP, a stalled VM) past its
/// lease never acts on resuming; a deployer that can hand `fence` to its
/// targets closes the window left between that check and the call.
///
/// ```
/// // Outside a deploy task nothing is being driven.
/// assert!(rollgate_deploy::driving().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct Driving {
    /// The rollout.
    pub rollout: RolloutId,
    /// The controller.
    pub owner: String,
    /// Its fencing token.
    pub fence: Fence,
    /// Until when (tokio's clock) the lease is known to hold: the instant
    /// before the last successful take or renewal, plus nine tenths of the
    /// lease length (a margin for the store's clock).
    valid_until: Arc<std::sync::Mutex<Instant>>,
}

impl Driving {
    fn new(rollout: RolloutId, owner: &str, fence: Fence, valid_until: Instant) -> Self {
        Self {
            rollout,
            owner: owner.to_owned(),
            fence,
            valid_until: Arc::new(std::sync::Mutex::new(valid_until)),
        }
    }

    /// Until when the lease is known to hold (tokio's clock).
    pub fn valid_until(&self) -> Instant {
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the lease is known to hold now. The store may still hold it
    /// for a little longer (it measured from a later instant); never shorter.
    pub fn lease_valid(&self) -> bool {
        Instant::now() < self.valid_until()
    }

    fn renewed(&self, until: Instant) {
        let mut g = self.valid_until.lock().unwrap_or_else(|e| e.into_inner());
        *g = (*g).max(until);
    }
}

tokio::task_local! {
    static DRIVING: Driving;
}

/// The lease of the controller on whose behalf the current task deploys,
/// inside a [`Deployer`] call made by an [`Executor`]; `None` elsewhere.
pub fn driving() -> Option<Driving> {
    DRIVING.try_with(Driving::clone).ok()
}

/// Runs every plan: one executor for canary, rolling, blue-green, rings...
///
/// ```
/// use rollgate_deploy::*;
/// use std::sync::Arc;
/// # use async_trait::async_trait;
/// # use std::{collections::BTreeMap, sync::Mutex};
/// # #[derive(Default)] struct InMemory(Mutex<BTreeMap<TargetId, Digest>>);
/// # #[async_trait] impl Deployer for InMemory {
/// #   async fn deploy(&self, t: &TargetId, a: &Artifact) -> Result<(), Error> { self.0.lock().unwrap().insert(t.clone(), a.digest.clone()); Ok(()) }
/// #   async fn current(&self, t: &TargetId) -> Result<Option<Digest>, Error> { Ok(self.0.lock().unwrap().get(t).cloned()) }
/// #   async fn readiness(&self, _: &TargetId) -> Result<Readiness, Error> { Ok(Readiness::Ready) }
/// # }
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
/// let targets: Vec<TargetId> = ["a", "b", "c", "d"].iter().map(|t| t.parse()).collect::<Result<_, _>>()?;
/// let plan = Strategy::Canary { steps: vec![Percent::new(25.0)?, Percent::FULL] }
///     .compile(&targets, &PhaseDefaults::default().with_bake(std::time::Duration::from_secs(60)))?;
/// let artifact = Artifact::new("v2", Digest::of_bytes(b"v2"));
/// let exec = Executor::new(Arc::new(MemoryStore::new()), Arc::new(InMemory::default()));
/// // The targets run nothing yet: without this, a rollback could not return
/// // them to it, so the request would be refused (`Error::Unrestorable`).
/// let req = RolloutRequest::new("web", artifact, plan, "alice").with_no_rollback_ok(true);
/// let report = exec.submit(req).await?;
/// assert_eq!(report.outcome, Some(Outcome::Succeeded));
/// # Ok::<(), Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Executor {
    store: Arc<dyn StateStore>,
    deployer: Arc<dyn Deployer>,
    gate: Option<Arc<dyn Gate>>,
    router: Option<Arc<dyn Router>>,
    config: ExecutorConfig,
    observer: Option<Observer>,
}

/// What a target was seen running, before it is changed.
struct Seen {
    /// The artifact a rollback returns it to, when known (or assumed).
    artifact: Option<Artifact>,
    /// What the audit should say about how it was found.
    note: Option<String>,
    /// Why a rollback could not return it to what it runs, if so.
    unrestorable: Option<String>,
}

impl Seen {
    fn known(a: Artifact) -> Self {
        Self {
            artifact: Some(a),
            note: None,
            unrestorable: None,
        }
    }
}

/// A finished deploy (forward) or restore task.
struct TaskDone {
    target: TargetId,
    forward: bool,
    result: Result<(), String>,
    retries: Vec<(u32, String)>,
    /// The lease lapsed before the deploy call: nothing was attempted.
    lapsed: bool,
}

/// Registers every series the executor emits, at zero, with the installed
/// `metrics` recorder: a scrape before the first event already has them,
/// and Prometheus' `increase()` counts the first event (a series that
/// first appears at 1 shows no increase).
fn register_metrics() {
    for action in Event::ACTIONS {
        metrics::counter!("rollgate_rollout_events_total", "action" => action).increment(0);
    }
    for outcome in Outcome::ALL {
        metrics::counter!("rollgate_rollouts_finished_total", "outcome" => outcome.as_str())
            .increment(0);
    }
    for result in ["ok", "failed"] {
        metrics::counter!("rollgate_deploys_total", "result" => result).increment(0);
        metrics::counter!("rollgate_restores_total", "result" => result).increment(0);
    }
    for decision in Decision::KINDS {
        metrics::counter!("rollgate_gate_decisions_total", "decision" => decision).increment(0);
    }
    metrics::counter!("rollgate_gate_errors_total").increment(0);
}

impl Executor {
    /// An executor with no gate, no router and default config. Every
    /// metric it emits is registered at zero with the installed `metrics`
    /// recorder.
    pub fn new(store: Arc<dyn StateStore>, deployer: Arc<dyn Deployer>) -> Self {
        register_metrics();
        Self {
            store,
            deployer,
            gate: None,
            router: None,
            config: ExecutorConfig::default(),
            observer: None,
        }
    }

    /// Asks `gate` after every phase that does not opt out ([`GateUse`]).
    pub fn with_gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Uses `router` for blue-green switches.
    pub fn with_router(mut self, router: Arc<dyn Router>) -> Self {
        self.router = Some(router);
        self
    }

    /// Uses this config.
    pub fn with_config(mut self, config: ExecutorConfig) -> Self {
        self.config = config;
        self
    }

    /// Calls `observer` after each applied event.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn StateStore> {
        &self.store
    }

    /// Validates and records a request; the same idempotency key returns the
    /// existing rollout.
    ///
    /// Before recording a new rollout it reads what every target runs: when
    /// a rollback could not return a target to it (an artifact neither the
    /// request nor the store knows, nothing at all, or an unreadable target
    /// and no `previous`), it fails with [`Error::Unrestorable`] and records
    /// nothing, unless the request allows a one-way deploy
    /// ([`RolloutRequest::with_no_rollback_ok`]).
    pub async fn create(&self, req: &RolloutRequest) -> Result<Created, Error> {
        req.artifact.validate()?;
        if let Some(p) = &req.previous {
            p.validate()?;
        }
        if req.service.trim().is_empty() {
            return Err(Error::invalid("service", "service name is empty"));
        }
        if req.plan.phases.is_empty() {
            return Err(Error::invalid("plan", "the plan has no phases"));
        }
        if req
            .idempotency_key
            .as_deref()
            .is_some_and(|k| k.trim().is_empty())
        {
            return Err(Error::invalid("idempotency key", "the key is empty"));
        }
        self.check_capabilities(req)?;
        let exists = match &req.idempotency_key {
            Some(k) => self.store.find_key(k).await?.is_some(),
            None => false,
        };
        if !exists && !req.no_rollback_ok {
            self.preflight(req).await?;
        }
        self.store.create(req).await
    }

    /// Records `req` as refused by precheck `check` (saying `reason`)
    /// without touching any target: the rollout exists, for the audit, and
    /// ends `refused` at once. The same idempotency key returns the
    /// rollout already made.
    pub async fn refuse(
        &self,
        req: &RolloutRequest,
        check: &str,
        reason: &str,
    ) -> Result<Created, Error> {
        req.artifact.validate()?;
        let created = self.store.create(req).await?;
        if created.existed {
            return Ok(created);
        }
        let id = created.id;
        let cfg = &self.config;
        let fence = self.store.lease(id, &cfg.owner, cfg.lease_ttl).await?;
        let writer = Writer::Controller {
            owner: &cfg.owner,
            fence,
        };
        let events = [
            Event::Refused {
                check: check.to_string(),
                reason: reason.to_string(),
            },
            Event::Finished {
                outcome: Outcome::Refused,
            },
        ];
        let appended = self.store.append(id, writer, &events).await;
        if let Err(e) = self.store.release(id, fence).await {
            debug!(rollout = %id, error = %e, "lease release failed");
        }
        appended?;
        Ok(created)
    }

    /// Creates the rollout (or finds it by idempotency key) and drives it.
    pub async fn submit(&self, req: RolloutRequest) -> Result<Report, Error> {
        let created = self.create(&req).await?;
        self.run(created.id).await
    }

    fn check_capabilities(&self, req: &RolloutRequest) -> Result<(), Error> {
        let phases = &req.plan.phases;
        if self.gate.is_none() && phases.iter().any(|p| p.gate == GateUse::Required) {
            return Err(Error::invalid(
                "plan",
                "phases require a gate but none is attached (Executor::with_gate)",
            ));
        }
        if self.gate.is_some() && phases.iter().all(|p| p.gate == GateUse::Skip) {
            return Err(Error::invalid(
                "plan",
                "a gate is attached but every phase of the plan skips it (GateUse::Skip); \
                 let the phases ask it or attach no gate",
            ));
        }
        if self.router.is_none()
            && req
                .plan
                .phases
                .iter()
                .any(|p| matches!(p.action, PhaseAction::Switch { .. }))
        {
            return Err(Error::invalid(
                "plan",
                "blue-green needs a router to switch traffic",
            ));
        }
        Ok(())
    }

    /// Drives rollout `id` until it finishes or holds for a person. Resumes
    /// from the store: a rollout a dead controller left half-way goes on
    /// where its log ends.
    pub async fn run(&self, id: RolloutId) -> Result<Report, Error> {
        self.run_until(id, std::future::pending()).await
    }

    /// Drives like [`Executor::run`], but once `stop` completes (a signal, a
    /// shutdown) stops at the next safe point: after the write in progress.
    /// Deploys in flight are abandoned (their intents are recorded, so
    /// whoever resumes redoes them, idempotently), an [`Event::Interrupted`]
    /// with `stop`'s reason is recorded, and the lease is released; the
    /// report's `interrupted` says why. Resuming (`run`, or `submit` with the
    /// same idempotency key) goes on from there.
    ///
    /// ```
    /// # use rollgate_deploy::*;
    /// # use std::sync::Arc;
    /// # use async_trait::async_trait;
    /// # use std::{collections::BTreeMap, sync::Mutex};
    /// # #[derive(Default)] struct InMemory(Mutex<BTreeMap<TargetId, Digest>>);
    /// # #[async_trait] impl Deployer for InMemory {
    /// #   async fn deploy(&self, t: &TargetId, a: &Artifact) -> Result<(), Error> { self.0.lock().unwrap().insert(t.clone(), a.digest.clone()); Ok(()) }
    /// #   async fn current(&self, t: &TargetId) -> Result<Option<Digest>, Error> { Ok(self.0.lock().unwrap().get(t).cloned()) }
    /// #   async fn readiness(&self, _: &TargetId) -> Result<Readiness, Error> { Ok(Readiness::Ready) }
    /// # }
    /// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
    /// let targets: Vec<TargetId> = vec!["a".parse()?, "b".parse()?];
    /// let plan = Strategy::Rolling { max_unavailable: 1 }
    ///     .compile(&targets, &PhaseDefaults::default().with_bake(std::time::Duration::from_secs(60)))?;
    /// let exec = Executor::new(Arc::new(MemoryStore::new()), Arc::new(InMemory::default()));
    /// let req = RolloutRequest::new("web", Artifact::new("v2", Digest::of_bytes(b"v2")), plan, "alice")
    ///     .with_no_rollback_ok(true); // fresh targets: nothing to roll back to
    /// let id = exec.create(&req).await?.id;
    /// let stop = async { tokio::time::sleep(std::time::Duration::from_secs(30)).await; "SIGTERM".to_string() };
    /// let report = exec.run_until(id, stop).await?;
    /// assert_eq!(report.interrupted.as_deref(), Some("SIGTERM"));
    /// assert_eq!(report.outcome, None);
    /// assert_eq!(exec.run(id).await?.outcome, Some(Outcome::Succeeded));
    /// # Ok::<(), Error>(()) }).unwrap();
    /// ```
    pub async fn run_until(
        &self,
        id: RolloutId,
        stop: impl std::future::Future<Output = String> + Send,
    ) -> Result<Report, Error> {
        let cfg = &self.config;
        let taken_at = Instant::now();
        let fence = self.store.lease(id, &cfg.owner, cfg.lease_ttl).await?;
        let lease = Driving::new(id, &cfg.owner, fence, taken_at + guarded(cfg.lease_ttl));
        let req = self.store.request(id).await?;
        // The root of the rollout's trace: phases (and the rollback) are its
        // children, deploys theirs.
        let span = info_span!(
            "rollout",
            rollout_id = %id,
            service = %req.service,
            service.version = %req.artifact.version,
            artifact.digest = %req.artifact.digest,
        );
        let result = async {
            self.check_capabilities(&req)?;
            let log = self.store.events(id, 0).await?;
            let mut rollout = Rollout::replay(id, req, &log)?;
            rollout.gate_attached = self.gate.is_some();
            self.drive(rollout, &lease, std::pin::pin!(stop)).await
        }
        .instrument(span)
        .await;
        // Best effort: an expired lease is harmless, a crashed store cannot release.
        if let Err(e) = self.store.release(id, fence).await {
            debug!(rollout = %id, error = %e, "lease release failed");
        }
        result
    }

    async fn append(&self, r: &mut Rollout, fence: Fence, events: &[Event]) -> Result<(), Error> {
        let writer = Writer::Controller {
            owner: &self.config.owner,
            fence,
        };
        // Which events announce something, judged on the state as stored
        // (a person's request may have landed since the last read).
        let mut notify = crate::notify_kinds(r, events);
        if notify.iter().any(Option::is_some) {
            self.sync(r).await?;
            notify = crate::notify_kinds(r, events);
        }
        self.store
            .append_notifying(r.id, writer, events, &notify)
            .await?;
        for e in events {
            metrics::counter!("rollgate_rollout_events_total", "action" => e.action()).increment(1);
            if let Event::Finished { outcome } = e {
                metrics::counter!("rollgate_rollouts_finished_total", "outcome" => outcome.as_str())
                    .increment(1);
            }
        }
        self.sync(r).await
    }

    async fn sync(&self, r: &mut Rollout) -> Result<(), Error> {
        for rec in self.store.events(r.id, r.last_seq).await? {
            r.apply(&rec)?;
            info!(
                seq = rec.seq,
                actor = %rec.actor,
                action = rec.event.action(),
                target = rec.event.target().map(|t| t.as_str()),
                outcome = %rec.event.outcome_text(),
                "rollout event"
            );
            if let Some(obs) = &self.observer {
                obs(r, &rec);
            }
        }
        Ok(())
    }

    async fn drive(
        &self,
        mut r: Rollout,
        lease: &Driving,
        mut stop: std::pin::Pin<&mut (impl std::future::Future<Output = String> + Send)>,
    ) -> Result<Report, Error> {
        let cfg = &self.config;
        let fence = lease.fence;
        let done = |r: Rollout| Report {
            id: r.id,
            outcome: r.outcome(),
            rollout: r,
            interrupted: None,
        };
        if r.is_finished() || r.decide_in_flight(&InFlight::default()) == [Action::Stop] {
            return Ok(done(r));
        }
        self.append(
            &mut r,
            fence,
            &[Event::ControllerStarted {
                owner: cfg.owner.clone(),
                fence: fence.0,
            }],
        )
        .await?;
        let mut tasks: JoinSet<TaskDone> = JoinSet::new();
        let mut running = InFlight::default();
        let mut ids: HashMap<tokio::task::Id, (TargetId, bool)> = HashMap::new();
        let mut bake: Option<((usize, u32, u32), Instant)> = None;
        let mut renew_at = Instant::now() + cfg.lease_ttl / 3;
        let mut stopped: Option<String> = None;
        let mut phase_span = PhaseSpan::default();
        loop {
            if stopped.is_none() {
                stopped = futures::FutureExt::now_or_never(stop.as_mut());
            }
            if Instant::now() >= renew_at {
                self.renew(lease).await?;
                renew_at = Instant::now() + cfg.lease_ttl / 3;
            }
            // Record every finished task in one append (group commit).
            let mut finished = Vec::new();
            while let Some(res) = tasks.try_join_next_with_id() {
                finished.push(res);
            }
            if !finished.is_empty() {
                let events = self.outcome_events(finished, &mut running, &mut ids);
                let events = lapsed(lease, events)?;
                self.append(&mut r, fence, &events).await?;
                continue;
            }
            phase_span.follow(&r);
            let actions = r.decide_in_flight(&running);
            let mut records = Vec::new();
            let mut starts = Vec::new();
            let mut wait_bake = None;
            let mut halt = false;
            let mut other = None;
            for a in actions {
                match a {
                    Action::Record(e) => records.push(e),
                    Action::Deploy { .. } | Action::Restore { .. } => starts.push(a),
                    Action::Bake { phase, duration } => wait_bake = Some((phase, duration)),
                    Action::Stop => halt = true,
                    Action::Wait => {}
                    Action::Switch { .. } | Action::AskGate(_) => other = Some(a),
                }
            }
            if halt {
                break;
            }
            // A safe point: every write so far is durable, and the rollout
            // has more to do (a finished or held one just ends).
            if let Some(reason) = stopped {
                return self.interrupt(r, fence, tasks, running, ids, reason).await;
            }
            if !records.is_empty() {
                self.append(&mut r, fence, &records).await?;
                continue;
            }
            if !starts.is_empty() {
                let starts = self
                    .renewing(lease, self.within_budget(&r, starts, &running))
                    .await?;
                if !starts.is_empty() {
                    self.start_tasks(&mut r, lease, starts, &mut tasks, &mut running, &mut ids)
                        // Deploy spans are children of the phase's span.
                        .instrument(phase_span.span().clone())
                        .await?;
                    continue;
                }
                // Taking another target out would break `max_unavailable`:
                // wait for in-flight work or readiness to come back.
                debug!(rollout = %r.id, "waiting: max_unavailable reached");
            }
            match other {
                Some(Action::Switch { to, back }) => {
                    if !back && !r.switch_intent {
                        self.append(&mut r, fence, &[Event::SwitchIntent { to: to.clone() }])
                            .await?;
                    }
                    let event = self.renewing(lease, self.switch(&r, &to, back)).await?;
                    self.append(&mut r, fence, &event).await?;
                    continue;
                }
                Some(Action::AskGate(ctx)) => {
                    // A gate may take minutes; asking again later is harmless.
                    // Biased: branches polled in order, so that a run is a
                    // function of its inputs (tokio picks at random otherwise).
                    tokio::select! {
                        biased;
                        event = self.renewing(lease, self.ask_gate(&ctx)).instrument(phase_span.span().clone()) => {
                            self.append(&mut r, fence, &[event?]).await?;
                        }
                        reason = stop.as_mut() => stopped = Some(reason),
                    }
                    continue;
                }
                _ => {}
            }
            // Nothing to start: wait for a task, the bake deadline or the next poll.
            let deadline = wait_bake.map(|(phase, duration)| {
                let key = (phase, r.gate_asks, r.gate_errors);
                match bake {
                    Some((k, at)) if k == key => at,
                    _ => {
                        let at = Instant::now() + duration;
                        bake = Some((key, at));
                        at
                    }
                }
            });
            if let Some(at) = deadline
                && Instant::now() >= at
            {
                bake = None;
                let phase = r.phase;
                self.append(&mut r, fence, &[Event::BakeElapsed { phase }])
                    .await?;
                continue;
            }
            let poll = sleep(cfg.poll_interval.min(cfg.lease_ttl / 3));
            // Biased (finished work first): deterministic, as above.
            tokio::select! {
                biased;
                Some(res) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let events = self.outcome_events(vec![res], &mut running, &mut ids);
                    let events = lapsed(lease, events)?;
                    self.append(&mut r, fence, &events).await?;
                }
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
                _ = poll => {
                    self.sync(&mut r).await?;
                }
                reason = stop.as_mut() => stopped = Some(reason),
            }
        }
        if r.stage == Stage::Baking && !r.is_finished() {
            debug!(rollout = %r.id, "stopping while baking");
        }
        Ok(done(r))
    }

    /// Keeps the fresh forward deploys of `starts` that fit the plan's
    /// `max_unavailable`: targets in flight and targets that are not ready
    /// (whatever they run) are unavailable; restores and redone deploys
    /// always pass.
    async fn within_budget(
        &self,
        r: &Rollout,
        starts: Vec<Action>,
        running: &InFlight,
    ) -> Vec<Action> {
        let Some(max) = r.request.plan.max_unavailable else {
            return starts;
        };
        let fresh = |a: &Action| matches!(a, Action::Deploy { fresh: true, .. });
        if r.status != Status::Running || !starts.iter().any(fresh) {
            return starts;
        }
        // One target at a time, stopping once the budget is spent.
        let mut not_ready = 0;
        for t in r.targets.keys() {
            if running.len() + not_ready >= max {
                break;
            }
            if !running.contains(t)
                && !matches!(self.deployer.readiness(t).await, Ok(Readiness::Ready))
            {
                not_ready += 1;
            }
        }
        let mut budget = max.saturating_sub(running.len() + not_ready);
        starts
            .into_iter()
            .filter(|a| {
                if !fresh(a) {
                    return true;
                }
                let keep = budget > 0;
                budget = budget.saturating_sub(1);
                keep
            })
            .collect()
    }

    /// Stops at a safe point: records what already finished, then the
    /// interruption; abandons what is in flight (recorded intents make it
    /// in doubt, and whoever resumes redoes it).
    async fn interrupt(
        &self,
        mut r: Rollout,
        fence: Fence,
        mut tasks: JoinSet<TaskDone>,
        mut running: InFlight,
        mut ids: HashMap<tokio::task::Id, (TargetId, bool)>,
        reason: String,
    ) -> Result<Report, Error> {
        let mut finished = Vec::new();
        while let Some(res) = tasks.try_join_next_with_id() {
            finished.push(res);
        }
        // A deploy that stopped because the lease lapsed recorded nothing;
        // it stays in doubt, as the ones abandoned below.
        let mut events: Vec<Event> = self
            .outcome_events(finished, &mut running, &mut ids)
            .into_iter()
            .flatten()
            .collect();
        if !running.is_empty() {
            info!(rollout = %r.id, in_flight = running.len(), "abandoning in-flight work; its intent is recorded");
        }
        tasks.abort_all();
        events.push(Event::Interrupted {
            reason: reason.clone(),
        });
        self.append(&mut r, fence, &events).await?;
        warn!(rollout = %r.id, %reason, "stopped on request");
        Ok(Report {
            id: r.id,
            outcome: r.outcome(),
            rollout: r,
            interrupted: Some(reason),
        })
    }

    fn outcome_events(
        &self,
        finished: Vec<Result<(tokio::task::Id, TaskDone), tokio::task::JoinError>>,
        running: &mut InFlight,
        ids: &mut HashMap<tokio::task::Id, (TargetId, bool)>,
    ) -> Option<Vec<Event>> {
        let mut events = Vec::new();
        let mut lapsed = false;
        for res in finished {
            let done = match res {
                Ok((id, d)) => {
                    ids.remove(&id);
                    d
                }
                Err(e) => {
                    // A panicking deployer must not take the controller down.
                    warn!(error = %e, "deploy task failed to complete");
                    let Some((target, forward)) = ids.remove(&e.id()) else {
                        continue;
                    };
                    TaskDone {
                        target,
                        forward,
                        result: Err(format!("deployer panicked: {e}")),
                        retries: Vec::new(),
                        lapsed: false,
                    }
                }
            };
            let TaskDone {
                target,
                forward,
                result,
                retries,
                lapsed: lapsed_here,
            } = done;
            running.finish(&target);
            if lapsed_here {
                // Not attempted: the lease lapsed first. Nothing to record.
                lapsed = true;
                continue;
            }
            for (attempt, error) in retries {
                events.push(Event::DeployRetried {
                    target: target.clone(),
                    attempt,
                    error,
                });
            }
            let ok = if result.is_ok() { "ok" } else { "failed" };
            if forward {
                metrics::counter!("rollgate_deploys_total", "result" => ok).increment(1);
            } else {
                metrics::counter!("rollgate_restores_total", "result" => ok).increment(1);
            }
            events.push(match (forward, result) {
                (true, Ok(())) => Event::TargetDeployed { target },
                (true, Err(reason)) => Event::TargetFailed { target, reason },
                (false, Ok(())) => Event::TargetRestored { target },
                (false, Err(reason)) => Event::RestoreFailed { target, reason },
            });
        }
        (!lapsed).then_some(events)
    }

    /// Awaits `work` while renewing the lease every third of its length, so a
    /// slow gate, switch or deployer never lets the lease lapse under us.
    /// Renews the lease; a different fence means another controller took the
    /// rollout over in between (even under our name), so we stop.
    async fn renew(&self, lease: &Driving) -> Result<(), Error> {
        let (id, fence) = (lease.rollout, lease.fence);
        let asked_at = Instant::now();
        let now = self
            .store
            .lease(id, &self.config.owner, self.config.lease_ttl)
            .await?;
        if now != fence {
            // The lease lapsed and this call took it anew (a frozen
            // controller woke up after its successor let go): give it back
            // at once rather than block the rollout for a whole lease.
            if let Err(e) = self.store.release(id, now).await {
                debug!(rollout = %id, error = %e, "lease release failed");
            }
            return Err(Error::StaleFence {
                rollout: id,
                fence: fence.0,
            });
        }
        lease.renewed(asked_at + guarded(self.config.lease_ttl));
        Ok(())
    }

    async fn renewing<F: std::future::Future>(
        &self,
        lease: &Driving,
        work: F,
    ) -> Result<F::Output, Error> {
        let every = self.config.lease_ttl / 3;
        tokio::pin!(work);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return Ok(out),
                _ = sleep(every) => {
                    self.renew(lease).await?;
                }
            }
        }
    }

    /// The intent to record before starting `a`, if it needs one.
    async fn intent_for(&self, r: &Rollout, a: &Action) -> Option<Event> {
        match a {
            Action::Deploy {
                target,
                fresh: true,
            } => {
                let (previous, note) = self.previous_of(r, target).await;
                Some(Event::DeployIntent {
                    target: target.clone(),
                    previous,
                    note,
                })
            }
            Action::Restore {
                target,
                to,
                fresh: true,
            } => Some(Event::RestoreIntent {
                target: target.clone(),
                to: to.clone(),
            }),
            _ => None,
        }
    }

    async fn previous_of(
        &self,
        r: &Rollout,
        target: &TargetId,
    ) -> (Option<Artifact>, Option<String>) {
        let seen = self.what_runs(&r.request, target).await;
        (seen.artifact, seen.note)
    }

    /// What `target` runs now, as an artifact a rollback can return it to.
    async fn what_runs(&self, req: &RolloutRequest, target: &TargetId) -> Seen {
        // The plan's `previous` stands in only when a target cannot say what
        // it runs, and the audit says so: the note keeps what was seen.
        let unreadable = |why: String| match &req.previous {
            Some(p) => Seen {
                artifact: Some(p.clone()),
                note: Some(why),
                unrestorable: None,
            },
            None => Seen {
                artifact: None,
                note: Some(why.clone()),
                unrestorable: Some(why),
            },
        };
        let unknown = |why: String| Seen {
            artifact: None,
            note: Some(why.clone()),
            unrestorable: Some(why),
        };
        match self.deployer.current(target).await {
            Ok(Some(d)) => {
                if let Some(a) = req.declared(&d) {
                    return Seen::known(a.clone());
                }
                match self.store.artifact(&d).await {
                    Ok(Some(a)) => Seen::known(a),
                    Ok(None) => unknown(format!("runs {d}, which is not a known artifact")),
                    Err(e) => unreadable(format!("artifact registry: {e}")),
                }
            }
            Ok(None) => Seen {
                artifact: None,
                note: None,
                unrestorable: Some("runs nothing; a rollback cannot uninstall".into()),
            },
            Err(Error::UnknownArtifact { runs, .. }) => {
                unknown(format!("runs {runs:?}, which is not a known artifact"))
            }
            Err(e) => unreadable(format!("reading what it runs failed: {e}")),
        }
    }

    /// Reads what every target of `req` runs and refuses when a rollback
    /// could not return one of them to it (unless the request allows a
    /// one-way deploy). Changes nothing.
    async fn preflight(&self, req: &RolloutRequest) -> Result<(), Error> {
        // Futures of a named fn, collected first: a closure returning an
        // async block here makes the whole future not `Send` for every
        // lifetime (rustc #64552), which servers that spawn it need.
        let reads: Vec<_> = req
            .plan
            .targets()
            .map(|t| self.unrestorable_of(req, t))
            .collect();
        let mut unrestorable: Vec<(TargetId, String)> = futures::StreamExt::collect::<Vec<_>>(
            futures::StreamExt::buffered(futures::stream::iter(reads), 32),
        )
        .await
        .into_iter()
        .flatten()
        .collect();
        if unrestorable.is_empty() {
            return Ok(());
        }
        unrestorable.sort_by(|a, b| crate::types::natural_cmp(a.0.as_str(), b.0.as_str()));
        Err(Error::Unrestorable {
            targets: unrestorable,
        })
    }

    async fn unrestorable_of(
        &self,
        req: &RolloutRequest,
        t: &TargetId,
    ) -> Option<(TargetId, String)> {
        let seen = self.what_runs(req, t).await;
        seen.unrestorable.map(|why| (t.clone(), why))
    }

    async fn start_tasks(
        &self,
        r: &mut Rollout,
        lease: &Driving,
        starts: Vec<Action>,
        tasks: &mut JoinSet<TaskDone>,
        running: &mut InFlight,
        ids: &mut HashMap<tokio::task::Id, (TargetId, bool)>,
    ) -> Result<(), Error> {
        // Intents first, all in one append; then the work. What each target
        // runs now is read concurrently, under lease renewal.
        let fence = lease.fence;
        let rr: &Rollout = r;
        let reads: Vec<_> = starts.iter().map(|a| self.intent_for(rr, a)).collect();
        let intents: Vec<Event> = self
            .renewing(
                lease,
                futures::StreamExt::collect::<Vec<_>>(
                    // At most 32 reads at once: each may be a process or a connection.
                    futures::StreamExt::buffered(futures::stream::iter(reads), 32),
                ),
            )
            .await?
            .into_iter()
            .flatten()
            .collect();
        if !intents.is_empty() {
            self.append(r, fence, &intents).await?;
        }
        for a in starts {
            let (target, artifact, forward) = match a {
                Action::Deploy { target, .. } => (target, r.request.artifact.clone(), true),
                Action::Restore { target, to, .. } => (target, to, false),
                _ => continue,
            };
            running.start(target.clone(), forward);
            let deployer = Arc::clone(&self.deployer);
            let cfg = self.config.clone();
            let span = info_span!("deploy", target = %target, version = %artifact.version, artifact.digest = %artifact.digest, restore = !forward);
            let task_target = target.clone();
            let driving = lease.clone();
            let handle = tasks.spawn(
                DRIVING
                    .scope(driving.clone(), async move {
                        match deploy_one(&*deployer, &target, &artifact, &cfg, &driving).await {
                            Some((result, retries)) => TaskDone {
                                target,
                                forward,
                                result,
                                retries,
                                lapsed: false,
                            },
                            None => TaskDone {
                                target,
                                forward,
                                result: Ok(()),
                                retries: Vec::new(),
                                lapsed: true,
                            },
                        }
                    })
                    .instrument(span),
            );
            ids.insert(handle.id(), (task_target, forward));
        }
        Ok(())
    }

    async fn switch(&self, r: &Rollout, to: &[TargetId], back: bool) -> Vec<Event> {
        let Some(router) = &self.router else {
            return vec![Event::SwitchFailed {
                reason: "no router configured".into(),
            }];
        };
        let mut last = String::new();
        for attempt in 1..=self.config.retry.max_attempts.max(1) {
            match router.switch(&r.request.service, to).await {
                Ok(()) => {
                    return vec![if back {
                        Event::SwitchedBack { to: to.to_vec() }
                    } else {
                        Event::Switched { to: to.to_vec() }
                    }];
                }
                Err(e) => {
                    last = e.to_string();
                    if attempt < self.config.retry.max_attempts {
                        sleep(self.config.retry.delay(attempt, &r.request.service)).await;
                    }
                }
            }
        }
        if back {
            vec![
                Event::SwitchFailed {
                    reason: format!("switching back failed: {last}"),
                },
                Event::Finished {
                    outcome: Outcome::RollbackFailed,
                },
            ]
        } else {
            vec![Event::SwitchFailed { reason: last }]
        }
    }

    async fn ask_gate(&self, ctx: &crate::GateContext) -> Event {
        let phase = ctx.phase;
        let Some(gate) = &self.gate else {
            return Event::GateErrored {
                phase,
                error: "no gate configured".into(),
            };
        };
        let verdict = timeout(self.config.gate_timeout, gate.evaluate_with_evidence(ctx)).await;
        match verdict {
            Ok(Ok((decision, evidence))) => {
                metrics::counter!("rollgate_gate_decisions_total", "decision" => decision.kind())
                    .increment(1);
                Event::GateDecided {
                    phase,
                    decision,
                    evidence: evidence.map(Box::new),
                }
            }
            Ok(Err(e)) => {
                metrics::counter!("rollgate_gate_errors_total").increment(1);
                Event::GateErrored {
                    phase,
                    error: e.to_string(),
                }
            }
            Err(_) => {
                metrics::counter!("rollgate_gate_errors_total").increment(1);
                Event::GateErrored {
                    phase,
                    error: format!(
                        "gate timed out after {}",
                        humantime::format_duration(self.config.gate_timeout)
                    ),
                }
            }
        }
    }
}

/// The span of the part of a rollout being driven: one `phase` span per
/// phase (a child of the `rollout` span), then one `rollback` span while
/// touched targets are restored. Deploys and gate calls are its children.
#[derive(Default)]
struct PhaseSpan {
    /// (phase index, rolling back) the span is for.
    key: Option<(usize, bool)>,
    span: Option<tracing::Span>,
}

impl PhaseSpan {
    /// Opens the span of the part `r` is in, closing the previous one when
    /// it changed. Called inside the `rollout` span, its parent.
    fn follow(&mut self, r: &Rollout) {
        let back = matches!(r.status, Status::RollingBack { .. });
        let key = (r.phase, back);
        if self.key == Some(key) || r.is_finished() {
            return;
        }
        self.key = Some(key);
        self.span = if back {
            Some(info_span!("rollback", phase = r.phase))
        } else {
            // Past the last phase there is nothing left but to finish.
            r.request.plan.phases.get(r.phase).map(|phase| {
                info_span!(
                    "phase",
                    phase = r.phase,
                    name = phase.name.as_str(),
                    percent = phase.percent.get(),
                    targets = phase.targets.len(),
                )
            })
        };
    }

    /// The current part's span (the `rollout` span's child), or the current
    /// span before the first part opens.
    fn span(&self) -> &tracing::Span {
        static NONE: std::sync::OnceLock<tracing::Span> = std::sync::OnceLock::new();
        self.span
            .as_ref()
            .unwrap_or_else(|| NONE.get_or_init(tracing::Span::none))
    }
}

/// How long after asking for (or renewing) a lease this controller counts
/// on it: a tenth less than its length, for the store's clock resolution and
/// drift between the store's clock and ours.
fn guarded(ttl: Duration) -> Duration {
    ttl - ttl / 10
}

/// The events of finished tasks, or [`Error::LeaseLapsed`] when one of them
/// found the lease lapsed (the others stay in doubt and are redone).
fn lapsed(lease: &Driving, events: Option<Vec<Event>>) -> Result<Vec<Event>, Error> {
    events.ok_or(Error::LeaseLapsed {
        rollout: lease.rollout,
        fence: lease.fence.0,
    })
}

/// Deploys with retries, then waits for readiness. `None` when the lease
/// lapsed before a deploy call (that call is not made) or during one (its
/// answer is not reported).
async fn deploy_one(
    deployer: &dyn Deployer,
    target: &TargetId,
    artifact: &Artifact,
    cfg: &ExecutorConfig,
    lease: &Driving,
) -> Option<(Result<(), String>, Vec<(u32, String)>)> {
    let mut retries = Vec::new();
    let attempts = cfg.retry.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        // Nothing may await between this check and the call.
        if !lease.lease_valid() {
            return None;
        }
        let call = timeout(cfg.deploy_timeout, deployer.deploy(target, artifact)).await;
        let call = call.unwrap_or_else(|_| {
            Err(Error::Deploy {
                target: target.clone(),
                reason: format!(
                    "deploy timed out after {}",
                    humantime::format_duration(cfg.deploy_timeout)
                ),
                transient: true,
            })
        });
        // The lease lapsed while the call ran (the controller was frozen):
        // report nothing; whoever holds the rollout now redoes the target.
        if !lease.lease_valid() {
            return None;
        }
        match call {
            Ok(()) => break,
            Err(e) => {
                let transient = matches!(
                    e,
                    Error::Deploy {
                        transient: true,
                        ..
                    }
                );
                let msg = match &e {
                    Error::Deploy { reason, .. } => reason.clone(),
                    other => other.to_string(),
                };
                if !transient || attempt >= attempts {
                    let msg = if attempt > 1 {
                        format!("{msg} (after {attempt} attempts)")
                    } else {
                        msg
                    };
                    return Some((Err(msg), retries));
                }
                retries.push((attempt, msg));
                sleep(cfg.retry.delay(attempt, target)).await;
                attempt += 1;
            }
        }
    }
    let deadline = Instant::now() + cfg.ready_timeout;
    loop {
        let why = match deployer.readiness(target).await {
            Ok(Readiness::Ready) => return Some((Ok(()), retries)),
            Ok(Readiness::NotReady(why)) => why,
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Some((
                Err(format!(
                    "not ready after {}: {why}",
                    humantime::format_duration(cfg.ready_timeout)
                )),
                retries,
            ));
        }
        sleep(cfg.ready_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_secs(2));
        assert_eq!(p.backoff(6), Duration::from_secs(30));
        assert_eq!(p.backoff(100), Duration::from_secs(30));
    }

    #[test]
    fn full_jitter_spreads_targets_within_the_backoff_and_is_seeded() {
        let p = RetryPolicy::default().with_seed(20261206);
        let targets: Vec<TargetId> = (0..1000)
            .map(|i| format!("web-{i}").parse().unwrap())
            .collect();
        for attempt in 1..=6 {
            let cap = p.backoff(attempt);
            let waits: Vec<Duration> = targets.iter().map(|t| p.delay(attempt, t)).collect();
            assert!(waits.iter().all(|w| *w <= cap));
            // Uniform on [0, cap]: the mean is near cap / 2 and every tenth
            // of the range is used.
            let mean = waits.iter().map(Duration::as_secs_f64).sum::<f64>() / 1000.0;
            let half = cap.as_secs_f64() / 2.0;
            assert!(
                (mean - half).abs() < 0.05 * cap.as_secs_f64(),
                "{mean} vs {half}"
            );
            let mut deciles = [0; 10];
            for w in &waits {
                let d = ((w.as_secs_f64() / cap.as_secs_f64()) * 10.0).min(9.0) as usize;
                deciles[d] += 1;
            }
            assert!(deciles.iter().all(|&n| n > 60), "{deciles:?}");
            // Same seed, same waits; another seed, other waits.
            let again = RetryPolicy::default().with_seed(20261206);
            assert!(
                targets
                    .iter()
                    .all(|t| again.delay(attempt, t) == p.delay(attempt, t))
            );
            let other = RetryPolicy::default().with_seed(1);
            let same = targets
                .iter()
                .filter(|t| other.delay(attempt, t) == p.delay(attempt, t))
                .count();
            assert!(same < 10, "{same} equal waits under another seed");
        }
        let none = RetryPolicy::default().with_jitter(Jitter::None);
        assert_eq!(none.delay(3, &targets[0]), Duration::from_secs(4));
    }
}
