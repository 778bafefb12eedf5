//! Process-wide install: one test per binary, since globals can be set once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};

use rollgate_telemetry::{Error, init};

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

fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut conn = TcpStream::connect(addr)?;
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    conn.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn install_sets_globals_serves_metrics_and_the_guard_stops_everything() {
    let logs = Capture::default();
    let guard = init("svc")
        .log_filter_env(None)
        .version("3.0.0")
        .cohort("baseline")
        .log_writer(logs.clone())
        .serve_metrics("127.0.0.1:0".parse().expect("addr"))
        .install()
        .expect("first install succeeds");
    let addr = guard.metrics_addr().expect("serving");

    // Library code just uses the facades.
    metrics::counter!("jobs_done").increment(2);
    tracing::info!(job = 7, "job finished");

    let body = get(addr, "/metrics").expect("scrape");
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("Content-Type: text/plain; version=0.0.4"));
    assert!(
        body.contains("jobs_done_total{cohort=\"baseline\",service=\"svc\",version=\"3.0.0\"} 2")
    );
    assert!(get(addr, "/nope").expect("404").starts_with("HTTP/1.1 404"));
    let line = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(line.contains("\"message\":\"job finished\""), "{line}");

    let again = init("svc").log_writer(std::io::sink()).install();
    assert!(matches!(again, Err(Error::AlreadyInstalled { .. })));

    drop(guard);
    assert!(
        get(addr, "/metrics").is_err(),
        "listener stopped with the guard"
    );
}
