//! `PostgresStore` on a real PostgreSQL server.
//!
//! The server comes from `scripts/postgres.sh run cargo nextest ...`, which
//! sets `ROLLGATE_TEST_POSTGRES_URL`. Without it these tests fail when
//! `ROLLGATE_REQUIRE_POSTGRES` is set (CI sets it) and otherwise skip loudly.
#![cfg(feature = "postgres")]

use std::error::Error as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rollgate_deploy::{
    Error, Event, PostgresStore, RolloutRequest, StateStore, Strategy, Writer, error_chain,
};
use rollgate_test::conformance;

/// The server's URL, or `None` (after a loud message) when a developer runs
/// the tests without one.
fn server() -> Option<String> {
    match std::env::var("ROLLGATE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var_os("ROLLGATE_REQUIRE_POSTGRES").is_some() {
                panic!(
                    "ROLLGATE_REQUIRE_POSTGRES is set but ROLLGATE_TEST_POSTGRES_URL is not: \
                     run the tests through `bash scripts/postgres.sh run ...`"
                );
            }
            eprintln!(
                "\n*** SKIPPED: no PostgreSQL. Run `bash scripts/postgres.sh run cargo nextest run \
                 -p rollgate-deploy --all-features` to test PostgresStore for real. ***\n"
            );
            None
        }
    }
}

/// A fresh, empty database on the server; its URL.
async fn fresh_database(server: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "rg_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let (client, conn) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test server: {e}"));
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    let (base, _) = server
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("the test URL has no database part"));
    format!("{base}/{name}")
}

fn password_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, r)| r);
    let userinfo = after_scheme.split_once('@').map_or("", |(u, _)| u);
    let password = userinfo.split_once(':').map_or("", |(_, p)| p);
    assert!(
        password.len() >= 8,
        "the test server's URL must carry a real password (scripts/postgres.sh makes one)"
    );
    password.to_owned()
}

fn request(version: &str) -> RolloutRequest {
    let plan = Strategy::AllAtOnce
        .compile(&rollgate_test::targets(3), &Default::default())
        .unwrap();
    RolloutRequest::new("web", rollgate_test::artifact(version), plan, "tester")
}

#[tokio::test]
async fn postgres_store_conforms() {
    let Some(server) = server() else { return };
    conformance::run_all(|| {
        let server = server.clone();
        async move {
            let url = fresh_database(&server).await;
            Arc::new(PostgresStore::connect(&url).await.unwrap()) as Arc<dyn StateStore>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_fence_is_rejected_when_two_stores_race_on_one_rollout() {
    let Some(server) = server() else { return };
    let url = fresh_database(&server).await;
    // Two instances: two writer connections, two controllers.
    let a = PostgresStore::connect(&url).await.unwrap();
    let b = PostgresStore::connect(&url).await.unwrap();
    for _ in 0..5 {
        conformance::a_stale_fence_loses_the_race_to_a_new_controller(&a, &b).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_of_two_stores_gets_a_contested_lease() {
    let Some(server) = server() else { return };
    let url = fresh_database(&server).await;
    let a = PostgresStore::connect(&url).await.unwrap();
    let b = PostgresStore::connect(&url).await.unwrap();
    for _ in 0..10 {
        let id = a.create(&request("v2")).await.unwrap().id;
        let ttl = Duration::from_secs(60);
        let (ra, rb) = tokio::join!(a.lease(id, "a", ttl), b.lease(id, "b", ttl));
        match (&ra, &rb) {
            (Ok(_), Err(Error::LeaseHeld { owner, .. })) => assert_eq!(owner, "a"),
            (Err(Error::LeaseHeld { owner, .. }), Ok(_)) => assert_eq!(owner, "b"),
            other => panic!("exactly one lease must win: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_and_leave_no_gaps() {
    let Some(server) = server() else { return };
    let url = fresh_database(&server).await;
    let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let mut ids = Vec::new();
    for i in 0..4 {
        let id = store.create(&request(&format!("v{i}"))).await.unwrap().id;
        let fence = store.lease(id, "c", Duration::from_secs(60)).await.unwrap();
        ids.push((id, fence));
    }
    let mut tasks = Vec::new();
    for n in 0..200usize {
        let store = store.clone();
        let (id, fence) = ids[n % ids.len()];
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    id,
                    Writer::Controller { owner: "c", fence },
                    &[
                        Event::BakeElapsed { phase: n },
                        Event::BakeElapsed { phase: n },
                    ],
                )
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for (id, _) in ids {
        let seqs: Vec<u64> = store
            .events(id, 0)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn migrations_run_once_and_a_newer_schema_is_refused() {
    let Some(server) = server() else { return };
    let url = fresh_database(&server).await;
    // Two stores migrating one empty database at once: both succeed.
    let (a, b) = tokio::join!(PostgresStore::connect(&url), PostgresStore::connect(&url));
    let (a, _b) = (a.unwrap(), b.unwrap());
    let id = a.create(&request("v2")).await.unwrap().id;
    drop(a);
    let again = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(again.request(id).await.unwrap(), request("v2"));
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let versions: Vec<i32> = client
        .query("SELECT version FROM rollgate_schema ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2]);
    client
        .batch_execute("INSERT INTO rollgate_schema (version) VALUES (99)")
        .await
        .unwrap();
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert!(
        err.to_string().contains("schema version 99"),
        "{}",
        error_chain(&err)
    );
}

#[tokio::test]
async fn a_version_1_database_is_upgraded_to_the_outbox_schema() {
    let Some(server) = server() else { return };
    let url = fresh_database(&server).await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let old = store.create(&request("v1")).await.unwrap().id;
    store
        .append(old, Writer::Person("me"), &[Event::PauseRequested])
        .await
        .unwrap();
    drop(store);
    // Back to schema 1: what a store written before the outbox looks like.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "DROP TABLE outbox; DROP TABLE notify_routes; DELETE FROM rollgate_schema WHERE version = 2",
        )
        .await
        .unwrap();
    let store = PostgresStore::connect(&url).await.unwrap();
    assert_eq!(store.request(old).await.unwrap(), request("v1"));
    assert_eq!(store.events(old, 0).await.unwrap().len(), 1);
    let id = store
        .create(
            &request("v2").with_notify([rollgate_deploy::Destination::new("http://127.0.0.1:9/")]),
        )
        .await
        .unwrap()
        .id;
    let f = store.lease(id, "a", Duration::from_secs(30)).await.unwrap();
    store
        .append_notifying(
            id,
            Writer::Controller {
                owner: "a",
                fence: f,
            },
            &[Event::ControllerStarted {
                owner: "a".into(),
                fence: f.0,
            }],
            &[Some(rollgate_deploy::NotifyKind::Started)],
        )
        .await
        .unwrap();
    assert_eq!(store.notifications(None).await.unwrap().len(), 1);
    let versions: Vec<i32> = client
        .query("SELECT version FROM rollgate_schema ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2]);
}

#[tokio::test]
async fn the_password_never_shows_in_debug_or_errors() {
    let Some(server) = server() else { return };
    let url = fresh_database(&server).await;
    let password = password_of(&url);
    let store = PostgresStore::connect(&url).await.unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains(&password), "{debug}");
    assert!(debug.contains(":***@"), "{debug}");
    assert!(!store.url().contains(&password));

    let planted = "planted-Secret-4711";
    let mut texts = Vec::new();
    let mut record = |e: &Error| {
        assert!(e.source().is_some() || !e.to_string().is_empty());
        texts.push(format!("{e}\n{e:?}\n{}", error_chain(e)));
    };
    // The wrong password, against the real server.
    let wrong = url.replacen(&password, planted, 1);
    record(&PostgresStore::connect(&wrong).await.unwrap_err());
    // The right password on a port where nothing listens.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nowhere = format!("postgres://rollgate:{planted}@127.0.0.1:{closed}/x");
    record(&PostgresStore::connect(&nowhere).await.unwrap_err());
    // A URL the parser refuses.
    record(
        &PostgresStore::connect(&format!(
            "postgres://rollgate:{planted}@127.0.0.1:notaport/x"
        ))
        .await
        .unwrap_err(),
    );
    // A failing query on a live store.
    let err = store
        .events(rollgate_deploy::RolloutId(77), 0)
        .await
        .unwrap_err();
    record(&err);
    for t in &texts {
        assert!(!t.contains(planted), "{t}");
        assert!(!t.contains(&password), "{t}");
    }
    assert!(
        texts[0].contains("password authentication failed"),
        "the wrong password is reported as such: {}",
        texts[0]
    );
    assert!(texts[1].contains("cannot connect"), "{}", texts[1]);
    assert!(texts[2].contains("PostgreSQL URL"), "{}", texts[2]);
}

/// The server closes the store's connections, as a restart does: the calls
/// that find them closed fail, and the next ones connect again. Found by
/// the real-process chaos suite (rollgate-cli's tests/serve_chaos.rs): after
/// PostgreSQL was stopped and started, every `rollgate serve` answered
/// "connection closed" until it was restarted.
#[tokio::test]
async fn the_store_reconnects_after_the_server_closes_its_connections() {
    let Some(server) = server() else {
        return;
    };
    let url = fresh_database(&server).await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let id = store.create(&request("v2")).await.unwrap().id;
    let db = url.rsplit_once('/').unwrap().1.to_owned();
    let (admin, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let killed = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .unwrap();
    assert!(killed >= 2, "the store's connections: {killed}");
    let mut last = String::new();
    for _ in 0..50 {
        let read = store.events(id, 0).await;
        let written = store
            .append(id, Writer::Person("alice"), &[Event::PauseRequested])
            .await;
        match (read, written) {
            (Ok(_), Ok(_)) => {
                let log = store.events(id, 0).await.unwrap();
                assert!(log.iter().all(|r| r.event == Event::PauseRequested));
                return;
            }
            (r, w) => last = format!("read: {:?}, append: {:?}", r.err(), w.err()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store never reconnected: {last}");
}
