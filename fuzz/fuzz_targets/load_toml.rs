//! Any bytes: the TOML loader returns a tree or an error with a position,
//! never panics or overflows the stack; a loaded tree renders to JSON that
//! loads back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollgate_drift::{Format, Limits, load, load_bytes};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_depth: 64,
        max_nodes: 100_000,
        ..Limits::default()
    };
    match load_bytes(data, Format::Toml, "fuzz.toml", &limits) {
        Ok(node) => {
            let json_limits = Limits {
                max_depth: 1000,
                ..limits
            };
            let again = load(&node.to_json(), Format::Json, "again.json", &json_limits)
                .expect("rendered JSON must load again");
            assert_eq!(node, again);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("fuzz.toml"),
                "error must name the input: {msg}"
            );
        }
    }
});
