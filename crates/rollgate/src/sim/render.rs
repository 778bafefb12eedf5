//! The report as Markdown: our numbers beside the seed's, then the model's
//! inputs, then what the judge said.

use std::fmt::{self, Display, Formatter, Write as _};
use std::time::Duration;

use super::{ArmResult, Detector, SEED, SimConfig, SimReport};

/// `48 s`, `230 s`, `35 min`, `43 min 20 s`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 600_000 {
        if ms.is_multiple_of(1000) {
            format!("{} s", ms / 1000)
        } else {
            format!("{:.1} s", d.as_secs_f64())
        }
    } else {
        let s = d.as_secs();
        match s % 60 {
            0 => format!("{} min", s / 60),
            r => format!("{} min {r} s", s / 60),
        }
    }
}

fn maybe(d: Option<Duration>, none: &str) -> String {
    d.map(duration).unwrap_or_else(|| none.to_string())
}

fn pct(p: f64) -> String {
    format!("{p:.2} %")
}

/// A number as the seed or a person writes it: `6`, `0.1`, `12.5`.
fn num(x: f64) -> String {
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn outcome(a: &ArmResult) -> String {
    format!("{} (phase {} of {})", a.outcome, a.phases.1, a.phases.0)
}

fn detected(a: &ArmResult) -> String {
    match (&a.detector, a.time_to_detect) {
        (Detector::Human, Some(d)) => format!("{} (modelled: the operator)", duration(d)),
        (_, Some(d)) => duration(d),
        (Detector::Nobody, None) => "not detected".into(),
        (_, None) => "n/a".into(),
    }
}

fn row(f: &mut Formatter<'_>, cells: &[&str]) -> fmt::Result {
    writeln!(f, "| {} |", cells.join(" | "))
}

impl Display for SimReport {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let (a, k, m, g) = (&self.all_at_once, &self.canary, &self.manual, &self.gated);
        let step = num(c.step_pct);
        let window = duration(c.spike_window);
        writeln!(f, "# rollgate sim (seed {}, {} targets)", c.seed, c.fleet)?;
        writeln!(f)?;
        writeln!(
            f,
            "Every rollout below was driven by rollgate-deploy's Executor and every gated phase judged by rollgate-canary (through CanaryGate), on simulated time. The fleet, its traffic, the fault, deploy speed and the operator are MODELLED (inputs below), not measured: the times and counts are what the real executor and judge did with that model. The seed's figures are seed 000's (Table 2 and its metrics-gated table); the seed does not say how it obtained them."
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "## A. All at once vs canary steps of {step} %: the bad version fails {} % of requests; both gated",
            num(c.bad_error_pct)
        )?;
        writeln!(f)?;
        let (dn, dc) = SEED.detect;
        let (rn, rc) = SEED.rollback;
        row(
            f,
            &[
                "",
                "all at once",
                &format!("canary {step} %"),
                "seed: all at once",
                "seed: canary 10 %",
            ],
        )?;
        row(f, &["---", "---:", "---:", "---:", "---:"])?;
        row(
            f,
            &[
                &format!("error spike: peak fleet error rate over {window}"),
                &pct(a.peak_error_pct),
                &pct(k.peak_error_pct),
                &format!("{} %", num(SEED.spike_pct.0)),
                &format!("{} %", num(SEED.spike_pct.1)),
            ],
        )?;
        row(
            f,
            &[
                "time to detect: first bad target → rollback verdict",
                &detected(a),
                &detected(k),
                &duration(dn),
                &duration(dc),
            ],
        )?;
        row(
            f,
            &[
                "rollback duration: verdict → every target on v1",
                &maybe(a.rollback_duration, "n/a"),
                &maybe(k.rollback_duration, "n/a"),
                &duration(rn),
                &duration(rc),
            ],
        )?;
        row(
            f,
            &[
                "targets that ran the bad version",
                &format!("{} of {}", a.targets_exposed, c.fleet),
                &format!("{} of {}", k.targets_exposed, c.fleet),
                "not given",
                "not given",
            ],
        )?;
        row(
            f,
            &[
                "requests the bad version served / failed",
                &format!("{} / {}", a.new_requests, a.new_failed),
                &format!("{} / {}", k.new_requests, k.new_failed),
                "not given",
                "not given",
            ],
        )?;
        row(f, &["outcome", &outcome(a), &outcome(k), "", ""])?;
        writeln!(f)?;
        writeln!(
            f,
            "## B. Manual vs metrics-gated: the bad version is {}× slower; canary steps of {step} %",
            num(c.bad_latency_factor)
        )?;
        writeln!(f)?;
        let (dm, dg) = SEED.detect_manual;
        let (rm, rg) = SEED.rollback_manual;
        row(
            f,
            &[
                "",
                "manual (no gate)",
                "metrics-gated",
                "seed: no gate",
                "seed: metrics-gated",
            ],
        )?;
        row(f, &["---", "---:", "---:", "---:", "---:"])?;
        row(
            f,
            &[
                "time to detect: first bad target → rollback decided",
                &detected(m),
                &detected(g),
                &duration(dm),
                &duration(dg),
            ],
        )?;
        row(
            f,
            &[
                "time to roll back: first bad target → every target on v1",
                &maybe(m.time_to_restore, "not restored"),
                &maybe(g.time_to_restore, "not restored"),
                &duration(rm),
                &duration(rg),
            ],
        )?;
        row(
            f,
            &[
                "user tickets",
                "not simulated",
                "not simulated",
                &SEED.tickets.0.to_string(),
                &SEED.tickets.1.to_string(),
            ],
        )?;
        row(
            f,
            &[
                &format!(
                    "requests the bad version served / slower than {} ms",
                    num(c.max_p99_ms)
                ),
                &format!("{} / {}", m.new_requests, m.new_slow),
                &format!("{} / {}", g.new_requests, g.new_slow),
                "not given",
                "not given",
            ],
        )?;
        row(
            f,
            &[
                "targets that ran the bad version",
                &format!("{} of {}", m.targets_exposed, c.fleet),
                &format!("{} of {}", g.targets_exposed, c.fleet),
                "not given",
                "not given",
            ],
        )?;
        row(f, &["outcome", &outcome(m), &outcome(g), "", ""])?;
        writeln!(f)?;
        let ctl = &self.control;
        writeln!(
            f,
            "## C. Control: a good version, canary steps of {step} %, gated"
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{}, after {}; the judge was asked {} times and {}.",
            outcome(ctl),
            duration(ctl.total),
            ctl.asks,
            if ctl.detector == Detector::Gate {
                "rolled it back (a false rollback)"
            } else {
                "never rolled it back"
            }
        )?;
        writeln!(f)?;
        f.write_str(&model(c))?;
        writeln!(f)?;
        writeln!(f, "## What the judge said at its last answer")?;
        writeln!(f)?;
        for (label, arm) in [
            ("A, all at once", a),
            ("A, canary", k),
            ("B, metrics-gated", g),
            ("C, control", ctl),
        ] {
            writeln!(f, "{label}: {}", arm.judge.join("\n    "))?;
        }
        Ok(())
    }
}

fn model(c: &SimConfig) -> String {
    let mut s = String::new();
    let p99 = c.p50_ms * (2.326_347_874 * c.latency_sigma).exp();
    let lines: [(&str, String); 7] = [
        (
            "fleet",
            format!(
                "{} targets, each serving Poisson({}) requests/s; seed {}",
                c.fleet,
                num(c.rps),
                c.seed
            ),
        ),
        (
            "good version (v1, and v2 in C)",
            format!(
                "{} % of requests fail; latency log-normal, p50 {} ms, σ {} (p99 ≈ {:.0} ms)",
                num(c.error_pct),
                num(c.p50_ms),
                num(c.latency_sigma),
                p99
            ),
        ),
        (
            "bad version in A",
            format!(
                "{} % of requests fail; latency as the good version",
                num(c.bad_error_pct)
            ),
        ),
        (
            "bad version in B",
            format!(
                "latency ×{}; failures as the good version",
                num(c.bad_latency_factor)
            ),
        ),
        (
            "deploys",
            format!(
                "{} per target, {} at a time (the plan's concurrency, which restores share)",
                duration(c.deploy_time),
                c.deploy_parallel
            ),
        ),
        (
            "operator (B, manual)",
            format!(
                "notices the fault {} after the first bad target, starts the rollback {} later (abort, or `rollgate rollback` once the rollout finished)",
                duration(c.human_notice),
                duration(c.human_react)
            ),
        ),
        (
            "warm-up",
            format!(
                "the fleet serves v1 for one bake ({}) before the rollout",
                duration(c.bake)
            ),
        ),
    ];
    let _ = writeln!(s, "## The model (inputs, not measurements)");
    let _ = writeln!(s);
    let _ = writeln!(s, "| modelled | value |");
    let _ = writeln!(s, "|---|---|");
    for (k, v) in lines {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "## Detection settings (the real executor and judge)");
    let _ = writeln!(s);
    let _ = writeln!(s, "| setting | value |");
    let _ = writeln!(s, "|---|---|");
    let _ = writeln!(
        s,
        "| bake per phase (the judge's window) | {} |",
        duration(c.bake)
    );
    let _ = writeln!(
        s,
        "| canary step | {} % of the fleet per phase |",
        num(c.step_pct)
    );
    let _ = writeln!(
        s,
        "| judge | alpha {}; errors (critical): at most {} % and the baseline +{} %; latency: p99 at most {} ms and the baseline +{} % |",
        num(c.alpha),
        num(c.max_error_pct),
        num(c.tolerance_pct),
        num(c.max_p99_ms),
        num(c.tolerance_pct)
    );
    let _ = writeln!(
        s,
        "| baseline cohort | the targets on v1 during the window; when none is (all at once, the last step), v1's traffic over one bake just before the rollout |"
    );
    s
}
