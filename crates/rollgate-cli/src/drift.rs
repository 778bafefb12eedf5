//! `rollgate drift`: compare DESIRED (files plus overlays) with LIVE, check
//! environment parity, or watch for drift.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use rollgate_drift::arena::Tree;
use rollgate_drift::{
    CommandSource, Differ, DriftEvent, DriftWatcher, Error, FileSource, Format, HttpSource, Limits,
    LiveSource, Normaliser, Notifier, RenderOptions, Report, Rules, Value, apply_overlay,
    load_file, load_tree_file, load_tree_file_as, load_tree_reader, render_json, render_text,
};

/// Exit code: inputs agree.
const NO_DRIFT: u8 = 0;
/// Exit code: drift found.
const DRIFT: u8 = 1;
/// Exit code: bad input (unreadable file, invalid document or rules).
const BAD_INPUT: u8 = 2;
use crate::rollout::{INTERRUPTED_INT, INTERRUPTED_TERM};

/// Compare desired configuration with what runs.
///
/// Exit codes: 0 no drift, 1 drift found, 2 bad input.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DriftArgs {
    #[command(subcommand)]
    command: Option<DriftCommand>,
    /// Desired configuration (.json, .yaml, .yml or .toml).
    #[arg(required = true)]
    desired: Option<PathBuf>,
    /// Live configuration (.json, .yaml, .yml or .toml), or `-` for standard
    /// input, e.g. `kubectl get deploy web -o json | rollgate drift web.yaml -`.
    #[arg(required = true)]
    live: Option<PathBuf>,
    /// Format of LIVE (default: from the file name; json for `-`).
    #[arg(long, value_enum)]
    live_format: Option<LiveFormat>,
    #[command(flatten)]
    common: Common,
    /// Output: text for people, json for tools, patch for the RFC 6902 patch
    /// that turns LIVE into DESIRED.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
}

#[derive(Debug, Args)]
struct Common {
    /// Environment overlay merged onto DESIRED, in order (repeatable).
    #[arg(long = "overlay", value_name = "FILE")]
    overlays: Vec<PathBuf>,
    /// Rules file (TOML): list keys, ignores, normalisers, severities, secrets.
    #[arg(long, value_name = "RULES.toml")]
    rules: Option<PathBuf>,
    /// Maximum nesting depth of any input (1 to 1000).
    #[arg(long, default_value_t = 128,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    max_depth: usize,
    /// Maximum size of any input in bytes (at most 4294967295, 4 GiB - 1).
    #[arg(long, default_value_t = 1 << 30,
          value_parser = clap::value_parser!(u64).range(1..=4_294_967_295))]
    max_bytes: u64,
}

#[derive(Debug, Subcommand)]
enum DriftCommand {
    /// Structure-only comparison of two environments: same keys, list entries
    /// and types; values may differ. Exit codes: 0 same shape, 1 differ, 2 bad input.
    #[command(mut_arg("overlays", |a| a.help("Environment overlay merged onto A (not B), in order (repeatable)")))]
    Parity {
        /// First environment's configuration (.json, .yaml, .yml or .toml).
        a: PathBuf,
        /// Second environment's configuration (.json, .yaml, .yml or .toml).
        b: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Output: text for people, json for tools.
        #[arg(long, value_enum, default_value_t = ParityFormat::Text)]
        format: ParityFormat,
    },
    /// Compare DESIRED with a live source every interval and print each time
    /// drift appears, changes or clears (with its detection time). A live
    /// source that cannot be read is retried every interval and reported on
    /// stderr once per distinct error, and again when it can be read.
    /// Runs until interrupted; with --once, checks once and exits 0 no drift,
    /// 1 drift, 2 bad input or unreachable source.
    Watch(Box<WatchArgs>),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("live").required(true).args(["live_file", "live_command", "live_url"])))]
struct WatchArgs {
    /// Desired configuration (.json, .yaml, .yml or .toml).
    desired: PathBuf,
    /// Live configuration read from this file at each check.
    #[arg(long, value_name = "FILE")]
    live_file: Option<PathBuf>,
    /// Live configuration printed by this shell command (run with `sh -c`),
    /// e.g. "kubectl get deploy web -o json".
    #[arg(long, value_name = "COMMAND")]
    live_command: Option<String>,
    /// Live configuration fetched with HTTP GET (https:// or http://;
    /// redirects are followed; the system's root certificates are trusted).
    #[arg(long, value_name = "URL")]
    live_url: Option<String>,
    /// With --live-url: request headers read from FILE, one `Name: value`
    /// per line (e.g. `Authorization: Bearer ...`); `#` lines are comments.
    /// Values are never printed. Repeatable.
    #[arg(long, value_name = "FILE", requires = "live_url")]
    live_header_file: Vec<PathBuf>,
    /// With --live-url: request headers held by environment variable VAR,
    /// in the same `Name: value` lines. Repeatable.
    #[arg(long, value_name = "VAR", requires = "live_url")]
    live_header_env: Vec<String>,
    /// With --live-url: also trust the PEM root certificate(s) in FILE (a
    /// private CA or a self-signed server).
    #[arg(long, value_name = "FILE", requires = "live_url")]
    live_ca_file: Option<PathBuf>,
    /// Format of the live document (default: from the file or URL name, else json).
    #[arg(long, value_enum)]
    live_format: Option<LiveFormat>,
    /// Time between checks: 500ms, 30s, 5m, 1h.
    #[arg(long, default_value = "30s")]
    interval: String,
    /// Check once and exit with the drift exit code.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    telemetry: crate::obs::TelemetryFlags,
}

/// Parity output: a structure report has no patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ParityFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LiveFormat {
    Json,
    Yaml,
    Toml,
}

impl LiveFormat {
    fn format(self) -> Format {
        match self {
            LiveFormat::Json => Format::Json,
            LiveFormat::Yaml => Format::Yaml,
            LiveFormat::Toml => Format::Toml,
        }
    }
}

/// Loads LIVE: a file (format from `--live-format`, else its name) or, for
/// `-`, standard input (JSON unless `--live-format` says otherwise).
fn load_live(live: &Path, format: Option<LiveFormat>, limits: &Limits) -> Result<Tree, Error> {
    let explicit = format.map(LiveFormat::format);
    if live == Path::new("-") {
        let format = explicit.unwrap_or(Format::Json);
        let mut loaded = load_tree_reader(std::io::stdin().lock(), format, "stdin", limits);
        // Read as JSON by default: say how to read YAML or TOML.
        if let Err(Error::Syntax { message, .. }) = &mut loaded
            && explicit.is_none()
        {
            message.push_str(
                " (standard input is read as JSON; pass --live-format yaml or toml for those)",
            );
        }
        return loaded;
    }
    match explicit {
        Some(format) => load_tree_file_as(live, format, limits),
        None => load_tree_file(live, limits),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
    Patch,
}

impl Common {
    fn limits(&self) -> Limits {
        Limits {
            max_depth: self.max_depth,
            max_bytes: self.max_bytes,
            ..Limits::default()
        }
    }

    fn rules(&self) -> Result<Rules, Error> {
        match &self.rules {
            Some(p) => Rules::from_file(p),
            None => Ok(Rules::new()),
        }
    }

    /// How reports name the inputs: DESIRED as the base and its overlays
    /// joined by `+`, each DESIRED position in the file it came from.
    fn render_options(&self, base: &Path, live: &str) -> RenderOptions {
        let mut sources = vec![base.display().to_string()];
        sources.extend(self.overlays.iter().map(|o| o.display().to_string()));
        let opts = RenderOptions::new(sources.join("+"), live);
        if self.overlays.is_empty() {
            opts
        } else {
            opts.desired_sources(sources)
        }
    }

    /// Loads `path` and merges every overlay onto it. Without overlays the
    /// file is parsed straight into the compact tree; overlays merge on the
    /// owned model, converted once at the end.
    fn desired(&self, path: &Path, rules: &Rules) -> Result<Tree, Error> {
        let limits = self.limits();
        if self.overlays.is_empty() {
            return load_tree_file(path, &limits);
        }
        let mut node = load_file(path, &limits)?;
        for (k, overlay) in (1u32..).zip(&self.overlays) {
            let mut o = load_file(overlay, &limits)?;
            // Positions from this overlay are reported in its own file.
            o.set_source(k);
            apply_overlay(&mut node, &o, rules, &overlay.display().to_string())?;
        }
        Tree::from_node(&node)
    }
}

/// Turns transparent huge pages off for this process, before it loads large
/// documents. mimalloc asks for them on its arenas; on a VM whose host has
/// taken memory back, a fresh huge page costs about 2 ns a byte to fault in
/// against 0.7 for 4 KiB pages, which more than halved the speed of loading
/// large documents in a fresh process (BENCHMARKS.md, rollgate-drift).
/// Children inherit the setting, so only the commands that start none call
/// this (not `watch`, whose live source may be a command). Failing (an old
/// kernel) changes nothing.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

/// Runs `rollgate drift ...` and returns the exit code.
pub fn run(args: DriftArgs) -> ExitCode {
    let result = match args.command {
        Some(DriftCommand::Parity {
            a,
            b,
            common,
            format,
        }) => {
            no_huge_pages();
            parity(&a, &b, &common, format)
        }
        Some(DriftCommand::Watch(w)) => watch(&w),
        None => match (args.desired, args.live) {
            (Some(desired), Some(live)) => {
                no_huge_pages();
                compare(&desired, &live, args.live_format, &args.common, args.format)
            }
            _ => Err(Message("drift needs DESIRED and LIVE files".to_owned())),
        },
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            crate::obs::fail(&format!("rollgate drift: {e}"), BAD_INPUT);
            ExitCode::from(BAD_INPUT)
        }
    }
}

#[derive(Debug)]
struct Message(String);

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Error> for Message {
    fn from(e: Error) -> Self {
        Message(e.to_string())
    }
}

fn compare(
    desired: &Path,
    live: &Path,
    live_format: Option<LiveFormat>,
    common: &Common,
    format: OutputFormat,
) -> Result<u8, Message> {
    if desired == Path::new("-") {
        return Err(Message(
            "DESIRED must be a file (`-`, standard input, is for LIVE)".to_owned(),
        ));
    }
    let rules = common.rules()?;
    // Parse both sides at once: on large documents parsing dominates.
    let (d, l) = std::thread::scope(|scope| {
        let live_job = scope.spawn(|| load_live(live, live_format, &common.limits()));
        let d = common.desired(desired, &rules);
        let l = live_job.join().unwrap_or_else(|_| {
            Err(Error::Live {
                source_name: live.display().to_string(),
                message: "loader thread panicked".to_owned(),
            })
        });
        (d, l)
    });
    let (d, l) = (d?, l?);
    let report = Differ::new(rules).diff_trees(&d, &l);
    let live_name = if live == Path::new("-") {
        Path::new("stdin")
    } else {
        live
    };
    let opts = common.render_options(desired, &live_name.display().to_string());
    emit(&report, opts, format)?;
    Ok(if report.has_drift() { DRIFT } else { NO_DRIFT })
}

fn parity(a: &Path, b: &Path, common: &Common, format: ParityFormat) -> Result<u8, Message> {
    let format = match format {
        ParityFormat::Text => OutputFormat::Text,
        ParityFormat::Json => OutputFormat::Json,
    };
    let rules = common.rules()?;
    let limits = common.limits();
    let ta = common.desired(a, &rules)?;
    let tb = load_tree_file(b, &limits)?;
    let report = Differ::new(rules).parity_trees(&ta, &tb);
    emit(
        &report,
        common.render_options(a, &b.display().to_string()),
        format,
    )?;
    Ok(if report.has_drift() { DRIFT } else { NO_DRIFT })
}

fn parse_interval(text: &str) -> Result<Duration, Message> {
    let bad = || {
        Message(format!(
            "invalid --interval \"{text}\" (use 500ms, 30s, 5m or 1h)"
        ))
    };
    match Normaliser::Duration.apply(&Value::String(text.into())) {
        Value::Number(n) if n.as_f64() > 0.0 && n.as_f64() < 1e9 => {
            Ok(Duration::from_secs_f64(n.as_f64()))
        }
        _ => Err(bad()),
    }
}

fn live_source(w: &WatchArgs) -> Result<Arc<dyn LiveSource>, Message> {
    let explicit = w.live_format.map(LiveFormat::format);
    let limits = w.common.limits();
    if let Some(path) = &w.live_file {
        let format = explicit
            .or_else(|| Format::from_path(path))
            .ok_or_else(|| {
                Message(format!(
                    "{}: unknown format; pass --live-format",
                    path.display()
                ))
            })?;
        return Ok(Arc::new(FileSource::new(path, format).limits(limits)));
    }
    let format = explicit.unwrap_or(Format::Json);
    if let Some(cmd) = &w.live_command {
        return Ok(Arc::new(
            CommandSource::shell(cmd.clone(), format).limits(limits),
        ));
    }
    match &w.live_url {
        Some(url) => {
            // A URL ending in .yaml, .yml or .toml says its format.
            let path = url.split(['?', '#']).next().unwrap_or(url);
            let format = explicit
                .or_else(|| Format::from_path(Path::new(path)))
                .unwrap_or(Format::Json);
            let mut source = HttpSource::new(url, format)?.limits(limits);
            if let Some(ca) = &w.live_ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    Message(format!("--live-ca-file {}: cannot read: {e}", ca.display()))
                })?;
                source = source
                    .root_certificates_pem(&pem)
                    .map_err(|e| Message(format!("--live-ca-file {}: {e}", ca.display())))?;
            }
            for file in &w.live_header_file {
                source = source.header_file(file)?;
            }
            for var in &w.live_header_env {
                source = source.header_env(var)?;
            }
            Ok(Arc::new(source))
        }
        None => Err(Message(
            "watch needs --live-file, --live-command or --live-url".to_owned(),
        )),
    }
}

/// Prints each transition for people (stdout), and when the live source
/// fails or recovers (stderr).
struct Printer {
    opts: RenderOptions,
    interval: Duration,
}

#[rollgate_drift::async_trait]
impl Notifier for Printer {
    async fn notify(&self, event: &DriftEvent) {
        let opts = &self.opts;
        let text = match event {
            DriftEvent::Appeared {
                report,
                detected_within,
            } => format!(
                "drift appeared (detected within {:.1}s)\n{}",
                detected_within.as_secs_f64(),
                render_text(report, opts)
            ),
            DriftEvent::Changed { report } => {
                format!("drift changed\n{}", render_text(report, opts))
            }
            DriftEvent::Cleared { lasted } => {
                format!("drift cleared after {:.1}s\n", lasted.as_secs_f64())
            }
            _ => return,
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }

    async fn source_failed(&self, source: &str, error: &Error) {
        // A live-source error already starts with the source's name.
        let text = error.to_string();
        let detail = text
            .strip_prefix(&format!("live source {source}: "))
            .unwrap_or(&text);
        crate::obs::say(&format!(
            "rollgate drift: cannot check against {source}: {detail}; retrying every {} (said again only if the error changes)",
            humantime::format_duration(self.interval)
        ));
    }

    async fn source_recovered(&self, source: &str, failed_checks: u64, failed_for: Duration) {
        crate::obs::say(&format!(
            "rollgate drift: {source} is readable again after {failed_checks} failed check(s) over {:.1}s",
            failed_for.as_secs_f64()
        ));
    }
}

fn watch(w: &WatchArgs) -> Result<u8, Message> {
    w.telemetry.install().map_err(Message)?;
    let interval = parse_interval(&w.interval)?;
    let rules = w.common.rules()?;
    let desired = w.common.desired(&w.desired, &rules)?;
    let source = live_source(w)?;
    let live_name = w
        .live_file
        .as_ref()
        .map_or_else(|| source.describe(), |p| p.display().to_string());
    let opts = w.common.render_options(&w.desired, &live_name);
    let printer = Arc::new(Printer {
        opts: opts.clone(),
        interval,
    });
    let mut builder = DriftWatcher::builder(desired, source)
        .differ(Differ::new(rules))
        .interval(interval)
        .name(w.desired.display().to_string());
    if !w.once {
        builder = builder.notifier(printer);
    }
    let mut watcher = builder.build()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Message(format!("cannot start the runtime: {e}")))?;
    if w.once {
        // A signal drops the check, and with it a `--live-command` (its
        // process group is killed): the command runs in a group of its own,
        // out of the terminal's reach.
        let checked = rt.block_on(async {
            let stop = stop_signal()?;
            Ok::<_, Message>(tokio::select! {
                r = watcher.check() => Ok(r),
                got = stop => Err(got),
            })
        })?;
        let outcome = match checked {
            Ok(r) => r?,
            Err((code, name)) => {
                crate::obs::say(&format!(
                    "rollgate drift: {name}: stopped before the check finished; nothing was compared"
                ));
                return Ok(code);
            }
        };
        emit(&outcome.report, opts, OutputFormat::Text)?;
        return Ok(if outcome.report.has_drift() {
            DRIFT
        } else {
            NO_DRIFT
        });
    }
    crate::obs::say(&format!(
        "rollgate drift: watching {} against {live_name} every {}",
        w.desired.display(),
        humantime::format_duration(interval)
    ));
    // Runs until SIGINT or SIGTERM (exit 130 or 143); a failing source is reported on
    // stderr (once per distinct error) and retried at the next tick.
    rt.block_on(async {
        let signal = stop_signal()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stop = async move {
            let (code, _) = signal.await;
            let _ = tx.send(code);
        };
        watcher.run(stop).await;
        Ok(rx.await.unwrap_or(INTERRUPTED_TERM))
    })
}

/// SIGINT or SIGTERM, listened for from now on (inside a runtime): a
/// future that ends with the exit code (130 or 143) and the signal's name,
/// recorded for `--metrics-linger`.
fn stop_signal() -> Result<impl std::future::Future<Output = (u8, &'static str)>, Message> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| Message(format!("cannot watch for SIGINT: {e}")))?;
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Message(format!("cannot watch for SIGTERM: {e}")))?;
    Ok(async move {
        let (code, name) = tokio::select! {
            _ = int.recv() => (INTERRUPTED_INT, "SIGINT"),
            _ = term.recv() => (INTERRUPTED_TERM, "SIGTERM"),
        };
        crate::obs::stop_requested(name);
        (code, name)
    })
}

fn emit(report: &Report, opts: RenderOptions, format: OutputFormat) -> Result<(), Message> {
    let stdout = std::io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let opts = opts.color(color);
    let text = match format {
        OutputFormat::Text => render_text(report, &opts),
        OutputFormat::Json => render_json(report, &opts),
        OutputFormat::Patch => {
            // Labels: a keyed list element by its key, right in LIVE too.
            let withheld = report.withheld_labels();
            if !withheld.is_empty() {
                // Paths only: a patch never carries a secret's value. The
                // first few, then how many more.
                const SHOWN: usize = 10;
                // Keys come from the inputs: no control character reaches
                // the terminal.
                let mut paths = withheld[..withheld.len().min(SHOWN)]
                    .iter()
                    .map(|l| l.escape_debug().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                if withheld.len() > SHOWN {
                    paths.push_str(&format!(" and {} more", withheld.len() - SHOWN));
                }
                eprintln!(
                    "rollgate drift: the patch leaves out {} change(s) that would write a secret; apply them from your secret store: {paths}",
                    withheld.len()
                );
            }
            report.patch().to_json_lines()
        }
    };
    let mut lock = stdout.lock();
    lock.write_all(text.as_bytes())
        .and_then(|()| lock.flush())
        .map_err(|e| Message(format!("cannot write the report: {e}")))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrap {
        #[command(flatten)]
        args: DriftArgs,
    }

    fn exit(dir: &Path, argv: &[&str]) -> ExitCode {
        let mut full = vec!["drift".to_owned()];
        full.extend(argv.iter().map(|a| {
            if !a.contains('.') || a.contains(' ') {
                (*a).to_owned()
            } else {
                dir.join(a).display().to_string()
            }
        }));
        run(Wrap::parse_from(full).args)
    }

    #[test]
    fn standard_input_is_for_live_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("l.json"), "{}").unwrap();
        assert_eq!(
            exit(dir.path(), &["-", "l.json"]),
            ExitCode::from(BAD_INPUT)
        );
    }

    #[test]
    fn exit_codes_say_no_drift_drift_and_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(
            p.join("d.yaml"),
            "a: 1\nl: [{name: x, v: 1}, {name: y, v: 2}]\n",
        )
        .unwrap();
        std::fs::write(
            p.join("same.json"),
            r#"{"a":1,"l":[{"name":"y","v":2},{"name":"x","v":1}]}"#,
        )
        .unwrap();
        std::fs::write(p.join("other.toml"), "a = 2\nl = []\n").unwrap();
        std::fs::write(p.join("bad.json"), "{\"a\": 1, \"a\": 2}").unwrap();
        std::fs::write(p.join("prod.yaml"), "a: 2\n").unwrap();
        std::fs::write(p.join("r.toml"), "[[rule]]\npath = \"/a\"\nignore = true\n").unwrap();
        assert_eq!(exit(p, &["d.yaml", "same.json"]), ExitCode::from(NO_DRIFT));
        assert_eq!(
            exit(p, &["d.yaml", "other.toml", "--format", "json"]),
            ExitCode::from(DRIFT)
        );
        assert_eq!(exit(p, &["d.yaml", "bad.json"]), ExitCode::from(BAD_INPUT));
        assert_eq!(
            exit(p, &["d.yaml", "missing.json"]),
            ExitCode::from(BAD_INPUT)
        );
        // The overlay makes DESIRED's `a` 2, as in other.toml; the list still differs.
        assert_eq!(
            exit(
                p,
                &[
                    "d.yaml",
                    "other.toml",
                    "--overlay",
                    "prod.yaml",
                    "--format",
                    "patch"
                ]
            ),
            ExitCode::from(DRIFT)
        );
        assert_eq!(
            exit(p, &["d.yaml", "same.json", "--overlay", "prod.yaml"]),
            ExitCode::from(DRIFT)
        );
        assert_eq!(
            exit(
                p,
                &[
                    "d.yaml",
                    "same.json",
                    "--overlay",
                    "prod.yaml",
                    "--rules",
                    "r.toml"
                ]
            ),
            ExitCode::from(NO_DRIFT)
        );
        assert_eq!(
            exit(p, &["parity", "d.yaml", "same.json"]),
            ExitCode::from(NO_DRIFT)
        );
        assert_eq!(
            exit(p, &["parity", "d.yaml", "other.toml"]),
            ExitCode::from(DRIFT)
        );
    }
}
