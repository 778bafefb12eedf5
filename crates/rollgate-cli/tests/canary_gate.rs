//! `[gate] kind = "canary"` end to end: the real `rollgate` binary rolls a
//! small HTTP service (tests/support/svc.py, several processes on loopback
//! ports, deployed by a command deployer) and the canary judge decides on
//! the Prometheus histograms and counters it scrapes from them.

mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use support::{ANALYSIS, Fleet, GATE_METRICS, Prometheus, SCRAPE, V1, digest, explain, fleet};

/// `source` is the gate's source key and table; empty: scraping.
fn plan(f: &Fleet, version: &str, source: &str) -> String {
    let source = if source.is_empty() { SCRAPE } else { source };
    let svc = support::svc();
    let svc = svc.display();
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
{source}
{GATE_METRICS}"#,
        d = digest(version),
        targets = f.targets(),
    )
}

const RUN: [&str; 7] = [
    "rollout",
    "run",
    "plan.toml",
    "--actor",
    "ci",
    "--output",
    "json",
];

fn rollout(f: &Fleet, plan_text: &str) -> (Output, serde_json::Value) {
    std::fs::write(f.path.join("plan.toml"), plan_text).expect("plan");
    let out = support::rollgate(f, &RUN);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, json)
}

fn reasons(json: &serde_json::Value) -> String {
    json["reasons"].to_string() + &json["last_decision"].to_string()
}

#[test]
fn a_good_version_is_promoted_on_scraped_metrics() {
    let f = fleet(3);
    let (out, json) = rollout(&f, &plan(&f, "v2", ""));
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(json["outcome"], "succeeded", "{json}");
    assert_eq!(f.versions(), ["v2", "v2", "v2"]);
    // The last phase was judged against the baseline recorded before it.
    let r = reasons(&json);
    assert!(
        r.contains("over the window judged before this phase"),
        "{r}"
    );
}

#[test]
fn a_latency_regression_on_one_route_is_rolled_back_naming_the_metric() {
    let f = fleet(3);
    let (out, json) = rollout(&f, &plan(&f, "v2-slow", ""));
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert_eq!(json["outcome"], "rolled_back", "{json}");
    let r = reasons(&json);
    // The metric, the cohort values and the bound.
    assert!(r.contains("metric \\\"latency_ms\\\": canary p50"), "{r}");
    assert!(r.contains("(bound +300% = "), "{r}");
    assert!(!r.contains("metric \\\"errors\\\": canary ratio"), "{r}");
    assert_eq!(f.versions(), ["v1", "v1", "v1"]);
}

#[test]
fn an_error_regression_is_rolled_back_naming_the_metric() {
    let f = fleet(3);
    let (out, json) = rollout(&f, &plan(&f, "v2-errors", ""));
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let r = reasons(&json);
    assert!(r.contains("metric \\\"errors\\\": canary ratio"), "{r}");
    assert!(r.contains("> bound 0.05"), "{r}");
    assert!(r.contains("latency_ms: pass"), "{r}");
    assert_eq!(f.versions(), ["v1", "v1", "v1"]);
}

#[test]
fn an_endpoint_that_is_down_never_promotes() {
    let f = fleet(3);
    let (out, json) = rollout(&f, &plan(&f, "v2-nometrics", ""));
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    assert_eq!(json["status"], "held", "{json}");
    let r = reasons(&json);
    assert!(r.contains("has no data"), "{r}");
    assert!(r.contains("503"), "{r}");
    // Only the first step's targets (34% of 3: two) ever ran the new version.
    let v = f.versions();
    assert_eq!(
        v.iter().filter(|x| *x == "v2-nometrics").count(),
        2,
        "{v:?}"
    );
    assert_ne!(json["last_decision"]["decision"], "promote", "{json}");
}

/// Runs `plan_text`, kills the canary hard 1.5 s into its bake and starts
/// it again; the rollout's output.
fn rollout_killing_the_canary_mid_bake(f: &Fleet, plan_text: &str, version: &str) -> Output {
    std::fs::write(f.path.join("plan.toml"), plan_text).expect("plan");
    let child = support::rollgate_cmd(f, &RUN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rollgate runs");
    let start = Instant::now();
    let canary = loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no canary came up"
        );
        if let Some(i) = (1..=f.addrs.len()).find(|i| {
            std::fs::read_to_string(f.path.join(format!("run/dns-{i}.version")))
                .is_ok_and(|v| v.trim() == version)
        }) {
            break i;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(1500));
    f.kill_9(canary);
    std::thread::sleep(Duration::from_millis(300));
    f.deploy(canary, version);
    child.wait_with_output().expect("rollgate ends")
}

#[test]
fn a_canary_killed_and_restarted_mid_bake_gives_no_false_verdict() {
    let f = fleet(3);
    let out = rollout_killing_the_canary_mid_bake(&f, &plan(&f, "v2", ""), "v2");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    // A good version restarted is not rolled back: promoted, or held when
    // the judge could not decide, never a rollback.
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "{}",
        explain(&out)
    );
    assert_ne!(json["outcome"], "rolled_back", "{json}");
    // And the restart does not hide a regression: its counters start again
    // from zero, they are not read as negative (or no) errors.
    let f = fleet(3);
    let out = rollout_killing_the_canary_mid_bake(&f, &plan(&f, "v2-errors", ""), "v2-errors");
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        reasons(&json).contains("metric \\\"errors\\\": canary ratio"),
        "{json}"
    );
    assert_eq!(f.versions(), ["v1", "v1", "v1"]);
}

#[test]
fn a_missing_analysis_file_or_a_metric_on_one_side_exits_2_naming_it() {
    let mut f = fleet(0);
    f.addrs = vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()];
    let text = plan(&f, "v2", "");
    // A metric the analysis file judges but the plan does not say how to read.
    std::fs::write(
        f.path.join("analysis.toml"),
        format!(
            "{ANALYSIS}\n[[metrics]]\nname = \"cpu\"\nkind = \"latency\"\nbad = \"increase\"\n"
        ),
    )
    .expect("analysis");
    let (out, _) = rollout(&f, &text);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("metric \"cpu\" of analysis file") && err.contains("analysis.toml"),
        "{err}"
    );
    // A metric the plan maps but the analysis file does not judge.
    std::fs::write(f.path.join("analysis.toml"), ANALYSIS).expect("analysis");
    let (out, _) = rollout(
        &f,
        &format!("{text}\n[gate.metrics.cpu]\nhistogram = \"cpu_seconds\"\n"),
    );
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plan.toml:") && err.contains("metric \"cpu\" is not in analysis file"),
        "{err}"
    );
    // No analysis file at all.
    std::fs::remove_file(f.path.join("analysis.toml")).expect("rm");
    let (out, _) = rollout(&f, &text);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plan.toml:")
            && err.contains("analysis file")
            && err.contains("cannot be read"),
        "{err}"
    );
}

/// `rollgate analyze --config A.toml --plan PLAN.toml --baseline .. --canary ..`
/// judges two live cohorts through the plan's gate source, without a
/// rollout (dns-1 and dns-2 on v1, dns-3 on the version under test).
fn shadow(f: &Fleet, extra: &[&str]) -> Output {
    shadow_judged_by(f, "analysis.toml", extra)
}

fn shadow_judged_by(f: &Fleet, config: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "analyze",
        "--config",
        config,
        "--plan",
        "plan.toml",
        "--baseline",
        "dns-1,dns-2",
        "--canary",
        "dns-3",
    ];
    args.extend(extra);
    support::rollgate(f, &args)
}

#[test]
fn shadow_analysis_judges_live_cohorts_by_scraping_without_a_rollout() {
    let f = fleet(3);
    std::fs::write(f.path.join("plan.toml"), plan(&f, "v2", "")).expect("plan");
    f.deploy(3, "v2");
    let out = shadow(&f, &["--lookback", "3s"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("verdict: promote"), "{table}");
    assert!(
        table.contains("latency_ms") && table.contains("errors"),
        "{table}"
    );
    assert!(
        support::stderr(&out).contains("scraping baseline dns-1,dns-2 and canary dns-3 for 3s"),
        "{}",
        explain(&out)
    );
    // A latency regression on the canary: exit 1, naming the metric.
    f.deploy(3, "v2-slow");
    let out = shadow(&f, &["--lookback", "3s", "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["verdict"], "rollback", "{json}");
    assert_eq!(json["metrics"][0]["name"], "latency_ms", "{json}");
    assert_eq!(json["metrics"][0]["failed"], true, "{json}");
    // No rollout was recorded, nothing was deployed.
    assert!(!f.path.join("state.db").exists());
    assert_eq!(f.versions(), ["v1", "v1", "v2-slow"]);
}

#[test]
fn shadow_analysis_of_a_cohort_that_cannot_be_scraped_is_inconclusive_naming_it() {
    let f = fleet(3);
    std::fs::write(f.path.join("plan.toml"), plan(&f, "v2", "")).expect("plan");
    f.deploy(3, "v2-nometrics");
    let out = shadow(&f, &["--lookback", "2s"]);
    assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("verdict: inconclusive"), "{table}");
    assert!(
        table.contains("target dns-3 has no data") && table.contains("503"),
        "{table}"
    );
}

#[test]
fn shadow_analysis_logs_json_lines_and_serves_metrics_while_it_scrapes() {
    use std::io::{Read, Write};
    let f = fleet(3);
    std::fs::write(f.path.join("plan.toml"), plan(&f, "v2", "")).expect("plan");
    f.deploy(3, "v2");
    let port = support::free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = support::rollgate_cmd(
        &f,
        &[
            "analyze",
            "--config",
            "analysis.toml",
            "--plan",
            "plan.toml",
            "--baseline",
            "dns-1,dns-2",
            "--canary",
            "dns-3",
            "--lookback",
            "3s",
            "--log-format",
            "json",
            "--metrics-addr",
            &addr,
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("start rollgate analyze");
    // Served while it scrapes the cohorts for the lookback.
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let got = std::net::TcpStream::connect(&addr).ok().and_then(|mut c| {
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .ok()?;
            let mut text = String::new();
            c.read_to_string(&mut text).ok()?;
            Some(text)
        });
        if let Some(text) = got {
            break text;
        }
        assert!(Instant::now() < deadline, "/metrics never served on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("text/plain; version=0.0.4"), "{answer}");
    let out = child.wait_with_output().expect("analyze ran");
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("verdict: promote"),
        "{}",
        explain(&out)
    );
    let err = support::stderr(&out);
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.to_string().contains("scraping baseline dns-1,dns-2")),
        "{err}"
    );
    // A bad input is a JSON line too, with its exit code.
    let out = support::rollgate(
        &f,
        &[
            "analyze",
            "--config",
            "missing.toml",
            "--plan",
            "plan.toml",
            "--baseline",
            "dns-1",
            "--canary",
            "dns-3",
            "--log-format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let line: serde_json::Value = serde_json::from_str(support::stderr(&out).trim())
        .unwrap_or_else(|e| panic!("not one JSON line ({e}): {}", explain(&out)));
    assert!(line.to_string().contains("missing.toml"), "{line}");
}

#[test]
fn shadow_analysis_refuses_unknown_targets_other_gates_and_mismatched_metrics_with_exit_2() {
    let mut f = fleet(0);
    f.addrs = vec![
        "127.0.0.1:1".into(),
        "127.0.0.1:2".into(),
        "127.0.0.1:3".into(),
    ];
    let text = plan(&f, "v2", "");
    std::fs::write(f.path.join("plan.toml"), &text).expect("plan");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--canary", "dns-9"],
            "canary target \"dns-9\" is not a target of this plan (targets: dns-1, dns-2, dns-3)",
        ),
        (vec!["--canary", "dns-2"], "target \"dns-2\" is named twice"),
        (
            vec!["--lookback", "soon"],
            "invalid value 'soon' for '--lookback",
        ),
        (vec!["--data", "samples.json"], "cannot be used with"),
    ];
    for (extra, want) in cases {
        let out = shadow(&f, &extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", explain(&out));
        let err = support::stderr(&out);
        assert!(err.contains(want), "{extra:?}: want {want:?} in {err}");
    }
    // A metric judged by --config that the plan does not say how to read.
    std::fs::write(
        f.path.join("a.toml"),
        format!(
            "{ANALYSIS}\n[[metrics]]\nname = \"cpu\"\nkind = \"latency\"\nbad = \"increase\"\n"
        ),
    )
    .expect("config");
    let out = shadow_judged_by(&f, "a.toml", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = support::stderr(&out);
    assert!(
        err.contains("plan.toml:")
            && err
                .contains("metric \"cpu\" of analysis file a.toml has no [gate.metrics.cpu] table"),
        "{err}"
    );
    // --config is what judges: the plan's own analysis file is not needed.
    std::fs::rename(f.path.join("analysis.toml"), f.path.join("b.toml")).expect("mv");
    std::fs::write(
        f.path.join("a.toml"),
        "[[metrics]]\nname = \"errors\"\nkind = \"count\"\nbad = \"increase\"\n",
    )
    .expect("config");
    let out = shadow_judged_by(&f, "a.toml", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = support::stderr(&out);
    assert!(
        err.contains("metric \"latency_ms\" is not in analysis file a.toml"),
        "{err}"
    );
    // A plan whose gate is a command.
    std::fs::write(
        f.path.join("plan.toml"),
        text.split("[gate]").next().expect("head").to_string()
            + "[gate]\nkind = \"command\"\ncommand = \"true\"\n",
    )
    .expect("plan");
    let out = shadow_judged_by(&f, "b.toml", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = support::stderr(&out);
    assert!(
        err.contains("shadow analysis needs [gate] kind = \"canary\" (this plan's gate: command)"),
        "{err}"
    );
}

/// The same acceptance with `source = "prometheus"`: a real Prometheus
/// (Debian's, started by scripts/prometheus.sh) scrapes the processes every
/// second and rollgate asks it with PromQL written from the same mappings.
mod prometheus {
    use super::*;

    #[test]
    fn a_good_version_is_promoted() {
        let f = fleet(3);
        let p = Prometheus::start(&f);
        let (out, json) = rollout(&f, &plan(&f, "v2", &p.source()));
        assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
        assert_eq!(f.versions(), ["v2", "v2", "v2"]);
        assert!(reasons(&json).contains("over the window judged before this phase"));
    }

    #[test]
    fn latency_and_error_regressions_are_rolled_back_naming_the_metric() {
        let f = fleet(3);
        let p = Prometheus::start(&f);
        let (out, json) = rollout(&f, &plan(&f, "v2-slow", &p.source()));
        assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
        let r = reasons(&json);
        assert!(r.contains("metric \\\"latency_ms\\\": canary p50"), "{r}");
        assert_eq!(f.versions(), ["v1", "v1", "v1"]);
        let (out, json) = rollout(&f, &plan(&f, "v2-errors", &p.source()));
        assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
        let r = reasons(&json);
        assert!(r.contains("metric \\\"errors\\\": canary ratio"), "{r}");
        assert_eq!(f.versions(), ["v1", "v1", "v1"]);
    }

    #[test]
    fn an_endpoint_that_is_down_never_promotes() {
        let f = fleet(3);
        let p = Prometheus::start(&f);
        let (out, json) = rollout(&f, &plan(&f, "v2-nometrics", &p.source()));
        assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
        assert_eq!(json["status"], "held", "{json}");
        assert_ne!(json["last_decision"]["decision"], "promote", "{json}");
    }

    #[test]
    fn a_canary_killed_and_restarted_mid_bake_gives_no_false_verdict() {
        let f = fleet(3);
        let p = Prometheus::start(&f);
        let out = rollout_killing_the_canary_mid_bake(&f, &plan(&f, "v2", &p.source()), "v2");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert!(
            matches!(out.status.code(), Some(0) | Some(3)),
            "{}",
            explain(&out)
        );
        assert_ne!(json["outcome"], "rolled_back", "{json}");
        drop(p);
        let f = fleet(3);
        let p = Prometheus::start(&f);
        let out = rollout_killing_the_canary_mid_bake(
            &f,
            &plan(&f, "v2-errors", &p.source()),
            "v2-errors",
        );
        assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        assert!(
            reasons(&json).contains("metric \\\"errors\\\": canary ratio"),
            "{json}"
        );
        assert_eq!(f.versions(), ["v1", "v1", "v1"]);
    }

    #[test]
    fn shadow_analysis_asks_prometheus_about_the_last_lookback() {
        let f = fleet(3);
        f.deploy(3, "v2");
        let p = Prometheus::start(&f);
        std::fs::write(f.path.join("plan.toml"), plan(&f, "v2", &p.source())).expect("plan");
        let started = Instant::now();
        let out = shadow(&f, &["--lookback", "3s"]);
        assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("verdict: promote"));
        // Prometheus has the history: nothing to wait for.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        // An error regression, once Prometheus has 4 s of it.
        f.deploy(3, "v2-errors");
        std::thread::sleep(Duration::from_secs(4));
        p.wait_for_scrapes(3, 8);
        let out = shadow(&f, &["--lookback", "3s"]);
        assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
        let table = String::from_utf8_lossy(&out.stdout);
        assert!(
            table.contains("errors") && table.contains("ratio"),
            "{table}"
        );
    }
}
