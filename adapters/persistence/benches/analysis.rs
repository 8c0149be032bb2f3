//! The token analysis of a user with 100 000 audit rows in the window
//! (`AuditTrail::activity`, the aggregates the risk rules run on), on
//! SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set. Target: well
//! under 100 ms.
//!
//! `cargo bench -p persistence --bench analysis`
//!
//! Two trails of 100 000 attempts over the last 7 days, among 100 000 rows
//! of 200 other users:
//! * `typical`: 5 sessions (devices) refreshing around the clock, each from
//!   two networks, mostly successes and grace replays, plus a theft: 500
//!   replays of a stolen token from 50 networks with 5 clients;
//! * `spread`: the same volume over 20 sessions, each from 3 networks and
//!   with 2 browser versions, and the attack from 200 networks.

// Benchmark set-up: failing fixtures must stop the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use application::ports::AuditTrail;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use domain::{RefreshAttempt, RefreshOutcome, SessionId, Timestamp, UserId};
use persistence::testing::TestDatabase;
use persistence::Database;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const ROWS: usize = 100_000;
const NOW: i64 = 1_700_000_000_000;
const WEEK_MS: i64 = 7 * 86_400_000;

struct Shape {
    sessions: usize,
    networks_per_session: usize,
    versions_per_session: usize,
    attacker_networks: usize,
}

const TYPICAL: Shape = Shape {
    sessions: 5,
    networks_per_session: 2,
    versions_per_session: 1,
    attacker_networks: 50,
};

const SPREAD: Shape = Shape {
    sessions: 20,
    networks_per_session: 3,
    versions_per_session: 2,
    attacker_networks: 200,
};

fn browser(session: usize, version: usize) -> String {
    let major = 120 + session % 10;
    format!(
        "Mozilla/5.0 (X11; Linux x86_64; rv:{major}.0) Gecko/20100101 Firefox/{major}.{version}"
    )
}

fn trail(user: UserId, shape: &Shape, rng: &mut StdRng) -> Vec<RefreshAttempt> {
    let sessions: Vec<SessionId> = (0..shape.sessions)
        .map(|_| SessionId::from_random_bytes(rng.random()))
        .collect();
    let attack = 500;
    let mut rows = Vec::with_capacity(ROWS);
    for i in 0..ROWS - attack {
        let s = i % shape.sessions;
        let outcome = match rng.random_range(0..100) {
            0..=89 => RefreshOutcome::Success,
            90..=96 => RefreshOutcome::GraceReplay,
            97..=98 => RefreshOutcome::Expired,
            _ => RefreshOutcome::Revoked,
        };
        rows.push(RefreshAttempt {
            at: Timestamp::from_millis(NOW - rng.random_range(0..WEEK_MS)),
            outcome,
            user_id: Some(user),
            session_id: Some(sessions[s]),
            ip: Some(format!(
                "198.51.{s}.{}",
                rng.random_range(0..shape.networks_per_session)
            )),
            user_agent: Some(browser(s, rng.random_range(0..shape.versions_per_session))),
            fingerprint: None,
        });
    }
    for i in 0..attack {
        rows.push(RefreshAttempt {
            at: Timestamp::from_millis(NOW - rng.random_range(0..86_400_000)),
            outcome: if i == 0 {
                RefreshOutcome::Reused
            } else {
                RefreshOutcome::Revoked
            },
            user_id: Some(user),
            session_id: Some(sessions[0]),
            ip: Some(format!(
                "203.0.{}.{}",
                i % shape.attacker_networks / 250,
                i % shape.attacker_networks % 250
            )),
            user_agent: Some(format!("curl/8.{}", i % 5)),
            fingerprint: None,
        });
    }
    rows
}

fn noise(rng: &mut StdRng) -> Vec<RefreshAttempt> {
    let users: Vec<UserId> = (0..200)
        .map(|_| UserId::from_random_bytes(rng.random()))
        .collect();
    (0..ROWS)
        .map(|i| RefreshAttempt {
            at: Timestamp::from_millis(NOW - rng.random_range(0..WEEK_MS)),
            outcome: RefreshOutcome::Success,
            user_id: Some(users[i % users.len()]),
            session_id: None,
            ip: Some("192.0.2.1".to_owned()),
            user_agent: Some(browser(i, 0)),
            fingerprint: None,
        })
        .collect()
}

fn bench_backend(c: &mut Criterion, backend: &str, db: &Database) {
    let mut rng = StdRng::seed_from_u64(7);
    db.record_refresh_batch(&noise(&mut rng)).unwrap();
    let mut group = c.benchmark_group("analysis");
    for (name, shape) in [("typical", &TYPICAL), ("spread", &SPREAD)] {
        let user = UserId::from_random_bytes(rng.random());
        db.record_refresh_batch(&trail(user, shape, &mut rng))
            .unwrap();
        // The window as the use case asks for it: 7 days, from midnight UTC.
        let since = NOW - WEEK_MS;
        let since = Timestamp::from_millis(since - since.rem_euclid(86_400_000));
        let summary = db.activity(user, since).unwrap();
        assert_eq!(summary.total(), ROWS as u64, "{name}: every row counted");
        group.bench_with_input(
            BenchmarkId::new(format!("100k_rows/{backend}"), name),
            &user,
            |b, user| b.iter(|| db.activity(*user, since).unwrap()),
        );
    }
    group.finish();
}

fn analysis(c: &mut Criterion) {
    let sqlite = TestDatabase::sqlite();
    bench_backend(c, "sqlite", &sqlite.open(2));
    if let Some(postgres) = TestDatabase::postgres() {
        let db = postgres.open(2);
        bench_backend(c, "postgres", &db);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = analysis
}
criterion_main!(benches);
