//! The real `rollgate` binary against a real SQLite state file.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Dir, V1, V2, rollgate, rollgate_cmd, stderr};

/// A scratch directory with `n` targets under srv/, each running v1.
fn dir(n: usize) -> Dir {
    Dir::with_web_targets(n)
}

fn targets(n: usize) -> String {
    (1..=n)
        .map(|i| format!("\"web-{i}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plan(n: usize, deploy: &str, strategy: &str, extra: &str) -> String {
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
timeout = "30s"

[strategy]
{strategy}
{extra}"#,
        targets = targets(n)
    )
}

const DEPLOY: &str = "echo {version} > srv/{target}/current";

fn write(d: &Dir, name: &str, text: &str) -> String {
    std::fs::write(d.path.join(name), text).unwrap();
    name.to_string()
}

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

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn wait_for(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn kill_9_mid_rollout_then_resume_all_completes_it() {
    let d = dir(5);
    // web-3's deploy announces itself, then blocks until released.
    let deploy = r#"if [ {target} = web-3 ]; then touch blocked; while [ ! -e release ]; do sleep 0.01; done; fi; echo {version} > srv/{target}/current"#;
    let p = write(
        &d,
        "plan.toml",
        &plan(
            5,
            deploy,
            "kind = \"canary\"\nsteps = [30, 100]\nconcurrency = 1",
            "",
        ),
    );
    let mut child = rollgate_cmd(
        &d,
        &["rollout", "run", &p, "--actor", "alice", "--output", "json"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_for(&d.path.join("blocked"));
    child.kill().unwrap(); // SIGKILL: no cleanup, no lease release
    child.wait().unwrap();
    std::fs::write(d.path.join("release"), "").unwrap();
    assert_eq!(
        versions(&d, 5)[..2],
        ["v2", "v2"],
        "phase 0 finished before the kill"
    );

    let out = rollgate(&d, &["rollout", "resume-all", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        versions(&d, 5),
        ["v2"; 5],
        "every target on v2, none on a third artifact"
    );

    let status = json(&rollgate(
        &d,
        &["rollout", "status", "1", "--output", "json"],
    ));
    assert_eq!(status["status"], "succeeded");
    let history = json(&rollgate(&d, &["rollout", "history", "--output", "json"]));
    let owners: std::collections::BTreeSet<String> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "controller_started")
        .map(|e| e["actor"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        owners.len(),
        2,
        "both runs are in the audit history: {owners:?}"
    );
    let deploys_of_web3 = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "deploy_intent" && e["target"] == "web-3")
        .count();
    assert_eq!(
        deploys_of_web3, 1,
        "the resumed controller redid the in-doubt deploy without a new intent"
    );
}

#[test]
fn same_idempotency_key_prints_the_same_rollout_and_starts_nothing() {
    let d = dir(3);
    let p = write(
        &d,
        "plan.toml",
        &plan(3, DEPLOY, "kind = \"all-at-once\"", ""),
    );
    let args = [
        "rollout",
        "run",
        p.as_str(),
        "--actor",
        "ci",
        "--idempotency-key",
        "build-77",
        "--output",
        "json",
    ];
    let first = rollgate(&d, &args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    std::fs::write(d.path.join("srv/web-2/current"), "v1\n").unwrap(); // drift after the run
    let second = rollgate(&d, &args);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let (a, b) = (json(&first), json(&second));
    assert_eq!(a["id"], b["id"]);
    assert_eq!(b["existed"], true);
    assert_eq!(
        versions(&d, 3),
        ["v2", "v1", "v2"],
        "the repeat deployed nothing"
    );
    let list = json(&rollgate(&d, &["rollout", "history", "--output", "json"]));
    let ids: std::collections::BTreeSet<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rollout"].as_u64())
        .collect();
    assert_eq!(ids.len(), 1);
}

#[test]
fn gate_rollback_at_ten_percent_exits_1_and_restores_the_canary() {
    let d = dir(10);
    write(
        &d,
        "gate.sh",
        "#!/bin/sh\necho \"error ratio 4% at $1%\"\nexit 1\n",
    );
    let p = write(
        &d,
        "plan.toml",
        &plan(
            10,
            DEPLOY,
            "kind = \"canary\"\nsteps = [10, 50, 100]",
            "\n[gate]\nkind = \"command\"\ncommand = \"sh gate.sh {percent}\"\n",
        ),
    );
    let out = rollgate(
        &d,
        &["rollout", "run", &p, "--actor", "alice", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = json(&out);
    assert_eq!(s["status"], "rolled_back");
    assert!(
        s["reasons"][0]
            .as_str()
            .unwrap()
            .contains("error ratio 4% at 10%"),
        "{s}"
    );
    assert_eq!(versions(&d, 10), ["v1"; 10]);
    let history = json(&rollgate(&d, &["rollout", "history", "--output", "json"]));
    let touched: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "deploy_intent")
        .map(|e| e["target"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(touched, ["web-1"], "untouched targets never deployed");
}

#[test]
fn a_held_rollout_prints_the_three_decisions_and_each_drives_it_in_one_command() {
    let d = dir(4);
    write(
        &d,
        "gate.sh",
        "#!/bin/sh\nif [ -e approved ]; then exit 0; fi\necho 'needs a person'\nexit 3\n",
    );
    let p = write(
        &d,
        "plan.toml",
        &plan(
            4,
            DEPLOY,
            "kind = \"canary\"\nsteps = [25, 100]",
            "\n[gate]\nkind = \"command\"\ncommand = \"sh gate.sh\"\n",
        ),
    );
    let out = rollgate(&d, &["rollout", "run", &p, "--actor", "alice"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // The held run exited: status says nothing drives it, and what to run.
    let status = rollgate(&d, &["rollout", "status", "1"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(text.contains("status: held"), "{text}");
    assert!(text.contains("no controller is driving it"), "{text}");
    assert!(!text.contains("driven by"), "{text}");
    for cmd in [
        "promote 1 --actor NAME",
        "resume 1 --actor NAME",
        "abort 1 --actor NAME",
    ] {
        assert!(
            text.contains(&format!("rollgate rollout {cmd}")),
            "{cmd}: {text}"
        );
    }
    // `--no-wait` only records the decision.
    let out = rollgate(
        &d,
        &["rollout", "promote", "1", "--actor", "bob", "--no-wait"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("promote_requested recorded"), "{said}");
    assert!(said.contains("no controller is driving it now"), "{said}");
    assert_eq!(versions(&d, 4), ["v2", "v1", "v1", "v1"], "nothing moved");
    // Without it, a decision on an undriven rollout drives it here, in one
    // command: the recorded promote completes phase 1, phase 2 holds again.
    let out = rollgate(&d, &["rollout", "resume", "1", "--actor", "bob"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("driving it here"), "{said}");
    assert!(
        stderr(&out).contains("deploy_intent web-2"),
        "live progress: {}",
        stderr(&out)
    );
    assert_eq!(versions(&d, 4), ["v2"; 4]);
    std::fs::write(d.path.join("approved"), "").unwrap();
    let out = rollgate(&d, &["rollout", "resume", "1", "--actor", "bob"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = json(&rollgate(
        &d,
        &["rollout", "status", "1", "--output", "json"],
    ));
    assert_eq!(s["status"], "succeeded");
    let out = rollgate(&d, &["rollout", "resume-all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(versions(&d, 4), ["v2"; 4]);
}

#[test]
fn abort_and_rollback_are_one_command_each() {
    let d = dir(3);
    let p = write(
        &d,
        "plan.toml",
        &plan(3, DEPLOY, "kind = \"all-at-once\"", ""),
    );
    assert_eq!(
        rollgate(&d, &["rollout", "run", &p, "--actor", "a"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(versions(&d, 3), ["v2"; 3]);
    let out = rollgate(
        &d,
        &[
            "rollback",
            "--service",
            "web",
            "--actor",
            "oncall",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["artifact"]["version"], "v1");
    assert_eq!(versions(&d, 3), ["v1"; 3]);
    // Again: a rollback is not rolled back; nothing moves.
    let again = rollgate(&d, &["rollback", "--service", "web", "--actor", "oncall"]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("nothing to do"),
        "{}",
        stderr(&again)
    );
    assert_eq!(versions(&d, 3), ["v1"; 3]);
    // Going forward again is a rollout, which can then be rolled back.
    let fwd = rollgate(&d, &["rollout", "run", &p, "--actor", "a"]);
    assert_eq!(fwd.status.code(), Some(0), "{}", stderr(&fwd));
    assert_eq!(versions(&d, 3), ["v2"; 3]);
    let back = rollgate(&d, &["rollback", "--service", "web", "--actor", "oncall"]);
    assert_eq!(back.status.code(), Some(0), "{}", stderr(&back));
    assert_eq!(versions(&d, 3), ["v1"; 3]);
    // Abort of a finished rollout is refused clearly.
    let out = rollgate(&d, &["rollout", "abort", "1", "--actor", "oncall"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("rollout 1 already finished (succeeded)"),
        "{}",
        stderr(&out)
    );
    let out = rollgate(&d, &["rollback", "--service", "api", "--actor", "oncall"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("service \"api\" has no rollouts"),
        "{}",
        stderr(&out)
    );
}

fn bad(d: &Dir, text: &str) -> (Option<i32>, String) {
    let p = write(d, "bad.toml", text);
    let out = rollgate(d, &["rollout", "run", &p, "--actor", "alice"]);
    (out.status.code(), stderr(&out))
}

#[test]
fn bad_plans_get_exit_2_with_file_line_and_column_and_record_nothing() {
    let d = dir(3);
    let ok = plan(3, DEPLOY, "kind = \"canary\"\nsteps = [10, 100]", "");
    let cases: Vec<(String, &str)> = vec![
        (
            "service = \"web\"\nartifact = { version = \"v2\" digest = 1 }\n".into(),
            "bad.toml:2:",
        ),
        (
            ok.replace("kind = \"canary\"", "kind = \"yolo\""),
            "bad.toml:14:8: unknown strategy \"yolo\"",
        ),
        (
            ok.replace("[10, 100]", "[10, 150]"),
            "bad.toml:15:14: percentage 150 is outside 0-100",
        ),
        (
            ok.replace("\"web-1\", \"web-2\", \"web-3\"", ""),
            "bad.toml:4:11: the target list is empty",
        ),
        (
            ok.replace("\"web-3\"", "\"web-1\""),
            "bad.toml:4:30: target web-1 is listed twice",
        ),
    ];
    for (text, want) in cases {
        let (code, err) = bad(&d, &text);
        assert_eq!(code, Some(2), "{want}: {err}");
        assert!(err.contains(want), "want {want:?} in {err:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, err) = {
        let out = rollgate(&d, &["rollout", "run", "missing.toml", "--actor", "a"]);
        (out.status.code(), stderr(&out))
    };
    assert_eq!(code, Some(2));
    assert!(err.contains("missing.toml: cannot read"), "{err}");
    assert_eq!(versions(&d, 3), ["v1"; 3]);
}

#[test]
fn a_hanging_deploy_command_times_out_and_rolls_back() {
    let d = dir(2);
    let hang = plan(
        2,
        "sleep 30",
        "kind = \"all-at-once\"",
        "\n[retry]\nattempts = 1\n",
    )
    .replace("timeout = \"30s\"", "timeout = \"300ms\"");
    let p = write(&d, "plan.toml", &hang);
    let started = Instant::now();
    let out = rollgate(
        &d,
        &["rollout", "run", &p, "--actor", "a", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the hung command was killed"
    );
    let s = json(&out);
    assert!(
        s["reasons"][0]
            .as_str()
            .unwrap()
            .contains("`sleep 30` timed out after 300ms"),
        "{s}"
    );
    assert_eq!(versions(&d, 2), ["v1"; 2]);
}

#[test]
fn a_locked_state_file_exits_4_and_loses_nothing() {
    let d = dir(2);
    let p = write(
        &d,
        "plan.toml",
        &plan(2, DEPLOY, "kind = \"all-at-once\"", ""),
    );
    assert_eq!(
        rollgate(&d, &["rollout", "run", &p, "--actor", "a"])
            .status
            .code(),
        Some(0)
    );
    let db = d.path.join("state.db");
    let script = format!(
        "import sqlite3,sys\nc=sqlite3.connect({:?},isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\nsys.stdin.read()\n",
        db.display().to_string()
    );
    let mut lock = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(lock.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "locked");
    let out = rollgate(
        &d,
        &[
            "rollout",
            "run",
            &p,
            "--actor",
            "a",
            "--busy-timeout",
            "100ms",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("locked by another process"),
        "{}",
        stderr(&out)
    );
    drop(lock.stdin.take());
    lock.wait().unwrap();
    let s = json(&rollgate(
        &d,
        &["rollout", "status", "1", "--output", "json"],
    ));
    assert_eq!(s["status"], "succeeded", "recorded state intact");
}

#[test]
fn unusable_state_files_exit_4_with_the_path() {
    let d = dir(1);
    let p = write(
        &d,
        "plan.toml",
        &plan(1, DEPLOY, "kind = \"all-at-once\"", ""),
    );
    write(
        &d,
        "notes.db",
        &"not a database at all, just text\n".repeat(50),
    );
    let out = rollgate(
        &d,
        &["rollout", "run", &p, "--actor", "a", "--state", "notes.db"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("notes.db is not a rollgate state file"),
        "{}",
        stderr(&out)
    );
    let out = rollgate(
        &d,
        &["rollout", "status", "1", "--state", "/proc/nope/state.db"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/proc/nope/state.db"),
        "{}",
        stderr(&out)
    );
    let out = rollgate(&d, &["rollout", "status", "12x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("rollout id \"12x\" is not a number"),
        "{}",
        stderr(&out)
    );
    let run = rollgate(&d, &["rollout", "run", &p, "--actor", "a"]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let out = rollgate(&d, &["rollout", "status", "99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("rollout 99 not found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn history_and_status_name_who_asked_and_survive_a_closed_pipe() {
    let d = dir(2);
    let p = write(
        &d,
        "plan.toml",
        &plan(2, DEPLOY, "kind = \"all-at-once\"", ""),
    );
    let run = rollgate(&d, &["rollout", "run", &p, "--actor", "alice"]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let back = rollgate(&d, &["rollback", "--service", "web", "--actor", "bob"]);
    assert_eq!(back.status.code(), Some(0), "{}", stderr(&back));
    let rows = json(&rollgate(&d, &["rollout", "history", "--output", "json"]));
    let requested: Vec<(u64, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "requested")
        .map(|r| {
            (
                r["rollout"].as_u64().unwrap(),
                r["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(requested, [(1, "alice".to_owned()), (2, "bob".to_owned())]);
    let status = json(&rollgate(
        &d,
        &["rollout", "status", "1", "--output", "json"],
    ));
    assert_eq!(status["requested_by"], "alice");
    let text = rollgate(&d, &["rollout", "status", "2"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("requested by: bob"));

    // `rollgate rollout history | head -1`: the reader is gone before
    // rollgate writes; it must finish quietly, not panic.
    for args in [["rollout", "history"], ["rollout", "status"]] {
        let mut args = args.to_vec();
        if args[1] == "status" {
            args.push("1");
        }
        let mut child = rollgate_cmd(&d, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn commands_that_need_recorded_rollouts_refuse_a_missing_state_file_and_create_none() {
    let d = dir(1);
    for args in [
        vec!["rollout", "history"],
        vec!["rollout", "status", "1"],
        vec!["rollout", "resume-all"],
        vec!["rollout", "pause", "1", "--actor", "a"],
        vec!["rollback", "--service", "web", "--actor", "a"],
    ] {
        let out = rollgate(&d, &args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("state.db does not exist"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            !d.path.join("state.db").exists(),
            "{args:?} created the state file"
        );
    }
}

#[test]
fn an_assumed_previous_artifact_is_marked_as_assumed_in_the_audit() {
    let d = dir(2);
    // web-2 cannot say what it runs (its `current` command fails): the
    // plan's `previous` stands in for it, and the history says so instead
    // of stating it as fact.
    std::fs::remove_file(d.path.join("srv/web-2/current")).unwrap();
    let p = write(
        &d,
        "plan.toml",
        &plan(2, DEPLOY, "kind = \"all-at-once\"", ""),
    );
    let run = rollgate(&d, &["rollout", "run", &p, "--actor", "a"]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let rows = json(&rollgate(&d, &["rollout", "history", "--output", "json"]));
    let intent = |target: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["action"] == "deploy_intent" && r["target"] == target)
            .map(|r| r["outcome"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert!(
        intent("web-1").starts_with("from v1"),
        "{}",
        intent("web-1")
    );
    assert!(!intent("web-1").contains("assumed"), "{}", intent("web-1"));
    assert!(
        intent("web-2").contains("assumed from the plan")
            && intent("web-2").contains("reading what it runs failed"),
        "{}",
        intent("web-2")
    );
}

/// A fleet running `v0`, which rollgate never recorded, with a plan that has
/// no `previous`, and a gate that says roll back.
fn first_adoption(d: &Dir, extra: &str) -> String {
    for i in 1..=3 {
        std::fs::write(d.path.join(format!("srv/web-{i}/current")), "v0\n").unwrap();
    }
    write(d, "gate.sh", "#!/bin/sh\necho 'p99 over bound'\nexit 1\n");
    write(
        d,
        "plan.toml",
        &format!(
            r#"service = "web"
artifact = {{ version = "v2", digest = "{V2}" }}
targets = ["web-1", "web-2", "web-3"]
{extra}
[deployer]
kind = "command"
deploy = "{DEPLOY}"
current = "cat srv/{{target}}/current"
ready = "test -s srv/{{target}}/current"

[strategy]
kind = "all-at-once"

[gate]
kind = "command"
command = "sh gate.sh"
"#
        ),
    )
}

#[test]
fn first_adoption_on_an_unregistered_version_is_refused_up_front_with_the_ways_out() {
    let d = dir(3);
    let p = first_adoption(&d, "");
    let out = rollgate(&d, &["rollout", "run", &p, "--actor", "alice"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for t in ["web-1", "web-2", "web-3"] {
        assert!(
            err.contains(&format!("{t}: runs \"v0\", which is not a known artifact")),
            "{err}"
        );
    }
    for way in ["previous = {", "[[known]]", "--no-rollback-ok"] {
        assert!(err.contains(way), "{way} missing: {err}");
    }
    assert!(!err.contains("reading what it runs failed"), "{err}");
    assert_eq!(versions(&d, 3), ["v0"; 3], "nothing changed");
    let listed = json(&rollgate(&d, &["rollout", "history", "--output", "json"]));
    assert_eq!(listed, serde_json::json!([]), "nothing recorded");
}

#[test]
fn first_adoption_one_way_ends_rollback_failed_naming_every_target_left_on_the_new_artifact() {
    let d = dir(3);
    let p = first_adoption(&d, "");
    let out = rollgate(
        &d,
        &[
            "rollout",
            "run",
            &p,
            "--actor",
            "alice",
            "--no-rollback-ok",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = json(&out);
    assert_eq!(s["status"], "rollback_failed", "{s}");
    assert_eq!(
        s["left_on_artifact"],
        serde_json::json!(["web-1", "web-2", "web-3"])
    );
    assert_eq!(versions(&d, 3), ["v2"; 3], "honest: they do run v2");
    let text = rollgate(&d, &["rollout", "status", "1"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("status: rollback_failed"), "{text}");
    assert!(text.contains("left on v2: web-1, web-2, web-3"), "{text}");
    assert!(!text.contains("rolled_back"), "{text}");
}

#[test]
fn first_adoption_with_the_running_version_declared_as_known_rolls_back_for_real() {
    let d = dir(3);
    let v0 = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let p = first_adoption(
        &d,
        &format!("\n[[known]]\nversion = \"v0\"\ndigest = \"{v0}\"\n"),
    );
    let out = rollgate(
        &d,
        &["rollout", "run", &p, "--actor", "alice", "--output", "json"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = json(&out);
    assert_eq!(s["status"], "rolled_back", "{s}");
    assert_eq!(s["left_on_artifact"], serde_json::json!([]));
    assert_eq!(
        versions(&d, 3),
        ["v0"; 3],
        "every touched target runs what it ran"
    );
}

#[test]
fn abort_with_no_controller_alive_returns_every_touched_target_in_one_command() {
    let d = dir(4);
    write(&d, "gate.sh", "#!/bin/sh\necho 'needs a person'\nexit 3\n");
    let p = write(
        &d,
        "plan.toml",
        &plan(
            4,
            DEPLOY,
            "kind = \"canary\"\nsteps = [50, 100]",
            "\n[gate]\nkind = \"command\"\ncommand = \"sh gate.sh\"\n",
        ),
    );
    let out = rollgate(&d, &["rollout", "run", &p, "--actor", "alice"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(versions(&d, 4), ["v2", "v2", "v1", "v1"]);
    let out = rollgate(&d, &["rollout", "abort", "1", "--actor", "oncall"]);
    assert_eq!(out.status.code(), Some(1), "aborted: {}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("driving it here"), "{said}");
    assert!(said.contains("status: aborted"), "{said}");
    assert!(
        stderr(&out).contains("target_restored web-1"),
        "{}",
        stderr(&out)
    );
    assert_eq!(versions(&d, 4), ["v1"; 4], "every touched target back");
}

/// Runs `script` with bash; returns its stdout.
fn bash(d: &Dir, script: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", script])
        .current_dir(&d.path)
        .env("ROLLGATE_STATE", d.path.join("state.db"))
        .env("RG", env!("CARGO_BIN_EXE_rollgate"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn head_1_on_run_and_history_neither_panics_nor_strands_the_rollout() {
    let d = dir(4);
    let slow = "sleep 0.05; echo {version} > srv/{target}/current";
    let p = write(
        &d,
        "plan.toml",
        &plan(4, slow, "kind = \"rolling\"\nmax_unavailable = 1", ""),
    );
    // stdout and stderr into one pipe that closes after the first line.
    let said = bash(
        &d,
        &format!(
            "\"$RG\" rollout run {p} --actor a 2>&1 | head -1; echo \"rc=${{PIPESTATUS[0]}}\""
        ),
    );
    assert!(
        said.ends_with("rc=0\n"),
        "the rollout went on to the end: {said}"
    );
    assert!(!said.contains("panicked"), "{said}");
    let s = json(&rollgate(
        &d,
        &["rollout", "status", "1", "--output", "json"],
    ));
    assert_eq!(s["status"], "succeeded", "{s}");
    assert_eq!(versions(&d, 4), ["v2"; 4]);
    let said = bash(
        &d,
        "\"$RG\" rollout history 2>&1 | head -1; echo \"rc=${PIPESTATUS[0]}\"",
    );
    assert!(
        said.starts_with("ROLLOUT") && said.ends_with("rc=0\n"),
        "{said}"
    );
}

#[test]
fn people_see_1_based_phases_natural_target_order_aligned_history_and_a_user_at_host_actor() {
    let d = dir(10);
    let p = write(
        &d,
        "plan.toml",
        &plan(10, DEPLOY, "kind = \"canary\"\nsteps = [10, 100]", ""),
    );
    let empty = rollgate(&d, &["rollout", "run", &p, "--idempotency-key", ""]);
    assert_eq!(empty.status.code(), Some(2), "{}", stderr(&empty));
    assert!(stderr(&empty).contains("--idempotency-key must not be empty"));
    let out = rollgate_cmd(&d, &["rollout", "run", &p])
        .env("USER", "carol")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let progress = stderr(&out);
    assert!(
        progress.contains("phase_completed: phase 1: baked; no gate"),
        "{progress}"
    );
    assert!(progress.contains("phase_completed: phase 2:"), "{progress}");
    assert!(!progress.contains("phase 0"), "{progress}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("requested by: carol@"), "{text}");
    assert!(
        text.contains(
            "deployed: web-1, web-2, web-3, web-4, web-5, web-6, web-7, web-8, web-9, web-10"
        ),
        "{text}"
    );
    let s = json(&rollgate(
        &d,
        &["rollout", "status", "1", "--output", "json"],
    ));
    assert_eq!(
        (
            s["phase"].as_u64(),
            s["phase_index"].as_u64(),
            s["phases"].as_u64()
        ),
        (Some(2), Some(2), Some(2))
    );
    let keys: Vec<&String> = s["targets"].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 10);
    let history = rollgate(&d, &["rollout", "history"]);
    let history = String::from_utf8_lossy(&history.stdout).into_owned();
    let mut lines = history.lines();
    let head = lines.next().unwrap();
    for col in [
        "SEQ", "TIME", "ACTOR", "ACTION", "TARGET", "ARTIFACT", "OUTCOME",
    ] {
        let at = head.find(col).unwrap();
        for line in history.lines().skip(1) {
            let before = &line[..at];
            assert!(
                before.ends_with("  ") && !line[at..].starts_with(' '),
                "column {col} misaligned:\n{head}\n{line}"
            );
        }
    }
}

#[test]
fn without_user_or_logname_the_default_actor_is_the_account_name_at_host() {
    let d = dir(1);
    let p = write(
        &d,
        "plan.toml",
        &plan(1, DEPLOY, "kind = \"all-at-once\"", ""),
    );
    let out = rollgate_cmd(&d, &["rollout", "run", &p])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = Command::new("id").arg("-un").output().unwrap();
    let name = String::from_utf8_lossy(&id.stdout).trim().to_string();
    assert!(!name.is_empty());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains(&format!("requested by: {name}@")),
        "expected {name}@HOST:\n{text}"
    );
    assert!(!text.contains("unknown@"), "{text}");
}

#[test]
fn the_printed_decision_commands_work_from_another_directory_with_a_non_default_state_file() {
    let d = dir(2);
    write(&d, "gate.sh", "#!/bin/sh\necho wait\nexit 3\n");
    let p = write(
        &d,
        "plan.toml",
        &plan(
            2,
            DEPLOY,
            "kind = \"canary\"\nsteps = [50, 100]",
            "\n[gate]\nkind = \"command\"\ncommand = \"sh gate.sh\"\n",
        ),
    );
    // No $ROLLGATE_STATE: the state file is only named by --state.
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "rollout", "run", &p, "--actor", "alice", "--state", "ops.db",
        ])
        .current_dir(&d.path)
        .env_remove("ROLLGATE_STATE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let abort = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("rollgate rollout abort 1 "))
        .unwrap_or_else(|| panic!("no abort command:\n{text}"));
    let command = abort
        .split(" #")
        .next()
        .unwrap()
        .trim()
        .replace("NAME", "bob");
    let state = std::fs::canonicalize(d.path.join("ops.db")).unwrap();
    assert!(
        command.ends_with(&format!("--state {}", state.display())),
        "{command}"
    );
    // Run it as printed, from another directory: it finds the rollout and
    // returns every touched target.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .args(["-c", &command.replacen("rollgate", "\"$RG\"", 1)])
        .env("RG", env!("CARGO_BIN_EXE_rollgate"))
        .env_remove("ROLLGATE_STATE")
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{command}: {}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("status: aborted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(versions(&d, 2), vec!["v1", "v1"]);
    assert!(!elsewhere.path().join("rollgate.db").exists());
}

#[test]
fn list_filters_by_service_status_and_age() {
    let d = dir(2);
    write(
        &d,
        "gate.sh",
        "#!/bin/sh\n[ -e fail ] && { echo bad; exit 1; }\n[ -e hold ] && { echo wait; exit 3; }\nexit 0\n",
    );
    let gated = "\n[gate]\nkind = \"command\"\ncommand = \"sh gate.sh\"\n";
    let p = write(
        &d,
        "plan.toml",
        &plan(2, DEPLOY, "kind = \"all-at-once\"", gated),
    );
    assert_eq!(rollgate(&d, &["rollout", "run", &p]).status.code(), Some(0));
    std::fs::write(d.path.join("fail"), "").unwrap();
    let api = plan(2, DEPLOY, "kind = \"all-at-once\"", gated)
        .replace("service = \"web\"", "service = \"api\"");
    let pa = write(&d, "api.toml", &api);
    // api shares the targets: put them back on v1, roll api out, and let
    // the gate roll it back.
    for i in 1..=2 {
        std::fs::write(d.path.join(format!("srv/web-{i}/current")), "v1\n").unwrap();
    }
    assert_eq!(
        rollgate(&d, &["rollout", "run", &pa]).status.code(),
        Some(1)
    );
    std::fs::remove_file(d.path.join("fail")).unwrap();
    std::fs::write(d.path.join("hold"), "").unwrap();
    assert_eq!(rollgate(&d, &["rollout", "run", &p]).status.code(), Some(3));
    let ids = |args: &[&str]| -> Vec<u64> {
        let mut all = vec!["rollout", "list", "--output", "json"];
        all.extend_from_slice(args);
        json(&rollgate(&d, &all))
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(ids(&[]), [3, 2, 1], "newest first");
    assert_eq!(ids(&["--service", "web"]), [3, 1]);
    assert_eq!(ids(&["--status", "rolled_back"]), [2]);
    assert_eq!(ids(&["--status", "held"]), [3]);
    assert_eq!(ids(&["--status", "unfinished"]), [3]);
    assert_eq!(ids(&["--status", "succeeded", "--service", "web"]), [1]);
    assert_eq!(ids(&["--since", "1h"]), [3, 2, 1]);
    assert_eq!(ids(&["--limit", "1"]), [3]);
    let bad = rollgate(&d, &["rollout", "list", "--status", "done"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        stderr(&bad).contains("known: succeeded"),
        "{}",
        stderr(&bad)
    );
    let text = rollgate(&d, &["rollout", "list"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let head = text.lines().next().unwrap();
    assert!(head.starts_with("ID  SERVICE  VERSION  STATUS"), "{text}");
    assert!(text.contains("held"), "{text}");
}

#[test]
fn status_watch_follows_a_rollout_to_its_end_and_survives_head_1() {
    let d = dir(3);
    let slow = "sleep 0.2; echo {version} > srv/{target}/current";
    let p = write(
        &d,
        "plan.toml",
        &plan(3, slow, "kind = \"rolling\"\nmax_unavailable = 1", ""),
    );
    let mut run = rollgate_cmd(&d, &["rollout", "run", &p])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the rollout exists, then follow it.
    let start = Instant::now();
    while rollgate(&d, &["rollout", "status", "1"]).status.code() != Some(0) {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    let piped = bash(
        &d,
        "\"$RG\" rollout status 1 --watch | head -1; echo \"rc=${PIPESTATUS[0]}\"",
    );
    assert!(
        piped.contains("rollout 1: ") && piped.ends_with("rc=0\n"),
        "{piped}"
    );
    let watched = rollgate(&d, &["rollout", "status", "1", "--watch"]);
    assert_eq!(watched.status.code(), Some(0), "{}", stderr(&watched));
    assert!(run.wait().unwrap().success());
    let text = String::from_utf8_lossy(&watched.stdout).into_owned();
    assert!(
        text.lines()
            .last()
            .unwrap()
            .contains("succeeded phase 3/3, 3/3 on v2"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.windows(2) {
        assert_ne!(
            pair[0].split_once(' ').unwrap().1,
            pair[1].split_once(' ').unwrap().1,
            "one line per change"
        );
    }
}

#[test]
fn rollback_to_a_version_the_service_ran_and_retry_after_a_rollback() {
    let d = dir(3);
    write(
        &d,
        "gate.sh",
        "#!/bin/sh\n[ -e fail ] && { echo 'p99 over'; exit 1; }\nexit 0\n",
    );
    let gated = "\n[gate]\nkind = \"command\"\ncommand = \"sh gate.sh\"\n";
    let p = write(
        &d,
        "plan.toml",
        &plan(3, DEPLOY, "kind = \"all-at-once\"", gated),
    );
    std::fs::write(d.path.join("fail"), "").unwrap();
    let out = rollgate(&d, &["rollout", "run", &p, "--actor", "alice"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(versions(&d, 3), ["v1"; 3]);
    // The cause is fixed: retry the same request, as bob.
    std::fs::remove_file(d.path.join("fail")).unwrap();
    let out = rollgate(
        &d,
        &[
            "rollout", "retry", "1", "--actor", "bob", "--output", "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = json(&out);
    assert_eq!(
        (s["id"].as_u64(), s["status"].as_str()),
        (Some(2), Some("succeeded"))
    );
    assert_eq!(s["requested_by"], "bob");
    assert_eq!(versions(&d, 3), ["v2"; 3]);
    let again = rollgate(&d, &["rollout", "retry", "2", "--actor", "bob"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("succeeded; there is nothing to retry"),
        "{}",
        stderr(&again)
    );
    // Undo to a chosen version: v1, which the plan declared as `previous`.
    let out = rollgate(
        &d,
        &[
            "rollback",
            "--service",
            "web",
            "--to",
            "v1",
            "--actor",
            "oncall",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["artifact"]["version"], "v1");
    assert_eq!(versions(&d, 3), ["v1"; 3]);
    let out = rollgate(
        &d,
        &[
            "rollback",
            "--service",
            "web",
            "--to",
            "v9",
            "--actor",
            "oncall",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("never ran version \"v9\" (known: v1, v2)"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_failing_precheck_refuses_with_exit_2_its_output_and_records_only_the_refusal() {
    let d = dir(3);
    let check = "\n[[precheck]]\nname = \"coverage\"\ncommand = \"echo 'coverage 72% is below 80%'; exit 1\"\n";
    let p = write(
        &d,
        "plan.toml",
        &plan(3, DEPLOY, "kind = \"all-at-once\"", check),
    );
    let out = rollgate(&d, &["rollout", "run", &p, "--actor", "ci"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "precheck coverage refused it before anything changed: coverage 72% is below 80%"
        ),
        "{}",
        stderr(&out)
    );
    assert_eq!(versions(&d, 3), ["v1"; 3], "nothing changed");
    let s = json(&rollgate(
        &d,
        &["rollout", "status", "1", "--output", "json"],
    ));
    assert_eq!(s["status"], "refused");
    assert_eq!(
        s["reasons"][0],
        "precheck coverage refused: coverage 72% is below 80%"
    );
    let rows = json(&rollgate(&d, &["rollout", "history", "--output", "json"]));
    let actions: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["requested", "refused", "finished"],
        "only the refusal is recorded"
    );
    // A passing precheck lets it start.
    let ok = "\n[[precheck]]\ncommand = \"test {version} = v2\"\n";
    let p = write(
        &d,
        "plan.toml",
        &plan(3, DEPLOY, "kind = \"all-at-once\"", ok),
    );
    let out = rollgate(&d, &["rollout", "run", &p, "--actor", "ci"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(versions(&d, 3), ["v2"; 3]);
}

#[test]
fn the_sbom_is_shown_in_status_and_history() {
    let d = dir(2);
    let p = write(
        &d,
        "plan.toml",
        &plan(2, DEPLOY, "kind = \"all-at-once\"", "").replace(
            &format!("digest = \"{V2}\" }}"),
            &format!("digest = \"{V2}\", sbom = \"https://example.com/web/v2.spdx.json\" }}"),
        ),
    );
    let out = rollgate(&d, &["rollout", "run", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("sbom: https://example.com/web/v2.spdx.json"),
        "{text}"
    );
    let s = json(&rollgate(
        &d,
        &["rollout", "status", "1", "--output", "json"],
    ));
    assert_eq!(s["sbom"], "https://example.com/web/v2.spdx.json");
    let rows = json(&rollgate(&d, &["rollout", "history", "--output", "json"]));
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["sbom"] == "https://example.com/web/v2.spdx.json"),
        "{rows}"
    );
    let listed = json(&rollgate(&d, &["rollout", "list", "--output", "json"]));
    assert_eq!(listed[0]["sbom"], "https://example.com/web/v2.spdx.json");
}

#[test]
fn abort_of_a_driven_rollout_follows_it_to_the_end() {
    let d = dir(4);
    let p = write(
        &d,
        "plan.toml",
        &plan(
            4,
            DEPLOY,
            "kind = \"canary\"\nsteps = [25, 100]\nbake = \"30s\"",
            "",
        ),
    );
    let mut run = rollgate_cmd(&d, &["rollout", "run", &p])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        let s = rollgate(&d, &["rollout", "status", "1", "--output", "json"]);
        if s.status.code() == Some(0) && json(&s)["stage"] == "baking" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never baked");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = rollgate(&d, &["rollout", "abort", "1", "--actor", "oncall"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("drives it and acts within a second; following it"),
        "{said}"
    );
    assert!(said.lines().last().unwrap().contains("aborted"), "{said}");
    assert_eq!(run.wait().unwrap().code(), Some(1));
    assert_eq!(versions(&d, 4), ["v1"; 4]);
}

#[test]
fn a_rolling_rollout_waits_while_a_target_is_down_rather_than_take_more_out() {
    let d = dir(3);
    let p = write(
        &d,
        "plan.toml",
        &plan(3, DEPLOY, "kind = \"rolling\"\nmin_healthy = 2", "").replace(
            "test -s srv/{target}/current",
            "test -s srv/{target}/current && test ! -e srv/{target}/down",
        ),
    );
    std::fs::write(d.path.join("srv/web-3/down"), "").unwrap();
    let mut run = rollgate_cmd(&d, &["rollout", "run", &p])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        versions(&d, 3),
        ["v1"; 3],
        "web-3 down: nothing else taken out"
    );
    assert!(run.try_wait().unwrap().is_none(), "the phase waits");
    std::fs::remove_file(d.path.join("srv/web-3/down")).unwrap();
    assert_eq!(run.wait().unwrap().code(), Some(0));
    assert_eq!(versions(&d, 3), ["v2"; 3]);
}

#[test]
fn rollback_after_a_one_way_first_install_says_why_and_what_to_run() {
    let d = dir(2);
    for i in 1..=2 {
        std::fs::write(d.path.join(format!("srv/web-{i}/current")), "").unwrap();
    }
    let p = write(
        &d,
        "plan.toml",
        &plan(2, DEPLOY, "kind = \"all-at-once\"", ""),
    );
    let refused = rollgate(&d, &["rollout", "run", &p]);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "fresh targets: {}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("runs nothing"),
        "{}",
        stderr(&refused)
    );
    let out = rollgate(&d, &["rollout", "run", &p, "--no-rollback-ok"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let back = rollgate(&d, &["rollback", "--service", "web"]);
    assert_eq!(back.status.code(), Some(2));
    let said = stderr(&back);
    assert!(
        said.contains("nothing known for web-1, web-2") && said.contains("--to VERSION"),
        "{said}"
    );
}

#[test]
fn help_texts_say_what_the_options_do() {
    let d = dir(0);
    let parity = rollgate(&d, &["drift", "parity", "--help"]);
    let text = String::from_utf8_lossy(&parity.stdout).into_owned();
    assert!(text.contains("merged onto A (not B)"), "{text}");
    assert!(text.contains("[possible values: text, json]"), "{text}");
    let run = rollgate(&d, &["rollout", "run", "--help"]);
    let text = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(!text.contains("see the README"), "{text}");
    assert!(
        text.contains("README section \"Plan file\"")
            && text.contains("rollgate rollout run v1.toml"),
        "{text}"
    );
    let rollout = rollgate(&d, &["rollout", "--help"]);
    let text = String::from_utf8_lossy(&rollout.stdout).into_owned();
    assert!(text.contains("130/143 stopped by SIGINT/SIGTERM"), "{text}");
}
