//! The audit trail: one row per rotation in the rotation's transaction,
//! security events with the revocations they describe, the anomaly rule,
//! pages and aggregates.

use std::time::Duration;

use application::ports::{
    AuditTrail, ClientInfo, EndReason, RevokeReason, RotateOutcome, RotateRequest,
    SessionRepository,
};
use domain::{
    ActivitySummary, AnomalyPolicy, AnomalyResponse, Cursor, RefreshAttempt, RefreshOutcome,
    ReuseResponse, RotationDecision, RotationPolicy, SecurityEvent, SecurityEventKind, SessionId,
    SessionStatus, Timestamp, TokenFingerprint, UserId,
};
use serde_json::Value;

use crate::common::*;

on_both_backends!(
    every_rotation_leaves_one_audit_row_with_its_outcome,
    an_unknown_token_is_located_without_a_write,
    reuse_records_a_token_reuse_event_with_the_revocation,
    reuse_on_login_records_a_token_reuse_event,
    another_network_and_device_inside_the_window_is_answered_like_reuse,
    an_anomaly_under_log_only_rotates_and_is_recorded,
    an_ip_change_alone_is_no_anomaly,
    revoke_all_records_who_asked_for_it,
    refresh_logs_page_newest_first_without_gaps_or_repeats,
    two_writers_on_one_database_keep_every_row_of_one_millisecond,
    throttled_refreshes_of_two_writers_add_up_in_one_row_per_address_and_minute,
    security_events_page_per_user_and_for_everyone,
    activity_aggregates_the_window_by_day,
    successes_counted_on_their_session_reach_the_analysis_and_outlive_it,
    without_the_trail_nothing_is_written,
    a_retry_from_the_rotating_network_gets_the_same_generation,
    a_rotated_token_after_a_logout_is_recorded_as_reuse_after_end,
    a_bound_session_without_its_key_spends_nothing_and_records_a_mismatch,
);

fn a_retry_from_the_rotating_network_gets_the_same_generation(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, t0, _) = login_and_rotate(&db, &alice);
    let with_retry = |request: RotateRequest| RotateRequest {
        policy: RotationPolicy {
            retry_window: Duration::from_secs(60),
            ..request.policy
        },
        ..request
    };
    let retried = db
        .rotate(with_retry(rotate_request(&db, t0, digest(), at(30), UA)))
        .unwrap();
    assert_eq!(decision(&retried), RotationDecision::Retry);
    let RotateOutcome::Decided { session: after, .. } = &retried else {
        panic!("token unknown");
    };
    assert_eq!(
        after.generation,
        domain::Generation::new(1),
        "no new successor"
    );
    // The same replay from another network is theft.
    let elsewhere = RotateRequest {
        client: ClientInfo {
            ip: Some("192.0.2.200".to_owned()),
            user_agent: Some(UA.to_owned()),
        },
        ..with_retry(rotate_request(&db, t0, digest(), at(31), UA))
    };
    assert_eq!(
        decision(&db.rotate(elsewhere).unwrap()),
        RotationDecision::Reuse
    );
    assert_eq!(
        logs(&db, alice.id),
        vec![
            (RefreshOutcome::Success, Some(session.id)),
            (RefreshOutcome::Retry, Some(session.id)),
            (RefreshOutcome::Reused, Some(session.id)),
        ]
    );
}

fn a_rotated_token_after_a_logout_is_recorded_as_reuse_after_end(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, t0, t1) = login_and_rotate(&db, &alice);
    end(&db, t1, EndReason::Logout, ReuseResponse::RevokeAll, at(2));
    assert_eq!(decision_of(&db, t0, at(3)), RotationDecision::Revoked);
    let events = events(&db, alice.id);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, SecurityEventKind::ReuseAfterEnd);
    assert_eq!(events[0].session_id, Some(session.id));
    assert_eq!(details(&events[0])["presented_generation"], 0);
    // The last token after the logout is no evidence of anything.
    assert_eq!(decision_of(&db, t1, at(4)), RotationDecision::Revoked);
    assert_eq!(super::audit::events(&db, alice.id).len(), 1);
}

fn a_bound_session_without_its_key_spends_nothing_and_records_a_mismatch(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let key = domain::Jkt::of_canonical_jwk("{\"k\":\"bound\"}");
    let token = digest();
    let created = SessionRepository::create(
        &db,
        domain::NewSession {
            dpop_jkt: Some(key.clone()),
            ..new_session(&alice, at(0), UA)
        },
        token,
        10,
    )
    .unwrap();
    let request = rotate_request(&db, token, digest(), at(1), UA);
    assert!(request.location.bound);
    let refused = db.rotate(request.clone()).unwrap();
    assert_eq!(decision(&refused), RotationDecision::DpopMismatch);
    let RotateOutcome::Decided {
        session: after,
        revoked,
        ..
    } = &refused
    else {
        panic!("token unknown");
    };
    assert_eq!(after.generation, domain::Generation::FIRST, "nothing spent");
    assert!(revoked.is_empty());
    assert_eq!(
        events(&db, alice.id)[0].kind,
        SecurityEventKind::DpopMismatch
    );
    let proven = db
        .rotate(RotateRequest {
            proof: Some(application::ports::CheckedProof {
                key,
                jti: "jti-1".to_owned(),
                remember_until: at(61),
            }),
            ..request
        })
        .unwrap();
    assert!(matches!(decision(&proven), RotationDecision::Rotate { .. }));
    assert_eq!(
        logs(&db, alice.id),
        vec![
            (RefreshOutcome::DpopMismatch, Some(created.session.id)),
            (RefreshOutcome::Success, Some(created.session.id)),
        ]
    );
}

fn anomaly_rule(response: AnomalyResponse) -> AnomalyPolicy {
    AnomalyPolicy {
        window: Duration::from_secs(600),
        response,
    }
}

fn from_elsewhere(request: RotateRequest, response: AnomalyResponse) -> RotateRequest {
    RotateRequest {
        client: ClientInfo {
            ip: Some("192.0.2.200".to_owned()),
            user_agent: Some(OTHER_UA.to_owned()),
        },
        policy: RotationPolicy {
            anomaly: anomaly_rule(response),
            ..request.policy
        },
        ..request
    }
}

fn logs(db: &Database, user: UserId) -> Vec<(RefreshOutcome, Option<SessionId>)> {
    let mut rows = db.refresh_logs(user, None, 200).unwrap();
    rows.reverse();
    rows.into_iter()
        .map(|r| (r.attempt.outcome, r.attempt.session_id))
        .collect()
}

fn events(db: &Database, user: UserId) -> Vec<SecurityEvent> {
    db.security_events(Some(user), None, 200).unwrap()
}

fn details(event: &SecurityEvent) -> Value {
    serde_json::from_str(&event.details).unwrap()
}

fn total_rows(db: &Database) -> u64 {
    db.refresh_audit_outcomes().unwrap().values().sum()
}

fn every_rotation_leaves_one_audit_row_with_its_outcome(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, first, second) = login_and_rotate(&db, &alice);
    // Grace replay of the parent, then reuse of it after the window.
    rotate(&db, first, second, at(3), UA);
    rotate(&db, first, digest(), at(30), UA);
    // The session is now revoked.
    rotate(&db, second, digest(), at(31), UA);
    // Another session idles out.
    let (other, token) = login(&db, &alice, at(40));
    rotate(&db, token, digest(), at(200), UA);

    let sid = Some(session.id);
    assert_eq!(
        logs(&db, alice.id),
        vec![
            (RefreshOutcome::Success, sid),
            (RefreshOutcome::GraceReplay, sid),
            (RefreshOutcome::Reused, sid),
            (RefreshOutcome::Revoked, sid),
            (RefreshOutcome::Expired, Some(other.id)),
        ]
    );
    let rows = db.refresh_logs(alice.id, None, 1).unwrap();
    let newest = &rows[0].attempt;
    assert_eq!(newest.at, at(200));
    assert_eq!(newest.user_id, Some(alice.id));
    assert_eq!(newest.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(newest.user_agent.as_deref(), Some(UA));
    assert_eq!(
        newest.fingerprint,
        Some(TokenFingerprint::of_digest(&token))
    );
    assert_eq!(total_rows(&db), 5);
}

/// An unknown token is found out before any transaction: locating it
/// writes nothing (the use case records its row through the trail).
fn an_unknown_token_is_located_without_a_write(db: &TestDatabase) {
    let db = db.open(2);
    assert_eq!(db.locate(&digest()).unwrap(), None);
    assert_eq!(total_rows(&db), 0);
}

fn reuse_records_a_token_reuse_event_with_the_revocation(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, first, _) = login_and_rotate(&db, &alice);
    login(&db, &alice, at(2));
    assert_eq!(
        decision(&rotate(&db, first, digest(), at(30), OTHER_UA)),
        RotationDecision::Reuse
    );

    let events = events(&db, alice.id);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.kind, SecurityEventKind::TokenReuse);
    assert_eq!(e.session_id, Some(session.id));
    assert_eq!(e.created_at, at(30));
    let d = details(e);
    assert_eq!(d["via"], "refresh");
    assert_eq!(d["revoked_sessions"], 2);
    assert_eq!(d["response"], "revoke_all");
    assert_eq!(d["presented_generation"], 0);
    assert_eq!(d["current_generation"], 1);
    assert_eq!(d["user_agent"], OTHER_UA);
    assert_eq!(
        d["token_fingerprint"],
        TokenFingerprint::of_digest(&first).as_str()
    );
    assert!(!e.details.contains(&first.to_hex()));
    // A revoked session answers revoked and records nothing more.
    rotate(&db, first, digest(), at(31), OTHER_UA);
    assert_eq!(self::events(&db, alice.id).len(), 1);
}

fn reuse_on_login_records_a_token_reuse_event(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (_, first, _) = login_and_rotate(&db, &alice);
    end(
        &db,
        first,
        EndReason::ReplacedByLogin,
        ReuseResponse::RevokeFamily,
        at(30),
    );
    let events = events(&db, alice.id);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, SecurityEventKind::TokenReuse);
    assert_eq!(details(&events[0])["via"], "login");
    assert_eq!(details(&events[0])["response"], "revoke_family");
    // Logout never is theft.
    let (_, token) = login(&db, &alice, at(40));
    end(
        &db,
        token,
        EndReason::Logout,
        ReuseResponse::RevokeAll,
        at(41),
    );
    assert_eq!(self::events(&db, alice.id).len(), 1);
}

fn another_network_and_device_inside_the_window_is_answered_like_reuse(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, token) = login(&db, &alice, at(0));
    let (other, _) = login(&db, &alice, at(1));

    let outcome = db
        .rotate(from_elsewhere(
            rotate_request(&db, token, digest(), at(60), UA),
            AnomalyResponse::Revoke,
        ))
        .unwrap();

    let RotateOutcome::Decided {
        decision, event, ..
    } = outcome
    else {
        panic!("token unknown");
    };
    assert_eq!(decision, RotationDecision::Anomaly);
    assert_eq!(event, Some(SecurityEventKind::Anomaly));
    for s in [session.id, other.id] {
        assert_eq!(
            db.status(s, idle(), at(61)).unwrap(),
            SessionStatus::Revoked
        );
    }
    let events = events(&db, alice.id);
    assert_eq!(events.len(), 1, "one event: anomaly, not also reuse");
    assert_eq!(events[0].kind, SecurityEventKind::Anomaly);
    let d = details(&events[0]);
    assert_eq!(d["response"], "revoke_all");
    assert_eq!(d["revoked_sessions"], 2);
    assert_eq!(d["previous_ip"], "198.51.100.1");
    assert_eq!(d["ip"], "192.0.2.200");
    assert_eq!(d["previous_user_agent"], UA);
    assert_eq!(d["user_agent"], OTHER_UA);
    assert_eq!(d["since_last_use_ms"], 60_000);
    assert_eq!(
        logs(&db, alice.id),
        vec![(RefreshOutcome::Anomaly, Some(session.id))]
    );
    // The token was not spent: it now meets a revoked session.
    assert_eq!(decision_of(&db, token, at(62)), RotationDecision::Revoked);
}

fn decision_of(db: &Database, token: domain::TokenDigest, now: Timestamp) -> RotationDecision {
    decision(&rotate(db, token, digest(), now, UA))
}

fn an_anomaly_under_log_only_rotates_and_is_recorded(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (session, token) = login(&db, &alice, at(0));

    let request = from_elsewhere(
        rotate_request(&db, token, digest(), at(60), UA),
        AnomalyResponse::LogOnly,
    );
    let outcome = db
        .rotate(RotateRequest {
            policy: RotationPolicy {
                reuse_response: ReuseResponse::RevokeFamily,
                ..request.policy
            },
            ..request
        })
        .unwrap();

    let RotateOutcome::Decided {
        decision,
        outcome,
        session: after,
        ..
    } = outcome
    else {
        panic!("token unknown");
    };
    assert!(matches!(decision, RotationDecision::Rotate { .. }));
    assert_eq!(outcome, RefreshOutcome::AnomalyLogged);
    assert_eq!(after.revoked_at, None);
    assert_eq!(after.last_ip.as_deref(), Some("192.0.2.200"));
    let events = events(&db, alice.id);
    assert_eq!(events[0].kind, SecurityEventKind::Anomaly);
    assert_eq!(details(&events[0])["response"], "log_only");
    assert_eq!(details(&events[0])["revoked_sessions"], 0);
    assert_eq!(
        logs(&db, alice.id),
        vec![(RefreshOutcome::AnomalyLogged, Some(session.id))]
    );
}

fn an_ip_change_alone_is_no_anomaly(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (_, token) = login(&db, &alice, at(0));
    let moved = RotateRequest {
        client: ClientInfo {
            ip: Some("192.0.2.200".to_owned()),
            user_agent: Some(UA.to_owned()),
        },
        policy: RotationPolicy {
            anomaly: anomaly_rule(AnomalyResponse::Revoke),
            ..policy()
        },
        ..rotate_request(&db, token, digest(), at(1), UA)
    };
    let outcome = db.rotate(moved).unwrap();
    assert!(matches!(
        decision(&outcome),
        RotationDecision::Rotate { .. }
    ));
    assert!(events(&db, alice.id).is_empty());
    // Another network and device after the window is no anomaly either.
    let (_, token) = login(&db, &alice, at(10));
    let late = from_elsewhere(
        rotate_request(&db, token, digest(), at(60), UA),
        AnomalyResponse::Revoke,
    );
    let late = RotateRequest {
        policy: RotationPolicy {
            anomaly: AnomalyPolicy {
                window: Duration::from_secs(50),
                response: AnomalyResponse::Revoke,
            },
            ..late.policy
        },
        ..late
    };
    let RotateOutcome::Decided {
        decision, event, ..
    } = db.rotate(late).unwrap()
    else {
        panic!("token unknown");
    };
    assert!(matches!(decision, RotationDecision::Rotate { .. }));
    assert_eq!(event, None);
}

fn revoke_all_records_who_asked_for_it(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let admin = user(&db, "root");
    login(&db, &alice, at(0));
    login(&db, &alice, at(1));
    assert_eq!(
        db.revoke_all(alice.id, RevokeReason::Admin { by: admin.id }, at(2))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        db.revoke_all(alice.id, RevokeReason::LogoutAll, at(3))
            .unwrap()
            .len(),
        0
    );
    let events = events(&db, alice.id);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].kind, SecurityEventKind::LogoutAll);
    assert_eq!(details(&events[0])["revoked_sessions"], 0);
    assert_eq!(events[1].kind, SecurityEventKind::AdminRevoke);
    assert_eq!(events[1].session_id, None);
    assert_eq!(details(&events[1])["admin_id"], admin.id.to_string());
    assert_eq!(details(&events[1])["revoked_sessions"], 2);
}

fn attempt(user: UserId, outcome: RefreshOutcome, at: Timestamp) -> RefreshAttempt {
    RefreshAttempt {
        at,
        outcome,
        user_id: Some(user),
        session_id: None,
        ip: Some("203.0.113.7".to_owned()),
        user_agent: Some(UA.to_owned()),
        fingerprint: None,
    }
}

fn refresh_logs_page_newest_first_without_gaps_or_repeats(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let bob = user(&db, "bob");
    // Seven rows, several sharing a millisecond, and bob's in between.
    for (i, secs) in [1, 2, 2, 2, 3, 4, 4].into_iter().enumerate() {
        let outcome = RefreshOutcome::ALL[i];
        db.record_refresh(attempt(alice.id, outcome, at(secs)))
            .unwrap();
        db.record_refresh(attempt(bob.id, outcome, at(secs)))
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut before: Option<Cursor> = None;
    loop {
        let page = db.refresh_logs(alice.id, before, 3).unwrap();
        if page.is_empty() {
            break;
        }
        for r in &page {
            assert_eq!(r.attempt.user_id, Some(alice.id));
        }
        let last = page.last().unwrap();
        before = Some(Cursor {
            at: last.attempt.at,
            id: last.id,
        });
        seen.extend(page);
    }
    assert_eq!(seen.len(), 7);
    let keys: Vec<_> = seen.iter().map(|r| (r.attempt.at, r.id)).collect();
    let mut sorted = keys.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(keys, sorted, "strictly newest first");
    assert_eq!(seen[0].attempt.at, at(4));
    assert_eq!(seen[6].attempt.outcome, RefreshOutcome::ALL[0]);
}

/// Two processes on one SQLite file number their rows each from their own
/// counter (two `Database`s here): rows of one user in one millisecond
/// that got the same number from both must all be kept, in the order they
/// were written.
fn two_writers_on_one_database_keep_every_row_of_one_millisecond(db: &TestDatabase) {
    let (first, second) = (db.open(2), db.connect(2));
    let alice = user(&first, "alice");
    let outcomes = &RefreshOutcome::ALL[..6];
    for (i, outcome) in outcomes.iter().enumerate() {
        let writer = if i % 2 == 0 { &first } else { &second };
        writer
            .record_refresh(attempt(alice.id, *outcome, at(5)))
            .unwrap();
    }
    let rows = first.refresh_logs(alice.id, None, 100).unwrap();
    let written: Vec<_> = rows.iter().rev().map(|r| r.attempt.outcome).collect();
    assert_eq!(written, outcomes, "every row, newest first");
    // The daily aggregates count them all too (from midnight before `at(0)`).
    let midnight = Timestamp::from_millis(1_699_920_000_000);
    assert_eq!(second.activity(alice.id, midnight).unwrap().total(), 6);
}

fn throttled_refreshes_of_two_writers_add_up_in_one_row_per_address_and_minute(db: &TestDatabase) {
    let (first, second) = (db.open(2), db.connect(2));
    let throttled = |ip: &str, when: Timestamp| RefreshAttempt {
        at: when,
        outcome: RefreshOutcome::RateLimited,
        user_id: None,
        session_id: None,
        ip: Some(ip.to_owned()),
        user_agent: None,
        fingerprint: None,
    };
    // `at(0)` is 20 s into its minute: `at(30)` is the same one, `at(45)`
    // the next.
    let minute_start = at(0).as_millis() - at(0).as_millis() % 60_000;
    assert!(at(30).as_millis() < minute_start + 60_000);
    assert!(at(45).as_millis() >= minute_start + 60_000);
    for (i, (ip, when, extra)) in [
        ("192.0.2.1", at(0), 1),
        ("192.0.2.1", at(1), 1),
        ("192.0.2.1", at(2), 40),
        ("192.0.2.1", at(30), 3),
        ("192.0.2.2", at(3), 7),
        ("192.0.2.1", at(45), 2),
    ]
    .into_iter()
    .enumerate()
    {
        let writer = if i % 2 == 0 { &first } else { &second };
        writer
            .add_throttled_refreshes(throttled(ip, when), extra)
            .unwrap();
    }
    let rows = first.refresh_audit_outcomes().unwrap();
    assert_eq!(rows.get("rate_limited"), Some(&3), "{rows:?}");
    let requests = second.refresh_audit_requests().unwrap();
    assert_eq!(requests.get("rate_limited"), Some(&54), "{requests:?}");
}

fn security_events_page_per_user_and_for_everyone(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let bob = user(&db, "bob");
    for i in 0..3 {
        db.revoke_all(alice.id, RevokeReason::LogoutAll, at(i))
            .unwrap();
        db.revoke_all(bob.id, RevokeReason::LogoutAll, at(i))
            .unwrap();
    }
    assert_eq!(
        db.security_events(Some(alice.id), None, 10).unwrap().len(),
        3
    );
    let first = db.security_events(None, None, 4).unwrap();
    assert_eq!(first.len(), 4);
    let last = first.last().unwrap();
    let rest = db
        .security_events(
            None,
            Some(Cursor {
                at: last.created_at,
                id: last.id,
            }),
            4,
        )
        .unwrap();
    assert_eq!(rest.len(), 2);
    let mut ids: Vec<i64> = first.iter().chain(&rest).map(|e| e.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 6);
}

fn activity_aggregates_the_window_by_day(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let bob = user(&db, "bob");
    let hour = Duration::from_secs(3600);
    // `at(0)` is 1_700_000_000 s: the window starts at the midnight after it.
    let since = Timestamp::from_millis(1_700_006_400_000);
    let s1 = SessionId::from_random_bytes([1; 16]);
    let s2 = SessionId::from_random_bytes([2; 16]);
    let row = |outcome, at: Timestamp, session: SessionId, ip: &str, ua: &str| RefreshAttempt {
        at,
        outcome,
        user_id: Some(alice.id),
        session_id: Some(session),
        ip: Some(ip.to_owned()),
        user_agent: Some(ua.to_owned()),
        fingerprint: None,
    };
    // Before the window: ignored.
    db.record_refresh(row(
        RefreshOutcome::Reused,
        since.minus(hour),
        s1,
        "10.0.0.9",
        UA,
    ))
    .unwrap();
    for i in 0..5u64 {
        let t = since.plus(Duration::from_secs(60 * i));
        db.record_refresh(row(RefreshOutcome::Success, t, s1, "10.0.0.1", UA))
            .unwrap();
    }
    db.record_refresh(row(
        RefreshOutcome::Success,
        since.plus(hour),
        s1,
        "10.0.0.2",
        UA,
    ))
    .unwrap();
    // Session 2 from another network and device, failing three times in
    // the third hour and twice in the fourth.
    for (h, n) in [(2u32, 3), (3, 2)] {
        for i in 0..n {
            let t = since.plus(hour * h).plus(Duration::from_secs(i));
            db.record_refresh(row(RefreshOutcome::Expired, t, s2, "192.0.2.1", OTHER_UA))
                .unwrap();
        }
    }
    db.record_refresh(row(
        RefreshOutcome::Success,
        since.plus(hour * 3),
        s2,
        "10.0.0.1",
        UA,
    ))
    .unwrap();
    // Bob's rows and user-less rows never count for alice.
    db.record_refresh(attempt(bob.id, RefreshOutcome::Reused, since))
        .unwrap();
    db.record_refresh(RefreshAttempt {
        user_id: None,
        ..attempt(alice.id, RefreshOutcome::UnknownToken, since)
    })
    .unwrap();
    db.revoke_all(alice.id, RevokeReason::LogoutAll, since.plus(hour))
        .unwrap();

    let a = db.activity(alice.id, since).unwrap();

    assert_eq!(a.count(RefreshOutcome::Success), 7);
    assert_eq!(a.count(RefreshOutcome::Expired), 5);
    assert_eq!(a.count(RefreshOutcome::Reused), 0);
    assert_eq!(a.total(), 12);
    assert_eq!(a.distinct_ips, 3);
    assert_eq!(a.distinct_user_agents, 2);
    assert_eq!(a.sessions_seen, 2);
    assert_eq!(a.peak_failures_per_hour, 3);
    assert_eq!((a.reuse_events, a.anomaly_events), (0, 0));
    let ips: Vec<(&str, u64)> = a.ips.iter().map(|s| (s.value.as_str(), s.count)).collect();
    assert_eq!(
        ips,
        vec![("10.0.0.1", 6), ("192.0.2.1", 5), ("10.0.0.2", 1)]
    );
    let first = &a.ips[0];
    assert_eq!(first.first_seen, since);
    assert_eq!(first.last_seen, since.plus(hour * 3));
    assert_eq!(a.user_agents[0].value, UA);
    assert_eq!(a.user_agents[0].count, 7);
    assert_eq!(
        a.shared_sessions(),
        1,
        "session 2: two networks, two devices"
    );
}

/// The rotation counts successes in its session's run rather than through
/// the daily trigger: runs end at midnight and on a new IP or user agent,
/// and the run of a session that is deleted is kept.
fn successes_counted_on_their_session_reach_the_analysis_and_outlive_it(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    // `at(6_400)` is midnight UTC.
    let (day_one, day_two) = (
        Timestamp::from_millis(1_699_920_000_000),
        Timestamp::from_millis(1_700_006_400_000),
    );
    let (_session, mut token) = login(&db, &alice, at(6_300));
    let mut rotate_from = |secs: i64, ip: &str, user_agent: &str| {
        let next = digest();
        let mut request = rotate_request(&db, token, next, at(secs), user_agent);
        request.client.ip = Some(ip.to_owned());
        let outcome = db.rotate(request).unwrap();
        assert!(matches!(
            decision(&outcome),
            RotationDecision::Rotate { .. }
        ));
        token = next;
    };
    let home = "203.0.113.7";
    let (other, phone) = ("198.51.100.99", "198.51.100.100");
    for secs in [6_310, 6_320, 6_399, 6_400, 6_410] {
        rotate_from(secs, home, UA);
    }
    rotate_from(6_420, other, UA);
    rotate_from(6_430, home, UA);
    rotate_from(6_440, phone, OTHER_UA);
    let seen = |s: &ActivitySummary| {
        let mut ips: Vec<_> = s
            .ips
            .iter()
            .map(|x| (x.value.clone(), x.count, x.first_seen, x.last_seen))
            .collect();
        ips.sort();
        ips
    };
    let whole = db.activity(alice.id, day_one).unwrap();
    assert_eq!(whole.count(RefreshOutcome::Success), 8);
    assert_eq!(whole.total(), 8, "{whole:?}");
    assert_eq!(
        seen(&whole),
        vec![
            (phone.to_owned(), 1, at(6_440), at(6_440)),
            (other.to_owned(), 1, at(6_420), at(6_420)),
            (home.to_owned(), 6, at(6_310), at(6_430)),
        ]
    );
    assert_eq!(whole.distinct_user_agents, 2);
    assert_eq!(whole.sessions_seen, 1);
    let second_day = db.activity(alice.id, day_two).unwrap();
    assert_eq!(second_day.count(RefreshOutcome::Success), 5);
    assert_eq!(
        seen(&second_day)[2],
        (home.to_owned(), 3, at(6_400), at(6_430))
    );

    // The session ends and the cleanup deletes it: its open run stays
    // counted.
    let cutoffs = application::ports::CleanupCutoffs {
        now: at(6_300).plus(lifetimes().max_lifetime),
        revocations_before: at(6_300).plus(lifetimes().max_lifetime),
        audit_before: day_one,
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = application::ports::ExpiredDataStore::purge_expired(
        &db,
        cutoffs,
        application::cleanup::Batching::default(),
        &stop,
    )
    .unwrap()
    .unwrap();
    assert_eq!(report.sessions, 1);
    let after = db.activity(alice.id, day_one).unwrap();
    assert_eq!((after.total(), seen(&after)), (whole.total(), seen(&whole)));
    assert_eq!(after.session_uses, whole.session_uses);
}

fn without_the_trail_nothing_is_written(db: &TestDatabase) {
    let db = db.open(2).without_audit_trail();
    let alice = user(&db, "alice");
    login_and_rotate(&db, &alice);
    assert_eq!(total_rows(&db), 0);
}
