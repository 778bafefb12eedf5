//! Criterion benches of the hot paths: `cargo bench -p rollgate-canary`.
//! The side-by-side ratios against scipy and the Kayenta-style reference
//! come from `python3 benches/canary/bench.py` (see BENCHMARKS.md).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rollgate_canary::sketch::LatencySketch;
use rollgate_canary::stats::{MwMethod, hodges_lehmann, mann_whitney_unsorted, sorted_finite};
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

criterion_group!(canary, benches);
criterion_main!(canary);
