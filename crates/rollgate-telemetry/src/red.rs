//! RED middleware (rate, errors, duration) as a `tower` layer (feature `http`).
//!
//! Works with any `tower::Service<http::Request<B>>`: axum, hyper, tonic.
//! Per request it records count, errors and duration labelled by method and
//! route *template* (never the raw path, which would explode cardinality),
//! takes or generates a request id and echoes it in the response, continues
//! an incoming W3C `traceparent`, and runs the inner service inside a
//! request span carrying both ids. Excluded paths (`/metrics` and health
//! checks by default) pass through untouched: no series, no log line.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderName, HeaderValue};
use http::{Extensions, Method, Request, Response, Uri};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument as _;

/// Requests served, by `method`, `route` and `status`.
pub const REQUESTS_TOTAL: &str = "http_server_requests_total";
/// Requests that failed (5xx or service error), by `method` and `route`.
pub const ERRORS_TOTAL: &str = "http_server_errors_total";
/// Request duration in seconds, by `method` and `route`.
pub const DURATION_SECONDS: &str = "http_server_request_duration_seconds";
/// Route label of requests that match no template.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// Default request id header.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Paths excluded from RED metrics and request logs unless
/// [`RedLayer::include`] takes them back: the scrape endpoint and the usual
/// health checks, which would otherwise count as traffic.
pub const DEFAULT_EXCLUDED_PATHS: &[&str] = &[
    "/metrics", "/health", "/healthz", "/livez", "/readyz", "/ping",
];

/// The request id of the current request, put in the request's extensions
/// for handlers to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// A route template a handler (or an adapter for a router) can put in the
/// request's extensions; it takes precedence over template matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTemplate(pub String);

type RouteFn = dyn Fn(&Method, &Uri, &Extensions) -> Option<String> + Send + Sync;

#[derive(Clone)]
struct Config {
    templates: Vec<Vec<Segment>>,
    template_names: Vec<String>,
    route_fn: Option<Arc<RouteFn>>,
    header: HeaderName,
    /// Paths or route templates passed through without metrics or logs.
    excluded: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    Rest,
}

/// The RED layer. Cheap to clone.
///
/// ```
/// use rollgate_telemetry::RedLayer;
///
/// let layer = RedLayer::new().route("/users/{id}").route("/assets/{*path}");
/// assert_eq!(layer.route_for_path("/users/42"), "/users/{id}");
/// assert_eq!(layer.route_for_path("/assets/css/a.css"), "/assets/{*path}");
/// assert_eq!(layer.route_for_path("/nope"), "unmatched");
/// ```
#[derive(Clone)]
pub struct RedLayer {
    config: Arc<Config>,
}

impl fmt::Debug for RedLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedLayer")
            .field("routes", &self.config.template_names)
            .field("header", &self.config.header)
            .finish_non_exhaustive()
    }
}

impl Default for RedLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl RedLayer {
    /// A layer with no templates (every path is `unmatched` unless a
    /// [`RouteTemplate`] extension or [`route_with`](Self::route_with) names
    /// it; with axum, `.route_with(rollgate_telemetry::axum_matched_path)`)
    /// and [`DEFAULT_EXCLUDED_PATHS`] excluded.
    pub fn new() -> Self {
        Self {
            config: Arc::new(Config {
                templates: Vec::new(),
                template_names: Vec::new(),
                route_fn: None,
                header: HeaderName::from_static(REQUEST_ID_HEADER),
                excluded: DEFAULT_EXCLUDED_PATHS
                    .iter()
                    .map(|p| (*p).to_owned())
                    .collect(),
            }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Adds a route template: literal segments, `{name}` for one segment,
    /// `{*name}` for the rest of the path. The first matching template wins.
    pub fn route(mut self, template: &str) -> Self {
        let segments = template
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                if s.starts_with("{*") && s.ends_with('}') {
                    Segment::Rest
                } else if s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s.to_owned())
                }
            })
            .collect();
        let c = self.config_mut();
        c.templates.push(segments);
        c.template_names.push(template.to_owned());
        self
    }

    /// Names routes with a function (e.g. reading axum's `MatchedPath` from
    /// the extensions: [`axum_matched_path`](crate::axum_matched_path) with
    /// the `axum` feature); templates are tried when it returns `None`.
    pub fn route_with(
        mut self,
        f: impl Fn(&Method, &Uri, &Extensions) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.config_mut().route_fn = Some(Arc::new(f));
        self
    }

    /// Excludes a path (`/internal/status`) or route template
    /// (`/debug/{*rest}`) from RED metrics and request logs: such requests
    /// reach the inner service untouched, with no series, span, log line or
    /// request id. [`DEFAULT_EXCLUDED_PATHS`] are excluded from the start.
    pub fn exclude(mut self, path_or_route: impl Into<String>) -> Self {
        let p = path_or_route.into();
        let c = self.config_mut();
        if !c.excluded.contains(&p) {
            c.excluded.push(p);
        }
        self
    }

    /// Takes back an excluded path or route (one of
    /// [`DEFAULT_EXCLUDED_PATHS`], say), so it counts as traffic again.
    ///
    /// ```
    /// use rollgate_telemetry::RedLayer;
    ///
    /// let layer = RedLayer::new().exclude("/internal/status").include("/healthz");
    /// assert!(layer.is_excluded("/metrics"));
    /// assert!(layer.is_excluded("/internal/status"));
    /// assert!(!layer.is_excluded("/healthz"));
    /// ```
    pub fn include(mut self, path_or_route: &str) -> Self {
        self.config_mut().excluded.retain(|p| p != path_or_route);
        self
    }

    /// Whether requests for this path or route template are excluded.
    pub fn is_excluded(&self, path_or_route: &str) -> bool {
        self.config.is_excluded(path_or_route)
    }

    /// Uses another request id header (default `x-request-id`).
    pub fn request_id_header(mut self, name: HeaderName) -> Self {
        self.config_mut().header = name;
        self
    }

    /// The template label for `path` (`unmatched` when none matches).
    pub fn route_for_path(&self, path: &str) -> &str {
        match_template(&self.config, path).unwrap_or(UNMATCHED_ROUTE)
    }
}

impl Config {
    fn is_excluded(&self, path_or_route: &str) -> bool {
        self.excluded.iter().any(|p| p == path_or_route)
    }
}

/// A route function for [`RedLayer::route_with`] that reads axum's
/// [`MatchedPath`](axum::extract::MatchedPath): the template of the route
/// that matched (`/users/{id}`). Apply the layer with `Router::layer` (it
/// then wraps each route, where axum has set the extension); requests no
/// route matched (the fallback) count as `unmatched`.
///
/// ```
/// use rollgate_telemetry::{RedLayer, axum_matched_path};
///
/// async fn user() -> &'static str { "bob" }
/// let app: axum::Router = axum::Router::new()
///     .route("/users/{id}", axum::routing::get(user))
///     .layer(RedLayer::new().route_with(axum_matched_path));
/// ```
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub fn axum_matched_path(_: &Method, _: &Uri, extensions: &Extensions) -> Option<String> {
    extensions
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
}

fn match_template<'a>(config: &'a Config, path: &str) -> Option<&'a str> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    'templates: for (t, name) in config.templates.iter().zip(&config.template_names) {
        let mut i = 0;
        for seg in t {
            match seg {
                Segment::Rest => return Some(name),
                Segment::Param if i < parts.len() => i += 1,
                Segment::Literal(l) if parts.get(i) == Some(&l.as_str()) => i += 1,
                _ => continue 'templates,
            }
        }
        if i == parts.len() {
            return Some(name);
        }
    }
    None
}

impl<S> Layer<S> for RedLayer {
    type Service = Red<S>;
    fn layer(&self, inner: S) -> Red<S> {
        Red {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service produced by [`RedLayer`].
#[derive(Clone)]
pub struct Red<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for Red<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Red")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        // Arbitrary methods would be unbounded label values.
        _ => "_OTHER",
    }
}

/// A propagated id is kept only when it is short visible ASCII.
fn valid_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_owned())
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Red<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    S::Error: fmt::Display,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let config = &self.config;
        if config.is_excluded(req.uri().path()) {
            return Box::pin(self.inner.call(req));
        }
        let method = method_label(req.method());
        let route: String = req
            .extensions()
            .get::<RouteTemplate>()
            .map(|r| r.0.clone())
            .or_else(|| {
                config
                    .route_fn
                    .as_ref()
                    .and_then(|f| f(req.method(), req.uri(), req.extensions()))
            })
            .unwrap_or_else(|| {
                match_template(config, req.uri().path())
                    .unwrap_or(UNMATCHED_ROUTE)
                    .to_owned()
            });
        if config.is_excluded(&route) {
            return Box::pin(self.inner.call(req));
        }
        let request_id = req
            .headers()
            .get(&config.header)
            .and_then(valid_request_id)
            .unwrap_or_else(crate::trace::new_request_id);
        let header_value = HeaderValue::from_str(&request_id).ok();
        if let Some(v) = &header_value {
            req.headers_mut().insert(config.header.clone(), v.clone());
        }
        req.extensions_mut().insert(RequestId(request_id.clone()));

        let span = tracing::info_span!(
            "http.request",
            http.request.method = method,
            http.route = %route,
            request_id = %request_id,
            http.response.status_code = tracing::field::Empty,
        );
        let traceparent = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok());
        crate::trace::extract(&span, traceparent);

        let start = tokio::time::Instant::now();
        let fut = span.in_scope(|| self.inner.call(req));
        let header = config.header.clone();
        let in_span = span.clone();
        Box::pin(
            async move {
                let result = fut.await;
                let secs = start.elapsed().as_secs_f64();
                let (status, failed) = match &result {
                    Ok(res) => (res.status().as_u16(), res.status().is_server_error()),
                    Err(_) => (500, true),
                };
                in_span.record("http.response.status_code", status);
                let status_label = status.to_string();
                metrics::counter!(REQUESTS_TOTAL, "method" => method, "route" => route.clone(), "status" => status_label)
                    .increment(1);
                metrics::histogram!(DURATION_SECONDS, "method" => method, "route" => route.clone())
                    .record(secs);
                if failed {
                    metrics::counter!(ERRORS_TOTAL, "method" => method, "route" => route)
                        .increment(1);
                }
                // One status attribute: the event's `http.response.status_code`
                // shadows the span's field of the same name in the line, and
                // stays when a filter such as `warn` disables the INFO span.
                match &result {
                    Ok(_) if failed => tracing::warn!(
                        http.response.status_code = status,
                        duration_s = secs,
                        "request failed"
                    ),
                    Ok(_) => tracing::info!(
                        http.response.status_code = status,
                        duration_s = secs,
                        "request completed"
                    ),
                    Err(e) => tracing::error!(
                        http.response.status_code = status,
                        error = %e,
                        duration_s = secs,
                        "request errored"
                    ),
                }
                result.map(|mut res| {
                    if let Some(v) = header_value {
                        res.headers_mut().insert(header, v);
                    }
                    res
                })
            }
            .instrument(span),
        )
    }
}
