//! The HTTP [`Notifier`]: POSTs signed JSON (or Slack) bodies (feature `webhook`).

use std::time::Duration;

use async_trait::async_trait;

use crate::notify::{Notifier, Outgoing, SendError, payload, redact_url, sign};
use crate::{Cause, Error};

/// POSTs each notification to its destination's URL.
///
/// Headers: `Content-Type: application/json`, `X-Rollgate-Event-Id` (the
/// same on every attempt), `X-Rollgate-Event` (the kind), and, when the
/// destination has a secret, `X-Rollgate-Signature: sha256=<hex>` over the
/// exact body bytes (see [`sign`]). A 2xx answer is delivery; anything else,
/// a refused connection or a timeout is retried by the
/// [`Dispatcher`](crate::Dispatcher). Redirects are not followed (a signed
/// body goes only where it was configured to go). The secret is read at
/// each attempt and never logged; error messages name the URL with its
/// credentials redacted.
///
/// ```no_run
/// use std::sync::Arc;
/// use rollgate_deploy::{DispatchConfig, Dispatcher, MemoryStore, WebhookNotifier};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let store = Arc::new(MemoryStore::new());
/// let d = Dispatcher::new(store, Arc::new(WebhookNotifier::new()?), DispatchConfig::default());
/// d.deliver_pending().await?;
/// # Ok::<(), rollgate_deploy::Error>(()) }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    client: reqwest::Client,
}

impl WebhookNotifier {
    /// A notifier with its own HTTP client (connect timeout 10 s).
    pub fn new() -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("rollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::Store(
                    "notifications: cannot build the HTTP client".into(),
                    Some(Cause::new(e.without_url())),
                )
            })?;
        Ok(Self { client })
    }
}

/// `e` and its causes on one line, without the URL reqwest would print.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn send(&self, out: &Outgoing) -> Result<(), SendError> {
        let dest = &out.destination;
        let shown = redact_url(&dest.url);
        let body = payload(out, crate::store::now_ms());
        let mut req = self
            .client
            .post(&dest.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Rollgate-Event-Id", out.notification.event_id())
            .header("X-Rollgate-Event", out.notification.kind.as_str());
        if let Some(secret) = &dest.secret {
            let key = secret.read().map_err(SendError)?;
            req = req.header("X-Rollgate-Signature", sign(&key, &body));
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| SendError(format!("POST {shown}: {}", describe(e))))?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(SendError(format!("POST {shown}: HTTP {status}")))
        }
    }
}
