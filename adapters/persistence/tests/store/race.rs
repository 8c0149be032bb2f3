//! Concurrent rotations of one token, through two pools (two "server
//! instances") on one database: exactly one rotation, no storage error.

use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use application::ports::{RotateOutcome, RotateRequest, SessionRepository, StoreError};
use domain::{Generation, RotationDecision, RotationPolicy, SessionStatus};

use crate::common::*;

const CALLERS: usize = 50;

on_both_backends!(
    concurrent_rotations_without_grace_give_one_rotation_then_reuse,
    concurrent_rotations_from_one_agent_in_grace_give_one_rotation_and_grace_replays,
);

/// `CALLERS` threads present the same token at the same instant.
fn race(
    db: &TestDatabase,
    grace: Duration,
) -> (Vec<RotationDecision>, domain::Session, domain::TokenDigest) {
    let instances = [db.open(8), db.connect(8)];
    let alice = user(&instances[0], "alice");
    let (session, token) = login(&instances[0], &alice, at(0));
    let successor = digest();
    let request = RotateRequest {
        policy: RotationPolicy { grace, ..policy() },
        ..rotate_request(&instances[0], token, successor, at(5), UA)
    };
    let barrier = Barrier::new(CALLERS);
    let results: Vec<Result<RotateOutcome, StoreError>> = thread::scope(|scope| {
        let callers: Vec<_> = (0..CALLERS)
            .map(|i| {
                let (db, request, barrier) = (&instances[i % 2], request.clone(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    db.rotate(request)
                })
            })
            .collect();
        callers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let decisions = results
        .into_iter()
        .map(|r| decision(&r.unwrap_or_else(|e| panic!("storage error under concurrency: {e}"))))
        .collect();
    (decisions, session, successor)
}

fn count(decisions: &[RotationDecision], wanted: RotationDecision) -> usize {
    decisions.iter().filter(|d| **d == wanted).count()
}

fn concurrent_rotations_without_grace_give_one_rotation_then_reuse(db: &TestDatabase) {
    let (decisions, session, _) = race(db, Duration::ZERO);
    let rotate = RotationDecision::Rotate {
        next: Generation::new(1),
    };
    assert_eq!(count(&decisions, rotate), 1, "{decisions:?}");
    // The first late caller is theft evidence and revokes the family; the
    // rest find it revoked.
    assert_eq!(
        count(&decisions, RotationDecision::Reuse),
        1,
        "{decisions:?}"
    );
    assert_eq!(
        count(&decisions, RotationDecision::Revoked),
        CALLERS - 2,
        "{decisions:?}"
    );
    let fresh = db.connect(1);
    assert_eq!(
        fresh.status(session.id, idle(), at(6)).unwrap(),
        SessionStatus::Revoked
    );
}

fn concurrent_rotations_from_one_agent_in_grace_give_one_rotation_and_grace_replays(
    db: &TestDatabase,
) {
    let (decisions, session, successor) = race(db, Duration::from_secs(10));
    let rotate = RotationDecision::Rotate {
        next: Generation::new(1),
    };
    assert_eq!(count(&decisions, rotate), 1, "{decisions:?}");
    assert_eq!(
        count(&decisions, RotationDecision::GraceReplay),
        CALLERS - 1,
        "{decisions:?}"
    );

    let fresh = db.connect(1);
    assert_eq!(
        fresh.status(session.id, idle(), at(6)).unwrap(),
        SessionStatus::Live
    );
    // Exactly one successor exists, and it is the current token.
    let next = rotate_request(&fresh, successor, digest(), at(7), UA);
    assert_eq!(
        decision(&fresh.rotate(next).unwrap()),
        RotationDecision::Rotate {
            next: Generation::new(2)
        }
    );
}
