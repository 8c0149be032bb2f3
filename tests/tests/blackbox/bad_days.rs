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

/// The contract answers within the timeout plus 100 ms; the rest is room
/// for a loaded machine (HTTP, scheduling). A wait that is not bounded
/// never ends at all: the faults last until the answers are in.
const ANSWERED_WITHIN: Duration = Duration::from_millis(2_000);

async fn spawn_bounded(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| c.dependency_timeout = DEPENDENCY_TIMEOUT).await
}

/// A 503 `service_unavailable` problem with a `Retry-After` in seconds.
async fn assert_unavailable(r: Response) {
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

    for (elapsed, r) in refresh_all(&app, &users).await {
        assert!(
            elapsed < ANSWERED_WITHIN,
            "refresh answered after {elapsed:?}"
        );
        assert_unavailable(r).await;
    }
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

    for (elapsed, r) in refresh_all(&app, &users).await {
        assert!(
            elapsed < ANSWERED_WITHIN,
            "refresh answered after {elapsed:?}"
        );
        assert_unavailable(r).await;
    }
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
    let refused = server::Application::build_with(config.clone(), options).await;
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
