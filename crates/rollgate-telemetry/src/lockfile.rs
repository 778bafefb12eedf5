//! Reading the versions of `metrics` from a `Cargo.lock` (shared by the
//! build script, which records them, and the tests).

/// Every version of the package `metrics` listed in the lockfile text, in
/// file order.
pub(crate) fn metrics_versions(lock: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut name_is_metrics = false;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            name_is_metrics = false;
        } else if let Some(v) = line.strip_prefix("name = ") {
            name_is_metrics = v.trim_matches('"') == "metrics";
        } else if let Some(v) = line.strip_prefix("version = ")
            && name_is_metrics
        {
            out.push(v.trim_matches('"').to_owned());
            name_is_metrics = false;
        }
    }
    out
}
