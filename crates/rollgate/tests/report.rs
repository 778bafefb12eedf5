//! The HTML report's content: escaping, every phase and metric present,
//! a page without canary evidence, and the size of a big rollout's page.

#![cfg(feature = "report")]

use std::time::Duration;

use rollgate::deploy::{
    Artifact, CohortEvidence, Decision, Digest, Event, EventRecord, GateEvidence, MetricEvidence,
    Number, Outcome, PhaseDefaults, RolloutId, RolloutRequest, Strategy, TargetId,
};
use rollgate::report::render_html;

fn targets(n: usize, prefix: &str) -> Vec<TargetId> {
    (1..=n)
        .map(|i| format!("{prefix}{i}").parse().expect("target id"))
        .collect()
}

fn request(targets: &[TargetId], phases: usize, actor: &str) -> RolloutRequest {
    let steps = (1..=phases)
        .map(|k| rollgate::deploy::Percent::new(100.0 * k as f64 / phases as f64).expect("pct"))
        .collect();
    let plan = Strategy::Canary { steps }
        .compile(
            targets,
            &PhaseDefaults::default()
                .with_gate(true)
                .with_bake(Duration::from_secs(30)),
        )
        .expect("plan");
    RolloutRequest::new(
        "dns",
        Artifact::new("v2", Digest::of_bytes(b"build 2")),
        plan,
        actor,
    )
    .with_previous(Artifact::new("v1", Digest::of_bytes(b"build 1")))
}

/// Appends events stamped one second apart.
struct Log(Vec<EventRecord>);

impl Log {
    fn push(&mut self, actor: &str, event: Event) {
        let seq = self.0.len() as u64 + 1;
        self.0.push(EventRecord {
            seq,
            at_ms: 1_795_444_764_000 + seq as i64 * 1000,
            actor: actor.into(),
            event,
        });
    }
}

fn n(v: f64) -> Option<Number> {
    Number::finite(v)
}

/// A metric's evidence with realistic numbers and a reason of realistic length.
fn metric(name: &str, i: usize, failed: bool) -> MetricEvidence {
    let counts = i % 2 == 1;
    let (baseline, canary) = if counts {
        (
            CohortEvidence {
                n: 12_000,
                events: Some(14),
                ratio: n(14.0 / 12_000.0),
                ..CohortEvidence::default()
            },
            CohortEvidence {
                n: 1_300,
                events: Some(if failed { 90 } else { 2 }),
                ratio: n(if failed { 90.0 } else { 2.0 } / 1_300.0),
                ..CohortEvidence::default()
            },
        )
    } else {
        let slow = if failed { 3.0 } else { 1.02 };
        let c = |f: f64, k: u64| CohortEvidence {
            n: k,
            mean: n(14.2 * f),
            p50: n(12.25 * f),
            p95: n(31.5 * f),
            p99: n(48.75 * f),
            ..CohortEvidence::default()
        };
        (c(1.0, 12_000), c(slow, 1_300))
    };
    MetricEvidence {
        name: name.into(),
        result: if failed { "high" } else { "pass" }.into(),
        failed,
        critical: i == 0,
        baseline,
        canary,
        p_value: n(if failed { 3.2e-9 } else { 0.41 }),
        // As long as the canary judge's own (about 180 to 280 characters).
        reason: if counts {
            format!(
                "metric \"{name}\": canary ratio 0.0015 (2 of 1300) <= bound 0.05; metric \"{name}\": canary rate 0.0015 (2 of 1300) vs baseline 0.00117 (14 of 12000) scaled by +0% (exact conditional binomial test): p=4.3028e-1 > level 0.005"
            )
        } else {
            format!(
                "metric \"{name}\": canary p99 {} vs baseline 48.75 (bound +10% = 53.63; tail test: 131 canary above the scaled baseline's top 120); all 5 checks (relative.p50_increase, relative.p99_increase, mann-whitney.increase)",
                if failed { "146.25" } else { "49.73" }
            )
        },
    }
}

/// The decision a canary gate gives: a summary line, one line per metric.
fn decision(kind: &str, evidence: &GateEvidence) -> Decision {
    let mut reasons = vec![format!(
        "canary analysis of dns v2 at phase 1: {} (score 88.0)",
        evidence.verdict
    )];
    reasons.extend(
        evidence
            .metrics
            .iter()
            .map(|m| format!("{}: {} — {}", m.name, m.result, m.reason)),
    );
    match kind {
        "promote" => Decision::Promote(reasons),
        "rollback" => Decision::Rollback(reasons),
        "hold" => Decision::Hold(reasons),
        _ => Decision::Continue(reasons),
    }
}

/// A rollout of `phases` phases (two targets each) judged on `metrics`
/// metrics per phase, promoted through every phase but the last, which
/// rolls back.
fn big(phases: usize, metrics: usize) -> (RolloutRequest, Vec<EventRecord>) {
    let t = targets(phases * 2, "dns-eu-west-1-node-");
    let req = request(&t, phases, "release-bot@ci-runner-17");
    let names: Vec<String> = (0..metrics)
        .map(|i| format!("dns_provisioner_metric_{i:02}_ms"))
        .collect();
    let mut log = Log(Vec::new());
    log.push(
        "ctl@host:1234",
        Event::ControllerStarted {
            owner: "ctl@host:1234".into(),
            fence: 1,
        },
    );
    for (p, phase) in req.plan.phases.iter().enumerate() {
        for target in &phase.targets {
            log.push(
                "ctl@host:1234",
                Event::DeployIntent {
                    target: target.clone(),
                    previous: req.previous.clone(),
                    note: None,
                },
            );
            log.push(
                "ctl@host:1234",
                Event::TargetDeployed {
                    target: target.clone(),
                },
            );
        }
        log.push(
            "ctl@host:1234",
            Event::BakeStarted {
                phase: p,
                bake: Duration::from_secs(30),
            },
        );
        log.push("ctl@host:1234", Event::BakeElapsed { phase: p });
        let last = p + 1 == phases;
        let evidence = GateEvidence::new(
            if last { "rollback" } else { "promote" },
            Some(if last { 12.5 } else { 97.5 }),
            names
                .iter()
                .enumerate()
                .map(|(i, name)| metric(name, i, last && i == 0))
                .collect(),
        );
        log.push(
            "ctl@host:1234",
            Event::GateDecided {
                phase: p,
                decision: decision(if last { "rollback" } else { "promote" }, &evidence),
                evidence: Some(Box::new(evidence)),
            },
        );
        if !last {
            log.push(
                "ctl@host:1234",
                Event::PhaseCompleted {
                    phase: p,
                    reason: "gate promoted".into(),
                },
            );
        }
    }
    log.push(
        "ctl@host:1234",
        Event::RollbackStarted {
            reason: "gate: rollback".into(),
        },
    );
    log.push(
        "ctl@host:1234",
        Event::Finished {
            outcome: Outcome::RolledBack,
        },
    );
    (req, log.0)
}

#[test]
fn a_page_of_50_phases_and_20_metrics_stays_under_1_mb() {
    let (req, log) = big(50, 20);
    let html = render_html(RolloutId(42), &req, &log);
    assert!(
        html.len() < 1_000_000,
        "50 phases x 20 metrics: {} bytes",
        html.len()
    );
    // And it holds what it should: each phase, each metric's chart, each
    // decision's table (one row per metric).
    for p in 1..=50 {
        assert!(html.contains(&format!("<tr><td>{p}</td>")), "phase {p}");
        assert!(html.contains(&format!("id=\"ask-{p}\"")), "decision {p}");
    }
    for i in 0..20 {
        let name = format!("dns_provisioner_metric_{i:02}_ms");
        assert!(html.contains(&format!("<b>{name}</b>")), "chart of {name}");
        assert!(
            html.contains(&format!("aria-label=\"{name}: ")),
            "chart of {name}"
        );
        assert_eq!(
            html.matches(&format!(">{name}</a></td>")).count(),
            50,
            "{name} in each reason table"
        );
    }
    // Long rollouts draw each kind of bar as one path: 20 charts, each with
    // baseline and canary bars, and one failed canary bar in all.
    assert_eq!(html.matches("<path class=\"baseline\"").count(), 20);
    assert_eq!(html.matches("<path class=\"canary\"").count(), 20);
    assert_eq!(html.matches("<path class=\"failed\"").count(), 1);
    eprintln!("50 phases x 20 metrics: {} bytes", html.len());
}

#[test]
fn every_phase_verdict_and_metric_is_on_the_page() {
    let (req, log) = big(3, 2);
    let html = render_html(RolloutId(9), &req, &log);
    for phase in &req.plan.phases {
        assert!(html.contains(&phase.name), "phase {}", phase.name);
        for t in &phase.targets {
            assert!(html.contains(t.as_str()), "target {t}");
        }
    }
    // Verdict badges in the timeline and the verdicts, the outcome.
    assert_eq!(html.matches(">promote</a>").count(), 2, "{html}");
    assert_eq!(html.matches(">rollback</a>").count(), 1, "{html}");
    assert!(
        html.contains("<span class=\"v rollback\">rolled_back</span>"),
        "{html}"
    );
    assert!(
        html.contains("<dt>Why</dt><dd>gate said rollback at phase 3"),
        "{html}"
    );
    // Both metrics charted (two bars per decision: baseline and canary),
    // and the failed one's canary bar marked.
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 2);
    assert_eq!(html.matches("<rect class=\"baseline\"").count(), 6);
    assert_eq!(html.matches("<rect class=\"failed\"").count(), 1);
    // The reason table: cohort values, the bound, the result.
    assert!(
        html.contains("n 12000 · p50 12.25 · p95 31.5 · p99 48.75"),
        "{html}"
    );
    assert!(html.contains("14/12000 (0.117%)"), "{html}");
    assert!(html.contains("(bound +10% = 53.63"), "{html}");
    assert!(html.contains("critical, high"), "{html}");
    // Per-metric reason lines are in the table, not repeated as a list.
    assert!(
        !html.contains("<li>dns_provisioner_metric_00_ms: "),
        "{html}"
    );
    // The audit rows: who asked, each event with its actor.
    assert!(html.contains("<td>0</td>"));
    assert!(html.contains("release-bot@ci-runner-17"));
    assert_eq!(html.matches("<td>target_deployed</td>").count(), 6);
    // Nothing that runs or loads.
    for bad in ["<script", "src=", "http://", "https://", "@import", "url("] {
        assert!(!html.contains(bad), "{bad} in the page");
    }
}

#[test]
fn user_controlled_text_is_escaped_and_secrets_masked() {
    let t: Vec<TargetId> = vec!["web-1".parse().expect("id")];
    let mut req = request(&t, 1, "<img src=x onerror=alert(1)>");
    req.service = "svc\"><script>alert(1)</script>".into();
    req.plan.phases[0].name = "canary <b>bold</b> & 'quoted'".into();
    let evidence = GateEvidence::new(
        "rollback",
        None,
        vec![MetricEvidence {
            name: "lat\"ency<svg onload=alert(1)>".into(),
            result: "high".into(),
            failed: true,
            reason: "bound </td></tr></table><script>x()</script>".into(),
            ..MetricEvidence::default()
        }],
    );
    let mut log = Log(Vec::new());
    log.push(
        "</td><script>",
        Event::GateDecided {
            phase: 0,
            decision: Decision::Rollback(vec![
                "token=hunter2-secret-value <script>".into(),
                "see https://user:pa55word@example.com/x".into(),
            ]),
            evidence: Some(Box::new(evidence)),
        },
    );
    log.push(
        "ctl",
        Event::GateErrored {
            phase: 0,
            error: "<iframe>".into(),
        },
    );
    let html = render_html(RolloutId(1), &req, &log.0);
    for raw in [
        "<script",
        "<img",
        "<svg onload",
        "<iframe",
        "<b>bold</b>",
        "</td><script>",
        "hunter2",
        "pa55word",
    ] {
        assert!(!html.contains(raw), "{raw:?} reached the page:\n{html}");
    }
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("canary &lt;b&gt;bold&lt;/b&gt; &amp; &#39;quoted&#39;"));
    assert!(html.contains("lat&quot;ency&lt;svg onload=alert(1)&gt;"));
    assert!(html.contains("[REDACTED]"));
    // Anchors made from names stay inside their attribute.
    assert!(!html.contains("href=\"#metric-lat\""));
}

#[test]
fn a_rollout_without_canary_evidence_still_renders() {
    let t = targets(4, "web-");
    let req = request(&t, 2, "alice");
    let mut log = Log(Vec::new());
    log.push(
        "ctl",
        Event::TargetDeployed {
            target: t[0].clone(),
        },
    );
    log.push(
        "ctl",
        Event::GateDecided {
            phase: 0,
            decision: Decision::Hold(vec!["check.sh: error budget too low".into()]),
            evidence: None,
        },
    );
    log.push("alice", Event::ResumeRequested);
    log.push(
        "ctl",
        Event::GateErrored {
            phase: 0,
            error: "gate timed out after 30s".into(),
        },
    );
    let html = render_html(RolloutId(3), &req, &log.0);
    assert!(html.contains("No metric evidence was recorded"), "{html}");
    assert!(
        html.contains("<li>check.sh: error budget too low</li>"),
        "{html}"
    );
    assert!(
        html.contains(">hold</a>") && html.contains(">gate error</a>"),
        "{html}"
    );
    assert!(html.contains("gate timed out after 30s"));
    assert!(
        html.contains("<td>alice</td><td>resume_requested</td>"),
        "{html}"
    );
    // The second phase was never reached.
    assert!(html.contains("not reached"));
    assert!(html.ends_with("</html>\n"));
}

#[test]
fn an_empty_log_renders_a_rollout_that_has_not_started() {
    let req = request(&targets(2, "web-"), 1, "alice");
    let html = render_html(RolloutId(5), &req, &[]);
    assert!(html.contains("not started"));
    assert!(html.contains("The gate was never asked."));
}

#[test]
fn same_input_same_page() {
    let (req, log) = big(4, 3);
    assert_eq!(
        render_html(RolloutId(1), &req, &log),
        render_html(RolloutId(1), &req, &log)
    );
}
