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
//! * PostgreSQL: row locks (`SELECT ... FOR UPDATE`), taken with raw SQL on
//!   the PostgreSQL variant because Diesel's locking clauses are not
//!   available over `MultiConnection`. Writers lock the user row first and
//!   the session row second, so two transactions never wait for each other
//!   in a cycle (a theft response revokes *other* sessions of the user).

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::sql_types::Text;
use diesel::{sql_query, RunQueryDsl};

use crate::connection::AnyConnection;
use crate::error::DbError;

/// Runs `f` in a transaction that holds the write lock (SQLite) from its
/// first statement. Commits when `f` returns `Ok`, rolls back on `Err`.
pub(crate) fn write_transaction<T>(
    conn: &mut AnyConnection,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    match conn {
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        AnyConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN")?,
    }
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

/// Locks the user's row, then (if given) the session's row, until the end
/// of the transaction. PostgreSQL only; on SQLite the transaction already
/// holds the database's write lock.
///
/// `FOR NO KEY UPDATE` on the user: it serialises the writers of one user's
/// sessions without blocking the foreign-key checks of new sessions.
///
/// Returns `false` when the session row does not exist (any more).
pub(crate) fn lock_rows(
    conn: &mut AnyConnection,
    user_id: &str,
    session_id: Option<&str>,
) -> Result<bool, DbError> {
    let AnyConnection::Postgresql(pg) = conn else {
        return Ok(true);
    };
    sql_query("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE")
        .bind::<Text, _>(user_id)
        .execute(pg)?;
    let Some(session_id) = session_id else {
        return Ok(true);
    };
    let locked = sql_query("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE")
        .bind::<Text, _>(session_id)
        .execute(pg)?;
    Ok(locked == 1)
}
