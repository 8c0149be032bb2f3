//! The webhook outbox: a row per security event, written with it, and
//! handed out one claim at a time.

use std::time::Duration;

use application::ports::{AuditTrail, RevokeReason, SessionRepository, WebhookOutbox};
use domain::SecurityEventKind;

use crate::common::*;

on_both_backends!(
    every_event_is_queued_with_itself_and_claimed_once_per_lease,
    a_result_for_a_claim_that_ran_out_changes_nothing,
    a_retry_makes_the_row_due_again_at_its_time,
    concurrent_claimers_never_share_a_row,
);

const LEASE: Duration = Duration::from_secs(60);

/// Records a `logout_all` event for a fresh user at `at(secs)`.
fn event(db: &Database, name: &str, secs: i64) {
    let u = user(db, name);
    login(db, &u, at(secs));
    db.revoke_all(u.id, RevokeReason::LogoutAll, at(secs))
        .unwrap();
}

fn every_event_is_queued_with_itself_and_claimed_once_per_lease(test: &TestDatabase) {
    let db = test.open(2);
    assert!(db.claim_due(at(0), LEASE, 10).unwrap().is_empty());
    event(&db, "alice", 1);
    event(&db, "bob", 2);
    assert_eq!(db.pending().unwrap(), 2);

    // Not due before the event, then oldest first.
    assert!(db.claim_due(at(0), LEASE, 10).unwrap().is_empty());
    let claimed = db.claim_due(at(5), LEASE, 1).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, 1);
    assert_eq!(claimed[0].event.kind, SecurityEventKind::LogoutAll);
    let events = db.security_events(None, None, 10).unwrap();
    let alice = events.iter().find(|e| e.created_at == at(1)).unwrap();
    assert_eq!(claimed[0].event, *alice);

    // Claimed: nobody else gets it until the lease ends.
    let rest = db.claim_due(at(5), LEASE, 10).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event.created_at, at(2));
    assert!(db.claim_due(at(60), LEASE, 10).unwrap().is_empty());

    // Delivered: gone, for good.
    db.finish(claimed[0].claim()).unwrap();
    assert_eq!(db.pending().unwrap(), 1);
    let again = db.claim_due(at(70), LEASE, 10).unwrap();
    assert_eq!(again.len(), 1, "only bob's, its lease over");
    assert_eq!(again[0].event.created_at, at(2));
    assert_eq!(again[0].attempt, 2);
}

fn a_result_for_a_claim_that_ran_out_changes_nothing(test: &TestDatabase) {
    let db = test.open(2);
    event(&db, "alice", 1);
    let first = db.claim_due(at(1), LEASE, 10).unwrap().remove(0);
    // The first claimer stalled past its lease; another took the row over.
    let second = db.claim_due(at(100), LEASE, 10).unwrap().remove(0);
    assert_eq!(second.attempt, first.attempt + 1);
    db.finish(first.claim()).unwrap();
    db.retry_at(first.claim(), at(101), "late").unwrap();
    assert_eq!(db.pending().unwrap(), 1);
    assert!(db.claim_due(at(101), LEASE, 10).unwrap().is_empty());
    db.finish(second.claim()).unwrap();
    assert_eq!(db.pending().unwrap(), 0);
}

fn a_retry_makes_the_row_due_again_at_its_time(test: &TestDatabase) {
    let db = test.open(2);
    event(&db, "alice", 1);
    let claimed = db.claim_due(at(1), LEASE, 10).unwrap().remove(0);
    db.retry_at(claimed.claim(), at(11), &"é".repeat(400))
        .unwrap();
    assert!(db.claim_due(at(10), LEASE, 10).unwrap().is_empty());
    let again = db.claim_due(at(11), LEASE, 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
}

fn concurrent_claimers_never_share_a_row(test: &TestDatabase) {
    let setup = test.open(2);
    for i in 0..40 {
        event(&setup, &format!("user{i}"), 1);
    }
    let mut claimed: Vec<i64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let db = test.open(2);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..10 {
                        for d in db.claim_due(at(5), LEASE, 3).unwrap() {
                            mine.push(d.event.id);
                        }
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    // Whatever the contention left.
    claimed.extend(
        setup
            .claim_due(at(5), LEASE, 100)
            .unwrap()
            .into_iter()
            .map(|d| d.event.id),
    );
    let mut unique = claimed.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), claimed.len(), "a row was claimed twice");
    assert_eq!(unique.len(), 40);
}
