//! `rollgate drift watch`: a live source that cannot be read is reported on
//! stderr, once per distinct error, and again when it recovers; a failing
//! `--live-command` is named by the command the user gave.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Generous: only a broken build or a hung binary should hit it.
const PATIENCE: Duration = Duration::from_secs(60);

/// The running watcher and its stderr, line by line.
struct Watch {
    child: Child,
    lines: Receiver<String>,
}

impl Watch {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .arg("drift")
            .arg("watch")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rollgate runs");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines }
    }

    /// Lines up to and including the first that contains `needle`.
    fn until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    let done = line.contains(needle);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no line containing {needle:?}; stderr so far: {seen:#?}")
                }
            }
        }
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
    std::fs::write(&live, "{\"replicas\": 3}").unwrap();
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
