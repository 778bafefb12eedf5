//! `dns-loadgen`: a seeded load generator for the DNS provisioner.
//!
//! Each target gets `--concurrency` workers; each worker draws its requests
//! from its own ChaCha8 stream (seeded by `--seed`, the target's index and
//! the worker's), so one seed always asks for the same sequence: 35 %
//! creates (2 % with a TTL out of range, 1 % with a value that does not fit
//! the type), 55 % reads and 10 % deletes of names it created. With
//! `--rate R` each target gets R requests per second (open loop); with
//! `--rate 0` each worker sends as fast as the target answers.
//!
//! It stops after `--duration` (or, without it, on SIGTERM or SIGINT) and
//! prints what it sent and how long the answers took (client side), and,
//! from each target's `/metrics` before and after, the provisioner's own
//! p50/p99 over the run (`http_server_request_duration_seconds`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

#[derive(Parser)]
#[command(version, about = "Seeded load for dns-provisioner instances")]
struct Args {
    /// A provisioner's address (repeat, or separate with commas).
    #[arg(long = "target", required = true, value_delimiter = ',')]
    targets: Vec<String>,
    /// Seed of every worker's request stream.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Requests per second per target; 0: as fast as the target answers.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Connections (workers) per target.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// How long to run (`10s`); without it, until SIGTERM or SIGINT.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Summary format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    output: String,
}

#[derive(Default)]
struct Stats {
    sent: u64,
    by_class: [u64; 6],
    transport_errors: u64,
    /// Client-side latency of every answered request, in microseconds.
    latencies_us: Vec<u32>,
}

impl Stats {
    fn merge(&mut self, o: Stats) {
        self.sent += o.sent;
        for (a, b) in self.by_class.iter_mut().zip(o.by_class) {
            *a += b;
        }
        self.transport_errors += o.transport_errors;
        self.latencies_us.extend(o.latencies_us);
    }
}

const TTLS: [u32; 6] = [60, 300, 300, 900, 3600, 86_400];
const MAX_LATENCIES: usize = 20_000_000;

fn record_body(rng: &mut ChaCha8Rng, name: &str) -> String {
    let roll = rng.random_range(0..100u32);
    let ttl = if roll < 2 {
        5
    } else {
        TTLS[rng.random_range(0..TTLS.len())]
    };
    let (kind, value) = match rng.random_range(0..5u32) {
        _ if roll == 2 => ("A", "not-an-address".to_owned()),
        0 => ("A", format!("192.0.2.{}", rng.random_range(1..255u32))),
        1 => (
            "AAAA",
            format!("2001:db8::{:x}", rng.random_range(1..0xffffu32)),
        ),
        2 => (
            "CNAME",
            format!("edge-{}.example.net", rng.random_range(0..64u32)),
        ),
        3 => (
            "MX",
            format!(
                "{} mx{}.example.net",
                rng.random_range(1..50u32) * 10,
                rng.random_range(0..4u32)
            ),
        ),
        _ => (
            "TXT",
            format!(
                "v=spf1 include:_spf{}.example.net ~all",
                rng.random_range(0..8u32)
            ),
        ),
    };
    serde_json::json!({ "name": name, "type": kind, "value": value, "ttl": ttl }).to_string()
}

async fn worker(
    client: reqwest::Client,
    base: String,
    mut rng: ChaCha8Rng,
    tag: String,
    period: Option<Duration>,
    stop: Arc<AtomicBool>,
) -> Stats {
    let mut st = Stats::default();
    let mut names: Vec<String> = Vec::new();
    let mut next = 0u64;
    let mut tick = period.map(|p| {
        let mut i = tokio::time::interval(p);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    while !stop.load(Ordering::Relaxed) {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        let op = rng.random_range(0..100u32);
        let mut creating = None;
        let req = if names.is_empty() || op < 35 {
            let name = format!("{tag}-{next}.example.com");
            next += 1;
            let body = record_body(&mut rng, &name);
            creating = Some(name);
            client
                .post(format!("{base}/records"))
                .header("content-type", "application/json")
                .body(body)
        } else if op < 90 || names.len() < 2 {
            // Reads and deletes name records this worker created.
            let name = &names[rng.random_range(0..names.len())];
            client.get(format!("{base}/records/{name}"))
        } else {
            let name = names.swap_remove(rng.random_range(0..names.len()));
            client.delete(format!("{base}/records/{name}"))
        };
        if names.len() > 5_000 {
            names.swap_remove(0);
        }
        let start = Instant::now();
        st.sent += 1;
        match req.send().await {
            Ok(resp) => {
                let class = (resp.status().as_u16() / 100) as usize;
                if let (Some(name), 201) = (creating, resp.status().as_u16()) {
                    names.push(name);
                }
                let _ = resp.bytes().await;
                st.by_class[class.min(5)] += 1;
                if st.latencies_us.len() < MAX_LATENCIES {
                    let us = start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    st.latencies_us.push(us);
                }
            }
            Err(_) => {
                // A target being redeployed refuses connections for a moment.
                st.transport_errors += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    st
}

fn quantile_us(sorted: &[u32], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(f64::from(sorted[i]))
}

/// Cumulative bucket counts of `http_server_request_duration_seconds`,
/// summed over every series, by upper bound.
fn duration_buckets(exposition: &str) -> Vec<(f64, f64)> {
    let mut by_le: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("http_server_request_duration_seconds_bucket{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Some(le) = labels
            .split(',')
            .find_map(|kv| kv.strip_prefix("le=\""))
            .and_then(|v| v.strip_suffix('"'))
        else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            }
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        by_le.entry(le.to_bits()).or_insert((le, 0.0)).1 += v;
    }
    let mut out: Vec<(f64, f64)> = by_le.into_values().collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// `histogram_quantile` over cumulative buckets (linear inside a bucket).
fn histogram_quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, c) in buckets {
        if c >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let width = c - prev.1;
            let frac = if width > 0.0 {
                (rank - prev.1) / width
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    None
}

async fn scrape(client: &reqwest::Client, base: &str) -> Option<Vec<(f64, f64)>> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(duration_buckets(&text))
}

fn delta(after: &[(f64, f64)], before: Option<&Vec<(f64, f64)>>) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|&(le, c)| {
            let b = before
                .and_then(|b| b.iter().find(|x| x.0 == le))
                .map_or(0.0, |x| x.1);
            // A restarted target starts from zero: count what it has.
            (le, if c >= b { c - b } else { c })
        })
        .collect()
}

async fn run(args: Args) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let per_worker = if args.rate > 0.0 {
        Some(Duration::from_secs_f64(args.concurrency as f64 / args.rate))
    } else {
        None
    };
    let mut bases = Vec::new();
    let mut clients = Vec::new();
    for t in &args.targets {
        bases.push(format!("http://{t}"));
        clients.push(
            reqwest::Client::builder()
                .pool_max_idle_per_host(args.concurrency)
                .timeout(Duration::from_secs(5))
                .build()
                .context("http client")?,
        );
    }
    let mut before = Vec::new();
    for (c, b) in clients.iter().zip(&bases) {
        before.push(scrape(c, b).await);
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    for (ti, (c, b)) in clients.iter().zip(&bases).enumerate() {
        for w in 0..args.concurrency {
            let seed = args
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((ti as u64) << 32 | w as u64);
            handles.push(tokio::spawn(worker(
                c.clone(),
                b.clone(),
                ChaCha8Rng::seed_from_u64(seed),
                format!("s{}-t{ti}-w{w}", args.seed),
                per_worker,
                stop.clone(),
            )));
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    match args.duration {
        Some(d) => tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        },
        None => tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        },
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Stats::default();
    for h in handles {
        total.merge(h.await.context("worker")?);
    }
    let secs = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let p50 = quantile_us(&total.latencies_us, 0.5).map(|us| us / 1000.0);
    let p99 = quantile_us(&total.latencies_us, 0.99).map(|us| us / 1000.0);
    let mut servers = Vec::new();
    for (i, (c, b)) in clients.iter().zip(&bases).enumerate() {
        let after = scrape(c, b).await;
        let d = after.map(|a| delta(&a, before[i].as_ref()));
        let q = |q| {
            d.as_deref()
                .and_then(|d| histogram_quantile(d, q))
                .map(|s| s * 1000.0)
        };
        servers.push(serde_json::json!({
            "target": args.targets[i],
            "requests": d.as_ref().and_then(|d| d.last().map(|x| x.1)),
            "p50_ms": q(0.5),
            "p99_ms": q(0.99),
        }));
    }
    // Time this process spent on a CPU (Linux), to tell its cost from the
    // machine's contention.
    // utime + stime of every thread, in USER_HZ (100 per second on Linux).
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        });
    let summary = serde_json::json!({
        "cpu_seconds": cpu_seconds,
        "seed": args.seed,
        "targets": args.targets.len(),
        "concurrency": args.concurrency,
        "rate_per_target": args.rate,
        "seconds": secs,
        "sent": total.sent,
        "per_second": total.sent as f64 / secs,
        "status_2xx": total.by_class[2],
        "status_4xx": total.by_class[4],
        "status_5xx": total.by_class[5],
        "transport_errors": total.transport_errors,
        "client_p50_ms": p50,
        "client_p99_ms": p99,
        "servers": servers,
    });
    if args.output == "json" {
        println!("{summary}");
    } else {
        let ms = |v: Option<f64>| v.map_or_else(|| "unknown".to_owned(), |v| format!("{v:.2} ms"));
        println!(
            "dns-loadgen: {} requests in {secs:.1} s ({:.0} req/s) to {} target(s): 2xx {}, 4xx {}, 5xx {}, transport errors {}; client p50 {} p99 {}",
            total.sent,
            total.sent as f64 / secs,
            args.targets.len(),
            total.by_class[2],
            total.by_class[4],
            total.by_class[5],
            total.transport_errors,
            ms(p50),
            ms(p99),
        );
        if let Some(cpu) = cpu_seconds {
            println!(
                "  dns-loadgen itself: {cpu:.2} s of CPU ({:.1} µs per request)",
                cpu * 1e6 / total.sent.max(1) as f64
            );
        }
        for s in &servers {
            println!(
                "  provisioner {}: p50 {} p99 {} over {} requests (its own http_server_request_duration_seconds, since the load began or its last restart)",
                s["target"].as_str().unwrap_or_default(),
                ms(s["p50_ms"].as_f64()),
                ms(s["p99_ms"].as_f64()),
                s["requests"]
                    .as_f64()
                    .map_or_else(|| "unknown".to_owned(), |n| format!("{n:.0}")),
            );
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dns-loadgen: runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dns-loadgen: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_like_promql() {
        let b = vec![
            (0.001, 50.0),
            (0.01, 90.0),
            (0.1, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(histogram_quantile(&b, 0.5), Some(0.001));
        let p99 = histogram_quantile(&b, 0.99).unwrap();
        assert!((p99 - 0.091).abs() < 1e-9, "{p99}");
        let text = "http_server_request_duration_seconds_bucket{method=\"GET\",route=\"/a\",le=\"0.001\"} 3\n\
                    http_server_request_duration_seconds_bucket{method=\"GET\",route=\"/b\",le=\"0.001\"} 4\n\
                    http_server_request_duration_seconds_bucket{method=\"GET\",route=\"/a\",le=\"+Inf\"} 5\n";
        assert_eq!(
            duration_buckets(text),
            vec![(0.001, 7.0), (f64::INFINITY, 5.0)]
        );
    }

    #[test]
    fn one_seed_draws_one_request_stream() {
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20)
                .map(|i| record_body(&mut rng, &format!("n{i}")))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
