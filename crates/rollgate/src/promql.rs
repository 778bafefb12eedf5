//! A [`MetricSource`] over a Prometheus server whose PromQL is written from
//! the plan's metric mappings, so the same `[gate.metrics]` tables serve
//! scraping and Prometheus:
//!
//! ```text
//! histogram: sum by (le) (increase(<family>_bucket{<labels>,<instance_label>=~"<addrs>"}[<window>s]))
//! counts:    sum(increase(<counter>{<labels>,<instance_label>=~"<addrs>"}[<window>s]))
//! measured:  min by (<instance_label>) (min_over_time(up{<instance_label>=~"<addrs>"}[<window>s]))
//! ```
//!
//! Each is an instant query at the window's end. `increase` handles counter
//! resets. A cohort with a target that Prometheus did not scrape
//! successfully through the whole window (`up` missing or 0) has no data;
//! when no target of either cohort was up, the source fails.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rollgate_canary::source::{MetricQuery, MetricSource, Window};
use rollgate_canary::{CanaryError, Cohort, Counts, Samples};

use crate::scrape::{CounterSelector, MetricMapping, histogram_samples, no_data};

/// PromQL written from metric mappings; [`cohorts`](Self::cohorts) gives
/// the [`MetricSource`] for one judgement.
#[derive(Debug, Clone)]
pub struct PromQlSource {
    base: String,
    instance_label: String,
    addrs: BTreeMap<String, String>,
    mappings: BTreeMap<String, MetricMapping>,
    client: reqwest::Client,
}

fn err(metric: &str, base: &str, why: impl Into<String>) -> CanaryError {
    CanaryError::Source {
        source_name: format!("prometheus {base}"),
        metric: metric.to_string(),
        why: why.into(),
        cause: None,
    }
}

/// `s` quoted as a PromQL string with every regex metacharacter escaped.
fn regex_alternatives(values: &[&str]) -> String {
    let mut out = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        for c in v.chars() {
            if ".+*?()|[]{}^$\\".contains(c) {
                out.push_str("\\\\");
            }
            if c == '"' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// `application/x-www-form-urlencoded` value.
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

fn matchers(labels: &BTreeMap<String, String>, instance_label: &str, addrs: &str) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    parts.push(format!("{instance_label}=~\"{addrs}\""));
    parts.join(",")
}

impl PromQlSource {
    /// A source for the server at `base_url`; `addrs` maps target names to
    /// the `instance_label` values of their series.
    pub fn new(
        base_url: &str,
        instance_label: &str,
        addrs: BTreeMap<String, String>,
        mappings: BTreeMap<String, MetricMapping>,
    ) -> Result<Self, CanaryError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| err("*", base_url, format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            instance_label: instance_label.to_string(),
            addrs,
            mappings,
            client,
        })
    }

    /// Now, in Unix seconds (Prometheus's timeline).
    pub fn now_unix() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    /// The source for one judgement (see [`ScrapeSource::cohorts`](crate::scrape::ScrapeSource::cohorts)).
    pub fn cohorts(
        &self,
        baseline: Vec<String>,
        canary: Vec<String>,
        baseline_window: Option<Window>,
    ) -> PromQlView {
        PromQlView {
            source: self.clone(),
            baseline,
            canary,
            baseline_window,
        }
    }

    /// The PromQL for `metric` over the cohort `addrs` and a window of `secs`.
    pub fn queries(&self, metric: &str, addrs: &[&str], secs: u64) -> Vec<String> {
        let re = regex_alternatives(addrs);
        let counter = |c: &CounterSelector| {
            format!(
                "sum(increase({}{{{}}}[{secs}s]))",
                c.counter,
                matchers(&c.labels, &self.instance_label, &re)
            )
        };
        match self.mappings.get(metric) {
            Some(MetricMapping::Histogram { family, labels, .. }) => vec![format!(
                "sum by (le) (increase({family}_bucket{{{}}}[{secs}s]))",
                matchers(labels, &self.instance_label, &re)
            )],
            Some(MetricMapping::Count { events, trials }) => vec![counter(events), counter(trials)],
            None => Vec::new(),
        }
    }

    async fn query(
        &self,
        metric: &str,
        promql: &str,
        at: f64,
    ) -> Result<Vec<(BTreeMap<String, String>, f64)>, CanaryError> {
        let url = format!("{}/api/v1/query", self.base);
        let resp = self
            .client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("query={}&time={at:.3}", encode(promql)))
            .send()
            .await
            .map_err(|e| err(metric, &self.base, format!("cannot reach {url}: {e}")))?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await.map_err(|e| {
            err(
                metric,
                &self.base,
                format!("{url} answered {status} without JSON: {e}"),
            )
        })?;
        if v["status"] != "success" {
            return Err(err(
                metric,
                &self.base,
                format!(
                    "prometheus rejected `{promql}` ({status}): {}",
                    v["error"].as_str().unwrap_or("no message")
                ),
            ));
        }
        let mut out = Vec::new();
        for s in v["data"]["result"].as_array().map_or(&[][..], |a| a) {
            let labels = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let x = s["value"][1]
                .as_str()
                .and_then(|x| x.parse::<f64>().ok())
                .ok_or_else(|| {
                    err(
                        metric,
                        &self.base,
                        format!("unreadable value in `{promql}`"),
                    )
                })?;
            out.push((labels, x));
        }
        Ok(out)
    }

    /// The bucket bounds a histogram metric's family has anywhere (none for counts).
    async fn bounds(&self, metric: &str, at: f64) -> Result<Vec<f64>, CanaryError> {
        let Some(MetricMapping::Histogram { family, labels, .. }) = self.mappings.get(metric)
        else {
            return Ok(Vec::new());
        };
        let m: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let q = format!("count by (le) ({family}_bucket{{{}}})", m.join(","));
        Ok(self
            .query(metric, &q, at)
            .await?
            .iter()
            .filter_map(|(l, _)| l.get("le").and_then(|x| x.parse::<f64>().ok()))
            .collect())
    }

    /// Whether every one of `names` was up through `w`.
    async fn all_up(&self, metric: &str, names: &[String], w: Window) -> Result<bool, CanaryError> {
        let addrs: Vec<&str> = names
            .iter()
            .filter_map(|n| self.addrs.get(n).map(String::as_str))
            .collect();
        if addrs.len() != names.len() || addrs.is_empty() {
            return Ok(false);
        }
        let q = format!(
            "min by ({l}) (min_over_time(up{{{l}=~\"{re}\"}}[{secs}s]))",
            l = self.instance_label,
            re = regex_alternatives(&addrs),
            secs = w.secs().max(1.0).round() as u64
        );
        let r = self.query(metric, &q, w.end).await?;
        Ok(addrs.iter().all(|a| {
            r.iter().any(|(l, v)| {
                l.get(&self.instance_label).map(String::as_str) == Some(*a) && *v >= 1.0
            })
        }))
    }
}

/// A [`MetricSource`] over two named cohorts of a [`PromQlSource`].
#[derive(Debug, Clone)]
pub struct PromQlView {
    source: PromQlSource,
    baseline: Vec<String>,
    canary: Vec<String>,
    baseline_window: Option<Window>,
}

#[async_trait]
impl MetricSource for PromQlView {
    async fn samples(&self, q: &MetricQuery) -> Result<Samples, CanaryError> {
        let src = &self.source;
        let m = src
            .mappings
            .get(&q.metric)
            .ok_or_else(|| err(&q.metric, &src.base, "no mapping is configured for it"))?;
        let b_window = self.baseline_window.unwrap_or(q.window);
        let (names, window) = match q.cohort {
            Cohort::Baseline => (&self.baseline, b_window),
            Cohort::Canary => (&self.canary, q.window),
        };
        let up = src.all_up(&q.metric, names, window).await?;
        if !up {
            let other_up = match q.cohort {
                Cohort::Baseline => src.all_up(&q.metric, &self.canary, q.window).await?,
                Cohort::Canary => src.all_up(&q.metric, &self.baseline, b_window).await?,
            };
            let bounds = src.bounds(&q.metric, window.end).await?;
            if !other_up {
                return Err(err(
                    &q.metric,
                    &src.base,
                    format!(
                        "no cohort was scraped through [{:.0}, {:.0}): up is missing or 0 for targets of both",
                        q.window.start, q.window.end
                    ),
                ));
            }
            return Ok(no_data(m, &bounds));
        }
        let addrs: Vec<&str> = names
            .iter()
            .filter_map(|n| src.addrs.get(n).map(String::as_str))
            .collect();
        let secs = window.secs().max(1.0).round() as u64;
        let queries = src.queries(&q.metric, &addrs, secs);
        Ok(match m {
            MetricMapping::Histogram { scale, .. } => {
                let rows = src.query(&q.metric, &queries[0], window.end).await?;
                let mut cum = BTreeMap::new();
                for (labels, v) in rows {
                    let le = match labels.get("le").map(String::as_str) {
                        Some("+Inf") => f64::INFINITY,
                        Some(x) => match x.parse::<f64>() {
                            Ok(x) => x,
                            Err(_) => continue,
                        },
                        None => continue,
                    };
                    if v.is_finite() && v >= 0.0 {
                        cum.insert(le.to_bits(), v);
                    }
                }
                histogram_samples(&cum, *scale, &q.metric)?
            }
            MetricMapping::Count { .. } => {
                let mut got = [0.0f64; 2];
                for (slot, promql) in queries.iter().enumerate() {
                    got[slot] = src
                        .query(&q.metric, promql, window.end)
                        .await?
                        .iter()
                        .map(|(_, v)| if v.is_finite() && *v > 0.0 { *v } else { 0.0 })
                        .sum();
                }
                Samples::Counts(Counts {
                    events: got[0].round() as u64,
                    trials: got[1].round() as u64,
                    recent: None,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promql_is_written_from_the_mapping() {
        let maps: BTreeMap<String, MetricMapping> = [
            (
                "latency_ms".to_string(),
                MetricMapping::Histogram {
                    family: "http_request_duration_seconds".into(),
                    scale: 1000.0,
                    labels: [("route".to_string(), "/records".to_string())].into(),
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
        let src =
            PromQlSource::new("http://127.0.0.1:9090", "instance", BTreeMap::new(), maps).unwrap();
        let q = src.queries("latency_ms", &["127.0.0.1:18081", "127.0.0.1:18082"], 20);
        assert_eq!(
            q,
            [
                r#"sum by (le) (increase(http_request_duration_seconds_bucket{route="/records",instance=~"127\\.0\\.0\\.1:18081|127\\.0\\.0\\.1:18082"}[20s]))"#
            ]
        );
        let q = src.queries("errors", &["a:1"], 5);
        assert_eq!(
            q,
            [
                r#"sum(increase(http_requests_total{code="500",instance=~"a:1"}[5s]))"#,
                r#"sum(increase(http_requests_total{instance=~"a:1"}[5s]))"#
            ]
        );
    }
}
