//! The per-IP abuse limits around registration and refresh (API.md "v2 —
//! Abuse limits"), asked at the edge of the use cases, before any argon2
//! or database work: the refresh plan itself knows nothing of them.
//!
//! Refusals of refreshes are audited as one row per client IP and minute
//! (outcome `rate_limited`), not one per request: a flood must not fill the
//! disk. Which IP and minute already has its row is remembered in process
//! ([`ThrottleLog`]), so several instances write one row each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use domain::{RefreshOutcome, Timestamp};

use crate::ports::ClientInfo;
use crate::rate_limit::{ip_key, Admission, IpBudget};
use crate::{TokenWarden, Unexpected};

/// At most this many (IP, minute) pairs are remembered; past it the memory
/// is cleared (a few extra audit rows, never unbounded memory).
const MAX_REMEMBERED: usize = 100_000;

/// The (client IP, minute) pairs whose throttled refreshes already have
/// their audit row.
#[derive(Debug, Default)]
pub(crate) struct ThrottleLog(Mutex<HashMap<String, i64>>);

impl ThrottleLog {
    /// Whether this refusal is the first of `ip` in the minute of `now`
    /// (then it gets an audit row).
    fn first_in_minute(&self, ip: &str, now: Timestamp) -> bool {
        let minute = now.as_millis().div_euclid(60_000);
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, m| *m == minute);
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
        }
        seen.insert(ip.to_owned(), minute) != Some(minute)
    }
}

fn refused(admission: Admission) -> Result<(), Duration> {
    match admission {
        Admission::Allowed => Ok(()),
        Admission::Limited { retry_after } => Err(retry_after),
    }
}

impl TokenWarden {
    /// Counts a registration attempt from `ip` (IPv6 per /64).
    ///
    /// # Errors
    /// The time to wait when `ip` is over its registration budget.
    pub fn admit_registration(&self, ip: Option<&str>) -> Result<(), Duration> {
        let Some(ip) = ip else { return Ok(()) };
        let now = self.ports.clock.now();
        refused(
            self.ip_limiter
                .count(IpBudget::Registration, &ip_key(ip), now),
        )
    }

    /// Whether a refresh from `client` may go ahead: not once its address
    /// has used up its failed-refresh budget. A refusal is audited (one row
    /// per address and minute).
    ///
    /// # Errors
    /// `Ok(Err(wait))` when refused; `Err` only when the audit row of the
    /// refusal could not be written.
    pub fn admit_refresh(&self, client: &ClientInfo) -> Result<Result<(), Duration>, Unexpected> {
        let Some(ip) = client.ip.as_deref() else {
            return Ok(Ok(()));
        };
        let now = self.ports.clock.now();
        let key = ip_key(ip);
        let verdict = refused(self.ip_limiter.check(IpBudget::RefreshFailure, &key, now));
        if verdict.is_err() && self.throttled_refreshes.first_in_minute(&key, now) {
            self.record_refresh_attempt(RefreshOutcome::RateLimited, None, client, now)?;
        }
        Ok(verdict)
    }

    /// Counts a failed refresh (missing, malformed, unknown, expired or
    /// revoked token) from `client`.
    pub fn refresh_failed(&self, client: &ClientInfo) {
        if let Some(ip) = client.ip.as_deref() {
            let now = self.ports.clock.now();
            self.ip_limiter
                .count(IpBudget::RefreshFailure, &ip_key(ip), now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_address_gets_one_row_per_minute() {
        let log = ThrottleLog::default();
        let t = Timestamp::from_millis(1_700_000_000_000);
        assert!(log.first_in_minute("192.0.2.1", t));
        assert!(!log.first_in_minute("192.0.2.1", t.plus(Duration::from_secs(1))));
        assert!(log.first_in_minute("192.0.2.2", t));
        assert!(log.first_in_minute("192.0.2.1", t.plus(Duration::from_secs(60))));
    }
}
