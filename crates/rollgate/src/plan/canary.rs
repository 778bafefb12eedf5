//! The canary gate a plan file describes, at run time: cohorts from the
//! executor, data from scraping or Prometheus, judged by [`CanaryGate`];
//! and shadow mode ([`Plan::shadow`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rollgate_canary::Analysis;
use rollgate_canary::source::{MetricSource, Window, collect};
use rollgate_deploy::{CommandTemplate, Decision, Error, Gate, GateContext, GateEvidence};

use super::{CanarySpec, Plan, SourceSpec};
use crate::canary_gate::CanaryGate;
use crate::promql::PromQlSource;
use crate::scrape::{ScrapeSource, ScrapeTarget};

impl Plan {
    /// Shadow mode: judge two live cohorts of this plan's targets through
    /// its canary gate's source and analysis, without a rollout. Checks the
    /// names now; [`Shadow::judge`] measures.
    ///
    /// Errors: the plan has no `[gate] kind = "canary"`, a name that is not
    /// a target of the plan, a target named twice or in both cohorts, an
    /// empty cohort.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # std::fs::write(dir.path().join("analysis.toml"), "[[metrics]]\nname = \"errors\"\nkind = \"count\"\nbad = \"increase\"\n")?;
    /// # let path = dir.path().join("plan.toml");
    /// # std::fs::write(&path, r#"
    /// # service = "dns"
    /// # artifact = { version = "v2", digest = "sha256:2222222222222222222222222222222222222222222222222222222222222222" }
    /// # targets = [{ name = "dns-1", addr = "127.0.0.1:18081" }, { name = "dns-2", addr = "127.0.0.1:18082" }]
    /// # [deployer]
    /// # kind = "command"
    /// # deploy = "true"
    /// # current = "echo v1"
    /// # ready = "true"
    /// # [strategy]
    /// # kind = "canary"
    /// # steps = [50, 100]
    /// # bake = "30s"
    /// # [gate]
    /// # kind = "canary"
    /// # analysis = "analysis.toml"
    /// # [gate.metrics.errors]
    /// # events = { counter = "http_requests_total", labels = { code = "500" } }
    /// # trials = { counter = "http_requests_total" }
    /// # "#)?;
    /// let plan = rollgate::plan::Plan::load(&path)?;
    /// let shadow = plan.shadow(&["dns-1".into()], &["dns-2".into()])?;
    /// assert_eq!(shadow.lookback(), std::time::Duration::from_secs(30));
    /// // `shadow.judge().await` scrapes both for the lookback, then judges.
    /// assert!(plan.shadow(&["dns-1".into()], &["dns-9".into()]).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shadow(&self, baseline: &[String], canary: &[String]) -> Result<Shadow, Error> {
        let bad = |reason: String| Error::PlanFile {
            path: self.path.clone(),
            reason,
        };
        let Some(spec) = &self.canary else {
            return Err(bad(format!(
                "shadow analysis needs [gate] kind = \"canary\" (this plan's gate: {})",
                self.gate_kind.as_deref().unwrap_or("none")
            )));
        };
        let known: Vec<&str> = self.targets.iter().map(|t| t.as_str()).collect();
        let mut seen: Vec<&str> = Vec::new();
        for (cohort, names) in [("baseline", baseline), ("canary", canary)] {
            if names.is_empty() {
                return Err(bad(format!("the {cohort} cohort names no target")));
            }
            for n in names {
                if !known.contains(&n.as_str()) {
                    return Err(bad(format!(
                        "{cohort} target {n:?} is not a target of this plan (targets: {})",
                        known.join(", ")
                    )));
                }
                if seen.contains(&n.as_str()) {
                    return Err(bad(format!("target {n:?} is named twice")));
                }
                seen.push(n);
            }
        }
        Ok(Shadow {
            plan: self.clone(),
            spec: spec.clone(),
            baseline: baseline.to_vec(),
            canary: canary.to_vec(),
            lookback: spec.lookback,
        })
    }
}

/// Two live cohorts judged without a rollout ([`Plan::shadow`]).
#[derive(Debug, Clone)]
pub struct Shadow {
    plan: Plan,
    spec: CanarySpec,
    baseline: Vec<String>,
    canary: Vec<String>,
    lookback: Duration,
}

impl Shadow {
    /// Judge this window instead of the gate's `lookback`.
    pub fn with_lookback(mut self, lookback: Duration) -> Self {
        self.lookback = lookback;
        self
    }

    /// The window judged.
    pub fn lookback(&self) -> Duration {
        self.lookback
    }

    /// How long [`judge`](Self::judge) measures before judging: the
    /// lookback when scraping (rollgate keeps no history of its own), none
    /// with Prometheus (it has the history).
    pub fn measures_for(&self) -> Duration {
        match self.spec.source {
            SourceSpec::Scrape { .. } => self.lookback,
            SourceSpec::Prometheus { .. } => Duration::ZERO,
        }
    }

    /// Scrapes both cohorts for the lookback (source `scrape`) or asks
    /// Prometheus about the last lookback, and judges. A target without
    /// data leaves its cohort without data (the report says inconclusive
    /// and adds a reason naming it); no target answering at all is an
    /// error, as for the gate.
    pub async fn judge(&self) -> Result<rollgate_canary::Report, Error> {
        let names: Vec<String> = self.baseline.iter().chain(&self.canary).cloned().collect();
        let backend = Backend::new(&self.plan, &self.spec, &names)?;
        if let Backend::Scrape(s) = &backend {
            // A first scrape as the starting point, then the whole lookback.
            s.scrape_once().await;
            tokio::time::sleep(self.lookback).await;
            s.scrape_once().await;
        }
        let now = backend.now();
        let window = Window::new(now - self.lookback.as_secs_f64(), now)
            .map_err(|e| Error::Gate(e.to_string()))?;
        let (source, notes) = backend.view(&self.baseline, &self.canary, window, None);
        let analysis =
            Analysis::new(self.spec.analysis.clone()).map_err(|e| Error::Gate(e.to_string()))?;
        let data = collect(source.as_ref(), analysis.config(), window)
            .await
            .map_err(|e| Error::Gate(rollgate_deploy::error_chain(&e)))?;
        let mut report = analysis
            .judge(&data)
            .map_err(|e| Error::Gate(rollgate_deploy::error_chain(&e)))?;
        report.reasons.extend(notes);
        Ok(report)
    }
}

enum Backend {
    Scrape(ScrapeSource),
    Prometheus(PromQlSource),
}

/// The canary gate a plan file describes: cohorts from the executor, data
/// from scraping or Prometheus, judged by [`CanaryGate`].
pub(super) struct PlanCanaryGate {
    backend: Backend,
    analysis: Analysis,
    lookback: Duration,
    targets: Vec<String>,
    /// The last baseline judged (targets, window), for the last phase.
    last_baseline: Mutex<Option<(Vec<String>, Window)>>,
}

impl Backend {
    /// The source over `names` (targets of `plan`); scraping starts now.
    fn new(plan: &Plan, spec: &CanarySpec, names: &[String]) -> Result<Self, Error> {
        let chosen = plan
            .targets
            .iter()
            .filter(|t| names.iter().any(|n| n == t.as_str()));
        Ok(match &spec.source {
            SourceSpec::Scrape { url, interval } => {
                let tpl = CommandTemplate::new(url.clone())?;
                let targets = chosen
                    .map(|t| {
                        let mut vars: BTreeMap<&str, &str> = BTreeMap::new();
                        vars.insert("target", t.as_str());
                        if let Some(a) = plan.attributes.get(t) {
                            for (k, v) in a {
                                vars.insert(k, v);
                            }
                        }
                        Ok(ScrapeTarget {
                            name: t.to_string(),
                            url: tpl.render(&vars)?,
                        })
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                let src = ScrapeSource::new(targets, spec.metrics.clone())
                    .map_err(|e| Error::Gate(e.to_string()))?;
                src.start(*interval);
                Backend::Scrape(src)
            }
            SourceSpec::Prometheus {
                url,
                instance_label,
            } => {
                let addrs = chosen
                    .filter_map(|t| {
                        let a = plan.attributes.get(t)?.get("addr")?;
                        Some((t.to_string(), a.clone()))
                    })
                    .collect();
                Backend::Prometheus(
                    PromQlSource::new(url, instance_label, addrs, spec.metrics.clone())
                        .map_err(|e| Error::Gate(e.to_string()))?,
                )
            }
        })
    }

    /// The source for one judgement, and a note per target without data.
    fn view(
        &self,
        baseline: &[String],
        canary: &[String],
        window: Window,
        baseline_window: Option<Window>,
    ) -> (Arc<dyn MetricSource>, Vec<String>) {
        match self {
            Backend::Scrape(s) => {
                let notes = s
                    .unmeasured(baseline, baseline_window.unwrap_or(window))
                    .into_iter()
                    .chain(s.unmeasured(canary, window))
                    .map(|(t, why)| format!("target {t} has no data: {why}"))
                    .collect();
                (
                    Arc::new(s.cohorts(baseline.to_vec(), canary.to_vec(), baseline_window)),
                    notes,
                )
            }
            Backend::Prometheus(p) => (
                Arc::new(p.cohorts(baseline.to_vec(), canary.to_vec(), baseline_window)),
                Vec::new(),
            ),
        }
    }

    fn now(&self) -> f64 {
        match self {
            Backend::Scrape(s) => s.now_secs(),
            Backend::Prometheus(_) => PromQlSource::now_unix(),
        }
    }
}

impl PlanCanaryGate {
    pub(super) fn new(plan: &Plan, spec: &CanarySpec) -> Result<Self, Error> {
        let analysis =
            Analysis::new(spec.analysis.clone()).map_err(|e| Error::Gate(e.to_string()))?;
        let targets: Vec<String> = plan.targets.iter().map(ToString::to_string).collect();
        Ok(Self {
            backend: Backend::new(plan, spec, &targets)?,
            analysis,
            lookback: spec.lookback,
            targets,
            last_baseline: Mutex::new(None),
        })
    }

    fn now(&self) -> f64 {
        self.backend.now()
    }
}

#[async_trait]
impl Gate for PlanCanaryGate {
    async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
        Ok(self.evaluate_with_evidence(at).await?.0)
    }

    async fn evaluate_with_evidence(
        &self,
        at: &GateContext,
    ) -> Result<(Decision, Option<GateEvidence>), Error> {
        let canary: Vec<String> = at.canary_targets.iter().map(ToString::to_string).collect();
        let baseline: Vec<String> = self
            .targets
            .iter()
            .filter(|t| !canary.contains(t))
            .cloned()
            .collect();
        let now = self.now();
        let window = Window::new(now - self.lookback.as_secs_f64(), now)
            .map_err(|e| Error::Gate(e.to_string()))?;
        let mut notes = Vec::new();
        let (baseline, baseline_window) = if baseline.is_empty() {
            let last = self
                .last_baseline
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            match last {
                Some((targets, w)) => {
                    notes.push(format!(
                        "baseline: {} over the window judged before this phase ({:.0}s ago), as no target is left on the previous artifact",
                        targets.join(", "),
                        now - w.end
                    ));
                    (targets, Some(w))
                }
                None => {
                    notes.push(
                        "baseline: none (every target is on the new artifact and no earlier phase was judged)"
                            .to_string(),
                    );
                    (Vec::new(), None)
                }
            }
        } else {
            (baseline, None)
        };
        let (source, unmeasured) = self
            .backend
            .view(&baseline, &canary, window, baseline_window);
        notes.extend(unmeasured);
        let clock_now = now;
        let gate = CanaryGate::new(
            source,
            self.analysis.clone(),
            self.lookback,
            Arc::new(move || clock_now),
        );
        let (decision, evidence) = gate.evaluate_with_evidence(at).await?;
        if baseline_window.is_none() && !baseline.is_empty() {
            *self.last_baseline.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((baseline, window));
        }
        let decision = match decision {
            Decision::Promote(mut r) => {
                r.extend(notes);
                Decision::Promote(r)
            }
            Decision::Continue(mut r) => {
                r.extend(notes);
                Decision::Continue(r)
            }
            Decision::Hold(mut r) => {
                r.extend(notes);
                Decision::Hold(r)
            }
            Decision::Rollback(mut r) => {
                r.extend(notes);
                Decision::Rollback(r)
            }
        };
        Ok((decision, evidence))
    }
}
