//! Test support (feature `testing`): a fresh, empty database per test,
//! dropped when the handle is, so tests run in parallel without sharing
//! state.
//!
//! * [`TestDatabase::sqlite`]: a file in a temporary directory.
//! * [`TestDatabase::postgres`]: `CREATE DATABASE tw_<random>` on the server
//!   named by `TEST_DATABASE_URL`, dropped with `DROP DATABASE ... WITH
//!   (FORCE)` (also when the test panics). Without `TEST_DATABASE_URL` it
//!   prints why and returns `None`, unless
//!   `TOKENWARDEN_TEST_REQUIRE_SERVICES=1` (CI), where it panics.
//!
//! Failures to set up panic: this is test code, and a test cannot go on.

use diesel::sql_types::BigInt;
use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};
use domain::{Timestamp, UserId};

use crate::connection::AnyConnection;
use crate::Database;

const URL_VAR: &str = "TEST_DATABASE_URL";
const REQUIRE_VAR: &str = "TOKENWARDEN_TEST_REQUIRE_SERVICES";

/// A database that exists for as long as this value.
pub struct TestDatabase {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// Removing the directory removes the database file and its WAL.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        let kind = match self.cleanup {
            Cleanup::Sqlite(_) => "sqlite",
            Cleanup::Postgres { .. } => "postgres",
        };
        f.debug_struct("TestDatabase")
            .field("backend", &kind)
            .finish_non_exhaustive()
    }
}

impl TestDatabase {
    /// An empty SQLite database in a fresh temporary directory.
    pub fn sqlite() -> Self {
        Self::sqlite_in(&std::env::temp_dir())
    }

    /// An empty SQLite database in a fresh directory under `parent` (a small
    /// or read-only file system, for fault tests).
    pub fn sqlite_in(parent: &std::path::Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tokenwarden-test-")
            .tempdir_in(parent)
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let url = format!("sqlite://{}", dir.path().join("tokenwarden.db").display());
        Self {
            url,
            cleanup: Cleanup::Sqlite(dir),
        }
    }

    /// An empty PostgreSQL database, or `None` (with a line saying so) when
    /// `TEST_DATABASE_URL` is not set.
    ///
    /// # Panics
    /// When `TEST_DATABASE_URL` is unset but `TOKENWARDEN_TEST_REQUIRE_SERVICES=1`,
    /// or when the database cannot be created.
    pub fn postgres() -> Option<Self> {
        let admin_url = match std::env::var(URL_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ => {
                if std::env::var(REQUIRE_VAR).as_deref() == Ok("1") {
                    panic!("{URL_VAR} is not set, but {REQUIRE_VAR}=1 requires the PostgreSQL tests to run");
                }
                eprintln!(
                    "skipping the PostgreSQL variant: {URL_VAR} is not set \
                     (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
                );
                return None;
            }
        };
        let name = format!("tw_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot connect to {URL_VAR}: {e}"));
        sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        let url = with_database(&admin_url, &name);
        Some(Self {
            url,
            cleanup: Cleanup::Postgres { admin_url, name },
        })
    }

    /// The `DATABASE_URL` of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A [`Database`] on it, without running migrations.
    ///
    /// # Panics
    /// When it cannot connect.
    pub fn connect(&self, pool_size: u32) -> Database {
        Database::connect(&self.url, pool_size)
            .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"))
    }

    /// A [`Database`] on it with every migration applied.
    ///
    /// # Panics
    /// When it cannot connect or migrate.
    pub fn open(&self, pool_size: u32) -> Database {
        let db = self.connect(pool_size);
        db.run_migrations()
            .unwrap_or_else(|e| panic!("cannot migrate the test database: {e}"));
        db
    }
}

/// What [`seed_expired_sessions`] inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub sessions: u64,
    pub refresh_tokens: u64,
}

/// Bulk-inserts `sessions` sessions of a fresh user, each with
/// `tokens_per_session` refresh tokens, all of them past their absolute end
/// at `expired_at`: what the cleanup job is for. A handful of statements,
/// so that a test or benchmark can have 100 000 or 1 000 000 rows quickly.
///
/// # Panics
/// When the database refuses the rows.
pub fn seed_expired_sessions(
    db: &Database,
    sessions: u64,
    tokens_per_session: u64,
    expired_at: Timestamp,
) -> Seeded {
    let user = UserId::from(uuid::Uuid::new_v4());
    // A per-call tag keeps the generated ids and digests of two calls apart.
    let tag = i64::from(uuid::Uuid::new_v4().as_fields().0 & 0x7fff_ffff);
    let mut conn = db
        .conn()
        .unwrap_or_else(|e| panic!("no connection to seed: {e}"));
    let conn = &mut *conn;
    let exec = |conn: &mut AnyConnection, sql: String| match conn {
        AnyConnection::Postgresql(pg) => sql_query(sql).execute(pg),
        AnyConnection::Sqlite(sqlite) => sql_query(sql).execute(sqlite),
    };
    let (series, session_id, digest) = match conn {
        AnyConnection::Postgresql(_) => (
            "SELECT generate_series(1, {n}) AS n",
            "lpad(to_hex({tag}), 8, '0') || '-0000-4000-8000-' || lpad(to_hex(n), 12, '0')",
            "lpad(to_hex({tag}), 16, '0') || lpad(to_hex(n), 24, '0') || lpad(to_hex({g}), 24, '0')",
        ),
        AnyConnection::Sqlite(_) => (
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n})              SELECT n FROM s",
            "printf('%08x-0000-4000-8000-%012x', {tag}, n)",
            "printf('%016x%024x%024x', {tag}, n, {g})",
        ),
    };
    let fill = |t: &str, n: u64| {
        t.replace("{n}", &n.to_string())
            .replace("{tag}", &tag.to_string())
    };
    let end = expired_at.as_millis();
    let created = end - 1_000;
    let run = |conn: &mut AnyConnection, sql: String| {
        exec(conn, sql).unwrap_or_else(|e| panic!("seeding failed: {e}"));
    };
    run(
        conn,
        format!(
            "INSERT INTO users (id, username, username_key, password_hash, roles, created_at)              VALUES ('{user}', 'seed{tag}', 'seed{tag}', 'x', 'user', {created})"
        ),
    );
    run(
        conn,
        format!(
            "INSERT INTO sessions (id, user_id, generation, created_at, last_used_at, rotated_at,              expires_at) SELECT {sid}, '{user}', {last}, {created}, {created}, {created}, {end}              FROM ({series}) AS series",
            sid = fill(session_id, sessions),
            series = fill(series, sessions),
            last = tokens_per_session.saturating_sub(1),
        ),
    );
    for g in 0..tokens_per_session {
        run(
            conn,
            format!(
                "INSERT INTO refresh_tokens (digest, session_id, generation, issued_at, expires_at)                  SELECT {digest}, {sid}, {g}, {created}, {end} FROM ({series}) AS series",
                digest = fill(digest, sessions).replace("{g}", &g.to_string()),
                sid = fill(session_id, sessions),
                series = fill(series, sessions),
            ),
        );
    }
    Seeded {
        sessions,
        refresh_tokens: sessions.saturating_mul(tokens_per_session),
    }
}

/// Bulk-inserts `count` users named `user000001`, `user000002`, … (roles
/// `user`, a placeholder hash) with a few statements: what the listing
/// benchmark searches.
///
/// # Panics
/// When the database refuses the rows.
pub fn seed_users(db: &Database, count: u64, created_at: Timestamp) {
    let mut conn = db
        .conn()
        .unwrap_or_else(|e| panic!("no connection to seed: {e}"));
    let (series, name, id) = match &mut *conn {
        AnyConnection::Postgresql(_) => (
            "SELECT generate_series(1, {n}) AS n",
            "'user' || lpad(n::text, 6, '0')",
            "'00000000-0000-4000-8000-' || lpad(to_hex(n), 12, '0')",
        ),
        AnyConnection::Sqlite(_) => (
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {n}) \
             SELECT n FROM s",
            "printf('user%06d', n)",
            "printf('00000000-0000-4000-8000-%012x', n)",
        ),
    };
    let sql = format!(
        "INSERT INTO users (id, username, username_key, password_hash, roles, created_at) \
         SELECT {id}, {name}, {name}, 'x', 'user', {at} FROM ({series}) AS series",
        series = series.replace("{n}", &count.to_string()),
        at = created_at.as_millis(),
    );
    let done = match &mut *conn {
        AnyConnection::Postgresql(pg) => sql_query(sql).execute(pg),
        AnyConnection::Sqlite(sqlite) => sql_query(sql).execute(sqlite),
    };
    done.unwrap_or_else(|e| panic!("seeding users failed: {e}"));
}

/// Holds the cleanup job's PostgreSQL advisory lock, as a running pass on
/// another instance would, until dropped.
pub struct CleanupLockHolder(PgConnection);

impl Drop for CleanupLockHolder {
    fn drop(&mut self) {
        // Released explicitly: a closed connection's backend may still hold
        // it for a moment.
        if let Err(e) = sql_query("SELECT pg_advisory_unlock($1)")
            .bind::<BigInt, _>(crate::cleanup::CLEANUP_LOCK_KEY)
            .execute(&mut self.0)
        {
            eprintln!("could not release the cleanup lock: {e}");
        }
    }
}

impl TestDatabase {
    /// Takes the cleanup lock from outside the pool; `None` on SQLite.
    ///
    /// # Panics
    /// When the lock cannot be taken.
    pub fn hold_cleanup_lock(&self) -> Option<CleanupLockHolder> {
        let Cleanup::Postgres { .. } = self.cleanup else {
            return None;
        };
        let mut conn = PgConnection::establish(&self.url)
            .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"));
        sql_query("SELECT pg_advisory_lock($1)")
            .bind::<BigInt, _>(crate::cleanup::CLEANUP_LOCK_KEY)
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("cannot take the cleanup lock: {e}"));
        Some(CleanupLockHolder(conn))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Postgres { admin_url, name } = &self.cleanup else {
            return;
        };
        // Never panic in drop (it may run during a panic): report and go on.
        let dropped = PgConnection::establish(admin_url)
            .map_err(|e| e.to_string())
            .and_then(|mut admin| {
                sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = dropped {
            eprintln!("could not drop the test database {name}: {e}");
        }
    }
}

/// `url` with its database name replaced by `name`, keeping any parameters.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let mut out = match base[authority_start..].find('/') {
        Some(slash) => format!("{}/{name}", &base[..authority_start + slash]),
        None => format!("{base}/{name}"),
    };
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_name_is_replaced_and_parameters_kept() {
        assert_eq!(
            with_database("postgres://u@h:5432/test", "tw_x"),
            "postgres://u@h:5432/tw_x"
        );
        assert_eq!(
            with_database("postgres://u@h", "tw_x"),
            "postgres://u@h/tw_x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/test?sslmode=disable", "tw_x"),
            "postgresql://u:p@h/tw_x?sslmode=disable"
        );
    }
}
