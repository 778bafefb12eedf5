//! Any bytes: the YAML loader returns a tree or an error with a position,
//! never panics (alias bombs stop at the node limit); a loaded tree renders
//! to JSON that loads back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollgate_drift::{Error, Format, Limits, load, load_bytes};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_depth: 64,
        max_nodes: 100_000,
        ..Limits::default()
    };
    match load_bytes(data, Format::Yaml, "fuzz.yaml", &limits) {
        Ok(node) => {
            let json_limits = Limits {
                max_nodes: usize::MAX,
                ..limits
            };
            let again = load(&node.to_json(), Format::Json, "again.json", &json_limits)
                .expect("rendered JSON must load again");
            assert_eq!(node, again);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("fuzz.yaml"),
                "error must name the input: {msg}"
            );
            if let Error::Syntax { line, .. } = e {
                assert!(line >= 1, "error must have a position: {msg}");
            }
        }
    }
});
