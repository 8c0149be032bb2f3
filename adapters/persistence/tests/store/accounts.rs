//! Account changes (`UserRepository::update`), the listing by prefix, and
//! what they mean for session creation.

use std::time::{Duration, Instant};

use application::ports::{
    AccountUpdate, AuditTrail, CreateSessionError, RotateOutcome, SessionRepository,
    UpdateAccountError, UserQuery, UserRepository,
};
use domain::{
    AccountChange, AccountRuleError, Actor, PasswordHash, Role, Roles, SecurityEventKind,
    SessionStatus, User, UserId, Username, UsernamePrefix,
};
use persistence::testing::seed_users;

use crate::common::*;

on_both_backends!(
    users_are_listed_by_canonical_name_and_prefix_page_by_page,
    a_password_change_revokes_every_other_session_in_one_transaction,
    disabling_revokes_everything_and_refuses_new_sessions_until_enabled,
    deleting_a_user_removes_sessions_and_tokens_but_keeps_the_trail,
    a_successor_located_from_memory_after_another_instance_deleted_it_is_unknown,
    a_refused_change_changes_nothing,
    a_role_taken_away_revokes_and_a_role_added_does_not,
    a_login_records_the_last_login,
    listing_100_000_users_by_prefix_takes_under_50_ms,
);

fn admin(db: &Database) -> User {
    let mut admin = new_user("root");
    admin.roles = Roles::new([Role::admin()]);
    UserRepository::create(db, admin).unwrap()
}

fn change(user: &User, actor: Actor, changes: Vec<AccountChange>) -> AccountUpdate {
    AccountUpdate {
        user: user.id,
        actor,
        changes,
        now: at(50),
    }
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

fn query(prefix: &str, after: Option<&str>, limit: u32) -> UserQuery {
    UserQuery {
        prefix: UsernamePrefix::parse(prefix).unwrap(),
        after: after.map(str::to_owned),
        limit,
    }
}

fn users_are_listed_by_canonical_name_and_prefix_page_by_page(db: &TestDatabase) {
    let db = db.open(2);
    for name in [
        "ali.b", "Ali-c", "ali_d", "alib", "ALICE", "bob", "a.li", "ali",
    ] {
        user(&db, name);
    }
    let all = db.list(&query("", None, 100)).unwrap();
    assert_eq!(
        names(&all),
        ["a.li", "ali", "Ali-c", "ali.b", "ali_d", "alib", "ALICE", "bob"],
        "byte order of the lower-case names"
    );
    let ali = db.list(&query("ALI", None, 100)).unwrap();
    assert_eq!(
        names(&ali),
        ["ali", "Ali-c", "ali.b", "ali_d", "alib", "ALICE"]
    );
    let page = db.list(&query("ali", Some("ali.b"), 2)).unwrap();
    assert_eq!(names(&page), ["ali_d", "alib"]);
    assert!(db.list(&query("zz", None, 10)).unwrap().is_empty());
    assert!(db.list(&query("%", None, 10)).unwrap().is_empty());
    assert!(db.list(&query("a_", None, 10)).unwrap().is_empty());
}

fn a_password_change_revokes_every_other_session_in_one_transaction(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    let (current, _) = login(&db, &alice, at(1));
    let (other, other_token) = login(&db, &alice, at(2));
    let actor = Actor::User {
        id: alice.id,
        session: current.id,
    };
    let new_hash = PasswordHash::new("$argon2id$new".to_owned());
    let updated = db
        .update(change(
            &alice,
            actor,
            vec![AccountChange::PasswordChanged(new_hash.clone())],
        ))
        .unwrap();
    assert_eq!(updated.revoked, vec![other.id]);
    assert_eq!(updated.user.map(|u| u.id), Some(alice.id));
    assert_eq!(
        db.status(current.id, idle(), at(51)).unwrap(),
        SessionStatus::Live
    );
    assert_eq!(
        db.status(other.id, idle(), at(51)).unwrap(),
        SessionStatus::Revoked
    );
    let (_, hash) = db
        .find_credentials(&Username::parse("alice").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(hash, new_hash);
    // The other session's token no longer rotates.
    match db
        .rotate(rotate_request(&db, other_token, digest(), at(52), UA))
        .unwrap()
    {
        RotateOutcome::Decided { session, .. } => assert!(session.revoked_at.is_some()),
        RotateOutcome::UnknownToken => panic!("the token is still on record"),
    }
    let events = db.security_events(Some(alice.id), None, 10).unwrap();
    let changed = events
        .iter()
        .find(|e| e.kind == SecurityEventKind::PasswordChanged)
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&changed.details).unwrap();
    assert_eq!(details["actor"], alice.id.to_string());
    assert_eq!(details["revoked_sessions"], 1);
}

fn disabling_revokes_everything_and_refuses_new_sessions_until_enabled(db: &TestDatabase) {
    let db = db.open(2);
    let root = admin(&db);
    let alice = user(&db, "alice");
    let (s1, _) = login(&db, &alice, at(1));
    let (s2, _) = login(&db, &alice, at(2));
    let updated = db
        .update(change(
            &alice,
            Actor::Admin(root.id),
            vec![AccountChange::Disable],
        ))
        .unwrap();
    let mut revoked = updated.revoked.clone();
    revoked.sort();
    let mut expected = vec![s1.id, s2.id];
    expected.sort();
    assert_eq!(revoked, expected);
    assert!(updated.user.unwrap().disabled);
    assert!(db.find(alice.id).unwrap().unwrap().disabled);
    assert_eq!(
        SessionRepository::create(&db, new_session(&alice, at(60), UA), digest(), 10).map(|_| ()),
        Err(CreateSessionError::AccountDisabled)
    );
    let events = db.security_events(Some(alice.id), None, 10).unwrap();
    assert_eq!(events[0].kind, SecurityEventKind::UserDisabled);
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details["actor"], root.id.to_string());
    assert_eq!(details["via"], "api");

    db.update(change(&alice, Actor::Operator, vec![AccountChange::Enable]))
        .unwrap();
    assert!(!db.find(alice.id).unwrap().unwrap().disabled);
    login(&db, &alice, at(70));
    let events = db.security_events(Some(alice.id), None, 10).unwrap();
    assert_eq!(events[0].kind, SecurityEventKind::UserEnabled);
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(details["actor"], serde_json::Value::Null);
    assert_eq!(details["via"], "cli");
}

fn deleting_a_user_removes_sessions_and_tokens_but_keeps_the_trail(db: &TestDatabase) {
    let db = db.open(2);
    let root = admin(&db);
    let alice = user(&db, "alice");
    let (s1, t1) = login(&db, &alice, at(1));
    let successor = digest();
    db.rotate(rotate_request(&db, t1, successor, at(2), UA))
        .unwrap();
    db.revoke_all(alice.id, application::ports::RevokeReason::LogoutAll, at(3))
        .unwrap();
    let (s2, t2) = login(&db, &alice, at(4));

    let updated = db
        .update(change(
            &alice,
            Actor::Admin(root.id),
            vec![AccountChange::Delete],
        ))
        .unwrap();
    assert_eq!(updated.user, None);
    assert_eq!(
        updated.revoked,
        vec![s2.id],
        "only the live one needed revoking"
    );
    assert_eq!(db.find(alice.id).unwrap(), None);
    for s in [s1.id, s2.id] {
        assert_eq!(
            db.status(s, idle(), at(51)).unwrap(),
            SessionStatus::Unknown
        );
    }
    for token in [t1, successor, t2] {
        assert_eq!(db.locate(&token).unwrap(), None);
    }
    assert_eq!(
        SessionRepository::create(&db, new_session(&alice, at(60), UA), digest(), 10).map(|_| ()),
        Err(CreateSessionError::UserGone)
    );
    let kinds: Vec<_> = db
        .security_events(Some(alice.id), None, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&SecurityEventKind::UserDeleted));
    assert!(kinds.contains(&SecurityEventKind::LogoutAll));
    assert!(!db.refresh_logs(alice.id, None, 10).unwrap().is_empty());
    // The name is free again.
    user(&db, "Alice");
}

fn a_refused_change_changes_nothing(db: &TestDatabase) {
    let db = db.open(2);
    let root = admin(&db);
    let (session, _) = login(&db, &root, at(1));
    for changes in [
        vec![AccountChange::Disable],
        vec![AccountChange::Delete],
        vec![
            AccountChange::SetRoles(Roles::new([Role::user()])),
            AccountChange::Enable,
        ],
    ] {
        assert_eq!(
            db.update(change(&root, Actor::Admin(root.id), changes)),
            Err(UpdateAccountError::Refused(AccountRuleError::SelfLockout))
        );
    }
    assert_eq!(
        db.find(root.id).unwrap(),
        Some(root.clone()).map(|u| User {
            last_login_at: Some(at(1)),
            ..u
        })
    );
    assert_eq!(
        db.status(session.id, idle(), at(51)).unwrap(),
        SessionStatus::Live
    );
    assert!(db
        .security_events(Some(root.id), None, 10)
        .unwrap()
        .is_empty());
    assert_eq!(
        db.update(AccountUpdate {
            user: UserId::from_random_bytes([3; 16]),
            ..change(&root, Actor::Operator, vec![AccountChange::Enable])
        }),
        Err(UpdateAccountError::NotFound)
    );
}

fn a_role_taken_away_revokes_and_a_role_added_does_not(db: &TestDatabase) {
    let db = db.open(2);
    let root = admin(&db);
    let alice = user(&db, "alice");
    let (session, _) = login(&db, &alice, at(1));
    let auditor = Role::parse("auditor").unwrap();
    let added = db
        .update(change(
            &alice,
            Actor::Admin(root.id),
            vec![AccountChange::SetRoles(Roles::new([
                Role::user(),
                auditor.clone(),
            ]))],
        ))
        .unwrap();
    assert!(added.revoked.is_empty());
    assert!(db.find(alice.id).unwrap().unwrap().roles.contains(&auditor));
    let taken = db
        .update(change(
            &alice,
            Actor::Admin(root.id),
            vec![AccountChange::SetRoles(Roles::new([auditor.clone()]))],
        ))
        .unwrap();
    assert_eq!(taken.revoked, vec![session.id]);
    let events = db.security_events(Some(alice.id), None, 10).unwrap();
    assert_eq!(events[0].kind, SecurityEventKind::RolesChanged);
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!(
        details["roles_before"],
        serde_json::json!(["auditor", "user"])
    );
    assert_eq!(details["roles_after"], serde_json::json!(["auditor"]));
}

fn a_login_records_the_last_login(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    assert_eq!(db.find(alice.id).unwrap().unwrap().last_login_at, None);
    login(&db, &alice, at(7));
    assert_eq!(
        db.find(alice.id).unwrap().unwrap().last_login_at,
        Some(at(7))
    );
}

/// The benchmark of the README ("Accounts"): a page of 50 users by prefix
/// among 100 000, and a page deep into the list, each well under 50 ms.
fn listing_100_000_users_by_prefix_takes_under_50_ms(db: &TestDatabase) {
    let db = db.open(2);
    seed_users(&db, 100_000, at(0));
    let mut timings = Vec::new();
    for (prefix, after, expect) in [
        ("USER09", None, 50),
        ("user09999", None, 10),
        ("", Some("user099990"), 10),
        ("user1", None, 1),
        ("", None, 50),
    ] {
        let q = query(prefix, after, 50);
        let started = Instant::now();
        let page = db.list(&q).unwrap();
        let took = started.elapsed();
        assert_eq!(page.len(), expect, "{prefix} {after:?}");
        timings.push(took);
    }
    let slowest = timings.iter().max().copied().unwrap_or_default();
    eprintln!("listing 100 000 users: slowest page {slowest:?} of {timings:?}");
    assert!(slowest < Duration::from_millis(50), "{timings:?}");
}

/// An instance finds the successors it issued without a query; when
/// another instance has deleted them since, its `locate` may still answer,
/// and the rotation finds the token unknown: no verdict, nothing written
/// for a session that is gone.
fn a_successor_located_from_memory_after_another_instance_deleted_it_is_unknown(
    test: &TestDatabase,
) {
    let (here, elsewhere) = (test.open(2), test.connect(2));
    let root = admin(&here);
    let alice = user(&here, "alice");
    let (_, t1) = login(&here, &alice, at(1));
    let t2 = digest();
    here.rotate(rotate_request(&here, t1, t2, at(2), UA))
        .unwrap();
    assert!(here.locate(&t2).unwrap().is_some());

    elsewhere
        .update(change(
            &alice,
            Actor::Admin(root.id),
            vec![AccountChange::Delete],
        ))
        .unwrap();
    assert_eq!(elsewhere.locate(&t2).unwrap(), None);
    // Still located here, from memory...
    let request = rotate_request(&here, t2, digest(), at(3), UA);
    // ...and found unknown by the rotation.
    assert!(matches!(
        here.rotate(request).unwrap(),
        application::ports::RotateOutcome::UnknownToken
    ));
    // A deletion by this instance forgets what it knew at once.
    let bob = user(&here, "bob");
    let (_, t3) = login(&here, &bob, at(4));
    let t4 = digest();
    here.rotate(rotate_request(&here, t3, t4, at(5), UA))
        .unwrap();
    here.update(change(
        &bob,
        Actor::Admin(root.id),
        vec![AccountChange::Delete],
    ))
    .unwrap();
    assert_eq!(here.locate(&t4).unwrap(), None);
}
