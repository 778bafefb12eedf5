#![no_main]
//! The exposition parser never panics, and what it accepts renders back to
//! a page that parses to the same samples.

use libfuzzer_sys::fuzz_target;
use rollgate::exposition::parse;

fn render(s: &rollgate::exposition::Sample<'_>) -> String {
    let mut out = String::from(s.name);
    if !s.labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in s.labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    if s.value.is_nan() {
        out.push_str("NaN");
    } else if s.value == f64::INFINITY {
        out.push_str("+Inf");
    } else if s.value == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        out.push_str(&format!("{:e}", s.value));
    }
    if let Some(t) = s.timestamp_ms {
        out.push_str(&format!(" {t}"));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(page) = parse(text) else {
        return;
    };
    let again: String = page.samples.iter().map(|s| render(s) + "\n").collect();
    let reparsed = parse(&again).expect("a rendered page parses");
    assert_eq!(reparsed.samples.len(), page.samples.len());
    for (a, b) in page.samples.iter().zip(&reparsed.samples) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.labels, b.labels);
        assert!(a.value.to_bits() == b.value.to_bits() || (a.value.is_nan() && b.value.is_nan()));
        assert_eq!(a.timestamp_ms, b.timestamp_ms);
    }
});
