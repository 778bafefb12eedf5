//! Generated assets: alert rules pass `promtool check rules` and behave as
//! intended under `promtool test rules`; the dashboard has the Grafana
//! dashboard-model fields it uses, and every PromQL query in it parses.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use rollgate_telemetry::{AssetOptions, DASHBOARD_FILE, RULES_FILE};
use serde_json::Value;

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

fn write_assets() -> (tempfile::TempDir, Value, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = AssetOptions::default()
        .write(dir.path())
        .expect("assets written");
    assert_eq!(written.len(), 2);
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(DASHBOARD_FILE)).expect("dashboard file"),
    )
    .expect("dashboard is JSON");
    let rules = std::fs::read_to_string(dir.path().join(RULES_FILE)).expect("rules file");
    (dir, dashboard, rules)
}

#[test]
fn generated_alert_rules_pass_promtool_check_rules() {
    let (dir, _, rules) = write_assets();
    for alert in [
        "HighLatencyP99",
        "HighErrorRatio",
        "TrafficDip",
        "ErrorBudgetFastBurn",
        "ErrorBudgetSlowBurn",
        "RolloutRolledBack",
        "RolloutGateErrors",
        "DriftFound",
        "DriftCheckFailing",
        "MetricCardinalityOverflow",
        "NotificationsFailing",
    ] {
        assert!(
            rules.contains(&format!("alert: \"{alert}\"")),
            "{alert} missing"
        );
    }
    let (ok, report) = promtool(&["check", "rules", RULES_FILE], dir.path());
    assert!(ok, "promtool check rules failed:\n{report}\n{rules}");
    assert!(report.contains("SUCCESS: 11 rules found"), "{report}");
}

/// Unit-tests the alerts with promtool's rule test runner: synthetic series
/// in, expected firing alerts out.
#[test]
fn generated_alerts_fire_on_slow_p99_and_error_ratio_and_not_on_healthy_traffic() {
    let (dir, _, _) = write_assets();
    // 10 req/s; canary: 3 % errors, every request 0.75..1 s; baseline: no errors, fast.
    let test = r#"
rule_files: [rollgate-alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'http_server_requests_total{service="shop",cohort="canary"}'
        values: '0+600x20'
      - series: 'http_server_errors_total{service="shop",cohort="canary"}'
        values: '0+18x20'
      - series: 'http_server_requests_total{service="shop",cohort="baseline"}'
        values: '0+600x20'
      - series: 'http_server_errors_total{service="shop",cohort="baseline"}'
        values: '0+0x20'
      - series: 'http_server_request_duration_seconds_bucket{service="shop",cohort="canary",le="0.5"}'
        values: '0+0x20'
      - series: 'http_server_request_duration_seconds_bucket{service="shop",cohort="canary",le="1"}'
        values: '0+600x20'
      - series: 'http_server_request_duration_seconds_bucket{service="shop",cohort="canary",le="+Inf"}'
        values: '0+600x20'
      - series: 'http_server_request_duration_seconds_bucket{service="shop",cohort="baseline",le="0.5"}'
        values: '0+600x20'
      - series: 'http_server_request_duration_seconds_bucket{service="shop",cohort="baseline",le="1"}'
        values: '0+600x20'
      - series: 'http_server_request_duration_seconds_bucket{service="shop",cohort="baseline",le="+Inf"}'
        values: '0+600x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: HighErrorRatio
        exp_alerts:
          - exp_labels: {service: shop, cohort: canary, severity: page}
            exp_annotations:
              summary: "more than 1 % of requests of shop (canary) fail"
      - eval_time: 15m
        alertname: HighLatencyP99
        exp_alerts:
          - exp_labels: {service: shop, cohort: canary, severity: page}
            exp_annotations:
              summary: "p99 latency of shop (canary) is above 500 ms"
      - eval_time: 15m
        alertname: TrafficDip
        exp_alerts: []
  # Notifications: a round whose every attempt failed fires; failed
  # attempts that a retry then delivered do not.
  - interval: 1m
    input_series:
      - series: 'rollgate_notifications_total{result="failed"}'
        values: '0+3x20'
      - series: 'rollgate_notifications_total{result="exhausted"}'
        values: '0+1x20'
      - series: 'rollgate_notifications_total{result="delivered"}'
        values: '0+5x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: NotificationsFailing
        exp_alerts:
          - exp_labels: {severity: ticket}
            exp_annotations:
              summary: "a rollout notification failed every attempt of a round (it stays in the outbox for the next)"
  - interval: 1m
    input_series:
      - series: 'rollgate_notifications_total{result="failed"}'
        values: '0+2x20'
      - series: 'rollgate_notifications_total{result="exhausted"}'
        values: '0+0x20'
      - series: 'rollgate_notifications_total{result="delivered"}'
        values: '0+5x20'
    alert_rule_test:
      - eval_time: 15m
        alertname: NotificationsFailing
        exp_alerts: []
"#;
    std::fs::write(dir.path().join("alerts_test.yml"), test).expect("write test file");
    let (ok, report) = promtool(&["test", "rules", "alerts_test.yml"], dir.path());
    assert!(ok, "promtool test rules failed:\n{report}");
}

fn as_u64(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} must be a non-negative integer, got {v}"))
}

fn check_datasource(v: &Value, what: &str) {
    assert_eq!(v["type"], "prometheus", "{what}.datasource.type");
    assert!(v["uid"].is_string(), "{what}.datasource.uid");
}

#[test]
fn dashboard_has_the_grafana_model_fields_it_uses() {
    let (_dir, d, _) = write_assets();
    // Dashboard-level fields of the Grafana dashboard JSON model.
    for (field, ok) in [
        ("title", d["title"].is_string()),
        (
            "uid",
            d["uid"]
                .as_str()
                .is_some_and(|u| !u.is_empty() && u.len() <= 40),
        ),
        ("tags", d["tags"].is_array()),
        ("schemaVersion", d["schemaVersion"].is_u64()),
        ("version", d["version"].is_u64()),
        ("editable", d["editable"].is_boolean()),
        ("time.from", d["time"]["from"].is_string()),
        ("time.to", d["time"]["to"].is_string()),
        ("timezone", d["timezone"].is_string()),
        ("refresh", d["refresh"].is_string()),
        ("annotations.list", d["annotations"]["list"].is_array()),
        ("templating.list", d["templating"]["list"].is_array()),
        (
            "panels",
            d["panels"].as_array().is_some_and(|p| !p.is_empty()),
        ),
    ] {
        assert!(ok, "dashboard field {field} missing or mistyped");
    }
    let mut variables = BTreeSet::new();
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().expect("variable name");
        assert!(
            ["query", "datasource", "custom", "constant", "interval"]
                .contains(&v["type"].as_str().unwrap_or("")),
            "variable {name} type"
        );
        variables.insert(name.to_owned());
    }
    assert_eq!(
        variables,
        BTreeSet::from(["cohort".into(), "datasource".into(), "service".into()])
    );

    let mut ids = BTreeSet::new();
    let mut titles = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        let id = as_u64(&p["id"], "panel.id");
        assert!(ids.insert(id), "panel ids are unique");
        assert_eq!(p["type"], "timeseries");
        let title = p["title"].as_str().expect("panel title");
        titles.push(title.to_owned());
        check_datasource(&p["datasource"], title);
        let g = &p["gridPos"];
        let (h, w, x) = (
            as_u64(&g["h"], "h"),
            as_u64(&g["w"], "w"),
            as_u64(&g["x"], "x"),
        );
        as_u64(&g["y"], "y");
        assert!(
            h > 0 && w > 0 && x + w <= 24,
            "{title}: gridPos within 24 columns"
        );
        assert!(
            p["fieldConfig"]["defaults"]["unit"].is_string(),
            "{title}: unit"
        );
        assert!(
            p["fieldConfig"]["overrides"].is_array(),
            "{title}: overrides"
        );
        let mut refs = BTreeSet::new();
        for t in p["targets"].as_array().expect("targets") {
            assert!(
                refs.insert(t["refId"].as_str().expect("refId").to_owned()),
                "{title}: refIds unique"
            );
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.is_empty()),
                "{title}: expr"
            );
            check_datasource(&t["datasource"], title);
        }
        assert!(!refs.is_empty(), "{title}: at least one target");
    }
    for wanted in [
        "Request rate by cohort",
        "Error ratio by cohort",
        "Latency p50 / p95 / p99 by cohort",
        "Rollout events",
        "Rollouts finished by outcome",
        "Gate decisions and errors",
        "Drift differences by config",
    ] {
        assert!(
            titles.iter().any(|t| t == wanted),
            "panel {wanted:?} missing"
        );
    }
    let annotations: Vec<&str> = d["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            check_datasource(&a["datasource"], "annotation");
            assert!(
                a["enable"].is_boolean() && a["expr"].is_string() && a["iconColor"].is_string()
            );
            a["name"].as_str().expect("annotation name")
        })
        .collect();
    assert_eq!(annotations, ["Rollouts", "Drift"]);
}

#[test]
fn every_dashboard_query_is_valid_promql() {
    let (dir, d, _) = write_assets();
    let mut exprs: Vec<String> = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            exprs.push(t["expr"].as_str().unwrap_or_default().to_owned());
        }
    }
    for a in d["annotations"]["list"].as_array().into_iter().flatten() {
        exprs.push(a["expr"].as_str().unwrap_or_default().to_owned());
    }
    // Substitute Grafana variables the way Grafana would, then let promtool
    // parse each query as a recording rule.
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "1m")
            .replace("$service", "shop")
            .replace("$cohort", "canary");
        let quoted = serde_json::to_string(&e).expect("string");
        file.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {quoted}\n"
        ));
    }
    std::fs::write(dir.path().join("dashboard-queries.yml"), &file).expect("write");
    let (ok, report) = promtool(&["check", "rules", "dashboard-queries.yml"], dir.path());
    assert!(ok, "a dashboard query does not parse:\n{report}\n{file}");
    assert!(exprs.len() >= 9);
}

#[test]
fn generation_is_deterministic() {
    let a = AssetOptions::default();
    assert_eq!(a.alert_rules().ok(), a.alert_rules().ok());
    let (one, two) = (a.grafana_dashboard().ok(), a.grafana_dashboard().ok());
    assert_eq!(one.map(|v| v.to_string()), two.map(|v| v.to_string()));
}
