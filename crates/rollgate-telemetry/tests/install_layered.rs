//! The composed path, process-wide: the user's own subscriber with
//! rollgate's layer next to theirs, then `install_metrics()` (one test per
//! binary, since globals can be set once).

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rollgate_telemetry::{Error, init};
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

#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Counting {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_user_subscriber_with_our_layer_and_install_metrics_work_process_wide() {
    let logs = Capture::default();
    let telemetry = init("svc")
        .version("2.0.0")
        .log_filter_env(None)
        .log_filter("warn")
        .log_writer(logs.clone())
        .build()
        .expect("valid config");
    let theirs = Counting::default();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(telemetry.layer())
            .with(theirs.clone()),
    )
    .expect("the user's subscriber is the first");
    let guard = telemetry.install_metrics().expect("recorder installed");

    tracing::info!("below our filter");
    tracing::warn!(job = 3, "job slow");
    rollgate_telemetry::metrics::counter!("jobs_done").increment(2);

    assert_eq!(theirs.0.load(Ordering::Relaxed), 2, "theirs sees both");
    let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("utf-8");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("\"message\":\"job slow\""), "{text}");
    assert!(
        guard
            .metrics()
            .render()
            .contains("jobs_done_total{service=\"svc\",version=\"2.0.0\"} 2")
    );
    let again = init("svc")
        .log_writer(std::io::sink())
        .build()
        .expect("valid config")
        .install_metrics();
    assert!(matches!(
        again,
        Err(Error::AlreadyInstalled {
            what: "metrics recorder"
        })
    ));
}
