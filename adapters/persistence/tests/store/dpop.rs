//! DPoP in the database: proof ids accepted once per key within their
//! lifetime, purged after it, and sessions that remember their key.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use application::cleanup::Batching;
use application::ports::{CleanupCutoffs, DpopReplayStore, ExpiredDataStore, SessionRepository};
use domain::{Jkt, NewSession};

use crate::common::*;

on_both_backends!(
    a_proof_id_is_accepted_once_until_its_time_has_passed,
    proof_ids_are_scoped_to_their_key,
    the_cleanup_forgets_proof_ids_no_proof_could_reuse,
    a_bound_session_remembers_its_key,
);

fn key(name: &str) -> Jkt {
    Jkt::of_canonical_jwk(name)
}

fn a_proof_id_is_accepted_once_until_its_time_has_passed(db: &TestDatabase) {
    let store = db.open(2);
    let until = at(60);
    assert!(store.first_use(&key("a"), "jti-1", until, at(0)).unwrap());
    assert!(!store.first_use(&key("a"), "jti-1", until, at(1)).unwrap());
    assert!(!store
        .first_use(&key("a"), "jti-1", at(200), at(60))
        .unwrap());
    // Past its time no proof carrying it is accepted any more, so the id
    // may be taken again (by a proof with a fresh `iat`).
    assert!(store
        .first_use(&key("a"), "jti-1", at(121), at(61))
        .unwrap());
    assert!(!store
        .first_use(&key("a"), "jti-1", at(121), at(62))
        .unwrap());
}

fn proof_ids_are_scoped_to_their_key(db: &TestDatabase) {
    let store = db.open(2);
    assert!(store.first_use(&key("a"), "same", at(60), at(0)).unwrap());
    assert!(store.first_use(&key("b"), "same", at(60), at(0)).unwrap());
    assert!(store.first_use(&key("a"), "other", at(60), at(0)).unwrap());
}

fn the_cleanup_forgets_proof_ids_no_proof_could_reuse(db: &TestDatabase) {
    let store = db.open(2);
    assert!(store.first_use(&key("a"), "old", at(10), at(0)).unwrap());
    assert!(store.first_use(&key("a"), "new", at(100), at(0)).unwrap());
    let cutoffs = CleanupCutoffs {
        now: at(50),
        revocations_before: at(50),
        audit_before: at(0),
    };
    let batching = Batching {
        batch_size: 10,
        pause: Duration::ZERO,
    };
    let report = store
        .purge_expired(cutoffs, batching, &AtomicBool::new(false))
        .unwrap()
        .unwrap();
    assert_eq!(report.dpop_proofs, 1);
    assert!(!store.first_use(&key("a"), "new", at(100), at(50)).unwrap());
}

fn a_bound_session_remembers_its_key(db: &TestDatabase) {
    let store = db.open(2);
    let owner = user(&store, "bound");
    let created = SessionRepository::create(
        &store,
        NewSession {
            dpop_jkt: Some(key("k")),
            ..new_session(&owner, at(0), UA)
        },
        digest(),
        10,
    )
    .unwrap();
    assert_eq!(created.session.dpop_jkt, Some(key("k")));
    let live = store.list_live(owner.id, idle(), at(1)).unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].dpop_jkt, Some(key("k")));
}
