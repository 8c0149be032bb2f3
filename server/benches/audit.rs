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
            dpop: None,
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
    let issued = warden
        .refresh(Some(token), None, client())
        .expect("refresh");
    *token = issued.refresh_token.expose().to_owned();
}

/// The overhead measured in alternating blocks, so that both variants see
/// the same machine: on a shared machine the load drifts between two
/// criterion runs by more than the difference sought. Short blocks run in
/// the order ABBA, so that a drift within a round cancels (the SQLite log
/// is checkpointed by a thread of each database, whose CPU time counts
/// below, not inside some unlucky block). Prints, for each variant, the wall time per refresh (one client
/// refreshing back to back) and the CPU time per refresh of the whole
/// process (with the SQLite checkpoint thread): the first is what one
/// client waits, the second what bounds the throughput of a busy server;
/// a virtual disk makes the first noisy.
fn paired(backend: &str, plain: &mut (TokenWarden, String), audited: &mut (TokenWarden, String)) {
    const ROUNDS: usize = 60;
    const PER_BLOCK: usize = 100;
    let time = |(warden, token): &mut (TokenWarden, String)| {
        let (start, cpu) = (Instant::now(), process_cpu());
        for _ in 0..PER_BLOCK {
            refresh_once(warden, token);
        }
        (start.elapsed().as_secs_f64(), process_cpu() - cpu)
    };
    let (mut wall, mut cpu) = ([0.0; 2], [0.0; 2]);
    for _ in 0..ROUNDS {
        for variant in [0, 1, 1, 0] {
            let (w, c) = time(if variant == 0 {
                &mut *plain
            } else {
                &mut *audited
            });
            wall[variant] += w;
            cpu[variant] += c;
        }
    }
    let per_refresh = |total: f64| total * 1e6 / (2 * ROUNDS * PER_BLOCK) as f64;
    let overhead = |totals: [f64; 2]| (totals[1] / totals[0] - 1.0) * 100.0;
    println!(
        "refresh/{backend} ({} refreshes each): wall {:.0} → {:.0} µs ({:+.1} %), \
         CPU {:.0} → {:.0} µs ({:+.1} %) without → with the audit trail",
        2 * ROUNDS * PER_BLOCK,
        per_refresh(wall[0]),
        per_refresh(wall[1]),
        overhead(wall),
        per_refresh(cpu[0]),
        per_refresh(cpu[1]),
        overhead(cpu),
    );
}

/// CPU time this process has used (all threads), in seconds, from
/// `/proc/self/stat` (ticks of 10 ms: summed over many blocks, the rounding
/// evens out); 0 where there is no procfs.
fn process_cpu() -> f64 {
    let read = || -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some((utime + stime) / 100.0)
    };
    read().unwrap_or(0.0)
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
