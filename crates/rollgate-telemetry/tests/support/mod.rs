//! A throwaway Prometheus for tests (scripts/prometheus.sh of rollgate-test).
#![allow(dead_code)] // each test binary uses its own part

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

fn script() -> PathBuf {
    rollgate_test::script("prometheus.sh")
}

/// Stops the Prometheus it started, even when the test fails.
pub struct Prometheus {
    workdir: tempfile::TempDir,
    url: String,
}

impl Prometheus {
    pub fn start(target: &str) -> Self {
        let workdir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(workdir.path())
            .arg(target)
            .status()
            .expect("run scripts/prometheus.sh");
        assert!(status.success(), "scripts/prometheus.sh start failed");
        let url = std::fs::read_to_string(workdir.path().join("prometheus.url"))
            .expect("prometheus.url written")
            .trim()
            .to_owned();
        Self { workdir, url }
    }

    /// Instant query through the HTTP API (reqwest); the `data.result` array.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            [("query", promql)],
        )
        .expect("query url");
        let resp = reqwest::blocking::get(url).expect("query prometheus");
        let body = resp.text().expect("read the response");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls until the query returns a sample (scrapes happen every second).
    pub fn scalar_eventually(&self, promql: &str) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self
                .query(promql)
                .first()
                .and_then(|r| r["value"][1].as_str())
            {
                return v.parse().unwrap_or(f64::NAN);
            }
            assert!(Instant::now() < deadline, "no result for {promql}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(self.workdir.path())
            .status();
    }
}
