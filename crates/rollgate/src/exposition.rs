//! The Prometheus text exposition format (version 0.0.4), parsed without
//! copying: every name and label value borrows the page, except label
//! values with escapes.
//!
//! Written here rather than taken from `prometheus-parse` (a regex match and
//! owned strings per line) because the gate parses every target's page
//! every scrape interval: it is measured side by side with Python's
//! `prometheus_client` parser in BENCHMARKS.md (`benches/exposition/bench.py`)
//! and fuzzed (`fuzz/fuzz_targets/exposition.rs`: whatever it accepts renders
//! back to a page that parses to the same samples).
//!
//! ```
//! use rollgate::exposition::{parse, MetricType};
//! let page = "# TYPE http_requests_total counter\n\
//!             http_requests_total{route=\"/records\",code=\"200\"} 1027 1700000000000\n\
//!             up 1\n";
//! let parsed = parse(page)?;
//! assert_eq!(parsed.samples.len(), 2);
//! let s = &parsed.samples[0];
//! assert_eq!(s.name, "http_requests_total");
//! assert_eq!(s.label("code"), Some("200"));
//! assert_eq!(s.value, 1027.0);
//! assert_eq!(s.timestamp_ms, Some(1_700_000_000_000));
//! assert_eq!(parsed.types.get("http_requests_total"), Some(&MetricType::Counter));
//! assert!(parse("up{x=1} 1").is_err());
//! # Ok::<(), rollgate::exposition::ParseError>(())
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// A family's declared type (`# TYPE name type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A monotonic counter.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative `_bucket{le}` counts with `_sum` and `_count`.
    Histogram,
    /// Quantiles with `_sum` and `_count`.
    Summary,
    /// Declared `untyped` (or any other word).
    Untyped,
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The series name (`http_request_duration_seconds_bucket`).
    pub name: &'a str,
    /// Label pairs in the order written.
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
    /// The value (`NaN`, `+Inf` and `-Inf` included).
    pub value: f64,
    /// The optional timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
}

impl Sample<'_> {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_ref())
    }
}

/// A parsed page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition<'a> {
    /// Every sample, in page order.
    pub samples: Vec<Sample<'a>>,
    /// Declared types by family name.
    pub types: BTreeMap<&'a str, MetricType>,
}

/// Where and why a page is not in the text format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (bytes).
    pub column: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.reason
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole page.
pub fn parse(text: &str) -> Result<Exposition<'_>, ParseError> {
    let mut out = Exposition {
        samples: Vec::with_capacity(text.len() / 48),
        types: BTreeMap::new(),
    };
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = line.trim_start_matches([' ', '\t']);
        if trimmed.is_empty() {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let fail = |col: usize, reason: String| ParseError {
            line: i + 1,
            column: indent + col + 1,
            reason,
        };
        if let Some(comment) = trimmed.strip_prefix('#') {
            if let Some((name, ty)) = type_line(comment) {
                if !is_metric_name(name) {
                    return Err(fail(0, format!("bad metric name {name:?} in # TYPE")));
                }
                out.types.insert(name, ty);
            }
            continue;
        }
        out.samples
            .push(sample(trimmed).map_err(|(col, why)| fail(col, why))?);
    }
    Ok(out)
}

fn type_line(comment: &str) -> Option<(&str, MetricType)> {
    let mut words = comment.split_ascii_whitespace();
    if words.next()? != "TYPE" {
        return None;
    }
    let name = words.next()?;
    let ty = match words.next()? {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        "summary" => MetricType::Summary,
        _ => MetricType::Untyped,
    };
    Some((name, ty))
}

fn is_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b':')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b':')
}

type Fail = (usize, String);

fn sample(line: &str) -> Result<Sample<'_>, Fail> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
        i += 1;
    }
    let name = &line[..i];
    if !is_metric_name(name) {
        return Err((0, "expected a metric name".into()));
    }
    let mut labels = Vec::new();
    if b.get(i) == Some(&b'{') {
        i += 1;
        loop {
            i = skip_ws(b, i);
            if b.get(i) == Some(&b'}') {
                i += 1;
                break;
            }
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let key = &line[start..i];
            if key.is_empty() || key.as_bytes()[0].is_ascii_digit() {
                return Err((start, "expected a label name".into()));
            }
            i = skip_ws(b, i);
            if b.get(i) != Some(&b'=') {
                return Err((i, format!("expected '=' after label {key}")));
            }
            i = skip_ws(b, i + 1);
            if b.get(i) != Some(&b'"') {
                return Err((i, format!("expected '\"' to open the value of label {key}")));
            }
            i += 1;
            let (value, next) = label_value(line, i)?;
            labels.push((key, value));
            i = skip_ws(b, next);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return Err((i, "expected ',' or '}' after a label".into())),
            }
        }
    }
    if i < b.len() && b[i] != b' ' && b[i] != b'\t' {
        return Err((i, "expected a space before the value".into()));
    }
    let rest = &line[i..];
    let mut words = rest.split_ascii_whitespace();
    let Some(v) = words.next() else {
        return Err((i, format!("no value for {name}")));
    };
    let value = parse_value(v).ok_or_else(|| (i, format!("bad value {v:?}")))?;
    let timestamp_ms = match words.next() {
        None => None,
        // An OpenMetrics exemplar: not used here.
        Some("#") => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| (i, format!("bad timestamp {t:?}")))?,
        ),
    };
    if timestamp_ms.is_some() {
        match words.next() {
            None | Some("#") => {}
            Some(x) => return Err((i, format!("unexpected {x:?} after the timestamp"))),
        }
    }
    Ok(Sample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
        i += 1;
    }
    i
}

/// The quoted value starting at byte `i` (after the opening quote), and the
/// index after the closing quote.
fn label_value(line: &str, start: usize) -> Result<(Cow<'_, str>, usize), Fail> {
    let b = line.as_bytes();
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'"' => return Ok((Cow::Borrowed(&line[start..i]), i + 1)),
            b'\\' => break,
            _ => i += 1,
        }
    }
    let mut owned = String::from(&line[start..i]);
    while i < b.len() {
        match b[i] {
            b'"' => return Ok((Cow::Owned(owned), i + 1)),
            b'\\' => {
                match b.get(i + 1) {
                    Some(b'\\') => owned.push('\\'),
                    Some(b'"') => owned.push('"'),
                    Some(b'n') => owned.push('\n'),
                    _ => return Err((i, "bad escape in a label value".into())),
                }
                i += 2;
            }
            _ => {
                // Copy the run up to the next quote or backslash (UTF-8 safe:
                // both are ASCII, so the run ends on a char boundary).
                let run_end = b[i..]
                    .iter()
                    .position(|c| *c == b'"' || *c == b'\\')
                    .map_or(b.len(), |p| i + p);
                owned.push_str(&line[i..run_end]);
                i = run_end;
            }
        }
    }
    Err((start, "label value is never closed".into()))
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => {
            // Only digits, signs, dots and exponents: Rust would also take
            // "infinity" or "nan", which the format does not.
            if v.bytes()
                .all(|c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'e' | b'E'))
            {
                v.parse().ok()
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_page_with_escapes_and_special_values() {
        let page = "# HELP lat Latency.\n# TYPE lat histogram\n\
            lat_bucket{route=\"/a\\\"b\\\\c\\n\",le=\"0.1\"} 3\n\
            lat_bucket{route=\"/a\",le=\"+Inf\",} 5\r\n\
            lat_sum{route=\"/a\"} 0.25\n\
            lat_count{route=\"/a\"} 5\n\
            \n  g -Inf\nh NaN\nk 1e3 -5\nw{} 7 # {trace_id=\"x\"} 1\n";
        let p = parse(page).expect("parses");
        assert_eq!(p.types["lat"], MetricType::Histogram);
        assert_eq!(p.samples[0].label("route"), Some("/a\"b\\c\n"));
        assert_eq!(p.samples[0].label("le"), Some("0.1"));
        assert_eq!(p.samples[1].label("le"), Some("+Inf"));
        assert_eq!(p.samples[4].value, f64::NEG_INFINITY);
        assert!(p.samples[5].value.is_nan());
        assert_eq!(p.samples[6].value, 1000.0);
        assert_eq!(p.samples[6].timestamp_ms, Some(-5));
        assert_eq!(p.samples[7].value, 7.0);
        assert!(p.samples[7].labels.is_empty());
        assert!(matches!(p.samples[0].labels[0].1, Cow::Owned(_)));
        assert!(matches!(p.samples[1].labels[0].1, Cow::Borrowed(_)));
    }

    #[test]
    fn errors_name_line_and_column() {
        let cases = [
            ("ok 1\nbad{x=1} 2\n", 2, 7, "expected '\"'"),
            ("x{a=\"1\" b=\"2\"} 1", 1, 9, "expected ',' or '}'"),
            ("x{a=\"1} 1", 1, 6, "never closed"),
            ("x 1 2 3", 1, 2, "unexpected \"3\""),
            ("x infinity", 1, 2, "bad value"),
            ("x", 1, 2, "no value"),
            ("9x 1", 1, 1, "metric name"),
            ("x{a=\"\\q\"} 1", 1, 6, "bad escape"),
            ("x{=\"1\"} 1", 1, 3, "label name"),
            ("  x{a=\"1\"}1", 1, 11, "space before the value"),
        ];
        for (page, line, col, why) in cases {
            let e = parse(page).expect_err(page);
            assert_eq!((e.line, e.column), (line, col), "{page:?}: {e}");
            assert!(e.reason.contains(why), "{page:?}: {e}");
        }
    }

    #[test]
    fn a_histogram_and_counter_page_parses() {
        let registry = prometheus_page();
        let p = parse(&registry).expect("parses");
        assert_eq!(p.samples.len(), 5);
    }

    fn prometheus_page() -> String {
        "# HELP http_request_duration_seconds Request latency.\n\
         # TYPE http_request_duration_seconds histogram\n\
         http_request_duration_seconds_bucket{route=\"/records\",le=\"0.005\"} 1\n\
         http_request_duration_seconds_bucket{route=\"/records\",le=\"+Inf\"} 2\n\
         http_request_duration_seconds_sum{route=\"/records\"} 0.012\n\
         http_request_duration_seconds_count{route=\"/records\"} 2\n\
         # TYPE http_requests_total counter\n\
         http_requests_total{code=\"200\",route=\"/records\"} 2\n"
            .to_string()
    }
}
