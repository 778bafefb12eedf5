//! Simulation harness: seeded scenario families judged by rollgate-canary
//! and by a Kayenta-style reference judge on the same draws; prints
//! false-rollback and detection rates as a Markdown table.
//!
//! ```text
//! cargo run --release -p rollgate-canary --example simulate [TRIALS]
//! ```
//!
//! The Kayenta-style judge follows Kayenta's `MannWhitneyClassifier`
//! (confidence 0.95, `fraction` 0.25): a metric is high when the lower end of
//! the Hodges-Lehmann confidence interval exceeds 0.25 x |estimate|, low when
//! the upper end is below -0.25 x |estimate|; error counts reach it the way
//! Kayenta gets them from a time-series store, as per-interval counts; the
//! score is the share of passing metrics with pass 95 / marginal 75.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, LogNormal, Normal};
use rollgate_canary::stats::{hodges_lehmann, sorted_finite};
use rollgate_canary::{Analysis, AnalysisConfig, MetricSamples, SampleSet, Verdict};

/// The issue's minimal config with the latency bound at +2 % (so a +5 % p99
/// regression lies beyond it) — everything else as written.
const CONFIG: &str = r#"
alpha = 0.01
[score]
pass = 95
marginal = 75

[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
weight = 1.0
critical = false
min_samples = 50
relative = { max_increase_pct = 2.0 }
threshold = { p99_max = 500.0 }

[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
weight = 1.0
critical = true
min_events = 0
relative = { max_increase_pct = 50.0 }
threshold = { ratio_max = 0.01 }
"#;

#[derive(Clone, Copy)]
enum Lat {
    Normal,
    LogNormal,
    Ties,
    TailP99Plus5,
    Bimodal,
}

struct Scenario {
    name: &'static str,
    regression: bool,
    n: usize,
    lat: Lat,
    trials_per_cohort: u64,
    err_base: f64,
    err_canary: f64,
}

const INTERVALS: u64 = 60;

fn draw_latency(rng: &mut ChaCha8Rng, lat: Lat, n: usize, canary: bool) -> Vec<f64> {
    let ln = LogNormal::new(100f64.ln(), 0.5).expect("lognormal");
    match lat {
        Lat::Normal => {
            let d = Normal::new(100.0f64, 15.0).expect("normal");
            (0..n).map(|_| d.sample(rng).max(0.0)).collect()
        }
        Lat::LogNormal => (0..n).map(|_| ln.sample(rng)).collect(),
        Lat::Ties => (0..n)
            .map(|_| (ln.sample(rng) / 10.0).round() * 10.0)
            .collect(),
        Lat::TailP99Plus5 => {
            // Stretch the tail above the p95 so the p99 moves +5 %, the median not at all.
            let (q95, q99) = (
                100.0 * (0.5f64 * 1.644_853_6).exp(),
                100.0 * (0.5f64 * 2.326_347_9).exp(),
            );
            let s = (1.05 * q99 - q95) / (q99 - q95);
            (0..n)
                .map(|_| {
                    let v = ln.sample(rng);
                    if canary && v > q95 {
                        q95 + (v - q95) * s
                    } else {
                        v
                    }
                })
                .collect()
        }
        Lat::Bimodal => (0..n)
            .map(|_| {
                let v = ln.sample(rng);
                // 5 % of canary requests take a slow path at 3x.
                if canary && rng.random::<f64>() < 0.05 {
                    v * 3.0
                } else {
                    v
                }
            })
            .collect(),
    }
}

/// Per-interval error counts (what a time-series store gives Kayenta).
fn draw_errors(rng: &mut ChaCha8Rng, trials: u64, p: f64) -> Vec<u64> {
    let per = trials / INTERVALS;
    let b = Binomial::new(per, p).expect("binomial");
    (0..INTERVALS).map(|_| b.sample(rng)).collect()
}

fn kayenta_classify(control: &[f64], experiment: &[f64]) -> Option<bool> {
    if control.is_empty() || experiment.is_empty() {
        return None; // no data
    }
    if control == experiment {
        return Some(false);
    }
    let c = sorted_finite("control", control).ok()?;
    let e = sorted_finite("experiment", experiment).ok()?;
    let hl = hodges_lehmann(&c, &e, 0.05).ok()?;
    let bound = 0.25 * hl.shift.abs();
    Some(hl.lo > bound) // High fails (direction increase)
}

fn kayenta_verdict(lat_b: &[f64], lat_c: &[f64], err_b: &[u64], err_c: &[u64]) -> Verdict {
    let eb: Vec<f64> = err_b.iter().map(|&v| v as f64).collect();
    let ec: Vec<f64> = err_c.iter().map(|&v| v as f64).collect();
    let results = [kayenta_classify(lat_b, lat_c), kayenta_classify(&eb, &ec)];
    let with_data: Vec<bool> = results.iter().flatten().copied().collect();
    if with_data.is_empty() {
        return Verdict::Inconclusive;
    }
    let score = 100.0 * with_data.iter().filter(|f| !**f).count() as f64 / with_data.len() as f64;
    if score >= 95.0 {
        Verdict::Promote
    } else if score >= 75.0 {
        Verdict::Inconclusive
    } else {
        Verdict::Rollback
    }
}

fn main() {
    let trials: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let analysis =
        Analysis::new(AnalysisConfig::from_toml_str(CONFIG).expect("config")).expect("valid");
    let scenarios = [
        Scenario {
            name: "A/A normal",
            regression: false,
            n: 2000,
            lat: Lat::Normal,
            trials_per_cohort: 300_000,
            err_base: 0.002,
            err_canary: 0.002,
        },
        Scenario {
            name: "A/A log-normal",
            regression: false,
            n: 2000,
            lat: Lat::LogNormal,
            trials_per_cohort: 300_000,
            err_base: 0.002,
            err_canary: 0.002,
        },
        Scenario {
            name: "A/A heavy ties (10 ms buckets)",
            regression: false,
            n: 2000,
            lat: Lat::Ties,
            trials_per_cohort: 300_000,
            err_base: 0.002,
            err_canary: 0.002,
        },
        Scenario {
            name: "A/A mostly-zero errors (0.005 %)",
            regression: false,
            n: 2000,
            lat: Lat::LogNormal,
            trials_per_cohort: 120_000,
            err_base: 0.00005,
            err_canary: 0.00005,
        },
        Scenario {
            name: "A/A low traffic (60 req/cohort)",
            regression: false,
            n: 60,
            lat: Lat::LogNormal,
            trials_per_cohort: 6_000,
            err_base: 0.002,
            err_canary: 0.002,
        },
        Scenario {
            name: "+5 % p99 (tail only, 200k req)",
            regression: true,
            n: 200_000,
            lat: Lat::TailP99Plus5,
            trials_per_cohort: 300_000,
            err_base: 0.002,
            err_canary: 0.002,
        },
        Scenario {
            name: "2x error rate (0.2 -> 0.4 %)",
            regression: true,
            n: 2000,
            lat: Lat::LogNormal,
            trials_per_cohort: 300_000,
            err_base: 0.002,
            err_canary: 0.004,
        },
        Scenario {
            name: "bimodal: 5 % of requests 3x slower",
            regression: true,
            n: 2000,
            lat: Lat::Bimodal,
            trials_per_cohort: 300_000,
            err_base: 0.002,
            err_canary: 0.002,
        },
        Scenario {
            name: "mostly-zero errors 10x (0.005 -> 0.05 %)",
            regression: true,
            n: 2000,
            lat: Lat::LogNormal,
            trials_per_cohort: 120_000,
            err_base: 0.00005,
            err_canary: 0.0005,
        },
        Scenario {
            name: "heavy ties + bimodal",
            regression: true,
            n: 2000,
            lat: Lat::Bimodal,
            trials_per_cohort: 300_000,
            err_base: 0.002,
            err_canary: 0.002,
        },
    ];
    println!("trials per scenario: {trials}; seed 20261123; config: benches/canary/README.md\n");
    println!(
        "| scenario | expected | rollgate rollback | rollgate inconclusive | Kayenta-style rollback | Kayenta-style inconclusive |"
    );
    println!("|---|---|---|---|---|---|");
    for (si, s) in scenarios.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(20_261_123 + si as u64);
        let (mut ours, mut ours_inc, mut kay, mut kay_inc) = (0u32, 0u32, 0u32, 0u32);
        for _ in 0..trials {
            let mut lb = draw_latency(&mut rng, s.lat, s.n, false);
            let mut lc = draw_latency(&mut rng, s.lat, s.n, true);
            if s.name.starts_with("heavy ties") {
                for v in lb.iter_mut().chain(lc.iter_mut()) {
                    *v = (*v / 10.0).round() * 10.0;
                }
            }
            let eb = draw_errors(&mut rng, s.trials_per_cohort, s.err_base);
            let ec = draw_errors(&mut rng, s.trials_per_cohort, s.err_canary);
            let per = s.trials_per_cohort / INTERVALS * INTERVALS;
            let mut data = SampleSet::default();
            data.insert("latency_ms", MetricSamples::values(lb.clone(), lc.clone()));
            data.insert(
                "errors",
                MetricSamples::counts((eb.iter().sum(), per), (ec.iter().sum(), per)),
            );
            match analysis.judge(&data).map(|r| r.verdict) {
                Ok(Verdict::Rollback) => ours += 1,
                Ok(Verdict::Inconclusive) => ours_inc += 1,
                Ok(_) => {}
                Err(e) => panic!("{}: {e}", s.name),
            }
            match kayenta_verdict(&lb, &lc, &eb, &ec) {
                Verdict::Rollback => kay += 1,
                Verdict::Inconclusive => kay_inc += 1,
                _ => {}
            }
        }
        let pct = |n: u32| format!("{:.1} %", 100.0 * f64::from(n) / f64::from(trials));
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            s.name,
            if s.regression { "rollback" } else { "promote" },
            pct(ours),
            pct(ours_inc),
            pct(kay),
            pct(kay_inc)
        );
    }
}
