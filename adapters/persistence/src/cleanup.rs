//! [`ExpiredDataStore`]: deletes expired rows in small batches.
//!
//! Each batch is one statement in its own short transaction, deleting at
//! most `batch_size` rows picked by their physical row id (`ctid` on
//! PostgreSQL, `rowid` on SQLite; on SQLite tables of unknown shape, which
//! may be `WITHOUT ROWID`, by a time boundary instead), then the job rests
//! for `pause`:
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
use crate::transaction::{write_transaction, WriteLock};

/// Key of the PostgreSQL advisory lock held during a cleanup pass
/// ("tokencln" in ASCII).
pub(crate) const CLEANUP_LOCK_KEY: i64 = 0x746f_6b65_6e63_6c6e;

/// A table the audit trail keeps rows in, and the column (milliseconds since
/// the epoch) that says when each row was written.
#[derive(Debug, Clone, Copy)]
struct AuditTable {
    table: &'static str,
    written_at: &'static str,
}

/// HOOK for the audit trail (issue 3): the tables whose rows are deleted
/// once older than `TOKENWARDEN_AUDIT_RETENTION`, with the column (ms since
/// the epoch) that dates each row. A table or column that does not exist
/// (yet) is skipped, so listing one here before its migration lands is
/// harmless. Security events are kept: they are the incident record.
const AUDIT_TABLES: &[AuditTable] = &[
    AuditTable {
        table: "refresh_audit",
        written_at: "at",
    },
    AuditTable {
        table: "refresh_audit_daily",
        written_at: "last_at",
    },
    AuditTable {
        table: "refresh_audit_failures",
        written_at: "hour_start",
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
    /// Whether the table has SQLite `rowid`s (ours do; others may be
    /// `WITHOUT ROWID`).
    has_rowid: bool,
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
        let report = purge_all(
            &mut conn,
            self.write_lock(),
            cutoffs,
            batching,
            stop,
            AUDIT_TABLES,
        );
        // Tokens went (or may have, if the pass failed midway).
        self.locations().forget_all();
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
    lock: &WriteLock,
    cutoffs: CleanupCutoffs,
    batching: Batching,
    stop: &AtomicBool,
    audit_tables: &[AuditTable],
) -> Result<CleanupReport, DbError> {
    let now = cutoffs.now.as_millis();
    let deadline = |table, column| Purge {
        table,
        column,
        inclusive: true,
        cutoff: now,
        has_rowid: true,
    };
    let mut report = CleanupReport {
        refresh_tokens: purge(
            conn,
            lock,
            &deadline("refresh_tokens", "expires_at"),
            batching,
            stop,
        )?,
        sessions: purge(
            conn,
            lock,
            &deadline("sessions", "expires_at"),
            batching,
            stop,
        )?,
        revocations: purge(
            conn,
            lock,
            &Purge {
                cutoff: cutoffs.revocations_before.as_millis(),
                ..deadline("revocations", "expires_at")
            },
            batching,
            stop,
        )?,
        dpop_proofs: purge(
            conn,
            lock,
            // A proof is accepted up to and including its `expires_at`.
            &Purge {
                inclusive: false,
                ..deadline("dpop_proofs", "expires_at")
            },
            batching,
            stop,
        )?,
        audit_rows: None,
    };
    for audit in audit_tables {
        if !has_column(conn, audit.table, audit.written_at)? {
            continue;
        }
        let purged = purge(
            conn,
            lock,
            &Purge {
                table: audit.table,
                column: audit.written_at,
                inclusive: false,
                cutoff: cutoffs.audit_before.as_millis(),
                has_rowid: false,
            },
            batching,
            stop,
        )?;
        report.audit_rows = Some(report.audit_rows.unwrap_or(0).saturating_add(purged));
    }
    Ok(report)
}

/// Deletes the rows `rule` selects, batch by batch; returns how many.
fn purge(
    conn: &mut AnyConnection,
    lock: &WriteLock,
    rule: &Purge,
    batching: Batching,
    stop: &AtomicBool,
) -> Result<u64, DbError> {
    let batch = i64::from(batching.batch_size.max(1));
    let op = if rule.inclusive { "<=" } else { "<" };
    let (table, column) = (rule.table, rule.column);
    let mut total = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(total);
        }
        let deleted = write_transaction(conn, lock, |conn| {
            Ok(match conn {
                AnyConnection::Postgresql(pg) => {
                    // Nothing waits for this commit to reach the disk: a
                    // batch lost in a crash is deleted again next pass, and
                    // refreshes do not queue behind its WAL flush.
                    sql_query("SET LOCAL synchronous_commit TO OFF").execute(pg)?;
                    sql_query(format!(
                        "DELETE FROM {table} WHERE ctid = ANY(ARRAY(\
                           SELECT ctid FROM {table} WHERE {column} {op} $1 \
                           LIMIT $2 FOR UPDATE SKIP LOCKED))"
                    ))
                    .bind::<BigInt, _>(rule.cutoff)
                    .bind::<BigInt, _>(batch)
                    .execute(pg)?
                }
                AnyConnection::Sqlite(sqlite) if rule.has_rowid => sql_query(format!(
                    "DELETE FROM {table} WHERE rowid IN (\
                       SELECT rowid FROM {table} WHERE {column} {op} ? LIMIT ?)"
                ))
                .bind::<BigInt, _>(rule.cutoff)
                .bind::<BigInt, _>(batch)
                .execute(sqlite)?,
                // The `batch`-th oldest row's time bounds the batch (ties
                // may add a few rows); fewer rows left than a batch: all.
                AnyConnection::Sqlite(sqlite) => sql_query(format!(
                    "DELETE FROM {table} WHERE {column} {op} ?1 AND {column} <= COALESCE((\
                       SELECT {column} FROM {table} WHERE {column} {op} ?1 \
                       ORDER BY {column} LIMIT 1 OFFSET ?2 - 1), ?1)"
                ))
                .bind::<BigInt, _>(rule.cutoff)
                .bind::<BigInt, _>(batch)
                .execute(sqlite)?,
            })
        })?;
        total = total.saturating_add(u64::try_from(deleted).unwrap_or(0));
        // On SQLite the database's checkpoint thread copies what the batch
        // wrote to the log back into the file (`checkpoint.rs`).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;
    use diesel::connection::SimpleConnection;
    use domain::Timestamp;

    const TRAIL: AuditTable = AuditTable {
        table: "test_audit_trail",
        written_at: "at",
    };

    fn count(conn: &mut AnyConnection) -> i64 {
        let q = sql_query("SELECT COUNT(*) AS n FROM test_audit_trail");
        match conn {
            AnyConnection::Postgresql(pg) => q.get_result::<Count>(pg).unwrap().n,
            AnyConnection::Sqlite(sqlite) => q.get_result::<Count>(sqlite).unwrap().n,
        }
    }

    /// An audit table shaped like nothing of ours (no row id on SQLite, a
    /// composite key): rows older than the retention go, in batches, the
    /// rest stay; a table that does not exist is skipped.
    fn audit_rows_past_the_retention_go_and_a_missing_table_is_skipped(db: &TestDatabase) {
        let database = db.open(1);
        let mut conn = database.conn().unwrap();
        let create = match &*conn {
            AnyConnection::Postgresql(_) => {
                "CREATE TABLE test_audit_trail (user_id TEXT NOT NULL, at BIGINT NOT NULL, \
                 PRIMARY KEY (user_id, at))"
            }
            AnyConnection::Sqlite(_) => {
                "CREATE TABLE test_audit_trail (user_id TEXT NOT NULL, at INTEGER NOT NULL, \
                 PRIMARY KEY (user_id, at)) STRICT, WITHOUT ROWID"
            }
        };
        conn.batch_execute(create).unwrap();
        // 25 old rows (at 1..=25, two users tie at 10), 5 recent ones.
        let mut rows: Vec<String> = (1..=25).map(|at| format!("('a', {at})")).collect();
        rows.push("('b', 10)".to_owned());
        rows.extend((100..105).map(|at| format!("('a', {at})")));
        conn.batch_execute(&format!(
            "INSERT INTO test_audit_trail (user_id, at) VALUES {}",
            rows.join(", ")
        ))
        .unwrap();

        let cutoffs = CleanupCutoffs {
            now: Timestamp::from_millis(0),
            revocations_before: Timestamp::from_millis(0),
            audit_before: Timestamp::from_millis(100),
        };
        let batching = Batching {
            batch_size: 4,
            pause: Duration::ZERO,
        };
        let stop = AtomicBool::new(false);
        let missing = AuditTable {
            table: "no_such_table",
            written_at: "at",
        };
        let report = purge_all(
            &mut conn,
            &WriteLock::new(std::time::Duration::from_secs(3)),
            cutoffs,
            batching,
            &stop,
            &[missing],
        )
        .unwrap();
        assert_eq!(report.audit_rows, None, "no audit table, nothing to report");
        let report = purge_all(
            &mut conn,
            &WriteLock::new(std::time::Duration::from_secs(3)),
            cutoffs,
            batching,
            &stop,
            &[TRAIL, missing],
        )
        .unwrap();
        assert_eq!(report.audit_rows, Some(26));
        assert_eq!(count(&mut conn), 5, "the recent rows stay");
    }

    #[test]
    fn audit_retention_on_sqlite() {
        audit_rows_past_the_retention_go_and_a_missing_table_is_skipped(&TestDatabase::sqlite());
    }

    #[test]
    fn audit_retention_on_postgres() {
        if let Some(db) = TestDatabase::postgres() {
            audit_rows_past_the_retention_go_and_a_missing_table_is_skipped(&db);
        }
    }
}
