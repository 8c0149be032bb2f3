//! Fixtures shared by the tests.

use std::time::Duration;

use application::ports::{
    ClientInfo, EndOutcome, EndReason, EndRequest, RotateOutcome, RotateRequest, SessionRepository,
    UserRepository,
};
use domain::{
    AnomalyPolicy, AnomalyResponse, Lifetimes, NewSession, NewUser, PasswordHash, ReuseResponse,
    Role, Roles, RotationDecision, RotationPolicy, Session, SessionId, Timestamp, TokenDigest,
    User, UserId, Username,
};
pub use persistence::testing::TestDatabase;
pub use persistence::Database;

/// For each `fn name(db: &TestDatabase)`, declares a module `name` with the
/// tests `sqlite` and `postgres`, each on its own fresh database.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(&$crate::common::TestDatabase::sqlite());
            }

            #[test]
            fn postgres() {
                if let Some(db) = $crate::common::TestDatabase::postgres() {
                    super::$name(&db);
                }
            }
        }
    )+};
}
pub(crate) use on_both_backends;

pub const UA: &str = "Mozilla/5.0 Firefox/130";
pub const OTHER_UA: &str = "curl/8.5";
pub const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

/// `secs` seconds after a fixed start instant.
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + secs * 1_000)
}

/// Idle 100 s, absolute 1000 s, grace 10 s.
pub fn lifetimes() -> Lifetimes {
    Lifetimes {
        access_ttl: Duration::from_secs(60),
        idle_ttl: Duration::from_secs(100),
        max_lifetime: Duration::from_secs(1_000),
        grace: Duration::from_secs(10),
        max_sessions: 10,
    }
}

pub fn idle() -> Duration {
    lifetimes().idle_ttl
}

pub fn client(user_agent: &str) -> ClientInfo {
    ClientInfo {
        ip: Some("203.0.113.7".to_owned()),
        user_agent: Some(user_agent.to_owned()),
    }
}

pub fn digest() -> TokenDigest {
    TokenDigest::from_bytes(rand::random())
}

pub fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::from_random_bytes(rand::random()),
        username: Username::parse(name).unwrap(),
        password_hash: PasswordHash::new(HASH.to_owned()),
        roles: Roles::new([Role::user()]),
        created_at: at(0),
    }
}

pub fn user(db: &Database, name: &str) -> User {
    UserRepository::create(db, new_user(name)).unwrap()
}

pub fn new_session(user: &User, now: Timestamp, user_agent: &str) -> NewSession {
    NewSession {
        id: SessionId::from_random_bytes(rand::random()),
        user_id: user.id,
        device_name: Some("laptop".to_owned()),
        created_at: now,
        expires_at: now.plus(lifetimes().max_lifetime),
        ip: Some("198.51.100.1".to_owned()),
        user_agent: Some(user_agent.to_owned()),
        dpop_jkt: None,
    }
}

/// A login at `now` from [`UA`]: the new session and its first token.
pub fn login(db: &Database, user: &User, now: Timestamp) -> (Session, TokenDigest) {
    login_limited(db, user, now, 10)
}

pub fn login_limited(
    db: &Database,
    user: &User,
    now: Timestamp,
    max_sessions: u32,
) -> (Session, TokenDigest) {
    let token = digest();
    let created =
        SessionRepository::create(db, new_session(user, now, UA), token, max_sessions).unwrap();
    (created.session, token)
}

/// The test rules: [`lifetimes`], `RevokeAll`, no anomaly rule and no
/// retry window (tests of the retry rule set one).
pub fn policy() -> RotationPolicy {
    RotationPolicy::new(
        &lifetimes(),
        Duration::ZERO,
        ReuseResponse::RevokeAll,
        no_anomaly_rule(),
    )
}

/// The request to rotate `presented` (which must be on record in `db`).
pub fn rotate_request(
    db: &Database,
    presented: TokenDigest,
    successor: TokenDigest,
    now: Timestamp,
    user_agent: &str,
) -> RotateRequest {
    RotateRequest {
        presented,
        location: db
            .locate(&presented)
            .unwrap()
            .expect("the presented token is on record"),
        successor,
        policy: policy(),
        client: client(user_agent),
        now,
        proof: None,
    }
}

/// The anomaly rule switched off, so that tests of other rules can change
/// network and device freely.
pub fn no_anomaly_rule() -> AnomalyPolicy {
    AnomalyPolicy {
        window: Duration::ZERO,
        response: AnomalyResponse::Revoke,
    }
}

/// Rotates `presented` into `successor` with the default test settings.
pub fn rotate(
    db: &Database,
    presented: TokenDigest,
    successor: TokenDigest,
    now: Timestamp,
    user_agent: &str,
) -> RotateOutcome {
    db.rotate(rotate_request(db, presented, successor, now, user_agent))
        .unwrap()
}

/// Logs in and rotates once at `at(1)`: returns the session, the first
/// (now rotated) token and the current one.
pub fn login_and_rotate(db: &Database, user: &User) -> (Session, TokenDigest, TokenDigest) {
    let (session, first) = login(db, user, at(0));
    let second = digest();
    assert_eq!(
        decision(&rotate(db, first, second, at(1), UA)),
        RotationDecision::Rotate {
            next: domain::Generation::new(1)
        }
    );
    (session, first, second)
}

pub fn decision(outcome: &RotateOutcome) -> RotationDecision {
    match outcome {
        RotateOutcome::Decided { decision, .. } => *decision,
        RotateOutcome::UnknownToken => panic!("token unknown"),
    }
}

pub fn end(
    db: &Database,
    token: TokenDigest,
    reason: EndReason,
    response: ReuseResponse,
    now: Timestamp,
) -> EndOutcome {
    db.end_by_token(EndRequest {
        token,
        reason,
        policy: RotationPolicy {
            reuse_response: response,
            ..policy()
        },
        client: client(UA),
        now,
        proof: None,
        recorded_key: None,
    })
    .unwrap()
}
