//! Writing the trail: audit rows and security events, always on the
//! connection (and so in the transaction) of the change they describe.

use std::sync::atomic::{AtomicI64, Ordering};

use diesel::prelude::*;
use domain::{RefreshAttempt, SecurityEventKind};
use serde_json::Value;

use super::schema::{refresh_audit, security_events};
use crate::connection::AnyConnection;
use crate::error::DbError;
use crate::transaction::{write_transaction, WriteLock};

#[derive(Insertable)]
#[diesel(table_name = refresh_audit)]
pub(crate) struct NewAuditRow<'a> {
    pub(crate) at: i64,
    pub(crate) outcome: &'a str,
    pub(crate) user_id: String,
    pub(crate) session_id: Option<String>,
    pub(crate) ip: Option<&'a str>,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) fingerprint: Option<&'a str>,
}

/// Numbers the SQLite audit rows of one [`crate::Database`] and its clones
/// (see [`insert_attempt`]).
#[derive(Debug, Default)]
pub(crate) struct AuditIds(AtomicI64);

impl AuditIds {
    fn next(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The columns of a [`NewAuditRow`] as assignments, `None` bound as `NULL`.
macro_rules! bound_values {
    ($row:expr, $on_session:expr) => {
        (
            refresh_audit::on_session.eq($on_session),
            refresh_audit::at.eq($row.at),
            refresh_audit::outcome.eq($row.outcome),
            refresh_audit::user_id.eq($row.user_id.as_str()),
            refresh_audit::session_id.eq($row.session_id.as_deref()),
            refresh_audit::ip.eq($row.ip),
            refresh_audit::user_agent.eq($row.user_agent),
            refresh_audit::fingerprint.eq($row.fingerprint),
        )
    };
}

/// Inserts the audit row of one refresh attempt, in whatever transaction
/// `conn` is in (a write transaction on SQLite). The daily aggregate follows
/// by trigger, unless `on_session`: a success the rotation has counted in
/// its session's run (see `migrations/*/…000007…`).
///
/// PostgreSQL numbers rows itself (identity column). On SQLite the table is
/// clustered by `(user_id, at, id)` (see the migration) and `id` only
/// orders one user's rows within a millisecond: a number from `ids`, which
/// grows with every row this `Database` writes (under the database's write
/// lock, so in the order of the rows). Should another process sharing the
/// file have used it for the same user and millisecond, the row takes the
/// next number after those already there instead (read under the same
/// lock): no read before the common insert.
///
/// Every column is bound, absent values as `NULL` (`bound_values!`):
/// an `Insertable` struct with `Option` fields renders `DEFAULT` for `None`
/// on PostgreSQL, which makes Diesel re-plan the statement on every call
/// instead of preparing it once per connection (a prepared insert also
/// carries the compiled triggers).
pub(crate) fn insert_attempt(
    conn: &mut AnyConnection,
    ids: &AuditIds,
    attempt: &RefreshAttempt,
    on_session: bool,
) -> Result<(), DbError> {
    let row = NewAuditRow::of(attempt);
    match conn {
        AnyConnection::Postgresql(pg) => {
            diesel::insert_into(refresh_audit::table)
                .values(bound_values!(row, on_session))
                .execute(pg)?;
        }
        AnyConnection::Sqlite(sqlite) => {
            let fresh = ids.next();
            // A plain insert: Diesel prepares it once per connection and
            // finds it again by type (with `ON CONFLICT` it would build and
            // hash the SQL text on every call). A failed statement leaves
            // the transaction as it was.
            let inserted = diesel::insert_into(refresh_audit::table)
                .values((bound_values!(row, on_session), refresh_audit::id.eq(fresh)))
                .execute(sqlite);
            if let Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) = inserted
            {
                // Another process numbered a row of this user in this
                // millisecond alike: take the next number after its rows.
                let last: Option<i64> = refresh_audit::table
                    .filter(refresh_audit::user_id.eq(&row.user_id))
                    .filter(refresh_audit::at.eq(row.at))
                    .select(diesel::dsl::max(refresh_audit::id))
                    .first(sqlite)?;
                diesel::insert_into(refresh_audit::table)
                    .values((
                        bound_values!(row, on_session),
                        refresh_audit::id.eq(last.unwrap_or(0) + 1),
                    ))
                    .execute(sqlite)?;
            } else {
                inserted?;
            }
        }
    }
    Ok(())
}

/// Adds `extra` requests to the `rate_limited` row of `attempt`'s client IP
/// and minute, creating it (at `attempt`'s time, standing for `extra`)
/// when there is none: one atomic upsert on the row's key `(ip,
/// throttle_minute)` (`migrations/*/…000014…`), so every instance sharing
/// the database adds to the same row.
pub(crate) fn add_throttled(
    conn: &mut AnyConnection,
    lock: &WriteLock,
    ids: &AuditIds,
    attempt: &RefreshAttempt,
    extra: u64,
) -> Result<(), DbError> {
    use diesel::sql_types::{BigInt, Nullable, Text};
    const MINUTE_MS: i64 = 60_000;
    let extra = i64::try_from(extra).unwrap_or(i64::MAX);
    let at = attempt.at.as_millis();
    let minute = at.div_euclid(MINUTE_MS);
    let outcome = attempt.outcome.as_str();
    let ip = attempt.ip.as_deref();
    // One statement: on SQLite in a write transaction of its own (see
    // `transaction.rs`), so the upsert never waits on a read lock upgrade.
    write_transaction(conn, lock, |conn| {
        match conn {
            AnyConnection::Postgresql(pg) => diesel::sql_query(
                "INSERT INTO refresh_audit \
                     (user_id, at, outcome, ip, on_session, count, throttle_minute) \
                 VALUES ('', $1, $2, $3, FALSE, $4, $5) \
                 ON CONFLICT (ip, throttle_minute) WHERE throttle_minute IS NOT NULL \
                 DO UPDATE SET count = refresh_audit.count + excluded.count",
            )
            .bind::<BigInt, _>(at)
            .bind::<Text, _>(outcome)
            .bind::<Nullable<Text>, _>(ip)
            .bind::<BigInt, _>(extra)
            .bind::<BigInt, _>(minute)
            .execute(pg)?,
            AnyConnection::Sqlite(sqlite) => diesel::sql_query(
                "INSERT INTO refresh_audit \
                     (user_id, at, id, outcome, ip, on_session, count, throttle_minute) \
                 VALUES ('', ?, ?, ?, ?, 0, ?, ?) \
                 ON CONFLICT (ip, throttle_minute) WHERE throttle_minute IS NOT NULL \
                 DO UPDATE SET count = refresh_audit.count + excluded.count",
            )
            .bind::<BigInt, _>(at)
            .bind::<BigInt, _>(ids.next())
            .bind::<Text, _>(outcome)
            .bind::<Nullable<Text>, _>(ip)
            .bind::<BigInt, _>(extra)
            .bind::<BigInt, _>(minute)
            .execute(sqlite)?,
        };
        Ok(())
    })
}

impl<'a> NewAuditRow<'a> {
    /// The row of `attempt`, as every writer of the trail stores it.
    pub(crate) fn of(attempt: &'a RefreshAttempt) -> Self {
        Self {
            at: attempt.at.as_millis(),
            outcome: attempt.outcome.as_str(),
            user_id: attempt.user_id.map(|u| u.to_string()).unwrap_or_default(),
            session_id: attempt.session_id.map(|s| s.to_string()),
            ip: attempt.ip.as_deref(),
            user_agent: attempt.user_agent.as_deref().map(truncate_user_agent),
            fingerprint: attempt.fingerprint.as_ref().map(|f| f.as_str()),
        }
    }
}

/// Inserts many audit rows, a thousand per statement (tests and benchmarks).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn insert_attempts(
    conn: &mut AnyConnection,
    ids: &AuditIds,
    attempts: &[RefreshAttempt],
) -> Result<(), DbError> {
    match conn {
        // Multi-row inserts do not exist over `MultiConnection`.
        AnyConnection::Postgresql(pg) => {
            for chunk in attempts.chunks(1_000) {
                let rows: Vec<NewAuditRow<'_>> = chunk.iter().map(NewAuditRow::of).collect();
                diesel::insert_into(refresh_audit::table)
                    .values(&rows)
                    .execute(pg)?;
            }
        }
        AnyConnection::Sqlite(_) => {
            for attempt in attempts {
                insert_attempt(conn, ids, attempt, false)?;
            }
        }
    }
    Ok(())
}

/// The audit row of an attempt that is the only write of its request: one
/// insert, in a write transaction of its own on SQLite (see
/// `transaction.rs`), autocommitted on PostgreSQL.
pub(crate) fn insert_attempt_alone(
    conn: &mut AnyConnection,
    lock: &WriteLock,
    ids: &AuditIds,
    attempt: &RefreshAttempt,
) -> Result<(), DbError> {
    match conn {
        AnyConnection::Sqlite(_) => {
            write_transaction(conn, lock, |conn| insert_attempt(conn, ids, attempt, false))
        }
        AnyConnection::Postgresql(_) => insert_attempt(conn, ids, attempt, false),
    }
}

/// The HTTP adapter already truncates user agents to 512 bytes; the schema
/// insists, so make sure (on a character boundary).
pub(crate) fn truncate_user_agent(user_agent: &str) -> &str {
    let mut end = user_agent.len().min(512);
    while !user_agent.is_char_boundary(end) {
        end -= 1;
    }
    &user_agent[..end]
}

/// A security event about to be written.
pub(crate) struct EventDraft<'a> {
    pub user_id: &'a str,
    pub session_id: Option<&'a str>,
    pub kind: SecurityEventKind,
    /// A JSON object.
    pub details: Value,
    pub at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = security_events)]
struct NewEventRow<'a> {
    user_id: &'a str,
    session_id: Option<&'a str>,
    kind: &'a str,
    details: String,
    created_at: i64,
}

/// Inserts a security event in whatever transaction `conn` is in: the one
/// of the revocation it describes. Its webhook outbox row goes in with it
/// (`webhooks.rs`): every event, of every kind, wherever it is recorded.
pub(crate) fn insert_event(conn: &mut AnyConnection, event: EventDraft<'_>) -> Result<(), DbError> {
    let row = NewEventRow {
        user_id: event.user_id,
        session_id: event.session_id,
        kind: event.kind.as_str(),
        details: event.details.to_string(),
        created_at: event.at,
    };
    let id: i64 = match conn {
        AnyConnection::Postgresql(pg) => diesel::insert_into(security_events::table)
            .values(row)
            .returning(security_events::id)
            .get_result(pg)?,
        AnyConnection::Sqlite(sqlite) => {
            diesel::insert_into(security_events::table)
                .values(row)
                .execute(sqlite)?;
            // The connection's own last insert: `id` is the rowid.
            diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "last_insert_rowid()",
            ))
            .get_result(sqlite)?
        }
    };
    crate::webhooks::enqueue(conn, id, event.at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_cut_at_512_bytes_on_a_character_boundary() {
        let long = "é".repeat(300);
        let cut = truncate_user_agent(&long);
        assert!(cut.len() <= 512);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate_user_agent("curl/8"), "curl/8");
    }
}
