//! `rollgate telemetry`: generated operational assets.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use rollgate_telemetry::AssetOptions;

/// Telemetry tooling.
#[derive(Debug, Args)]
pub struct TelemetryArgs {
    #[command(subcommand)]
    command: TelemetryCommand,
}

#[derive(Debug, Subcommand)]
enum TelemetryCommand {
    /// Write the Grafana dashboard (rollgate-dashboard.json) and Prometheus
    /// alerting rules (rollgate-alerts.yml) into a directory.
    /// Exit 0 when written, 2 on a bad threshold or an I/O error.
    Assets(AssetsArgs),
}

#[derive(Debug, Args)]
struct AssetsArgs {
    /// Directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// p99 latency alert threshold, in milliseconds.
    #[arg(long, default_value_t = 500.0)]
    p99_ms: f64,
    /// Error ratio alert threshold, in percent of requests.
    #[arg(long, default_value_t = 1.0)]
    error_percent: f64,
    /// Availability objective for the error-budget burn alerts, in percent.
    #[arg(long, default_value_t = 99.9)]
    slo_percent: f64,
    /// Traffic dip alert: traffic below this percent of an hour ago.
    #[arg(long, default_value_t = 50.0)]
    traffic_dip_percent: f64,
    /// Minutes a condition must hold before an alert fires.
    #[arg(long, default_value_t = 5)]
    for_minutes: u32,
}

/// Checks one threshold flag as the user typed it, so the message names the
/// flag and its unit rather than the library's field.
fn check_flag(flag: &str, value: f64, ok: bool, expected: &str) -> Result<(), String> {
    if value.is_finite() && ok {
        Ok(())
    } else {
        Err(format!(
            "{flag} {value} is out of range: expected {expected}"
        ))
    }
}

/// The asset options from the flags, each flag checked in its own unit.
fn options(a: &AssetsArgs) -> Result<AssetOptions, String> {
    let percent = |flag: &str, v: f64| {
        check_flag(
            flag,
            v,
            v > 0.0 && v < 100.0,
            "more than 0 and less than 100",
        )
    };
    check_flag("--p99-ms", a.p99_ms, a.p99_ms > 0.0, "more than 0")?;
    percent("--error-percent", a.error_percent)?;
    percent("--slo-percent", a.slo_percent)?;
    percent("--traffic-dip-percent", a.traffic_dip_percent)?;
    if a.for_minutes == 0 {
        return Err("--for-minutes 0 is out of range: expected at least 1".to_owned());
    }
    let mut opts = AssetOptions::default();
    opts.p99_seconds = a.p99_ms / 1000.0;
    opts.error_ratio = a.error_percent / 100.0;
    opts.slo_target = a.slo_percent / 100.0;
    opts.traffic_dip_fraction = a.traffic_dip_percent / 100.0;
    opts.for_minutes = a.for_minutes;
    Ok(opts)
}

/// The error and every cause under it, `: `-separated (an I/O error's
/// cause is the OS error: "File exists", "Not a directory"...).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Writes the assets and returns their paths, or what went wrong.
fn assets(a: &AssetsArgs) -> Result<Vec<PathBuf>, String> {
    options(a)?.write(&a.out).map_err(|e| with_causes(&e))
}

/// Runs `rollgate telemetry ...`.
pub fn run(args: TelemetryArgs) -> ExitCode {
    match args.command {
        TelemetryCommand::Assets(a) => match assets(&a) {
            Ok(paths) => {
                for p in paths {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rollgate telemetry assets: {e}");
                ExitCode::from(2)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: TelemetryArgs,
    }

    fn parse(argv: &[&str]) -> TelemetryArgs {
        let mut full = vec!["telemetry"];
        full.extend_from_slice(argv);
        Wrapper::try_parse_from(full)
            .map(|w| w.args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn assets_writes_dashboard_and_rules_with_given_thresholds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("assets");
        let out_str = out.to_string_lossy().into_owned();
        let code = run(parse(&["assets", "--out", &out_str, "--p99-ms", "300"]));
        assert_eq!(code, ExitCode::SUCCESS);
        let rules =
            std::fs::read_to_string(out.join("rollgate-alerts.yml")).expect("rules written");
        assert!(rules.contains("> 0.3\""), "{rules}");
        let dashboard =
            std::fs::read_to_string(out.join("rollgate-dashboard.json")).expect("dashboard");
        assert!(dashboard.contains("\"uid\": \"rollgate-red\""));
    }

    #[test]
    fn a_bad_threshold_exits_2() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out_str = dir.path().to_string_lossy().into_owned();
        let code = run(parse(&[
            "assets",
            "--out",
            &out_str,
            "--error-percent",
            "150",
        ]));
        assert_eq!(code, ExitCode::from(2));
        assert!(!dir.path().join("rollgate-alerts.yml").exists());
    }

    fn assets_error(argv: &[&str]) -> String {
        match parse(argv).command {
            TelemetryCommand::Assets(a) => assets(&a).expect_err("rejected"),
        }
    }

    #[test]
    fn threshold_errors_name_the_flag_and_its_unit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().to_string_lossy().into_owned();
        let cases = [
            (
                ["--slo-percent", "100"],
                "--slo-percent 100 is out of range: expected more than 0 and less than 100",
            ),
            (
                ["--error-percent", "200"],
                "--error-percent 200 is out of range: expected more than 0 and less than 100",
            ),
            (
                ["--traffic-dip-percent", "0"],
                "--traffic-dip-percent 0 is out of range: expected more than 0 and less than 100",
            ),
            (
                ["--p99-ms", "0"],
                "--p99-ms 0 is out of range: expected more than 0",
            ),
            (
                ["--slo-percent", "NaN"],
                "--slo-percent NaN is out of range: expected more than 0 and less than 100",
            ),
            (
                ["--for-minutes", "0"],
                "--for-minutes 0 is out of range: expected at least 1",
            ),
        ];
        for ([flag, value], want) in cases {
            let got = assets_error(&["assets", "--out", &out, flag, value]);
            assert_eq!(got, want);
        }
        assert!(!dir.path().join("rollgate-alerts.yml").exists());
    }

    #[test]
    fn an_out_path_that_is_a_file_gives_the_os_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("x.json");
        std::fs::write(&file, "{}").expect("write");
        let path = file.to_string_lossy().into_owned();
        let got = assets_error(&["assets", "--out", &path]);
        let want = format!(
            "telemetry io: create asset directory {path}: {}",
            std::io::Error::from_raw_os_error(17)
        );
        assert_eq!(got, want);
        // Below a regular file: "Not a directory".
        let below = file.join("assets").to_string_lossy().into_owned();
        let got = assets_error(&["assets", "--out", &below]);
        assert!(got.contains("Not a directory"), "{got}");
    }
}
