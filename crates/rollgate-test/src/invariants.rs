//! The invariants every run of several controllers on one store must keep,
//! checked from what the run left behind: each rollout's event log, what
//! every target ran before and runs after, and (when the run could record
//! them) the changes made on targets and the controllers' writes, in one
//! order.
//!
//! ```
//! use std::collections::BTreeMap;
//! use rollgate_test::invariants::{Evidence, Invariant, check};
//!
//! // A run that recorded nothing keeps every invariant.
//! assert!(check(&Evidence::default()).is_empty());
//! # let _ = Invariant::Ends;
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rollgate_deploy::{
    Digest, Event, EventRecord, Outcome, Rollout, RolloutId, RolloutRequest, Status, TargetId,
};

/// One invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Invariant {
    /// Every rollout ends promoted, rolled back or held for a person, with a
    /// recorded reason.
    Ends,
    /// No target runs (or ever ran) an artifact outside its rollout's plan,
    /// and the final state matches the outcome.
    Plan,
    /// The audit history has no gaps: sequence numbers contiguous from 1,
    /// nothing after `finished`, and every change on a target preceded by
    /// its recorded intent (write-ahead).
    Audit,
    /// No two controllers acted on one rollout at once: controller writes
    /// and changes on targets never go back to an older lease (fence).
    Exclusive,
    /// Every notification was delivered at least once.
    Notified,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invariant::Ends => "every rollout ends with a reason",
            Invariant::Plan => "no target runs an artifact outside the plan",
            Invariant::Audit => "the audit history has no gaps",
            Invariant::Exclusive => "no two controllers act on one rollout at once",
            Invariant::Notified => "every notification is delivered at least once",
        })
    }
}

/// A broken invariant, with what showed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// The rollout, when one.
    pub rollout: Option<RolloutId>,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rollout {
            Some(id) => write!(f, "{} (rollout {id}): {}", self.invariant, self.detail),
            None => write!(f, "{}: {}", self.invariant, self.detail),
        }
    }
}

/// A change made on a target (a deploy call that reached it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// Position in the run's order, shared with [`Write::order`].
    pub order: u64,
    /// The rollout it was made for, when the deployer knew.
    pub rollout: Option<RolloutId>,
    /// The controller that made it.
    pub owner: String,
    /// Its fencing token, when the deployer knew.
    pub fence: Option<u64>,
    /// The target.
    pub target: TargetId,
    /// What the target runs from then on.
    pub digest: Digest,
}

/// A controller's successful append to a rollout's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Position in the run's order, shared with [`Effect::order`].
    pub order: u64,
    /// The rollout.
    pub rollout: RolloutId,
    /// The controller.
    pub owner: String,
    /// The fence it wrote under.
    pub fence: u64,
    /// The sequence numbers it got, first and last.
    pub seqs: (u64, u64),
}

/// A notification the run was expected to deliver and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The rollout.
    pub rollout: RolloutId,
    /// Its id (the same on every delivery attempt).
    pub id: String,
    /// How many times it was received.
    pub received: u32,
}

/// Everything a run left behind.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// Each rollout: its request and its whole log.
    pub rollouts: Vec<(RolloutId, RolloutRequest, Vec<EventRecord>)>,
    /// What each target ran before the run.
    pub before: BTreeMap<TargetId, Digest>,
    /// What each target runs after it.
    pub after: BTreeMap<TargetId, Digest>,
    /// Changes on targets, when recorded (in-process runs).
    pub effects: Vec<Effect>,
    /// Controller appends, when recorded (in-process runs).
    pub writes: Vec<Write>,
    /// Notifications, when the run sends any.
    pub notices: Vec<Notice>,
}

/// Checks every invariant; an empty list means all hold.
pub fn check(e: &Evidence) -> Vec<Violation> {
    let mut out = Vec::new();
    for (id, req, log) in &e.rollouts {
        let mut v = |invariant, detail: String| {
            out.push(Violation {
                invariant,
                rollout: Some(*id),
                detail,
            })
        };
        audit(log, &mut v);
        let rollout = match Rollout::replay(*id, req.clone(), log) {
            Ok(r) => r,
            Err(err) => {
                v(Invariant::Audit, format!("the log does not replay: {err}"));
                continue;
            }
        };
        ends(&rollout, log, &mut v);
        plan(&rollout, e, &mut v);
        exclusive_in_log(log, &mut v);
    }
    exclusive_across(e, &mut out);
    write_ahead(e, &mut out);
    for n in &e.notices {
        if n.received == 0 {
            out.push(Violation {
                invariant: Invariant::Notified,
                rollout: Some(n.rollout),
                detail: format!("notification {} was never delivered", n.id),
            });
        }
    }
    out
}

fn audit(log: &[EventRecord], v: &mut impl FnMut(Invariant, String)) {
    for (i, rec) in log.iter().enumerate() {
        if rec.seq != i as u64 + 1 {
            v(
                Invariant::Audit,
                format!("event {} has sequence number {}", i + 1, rec.seq),
            );
            return;
        }
    }
    if let Some(i) = log
        .iter()
        .position(|r| matches!(r.event, Event::Finished { .. }))
        && i + 1 != log.len()
    {
        v(
            Invariant::Audit,
            format!(
                "{} events after finished (seq {})",
                log.len() - i - 1,
                i + 1
            ),
        );
    }
}

fn ends(r: &Rollout, log: &[EventRecord], v: &mut impl FnMut(Invariant, String)) {
    let has = |f: &dyn Fn(&Event) -> bool| log.iter().any(|rec| f(&rec.event));
    match &r.status {
        Status::Finished(outcome) => {
            let reasoned = match outcome {
                Outcome::Succeeded => (0..r.request.plan.phases.len()).all(|p| {
                    has(&|e| matches!(e, Event::PhaseCompleted { phase, reason } if *phase == p && !reason.trim().is_empty()))
                }),
                // The reason a rollback started is what the replay of the
                // log derives (a gate verdict, repeated gate errors, failed
                // targets, an abort): recorded, as the events it comes from.
                Outcome::RolledBack => r
                    .rollback_reason
                    .as_ref()
                    .is_some_and(|x| !x.trim().is_empty()),
                Outcome::Aborted => {
                    has(&|e| matches!(e, Event::AbortRequested))
                        && r.rollback_reason.as_ref().is_some_and(|x| !x.trim().is_empty())
                }
                Outcome::RollbackFailed => {
                    r.rollback_reason.as_ref().is_some_and(|x| !x.trim().is_empty())
                        && has(&|e| match e {
                            Event::RestoreFailed { reason, .. }
                            | Event::RestoreSkipped { reason, .. }
                            | Event::SwitchFailed { reason } => !reason.trim().is_empty(),
                            _ => false,
                        })
                }
                Outcome::Refused => has(&|e| matches!(e, Event::Refused { reason, .. } if !reason.trim().is_empty())),
            };
            if !reasoned {
                v(
                    Invariant::Ends,
                    format!("finished {} without a recorded reason", outcome.as_str()),
                );
            }
        }
        Status::Held(reasons) => {
            if reasons.is_empty() || reasons.iter().any(|r| r.trim().is_empty()) {
                v(Invariant::Ends, "held without a reason".into());
            }
        }
        Status::Paused => {
            if !has(&|e| matches!(e, Event::PauseRequested)) {
                v(Invariant::Ends, "paused, but no person asked".into());
            }
        }
        Status::Running | Status::RollingBack { .. } => v(
            Invariant::Ends,
            format!(
                "did not end: {:?} in phase {} ({} events)",
                r.status,
                r.phase,
                log.len()
            ),
        ),
    }
}

fn plan(r: &Rollout, e: &Evidence, v: &mut impl FnMut(Invariant, String)) {
    let new = &r.request.artifact.digest;
    let targets: BTreeSet<&TargetId> = r.request.plan.targets().collect();
    let allowed = |t: &TargetId, d: &Digest| d == new || e.before.get(t) == Some(d);
    for fx in &e.effects {
        if targets.contains(&fx.target) && !allowed(&fx.target, &fx.digest) {
            v(
                Invariant::Plan,
                format!(
                    "{} was made to run {} by {}, outside the plan",
                    fx.target, fx.digest, fx.owner
                ),
            );
        }
    }
    let left: BTreeSet<TargetId> = r.left_on_artifact().into_iter().collect();
    for t in &targets {
        let Some(now) = e.after.get(*t) else {
            if e.before.contains_key(*t) {
                v(Invariant::Plan, format!("{t} runs nothing any more"));
            }
            continue;
        };
        if !allowed(t, now) {
            v(Invariant::Plan, format!("{t} runs {now}, outside the plan"));
            continue;
        }
        let before = e.before.get(*t);
        let expected: Option<&Digest> = match r.status {
            Status::Finished(Outcome::Succeeded) => Some(new),
            Status::Finished(Outcome::RolledBack | Outcome::Aborted | Outcome::Refused) => before,
            Status::Finished(Outcome::RollbackFailed) if !left.contains(*t) => before,
            _ => None,
        };
        if let Some(want) = expected
            && want != now
        {
            v(
                Invariant::Plan,
                format!(
                    "{t} runs {now} but the rollout ended {:?}, which means {want}",
                    r.status
                ),
            );
        }
    }
}

/// Within one log: controller epochs (from `controller_started`) have
/// rising fences (a new owner strictly), and every controller event is written by the
/// owner of the epoch it falls in.
fn exclusive_in_log(log: &[EventRecord], v: &mut impl FnMut(Invariant, String)) {
    let mut epoch: Option<(&str, u64)> = None;
    for rec in log {
        match &rec.event {
            Event::ControllerStarted { owner, fence } => {
                // The same controller may start again under the lease it
                // holds (after a failed drive); anyone else needs a newer one.
                if let Some((by, last)) = epoch
                    && (*fence < last || (*fence == last && by != owner))
                {
                    v(
                        Invariant::Exclusive,
                        format!(
                            "seq {}: {owner} started under fence {fence} after {by} held fence {last}",
                            rec.seq
                        ),
                    );
                }
                if rec.actor != *owner {
                    v(
                        Invariant::Exclusive,
                        format!(
                            "seq {}: {} recorded the start of {owner}",
                            rec.seq, rec.actor
                        ),
                    );
                }
                epoch = Some((owner, *fence));
            }
            e if e.is_request() => {}
            // A precheck refusal is written before any drive starts.
            Event::Refused { .. } | Event::Finished { .. } if epoch.is_none() => {}
            e => match epoch {
                Some((owner, fence)) if owner != rec.actor => v(
                    Invariant::Exclusive,
                    format!(
                        "seq {} ({}): written by {} while {owner} drove under fence {fence}",
                        rec.seq,
                        e.action(),
                        rec.actor
                    ),
                ),
                None => v(
                    Invariant::Exclusive,
                    format!(
                        "seq {} ({}): written by {} before any controller started",
                        rec.seq,
                        e.action(),
                        rec.actor
                    ),
                ),
                _ => {}
            },
        }
    }
}

/// Across writes and changes on targets, in the run's order: per rollout
/// the fence never goes back, every change carries the fence of a
/// controller that drove the rollout, and under the owner that held it.
fn exclusive_across(e: &Evidence, out: &mut Vec<Violation>) {
    let owners: BTreeMap<(RolloutId, u64), &str> = e
        .rollouts
        .iter()
        .flat_map(|(id, _, log)| {
            log.iter().filter_map(move |r| match &r.event {
                Event::ControllerStarted { owner, fence } => Some(((*id, *fence), owner.as_str())),
                _ => None,
            })
        })
        .collect();
    // (order, fence, who, what)
    let mut seen: BTreeMap<RolloutId, Vec<(u64, u64, &str, String)>> = BTreeMap::new();
    for w in &e.writes {
        seen.entry(w.rollout).or_default().push((
            w.order,
            w.fence,
            &w.owner,
            format!("wrote seq {}..={}", w.seqs.0, w.seqs.1),
        ));
    }
    for fx in &e.effects {
        let (Some(id), Some(fence)) = (fx.rollout, fx.fence) else {
            out.push(Violation {
                invariant: Invariant::Exclusive,
                rollout: fx.rollout,
                detail: format!(
                    "{} changed {} outside a driven rollout (no lease)",
                    fx.owner, fx.target
                ),
            });
            continue;
        };
        match owners.get(&(id, fence)) {
            Some(o) if *o == fx.owner => {}
            other => out.push(Violation {
                invariant: Invariant::Exclusive,
                rollout: Some(id),
                detail: format!(
                    "{} changed {} under fence {fence}, which the log gives to {}",
                    fx.owner,
                    fx.target,
                    other.copied().unwrap_or("no controller")
                ),
            }),
        }
        seen.entry(id).or_default().push((
            fx.order,
            fence,
            &fx.owner,
            format!("deployed {} on {}", fx.digest, fx.target),
        ));
    }
    for (id, mut acts) in seen {
        acts.sort_by_key(|a| a.0);
        let mut newest: Option<(u64, &str, &str)> = None;
        for (_, fence, who, what) in &acts {
            if let Some((f, by, did)) = newest
                && *fence < f
            {
                out.push(Violation {
                    invariant: Invariant::Exclusive,
                    rollout: Some(id),
                    detail: format!(
                        "{who} {what} under fence {fence} after {by} {did} under fence {f}"
                    ),
                });
                break;
            }
            if newest.is_none_or(|(f, ..)| *fence > f) {
                newest = Some((*fence, who, what));
            }
        }
    }
}

/// Every change on a target follows its recorded intent in the run's
/// order: a deploy of the rollout's artifact follows a `deploy_intent` for
/// that target, a return to another artifact a `restore_intent` to it.
fn write_ahead(e: &Evidence, out: &mut Vec<Violation>) {
    if e.writes.is_empty() {
        return;
    }
    for fx in &e.effects {
        let Some(id) = fx.rollout else { continue };
        let Some((_, req, log)) = e.rollouts.iter().find(|(r, ..)| *r == id) else {
            continue;
        };
        let intent_seqs: Vec<u64> = log
            .iter()
            .filter(|r| match &r.event {
                Event::DeployIntent { target, .. } => {
                    *target == fx.target && fx.digest == req.artifact.digest
                }
                Event::RestoreIntent { target, to } => {
                    *target == fx.target && to.digest == fx.digest
                }
                _ => false,
            })
            .map(|r| r.seq)
            .collect();
        let recorded_before = e.writes.iter().any(|w| {
            w.rollout == id
                && w.order < fx.order
                && intent_seqs
                    .iter()
                    .any(|s| (w.seqs.0..=w.seqs.1).contains(s))
        });
        if !recorded_before {
            out.push(Violation {
                invariant: Invariant::Audit,
                rollout: Some(id),
                detail: format!(
                    "{} deployed {} on {} with no intent recorded before",
                    fx.owner, fx.digest, fx.target
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollgate_deploy::{PhaseDefaults, Strategy};

    fn t(n: &str) -> TargetId {
        TargetId::try_from(n.to_string()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn rec(seq: u64, actor: &str, event: Event) -> EventRecord {
        EventRecord {
            seq,
            at_ms: 0,
            actor: actor.into(),
            event,
        }
    }

    /// A one-target rollout of v2 over v1 that succeeded under c1, the
    /// change it made and its writes.
    fn good() -> Evidence {
        let (v1, v2) = (crate::artifact("v1"), crate::artifact("v2"));
        let plan = Strategy::AllAtOnce
            .compile(&[t("a")], &PhaseDefaults::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let req = RolloutRequest::new("web", v2.clone(), plan, "alice");
        let log = vec![
            rec(
                1,
                "c1",
                Event::ControllerStarted {
                    owner: "c1".into(),
                    fence: 1,
                },
            ),
            rec(
                2,
                "c1",
                Event::DeployIntent {
                    target: t("a"),
                    previous: Some(v1.clone()),
                    note: None,
                },
            ),
            rec(3, "c1", Event::TargetDeployed { target: t("a") }),
            rec(
                4,
                "c1",
                Event::PhaseCompleted {
                    phase: 0,
                    reason: "no gate".into(),
                },
            ),
            rec(
                5,
                "c1",
                Event::Finished {
                    outcome: Outcome::Succeeded,
                },
            ),
        ];
        let id = RolloutId(1);
        let w = |order, seqs| Write {
            order,
            rollout: id,
            owner: "c1".into(),
            fence: 1,
            seqs,
        };
        Evidence {
            rollouts: vec![(id, req, log)],
            before: [(t("a"), v1.digest.clone())].into(),
            after: [(t("a"), v2.digest.clone())].into(),
            effects: vec![Effect {
                order: 3,
                rollout: Some(id),
                owner: "c1".into(),
                fence: Some(1),
                target: t("a"),
                digest: v2.digest,
            }],
            writes: vec![w(1, (1, 1)), w(2, (2, 2)), w(4, (3, 5))],
            notices: Vec::new(),
        }
    }

    fn broken(e: &Evidence) -> Vec<Invariant> {
        check(e).into_iter().map(|v| v.invariant).collect()
    }

    #[test]
    fn a_clean_run_keeps_every_invariant() {
        assert_eq!(check(&good()), vec![]);
    }

    #[test]
    fn an_unfinished_rollout_breaks_ends() {
        let mut e = good();
        e.rollouts[0].2.truncate(3);
        assert_eq!(broken(&e), vec![Invariant::Ends]);
    }

    #[test]
    fn a_gap_in_the_log_breaks_audit() {
        let mut e = good();
        e.rollouts[0].2[2].seq = 4;
        assert!(broken(&e).contains(&Invariant::Audit));
    }

    #[test]
    fn a_foreign_artifact_breaks_plan() {
        let mut e = good();
        e.after.insert(t("a"), crate::artifact("v9").digest);
        assert_eq!(broken(&e), vec![Invariant::Plan]);
    }

    #[test]
    fn a_change_before_its_intent_breaks_audit() {
        let mut e = good();
        e.effects[0].order = 0;
        assert_eq!(broken(&e), vec![Invariant::Audit]);
    }

    #[test]
    fn an_older_fence_acting_after_a_newer_one_breaks_exclusive() {
        let mut e = good();
        e.writes.push(Write {
            order: 2,
            rollout: RolloutId(1),
            owner: "c2".into(),
            fence: 2,
            seqs: (2, 2),
        });
        e.effects[0].order = 3;
        assert!(broken(&e).contains(&Invariant::Exclusive));
    }

    #[test]
    fn another_owner_writing_in_an_epoch_breaks_exclusive() {
        let mut e = good();
        e.rollouts[0].2[2].actor = "c2".into();
        assert_eq!(broken(&e), vec![Invariant::Exclusive]);
    }

    #[test]
    fn an_undelivered_notification_breaks_notified() {
        let mut e = good();
        e.notices.push(Notice {
            rollout: RolloutId(1),
            id: "n1".into(),
            received: 0,
        });
        assert_eq!(broken(&e), vec![Invariant::Notified]);
    }
}
