//! The pure rollout state machine: `apply` folds an event in, `decide` says
//! what to do next. No I/O, no clock: replaying a log rebuilds the state.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;

use crate::{
    Artifact, Decision, Error, Event, EventRecord, GateContext, Outcome, PhaseAction, RolloutId,
    RolloutRequest, TargetId,
};

/// Where one target stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum TargetState {
    /// Not touched yet.
    Pending,
    /// Intent recorded; deploy under way (or in doubt after a crash).
    Deploying,
    /// Runs the artifact and is ready.
    Deployed,
    /// Deploy or readiness failed.
    Failed(String),
    /// Restore intent recorded; under way (or in doubt).
    Restoring,
    /// Back on its previous artifact.
    Restored,
    /// Could not be restored.
    RestoreFailed(String),
    /// Nothing known to restore to.
    RestoreSkipped(String),
}

impl TargetState {
    fn touched(&self) -> bool {
        !matches!(self, TargetState::Pending)
    }
}

/// Who stopped driving a rollout on request, why and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interruption {
    /// The controller that stopped.
    pub by: String,
    /// Why (`SIGINT`, `SIGTERM`, ...).
    pub reason: String,
    /// When, ms since the Unix epoch (audit only).
    pub at_ms: i64,
}

/// The rollout's lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum Status {
    /// Moving forward.
    Running,
    /// A person paused it.
    Paused,
    /// A gate held it; waiting for a person.
    Held(Vec<String>),
    /// Returning touched targets to their previous artifact.
    RollingBack {
        /// Why.
        reason: String,
        /// Whether a person aborted it.
        aborted: bool,
    },
    /// Done.
    Finished(Outcome),
}

/// Where the current phase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Deploying the phase's targets (or switching traffic).
    Deploying,
    /// Waiting out the bake time (or the wait before asking the gate again).
    Baking,
    /// Asking the gate.
    Gating,
}

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Append this event (a decision that needs no I/O).
    Record(Event),
    /// Deploy the artifact on `target`. `fresh`: read its current artifact
    /// and record the intent first; otherwise the intent is already recorded
    /// (a resumed controller redoes an in-doubt deploy, which is idempotent).
    Deploy {
        /// The target.
        target: TargetId,
        /// Whether the intent still has to be recorded.
        fresh: bool,
    },
    /// Return `target` to `to`; `fresh` as for `Deploy`.
    Restore {
        /// The target.
        target: TargetId,
        /// Its previous artifact.
        to: Artifact,
        /// Whether the intent still has to be recorded.
        fresh: bool,
    },
    /// Switch traffic to `to` (blue-green); `back` on rollback.
    Switch {
        /// The set to serve.
        to: Vec<TargetId>,
        /// Whether this switches back to the old set.
        back: bool,
    },
    /// Wait `duration`, then record `BakeElapsed` for `phase`.
    Bake {
        /// The phase.
        phase: usize,
        /// How long.
        duration: Duration,
    },
    /// Ask the gate.
    AskGate(Box<GateContext>),
    /// Nothing to start: wait for running work or a person.
    Wait,
    /// Stop driving: held for a person, or finished.
    Stop,
}

/// A rollout rebuilt from its log.
#[derive(Debug, Clone, Serialize)]
pub struct Rollout {
    /// The rollout.
    pub id: RolloutId,
    /// What was asked.
    #[serde(skip)]
    pub request: RolloutRequest,
    /// The lifecycle.
    pub status: Status,
    /// The current phase index (equals the phase count when all are done).
    pub phase: usize,
    /// The current phase's stage.
    pub stage: Stage,
    /// Every target of the plan.
    pub targets: BTreeMap<TargetId, TargetState>,
    /// What each touched target ran before, when known.
    pub previous: BTreeMap<TargetId, Option<Artifact>>,
    /// Whether traffic was switched to the new set (blue-green).
    pub switched: bool,
    /// Whether a switch to the new set was started (it may have landed).
    pub switch_intent: bool,
    /// Gate verdicts asked in the current phase.
    pub gate_asks: u32,
    /// Consecutive gate errors in the current phase.
    pub gate_errors: u32,
    /// The last gate verdict, for status displays.
    pub last_decision: Option<Decision>,
    /// A person asked to complete the current phase.
    pub promote_requested: bool,
    /// The bake to wait when baking.
    pub bake_for: Duration,
    /// Why the rollout rolled back, once it started to.
    pub rollback_reason: Option<String>,
    /// The last event applied.
    pub last_seq: u64,
    /// Set when the last controller stopped on request (a signal) and none
    /// has taken the rollout on since.
    pub interrupted: Option<Interruption>,
    /// Whether the driver has a gate to ask (phases that ask "if attached"
    /// ask it). Set by the executor; not part of the log.
    #[serde(skip)]
    pub gate_attached: bool,
    /// Whether a controller has started driving it (the log has a
    /// `controller_started` event).
    pub started: bool,
}

impl Rollout {
    /// A rollout that has not started.
    pub fn new(id: RolloutId, request: RolloutRequest) -> Self {
        let targets = request
            .plan
            .phases
            .iter()
            .flat_map(|p| p.targets.iter().cloned())
            .map(|t| (t, TargetState::Pending))
            .collect();
        Self {
            id,
            request,
            status: Status::Running,
            phase: 0,
            stage: Stage::Deploying,
            targets,
            previous: BTreeMap::new(),
            switched: false,
            switch_intent: false,
            gate_asks: 0,
            gate_errors: 0,
            last_decision: None,
            promote_requested: false,
            bake_for: Duration::ZERO,
            rollback_reason: None,
            last_seq: 0,
            interrupted: None,
            gate_attached: false,
            started: false,
        }
    }

    /// Rebuilds a rollout by applying `log` in order.
    pub fn replay(
        id: RolloutId,
        request: RolloutRequest,
        log: &[EventRecord],
    ) -> Result<Self, Error> {
        let mut r = Self::new(id, request);
        for rec in log {
            r.apply(rec)?;
        }
        Ok(r)
    }

    /// Whether the rollout has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self.status, Status::Finished(_))
    }

    /// The outcome, once finished.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.status {
            Status::Finished(o) => Some(o),
            _ => None,
        }
    }

    fn corrupt(&self, seq: u64, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            rollout: self.id,
            seq,
            reason: reason.into(),
        }
    }

    fn target_mut(&mut self, seq: u64, t: &TargetId) -> Result<&mut TargetState, Error> {
        let id = self.id;
        self.targets.get_mut(t).ok_or_else(|| Error::Corrupt {
            rollout: id,
            seq,
            reason: format!("target {t} is not in the plan"),
        })
    }

    fn start_rollback(&mut self, reason: String, aborted: bool) {
        if matches!(
            self.status,
            Status::RollingBack { .. } | Status::Finished(_)
        ) {
            return;
        }
        self.rollback_reason = Some(reason.clone());
        self.status = Status::RollingBack { reason, aborted };
    }

    /// Only a rollout moving forward (or paused) can be held by a gate.
    fn may_hold(&self) -> bool {
        matches!(self.status, Status::Running | Status::Paused)
    }

    fn next_phase(&mut self) {
        self.phase += 1;
        self.stage = Stage::Deploying;
        self.gate_asks = 0;
        self.gate_errors = 0;
        self.promote_requested = false;
    }

    /// Folds one recorded event into the state. Requests from people that do
    /// not fit the state (abort after the end) are kept in the log and ignored.
    pub fn apply(&mut self, rec: &EventRecord) -> Result<(), Error> {
        let seq = rec.seq;
        if seq <= self.last_seq {
            return Err(self.corrupt(seq, format!("sequence goes back (after {})", self.last_seq)));
        }
        self.last_seq = seq;
        let finished = self.is_finished();
        if finished && !rec.event.is_request() {
            return Err(self.corrupt(
                seq,
                format!("{} after the rollout finished", rec.event.action()),
            ));
        }
        match &rec.event {
            Event::ControllerStarted { .. } => {
                self.interrupted = None;
                self.started = true;
            }
            Event::Interrupted { reason } => {
                self.interrupted = Some(Interruption {
                    by: rec.actor.clone(),
                    reason: reason.clone(),
                    at_ms: rec.at_ms,
                });
            }
            Event::Refused { check, reason } => {
                self.rollback_reason = Some(format!("precheck {check} refused: {reason}"));
            }
            Event::DeployRetried { .. } => {}
            Event::DeployIntent {
                target, previous, ..
            } => {
                *self.target_mut(seq, target)? = TargetState::Deploying;
                self.previous
                    .entry(target.clone())
                    .or_insert_with(|| previous.clone());
            }
            Event::TargetDeployed { target } => {
                *self.target_mut(seq, target)? = TargetState::Deployed;
            }
            Event::TargetFailed { target, reason } => {
                *self.target_mut(seq, target)? = TargetState::Failed(reason.clone());
            }
            Event::SwitchIntent { .. } => {
                self.switch_intent = true;
            }
            Event::Switched { .. } => {
                self.switched = true;
            }
            Event::SwitchFailed { reason } => {
                self.start_rollback(format!("traffic switch failed: {reason}"), false);
            }
            Event::BakeStarted { bake, .. } => {
                self.stage = Stage::Baking;
                self.bake_for = *bake;
            }
            Event::BakeElapsed { .. } => {
                self.stage = Stage::Gating;
            }
            Event::GateDecided { decision, .. } => {
                self.gate_asks += 1;
                self.gate_errors = 0;
                self.last_decision = Some(decision.clone());
                match decision {
                    Decision::Promote(_) => {}
                    Decision::Continue(_) => {
                        if self.gate_asks >= self.request.gate_policy.max_continues
                            && self.may_hold()
                        {
                            self.status = Status::Held(vec![format!(
                                "gate said continue {} times in phase {}",
                                self.gate_asks,
                                self.phase + 1
                            )]);
                        }
                        self.stage = Stage::Baking;
                        let p = &self.request.gate_policy;
                        self.bake_for = if p.interval.is_zero() {
                            self.phase_bake()
                        } else {
                            p.interval
                        };
                    }
                    Decision::Hold(reasons) => {
                        // A verdict that lands after an abort must not undo it.
                        if self.may_hold() {
                            self.status = Status::Held(reasons.clone());
                        }
                    }
                    Decision::Rollback(reasons) => {
                        self.start_rollback(
                            format!(
                                "gate said rollback at phase {}: {}",
                                self.phase + 1,
                                reasons.join("; ")
                            ),
                            false,
                        );
                    }
                }
            }
            Event::GateErrored { error, .. } => {
                self.gate_errors += 1;
                if self.gate_errors >= self.request.gate_policy.max_errors {
                    self.start_rollback(
                        format!("gate failed {} times in a row: {error}", self.gate_errors),
                        false,
                    );
                } else {
                    self.stage = Stage::Baking;
                    self.bake_for = self.request.gate_policy.retry_after;
                }
            }
            Event::PhaseCompleted { phase, .. } => {
                if *phase != self.phase {
                    return Err(self.corrupt(
                        seq,
                        format!("completes phase {phase} while at {}", self.phase),
                    ));
                }
                self.next_phase();
            }
            Event::RollbackStarted { reason } => {
                self.start_rollback(reason.clone(), false);
            }
            Event::SwitchedBack { .. } => {
                self.switched = false;
                self.switch_intent = false;
            }
            Event::RestoreIntent { target, .. } => {
                *self.target_mut(seq, target)? = TargetState::Restoring;
            }
            Event::TargetRestored { target } => {
                *self.target_mut(seq, target)? = TargetState::Restored;
            }
            Event::RestoreFailed { target, reason } => {
                *self.target_mut(seq, target)? = TargetState::RestoreFailed(reason.clone());
            }
            Event::RestoreSkipped { target, reason } => {
                *self.target_mut(seq, target)? = TargetState::RestoreSkipped(reason.clone());
            }
            Event::Finished { outcome } => {
                self.status = Status::Finished(*outcome);
            }
            Event::PauseRequested => {
                if self.status == Status::Running {
                    self.status = Status::Paused;
                }
            }
            Event::ResumeRequested => match self.status {
                Status::Paused => self.status = Status::Running,
                Status::Held(_) => {
                    // Ask the gate again: re-bake first only if there is a gate to ask.
                    self.status = Status::Running;
                    self.gate_asks = 0;
                    self.stage = Stage::Gating;
                }
                _ => {}
            },
            Event::PromoteRequested => match self.status {
                Status::Running | Status::Paused => self.promote_requested = true,
                Status::Held(_) => {
                    self.status = Status::Running;
                    self.promote_requested = true;
                }
                _ => {}
            },
            Event::AbortRequested => {
                if !finished {
                    self.start_rollback(format!("aborted by {}", rec.actor), true);
                }
            }
        }
        Ok(())
    }

    fn phase_bake(&self) -> Duration {
        self.request
            .plan
            .phases
            .get(self.phase)
            .map_or(Duration::ZERO, |p| p.bake)
    }

    /// The artifact most touched targets ran before (or the request's), for gates.
    pub fn previous_artifact(&self) -> Option<Artifact> {
        if let Some(p) = &self.request.previous {
            return Some(p.clone());
        }
        let mut counts: BTreeMap<&crate::Digest, (usize, &Artifact)> = BTreeMap::new();
        for a in self.previous.values().flatten() {
            counts.entry(&a.digest).or_insert((0, a)).0 += 1;
        }
        counts
            .into_values()
            .max_by_key(|(n, _)| *n)
            .map(|(_, a)| a.clone())
    }

    /// Touched targets a rollback has not returned to what they ran before:
    /// their restore failed, nothing was known to restore them to, or it has
    /// not happened yet. Empty unless the rollout is rolling back or ended
    /// other than `succeeded`; `rolled_back` and `aborted` mean it is empty.
    pub fn left_on_artifact(&self) -> Vec<TargetId> {
        let rolling_back = match &self.status {
            Status::RollingBack { .. } => true,
            Status::Finished(o) => *o != Outcome::Succeeded,
            _ => false,
        };
        if !rolling_back {
            return Vec::new();
        }
        let artifact = &self.request.artifact.digest;
        self.targets
            .iter()
            .filter(|(t, s)| match s {
                TargetState::Pending | TargetState::Restored => false,
                // Skipped because it ran the artifact before: it runs what it ran.
                TargetState::RestoreSkipped(_) => !matches!(
                    self.previous.get(*t),
                    Some(Some(p)) if &p.digest == artifact
                ),
                _ => true,
            })
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// Targets on the new artifact now.
    pub fn on_artifact(&self) -> Vec<TargetId> {
        self.targets
            .iter()
            .filter(|(_, s)| matches!(s, TargetState::Deployed))
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// What to do next. `running` names the targets whose deploy or restore
    /// this driver has in flight; any other in-progress target is in doubt
    /// (its controller died) and is redone.
    pub fn decide(&self, running: &BTreeSet<TargetId>) -> Vec<Action> {
        match &self.status {
            Status::Finished(_) | Status::Held(_) => vec![Action::Stop],
            Status::Paused => vec![Action::Wait],
            Status::RollingBack { aborted, .. } => self.decide_rollback(running, *aborted),
            Status::Running => self.decide_forward(running),
        }
    }

    fn decide_forward(&self, running: &BTreeSet<TargetId>) -> Vec<Action> {
        let phases = &self.request.plan.phases;
        let Some(phase) = phases.get(self.phase) else {
            return vec![Action::Record(Event::Finished {
                outcome: Outcome::Succeeded,
            })];
        };
        match self.stage {
            Stage::Deploying => {
                let mut actions = Vec::new();
                let mut in_flight = 0;
                let mut failed = Vec::new();
                let mut pending = Vec::new();
                for t in &phase.targets {
                    match &self.targets[t] {
                        TargetState::Deploying => {
                            in_flight += 1;
                            if !running.contains(t) {
                                actions.push(Action::Deploy {
                                    target: t.clone(),
                                    fresh: false,
                                });
                            }
                        }
                        TargetState::Failed(reason) => failed.push((t, reason)),
                        TargetState::Pending => pending.push(t),
                        _ => {}
                    }
                }
                if failed.len() > phase.max_failed {
                    if in_flight > 0 {
                        // Let in-flight deploys land before rolling back; start nothing new.
                        return if actions.is_empty() {
                            vec![Action::Wait]
                        } else {
                            actions
                        };
                    }
                    let list = failed
                        .iter()
                        .take(5)
                        .map(|(t, r)| format!("{t}: {r}"))
                        .collect::<Vec<_>>()
                        .join("; ");
                    return vec![Action::Record(Event::RollbackStarted {
                        reason: format!(
                            "{} target(s) failed in phase {} ({}), over the limit of {}: {list}",
                            failed.len(),
                            self.phase + 1,
                            phase.name,
                            phase.max_failed
                        ),
                    })];
                }
                let room = phase.concurrency.max(1).saturating_sub(in_flight);
                for t in pending.into_iter().take(room) {
                    actions.push(Action::Deploy {
                        target: t.clone(),
                        fresh: true,
                    });
                }
                if !actions.is_empty() {
                    return actions;
                }
                if in_flight > 0 {
                    return vec![Action::Wait];
                }
                if let PhaseAction::Switch { to, .. } = &phase.action
                    && !self.switched
                {
                    return vec![Action::Switch {
                        to: to.clone(),
                        back: false,
                    }];
                }
                vec![Action::Record(Event::BakeStarted {
                    phase: self.phase,
                    bake: phase.bake,
                })]
            }
            Stage::Baking => {
                if self.promote_requested {
                    return vec![self.complete("promoted by a person")];
                }
                vec![Action::Bake {
                    phase: self.phase,
                    duration: self.bake_for,
                }]
            }
            Stage::Gating => {
                if self.promote_requested {
                    return vec![self.complete("promoted by a person")];
                }
                if !phase.gate.asks(self.gate_attached) {
                    return vec![self.complete(if self.gate_attached {
                        "baked; the phase skips the gate"
                    } else {
                        "baked; no gate"
                    })];
                }
                if matches!(self.last_decision, Some(Decision::Promote(_))) && self.gate_asks > 0 {
                    return vec![self.complete("gate said promote")];
                }
                let total = self.targets.len();
                let on = self.on_artifact();
                let share = if total == 0 {
                    100.0
                } else {
                    on.len() as f64 * 100.0 / total as f64
                };
                let blue_green = self
                    .request
                    .plan
                    .phases
                    .iter()
                    .any(|p| matches!(p.action, PhaseAction::Switch { .. }));
                // Blue-green moves traffic, not targets: the share is the phase's
                // (0 % before the switch, 100 % after).
                let percent = if blue_green {
                    phase.percent
                } else {
                    crate::Percent::new(share).unwrap_or(phase.percent)
                };
                vec![Action::AskGate(Box::new(GateContext {
                    rollout: self.id,
                    service: self.request.service.clone(),
                    artifact: self.request.artifact.clone(),
                    previous: self.previous_artifact(),
                    phase: self.phase,
                    phase_name: phase.name.clone(),
                    percent,
                    canary_targets: on,
                    attempt: self.gate_asks,
                }))]
            }
        }
    }

    fn complete(&self, reason: &str) -> Action {
        Action::Record(Event::PhaseCompleted {
            phase: self.phase,
            reason: reason.into(),
        })
    }

    fn decide_rollback(&self, running: &BTreeSet<TargetId>, aborted: bool) -> Vec<Action> {
        // Forward work still in flight lands first, so nothing races a restore.
        let forward_in_flight = self
            .targets
            .iter()
            .any(|(t, s)| matches!(s, TargetState::Deploying) && running.contains(t));
        if forward_in_flight {
            return vec![Action::Wait];
        }
        if self.switched || self.switch_intent {
            let from = self
                .request
                .plan
                .phases
                .iter()
                .find_map(|p| match &p.action {
                    PhaseAction::Switch { from, .. } => Some(from.clone()),
                    PhaseAction::Deploy => None,
                });
            return vec![Action::Switch {
                to: from.unwrap_or_default(),
                back: true,
            }];
        }
        let mut actions = Vec::new();
        let mut restoring = 0;
        let mut failed_any = false;
        for (t, s) in &self.targets {
            match s {
                TargetState::Pending | TargetState::Restored | TargetState::RestoreSkipped(_) => {}
                TargetState::RestoreFailed(_) => failed_any = true,
                TargetState::Restoring => {
                    restoring += 1;
                    if !running.contains(t)
                        && let Some(Some(to)) = self.previous.get(t)
                    {
                        actions.push(Action::Restore {
                            target: t.clone(),
                            to: to.clone(),
                            fresh: false,
                        });
                    }
                }
                TargetState::Deploying | TargetState::Deployed | TargetState::Failed(_) => {
                    debug_assert!(s.touched());
                    match self.previous.get(t).cloned().flatten() {
                        Some(to) if to.digest == self.request.artifact.digest => {
                            actions.push(Action::Record(Event::RestoreSkipped {
                                target: t.clone(),
                                reason: format!("already ran {to} before this rollout"),
                            }));
                        }
                        Some(to) => actions.push(Action::Restore {
                            target: t.clone(),
                            to,
                            fresh: true,
                        }),
                        None => actions.push(Action::Record(Event::RestoreSkipped {
                            target: t.clone(),
                            reason: format!(
                                "nothing known to restore it to; left on {}",
                                self.request.artifact
                            ),
                        })),
                    }
                }
            }
        }
        // Restores run with the plan's widest phase concurrency, no wider.
        let limit = self
            .request
            .plan
            .phases
            .iter()
            .map(|p| p.concurrency)
            .max()
            .unwrap_or(1)
            .max(1);
        let mut room = limit.saturating_sub(restoring);
        actions.retain(|a| match a {
            Action::Restore { fresh: true, .. } => {
                let keep = room > 0;
                room = room.saturating_sub(1);
                keep
            }
            _ => true,
        });
        if !actions.is_empty() {
            return actions;
        }
        if restoring > 0 {
            return vec![Action::Wait];
        }
        let outcome = if failed_any || !self.left_on_artifact().is_empty() {
            Outcome::RollbackFailed
        } else if aborted {
            Outcome::Aborted
        } else {
            Outcome::RolledBack
        };
        vec![Action::Record(Event::Finished { outcome })]
    }
}
