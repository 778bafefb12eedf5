//! A real HTTPS server on loopback with a freshly generated self-signed
//! certificate (rcgen, rustls), for testing clients that must speak TLS.
//!
//! Each connection gets one response (with `Content-Length`, then close).
//! The server runs on its own thread and runtime, so sync tests (that
//! start a binary) and async tests can both use it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// The path and query, as sent.
    pub path: String,
    /// The header lines, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (read by `Content-Length`).
    pub body: Vec<u8>,
}

impl Request {
    /// The value of the first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: status, extra headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Extra header lines (`Content-Length` is added).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status` and `body`, no extra headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Adds a header line.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// An HTTPS server on `127.0.0.1` whose certificate is valid for
/// `localhost` and `127.0.0.1`, signed by nobody: a client trusts it only
/// when given [`TlsServer::ca_pem`].
///
/// ```
/// use rollgate_test::tls::{Response, TlsServer};
/// let server = TlsServer::start(|_| Response::new(200, "ok")).unwrap();
/// assert!(server.url("/x").starts_with("https://127.0.0.1:"));
/// assert!(server.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
pub struct TlsServer {
    addr: SocketAddr,
    ca_pem: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsServer {
    /// Starts the server; `handler` answers every request.
    pub fn start(
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let other = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                .map_err(|e| other(&e))?;
        let ca_pem = certified.cert.pem();
        let cert = certified.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .map_err(|e| other(&e))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| other(&e))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| other(&e))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let handler: Arc<Handler> = Arc::new(handler);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tls-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let serve = async {
                        loop {
                            let Ok((tcp, _)) = listener.accept().await else {
                                continue;
                            };
                            let (acceptor, handler, seen) =
                                (acceptor.clone(), Arc::clone(&handler), Arc::clone(&seen));
                            tokio::spawn(async move {
                                // A client that rejects the certificate ends here.
                                if let Ok(tls) = acceptor.accept(tcp).await {
                                    let _ = serve_one(tls, &*handler, &seen).await;
                                }
                            });
                        }
                    };
                    tokio::select! {
                        () = serve => {}
                        _ = stopped => {}
                    }
                });
            })?;
        Ok(TlsServer {
            addr,
            ca_pem,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The self-signed certificate, PEM: the one root a client must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve_one<S>(
    mut io: S,
    handler: &Handler,
    seen: &Mutex<Vec<Request>>,
) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        let n = io.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let request = Request {
        method,
        path,
        headers,
        body,
    };
    let response = handler(&request);
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(request);
    let mut out = format!("HTTP/1.1 {} X\r\n", response.status);
    for (n, v) in &response.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.body.len()
    ));
    io.write_all(out.as_bytes()).await?;
    io.write_all(&response.body).await?;
    io.shutdown().await
}
