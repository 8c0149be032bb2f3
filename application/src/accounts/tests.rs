use std::sync::Arc;

use domain::{PasswordHash, Role, Roles, SessionId};

use super::*;
use crate::ports::{AccountUpdated, MockPasswordHasher, RevocationKey};
use crate::rate_limit::MockLoginRateLimiter;
use crate::test_support::{
    alice, alice_hash, principal_of, session_of, store_down, Mocks, ALICE_PASSWORD, NOW,
};

const NEW_PASSWORD: &str = "a brand new passphrase";

fn alice_herself() -> Principal {
    principal_of(&session_of(&alice()), alice().roles)
}

fn admin() -> Principal {
    let mut p = principal_of(&session_of(&alice()), Roles::new([Role::admin()]));
    p.user_id = UserId::from_random_bytes([0xad; 16]);
    p
}

fn new_hash() -> PasswordHash {
    PasswordHash::new("$argon2id$new".to_owned())
}

fn new_password() -> Password {
    Password::parse(NEW_PASSWORD.to_owned()).unwrap()
}

fn other_session() -> SessionId {
    SessionId::from_random_bytes([0x0d; 16])
}

fn limiter(admission: Admission) -> MockLoginRateLimiter {
    let mut l = MockLoginRateLimiter::new();
    l.expect_reserve()
        .withf(|user, ip, now| *user == Some("alice") && ip.is_none() && *now == NOW)
        .times(1)
        .return_const(admission);
    l
}

fn finding_alice(m: &mut Mocks) {
    m.users
        .expect_find()
        .withf(|id| *id == alice().id)
        .times(1)
        .return_const(Ok(Some(alice())));
}

fn with_credentials(m: &mut Mocks) {
    m.users
        .expect_find_credentials()
        .withf(|name| name.canonical() == "alice")
        .times(1)
        .returning(|_| Ok(Some((alice(), alice_hash()))));
}

fn verifying(hasher: &mut MockPasswordHasher, verdict: bool) {
    hasher
        .expect_verify()
        .withf(|p, h| p.expose() == ALICE_PASSWORD && *h == Some(&alice_hash()))
        .times(1)
        .returning(move |_, _| Ok(verdict));
}

fn hashing_new(hasher: &mut MockPasswordHasher) {
    hasher
        .expect_hash()
        .withf(|p| p.expose() == NEW_PASSWORD)
        .times(1)
        .returning(|_| Ok(new_hash()));
}

/// The list expects exactly `revoked` sessions, once.
fn published(m: &mut Mocks, revoked: Vec<SessionId>) {
    let mut list = crate::ports::MockRevocationList::new();
    list.expect_revoke()
        .withf(move |entries| {
            entries
                .iter()
                .map(|e| e.key)
                .eq(revoked.iter().map(|s| RevocationKey::Session(*s)))
        })
        .times(1)
        .return_const(Ok(()));
    m.revocations = list;
}

#[test]
fn a_password_change_checks_the_current_password_and_revokes_the_other_sessions() {
    let mut m = Mocks::new();
    finding_alice(&mut m);
    with_credentials(&mut m);
    verifying(&mut m.hasher, true);
    hashing_new(&mut m.hasher);
    let me = alice_herself();
    m.users
        .expect_update()
        .withf(move |u| {
            *u == AccountUpdate {
                user: alice().id,
                actor: Actor::User {
                    id: me.user_id,
                    session: me.session_id,
                },
                changes: vec![AccountChange::PasswordChanged(new_hash())],
                now: NOW,
            }
        })
        .times(1)
        .returning(|_| {
            Ok(AccountUpdated {
                user: Some(alice()),
                revoked: vec![other_session()],
            })
        });
    published(&mut m, vec![other_session()]);
    let mut l = limiter(Admission::Allowed);
    l.expect_reset()
        .withf(|user| user == "alice")
        .times(1)
        .return_const(());

    let warden = m.build().with_login_limiter(Arc::new(l));
    assert_eq!(
        warden.change_password(&alice_herself(), ALICE_PASSWORD.to_owned(), new_password()),
        Ok(())
    );
}

#[test]
fn a_wrong_current_password_keeps_its_count_and_changes_nothing() {
    let mut m = Mocks::new();
    finding_alice(&mut m);
    with_credentials(&mut m);
    verifying(&mut m.hasher, false);
    m.hasher.expect_hash().never();
    m.users.expect_update().never();
    let mut l = limiter(Admission::Allowed);
    l.expect_reset().never();

    let warden = m.build().with_login_limiter(Arc::new(l));
    assert_eq!(
        warden.change_password(&alice_herself(), ALICE_PASSWORD.to_owned(), new_password()),
        Err(ChangePasswordError::InvalidCredentials)
    );
}

#[test]
fn a_current_password_that_cannot_be_valid_is_simply_wrong() {
    let mut m = Mocks::new();
    finding_alice(&mut m);
    with_credentials(&mut m);
    m.hasher.expect_verify().never();
    m.users.expect_update().never();
    let mut l = limiter(Admission::Allowed);
    l.expect_reset().never();

    let warden = m.build().with_login_limiter(Arc::new(l));
    assert_eq!(
        warden.change_password(&alice_herself(), "short".to_owned(), new_password()),
        Err(ChangePasswordError::InvalidCredentials)
    );
}

#[test]
fn a_limited_username_is_refused_before_the_password_is_checked() {
    let mut m = Mocks::new();
    finding_alice(&mut m);
    m.users.expect_find_credentials().never();
    m.hasher.expect_verify().never();
    m.users.expect_update().never();
    let l = limiter(Admission::Limited {
        retry_after: Duration::from_secs(30),
    });

    let warden = m.build().with_login_limiter(Arc::new(l));
    assert_eq!(
        warden.change_password(&alice_herself(), ALICE_PASSWORD.to_owned(), new_password()),
        Err(ChangePasswordError::RateLimited {
            retry_after: Duration::from_secs(30)
        })
    );
}

#[test]
fn every_management_use_case_refuses_a_caller_without_the_admin_role() {
    let warden = Mocks::untouchable().build();
    let who = alice_herself();
    let not_admin = Manager::Admin(&who);
    let uid = alice().id;
    assert_eq!(
        warden
            .list_users(not_admin, None, None, PageLimit::DEFAULT)
            .unwrap_err(),
        AdminError::Forbidden
    );
    assert_eq!(
        warden.user_detail(not_admin, uid).unwrap_err(),
        AdminError::Forbidden
    );
    assert_eq!(
        warden
            .update_user(not_admin, uid, UserPatch::default())
            .unwrap_err(),
        AdminError::Forbidden
    );
    assert_eq!(
        warden.reset_password(not_admin, uid, &new_password()),
        Err(AdminError::Forbidden)
    );
    assert_eq!(
        warden.delete_user(not_admin, uid),
        Err(AdminError::Forbidden)
    );
    assert_eq!(
        warden
            .create_user(
                not_admin,
                RegisterInput {
                    username: Username::parse("bob").unwrap(),
                    password: new_password(),
                    roles: Roles::default(),
                }
            )
            .unwrap_err(),
        AdminError::Forbidden
    );
}

fn user_named(name: &str) -> User {
    User {
        username: Username::parse(name).unwrap(),
        ..alice()
    }
}

#[test]
fn a_full_page_of_users_has_a_cursor_that_continues_after_its_last_name() {
    let mut m = Mocks::new();
    m.users
        .expect_list()
        .withf(|q| {
            q.prefix.as_ref().map(UsernamePrefix::as_str) == Some("al")
                && q.after.is_none()
                && q.limit == 3
        })
        .times(1)
        .returning(|_| {
            Ok(vec![
                user_named("al1"),
                user_named("Al2"),
                user_named("al3"),
            ])
        });
    m.users
        .expect_list()
        .withf(|q| q.after.as_deref() == Some("al2") && q.limit == 3)
        .times(1)
        .returning(|_| Ok(vec![user_named("al3")]));
    let warden = m.build();
    let who = admin();
    let prefix = || UsernamePrefix::parse("AL").unwrap();
    let limit = PageLimit::new(2).unwrap();

    let first = warden
        .list_users(Manager::Admin(&who), prefix(), None, limit)
        .unwrap();
    assert_eq!(first.items.len(), 2);
    let next = first.next.unwrap();
    let second = warden
        .list_users(Manager::Admin(&who), prefix(), Some(&next), limit)
        .unwrap();
    assert_eq!(second.items, vec![user_named("al3")]);
    assert_eq!(second.next, None);
    // The cursor belongs to this query only.
    assert_eq!(
        warden
            .list_users(Manager::Admin(&who), None, Some(&next), limit)
            .unwrap_err(),
        AdminError::InvalidCursor
    );
}

#[test]
fn the_operator_lists_without_a_principal() {
    let mut m = Mocks::new();
    m.users
        .expect_list()
        .times(1)
        .returning(|_| Ok(vec![alice()]));
    let page = m
        .build()
        .list_users(Manager::Operator, None, None, PageLimit::DEFAULT)
        .unwrap();
    assert_eq!(page.items, vec![alice()]);
}

#[test]
fn the_detail_of_a_user_lists_their_live_sessions_none_current() {
    let mut m = Mocks::new();
    finding_alice(&mut m);
    let idle = m.settings.lifetimes.idle_ttl;
    m.sessions
        .expect_list_live()
        .withf(move |user, i, now| *user == alice().id && *i == idle && *now == NOW)
        .times(1)
        .returning(|_, _, _| Ok(vec![session_of(&alice())]));
    let who = admin();
    let detail = m
        .build()
        .user_detail(Manager::Admin(&who), alice().id)
        .unwrap();
    assert_eq!(detail.user, alice());
    assert_eq!(detail.sessions.len(), 1);
    assert!(!detail.sessions[0].current);
}

#[test]
fn an_unknown_user_is_not_found_and_nothing_is_hashed() {
    let mut m = Mocks::new();
    m.users.expect_find().return_const(Ok(None));
    m.hasher.expect_hash().never();
    m.users.expect_update().never();
    let who = admin();
    let warden = m.build();
    assert_eq!(
        warden.user_detail(Manager::Admin(&who), alice().id),
        Err(AdminError::UserNotFound)
    );
    assert_eq!(
        warden.reset_password(Manager::Admin(&who), alice().id, &new_password()),
        Err(AdminError::UserNotFound)
    );
}

#[test]
fn a_patch_becomes_the_changes_the_repository_plans_as_the_admin() {
    let mut m = Mocks::new();
    let who = admin();
    let by = who.user_id;
    let roles = Roles::new([Role::user(), Role::parse("auditor").unwrap()]);
    let expected = roles.clone();
    m.users
        .expect_update()
        .withf(move |u| {
            u.actor == Actor::Admin(by)
                && u.changes
                    == vec![
                        AccountChange::SetRoles(expected.clone()),
                        AccountChange::Disable,
                    ]
        })
        .times(1)
        .returning(|_| {
            Ok(AccountUpdated {
                user: Some(User {
                    disabled: true,
                    ..alice()
                }),
                revoked: vec![session_of(&alice()).id],
            })
        });
    published(&mut m, vec![session_of(&alice()).id]);

    let user = m
        .build()
        .update_user(
            Manager::Admin(&who),
            alice().id,
            UserPatch {
                roles: Some(roles),
                disabled: Some(true),
            },
        )
        .unwrap();
    assert!(user.disabled);
}

#[test]
fn refusals_of_the_rules_and_unknown_users_come_back_as_such() {
    let who = admin();
    for (answer, expected) in [
        (
            UpdateAccountError::Refused(AccountRuleError::SelfLockout),
            AdminError::SelfLockout,
        ),
        (UpdateAccountError::NotFound, AdminError::UserNotFound),
        (
            UpdateAccountError::Store(store_down()),
            AdminError::Unexpected(Unexpected::Store(store_down())),
        ),
    ] {
        let mut m = Mocks::strict_revocations(Mocks::new());
        m.revocations.expect_revoke().never();
        m.users.expect_update().times(1).return_const(Err(answer));
        assert_eq!(
            m.build().delete_user(Manager::Admin(&who), who.user_id),
            Err(expected)
        );
    }
}

#[test]
fn a_reset_hashes_once_and_revokes_what_the_repository_revoked() {
    let mut m = Mocks::new();
    finding_alice(&mut m);
    hashing_new(&mut m.hasher);
    m.users
        .expect_update()
        .withf(|u| {
            u.actor == Actor::Operator
                && u.changes == vec![AccountChange::PasswordReset(new_hash())]
        })
        .times(1)
        .returning(|_| {
            Ok(AccountUpdated {
                user: Some(alice()),
                revoked: vec![session_of(&alice()).id, other_session()],
            })
        });
    published(&mut m, vec![session_of(&alice()).id, other_session()]);
    assert_eq!(
        m.build()
            .reset_password(Manager::Operator, alice().id, &new_password()),
        Ok(())
    );
}

#[test]
fn an_admin_creates_users_with_the_roles_asked_for() {
    let mut m = Mocks::new();
    hashing_new(&mut m.hasher);
    m.users
        .expect_create()
        .withf(|u| u.username.as_str() == "bob" && u.roles.contains(&Role::admin()))
        .times(1)
        .returning(|_| Err(CreateUserError::UsernameTaken));
    let who = admin();
    assert_eq!(
        m.build()
            .create_user(
                Manager::Admin(&who),
                RegisterInput {
                    username: Username::parse("bob").unwrap(),
                    password: new_password(),
                    roles: Roles::new([Role::admin()]),
                }
            )
            .unwrap_err(),
        AdminError::UsernameTaken
    );
}

#[test]
fn users_are_found_by_name_in_any_case() {
    let mut m = Mocks::new();
    with_credentials(&mut m);
    let found = m
        .build()
        .find_user(Manager::Operator, &Username::parse("ALICE").unwrap())
        .unwrap();
    assert_eq!(found, Some(alice()));
}
