//! Log lines are parsed back as JSON and every promised field is checked.

use std::io::Write;
use std::sync::{Arc, Mutex};

use rollgate_telemetry::{LogFormat, Telemetry, TraceParent, init, trace};
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

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("capture lock").clone()).expect("utf-8 output")
    }
    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }
}

fn telemetry(capture: &Capture) -> Telemetry {
    init("checkout")
        .log_filter_env(None)
        .version("1.4.2")
        .commit("9f2c1e0aa")
        .environment("staging")
        .cohort("canary")
        .id_seed(7)
        .log_writer(capture.clone())
        .build()
        .expect("valid telemetry config")
}

fn is_rfc3339_utc(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 27
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && ts.ends_with('Z')
        && ts[..4].parse::<u32>().is_ok_and(|y| y >= 2020)
}

#[test]
fn every_line_is_json_with_identity_level_target_and_timestamp() {
    let capture = Capture::default();
    let t = telemetry(&capture);
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::info!(items = 3, ok = true, ratio = 0.5, "order placed");
        tracing::debug!("filtered out at the default info level");
    });
    let lines = capture.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert!(is_rfc3339_utc(l["timestamp"].as_str().unwrap_or("")), "{l}");
    assert_eq!(l["level"], "INFO");
    assert_eq!(l["target"], "logs");
    assert_eq!(l["message"], "order placed");
    assert_eq!(l["service"], "checkout");
    assert_eq!(l["version"], "1.4.2");
    assert_eq!(l["environment"], "staging");
    assert_eq!(l["commit"], "9f2c1e0aa");
    assert_eq!(l["cohort"], "canary");
    assert_eq!(l["items"], 3);
    assert_eq!(l["ok"], true);
    assert_eq!(l["ratio"], 0.5);
    // Outside any span there is no trace context.
    assert!(l.get("trace_id").is_none());
}

#[test]
fn lines_inside_a_request_carry_the_active_span_ids_and_flattened_fields() {
    let capture = Capture::default();
    let t = telemetry(&capture);
    let (outer_ctx, inner_ctx) = tracing::dispatcher::with_default(t.dispatch(), || {
        let request = tracing::info_span!("request", request_id = "req-42", route = "/orders/{id}");
        let _r = request.enter();
        let outer = trace::current().expect("request span has a context");
        tracing::info!("accepted");
        let db = tracing::info_span!("db", route = "inner-wins", table = "orders");
        let _d = db.enter();
        let inner = trace::current().expect("db span has a context");
        tracing::warn!(rows = 2u64, "slow query");
        (outer, inner)
    });
    let lines = capture.lines();
    assert_eq!(lines.len(), 2);
    let (a, b) = (&lines[0], &lines[1]);
    assert_eq!(a["trace_id"], outer_ctx.trace_id.to_string());
    assert_eq!(a["span_id"], outer_ctx.span_id.to_string());
    assert_eq!(a["request_id"], "req-42");
    assert_eq!(a["route"], "/orders/{id}");
    // Same trace, child span, fields of both spans, the inner one wins.
    assert_eq!(inner_ctx.trace_id, outer_ctx.trace_id);
    assert_eq!(inner_ctx.parent_id, Some(outer_ctx.span_id));
    assert_eq!(b["trace_id"], outer_ctx.trace_id.to_string());
    assert_eq!(b["span_id"], inner_ctx.span_id.to_string());
    assert_eq!(b["level"], "WARN");
    assert_eq!(b["request_id"], "req-42");
    assert_eq!(b["route"], "inner-wins");
    assert_eq!(b["table"], "orders");
    assert_eq!(b["rows"], 2);
    assert_eq!(a["trace_id"].as_str().map(str::len), Some(32));
    assert_eq!(a["span_id"].as_str().map(str::len), Some(16));
}

#[test]
fn an_extracted_traceparent_continues_the_remote_trace() {
    let capture = Capture::default();
    let t = telemetry(&capture);
    let remote: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .expect("valid traceparent");
    let injected = tracing::dispatcher::with_default(t.dispatch(), || {
        let span = tracing::info_span!("request");
        trace::extract(&span, Some(&remote.to_string()));
        let _e = span.enter();
        tracing::info!("continuing");
        let child = tracing::info_span!("call downstream");
        trace::inject(&child).expect("child has a context")
    });
    let l = &capture.lines()[0];
    assert_eq!(l["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let out: TraceParent = injected.parse().expect("injected value parses");
    assert_eq!(out.trace_id, remote.trace_id);
    assert_ne!(out.parent_id, remote.parent_id);
}

#[test]
fn a_planted_secret_never_reaches_output() {
    const SECRET: &str = "hunter2-Zq9";
    let capture = Capture::default();
    let t = init("checkout")
        .log_filter_env(None)
        .redact_field("ssn")
        .log_writer(capture.clone())
        .log_filter("trace")
        .build()
        .expect("valid config");
    tracing::dispatcher::with_default(t.dispatch(), || {
        let span = tracing::info_span!("login", session_token = SECRET, user = "bob");
        let _e = span.enter();
        tracing::info!(password = SECRET, "field");
        tracing::info!("message with password={SECRET} inside");
        tracing::info!(
            dsn = format!("postgres://app:{SECRET}@db:5432/shop"),
            "url field"
        );
        tracing::info!("calling https://bob:{SECRET}@api.example.com/v1?x=1");
        tracing::info!("url query https://api.example.com/v1?api_key={SECRET}&page=2");
        tracing::info!(headers = ?vec![("authorization", format!("Bearer {SECRET}"))], "debug value");
        tracing::debug!(customer_ssn = SECRET, pin = 1234, "configured field");
    });
    let text = capture.text();
    assert_eq!(text.lines().count(), 7);
    assert!(!text.contains(SECRET), "secret leaked:\n{text}");
    assert!(!text.contains("hunter2"), "secret leaked:\n{text}");
    assert!(text.contains("[REDACTED]"));
    // Non-secret context survives redaction.
    let lines = capture.lines();
    assert_eq!(lines[0]["user"], "bob");
    assert_eq!(
        lines[3]["message"],
        "calling https://bob:[REDACTED]@api.example.com/v1?x=1"
    );
    assert_eq!(lines[6]["pin"], 1234);
}

/// One callsite logged through two layers that redact different fields,
/// alternately on one thread: each line follows its own layer's rules.
#[test]
fn each_layer_applies_its_own_redaction_to_a_shared_callsite() {
    fn order(n: u64) {
        tracing::info!(ssn = "123-45-6789", n, "order");
    }
    let (plain, masked) = (Capture::default(), Capture::default());
    let a = init("a")
        .log_filter_env(None)
        .log_writer(plain.clone())
        .build()
        .expect("valid config");
    let b = init("b")
        .log_filter_env(None)
        .redact_field("ssn")
        .log_writer(masked.clone())
        .build()
        .expect("valid config");
    for n in 0..3 {
        tracing::dispatcher::with_default(a.dispatch(), || order(n));
        tracing::dispatcher::with_default(b.dispatch(), || order(n));
    }
    let (plain, masked) = (plain.lines(), masked.lines());
    assert_eq!((plain.len(), masked.len()), (3, 3));
    for (n, (p, m)) in plain.iter().zip(&masked).enumerate() {
        assert_eq!(p["ssn"], "123-45-6789", "{p}");
        assert_eq!(m["ssn"], "[REDACTED]", "{m}");
        assert_eq!((&p["n"], &m["n"]), (&Value::from(n), &Value::from(n)));
    }
}

/// More callsites than a thread keeps rendered keys for, interleaved: every
/// line carries exactly its own fields.
#[test]
fn many_interleaved_callsites_each_keep_their_own_keys() {
    macro_rules! sites {
        ($($name:ident),*) => {
            vec![$((
                stringify!($name),
                (|| tracing::info!($name = 1u64, level = 2u64, "x")) as fn(),
            )),*]
        };
    }
    let mut sites = sites!(
        f00, f01, f02, f03, f04, f05, f06, f07, f08, f09, f10, f11, f12, f13, f14, f15, f16, f17,
        f18, f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32, f33, f34, f35
    );
    sites.push((
        "f99",
        || tracing::warn!(target: "custom::target", f99 = 1u64, level = 2u64, "x"),
    ));
    let capture = Capture::default();
    let t = telemetry(&capture);
    tracing::dispatcher::with_default(t.dispatch(), || {
        for _ in 0..3 {
            for (_, site) in &sites {
                site();
            }
        }
    });
    let lines = capture.lines();
    assert_eq!(lines.len(), 3 * sites.len());
    for (i, l) in lines.iter().enumerate() {
        let name = sites[i % sites.len()].0;
        assert_eq!(l[name], 1, "{l}");
        let (level, target) = match name {
            "f99" => ("WARN", "custom::target"),
            _ => ("INFO", "logs"),
        };
        assert_eq!(
            (&l["level"], &l["target"]),
            (&level.into(), &target.into()),
            "{l}"
        );
        assert_eq!(l["field.level"], 2, "{l}");
        let own = l
            .as_object()
            .map_or(0, |o| o.keys().filter(|k| k.starts_with('f')).count());
        assert_eq!(own, 2, "only its own field and field.level: {l}");
    }
}

#[test]
fn human_format_is_one_readable_line() {
    let capture = Capture::default();
    let t = init("checkout")
        .log_filter_env(None)
        .version("2.0.0")
        .log_format(LogFormat::Human)
        .log_writer(capture.clone())
        .build()
        .expect("valid config");
    tracing::dispatcher::with_default(t.dispatch(), || {
        tracing::error!(code = 7, "boom");
    });
    let text = capture.text();
    assert!(
        text.contains("ERROR logs: boom code=7 service=checkout version=2.0.0"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1);
}

#[test]
fn invalid_settings_are_rejected_with_the_setting_named() {
    let e = init("").build().expect_err("empty service");
    assert!(e.to_string().contains("service"), "{e}");
    let e = init("svc")
        .log_filter_env(None)
        .log_filter("info,=[")
        .build()
        .expect_err("bad filter");
    assert!(e.to_string().contains("log_filter"), "{e}");
    let e = init("svc")
        .histogram_buckets("x", &[2.0, 1.0])
        .build()
        .expect_err("bad buckets");
    assert!(e.to_string().contains("histogram_buckets"), "{e}");
}
