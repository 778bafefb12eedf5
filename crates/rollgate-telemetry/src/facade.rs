//! Which `metrics` facade the recorder serves, and the check `install()`
//! makes that the service does not record through another one.
//!
//! The recorder is installed in the `metrics` crate this crate depends on
//! ([`METRICS_FACADE_VERSION`]). Code compiled against another semver-
//! incompatible `metrics` (0.23, say) talks to that version's own global
//! slot, where nothing is installed, and its metrics vanish without an
//! error. Rust cannot see the other copy at run time, so the build script
//! records the `metrics` versions of the workspace's Cargo.lock and
//! `install()` warns when one is not [`METRICS_FACADE_VERSION`].

include!(concat!(env!("OUT_DIR"), "/metrics_versions.rs"));

/// The `metrics` release line (`major.minor`) this crate records for; the
/// service must use the same one (or [`crate::metrics`], its re-export).
pub const METRICS_FACADE_VERSION: &str = "0.24";

/// The versions in `locked` that are not of [`METRICS_FACADE_VERSION`]'s line.
fn foreign<'a>(locked: &[&'a str]) -> Vec<&'a str> {
    locked
        .iter()
        .copied()
        .filter(|v| !same_line(v, METRICS_FACADE_VERSION))
        .collect()
}

/// Whether `version` (`0.24.6`) is on `line` (`0.24`): the same major and,
/// for 0.x, the same minor, as Cargo's caret requirements count.
fn same_line(version: &str, line: &str) -> bool {
    let mut v = version.split('.');
    let mut l = line.split('.');
    match (v.next(), l.next()) {
        (Some(a), Some(b)) if a == b && a != "0" => true,
        (Some("0"), Some("0")) => v.next() == l.next(),
        _ => false,
    }
}

/// Logs one WARN per foreign `metrics` version in `locked`.
fn warn_for(locked: &[&str]) -> usize {
    let foreign = foreign(locked);
    for other in &foreign {
        tracing::warn!(
            ours = METRICS_FACADE_VERSION,
            other = *other,
            "Cargo.lock also holds metrics {other}: rollgate-telemetry's recorder is installed \
             in metrics {ours}, so anything recorded through metrics {other} is lost; use \
             metrics {ours} (or rollgate_telemetry::metrics) in the service",
            ours = METRICS_FACADE_VERSION,
        );
    }
    foreign.len()
}

/// Called by `install()` after the subscriber is in place.
pub(crate) fn warn_on_mismatch() {
    warn_for(LOCKED_METRICS_VERSIONS);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_other_release_lines_are_foreign() {
        assert!(same_line("0.24.6", "0.24"));
        assert!(!same_line("0.23.1", "0.24"));
        assert!(!same_line("0.2.4", "0.24"));
        assert!(same_line("1.2.0", "1.0"));
        assert!(!same_line("2.0.0", "1.0"));
        assert_eq!(
            foreign(&["0.24.6", "0.23.0", "0.22.4"]),
            ["0.23.0", "0.22.4"]
        );
        assert!(foreign(&["0.24.1"]).is_empty());
    }

    #[test]
    fn this_workspace_locks_the_metrics_line_the_recorder_serves() {
        // The build script read this workspace's Cargo.lock.
        assert!(
            LOCKED_METRICS_VERSIONS
                .iter()
                .any(|v| same_line(v, METRICS_FACADE_VERSION)),
            "{LOCKED_METRICS_VERSIONS:?}"
        );
        assert!(foreign(LOCKED_METRICS_VERSIONS).is_empty());
    }

    #[test]
    fn lockfile_versions_of_metrics_are_read_and_nothing_else() {
        let lock = "[[package]]\nname = \"metrics\"\nversion = \"0.24.6\"\n\n\
                    [[package]]\nname = \"metrics-util\"\nversion = \"0.20.4\"\n\n\
                    [[package]]\nname = \"metrics\"\nversion = \"0.23.0\"\nsource = \"x\"\n";
        assert_eq!(
            crate::lockfile::metrics_versions(lock),
            ["0.24.6", "0.23.0"]
        );
    }

    #[test]
    fn a_foreign_facade_is_warned_about_naming_both_versions() {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let t = crate::init("svc")
            .log_filter_env(None)
            .log_writer(Capture(std::sync::Arc::clone(&lines)))
            .build()
            .expect("valid config");
        let n = tracing::dispatcher::with_default(t.dispatch(), || warn_for(&["0.24.6", "0.23.0"]));
        assert_eq!(n, 1);
        let text = String::from_utf8(lines.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("\"level\":\"WARN\""), "{text}");
        assert!(
            text.contains("metrics 0.23.0") && text.contains("metrics 0.24"),
            "{text}"
        );
    }

    struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
