//! `--server URL`: the rollout commands over `rollgate serve`'s HTTP API.
//!
//! [`RemoteStore`] answers the reads every command makes (requests, event
//! logs, leases, listings) from the API, and records a person's requests
//! (pause, resume, promote, abort) through it, so `status`, `list`,
//! `history`, `status --watch` and the decisions work unchanged. It never
//! drives: a controller's writes and leases are refused, and the server
//! drives what is submitted to it.

use std::time::Duration;

use async_trait::async_trait;
use rollgate_deploy::{
    Artifact, Cause, Created, Digest, Error, Event, EventRecord, Fence, LeaseInfo, ListFilter,
    Notification, NotificationId, NotifyKind, RolloutId, RolloutRequest, RolloutSummary,
    StateStore, Writer,
};
use serde_json::Value;

/// The rollout API of one `rollgate serve`.
pub(crate) struct RemoteStore {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// Why a remote store cannot do what a controller does.
fn not_remote(what: &str) -> Error {
    Error::Invalid {
        what: "--server".into(),
        reason: format!("{what} is not available over the API: the server drives rollouts"),
    }
}

impl RemoteStore {
    /// A client of the server at `base` (`http://host:port`).
    pub(crate) fn new(base: &str, token: Option<String>) -> Result<Self, Error> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Invalid {
                what: "--server".into(),
                reason: format!("{base:?} is not an http:// or https:// URL"),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                Error::Store("cannot build the HTTP client".into(), Some(Cause::new(e)))
            })?;
        Ok(Self {
            base,
            token,
            client,
        })
    }

    /// The server's URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; a JSON answer, or the server's error as an [`Error`].
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(&'static str, Vec<u8>, Option<&str>)>,
        missing: Option<RolloutId>,
    ) -> Result<(u16, Value), Error> {
        let mut url =
            reqwest::Url::parse(&format!("{}{path}", self.base)).map_err(|e| Error::Invalid {
                what: "--server".into(),
                reason: format!("{:?} is not a URL: {e}", self.base),
            })?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (k, v.as_str())));
        }
        let mut req = self.client.request(method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some((content_type, bytes, key)) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
        }
        let res = req.send().await.map_err(|e| {
            Error::Store(
                format!("{}: cannot reach the server", self.base),
                Some(Cause::new(e.without_url())),
            )
        })?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(|e| {
            Error::Store(
                format!("{}: cannot read the answer", self.base),
                Some(Cause::new(e.without_url())),
            )
        })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status < 400 {
            return Ok((status, value));
        }
        let message = value["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(match (status, missing) {
            (404, Some(id)) => Error::NotFound(format!("rollout {id}")),
            (401, _) => Error::Invalid {
                what: "API token".into(),
                reason: format!("{message} (pass --token-file FILE or set ROLLGATE_TOKEN)"),
            },
            (400..=499, _) => Error::Invalid {
                what: "request".into(),
                reason: format!("{} answered {status}: {message}", self.base),
            },
            _ => Error::Store(format!("{} answered {status}: {message}", self.base), None),
        })
    }

    async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
        missing: Option<RolloutId>,
    ) -> Result<Value, Error> {
        Ok(self
            .call(reqwest::Method::GET, path, query, None, missing)
            .await?
            .1)
    }

    /// `POST /v1/rollouts`: submits plan text; the server's rollout document.
    pub(crate) async fn submit(
        &self,
        plan: &str,
        actor: &str,
        key: Option<&str>,
        no_rollback_ok: bool,
    ) -> Result<Value, Error> {
        let mut query = vec![("actor", actor.to_owned())];
        if no_rollback_ok {
            query.push(("no_rollback_ok", "true".into()));
        }
        Ok(self
            .call(
                reqwest::Method::POST,
                "/v1/rollouts",
                &query,
                Some(("application/toml", plan.as_bytes().to_vec(), key)),
                None,
            )
            .await?
            .1)
    }

    /// The API's listing rows (`rollout list --output json`'s).
    pub(crate) async fn rows(&self, query: &[(&str, String)]) -> Result<Vec<Value>, Error> {
        match self.get("/v1/rollouts", query, None).await? {
            Value::Array(rows) => Ok(rows),
            other => Err(self.bad_answer("/v1/rollouts", &other)),
        }
    }

    fn bad_answer(&self, path: &str, got: &Value) -> Error {
        let mut shown = got.to_string();
        shown.truncate(200);
        Error::Store(
            format!("{}{path}: unexpected answer {shown}", self.base),
            None,
        )
    }

    async fn rollout(&self, id: RolloutId) -> Result<Value, Error> {
        self.get(&format!("/v1/rollouts/{id}"), &[], Some(id)).await
    }
}

fn decode<T: serde::de::DeserializeOwned>(base: &str, what: &str, v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| {
        Error::Store(
            format!("{base}: unexpected {what} in the answer"),
            Some(Cause::new(e)),
        )
    })
}

fn summary(base: &str, row: &Value) -> Result<RolloutSummary, Error> {
    Ok(RolloutSummary {
        id: RolloutId(row["id"].as_u64().unwrap_or_default()),
        service: row["service"].as_str().unwrap_or_default().to_owned(),
        artifact: Artifact {
            sbom: row["sbom"].as_str().map(str::to_owned),
            ..Artifact::new(
                row["version"].as_str().unwrap_or_default(),
                decode::<Digest>(base, "digest", row["digest"].clone())?,
            )
        },
        actor: row["actor"].as_str().unwrap_or_default().to_owned(),
        created_ms: row["created_ms"].as_i64().unwrap_or_default(),
        outcome: decode(base, "outcome", row["outcome"].clone())?,
    })
}

#[async_trait]
impl StateStore for RemoteStore {
    async fn create(&self, _: &RolloutRequest) -> Result<Created, Error> {
        Err(not_remote("creating a rollout from a request"))
    }

    async fn find_key(&self, _: &str) -> Result<Option<RolloutId>, Error> {
        Err(not_remote("looking up an idempotency key"))
    }

    async fn request(&self, id: RolloutId) -> Result<RolloutRequest, Error> {
        let mut doc = self.rollout(id).await?;
        decode(&self.base, "request", doc["request"].take())
    }

    async fn append_notifying(
        &self,
        id: RolloutId,
        writer: Writer<'_>,
        events: &[Event],
        notify: &[Option<NotifyKind>],
    ) -> Result<u64, Error> {
        if notify.iter().any(Option::is_some) {
            return Err(not_remote("a controller's write"));
        }
        let Writer::Person(actor) = writer else {
            return Err(not_remote("a controller's write"));
        };
        let mut seq = 0;
        for e in events {
            let action = match e {
                Event::PauseRequested => "pause",
                Event::ResumeRequested => "resume",
                Event::PromoteRequested => "promote",
                Event::AbortRequested => "abort",
                other => return Err(not_remote(other.action())),
            };
            let (_, answer) = self
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/rollouts/{id}/{action}"),
                    &[("actor", actor.to_owned())],
                    None,
                    Some(id),
                )
                .await?;
            seq = answer["seq"].as_u64().unwrap_or_default();
        }
        Ok(seq)
    }

    async fn events(&self, id: RolloutId, after: u64) -> Result<Vec<EventRecord>, Error> {
        let path = format!("/v1/rollouts/{id}/events");
        let log = self
            .get(&path, &[("after", after.to_string())], Some(id))
            .await?;
        decode(&self.base, "events", log)
    }

    async fn lease(&self, _: RolloutId, _: &str, _: Duration) -> Result<Fence, Error> {
        Err(not_remote("driving a rollout"))
    }

    async fn release(&self, _: RolloutId, _: Fence) -> Result<(), Error> {
        Ok(())
    }

    async fn lease_info(&self, id: RolloutId) -> Result<Option<LeaseInfo>, Error> {
        let mut doc = self.rollout(id).await?;
        decode(&self.base, "lease", doc["lease"].take())
    }

    async fn break_lease(&self, _: RolloutId, _: &str) -> Result<(), Error> {
        Err(not_remote("breaking a lease"))
    }

    async fn unfinished(&self) -> Result<Vec<RolloutId>, Error> {
        let rows = self
            .rows(&[("status", "unfinished".into()), ("limit", "0".into())])
            .await?;
        // The listing is newest first; this is oldest first.
        Ok(rows
            .iter()
            .rev()
            .filter_map(|r| r["id"].as_u64().map(RolloutId))
            .collect())
    }

    async fn list(&self, service: Option<&str>) -> Result<Vec<RolloutSummary>, Error> {
        let f = match service {
            Some(s) => ListFilter::default().with_service(s),
            None => ListFilter::default(),
        };
        self.list_where(&f).await
    }

    async fn list_where(&self, f: &ListFilter) -> Result<Vec<RolloutSummary>, Error> {
        let mut query = vec![("limit", f.limit.unwrap_or(0).to_string())];
        if let Some(s) = &f.service {
            query.push(("service", s.clone()));
        }
        match f.outcome {
            Some(Some(o)) => query.push(("status", o.as_str().to_owned())),
            Some(None) => query.push(("status", "unfinished".into())),
            None => {}
        }
        if let Some(ms) = f.since_ms {
            query.push(("since_ms", ms.to_string()));
        }
        self.rows(&query)
            .await?
            .iter()
            .map(|r| summary(&self.base, r))
            .collect()
    }

    async fn register_artifact(&self, _: &Artifact) -> Result<(), Error> {
        Err(not_remote("registering an artifact"))
    }

    async fn artifact(&self, _: &Digest) -> Result<Option<Artifact>, Error> {
        Err(not_remote("reading the artifact registry"))
    }

    // The server delivers its own outbox; a client drives no dispatcher.
    async fn claim_notifications(
        &self,
        _: &str,
        _: Duration,
        _: usize,
    ) -> Result<Vec<Notification>, Error> {
        Err(not_remote("delivering notifications"))
    }

    async fn notification_delivered(&self, _: NotificationId, _: &str) -> Result<(), Error> {
        Err(not_remote("delivering notifications"))
    }

    async fn notification_failed(
        &self,
        _: NotificationId,
        _: &str,
        _: &str,
        _: Duration,
    ) -> Result<(), Error> {
        Err(not_remote("delivering notifications"))
    }

    async fn renew_notification_claim(
        &self,
        _: NotificationId,
        _: &str,
        _: Duration,
    ) -> Result<bool, Error> {
        Err(not_remote("delivering notifications"))
    }

    /// One rollout's outbox, as `GET /v1/rollouts/{id}` shows it (error
    /// texts without credentials); every rollout's is not served.
    async fn notifications(&self, id: Option<RolloutId>) -> Result<Vec<Notification>, Error> {
        let Some(id) = id else {
            return Err(not_remote("listing every rollout's notifications"));
        };
        let mut doc = self.rollout(id).await?;
        decode(&self.base, "notifications", doc["notifications"].take())
    }
}
