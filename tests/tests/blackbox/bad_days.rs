//! Bad days (API.md, "v2 — Availability"): one dependency broken at a time
//! while clients use the service, on each backend where the fault applies.
//! Every test breaks only what it owns: its own database, its own files.
//!
//! Timeouts are short (`DEPENDENCY_TIMEOUT`) to keep the suite fast; the
//! limits asserted leave room for a loaded two-core CI machine but stay far
//! below the time the fault lasts, so a wait that is not bounded fails.

use std::process::Command;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{sql_query, Connection, PgConnection, RunQueryDsl, SqliteConnection};
use futures_util::future::join_all;
use integration_tests::*;
use persistence::testing::TestDatabase;
use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};
use serde_json::json;

/// `TOKENWARDEN_DEPENDENCY_TIMEOUT` in these tests: long enough for a
/// password hash on a loaded machine (registration and login hash within
/// it), short enough to keep the suite fast.
const DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(1);

/// The contract's bound: every refusal leaves within the timeout plus
/// 100 ms, as the server measured it (its `Server-Timing` header on a 503).
const CONTRACT_BOUND: Duration = Duration::from_millis(1_100);

/// What the test's own clock allows on top: HTTP and the scheduling of a
/// loaded two-core machine. A wait that is not bounded never ends at all:
/// the faults last until the answers are in.
const ANSWERED_WITHIN: Duration = Duration::from_millis(2_000);

async fn spawn_bounded(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| c.dependency_timeout = DEPENDENCY_TIMEOUT).await
}

/// A 503 `service_unavailable` problem with a `Retry-After` in seconds,
/// answered within [`CONTRACT_BOUND`] by the server's own clock.
async fn assert_unavailable(r: Response) {
    let spent = r
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("total;dur="))
        .and_then(|ms| ms.parse::<f64>().ok());
    assert!(
        spent.is_some_and(|ms| ms <= CONTRACT_BOUND.as_secs_f64() * 1_000.0),
        "answered within the timeout + 100 ms by the server's clock: {} {:?}",
        r.status(),
        r.headers()
    );
    let retry_after = r
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After in seconds: {:?}",
        r.headers()
    );
    assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
}

/// Someone else's write lock on the whole database, until dropped: an
/// SQLite connection of its own in an immediate transaction (to SQLite,
/// another process), or a PostgreSQL table lock.
enum ForeignLock {
    Sqlite(#[allow(dead_code)] SqliteConnection),
    Postgres(#[allow(dead_code)] PgConnection),
}

fn hold_write_lock(database: &TestDatabase) -> ForeignLock {
    let url = database.url();
    match url.strip_prefix("sqlite://") {
        Some(path) => {
            let mut conn = SqliteConnection::establish(path).unwrap();
            conn.batch_execute("BEGIN IMMEDIATE").unwrap();
            ForeignLock::Sqlite(conn)
        }
        None => {
            let mut conn = PgConnection::establish(url).unwrap();
            conn.batch_execute(
                "BEGIN; LOCK TABLE users, sessions, refresh_tokens IN ACCESS EXCLUSIVE MODE",
            )
            .unwrap();
            ForeignLock::Postgres(conn)
        }
    }
}

/// `n` users, each logged in once.
async fn logged_in(app: &TestApp, prefix: &str, n: usize) -> Vec<Tokens> {
    let mut users = Vec::new();
    for i in 0..n {
        users.push(app.signed_up(&format!("{prefix}{i}")).await);
    }
    users
}

/// Refreshes every user's token at once; each answer with its duration.
async fn refresh_all(app: &TestApp, users: &[Tokens]) -> Vec<(Duration, Response)> {
    join_all(users.iter().map(|t| async {
        let started = Instant::now();
        let r = app.refresh_cookie(&t.refresh).await;
        (started.elapsed(), r)
    }))
    .await
}

/// Refreshes every user's token at once: each is answered 503 with
/// `Retry-After`, within [`ANSWERED_WITHIN`].
async fn all_refused_promptly(app: &TestApp, users: &[Tokens]) {
    for (elapsed, r) in refresh_all(app, users).await {
        assert!(
            elapsed < ANSWERED_WITHIN,
            "refresh answered after {elapsed:?}"
        );
        assert_unavailable(r).await;
    }
}

on_both_backends!(a_foreign_write_lock_is_a_prompt_503_that_spends_nothing);

/// Another process holding the write lock (SQLite) or a table lock
/// (PostgreSQL) for longer than the dependency timeout: refreshes and
/// logins are answered 503 with `Retry-After` within the timeout, not after
/// the lock is released and never 401; the refused refresh tokens still
/// work afterwards.
async fn a_foreign_write_lock_is_a_prompt_503_that_spends_nothing(backend: Backend) {
    let Some(app) = spawn_bounded(backend).await else {
        return;
    };
    let users = logged_in(&app, "locked", 3).await;
    let lock = hold_write_lock(&app.database);

    all_refused_promptly(&app, &users).await;
    let started = Instant::now();
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "locked0", "password": PASSWORD}),
        )
        .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < ANSWERED_WITHIN,
        "login answered after {elapsed:?}"
    );
    assert_unavailable(r).await;
    if backend == Backend::Sqlite {
        // The whole file is locked: nothing can be written. (A PostgreSQL
        // table lock leaves the rest of the database writable.)
        let r = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "not ready");
    }

    drop(lock);
    for (_, r) in refresh_all(&app, &users).await {
        assert_eq!(r.status(), StatusCode::OK, "a refused token is unspent");
    }
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "ready again");
}

/// The database name of a PostgreSQL URL.
fn database_name(url: &str) -> String {
    url.rsplit('/')
        .next()
        .and_then(|n| n.split('?').next())
        .unwrap()
        .to_owned()
}

/// Makes this test's own database refuse connections and ends the ones it
/// has (`allow: false`), or lets them in again.
fn allow_connections(database: &TestDatabase, allow: bool) {
    let name = database_name(database.url());
    let admin = std::env::var("TEST_DATABASE_URL").unwrap();
    let mut conn = PgConnection::establish(&admin).unwrap();
    sql_query(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allow}"
    ))
    .execute(&mut conn)
    .unwrap();
    if !allow {
        sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .execute(&mut conn)
        .unwrap();
    }
}

/// PostgreSQL refusing connections while clients refresh and call the API:
/// every answer is a prompt 503 (never a 401 that would make a client
/// throw its tokens away); once the database is back, the same tokens work
/// on fresh connections, and readiness follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_refusing_connections_mid_traffic_is_503_until_it_is_back() {
    let Some(app) = spawn_bounded(Backend::Postgres).await else {
        return;
    };
    let users = logged_in(&app, "refused", 3).await;
    allow_connections(&app.database, false);

    all_refused_promptly(&app, &users).await;
    for user in &users {
        let started = Instant::now();
        let r = app.get_bearer("/auth/sessions", &user.access).await;
        assert!(started.elapsed() < ANSWERED_WITHIN);
        assert_unavailable(r).await;
    }
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);

    allow_connections(&app.database, true);
    for (_, r) in refresh_all(&app, &users).await {
        assert_eq!(r.status(), StatusCode::OK, "a refused token is unspent");
    }
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// `chattr +i`/`-i` on a file: SQLite connections opened while it is
/// immutable can only read, as on a read-only file system. `false` when the
/// file system or the user's privileges do not allow it.
fn set_immutable(path: &str, immutable: bool) -> bool {
    let flag = if immutable { "+i" } else { "-i" };
    Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

/// Clears the immutable flag even when the test fails, so that the
/// temporary directory can be removed.
struct Immutable(String);

impl Immutable {
    fn set(path: &str) -> Option<Self> {
        if set_immutable(path, true) {
            Some(Self(path.to_owned()))
        } else {
            eprintln!("skipped: cannot make {path} immutable (chattr needs root)");
            None
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        set_immutable(&self.0, false);
    }
}

/// `serve` on an SQLite file it cannot write does not start (a server
/// that answered every login 503 would look healthy to a supervisor); once
/// the file is writable it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_database_it_cannot_write() {
    let database = TestDatabase::sqlite();
    database.open(1);
    let path = database.url().trim_start_matches("sqlite://").to_owned();
    let Some(immutable) = Immutable::set(&path) else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let mut config = server::Config::with_defaults(database.url(), keys.path());
    config.bind = "127.0.0.1:0".parse().unwrap();
    let options = server::startup::BuildOptions {
        signals: false,
        ..Default::default()
    };
    let refused = server::Application::build_with(config.clone(), options.clone()).await;
    let Err(error) = refused else {
        panic!("started on a read-only database");
    };
    let message = error.to_string();
    assert!(message.contains("DATABASE_URL"), "{message}");
    assert!(message.contains("cannot be written"), "{message}");

    drop(immutable);
    assert!(server::Application::build_with(config, options)
        .await
        .is_ok());
}

/// How a test takes its own Redis away.
#[derive(Debug, Clone, Copy)]
enum RedisFault {
    /// Killed: connections are refused.
    Stopped,
    /// `SIGSTOP`: connections stay open, nothing answers.
    Frozen,
}

on_both_backends!(
    a_stopped_redis_under_fail_closed_refuses_refreshes_at_once_and_spends_nothing,
    a_frozen_redis_under_fail_closed_refuses_refreshes_at_once_and_spends_nothing,
);

async fn a_stopped_redis_under_fail_closed_refuses_refreshes_at_once_and_spends_nothing(
    backend: Backend,
) {
    fail_closed_refreshes_during(backend, RedisFault::Stopped).await;
}

async fn a_frozen_redis_under_fail_closed_refuses_refreshes_at_once_and_spends_nothing(
    backend: Backend,
) {
    fail_closed_refreshes_during(backend, RedisFault::Frozen).await;
}

/// `TOKENWARDEN_REDIS_FAILURE=fail_closed` and the test's own Redis gone
/// (stopped or frozen) while users hold refresh tokens: each refresh is
/// answered 503 with `Retry-After` within the dependency timeout plus
/// 100 ms, and its audit row says `error` (what the client was told), not
/// a rotation; a login is answered within the same bound. Once Redis is back, the very tokens that were refused
/// rotate (`success`): nothing was spent, and no client is taken for a
/// thief.
async fn fail_closed_refreshes_during(backend: Backend, fault: RedisFault) {
    let Some(mut redis) = redis_revocation::testing::RedisServer::start() else {
        return;
    };
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.dependency_timeout = DEPENDENCY_TIMEOUT;
        c.redis_url = Some(redis.url().into());
        c.redis_key_prefix = redis_revocation::testing::unique_prefix();
        c.redis_failure = redis_revocation::OnRedisFailure::FailClosed;
    })
    .await
    else {
        return;
    };
    let users = logged_in(&app, "outage", 4).await;
    let before = app.audit_outcomes().await;

    match fault {
        RedisFault::Stopped => redis.stop(),
        RedisFault::Frozen => redis.freeze(),
    }
    // The server notices within a few of its subscriber's ticks; a Bearer
    // request (which spends nothing) tells when it has.
    wait_for_bearer(&app, &users[0].access, StatusCode::SERVICE_UNAVAILABLE).await;

    for (elapsed, r) in refresh_all(&app, &users).await {
        assert!(
            elapsed < DEPENDENCY_TIMEOUT + Duration::from_millis(100),
            "{fault:?} redis: refresh answered after {elapsed:?}"
        );
        assert_unavailable(r).await;
    }
    // Logins need no revocation list; their limiter counts in process
    // while Redis does not answer, after its own short timeout.
    let started = Instant::now();
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "outage0", "password": PASSWORD}),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(r.status(), StatusCode::OK, "{fault:?} redis: login");
    assert!(
        elapsed < DEPENDENCY_TIMEOUT + Duration::from_millis(100),
        "{fault:?} redis: login answered after {elapsed:?}"
    );
    let during = app.audit_outcomes().await;
    assert_eq!(
        delta(&before, &during),
        [("error".to_owned(), users.len() as u64)].into(),
        "one `error` row per refused refresh, no rotation recorded"
    );

    match fault {
        RedisFault::Stopped => redis.restart(),
        RedisFault::Frozen => redis.thaw(),
    }
    wait_for_bearer(&app, &users[0].access, StatusCode::OK).await;
    let mut next = Vec::new();
    for (_, r) in refresh_all(&app, &users).await {
        assert_eq!(r.status(), StatusCode::OK, "a refused token is unspent");
        next.push(tokens_from_cookie(r).await);
    }
    for (_, r) in refresh_all(&app, &next).await {
        assert_eq!(r.status(), StatusCode::OK, "and its session carries on");
    }
    let after = app.audit_outcomes().await;
    assert_eq!(
        delta(&during, &after),
        [("success".to_owned(), 2 * users.len() as u64)].into(),
        "rotations, never a reuse"
    );
}

/// Waits (at most 10 s) until a Bearer request with `access` is answered
/// `status`.
async fn wait_for_bearer(app: &TestApp, access: &str, status: StatusCode) {
    let started = Instant::now();
    while app.me_status(access).await != status {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Audit rows per outcome added between two counts.
fn delta(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> std::collections::BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Runs `sql` on the shared server's admin database (for statements about
/// this test's own database).
fn admin_sql(sql: &str) {
    let admin = std::env::var("TEST_DATABASE_URL").unwrap();
    let mut conn = PgConnection::establish(&admin).unwrap();
    sql_query(sql).execute(&mut conn).unwrap();
}

/// This test's own PostgreSQL database goes read-only (as a standby or a
/// database set `default_transaction_read_only` would be) under the
/// server's connections: refreshes are 503 within the timeout, readiness
/// 503, nothing spent. Once it is writable again, with no restart and no
/// connection ended by anyone, each connection that went read-only fails
/// at most the request that found it out and is replaced: the same tokens
/// rotate (`success`, never `retry` or reuse) and readiness follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_database_gone_read_only_is_503_and_its_connections_are_replaced() {
    let Some(app) = spawn_bounded(Backend::Postgres).await else {
        return;
    };
    let name = database_name(app.database.url());
    let users = logged_in(&app, "readonly", 3).await;
    let before = app.audit_outcomes().await;
    admin_sql(&format!(
        "ALTER DATABASE \"{name}\" SET default_transaction_read_only = on"
    ));
    allow_connections(&app.database, false);
    allow_connections(&app.database, true);

    all_refused_promptly(&app, &users).await;
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "not ready");

    admin_sql(&format!(
        "ALTER DATABASE \"{name}\" RESET default_transaction_read_only"
    ));
    // Every pooled connection may still be read-only: each fails once.
    let pool = app.config.db_pool_size as usize;
    for user in &users {
        let mut tries = 0;
        loop {
            let r = app.refresh_cookie(&user.refresh).await;
            if r.status() == StatusCode::OK {
                break;
            }
            assert_unavailable(r).await;
            tries += 1;
            assert!(tries <= pool, "still refused after {tries} tries");
        }
    }
    let mut probes = 0;
    while app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != StatusCode::OK
    {
        probes += 1;
        assert!(probes <= pool, "not ready after {probes} probes");
    }
    only_rotations_and_refusals_since(&app, &before, users.len() as u64).await;
}

/// The audit rows added since `before`: `rotations` successes, refusals
/// (`error`), and nothing else (no `retry`: a refused token was unspent,
/// not replayed; no reuse).
async fn only_rotations_and_refusals_since(
    app: &TestApp,
    before: &std::collections::BTreeMap<String, u64>,
    rotations: u64,
) {
    let added = delta(before, &app.audit_outcomes().await);
    assert_eq!(added.get("success"), Some(&rotations), "{added:?}");
    let others = added.keys().filter(|k| *k != "success" && *k != "error");
    assert_eq!(others.count(), 0, "no retry, no reuse: {added:?}");
}

/// A small file system of the test's own: a tmpfs of `megabytes`, mounted
/// on a temporary directory when the test may mount (root), lazily
/// unmounted when dropped (the server may still hold its files open).
struct SmallFileSystem {
    dir: tempfile::TempDir,
}

impl SmallFileSystem {
    fn mount(megabytes: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m,mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills what is left with one file; removing it frees the space.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallFileSystem {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// SQLite on a small file system that fills up while clients refresh:
/// every answer is a 200 or a prompt 503 (never a 401, never a hang);
/// readiness says 503 while the disk is full, and a refused token is
/// unspent: once space is freed it rotates (`success`, never `retry` or
/// reuse) and readiness follows. Which refreshes still fit is up to SQLite
/// (a commit into log space it already holds may succeed after one that
/// needed a new page failed), so each answer is checked on its own. Needs
/// root for the tmpfs; says "skipped" otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_is_503_until_space_is_freed_and_spends_nothing() {
    let Some(fs) = SmallFileSystem::mount(16) else {
        return;
    };
    let database = TestDatabase::sqlite_in(fs.path());
    let app = TestApp::spawn_on(database, |c| c.dependency_timeout = DEPENDENCY_TIMEOUT).await;
    let mut users = logged_in(&app, "full", 3).await;
    let mut spare = app.signed_up("spare").await;
    let before = app.audit_outcomes().await;
    let filler = fs.fill();

    // Refresh until the disk says no: `spare` then holds a refused token.
    let mut rotations = 0;
    let mut refused = false;
    for _ in 0..2_000 {
        let started = Instant::now();
        let r = app.refresh_cookie(&spare.refresh).await;
        assert!(started.elapsed() < ANSWERED_WITHIN, "refresh answered late");
        if r.status() == StatusCode::OK {
            spare = tokens_from_cookie(r).await;
            rotations += 1;
            continue;
        }
        assert_unavailable(r).await;
        refused = true;
        break;
    }
    assert!(refused, "the disk never filled up");

    // The others meanwhile: each a rotation or a prompt refusal.
    let answers = refresh_all(&app, &users).await;
    for (user, (elapsed, r)) in users.iter_mut().zip(answers) {
        assert!(
            elapsed < ANSWERED_WITHIN,
            "refresh answered after {elapsed:?}"
        );
        if r.status() == StatusCode::OK {
            *user = tokens_from_cookie(r).await;
            rotations += 1;
        } else {
            assert_unavailable(r).await;
        }
    }
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "not ready");

    std::fs::remove_file(filler).unwrap();
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "ready again");
    let r = app.refresh_cookie(&spare.refresh).await;
    assert_eq!(r.status(), StatusCode::OK, "the refused token is unspent");
    for (_, r) in refresh_all(&app, &users).await {
        assert_eq!(r.status(), StatusCode::OK, "every token still works");
    }
    only_rotations_and_refusals_since(&app, &before, rotations + 1 + users.len() as u64).await;
}
