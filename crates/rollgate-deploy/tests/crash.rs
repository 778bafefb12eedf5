//! Crash safety: for random plans, a controller killed at every store write
//! (before or after the write lands) and resumed by a fresh controller ends in
//! the same state as a run that never crashed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::{Strategy as _, *};
use rollgate_deploy::*;
use rollgate_test::{
    CrashPoint, CrashingStore, FakeDeployer, FakeRouter, Fault, ScriptedGate, artifact, targets,
};

#[derive(Debug, Clone)]
struct Scenario {
    n: usize,
    strategy: u8,
    gate: BTreeMap<usize, u8>,
    broken: Vec<usize>,
    max_failed: usize,
    concurrency: usize,
    bake_s: u64,
}

fn scenario() -> impl proptest::strategy::Strategy<Value = Scenario> {
    (
        1usize..9,
        0u8..7,
        prop::collection::btree_map(0usize..6, 0u8..5, 0..3),
        prop::collection::vec(0usize..9, 0..3),
        0usize..2,
        0usize..4,
        0u64..120,
    )
        .prop_map(
            |(n, strategy, gate, broken, max_failed, concurrency, bake_s)| Scenario {
                n,
                strategy,
                gate,
                broken,
                max_failed,
                concurrency,
                bake_s,
            },
        )
}

type End = (
    BTreeMap<TargetId, Digest>,
    Option<Outcome>,
    bool,
    Option<Vec<TargetId>>,
);

struct Setup {
    deployer: FakeDeployer,
    gate: ScriptedGate,
    router: FakeRouter,
    /// Phases at which a person aborts while the gate is deciding.
    aborts: Vec<usize>,
    request: RolloutRequest,
}

/// The scripted gate, plus a person who aborts during chosen gate calls
/// (appending straight to the real store, as another process would).
struct PersonAndGate {
    gate: ScriptedGate,
    aborts: Vec<usize>,
    store: Arc<dyn StateStore>,
}

#[async_trait::async_trait]
impl Gate for PersonAndGate {
    async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
        if self.aborts.contains(&at.phase) {
            self.store
                .append(
                    at.rollout,
                    Writer::Person("oncall"),
                    &[Event::AbortRequested],
                )
                .await?;
            return Ok(Decision::Hold(vec!["inconclusive".into()]));
        }
        self.gate.evaluate(at).await
    }
}

fn setup(s: &Scenario) -> Setup {
    let t = targets(s.n);
    let (v1, v2) = (artifact("v1"), artifact("v2"));
    let deployer = FakeDeployer::new().with_running(&t, &v1);
    for &b in &s.broken {
        if b < s.n {
            deployer.set_fault(&t[b], Fault::FailArtifact(v2.digest.clone()));
        }
    }
    let mut gate = ScriptedGate::new();
    let mut aborts = Vec::new();
    for (&phase, &d) in &s.gate {
        if d == 4 {
            aborts.push(phase);
            continue;
        }
        let reasons = vec![format!("scripted {d} at {phase}")];
        gate = match d {
            0 => gate.at(phase, Decision::Rollback(reasons)),
            1 => gate.at(phase, Decision::Hold(reasons)),
            2 => gate.failing_at(phase, "gate down"),
            _ => gate.at(phase, Decision::Promote(reasons)),
        };
    }
    let p = |x: f64| Percent::new(x).unwrap();
    let strategy = match s.strategy {
        0 => rollgate_deploy::Strategy::AllAtOnce,
        1 => rollgate_deploy::Strategy::Rolling { max_unavailable: 2 },
        2 => rollgate_deploy::Strategy::Canary {
            steps: vec![p(10.0), p(50.0), Percent::FULL],
        },
        3 => rollgate_deploy::Strategy::Linear { step: p(34.0) },
        4 => rollgate_deploy::Strategy::Exponential {
            start: p(10.0),
            factor: 3.0,
        },
        _ => rollgate_deploy::Strategy::Rings {
            rings: t
                .chunks(3)
                .enumerate()
                .map(|(i, c)| Ring {
                    name: format!("r{i}"),
                    targets: c.to_vec(),
                })
                .collect(),
        },
    };
    let defaults = PhaseDefaults::default()
        .with_gate(true)
        .with_bake(Duration::from_secs(s.bake_s))
        .with_max_failed(s.max_failed)
        .with_concurrency(s.concurrency);
    let plan = strategy.compile(&t, &defaults).unwrap();
    let request = RolloutRequest::new("web", v2, plan, "prop").with_previous(v1);
    Setup {
        deployer,
        gate,
        router: FakeRouter::new(),
        aborts,
        request,
    }
}

fn exec(
    store: Arc<dyn StateStore>,
    real: &Arc<dyn StateStore>,
    s: &Setup,
    owner: &str,
) -> Executor {
    let gate = PersonAndGate {
        gate: s.gate.clone(),
        aborts: s.aborts.clone(),
        store: real.clone(),
    };
    Executor::new(store, Arc::new(s.deployer.clone()))
        .with_gate(Arc::new(gate))
        .with_router(Arc::new(s.router.clone()))
        .with_config(
            ExecutorConfig::default()
                .with_owner(owner)
                .with_readiness(Duration::from_secs(10), Duration::from_secs(1)),
        )
}

async fn run_to_end(exec: &Executor, id: RolloutId) -> Report {
    loop {
        match exec.run(id).await {
            Ok(r) => return r,
            // The dead controller's lease runs out; a new controller waits for it.
            Err(Error::LeaseHeld { expires_in, .. }) => {
                tokio::time::sleep(expires_in + Duration::from_millis(1)).await
            }
            Err(e) => panic!("resume failed: {e}"),
        }
    }
}

fn end(s: &Setup, r: &Report) -> End {
    (
        s.deployer.snapshot(),
        r.outcome,
        r.is_held(),
        s.router.active(),
    )
}

/// Returns the crash-free end and the number of appends it made.
async fn crash_free(sc: &Scenario) -> (End, u64) {
    let s = setup(sc);
    let inner: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let counting = Arc::new(CrashingStore::new(
        inner.clone(),
        u64::MAX,
        CrashPoint::BeforeWrite,
    ));
    let e = exec(counting.clone(), &inner, &s, "ctl-a");
    let id = e.create(&s.request).await.unwrap().id;
    let r = e.run(id).await.unwrap();
    (end(&s, &r), counting.appends())
}

async fn crashed(sc: &Scenario, at: u64, point: CrashPoint) -> End {
    let s = setup(sc);
    let inner: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let crashing = Arc::new(CrashingStore::new(inner.clone(), at, point));
    let first = exec(crashing.clone(), &inner, &s, "ctl-a");
    let id = first.create(&s.request).await.unwrap().id;
    let result = first.run(id).await;
    assert!(
        result.is_err(),
        "append {at} should have crashed the controller"
    );
    drop(first);
    let second = exec(inner.clone(), &inner, &s, "ctl-b");
    let r = run_to_end(&second, id).await;
    // Both controllers are in the audit history.
    let actors: Vec<String> = inner
        .events(id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.actor)
        .collect();
    if at > 1 || point == CrashPoint::AfterWrite {
        assert!(
            actors.iter().any(|a| a == "ctl-a"),
            "first run missing from history"
        );
    }
    end(&s, &r)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn resuming_after_a_crash_at_any_write_ends_like_no_crash(sc in scenario()) {
        rt().block_on(async {
            let (expected, appends) = crash_free(&sc).await;
            prop_assert!(appends > 0);
            for at in 1..=appends {
                for point in [CrashPoint::BeforeWrite, CrashPoint::AfterWrite] {
                    let got = crashed(&sc, at, point).await;
                    prop_assert_eq!(&got, &expected, "crash at append {} ({:?})", at, point);
                }
            }
            Ok(())
        })?;
    }
}

#[test]
fn resumes_after_crash_between_deploy_and_record() {
    // The deploy lands, the outcome record does not: the resumed controller
    // redoes an idempotent deploy, and the target ends on v2 exactly once.
    let sc = Scenario {
        n: 3,
        strategy: 0,
        gate: BTreeMap::new(),
        broken: vec![],
        max_failed: 0,
        concurrency: 1,
        bake_s: 5,
    };
    rt().block_on(async {
        let (expected, _) = crash_free(&sc).await;
        // Append 1: controller started; 2: intent for t1; 3: t1 deployed.
        let got = crashed(&sc, 3, CrashPoint::BeforeWrite).await;
        assert_eq!(got, expected);
        assert!(got.0.values().all(|d| *d == artifact("v2").digest));
    });
}

/// Runs `sc` undisturbed (deploys taking 700 ms each); returns its end and how long it took.
async fn undisturbed(sc: &Scenario) -> (End, Duration) {
    let s = setup(sc);
    let _ = s.deployer.clone().with_delay(Duration::from_millis(700));
    let inner: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let e = exec(inner.clone(), &inner, &s, "ctl-a");
    let start = tokio::time::Instant::now();
    let r = e.submit(s.request.clone()).await.unwrap();
    assert!(r.interrupted.is_none());
    (end(&s, &r), start.elapsed())
}

/// Stops the first controller `after` (as a signal would), then resumes:
/// by the same idempotency key (`by_key`) or by id (`resume-all`).
async fn interrupted(sc: &Scenario, after: Duration, by_key: bool) -> End {
    let s = setup(sc);
    let _ = s.deployer.clone().with_delay(Duration::from_millis(700));
    let inner: Arc<dyn StateStore> = Arc::new(MemoryStore::new());
    let request = s.request.clone().with_idempotency_key("build-1");
    let first = exec(inner.clone(), &inner, &s, "ctl-a");
    let id = first.create(&request).await.unwrap().id;
    let stop = async move {
        tokio::time::sleep(after).await;
        "SIGINT".to_string()
    };
    let r = first.run_until(id, stop).await.unwrap();
    if r.interrupted.is_none() {
        return end(&s, &r);
    }
    assert_eq!(r.outcome, None, "stopped before the end");
    assert!(
        inner.lease_info(id).await.unwrap().is_none(),
        "the lease is released"
    );
    let log = inner.events(id, 0).await.unwrap();
    let replayed = Rollout::replay(id, inner.request(id).await.unwrap(), &log).unwrap();
    let why = replayed.interrupted.expect("status shows interrupted");
    assert_eq!((why.by.as_str(), why.reason.as_str()), ("ctl-a", "SIGINT"));
    let second = exec(inner.clone(), &inner, &s, "ctl-b");
    let r = if by_key {
        second.submit(request).await.unwrap()
    } else {
        second.run(id).await.unwrap()
    };
    assert!(r.rollout.interrupted.is_none(), "taken on again");
    end(&s, &r)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn an_interrupted_run_resumed_by_key_or_id_ends_like_an_undisturbed_one(
        sc in scenario(),
        at in 0.0f64..1.0,
        by_key in any::<bool>(),
    ) {
        rt().block_on(async {
            let (expected, took) = undisturbed(&sc).await;
            let after = took.mul_f64(at);
            let got = interrupted(&sc, after, by_key).await;
            prop_assert_eq!(&got, &expected, "stopped after {:?} of {:?}", after, took);
            Ok(())
        })?;
    }
}
