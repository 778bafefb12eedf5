//! `DriftWatcher`: compares DESIRED with a [`LiveSource`] on an interval,
//! records metrics and tracing events, and tells a [`Notifier`] when drift
//! appears, changes or clears. Time comes from tokio's clock, so tests run on
//! paused time.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::arena::Tree;
use crate::diff::{Differ, Report};
use crate::error::Error;
use crate::load::{Format, Limits, load_tree_bytes};
use crate::rules::Severity;
#[cfg(doc)]
use crate::tree::Node;

/// Where the live configuration comes from.
///
/// ```
/// use std::sync::Arc;
/// use rollgate_drift::{FileSource, Format, LiveSource};
/// let source: Arc<dyn LiveSource> = Arc::new(FileSource::new("/etc/app/config.yaml", Format::Yaml));
/// assert_eq!(source.describe(), "file /etc/app/config.yaml");
/// ```
#[async_trait]
pub trait LiveSource: Send + Sync + 'static {
    /// A description for logs and errors (never includes credentials).
    fn describe(&self) -> String;
    /// Reads the live configuration now, as a compact tree (a source that
    /// builds a [`Node`] returns `Tree::from_node(&node)`).
    async fn fetch(&self) -> Result<Tree, Error>;
}

const _: Option<&dyn LiveSource> = None;

/// Receives drift transitions, and changes in whether the live source can
/// be read.
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Called when drift appears, its set of differences changes, or it clears.
    async fn notify(&self, event: &DriftEvent);

    /// Called when a check cannot read the live source (`source` is
    /// [`LiveSource::describe`]): at the first failure, and again only when
    /// the error differs from the previous failed check's, so a source that
    /// stays down with the same error is reported once, not at every
    /// interval. The default does nothing.
    async fn source_failed(&self, source: &str, error: &Error) {
        let _ = (source, error);
    }

    /// Called when a check reads the live source again after
    /// `failed_checks` consecutive failed checks, the first of them
    /// `failed_for` before this one. The default does nothing.
    async fn source_recovered(&self, source: &str, failed_checks: u64, failed_for: Duration) {
        let _ = (source, failed_checks, failed_for);
    }
}

const _: Option<&dyn Notifier> = None;

/// A change in the drift state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DriftEvent {
    /// LIVE started to differ from DESIRED.
    Appeared {
        /// The report of the check that saw it.
        report: Report,
        /// Upper bound on how long the drift went unseen: the time since the
        /// last check that found none (or since the watcher started).
        detected_within: Duration,
    },
    /// The differences changed while drift persisted.
    Changed {
        /// The new report.
        report: Report,
    },
    /// LIVE matches DESIRED again.
    Cleared {
        /// How long the drift lasted, as seen by the checks.
        lasted: Duration,
    },
}

/// What one check found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CheckOutcome {
    /// The comparison.
    pub report: Report,
    /// How long fetching and comparing took.
    pub took: Duration,
    /// The transition this check caused, if any.
    pub event: Option<DriftEvent>,
}

/// Builds a [`DriftWatcher`].
pub struct DriftWatcherBuilder {
    desired: Tree,
    source: Arc<dyn LiveSource>,
    differ: Differ,
    interval: Duration,
    notifier: Option<Arc<dyn Notifier>>,
    name: String,
}

impl fmt::Debug for DriftWatcherBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriftWatcherBuilder")
            .field("source", &self.source.describe())
            .field("interval", &self.interval)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DriftWatcherBuilder {
    /// Compares under these rules (default: none).
    #[must_use]
    pub fn differ(mut self, differ: Differ) -> Self {
        self.differ = differ;
        self
    }

    /// Checks every `interval` (default 30 s).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Tells `notifier` about transitions.
    #[must_use]
    pub fn notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Names the watched configuration in metrics labels and events
    /// (default: `default`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Validates and builds.
    pub fn build(mut self) -> Result<DriftWatcher, Error> {
        if self.interval.is_zero() {
            return Err(Error::Live {
                source_name: self.source.describe(),
                message: "watch interval must be greater than zero".to_owned(),
            });
        }
        // Kept for the watcher's life: without the parser's spare room.
        self.desired.shrink_to_fit();
        // The counters exist at zero from the start: a scrape before the
        // first check has them, and `increase()` counts the first one.
        metrics::counter!("rollgate_drift_checks_total", "config" => self.name.clone())
            .increment(0);
        metrics::counter!("rollgate_drift_check_errors_total", "config" => self.name.clone())
            .increment(0);
        Ok(DriftWatcher {
            desired: self.desired,
            source: self.source,
            differ: self.differ,
            interval: self.interval,
            notifier: self.notifier,
            name: self.name,
            started: Instant::now(),
            last_clean: None,
            drift_since: None,
            last: None,
            failing: None,
        })
    }
}

/// Compares DESIRED with a live source on an interval.
///
/// Metrics (through the `metrics` facade, labelled `config`):
/// `rollgate_drift_differences` (gauge, also labelled `severity`),
/// `rollgate_drift_last_check_timestamp_seconds` (gauge, Unix time),
/// `rollgate_drift_check_duration_seconds` and
/// `rollgate_drift_detection_seconds` (histograms),
/// `rollgate_drift_checks_total` and `rollgate_drift_check_errors_total`
/// (counters). Tracing: an `info` event when drift appears, changes or
/// clears, `warn` when the source fails.
///
/// ```
/// use std::sync::Arc;
/// use rollgate_drift::{DriftWatcher, FileSource, Format, Limits, load_tree};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), rollgate_drift::Error> {
/// let dir = tempfile::tempdir().unwrap();
/// let live = dir.path().join("live.json");
/// std::fs::write(&live, r#"{"replicas": 2}"#).unwrap();
/// let desired = load_tree("replicas: 3\n", Format::Yaml, "desired.yaml", &Limits::default())?;
/// let mut watcher = DriftWatcher::builder(desired, Arc::new(FileSource::new(&live, Format::Json)))
///     .name("web")
///     .build()?;
/// let outcome = watcher.check().await?;
/// assert_eq!(outcome.report.differences().len(), 1);
/// # Ok(())
/// # }
/// ```
pub struct DriftWatcher {
    desired: Tree,
    source: Arc<dyn LiveSource>,
    differ: Differ,
    interval: Duration,
    notifier: Option<Arc<dyn Notifier>>,
    name: String,
    started: Instant,
    last_clean: Option<Instant>,
    drift_since: Option<Instant>,
    last: Option<Report>,
    failing: Option<Failing>,
}

/// The run of consecutive failed checks the source is in.
#[derive(Debug)]
struct Failing {
    /// When the first of them ran.
    since: Instant,
    /// How many there were.
    checks: u64,
    /// The last one's error text, to report a different error again.
    error: String,
}

impl fmt::Debug for DriftWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriftWatcher")
            .field("name", &self.name)
            .field("source", &self.source.describe())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl DriftWatcher {
    /// Starts building a watcher of `desired` against `source`. The desired
    /// document is kept for the watcher's life, compactly (load it with
    /// [`crate::load_tree_file`], or convert a [`Node`] with
    /// [`Tree::from_node`]).
    #[must_use]
    pub fn builder(desired: Tree, source: Arc<dyn LiveSource>) -> DriftWatcherBuilder {
        DriftWatcherBuilder {
            desired,
            source,
            differ: Differ::default(),
            interval: Duration::from_secs(30),
            notifier: None,
            name: "default".to_owned(),
        }
    }

    /// Runs one check now: fetch, compare, record, notify on a transition.
    ///
    /// The notifier also hears when the source starts failing, fails with a
    /// different error, or recovers ([`Notifier::source_failed`],
    /// [`Notifier::source_recovered`]); [`CheckOutcome::event`] carries only
    /// drift transitions.
    pub async fn check(&mut self) -> Result<CheckOutcome, Error> {
        let start = Instant::now();
        let name = self.name.clone();
        metrics::counter!("rollgate_drift_checks_total", "config" => name.clone()).increment(1);
        let live = match self.source.fetch().await {
            Ok(live) => live,
            Err(e) => {
                metrics::counter!("rollgate_drift_check_errors_total", "config" => name.clone())
                    .increment(1);
                let source = self.source.describe();
                tracing::warn!(config = %name, source = %source, error = %e, "drift check failed");
                let text = e.to_string();
                let changed = match &mut self.failing {
                    Some(f) => {
                        f.checks += 1;
                        let changed = f.error != text;
                        f.error = text;
                        changed
                    }
                    None => {
                        self.failing = Some(Failing {
                            since: start,
                            checks: 1,
                            error: text,
                        });
                        true
                    }
                };
                if let (true, Some(n)) = (changed, &self.notifier) {
                    n.source_failed(&source, &e).await;
                }
                return Err(e);
            }
        };
        if let Some(f) = self.failing.take() {
            let source = self.source.describe();
            let failed_for = start - f.since;
            tracing::info!(config = %name, source = %source, failed_checks = f.checks, "drift live source recovered");
            if let Some(n) = &self.notifier {
                n.source_recovered(&source, f.checks, failed_for).await;
            }
        }
        let report = self.differ.diff_trees(&self.desired, &live);
        let now = Instant::now();
        let took = now - start;
        self.record_metrics(&report, took);
        let event = match (&self.last, report.has_drift()) {
            (_, true) if self.drift_since.is_none() => {
                let since = self.last_clean.unwrap_or(self.started);
                let detected_within = now - since;
                self.drift_since = Some(now);
                metrics::histogram!("rollgate_drift_detection_seconds", "config" => name.clone())
                    .record(detected_within.as_secs_f64());
                tracing::info!(
                    config = %name,
                    differences = report.differences().len(),
                    max_severity = report.max_severity().map_or("none", |s| s.as_str()),
                    detected_within_ms = u64::try_from(detected_within.as_millis()).unwrap_or(u64::MAX),
                    "drift appeared"
                );
                Some(DriftEvent::Appeared {
                    report: report.clone(),
                    detected_within,
                })
            }
            (Some(last), true) if last.differences() != report.differences() => {
                tracing::info!(config = %name, differences = report.differences().len(), "drift changed");
                Some(DriftEvent::Changed {
                    report: report.clone(),
                })
            }
            (_, true) => None,
            (_, false) => {
                self.last_clean = Some(now);
                self.drift_since.take().map(|since| {
                    let lasted = now - since;
                    tracing::info!(config = %name, lasted_ms = u64::try_from(lasted.as_millis()).unwrap_or(u64::MAX), "drift cleared");
                    DriftEvent::Cleared { lasted }
                })
            }
        };
        tracing::debug!(config = %name, differences = report.differences().len(), took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX), "drift check");
        if let (Some(n), Some(ev)) = (&self.notifier, &event) {
            n.notify(ev).await;
        }
        self.last = Some(report.clone());
        Ok(CheckOutcome {
            report,
            took,
            event,
        })
    }

    fn record_metrics(&self, report: &Report, took: Duration) {
        let counts = report.counts();
        for s in [Severity::Info, Severity::Warning, Severity::Critical] {
            #[allow(clippy::cast_precision_loss)]
            let n = counts.get(&s).copied().unwrap_or(0) as f64;
            metrics::gauge!("rollgate_drift_differences", "config" => self.name.clone(), "severity" => s.as_str())
                .set(n);
        }
        // A timestamp for dashboards ("last checked 5 min ago"); the only
        // wall-clock read, and it drives no decision.
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!("rollgate_drift_last_check_timestamp_seconds", "config" => self.name.clone())
            .set(unix);
        metrics::histogram!("rollgate_drift_check_duration_seconds", "config" => self.name.clone())
            .record(took.as_secs_f64());
    }

    /// Checks every interval until `shutdown` completes. A failing source is
    /// logged and counted, and the next tick tries again.
    pub async fn run<F>(mut self, shutdown: F)
    where
        F: std::future::Future<Output = ()> + Send,
    {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticker.tick() => {
                    // Errors are already logged and counted by `check`.
                    let _ = self.check().await;
                }
            }
        }
    }
}

/// Reads a file.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    format: Format,
    limits: Limits,
}

impl FileSource {
    /// A file in `format`.
    pub fn new(path: impl Into<PathBuf>, format: Format) -> Self {
        Self {
            path: path.into(),
            format,
            limits: Limits::default(),
        }
    }

    /// Sets the loader limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

#[async_trait]
impl LiveSource for FileSource {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    async fn fetch(&self) -> Result<Tree, Error> {
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|source| Error::Read {
                path: self.path.clone(),
                source,
            })?;
        load_tree_bytes(
            &bytes,
            self.format,
            &self.path.display().to_string(),
            &self.limits,
        )
    }
}

/// Runs a command and reads its standard output (for example
/// `kubectl get deploy web -o json`).
#[derive(Clone)]
pub struct CommandSource {
    program: String,
    args: Vec<String>,
    /// What [`LiveSource::describe`] says, when not `command PROGRAM`.
    description: Option<String>,
    format: Format,
    limits: Limits,
    timeout: Duration,
}

/// Shows the command as [`LiveSource::describe`] does, never its raw
/// arguments (they may hold a credential).
impl std::fmt::Debug for CommandSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSource")
            .field("command", &self.describe())
            .field("format", &self.format)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl CommandSource {
    /// `program` with `args`; output in `format`. Default timeout 30 s.
    pub fn new<I, S>(program: impl Into<String>, args: I, format: Format) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            description: None,
            format,
            limits: Limits::default(),
            timeout: Duration::from_secs(30),
        }
    }

    /// A shell command line, run with `sh -c`; output in `format`. Errors
    /// and events name the command as given, with the values of
    /// secret-looking options masked (`--token=***`, `--password ***`,
    /// `Bearer ***`); better still, let the command read credentials from
    /// the environment or a file.
    ///
    /// ```
    /// use rollgate_drift::{CommandSource, Format, LiveSource};
    /// let source = CommandSource::shell("kubectl get deploy web -o json", Format::Json);
    /// assert_eq!(source.describe(), r#"command "kubectl get deploy web -o json""#);
    /// let source = CommandSource::shell("kubectl --token=eyJhbGci get deploy web -o json", Format::Json);
    /// assert_eq!(source.describe(), r#"command "kubectl --token=*** get deploy web -o json""#);
    /// ```
    pub fn shell(command: impl Into<String>, format: Format) -> Self {
        let command = command.into();
        let shown = redact_command(&command);
        let mut source = Self::new("sh", ["-c".to_owned(), command], format);
        source.description = Some(format!("command {shown:?}"));
        source
    }

    /// Kills the command after `timeout` (default 30 s). On unix the command
    /// runs in a process group of its own, and on a timeout, or when a fetch
    /// is cancelled, the whole group is killed: whatever the command started
    /// goes with it.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the loader limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

#[async_trait]
impl LiveSource for CommandSource {
    fn describe(&self) -> String {
        match &self.description {
            Some(d) => d.clone(),
            None => format!("command {}", self.program),
        }
    }

    async fn fetch(&self) -> Result<Tree, Error> {
        let err = |message: String| Error::Live {
            source_name: self.describe(),
            message,
        };
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        // Its own group, so that a timeout or a cancellation kills whatever
        // it started (`sh -c 'a | b'`, `cmd &`); `kill_on_drop` alone would
        // reach only the command itself.
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| err(format!("cannot start: {e}")))?;
        let mut group = GroupKill(child.id());
        let mut stdout = child.stdout.take();
        // Output to its end first, then the exit: the command stays
        // unreaped (its pid, the group's id, not reusable) until its output
        // is closed, so the guard can only ever kill its own group.
        let work = async {
            let mut buf = Vec::new();
            if let Some(s) = stdout.as_mut() {
                tokio::io::AsyncReadExt::read_to_end(s, &mut buf).await?;
            }
            let status = child.wait().await?;
            Ok::<_, std::io::Error>((status, buf))
        };
        let (status, out) = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| err(format!("no result within {:?}", self.timeout)))?
            .map_err(|e| err(format!("cannot read output: {e}")))?;
        // Reaped, its output closed: what it left running was meant to run.
        group.disarm();
        if !status.success() {
            // stderr is not shown: it may echo credentials.
            return Err(err(format!("exited with {status}")));
        }
        load_tree_bytes(&out, self.format, &self.describe(), &self.limits)
    }
}

/// Kills a command's process group (SIGKILL to `-pgid`) when dropped, unless
/// disarmed: on a timeout, an error or a cancelled fetch. The command leads
/// its group (`process_group(0)`), so the group id is its pid, which cannot
/// be reused before the command is reaped. (`rollgate-deploy` has the same
/// guard for its commands; drift depends on no other rollgate crate.)
struct GroupKill(Option<u32>);

impl GroupKill {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self
            .0
            .take()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            // ESRCH: the group has already gone, nothing to do.
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

/// Fetches a document with HTTP GET, over `https://` or `http://`, through
/// reqwest with rustls (feature `http`): redirects are followed (up to 10;
/// headers such as `Authorization` are not sent to another host), the
/// system's root certificates are trusted plus any given with
/// [`HttpSource::root_certificates_pem`], and extra request headers (an
/// `Authorization` token) can come from a file or an environment variable.
/// Header values are never printed.
///
/// ```
/// use rollgate_drift::{Format, HttpSource, LiveSource};
/// let source = HttpSource::new("https://config.internal:8443/web?token=x", Format::Json)?
///     .header_lines("Authorization: Bearer s3cret\n", "inline")?;
/// // The description never shows a query string or a header.
/// assert_eq!(source.describe(), "https://config.internal:8443/web");
/// # Ok::<(), rollgate_drift::Error>(())
/// ```
#[cfg(feature = "http")]
#[derive(Debug, Clone)]
pub struct HttpSource {
    url: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    roots: Vec<reqwest::Certificate>,
    format: Format,
    limits: Limits,
    timeout: Duration,
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
}

#[cfg(feature = "http")]
impl HttpSource {
    /// Parses `url` (`https://host[:port]/path` or `http://...`); the body
    /// is read as `format`. Credentials in the URL are refused: pass them as
    /// a header.
    pub fn new(url: &str, format: Format) -> Result<Self, Error> {
        let err = |message: &str| Error::Live {
            source_name: format!("http {}", redact_url(url)),
            message: message.to_owned(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| err(&format!("invalid URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(err("only https:// and http:// URLs are supported"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(err(
                "credentials in the URL are not supported (pass an Authorization header)",
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(err("missing host"));
        }
        Ok(Self {
            url: parsed,
            headers: reqwest::header::HeaderMap::new(),
            roots: Vec::new(),
            format,
            limits: Limits::default(),
            timeout: Duration::from_secs(30),
            client: std::sync::OnceLock::new(),
        })
    }

    /// Gives up after `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the loader limits (the response may not exceed `max_bytes`).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Adds request headers given as lines `Name: value` (blank lines and
    /// lines starting with `#` are skipped), such as the contents of a
    /// header file or an environment variable; `origin` names where they
    /// came from in errors. Values are marked sensitive and never printed.
    pub fn header_lines(mut self, text: &str, origin: &str) -> Result<Self, Error> {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{origin} line {}", i + 1);
            let bad = |why: &str| Error::Live {
                source_name: self.describe(),
                message: format!("header {at}: {why}"),
            };
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad("expected `Name: value`"))?;
            let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| bad(&format!("invalid header name {:?}", name.trim())))?;
            let mut value = reqwest::header::HeaderValue::from_str(value.trim())
                .map_err(|_| bad(&format!("invalid value for {name}")))?;
            value.set_sensitive(true);
            self.headers.append(name, value);
        }
        self.client = std::sync::OnceLock::new();
        Ok(self)
    }

    /// Adds the request headers in the file at `path` (see
    /// [`HttpSource::header_lines`]).
    pub fn header_file(self, path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Live {
            source_name: self.describe(),
            message: format!("cannot read header file {}: {e}", path.display()),
        })?;
        self.header_lines(&text, &format!("file {}", path.display()))
    }

    /// Adds the request headers held by environment variable `var` (see
    /// [`HttpSource::header_lines`]); an unset variable is an error.
    pub fn header_env(self, var: &str) -> Result<Self, Error> {
        let text = std::env::var(var).map_err(|e| Error::Live {
            source_name: self.describe(),
            message: format!("header variable {var}: {e}"),
        })?;
        self.header_lines(&text, &format!("variable {var}"))
    }

    /// Also trusts the root certificates in `pem` (one or more PEM blocks),
    /// such as a private CA's or a self-signed server's.
    pub fn root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, Error> {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::Live {
            source_name: self.describe(),
            message: format!("invalid PEM certificate: {e}"),
        })?;
        if certs.is_empty() {
            return Err(Error::Live {
                source_name: self.describe(),
                message: "no PEM certificate found".to_owned(),
            });
        }
        self.roots.extend(certs);
        self.client = std::sync::OnceLock::new();
        Ok(self)
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .user_agent(concat!("rollgate-drift/", env!("CARGO_PKG_VERSION")))
                    .default_headers(self.headers.clone())
                    .tls_certs_merge(self.roots.iter().cloned())
                    .build()
                    .map_err(|e| format!("cannot set up the HTTP client: {}", chain(&e)))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    async fn get(&self) -> Result<Vec<u8>, String> {
        let mut response = self
            .client()?
            .get(self.url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/json, application/yaml, application/toml, */*",
            )
            .send()
            .await
            .map_err(|e| format!("request failed: {}", chain(&e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("server answered {}", status.as_u16()));
        }
        let max = self.limits.max_bytes;
        if let Some(n) = response.content_length()
            && n > max
        {
            return Err(format!(
                "response of {n} bytes exceeds the {max}-byte limit"
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("cannot read the response: {}", chain(&e.without_url())))?
        {
            if body.len() as u64 + chunk.len() as u64 > max {
                return Err(format!("response exceeds the {max}-byte limit"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// An error and its causes on one line (reqwest's top-level message alone
/// says little: "error sending request").
#[cfg(feature = "http")]
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let message = cause.to_string();
        if !text.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        next = cause.source();
    }
    text
}

/// A command line fit for messages. Masked as `***`: the value of an
/// assignment anywhere in a word whose name looks secret (`--token=X`,
/// `TOKEN=X`, `?token=X&`, `--from-literal=password=X`), a URL's password
/// (`https://u:X@host`), and the next argument after a secret-looking option
/// or header name (`--password X`, `-H 'X-Api-Key: X'`), after `Bearer`,
/// `Basic` or `token`, and after `-u`/`--user` (`name:X`). A masked argument
/// that opens a quote is masked to its closing quote.
fn redact_command(command: &str) -> String {
    let mut out = String::with_capacity(command.len());
    let mut hide = Hide::No;
    let mut quote: Option<char> = None;
    for piece in command.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end();
        let space = &piece[word.len()..];
        if word.is_empty() {
            out.push_str(space);
            continue;
        }
        if let Some(q) = quote {
            // Inside a masked quoted argument: drop up to the closing quote.
            if word.ends_with(q) {
                out.push(q);
                quote = None;
            }
            if quote.is_none() {
                out.push_str(space);
            }
            continue;
        }
        match std::mem::replace(&mut hide, Hide::No) {
            Hide::Whole => {
                let open = word.chars().next().filter(|c| matches!(c, '\'' | '"'));
                if let Some(q) = open {
                    out.push(q);
                }
                out.push_str(crate::MASK);
                match open {
                    Some(q) if word.len() == 1 || !word.ends_with(q) => quote = Some(q),
                    Some(q) => out.push(q),
                    None => {}
                }
                if quote.is_none() {
                    out.push_str(space);
                }
                continue;
            }
            Hide::AfterColon if word.contains(':') => {
                let at = word.find(':').unwrap_or(0);
                out.push_str(&word[..=at]);
                out.push_str(crate::MASK);
                out.push_str(space);
                continue;
            }
            _ => {}
        }
        out.push_str(&redact_word(word));
        out.push_str(space);
        let bare = word.trim_matches(|c| matches!(c, '-' | '\'' | '"'));
        let name = bare.strip_suffix(':').unwrap_or(bare);
        hide = if word == "-u" || word == "--user" {
            Hide::AfterColon
        } else if bare.contains('=') {
            Hide::No
        } else if (word.starts_with('-') || bare.ends_with(':')) && crate::rules::is_secret_key(name)
            // `Authorization: Bearer X`: the scheme word passes, its value not.
            || ["bearer", "basic", "token"]
                .iter()
                .any(|w| name.eq_ignore_ascii_case(w))
        {
            Hide::Whole
        } else {
            Hide::No
        };
    }
    out
}

/// What to do with the next argument in [`redact_command`].
enum Hide {
    No,
    Whole,
    AfterColon,
}

/// One argument with secret assignments and URL passwords masked.
fn redact_word(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    // A URL's password: scheme://user:PASSWORD@host.
    if let Some(s) = rest.find("://") {
        let after = &rest[s + 3..];
        let host_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        if let Some(at) = after[..host_end].rfind('@')
            && let Some(colon) = after[..at].find(':')
        {
            out.push_str(&rest[..s + 3 + colon + 1]);
            out.push_str(crate::MASK);
            rest = &rest[s + 3 + at..];
        }
    }
    // name=VALUE anywhere, names ending at `-`, `?`, `&`, `=`, quotes.
    while let Some(eq) = rest.find('=') {
        let start = rest[..eq]
            .rfind(['-', '?', '&', '=', '\'', '"', ';', ','])
            .map_or(0, |i| i + 1);
        let name = &rest[start..eq];
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        if !name.is_empty() && crate::rules::is_secret_key(name) {
            let end = rest.find(['&', '\'', '"', ';', ',']).unwrap_or(rest.len());
            out.push_str(crate::MASK);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(feature = "http")]
fn redact_url(url: &str) -> String {
    // Never echo a query string: it may hold a token.
    url.split('?').next().unwrap_or(url).to_owned()
}

#[cfg(feature = "http")]
#[async_trait]
impl LiveSource for HttpSource {
    fn describe(&self) -> String {
        // Scheme, host, port and path: never credentials or a query string.
        let mut shown = format!("{}://", self.url.scheme());
        // An IPv6 literal keeps its brackets here.
        shown.push_str(self.url.host_str().unwrap_or_default());
        if let Some(port) = self.url.port() {
            shown.push_str(&format!(":{port}"));
        }
        shown.push_str(self.url.path());
        shown
    }

    async fn fetch(&self) -> Result<Tree, Error> {
        let body = tokio::time::timeout(self.timeout, self.get())
            .await
            .map_err(|_| format!("no response within {:?}", self.timeout))
            .and_then(|r| r)
            .map_err(|message| Error::Live {
                source_name: self.describe(),
                message,
            })?;
        load_tree_bytes(&body, self.format, &self.describe(), &self.limits)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[test]
    fn command_lines_are_shown_with_their_secrets_masked() {
        for (given, shown) in [
            (
                "kubectl get deploy web -o json",
                "kubectl get deploy web -o json",
            ),
            (
                "kubectl --token=eyJhbGci get deploy",
                "kubectl --token=*** get deploy",
            ),
            (
                "kubectl --token eyJhbGci get deploy",
                "kubectl --token *** get deploy",
            ),
            (
                "API_TOKEN=abc curl -s http://x",
                "API_TOKEN=*** curl -s http://x",
            ),
            (
                "curl -H 'Authorization: Bearer abc.def' http://x",
                "curl -H 'Authorization: Bearer *** http://x",
            ),
            ("tool --password  hunter2  -v", "tool --password  ***  -v"),
            ("tool --verbose --name web", "tool --verbose --name web"),
            (
                "curl -H 'X-Api-Key: abc' http://x",
                "curl -H 'X-Api-Key: *** http://x",
            ),
            (
                "curl -H 'PRIVATE-TOKEN: abc' x",
                "curl -H 'PRIVATE-TOKEN: *** x",
            ),
            (
                "curl -u admin:hunter2 http://x",
                "curl -u admin:*** http://x",
            ),
            ("tool --password 'two words' -v", "tool --password '***' -v"),
            (
                "curl https://u:pw@host/x?a=1&token=t9&b=2",
                "curl https://u:***@host/x?a=1&token=***&b=2",
            ),
            (
                "kubectl create secret generic s --from-literal=password=x",
                "kubectl create secret generic s --from-literal=password=***",
            ),
        ] {
            assert_eq!(redact_command(given), shown, "{given}");
        }
    }
    use crate::load::load_tree;

    /// Serves a scripted sequence of fetch results; the last one repeats.
    struct Scripted(Mutex<Vec<Result<&'static str, &'static str>>>);

    #[async_trait]
    impl LiveSource for Scripted {
        fn describe(&self) -> String {
            "scripted".to_owned()
        }
        async fn fetch(&self) -> Result<Tree, Error> {
            let next = {
                let mut docs = self.0.lock().unwrap();
                if docs.len() > 1 {
                    docs.remove(0)
                } else {
                    docs[0]
                }
            };
            match next {
                Ok(text) => load_tree(text, Format::Json, "live.json", &Limits::default()),
                Err(message) => Err(Error::Live {
                    source_name: "scripted".to_owned(),
                    message: message.to_owned(),
                }),
            }
        }
    }

    /// Records every notification with its time on the (paused) clock.
    struct Health {
        start: Instant,
        seen: Mutex<Vec<(u64, String)>>,
    }

    impl Health {
        fn push(&self, line: String) {
            let at = (Instant::now() - self.start).as_secs();
            self.seen.lock().unwrap().push((at, line));
        }
    }

    #[async_trait]
    impl Notifier for Health {
        async fn notify(&self, event: &DriftEvent) {
            let kind = match event {
                DriftEvent::Appeared { .. } => "appeared",
                DriftEvent::Changed { .. } => "changed",
                DriftEvent::Cleared { .. } => "cleared",
            };
            self.push(kind.to_owned());
        }
        async fn source_failed(&self, source: &str, error: &Error) {
            self.push(format!("failed {source}: {error}"));
        }
        async fn source_recovered(&self, source: &str, failed_checks: u64, failed_for: Duration) {
            self.push(format!(
                "recovered {source} after {failed_checks} checks, {}s",
                failed_for.as_secs()
            ));
        }
    }

    #[cfg(feature = "http")]
    #[test]
    fn urls_are_checked_and_never_echo_queries() {
        assert!(HttpSource::new("ftp://x/", Format::Json).is_err());
        assert!(HttpSource::new("http://u:p@x/", Format::Json).is_err());
        assert!(HttpSource::new("https://:443/", Format::Json).is_err());
        let s = HttpSource::new("http://localhost:8080/config?token=abc", Format::Json).unwrap();
        assert_eq!(s.describe(), "http://localhost:8080/config");
        let s = HttpSource::new("http://example", Format::Json).unwrap();
        assert_eq!(s.describe(), "http://example/");
        // An IPv6 literal keeps its port (the hand-written client split
        // `[::1]:8080` at the wrong colon).
        let s = HttpSource::new("https://[::1]:8443/c#frag", Format::Json).unwrap();
        assert_eq!(s.describe(), "https://[::1]:8443/c");
        let s = HttpSource::new("https://example.com:443/c", Format::Json).unwrap();
        assert_eq!(s.describe(), "https://example.com/c");
    }

    #[cfg(feature = "http")]
    #[test]
    fn header_lines_are_parsed_and_never_shown() {
        let s = HttpSource::new("https://x/", Format::Json)
            .unwrap()
            .header_lines(
                "# token for the config API\n\nAuthorization: Bearer s3cret\nX-Tenant:  blue \n",
                "file h.txt",
            )
            .unwrap();
        assert_eq!(s.headers.len(), 2);
        assert_eq!(s.headers["x-tenant"], "blue");
        assert!(s.headers["authorization"].is_sensitive());
        assert!(!format!("{s:?}").contains("s3cret"), "{s:?}");
        for (text, why) in [
            (
                "Authorization Bearer x",
                "header file h.txt line 1: expected `Name: value`",
            ),
            (
                "\nBad Name: x",
                "header file h.txt line 2: invalid header name \"Bad Name\"",
            ),
            (
                "X-A: a\u{7f}b",
                "header file h.txt line 1: invalid value for x-a",
            ),
        ] {
            let e = HttpSource::new("https://x/", Format::Json)
                .unwrap()
                .header_lines(text, "file h.txt")
                .unwrap_err()
                .to_string();
            assert_eq!(e, format!("live source https://x/: {why}"));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_source_is_reported_once_per_distinct_error_and_on_recovery() {
        let desired = load_tree(r#"{"a": 1}"#, Format::Json, "d.json", &Limits::default()).unwrap();
        let source = Arc::new(Scripted(Mutex::new(vec![
            Err("connection refused"),
            Err("connection refused"),
            Err("connection refused"),
            Err("server answered 503"),
            Ok(r#"{"a": 2}"#),
            Err("server answered 503"),
            Err("server answered 503"),
            Ok(r#"{"a": 1}"#),
        ])));
        let health = Arc::new(Health {
            start: Instant::now(),
            seen: Mutex::new(Vec::new()),
        });
        let watcher = DriftWatcher::builder(desired, source)
            .interval(Duration::from_secs(10))
            .notifier(health.clone())
            .build()
            .unwrap();
        // Checks at 0, 10, ..., 70 s.
        watcher
            .run(tokio::time::sleep(Duration::from_secs(75)))
            .await;
        let seen = health.seen.lock().unwrap();
        let want: Vec<(u64, String)> = [
            (
                0,
                "failed scripted: live source scripted: connection refused",
            ),
            (
                30,
                "failed scripted: live source scripted: server answered 503",
            ),
            (40, "recovered scripted after 4 checks, 40s"),
            (40, "appeared"),
            (
                50,
                "failed scripted: live source scripted: server answered 503",
            ),
            (70, "recovered scripted after 2 checks, 20s"),
            (70, "cleared"),
        ]
        .into_iter()
        .map(|(at, line)| (at, line.to_owned()))
        .collect();
        assert_eq!(*seen, want);
    }

    #[cfg(target_os = "linux")]
    use rollgate_test::process::{assert_gone, gone, grandchild_line, pid_while, runs};

    /// A shell source running [`grandchild_line`]; its pid file.
    #[cfg(target_os = "linux")]
    fn hanging_source(dir: &tempfile::TempDir, timeout: Duration) -> (CommandSource, PathBuf) {
        let (line, file) = grandchild_line(dir.path());
        (
            CommandSource::shell(line, Format::Json).timeout(timeout),
            file,
        )
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_command_source_timeout_kills_what_the_command_started() {
        let dir = tempfile::tempdir().unwrap();
        // 5 s: time for the grandchild to write its pid on a loaded machine.
        let (source, file) = hanging_source(&dir, Duration::from_secs(5));
        let started = std::time::Instant::now();
        let e = source.fetch().await.unwrap_err().to_string();
        let took = started.elapsed();
        assert!(e.contains("no result within 5s"), "{e}");
        assert!(took < Duration::from_secs(60), "returned after {took:?}");
        assert_gone(&file, "the timeout").await;
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_cancelled_fetch_kills_what_the_command_started() {
        let dir = tempfile::tempdir().unwrap();
        let (source, file) = hanging_source(&dir, Duration::from_secs(600));
        let mut fetch = source.fetch();
        let pid = pid_while(&mut fetch, &file).await;
        assert!(runs(pid), "the background process {pid} is not running yet");
        drop(fetch);
        assert!(
            gone(pid).await,
            "background process {pid} outlived the cancelled fetch"
        );
    }

    #[tokio::test]
    async fn a_shell_command_source_is_named_by_its_command_line() {
        let s = CommandSource::shell("exit 3", Format::Json);
        assert_eq!(s.describe(), r#"command "exit 3""#);
        let e = s.fetch().await.unwrap_err().to_string();
        assert!(
            e.starts_with(r#"live source command "exit 3": exited with "#),
            "{e}"
        );
        assert!(e.ends_with('3'), "{e}");
        let s = CommandSource::shell(r#"echo '{"a": 1}'"#, Format::Json);
        assert_eq!(s.fetch().await.unwrap().to_node().to_json(), r#"{"a":1}"#);
    }
}
