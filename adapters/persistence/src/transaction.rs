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

use std::sync::{Mutex, PoisonError};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;

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
#[derive(Debug, Default)]
pub(crate) struct WriteLock(Mutex<()>);

/// Runs `f` in a transaction that holds the write lock (SQLite: `lock`,
/// then the database's) from its first statement. Commits when `f` returns
/// `Ok`, rolls back on `Err`.
pub(crate) fn write_transaction<T>(
    conn: &mut AnyConnection,
    lock: &WriteLock,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    // Held until the commit or rollback below.
    let _writing = match conn {
        AnyConnection::Sqlite(c) => {
            let guard = lock.0.lock().unwrap_or_else(PoisonError::into_inner);
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
            Some(guard)
        }
        AnyConnection::Postgresql(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN")?;
            None
        }
    };
    match f(conn) {
        Ok(value) => {
            <AnyConnection as TransactionManager<AnyConnection>>::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => {
            if let Err(rollback) =
                <AnyConnection as TransactionManager<AnyConnection>>::rollback_transaction(conn)
            {
                // The pool discards a connection whose transaction state is
                // broken, so nothing leaks into the next use.
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(error)
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
