//! Durable state transitions into SQLite with 1,000 targets in flight, using
//! group commit, against the raw fsync rate of the same disk.
//!
//! Run: `cargo bench -p rollgate-deploy --bench store`. Besides criterion's
//! report it prints a summary (transitions/s, p50/p99 wait, raw fsyncs/s and
//! their ratio) measured in the same run; BENCHMARKS.md records it.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use rollgate_deploy::{
    Durability, Event, Fence, PhaseDefaults, RolloutId, RolloutRequest, SqliteOptions, SqliteStore,
    StateStore, Strategy, TargetId, Writer,
};

const IN_FLIGHT: usize = 1000;

struct Bench {
    rt: tokio::runtime::Runtime,
    store: Arc<SqliteStore>,
    id: RolloutId,
    fence: Fence,
    targets: Arc<Vec<TargetId>>,
    _dir: tempfile::TempDir,
}

fn setup(durability: Durability) -> Bench {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let options = SqliteOptions::default().with_durability(durability);
    let store = Arc::new(SqliteStore::open_with(dir.path().join("bench.db"), &options).unwrap());
    let targets: Vec<TargetId> = (0..IN_FLIGHT)
        .map(|i| format!("t{i}").parse().unwrap())
        .collect();
    let plan = Strategy::AllAtOnce
        .compile(&targets, &PhaseDefaults::default())
        .unwrap();
    let artifact = rollgate_deploy::Artifact::new("v2", rollgate_deploy::Digest::of_bytes(b"v2"));
    let (id, fence) = rt.block_on(async {
        let id = store
            .create(&RolloutRequest::new("bench", artifact, plan, "bench"))
            .await
            .unwrap()
            .id;
        let fence = store
            .lease(id, "bench", Duration::from_secs(3600))
            .await
            .unwrap();
        (id, fence)
    });
    Bench {
        rt,
        store,
        id,
        fence,
        targets: Arc::new(targets),
        _dir: dir,
    }
}

/// One durable transition for `target`; returns how long the caller waited.
async fn append_one(
    store: &SqliteStore,
    id: RolloutId,
    fence: Fence,
    target: &TargetId,
) -> Duration {
    let event = Event::TargetDeployed {
        target: target.clone(),
    };
    let start = Instant::now();
    let writer = Writer::Controller {
        owner: "bench",
        fence,
    };
    store.append(id, writer, &[event]).await.unwrap();
    start.elapsed()
}

/// One round: every target appends one transition at once; returns each wait.
async fn round(b: &Bench) -> Vec<Duration> {
    let mut tasks = Vec::with_capacity(IN_FLIGHT);
    for i in 0..IN_FLIGHT {
        let store = b.store.clone();
        let targets = b.targets.clone();
        let (id, fence) = (b.id, b.fence);
        tasks.push(tokio::spawn(async move {
            append_one(&store, id, fence, &targets[i]).await
        }));
    }
    let mut waits = Vec::with_capacity(IN_FLIGHT);
    for t in tasks {
        waits.push(t.await.unwrap());
    }
    waits
}

/// Open loop: each of the 1,000 targets emits one transition every
/// `IN_FLIGHT / rate` seconds (phases staggered), for `secs`; returns the waits
/// and the achieved rate.
async fn offered(b: &Bench, rate: f64, secs: f64) -> (Vec<Duration>, f64) {
    let period = Duration::from_secs_f64(IN_FLIGHT as f64 / rate);
    let ticks = (secs / period.as_secs_f64()) as usize;
    let t0 = tokio::time::Instant::now() + Duration::from_millis(10);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(IN_FLIGHT);
    for i in 0..IN_FLIGHT {
        let store = b.store.clone();
        let targets = b.targets.clone();
        let (id, fence) = (b.id, b.fence);
        let phase = period.mul_f64(i as f64 / IN_FLIGHT as f64);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(t0 + phase, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut waits = Vec::with_capacity(ticks);
            for _ in 0..ticks {
                tick.tick().await;
                waits.push(append_one(&store, id, fence, &targets[i]).await);
            }
            waits
        }));
    }
    let mut waits = Vec::new();
    for t in tasks {
        waits.extend(t.await.unwrap());
    }
    let achieved = waits.len() as f64 / start.elapsed().as_secs_f64();
    (waits, achieved)
}

fn raw_fsync(dir: &std::path::Path, n: usize) -> Duration {
    let path = dir.join("fsync.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&[7u8; 128]).unwrap();
        f.sync_data().unwrap();
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let b = setup(Durability::PowerLoss);
    let mut g = c.benchmark_group("sqlite_group_commit");
    g.sample_size(10);
    g.throughput(Throughput::Elements(IN_FLIGHT as u64));
    g.bench_function("1000_targets_in_flight", |bencher| {
        bencher.iter(|| b.rt.block_on(round(&b)));
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_fsync_128B", |bencher| {
        bencher.iter(|| raw_fsync(b._dir.path(), 1));
    });
    g.finish();
}

fn summary(durability: Durability) {
    let b = setup(durability);
    b.rt.block_on(round(&b)); // warm up
    let rounds = 30;
    let start = Instant::now();
    let mut waits = Vec::new();
    for _ in 0..rounds {
        waits.extend(b.rt.block_on(round(&b)));
    }
    let elapsed = start.elapsed();
    waits.sort();
    let pct = |p: f64| waits[((waits.len() as f64 * p) as usize).min(waits.len() - 1)];
    let per_s = (rounds * IN_FLIGHT) as f64 / elapsed.as_secs_f64();
    let (mut open, achieved) = b.rt.block_on(offered(&b, 50_000.0, 4.0));
    open.sort();
    let opct = |p: f64| open[((open.len() as f64 * p) as usize).min(open.len() - 1)];
    let n = 300;
    let fs = raw_fsync(b._dir.path(), n);
    let fsync_per_s = n as f64 / fs.as_secs_f64();
    println!("\n== summary (one run), durability {durability:?} ==");
    println!("durable transitions/s with {IN_FLIGHT} in flight : {per_s:>10.0}");
    println!(
        "wait p50 / p99 / max                      : {:?} / {:?} / {:?}",
        pct(0.50),
        pct(0.99),
        waits[waits.len() - 1]
    );
    println!(
        "open loop, 50,000/s offered by {IN_FLIGHT} targets : {achieved:>10.0}/s achieved, wait p50 {:?} p99 {:?}",
        opct(0.50),
        opct(0.99)
    );
    println!("raw fsync/s (128 B write + fdatasync)     : {fsync_per_s:>10.0}");
    println!(
        "ratio transitions/s : raw fsync/s          : {:>10.1}x",
        per_s / fsync_per_s
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    summary(Durability::PowerLoss);
    summary(Durability::ProcessCrash);
    Criterion::default().configure_from_args().final_summary();
}
