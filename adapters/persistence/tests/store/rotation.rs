use application::ports::{
    ClientInfo, EndOutcome, EndReason, RotateOutcome, RotateRequest, SessionRepository,
};
use domain::{Generation, ReuseResponse, RotationDecision, RotationPolicy, SessionStatus, User};

use crate::common::*;

on_both_backends!(
    the_current_token_rotates_into_the_next_generation,
    an_unknown_token_is_reported_as_such,
    a_replay_of_the_parent_inside_the_grace_window_is_a_grace_replay,
    reuse_revokes_every_session_of_the_user_and_is_committed,
    reuse_with_revoke_family_revokes_only_that_session,
    logout_with_a_rotated_token_ends_the_session_without_a_theft_response,
    a_login_carrying_a_rotated_token_is_reuse,
    a_login_carrying_a_current_token_ends_only_that_session,
    a_chain_rotated_from_memory_is_what_a_fresh_instance_finds,
    a_session_revoked_elsewhere_is_not_rotated_from_memory,
    a_session_rotated_elsewhere_is_not_rotated_from_memory,
);

fn the_current_token_rotates_into_the_next_generation(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, t0) = login(&db, &alice, at(0));
    assert_eq!(session.generation, Generation::FIRST);

    let t1 = digest();
    let outcome = db
        .rotate(RotateRequest {
            client: ClientInfo {
                ip: Some("192.0.2.9".to_owned()),
                user_agent: Some(UA.to_owned()),
            },
            ..rotate_request(&db, t0, t1, at(5), UA)
        })
        .unwrap();
    let RotateOutcome::Decided {
        decision: d,
        presented,
        session: after,
        user,
        revoked,
        outcome: domain::RefreshOutcome::Success,
        event: None,
    } = outcome
    else {
        panic!("token unknown");
    };
    assert!(revoked.is_empty(), "a rotation revokes nothing");
    assert_eq!(
        d,
        RotationDecision::Rotate {
            next: Generation::new(1)
        }
    );
    assert_eq!(presented, Generation::FIRST);
    // As stored now: the login recorded itself.
    assert_eq!(
        user,
        User {
            last_login_at: Some(session.created_at),
            ..alice
        }
    );
    assert_eq!(after.id, session.id);
    assert_eq!(after.generation, Generation::new(1));
    assert_eq!(after.rotated_at, at(5));
    assert_eq!(after.last_used_at, at(5));
    assert_eq!(after.last_ip.as_deref(), Some("192.0.2.9"));
    assert_eq!(after.last_user_agent.as_deref(), Some(UA));
    assert_eq!(
        (after.created_at, after.expires_at),
        (session.created_at, session.expires_at)
    );
    assert_eq!(after.revoked_at, None);
    // What is returned is what was stored.
    assert_eq!(
        db.list_live(alice.id, idle(), at(5)).unwrap(),
        vec![after.clone()]
    );

    // The successor is the current token now.
    let t2 = digest();
    let outcome = rotate(&db, t1, t2, at(6), UA);
    assert_eq!(
        decision(&outcome),
        RotationDecision::Rotate {
            next: Generation::new(2)
        }
    );
    let RotateOutcome::Decided { presented, .. } = outcome else {
        unreachable!()
    };
    assert_eq!(presented, Generation::new(1));

    // Rotated tokens are kept, so a replay is recognised: two generations
    // old, it is reuse even inside the grace window.
    assert_eq!(
        decision(&rotate(&db, t0, digest(), at(7), UA)),
        RotationDecision::Reuse
    );
}

fn an_unknown_token_is_reported_as_such(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, _) = login(&db, &alice, at(0));
    assert_eq!(db.locate(&digest()).unwrap(), None);
    for reason in [EndReason::Logout, EndReason::ReplacedByLogin] {
        assert_eq!(
            end(&db, digest(), reason, ReuseResponse::RevokeAll, at(1)),
            EndOutcome::UnknownToken
        );
    }
    assert_eq!(
        db.status(session.id, idle(), at(1)).unwrap(),
        SessionStatus::Live
    );
}

fn a_replay_of_the_parent_inside_the_grace_window_is_a_grace_replay(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (_, t0) = login(&db, &alice, at(0));
    let t1 = digest();
    assert!(matches!(
        decision(&rotate(&db, t0, t1, at(5), UA)),
        RotationDecision::Rotate { .. }
    ));

    // Same agent, 9 s after the rotation (window 10 s): the same successor.
    let outcome = rotate(&db, t0, t1, at(14), UA);
    let RotateOutcome::Decided {
        decision: d,
        presented,
        session,
        ..
    } = outcome
    else {
        panic!("token unknown");
    };
    assert_eq!(d, RotationDecision::GraceReplay);
    assert_eq!(presented, Generation::FIRST);
    assert_eq!(session.generation, Generation::new(1), "nothing rotated");
    assert_eq!(session.rotated_at, at(5));
    assert_eq!(session.last_used_at, at(14), "the use is recorded");
    assert_eq!(session.revoked_at, None);
    assert_eq!(
        db.list_live(alice.id, idle(), at(14)).unwrap(),
        vec![session]
    );

    // The successor still rotates normally afterwards.
    let t2 = digest();
    assert_eq!(
        decision(&rotate(&db, t1, t2, at(16), UA)),
        RotationDecision::Rotate {
            next: Generation::new(2)
        }
    );

    // Another agent replaying inside the window is reuse.
    let (other, o0) = login(&db, &alice, at(20));
    let o1 = digest();
    assert!(matches!(
        decision(&rotate(&db, o0, o1, at(21), UA)),
        RotationDecision::Rotate { .. }
    ));
    assert_eq!(
        decision(&rotate(&db, o0, o1, at(22), OTHER_UA)),
        RotationDecision::Reuse
    );
    assert_eq!(
        db.status(other.id, idle(), at(22)).unwrap(),
        SessionStatus::Revoked
    );
}

fn reuse_revokes_every_session_of_the_user_and_is_committed(db: &TestDatabase) {
    let database = db.open(2);
    let alice = user(&database, "alice");
    let bob = user(&database, "bob");
    let (stolen, first, second) = login_and_rotate(&database, &alice);
    let (other, _) = login(&database, &alice, at(2));
    let (bobs, _) = login(&database, &bob, at(2));

    // The rotated token comes back after the grace window: theft.
    let outcome = rotate(&database, first, digest(), at(30), UA);
    let RotateOutcome::Decided {
        decision: d,
        session,
        user,
        mut revoked,
        ..
    } = outcome
    else {
        panic!("token unknown");
    };
    assert_eq!(d, RotationDecision::Reuse);
    revoked.sort();
    let mut expected = vec![stolen.id, other.id];
    expected.sort();
    assert_eq!(revoked, expected, "reported for the revocation list");
    assert_eq!(session.revoked_at, Some(at(30)));
    assert_eq!(user.id, alice.id);
    drop(database);

    // A new pool (new connections) sees the revocation: it was committed.
    let fresh = db.connect(2);
    assert_eq!(
        fresh.status(stolen.id, idle(), at(31)).unwrap(),
        SessionStatus::Revoked
    );
    assert_eq!(
        fresh.status(other.id, idle(), at(31)).unwrap(),
        SessionStatus::Revoked
    );
    assert_eq!(
        fresh.status(bobs.id, idle(), at(31)).unwrap(),
        SessionStatus::Live
    );
    assert!(fresh
        .list_live(alice.id, idle(), at(31))
        .unwrap()
        .is_empty());

    // Any token of the family now answers Revoked, and changes nothing.
    let outcome = rotate(&fresh, second, digest(), at(40), UA);
    let RotateOutcome::Decided {
        decision: d,
        session,
        ..
    } = outcome
    else {
        panic!("token unknown");
    };
    assert_eq!(d, RotationDecision::Revoked);
    assert_eq!(session.revoked_at, Some(at(30)));
    assert_eq!(session.generation, Generation::new(1));
    assert!(matches!(
        rotate(&fresh, second, digest(), at(41), UA),
        RotateOutcome::Decided { revoked, .. } if revoked.is_empty()
    ));
}

fn reuse_with_revoke_family_revokes_only_that_session(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (stolen, first, _) = login_and_rotate(&db, &alice);
    let (other, _) = login(&db, &alice, at(2));

    let outcome = db
        .rotate(RotateRequest {
            policy: RotationPolicy {
                reuse_response: ReuseResponse::RevokeFamily,
                ..policy()
            },
            ..rotate_request(&db, first, digest(), at(30), UA)
        })
        .unwrap();
    assert_eq!(decision(&outcome), RotationDecision::Reuse);
    assert!(matches!(
        &outcome,
        RotateOutcome::Decided { revoked, .. } if *revoked == vec![stolen.id]
    ));
    assert_eq!(
        db.status(stolen.id, idle(), at(31)).unwrap(),
        SessionStatus::Revoked
    );
    assert_eq!(
        db.status(other.id, idle(), at(31)).unwrap(),
        SessionStatus::Live
    );
}

fn logout_with_a_rotated_token_ends_the_session_without_a_theft_response(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, first, second) = login_and_rotate(&db, &alice);
    let (other, _) = login(&db, &alice, at(2));

    let ended = end(
        &db,
        first,
        EndReason::Logout,
        ReuseResponse::RevokeAll,
        at(50),
    );
    assert_eq!(
        ended,
        EndOutcome::Ended {
            session: session.id,
            user: alice.id
        }
    );
    assert_eq!(
        db.status(session.id, idle(), at(51)).unwrap(),
        SessionStatus::Revoked
    );
    assert_eq!(
        db.status(other.id, idle(), at(51)).unwrap(),
        SessionStatus::Live,
        "no theft response"
    );

    // Idempotent, with any token of the session.
    let again = end(
        &db,
        second,
        EndReason::Logout,
        ReuseResponse::RevokeAll,
        at(52),
    );
    assert_eq!(
        again,
        EndOutcome::AlreadyEnded {
            session: session.id,
            user: alice.id
        }
    );
    assert_eq!(
        decision(&rotate(&db, second, digest(), at(53), UA)),
        RotationDecision::Revoked
    );
    assert_eq!(
        db.status(other.id, idle(), at(53)).unwrap(),
        SessionStatus::Live
    );
}

fn a_login_carrying_a_rotated_token_is_reuse(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, first, _) = login_and_rotate(&db, &alice);
    let (other, _) = login(&db, &alice, at(2));

    let ended = end(
        &db,
        first,
        EndReason::ReplacedByLogin,
        ReuseResponse::RevokeAll,
        at(50),
    );
    let EndOutcome::Reused {
        session: reused,
        user,
        mut revoked,
    } = ended
    else {
        panic!("not reuse: {ended:?}");
    };
    assert_eq!((reused, user), (session.id, alice.id));
    revoked.sort();
    let mut expected = vec![session.id, other.id];
    expected.sort();
    assert_eq!(
        revoked, expected,
        "every session the theft response revoked"
    );
    assert_eq!(
        db.status(session.id, idle(), at(51)).unwrap(),
        SessionStatus::Revoked
    );
    assert_eq!(
        db.status(other.id, idle(), at(51)).unwrap(),
        SessionStatus::Revoked
    );
}

fn a_login_carrying_a_current_token_ends_only_that_session(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, _, current) = login_and_rotate(&db, &alice);
    let (other, _) = login(&db, &alice, at(2));

    let ended = end(
        &db,
        current,
        EndReason::ReplacedByLogin,
        ReuseResponse::RevokeAll,
        at(50),
    );
    assert_eq!(
        ended,
        EndOutcome::Ended {
            session: session.id,
            user: alice.id
        }
    );
    assert_eq!(
        db.status(session.id, idle(), at(51)).unwrap(),
        SessionStatus::Revoked
    );
    assert_eq!(
        db.status(other.id, idle(), at(51)).unwrap(),
        SessionStatus::Live
    );
    let again = end(
        &db,
        current,
        EndReason::ReplacedByLogin,
        ReuseResponse::RevokeAll,
        at(52),
    );
    assert_eq!(
        again,
        EndOutcome::AlreadyEnded {
            session: session.id,
            user: alice.id
        }
    );

    // The just-rotated parent, from the same agent inside the grace window,
    // is a concurrent request of the same client, not theft.
    let bob = user(&db, "bob");
    let (bobs, b0) = login(&db, &bob, at(100));
    let (bobs_other, _) = login(&db, &bob, at(100));
    assert!(matches!(
        decision(&rotate(&db, b0, digest(), at(101), UA)),
        RotationDecision::Rotate { .. }
    ));
    let ended = end(
        &db,
        b0,
        EndReason::ReplacedByLogin,
        ReuseResponse::RevokeAll,
        at(102),
    );
    assert_eq!(
        ended,
        EndOutcome::Ended {
            session: bobs.id,
            user: bob.id
        }
    );
    assert_eq!(
        db.status(bobs_other.id, idle(), at(103)).unwrap(),
        SessionStatus::Live
    );
}

/// On PostgreSQL a successor's rotation is planned from the session row its
/// own rotation wrote and written in one guarded statement; what it writes
/// is what the transaction would have: a fresh instance finds the chain,
/// the spent tokens and the session as after three rotations.
fn a_chain_rotated_from_memory_is_what_a_fresh_instance_finds(db: &TestDatabase) {
    let here = db.open(2);
    let alice = user(&here, "alice");
    let (session, t0) = login(&here, &alice, at(0));
    let (t1, t2, t3) = (digest(), digest(), digest());
    for (presented, successor, now, next) in [(t0, t1, 1, 1), (t1, t2, 2, 2), (t2, t3, 3, 3)] {
        let outcome = rotate(&here, presented, successor, at(now), UA);
        assert_eq!(
            decision(&outcome),
            RotationDecision::Rotate {
                next: Generation::new(next)
            }
        );
        let RotateOutcome::Decided {
            session: s, user, ..
        } = outcome
        else {
            unreachable!()
        };
        assert_eq!(
            (s.id, s.last_used_at, user.id),
            (session.id, at(now), alice.id)
        );
    }
    let expected = match here.backend() {
        persistence::Backend::Postgres => 2,
        persistence::Backend::Sqlite => 0,
    };
    assert_eq!(
        here.rotations_from_memory(),
        expected,
        "the successors' rotations"
    );

    let fresh = db.connect(2);
    let live = fresh.list_live(alice.id, idle(), at(4)).unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].generation, live[0].last_used_at),
        (Generation::new(3), at(3))
    );
    assert_eq!(
        fresh.locate(&t3).unwrap().unwrap().generation,
        Generation::new(3)
    );
    // t2 was spent by the last rotation: inside the grace window it is a
    // grace replay, and t3 rotates on.
    assert_eq!(
        decision(&rotate(&fresh, t2, digest(), at(4), UA)),
        RotationDecision::GraceReplay
    );
    assert_eq!(
        decision(&rotate(&fresh, t3, digest(), at(5), UA)),
        RotationDecision::Rotate {
            next: Generation::new(4)
        }
    );
}

/// A session revoked by another instance after this one rotated it: the
/// row this instance remembers is stale, and the successor is refused.
fn a_session_revoked_elsewhere_is_not_rotated_from_memory(db: &TestDatabase) {
    let (here, elsewhere) = (db.open(2), db.connect(2));
    let alice = user(&here, "alice");
    let (session, t0) = login(&here, &alice, at(0));
    let t1 = digest();
    rotate(&here, t0, t1, at(1), UA);
    assert!(matches!(
        end(
            &elsewhere,
            t1,
            EndReason::Logout,
            ReuseResponse::RevokeAll,
            at(2)
        ),
        EndOutcome::Ended { .. }
    ));

    let t2 = digest();
    assert_eq!(
        decision(&rotate(&here, t1, t2, at(3), UA)),
        RotationDecision::Revoked
    );
    assert_eq!(here.rotations_from_memory(), 0);
    assert_eq!(elsewhere.locate(&t2).unwrap(), None, "no successor");
    assert_eq!(
        elsewhere.status(session.id, idle(), at(4)).unwrap(),
        SessionStatus::Revoked
    );
}

/// A session another instance rotated on: the token this instance issued
/// has been spent there, and presenting it again after the grace window is
/// reuse, not a rotation from the stale row.
fn a_session_rotated_elsewhere_is_not_rotated_from_memory(db: &TestDatabase) {
    let (here, elsewhere) = (db.open(2), db.connect(2));
    let alice = user(&here, "alice");
    let (session, t0) = login(&here, &alice, at(0));
    let t1 = digest();
    rotate(&here, t0, t1, at(1), UA);
    assert_eq!(
        decision(&rotate(&elsewhere, t1, digest(), at(2), UA)),
        RotationDecision::Rotate {
            next: Generation::new(2)
        }
    );

    let t3 = digest();
    assert_eq!(
        decision(&rotate(&here, t1, t3, at(30), UA)),
        RotationDecision::Reuse
    );
    assert_eq!(here.rotations_from_memory(), 0);
    assert_eq!(elsewhere.locate(&t3).unwrap(), None, "no successor");
    assert_eq!(
        elsewhere.status(session.id, idle(), at(31)).unwrap(),
        SessionStatus::Revoked
    );
}
