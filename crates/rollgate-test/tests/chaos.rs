//! The in-process chaos suite: 1,000 seeds per run, split in four tests so
//! nextest runs them side by side. A failure names its seed; replay one with
//!
//! ```text
//! CHAOS_SEED=123 cargo nextest run -p rollgate-test --test chaos --no-capture --run-ignored only replay
//! ```
//!
//! (`replay` is an ignored test: a normal run does not count it.)
//! `CHAOS_SEEDS=N` runs N seeds per quarter instead of 250 (e.g. a long
//! soak); `CHAOS_FROM=S` starts at seed S.

use rollgate_test::chaos::{self, StoreKind};

const PER_TEST: u64 = 250;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(n) => Some(n),
        Err(e) => panic!("{name}={v:?} is not a number: {e}"),
    }
}

/// Runs this quarter's seeds; panics naming every failing seed.
fn quarter(q: u64) {
    let per = env_u64("CHAOS_SEEDS").unwrap_or(PER_TEST);
    let from = env_u64("CHAOS_FROM").unwrap_or(1) + q * per;
    let mut failed = Vec::new();
    let mut endings = std::collections::BTreeMap::<String, u32>::new();
    for seed in from..from + per {
        let run = chaos::run_seed(seed, chaos::store_for(seed));
        for e in &run.endings {
            *endings.entry(e.clone()).or_default() += 1;
        }
        if !run.violations.is_empty() {
            eprintln!("{}", run.report());
            failed.push(seed);
        }
    }
    println!("chaos seeds {from}..{}: endings {endings:?}", from + per);
    assert!(
        failed.is_empty(),
        "chaos: {} of {per} seeds broke an invariant: {failed:?} (reports above; \
         replay one with CHAOS_SEED=<seed> cargo nextest run -p rollgate-test --test chaos \
         --no-capture --run-ignored only replay)",
        failed.len()
    );
}

#[test]
fn seeds_first_quarter() {
    quarter(0);
}

#[test]
fn seeds_second_quarter() {
    quarter(1);
}

#[test]
fn seeds_third_quarter() {
    quarter(2);
}

#[test]
fn seeds_fourth_quarter() {
    quarter(3);
}

/// Replays `CHAOS_SEED` and prints its report (see the module docs).
#[test]
#[ignore = "replays one seed: set CHAOS_SEED=N and pass --run-ignored only (see module docs)"]
fn replay() {
    let seed = env_u64("CHAOS_SEED").expect(
        "CHAOS_SEED=N names the seed to replay: CHAOS_SEED=N cargo nextest run -p rollgate-test \
         --test chaos --no-capture --run-ignored only replay",
    );
    let run = chaos::run_seed(seed, chaos::store_for(seed));
    println!("{}", run.report());
    assert!(run.violations.is_empty(), "{}", run.report());
}

/// The same seed gives the same run.
#[test]
fn a_seed_replays_the_same_run() {
    for seed in [3, 16] {
        let a = chaos::run_seed(seed, chaos::store_for(seed));
        let b = chaos::run_seed(seed, chaos::store_for(seed));
        assert_eq!(a.endings, b.endings, "seed {seed}");
        assert_eq!(a.trace, b.trace, "seed {seed}");
        assert_eq!(a.logs, b.logs, "seed {seed}");
        assert_eq!(a.evidence.effects, b.evidence.effects, "seed {seed}");
        assert_eq!(a.evidence.writes, b.evidence.writes, "seed {seed}");
    }
}

/// Seed 33 freezes a controller while its deploy waits to be made, past
/// its lease; another controller takes the rollout over. Resuming, the
/// frozen one must check its lease (as the executor does before every
/// deploy call) and stand down. Without that check it deploys under its old
/// fence after its successor wrote under a newer one, and the checker says
/// so: the check can fail, and the executor's lease check is what keeps it.
#[test]
fn seed_33_a_controller_frozen_past_its_lease_does_not_deploy_after_the_takeover() {
    let unchecked = chaos::run_seed_with(33, StoreKind::Memory, false);
    assert!(
        unchecked
            .violations
            .iter()
            .any(|v| v.invariant == rollgate_test::invariants::Invariant::Exclusive),
        "seed 33 no longer makes a frozen controller act late (the scenarios changed?):\n{}",
        unchecked.report()
    );
    let checked = chaos::run_seed(33, StoreKind::Memory);
    assert!(checked.violations.is_empty(), "{}", checked.report());
}
