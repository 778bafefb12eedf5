//! The log layer: one JSON object per line (or a human line on a TTY), with
//! service identity, trace/span ids, flattened span fields and redaction.
//!
//! It also assigns every span its [`SpanContext`](crate::trace::SpanContext),
//! so ids exist even when no exporter is configured.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::redact::{MASK, Redactor};
use crate::trace::{SpanContext, new_span_id, new_trace_id};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line (the default; what log pipelines ingest).
    #[default]
    Json,
    /// A human-readable line.
    Human,
    /// Human when stdout is a terminal, JSON otherwise.
    Auto,
}

/// Where log lines go.
pub(crate) enum Output {
    Stdout,
    Writer(Mutex<Box<dyn Write + Send>>),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Stdout => f.write_str("Stdout"),
            Output::Writer(_) => f.write_str("Writer"),
        }
    }
}

impl Output {
    fn write_line(&self, line: &[u8]) {
        // A failing log sink must never take the service down: errors are dropped.
        match self {
            Output::Stdout => {
                let _ = std::io::stdout().lock().write_all(line);
            }
            Output::Writer(w) => {
                let _ = w
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .write_all(line);
            }
        }
    }

    pub(crate) fn flush(&self) {
        match self {
            Output::Stdout => {
                let _ = std::io::stdout().lock().flush();
            }
            Output::Writer(w) => {
                let _ = w.lock().unwrap_or_else(PoisonError::into_inner).flush();
            }
        }
    }
}

/// Fields recorded on a span, already redacted and JSON-encoded, plus the
/// `,"name":value...` fragment events append when no name collides.
#[derive(Debug, Default)]
struct SpanFields {
    fields: Vec<(&'static str, String)>,
    fragment: String,
    /// `,"trace_id":"..","span_id":".."` of the context the span was made
    /// with; events check the context is still that one before using it.
    ids: Option<(SpanContext, String)>,
}

impl SpanFields {
    fn new(fields: Vec<(&'static str, String)>, context: SpanContext) -> Self {
        let mut ids = String::new();
        push_ids(&mut ids, &context);
        let mut s = Self {
            fields,
            fragment: String::new(),
            ids: Some((context, ids)),
        };
        s.render();
        s
    }

    fn render(&mut self) {
        self.fragment.clear();
        for (name, json) in &self.fields {
            push_key(&mut self.fragment, name);
            self.fragment.push_str(json);
        }
    }

    /// Appends the fields no nearer span or the event already wrote.
    fn push_new(&self, buf: &mut String, names: &mut Vec<&'static str>) {
        if self.fields.iter().all(|(n, _)| !names.contains(n)) {
            buf.push_str(&self.fragment);
            names.extend(self.fields.iter().map(|(n, _)| *n));
            return;
        }
        for (name, json) in &self.fields {
            if !names.contains(name) {
                names.push(name);
                push_key(buf, name);
                buf.push_str(json);
            }
        }
    }
}

/// Appends `,"trace_id":"..","span_id":".."`.
fn push_ids(buf: &mut String, c: &SpanContext) {
    buf.push_str(",\"trace_id\":\"");
    c.trace_id.push_hex(buf);
    buf.push_str("\",\"span_id\":\"");
    c.span_id.push_hex(buf);
    buf.push('"');
}

pub(crate) struct LogLayer {
    /// Distinct for every layer made in this process, so per-thread caches
    /// never serve one layer's keys (and redaction flags) to another.
    id: u64,
    human: bool,
    /// `,"service":"..","version":"..",...` precomputed once.
    identity_json: String,
    /// ` service=.. version=..` for the human format.
    identity_human: String,
    redactor: Redactor,
    output: std::sync::Arc<Output>,
    /// Whether an OpenTelemetry layer is active; its ids then win.
    #[cfg(feature = "otlp")]
    pub(crate) otel: bool,
    /// The dispatcher this layer runs in, to look up OpenTelemetry ids
    /// (`get_default` is a no-op inside a dispatch).
    #[cfg(feature = "otlp")]
    dispatch: std::sync::OnceLock<tracing::dispatcher::WeakDispatch>,
}

impl fmt::Debug for LogLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer")
            .field("human", &self.human)
            .finish_non_exhaustive()
    }
}

impl LogLayer {
    pub(crate) fn new(
        format: LogFormat,
        identity: &[(&str, &str)],
        redactor: Redactor,
        output: std::sync::Arc<Output>,
    ) -> Self {
        let human = match format {
            LogFormat::Json => false,
            LogFormat::Human => true,
            LogFormat::Auto => std::io::stdout().is_terminal(),
        };
        let mut identity_json = String::new();
        let mut identity_human = String::new();
        for (k, v) in identity {
            identity_json.push_str(",\"");
            identity_json.push_str(k);
            identity_json.push_str("\":");
            json_string(&mut identity_json, v);
            let _ = write!(identity_human, " {k}={v}");
        }
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Self {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            human,
            identity_json,
            identity_human,
            redactor,
            output,
            #[cfg(feature = "otlp")]
            otel: false,
            #[cfg(feature = "otlp")]
            dispatch: std::sync::OnceLock::new(),
        }
    }
}

/// Per-thread buffers reused by every event, so formatting allocates nothing
/// once warm.
#[derive(Default)]
struct Scratch {
    line: String,
    /// `,"name":value` of the event's fields.
    fields: String,
    names: Vec<&'static str>,
    message: String,
    tmp: String,
    keys: KeyCache,
    timestamps: crate::time::Timestamps,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// How many callsites' keys each thread keeps rendered.
const KEY_SLOTS: usize = 1 << KEY_SLOT_BITS;
const KEY_SLOT_BITS: u32 = 4;

/// Rendered keys of a few recent callsites, direct-mapped by callsite, so a
/// hot log line renders its field names and checks them against the
/// redactor once instead of at every event.
#[derive(Default)]
struct KeyCache {
    slots: Vec<CallsiteKeys>,
}

/// What one layer writes for one callsite that is the same at every event:
/// level, target and the keys of its fields.
#[derive(Default)]
struct CallsiteKeys {
    /// The layer (its [`LogLayer::id`]) and callsite these keys are for.
    owner: Option<(u64, &'static Metadata<'static>)>,
    /// `","level":"..","target":..` of the callsite (after the timestamp).
    head: String,
    /// `,"name":` of every field, back to back.
    text: String,
    /// By field index.
    keys: Vec<Key>,
}

/// One field's key.
struct Key {
    name: &'static str,
    /// Its `,"name":` is `text[start..end]`.
    start: usize,
    end: usize,
    /// Whether the layer's redactor masks the field whole.
    sensitive: bool,
}

impl KeyCache {
    fn get(
        &mut self,
        layer: u64,
        meta: &'static Metadata<'static>,
        redactor: &Redactor,
    ) -> &CallsiteKeys {
        if self.slots.is_empty() {
            self.slots.resize_with(KEY_SLOTS, CallsiteKeys::default);
        }
        // Callsite metadata is static: its address names the callsite.
        let addr = std::ptr::from_ref(meta) as usize;
        // Fibonacci hashing of callsite and layer: the top bits of the
        // product pick the slot, so two layers on one thread (each with its
        // own redaction) keep their own slots instead of evicting each other.
        let key = (addr as u64) ^ layer.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        let slot =
            (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - KEY_SLOT_BITS)) as usize % KEY_SLOTS;
        let keys = &mut self.slots[slot];
        if !keys
            .owner
            .is_some_and(|(l, m)| l == layer && std::ptr::eq(m, meta))
        {
            keys.owner = Some((layer, meta));
            keys.head.clear();
            keys.head.push_str("\",\"level\":\"");
            keys.head.push_str(level_str(meta.level()));
            keys.head.push_str("\",\"target\":");
            json_string(&mut keys.head, meta.target());
            keys.text.clear();
            keys.keys.clear();
            for field in meta.fields() {
                let start = keys.text.len();
                push_key(&mut keys.text, field.name());
                keys.keys.push(Key {
                    name: field.name(),
                    start,
                    end: keys.text.len(),
                    sensitive: redactor.is_sensitive_field(field.name()),
                });
            }
        }
        keys
    }
}

/// Writes an event's fields straight into the scratch buffers.
struct EventVisitor<'a> {
    redactor: &'a Redactor,
    keys: &'a CallsiteKeys,
    fields: &'a mut String,
    names: &'a mut Vec<&'static str>,
    message: &'a mut String,
    tmp: &'a mut String,
}

impl EventVisitor<'_> {
    /// Writes `,"name":` and returns whether the value is masked whole.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        self.names.push(name);
        // The cache is keyed by callsite; the name check is a second guard
        // that a field of any other callsite never takes a cached key.
        if let Some(k) = self.keys.keys.get(field.index())
            && std::ptr::eq(k.name, name)
        {
            self.fields.push_str(&self.keys.text[k.start..k.end]);
            return k.sensitive;
        }
        push_key(self.fields, name);
        self.redactor.is_sensitive_field(name)
    }

    fn str_value(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let redacted = self.redactor.text(value);
            self.message.push_str(&redacted);
            return;
        }
        if self.key(field) {
            json_string(self.fields, MASK);
        } else {
            json_string(self.fields, &self.redactor.text(value));
        }
    }

    /// A number or boolean: written by `write` unless the name is sensitive.
    fn raw_value(&mut self, field: &Field, write: impl FnOnce(&mut String)) {
        if self.key(field) {
            json_string(self.fields, MASK);
        } else {
            write(self.fields);
        }
    }
}

impl Visit for EventVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.str_value(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" && self.message.is_empty() {
            // Format straight into the message; copy only if redaction changed it.
            let _ = write!(self.message, "{value:?}");
            if let std::borrow::Cow::Owned(r) = self.redactor.text(self.message) {
                *self.message = r;
            }
            return;
        }
        let mut tmp = std::mem::take(self.tmp);
        tmp.clear();
        let _ = write!(tmp, "{value:?}");
        self.str_value(field, &tmp);
        *self.tmp = tmp;
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut tmp = std::mem::take(self.tmp);
        tmp.clear();
        let _ = write!(tmp, "{value}");
        self.str_value(field, &tmp);
        *self.tmp = tmp;
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw_value(field, |out| push_i64(out, value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw_value(field, |out| push_u64(out, value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.raw_value(field, |out| {
            let _ = write!(out, "{value}");
        });
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.raw_value(field, |out| {
            let _ = write!(out, "{value}");
        });
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw_value(field, |out| {
            out.push_str(if value { "true" } else { "false" });
        });
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.raw_value(field, |out| {
                let _ = write!(out, "{value}");
            });
        } else if self.key(field) {
            json_string(self.fields, MASK);
        } else {
            json_string(self.fields, &value.to_string());
        }
    }
}

/// Bytes a JSON string must escape: `"`, `\\` and control characters.
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether one of the 8 bytes in `w` needs escaping. Never false when one
/// does (the classic "has a byte below n" and "has a zero byte" tests are
/// exact as booleans), so clean text is checked a word at a time.
fn word_needs_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let bs = w ^ (ONES * u64::from(b'\\'));
    let backslash = bs.wrapping_sub(ONES) & !bs;
    (below_space | quote | backslash) & HIGHS != 0
}

/// Length of the longest prefix of `b` that needs no escaping.
#[inline]
fn clean_prefix(b: &[u8]) -> usize {
    let n = b.len();
    if n < 8 {
        // 4..8 bytes: two overlapping 4-byte loads make one word.
        if let (Some(lo), Some(hi)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
            let w = u64::from(u32::from_ne_bytes(*lo)) | (u64::from(u32::from_ne_bytes(*hi)) << 32);
            if !word_needs_escape(w) {
                return n;
            }
        }
        return byte_clean_prefix(b);
    }
    let mut i = 0;
    let mut words = b.chunks_exact(8);
    for chunk in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        if word_needs_escape(u64::from_ne_bytes(w)) {
            return i + byte_clean_prefix(chunk);
        }
        i += 8;
    }
    // The last 1..8 bytes: re-check the final word of `b` (it overlaps
    // bytes already found clean).
    let rest = words.remainder();
    if rest.is_empty() {
        return i;
    }
    if let Some(last) = b.last_chunk::<8>()
        && !word_needs_escape(u64::from_ne_bytes(*last))
    {
        return n;
    }
    i + byte_clean_prefix(rest)
}

/// [`clean_prefix`] one byte at a time.
fn byte_clean_prefix(b: &[u8]) -> usize {
    let mut i = 0;
    while i < b.len() && !NEEDS_ESCAPE[usize::from(b[i])] {
        i += 1;
    }
    i
}

/// Appends `s` as a JSON string literal.
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    json_body(out, s);
    out.push('"');
}

/// Appends `s` escaped for the inside of a JSON string literal.
#[inline]
fn json_body(out: &mut String, s: &str) {
    let clean = clean_prefix(s.as_bytes());
    out.push_str(&s[..clean]);
    if clean < s.len() {
        json_body_escaping(out, s, clean);
    }
}

/// [`json_body`] from the first byte that needs escaping, `s[start]`.
#[inline(never)]
fn json_body_escaping(out: &mut String, s: &str, mut start: usize) {
    let bytes = s.as_bytes();
    // Escapable bytes are ASCII, so every `start` falls on a char boundary.
    while let Some(&b) = bytes.get(start) {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        let rest = &s[start + 1..];
        let clean = clean_prefix(rest.as_bytes());
        out.push_str(&rest[..clean]);
        start += 1 + clean;
    }
}

/// Appends `,"name":`, with reserved names moved to `field.<name>`.
fn push_key(out: &mut String, name: &str) {
    out.reserve(name.len() + 10);
    out.push_str(if is_reserved(name) {
        ",\"field."
    } else {
        ",\""
    });
    json_body(out, name);
    out.push_str("\":");
}

/// Appends the decimal digits of `v`, two at a time.
pub(crate) fn push_u64(out: &mut String, v: u64) {
    if v >= 100 {
        push_u64(out, v / 100);
        crate::time::push_pair(out, v % 100);
    } else if v >= 10 {
        crate::time::push_pair(out, v);
    } else {
        out.push(char::from(b'0' + v as u8));
    }
}

/// Appends `v` in decimal, with a leading `-` when negative.
fn push_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_u64(out, v.unsigned_abs());
}

fn json_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        json_string(out, &v.to_string());
    }
}

/// Records fields as `(name, json)`; used for spans (stored) and events (written).
struct FieldVisitor<'a> {
    redactor: &'a Redactor,
    fields: &'a mut Vec<(&'static str, String)>,
    message: Option<&'a mut String>,
    scratch: String,
}

impl FieldVisitor<'_> {
    fn push_str_value(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if name == "message"
            && let Some(m) = self.message.as_deref_mut()
        {
            m.push_str(&self.redactor.text(value));
            return;
        }
        let mut json = String::with_capacity(value.len() + 2);
        json_string(&mut json, &self.redactor.field(name, value));
        self.set(name, json);
    }

    fn push_raw(&mut self, field: &Field, json: String) {
        if self.redactor.is_sensitive_field(field.name()) {
            let mut masked = String::new();
            json_string(&mut masked, MASK);
            self.set(field.name(), masked);
        } else {
            self.set(field.name(), json);
        }
    }

    fn set(&mut self, name: &'static str, json: String) {
        if let Some(slot) = self.fields.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = json;
        } else {
            self.fields.push((name, json));
        }
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push_str_value(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let _ = write!(scratch, "{value:?}");
        self.push_str_value(field, &scratch);
        self.scratch = scratch;
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push_str_value(field, &value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push_raw(field, value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push_raw(field, value.to_string());
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push_raw(field, value.to_string());
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push_raw(field, value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let mut s = String::new();
        json_f64(&mut s, value);
        self.push_raw(field, s);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push_raw(field, value.to_string());
    }
}

fn level_str(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

/// Keys written by the layer itself; event or span fields with these names
/// are emitted as `field.<name>` so they never shadow them.
fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "timestamp"
            | "level"
            | "target"
            | "message"
            | "service"
            | "version"
            | "environment"
            | "commit"
            | "cohort"
            | "trace_id"
            | "span_id"
    )
}

impl<S> Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    #[cfg(feature = "otlp")]
    fn on_register_dispatch(&self, dispatch: &tracing::Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<SpanContext>().copied());
        let context = match parent {
            Some(p) => SpanContext {
                trace_id: p.trace_id,
                span_id: new_span_id(),
                parent_id: Some(p.span_id),
                sampled: p.sampled,
            },
            None => SpanContext {
                trace_id: new_trace_id(),
                span_id: new_span_id(),
                parent_id: None,
                sampled: true,
            },
        };
        let mut fields = Vec::new();
        attrs.record(&mut FieldVisitor {
            redactor: &self.redactor,
            fields: &mut fields,
            message: None,
            scratch: String::new(),
        });
        let mut ext = span.extensions_mut();
        ext.insert(context);
        ext.insert(SpanFields::new(fields, context));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(span_fields) = ext.get_mut::<SpanFields>() {
            values.record(&mut FieldVisitor {
                redactor: &self.redactor,
                fields: &mut span_fields.fields,
                message: None,
                scratch: String::new(),
            });
            span_fields.render();
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let used_scratch = SCRATCH
            .try_with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => {
                    self.emit(&mut scratch, event, &ctx);
                    if scratch.line.capacity() > 64 * 1024 || scratch.fields.capacity() > 64 * 1024
                    {
                        *scratch = Scratch::default();
                    }
                    true
                }
                Err(_) => false,
            })
            .unwrap_or(false);
        if !used_scratch {
            // Re-entrancy (a Debug impl that logs) or a thread tearing down
            // its locals: fresh buffers.
            self.emit(&mut Scratch::default(), event, &ctx);
        }
    }
}

impl LogLayer {
    /// Formats `event` in `scratch` and writes the line with one call.
    fn emit<S>(&self, scratch: &mut Scratch, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        scratch.line.clear();
        if self.human {
            let mut line = std::mem::take(&mut scratch.line);
            self.format_human(&mut line, &mut scratch.timestamps, event, ctx);
            scratch.line = line;
        } else {
            self.format_json(scratch, event, ctx);
        }
        self.output.write_line(scratch.line.as_bytes());
    }

    /// The JSON line, built in reused buffers.
    fn format_json<S>(&self, s: &mut Scratch, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        s.fields.clear();
        s.names.clear();
        s.message.clear();
        let meta = event.metadata();
        let keys = s.keys.get(self.id, meta, &self.redactor);
        event.record(&mut EventVisitor {
            redactor: &self.redactor,
            keys,
            fields: &mut s.fields,
            names: &mut s.names,
            message: &mut s.message,
            tmp: &mut s.tmp,
        });
        let leaf = ctx.event_span(event);
        #[allow(unused_mut)]
        let mut otel_context: Option<SpanContext> = None;
        #[cfg(feature = "otlp")]
        if self.otel
            && let Some(span) = &leaf
            && let Some(d) = self.dispatch.get().and_then(|w| w.upgrade())
        {
            otel_context = crate::otlp::otel_span_context(&span.id(), &d);
        }
        let buf = &mut s.line;
        buf.push_str("{\"timestamp\":\"");
        s.timestamps.write(buf, SystemTime::now());
        buf.push_str(&keys.head);
        buf.push_str(",\"message\":");
        json_string(buf, &s.message);
        buf.push_str(&self.identity_json);
        match leaf {
            None => buf.push_str(&s.fields),
            Some(leaf) => {
                {
                    // The leaf's ids and fields under one extensions lock.
                    let ext = leaf.extensions();
                    let fields = ext.get::<SpanFields>();
                    if let Some(c) = otel_context.or_else(|| ext.get::<SpanContext>().copied()) {
                        match fields.and_then(|f| f.ids.as_ref()) {
                            Some((made_with, ids)) if *made_with == c => buf.push_str(ids),
                            _ => push_ids(buf, &c),
                        }
                    }
                    buf.push_str(&s.fields);
                    if let Some(f) = fields {
                        f.push_new(buf, &mut s.names);
                    }
                }
                let mut next = leaf.parent();
                while let Some(span) = next {
                    if let Some(f) = span.extensions().get::<SpanFields>() {
                        f.push_new(buf, &mut s.names);
                    }
                    next = span.parent();
                }
            }
        }
        buf.push_str("}\n");
    }

    /// The human line (not on the hot path of JSON pipelines).
    fn format_human<S>(
        &self,
        buf: &mut String,
        timestamps: &mut crate::time::Timestamps,
        event: &Event<'_>,
        ctx: &Context<'_, S>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let meta = event.metadata();
        let mut fields: Vec<(&'static str, String)> = Vec::new();
        let mut message = String::new();
        event.record(&mut FieldVisitor {
            redactor: &self.redactor,
            fields: &mut fields,
            message: Some(&mut message),
            scratch: String::new(),
        });
        let mut context: Option<SpanContext> = None;
        #[cfg(feature = "otlp")]
        if self.otel
            && let Some(span) = ctx.event_span(event)
        {
            let id = span.id();
            drop(span);
            if let Some(d) = self.dispatch.get().and_then(|w| w.upgrade()) {
                context = crate::otlp::otel_span_context(&id, &d);
            }
        }
        let scope = ctx.event_scope(event);
        let mut emitted: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
        let mut span_fields: Vec<(&'static str, String)> = Vec::new();
        if let Some(scope) = scope {
            for span in scope {
                let ext = span.extensions();
                if context.is_none() {
                    context = ext.get::<SpanContext>().copied();
                }
                if let Some(SpanFields { fields: f, .. }) = ext.get::<SpanFields>() {
                    for (name, json) in f {
                        if !emitted.contains(name) {
                            emitted.push(name);
                            span_fields.push((name, json.clone()));
                        }
                    }
                }
            }
        }

        timestamps.write(buf, SystemTime::now());
        let _ = write!(
            buf,
            " {:>5} {}: {}",
            level_str(meta.level()),
            meta.target(),
            message
        );
        for (name, json) in fields.iter().chain(&span_fields) {
            let _ = write!(buf, " {name}={json}");
        }
        buf.push_str(&self.identity_human);
        if let Some(c) = context {
            let _ = write!(buf, " trace_id={} span_id={}", c.trace_id, c.span_id);
        }
        buf.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_every_position_of_every_length() {
        // Each escapable byte at every offset of texts shorter than, as long
        // as and longer than the 4- and 8-byte words the scan checks at once,
        // alone and twice.
        for bad in ['"', '\\', '\n', '\u{1f}', '\u{0}'] {
            for len in 0..20 {
                for at in 0..=len {
                    let mut text: String = "abcdefghijklmnopqrs"[..len].into();
                    text.insert(at, bad);
                    for tail in ["", "é", "\"x"] {
                        let text = format!("{text}{tail}");
                        let mut out = String::new();
                        json_string(&mut out, &text);
                        let back: String = serde_json::from_str(&out).expect("valid json");
                        assert_eq!(back, text, "{out}");
                    }
                }
            }
        }
        for clean in ["", "a", "abcd", "abcdefg", "abcdefgh", "é~ü\u{7f}"] {
            let mut out = String::new();
            json_string(&mut out, clean);
            assert_eq!(out, format!("\"{clean}\""));
        }
    }

    #[test]
    fn integers_and_keys_are_written_without_the_formatter() {
        let mut out = String::new();
        for v in [0, 7, 10, 1_234_567, u64::MAX] {
            out.clear();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string());
        }
        for v in [i64::MIN, -10, -1, 0, 42, i64::MAX] {
            out.clear();
            push_i64(&mut out, v);
            assert_eq!(out, v.to_string());
        }
        out.clear();
        push_key(&mut out, "level");
        push_key(&mut out, "user");
        push_key(&mut out, "a\"b");
        assert_eq!(out, ",\"field.level\":,\"user\":,\"a\\\"b\":");
    }

    #[test]
    fn json_strings_escape_quotes_and_control_characters() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        let parsed: String = serde_json::from_str(&s).expect("valid json");
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }
}
