//! OTLP export against an in-process OTLP/HTTP receiver: spans, resource
//! attributes, remote parents, ids shared with log lines, redaction.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use rollgate_telemetry::{init, trace};
use rollgate_test::tls::{Response, TlsServer};
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

/// (path, content-type, body) of one received request.
type Received = (String, String, Vec<u8>);

/// Accepts OTLP/HTTP POSTs and keeps what arrived.
struct Receiver {
    addr: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let addr = listener.local_addr().expect("local addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&requests);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn.try_clone().expect("clone stream"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
                let (mut len, mut ctype) = (0usize, String::new());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        match k.trim().to_ascii_lowercase().as_str() {
                            "content-length" => len = v.trim().parse().unwrap_or(0),
                            "content-type" => ctype = v.trim().to_owned(),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0u8; len];
                if reader.read_exact(&mut body).is_err() {
                    continue;
                }
                store.lock().expect("store lock").push((path, ctype, body));
                let mut w = conn;
                let _ = w.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { addr, requests }
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match &kv.value {
            Some(AnyValue {
                value: Some(any_value::Value::StringValue(s)),
            }) => Some(s.as_str()),
            _ => None,
        })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn spans_and_resource_attributes_reach_an_otlp_receiver_with_the_log_ids() {
    const SECRET: &str = "hunter2-Otlp";
    let receiver = Receiver::start();
    let logs = Capture::default();
    let t = init("checkout")
        .log_filter_env(None)
        .version("1.4.2")
        .commit("9f2c1e0aa")
        .environment("staging")
        .cohort("canary")
        .log_writer(logs.clone())
        .otlp_endpoint(format!("http://{}", receiver.addr))
        .build()
        .expect("valid config");
    let (request_ctx, db_ctx) = tracing::dispatcher::with_default(t.dispatch(), || {
        let request = tracing::info_span!("request", request_id = "r-1", password = SECRET);
        trace::extract(
            &request,
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let _r = request.enter();
        let request_ctx = trace::current().expect("request context");
        tracing::info!("accepted");
        let db = tracing::info_span!("db", dsn = format!("postgres://app:{SECRET}@db/x"));
        let _d = db.enter();
        let db_ctx = trace::current().expect("db context");
        tracing::info!(event = "promoted", rollout_id = "r-9", "promoted");
        (request_ctx, db_ctx)
    });
    t.flush();

    let requests = receiver.requests.lock().expect("lock").clone();
    assert!(!requests.is_empty(), "no OTLP request arrived");
    let mut spans = Vec::new();
    let mut resources = Vec::new();
    for (path, ctype, body) in &requests {
        assert_eq!(path, "/v1/traces");
        assert_eq!(ctype, "application/x-protobuf");
        assert!(
            !body.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "secret exported"
        );
        let req = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid OTLP protobuf");
        for rs in req.resource_spans {
            resources.push(rs.resource.clone().unwrap_or_default().attributes);
            for ss in rs.scope_spans {
                spans.extend(ss.spans);
            }
        }
    }
    let res = &resources[0];
    assert_eq!(attr(res, "service.name"), Some("checkout"));
    assert_eq!(attr(res, "service.version"), Some("1.4.2"));
    assert_eq!(attr(res, "vcs.ref.head.revision"), Some("9f2c1e0aa"));
    assert_eq!(attr(res, "deployment.environment.name"), Some("staging"));
    assert_eq!(attr(res, "rollgate.cohort"), Some("canary"));

    let request = spans
        .iter()
        .find(|s| s.name == "request")
        .expect("request span exported");
    let db = spans
        .iter()
        .find(|s| s.name == "db")
        .expect("db span exported");
    // The remote traceparent is continued.
    assert_eq!(hex(&request.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(hex(&request.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(db.trace_id, request.trace_id);
    assert_eq!(db.parent_span_id, request.span_id);
    // trace::current() and log lines report the exported ids.
    assert_eq!(hex(&request.span_id), request_ctx.span_id.to_string());
    assert_eq!(hex(&db.span_id), db_ctx.span_id.to_string());
    let lines: Vec<Value> = String::from_utf8(logs.0.lock().expect("lock").clone())
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[0]["trace_id"], hex(&request.trace_id));
    assert_eq!(lines[0]["span_id"], hex(&request.span_id));
    assert_eq!(lines[1]["span_id"], hex(&db.span_id));
    // Span attributes are redacted; an event is a span event.
    assert_eq!(attr(&request.attributes, "password"), Some("[REDACTED]"));
    assert_eq!(attr(&request.attributes, "request_id"), Some("r-1"));
    assert_eq!(
        attr(&db.attributes, "dsn"),
        Some("postgres://app:[REDACTED]@db/x")
    );
    let event = db
        .events
        .iter()
        .find(|e| e.name == "promoted")
        .expect("event on span");
    assert_eq!(attr(&event.attributes, "event"), Some("promoted"));
}

#[test]
fn a_malformed_endpoint_is_a_config_error() {
    for bad in [
        "ftp://collector:4318",
        "http:///v1/traces",
        "collector:4318",
    ] {
        let e = init("svc")
            .log_writer(std::io::sink())
            .otlp_endpoint(bad)
            .build()
            .expect_err(bad);
        assert!(e.to_string().contains("otlp_endpoint"), "{bad}: {e}");
    }
    init("svc")
        .log_writer(std::io::sink())
        .otlp_endpoint("https://collector:4318")
        .build()
        .expect("https is accepted");
}

/// Ends one span named `name` under `t` and exports it.
fn export_one_span(t: &rollgate_telemetry::Telemetry, name: &'static str) {
    tracing::dispatcher::with_default(t.dispatch(), || {
        let span = tracing::info_span!("export", otel.name = name);
        let _e = span.enter();
        tracing::info!("inside");
    });
    t.flush();
}

/// The span names in OTLP protobuf request bodies.
fn span_names(bodies: &[Vec<u8>]) -> Vec<String> {
    let mut names = Vec::new();
    for body in bodies {
        let req = ExportTraceServiceRequest::decode(body.as_slice()).expect("valid OTLP protobuf");
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                names.extend(ss.spans.into_iter().map(|s| s.name));
            }
        }
    }
    names
}

#[test]
fn spans_reach_an_https_collector_with_a_self_signed_certificate_and_a_token() {
    let server = TlsServer::start(|_| {
        Response::new(200, Vec::new()).header("Content-Type", "application/x-protobuf")
    })
    .expect("TLS server");
    let t = init("checkout")
        .log_filter_env(None)
        .log_writer(std::io::sink())
        .otlp_endpoint(server.url(""))
        .otlp_root_certificates_pem(server.ca_pem())
        .otlp_header("Authorization", "Bearer t0ken-otlp")
        .build()
        .expect("valid config");
    export_one_span(&t, "over-tls");
    let requests = server.requests();
    assert!(!requests.is_empty(), "no OTLP request arrived over TLS");
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/traces");
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(r.header("authorization"), Some("Bearer t0ken-otlp"));
    }
    let bodies: Vec<Vec<u8>> = requests.into_iter().map(|r| r.body).collect();
    assert!(span_names(&bodies).iter().any(|n| n == "over-tls"));
}

#[test]
fn an_https_collector_whose_certificate_is_not_trusted_gets_nothing() {
    let server = TlsServer::start(|_| Response::new(200, Vec::new())).expect("TLS server");
    let t = init("checkout")
        .log_filter_env(None)
        .log_writer(std::io::sink())
        .otlp_endpoint(server.url(""))
        .build()
        .expect("valid config");
    export_one_span(&t, "untrusted");
    assert_eq!(server.requests(), Vec::new(), "sent to an untrusted server");
}

#[test]
fn bad_roots_and_headers_are_config_errors() {
    let e = init("svc")
        .otlp_endpoint("https://collector:4318")
        .otlp_root_certificates_pem("-----BEGIN NOTHING-----")
        .build()
        .expect_err("no certificate");
    assert!(e.to_string().contains("otlp_root_certificates_pem"), "{e}");
    let e = init("svc")
        .otlp_endpoint("https://collector:4318")
        .otlp_header("Authori zation", "x")
        .build()
        .expect_err("bad header name");
    assert!(e.to_string().contains("otlp_header"), "{e}");
}

/// Runs this test binary's `child_*` test in a child process with `env`
/// set (tests cannot set variables in their own process), and returns
/// whether it passed and what it printed.
fn run_child(test: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(env.iter().copied())
        .output()
        .expect("run the test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("1 passed"), text)
}

/// Child of the test below: exports one span to `ROLLGATE_TEST_OTLP_URL`,
/// trusting only what the environment says, or checks the build error.
#[test]
#[ignore = "run by the test below, with its environment"]
fn child_exports_with_the_certificate_named_by_the_environment() {
    let url = std::env::var("ROLLGATE_TEST_OTLP_URL")
        .expect("set by otel_exporter_otlp_certificate_names_the_trusted_roots");
    let built = init("checkout")
        .log_filter_env(None)
        .log_writer(std::io::sink())
        .otlp_endpoint(url)
        .build();
    match std::env::var("ROLLGATE_TEST_EXPECT_ERROR") {
        Ok(word) => {
            let e = built.expect_err("unreadable certificate file");
            assert!(e.to_string().contains(&word), "{e}");
        }
        Err(_) => export_one_span(&built.expect("valid config"), "env-roots"),
    }
}

#[test]
fn otel_exporter_otlp_certificate_names_the_trusted_roots() {
    let server = TlsServer::start(|_| Response::new(200, Vec::new())).expect("TLS server");
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = dir.path().join("collector.pem");
    std::fs::write(&pem, server.ca_pem()).expect("write pem");
    let url = server.url("");
    let (ok, out) = run_child(
        "child_exports_with_the_certificate_named_by_the_environment",
        &[
            ("ROLLGATE_TEST_OTLP_URL", &url),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                pem.to_str().expect("utf-8 path"),
            ),
        ],
    );
    assert!(ok, "{out}");
    let bodies: Vec<Vec<u8>> = server.requests().into_iter().map(|r| r.body).collect();
    assert!(
        span_names(&bodies).iter().any(|n| n == "env-roots"),
        "{out}"
    );

    let missing = dir.path().join("missing.pem");
    let (ok, out) = run_child(
        "child_exports_with_the_certificate_named_by_the_environment",
        &[
            ("ROLLGATE_TEST_OTLP_URL", &url),
            (
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
                missing.to_str().expect("utf-8"),
            ),
            (
                "ROLLGATE_TEST_EXPECT_ERROR",
                "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
            ),
        ],
    );
    assert!(ok, "{out}");
}
