//! `rollgate report`: a rollout's self-contained HTML report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use rollgate_deploy::Error;
use serde_json::json;

use crate::rollout::{
    BAD_INPUT, Common, Fail, Output, SUCCESS, finish, open_existing, parse_id, runtime,
};

const EXIT_CODES: &str = "Exit codes: 0 report written, 2 bad input (a malformed or unknown \
rollout id, an --out path that cannot be written), 4 state store missing, busy or unusable.";

/// Write a rollout's HTML report: a timeline of phases and verdicts, who did
/// what, baseline vs canary charts for each metric a canary gate judged,
/// the reason tables and the audit rows. One file, no script, no network.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct ReportArgs {
    /// The rollout id (as `rollgate rollout list` shows it).
    id: String,
    /// Where to write the page (replaced if it exists; its directory must exist).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// Runs `rollgate report`.
pub fn run(args: ReportArgs) -> ExitCode {
    let result = runtime().and_then(|rt| rt.block_on(report(&args)));
    finish("report", result)
}

async fn report(args: &ReportArgs) -> Result<u8, Fail> {
    let id = parse_id(&args.id)?;
    let store = open_existing(&args.common).await?;
    let request = store.request(id).await.map_err(|e| match e {
        Error::NotFound(_) => Fail(BAD_INPUT, format!("rollout {id} not found")),
        other => Fail::from(other),
    })?;
    let events = store.events(id, 0).await?;
    let html = rollgate::report::render_html(id, &request, &events);
    write(&args.out, html.as_bytes())?;
    if args.common.output() == Output::Json {
        crate::rollout::write_line(format_args!(
            "{}",
            json!({ "rollout": id.0, "out": args.out.display().to_string(), "bytes": html.len() })
        ));
    } else {
        crate::rollout::write_line(format_args!(
            "rollout {id}: report written to {} ({} KB)",
            args.out.display(),
            html.len().div_ceil(1024)
        ));
    }
    Ok(SUCCESS)
}

/// Writes `bytes` to `path` through a temporary file beside it, so an
/// existing report is replaced whole or not at all.
fn write(path: &Path, bytes: &[u8]) -> Result<(), Fail> {
    let cannot = |e: std::io::Error| {
        Fail(
            BAD_INPUT,
            format!("cannot write --out {}: {e}", path.display()),
        )
    };
    if path.is_dir() {
        return Err(Fail(
            BAD_INPUT,
            format!(
                "--out {} is a directory: name the file to write",
                path.display()
            ),
        ));
    }
    let name = path.file_name().ok_or_else(|| {
        Fail(
            BAD_INPUT,
            format!("--out {} does not name a file", path.display()),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes).map_err(cannot)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cannot(e)
    })
}
