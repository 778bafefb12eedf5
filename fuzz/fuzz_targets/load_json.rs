//! Any bytes: the JSON loader returns a tree or an error with a position,
//! never panics; a loaded tree survives a render/reload roundtrip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollgate_drift::{Error, Format, Limits, load, load_bytes};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_depth: 64,
        max_nodes: 100_000,
        ..Limits::default()
    };
    match load_bytes(data, Format::Json, "fuzz.json", &limits) {
        Ok(node) => {
            let again = load(&node.to_json(), Format::Json, "again.json", &limits)
                .expect("rendered JSON must load again");
            assert_eq!(node, again);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("fuzz.json"),
                "error must name the input: {msg}"
            );
            if let Error::Syntax { line, column, .. } = e {
                assert!(
                    line >= 1 && column >= 1,
                    "error must have a position: {msg}"
                );
            }
        }
    }
});
