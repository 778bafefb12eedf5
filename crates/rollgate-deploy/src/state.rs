//! The pure rollout state machine: `apply` folds an event in, `decide` says
//! what to do next. No I/O, no clock: replaying a log rebuilds the state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    /// Where each target stands, indexed for `decide`; kept by `apply`.
    #[serde(skip)]
    index: Index,
}

impl Rollout {
    /// A rollout that has not started.
    pub fn new(id: RolloutId, request: RolloutRequest) -> Self {
        let targets: BTreeMap<TargetId, TargetState> = request
            .plan
            .phases
            .iter()
            .flat_map(|p| p.targets.iter().cloned())
            .map(|t| (t, TargetState::Pending))
            .collect();
        let index = Index::new(&request, targets.keys());
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
            index,
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

    /// Sets where target `t` stands (and, for a deploy intent, what it ran
    /// before, when not known yet), keeping the index in step.
    fn set_target(
        &mut self,
        seq: u64,
        t: &TargetId,
        state: TargetState,
        previous: Option<&Option<Artifact>>,
    ) -> Result<(), Error> {
        let Some(&slot) = self.index.slot.get(t) else {
            return Err(self.corrupt(seq, format!("target {t} is not in the plan")));
        };
        self.index_target(slot, false);
        if let Some(p) = previous {
            self.previous.entry(t.clone()).or_insert_with(|| p.clone());
        }
        if let Some(s) = self.targets.get_mut(t) {
            *s = state;
        }
        self.index_target(slot, true);
        Ok(())
    }

    /// Adds target `slot` to (or removes it from) the index entries its
    /// state and previous artifact put it in.
    fn index_target(&mut self, slot: u32, add: bool) {
        let name = &self.index.names[slot as usize];
        let Some(state) = self.targets.get(name) else {
            return;
        };
        // What a rollback does with it: restore it, or record it skipped.
        let restorable = matches!(
            self.previous.get(name),
            Some(Some(to)) if to.digest != self.request.artifact.digest
        );
        let kind = Kind::of(state, restorable);
        self.index.update(slot, kind, add);
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
                self.set_target(seq, target, TargetState::Deploying, Some(previous))?;
            }
            Event::TargetDeployed { target } => {
                self.set_target(seq, target, TargetState::Deployed, None)?;
            }
            Event::TargetFailed { target, reason } => {
                self.set_target(seq, target, TargetState::Failed(reason.clone()), None)?;
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
                self.set_target(seq, target, TargetState::Restoring, None)?;
            }
            Event::TargetRestored { target } => {
                self.set_target(seq, target, TargetState::Restored, None)?;
            }
            Event::RestoreFailed { target, reason } => {
                self.set_target(
                    seq,
                    target,
                    TargetState::RestoreFailed(reason.clone()),
                    None,
                )?;
            }
            Event::RestoreSkipped { target, reason } => {
                self.set_target(
                    seq,
                    target,
                    TargetState::RestoreSkipped(reason.clone()),
                    None,
                )?;
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
        self.index
            .deployed
            .iter()
            .map(|&s| self.index.names[s as usize].clone())
            .collect()
    }

    /// What to do next. `running` names the targets whose deploy or restore
    /// this driver has in flight; any other in-progress target is in doubt
    /// (its controller died) and is redone.
    ///
    /// Its work grows with the targets in progress, not with the fleet; a
    /// driver that keeps an [`InFlight`] asks
    /// [`decide_in_flight`](Self::decide_in_flight) instead, whose work
    /// does not grow with either.
    pub fn decide(&self, running: &BTreeSet<TargetId>) -> Vec<Action> {
        self.decide_with(&AnyRunning(running))
    }

    /// What to do next, for a driver that records a target's intent before
    /// it starts work on it and keeps what it has in flight in `in_flight`
    /// (so each deploy it runs is for a target `deploying` here and each
    /// restore for one `restoring`, as [`Executor`](crate::Executor) does).
    /// Then the same as [`decide`](Self::decide) with the same targets, in
    /// time logarithmic in the fleet (plus the actions it returns).
    ///
    /// ```
    /// use rollgate_deploy::{Action, Artifact, Digest, Event, EventRecord, InFlight, PhaseDefaults, Rollout, RolloutId, RolloutRequest, Strategy, TargetId};
    /// let targets: Vec<TargetId> = ["web-1", "web-2"].iter().map(|t| t.parse()).collect::<Result<_, _>>()?;
    /// let plan = Strategy::AllAtOnce.compile(&targets, &PhaseDefaults::default().with_concurrency(1))?;
    /// let req = RolloutRequest::new("web", Artifact::new("v2", Digest::of_bytes(b"v2")), plan, "alice");
    /// let mut r = Rollout::new(RolloutId(1), req);
    /// let mut in_flight = InFlight::default();
    /// assert_eq!(r.decide_in_flight(&in_flight), [Action::Deploy { target: targets[0].clone(), fresh: true }]);
    /// r.apply(&EventRecord { seq: 1, at_ms: 0, actor: "ctl".into(), event: Event::DeployIntent { target: targets[0].clone(), previous: None, note: None } })?;
    /// in_flight.start(targets[0].clone(), true);
    /// // One at a time: wait for web-1.
    /// assert_eq!(r.decide_in_flight(&in_flight), [Action::Wait]);
    /// assert_eq!(r.decide_in_flight(&in_flight), r.decide(in_flight.targets()));
    /// # Ok::<(), rollgate_deploy::Error>(())
    /// ```
    pub fn decide_in_flight(&self, in_flight: &InFlight) -> Vec<Action> {
        self.decide_with(in_flight)
    }

    fn decide_with(&self, running: &dyn Running) -> Vec<Action> {
        match &self.status {
            Status::Finished(_) | Status::Held(_) => vec![Action::Stop],
            Status::Paused => vec![Action::Wait],
            Status::RollingBack { aborted, .. } => self.decide_rollback(running, *aborted),
            Status::Running => self.decide_forward(running),
        }
    }

    fn decide_forward(&self, running: &dyn Running) -> Vec<Action> {
        let phases = &self.request.plan.phases;
        let Some(phase) = phases.get(self.phase) else {
            return vec![Action::Record(Event::Finished {
                outcome: Outcome::Succeeded,
            })];
        };
        match self.stage {
            Stage::Deploying => {
                let at = &self.index.phases[self.phase];
                let mut actions = Vec::new();
                let in_flight = at.deploying.len();
                // In doubt: deploying, and not run by this driver.
                if !running.covers_deploys(self) {
                    for &pos in &at.deploying {
                        let t = &phase.targets[pos as usize];
                        if !running.contains(t) {
                            actions.push(Action::Deploy {
                                target: t.clone(),
                                fresh: false,
                            });
                        }
                    }
                }
                if at.failed.len() > phase.max_failed {
                    if in_flight > 0 {
                        // Let in-flight deploys land before rolling back; start nothing new.
                        return if actions.is_empty() {
                            vec![Action::Wait]
                        } else {
                            actions
                        };
                    }
                    let list = at
                        .failed
                        .iter()
                        .take(5)
                        .map(|&pos| {
                            let t = &phase.targets[pos as usize];
                            let reason = match self.targets.get(t) {
                                Some(TargetState::Failed(r)) => r.as_str(),
                                _ => "",
                            };
                            format!("{t}: {reason}")
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    return vec![Action::Record(Event::RollbackStarted {
                        reason: format!(
                            "{} target(s) failed in phase {} ({}), over the limit of {}: {list}",
                            at.failed.len(),
                            self.phase + 1,
                            phase.name,
                            phase.max_failed
                        ),
                    })];
                }
                let room = phase.concurrency.max(1).saturating_sub(in_flight);
                for &pos in at.pending.iter().take(room) {
                    actions.push(Action::Deploy {
                        target: phase.targets[pos as usize].clone(),
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

    fn decide_rollback(&self, running: &dyn Running, aborted: bool) -> Vec<Action> {
        // Forward work still in flight lands first, so nothing races a restore.
        if running.deploys_in_flight(self) {
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
        let names = &self.index.names;
        let restoring = self.index.restoring.len();
        // (target rank, action): put in the targets' order below.
        let mut actions: Vec<(u32, Action)> = Vec::new();
        if !running.covers_restores(self) {
            // In doubt: restoring, and not run by this driver.
            for &s in &self.index.restoring {
                let t = &names[s as usize];
                if !running.contains(t)
                    && let Some(Some(to)) = self.previous.get(t)
                {
                    actions.push((
                        s,
                        Action::Restore {
                            target: t.clone(),
                            to: to.clone(),
                            fresh: false,
                        },
                    ));
                }
            }
        }
        for &s in &self.index.skip {
            let t = &names[s as usize];
            let reason = match self.previous.get(t) {
                Some(Some(to)) => format!("already ran {to} before this rollout"),
                _ => format!(
                    "nothing known to restore it to; left on {}",
                    self.request.artifact
                ),
            };
            actions.push((
                s,
                Action::Record(Event::RestoreSkipped {
                    target: t.clone(),
                    reason,
                }),
            ));
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
        let room = limit.saturating_sub(restoring);
        for &s in self.index.restore.iter().take(room) {
            let t = &names[s as usize];
            if let Some(Some(to)) = self.previous.get(t) {
                actions.push((
                    s,
                    Action::Restore {
                        target: t.clone(),
                        to: to.clone(),
                        fresh: true,
                    },
                ));
            }
        }
        if !actions.is_empty() {
            // Each target is in one of the three lists once.
            actions.sort_unstable_by_key(|(s, _)| *s);
            return actions.into_iter().map(|(_, a)| a).collect();
        }
        if restoring > 0 {
            return vec![Action::Wait];
        }
        let outcome = if self.index.restore_failed > 0 || !self.left_on_artifact().is_empty() {
            Outcome::RollbackFailed
        } else if aborted {
            Outcome::Aborted
        } else {
            Outcome::RolledBack
        };
        vec![Action::Record(Event::Finished { outcome })]
    }
}

/// The deploys and restores a driver has in flight, for
/// [`Rollout::decide_in_flight`]: a target is added when its work starts
/// (after its intent is recorded) and removed when its work ends.
///
/// ```
/// use rollgate_deploy::{InFlight, TargetId};
/// let t: TargetId = "web-1".parse()?;
/// let mut in_flight = InFlight::default();
/// in_flight.start(t.clone(), true);
/// assert!(in_flight.contains(&t));
/// assert_eq!((in_flight.len(), in_flight.deploys()), (1, 1));
/// in_flight.finish(&t);
/// assert!(in_flight.is_empty());
/// # Ok::<(), rollgate_deploy::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct InFlight {
    all: BTreeSet<TargetId>,
    deploys: BTreeSet<TargetId>,
}

impl InFlight {
    /// Work on `target` started: a deploy (`forward`) or a restore.
    pub fn start(&mut self, target: TargetId, forward: bool) {
        if forward {
            self.deploys.insert(target.clone());
        }
        self.all.insert(target);
    }

    /// Work on `target` ended.
    pub fn finish(&mut self, target: &TargetId) {
        self.deploys.remove(target);
        self.all.remove(target);
    }

    /// Whether work on `target` is in flight.
    pub fn contains(&self, target: &TargetId) -> bool {
        self.all.contains(target)
    }

    /// Targets with work in flight.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Deploys in flight (the rest are restores).
    pub fn deploys(&self) -> usize {
        self.deploys.len()
    }

    /// Every target with work in flight, as [`Rollout::decide`] takes them.
    pub fn targets(&self) -> &BTreeSet<TargetId> {
        &self.all
    }
}

/// What `decide` asks of the driver's in-flight work.
trait Running {
    /// Whether work on `t` is in flight.
    fn contains(&self, t: &TargetId) -> bool;
    /// Whether a deploying target of `r` has its deploy in flight.
    fn deploys_in_flight(&self, r: &Rollout) -> bool;
    /// Whether every deploying target of `r` has its deploy in flight.
    fn covers_deploys(&self, r: &Rollout) -> bool;
    /// Whether every restoring target of `r` has its restore in flight.
    fn covers_restores(&self, r: &Rollout) -> bool;
}

/// Any set of targets: answers by walking the targets in progress.
struct AnyRunning<'a>(&'a BTreeSet<TargetId>);

impl Running for AnyRunning<'_> {
    fn contains(&self, t: &TargetId) -> bool {
        self.0.contains(t)
    }
    fn deploys_in_flight(&self, r: &Rollout) -> bool {
        let ix = &r.index;
        if self.0.len() < ix.deploying.len() {
            self.0
                .iter()
                .any(|t| ix.slot.get(t).is_some_and(|s| ix.deploying.contains(s)))
        } else {
            ix.deploying
                .iter()
                .any(|&s| self.0.contains(&ix.names[s as usize]))
        }
    }
    fn covers_deploys(&self, r: &Rollout) -> bool {
        let ix = &r.index;
        ix.deploying
            .iter()
            .all(|&s| self.0.contains(&ix.names[s as usize]))
    }
    fn covers_restores(&self, r: &Rollout) -> bool {
        let ix = &r.index;
        ix.restoring
            .iter()
            .all(|&s| self.0.contains(&ix.names[s as usize]))
    }
}

/// A driver's own work: each deploy it runs is for a deploying target and
/// each restore for a restoring one, so counts answer.
impl Running for InFlight {
    fn contains(&self, t: &TargetId) -> bool {
        self.all.contains(t)
    }
    fn deploys_in_flight(&self, _: &Rollout) -> bool {
        !self.deploys.is_empty()
    }
    fn covers_deploys(&self, r: &Rollout) -> bool {
        self.deploys.len() == r.index.deploying.len()
    }
    fn covers_restores(&self, r: &Rollout) -> bool {
        self.all.len() - self.deploys.len() == r.index.restoring.len()
    }
}

/// Where a target stands, as the index files it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Untouched.
    Pending,
    /// Deploying, deployed or failed; `restorable`: a rollback restores it
    /// (it ran another known artifact before), else records it skipped.
    Touched {
        deploying: bool,
        deployed: bool,
        failed: bool,
        restorable: bool,
    },
    Restoring,
    RestoreFailed,
    /// Restored or skipped: nothing left to do.
    Done,
}

impl Kind {
    fn of(state: &TargetState, restorable: bool) -> Self {
        let touched = |deploying, deployed, failed| Kind::Touched {
            deploying,
            deployed,
            failed,
            restorable,
        };
        match state {
            TargetState::Pending => Kind::Pending,
            TargetState::Deploying => touched(true, false, false),
            TargetState::Deployed => touched(false, true, false),
            TargetState::Failed(_) => touched(false, false, true),
            TargetState::Restoring => Kind::Restoring,
            TargetState::RestoreFailed(_) => Kind::RestoreFailed,
            TargetState::Restored | TargetState::RestoreSkipped(_) => Kind::Done,
        }
    }
}

/// Where a phase's targets stand, by position in the phase's list.
#[derive(Debug, Clone, Default)]
struct PhaseIndex {
    pending: BTreeSet<u32>,
    deploying: BTreeSet<u32>,
    failed: BTreeSet<u32>,
}

/// The targets by where they stand, so that `decide` reads only the ones
/// it acts on. Targets are numbered by rank in natural order (the order of
/// `Rollout::targets`), and within a phase by position in its list.
#[derive(Debug, Clone, Default)]
struct Index {
    /// Each target's rank.
    slot: HashMap<TargetId, u32>,
    /// The targets by rank.
    names: Vec<TargetId>,
    /// Where each target is listed in the plan, as (phase, position):
    /// `places[starts[rank]..starts[rank + 1]]`.
    starts: Vec<u32>,
    places: Vec<(u32, u32)>,
    phases: Vec<PhaseIndex>,
    deploying: BTreeSet<u32>,
    deployed: BTreeSet<u32>,
    restoring: BTreeSet<u32>,
    /// Touched targets a rollback restores.
    restore: BTreeSet<u32>,
    /// Touched targets a rollback records skipped.
    skip: BTreeSet<u32>,
    restore_failed: usize,
}

fn put(set: &mut BTreeSet<u32>, v: u32, add: bool) {
    if add {
        set.insert(v);
    } else {
        set.remove(&v);
    }
}

impl Index {
    /// Every target pending; `targets` in natural order.
    fn new<'a>(request: &RolloutRequest, targets: impl Iterator<Item = &'a TargetId>) -> Self {
        let names: Vec<TargetId> = targets.cloned().collect();
        let slot: HashMap<TargetId, u32> = names
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let mut listed: Vec<(u32, u32, u32)> = Vec::new();
        let mut phases = Vec::with_capacity(request.plan.phases.len());
        for (p, phase) in request.plan.phases.iter().enumerate() {
            for (pos, t) in phase.targets.iter().enumerate() {
                listed.push((slot[t], p as u32, pos as u32));
            }
            phases.push(PhaseIndex {
                pending: (0..phase.targets.len() as u32).collect(),
                ..PhaseIndex::default()
            });
        }
        listed.sort_unstable();
        let mut starts = Vec::with_capacity(names.len() + 1);
        let mut places = Vec::with_capacity(listed.len());
        let mut i = 0;
        for s in 0..names.len() as u32 {
            starts.push(places.len() as u32);
            while i < listed.len() && listed[i].0 == s {
                places.push((listed[i].1, listed[i].2));
                i += 1;
            }
        }
        starts.push(places.len() as u32);
        Self {
            slot,
            names,
            starts,
            places,
            phases,
            ..Self::default()
        }
    }

    /// Files target `s` under `kind` (or takes it out).
    fn update(&mut self, s: u32, kind: Kind, add: bool) {
        let (from, to) = (self.starts[s as usize], self.starts[s as usize + 1]);
        for &(p, pos) in &self.places[from as usize..to as usize] {
            let at = &mut self.phases[p as usize];
            match kind {
                Kind::Pending => put(&mut at.pending, pos, add),
                Kind::Touched {
                    deploying: true, ..
                } => put(&mut at.deploying, pos, add),
                Kind::Touched { failed: true, .. } => put(&mut at.failed, pos, add),
                _ => {}
            }
        }
        match kind {
            Kind::Pending | Kind::Done => {}
            Kind::Touched {
                deploying,
                deployed,
                restorable,
                ..
            } => {
                if deploying {
                    put(&mut self.deploying, s, add);
                }
                if deployed {
                    put(&mut self.deployed, s, add);
                }
                if restorable {
                    put(&mut self.restore, s, add);
                } else {
                    put(&mut self.skip, s, add);
                }
            }
            Kind::Restoring => put(&mut self.restoring, s, add),
            Kind::RestoreFailed => {
                if add {
                    self.restore_failed += 1;
                } else {
                    self.restore_failed -= 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Digest, GateUse, Percent, PhaseDefaults, Strategy};
    use proptest::prelude::*;

    /// `decide` as it was before the index: it walks every target of the
    /// phase (forward) or of the plan (rollback) on every call. The indexed
    /// one must answer exactly as this one does.
    impl Rollout {
        /// Targets on the new artifact now.
        fn ref_on_artifact(&self) -> Vec<TargetId> {
            self.targets
                .iter()
                .filter(|(_, s)| matches!(s, TargetState::Deployed))
                .map(|(t, _)| t.clone())
                .collect()
        }

        /// What to do next. `running` names the targets whose deploy or restore
        /// this driver has in flight; any other in-progress target is in doubt
        /// (its controller died) and is redone.
        fn reference_decide(&self, running: &BTreeSet<TargetId>) -> Vec<Action> {
            match &self.status {
                Status::Finished(_) | Status::Held(_) => vec![Action::Stop],
                Status::Paused => vec![Action::Wait],
                Status::RollingBack { aborted, .. } => self.ref_rollback(running, *aborted),
                Status::Running => self.ref_forward(running),
            }
        }

        fn ref_forward(&self, running: &BTreeSet<TargetId>) -> Vec<Action> {
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
                    if matches!(self.last_decision, Some(Decision::Promote(_)))
                        && self.gate_asks > 0
                    {
                        return vec![self.complete("gate said promote")];
                    }
                    let total = self.targets.len();
                    let on = self.ref_on_artifact();
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

        fn ref_rollback(&self, running: &BTreeSet<TargetId>, aborted: bool) -> Vec<Action> {
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
                    TargetState::Pending
                    | TargetState::Restored
                    | TargetState::RestoreSkipped(_) => {}
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

    fn artifact(v: &str) -> Artifact {
        Artifact::new(v, Digest::of_bytes(v.as_bytes()))
    }

    /// A plan over `n` targets named so that natural and byte order differ.
    fn request(
        n: usize,
        kind: u8,
        concurrency: usize,
        max_failed: usize,
        dup: bool,
    ) -> RolloutRequest {
        let targets: Vec<TargetId> = (0..n)
            .map(|i| format!("web-{}", (i * 7) % 13 + i).parse().expect("target"))
            .collect();
        let d = PhaseDefaults::default()
            .with_gate(true)
            .with_concurrency(concurrency)
            .with_max_failed(max_failed);
        let strategy = match kind % 3 {
            0 => Strategy::AllAtOnce,
            1 => Strategy::Canary {
                steps: vec![Percent::new(30.0).expect("30")],
            },
            _ => Strategy::Rolling { max_unavailable: 2 },
        };
        let mut plan = strategy.compile(&targets, &d).expect("plan");
        if dup && plan.phases.len() > 1 {
            // Hand-made plans may list a target twice; decide reads each listing.
            let t = plan.phases[0].targets[0].clone();
            plan.phases.last_mut().expect("phase").targets.push(t);
            plan.phases[0].gate = GateUse::Skip;
        }
        let mut req = RolloutRequest::new("web", artifact("v2"), plan, "alice");
        if kind.is_multiple_of(2) {
            req.previous = Some(artifact("v1"));
        }
        req
    }

    /// Checks the indexed `decide` (any running set) and `decide_in_flight`
    /// (a driver's own) against the reference.
    fn agree(
        r: &Rollout,
        in_flight: &InFlight,
        other: &BTreeSet<TargetId>,
    ) -> Result<(), TestCaseError> {
        let want = r.reference_decide(in_flight.targets());
        prop_assert_eq!(&r.decide(in_flight.targets()), &want);
        prop_assert_eq!(&r.decide_in_flight(in_flight), &want);
        prop_assert_eq!(r.decide(other), r.reference_decide(other));
        prop_assert_eq!(r.on_artifact(), r.ref_on_artifact());
        Ok(())
    }

    fn step(
        r: &mut Rollout,
        in_flight: &mut InFlight,
        seq: &mut u64,
        (what, pick, choice): (u8, usize, u8),
    ) {
        let names: Vec<TargetId> = r.targets.keys().cloned().collect();
        let mut apply = |r: &mut Rollout, event: Event| {
            *seq += 1;
            // Requests after the end and events for the wrong phase are
            // refused; the state must stay usable either way.
            let _ = r.apply(&EventRecord {
                seq: *seq,
                at_ms: 0,
                actor: "test".into(),
                event,
            });
        };
        let prev = |c: u8| match c % 4 {
            0 => None,
            1 => Some(artifact("v1")),
            2 => Some(artifact("v2")),
            _ => Some(artifact("v0")),
        };
        match what % 8 {
            // Do what decide says (the driver's path), several times as often.
            0..=3 => {
                let actions = r.decide_in_flight(in_flight);
                let Some(a) = actions.get(pick % actions.len().max(1)).cloned() else {
                    return;
                };
                match a {
                    Action::Record(e) => apply(r, e),
                    Action::Deploy { target, fresh } => {
                        if fresh {
                            apply(
                                r,
                                Event::DeployIntent {
                                    target: target.clone(),
                                    previous: prev(choice),
                                    note: None,
                                },
                            );
                        }
                        in_flight.start(target, true);
                    }
                    Action::Restore { target, to, fresh } => {
                        if fresh {
                            apply(
                                r,
                                Event::RestoreIntent {
                                    target: target.clone(),
                                    to,
                                },
                            );
                        }
                        in_flight.start(target, false);
                    }
                    Action::Switch { to, back } => apply(
                        r,
                        match (back, choice % 3) {
                            (_, 0) => Event::SwitchFailed {
                                reason: "router down".into(),
                            },
                            (true, _) => Event::SwitchedBack { to },
                            (false, _) => Event::Switched { to },
                        },
                    ),
                    Action::Bake { phase, .. } => apply(r, Event::BakeElapsed { phase }),
                    Action::AskGate(ctx) => {
                        let why = vec!["why".to_owned()];
                        let decision = match choice % 5 {
                            0 => Decision::Continue(why),
                            1 => Decision::Hold(why),
                            2 => Decision::Rollback(why),
                            3 => {
                                apply(
                                    r,
                                    Event::GateErrored {
                                        phase: ctx.phase,
                                        error: "down".into(),
                                    },
                                );
                                return;
                            }
                            _ => Decision::Promote(why),
                        };
                        apply(
                            r,
                            Event::GateDecided {
                                phase: ctx.phase,
                                decision,
                                evidence: None,
                            },
                        );
                    }
                    Action::Wait | Action::Stop => {}
                }
            }
            // Work in flight ends.
            4 => {
                let Some(t) = in_flight
                    .targets()
                    .iter()
                    .nth(pick % in_flight.len().max(1))
                    .cloned()
                else {
                    return;
                };
                let forward = matches!(r.targets.get(&t), Some(TargetState::Deploying));
                in_flight.finish(&t);
                let ok = choice % 3 != 0;
                apply(
                    r,
                    match (forward, ok) {
                        (true, true) => Event::TargetDeployed { target: t },
                        (true, false) => Event::TargetFailed {
                            target: t,
                            reason: "boom".into(),
                        },
                        (false, true) => Event::TargetRestored { target: t },
                        (false, false) => Event::RestoreFailed {
                            target: t,
                            reason: "stuck".into(),
                        },
                    },
                );
            }
            // A person.
            5 => apply(
                r,
                match choice % 4 {
                    0 => Event::PauseRequested,
                    1 => Event::ResumeRequested,
                    2 => Event::PromoteRequested,
                    _ => Event::AbortRequested,
                },
            ),
            // The controller dies: everything in flight is in doubt.
            6 => *in_flight = InFlight::default(),
            // Any target event, fitting or not (replayed logs of other versions).
            _ => {
                let Some(t) = names.get(pick % names.len().max(1)).cloned() else {
                    return;
                };
                in_flight.finish(&t);
                apply(
                    r,
                    match choice % 7 {
                        0 => Event::DeployIntent {
                            target: t,
                            previous: prev(choice / 7),
                            note: None,
                        },
                        1 => Event::TargetDeployed { target: t },
                        2 => Event::TargetFailed {
                            target: t,
                            reason: "x".into(),
                        },
                        3 => Event::RestoreIntent {
                            target: t,
                            to: artifact("v1"),
                        },
                        4 => Event::TargetRestored { target: t },
                        5 => Event::RestoreFailed {
                            target: t,
                            reason: "y".into(),
                        },
                        _ => Event::RestoreSkipped {
                            target: t,
                            reason: "z".into(),
                        },
                    },
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// The indexed decide answers as the walk over every target did, on
        /// random event sequences: forward, held, rolled back, resumed after
        /// a crash, with plans listing a target twice.
        #[test]
        fn indexed_decide_answers_as_the_full_walk(
            n in 1usize..12,
            kind in any::<u8>(),
            concurrency in 0usize..4,
            max_failed in 0usize..3,
            dup in any::<bool>(),
            steps in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..120),
            other in proptest::collection::vec(any::<bool>(), 12),
        ) {
            let mut r = Rollout::new(RolloutId(1), request(n, kind, concurrency, max_failed, dup));
            r.gate_attached = kind % 5 != 0;
            let mut in_flight = InFlight::default();
            let mut seq = 0;
            let names: Vec<TargetId> = r.targets.keys().cloned().collect();
            let other: BTreeSet<TargetId> = names
                .iter()
                .zip(&other)
                .filter(|(_, on)| **on)
                .map(|(t, _)| t.clone())
                .collect();
            agree(&r, &in_flight, &other)?;
            for s in steps {
                step(&mut r, &mut in_flight, &mut seq, s);
                agree(&r, &in_flight, &other)?;
            }
        }
    }
}
