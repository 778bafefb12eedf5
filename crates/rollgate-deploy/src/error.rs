//! The crate's one error type.

use std::sync::Arc;
use std::time::Duration;

use crate::{Digest, RolloutId, TargetId};

/// Everything that can go wrong in rollgate-deploy.
///
/// Messages are lowercase and name the thing and where. A cause that is
/// itself an error (rusqlite's, the OS's) is kept whole and returned from
/// `source()`, not repeated in the message: print the chain to see it.
///
/// ```
/// use std::error::Error as _;
/// use rollgate_deploy::{Cause, Error};
///
/// let io = std::io::Error::other("disk on fire");
/// let e = Error::Store("/var/lib/rollgate.db".into(), Some(Cause::new(io)));
/// assert_eq!(e.to_string(), "state store: /var/lib/rollgate.db");
/// assert_eq!(e.source().unwrap().to_string(), "disk on fire");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input failed validation: `what` names the field or file.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The field, value kind or file that is wrong.
        what: String,
        /// Why it is wrong.
        reason: String,
    },
    /// A plan file could not be read or parsed.
    #[error("{path}: {reason}")]
    PlanFile {
        /// The file, with `:line:column` when known.
        path: String,
        /// What is wrong there.
        reason: String,
    },
    /// A deploy, readiness or inspection call on one target failed.
    #[error("target {target}: {reason}")]
    Deploy {
        /// The target.
        target: TargetId,
        /// What failed.
        reason: String,
        /// Whether trying again may help (timeouts, non-zero exits).
        transient: bool,
    },
    /// A gate could not reach a decision.
    #[error("gate: {0}")]
    Gate(String),
    /// A traffic switch (blue-green) failed.
    #[error("router: {0}")]
    Router(String),
    /// The state store is locked by another process or otherwise busy.
    #[error("state store busy: {0}")]
    StoreBusy(String, #[source] Option<Cause>),
    /// The state store failed (I/O, corruption, read-only file).
    #[error("state store: {0}")]
    Store(String, #[source] Option<Cause>),
    /// Another controller holds the lease on this rollout.
    #[error("rollout {rollout} is driven by {owner} (lease expires in {}s)", expires_in.as_secs())]
    LeaseHeld {
        /// The rollout.
        rollout: RolloutId,
        /// Who holds the lease.
        owner: String,
        /// Time left on the lease.
        expires_in: Duration,
    },
    /// This controller lost its lease: another one took over the rollout.
    #[error("rollout {rollout}: lease lost to a newer controller (fence {fence} is stale)")]
    StaleFence {
        /// The rollout.
        rollout: RolloutId,
        /// The fence this controller held.
        fence: u64,
    },
    /// This controller's lease ran out before it could act (it was frozen,
    /// or its store calls were too slow to renew it): it stops rather than
    /// act while another controller may hold the rollout.
    #[error(
        "rollout {rollout}: this controller's lease (fence {fence}) lapsed before it could act; it stopped"
    )]
    LeaseLapsed {
        /// The rollout.
        rollout: RolloutId,
        /// The fence this controller held.
        fence: u64,
    },
    /// The rollout has a `Finished` event: its log is closed, and nothing
    /// more may be appended to it, by a controller or a person.
    #[error("rollout {rollout} already finished: its log takes no more events")]
    Finished {
        /// The rollout.
        rollout: RolloutId,
    },
    /// No rollout, artifact or service by that name.
    #[error("{0} not found")]
    NotFound(String),
    /// A digest was recorded before with different content.
    #[error(
        "artifact {digest} is already recorded as {existing:?}; a digest is never rebound (got {new:?})"
    )]
    DigestRebound {
        /// The digest.
        digest: Digest,
        /// The version label it was recorded with.
        existing: String,
        /// The conflicting label.
        new: String,
    },
    /// A target's current artifact was read, but it is none the deployer or
    /// the store knows (no version and digest pair for it).
    #[error("target {target} runs {runs:?}, which is not a known artifact")]
    UnknownArtifact {
        /// The target.
        target: TargetId,
        /// What it reported running (a version label).
        runs: String,
    },
    /// The rollout was refused before anything changed: these targets could
    /// not be returned to what they run now if the rollout rolled back.
    #[error("{}", unrestorable_message(targets))]
    Unrestorable {
        /// Each target and why it could not be restored.
        targets: Vec<(TargetId, String)>,
    },
    /// A recorded event does not fit the rollout's state (a corrupt or foreign log).
    #[error("rollout {rollout}: event {seq} does not apply: {reason}")]
    Corrupt {
        /// The rollout.
        rollout: RolloutId,
        /// The event's sequence number.
        seq: u64,
        /// Why it does not apply.
        reason: String,
    },
}

fn unrestorable_message(targets: &[(TargetId, String)]) -> String {
    let list = targets
        .iter()
        .map(|(t, why)| format!("{t} ({why})"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "refused before changing anything: a rollback could not restore {} target(s): {list}; \
         declare the artifact they run (a `previous`, or `known` version and digest pairs) \
         or allow a one-way deploy (`no_rollback_ok`)",
        targets.len()
    )
}

impl Error {
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Whether the error means "the store is locked or busy, try later".
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::StoreBusy(..) | Error::LeaseHeld { .. })
    }

    /// Whether the error is about bad input (a plan, a name, a value).
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::Invalid { .. }
                | Error::PlanFile { .. }
                | Error::NotFound(_)
                | Error::DigestRebound { .. }
                | Error::Unrestorable { .. }
                | Error::Finished { .. }
        )
    }
}

/// The underlying error of an [`Error`], returned from its `source()`.
///
/// Shared, so cloning an [`Error`] (the SQLite store hands one failed batch's
/// error to every caller in it) copies a pointer, not the error. Two causes
/// are equal when their messages are.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// Keeps `error` as a cause.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(error))
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

/// `error` and its `source()` chain on one line, causes joined by `: `; a
/// cause that only repeats the previous message (rusqlite's `Error code 26:
/// file is not a database` under `file is not a database`) is left out.
///
/// ```
/// use rollgate_deploy::{Cause, Error, error_chain};
///
/// let io = std::io::Error::other("disk on fire");
/// let e = Error::Store("/var/lib/rollgate.db".into(), Some(Cause::new(io)));
/// assert_eq!(error_chain(&e), "state store: /var/lib/rollgate.db: disk on fire");
/// ```
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut next = error.source();
    while let Some(cause) = next {
        let message = cause.to_string();
        if !last.ends_with(&message) && !message.ends_with(&last) {
            text.push_str(": ");
            text.push_str(&message);
        }
        last = message;
        next = cause.source();
    }
    text
}
