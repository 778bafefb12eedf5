//! Filtering the usual way (`RUST_LOG`) and composing with other layers.

use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rollgate_telemetry::{DEFAULT_LOG_FILTER, Error, init};
use tracing_subscriber::layer::SubscriberExt as _;

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

impl Capture {
    fn messages(&self) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8");
        text.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
                v["message"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }
}

/// Counts the events it sees: "the user's own layer".
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counting {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_second_layer_next_to_ours_sees_every_event_while_ours_keeps_its_filter() {
    let logs = Capture::default();
    let telemetry = init("svc")
        .log_filter_env(None)
        .log_filter("info")
        .log_writer(logs.clone())
        .build()
        .expect("valid config");
    let theirs = Counting::default();
    let subscriber = tracing_subscriber::registry()
        .with(telemetry.layer())
        .with(theirs.clone());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", request_id = "r-7");
        let _e = span.enter();
        tracing::info!("order placed");
        tracing::debug!("cache miss");
        tracing::warn!("slow upstream");
    });
    // Ours: INFO and above, with the span's fields; theirs: all three.
    assert_eq!(logs.messages(), ["order placed", "slow upstream"]);
    let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(text.contains("\"request_id\":\"r-7\""), "{text}");
    assert_eq!(theirs.0.load(Ordering::Relaxed), 3);
}

#[test]
fn the_default_filter_is_info_when_nothing_sets_one() {
    let t = init("svc")
        .log_filter_env(None)
        .log_writer(std::io::sink())
        .build()
        .expect("valid config");
    assert_eq!(DEFAULT_LOG_FILTER, "info");
    assert_eq!(t.log_filter(), "info");
}

#[test]
fn a_bad_builder_filter_is_a_config_error_naming_it() {
    let e = init("svc")
        .log_filter_env(None)
        .log_filter("info,[[")
        .build()
        .expect_err("bad filter");
    assert!(
        matches!(&e, Error::Config { field: "log_filter", reason } if reason.contains("log_filter=\"info,[[\"")),
        "{e}"
    );
}

/// Runs in a child process (spawned below with a chosen environment): logs
/// one line per level on stdout through a builder filter of `debug`.
#[test]
#[ignore = "child of rust_log_replaces_the_builder_filter_and_an_unset_one_leaves_it"]
fn child_logs_one_line_per_level() {
    match init("child").log_filter("debug").build() {
        Ok(t) => tracing::dispatcher::with_default(t.dispatch(), || {
            tracing::trace!("at trace");
            tracing::debug!("at debug");
            tracing::info!("at info");
            tracing::warn!("at warn");
            tracing::error!(target: "noisy", "noisy error");
            t.flush();
        }),
        Err(e) => println!("CONFIG ERROR: {e}"),
    }
}

fn child(rust_log: Option<&str>) -> Vec<String> {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "child_logs_one_line_per_level",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    match rust_log {
        Some(v) => cmd.env("RUST_LOG", v),
        None => cmd.env_remove("RUST_LOG"),
    };
    let out = cmd.output().expect("child runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| {
            // The harness may print `test NAME ... ` before the first line.
            if let Some((_, e)) = l.split_once("CONFIG ERROR: ") {
                return Some(format!("error: {e}"));
            }
            let v: serde_json::Value = serde_json::from_str(&l[l.find('{')?..]).ok()?;
            Some(v["message"].as_str()?.to_owned())
        })
        .collect()
}

#[test]
fn rust_log_replaces_the_builder_filter_and_an_unset_one_leaves_it() {
    // Unset or empty: the builder's `debug`.
    let builder = ["at debug", "at info", "at warn", "noisy error"];
    assert_eq!(child(None), builder);
    assert_eq!(child(Some("")), builder);
    // Set: EnvFilter syntax, per-target directives included.
    assert_eq!(child(Some("warn")), ["at warn", "noisy error"]);
    assert_eq!(child(Some("warn,noisy=off")), ["at warn"]);
    assert_eq!(
        child(Some("trace")),
        ["at trace", "at debug", "at info", "at warn", "noisy error"]
    );
    // Invalid: build() says which variable and what is wrong with it.
    let bad = child(Some("warn,noisy=loud"));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("error: telemetry config: log_filter: RUST_LOG=\"warn,noisy=loud\""),
        "{bad:?}"
    );
}
