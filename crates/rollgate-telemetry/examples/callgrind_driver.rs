//! A fixed-work driver for instruction counts (`valgrind --tool=callgrind`),
//! which stay the same run after run on a busy machine, unlike wall time.
//! Each mode does N operations of one kind after the same setup; the cost
//! of one operation is the difference between two N, divided by their
//! difference (setup cancels out):
//!
//! ```sh
//! cargo build --release -p rollgate-telemetry --example callgrind_driver
//! for n in 100000 200000; do
//!   valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/callgrind_driver log_no_span $n 2>&1 | grep 'Collected'
//! done
//! ```
//!
//! Modes: `log_no_span`, `log_in_span` (the bench's enabled JSON event),
//! `log_disabled` (a `debug!` at `info`), `counter`, `histogram` (held
//! handles), `counter_1e5` (a held counter while 10^5 other series live in
//! the registry; series expiry is on by default), `macro_1e5` (the same
//! through the `counter!` macro, a lookup each time); `_off` after either
//! turns series expiry off.

use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let t = rollgate_telemetry::init("bench")
        .version("1.0.0")
        .environment("bench")
        .log_writer(std::io::sink())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let _d = tracing::dispatcher::set_default(t.dispatch());
    let registry = t.metrics().clone();
    let (c, h) = metrics::with_local_recorder(&registry.recorder(), || {
        (metrics::counter!("c"), metrics::histogram!("h"))
    });
    let xs: Vec<f64> = (0..1024)
        .map(|i| 0.001 * (1.0 + (i * 37 % 1000) as f64))
        .collect();
    match mode.as_str() {
        "log_no_span" => {
            for _ in 0..n {
                tracing::info!(
                    user = black_box("bob"),
                    items = black_box(3u64),
                    "order placed"
                );
            }
        }
        "log_in_span" => {
            let span = tracing::info_span!("request", request_id = "r-1", route = "/orders/{id}");
            let _e = span.enter();
            for _ in 0..n {
                tracing::info!(
                    user = black_box("bob"),
                    items = black_box(3u64),
                    "order placed"
                );
            }
        }
        "log_disabled" => {
            for _ in 0..n {
                tracing::debug!(user = black_box("bob"), "not shown");
            }
        }
        "counter" => {
            for _ in 0..n {
                c.increment(black_box(1));
            }
        }
        "histogram" => {
            for i in 0..n as usize {
                h.record(black_box(xs[i & 1023]));
            }
        }
        "counter_1e5" | "counter_1e5_off" | "macro_1e5" | "macro_1e5_off" => {
            let mut config =
                rollgate_telemetry::MetricsConfig::builder().max_series_per_metric(200_000);
            if mode.ends_with("_off") {
                config = config.series_idle_timeout(None);
            }
            let registry = rollgate_telemetry::MetricsRegistry::new(
                config.build().unwrap_or_else(|e| panic!("{e}")),
            );
            let c = metrics::with_local_recorder(&registry.recorder(), || {
                for i in 0..100_000u64 {
                    metrics::counter!("requests", "user" => i.to_string()).increment(1);
                }
                if mode.starts_with("macro") {
                    for _ in 0..n {
                        metrics::counter!("requests", "user" => "42").increment(black_box(1));
                    }
                }
                metrics::counter!("requests", "user" => "42")
            });
            if mode.starts_with("counter") {
                for _ in 0..n {
                    c.increment(black_box(1));
                }
            }
            black_box(registry.series_count());
        }
        other => panic!("unknown mode {other:?}"),
    }
}
