//! One naming scheme: every metric the generated dashboard and alert rules
//! query is one that rollgate emits. A real rollout (executor, gate errors,
//! rollback), a real drift watch (a failing then drifting live file) and
//! the RED middleware run under rollgate-telemetry's recorder; the names
//! they emitted are collected from its exposition, and each query's metric
//! names must be among them; and the reverse, every `rollgate_*` metric
//! emitted is queried or listed as deliberately not on the dashboard.
//!
//! Metrics that only the CLI's commands emit (`rollgate serve`'s API and
//! adoption counters, notification deliveries, store commits) cannot run
//! here: every `rollgate_*` name at an emission site (`counter!`, `gauge!`,
//! `histogram!` with a literal name) in the workspace's sources is read
//! too, and held to the same rule. The real-Prometheus test
//! (crates/rollgate-cli/tests/assets_prometheus.rs) runs those commands.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use rollgate::deploy::{
    Executor, ExecutorConfig, MemoryStore, Outcome, Percent, PhaseDefaults, RolloutRequest,
    StateStore, Strategy,
};
use rollgate::drift::{DriftWatcher, FileSource, Format, Limits, load};
use rollgate::telemetry::{AssetOptions, MetricsConfig, MetricsRegistry, RedLayer};
use rollgate_test::{FakeDeployer, ScriptedGate, artifact, targets};
use tower::{Layer, ServiceExt, service_fn};

/// Runs a canary that is gated (a pass, then errors until the limit),
/// rolls back, and so emits every executor metric.
async fn rollout() {
    let t = targets(4);
    let v1 = artifact("v1");
    let store = Arc::new(MemoryStore::new());
    store.register_artifact(&v1).await.expect("register v1");
    let deployer = FakeDeployer::new().with_running(&t, &v1);
    // Phase 0 passes (the scripted default), phase 1's gate keeps failing.
    let gate = ScriptedGate::new().failing_at(1, "prometheus unreachable");
    let exec = Executor::new(store, Arc::new(deployer))
        .with_config(
            ExecutorConfig::default()
                .with_owner("names-test")
                .with_readiness(Duration::from_secs(30), Duration::from_secs(1)),
        )
        .with_gate(Arc::new(gate));
    let plan = Strategy::Canary {
        steps: vec![Percent::new(25.0).expect("25 %"), Percent::FULL],
    }
    .compile(
        &t,
        &PhaseDefaults::default()
            .with_gate(true)
            .with_bake(Duration::from_secs(10)),
    )
    .expect("plan");
    let report = exec
        .submit(RolloutRequest::new("web", artifact("v2"), plan, "alice"))
        .await
        .expect("rollout runs");
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
}

/// A watch of a live file that is missing at first (a failed check), then
/// differs from the desired document.
async fn drift_watch(dir: &std::path::Path) {
    let desired = load(
        "replicas: 3\nimage: web:v1\n",
        Format::Yaml,
        "desired.yaml",
        &Limits::default(),
    )
    .expect("desired");
    let live = dir.join("live.yaml");
    let mut watcher = DriftWatcher::builder(
        rollgate::drift::arena::Tree::from_node(&desired).expect("tree"),
        Arc::new(FileSource::new(&live, Format::Yaml)),
    )
    .name("web")
    .build()
    .expect("watcher");
    assert!(watcher.check().await.is_err(), "missing live file fails");
    std::fs::write(&live, "replicas: 2\nimage: web:v1\n").expect("write live");
    let outcome = watcher.check().await.expect("check");
    assert!(outcome.report.has_drift());
}

/// One canary judgement, counted as `rollgate analyze` counts it.
fn analysis_verdict() {
    let config = rollgate::canary::AnalysisConfig::from_toml_str(
        "[[metrics]]\nname = \"latency_ms\"\nkind = \"latency\"\nbad = \"increase\"\nthreshold = { p99_max = 500.0 }\n",
    )
    .expect("analysis config");
    let analysis = rollgate::canary::Analysis::new(config).expect("analysis");
    let samples = rollgate::canary::SampleSet::from_json_str(
        r#"{"metrics": {"latency_ms": {"baseline": [10, 11, 12], "canary": [10, 11, 12]}}}"#,
    )
    .expect("samples");
    analysis.judge(&samples).expect("judged").record_metric();
}

/// Requests through the RED layer: one served, one failed.
async fn red_traffic() {
    let svc =
        RedLayer::new()
            .route("/orders")
            .layer(service_fn(|req: Request<String>| async move {
                let status = if req.uri().query() == Some("fail") {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                };
                let mut resp = Response::new(String::new());
                *resp.status_mut() = status;
                Ok::<_, Infallible>(resp)
            }));
    for uri in ["/orders", "/orders?fail"] {
        let req = Request::get(uri).body(String::new()).expect("request");
        svc.clone().oneshot(req).await.expect("served");
    }
}

/// Metrics rollgate emits that the generated assets deliberately do not
/// query, with why.
const NOT_ON_DASHBOARD: &[(&str, &str)] = &[
    (
        "rollgate_drift_last_check_timestamp_seconds",
        "for \"last checked N ago\" stat panels people add themselves",
    ),
    (
        "rollgate_drift_detection_seconds",
        "drift detection latency, measured for the drift benchmarks",
    ),
    (
        "rollgate_serve_scan_reads_total",
        "store reads of serve's adoption scans, a cost diagnostic for tuning --scan-batch",
    ),
];

/// `rollgate_*` names at the workspace's emission sites: a `counter!`,
/// `gauge!` or `histogram!` whose first argument is a string literal.
/// Histograms come with their series names (`_bucket`, `_sum`, `_count`).
fn names_in_sources() -> (BTreeSet<String>, BTreeSet<String>) {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&crates).expect("crates dir").flatten() {
        let src = entry.path().join("src");
        if src.is_dir() {
            walk(&src, &mut files);
        }
    }
    let (mut families, mut names) = (BTreeSet::new(), BTreeSet::new());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for (mac, histogram) in [
            ("counter!(", false),
            ("gauge!(", false),
            ("histogram!(", true),
        ] {
            for (at, _) in text.match_indices(mac) {
                let rest = text[at + mac.len()..].trim_start();
                let Some(lit) = rest.strip_prefix('"') else {
                    continue;
                };
                let Some(name) = lit.split('"').next() else {
                    continue;
                };
                if !name.starts_with("rollgate_") {
                    continue;
                }
                families.insert(name.to_owned());
                names.insert(name.to_owned());
                if histogram {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
            }
        }
    }
    (families, names)
}

#[test]
fn emission_sites_are_found_in_the_sources() {
    let (families, names) = names_in_sources();
    for name in [
        "rollgate_rollout_events_total",
        "rollgate_api_requests_total",
        "rollgate_serve_adoptions_total",
        "rollgate_notifications_total",
        "rollgate_store_commits_total",
        "rollgate_analysis_verdicts_total",
    ] {
        assert!(families.contains(name), "{name} not found: {families:?}");
    }
    assert!(names.contains("rollgate_api_request_duration_seconds_bucket"));
}

/// The metric families a registry exposes (`# TYPE` lines).
fn exposed_families(registry: &MetricsRegistry) -> BTreeSet<String> {
    registry
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The metric names a registry exposes: each family, plus the series names
/// of histograms (`_bucket`, `_sum`, `_count`).
fn exposed_names(registry: &MetricsRegistry) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in registry.render().lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

const PROMQL_WORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "rate",
    "irate",
    "increase",
    "changes",
    "histogram_quantile",
    "label_values",
];

/// The metric names a PromQL expression selects: identifiers outside label
/// matchers (`{...}`), ranges (`[...]`), strings and grouping lists, that
/// are neither keywords, functions nor aggregations.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '{' || c == '[' {
            let close = if c == '{' { '}' } else { ']' };
            while i < chars.len() && chars[i] != close {
                i += 1;
            }
            i += 1;
        } else if c == '(' && skip_group {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_group = false;
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // The duration after `offset`, e.g. `1h`, starts with a digit
            // and is never read as a word; exponents like `1e9` neither.
            let digit_before = start > 0 && chars[start - 1].is_ascii_digit();
            if ["by", "without", "on", "ignoring"].contains(&word.as_str()) {
                skip_group = true;
            } else if !digit_before && !PROMQL_WORDS.contains(&word.as_str()) {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(
            "sum by (cohort, le) (rate(http_x_bucket{a=~\"$b\", c=\"d\"}[5m] offset 1h)) > 1e-3 and up"
        ),
        ["http_x_bucket", "up"]
    );
    assert_eq!(
        metric_names("histogram_quantile(0.99, sum by (le) (rate(d_bucket[$__rate_interval])))"),
        ["d_bucket"]
    );
}

/// Every PromQL expression of the generated assets, with where it is.
fn asset_queries() -> Vec<(String, String)> {
    let opts = AssetOptions::default();
    let dashboard = opts.grafana_dashboard().expect("dashboard");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            out.push((
                format!("panel {:?}", panel["title"].as_str().unwrap_or_default()),
                target["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    for a in dashboard["annotations"]["list"]
        .as_array()
        .expect("annotations")
    {
        out.push((
            format!("annotation {:?}", a["name"].as_str().unwrap_or_default()),
            a["expr"].as_str().expect("expr").to_owned(),
        ));
    }
    let rules = opts.alert_rules().expect("rules");
    let mut alert = String::new();
    for line in rules.lines() {
        let line = line.trim();
        if let Some(a) = line.strip_prefix("- alert: ") {
            alert = a.trim_matches('"').to_owned();
        } else if let Some(e) = line.strip_prefix("expr: ") {
            let expr: String = serde_json::from_str(e).expect("expr is a JSON string");
            out.push((format!("alert {alert}"), expr));
        }
    }
    out
}

#[test]
fn every_dashboard_and_alert_query_names_a_metric_rollgate_emits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = MetricsRegistry::default();
    // A cap of one series makes the second label set overflow, so the
    // recorder's overflow counter is emitted too.
    let capped = MetricsRegistry::new(
        MetricsConfig::builder()
            .max_series_per_metric(1)
            .build()
            .expect("config"),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&registry.recorder(), || {
        rt.block_on(async {
            rollout().await;
            drift_watch(dir.path()).await;
            red_traffic().await;
        });
        analysis_verdict();
    });
    metrics::with_local_recorder(&capped.recorder(), || {
        metrics::counter!("jobs_total", "queue" => "a").increment(1);
        metrics::counter!("jobs_total", "queue" => "b").increment(1);
    });
    let mut emitted = exposed_names(&registry);
    emitted.extend(exposed_names(&capped));
    let (source_families, source_names) = names_in_sources();
    emitted.extend(source_names);

    let queries = asset_queries();
    assert!(queries.len() >= 20, "{queries:?}");
    let mut missing = Vec::new();
    let mut queried = BTreeSet::new();
    for (place, expr) in &queries {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{place}: no metric in {expr}");
        for n in names {
            if !emitted.contains(&n) {
                missing.push(format!("{place}: {n} (in {expr})"));
            }
            queried.insert(n);
        }
    }
    assert!(
        missing.is_empty(),
        "queried but never emitted:\n  {}\nemitted: {emitted:?}",
        missing.join("\n  ")
    );
    // The reverse: every rollgate metric emitted is queried (or listed
    // above as deliberately not on the dashboard), so nothing is emitted
    // under a name the assets do not know, e.g. a stale one after a rename.
    let mut families = exposed_families(&registry);
    families.extend(source_families);
    let mut unqueried = Vec::new();
    for family in families.iter().filter(|f| f.starts_with("rollgate_")) {
        let is_queried = queried.contains(family.as_str())
            || ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| queried.contains(&format!("{family}{s}")));
        if !is_queried && !NOT_ON_DASHBOARD.iter().any(|(n, _)| n == family) {
            unqueried.push(family.clone());
        }
    }
    assert!(
        unqueried.is_empty(),
        "emitted but neither queried by the assets nor listed in NOT_ON_DASHBOARD: {unqueried:?}"
    );
    for (name, _) in NOT_ON_DASHBOARD {
        assert!(
            families.contains(*name),
            "NOT_ON_DASHBOARD lists {name}, which nothing emitted"
        );
        assert!(!queried.contains(*name), "{name} is queried after all");
    }
    // And the scheme is the executor's and the drift watcher's own.
    for name in [
        "rollgate_rollout_events_total",
        "rollgate_rollouts_finished_total",
        "rollgate_gate_errors_total",
        "rollgate_drift_differences",
        "rollgate_drift_check_errors_total",
        "rollgate_api_requests_total",
        "rollgate_notifications_total",
        "rollgate_analysis_verdicts_total",
    ] {
        assert!(queried.contains(name), "{name} is not queried");
    }
}
