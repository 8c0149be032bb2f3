//! Cleanup of 1 000 000 expired rows while refreshes keep coming: how long
//! the pass takes, and refresh latency during it against the same load
//! when idle. A measurement to run once, not a criterion loop:
//!
//! `cargo bench -p server --bench cleanup` (SQLite; PostgreSQL too with
//! `TEST_DATABASE_URL`). `CLEANUP_BENCH_ROWS` changes the row count,
//! `CLEANUP_BENCH_BACKENDS=sqlite` or `=postgres` runs one backend, and
//! `CLEANUP_BENCH_BATCH` / `CLEANUP_BENCH_PAUSE_MS` try other batching.
//!
//! The rows are 500 000 sessions past their absolute end with one refresh
//! token each. The refreshes are one client rotating its token back to back
//! through the application layer (rotation transaction and access-token
//! signing), as `POST /auth/refresh` does minus HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use application::cleanup::{Batching, Cleanup, CleanupPolicy, CleanupRun};
use application::ports::ClientInfo;
use application::{LoginInput, RegisterInput, TokenWarden};
use domain::{Password, Role, Roles, Timestamp, Username};
use persistence::testing::{seed_expired_sessions, TestDatabase};
use server::cleanup::cleanup_service;
use server::startup::{build_warden, open_database, open_keys};
use server::system::SystemClock;
use server::Config;

const IDLE_FOR: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(15);

struct Stats {
    count: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |p: f64| {
        let rank = ((samples.len() as f64) * p).ceil() as usize;
        samples[rank.clamp(1, samples.len()) - 1]
    };
    Stats {
        count: samples.len(),
        p50: at(0.50),
        p99: at(0.99),
        max: *samples.last().unwrap(),
    }
}

/// Refreshes back to back until `stop` is set or `limit` has passed.
fn refresh_until(
    warden: &TokenWarden,
    token: &mut String,
    stop: &AtomicBool,
    limit: Duration,
) -> Vec<Duration> {
    let client = ClientInfo {
        ip: Some("127.0.0.1".to_owned()),
        user_agent: Some("bench".to_owned()),
    };
    let started = Instant::now();
    let mut samples = Vec::new();
    while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
        let t = Instant::now();
        let issued = warden
            .refresh(Some(token), None, client.clone())
            .expect("a refresh failed");
        samples.push(t.elapsed());
        *token = issued.refresh_token.expose().to_owned();
    }
    samples
}

/// The server's cleanup, or batching from `CLEANUP_BENCH_BATCH` and
/// `CLEANUP_BENCH_PAUSE_MS` when set (for tuning).
fn cleanup(config: &Config, db: &persistence::Database) -> Cleanup {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match (var("CLEANUP_BENCH_BATCH"), var("CLEANUP_BENCH_PAUSE_MS")) {
        (None, None) => cleanup_service(config, db),
        (batch, pause) => {
            let default = server::cleanup::batching_for(db.backend());
            let batching = Batching {
                batch_size: batch.map_or(default.batch_size, |b| u32::try_from(b).unwrap()),
                pause: pause.map_or(default.pause, Duration::from_millis),
            };
            println!("batching: {batching:?}");
            Cleanup::new(
                Arc::new(db.clone()),
                Arc::new(SystemClock),
                CleanupPolicy {
                    audit_retention: config.audit_retention,
                    batching,
                },
            )
        }
    }
}

fn run(name: &str, test_db: &TestDatabase, rows: u64) {
    let keys = tempfile::tempdir().unwrap();
    let config = Config::with_defaults(test_db.url(), keys.path());
    let db = open_database(&config).unwrap();
    let warden = build_warden(&config, &db, &open_keys(&config).unwrap()).unwrap();
    warden
        .register(RegisterInput {
            username: Username::parse("bench").unwrap(),
            password: Password::parse("bench password".to_owned()).unwrap(),
            roles: Roles::new([Role::user()]),
        })
        .unwrap();
    let mut token = warden
        .login(LoginInput {
            username: "bench".to_owned(),
            password: "bench password".to_owned(),
            device_name: None,
            previous_token: None,
            client: ClientInfo {
                ip: None,
                user_agent: Some("bench".to_owned()),
            },
            dpop: None,
        })
        .unwrap()
        .refresh_token
        .expose()
        .to_owned();

    let seeding = Instant::now();
    let seeded = seed_expired_sessions(&db, rows / 2, 1, Timestamp::from_millis(1_000_000));
    println!(
        "[{name}] seeded {} sessions + {} refresh tokens in {:.1?}",
        seeded.sessions,
        seeded.refresh_tokens,
        seeding.elapsed()
    );

    // Let the database settle after the bulk insert (checkpoints, autovacuum)
    // so that "idle" means idle.
    std::thread::sleep(SETTLE);
    let never = AtomicBool::new(false);
    let idle = stats(refresh_until(&warden, &mut token, &never, IDLE_FOR));

    let done = Arc::new(AtomicBool::new(false));
    let cleaner = {
        let (config, db, done) = (config.clone(), db.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let started = Instant::now();
            let run = cleanup(&config, &db).run().unwrap();
            let took = started.elapsed();
            done.store(true, Ordering::Relaxed);
            (run, took)
        })
    };
    let during = stats(refresh_until(
        &warden,
        &mut token,
        &done,
        Duration::from_secs(3_600),
    ));
    let (run, took) = cleaner.join().unwrap();
    let CleanupRun::Done(report) = run else {
        panic!("the cleanup pass was skipped");
    };
    assert_eq!(report.sessions + report.refresh_tokens, rows);
    println!(
        "[{name}] cleanup removed {} rows ({} sessions, {} refresh tokens) in {:.1?}",
        report.sessions + report.refresh_tokens,
        report.sessions,
        report.refresh_tokens,
        took
    );
    println!(
        "[{name}] refresh idle:          n={:>6} p50={:>8.2?} p99={:>8.2?} max={:>8.2?}",
        idle.count, idle.p50, idle.p99, idle.max
    );
    println!(
        "[{name}] refresh during cleanup: n={:>6} p50={:>8.2?} p99={:>8.2?} max={:>8.2?}",
        during.count, during.p50, during.p99, during.max
    );
    println!(
        "[{name}] p99 during / idle = {:.2}",
        during.p99.as_secs_f64() / idle.p99.as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful either: this measurement only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows: u64 = std::env::var("CLEANUP_BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    let backends = std::env::var("CLEANUP_BENCH_BACKENDS").unwrap_or_default();
    let wanted = |b: &str| backends.is_empty() || backends.split(',').any(|x| x == b);
    if wanted("sqlite") {
        run("sqlite", &TestDatabase::sqlite(), rows);
    }
    if wanted("postgres") {
        if let Some(pg) = TestDatabase::postgres() {
            run("postgres", &pg, rows);
        }
    }
}
