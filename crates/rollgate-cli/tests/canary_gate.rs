//! `[gate] kind = "canary"` end to end: the real `rollgate` binary rolls a
//! small HTTP service (tests/support/svc.py, several processes on loopback
//! ports, deployed by a command deployer) and the canary judge decides on
//! the Prometheus histograms and counters it scrapes from them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const V1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

const ANALYSIS: &str = r#"
[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
critical = true
min_samples = 10
relative = { max_increase_pct = 300.0 }
statistical = { min_effect_pct = 300.0 }
distribution = { max_shifted_fraction = 0.5 }

[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
critical = true
threshold = { ratio_max = 0.05 }
"#;

fn svc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/svc.py")
}

/// A scratch directory with `n` service processes running v1; they are
/// stopped when it is dropped.
struct Fleet {
    _tmp: tempfile::TempDir,
    path: PathBuf,
    addrs: Vec<String>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new("python3")
            .arg(svc())
            .args(["stop", "--dir"])
            .arg(self.path.join("run"))
            .status();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn fleet(n: usize) -> Fleet {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().to_path_buf();
    std::fs::create_dir_all(path.join("run")).expect("run dir");
    let addrs: Vec<String> = (0..n)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let f = Fleet {
        _tmp: tmp,
        path,
        addrs,
    };
    for (i, a) in f.addrs.iter().enumerate() {
        deploy(&f, &format!("dns-{}", i + 1), a, "v1");
    }
    std::fs::write(f.path.join("analysis.toml"), ANALYSIS).expect("analysis");
    f
}

fn deploy(f: &Fleet, name: &str, addr: &str, version: &str) {
    let st = Command::new("python3")
        .arg(svc())
        .args(["deploy", "--dir"])
        .arg(f.path.join("run"))
        .args(["--name", name, "--addr", addr, "--version", version])
        .status()
        .expect("python3 runs the test service");
    assert!(st.success(), "deploying {version} on {name}");
}

fn digest(version: &str) -> String {
    let c = match version {
        "v2" => '2',
        "v2-slow" => '3',
        "v2-errors" => '4',
        _ => '5',
    };
    format!("sha256:{}", c.to_string().repeat(64))
}

const SCRAPE: &str =
    "source = \"scrape\"\n\n[gate.scrape]\nurl = \"http://{addr}/metrics\"\ninterval = \"500ms\"\n";

/// `source` is the gate's source key and table; empty: scraping.
fn plan(f: &Fleet, version: &str, source: &str) -> String {
    let source = if source.is_empty() { SCRAPE } else { source };
    let targets = f
        .addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{ name = \"dns-{}\", addr = \"{a}\" }}", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    let svc = svc();
    let svc = svc.display();
    format!(
        r#"service = "dns"
artifact = {{ version = "{version}", digest = "{d}" }}
previous = {{ version = "v1", digest = "{V1}" }}
targets = [{targets}]

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

[gate.metrics.latency_ms]
histogram = "http_request_duration_seconds"
scale = 1000
labels = {{ route = "/records" }}

[gate.metrics.errors]
events = {{ counter = "http_requests_total", labels = {{ code = "500" }} }}
trials = {{ counter = "http_requests_total" }}
"#,
        d = digest(version)
    )
}

fn rollout(f: &Fleet, plan_text: &str) -> (Output, serde_json::Value) {
    std::fs::write(f.path.join("plan.toml"), plan_text).expect("plan");
    let out = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "rollout",
            "run",
            "plan.toml",
            "--actor",
            "ci",
            "--output",
            "json",
        ])
        .current_dir(&f.path)
        .env("ROLLGATE_STATE", f.path.join("state.db"))
        .output()
        .expect("rollgate runs");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, json)
}

fn versions(f: &Fleet) -> Vec<String> {
    (1..=f.addrs.len())
        .map(|i| {
            std::fs::read_to_string(f.path.join(format!("run/dns-{i}.version")))
                .expect("version file")
                .trim()
                .to_string()
        })
        .collect()
}

fn explain(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
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
    assert_eq!(versions(&f), ["v2", "v2", "v2"]);
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
    assert_eq!(versions(&f), ["v1", "v1", "v1"]);
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
    assert_eq!(versions(&f), ["v1", "v1", "v1"]);
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
    let v = versions(&f);
    assert_eq!(
        v.iter().filter(|x| *x == "v2-nometrics").count(),
        2,
        "{v:?}"
    );
    assert_ne!(json["last_decision"]["decision"], "promote", "{json}");
}

#[test]
fn a_canary_killed_and_restarted_mid_bake_gives_no_false_verdict() {
    let f = fleet(3);
    std::fs::write(f.path.join("plan.toml"), plan(&f, "v2", "")).expect("plan");
    let child = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "rollout",
            "run",
            "plan.toml",
            "--actor",
            "ci",
            "--output",
            "json",
        ])
        .current_dir(&f.path)
        .env("ROLLGATE_STATE", f.path.join("state.db"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("rollgate runs");
    // Wait for the canary, then kill it hard mid-bake and start it again.
    let start = Instant::now();
    let canary = loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no canary came up"
        );
        if let Some(i) = (1..=3).find(|i| {
            std::fs::read_to_string(f.path.join(format!("run/dns-{i}.version")))
                .is_ok_and(|v| v.trim() == "v2")
        }) {
            break i;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(1500));
    let pid = std::fs::read_to_string(f.path.join(format!("run/dns-{canary}.pid")))
        .expect("pid")
        .trim()
        .to_string();
    assert!(
        Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill")
            .success()
    );
    std::thread::sleep(Duration::from_millis(300));
    deploy(&f, &format!("dns-{canary}"), &f.addrs[canary - 1], "v2");
    let out = child.wait_with_output().expect("rollgate ends");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    // A good version restarted is not rolled back: promoted, or held when
    // the judge could not decide, never a rollback.
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "{}",
        explain(&out)
    );
    assert_ne!(json["outcome"], "rolled_back", "{json}");
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

/// The same acceptance with `source = "prometheus"`: a real Prometheus
/// (Debian's, started by scripts/prometheus.sh) scrapes the processes every
/// second and rollgate asks it with PromQL written from the same mappings.
mod prometheus {
    use super::*;

    struct Server {
        dir: tempfile::TempDir,
        url: String,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = Command::new("bash")
                .arg(rollgate_test::script("prometheus.sh"))
                .arg("stop")
                .arg(self.dir.path())
                .status();
        }
    }

    fn server(f: &Fleet) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("bash")
            .arg(rollgate_test::script("prometheus.sh"))
            .arg("start")
            .arg(dir.path())
            .args(&f.addrs)
            .output()
            .expect("run scripts/prometheus.sh");
        assert!(out.status.success(), "{}", explain(&out));
        let url = std::fs::read_to_string(dir.path().join("prometheus.url"))
            .expect("prometheus.url")
            .trim()
            .to_string();
        // Two scrapes of every target before the rollout starts.
        std::thread::sleep(Duration::from_secs(3));
        Server { dir, url }
    }

    fn source(p: &Server) -> String {
        format!(
            "source = \"prometheus\"\n\n[gate.prometheus]\nurl = \"{}\"\ninstance_label = \"instance\"\n",
            p.url
        )
    }

    #[test]
    fn a_good_version_is_promoted() {
        let f = fleet(3);
        let p = server(&f);
        let (out, json) = rollout(&f, &plan(&f, "v2", &source(&p)));
        assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
        assert_eq!(versions(&f), ["v2", "v2", "v2"]);
        assert!(reasons(&json).contains("over the window judged before this phase"));
    }

    #[test]
    fn latency_and_error_regressions_are_rolled_back_naming_the_metric() {
        let f = fleet(3);
        let p = server(&f);
        let (out, json) = rollout(&f, &plan(&f, "v2-slow", &source(&p)));
        assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
        let r = reasons(&json);
        assert!(r.contains("metric \\\"latency_ms\\\": canary p50"), "{r}");
        assert_eq!(versions(&f), ["v1", "v1", "v1"]);
        let (out, json) = rollout(&f, &plan(&f, "v2-errors", &source(&p)));
        assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
        let r = reasons(&json);
        assert!(r.contains("metric \\\"errors\\\": canary ratio"), "{r}");
        assert_eq!(versions(&f), ["v1", "v1", "v1"]);
    }

    #[test]
    fn an_endpoint_that_is_down_never_promotes() {
        let f = fleet(3);
        let p = server(&f);
        let (out, json) = rollout(&f, &plan(&f, "v2-nometrics", &source(&p)));
        assert_eq!(out.status.code(), Some(3), "{}", explain(&out));
        assert_eq!(json["status"], "held", "{json}");
        assert_ne!(json["last_decision"]["decision"], "promote", "{json}");
    }
}
