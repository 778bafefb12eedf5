//! `Histogram::quantile` against a real Prometheus server's
//! `histogram_quantile` on the same buckets: the buckets are written as
//! OpenMetrics, backfilled with `promtool tsdb create-blocks-from
//! openmetrics`, served by Debian's Prometheus (`scripts/prometheus.sh`) and
//! queried over its HTTP API.
#![cfg(feature = "prometheus")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rollgate_canary::Histogram;

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

/// Stops Prometheus even when the test fails.
struct Server {
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(scripts().join("prometheus.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .status();
    }
}

/// The test histograms: Prometheus's default buckets, fine exponential
/// buckets, negative bounds, empty buckets, an empty histogram, and
/// observations in the +Inf bucket.
fn cases() -> Vec<Histogram> {
    let mut rng = ChaCha8Rng::seed_from_u64(20_261_206);
    let default_le = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let fine: Vec<f64> = (0..120).map(|i| 0.001 * 1.1f64.powi(i)).collect();
    let mut out = Vec::new();
    for case in 0..24 {
        let finite: Vec<f64> = match case % 4 {
            0 | 1 => default_le.to_vec(),
            2 => fine.clone(),
            _ => vec![-2.0, -0.5, 0.0, 0.3, 7.0, 1e3],
        };
        let mut le = finite;
        le.push(f64::INFINITY);
        let mut acc = 0u64;
        let cum: Vec<u64> = le
            .iter()
            .map(|_| {
                // Some buckets empty, some large.
                let add = match rng.random_range(0..5u32) {
                    0 => 0,
                    1 => rng.random_range(1..4u64),
                    _ => rng.random_range(0..5000u64),
                };
                acc += add;
                acc
            })
            .collect();
        out.push(Histogram::new(le, cum).expect("valid"));
    }
    let le = vec![0.1, 1.0, f64::INFINITY];
    out.push(Histogram::new(le.clone(), vec![0, 0, 0]).expect("empty"));
    out.push(Histogram::new(le.clone(), vec![0, 0, 7]).expect("all in +Inf"));
    out.push(Histogram::new(le, vec![5, 5, 5]).expect("all in the first"));
    out
}

fn label(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

/// `GET base/api/v1/query` through reqwest: the body of a 200 answer.
fn query(base: &str, expr: &str, time: &str) -> String {
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/query"),
        [("query", expr), ("time", time)],
    )
    .expect("query url");
    let resp = reqwest::blocking::get(url).expect("query prometheus");
    let status = resp.status();
    let body = resp.text().expect("read the body");
    assert!(status.is_success(), "{status}\n{body}");
    body
}

#[test]
fn interpolated_quantiles_equal_prometheus_histogram_quantile() {
    assert!(
        Path::new("/usr/bin/promtool").exists(),
        "promtool is missing: run scripts/install-test-deps.sh (installs Debian's prometheus)"
    );
    let hists = cases();
    let dir = tempfile::tempdir().expect("tempdir");
    // Two hours back: inside the default retention, before the (empty) head.
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        - 7200;
    let mut om = String::from("# TYPE h histogram\n");
    for (i, h) in hists.iter().enumerate() {
        for (le, c) in h.upper_bounds().iter().zip(h.cumulative_counts()) {
            om.push_str(&format!(
                "h_bucket{{case=\"{i}\",le=\"{}\"}} {c} {t}\n",
                label(*le)
            ));
        }
        om.push_str(&format!("h_count{{case=\"{i}\"}} {} {t}\n", h.count()));
    }
    om.push_str("# EOF\n");
    let om_path = dir.path().join("h.om");
    std::fs::write(&om_path, om).expect("write openmetrics");
    let out = Command::new("/usr/bin/promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om_path)
        .arg(dir.path().join("data"))
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("bash")
        .arg(scripts().join("prometheus.sh"))
        .arg("start")
        .arg(dir.path())
        // Nothing listens there: the scrape fails harmlessly; only the
        // backfilled blocks are queried.
        .arg("127.0.0.1:9")
        .output()
        .expect("bash runs");
    let server = Server { dir };
    assert!(
        out.status.success(),
        "starting prometheus failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = std::fs::read_to_string(server.dir.path().join("prometheus.url"))
        .expect("prometheus.url")
        .trim()
        .to_string();
    let mut compared = 0;
    for q in [
        0.0, 0.001, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0,
    ] {
        let expr = format!("histogram_quantile({q}, h_bucket)");
        let body = query(&url, &expr, &t.to_string());
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        let result = v["data"]["result"].as_array().expect("result array");
        assert_eq!(result.len(), hists.len(), "{body}");
        for r in result {
            let case: usize = r["metric"]["case"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("case label");
            let theirs: f64 = match r["value"][1].as_str().expect("value") {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                s => s.parse().expect("number"),
            };
            let ours = hists[case].quantile(q);
            assert!(
                ours.to_bits() == theirs.to_bits() || (ours.is_nan() && theirs.is_nan()),
                "case {case} q {q}: ours {ours} prometheus {theirs} ({:?} / {:?})",
                hists[case].upper_bounds(),
                hists[case].cumulative_counts()
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 11 * hists.len());
}
