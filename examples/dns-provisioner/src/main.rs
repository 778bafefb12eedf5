//! `dns-provisioner`: the service and the fleet helper rollgate's command
//! deployer calls (see the crate README).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use dns_provisioner::{Faults, Store, app, fleet};

/// A DNS record provisioner (axum + SQLite) instrumented with
/// rollgate-telemetry, and its local-fleet helper.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the records API, /health and /metrics until SIGTERM or SIGINT.
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8053")]
        addr: SocketAddr,
        /// The version label (also in every metric and log line).
        #[arg(long)]
        version: String,
        /// Faults: `auto` (v2 is the bad build), `none` or `bad`.
        #[arg(long, default_value = "auto")]
        faults: String,
        /// The SQLite database (created when missing).
        #[arg(long)]
        db: PathBuf,
    },
    /// Replace target NAME's process with VERSION on ADDR and wait until it serves.
    Deploy {
        /// Run directory (pid, version, log and database files).
        #[arg(long)]
        dir: PathBuf,
        /// Target name.
        #[arg(long)]
        name: String,
        /// The target's listen address.
        #[arg(long)]
        addr: SocketAddr,
        /// Version to run.
        #[arg(long)]
        version: String,
    },
    /// Exit 0 when ADDR's /health answers (with VERSION, when given).
    Ready {
        /// The target's address.
        #[arg(long)]
        addr: SocketAddr,
        /// The version it must serve.
        #[arg(long)]
        version: Option<String>,
    },
    /// Stop every process recorded in DIR.
    Stop {
        /// Run directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// GET PATH from ADDR and print the body; exit 1 unless it answers 200.
    Get {
        /// The address.
        addr: SocketAddr,
        /// The path (`/health`, `/metrics`).
        path: String,
    },
    /// Print N free loopback addresses, one per line.
    FreeAddrs {
        /// How many.
        n: usize,
    },
}

fn serve(
    addr: SocketAddr,
    version: &str,
    faults: &str,
    db: &std::path::Path,
) -> anyhow::Result<()> {
    let faults = Faults::parse(faults, version)
        .with_context(|| format!("--faults {faults:?}: expected auto, none or bad"))?;
    let guard = dns_provisioner::service::telemetry(version)
        .environment("demo")
        .install()?;
    let metrics = guard.metrics().clone();
    let store = Store::open(db).with_context(|| format!("open {}", db.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("bind {addr}"))?;
        tracing::info!(%addr, version, ?faults, "serving");
        let shutdown = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("stopping");
        };
        let server = axum::serve(listener, app(store, version, faults, metrics))
            .with_graceful_shutdown(shutdown);
        server.await.context("server")
    })?;
    // Connections still open after the signal are not waited for long.
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(guard);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Serve {
            addr,
            version,
            faults,
            db,
        } => serve(addr, &version, &faults, &db),
        Cmd::Deploy {
            dir,
            name,
            addr,
            version,
        } => std::env::current_exe()
            .context("the path of this binary")
            .and_then(|binary| {
                fleet::deploy(&fleet::DeploySpec {
                    binary,
                    dir,
                    name,
                    addr,
                    version,
                })
            }),
        Cmd::Ready { addr, version } => match (fleet::health(addr), version) {
            (Some(v), Some(want)) if v != want => {
                eprintln!("{addr} serves {v}, not {want}");
                return ExitCode::FAILURE;
            }
            (Some(_), _) => Ok(()),
            (None, _) => {
                eprintln!("{addr}: /health does not answer");
                return ExitCode::FAILURE;
            }
        },
        Cmd::Stop { dir } => fleet::stop_all(&dir),
        Cmd::Get { addr, path } => match fleet::get(addr, &path, Duration::from_secs(5)) {
            Ok((200, body)) => {
                print!("{body}");
                Ok(())
            }
            Ok((code, _)) => {
                eprintln!("GET http://{addr}{path}: status {code}");
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("GET http://{addr}{path}: {e:#}");
                return ExitCode::FAILURE;
            }
        },
        Cmd::FreeAddrs { n } => fleet::free_addrs(n).map(|addrs| {
            for a in addrs {
                println!("{a}");
            }
        }),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dns-provisioner: {e:#}");
            ExitCode::from(2)
        }
    }
}
