//! The cleanup job's store: exactly what has expired goes, in batches,
//! without failing the refreshes that run meanwhile.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use application::cleanup::Batching;
use application::ports::{
    CleanupCutoffs, CleanupReport, ExpiredDataStore, Revocation, RevocationKey, RevocationList,
    SessionRepository,
};
use domain::{AccessTokenId, RotationDecision, SessionId, SessionStatus};
use persistence::testing::seed_expired_sessions;
use persistence::DbRevocationList;

use crate::common::*;

on_both_backends!(
    cleanup_removes_exactly_what_has_expired,
    a_pass_stops_after_the_batch_under_way_when_told_to,
    a_pass_finding_the_lock_taken_does_nothing,
    refreshes_during_a_cleanup_of_100_000_expired_rows_all_succeed,
);

fn cutoffs_at(secs: i64) -> CleanupCutoffs {
    CleanupCutoffs {
        now: at(secs),
        revocations_before: at(secs),
        audit_before: at(secs).minus(Duration::from_secs(90 * 86_400)),
    }
}

fn small_batches() -> Batching {
    Batching {
        batch_size: 2,
        pause: Duration::ZERO,
    }
}

fn cleanup_removes_exactly_what_has_expired(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let bob = user(&db, "bob");
    // Sessions last 1000 s. Ends at 1000: three tokens.
    let (ended, t0, t1) = login_and_rotate(&db, &alice);
    let t2 = digest();
    assert!(matches!(
        decision(&rotate(&db, t1, t2, at(2), UA)),
        RotationDecision::Rotate { .. }
    ));
    // Ends at 1500; idle-expired at 1000, but not past its absolute end.
    let (idle_session, idle_token) = login(&db, &alice, at(500));
    // Revoked, ends at 1000: goes. Revoked, ends at 1600: stays.
    let (revoked_old, revoked_old_token) = login(&db, &bob, at(0));
    assert!(db
        .revoke_one(bob.id, revoked_old.id, idle(), at(10))
        .unwrap());
    let (revoked_new, revoked_new_token) = login(&db, &bob, at(600));
    assert!(db
        .revoke_one(bob.id, revoked_new.id, idle(), at(610))
        .unwrap());
    // Live and in use: stays.
    let (live, live_token) = login(&db, &bob, at(950));

    let list = DbRevocationList::without_polling(db.clone());
    let key = |n: u8| RevocationKey::AccessToken(AccessTokenId::from_random_bytes([n; 16]));
    let session_key = RevocationKey::Session(SessionId::from_random_bytes([9; 16]));
    list.revoke(&[
        Revocation {
            key: key(1),
            expires_at: at(999),
        },
        Revocation {
            key: key(2),
            expires_at: at(1_000),
        },
        Revocation {
            key: key(3),
            expires_at: at(1_001),
        },
        Revocation {
            key: session_key,
            expires_at: at(5_000),
        },
    ])
    .unwrap();

    let report = db
        .purge_expired(cutoffs_at(1_000), small_batches(), &AtomicBool::new(false))
        .unwrap()
        .unwrap();
    assert_eq!(
        report,
        CleanupReport {
            refresh_tokens: 3 + 1,
            sessions: 2,
            revocations: 2,
            dpop_proofs: 0,
            audit_rows: Some(0),
        }
    );

    // What went is gone...
    for gone in [ended.id, revoked_old.id] {
        assert_eq!(
            db.status(gone, idle(), at(1_000)).unwrap(),
            SessionStatus::Unknown
        );
    }
    for token in [t0, t1, t2, revoked_old_token] {
        assert_eq!(db.locate(&token).unwrap(), None);
    }
    // ...and everything else is as it was.
    assert_eq!(
        db.status(idle_session.id, idle(), at(1_000)).unwrap(),
        SessionStatus::Expired
    );
    assert_eq!(
        decision(&rotate(&db, idle_token, digest(), at(1_000), UA)),
        RotationDecision::Expired(domain::ExpiryKind::Idle)
    );
    assert_eq!(
        decision(&rotate(&db, revoked_new_token, digest(), at(1_000), UA)),
        RotationDecision::Revoked
    );
    assert!(matches!(
        decision(&rotate(&db, live_token, digest(), at(1_000), UA)),
        RotationDecision::Rotate { .. }
    ));
    assert_eq!(
        db.status(live.id, idle(), at(1_000)).unwrap(),
        SessionStatus::Live
    );
    let mut left: Vec<_> = list.live(at(1_000)).unwrap();
    left.sort_by_key(|e| e.expires_at);
    assert_eq!(
        left.iter().map(|e| e.key).collect::<Vec<_>>(),
        vec![key(3), session_key]
    );

    // Nothing left to do.
    assert_eq!(
        db.purge_expired(cutoffs_at(1_000), small_batches(), &AtomicBool::new(false))
            .unwrap()
            .unwrap(),
        CleanupReport {
            audit_rows: Some(0),
            ..CleanupReport::default()
        }
    );
}

fn a_pass_finding_the_lock_taken_does_nothing(db: &TestDatabase) {
    let Some(lock) = db.hold_cleanup_lock() else {
        // SQLite has no lock: passes may overlap, harmlessly.
        return;
    };
    let database = db.open(2);
    let seeded = seed_expired_sessions(&database, 10, 1, at(0));
    assert_eq!(
        database
            .purge_expired(cutoffs_at(1), Batching::default(), &AtomicBool::new(false))
            .unwrap(),
        None,
        "another instance is cleaning up"
    );
    drop(lock);
    let report = database
        .purge_expired(cutoffs_at(1), Batching::default(), &AtomicBool::new(false))
        .unwrap()
        .unwrap();
    assert_eq!(report.sessions, seeded.sessions);
    assert_eq!(report.refresh_tokens, seeded.refresh_tokens);
}

/// 50 000 expired sessions with one token each: 100 000 rows. Four threads
/// keep rotating live sessions while the job deletes them in batches of
/// 1 000; every rotation must succeed.
fn refreshes_during_a_cleanup_of_100_000_expired_rows_all_succeed(db: &TestDatabase) {
    let database = db.open(6);
    let seeded = seed_expired_sessions(&database, 50_000, 1, at(0));
    let alice = user(&database, "alice");
    let done = Arc::new(AtomicBool::new(false));
    let refreshers: Vec<_> = (0..4)
        .map(|_| {
            let (db, alice, done) = (database.clone(), alice.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let (_, mut token) = login(&db, &alice, at(100));
                let mut rotations = 0u32;
                let mut t = at(100);
                while !done.load(Ordering::Relaxed) || rotations < 5 {
                    t = t.plus(Duration::from_millis(1));
                    let next = digest();
                    let outcome = rotate(&db, token, next, t, UA);
                    assert!(
                        matches!(decision(&outcome), RotationDecision::Rotate { .. }),
                        "a refresh failed during cleanup: {outcome:?}"
                    );
                    token = next;
                    rotations += 1;
                }
                rotations
            })
        })
        .collect();

    let started = Instant::now();
    let report = database
        .purge_expired(
            cutoffs_at(1),
            Batching {
                batch_size: 1_000,
                pause: Duration::from_millis(1),
            },
            &AtomicBool::new(false),
        )
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let rotations: u32 = refreshers.into_iter().map(|h| h.join().unwrap()).sum();

    assert_eq!(report.sessions, seeded.sessions);
    assert_eq!(report.refresh_tokens, seeded.refresh_tokens);
    assert_eq!(report.sessions + report.refresh_tokens, 100_000);
    assert!(rotations >= 20);
    eprintln!("cleanup of 100 000 rows: {took:?}, {rotations} rotations meanwhile");
    assert_eq!(
        database.list_live(alice.id, idle(), at(200)).unwrap().len(),
        4,
        "the live sessions are untouched"
    );
}

fn a_pass_stops_after_the_batch_under_way_when_told_to(db: &TestDatabase) {
    let database = db.open(2);
    seed_expired_sessions(&database, 50, 1, at(0));
    let batching = Batching {
        batch_size: 10,
        pause: Duration::ZERO,
    };
    let stopped = database
        .purge_expired(cutoffs_at(1), batching, &AtomicBool::new(true))
        .unwrap()
        .unwrap();
    assert_eq!(
        stopped,
        CleanupReport {
            audit_rows: Some(0),
            ..CleanupReport::default()
        },
        "told to stop before a batch"
    );
    let report = database
        .purge_expired(cutoffs_at(1), batching, &AtomicBool::new(false))
        .unwrap()
        .unwrap();
    assert_eq!((report.refresh_tokens, report.sessions), (50, 50));
}
