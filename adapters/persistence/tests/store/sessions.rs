use application::ports::RotateOutcome;
use application::ports::{RevokeReason, SessionRepository};
use domain::{ExpiryKind, Generation, RotationDecision, SessionId, SessionStatus};

use crate::common::*;

on_both_backends!(
    the_least_recently_used_sessions_beyond_the_limit_are_evicted,
    eviction_reports_the_sessions_it_revoked,
    revoke_one_refuses_an_idle_expired_session_as_the_list_would,
    list_live_and_status_follow_the_idle_and_absolute_deadlines,
    revoke_one_only_ends_a_live_session_of_its_owner,
    revoke_all_ends_every_live_session_of_the_user,
);

fn ids(db: &Database, user: &domain::User, now: domain::Timestamp) -> Vec<SessionId> {
    db.list_live(user.id, idle(), now)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect()
}

fn the_least_recently_used_sessions_beyond_the_limit_are_evicted(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let bob = user(&db, "bob");
    let (bobs, _) = login(&db, &bob, at(0));
    let (s1, t1) = login_limited(&db, &alice, at(0), 3);
    let (s2, _) = login_limited(&db, &alice, at(1), 3);
    let (s3, _) = login_limited(&db, &alice, at(2), 3);
    assert_eq!(ids(&db, &alice, at(3)), vec![s3.id, s2.id, s1.id]);

    // Using s1 makes s2 the least recently used.
    assert!(matches!(
        decision(&rotate(&db, t1, digest(), at(3), UA)),
        RotationDecision::Rotate { .. }
    ));
    let (s4, _) = login_limited(&db, &alice, at(4), 3);
    assert_eq!(
        db.status(s2.id, idle(), at(5)).unwrap(),
        SessionStatus::Revoked
    );
    assert_eq!(ids(&db, &alice, at(5)), vec![s4.id, s1.id, s3.id]);

    // A limit of one keeps only the new session; other users are untouched.
    let (s5, _) = login_limited(&db, &alice, at(6), 1);
    assert_eq!(ids(&db, &alice, at(7)), vec![s5.id]);
    assert_eq!(
        db.status(bobs.id, idle(), at(7)).unwrap(),
        SessionStatus::Live
    );
}

fn list_live_and_status_follow_the_idle_and_absolute_deadlines(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (a, a0) = login(&db, &alice, at(0));
    let (b, mut b_token) = login(&db, &alice, at(10));

    assert_eq!(ids(&db, &alice, at(50)), vec![b.id, a.id]);
    assert_eq!(
        db.status(a.id, idle(), at(99)).unwrap(),
        SessionStatus::Live
    );
    // Idle: not used for 100 s.
    assert_eq!(
        db.status(a.id, idle(), at(100)).unwrap(),
        SessionStatus::Expired
    );
    assert_eq!(ids(&db, &alice, at(100)), vec![b.id]);
    let outcome = rotate(&db, a0, digest(), at(100), UA);
    assert_eq!(
        decision(&outcome),
        RotationDecision::Expired(ExpiryKind::Idle)
    );
    let domain_outcome = match outcome {
        RotateOutcome::Decided { session, .. } => session,
        RotateOutcome::UnknownToken => panic!("token unknown"),
    };
    assert_eq!(
        domain_outcome.generation,
        Generation::FIRST,
        "an expired token changes nothing"
    );
    assert_eq!(domain_outcome.last_used_at, at(0));

    // Kept alive by rotations, b still ends 1000 s after its login.
    for t in (90..1_000).step_by(90) {
        let next = digest();
        assert!(matches!(
            decision(&rotate(&db, b_token, next, at(t), UA)),
            RotationDecision::Rotate { .. }
        ));
        b_token = next;
    }
    assert_eq!(
        db.status(b.id, idle(), at(1_009)).unwrap(),
        SessionStatus::Live
    );
    assert_eq!(ids(&db, &alice, at(1_009)), vec![b.id]);
    assert_eq!(
        db.status(b.id, idle(), at(1_010)).unwrap(),
        SessionStatus::Expired
    );
    assert!(ids(&db, &alice, at(1_010)).is_empty());
    assert_eq!(
        decision(&rotate(&db, b_token, digest(), at(1_010), UA)),
        RotationDecision::Expired(ExpiryKind::Absolute)
    );

    // Revoked wins over expired; unknown ids are unknown.
    let (c, _) = login(&db, &alice, at(2_000));
    assert!(db.revoke_one(alice.id, c.id, idle(), at(2_001)).unwrap());
    assert_eq!(
        db.status(c.id, idle(), at(5_000)).unwrap(),
        SessionStatus::Revoked
    );
    let unknown = SessionId::from_random_bytes([3; 16]);
    assert_eq!(
        db.status(unknown, idle(), at(0)).unwrap(),
        SessionStatus::Unknown
    );
}

fn revoke_one_only_ends_a_live_session_of_its_owner(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let bob = user(&db, "bob");
    let (a, _) = login(&db, &alice, at(0));

    assert!(
        !db.revoke_one(bob.id, a.id, idle(), at(1)).unwrap(),
        "not bob's"
    );
    assert_eq!(db.status(a.id, idle(), at(1)).unwrap(), SessionStatus::Live);
    assert!(db.revoke_one(alice.id, a.id, idle(), at(2)).unwrap());
    assert!(
        !db.revoke_one(alice.id, a.id, idle(), at(3)).unwrap(),
        "already revoked"
    );
    assert_eq!(
        db.status(a.id, idle(), at(3)).unwrap(),
        SessionStatus::Revoked
    );
    assert!(!db
        .revoke_one(
            alice.id,
            SessionId::from_random_bytes([4; 16]),
            idle(),
            at(3)
        )
        .unwrap());
}

fn revoke_all_ends_every_live_session_of_the_user(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let bob = user(&db, "bob");
    let (a1, _) = login(&db, &alice, at(0));
    let (a2, _) = login(&db, &alice, at(1));
    let (a3, _) = login(&db, &alice, at(2));
    let (b1, _) = login(&db, &bob, at(0));
    assert!(db.revoke_one(alice.id, a3.id, idle(), at(3)).unwrap());

    let mut revoked = db
        .revoke_all(alice.id, RevokeReason::LogoutAll, at(4))
        .unwrap();
    revoked.sort();
    let mut expected = vec![a1.id, a2.id];
    expected.sort();
    assert_eq!(
        revoked, expected,
        "the live ones, not the one already revoked"
    );
    for s in [&a1, &a2, &a3] {
        assert_eq!(
            db.status(s.id, idle(), at(5)).unwrap(),
            SessionStatus::Revoked
        );
    }
    assert_eq!(
        db.status(b1.id, idle(), at(5)).unwrap(),
        SessionStatus::Live
    );
    assert_eq!(
        db.revoke_all(alice.id, RevokeReason::LogoutAll, at(6))
            .unwrap(),
        Vec::new()
    );
}

fn eviction_reports_the_sessions_it_revoked(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (s1, _) = login_limited(&db, &alice, at(0), 2);
    let first =
        SessionRepository::create(&db, new_session(&alice, at(1), UA), digest(), 2).unwrap();
    assert!(first.evicted.is_empty(), "within the limit");
    let third =
        SessionRepository::create(&db, new_session(&alice, at(2), UA), digest(), 2).unwrap();
    assert_eq!(third.evicted, vec![s1.id]);
    assert_eq!(third.session.created_at, at(2));
    assert_eq!(
        db.status(s1.id, idle(), at(3)).unwrap(),
        SessionStatus::Revoked
    );
}

fn revoke_one_refuses_an_idle_expired_session_as_the_list_would(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (a, _) = login(&db, &alice, at(0));
    // Idle for 100 s: no longer in the list, so not deletable either.
    assert!(ids(&db, &alice, at(100)).is_empty());
    assert!(!db.revoke_one(alice.id, a.id, idle(), at(100)).unwrap());
    assert_eq!(
        db.status(a.id, idle(), at(100)).unwrap(),
        SessionStatus::Expired,
        "left as it was"
    );
    // One millisecond earlier it was live and could be ended.
    let (b, _) = login(&db, &alice, at(200));
    let just_before = at(300).minus(std::time::Duration::from_millis(1));
    assert!(db.revoke_one(alice.id, b.id, idle(), just_before).unwrap());
}
