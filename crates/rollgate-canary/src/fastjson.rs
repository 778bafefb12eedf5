//! A fast path for the one part of `SAMPLES.json` that is large: a plain
//! JSON array of numbers (see `docs/adr/0005-samples-number-array-fast-path.md`).
//!
//! [`number_array`] parses `[1, 2.5, 3e2]` into the same `f64`s serde_json
//! (with its `float_roundtrip` feature: correctly rounded) gives, or
//! declines with `None` on anything else (a string, `null`, a nested value,
//! a number out of range, bad syntax), and the caller then parses the
//! document the ordinary way, so errors and their positions are serde_json's.

/// Exact powers of ten as `f64` (every one up to `1e22` is representable).
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// The values of a JSON array holding only numbers, or `None` when `s` is
/// anything else (the caller falls back to serde_json).
#[cfg(test)]
pub(crate) fn number_array(s: &str) -> Option<Vec<f64>> {
    let b = s.as_bytes();
    let start = skip_ws(b, 0);
    let (v, end) = numbers_at(b, start)?;
    (skip_ws(b, end) == b.len()).then_some(v)
}

/// The end (one past `]`) of the array of numbers starting with `[` at
/// `start`, found without parsing: the first `]` after it (an array that
/// holds anything but numbers is declined when parsed).
pub(crate) fn array_end(b: &[u8], start: usize) -> Option<usize> {
    if b.get(start) != Some(&b'[') {
        return None;
    }
    let rest = b.get(start + 1..)?;
    // Eight bytes at a time: a byte of `w ^ (b']' * 0x01..01)` is zero
    // exactly where `w` holds `]` (the has-zero-byte test).
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = rest.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_le_bytes(w) ^ (ONES * u64::from(b']'));
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        offset += 8;
    }
    rest[offset..]
        .iter()
        .position(|&c| c == b']')
        .map(|p| start + 1 + offset + p + 1)
}

/// The numbers of the array starting with `[` at `start`, and the index
/// after its `]`.
pub(crate) fn numbers_at(b: &[u8], start: usize) -> Option<(Vec<f64>, usize)> {
    let end = array_end(b, start)?;
    let mut i = skip_ws(b, start + 1);
    // At least one byte per number and one per comma.
    let mut out = Vec::with_capacity((end - start) / 2);
    if b.get(i) == Some(&b']') {
        return Some((out, i + 1));
    }
    loop {
        let (v, next) = number(b, i)?;
        out.push(v);
        i = skip_ws(b, next);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => return Some((out, i + 1)),
            _ => return None,
        }
    }
}

/// The index after the JSON string starting with `"` at `start`, and its
/// text when it has no escapes (`None` for the text: has escapes).
fn string_at(b: &[u8], start: usize) -> Option<(usize, Option<&str>)> {
    if b.get(start) != Some(&b'"') {
        return None;
    }
    let mut i = start + 1;
    let mut plain = true;
    loop {
        match *b.get(i)? {
            b'"' => break,
            b'\\' => {
                plain = false;
                i += 2;
            }
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
    let text = plain
        .then(|| std::str::from_utf8(&b[start + 1..i]).ok())
        .flatten();
    Some((i + 1, text))
}

/// The index after the JSON value starting at `start` (its syntax is
/// checked by whoever parses it).
fn value_end(b: &[u8], start: usize) -> Option<usize> {
    match *b.get(start)? {
        b'"' => Some(string_at(b, start)?.0),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = start;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = string_at(b, i)?.0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = start;
            while i < b.len() && !matches!(b[i], b',' | b'}' | b']') && !is_ws(b[i]) {
                i += 1;
            }
            Some(i)
        }
    }
}

/// A `SAMPLES.json` document as the fast path reads it: per metric, each
/// cohort's array of numbers as a byte range (parsed later, possibly on
/// another thread) or any other value's text, and the unit's text.
pub(crate) struct Outline<'t> {
    pub(crate) metrics: Vec<MetricOutline<'t>>,
}

/// One metric of an [`Outline`].
pub(crate) struct MetricOutline<'t> {
    pub(crate) name: &'t str,
    pub(crate) baseline: Part<'t>,
    pub(crate) canary: Part<'t>,
    pub(crate) unit: Option<&'t str>,
}

/// A cohort's value in an [`Outline`].
pub(crate) enum Part<'t> {
    /// An array, by byte range (`[` to `]` inclusive).
    Array(std::ops::Range<usize>),
    /// Any other value's text.
    Other(&'t str),
}

fn expect(b: &[u8], i: usize, c: u8) -> Option<usize> {
    (b.get(i) == Some(&c)).then_some(i + 1)
}

/// The outline of `{"metrics": {NAME: {"baseline": .., "canary": ..,
/// "unit": ..}}}`, or `None` for anything unusual (escaped names,
/// duplicate or unknown keys, missing cohorts, bad syntax): the caller
/// then parses the document the ordinary way.
pub(crate) fn outline(text: &str) -> Option<Outline<'_>> {
    let b = text.as_bytes();
    let mut i = expect(b, skip_ws(b, 0), b'{')?;
    i = skip_ws(b, i);
    let (next, key) = string_at(b, i)?;
    if key? != "metrics" {
        return None;
    }
    i = expect(b, skip_ws(b, next), b':')?;
    i = expect(b, skip_ws(b, i), b'{')?;
    let mut metrics: Vec<MetricOutline<'_>> = Vec::new();
    i = skip_ws(b, i);
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            let (next, name) = string_at(b, i)?;
            let name = name?;
            if metrics.iter().any(|m| m.name == name) {
                return None;
            }
            i = expect(b, skip_ws(b, next), b':')?;
            i = expect(b, skip_ws(b, i), b'{')?;
            let (mut baseline, mut canary, mut unit) = (None, None, None);
            i = skip_ws(b, i);
            if b.get(i) != Some(&b'}') {
                loop {
                    let (next, key) = string_at(b, i)?;
                    i = skip_ws(b, expect(b, skip_ws(b, next), b':')?);
                    let end = if b.get(i) == Some(&b'[') {
                        array_end(b, i)?
                    } else {
                        value_end(b, i)?
                    };
                    let part = if b[i] == b'[' {
                        Part::Array(i..end)
                    } else {
                        Part::Other(text.get(i..end)?)
                    };
                    match (key?, part) {
                        ("baseline", p) if baseline.is_none() => baseline = Some(p),
                        ("canary", p) if canary.is_none() => canary = Some(p),
                        ("unit", Part::Other(t)) if unit.is_none() => unit = Some(t),
                        _ => return None,
                    }
                    i = skip_ws(b, end);
                    match b.get(i) {
                        Some(b',') => i = skip_ws(b, i + 1),
                        Some(b'}') => break,
                        _ => return None,
                    }
                }
            }
            i += 1;
            metrics.push(MetricOutline {
                name,
                baseline: baseline?,
                canary: canary?,
                unit,
            });
            i = skip_ws(b, i);
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    i = expect(b, skip_ws(b, i), b'}')?;
    (skip_ws(b, i) == b.len()).then_some(Outline { metrics })
}

/// One JSON number starting at `start`: its value and the index after it.
fn number(b: &[u8], start: usize) -> Option<(f64, usize)> {
    let mut i = start;
    let neg = b.get(i) == Some(&b'-');
    if neg {
        i += 1;
    }
    let int_start = i;
    let mut m: u64 = 0;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        i += 1;
    }
    let int_digits = i - int_start;
    if int_digits == 0 || (int_digits > 1 && b[int_start] == b'0') {
        return None;
    }
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            i += 1;
        }
        frac_digits = i - frac_start;
        if frac_digits == 0 {
            return None;
        }
    }
    let mut exponent = false;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        exponent = true;
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == exp_start {
            return None;
        }
    }
    // Up to 19 digits fit a u64 exactly. An integer converts with one
    // rounding; a decimal with a mantissa up to 2^53 and at most 22
    // fraction digits is one correctly rounded division of two exact
    // values (Clinger's fast path); a longer mantissa gets the division's
    // result checked exactly (`exact_quotient`). Anything else goes to the
    // standard library's correctly rounded parser.
    let fast = if exponent || int_digits + frac_digits > 19 {
        None
    } else if frac_digits == 0 {
        Some(m as f64)
    } else if m <= 1 << 53 && frac_digits < POW10.len() {
        Some(m as f64 / POW10[frac_digits])
    } else {
        exact_quotient(m, frac_digits)
    };
    let v = match fast {
        Some(v) if neg => -v,
        Some(v) => v,
        None => {
            // The token is ASCII by construction.
            let token = std::str::from_utf8(&b[start..i]).ok()?;
            token.parse::<f64>().ok()?
        }
    };
    v.is_finite().then_some((v, i))
}

/// `m / 10^k` correctly rounded, when the quick quotient can be proven to
/// be it: `q = (m as f64) / 10^k` rounds twice, so it is checked exactly in
/// 128-bit integers (`q`'s two rounding midpoints must bracket `m / 10^k`;
/// a tie needs an even `q`). `None` (the caller parses the slow way) when
/// the check fails or the numbers leave the range where it is exact
/// (`q` at least 2^-10, `k` at most 20).
fn exact_quotient(m: u64, k: usize) -> Option<f64> {
    if k > 20 {
        return None;
    }
    let q = m as f64 / POW10[k];
    // q is finite and positive here (m >= 1, 10^k finite).
    if q < 1.0 / 1024.0 {
        return None;
    }
    // q = mant * 2^exp with a 53-bit mant (q is normal here).
    let bits = q.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mant = (bits & ((1 << 52) - 1)) | (1 << 52);
    // At a power of two the lower neighbour is nearer: not handled here.
    if !(-62..=0).contains(&exp) || mant == 1 << 52 {
        return None;
    }
    let shift = (-exp) as u32;
    // Compare 2 m 2^-exp with (2 mant ± 1) 10^k: all below 2^128.
    let lhs = u128::from(m) << (shift + 1);
    let p = POW10_INT[k];
    let lo = (2 * u128::from(mant) - 1) * p;
    let hi = (2 * u128::from(mant) + 1) * p;
    let even = mant & 1 == 0;
    let inside = (lo < lhs || (even && lo == lhs)) && (lhs < hi || (even && lhs == hi));
    inside.then_some(q)
}

/// Powers of ten as integers, up to `10^20`.
const POW10_INT: [u128; 21] = {
    let mut t = [1u128; 21];
    let mut i = 1;
    while i < 21 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn serde(s: &str) -> Option<Vec<f64>> {
        serde_json::from_str::<Vec<f64>>(s).ok()
    }

    fn bits(v: &Option<Vec<f64>>) -> Option<Vec<u64>> {
        v.as_ref().map(|v| v.iter().map(|x| x.to_bits()).collect())
    }

    #[test]
    fn agrees_with_serde_json_on_edge_cases() {
        for s in [
            "[]",
            " [ ] ",
            "[0]",
            "[-0]",
            "[-0.0]",
            "[1,2,3]",
            "[ 1 , 2.5 ,\n\t3e2 ]",
            "[157.8275527694942, 90.74849435895194]",
            "[0.1, 0.2, 0.30000000000000004]",
            "[9007199254740993]",
            "[9007199254740993.5]",
            "[12345678901234567890123]",
            "[1.7976931348623157e308]",
            "[5e-324]",
            "[2.2250738585072011e-308]",
            "[0.000000000000000000000001]",
            "[1E5, 1e+5, 1e-5, -1.5E-3]",
            "[123456789012345678]",
            "[18446744073709551615]",
            "[18446744073709551616]",
            "[-9223372036854775808]",
            "[241.85603745804173, 0.0012345678901234567, 1.0000000000000002]",
            "[9007199254740992.5, 4503599627370496.5, 1.00000000000000011102230246251565404]",
            "[0.30000000000000001665, 123456.78901234567891]",
        ] {
            let fast = number_array(s);
            assert!(fast.is_some(), "{s} declined");
            assert_eq!(bits(&fast), bits(&serde(s)), "{s}");
        }
    }

    #[test]
    fn declines_what_is_not_a_plain_number_array() {
        for s in [
            "",
            "[",
            "[1,]",
            "[,1]",
            "[1 2]",
            "[01]",
            "[1.]",
            "[.5]",
            "[1e]",
            "[+1]",
            "[1e999]",
            "[-1e999]",
            "[NaN]",
            "[Infinity]",
            "[\"1\"]",
            "[null]",
            "[[1]]",
            "[1] x",
            "{\"events\": 1}",
            "[1, true]",
        ] {
            assert_eq!(number_array(s), None, "{s}");
        }
    }

    fn number_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| format!("{v:?}")),
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| format!("{v:e}")),
            any::<u64>().prop_map(|v| v.to_string()),
            any::<i64>().prop_map(|v| v.to_string()),
            (0u64..100_000, 0u32..25).prop_map(|(m, d)| format!(
                "{}.{:0>width$}",
                m / 7,
                m,
                width = d as usize
            )),
            "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?",
            // Long mantissas near rounding midpoints (exact_quotient).
            "[1-9][0-9]{0,4}\\.[0-9]{12,16}(0|5|49|50|51)",
            (1u64..1 << 60, 1usize..21).prop_map(|(m, k)| {
                let s = format!("{m:0>width$}", width = k + 1);
                format!("{}.{}", &s[..s.len() - k], &s[s.len() - k..])
            }),
        ]
    }

    proptest! {
        #[test]
        fn equals_serde_json_bit_for_bit(
            nums in proptest::collection::vec(number_text(), 0..40),
            ws in "[ \t\n\r]{0,2}",
        ) {
            let s = format!("[{ws}{}{ws}]", nums.join(&format!("{ws},{ws}")));
            let fast = number_array(&s);
            let slow = serde(&s);
            // Both accept or both reject (out-of-range numbers: serde_json
            // errors, the fast path declines), and agree bit for bit.
            prop_assert_eq!(bits(&fast), bits(&slow), "{}", s);
        }

        #[test]
        fn arbitrary_text_never_panics_and_never_disagrees(s in "[\\[\\]0-9eE.,+\\- a-z\"]{0,40}") {
            if let Some(v) = number_array(&s) {
                prop_assert_eq!(bits(&Some(v)), bits(&serde(&s)), "{}", s);
            }
        }
    }
}
