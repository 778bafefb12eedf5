//! The `json-patch` crate as a peer: read both files, parse them with
//! `serde_json`, `json_patch::diff`, serialise the patch. Shared by the
//! harness (`rollgate-drift-bench json-patch`, mimalloc, the same process
//! settings as rollgate) and by `json-patch-peer` (the system allocator, as
//! the crate's users build it).

use std::path::Path;
use std::time::Instant;

pub fn run(dir: &Path, config: &str) -> Result<(), String> {
    let secs = |t: Instant| t.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let d_bytes = std::fs::read(dir.join("desired.json")).map_err(|e| e.to_string())?;
    let l_bytes = std::fs::read(dir.join("live.json")).map_err(|e| e.to_string())?;
    let read = secs(t0);
    let t1 = Instant::now();
    let desired: serde_json::Value = serde_json::from_slice(&d_bytes).map_err(|e| e.to_string())?;
    let live: serde_json::Value = serde_json::from_slice(&l_bytes).map_err(|e| e.to_string())?;
    let parse = secs(t1);
    let t2 = Instant::now();
    let patch = json_patch::diff(&live, &desired);
    let diff = secs(t2);
    let t3 = Instant::now();
    let out = serde_json::to_string(&patch).map_err(|e| e.to_string())?;
    let render = secs(t3);
    let total = secs(t0);
    let bytes = (d_bytes.len() + l_bytes.len()) as f64;
    println!(
        "tool=json-patch config={config} total_s={total:.3} read_s={read:.3} parse_s={parse:.3} parse_mb_s={:.0} diff_s={diff:.3} render_s={render:.3} differences={} report_bytes={}",
        bytes / 1e6 / parse,
        patch.0.len(),
        out.len()
    );
    Ok(())
}
