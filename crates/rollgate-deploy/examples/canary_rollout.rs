//! A canary rollout of ten targets that a gate rolls back at 50 %.
//!
//! ```text
//! cargo run -p rollgate-deploy --example canary_rollout
//! ```
//!
//! rollgate-deploy is async: you bring a tokio runtime (here
//! `#[tokio::main]`) and `async-trait` for the `Deployer` and `Gate` impls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rollgate_deploy::{
    Artifact, Decision, Deployer, Digest, Error, Executor, Gate, GateContext, MemoryStore, Outcome,
    Percent, PhaseDefaults, Readiness, RolloutRequest, StateStore, Strategy, TargetId,
};

/// A deployer that keeps what each target runs in memory.
#[derive(Default)]
struct InMemory(Mutex<BTreeMap<TargetId, Digest>>);

#[async_trait]
impl Deployer for InMemory {
    async fn deploy(&self, t: &TargetId, a: &Artifact) -> Result<(), Error> {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        running.insert(t.clone(), a.digest.clone());
        Ok(())
    }
    async fn current(&self, t: &TargetId) -> Result<Option<Digest>, Error> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(t)
            .cloned())
    }
    async fn readiness(&self, _: &TargetId) -> Result<Readiness, Error> {
        Ok(Readiness::Ready)
    }
}

/// Promotes up to 50 % of the targets, then rolls back: a stand-in for
/// real analysis (rollgate's `CanaryGate`).
struct Judge;

#[async_trait]
impl Gate for Judge {
    async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
        Ok(if at.percent.get() <= 50.0 {
            Decision::Promote(vec![format!("healthy at {}", at.percent)])
        } else {
            Decision::Rollback(vec!["p99 620 ms > 500 ms".into()])
        })
    }
}

// Paused time: the 5-minute bakes pass at once, as in tests.
#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Error> {
    let targets: Vec<TargetId> = (1..=10)
        .map(|i| format!("web-{i}").parse())
        .collect::<Result<_, _>>()?;
    let v1 = Artifact::new("v1", Digest::of_bytes(b"v1"));
    let v2 = Artifact::new("v2", Digest::of_bytes(b"v2"));
    let deployer = Arc::new(InMemory::default());
    for t in &targets {
        deployer.deploy(t, &v1).await?;
    }
    let store = Arc::new(MemoryStore::new());
    store.register_artifact(&v1).await?;

    let steps = vec![Percent::new(10.0)?, Percent::new(50.0)?, Percent::FULL];
    let defaults = PhaseDefaults::default()
        .with_bake(Duration::from_secs(300))
        .with_gate(true);
    let plan = Strategy::Canary { steps }.compile(&targets, &defaults)?;
    let exec = Executor::new(store.clone(), deployer.clone()).with_gate(Arc::new(Judge));
    let report = exec
        .submit(RolloutRequest::new("web", v2, plan, "alice"))
        .await?;

    println!("outcome: {:?}", report.outcome);
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    for t in &targets {
        assert_eq!(deployer.current(t).await?, Some(v1.digest.clone()));
    }
    println!("every target runs v1 again");
    Ok(())
}
