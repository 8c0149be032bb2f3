//! The webhook outbox (`migrations/*/…000010…`): a row per security event
//! not yet delivered to the webhook receiver, inserted with the event
//! ([`enqueue`], called by `audit::insert_event`) and handed out by the
//! [`WebhookOutbox`] port.
//!
//! `next_attempt_at` is the schedule and the lease at once: a claim moves
//! it to the lease's end and bumps `attempts`, which then names the claim;
//! results are written only while the claim is still the row's current one.

use std::time::Duration;

use application::ports::{Claim, Delivery, StoreError, WebhookOutbox};
use diesel::prelude::*;
use domain::Timestamp;

use crate::audit::security_event;
use crate::connection::{AnyConnection, Database};
use crate::error::{store, DbError};
use crate::transaction::write_transaction;

diesel::table! {
    webhook_outbox (event_id) {
        event_id -> BigInt,
        created_at -> BigInt,
        next_attempt_at -> BigInt,
        attempts -> Integer,
        last_error -> Nullable<Text>,
    }
}

use webhook_outbox::dsl as outbox;

/// The most of an error's text that a row keeps.
const ERROR_LIMIT: usize = 500;

/// Queues the event `event_id`, recorded at `at`, for delivery from `at`
/// on: in whatever transaction `conn` is in, the event's own.
pub(crate) fn enqueue(conn: &mut AnyConnection, event_id: i64, at: i64) -> Result<(), DbError> {
    diesel::insert_into(webhook_outbox::table)
        .values((
            outbox::event_id.eq(event_id),
            outbox::created_at.eq(at),
            outbox::next_attempt_at.eq(at),
            outbox::attempts.eq(0),
        ))
        .execute(conn)?;
    Ok(())
}

/// The ids of at most `limit` rows due at `now`, the longest due first.
macro_rules! due {
    ($now:expr, $limit:expr) => {
        webhook_outbox::table
            .filter(outbox::next_attempt_at.le($now))
            .order((outbox::next_attempt_at, outbox::event_id))
            .limit($limit)
            .select(outbox::event_id)
    };
}

fn claim(
    conn: &mut AnyConnection,
    now: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<Delivery>, DbError> {
    // PostgreSQL: rows another instance is claiming right now are skipped.
    // SQLite: the transaction holds the database's write lock already.
    let due: Vec<i64> = match conn {
        AnyConnection::Postgresql(pg) => due!(now, limit).for_update().skip_locked().load(pg)?,
        AnyConnection::Sqlite(sqlite) => due!(now, limit).load(sqlite)?,
    };
    let mut claimed = Vec::with_capacity(due.len());
    for id in due {
        let row = webhook_outbox::table.find(id);
        diesel::update(row)
            .set((
                outbox::attempts.eq(outbox::attempts + 1),
                outbox::next_attempt_at.eq(until),
            ))
            .execute(conn)?;
        let attempts: i32 = row.select(outbox::attempts).first(conn)?;
        match security_event(conn, id)? {
            Some(event) => claimed.push(Delivery {
                event,
                attempt: u32::try_from(attempts).unwrap_or(u32::MAX),
            }),
            // Events are never deleted; should one be, its row goes too.
            None => {
                tracing::warn!(
                    event_id = id,
                    "webhook outbox row without its event: dropped"
                );
                diesel::delete(row).execute(conn)?;
            }
        }
    }
    Ok(claimed)
}

/// The rows of `claim`, if it is still the current claim of its row.
macro_rules! current {
    ($claim:expr) => {
        webhook_outbox::table
            .filter(outbox::event_id.eq($claim.event_id))
            .filter(outbox::attempts.eq(i32::try_from($claim.attempt).unwrap_or(i32::MAX)))
    };
}

impl WebhookOutbox for Database {
    fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let op = "claim webhook deliveries";
        let mut conn = self.conn().map_err(store(op))?;
        // A plain read first: a poll that finds nothing due never takes
        // SQLite's write lock (nor opens a transaction on PostgreSQL).
        let any_due: Option<i64> = due!(now.as_millis(), 1)
            .first(&mut *conn)
            .optional()
            .map_err(|e| DbError::from(e).into_store(op))?;
        if any_due.is_none() {
            return Ok(Vec::new());
        }
        let until = now.plus(lease).as_millis();
        write_transaction(&mut conn, self.write_lock(), |conn| {
            claim(conn, now.as_millis(), until, i64::from(limit))
        })
        .map_err(store(op))
    }

    fn finish(&self, claim: Claim) -> Result<(), StoreError> {
        let op = "finish a webhook delivery";
        let mut conn = self.conn().map_err(store(op))?;
        write_transaction(&mut conn, self.write_lock(), |conn| {
            diesel::delete(current!(claim)).execute(conn)?;
            Ok(())
        })
        .map_err(store(op))
    }

    fn retry_at(&self, claim: Claim, at: Timestamp, error: &str) -> Result<(), StoreError> {
        let op = "schedule a webhook retry";
        let error = truncate(error, ERROR_LIMIT);
        let mut conn = self.conn().map_err(store(op))?;
        write_transaction(&mut conn, self.write_lock(), |conn| {
            diesel::update(current!(claim))
                .set((
                    outbox::next_attempt_at.eq(at.as_millis()),
                    outbox::last_error.eq(error),
                ))
                .execute(conn)?;
            Ok(())
        })
        .map_err(store(op))
    }

    fn pending(&self) -> Result<u64, StoreError> {
        let op = "count webhook deliveries";
        let mut conn = self.conn().map_err(store(op))?;
        let n: i64 = webhook_outbox::table
            .count()
            .get_result(&mut *conn)
            .map_err(|e| DbError::from(e).into_store(op))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
