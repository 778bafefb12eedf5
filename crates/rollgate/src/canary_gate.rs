//! [`CanaryGate`]: rollgate-deploy's [`Gate`] answered by a rollgate-canary
//! analysis, in process (no `CommandGate`, no subprocess).
//!
//! After each gated phase has baked, the gate fetches every configured metric
//! for the baseline and canary cohorts over the last `lookback` from a
//! [`MetricSource`], judges them and maps the verdict:
//!
//! | canary verdict | decision |
//! |---|---|
//! | promote | `Promote` |
//! | rollback | `Rollback` |
//! | inconclusive, fewer than `inconclusive_retries` asks in this phase | `Continue` (bake more, ask again) |
//! | inconclusive after that | `Hold` (a person decides) |
//!
//! A source that cannot answer is a gate error; the executor retries it and
//! gives up after its own consecutive-error limit. In sequential mode the
//! `k`-th ask of a phase is judged at `alpha·6/(π²k²)`, so asking again and
//! again never raises the false-rollback rate above alpha. Every decision
//! carries the verdict's reasons and one line per metric.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rollgate_canary::overtime::spent_alpha;
use rollgate_canary::source::{MetricSource, Window, collect};
use rollgate_canary::{Analysis, Verdict};
use rollgate_deploy::{
    CohortEvidence, Decision, Error, Gate, GateContext, GateEvidence, MetricEvidence, Number,
    error_chain,
};

/// Where "now" is on the metric source's timeline (Unix seconds for
/// Prometheus, `CanaryRecorder::now_secs` for the process's own recorder).
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// A [`Gate`] backed by canary analysis.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use rollgate::canary_gate::CanaryGate;
/// use rollgate::canary::{Analysis, AnalysisConfig};
/// use rollgate::canary::recorder::CanaryRecorder;
/// use rollgate::deploy::Gate;
///
/// let recorder = CanaryRecorder::new(100_000);
/// let config = AnalysisConfig::from_toml_str(r#"
/// [[metrics]]
/// name = "latency_ms"
/// kind = "latency"
/// bad = "increase"
/// relative = { max_increase_pct = 5.0 }
/// "#)?;
/// let clock = { let r = recorder.clone(); Arc::new(move || r.now_secs()) };
/// let gate = CanaryGate::new(
///     Arc::new(recorder.source()),
///     Analysis::new(config)?,
///     Duration::from_secs(300),
///     clock,
/// );
/// let _: Arc<dyn Gate> = Arc::new(gate);
/// # Ok::<(), rollgate::canary::CanaryError>(())
/// ```
#[derive(Clone)]
pub struct CanaryGate {
    source: Arc<dyn MetricSource>,
    analysis: Analysis,
    lookback: Duration,
    clock: Clock,
    inconclusive_retries: u32,
    sequential: bool,
}

impl std::fmt::Debug for CanaryGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CanaryGate")
            .field("analysis", &self.analysis)
            .field("lookback", &self.lookback)
            .field("inconclusive_retries", &self.inconclusive_retries)
            .field("sequential", &self.sequential)
            .finish_non_exhaustive()
    }
}

impl CanaryGate {
    /// A gate judging the last `lookback` of `source` (timeline given by `clock`).
    /// Inconclusive answers continue twice before holding; fixed alpha.
    pub fn new(
        source: Arc<dyn MetricSource>,
        analysis: Analysis,
        lookback: Duration,
        clock: Clock,
    ) -> Self {
        Self {
            source,
            analysis,
            lookback,
            clock,
            inconclusive_retries: 2,
            sequential: false,
        }
    }

    /// How many inconclusive asks in one phase continue (bake more) before the gate holds.
    pub fn inconclusive_retries(mut self, n: u32) -> Self {
        self.inconclusive_retries = n;
        self
    }

    /// Judge the `k`-th ask of a phase at the alpha-spending level
    /// `alpha·6/(π²k²)` over everything since the phase's first window.
    pub fn sequential(mut self, on: bool) -> Self {
        self.sequential = on;
        self
    }
}

/// The report's measurements as deploy's [`GateEvidence`] (kept in the log
/// with the decision): per metric both cohorts' summaries, the result, the
/// smallest p-value and the deciding reason.
pub fn evidence_of(report: &rollgate_canary::Report) -> GateEvidence {
    let cohort = |s: &rollgate_canary::data::Summary| CohortEvidence {
        n: s.n,
        mean: s.mean.and_then(Number::finite),
        p50: s.p50.and_then(Number::finite),
        p95: s.p95.and_then(Number::finite),
        p99: s.p99.and_then(Number::finite),
        events: s.events,
        ratio: s.ratio.and_then(Number::finite),
    };
    GateEvidence::new(
        report.verdict.as_str(),
        report.score,
        report
            .metrics
            .iter()
            .map(|m| MetricEvidence {
                name: m.name.clone(),
                result: m.result.as_str().to_owned(),
                failed: m.failed,
                critical: m.critical,
                baseline: cohort(&m.baseline),
                canary: cohort(&m.canary),
                p_value: m.p_value.and_then(Number::finite),
                reason: m.reason.clone(),
            })
            .collect(),
    )
}

#[async_trait]
impl Gate for CanaryGate {
    async fn evaluate(&self, at: &GateContext) -> Result<Decision, Error> {
        Ok(self.evaluate_with_evidence(at).await?.0)
    }

    async fn evaluate_with_evidence(
        &self,
        at: &GateContext,
    ) -> Result<(Decision, Option<GateEvidence>), Error> {
        let now = (self.clock)();
        let span = self.lookback.as_secs_f64();
        // Sequential mode widens the window with each ask (cumulative data).
        let asks = f64::from(at.attempt) + 1.0;
        let start = if self.sequential {
            now - span * asks
        } else {
            now - span
        };
        let window = Window::new(start, now).map_err(|e| {
            Error::Gate(format!(
                "canary analysis of {}: {}",
                at.service,
                error_chain(&e)
            ))
        })?;
        let data = collect(self.source.as_ref(), self.analysis.config(), window)
            .await
            .map_err(|e| {
                Error::Gate(format!(
                    "canary analysis of {}: {}",
                    at.service,
                    error_chain(&e)
                ))
            })?;
        let alpha = if self.sequential {
            spent_alpha(self.analysis.config().alpha, at.attempt + 1)
        } else {
            self.analysis.config().alpha
        };
        let report = self.analysis.judge_at(&data, alpha).map_err(|e| {
            Error::Gate(format!(
                "canary analysis of {}: {}",
                at.service,
                error_chain(&e)
            ))
        })?;
        let mut reasons = vec![format!(
            "canary analysis of {} {} at phase {} ({}): {} (score {})",
            at.service,
            at.artifact.version,
            at.phase + 1,
            at.phase_name,
            report.verdict.as_str(),
            report
                .score
                .map(|s| format!("{s:.1}"))
                .unwrap_or_else(|| "n/a".into())
        )];
        // The verdict's reasons name metrics' reasons again ("critical ...",
        // "failed: ..."); each is said once, on its metric's line.
        let said_by_metric = |r: &str| {
            report
                .metrics
                .iter()
                .any(|m| !m.reason.is_empty() && r.ends_with(m.reason.as_str()))
        };
        reasons.extend(
            report
                .reasons
                .iter()
                .filter(|r| !said_by_metric(r))
                .cloned(),
        );
        reasons.extend(report.metrics.iter().map(|m| {
            let critical = if m.critical && m.failed {
                "critical, "
            } else {
                ""
            };
            format!("{}: {critical}{} — {}", m.name, m.result.as_str(), m.reason)
        }));
        let decision = match report.verdict {
            Verdict::Promote => Decision::Promote(reasons),
            Verdict::Rollback => Decision::Rollback(reasons),
            Verdict::Continue => Decision::Continue(reasons),
            Verdict::Inconclusive if at.attempt < self.inconclusive_retries => {
                Decision::Continue(reasons)
            }
            Verdict::Inconclusive => Decision::Hold(reasons),
        };
        Ok((decision, Some(evidence_of(&report))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollgate_canary::source::InMemorySource;
    use rollgate_canary::{AnalysisConfig, CanaryError, Cohort, MetricQuery, Samples};
    use rollgate_deploy::Digest;

    const CFG: &str = r#"
[[metrics]]
name = "latency_ms"
kind = "latency"
bad = "increase"
relative = { max_increase_pct = 5.0 }

[[metrics]]
name = "errors"
kind = "count"
bad = "increase"
critical = true
threshold = { ratio_max = 0.01 }
"#;

    fn ctx(attempt: u32) -> GateContext {
        let digest = serde_json::to_value(Digest::of_bytes(b"build 2")).expect("digest");
        serde_json::from_value(serde_json::json!({
            "rollout": 7, "service": "api",
            "artifact": {"version": "v2", "digest": digest},
            "previous": null, "phase": 1, "phase_name": "canary 10%",
            "percent": 10.0, "canary_targets": ["api-1"], "attempt": attempt
        }))
        .expect("gate context")
    }

    fn gate(src: InMemorySource) -> CanaryGate {
        let analysis =
            Analysis::new(AnalysisConfig::from_toml_str(CFG).expect("config")).expect("valid");
        CanaryGate::new(
            Arc::new(src),
            analysis,
            Duration::from_secs(60),
            Arc::new(|| 100.0),
        )
    }

    fn fill(src: &InMemorySource, slow: f64, canary_errors: u64) {
        for i in 0..300 {
            let t = 50.0 + f64::from(i) / 10.0;
            let j = f64::from(i % 17);
            src.push_value("latency_ms", Cohort::Baseline, t, 100.0 + j);
            src.push_value("latency_ms", Cohort::Canary, t, (100.0 + j) * slow);
        }
        src.add_counts("errors", Cohort::Baseline, 60.0, 5, 10_000);
        src.add_counts("errors", Cohort::Canary, 60.0, canary_errors, 10_000);
    }

    #[tokio::test]
    async fn healthy_canary_promotes_with_per_metric_reasons() {
        let src = InMemorySource::new();
        fill(&src, 1.0, 6);
        let d = gate(src).evaluate(&ctx(0)).await.expect("decision");
        assert_eq!(d.kind(), "promote", "{:?}", d.reasons());
        assert!(d.reasons()[0].contains("api v2 at phase 2"));
        assert!(
            d.reasons()
                .iter()
                .any(|r| r.starts_with("latency_ms: pass"))
        );
    }

    #[tokio::test]
    async fn regression_rolls_back_and_critical_errors_veto() {
        let src = InMemorySource::new();
        fill(&src, 1.3, 6);
        let d = gate(src).evaluate(&ctx(0)).await.expect("decision");
        assert_eq!(d.kind(), "rollback", "{:?}", d.reasons());
        // Each metric's reason is said once, not again in the verdict's list.
        let all = d.reasons().join("\n");
        for line in d.reasons().iter().filter(|r| r.starts_with("latency_ms:")) {
            let why = line.rsplit(" — ").next().unwrap();
            assert_eq!(all.matches(why).count(), 1, "{all}");
        }
        let src = InMemorySource::new();
        fill(&src, 1.0, 500);
        let d = gate(src).evaluate(&ctx(0)).await.expect("decision");
        assert_eq!(d.kind(), "rollback");
        assert!(
            d.reasons().iter().any(|r| r.contains("critical")),
            "{:?}",
            d.reasons()
        );
    }

    #[tokio::test]
    async fn the_decision_carries_each_metrics_cohorts_and_bound() {
        let src = InMemorySource::new();
        fill(&src, 1.3, 6);
        let (d, evidence) = gate(src)
            .evaluate_with_evidence(&ctx(0))
            .await
            .expect("decision");
        let e = evidence.expect("a canary gate says what it measured");
        assert_eq!((d.kind(), e.verdict.as_str()), ("rollback", "rollback"));
        let names: Vec<&str> = e.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["latency_ms", "errors"]);
        let lat = &e.metrics[0];
        assert!(lat.failed && lat.result == "high", "{lat:?}");
        assert_eq!((lat.baseline.n, lat.canary.n), (300, 300));
        let (b, c) = (
            lat.baseline.p99.expect("baseline p99").get(),
            lat.canary.p99.expect("canary p99").get(),
        );
        assert!((c / b - 1.3).abs() < 0.01, "p99 {b} vs {c}");
        assert!(lat.reason.contains("bound"), "{}", lat.reason);
        let err = &e.metrics[1];
        assert_eq!((err.canary.events, err.canary.n), (Some(6), 10_000));
        assert!(!err.failed && err.critical);
    }

    #[tokio::test]
    async fn no_data_continues_then_holds() {
        let g = gate(InMemorySource::new()).inconclusive_retries(1);
        assert_eq!(
            g.evaluate(&ctx(0)).await.expect("decision").kind(),
            "continue"
        );
        assert_eq!(g.evaluate(&ctx(1)).await.expect("decision").kind(), "hold");
    }

    struct Down;
    #[async_trait]
    impl MetricSource for Down {
        async fn samples(&self, q: &MetricQuery) -> Result<Samples, CanaryError> {
            Err(CanaryError::Source {
                source_name: "prometheus http://127.0.0.1:9".into(),
                metric: q.metric.clone(),
                why: "connection refused".into(),
                cause: None,
            })
        }
    }

    #[tokio::test]
    async fn source_errors_are_gate_errors() {
        let analysis =
            Analysis::new(AnalysisConfig::from_toml_str(CFG).expect("config")).expect("valid");
        let g = CanaryGate::new(
            Arc::new(Down),
            analysis,
            Duration::from_secs(60),
            Arc::new(|| 0.0),
        )
        .sequential(true);
        let e = g.evaluate(&ctx(3)).await.expect_err("source down");
        assert!(
            matches!(&e, Error::Gate(m) if m.contains("connection refused") && m.contains("api")),
            "{e}"
        );
    }

    /// End to end: the executor runs a canary plan whose phases are gated by
    /// the analysis; a slow canary is rolled back at the first step.
    async fn rollout(slow: f64) -> (rollgate_deploy::Report, rollgate_test::FakeDeployer) {
        use rollgate_deploy::{
            Executor, ExecutorConfig, MemoryStore, Percent, PhaseDefaults, RolloutRequest, Strategy,
        };
        let t = rollgate_test::targets(10);
        let (v1, v2) = (rollgate_test::artifact("v1"), rollgate_test::artifact("v2"));
        let deployer = rollgate_test::FakeDeployer::new().with_running(&t, &v1);
        let store = Arc::new(MemoryStore::new());
        rollgate_deploy::StateStore::register_artifact(store.as_ref(), &v1)
            .await
            .expect("register");
        let src = InMemorySource::new();
        for s in 0..4000u32 {
            let (t, j) = (f64::from(s), f64::from(s % 13));
            src.push_value("latency_ms", Cohort::Baseline, t, 100.0 + j);
            src.push_value("latency_ms", Cohort::Canary, t, (100.0 + j) * slow);
            src.add_counts("errors", Cohort::Baseline, t, 0, 10);
            src.add_counts("errors", Cohort::Canary, t, 0, 10);
        }
        let start = tokio::time::Instant::now();
        let analysis =
            Analysis::new(AnalysisConfig::from_toml_str(CFG).expect("config")).expect("valid");
        let gate = CanaryGate::new(
            Arc::new(src),
            analysis,
            Duration::from_secs(120),
            Arc::new(move || start.elapsed().as_secs_f64()),
        );
        let plan = Strategy::Canary {
            steps: vec![
                Percent::new(10.0).expect("pct"),
                Percent::new(50.0).expect("pct"),
                Percent::FULL,
            ],
        }
        .compile(
            &t,
            &PhaseDefaults::default()
                .with_bake(Duration::from_secs(300))
                .with_gate(true),
        )
        .expect("plan");
        let exec = Executor::new(store, Arc::new(deployer.clone()))
            .with_gate(Arc::new(gate))
            .with_config(
                ExecutorConfig::default()
                    .with_readiness(Duration::from_secs(30), Duration::from_secs(1)),
            );
        let report = exec
            .submit(RolloutRequest::new("api", v2, plan, "test"))
            .await
            .expect("rollout runs");
        (report, deployer)
    }

    #[tokio::test(start_paused = true)]
    async fn executor_promotes_a_healthy_canary_through_every_phase() {
        let (report, deployer) = rollout(1.0).await;
        assert_eq!(report.outcome, Some(rollgate_deploy::Outcome::Succeeded));
        let t = rollgate_test::targets(10);
        assert!(
            t.iter()
                .all(|x| deployer.version_of(x).as_deref() == Some("v2"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn executor_rolls_back_a_slow_canary_at_the_first_step() {
        let (report, deployer) = rollout(1.4).await;
        assert_eq!(report.outcome, Some(rollgate_deploy::Outcome::RolledBack));
        let t = rollgate_test::targets(10);
        assert!(
            t.iter()
                .all(|x| deployer.version_of(x).as_deref() == Some("v1"))
        );
        // Only the first step's target was ever touched.
        assert_eq!(
            deployer
                .deploy_log()
                .iter()
                .filter(|(_, d)| d == &rollgate_test::artifact("v2").digest)
                .count(),
            1
        );
    }
}
