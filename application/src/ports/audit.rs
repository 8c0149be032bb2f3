//! Ports of the audit trail: recording refresh attempts that never reach
//! the session store, and reading the trail back for admins.
//!
//! Attempts that do reach the store are recorded by
//! [`super::SessionRepository::rotate`] itself, inside its transaction, so a
//! refresh never costs a second transaction. Security events are likewise
//! written by the repository in the transaction of the revocation they
//! describe.

use domain::{
    ActivitySummary, AuditRecord, Cursor, RefreshAttempt, SecurityEvent, Timestamp, UserId,
};

use super::StoreError;

/// Why every session of a user is being revoked
/// ([`super::SessionRepository::revoke_all`]). The repository records a
/// security event for it in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The user logged out everywhere (event `logout_all`).
    LogoutAll,
    /// An admin forced re-authentication (event `admin_revoke`).
    Admin { by: UserId },
}

#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait AuditTrail: Send + Sync + 'static {
    /// Records one refresh attempt with a standalone insert: for attempts
    /// that never reached [`super::SessionRepository::rotate`] (no token, a
    /// malformed one, a refused request, or a rotation that failed).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails; nothing is then recorded.
    fn record_refresh(&self, attempt: RefreshAttempt) -> Result<(), StoreError>;

    /// Adds `extra` requests to the count of the audit row of refreshes
    /// throttled from `attempt`'s client IP in `attempt`'s minute (outcome
    /// [`domain::RefreshOutcome::RateLimited`]); without such a row,
    /// `attempt` is recorded standing for `extra` requests. Atomic: every
    /// instance sharing the store adds to the same row, one per client IP
    /// and minute.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails; nothing is then counted.
    fn add_throttled_refreshes(
        &self,
        attempt: RefreshAttempt,
        extra: u64,
    ) -> Result<(), StoreError>;

    /// The user's refresh attempts, newest first (by time, then id),
    /// strictly after `before` in that order, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn refresh_logs(
        &self,
        user: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError>;

    /// Aggregates of the user's refresh attempts and security events since
    /// `since`, which must be the start of a UTC day: the trail is
    /// aggregated by the day (failures by the hour).
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn activity(&self, user: UserId, since: Timestamp) -> Result<ActivitySummary, StoreError>;

    /// Security events (of `user`, or of everyone), newest first (by time,
    /// then id), strictly after `before` in that order, at most `limit`.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    fn security_events(
        &self,
        user: Option<UserId>,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>, StoreError>;
}
