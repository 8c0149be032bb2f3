//! The audit trail ([`AuditTrail`]): refresh attempts and security events.
//!
//! Rows of refreshes that reach the store are written by `rotation.rs`
//! inside the rotation's transaction, and security events by the
//! transaction of the revocation they describe; this module holds those
//! writes, the standalone insert of the port, and the reads for admins.

pub(crate) mod events;
mod read;
mod schema;
mod sql;
mod write;

use application::ports::{AuditTrail, StoreError};
use domain::{
    ActivitySummary, AuditRecord, Cursor, RefreshAttempt, SecurityEvent, Timestamp, UserId,
};

use crate::connection::Database;
use crate::error::store;

pub(crate) use read::security_event;
pub(crate) use write::{
    add_throttled, insert_attempt, insert_attempt_alone, insert_event, truncate_user_agent,
    AuditIds, EventDraft, NewAuditRow,
};

impl AuditTrail for Database {
    fn record_refresh(&self, attempt: RefreshAttempt) -> Result<(), StoreError> {
        let mut conn = self.conn().map_err(store("record refresh attempt"))?;
        insert_attempt_alone(&mut conn, self.write_lock(), self.audit_ids(), &attempt)
            .map_err(store("record refresh attempt"))
    }

    fn add_throttled_refreshes(
        &self,
        attempt: RefreshAttempt,
        extra: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().map_err(store("count throttled refreshes"))?;
        add_throttled(
            &mut conn,
            self.write_lock(),
            self.audit_ids(),
            &attempt,
            extra,
        )
        .map_err(store("count throttled refreshes"))
    }

    fn refresh_logs(
        &self,
        user: UserId,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut conn = self.conn().map_err(store("read refresh logs"))?;
        read::refresh_logs(&mut conn, user, before, limit).map_err(store("read refresh logs"))
    }

    fn activity(&self, user: UserId, since: Timestamp) -> Result<ActivitySummary, StoreError> {
        let mut conn = self.conn().map_err(store("analyse refresh activity"))?;
        read::activity(&mut conn, user, since).map_err(store("analyse refresh activity"))
    }

    fn security_events(
        &self,
        user: Option<UserId>,
        before: Option<Cursor>,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        let mut conn = self.conn().map_err(store("read security events"))?;
        read::security_events(&mut conn, user, before, limit).map_err(store("read security events"))
    }
}

#[cfg(any(test, feature = "testing"))]
impl Database {
    /// How many audit rows exist per outcome, for every user and none:
    /// lets tests check that each request left exactly one row.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    pub fn refresh_audit_outcomes(
        &self,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let mut conn = self.conn().map_err(store("count audit rows"))?;
        read::outcome_counts(&mut conn).map_err(store("count audit rows"))
    }

    /// How many requests the audit rows stand for, per outcome (their
    /// `count`s added up): lets tests check that throttled refreshes are
    /// all counted, in few rows.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails.
    pub fn refresh_audit_requests(
        &self,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        let mut conn = self.conn().map_err(store("count audited requests"))?;
        read::request_counts(&mut conn).map_err(store("count audited requests"))
    }

    /// Records many attempts in one transaction (the aggregates follow by
    /// trigger): for filling a trail in tests and benchmarks.
    ///
    /// # Errors
    /// [`StoreError`] when storage fails; nothing is then recorded.
    pub fn record_refresh_batch(&self, attempts: &[RefreshAttempt]) -> Result<(), StoreError> {
        let mut conn = self.conn().map_err(store("record refresh attempts"))?;
        crate::transaction::write_transaction(&mut conn, self.write_lock(), |conn| {
            write::insert_attempts(conn, self.audit_ids(), attempts)
        })
        .map_err(store("record refresh attempts"))?;
        // One transaction updates the aggregate rows over and over, and
        // none of their old versions can be pruned before it commits: do
        // at once what autovacuum does in a running system, where every
        // refresh commits on its own and HOT updates keep the table tight.
        if let crate::connection::AnyConnection::Postgresql(pg) = &mut *conn {
            use diesel::connection::SimpleConnection as _;
            pg.batch_execute(
                "VACUUM ANALYZE refresh_audit, refresh_audit_daily, refresh_audit_failures",
            )
            .map_err(|e| crate::error::DbError::from(e).into_store("vacuum"))?;
        }
        Ok(())
    }
}
