//! Side-by-side benches: rollgate-telemetry vs `metrics` +
//! `metrics-exporter-prometheus` vs the `prometheus` crate, plus the cost of
//! log events. Run: `cargo bench -p rollgate-telemetry --all-features --bench telemetry`.
//! Results and ratios are recorded in BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use rollgate_telemetry::{LATENCY_BUCKETS, MetricsRegistry};

fn rollgate_registry() -> MetricsRegistry {
    let config = rollgate_telemetry::MetricsConfig::builder()
        .constant_label("service", "bench")
        .build()
        .unwrap_or_default();
    MetricsRegistry::new(config)
}

fn mep_recorder() -> PrometheusRecorder {
    PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .map(|b| b.build_recorder())
        .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder())
}

fn prom_histogram(registry: &prometheus::Registry) -> prometheus::Histogram {
    let opts = prometheus::HistogramOpts::new("latency_seconds", "latency")
        .buckets(LATENCY_BUCKETS.to_vec());
    let h = prometheus::Histogram::with_opts(opts).unwrap_or_else(|e| panic!("{e}"));
    registry
        .register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    h
}

/// A deterministic spread of latencies (1 ms .. 1 s), cycled.
fn samples() -> Vec<f64> {
    (0..1024)
        .map(|i| 0.001 * (1.0 + (i * 37 % 1000) as f64))
        .collect()
}

fn counters(c: &mut Criterion) {
    let mut g = c.benchmark_group("counter_increment");
    let reg = rollgate_registry();
    let handle = metrics::with_local_recorder(
        &reg.recorder(),
        || metrics::counter!("requests_total", "route" => "/a"),
    );
    g.bench_function("rollgate/handle", |b| {
        b.iter(|| handle.increment(black_box(1)))
    });
    metrics::with_local_recorder(&reg.recorder(), || {
        g.bench_function("rollgate/macro", |b| {
            b.iter(|| metrics::counter!("requests_total", "route" => "/a").increment(black_box(1)))
        });
    });

    let mep = mep_recorder();
    let handle = metrics::with_local_recorder(
        &mep,
        || metrics::counter!("requests_total", "route" => "/a"),
    );
    g.bench_function("metrics-exporter-prometheus/handle", |b| {
        b.iter(|| handle.increment(black_box(1)))
    });
    metrics::with_local_recorder(&mep, || {
        g.bench_function("metrics-exporter-prometheus/macro", |b| {
            b.iter(|| metrics::counter!("requests_total", "route" => "/a").increment(black_box(1)))
        });
    });

    let preg = prometheus::Registry::new();
    let pc =
        prometheus::IntCounter::new("requests_total", "requests").unwrap_or_else(|e| panic!("{e}"));
    preg.register(Box::new(pc.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("prometheus/handle", |b| b.iter(|| pc.inc_by(black_box(1))));
    g.finish();
}

/// Four threads increment one shared counter; time per increment.
fn contended(c: &mut Criterion) {
    const THREADS: u64 = 4;
    let mut g = c.benchmark_group("counter_increment_4_threads");
    fn run(iters: u64, inc: impl Fn() + Send + Sync) -> Duration {
        let per = iters.div_ceil(THREADS);
        let start = std::time::Instant::now();
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for _ in 0..per {
                        inc();
                    }
                });
            }
        });
        start.elapsed()
    }
    let reg = rollgate_registry();
    let h = metrics::with_local_recorder(&reg.recorder(), || metrics::counter!("requests_total"));
    g.bench_function("rollgate", |b| b.iter_custom(|n| run(n, || h.increment(1))));
    let mep = mep_recorder();
    let h = metrics::with_local_recorder(&mep, || metrics::counter!("requests_total"));
    g.bench_function("metrics-exporter-prometheus", |b| {
        b.iter_custom(|n| run(n, || h.increment(1)))
    });
    let pc =
        prometheus::IntCounter::new("requests_total", "requests").unwrap_or_else(|e| panic!("{e}"));
    g.bench_function("prometheus", |b| b.iter_custom(|n| run(n, || pc.inc())));
    g.finish();
}

fn histograms(c: &mut Criterion) {
    let mut g = c.benchmark_group("histogram_record");
    let xs = samples();
    let reg = rollgate_registry();
    let h =
        metrics::with_local_recorder(&reg.recorder(), || metrics::histogram!("latency_seconds"));
    let mut i = 0usize;
    g.bench_function("rollgate/handle", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            h.record(black_box(xs[i]))
        })
    });
    let mep = mep_recorder();
    let h = metrics::with_local_recorder(&mep, || metrics::histogram!("latency_seconds"));
    let handle = mep.handle();
    g.bench_function("metrics-exporter-prometheus/handle", |b| {
        b.iter_custom(|iters| {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                i = (i + 1) & 1023;
                h.record(black_box(xs[i]));
            }
            let t = start.elapsed();
            // Drain the buffered samples so memory does not grow across
            // iterations (not timed).
            black_box(handle.render());
            t
        })
    });
    let preg = prometheus::Registry::new();
    let ph = prom_histogram(&preg);
    g.bench_function("prometheus/handle", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            ph.observe(black_box(xs[i]))
        })
    });
    g.finish();
}

/// Series expiry adds nothing to the recording path: the same updates with
/// 10^5 live series, expiry on (default 10 min) and off, plus the cost of
/// one idle check over all of them (done on reads, off the hot path).
fn expiry(c: &mut Criterion) {
    const LIVE: u64 = 100_000;
    let mut g = c.benchmark_group("expiry_1e5_series");
    // Off first: the second registry is built on a warmer heap, which
    // shows in wall time (not in instruction counts); see BENCHMARKS.md.
    for (name, idle) in [
        ("off", None),
        ("on", Some(rollgate_telemetry::DEFAULT_SERIES_IDLE_TIMEOUT)),
    ] {
        let config = rollgate_telemetry::MetricsConfig::builder()
            .constant_label("service", "bench")
            .max_series_per_metric(2 * LIVE as usize)
            .series_idle_timeout(idle)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let reg = MetricsRegistry::new(config);
        let rec = reg.recorder();
        let (counter, hist) = metrics::with_local_recorder(&rec, || {
            for i in 0..LIVE {
                metrics::counter!("requests_total", "user" => i.to_string()).increment(1);
            }
            (
                metrics::counter!("requests_total", "user" => "42"),
                metrics::histogram!("latency_seconds", "user" => "42"),
            )
        });
        assert_eq!(reg.series_count(), LIVE as usize + 1);
        black_box(reg.expire_idle());
        g.bench_function(format!("counter_handle/expiry_{name}"), |b| {
            b.iter(|| counter.increment(black_box(1)))
        });
        let xs = samples();
        let mut i = 0usize;
        g.bench_function(format!("histogram_handle/expiry_{name}"), |b| {
            b.iter(|| {
                i = (i + 1) & 1023;
                hist.record(black_box(xs[i]))
            })
        });
        metrics::with_local_recorder(&rec, || {
            g.bench_function(format!("counter_macro/expiry_{name}"), |b| {
                b.iter(|| {
                    metrics::counter!("requests_total", "user" => "42").increment(black_box(1))
                })
            });
        });
        if idle.is_some() {
            g.bench_function("idle_check_of_all_series", |b| {
                b.iter(|| black_box(reg.expire_idle()))
            });
        }
    }
    g.finish();
}

/// Render time after N histogram samples recorded since the last render.
fn render(c: &mut Criterion) {
    let mut g = c.benchmark_group("render_after_samples");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(2));
    let xs = samples();
    for n in [100_000usize, 1_000_000, 30_000_000] {
        let reg = rollgate_registry();
        let h = metrics::with_local_recorder(&reg.recorder(), || {
            metrics::histogram!("latency_seconds")
        });
        g.bench_with_input(BenchmarkId::new("rollgate", n), &n, |b, &n| {
            b.iter_batched(
                || {
                    for k in 0..n {
                        h.record(xs[k & 1023]);
                    }
                },
                |()| black_box(reg.render()),
                BatchSize::PerIteration,
            )
        });
        let mep = mep_recorder();
        let handle = mep.handle();
        let h = metrics::with_local_recorder(&mep, || metrics::histogram!("latency_seconds"));
        g.bench_with_input(
            BenchmarkId::new("metrics-exporter-prometheus", n),
            &n,
            |b, &n| {
                b.iter_batched(
                    || {
                        for k in 0..n {
                            h.record(xs[k & 1023]);
                        }
                    },
                    |()| black_box(handle.render()),
                    BatchSize::PerIteration,
                )
            },
        );
        let preg = prometheus::Registry::new();
        let ph = prom_histogram(&preg);
        let enc = prometheus::TextEncoder::new();
        g.bench_with_input(BenchmarkId::new("prometheus", n), &n, |b, &n| {
            b.iter_batched(
                || {
                    for k in 0..n {
                        ph.observe(xs[k & 1023]);
                    }
                },
                |()| black_box(enc.encode_to_string(&preg.gather())),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn logs(c: &mut Criterion) {
    let mut g = c.benchmark_group("log_event");
    let t = rollgate_telemetry::init("bench")
        .version("1.0.0")
        .environment("bench")
        .log_writer(std::io::sink())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    // The peer: tracing-subscriber's own JSON formatter, same filter level.
    let peer = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    let peer = tracing::Dispatch::new(peer);
    for (name, dispatch) in [
        ("rollgate", t.dispatch()),
        ("tracing-subscriber-json", &peer),
    ] {
        let _d = tracing::dispatcher::set_default(dispatch);
        g.bench_function(format!("{name}/disabled_debug"), |b| {
            b.iter(|| tracing::debug!(user = black_box("bob"), "not shown"))
        });
        g.bench_function(format!("{name}/enabled_json/no_span"), |b| {
            b.iter(|| {
                tracing::info!(
                    user = black_box("bob"),
                    items = black_box(3u64),
                    "order placed"
                )
            })
        });
        let span = tracing::info_span!("request", request_id = "r-1", route = "/orders/{id}");
        let _e = span.enter();
        g.bench_function(format!("{name}/enabled_json/in_span"), |b| {
            b.iter(|| {
                tracing::info!(
                    user = black_box("bob"),
                    items = black_box(3u64),
                    "order placed"
                )
            })
        });
    }
    g.finish();
}

/// Resident memory after recording 30 M histogram samples, printed once
/// (criterion measures time only).
fn memory(_: &mut Criterion) {
    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }
    let xs = samples();
    let n = 30_000_000usize;
    let before = rss_kib();
    let reg = rollgate_registry();
    let h =
        metrics::with_local_recorder(&reg.recorder(), || metrics::histogram!("latency_seconds"));
    for k in 0..n {
        h.record(xs[k & 1023]);
    }
    let rollgate = rss_kib().saturating_sub(before);
    let before = rss_kib();
    let mep = mep_recorder();
    let h = metrics::with_local_recorder(&mep, || metrics::histogram!("latency_seconds"));
    for k in 0..n {
        h.record(xs[k & 1023]);
    }
    let mep_kib = rss_kib().saturating_sub(before);
    black_box(mep.handle().render());
    eprintln!(
        "memory after {n} samples (RSS growth): rollgate {rollgate} KiB, metrics-exporter-prometheus {mep_kib} KiB"
    );
}

/// CPU time per operation of this thread (`/proc/thread-self/stat`
/// utime + stime), printed once: unlike criterion's wall time it excludes
/// time spent waiting for a CPU on a loaded machine.
fn cpu_time(_: &mut Criterion) {
    fn cpu_ns() -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        // Fields after the ")" that closes the command name; utime and stime
        // are fields 14 and 15 of the whole line (clock ticks, 100 per second).
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(ticks * 10_000_000)
    }
    fn per_op(n: u64, f: impl Fn()) -> f64 {
        let start = cpu_ns().unwrap_or(0);
        for _ in 0..n {
            f();
        }
        cpu_ns().unwrap_or(0).saturating_sub(start) as f64 / n as f64
    }
    let t = rollgate_telemetry::init("bench")
        .version("1.0.0")
        .environment("bench")
        .log_writer(std::io::sink())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let peer = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::INFO)
            .with_writer(std::io::sink)
            .finish(),
    );
    let n = 3_000_000;
    let mut report = Vec::new();
    for (name, dispatch) in [
        ("rollgate", t.dispatch()),
        ("tracing-subscriber-json", &peer),
    ] {
        let _d = tracing::dispatcher::set_default(dispatch);
        let no_span = per_op(n, || {
            tracing::info!(
                user = black_box("bob"),
                items = black_box(3u64),
                "order placed"
            )
        });
        let span = tracing::info_span!("request", request_id = "r-1", route = "/orders/{id}");
        let _e = span.enter();
        let in_span = per_op(n, || {
            tracing::info!(
                user = black_box("bob"),
                items = black_box(3u64),
                "order placed"
            )
        });
        report.push(format!(
            "{name}: json no_span {no_span:.0} ns, in_span {in_span:.0} ns"
        ));
    }
    let reg = rollgate_registry();
    let (c, h) = metrics::with_local_recorder(&reg.recorder(), || {
        (metrics::counter!("c"), metrics::histogram!("h"))
    });
    let xs = samples();
    let n = 200_000_000;
    let counter = per_op(n, || c.increment(black_box(1)));
    let i = std::cell::Cell::new(0usize);
    let hist = per_op(n, || {
        i.set((i.get() + 1) & 1023);
        h.record(black_box(xs[i.get()]))
    });
    report.push(format!(
        "rollgate: counter {counter:.2} ns, histogram {hist:.2} ns"
    ));
    let pc = prometheus::IntCounter::new("c", "c").unwrap_or_else(|e| panic!("{e}"));
    let preg = prometheus::Registry::new();
    let ph = prom_histogram(&preg);
    let counter = per_op(n, || pc.inc_by(black_box(1)));
    let hist = per_op(n, || {
        i.set((i.get() + 1) & 1023);
        ph.observe(black_box(xs[i.get()]))
    });
    report.push(format!(
        "prometheus: counter {counter:.2} ns, histogram {hist:.2} ns"
    ));
    eprintln!("CPU time per operation: {}", report.join("; "));
}

criterion_group! {
    name = fast;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = counters, contended, histograms, logs, expiry
}
criterion_group!(slow, cpu_time, memory, render);
criterion_main!(fast, slow);
