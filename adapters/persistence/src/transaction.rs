//! Write transactions that take their locks before they read.
//!
//! A read-then-write transaction is only safe if nothing can change what it
//! read before it writes. The backends get there differently:
//!
//! * SQLite: `BEGIN IMMEDIATE` takes the database's write lock at once
//!   (waiting up to `busy_timeout`). A deferred `BEGIN` would read under a
//!   shared lock and fail with "database is locked" when it later tries to
//!   write while another connection does. Diesel only offers
//!   `immediate_transaction` on `SqliteConnection`, so [`write_transaction`]
//!   issues the `BEGIN` on the inner connection and lets the
//!   `MultiConnection` transaction manager (which delegates to the same inner
//!   manager) commit or roll back.
//! * PostgreSQL: row locks (`SELECT ... FOR UPDATE`). Diesel's locking
//!   clauses are not available over `MultiConnection`, so [`lock_user`] and
//!   [`lock_session`] run the same query on the inner `PgConnection` with the
//!   lock, and on SQLite without. Writers lock the user row first and the
//!   session row second, so two transactions never wait for each other in a
//!   cycle (a theft response, an eviction or `revoke_all` change *several*
//!   sessions of one user).

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use application::deadline;

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::result::DatabaseErrorKind;

use crate::connection::AnyConnection;
use crate::error::DbError;
use crate::rows::{SessionRow, UserRow};
use crate::schema::{sessions, users};

/// Serialises the SQLite write transactions of one `Database` (and its
/// clones). SQLite admits one writer at a time, and a connection that finds
/// the lock taken polls for it in its busy handler, sleeping a millisecond
/// or more between tries: a refresh that arrived during a cleanup batch
/// waited at least 1 ms however short the batch. Waiting here instead wakes
/// it as soon as the writer before it is done. Other processes on the same
/// file still meet the busy handler (`busy_timeout`).
///
/// Waiting is bounded like every other wait (API.md, "503, fast and
/// honest"): by the request's deadline, and by `wait` outside requests.
/// Without the bound, writers queued here behind another process's lock
/// for as long as that process held it, each after the other.
///
/// It also keeps the connection that last wrote (SQLite): a connection
/// whose own commit is the last one keeps its page cache, while one that
/// finds another connection committed since its last transaction starts
/// with an empty cache and reads every page again (14 % of the server's CPU
/// in the refresh benchmark's profile when writes went to whichever pooled
/// connection the request held; see `docs/performance.md`).
pub(crate) struct WriteLock {
    held: Mutex<bool>,
    released: Condvar,
    wait: Duration,
    /// Where the kept writer comes from (SQLite only).
    pool: Option<Pool<ConnectionManager<AnyConnection>>>,
    writer: Mutex<Option<PooledConnection<ConnectionManager<AnyConnection>>>>,
}

impl std::fmt::Debug for WriteLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteLock")
            .field("wait", &self.wait)
            .field("keeps_writer", &self.pool.is_some())
            .finish_non_exhaustive()
    }
}

/// Releases the [`WriteLock`] when dropped.
struct WriteGuard<'a>(&'a WriteLock);

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        *self.0.held.lock().unwrap_or_else(PoisonError::into_inner) = false;
        self.0.released.notify_one();
    }
}

impl WriteLock {
    /// A lock whose waits last at most `wait`.
    pub(crate) fn new(wait: Duration) -> Self {
        Self {
            held: Mutex::new(false),
            released: Condvar::new(),
            wait,
            pool: None,
            writer: Mutex::new(None),
        }
    }

    /// A lock that keeps one connection of `pool` for the writes it
    /// serialises (see the type's docs).
    pub(crate) fn keeping_writer(
        wait: Duration,
        pool: Pool<ConnectionManager<AnyConnection>>,
    ) -> Self {
        Self {
            pool: Some(pool),
            ..Self::new(wait)
        }
    }

    /// The kept writer, or an idle connection of the pool to keep from now
    /// on; `None` when neither is at hand (the caller's connection writes).
    /// Call with the lock held.
    fn take_writer(&self) -> Option<PooledConnection<ConnectionManager<AnyConnection>>> {
        let kept = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        kept.or_else(|| self.pool.as_ref()?.try_get())
    }

    /// Keeps `writer` for the next write, unless its transaction state is
    /// broken (the pool then discards it).
    fn keep_writer(&self, mut writer: PooledConnection<ConnectionManager<AnyConnection>>) {
        let healthy = match &mut *writer {
            AnyConnection::Sqlite(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
                .transaction_depth()
                .is_ok_and(|depth| depth.is_none()),
            AnyConnection::Postgresql(_) => false,
        };
        if healthy {
            *self.writer.lock().unwrap_or_else(PoisonError::into_inner) = Some(writer);
        }
    }

    /// Runs `f` with the lock held, on the kept writer (or a connection of
    /// the pool, kept from then on): for the SQLite group commit
    /// ([`crate::group_commit`]), which manages its own transaction. Waits
    /// as [`WriteLock::acquire`] does, then for a connection at most the
    /// lock's bound.
    pub(crate) fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> T,
    ) -> Result<T, DbError> {
        let _writing = self.acquire()?;
        let mut writer = match self.take_writer() {
            Some(writer) => writer,
            None => self
                .pool
                .as_ref()
                .ok_or(DbError::Timeout("no SQLite writer connection"))?
                .get_timeout(deadline::remaining(self.wait))?,
        };
        let out = f(&mut writer);
        self.keep_writer(writer);
        Ok(out)
    }

    fn acquire(&self) -> Result<WriteGuard<'_>, DbError> {
        let until = Instant::now() + deadline::remaining(self.wait);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        while *held {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbError::Timeout("waiting for the SQLite write lock"));
            }
            held = self
                .released
                .wait_timeout(held, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        *held = true;
        Ok(WriteGuard(self))
    }
}

/// Runs `f` in a transaction that holds the write lock (SQLite: `lock`,
/// then the database's) from its first statement. Commits when `f` returns
/// `Ok`, rolls back on `Err`, and also when the request's deadline passed
/// meanwhile: its client has been told 503 by then, and a refusal must
/// change nothing (API.md, "A refusal spends nothing").
pub(crate) fn write_transaction<T>(
    conn: &mut AnyConnection,
    lock: &WriteLock,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    if matches!(conn, AnyConnection::Sqlite(_)) {
        // Held until the writer is kept again: the next writer then finds
        // it rather than taking another connection from the pool.
        let _writing = lock.acquire()?;
        if let Some(mut writer) = lock.take_writer() {
            let result = locked_transaction(&mut writer, f);
            lock.keep_writer(writer);
            return result;
        }
        return locked_transaction(conn, f);
    }
    locked_transaction(conn, f)
}

/// `BEGIN IMMEDIATE` on an SQLite connection whose caller holds the write
/// lock (`BEGIN` on PostgreSQL, whose writers lock rows); marks a
/// connection that cannot write for discarding.
pub(crate) fn begin_immediate(conn: &mut AnyConnection) -> Result<(), DbError> {
    let began = match conn {
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        AnyConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN"),
    };
    began.map_err(|e| {
        discard_if_unwritable(conn, &e);
        e.into()
    })
}

/// Commits the transaction [`begin_immediate`] began.
pub(crate) fn commit(conn: &mut AnyConnection) -> Result<(), DbError> {
    <AnyConnection as TransactionManager<AnyConnection>>::commit_transaction(conn).map_err(|e| {
        discard_if_unwritable(conn, &e);
        e.into()
    })
}

/// Rolls back the transaction [`begin_immediate`] began, after `error`.
pub(crate) fn roll_back(conn: &mut AnyConnection, error: &DbError) {
    if let Err(rollback) =
        <AnyConnection as TransactionManager<AnyConnection>>::rollback_transaction(conn)
    {
        // The pool discards a connection whose transaction state is
        // broken, so nothing leaks into the next use.
        tracing::warn!(error = %rollback, "rollback failed");
    }
    if let DbError::Query(e) = error {
        discard_if_unwritable(conn, e);
    }
}

/// [`write_transaction`] on `conn`; the caller holds the SQLite write lock.
fn locked_transaction<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    begin_immediate(conn)?;
    let result = f(conn).and_then(|value| {
        if !deadline::may_commit() {
            Err(DbError::Timeout(
                "the request's deadline passed before the commit",
            ))
        } else {
            Ok(value)
        }
    });
    match result {
        Ok(value) => {
            commit(conn)?;
            Ok(value)
        }
        Err(error) => {
            roll_back(conn, &error);
            Err(error)
        }
    }
}

/// Whether `error` says that the connection cannot write: an SQLite
/// connection opened while its file was read-only stays read-only after the
/// file becomes writable again, and one that met an I/O error may keep
/// failing; a PostgreSQL session that started read-only
/// (`default_transaction_read_only`, a standby) stays so after the cause is
/// gone.
pub(crate) fn is_unwritable(error: &diesel::result::Error) -> bool {
    match error {
        diesel::result::Error::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => true,
        diesel::result::Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("readonly database") || message.contains("disk I/O error")
        }
        _ => false,
    }
}

/// Marks a connection that cannot write as broken, so that the pool drops
/// it when it comes back and opens a fresh one when needed: once the cause
/// is gone (the file writable again, the database read-write again), each
/// such connection fails at most the one request that found it out, and
/// writes work again without a restart.
pub(crate) fn discard_if_unwritable(conn: &mut AnyConnection, error: &diesel::result::Error) {
    if !is_unwritable(error) {
        return;
    }
    match conn {
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).set_in_error();
        }
        AnyConnection::Postgresql(c) => {
            AnsiTransactionManager::transaction_manager_status_mut(c).set_in_error();
        }
    }
}

/// Reads the user, locking the row until the end of the transaction on
/// PostgreSQL (`FOR NO KEY UPDATE`: it serialises the writers of one user's
/// sessions without blocking the foreign-key checks of new sessions). On
/// SQLite the transaction already holds the database's write lock.
pub(crate) fn lock_user(
    conn: &mut AnyConnection,
    user_id: &str,
) -> Result<Option<UserRow>, DbError> {
    // `as_select` is typed by backend, hence the query once per variant.
    let user = users::table.find(user_id);
    Ok(match conn {
        AnyConnection::Postgresql(pg) => user
            .select(UserRow::as_select())
            .for_no_key_update()
            .first(pg)
            .optional()?,
        AnyConnection::Sqlite(sqlite) => {
            user.select(UserRow::as_select()).first(sqlite).optional()?
        }
    })
}

/// Reads the session, locking the row until the end of the transaction on
/// PostgreSQL (`FOR UPDATE`). Lock the user first (see the module docs).
pub(crate) fn lock_session(
    conn: &mut AnyConnection,
    session_id: &str,
) -> Result<Option<SessionRow>, DbError> {
    let session = sessions::table.find(session_id);
    Ok(match conn {
        AnyConnection::Postgresql(pg) => session
            .select(SessionRow::as_select())
            .for_update()
            .first(pg)
            .optional()?,
        AnyConnection::Sqlite(sqlite) => session
            .select(SessionRow::as_select())
            .first(sqlite)
            .optional()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_writer_gives_up_at_its_bound_or_its_request_deadline() {
        let lock = WriteLock::new(Duration::from_millis(100));
        let _held = lock.acquire().unwrap();

        let started = Instant::now();
        assert!(matches!(lock.acquire(), Err(DbError::Timeout(_))));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");

        let _request = deadline::enter(Some(Instant::now() + Duration::from_millis(10)));
        let started = Instant::now();
        assert!(matches!(lock.acquire(), Err(DbError::Timeout(_))));
        assert!(
            started.elapsed() < Duration::from_millis(90),
            "the nearer deadline wins"
        );
    }

    #[test]
    fn the_lock_passes_to_the_next_writer_when_released() {
        let lock = std::sync::Arc::new(WriteLock::new(Duration::from_secs(5)));
        let held = lock.acquire().unwrap();
        let waiter = {
            let lock = std::sync::Arc::clone(&lock);
            std::thread::spawn(move || lock.acquire().map(|_| ()).is_ok())
        };
        std::thread::sleep(Duration::from_millis(20));
        drop(held);
        assert!(waiter.join().unwrap());
    }
}
