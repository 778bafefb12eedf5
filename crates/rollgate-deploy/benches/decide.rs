//! The pure state machine over a whole rollout: `apply` every event and ask
//! `decide` after each, as the driver does, for fleets of 1,000 to 50,000
//! targets. No store, no I/O: what is measured is the executor's own work
//! per event, which must not grow with the fleet.
//!
//! The driver is simulated in memory, as the executor drives: deploys are
//! started as `decide_in_flight` asks (each phase at its default
//! concurrency, the whole phase at once, or five at a time), and finish one
//! at a time, in start order, each followed by a decide (the worst case: no
//! group commit). `forward` promotes every phase; `rollback` is told to roll
//! back at the last phase's gate and restores every target;
//! `forward_decide_any_set` asks `decide` with a plain set of targets
//! (1,000 targets only: its work grows with the targets in flight).
//!
//! Run: `cargo bench -p rollgate-deploy --bench decide`
//! (`ROLLGATE_BENCH_SIZES=1000,10000` picks the fleet sizes).

use std::collections::VecDeque;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use rollgate_deploy::{
    Action, Artifact, Decision, Digest, Event, EventRecord, InFlight, Percent, PhaseDefaults,
    Rollout, RolloutId, RolloutRequest, Strategy, TargetId,
};

/// Drives a rollout of `n` targets to its end; returns the events applied.
fn drive(n: usize, concurrency: usize, roll_back: bool, any_set: bool) -> u64 {
    let targets: Vec<TargetId> = (0..n)
        .map(|i| format!("web-{i}").parse().expect("target"))
        .collect();
    let steps = [10.0, 50.0, 100.0].map(|p| Percent::new(p).expect("percent"));
    let plan = Strategy::Canary {
        steps: steps.to_vec(),
    }
    .compile(
        &targets,
        &PhaseDefaults::default()
            .with_gate(true)
            .with_concurrency(concurrency)
            .with_bake(Duration::from_secs(60)),
    )
    .expect("plan");
    let v1 = Artifact::new("v1", Digest::of_bytes(b"v1"));
    let v2 = Artifact::new("v2", Digest::of_bytes(b"v2"));
    let mut req = RolloutRequest::new("web", v2, plan, "bench");
    req.previous = Some(v1.clone());
    let last_phase = req.plan.phases.len() - 1;
    let mut r = Rollout::new(RolloutId(1), req);
    r.gate_attached = true;
    let mut seq = 0;
    let mut apply = |r: &mut Rollout, event: Event| {
        seq += 1;
        r.apply(&EventRecord {
            seq,
            at_ms: 0,
            actor: "bench".into(),
            event,
        })
        .expect("applies");
    };
    let mut running = InFlight::default();
    let mut order: VecDeque<(TargetId, bool)> = VecDeque::new();
    loop {
        let actions = if any_set {
            r.decide(running.targets())
        } else {
            r.decide_in_flight(&running)
        };
        // Whether this round changed anything (recorded or started work).
        let mut started = false;
        let mut next = None;
        for a in actions {
            match a {
                Action::Record(e) => {
                    apply(&mut r, e);
                    started = true;
                }
                Action::Deploy { target, fresh } => {
                    if fresh {
                        apply(
                            &mut r,
                            Event::DeployIntent {
                                target: target.clone(),
                                previous: Some(v1.clone()),
                                note: None,
                            },
                        );
                    }
                    running.start(target.clone(), true);
                    order.push_back((target, true));
                    started = true;
                }
                Action::Restore { target, to, fresh } => {
                    if fresh {
                        apply(
                            &mut r,
                            Event::RestoreIntent {
                                target: target.clone(),
                                to,
                            },
                        );
                    }
                    running.start(target.clone(), false);
                    order.push_back((target, false));
                    started = true;
                }
                Action::Stop => return seq,
                other => next = Some(other),
            }
        }
        if started {
            continue;
        }
        match next {
            Some(Action::Bake { phase, .. }) => apply(&mut r, Event::BakeElapsed { phase }),
            Some(Action::AskGate(ctx)) => {
                let decision = if roll_back && ctx.phase == last_phase {
                    Decision::Rollback(vec!["errors above 1 %".into()])
                } else {
                    Decision::Promote(vec!["healthy".into()])
                };
                apply(
                    &mut r,
                    Event::GateDecided {
                        phase: ctx.phase,
                        decision,
                        evidence: None,
                    },
                );
            }
            Some(Action::Wait) | None => {
                let Some((target, forward)) = order.pop_front() else {
                    if r.is_finished() {
                        return seq;
                    }
                    panic!("waiting with nothing in flight");
                };
                running.finish(&target);
                apply(
                    &mut r,
                    if forward {
                        Event::TargetDeployed { target }
                    } else {
                        Event::TargetRestored { target }
                    },
                );
            }
            Some(other) => panic!("unexpected action {other:?}"),
        }
    }
}

/// (name, concurrency, roll back, `decide` with a plain set instead of
/// `decide_in_flight`). The last walks the targets in flight on every
/// event (the whole phase here), so it runs only on the smallest fleet.
const SHAPES: [(&str, usize, bool, bool); 4] = [
    ("forward", 0, false, false),
    ("forward_5_at_a_time", 5, false, false),
    ("rollback", 0, true, false),
    ("forward_decide_any_set", 0, false, true),
];

fn shapes(n: usize) -> impl Iterator<Item = (&'static str, usize, bool, bool)> {
    SHAPES.into_iter().filter(move |s| !s.3 || n <= 1_000)
}

fn sizes() -> Vec<usize> {
    std::env::var("ROLLGATE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 50_000])
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("rollout_apply_decide");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    for n in sizes() {
        g.throughput(Throughput::Elements(n as u64));
        for (name, concurrency, back, any) in shapes(n) {
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter(|| drive(n, concurrency, back, any));
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    // One pass of each shape first: the event counts tell what was driven.
    for n in sizes() {
        for (name, concurrency, back, any) in shapes(n) {
            let start = std::time::Instant::now();
            let events = drive(n, concurrency, back, any);
            println!(
                "{name}/{n}: {events} events in {:.1} ms",
                start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
