//! What the revocation check adds to a Bearer request, with the database
//! list and with Redis.
//!
//! `cargo bench -p server --bench revocation`. SQLite always; PostgreSQL
//! with `TEST_DATABASE_URL`, Redis with `TEST_REDIS_URL`.
//!
//! * `check/*`: one `RevocationList::check(&[session, jti], now, Cached)`,
//!   the exact call every Bearer request and refresh makes, against a list
//!   holding 10 000 entries in force (a busy quarter of an hour of logouts);
//!   1 request in 100 asks about a revoked session.
//! * `check_fresh/*`: the same with `Fresh` (introspection).
//! * `authenticate/*`: the whole Bearer check (`TokenWarden::authenticate`:
//!   JWT verification, revocation check, session status) with the database
//!   list and the Redis list, and `authenticate/*/no_list` the same warden
//!   with a list that answers nothing without looking: the difference is
//!   what the list adds. The two are called alternately, so that noise on
//!   the machine hits both alike.
//!
//! Criterion reports means; every call is also timed on its own, and the
//! p50/p99/p99.9 of each benchmark are printed at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use application::ports::{Consistency, Revocation, RevocationKey, RevocationList, StoreError};
use application::{LoginInput, Ports, RegisterInput, Settings, TokenWarden};
use criterion::{criterion_group, criterion_main, Criterion};
use domain::{AccessTokenId, Password, RefreshSecret, Role, Roles, SessionId, Timestamp, Username};
use jwt::{JwtConfig, JwtSigner, KeyStore};
use password::Argon2Hasher;
use persistence::testing::TestDatabase;
use persistence::{Database, DbRevocationList};
use redis_revocation::testing::unique_prefix;
use redis_revocation::{OnRedisFailure, RedisConfig, RedisRevocationList};
use server::system::{OsRandom, SystemClock};

const ENTRIES: usize = 10_000;

fn samples() -> &'static Mutex<BTreeMap<String, Vec<Duration>>> {
    static SAMPLES: OnceLock<Mutex<BTreeMap<String, Vec<Duration>>>> = OnceLock::new();
    SAMPLES.get_or_init(Mutex::default)
}

fn now() -> Timestamp {
    Timestamp::from_millis(
        i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap(),
    )
}

fn random_session() -> SessionId {
    SessionId::from_random_bytes(rand::random())
}

/// Fills `list` with [`ENTRIES`] entries; returns some revoked sessions.
fn populate(list: &dyn RevocationList) -> Vec<SessionId> {
    let t = now();
    let until = t.plus(Duration::from_secs(900));
    let revoked: Vec<SessionId> = (0..ENTRIES / 2).map(|_| random_session()).collect();
    let mut entries: Vec<Revocation> = revoked
        .iter()
        .map(|s| Revocation {
            key: RevocationKey::Session(*s),
            expires_at: until,
        })
        .collect();
    entries.extend((0..ENTRIES / 2).map(|_| Revocation {
        key: RevocationKey::AccessToken(AccessTokenId::from_random_bytes(rand::random())),
        expires_at: until,
    }));
    for chunk in entries.chunks(500) {
        list.revoke(chunk).unwrap();
    }
    revoked
}

/// Times each call of `f` and records it under `name`.
fn bench_calls(c: &mut Criterion, name: &str, mut f: impl FnMut(u64)) {
    let mut recorded = Vec::new();
    let mut n = 0u64;
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let start = Instant::now();
                f(n);
                let took = start.elapsed();
                total += took;
                recorded.push(took);
            }
            total
        })
    });
    samples().lock().unwrap().insert(name.to_owned(), recorded);
}

fn bench_check(c: &mut Criterion, name: &str, list: &dyn RevocationList, consistency: Consistency) {
    let revoked = populate(list);
    let active: Vec<SessionId> = (0..1_000).map(|_| random_session()).collect();
    let prefix = match consistency {
        Consistency::Cached => "check",
        Consistency::Fresh => "check_fresh",
    };
    bench_calls(c, &format!("{prefix}/{name}"), |n| {
        let i = usize::try_from(n).unwrap();
        let session = if i % 100 == 0 {
            revoked[i % revoked.len()]
        } else {
            active[i % active.len()]
        };
        let jti = AccessTokenId::from_random_bytes(rand::random());
        let keys = [
            RevocationKey::Session(session),
            RevocationKey::AccessToken(jti),
        ];
        let answer = list.check(&keys, now(), consistency).unwrap();
        assert_eq!(answer.is_some(), i % 100 == 0);
    });
}

/// A list with nothing on it, asked nothing: the baseline.
struct NoList;

impl RevocationList for NoList {
    fn revoke(&self, _: &[Revocation]) -> Result<(), StoreError> {
        Ok(())
    }
    fn check(
        &self,
        _: &[RevocationKey],
        _: Timestamp,
        _: Consistency,
    ) -> Result<Option<RevocationKey>, StoreError> {
        Ok(None)
    }
    fn live(&self, _: Timestamp) -> Result<Vec<Revocation>, StoreError> {
        Ok(Vec::new())
    }
}

fn warden(db: &Database, keys: &KeyStore, list: Arc<dyn RevocationList>) -> TokenWarden {
    TokenWarden::new(
        Ports {
            users: Arc::new(db.clone()),
            sessions: Arc::new(db.clone()),
            hasher: Arc::new(Argon2Hasher::new(1)),
            signer: Arc::new(JwtSigner::new(
                keys.clone(),
                JwtConfig {
                    issuer: "tokenwarden".to_owned(),
                    audience: "tokenwarden".to_owned(),
                    leeway: Duration::ZERO,
                },
            )),
            clock: Arc::new(SystemClock),
            random: Arc::new(OsRandom),
            revocations: list,
            audit: Arc::new(db.clone()),
        },
        Settings {
            lifetimes: domain::Lifetimes::default(),
            reuse_response: domain::ReuseResponse::RevokeAll,
            refresh_secret: RefreshSecret::from_bytes([7; 32]),
            clock_leeway: Duration::ZERO,
            anomaly: domain::AnomalyPolicy::default(),
            retry_window: domain::RotationPolicy::DEFAULT_RETRY_WINDOW,
        },
    )
}

/// A logged-in warden over `list`, and an access token of it.
fn signed_in(
    db: &Database,
    keys: &KeyStore,
    list: Arc<dyn RevocationList>,
) -> (TokenWarden, String) {
    let warden = warden(db, keys, list);
    let username = format!("bench{}", rand::random::<u32>());
    warden
        .register(RegisterInput {
            username: Username::parse(&username).unwrap(),
            password: Password::parse("bench password".to_owned()).unwrap(),
            roles: Roles::new([Role::user()]),
        })
        .unwrap();
    let issued = warden
        .login(LoginInput {
            username,
            password: "bench password".to_owned(),
            device_name: None,
            previous_token: None,
            client: Default::default(),
            dpop: None,
        })
        .unwrap();
    (warden, issued.access_token)
}

/// `authenticate` with `list` and without, alternately.
fn bench_authenticate(c: &mut Criterion, name: &str, db: &Database, list: Arc<dyn RevocationList>) {
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = KeyStore::open(keys_dir.path()).unwrap();
    let (with, with_token) = signed_in(db, &keys, list);
    let (without, without_token) = signed_in(db, &keys, Arc::new(NoList));
    let mut baseline = Vec::new();
    bench_calls(c, &format!("authenticate/{name}"), |_| {
        let start = Instant::now();
        without.authenticate(&without_token).unwrap();
        baseline.push(start.elapsed());
        with.authenticate(&with_token).unwrap();
    });
    // The closure timed both calls; keep only the listed one's share.
    let mut all = samples().lock().unwrap();
    let recorded = all.remove(&format!("authenticate/{name}")).unwrap();
    let with_list: Vec<Duration> = recorded
        .iter()
        .zip(&baseline)
        .map(|(both, base)| both.saturating_sub(*base))
        .collect();
    all.insert(format!("authenticate/{name}"), with_list);
    all.insert(format!("authenticate/{name}/no_list"), baseline);
}

fn redis_list(url: &str, db: &Database) -> Arc<RedisRevocationList> {
    let list = RedisRevocationList::new(
        RedisConfig {
            url: url.to_owned(),
            key_prefix: unique_prefix(),
            timeout: Duration::from_millis(250),
            on_failure: OnRedisFailure::FailClosed,
            pool_size: 4,
        },
        Arc::new(DbRevocationList::without_polling(db.clone())),
    )
    .unwrap();
    assert!(list.wait_until_in_sync(Duration::from_secs(5)));
    Arc::new(list)
}

fn revocation(c: &mut Criterion) {
    let sqlite = TestDatabase::sqlite();
    let sqlite_db = sqlite.open(8);
    let postgres = TestDatabase::postgres();
    let redis_url = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty());

    bench_check(
        c,
        "database/sqlite",
        &DbRevocationList::new(sqlite_db.clone()),
        Consistency::Cached,
    );
    if let Some(pg) = &postgres {
        let pg_db = pg.open(8);
        let list = DbRevocationList::new(pg_db.clone());
        bench_check(c, "database/postgres", &list, Consistency::Cached);
        bench_check(c, "database/postgres", &list, Consistency::Fresh);
    }
    if let Some(url) = &redis_url {
        let list = redis_list(url, &sqlite_db);
        bench_check(c, "redis", &*list, Consistency::Cached);
        bench_check(c, "redis", &*list, Consistency::Fresh);
    }

    bench_authenticate(
        c,
        "database/sqlite",
        &sqlite_db,
        Arc::new(DbRevocationList::new(sqlite_db.clone())),
    );
    if let Some(pg) = &postgres {
        let pg_db = pg.open(8);
        bench_authenticate(
            c,
            "database/postgres",
            &pg_db,
            Arc::new(DbRevocationList::new(pg_db.clone())),
        );
        if let Some(url) = &redis_url {
            bench_authenticate(c, "redis/postgres", &pg_db, redis_list(url, &pg_db));
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64) * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(_: &mut Criterion) {
    let samples = samples().lock().unwrap();
    println!(
        "\n{:<32} {:>10} {:>10} {:>10} {:>10}",
        "benchmark", "calls", "p50", "p99", "p99.9"
    );
    for (name, recorded) in samples.iter() {
        let mut sorted = recorded.clone();
        sorted.sort();
        println!(
            "{:<32} {:>10} {:>10.1?} {:>10.1?} {:>10.1?}",
            name,
            sorted.len(),
            percentile(&sorted, 0.50),
            percentile(&sorted, 0.99),
            percentile(&sorted, 0.999),
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = revocation, report
}
criterion_main!(benches);
