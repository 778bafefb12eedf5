//! SQLite state store: WAL, one writer thread, group commit.
//!
//! Every call becomes a job for one thread that owns the connection. The
//! thread takes all jobs waiting at once, runs each in its own savepoint
//! inside one transaction, commits (one fsync), and only then answers the
//! callers. Many controllers' or targets' appends thus share one fsync, and a
//! caller never hears "ok" for a write that is not durable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::store::{
    Created, EventRow, LeaseInfo, ListFilter, RolloutSummary, StateStore, SummaryRow,
    UnfinishedRollout, Writer, check_rebind, check_same_request, check_writer, encode_events,
    now_ms, to_json,
};
use crate::{
    Artifact, Cause, Digest, Error, Event, EventRecord, Fence, Notification, NotificationId,
    NotifyKind, RolloutId, RolloutRequest,
};

type Reply = Box<dyn FnOnce(Option<&Error>) + Send>;
type Job = Box<dyn FnOnce(Result<&Connection, &Error>) -> Reply + Send>;

enum Work {
    /// Any call, run in its own savepoint.
    Job { writes: bool, job: Job },
    /// An append, kept as data so a batch of them costs one fence check and
    /// one sequence update per rollout, plus one insert per event.
    Append(Box<AppendWork>),
}

struct AppendWork {
    id: RolloutId,
    fence: Option<Fence>,
    actor: String,
    rows: Vec<EventRow>,
    outcome: Option<&'static str>,
    reply: oneshot::Sender<Result<u64, Error>>,
}

/// Per-rollout state cached within one batch of appends.
struct Cached {
    lease_fence: i64,
    last_seq: i64,
    dirty: bool,
    outcome: Option<&'static str>,
    /// The log has a `Finished` event (recorded, or appended in this batch).
    finished: bool,
}

/// A durable store in one SQLite file (WAL mode, `synchronous = FULL` unless
/// [`SqliteOptions::durability`] says otherwise).
///
/// Several processes may open the same file: SQLite's locking serialises
/// writers, leases and fences keep controllers apart.
///
/// ```
/// use rollgate_deploy::{SqliteStore, StateStore};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = SqliteStore::open(dir.path().join("rollgate.db"))?;
/// assert!(store.unfinished().await?.is_empty());
/// # Ok::<(), rollgate_deploy::Error>(()) }).unwrap();
/// ```
pub struct SqliteStore {
    sender: mpsc::Sender<Work>,
    path: PathBuf,
    clock: LeaseClock,
    /// The origin of [`LeaseClock::Tokio`] times.
    epoch: tokio::time::Instant,
}

fn map_err(path: &Path, e: rusqlite::Error) -> Error {
    let p = path.display();
    // rusqlite's own error is the cause (`source()`); the message says what
    // it means for the state file.
    let message = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                let message = format!("{p} is locked by another process");
                return Error::StoreBusy(message, Some(Cause::new(e)));
            }
            ErrorCode::ReadOnly => format!("{p} is read-only"),
            ErrorCode::NotADatabase => format!("{p} is not a rollgate state file"),
            ErrorCode::CannotOpen => format!("cannot open {p}"),
            ErrorCode::DiskFull => format!("{p}: disk full"),
            _ => p.to_string(),
        },
        _ => p.to_string(),
    };
    Error::Store(message, Some(Cause::new(e)))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    idem_key TEXT UNIQUE,
    request TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    outcome TEXT,
    lease_owner TEXT,
    lease_fence INTEGER NOT NULL DEFAULT 0,
    lease_expires_ms INTEGER NOT NULL DEFAULT 0,
    last_fence INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rollouts_by_service ON rollouts(service, id);
CREATE TABLE IF NOT EXISTS events (
    rollout INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (rollout, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
    digest TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    sbom TEXT,
    recorded_ms INTEGER NOT NULL
);
";

/// Schema 2: the notification outbox. `notify_routes` says which
/// destinations (by index in the request) want which kinds, so an append
/// writes its outbox rows without decoding the request.
const SCHEMA_2: &str = "
CREATE TABLE IF NOT EXISTS notify_routes (
    rollout INTEGER NOT NULL,
    kind TEXT NOT NULL,
    dest INTEGER NOT NULL,
    PRIMARY KEY (rollout, kind, dest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    rollout INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    dest INTEGER NOT NULL,
    kind TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    claim_owner TEXT,
    claim_expires_ms INTEGER NOT NULL DEFAULT 0,
    delivered_ms INTEGER,
    UNIQUE (rollout, seq, dest)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(id) WHERE delivered_ms IS NULL;
";

/// The schema version this build writes.
const SCHEMA_VERSION: i64 = 2;

/// How durable an acknowledged append is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// On disk before the caller hears back (`synchronous = FULL`): survives
    /// power loss. One fsync per group commit.
    #[default]
    PowerLoss,
    /// In the OS before the caller hears back (`synchronous = NORMAL` in WAL
    /// mode): survives a killed process, not a power cut or kernel crash.
    ProcessCrash,
}

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How long to wait for a lock held by another process before failing
    /// with [`Error::StoreBusy`].
    pub busy_timeout: Duration,
    /// How durable an acknowledged write is.
    pub durability: Durability,
    /// Which clock lease expiry follows.
    pub lease_clock: LeaseClock,
}

/// The clock a [`SqliteStore`] measures lease (and outbox claim) expiry on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LeaseClock {
    /// Wall-clock milliseconds: right for a file several processes share.
    #[default]
    Wall,
    /// Tokio's clock, read by the caller: leases expire on paused time, for
    /// tests that run several controllers in one process (as the chaos suite
    /// does). Expiry times are then meaningful to this process only.
    Tokio,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            durability: Durability::PowerLoss,
            lease_clock: LeaseClock::Wall,
        }
    }
}

impl SqliteOptions {
    /// Options with this busy timeout.
    pub fn with_busy_timeout(mut self, t: Duration) -> Self {
        self.busy_timeout = t;
        self
    }
    /// Options with this durability.
    pub fn with_durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Options whose leases expire on this clock.
    ///
    /// ```
    /// use rollgate_deploy::{LeaseClock, SqliteOptions};
    /// let o = SqliteOptions::default().with_lease_clock(LeaseClock::Tokio);
    /// assert_eq!(o.lease_clock, LeaseClock::Tokio);
    /// ```
    pub fn with_lease_clock(mut self, c: LeaseClock) -> Self {
        self.lease_clock = c;
        self
    }
}

/// Creates `path` readable and writable by its owner only (mode 600), when
/// it does not exist yet: the state holds plans, actors and audit history.
/// SQLite gives its `-wal` and `-shm` files the database file's mode.
fn create_owner_only(path: &Path) -> Result<(), Error> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Store(
            format!("{}: cannot create", path.display()),
            Some(Cause::new(e)),
        )),
    }
}

impl SqliteStore {
    /// Opens (or creates, owner-only) the store at `path` with default options: power-loss
    /// durable, waiting up to 5 s for locks.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, &SqliteOptions::default())
    }

    /// Opens (or creates) the store with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Self, Error> {
        let path = path.as_ref().to_path_buf();
        create_owner_only(&path)?;
        let conn = Connection::open(&path).map_err(|e| map_err(&path, e))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(|e| map_err(&path, e))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| map_err(&path, e))?;
        let sync = match options.durability {
            Durability::PowerLoss => "FULL",
            Durability::ProcessCrash => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(|e| map_err(&path, e))?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| map_err(&path, e))?;
        if version > SCHEMA_VERSION {
            return Err(Error::Store(
                format!(
                    "{} has schema version {version}; this rollgate knows {SCHEMA_VERSION} (upgrade rollgate)",
                    path.display()
                ),
                None,
            ));
        }
        if version < SCHEMA_VERSION {
            // Every step is idempotent: two processes upgrading one file at
            // once both succeed.
            let v1 = if version == 0 { SCHEMA } else { "" };
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; {v1} {SCHEMA_2} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(|e| map_err(&path, e))?;
        }
        let (sender, receiver) = mpsc::channel::<Work>();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("rollgate-sqlite".into())
            .spawn(move || writer_loop(conn, receiver, thread_path))
            .map_err(|e| {
                Error::Store("cannot start the store thread".into(), Some(Cause::new(e)))
            })?;
        Ok(Self {
            sender,
            path,
            clock: options.lease_clock,
            epoch: tokio::time::Instant::now(),
        })
    }

    /// Now, in the milliseconds leases are kept in.
    fn lease_now_ms(&self) -> i64 {
        match self.clock {
            LeaseClock::Wall => now_ms(),
            // Offset so that a lease of this clock is never mistaken for
            // free (expiry 0 means released).
            LeaseClock::Tokio => 1 + self.epoch.elapsed().as_millis() as i64,
        }
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T, F>(&self, writes: bool, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Path) -> Result<T, Error> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let path = self.path.clone();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => in_savepoint(conn, &path, f),
                Err(e) => Err(e.clone()),
            };
            Box::new(move |commit_error: Option<&Error>| {
                let result = match commit_error {
                    Some(e) => Err(e.clone()),
                    None => result,
                };
                let _ = tx.send(result);
            })
        });
        self.sender.send(Work::Job { writes, job }).map_err(|_| {
            Error::Store(
                format!("{}: the store thread stopped", self.path.display()),
                None,
            )
        })?;
        rx.await.map_err(|_| {
            Error::Store(
                format!("{}: the store thread stopped", self.path.display()),
                None,
            )
        })?
    }
}

fn in_savepoint<T>(
    conn: &Connection,
    path: &Path,
    f: impl FnOnce(&Connection, &Path) -> Result<T, Error>,
) -> Result<T, Error> {
    // Cached statements: a savepoint per job must cost next to nothing.
    conn.prepare_cached("SAVEPOINT job")
        .and_then(|mut s| s.execute([]))
        .map_err(|e| map_err(path, e))?;
    match f(conn, path) {
        Ok(v) => {
            conn.prepare_cached("RELEASE job")
                .and_then(|mut s| s.execute([]))
                .map_err(|e| map_err(path, e))?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

const MAX_BATCH: usize = 4096;

fn writer_loop(conn: Connection, receiver: mpsc::Receiver<Work>, path: PathBuf) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let writes = batch
            .iter()
            .any(|w| !matches!(w, Work::Job { writes: false, .. }));
        let begin = if writes {
            "BEGIN IMMEDIATE"
        } else {
            "BEGIN DEFERRED"
        };
        let began = conn.execute_batch(begin).map_err(|e| map_err(&path, e));
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        let mut cache: BTreeMap<RolloutId, Cached> = BTreeMap::new();
        // A failed insert or flush poisons the batch: nothing of it commits.
        let mut poisoned: Option<Error> = None;
        for w in batch {
            // SQLite rolls a transaction back by itself on some errors (I/O,
            // disk full); what follows would then autocommit piecemeal.
            if began.is_ok() && poisoned.is_none() && conn.is_autocommit() {
                poisoned = Some(Error::Store(
                    format!("{}: SQLite aborted the transaction", path.display()),
                    None,
                ));
            }
            match w {
                Work::Job { job, .. } => {
                    if let Err(e) = flush(&conn, &path, &mut cache) {
                        poisoned.get_or_insert(e);
                    }
                    cache.clear();
                    let conn_or_err = match (&began, &poisoned) {
                        (Err(e), _) | (_, Some(e)) => Err(e),
                        (Ok(()), None) => Ok(&conn),
                    };
                    replies.push(job(conn_or_err));
                }
                Work::Append(a) => {
                    let result = match (&began, &poisoned) {
                        (Err(e), _) | (_, Some(e)) => Err(e.clone()),
                        (Ok(()), None) => append_rows(&conn, &path, &mut cache, &a),
                    };
                    if let Err(e @ Error::Store(..)) = &result {
                        poisoned.get_or_insert(e.clone());
                    }
                    let reply = a.reply;
                    replies.push(Box::new(move |commit_error: Option<&Error>| {
                        let _ = reply.send(match commit_error {
                            Some(e) => Err(e.clone()),
                            None => result,
                        });
                    }));
                }
            }
        }
        if began.is_ok()
            && let Err(e) = flush(&conn, &path, &mut cache)
        {
            poisoned.get_or_insert(e);
        }
        let commit_error = match (began, poisoned) {
            (Err(e), _) => Some(e),
            (Ok(()), Some(e)) => {
                let _ = conn.execute_batch("ROLLBACK");
                Some(e)
            }
            (Ok(()), None) => match conn.execute_batch("COMMIT") {
                Ok(()) => None,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    Some(map_err(&path, e))
                }
            },
        };
        if writes {
            metrics::counter!("rollgate_store_commits_total").increment(1);
        }
        for reply in replies {
            reply(commit_error.as_ref());
        }
    }
}

/// Validates the fence and inserts one append's events; updates the cache.
fn append_rows(
    conn: &Connection,
    path: &Path,
    cache: &mut BTreeMap<RolloutId, Cached>,
    a: &AppendWork,
) -> Result<u64, Error> {
    let id = a.id;
    let c = match cache.entry(id) {
        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::btree_map::Entry::Vacant(v) => {
            let row: Option<(Option<String>, i64, i64, bool)> = conn
                .prepare_cached(
                    "SELECT lease_owner, lease_fence, last_seq, outcome IS NOT NULL FROM rollouts WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.query_row(params![id.0 as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                })
                .optional()
                .map_err(sql(path))?;
            let Some((owner, lease_fence, last_seq, finished)) = row else {
                return Err(Error::NotFound(format!("rollout {id}")));
            };
            // No lease holder: no controller fence is current.
            let lease_fence = if owner.is_some() { lease_fence } else { -1 };
            v.insert(Cached {
                lease_fence,
                last_seq,
                dirty: false,
                outcome: None,
                finished,
            })
        }
    };
    if let Some(f) = a.fence
        && f.0 as i64 != c.lease_fence
    {
        return Err(Error::StaleFence {
            rollout: id,
            fence: f.0,
        });
    }
    if c.finished {
        return Err(Error::Finished { rollout: id });
    }
    let at = now_ms();
    let mut stmt = conn
        .prepare_cached("INSERT INTO events (rollout, seq, at_ms, actor, action, target, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        .map_err(sql(path))?;
    for (action, target, body, kind) in &a.rows {
        stmt.execute(params![
            id.0 as i64,
            c.last_seq + 1,
            at,
            a.actor,
            action,
            target,
            body
        ])
        .map_err(|e| write_failed(map_err(path, e)))?;
        c.last_seq += 1;
        if let Some(kind) = kind {
            conn.prepare_cached(
                "INSERT INTO outbox (rollout, seq, dest, kind, created_ms) \
                 SELECT ?1, ?2, r.dest, ?3, ?4 FROM notify_routes r WHERE r.rollout = ?1 AND r.kind = ?3 \
                 AND (?3 <> 'started' OR NOT EXISTS \
                 (SELECT 1 FROM outbox o WHERE o.rollout = ?1 AND o.dest = r.dest AND o.kind = 'started'))",
            )
            .and_then(|mut s| s.execute(params![id.0 as i64, c.last_seq, kind.as_str(), at]))
            .map_err(|e| write_failed(map_err(path, e)))?;
        }
    }
    c.dirty = true;
    if a.outcome.is_some() {
        c.outcome = a.outcome;
        c.finished = true;
    }
    Ok(c.last_seq as u64)
}

/// Writes the cached sequence numbers (and outcomes) back to `rollouts`.
fn flush(
    conn: &Connection,
    path: &Path,
    cache: &mut BTreeMap<RolloutId, Cached>,
) -> Result<(), Error> {
    for (id, c) in cache.iter_mut().filter(|(_, c)| c.dirty) {
        conn.prepare_cached(
            "UPDATE rollouts SET last_seq = ?2, outcome = COALESCE(?3, outcome) WHERE id = ?1",
        )
        .and_then(|mut s| s.execute(params![id.0 as i64, c.last_seq, c.outcome]))
        .map_err(|e| write_failed(map_err(path, e)))?;
        c.dirty = false;
    }
    Ok(())
}

/// A failed write inside a batch is a store failure even when SQLite said
/// busy: it poisons the batch (only `Error::Store` does).
fn write_failed(e: Error) -> Error {
    match e {
        Error::StoreBusy(message, cause) => Error::Store(message, cause),
        other => other,
    }
}

fn from_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str, s: &str) -> Result<T, Error> {
    serde_json::from_str(s).map_err(|e| {
        Error::Store(
            format!("{}: corrupt {what}", path.display()),
            Some(Cause::new(e)),
        )
    })
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| map_err(path, e)
}

fn artifact_row(
    conn: &Connection,
    path: &Path,
    digest: &Digest,
) -> Result<Option<Artifact>, Error> {
    conn.query_row(
        "SELECT version, sbom FROM artifacts WHERE digest = ?1",
        params![digest.as_str()],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
    )
    .optional()
    .map_err(sql(path))
    .map(|o| {
        o.map(|(version, sbom)| Artifact {
            version,
            digest: digest.clone(),
            sbom,
        })
    })
}

fn register(conn: &Connection, path: &Path, a: &Artifact) -> Result<(), Error> {
    if let Some(existing) = artifact_row(conn, path, &a.digest)? {
        return check_rebind(&existing, a);
    }
    conn.execute(
        "INSERT INTO artifacts (digest, version, sbom, recorded_ms) VALUES (?1, ?2, ?3, ?4)",
        params![a.digest.as_str(), a.version, a.sbom, now_ms()],
    )
    .map_err(sql(path))?;
    Ok(())
}

fn request_row(conn: &Connection, path: &Path, id: RolloutId) -> Result<RolloutRequest, Error> {
    let body: Option<String> = conn
        .query_row(
            "SELECT request FROM rollouts WHERE id = ?1",
            params![id.0 as i64],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(path))?;
    match body {
        Some(b) => from_json(path, &format!("request of rollout {id}"), &b),
        None => Err(Error::NotFound(format!("rollout {id}"))),
    }
}

#[async_trait]
impl StateStore for SqliteStore {
    async fn create(&self, req: &RolloutRequest) -> Result<Created, Error> {
        let req = req.clone();
        self.call(true, move |conn, path| {
            if let Some(key) = &req.idempotency_key {
                let found: Option<i64> = conn
                    .query_row("SELECT id FROM rollouts WHERE idem_key = ?1", params![key], |r| r.get(0))
                    .optional()
                    .map_err(sql(path))?;
                if let Some(id) = found {
                    let id = RolloutId(id as u64);
                    check_same_request(id, &request_row(conn, path, id)?, &req)?;
                    return Ok(Created { id, existed: true });
                }
            }
            for a in crate::store::declared(&req) {
                register(conn, path, a)?;
            }
            conn.execute(
                "INSERT INTO rollouts (service, idem_key, request, actor, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![req.service, req.idempotency_key, to_json(&req)?, req.actor, now_ms()],
            )
            .map_err(sql(path))?;
            let id = conn.last_insert_rowid();
            for (i, d) in req.notify.iter().enumerate() {
                for kind in d.kinds() {
                    conn.prepare_cached("INSERT INTO notify_routes (rollout, kind, dest) VALUES (?1, ?2, ?3)")
                        .and_then(|mut s| s.execute(params![id, kind.as_str(), i as i64]))
                        .map_err(sql(path))?;
                }
            }
            Ok(Created { id: RolloutId(id as u64), existed: false })
        })
        .await
    }

    async fn find_key(&self, key: &str) -> Result<Option<RolloutId>, Error> {
        let key = key.to_owned();
        self.call(false, move |conn, path| {
            conn.query_row(
                "SELECT id FROM rollouts WHERE idem_key = ?1",
                params![key],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|id| id.map(|id| RolloutId(id as u64)))
            .map_err(sql(path))
        })
        .await
    }

    async fn request(&self, id: RolloutId) -> Result<RolloutRequest, Error> {
        self.call(false, move |conn, path| request_row(conn, path, id))
            .await
    }

    async fn append_notifying(
        &self,
        id: RolloutId,
        writer: Writer<'_>,
        events: &[Event],
        notify: &[Option<NotifyKind>],
    ) -> Result<u64, Error> {
        check_writer(id, writer, events)?;
        // Encode on the caller's thread; the writer thread only writes.
        let (rows, outcome) = encode_events(events, notify)?;
        let fence = writer.fence();
        let (reply, rx) = oneshot::channel();
        let work = AppendWork {
            id,
            fence,
            actor: writer.actor().to_owned(),
            rows,
            outcome,
            reply,
        };
        let stopped = || {
            Error::Store(
                format!("{}: the store thread stopped", self.path.display()),
                None,
            )
        };
        self.sender
            .send(Work::Append(Box::new(work)))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    async fn events(&self, id: RolloutId, after: u64) -> Result<Vec<EventRecord>, Error> {
        self.call(false, move |conn, path| {
            let exists: Option<i64> = conn
                .query_row("SELECT id FROM rollouts WHERE id = ?1", params![id.0 as i64], |r| r.get(0))
                .optional()
                .map_err(sql(path))?;
            if exists.is_none() {
                return Err(Error::NotFound(format!("rollout {id}")));
            }
            let mut stmt = conn
                .prepare_cached("SELECT seq, at_ms, actor, body FROM events WHERE rollout = ?1 AND seq > ?2 ORDER BY seq")
                .map_err(sql(path))?;
            let rows = stmt
                .query_map(params![id.0 as i64, after as i64], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                })
                .map_err(sql(path))?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, at_ms, actor, body) = row.map_err(sql(path))?;
                let event = from_json(path, &format!("event {seq} of rollout {id}"), &body)?;
                out.push(EventRecord { seq: seq as u64, at_ms, actor, event });
            }
            Ok(out)
        })
        .await
    }

    async fn lease(&self, id: RolloutId, owner: &str, ttl: Duration) -> Result<Fence, Error> {
        let owner = owner.to_owned();
        let now = self.lease_now_ms();
        self.call(true, move |conn, path| {
            let row: Option<(Option<String>, i64, i64, i64)> = conn
                .query_row(
                    "SELECT lease_owner, lease_fence, lease_expires_ms, last_fence FROM rollouts WHERE id = ?1",
                    params![id.0 as i64],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(sql(path))?;
            let Some((holder, fence, expires, last)) = row else {
                return Err(Error::NotFound(format!("rollout {id}")));
            };
            let expires_new = now.saturating_add(ttl.as_millis() as i64);
            match holder {
                Some(h) if h == owner => {
                    conn.execute("UPDATE rollouts SET lease_expires_ms = ?2 WHERE id = ?1", params![id.0 as i64, expires_new])
                        .map_err(sql(path))?;
                    Ok(Fence(fence as u64))
                }
                Some(h) if expires > now => Err(Error::LeaseHeld {
                    rollout: id,
                    owner: h,
                    expires_in: Duration::from_millis((expires - now) as u64),
                }),
                _ => {
                    let fence = last + 1;
                    conn.execute(
                        "UPDATE rollouts SET lease_owner = ?2, lease_fence = ?3, lease_expires_ms = ?4, last_fence = ?3 WHERE id = ?1",
                        params![id.0 as i64, owner, fence, expires_new],
                    )
                    .map_err(sql(path))?;
                    Ok(Fence(fence as u64))
                }
            }
        })
        .await
    }

    async fn release(&self, id: RolloutId, fence: Fence) -> Result<(), Error> {
        self.call(true, move |conn, path| {
            conn.execute(
                "UPDATE rollouts SET lease_owner = NULL, lease_expires_ms = 0 WHERE id = ?1 AND lease_fence = ?2",
                params![id.0 as i64, fence.0 as i64],
            )
            .map_err(sql(path))?;
            Ok(())
        })
        .await
    }

    async fn lease_info(&self, id: RolloutId) -> Result<Option<LeaseInfo>, Error> {
        let now = self.lease_now_ms();
        self.call(false, move |conn, path| {
            let row: Option<(Option<String>, i64, i64)> = conn
                .query_row(
                    "SELECT lease_owner, lease_fence, lease_expires_ms FROM rollouts WHERE id = ?1",
                    params![id.0 as i64],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(sql(path))?;
            let Some((owner, fence, expires)) = row else {
                return Err(Error::NotFound(format!("rollout {id}")));
            };
            Ok(owner.map(|owner| LeaseInfo {
                owner,
                fence: Fence(fence as u64),
                expires_in: Duration::from_millis(expires.saturating_sub(now).max(0) as u64),
            }))
        })
        .await
    }

    async fn break_lease(&self, id: RolloutId, owner: &str) -> Result<(), Error> {
        let owner = owner.to_owned();
        self.call(true, move |conn, path| {
            conn.execute(
                "UPDATE rollouts SET lease_owner = NULL, lease_expires_ms = 0 WHERE id = ?1 AND lease_owner = ?2",
                params![id.0 as i64, owner],
            )
            .map_err(sql(path))?;
            Ok(())
        })
        .await
    }

    async fn unfinished(&self) -> Result<Vec<RolloutId>, Error> {
        self.call(false, move |conn, path| {
            let mut stmt = conn
                .prepare_cached("SELECT id FROM rollouts WHERE outcome IS NULL ORDER BY id")
                .map_err(sql(path))?;
            let ids = stmt
                .query_map([], |r| r.get::<_, i64>(0))
                .map_err(sql(path))?
                .map(|r| r.map(|id| RolloutId(id as u64)).map_err(sql(path)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ids)
        })
        .await
    }

    async fn unfinished_leases(&self) -> Result<Vec<UnfinishedRollout>, Error> {
        let now = self.lease_now_ms();
        self.call(false, move |conn, path| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, lease_owner, lease_fence, lease_expires_ms, last_seq FROM rollouts \
                     WHERE outcome IS NULL ORDER BY id",
                )
                .map_err(sql(path))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(sql(path))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, owner, fence, expires, seq) = row.map_err(sql(path))?;
                let lease = owner.map(|owner| LeaseInfo {
                    owner,
                    fence: Fence(fence as u64),
                    expires_in: Duration::from_millis(expires.saturating_sub(now).max(0) as u64),
                });
                out.push(UnfinishedRollout::new(
                    RolloutId(id as u64),
                    lease,
                    seq.max(0) as u64,
                ));
            }
            Ok(out)
        })
        .await
    }

    async fn list(&self, service: Option<&str>) -> Result<Vec<RolloutSummary>, Error> {
        self.list_where(&ListFilter {
            service: service.map(str::to_owned),
            ..ListFilter::default()
        })
        .await
    }

    async fn list_where(&self, filter: &ListFilter) -> Result<Vec<RolloutSummary>, Error> {
        let f = filter.clone();
        self.call(false, move |conn, path| {
            // The summary's fields straight from SQL: no request (and plan) is
            // decoded, so a listing costs the rows it returns.
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, service, json_extract(request, '$.artifact.version'), \
                     json_extract(request, '$.artifact.digest'), json_extract(request, '$.artifact.sbom'), \
                     actor, created_ms, outcome FROM rollouts \
                     WHERE (?1 IS NULL OR service = ?1) \
                     AND (?2 = 0 OR (?2 = 1 AND outcome IS NULL) OR (?2 = 2 AND outcome = ?3)) \
                     AND (?4 IS NULL OR created_ms >= ?4) \
                     ORDER BY id DESC LIMIT ?5",
                )
                .map_err(sql(path))?;
            let (which, outcome) = f.sql_outcome();
            let limit = f.limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
            let rows = stmt
                .query_map(params![f.service, which, outcome, f.since_ms, limit], |r| {
                    Ok(SummaryRow {
                        id: r.get(0)?,
                        service: r.get(1)?,
                        version: r.get(2)?,
                        digest: r.get(3)?,
                        sbom: r.get(4)?,
                        actor: r.get(5)?,
                        created_ms: r.get(6)?,
                        outcome: r.get(7)?,
                    })
                })
                .map_err(sql(path))?;
            let shown = path.display().to_string();
            let mut out = Vec::new();
            for row in rows {
                out.push(row.map_err(sql(path))?.into_summary(&shown)?);
            }
            Ok(out)
        })
        .await
    }

    async fn register_artifact(&self, artifact: &Artifact) -> Result<(), Error> {
        let a = artifact.clone();
        self.call(true, move |conn, path| register(conn, path, &a))
            .await
    }

    async fn artifact(&self, digest: &Digest) -> Result<Option<Artifact>, Error> {
        let d = digest.clone();
        self.call(false, move |conn, path| artifact_row(conn, path, &d))
            .await
    }

    async fn claim_notifications(
        &self,
        owner: &str,
        ttl: Duration,
        limit: usize,
    ) -> Result<Vec<Notification>, Error> {
        let owner = owner.to_owned();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Claims are leases on outbox rows: same clock.
        let now = self.lease_now_ms();
        self.call(true, move |conn, path| {
            let mut stmt = conn
                .prepare_cached(
                    "UPDATE outbox SET claim_owner = ?1, claim_expires_ms = ?2 WHERE id IN \
                     (SELECT id FROM outbox WHERE delivered_ms IS NULL AND claim_expires_ms <= ?3 ORDER BY id LIMIT ?4) \
                     RETURNING id, rollout, seq, dest, kind, attempts, last_error, delivered_ms",
                )
                .map_err(sql(path))?;
            let rows = stmt
                .query_map(params![owner, now.saturating_add(ttl_ms), now, limit], notification_row)
                .map_err(sql(path))?;
            let mut out = Vec::new();
            for r in rows {
                out.push(notification(path, r.map_err(sql(path))?)?);
            }
            // RETURNING comes in no promised order.
            out.sort_by_key(|n| n.id);
            Ok(out)
        })
        .await
    }

    async fn notification_delivered(&self, id: NotificationId, _owner: &str) -> Result<(), Error> {
        self.call(true, move |conn, path| {
            let n = conn
                .execute(
                    "UPDATE outbox SET delivered_ms = COALESCE(delivered_ms, ?2), claim_owner = NULL, claim_expires_ms = 0 WHERE id = ?1",
                    params![id.0 as i64, now_ms()],
                )
                .map_err(sql(path))?;
            if n == 0 {
                return Err(Error::NotFound(format!("notification {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn renew_notification_claim(
        &self,
        id: NotificationId,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, Error> {
        let owner = owner.to_owned();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let until = self.lease_now_ms().saturating_add(ttl_ms);
        self.call(true, move |conn, path| {
            let n = conn
                .execute(
                    "UPDATE outbox SET claim_expires_ms = ?3 \
                     WHERE id = ?1 AND claim_owner = ?2 AND delivered_ms IS NULL",
                    params![id.0 as i64, owner, until],
                )
                .map_err(sql(path))?;
            if n == 0 {
                let exists: Option<i64> = conn
                    .query_row(
                        "SELECT id FROM outbox WHERE id = ?1",
                        params![id.0 as i64],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(sql(path))?;
                if exists.is_none() {
                    return Err(Error::NotFound(format!("notification {id}")));
                }
            }
            Ok(n > 0)
        })
        .await
    }

    async fn notification_failed(
        &self,
        id: NotificationId,
        owner: &str,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), Error> {
        let owner = owner.to_owned();
        let error = error.to_owned();
        let retry_ms = i64::try_from(retry_in.as_millis()).unwrap_or(i64::MAX);
        let until = self.lease_now_ms().saturating_add(retry_ms);
        self.call(true, move |conn, path| {
            let n = conn
                .execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, \
                     claim_owner = CASE WHEN delivered_ms IS NULL THEN ?3 ELSE claim_owner END, \
                     claim_expires_ms = CASE WHEN delivered_ms IS NULL THEN ?4 ELSE claim_expires_ms END \
                     WHERE id = ?1",
                    params![id.0 as i64, error, owner, until],
                )
                .map_err(sql(path))?;
            if n == 0 {
                return Err(Error::NotFound(format!("notification {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn notifications(&self, rollout: Option<RolloutId>) -> Result<Vec<Notification>, Error> {
        let rollout = rollout.map(|r| r.0 as i64);
        self.call(false, move |conn, path| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, rollout, seq, dest, kind, attempts, last_error, delivered_ms FROM outbox \
                     WHERE (?1 IS NULL OR rollout = ?1) ORDER BY id",
                )
                .map_err(sql(path))?;
            let rows = stmt.query_map(params![rollout], notification_row).map_err(sql(path))?;
            let mut out = Vec::new();
            for r in rows {
                out.push(notification(path, r.map_err(sql(path))?)?);
            }
            Ok(out)
        })
        .await
    }
}

type OutboxRow = (i64, i64, i64, i64, String, i64, Option<String>, Option<i64>);

fn notification_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn notification(path: &Path, row: OutboxRow) -> Result<Notification, Error> {
    let (id, rollout, seq, dest, kind, attempts, last_error, delivered_ms) = row;
    let kind: NotifyKind = kind.parse().map_err(|e| {
        Error::Store(
            format!("{}: corrupt notification {id}", path.display()),
            Some(Cause::new(e)),
        )
    })?;
    Ok(Notification::new(
        NotificationId(id as u64),
        RolloutId(rollout as u64),
        seq as u64,
        dest as usize,
        kind,
        u32::try_from(attempts).unwrap_or(u32::MAX),
        last_error,
        delivered_ms,
    ))
}
