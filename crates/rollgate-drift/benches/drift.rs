//! Steady-state throughput of loading and comparing, one thread, memory
//! already warm (criterion repeats each step in the same process). The
//! end-to-end comparison with peers, in fresh processes, is
//! `scripts/drift-bench.sh` (BENCHMARKS.md).
//!
//! `cargo bench -p rollgate-drift --bench drift`

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rollgate_drift::{Differ, Format, Limits, load, load_tree};

/// xorshift64*: deterministic, seeded.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// A compact JSON document of about `mb` MB shaped like a large deployment
/// inventory (services with containers, env and ports), and the same with
/// every list reordered and `changes` values changed.
fn pair(mb: usize, changes: usize) -> (String, String) {
    let mut rng = Rng(0x5eed_d21f);
    let services = mb * 1_000_000 / 1_850;
    let render = |order: &mut dyn FnMut(usize) -> Vec<usize>, changed: &dyn Fn(usize) -> bool| {
        let mut out = String::from("{\"items\":[");
        for (n, i) in order(services).into_iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"name\":\"svc-{i:06}\",\"replicas\":{},\"labels\":{{\"team\":\"t{}\",\"tier\":\"web\"}},\"containers\":[",
                if changed(i) { 4 } else { 3 },
                i % 17
            );
            for c in order(2) {
                let _ = write!(
                    out,
                    "{}{{\"name\":\"c{c}\",\"image\":\"registry.example.com/team/svc-{i:06}-{c}:1.{}.0\",\"resources\":{{\"cpu\":\"250m\",\"memory\":\"512Mi\"}},\"env\":[",
                    if out.ends_with('[') { "" } else { "," },
                    i % 9
                );
                for (k, e) in order(12).into_iter().enumerate() {
                    let _ = write!(
                        out,
                        "{}{{\"name\":\"VAR_{e:02}\",\"value\":\"value-{i}-{e}\"}}",
                        if k == 0 { "" } else { "," }
                    );
                }
                out.push_str("],\"ports\":[{\"name\":\"http\",\"containerPort\":8080},{\"name\":\"metrics\",\"containerPort\":9090}]}");
            }
            out.push_str("]}");
        }
        out.push_str("]}");
        out
    };
    let desired = render(&mut |n| (0..n).collect(), &|_| false);
    let step = services / changes.max(1);
    let live = render(
        &mut |n| {
            let mut v: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                v.swap(i, rng.below(i + 1));
            }
            v
        },
        &|i| step > 0 && i % step == 0,
    );
    (desired, live)
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let (desired, live) = pair(20, 300);
    let mut g = c.benchmark_group("drift");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(desired.len() as u64));
    g.bench_function("load_tree json 20MB", |b| {
        b.iter(|| load_tree(black_box(&desired), Format::Json, "d.json", &limits).unwrap());
    });
    g.bench_function("load json 20MB (owned Node)", |b| {
        b.iter(|| load(black_box(&desired), Format::Json, "d.json", &limits).unwrap());
    });
    let d = load_tree(&desired, Format::Json, "d.json", &limits).unwrap();
    let l = load_tree(&live, Format::Json, "l.json", &limits).unwrap();
    let differ = Differ::default();
    let found = differ.diff_trees(&d, &l).differences().len();
    assert!(found >= 300, "{found} differences");
    g.throughput(Throughput::Bytes((desired.len() + live.len()) as u64));
    g.bench_function("diff_trees 2x20MB, lists reordered", |b| {
        b.iter(|| differ.diff_trees(black_box(&d), black_box(&l)));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
