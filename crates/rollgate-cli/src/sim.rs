//! `rollgate sim`: the fleet simulator (`rollgate::sim`) from the command line.

use std::fmt;
use std::io::Write as _;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;
use rollgate::sim::{self, SimConfig, SimError};

/// A percentage as typed: `10`, `10%`, `0.5 %`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Pct(f64);

impl FromStr for Pct {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let t = t.strip_suffix('%').unwrap_or(t).trim();
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Pct(v)),
            _ => Err(format!("{s:?} is not a percentage (e.g. 10 or 10%)")),
        }
    }
}

impl fmt::Display for Pct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// A factor as typed: `3`, `3x`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Factor(f64);

impl FromStr for Factor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let t = t.strip_suffix(['x', '×']).unwrap_or(t).trim();
        match t.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Factor(v)),
            _ => Err(format!("{s:?} is not a factor (e.g. 3 or 3x)")),
        }
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x", self.0)
    }
}

fn d() -> SimConfig {
    SimConfig::default()
}

fn hd(x: Duration) -> humantime::Duration {
    x.into()
}

/// Runs the real executor and canary judge against a simulated fleet on
/// simulated time and prints seed 000's comparisons (all at once vs canary
/// steps, manual vs metrics-gated) beside the seed's figures, as Markdown.
/// Traffic, the fault, deploy speed and the operator are modelled (the
/// flags below); what the executor and judge did is measured. Deterministic
/// for a seed. Exit 0 printed, 1 the simulation failed, 2 bad flags.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Seed of the simulated traffic.
    #[arg(long, default_value_t = d().seed)]
    seed: u64,
    /// Number of targets in the fleet (1 to 100000).
    #[arg(long, default_value_t = d().fleet)]
    fleet: usize,
    /// Modelled: requests per second per target (Poisson mean).
    #[arg(long, default_value_t = d().rps)]
    rps: f64,
    /// Modelled: share of the good version's requests that fail.
    #[arg(long, value_name = "PERCENT", default_value_t = Pct(d().error_pct))]
    error_rate: Pct,
    /// Modelled: the good version's median latency.
    #[arg(long, value_name = "DURATION", default_value_t = hd(Duration::from_secs_f64(d().p50_ms / 1000.0)))]
    p50: humantime::Duration,
    /// Modelled: shape (log standard deviation) of the log-normal latency.
    #[arg(long, default_value_t = d().latency_sigma)]
    latency_sigma: f64,
    /// Modelled fault of comparison A: share of the bad version's requests that fail.
    #[arg(long, value_name = "PERCENT", default_value_t = Pct(d().bad_error_pct))]
    bad_errors: Pct,
    /// Modelled fault of comparison B: the bad version's latency factor.
    #[arg(long, value_name = "FACTOR", default_value_t = Factor(d().bad_latency_factor))]
    bad_latency: Factor,
    /// Modelled: how long one target's deploy or restore takes.
    #[arg(long, value_name = "DURATION", default_value_t = hd(d().deploy_time))]
    deploy_time: humantime::Duration,
    /// Deploys (and restores) in flight at once: the plan's concurrency.
    #[arg(long, default_value_t = d().deploy_parallel)]
    deploy_parallel: usize,
    /// Bake time of each phase, also the judge's window (whole seconds).
    #[arg(long, value_name = "DURATION", default_value_t = hd(d().bake))]
    bake: humantime::Duration,
    /// Canary step: each phase adds this share of the fleet.
    #[arg(long, value_name = "PERCENT", default_value_t = Pct(d().step_pct))]
    step: Pct,
    /// The judge's alpha (false-rollback probability of one judgement).
    #[arg(long, default_value_t = d().alpha)]
    alpha: f64,
    /// The judge's tolerance: how much worse than the baseline errors and latency may be.
    #[arg(long, value_name = "PERCENT", default_value_t = Pct(d().tolerance_pct))]
    tolerance: Pct,
    /// The judge's bound on the canary's error rate.
    #[arg(long, value_name = "PERCENT", default_value_t = Pct(d().max_error_pct))]
    max_error_rate: Pct,
    /// The judge's bound on the canary's p99 latency.
    #[arg(long, value_name = "DURATION", default_value_t = hd(Duration::from_secs_f64(d().max_p99_ms / 1000.0)))]
    max_p99: humantime::Duration,
    /// Modelled (manual arm): how long after the first bad target the operator notices.
    #[arg(long, value_name = "DURATION", default_value_t = hd(d().human_notice))]
    human_notice: humantime::Duration,
    /// Modelled (manual arm): how long after noticing the operator starts the rollback.
    #[arg(long, value_name = "DURATION", default_value_t = hd(d().human_react))]
    human_react: humantime::Duration,
    /// Window over which the fleet's peak error rate is read.
    #[arg(long, value_name = "DURATION", default_value_t = hd(d().spike_window))]
    spike_window: humantime::Duration,
}

impl SimArgs {
    fn config(&self) -> SimConfig {
        let mut c = SimConfig::default();
        c.seed = self.seed;
        c.fleet = self.fleet;
        c.rps = self.rps;
        c.error_pct = self.error_rate.0;
        c.p50_ms = self.p50.as_nanos() as f64 / 1e6;
        c.latency_sigma = self.latency_sigma;
        c.bad_error_pct = self.bad_errors.0;
        c.bad_latency_factor = self.bad_latency.0;
        c.deploy_time = *self.deploy_time;
        c.deploy_parallel = self.deploy_parallel;
        c.bake = *self.bake;
        c.step_pct = self.step.0;
        c.alpha = self.alpha;
        c.tolerance_pct = self.tolerance.0;
        c.max_error_pct = self.max_error_rate.0;
        c.max_p99_ms = self.max_p99.as_nanos() as f64 / 1e6;
        c.human_notice = *self.human_notice;
        c.human_react = *self.human_react;
        c.spike_window = *self.spike_window;
        c
    }
}

/// Runs `rollgate sim`.
pub fn run(args: SimArgs) -> ExitCode {
    match sim::run(&args.config()) {
        Ok(report) => {
            // A closed pipe (`rollgate sim | head`) is not an error.
            let _ = write!(std::io::stdout().lock(), "{report}");
            ExitCode::SUCCESS
        }
        Err(SimError::Invalid { setting, why }) => {
            eprintln!("rollgate sim: --{setting}: {why}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("rollgate sim: {e}");
            ExitCode::from(1)
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
        args: SimArgs,
    }

    #[test]
    fn flag_defaults_are_the_library_defaults() {
        let w = Wrapper::try_parse_from(["sim"]).expect("parses");
        assert_eq!(w.args.config(), SimConfig::default());
    }

    #[test]
    fn percentages_and_factors_parse_with_or_without_units() {
        assert_eq!("10%".parse::<Pct>(), Ok(Pct(10.0)));
        assert_eq!(" 0.5 % ".parse::<Pct>(), Ok(Pct(0.5)));
        assert!("ten".parse::<Pct>().is_err());
        assert!("NaN".parse::<Pct>().is_err());
        assert_eq!("3x".parse::<Factor>(), Ok(Factor(3.0)));
        assert!("x".parse::<Factor>().is_err());
    }
}
