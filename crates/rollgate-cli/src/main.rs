//! The `rollgate` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Ship software safely: rollouts, rollback, canary analysis, config drift.
#[derive(Debug, Parser)]
#[command(name = "rollgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the version and exit.
    Version,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("rollgate {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}
