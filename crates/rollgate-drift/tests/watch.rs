//! DriftWatcher: transitions, detection time on tokio's paused clock,
//! metrics, and the three real live sources (file, command, HTTP GET).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
#[cfg(feature = "http")]
use rollgate_drift::HttpSource;
use rollgate_drift::arena::Tree;
use rollgate_drift::{
    CommandSource, DriftEvent, DriftWatcher, Error, FileSource, Format, Limits, LiveSource, Node,
    Notifier, load,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn y(text: &str) -> Node {
    load(text, Format::Yaml, "t.yaml", &Limits::default()).unwrap()
}

/// Serves a scripted sequence of documents (test double for a live system).
struct Scripted {
    docs: Mutex<Vec<Result<Node, String>>>,
}

#[async_trait]
impl LiveSource for Scripted {
    fn describe(&self) -> String {
        "scripted".to_owned()
    }
    async fn fetch(&self) -> Result<Tree, Error> {
        let mut docs = self.docs.lock().unwrap();
        let next = if docs.len() > 1 {
            docs.remove(0)
        } else {
            docs[0].clone()
        };
        let node = next.map_err(|message| Error::Live {
            source_name: "scripted".to_owned(),
            message,
        })?;
        Tree::from_node(&node)
    }
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(tokio::time::Instant, DriftEvent)>>,
}

#[async_trait]
impl Notifier for Recorder {
    async fn notify(&self, event: &DriftEvent) {
        self.events
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), event.clone()));
    }
}

#[tokio::test(start_paused = true)]
async fn notifies_when_drift_appears_changes_and_clears_with_detection_time() {
    let desired = y("replicas: 3\nimage: web:2\n");
    let ok = Ok(desired.clone());
    let drift1 = Ok(y("replicas: 2\nimage: web:2\n"));
    let drift2 = Ok(y("replicas: 2\nimage: web:1\n"));
    let source = Arc::new(Scripted {
        docs: Mutex::new(vec![
            ok.clone(),
            ok.clone(),
            drift1.clone(),
            Err("connection refused".to_owned()),
            drift1,
            drift2,
            ok,
        ]),
    });
    let recorder = Arc::new(Recorder::default());
    let watcher = DriftWatcher::builder(Tree::from_node(&desired).unwrap(), source)
        .interval(Duration::from_secs(10))
        .notifier(recorder.clone())
        .name("web")
        .build()
        .unwrap();
    let start = tokio::time::Instant::now();
    // Ticks at 0, 10, ..., 60 s; stop just after the seventh check.
    watcher
        .run(tokio::time::sleep(Duration::from_secs(65)))
        .await;
    let events = recorder.events.lock().unwrap();
    let got: Vec<(u64, &str)> = events
        .iter()
        .map(|(at, e)| {
            let kind = match e {
                DriftEvent::Appeared { .. } => "appeared",
                DriftEvent::Changed { .. } => "changed",
                DriftEvent::Cleared { .. } => "cleared",
                _ => "other",
            };
            ((*at - start).as_secs(), kind)
        })
        .collect();
    assert_eq!(got, [(20, "appeared"), (50, "changed"), (60, "cleared")]);
    match &events[0].1 {
        DriftEvent::Appeared {
            detected_within,
            report,
        } => {
            // The last clean check was at 10 s: the drift began at most 10 s ago.
            assert_eq!(*detected_within, Duration::from_secs(10));
            assert_eq!(report.differences()[0].path, "/replicas");
        }
        other => panic!("{other:?}"),
    }
    match &events[2].1 {
        DriftEvent::Cleared { lasted } => assert_eq!(*lasted, Duration::from_secs(40)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn checks_record_metrics_by_severity() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.json");
    std::fs::write(&live, r#"{"a": 2, "b": 1}"#).unwrap();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut w = DriftWatcher::builder(
                Tree::from_node(&y("a: 1\nb: 1\n")).unwrap(),
                Arc::new(FileSource::new(&live, Format::Json)),
            )
            .name("svc")
            .build()
            .unwrap();
            let out = w.check().await.unwrap();
            assert!(matches!(out.event, Some(DriftEvent::Appeared { .. })));
        });
    });
    let snap = snapshotter.snapshot().into_vec();
    let find = |name: &str, label: Option<(&str, &str)>| {
        snap.iter()
            .find(|(k, _, _, _)| {
                k.key().name() == name
                    && label.is_none_or(|(lk, lv)| {
                        k.key().labels().any(|l| l.key() == lk && l.value() == lv)
                    })
            })
            .map(|(_, _, _, v)| v)
    };
    assert_eq!(
        find("rollgate_drift_differences", Some(("severity", "warning"))),
        Some(&DebugValue::Gauge(1.0.into()))
    );
    assert_eq!(
        find("rollgate_drift_differences", Some(("severity", "critical"))),
        Some(&DebugValue::Gauge(0.0.into()))
    );
    assert_eq!(
        find("rollgate_drift_checks_total", None),
        Some(&DebugValue::Counter(1))
    );
    assert!(
        matches!(find("rollgate_drift_detection_seconds", None), Some(DebugValue::Histogram(h)) if h.len() == 1)
    );
    assert!(
        matches!(find("rollgate_drift_last_check_timestamp_seconds", None), Some(DebugValue::Gauge(g)) if g.into_inner() > 1.7e9)
    );
}

#[tokio::test]
async fn command_source_reads_stdout_and_reports_failures() {
    let s = CommandSource::new("sh", ["-c", "echo '{\"replicas\": 3}'"], Format::Json);
    let node = s.fetch().await.unwrap();
    assert_eq!(node.to_node().to_json(), r#"{"replicas":3}"#);
    let s = CommandSource::new("sh", ["-c", "echo secret-output >&2; exit 3"], Format::Json);
    let e = s.fetch().await.unwrap_err().to_string();
    assert_eq!(e, "live source command sh: exited with exit status: 3");
    let s = CommandSource::new("/nonexistent/kubectl", Vec::<String>::new(), Format::Json);
    assert!(
        s.fetch()
            .await
            .unwrap_err()
            .to_string()
            .contains("cannot start")
    );
}

#[tokio::test]
async fn command_source_times_out() {
    let s = CommandSource::new("sleep", ["5"], Format::Json).timeout(Duration::from_millis(50));
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(e.contains("no result within"), "{e}");
}

#[cfg(feature = "http")]
#[tokio::test]
async fn http_source_gets_a_document_from_a_real_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        for body in ["replicas: 3\n", "nope"] {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            let resp = if body == "nope" {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_owned()
            } else {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
            };
            sock.write_all(resp.as_bytes()).await.unwrap();
            sock.shutdown().await.unwrap();
            assert!(req.starts_with("GET /config HTTP/1.1\r\n"), "{req}");
        }
    });
    let s = HttpSource::new(&format!("http://127.0.0.1:{port}/config"), Format::Yaml).unwrap();
    assert_eq!(
        s.fetch().await.unwrap().to_node().to_json(),
        r#"{"replicas":3}"#
    );
    let e = s.fetch().await.unwrap_err().to_string();
    assert_eq!(
        e,
        format!("live source http://127.0.0.1:{port}/config: server answered 404")
    );
    server.await.unwrap();
}

/// A plain HTTP server answering each connection in turn with the next of
/// `responses` (raw bytes), returning the requests it read.
#[cfg(feature = "http")]
async fn raw_server(responses: Vec<&'static str>) -> (u16, tokio::task::JoinHandle<Vec<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut requests = Vec::new();
        for resp in responses {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            requests.push(String::from_utf8_lossy(&buf[..n]).to_string());
            sock.write_all(resp.replace("PORT", &port.to_string()).as_bytes())
                .await
                .unwrap();
            sock.shutdown().await.unwrap();
        }
        requests
    });
    (port, server)
}

#[cfg(feature = "http")]
#[tokio::test]
async fn http_source_reads_chunked_and_close_delimited_bodies_and_follows_redirects() {
    let (port, server) = raw_server(vec![
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n4\r\na\":1\r\n1\r\n}\r\n0\r\n\r\n",
        "HTTP/1.0 200 OK\r\n\r\n[1]",
        "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:PORT/moved\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"b\":2}",
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}",
    ])
    .await;
    let s = HttpSource::new(&format!("http://127.0.0.1:{port}/c"), Format::Json).unwrap();
    assert_eq!(s.fetch().await.unwrap().to_node().to_json(), r#"{"a":1}"#);
    assert_eq!(s.fetch().await.unwrap().to_node().to_json(), "[1]");
    assert_eq!(s.fetch().await.unwrap().to_node().to_json(), r#"{"b":2}"#);
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "live source http://127.0.0.1:{port}/c: cannot read the response"
        )),
        "{e}"
    );
    let requests = server.await.unwrap();
    assert!(
        requests[3].starts_with("GET /moved HTTP/1.1\r\n"),
        "{}",
        requests[3]
    );
    // The Host header keeps a non-default port.
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{}",
        requests[0]
    );
}

#[cfg(feature = "http")]
#[tokio::test]
async fn http_source_refuses_a_body_over_the_limit() {
    let (port, server) = raw_server(vec![
        "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{\"a\":\"0123456789ab\"}",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n{\"a\":\"0123456789ab\"}\r\n0\r\n\r\n",
    ])
    .await;
    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    let s = HttpSource::new(&format!("http://127.0.0.1:{port}/c"), Format::Json)
        .unwrap()
        .limits(limits);
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(
        e.ends_with("response of 20 bytes exceeds the 10-byte limit"),
        "{e}"
    );
    let e = s.fetch().await.unwrap_err().to_string();
    assert!(e.ends_with("response exceeds the 10-byte limit"), "{e}");
    server.await.unwrap();
}

/// The HTTPS config server of the tests below: answers `replicas: 3` to a
/// request carrying the right token, 401 to any other.
#[cfg(feature = "http")]
fn config_server() -> rollgate_test::tls::TlsServer {
    use rollgate_test::tls::{Response, TlsServer};
    TlsServer::start(|req| {
        if req.header("authorization") == Some("Bearer s3cret-t0ken") {
            Response::new(200, "replicas: 3\n").header("Content-Type", "application/yaml")
        } else {
            Response::new(401, "")
        }
    })
    .unwrap()
}

#[cfg(feature = "http")]
#[tokio::test]
async fn https_source_sends_the_header_file_and_trusts_the_given_root() {
    let server = config_server();
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    std::fs::write(
        &headers,
        "# config API token\nAuthorization: Bearer s3cret-t0ken\n",
    )
    .unwrap();
    let s = HttpSource::new(&server.url("/config?env=prod"), Format::Yaml)
        .unwrap()
        .root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap()
        .header_file(&headers)
        .unwrap();
    assert_eq!(s.describe(), server.url("/config"));
    assert_eq!(
        s.fetch().await.unwrap().to_node().to_json(),
        r#"{"replicas":3}"#
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/config?env=prod");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer s3cret-t0ken")
    );
}

#[cfg(feature = "http")]
#[tokio::test]
async fn https_source_without_the_root_or_the_token_fails_clearly() {
    let server = config_server();
    // The self-signed certificate is not trusted: no request reaches the server.
    let untrusted = HttpSource::new(&server.url("/config"), Format::Yaml)
        .unwrap()
        .header_lines("Authorization: Bearer s3cret-t0ken", "test")
        .unwrap();
    let e = untrusted.fetch().await.unwrap_err().to_string();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
    assert!(server.requests().is_empty());
    // Trusted, but without the token.
    let anonymous = HttpSource::new(&server.url("/config"), Format::Yaml)
        .unwrap()
        .root_certificates_pem(server.ca_pem().as_bytes())
        .unwrap();
    let e = anonymous.fetch().await.unwrap_err().to_string();
    assert_eq!(
        e,
        format!("live source {}: server answered 401", server.url("/config"))
    );
    // A header variable that is not set, and a header file that is missing.
    let e = anonymous
        .clone()
        .header_env("ROLLGATE_TEST_UNSET_HEADER_VARIABLE")
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(
            "header variable ROLLGATE_TEST_UNSET_HEADER_VARIABLE: environment variable not found"
        ),
        "{e}"
    );
    let e = anonymous
        .header_file("/nonexistent/headers")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot read header file /nonexistent/headers"),
        "{e}"
    );
}

#[test]
fn zero_interval_is_rejected() {
    let e = DriftWatcher::builder(
        Tree::from_node(&y("a: 1")).unwrap(),
        Arc::new(FileSource::new("x.json", Format::Json)),
    )
    .interval(Duration::ZERO)
    .build()
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "live source file x.json: watch interval must be greater than zero"
    );
}

/// A `MakeWriter` keeping every formatted event in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn tracing_events_tell_each_transition_and_never_a_secret() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .without_time()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let desired = y("replicas: 3\npassword: canary-tr4ce\n");
    let source = Arc::new(Scripted {
        docs: Mutex::new(vec![
            Ok(desired.clone()),
            Ok(y("replicas: 2\npassword: other-canary-tr4ce\n")),
            Err("connection refused".to_owned()),
            Ok(desired.clone()),
        ]),
    });
    let watcher = DriftWatcher::builder(Tree::from_node(&desired).unwrap(), source)
        .interval(Duration::from_secs(10))
        .name("web")
        .build()
        .unwrap();
    watcher
        .run(tokio::time::sleep(Duration::from_secs(35)))
        .await;
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for needle in [
        "drift check",
        "drift appeared",
        "detected_within_ms=10000",
        "drift check failed",
        "connection refused",
        "drift live source recovered",
        "drift cleared",
        "config=web",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    assert!(!text.contains("tr4ce"), "a secret reached the log:\n{text}");
}
