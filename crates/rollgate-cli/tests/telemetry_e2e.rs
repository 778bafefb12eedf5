//! Telemetry of long-running commands, end to end with the real binary:
//! `--log-format json` (every standard-error line parses as JSON),
//! `--metrics-addr` (the executor's and drift watcher's metrics served while
//! the command runs), `--otlp-endpoint` (the rollout's trace reaches an
//! in-process OTLP/HTTP receiver: one `rollout` span, one `phase` span per
//! phase under it, deploys under the phases), `--metrics-linger`, the same
//! flags on `rollgate serve`, and bad values exit 2.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::free_port;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::Value;

const DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn rollgate() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rollgate"));
    c.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("RUST_LOG");
    c
}

/// Accepts OTLP/HTTP POSTs and keeps their bodies.
struct Receiver {
    addr: std::net::SocketAddr,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut len = 0usize;
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.trim().eq_ignore_ascii_case("content-length")
                    {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                store.lock().expect("lock").push(body);
                let mut w = conn;
                let _ = w.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { addr, bodies }
    }

    fn spans(&self) -> Vec<Span> {
        let mut spans = Vec::new();
        for body in self.bodies.lock().expect("lock").iter() {
            let req = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
            for rs in req.resource_spans {
                for ss in rs.scope_spans {
                    spans.extend(ss.spans);
                }
            }
        }
        spans
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|AnyValue { value }| value.as_ref())
}

fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => Some(s),
        _ => None,
    }
}

/// GET /metrics; `None` while nothing listens.
fn scrape(port: u16) -> Option<String> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    Some(text)
}

/// Scrapes until the exposition contains `want` (or 20 s pass).
fn scrape_until(port: u16, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(text) = scrape(port)
            && text.contains(want)
        {
            return text;
        }
        assert!(Instant::now() < deadline, "{want} never served on :{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn json_lines(stderr: &[u8]) -> Vec<Value> {
    let text = String::from_utf8(stderr.to_vec()).expect("utf-8");
    assert!(!text.trim().is_empty(), "no log line");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn write_plan(dir: &Path) -> std::path::PathBuf {
    let plan = format!(
        r#"service = "web"
artifact = {{ version = "v2", digest = "{DIGEST}" }}
targets = ["web-1", "web-2"]

[deployer]
kind = "command"
deploy = "mkdir -p srv/{{target}} && echo {{version}} > srv/{{target}}/current"
current = "cat srv/{{target}}/current 2>/dev/null || true"
ready = "true"

[strategy]
kind = "canary"
steps = [50, 100]
bake = "1s"

[gate]
kind = "command"
command = "true"
"#
    );
    let path = dir.join("plan.toml");
    std::fs::write(&path, plan).expect("write plan");
    path
}

#[test]
fn a_rollout_logs_json_serves_metrics_and_exports_one_trace_with_a_span_per_phase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path());
    let receiver = Receiver::start();
    let port = free_port();
    let child = rollgate()
        .current_dir(dir.path())
        .args(["rollout", "run"])
        .arg(&plan)
        .args(["--no-rollback-ok", "--state"])
        .arg(dir.path().join("state.db"))
        .args(["--log-format", "json", "--metrics-addr"])
        .arg(format!("127.0.0.1:{port}"))
        // The standard variable works as the flag does.
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", receiver.addr),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rollgate");
    // Served while the rollout runs (two phases of 1 s bake).
    let text = scrape_until(port, "rollgate_rollout_events_total");
    assert!(text.contains("action=\"controller_started\""), "{text}");
    let out = child.wait_with_output().expect("rollgate ran");
    assert!(
        out.status.success(),
        "{:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Every standard-error line is a JSON log line.
    let lines = json_lines(&out.stderr);
    assert!(
        lines
            .iter()
            .any(|l| l.to_string().contains("rollout event")),
        "{lines:?}"
    );
    assert!(
        scrape(port).is_none(),
        "the listener stops with the command"
    );

    let spans = receiver.spans();
    let named = |n: &str| spans.iter().filter(|s| s.name == n).collect::<Vec<_>>();
    let rollouts = named("rollout");
    assert_eq!(rollouts.len(), 1, "one rollout span");
    let root = rollouts[0];
    assert!(
        root.parent_span_id.is_empty(),
        "the rollout span is the root"
    );
    assert_eq!(str_attr(&root.attributes, "service.version"), Some("v2"));
    assert_eq!(str_attr(&root.attributes, "artifact.digest"), Some(DIGEST));
    assert_eq!(str_attr(&root.attributes, "service"), Some("web"));
    let phases = named("phase");
    assert_eq!(phases.len(), 2, "one span per phase");
    let mut indexes = Vec::new();
    for p in &phases {
        assert_eq!(p.trace_id, root.trace_id, "one trace");
        assert_eq!(p.parent_span_id, root.span_id, "phases under the rollout");
        match attr(&p.attributes, "phase") {
            Some(any_value::Value::IntValue(i)) => indexes.push(*i),
            // `usize` fields reach OpenTelemetry as their decimal text.
            Some(any_value::Value::StringValue(s)) => {
                indexes.push(s.parse().unwrap_or_else(|_| panic!("phase {s:?}")));
            }
            other => panic!("phase attribute: {other:?}"),
        }
    }
    indexes.sort_unstable();
    assert_eq!(indexes, [0, 1]);
    let deploys = named("deploy");
    assert_eq!(deploys.len(), 2, "one deploy span per target");
    for d in deploys {
        assert_eq!(d.trace_id, root.trace_id);
        assert!(
            phases.iter().any(|p| p.span_id == d.parent_span_id),
            "deploy under a phase"
        );
    }
}

#[test]
fn a_drift_watch_serves_its_metrics_logs_json_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("desired.json"), r#"{"replicas": 3}"#).expect("desired");
    std::fs::write(dir.path().join("live.json"), r#"{"replicas": 2}"#).expect("live");
    let port = free_port();
    let child = rollgate()
        .current_dir(dir.path())
        .args([
            "drift",
            "watch",
            "desired.json",
            "--live-file",
            "live.json",
            "--interval",
            "200ms",
            "--log-format",
            "json",
            "--metrics-addr",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rollgate");
    let text = scrape_until(port, "rollgate_drift_differences{");
    assert!(text.contains("rollgate_drift_checks_total"), "{text}");
    assert!(support::signal("TERM", child.id()), "kill -TERM");
    let out = child.wait_with_output().expect("rollgate ran");
    assert_eq!(out.status.code(), Some(143), "stopped by SIGTERM");
    let lines = json_lines(&out.stderr);
    assert!(
        lines
            .iter()
            .any(|l| l.to_string().contains("drift appeared")),
        "{lines:?}"
    );
}

#[test]
fn bad_telemetry_values_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path());
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    let cases: Vec<(Vec<String>, Option<&str>, &str)> = vec![
        (
            vec!["--metrics-addr".into(), "localhost".into()],
            None,
            "--metrics-addr",
        ),
        (
            vec!["--metrics-addr".into(), taken.clone()],
            None,
            "--metrics-addr",
        ),
        (
            vec!["--otlp-endpoint".into(), "ftp://collector:4318".into()],
            None,
            "--otlp-endpoint",
        ),
        (vec![], Some("not a url"), "--otlp-endpoint"),
        (
            vec!["--log-format".into(), "xml".into()],
            None,
            "--log-format",
        ),
        (
            vec!["--metrics-linger".into(), "5s".into()],
            None,
            "--metrics-linger needs --metrics-addr",
        ),
        (
            vec![
                "--metrics-addr".into(),
                "127.0.0.1:0".into(),
                "--metrics-linger".into(),
                "soon".into(),
            ],
            None,
            "--metrics-linger",
        ),
    ];
    for (flags, env, names) in cases {
        let mut cmd = rollgate();
        cmd.current_dir(dir.path())
            .args(["rollout", "run"])
            .arg(&plan)
            .args(["--no-rollback-ok", "--state"])
            .arg(dir.path().join("state.db"))
            .args(&flags);
        if let Some(v) = env {
            cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", v);
        }
        let out = cmd.output().expect("rollgate ran");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?} {env:?}: {stderr}");
        assert!(stderr.contains(names), "{flags:?} {env:?}: {stderr}");
        assert!(
            !dir.path().join("srv").exists(),
            "{flags:?}: nothing deployed"
        );
    }
}

#[test]
fn serve_logs_json_and_serves_its_metrics_on_metrics_addr() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), "a-token-of-enough-length").expect("token");
    let port = free_port();
    let metrics_addr = format!("127.0.0.1:{port}");
    let mut srv = support::Server::start(
        dir.path(),
        "serve",
        &[
            "--state",
            "state.db",
            "--token-file",
            "token",
            "--log-format",
            "json",
            "--metrics-addr",
            &metrics_addr,
        ],
        &[],
    );
    let api = srv.addr().to_owned();
    // The API's own /metrics and the --metrics-addr listener serve one
    // registry: what the API request counted shows on the listener.
    let mut conn = TcpStream::connect(&api).expect("connect to the API");
    conn.write_all(b"GET /v1/rollouts HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    let served = scrape_until(port, "rollgate_api_requests_total{");
    assert!(served.contains("method=\"GET\""), "{served}");
    let code = srv.stop();
    assert_eq!(code.code(), Some(0), "stopped by SIGTERM");
    let lines = json_lines(srv.log().as_bytes());
    assert!(
        lines
            .iter()
            .any(|l| l.to_string().contains("listening on http://")),
        "{lines:?}"
    );
    assert!(scrape(port).is_none(), "the listener stops with serve");
}

/// `rollgate rollout run PLAN` in `dir`, serving metrics on `port` and
/// lingering `linger` after it; standard error in `dir/rollout.err`.
fn lingering_rollout(dir: &Path, plan: &Path, port: u16, linger: &str) -> std::process::Child {
    let err = std::fs::File::create(dir.join("rollout.err")).expect("stderr file");
    rollgate()
        .current_dir(dir)
        .args(["rollout", "run"])
        .arg(plan)
        .args(["--no-rollback-ok", "--state"])
        .arg(dir.join("state.db"))
        .args(["--metrics-linger", linger, "--metrics-addr"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("start rollgate")
}

/// SIGTERM to `child`, then its exit code within 30 s (well under any
/// linger or bake the tests set), or a failure with its standard error.
fn terminate_within_30s(child: &mut std::process::Child, dir: &Path) -> Option<i32> {
    support::signal_and_wait(child, "TERM", Duration::from_secs(30)).unwrap_or_else(|e| {
        panic!(
            "{e}:\n{}",
            std::fs::read_to_string(dir.join("rollout.err")).unwrap_or_default()
        )
    })
}

#[test]
fn metrics_linger_keeps_serving_after_the_rollout_until_a_signal_and_keeps_its_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path());
    let port = free_port();
    let mut child = lingering_rollout(dir.path(), &plan, port, "2m");
    // The rollout is done and lingering: it says so (a signal before that
    // would stop the rollout instead, skipping the linger).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let err = std::fs::read_to_string(dir.path().join("rollout.err")).unwrap_or_default();
        if err.contains("still serving metrics at") {
            break;
        }
        assert!(Instant::now() < deadline, "never lingered: {err}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The final values stay served after the rollout finished.
    let finished = |text: &str, outcome: &str, value: &str| {
        text.lines().any(|l| {
            l.starts_with("rollgate_rollouts_finished_total{")
                && l.contains(&format!("outcome=\"{outcome}\""))
                && l.ends_with(&format!(" {value}"))
        })
    };
    let text = scrape(port).unwrap_or_default();
    assert!(finished(&text, "succeeded", "1"), "{text}");
    // Every series is there from the start, at zero until counted.
    assert!(finished(&text, "rolled_back", "0"), "{text}");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still serving"
    );
    let code = terminate_within_30s(&mut child, dir.path());
    assert_eq!(code, Some(0), "the rollout's own exit code");
    assert!(scrape(port).is_none(), "the listener stopped");
}

/// A SIGTERM that arrives while the rollout still runs asks the process to
/// stop: it stops at the next safe point and exits 143 at once, without
/// serving metrics for the `--metrics-linger` time first (it used to take
/// the whole linger, the signal having been spent on the rollout).
#[test]
fn a_signal_during_the_rollout_skips_the_metrics_linger() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plan = write_plan(dir.path());
    let text = std::fs::read_to_string(&plan).expect("plan");
    std::fs::write(&plan, text.replace("bake = \"1s\"", "bake = \"10m\"")).expect("long bake");
    let port = free_port();
    let mut child = lingering_rollout(dir.path(), &plan, port, "10m");
    // Baking phase 0: its first deploy is counted.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = scrape(port).unwrap_or_default();
        if text.lines().any(|l| {
            l.starts_with("rollgate_deploys_total{")
                && l.contains("result=\"ok\"")
                && l.ends_with(" 1")
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "never deployed: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let code = terminate_within_30s(&mut child, dir.path());
    let stderr = std::fs::read_to_string(dir.path().join("rollout.err")).expect("stderr");
    assert_eq!(code, Some(143), "{stderr}");
    assert!(
        stderr.contains("not serving metrics longer (--metrics-linger): SIGTERM asked to stop"),
        "{stderr}"
    );
    assert!(!stderr.contains("still serving metrics"), "{stderr}");
}
