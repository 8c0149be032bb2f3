//! The per-IP abuse limits around registration and refresh (API.md "v2 —
//! Abuse limits"), asked at the edge of the use cases, before any argon2
//! or database work: the refresh plan itself knows nothing of them.
//!
//! Refusals of refreshes are audited as one row per client IP and minute
//! (outcome `rate_limited`) with a `count` of the requests it stands for,
//! not one row per request: a flood must not fill the disk, nor cost a
//! database write per request. The first refusal of an IP in a minute in
//! this process writes to the row at once; later ones are counted in
//! process ([`ThrottleLog`]) and added to the row's count by
//! [`TokenWarden::flush_throttled_refreshes`], which the server calls every
//! second and at shutdown. Every write is an atomic upsert keyed by client
//! IP and minute ([`crate::ports::AuditTrail::add_throttled_refreshes`]),
//! so several instances add to one row.
//!
//! Every refresh attempt reserves one failure of its address's budget
//! when it arrives ([`TokenWarden::admit_refresh`], atomic in the limiter),
//! before any token, body or origin is looked at, and a refresh that did
//! not fail gives it back ([`TokenWarden::settle_refresh`]): of N
//! simultaneous bad refreshes at most the budget get an answer other than
//! 429, whatever they are refused for.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use domain::{RefreshAttempt, RefreshOutcome, Timestamp};

use crate::ports::ClientInfo;
use crate::rate_limit::{ip_key, Admission, IpBudget};
use crate::{RefreshError, RefreshRejection, TokenWarden, Unexpected};

/// At most this many addresses are remembered; past it the memory is
/// cleared (counts not yet flushed are lost: a few requests missing from
/// the trail, never unbounded memory).
const MAX_REMEMBERED: usize = 100_000;

const MINUTE_MS: i64 = 60_000;

/// What is remembered of an address whose refreshes are being throttled.
#[derive(Debug)]
struct Throttled {
    minute: i64,
    /// The first refusal of the minute (the one with its own row).
    first_at: Timestamp,
    /// The client IP as that row has it.
    ip: String,
    /// Refusals since, not yet added to the row's count.
    pending: u64,
}

/// Counts of throttled refreshes: per address (as [`ip_key`] groups them),
/// its current minute.
#[derive(Debug, Default)]
pub(crate) struct ThrottleLog(Mutex<HashMap<String, Throttled>>);

/// Counts to add to the rows of earlier refusals.
type Pending = Vec<(RefreshAttempt, u64)>;

impl ThrottleLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Throttled>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a refusal of `key` (client IP `ip`) at `now`: `true` when it
    /// is the first of the address in that minute (it then gets its own
    /// row), `false` when it is counted towards that row.
    fn refused(&self, key: &str, ip: &str, now: Timestamp) -> bool {
        let minute = now.as_millis().div_euclid(MINUTE_MS);
        let mut seen = self.lock();
        if let Some(entry) = seen.get_mut(key) {
            if entry.minute == minute {
                entry.pending += 1;
                return false;
            }
            if entry.pending > 0 {
                // The flush has not run since the minute turned: those
                // counts stay until it does, under their own minute.
                return self.first_of_minute_with_leftover(&mut seen, key, ip, now);
            }
        }
        if seen.len() >= MAX_REMEMBERED {
            seen.retain(|_, t| t.minute == minute);
            if seen.len() >= MAX_REMEMBERED {
                seen.clear();
            }
        }
        seen.insert(
            key.to_owned(),
            Throttled {
                minute,
                first_at: now,
                ip: ip.to_owned(),
                pending: 0,
            },
        );
        true
    }

    /// A new minute for `key` while the previous one still has counts: the
    /// previous entry moves under a key of its own until flushed.
    fn first_of_minute_with_leftover(
        &self,
        seen: &mut HashMap<String, Throttled>,
        key: &str,
        ip: &str,
        now: Timestamp,
    ) -> bool {
        if let Some(old) = seen.remove(key) {
            seen.insert(format!("{key}@{}", old.minute), old);
        }
        seen.insert(
            key.to_owned(),
            Throttled {
                minute: now.as_millis().div_euclid(MINUTE_MS),
                first_at: now,
                ip: ip.to_owned(),
                pending: 0,
            },
        );
        true
    }

    /// Takes the counts not yet added to their rows, and forgets addresses
    /// whose minute is over.
    fn take_pending(&self, now: Timestamp) -> Pending {
        let minute = now.as_millis().div_euclid(MINUTE_MS);
        let mut seen = self.lock();
        let pending = seen
            .values_mut()
            .filter(|t| t.pending > 0)
            .map(|t| {
                let attempt = throttled_attempt(t.first_at, &t.ip);
                (attempt, std::mem::take(&mut t.pending))
            })
            .collect();
        seen.retain(|_, t| t.minute == minute);
        pending
    }

    /// Counts that could not be written go back, to be tried again.
    fn restore(&self, attempt: &RefreshAttempt, count: u64) {
        let Some(ip) = attempt.ip.clone() else { return };
        let minute = attempt.at.as_millis().div_euclid(MINUTE_MS);
        self.lock()
            .entry(format!("{}@{minute}", ip_key(&ip)))
            .or_insert(Throttled {
                minute,
                first_at: attempt.at,
                ip,
                pending: 0,
            })
            .pending += count;
    }

    fn has_pending(&self) -> bool {
        self.lock().values().any(|t| t.pending > 0)
    }
}

/// The row of a throttled refresh: no token was looked at.
fn throttled_attempt(at: Timestamp, ip: &str) -> RefreshAttempt {
    RefreshAttempt {
        at,
        outcome: RefreshOutcome::RateLimited,
        user_id: None,
        session_id: None,
        ip: Some(ip.to_owned()),
        user_agent: None,
        fingerprint: None,
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

    /// Reserves one failed refresh of `client`'s address: the attempt may
    /// go ahead unless the address has used up its failed-refresh budget
    /// (it then counts only in the aggregated audit row of its IP and
    /// minute). Call [`TokenWarden::settle_refresh`] with the outcome of an
    /// admitted refresh, or [`TokenWarden::reject_refresh`] instead of this
    /// for a request refused before the use case.
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
        let verdict = refused(self.ip_limiter.count(IpBudget::RefreshFailure, &key, now));
        if verdict.is_err() && self.throttled_refreshes.refused(&key, ip, now) {
            let attempt = throttled_attempt(now, ip);
            if let Err(e) = self.ports.audit.add_throttled_refreshes(attempt.clone(), 1) {
                // Counted by the next flush instead.
                self.throttled_refreshes.restore(&attempt, 1);
                return Err(e.into());
            }
        }
        Ok(verdict)
    }

    /// Gives back the failure [`TokenWarden::admit_refresh`] reserved when
    /// the refresh did not fail as a flood does: a success, a theft
    /// response (evidence, not guessing), or a fault of the server. Missing,
    /// malformed, unknown, expired and revoked tokens and missing DPoP
    /// proofs stay counted.
    pub fn settle_refresh<T>(&self, client: &ClientInfo, outcome: &Result<T, RefreshError>) {
        let failed = matches!(
            outcome,
            Err(RefreshError::Missing
                | RefreshError::Invalid
                | RefreshError::Expired { .. }
                | RefreshError::Revoked { .. }
                | RefreshError::DpopMismatch { .. })
        );
        if let (false, Some(ip)) = (failed, client.ip.as_deref()) {
            let now = self.ports.clock.now();
            self.ip_limiter
                .refund(IpBudget::RefreshFailure, &ip_key(ip), now);
        }
    }

    /// A refresh request the HTTP adapter refused before the use case ran
    /// (origin, body, duplicate cookies): a failed attempt like any other.
    /// Within the budget it is recorded with its own audit row
    /// ([`TokenWarden::record_refresh_rejection`]); over it, only counted in
    /// the aggregated row.
    ///
    /// # Errors
    /// `Ok(Err(wait))` when the address is over its budget (answer 429);
    /// `Err` when the audit could not be written.
    pub fn reject_refresh(
        &self,
        rejection: RefreshRejection,
        token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<Result<(), Duration>, Unexpected> {
        if let Err(wait) = self.admit_refresh(client)? {
            return Ok(Err(wait));
        }
        self.record_refresh_rejection(rejection, token, client)?;
        Ok(Ok(()))
    }

    /// Whether throttled refreshes wait for [`TokenWarden::flush_throttled_refreshes`]
    /// (cheap: no I/O).
    pub fn throttled_refreshes_pending(&self) -> bool {
        self.throttled_refreshes.has_pending()
    }

    /// Adds the throttled refreshes counted in process to their audit
    /// rows' counts. Returns how many requests were added.
    ///
    /// # Errors
    /// When the store fails; the counts not written are kept for the next
    /// call.
    pub fn flush_throttled_refreshes(&self) -> Result<u64, Unexpected> {
        let now = self.ports.clock.now();
        let mut added = 0;
        let mut failure = None;
        for (attempt, count) in self.throttled_refreshes.take_pending(now) {
            if failure.is_some() {
                self.throttled_refreshes.restore(&attempt, count);
                continue;
            }
            match self
                .ports
                .audit
                .add_throttled_refreshes(attempt.clone(), count)
            {
                Ok(()) => added += count,
                Err(e) => {
                    self.throttled_refreshes.restore(&attempt, count);
                    failure = Some(e);
                }
            }
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(added),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: &str = "192.0.2.1";

    #[test]
    fn a_throttled_address_gets_one_row_per_minute_and_counts_the_rest() {
        let log = ThrottleLog::default();
        let t = Timestamp::from_millis(1_700_000_000_000 - 1_700_000_000_000 % 60_000);
        assert!(log.refused(IP, IP, t));
        assert!(!log.refused(IP, IP, t.plus(Duration::from_secs(1))));
        assert!(!log.refused(IP, IP, t.plus(Duration::from_secs(2))));
        assert!(log.refused("192.0.2.2", "192.0.2.2", t));
        let pending = log.take_pending(t.plus(Duration::from_secs(3)));
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].0.at, pending[0].1), (t, 2));
        assert!(log.take_pending(t).is_empty(), "taken once");
        assert!(
            !log.refused(IP, IP, t.plus(Duration::from_secs(4))),
            "same minute"
        );
        assert!(
            log.refused(IP, IP, t.plus(Duration::from_secs(60))),
            "next minute"
        );
    }

    #[test]
    fn counts_left_from_a_minute_are_flushed_under_that_minute() {
        let log = ThrottleLog::default();
        let t = Timestamp::from_millis(1_700_000_000_000 - 1_700_000_000_000 % 60_000);
        assert!(log.refused(IP, IP, t));
        assert!(!log.refused(IP, IP, t.plus(Duration::from_secs(59))));
        assert!(log.refused(IP, IP, t.plus(Duration::from_secs(61))));
        assert!(!log.refused(IP, IP, t.plus(Duration::from_secs(62))));
        let mut pending: Vec<_> = log
            .take_pending(t.plus(Duration::from_secs(63)))
            .into_iter()
            .map(|(a, n)| (a.at, n))
            .collect();
        pending.sort();
        assert_eq!(pending, vec![(t, 1), (t.plus(Duration::from_secs(61)), 1)]);
    }

    #[test]
    fn counts_that_could_not_be_written_are_kept() {
        let log = ThrottleLog::default();
        let t = Timestamp::from_millis(1_700_000_000_000);
        assert!(log.refused(IP, IP, t));
        assert!(!log.refused(IP, IP, t));
        let pending = log.take_pending(t);
        assert!(!log.has_pending());
        log.restore(&pending[0].0, pending[0].1);
        assert!(log.has_pending());
        assert_eq!(log.take_pending(t)[0].1, 1);
    }

    mod budget {
        use std::sync::Arc;

        use super::*;
        use crate::rate_limit::MockIpRateLimiter;
        use crate::test_support::{client, Mocks};

        const LIMITED: Admission = Admission::Limited {
            retry_after: Duration::from_secs(30),
        };

        fn warden(m: Mocks, limiter: MockIpRateLimiter) -> TokenWarden {
            m.build().with_ip_limiter(Arc::new(limiter))
        }

        #[test]
        fn every_refresh_reserves_a_failure_when_it_arrives() {
            let mut limiter = MockIpRateLimiter::new();
            limiter
                .expect_count()
                .withf(|b, _, _| *b == IpBudget::RefreshFailure)
                .times(1)
                .return_const(Admission::Allowed);
            let w = warden(Mocks::new(), limiter);
            assert_eq!(w.admit_refresh(&client()).unwrap(), Ok(()));
        }

        #[test]
        fn a_success_or_a_theft_response_gives_the_failure_back_and_a_bad_token_does_not() {
            let mut limiter = MockIpRateLimiter::new();
            limiter.expect_refund().times(2).return_const(());
            let w = warden(Mocks::new(), limiter);
            let session = domain::SessionId::from_random_bytes([0x5e; 16]);
            let user = domain::UserId::from_random_bytes([0xa1; 16]);
            w.settle_refresh::<()>(&client(), &Ok(()));
            w.settle_refresh::<()>(&client(), &Err(RefreshError::Reused { session, user }));
            for counted in [
                RefreshError::Missing,
                RefreshError::Invalid,
                RefreshError::Revoked { session, user },
                RefreshError::DpopMismatch { session, user },
            ] {
                w.settle_refresh::<()>(&client(), &Err(counted));
            }
        }

        #[test]
        fn a_rejected_request_over_the_budget_is_only_counted_in_the_aggregated_row() {
            let mut limiter = MockIpRateLimiter::new();
            limiter.expect_count().times(3).return_const(LIMITED);
            let mut m = Mocks::new();
            m.audit.expect_record_refresh().never();
            m.audit
                .expect_add_throttled_refreshes()
                .withf(|a, n| a.outcome == RefreshOutcome::RateLimited && *n == 1)
                .times(1)
                .returning(|_, _| Ok(()));
            let w = warden(m, limiter);
            for _ in 0..3 {
                let verdict = w
                    .reject_refresh(RefreshRejection::MalformedRequest, None, &client())
                    .unwrap();
                assert_eq!(verdict, Err(Duration::from_secs(30)));
            }
            assert!(w.throttled_refreshes_pending(), "two wait for the flush");
        }

        #[test]
        fn a_rejected_request_within_the_budget_counts_and_keeps_its_own_row() {
            let mut limiter = MockIpRateLimiter::new();
            limiter
                .expect_count()
                .times(1)
                .return_const(Admission::Allowed);
            let mut m = Mocks::new();
            m.audit
                .expect_record_refresh()
                .withf(|a| a.outcome == RefreshOutcome::DuplicateCookies)
                .times(1)
                .returning(|_| Ok(()));
            let w = warden(m, limiter);
            let verdict = w
                .reject_refresh(RefreshRejection::DuplicateCookies, None, &client())
                .unwrap();
            assert_eq!(verdict, Ok(()));
        }
    }
}
