//! Use case: remove what has expired (the cleanup job and `tokenwarden
//! cleanup`).
//!
//! What is expired, as of `now`:
//! * refresh tokens past their `expires_at` (the session's absolute end:
//!   rotated tokens are kept until then so that a replay is still
//!   recognised as reuse);
//! * sessions past their absolute end, live or revoked;
//! * revocation entries past their `expires_at` (the tokens they cover have
//!   all expired, clock leeway included) by more than [`REVOCATION_MARGIN`]:
//!   should the clock have stepped forward, an entry whose token still
//!   verifies once the clock is back must not be gone (the server's job
//!   also logs a clock that jumps and skips that pass);
//! * audit rows older than the retention.
//!
//! The adapter deletes in small batches, each its own short transaction, so
//! that refreshes never wait behind one long delete, and takes a lock that
//! keeps a second instance's job from doing the same work at the same time.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use domain::Timestamp;

use crate::ports::{Clock, StoreError};

/// How long past its `expires_at` a revocation entry is kept: a margin for
/// a wall clock that stepped forward (an entry costs a few bytes; a lost
/// one lets a revoked token through).
pub const REVOCATION_MARGIN: Duration = Duration::from_secs(3_600);

/// The instants before which things are expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupCutoffs {
    /// Tokens and sessions expiring at or before this.
    pub now: Timestamp,
    /// Revocation entries expiring at or before this: [`REVOCATION_MARGIN`]
    /// before `now`.
    pub revocations_before: Timestamp,
    /// Audit rows written before this.
    pub audit_before: Timestamp,
}

/// How the adapter paces its deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Rows per statement.
    pub batch_size: u32,
    /// Rest between two batches, leaving the database to other requests.
    pub pause: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            pause: Duration::from_millis(5),
        }
    }
}

/// What one pass removed, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub revocations: u64,
    /// Accepted DPoP proof ids past the age at which a proof is refused.
    pub dpop_proofs: u64,
    /// `None` when there is no audit trail in this store (yet).
    pub audit_rows: Option<u64>,
}

impl CleanupReport {
    pub fn total(&self) -> u64 {
        self.refresh_tokens
            .saturating_add(self.sessions)
            .saturating_add(self.revocations)
            .saturating_add(self.dpop_proofs)
            .saturating_add(self.audit_rows.unwrap_or(0))
    }
}

/// Deletes expired rows.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait ExpiredDataStore: Send + Sync + 'static {
    /// One pass over every table, in batches. Returns `None`, having done
    /// nothing, when another instance's pass holds the cleanup lock. Stops
    /// after the current batch once `stop` is set (shutdown), reporting
    /// what was removed so far.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails; what earlier batches deleted stays
    /// deleted.
    fn purge_expired(
        &self,
        cutoffs: CleanupCutoffs,
        batching: Batching,
        stop: &AtomicBool,
    ) -> Result<Option<CleanupReport>, StoreError>;
}

/// The cleanup job's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Audit rows are kept this long (`TOKENWARDEN_AUDIT_RETENTION`).
    pub audit_retention: Duration,
    pub batching: Batching,
}

/// What a pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupRun {
    Done(CleanupReport),
    /// Another instance was cleaning up; this pass did nothing.
    Skipped,
}

/// The cleanup use case.
pub struct Cleanup {
    store: Arc<dyn ExpiredDataStore>,
    clock: Arc<dyn Clock>,
    policy: CleanupPolicy,
}

impl Cleanup {
    pub fn new(
        store: Arc<dyn ExpiredDataStore>,
        clock: Arc<dyn Clock>,
        policy: CleanupPolicy,
    ) -> Self {
        Self {
            store,
            clock,
            policy,
        }
    }

    /// One pass, as of the clock's `now`.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    pub fn run(&self) -> Result<CleanupRun, StoreError> {
        self.run_until(&AtomicBool::new(false))
    }

    /// One pass that ends early (after the batch under way) once `stop` is
    /// set.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    pub fn run_until(&self, stop: &AtomicBool) -> Result<CleanupRun, StoreError> {
        let now = self.clock.now();
        let cutoffs = CleanupCutoffs {
            now,
            revocations_before: now.minus(REVOCATION_MARGIN),
            audit_before: now.minus(self.policy.audit_retention),
        };
        Ok(
            match self
                .store
                .purge_expired(cutoffs, self.policy.batching, stop)?
            {
                Some(report) => CleanupRun::Done(report),
                None => CleanupRun::Skipped,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{fixed_clock, store_down, DAY, NOW};

    fn policy() -> CleanupPolicy {
        CleanupPolicy {
            audit_retention: 90 * DAY,
            batching: Batching {
                batch_size: 500,
                pause: Duration::from_millis(1),
            },
        }
    }

    fn cleanup(store: MockExpiredDataStore) -> Cleanup {
        Cleanup::new(Arc::new(store), Arc::new(fixed_clock()), policy())
    }

    #[test]
    fn a_pass_asks_for_everything_expired_now_and_audit_rows_past_the_retention() {
        let mut store = MockExpiredDataStore::new();
        let report = CleanupReport {
            refresh_tokens: 3,
            sessions: 1,
            revocations: 2,
            dpop_proofs: 0,
            audit_rows: Some(7),
        };
        store
            .expect_purge_expired()
            .withf(|cutoffs, batching, _| {
                *cutoffs
                    == CleanupCutoffs {
                        now: NOW,
                        revocations_before: NOW.minus(REVOCATION_MARGIN),
                        audit_before: NOW.minus(90 * DAY),
                    }
                    && *batching == policy().batching
            })
            .times(1)
            .return_const(Ok(Some(report)));

        assert_eq!(cleanup(store).run(), Ok(CleanupRun::Done(report)));
        assert_eq!(report.total(), 13);
    }

    #[test]
    fn a_pass_that_finds_the_lock_taken_is_skipped() {
        let mut store = MockExpiredDataStore::new();
        store.expect_purge_expired().times(1).return_const(Ok(None));

        assert_eq!(cleanup(store).run(), Ok(CleanupRun::Skipped));
    }

    #[test]
    fn a_store_failure_is_reported() {
        let mut store = MockExpiredDataStore::new();
        store
            .expect_purge_expired()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(cleanup(store).run(), Err(store_down()));
    }
}
