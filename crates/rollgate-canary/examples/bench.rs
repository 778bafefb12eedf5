//! Timings for the side-by-side benchmark run by `benches/canary/bench.py`
//! (which also times scipy and the Kayenta-style Python reference on the
//! same files, in the same run, and prints the ratios).
//!
//! ```text
//! cargo run --release -p rollgate-canary --example bench -- DIR
//! ```
//!
//! DIR holds little-endian f64 files written by bench.py: `mw_x.f64`,
//! `mw_y.f64` (10^6 each), `mwt_x.f64`, `mwt_y.f64` (heavy ties) and
//! `judge_x.f64`, `judge_y.f64` (10^5 each), and the end-to-end samples
//! documents `e2e_ms.json` (2×10^6 whole-millisecond latencies) and
//! `e2e_cont.json` (2×10^6 continuous ones). Prints one JSON object.

use std::path::Path;
use std::time::Instant;

use rollgate_canary::sketch::LatencySketch;
use rollgate_canary::stats::{MwMethod, mann_whitney_unsorted};
use rollgate_canary::{Analysis, AnalysisConfig, Histogram, MetricSamples, SampleSet};

/// The end-to-end judgement: the latency metric of the crate README's
/// minimal config (tolerance 5 %, every value check on).
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

/// Read, parse and judge one SAMPLES.json file: `(seconds, verdict, p)`.
fn end_to_end(analysis: &Analysis, path: &Path) -> (f64, String, f64, usize) {
    let (s, (verdict, p, checks)) = best(5, || {
        let text = std::fs::read_to_string(path).expect("samples file");
        let data = SampleSet::from_json_str(&text).expect("samples");
        let r = analysis.judge(&data).expect("judge");
        let row = &r.metrics[0];
        (
            r.verdict.as_str().to_string(),
            row.p_value.unwrap_or(f64::NAN),
            row.checks.len(),
        )
    });
    (s, verdict, p, checks)
}

fn read(dir: &Path, name: &str) -> Vec<f64> {
    let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect()
}

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..runs {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("at least one run"))
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: bench DIR");
    let dir = Path::new(&dir);
    let (x, y) = (read(dir, "mw_x.f64"), read(dir, "mw_y.f64"));
    let (tx, ty) = (read(dir, "mwt_x.f64"), read(dir, "mwt_y.f64"));
    let (jx, jy) = (read(dir, "judge_x.f64"), read(dir, "judge_y.f64"));

    let (mw_s, mw) = best(7, || {
        mann_whitney_unsorted(&x, &y, MwMethod::Asymptotic).expect("mw")
    });
    let (mwt_s, mwt) = best(7, || {
        mann_whitney_unsorted(&tx, &ty, MwMethod::Asymptotic).expect("mw ties")
    });

    let cfg = AnalysisConfig::from_toml_str(
        r#"
alpha = 0.05
[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
relative = { max_increase_pct = 5.0 }
"#,
    )
    .expect("config");
    let analysis = Analysis::new(cfg).expect("valid");
    let mut data = SampleSet::default();
    data.insert("latency_ms", MetricSamples::values(jx.clone(), jy.clone()));
    let (judge_s, report) = best(15, || analysis.judge(&data).expect("judge"));
    let row = &report.metrics[0];

    let e2e =
        Analysis::new(AnalysisConfig::from_toml_str(E2E_CONFIG).expect("config")).expect("valid");
    let (e2e_ms_s, e2e_ms_verdict, e2e_ms_p, e2e_checks) =
        end_to_end(&e2e, &dir.join("e2e_ms.json"));
    let (e2e_cont_s, e2e_cont_verdict, e2e_cont_p, _) =
        end_to_end(&e2e, &dir.join("e2e_cont.json"));

    // Two 200-bucket histograms (bounds 1.03^i ms) of the judge samples.
    let mut le: Vec<f64> = (0..199).map(|i| 1.03f64.powi(i)).collect();
    le.push(f64::INFINITY);
    let bucket = |v: &[f64]| {
        let mut per = vec![0u64; le.len()];
        for &x in v {
            per[le.partition_point(|&b| b < x)] += 1;
        }
        let cum = per
            .iter()
            .scan(0u64, |a, &c| {
                *a += c;
                Some(*a)
            })
            .collect();
        Histogram::new(le.clone(), cum).expect("histogram")
    };
    let mut hist_data = SampleSet::default();
    hist_data.insert(
        "latency_ms",
        MetricSamples::histograms(bucket(&jx), bucket(&jy)),
    );
    let (hist_s, hist_report) = best(2000, || e2e.judge(&hist_data).expect("judge"));

    // Sketch insert: 10^7 values cycling over the judge sample.
    let values: Vec<f64> = jx.iter().chain(jy.iter()).copied().collect();
    let inserts = 10_000_000usize;
    let (sketch_s, sketch) = best(5, || {
        let mut s = LatencySketch::new();
        for i in 0..inserts {
            s.insert(values[i % values.len()]);
        }
        s
    });
    println!(
        "{{\"mw_s\": {mw_s}, \"mw_p\": {}, \"mw_ties_s\": {mwt_s}, \"mw_ties_p\": {}, \
         \"judge_s\": {judge_s}, \"judge_verdict\": \"{}\", \"judge_p\": {}, \"judge_shift\": {}, \
         \"judge_ci\": [{}, {}], \"sketch_ns_per_insert\": {}, \"sketch_bytes\": {}, \"sketch_p99\": {}, \
         \"e2e_ms_s\": {e2e_ms_s}, \"e2e_ms_verdict\": \"{e2e_ms_verdict}\", \"e2e_ms_p\": {e2e_ms_p}, \
         \"e2e_cont_s\": {e2e_cont_s}, \"e2e_cont_verdict\": \"{e2e_cont_verdict}\", \"e2e_cont_p\": {e2e_cont_p}, \
         \"e2e_checks\": {e2e_checks}, \"hist200_s\": {hist_s}, \"hist200_verdict\": \"{}\", \"hist200_checks\": {}}}",
        mw.p_value,
        mwt.p_value,
        report.verdict.as_str(),
        row.p_value.unwrap_or(f64::NAN),
        row.shift.unwrap_or(f64::NAN),
        row.ci.map(|c| c[0]).unwrap_or(f64::NAN),
        row.ci.map(|c| c[1]).unwrap_or(f64::NAN),
        sketch_s * 1e9 / inserts as f64,
        sketch.memory_bytes(),
        sketch.quantile(0.99).unwrap_or(f64::NAN),
        hist_report.verdict.as_str(),
        hist_report.metrics[0].checks.len(),
    );
}
