//! Telemetry of long-running commands: `--log-format`, `--metrics-addr`,
//! `--otlp-endpoint` (or `OTEL_EXPORTER_OTLP_ENDPOINT`), installed through
//! rollgate-telemetry for the life of the command.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use rollgate_telemetry::{LogFormat, TelemetryGuard};

/// How log lines are written (on standard error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// For people: the command's own messages as before, plus library
    /// events at `error` level (`info` for `serve`; more with `RUST_LOG`,
    /// e.g. `RUST_LOG=info`).
    #[default]
    Text,
    /// One JSON object per line, every line on standard error (the
    /// command's own messages too); library events from `info` up (or
    /// `RUST_LOG`).
    Json,
}

/// The telemetry flags of a long-running command.
#[derive(Debug, Clone, Default, Args)]
pub struct TelemetryFlags {
    /// Log lines on standard error: `text` (for people) or `json` (one JSON
    /// object per line, for log pipelines).
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Text)]
    log_format: LogFormatArg,
    /// Serve Prometheus metrics at http://ADDR/metrics while the command
    /// runs, e.g. `127.0.0.1:9464` (port 0 picks a free port; the address is
    /// logged).
    #[arg(long, global = true, value_name = "ADDR", value_parser = parse_addr)]
    metrics_addr: Option<SocketAddr>,
    /// Export traces over OTLP/HTTP (protobuf) to this collector, e.g.
    /// `http://127.0.0.1:4318` (`/v1/traces` is appended). A rollout is one
    /// trace: the rollout span, a child span per phase and per deploy.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT"
    )]
    otlp_endpoint: Option<String>,
    /// With --metrics-addr: keep serving /metrics this long after the
    /// command is done (or until SIGINT/SIGTERM), so a Prometheus scraping
    /// every interval sees the final values; then exit with the command's
    /// exit code. Skipped when a signal already asked the command to stop,
    /// so `serve` and `drift watch` (which run until a signal) never linger.
    /// E.g. `15s`.
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    metrics_linger: Option<Duration>,
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| {
        "expected IP:PORT, e.g. 127.0.0.1:9464 or [::1]:9464 (port 0 picks a free one)".to_owned()
    })
}

static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// The signal (SIGINT or SIGTERM) that asked the command to stop, if one
/// did: `--metrics-linger` is then skipped, since the process was asked to
/// end (a command that handles signals itself records them here).
static STOP_SIGNAL: Mutex<Option<&'static str>> = Mutex::new(None);

/// Records that `signal` asked the process to stop: [`shutdown`] then
/// exits without lingering.
pub fn stop_requested(signal: &'static str) {
    let mut s = STOP_SIGNAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    s.get_or_insert(signal);
}

/// The installed telemetry, kept until [`shutdown`] (statics are never
/// dropped, and the guard's drop is what flushes), and `--metrics-linger`.
static GUARD: Mutex<Option<(TelemetryGuard, Option<Duration>)>> = Mutex::new(None);

/// Flushes logs and pending spans and stops the metrics listener: called
/// once the command is done. With `--metrics-linger`, `/metrics` is served
/// that much longer first (a signal ends the wait early).
pub fn shutdown() {
    let installed = GUARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    let stopped = *STOP_SIGNAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((guard, Some(_))) = &installed
        && guard.metrics_addr().is_some()
        && let Some(signal) = stopped
    {
        say(&format!(
            "rollgate: not serving metrics longer (--metrics-linger): {signal} asked to stop"
        ));
    } else if let Some((guard, Some(linger))) = &installed
        && let Some(addr) = guard.metrics_addr()
    {
        say(&format!(
            "rollgate: still serving metrics at http://{addr}/metrics for {}",
            humantime::format_duration(*linger)
        ));
        wait_or_signal(*linger);
    }
    drop(installed);
    JSON_LOGS.store(false, Ordering::Relaxed);
}

/// Sleeps for `linger`, or less when SIGINT or SIGTERM arrives. A runtime
/// of its own: the command's runtime (and its signal listeners) is gone,
/// and signals registered with tokio once no longer end the process.
fn wait_or_signal(linger: Duration) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        std::thread::sleep(linger);
        return;
    };
    rt.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            if let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                tokio::select! {
                    () = tokio::time::sleep(linger) => {}
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(linger) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
}

/// The installed metrics registry (what `/metrics` serves), if telemetry
/// is installed.
pub fn metrics_registry() -> Option<rollgate_telemetry::MetricsRegistry> {
    GUARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .map(|(g, _)| g.metrics().clone())
}

/// Whether log lines are JSON: then every line on standard error is one.
pub fn json_logs() -> bool {
    JSON_LOGS.load(Ordering::Relaxed)
}

/// Writes one of the command's own messages to standard error: as it is,
/// or with `--log-format json` as an `info` log line.
pub fn say(msg: &str) {
    crate::rollout::write_err(format_args!("{msg}"));
}

/// Writes the command's failure to standard error: as it is, or with
/// `--log-format json` as an `error` log line with the exit code.
pub fn fail(msg: &str, exit_code: u8) {
    if json_logs() {
        tracing::error!(target: "rollgate", exit_code, "{msg}");
    } else {
        crate::rollout::write_err(format_args!("{msg}"));
    }
}

impl TelemetryFlags {
    /// Installs logs, metrics and traces for the rest of the command
    /// ([`shutdown`] flushes and stops them).
    ///
    /// # Errors
    /// A message naming the flag (exit 2): the metrics address cannot be
    /// bound, the OTLP endpoint is not a usable URL.
    pub fn install(&self) -> Result<(), String> {
        self.install_with_text_filter("error")
    }

    /// As [`install`](Self::install), with `filter` for library events in
    /// text mode (JSON mode logs from `info` up); `RUST_LOG` overrides both.
    ///
    /// # Errors
    /// As [`install`](Self::install).
    pub fn install_with_text_filter(&self, filter: &str) -> Result<(), String> {
        if self.metrics_linger.is_some() && self.metrics_addr.is_none() {
            return Err("--metrics-linger needs --metrics-addr (it keeps serving /metrics)".into());
        }
        let json = self.log_format == LogFormatArg::Json;
        let mut b = rollgate_telemetry::init("rollgate")
            .version(env!("CARGO_PKG_VERSION"))
            .log_format(if json {
                LogFormat::Json
            } else {
                LogFormat::Human
            })
            .log_filter(if json { "info" } else { filter })
            .log_writer(std::io::stderr());
        if let Some(addr) = self.metrics_addr {
            b = b.serve_metrics(addr);
        }
        if let Some(url) = &self.otlp_endpoint {
            b = b.otlp_endpoint(url.clone());
        }
        let telemetry = b.build().map_err(|e| match (&self.otlp_endpoint, e) {
            (
                Some(url),
                rollgate_telemetry::Error::Config {
                    field: "otlp_endpoint",
                    reason,
                },
            ) => {
                format!("--otlp-endpoint {url:?}: {reason}")
            }
            (_, e) => e.to_string(),
        })?;
        let guard = telemetry
            .install()
            .map_err(|e| match (self.metrics_addr, e) {
                (Some(addr), rollgate_telemetry::Error::Io { source, .. }) => {
                    format!("--metrics-addr {addr}: cannot listen: {source}")
                }
                (_, e) => e.to_string(),
            })?;
        JSON_LOGS.store(json, Ordering::Relaxed);
        if let Some(addr) = guard.metrics_addr() {
            say(&format!(
                "rollgate: serving metrics at http://{addr}/metrics"
            ));
        }
        *GUARD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((guard, self.metrics_linger));
        Ok(())
    }
}
