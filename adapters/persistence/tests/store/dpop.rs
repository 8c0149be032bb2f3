//! DPoP in the database: proof ids accepted once per key within their
//! lifetime, purged after it, and sessions that remember their key. A
//! refresh or a logout of a bound session records its proof id in its own
//! transaction: what commits has spent the proof, what rolls back has not.

use std::sync::atomic::AtomicBool;
use std::sync::Barrier;
use std::thread;
use std::time::Duration;

use application::cleanup::Batching;
use application::ports::{
    AuditTrail, CheckedProof, CleanupCutoffs, DpopReplayStore, EndOutcome, EndReason, EndRequest,
    ExpiredDataStore, RotateOutcome, RotateRequest, SessionRepository,
};
use domain::{
    Generation, Jkt, NewSession, RotationDecision, SecurityEventKind, SessionStatus, TokenDigest,
    User,
};
use serde_json::Value;

use crate::common::*;

on_both_backends!(
    a_proof_id_is_accepted_once_until_its_time_has_passed,
    proof_ids_are_scoped_to_their_key,
    the_cleanup_forgets_proof_ids_no_proof_could_reuse,
    a_bound_session_remembers_its_key,
    a_bound_refresh_spends_its_proof_id_in_the_rotation,
    a_rotation_that_rolls_back_leaves_its_proof_id_unspent,
    an_unbound_session_records_no_proof_id,
    one_proof_raced_on_two_instances_is_taken_once,
    a_logout_of_a_bound_session_needs_a_fresh_proof_by_its_key,
    a_login_ends_its_old_cookies_bound_session_only_with_the_key_it_proved,
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

/// A session of `owner` bound to `key`, and its first token.
fn bound_login(db: &Database, owner: &User, key: &Jkt) -> (domain::Session, TokenDigest) {
    let token = digest();
    let created = SessionRepository::create(
        db,
        NewSession {
            dpop_jkt: Some(key.clone()),
            ..new_session(owner, at(0), UA)
        },
        token,
        10,
    )
    .unwrap();
    (created.session, token)
}

fn proof(key: &Jkt, jti: &str) -> CheckedProof {
    CheckedProof {
        key: key.clone(),
        jti: jti.to_owned(),
        remember_until: at(61),
    }
}

fn rotate_with(
    db: &Database,
    token: TokenDigest,
    successor: TokenDigest,
    proof: Option<CheckedProof>,
) -> RotateRequest {
    RotateRequest {
        proof,
        ..rotate_request(db, token, successor, at(1), UA)
    }
}

/// Whether the proof id `jti` of `key` is still unspent at `at(2)` (asking
/// spends it).
fn unspent(db: &Database, key: &Jkt, jti: &str) -> bool {
    db.first_use(key, jti, at(61), at(2)).unwrap()
}

fn a_bound_refresh_spends_its_proof_id_in_the_rotation(db: &TestDatabase) {
    let db = db.open(2);
    let owner = user(&db, "bound");
    let k = key("k");
    let (session, first) = bound_login(&db, &owner, &k);
    let second = digest();
    let rotated = db
        .rotate(rotate_with(&db, first, second, Some(proof(&k, "p1"))))
        .unwrap();
    assert_eq!(
        decision(&rotated),
        RotationDecision::Rotate {
            next: Generation::new(1)
        }
    );
    // The same proof again, with the successor: a replay is no proof.
    let replayed = db
        .rotate(rotate_with(&db, second, digest(), Some(proof(&k, "p1"))))
        .unwrap();
    assert_eq!(decision(&replayed), RotationDecision::DpopMismatch);
    assert_eq!(
        db.status(session.id, idle(), at(2)).unwrap(),
        SessionStatus::Live,
        "nothing revoked"
    );
    // A fresh proof carries on from the unspent successor.
    let fresh = db
        .rotate(rotate_with(&db, second, digest(), Some(proof(&k, "p2"))))
        .unwrap();
    assert!(matches!(decision(&fresh), RotationDecision::Rotate { .. }));
    assert!(!unspent(&db, &k, "p1"));
    assert!(!unspent(&db, &k, "p2"));
}

fn a_rotation_that_rolls_back_leaves_its_proof_id_unspent(db: &TestDatabase) {
    let db = db.open(2);
    let owner = user(&db, "bound");
    let k = key("k");
    let (session, first) = bound_login(&db, &owner, &k);
    // A successor digest already on record: the insert fails after the
    // proof id was written, and the whole transaction rolls back.
    let failing = db.rotate(rotate_with(&db, first, first, Some(proof(&k, "p1"))));
    assert!(failing.is_err(), "{failing:?}");
    assert!(
        unspent(&db, &k, "p1"),
        "the rolled back proof id is unspent"
    );
    assert_eq!(db.refresh_logs(owner.id, None, 10).unwrap().len(), 0);
    let live = db.list_live(owner.id, idle(), at(2)).unwrap();
    assert_eq!(live[0].id, session.id);
    assert_eq!(live[0].generation, Generation::FIRST, "nothing rotated");
}

fn an_unbound_session_records_no_proof_id(db: &TestDatabase) {
    let db = db.open(2);
    let owner = user(&db, "plain");
    let (_, first) = login(&db, &owner, at(0));
    let k = key("k");
    let rotated = db
        .rotate(rotate_with(&db, first, digest(), Some(proof(&k, "p1"))))
        .unwrap();
    assert!(matches!(
        decision(&rotated),
        RotationDecision::Rotate { .. }
    ));
    assert!(unspent(&db, &k, "p1"));
}

/// One proof, presented at once through two pools ("instances") for two
/// sessions bound to its key (one browser, two logins): the proof id is
/// taken by exactly one rotation; the other refuses and spends nothing.
fn one_proof_raced_on_two_instances_is_taken_once(db: &TestDatabase) {
    let instances = [db.open(4), db.connect(4)];
    let owner = user(&instances[0], "bound");
    let k = key("k");
    let sessions = [
        bound_login(&instances[0], &owner, &k),
        bound_login(&instances[0], &owner, &k),
    ];
    let barrier = Barrier::new(2);
    let outcomes: Vec<RotateOutcome> = thread::scope(|scope| {
        let racers: Vec<_> = (0..2)
            .map(|i| {
                let db = &instances[i];
                let request = rotate_with(db, sessions[i].1, digest(), Some(proof(&k, "once")));
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    db.rotate(request)
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().unwrap().unwrap())
            .collect()
    });
    let mut decisions: Vec<_> = outcomes.iter().map(decision).collect();
    decisions.sort_by_key(|d| matches!(d, RotationDecision::Rotate { .. }));
    assert_eq!(
        decisions,
        [
            RotationDecision::DpopMismatch,
            RotationDecision::Rotate {
                next: Generation::new(1)
            }
        ]
    );
}

fn end_with(db: &Database, token: TokenDigest, proof: Option<CheckedProof>) -> EndOutcome {
    db.end_by_token(EndRequest {
        token,
        reason: EndReason::Logout,
        policy: policy(),
        client: client(UA),
        now: at(1),
        proof,
        recorded_key: None,
    })
    .unwrap()
}

fn a_logout_of_a_bound_session_needs_a_fresh_proof_by_its_key(db: &TestDatabase) {
    let db = db.open(2);
    let owner = user(&db, "bound");
    let k = key("k");
    let (session, token) = bound_login(&db, &owner, &k);
    let refused = EndOutcome::DpopMismatch {
        session: session.id,
        user: owner.id,
    };
    // A proof id used before (asking records it).
    assert!(unspent(&db, &k, "spent"));
    for proof in [
        None,
        Some(proof(&key("thief"), "t1")),
        Some(proof(&k, "spent")),
    ] {
        assert_eq!(end_with(&db, token, proof), refused);
    }
    assert_eq!(
        db.status(session.id, idle(), at(2)).unwrap(),
        SessionStatus::Live,
        "nothing ended"
    );
    let events = db.security_events(Some(owner.id), None, 10).unwrap();
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e.kind == SecurityEventKind::DpopMismatch && e.session_id == Some(session.id)));
    let details: Value = serde_json::from_str(&events[1].details).unwrap();
    assert_eq!(details["via"], "logout");
    assert_eq!(details["proof"], "other_key");

    assert_eq!(
        end_with(&db, token, Some(proof(&k, "good"))),
        EndOutcome::Ended {
            session: session.id,
            user: owner.id,
        }
    );
    assert!(!unspent(&db, &k, "good"), "spent by the logout");
    assert_eq!(
        db.status(session.id, idle(), at(2)).unwrap(),
        SessionStatus::Revoked
    );
}

fn a_login_ends_its_old_cookies_bound_session_only_with_the_key_it_proved(db: &TestDatabase) {
    let db = db.open(2);
    let owner = user(&db, "bound");
    let k = key("k");
    let (session, token) = bound_login(&db, &owner, &k);
    let login = |recorded_key: Option<Jkt>| {
        db.end_by_token(EndRequest {
            token,
            reason: EndReason::ReplacedByLogin,
            policy: policy(),
            client: client(UA),
            now: at(1),
            proof: None,
            recorded_key,
        })
        .unwrap()
    };
    for thief in [None, Some(key("thief"))] {
        assert_eq!(
            login(thief),
            EndOutcome::DpopMismatch {
                session: session.id,
                user: owner.id,
            }
        );
    }
    assert_eq!(
        db.status(session.id, idle(), at(2)).unwrap(),
        SessionStatus::Live,
        "a login without the key ends nothing"
    );
    let events = db.security_events(Some(owner.id), None, 10).unwrap();
    assert_eq!(events.len(), 2);
    let details: Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details["via"], "login");

    // The key the login proved (its proof id recorded at admission) is no
    // second proof to record: it ends the session.
    assert_eq!(
        login(Some(k)),
        EndOutcome::Ended {
            session: session.id,
            user: owner.id,
        }
    );
    assert_eq!(
        db.status(session.id, idle(), at(2)).unwrap(),
        SessionStatus::Revoked
    );
}
