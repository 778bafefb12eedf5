//! Criterion benches of the hot paths: `cargo bench -p rollgate-canary`.
//! The side-by-side ratios against scipy and the Kayenta-style reference
//! come from `python3 benches/canary/bench.py` (see BENCHMARKS.md).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rollgate_canary::sketch::LatencySketch;
use rollgate_canary::stats::{MwMethod, hodges_lehmann, mann_whitney_unsorted, sorted_finite};
use rollgate_canary::{Analysis, AnalysisConfig, Histogram, MetricSamples, SampleSet};
use std::hint::black_box;

fn lognormal(n: usize, seed: u64, median: f64) -> Vec<f64> {
    let mut s = seed;
    let mut uni = move || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uni(), uni());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            median * (0.5 * z).exp()
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let values = lognormal(1 << 16, 1, 100.0);
    let mut g = c.benchmark_group("sketch");
    g.throughput(Throughput::Elements(values.len() as u64));
    g.bench_function("insert 65536 latencies", |b| {
        let mut s = LatencySketch::new();
        b.iter(|| {
            for &v in &values {
                s.insert(black_box(v));
            }
        })
    });
    g.finish();

    let x = lognormal(100_000, 2, 100.0);
    let y = lognormal(100_000, 3, 101.0);
    let mut g = c.benchmark_group("stats");
    g.sample_size(20);
    g.bench_function("mann-whitney 2x10^5 unsorted", |b| {
        b.iter(|| mann_whitney_unsorted(black_box(&x), black_box(&y), MwMethod::Asymptotic))
    });
    let (xs, ys) = (
        sorted_finite("x", &x).unwrap_or_default(),
        sorted_finite("y", &y).unwrap_or_default(),
    );
    g.bench_function("hodges-lehmann + 95% CI 2x10^5 sorted", |b| {
        b.iter(|| hodges_lehmann(black_box(&xs), black_box(&ys), 0.05))
    });
    g.finish();
}

/// The end-to-end config of `examples/bench.rs` (issue 13's three cases):
/// the crate README's minimal latency metric, every value check on.
const E2E_CONFIG: &str = r#"
alpha = 0.01
[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
min_samples = 50
relative = { max_increase_pct = 5.0 }
threshold = { p99_max = 500.0 }
"#;

fn samples_json(b: &[f64], c: &[f64]) -> String {
    let mut data = SampleSet::default();
    data.insert("latency_ms", MetricSamples::values(b.to_vec(), c.to_vec()));
    serde_json::to_string(&data).unwrap_or_default()
}

fn end_to_end(c: &mut Criterion) {
    let analysis = Analysis::new(AnalysisConfig::from_toml_str(E2E_CONFIG).expect("config"))
        .expect("valid config");
    // 10^6 + 10^6 log-normal latencies, the canary 1 % slower (inside T).
    let b = lognormal(1_000_000, 11, 100.0);
    let cn = lognormal(1_000_000, 12, 101.0);
    let whole = |v: &[f64]| v.iter().map(|x| x.round()).collect::<Vec<f64>>();
    let ms = samples_json(&whole(&b), &whole(&cn));
    let cont = samples_json(&b, &cn);
    let mut g = c.benchmark_group("judge end to end");
    g.sample_size(10);
    for (name, text) in [
        ("parse + judge 2x10^6 whole-ms samples", &ms),
        ("parse + judge 2x10^6 continuous samples", &cont),
    ] {
        g.bench_function(name, |bench| {
            bench.iter(|| {
                let data = SampleSet::from_json_str(black_box(text)).expect("samples");
                analysis.judge(&data).expect("judge").verdict
            })
        });
    }
    g.finish();

    // Two 200-bucket histograms (bounds 1.03^i ms) of 10^5 latencies each.
    let mut le: Vec<f64> = (0..199).map(|i| 1.03f64.powi(i)).collect();
    le.push(f64::INFINITY);
    let bucket = |v: &[f64]| {
        let mut per = vec![0u64; le.len()];
        for &x in v {
            per[le.partition_point(|&e| e < x)] += 1;
        }
        let cum = per
            .iter()
            .scan(0u64, |a, &k| {
                *a += k;
                Some(*a)
            })
            .collect();
        Histogram::new(le.clone(), cum).expect("histogram")
    };
    let mut data = SampleSet::default();
    data.insert(
        "latency_ms",
        MetricSamples::histograms(
            bucket(&lognormal(100_000, 13, 100.0)),
            bucket(&lognormal(100_000, 14, 101.0)),
        ),
    );
    let mut g = c.benchmark_group("judge histograms");
    g.bench_function("judge two 200-bucket histograms", |bench| {
        bench.iter(|| analysis.judge(black_box(&data)).expect("judge").verdict)
    });
    g.finish();
}

criterion_group!(canary, benches, end_to_end);
criterion_main!(canary);
