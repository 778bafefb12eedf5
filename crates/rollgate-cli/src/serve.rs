//! `rollgate serve`: a long-running controller with an HTTP JSON API.
//!
//! Several `serve` processes may share one PostgreSQL database (or one
//! SQLite file on one machine). Each scans the store for unfinished
//! rollouts that no live controller drives (no lease, an expired lease, or
//! a lease of a dead process on this host) and drives them with the same
//! executor `rollout run` and `rollout resume` use; the store's leases and
//! fences keep two controllers from acting on one rollout at once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Args;
use rollgate::plan::Plan;
use rollgate_deploy::{Action, Error, Event, Executor, Rollout, RolloutId, Writer};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::sync::{Notify, mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::rollout::{self, Fail, StateLoc, Store};

/// The largest request body the API reads.
pub const MAX_BODY: usize = 1 << 20;

/// Exit code: bad arguments or configuration (no token, bad address).
const BAD_INPUT: u8 = 2;
/// Exit code: the state store could not be opened.
const STORE_BUSY: u8 = 4;

const EXIT_CODES: &str = "Exit codes: 0 stopped by SIGINT/SIGTERM after every rollout it drove \
reached a safe point, 2 bad input (no API token, an address that cannot be bound), 4 state \
store unusable.";

/// Run the controller: an HTTP JSON API, and every unfinished rollout no
/// live controller drives, driven here.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct ServeArgs {
    /// The state: a SQLite file (created owner-only) or a
    /// `postgres://user:password@host:port/db` URL that several `serve`
    /// processes share. The password is never printed or logged.
    #[arg(
        long,
        value_name = "FILE|URL",
        env = "ROLLGATE_STATE",
        hide_env_values = true,
        value_parser = StateLoc::parse
    )]
    state: StateLoc,
    /// The address the API listens on (port 0: any free port; the chosen
    /// address is printed on standard error).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8480")]
    listen: SocketAddr,
    /// A file holding the bearer token mutations need (surrounding
    /// whitespace ignored). Without it, `$ROLLGATE_TOKEN`. One of the two
    /// is required: the token lets its holder run the plan's commands on
    /// this machine.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// How long a controller's lease on a rollout lasts without renewal;
    /// another `serve` adopts a rollout this long after its controller
    /// stops renewing (a crash, a freeze, a network split).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    lease_ttl: Duration,
    /// How often the store is scanned for rollouts to adopt.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    scan_interval: Duration,
    /// Most rollouts one scan reads in full (their event logs, to adopt
    /// them or see that they wait for a person); the rest are read by the
    /// next scan, which follows at once. A scan reads only rollouts whose
    /// lease is free or expired, and skips a held rollout whose log has not
    /// grown since it last looked.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    scan_batch: u32,
    /// The directory plans submitted over the API run their commands in
    /// (default: the working directory).
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// How long to wait for a SQLite file locked by another process.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    busy_timeout: Duration,
    #[command(flatten)]
    telemetry: crate::obs::TelemetryFlags,
    /// A TOML file of `[[notify]]` destinations (and `[notify_retry]`), as a
    /// plan writes them: every rollout submitted here notifies them too,
    /// after the plan's own. This server delivers the outbox of every
    /// rollout in the store, retrying as `[notify_retry]` says.
    #[arg(long, value_name = "FILE")]
    notify: Option<PathBuf>,
    /// Worker threads of the async runtime that serves the API and drives
    /// the rollouts (default: one per CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    workers: Option<u16>,
}

struct App {
    store: Store,
    token: [u8; 32],
    owner: String,
    lease_ttl: Duration,
    workdir: PathBuf,
    driving: Mutex<BTreeSet<RolloutId>>,
    /// Destinations every submitted rollout notifies (`--notify`).
    notify: Vec<rollgate_deploy::Destination>,
    wake: Notify,
    /// Rollouts created here, with the executor their submission built and
    /// validated: the scan loop drives them at once, without building it
    /// again or waiting for a scan.
    handoff: mpsc::UnboundedSender<(RolloutId, Executor)>,
    metrics: rollgate_telemetry::MetricsRegistry,
}

/// Runs `rollgate serve`.
pub fn run(args: ServeArgs) -> ExitCode {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        rt.worker_threads(usize::from(n));
    }
    let result = rt
        .enable_all()
        .build()
        .map_err(|e| Fail(STORE_BUSY, format!("cannot start the async runtime: {e}")))
        .and_then(|rt| rt.block_on(serve(args)));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Fail(code, msg)) => {
            crate::obs::fail(&format!("rollgate serve: {msg}"), code);
            ExitCode::from(code)
        }
    }
}

/// The API token: from `--token-file`, else `$ROLLGATE_TOKEN`. Never printed.
fn read_token(file: Option<&PathBuf>) -> Result<String, Fail> {
    let token = match file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| {
            Fail(
                BAD_INPUT,
                format!("cannot read --token-file {}: {e}", path.display()),
            )
        })?,
        None => std::env::var("ROLLGATE_TOKEN").map_err(|_| {
            Fail(
                BAD_INPUT,
                "no API token: pass --token-file FILE or set ROLLGATE_TOKEN".into(),
            )
        })?,
    };
    let token = token.trim().to_owned();
    if token.len() < 16 {
        return Err(Fail(
            BAD_INPUT,
            "the API token must be at least 16 characters (it is not shown)".into(),
        ));
    }
    Ok(token)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equal digests, compared without an early exit: the time taken does not
/// depend on where a guessed token first differs.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `--notify` file, or the defaults.
fn notify_config(path: Option<&PathBuf>) -> Result<rollgate::plan::NotifyConfig, Fail> {
    let Some(path) = path else {
        return Ok(rollgate::plan::NotifyConfig::default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        Fail(
            BAD_INPUT,
            format!("--notify {}: cannot read: {e}", path.display()),
        )
    })?;
    rollgate::plan::NotifyConfig::parse(&text, &path.display().to_string())
        .map_err(|e| Fail(BAD_INPUT, format!("--notify {e}")))
}

async fn serve(args: ServeArgs) -> Result<u8, Fail> {
    let token = read_token(args.token_file.as_ref())?;
    let notify = notify_config(args.notify.as_ref())?;
    let workdir = match args.workdir {
        Some(d) => d,
        None => std::env::current_dir()
            .map_err(|e| Fail(BAD_INPUT, format!("cannot read the working directory: {e}")))?,
    };
    // A server logs its work (adoptions, lost leases) from `info` up.
    args.telemetry
        .install_with_text_filter("info")
        .map_err(|e| Fail(BAD_INPUT, e))?;
    let metrics = crate::obs::metrics_registry()
        .ok_or_else(|| Fail(BAD_INPUT, "telemetry is not installed".into()))?;
    let store = rollout::open_store(&args.state, args.busy_timeout).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Fail(BAD_INPUT, format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Fail(BAD_INPUT, format!("cannot listen on {}: {e}", args.listen)))?;
    let (handoff, handed) = mpsc::unbounded_channel();
    let app = Arc::new(App {
        store,
        token: digest(token.as_bytes()),
        owner: rollout::owner(),
        lease_ttl: args.lease_ttl,
        workdir,
        driving: Mutex::new(BTreeSet::new()),
        notify: notify.destinations.clone(),
        wake: Notify::new(),
        handoff,
        metrics,
    });
    drop(token);
    crate::rollout::write_err(format_args!(
        "rollgate serve: listening on http://{addr} (state {}, controller {})",
        args.state, app.owner
    ));
    info!(listen = %addr, state = %args.state, owner = %app.owner, "serving");

    // Series at zero from the start, so dashboards see them before the first.
    metrics::counter!("rollgate_serve_adoptions_total").increment(0);
    metrics::counter!("rollgate_serve_lost_leases_total").increment(0);
    metrics::counter!("rollgate_serve_scan_reads_total").increment(0);
    let (stop_tx, stop_rx) = watch::channel(None::<&'static str>);
    let scanner = tokio::spawn(adopt_loop(
        app.clone(),
        args.scan_interval,
        args.scan_batch as usize,
        handed,
        stop_rx.clone(),
    ));
    // The outbox of every rollout in the store; several servers share it
    // through claims.
    let dispatcher = crate::notify::dispatcher(
        app.store.clone(),
        notify.dispatch_config(&app.owner, app.lease_ttl),
    )?;
    let mut dispatch_stop = stop_rx.clone();
    let notifications = tokio::spawn(async move {
        dispatcher
            .run(async move {
                let _ = dispatch_stop.wait_for(Option::is_some).await;
            })
            .await;
    });
    let router = routes(app.clone());
    let mut shutdown = stop_rx.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(Option::is_some).await;
    });
    let signals = async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return std::future::pending().await;
        };
        let name = tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        crate::obs::stop_requested(name);
        let _ = stop_tx.send(Some(name));
        name
    };
    let (served, name) = tokio::join!(server, signals);
    if let Err(e) = served {
        error!(error = %e, "server failed");
    }
    info!(
        signal = name,
        "stopping: every rollout driven here stops at a safe point"
    );
    let _ = scanner.await;
    let _ = notifications.await;
    Ok(rollout::SUCCESS)
}

/// Scans for rollouts to adopt until asked to stop, and drives the
/// rollouts submitted here as they are handed over; then waits for the
/// rollouts driven here to reach a safe point.
async fn adopt_loop(
    app: Arc<App>,
    every: Duration,
    batch: usize,
    mut handed: mpsc::UnboundedReceiver<(RolloutId, Executor)>,
    mut stop: watch::Receiver<Option<&'static str>>,
) {
    let mut drivers = tokio::task::JoinSet::new();
    let mut next_scan = tokio::time::Instant::now();
    let mut state = ScanState::default();
    loop {
        if tokio::time::Instant::now() >= next_scan {
            let more = match scan(&app, &mut drivers, &stop, &mut state, batch).await {
                Ok(more) => more,
                Err(e) => {
                    warn!(error = %rollgate_deploy::error_chain(&e), "scan failed");
                    false
                }
            };
            next_scan = tokio::time::Instant::now() + if more { Duration::ZERO } else { every };
        }
        while drivers.try_join_next().is_some() {}
        let handed_over = tokio::select! {
            () = tokio::time::sleep_until(next_scan) => None,
            () = app.wake.notified() => {
                next_scan = tokio::time::Instant::now();
                None
            }
            Some(got) = handed.recv() => Some(got),
            _ = stop.wait_for(Option::is_some) => break,
        };
        if let Some((id, exec)) = handed_over {
            start_driver(&app, &mut drivers, &stop, id, Some(exec));
        }
    }
    // Submissions not handed over yet are left to the next controller on
    // the store, as the rollouts of a stopped server are.
    handed.close();
    while drivers.join_next().await.is_some() {}
}

/// Drives rollout `id` in `drivers` (with `exec` when the submission built
/// it, else with one built from its recorded plan); `id` must already be
/// in [`App::driving`].
fn start_driver(
    app: &Arc<App>,
    drivers: &mut tokio::task::JoinSet<()>,
    stop: &watch::Receiver<Option<&'static str>>,
    id: RolloutId,
    exec: Option<Executor>,
) {
    let app = app.clone();
    let mut stop = stop.clone();
    drivers.spawn(async move {
        let stop = async move {
            let got = stop.wait_for(Option::is_some).await.ok().and_then(|s| *s);
            match got {
                Some(s) => s.to_string(),
                None => std::future::pending().await,
            }
        };
        drive(&app, id, exec, stop).await;
        driving(&app).remove(&id);
        // What it left (a hold, a lost lease) is looked at again at once.
        app.wake.notify_one();
    });
}

fn driving(app: &App) -> std::sync::MutexGuard<'_, BTreeSet<RolloutId>> {
    app.driving.lock().unwrap_or_else(|e| e.into_inner())
}

/// What scans remember between runs.
#[derive(Default)]
struct ScanState {
    /// Where the last scan that hit its batch limit stopped: the next one
    /// goes on after it, so every candidate is read in turn.
    after: Option<RolloutId>,
    /// Rollouts found waiting for a person (or finished), with the last
    /// sequence number they had then: skipped until their log grows.
    waiting: BTreeMap<RolloutId, u64>,
}

/// One scan: reads every unfinished rollout's lease in one store call,
/// then reads in full at most `batch` of those no live controller holds,
/// and adopts the ones with work to do. True when candidates were left for
/// the next scan.
async fn scan(
    app: &Arc<App>,
    drivers: &mut tokio::task::JoinSet<()>,
    stop: &watch::Receiver<Option<&'static str>>,
    state: &mut ScanState,
    batch: usize,
) -> Result<bool, Error> {
    let all = app.store.unfinished_leases().await?;
    let seen: BTreeSet<RolloutId> = all.iter().map(|u| u.id).collect();
    state.waiting.retain(|id, _| seen.contains(id));
    let candidates: Vec<_> = {
        let driving = driving(app);
        all.into_iter()
            .filter(|u| !driving.contains(&u.id))
            .filter(|u| {
                u.lease
                    .as_ref()
                    .is_none_or(|l| l.expires_in.is_zero() || rollout::owner_is_dead(&l.owner))
            })
            .filter(|u| state.waiting.get(&u.id) != Some(&u.last_seq))
            .collect()
    };
    // Oldest first, going on after where the last full scan stopped.
    let from = state
        .after
        .map_or(0, |a| candidates.partition_point(|u| u.id <= a));
    let more = candidates.len() > batch;
    let mut last = None;
    for u in candidates[from..]
        .iter()
        .chain(&candidates[..from])
        .take(batch)
    {
        last = Some(u.id);
        let id = u.id;
        metrics::counter!("rollgate_serve_scan_reads_total").increment(1);
        // A held rollout waits for a person; nothing to drive until one
        // decides. One rollout that cannot be read does not stop the scan.
        let read = async {
            let log = app.store.events(id, 0).await?;
            Ok::<_, Error>((
                Rollout::replay(id, app.store.request(id).await?, &log)?,
                log,
            ))
        };
        let (r, log) = match read.await {
            Ok(got) => got,
            Err(e) => {
                warn!(rollout = %id, error = %rollgate_deploy::error_chain(&e), "cannot read the rollout");
                continue;
            }
        };
        if r.is_finished() || r.decide(&BTreeSet::new()) == [Action::Stop] {
            state
                .waiting
                .insert(id, log.last().map_or(0, |e| e.seq).max(u.last_seq));
            continue;
        }
        state.waiting.remove(&id);
        if let Some(l) = &u.lease
            && l.expires_in.is_zero()
        {
            info!(rollout = %id, previous = %l.owner, "adopting: the lease expired");
        }
        // Checked and taken at once: a submission here may have taken it
        // since the check above (see `create`).
        if !driving(app).insert(id) {
            continue;
        }
        metrics::counter!("rollgate_serve_adoptions_total").increment(1);
        start_driver(app, drivers, stop, id, None);
    }
    state.after = if more { last } else { None };
    Ok(more)
}

/// Drives rollout `id` with the executor `rollout run` uses: `built` (by
/// the submission that created it here), or one built from its recorded plan.
async fn drive(
    app: &App,
    id: RolloutId,
    built: Option<Executor>,
    stop: impl Future<Output = String> + Send,
) {
    let result = async {
        let exec = match built {
            Some(exec) => exec,
            None => {
                if let Some(l) = app.store.lease_info(id).await?
                    && rollout::owner_is_dead(&l.owner)
                {
                    app.store.break_lease(id, &l.owner).await?;
                }
                let req = app.store.request(id).await?;
                rollout::executor_for(app.store.clone(), &req, None, Some(app.lease_ttl))
                    .await
                    .map_err(|Fail(_, reason)| Error::Invalid {
                        what: "plan".into(),
                        reason,
                    })?
            }
        };
        exec.run_until(id, stop).await
    }
    .await;
    match result {
        Ok(report) => info!(
            rollout = %id,
            outcome = report.outcome.map(|o| o.as_str()),
            held = report.is_held(),
            interrupted = report.interrupted.as_deref(),
            "drive ended"
        ),
        Err(Error::LeaseHeld { owner, .. }) => {
            debug!(rollout = %id, %owner, "another controller took it first");
        }
        Err(e @ (Error::StaleFence { .. } | Error::LeaseLapsed { .. })) => {
            metrics::counter!("rollgate_serve_lost_leases_total").increment(1);
            warn!(rollout = %id, error = %e, "lost the lease; the new controller drives it");
        }
        Err(e) => {
            error!(rollout = %id, error = %rollgate_deploy::error_chain(&e), "drive failed")
        }
    }
}

// ---------------------------------------------------------------- the API

/// An API error: status, a stable kind, a message naming the problem.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let ApiError(status, kind, message) = self;
        let mut res = (
            status,
            axum::Json(json!({ "error": kind, "message": message })),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = rollgate_deploy::error_chain(&e);
        match &e {
            Error::NotFound(_) => ApiError(StatusCode::NOT_FOUND, "not_found", message),
            Error::PlanFile { .. } => {
                ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid_plan", message)
            }
            Error::Finished { .. } => ApiError(StatusCode::CONFLICT, "finished", message),
            Error::LeaseHeld { .. } | Error::StaleFence { .. } | Error::LeaseLapsed { .. } => {
                ApiError(StatusCode::CONFLICT, "conflict", message)
            }
            Error::StoreBusy(..) | Error::Store(..) => ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                message,
            ),
            _ if e.is_input() || matches!(e, Error::Unrestorable { .. }) => {
                ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

impl From<Fail> for ApiError {
    fn from(Fail(code, message): Fail) -> Self {
        match code {
            rollout::BAD_INPUT => ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message),
            rollout::STORE_BUSY => ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                message,
            ),
            _ => ApiError(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

type ApiResult = Result<Response, ApiError>;

fn routes(app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/rollouts", post(create).get(list))
        .route("/v1/rollouts/{id}", get(show))
        .route("/v1/rollouts/{id}/events", get(events))
        .route("/v1/rollouts/{id}/{action}", post(act))
        .route("/metrics", get(metrics_text))
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such endpoint".into(),
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint".into(),
            )
        })
        .layer(axum::middleware::from_fn(count_requests))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

async fn count_requests(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().to_string();
    let started = tokio::time::Instant::now();
    let res = next.run(req).await;
    metrics::histogram!("rollgate_api_request_duration_seconds", "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    let class = match res.status().as_u16() {
        200..=299 => "2xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    };
    metrics::counter!("rollgate_api_requests_total", "method" => method, "status" => class)
        .increment(1);
    res
}

/// Checks the bearer token; its value is never logged or echoed.
fn authorize(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if same(&digest(t.trim().as_bytes()), &app.token) => Ok(()),
        Some(_) => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not the one this server was given".into(),
        )),
        None => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "mutations need an `Authorization: Bearer TOKEN` header".into(),
        )),
    }
}

fn parse_id(raw: &str) -> Result<RolloutId, ApiError> {
    raw.parse::<RolloutId>()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_id", e.to_string()))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("query string: {}", e.body_text()),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateQuery {
    actor: Option<String>,
    #[serde(default)]
    no_rollback_ok: bool,
}

/// Which format a request body is in, from its `Content-Type`.
fn body_format(headers: &HeaderMap) -> Result<&'static str, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = ct.split(';').next().unwrap_or_default().trim();
    match media.to_ascii_lowercase().as_str() {
        "application/toml" | "text/toml" => Ok("toml"),
        "application/json" => Ok("json"),
        "" => Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "no Content-Type: send the plan as application/toml or application/json".into(),
        )),
        other => Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type {other:?}: send the plan as application/toml or application/json"
            ),
        )),
    }
}

fn body_text(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(
                status,
                "body_too_large",
                format!("the body is over the {MAX_BODY}-byte limit"),
            )
        } else {
            ApiError(status, "bad_body", e.body_text())
        }
    })?;
    String::from_utf8(body.to_vec()).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!(
                "the body is not UTF-8 (byte {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// A JSON plan as TOML text, so one parser (with its checks and its
/// unknown-field errors) reads both.
fn json_to_toml(text: &str) -> Result<String, ApiError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "malformed_plan",
            format!("plan (JSON): {e}"),
        )
    })?;
    fn convert(v: &Value, at: &str) -> Result<toml::Value, String> {
        Ok(match v {
            Value::Null => {
                return Err(format!(
                    "{at}: null has no TOML equivalent; leave the field out"
                ));
            }
            Value::Bool(b) => toml::Value::Boolean(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => toml::Value::Integer(i),
                None => toml::Value::Float(n.as_f64().ok_or(format!("{at}: number out of range"))?),
            },
            Value::String(s) => toml::Value::String(s.clone()),
            Value::Array(a) => toml::Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, x)| convert(x, &format!("{at}/{i}")))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(m) => toml::Value::Table(
                m.iter()
                    .map(|(k, x)| Ok((k.clone(), convert(x, &format!("{at}/{k}"))?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }
    let toml::Value::Table(table) = convert(&value, "").map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "malformed_plan",
            format!("plan (JSON) at {e}"),
        )
    })?
    else {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "malformed_plan",
            "plan (JSON): expected an object".into(),
        ));
    };
    toml::to_string(&table).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            "malformed_plan",
            format!("plan (JSON): {e}"),
        )
    })
}

/// `POST /v1/rollouts`: the plan (TOML or JSON) as the body.
async fn create(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<CreateQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    authorize(&app, &headers)?;
    let q = query(q)?;
    let format = body_format(&headers)?;
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v.to_str().ok().map(str::trim).unwrap_or_default();
            if k.is_empty() || k.len() > 200 {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    "bad_idempotency_key",
                    "Idempotency-Key must be 1 to 200 visible ASCII characters".into(),
                ));
            }
            Some(k.to_owned())
        }
    };
    let actor = q.actor.unwrap_or_else(|| "api".into());
    if actor.trim().is_empty() || actor.len() > 200 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "actor must be 1 to 200 characters".into(),
        ));
    }
    let text = body_text(body)?;
    let (text, name) = match format {
        "json" => (json_to_toml(&text)?, "plan (JSON)"),
        _ => (text, "plan"),
    };
    let plan = Plan::parse_in(&text, name, &app.workdir)?;
    let req = plan
        .request(&actor, key)
        .with_no_rollback_ok(q.no_rollback_ok)
        .with_spec(rollout::spec_of(&plan, &app.workdir))
        .with_notify(app.notify.iter().cloned());
    // The whole set-up is validated before anything is recorded; the
    // executor built here drives the rollout.
    let probe = rollout::executor_from(
        app.store.clone(),
        &plan,
        app.workdir.clone(),
        &req,
        None,
        Some(app.lease_ttl),
    )
    .await?;
    // Prechecks run for a new rollout only (a repeated key returns the
    // rollout already made); without prechecks there is nothing to look up.
    let exists = match &req.idempotency_key {
        Some(k) if !plan.prechecks.is_empty() => app.store.find_key(k).await?.is_some(),
        _ => false,
    };
    if !exists && let Some((check, reason)) = plan.run_prechecks(Some(app.workdir.clone())).await? {
        let created = probe.refuse(&req, &check, &reason).await?;
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "refused",
            format!(
                "rollout {}: precheck {check} refused it before anything changed: {reason}",
                created.id
            ),
        ));
    }
    let created = probe.create(&req).await?;
    info!(rollout = %created.id, existed = created.existed, actor = %actor, "rollout submitted");
    if created.existed {
        // Driven already, here or elsewhere, or left to adopt: a scan decides.
        app.wake.notify_one();
    } else if driving(&app).insert(created.id) {
        // Taken: from now on the scan leaves it alone. (A scan that saw
        // it first drives it instead, and this executor is dropped.)
        if app.handoff.send((created.id, probe)).is_err() {
            // Stopping: the next controller on the store adopts it.
            driving(&app).remove(&created.id);
        }
    }
    let mut body = rollout_json(&app, created.id).await?;
    body["existed"] = json!(created.existed);
    let status = if created.existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(body)).into_response())
}

/// A rollout as the API shows it: `rollout status --output json`'s
/// document, its request (without the recorded plan text, which may hold
/// credentials) and its lease.
async fn rollout_json(app: &App, id: RolloutId) -> Result<Value, ApiError> {
    let mut req = app.store.request(id).await?;
    let log = app.store.events(id, 0).await?;
    let r = Rollout::replay(id, req.clone(), &log)?;
    let lease = app.store.lease_info(id).await?;
    let driver = lease
        .as_ref()
        .filter(|l| !l.expires_in.is_zero() && !rollout::owner_is_dead(&l.owner))
        .map(|l| l.owner.as_str());
    let mut body = rollout::status_json(&r, false, driver);
    body["notifications"] =
        rollout::notifications_json(&app.store.notifications(Some(id)).await?, &req);
    req.spec = None;
    // Webhook URLs may carry credentials (user info, Slack's path).
    for d in &mut req.notify {
        d.url = rollgate_deploy::redact_url(&d.url);
    }
    body["request"] = serde_json::to_value(&req).unwrap_or(Value::Null);
    body["lease"] = serde_json::to_value(&lease).unwrap_or(Value::Null);
    body["last_seq"] = json!(r.last_seq);
    Ok(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    service: Option<String>,
    status: Option<String>,
    since: Option<String>,
    since_ms: Option<i64>,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    50
}

/// `GET /v1/rollouts?service=&status=&since=&since_ms=&limit=`.
async fn list(
    State(app): State<Arc<App>>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    rollout::check_status(q.status.as_deref())
        .map_err(|Fail(_, m)| ApiError(StatusCode::BAD_REQUEST, "bad_query", m))?;
    let since = q
        .since
        .as_deref()
        .map(humantime::parse_duration)
        .transpose()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, "bad_query", format!("since: {e}")))?
        .or_else(|| {
            q.since_ms
                .map(|ms| Duration::from_millis(u64::try_from(rollout::now_ms() - ms).unwrap_or(0)))
        });
    let rows = rollout::list_rows(&*app.store, q.service, q.status, since, q.limit).await?;
    Ok(axum::Json(Value::Array(rows)).into_response())
}

/// `GET /v1/rollouts/{id}`.
async fn show(State(app): State<Arc<App>>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    Ok(axum::Json(rollout_json(&app, id).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
}

/// `GET /v1/rollouts/{id}/events?after=SEQ`: the audit log.
async fn events(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let q = query(q)?;
    let log = app.store.events(id, q.after).await?;
    Ok(axum::Json(log).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActQuery {
    actor: Option<String>,
}

/// `POST /v1/rollouts/{id}/pause|resume|promote|abort`.
async fn act(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    q: Result<Query<ActQuery>, QueryRejection>,
) -> ApiResult {
    let event = match action.as_str() {
        "pause" => Event::PauseRequested,
        "resume" => Event::ResumeRequested,
        "promote" => Event::PromoteRequested,
        "abort" => Event::AbortRequested,
        _ => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no action {action:?} (known: pause, resume, promote, abort)"),
            ));
        }
    };
    authorize(&app, &headers)?;
    let id = parse_id(&id)?;
    let actor = query(q)?.actor.unwrap_or_else(|| "api".into());
    if actor.trim().is_empty() || actor.len() > 200 {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "bad_query",
            "actor must be 1 to 200 characters".into(),
        ));
    }
    let log = app.store.events(id, 0).await?;
    let r = Rollout::replay(id, app.store.request(id).await?, &log)?;
    if let Some(o) = r.outcome() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "finished",
            format!("rollout {id} already finished ({})", o.as_str()),
        ));
    }
    let requested = event.action();
    let seq = app
        .store
        .append(id, Writer::Person(&actor), &[event])
        .await?;
    info!(rollout = %id, action = requested, actor = %actor, seq, "request recorded");
    app.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "id": id.0, "requested": requested, "seq": seq, "actor": actor })),
    )
        .into_response())
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics_text(State(app): State<Arc<App>>) -> Response {
    metrics::gauge!("rollgate_serve_driving").set(driving(&app).len() as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_is_exact() {
        let t = digest(b"0123456789abcdef");
        assert!(same(&t, &digest(b"0123456789abcdef")));
        assert!(!same(&t, &digest(b"0123456789abcdeg")));
        assert!(!same(&t, &digest(b"")));
    }

    #[test]
    fn json_plans_become_toml_and_nulls_are_named() {
        let toml = json_to_toml(r#"{"service": "web", "targets": ["a", "b"], "x": {"n": 1.5}}"#)
            .map_err(|e| e.2)
            .unwrap();
        assert!(toml.contains("service = \"web\""), "{toml}");
        let err = json_to_toml(r#"{"a": {"b": null}}"#).err().unwrap();
        assert_eq!(err.0, StatusCode::BAD_REQUEST);
        assert!(err.2.contains("/a/b"), "{}", err.2);
        assert!(json_to_toml("[1]").is_err());
        assert!(json_to_toml("{").is_err());
    }
}
