//! What the audit trail costs a refresh: full refreshes through the
//! application layer (token parsing, successor derivation, the rotation
//! transaction, signing) with and without the audit row, on SQLite and, when
//! `TEST_DATABASE_URL` is set, on PostgreSQL. The row is written inside the
//! rotation's transaction, so the difference is one insert (and the trigger
//! that keeps the hourly aggregate), not a second transaction. Target:
//! under 15 %.
//!
//! `cargo bench -p server --bench audit`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use application::ports::ClientInfo;
use application::{LoginInput, RegisterInput, TokenWarden};
use criterion::{criterion_group, criterion_main, Criterion};
use domain::{Password, Role, Roles, Username};
use persistence::testing::TestDatabase;
use server::startup::{build_warden, open_database, open_keys};
use server::Config;

fn client() -> ClientInfo {
    ClientInfo {
        ip: Some("198.51.100.7".to_owned()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0".to_owned()),
    }
}

/// A service on `database` (with or without the trail) and the refresh
/// token of a fresh login.
fn service(
    database: &TestDatabase,
    audited: bool,
    keys: &std::path::Path,
) -> (TokenWarden, String) {
    let config = Config::with_defaults(database.url(), keys);
    let db = open_database(&config).expect("database");
    let db = if audited {
        db
    } else {
        db.without_audit_trail()
    };
    let warden = build_warden(&config, &db, &open_keys(&config).expect("keys")).expect("warden");
    warden
        .register(RegisterInput {
            username: Username::parse("bench").expect("name"),
            password: Password::parse("bench password".to_owned()).expect("password"),
            roles: Roles::new([Role::user()]),
        })
        .expect("register");
    let login = warden
        .login(LoginInput {
            username: "bench".to_owned(),
            password: "bench password".to_owned(),
            device_name: None,
            previous_token: None,
            client: client(),
        })
        .expect("login");
    let token = login.refresh_token.expose().to_owned();
    (warden, token)
}

fn bench_backend(c: &mut Criterion, backend: &str, databases: [TestDatabase; 2]) {
    let keys = tempfile::tempdir().expect("keys dir");
    let [audited_db, unaudited_db] = databases;
    let mut plain = service(&unaudited_db, false, keys.path());
    let mut audited = service(&audited_db, true, keys.path());
    let mut group = c.benchmark_group("refresh");
    group.measurement_time(Duration::from_secs(10));
    for (name, (warden, token)) in [("unaudited", &mut plain), ("audited", &mut audited)] {
        group.bench_function(format!("{backend}/{name}"), |b| {
            b.iter(|| refresh_once(warden, token))
        });
    }
    group.finish();
    paired(backend, &mut plain, &mut audited);
}

fn refresh_once(warden: &TokenWarden, token: &mut String) {
    let issued = warden.refresh(Some(token), client()).expect("refresh");
    *token = issued.refresh_token.expose().to_owned();
}

/// The overhead measured in alternating blocks, so that both variants see
/// the same machine: on a shared machine the load drifts between two
/// criterion runs by more than the difference sought. Prints the median of
/// the per-block ratios.
fn paired(backend: &str, plain: &mut (TokenWarden, String), audited: &mut (TokenWarden, String)) {
    const BLOCKS: usize = 40;
    const PER_BLOCK: usize = 50;
    let mut ratios = Vec::with_capacity(BLOCKS);
    for _ in 0..BLOCKS {
        let time = |(warden, token): &mut (TokenWarden, String)| {
            let start = Instant::now();
            for _ in 0..PER_BLOCK {
                refresh_once(warden, token);
            }
            start.elapsed()
        };
        let without = time(plain);
        let with = time(audited);
        ratios.push(with.as_secs_f64() / without.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios[BLOCKS / 2];
    println!(
        "refresh/{backend}: audit overhead, median of {BLOCKS} paired blocks: {:+.1} %",
        (median - 1.0) * 100.0
    );
}

fn refresh(c: &mut Criterion) {
    bench_backend(
        c,
        "sqlite",
        [TestDatabase::sqlite(), TestDatabase::sqlite()],
    );
    if let (Some(a), Some(b)) = (TestDatabase::postgres(), TestDatabase::postgres()) {
        bench_backend(c, "postgres", [a, b]);
    }
}

criterion_group!(benches, refresh);
criterion_main!(benches);
