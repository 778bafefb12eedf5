//! `rollgate drift watch`: a live source that cannot be read is reported on
//! stderr, once per distinct error, and again when it recovers; a failing
//! `--live-command` is named by the command the user gave; against a real
//! loopback HTTP source, `--once` exits 0 or 1 and the running watcher
//! reports drift appearing (with its detection time) and clearing. Also
//! `rollgate drift --format patch` with a secret that differs.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Generous: only a broken build or a hung binary should hit it.
const PATIENCE: Duration = Duration::from_secs(60);

/// The running watcher, its stderr and its stdout, line by line.
struct Watch {
    child: Child,
    lines: Receiver<String>,
    out: Receiver<String>,
}

/// Lines from `rx` up to and including the first that contains `needle`.
fn until(rx: &Receiver<String>, needle: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(line) => {
                let done = line.contains(needle);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                panic!("no line containing {needle:?}; so far: {seen:#?}")
            }
        }
    }
}

fn line_by_line(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Watch {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .arg("drift")
            .arg("watch")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rollgate runs");
        let lines = line_by_line(child.stderr.take().expect("stderr is piped"));
        let out = line_by_line(child.stdout.take().expect("stdout is piped"));
        Self { child, lines, out }
    }

    /// Stderr lines up to and including the first that contains `needle`.
    fn until(&self, needle: &str) -> Vec<String> {
        until(&self.lines, needle)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_unreadable_live_file_is_reported_once_per_error_and_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired.yaml");
    let live = dir.path().join("live.json");
    std::fs::write(&desired, "replicas: 3\n").unwrap();
    std::fs::write(&live, "{\"replicas\": ").unwrap();
    let watch = Watch::start(&[
        desired.to_str().unwrap(),
        "--live-file",
        live.to_str().unwrap(),
        "--interval",
        "50ms",
    ]);
    let first = watch.until("cannot check");
    let failed = first.last().unwrap();
    assert!(
        failed.contains(&format!("file {}", live.display())) && failed.contains("invalid json"),
        "{failed}"
    );
    assert!(failed.contains("retrying every 50ms"), "{failed}");

    // Several intervals with the same error: nothing more is said.
    std::thread::sleep(Duration::from_millis(400));
    // A different error (the file is gone) is said once.
    std::fs::remove_file(&live).unwrap();
    let second = watch.until("cannot check");
    assert_eq!(second.len(), 1, "the same error was repeated: {second:#?}");
    assert!(second[0].contains("cannot read"), "{second:#?}");

    std::thread::sleep(Duration::from_millis(400));
    // Written aside and renamed: a check must never see the file half-written.
    let aside = dir.path().join("live.json.new");
    std::fs::write(&aside, "{\"replicas\": 3}").unwrap();
    std::fs::rename(&aside, &live).unwrap();
    let third = watch.until("readable again");
    assert_eq!(third.len(), 1, "the same error was repeated: {third:#?}");
    assert!(
        third[0].contains(&format!("file {} is readable again after", live.display())),
        "{third:#?}"
    );
}

#[test]
fn a_failing_live_command_is_named_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired.json");
    std::fs::write(&desired, "{}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["drift", "watch", desired.to_str().unwrap()])
        .args(["--live-command", "false", "--once"])
        .output()
        .expect("rollgate runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("live source command \"false\": exited with") && !err.contains("command sh"),
        "{err}"
    );

    // Without --once the failure goes to stderr, naming the command.
    let watch = Watch::start(&[
        desired.to_str().unwrap(),
        "--live-command",
        "exit 7",
        "--interval",
        "50ms",
    ]);
    let lines = watch.until("cannot check");
    assert!(
        lines
            .last()
            .unwrap()
            .contains("cannot check against command \"exit 7\": exited with"),
        "{lines:#?}"
    );
}

/// A real HTTP server on loopback answering every GET with the current body.
fn serve(
    body: std::sync::Arc<std::sync::Mutex<String>>,
    served: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    name: &str,
) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/{name}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let body = body.lock().unwrap().clone();
            served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn watching_an_http_source_reports_drift_appearing_and_clearing() {
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired.yaml");
    std::fs::write(
        &desired,
        "replicas: 3\nenv:\n- name: A\n  value: '1'\n- name: B\n  value: '2'\n",
    )
    .unwrap();
    let in_sync = r#"{"env":[{"name":"B","value":"2"},{"name":"A","value":"1"}],"replicas":3}"#;
    let body = std::sync::Arc::new(std::sync::Mutex::new(in_sync.to_owned()));
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = serve(body.clone(), served.clone(), "live.json");

    // --once: the drift exit codes, through the real HTTP source.
    let once = |expect: i32| watch_once(&desired, &url, expect);
    once(0);
    *body.lock().unwrap() = in_sync.replace("\"replicas\":3", "\"replicas\":5");
    let report = once(1);
    assert!(
        report
            .lines()
            .any(|l| l.trim_start().starts_with("live") && l.contains(" 5  (")),
        "{report}"
    );

    // The running watcher: drift appears, with its detection time, then clears.
    *body.lock().unwrap() = in_sync.to_owned();
    let before = served.load(std::sync::atomic::Ordering::SeqCst);
    let watch = Watch::start(&[
        desired.to_str().unwrap(),
        "--live-url",
        &url,
        "--interval",
        "50ms",
    ]);
    watch.until("watching");
    // The watcher's first check has been served LIVE in sync before it drifts.
    while served.load(std::sync::atomic::Ordering::SeqCst) <= before {
        std::thread::sleep(Duration::from_millis(10));
    }
    *body.lock().unwrap() = in_sync.replace("\"value\":\"1\"", "\"value\":\"9\"");
    let appeared = until(&watch.out, "live     \"9\"");
    assert!(
        appeared.iter().any(|l| l == "/env[name=A]"),
        "{appeared:#?}"
    );
    let head = appeared
        .iter()
        .find(|l| l.starts_with("drift appeared (detected within "))
        .unwrap_or_else(|| panic!("{appeared:#?}"));
    let secs: f64 = head
        .trim_start_matches("drift appeared (detected within ")
        .trim_end_matches("s)")
        .parse()
        .unwrap_or_else(|e| panic!("{head}: {e}"));
    assert!(secs.is_finite(), "{head}");
    *body.lock().unwrap() = in_sync.to_owned();
    let cleared = until(&watch.out, "drift cleared after");
    assert!(cleared.last().unwrap().ends_with('s'), "{cleared:#?}");
}

#[test]
fn the_patch_format_withholds_secrets_and_names_them_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired.json");
    let live = dir.path().join("live.json");
    std::fs::write(
        &desired,
        r#"{"db":{"host":"db-2","password":"canary-pw-new"},"replicas":3}"#,
    )
    .unwrap();
    std::fs::write(
        &live,
        r#"{"db":{"host":"db-1","password":"canary-pw-old"},"replicas":3}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["drift", desired.to_str().unwrap(), live.to_str().unwrap()])
        .args(["--format", "patch"])
        .output()
        .expect("rollgate runs");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "[",
            r#"{"op":"replace","path":"/db/host","value":"db-2"}"#,
            "]"
        ]
    );
    assert!(
        stderr.contains("leaves out 1 change(s) that would write a secret")
            && stderr.contains("/db/password"),
        "{stderr}"
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("canary-pw") && !text.contains("***"),
            "{text}"
        );
    }
}

#[test]
fn positions_from_an_overlay_name_the_overlay_file() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.yaml");
    let prod = dir.path().join("prod.yaml");
    let live = dir.path().join("live.json");
    std::fs::write(&base, "replicas: 2\nimage: web:1\n").unwrap();
    std::fs::write(&prod, "\nimage: web:2\n").unwrap();
    std::fs::write(&live, r#"{"replicas": 3, "image": "web:1"}"#).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["drift", base.to_str().unwrap(), live.to_str().unwrap()])
        .args(["--overlay", prod.to_str().unwrap()])
        .output()
        .expect("rollgate runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    // The image comes from the overlay, the replicas from the base.
    assert!(
        text.contains(&format!("({}:2:8)", prod.display()))
            && text.contains(&format!("({}:1:11)", base.display())),
        "{text}"
    );
}

#[test]
fn a_url_ending_in_yaml_is_read_as_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired.json");
    std::fs::write(&desired, r#"{"replicas": 3}"#).unwrap();
    let body = std::sync::Arc::new(std::sync::Mutex::new("replicas: 3\n".to_owned()));
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = serve(body, served, "values-prod.yaml?rev=2");
    watch_once(&desired, &url, 0);
}

/// `rollgate drift watch DESIRED --live-url URL --once`: checks the exit
/// code and returns the report.
fn watch_once(desired: &std::path::Path, url: &str, expect: i32) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["drift", "watch", desired.to_str().unwrap()])
        .args(["--live-url", url, "--once"])
        .output()
        .expect("rollgate runs");
    assert_eq!(
        out.status.code(),
        Some(expect),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `--live-url https://...` against a real TLS server with a self-signed
/// certificate (trusted through `--live-ca-file`) that wants a bearer token,
/// sent from `--live-header-file` (or `--live-header-env`) and never printed.
#[test]
fn https_live_url_with_an_auth_header_from_a_file() {
    use rollgate_test::tls::{Response, TlsServer};
    let server = TlsServer::start(|req| {
        if req.header("authorization") == Some("Bearer t0ken-from-file") {
            Response::new(200, r#"{"replicas": 3}"#)
        } else {
            Response::new(401, "")
        }
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired.json");
    std::fs::write(&desired, r#"{"replicas": 3}"#).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, server.ca_pem()).unwrap();
    let headers = dir.path().join("headers");
    std::fs::write(&headers, "Authorization: Bearer t0ken-from-file\n").unwrap();
    let url = server.url("/config");
    let run = |extra: &[&str], env: Option<(&str, &str)>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollgate"));
        cmd.args(["drift", "watch", desired.to_str().unwrap()])
            .args(["--live-url", &url, "--once"])
            .args(extra);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        cmd.output().expect("rollgate runs")
    };
    let ca_arg = ["--live-ca-file", ca.to_str().unwrap()];
    let header_arg = ["--live-header-file", headers.to_str().unwrap()];

    // Trusted root and token: in sync, exit 0.
    let out = run(&[&ca_arg[..], &header_arg[..]].concat(), None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = server.requests();
    assert_eq!(
        seen.last().unwrap().header("authorization"),
        Some("Bearer t0ken-from-file")
    );

    // The same token from an environment variable.
    let out = run(
        &[&ca_arg[..], &["--live-header-env", "DRIFT_HEADERS"][..]].concat(),
        Some(("DRIFT_HEADERS", "Authorization: Bearer t0ken-from-file")),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No token: the server says 401, exit 2, and nothing secret is printed.
    let out = run(&ca_arg, None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("live source {url}: server answered 401")),
        "{err}"
    );

    // The self-signed certificate is not trusted without --live-ca-file.
    let before = server.requests().len();
    let out = run(&header_arg, None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains("t0ken"), "{err}");
    assert_eq!(server.requests().len(), before);

    // A header file that is not `Name: value` lines is bad input.
    std::fs::write(&headers, "Bearer t0ken-from-file\n").unwrap();
    let out = run(&[&ca_arg[..], &header_arg[..]].concat(), None);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1: expected `Name: value`"), "{err}");
    assert!(!err.contains("t0ken"), "{err}");
}

/// `--once` with a `--live-command` that hangs: SIGINT drops the check and
/// kills the command with what it started (it runs in a process group of
/// its own, which the terminal's Ctrl-C does not reach), exit 130.
#[test]
fn sigint_during_a_once_check_kills_the_live_command_and_exits_130() {
    use rollgate_test::process::{assert_exits, wait_for_pid};
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired.json");
    std::fs::write(&desired, "{}").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .current_dir(dir.path())
        .args(["drift", "watch", desired.to_str().unwrap()])
        .args([
            "--live-command",
            "sleep 1000 & echo $! > bg.pid; sleep 1000",
            "--once",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rollgate runs");
    let bg = wait_for_pid(&dir.path().join("bg.pid"));
    let code = support::signal_and_wait(&mut child, "INT", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e} during a --once check"));
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, Some(130), "{err}");
    assert!(
        err.contains("SIGINT: stopped before the check finished"),
        "{err}"
    );
    assert_exits(bg, "rollgate, as the live command's background process");
}
