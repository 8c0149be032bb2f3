//! The webhook outbox: security events waiting to be POSTed to the
//! configured receiver.
//!
//! Rows are written by the repository in the transaction of the event
//! itself (so every recorded event has one); this port is what the delivery
//! worker needs to hand them out, one claim at a time, across any number of
//! server instances sharing the database.

use std::time::Duration;

use domain::{SecurityEvent, Timestamp};

use super::StoreError;

/// One claimed delivery: the event, and which claim of it this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub event: SecurityEvent,
    /// 1 for the first claim of the event, then 2, 3…: every attempt is a
    /// new claim. A result reported for an older claim (one whose lease ran
    /// out and that another worker has claimed since) changes nothing.
    pub attempt: u32,
}

impl Delivery {
    /// The delivery's key in the outbox: the event's id and this claim.
    pub fn claim(&self) -> Claim {
        Claim {
            event_id: self.event.id,
            attempt: self.attempt,
        }
    }
}

/// Names one claim of one outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub event_id: i64,
    pub attempt: u32,
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait WebhookOutbox: Send + Sync + 'static {
    /// Claims at most `limit` rows that are due at `now` (oldest due
    /// first) until `now + lease`: until then no other caller, in this
    /// process or another, gets them. Rows whose lease ran out without a
    /// result are due again. One transaction; rows another transaction is
    /// claiming right now are skipped, not waited for.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails; nothing is then claimed.
    fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// Removes the row of `claim`: delivered, or given up. Nothing happens
    /// when the claim is no longer current.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails; the row then stays and is sent
    /// again when the lease runs out (at least once).
    fn finish(&self, claim: Claim) -> Result<(), StoreError>;

    /// Schedules the next attempt of `claim`'s row at `at`, keeping `error`
    /// (what went wrong, for operators reading the table). Nothing happens
    /// when the claim is no longer current.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails; the row is then due again when
    /// the lease runs out.
    fn retry_at(&self, claim: Claim, at: Timestamp, error: &str) -> Result<(), StoreError>;

    /// How many rows wait for delivery (due, scheduled or claimed).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn pending(&self) -> Result<u64, StoreError>;
}
