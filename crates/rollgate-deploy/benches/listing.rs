//! `rollout list` and `rollout history` over 10,000 recorded rollouts in
//! SQLite: the store calls those commands make, on a file holding 10,000
//! finished rollouts of 10 services (10 targets and 24 events each).
//!
//! Run: `cargo bench -p rollgate-deploy --bench listing`. With
//! `LISTING_DB=/path/state.db` the populated file is kept there, so the
//! real commands can be timed on it (`rollgate rollout list --state ...`);
//! BENCHMARKS.md records both.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use rollgate_deploy::{
    Artifact, Digest, Durability, Event, ListFilter, Outcome, PhaseDefaults, RolloutRequest,
    SqliteOptions, SqliteStore, StateStore, Strategy, TargetId, Writer,
};

const ROLLOUTS: usize = 10_000;
const SERVICES: usize = 10;

fn populate(store: &SqliteStore, rt: &tokio::runtime::Runtime) {
    let targets: Vec<TargetId> = (1..=10)
        .map(|i| format!("web-{i}").parse().unwrap())
        .collect();
    let plan = Strategy::Canary {
        steps: vec![
            rollgate_deploy::Percent::new(10.0).unwrap(),
            rollgate_deploy::Percent::FULL,
        ],
    }
    .compile(&targets, &PhaseDefaults::default())
    .unwrap();
    rt.block_on(async {
        for i in 0..ROLLOUTS {
            let v = format!("v{i}");
            let artifact = Artifact::new(&v, Digest::of_bytes(v.as_bytes()));
            let req = RolloutRequest::new(
                format!("svc-{}", i % SERVICES),
                artifact,
                plan.clone(),
                "bench",
            )
            .with_no_rollback_ok(true);
            let id = store.create(&req).await.unwrap().id;
            let fence = store
                .lease(id, "bench", Duration::from_secs(60))
                .await
                .unwrap();
            let mut events = vec![Event::ControllerStarted {
                owner: "bench".into(),
                fence: fence.0,
            }];
            for t in &targets {
                events.push(Event::DeployIntent {
                    target: t.clone(),
                    previous: None,
                    note: None,
                });
                events.push(Event::TargetDeployed { target: t.clone() });
            }
            let outcome = if i % 7 == 0 {
                Outcome::RolledBack
            } else {
                Outcome::Succeeded
            };
            events.push(Event::PhaseCompleted {
                phase: 0,
                reason: "baked; no gate".into(),
            });
            events.push(Event::PhaseCompleted {
                phase: 1,
                reason: "baked; no gate".into(),
            });
            events.push(Event::Finished { outcome });
            store
                .append(
                    id,
                    Writer::Controller {
                        owner: "bench",
                        fence,
                    },
                    &events,
                )
                .await
                .unwrap();
            store.release(id, fence).await.unwrap();
        }
    });
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("LISTING_DB")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("listing.db"));
    let options = SqliteOptions::default().with_durability(Durability::ProcessCrash);
    let store = Arc::new(SqliteStore::open_with(&path, &options).unwrap());
    if rt
        .block_on(store.list_where(&ListFilter::default().with_limit(1)))
        .unwrap()
        .is_empty()
    {
        populate(&store, &rt);
    }
    let mut g = c.benchmark_group("listing_10k_rollouts");
    // `rollout list` (default: the newest 50).
    g.bench_function("list_newest_50", |b| {
        b.iter(|| {
            rt.block_on(store.list_where(&ListFilter::default().with_limit(50)))
                .unwrap()
        })
    });
    // `rollout list --service svc-3 --status rolled_back`.
    g.bench_function("list_service_and_status", |b| {
        let f = ListFilter::default()
            .with_service("svc-3")
            .with_outcome(Some(Outcome::RolledBack))
            .with_limit(50);
        b.iter(|| rt.block_on(store.list_where(&f)).unwrap())
    });
    // `rollout history` (default: the newest 20 rollouts, every event).
    g.bench_function("history_newest_20", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut n = 0;
                for s in store
                    .list_where(&ListFilter::default().with_limit(20))
                    .await
                    .unwrap()
                {
                    let _ = store.request(s.id).await.unwrap();
                    n += store.events(s.id, 0).await.unwrap().len();
                }
                n
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
