//! A [`MetricSource`] over Prometheus's HTTP API (feature `prometheus`).
//!
//! Value metrics run `query_range` over the window with a PromQL template;
//! count metrics run two instant queries (events, trials) at the window's
//! end. Templates name the cohort as `${cohort}` (replaced by `baseline` or
//! `canary`) and may use `${window}` (the window length, e.g. `300s`):
//!
//! ```text
//! histogram_quantile(0.99, sum by (le) (rate(http_duration_seconds_bucket{cohort="${cohort}"}[1m])))
//! sum(increase(http_errors_total{cohort="${cohort}"}[${window}]))
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::MetricKind;
use crate::data::{Counts, Samples};
use crate::error::CanaryError;
use crate::source::{MetricQuery, MetricSource};

#[derive(Debug, Clone)]
enum PromMetric {
    Values(String),
    Counts { events: String, trials: String },
}

/// Prometheus HTTP API source.
///
/// ```
/// use rollgate_canary::prometheus::PrometheusSource;
/// let src = PrometheusSource::new("http://127.0.0.1:9090")
///     .unwrap()
///     .values("latency_ms", r#"app_latency_ms{cohort="${cohort}"}"#)
///     .counts(
///         "errors",
///         r#"sum(increase(app_errors_total{cohort="${cohort}"}[${window}]))"#,
///         r#"sum(increase(app_requests_total{cohort="${cohort}"}[${window}]))"#,
///     )
///     .step_secs(1.0);
/// assert!(PrometheusSource::new("ftp://x").is_err());
/// # let _ = src;
/// ```
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    base: String,
    client: reqwest::Client,
    step: f64,
    metrics: BTreeMap<String, PromMetric>,
}

impl PrometheusSource {
    /// A source for the server at `base_url` (`http://host:port`, no trailing path).
    pub fn new(base_url: &str) -> Result<Self, CanaryError> {
        let base = base_url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CanaryError::input(
                "prometheus url",
                format!("\"{base_url}\" is not an http(s) URL"),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CanaryError::input("prometheus client", e.to_string()))?;
        Ok(Self {
            base,
            client,
            step: 15.0,
            metrics: BTreeMap::new(),
        })
    }

    /// Resolution of `query_range` in seconds (default 15).
    pub fn step_secs(mut self, step: f64) -> Self {
        if step.is_finite() && step > 0.0 {
            self.step = step;
        }
        self
    }

    /// Reads value metric `metric` with `query_range` over `template`.
    pub fn values(mut self, metric: &str, template: &str) -> Self {
        self.metrics
            .insert(metric.to_string(), PromMetric::Values(template.to_string()));
        self
    }

    /// Reads count metric `metric` as two instant queries.
    pub fn counts(mut self, metric: &str, events: &str, trials: &str) -> Self {
        self.metrics.insert(
            metric.to_string(),
            PromMetric::Counts {
                events: events.to_string(),
                trials: trials.to_string(),
            },
        );
        self
    }

    fn err(&self, metric: &str, why: String) -> CanaryError {
        CanaryError::Source {
            source_name: format!("prometheus {}", self.base),
            metric: metric.to_string(),
            why,
            cause: None,
        }
    }

    fn err_from(&self, metric: &str, why: String, cause: reqwest::Error) -> CanaryError {
        CanaryError::Source {
            source_name: format!("prometheus {}", self.base),
            metric: metric.to_string(),
            why,
            cause: Some(std::sync::Arc::new(cause)),
        }
    }

    async fn call(
        &self,
        metric: &str,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<serde_json::Value, CanaryError> {
        let body = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let url = format!("{}{path}", self.base);
        let resp = self
            .client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| self.err_from(metric, format!("cannot reach {url}"), e))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| self.err_from(metric, format!("reading the answer of {url}"), e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            self.err(
                metric,
                format!(
                    "{url} answered {status} with non-JSON ({e}): {}",
                    text.chars().take(200).collect::<String>()
                ),
            )
        })?;
        if v["status"] != "success" {
            return Err(self.err(
                metric,
                format!(
                    "prometheus rejected the query ({status}): {}: {}",
                    v["errorType"].as_str().unwrap_or("error"),
                    v["error"].as_str().unwrap_or("no message")
                ),
            ));
        }
        Ok(v)
    }
}

fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn fill(template: &str, q: &MetricQuery) -> String {
    template.replace("${cohort}", q.cohort.as_str()).replace(
        "${window}",
        &format!("{}s", q.window.secs().max(1.0).round()),
    )
}

fn parse_value(v: &serde_json::Value) -> Option<f64> {
    v.get(1)?.as_str()?.parse::<f64>().ok()
}

#[async_trait]
impl MetricSource for PrometheusSource {
    async fn samples(&self, q: &MetricQuery) -> Result<Samples, CanaryError> {
        let m = self.metrics.get(&q.metric).ok_or_else(|| {
            self.err(
                &q.metric,
                "no PromQL query is configured for it".to_string(),
            )
        })?;
        match (m, q.kind) {
            (PromMetric::Values(t), kind) if kind != MetricKind::Count => {
                let query = fill(t, q);
                let v = self
                    .call(
                        &q.metric,
                        "/api/v1/query_range",
                        &[
                            ("query", query.clone()),
                            ("start", format!("{}", q.window.start)),
                            ("end", format!("{}", q.window.end)),
                            ("step", format!("{}", self.step)),
                        ],
                    )
                    .await?;
                let series = v["data"]["result"].as_array().cloned().unwrap_or_default();
                let mut out = Vec::new();
                for s in &series {
                    for p in s["values"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                        let x = parse_value(p).ok_or_else(|| {
                            self.err(&q.metric, format!("unreadable sample {p} in `{query}`"))
                        })?;
                        if x.is_nan() {
                            continue; // no data at that step (e.g. 0/0 rate)
                        }
                        if x.is_infinite() {
                            return Err(
                                self.err(&q.metric, format!("`{query}` returned {x} at {}", p[0]))
                            );
                        }
                        out.push(x);
                    }
                }
                if out.is_empty() {
                    return Err(self.err(
                        &q.metric,
                        format!(
                            "`{query}` returned no samples for cohort {} in [{}, {})",
                            q.cohort, q.window.start, q.window.end
                        ),
                    ));
                }
                Ok(Samples::Values(out))
            }
            (PromMetric::Counts { events, trials }, _) => {
                let mut got = [0u64; 2];
                for (slot, t) in [events, trials].into_iter().enumerate() {
                    let query = fill(t, q);
                    let v = self
                        .call(
                            &q.metric,
                            "/api/v1/query",
                            &[
                                ("query", query.clone()),
                                ("time", format!("{}", q.window.end)),
                            ],
                        )
                        .await?;
                    let data = &v["data"];
                    let values: Vec<Option<f64>> = match data["resultType"].as_str() {
                        Some("scalar") => vec![parse_value(&data["result"])],
                        _ => data["result"]
                            .as_array()
                            .map(|a| a.iter().map(|s| parse_value(&s["value"])).collect())
                            .unwrap_or_default(),
                    };
                    if values.is_empty() {
                        return Err(self.err(
                            &q.metric,
                            format!("`{query}` returned no series for cohort {}", q.cohort),
                        ));
                    }
                    let mut total = 0.0;
                    for x in values {
                        let x = x.ok_or_else(|| {
                            self.err(&q.metric, format!("unreadable value in `{query}`"))
                        })?;
                        if !x.is_finite() || x < 0.0 {
                            return Err(
                                self.err(&q.metric, format!("`{query}` returned {x}, not a count"))
                            );
                        }
                        total += x;
                    }
                    got[slot] = total.round() as u64;
                }
                Ok(Samples::Counts(Counts {
                    events: got[0],
                    trials: got[1],
                    recent: None,
                }))
            }
            (PromMetric::Values(_), _) => Err(self.err(
                &q.metric,
                "a count metric needs events and trials queries (use `counts`)".to_string(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_promql() {
        assert_eq!(
            encode("a{b=\"c\"}[5m] + 1"),
            "a%7Bb%3D%22c%22%7D%5B5m%5D%20%2B%201"
        );
    }
}
