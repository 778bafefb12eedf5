//! Cross-check: the emitted RFC 6902 patches applied by Python's independent
//! `jsonpatch` package (installed by scripts/install-test-deps.sh) turn LIVE
//! into DESIRED.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rollgate_drift::diff;

const SCRIPT: &str = r#"
import json, sys, jsonpatch
bad = 0
n = 0
for line in sys.stdin:
    case = json.loads(line)
    n += 1
    out = jsonpatch.apply_patch(case["live"], case["patch"])
    if out != case["desired"]:
        bad += 1
        print("mismatch:", json.dumps(case), "got", json.dumps(out), file=sys.stderr)
print(n, bad)
"#;

#[test]
fn python_jsonpatch_applies_our_patches() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = (common::tree(), common::tree(), common::related_pair());
    let mut input = String::new();
    let mut ops = 0;
    for _ in 0..300 {
        let (a, b, (c, d)) = strategy.new_tree(&mut runner).unwrap().current();
        for (desired, live) in [(a, b), (c, d)] {
            let patch = diff(&desired, &live).patch().clone();
            ops += patch.ops().len();
            input.push_str(&format!(
                "{{\"desired\":{},\"live\":{},\"patch\":{}}}\n",
                desired.to_json(),
                live.to_json(),
                patch.to_json()
            ));
        }
    }
    assert!(ops > 600, "cases too easy: {ops} operations");
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed (scripts/install-test-deps.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python failed (is jsonpatch installed?): {stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "600 0",
        "{stderr}"
    );
}
