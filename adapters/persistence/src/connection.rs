//! Connecting: `DATABASE_URL` parsing, the r2d2 pool and per-connection
//! settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use application::deadline;
use application::ports::StoreError;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, HandleError, Pool, PooledConnection};

use crate::audit::AuditIds;
use crate::checkpoint::Checkpointer;
use crate::error::DbError;
use crate::group_commit::GroupCommit;
use crate::locations::Locations;
use crate::transaction::{write_transaction, WriteLock};

/// A connection to either backend. One query code path serves both.
///
/// The SQLite variant must stay last: establishing tries the variants in
/// order, and SQLite would accept almost any string as a file name.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// Which database a [`Database`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// How long connecting may take before it fails: a database that is down
/// must stop start-up promptly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The default bound of every wait on the database
/// (`TOKENWARDEN_DEPENDENCY_TIMEOUT`'s default).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(3);

/// Set on every SQLite connection. `busy_timeout` (the longest wait for
/// another process's lock, in milliseconds) comes first so that the switch
/// to WAL (which needs a brief exclusive lock) waits instead of failing when
/// several connections open at once. The log is checkpointed by a thread of
/// the [`Database`] (see `checkpoint.rs`); requests only do it past the
/// backstop.
fn sqlite_pragmas(wait: Duration) -> String {
    format!(
        "PRAGMA busy_timeout = {}; \
         PRAGMA journal_mode = WAL; \
         PRAGMA foreign_keys = ON; \
         PRAGMA synchronous = NORMAL; \
         PRAGMA wal_autocheckpoint = 10000;",
        wait.as_millis().max(1)
    )
}

/// Set on every PostgreSQL connection: no statement runs, and no lock is
/// waited for, longer than the wait bound. Without them a table lock held
/// by someone else made every request wait as long as it was held.
fn postgres_settings(wait: Duration) -> String {
    let ms = wait.as_millis().max(1);
    format!("SET statement_timeout = {ms}; SET lock_timeout = {ms};")
}

/// The storage adapter: a pool of connections to one database. Cheap to
/// clone; clones share the pool.
#[derive(Clone)]
pub struct Database {
    pool: Pool<ConnectionManager<AnyConnection>>,
    backend: Backend,
    /// Whether refreshes write their audit rows; off only in benchmarks
    /// that measure what the trail costs.
    audit_trail: bool,
    audit_ids: Arc<AuditIds>,
    write_lock: Arc<WriteLock>,
    /// The longest wait for a pooled connection (less when the request's
    /// deadline is nearer, see `application::deadline`).
    wait: Duration,
    /// Where the successors this process issued are (see `locations`).
    locations: Arc<Locations>,
    /// SQLite only: commits rotations in batches (see `group_commit`).
    group_commit: Option<Arc<GroupCommit>>,
    /// SQLite only: checkpoints the log while any clone lives.
    _checkpointer: Option<Arc<Checkpointer>>,
    /// SQLite only: the file, whose file system readiness checks for space.
    sqlite_path: Option<String>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.pool.state();
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .field("connections", &state.connections)
            .field("idle", &state.idle_connections)
            .finish()
    }
}

/// The connections of a [`Database`]'s pool at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolState {
    /// Open connections, idle or in use.
    pub connections: u32,
    pub idle: u32,
    /// The most the pool opens (`TOKENWARDEN_DB_POOL_SIZE`).
    pub max_size: u32,
}

/// What `DATABASE_URL` names.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// A file path (relative or absolute), without the `sqlite://` prefix.
    Sqlite(String),
    /// A libpq URL, with a `connect_timeout` added when it had none.
    Postgres(String),
}

impl Target {
    /// Error messages never repeat the URL: it may contain a password.
    fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError(
                    "DATABASE_URL: sqlite:// must be followed by a file path, \
                     e.g. sqlite://tokenwarden.db"
                        .to_owned(),
                ));
            }
            Ok(Self::Sqlite(path.to_owned()))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(with_connect_timeout(url)))
        } else {
            Err(StoreError(
                "DATABASE_URL must start with sqlite://, postgres:// or postgresql://".to_owned(),
            ))
        }
    }
}

/// libpq waits forever for an unreachable host unless told otherwise.
fn with_connect_timeout(url: &str) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!(
        "{url}{separator}connect_timeout={}",
        CONNECT_TIMEOUT.as_secs()
    )
}

/// Creates the SQLite file with mode 0600 if it does not exist yet, so that
/// password hashes and client IPs are never readable by other users,
/// whatever the umask. SQLite then gives the `-wal` and `-shm` files it
/// creates the database file's mode. An existing file keeps its mode.
fn create_private(path: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if path.starts_with(':') || path.starts_with("file:") {
        return Ok(()); // in-memory or a URI: SQLite's business
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError(format!(
            "cannot create the SQLite file named by DATABASE_URL: {e}"
        ))),
    }
}

impl Database {
    /// Opens a pool of at most `pool_size` connections to the database named
    /// by `url` (`DATABASE_URL`): `sqlite://<file path>` (`sqlite://tw.db`
    /// relative, `sqlite:///var/lib/tw.db` absolute; the file is created if
    /// missing), or `postgres://…` / `postgresql://…`.
    ///
    /// # Errors
    /// [`StoreError`], naming `DATABASE_URL`, for an unsupported URL, and when
    /// the database cannot be reached within a few seconds.
    pub fn connect(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        Self::connect_with(url, pool_size, DEFAULT_WAIT)
    }

    /// [`Database::connect`] with `wait` as the bound of every wait: for a
    /// pooled connection, for the write lock (SQLite: ours and another
    /// process's), for a statement or a lock (PostgreSQL
    /// `statement_timeout`, `lock_timeout`).
    ///
    /// # Errors
    /// As [`Database::connect`].
    pub fn connect_with(url: &str, pool_size: u32, wait: Duration) -> Result<Self, StoreError> {
        let wait = wait.max(Duration::from_millis(1));
        let pragmas = sqlite_pragmas(wait);
        if pool_size == 0 {
            return Err(StoreError(
                "the database pool size must be at least 1".to_owned(),
            ));
        }
        // Connect once directly before building the pool: the pool only
        // reports that a connection failed, not why.
        let (backend, connection_url) = match Target::parse(url)? {
            Target::Sqlite(path) => {
                if let Err(e) = check_file_writable(&path) {
                    return Err(StoreError(format!(
                        "the SQLite file named by DATABASE_URL cannot be written: {e}"
                    )));
                }
                create_private(&path)?;
                let mut conn = SqliteConnection::establish(&path).map_err(|e| {
                    StoreError(format!(
                        "cannot open the SQLite file named by DATABASE_URL: {e}"
                    ))
                })?;
                // Switches the file to WAL once, before the pool opens several
                // connections at the same time.
                conn.batch_execute(&pragmas).map_err(|e| {
                    StoreError(format!(
                        "cannot set up the SQLite file named by DATABASE_URL: {e}"
                    ))
                })?;
                (Backend::Sqlite, path)
            }
            Target::Postgres(url) => {
                PgConnection::establish(&url).map_err(|e| {
                    StoreError(format!(
                        "cannot connect to the PostgreSQL database named by DATABASE_URL: {e}"
                    ))
                })?;
                (Backend::Postgres, url)
            }
        };
        let pool = Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(wait.max(CONNECT_TIMEOUT))
            .connection_customizer(Box::new(Settings {
                sqlite_path: (backend == Backend::Sqlite).then(|| connection_url.clone()),
                sqlite: pragmas.clone(),
                postgres: postgres_settings(wait),
            }))
            .error_handler(Box::new(LogConnectionErrors))
            .build(ConnectionManager::new(connection_url.clone()))
            .map_err(|e| {
                StoreError(format!(
                    "cannot open a connection pool to the database named by DATABASE_URL: {e}"
                ))
            })?;
        let write_lock = Arc::new(match backend {
            Backend::Sqlite => WriteLock::keeping_writer(wait, pool.clone()),
            Backend::Postgres => WriteLock::new(wait),
        });
        let group_commit = match backend {
            Backend::Sqlite => GroupCommit::start(Arc::clone(&write_lock), wait).map(Arc::new),
            Backend::Postgres => None,
        };
        let checkpointer = match backend {
            Backend::Sqlite => Checkpointer::start(&connection_url, &pragmas).map(Arc::new),
            Backend::Postgres => None,
        };
        Ok(Self {
            pool,
            backend,
            audit_trail: true,
            audit_ids: Arc::default(),
            write_lock,
            locations: Arc::default(),
            group_commit,
            wait,
            _checkpointer: checkpointer,
            sqlite_path: (backend == Backend::Sqlite).then_some(connection_url),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// How many connections the pool holds, for metrics.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            connections: state.connections,
            idle: state.idle_connections,
            max_size: self.pool.max_size(),
        }
    }

    /// This database without the refresh audit trail: for benchmarks that
    /// measure what the trail costs. Never wired into the server.
    #[cfg(any(test, feature = "testing"))]
    pub fn without_audit_trail(mut self) -> Self {
        self.audit_trail = false;
        self
    }

    /// How many rotations this database wrote in one guarded statement,
    /// planned from the session row it remembered (PostgreSQL; see
    /// `locations`). For tests.
    #[cfg(any(test, feature = "testing"))]
    pub fn rotations_from_memory(&self) -> u64 {
        self.locations.guarded()
    }

    pub(crate) fn audit_trail(&self) -> bool {
        self.audit_trail
    }

    /// Serialises this database's SQLite write transactions.
    pub(crate) fn write_lock(&self) -> &WriteLock {
        &self.write_lock
    }

    /// Where the successors this process issued are.
    pub(crate) fn locations(&self) -> &Locations {
        &self.locations
    }

    /// The SQLite group commit of rotations, if this database has one.
    pub(crate) fn group_commit(&self) -> Option<&GroupCommit> {
        self.group_commit.as_deref()
    }

    /// Numbers this database's SQLite audit rows.
    pub(crate) fn audit_ids(&self) -> &AuditIds {
        &self.audit_ids
    }

    /// Runs `SELECT 1`: for readiness checks.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be reached.
    pub fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().map_err(|e| e.into_store("ping"))?;
        conn.batch_execute("SELECT 1")
            .map_err(|e| DbError::from(e).into_store("ping"))
    }

    /// Rewrites the one row of `write_probe`, in a write transaction like
    /// any other: proof that the database can be written now, for
    /// readiness and start-up. `SELECT 1` answers on a read-only file, on a
    /// full disk and on a replica alike. For SQLite, a file system with
    /// less than 1 MiB left counts as full first (see [`MIN_FREE_BYTES`]).
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be reached or written.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        if let Some(path) = &self.sqlite_path {
            check_space(path)?;
        }
        let mut conn = self.conn().map_err(|e| e.into_store("write check"))?;
        write_transaction(&mut conn, self.write_lock(), |conn| {
            let rows = diesel::sql_query(
                "UPDATE write_probe SET checked_at = checked_at + 1 WHERE id = 1",
            )
            .execute(conn)?;
            if rows == 1 {
                Ok(())
            } else {
                Err(DbError::Corrupt("write_probe has no row 1"))
            }
        })
        .map_err(|e| e.into_store("write check"))
    }

    /// A pooled connection, waiting at most the wait bound for one, less
    /// when the request's deadline is nearer.
    pub(crate) fn conn(
        &self,
    ) -> Result<PooledConnection<ConnectionManager<AnyConnection>>, DbError> {
        self.conn_within(self.wait)
    }

    /// [`Database::conn`] with another bound.
    fn conn_within(
        &self,
        bound: Duration,
    ) -> Result<PooledConnection<ConnectionManager<AnyConnection>>, DbError> {
        let wait = deadline::remaining(bound);
        if wait.is_zero() {
            return Err(DbError::Timeout("the request's deadline passed"));
        }
        Ok(self.pool.get_timeout(wait)?)
    }
}

/// Whether the SQLite file at `path` (if it exists yet) can be written.
/// SQLite opens a file it cannot write read-only without a word, and such
/// a connection stays read-only after the file becomes writable: the pool
/// must not keep one.
///
/// Asked with `access(2)` (`W_OK`: permissions, a read-only mount, an
/// immutable file), never by opening the file: closing any descriptor of
/// the database file drops every POSIX lock this process holds on it,
/// SQLite's included ("How To Corrupt An SQLite Database File", §2.2).
/// Another process on the same file (`tokenwarden cleanup`, `user create`,
/// a second instance) would then find it unused, checkpoint and delete the
/// log under the server's connections, and corrupt the database; the
/// earlier check opened the file for every new pooled connection.
fn check_file_writable(path: &str) -> std::io::Result<()> {
    match rustix::fs::access(path, rustix::fs::Access::WRITE_OK) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Applies the per-connection settings ([`sqlite_pragmas`],
/// [`postgres_settings`]) to every new connection, and refuses SQLite
/// connections to a file that cannot be written (see
/// [`check_file_writable`]): the pool then keeps trying, and the first
/// connection after the cause is gone can write.
#[derive(Debug)]
struct Settings {
    sqlite_path: Option<String>,
    sqlite: String,
    postgres: String,
}

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for Settings {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        if let Some(path) = &self.sqlite_path {
            check_file_writable(path).map_err(|e| {
                diesel::r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(
                    format!("the SQLite file cannot be written: {e}"),
                ))
            })?;
        }
        match conn {
            AnyConnection::Sqlite(c) => c.batch_execute(&self.sqlite),
            AnyConnection::Postgresql(c) => c.batch_execute(&self.postgres),
        }
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Reports failed connection attempts of the pool through `tracing`.
#[derive(Debug)]
struct LogConnectionErrors;

impl HandleError<diesel::r2d2::Error> for LogConnectionErrors {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::warn!(%error, "database connection failed");
    }
}

/// Free space below which an SQLite database's file system counts as full:
/// the probe's one-row update may still fit into space SQLite already
/// holds (its log) while a refresh, which writes several pages, fails.
const MIN_FREE_BYTES: u64 = 1 << 20;

/// Fails when the file system holding `path` has less than
/// [`MIN_FREE_BYTES`] left for unprivileged writers.
fn check_space(path: &str) -> Result<(), StoreError> {
    let Ok(stats) = rustix::fs::statvfs(path) else {
        // Not knowing is no reason to refuse: the probe still writes.
        return Ok(());
    };
    let free = stats.f_bavail.saturating_mul(stats.f_frsize);
    if free < MIN_FREE_BYTES {
        return Err(StoreError(format!(
            "write check: the file system of the SQLite database is full ({free} bytes left)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_file_and_its_wal_and_shm_are_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let test_db = crate::testing::TestDatabase::sqlite();
        let db = Database::connect(test_db.url(), 2).unwrap();
        db.run_migrations().unwrap();
        let path = test_db.url().trim_start_matches("sqlite://").to_owned();
        for file in [path.clone(), format!("{path}-wal"), format!("{path}-shm")] {
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
        }
    }

    #[test]
    fn sqlite_urls_become_file_paths() {
        assert_eq!(
            Target::parse("sqlite://tw.db"),
            Ok(Target::Sqlite("tw.db".into()))
        );
        assert_eq!(
            Target::parse("sqlite:///var/lib/tw.db"),
            Ok(Target::Sqlite("/var/lib/tw.db".into()))
        );
    }

    #[test]
    fn postgres_urls_get_a_connect_timeout() {
        assert_eq!(
            Target::parse("postgres://u@h/db"),
            Ok(Target::Postgres(
                "postgres://u@h/db?connect_timeout=5".into()
            ))
        );
        assert_eq!(
            Target::parse("postgresql://u@h/db?sslmode=disable"),
            Ok(Target::Postgres(
                "postgresql://u@h/db?sslmode=disable&connect_timeout=5".into()
            ))
        );
        assert_eq!(
            Target::parse("postgres://u@h/db?connect_timeout=1"),
            Ok(Target::Postgres(
                "postgres://u@h/db?connect_timeout=1".into()
            ))
        );
    }

    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }

    /// `PRAGMA name` as text; `column` is the name of its result column.
    fn pragma(conn: &mut SqliteConnection, name: &str, column: &str) -> String {
        diesel::sql_query(format!(
            "SELECT CAST({column} AS TEXT) AS value FROM pragma_{name}"
        ))
        .get_result::<Setting>(conn)
        .unwrap()
        .value
    }

    #[test]
    fn every_pooled_sqlite_connection_gets_the_settings() {
        let test_db = crate::testing::TestDatabase::sqlite();
        let db = test_db.connect(3);
        // Hold several connections at once so that more than the first one
        // is checked.
        let mut held: Vec<_> = (0..3).map(|_| db.conn().unwrap()).collect();
        for conn in &mut held {
            let AnyConnection::Sqlite(conn) = &mut **conn else {
                panic!("not SQLite");
            };
            assert_eq!(pragma(conn, "journal_mode", "journal_mode"), "wal");
            assert_eq!(pragma(conn, "busy_timeout", "timeout"), "3000");
            assert_eq!(pragma(conn, "foreign_keys", "foreign_keys"), "1");
            assert_eq!(pragma(conn, "synchronous", "synchronous"), "1", "NORMAL");
        }
    }

    /// `chattr +i`/`-i`: connections opened while the file is immutable can
    /// only read. `false` when not allowed here (not root).
    fn set_immutable(path: &str, immutable: bool) -> bool {
        std::process::Command::new("chattr")
            .arg(if immutable { "+i" } else { "-i" })
            .arg(path)
            .status()
            .is_ok_and(|s| s.success())
    }

    #[test]
    fn no_connection_is_kept_to_a_file_that_cannot_be_written() {
        let test_db = crate::testing::TestDatabase::sqlite();
        let db = test_db.open(2);
        db.check_writable().unwrap();
        let path = test_db.url().trim_start_matches("sqlite://").to_owned();
        if !set_immutable(&path, true) {
            eprintln!("skipped: chattr +i needs root");
            return;
        }
        let refused = Database::connect_with(test_db.url(), 1, Duration::from_millis(200));
        // A connection opened now would stay read-only: the pool refuses it.
        let settings = Settings {
            sqlite_path: Some(path.clone()),
            sqlite: sqlite_pragmas(DEFAULT_WAIT),
            postgres: String::new(),
        };
        let mut fresh = AnyConnection::establish(&path).unwrap();
        let acquired = settings.on_acquire(&mut fresh);
        set_immutable(&path, false);
        let err = refused.unwrap_err();
        assert!(err.0.contains("cannot be written"), "{err}");
        assert!(acquired.is_err(), "a read-only connection would be pooled");
        // Once the file is writable, connections are accepted and write.
        settings.on_acquire(&mut fresh).unwrap();
        Database::connect(test_db.url(), 1)
            .unwrap()
            .check_writable()
            .unwrap();
        db.check_writable().unwrap();
    }

    /// Another process on the same SQLite file (`tokenwarden cleanup`,
    /// `user create`, a second instance) must never find it unused while
    /// this one has connections to it: it would checkpoint and delete the
    /// log under them. Opening more pooled connections (each checked by
    /// `on_acquire`) must not drop this process's locks on the file. Fails
    /// with the check that opened the file; the other process is Python's
    /// `sqlite3` (a real second process, as a CLI command would be).
    #[test]
    fn new_connections_keep_the_locks_another_process_must_see() {
        let test_db = crate::testing::TestDatabase::sqlite();
        let db = test_db.open(2);
        db.check_writable().unwrap();
        let path = test_db.url().trim_start_matches("sqlite://").to_owned();
        let log = std::path::PathBuf::from(format!("{path}-wal"));
        let more = Database::connect(test_db.url(), 2).unwrap();
        more.check_writable().unwrap();
        assert!(log.exists(), "the log exists while connections are open");
        let other = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys\n\
                 c = sqlite3.connect(sys.argv[1])\n\
                 c.execute('SELECT count(*) FROM sqlite_master').fetchall()\n\
                 c.close()",
                &path,
            ])
            .status();
        match other {
            Err(e) if std::env::var("TOKENWARDEN_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") => {
                panic!("python3 (the other process) is required here: {e}")
            }
            Err(e) => {
                eprintln!("skipped: no python3 to be the other process ({e})");
                return;
            }
            Ok(status) => assert!(status.success(), "{status}"),
        }
        assert!(
            log.exists(),
            "another process found the database unused and removed its log \
             under this process's connections"
        );
        db.check_writable().unwrap();
        more.check_writable().unwrap();
    }

    #[test]
    fn other_urls_are_refused_naming_the_setting_but_not_the_url() {
        for url in ["mysql://root:secret@h/db", "tw.db", "sqlite://", ""] {
            let err = Target::parse(url).unwrap_err();
            assert!(err.0.contains("DATABASE_URL"), "{err}");
            assert!(!err.0.contains("secret"), "{err}");
        }
    }
}
