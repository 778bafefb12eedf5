//! Cross-check: the emitted RFC 6902 patches applied by Python's independent
//! `jsonpatch` package (installed by scripts/install-test-deps.sh) turn LIVE
//! into DESIRED.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rollgate_drift::{Format, Limits, Node, Value, diff, load};

// Python applies each patch and prints the result; the comparison is done
// here, on our tree model, so that Python's `True == 1` cannot hide a
// type change.
const SCRIPT: &str = r#"
import json, sys, jsonpatch
for line in sys.stdin:
    case = json.loads(line)
    try:
        out = jsonpatch.apply_patch(case["live"], case["patch"])
        print(json.dumps({"ok": out}))
    except Exception as e:
        print(json.dumps({"error": str(e)}))
"#;

#[test]
fn python_jsonpatch_applies_our_patches() {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = (
        common::tree(),
        common::tree(),
        common::related_pair(),
        common::keyed_tree(),
        common::keyed_tree(),
    );
    let mut cases: Vec<(Node, bool)> = Vec::new();
    let mut input = String::new();
    let (mut ops, mut keyed_ops) = (0, 0);
    for _ in 0..300 {
        let (a, b, (c, d), e, f) = strategy.new_tree(&mut runner).unwrap().current();
        for (desired, live, keyed) in [(a, b, false), (c, d, false), (e, f, true)] {
            let patch = diff(&desired, &live).patch().clone();
            if keyed {
                keyed_ops += patch.ops().len();
            } else {
                ops += patch.ops().len();
            }
            input.push_str(&format!(
                "{{\"live\":{},\"patch\":{}}}\n",
                live.to_json(),
                patch.to_json()
            ));
            cases.push((desired, keyed));
        }
    }
    assert!(ops > 600, "cases too easy: {ops} operations");
    assert!(
        keyed_ops > 300,
        "keyed cases too easy: {keyed_ops} operations"
    );
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 must be installed (scripts/install-test-deps.sh)");
    let mut stdin = child.stdin.take().unwrap();
    // Written from another thread: Python answers while it reads.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python failed (is jsonpatch installed?): {stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let answers: Vec<&str> = stdout.lines().collect();
    assert_eq!(answers.len(), cases.len(), "{stderr}");
    let limits = Limits::default();
    for (n, (answer, (desired, keyed))) in answers.iter().zip(&cases).enumerate() {
        let answer = load(answer, Format::Json, "python", &limits).unwrap();
        let Value::Object(m) = &answer.value else {
            panic!("case {n}: {}", answer.to_json())
        };
        let patched = m.get("ok").unwrap_or_else(|| {
            panic!(
                "case {n}: jsonpatch refused the patch: {}",
                answer.to_json()
            )
        });
        if *keyed {
            // Keyed lists keep LIVE's order: equal as far as drift is concerned.
            assert!(
                !diff(desired, patched).has_drift(),
                "case {n}: {} != {}",
                patched.to_json(),
                desired.to_json()
            );
        } else {
            assert_eq!(patched, desired, "case {n}");
        }
    }
}
