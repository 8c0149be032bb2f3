use application::ports::{CreateUserError, SessionRepository, UserRepository};
use domain::{NewSession, PasswordHash, Role, Roles, SessionId, SessionStatus, UserId, Username};

use crate::common::*;

on_both_backends!(
    a_created_user_is_found_by_id_and_by_username_in_any_case,
    usernames_are_unique_regardless_of_case,
    sql_looking_and_non_ascii_data_is_stored_verbatim,
);

fn a_created_user_is_found_by_id_and_by_username_in_any_case(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "Alice.B-1");
    assert_eq!(alice.username.as_str(), "Alice.B-1");

    assert_eq!(db.find(alice.id).unwrap(), Some(alice.clone()));
    let (found, hash) = db
        .find_credentials(&Username::parse("aLICE.b-1").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(found, alice);
    assert_eq!(found.username.as_str(), "Alice.B-1", "stored as given");
    assert_eq!(hash.as_str(), HASH);

    assert_eq!(db.find(UserId::from_random_bytes([9; 16])).unwrap(), None);
    assert!(db
        .find_credentials(&Username::parse("bob").unwrap())
        .unwrap()
        .is_none());
}

fn usernames_are_unique_regardless_of_case(db: &TestDatabase) {
    let db = db.open(2);
    let alice = user(&db, "alice");
    assert_eq!(
        UserRepository::create(&db, new_user("ALICE")),
        Err(CreateUserError::UsernameTaken)
    );
    assert_eq!(
        UserRepository::create(&db, new_user("Alice")),
        Err(CreateUserError::UsernameTaken)
    );
    // The first one is untouched, and other names still work.
    let (found, _) = db
        .find_credentials(&Username::parse("alice").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(found, alice);
    user(&db, "alice2");

    // Another unique violation (the same id) is not reported as a taken name.
    let mut same_id = new_user("carol");
    same_id.id = alice.id;
    assert!(matches!(
        UserRepository::create(&db, same_id),
        Err(CreateUserError::Store(_))
    ));
}

fn sql_looking_and_non_ascii_data_is_stored_verbatim(db: &TestDatabase) {
    let db = db.open(2);
    let hash = "'; DROP TABLE users; -- \"ünïcødé\" 日本語 \\ %_ $1 ?";
    let mut new = new_user("Robert.Tables_");
    new.password_hash = PasswordHash::new(hash.to_owned());
    new.roles = Roles::new([Role::admin(), Role::user()]);
    let bobby = UserRepository::create(&db, new).unwrap();

    let (found, stored_hash) = db
        .find_credentials(&Username::parse("robert.tables_").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored_hash.as_str(), hash);
    assert_eq!(found.roles, Roles::new([Role::admin(), Role::user()]));

    let device = "Bobby'); DROP TABLE sessions;-- 📱 Ωmega";
    let agent = "Mozilla/5.0 (X11; Linux) 'quoted' \"double\" ÄÖÜ ✓ tab\there";
    let ip = "2001:db8::1";
    let session = SessionRepository::create(
        &db,
        NewSession {
            id: SessionId::from_random_bytes(rand::random()),
            user_id: bobby.id,
            device_name: Some(device.to_owned()),
            created_at: at(0),
            expires_at: at(1_000),
            ip: Some(ip.to_owned()),
            user_agent: Some(agent.to_owned()),
            dpop_jkt: None,
        },
        digest(),
        10,
    )
    .unwrap()
    .session;
    let listed = db.list_live(bobby.id, idle(), at(1)).unwrap();
    assert_eq!(listed, vec![session.clone()]);
    assert_eq!(listed[0].device_name.as_deref(), Some(device));
    assert_eq!(listed[0].last_user_agent.as_deref(), Some(agent));
    assert_eq!(listed[0].last_ip.as_deref(), Some(ip));
    assert_eq!(
        db.status(session.id, idle(), at(1)).unwrap(),
        SessionStatus::Live
    );
    let found = db.find(bobby.id).unwrap().unwrap();
    assert_eq!(found.last_login_at, Some(at(0)), "the login is recorded");
    assert_eq!(
        found,
        domain::User {
            last_login_at: Some(at(0)),
            ..bobby
        }
    );
}
