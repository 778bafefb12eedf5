//! OpenTelemetry traces exported over OTLP/HTTP (feature `otlp`).
//!
//! `tracing` spans become OpenTelemetry spans through `tracing-opentelemetry`;
//! a batch processor (its own thread, no async runtime needed) sends them as
//! OTLP protobuf over HTTP with a small std client, after a redacting
//! processor masked secrets in span names, attributes and events. Resource
//! attributes: `service.name`, `service.version`, `vcs.ref.head.revision`
//! (the commit), `deployment.environment.name`, `rollgate.cohort`.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracerProvider, Span, SpanData, SpanProcessor,
};
use tracing::Dispatch;
use tracing::span::Id;

use crate::Error;
use crate::init::ServiceInfo;
use crate::redact::Redactor;
use crate::trace::{SpanContext, SpanId, TraceId, TraceParent};

/// How long one export request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the tracer provider exporting to `endpoint`
/// (`http://host:4318`; `/v1/traces` is appended unless already there).
pub(crate) fn provider(
    endpoint: &str,
    info: &ServiceInfo,
    redactor: Redactor,
) -> Result<SdkTracerProvider, Error> {
    let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    // Fail at build time, not at the first export.
    parse_http_url(&url).map_err(|reason| Error::Config {
        field: "otlp_endpoint",
        reason: format!("{endpoint:?}: {reason}"),
    })?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(StdHttpClient)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| Error::Config {
            field: "otlp_endpoint",
            reason: e.to_string(),
        })?;
    let mut attributes = vec![KeyValue::new("service.version", info.version.clone())];
    if let Some(c) = &info.commit {
        attributes.push(KeyValue::new("vcs.ref.head.revision", c.clone()));
    }
    attributes.push(KeyValue::new(
        "deployment.environment.name",
        info.environment.clone(),
    ));
    if let Some(c) = &info.cohort {
        attributes.push(KeyValue::new("rollgate.cohort", c.clone()));
    }
    let resource = Resource::builder()
        .with_service_name(info.service.clone())
        .with_attributes(attributes)
        .build();
    let batch = BatchSpanProcessor::builder(exporter).build();
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_span_processor(Redacting {
            inner: batch,
            redactor,
        })
        .build())
}

/// The `tracing` layer feeding `provider`.
pub(crate) fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("rollgate-telemetry"))
        .with_location(false)
        .with_threads(false)
}

/// The OpenTelemetry ids of span `id`, when the OpenTelemetry layer is active.
pub(crate) fn otel_span_context(id: &Id, dispatch: &Dispatch) -> Option<SpanContext> {
    let cx = tracing_opentelemetry::get_otel_context(id, dispatch)?;
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    Some(SpanContext {
        trace_id: TraceId(sc.trace_id().to_bytes()),
        span_id: SpanId(sc.span_id().to_bytes()),
        parent_id: None,
        sampled: sc.is_sampled(),
    })
}

/// Makes the OpenTelemetry span of `span` continue the remote trace.
pub(crate) fn set_remote_parent(span: &tracing::Span, parent: TraceParent) {
    use opentelemetry::trace::{SpanContext as OtelSpanContext, TraceFlags, TraceState};
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let flags = if parent.sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let remote = OtelSpanContext::new(
        opentelemetry::trace::TraceId::from_bytes(parent.trace_id.0),
        opentelemetry::trace::SpanId::from_bytes(parent.parent_id.0),
        flags,
        true,
        TraceState::default(),
    );
    // Without the OpenTelemetry layer there is nothing to parent.
    let _ = span.set_parent(Context::new().with_remote_span_context(remote));
}

// ---------------------------------------------------------------- redaction

/// Masks secrets in span names, attributes and events before export.
#[derive(Debug)]
struct Redacting<P> {
    inner: P,
    redactor: Redactor,
}

impl<P: SpanProcessor> Redacting<P> {
    fn redact_attributes(&self, attrs: &mut [KeyValue]) {
        for kv in attrs.iter_mut() {
            let masked = match &kv.value {
                Value::String(s) => match self.redactor.field(kv.key.as_str(), s.as_str()) {
                    Cow::Borrowed(b) if b == s.as_str() => None,
                    other => Some(other.into_owned()),
                },
                _ if self.redactor.is_sensitive_field(kv.key.as_str()) => {
                    Some(crate::redact::MASK.to_owned())
                }
                _ => None,
            };
            if let Some(m) = masked {
                kv.value = Value::from(m);
            }
        }
    }
}

impl<P: SpanProcessor> SpanProcessor for Redacting<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        if let Cow::Owned(n) = self.redactor.text(&span.name) {
            span.name = Cow::Owned(n);
        }
        self.redact_attributes(&mut span.attributes);
        for event in span.events.events.iter_mut() {
            if let Cow::Owned(n) = self.redactor.text(&event.name) {
                event.name = Cow::Owned(n);
            }
            self.redact_attributes(&mut event.attributes);
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

// ---------------------------------------------------------------- http client

/// A minimal blocking HTTP/1.1 client for plain-HTTP OTLP collectors
/// (an agent or collector on localhost or in the pod). It runs on the batch
/// processor's own thread, so blocking is fine.
#[derive(Debug, Clone, Copy)]
struct StdHttpClient;

fn parse_http_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        "only http:// endpoints are supported (use a local collector for TLS)".to_owned()
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err("missing host".into());
    }
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

#[async_trait::async_trait]
impl HttpClient for StdHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (authority, path) = parse_http_url(&request.uri().to_string())?;
        let addr = authority
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| format!("otlp endpoint {authority}: no address"))?;
        let mut conn = TcpStream::connect_timeout(&addr, EXPORT_TIMEOUT)?;
        conn.set_read_timeout(Some(EXPORT_TIMEOUT))?;
        conn.set_write_timeout(Some(EXPORT_TIMEOUT))?;
        let mut head = format!(
            "{} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n",
            request.method(),
            request.body().len()
        );
        for (name, value) in request.headers() {
            if let Ok(v) = value.to_str() {
                head.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes())?;
        conn.write_all(request.body())?;
        conn.flush()?;

        let mut reader = BufReader::new(conn);
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("otlp endpoint {authority}: bad status line {status_line:?}"))?;
        let mut builder = Response::builder().status(status);
        let mut content_length: Option<usize> = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.parse().ok();
                }
                builder = builder.header(k, v);
            }
        }
        let mut body = Vec::new();
        // 4 MiB cap, like the SDK's built-in clients.
        let limit = content_length.unwrap_or(4 << 20).min(4 << 20) as u64;
        reader.take(limit).read_to_end(&mut body)?;
        Ok(builder.body(Bytes::from(body))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_plain_http_with_a_host() {
        assert_eq!(
            parse_http_url("http://127.0.0.1:4318/v1/traces"),
            Ok(("127.0.0.1:4318".into(), "/v1/traces".into()))
        );
        assert_eq!(
            parse_http_url("http://collector/v1/traces").map(|(a, _)| a),
            Ok("collector:80".into())
        );
        assert!(parse_http_url("https://x/v1/traces").is_err());
        assert!(parse_http_url("http:///v1/traces").is_err());
    }
}
