//! The fleet simulator: the real rollout executor (rollgate-deploy's
//! [`Executor`]) and the real canary judge (rollgate-canary, through
//! [`CanaryGate`]) run against a simulated fleet on simulated time, to
//! compare rollout strategies the way seed 000 of this project does
//! (its Table 2: all at once vs canary steps of 10 %; its Table 5:
//! manual vs metrics-gated rollouts).
//!
//! What is **modelled** (inputs, configurable in [`SimConfig`]): the
//! fleet's traffic (Poisson requests per target, a failure probability,
//! log-normal latency bucketed like a Prometheus histogram), the bad
//! version's fault, how long a deploy takes, and — for the manual arm —
//! when a person notices and how long they take to start the rollback.
//!
//! What is **measured** (by running the real code on that model): when the
//! executor deployed and restored each target, when the judge decided and
//! what it said, and from the simulated traffic, the fleet's error rate
//! and how many requests the bad version served. Nothing here measures a
//! real system; the numbers say what rollgate's executor and judge do with
//! the modelled fleet.
//!
//! Everything runs on a current-thread tokio runtime with paused time (an
//! hour of rollout takes well under a second), and the traffic is a pure
//! function of the seed, so one seed always gives the same report.
//!
//! ```
//! use rollgate::sim::{self, SimConfig};
//!
//! let mut config = SimConfig::default();
//! config.fleet = 20;
//! config.seed = 7;
//! let report = sim::run(&config)?;
//! // The canary exposed a tenth of the fleet; all at once exposed all of it.
//! assert_eq!(report.canary.targets_exposed, 2);
//! assert_eq!(report.all_at_once.targets_exposed, 20);
//! assert!(report.canary.peak_error_pct < report.all_at_once.peak_error_pct);
//! // Same seed, same report.
//! assert_eq!(report.to_string(), sim::run(&config)?.to_string());
//! # Ok::<(), rollgate::sim::SimError>(())
//! ```

mod fleet;
mod render;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rollgate_canary::{Analysis, AnalysisConfig};
use rollgate_deploy::{
    Artifact, Decision, Digest, Event, Executor, ExecutorConfig, MemoryStore, Outcome, Percent,
    PhaseDefaults, RolloutRequest, StateStore, Strategy, TargetId, Writer, error_chain,
};
use tokio::time::Instant;

use crate::canary_gate::CanaryGate;
use fleet::{Behaviour, ERRORS, LATENCY, Shared, SimDeployer, SimSource, Version, World};

/// The simulator's settings. Fields marked *modelled* describe the
/// simulated world; the others configure the real executor and judge.
/// The defaults are the seed's settings where it gives them (canary steps
/// of 10 %, errors above 1 % or p99 above 500 ms are a red flag, a 3×
/// latency regression for the manual vs gated comparison, a person who
/// notices after 35 minutes) and round numbers where it does not.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SimConfig {
    /// Seed of the traffic's random numbers.
    pub seed: u64,
    /// Number of targets (1..=100000; the executor's work per event does
    /// not grow with the fleet, so ten thousand targets deployed fifty at a
    /// time take seconds).
    pub fleet: usize,
    /// Modelled: requests per second per target (Poisson mean).
    pub rps: f64,
    /// Modelled: share of the good version's requests that fail, in percent.
    pub error_pct: f64,
    /// Modelled: median latency of the good version, milliseconds.
    pub p50_ms: f64,
    /// Modelled: shape of the log-normal latency (its log's standard deviation).
    pub latency_sigma: f64,
    /// Modelled fault of comparison A: share of the bad version's requests
    /// that fail, in percent (its latency is the good version's).
    pub bad_error_pct: f64,
    /// Modelled fault of comparison B: the bad version's latency is the
    /// good version's times this (its failures are the good version's).
    pub bad_latency_factor: f64,
    /// Modelled: how long one target's deploy (or restore) takes.
    pub deploy_time: Duration,
    /// Deploys in flight at once: the plan's concurrency (restores alike).
    pub deploy_parallel: usize,
    /// Bake time of each phase, which is also the judge's window.
    pub bake: Duration,
    /// Canary step: each phase adds this share of the fleet, in percent.
    pub step_pct: f64,
    /// The judge's alpha (false-rollback probability of one judgement).
    pub alpha: f64,
    /// The judge's tolerance: how much worse than the baseline (percent)
    /// the canary's errors and latency may be.
    pub tolerance_pct: f64,
    /// The judge's bound on the canary's error rate, in percent.
    pub max_error_pct: f64,
    /// The judge's bound on the canary's p99 latency, milliseconds.
    pub max_p99_ms: f64,
    /// Modelled (manual arm): how long after the first target runs the bad
    /// version a person notices.
    pub human_notice: Duration,
    /// Modelled (manual arm): how long after noticing the person starts
    /// the rollback.
    pub human_react: Duration,
    /// Length of the window over which the fleet's peak error rate is read.
    pub spike_window: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            fleet: 100,
            rps: 20.0,
            error_pct: 0.1,
            p50_ms: 50.0,
            latency_sigma: 0.6,
            bad_error_pct: 6.0,
            bad_latency_factor: 3.0,
            deploy_time: Duration::from_secs(10),
            deploy_parallel: 5,
            bake: Duration::from_secs(30),
            step_pct: 10.0,
            alpha: 0.01,
            tolerance_pct: 10.0,
            max_error_pct: 1.0,
            max_p99_ms: 500.0,
            human_notice: Duration::from_secs(35 * 60),
            human_react: Duration::from_secs(5 * 60),
            spike_window: Duration::from_secs(10),
        }
    }
}

/// Why the simulator could not run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SimError {
    /// A setting is out of range; `setting` is its name as a command-line
    /// flag (`fleet`, `bake`, ...).
    Invalid {
        /// The setting.
        setting: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The executor or the judge failed while simulating.
    Run(String),
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::Invalid { setting, why } => write!(f, "setting {setting}: {why}"),
            SimError::Run(why) => write!(f, "simulation failed: {why}"),
        }
    }
}

impl std::error::Error for SimError {}

fn invalid(setting: &'static str, why: impl Into<String>) -> SimError {
    SimError::Invalid {
        setting,
        why: why.into(),
    }
}

fn run_err(e: impl fmt::Display) -> SimError {
    SimError::Run(e.to_string())
}

/// Longest simulated time one arm may take, so a run stays fast.
const MAX_HORIZON: Duration = Duration::from_secs(12 * 3600);

impl SimConfig {
    /// Checks every setting; the error names the first one out of range.
    ///
    /// ```
    /// let mut c = rollgate::sim::SimConfig::default();
    /// c.fleet = 0;
    /// assert_eq!(c.validate().unwrap_err().to_string(),
    ///     "setting fleet: must be 1 to 100000 targets, not 0");
    /// ```
    pub fn validate(&self) -> Result<(), SimError> {
        if !(1..=100_000).contains(&self.fleet) {
            return Err(invalid(
                "fleet",
                format!("must be 1 to 100000 targets, not {}", self.fleet),
            ));
        }
        let range = |setting: &'static str, v: f64, lo: f64, hi: f64, open_lo: bool, unit: &str| {
            let ok = v.is_finite() && (if open_lo { v > lo } else { v >= lo }) && v <= hi;
            if ok {
                Ok(())
            } else {
                let low = if open_lo { "above" } else { "at least" };
                Err(invalid(
                    setting,
                    format!("must be {low} {lo}{unit} and at most {hi}{unit}, not {v}{unit}"),
                ))
            }
        };
        range("rps", self.rps, 0.0, 1e6, true, " requests/s")?;
        range("error-rate", self.error_pct, 0.0, 100.0, false, " %")?;
        range("p50", self.p50_ms, 0.0, 1e6, true, " ms")?;
        range("latency-sigma", self.latency_sigma, 0.0, 5.0, true, "")?;
        range("bad-errors", self.bad_error_pct, 0.0, 100.0, false, " %")?;
        range(
            "bad-latency",
            self.bad_latency_factor,
            0.0,
            1000.0,
            true,
            "×",
        )?;
        range("step", self.step_pct, 0.0, 100.0, true, " %")?;
        if !(self.alpha > 0.0 && self.alpha < 0.5) {
            return Err(invalid(
                "alpha",
                format!("must be above 0 and below 0.5, not {}", self.alpha),
            ));
        }
        range("tolerance", self.tolerance_pct, 0.0, 1000.0, false, " %")?;
        range("max-error-rate", self.max_error_pct, 0.0, 100.0, true, " %")?;
        range("max-p99", self.max_p99_ms, 0.0, 1e6, true, " ms")?;
        if self.deploy_parallel == 0 || self.deploy_parallel > 1000 {
            return Err(invalid(
                "deploy-parallel",
                format!("must be 1 to 1000, not {}", self.deploy_parallel),
            ));
        }
        let durations = [
            ("deploy-time", self.deploy_time, Duration::ZERO),
            ("bake", self.bake, Duration::from_secs(1)),
            ("human-notice", self.human_notice, Duration::ZERO),
            ("human-react", self.human_react, Duration::ZERO),
            ("spike-window", self.spike_window, Duration::from_secs(1)),
        ];
        for (setting, d, min) in durations {
            if d < min || d > Duration::from_secs(3600 * 6) {
                return Err(invalid(
                    setting,
                    format!(
                        "must be {} to 6h, not {}",
                        humantime::format_duration(min),
                        humantime::format_duration(d)
                    ),
                ));
            }
            if d.subsec_nanos() != 0 {
                return Err(invalid(setting, "must be whole seconds"));
            }
        }
        Percent::new(self.step_pct).map_err(|e| invalid("step", error_chain(&e)))?;
        // The slowest arm: the whole fleet one deploy wave after another,
        // every phase baking, the person, then the restore.
        let waves = self.fleet.div_ceil(self.deploy_parallel) as u32;
        let phases = (100.0 / self.step_pct).ceil() as u32 + 1;
        let terms = [
            ("deploy-time", self.deploy_time * waves * 2),
            ("bake", self.bake * (phases * 4 + 1)),
            ("human-notice", self.human_notice),
            ("human-react", self.human_react),
        ];
        let horizon: Duration = terms.iter().map(|t| t.1).sum();
        if horizon > MAX_HORIZON {
            // Name the setting that contributes most.
            let (setting, _) = terms
                .iter()
                .fold(terms[0], |a, b| if b.1 > a.1 { *b } else { a });
            return Err(invalid(
                setting,
                format!(
                    "with these settings one rollout could last up to {} of simulated time (at most {}): fewer targets or more --deploy-parallel, a larger --step, or shorter times",
                    humantime::format_duration(horizon),
                    humantime::format_duration(MAX_HORIZON)
                ),
            ));
        }
        Ok(())
    }

    /// The analysis the gated arms judge with, as an `ANALYSIS.toml`:
    /// errors (critical) and latency, each bounded absolutely (the seed's
    /// 1 % and 500 ms by default) and relative to the baseline (the
    /// tolerance).
    ///
    /// ```
    /// let toml = rollgate::sim::SimConfig::default().analysis_toml();
    /// assert!(toml.contains("ratio_max = 0.01"));
    /// assert!(rollgate::canary::AnalysisConfig::from_toml_str(&toml).is_ok());
    /// ```
    pub fn analysis_toml(&self) -> String {
        format!(
            r#"alpha = {alpha}

[[metrics]]
name = "{ERRORS}"
kind = "count"
bad = "increase"
critical = true
relative = {{ max_increase_pct = {tol} }}
threshold = {{ ratio_max = {ratio} }}

[[metrics]]
name = "{LATENCY}"
kind = "latency"
bad = "increase"
relative = {{ max_increase_pct = {tol} }}
threshold = {{ p99_max = {p99} }}
"#,
            alpha = self.alpha,
            tol = self.tolerance_pct,
            ratio = self.max_error_pct / 100.0,
            p99 = self.max_p99_ms,
        )
    }

    fn buckets(&self) -> Vec<f64> {
        let mut le = vec![
            5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 750.0,
            1000.0, 1500.0, 2500.0, 5000.0, 10000.0,
        ];
        // The p99 bound is a bucket bound, so "slower than it" is exact.
        if !le.contains(&self.max_p99_ms) {
            le.push(self.max_p99_ms);
            le.sort_by(f64::total_cmp);
        }
        le.push(f64::INFINITY);
        le
    }
}

/// How an arm rolls out and who decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    AllAtOnce,
    Canary,
}

#[derive(Debug, Clone, Copy)]
struct ArmSpec {
    shape: Shape,
    gated: bool,
    error_p: f64,
    latency_factor: f64,
}

/// Who decided to roll back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Detector {
    /// The canary judge, through the executor's gate (measured).
    Gate,
    /// The modelled person ([`SimConfig::human_notice`]).
    Human,
    /// Nobody: the rollout ended without a rollback.
    Nobody,
}

/// What one rollout did in the simulation. Times are simulated, measured
/// on tokio's paused clock from the run of the real executor and judge.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ArmResult {
    /// How the arm rolled out, e.g. `canary 10 %, gated`.
    pub name: String,
    /// The rollout's outcome (`rolled back`, `succeeded`, `aborted`, `held`...).
    pub outcome: String,
    /// Phases of the plan, and the phase (1-based) the rollout ended in.
    pub phases: (usize, usize),
    /// Who decided to roll back.
    pub detector: Detector,
    /// From the first target on the bad version to the rollback decision.
    pub time_to_detect: Option<Duration>,
    /// From the rollback decision to every target back on the old version.
    pub rollback_duration: Option<Duration>,
    /// From the first target on the bad version to every target back on the old one.
    pub time_to_restore: Option<Duration>,
    /// The whole rollout, from its submission to its end (and the manual
    /// arm's rollback, when there is one).
    pub total: Duration,
    /// Targets that ever ran the new version.
    pub targets_exposed: usize,
    /// The fleet's highest error rate over any [`SimConfig::spike_window`], percent.
    pub peak_error_pct: f64,
    /// Requests the new version served.
    pub new_requests: u64,
    /// Of those, how many failed.
    pub new_failed: u64,
    /// Of those, how many took longer than the p99 bound.
    pub new_slow: u64,
    /// The judge's reasons at its last answer (empty without a gate).
    pub judge: Vec<String>,
    /// How many times the judge was asked.
    pub asks: usize,
}

/// The seed's figures (seed 000: Table 2, and the metrics-gated table),
/// printed beside ours. The seed does not say how they were obtained.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SeedFigures {
    /// Error rate spike, all at once / canary 10 %, percent.
    pub spike_pct: (f64, f64),
    /// Time to detect the fault, all at once / canary 10 %.
    pub detect: (Duration, Duration),
    /// Rollback duration, all at once / canary 10 %.
    pub rollback: (Duration, Duration),
    /// Time to detect, no gate / metrics-gated.
    pub detect_manual: (Duration, Duration),
    /// Time to roll back, no gate / metrics-gated.
    pub rollback_manual: (Duration, Duration),
    /// User tickets raised, no gate / metrics-gated.
    pub tickets: (u32, u32),
}

/// The seed's figures.
pub const SEED: SeedFigures = SeedFigures {
    spike_pct: (6.3, 1.2),
    detect: (Duration::from_secs(240), Duration::from_secs(48)),
    rollback: (Duration::from_secs(120), Duration::from_secs(30)),
    detect_manual: (Duration::from_secs(35 * 60), Duration::from_secs(10 * 60)),
    rollback_manual: (Duration::from_secs(45 * 60), Duration::from_secs(12 * 60)),
    tickets: (17, 0),
};

/// Everything the simulator found, for one configuration.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SimReport {
    /// The settings it ran with.
    pub config: SimConfig,
    /// Comparison A: the bad version (errors) all at once, gated.
    pub all_at_once: ArmResult,
    /// Comparison A: the bad version (errors) in canary steps, gated.
    pub canary: ArmResult,
    /// Comparison B: the bad version (latency) in canary steps, no gate;
    /// the modelled person rolls back.
    pub manual: ArmResult,
    /// Comparison B: the bad version (latency) in canary steps, gated.
    pub gated: ArmResult,
    /// Control: a good version in canary steps, gated.
    pub control: ArmResult,
}

/// Runs every arm of the comparison on its own paused-time runtime (on a
/// thread of its own, so it may be called from anywhere, also from inside
/// a tokio runtime).
pub fn run(config: &SimConfig) -> Result<SimReport, SimError> {
    config.validate()?;
    let config = config.clone();
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .map_err(run_err)?;
            rt.block_on(run_all(&config))
        })
        .join()
        .map_err(|_| SimError::Run("the simulation thread panicked".into()))?
    })
}

async fn run_all(c: &SimConfig) -> Result<SimReport, SimError> {
    let good_p = c.error_pct / 100.0;
    let errors = ArmSpec {
        shape: Shape::AllAtOnce,
        gated: true,
        error_p: c.bad_error_pct / 100.0,
        latency_factor: 1.0,
    };
    let slow = ArmSpec {
        shape: Shape::Canary,
        gated: true,
        error_p: good_p,
        latency_factor: c.bad_latency_factor,
    };
    Ok(SimReport {
        all_at_once: run_arm(c, errors).await?,
        canary: run_arm(
            c,
            ArmSpec {
                shape: Shape::Canary,
                ..errors
            },
        )
        .await?,
        manual: run_arm(
            c,
            ArmSpec {
                gated: false,
                ..slow
            },
        )
        .await?,
        gated: run_arm(c, slow).await?,
        control: run_arm(
            c,
            ArmSpec {
                latency_factor: 1.0,
                ..slow
            },
        )
        .await?,
        config: c.clone(),
    })
}

/// What the executor's observer saw, with the simulated time.
#[derive(Default)]
struct Seen {
    decisions: Vec<(f64, Decision)>,
    rollback_started: Option<f64>,
}

async fn run_arm(c: &SimConfig, spec: ArmSpec) -> Result<ArmResult, SimError> {
    let origin = Instant::now();
    let targets: Vec<TargetId> = (1..=c.fleet)
        .map(|i| format!("target-{i:05}").parse())
        .collect::<Result<_, _>>()
        .map_err(run_err)?;
    let le = c.buckets();
    let good = Behaviour::new(c.error_pct / 100.0, c.p50_ms, c.latency_sigma, &le);
    let bad = Behaviour::new(
        spec.error_p,
        c.p50_ms * spec.latency_factor,
        c.latency_sigma,
        &le,
    );
    let shared = Shared {
        world: Arc::new(Mutex::new(World::new(
            c.seed,
            c.rps,
            le,
            good,
            bad,
            targets.clone(),
        ))),
        origin,
    };
    let v1 = Artifact::new("v1", Digest::of_bytes(b"rollgate sim: v1"));
    let v2 = Artifact::new("v2", Digest::of_bytes(b"rollgate sim: v2"));
    let (onset_tx, mut onset_rx) = tokio::sync::watch::channel(None);
    let deployer = Arc::new(SimDeployer {
        shared: shared.clone(),
        deploy_time: c.deploy_time,
        old: v1.clone(),
        new: v2.clone(),
        onset: onset_tx,
    });
    let store = Arc::new(MemoryStore::new());
    for a in [&v1, &v2] {
        store.register_artifact(a).await.map_err(run_err)?;
    }

    // The fleet serves v1 for one bake first: the baseline of an
    // all-at-once judgement.
    tokio::time::sleep(c.bake).await;
    let start = shared.now();
    shared.lock().rollout_start = start;

    let plan_defaults = PhaseDefaults::default()
        .with_bake(c.bake)
        .with_concurrency(c.deploy_parallel)
        .with_gate(spec.gated);
    let strategy = match spec.shape {
        Shape::AllAtOnce => Strategy::AllAtOnce,
        Shape::Canary => Strategy::Linear {
            step: Percent::new(c.step_pct).map_err(run_err)?,
        },
    };
    let plan = strategy
        .compile(&targets, &plan_defaults)
        .map_err(run_err)?;
    let phases = plan.phases.len();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let observer = {
        let (seen, shared) = (seen.clone(), shared.clone());
        Arc::new(
            move |_: &rollgate_deploy::Rollout, rec: &rollgate_deploy::EventRecord| {
                let now = shared.now();
                let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                match &rec.event {
                    Event::GateDecided { decision, .. } => {
                        s.decisions.push((now, decision.clone()));
                    }
                    Event::RollbackStarted { .. } => {
                        s.rollback_started.get_or_insert(now);
                    }
                    _ => {}
                }
            },
        )
    };
    let config = ExecutorConfig::default().with_owner("rollgate-sim");
    let mut exec = Executor::new(store.clone(), deployer.clone())
        .with_config(config.clone())
        .with_observer(observer);
    if spec.gated {
        let analysis = AnalysisConfig::from_toml_str(&c.analysis_toml())
            .and_then(Analysis::new)
            .map_err(|e| run_err(error_chain(&e)))?;
        let clock = {
            let shared = shared.clone();
            Arc::new(move || shared.now())
        };
        let gate = CanaryGate::new(
            Arc::new(SimSource {
                shared: shared.clone(),
            }),
            analysis,
            c.bake,
            clock,
        );
        exec = exec.with_gate(Arc::new(gate));
    }
    let req = RolloutRequest::new("sim", v2.clone(), plan, "rollgate-sim");
    let id = exec.create(&req).await.map_err(run_err)?.id;

    let mut human_noticed = None;
    let mut operator_rollback = None;
    // The operator notices a fault; a version no worse than the old one
    // gives them nothing to notice.
    let fault = spec.error_p > c.error_pct / 100.0 || spec.latency_factor > 1.0;
    let report = if spec.gated || !fault {
        exec.run(id).await.map_err(run_err)?
    } else {
        // The modelled person: notices `human_notice` after the first bad
        // target, starts the rollback `human_react` later: aborts the
        // rollout if it still runs, else rolls the fleet back to v1 the way
        // `rollgate rollback` does (a rollout of v1, all at once).
        let mut handle = tokio::spawn({
            let exec = exec.clone();
            async move { exec.run(id).await }
        });
        let first = tokio::select! {
            o = onset_rx.wait_for(Option::is_some) => Ok(o.ok().and_then(|o| *o)),
            r = &mut handle => Err(r),
        };
        match first {
            Err(r) => r.map_err(run_err)?.map_err(run_err)?,
            Ok(None) => handle.await.map_err(run_err)?.map_err(run_err)?,
            Ok(Some(at)) => {
                let noticed = at + c.human_notice.as_secs_f64();
                sleep_until_sim(&shared, noticed).await;
                human_noticed = Some(shared.now());
                tokio::time::sleep(c.human_react).await;
                if handle.is_finished() {
                    let report = handle.await.map_err(run_err)?.map_err(run_err)?;
                    let back = Strategy::AllAtOnce
                        .compile(
                            &targets,
                            &PhaseDefaults::default()
                                .with_concurrency(c.deploy_parallel)
                                .with_gate(false),
                        )
                        .map_err(run_err)?;
                    let req = RolloutRequest::new("sim", v1.clone(), back, "operator (modelled)");
                    let back = Executor::new(store.clone(), deployer.clone())
                        .with_config(config)
                        .submit(req)
                        .await
                        .map_err(run_err)?;
                    operator_rollback = Some(match back.outcome {
                        Some(o) => describe(o),
                        None => "unfinished",
                    });
                    report
                } else {
                    store
                        .append(
                            id,
                            Writer::Person("operator (modelled)"),
                            &[Event::AbortRequested],
                        )
                        .await
                        .map_err(run_err)?;
                    handle.await.map_err(run_err)?.map_err(run_err)?
                }
            }
        }
    };
    let end = shared.now();
    let onset = *onset_rx.borrow();

    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    let rollback_decided = seen
        .decisions
        .iter()
        .find(|(_, d)| matches!(d, Decision::Rollback(_)))
        .map(|(t, _)| *t);
    let (detector, decided) = match (rollback_decided, human_noticed) {
        (Some(t), _) => (Detector::Gate, Some(t)),
        (None, Some(t)) => (Detector::Human, Some(t)),
        (None, None) => (Detector::Nobody, None),
    };
    let mut w = shared.lock();
    w.generate_until(end.ceil() + 1.0);
    // Every target back on v1: the last switch, when the fleet ends on v1.
    let mut exposed = vec![false; c.fleet];
    let mut last_back = None;
    let mut on_new = 0usize;
    for &(at, i, to) in &w.switches {
        match to {
            Version::New => {
                exposed[i] = true;
                on_new += 1;
            }
            Version::Old => {
                on_new -= 1;
                if on_new == 0 {
                    last_back = Some(at);
                }
            }
        }
    }
    let restored = if on_new == 0 { last_back } else { None };
    let dur = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b >= a => Some(Duration::from_secs_f64(b - a)),
        _ => None,
    };
    let window = c.spike_window.as_secs() as usize;
    let mut peak: f64 = 0.0;
    let per_second: Vec<(u64, u64)> = w
        .seconds
        .iter()
        .map(|s| (s[0].requests + s[1].requests, s[0].errors + s[1].errors))
        .collect();
    for win in per_second.windows(window.min(per_second.len()).max(1)) {
        let (n, e) = win.iter().fold((0, 0), |(n, e), (dn, de)| (n + dn, e + de));
        if n > 0 {
            peak = peak.max(100.0 * e as f64 / n as f64);
        }
    }
    let new_all = w.sum(Version::New, 0.0, w.seconds.len() as f64);
    let slow_from =
        w.le.iter()
            .position(|&b| b >= c.max_p99_ms)
            .map_or(w.le.len(), |i| i + 1);
    let slow: u64 = new_all.buckets.iter().skip(slow_from).sum();
    drop(w);

    let phase_reached = (report.rollout.phase + 1).min(phases);
    let outcome = match report.outcome {
        Some(o) => describe(o).to_string(),
        None if report.is_held() => "held for a person".into(),
        None => "unfinished".into(),
    };
    let outcome = match operator_rollback {
        Some(back) => format!("{outcome}; the operator's rollout of v1 {back}"),
        None => outcome,
    };
    let name = match (spec.shape, spec.gated) {
        (Shape::AllAtOnce, true) => "all at once, gated".to_string(),
        (Shape::AllAtOnce, false) => "all at once, no gate".to_string(),
        (Shape::Canary, true) => format!("canary {} %, gated", c.step_pct),
        (Shape::Canary, false) => format!("canary {} %, no gate", c.step_pct),
    };
    Ok(ArmResult {
        name,
        outcome,
        phases: (phases, phase_reached),
        detector,
        time_to_detect: dur(onset, decided),
        rollback_duration: dur(decided, restored),
        time_to_restore: dur(onset, restored),
        total: Duration::from_secs_f64(end - start),
        targets_exposed: exposed.iter().filter(|e| **e).count(),
        peak_error_pct: peak,
        new_requests: new_all.requests,
        new_failed: new_all.errors,
        new_slow: slow,
        judge: seen
            .decisions
            .last()
            .map(|(_, d)| {
                std::iter::once(format!("{}:", d.kind()))
                    .chain(d.reasons().iter().cloned())
                    .collect()
            })
            .unwrap_or_default(),
        asks: seen.decisions.len(),
    })
}

async fn sleep_until_sim(shared: &Shared, at: f64) {
    let now = shared.now();
    if at > now {
        tokio::time::sleep(Duration::from_secs_f64(at - now)).await;
    }
}

fn describe(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::RolledBack => "rolled back",
        Outcome::Aborted => "aborted",
        Outcome::Refused => "refused",
        Outcome::RollbackFailed => "rollback failed",
    }
}
