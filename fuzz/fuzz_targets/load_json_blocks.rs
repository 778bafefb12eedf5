//! Any bytes, streamed a block of lines at a time with block boundaries put
//! anywhere (the first byte picks the block size): the same tree, or the same
//! error at the same position, as loading the text whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rollgate_drift::{Format, Limits, load_bytes, load_json_reader_blocks};

fuzz_target!(|data: &[u8]| {
    let Some((&first, text)) = data.split_first() else {
        return;
    };
    let block = usize::from(first % 24) + 1;
    let limits = Limits {
        max_depth: 64,
        max_nodes: 100_000,
        ..Limits::default()
    };
    let whole = load_bytes(text, Format::Json, "fuzz.json", &limits).map_err(|e| e.to_string());
    let blocks =
        load_json_reader_blocks(text, "fuzz.json", &limits, block).map_err(|e| e.to_string());
    if std::str::from_utf8(text).is_ok() {
        assert_eq!(whole, blocks, "block size {block}");
    } else {
        // The whole-text loader rejects bad UTF-8 before parsing; streaming
        // may meet a syntax error first. Either way: an error, never a tree.
        assert!(whole.is_err() && blocks.is_err(), "block size {block}");
    }
});
