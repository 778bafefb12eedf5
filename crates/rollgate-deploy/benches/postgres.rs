//! Durable transitions/s into PostgreSQL: `PostgresStore`'s group commit
//! against single-row commits (one transaction per event, with the same fence
//! check, insert and sequence update) on the same server, in one run.
//!
//! Run: `bash scripts/postgres.sh run cargo bench -p rollgate-deploy
//! --features postgres --bench postgres` (needs `ROLLGATE_TEST_POSTGRES_URL`;
//! the server from scripts/postgres.sh has `fsync = on` and `synchronous_commit
//! = on`, so every acknowledged transition is on disk). BENCHMARKS.md records it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rollgate_deploy::{
    Artifact, Digest, Event, Fence, PhaseDefaults, PostgresStore, RolloutId, RolloutRequest,
    StateStore, Strategy, TargetId, Writer,
};
use tokio_postgres::{Client, NoTls};

const IN_FLIGHT: usize = 1000;

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

async fn fresh_database(server: &str, name: &str) -> String {
    let c = connect(server).await;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

async fn rollout(store: &PostgresStore, targets: &[TargetId]) -> (RolloutId, Fence) {
    let plan = Strategy::AllAtOnce
        .compile(targets, &PhaseDefaults::default())
        .unwrap();
    let req = RolloutRequest::new(
        "bench",
        Artifact::new("v2", Digest::of_bytes(b"v2")),
        plan,
        "bench",
    );
    let id = store.create(&req).await.unwrap().id;
    let fence = store
        .lease(id, "bench", Duration::from_secs(3600))
        .await
        .unwrap();
    (id, fence)
}

/// `rounds` rounds of one transition per target, all targets at once, through
/// the store (group commit). Returns transitions/s and the p99 wait.
async fn group_commit(
    store: Arc<PostgresStore>,
    id: RolloutId,
    fence: Fence,
    targets: Arc<Vec<TargetId>>,
    in_flight: usize,
    rounds: usize,
) -> (f64, Duration) {
    let start = Instant::now();
    let mut waits = Vec::new();
    for _ in 0..rounds {
        let mut tasks = Vec::with_capacity(in_flight);
        for i in 0..in_flight {
            let (store, targets) = (store.clone(), targets.clone());
            tasks.push(tokio::spawn(async move {
                let t0 = Instant::now();
                let event = Event::TargetDeployed {
                    target: targets[i].clone(),
                };
                let w = Writer::Controller {
                    owner: "bench",
                    fence,
                };
                store.append(id, w, &[event]).await.unwrap();
                t0.elapsed()
            }));
        }
        for t in tasks {
            waits.push(t.await.unwrap());
        }
    }
    let rate = waits.len() as f64 / start.elapsed().as_secs_f64();
    waits.sort();
    (rate, waits[waits.len() * 99 / 100])
}

/// Single-row commits: `n` transitions spread over `conns` connections, each
/// in its own transaction (lock the rollout row, check the fence, insert the
/// event, bump the sequence, commit).
async fn single_row_commits(url: &str, id: RolloutId, fence: Fence, conns: usize, n: usize) -> f64 {
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(connect(url).await);
    }
    let body = serde_json::to_string(&Event::TargetDeployed {
        target: "t0".parse().unwrap(),
    })
    .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (k, mut c) in clients.into_iter().enumerate() {
        let body = body.clone();
        let share = n / conns + usize::from(k < n % conns);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                let tx = c.transaction().await.unwrap();
                let row = tx
                    .query_one(
                        "SELECT lease_fence, last_seq FROM rollouts WHERE id = $1 FOR UPDATE",
                        &[&(id.0 as i64)],
                    )
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, i64>(0), fence.0 as i64, "stale fence");
                let seq: i64 = row.get::<_, i64>(1) + 1;
                tx.execute(
                    "INSERT INTO events (rollout, seq, at_ms, actor, action, target, body) VALUES ($1, $2, 0, 'bench', 'target_deployed', 't0', $3)",
                    &[&(id.0 as i64), &seq, &body],
                )
                .await
                .unwrap();
                tx.execute(
                    "UPDATE rollouts SET last_seq = $2 WHERE id = $1",
                    &[&(id.0 as i64), &seq],
                )
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let Ok(server) = std::env::var("ROLLGATE_TEST_POSTGRES_URL") else {
        eprintln!("ROLLGATE_TEST_POSTGRES_URL is not set: run through scripts/postgres.sh run");
        std::process::exit(2);
    };
    // `cargo bench` passes `--bench`; this bench takes no other arguments.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = fresh_database(&server, "rg_bench").await;
        let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
        let targets: Arc<Vec<TargetId>> = Arc::new(
            (0..IN_FLIGHT)
                .map(|i| format!("t{i}").parse().unwrap())
                .collect(),
        );
        // Warm up the connections and the tables.
        let (id, fence) = rollout(&store, &targets).await;
        group_commit(store.clone(), id, fence, targets.clone(), IN_FLIGHT, 2).await;

        let (id, fence) = rollout(&store, &targets).await;
        let (gc, gc_p99) =
            group_commit(store.clone(), id, fence, targets.clone(), IN_FLIGHT, 30).await;
        let (id, fence) = rollout(&store, &targets).await;
        let (seq, _) = group_commit(store.clone(), id, fence, targets.clone(), 1, 2000).await;
        let (id, fence) = rollout(&store, &targets).await;
        let single1 = single_row_commits(&url, id, fence, 1, 2000).await;
        let (id, fence) = rollout(&store, &targets).await;
        let single16 = single_row_commits(&url, id, fence, 16, 4000).await;
        println!("PostgreSQL durable transitions/s, one rollout, same server, one run:");
        println!(
            "  group commit (PostgresStore), {IN_FLIGHT} in flight, 30 rounds: {gc:.0}/s, wait p99 {:.1} ms",
            gc_p99.as_secs_f64() * 1e3
        );
        println!("  PostgresStore, 1 in flight (one commit per transition): {seq:.0}/s");
        println!("  single-row commits, 1 connection: {single1:.0}/s");
        println!("  single-row commits, 16 connections: {single16:.0}/s");
        println!(
            "  ratio group commit / best single-row: {:.1}x",
            gc / single1.max(single16)
        );
    });
}
