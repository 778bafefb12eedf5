//! The metrics listener (feature `prometheus`): hyper's HTTP/1 server
//! answering `GET /metrics`, on a thread and current-thread tokio runtime
//! of its own, so it works the same with or without the application's
//! runtime, and a slow client never holds up a scrape.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::{Error, MetricsRegistry};

/// How long a client may take to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// A running metrics listener; [`stop`](Self::stop) or drop ends it.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free one) and serves `registry` at
    /// `/metrics` (`GET` and `HEAD`; other paths are 404, other methods 405).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use rollgate_telemetry::{MetricsRegistry, MetricsServer};
    ///
    /// let registry = MetricsRegistry::default();
    /// metrics::with_local_recorder(&registry.recorder(), || metrics::counter!("jobs").increment(1));
    /// let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), registry)?;
    /// let mut conn = std::net::TcpStream::connect(server.local_addr()).unwrap();
    /// conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    /// let mut body = String::new();
    /// conn.read_to_string(&mut body).unwrap();
    /// assert!(body.starts_with("HTTP/1.1 200 OK"));
    /// assert!(body.contains("jobs_total 1"));
    /// server.stop();
    /// # Ok::<(), rollgate_telemetry::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Io`] when the address cannot be bound (or the listener's
    /// thread or runtime cannot be started).
    pub fn start(addr: SocketAddr, registry: MetricsRegistry) -> Result<Self, Error> {
        let io_err = |what| {
            move |source| Error::Io {
                what,
                path: addr.to_string(),
                source,
            }
        };
        let listener =
            std::net::TcpListener::bind(addr).map_err(io_err("bind metrics listener on"))?;
        let addr = listener
            .local_addr()
            .map_err(io_err("bind metrics listener on"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("bind metrics listener on"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(io_err("start the metrics listener's runtime for"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("rollgate-metrics".into())
            .spawn(move || runtime.block_on(serve(listener, registry, stopped)))
            .map_err(io_err("spawn metrics listener thread for"))?;
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the listener (open connections are closed) and waits for its
    /// thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Accepts connections until `stopped`; each is served by its own task.
async fn serve(
    listener: std::net::TcpListener,
    registry: MetricsRegistry,
    stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    tokio::spawn(accept(listener, registry));
    // A send or a dropped sender both mean stop. Tasks still running when
    // the runtime is dropped (the accept loop, open connections) are
    // cancelled, which closes their sockets.
    let _ = stopped.await;
}

async fn accept(listener: tokio::net::TcpListener, registry: MetricsRegistry) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors and the like: try again shortly.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let response = respond(&request, &registry);
                async move { Ok::<_, Infallible>(response) }
            });
            // One request per connection (a scrape every few seconds gains
            // nothing from keep-alive), header names as usually written.
            let connection = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .title_case_headers(true)
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            // A client that stays connected is dropped after the timeout.
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

fn respond<B>(request: &Request<B>, registry: &MetricsRegistry) -> Response<Full<Bytes>> {
    let text = |status: StatusCode, body: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if request.uri().path() != "/metrics" {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    let mut r = Response::new(Full::new(Bytes::from(registry.render())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    fn exchange(addr: SocketAddr, request: &str) -> String {
        let mut conn = TcpStream::connect(addr).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        conn.write_all(request.as_bytes()).expect("send");
        let mut out = String::new();
        conn.read_to_string(&mut out).expect("answer within 3 s");
        out
    }

    #[test]
    fn a_silent_client_does_not_hold_up_a_scrape() {
        let server =
            MetricsServer::start("127.0.0.1:0".parse().unwrap(), MetricsRegistry::default())
                .expect("start");
        // Half a request line, then nothing: the old one-connection-at-a-time
        // listener waited 5 s on it before serving anyone else.
        let mut silent = TcpStream::connect(server.local_addr()).expect("connect");
        silent.write_all(b"GET /met").expect("send");
        let answer = exchange(
            server.local_addr(),
            "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        server.stop();
    }

    #[test]
    fn head_is_served_and_other_methods_are_refused() {
        let server =
            MetricsServer::start("127.0.0.1:0".parse().unwrap(), MetricsRegistry::default())
                .expect("start");
        let addr = server.local_addr();
        let head = exchange(addr, "HEAD /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "no body for HEAD: {head}");
        let post = exchange(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        assert!(post.contains("Allow: GET, HEAD"), "{post}");
        let bad = exchange(addr, "NONSENSE\r\n\r\n");
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
        drop(server);
        assert!(TcpStream::connect(addr).is_err(), "stopped on drop");
    }
}
