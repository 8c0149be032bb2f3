//! Cost of one refresh-token rotation transaction (`SessionRepository::rotate`)
//! on SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set; for an
//! unbound session, and for one bound to a DPoP key, whose rotation records
//! the proof's `jti` in the same transaction.
//!
//! `cargo bench -p persistence`

// Benchmark set-up: failing fixtures must stop the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use application::ports::{
    CheckedProof, ClientInfo, RotateRequest, SessionRepository, UserRepository,
};
use criterion::{criterion_group, criterion_main, Criterion};
use domain::{
    AnomalyPolicy, Jkt, Lifetimes, NewSession, NewUser, PasswordHash, ReuseResponse, Role, Roles,
    RotationPolicy, SessionId, Timestamp, TokenDigest, UserId, Username,
};
use persistence::testing::TestDatabase;
use persistence::Database;

fn digest() -> TokenDigest {
    TokenDigest::from_bytes(rand::random())
}

/// Rotates one session's token again and again, a millisecond apart; with
/// `bound`, the session is bound to a key and every rotation brings a proof
/// with a new `jti`.
fn bench_rotation(c: &mut Criterion, name: &str, db: &Database, bound: bool) {
    let key = Jkt::of_canonical_jwk("{\"bench\":\"key\"}");
    let start = Timestamp::from_millis(1_700_000_000_000);
    let user = UserRepository::create(
        db,
        NewUser {
            id: UserId::from_random_bytes(rand::random()),
            username: Username::parse(&format!("bench{}", rand::random::<u32>())).unwrap(),
            password_hash: PasswordHash::new("$argon2id$bench".to_owned()),
            roles: Roles::new([Role::user()]),
            created_at: start,
        },
    )
    .unwrap();
    let mut current = digest();
    let session = NewSession {
        id: SessionId::from_random_bytes(rand::random()),
        user_id: user.id,
        device_name: None,
        created_at: start,
        expires_at: start.plus(Duration::from_secs(30 * 24 * 3600)),
        ip: None,
        user_agent: Some("bench".to_owned()),
        dpop_jkt: bound.then(|| key.clone()),
    };
    SessionRepository::create(db, session, current, 10).unwrap();
    let mut now = start;
    let mut jti = 0u64;
    c.bench_function(name, |b| {
        b.iter(|| {
            let next = digest();
            now = now.plus(Duration::from_millis(1));
            let location = db.locate(&current).unwrap().unwrap();
            let outcome = db
                .rotate(RotateRequest {
                    presented: current,
                    location,
                    successor: next,
                    policy: RotationPolicy::new(
                        &Lifetimes::default(),
                        RotationPolicy::DEFAULT_RETRY_WINDOW,
                        ReuseResponse::RevokeAll,
                        AnomalyPolicy::default(),
                    ),
                    client: ClientInfo {
                        ip: None,
                        user_agent: Some("bench".to_owned()),
                    },
                    now,
                    proof: bound.then(|| {
                        jti += 1;
                        CheckedProof {
                            key: key.clone(),
                            jti: jti.to_string(),
                            remember_until: now.plus(Duration::from_secs(60)),
                        }
                    }),
                })
                .unwrap();
            assert!(matches!(
                outcome,
                application::ports::RotateOutcome::Decided {
                    decision: domain::RotationDecision::Rotate { .. },
                    ..
                }
            ));
            current = next;
            outcome
        });
    });
}

fn rotation(c: &mut Criterion) {
    let sqlite = TestDatabase::sqlite();
    bench_rotation(c, "rotate/sqlite", &sqlite.open(2), false);
    bench_rotation(c, "rotate/sqlite/dpop-bound", &sqlite.open(2), true);
    if let Some(postgres) = TestDatabase::postgres() {
        bench_rotation(c, "rotate/postgres", &postgres.open(2), false);
        bench_rotation(c, "rotate/postgres/dpop-bound", &postgres.open(2), true);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = rotation
}
criterion_main!(benches);
