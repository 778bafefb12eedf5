//! `rollgate serve` as real processes: its HTTP API over real sockets, on
//! a SQLite file and on a real PostgreSQL server (two controllers, one
//! frozen with SIGSTOP).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const V1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const V2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
/// The API token planted in these tests; it must appear in no output.
/// `scripts/test.sh` plants a fresh one per run (`ROLLGATE_TEST_API_TOKEN`)
/// and fails when it shows up anywhere in the suite's output.
fn token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        std::env::var("ROLLGATE_TEST_API_TOKEN")
            .ok()
            .filter(|t| t.len() >= 16)
            .unwrap_or_else(|| "planted-token-7f3a9c1e5b2d4680".into())
    })
}

struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
}

fn dir(n: usize) -> Dir {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().to_path_buf();
    for i in 1..=n {
        std::fs::create_dir_all(path.join(format!("srv/web-{i}"))).unwrap();
        std::fs::write(path.join(format!("srv/web-{i}/current")), "v1\n").unwrap();
    }
    std::fs::write(path.join("token"), format!("{}\n", token())).unwrap();
    Dir { _tmp: tmp, path }
}

fn plan(n: usize, deploy: &str, strategy: &str) -> String {
    let targets = (1..=n)
        .map(|i| format!("\"web-{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"service = "web"
artifact = {{ version = "v2", digest = "{V2}" }}
previous = {{ version = "v1", digest = "{V1}" }}
targets = [{targets}]

[deployer]
kind = "command"
deploy = "{deploy}"
current = "cat srv/{{target}}/current"
ready = "test -s srv/{{target}}/current"
timeout = "60s"

[strategy]
{strategy}
"#
    )
}

const DEPLOY: &str = "echo {version} > srv/{target}/current";

fn versions(d: &Dir, n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| {
            std::fs::read_to_string(d.path.join(format!("srv/web-{i}/current")))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect()
}

use support::Server;

/// `rollgate serve --state STATE --token-file token EXTRA` in `d`, listening;
/// its output in `NAME.out` and `NAME.err`.
fn start_serve(d: &Dir, name: &str, state: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--state", state, "--token-file", "token"];
    args.extend_from_slice(extra);
    Server::start(&d.path, name, &args, &[("RUST_LOG", "info")])
}

fn signal(name: &str, pid: u32) {
    assert!(support::signal(name, pid), "kill -{name} {pid}");
}

/// One HTTP/1.1 request over a plain socket: (status, body as JSON or as a string).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before reading a large body: write it from
    // another thread and read the answer here.
    let body = body.to_vec();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&body);
    });
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let _ = writer.join();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, value)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn auth() -> String {
    format!("Bearer {}", token())
}

fn post_plan(srv: &Server, text: &str, extra: &[(&str, &str)]) -> (u16, Value) {
    let a = auth();
    let mut headers = vec![
        ("Authorization", a.as_str()),
        ("Content-Type", "application/toml"),
    ];
    headers.extend_from_slice(extra);
    http(
        srv.addr(),
        "POST",
        "/v1/rollouts",
        &headers,
        text.as_bytes(),
    )
}

fn get(srv: &Server, path: &str) -> Value {
    let (status, body) = http(srv.addr(), "GET", path, &[], b"");
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Waits until rollout `id` reaches a status in `want`; returns its document.
fn wait_status(srv: &Server, id: u64, want: &[&str]) -> Value {
    let start = Instant::now();
    loop {
        let r = get(srv, &format!("/v1/rollouts/{id}"));
        if want.iter().any(|w| r["status"] == *w) {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "rollout {id} never reached {want:?}: {r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything the API shows: the listing and every rollout's document and events.
fn snapshot(srv: &Server) -> Value {
    let list = get(srv, "/v1/rollouts?limit=0");
    let mut all = vec![list.clone()];
    for r in list.as_array().unwrap() {
        let id = r["id"].as_u64().unwrap();
        let mut doc = get(srv, &format!("/v1/rollouts/{id}"));
        doc["lease"] = Value::Null; // time left changes by itself
        all.push(doc);
        all.push(get(srv, &format!("/v1/rollouts/{id}/events")));
    }
    Value::Array(all)
}

fn rollgate(d: &Dir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(args)
        .current_dir(&d.path)
        .env_remove("ROLLGATE_STATE")
        .env_remove("ROLLGATE_TOKEN")
        .env_remove("ROLLGATE_SERVER")
        .output()
        .unwrap()
}

fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        // The message masks the secret: a failure must not leak it either.
        assert!(
            !text.contains(s),
            "{what} shows a secret ({} characters): {}",
            s.len(),
            text.replace(s, "<planted secret>")
        );
    }
}

#[test]
fn api_happy_path_bad_input_and_missing_tokens_get_json_4xx_and_change_nothing() {
    let d = dir(2);
    let mut srv = start_serve(&d, "serve", "state.db", &["--scan-interval", "100ms"]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path.join("state.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the state file is owner-only");
    }
    let text = plan(2, DEPLOY, "kind = \"all-at-once\"");

    // Happy path: submit, the server drives it, read it back.
    let (status, created) = post_plan(&srv, &text, &[("Idempotency-Key", "deploy-42")]);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["existed"], false);
    let id = created["id"].as_u64().unwrap();
    let done = wait_status(&srv, id, &["succeeded"]);
    assert_eq!(done["on_artifact"], 2);
    assert!(
        done["request"]["spec"].is_null(),
        "the plan text is not shown"
    );
    assert_eq!(versions(&d, 2), ["v2", "v2"]);
    let (status, again) = post_plan(&srv, &text, &[("Idempotency-Key", "deploy-42")]);
    assert_eq!(
        (status, &again["id"], &again["existed"]),
        (200, &created["id"], &Value::Bool(true))
    );
    let events = get(&srv, &format!("/v1/rollouts/{id}/events"));
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"controller_started"));
    assert_eq!(actions.last(), Some(&"finished"));
    let later = get(&srv, &format!("/v1/rollouts/{id}/events?after=2"));
    assert_eq!(later.as_array().unwrap().len(), actions.len() - 2);
    let list = get(&srv, "/v1/rollouts?service=web&status=succeeded");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    // The same plan as JSON, with a person's actor, held by a gate that says hold.
    let held = plan(2, DEPLOY, "kind = \"canary\"\nsteps = [50, 100]")
        + "\n[gate]\nkind = \"command\"\ncommand = \"echo needs a person; exit 3\"\n";
    let as_json = toml_to_json(&held);
    let a = auth();
    let (status, second) = http(
        srv.addr(),
        "POST",
        "/v1/rollouts?actor=alice",
        &[
            ("Authorization", &a),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        as_json.as_bytes(),
    );
    assert_eq!(status, 201, "{second}");
    let second_id = second["id"].as_u64().unwrap();
    assert_eq!(second["requested_by"], "alice");
    wait_status(&srv, second_id, &["held"]);

    // Without the token (or with a wrong one) nothing changes.
    let before = snapshot(&srv);
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong-token-0000000000")],
        vec![("Authorization", "Basic eDp5")],
    ] {
        let mut with_type = headers.clone();
        with_type.push(("Content-Type", "application/toml"));
        let (status, body) = http(
            srv.addr(),
            "POST",
            "/v1/rollouts",
            &with_type,
            text.as_bytes(),
        );
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "unauthorized");
        for action in ["pause", "resume", "promote", "abort"] {
            let (status, body) = http(
                srv.addr(),
                "POST",
                &format!("/v1/rollouts/{second_id}/{action}"),
                &headers,
                b"",
            );
            assert_eq!(status, 401, "{action}: {body}");
        }
    }

    // Bad input: each a 4xx with a JSON error naming the problem.
    let big = format!("{text}\n# {}\n", "x".repeat(1 << 20));
    let cases: Vec<Case> = vec![
        (
            "malformed TOML",
            "/v1/rollouts".into(),
            "POST",
            vec![("Content-Type", "application/toml")],
            b"service = \"web\nartifact = ".to_vec(),
            422,
            "invalid_plan",
            "plan:1:",
        ),
        (
            "unknown field",
            "/v1/rollouts".into(),
            "POST",
            vec![("Content-Type", "application/toml")],
            format!("{text}\ncolour = \"blue\"\n").into_bytes(),
            422,
            "invalid_plan",
            "colour",
        ),
        (
            "unknown field (JSON)",
            "/v1/rollouts".into(),
            "POST",
            vec![("Content-Type", "application/json")],
            toml_to_json(&format!("colour = \"blue\"\n{text}")).into_bytes(),
            422,
            "invalid_plan",
            "colour",
        ),
        (
            "malformed JSON",
            "/v1/rollouts".into(),
            "POST",
            vec![("Content-Type", "application/json")],
            b"{\"service\": ".to_vec(),
            400,
            "malformed_plan",
            "line 1",
        ),
        (
            "JSON null",
            "/v1/rollouts".into(),
            "POST",
            vec![("Content-Type", "application/json")],
            b"{\"service\": null}".to_vec(),
            400,
            "malformed_plan",
            "/service",
        ),
        (
            "body over 1 MB",
            "/v1/rollouts".into(),
            "POST",
            vec![("Content-Type", "application/toml")],
            big.into_bytes(),
            413,
            "body_too_large",
            "1048576",
        ),
        (
            "wrong Content-Type",
            "/v1/rollouts".into(),
            "POST",
            vec![("Content-Type", "text/plain")],
            text.clone().into_bytes(),
            415,
            "unsupported_media_type",
            "text/plain",
        ),
        (
            "no Content-Type",
            "/v1/rollouts".into(),
            "POST",
            vec![],
            text.clone().into_bytes(),
            415,
            "unsupported_media_type",
            "Content-Type",
        ),
        (
            "not UTF-8",
            "/v1/rollouts".into(),
            "POST",
            vec![("Content-Type", "application/toml")],
            vec![b's', 0xff, 0xfe],
            400,
            "bad_body",
            "UTF-8",
        ),
        (
            "empty idempotency key",
            "/v1/rollouts".into(),
            "POST",
            vec![
                ("Content-Type", "application/toml"),
                ("Idempotency-Key", " "),
            ],
            text.clone().into_bytes(),
            400,
            "bad_idempotency_key",
            "Idempotency-Key",
        ),
        (
            "unknown query field",
            "/v1/rollouts?colour=blue".into(),
            "POST",
            vec![("Content-Type", "application/toml")],
            text.clone().into_bytes(),
            400,
            "bad_query",
            "colour",
        ),
        (
            "reused key, other plan",
            "/v1/rollouts".into(),
            "POST",
            vec![
                ("Content-Type", "application/toml"),
                ("Idempotency-Key", "deploy-42"),
            ],
            plan(1, DEPLOY, "kind = \"all-at-once\"").into_bytes(),
            422,
            "invalid",
            "deploy-42",
        ),
        (
            "bad id",
            "/v1/rollouts/12x".into(),
            "GET",
            vec![],
            vec![],
            400,
            "bad_id",
            "12x",
        ),
        (
            "negative id",
            "/v1/rollouts/-1/events".into(),
            "GET",
            vec![],
            vec![],
            400,
            "bad_id",
            "-1",
        ),
        (
            "bad id (action)",
            "/v1/rollouts/x1/abort".into(),
            "POST",
            vec![],
            vec![],
            400,
            "bad_id",
            "x1",
        ),
        (
            "unknown rollout",
            "/v1/rollouts/999".into(),
            "GET",
            vec![],
            vec![],
            404,
            "not_found",
            "999",
        ),
        (
            "unknown rollout (action)",
            "/v1/rollouts/999/pause".into(),
            "POST",
            vec![],
            vec![],
            404,
            "not_found",
            "999",
        ),
        (
            "unknown action",
            format!("/v1/rollouts/{second_id}/explode"),
            "POST",
            vec![],
            vec![],
            404,
            "not_found",
            "explode",
        ),
        (
            "finished rollout",
            format!("/v1/rollouts/{id}/abort"),
            "POST",
            vec![],
            vec![],
            409,
            "finished",
            "already finished",
        ),
        (
            "unknown status",
            "/v1/rollouts?status=bogus".into(),
            "GET",
            vec![],
            vec![],
            400,
            "bad_query",
            "bogus",
        ),
        (
            "bad limit",
            "/v1/rollouts?limit=many".into(),
            "GET",
            vec![],
            vec![],
            400,
            "bad_query",
            "limit",
        ),
        (
            "bad after",
            format!("/v1/rollouts/{id}/events?after=-3"),
            "GET",
            vec![],
            vec![],
            400,
            "bad_query",
            "after",
        ),
        (
            "unknown endpoint",
            "/v2/nothing".into(),
            "GET",
            vec![],
            vec![],
            404,
            "not_found",
            "endpoint",
        ),
        (
            "wrong method",
            "/v1/rollouts".into(),
            "DELETE",
            vec![],
            vec![],
            405,
            "method_not_allowed",
            "method",
        ),
    ];
    let a = auth();
    let mut wrong = Vec::new();
    for (what, path, method, mut headers, body, want, kind, names) in cases {
        headers.push(("Authorization", &a));
        let (status, answer) = http(srv.addr(), method, &path, &headers, &body);
        let message = answer["message"].as_str().unwrap_or_default();
        if status != want || answer["error"] != kind || !message.contains(names) {
            wrong.push(format!(
                "{what}: got {status} {answer}, want {want} {kind} naming {names:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(snapshot(&srv), before, "no bad request changed the store");

    // A person's decision over the API: resume asks the gate again, which holds again.
    let (status, body) = http(
        srv.addr(),
        "POST",
        &format!("/v1/rollouts/{second_id}/resume?actor=bob"),
        &[("Authorization", &a)],
        b"",
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["requested"], "resume_requested");
    let seq = body["seq"].as_u64().unwrap();
    let start = Instant::now();
    loop {
        let r = get(&srv, &format!("/v1/rollouts/{second_id}"));
        if r["status"] == "held" && r["last_seq"].as_u64().unwrap() > seq {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{r}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The CLI talks to the server with --server.
    let server = format!("http://{}", srv.addr());
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &server]);
        let out = rollgate(&d, &all);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_no_secret("the CLI's output", &text, &[token()]);
        out
    };
    let no_token = cli(&["rollout", "abort", &second_id.to_string(), "--actor", "eve"]);
    assert_eq!(no_token.status.code(), Some(2), "{no_token:?}");
    assert!(
        String::from_utf8_lossy(&no_token.stderr).contains("API token"),
        "{no_token:?}"
    );
    let out = cli(&[
        "rollout",
        "abort",
        &second_id.to_string(),
        "--actor",
        "bob",
        "--token-file",
        "token",
    ]);
    assert_eq!(out.status.code(), Some(1), "aborted: {out:?}");
    let status: Value = serde_json::from_slice(
        &cli(&[
            "rollout",
            "status",
            &second_id.to_string(),
            "--output",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    assert_eq!(status["status"], "aborted");
    // The HTML report reads the same rollout through the API.
    let out = cli(&[
        "report",
        &second_id.to_string(),
        "--out",
        "aborted.html",
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let said: Value = serde_json::from_slice(&out.stdout).unwrap();
    let html = std::fs::read_to_string(d.path.join("aborted.html")).unwrap();
    assert_eq!(said["bytes"], html.len());
    assert!(html.contains(&format!("Rollout {second_id}")), "{html}");
    assert!(html.contains("aborted"), "{html}");
    assert!(html.contains("bob"), "the actor who aborted it: {html}");
    assert_no_secret("the report", &html, &[token()]);
    let out = cli(&["report", "999", "--out", "none.html"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!d.path.join("none.html").exists());
    assert_eq!(
        versions(&d, 2),
        ["v2", "v2"],
        "back to what they ran before"
    );
    std::fs::write(d.path.join("plan.toml"), &text).unwrap();
    let out = cli(&[
        "rollout",
        "run",
        "plan.toml",
        "--actor",
        "carol",
        "--token-file",
        "token",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&server),
        "{out:?}"
    );
    let bad = cli(&[
        "rollout",
        "run",
        "Cargo.toml",
        "--actor",
        "carol",
        "--token-file",
        "token",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    std::fs::write(d.path.join("bad.toml"), "service = 3\n").unwrap();
    let bad = cli(&[
        "rollout",
        "run",
        "bad.toml",
        "--actor",
        "carol",
        "--token-file",
        "token",
    ]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("bad.toml"),
        "{bad:?}"
    );
    let rows: Value =
        serde_json::from_slice(&cli(&["rollout", "list", "--output", "json"]).stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["actor"], "carol");
    assert_eq!(rows[0]["status"], "succeeded");
    let history: Value = serde_json::from_slice(
        &cli(&[
            "rollout",
            "history",
            "--rollout",
            &second_id.to_string(),
            "--output",
            "json",
        ])
        .stdout,
    )
    .unwrap();
    let actors: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "abort_requested" || r["action"] == "requested")
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert_eq!(actors, ["alice", "bob"], "{history}");
    let text_status = cli(&["rollout", "status", &second_id.to_string()]);
    assert!(
        String::from_utf8_lossy(&text_status.stdout).contains("status: aborted"),
        "{text_status:?}"
    );
    let refused = cli(&["rollout", "resume-all"]);
    assert_eq!(refused.status.code(), Some(2));

    let metrics = http(srv.addr(), "GET", "/metrics", &[], b"").1;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(metrics.contains("rollgate_api_requests_total"), "{metrics}");
    assert!(
        metrics.contains("rollgate_serve_adoptions_total"),
        "{metrics}"
    );

    // The store is sound: the CLI reads it directly.
    assert!(srv.stop().success());
    let out = rollgate(
        &d,
        &["rollout", "list", "--state", "state.db", "--output", "json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "aborted", "succeeded"]);
    assert_no_secret("serve's output", &srv.output(), &[token()]);
}

/// The value of counter `name` in `/metrics` (summed over its labels).
fn counter(srv: &Server, name: &str) -> f64 {
    let text = http(srv.addr(), "GET", "/metrics", &[], b"").1;
    let text = text.as_str().unwrap().to_string();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .reduce(|a, b| a + b)
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn a_submitted_rollout_is_driven_by_the_executor_its_submission_built_without_a_scan() {
    let d = dir(2);
    // No scan for an hour: only the hand-over can drive it.
    let srv = start_serve(&d, "serve", "state.db", &["--scan-interval", "1h"]);
    let (status, created) = post_plan(&srv, &plan(2, DEPLOY, "kind = \"all-at-once\""), &[]);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    wait_status(&srv, id, &["succeeded"]);
    assert_eq!(versions(&d, 2), ["v2", "v2"]);
    assert_eq!(
        counter(&srv, "rollgate_serve_adoptions_total"),
        0.0,
        "a rollout submitted here is not adopted (its executor is not built again)"
    );
}

/// A one-target rollout of service `svc-{i}` onto `web-{i}`, deploying with `deploy`.
fn one_target_plan(i: usize, deploy: &str) -> String {
    plan(1, deploy, "kind = \"all-at-once\"")
        .replace("service = \"web\"", &format!("service = \"svc-{i}\""))
        .replace("\"web-1\"", &format!("\"web-{i}\""))
}

#[test]
fn scans_read_only_free_leases_in_bounded_batches_skip_unchanged_held_rollouts_and_adopt_every_orphan()
 {
    let d = dir(3);
    std::fs::write(d.path.join("hold"), "").unwrap();
    let waits = "while [ -e hold ]; do sleep 0.05; done; echo {version} > srv/{target}/current";
    let a = start_serve(&d, "a", "state.db", &["--scan-interval", "100ms"]);
    let mut ids = Vec::new();
    for i in 1..=3 {
        let (status, created) = post_plan(&a, &one_target_plan(i, waits), &[]);
        assert_eq!(status, 201, "{created}");
        ids.push(created["id"].as_u64().unwrap());
    }
    for id in &ids {
        wait_status(&a, *id, &["running"]);
    }
    // The controller dies holding three leases (of a dead process on this
    // host: free at once for a scan).
    let pid = a.pid();
    signal("KILL", pid);
    drop(a);
    let b = start_serve(
        &d,
        "b",
        "state.db",
        &["--scan-interval", "100ms", "--scan-batch", "1"],
    );
    let start = Instant::now();
    while counter(&b, "rollgate_serve_adoptions_total") < 3.0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not every orphan was adopted: {}",
            b.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_file(d.path.join("hold")).unwrap();
    for id in &ids {
        wait_status(&b, *id, &["succeeded"]);
    }
    assert_eq!(versions(&d, 3), ["v2", "v2", "v2"]);
    assert_eq!(counter(&b, "rollgate_serve_adoptions_total"), 3.0);

    // A held rollout is read once after its driver lets go, then skipped
    // by the next scans (ten of them a second) until its log grows.
    let held = plan(2, DEPLOY, "kind = \"canary\"\nsteps = [50, 100]")
        .replace("service = \"web\"", "service = \"held\"")
        + "\n[gate]\nkind = \"command\"\ncommand = \"echo needs a person; exit 3\"\n";
    let (status, created) = post_plan(&b, &held, &[]);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    wait_status(&b, id, &["held"]);
    std::thread::sleep(Duration::from_millis(500));
    let reads = counter(&b, "rollgate_serve_scan_reads_total");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        counter(&b, "rollgate_serve_scan_reads_total"),
        reads,
        "an unchanged held rollout is not read again"
    );
    // A person's decision grows its log: the next scan reads and adopts it.
    let a = auth();
    let (status, body) = http(
        b.addr(),
        "POST",
        &format!("/v1/rollouts/{id}/abort"),
        &[("Authorization", &a)],
        b"",
    );
    assert_eq!(status, 202, "{body}");
    wait_status(&b, id, &["aborted"]);
    assert!(counter(&b, "rollgate_serve_scan_reads_total") > reads);
}

/// A bad request: what, path, method, headers, body, then the status, the
/// error kind and a word the message must contain.
type Case<'a> = (
    &'a str,
    String,
    &'a str,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
    u16,
    &'a str,
    &'a str,
);

/// TOML plan text as the equivalent JSON document.
fn toml_to_json(text: &str) -> String {
    let value: toml::Table = text.parse().unwrap();
    serde_json::to_string(&value).unwrap()
}

#[test]
fn serve_refuses_to_start_without_a_token_and_never_prints_one() {
    let d = dir(1);
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["serve", "--state", "state.db", "--listen", "127.0.0.1:0"])
        .current_dir(&d.path)
        .env_remove("ROLLGATE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no API token"));
    assert!(!d.path.join("state.db").exists(), "nothing created");
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["serve", "--state", "state.db", "--listen", "127.0.0.1:0"])
        .current_dir(&d.path)
        .env("ROLLGATE_TOKEN", "short-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("at least 16"), "{text}");
    assert_no_secret("serve's refusal", &text, &["short-secret"]);
}

fn password_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let userinfo = after_scheme.split_once('@').map_or("", |(u, _)| u);
    let password = userinfo.split_once(':').map_or("", |(_, p)| p);
    assert!(
        password.len() >= 8,
        "the test server's URL must carry a real password (scripts/postgres.sh makes one)"
    );
    password.to_owned()
}

/// The owner (`rollgate@HOST:NS:PID`) of `srv`'s process in `owners`.
fn owner_of(srv: &Server, owner: &str) -> bool {
    owner.ends_with(&format!(":{}", srv.pid()))
}

#[test]
fn two_serve_processes_on_postgres_a_frozen_leader_is_replaced_and_its_writes_are_fenced() {
    let Some(server) = support::postgres_url("serve") else {
        return;
    };
    let db = support::fresh_database(&server, "rg_serve");
    let password = password_of(&db);
    let d = dir(4);
    // web-2's first deploy announces itself and blocks until released;
    // every deploy is logged with the process that ran it.
    let deploy = "echo {target} >> deploys.log; if [ {target} = web-2 ] && [ ! -e release ]; then touch blocked; while [ ! -e release ]; do sleep 0.01; done; fi; echo {version} > srv/{target}/current";
    let text = plan(
        4,
        deploy,
        "kind = \"canary\"\nsteps = [25, 100]\nconcurrency = 1",
    );
    let ttl = Duration::from_secs(2);
    let flags = ["--lease-ttl", "2s", "--scan-interval", "100ms"];
    let a = start_serve(&d, "a", &db, &flags);
    let b = start_serve(&d, "b", &db, &flags);
    let (status, created) = post_plan(&a, &text, &[("Idempotency-Key", "failover")]);
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_u64().unwrap();
    let start = Instant::now();
    while !d.path.join("blocked").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "web-2 never deployed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Whoever took it first is the leader: freeze it mid-rollout.
    let doc = get(&a, &format!("/v1/rollouts/{id}"));
    let leader_owner = doc["lease"]["owner"].as_str().unwrap().to_string();
    let (leader, other) = if owner_of(&a, &leader_owner) {
        (&a, &b)
    } else {
        assert!(owner_of(&b, &leader_owner), "{leader_owner}");
        (&b, &a)
    };
    signal("STOP", leader.pid());
    let frozen = Instant::now();
    let other_owner = loop {
        let log = get(other, &format!("/v1/rollouts/{id}/events"));
        let taken = log.as_array().unwrap().iter().find_map(|e| {
            let owner = e["event"]["owner"].as_str()?;
            (e["event"]["type"] == "controller_started" && owner != leader_owner)
                .then(|| owner.to_string())
        });
        if let Some(owner) = taken {
            break owner;
        }
        assert!(
            frozen.elapsed() < Duration::from_secs(60),
            "nobody took over: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let takeover = frozen.elapsed();
    assert!(owner_of(other, &other_owner), "{other_owner}");
    eprintln!(
        "takeover after the leader froze: {} ms (lease TTL {} ms)",
        takeover.as_millis(),
        ttl.as_millis()
    );
    assert!(
        takeover <= ttl + Duration::from_secs(3),
        "takeover took {takeover:?} with a {ttl:?} lease"
    );
    std::fs::write(d.path.join("release"), "").unwrap();
    let done = wait_status(
        other,
        id,
        &["succeeded", "rolled_back", "aborted", "rollback_failed"],
    );
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(versions(&d, 4), ["v2"; 4]);

    // Its controller lets go of the lease right after the finish; then the
    // old leader wakes up, and its next write (or lease renewal) is refused
    // by the fence.
    let start = Instant::now();
    while !get(other, &format!("/v1/rollouts/{id}"))["lease"].is_null() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the lease was never released"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal("CONT", leader.pid());
    let start = Instant::now();
    while !leader.output().contains("lost the lease") {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the old leader never noticed: {}",
            leader.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(leader.output().contains("is stale"), "{}", leader.output());
    std::thread::sleep(Duration::from_millis(500));

    let log = get(other, &format!("/v1/rollouts/{id}/events"));
    let log = log.as_array().unwrap();
    let seqs: Vec<u64> = log.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>(), "no gaps");
    let finished = log
        .iter()
        .filter(|e| e["event"]["type"] == "finished")
        .count();
    assert_eq!(finished, 1, "the rollout completed exactly once");
    assert_eq!(log.last().unwrap()["event"]["type"], "finished");
    let handover = log
        .iter()
        .position(|e| {
            e["event"]["type"] == "controller_started" && e["actor"] == other_owner.as_str()
        })
        .unwrap();
    assert!(
        log[handover..]
            .iter()
            .all(|e| e["actor"] != leader_owner.as_str()),
        "the old leader wrote after the handover: {log:?}"
    );
    let started: Vec<&str> = log
        .iter()
        .filter(|e| e["event"]["type"] == "controller_started")
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert_eq!(started, [leader_owner.as_str(), other_owner.as_str()]);
    let status = get(&b, &format!("/v1/rollouts/{id}"));
    assert_eq!(status["status"], "succeeded");

    // Neither the token nor the database password reached any output.
    let mut a = a;
    let mut b = b;
    assert!(a.stop().success());
    assert!(b.stop().success());
    for srv in [&a, &b] {
        assert_no_secret("serve's output", &srv.output(), &[token(), &password]);
        assert!(srv.output().contains("***"), "the URL is shown redacted");
    }

    // The CLI on the same database: it reads what the servers wrote, and
    // neither a right nor a wrong password ever reaches its output.
    let wrong = db.replace(&password, "wrong-password-5e8d1c");
    let id_text = id.to_string();
    let runs = [
        (
            vec!["rollout", "list", "--state", &db, "--output", "json"],
            0,
        ),
        (vec!["rollout", "status", "999", "--state", &db], 2),
        (vec!["rollout", "history", "--state", &db], 0),
        (vec!["rollout", "list", "--state", &wrong], 4),
        (
            vec!["report", &id_text, "--state", &db, "--out", "pg.html"],
            0,
        ),
        (
            vec!["report", &id_text, "--state", &wrong, "--out", "x.html"],
            4,
        ),
    ];
    for (args, code) in runs {
        let out = rollgate(&d, &args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{text}");
        assert_no_secret(
            "the CLI's output",
            &text,
            &[token(), &password, "wrong-password-5e8d1c"],
        );
        if code == 0 && args[1] == "list" {
            let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(rows[0]["status"], "succeeded", "{rows}");
        }
        if code == 4 {
            assert!(
                text.contains(":***@"),
                "the failing database is named, redacted: {text}"
            );
        }
    }
    // The report read from PostgreSQL: the rollout both controllers drove.
    let html = std::fs::read_to_string(d.path.join("pg.html")).unwrap();
    assert!(html.contains(&format!("Rollout {id}")), "{html}");
    assert!(html.contains("succeeded"), "{html}");
    assert!(
        html.contains(&other_owner),
        "the controller that took over: {html}"
    );
    assert_no_secret("the report", &html, &[token(), &password]);
    assert!(
        !d.path.join("x.html").exists(),
        "nothing written on failure"
    );
}
