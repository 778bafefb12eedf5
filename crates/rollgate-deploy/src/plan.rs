//! Strategies and the one `Plan` model they compile to.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Percent, TargetId};

/// How to move a set of targets onto a new artifact. Every strategy compiles
/// to a [`Plan`]; one executor runs them all.
///
/// ```
/// use rollgate_deploy::{Strategy, Percent, TargetId};
/// let targets: Vec<TargetId> = (1..=10).map(|i| format!("web-{i}").parse().unwrap()).collect();
/// let plan = Strategy::Canary { steps: vec![Percent::new(10.0)?, Percent::new(50.0)?, Percent::FULL] }
///     .compile(&targets, &Default::default())?;
/// let sizes: Vec<usize> = plan.phases.iter().map(|p| p.targets.len()).collect();
/// assert_eq!(sizes, [1, 4, 5]);
/// # Ok::<(), rollgate_deploy::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Strategy {
    /// Every target in one phase.
    AllAtOnce,
    /// Batches of at most `max_unavailable` targets, one batch per phase.
    Rolling {
        /// Targets that may be out of service at once (the batch size).
        max_unavailable: usize,
    },
    /// Cumulative percentages of targets, e.g. 1, 10, 50, 100.
    Canary {
        /// Strictly increasing; a final 100 % is added when missing.
        steps: Vec<Percent>,
    },
    /// `step`, `2 × step`, ... up to 100 %.
    Linear {
        /// The increment.
        step: Percent,
    },
    /// `start`, `start × factor`, ... up to 100 %.
    Exponential {
        /// The first share.
        start: Percent,
        /// The growth factor, above 1.
        factor: f64,
    },
    /// Deploy to the idle (green) set, gate it, then switch traffic to it.
    BlueGreen {
        /// The targets that serve now; they keep the old artifact until the switch.
        blue: Vec<TargetId>,
        /// The idle targets that get the new artifact.
        green: Vec<TargetId>,
    },
    /// Ordered groups of targets (rings, zones, tiers), one group per phase.
    Rings {
        /// The rings, in order.
        rings: Vec<Ring>,
    },
}

/// One ring (or zone) of targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    /// The ring's name, e.g. `canary` or `eu-west-1`.
    pub name: String,
    /// Its targets.
    pub targets: Vec<TargetId>,
}

/// Settings every phase of a compiled plan shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PhaseDefaults {
    /// How long to watch a phase before asking the gate.
    #[serde(with = "humantime_serde")]
    pub bake: Duration,
    /// Whether the gate is asked at the end of each phase.
    #[serde(default, alias = "gated")]
    pub gate: GateUse,
    /// Failed targets tolerated per phase before rolling back.
    pub max_failed: usize,
    /// Deploys in flight at once within a phase (0: all of the phase).
    pub concurrency: usize,
}

impl Default for PhaseDefaults {
    fn default() -> Self {
        Self {
            bake: Duration::ZERO,
            gate: GateUse::IfAttached,
            max_failed: 0,
            concurrency: 0,
        }
    }
}

impl PhaseDefaults {
    /// Defaults with this bake time.
    pub fn with_bake(mut self, bake: Duration) -> Self {
        self.bake = bake;
        self
    }
    /// Defaults with the gate required after each phase (`true`: running
    /// the plan without a gate is an error) or explicitly skipped (`false`:
    /// attaching a gate to a plan that never asks it is an error). Without
    /// either, a phase asks the gate whenever one is attached.
    pub fn with_gate(mut self, gated: bool) -> Self {
        self.gate = if gated {
            GateUse::Required
        } else {
            GateUse::Skip
        };
        self
    }
    /// Defaults with this use of the gate.
    pub fn with_gate_use(mut self, gate: GateUse) -> Self {
        self.gate = gate;
        self
    }
    /// Defaults with this failure tolerance per phase.
    pub fn with_max_failed(mut self, n: usize) -> Self {
        self.max_failed = n;
        self
    }
    /// Defaults with this concurrency (0: unbounded within a phase).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
}

/// Whether a phase asks the gate once it has baked.
///
/// An executor with a gate asks it after every phase unless the phase opts
/// out with [`GateUse::Skip`]; a phase that [`GateUse::Required`]s a gate
/// makes running without one an error, and so does attaching a gate to a
/// plan whose every phase skips it. A gate is never silently not asked.
///
/// ```
/// use rollgate_deploy::{GateUse, PhaseDefaults};
/// assert_eq!(PhaseDefaults::default().gate, GateUse::IfAttached);
/// assert!(GateUse::IfAttached.asks(true) && !GateUse::IfAttached.asks(false));
/// assert!(!GateUse::Skip.asks(true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateUse {
    /// Asked whenever the executor has a gate (the default).
    #[default]
    IfAttached,
    /// Always asked: running the plan without a gate is an error.
    Required,
    /// Never asked: the phase opts out explicitly.
    Skip,
}

impl GateUse {
    /// Whether the gate is asked, given whether one is attached.
    pub fn asks(self, attached: bool) -> bool {
        match self {
            GateUse::IfAttached => attached,
            GateUse::Required => true,
            GateUse::Skip => false,
        }
    }
}

impl<'de> Deserialize<'de> for GateUse {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Requests stored before `GateUse` say `"gated": true | false`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Gated(bool),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Gated(true) => Ok(GateUse::Required),
            Raw::Gated(false) => Ok(GateUse::IfAttached),
            Raw::Name(n) => match n.as_str() {
                "if_attached" => Ok(GateUse::IfAttached),
                "required" => Ok(GateUse::Required),
                "skip" => Ok(GateUse::Skip),
                other => Err(serde::de::Error::custom(format!(
                    "unknown gate use {other:?} (known: if_attached, required, skip)"
                ))),
            },
        }
    }
}

/// What a phase does besides deploying its targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PhaseAction {
    /// Deploy the phase's targets.
    Deploy,
    /// Switch traffic to the given set (blue-green), through a `Router`.
    Switch {
        /// The set that serves after the switch.
        to: Vec<TargetId>,
        /// The set that served before, switched back to on rollback.
        from: Vec<TargetId>,
    },
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// A name for people: `canary 10%`, `batch 3/5`, `ring eu-west`.
    pub name: String,
    /// Targets newly moved to the artifact in this phase.
    pub targets: Vec<TargetId>,
    /// Cumulative share of the rollout's targets on the artifact after this phase.
    pub percent: Percent,
    /// What the phase does.
    pub action: PhaseAction,
    /// How long to watch before the gate.
    #[serde(with = "humantime_serde")]
    pub bake: Duration,
    /// Whether the gate is asked at the end of the phase.
    #[serde(default, alias = "gated")]
    pub gate: GateUse,
    /// Failed targets tolerated in this phase before rolling back.
    pub max_failed: usize,
    /// Deploys in flight at once (at least 1).
    pub concurrency: usize,
}

/// An ordered list of phases: what every strategy compiles to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// At most this many of the plan's targets may be unavailable at once
    /// while the rollout moves forward: a target being deployed, or one that
    /// is not ready (whatever it runs), counts. A phase waits rather than
    /// take more out. `None`: no limit beyond each phase's concurrency.
    /// The rolling strategy sets it to its `max_unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<usize>,
}

impl Plan {
    /// Every target the plan touches, in plan order.
    pub fn targets(&self) -> impl Iterator<Item = &TargetId> {
        self.phases.iter().flat_map(|p| p.targets.iter())
    }
}

fn check_targets(targets: &[TargetId]) -> Result<(), Error> {
    if targets.is_empty() {
        return Err(Error::invalid("targets", "the target list is empty"));
    }
    let mut seen = BTreeSet::new();
    for t in targets {
        if !seen.insert(t) {
            return Err(Error::invalid(
                "targets",
                format!("target {t} is listed twice"),
            ));
        }
    }
    Ok(())
}

impl Strategy {
    /// The strategy's name as written in plan files.
    pub fn kind(&self) -> &'static str {
        match self {
            Strategy::AllAtOnce => "all-at-once",
            Strategy::Rolling { .. } => "rolling",
            Strategy::Canary { .. } => "canary",
            Strategy::Linear { .. } => "linear",
            Strategy::Exponential { .. } => "exponential",
            Strategy::BlueGreen { .. } => "blue-green",
            Strategy::Rings { .. } => "rings",
        }
    }

    /// Compiles the strategy over `targets` into a plan. Blue-green and rings
    /// carry their own target sets; `targets` must list the same targets.
    pub fn compile(&self, targets: &[TargetId], d: &PhaseDefaults) -> Result<Plan, Error> {
        check_targets(targets)?;
        let n = targets.len();
        let phase = |name: String, ts: &[TargetId], percent: Percent, conc: usize| Phase {
            name,
            targets: ts.to_vec(),
            percent,
            action: PhaseAction::Deploy,
            bake: d.bake,
            gate: d.gate,
            max_failed: d.max_failed,
            concurrency: if d.concurrency == 0 {
                conc.max(1)
            } else {
                d.concurrency
            },
        };
        let by_percent = |steps: &[Percent]| -> Result<Plan, Error> {
            let mut phases = Vec::new();
            let mut done = 0;
            let mut last = None;
            for &p in steps {
                if p.get() <= 0.0 {
                    return Err(Error::invalid(
                        "strategy",
                        format!("step {p} must be above 0%"),
                    ));
                }
                if let Some(prev) = last
                    && p <= prev
                {
                    return Err(Error::invalid(
                        "strategy",
                        format!("steps must increase: {p} follows {prev}"),
                    ));
                }
                last = Some(p);
                let upto = p.of(n);
                phases.push(phase(format!("{p}"), &targets[done..upto], p, upto - done));
                done = upto;
            }
            if last != Some(Percent::FULL) {
                phases.push(phase(
                    "100%".into(),
                    &targets[done..],
                    Percent::FULL,
                    n - done,
                ));
            }
            Ok(Plan {
                phases,
                max_unavailable: None,
            })
        };
        match self {
            Strategy::AllAtOnce => Ok(Plan {
                phases: vec![phase("all".into(), targets, Percent::FULL, n)],
                max_unavailable: None,
            }),
            Strategy::Rolling { max_unavailable } => {
                if *max_unavailable == 0 {
                    return Err(Error::invalid(
                        "strategy",
                        "rolling max_unavailable must be at least 1",
                    ));
                }
                let batches = n.div_ceil(*max_unavailable);
                let phases = targets
                    .chunks(*max_unavailable)
                    .enumerate()
                    .map(|(i, chunk)| {
                        let done = (i * max_unavailable + chunk.len()) as f64;
                        let pct = Percent::new(done * 100.0 / n as f64).unwrap_or(Percent::FULL);
                        let mut ph = phase(
                            format!("batch {}/{batches}", i + 1),
                            chunk,
                            pct,
                            chunk.len(),
                        );
                        // A batch never exceeds max_unavailable in flight.
                        ph.concurrency = ph.concurrency.min(*max_unavailable);
                        ph
                    })
                    .collect();
                Ok(Plan {
                    phases,
                    max_unavailable: Some(*max_unavailable),
                })
            }
            Strategy::Canary { steps } => {
                if steps.is_empty() {
                    return Err(Error::invalid("strategy", "canary needs at least one step"));
                }
                by_percent(steps)
            }
            Strategy::Linear { step } => {
                if step.get() <= 0.0 {
                    return Err(Error::invalid("strategy", "linear step must be above 0%"));
                }
                let mut steps = Vec::new();
                let mut k = 1.0;
                while step.get() * k < 100.0 {
                    steps.push(Percent::new(step.get() * k)?);
                    k += 1.0;
                }
                steps.push(Percent::FULL);
                by_percent(&steps)
            }
            Strategy::Exponential { start, factor } => {
                if start.get() <= 0.0 {
                    return Err(Error::invalid(
                        "strategy",
                        "exponential start must be above 0%",
                    ));
                }
                if !factor.is_finite() || *factor <= 1.0 {
                    return Err(Error::invalid(
                        "strategy",
                        format!("exponential factor {factor} must be above 1"),
                    ));
                }
                let mut steps = Vec::new();
                let mut p = start.get();
                while p < 100.0 {
                    let next = Percent::new(p)?;
                    if steps.last() != Some(&next) {
                        steps.push(next);
                    }
                    p *= factor;
                }
                steps.push(Percent::FULL);
                by_percent(&steps)
            }
            Strategy::BlueGreen { blue, green } => {
                if green.is_empty() {
                    return Err(Error::invalid(
                        "strategy",
                        "blue-green needs a non-empty green set",
                    ));
                }
                let mut both: Vec<TargetId> = blue.iter().chain(green).cloned().collect();
                check_targets(&both)?;
                let listed: BTreeSet<&TargetId> = targets.iter().collect();
                both.sort();
                if both.iter().collect::<BTreeSet<_>>() != listed {
                    return Err(Error::invalid(
                        "strategy",
                        "blue-green blue + green must be exactly the plan's targets",
                    ));
                }
                let mut deploy = phase("green".into(), green, Percent::FULL, green.len());
                deploy.percent = Percent::new(0.0)?;
                let mut switch = phase("switch".into(), &[], Percent::FULL, 1);
                switch.action = PhaseAction::Switch {
                    to: green.clone(),
                    from: blue.clone(),
                };
                Ok(Plan {
                    phases: vec![deploy, switch],
                    max_unavailable: None,
                })
            }
            Strategy::Rings { rings } => {
                if rings.is_empty() {
                    return Err(Error::invalid("strategy", "rings needs at least one ring"));
                }
                let all: Vec<TargetId> = rings
                    .iter()
                    .flat_map(|r| r.targets.iter().cloned())
                    .collect();
                check_targets(&all)?;
                let listed: BTreeSet<&TargetId> = targets.iter().collect();
                if all.iter().collect::<BTreeSet<_>>() != listed {
                    return Err(Error::invalid(
                        "strategy",
                        "the rings must hold exactly the plan's targets",
                    ));
                }
                let mut done = 0;
                let phases = rings
                    .iter()
                    .map(|r| {
                        if r.targets.is_empty() {
                            return Err(Error::invalid(
                                "strategy",
                                format!("ring {:?} is empty", r.name),
                            ));
                        }
                        done += r.targets.len();
                        let pct = Percent::new(done as f64 * 100.0 / n as f64)?;
                        Ok(phase(
                            format!("ring {}", r.name),
                            &r.targets,
                            pct,
                            r.targets.len(),
                        ))
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                Ok(Plan {
                    phases,
                    max_unavailable: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(n: usize) -> Vec<TargetId> {
        (1..=n).map(|i| format!("t{i}").parse().unwrap()).collect()
    }
    fn pct(p: f64) -> Percent {
        Percent::new(p).unwrap()
    }
    fn sizes(p: &Plan) -> Vec<usize> {
        p.phases.iter().map(|p| p.targets.len()).collect()
    }

    #[test]
    fn canary_steps_are_cumulative_and_end_at_full() {
        let plan = Strategy::Canary {
            steps: vec![pct(1.0), pct(10.0), pct(50.0)],
        }
        .compile(&targets(200), &PhaseDefaults::default())
        .unwrap();
        assert_eq!(sizes(&plan), [2, 18, 80, 100]);
        assert_eq!(plan.phases.last().unwrap().percent, Percent::FULL);
        assert_eq!(plan.targets().count(), 200);
    }

    #[test]
    fn canary_rejects_non_increasing_steps() {
        let err = Strategy::Canary {
            steps: vec![pct(50.0), pct(10.0)],
        }
        .compile(&targets(10), &PhaseDefaults::default())
        .unwrap_err();
        assert!(err.to_string().contains("steps must increase"), "{err}");
    }

    #[test]
    fn rolling_batches_respect_max_unavailable() {
        let plan = Strategy::Rolling { max_unavailable: 3 }
            .compile(&targets(10), &PhaseDefaults::default().with_concurrency(10))
            .unwrap();
        assert_eq!(sizes(&plan), [3, 3, 3, 1]);
        assert!(plan.phases.iter().all(|p| p.concurrency <= 3));
    }

    #[test]
    fn linear_and_exponential_ramps() {
        let lin = Strategy::Linear { step: pct(25.0) }
            .compile(&targets(8), &PhaseDefaults::default())
            .unwrap();
        assert_eq!(sizes(&lin), [2, 2, 2, 2]);
        let exp = Strategy::Exponential {
            start: pct(1.0),
            factor: 2.0,
        }
        .compile(&targets(100), &PhaseDefaults::default())
        .unwrap();
        let pcts: Vec<f64> = exp.phases.iter().map(|p| p.percent.get()).collect();
        assert_eq!(pcts, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 100.0]);
    }

    #[test]
    fn blue_green_deploys_green_then_switches() {
        let t = targets(4);
        let plan = Strategy::BlueGreen {
            blue: t[..2].to_vec(),
            green: t[2..].to_vec(),
        }
        .compile(&t, &PhaseDefaults::default())
        .unwrap();
        assert_eq!(plan.phases.len(), 2);
        assert_eq!(plan.phases[0].targets, t[2..].to_vec());
        assert!(matches!(plan.phases[1].action, PhaseAction::Switch { .. }));
    }

    #[test]
    fn rings_must_cover_the_targets_exactly() {
        let t = targets(3);
        let rings = vec![
            Ring {
                name: "a".into(),
                targets: t[..1].to_vec(),
            },
            Ring {
                name: "b".into(),
                targets: t[1..].to_vec(),
            },
        ];
        let plan = Strategy::Rings {
            rings: rings.clone(),
        }
        .compile(&t, &PhaseDefaults::default())
        .unwrap();
        assert_eq!(sizes(&plan), [1, 2]);
        assert!(
            Strategy::Rings { rings }
                .compile(&targets(4), &PhaseDefaults::default())
                .is_err()
        );
    }

    #[test]
    fn empty_and_duplicate_targets_are_rejected() {
        let e = Strategy::AllAtOnce
            .compile(&[], &PhaseDefaults::default())
            .unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let mut t = targets(2);
        t.push(t[0].clone());
        let e = Strategy::AllAtOnce
            .compile(&t, &PhaseDefaults::default())
            .unwrap_err();
        assert!(e.to_string().contains("t1 is listed twice"), "{e}");
    }
}
