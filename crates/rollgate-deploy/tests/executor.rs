//! The executor end to end, on paused time, with the test kit's fakes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use rollgate_deploy::*;
use rollgate_test::{FakeDeployer, Fault, ScriptedGate, artifact, targets};

fn pct(p: f64) -> Percent {
    Percent::new(p).unwrap()
}

struct World {
    store: Arc<MemoryStore>,
    deployer: FakeDeployer,
    v1: Artifact,
    v2: Artifact,
    targets: Vec<TargetId>,
}

fn world(n: usize) -> World {
    let t = targets(n);
    let v1 = artifact("v1");
    World {
        store: Arc::new(MemoryStore::new()),
        deployer: FakeDeployer::new().with_running(&t, &v1),
        v1,
        v2: artifact("v2"),
        targets: t,
    }
}

impl World {
    /// v1 came from an earlier rollout, so the artifact registry knows it.
    async fn registered(self) -> Self {
        self.store.register_artifact(&self.v1).await.unwrap();
        self
    }

    fn exec(&self, gate: Option<ScriptedGate>) -> Executor {
        let mut e = Executor::new(self.store.clone(), Arc::new(self.deployer.clone())).with_config(
            ExecutorConfig::default()
                .with_owner("ctl-1")
                .with_readiness(Duration::from_secs(30), Duration::from_secs(1)),
        );
        if let Some(g) = gate {
            e = e.with_gate(Arc::new(g));
        }
        e
    }

    fn request(&self, strategy: Strategy, defaults: PhaseDefaults) -> RolloutRequest {
        let plan = strategy.compile(&self.targets, &defaults).unwrap();
        RolloutRequest::new("web", self.v2.clone(), plan, "alice")
    }

    fn versions(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|t| self.deployer.version_of(t).unwrap_or_default())
            .collect()
    }
}

/// Drives rollout `id` in the background, as another process would.
fn spawn_run(exec: &Executor, id: RolloutId) -> tokio::task::JoinHandle<Result<Report, Error>> {
    let exec = exec.clone();
    tokio::spawn(async move { exec.run(id).await })
}

fn canary() -> Strategy {
    Strategy::Canary {
        steps: vec![pct(10.0), pct(50.0), Percent::FULL],
    }
}

#[tokio::test(start_paused = true)]
async fn canary_promotes_through_every_step() {
    let w = world(10).registered().await;
    let gate = ScriptedGate::new();
    let report = w
        .exec(Some(gate.clone()))
        .submit(
            w.request(
                canary(),
                PhaseDefaults::default()
                    .with_bake(Duration::from_secs(300))
                    .with_gate(true),
            ),
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert!(w.versions().iter().all(|v| v == "v2"));
    assert_eq!(gate.calls(), 3);
    assert_eq!(
        w.deployer.deploy_log().len(),
        10,
        "each target deployed exactly once"
    );
}

#[tokio::test(start_paused = true)]
async fn gate_rollback_at_ten_percent_restores_touched_and_never_touches_the_rest() {
    let w = world(10).registered().await;
    let gate = ScriptedGate::new().at(0, Decision::Rollback(vec!["p99 620ms > 500ms".into()]));
    let report = w
        .exec(Some(gate))
        .submit(
            w.request(
                canary(),
                PhaseDefaults::default()
                    .with_bake(Duration::from_secs(60))
                    .with_gate(true),
            ),
        )
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    assert!(w.versions().iter().all(|v| v == "v1"), "{:?}", w.versions());
    let touched: BTreeSet<_> = w
        .deployer
        .deploy_log()
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        touched,
        BTreeSet::from([w.targets[0].clone()]),
        "only the 10% canary was ever deployed"
    );
    assert_eq!(
        w.deployer.deploy_log().len(),
        2,
        "one deploy forward, one back"
    );
    let status = format!("{:?}", report.rollout.status);
    assert!(status.contains("RolledBack"), "{status}");
    let log = w.store.events(report.id, 0).await.unwrap();
    let verdict = log.iter().find_map(|r| match &r.event {
        Event::GateDecided { decision, .. } => Some(decision.clone()),
        _ => None,
    });
    assert_eq!(
        verdict,
        Some(Decision::Rollback(vec!["p99 620ms > 500ms".into()])),
        "the reason reaches the log"
    );
}

#[tokio::test(start_paused = true)]
async fn too_many_failed_targets_roll_back_the_phase() {
    let w = world(10).registered().await;
    w.deployer
        .set_fault(&w.targets[3], Fault::FailArtifact(w.v2.digest.clone()));
    let report = w
        .exec(None)
        .submit(w.request(
            Strategy::Rolling { max_unavailable: 5 },
            PhaseDefaults::default(),
        ))
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    assert!(w.versions().iter().all(|v| v == "v1"), "{:?}", w.versions());
    assert_eq!(
        w.deployer.attempts(&w.targets[3]),
        4,
        "3 forward attempts (retried up to the limit), then 1 restore"
    );
    assert!(
        w.deployer.attempts(&w.targets[7]) == 0,
        "the second batch never starts"
    );
    let log = w.store.events(report.id, 0).await.unwrap();
    assert!(log.iter().any(|r| matches!(&r.event, Event::RollbackStarted { reason } if reason.contains("t4: v2 is broken here"))));
    assert_eq!(
        log.iter()
            .filter(|r| matches!(r.event, Event::DeployRetried { .. }))
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn failures_within_the_limit_do_not_stop_the_rollout() {
    let w = world(4).registered().await;
    w.deployer
        .set_fault(&w.targets[1], Fault::FailAlways("nope".into()));
    let report = w
        .exec(None)
        .submit(w.request(
            Strategy::AllAtOnce,
            PhaseDefaults::default().with_max_failed(1),
        ))
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(w.versions(), ["v2", "v1", "v2", "v2"]);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_backoff() {
    let w = world(2).registered().await;
    w.deployer.set_fault(&w.targets[0], Fault::FailTimes(2));
    let started = tokio::time::Instant::now();
    let report = w
        .exec(None)
        .submit(w.request(Strategy::AllAtOnce, PhaseDefaults::default()))
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(w.deployer.attempts(&w.targets[0]), 3);
    // Backoffs of at most 1 s then 2 s, full jitter (seed 0) drawn for
    // this target, on tokio's paused clock.
    let retry = rollgate_deploy::RetryPolicy::default();
    let waited = retry.delay(1, &w.targets[0]) + retry.delay(2, &w.targets[0]);
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(started.elapsed() >= waited);
}

#[tokio::test(start_paused = true)]
async fn a_target_that_never_gets_ready_fails_after_the_timeout() {
    let w = world(3).registered().await;
    w.deployer
        .set_fault(&w.targets[2], Fault::NeverReadyOn(w.v2.digest.clone()));
    let report = w
        .exec(None)
        .submit(w.request(Strategy::AllAtOnce, PhaseDefaults::default()))
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    let log = w.store.events(report.id, 0).await.unwrap();
    let failed = log.iter().find_map(|r| match &r.event {
        Event::TargetFailed { target, reason } => Some((target.clone(), reason.clone())),
        _ => None,
    });
    let (t, reason) = failed.unwrap();
    assert_eq!(t, w.targets[2]);
    assert!(
        reason.contains("not ready after 30s: injected: health check failing"),
        "{reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn hold_stops_for_a_person_and_promote_goes_on() {
    let w = world(10).registered().await;
    let gate = ScriptedGate::new().at(
        1,
        Decision::Hold(vec!["inconclusive: 12 samples < 50".into()]),
    );
    let exec = w.exec(Some(gate));
    let req = w.request(
        canary(),
        PhaseDefaults::default()
            .with_bake(Duration::from_secs(10))
            .with_gate(true),
    );
    let report = exec.submit(req).await.unwrap();
    assert!(report.is_held());
    assert_eq!(report.outcome, None);
    assert_eq!(w.versions().iter().filter(|v| *v == "v2").count(), 5);
    // Running again without a person's word changes nothing.
    let again = exec.run(report.id).await.unwrap();
    assert!(again.is_held());
    w.store
        .append(report.id, Writer::Person("bob"), &[Event::PromoteRequested])
        .await
        .unwrap();
    let done = exec.run(report.id).await.unwrap();
    assert_eq!(done.outcome, Some(Outcome::Succeeded));
    assert!(w.versions().iter().all(|v| v == "v2"));
}

#[tokio::test(start_paused = true)]
async fn pause_from_another_process_stops_progress_until_resume() {
    let w = world(10).registered().await;
    let exec = w.exec(None);
    let req = w.request(
        canary(),
        PhaseDefaults::default().with_bake(Duration::from_secs(60)),
    );
    let id = exec.create(&req).await.unwrap().id;
    let run = spawn_run(&exec, id);
    // Let phase 0 deploy and start baking, then pause.
    tokio::time::sleep(Duration::from_secs(30)).await;
    w.store
        .append(id, Writer::Person("ops"), &[Event::PauseRequested])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        w.versions().iter().filter(|v| *v == "v2").count(),
        1,
        "paused: no progress for an hour"
    );
    w.store
        .append(id, Writer::Person("ops"), &[Event::ResumeRequested])
        .await
        .unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    let log = w.store.events(id, 0).await.unwrap();
    let actors: BTreeSet<_> = log.iter().map(|r| r.actor.as_str()).collect();
    assert!(actors.contains("ops") && actors.contains("ctl-1"));
}

#[tokio::test(start_paused = true)]
async fn promote_skips_the_remaining_bake() {
    let w = world(2).registered().await;
    let exec = w.exec(None);
    let req = w.request(
        Strategy::AllAtOnce,
        PhaseDefaults::default().with_bake(Duration::from_secs(86_400)),
    );
    let id = exec.create(&req).await.unwrap().id;
    let run = spawn_run(&exec, id);
    tokio::time::sleep(Duration::from_secs(10)).await;
    w.store
        .append(id, Writer::Person("ops"), &[Event::PromoteRequested])
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "did not wait out a day of bake"
    );
}

#[tokio::test(start_paused = true)]
async fn abort_rolls_back_what_was_touched() {
    let w = world(10).registered().await;
    let exec = w.exec(None);
    let req = w.request(
        canary(),
        PhaseDefaults::default().with_bake(Duration::from_secs(600)),
    );
    let id = exec.create(&req).await.unwrap().id;
    let run = spawn_run(&exec, id);
    tokio::time::sleep(Duration::from_secs(700)).await; // phase 0 done, phase 1 baking
    w.store
        .append(id, Writer::Person("ops"), &[Event::AbortRequested])
        .await
        .unwrap();
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Some(Outcome::Aborted));
    assert!(w.versions().iter().all(|v| v == "v1"));
    assert_eq!(w.deployer.deploy_log().len(), 10, "5 forward, 5 back");
}

#[tokio::test(start_paused = true)]
async fn gate_errors_beyond_the_limit_roll_back() {
    let w = world(4).registered().await;
    let gate = ScriptedGate::new().failing_at(0, "prometheus unreachable");
    let report = w
        .exec(Some(gate.clone()))
        .submit(w.request(
            Strategy::Canary {
                steps: vec![pct(25.0), Percent::FULL],
            },
            PhaseDefaults::default().with_gate(true),
        ))
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    assert_eq!(gate.calls(), 3, "default consecutive-error limit");
    assert!(w.versions().iter().all(|v| v == "v1"));
}

#[tokio::test(start_paused = true)]
async fn continue_keeps_baking_then_holds_after_the_limit() {
    let w = world(2).registered().await;
    let gate = ScriptedGate::new().at(0, Decision::Continue(vec!["need more data".into()]));
    let report = w
        .exec(Some(gate.clone()))
        .submit(
            w.request(
                Strategy::AllAtOnce,
                PhaseDefaults::default()
                    .with_gate(true)
                    .with_bake(Duration::from_secs(60)),
            ),
        )
        .await
        .unwrap();
    assert!(report.is_held());
    assert_eq!(gate.calls(), 10);
}

#[tokio::test(start_paused = true)]
async fn same_idempotency_key_returns_the_same_rollout_and_deploys_nothing_new() {
    let w = world(3).registered().await;
    let exec = w.exec(None);
    let req = w
        .request(Strategy::AllAtOnce, PhaseDefaults::default())
        .with_idempotency_key("deploy-42");
    let a = exec.submit(req.clone()).await.unwrap();
    let b = exec.submit(req).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(b.outcome, Some(Outcome::Succeeded));
    assert_eq!(w.deployer.deploy_log().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_second_controller_cannot_drive_a_leased_rollout() {
    let w = world(3).registered().await;
    let exec = w.exec(None);
    let req = w.request(
        Strategy::AllAtOnce,
        PhaseDefaults::default().with_bake(Duration::from_secs(600)),
    );
    let id = exec.create(&req).await.unwrap().id;
    let run = spawn_run(&exec, id);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let other = Executor::new(w.store.clone(), Arc::new(w.deployer.clone()))
        .with_config(ExecutorConfig::default().with_owner("ctl-2"));
    let err = other.run(id).await.unwrap_err();
    assert!(
        matches!(&err, Error::LeaseHeld { owner, .. } if owner == "ctl-1"),
        "{err}"
    );
    assert_eq!(
        run.await.unwrap().unwrap().outcome,
        Some(Outcome::Succeeded)
    );
}

#[tokio::test(start_paused = true)]
async fn every_strategy_ends_with_every_target_on_the_artifact() {
    let w0 = world(12);
    let t = w0.targets.clone();
    let strategies = vec![
        Strategy::AllAtOnce,
        Strategy::Rolling { max_unavailable: 5 },
        canary(),
        Strategy::Linear { step: pct(25.0) },
        Strategy::Exponential {
            start: pct(5.0),
            factor: 3.0,
        },
        Strategy::Rings {
            rings: vec![
                Ring {
                    name: "canary".into(),
                    targets: t[..1].to_vec(),
                },
                Ring {
                    name: "eu".into(),
                    targets: t[1..6].to_vec(),
                },
                Ring {
                    name: "us".into(),
                    targets: t[6..].to_vec(),
                },
            ],
        },
    ];
    for s in strategies {
        let w = world(12).registered().await;
        let kind = s.kind();
        let report = w
            .exec(Some(ScriptedGate::new()))
            .submit(
                w.request(
                    s,
                    PhaseDefaults::default()
                        .with_gate(true)
                        .with_bake(Duration::from_secs(30)),
                ),
            )
            .await
            .unwrap();
        assert_eq!(report.outcome, Some(Outcome::Succeeded), "{kind}");
        assert!(
            w.versions().iter().all(|v| v == "v2"),
            "{kind}: {:?}",
            w.versions()
        );
        assert_eq!(w.deployer.deploy_log().len(), 12, "{kind}");
    }
}

struct RecordingRouter(std::sync::Mutex<Vec<Vec<TargetId>>>);

#[async_trait::async_trait]
impl Router for RecordingRouter {
    async fn switch(&self, _service: &str, active: &[TargetId]) -> Result<(), Error> {
        self.0.lock().unwrap().push(active.to_vec());
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn blue_green_switches_and_switches_back_on_rollback() {
    let w = world(4).registered().await;
    let (blue, green) = (w.targets[..2].to_vec(), w.targets[2..].to_vec());
    let router = Arc::new(RecordingRouter(Default::default()));
    let gate = ScriptedGate::new().at(1, Decision::Rollback(vec!["errors after switch".into()]));
    let report = w
        .exec(Some(gate))
        .with_router(router.clone())
        .submit(w.request(
            Strategy::BlueGreen {
                blue: blue.clone(),
                green: green.clone(),
            },
            PhaseDefaults::default().with_gate(true),
        ))
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    assert_eq!(*router.0.lock().unwrap(), vec![green, blue]);
    assert!(w.versions().iter().all(|v| v == "v1"));
    assert_eq!(
        w.deployer.deploy_log().len(),
        4,
        "green forward and back; blue untouched"
    );
}

#[tokio::test(start_paused = true)]
async fn gated_plan_without_gate_is_refused_up_front() {
    let w = world(2).registered().await;
    let err = w
        .exec(None)
        .submit(w.request(
            Strategy::AllAtOnce,
            PhaseDefaults::default().with_gate(true),
        ))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("none is attached"), "{err}");
    assert!(
        w.store.list(None).await.unwrap().is_empty(),
        "nothing recorded"
    );
    let _ = &w.v1;
}

#[tokio::test(start_paused = true)]
async fn first_adoption_on_unknown_artifacts_is_refused_before_anything_changes() {
    let w = world(3); // v1 never registered, no `previous` in the request
    let gate = ScriptedGate::new().at(0, Decision::Rollback(vec!["bad".into()]));
    let err = w
        .exec(Some(gate))
        .submit(w.request(Strategy::AllAtOnce, PhaseDefaults::default()))
        .await
        .unwrap_err();
    let Error::Unrestorable { targets } = &err else {
        panic!("not refused as unrestorable: {err}");
    };
    let names: Vec<_> = targets.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(names, ["t1", "t2", "t3"], "{err}");
    assert!(err.is_input(), "bad input: exit 2 in the CLI");
    assert!(err.to_string().contains("not a known artifact"), "{err}");
    assert!(err.to_string().contains("previous"), "{err}");
    assert!(
        w.store.list(None).await.unwrap().is_empty(),
        "nothing recorded"
    );
    assert_eq!(w.versions(), ["v1", "v1", "v1"], "nothing changed");
}

#[tokio::test(start_paused = true)]
async fn a_one_way_deploy_that_rolls_back_ends_rollback_failed_naming_every_target_left() {
    let w = world(3);
    // t-1 ran v1 (known through `known`); t-2 and t-3 run an unknown v0.
    let v0 = artifact("v0");
    let t = w.targets.clone();
    let deployer = FakeDeployer::new()
        .with_running(&t[..1], &w.v1)
        .with_running(&t[1..], &v0);
    let w = World { deployer, ..w };
    let gate = ScriptedGate::new().at(0, Decision::Rollback(vec!["bad".into()]));
    let req = w
        .request(Strategy::AllAtOnce, PhaseDefaults::default())
        .with_known([w.v1.clone()])
        .with_no_rollback_ok(true);
    let report = w.exec(Some(gate)).submit(req).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::RollbackFailed));
    let left: Vec<_> = report.rollout.left_on_artifact();
    assert_eq!(left, t[1..].to_vec(), "every target left on v2 is named");
    assert_eq!(w.versions(), ["v1", "v2", "v2"]);
    // Declaring what they run makes the same rollback a real one.
    let w = world(3);
    let gate = ScriptedGate::new().at(0, Decision::Rollback(vec!["bad".into()]));
    let req = w
        .request(Strategy::AllAtOnce, PhaseDefaults::default())
        .with_previous(w.v1.clone());
    let report = w.exec(Some(gate)).submit(req).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    assert!(report.rollout.left_on_artifact().is_empty());
    assert_eq!(w.versions(), ["v1", "v1", "v1"]);
}

#[tokio::test(start_paused = true)]
async fn targets_running_nothing_are_refused_unless_one_way() {
    let w = world(2);
    let w = World {
        deployer: FakeDeployer::new(),
        ..w
    };
    let err = w
        .exec(None)
        .submit(w.request(Strategy::AllAtOnce, PhaseDefaults::default()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("runs nothing"), "{err}");
    let req = w
        .request(Strategy::AllAtOnce, PhaseDefaults::default())
        .with_no_rollback_ok(true);
    let report = w.exec(None).submit(req).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn an_attached_gate_is_asked_even_when_the_plan_did_not_say_gated() {
    let w = world(4).registered().await;
    let gate = ScriptedGate::new().at(0, Decision::Rollback(vec!["p99 too high".into()]));
    // Plan compiled with default phase settings: no `.with_gate(true)`.
    let report = w
        .exec(Some(gate))
        .submit(w.request(canary(), PhaseDefaults::default()))
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    assert_eq!(w.versions(), ["v1"; 4]);
}

#[tokio::test(start_paused = true)]
async fn a_gate_attached_to_a_plan_that_would_not_ask_it_is_an_error() {
    let w = world(2).registered().await;
    let err = w
        .exec(Some(ScriptedGate::new()))
        .submit(w.request(
            Strategy::AllAtOnce,
            PhaseDefaults::default().with_gate(false),
        ))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("every phase of the plan skips it"),
        "{err}"
    );
    assert!(
        w.store.list(None).await.unwrap().is_empty(),
        "nothing recorded"
    );
    assert_eq!(
        w.versions(),
        ["v1", "v1"],
        "nothing deployed without the gate"
    );
    // Skipping some phases explicitly is fine: the others ask.
    let mut req = w.request(canary(), PhaseDefaults::default());
    req.plan.phases[0].gate = GateUse::Skip;
    let gate = ScriptedGate::new().at(1, Decision::Rollback(vec!["bad".into()]));
    let report = w.exec(Some(gate)).submit(req).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
}

struct SlowGate(Duration);

#[async_trait::async_trait]
impl Gate for SlowGate {
    async fn evaluate(&self, _: &GateContext) -> Result<Decision, Error> {
        tokio::time::sleep(self.0).await;
        Ok(Decision::Promote(vec!["slow but sure".into()]))
    }
}

#[tokio::test(start_paused = true)]
async fn a_gate_slower_than_the_lease_keeps_the_lease_renewed() {
    let w = world(2).registered().await;
    let exec = Executor::new(w.store.clone(), Arc::new(w.deployer.clone()))
        .with_gate(Arc::new(SlowGate(Duration::from_secs(240))))
        .with_config(
            ExecutorConfig::default()
                .with_owner("ctl-1")
                .with_lease_ttl(Duration::from_secs(30)),
        );
    let id = exec
        .create(&w.request(
            Strategy::AllAtOnce,
            PhaseDefaults::default().with_gate(true),
        ))
        .await
        .unwrap()
        .id;
    let run = spawn_run(&exec, id);
    tokio::time::sleep(Duration::from_secs(120)).await; // deep inside the gate call
    let other = Executor::new(w.store.clone(), Arc::new(w.deployer.clone()))
        .with_gate(Arc::new(ScriptedGate::new()))
        .with_config(ExecutorConfig::default().with_owner("ctl-2"));
    let err = other.run(id).await.unwrap_err();
    assert!(
        matches!(&err, Error::LeaseHeld { owner, .. } if owner == "ctl-1"),
        "{err}"
    );
    assert_eq!(
        run.await.unwrap().unwrap().outcome,
        Some(Outcome::Succeeded)
    );
}

/// A gate during whose evaluation a person aborts, and which then says hold.
struct AbortDuringGate(Arc<MemoryStore>);

#[async_trait::async_trait]
impl Gate for AbortDuringGate {
    async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
        self.0
            .append(
                at.rollout,
                Writer::Person("oncall"),
                &[Event::AbortRequested],
            )
            .await?;
        Ok(Decision::Hold(vec!["inconclusive".into()]))
    }
}

#[tokio::test(start_paused = true)]
async fn an_abort_during_a_gate_call_survives_a_hold_verdict() {
    let w = world(4).registered().await;
    let exec = Executor::new(w.store.clone(), Arc::new(w.deployer.clone()))
        .with_gate(Arc::new(AbortDuringGate(w.store.clone())))
        .with_config(ExecutorConfig::default().with_owner("ctl-1"));
    let report = exec
        .submit(w.request(
            Strategy::Canary {
                steps: vec![pct(50.0), Percent::FULL],
            },
            PhaseDefaults::default().with_gate(true),
        ))
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Aborted));
    assert!(w.versions().iter().all(|v| v == "v1"), "{:?}", w.versions());
}

/// A router whose switches to `green` land but report failure (a timeout
/// after the change); switching back works.
struct LyingRouter {
    green: Vec<TargetId>,
    log: std::sync::Mutex<Vec<Vec<TargetId>>>,
}

#[async_trait::async_trait]
impl Router for LyingRouter {
    async fn switch(&self, _service: &str, active: &[TargetId]) -> Result<(), Error> {
        self.log.lock().unwrap().push(active.to_vec());
        if active == self.green.as_slice() {
            Err(Error::Router("timed out after the change".into()))
        } else {
            Ok(())
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_switch_that_failed_after_landing_is_switched_back() {
    let w = world(4).registered().await;
    let (blue, green) = (w.targets[..2].to_vec(), w.targets[2..].to_vec());
    let router = Arc::new(LyingRouter {
        green: green.clone(),
        log: Default::default(),
    });
    let report = w
        .exec(None)
        .with_router(router.clone())
        .submit(w.request(
            Strategy::BlueGreen {
                blue: blue.clone(),
                green: green.clone(),
            },
            PhaseDefaults::default(),
        ))
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    assert_eq!(
        router.log.lock().unwrap().last(),
        Some(&blue),
        "traffic is back on blue"
    );
    assert!(w.versions().iter().all(|v| v == "v1"));
}

#[tokio::test(start_paused = true)]
async fn a_target_already_on_the_new_artifact_stays_there_on_rollback() {
    let w = world(2).registered().await;
    w.deployer.deploy(&w.targets[0], &w.v2).await.unwrap(); // t1 ran v2 before this rollout
    let gate = ScriptedGate::new().at(0, Decision::Rollback(vec!["bad".into()]));
    let req = w
        .request(
            Strategy::AllAtOnce,
            PhaseDefaults::default().with_gate(true),
        )
        .with_previous(w.v1.clone());
    let report = w.exec(Some(gate)).submit(req).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    assert_eq!(
        w.versions(),
        ["v2", "v1"],
        "each target back to what it ran before"
    );
}

#[tokio::test(start_paused = true)]
async fn blue_green_gates_see_zero_percent_before_the_switch_and_full_after() {
    struct Recording(std::sync::Mutex<Vec<f64>>);
    #[async_trait::async_trait]
    impl Gate for Recording {
        async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
            self.0.lock().unwrap().push(at.percent.get());
            Ok(Decision::Promote(vec![]))
        }
    }
    let w = world(4).registered().await;
    let gate = Arc::new(Recording(Default::default()));
    let router = Arc::new(RecordingRouter(Default::default()));
    let report = Executor::new(w.store.clone(), Arc::new(w.deployer.clone()))
        .with_gate(gate.clone())
        .with_router(router)
        .submit(w.request(
            Strategy::BlueGreen {
                blue: w.targets[..2].to_vec(),
                green: w.targets[2..].to_vec(),
            },
            PhaseDefaults::default().with_gate(true),
        ))
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(*gate.0.lock().unwrap(), [0.0, 100.0]);
}

#[tokio::test(start_paused = true)]
async fn a_stop_that_lands_with_the_last_write_leaves_the_finished_rollout_alone() {
    let w = world(2).registered().await;
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let observer: Observer = Arc::new(move |_r: &Rollout, e: &EventRecord| {
        if matches!(e.event, Event::Finished { .. }) {
            let _ = tx.send(true);
        }
    });
    let exec = w.exec(None).with_observer(observer);
    let id = exec
        .create(&w.request(Strategy::AllAtOnce, PhaseDefaults::default()))
        .await
        .unwrap()
        .id;
    let stop = async move {
        let _ = rx.wait_for(|fired| *fired).await;
        "SIGINT".to_string()
    };
    let report = exec.run_until(id, stop).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert!(report.interrupted.is_none(), "nothing was left to stop");
    let log = w.store.events(id, 0).await.unwrap();
    assert!(matches!(log.last().unwrap().event, Event::Finished { .. }));
    Rollout::replay(id, w.store.request(id).await.unwrap(), &log).unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_stop_at_once_records_who_stopped_and_releases_the_lease() {
    let w = world(3).registered().await;
    let exec = w.exec(None);
    let id = exec
        .create(&w.request(Strategy::AllAtOnce, PhaseDefaults::default()))
        .await
        .unwrap()
        .id;
    let report = exec
        .run_until(id, std::future::ready("SIGTERM".to_string()))
        .await
        .unwrap();
    assert_eq!(report.interrupted.as_deref(), Some("SIGTERM"));
    assert_eq!(report.outcome, None);
    let why = report.rollout.interrupted.clone().unwrap();
    assert_eq!((why.by.as_str(), why.reason.as_str()), ("ctl-1", "SIGTERM"));
    assert!(
        w.store.lease_info(id).await.unwrap().is_none(),
        "lease released"
    );
    let again = exec.run(id).await.unwrap();
    assert_eq!(again.outcome, Some(Outcome::Succeeded));
    assert!(again.rollout.interrupted.is_none());
    assert_eq!(w.versions(), ["v2"; 3]);
}

#[tokio::test(start_paused = true)]
async fn max_unavailable_counts_targets_that_are_not_ready_and_the_phase_waits() {
    let w = world(3).registered().await;
    // t3 is down already (not ready on v1): with max_unavailable = 1 the
    // rolling rollout may take nothing else out.
    w.deployer
        .set_fault(&w.targets[2], Fault::NeverReadyOn(w.v1.digest.clone()));
    let exec = w.exec(None);
    let req = w.request(
        Strategy::Rolling { max_unavailable: 1 },
        PhaseDefaults::default(),
    );
    assert_eq!(req.plan.max_unavailable, Some(1));
    let id = exec.create(&req).await.unwrap().id;
    let run = spawn_run(&exec, id);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(
        w.deployer.deploy_log().is_empty(),
        "nothing taken out while t3 is down"
    );
    assert_eq!(w.versions(), ["v1"; 3]);
    // t3 comes back: the rollout goes on, one target at a time.
    w.deployer.set_fault(&w.targets[2], Fault::FailTimes(0));
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(w.versions(), ["v2"; 3]);
}

#[test]
fn only_rolling_plans_carry_max_unavailable() {
    let t = rollgate_test::targets(4);
    let d = PhaseDefaults::default();
    assert_eq!(
        Strategy::Rolling { max_unavailable: 2 }
            .compile(&t, &d)
            .unwrap()
            .max_unavailable,
        Some(2)
    );
    assert_eq!(
        Strategy::AllAtOnce.compile(&t, &d).unwrap().max_unavailable,
        None
    );
}

fn kinds(ns: &[Notification]) -> Vec<(usize, NotifyKind)> {
    ns.iter().map(|n| (n.destination, n.kind)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_held_then_promoted_rollout_announces_each_step_once() {
    let w = world(10).registered().await;
    let gate = ScriptedGate::new().at(
        1,
        Decision::Hold(vec!["inconclusive: 12 samples < 50".into()]),
    );
    let exec = w.exec(Some(gate));
    let req = w
        .request(
            canary(),
            PhaseDefaults::default()
                .with_bake(Duration::from_secs(10))
                .with_gate(true),
        )
        .with_notify([
            Destination::new("http://127.0.0.1:9/all"),
            Destination::new("http://127.0.0.1:9/ends").with_events([NotifyKind::Finished]),
        ]);
    let report = exec.submit(req).await.unwrap();
    assert!(report.is_held());
    let id = report.id;
    w.store
        .append(id, Writer::Person("bob"), &[Event::PromoteRequested])
        .await
        .unwrap();
    let done = exec.run(id).await.unwrap();
    assert_eq!(done.outcome, Some(Outcome::Succeeded));
    let ns = w.store.notifications(Some(id)).await.unwrap();
    assert_eq!(
        kinds(&ns),
        [
            (0, NotifyKind::Started),
            (0, NotifyKind::PhasePromoted),
            (0, NotifyKind::Held),
            (0, NotifyKind::PhasePromoted),
            (0, NotifyKind::PhasePromoted),
            (0, NotifyKind::Finished),
            (1, NotifyKind::Finished),
        ],
        "a second controller start is not announced again"
    );
    // Each row points at the event that caused it.
    let log = w.store.events(id, 0).await.unwrap();
    for n in &ns {
        let e = &log[n.seq as usize - 1].event;
        let ok = match n.kind {
            NotifyKind::Started => matches!(e, Event::ControllerStarted { .. }),
            NotifyKind::PhasePromoted => matches!(e, Event::PhaseCompleted { .. }),
            NotifyKind::Held => matches!(e, Event::GateDecided { .. }),
            _ => matches!(e, Event::Finished { .. }),
        };
        assert!(ok, "{n:?} points at {e:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_rollback_is_announced_as_rolled_back() {
    let w = world(10).registered().await;
    let gate = ScriptedGate::new().at(0, Decision::Rollback(vec!["p99 620ms > 500ms".into()]));
    let req = w
        .request(
            canary(),
            PhaseDefaults::default()
                .with_bake(Duration::from_secs(60))
                .with_gate(true),
        )
        .with_notify([Destination::new("http://127.0.0.1:9/")
            .with_events([NotifyKind::RolledBack, NotifyKind::RollbackFailed])]);
    let report = w.exec(Some(gate)).submit(req).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    let ns = w.store.notifications(Some(report.id)).await.unwrap();
    assert_eq!(kinds(&ns), [(0, NotifyKind::RolledBack)]);
}

/// A notifier that fails a set number of times, then records what it got.
#[derive(Clone, Default)]
struct Flaky {
    fail_first: Arc<std::sync::atomic::AtomicU32>,
    got: Arc<std::sync::Mutex<Vec<(String, tokio::time::Instant)>>>,
}

#[async_trait::async_trait]
impl Notifier for Flaky {
    async fn send(&self, out: &Outgoing) -> Result<(), SendError> {
        let now = tokio::time::Instant::now();
        self.got
            .lock()
            .unwrap()
            .push((out.notification.event_id(), now));
        let left = self.fail_first.load(std::sync::atomic::Ordering::SeqCst);
        if left > 0 {
            self.fail_first
                .store(left - 1, std::sync::atomic::Ordering::SeqCst);
            return Err(SendError("HTTP 500".into()));
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_dispatcher_retries_with_backoff_and_marks_rows_delivered() {
    let w = world(2).registered().await;
    let req = w
        .request(Strategy::AllAtOnce, PhaseDefaults::default())
        .with_notify([Destination::new("http://127.0.0.1:9/").with_events([NotifyKind::Finished])]);
    let report = w.exec(None).submit(req).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    let flaky = Flaky::default();
    flaky
        .fail_first
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let mut retry = RetryPolicy::default().with_jitter(Jitter::None);
    retry.max_attempts = 10;
    retry.initial_backoff = Duration::from_secs(1);
    retry.max_backoff = Duration::from_secs(60);
    let d = Dispatcher::new(
        w.store.clone(),
        Arc::new(flaky.clone()),
        DispatchConfig::default().with_owner("d1").with_retry(retry),
    );
    let start = tokio::time::Instant::now();
    assert_eq!(d.deliver_pending().await.unwrap(), 1);
    let got = flaky.got.lock().unwrap().clone();
    let waits: Vec<Duration> = got.iter().map(|(_, t)| *t - start).collect();
    assert_eq!(
        waits,
        [0, 1, 3, 7].map(Duration::from_secs),
        "waits double: 1 s, 2 s, 4 s"
    );
    assert!(
        got.iter().all(|(id, _)| *id == got[0].0),
        "one event id on every attempt"
    );
    let ns = w.store.notifications(Some(report.id)).await.unwrap();
    assert_eq!(ns[0].attempts, 3);
    assert_eq!(ns[0].last_error.as_deref(), Some("HTTP 500"));
    assert!(ns[0].delivered_ms.is_some());
    assert_eq!(
        d.deliver_pending().await.unwrap(),
        0,
        "delivered rows stay delivered"
    );
}

/// A notifier that never answers.
struct Hang;

#[async_trait::async_trait]
impl Notifier for Hang {
    async fn send(&self, _: &Outgoing) -> Result<(), SendError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_hanging_receiver_times_out_and_the_row_waits_for_a_later_pass() {
    let w = world(2).registered().await;
    let req = w
        .request(Strategy::AllAtOnce, PhaseDefaults::default())
        .with_notify([Destination::new("http://127.0.0.1:9/")]);
    let report = w.exec(None).submit(req).await.unwrap();
    let mut retry = RetryPolicy::default().with_seed(7);
    retry.max_attempts = 2;
    retry.initial_backoff = Duration::from_secs(1);
    retry.max_backoff = Duration::from_secs(30);
    let d = Dispatcher::new(
        w.store.clone(),
        Arc::new(Hang),
        DispatchConfig::default()
            .with_retry(retry)
            .with_timeout(Duration::from_secs(5)),
    );
    assert_eq!(d.deliver_pending().await.unwrap(), 0);
    let ns = w.store.notifications(Some(report.id)).await.unwrap();
    assert_eq!(ns.len(), 3, "started, phase promoted, finished");
    for n in &ns {
        assert_eq!(n.attempts, 2, "{n:?}");
        assert_eq!(n.last_error.as_deref(), Some("no answer within 5s"));
        assert!(n.delivered_ms.is_none());
    }
    // Parked for max_backoff: not claimable before, claimable after.
    assert!(
        w.store
            .claim_notifications("x", Duration::from_secs(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::advance(Duration::from_secs(31)).await;
    let d = Dispatcher::new(
        w.store.clone(),
        Arc::new(flaky_ok()),
        DispatchConfig::default(),
    );
    assert_eq!(d.deliver_pending().await.unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_long_attempt_keeps_its_short_claim_by_renewal_and_a_dead_dispatcher_s_claims_end_within_the_ttl()
 {
    let w = world(2).registered().await;
    let req = w
        .request(Strategy::AllAtOnce, PhaseDefaults::default())
        .with_notify([Destination::new("http://127.0.0.1:9/")]);
    let report = w.exec(None).submit(req).await.unwrap();
    let mut retry = RetryPolicy::default().with_seed(7);
    retry.max_attempts = 1;
    let ttl = Duration::from_secs(3);
    // One attempt may last a minute; the claim alone lasts 3 s.
    let d = Dispatcher::new(
        w.store.clone(),
        Arc::new(Hang),
        DispatchConfig::default()
            .with_owner("d1")
            .with_retry(retry)
            .with_timeout(Duration::from_secs(60))
            .with_claim_ttl(ttl),
    );
    let dying = tokio::spawn(async move { d.deliver_pending().await });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        w.store
            .claim_notifications("d2", ttl, 10)
            .await
            .unwrap()
            .is_empty(),
        "10 s into its attempts, d1 still holds every claim (renewed)"
    );
    // d1 dies: its claims end within one claim TTL.
    dying.abort();
    let _ = dying.await;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let taken = w.store.claim_notifications("d2", ttl, 10).await.unwrap();
    assert_eq!(taken.len(), 3, "{taken:?}");
    let ns = w.store.notifications(Some(report.id)).await.unwrap();
    assert!(ns.iter().all(|n| n.delivered_ms.is_none()), "{ns:?}");
}

fn flaky_ok() -> Flaky {
    Flaky::default()
}

#[tokio::test(start_paused = true)]
async fn every_notification_is_delivered_at_least_once_through_failures() {
    let w = world(4).registered().await;
    let gate = ScriptedGate::new().at(1, Decision::Rollback(vec!["p99 over".into()]));
    let req = w
        .request(
            canary(),
            PhaseDefaults::default()
                .with_bake(Duration::from_secs(60))
                .with_gate(true),
        )
        .with_notify([
            Destination::new("http://a.example/"),
            Destination::new("http://b.example/").with_events([NotifyKind::Finished]),
        ]);
    let report = w.exec(Some(gate)).submit(req).await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    let notifier = rollgate_test::RecordingNotifier::new().failing_first(2);
    notifier.set_down("http://b.example/", true);
    let mut retry = RetryPolicy::default().with_seed(3);
    retry.max_attempts = 3;
    let d = Dispatcher::new(
        w.store.clone(),
        Arc::new(notifier.clone()),
        DispatchConfig::default().with_retry(retry),
    );
    d.deliver_pending().await.unwrap();
    let sent = |n: &rollgate_test::RecordingNotifier| -> Vec<(String, usize)> {
        n.delivered()
            .iter()
            .map(|o| (o.notification.event_id(), o.notification.destination))
            .collect()
    };
    let broken = rollgate_test::every_notification_delivered(&*w.store, &sent(&notifier))
        .await
        .unwrap_err();
    assert!(
        broken.contains("to destination 1 (rolled_back) not marked delivered after 3 attempt(s): http://b.example/ is down"),
        "{broken}"
    );
    // b comes back; a later pass (after the parked row's wait) delivers it.
    notifier.set_down("http://b.example/", false);
    tokio::time::advance(Duration::from_secs(120)).await;
    d.deliver_pending().await.unwrap();
    rollgate_test::every_notification_delivered(&*w.store, &sent(&notifier))
        .await
        .unwrap();
    // A row marked delivered that no receiver got is caught too.
    let err = rollgate_test::every_notification_delivered(&*w.store, &[])
        .await
        .unwrap_err();
    assert!(err.contains("marked delivered but never received"), "{err}");
}
