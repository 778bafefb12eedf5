//! Store conformance on every store, plus SQLite's failure modes.

use std::sync::Arc;
use std::time::Duration;

use std::error::Error as _;

use rollgate_deploy::{Error, MemoryStore, SqliteOptions, SqliteStore, StateStore, error_chain};
use rollgate_test::conformance;

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run_all(|| async { Arc::new(MemoryStore::new()) as Arc<dyn StateStore> }).await;
}

#[tokio::test]
async fn sqlite_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    let dir_path = dir.path().to_path_buf();
    conformance::run_all(|| {
        let path = dir_path.join(format!(
            "s{}.db",
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        async move { Arc::new(SqliteStore::open(path).unwrap()) as Arc<dyn StateStore> }
    })
    .await;
}

#[tokio::test]
async fn sqlite_store_conforms_with_process_crash_durability() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    let dir_path = dir.path().to_path_buf();
    let options =
        SqliteOptions::default().with_durability(rollgate_deploy::Durability::ProcessCrash);
    conformance::run_all(|| {
        let path = dir_path.join(format!("n{}.db", n.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        let options = options.clone();
        async move { Arc::new(SqliteStore::open_with(path, &options).unwrap()) as Arc<dyn StateStore> }
    })
    .await;
}

#[tokio::test]
async fn sqlite_state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let plan = rollgate_deploy::Strategy::AllAtOnce
        .compile(&rollgate_test::targets(2), &Default::default())
        .unwrap();
    let req =
        rollgate_deploy::RolloutRequest::new("web", rollgate_test::artifact("v2"), plan, "me");
    let id = {
        let s = SqliteStore::open(&path).unwrap();
        let id = s.create(&req).await.unwrap().id;
        s.append(
            id,
            rollgate_deploy::Writer::Person("me"),
            &[rollgate_deploy::Event::PauseRequested],
        )
        .await
        .unwrap();
        id
    };
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.request(id).await.unwrap(), req);
    assert_eq!(
        s.events(id, 0).await.unwrap()[0].event,
        rollgate_deploy::Event::PauseRequested
    );
}

#[tokio::test]
async fn a_version_1_sqlite_file_is_upgraded_to_the_outbox_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let plan = rollgate_deploy::Strategy::AllAtOnce
        .compile(&rollgate_test::targets(2), &Default::default())
        .unwrap();
    let req =
        rollgate_deploy::RolloutRequest::new("web", rollgate_test::artifact("v2"), plan, "me");
    let old = {
        let s = SqliteStore::open(&path).unwrap();
        let id = s.create(&req).await.unwrap().id;
        s.append(
            id,
            rollgate_deploy::Writer::Person("me"),
            &[rollgate_deploy::Event::PauseRequested],
        )
        .await
        .unwrap();
        id
    };
    // Back to schema 1: what a file written before the outbox looks like.
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("DROP TABLE outbox; DROP TABLE notify_routes; PRAGMA user_version = 1;")
            .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.request(old).await.unwrap(), req);
    assert_eq!(s.events(old, 0).await.unwrap().len(), 1);
    let id = s
        .create(
            &req.clone()
                .with_notify([rollgate_deploy::Destination::new("http://127.0.0.1:9/")]),
        )
        .await
        .unwrap()
        .id;
    let f = s.lease(id, "a", Duration::from_secs(30)).await.unwrap();
    s.append_notifying(
        id,
        rollgate_deploy::Writer::Controller {
            owner: "a",
            fence: f,
        },
        &[rollgate_deploy::Event::ControllerStarted {
            owner: "a".into(),
            fence: f.0,
        }],
        &[Some(rollgate_deploy::NotifyKind::Started)],
    )
    .await
    .unwrap();
    assert_eq!(s.notifications(None).await.unwrap().len(), 1);
    drop(s);
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
}

#[tokio::test]
async fn a_locked_sqlite_file_reports_busy_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let store = SqliteStore::open_with(
        &path,
        &SqliteOptions::default().with_busy_timeout(Duration::from_millis(100)),
    )
    .unwrap();
    store
        .register_artifact(&rollgate_test::artifact("v1"))
        .await
        .unwrap();
    // Another process holds the write lock.
    let mut other = rusqlite_lock(&path);
    let err = store
        .register_artifact(&rollgate_test::artifact("v2"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StoreBusy(..)), "{err}");
    assert!(
        err.to_string().contains("locked by another process"),
        "{err}"
    );
    // rusqlite's own words come through `source()`, not the message.
    assert!(error_chain(&err).contains("database is locked"), "{err:?}");
    drop(other.stdin.take());
    other.wait().unwrap();
    // The earlier record is intact and the store works again.
    assert!(
        store
            .artifact(&rollgate_test::artifact("v1").digest)
            .await
            .unwrap()
            .is_some()
    );
    store
        .register_artifact(&rollgate_test::artifact("v2"))
        .await
        .unwrap();
}

fn rusqlite_lock(path: &std::path::Path) -> std::process::Child {
    // A separate process, as in production: python's sqlite3 holds BEGIN EXCLUSIVE.
    let script = format!(
        "import sqlite3,time,sys\nc=sqlite3.connect({:?},isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nprint('locked',flush=True)\nsys.stdin.read()\n",
        path.display().to_string()
    );
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    child
}

#[tokio::test]
async fn a_file_that_is_not_a_store_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(
        &path,
        "this is not sqlite, it is a grocery list with enough bytes to look like a header\n"
            .repeat(20),
    )
    .unwrap();
    let err = SqliteStore::open(&path).err().expect("not a database");
    assert!(
        err.to_string().contains("is not a rollgate state file"),
        "{err}"
    );
    assert!(err.to_string().contains("notes.txt"), "{err}");
}

#[tokio::test]
async fn an_unwritable_location_is_named() {
    let err = SqliteStore::open("/proc/rollgate-test/state.db")
        .err()
        .expect("cannot open");
    assert!(
        err.to_string().contains("/proc/rollgate-test/state.db"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_fence_in_a_group_commit_spoils_nothing_else() {
    use rollgate_deploy::{Event, Fence, Writer};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("g.db")).unwrap());
    let targets = rollgate_test::targets(200);
    let plan = rollgate_deploy::Strategy::AllAtOnce
        .compile(&targets, &Default::default())
        .unwrap();
    let req =
        rollgate_deploy::RolloutRequest::new("web", rollgate_test::artifact("v2"), plan, "me");
    let id = store.create(&req).await.unwrap().id;
    let fence = store
        .lease(id, "ctl", Duration::from_secs(60))
        .await
        .unwrap();
    // 200 appends at once; every fifth carries a stale fence.
    let mut tasks = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let (store, t) = (store.clone(), t.clone());
        let f = if i % 5 == 0 {
            Fence(fence.0 + 7)
        } else {
            fence
        };
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    id,
                    Writer::Controller {
                        owner: "ctl",
                        fence: f,
                    },
                    &[Event::TargetDeployed { target: t }],
                )
                .await
        }));
    }
    let mut ok = 0;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                assert_eq!(i % 5, 0, "only stale appends fail: {e}");
                assert!(matches!(e, Error::StaleFence { .. }), "{e}");
            }
        }
    }
    assert_eq!(ok, 160);
    let events = store.events(id, 0).await.unwrap();
    assert_eq!(events.len(), 160);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=160).collect::<Vec<u64>>(),
        "no gaps"
    );
}

#[tokio::test]
async fn sqlite_errors_keep_rusqlite_as_their_source() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, "these are notes, not a database\n".repeat(200)).unwrap();
    let err = match SqliteStore::open(&path) {
        Ok(_) => panic!("a text file opened as a state store"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Store(..)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("is not a rollgate state file"),
        "{message}"
    );
    // The cause is rusqlite's error, whole: its own message is in the chain
    // and not repeated in the top-level message.
    let source = err.source().expect("a source");
    assert_eq!(source.to_string(), "file is not a database");
    assert!(!message.contains("file is not a database"), "{message}");
    let chain = error_chain(&err);
    assert!(
        chain.ends_with("is not a rollgate state file: file is not a database"),
        "{chain}"
    );
    // Clones share the cause and compare equal.
    assert_eq!(err.clone(), err);
}
