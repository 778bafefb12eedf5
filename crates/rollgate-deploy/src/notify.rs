//! Notifications: what is announced, to whom, and the outbox that makes
//! delivery survive crashes.
//!
//! The executor marks the events worth announcing ([`NotifyKind`]) when it
//! appends them; the store writes one outbox row per matching
//! [`Destination`] of the rollout in the same transaction as the event, so a
//! crash between the event and the POST loses nothing. A [`Dispatcher`]
//! claims rows (a lease per row, so several controllers share the work),
//! hands them to a [`Notifier`] (the HTTP one is
//! [`WebhookNotifier`](crate::WebhookNotifier), feature `webhook`), retries
//! with jittered exponential backoff on tokio's clock, and marks them
//! delivered. Delivery is at least once: a row delivered just before a crash
//! is sent again, with the same event id.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{
    Artifact, Error, Event, EventRecord, Outcome, RetryPolicy, Rollout, RolloutId, RolloutRequest,
    StateStore, Status,
};

/// What a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyKind {
    /// A controller started driving the rollout for the first time.
    Started,
    /// A phase completed and the next one starts (or the last one ended).
    PhasePromoted,
    /// The rollout stopped for a person (a gate said hold, or kept saying continue).
    Held,
    /// The rollout ended rolled back or aborted: every touched target runs what it ran before.
    RolledBack,
    /// Rolling back left some target on the new artifact.
    RollbackFailed,
    /// The rollout ended another way (succeeded, refused by a precheck).
    /// Subscribing to `finished` also subscribes to `rolled_back` and
    /// `rollback_failed`: every end is announced to it once.
    Finished,
}

impl NotifyKind {
    /// Every kind, in lifecycle order.
    pub const ALL: [NotifyKind; 6] = [
        NotifyKind::Started,
        NotifyKind::PhasePromoted,
        NotifyKind::Held,
        NotifyKind::RolledBack,
        NotifyKind::RollbackFailed,
        NotifyKind::Finished,
    ];

    /// The kind's name, as configured and sent (`rolled_back`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Started => "started",
            NotifyKind::PhasePromoted => "phase_promoted",
            NotifyKind::Held => "held",
            NotifyKind::RolledBack => "rolled_back",
            NotifyKind::RollbackFailed => "rollback_failed",
            NotifyKind::Finished => "finished",
        }
    }

    /// The valid names, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// The kind a `Finished` event with `outcome` announces.
    pub fn of_outcome(outcome: Outcome) -> Self {
        match outcome {
            Outcome::RolledBack | Outcome::Aborted => NotifyKind::RolledBack,
            Outcome::RollbackFailed => NotifyKind::RollbackFailed,
            Outcome::Succeeded | Outcome::Refused => NotifyKind::Finished,
        }
    }

    /// Whether a destination subscribed to `self` gets a notification of `kind`.
    pub fn covers(self, kind: NotifyKind) -> bool {
        self == kind
            || (self == NotifyKind::Finished
                && matches!(kind, NotifyKind::RolledBack | NotifyKind::RollbackFailed))
    }
}

impl fmt::Display for NotifyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NotifyKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "notify event",
                    format!("unknown event {s:?}; valid: {}", Self::names()),
                )
            })
    }
}

/// The body a destination gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyFormat {
    /// The rollgate JSON document (see [`payload`]).
    #[default]
    Json,
    /// A Slack incoming-webhook body: `{"text": ..., "blocks": [...]}`.
    Slack,
}

/// Where a destination's signing secret is read from, at send time. The
/// secret itself is never stored, logged or put in an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretRef {
    /// An environment variable of the process that sends.
    Env(String),
    /// A file (its content, without a trailing newline).
    File(PathBuf),
}

impl SecretRef {
    /// Reads the secret.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            SecretRef::Env(name) => match std::env::var_os(name) {
                Some(v) if !v.is_empty() => Ok(v.into_encoded_bytes()),
                _ => Err(format!("secret: environment variable {name} is not set")),
            },
            SecretRef::File(path) => {
                let mut v = std::fs::read(path)
                    .map_err(|e| format!("secret: cannot read {}: {e}", path.display()))?;
                while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    v.pop();
                }
                if v.is_empty() {
                    return Err(format!("secret: {} is empty", path.display()));
                }
                Ok(v)
            }
        }
    }
}

/// One place notifications go: recorded in the rollout's request (the
/// secret only by reference).
///
/// ```
/// use rollgate_deploy::{Destination, NotifyKind};
/// let d = Destination::new("https://hooks.example.com/rollgate")
///     .with_events([NotifyKind::RolledBack, NotifyKind::Held])
///     .with_secret_env("ROLLGATE_HOOK_SECRET");
/// assert!(d.wants(NotifyKind::RolledBack));
/// assert!(!d.wants(NotifyKind::Started));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Destination {
    /// A name for logs and listings (defaults to the URL with credentials redacted).
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// What it is sent; empty means every kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NotifyKind>,
    /// The body's shape.
    #[serde(default)]
    pub format: NotifyFormat,
    /// The HMAC-SHA256 signing secret, by reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<SecretRef>,
}

impl Destination {
    /// A destination for every kind, JSON, unsigned.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        Self {
            name: redact_url(&url),
            url,
            events: Vec::new(),
            format: NotifyFormat::Json,
            secret: None,
        }
    }
    /// Only these kinds.
    pub fn with_events(mut self, events: impl IntoIterator<Item = NotifyKind>) -> Self {
        self.events = events.into_iter().collect();
        self
    }
    /// This name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// This body format.
    pub fn with_format(mut self, format: NotifyFormat) -> Self {
        self.format = format;
        self
    }
    /// Signs with the secret in environment variable `name`.
    pub fn with_secret_env(mut self, name: impl Into<String>) -> Self {
        self.secret = Some(SecretRef::Env(name.into()));
        self
    }
    /// Signs with the secret in file `path`.
    pub fn with_secret_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.secret = Some(SecretRef::File(path.into()));
        self
    }
    /// Whether it is sent notifications of `kind`.
    pub fn wants(&self, kind: NotifyKind) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e.covers(kind))
    }
    /// Every kind it is sent, expanded (`finished` brings the rollback kinds).
    pub fn kinds(&self) -> Vec<NotifyKind> {
        NotifyKind::ALL
            .into_iter()
            .filter(|k| self.wants(*k))
            .collect()
    }
}

/// A URL as logs may show it: user info and query replaced by `***`, and for
/// well-known webhook hosts whose path is the credential (Slack, Discord),
/// the path too.
///
/// ```
/// use rollgate_deploy::redact_url;
/// assert_eq!(redact_url("https://u:pw@example.com/hook?token=x"), "https://***@example.com/hook?***");
/// assert_eq!(redact_url("https://hooks.slack.com/services/T0/B0/XYZ"), "https://hooks.slack.com/***");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    let secret_path = ["hooks.slack.com", "discord.com", "discordapp.com"]
        .iter()
        .any(|h| host.ends_with(h));
    let (path, query) = match tail.split_once('?') {
        Some((p, _)) => (p, "?***"),
        None => (tail.split('#').next().unwrap_or(""), ""),
    };
    let path = if secret_path && !path.is_empty() {
        "/***"
    } else {
        path
    };
    format!("{scheme}://{host}{path}{query}")
}

/// A notification's id in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NotificationId(pub u64);

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One outbox row: an event to announce to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Notification {
    /// The row.
    pub id: NotificationId,
    /// The rollout.
    pub rollout: RolloutId,
    /// The event's sequence number in the rollout's log.
    pub seq: u64,
    /// The destination's index in the request's `notify` list.
    pub destination: usize,
    /// What it announces.
    pub kind: NotifyKind,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The last failure, when any.
    pub last_error: Option<String>,
    /// When it was delivered (ms since the Unix epoch), once it was.
    pub delivered_ms: Option<i64>,
}

impl Notification {
    /// A row as a store returns it.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: NotificationId,
        rollout: RolloutId,
        seq: u64,
        destination: usize,
        kind: NotifyKind,
        attempts: u32,
        last_error: Option<String>,
        delivered_ms: Option<i64>,
    ) -> Self {
        Self {
            id,
            rollout,
            seq,
            destination,
            kind,
            attempts,
            last_error,
            delivered_ms,
        }
    }

    /// The id receivers see (`X-Rollgate-Event-Id`, `event_id`): the same
    /// for every attempt and every destination of one event.
    pub fn event_id(&self) -> String {
        event_id(self.rollout, self.seq)
    }
}

/// The id of event `seq` of `rollout` as receivers see it: `rollout-{id}-event-{seq}`.
pub fn event_id(rollout: RolloutId, seq: u64) -> String {
    format!("rollout-{rollout}-event-{seq}")
}

/// The notification kinds of `events` if they were appended to `r` now:
/// one entry per event (`None`: not announced). Pure: folds the events into
/// a copy of the state.
pub fn notify_kinds(r: &Rollout, events: &[Event]) -> Vec<Option<NotifyKind>> {
    let interesting = events.iter().any(|e| {
        matches!(
            e,
            Event::ControllerStarted { .. }
                | Event::PhaseCompleted { .. }
                | Event::GateDecided { .. }
                | Event::Finished { .. }
        )
    });
    if !interesting || r.request.notify.is_empty() {
        return Vec::new();
    }
    let mut probe = r.clone();
    let mut seq = probe.last_seq;
    events
        .iter()
        .map(|e| {
            let started_before = probe.started;
            let held_before = matches!(probe.status, Status::Held(_));
            seq += 1;
            let rec = EventRecord {
                seq,
                at_ms: 0,
                actor: String::new(),
                event: e.clone(),
            };
            // A fold error means the append will be refused anyway.
            if probe.apply(&rec).is_err() {
                return None;
            }
            match e {
                Event::ControllerStarted { .. } if !started_before => Some(NotifyKind::Started),
                Event::PhaseCompleted { .. } => Some(NotifyKind::PhasePromoted),
                Event::Finished { outcome } => Some(NotifyKind::of_outcome(*outcome)),
                Event::GateDecided { .. }
                    if !held_before && matches!(probe.status, Status::Held(_)) =>
                {
                    Some(NotifyKind::Held)
                }
                _ => None,
            }
        })
        .collect()
}

/// Checks a notify list given to an append: empty, or one entry per event.
pub(crate) fn check_notify(events: &[Event], notify: &[Option<NotifyKind>]) -> Result<(), Error> {
    if notify.is_empty() || notify.len() == events.len() {
        Ok(())
    } else {
        Err(Error::invalid(
            "append",
            format!(
                "{} notify entries for {} events: give none or one per event",
                notify.len(),
                events.len()
            ),
        ))
    }
}

/// What a [`Notifier`] sends: the row, its destination and what it is about.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Outgoing {
    /// The outbox row.
    pub notification: Notification,
    /// Where it goes.
    pub destination: Destination,
    /// The rollout's service.
    pub service: String,
    /// The rollout's artifact.
    pub artifact: Artifact,
    /// The event announced.
    pub record: EventRecord,
}

impl Outgoing {
    /// Assembles what to send.
    pub fn new(
        notification: Notification,
        destination: Destination,
        service: impl Into<String>,
        artifact: Artifact,
        record: EventRecord,
    ) -> Self {
        Self {
            notification,
            destination,
            service: service.into(),
            artifact,
            record,
        }
    }

    /// A one-line text for people.
    pub fn text(&self) -> String {
        let n = &self.notification;
        let what = match n.kind {
            NotifyKind::Started => "started".to_owned(),
            NotifyKind::PhasePromoted => "phase promoted".to_owned(),
            NotifyKind::Held => "held for a person".to_owned(),
            NotifyKind::RolledBack => "rolled back".to_owned(),
            NotifyKind::RollbackFailed => "ROLLBACK FAILED".to_owned(),
            NotifyKind::Finished => "finished".to_owned(),
        };
        format!(
            "rollgate: {} {} (rollout {}): {what}: {}",
            self.service,
            self.artifact.version,
            n.rollout,
            self.record.event.outcome_text()
        )
    }
}

/// The body POSTed to a destination, as bytes: the exact bytes the signature covers.
///
/// JSON format:
///
/// ```json
/// {"event_id":"rollout-7-event-12","event":"rolled_back","rollout":7,"seq":12,
///  "service":"web","artifact":{"version":"v2","digest":"sha256:..."},
///  "outcome":"rolled_back","detail":"rolled_back","actor":"rollgate@host:42",
///  "at_ms":1765000000000,"sent_at_ms":1765000000123,"text":"rollgate: web v2 ..."}
/// ```
///
/// `sent_at_ms` is the wall time of this attempt (signed with the rest, so a
/// receiver may refuse stale replays); every other field is the same on
/// every attempt. Slack format: `{"text": ..., "blocks": [a section]}`
/// with the same text.
pub fn payload(out: &Outgoing, sent_at_ms: i64) -> Vec<u8> {
    let n = &out.notification;
    let text = out.text();
    let doc = match out.destination.format {
        NotifyFormat::Json => {
            let outcome = match &out.record.event {
                Event::Finished { outcome } => Some(outcome.as_str()),
                _ => None,
            };
            serde_json::json!({
                "event_id": n.event_id(),
                "event": n.kind.as_str(),
                "rollout": n.rollout.0,
                "seq": n.seq,
                "service": out.service,
                "artifact": {"version": out.artifact.version, "digest": out.artifact.digest.as_str()},
                "outcome": outcome,
                "detail": out.record.event.outcome_text(),
                "actor": out.record.actor,
                "at_ms": out.record.at_ms,
                "sent_at_ms": sent_at_ms,
                "text": text,
            })
        }
        NotifyFormat::Slack => serde_json::json!({
            "text": text,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        }),
    };
    doc.to_string().into_bytes()
}

/// The `X-Rollgate-Signature` value for `body`: `sha256=` and the lowercase
/// hex HMAC-SHA256 of the exact body bytes under `secret`.
///
/// A receiver recomputes it over the raw body it received and compares in
/// constant time (or calls [`verify_signature`]):
///
/// ```
/// use rollgate_deploy::{sign, verify_signature};
/// let body = br#"{"event_id":"rollout-1-event-3"}"#;
/// let header = sign(b"s3cret", body);
/// assert!(header.starts_with("sha256="));
/// assert!(verify_signature(b"s3cret", body, &header));
/// assert!(!verify_signature(b"other", body, &header));
/// ```
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in tag.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether `header` (an `X-Rollgate-Signature` value) signs `body` under
/// `secret`; compares in constant time.
pub fn verify_signature(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.strip_prefix("sha256=") else {
        return false;
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let mut tag = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).unwrap_or("00");
        tag[i] = u8::from_str_radix(s, 16).unwrap_or(0);
    }
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError(pub String);

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Sends one notification (one attempt). Object safe: hold `Arc<dyn Notifier>`.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Delivers `out`; an error is retried later.
    async fn send(&self, out: &Outgoing) -> Result<(), SendError>;
}

const _: Option<&dyn Notifier> = None;

/// How a [`Dispatcher`] works.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DispatchConfig {
    /// This dispatcher's name in claims; unique per process.
    pub owner: String,
    /// How long a claim keeps other dispatchers off a row without renewal.
    /// A live dispatcher renews its claims every third of this while it
    /// attempts and waits between attempts, so a long attempt keeps its
    /// row; a dispatcher that dies holding claims delays those rows by at
    /// most this (a controller uses its lease TTL: its notifications are
    /// taken over about when its rollouts are).
    pub claim_ttl: Duration,
    /// How often the outbox is polled when idle.
    pub poll_interval: Duration,
    /// Most rows claimed (and sent concurrently) at once.
    pub batch: usize,
    /// Waits between attempts (`max_attempts` per claim: after that the row
    /// is left for a later claim, after `max_backoff`).
    pub retry: RetryPolicy,
    /// Longest one attempt may take.
    pub timeout: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self {
            owner: "rollgate".into(),
            claim_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            batch: 32,
            retry: RetryPolicy {
                max_attempts: 8,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
                ..RetryPolicy::default()
            },
            timeout: Duration::from_secs(10),
        }
    }
}

impl DispatchConfig {
    /// This owner name.
    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }
    /// This retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }
    /// This attempt timeout.
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// This polling interval.
    pub fn with_poll_interval(mut self, t: Duration) -> Self {
        self.poll_interval = t;
        self
    }
    /// This claim length.
    pub fn with_claim_ttl(mut self, t: Duration) -> Self {
        self.claim_ttl = t;
        self
    }
}

/// Delivers the outbox: claims rows, sends them, marks them delivered.
///
/// ```
/// use std::sync::Arc;
/// use rollgate_deploy::{DispatchConfig, Dispatcher, MemoryStore, Notifier, Outgoing, SendError};
///
/// struct Print;
/// #[async_trait::async_trait]
/// impl Notifier for Print {
///     async fn send(&self, out: &Outgoing) -> Result<(), SendError> {
///         println!("{}", out.text());
///         Ok(())
///     }
/// }
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let d = Dispatcher::new(Arc::new(MemoryStore::new()), Arc::new(Print), DispatchConfig::default());
/// assert_eq!(d.deliver_pending().await?, 0); // nothing in the outbox
/// # Ok::<(), rollgate_deploy::Error>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    store: Arc<dyn StateStore>,
    notifier: Arc<dyn Notifier>,
    config: DispatchConfig,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher over `store`, sending through `notifier`.
    pub fn new(
        store: Arc<dyn StateStore>,
        notifier: Arc<dyn Notifier>,
        config: DispatchConfig,
    ) -> Self {
        Self {
            store,
            notifier,
            config,
        }
    }

    /// Claims and delivers rows until none is claimable; each claimed row is
    /// retried up to `retry.max_attempts` times. Returns how many were
    /// delivered. Rows still failing are left for a later call (after
    /// `retry.max_backoff`).
    pub async fn deliver_pending(&self) -> Result<usize, Error> {
        let mut delivered = 0;
        let mut requests: BTreeMap<RolloutId, Arc<RolloutRequest>> = BTreeMap::new();
        loop {
            let claimed = self
                .store
                .claim_notifications(&self.config.owner, self.config.claim_ttl, self.config.batch)
                .await?;
            if claimed.is_empty() {
                return Ok(delivered);
            }
            let mut work = Vec::with_capacity(claimed.len());
            for n in claimed {
                let req = match requests.get(&n.rollout) {
                    Some(r) => r.clone(),
                    None => {
                        let r = Arc::new(self.store.request(n.rollout).await?);
                        requests.insert(n.rollout, r.clone());
                        r
                    }
                };
                work.push(self.deliver(n, req));
            }
            for r in futures::future::join_all(work).await {
                delivered += usize::from(r?);
            }
        }
    }

    /// Delivers until `stop` resolves: [`Dispatcher::deliver_pending`], then
    /// waits `poll_interval`. Store errors are logged and retried. Stopping
    /// in the middle of a delivery leaves its row claimed until the claim
    /// ends; a later dispatcher sends it again (at least once).
    pub async fn run(&self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => return,
                r = self.deliver_pending() => if let Err(e) = r {
                    tracing::warn!(error = %crate::error_chain(&e), "notification outbox");
                },
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(self.config.poll_interval) => {}
            }
        }
    }

    /// One claimed row: attempts with backoff, the claim renewed meanwhile;
    /// true when delivered.
    async fn deliver(&self, n: Notification, req: Arc<RolloutRequest>) -> Result<bool, Error> {
        let id = n.id;
        let work = self.attempts(n, req);
        tokio::pin!(work);
        let cfg = &self.config;
        let every = (cfg.claim_ttl / 3).max(Duration::from_millis(10));
        loop {
            tokio::select! {
                biased;
                r = &mut work => return r,
                () = tokio::time::sleep(every) => {
                    match self.store.renew_notification_claim(id, &cfg.owner, cfg.claim_ttl).await {
                        Ok(true) => {}
                        // Frozen past the claim: another dispatcher may send
                        // it too (at least once, with the same event id).
                        Ok(false) => tracing::debug!(notification = %id, "claim lost"),
                        Err(e) => tracing::warn!(
                            notification = %id,
                            error = %crate::error_chain(&e),
                            "cannot renew the notification claim"
                        ),
                    }
                }
            }
        }
    }

    async fn attempts(&self, n: Notification, req: Arc<RolloutRequest>) -> Result<bool, Error> {
        let cfg = &self.config;
        let Some(dest) = req.notify.get(n.destination).cloned() else {
            let e = format!("destination {} not in the request", n.destination);
            self.store
                .notification_failed(n.id, &cfg.owner, &e, cfg.retry.max_backoff)
                .await?;
            return Ok(false);
        };
        let record = self
            .store
            .events(n.rollout, n.seq.saturating_sub(1))
            .await?
            .into_iter()
            .next()
            .filter(|r| r.seq == n.seq)
            .ok_or_else(|| {
                Error::Store(
                    format!(
                        "outbox: event {} of rollout {} is missing",
                        n.seq, n.rollout
                    ),
                    None,
                )
            })?;
        let id = n.id;
        let key = n.event_id();
        let out = Outgoing::new(n, dest, &req.service, req.artifact.clone(), record);
        let name = out.destination.name.clone();
        let max = cfg.retry.max_attempts.max(1);
        for attempt in 1..=max {
            let result = match tokio::time::timeout(cfg.timeout, self.notifier.send(&out)).await {
                Ok(r) => r,
                Err(_) => Err(SendError(format!(
                    "no answer within {}",
                    humantime::format_duration(cfg.timeout)
                ))),
            };
            match result {
                Ok(()) => {
                    self.store.notification_delivered(id, &cfg.owner).await?;
                    metrics::counter!("rollgate_notifications_total", "result" => "delivered")
                        .increment(1);
                    tracing::info!(
                        event_id = %key,
                        kind = out.notification.kind.as_str(),
                        destination = %name,
                        attempt,
                        "notification delivered"
                    );
                    return Ok(true);
                }
                Err(e) => {
                    metrics::counter!("rollgate_notifications_total", "result" => "failed")
                        .increment(1);
                    if attempt == max {
                        // Every attempt of this round failed: the row
                        // stays in the outbox for a later round.
                        metrics::counter!("rollgate_notifications_total", "result" => "exhausted")
                            .increment(1);
                    }
                    let wait = if attempt < max {
                        cfg.retry.delay(attempt, &key)
                    } else {
                        cfg.retry.max_backoff
                    };
                    tracing::warn!(
                        event_id = %key,
                        destination = %name,
                        attempt,
                        error = %e,
                        retry_in = ?wait,
                        "notification not delivered"
                    );
                    // Between attempts the claim is renewed (see `deliver`),
                    // so no other dispatcher sends it meanwhile, and it ends
                    // within `claim_ttl` if this one dies. After the last
                    // attempt, the row waits out `max_backoff` for anyone.
                    let hold = if attempt < max { cfg.claim_ttl } else { wait };
                    self.store
                        .notification_failed(id, &cfg.owner, &e.0, hold)
                        .await?;
                    if attempt < max {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_and_name_the_valid_ones() {
        assert_eq!(
            "rolled_back".parse::<NotifyKind>().ok(),
            Some(NotifyKind::RolledBack)
        );
        let e = "rolledback".parse::<NotifyKind>().unwrap_err().to_string();
        assert!(
            e.contains("\"rolledback\"") && e.contains("rollback_failed"),
            "{e}"
        );
    }

    #[test]
    fn finished_covers_every_end() {
        let d = Destination::new("http://x/").with_events([NotifyKind::Finished]);
        assert_eq!(
            d.kinds(),
            [
                NotifyKind::RolledBack,
                NotifyKind::RollbackFailed,
                NotifyKind::Finished
            ]
        );
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redact_url("http://127.0.0.1:80/x"), "http://127.0.0.1:80/x");
        assert_eq!(redact_url("https://a:b@h/p?q=1#f"), "https://***@h/p?***");
        assert_eq!(redact_url("not a url"), "***");
    }

    #[test]
    fn signatures_cover_every_byte() {
        let h = sign(b"k", b"body");
        // python3: hmac.new(b"k", b"body", hashlib.sha256).hexdigest()
        assert_eq!(
            h,
            "sha256=c6d811ef3aeb02437cd423f1abe13209041864630bdc4e2c04def5c7b0031a23"
        );
        assert!(verify_signature(b"k", b"body", &h));
        assert!(!verify_signature(b"k", b"body ", &h));
        assert!(!verify_signature(b"k", b"body", "sha256=zz"));
        assert!(!verify_signature(
            b"k",
            b"body",
            &h.replace("sha256=", "sha1=")
        ));
    }
}
