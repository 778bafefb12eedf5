//! The behaviour every [`StateStore`] must have. Call [`run_all`] with a
//! function that makes an empty store; each check gets its own.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rollgate_deploy::{
    Artifact, CohortEvidence, Decision, Destination, Digest, Error, Event, Fence, GateEvidence,
    MetricEvidence, Notification, NotificationId, NotifyKind, Number, Outcome, PhaseDefaults,
    RolloutId, RolloutRequest, StateStore, Strategy, Writer,
};

use crate::{artifact, targets};

/// Panics with the store's own message: a conformance failure names what broke.
fn fail<T>(e: Error) -> T {
    panic!("{e}")
}

fn request(service: &str, version: &str, key: Option<&str>) -> RolloutRequest {
    let plan = Strategy::AllAtOnce
        .compile(&targets(3), &PhaseDefaults::default())
        .unwrap_or_else(fail);
    let mut r = RolloutRequest::new(service, artifact(version), plan, "tester");
    if let Some(k) = key {
        r = r.with_idempotency_key(k);
    }
    r
}

/// Runs every check, each on a fresh store from `make`. Panics on the first
/// behaviour that differs, naming it.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn StateStore>>,
{
    idempotency_key_returns_the_same_rollout(&*make().await).await;
    append_needs_the_current_fence(&*make().await).await;
    people_append_only_requests(&*make().await).await;
    events_come_back_in_order_after_a_sequence(&*make().await).await;
    leases_fence_out_older_owners(&*make().await).await;
    finished_rollouts_are_not_unfinished(&*make().await).await;
    a_finished_log_takes_no_more_events(&*make().await).await;
    list_filters_by_service_newest_first(&*make().await).await;
    a_digest_is_never_rebound(&*make().await).await;
    unknown_rollouts_are_not_found(&*make().await).await;
    gate_evidence_comes_back_as_written(&*make().await).await;
    let s = make().await;
    a_stale_fence_loses_the_race_to_a_new_controller(&*s, &*s).await;
    outbox_rows_come_with_their_events(&*make().await).await;
    a_refused_append_writes_no_outbox_rows(&*make().await).await;
    claims_keep_other_dispatchers_off_until_they_end(&*make().await).await;
    concurrent_claims_take_different_rows(&*make().await).await;
    claims_are_renewed_only_by_their_owner(&*make().await).await;
    unfinished_leases_show_each_lease_and_last_sequence(&*make().await).await;
}

/// A dispatcher renews its own live claim; a claim it lost, a delivered
/// row and an unknown row are not renewed (the last is an error).
pub async fn claims_are_renewed_only_by_their_owner(s: &dyn StateStore) {
    let id = s
        .create(&notifying_request("web"))
        .await
        .unwrap_or_else(fail)
        .id;
    let f = controller(s, id, "c").await;
    s.append_notifying(
        id,
        Writer::Controller {
            owner: "c",
            fence: f,
        },
        &[Event::ControllerStarted {
            owner: "c".into(),
            fence: f.0,
        }],
        &[Some(NotifyKind::Started)],
    )
    .await
    .unwrap_or_else(fail);
    // a's claim ends at once; renewed, it keeps b off.
    let a = s
        .claim_notifications("a", Duration::ZERO, 10)
        .await
        .unwrap_or_else(fail);
    assert_eq!(a.len(), 1, "{a:?}");
    let long = Duration::from_secs(600);
    assert!(
        s.renew_notification_claim(a[0].id, "a", long)
            .await
            .unwrap_or_else(fail),
        "the owner renews its claim"
    );
    assert!(
        s.claim_notifications("b", long, 10)
            .await
            .unwrap_or_else(fail)
            .is_empty(),
        "a renewed claim keeps others off"
    );
    assert!(
        !s.renew_notification_claim(a[0].id, "b", long)
            .await
            .unwrap_or_else(fail),
        "another dispatcher cannot renew a's claim"
    );
    // Renewed to end at once, the row is free for b; a's renewal then fails.
    assert!(
        s.renew_notification_claim(a[0].id, "a", Duration::ZERO)
            .await
            .unwrap_or_else(fail)
    );
    let b = s
        .claim_notifications("b", long, 10)
        .await
        .unwrap_or_else(fail);
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(
        !s.renew_notification_claim(a[0].id, "a", long)
            .await
            .unwrap_or_else(fail),
        "a lost its claim to b"
    );
    s.notification_delivered(b[0].id, "b")
        .await
        .unwrap_or_else(fail);
    assert!(
        !s.renew_notification_claim(b[0].id, "b", long)
            .await
            .unwrap_or_else(fail),
        "a delivered row holds no claim"
    );
    let err = s
        .renew_notification_claim(NotificationId(1_000_000), "a", long)
        .await
        .expect_err("unknown notification");
    assert!(matches!(err, Error::NotFound(_)), "{err}");
}

/// `unfinished_leases` lists the unfinished rollouts oldest first, with the
/// lease each has (live or expired) and the sequence of its last event.
pub async fn unfinished_leases_show_each_lease_and_last_sequence(s: &dyn StateStore) {
    let ids: Vec<RolloutId> = created_rollouts(s, 3).await;
    // 0: no lease, no events. 1: a live lease and two events. 2: finished.
    let f = s
        .lease(ids[1], "x", Duration::from_secs(60))
        .await
        .unwrap_or_else(fail);
    let w = Writer::Controller {
        owner: "x",
        fence: f,
    };
    s.append(
        ids[1],
        w,
        &[
            Event::ControllerStarted {
                owner: "x".into(),
                fence: f.0,
            },
            Event::PauseRequested,
        ],
    )
    .await
    .unwrap_or_else(fail);
    let g = s
        .lease(ids[2], "y", Duration::from_secs(60))
        .await
        .unwrap_or_else(fail);
    s.append(
        ids[2],
        Writer::Controller {
            owner: "y",
            fence: g,
        },
        &[Event::Finished {
            outcome: Outcome::Succeeded,
        }],
    )
    .await
    .unwrap_or_else(fail);
    let all = s.unfinished_leases().await.unwrap_or_else(fail);
    let got: Vec<(RolloutId, Option<String>, bool, u64)> = all
        .iter()
        .map(|u| {
            (
                u.id,
                u.lease.as_ref().map(|l| l.owner.clone()),
                u.lease.as_ref().is_some_and(|l| !l.expires_in.is_zero()),
                u.last_seq,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (ids[0], None, false, 0),
            (ids[1], Some("x".into()), true, 2)
        ],
        "{all:?}"
    );
    assert_eq!(all[1].lease.as_ref().map(|l| l.fence), Some(f));
    // An expired lease is still shown, with no time left.
    s.lease(ids[0], "z", Duration::ZERO)
        .await
        .unwrap_or_else(fail);
    let all = s.unfinished_leases().await.unwrap_or_else(fail);
    let l = all[0].lease.as_ref().expect("z's lease");
    assert_eq!((l.owner.as_str(), l.expires_in), ("z", Duration::ZERO));
}

async fn created_rollouts(s: &dyn StateStore, n: usize) -> Vec<RolloutId> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            s.create(&request("web", &format!("v{}", i + 2), None))
                .await
                .unwrap_or_else(fail)
                .id,
        );
    }
    ids
}

/// A request with two destinations: one for everything, one for rollbacks only.
fn notifying_request(service: &str) -> RolloutRequest {
    request(service, "v2", None).with_notify([
        Destination::new("http://127.0.0.1:9/all").with_secret_env("HOOK_SECRET"),
        Destination::new("http://127.0.0.1:9/rollbacks").with_events([NotifyKind::RolledBack]),
    ])
}

async fn controller(s: &dyn StateStore, id: RolloutId, owner: &str) -> Fence {
    s.lease(id, owner, Duration::from_secs(60))
        .await
        .unwrap_or_else(fail)
}

fn summary(ns: &[Notification]) -> Vec<(u64, usize, NotifyKind)> {
    ns.iter().map(|n| (n.seq, n.destination, n.kind)).collect()
}

/// An append writes one outbox row per marked event and destination that
/// wants it; `started` at most once per destination.
pub async fn outbox_rows_come_with_their_events(s: &dyn StateStore) {
    let id = s
        .create(&notifying_request("web"))
        .await
        .unwrap_or_else(fail)
        .id;
    let f = controller(s, id, "a").await;
    let w = Writer::Controller {
        owner: "a",
        fence: f,
    };
    let started = Event::ControllerStarted {
        owner: "a".into(),
        fence: f.0,
    };
    let seq = s
        .append_notifying(
            id,
            w,
            &[
                started.clone(),
                Event::BakeElapsed { phase: 0 },
                Event::PhaseCompleted {
                    phase: 0,
                    reason: "gate said promote".into(),
                },
            ],
            &[
                Some(NotifyKind::Started),
                None,
                Some(NotifyKind::PhasePromoted),
            ],
        )
        .await
        .unwrap_or_else(fail);
    assert_eq!(seq, 3);
    // A second `started` (a resumed controller) is not announced again.
    s.append_notifying(id, w, &[started], &[Some(NotifyKind::Started)])
        .await
        .unwrap_or_else(fail);
    // Unmarked appends announce nothing.
    s.append(id, w, &[Event::BakeElapsed { phase: 1 }])
        .await
        .unwrap_or_else(fail);
    s.append_notifying(
        id,
        w,
        &[Event::Finished {
            outcome: Outcome::RolledBack,
        }],
        &[Some(NotifyKind::RolledBack)],
    )
    .await
    .unwrap_or_else(fail);
    let ns = s.notifications(Some(id)).await.unwrap_or_else(fail);
    assert_eq!(
        summary(&ns),
        [
            (1, 0, NotifyKind::Started),
            (3, 0, NotifyKind::PhasePromoted),
            (6, 0, NotifyKind::RolledBack),
            (6, 1, NotifyKind::RolledBack),
        ],
        "outbox rows: (seq, destination, kind)"
    );
    assert!(
        ns.iter()
            .all(|n| n.rollout == id && n.attempts == 0 && n.delivered_ms.is_none())
    );
    assert_eq!(
        ns[2].event_id(),
        ns[3].event_id(),
        "one event, one event id"
    );
    assert_ne!(ns[0].event_id(), ns[1].event_id());
    // A rollout without destinations has no outbox rows.
    let other = s
        .create(&request("api", "v2", None))
        .await
        .unwrap_or_else(fail)
        .id;
    let f = controller(s, other, "a").await;
    s.append_notifying(
        other,
        Writer::Controller {
            owner: "a",
            fence: f,
        },
        &[Event::Finished {
            outcome: Outcome::Succeeded,
        }],
        &[Some(NotifyKind::Finished)],
    )
    .await
    .unwrap_or_else(fail);
    assert!(
        s.notifications(Some(other))
            .await
            .unwrap_or_else(fail)
            .is_empty()
    );
    assert_eq!(s.notifications(None).await.unwrap_or_else(fail).len(), 4);
}

/// A stale fence, a finished log or a malformed notify list writes no row.
pub async fn a_refused_append_writes_no_outbox_rows(s: &dyn StateStore) {
    let id = s
        .create(&notifying_request("web"))
        .await
        .unwrap_or_else(fail)
        .id;
    let f1 = s.lease(id, "a", Duration::ZERO).await.unwrap_or_else(fail);
    let f2 = controller(s, id, "b").await;
    let finished = [Event::Finished {
        outcome: Outcome::RolledBack,
    }];
    let err = s
        .append_notifying(
            id,
            Writer::Controller {
                owner: "a",
                fence: f1,
            },
            &finished,
            &[Some(NotifyKind::RolledBack)],
        )
        .await
        .expect_err("stale fence");
    assert!(matches!(err, Error::StaleFence { .. }), "{err}");
    let err = s
        .append_notifying(
            id,
            Writer::Controller {
                owner: "b",
                fence: f2,
            },
            &finished,
            &[Some(NotifyKind::RolledBack), None],
        )
        .await
        .expect_err("two notify entries for one event");
    assert!(err.to_string().contains("one per event"), "{err}");
    assert!(
        s.notifications(Some(id))
            .await
            .unwrap_or_else(fail)
            .is_empty()
    );
    assert!(s.events(id, 0).await.unwrap_or_else(fail).is_empty());
    let w = Writer::Controller {
        owner: "b",
        fence: f2,
    };
    s.append_notifying(id, w, &finished, &[Some(NotifyKind::RolledBack)])
        .await
        .unwrap_or_else(fail);
    let err = s
        .append_notifying(id, w, &finished, &[Some(NotifyKind::RolledBack)])
        .await
        .expect_err("finished log");
    assert!(matches!(err, Error::Finished { .. }), "{err}");
    assert_eq!(
        s.notifications(Some(id)).await.unwrap_or_else(fail).len(),
        2
    );
}

/// A live claim keeps others off; a failed attempt is counted and holds the
/// claim for its wait; a delivered row is never claimed again.
pub async fn claims_keep_other_dispatchers_off_until_they_end(s: &dyn StateStore) {
    let id = s
        .create(&notifying_request("web"))
        .await
        .unwrap_or_else(fail)
        .id;
    let f = controller(s, id, "c").await;
    let w = Writer::Controller {
        owner: "c",
        fence: f,
    };
    s.append_notifying(
        id,
        w,
        &[
            Event::ControllerStarted {
                owner: "c".into(),
                fence: f.0,
            },
            Event::Finished {
                outcome: Outcome::RolledBack,
            },
        ],
        &[Some(NotifyKind::Started), Some(NotifyKind::RolledBack)],
    )
    .await
    .unwrap_or_else(fail);
    let long = Duration::from_secs(600);
    let first = s
        .claim_notifications("a", long, 2)
        .await
        .unwrap_or_else(fail);
    assert_eq!(
        summary(&first),
        [(1, 0, NotifyKind::Started), (2, 0, NotifyKind::RolledBack)],
        "oldest first, at most the limit"
    );
    let rest = s
        .claim_notifications("b", long, 10)
        .await
        .unwrap_or_else(fail);
    assert_eq!(
        summary(&rest),
        [(2, 1, NotifyKind::RolledBack)],
        "b gets only the unclaimed row"
    );
    assert!(
        s.claim_notifications("b", long, 10)
            .await
            .unwrap_or_else(fail)
            .is_empty()
    );
    // a fails its first row and retries at once: the row is free again.
    s.notification_failed(
        first[0].id,
        "a",
        "HTTP 500 from http://127.0.0.1:9/all",
        Duration::ZERO,
    )
    .await
    .unwrap_or_else(fail);
    let again = s
        .claim_notifications("b", long, 10)
        .await
        .unwrap_or_else(fail);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(again[0].attempts, 1);
    assert_eq!(
        again[0].last_error.as_deref(),
        Some("HTTP 500 from http://127.0.0.1:9/all")
    );
    // A failure with a wait keeps the row claimed.
    s.notification_failed(again[0].id, "b", "timeout", long)
        .await
        .unwrap_or_else(fail);
    assert!(
        s.claim_notifications("a", long, 10)
            .await
            .unwrap_or_else(fail)
            .is_empty()
    );
    for n in first.iter().chain(&rest) {
        s.notification_delivered(n.id, "a")
            .await
            .unwrap_or_else(fail);
    }
    let all = s.notifications(Some(id)).await.unwrap_or_else(fail);
    assert!(all.iter().all(|n| n.delivered_ms.is_some()), "{all:?}");
    assert_eq!(all[0].attempts, 2);
    // Delivered rows are never claimed again, even once claims expire.
    assert!(
        s.claim_notifications("z", Duration::ZERO, 10)
            .await
            .unwrap_or_else(fail)
            .is_empty()
    );
    let err = s
        .notification_delivered(NotificationId(1_000_000), "a")
        .await
        .expect_err("unknown notification");
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    let err = s
        .notification_failed(NotificationId(1_000_000), "a", "x", long)
        .await
        .expect_err("unknown notification");
    assert!(matches!(err, Error::NotFound(_)), "{err}");
}

/// Two dispatchers claiming at once never get the same row; an expired
/// claim is taken over.
pub async fn concurrent_claims_take_different_rows(s: &dyn StateStore) {
    for service in ["a", "b", "c", "d", "e"] {
        let id = s
            .create(&notifying_request(service))
            .await
            .unwrap_or_else(fail)
            .id;
        let f = controller(s, id, "c").await;
        s.append_notifying(
            id,
            Writer::Controller {
                owner: "c",
                fence: f,
            },
            &[Event::Finished {
                outcome: Outcome::RolledBack,
            }],
            &[Some(NotifyKind::RolledBack)],
        )
        .await
        .unwrap_or_else(fail);
    }
    let long = Duration::from_secs(600);
    let (a, b) = futures_join(
        s.claim_notifications("a", long, 6),
        s.claim_notifications("b", long, 6),
    )
    .await;
    let (a, b) = (a.unwrap_or_else(fail), b.unwrap_or_else(fail));
    let mut ids: Vec<_> = a.iter().chain(&b).map(|n| n.id).collect();
    assert_eq!(ids.len(), 10, "a: {a:?}, b: {b:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "a row was claimed twice: a {a:?}, b {b:?}");
    // Claims that end at once leave every row to the next claimer.
    let s2 = s.claim_notifications("x", Duration::ZERO, 100).await;
    assert!(s2.unwrap_or_else(fail).is_empty(), "live claims hold");
    let pending = s.notifications(None).await.unwrap_or_else(fail);
    for n in &pending {
        s.notification_failed(n.id, "a", "x", Duration::ZERO)
            .await
            .unwrap_or_else(fail);
    }
    let taken = s
        .claim_notifications("y", Duration::ZERO, 100)
        .await
        .unwrap_or_else(fail);
    assert_eq!(taken.len(), 10);
    let again = s
        .claim_notifications("z", long, 100)
        .await
        .unwrap_or_else(fail);
    assert_eq!(again.len(), 10, "a zero-length claim ends at once");
}

/// Same key, same rollout; same key with another request is refused.
pub async fn idempotency_key_returns_the_same_rollout(s: &dyn StateStore) {
    let a = s
        .create(&request("web", "v2", Some("k1")))
        .await
        .unwrap_or_else(fail);
    assert!(!a.existed);
    let b = s
        .create(&request("web", "v2", Some("k1")))
        .await
        .unwrap_or_else(fail);
    assert_eq!(
        a.id, b.id,
        "same idempotency key must return the same rollout"
    );
    assert!(b.existed);
    let c = s
        .create(&request("web", "v2", None))
        .await
        .unwrap_or_else(fail);
    assert_ne!(a.id, c.id);
    let err = s
        .create(&request("web", "v3", Some("k1")))
        .await
        .expect_err("different request, same key");
    assert!(err.to_string().contains("k1"), "{err}");
    assert_eq!(s.find_key("k1").await.unwrap_or_else(fail), Some(a.id));
    assert_eq!(s.find_key("nope").await.unwrap_or_else(fail), None);
}

/// A controller write with a stale fence is rejected and lands nothing.
pub async fn append_needs_the_current_fence(s: &dyn StateStore) {
    let id = s
        .create(&request("web", "v2", None))
        .await
        .unwrap_or_else(fail)
        .id;
    let f1 = s.lease(id, "a", Duration::ZERO).await.unwrap_or_else(fail);
    s.append(
        id,
        Writer::Controller {
            owner: "a",
            fence: f1,
        },
        &[Event::ControllerStarted {
            owner: "a".into(),
            fence: f1.0,
        }],
    )
    .await
    .unwrap_or_else(fail);
    // The zero-length lease expired at once; b takes over with a higher fence.
    let f2 = s
        .lease(id, "b", Duration::from_secs(60))
        .await
        .unwrap_or_else(fail);
    assert!(f2 > f1, "a new owner must get a higher fence");
    let err = s
        .append(
            id,
            Writer::Controller {
                owner: "a",
                fence: f1,
            },
            &[Event::BakeElapsed { phase: 0 }],
        )
        .await
        .expect_err("stale fence");
    assert!(matches!(err, Error::StaleFence { .. }), "{err}");
    assert_eq!(
        s.events(id, 0).await.unwrap_or_else(fail).len(),
        1,
        "a rejected append lands nothing"
    );
}

/// People append pause/resume/promote/abort without a lease, nothing else.
pub async fn people_append_only_requests(s: &dyn StateStore) {
    let id = s
        .create(&request("web", "v2", None))
        .await
        .unwrap_or_else(fail)
        .id;
    s.append(id, Writer::Person("alice"), &[Event::PauseRequested])
        .await
        .unwrap_or_else(fail);
    let err = s
        .append(
            id,
            Writer::Person("alice"),
            &[Event::GateDecided {
                phase: 0,
                decision: Decision::Promote(vec![]),
                evidence: None,
            }],
        )
        .await
        .expect_err("people may not forge gate verdicts");
    assert!(err.to_string().contains("only controllers"), "{err}");
    let evs = s.events(id, 0).await.unwrap_or_else(fail);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].actor, "alice");
}

/// `events(id, after)` returns the tail, numbered from 1 without gaps.
pub async fn events_come_back_in_order_after_a_sequence(s: &dyn StateStore) {
    let id = s
        .create(&request("web", "v2", None))
        .await
        .unwrap_or_else(fail)
        .id;
    let f = s
        .lease(id, "a", Duration::from_secs(60))
        .await
        .unwrap_or_else(fail);
    let w = Writer::Controller {
        owner: "a",
        fence: f,
    };
    let last = s
        .append(
            id,
            w,
            &[
                Event::BakeStarted {
                    phase: 0,
                    bake: Duration::from_secs(1),
                },
                Event::BakeElapsed { phase: 0 },
            ],
        )
        .await
        .unwrap_or_else(fail);
    assert_eq!(last, 2);
    s.append(
        id,
        w,
        &[Event::PhaseCompleted {
            phase: 0,
            reason: "x".into(),
        }],
    )
    .await
    .unwrap_or_else(fail);
    let all = s.events(id, 0).await.unwrap_or_else(fail);
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let tail = s.events(id, 2).await.unwrap_or_else(fail);
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].event.action(), "phase_completed");
}

/// A gate decision's evidence (numbers with fractions, counts, text) comes
/// back exactly as appended, beside a decision that has none.
pub async fn gate_evidence_comes_back_as_written(s: &dyn StateStore) {
    let id = s
        .create(&request("web", "v2", None))
        .await
        .unwrap_or_else(fail)
        .id;
    let f = s
        .lease(id, "a", Duration::from_secs(60))
        .await
        .unwrap_or_else(fail);
    let w = Writer::Controller {
        owner: "a",
        fence: f,
    };
    let n = Number::finite;
    let evidence = GateEvidence::new(
        "rollback",
        Some(41.25),
        vec![MetricEvidence {
            name: "errors <&> \"quoted\"".into(),
            result: "high".into(),
            failed: true,
            critical: true,
            baseline: CohortEvidence {
                n: 1200,
                events: Some(3),
                ratio: n(0.0025),
                ..CohortEvidence::default()
            },
            canary: CohortEvidence {
                n: 130,
                mean: n(0.1),
                p50: n(1.0 / 3.0),
                p95: n(1e-9),
                p99: n(123_456.789),
                events: Some(17),
                ratio: n(17.0 / 130.0),
            },
            p_value: n(2.5e-12),
            reason: "metric \"errors\": canary rate 13.08% > bound 1%".into(),
        }],
    );
    let written = [
        Event::GateDecided {
            phase: 0,
            decision: Decision::Continue(vec!["no evidence".into()]),
            evidence: None,
        },
        Event::GateDecided {
            phase: 0,
            decision: Decision::Rollback(vec!["errors".into()]),
            evidence: Some(Box::new(evidence)),
        },
    ];
    s.append(id, w, &written).await.unwrap_or_else(fail);
    let back: Vec<Event> = s
        .events(id, 0)
        .await
        .unwrap_or_else(fail)
        .into_iter()
        .map(|r| r.event)
        .collect();
    assert_eq!(
        back, written,
        "gate evidence changed on its way through the store"
    );
}

/// A running lease keeps others out; the same owner renews its fence.
pub async fn leases_fence_out_older_owners(s: &dyn StateStore) {
    let id = s
        .create(&request("web", "v2", None))
        .await
        .unwrap_or_else(fail)
        .id;
    let f = s
        .lease(id, "a", Duration::from_secs(60))
        .await
        .unwrap_or_else(fail);
    assert_eq!(
        s.lease(id, "a", Duration::from_secs(60))
            .await
            .unwrap_or_else(fail),
        f
    );
    let err = s
        .lease(id, "b", Duration::from_secs(60))
        .await
        .expect_err("lease is held");
    assert!(
        matches!(&err, Error::LeaseHeld { owner, .. } if owner == "a"),
        "{err}"
    );
    let info = s
        .lease_info(id)
        .await
        .unwrap_or_else(fail)
        .unwrap_or_else(|| panic!("lease info"));
    assert_eq!(info.owner, "a");
    s.release(id, f).await.unwrap_or_else(fail);
    let g = s
        .lease(id, "b", Duration::from_secs(60))
        .await
        .unwrap_or_else(fail);
    assert!(g > f);
    s.break_lease(id, "b").await.unwrap_or_else(fail);
    assert!(s.lease_info(id).await.unwrap_or_else(fail).is_none());
}

/// A `Finished` event takes the rollout off the unfinished list.
pub async fn finished_rollouts_are_not_unfinished(s: &dyn StateStore) {
    let a = s
        .create(&request("web", "v2", None))
        .await
        .unwrap_or_else(fail)
        .id;
    let b = s
        .create(&request("web", "v3", None))
        .await
        .unwrap_or_else(fail)
        .id;
    let f = s
        .lease(a, "x", Duration::from_secs(60))
        .await
        .unwrap_or_else(fail);
    s.append(
        a,
        Writer::Controller {
            owner: "x",
            fence: f,
        },
        &[Event::Finished {
            outcome: Outcome::Succeeded,
        }],
    )
    .await
    .unwrap_or_else(fail);
    assert_eq!(s.unfinished().await.unwrap_or_else(fail), vec![b]);
    let list = s.list(None).await.unwrap_or_else(fail);
    assert_eq!(
        list.iter().find(|r| r.id == a).and_then(|r| r.outcome),
        Some(Outcome::Succeeded)
    );
    // Filtered listings agree with the plain one.
    let ids = |v: Vec<rollgate_deploy::RolloutSummary>| v.iter().map(|r| r.id).collect::<Vec<_>>();
    let f = rollgate_deploy::ListFilter::default();
    let done = s
        .list_where(&f.clone().with_outcome(Some(Outcome::Succeeded)))
        .await
        .unwrap_or_else(fail);
    assert_eq!(ids(done.clone()), vec![a]);
    assert_eq!(
        done[0].artifact,
        list.iter()
            .find(|r| r.id == a)
            .map(|r| r.artifact.clone())
            .unwrap_or_else(|| fail(Error::NotFound("a".into())))
    );
    assert_eq!(
        ids(s
            .list_where(&f.clone().with_outcome(None))
            .await
            .unwrap_or_else(fail)),
        vec![b]
    );
    assert_eq!(
        ids(s
            .list_where(&f.clone().with_service("web").with_limit(1))
            .await
            .unwrap_or_else(fail)),
        vec![b]
    );
    assert_eq!(
        ids(s
            .list_where(&f.clone().with_service("api"))
            .await
            .unwrap_or_else(fail)),
        vec![]
    );
    assert_eq!(
        ids(s
            .list_where(&f.clone().with_since_ms(i64::MAX))
            .await
            .unwrap_or_else(fail)),
        vec![]
    );
    assert_eq!(
        ids(s.list_where(&f.with_since_ms(0)).await.unwrap_or_else(fail)),
        vec![b, a]
    );
}

/// Once a `Finished` event is recorded, every append is refused, by the
/// controller that wrote it, a person, or a later controller; the log is
/// unchanged. Also within one append: events after `Finished` in the same
/// batch of writers are refused.
pub async fn a_finished_log_takes_no_more_events(s: &dyn StateStore) {
    let id = s
        .create(&request("web", "v2", None))
        .await
        .unwrap_or_else(fail)
        .id;
    let f = s
        .lease(id, "x", Duration::from_secs(60))
        .await
        .unwrap_or_else(fail);
    let x = Writer::Controller {
        owner: "x",
        fence: f,
    };
    let finished = Event::Finished {
        outcome: Outcome::Succeeded,
    };
    let (a, b) = futures_join(
        s.append(id, x, std::slice::from_ref(&finished)),
        s.append(id, x, &[Event::PauseRequested]),
    )
    .await;
    // Concurrent appends land in some order: whichever comes after the
    // finish is refused.
    let after_finish = match (&a, &b) {
        (Ok(_), Err(e)) => e,
        (Err(e), _) => panic!("the finish was refused: {e}"),
        (Ok(sa), Ok(sb)) => {
            assert!(
                sb < sa,
                "an event was recorded after the finish ({sb} > {sa})"
            );
            &Error::Finished { rollout: id }
        }
    };
    assert!(
        matches!(after_finish, Error::Finished { rollout } if *rollout == id),
        "{after_finish}"
    );
    let before = s.events(id, 0).await.unwrap_or_else(fail);
    let refused = |r: Result<u64, Error>, who: &str| match r {
        Err(Error::Finished { rollout }) if rollout == id => {}
        other => panic!("{who} appended to a finished rollout: {other:?}"),
    };
    refused(
        s.append(id, x, std::slice::from_ref(&finished)).await,
        "its controller",
    );
    refused(
        s.append(id, Writer::Person("alice"), &[Event::AbortRequested])
            .await,
        "a person",
    );
    s.release(id, f).await.unwrap_or_else(fail);
    let g = s
        .lease(id, "y", Duration::from_secs(60))
        .await
        .unwrap_or_else(fail);
    refused(
        s.append(
            id,
            Writer::Controller {
                owner: "y",
                fence: g,
            },
            &[Event::Interrupted {
                reason: "late".into(),
            }],
        )
        .await,
        "a later controller",
    );
    assert_eq!(s.events(id, 0).await.unwrap_or_else(fail), before);
    assert!(s.unfinished().await.unwrap_or_else(fail).is_empty());
}

async fn futures_join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none()
            && let std::task::Poll::Ready(v) = a.as_mut().poll(cx)
        {
            ra = Some(v);
        }
        if rb.is_none()
            && let std::task::Poll::Ready(v) = b.as_mut().poll(cx)
        {
            rb = Some(v);
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    match (ra, rb) {
        (Some(a), Some(b)) => (a, b),
        _ => unreachable!("both futures completed"),
    }
}

/// `list(Some(service))` shows only that service, newest first.
pub async fn list_filters_by_service_newest_first(s: &dyn StateStore) {
    let a = s
        .create(&request("web", "v2", None))
        .await
        .unwrap_or_else(fail)
        .id;
    s.create(&request("api", "v2", None))
        .await
        .unwrap_or_else(fail);
    let c = s
        .create(&request("web", "v3", None))
        .await
        .unwrap_or_else(fail)
        .id;
    let ids: Vec<_> = s
        .list(Some("web"))
        .await
        .unwrap_or_else(fail)
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![c, a]);
}

/// Recording a digest again with another version label is refused.
pub async fn a_digest_is_never_rebound(s: &dyn StateStore) {
    let d = Digest::of_bytes(b"build 7");
    s.register_artifact(&Artifact::new("v7", d.clone()))
        .await
        .unwrap_or_else(fail);
    s.register_artifact(&Artifact::new("v7", d.clone()))
        .await
        .unwrap_or_else(fail);
    let err = s
        .register_artifact(&Artifact::new("v8", d.clone()))
        .await
        .expect_err("rebinding");
    assert!(matches!(err, Error::DigestRebound { .. }), "{err}");
    assert_eq!(
        s.artifact(&d)
            .await
            .unwrap_or_else(fail)
            .map(|a| a.version)
            .as_deref(),
        Some("v7")
    );
    // A rollout request is an artifact record too.
    let mut req = request("web", "v9", None);
    req.artifact = Artifact::new("v9", d);
    assert!(matches!(
        s.create(&req).await,
        Err(Error::DigestRebound { .. })
    ));
}

/// Unknown rollouts give `NotFound`, not a panic or an empty answer.
pub async fn unknown_rollouts_are_not_found(s: &dyn StateStore) {
    let id = rollgate_deploy::RolloutId(4242);
    assert!(matches!(s.request(id).await, Err(Error::NotFound(_))));
    assert!(matches!(s.events(id, 0).await, Err(Error::NotFound(_))));
    assert!(matches!(
        s.lease(id, "a", Duration::from_secs(1)).await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        s.append(id, Writer::Person("a"), &[Event::AbortRequested])
            .await,
        Err(Error::NotFound(_))
    ));
}

/// Two store instances on one backend (two connections, two controllers)
/// race on one rollout: `a` writes with its fence while `b` takes the lease
/// over. Every write of `a` after the takeover is rejected, nothing of `a`
/// lands after `b`'s first event, and the log has no gaps. For a store
/// without a shared backend, pass the same store twice.
pub async fn a_stale_fence_loses_the_race_to_a_new_controller(
    a: &dyn StateStore,
    b: &dyn StateStore,
) {
    let id = a
        .create(&request("web", "v2", None))
        .await
        .unwrap_or_else(fail)
        .id;
    // A zero-length lease: `b` may take over at any moment.
    let fa = a.lease(id, "a", Duration::ZERO).await.unwrap_or_else(fail);
    let wa = Writer::Controller {
        owner: "a",
        fence: fa,
    };
    let writes_of_a = async {
        let mut outcomes = Vec::new();
        for phase in 0..40 {
            outcomes.push(a.append(id, wa, &[Event::BakeElapsed { phase }]).await);
            tokio::task::yield_now().await;
        }
        outcomes
    };
    let takeover = async {
        tokio::task::yield_now().await;
        let fb = b
            .lease(id, "b", Duration::from_secs(60))
            .await
            .unwrap_or_else(fail);
        let wb = Writer::Controller {
            owner: "b",
            fence: fb,
        };
        b.append(
            id,
            wb,
            &[Event::ControllerStarted {
                owner: "b".into(),
                fence: fb.0,
            }],
        )
        .await
        .unwrap_or_else(fail);
        fb
    };
    let (outcomes, fb) = tokio::join!(writes_of_a, takeover);
    assert!(fb > fa, "the new controller must get a higher fence");
    for r in &outcomes {
        if let Err(e) = r {
            assert!(matches!(e, Error::StaleFence { .. }), "{e}");
        }
    }
    // Once rejected, always rejected: no write of `a` succeeds after one failed.
    let first_rejected = outcomes.iter().position(Result::is_err);
    if let Some(i) = first_rejected {
        assert!(
            outcomes[i..].iter().all(Result::is_err),
            "a stale fence wrote again after being rejected"
        );
    }
    let err = a
        .append(id, wa, &[Event::BakeElapsed { phase: 99 }])
        .await
        .expect_err("the old controller's fence is stale");
    assert!(matches!(err, Error::StaleFence { .. }), "{err}");
    let log = b.events(id, 0).await.unwrap_or_else(fail);
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=log.len() as u64).collect::<Vec<_>>(),
        "the log has gaps"
    );
    let first_b = log
        .iter()
        .position(|e| e.actor == "b")
        .unwrap_or_else(|| panic!("b's event is missing"));
    assert!(
        log[first_b..].iter().all(|e| e.actor == "b"),
        "the old controller wrote after the new one took over"
    );
    let landed_a = outcomes.iter().filter(|r| r.is_ok()).count();
    assert_eq!(
        first_b, landed_a,
        "every acknowledged write of a is in the log"
    );
}
