//! Cost of one refresh-token rotation transaction (`SessionRepository::rotate`)
//! on SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set.
//!
//! `cargo bench -p persistence`

// Benchmark set-up: failing fixtures must stop the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use application::ports::{ClientInfo, RotateRequest, SessionRepository, UserRepository};
use criterion::{criterion_group, criterion_main, Criterion};
use domain::{
    AnomalyPolicy, Lifetimes, NewSession, NewUser, PasswordHash, ReuseResponse, Role, Roles,
    RotationPolicy, SessionId, Timestamp, TokenDigest, UserId, Username,
};
use persistence::testing::TestDatabase;
use persistence::Database;

fn digest() -> TokenDigest {
    TokenDigest::from_bytes(rand::random())
}

/// Rotates one session's token again and again, a millisecond apart.
fn bench_rotation(c: &mut Criterion, name: &str, db: &Database) {
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
        dpop_jkt: None,
    };
    SessionRepository::create(db, session, current, 10).unwrap();
    let mut now = start;
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
                    proof: None,
                })
                .unwrap();
            current = next;
            outcome
        });
    });
}

fn rotation(c: &mut Criterion) {
    let sqlite = TestDatabase::sqlite();
    bench_rotation(c, "rotate/sqlite", &sqlite.open(2));
    if let Some(postgres) = TestDatabase::postgres() {
        bench_rotation(c, "rotate/postgres", &postgres.open(2));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = rotation
}
criterion_main!(benches);
