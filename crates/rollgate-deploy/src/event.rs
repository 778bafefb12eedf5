//! Events: the durable log a rollout is made of.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Artifact, Decision, GateEvidence, Plan, TargetId};

/// How a finished rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every phase passed; every target runs the artifact.
    Succeeded,
    /// A gate, a failed traffic switch or the failure limit rolled the
    /// rollout back, and every touched target runs what it ran before (it
    /// was restored, or it already ran the artifact before the rollout).
    RolledBack,
    /// A person aborted it, and every touched target runs what it ran before.
    Aborted,
    /// A precheck (a policy gate run before anything changes) refused the
    /// rollout: no target was touched.
    Refused,
    /// Rolling back (after a gate, a failure or an abort) left some touched
    /// target on the new artifact: its restore failed, or nothing was known
    /// to restore it to. [`Rollout::left_on_artifact`](crate::Rollout::left_on_artifact)
    /// names them.
    RollbackFailed,
}

impl Outcome {
    /// Every outcome.
    pub const ALL: [Outcome; 5] = [
        Outcome::Succeeded,
        Outcome::RolledBack,
        Outcome::Aborted,
        Outcome::Refused,
        Outcome::RollbackFailed,
    ];

    /// The outcome's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Aborted => "aborted",
            Outcome::RollbackFailed => "rollback_failed",
            Outcome::Refused => "refused",
        }
    }
}

/// One fact in a rollout's log. Controllers append the first group under a
/// fence; people append the `*Requested` group from any process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A controller took the lease and started (or resumed) driving.
    ControllerStarted {
        /// Who drives.
        owner: String,
        /// The fence it holds.
        fence: u64,
    },
    /// About to deploy the rollout's artifact on `target`.
    DeployIntent {
        /// The target.
        target: TargetId,
        /// What it ran before, when known: where a rollback returns it.
        /// When the target could not say, the request's `previous` (if any).
        previous: Option<Artifact>,
        /// Why the target could not say what it ran (then `previous` is the
        /// request's, or unknown), so the audit shows what was seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The controller was asked to stop (a signal, a shutdown) and left the
    /// rollout unfinished at a safe point; whoever resumes it goes on from
    /// here. The record's actor is the controller that stopped.
    Interrupted {
        /// Why it stopped (`SIGINT`, `SIGTERM`, ...), and for whom.
        reason: String,
    },
    /// A precheck refused the rollout before anything changed.
    Refused {
        /// The precheck.
        check: String,
        /// What it said (its standard output).
        reason: String,
    },
    /// A deploy attempt failed and will be retried.
    DeployRetried {
        /// The target.
        target: TargetId,
        /// The attempt that failed (1-based).
        attempt: u32,
        /// What failed.
        error: String,
    },
    /// `target` runs the artifact and is ready.
    TargetDeployed {
        /// The target.
        target: TargetId,
    },
    /// `target` could not be deployed or never became ready.
    TargetFailed {
        /// The target.
        target: TargetId,
        /// Why.
        reason: String,
    },
    /// About to move traffic to the new set (blue-green). From here on a
    /// rollback switches back, whether or not the switch was confirmed.
    SwitchIntent {
        /// The set about to serve.
        to: Vec<TargetId>,
    },
    /// Traffic moved to the new set (blue-green).
    Switched {
        /// The set now serving.
        to: Vec<TargetId>,
    },
    /// The traffic switch failed.
    SwitchFailed {
        /// Why.
        reason: String,
    },
    /// The phase's targets are done; baking starts.
    BakeStarted {
        /// The phase's index (0-based; texts for people say `phase` + 1).
        phase: usize,
        /// How long it bakes.
        #[serde(with = "humantime_serde")]
        bake: Duration,
    },
    /// The bake time passed.
    BakeElapsed {
        /// The phase.
        phase: usize,
    },
    /// The gate decided.
    GateDecided {
        /// The phase.
        phase: usize,
        /// The verdict and its reasons.
        decision: Decision,
        /// What the gate measured, when it says (a canary gate: per metric
        /// both cohorts' summaries, the result and the bound). Absent in
        /// logs written before it was recorded, and for command gates.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<Box<GateEvidence>>,
    },
    /// The gate could not decide.
    GateErrored {
        /// The phase.
        phase: usize,
        /// The error.
        error: String,
    },
    /// The phase is done; the next one starts.
    PhaseCompleted {
        /// The phase.
        phase: usize,
        /// Why it completed (gate promote, no gate, a person promoted).
        reason: String,
    },
    /// Rolling back starts.
    RollbackStarted {
        /// Why.
        reason: String,
    },
    /// Traffic moved back to the old set (blue-green rollback).
    SwitchedBack {
        /// The set now serving.
        to: Vec<TargetId>,
    },
    /// About to return `target` to `to`.
    RestoreIntent {
        /// The target.
        target: TargetId,
        /// The artifact it returns to.
        to: Artifact,
    },
    /// `target` runs its previous artifact again.
    TargetRestored {
        /// The target.
        target: TargetId,
    },
    /// `target` could not be returned to its previous artifact.
    RestoreFailed {
        /// The target.
        target: TargetId,
        /// Why.
        reason: String,
    },
    /// `target` has no known previous artifact to return to.
    RestoreSkipped {
        /// The target.
        target: TargetId,
        /// Why.
        reason: String,
    },
    /// The rollout ended.
    Finished {
        /// How.
        outcome: Outcome,
    },
    /// A person asked to pause.
    PauseRequested,
    /// A person asked to resume (or to ask a holding gate again).
    ResumeRequested,
    /// A person asked to complete the current phase now (skip bake and gate).
    PromoteRequested,
    /// A person asked to abort: roll back.
    AbortRequested,
}

impl Event {
    /// Whether people (not controllers) append this event.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Event::PauseRequested
                | Event::ResumeRequested
                | Event::PromoteRequested
                | Event::AbortRequested
        )
    }

    /// Every event's name ([`action`](Self::action)), in declaration order.
    pub const ACTIONS: [&'static str; 26] = [
        "controller_started",
        "deploy_intent",
        "interrupted",
        "refused",
        "deploy_retried",
        "target_deployed",
        "target_failed",
        "switch_intent",
        "switched",
        "switch_failed",
        "bake_started",
        "bake_elapsed",
        "gate_decided",
        "gate_errored",
        "phase_completed",
        "rollback_started",
        "switched_back",
        "restore_intent",
        "target_restored",
        "restore_failed",
        "restore_skipped",
        "finished",
        "pause_requested",
        "resume_requested",
        "promote_requested",
        "abort_requested",
    ];

    /// The event's name, as stored (`deploy_intent`, `gate_decided`, ...).
    pub fn action(&self) -> &'static str {
        match self {
            Event::ControllerStarted { .. } => "controller_started",
            Event::Interrupted { .. } => "interrupted",
            Event::Refused { .. } => "refused",
            Event::DeployIntent { .. } => "deploy_intent",
            Event::DeployRetried { .. } => "deploy_retried",
            Event::TargetDeployed { .. } => "target_deployed",
            Event::TargetFailed { .. } => "target_failed",
            Event::SwitchIntent { .. } => "switch_intent",
            Event::Switched { .. } => "switched",
            Event::SwitchFailed { .. } => "switch_failed",
            Event::BakeStarted { .. } => "bake_started",
            Event::BakeElapsed { .. } => "bake_elapsed",
            Event::GateDecided { .. } => "gate_decided",
            Event::GateErrored { .. } => "gate_errored",
            Event::PhaseCompleted { .. } => "phase_completed",
            Event::RollbackStarted { .. } => "rollback_started",
            Event::SwitchedBack { .. } => "switched_back",
            Event::RestoreIntent { .. } => "restore_intent",
            Event::TargetRestored { .. } => "target_restored",
            Event::RestoreFailed { .. } => "restore_failed",
            Event::RestoreSkipped { .. } => "restore_skipped",
            Event::Finished { .. } => "finished",
            Event::PauseRequested => "pause_requested",
            Event::ResumeRequested => "resume_requested",
            Event::PromoteRequested => "promote_requested",
            Event::AbortRequested => "abort_requested",
        }
    }

    /// The target the event is about, if one.
    pub fn target(&self) -> Option<&TargetId> {
        match self {
            Event::DeployIntent { target, .. }
            | Event::DeployRetried { target, .. }
            | Event::TargetDeployed { target }
            | Event::TargetFailed { target, .. }
            | Event::RestoreIntent { target, .. }
            | Event::TargetRestored { target }
            | Event::RestoreFailed { target, .. }
            | Event::RestoreSkipped { target, .. } => Some(target),
            _ => None,
        }
    }

    /// A short outcome text for audit listings.
    pub fn outcome_text(&self) -> String {
        match self {
            Event::ControllerStarted { owner, fence } => {
                format!("driven by {owner} (fence {fence})")
            }
            Event::DeployIntent { previous, note, .. } => match (previous, note) {
                (Some(p), Some(n)) => format!("from {p}, assumed from the plan: {n}"),
                (Some(p), None) => format!("from {p}"),
                (None, Some(n)) => format!("previous unknown: {n}"),
                (None, None) => "target ran nothing".into(),
            },
            Event::Interrupted { reason } => format!("stopped: {reason}"),
            Event::Refused { check, reason } => format!("precheck {check}: {reason}"),
            Event::DeployRetried { attempt, error, .. } => {
                format!("attempt {attempt} failed: {error}")
            }
            Event::TargetDeployed { .. } | Event::TargetRestored { .. } => "ok".into(),
            Event::TargetFailed { reason, .. }
            | Event::RestoreFailed { reason, .. }
            | Event::RestoreSkipped { reason, .. }
            | Event::SwitchFailed { reason }
            | Event::RollbackStarted { reason } => reason.clone(),
            Event::SwitchIntent { to } | Event::Switched { to } | Event::SwitchedBack { to } => {
                to.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(",")
            }
            // People count phases from 1; the stored index stays 0-based.
            Event::BakeStarted { phase, bake } => {
                format!("phase {}, {}", phase + 1, humantime::format_duration(*bake))
            }
            Event::BakeElapsed { phase } => format!("phase {}", phase + 1),
            Event::GateDecided {
                phase, decision, ..
            } => {
                format!(
                    "phase {}: {}: {}",
                    phase + 1,
                    decision.kind(),
                    decision.reasons().join("; ")
                )
            }
            Event::GateErrored { phase, error } => format!("phase {}: {error}", phase + 1),
            Event::PhaseCompleted { phase, reason } => format!("phase {}: {reason}", phase + 1),
            Event::RestoreIntent { to, .. } => format!("to {to}"),
            Event::Finished { outcome } => outcome.as_str().into(),
            Event::PauseRequested
            | Event::ResumeRequested
            | Event::PromoteRequested
            | Event::AbortRequested => "requested".into(),
        }
    }
}

/// An event as stored: numbered, stamped and attributed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Position in the rollout's log, from 1.
    pub seq: u64,
    /// Wall-clock time of the write, milliseconds since the Unix epoch (audit only).
    pub at_ms: i64,
    /// Who wrote it: a controller owner or a person.
    pub actor: String,
    /// The event.
    pub event: Event,
}

/// How a gate's answers are bounded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GatePolicy {
    /// Consecutive gate errors after which the rollout rolls back.
    pub max_errors: u32,
    /// `continue` verdicts in one phase after which the rollout holds for a person.
    pub max_continues: u32,
    /// Wait before asking again after an error.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    /// Wait before asking again after a `continue` (zero: the phase's bake time).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for GatePolicy {
    fn default() -> Self {
        Self {
            max_errors: 3,
            max_continues: 10,
            retry_after: Duration::from_secs(5),
            interval: Duration::ZERO,
        }
    }
}

/// What a caller asks for: put `artifact` on the plan's targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RolloutRequest {
    /// The service.
    pub service: String,
    /// The artifact to roll out.
    pub artifact: Artifact,
    /// The artifact it replaces, when the caller knows it; used when a
    /// target's current artifact cannot be read.
    #[serde(default)]
    pub previous: Option<Artifact>,
    /// The compiled plan.
    pub plan: Plan,
    /// Limits on gate answers.
    #[serde(default)]
    pub gate_policy: GatePolicy,
    /// Who asked.
    pub actor: String,
    /// Same key, same rollout: a retried request returns the existing one.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Artifacts the caller vouches for by version and digest (a plan's
    /// `[[known]]` list): a target found running one of them can be restored
    /// to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub known: Vec<Artifact>,
    /// A deliberate one-way deploy: start even when some target could not
    /// be restored by a rollback (it runs an unknown artifact, or nothing).
    /// Such a rollout that rolls back ends `rollback_failed`, naming them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_rollback_ok: bool,
    /// Opaque data for the caller (the CLI keeps its plan file here, to
    /// rebuild deployer and gate when it resumes the rollout elsewhere).
    #[serde(default)]
    pub spec: Option<serde_json::Value>,
    /// Where notifications of this rollout go. Stores write an outbox row
    /// per matching destination with the event that causes it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<crate::Destination>,
}

impl RolloutRequest {
    /// A request with default gate policy and no idempotency key.
    pub fn new(
        service: impl Into<String>,
        artifact: Artifact,
        plan: Plan,
        actor: impl Into<String>,
    ) -> Self {
        Self {
            service: service.into(),
            artifact,
            previous: None,
            plan,
            gate_policy: GatePolicy::default(),
            actor: actor.into(),
            idempotency_key: None,
            known: Vec::new(),
            no_rollback_ok: false,
            spec: None,
            notify: Vec::new(),
        }
    }

    /// Adds artifacts the caller vouches for, so targets running them can be
    /// restored.
    pub fn with_known(mut self, known: impl IntoIterator<Item = Artifact>) -> Self {
        self.known.extend(known);
        self
    }

    /// Allows (or not) a one-way deploy: see [`RolloutRequest::no_rollback_ok`].
    pub fn with_no_rollback_ok(mut self, ok: bool) -> Self {
        self.no_rollback_ok = ok;
        self
    }

    /// The artifact with this digest among the request's own (`artifact`,
    /// `previous`, `known`).
    pub fn declared(&self, digest: &crate::Digest) -> Option<&Artifact> {
        std::iter::once(&self.artifact)
            .chain(self.previous.iter())
            .chain(self.known.iter())
            .find(|a| &a.digest == digest)
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the artifact being replaced.
    pub fn with_previous(mut self, previous: Artifact) -> Self {
        self.previous = Some(previous);
        self
    }

    /// Sets the gate policy.
    pub fn with_gate_policy(mut self, policy: GatePolicy) -> Self {
        self.gate_policy = policy;
        self
    }

    /// Adds notification destinations.
    pub fn with_notify(mut self, to: impl IntoIterator<Item = crate::Destination>) -> Self {
        self.notify.extend(to);
        self
    }

    /// Sets the opaque caller data.
    pub fn with_spec(mut self, spec: serde_json::Value) -> Self {
        self.spec = Some(spec);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Digest, Reasons};

    /// One event of each kind: adding a variant breaks this match, and the
    /// test then asks for its name in [`Event::ACTIONS`].
    fn one_of_each() -> Vec<Event> {
        let t: TargetId = "web-1".parse().expect("target");
        let a = Artifact::new("v1", Digest::of_bytes(b"v1"));
        let s = String::new;
        let events = vec![
            Event::ControllerStarted {
                owner: s(),
                fence: 1,
            },
            Event::DeployIntent {
                target: t.clone(),
                previous: None,
                note: None,
            },
            Event::Interrupted { reason: s() },
            Event::Refused {
                check: s(),
                reason: s(),
            },
            Event::DeployRetried {
                target: t.clone(),
                attempt: 1,
                error: s(),
            },
            Event::TargetDeployed { target: t.clone() },
            Event::TargetFailed {
                target: t.clone(),
                reason: s(),
            },
            Event::SwitchIntent { to: vec![] },
            Event::Switched { to: vec![] },
            Event::SwitchFailed { reason: s() },
            Event::BakeStarted {
                phase: 0,
                bake: Duration::ZERO,
            },
            Event::BakeElapsed { phase: 0 },
            Event::GateDecided {
                phase: 0,
                decision: Decision::Hold(Reasons::new()),
                evidence: None,
            },
            Event::GateErrored {
                phase: 0,
                error: s(),
            },
            Event::PhaseCompleted {
                phase: 0,
                reason: s(),
            },
            Event::RollbackStarted { reason: s() },
            Event::SwitchedBack { to: vec![] },
            Event::RestoreIntent {
                target: t.clone(),
                to: a,
            },
            Event::TargetRestored { target: t.clone() },
            Event::RestoreFailed {
                target: t.clone(),
                reason: s(),
            },
            Event::RestoreSkipped {
                target: t,
                reason: s(),
            },
            Event::Finished {
                outcome: Outcome::Succeeded,
            },
            Event::PauseRequested,
            Event::ResumeRequested,
            Event::PromoteRequested,
            Event::AbortRequested,
        ];
        for e in &events {
            // Exhaustive on purpose: a new variant must be added above.
            match e {
                Event::ControllerStarted { .. }
                | Event::DeployIntent { .. }
                | Event::Interrupted { .. }
                | Event::Refused { .. }
                | Event::DeployRetried { .. }
                | Event::TargetDeployed { .. }
                | Event::TargetFailed { .. }
                | Event::SwitchIntent { .. }
                | Event::Switched { .. }
                | Event::SwitchFailed { .. }
                | Event::BakeStarted { .. }
                | Event::BakeElapsed { .. }
                | Event::GateDecided { .. }
                | Event::GateErrored { .. }
                | Event::PhaseCompleted { .. }
                | Event::RollbackStarted { .. }
                | Event::SwitchedBack { .. }
                | Event::RestoreIntent { .. }
                | Event::TargetRestored { .. }
                | Event::RestoreFailed { .. }
                | Event::RestoreSkipped { .. }
                | Event::Finished { .. }
                | Event::PauseRequested
                | Event::ResumeRequested
                | Event::PromoteRequested
                | Event::AbortRequested => {}
            }
        }
        events
    }

    #[test]
    fn actions_lists_every_event_name_in_order() {
        let names: Vec<&str> = one_of_each().iter().map(Event::action).collect();
        assert_eq!(names, Event::ACTIONS);
    }

    #[test]
    fn outcome_all_and_decision_kinds_are_complete() {
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            [
                "succeeded",
                "rolled_back",
                "aborted",
                "refused",
                "rollback_failed"
            ]
        );
        let r = Reasons::new;
        let kinds: Vec<&str> = [
            Decision::Promote(r()),
            Decision::Continue(r()),
            Decision::Hold(r()),
            Decision::Rollback(r()),
        ]
        .iter()
        .map(Decision::kind)
        .collect();
        assert_eq!(kinds, Decision::KINDS);
    }

    #[test]
    fn gate_decisions_logged_before_evidence_still_load() {
        let old = r#"{"type":"gate_decided","phase":1,"decision":{"decision":"promote","reasons":["ok"]}}"#;
        let e: Event = serde_json::from_str(old).expect("an old gate_decided loads");
        assert_eq!(
            e,
            Event::GateDecided {
                phase: 1,
                decision: Decision::Promote(vec!["ok".into()]),
                evidence: None,
            }
        );
        // And is written back the same way: no `evidence` key.
        assert_eq!(serde_json::to_string(&e).expect("serializes"), old);
    }
}
