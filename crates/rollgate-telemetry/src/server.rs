//! A minimal HTTP/1.1 listener serving `GET /metrics` (feature `prometheus`).
//!
//! One std thread, one connection at a time: a scrape every few seconds does
//! not need an async runtime, and the crate stays free of one.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::{Error, MetricsRegistry};

/// A running metrics listener; [`stop`](Self::stop) or drop ends it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free one) and serves `registry` at `/metrics`.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use rollgate_telemetry::{MetricsRegistry, MetricsServer};
    ///
    /// let registry = MetricsRegistry::default();
    /// metrics::with_local_recorder(&registry.recorder(), || metrics::counter!("jobs").increment(1));
    /// let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), registry)?;
    /// let mut conn = std::net::TcpStream::connect(server.local_addr()).unwrap();
    /// conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    /// let mut body = String::new();
    /// conn.read_to_string(&mut body).unwrap();
    /// assert!(body.starts_with("HTTP/1.1 200 OK"));
    /// assert!(body.contains("jobs_total 1"));
    /// server.stop();
    /// # Ok::<(), rollgate_telemetry::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound.
    pub fn start(addr: SocketAddr, registry: MetricsRegistry) -> Result<Self, Error> {
        let io_err = |source| Error::Io {
            what: "bind metrics listener on",
            path: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).map_err(io_err)?;
        let addr = listener.local_addr().map_err(io_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("rollgate-metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        serve(conn, &registry);
                    }
                }
            })
            .map_err(|source| Error::Io {
                what: "spawn metrics listener thread for",
                path: addr.to_string(),
                source,
            })?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the listener and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

fn serve(conn: TcpStream, registry: &MetricsRegistry) {
    // A slow or silent client must not block scrapes for long.
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(&conn);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Drain headers up to the blank line (bounded).
    let mut header = String::new();
    for _ in 0..100 {
        header.clear();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" || header == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            registry.render(),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n".to_owned(),
        ),
    };
    let mut out = &conn;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body.as_bytes());
    let _ = out.flush();
}
