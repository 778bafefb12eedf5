//! The `StateStore` seam and the in-memory store.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::notify::check_notify;
use crate::{
    Artifact, Digest, Error, Event, EventRecord, Fence, Notification, NotificationId, NotifyKind,
    Outcome, RolloutId, RolloutRequest,
};

/// Who appends: a controller holding the lease, or a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer<'a> {
    /// A controller; its fence must be current.
    Controller {
        /// Its owner name.
        owner: &'a str,
        /// The fence its lease gave it.
        fence: Fence,
    },
    /// A person; may only append `*Requested` events.
    Person(&'a str),
}

impl Writer<'_> {
    /// The fence a controller writes under; none for a person.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn fence(&self) -> Option<Fence> {
        match self {
            Writer::Controller { fence, .. } => Some(*fence),
            Writer::Person(_) => None,
        }
    }

    /// The name recorded as the actor.
    pub fn actor(&self) -> &str {
        match self {
            Writer::Controller { owner, .. } => owner,
            Writer::Person(p) => p,
        }
    }
}

/// What `create` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    /// The rollout.
    pub id: RolloutId,
    /// True when the idempotency key matched an existing rollout.
    pub existed: bool,
}

/// Who holds a rollout's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// The owner.
    pub owner: String,
    /// Its fence.
    pub fence: Fence,
    /// Time left; zero when expired.
    pub expires_in: Duration,
}

/// An unfinished rollout as a controller looking for work sees it:
/// [`StateStore::unfinished_leases`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UnfinishedRollout {
    /// The rollout.
    pub id: RolloutId,
    /// Who holds its lease, if anyone (an expired one too).
    pub lease: Option<LeaseInfo>,
    /// The sequence number of its last event (0: none yet).
    pub last_seq: u64,
}

impl UnfinishedRollout {
    /// The rollout `id` with `lease` and `last_seq`.
    pub fn new(id: RolloutId, lease: Option<LeaseInfo>, last_seq: u64) -> Self {
        Self {
            id,
            lease,
            last_seq,
        }
    }
}

/// One line of a rollout listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutSummary {
    /// The rollout.
    pub id: RolloutId,
    /// Its service.
    pub service: String,
    /// Its artifact.
    pub artifact: Artifact,
    /// Who asked.
    pub actor: String,
    /// When it was created, ms since the epoch.
    pub created_ms: i64,
    /// How it ended, when it has.
    pub outcome: Option<Outcome>,
}

/// Which rollouts a listing returns: newest first, every condition must hold.
///
/// ```
/// use rollgate_deploy::{ListFilter, Outcome};
/// let f = ListFilter::default().with_service("web").with_outcome(Some(Outcome::RolledBack)).with_limit(20);
/// assert_eq!(f.limit, Some(20));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListFilter {
    /// Only this service.
    pub service: Option<String>,
    /// `Some(Some(o))`: only finished with outcome `o`; `Some(None)`: only unfinished.
    pub outcome: Option<Option<Outcome>>,
    /// Only rollouts created at or after this time (ms since the Unix epoch).
    pub since_ms: Option<i64>,
    /// At most this many (the newest).
    pub limit: Option<usize>,
}

impl ListFilter {
    /// Only this service.
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }
    /// Only this outcome (`None`: only unfinished rollouts).
    pub fn with_outcome(mut self, outcome: Option<Outcome>) -> Self {
        self.outcome = Some(outcome);
        self
    }
    /// Only rollouts created at or after `ms` since the Unix epoch.
    pub fn with_since_ms(mut self, ms: i64) -> Self {
        self.since_ms = Some(ms);
        self
    }
    /// At most `n` rollouts.
    pub fn with_limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }
    /// Whether `s` passes every condition but the limit.
    pub fn matches(&self, s: &RolloutSummary) -> bool {
        self.service.as_ref().is_none_or(|x| *x == s.service)
            && self.outcome.is_none_or(|o| o == s.outcome)
            && self.since_ms.is_none_or(|t| s.created_ms >= t)
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// An event as the SQL stores write it: its action, target, JSON body and
/// the notification it causes, if any.
pub(crate) type EventRow = (&'static str, Option<String>, String, Option<NotifyKind>);

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// Encodes `events` for a SQL store on the caller's thread (the writer only
/// writes), with the outcome of a `finished` among them.
pub(crate) fn encode_events(
    events: &[Event],
    notify: &[Option<NotifyKind>],
) -> Result<(Vec<EventRow>, Option<&'static str>), Error> {
    check_notify(events, notify)?;
    let mut outcome = None;
    let rows = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if let Event::Finished { outcome: o } = e {
                outcome = Some(o.as_str());
            }
            Ok((
                e.action(),
                e.target().map(|t| t.as_str().to_owned()),
                to_json(e)?,
                notify.get(i).copied().flatten(),
            ))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok((rows, outcome))
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// JSON for a stored value (a request, an event).
pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v)
        .map_err(|e| Error::Store("cannot encode".into(), Some(crate::Cause::new(e))))
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// One listing row as the SQL stores keep it, before it is checked.
pub(crate) struct SummaryRow {
    pub(crate) id: i64,
    pub(crate) service: String,
    pub(crate) version: String,
    pub(crate) digest: String,
    pub(crate) sbom: Option<String>,
    pub(crate) actor: String,
    pub(crate) created_ms: i64,
    pub(crate) outcome: Option<String>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl SummaryRow {
    /// The summary; `store` names the store in errors about corrupt rows.
    pub(crate) fn into_summary(self, store: &str) -> Result<RolloutSummary, Error> {
        let id = self.id;
        let digest = self.digest.parse().map_err(|e| {
            Error::Store(format!("{store}: rollout {id}: recorded digest: {e}"), None)
        })?;
        Ok(RolloutSummary {
            id: RolloutId(id as u64),
            service: self.service,
            artifact: Artifact {
                version: self.version,
                digest,
                sbom: self.sbom,
            },
            actor: self.actor,
            created_ms: self.created_ms,
            outcome: parse_outcome(store, self.outcome)?,
        })
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
/// A recorded outcome (`succeeded`, `rolled_back`, ...) back as an [`Outcome`].
pub(crate) fn parse_outcome(store: &str, o: Option<String>) -> Result<Option<Outcome>, Error> {
    o.map(|o| {
        serde_json::from_value::<Outcome>(serde_json::Value::String(o)).map_err(|e| {
            Error::Store(
                format!("{store}: corrupt outcome"),
                Some(crate::Cause::new(e)),
            )
        })
    })
    .transpose()
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl ListFilter {
    /// The outcome condition as SQL parameters: `(0, None)` any, `(1, None)`
    /// unfinished, `(2, Some(o))` finished with `o`.
    pub(crate) fn sql_outcome(&self) -> (i32, Option<&'static str>) {
        match self.outcome {
            None => (0, None),
            Some(None) => (1, None),
            Some(Some(o)) => (2, Some(o.as_str())),
        }
    }
}

/// Durable rollout state: requests, event logs, leases, the artifact
/// registry and the notification outbox.
///
/// Implementations must make `append` atomic (all events or none, with
/// their outbox rows), reject a controller write whose fence is not the
/// lease's current one ([`Error::StaleFence`]), and reject every write to a
/// rollout whose log has a `Finished` event ([`Error::Finished`]).
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Creates the rollout, or returns the one already made with this idempotency key.
    /// Registers the request's artifact, `previous` and `known` artifacts.
    async fn create(&self, req: &RolloutRequest) -> Result<Created, Error>;
    /// The rollout created with this idempotency key, if any.
    async fn find_key(&self, key: &str) -> Result<Option<RolloutId>, Error>;
    /// The request a rollout was created from.
    async fn request(&self, id: RolloutId) -> Result<RolloutRequest, Error>;
    /// Appends events atomically; returns the last sequence number. Refused
    /// with a stale fence, or once the rollout has finished. Causes no
    /// notification: see [`StateStore::append_notifying`].
    async fn append(
        &self,
        id: RolloutId,
        writer: Writer<'_>,
        events: &[Event],
    ) -> Result<u64, Error> {
        self.append_notifying(id, writer, events, &[]).await
    }
    /// Appends events atomically, as [`StateStore::append`], and in the same
    /// transaction an outbox row for every event `i` with `notify[i] =
    /// Some(kind)` and every destination of the request that
    /// [wants](crate::Destination::wants) `kind`. `notify` is empty or has
    /// one entry per event. A `started` notification is written at most once
    /// per rollout and destination.
    async fn append_notifying(
        &self,
        id: RolloutId,
        writer: Writer<'_>,
        events: &[Event],
        notify: &[Option<NotifyKind>],
    ) -> Result<u64, Error>;
    /// Events with sequence numbers above `after`, in order.
    async fn events(&self, id: RolloutId, after: u64) -> Result<Vec<EventRecord>, Error>;
    /// Takes or renews the lease. A new owner gets a higher fence; the same
    /// owner keeps its fence. Fails with [`Error::LeaseHeld`] while another
    /// owner's lease runs.
    async fn lease(&self, id: RolloutId, owner: &str, ttl: Duration) -> Result<Fence, Error>;
    /// Gives the lease up, if `fence` still holds it.
    async fn release(&self, id: RolloutId, fence: Fence) -> Result<(), Error>;
    /// Who holds the lease, if anyone.
    async fn lease_info(&self, id: RolloutId) -> Result<Option<LeaseInfo>, Error>;
    /// Clears the lease if `owner` holds it: for an owner known to be dead.
    async fn break_lease(&self, id: RolloutId, owner: &str) -> Result<(), Error>;
    /// Rollouts without a `Finished` event, oldest first.
    async fn unfinished(&self) -> Result<Vec<RolloutId>, Error>;
    /// Rollouts without a `Finished` event, oldest first, each with its
    /// lease and last sequence number: what a controller looking for
    /// rollouts to adopt reads. The default asks [`StateStore::unfinished`],
    /// then [`StateStore::lease_info`] and [`StateStore::events`] per
    /// rollout; the SQL stores answer in one query.
    async fn unfinished_leases(&self) -> Result<Vec<UnfinishedRollout>, Error> {
        let mut out = Vec::new();
        for id in self.unfinished().await? {
            let lease = self.lease_info(id).await?;
            let last_seq = self.events(id, 0).await?.last().map_or(0, |e| e.seq);
            out.push(UnfinishedRollout::new(id, lease, last_seq));
        }
        Ok(out)
    }
    /// Rollouts, newest first, optionally of one service.
    async fn list(&self, service: Option<&str>) -> Result<Vec<RolloutSummary>, Error>;
    /// Rollouts passing `filter`, newest first. The default filters
    /// [`StateStore::list`]; stores override it to filter where the data is.
    async fn list_where(&self, filter: &ListFilter) -> Result<Vec<RolloutSummary>, Error> {
        let mut all = self.list(filter.service.as_deref()).await?;
        all.retain(|s| filter.matches(s));
        if let Some(n) = filter.limit {
            all.truncate(n);
        }
        Ok(all)
    }
    /// Records an artifact; a digest already recorded with other content is an error.
    async fn register_artifact(&self, artifact: &Artifact) -> Result<(), Error>;
    /// The artifact recorded under `digest`.
    async fn artifact(&self, digest: &Digest) -> Result<Option<Artifact>, Error>;
    /// Claims up to `limit` undelivered notifications that no one holds a
    /// live claim on, oldest first, for `owner` until `ttl` passes.
    async fn claim_notifications(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Notification>, Error>;
    /// Marks a notification delivered (whoever holds its claim: delivery is
    /// at least once). Unknown ids are [`Error::NotFound`].
    async fn notification_delivered(&self, id: NotificationId, owner: &str) -> Result<(), Error>;
    /// Extends `owner`'s claim on undelivered notification `id` to end `ttl`
    /// from now, so a live dispatcher keeps a short claim over a long
    /// attempt or wait. False when `owner` holds no claim on it any more
    /// (delivered, or claimed by another after this one's claim ended).
    async fn renew_notification_claim(
        &self,
        id: NotificationId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, Error>;
    /// Records a failed attempt (`error` must hold no secret): counts it,
    /// keeps the error, and sets `owner`'s claim to end after `retry_in`.
    async fn notification_failed(
        &self,
        id: NotificationId,
        owner: &str,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), Error>;
    /// Every notification of `rollout` (or of all rollouts), delivered or
    /// not, in outbox order.
    async fn notifications(&self, rollout: Option<RolloutId>) -> Result<Vec<Notification>, Error>;
}

const _: Option<&dyn StateStore> = None;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Checks that a person appends only requests.
pub(crate) fn check_writer(
    id: RolloutId,
    writer: Writer<'_>,
    events: &[Event],
) -> Result<(), Error> {
    if let Writer::Person(who) = writer
        && let Some(e) = events.iter().find(|e| !e.is_request())
    {
        return Err(Error::invalid(
            "event",
            format!(
                "{who} may not append {} to rollout {id}: only controllers may",
                e.action()
            ),
        ));
    }
    Ok(())
}

/// Checks an idempotent retry asks for the same thing.
pub(crate) fn check_same_request(
    id: RolloutId,
    old: &RolloutRequest,
    new: &RolloutRequest,
) -> Result<(), Error> {
    let same = old.service == new.service
        && old.artifact.digest == new.artifact.digest
        && old.plan.targets().eq(new.plan.targets());
    if same {
        Ok(())
    } else {
        Err(Error::invalid(
            "idempotency key",
            format!(
                "key {:?} was used for rollout {id} ({} {} on {} targets); this request differs",
                new.idempotency_key.as_deref().unwrap_or_default(),
                old.service,
                old.artifact,
                old.plan.targets().count()
            ),
        ))
    }
}

/// The artifacts a request names: its artifact, `previous` and `known`.
pub(crate) fn declared(req: &RolloutRequest) -> impl Iterator<Item = &Artifact> {
    std::iter::once(&req.artifact)
        .chain(req.previous.as_ref())
        .chain(req.known.iter())
}

pub(crate) fn check_rebind(existing: &Artifact, new: &Artifact) -> Result<(), Error> {
    if existing.version != new.version {
        return Err(Error::DigestRebound {
            digest: new.digest.clone(),
            existing: existing.version.clone(),
            new: new.version.clone(),
        });
    }
    Ok(())
}

struct Lease {
    owner: String,
    fence: Fence,
    expires: tokio::time::Instant,
}

struct Row {
    n: Notification,
    claim: Option<(String, tokio::time::Instant)>,
}

struct Entry {
    request: RolloutRequest,
    created_ms: i64,
    events: Vec<EventRecord>,
    lease: Option<Lease>,
    outcome: Option<Outcome>,
    last_fence: u64,
}

#[derive(Default)]
struct Inner {
    rollouts: BTreeMap<RolloutId, Entry>,
    keys: BTreeMap<String, RolloutId>,
    artifacts: BTreeMap<Digest, Artifact>,
    outbox: Vec<Row>,
}

/// A store in memory, for tests and single-process embedding. Lease expiry
/// follows tokio's clock, so it works with paused time.
///
/// ```
/// use rollgate_deploy::{MemoryStore, StateStore};
/// # tokio_test_block_on(async {
/// let store = MemoryStore::new();
/// assert!(store.unfinished().await?.is_empty());
/// # Ok::<(), rollgate_deploy::Error>(()) });
/// # fn tokio_test_block_on<F: std::future::Future<Output = Result<(), rollgate_deploy::Error>>>(f: F) {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f).unwrap()
/// # }
/// ```
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied append:
        // every mutation below validates first and writes last.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn not_found(id: RolloutId) -> Error {
    Error::NotFound(format!("rollout {id}"))
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn create(&self, req: &RolloutRequest) -> Result<Created, Error> {
        let mut g = self.lock();
        if let Some(key) = &req.idempotency_key
            && let Some(&id) = g.keys.get(key)
        {
            check_same_request(id, &g.rollouts[&id].request, req)?;
            return Ok(Created { id, existed: true });
        }
        for a in declared(req) {
            if let Some(existing) = g.artifacts.get(&a.digest) {
                check_rebind(existing, a)?;
            }
        }
        for a in declared(req) {
            g.artifacts
                .entry(a.digest.clone())
                .or_insert_with(|| a.clone());
        }
        let id = RolloutId(g.rollouts.keys().next_back().map_or(1, |k| k.0 + 1));
        if let Some(key) = &req.idempotency_key {
            g.keys.insert(key.clone(), id);
        }
        g.rollouts.insert(
            id,
            Entry {
                request: req.clone(),
                created_ms: now_ms(),
                events: Vec::new(),
                lease: None,
                outcome: None,
                last_fence: 0,
            },
        );
        Ok(Created { id, existed: false })
    }

    async fn find_key(&self, key: &str) -> Result<Option<RolloutId>, Error> {
        Ok(self.lock().keys.get(key).copied())
    }

    async fn request(&self, id: RolloutId) -> Result<RolloutRequest, Error> {
        let g = self.lock();
        g.rollouts
            .get(&id)
            .map(|e| e.request.clone())
            .ok_or_else(|| not_found(id))
    }

    async fn append_notifying(
        &self,
        id: RolloutId,
        writer: Writer<'_>,
        events: &[Event],
        notify: &[Option<NotifyKind>],
    ) -> Result<u64, Error> {
        check_writer(id, writer, events)?;
        check_notify(events, notify)?;
        let mut g = self.lock();
        let Inner {
            rollouts, outbox, ..
        } = &mut *g;
        let e = rollouts.get_mut(&id).ok_or_else(|| not_found(id))?;
        if let Writer::Controller { fence, .. } = writer
            && e.lease.as_ref().map(|l| l.fence) != Some(fence)
        {
            return Err(Error::StaleFence {
                rollout: id,
                fence: fence.0,
            });
        }
        if e.outcome.is_some() {
            return Err(Error::Finished { rollout: id });
        }
        let at_ms = now_ms();
        for (i, ev) in events.iter().enumerate() {
            let seq = e.events.len() as u64 + 1;
            if let Some(kind) = notify.get(i).copied().flatten() {
                for (dest, d) in e.request.notify.iter().enumerate() {
                    let once = kind == NotifyKind::Started
                        && outbox.iter().any(|r| {
                            r.n.rollout == id && r.n.destination == dest && r.n.kind == kind
                        });
                    if d.wants(kind) && !once {
                        let nid = NotificationId(outbox.len() as u64 + 1);
                        outbox.push(Row {
                            n: Notification::new(nid, id, seq, dest, kind, 0, None, None),
                            claim: None,
                        });
                    }
                }
            }
            if let Event::Finished { outcome } = ev {
                e.outcome = Some(*outcome);
            }
            e.events.push(EventRecord {
                seq,
                at_ms,
                actor: writer.actor().to_owned(),
                event: ev.clone(),
            });
        }
        Ok(e.events.len() as u64)
    }

    async fn events(&self, id: RolloutId, after: u64) -> Result<Vec<EventRecord>, Error> {
        let g = self.lock();
        let e = g.rollouts.get(&id).ok_or_else(|| not_found(id))?;
        Ok(e.events.iter().skip(after as usize).cloned().collect())
    }

    async fn lease(&self, id: RolloutId, owner: &str, ttl: Duration) -> Result<Fence, Error> {
        let now = tokio::time::Instant::now();
        let mut g = self.lock();
        let e = g.rollouts.get_mut(&id).ok_or_else(|| not_found(id))?;
        match &mut e.lease {
            Some(l) if l.owner == owner => {
                l.expires = now + ttl;
                Ok(l.fence)
            }
            Some(l) if l.expires > now => Err(Error::LeaseHeld {
                rollout: id,
                owner: l.owner.clone(),
                expires_in: l.expires - now,
            }),
            _ => {
                e.last_fence += 1;
                let fence = Fence(e.last_fence);
                e.lease = Some(Lease {
                    owner: owner.to_owned(),
                    fence,
                    expires: now + ttl,
                });
                Ok(fence)
            }
        }
    }

    async fn release(&self, id: RolloutId, fence: Fence) -> Result<(), Error> {
        let mut g = self.lock();
        let e = g.rollouts.get_mut(&id).ok_or_else(|| not_found(id))?;
        if e.lease.as_ref().map(|l| l.fence) == Some(fence) {
            e.lease = None;
        }
        Ok(())
    }

    async fn lease_info(&self, id: RolloutId) -> Result<Option<LeaseInfo>, Error> {
        let now = tokio::time::Instant::now();
        let g = self.lock();
        let e = g.rollouts.get(&id).ok_or_else(|| not_found(id))?;
        Ok(e.lease.as_ref().map(|l| LeaseInfo {
            owner: l.owner.clone(),
            fence: l.fence,
            expires_in: l.expires.saturating_duration_since(now),
        }))
    }

    async fn break_lease(&self, id: RolloutId, owner: &str) -> Result<(), Error> {
        let mut g = self.lock();
        let e = g.rollouts.get_mut(&id).ok_or_else(|| not_found(id))?;
        if e.lease.as_ref().is_some_and(|l| l.owner == owner) {
            e.lease = None;
        }
        Ok(())
    }

    async fn unfinished(&self) -> Result<Vec<RolloutId>, Error> {
        let g = self.lock();
        Ok(g.rollouts
            .iter()
            .filter(|(_, e)| e.outcome.is_none())
            .map(|(id, _)| *id)
            .collect())
    }

    async fn list(&self, service: Option<&str>) -> Result<Vec<RolloutSummary>, Error> {
        let g = self.lock();
        Ok(g.rollouts
            .iter()
            .rev()
            .filter(|(_, e)| service.is_none_or(|s| e.request.service == s))
            .map(|(id, e)| RolloutSummary {
                id: *id,
                service: e.request.service.clone(),
                artifact: e.request.artifact.clone(),
                actor: e.request.actor.clone(),
                created_ms: e.created_ms,
                outcome: e.outcome,
            })
            .collect())
    }

    async fn register_artifact(&self, artifact: &Artifact) -> Result<(), Error> {
        let mut g = self.lock();
        if let Some(existing) = g.artifacts.get(&artifact.digest) {
            return check_rebind(existing, artifact);
        }
        g.artifacts
            .insert(artifact.digest.clone(), artifact.clone());
        Ok(())
    }

    async fn artifact(&self, digest: &Digest) -> Result<Option<Artifact>, Error> {
        Ok(self.lock().artifacts.get(digest).cloned())
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Notification>, Error> {
        let now = tokio::time::Instant::now();
        let mut g = self.lock();
        let mut out = Vec::new();
        for r in g.outbox.iter_mut() {
            if out.len() >= limit {
                break;
            }
            if r.n.delivered_ms.is_none() && r.claim.as_ref().is_none_or(|(_, t)| *t <= now) {
                r.claim = Some((owner.to_owned(), now + ttl));
                out.push(r.n.clone());
            }
        }
        Ok(out)
    }

    async fn notification_delivered(&self, id: NotificationId, _owner: &str) -> Result<(), Error> {
        let mut g = self.lock();
        let r = outbox_row(&mut g.outbox, id)?;
        if r.n.delivered_ms.is_none() {
            r.n.delivered_ms = Some(now_ms());
        }
        r.claim = None;
        Ok(())
    }

    async fn renew_notification_claim(
        &self,
        id: NotificationId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let now = tokio::time::Instant::now();
        let mut g = self.lock();
        let r = outbox_row(&mut g.outbox, id)?;
        match &mut r.claim {
            Some((o, until)) if o == owner && r.n.delivered_ms.is_none() => {
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn notification_failed(
        &self,
        id: NotificationId,
        owner: &str,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), Error> {
        let now = tokio::time::Instant::now();
        let mut g = self.lock();
        let r = outbox_row(&mut g.outbox, id)?;
        r.n.attempts += 1;
        r.n.last_error = Some(error.to_owned());
        if r.n.delivered_ms.is_none() {
            r.claim = Some((owner.to_owned(), now + retry_in));
        }
        Ok(())
    }

    async fn notifications(&self, rollout: Option<RolloutId>) -> Result<Vec<Notification>, Error> {
        let g = self.lock();
        Ok(g.outbox
            .iter()
            .filter(|r| rollout.is_none_or(|id| r.n.rollout == id))
            .map(|r| r.n.clone())
            .collect())
    }
}

fn outbox_row(outbox: &mut [Row], id: NotificationId) -> Result<&mut Row, Error> {
    usize::try_from(id.0)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| outbox.get_mut(i))
        .ok_or_else(|| Error::NotFound(format!("notification {id}")))
}
