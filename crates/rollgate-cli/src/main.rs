//! The `rollgate` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod analyze;
mod drift;
mod notify;
mod obs;
mod remote;
mod report;
mod rollout;
mod serve;
mod sim;
mod telemetry;

/// Ship software safely: rollouts, rollback, canary analysis, config drift.
#[derive(Debug, Parser)]
#[command(name = "rollgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run, list, watch and control rollouts (exit 0 success, 1 rolled back/aborted/rollback failed, 2 bad input or refused, 3 held, 4 store busy, 130/143 stopped by SIGINT/SIGTERM).
    Rollout(Box<rollout::RolloutArgs>),
    /// Return a service's targets to the artifact they ran before its last successful rollout, or `--to` a version it ran.
    Rollback(Box<rollout::RollbackArgs>),
    /// Run a long-running controller with an HTTP JSON API; several on one database share the rollouts (exit 0 stopped by a signal, 2 bad input, 4 store unusable).
    Serve(Box<serve::ServeArgs>),
    /// Write a rollout's self-contained HTML report: phases, verdicts, charts, reasons, audit (exit 0 written, 2 bad input or unwritable --out, 4 store missing/busy/unusable).
    Report(Box<report::ReportArgs>),
    /// Print the version and exit.
    Version,
    /// Judge a canary against its baseline (exit 0 promote, 1 rollback, 2 bad input, 3 inconclusive).
    Analyze(Box<analyze::AnalyzeArgs>),
    /// Compare desired configuration with live (exit 0 no drift, 1 drift, 2 bad input).
    Drift(Box<drift::DriftArgs>),
    /// Simulate a fleet: the real executor and canary judge on simulated time, beside the seed's figures (exit 0 printed, 1 simulation failed, 2 bad flags).
    Sim(Box<sim::SimArgs>),
    /// Generate telemetry assets: Grafana dashboard, Prometheus alert rules (exit 0 written, 2 bad input or I/O error).
    Telemetry(telemetry::TelemetryArgs),
}

// mimalloc rather than glibc malloc: the differ's many small allocations (key
// tables, paths, report entries) cost less (BENCHMARKS.md, rollgate-drift).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = run(cli);
    // Flushes logs and pending spans, stops the metrics listener.
    obs::shutdown();
    code
}

fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Version => {
            println!("rollgate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Rollout(args) => rollout::run(*args),
        Command::Rollback(args) => rollout::run_rollback(*args),
        Command::Serve(args) => serve::run(*args),
        Command::Report(args) => report::run(*args),
        Command::Analyze(args) => analyze::run(*args),
        Command::Drift(args) => drift::run(*args),
        Command::Telemetry(args) => telemetry::run(args),
        Command::Sim(args) => sim::run(*args),
    }
}
