//! The one-call setup a binary makes, and the guard that flushes on drop.

use std::io::Write;
use std::sync::Arc;

use tracing::{Dispatch, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;

use crate::logs::{LogFormat, LogLayer, Output};
use crate::redact::Redactor;
use crate::{Error, MetricsConfig, MetricsRegistry};

/// Who is emitting: attached to every log line (and, for service, version
/// and cohort, to every metric series as constant labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Service name (`service` label, `service.name` resource attribute).
    pub service: String,
    /// Version that runs (`version` label, `service.version`).
    pub version: String,
    /// Commit SHA the binary was built from (`commit` in log lines,
    /// `vcs.ref.head.revision` in OTLP resources), if given.
    pub commit: Option<String>,
    /// Deployment environment (`production`, `staging`, ...).
    pub environment: String,
    /// Rollout cohort of this process (`baseline` / `canary`), if any.
    pub cohort: Option<String>,
}

/// Starts configuring telemetry for the binary named `service`.
///
/// ```
/// let telemetry = rollgate_telemetry::init("checkout")
///     .version("1.4.2")
///     .commit("9f2c1e0")
///     .environment("staging")
///     .cohort("canary")
///     .log_writer(std::io::sink())
///     .build()?;
/// assert_eq!(telemetry.metrics().constant_labels()["cohort"], "canary");
/// // In main(): let _guard = rollgate_telemetry::init("checkout").install()?;
/// # Ok::<(), rollgate_telemetry::Error>(())
/// ```
pub fn init(service: impl Into<String>) -> TelemetryBuilder {
    TelemetryBuilder {
        info: ServiceInfo {
            service: service.into(),
            version: "unknown".into(),
            commit: None,
            environment: "unknown".into(),
            cohort: None,
        },
        log_format: LogFormat::Json,
        log_filter: DEFAULT_LOG_FILTER.into(),
        log_filter_env: Some(LOG_FILTER_ENV.into()),
        log_writer: None,
        redact_fields: Vec::new(),
        max_series_per_metric: crate::DEFAULT_MAX_SERIES_PER_METRIC,
        series_idle_timeout: Some(crate::DEFAULT_SERIES_IDLE_TIMEOUT),
        buckets: Vec::new(),
        id_seed: None,
        #[cfg(feature = "prometheus")]
        metrics_addr: None,
        #[cfg(feature = "otlp")]
        otlp_endpoint: None,
        #[cfg(feature = "otlp")]
        otlp: crate::otlp::OtlpConfig::default(),
    }
}

/// Builder returned by [`init`].
#[must_use]
pub struct TelemetryBuilder {
    info: ServiceInfo,
    log_format: LogFormat,
    log_filter: String,
    log_filter_env: Option<String>,
    log_writer: Option<Box<dyn Write + Send>>,
    redact_fields: Vec<String>,
    max_series_per_metric: usize,
    series_idle_timeout: Option<std::time::Duration>,
    buckets: Vec<(String, Vec<f64>)>,
    id_seed: Option<u64>,
    #[cfg(feature = "prometheus")]
    metrics_addr: Option<std::net::SocketAddr>,
    #[cfg(feature = "otlp")]
    otlp_endpoint: Option<String>,
    /// Headers and roots (its `endpoint` is set from `otlp_endpoint` at build).
    #[cfg(feature = "otlp")]
    otlp: crate::otlp::OtlpConfig,
}

impl std::fmt::Debug for TelemetryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryBuilder")
            .field("info", &self.info)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .field("log_filter_env", &self.log_filter_env)
            .finish_non_exhaustive()
    }
}

impl TelemetryBuilder {
    /// The version that runs (default `unknown`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.info.version = version.into();
        self
    }
    /// The commit SHA the binary was built from.
    pub fn commit(mut self, sha: impl Into<String>) -> Self {
        self.info.commit = Some(sha.into());
        self
    }
    /// The deployment environment (default `unknown`).
    pub fn environment(mut self, env: impl Into<String>) -> Self {
        self.info.environment = env.into();
        self
    }
    /// The rollout cohort of this process (`baseline`, `canary`).
    pub fn cohort(mut self, cohort: impl Into<String>) -> Self {
        self.info.cohort = Some(cohort.into());
        self
    }
    /// JSON (default), human, or human-on-a-TTY.
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = format;
        self
    }
    /// Level filter in `tracing-subscriber`'s `EnvFilter` syntax: `info`,
    /// `warn,my_crate=debug`, `my_crate[span]=trace`. Used when the
    /// `RUST_LOG` environment variable (see
    /// [`log_filter_env`](Self::log_filter_env)) is unset or empty; the
    /// default is [`DEFAULT_LOG_FILTER`] (`info`).
    pub fn log_filter(mut self, filter: impl Into<String>) -> Self {
        self.log_filter = filter.into();
        self
    }
    /// The environment variable whose value, when set and not empty,
    /// replaces [`log_filter`](Self::log_filter) (default
    /// [`LOG_FILTER_ENV`], `RUST_LOG`); `None` ignores the environment.
    pub fn log_filter_env(mut self, var: Option<&str>) -> Self {
        self.log_filter_env = var.map(str::to_owned);
        self
    }
    /// Writes log lines to `writer` instead of stdout.
    pub fn log_writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.log_writer = Some(Box::new(writer));
        self
    }
    /// Masks fields whose name contains `word` (in addition to the defaults
    /// in [`DEFAULT_SENSITIVE_FIELDS`](crate::DEFAULT_SENSITIVE_FIELDS)).
    pub fn redact_field(mut self, word: impl Into<String>) -> Self {
        self.redact_fields.push(word.into());
        self
    }
    /// Caps distinct label sets per metric (default 1000). The first
    /// label set over the cap logs one WARN naming the metric.
    pub fn max_series_per_metric(mut self, cap: usize) -> Self {
        self.max_series_per_metric = cap;
        self
    }
    /// Drops a series whose value has not changed for `idle` (default
    /// [`DEFAULT_SERIES_IDLE_TIMEOUT`](crate::DEFAULT_SERIES_IDLE_TIMEOUT),
    /// 10 minutes, on tokio's clock), freeing its place under the cap;
    /// `None` keeps every series for the life of the process. See
    /// [`MetricsConfigBuilder::series_idle_timeout`](crate::MetricsConfigBuilder::series_idle_timeout).
    pub fn series_idle_timeout(mut self, idle: Option<std::time::Duration>) -> Self {
        self.series_idle_timeout = idle;
        self
    }
    /// Bucket bounds for one histogram (default [`LATENCY_BUCKETS`](crate::LATENCY_BUCKETS)).
    pub fn histogram_buckets(mut self, metric: impl Into<String>, bounds: &[f64]) -> Self {
        self.buckets.push((metric.into(), bounds.to_vec()));
        self
    }
    /// Seeds trace/span/request id generation (for reproducible tests).
    /// Without it the seed comes from the process id and start time.
    pub fn id_seed(mut self, seed: u64) -> Self {
        self.id_seed = Some(seed);
        self
    }
    /// Serves the Prometheus exposition at `http://addr/metrics` while the
    /// guard lives. Needs the `prometheus` feature.
    #[cfg(feature = "prometheus")]
    #[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
    pub fn serve_metrics(mut self, addr: std::net::SocketAddr) -> Self {
        self.metrics_addr = Some(addr);
        self
    }

    /// Needs the `prometheus` feature: without it, calling this is a compile
    /// error that says so (`features = ["prometheus"]`).
    #[cfg(not(feature = "prometheus"))]
    pub fn serve_metrics<A: crate::feature_hint::NeedsPrometheusFeature>(self, addr: A) -> Self {
        let _ = addr;
        self
    }

    /// Exports spans over OTLP/HTTP (protobuf) to a collector at `endpoint`:
    /// `http://127.0.0.1:4318` or `https://collector.example:4318`
    /// (`/v1/traces` is appended unless the URL ends with it). HTTPS trusts
    /// the system's root certificates plus those of
    /// [`otlp_root_certificates_pem`](Self::otlp_root_certificates_pem) and of
    /// the PEM file named by `OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` or
    /// `OTEL_EXPORTER_OTLP_CERTIFICATE`; `OTEL_EXPORTER_OTLP_HEADERS` adds
    /// headers as OpenTelemetry documents. Needs the `otlp` feature.
    ///
    /// ```
    /// let telemetry = rollgate_telemetry::init("checkout")
    ///     .log_writer(std::io::sink())
    ///     .otlp_endpoint("https://collector.example:4318")
    ///     .otlp_header("Authorization", "Bearer s3cret")
    ///     .build()?;
    /// // Nothing is sent until a span ends; `flush` exports what is pending.
    /// # drop(telemetry);
    /// # Ok::<(), rollgate_telemetry::Error>(())
    /// ```
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.otlp_endpoint = Some(endpoint.into());
        self
    }

    /// Sends header `name: value` with every OTLP export (an
    /// `Authorization` token for the collector). The value is marked
    /// sensitive; an invalid name or value is an [`Error::Config`] at build.
    /// Needs the `otlp` feature.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn otlp_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.otlp.headers.push((name.into(), value.into()));
        self
    }

    /// Also trusts the root certificates in `pem` (one or more PEM blocks:
    /// a private CA's, a self-signed collector's) for an `https` OTLP
    /// endpoint. A bundle without a certificate is an [`Error::Config`] at
    /// build. Needs the `otlp` feature.
    #[cfg(feature = "otlp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
    pub fn otlp_root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.otlp.roots_pem.push(pem.as_ref().to_vec());
        self
    }

    /// Needs the `otlp` feature: without it, calling this is a compile error
    /// that says so (`features = ["otlp"]`).
    #[cfg(not(feature = "otlp"))]
    pub fn otlp_endpoint<E: crate::feature_hint::NeedsOtlpFeature>(self, endpoint: E) -> Self {
        let _ = endpoint;
        self
    }

    /// Validates the settings and builds the parts without installing
    /// anything globally (use [`Telemetry::dispatch`] and
    /// [`Telemetry::recorder`] scoped, or [`Telemetry::install`]).
    ///
    /// # Errors
    /// [`Error::Config`] naming the rejected setting.
    pub fn build(self) -> Result<Telemetry, Error> {
        let info = self.info;
        validate_value("service", &info.service)?;
        validate_value("version", &info.version)?;
        validate_value("environment", &info.environment)?;
        if let Some(c) = &info.commit {
            validate_value("commit", c)?;
        }
        if let Some(c) = &info.cohort {
            validate_value("cohort", c)?;
        }
        let filter_spec = resolve_filter(self.log_filter_env.as_deref(), &self.log_filter)?;
        let filter = filter_spec.env_filter()?;

        let mut metrics = MetricsConfig::builder()
            .constant_label("service", &info.service)
            .constant_label("version", &info.version)
            .max_series_per_metric(self.max_series_per_metric)
            .series_idle_timeout(self.series_idle_timeout);
        if let Some(c) = &info.cohort {
            metrics = metrics.constant_label("cohort", c);
        }
        for (name, bounds) in &self.buckets {
            metrics = metrics.buckets(name.clone(), bounds);
        }
        let registry = MetricsRegistry::new(metrics.build()?);

        let seed = self.id_seed.unwrap_or_else(entropy_seed);
        crate::trace::seed_ids(seed);

        let output = Arc::new(match self.log_writer {
            Some(w) => Output::Writer(std::sync::Mutex::new(w)),
            None => Output::Stdout,
        });
        let mut identity: Vec<(&'static str, String)> = vec![
            ("service", info.service.clone()),
            ("version", info.version.clone()),
            ("environment", info.environment.clone()),
        ];
        if let Some(c) = &info.commit {
            identity.push(("commit", c.clone()));
        }
        if let Some(c) = &info.cohort {
            identity.push(("cohort", c.clone()));
        }
        let redactor = Redactor::with_fields(&self.redact_fields);
        #[cfg(feature = "otlp")]
        let provider = match self.otlp_endpoint {
            Some(endpoint) => {
                let config = crate::otlp::OtlpConfig {
                    endpoint,
                    ..self.otlp
                };
                Some(crate::otlp::provider(&config, &info, redactor.clone())?)
            }
            None => None,
        };
        let logs = LogParts {
            format: self.log_format,
            identity,
            redactor,
            output: Arc::clone(&output),
            filter: filter_spec,
        };
        #[allow(unused_mut)]
        let mut layer = logs.log_layer();
        #[cfg(feature = "otlp")]
        let dispatch = {
            layer.otel = provider.is_some();
            let otel = provider.as_ref().map(crate::otlp::layer);
            Dispatch::new(
                tracing_subscriber::registry()
                    .with(filter)
                    .with(otel)
                    .with(layer),
            )
        };
        #[cfg(not(feature = "otlp"))]
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(filter).with(layer));
        Ok(Telemetry {
            dispatch,
            registry,
            output,
            logs,
            info,
            #[cfg(feature = "prometheus")]
            metrics_addr: self.metrics_addr,
            #[cfg(feature = "otlp")]
            provider,
        })
    }

    /// [`build`](Self::build) then [`Telemetry::install`].
    ///
    /// # Errors
    /// As `build`, plus [`Error::AlreadyInstalled`] and, with `serve_metrics`,
    /// [`Error::Io`] when the address cannot be bound.
    pub fn install(self) -> Result<TelemetryGuard, Error> {
        self.build()?.install()
    }
}

fn validate_value(field: &'static str, v: &str) -> Result<(), Error> {
    if v.trim().is_empty() {
        return Err(Error::Config {
            field,
            reason: "must not be empty".into(),
        });
    }
    if v.chars().any(char::is_control) || v.len() > 256 {
        return Err(Error::Config {
            field,
            reason: format!("{:?} must be printable and at most 256 bytes", v),
        });
    }
    Ok(())
}

/// The environment variable read for the log filter by default.
pub const LOG_FILTER_ENV: &str = "RUST_LOG";

/// The log filter when neither the environment nor
/// [`TelemetryBuilder::log_filter`] gives one: INFO and above from every target.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// The filter in force and where it came from (for error messages).
#[derive(Debug, Clone)]
struct FilterSpec {
    spec: String,
    /// `RUST_LOG` (or the configured variable), or `log_filter`.
    source: String,
}

impl FilterSpec {
    fn env_filter(&self) -> Result<EnvFilter, Error> {
        EnvFilter::builder()
            .parse(&self.spec)
            .map_err(|e| Error::Config {
                field: "log_filter",
                reason: format!("{}={:?}: {e}", self.source, self.spec),
            })
    }
}

/// The environment's filter when the variable is set and not empty, else the builder's.
fn resolve_filter(env_var: Option<&str>, builder: &str) -> Result<FilterSpec, Error> {
    if let Some(var) = env_var {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => {
                return Ok(FilterSpec {
                    spec: v,
                    source: var.to_owned(),
                });
            }
            Ok(_) | Err(std::env::VarError::NotPresent) => {}
            Err(std::env::VarError::NotUnicode(v)) => {
                return Err(Error::Config {
                    field: "log_filter",
                    reason: format!("{var}={v:?} is not valid UTF-8"),
                });
            }
        }
    }
    Ok(FilterSpec {
        spec: builder.to_owned(),
        source: "log_filter".to_owned(),
    })
}

/// What it takes to make the log layer again (for [`Telemetry::layer`]).
struct LogParts {
    format: LogFormat,
    identity: Vec<(&'static str, String)>,
    redactor: Redactor,
    output: Arc<Output>,
    filter: FilterSpec,
}

impl LogParts {
    fn log_layer(&self) -> LogLayer {
        let identity: Vec<(&str, &str)> = self
            .identity
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        LogLayer::new(
            self.format,
            &identity,
            self.redactor.clone(),
            Arc::clone(&self.output),
        )
    }
}

fn entropy_seed() -> u64 {
    // Ids need uniqueness, not secrecy: mix pid and start time.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (u64::from(std::process::id()) << 32) ^ t.as_nanos() as u64
}

/// Configured telemetry, not yet installed.
pub struct Telemetry {
    dispatch: Dispatch,
    registry: MetricsRegistry,
    output: Arc<Output>,
    logs: LogParts,
    info: ServiceInfo,
    #[cfg(feature = "prometheus")]
    metrics_addr: Option<std::net::SocketAddr>,
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Telemetry {
    /// The `tracing` dispatcher (logs, span ids, redaction), for scoped use
    /// with `tracing::dispatcher::with_default` or `set_default`.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }
    /// The log layer (JSON or human lines, ids, redaction, and with OTLP the
    /// span exporter) with its own level filter (`RUST_LOG` or
    /// [`log_filter`](TelemetryBuilder::log_filter)), for a subscriber you
    /// assemble yourself next to other layers. The filter applies to this
    /// layer only; your other layers see every event they enable. Install
    /// the metrics side with [`install_metrics`](Self::install_metrics).
    ///
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt as _;
    ///
    /// let telemetry = rollgate_telemetry::init("checkout")
    ///     .log_writer(std::io::sink())
    ///     .build()?;
    /// let subscriber = tracing_subscriber::registry()
    ///     .with(telemetry.layer())
    ///     .with(tracing_subscriber::filter::LevelFilter::WARN); // your layers here
    /// tracing::subscriber::with_default(subscriber, || tracing::info!("hello"));
    /// // In main(): `tracing::subscriber::set_global_default(subscriber)` and
    /// // `let _guard = telemetry.install_metrics()?;`
    /// # Ok::<(), rollgate_telemetry::Error>(())
    /// ```
    pub fn layer<S>(&self) -> Box<dyn Layer<S> + Send + Sync + 'static>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        // The spec parsed in `build`, so it parses again.
        let filter = self
            .logs
            .filter
            .env_filter()
            .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
        #[allow(unused_mut)]
        let mut layer = self.logs.log_layer();
        #[cfg(feature = "otlp")]
        let layer = {
            layer.otel = self.provider.is_some();
            let otel = self.provider.as_ref().map(crate::otlp::layer);
            Layer::and_then(otel, layer)
        };
        layer.with_filter(filter).boxed()
    }

    /// The log filter in force: the environment variable's value when it was
    /// set, else the builder's.
    pub fn log_filter(&self) -> &str {
        &self.logs.filter.spec
    }

    /// The metrics registry (render, snapshot).
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.registry
    }
    /// A `metrics` recorder for scoped use (`metrics::with_local_recorder`).
    pub fn recorder(&self) -> crate::Recorder {
        self.registry.recorder()
    }
    /// The identity given to the builder.
    pub fn info(&self) -> &ServiceInfo {
        &self.info
    }
    /// Flushes buffered log output and, with OTLP, exports pending spans.
    pub fn flush(&self) {
        self.output.flush();
        #[cfg(feature = "otlp")]
        if let Some(p) = &self.provider {
            // Export failures are reported by the SDK's own diagnostics.
            let _ = p.force_flush();
        }
    }

    /// Installs the tracing subscriber and metrics recorder process-wide and
    /// starts the metrics listener, if configured.
    ///
    /// # Errors
    /// [`Error::AlreadyInstalled`] when a global subscriber or recorder
    /// exists; [`Error::Io`] when the metrics address cannot be bound.
    pub fn install(self) -> Result<TelemetryGuard, Error> {
        self.install_parts(true)
    }

    /// Installs only the metrics recorder process-wide (and starts the
    /// metrics listener, if configured): for a binary that installs its own
    /// subscriber with [`layer`](Self::layer). The guard flushes logs and
    /// stops the listener on drop, as [`install`](Self::install)'s does.
    ///
    /// # Errors
    /// [`Error::AlreadyInstalled`] when a global recorder exists;
    /// [`Error::Io`] when the metrics address cannot be bound.
    pub fn install_metrics(self) -> Result<TelemetryGuard, Error> {
        self.install_parts(false)
    }

    fn install_parts(self, subscriber: bool) -> Result<TelemetryGuard, Error> {
        // The listener first: when it cannot bind, nothing global is set yet.
        #[cfg(feature = "prometheus")]
        let server = match self.metrics_addr {
            Some(addr) => Some(crate::server::MetricsServer::start(
                addr,
                self.registry.clone(),
            )?),
            None => None,
        };
        if subscriber {
            tracing::dispatcher::set_global_default(self.dispatch.clone()).map_err(|_| {
                Error::AlreadyInstalled {
                    what: "tracing subscriber",
                }
            })?;
        }
        metrics::set_global_recorder(self.registry.recorder()).map_err(|_| {
            Error::AlreadyInstalled {
                what: "metrics recorder",
            }
        })?;
        crate::facade::warn_on_mismatch();
        Ok(TelemetryGuard {
            registry: self.registry,
            output: self.output,
            info: self.info,
            #[cfg(feature = "prometheus")]
            server,
            #[cfg(feature = "otlp")]
            provider: self.provider,
        })
    }
}

/// Keeps telemetry running; flushes logs and stops the metrics listener
/// when dropped. Hold it in `main` for the life of the process.
#[must_use = "telemetry stops (and flushes) when the guard is dropped"]
pub struct TelemetryGuard {
    registry: MetricsRegistry,
    output: Arc<Output>,
    info: ServiceInfo,
    #[cfg(feature = "prometheus")]
    server: Option<crate::server::MetricsServer>,
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// The process' metrics registry (what rollgate-canary reads in process).
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.registry
    }
    /// The identity given to the builder.
    pub fn info(&self) -> &ServiceInfo {
        &self.info
    }
    /// The address the metrics listener is bound to, if serving. Needs the
    /// `prometheus` feature.
    #[cfg(feature = "prometheus")]
    #[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.server
            .as_ref()
            .map(crate::server::MetricsServer::local_addr)
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        #[cfg(feature = "prometheus")]
        if let Some(server) = self.server.take() {
            server.stop();
        }
        self.output.flush();
        #[cfg(feature = "otlp")]
        if let Some(p) = self.provider.take() {
            // Shutdown flushes pending spans; failures are the SDK's to report.
            let _ = p.shutdown();
        }
    }
}
