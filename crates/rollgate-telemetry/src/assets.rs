//! Generated operational assets: a Grafana dashboard and Prometheus alerting
//! rules for the metrics this crate emits, produced from code so they are
//! versioned (and reviewed) with it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};

use crate::Error;
use crate::recorder::OVERFLOW_METRIC;

// The naming scheme the assets query. The RED metrics come from this crate's
// RED middleware (in the services being rolled out), the overflow counter
// from its recorder; the rest from rollgate's own libraries, which emit
// through the `metrics` facade only and so spell the names out themselves:
// the executor (rollgate-deploy) and the drift watcher (rollgate-drift). A
// test (crates/rollgate/tests/telemetry_names.rs) runs a rollout and a drift
// watch and fails when a query names a metric nothing emitted.
const REQUESTS: &str = "http_server_requests_total";
const ERRORS: &str = "http_server_errors_total";
const DURATION: &str = "http_server_request_duration_seconds";
/// Executor: every recorded rollout event, by `action`.
const ROLLOUT_EVENTS: &str = "rollgate_rollout_events_total";
/// Executor: finished rollouts, by `outcome`.
const ROLLOUTS_FINISHED: &str = "rollgate_rollouts_finished_total";
/// Executor: deploys and restores, by `result` (`ok`, `failed`).
const DEPLOYS: &str = "rollgate_deploys_total";
const RESTORES: &str = "rollgate_restores_total";
/// Executor: gate decisions, by `decision`; gate errors and timeouts.
const GATE_DECISIONS: &str = "rollgate_gate_decisions_total";
const GATE_ERRORS: &str = "rollgate_gate_errors_total";
/// Drift watcher: differences now, by `config` and `severity`.
const DRIFT_DIFFERENCES: &str = "rollgate_drift_differences";
/// Drift watcher: checks and failed checks, by `config`.
const DRIFT_CHECKS: &str = "rollgate_drift_checks_total";
const DRIFT_CHECK_ERRORS: &str = "rollgate_drift_check_errors_total";
/// Drift watcher: how long a check took, by `config`.
const DRIFT_CHECK_DURATION: &str = "rollgate_drift_check_duration_seconds";
/// `rollgate serve`: API requests by `method` and `status` class, and their duration by `method`.
const API_REQUESTS: &str = "rollgate_api_requests_total";
const API_DURATION: &str = "rollgate_api_request_duration_seconds";
/// `rollgate serve`: rollouts it drives now, rollouts it adopted, leases it lost.
const SERVE_DRIVING: &str = "rollgate_serve_driving";
const SERVE_ADOPTIONS: &str = "rollgate_serve_adoptions_total";
const SERVE_LOST_LEASES: &str = "rollgate_serve_lost_leases_total";
/// Notification dispatcher (every controller): deliveries by `result`.
const NOTIFICATIONS: &str = "rollgate_notifications_total";
/// State stores (SQLite, PostgreSQL): committed write transactions.
const STORE_COMMITS: &str = "rollgate_store_commits_total";
/// `rollgate analyze`: canary judgements by `verdict`.
const ANALYSIS_VERDICTS: &str = "rollgate_analysis_verdicts_total";

/// File name of the generated dashboard.
pub const DASHBOARD_FILE: &str = "rollgate-dashboard.json";
/// File name of the generated alerting rules.
pub const RULES_FILE: &str = "rollgate-alerts.yml";

/// Thresholds of the generated alerts.
///
/// ```
/// use rollgate_telemetry::AssetOptions;
///
/// let opts = AssetOptions::default();
/// assert_eq!(opts.p99_seconds, 0.5);
/// assert_eq!(opts.error_ratio, 0.01);
/// let rules = opts.alert_rules()?;
/// assert!(rules.contains("alert: \"HighLatencyP99\""));
/// let dashboard = opts.grafana_dashboard()?;
/// assert_eq!(dashboard["title"], "rollgate: RED by cohort");
/// # Ok::<(), rollgate_telemetry::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AssetOptions {
    /// p99 latency above which `HighLatencyP99` fires, in seconds (0.5).
    pub p99_seconds: f64,
    /// Error ratio above which `HighErrorRatio` fires (0.01 = 1 %).
    pub error_ratio: f64,
    /// `TrafficDip` fires when traffic falls below this fraction of the
    /// traffic one hour earlier (0.5).
    pub traffic_dip_fraction: f64,
    /// Availability objective for the burn-rate alerts (0.999).
    pub slo_target: f64,
    /// How long a condition must hold before firing, in minutes (5).
    pub for_minutes: u32,
}

impl Default for AssetOptions {
    fn default() -> Self {
        Self {
            p99_seconds: 0.5,
            error_ratio: 0.01,
            traffic_dip_fraction: 0.5,
            slo_target: 0.999,
            for_minutes: 5,
        }
    }
}

fn check(field: &'static str, v: f64, ok: bool, expect: &str) -> Result<(), Error> {
    if v.is_finite() && ok {
        Ok(())
    } else {
        Err(Error::Config {
            field,
            reason: format!("{v} is out of range, expected {expect}"),
        })
    }
}

impl AssetOptions {
    /// Checks every threshold.
    ///
    /// # Errors
    /// [`Error::Config`] naming the threshold out of range.
    pub fn validate(&self) -> Result<(), Error> {
        check(
            "p99_seconds",
            self.p99_seconds,
            self.p99_seconds > 0.0,
            "> 0",
        )?;
        check(
            "error_ratio",
            self.error_ratio,
            self.error_ratio > 0.0 && self.error_ratio < 1.0,
            "between 0 and 1",
        )?;
        check(
            "traffic_dip_fraction",
            self.traffic_dip_fraction,
            self.traffic_dip_fraction > 0.0 && self.traffic_dip_fraction < 1.0,
            "between 0 and 1",
        )?;
        check(
            "slo_target",
            self.slo_target,
            self.slo_target > 0.0 && self.slo_target < 1.0,
            "between 0 and 1",
        )?;
        if self.for_minutes == 0 {
            return Err(Error::Config {
                field: "for_minutes",
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The alerting rules as `(group, [(alert, expr, for, severity, summary)])`.
    fn rules(&self) -> Vec<(&'static str, Vec<Rule>)> {
        // Rounded so 1 - 0.999 prints as 0.001.
        let budget = ((1.0 - self.slo_target) * 1e9).round() / 1e9;
        let ratio = |w: &str| {
            format!(
                "(sum by (service, cohort) (rate({ERRORS}[{w}])) / sum by (service, cohort) (rate({REQUESTS}[{w}])))"
            )
        };
        let for_ = format!("{}m", self.for_minutes);
        vec![
            (
                "rollgate-red",
                vec![
                    Rule {
                        alert: "HighLatencyP99",
                        expr: format!(
                            "histogram_quantile(0.99, sum by (service, cohort, le) (rate({DURATION}_bucket[5m]))) > {}",
                            self.p99_seconds
                        ),
                        for_: for_.clone(),
                        severity: "page",
                        summary: format!(
                            "p99 latency of {{{{ $labels.service }}}} ({{{{ $labels.cohort }}}}) is above {} ms",
                            self.p99_seconds * 1000.0
                        ),
                    },
                    Rule {
                        alert: "HighErrorRatio",
                        expr: format!("{} > {}", ratio("5m"), self.error_ratio),
                        for_: for_.clone(),
                        severity: "page",
                        summary: format!(
                            "more than {} % of requests of {{{{ $labels.service }}}} ({{{{ $labels.cohort }}}}) fail",
                            self.error_ratio * 100.0
                        ),
                    },
                    Rule {
                        alert: "TrafficDip",
                        expr: format!(
                            "sum by (service) (rate({REQUESTS}[5m])) < {} * sum by (service) (rate({REQUESTS}[5m] offset 1h)) and sum by (service) (rate({REQUESTS}[5m] offset 1h)) > 1",
                            self.traffic_dip_fraction
                        ),
                        for_: for_.clone(),
                        severity: "page",
                        summary: format!(
                            "traffic of {{{{ $labels.service }}}} fell below {} % of an hour ago",
                            self.traffic_dip_fraction * 100.0
                        ),
                    },
                ],
            ),
            (
                "rollgate-slo",
                vec![
                    // Multi-window burn rates from the Google SRE workbook:
                    // 2 % of a 30-day budget in 1 h, 5 % in 6 h.
                    Rule {
                        alert: "ErrorBudgetFastBurn",
                        expr: format!(
                            "{} > (14.4 * {budget}) and {} > (14.4 * {budget})",
                            ratio("1h"),
                            ratio("5m")
                        ),
                        for_: "2m".into(),
                        severity: "page",
                        summary: format!(
                            "{{{{ $labels.service }}}} burns its {} % error budget 14.4 times too fast",
                            fmt_pct(self.slo_target)
                        ),
                    },
                    Rule {
                        alert: "ErrorBudgetSlowBurn",
                        expr: format!(
                            "{} > (6 * {budget}) and {} > (6 * {budget})",
                            ratio("6h"),
                            ratio("30m")
                        ),
                        for_: "15m".into(),
                        severity: "ticket",
                        summary: format!(
                            "{{{{ $labels.service }}}} burns its {} % error budget 6 times too fast",
                            fmt_pct(self.slo_target)
                        ),
                    },
                ],
            ),
            (
                "rollgate-rollouts",
                vec![
                    Rule {
                        alert: "RolloutRolledBack",
                        expr: format!(
                            "sum by (outcome) (increase({ROLLOUTS_FINISHED}{{outcome=~\"rolled_back|aborted|rollback_failed\"}}[15m])) > 0"
                        ),
                        for_: "0m".into(),
                        severity: "ticket",
                        summary: "a rollout ended {{ $labels.outcome }}".into(),
                    },
                    Rule {
                        alert: "RolloutGateErrors",
                        expr: format!("sum (increase({GATE_ERRORS}[10m])) > 0"),
                        for_: "0m".into(),
                        severity: "ticket",
                        summary: "a rollout gate failed or timed out (retried, then rolled back)"
                            .into(),
                    },
                ],
            ),
            (
                "rollgate-controller",
                vec![Rule {
                    alert: "NotificationsFailing",
                    expr: format!(
                        "sum (increase({NOTIFICATIONS}{{result=\"exhausted\"}}[15m])) > 0"
                    ),
                    for_: "0m".into(),
                    severity: "ticket",
                    summary:
                        "a rollout notification failed every attempt of a round (it stays in the outbox for the next)"
                            .into(),
                }],
            ),
            (
                "rollgate-drift",
                vec![
                    Rule {
                        alert: "DriftFound",
                        expr: format!("sum by (config) ({DRIFT_DIFFERENCES}) > 0"),
                        for_: "0m".into(),
                        severity: "ticket",
                        summary: "configuration {{ $labels.config }} drifted from what is declared"
                            .into(),
                    },
                    Rule {
                        alert: "DriftCheckFailing",
                        expr: format!("sum by (config) (increase({DRIFT_CHECK_ERRORS}[10m])) > 0"),
                        for_: "0m".into(),
                        severity: "ticket",
                        summary: "the live source of {{ $labels.config }} cannot be read".into(),
                    },
                ],
            ),
            (
                "rollgate-telemetry",
                vec![Rule {
                    alert: "MetricCardinalityOverflow",
                    expr: format!("increase({OVERFLOW_METRIC}[15m]) > 0"),
                    for_: "0m".into(),
                    severity: "ticket",
                    summary:
                        "metric {{ $labels.metric }} of {{ $labels.service }} hit its label-set cap"
                            .into(),
                }],
            ),
        ]
    }

    /// Prometheus alerting rules (YAML): p99 above the threshold, error
    /// ratio above the threshold, traffic dip, SLO fast and slow burn (per
    /// service and cohort); a rollout rolled back, aborted or failing to
    /// roll back, gate errors; notifications failing to deliver; drift
    /// found, drift checks failing (per config); metric cardinality overflow.
    ///
    /// # Errors
    /// [`Error::Config`] when a threshold is out of range.
    pub fn alert_rules(&self) -> Result<String, Error> {
        self.validate()?;
        let mut y = String::from(
            "# Generated by rollgate-telemetry (`rollgate telemetry assets`); do not edit by hand.\ngroups:\n",
        );
        for (group, rules) in self.rules() {
            let _ = writeln!(y, "  - name: {}", q(group));
            y.push_str("    rules:\n");
            for r in rules {
                let _ = writeln!(y, "      - alert: {}", q(r.alert));
                let _ = writeln!(y, "        expr: {}", q(&r.expr));
                let _ = writeln!(y, "        for: {}", r.for_);
                y.push_str("        labels:\n");
                let _ = writeln!(y, "          severity: {}", q(r.severity));
                y.push_str("        annotations:\n");
                let _ = writeln!(y, "          summary: {}", q(&r.summary));
            }
        }
        Ok(y)
    }

    /// A Grafana dashboard (JSON model, schemaVersion 39): request rate,
    /// error ratio and p50/p95/p99 latency by cohort and requests by route
    /// (the RED middleware's metrics); rollout events, outcomes, deploys,
    /// gate decisions (the executor's); drift differences, checks and check
    /// duration (the drift watcher's); cardinality overflow; the controller
    /// (`rollgate serve`): API requests by status, API latency p99, rollouts
    /// driven and adopted and leases lost, notifications by result, store
    /// commits; canary analysis verdicts (`rollgate analyze`); rollout and
    /// drift annotations. Variables: datasource, service, cohort.
    ///
    /// # Errors
    /// [`Error::Config`] when a threshold is out of range.
    pub fn grafana_dashboard(&self) -> Result<Json, Error> {
        self.validate()?;
        let ds = json!({"type": "prometheus", "uid": "${datasource}"});
        let sel = "service=~\"$service\", cohort=~\"$cohort\"";
        let by = "sum by (cohort)";
        let mut panels = Vec::new();
        let mut next_id = 1;
        let mut panel = |title: &str,
                         unit: &str,
                         x: u32,
                         y: u32,
                         w: u32,
                         targets: Vec<(String, String)>,
                         threshold: Option<f64>| {
            let targets: Vec<Json> = targets
                .into_iter()
                .enumerate()
                .map(|(i, (expr, legend))| {
                    json!({
                        "refId": char::from(b'A' + i as u8).to_string(),
                        "datasource": ds,
                        "expr": expr,
                        "legendFormat": legend,
                    })
                })
                .collect();
            let steps = match threshold {
                Some(t) => json!([{"color": "green", "value": null}, {"color": "red", "value": t}]),
                None => json!([{"color": "green", "value": null}]),
            };
            panels.push(json!({
                "id": next_id,
                "type": "timeseries",
                "title": title,
                "datasource": ds,
                "gridPos": {"h": 8, "w": w, "x": x, "y": y},
                "fieldConfig": {
                    "defaults": {
                        "unit": unit,
                        "thresholds": {"mode": "absolute", "steps": steps},
                        "custom": {"thresholdsStyle": {"mode": if threshold.is_some() { "line" } else { "off" }}},
                    },
                    "overrides": [],
                },
                "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
                "targets": targets,
            }));
            next_id += 1;
        };
        panel(
            "Request rate by cohort",
            "reqps",
            0,
            0,
            8,
            vec![(
                format!("{by} (rate({REQUESTS}{{{sel}}}[$__rate_interval]))"),
                "{{cohort}}".into(),
            )],
            None,
        );
        panel(
            "Error ratio by cohort",
            "percentunit",
            8,
            0,
            8,
            vec![(
                format!(
                    "{by} (rate({ERRORS}{{{sel}}}[$__rate_interval])) / {by} (rate({REQUESTS}{{{sel}}}[$__rate_interval]))"
                ),
                "{{cohort}}".into(),
            )],
            Some(self.error_ratio),
        );
        panel(
            "Latency p50 / p95 / p99 by cohort",
            "s",
            16,
            0,
            8,
            [0.5f64, 0.95, 0.99]
                .iter()
                .map(|q| {
                    (
                        format!(
                            "histogram_quantile({q}, sum by (cohort, le) (rate({DURATION}_bucket{{{sel}}}[$__rate_interval])))"
                        ),
                        format!("p{} {{{{cohort}}}}", (q * 100.0).round()),
                    )
                })
                .collect(),
            Some(self.p99_seconds),
        );
        panel(
            "Request rate by route",
            "reqps",
            0,
            8,
            12,
            vec![(
                format!("sum by (route, status) (rate({REQUESTS}{{{sel}}}[$__rate_interval]))"),
                "{{route}} {{status}}".into(),
            )],
            None,
        );
        // Rollgate's own panels: its series carry the controller's
        // `service` label (`rollgate`), not the rolled-out service's, so
        // they are not filtered by `$service`.
        let rate = "[$__rate_interval]";
        panel(
            "Rollout events",
            "short",
            0,
            16,
            12,
            vec![(
                format!("sum by (action) (increase({ROLLOUT_EVENTS}{rate}))"),
                "{{action}}".into(),
            )],
            None,
        );
        panel(
            "Rollouts finished by outcome",
            "short",
            12,
            16,
            12,
            vec![(
                format!("sum by (outcome) (increase({ROLLOUTS_FINISHED}{rate}))"),
                "{{outcome}}".into(),
            )],
            None,
        );
        panel(
            "Deploys and restores by result",
            "short",
            0,
            24,
            8,
            vec![
                (
                    format!("sum by (result) (increase({DEPLOYS}{rate}))"),
                    "deploy {{result}}".into(),
                ),
                (
                    format!("sum by (result) (increase({RESTORES}{rate}))"),
                    "restore {{result}}".into(),
                ),
            ],
            None,
        );
        panel(
            "Gate decisions and errors",
            "short",
            8,
            24,
            8,
            vec![
                (
                    format!("sum by (decision) (increase({GATE_DECISIONS}{rate}))"),
                    "{{decision}}".into(),
                ),
                (
                    format!("sum (increase({GATE_ERRORS}{rate}))"),
                    "errors".into(),
                ),
            ],
            None,
        );
        panel(
            "Drift differences by config",
            "short",
            16,
            24,
            8,
            vec![(
                format!("sum by (config, severity) ({DRIFT_DIFFERENCES})"),
                "{{config}} {{severity}}".into(),
            )],
            None,
        );
        panel(
            "Drift checks and failed checks",
            "ops",
            0,
            32,
            12,
            vec![
                (
                    format!("sum by (config) (rate({DRIFT_CHECKS}{rate}))"),
                    "{{config}} checks".into(),
                ),
                (
                    format!("sum by (config) (rate({DRIFT_CHECK_ERRORS}{rate}))"),
                    "{{config}} failed".into(),
                ),
            ],
            None,
        );
        panel(
            "Drift check duration p99",
            "s",
            12,
            32,
            12,
            vec![(
                format!(
                    "histogram_quantile(0.99, sum by (config, le) (rate({DRIFT_CHECK_DURATION}_bucket{rate})))"
                ),
                "{{config}}".into(),
            )],
            None,
        );
        panel(
            "Metric cardinality overflow",
            "short",
            0,
            40,
            24,
            vec![(
                format!("sum by (service, metric) (increase({OVERFLOW_METRIC}{rate}))"),
                "{{service}} {{metric}}".into(),
            )],
            None,
        );
        // The controller: what a platform team running `rollgate serve`
        // (and the CLI's own commands) watches.
        panel(
            "Controller API requests by status",
            "reqps",
            0,
            48,
            8,
            vec![(
                format!("sum by (method, status) (rate({API_REQUESTS}{rate}))"),
                "{{method}} {{status}}".into(),
            )],
            None,
        );
        panel(
            "Controller API latency p99",
            "s",
            8,
            48,
            8,
            vec![(
                format!(
                    "histogram_quantile(0.99, sum by (method, le) (rate({API_DURATION}_bucket{rate})))"
                ),
                "{{method}}".into(),
            )],
            None,
        );
        panel(
            "Controller: rollouts driven, adopted, leases lost",
            "short",
            16,
            48,
            8,
            vec![
                (format!("sum ({SERVE_DRIVING})"), "driving".into()),
                (
                    format!("sum (increase({SERVE_ADOPTIONS}{rate}))"),
                    "adopted".into(),
                ),
                (
                    format!("sum (increase({SERVE_LOST_LEASES}{rate}))"),
                    "leases lost".into(),
                ),
            ],
            None,
        );
        panel(
            "Notifications by result",
            "short",
            0,
            56,
            8,
            vec![(
                format!("sum by (result) (increase({NOTIFICATIONS}{rate}))"),
                "{{result}}".into(),
            )],
            None,
        );
        panel(
            "State store commits",
            "ops",
            8,
            56,
            8,
            vec![(
                format!("sum (rate({STORE_COMMITS}{rate}))"),
                "commits".into(),
            )],
            None,
        );
        panel(
            "Canary analysis verdicts",
            "short",
            16,
            56,
            8,
            vec![(
                format!("sum by (verdict) (increase({ANALYSIS_VERDICTS}{rate}))"),
                "{{verdict}}".into(),
            )],
            None,
        );
        let annotation = |name: &str, expr: String, title: &str, tag: &str, color: &str| {
            json!({
                "name": name,
                "datasource": ds,
                "enable": true,
                "hide": false,
                "iconColor": color,
                "expr": expr,
                "step": "30s",
                "titleFormat": title,
                "tagKeys": tag,
                "useValueForTime": false,
            })
        };
        Ok(json!({
            "title": "rollgate: RED by cohort",
            "uid": "rollgate-red",
            "description": "Generated by rollgate-telemetry (`rollgate telemetry assets`); do not edit by hand.",
            "tags": ["rollgate", "red", "canary"],
            "editable": true,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "timezone": "utc",
            "time": {"from": "now-3h", "to": "now"},
            "annotations": {"list": [
                annotation(
                    "Rollouts",
                    format!("sum by (action) (changes({ROLLOUT_EVENTS}{{action=~\"controller_started|phase_completed|gate_decided|rollback_started|finished\"}}[1m])) > 0"),
                    "{{action}}",
                    "action",
                    "blue",
                ),
                annotation(
                    "Drift",
                    format!("sum by (config) ({DRIFT_DIFFERENCES}) > 0"),
                    "drift in {{config}}",
                    "config",
                    "orange",
                ),
            ]},
            "templating": {"list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "service",
                    "label": "Service",
                    "type": "query",
                    "datasource": ds,
                    "query": {"query": format!("label_values({REQUESTS}, service)"), "refId": "service"},
                    "definition": format!("label_values({REQUESTS}, service)"),
                    "includeAll": true,
                    "multi": true,
                    "refresh": 2,
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "cohort",
                    "label": "Cohort",
                    "type": "query",
                    "datasource": ds,
                    "query": {"query": format!("label_values({REQUESTS}{{service=~\"$service\"}}, cohort)"), "refId": "cohort"},
                    "definition": format!("label_values({REQUESTS}{{service=~\"$service\"}}, cohort)"),
                    "includeAll": true,
                    "multi": true,
                    "refresh": 2,
                    "current": {},
                    "hide": 0,
                },
            ]},
            "panels": panels,
        }))
    }

    /// Writes [`DASHBOARD_FILE`] and [`RULES_FILE`] into `dir` (created if
    /// missing) and returns their paths.
    ///
    /// # Errors
    /// [`Error::Config`] for bad thresholds, [`Error::Io`] naming the file.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, Error> {
        let rules = self.alert_rules()?;
        let dashboard = self.grafana_dashboard()?;
        let io = |what, path: &Path| {
            let path = path.display().to_string();
            move |source| Error::Io { what, path, source }
        };
        std::fs::create_dir_all(dir).map_err(io("create asset directory", dir))?;
        let mut text = serde_json::to_string_pretty(&dashboard).map_err(|e| Error::Config {
            field: "dashboard",
            reason: e.to_string(),
        })?;
        text.push('\n');
        let d = dir.join(DASHBOARD_FILE);
        std::fs::write(&d, text).map_err(io("write asset", &d))?;
        let r = dir.join(RULES_FILE);
        std::fs::write(&r, rules).map_err(io("write asset", &r))?;
        Ok(vec![d, r])
    }
}

struct Rule {
    alert: &'static str,
    expr: String,
    for_: String,
    severity: &'static str,
    summary: String,
}

/// A YAML double-quoted scalar (JSON string escapes are valid YAML).
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    crate::logs::json_string(&mut out, s);
    out
}

fn fmt_pct(ratio: f64) -> String {
    let p = ratio * 100.0;
    // 99.9 rather than 99.90000000000001
    let s = format!("{p:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_thresholds_are_rejected_by_name() {
        let opts = AssetOptions {
            error_ratio: 1.5,
            ..AssetOptions::default()
        };
        let e = opts.alert_rules().expect_err("ratio above 1");
        assert!(e.to_string().contains("error_ratio"), "{e}");
        let opts = AssetOptions {
            p99_seconds: f64::NAN,
            ..AssetOptions::default()
        };
        assert!(opts.grafana_dashboard().is_err());
    }

    #[test]
    fn percentages_print_without_float_noise() {
        assert_eq!(fmt_pct(0.999), "99.9");
        assert_eq!(fmt_pct(0.99), "99");
    }
}
