//! `rollgate drift DESIRED -`: LIVE from standard input, as in
//! `kubectl get deploy web -o json | rollgate drift web.yaml -`.

use std::io::Write;
use std::process::{Command, Stdio};

fn drift_with_stdin(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .arg("drift")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rollgate runs");
    // A command refused before it reads stdin (bad flags) closes the pipe
    // first: that broken pipe is the refusal racing us, not a failure.
    if let Err(e) = child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "stdin: {e}");
    }
    let out = child.wait_with_output().expect("rollgate exits");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn live_from_standard_input_in_json_yaml_and_with_errors() {
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("web.yaml");
    std::fs::write(
        &desired,
        "replicas: 3\ncontainers:\n  - {name: app, image: 'app:2'}\n  - {name: log, image: 'log:1'}\n",
    )
    .unwrap();
    let d = desired.to_str().unwrap();

    // Same content, lists reordered: no drift.
    let same = r#"{"containers": [{"name": "log", "image": "log:1"},
 {"name": "app", "image": "app:2"}], "replicas": 3}"#;
    let (code, _, err) = drift_with_stdin(&[d, "-"], same);
    assert_eq!(code, 0, "{err}");

    // A real change, reported against "stdin" with its line.
    let changed = "{\"replicas\": 3,\n \"containers\": [{\"name\": \"app\", \"image\": \"app:1\"},\n {\"name\": \"log\", \"image\": \"log:1\"}]}";
    let (code, out, err) = drift_with_stdin(&[d, "-", "--format", "json"], changed);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("/containers/0/image"), "{out}");
    assert!(out.contains("\"live\":\"stdin\""), "{out}");

    // YAML on standard input needs --live-format.
    let (code, _, err) = drift_with_stdin(
        &[d, "-", "--live-format", "yaml"],
        "replicas: 3\ncontainers: [{name: app, image: 'app:2'}, {name: log, image: 'log:1'}]\n",
    );
    assert_eq!(code, 0, "{err}");

    // Malformed input: exit 2 and a message naming stdin with a position.
    let (code, _, err) = drift_with_stdin(&[d, "-"], "{\"replicas\": 3,\n \"containers\": [}\n");
    assert_eq!(code, 2);
    assert!(err.contains("stdin:2:"), "{err}");

    // YAML without --live-format: the error says how to read it.
    let (code, _, err) = drift_with_stdin(&[d, "-"], "replicas: 3\n");
    assert_eq!(code, 2);
    assert!(
        err.contains("stdin:1:1") && err.contains("--live-format yaml"),
        "{err}"
    );
}

#[test]
fn limits_out_of_range_are_refused_not_clamped() {
    for (flag, value, range) in [
        ("--max-depth", "5000", "1..=1000"),
        ("--max-bytes", "5000000000", "1..=4294967295"),
    ] {
        let (code, _, err) = drift_with_stdin(&["a.json", "-", flag, value], "{}");
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(range), "{err}");
    }
}
