//! Records which versions of `metrics` the building workspace's Cargo.lock
//! holds, so `install()` can warn when the service's code records through
//! another `metrics` than the one this crate's recorder is installed in.

use std::path::PathBuf;

#[allow(dead_code)]
#[path = "src/lockfile.rs"]
mod lockfile;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/lockfile.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<pkg>-<hash>/out; the
    // workspace's Cargo.lock sits beside the default <target>. A custom
    // CARGO_TARGET_DIR elsewhere finds none: nothing is recorded.
    let mut versions = Vec::new();
    if let Some(lock) = out
        .ancestors()
        .skip(1)
        .map(|d| d.join("Cargo.lock"))
        .find(|p| p.is_file())
    {
        println!("cargo::rerun-if-changed={}", lock.display());
        if let Ok(text) = std::fs::read_to_string(&lock) {
            versions = lockfile::metrics_versions(&text);
        }
    }
    let list: Vec<String> = versions.iter().map(|v| format!("{v:?}")).collect();
    let code = format!(
        "/// Versions of `metrics` in the workspace's Cargo.lock at build time.\n\
         pub(crate) const LOCKED_METRICS_VERSIONS: &[&str] = &[{}];\n",
        list.join(", ")
    );
    std::fs::write(out.join("metrics_versions.rs"), code)
        .expect("write OUT_DIR/metrics_versions.rs");
}
