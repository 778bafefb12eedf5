//! Plan files: any input either parses into a plan that covers every target
//! exactly once, or fails with an error that names the file and a position.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollgate::plan::PlanFile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match PlanFile::parse(text, "fuzz.toml") {
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
