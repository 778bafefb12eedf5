//! Notifications from the CLI's controllers: the outbox dispatcher runs
//! beside the executor, and whatever is left is delivered (for a bounded
//! time) before the command exits. Rows still undelivered stay in the
//! store; the next controller on it (`rollout run`, `resume`, `resume-all`,
//! `serve`) delivers them, with the same event ids.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rollgate_deploy::{DispatchConfig, Dispatcher, RolloutId, StateStore, WebhookNotifier};
use tokio::sync::watch;
use tracing::warn;

use crate::rollout::{Fail, STORE_BUSY, Store};

/// Longest a command waits at its end for notifications still failing.
pub(crate) const DRAIN: Duration = Duration::from_secs(10);

/// A dispatcher over `store` with `config` (from
/// [`dispatch_config`](rollgate::plan::dispatch_config): claims renewed
/// while it works on them and otherwise no longer than the lease).
pub(crate) fn dispatcher(store: Store, config: DispatchConfig) -> Result<Dispatcher, Fail> {
    let notifier = WebhookNotifier::new().map_err(|e| Fail(STORE_BUSY, e.to_string()))?;
    Ok(Dispatcher::new(store, Arc::new(notifier), config))
}

/// Runs `work` while `d` delivers in the background. Once `work` is done,
/// delivers until nothing of `scope` (one rollout, or every one) is left
/// undelivered, for at most [`DRAIN`]: rows another controller still holds
/// a claim on are sent once the claim ends.
pub(crate) async fn alongside<T>(
    d: &Dispatcher,
    store: &dyn StateStore,
    scope: Option<RolloutId>,
    work: impl Future<Output = T>,
) -> T {
    let (done_tx, done_rx) = watch::channel(false);
    let main = async move {
        let out = work.await;
        let _ = done_tx.send(true);
        out
    };
    let background = async {
        let mut rx = done_rx.clone();
        loop {
            let last = *rx.borrow_and_update();
            if let Err(e) = d.deliver_pending().await {
                warn!(error = %rollgate_deploy::error_chain(&e), "notification outbox");
            }
            if last && !has_pending(store, scope).await {
                break;
            }
            let wait = if last {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                _ = rx.changed(), if !last => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    };
    let bounded = async {
        let mut rx = done_rx.clone();
        tokio::select! {
            () = background => {}
            () = async {
                let _ = rx.wait_for(|done| *done).await;
                tokio::time::sleep(DRAIN).await;
            } => {}
        }
    };
    let (out, ()) = tokio::join!(main, bounded);
    out
}

/// Whether any notification of `scope` is undelivered (false when the
/// store cannot say: the report after names what is left).
async fn has_pending(store: &dyn StateStore, scope: Option<RolloutId>) -> bool {
    store
        .notifications(scope)
        .await
        .is_ok_and(|all| all.iter().any(|n| n.delivered_ms.is_none()))
}

/// Says on standard error how many notifications of `id` (or of every
/// rollout) are still undelivered, and why the last attempt failed.
pub(crate) async fn report_pending(store: &dyn StateStore, id: Option<RolloutId>) {
    let Ok(all) = store.notifications(id).await else {
        return;
    };
    let pending: Vec<_> = all.iter().filter(|n| n.delivered_ms.is_none()).collect();
    if pending.is_empty() {
        return;
    }
    let why = pending
        .iter()
        .rev()
        .find_map(|n| n.last_error.as_deref())
        .unwrap_or("not attempted yet");
    let whose = id.map_or(String::new(), |id| format!("rollout {id}: "));
    crate::rollout::write_err(format_args!(
        "{whose}{} notification(s) not delivered yet (last error: {why}); the next rollgate controller on this state store delivers them (`rollgate rollout resume-all` or `rollgate serve`)",
        pending.len()
    ));
}
