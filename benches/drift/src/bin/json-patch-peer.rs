//! The `json-patch` crate as its users build it: the system allocator and
//! the system's huge-page policy, nothing from the rollgate harness.
//!
//! ```text
//! json-patch-peer DIR
//! ```

#[path = "../peer.rs"]
mod peer;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/drift-bench".into());
    if let Err(e) = peer::run(std::path::Path::new(&dir), "system-alloc") {
        eprintln!("json-patch-peer: {e}");
        std::process::exit(1);
    }
}
