//! The HTML report of one rollout: one self-contained page (inline CSS and
//! SVG; no script, no font, no image, no network) that reads the same with
//! JavaScript off.
//!
//! It shows, from the rollout's request and its event log:
//!
//! - a summary (service, artifact, who asked, outcome);
//! - the timeline of phases: targets, share, bake, start and end, the gate's
//!   verdicts (promote, continue, hold, rollback, and the analysis's own
//!   `inconclusive`) and gate errors, with a bar chart of when each phase ran;
//! - baseline vs canary charts for each metric a canary gate judged (from
//!   the evidence kept with each decision), one bar pair per decision;
//! - each decision's reason table: metric, both cohorts' values, the
//!   reason with its bound, the result;
//! - the audit rows `rollgate rollout history` prints: who did what, when.
//!
//! Every text that comes from outside (target names, reasons, actors,
//! versions) is masked by rollgate-telemetry's [`Redactor`] and then
//! HTML-escaped. The plan file the CLI keeps with a request (which may hold
//! commands and URLs) is not shown. Output depends only on the input: no
//! clock is read.
//!
//! Size: a page of 50 phases with 20 metrics judged in each stays under
//! 1 MB (each phase's reason table is one row per metric; each metric's
//! chart is one bar pair per decision).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rollgate_deploy::{
    CohortEvidence, Decision, Event, EventRecord, GateEvidence, MetricEvidence, Outcome, Rollout,
    RolloutId, RolloutRequest, Status,
};
use rollgate_telemetry::Redactor;

/// Renders the report of rollout `id` from its request and its whole event
/// log (in order, as [`StateStore::events`](rollgate_deploy::StateStore::events)
/// returns it with `after = 0`).
///
/// ```
/// use rollgate::deploy::{
///     Artifact, Decision, Digest, Event, EventRecord, PhaseDefaults, RolloutId, RolloutRequest,
///     Strategy, TargetId,
/// };
/// use rollgate::report::render_html;
///
/// let targets: Vec<TargetId> = vec!["dns-1".parse()?, "dns-2".parse()?];
/// let plan = Strategy::AllAtOnce.compile(&targets, &PhaseDefaults::default().with_gate(true))?;
/// let v2 = Artifact::new("v2", Digest::of_bytes(b"build 2"));
/// let request = RolloutRequest::new("dns", v2, plan, "alice <ops>");
/// let at = |seq: u64, actor: &str, event: Event| EventRecord {
///     seq, at_ms: 1_700_000_000_000 + seq as i64 * 1000, actor: actor.into(), event,
/// };
/// let log = vec![
///     at(1, "ctl", Event::TargetDeployed { target: "dns-1".parse()? }),
///     at(2, "ctl", Event::TargetDeployed { target: "dns-2".parse()? }),
///     at(3, "ctl", Event::GateDecided {
///         phase: 0,
///         decision: Decision::Hold(vec!["needs a <person>".into()]),
///         evidence: None,
///     }),
/// ];
/// let html = render_html(RolloutId(7), &request, &log);
/// assert!(html.starts_with("<!DOCTYPE html>"));
/// assert!(html.contains("alice &lt;ops&gt;") && html.contains("needs a &lt;person&gt;"));
/// assert!(!html.contains("<script"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn render_html(id: RolloutId, request: &RolloutRequest, events: &[EventRecord]) -> String {
    Page::new(id, request, events).render()
}

/// One gate answer (a decision or an error), in log order.
struct Ask<'a> {
    /// Its index among the rollout's asks: the anchor `ask-N`.
    n: usize,
    phase: usize,
    /// 1-based ask within its phase.
    within: usize,
    at_ms: i64,
    answer: Answer<'a>,
}

enum Answer<'a> {
    Decided {
        decision: &'a Decision,
        evidence: Option<&'a GateEvidence>,
    },
    Errored(&'a str),
}

/// What happened to one phase of the plan.
#[derive(Default)]
struct PhaseRun {
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    /// How it ended, for people: `completed: ...`, `rolled back`, ...
    end: Option<String>,
    asks: Vec<usize>,
}

struct Page<'a> {
    id: RolloutId,
    request: &'a RolloutRequest,
    events: &'a [EventRecord],
    status: String,
    /// Why it rolled back or holds.
    why: Option<String>,
    asks: Vec<Ask<'a>>,
    phases: Vec<PhaseRun>,
    redactor: Redactor,
}

impl<'a> Page<'a> {
    fn new(id: RolloutId, request: &'a RolloutRequest, events: &'a [EventRecord]) -> Self {
        let (status, why) = match Rollout::replay(id, request.clone(), events) {
            Ok(r) => status_text(&r),
            Err(e) => (
                "unknown".to_string(),
                Some(format!("the log does not replay: {e}")),
            ),
        };
        let mut phases: Vec<PhaseRun> = request
            .plan
            .phases
            .iter()
            .map(|_| PhaseRun::default())
            .collect();
        let mut asks: Vec<Ask<'a>> = Vec::new();
        let mut current = 0usize;
        let mut rolled_back = false;
        for rec in events {
            let at = rec.at_ms;
            // Every event before the rollback (or the end) belongs to the
            // current phase; the phase starts with the first of them.
            if !rolled_back
                && let Some(p) = phases.get_mut(current)
                && p.start_ms.is_none()
                && !matches!(
                    rec.event,
                    Event::Finished { .. } | Event::Refused { .. } | Event::RollbackStarted { .. }
                )
            {
                p.start_ms = Some(at);
            }
            match &rec.event {
                Event::GateDecided {
                    phase,
                    decision,
                    evidence,
                } => asks.push(Ask {
                    n: asks.len() + 1,
                    phase: *phase,
                    within: 0,
                    at_ms: at,
                    answer: Answer::Decided {
                        decision,
                        evidence: evidence.as_deref(),
                    },
                }),
                Event::GateErrored { phase, error } => asks.push(Ask {
                    n: asks.len() + 1,
                    phase: *phase,
                    within: 0,
                    at_ms: at,
                    answer: Answer::Errored(error),
                }),
                Event::PhaseCompleted { phase, reason } => {
                    if let Some(p) = phases.get_mut(*phase) {
                        p.end_ms = Some(at);
                        p.end = Some(format!("completed: {reason}"));
                    }
                    current = phase + 1;
                }
                Event::RollbackStarted { reason } if !rolled_back => {
                    rolled_back = true;
                    if let Some(p) = phases.get_mut(current)
                        && p.start_ms.is_some()
                    {
                        p.end_ms = Some(at);
                        p.end = Some(format!("rolled back: {reason}"));
                    }
                }
                Event::Finished { outcome } if !rolled_back => {
                    if let Some(p) = phases.get_mut(current)
                        && p.start_ms.is_some()
                        && p.end_ms.is_none()
                    {
                        p.end_ms = Some(at);
                        p.end = Some(outcome.as_str().replace('_', " "));
                    }
                }
                _ => {}
            }
        }
        let mut per_phase: BTreeMap<usize, usize> = BTreeMap::new();
        for a in &mut asks {
            let k = per_phase.entry(a.phase).or_default();
            *k += 1;
            a.within = *k;
            if let Some(p) = phases.get_mut(a.phase) {
                p.asks.push(a.n);
            }
        }
        Self {
            id,
            request,
            events,
            status,
            why,
            asks,
            phases,
            redactor: Redactor::default(),
        }
    }

    /// `text`, secrets masked, HTML-escaped.
    fn t(&self, text: &str) -> String {
        escape(&self.redactor.text(text))
    }

    fn render(&self) -> String {
        let mut h = String::with_capacity(64 * 1024);
        let title = format!(
            "Rollout {} — {} {}",
            self.id, self.request.service, self.request.artifact.version
        );
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <link rel=\"icon\" href=\"data:,\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
            self.t(&title)
        );
        let _ = writeln!(h, "<h1>{}</h1>", self.t(&title));
        self.summary(&mut h);
        self.timeline(&mut h);
        self.charts(&mut h);
        self.verdicts(&mut h);
        self.audit(&mut h);
        let _ = writeln!(
            h,
            "<footer>Written by rollgate {} from the rollout's recorded events.</footer>\n</body>\n</html>",
            env!("CARGO_PKG_VERSION")
        );
        h
    }

    fn summary(&self, h: &mut String) {
        let r = self.request;
        let created = self.events.first().map(|e| rfc3339(e.at_ms));
        let ended = self
            .events
            .iter()
            .rev()
            .find(|e| matches!(e.event, Event::Finished { .. }))
            .map(|e| rfc3339(e.at_ms));
        h.push_str("<section id=\"summary\"><dl class=\"summary\">\n");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(h, "<dt>{k}</dt><dd>{v}</dd>");
        };
        row("Rollout", self.id.to_string());
        row("Service", self.t(&r.service));
        row(
            "Artifact",
            format!(
                "{} <code>{}</code>",
                self.t(&r.artifact.version),
                self.t(r.artifact.digest.as_str())
            ),
        );
        if let Some(p) = &r.previous {
            row(
                "Replaces",
                format!(
                    "{} <code>{}</code>",
                    self.t(&p.version),
                    self.t(p.digest.as_str())
                ),
            );
        }
        row("Requested by", self.t(&r.actor));
        row(
            "Status",
            format!(
                "<span class=\"v {}\">{}</span>",
                status_class(&self.status),
                self.t(&self.status)
            ),
        );
        if let Some(why) = &self.why {
            // The whole text is in the verdicts; the summary says its start.
            row("Why", self.t(&truncate(why, 300)));
        }
        row("Phases", r.plan.phases.len().to_string());
        row("Started", created.unwrap_or_else(|| "not started".into()));
        if let Some(e) = ended {
            row("Ended", e);
        }
        h.push_str("</dl></section>\n");
    }

    fn timeline(&self, h: &mut String) {
        h.push_str("<section id=\"timeline\"><h2>Timeline of phases</h2>\n");
        self.gantt(h);
        h.push_str(
            "<table><thead><tr><th>#</th><th>Phase</th><th>Share</th><th>Targets</th><th>Bake</th>\
             <th>Started</th><th>Ended</th><th>Gate</th><th>End</th></tr></thead><tbody>\n",
        );
        for (i, (phase, run)) in self
            .request
            .plan
            .phases
            .iter()
            .zip(&self.phases)
            .enumerate()
        {
            let targets: Vec<&str> = phase.targets.iter().map(|t| t.as_str()).collect();
            let mut gate = String::new();
            for &n in &run.asks {
                let Some(a) = self.asks.get(n - 1) else {
                    continue;
                };
                let (class, label) = ask_label(a);
                let _ = write!(
                    gate,
                    "<a class=\"v {class}\" href=\"#ask-{n}\">{}</a> ",
                    escape(&label)
                );
            }
            if gate.is_empty() {
                gate = if phase.gate.asks(true) {
                    "—".into()
                } else {
                    "not gated".into()
                };
            }
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"targets\">{} <span class=\"muted\">({})</span></td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                i + 1,
                self.t(&phase.name),
                phase.percent,
                self.t(&targets.join(", ")),
                targets.len(),
                humantime::format_duration(phase.bake),
                run.start_ms
                    .map(rfc3339)
                    .unwrap_or_else(|| "not reached".into()),
                run.end_ms.map(rfc3339).unwrap_or_default(),
                gate,
                run.end.as_deref().map(|e| self.t(e)).unwrap_or_default(),
            );
        }
        h.push_str("</tbody></table></section>\n");
    }

    /// When each phase ran, as horizontal bars on one time axis.
    fn gantt(&self, h: &mut String) {
        let spans: Vec<(usize, i64, i64, &str)> = self
            .phases
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let start = p.start_ms?;
                let end = p.end_ms.or(self.events.last().map(|e| e.at_ms))?;
                let class = match p.end.as_deref() {
                    Some(e) if e.starts_with("completed") => "promote",
                    Some(e) if e.starts_with("rolled back") => "rollback",
                    Some(_) => "hold",
                    None => "continue",
                };
                Some((i, start, end.max(start), class))
            })
            .collect();
        let (Some(t0), Some(t1)) = (
            spans.iter().map(|s| s.1).min(),
            spans.iter().map(|s| s.2).max(),
        ) else {
            return;
        };
        let span = (t1 - t0).max(1) as f64;
        let (left, width, row) = (150.0, 520.0, 16.0);
        let height = row * spans.len() as f64 + 22.0;
        let _ = writeln!(
            h,
            "<svg class=\"gantt\" viewBox=\"0 0 {} {height}\" width=\"{}\" height=\"{height}\" role=\"img\" \
             aria-label=\"when each phase ran, {} s in all\">",
            left + width + 10.0,
            left + width + 10.0,
            fmt_num(span / 1000.0)
        );
        for (k, (i, s, e, class)) in spans.iter().enumerate() {
            let y = row * k as f64;
            let x = left + width * (s - t0) as f64 / span;
            let w = (width * (e - s) as f64 / span).max(2.0);
            let name = self
                .request
                .plan
                .phases
                .get(*i)
                .map(|p| p.name.as_str())
                .unwrap_or_default();
            let _ = writeln!(
                h,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{} {}</text>\
                 <rect class=\"{class}\" x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\"/>",
                left - 6.0,
                y + 12.0,
                i + 1,
                self.t(&truncate(name, 22)),
                y + 2.0,
                row - 4.0
            );
        }
        let y = row * spans.len() as f64 + 14.0;
        let _ = writeln!(
            h,
            "<text x=\"{left}\" y=\"{y}\">0 s</text><text x=\"{}\" y=\"{y}\" text-anchor=\"end\">{} s</text></svg>",
            left + width,
            fmt_num(span / 1000.0)
        );
    }

    /// One chart per metric a canary gate judged: baseline and canary bars per decision.
    fn charts(&self, h: &mut String) {
        // Metrics in the order they were first judged.
        let mut names: Vec<&str> = Vec::new();
        for a in &self.asks {
            if let Answer::Decided {
                evidence: Some(e), ..
            } = &a.answer
            {
                for m in &e.metrics {
                    if !names.contains(&m.name.as_str()) {
                        names.push(&m.name);
                    }
                }
            }
        }
        h.push_str("<section id=\"metrics\"><h2>Baseline vs canary, per metric</h2>\n");
        if names.is_empty() {
            h.push_str(
                "<p class=\"muted\">No metric evidence was recorded for this rollout: its gate \
                 (if any) was not a canary gate, or the rollout was recorded before rollgate kept \
                 the evidence. The gate's reasons are in the verdicts below.</p>\n</section>\n",
            );
            return;
        }
        h.push_str(
            "<p class=\"legend\"><span class=\"sw baseline\"></span> baseline \
             <span class=\"sw canary\"></span> canary \
             <span class=\"sw failed\"></span> canary, metric failed</p>\n",
        );
        for name in names {
            let points: Vec<(&Ask<'_>, &MetricEvidence)> = self
                .asks
                .iter()
                .filter_map(|a| match &a.answer {
                    Answer::Decided {
                        evidence: Some(e), ..
                    } => e.metrics.iter().find(|m| m.name == name).map(|m| (a, m)),
                    _ => None,
                })
                .collect();
            self.chart(h, name, &points);
        }
        h.push_str("</section>\n");
    }

    fn chart(&self, h: &mut String, name: &str, points: &[(&Ask<'_>, &MetricEvidence)]) {
        let stat = headline(&points.iter().map(|p| p.1).collect::<Vec<_>>());
        let values: Vec<(Option<f64>, Option<f64>)> = points
            .iter()
            .map(|(_, m)| (stat.of(&m.baseline), stat.of(&m.canary)))
            .collect();
        let max = values
            .iter()
            .flat_map(|(b, c)| [*b, *c])
            .flatten()
            .fold(0.0f64, f64::max);
        let top = nice_ceiling(max);
        let (left, plot_w, plot_h, top_pad) = (64.0, 560.0, 120.0, 14.0);
        let n = points.len().max(1) as f64;
        let group = plot_w / n;
        let bar = (group * 0.38).min(28.0);
        let anchor = format!("metric-{}", slug(name));
        let _ = writeln!(
            h,
            "<figure id=\"{anchor}\"><figcaption><b>{}</b> — {} per decision</figcaption>",
            self.t(name),
            stat.label()
        );
        let height = top_pad + plot_h + 34.0;
        let _ = writeln!(
            h,
            "<svg class=\"chart\" viewBox=\"0 0 {w} {height}\" width=\"{w}\" height=\"{height}\" role=\"img\" \
             aria-label=\"{}: {} of baseline and canary at each gate decision\">",
            self.t(name),
            stat.label(),
            w = left + plot_w + 8.0,
        );
        // Axis and gridlines at 0, half and the top.
        for (k, v) in [(0.0, 0.0), (0.5, top / 2.0), (1.0, top)] {
            let y = top_pad + plot_h * (1.0 - k);
            let _ = write!(
                h,
                "<line class=\"grid\" x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                left + plot_w,
                left - 4.0,
                y + 4.0,
                stat.format(v)
            );
        }
        h.push('\n');
        let label_every = (points.len() / 12).max(1);
        // Up to 12 decisions: one rect per bar with its value as a tooltip
        // (and, up to 8, as a label). Beyond: one path per kind of bar, so a
        // long rollout's charts stay small (the values are in the tables).
        let compact = points.len() > 12;
        let mut paths: BTreeMap<&str, String> = BTreeMap::new();
        for (i, ((ask, m), (b, c))) in points.iter().zip(&values).enumerate() {
            let x0 = left + group * i as f64 + (group - 2.0 * bar) / 2.0;
            for (j, (v, class)) in [
                (b, "baseline"),
                (c, if m.failed { "failed" } else { "canary" }),
            ]
            .into_iter()
            .enumerate()
            {
                let x = x0 + bar * j as f64;
                let who = if j == 0 { "baseline" } else { "canary" };
                let (class, v) = match v {
                    Some(v) => (class, *v),
                    // Not measured: a hollow marker on the axis, never a zero bar.
                    None => ("nodata", f64::NAN),
                };
                let bh = if v.is_nan() {
                    3.0
                } else if top > 0.0 {
                    plot_h * v / top
                } else {
                    0.0
                };
                let y = top_pad + plot_h - bh;
                if compact {
                    let _ = write!(
                        paths.entry(class).or_default(),
                        "M{x:.1} {y:.1}h{:.1}v{bh:.1}h-{:.1}z",
                        bar - 1.0,
                        bar - 1.0
                    );
                    continue;
                }
                let value = if v.is_nan() {
                    "no data".to_string()
                } else {
                    stat.format(v)
                };
                let _ = write!(
                    h,
                    "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{who} {value}{}</title></rect>",
                    bar - 1.0,
                    if class == "failed" {
                        ", metric failed"
                    } else {
                        ""
                    }
                );
                if points.len() <= 8 && !v.is_nan() {
                    let _ = write!(
                        h,
                        "<text class=\"val\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{value}</text>",
                        x + bar / 2.0,
                        y - 3.0,
                    );
                }
            }
            if i % label_every == 0 {
                let _ = write!(
                    h,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">P{}.{}</text>",
                    x0 + bar,
                    top_pad + plot_h + 14.0,
                    ask.phase + 1,
                    ask.within
                );
            }
        }
        for (class, d) in &paths {
            let _ = write!(h, "<path class=\"{class}\" d=\"{d}\"/>");
        }
        let _ = writeln!(
            h,
            "\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"muted\">gate decision (phase.ask)</text></svg></figure>",
            left + plot_w / 2.0,
            top_pad + plot_h + 30.0
        );
    }

    fn verdicts(&self, h: &mut String) {
        h.push_str("<section id=\"verdicts\"><h2>Gate verdicts and reasons</h2>\n");
        if self.asks.is_empty() {
            h.push_str("<p class=\"muted\">The gate was never asked.</p>\n");
        }
        for a in &self.asks {
            let (class, label) = ask_label(a);
            let phase_name = self
                .request
                .plan
                .phases
                .get(a.phase)
                .map(|p| p.name.as_str())
                .unwrap_or_default();
            let _ = writeln!(
                h,
                "<article id=\"ask-{}\"><h3>Phase {} ({}), ask {}: <span class=\"v {class}\">{}</span> \
                 <span class=\"muted\">at {}</span></h3>",
                a.n,
                a.phase + 1,
                self.t(phase_name),
                a.within,
                escape(&label),
                rfc3339(a.at_ms)
            );
            match &a.answer {
                Answer::Errored(error) => {
                    let _ = writeln!(h, "<p class=\"error\">gate error: {}</p>", self.t(error));
                }
                Answer::Decided { decision, evidence } => {
                    self.reasons(h, decision, *evidence);
                    if let Some(e) = evidence {
                        self.reason_table(h, e);
                    }
                }
            }
            h.push_str("</article>\n");
        }
        h.push_str("</section>\n");
    }

    /// The decision's reasons, less the per-metric lines the table shows.
    fn reasons(&self, h: &mut String, decision: &Decision, evidence: Option<&GateEvidence>) {
        let metric_line = |r: &str| {
            evidence.is_some_and(|e| {
                e.metrics.iter().any(|m| {
                    r.strip_prefix(m.name.as_str())
                        .is_some_and(|t| t.starts_with(": "))
                })
            })
        };
        let lines: Vec<&String> = decision
            .reasons()
            .iter()
            .filter(|r| !metric_line(r))
            .collect();
        if lines.is_empty() {
            return;
        }
        h.push_str("<ul class=\"reasons\">");
        for r in lines {
            let _ = write!(h, "<li>{}</li>", self.t(r));
        }
        h.push_str("</ul>\n");
    }

    fn reason_table(&self, h: &mut String, e: &GateEvidence) {
        let _ = writeln!(
            h,
            "<p>Analysis verdict <span class=\"v {}\">{}</span>, health score {}.</p>",
            verdict_class(&e.verdict),
            self.t(&e.verdict),
            e.score
                .map(|s| format!("{:.1}", s.get()))
                .unwrap_or_else(|| "n/a".into())
        );
        h.push_str(
            "<table class=\"reasons\"><thead><tr><th>Metric</th><th>Baseline</th><th>Canary</th>\
             <th>p</th><th>Value and bound</th><th>Result</th></tr></thead><tbody>\n",
        );
        for m in &e.metrics {
            let result = if m.failed {
                format!(
                    "<span class=\"v rollback\">{}{}</span>",
                    if m.critical { "critical, " } else { "" },
                    self.t(&m.result)
                )
            } else if m.result == "nodata" {
                "<span class=\"v hold\">no data</span>".into()
            } else {
                format!("<span class=\"v promote\">{}</span>", self.t(&m.result))
            };
            let _ = writeln!(
                h,
                "<tr><td><a href=\"#metric-{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{result}</td></tr>",
                slug(&m.name),
                self.t(&m.name),
                cohort_text(&m.baseline),
                cohort_text(&m.canary),
                m.p_value.map(|p| fmt_num(p.get())).unwrap_or_default(),
                self.t(&m.reason),
            );
        }
        h.push_str("</tbody></table>\n");
    }

    /// The rows `rollgate rollout history --rollout ID` prints.
    fn audit(&self, h: &mut String) {
        h.push_str(
            "<section id=\"audit\"><h2>Audit: who did what</h2>\n<table><thead><tr><th>Seq</th><th>Time</th>\
             <th>Actor</th><th>Action</th><th>Target</th><th>Artifact</th><th>Outcome</th></tr></thead><tbody>\n",
        );
        let r = self.request;
        let _ = writeln!(
            h,
            "<tr><td>0</td><td>{}</td><td>{}</td><td>requested</td><td>-</td><td>{}</td><td>{}</td></tr>",
            self.events
                .first()
                .map(|e| rfc3339(e.at_ms))
                .unwrap_or_default(),
            self.t(&r.actor),
            self.t(&r.artifact.version),
            r.idempotency_key
                .as_deref()
                .map(|k| self.t(&format!("idempotency key {k}")))
                .unwrap_or_default()
        );
        let mut restoring: BTreeMap<&str, &str> = BTreeMap::new();
        let mut ask = 0usize;
        for e in self.events {
            let artifact = match &e.event {
                Event::RestoreIntent { target, to } => {
                    restoring.insert(target.as_str(), to.version.as_str());
                    to.version.as_str()
                }
                Event::TargetRestored { target } | Event::RestoreFailed { target, .. } => {
                    restoring.get(target.as_str()).copied().unwrap_or_default()
                }
                _ => r.artifact.version.as_str(),
            };
            let outcome = match &e.event {
                // The reasons are in the verdict's section (with the table):
                // the row links there instead of repeating them.
                Event::GateDecided {
                    phase, decision, ..
                } => {
                    ask += 1;
                    format!(
                        "phase {}: {}: {} <a href=\"#ask-{ask}\">reasons</a>",
                        phase + 1,
                        decision.kind(),
                        self.t(decision.reasons().first().map_or("", String::as_str))
                    )
                }
                Event::GateErrored { .. } => {
                    ask += 1;
                    format!(
                        "{} <a href=\"#ask-{ask}\">details</a>",
                        self.t(&e.event.outcome_text())
                    )
                }
                other => self.t(&other.outcome_text()),
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{outcome}</td></tr>",
                e.seq,
                rfc3339(e.at_ms),
                self.t(&e.actor),
                e.event.action(),
                e.event
                    .target()
                    .map(|t| self.t(t.as_str()))
                    .unwrap_or_else(|| "-".into()),
                self.t(artifact),
            );
        }
        h.push_str("</tbody></table></section>\n");
    }
}

/// The rollout's status for people, as `rollgate rollout status` names it,
/// and why, when it stopped short.
fn status_text(r: &Rollout) -> (String, Option<String>) {
    let name = match &r.status {
        _ if r.interrupted.is_some() && !r.is_finished() => "interrupted",
        Status::Running => "running",
        Status::Paused => "paused",
        Status::Held(_) => "held",
        Status::RollingBack { .. } => "rolling_back",
        Status::Finished(o) => o.as_str(),
    };
    let why = match (&r.status, &r.rollback_reason) {
        (Status::Finished(o), Some(why)) if *o != Outcome::Succeeded => Some(why.clone()),
        (Status::RollingBack { reason, .. }, _) => Some(reason.clone()),
        (Status::Held(why), _) if !why.is_empty() => Some(why.join("; ")),
        _ => None,
    };
    (name.to_string(), why)
}

fn status_class(status: &str) -> &'static str {
    if status.starts_with("succeeded") {
        "promote"
    } else if status.starts_with("held") || status.starts_with("paused") {
        "hold"
    } else if status.starts_with("running") || status.starts_with("interrupted") {
        "continue"
    } else {
        "rollback"
    }
}

fn verdict_class(kind: &str) -> &'static str {
    match kind {
        "promote" => "promote",
        "rollback" => "rollback",
        "hold" | "inconclusive" => "hold",
        _ => "continue",
    }
}

/// The badge of one ask: `rollback`, `hold (inconclusive)`, `gate error`.
fn ask_label(a: &Ask<'_>) -> (&'static str, String) {
    match &a.answer {
        Answer::Errored(_) => ("rollback", "gate error".into()),
        Answer::Decided { decision, evidence } => {
            let kind = decision.kind();
            let label = match evidence {
                Some(e) if e.verdict != kind && !e.verdict.is_empty() => {
                    format!("{kind} ({})", e.verdict)
                }
                _ => kind.to_string(),
            };
            (verdict_class(kind), label)
        }
    }
}

/// Which number a metric's chart shows.
#[derive(Clone, Copy)]
enum Stat {
    Ratio,
    P99,
    P50,
    Mean,
}

impl Stat {
    fn of(self, c: &CohortEvidence) -> Option<f64> {
        match self {
            Stat::Ratio => c.ratio,
            Stat::P99 => c.p99,
            Stat::P50 => c.p50,
            Stat::Mean => c.mean,
        }
        .map(|n| n.get())
    }

    fn label(self) -> &'static str {
        match self {
            Stat::Ratio => "event rate",
            Stat::P99 => "p99",
            Stat::P50 => "median",
            Stat::Mean => "mean",
        }
    }

    fn format(self, v: f64) -> String {
        match self {
            Stat::Ratio => format!("{}%", fmt_num(v * 100.0)),
            _ => fmt_num(v),
        }
    }
}

/// The most telling number the decisions have for a metric: the rate for
/// counts, else the p99, the median or the mean.
fn headline(ms: &[&MetricEvidence]) -> Stat {
    [Stat::Ratio, Stat::P99, Stat::P50]
        .into_iter()
        .find(|s| {
            ms.iter()
                .any(|m| s.of(&m.baseline).is_some() || s.of(&m.canary).is_some())
        })
        .unwrap_or(Stat::Mean)
}

/// `17/130 (13.1%)` for counts, `n 300 · p50 12 · p99 45` for values.
fn cohort_text(c: &CohortEvidence) -> String {
    if c.n == 0 {
        return "<span class=\"muted\">no data</span>".into();
    }
    if let Some(events) = c.events {
        let ratio = c
            .ratio
            .map(|r| format!(" ({}%)", fmt_num(r.get() * 100.0)))
            .unwrap_or_default();
        return format!("{events}/{}{ratio}", c.n);
    }
    let mut s = format!("n {}", c.n);
    for (k, v) in [("p50", c.p50), ("p95", c.p95), ("p99", c.p99)] {
        if let Some(v) = v {
            let _ = write!(s, " · {k} {}", fmt_num(v.get()));
        }
    }
    if c.p50.is_none()
        && let Some(m) = c.mean
    {
        let _ = write!(s, " · mean {}", fmt_num(m.get()));
    }
    s
}

/// A short decimal: whole numbers from 100, two decimals from 1, three
/// significant digits below, scientific below 0.001.
fn fmt_num(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.001 {
        // 0.1..1: 3 decimals, 0.01..0.1: 4, 0.001..0.01: 5.
        let decimals = (2.0 - a.log10().floor()).clamp(3.0, 5.0) as usize;
        format!("{v:.decimals$}")
    } else {
        return format!("{v:.2e}");
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// 1, 2, 2.5 or 5 times a power of ten, at least `v` (1 for nothing).
fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * p)
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// An anchor-safe name: ASCII letters and digits, the rest as `-`, plus a
/// hash so distinct names stay distinct.
fn slug(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    // FNV-1a: deterministic, and enough to tell names apart.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let _ = write!(s, "-{:08x}", hash as u32);
    s
}

/// HTML-escapes text for element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-23T14:39:24.123Z` from milliseconds since the epoch (UTC, no
/// time-zone database needed): how the report and `rollout history` print
/// an event's time.
///
/// ```
/// assert_eq!(rollgate::report::rfc3339(1_795_444_764_123), "2026-11-23T14:39:24.123Z");
/// ```
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

const CSS: &str = "\
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#1d2329}\
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:32px}h3{font-size:15px}\
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}\
th{background:#f3f5f7}#audit td:nth-child(2),#timeline td:nth-child(6),#timeline td:nth-child(7){white-space:nowrap}td.targets{max-width:260px;overflow-wrap:anywhere}\
dl.summary{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dt{font-weight:600}dd{margin:0}\
code{font-size:12px}.muted{color:#6a737d}.error{color:#a40e26}\
.v{display:inline-block;padding:0 6px;border-radius:3px;font-weight:600;text-decoration:none}\
.v.promote{background:#d7f5dd;color:#135d26}.v.rollback{background:#ffdce0;color:#86181d}\
.v.hold{background:#fff1c2;color:#6b4b00}.v.continue{background:#dbeafe;color:#1e3a8a}\
svg text{font-size:11px;fill:#1d2329}svg text.muted{fill:#6a737d}svg .grid{stroke:#e1e4e8}\
.baseline{fill:#8a94a0}.canary{fill:#2f7ec2}.failed{fill:#c62828}.nodata{fill:#fff;stroke:#8a94a0}\
rect.promote{fill:#2e9e4f}rect.rollback{fill:#c62828}rect.hold{fill:#d4a017}rect.continue{fill:#2f7ec2}\
.legend .sw{display:inline-block;width:12px;height:12px;vertical-align:-1px}\
.sw.baseline{background:#8a94a0}.sw.canary{background:#2f7ec2}.sw.failed{background:#c62828}\
figure{margin:12px 0}figcaption{margin-bottom:2px}footer{margin-top:32px;color:#6a737d;font-size:12px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x&'y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
    }

    #[test]
    fn numbers_read_short() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(12.5), "12.5");
        assert_eq!(fmt_num(1234.56), "1235");
        assert_eq!(fmt_num(0.0123), "0.0123");
        assert_eq!(fmt_num(0.116_666), "0.117");
        assert_eq!(fmt_num(0.001_234_5), "0.00123");
        assert_eq!(fmt_num(0.00001), "1.00e-5");
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(37.0), 50.0);
        assert_eq!(nice_ceiling(0.012), 0.02);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn slugs_are_safe_and_distinct() {
        let (a, b) = (slug("a b\"><x"), slug("a-b--x"));
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn utc_times() {
        assert_eq!(rfc3339(1_795_444_764_123), "2026-11-23T14:39:24.123Z");
    }
}
