//! Desired YAML against live JSON: keyed lists, unit normalisation, a
//! critical image change, the text report and the remediation patch.
//!
//! ```text
//! cargo run -p rollgate-drift --example diff
//! ```

use rollgate_drift::{Differ, Format, Limits, RenderOptions, Rules, load, render_text};

fn main() -> Result<(), rollgate_drift::Error> {
    let desired = load(
        r#"
spec:
  containers:
    - name: web
      image: web:2.1
      resources: {limits: {cpu: 100m, memory: 1Gi}}
    - name: sidecar
      image: proxy:1
"#,
        Format::Yaml,
        "desired.yaml",
        &Limits::default(),
    )?;
    // LIVE lists the containers in another order and writes quantities differently.
    let live = load(
        r#"{"spec": {"containers": [
    {"name": "sidecar", "image": "proxy:1"},
    {"name": "web", "image": "web:2.0",
     "resources": {"limits": {"cpu": "0.1", "memory": "1073741824"}}}]}}"#,
        Format::Json,
        "live.json",
        &Limits::default(),
    )?;
    let rules = Rules::from_toml(
        r#"
[[rule]]
path = "/spec/containers/*/resources/**/cpu"
normalise = ["cpu"]

[[rule]]
path = "/spec/containers/*/resources/**/memory"
normalise = ["size"]

[[rule]]
path = "/spec/containers/*/image"
severity = "critical"
"#,
        "rules.toml",
    )?;

    let report = Differ::new(rules).diff(&desired, &live);
    print!(
        "{}",
        render_text(&report, &RenderOptions::new("desired.yaml", "live.json"))
    );
    println!("patch: {}", report.patch().to_json());
    // Reordering is not drift, and `100m` is `0.1`: only the image differs.
    assert_eq!(report.differences().len(), 1);
    Ok(())
}
