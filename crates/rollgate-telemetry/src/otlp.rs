//! OpenTelemetry traces exported over OTLP/HTTP (feature `otlp`).
//!
//! `tracing` spans become OpenTelemetry spans through `tracing-opentelemetry`;
//! a batch processor (its own thread, no async runtime needed) sends them as
//! OTLP protobuf over HTTP or HTTPS with opentelemetry-otlp's blocking
//! reqwest client (rustls; the system's roots plus any given), after a
//! redacting processor masked secrets in span names, attributes and events. Resource
//! attributes: `service.name`, `service.version`, `vcs.ref.head.revision`
//! (the commit), `deployment.environment.name`, `rollgate.cohort`.

use std::borrow::Cow;
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
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

/// Environment variables naming a PEM file of extra trusted roots for the
/// collector (OpenTelemetry's exporter configuration): the traces one wins.
pub(crate) const CERTIFICATE_ENV: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
];

/// Where and how spans are exported (the builder's `otlp_*` settings).
#[derive(Debug, Clone, Default)]
pub(crate) struct OtlpConfig {
    /// `http(s)://host:port`, with or without `/v1/traces`.
    pub(crate) endpoint: String,
    /// Extra request headers (`Authorization`), sent with every export.
    pub(crate) headers: Vec<(String, String)>,
    /// PEM bundles of extra trusted roots.
    pub(crate) roots_pem: Vec<Vec<u8>>,
}

fn config_error(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Config {
        field,
        reason: reason.into(),
    }
}

/// The export URL for `endpoint` (`/v1/traces` appended unless already
/// there), checked: `http` or `https`, with a host.
fn traces_url(endpoint: &str) -> Result<String, Error> {
    let url = if endpoint.trim_end_matches('/').ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    };
    let bad = |reason: &str| config_error("otlp_endpoint", format!("{endpoint:?}: {reason}"));
    let parsed = reqwest::Url::parse(&url).map_err(|e| bad(&format!("invalid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("only https:// and http:// endpoints are supported"));
    }
    // The URL parser reads `http:///v1` as host `v1`: look at the text too.
    let authority = url.split_once("://").map_or("", |(_, rest)| rest);
    if authority.starts_with('/') || parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("missing host"));
    }
    Ok(url)
}

/// The extra roots: the configured PEM bundles, plus the file named by
/// [`CERTIFICATE_ENV`] when set.
fn roots(config: &OtlpConfig) -> Result<Vec<reqwest::Certificate>, Error> {
    let mut roots = Vec::new();
    let mut add = |pem: &[u8], field: &'static str, origin: &str| {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| config_error(field, format!("{origin}: invalid PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(config_error(
                field,
                format!("{origin}: no PEM certificate found"),
            ));
        }
        roots.extend(certs);
        Ok(())
    };
    for pem in &config.roots_pem {
        add(pem, "otlp_root_certificates_pem", "given PEM")?;
    }
    let env = CERTIFICATE_ENV.iter().find_map(|var| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(|v| (*var, v))
    });
    if let Some((var, path)) = env {
        let path = std::path::PathBuf::from(path);
        let pem = std::fs::read(&path)
            .map_err(|e| config_error(var, format!("cannot read {}: {e}", path.display())))?;
        add(&pem, var, &path.display().to_string())?;
    }
    Ok(roots)
}

/// The request headers, checked; values are marked sensitive.
fn headers(config: &OtlpConfig) -> Result<reqwest::header::HeaderMap, Error> {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in &config.headers {
        let n = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| config_error("otlp_header", format!("invalid header name {name:?}")))?;
        let mut v = reqwest::header::HeaderValue::from_str(value.trim())
            .map_err(|_| config_error("otlp_header", format!("invalid value for {n}")))?;
        v.set_sensitive(true);
        map.append(n, v);
    }
    Ok(map)
}

/// The blocking reqwest client of the exporter (rustls, system roots plus
/// `roots`). It is built on a thread of its own: a blocking client cannot
/// be built inside an async runtime, and `build()` may be called in one.
fn client(
    roots: Vec<reqwest::Certificate>,
    headers: reqwest::header::HeaderMap,
) -> Result<reqwest::blocking::Client, Error> {
    let build = move || {
        reqwest::blocking::Client::builder()
            .user_agent(concat!("rollgate-telemetry/", env!("CARGO_PKG_VERSION")))
            .timeout(EXPORT_TIMEOUT)
            .default_headers(headers)
            .tls_certs_merge(roots)
            .build()
    };
    std::thread::Builder::new()
        .name("otlp-client-setup".into())
        .spawn(build)
        .map_err(|e| config_error("otlp_endpoint", format!("cannot start a thread: {e}")))?
        .join()
        .map_err(|_| config_error("otlp_endpoint", "setting up the HTTP client panicked"))?
        .map_err(|e| {
            config_error(
                "otlp_endpoint",
                format!("cannot set up the HTTP client: {e}"),
            )
        })
}

/// Builds the tracer provider exporting as `config` says.
pub(crate) fn provider(
    config: &OtlpConfig,
    info: &ServiceInfo,
    redactor: Redactor,
) -> Result<SdkTracerProvider, Error> {
    // Fail at build time, not at the first export.
    let url = traces_url(&config.endpoint)?;
    let client = client(roots(config)?, headers(config)?)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| config_error("otlp_endpoint", e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_or_https_with_a_host() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").ok().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            traces_url("https://collector/v1/traces/").ok().as_deref(),
            Some("https://collector/v1/traces/")
        );
        assert_eq!(
            traces_url("https://[::1]:4318/").ok().as_deref(),
            Some("https://[::1]:4318/v1/traces")
        );
        for bad in ["ftp://x", "http:///v1/traces", "collector:4318", ""] {
            let e = traces_url(bad).expect_err(bad).to_string();
            assert!(e.contains("otlp_endpoint"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_headers_and_certificates_are_config_errors() {
        let config = |headers: Vec<(&str, &str)>, pem: &[u8]| OtlpConfig {
            endpoint: "http://127.0.0.1:4318".into(),
            headers: headers
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            roots_pem: vec![pem.to_vec()],
        };
        let e = headers(&config(vec![("bad name", "x")], b"")).expect_err("name");
        assert!(e.to_string().contains("otlp_header"), "{e}");
        let e = headers(&config(vec![("authorization", "a\nb")], b"")).expect_err("value");
        assert!(
            e.to_string().contains("invalid value for authorization"),
            "{e}"
        );
        let e = roots(&config(vec![], b"not a certificate")).expect_err("pem");
        assert!(e.to_string().contains("otlp_root_certificates_pem"), "{e}");
    }
}
