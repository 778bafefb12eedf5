//! The Prometheus source against a real Prometheus (Debian's package)
//! scraping a tiny exporter, both started by rollgate-test's
//! `scripts/canary-exporter.sh`.
#![cfg(feature = "prometheus")]

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rollgate_canary::prometheus::PrometheusSource;
use rollgate_canary::source::collect;
use rollgate_canary::{
    Analysis, AnalysisConfig, CanaryError, Cohort, MetricKind, MetricQuery, MetricSource, Samples,
    Verdict, Window,
};

/// Stops Prometheus and the exporter even when the test fails.
struct Servers {
    dir: tempfile::TempDir,
    url: String,
}

impl Servers {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("bash")
            .arg(rollgate_test::script("canary-exporter.sh"))
            .arg("prometheus")
            .arg(dir.path())
            .output()
            .expect("bash runs");
        let servers = Servers {
            url: std::fs::read_to_string(dir.path().join("prometheus.url"))
                .unwrap_or_default()
                .trim()
                .to_string(),
            dir,
        };
        assert!(
            out.status.success() && !servers.url.is_empty(),
            "starting prometheus failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        servers
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        for (script, cmd) in [("prometheus.sh", "stop"), ("canary-exporter.sh", "stop")] {
            let _ = Command::new("bash")
                .arg(rollgate_test::script(script))
                .arg(cmd)
                .arg(self.dir.path())
                .status();
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn source(url: &str) -> PrometheusSource {
    PrometheusSource::new(url)
        .expect("url")
        .step_secs(1.0)
        .values(
            "latency_ms",
            r#"canary_test_latency_ms{cohort="${cohort}"}"#,
        )
        .counts(
            "errors",
            r#"sum(increase(canary_test_errors_total{cohort="${cohort}"}[${window}]))"#,
            r#"sum(increase(canary_test_requests_total{cohort="${cohort}"}[${window}]))"#,
        )
        .values("missing", r#"no_such_metric{cohort="${cohort}"}"#)
        .values("broken", r#"sum(rate(x{cohort="${cohort}"}[5m]"#)
}

fn query(metric: &str, kind: MetricKind, cohort: Cohort, window: Window) -> MetricQuery {
    MetricQuery {
        metric: metric.into(),
        kind,
        cohort,
        window,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_answers_values_counts_and_clear_errors() {
    let servers = Servers::start();
    let src = source(&servers.url);
    let start = now() - 1.0;
    // Prometheus scrapes every second; wait (bounded) until both cohorts
    // have a handful of points. This waits on a real server, not on time.
    let mut ready = false;
    for _ in 0..300 {
        let w = Window::new(start, now()).expect("window");
        let b = src
            .samples(&query(
                "latency_ms",
                MetricKind::Latency,
                Cohort::Baseline,
                w,
            ))
            .await;
        if matches!(b, Ok(Samples::Values(ref v)) if v.len() >= 6) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "prometheus never returned 6 baseline points");
    let w = Window::new(start, now()).expect("window");

    let canary = src
        .samples(&query("latency_ms", MetricKind::Latency, Cohort::Canary, w))
        .await
        .expect("canary values");
    let Samples::Values(v) = canary else {
        panic!("values expected, got {canary:?}")
    };
    assert!(v.iter().all(|x| (130.0..141.0).contains(x)), "{v:?}");

    let errors = src
        .samples(&query("errors", MetricKind::Count, Cohort::Canary, w))
        .await
        .expect("canary counts");
    let Samples::Counts(c) = errors else {
        panic!("counts expected, got {errors:?}")
    };
    assert!(
        c.trials > 0 && c.events > 0 && c.events <= c.trials,
        "{c:?}"
    );

    // Empty result: a clear error naming the query and cohort.
    let e = src
        .samples(&query("missing", MetricKind::Latency, Cohort::Canary, w))
        .await
        .expect_err("empty result");
    let msg = e.to_string();
    assert!(
        msg.contains("returned no samples for cohort canary"),
        "{msg}"
    );
    assert!(msg.contains("no_such_metric"), "{msg}");

    // Bad PromQL: Prometheus's own parse error comes through.
    let e = src
        .samples(&query("broken", MetricKind::Latency, Cohort::Baseline, w))
        .await
        .expect_err("bad promql");
    let msg = e.to_string();
    assert!(
        msg.contains("prometheus rejected the query") && msg.contains("bad_data"),
        "{msg}"
    );
    assert!(matches!(e, CanaryError::Source { ref metric, .. } if metric == "broken"));

    // A whole judgement through the source: the canary is 30 % slower.
    let cfg = AnalysisConfig::from_toml_str(
        r#"
[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
min_samples = 5
relative = { max_increase_pct = 5.0 }
"#,
    )
    .expect("config");
    let data = collect(&src, &cfg, w).await.expect("collect");
    let report = Analysis::new(cfg)
        .expect("valid")
        .judge(&data)
        .expect("judged");
    assert_eq!(report.verdict, Verdict::Rollback, "{}", report.to_table());
}

#[tokio::test]
async fn down_server_is_a_clear_error() {
    // Bind and drop a listener to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let src = source(&format!("http://127.0.0.1:{port}"));
    let w = Window::new(0.0, 60.0).expect("window");
    let e = src
        .samples(&query("latency_ms", MetricKind::Latency, Cohort::Canary, w))
        .await
        .expect_err("nobody listens");
    let msg = e.to_string();
    assert!(
        msg.contains("cannot reach") && msg.contains(&port.to_string()),
        "{msg}"
    );
    // The HTTP client's error is kept whole as the source, down to the OS.
    let mut chain = Vec::new();
    let mut next = std::error::Error::source(&e);
    while let Some(cause) = next {
        chain.push(cause.to_string());
        next = cause.source();
    }
    assert!(
        chain.iter().any(|c| c.to_lowercase().contains("refused")),
        "{chain:?}"
    );
    assert!(!msg.to_lowercase().contains("refused"), "{msg}");
    let e = src
        .samples(&query(
            "unconfigured",
            MetricKind::Latency,
            Cohort::Canary,
            w,
        ))
        .await
        .expect_err("unconfigured");
    assert!(e.to_string().contains("no PromQL query is configured"));
}
