//! [`ExpiredDataStore`]: deletes expired rows in small batches.
//!
//! Each batch is one statement in its own short transaction, deleting at
//! most `batch_size` rows picked by their physical row id (`ctid` on
//! PostgreSQL, `rowid` on SQLite), then the job rests for `pause`:
//! * PostgreSQL: rows are picked `FOR UPDATE SKIP LOCKED`, so a batch never
//!   waits for a row a refresh holds, and a refresh waits at most for one
//!   batch's row locks on a row that is expired anyway. A session-level
//!   advisory lock keeps two instances from running the job at once; the
//!   second one skips its pass.
//! * SQLite: one writer at a time; a refresh waits for at most one batch's
//!   transaction. Instances sharing one SQLite file are on one host, and two
//!   passes at once would only find less to delete, so there is no lock.
//!
//! Order matters only for speed: refresh tokens first (they expire with
//! their session), then sessions (whose delete cascades to whatever tokens
//! are left), revocation entries, audit rows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use application::cleanup::Batching;
use application::ports::{CleanupCutoffs, CleanupReport, ExpiredDataStore, StoreError};
use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{sql_query, PgConnection, QueryableByName, RunQueryDsl};

use crate::connection::{AnyConnection, Database};
use crate::error::{store, DbError};
use crate::transaction::write_transaction;

/// Key of the PostgreSQL advisory lock held during a cleanup pass
/// ("tokencln" in ASCII).
pub(crate) const CLEANUP_LOCK_KEY: i64 = 0x746f_6b65_6e63_6c6e;

/// A table the audit trail keeps rows in, and the column (milliseconds since
/// the epoch) that says when each row (or bucket) starts.
#[derive(Debug, Clone, Copy)]
struct AuditTable {
    table: &'static str,
    written_at: &'static str,
    /// How long one row covers: a bucket is deleted only once all of it is
    /// older than the retention.
    span_ms: i64,
    /// The row key on SQLite, where these tables have no `rowid`.
    sqlite_key: &'static str,
    /// Whether its rows are the audit records themselves (counted in the
    /// report) rather than aggregates of them.
    counted: bool,
}

/// The tables whose rows are deleted once older than
/// `TOKENWARDEN_AUDIT_RETENTION`: the refresh audit trail and the daily and
/// hourly aggregates the analysis reads. A table that does not exist is
/// skipped. Security events are kept: they are the incident record.
const AUDIT_TABLES: &[AuditTable] = &[
    AuditTable {
        table: "refresh_audit",
        written_at: "at",
        span_ms: 0,
        sqlite_key: "user_id, at, id",
        counted: true,
    },
    AuditTable {
        table: "refresh_audit_daily",
        written_at: "day_start",
        span_ms: 86_400_000,
        sqlite_key: "user_id, day_start, outcome, session_id, ip, user_agent",
        counted: false,
    },
    AuditTable {
        table: "refresh_audit_failures",
        written_at: "hour_start",
        span_ms: 3_600_000,
        sqlite_key: "user_id, hour_start",
        counted: false,
    },
];

/// One expiry rule: rows of `table` whose `column` is before (or at) the
/// cutoff.
struct Purge {
    table: &'static str,
    column: &'static str,
    /// `<=` for deadlines ("expired at or before now"), `<` for ages.
    inclusive: bool,
    cutoff: i64,
    /// The row key on SQLite (`rowid` unless the table is `WITHOUT ROWID`).
    sqlite_key: &'static str,
}

impl ExpiredDataStore for Database {
    fn purge_expired(
        &self,
        cutoffs: CleanupCutoffs,
        batching: Batching,
        stop: &AtomicBool,
    ) -> Result<Option<CleanupReport>, StoreError> {
        self.purge(cutoffs, batching, stop)
            .map_err(store("cleanup"))
    }
}

#[derive(QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Database {
    fn purge(
        &self,
        cutoffs: CleanupCutoffs,
        batching: Batching,
        stop: &AtomicBool,
    ) -> Result<Option<CleanupReport>, DbError> {
        let mut conn = self.conn()?;
        if let AnyConnection::Postgresql(pg) = &mut *conn {
            let locked = sql_query("SELECT pg_try_advisory_lock($1) AS locked")
                .bind::<BigInt, _>(CLEANUP_LOCK_KEY)
                .get_result::<Locked>(pg)?;
            if !locked.locked {
                return Ok(None);
            }
        }
        let report = purge_all(&mut conn, cutoffs, batching, stop);
        if let AnyConnection::Postgresql(pg) = &mut *conn {
            // A connection that cannot unlock is most likely broken, and
            // its server session (with the lock) ends with it; at worst the
            // pool retires it after its maximum lifetime (30 min), and other
            // instances skip their passes until then.
            if let Err(error) = sql_query("SELECT pg_advisory_unlock($1)")
                .bind::<BigInt, _>(CLEANUP_LOCK_KEY)
                .execute(pg)
            {
                tracing::warn!(%error, "cannot release the cleanup lock");
            }
        }
        report.map(Some)
    }
}

fn purge_all(
    conn: &mut AnyConnection,
    cutoffs: CleanupCutoffs,
    batching: Batching,
    stop: &AtomicBool,
) -> Result<CleanupReport, DbError> {
    let now = cutoffs.now.as_millis();
    let deadline = |table, column| Purge {
        table,
        column,
        inclusive: true,
        cutoff: now,
        sqlite_key: "rowid",
    };
    let mut report = CleanupReport {
        refresh_tokens: purge(
            conn,
            &deadline("refresh_tokens", "expires_at"),
            batching,
            stop,
        )?,
        sessions: purge(conn, &deadline("sessions", "expires_at"), batching, stop)?,
        revocations: purge(conn, &deadline("revocations", "expires_at"), batching, stop)?,
        audit_rows: None,
    };
    for audit in AUDIT_TABLES {
        if !has_column(conn, audit.table, audit.written_at)? {
            continue;
        }
        let purged = purge(
            conn,
            &Purge {
                table: audit.table,
                column: audit.written_at,
                inclusive: false,
                cutoff: cutoffs
                    .audit_before
                    .as_millis()
                    .saturating_sub(audit.span_ms),
                sqlite_key: audit.sqlite_key,
            },
            batching,
            stop,
        )?;
        let counted = if audit.counted { purged } else { 0 };
        report.audit_rows = Some(report.audit_rows.unwrap_or(0).saturating_add(counted));
    }
    Ok(report)
}

/// Deletes the rows `rule` selects, batch by batch; returns how many.
fn purge(
    conn: &mut AnyConnection,
    rule: &Purge,
    batching: Batching,
    stop: &AtomicBool,
) -> Result<u64, DbError> {
    let batch = i64::from(batching.batch_size.max(1));
    let op = if rule.inclusive { "<=" } else { "<" };
    let (table, column, key) = (rule.table, rule.column, rule.sqlite_key);
    let mut total = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(total);
        }
        let deleted = write_transaction(conn, |conn| {
            Ok(match conn {
                AnyConnection::Postgresql(pg) => sql_query(format!(
                    "DELETE FROM {table} WHERE ctid = ANY(ARRAY(\
                       SELECT ctid FROM {table} WHERE {column} {op} $1 \
                       LIMIT $2 FOR UPDATE SKIP LOCKED))"
                ))
                .bind::<BigInt, _>(rule.cutoff)
                .bind::<BigInt, _>(batch)
                .execute(pg)?,
                AnyConnection::Sqlite(sqlite) => sql_query(format!(
                    "DELETE FROM {table} WHERE ({key}) IN (\
                       SELECT {key} FROM {table} WHERE {column} {op} ? LIMIT ?)"
                ))
                .bind::<BigInt, _>(rule.cutoff)
                .bind::<BigInt, _>(batch)
                .execute(sqlite)?,
            })
        })?;
        total = total.saturating_add(u64::try_from(deleted).unwrap_or(0));
        if i64::try_from(deleted).unwrap_or(i64::MAX) < batch {
            return Ok(total);
        }
        if batching.pause > Duration::ZERO {
            std::thread::sleep(batching.pause);
        }
    }
}

/// Whether `table` exists with a column `column`.
fn has_column(conn: &mut AnyConnection, table: &str, column: &str) -> Result<bool, DbError> {
    let found = match conn {
        AnyConnection::Postgresql(pg) => pg_has_column(pg, table, column)?,
        AnyConnection::Sqlite(sqlite) => {
            sql_query("SELECT COUNT(*) AS n FROM pragma_table_info(?) WHERE name = ?")
                .bind::<Text, _>(table)
                .bind::<Text, _>(column)
                .get_result::<Count>(sqlite)?
                .n
        }
    };
    Ok(found > 0)
}

fn pg_has_column(pg: &mut PgConnection, table: &str, column: &str) -> Result<i64, DbError> {
    Ok(sql_query(
        "SELECT COUNT(*) AS n FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
    )
    .bind::<Text, _>(table)
    .bind::<Text, _>(column)
    .get_result::<Count>(pg)?
    .n)
}
