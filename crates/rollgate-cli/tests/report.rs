//! `rollgate report`: the real binary writes the HTML report of real
//! rollouts (a canary-gated one on a fleet of the test service, a
//! command-gated one on file targets), headless Chromium (Debian's
//! `chromium`, installed by scripts/install-test-deps.sh) renders it with
//! JavaScript off and no console error, and a screenshot is kept as a CI
//! artifact: target/ci-artifacts/report.png.
//!
//! Without chromium the browser tests fail (they never skip), naming the
//! install script.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{Dir, GATE_METRICS, SCRAPE, V1, V2, digest, explain, fleet, rollgate};

/// Where CI collects artifacts: `target/ci-artifacts`.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("ci-artifacts");
    std::fs::create_dir_all(&dir).expect("target/ci-artifacts");
    dir
}

/// What headless Chromium made of a page: its console errors and warnings,
/// the DOM after rendering, the title.
struct Rendered {
    errors: Vec<String>,
    dom: String,
    title: String,
}

/// Renders `page` in headless Chromium (JavaScript off unless `js`) and
/// writes a screenshot to `screenshot`.
fn render(page: &Path, screenshot: &Path, js: bool) -> Rendered {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/headless.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(page)
        .arg("--screenshot")
        .arg(screenshot);
    if js {
        cmd.arg("--js");
    }
    let out = cmd.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "headless Chromium could not render {} (is Debian's chromium installed? \
         `bash scripts/install-test-deps.sh` installs it): {}",
        page.display(),
        explain(&out)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("headless.py JSON");
    Rendered {
        errors: v["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| e.as_str().unwrap_or_default().to_string())
            .collect(),
        dom: v["dom"].as_str().expect("dom").to_string(),
        title: v["title"].as_str().unwrap_or_default().to_string(),
    }
}

/// The DOM's text: tags dropped, entities of the report decoded.
fn text_of(dom: &str) -> String {
    let mut text = String::with_capacity(dom.len());
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    // Runs of white space as one space, as a reader sees them.
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_png(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.len() > 10_000 && b.starts_with(b"\x89PNG\r\n\x1a\n"))
}

/// A canary plan for the fleet: steps 34 % and 100 %, judged on scraped metrics.
fn canary_plan(f: &support::Fleet, version: &str) -> String {
    let svc = support::svc();
    format!(
        r#"service = "dns"
artifact = {{ version = "{version}", digest = "{d}" }}
previous = {{ version = "v1", digest = "{V1}" }}
{targets}

[deployer]
kind = "command"
deploy = "python3 {svc} deploy --dir run --name {{target}} --addr {{addr}} --version {{version}}"
current = "cat run/{{target}}.version"
ready = "python3 {svc} ready --addr {{addr}}"
timeout = "30s"

[readiness]
interval = "200ms"

[strategy]
kind = "canary"
steps = [34, 100]
bake = "4s"

[gate]
kind = "canary"
analysis = "analysis.toml"
lookback = "4s"
max_errors = 2
retry_after = "1s"
{SCRAPE}
{GATE_METRICS}"#,
        d = digest(version),
        svc = svc.display(),
        targets = f.targets(),
    )
}

#[test]
fn the_report_of_a_rolled_back_canary_renders_in_headless_chromium_without_console_errors() {
    let f = fleet(3);
    std::fs::write(f.path.join("plan.toml"), canary_plan(&f, "v2-errors")).expect("plan");
    let out = rollgate(
        &f,
        &[
            "rollout",
            "run",
            "plan.toml",
            "--actor",
            "ci <release@example>",
            "--output",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let id = status["id"].to_string();

    let page = f.path.join("report.html");
    let out = rollgate(&f, &["report", &id, "--out", "report.html"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("report.html"), "names the file: {said}");
    let html = std::fs::read_to_string(&page).expect("report written");
    assert!(!html.contains("<script"), "no script in the page");
    // The gate's evidence reached the page: a chart per judged metric.
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 2, "{html}");

    let shot = artifacts().join("report.png");
    let _ = std::fs::remove_file(&shot);
    let r = render(&page, &shot, false);
    assert!(r.errors.is_empty(), "console errors: {:?}", r.errors);
    assert_eq!(r.title, format!("Rollout {id} — dns v2-errors"));
    let text = text_of(&r.dom);
    for want in [
        // The metrics judged, in the charts and the reason table.
        "latency_ms — p99 per decision",
        "errors — event rate per decision",
        // The verdict and the reason naming the metric and its bound.
        "rolled_back",
        "Phase 1 (34%), ask 1: rollback",
        "metric \"errors\": canary ratio",
        "> bound 0.05",
        // Who did what.
        "ci <release@example>",
        "gate_decided",
        "target_restored",
    ] {
        assert!(text.contains(want), "{want:?} not rendered:\n{text}");
    }
    assert!(is_png(&shot), "screenshot {} written", shot.display());
}

#[test]
fn the_console_check_catches_a_missing_image_and_a_script_error() {
    let d = Dir::new();
    let shot = d.path.join("shot.png");
    let page = d.path.join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>broken</title></head>\
         <body><p>hello</p><img src=\"missing.png\" alt=\"\"></body></html>",
    )
    .expect("page");
    let r = render(&page, &shot, false);
    assert!(
        r.errors.iter().any(|e| e.contains("missing.png")),
        "a missing image is a console error: {:?}",
        r.errors
    );
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>broken</title></head>\
         <body><p>hello</p><script>no_such_function();</script></body></html>",
    )
    .expect("page");
    let r = render(&page, &shot, true);
    assert!(
        r.errors.iter().any(|e| e.contains("no_such_function")),
        "a script error is a console error: {:?}",
        r.errors
    );
    // And a clean page has none.
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"icon\" href=\"data:,\">\
         <title>fine</title></head><body><p>hello</p></body></html>",
    )
    .expect("page");
    let r = render(&page, &shot, true);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

/// A file-target rollout gated by a command (no canary evidence) whose
/// gate speaks markup; returns the directory.
fn command_gated_rollout() -> Dir {
    let d = Dir::with_web_targets(2);
    std::fs::write(
        d.path.join("gate.sh"),
        "#!/bin/sh\necho '<b>p99</b> fine & \"quoted\"'\nexit 0\n",
    )
    .expect("gate");
    std::fs::write(
        d.path.join("plan.toml"),
        format!(
            r#"service = "web"
artifact = {{ version = "v2", digest = "{V2}" }}
previous = {{ version = "v1", digest = "{V1}" }}
targets = ["web-1", "web-2"]

[deployer]
kind = "command"
deploy = "echo {{version}} > srv/{{target}}/current"
current = "cat srv/{{target}}/current"
ready = "test -s srv/{{target}}/current"
timeout = "30s"

[strategy]
kind = "canary"
steps = [50, 100]

[gate]
kind = "command"
command = "sh gate.sh"
"#
        ),
    )
    .expect("plan");
    let out = rollgate(&d, &["rollout", "run", "plan.toml", "--actor", "alice"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    d
}

#[test]
fn a_command_gated_rollout_reports_its_reasons_escaped_without_charts() {
    let d = command_gated_rollout();
    let out = rollgate(&d, &["report", "1", "--out", "r.html", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let said: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(said["rollout"], 1);
    let html = std::fs::read_to_string(d.path.join("r.html")).expect("report");
    assert_eq!(said["bytes"], html.len());
    assert!(html.contains("No metric evidence was recorded"));
    assert!(html.contains("&lt;b&gt;p99&lt;/b&gt; fine &amp; &quot;quoted&quot;"));
    assert!(!html.contains("<b>p99</b>"));
    assert_eq!(html.matches(">promote</a>").count(), 2, "{html}");
    assert!(html.contains("<span class=\"v promote\">succeeded</span>"));
}

#[test]
fn bad_ids_paths_and_stores_get_their_exit_codes() {
    let d = command_gated_rollout();
    let code = |args: &[&str]| -> (Option<i32>, String) {
        let out: Output = rollgate(&d, args);
        (out.status.code(), support::stderr(&out))
    };
    let (c, e) = code(&["report", "99", "--out", "r.html"]);
    assert_eq!(c, Some(2), "{e}");
    assert!(e.contains("rollout 99 not found"), "{e}");
    let (c, e) = code(&["report", "one", "--out", "r.html"]);
    assert_eq!(c, Some(2), "{e}");
    let (c, e) = code(&["report", "1", "--out", "no/such/dir/r.html"]);
    assert_eq!(c, Some(2), "{e}");
    assert!(e.contains("cannot write --out no/such/dir/r.html"), "{e}");
    let (c, e) = code(&["report", "1", "--out", "srv"]);
    assert_eq!(c, Some(2), "{e}");
    assert!(e.contains("is a directory"), "{e}");
    let (c, e) = code(&["report", "1", "--out", "r.html", "--state", "missing.db"]);
    assert_eq!(c, Some(4), "{e}");
    assert!(e.contains("missing.db does not exist"), "{e}");
    assert!(!d.path.join("missing.db").exists(), "no stray state file");
    // Nothing half-written was left behind by the failures.
    let left: Vec<_> = std::fs::read_dir(&d.path)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("r.html"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
