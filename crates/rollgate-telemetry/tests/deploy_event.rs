//! A rollout's events become log lines of one trace and bounded metrics.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rollgate_telemetry::{DEPLOY_EVENTS_TOTAL, DeployEvent, GateOutcome, init};
use serde_json::Value;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_rollout_reads_as_one_trace_with_counted_events() {
    let capture = Capture::default();
    let t = init("controller")
        .log_filter_env(None)
        .log_writer(capture.clone())
        .build()
        .expect("valid config");
    tracing::dispatcher::with_default(t.dispatch(), || {
        metrics::with_local_recorder(&t.recorder(), || {
            let span = DeployEvent::rollout_span("r-42");
            let _e = span.enter();
            let id = || "r-42".to_owned();
            DeployEvent::RolloutStarted {
                rollout_id: id(),
                artifact: "sha256:ab12".into(),
                strategy: "canary".into(),
                targets: 4,
            }
            .emit();
            for step in 0..2 {
                DeployEvent::Step {
                    rollout_id: id(),
                    step,
                    weight_percent: 10.0,
                    targets: 1,
                }
                .emit();
                DeployEvent::GateVerdict {
                    rollout_id: id(),
                    step,
                    outcome: GateOutcome::Continue,
                    reason: "p99 within bounds".into(),
                }
                .emit();
            }
            DeployEvent::GateVerdict {
                rollout_id: id(),
                step: 2,
                outcome: GateOutcome::Rollback,
                reason: "error ratio 3% > 1%".into(),
            }
            .emit();
            DeployEvent::RolledBack {
                rollout_id: id(),
                reason: "gate".into(),
            }
            .emit();
            DeployEvent::DriftFound {
                subject: "web-1".into(),
                differences: 2,
            }
            .emit();
        })
    });
    let bytes = capture.0.lock().expect("capture lock").clone();
    let lines: Vec<Value> = String::from_utf8(bytes)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 8);
    let trace = lines[0]["trace_id"].clone();
    assert!(trace.is_string());
    for l in &lines {
        assert_eq!(l["trace_id"], trace, "one trace per rollout");
        assert_eq!(l["target"], "rollgate::deploy");
    }
    assert_eq!(lines[0]["event"], "rollout_started");
    assert_eq!(lines[0]["artifact"], "sha256:ab12");
    assert_eq!(lines[5]["verdict"], "rollback");
    assert_eq!(lines[5]["level"], "WARN");
    assert_eq!(lines[7]["differences"], 2);

    let snap = t.metrics().snapshot();
    let name = DEPLOY_EVENTS_TOTAL;
    assert_eq!(snap.counter(name, &[("event", "step")]), Some(2));
    assert_eq!(
        snap.counter(name, &[("event", "gate_verdict"), ("verdict", "continue")]),
        Some(2)
    );
    assert_eq!(
        snap.counter(name, &[("event", "gate_verdict"), ("verdict", "rollback")]),
        Some(1)
    );
    assert_eq!(snap.counter_sum(name, &[]), 8);
    // Rollout ids never become label values.
    assert!(t.metrics().render().lines().all(|l| !l.contains("r-42")));
}

#[test]
fn events_serialize_with_their_kind_as_tag() {
    let e = DeployEvent::Promoted {
        rollout_id: "r-1".into(),
    };
    let v = serde_json::to_value(&e).expect("serializable");
    assert_eq!(v["event"], e.kind());
    assert_eq!(v["rollout_id"], "r-1");
}
