//! Plan files: any input either parses into a plan that covers every target
//! exactly once, or fails with an error that names the file and a position.
//! A canary gate judges with a fixed analysis (no file is read).
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rollgate::canary::AnalysisConfig;
use rollgate::plan::Plan;

static ANALYSIS: LazyLock<AnalysisConfig> = LazyLock::new(|| {
    AnalysisConfig::from_toml_str(
        "[[metrics]]\nname = \"errors\"\nkind = \"count\"\nbad = \"increase\"\n",
    )
    .expect("a valid analysis")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let analysis = ANALYSIS.clone();
    match Plan::parse_with_analysis(text, "fuzz.toml", Path::new("analysis.toml"), analysis) {
        Ok(plan) => {
            let req = plan.request("fuzz", None);
            assert!(!req.plan.phases.is_empty(), "a valid plan has phases");
            let mut seen: Vec<_> = req.plan.targets().collect();
            let n = seen.len();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), n, "a target appears twice in the plan");
            assert_eq!(n, plan.targets.len(), "the plan covers every target");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with("fuzz.toml:"), "error without a position: {msg}");
        }
    }
});
