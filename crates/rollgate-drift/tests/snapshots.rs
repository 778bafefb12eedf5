//! Snapshot tests of text and JSON reports on realistic inputs: a Kubernetes
//! Deployment, Helm-style values with an environment overlay, a Terraform
//! state and an nginx-style service config — reordered lists, unit-only
//! changes, real changes and secrets.

use std::path::PathBuf;

use rollgate_drift::{
    Differ, Limits, Node, RenderOptions, Report, Rules, apply_overlay, load_file, render_json,
    render_text,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str) -> Node {
    load_file(&fixture(name), &Limits::default()).unwrap()
}

fn compare(desired: &Node, live: &str, rules: &str) -> Report {
    let rules = Rules::from_file(&fixture(rules)).unwrap();
    Differ::new(rules).diff(desired, &load(live))
}

fn check(name: &str, report: &Report, desired: &str, live: &str) {
    let mut opts = RenderOptions::new(desired, live);
    if desired.contains('+') {
        // A base and its overlays: each position in its own file.
        opts = opts.desired_sources(desired.split('+'));
    }
    let text = render_text(report, &opts);
    let json = render_json(report, &opts);
    let patch = report.patch().to_json_lines();
    for out in [&text, &json, &patch] {
        assert!(!out.contains("canary"), "a secret leaked:\n{out}");
    }
    insta::assert_snapshot!(format!("{name}_text"), text);
    insta::assert_snapshot!(format!("{name}_json"), json);
    insta::assert_snapshot!(format!("{name}_patch"), patch);
}

#[test]
fn kubernetes_deployment_with_reordered_containers_and_env() {
    let desired = load("deployment.desired.yaml");
    let report = compare(&desired, "deployment.live.json", "k8s.rules.toml");
    check(
        "deployment",
        &report,
        "deployment.desired.yaml",
        "deployment.live.json",
    );
}

#[test]
fn helm_values_with_prod_overlay() {
    let mut desired = load("values.base.yaml");
    let rules = Rules::from_file(&fixture("values.rules.toml")).unwrap();
    let mut prod = load("values.prod.yaml");
    prod.set_source(1);
    apply_overlay(&mut desired, &prod, &rules, "values.prod.yaml").unwrap();
    let report = compare(&desired, "values.live.json", "values.rules.toml");
    check(
        "helm_values",
        &report,
        "values.base.yaml+values.prod.yaml",
        "values.live.json",
    );
}

#[test]
fn terraform_state_with_composite_keys() {
    let desired = load("terraform.desired.json");
    let report = compare(&desired, "terraform.live.json", "terraform.rules.toml");
    check(
        "terraform",
        &report,
        "terraform.desired.json",
        "terraform.live.json",
    );
}

#[test]
fn nginx_service_config_with_unit_only_changes() {
    let desired = load("nginx.desired.toml");
    let report = compare(&desired, "nginx.live.toml", "nginx.rules.toml");
    check("nginx", &report, "nginx.desired.toml", "nginx.live.toml");
}

#[test]
fn kubernetes_parity_between_environments() {
    let staging = load("deployment.desired.yaml");
    let prod = load("deployment.live.json");
    let rules = Rules::from_file(&fixture("k8s.rules.toml")).unwrap();
    let report = Differ::new(rules).parity(&staging, &prod);
    let text = render_text(&report, &RenderOptions::new("staging.yaml", "prod.json"));
    insta::assert_snapshot!("deployment_parity_text", text);
}
