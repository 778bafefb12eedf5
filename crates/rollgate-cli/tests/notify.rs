//! Notifications end to end with the real binary and a real HTTP receiver
//! (axum on loopback): signed bodies, a controller killed (SIGKILL) after
//! the event is written but before delivery, `serve --notify`, bad config.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use rollgate_deploy::{NotifyKind, SqliteStore, StateStore, verify_signature};
use support::{Dir, Server, V1, V2, explain, rollgate, rollgate_cmd};

const SECRET: &str = "whsec-planted-Notify-4711";

/// What the receiver got: the event id, kind, signature and raw body.
#[derive(Clone, Debug)]
struct Got {
    id: String,
    kind: String,
    signature: String,
    body: Bytes,
}

/// An HTTP receiver on loopback answering 503 until armed, then 200.
#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    armed: Arc<AtomicBool>,
}

impl Receiver {
    fn start(armed: bool) -> Receiver {
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let armed = Arc::new(AtomicBool::new(armed));
        let (tx, rx) = std::sync::mpsc::channel();
        let (g, a) = (got.clone(), armed.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/hook",
                    axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                        let (g, a) = (g.clone(), a.clone());
                        async move {
                            let h = |n: &str| {
                                headers
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            g.lock().unwrap().push(Got {
                                id: h("x-rollgate-event-id"),
                                kind: h("x-rollgate-event"),
                                signature: h("x-rollgate-signature"),
                                body,
                            });
                            if a.load(Ordering::SeqCst) {
                                StatusCode::OK
                            } else {
                                StatusCode::SERVICE_UNAVAILABLE
                            }
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Receiver {
            url: format!("http://{addr}/hook"),
            got,
            armed,
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, ok: impl Fn(&[Got]) -> bool) {
        let start = Instant::now();
        while !ok(&self.got()) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "receiver never got {what}: {:?}",
                self.got()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Two file targets on v1; deploys wait while `hold` exists.
fn setup(receiver: &Receiver, extra: &str) -> Dir {
    let d = Dir::with_web_targets(2);
    std::fs::write(d.path.join("hook.secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(
        d.path.join("plan.toml"),
        format!(
            r#"service = "web"
artifact = {{ version = "v2", digest = "{V2}" }}
previous = {{ version = "v1", digest = "{V1}" }}
targets = ["web-1", "web-2"]

[deployer]
kind = "command"
deploy = "while [ -e hold ]; do sleep 0.05; done; echo {{version}} > srv/{{target}}/current"
current = "cat srv/{{target}}/current"
ready = "test -s srv/{{target}}/current"

[strategy]
kind = "all-at-once"

[[notify]]
url = "{}"
secret_file = "hook.secret"
{extra}
[notify_retry]
backoff = "50ms"
max_backoff = "100ms"
timeout = "1s"
"#,
            receiver.url
        ),
    )
    .unwrap();
    d
}

/// Where the state is: the directory's SQLite file, or a PostgreSQL URL.
fn state_of(d: &Dir, pg: Option<&str>) -> String {
    pg.map_or_else(
        || d.path.join("state.db").display().to_string(),
        str::to_owned,
    )
}

fn notifications_in(d: &Dir, pg: Option<&str>) -> Vec<rollgate_deploy::Notification> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s: Box<dyn StateStore> = match pg {
            Some(url) => Box::new(rollgate_deploy::PostgresStore::connect(url).await.unwrap()),
            None => Box::new(SqliteStore::open(d.path.join("state.db")).unwrap()),
        };
        s.notifications(None).await.unwrap()
    })
}

fn notifications(d: &Dir) -> Vec<rollgate_deploy::Notification> {
    notifications_in(d, None)
}

fn check_signatures(got: &[Got]) {
    for g in got {
        assert!(
            verify_signature(SECRET.as_bytes(), &g.body, &g.signature),
            "bad signature on {g:?}"
        );
        let doc: serde_json::Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(doc["event_id"], g.id.as_str());
        assert_eq!(doc["event"], g.kind.as_str());
    }
}

#[test]
fn a_killed_controller_s_notification_is_delivered_by_the_next_one_with_the_same_event_id() {
    killed_then_resumed(None);
}

#[test]
fn on_postgres_a_killed_controller_s_notification_is_delivered_by_the_next_one() {
    let Some(server) = support::postgres_url("notify") else {
        return;
    };
    killed_then_resumed(Some(&support::fresh_database(&server, "rg_notify")));
}

/// A controller killed (SIGKILL) after `started` is written but before it
/// is delivered; `resume-all` delivers it with the same event id.
fn killed_then_resumed(pg: Option<&str>) {
    let rx = Receiver::start(false);
    let d = setup(&rx, "");
    let state = state_of(&d, pg);
    std::fs::write(d.path.join("hold"), "").unwrap();
    let mut child = rollgate_cmd(&d, &["rollout", "run", "plan.toml", "--actor", "alice"])
        .env("ROLLGATE_STATE", &state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The `started` event and its outbox row are written; its delivery
    // failed (503) at least once: the controller dies now.
    // A second attempt means the first one's failure is recorded.
    rx.wait_for("two started attempts", |g| {
        g.iter().filter(|g| g.kind == "started").count() >= 2
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = rx.got();
    let started_id = before[0].id.clone();
    assert!(
        before
            .iter()
            .all(|g| g.id == started_id && g.kind == "started")
    );
    let rows = notifications_in(&d, pg);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].kind, NotifyKind::Started);
    assert!(
        rows[0].delivered_ms.is_none() && rows[0].attempts >= 1,
        "{rows:?}"
    );
    assert_eq!(rows[0].event_id(), started_id);

    // A restarted controller adopts the rollout and delivers everything.
    std::fs::remove_file(d.path.join("hold")).unwrap();
    rx.armed.store(true, Ordering::SeqCst);
    let out = rollgate_cmd(&d, &["rollout", "resume-all"])
        .env("ROLLGATE_STATE", &state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let rows = notifications_in(&d, pg);
    let kinds: Vec<NotifyKind> = rows.iter().map(|n| n.kind).collect();
    assert_eq!(
        kinds,
        [
            NotifyKind::Started,
            NotifyKind::PhasePromoted,
            NotifyKind::Finished
        ],
        "a resumed controller does not announce `started` again"
    );
    assert!(
        rows.iter().all(|n| n.delivered_ms.is_some()),
        "{rows:?}\n{}",
        explain(&out)
    );
    let got = rx.got();
    check_signatures(&got);
    let mut per_id: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for g in &got {
        per_id.entry(&g.id).or_default().push(&g.kind);
    }
    assert_eq!(per_id.len(), 3, "{per_id:?}");
    assert!(
        per_id[started_id.as_str()].len() > before.len(),
        "the started event was sent again after the restart, with the id it had"
    );
    let finished = got.iter().find(|g| g.kind == "finished").unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&finished.body).unwrap();
    assert_eq!(doc["outcome"], "succeeded");
    assert_eq!(doc["service"], "web");
    // The secret is in no output and not in the state file.
    assert!(!explain(&out).contains(SECRET));
    if pg.is_none() {
        let file = std::fs::read(d.path.join("state.db")).unwrap();
        assert!(!String::from_utf8_lossy(&file).contains(SECRET));
    }
}

#[test]
fn rollout_run_posts_signed_notifications_and_exits_when_delivered() {
    let rx = Receiver::start(true);
    let d = setup(&rx, "events = [\"finished\"]\n");
    let out = rollgate(&d, &["rollout", "run", "plan.toml", "--actor", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let got = rx.got();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].kind, "finished");
    check_signatures(&got);
    assert!(notifications(&d).iter().all(|n| n.delivered_ms.is_some()));
}

#[test]
fn a_receiver_that_is_down_leaves_rows_for_the_next_controller_and_says_so() {
    let rx = Receiver::start(false);
    let d = setup(&rx, "events = [\"finished\"]\n");
    let start = Instant::now();
    let out = rollgate(&d, &["rollout", "run", "plan.toml", "--actor", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "bounded wait at exit"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 notification(s) not delivered yet (last error: POST http://127.0.0.1:")
            && err.contains("HTTP 503 Service Unavailable"),
        "{err}"
    );
    rx.armed.store(true, Ordering::SeqCst);
    let out = rollgate(&d, &["rollout", "resume-all"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        notifications(&d).iter().all(|n| n.delivered_ms.is_some()),
        "{}",
        explain(&out)
    );
}

#[test]
fn bad_notify_config_exits_2_naming_file_line_and_column() {
    let rx = Receiver::start(true);
    let d = setup(&rx, "events = [\"rolled_back\", \"exploded\"]\n");
    let out = rollgate(&d, &["rollout", "run", "plan.toml", "--actor", "alice"]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plan.toml:18:26: unknown notify event \"exploded\"; valid events: started, phase_promoted, held, rolled_back, rollback_failed, finished"),
        "{err}"
    );
    assert!(rx.got().is_empty());
    // serve --notify with a bad file refuses to start, naming it.
    std::fs::write(
        d.path.join("notify.toml"),
        "[[notify]]\nurl = \"https://h/x\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "serve",
            "--state",
            "s.db",
            "--listen",
            "127.0.0.1:0",
            "--notify",
            "notify.toml",
        ])
        .current_dir(&d.path)
        .env("ROLLGATE_TOKEN", "a-token-long-enough-for-serve-1234")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--notify notify.toml:1:1: a json notify destination needs secret_env or secret_file"
        ),
        "{err}"
    );
}

#[test]
fn serve_notifies_its_own_destinations_for_every_submitted_rollout() {
    let rx = Receiver::start(true);
    let d = setup(&rx, "events = [\"started\"]\n");
    std::fs::write(
        d.path.join("notify.toml"),
        format!(
            "[[notify]]\nname = \"ops\"\nurl = \"{}\"\nevents = [\"finished\"]\nsecret_env = \"OPS_HOOK_SECRET\"\n",
            rx.url
        ),
    )
    .unwrap();
    let token = "a-token-long-enough-for-serve-1234";
    let mut srv = Server::start(
        &d.path,
        "serve",
        &["--state", "s.db", "--notify", "notify.toml"],
        &[("ROLLGATE_TOKEN", token), ("OPS_HOOK_SECRET", SECRET)],
    );
    let addr = srv.addr().to_owned();
    let out = rollgate_cmd(
        &d,
        &[
            "rollout",
            "run",
            "plan.toml",
            "--actor",
            "alice",
            "--server",
            &format!("http://{addr}"),
        ],
    )
    .env("ROLLGATE_TOKEN", token)
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    rx.wait_for("started and finished", |g| {
        g.iter().any(|g| g.kind == "started") && g.iter().any(|g| g.kind == "finished")
    });
    assert_eq!(srv.stop().code(), Some(0));
    let got = rx.got();
    check_signatures(&got);
    let kinds: Vec<&str> = got.iter().map(|g| g.kind.as_str()).collect();
    assert_eq!(kinds.len(), 2, "plan: started; serve: finished: {kinds:?}");
    let log = srv.output();
    assert!(!log.contains(SECRET) && !log.contains(token), "{log}");
}

/// A `rollgate serve` on `state` with a 2 s lease, listening.
fn serve_with_short_lease(d: &Dir, state: &str, name: &str, token: &str) -> Server {
    Server::start(
        &d.path,
        name,
        &[
            "--state",
            state,
            "--lease-ttl",
            "2s",
            "--scan-interval",
            "100ms",
        ],
        &[("ROLLGATE_TOKEN", token)],
    )
}

#[test]
fn a_killed_serve_s_claimed_notification_is_sent_by_a_survivor_within_the_lease_ttl() {
    killed_serve_survivor_sends(None);
}

#[test]
fn on_postgres_a_killed_serve_s_claimed_notification_is_sent_by_a_survivor_within_the_lease_ttl() {
    let Some(server) = support::postgres_url("notify") else {
        return;
    };
    killed_serve_survivor_sends(Some(&support::fresh_database(&server, "rg_notify")));
}

/// Two `serve` processes with a 2 s lease; the one driving the rollout is
/// killed (SIGKILL) while it holds the claim on a `started` notification
/// it keeps failing to deliver (attempt timeout 10 s). The survivor sends
/// it, with the same event id, about a lease TTL later: the claim ends with
/// the lease, not after the attempt timeout.
fn killed_serve_survivor_sends(pg: Option<&str>) {
    let rx = Receiver::start(false);
    let d = setup(&rx, "");
    let plan = std::fs::read_to_string(d.path.join("plan.toml")).unwrap();
    std::fs::write(
        d.path.join("plan.toml"),
        plan.replace("timeout = \"1s\"", "timeout = \"10s\""),
    )
    .unwrap();
    std::fs::write(d.path.join("hold"), "").unwrap();
    let state = state_of(&d, pg);
    let token = "a-token-long-enough-for-serve-5678";
    let mut a = serve_with_short_lease(&d, &state, "a", token);
    let addr = a.addr().to_owned();
    let mut follow = rollgate_cmd(
        &d,
        &[
            "rollout",
            "run",
            "plan.toml",
            "--server",
            &format!("http://{addr}"),
        ],
    )
    .env("ROLLGATE_TOKEN", token)
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    rx.wait_for("two started attempts", |g| {
        g.iter().filter(|g| g.kind == "started").count() >= 2
    });
    let mut b = serve_with_short_lease(&d, &state, "b", token);
    a.kill(); // SIGKILL, holding the claim
    let killed = Instant::now();
    let before = rx.got().len();
    let started_id = rx.got()[0].id.clone();
    rx.armed.store(true, Ordering::SeqCst);
    rx.wait_for("started, sent again by the survivor", |g| {
        g.len() > before && g[before..].iter().any(|g| g.kind == "started")
    });
    let took = killed.elapsed();
    eprintln!(
        "notification taken over {} ms after SIGKILL",
        took.as_millis()
    );
    let again = rx.got()[before..]
        .iter()
        .find(|g| g.kind == "started")
        .cloned()
        .unwrap();
    assert_eq!(again.id, started_id, "the same event id");
    // Lease TTL 2 s + the survivor's 1 s poll + slack for a loaded machine;
    // a claim held past the attempt timeout (10 s) would take 21 s.
    assert!(
        took < Duration::from_secs(8),
        "the survivor sent it {took:?} after the kill"
    );
    // The survivor adopts the rollout too and finishes it.
    std::fs::remove_file(d.path.join("hold")).unwrap();
    rx.wait_for("finished", |g| g.iter().any(|g| g.kind == "finished"));
    // The store says so once the survivor has recorded the deliveries.
    let start = Instant::now();
    loop {
        let rows = notifications_in(&d, pg);
        if rows.len() == 3 && rows.iter().all(|n| n.delivered_ms.is_some()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.stop().code(), Some(0));
    let _ = follow.kill();
    let _ = follow.wait();
    check_signatures(&rx.got());
}

#[test]
fn status_shows_each_notification_failing_pending_or_delivered_without_credentials() {
    const PASSWORD: &str = "hook-pw-Planted-991";
    let rx = Receiver::start(false);
    let d = setup(&rx, "");
    let plan = std::fs::read_to_string(d.path.join("plan.toml")).unwrap();
    std::fs::write(
        d.path.join("plan.toml"),
        plan.replace(
            "url = \"http://",
            &format!("url = \"http://hookuser:{PASSWORD}@"),
        ),
    )
    .unwrap();
    let token = "a-token-long-enough-for-serve-9012";
    let state = state_of(&d, None);
    let mut srv = serve_with_short_lease(&d, &state, "srv", token);
    let addr = srv.addr().to_owned();
    let server = format!("http://{addr}");
    let out = rollgate_cmd(&d, &["rollout", "run", "plan.toml", "--server", &server])
        .env("ROLLGATE_TOKEN", token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    rx.wait_for("two started attempts", |g| {
        g.iter().filter(|g| g.kind == "started").count() >= 2
    });
    let status = |args: &[&str]| {
        let out = rollgate_cmd(&d, &[&["rollout", "status", "1"], args].concat())
            .env_remove("ROLLGATE_STATE")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    // Local (the store) and through the server: the same outbox.
    for args in [
        vec!["--state", "state.db", "--output", "json"],
        vec!["--server", server.as_str(), "--output", "json"],
    ] {
        let text = status(&args);
        assert!(!text.contains(PASSWORD), "{args:?} shows the password");
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let ns = doc["notifications"]
            .as_array()
            .unwrap_or_else(|| panic!("{doc}"));
        let started = ns.iter().find(|n| n["kind"] == "started").unwrap();
        assert_eq!(started["state"], "failing", "{args:?}: {started}");
        assert!(started["attempts"].as_u64().unwrap() >= 1, "{started}");
        assert!(started["delivered_at"].is_null(), "{started}");
        let err = started["last_error"].as_str().unwrap();
        assert!(err.contains("HTTP 503") && err.contains("***@"), "{err}");
        let sent = rx.got().into_iter().find(|g| g.kind == "started").unwrap();
        assert_eq!(started["event_id"], sent.id.as_str());
        assert!(
            ns.iter().all(|n| n["state"] != "delivered"),
            "nothing was delivered: {doc}"
        );
    }
    let text = status(&["--state", "state.db"]);
    assert!(
        text.contains("notifications: 0 delivered")
            && text.contains("failed attempt(s), last error"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "{text}");

    rx.armed.store(true, Ordering::SeqCst);
    let start = Instant::now();
    loop {
        let rows = notifications(&d);
        if rows.iter().all(|n| n.delivered_ms.is_some()) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{rows:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let n = notifications(&d).len();
    let text = status(&["--server", &server]);
    assert!(
        text.contains(&format!(
            "notifications: {n} delivered, 0 failing, 0 pending"
        )),
        "{text}"
    );
    assert!(
        text.contains("started (event 1) to ") && text.contains(": delivered at "),
        "{text}"
    );
    assert_eq!(srv.stop().code(), Some(0));
}
