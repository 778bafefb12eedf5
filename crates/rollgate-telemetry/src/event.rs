//! `DeployEvent`: what happens during a rollout, emitted at once as a log
//! line, a metric and a span event, so a rollout reads as one trace.

use serde::Serialize;
use tracing::Span;

/// Counter of deploy events, by `event` and (for verdicts) `verdict`.
pub const DEPLOY_EVENTS_TOTAL: &str = "rollgate_deploy_events_total";

/// The `tracing` target of deploy events (filter on it, e.g. `rollgate::deploy=info`).
pub const DEPLOY_TARGET: &str = "rollgate::deploy";

/// The decision of a gate at a rollout step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateOutcome {
    /// Skip the remaining steps and finish.
    Promote,
    /// Go on to the next step.
    Continue,
    /// Stay at this step and ask again.
    Hold,
    /// Undo the rollout.
    Rollback,
}

impl GateOutcome {
    /// Lowercase name used as label and field value.
    pub fn as_str(self) -> &'static str {
        match self {
            GateOutcome::Promote => "promote",
            GateOutcome::Continue => "continue",
            GateOutcome::Hold => "hold",
            GateOutcome::Rollback => "rollback",
        }
    }
}

/// A typed rollout event.
///
/// ```
/// use rollgate_telemetry::{DeployEvent, GateOutcome};
///
/// let span = DeployEvent::rollout_span("r-42");
/// let _enter = span.enter();
/// DeployEvent::RolloutStarted { rollout_id: "r-42".into(), artifact: "sha256:ab12".into(),
///     strategy: "canary".into(), targets: 4 }.emit();
/// DeployEvent::GateVerdict { rollout_id: "r-42".into(), step: 1,
///     outcome: GateOutcome::Continue, reason: "p99 within bounds".into() }.emit();
/// assert_eq!(DeployEvent::Promoted { rollout_id: "r-42".into() }.kind(), "promoted");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeployEvent {
    /// A rollout began.
    RolloutStarted {
        /// Rollout id.
        rollout_id: String,
        /// Artifact (digest) being rolled out.
        artifact: String,
        /// Strategy name (`canary`, `rolling`, ...).
        strategy: String,
        /// Number of targets in the plan.
        targets: u64,
    },
    /// A step (phase) of the plan began.
    Step {
        /// Rollout id.
        rollout_id: String,
        /// Step index, from 0.
        step: u32,
        /// Traffic weight of the new version at this step, in percent.
        weight_percent: f64,
        /// Targets deployed at this step.
        targets: u64,
    },
    /// A gate decided.
    GateVerdict {
        /// Rollout id.
        rollout_id: String,
        /// Step the verdict is for.
        step: u32,
        /// The decision.
        outcome: GateOutcome,
        /// Why, in a few words.
        reason: String,
    },
    /// The rollout was undone.
    RolledBack {
        /// Rollout id.
        rollout_id: String,
        /// Why.
        reason: String,
    },
    /// The rollout finished with the new version everywhere.
    Promoted {
        /// Rollout id.
        rollout_id: String,
    },
    /// Running configuration differs from the declared one.
    DriftFound {
        /// What was compared (a target, a file, a resource).
        subject: String,
        /// Number of differences found.
        differences: u64,
    },
}

impl DeployEvent {
    /// The event name: `rollout_started`, `step`, `gate_verdict`,
    /// `rolled_back`, `promoted`, `drift_found`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeployEvent::RolloutStarted { .. } => "rollout_started",
            DeployEvent::Step { .. } => "step",
            DeployEvent::GateVerdict { .. } => "gate_verdict",
            DeployEvent::RolledBack { .. } => "rolled_back",
            DeployEvent::Promoted { .. } => "promoted",
            DeployEvent::DriftFound { .. } => "drift_found",
        }
    }

    /// The span a rollout's events belong to; enter it (or make it the
    /// parent of the driver's work) so all events share one trace.
    pub fn rollout_span(rollout_id: &str) -> Span {
        tracing::info_span!(target: DEPLOY_TARGET, "rollout", rollout_id = %rollout_id)
    }

    /// Emits the event: a `tracing` event on target `rollgate::deploy`
    /// (a log line, and a span event of the current span for trace
    /// exporters) and an increment of [`DEPLOY_EVENTS_TOTAL`]. Metric labels
    /// are bounded (`event`, `verdict`); ids go to the log line only.
    pub fn emit(&self) {
        let kind = self.kind();
        match self {
            DeployEvent::GateVerdict { outcome, .. } => {
                metrics::counter!(DEPLOY_EVENTS_TOTAL, "event" => kind, "verdict" => outcome.as_str())
                    .increment(1);
            }
            _ => metrics::counter!(DEPLOY_EVENTS_TOTAL, "event" => kind).increment(1),
        }
        match self {
            DeployEvent::RolloutStarted {
                rollout_id,
                artifact,
                strategy,
                targets,
            } => tracing::info!(
                target: DEPLOY_TARGET,
                event = kind,
                rollout_id = %rollout_id,
                artifact = %artifact,
                strategy = %strategy,
                targets = *targets,
                "rollout started"
            ),
            DeployEvent::Step {
                rollout_id,
                step,
                weight_percent,
                targets,
            } => tracing::info!(
                target: DEPLOY_TARGET,
                event = kind,
                rollout_id = %rollout_id,
                step = *step,
                weight_percent = *weight_percent,
                targets = *targets,
                "rollout step"
            ),
            DeployEvent::GateVerdict {
                rollout_id,
                step,
                outcome,
                reason,
            } => {
                if *outcome == GateOutcome::Rollback {
                    tracing::warn!(target: DEPLOY_TARGET, event = kind, rollout_id = %rollout_id,
                        step = *step, verdict = outcome.as_str(), reason = %reason, "gate verdict");
                } else {
                    tracing::info!(target: DEPLOY_TARGET, event = kind, rollout_id = %rollout_id,
                        step = *step, verdict = outcome.as_str(), reason = %reason, "gate verdict");
                }
            }
            DeployEvent::RolledBack { rollout_id, reason } => tracing::warn!(
                target: DEPLOY_TARGET,
                event = kind,
                rollout_id = %rollout_id,
                reason = %reason,
                "rolled back"
            ),
            DeployEvent::Promoted { rollout_id } => tracing::info!(
                target: DEPLOY_TARGET,
                event = kind,
                rollout_id = %rollout_id,
                "promoted"
            ),
            DeployEvent::DriftFound {
                subject,
                differences,
            } => tracing::warn!(
                target: DEPLOY_TARGET,
                event = kind,
                subject = %subject,
                differences = *differences,
                "drift found"
            ),
        }
    }
}
