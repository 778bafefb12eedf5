//! `rollgate rollout ...` and `rollgate rollback`: drive rollouts from plan
//! files, with state in a SQLite file or a PostgreSQL database.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use rollgate::plan::Plan;
use rollgate::report::rfc3339;
use rollgate_deploy::{
    Artifact, Error, Event, EventRecord, Executor, GateUse, LeaseInfo, ListFilter, Notification,
    Outcome, PhaseDefaults, PostgresStore, Report, Rollout, RolloutId, RolloutRequest,
    SqliteOptions, SqliteStore, StateStore, Status, Strategy, TargetState, Writer,
};
use serde_json::{Value, json};

use crate::remote::RemoteStore;

/// `println!` that survives a closed pipe (`rollgate rollout history | head`):
/// once standard output is gone, later lines are dropped instead of
/// panicking, and the command finishes normally (a rollout in progress keeps
/// going). Any other write error is reported once on standard error.
macro_rules! out {
    ($($arg:tt)*) => {
        crate::rollout::write_line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: with standard error closed
/// (`rollgate rollout run 2>&1 | head -1`) messages are dropped and the
/// command goes on.
macro_rules! err {
    ($($arg:tt)*) => {
        crate::rollout::write_err(format_args!($($arg)*))
    };
}

pub(crate) fn write_err(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    // With `--log-format json` every line on standard error is a log line.
    if crate::obs::json_logs() {
        tracing::info!(target: "rollgate", "{args}");
        return;
    }
    let mut stderr = std::io::stderr().lock();
    let _ = stderr
        .write_fmt(args)
        .and_then(|()| stderr.write_all(b"\n"));
}

static STDOUT_GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    use std::sync::atomic::Ordering;
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            err!("rollgate: cannot write to standard output: {e}");
        }
    }
}

/// Exit code: the rollout succeeded (or the request was recorded).
pub const SUCCESS: u8 = 0;
/// Exit code: the rollout rolled back or was aborted.
pub const ROLLED_BACK: u8 = 1;
/// Exit code: bad input (plan file, ids, names).
pub const BAD_INPUT: u8 = 2;
/// Exit code: held for a person (a gate said hold).
pub const HELD: u8 = 3;
/// Exit code: the state store is busy, locked, read-only, unreadable or
/// missing (for every command but `rollout run`), or another controller
/// drives the rollout.
pub const STORE_BUSY: u8 = 4;

/// Exit code: a controller stopped on SIGINT (128 + 2).
pub const INTERRUPTED_INT: u8 = 130;
/// Exit code: a controller stopped on SIGTERM (128 + 15).
pub const INTERRUPTED_TERM: u8 = 143;

/// The lease a CLI controller takes on a rollout (the executor's default);
/// its notification claims last as long.
fn lease_ttl() -> Duration {
    rollgate_deploy::ExecutorConfig::default().lease_ttl
}

const EXIT_CODES: &str = "Exit codes: 0 success/promoted, 1 rolled back, aborted or rollback failed, \
2 bad input (or refused: a precheck failed, or a rollback could not restore some target), 3 held for a person, 4 state store busy/locked/unusable/missing or rollout driven \
elsewhere, 130/143 stopped by SIGINT/SIGTERM at a safe point (lease released; the command to \
continue is printed; a second signal exits at once).";

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people (live progress on a TTY).
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Where rollout state lives: a SQLite file or a PostgreSQL database.
#[derive(Clone)]
pub enum StateLoc {
    /// A SQLite file (created owner-only when missing).
    File(PathBuf),
    /// A `postgres://` or `postgresql://` URL (its password is never shown).
    Postgres(String),
}

impl StateLoc {
    /// Parses `--state`: a URL with a `postgres` scheme, else a file path.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self::Postgres(s.to_owned()))
        } else if s.is_empty() {
            Err("expected a SQLite file path or a postgres:// URL".into())
        } else {
            Ok(Self::File(PathBuf::from(s)))
        }
    }
}

/// The location as it may be shown: a URL's password as `***`.
impl std::fmt::Display for StateLoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

impl std::fmt::Debug for StateLoc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// `scheme://user:***@host/db` for `scheme://user:password@host/db`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".into();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let pw = if userinfo.contains(':') { ":***" } else { "" };
            // Query parameters may carry a password too.
            let tail = if tail.contains("password") {
                tail.split('?').next().unwrap_or_default().to_owned() + "?***"
            } else {
                tail.to_owned()
            };
            format!("{scheme}://{user}{pw}@{host}{tail}")
        }
        None if tail.contains("password") => format!(
            "{scheme}://{authority}{}?***",
            tail.split('?').next().unwrap_or_default()
        ),
        None => url.to_owned(),
    }
}

/// Where state lives and how to print.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The state: a SQLite file (`rollout run` creates it, owner-only, if
    /// missing; every other command needs it to exist) or a
    /// `postgres://user:password@host:port/db` URL shared by several
    /// controllers. A URL's password is never printed.
    #[arg(
        long,
        global = true,
        value_name = "FILE|URL",
        env = "ROLLGATE_STATE",
        hide_env_values = true,
        default_value = "rollgate.db",
        value_parser = StateLoc::parse
    )]
    state: StateLoc,
    /// Talk to `rollgate serve` at this URL (`http://host:port`) instead of
    /// opening the state: `rollout run` submits the plan and follows the
    /// rollout the server drives; `status`, `list`, `history` and `pause`,
    /// `resume`, `promote`, `abort` read and decide through its API.
    #[arg(long, global = true, value_name = "URL", env = "ROLLGATE_SERVER")]
    server: Option<String>,
    /// With `--server`: a file holding the API token mutations need (else
    /// `$ROLLGATE_TOKEN`). The token is never printed.
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// How long to wait for a state file locked by another process.
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    busy_timeout: Duration,
}

impl Common {
    /// The output format asked for.
    pub(crate) fn output(&self) -> Output {
        self.output
    }
}

/// Run and control rollouts.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    telemetry: crate::obs::TelemetryFlags,
}

#[derive(Debug, Subcommand)]
enum RolloutCommand {
    /// Start (or, with a used idempotency key, resume) the rollout a plan file describes.
    Run {
        /// The plan file (TOML; format in the README section "Plan file"), e.g.
        /// `cp -r examples/rollout /tmp/demo && cd /tmp/demo && rollgate rollout run v1.toml --no-rollback-ok`.
        plan: PathBuf,
        /// Who starts it (recorded in the audit history; default: USER@HOST).
        #[arg(long, default_value_t = default_actor())]
        actor: String,
        /// Same key, same rollout: a repeated run starts nothing new.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Start even when a rollback could not return some target to what it
        /// runs now (an unregistered version, or nothing): a deliberate
        /// one-way deploy. If it then rolls back, it ends `rollback_failed`
        /// naming every target left on the new artifact. Without it such a
        /// run is refused (exit 2) before anything changes.
        #[arg(long)]
        no_rollback_ok: bool,
    },
    /// Show a rollout's state.
    Status {
        /// The rollout id.
        id: String,
        /// Follow it live until it ends: redrawn on a terminal, one line per
        /// change otherwise (one JSON document per change with `--output json`).
        #[arg(long)]
        watch: bool,
    },
    /// List rollouts, newest first: id, service, version, status, created, actor.
    List {
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// Only this status: succeeded, rolled_back, aborted, rollback_failed,
        /// unfinished, running, paused, held, rolling_back or interrupted.
        #[arg(long)]
        status: Option<String>,
        /// Only rollouts created within this long (`30m`, `2h`, `7d`).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// At most this many (0: all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// The audit history: who did what, when, to which target, with what outcome.
    History {
        /// Only this service.
        #[arg(long)]
        service: Option<String>,
        /// Only this rollout.
        #[arg(long)]
        rollout: Option<String>,
        /// Only rollouts created within this long (`30m`, `2h`, `7d`).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        since: Option<Duration>,
        /// The newest this many rollouts (0: all).
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Start the same request again as a new rollout, after it was aborted or
    /// rolled back (the new actor is recorded, and which rollout it retries).
    Retry {
        /// The finished rollout to retry.
        id: String,
        /// Who asks (recorded in the audit history; default: USER@HOST).
        #[arg(long, default_value_t = default_actor())]
        actor: String,
    },
    /// Ask the rollout's controller to pause.
    Pause(Request),
    /// Resume a paused rollout, or ask a holding gate again.
    Resume(Request),
    /// Complete the current phase now (skip the rest of its bake and its gate).
    Promote(Request),
    /// Abort: roll every touched target back.
    Abort(Request),
    /// Adopt every unfinished rollout whose controller is gone, and drive it to the end.
    ResumeAll,
}

#[derive(Debug, Args)]
struct Request {
    /// The rollout id.
    id: String,
    /// Who asks (recorded in the audit history; default: USER@HOST).
    #[arg(long, default_value_t = default_actor())]
    actor: String,
    /// Only record the request. Without it, `abort`, `promote` and `resume`
    /// follow the rollout to its end (or next hold) and exit as `rollout
    /// run` does: when no controller drives it they drive it here, with live
    /// progress; otherwise they follow the controller's progress. `pause`
    /// only ever records.
    #[arg(long)]
    no_wait: bool,
}

/// Return every target of a service's last successful rollout to the artifact it ran before.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct RollbackArgs {
    /// The service.
    #[arg(long)]
    service: String,
    /// Go to this version instead: any artifact the service ran before (a
    /// rollout's artifact, `previous` or `[[known]]` entry), on the targets
    /// of its last rollout.
    #[arg(long, value_name = "VERSION")]
    to: Option<String>,
    /// Who asks (recorded in the audit history; default: USER@HOST).
    #[arg(long, default_value_t = default_actor())]
    actor: String,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    telemetry: crate::obs::TelemetryFlags,
}

/// A command's failure: message and exit code.
pub(crate) struct Fail(pub(crate) u8, pub(crate) String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        if let Error::Unrestorable { targets } = &e {
            return Fail(BAD_INPUT, unrestorable_text(targets));
        }
        let code = if e.is_input() {
            BAD_INPUT
        } else if matches!(
            e,
            Error::StoreBusy(..)
                | Error::LeaseHeld { .. }
                | Error::Store(..)
                | Error::StaleFence { .. }
                | Error::LeaseLapsed { .. }
                | Error::Corrupt { .. }
        ) {
            STORE_BUSY
        } else {
            ROLLED_BACK
        };
        Fail(code, rollgate_deploy::error_chain(&e))
    }
}

/// Why a run was refused up front, and the three ways out.
fn unrestorable_text(targets: &[(rollgate_deploy::TargetId, String)]) -> String {
    let mut text = format!(
        "refused before changing anything: if this rollout rolled back, {} target(s) could not be returned to what they run now:",
        targets.len()
    );
    for (t, why) in targets {
        text.push_str(&format!("\n  {t}: {why}"));
    }
    text.push_str(
        "\nways out:\n  \
         - declare what they run in the plan: `previous = { version = \"...\", digest = \"sha256:...\" }`\n  \
         - or list it in the plan as [[known]] entries (`version = \"...\"` and `digest = \"sha256:...\"`)\n  \
         - or pass --no-rollback-ok for a deliberate one-way deploy (a rollback then ends \
         `rollback_failed`, naming every target left on the new artifact)",
    );
    text
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Fail> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Fail(ROLLED_BACK, format!("cannot start the async runtime: {e}")))
}

pub(crate) fn finish(what: &str, r: Result<u8, Fail>) -> ExitCode {
    match r {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            crate::obs::fail(&format!("rollgate {what}: {msg}"), code);
            ExitCode::from(code)
        }
    }
}

/// Runs `rollgate rollout ...`.
pub fn run(args: RolloutArgs) -> ExitCode {
    let what = match &args.command {
        RolloutCommand::Run { .. } => "rollout run",
        RolloutCommand::Status { .. } => "rollout status",
        RolloutCommand::List { .. } => "rollout list",
        RolloutCommand::History { .. } => "rollout history",
        RolloutCommand::Retry { .. } => "rollout retry",
        RolloutCommand::Pause(_) => "rollout pause",
        RolloutCommand::Resume(_) => "rollout resume",
        RolloutCommand::Promote(_) => "rollout promote",
        RolloutCommand::Abort(_) => "rollout abort",
        RolloutCommand::ResumeAll => "rollout resume-all",
    };
    if let Err(e) = args.telemetry.install() {
        return finish(what, Err(Fail(BAD_INPUT, e)));
    }
    let result = runtime().and_then(|rt| rt.block_on(dispatch(args)));
    finish(what, result)
}

/// Runs `rollgate rollback`.
pub fn run_rollback(args: RollbackArgs) -> ExitCode {
    if let Err(e) = args.telemetry.install() {
        return finish("rollback", Err(Fail(BAD_INPUT, e)));
    }
    let result = runtime().and_then(|rt| rt.block_on(rollback(args)));
    finish("rollback", result)
}

/// The state store every command works on.
pub(crate) type Store = Arc<dyn StateStore>;

/// Opens (or creates) the store at `state`.
pub(crate) async fn open_store(state: &StateLoc, busy_timeout: Duration) -> Result<Store, Fail> {
    match state {
        StateLoc::File(path) => {
            let options = SqliteOptions::default().with_busy_timeout(busy_timeout);
            Ok(Arc::new(SqliteStore::open_with(path, &options)?))
        }
        StateLoc::Postgres(url) => Ok(Arc::new(PostgresStore::connect(url).await?)),
    }
}

async fn open(c: &Common) -> Result<Store, Fail> {
    if let Some(r) = remote(c)? {
        return Ok(r);
    }
    open_store(&c.state, c.busy_timeout).await
}

/// The server's API when `--server` is given.
fn remote(c: &Common) -> Result<Option<Arc<RemoteStore>>, Fail> {
    let Some(url) = &c.server else {
        return Ok(None);
    };
    let token = match &c.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    Fail(
                        BAD_INPUT,
                        format!("cannot read --token-file {}: {e}", path.display()),
                    )
                })?
                .trim()
                .to_owned(),
        ),
        None => std::env::var("ROLLGATE_TOKEN").ok(),
    };
    Ok(Some(Arc::new(RemoteStore::new(url, token)?)))
}

/// Refuses a command that needs the state itself, not the API.
fn local_only(c: &Common, what: &str) -> Result<(), Fail> {
    match &c.server {
        Some(_) => Err(Fail(
            BAD_INPUT,
            format!(
                "{what} is not available with --server: run it with --state where the state is"
            ),
        )),
        None => Ok(()),
    }
}

/// Opens a state file that must already exist: every command but `rollout
/// run` reads or extends recorded rollouts, so a missing file means a wrong
/// path, not an empty history (and no stray file is created).
pub(crate) async fn open_existing(c: &Common) -> Result<Store, Fail> {
    if let StateLoc::File(path) = &c.state
        && c.server.is_none()
        && !path.exists()
    {
        return Err(Fail(
            STORE_BUSY,
            format!(
                "state file {} does not exist: nothing was rolled out with it (check --state or ROLLGATE_STATE)",
                path.display()
            ),
        ));
    }
    open(c).await
}

pub(crate) fn parse_id(s: &str) -> Result<RolloutId, Fail> {
    s.parse::<RolloutId>().map_err(Fail::from)
}

async fn dispatch(args: RolloutArgs) -> Result<u8, Fail> {
    let c = args.common;
    match args.command {
        RolloutCommand::Run {
            plan,
            actor,
            idempotency_key,
            no_rollback_ok,
        } => run_plan(&c, &plan, &actor, idempotency_key, no_rollback_ok).await,
        RolloutCommand::Status { id, watch: false } => status(&c, parse_id(&id)?).await,
        RolloutCommand::Status { id, watch: true } => watch(&c, parse_id(&id)?, false).await,
        RolloutCommand::List {
            service,
            status,
            since,
            limit,
        } => list(&c, service, status, since, limit).await,
        RolloutCommand::History {
            service,
            rollout,
            since,
            limit,
        } => {
            let rollout = rollout.as_deref().map(parse_id).transpose()?;
            history(&c, service.as_deref(), rollout, since, limit).await
        }
        RolloutCommand::Retry { id, actor } => retry(&c, parse_id(&id)?, &actor).await,
        RolloutCommand::Pause(r) => request(&c, r, Event::PauseRequested).await,
        RolloutCommand::Resume(r) => request(&c, r, Event::ResumeRequested).await,
        RolloutCommand::Promote(r) => request(&c, r, Event::PromoteRequested).await,
        RolloutCommand::Abort(r) => request(&c, r, Event::AbortRequested).await,
        RolloutCommand::ResumeAll => resume_all(&c).await,
    }
}

pub(crate) fn check_actor(actor: &str) -> Result<(), Fail> {
    if actor.trim().is_empty() {
        return Err(Fail(BAD_INPUT, "--actor must not be empty".into()));
    }
    Ok(())
}

/// Who a person is when `--actor` is not given: `USER@HOST`. Without
/// `$USER` or `$LOGNAME` (containers, cron, `env -i`), the name
/// `/etc/passwd` gives this process's user id, else the id itself.
fn default_actor() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
        .or_else(user_of_this_process)
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{}", hostname())
}

/// This process's user name from `/etc/passwd` (its numeric id when the
/// file has no entry for it), or `None` when the id cannot be read.
fn user_of_this_process() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Some(passwd_name(&passwd, uid).unwrap_or_else(|| uid.to_string()))
}

/// The name `/etc/passwd` text gives user id `uid`.
fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse() == Ok(uid) && !name.is_empty()).then(|| name.to_string())
    })
}

/// This process's name in leases and the audit history:
/// `rollgate@HOST:PIDNS:PID` (PIDNS: the pid namespace, so containers that
/// share a host name never mistake each other's live controllers for dead).
pub(crate) fn owner() -> String {
    format!(
        "rollgate@{}:{}:{}",
        hostname(),
        pid_namespace(),
        std::process::id()
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The inode of this process's pid namespace (`pid:[4026531836]`), or `0`.
fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|p| {
            let s = p.to_string_lossy().into_owned();
            s.strip_prefix("pid:[")
                .and_then(|r| r.strip_suffix(']'))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "0".into())
}

/// Whether `owner` names a rollgate process in this host's and this pid
/// namespace that no longer runs. Anything else counts as alive.
pub(crate) fn owner_is_dead(owner: &str) -> bool {
    let Some(rest) = owner.strip_prefix("rollgate@") else {
        return false;
    };
    let mut parts = rest.rsplitn(3, ':');
    let (Some(pid), Some(ns), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let ours = pid_namespace();
    if host != hostname() || ns != ours || ours == "0" {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        // A recycled pid running something else counts as dead.
        Ok(cmd) => !String::from_utf8_lossy(&cmd).contains("rollgate"),
        Err(_) => true,
    }
}

/// The controller that drives rollout `id` now: a lease that has not expired
/// and whose owner is not a dead process on this host.
pub(crate) async fn live_driver(
    store: &dyn StateStore,
    id: RolloutId,
) -> Result<Option<LeaseInfo>, Fail> {
    Ok(store
        .lease_info(id)
        .await?
        .filter(|l| !l.expires_in.is_zero() && !owner_is_dead(&l.owner)))
}

/// What the CLI keeps in `RolloutRequest::spec` to rebuild deployer, gate and
/// router when it resumes the rollout from any directory.
pub(crate) fn spec_of(plan: &Plan, cwd: &Path) -> Value {
    json!({ "plan": plan.text, "path": plan.path, "cwd": cwd.display().to_string() })
}

fn plan_from_spec(req: &RolloutRequest) -> Result<(Plan, PathBuf), Fail> {
    let spec = req.spec.as_ref().ok_or_else(|| {
        Fail(
            BAD_INPUT,
            format!(
                "rollout of {} was not made by the CLI: no plan recorded",
                req.service
            ),
        )
    })?;
    let text = spec["plan"].as_str().unwrap_or_default();
    let path = spec["path"].as_str().unwrap_or("recorded plan");
    let cwd = PathBuf::from(spec["cwd"].as_str().unwrap_or("."));
    // Files the plan names (the analysis file) are found from where it was run.
    Ok((Plan::parse_in(text, path, &cwd)?, cwd))
}

async fn known_artifacts(store: &dyn StateStore, service: &str) -> Result<Vec<Artifact>, Fail> {
    let mut known = Vec::new();
    for s in store.list(Some(service)).await? {
        known.push(s.artifact.clone());
        if let Ok(req) = store.request(s.id).await {
            known.extend(req.previous);
            known.extend(req.known);
        }
    }
    Ok(known)
}

/// The executor for rollout request `req`: deployer, gate and router built
/// from the plan it records. `lease_ttl` overrides the default lease length.
pub(crate) async fn executor_for(
    store: Store,
    req: &RolloutRequest,
    progress: Option<Progress>,
    lease_ttl: Option<Duration>,
) -> Result<Executor, Fail> {
    let (plan, cwd) = plan_from_spec(req)?;
    executor_from(store, &plan, cwd, req, progress, lease_ttl).await
}

/// As [`executor_for`], from `plan` already parsed (the plan `req`
/// records, read in `cwd`): no second parse.
pub(crate) async fn executor_from(
    store: Store,
    plan: &Plan,
    cwd: PathBuf,
    req: &RolloutRequest,
    progress: Option<Progress>,
    lease_ttl: Option<Duration>,
) -> Result<Executor, Fail> {
    let known = known_artifacts(&*store, &req.service).await?;
    let mut exec = plan
        .executor_builder(store)
        .owner(owner())
        .cwd(cwd)
        .known(known);
    if let Some(ttl) = lease_ttl {
        exec = exec.configure(move |c| c.with_lease_ttl(ttl));
    }
    // A rollback's plan skips the gate explicitly: going back to what ran
    // before is not held up by the health of what is being undone (and a
    // canary gate does not scrape for it).
    if req.plan.phases.iter().all(|p| p.gate == GateUse::Skip) {
        exec = exec.without_gate();
    }
    Ok(observed(exec.build()?, progress))
}

fn observed(exec: Executor, progress: Option<Progress>) -> Executor {
    match progress {
        Some(p) => exec.with_observer(Arc::new(move |r: &Rollout, e: &EventRecord| p.update(r, e))),
        None => exec,
    }
}

/// Live progress: a bar on a TTY, one line per event otherwise.
#[derive(Clone)]
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(c: &Common, total: usize) -> Option<Self> {
        // With JSON logs the executor's own `rollout event` lines say it.
        if c.output == Output::Json || crate::obs::json_logs() {
            return None;
        }
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} targets  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Some(Self { bar })
    }

    fn update(&self, r: &Rollout, e: &EventRecord) {
        let line = format!(
            "{} {}{}: {}",
            rfc3339(e.at_ms),
            e.event.action(),
            e.event
                .target()
                .map(|t| format!(" {t}"))
                .unwrap_or_default(),
            e.event.outcome_text()
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(r.on_artifact().len() as u64);
                let phases = r.request.plan.phases.len();
                bar.set_message(format!(
                    "phase {}/{phases}: {}",
                    (r.phase + 1).min(phases),
                    e.event.action()
                ));
                if !matches!(
                    e.event,
                    Event::DeployIntent { .. } | Event::TargetDeployed { .. }
                ) {
                    bar.println(line);
                }
            }
            None => err!("{line}"),
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn exit_code(r: &Rollout) -> u8 {
    match &r.status {
        Status::Finished(Outcome::Succeeded) => SUCCESS,
        Status::Finished(Outcome::Refused) => BAD_INPUT,
        Status::Finished(_) => ROLLED_BACK,
        Status::Held(_) => HELD,
        Status::Running | Status::Paused | Status::RollingBack { .. } => SUCCESS,
    }
}

pub(crate) fn status_json(r: &Rollout, existed: bool, driver: Option<&str>) -> Value {
    let targets: BTreeMap<String, Value> = r
        .targets
        .iter()
        .map(|(t, s)| {
            (
                t.to_string(),
                serde_json::to_value(s).unwrap_or(Value::Null),
            )
        })
        .collect();
    json!({
        "id": r.id.0,
        "service": r.request.service,
        "artifact": r.request.artifact,
        "sbom": r.request.artifact.sbom,
        "previous": r.previous_artifact(),
        "status": status_name(r),
        "interrupted": r.interrupted.as_ref().map(|i| json!({ "by": i.by, "reason": i.reason, "at": rfc3339(i.at_ms), "was": lifecycle(&r.status) })),
        "outcome": r.outcome().map(Outcome::as_str),
        "reasons": status_reasons(r),
        // 1-based like every text; the index under its own name.
        "phase": (r.phase + 1).min(r.request.plan.phases.len()),
        "phase_index": r.phase,
        "phases": r.request.plan.phases.len(),
        "stage": r.stage,
        "on_artifact": r.on_artifact().len(),
        "left_on_artifact": r.left_on_artifact(),
        "targets": targets,
        "last_decision": r.last_decision,
        "existed": existed,
        "requested_by": r.request.actor,
        "driven_by": driver,
    })
}

/// The status for people: `interrupted` while a rollout a stopped
/// controller left is not driven again.
pub(crate) fn status_name(r: &Rollout) -> &'static str {
    if r.interrupted.is_some() && !r.is_finished() {
        return "interrupted";
    }
    lifecycle(&r.status)
}

/// The lifecycle state under an interruption.
pub(crate) fn lifecycle(s: &Status) -> &'static str {
    match s {
        Status::Running => "running",
        Status::Paused => "paused",
        Status::Held(_) => "held",
        Status::RollingBack { .. } => "rolling_back",
        Status::Finished(o) => o.as_str(),
    }
}

fn status_reasons(r: &Rollout) -> Vec<String> {
    match &r.status {
        Status::Held(reasons) => reasons.clone(),
        Status::RollingBack { reason, .. } => vec![reason.clone()],
        Status::Finished(o) if *o != Outcome::Succeeded => {
            r.rollback_reason.iter().cloned().collect()
        }
        _ => r
            .last_decision
            .as_ref()
            .map(|d| d.reasons().to_vec())
            .unwrap_or_default(),
    }
}

/// The outbox of a rollout as `status` and the API show it: per
/// notification its event (id, kind, sequence number), its destination
/// (its name, or its URL without credentials) and its state: `delivered`
/// (with when), `failing` (failed attempts and the last error) or
/// `pending` (not attempted yet). Only a recorded delivery is `delivered`.
/// Error texts lose every destination URL's credentials.
pub(crate) fn notifications_json(ns: &[Notification], req: &RolloutRequest) -> Value {
    let redact = |text: &str| {
        req.notify.iter().fold(text.to_owned(), |t, d| {
            t.replace(&d.url, &rollgate_deploy::redact_url(&d.url))
        })
    };
    Value::Array(
        ns.iter()
            .map(|n| {
                let to = req.notify.get(n.destination).map_or_else(
                    || format!("destination {}", n.destination),
                    |d| {
                        if d.name.trim().is_empty() {
                            rollgate_deploy::redact_url(&d.url)
                        } else {
                            d.name.clone()
                        }
                    },
                );
                let state = match (n.delivered_ms, n.attempts) {
                    (Some(_), _) => "delivered",
                    (None, 0) => "pending",
                    (None, _) => "failing",
                };
                let mut doc = serde_json::to_value(n).unwrap_or(Value::Null);
                doc["last_error"] = json!(n.last_error.as_deref().map(redact));
                doc["event_id"] = json!(n.event_id());
                doc["to"] = json!(to);
                doc["state"] = json!(state);
                doc["delivered_at"] = json!(n.delivered_ms.map(rfc3339));
                doc
            })
            .collect(),
    )
}

/// `notifications_json`'s document as lines for people.
fn notification_lines(doc: &Value) -> Vec<String> {
    let Some(all) = doc.as_array() else {
        return Vec::new();
    };
    let count = |s: &str| all.iter().filter(|n| n["state"] == s).count();
    let mut lines = vec![format!(
        "  notifications: {} delivered, {} failing, {} pending",
        count("delivered"),
        count("failing"),
        count("pending")
    )];
    for n in all {
        let what = format!(
            "    {} (event {}) to {}",
            n["kind"].as_str().unwrap_or("?"),
            n["seq"],
            n["to"].as_str().unwrap_or("?")
        );
        lines.push(match n["state"].as_str() {
            Some("delivered") => format!(
                "{what}: delivered at {}",
                n["delivered_at"].as_str().unwrap_or("?")
            ),
            Some("failing") => format!(
                "{what}: not delivered, {} failed attempt(s), last error: {}",
                n["attempts"],
                n["last_error"].as_str().unwrap_or("unknown")
            ),
            _ => format!("{what}: not attempted yet"),
        });
    }
    lines
}

fn print_status(c: &Common, r: &Rollout, existed: bool, driver: Option<&str>) {
    if c.output == Output::Json {
        out!("{}", status_json(r, existed, driver));
        return;
    }
    let a = &r.request.artifact;
    out!(
        "rollout {}: {} {} ({})",
        r.id,
        r.request.service,
        a.version,
        a.digest
    );
    if let Some(sbom) = &a.sbom {
        out!("  sbom: {sbom}");
    }
    out!("  requested by: {}", r.request.actor);
    if existed {
        out!("  (existing rollout for this idempotency key; nothing new started)");
    }
    let phases = r.request.plan.phases.len();
    let phase = match r.request.plan.phases.get(r.phase) {
        Some(p) => format!("phase {}/{phases} ({})", r.phase + 1, p.name),
        None => format!("all {phases} phases done"),
    };
    out!("  status: {}  {phase}", status_name(r));
    if let Some(i) = &r.interrupted
        && !r.is_finished()
    {
        out!(
            "  interrupted: {} stopped by {} at {} while {}",
            i.by,
            i.reason,
            rfc3339(i.at_ms),
            lifecycle(&r.status)
        );
    }
    for reason in status_reasons(r) {
        out!("  why: {reason}");
    }
    if matches!(r.status, Status::Held(_)) && r.interrupted.is_none() {
        let (id, state) = (r.id, state_arg(c));
        out!("  decide with one of:");
        out!(
            "    rollgate rollout promote {id} --actor NAME{state}   # complete this phase and go on"
        );
        out!("    rollgate rollout resume {id} --actor NAME{state}    # ask the gate again");
        out!(
            "    rollgate rollout abort {id} --actor NAME{state}     # roll every touched target back"
        );
    }
    if let Some(d) = driver {
        out!("  driven by: {d}");
    }
    let left = r.left_on_artifact();
    if !left.is_empty() {
        let names: Vec<&str> = left.iter().map(|t| t.as_str()).collect();
        let now = if r.is_finished() {
            "left on"
        } else {
            "not yet back from"
        };
        out!("  {now} {}: {}", a.version, names.join(", "));
    }
    out!(
        "  targets on {}: {}/{}",
        a.version,
        r.on_artifact().len(),
        r.targets.len()
    );
    let mut by_state: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (t, s) in &r.targets {
        let key = match s {
            TargetState::Failed(why) => format!("failed ({why})"),
            TargetState::RestoreFailed(why) => format!("restore failed ({why})"),
            TargetState::RestoreSkipped(why) => format!("restore skipped ({why})"),
            other => serde_json::to_value(other)
                .ok()
                .and_then(|v| v["state"].as_str().map(str::to_string))
                .unwrap_or_default(),
        };
        by_state.entry(key).or_default().push(t.to_string());
    }
    for (state, ts) in by_state {
        out!("    {state}: {}", ts.join(", "));
    }
}

async fn run_plan(
    c: &Common,
    plan_path: &Path,
    actor: &str,
    key: Option<String>,
    no_rollback_ok: bool,
) -> Result<u8, Fail> {
    check_actor(actor)?;
    if key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        return Err(Fail(
            BAD_INPUT,
            "--idempotency-key must not be empty (leave it out for a new rollout each run)".into(),
        ));
    }
    if let Some(r) = remote(c)? {
        return run_remote(c, &r, plan_path, actor, key, no_rollback_ok).await;
    }
    let plan = Plan::load(plan_path)?;
    let cwd = std::env::current_dir()
        .map_err(|e| Fail(BAD_INPUT, format!("cannot read the working directory: {e}")))?;
    let store = open(c).await?;
    let req = plan
        .request(actor, key)
        .with_no_rollback_ok(no_rollback_ok)
        .with_spec(spec_of(&plan, &cwd));
    // Validate the whole set-up before anything is recorded.
    let probe = executor_for(store.clone(), &req, None, None).await?;
    let exists = match &req.idempotency_key {
        Some(k) => store.find_key(k).await?.is_some(),
        None => false,
    };
    if !exists {
        refuse_on_precheck(c, &probe, &plan, &cwd, &req).await?;
    }
    let created = probe.create(&req).await?;
    let id = created.id;
    if created.existed {
        let existing = store.request(id).await?;
        let log = store.events(id, 0).await?;
        let r = Rollout::replay(id, existing, &log)?;
        let lease = live_driver(&*store, id).await?;
        if r.is_finished() || matches!(r.status, Status::Held(_)) {
            print_status(c, &r, true, None);
            return Ok(exit_code(&r));
        }
        if let Some(l) = lease {
            print_status(c, &r, true, Some(&l.owner));
            return Err(Fail(
                STORE_BUSY,
                format!("rollout {id} is being driven by {}", l.owner),
            ));
        }
    } else if c.output == Output::Text {
        err!(
            "rollout {id}: {} {} on {} targets",
            plan.service,
            plan.artifact,
            plan.targets.len()
        );
    }
    // A new rollout is driven by the executor just built for its request;
    // an existing one by one built from what was recorded.
    let built = (!created.existed).then_some(probe);
    drive(c, store, id, created.existed, built).await
}

/// `rollout run --server`: submits the plan to the server, which drives
/// it; follows it to its end or its next hold, exiting as `rollout run`.
async fn run_remote(
    c: &Common,
    r: &RemoteStore,
    plan_path: &Path,
    actor: &str,
    key: Option<String>,
    no_rollback_ok: bool,
) -> Result<u8, Fail> {
    let text = std::fs::read_to_string(plan_path).map_err(|e| {
        Fail(
            BAD_INPUT,
            format!("{}: cannot read: {e}", plan_path.display()),
        )
    })?;
    let doc = r
        .submit(&text, actor, key.as_deref(), no_rollback_ok)
        .await
        .map_err(|e| match e {
            // The server names the plan `plan`; say which file it is.
            Error::Invalid { reason, .. } if reason.contains(": plan") => {
                Fail(BAD_INPUT, format!("{}: {reason}", plan_path.display()))
            }
            other => Fail::from(other),
        })?;
    let id = RolloutId(doc["id"].as_u64().unwrap_or_default());
    if c.output == Output::Text {
        let how = if doc["existed"] == true {
            "the existing rollout for this idempotency key"
        } else {
            "submitted"
        };
        err!("rollout {id}: {how}; {} drives it", r.base());
    }
    watch(c, id, true).await
}

/// Runs the plan's `[[precheck]]` commands; the first that fails refuses
/// the rollout (exit 2, its output as the reason), and only the refusal is
/// recorded.
async fn refuse_on_precheck(
    c: &Common,
    exec: &Executor,
    plan: &Plan,
    cwd: &Path,
    req: &RolloutRequest,
) -> Result<(), Fail> {
    // A signal drops the prechecks, and with them their commands (each in
    // a process group of its own, out of the terminal's reach): nothing is
    // recorded yet.
    let mut signal = signals();
    let checked = tokio::select! {
        r = plan.run_prechecks(Some(cwd.to_path_buf())) => r?,
        _ = signal.wait_for(Option::is_some) => {
            let (name, code) = signalled().unwrap_or(("SIGINT", INTERRUPTED_INT));
            return Err(Fail(code, format!("stopped by {name} before the rollout was recorded")));
        }
    };
    let Some((check, reason)) = checked else {
        return Ok(());
    };
    let created = exec.refuse(req, &check, &reason).await?;
    let store = exec.store();
    let log = store.events(created.id, 0).await?;
    let r = Rollout::replay(created.id, store.request(created.id).await?, &log)?;
    print_status(c, &r, created.existed, None);
    Err(Fail(
        BAD_INPUT,
        format!(
            "rollout {}: precheck {check} refused it before anything changed: {reason}",
            created.id
        ),
    ))
}

/// Drives rollout `id` to its end or a signal. `built`: the executor
/// already made for exactly this rollout's request (a new rollout), so its
/// gate (a canary gate scrapes from the moment it is built) is not built twice.
async fn drive(
    c: &Common,
    store: Store,
    id: RolloutId,
    existed: bool,
    built: Option<Executor>,
) -> Result<u8, Fail> {
    let req = store.request(id).await?;
    if let Some(l) = store.lease_info(id).await?
        && owner_is_dead(&l.owner)
    {
        store.break_lease(id, &l.owner).await?;
    }
    let progress = Progress::new(c, req.plan.targets().count());
    let exec = match built {
        Some(exec) => observed(exec, progress.clone()),
        None => executor_for(store, &req, progress.clone(), None).await?,
    };
    let mut signal = signals();
    let stop = async move {
        let got: Signalled = match signal.wait_for(Option::is_some).await {
            Ok(got) => *got,
            Err(_) => None,
        };
        match got {
            Some((name, _)) => name.to_string(),
            None => std::future::pending().await,
        }
    };
    let dispatcher = crate::notify::dispatcher(store_of(&exec), dispatch_config(&req))?;
    let store = store_of(&exec);
    let report: Result<Report, Error> =
        crate::notify::alongside(&dispatcher, &*store, Some(id), exec.run_until(id, stop)).await;
    crate::notify::report_pending(&*store_of(&exec), Some(id)).await;
    if let Some(p) = &progress {
        p.done();
    }
    let report = report?;
    print_status(c, &report.rollout, existed, None);
    if report.interrupted.is_some() {
        err!(
            "rollout {id}: stopped at a safe point; lease released. To continue:\n  {}",
            continue_command(c, &report.rollout)
        );
        return Ok(signalled().map_or(INTERRUPTED_INT, |(_, code)| code));
    }
    Ok(exit_code(&report.rollout))
}

/// The store an executor writes.
fn store_of(exec: &Executor) -> Store {
    exec.store().clone()
}

/// This controller's dispatcher settings for the plan's `[notify_retry]`
/// (the defaults when the request records no plan).
fn dispatch_config(req: &RolloutRequest) -> rollgate_deploy::DispatchConfig {
    match plan_from_spec(req) {
        Ok((plan, _)) => plan.dispatch_config(&owner(), lease_ttl()),
        Err(_) => rollgate::plan::NotifyConfig::default().dispatch_config(&owner(), lease_ttl()),
    }
}

/// The exact command that drives rollout `r` on from where it stopped.
fn continue_command(c: &Common, r: &Rollout) -> String {
    format!(
        "rollgate rollout resume {} --actor {}{}",
        r.id,
        shell_word(&r.request.actor),
        state_arg(c)
    )
}

/// ` --state FILE` with this state file's absolute path, so a printed
/// command works from any directory and whatever `--state` or
/// `$ROLLGATE_STATE` the printing command was given.
fn state_arg(c: &Common) -> String {
    if let Some(server) = &c.server {
        return format!(" --server {}", shell_word(server));
    }
    match &c.state {
        StateLoc::File(path) => {
            let state = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            format!(" --state {}", shell_word(&state.display().to_string()))
        }
        // Never the password: the command names the database, and the
        // person supplies the password (the `***`) or sets ROLLGATE_STATE.
        StateLoc::Postgres(_) => format!(" --state {}", shell_word(&c.state.to_string())),
    }
}

/// `s` quoted for a POSIX shell when it needs to be.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./@:=+,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

type Signalled = Option<(&'static str, u8)>;

static SIGNALS: std::sync::OnceLock<tokio::sync::watch::Receiver<Signalled>> =
    std::sync::OnceLock::new();

/// SIGINT and SIGTERM while a controller drives: the first asks it to stop
/// at the next safe point; a second exits at once (the log stays as
/// recorded, and resuming redoes any deploy in doubt). Installed on first
/// use, so commands that drive nothing keep the default handling.
fn signals() -> tokio::sync::watch::Receiver<Signalled> {
    SIGNALS
        .get_or_init(|| {
            let (tx, rx) = tokio::sync::watch::channel(None);
            // Registered here, before anything is driven, so no signal slips
            // through to the default handling once a controller runs.
            #[cfg(unix)]
            let streams = {
                use tokio::signal::unix::{SignalKind, signal};
                signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)))
            };
            tokio::spawn(async move {
                #[cfg(unix)]
                let Ok((mut int, mut term)) = streams else {
                    return;
                };
                loop {
                    #[cfg(unix)]
                    let got = tokio::select! {
                        _ = int.recv() => ("SIGINT", INTERRUPTED_INT),
                        _ = term.recv() => ("SIGTERM", INTERRUPTED_TERM),
                    };
                    #[cfg(not(unix))]
                    let got = match tokio::signal::ctrl_c().await {
                        Ok(()) => ("SIGINT", INTERRUPTED_INT),
                        Err(_) => return,
                    };
                    crate::obs::stop_requested(got.0);
                    if tx.borrow().is_none() {
                        err!(
                            "rollgate: {}: stopping at the next safe point (send it again to exit at once)",
                            got.0
                        );
                        let _ = tx.send(Some(got));
                    } else {
                        err!(
                            "rollgate: {} again: exiting now; the rollout stays as recorded (`rollgate rollout resume ID` goes on)",
                            got.0
                        );
                        // Deploy and gate commands run in process groups of
                        // their own, out of the terminal's reach: exit kills
                        // them, as the terminal's Ctrl-C did before.
                        rollgate_deploy::kill_running_commands();
                        std::process::exit(i32::from(got.1));
                    }
                }
            });
            rx
        })
        .clone()
}

/// The signal that asked this process to stop, if one did.
fn signalled() -> Signalled {
    SIGNALS.get().and_then(|rx| *rx.borrow())
}

async fn status(c: &Common, id: RolloutId) -> Result<u8, Fail> {
    let store = open_existing(c).await?;
    let req = store.request(id).await?;
    let log = store.events(id, 0).await?;
    let r = Rollout::replay(id, req, &log)?;
    // A lease whose owner has expired or is a dead process on this host
    // drives nothing: say so, and what to run.
    let lease = live_driver(&*store, id).await?;
    let driver = lease.as_ref().map(|l| l.owner.as_str());
    // The outbox; when it cannot be read, say so rather than guess.
    let notes = store
        .notifications(Some(id))
        .await
        .map(|ns| notifications_json(&ns, &r.request));
    if c.output == Output::Json {
        let mut doc = status_json(&r, false, driver);
        match notes {
            Ok(n) => doc["notifications"] = n,
            Err(e) => {
                doc["notifications"] = Value::Null;
                doc["notifications_error"] = json!(rollgate_deploy::error_chain(&e));
            }
        }
        out!("{doc}");
    } else {
        print_status(c, &r, false, driver);
        match notes {
            Ok(n) if n.as_array().is_some_and(|a| !a.is_empty()) => {
                for line in notification_lines(&n) {
                    out!("{line}");
                }
            }
            Ok(_) => {}
            Err(e) => out!(
                "  notifications: unknown ({})",
                rollgate_deploy::error_chain(&e)
            ),
        }
    }
    if lease.is_none() && !matches!(r.status, Status::Finished(_)) && c.output != Output::Json {
        if matches!(r.status, Status::Held(_)) {
            out!("  no controller is driving it: it waits for one of the decisions above");
        } else if let Some(server) = &c.server {
            out!("  no controller is driving it yet: the server at {server} adopts it");
        } else {
            let state = state_arg(c);
            out!(
                "  no controller is driving it: `rollgate rollout resume {id} --actor NAME{state}` takes it on (or `rollgate rollout resume-all{state}`)"
            );
        }
    }
    Ok(SUCCESS)
}

async fn request(c: &Common, r: Request, event: Event) -> Result<u8, Fail> {
    check_actor(&r.actor)?;
    let id = parse_id(&r.id)?;
    let store = open_existing(c).await?;
    let req = store.request(id).await?;
    let log = store.events(id, 0).await?;
    let mut rollout = Rollout::replay(id, req, &log)?;
    if let Some(o) = rollout.outcome() {
        return Err(Fail(
            BAD_INPUT,
            format!("rollout {id} already finished ({})", o.as_str()),
        ));
    }
    let action = event.action();
    let drives = !r.no_wait && !matches!(event, Event::PauseRequested);
    let before = live_driver(&*store, id).await?;
    let seq = store.append(id, Writer::Person(&r.actor), &[event]).await?;
    let driven = match live_driver(&*store, id).await? {
        Some(l) => Some(l),
        // Its driver may have acted on the request, finished the rollout and
        // let go of its lease since the append (an abort of a rollout with
        // little to restore): it drove it, and there is nothing to take on.
        None if before.is_some() => {
            for rec in store.events(id, rollout.last_seq).await? {
                rollout.apply(&rec)?;
            }
            if rollout.is_finished() { before } else { None }
        }
        None => None,
    };
    if drives
        && driven.is_none()
        && let Some(server) = &c.server
    {
        if c.output == Output::Text {
            out!(
                "rollout {id}: {action} recorded (event {seq}) for {}",
                r.actor
            );
            out!("  the server at {server} acts on it; following it until it ends or holds");
        }
        return watch(c, id, true).await;
    }
    if drives && driven.is_none() {
        if c.output == Output::Text {
            out!(
                "rollout {id}: {action} recorded (event {seq}) for {}",
                r.actor
            );
            out!("  no controller is driving it: driving it here until it ends or holds");
        }
        return drive(c, store, id, false, None).await;
    }
    if drives && let Some(l) = &driven {
        if c.output == Output::Text {
            out!(
                "rollout {id}: {action} recorded (event {seq}) for {}",
                r.actor
            );
            out!(
                "  {} drives it and acts within a second; following it until it ends or holds (Ctrl-C stops following, not the rollout)",
                l.owner
            );
        }
        return watch(c, id, true).await;
    }
    if c.output == Output::Json {
        out!(
            "{}",
            json!({ "id": id.0, "requested": action, "seq": seq, "actor": r.actor, "driven_by": driven.as_ref().map(|l| &l.owner) })
        );
    } else {
        out!(
            "rollout {id}: {action} recorded (event {seq}) for {}",
            r.actor
        );
        match driven {
            Some(l) => out!("  {} will act on it within a second", l.owner),
            None => out!(
                "  no controller is driving it now; `rollgate rollout resume {id} --actor NAME{}` acts on it",
                state_arg(c)
            ),
        }
    }
    Ok(SUCCESS)
}

async fn resume_all(c: &Common) -> Result<u8, Fail> {
    if c.server.is_some() {
        return Err(Fail(
            BAD_INPUT,
            "`rollout resume-all` is not needed with --server: the server adopts unfinished rollouts itself".into(),
        ));
    }
    let store = open_existing(c).await?;
    let ids = store.unfinished().await?;
    if ids.is_empty() && c.output == Output::Text {
        out!("no unfinished rollouts");
    }
    let mut worst = SUCCESS;
    let mut results = Vec::new();
    for id in ids {
        if let Some(l) = live_driver(&*store, id).await? {
            if c.output == Output::Text {
                out!(
                    "rollout {id}: driven by {} (lease expires in {}s); left alone",
                    l.owner,
                    l.expires_in.as_secs()
                );
            }
            results.push(json!({ "id": id.0, "skipped": format!("driven by {}", l.owner) }));
            continue;
        }
        if c.output == Output::Text {
            err!("rollout {id}: adopting");
        }
        let code = match drive(c, store.clone(), id, false, None).await {
            Ok(code) => code,
            Err(Fail(code, msg)) => {
                err!("rollgate rollout resume-all: rollout {id}: {msg}");
                results.push(json!({ "id": id.0, "error": msg }));
                code
            }
        };
        if let Some((_, code)) = signalled() {
            // Stopped on request: adopt nothing more.
            worst = code;
            break;
        }
        worst = worse(worst, code);
    }
    if signalled().is_none() {
        // Notifications of rollouts that ended while their controller died
        // before delivering: this controller delivers them.
        let config = rollgate::plan::NotifyConfig::default().dispatch_config(&owner(), lease_ttl());
        let dispatcher = crate::notify::dispatcher(store.clone(), config)?;
        crate::notify::alongside(&dispatcher, &*store, None, async {}).await;
        crate::notify::report_pending(&*store, None).await;
    }
    if c.output == Output::Json && !results.is_empty() {
        out!("{}", Value::Array(results));
    }
    Ok(worst)
}

/// Ranks exit codes for a command that handled several rollouts.
fn worse(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        SUCCESS => 0,
        HELD => 1,
        ROLLED_BACK => 2,
        BAD_INPUT => 3,
        _ => 4,
    };
    if rank(b) > rank(a) { b } else { a }
}

async fn rollback(args: RollbackArgs) -> Result<u8, Fail> {
    let c = &args.common;
    check_actor(&args.actor)?;
    local_only(c, "`rollback`")?;
    if let Some(version) = &args.to {
        return rollback_to(c, &args.service, version, &args.actor).await;
    }
    let store = open_existing(c).await?;
    let rollouts = store.list(Some(&args.service)).await?;
    if rollouts.is_empty() {
        return Err(Fail(
            BAD_INPUT,
            format!("service {:?} has no rollouts in {}", args.service, c.state),
        ));
    }
    if let Some(running) = rollouts.iter().find(|r| r.outcome.is_none()) {
        return Err(Fail(
            STORE_BUSY,
            format!(
                "rollout {} of {} is unfinished; abort it (`rollgate rollout abort {}`) instead",
                running.id, args.service, running.id
            ),
        ));
    }
    let Some(last) = rollouts
        .iter()
        .find(|r| r.outcome == Some(Outcome::Succeeded))
    else {
        return Err(Fail(
            BAD_INPUT,
            format!(
                "service {:?} has no successful rollout to roll back",
                args.service
            ),
        ));
    };
    let req = store.request(last.id).await?;
    // Rolling back a rollback would put the bad artifact back: a repeated
    // `rollgate rollback` is a no-op instead (going forward is `rollout run`).
    if let Some(undone) = req.spec.as_ref().and_then(|s| s["rollback_of"].as_u64()) {
        if c.output == Output::Json {
            out!(
                "{}",
                json!({ "service": args.service, "nothing_to_do": true, "rolled_back_by": last.id.0, "undone": undone })
            );
        } else {
            err!(
                "{} already runs what it ran before rollout {undone} (rollout {} rolled it back); nothing to do. To go forward again, run the plan.",
                args.service,
                last.id
            );
        }
        return Ok(SUCCESS);
    }
    let log = store.events(last.id, 0).await?;
    let done = Rollout::replay(last.id, req.clone(), &log)?;
    // Each touched target goes back to what it ran before; one rollback
    // rollout carries one artifact, so mixed fleets are refused, not guessed.
    let mut back_to: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut previous = None;
    let mut unknown = Vec::new();
    for (t, p) in &done.previous {
        match p {
            Some(a) if a.digest != req.artifact.digest => {
                back_to
                    .entry(a.to_string())
                    .or_default()
                    .push(t.to_string());
                previous = Some(a.clone());
            }
            Some(_) => {} // ran this artifact already before the rollout: stays
            None => unknown.push(t.to_string()),
        }
    }
    if back_to.len() > 1 {
        let detail = back_to
            .iter()
            .map(|(a, ts)| format!("{a}: {}", ts.join(",")))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Fail(
            BAD_INPUT,
            format!(
                "targets of rollout {} ran different artifacts before it ({detail}); roll back with a plan per artifact",
                last.id
            ),
        ));
    }
    let Some(previous) = previous else {
        return Err(Fail(
            BAD_INPUT,
            format!(
                "before rollout {} of {} its targets ran nothing rollgate could return them to ({}); \
                 to go to a version the service ran, use `rollgate rollback --service {} --to VERSION`",
                last.id,
                args.service,
                if unknown.is_empty() {
                    "they already ran its artifact".to_string()
                } else {
                    format!("nothing known for {}", unknown.join(", "))
                },
                args.service
            ),
        ));
    };
    if !unknown.is_empty() && c.output == Output::Text {
        err!(
            "note: left alone (nothing known to return to): {}",
            unknown.join(", ")
        );
    }
    let targets: Vec<_> = back_to
        .into_values()
        .flatten()
        .filter_map(|t| t.parse().ok())
        .collect();
    let plan = Strategy::AllAtOnce.compile(&targets, &PhaseDefaults::default().with_gate(false))?;
    let mut back = RolloutRequest::new(&args.service, previous.clone(), plan, &args.actor)
        .with_previous(req.artifact.clone());
    if let Some(mut spec) = req.spec.clone() {
        spec["rollback_of"] = json!(last.id.0);
        back = back.with_spec(spec);
    }
    let exec = executor_for(store.clone(), &back, None, None).await?;
    let created = exec.create(&back).await?;
    if c.output == Output::Text {
        err!(
            "rollout {}: rolling {} back from {} to {} on {} targets (undoing rollout {})",
            created.id,
            args.service,
            req.artifact,
            previous,
            targets.len(),
            last.id
        );
    }
    drive(c, store, created.id, false, Some(exec)).await
}

async fn history(
    c: &Common,
    service: Option<&str>,
    only: Option<RolloutId>,
    since: Option<Duration>,
    limit: usize,
) -> Result<u8, Fail> {
    let store = open_existing(c).await?;
    let mut rows = Vec::new();
    let mut summaries = match only {
        Some(id) => {
            let req = store.request(id).await.map_err(|e| match e {
                Error::NotFound(_) => Fail(BAD_INPUT, format!("rollout {id} not found")),
                other => Fail::from(other),
            })?;
            if service.is_some_and(|s| s != req.service) {
                return Err(Fail(
                    BAD_INPUT,
                    format!(
                        "rollout {id} is not of service {}",
                        service.unwrap_or_default()
                    ),
                ));
            }
            vec![rollgate_deploy::RolloutSummary {
                id,
                service: req.service.clone(),
                artifact: req.artifact.clone(),
                actor: req.actor.clone(),
                created_ms: 0,
                outcome: None,
            }]
        }
        None => {
            store
                .list_where(&filter(service.map(str::to_owned), None, since, limit))
                .await?
        }
    };
    summaries.reverse(); // oldest first
    for s in summaries {
        let mut restoring: BTreeMap<String, String> = BTreeMap::new();
        let request = store.request(s.id).await?;
        let events = store.events(s.id, 0).await?;
        // Who asked for the rollout (or the rollback) comes first; the
        // controller that drove it writes the events after.
        rows.push(json!({
            "rollout": s.id.0,
            "service": s.service,
            "seq": 0,
            "time": events.first().map(|e| rfc3339(e.at_ms)),
            "actor": request.actor,
            "action": "requested",
            "target": null,
            "artifact": s.artifact.version,
            "sbom": s.artifact.sbom,
            "outcome": request.idempotency_key.map(|k| format!("idempotency key {k}")),
        }));
        for e in events {
            let artifact = match &e.event {
                Event::RestoreIntent { target, to } => {
                    restoring.insert(target.to_string(), to.version.clone());
                    to.version.clone()
                }
                Event::TargetRestored { target } | Event::RestoreFailed { target, .. } => {
                    restoring.get(target.as_str()).cloned().unwrap_or_default()
                }
                _ => s.artifact.version.clone(),
            };
            rows.push(json!({
                "rollout": s.id.0,
                "service": s.service,
                "seq": e.seq,
                "time": rfc3339(e.at_ms),
                "actor": e.actor,
                "action": e.event.action(),
                "target": e.event.target().map(|t| t.to_string()),
                "artifact": artifact,
                "sbom": match &e.event {
                    Event::RestoreIntent { to, .. } => to.sbom.clone(),
                    Event::TargetRestored { .. } | Event::RestoreFailed { .. } => None,
                    _ => s.artifact.sbom.clone(),
                },
                "outcome": e.event.outcome_text(),
            }));
        }
    }
    if c.output == Output::Json {
        out!("{}", Value::Array(rows));
        return Ok(SUCCESS);
    }
    // Columns as wide as their widest cell, so they line up.
    const HEAD: [&str; 7] = [
        "ROLLOUT", "SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "ARTIFACT",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r["rollout"].to_string(),
                r["seq"].to_string(),
                r["time"].as_str().unwrap_or_default().to_string(),
                r["actor"].as_str().unwrap_or_default().to_string(),
                r["action"].as_str().unwrap_or_default().to_string(),
                r["target"].as_str().unwrap_or("-").to_string(),
                r["artifact"].as_str().unwrap_or_default().to_string(),
                r["outcome"].as_str().unwrap_or_default().to_string(),
            ]
        })
        .collect();
    let mut width = HEAD.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in width.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cols: [&str; 8]| {
        let mut text = String::new();
        for (i, c) in cols.iter().take(7).enumerate() {
            text.push_str(&format!("{c:<w$}  ", w = width[i]));
        }
        text.push_str(cols[7]);
        text
    };
    out!(
        "{}",
        line([
            HEAD[0], HEAD[1], HEAD[2], HEAD[3], HEAD[4], HEAD[5], HEAD[6], "OUTCOME"
        ])
    );
    for row in &cells {
        out!("{}", line(row.each_ref().map(String::as_str)));
    }
    Ok(SUCCESS)
}

/// Milliseconds since the Unix epoch, now (wall clock: listings only).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn filter(
    service: Option<String>,
    outcome: Option<Option<Outcome>>,
    since: Option<Duration>,
    limit: usize,
) -> ListFilter {
    let mut f = ListFilter::default();
    if let Some(s) = service {
        f = f.with_service(s);
    }
    if let Some(o) = outcome {
        f = f.with_outcome(o);
    }
    if let Some(d) = since {
        f = f.with_since_ms(
            now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        );
    }
    if limit > 0 {
        f = f.with_limit(limit);
    }
    f
}

const STATUSES: &str = "succeeded, rolled_back, aborted, rollback_failed, refused, unfinished, running, paused, held, rolling_back, interrupted";

async fn list(
    c: &Common,
    service: Option<String>,
    status: Option<String>,
    since: Option<Duration>,
    limit: usize,
) -> Result<u8, Fail> {
    check_status(status.as_deref())?;
    if let Some(r) = remote(c)? {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(s) = service {
            query.push(("service", s));
        }
        if let Some(s) = status {
            query.push(("status", s));
        }
        if let Some(d) = since {
            query.push(("since", format!("{}ms", d.as_millis())));
        }
        return print_list(c, r.rows(&query).await?);
    }
    let store = open_existing(c).await?;
    let rows = list_rows(&*store, service, status, since, limit).await?;
    print_list(c, rows)
}

/// Refuses an unknown `--status` (before any store is opened).
pub(crate) fn check_status(status: Option<&str>) -> Result<(), Fail> {
    list_status(status).map(|_| ())
}

type StatusFilter<'a> = (Option<Option<Outcome>>, Option<&'a str>);

fn list_status(status: Option<&str>) -> Result<StatusFilter<'_>, Fail> {
    Ok(match status {
        None => (None, None),
        Some("succeeded") => (Some(Some(Outcome::Succeeded)), None),
        Some("rolled_back") => (Some(Some(Outcome::RolledBack)), None),
        Some("aborted") => (Some(Some(Outcome::Aborted)), None),
        Some("rollback_failed") => (Some(Some(Outcome::RollbackFailed)), None),
        Some("refused") => (Some(Some(Outcome::Refused)), None),
        Some("unfinished") => (Some(None), None),
        Some(s @ ("running" | "paused" | "held" | "rolling_back" | "interrupted")) => {
            (Some(None), Some(s))
        }
        Some(other) => {
            return Err(Fail(
                BAD_INPUT,
                format!("unknown status {other:?} (known: {STATUSES})"),
            ));
        }
    })
}

/// The rows of `rollout list` (and `GET /v1/rollouts`), newest first.
pub(crate) async fn list_rows(
    store: &dyn StateStore,
    service: Option<String>,
    status: Option<String>,
    since: Option<Duration>,
    limit: usize,
) -> Result<Vec<Value>, Fail> {
    let (outcome, live) = list_status(status.as_deref())?;
    // A live status needs each unfinished rollout replayed: list them all, then limit.
    let f = filter(
        service,
        outcome,
        since,
        if live.is_some() { 0 } else { limit },
    );
    let mut rows = Vec::new();
    for s in store.list_where(&f).await? {
        let status = match s.outcome {
            Some(o) => o.as_str().to_string(),
            None => {
                let req = store.request(s.id).await?;
                let log = store.events(s.id, 0).await?;
                status_name(&Rollout::replay(s.id, req, &log)?).to_string()
            }
        };
        if live.is_some_and(|want| want != status) {
            continue;
        }
        rows.push(json!({
            "id": s.id.0,
            "service": s.service,
            "version": s.artifact.version,
            "digest": s.artifact.digest,
            "sbom": s.artifact.sbom,
            "status": status,
            "created": rfc3339(s.created_ms),
            "created_ms": s.created_ms,
            "outcome": s.outcome.map(Outcome::as_str),
            "actor": s.actor,
        }));
        if limit > 0 && rows.len() >= limit {
            break;
        }
    }
    Ok(rows)
}

/// Prints `rollout list` rows.
fn print_list(c: &Common, rows: Vec<Value>) -> Result<u8, Fail> {
    if c.output == Output::Json {
        out!("{}", Value::Array(rows));
        return Ok(SUCCESS);
    }
    let head = ["ID", "SERVICE", "VERSION", "STATUS", "CREATED", "ACTOR"];
    let keys = ["id", "service", "version", "status", "created", "actor"];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            keys.iter()
                .map(|k| match &r[*k] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cols: Vec<&str>| {
        let last = cols.len() - 1;
        cols.iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    c.to_string()
                } else {
                    format!("{c:<w$}", w = width[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    out!("{}", line(head.to_vec()));
    for row in &cells {
        out!("{}", line(row.iter().map(String::as_str).collect()));
    }
    Ok(SUCCESS)
}

/// `rollout status ID --watch`: follows the rollout until it ends (or,
/// with `until_hold`, until it holds for a person).
async fn watch(c: &Common, id: RolloutId, until_hold: bool) -> Result<u8, Fail> {
    use std::sync::atomic::Ordering;
    let store = open_existing(c).await?;
    let req = store.request(id).await?;
    let tty = c.output == Output::Text && std::io::stdout().is_terminal();
    let mut r = Rollout::new(id, req);
    let mut last_line = String::new();
    let mut first = true;
    loop {
        for rec in store.events(id, r.last_seq).await? {
            r.apply(&rec)?;
        }
        let lease = live_driver(&*store, id).await?;
        let driver = lease.as_ref().map(|l| l.owner.as_str());
        let phases = r.request.plan.phases.len();
        let line = format!(
            "rollout {id}: {} phase {}/{phases}, {}/{} on {}{}",
            status_name(&r),
            (r.phase + 1).min(phases),
            r.on_artifact().len(),
            r.targets.len(),
            r.request.artifact.version,
            driver
                .map(|d| format!(", driven by {d}"))
                .unwrap_or_else(|| ", no controller".into()),
        );
        if line != last_line || first {
            if tty {
                out!("\x1b[H\x1b[2J{}", rfc3339(now_ms()));
                print_status(c, &r, false, driver);
            } else if c.output == Output::Json {
                out!("{}", status_json(&r, false, driver));
            } else {
                out!("{} {line}", rfc3339(now_ms()));
            }
            last_line = line;
            first = false;
        }
        let held = until_hold && matches!(r.status, Status::Held(_));
        if r.is_finished() || held || STDOUT_GONE.load(Ordering::Relaxed) {
            return Ok(if r.is_finished() || held {
                exit_code(&r)
            } else {
                SUCCESS
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every artifact `service` is known to have run or declared, newest first.
async fn service_artifacts(store: &dyn StateStore, service: &str) -> Result<Vec<Artifact>, Fail> {
    let mut seen: Vec<Artifact> = Vec::new();
    for s in store.list(Some(service)).await? {
        let req = store.request(s.id).await?;
        for a in std::iter::once(req.artifact)
            .chain(req.previous)
            .chain(req.known)
        {
            if !seen.iter().any(|x| x.digest == a.digest) {
                seen.push(a);
            }
        }
    }
    Ok(seen)
}

/// `rollgate rollback --service S --to VERSION`.
async fn rollback_to(c: &Common, service: &str, version: &str, actor: &str) -> Result<u8, Fail> {
    let store = open_existing(c).await?;
    let rollouts = store.list(Some(service)).await?;
    let Some(last) = rollouts.first() else {
        return Err(Fail(
            BAD_INPUT,
            format!("service {service:?} has no rollouts in {}", c.state),
        ));
    };
    if let Some(running) = rollouts.iter().find(|r| r.outcome.is_none()) {
        return Err(Fail(
            STORE_BUSY,
            format!(
                "rollout {} of {service} is unfinished; abort it (`rollgate rollout abort {}`) instead",
                running.id, running.id
            ),
        ));
    }
    let known = service_artifacts(&*store, service).await?;
    let Some(to) = known.iter().find(|a| a.version == version).cloned() else {
        let versions: Vec<&str> = known.iter().map(|a| a.version.as_str()).collect();
        return Err(Fail(
            BAD_INPUT,
            format!(
                "{service} never ran version {version:?} (known: {})",
                versions.join(", ")
            ),
        ));
    };
    let last_req = store.request(last.id).await?;
    let targets: Vec<_> = last_req.plan.targets().cloned().collect();
    let plan = Strategy::AllAtOnce.compile(&targets, &PhaseDefaults::default().with_gate(false))?;
    let mut req = RolloutRequest::new(service, to.clone(), plan, actor)
        .with_known(known.into_iter().filter(|a| a.digest != to.digest));
    if let Some(mut spec) = last_req.spec.clone() {
        if let Some(m) = spec.as_object_mut() {
            m.remove("rollback_of");
            m.remove("retry_of");
        }
        spec["rollback_to"] = json!(version);
        req = req.with_spec(spec);
    }
    let exec = executor_for(store.clone(), &req, None, None).await?;
    let created = exec.create(&req).await?;
    if c.output == Output::Text {
        err!(
            "rollout {}: taking {service} to {to} on {} targets (those of rollout {})",
            created.id,
            targets.len(),
            last.id
        );
    }
    drive(c, store, created.id, false, Some(exec)).await
}

/// `rollgate rollout retry ID`.
async fn retry(c: &Common, id: RolloutId, actor: &str) -> Result<u8, Fail> {
    check_actor(actor)?;
    local_only(c, "`rollout retry`")?;
    let store = open_existing(c).await?;
    let old = store.request(id).await?;
    let log = store.events(id, 0).await?;
    let done = Rollout::replay(id, old.clone(), &log)?;
    match done.outcome() {
        Some(
            Outcome::Aborted | Outcome::RolledBack | Outcome::RollbackFailed | Outcome::Refused,
        ) => {}
        Some(Outcome::Succeeded) => {
            return Err(Fail(
                BAD_INPUT,
                format!("rollout {id} succeeded; there is nothing to retry"),
            ));
        }
        None => {
            return Err(Fail(
                BAD_INPUT,
                format!(
                    "rollout {id} is not finished ({}); resume it instead: `rollgate rollout resume {id}`",
                    status_name(&done)
                ),
            ));
        }
    }
    let mut req = old.clone();
    req.actor = actor.to_string();
    req.idempotency_key = None;
    if let Some(spec) = req.spec.as_mut() {
        spec["retry_of"] = json!(id.0);
    }
    let exec = executor_for(store.clone(), &req, None, None).await?;
    let (plan, cwd) = plan_from_spec(&req)?;
    refuse_on_precheck(c, &exec, &plan, &cwd, &req).await?;
    let created = exec.create(&req).await?;
    if c.output == Output::Text {
        err!(
            "rollout {}: retrying rollout {id} ({} {} on {} targets) for {actor}",
            created.id,
            req.service,
            req.artifact,
            req.plan.targets().count()
        );
    }
    drive(c, store, created.id, false, Some(exec)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_444_764_123), "2026-11-23T14:39:24.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn exit_code_ranking_prefers_the_worst() {
        assert_eq!(worse(SUCCESS, HELD), HELD);
        assert_eq!(worse(ROLLED_BACK, HELD), ROLLED_BACK);
        assert_eq!(worse(STORE_BUSY, ROLLED_BACK), STORE_BUSY);
    }

    #[test]
    fn passwd_names_the_user_id() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # comment\n\
                      carol:x:1000:1000:Carol:/home/carol:/bin/sh\n\
                      :x:1001:1001::/:/bin/sh\n";
        assert_eq!(passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(passwd, 1000).as_deref(), Some("carol"));
        assert_eq!(passwd_name(passwd, 1001), None, "an empty name is no name");
        assert_eq!(passwd_name(passwd, 7), None);
        assert_eq!(passwd_name("", 0), None);
    }

    #[test]
    fn owners_on_other_hosts_are_never_presumed_dead() {
        assert!(!owner_is_dead("rollgate@some-other-host:1"));
        assert!(!owner_is_dead("not-rollgate"));
        let dead = format!(
            "rollgate@{}:{}:{}",
            hostname(),
            pid_namespace(),
            u32::MAX - 1
        );
        assert!(owner_is_dead(&dead));
        let elsewhere = format!("rollgate@{}:1:{}", hostname(), u32::MAX - 1);
        assert!(
            !owner_is_dead(&elsewhere),
            "another pid namespace is never presumed dead"
        );
        assert!(!owner_is_dead(&owner()));
    }
}
