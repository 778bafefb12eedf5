//! Times `rollgate::exposition::parse` on a 10,000-series page (written to
//! the path given, for the side-by-side run in `benches/exposition/bench.py`).
//!
//! `cargo run --release -p rollgate --example exposition_bench -- /tmp/page.prom`

use std::time::Instant;

/// A deterministic page: 25 histogram families × 20 routes × (12 buckets +
/// sum + count) = 7,000 series, plus 3,000 counter series.
fn page() -> String {
    let mut s = String::with_capacity(1 << 20);
    let les = [
        "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
        "+Inf",
    ];
    for f in 0..25 {
        s.push_str(&format!(
            "# HELP app_{f}_duration_seconds Latency of stage {f}.\n# TYPE app_{f}_duration_seconds histogram\n"
        ));
        for r in 0..20 {
            let mut cum = 0u64;
            for (i, le) in les.iter().enumerate() {
                cum += ((f * 31 + r * 17 + i * 7) % 97) as u64;
                s.push_str(&format!(
                    "app_{f}_duration_seconds_bucket{{route=\"/api/v1/r{r}\",method=\"GET\",le=\"{le}\"}} {cum}\n"
                ));
            }
            s.push_str(&format!(
                "app_{f}_duration_seconds_sum{{route=\"/api/v1/r{r}\",method=\"GET\"}} {}.{:03}\n",
                cum / 10,
                (f * r) % 1000
            ));
            s.push_str(&format!(
                "app_{f}_duration_seconds_count{{route=\"/api/v1/r{r}\",method=\"GET\"}} {cum}\n"
            ));
        }
    }
    s.push_str("# HELP app_events_total Events.\n# TYPE app_events_total counter\n");
    for i in 0..3000 {
        s.push_str(&format!(
            "app_events_total{{kind=\"k{}\",shard=\"s{}\",code=\"{}\"}} {}\n",
            i % 100,
            i / 100,
            [200, 404, 500][i % 3],
            i * 13
        ));
    }
    s
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = page();
    if let Some(path) = std::env::args().nth(1) {
        std::fs::write(path, &text)?;
    }
    let series = rollgate::exposition::parse(&text)?.samples.len();
    let mut best = f64::INFINITY;
    for _ in 0..50 {
        let t = Instant::now();
        let p = rollgate::exposition::parse(&text)?;
        std::hint::black_box(&p);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"series\": {series}, \"bytes\": {}, \"best_ms\": {:.4}}}",
        text.len(),
        best * 1000.0
    );
    Ok(())
}
