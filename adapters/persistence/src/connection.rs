//! Connecting: `DATABASE_URL` parsing, the r2d2 pool and per-connection
//! settings.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use application::ports::StoreError;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, HandleError, Pool, PooledConnection};

use crate::audit::AuditIds;
use crate::checkpoint::Checkpointer;
use crate::error::DbError;
use crate::transaction::WriteLock;

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

/// How long connecting (and waiting for a pooled connection) may take before
/// it fails: a database that is down must stop start-up promptly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Set on every SQLite connection. `busy_timeout` comes first so that the
/// switch to WAL (which needs a brief exclusive lock) waits instead of
/// failing when several connections open at once. The log is checkpointed
/// by a thread of the [`Database`] (see `checkpoint.rs`); requests only do it
/// past the backstop.
const SQLITE_PRAGMAS: &str = concat!(
    "PRAGMA busy_timeout = 5000; ",
    "PRAGMA journal_mode = WAL; ",
    "PRAGMA foreign_keys = ON; ",
    "PRAGMA synchronous = NORMAL; ",
    "PRAGMA wal_autocheckpoint = 10000;"
);

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
    /// SQLite only: checkpoints the log while any clone lives.
    _checkpointer: Option<Arc<Checkpointer>>,
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
        if pool_size == 0 {
            return Err(StoreError(
                "the database pool size must be at least 1".to_owned(),
            ));
        }
        // Connect once directly before building the pool: the pool only
        // reports that a connection failed, not why.
        let (backend, connection_url) = match Target::parse(url)? {
            Target::Sqlite(path) => {
                create_private(&path)?;
                let mut conn = SqliteConnection::establish(&path).map_err(|e| {
                    StoreError(format!(
                        "cannot open the SQLite file named by DATABASE_URL: {e}"
                    ))
                })?;
                // Switches the file to WAL once, before the pool opens several
                // connections at the same time.
                conn.batch_execute(SQLITE_PRAGMAS).map_err(|e| {
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
            .connection_timeout(CONNECT_TIMEOUT)
            .connection_customizer(Box::new(SqliteSettings))
            .error_handler(Box::new(LogConnectionErrors))
            .build(ConnectionManager::new(connection_url.clone()))
            .map_err(|e| {
                StoreError(format!(
                    "cannot open a connection pool to the database named by DATABASE_URL: {e}"
                ))
            })?;
        let checkpointer = match backend {
            Backend::Sqlite => Checkpointer::start(&connection_url, SQLITE_PRAGMAS).map(Arc::new),
            Backend::Postgres => None,
        };
        Ok(Self {
            pool,
            backend,
            audit_trail: true,
            audit_ids: Arc::default(),
            write_lock: Arc::default(),
            _checkpointer: checkpointer,
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

    pub(crate) fn audit_trail(&self) -> bool {
        self.audit_trail
    }

    /// Serialises this database's SQLite write transactions.
    pub(crate) fn write_lock(&self) -> &WriteLock {
        &self.write_lock
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

    /// A pooled connection, waiting at most a few seconds for one.
    pub(crate) fn conn(
        &self,
    ) -> Result<PooledConnection<ConnectionManager<AnyConnection>>, DbError> {
        Ok(self.pool.get()?)
    }
}

/// Applies [`SQLITE_PRAGMAS`] to every new SQLite connection.
#[derive(Debug)]
struct SqliteSettings;

impl CustomizeConnection<AnyConnection, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), diesel::r2d2::Error> {
        match conn {
            AnyConnection::Sqlite(c) => c
                .batch_execute(SQLITE_PRAGMAS)
                .map_err(diesel::r2d2::Error::QueryError),
            AnyConnection::Postgresql(_) => Ok(()),
        }
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
            assert_eq!(pragma(conn, "busy_timeout", "timeout"), "5000");
            assert_eq!(pragma(conn, "foreign_keys", "foreign_keys"), "1");
            assert_eq!(pragma(conn, "synchronous", "synchronous"), "1", "NORMAL");
        }
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
