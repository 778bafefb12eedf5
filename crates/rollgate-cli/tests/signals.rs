//! SIGINT and SIGTERM at random points of a real `rollgate rollout run`:
//! the controller stops at a safe point, releases its lease, says how to go
//! on, and resuming (same idempotency key, `resume-all`, or `resume ID`)
//! ends exactly like a run nobody disturbed.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use proptest::prelude::*;
use support::{Dir, V1, V2, rollgate, rollgate_cmd};

const N: usize = 4;

/// Four targets on v1; a canary 25 -> 50 -> 100 whose gate rolls back at
/// 50 % when `rollback` is set, and promotes otherwise.
fn setup(rollback: bool) -> Dir {
    let d = Dir::with_web_targets(N);
    let path = d.path.clone();
    let limit = if rollback { 50 } else { 101 };
    std::fs::write(
        path.join("gate.sh"),
        format!("#!/bin/sh\nif [ \"${{1%.*}}\" -ge {limit} ]; then echo 'p99 over'; exit 1; fi\necho ok\n"),
    )
    .unwrap();
    std::fs::write(
        path.join("plan.toml"),
        format!(
            r#"service = "web"
artifact = {{ version = "v2", digest = "{V2}" }}
previous = {{ version = "v1", digest = "{V1}" }}
targets = ["web-1", "web-2", "web-3", "web-4"]

[deployer]
kind = "command"
deploy = "sleep 0.02; echo {{version}} > srv/{{target}}/current"
current = "cat srv/{{target}}/current"
ready = "test -s srv/{{target}}/current"

[strategy]
kind = "canary"
steps = [25, 50, 100]
bake = "100ms"

[gate]
kind = "command"
command = "sh gate.sh {{percent}}"
"#
        ),
    )
    .unwrap();
    d
}

const RUN: [&str; 7] = [
    "rollout",
    "run",
    "plan.toml",
    "--actor",
    "alice",
    "--idempotency-key",
    "build-7",
];

/// What the fleet and the record say at the end.
fn end(d: &Dir) -> (Vec<String>, String) {
    let versions = (1..=N)
        .map(|i| {
            std::fs::read_to_string(d.path.join(format!("srv/web-{i}/current")))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect();
    let out = rollgate(d, &["rollout", "status", "1", "--output", "json"]);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        versions,
        s["status"].as_str().unwrap_or_default().to_string(),
    )
}

/// Starts `rollout run`, sends `signal` once `lines` progress lines have
/// appeared on stderr; returns the exit code and everything it printed.
fn interrupted_run(
    d: &Dir,
    lines: usize,
    signal: &str,
    twice: bool,
) -> (Option<i32>, String, String) {
    let mut child = rollgate_cmd(d, &RUN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut n = 0;
    let mut line = String::new();
    while n < lines && err.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        line.clear();
        n += 1;
    }
    let pid = child.id().to_string();
    let kill = |sig: &str| {
        // The process may already have ended: that is a case too.
        let _ = Command::new("kill").args([sig, &pid]).status();
    };
    kill(signal);
    if twice {
        kill(signal);
    }
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    seen.push_str(&rest);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        seen,
    )
}

fn undisturbed(rollback: bool) -> ((Vec<String>, String), usize) {
    let d = setup(rollback);
    let out = rollgate(&d, &RUN);
    let lines = String::from_utf8_lossy(&out.stderr).lines().count();
    (end(&d), lines)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_signal_at_any_point_then_resuming_ends_like_an_undisturbed_run(
        rollback in any::<bool>(),
        at in 0.0f64..1.0,
        term in any::<bool>(),
        how in 0u8..3,
    ) {
        let (expected, lines) = undisturbed(rollback);
        prop_assert_eq!(&expected.0, &vec![if rollback { "v1" } else { "v2" }.to_string(); N]);
        let d = setup(rollback);
        // Line 1 is printed before a controller runs; stop after line 2 or later.
        let k = 2 + ((lines.saturating_sub(2)) as f64 * at) as usize;
        let (signal, code) = if term { ("-TERM", 143) } else { ("-INT", 130) };
        let (got, stdout, stderr) = interrupted_run(&d, k, signal, false);
        if got == Some(code) {
            prop_assert!(stdout.contains("status: interrupted"), "{}", stdout);
            prop_assert!(stdout.contains("interrupted: rollgate@"), "who left it: {}", stdout);
            prop_assert!(stderr.contains("rollgate rollout resume 1 --actor alice --state "), "{}", stderr);
            let s = rollgate(&d, &["rollout", "status", "1", "--output", "json"]);
            let s: serde_json::Value = serde_json::from_slice(&s.stdout).unwrap();
            prop_assert_eq!(&s["status"], "interrupted");
            prop_assert_eq!(&s["driven_by"], &serde_json::Value::Null, "lease released");
        } else {
            // The signal came after the end: the run finished normally.
            prop_assert!(matches!(got, Some(0 | 1)), "exit {:?}: {}", got, stderr);
        }
        let interrupted = got == Some(code);
        let resumed = match how {
            0 => rollgate(&d, &RUN),
            1 => rollgate(&d, &["rollout", "resume-all"]),
            _ => rollgate(&d, &["rollout", "resume", "1", "--actor", "bob"]),
        };
        let said = String::from_utf8_lossy(&resumed.stderr).into_owned();
        if how == 2 && !interrupted {
            // Nothing to resume: a finished rollout is refused, clearly.
            prop_assert_eq!(resumed.status.code(), Some(2), "{}", said);
            prop_assert!(said.contains("already finished"), "{}", said);
        } else {
            prop_assert!(matches!(resumed.status.code(), Some(0 | 1)), "{}", said);
        }
        prop_assert_eq!(end(&d), expected);
    }
}

#[test]
fn a_second_signal_exits_at_once_and_resume_all_finishes_the_rollout() {
    let d = setup(false);
    let (got, _, stderr) = interrupted_run(&d, 3, "-INT", true);
    assert_eq!(got, Some(130), "{stderr}");
    let out = rollgate(&d, &["rollout", "resume-all"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        end(&d),
        (vec!["v2".to_string(); N], "succeeded".to_string())
    );
}

/// A signal during a deploy stops the rollout at once (the deploy is in
/// doubt, redone on resume) and kills the deploy command with what it
/// started: deploy commands run in process groups of their own, out of
/// reach of the terminal's Ctrl-C, and a cancelled one is killed as a group.
#[test]
fn a_signal_mid_deploy_kills_the_deploy_command_and_what_it_started() {
    use rollgate_test::process::{assert_exits, wait_for_pid};
    use std::time::Duration;
    let d = setup(false);
    let plan = std::fs::read_to_string(d.path.join("plan.toml")).unwrap();
    let hanging = plan.replace(
        "deploy = \"sleep 0.02; echo {version} > srv/{target}/current\"",
        "deploy = \"sleep 1000 & echo $! > bg.pid; sleep 1000\"",
    );
    assert_ne!(hanging, plan);
    std::fs::write(d.path.join("plan.toml"), hanging).unwrap();
    let mut child = rollgate_cmd(&d, &RUN)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let bg = wait_for_pid(&d.path.join("bg.pid"));
    let code = support::signal_and_wait(&mut child, "INT", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e} mid-deploy"));
    assert_eq!(code, Some(130));
    assert_exits(bg, "rollgate, as the deploy command's background process");
}

/// A signal while the prechecks run stops before anything is recorded and
/// kills the precheck command with what it started (it runs in a process
/// group of its own; rollgate had no signal handling yet at that point, so
/// the default SIGINT used to end rollgate and leave the command running).
#[test]
fn a_signal_during_the_prechecks_kills_them_and_records_nothing() {
    use rollgate_test::process::{assert_exits, wait_for_pid};
    use std::time::Duration;
    let d = setup(false);
    let plan = std::fs::read_to_string(d.path.join("plan.toml")).unwrap();
    std::fs::write(
        d.path.join("plan.toml"),
        format!(
            "{plan}\n[[precheck]]\nname = \"slow\"\ncommand = \"sleep 1000 & echo $! > bg.pid; sleep 1000\"\n"
        ),
    )
    .unwrap();
    let mut child = rollgate_cmd(&d, &RUN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bg = wait_for_pid(&d.path.join("bg.pid"));
    let code = support::signal_and_wait(&mut child, "INT", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e} during a precheck"));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped by SIGINT before the rollout was recorded"),
        "{stderr}"
    );
    assert_exits(bg, "rollgate, as the precheck's background process");
    // Nothing was recorded: no rollout in the store.
    let list = rollgate(&d, &["rollout", "list", "--output", "json"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.status.code(), Some(0), "{}", support::stderr(&list));
    assert_eq!(text.trim(), "[]", "{}", support::stderr(&list));
}
