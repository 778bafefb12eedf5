//! Arbitrary rules text and documents: rules parse or fail with a message,
//! overlays merge or fail with a position, and diffing under any rules never
//! panics; secrets marked by a rule never reach the rendered report.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollgate_drift::{
    Differ, Format, Limits, RenderOptions, Rules, apply_overlay, load, render_json, render_text,
};

fuzz_target!(|input: (&str, &str, &str)| {
    let (rules_text, a, b) = input;
    let limits = Limits {
        max_depth: 32,
        max_nodes: 10_000,
        ..Limits::default()
    };
    let rules = match Rules::from_toml(rules_text, "r.toml") {
        Ok(r) => r,
        Err(e) => {
            assert!(e.to_string().starts_with("r.toml: invalid rules"));
            Rules::new()
        }
    };
    let (Ok(mut base), Ok(over)) = (
        load(a, Format::Yaml, "a.yaml", &limits),
        load(b, Format::Yaml, "b.yaml", &limits),
    ) else {
        return;
    };
    let live = over.clone();
    let _ = apply_overlay(&mut base, &over, &rules, "b.yaml");
    let rules = rules.with_rule(
        rollgate_drift::Rule::new("/canary")
            .expect("valid pattern")
            .secret(),
    );
    let mut desired = base;
    if let rollgate_drift::Value::Object(m) = &mut desired.value {
        m.insert(
            "canary",
            rollgate_drift::Node::new(rollgate_drift::Value::String("CANARY-SECRET".into())),
        );
    }
    let differ = Differ::new(rules);
    for report in [
        differ.diff(&desired, &live),
        differ.diff(&live, &desired),
        differ.parity(&desired, &live),
    ] {
        let opts = RenderOptions::default();
        for out in [
            render_text(&report, &opts),
            render_json(&report, &opts),
            report.patch().to_json(),
        ] {
            assert!(!out.contains("CANARY-SECRET"), "{out}");
        }
    }
});
