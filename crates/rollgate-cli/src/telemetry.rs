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

/// Runs `rollgate telemetry ...`.
pub fn run(args: TelemetryArgs) -> ExitCode {
    match args.command {
        TelemetryCommand::Assets(a) => {
            let mut opts = AssetOptions::default();
            opts.p99_seconds = a.p99_ms / 1000.0;
            opts.error_ratio = a.error_percent / 100.0;
            opts.slo_target = a.slo_percent / 100.0;
            opts.traffic_dip_fraction = a.traffic_dip_percent / 100.0;
            opts.for_minutes = a.for_minutes;
            match opts.write(&a.out) {
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
            }
        }
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
}
