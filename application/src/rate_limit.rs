//! Abuse limits: the ports the use cases ask before they spend any work,
//! and the keys they count under. The implementations are adapters: the
//! `limits` crate counts in process, the Redis adapter shares the counts
//! between instances.
//!
//! Every budget is a fixed window that opens with the first event it counts
//! and closes `window` later:
//!
//! * **login, per username**: failed logins. An attempt *reserves* one
//!   failure before its password is checked, so of N simultaneous wrong
//!   guesses at most the budget are checked; a successful login then
//!   forgets every failure ([`LoginRateLimiter::reset`]). Once a username
//!   has no failure left in its window, every further attempt for it (even
//!   with the right password) is refused until the window has closed.
//!   Unknown usernames count like known ones, so a 429 says nothing about
//!   whether an account exists.
//! * **login, per client IP**: every attempt, successful or not.
//! * **registration, per client IP**: every registration attempt.
//! * **failed refreshes, per client IP**: refreshes that failed (missing,
//!   malformed, unknown, expired or revoked token, an unreadable or
//!   oversized body, a refused origin, duplicate cookies, no DPoP proof by
//!   a bound session's key). Like a login, an attempt *reserves* one failure
//!   when it arrives, so of N simultaneous bad refreshes at most the budget
//!   are looked at; a successful refresh (and a theft response, which is no
//!   flood) gives it back ([`IpRateLimiter::refund`]). Once over, every
//!   refresh from that address is refused until the window closes.
//!
//! IPv6 clients count per /64 ([`ip_key`]), the smallest block a single
//! client usually controls.

use std::net::IpAddr;
use std::time::Duration;

use domain::{Timestamp, Username};

/// A budget: at most `count` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub count: u32,
    pub window: Duration,
}

impl Limit {
    pub const fn per_minute(count: u32) -> Self {
        Self {
            count,
            window: Duration::from_secs(60),
        }
    }
}

/// Both login budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failed logins per username.
    pub per_user: Limit,
    /// Login attempts per client IP.
    pub per_ip: Limit,
}

impl Default for LoginLimits {
    /// The contract's defaults: 5 failures per username and 30 attempts per
    /// IP, per minute.
    fn default() -> Self {
        Self {
            per_user: Limit::per_minute(5),
            per_ip: Limit::per_minute(30),
        }
    }
}

/// Whether an attempt may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Refused; the client may try again after `retry_after`.
    Limited {
        retry_after: Duration,
    },
}

/// Counts login attempts and failures. Keys are opaque text made by
/// [`user_key`] and [`ip_key`].
///
/// No method fails: an adapter whose backend cannot be reached decides for
/// itself what to do (the Redis adapter falls back to counting in process)
/// and logs it, so that a limiter outage never stops logins altogether.
/// Every call is bounded in time.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait LoginRateLimiter: Send + Sync + 'static {
    /// Reserves one attempt, atomically: counts it against `ip` (every
    /// attempt counts) and, when `ip` is within its budget, reserves one of
    /// `user`'s failures, which stays counted unless the login succeeds.
    /// [`Admission::Limited`] when `ip` is over its budget or `user` has no
    /// failure left; nothing is then reserved for `user`. `None` keys are
    /// not limited (a username that cannot exist, a client without an
    /// address).
    #[allow(
        clippy::needless_lifetimes,
        reason = "mockall needs the lifetime named"
    )]
    fn reserve<'a>(&self, user: Option<&'a str>, ip: Option<&'a str>, now: Timestamp) -> Admission;

    /// Forgets the failures of `user`, the current reservation included
    /// (after a successful login).
    fn reset(&self, user: &str);

    /// Gives back one reservation of `user` whose password was never
    /// checked (the login was refused 503 before its password work ran): it
    /// was no failed login. The address's count keeps the attempt.
    fn release(&self, user: &str, now: Timestamp);
}

/// The per-IP budgets besides login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpBudget {
    /// Registration attempts (`TOKENWARDEN_REGISTER_RATE_IP`).
    Registration,
    /// Failed refreshes (`TOKENWARDEN_REFRESH_FAIL_RATE_IP`).
    RefreshFailure,
}

impl IpBudget {
    /// A short stable name, for keys and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "register",
            Self::RefreshFailure => "refresh_fail",
        }
    }
}

/// The budgets of [`IpBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpLimits {
    pub registration: Limit,
    pub refresh_failure: Limit,
}

impl IpLimits {
    pub fn of(&self, budget: IpBudget) -> Limit {
        match budget {
            IpBudget::Registration => self.registration,
            IpBudget::RefreshFailure => self.refresh_failure,
        }
    }
}

impl Default for IpLimits {
    /// The contract's defaults: 10 registrations per hour, 60 failed
    /// refreshes per minute.
    fn default() -> Self {
        Self {
            registration: Limit {
                count: 10,
                window: Duration::from_secs(3_600),
            },
            refresh_failure: Limit::per_minute(60),
        }
    }
}

/// Counts per-IP events ([`IpBudget`]). Keys are made by [`ip_key`]. Like
/// [`LoginRateLimiter`], no method fails and every call is bounded.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait IpRateLimiter: Send + Sync + 'static {
    /// Counts one event of `budget` for `ip`: [`Admission::Limited`] when
    /// it is over the budget.
    fn count(&self, budget: IpBudget, ip: &str, now: Timestamp) -> Admission;

    /// Gives back one event of `budget` counted for `ip` by
    /// [`IpRateLimiter::count`] in the window still open (a reserved
    /// failure that turned out a success); nothing when the window has
    /// closed or holds no event.
    fn refund(&self, budget: IpBudget, ip: &str, now: Timestamp);
}

/// The rate-limit key of a username: case-insensitive, like usernames.
pub fn user_key(username: &Username) -> String {
    username.canonical()
}

/// The rate-limit key of a client address: the address itself for IPv4,
/// its /64 network for IPv6 (IPv4-mapped addresses count as IPv4). Text
/// that is not an address is used as it is.
pub fn ip_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

/// A limiter that admits everything: for tools that log users in without
/// any network client in front (benchmarks, the CLI).
#[derive(Debug, Default, Clone, Copy)]
pub struct Unlimited;

impl LoginRateLimiter for Unlimited {
    fn reserve(&self, _: Option<&str>, _: Option<&str>, _: Timestamp) -> Admission {
        Admission::Allowed
    }
    fn reset(&self, _: &str) {}
    fn release(&self, _: &str, _: Timestamp) {}
}

impl IpRateLimiter for Unlimited {
    fn count(&self, _: IpBudget, _: &str, _: Timestamp) -> Admission {
        Admission::Allowed
    }
    fn refund(&self, _: IpBudget, _: &str, _: Timestamp) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    #[test]
    fn ipv6_clients_count_per_slash_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(ip_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(ip_key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(ip_key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(ip_key("192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn usernames_are_keyed_case_insensitively() {
        let a = Username::parse("Alice").unwrap();
        let b = Username::parse("aLICE").unwrap();
        assert_eq!(user_key(&a), user_key(&b));
    }

    #[test]
    fn unlimited_admits_everything() {
        for _ in 0..100 {
            Unlimited.reserve(Some("alice"), None, T0);
            Unlimited.count(IpBudget::Registration, "192.0.2.1", T0);
        }
        assert_eq!(
            Unlimited.reserve(Some("alice"), Some("192.0.2.1"), T0),
            Admission::Allowed
        );
        Unlimited.refund(IpBudget::RefreshFailure, "192.0.2.1", T0);
        assert_eq!(
            Unlimited.count(IpBudget::RefreshFailure, "192.0.2.1", T0),
            Admission::Allowed
        );
    }
}
