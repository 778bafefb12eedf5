//! `WebhookNotifier` against a real HTTP receiver (axum on loopback): the
//! signature verifies, failures and timeouts are retried, the event id
//! stays the same, credentials never show.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use rollgate_deploy::*;
use rollgate_test::{FakeDeployer, artifact, targets};

/// What the receiver got: headers and the raw body.
#[derive(Clone, Debug)]
struct Got {
    headers: HeaderMap,
    body: Bytes,
}

/// A receiver answering each request with the next status of `script`
/// (then 200), sleeping `delay[i]` first when given.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    script: Arc<Mutex<Vec<(StatusCode, Duration)>>>,
    /// When set: the answers to each event id's first attempts (then 200).
    per_event: Arc<Mutex<Option<Vec<StatusCode>>>>,
    seen: Arc<Mutex<std::collections::BTreeMap<String, usize>>>,
}

impl Receiver {
    async fn start(self) -> (String, Self) {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let me = me.clone();
                async move {
                    let event = headers
                        .get("x-rollgate-event-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    me.got.lock().unwrap().push(Got { headers, body });
                    let scripted = me.per_event.lock().unwrap().clone();
                    if let Some(answers) = scripted {
                        let mut seen = me.seen.lock().unwrap();
                        let n = seen.entry(event).or_default();
                        *n += 1;
                        return answers.get(*n - 1).copied().unwrap_or(StatusCode::OK);
                    }
                    let next = {
                        let mut s = me.script.lock().unwrap();
                        (!s.is_empty()).then(|| s.remove(0))
                    };
                    let (status, delay) = next.unwrap_or((StatusCode::OK, Duration::ZERO));
                    tokio::time::sleep(delay).await;
                    status
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/hook"), self)
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }
}

fn header(g: &Got, name: &str) -> String {
    g.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn json(g: &Got) -> serde_json::Value {
    serde_json::from_slice(&g.body).unwrap()
}

/// Runs a two-target all-at-once rollout on a memory store with `notify`.
async fn rolled_out(notify: Vec<Destination>) -> (Arc<MemoryStore>, RolloutId) {
    let store = Arc::new(MemoryStore::new());
    let t = targets(2);
    let v1 = artifact("v1");
    store.register_artifact(&v1).await.unwrap();
    let deployer = FakeDeployer::new().with_running(&t, &v1);
    let plan = Strategy::AllAtOnce
        .compile(&t, &PhaseDefaults::default())
        .unwrap();
    let req = RolloutRequest::new("web", artifact("v2"), plan, "alice").with_notify(notify);
    let report = Executor::new(store.clone(), Arc::new(deployer))
        .submit(req)
        .await
        .unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    (store, report.id)
}

fn quick(attempts: u32) -> DispatchConfig {
    let mut retry = RetryPolicy::default().with_seed(17);
    retry.max_attempts = attempts;
    retry.initial_backoff = Duration::from_millis(20);
    retry.max_backoff = Duration::from_millis(200);
    DispatchConfig::default()
        .with_owner("test-dispatcher")
        .with_retry(retry)
        .with_timeout(Duration::from_millis(500))
}

fn secret_file(dir: &tempfile::TempDir, secret: &str) -> std::path::PathBuf {
    let path = dir.path().join("hook.secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}

#[tokio::test]
async fn signed_notifications_verify_and_500s_are_retried_with_the_same_event_id() {
    let (url, rx) = Receiver::default().start().await;
    *rx.per_event.lock().unwrap() = Some(vec![
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::SERVICE_UNAVAILABLE,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let secret = "whsec-test-4711";
    let (store, id) = rolled_out(vec![
        Destination::new(&url).with_secret_file(secret_file(&dir, secret)),
    ])
    .await;
    let d = Dispatcher::new(
        store.clone(),
        Arc::new(WebhookNotifier::new().unwrap()),
        quick(5),
    );
    assert_eq!(d.deliver_pending().await.unwrap(), 3);
    let got = rx.got();
    assert_eq!(got.len(), 9, "3 notifications, each sent 3 times");
    for g in &got {
        let sig = header(g, "x-rollgate-signature");
        assert!(
            verify_signature(secret.as_bytes(), &g.body, &sig),
            "signature {sig} does not verify"
        );
        assert!(!verify_signature(b"wrong", &g.body, &sig));
        assert_eq!(header(g, "content-type"), "application/json");
        let doc = json(g);
        assert_eq!(doc["event_id"], header(g, "x-rollgate-event-id"));
        assert_eq!(doc["event"], header(g, "x-rollgate-event"));
        assert_eq!(doc["rollout"], id.0);
        assert_eq!(doc["service"], "web");
        assert_eq!(doc["artifact"]["version"], "v2");
    }
    // Each event failed twice (500, then 503) and came through the third
    // time, with one event id on all three attempts.
    let mut per_event = std::collections::BTreeMap::<String, Vec<String>>::new();
    for g in &got {
        per_event
            .entry(header(g, "x-rollgate-event-id"))
            .or_default()
            .push(header(g, "x-rollgate-event"));
    }
    let mut kinds: Vec<(String, usize)> = per_event
        .values()
        .map(|k| (k[0].clone(), k.len()))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            ("finished".to_owned(), 3),
            ("phase_promoted".to_owned(), 3),
            ("started".to_owned(), 3)
        ],
        "{per_event:?}"
    );
    assert!(per_event.values().all(|k| k.iter().all(|x| *x == k[0])));
    let finished = got
        .iter()
        .find(|g| header(g, "x-rollgate-event") == "finished")
        .unwrap();
    assert_eq!(json(finished)["outcome"], "succeeded");
    let ns = store.notifications(Some(id)).await.unwrap();
    assert!(ns.iter().all(|n| n.delivered_ms.is_some()));
    assert!(ns.iter().all(|n| n.attempts == 2), "{ns:?}");
    assert!(
        ns.iter().all(|n| n
            .last_error
            .as_deref()
            .unwrap()
            .contains("HTTP 503 Service Unavailable")),
        "{ns:?}"
    );
    // Every later pass finds nothing to send.
    assert_eq!(d.deliver_pending().await.unwrap(), 0);
    assert_eq!(rx.got().len(), 9);
}

#[tokio::test]
async fn a_receiver_that_times_out_is_retried_and_delivered() {
    let (url, rx) = Receiver::default().start().await;
    rx.script
        .lock()
        .unwrap()
        .push((StatusCode::OK, Duration::from_secs(3)));
    let (store, id) = rolled_out(vec![
        Destination::new(&url)
            .with_format(NotifyFormat::Slack)
            .with_events([NotifyKind::Finished]),
    ])
    .await;
    let d = Dispatcher::new(
        store.clone(),
        Arc::new(WebhookNotifier::new().unwrap()),
        quick(3),
    );
    assert_eq!(d.deliver_pending().await.unwrap(), 1);
    let got = rx.got();
    assert_eq!(got.len(), 2, "the slow attempt, then the retry");
    let doc = json(&got[1]);
    let text = doc["text"].as_str().unwrap();
    assert!(
        text.contains("web v2") && text.contains("finished"),
        "{text}"
    );
    assert_eq!(doc["blocks"][0]["text"]["text"], text);
    assert!(
        header(&got[1], "x-rollgate-signature").is_empty(),
        "no secret, no signature"
    );
    let n = &store.notifications(Some(id)).await.unwrap()[0];
    assert_eq!(n.attempts, 1);
    assert_eq!(n.last_error.as_deref(), Some("no answer within 500ms"));
}

#[tokio::test]
async fn credentials_in_a_url_and_a_missing_secret_never_show() {
    let (url, rx) = Receiver::default().start().await;
    for _ in 0..10 {
        rx.script
            .lock()
            .unwrap()
            .push((StatusCode::INTERNAL_SERVER_ERROR, Duration::ZERO));
    }
    let with_password = url.replace("http://", "http://hookuser:planted-Pass-99@");
    let (store, id) = rolled_out(vec![
        Destination::new(&with_password).with_events([NotifyKind::Finished]),
        Destination::new(&url)
            .with_events([NotifyKind::Finished])
            .with_secret_env("ROLLGATE_TEST_SURELY_UNSET_SECRET"),
    ])
    .await;
    let name = store.request(id).await.unwrap().notify[0].name.clone();
    assert!(!name.contains("planted"), "{name}");
    let d = Dispatcher::new(
        store.clone(),
        Arc::new(WebhookNotifier::new().unwrap()),
        quick(2),
    );
    assert_eq!(d.deliver_pending().await.unwrap(), 0);
    let ns = store.notifications(Some(id)).await.unwrap();
    let e0 = ns[0].last_error.clone().unwrap();
    assert!(
        e0.contains("HTTP 500") && e0.contains("***@127.0.0.1"),
        "{e0}"
    );
    assert!(!e0.contains("planted-Pass-99"), "{e0}");
    let e1 = ns[1].last_error.clone().unwrap();
    assert_eq!(
        e1,
        "secret: environment variable ROLLGATE_TEST_SURELY_UNSET_SECRET is not set"
    );
    assert_eq!(
        rx.got().len(),
        2,
        "only the first destination was reached, twice"
    );
    // Unreachable receivers fail with the OS's reason and no URL credentials.
    let (store, id) = rolled_out(vec![
        Destination::new("http://u:planted-Pass-99@127.0.0.1:9/x")
            .with_events([NotifyKind::Finished]),
    ])
    .await;
    let d = Dispatcher::new(
        store.clone(),
        Arc::new(WebhookNotifier::new().unwrap()),
        quick(1),
    );
    assert_eq!(d.deliver_pending().await.unwrap(), 0);
    let e = store.notifications(Some(id)).await.unwrap()[0]
        .last_error
        .clone()
        .unwrap();
    assert!(e.starts_with("POST http://***@127.0.0.1:9/x: "), "{e}");
    assert!(!e.contains("planted"), "{e}");
}
