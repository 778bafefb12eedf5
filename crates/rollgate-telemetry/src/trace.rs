//! Trace context: W3C trace and span ids carried by `tracing` spans,
//! `traceparent` parsing and formatting, and reading the active context.
//!
//! Every span created while the telemetry subscriber is active gets a span id
//! and inherits its parent's trace id (a root span starts a new trace, or
//! continues a remote one set with [`set_remote_parent`]). Log lines carry
//! these ids, so a log line and the span it was written in always agree.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::Span;
use tracing_subscriber::registry::{LookupSpan, Registry};

use crate::Error;

/// A 128-bit W3C trace id (never all zeros).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TraceId(pub [u8; 16]);

/// A 64-bit W3C span id (never all zeros).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpanId(pub [u8; 8]);

macro_rules! hex_id {
    ($t:ty, $n:expr) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; 2 * $n];
                f.write_str(hex_into(&self.0, &mut buf))
            }
        }
        impl $t {
            /// Appends the lowercase hex form to `out` (no formatting machinery).
            pub(crate) fn push_hex(&self, out: &mut String) {
                let mut buf = [0u8; 2 * $n];
                out.push_str(hex_into(&self.0, &mut buf));
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl $t {
            /// Parses lowercase hex of the exact length; rejects all zeros.
            pub fn from_hex(s: &str) -> Option<Self> {
                let bytes = s.as_bytes();
                if bytes.len() != 2 * $n {
                    return None;
                }
                let mut out = [0u8; $n];
                for (i, pair) in bytes.chunks_exact(2).enumerate() {
                    out[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
                }
                (out != [0u8; $n]).then_some(Self(out))
            }
        }
    };
}
hex_id!(TraceId, 16);
hex_id!(SpanId, 8);

fn hex_into<'a>(bytes: &[u8], buf: &'a mut [u8]) -> &'a str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        buf[2 * i] = HEX[usize::from(b >> 4)];
        buf[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    // Only ASCII hex digits were written.
    std::str::from_utf8(buf).unwrap_or_default()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// A W3C `traceparent` header value: `00-{trace_id}-{parent_id}-{flags}`.
///
/// ```
/// use rollgate_telemetry::TraceParent;
///
/// let tp: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
/// assert!(tp.sampled);
/// assert_eq!(tp.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert!("00-0000-xyz-01".parse::<TraceParent>().is_err());
/// # Ok::<(), rollgate_telemetry::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace this request belongs to.
    pub trace_id: TraceId,
    /// The caller's span (the parent of spans created here).
    pub parent_id: SpanId,
    /// Whether the caller sampled the trace.
    pub sampled: bool,
}

impl FromStr for TraceParent {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let err = |reason| Error::TraceParent {
            value: s.chars().take(64).collect(),
            reason,
        };
        let s = s.trim();
        let mut parts = s.split('-');
        let (Some(version), Some(trace), Some(parent), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err("expected version-traceid-parentid-flags"));
        };
        if version.len() != 2 || version == "ff" || hex_val_pair(version).is_none() {
            return Err(err("invalid version"));
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return Err(err("version 00 has exactly four fields"));
        }
        let trace_id = TraceId::from_hex(trace).ok_or_else(|| err("invalid trace id"))?;
        let parent_id = SpanId::from_hex(parent).ok_or_else(|| err("invalid parent id"))?;
        let flags = hex_val_pair(flags).ok_or_else(|| err("invalid flags"))?;
        Ok(Self {
            trace_id,
            parent_id,
            sampled: flags & 1 == 1,
        })
    }
}

fn hex_val_pair(s: &str) -> Option<u8> {
    let b = s.as_bytes();
    (b.len() == 2).then_some(())?;
    Some((hex_val(b[0])? << 4) | hex_val(b[1])?)
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.parent_id,
            u8::from(self.sampled)
        )
    }
}

/// The ids of one span, as stored in the span's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// The parent span (local or remote), if any.
    pub parent_id: Option<SpanId>,
    /// Whether the trace is sampled.
    pub sampled: bool,
}

impl SpanContext {
    /// The `traceparent` value to send on an outgoing request made inside this span.
    pub fn traceparent(&self) -> TraceParent {
        TraceParent {
            trace_id: self.trace_id,
            parent_id: self.span_id,
            sampled: self.sampled,
        }
    }
}

// ---------------------------------------------------------------- ids

static SEED: AtomicU64 = AtomicU64::new(0);
static STREAMS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// Seeds id generation (the init builder does; tests pass a fixed seed).
/// Each thread draws from its own SplitMix64 stream derived from the seed.
pub(crate) fn seed_ids(seed: u64) {
    SEED.store(seed, Ordering::Relaxed);
}

fn next_u64() -> u64 {
    RNG.with(|state| {
        let mut s = state.get();
        if s == 0 {
            let stream = STREAMS.fetch_add(1, Ordering::Relaxed) + 1;
            s = SEED.load(Ordering::Relaxed) ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
            s |= 1;
        }
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

pub(crate) fn new_span_id() -> SpanId {
    loop {
        let v = next_u64();
        if v != 0 {
            return SpanId(v.to_be_bytes());
        }
    }
}

pub(crate) fn new_trace_id() -> TraceId {
    loop {
        let (a, b) = (next_u64(), next_u64());
        if a != 0 || b != 0 {
            let mut out = [0u8; 16];
            out[..8].copy_from_slice(&a.to_be_bytes());
            out[8..].copy_from_slice(&b.to_be_bytes());
            return TraceId(out);
        }
    }
}

/// A fresh random 128-bit id as 32 hex characters (used for request ids).
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn new_request_id() -> String {
    new_trace_id().to_string()
}

// ---------------------------------------------------------------- access

/// Runs `f` on the stored context of `span`, when the active subscriber is
/// the telemetry one (built on `tracing_subscriber::Registry`).
fn with_span_context<R>(span: &Span, f: impl FnOnce(&mut SpanContext) -> R) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        let mut ext = data.extensions_mut();
        ext.get_mut::<SpanContext>().map(f)
    })
    .flatten()
}

/// The trace context of `span`; `None` when the span is disabled or the
/// telemetry subscriber is not active.
pub fn span_context(span: &Span) -> Option<SpanContext> {
    let own = with_span_context(span, |c| *c);
    // With OTLP export on, OpenTelemetry's ids are the ones exported: report those.
    #[cfg(feature = "otlp")]
    if let Some(otel) = span
        .with_subscriber(|(id, d)| crate::otlp::otel_span_context(id, d))
        .flatten()
    {
        // Parent ids are not mixed in: they would be from the other id space.
        return Some(otel);
    }
    own
}

/// The trace context of the current span.
///
/// ```
/// use rollgate_telemetry::{init, trace};
///
/// let telemetry = init("doc").log_writer(std::io::sink()).build()?;
/// tracing::dispatcher::with_default(telemetry.dispatch(), || {
///     let span = tracing::info_span!("work");
///     let _enter = span.enter();
///     let ctx = trace::current().expect("inside a span");
///     assert_eq!(ctx.traceparent().trace_id, ctx.trace_id);
/// });
/// # Ok::<(), rollgate_telemetry::Error>(())
/// ```
pub fn current() -> Option<SpanContext> {
    span_context(&Span::current())
}

/// Makes `span` continue the remote trace in `parent` (from an incoming
/// `traceparent`). Call it before entering the span or creating children.
/// Returns false when the span carries no telemetry context.
pub fn set_remote_parent(span: &Span, parent: TraceParent) -> bool {
    #[cfg(feature = "otlp")]
    crate::otlp::set_remote_parent(span, parent);
    with_span_context(span, |c| {
        c.trace_id = parent.trace_id;
        c.parent_id = Some(parent.parent_id);
        c.sampled = parent.sampled;
    })
    .is_some()
}

/// Parses the `traceparent` value of an incoming request and, when valid,
/// makes `span` continue it. Invalid values are ignored (a new trace starts),
/// as the W3C spec requires.
pub fn extract(span: &Span, traceparent: Option<&str>) -> Option<TraceParent> {
    let parent = traceparent.and_then(|v| v.parse::<TraceParent>().ok())?;
    set_remote_parent(span, parent);
    Some(parent)
}

/// The `traceparent` value to put on an outgoing request made inside `span`.
pub fn inject(span: &Span) -> Option<String> {
    span_context(span).map(|c| c.traceparent().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_rejects_malformed_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?} was accepted");
        }
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
        let tp: TraceParent = future.parse().expect("future versions may add fields");
        assert!(!tp.sampled);
    }

    #[test]
    fn generated_ids_are_nonzero_and_distinct() {
        let a = new_trace_id();
        let b = new_trace_id();
        assert_ne!(a, b);
        assert_ne!(new_span_id(), new_span_id());
        assert_eq!(a.to_string().len(), 32);
    }
}
