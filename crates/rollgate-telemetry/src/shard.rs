//! Per-thread shards for hot-path metric updates.
//!
//! Each live thread that records gets an exclusive slot index (< [`SHARDS`]);
//! a cell keeps one lazily allocated shard per slot. The owner updates its
//! shard with a plain load and store (no locked read-modify-write), readers
//! sum the shards. Slots are returned when a thread exits and handed to the
//! next thread, which continues the same shard (the registry mutex orders the
//! two owners). Threads beyond the limit use the cell's shared atomics.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// Number of per-thread slots.
pub(crate) const SHARDS: usize = 32;

static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT: AtomicUsize = AtomicUsize::new(0);

struct Slot(Option<usize>);

impl Slot {
    fn acquire() -> Self {
        if let Some(i) = FREE.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Slot(Some(i));
        }
        let i = NEXT.fetch_add(1, Ordering::Relaxed);
        Slot((i < SHARDS).then_some(i))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            FREE.lock().unwrap_or_else(PoisonError::into_inner).push(i);
        }
    }
}

thread_local! {
    static SLOT: Slot = Slot::acquire();
}

/// This thread's exclusive slot, if it has one (none during thread teardown
/// or when more than [`SHARDS`] threads record at once).
#[inline]
pub(crate) fn slot() -> Option<usize> {
    SLOT.try_with(|s| s.0).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_threads_never_share_a_slot() {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let b = std::sync::Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let s = slot();
                    b.wait(); // all eight alive at once
                    s
                })
            })
            .collect();
        let mut slots: Vec<usize> = handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .collect();
        let n = slots.len();
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots.len(), n, "two live threads got the same slot");
    }
}
