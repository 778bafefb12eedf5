//! Renderers: text for people, JSON for tools, and the JSON writer the
//! patch uses. Every output is deterministic (keys sorted, document order).

use std::fmt::Write as _;

use crate::diff::{Difference, Kind, Report};
use crate::rules::Severity;
use crate::tree::{Node, Value};

/// How to render a report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenderOptions {
    /// Name of the DESIRED input (a file path).
    pub desired_name: String,
    /// Name of the LIVE input.
    pub live_name: String,
    /// Use ANSI colours (for a terminal).
    pub color: bool,
    /// The files DESIRED was merged from, by [`crate::Pos::source`]: the
    /// base, then each overlay. Empty: every DESIRED position is in
    /// `desired_name`.
    pub desired_sources: Vec<String>,
}

impl RenderOptions {
    /// Options naming both inputs, without colour.
    #[must_use]
    pub fn new(desired_name: impl Into<String>, live_name: impl Into<String>) -> Self {
        Self {
            desired_name: desired_name.into(),
            live_name: live_name.into(),
            color: false,
            desired_sources: Vec::new(),
        }
    }

    /// Names the files DESIRED was merged from (the base, then each overlay
    /// in order), so each DESIRED position is shown in its own file.
    ///
    /// ```
    /// use rollgate_drift::{Format, Limits, Rules, apply_overlay, diff, load, render_text, RenderOptions};
    /// let limits = Limits::default();
    /// let mut desired = load("replicas: 2\nimage: web:1\n", Format::Yaml, "base.yaml", &limits)?;
    /// let mut prod = load("image: web:2\n", Format::Yaml, "prod.yaml", &limits)?;
    /// prod.set_source(1);
    /// apply_overlay(&mut desired, &prod, &Rules::new(), "prod.yaml")?;
    /// let live = load(r#"{"replicas": 2, "image": "web:1"}"#, Format::Json, "live.json", &limits)?;
    /// let opts = RenderOptions::new("base.yaml+prod.yaml", "live.json")
    ///     .desired_sources(["base.yaml", "prod.yaml"]);
    /// let text = render_text(&diff(&desired, &live), &opts);
    /// assert!(text.contains("(prod.yaml:1:8)"), "{text}");
    /// # Ok::<(), rollgate_drift::Error>(())
    /// ```
    #[must_use]
    pub fn desired_sources<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.desired_sources = names.into_iter().map(Into::into).collect();
        self
    }

    /// The file a DESIRED position is in.
    fn desired_file(&self, source: u32) -> &str {
        usize::try_from(source)
            .ok()
            .and_then(|k| self.desired_sources.get(k))
            .map_or(self.desired_name.as_str(), String::as_str)
    }

    /// Turns colour on or off.
    #[must_use]
    pub fn color(mut self, on: bool) -> Self {
        self.color = on;
        self
    }
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self::new("desired", "live")
    }
}

const VALUE_WIDTH: usize = 100;

fn paint(out: &mut String, on: bool, code: &str, text: &str) {
    if on {
        let _ = write!(out, "\x1b[{code}m{text}\x1b[0m");
    } else {
        out.push_str(text);
    }
}

fn kind_color(kind: Kind) -> &'static str {
    match kind {
        Kind::Added => "32",
        Kind::Removed => "31",
        Kind::Changed => "33",
        Kind::Moved => "36",
        Kind::TypeChanged => "35",
    }
}

fn severity_color(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "1;31",
        Severity::Warning => "33",
        Severity::Info => "2",
    }
}

fn short(node: &Node) -> String {
    let mut s = String::new();
    write_json(&mut s, node, None);
    if s.chars().count() > VALUE_WIDTH {
        let cut: String = s.chars().take(VALUE_WIDTH).collect();
        format!("{cut}…")
    } else {
        s
    }
}

fn summary(report: &Report) -> String {
    let counts = report.counts();
    let parts: Vec<String> = [Severity::Critical, Severity::Warning, Severity::Info]
        .iter()
        .filter_map(|s| counts.get(s).map(|n| format!("{n} {s}")))
        .collect();
    let n = report.differences().len();
    format!(
        "{n} difference{} ({})",
        if n == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// Renders the report for people: a summary line, then the differences
/// grouped by their parent path.
///
/// ```
/// use rollgate_drift::{Format, Limits, load, diff, render_text, RenderOptions};
/// let desired = load("replicas: 3\ndb:\n  password: hunter2\n", Format::Yaml, "d.yaml", &Limits::default())?;
/// let live = load("replicas: 2\ndb:\n  password: letmein\n", Format::Yaml, "l.yaml", &Limits::default())?;
/// let text = render_text(&diff(&desired, &live), &RenderOptions::new("d.yaml", "l.yaml"));
/// assert!(text.contains("replicas"));
/// assert!(!text.contains("hunter2") && !text.contains("letmein"));
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
#[must_use]
pub fn render_text(report: &Report, opts: &RenderOptions) -> String {
    let mut out = String::new();
    if report.is_parity() {
        if !report.has_drift() {
            let _ = writeln!(
                out,
                "same structure: {} and {}",
                opts.desired_name, opts.live_name
            );
            return out;
        }
        let _ = writeln!(
            out,
            "structure differs: {} between {} and {}",
            summary(report),
            opts.desired_name,
            opts.live_name
        );
    } else if !report.has_drift() {
        let _ = writeln!(
            out,
            "no drift: {} matches {}",
            opts.live_name, opts.desired_name
        );
        return out;
    } else {
        let _ = writeln!(
            out,
            "drift: {} between {} (desired) and {} (live)",
            summary(report),
            opts.desired_name,
            opts.live_name
        );
    }
    // A parity check compares two environments, neither of them "desired".
    let (a, b) = if report.is_parity() {
        ("a", "b")
    } else {
        ("desired", "live")
    };
    let mut group: Option<String> = None;
    for d in report.differences() {
        // Keys come from the inputs: a line break or an escape sequence in
        // one must not forge a line of the report.
        let label = printable(&d.label);
        let (parent, leaf) = split_label(&label);
        if group.as_deref() != Some(parent) {
            out.push('\n');
            paint(&mut out, opts.color, "1", parent);
            out.push('\n');
            group = Some(parent.to_owned());
        }
        out.push_str("  ");
        paint(
            &mut out,
            opts.color,
            severity_color(d.severity),
            &format!("{:<8}", d.severity.as_str()),
        );
        out.push(' ');
        paint(
            &mut out,
            opts.color,
            kind_color(d.kind),
            &format!("{:<12}", d.kind.as_str()),
        );
        out.push(' ');
        out.push_str(leaf);
        if d.secret {
            out.push_str(" (secret)");
        }
        out.push('\n');
        side(
            &mut out,
            a,
            d.desired.as_ref(),
            d.desired.as_ref().map_or(opts.desired_name.as_str(), |n| {
                opts.desired_file(n.pos.source)
            }),
            Some(&d.path),
        );
        let live_path = d.live_path.as_deref();
        side(&mut out, b, d.live.as_ref(), &opts.live_name, live_path);
    }
    out
}

/// `text` with control characters written as escapes (`\n`, `\u001b`).
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

fn side(out: &mut String, name: &str, node: Option<&Node>, file: &str, path: Option<&str>) {
    match node {
        Some(n) => {
            let _ = write!(out, "      {name:<8} {}", short(n));
            if n.pos.is_known() {
                let _ = write!(out, "  ({file}:{})", n.pos);
            }
            if let Some(p) = path {
                let _ = write!(out, "  {}", printable(p));
            }
            out.push('\n');
        }
        None => {
            let _ = writeln!(out, "      {name:<8} (absent)");
        }
    }
}

fn split_label(label: &str) -> (&str, &str) {
    // The leaf is the last `/key` or `[sel]` segment.
    let cut = label.rfind(['/', '[']).unwrap_or(0);
    let (parent, leaf) = label.split_at(cut);
    let leaf = leaf.strip_prefix('/').unwrap_or(leaf);
    let parent = if parent.is_empty() { "/" } else { parent };
    (parent, if leaf.is_empty() { "/" } else { leaf })
}

/// Renders the report as one JSON document for tools.
///
/// Shape: `{"drift": bool, "desired": name, "live": name, "summary":
/// {"total", "critical", "warning", "info"}, "differences": [{"kind", "path",
/// "live_path", "label", "severity", "secret", "desired": {"value", "file",
/// "line", "column"} | null, "live": ... }]}`.
#[must_use]
pub fn render_json(report: &Report, opts: &RenderOptions) -> String {
    let mut out = String::new();
    let counts = report.counts();
    let count = |s| counts.get(&s).copied().unwrap_or(0);
    out.push_str("{\"drift\":");
    out.push_str(if report.has_drift() { "true" } else { "false" });
    out.push_str(",\"desired\":");
    write_str(&mut out, &opts.desired_name);
    out.push_str(",\"live\":");
    write_str(&mut out, &opts.live_name);
    let _ = write!(
        out,
        ",\"summary\":{{\"total\":{},\"critical\":{},\"warning\":{},\"info\":{}}}",
        report.differences().len(),
        count(Severity::Critical),
        count(Severity::Warning),
        count(Severity::Info)
    );
    out.push_str(",\"differences\":[");
    for (i, d) in report.differences().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("\n  ");
        write_difference(&mut out, d, opts);
    }
    if report.has_drift() {
        out.push('\n');
    }
    out.push_str("]}\n");
    out
}

fn write_difference(out: &mut String, d: &Difference, opts: &RenderOptions) {
    out.push_str("{\"kind\":");
    write_str(out, d.kind.as_str());
    out.push_str(",\"path\":");
    write_str(out, &d.path);
    out.push_str(",\"live_path\":");
    match &d.live_path {
        Some(p) => write_str(out, p),
        None => out.push_str("null"),
    }
    out.push_str(",\"label\":");
    write_str(out, &d.label);
    out.push_str(",\"severity\":");
    write_str(out, d.severity.as_str());
    let _ = write!(out, ",\"secret\":{}", d.secret);
    for (name, node) in [("desired", &d.desired), ("live", &d.live)] {
        let _ = write!(out, ",\"{name}\":");
        match node {
            Some(n) => {
                out.push_str("{\"value\":");
                write_json(out, n, None);
                out.push_str(",\"file\":");
                let file = if name == "desired" {
                    opts.desired_file(n.pos.source)
                } else {
                    &opts.live_name
                };
                write_str(out, file);
                let _ = write!(
                    out,
                    ",\"line\":{},\"column\":{}}}",
                    n.pos.line, n.pos.column
                );
            }
            None => out.push_str("null"),
        }
    }
    out.push('}');
}

/// Writes a JSON string literal.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Writes a node as JSON; `indent` pretty-prints with that many spaces.
pub(crate) fn write_json(out: &mut String, node: &Node, indent: Option<usize>) {
    write_value(out, &node.value, indent, 0);
}

fn newline(out: &mut String, indent: Option<usize>, level: usize) {
    if let Some(n) = indent {
        out.push('\n');
        for _ in 0..n * level {
            out.push(' ');
        }
    }
}

fn write_value(out: &mut String, v: &Value, indent: Option<usize>, level: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_value(out, &item.value, indent, level + 1);
            }
            if !items.is_empty() {
                newline(out, indent, level);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, e) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_str(out, &e.key);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, &e.node.value, indent, level + 1);
            }
            if !map.is_empty() {
                newline(out, indent, level);
            }
            out.push('}');
        }
    }
}

/// Pretty JSON of a node (2-space indent, keys sorted).
#[must_use]
pub fn to_json_pretty(node: &Node) -> String {
    let mut out = String::new();
    write_json(&mut out, node, Some(2));
    out.push('\n');
    out
}
