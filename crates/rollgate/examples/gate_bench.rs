//! Times the scrape gate's work for one phase over 100 targets, each a real
//! loopback HTTP endpoint serving a realistic exposition page, for the
//! side-by-side run in `benches/exposition/bench.py`:
//!
//! - a scrape round: `ScrapeSource::scrape_once` over every target (HTTP
//!   GET, parse, select), which the gate does every `interval` during the
//!   bake;
//! - the judgement at the end of the phase: per-series increases over the
//!   bake's scrapes for 50 baseline and 50 canary targets, then the canary
//!   analysis (`CanaryGate::evaluate`), which is what the rollout waits for.
//!
//! Prints one JSON line. The servers run on their own thread and runtime;
//! the gate runs on a current-thread runtime, as in the CLI.
//!
//! `cargo run --release -p rollgate --no-default-features --features plan --example gate_bench`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rollgate::canary::{Analysis, AnalysisConfig};
use rollgate::canary_gate::CanaryGate;
use rollgate::deploy::{Decision, Digest, Gate, GateContext};
use rollgate::scrape::{CounterSelector, MetricMapping, ScrapeSource, ScrapeTarget};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TARGETS: usize = 100;
/// Scrapes in one phase: a 30 s bake scraped every second, plus the start.
const ROUNDS: usize = 31;
const ROUTES: usize = 20;
const LES: [&str; 12] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];

/// Scrape `n` (one a second) of a service taking about 500 requests a
/// second over 20 routes: a latency histogram and a size histogram per
/// route, requests per route and code, and process gauges (600 series,
/// about 43 KB). `slow` moves half the latency observations one bucket up.
fn page(n: usize, slow: bool) -> String {
    let mut s = String::with_capacity(64 << 10);
    let k = (n + 1) as u64;
    s.push_str("# HELP http_request_duration_seconds Request latency.\n# TYPE http_request_duration_seconds histogram\n");
    for r in 0..ROUTES {
        let mut cum = 0u64;
        for (i, le) in LES.iter().enumerate() {
            // About 20-60 requests per route and second.
            const W: [u64; 12] = [0, 0, 2, 4, 12, 10, 6, 4, 2, 0, 0, 0];
            let w = if slow && i > 0 {
                (W[i] + W[i - 1]) / 2
            } else {
                W[i]
            };
            cum += w * k * (r as u64 % 3 + 1) / 2;
            s.push_str(&format!(
                "http_request_duration_seconds_bucket{{route=\"/api/v1/r{r}\",method=\"GET\",le=\"{le}\"}} {cum}\n"
            ));
        }
        s.push_str(&format!(
            "http_request_duration_seconds_sum{{route=\"/api/v1/r{r}\",method=\"GET\"}} {}.5\n",
            cum / 20
        ));
        s.push_str(&format!(
            "http_request_duration_seconds_count{{route=\"/api/v1/r{r}\",method=\"GET\"}} {cum}\n"
        ));
    }
    s.push_str("# HELP http_response_size_bytes Response size.\n# TYPE http_response_size_bytes histogram\n");
    for r in 0..ROUTES {
        let mut cum = 0u64;
        for (i, le) in ["100", "1000", "10000", "100000", "1e+06", "1e+07", "+Inf"]
            .iter()
            .enumerate()
        {
            cum += (i as u64 + 1) * k;
            s.push_str(&format!(
                "http_response_size_bytes_bucket{{route=\"/api/v1/r{r}\",le=\"{le}\"}} {cum}\n"
            ));
        }
        s.push_str(&format!(
            "http_response_size_bytes_sum{{route=\"/api/v1/r{r}\"}} {}\n",
            cum * 900
        ));
        s.push_str(&format!(
            "http_response_size_bytes_count{{route=\"/api/v1/r{r}\"}} {cum}\n"
        ));
    }
    s.push_str("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n");
    for r in 0..ROUTES {
        // About 25 requests per route and second (500 per target), 0.2 % errors.
        for (code, per_16s) in [("200", 400u64), ("404", 4), ("500", 1), ("503", 0)] {
            s.push_str(&format!(
                "http_requests_total{{route=\"/api/v1/r{r}\",code=\"{code}\"}} {}\n",
                per_16s * k / 16
            ));
        }
    }
    for g in 0..60 {
        s.push_str(&format!(
            "# TYPE process_stat_{g} gauge\nprocess_stat_{g}{{pid=\"4242\"}} {}\n",
            g * 1000 + n
        ));
    }
    s
}

/// One endpoint: answers every GET (keep-alive) with the next page of its
/// sequence (counters only grow), the last one once the sequence is done.
async fn serve(listener: tokio::net::TcpListener, pages: Arc<Vec<String>>) {
    let hits = Arc::new(AtomicUsize::new(0));
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            return;
        };
        let pages = Arc::clone(&pages);
        let hits = Arc::clone(&hits);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut have = 0;
            loop {
                match conn.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have += n,
                }
                if !buf[..have].windows(4).any(|w| w == b"\r\n\r\n") {
                    continue;
                }
                have = 0;
                let n = hits.fetch_add(1, Ordering::Relaxed).min(pages.len() - 1);
                let body = &pages[n];
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\r\n",
                    body.len()
                );
                if conn.write_all(head.as_bytes()).await.is_err()
                    || conn.write_all(body.as_bytes()).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let good: Arc<Vec<String>> = Arc::new((0..ROUNDS + 1).map(|n| page(n, false)).collect());
    let slow: Arc<Vec<String>> = Arc::new((0..ROUNDS + 1).map(|n| page(n, true)).collect());
    let page_bytes = good[0].len();
    let series = good[0].lines().filter(|l| !l.starts_with('#')).count();

    // The fleet: its own thread and runtime.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let mut addrs = Vec::new();
            for i in 0..TARGETS {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addrs.push(l.local_addr().expect("addr"));
                let pages = if i >= TARGETS / 2 { &slow } else { &good };
                tokio::spawn(serve(l, Arc::clone(pages)));
            }
            tx.send(addrs).expect("send");
            std::future::pending::<()>().await;
        });
    });
    let addrs = rx.recv()?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let targets: Vec<ScrapeTarget> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| ScrapeTarget {
                name: format!("t{i}"),
                url: format!("http://{a}/metrics"),
            })
            .collect();
        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
        let mappings: BTreeMap<String, MetricMapping> = [
            (
                "latency_ms".to_string(),
                MetricMapping::Histogram {
                    family: "http_request_duration_seconds".into(),
                    scale: 1000.0,
                    labels: [("route".to_string(), "/api/v1/r3".to_string())].into(),
                },
            ),
            (
                "errors".to_string(),
                MetricMapping::Count {
                    events: CounterSelector {
                        counter: "http_requests_total".into(),
                        labels: [("code".to_string(), "500".to_string())].into(),
                    },
                    trials: CounterSelector {
                        counter: "http_requests_total".into(),
                        labels: BTreeMap::new(),
                    },
                },
            ),
        ]
        .into();
        let src = ScrapeSource::new(targets, mappings)?;
        // Warm up connections (the gate keeps them alive through a bake).
        let warm = Instant::now();
        src.scrape_once().await;
        let first_round_ms = warm.elapsed().as_secs_f64() * 1e3;
        let mut rounds = Vec::with_capacity(ROUNDS);
        for _ in 1..ROUNDS {
            let t = Instant::now();
            src.scrape_once().await;
            rounds.push(t.elapsed().as_secs_f64() * 1e3);
        }
        rounds.sort_by(f64::total_cmp);
        let (baseline, canary) = names.split_at(TARGETS / 2);
        let analysis = Analysis::new(AnalysisConfig::from_toml_str(
            r#"
[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
relative = { max_increase_pct = 10.0 }

[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
threshold = { ratio_max = 0.01 }
"#,
        )?)?;
        let now = src.now_secs();
        // GateContext is non-exhaustive: made as the executor's records are.
        let ctx: GateContext = serde_json::from_value(serde_json::json!({
            "rollout": 1, "service": "web",
            "artifact": {"version": "v2", "digest": Digest::of_bytes(b"v2")},
            "previous": null, "phase": 0, "phase_name": "50%",
            "percent": 50.0, "canary_targets": canary, "attempt": 0
        }))?;
        let mut evals = Vec::new();
        let mut verdict = String::new();
        for _ in 0..20 {
            let t = Instant::now();
            // As the plan's gate does at the end of a bake.
            let window = rollgate::canary::source::Window::new(-1.0, now)?;
            let _ = src.unmeasured(baseline, window);
            let _ = src.unmeasured(canary, window);
            let view = src.cohorts(baseline.to_vec(), canary.to_vec(), None);
            let gate = CanaryGate::new(
                Arc::new(view),
                analysis.clone(),
                Duration::from_secs_f64(now + 1.0),
                Arc::new(move || now),
            );
            let d = gate.evaluate(&ctx).await?;
            evals.push(t.elapsed().as_secs_f64() * 1e3);
            verdict = match d {
                Decision::Promote(_) => "promote",
                Decision::Continue(_) => "continue",
                Decision::Hold(_) => "hold",
                Decision::Rollback(_) => "rollback",
            }
            .to_string();
        }
        evals.sort_by(f64::total_cmp);
        let median = |v: &[f64]| v[v.len() / 2];
        println!(
            "{{\"targets\": {TARGETS}, \"series_per_page\": {series}, \"page_bytes\": {page_bytes}, \
             \"rounds\": {ROUNDS}, \"first_round_ms\": {first_round_ms:.3}, \
             \"round_median_ms\": {:.3}, \"round_max_ms\": {:.3}, \
             \"evaluate_median_ms\": {:.3}, \"evaluate_max_ms\": {:.3}, \"verdict\": \"{verdict}\"}}",
            median(&rounds),
            rounds[rounds.len() - 1],
            median(&evals),
            evals[evals.len() - 1],
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
