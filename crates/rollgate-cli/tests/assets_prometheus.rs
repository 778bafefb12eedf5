//! The generated assets against real data: `rollgate telemetry assets`
//! writes the dashboard and alert rules; a real Prometheus (Debian's,
//! started by scripts/prometheus.sh) scrapes a rollout's and a drift
//! watch's `--metrics-addr` and an instrumented service (the axum example of
//! rollgate-telemetry, RED layer, in this process). Every dashboard panel
//! query, annotation and variable, and every alert expression, read from the
//! generated files (not listed here), must return data through the HTTP API
//! (`promtool query instant`), and promtool must pass them all.
//!
//! The scenario makes every alert's condition true, so an alert expression
//! that returns nothing is a wrong name or label, not a quiet system: the
//! service is slow (p99 above the 100 ms threshold the assets are generated
//! with) and fails one request in ten; a label with unbounded values (the
//! order id) overflows the cardinality guard; the rollout's gate fails at
//! the second phase until the rollout rolls back; the drift watch's live
//! file is missing, then differs. The traffic-dip alert compares with an hour
//! ago: that hour of heavier traffic is backfilled into Prometheus' data
//! directory with `promtool tsdb create-blocks-from openmetrics` before it
//! starts.
//!
//! The controller's panels need the CLI's other long-running processes:
//! `rollgate serve` (scraped on its own `/metrics`; Prometheus' scrapes are
//! its API traffic), `rollgate analyze --metrics-addr` (one verdict), and
//! the rollout's notification destination, a loopback port nothing listens
//! on, so deliveries fail and the notification alert fires.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

#[path = "../../rollgate-telemetry/examples/axum_service.rs"]
#[allow(dead_code, unreachable_pub)]
mod axum_service;

const V1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const V2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// `N` distinct free ports (all bound at once, then released).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("addr").port())
}

fn rollgate(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rollgate"));
    c.current_dir(dir)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("ROLLGATE_STATE")
        .env_remove("RUST_LOG");
    c
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool must be installed (scripts/install-test-deps.sh)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct Proc(Option<Child>);

impl Proc {
    /// SIGTERM, then its exit code.
    /// SIGTERM, then the exit code within 30 s (far under the 5 min
    /// lingers here): a process still running then fails the test, so an
    /// ignored SIGTERM cannot pass as an exit after the linger ran out.
    fn terminate(&mut self) -> Option<i32> {
        let mut child = self.0.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(30) {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("pid {} still running 30 s after SIGTERM", child.id());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A throwaway Prometheus on a prepared data directory.
struct Prometheus {
    workdir: PathBuf,
    url: String,
}

impl Prometheus {
    fn start(workdir: &Path, targets: &[String]) -> Self {
        let out = Command::new("bash")
            .arg(rollgate_test::script("prometheus.sh"))
            .arg("start")
            .arg(workdir)
            .args(targets)
            .output()
            .expect("run scripts/prometheus.sh");
        assert!(
            out.status.success(),
            "scripts/prometheus.sh start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let url = std::fs::read_to_string(workdir.join("prometheus.url"))
            .expect("prometheus.url")
            .trim()
            .to_owned();
        Self {
            workdir: workdir.to_path_buf(),
            url,
        }
    }

    /// An instant query through the HTTP API, by promtool: the result
    /// vector, or the error text.
    fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let out = Command::new("promtool")
            .args(["query", "instant", "-o", "json", &self.url, promql])
            .output()
            .map_err(|e| format!("promtool: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "promtool query failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let v: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&out.stdout)))?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Polls (up to 90 s) until `promql` returns a sample.
    fn wait_for(&self, promql: &str, why: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match self.query(promql) {
                Ok(r) if !r.is_empty() => return,
                other => assert!(
                    Instant::now() < deadline,
                    "{why}: no result for {promql}: {other:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(rollgate_test::script("prometheus.sh"))
            .arg("stop")
            .arg(&self.workdir)
            .status();
    }
}

/// An hour and more of heavier traffic of the service (1000 requests/s),
/// ending 50 minutes ago, as blocks in `data`: what the traffic-dip alert
/// compares the present with.
fn backfill(dir: &Path, data: &Path) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (from, to) = (now - 2 * 3600, now - 50 * 60);
    let mut om = String::from("# TYPE http_server_requests counter\n");
    let mut t = from;
    let mut count = 0u64;
    while t <= to {
        om.push_str(&format!(
            "http_server_requests_total{{service=\"{}\",cohort=\"baseline\",job=\"backfill\",instance=\"backfill\"}} {count} {t}\n",
            axum_service::SERVICE
        ));
        t += 15;
        count += 15_000;
    }
    om.push_str("# EOF\n");
    let file = dir.join("backfill.om");
    std::fs::write(&file, om).expect("write backfill");
    std::fs::create_dir_all(data).expect("data dir");
    let (ok, report) = promtool(
        &[
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            &file.to_string_lossy(),
            &data.to_string_lossy(),
        ],
        dir,
    );
    assert!(ok, "promtool tsdb create-blocks-from openmetrics: {report}");
}

/// The plan: two file targets on v1; the gate passes phase 0 and fails
/// (exit 7, an error) at phase 1 until the rollout rolls back. The first
/// deploy waits for the file `go`, so the test can see the series at zero
/// in Prometheus before anything is counted. Its notifications go to
/// `dead_port`, where nothing listens.
fn write_plan(dir: &Path, dead_port: u16) {
    for t in ["web-1", "web-2"] {
        std::fs::create_dir_all(dir.join("srv").join(t)).expect("mkdir");
        std::fs::write(dir.join("srv").join(t).join("current"), "v1\n").expect("v1");
    }
    let plan = format!(
        r#"service = "web"
artifact = {{ version = "v2", digest = "{V2}" }}
previous = {{ version = "v1", digest = "{V1}" }}
targets = ["web-1", "web-2"]

[deployer]
kind = "command"
deploy = "while [ ! -f go ]; do sleep 0.1; done; mkdir -p srv/{{target}} && echo {{version}} > srv/{{target}}/current"
current = "cat srv/{{target}}/current 2>/dev/null || true"
ready = "true"
timeout = "5m"

[strategy]
kind = "canary"
steps = [50, 100]
bake = "1s"

[gate]
kind = "command"
command = "if [ {{phase}} = 0 ]; then echo healthy; else echo metrics unreachable; exit 7; fi"
max_errors = 3
retry_after = "1s"

[[notify]]
name = "ops"
url = "http://127.0.0.1:{dead_port}/hook"
format = "slack"
events = ["started", "rolled_back"]

# Two quick attempts: the rollout process ends once its outbox is settled.
[notify_retry]
attempts = 2
backoff = "500ms"
"#
    );
    std::fs::write(dir.join("plan.toml"), plan).expect("plan");
}

/// The service and its client, on a thread of their own until `stop`.
fn start_service(stop: Arc<AtomicBool>) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let guard = rollgate_telemetry::init(axum_service::SERVICE)
        .version("0.1.0")
        .cohort("canary")
        // The order id below is a label with unbounded values.
        .max_series_per_metric(20)
        .log_filter_env(None)
        .log_writer(std::io::sink())
        .install()
        .expect("the only telemetry install in this test binary");
    let metrics = guard.metrics().clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _guard = guard;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let addr = axum_service::spawn(metrics, "127.0.0.1:0".parse().expect("addr"))
                .await
                .expect("serve");
            tx.send(addr).expect("send addr");
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                axum_service::drive(addr, sent, 10)
                    .await
                    .expect("every order answered as expected");
                for id in sent..sent + 10 {
                    metrics::counter!("orders_by_id_total", "order" => id.to_string()).increment(1);
                }
                sent += 10;
            }
        });
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the service starts");
    (addr, handle)
}

/// `label_values(METRIC, LABEL)` (Grafana's) as PromQL with the same data.
fn label_values(q: &str) -> Option<String> {
    let inner = q.strip_prefix("label_values(")?.strip_suffix(')')?;
    let (metric, label) = inner.rsplit_once(',')?;
    Some(format!("group by ({}) ({})", label.trim(), metric.trim()))
}

/// Grafana's variables, as a user picking the service would set them.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$service", axum_service::SERVICE)
        .replace("$cohort", ".*")
}

/// Every query of the generated files: (where, PromQL sent).
fn queries(dashboard: &Value, rules: &str) -> (Vec<(String, String)>, usize, usize) {
    let mut out = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        let title = panel["title"].as_str().expect("panel title");
        let targets = panel["targets"].as_array().expect("panel targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            out.push((format!("panel {title:?}"), substitute(expr)));
        }
    }
    for a in dashboard["annotations"]["list"]
        .as_array()
        .expect("annotations")
    {
        let name = a["name"].as_str().expect("annotation name");
        let expr = a["expr"].as_str().expect("annotation expr");
        out.push((format!("annotation {name:?}"), substitute(expr)));
    }
    for v in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().expect("variable name");
        let q = v["query"]["query"].as_str().expect("variable query");
        let promql = label_values(q).unwrap_or_else(|| panic!("variable {name}: {q}"));
        out.push((format!("variable {name:?}"), substitute(&promql)));
    }
    let mut alerts = 0;
    let mut alert = String::new();
    for line in rules.lines() {
        let line = line.trim();
        if let Some(a) = line.strip_prefix("- alert: ") {
            alert = serde_json::from_str(a).expect("alert name is a JSON string");
        } else if let Some(e) = line.strip_prefix("expr: ") {
            let expr: String = serde_json::from_str(e).expect("expr is a JSON string");
            out.push((format!("alert {alert}"), expr));
            alerts += 1;
        }
    }
    (out, panels.len(), alerts)
}

#[test]
fn every_dashboard_query_and_alert_returns_data_from_a_real_prometheus_scraping_rollgate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dir = dir.path();

    // The assets, as a user generates them (p99 threshold 100 ms).
    let assets = dir.join("assets");
    let out = rollgate(dir)
        .args(["telemetry", "assets", "--out"])
        .arg(&assets)
        .args(["--p99-ms", "100"])
        .output()
        .expect("rollgate telemetry assets");
    assert!(out.status.success(), "{out:?}");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(assets.join("rollgate-dashboard.json")).expect("dashboard"),
    )
    .expect("dashboard JSON");
    let rules = std::fs::read_to_string(assets.join("rollgate-alerts.yml")).expect("rules");
    let (queries, panels, alerts) = queries(&dashboard, &rules);
    let (ok, report) = promtool(&["check", "rules", "rollgate-alerts.yml"], &assets);
    assert!(ok, "promtool check rules:\n{report}");
    assert!(
        report.contains(&format!("SUCCESS: {alerts} rules found")),
        "every alert read from the file ({alerts}): {report}"
    );
    // The dashboard's queries, as sent below, parse for promtool too.
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, q)) in queries.iter().enumerate() {
        let quoted = serde_json::to_string(q).expect("string");
        file.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {quoted}\n"
        ));
    }
    std::fs::write(dir.join("dashboard-queries.yml"), &file).expect("write");
    let (ok, report) = promtool(&["check", "rules", "dashboard-queries.yml"], dir);
    assert!(ok, "a dashboard query does not parse:\n{report}\n{file}");

    // The service under traffic, the backfilled hour, Prometheus.
    let stop = Arc::new(AtomicBool::new(false));
    let (service, traffic) = start_service(Arc::clone(&stop));
    let prom_dir = dir.join("prometheus");
    backfill(dir, &prom_dir.join("data"));
    let [
        rollout_port,
        drift_port,
        serve_port,
        analyze_port,
        dead_port,
    ] = free_ports();
    let prom = Prometheus::start(
        &prom_dir,
        &[
            service.to_string(),
            format!("127.0.0.1:{rollout_port}"),
            format!("127.0.0.1:{drift_port}"),
            format!("127.0.0.1:{serve_port}"),
            format!("127.0.0.1:{analyze_port}"),
        ],
    );
    prom.wait_for(
        &format!("http_server_requests_total{{instance=\"{service}\"}}"),
        "the service is scraped",
    );

    // A drift watch whose live file is missing at first.
    std::fs::write(dir.join("desired.json"), r#"{"replicas": 3}"#).expect("desired");
    let mut drift = Proc(Some(
        rollgate(dir)
            .args([
                "drift",
                "watch",
                "desired.json",
                "--live-file",
                "live.json",
                "--interval",
                "250ms",
                "--metrics-addr",
            ])
            .arg(format!("127.0.0.1:{drift_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start drift watch"),
    ));
    prom.wait_for(
        "increase(rollgate_drift_check_errors_total[1m]) > 0",
        "failed drift checks are scraped",
    );
    let mut live = std::fs::File::create(dir.join("live.json.tmp")).expect("live");
    live.write_all(br#"{"replicas": 2}"#).expect("write live");
    drop(live);
    std::fs::rename(dir.join("live.json.tmp"), dir.join("live.json")).expect("live in place");

    // A controller, scraped on its API's /metrics (GETs need no token).
    let mut serve = Proc(Some(
        rollgate(dir)
            .args(["serve", "--state", "serve.db", "--listen"])
            .arg(format!("127.0.0.1:{serve_port}"))
            .env("ROLLGATE_TOKEN", "a-token-long-enough-for-serve-1234")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve"),
    ));
    // One shadow judgement, its verdict served while it lingers.
    std::fs::write(
        dir.join("analysis.toml"),
        "[[metrics]]\nname = \"latency_ms\"\nkind = \"latency\"\nbad = \"increase\"\nthreshold = { p99_max = 500.0 }\n",
    )
    .expect("analysis");
    std::fs::write(
        dir.join("samples.json"),
        r#"{"metrics": {"latency_ms": {"baseline": [10, 11, 12], "canary": [10, 11, 12]}}}"#,
    )
    .expect("samples");
    let mut analyze = Proc(Some(
        rollgate(dir)
            .args([
                "analyze",
                "--config",
                "analysis.toml",
                "--data",
                "samples.json",
                "--metrics-linger",
                "5m",
                "--metrics-addr",
            ])
            .arg(format!("127.0.0.1:{analyze_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start analyze"),
    ));

    // The rollout; its series are scraped at zero before the first deploy.
    write_plan(dir, dead_port);
    let mut rollout = Proc(Some(
        rollgate(dir)
            .args([
                "rollout",
                "run",
                "plan.toml",
                "--state",
                "state.db",
                "--log-format",
                "json",
                "--metrics-linger",
                "5m",
                "--metrics-addr",
            ])
            .arg(format!("127.0.0.1:{rollout_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rollout"),
    ));
    prom.wait_for(
        &format!("rollgate_gate_errors_total{{instance=\"127.0.0.1:{rollout_port}\"}} == 0"),
        "the rollout's series at zero",
    );
    std::fs::write(dir.join("go"), "").expect("go");
    prom.wait_for(
        "rollgate_rollouts_finished_total{outcome=\"rolled_back\"} == 1",
        "the rolled-back rollout is scraped",
    );
    prom.wait_for("rollgate_drift_differences > 0", "the drift is scraped");
    prom.wait_for(
        "rollgate_notifications_total{result=\"failed\"} > 0",
        "failed notification deliveries are scraped",
    );
    prom.wait_for(
        &format!("rollgate_api_requests_total{{instance=\"127.0.0.1:{serve_port}\"}} > 0"),
        "the controller's API traffic is scraped",
    );
    prom.wait_for(
        "rollgate_analysis_verdicts_total > 0",
        "the analysis verdict is scraped",
    );

    // Every query returns data (finite values), or the test names it.
    assert!(
        panels >= 10 && alerts >= 10,
        "{panels} panels, {alerts} alerts"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut checked = 0;
    for (place, promql) in &queries {
        loop {
            let result = prom.query(promql);
            let good = result.as_ref().is_ok_and(|r| {
                !r.is_empty()
                    && r.iter().all(|s| {
                        s["value"][1]
                            .as_str()
                            .and_then(|v| v.parse::<f64>().ok())
                            .is_some_and(f64::is_finite)
                    })
            });
            if good {
                checked += 1;
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{place}: no data for {promql}: {result:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert_eq!(checked, queries.len());

    // The rollout ended rolled back (exit 1) and lingered until now (or, if
    // the SIGTERM came while it still delivered notifications, ended
    // without lingering); the drift watch stops on SIGTERM.
    assert_eq!(rollout.terminate(), Some(1), "the rollout's exit code");
    assert_eq!(drift.terminate(), Some(143));
    serve.terminate();
    // The lingering judgement ends on SIGTERM with its verdict's code:
    // inconclusive (3), three samples being under `min_samples`.
    assert_eq!(analyze.terminate(), Some(3), "analyze's verdict");
    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("service thread");
    drop(prom);
}
