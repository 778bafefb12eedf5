//! Simulation harness: seeded scenario families judged by rollgate-canary;
//! prints false-rollback and detection rates as Markdown tables and, with
//! `--check`, exits 1 when a rate misses its goal (loosened by the binomial
//! error of the number of trials).
//!
//! ```text
//! cargo run --release -p rollgate-canary --example simulate -- [TRIALS] [--check] [--known-miss ROW]...
//! ```
//!
//! Config: alpha 0.01; latency (log-normal, median 100 ms, sigma 0.5)
//! with `relative.max_increase_pct = 5`; errors critical with
//! `max_increase_pct = 50` (see `benches/canary/README.md`). Every latency
//! family runs in three variants on the same draws: continuous values,
//! whole milliseconds, and a histogram of the continuous values on fine
//! buckets (bounds `1.02^i`).

use std::process::ExitCode;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, LogNormal};
use rollgate_canary::stats::binomial_sf;
use rollgate_canary::{Analysis, AnalysisConfig, Histogram, MetricSamples, SampleSet, Verdict};

const CONFIG: &str = r#"
alpha = 0.01
[score]
pass = 95
marginal = 75

[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
min_samples = 50
relative = { max_increase_pct = 5.0 }

[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
critical = true
relative = { max_increase_pct = 50.0 }
"#;

const ALPHA: f64 = 0.01;
const ERR_TOLERANCE_RATIO: f64 = 1.5;

#[derive(Clone, Copy)]
enum Lat {
    Same,
    Scale(f64),
    /// The tail above the p95 stretched so the p99 moves by this factor.
    TailP99(f64),
    /// This share of canary requests takes a path this many times slower.
    Bimodal(f64, f64),
}

struct Family {
    name: String,
    regression: bool,
    /// Whether the family has a goal (false: a point on the power curve).
    goal: bool,
    n: usize,
    lat: Lat,
    err_trials: u64,
    err_base: f64,
    err_canary: f64,
}

fn draw_latency(rng: &mut ChaCha8Rng, lat: Lat, n: usize, canary: bool) -> Vec<f64> {
    let ln = LogNormal::new(100f64.ln(), 0.5).expect("lognormal");
    let (q95, q99) = (
        100.0 * (0.5f64 * 1.644_853_6).exp(),
        100.0 * (0.5f64 * 2.326_347_9).exp(),
    );
    (0..n)
        .map(|_| {
            let v = ln.sample(rng);
            if !canary {
                return v;
            }
            match lat {
                Lat::Same => v,
                Lat::Scale(f) => v * f,
                Lat::TailP99(f) => {
                    let s = (f * q99 - q95) / (q99 - q95);
                    if v > q95 { q95 + (v - q95) * s } else { v }
                }
                Lat::Bimodal(share, f) => {
                    if rng.random::<f64>() < share {
                        v * f
                    } else {
                        v
                    }
                }
            }
        })
        .collect()
}

fn fine_bounds() -> Vec<f64> {
    let mut le: Vec<f64> = (0..700).map(|i| 1.02f64.powi(i)).collect();
    le.push(f64::INFINITY);
    le
}

fn bucket(v: &[f64], le: &[f64]) -> Histogram {
    let mut per = vec![0u64; le.len()];
    for &x in v {
        per[le.partition_point(|&b| b < x)] += 1;
    }
    let mut acc = 0;
    let cum = per
        .iter()
        .map(|c| {
            acc += c;
            acc
        })
        .collect();
    Histogram::new(le.to_vec(), cum).expect("valid histogram")
}

#[derive(Default, Clone, Copy)]
struct Tally {
    rollback: u32,
    inconclusive: u32,
}

impl Tally {
    fn add(&mut self, v: Verdict) {
        match v {
            Verdict::Rollback => self.rollback += 1,
            Verdict::Inconclusive => self.inconclusive += 1,
            _ => {}
        }
    }
}

fn judge(a: &Analysis, lat: MetricSamples, errors: (u64, u64), trials: u64) -> Verdict {
    let mut s = SampleSet::default();
    s.insert("latency_ms", lat);
    s.insert(
        "errors",
        MetricSamples::counts((errors.0, trials), (errors.1, trials)),
    );
    match a.judge(&s) {
        Ok(r) => r.verdict,
        Err(e) => panic!("judgement failed: {e}"),
    }
}

/// Three standard errors of a rate `p` measured over `n` trials.
fn slack(p: f64, n: u32) -> f64 {
    3.0 * (p * (1.0 - p) / f64::from(n)).sqrt()
}

fn pct(k: u32, n: u32) -> f64 {
    100.0 * f64::from(k) / f64::from(n)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    // `--known-miss ROW`: a goal this build is known to miss; still printed
    // as missed, but not failing `--check` (see BENCHMARKS.md).
    let known: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--known-miss")
        .map(|w| w[1].clone())
        .collect();
    let trials: u32 = args
        .iter()
        .filter(|a| !known.contains(a))
        .find_map(|a| a.parse().ok())
        .unwrap_or(500)
        .max(1);
    let analysis =
        Analysis::new(AnalysisConfig::from_toml_str(CONFIG).expect("config")).expect("valid");
    let le = fine_bounds();
    let mut failures = Vec::new();

    let mut families = Vec::new();
    for n in [200usize, 2000, 100_000] {
        for (name, lat) in [
            ("A/A", Lat::Same),
            ("uniform x1.02 (inside T)", Lat::Scale(1.02)),
            ("uniform x1.04 (inside T)", Lat::Scale(1.04)),
        ] {
            families.push(Family {
                name: name.into(),
                regression: false,
                goal: true,
                n,
                lat,
                err_trials: 300_000,
                err_base: 0.002,
                err_canary: 0.002,
            });
        }
    }
    for (name, n, lat, goal) in [
        ("uniform x1.10", 2000, Lat::Scale(1.10), false),
        ("uniform x1.10", 100_000, Lat::Scale(1.10), true),
        ("p99 +15 %, tail only", 100_000, Lat::TailP99(1.15), true),
        (
            "bimodal: 5 % of requests 3x slower",
            2000,
            Lat::Bimodal(0.05, 3.0),
            true,
        ),
        (
            "bimodal: 5 % of requests 3x slower",
            100_000,
            Lat::Bimodal(0.05, 3.0),
            true,
        ),
    ] {
        families.push(Family {
            name: name.into(),
            regression: true,
            goal,
            n,
            lat,
            err_trials: 300_000,
            err_base: 0.002,
            err_canary: 0.002,
        });
    }
    families.push(Family {
        name: "A/A mostly-zero errors (0.005 %)".into(),
        regression: false,
        goal: true,
        n: 2000,
        lat: Lat::Same,
        err_trials: 120_000,
        err_base: 0.00005,
        err_canary: 0.00005,
    });
    families.push(Family {
        name: "mostly-zero errors 10x (0.005 -> 0.05 %)".into(),
        regression: true,
        goal: true,
        n: 2000,
        lat: Lat::Same,
        err_trials: 120_000,
        err_base: 0.00005,
        err_canary: 0.0005,
    });

    println!(
        "trials per row: {trials}; alpha {ALPHA}; latency T = 5 %, errors T = 50 %; seed 20261123\n"
    );
    println!("### Latency families (errors 0.2 % in both cohorts unless said)\n");
    println!(
        "| family | n per cohort | expected | continuous rollback | whole-ms rollback | histogram rollback | inconclusive (c / ms / h) | histogram = continuous verdict | goal |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut agree_total = (0u32, 0u32);
    for (fi, f) in families.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(20_261_123 + fi as u64);
        let (mut cont, mut ms, mut hist) = (Tally::default(), Tally::default(), Tally::default());
        let mut agree = 0u32;
        let eb_dist = Binomial::new(f.err_trials, f.err_base).expect("binomial");
        let ec_dist = Binomial::new(f.err_trials, f.err_canary).expect("binomial");
        for _ in 0..trials {
            let b = draw_latency(&mut rng, f.lat, f.n, false);
            let c = draw_latency(&mut rng, f.lat, f.n, true);
            let errs = (eb_dist.sample(&mut rng), ec_dist.sample(&mut rng));
            let hb = bucket(&b, &le);
            let hc = bucket(&c, &le);
            let round = |v: &[f64]| v.iter().map(|x| x.round()).collect::<Vec<f64>>();
            let (mb, mc) = (round(&b), round(&c));
            let vc = judge(&analysis, MetricSamples::values(b, c), errs, f.err_trials);
            let vm = judge(&analysis, MetricSamples::values(mb, mc), errs, f.err_trials);
            let vh = judge(
                &analysis,
                MetricSamples::histograms(hb, hc),
                errs,
                f.err_trials,
            );
            cont.add(vc);
            ms.add(vm);
            hist.add(vh);
            agree += u32::from(vc == vh);
        }
        agree_total.0 += agree;
        agree_total.1 += trials;
        // Strict goal, and the goal loosened by three binomial standard
        // errors of this N (what --check enforces).
        let (goal, strict, loose) = if !f.goal {
            ("none (a point on the power curve)".to_string(), true, true)
        } else if f.regression {
            let need = 99.0 - 100.0 * slack(0.01, trials);
            let worst = pct(cont.rollback.min(ms.rollback).min(hist.rollback), trials);
            (
                format!("detection >= 99 % (>= {need:.1} within this N's error)"),
                worst >= 99.0,
                worst >= need,
            )
        } else {
            let allow = 1.0 + 100.0 * slack(0.01, trials);
            let worst = pct(cont.rollback.max(ms.rollback).max(hist.rollback), trials);
            (
                format!("false rollback <= 1 % (<= {allow:.1} within this N's error)"),
                worst <= 1.0,
                worst <= allow,
            )
        };
        if !loose {
            failures.push(format!("{} n={}", f.name, f.n));
        }
        let ok = if strict {
            " ✓"
        } else if loose {
            " ≈ (within the binomial error)"
        } else {
            " ✗"
        };
        println!(
            "| {} | {} | {} | {:.1} % | {:.1} % | {:.1} % | {:.1} / {:.1} / {:.1} % | {:.1} % | {}{} |",
            f.name,
            f.n,
            if f.regression { "rollback" } else { "promote" },
            pct(cont.rollback, trials),
            pct(ms.rollback, trials),
            pct(hist.rollback, trials),
            pct(cont.inconclusive, trials),
            pct(ms.inconclusive, trials),
            pct(hist.inconclusive, trials),
            pct(agree, trials),
            goal,
            ok
        );
    }
    let agree_pct = pct(agree_total.0, agree_total.1);
    let agree_need = 99.0 - 100.0 * slack(0.01, agree_total.1);
    let agree_ok = agree_pct >= agree_need;
    if !agree_ok {
        failures.push("histogram verdict agreement".into());
    }
    println!(
        "\nHistogram verdict = continuous verdict over all latency rows: {agree_pct:.2} % of {} judgements (goal >= 99 %, >= {agree_need:.2} at this N){}\n",
        agree_total.1,
        if agree_ok { " ✓" } else { " ✗" }
    );

    println!("### Error-rate regressions (latency A/A, continuous, n = 2000)\n");
    println!(
        "rollgate's rollback rate against the most powerful single one-sided test at the same alpha: the exact conditional binomial test of ratio <= 1.5 at alpha {ALPHA}, alone, on the same draws.\n"
    );
    println!(
        "| baseline rate | ratio | trials per cohort | rollgate rollback | single test alone | difference | goal |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut row = 0u64;
    for base in [0.0005, 0.002, 0.01] {
        for ratio in [2.0, 3.0] {
            for n_trials in [5_000u64, 50_000] {
                row += 1;
                let mut rng = ChaCha8Rng::seed_from_u64(77_000 + row);
                let eb_dist = Binomial::new(n_trials, base).expect("binomial");
                let ec_dist = Binomial::new(n_trials, base * ratio).expect("binomial");
                let (mut ours, mut reference) = (0u32, 0u32);
                for _ in 0..trials {
                    let b = draw_latency(&mut rng, Lat::Same, 2000, false);
                    let c = draw_latency(&mut rng, Lat::Same, 2000, true);
                    let (eb, ec) = (eb_dist.sample(&mut rng), ec_dist.sample(&mut rng));
                    let v = judge(&analysis, MetricSamples::values(b, c), (eb, ec), n_trials);
                    ours += u32::from(v == Verdict::Rollback);
                    let share = ERR_TOLERANCE_RATIO / (ERR_TOLERANCE_RATIO + 1.0);
                    let p = binomial_sf(ec, eb + ec, share);
                    reference += u32::from(eb + ec > 0 && p <= ALPHA);
                }
                let (o, r) = (pct(ours, trials), pct(reference, trials));
                let allow = 2.0 + 100.0 * slack((r / 100.0).clamp(0.01, 0.99), trials);
                let ok = o >= r - allow;
                if !ok {
                    failures.push(format!("errors {base} x{ratio} {n_trials}"));
                }
                println!(
                    "| {} % | {ratio}x | {n_trials} | {o:.1} % | {r:.1} % | {:+.1} pp | within 2 pp (>= {:.1} at this N){} |",
                    base * 100.0,
                    o - r,
                    r - allow,
                    if ok { " ✓" } else { " ✗" }
                );
            }
        }
    }
    if failures.is_empty() {
        println!("\nall goals met");
        return ExitCode::SUCCESS;
    }
    println!("\ngoals missed: {}", failures.join("; "));
    let unexpected: Vec<&String> = failures.iter().filter(|f| !known.contains(f)).collect();
    if !known.is_empty() {
        println!(
            "known misses (reported, not failing --check): {}",
            known.join("; ")
        );
    }
    if check && !unexpected.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
