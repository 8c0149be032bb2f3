//! Login rate limits: the port the login use case asks before it spends any
//! argon2 work, and [`InProcessLoginLimiter`], the implementation used when
//! no shared store is configured.
//!
//! Both budgets are fixed windows that open with the first event they count
//! and close `window` later:
//!
//! * **per username**: failed logins. Once a username has `count` failures
//!   inside its window, every further attempt for it (even with the right
//!   password) is refused until the window has closed. A successful login
//!   forgets its failures. Unknown usernames count like known ones, so a 429
//!   says nothing about whether an account exists.
//! * **per client IP**: every attempt, successful or not. IPv6 clients count
//!   per /64, the smallest block a single client usually controls.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
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

/// Whether a login attempt may go ahead.
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
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait LoginRateLimiter: Send + Sync + 'static {
    /// Counts one attempt for `ip` and answers whether the attempt may go
    /// ahead: [`Admission::Limited`] when `ip` is over its budget or `user`
    /// has used up its failures; `retry_after` is then the longer of the
    /// waits. `None` keys are not limited (a username that cannot exist, a
    /// client without an address).
    #[allow(
        clippy::needless_lifetimes,
        reason = "mockall needs the lifetime named"
    )]
    fn admit<'a>(&self, user: Option<&'a str>, ip: Option<&'a str>, now: Timestamp) -> Admission;

    /// Counts a failed login for `user`.
    fn record_failure(&self, user: &str, now: Timestamp);

    /// Forgets the failures of `user` (after a successful login).
    fn reset(&self, user: &str);
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
    fn admit(&self, _: Option<&str>, _: Option<&str>, _: Timestamp) -> Admission {
        Admission::Allowed
    }
    fn record_failure(&self, _: &str, _: Timestamp) {}
    fn reset(&self, _: &str) {}
}

/// At most this many keys are tracked per budget. Past it, expired windows
/// are swept; if the table is still full, new keys go uncounted until
/// windows close (the per-IP budget still holds for known addresses).
const MAX_TRACKED: usize = 100_000;

/// One open window of a budget.
#[derive(Debug, Clone, Copy)]
struct Window {
    opened: Timestamp,
    count: u32,
}

#[derive(Debug, Default)]
struct Table(HashMap<String, Window>);

impl Table {
    /// The window of `key` at `now`, `None` when none is open.
    fn open(&self, key: &str, limit: Limit, now: Timestamp) -> Option<Window> {
        self.0
            .get(key)
            .copied()
            .filter(|w| now < w.opened.plus(limit.window))
    }

    /// Counts one event for `key`; returns its window afterwards, `None`
    /// when the table is full and `key` is not tracked.
    fn count(&mut self, key: &str, limit: Limit, now: Timestamp) -> Option<Window> {
        let window = match self.open(key, limit, now) {
            Some(w) => Window {
                count: w.count.saturating_add(1),
                ..w
            },
            None => Window {
                opened: now,
                count: 1,
            },
        };
        if !self.0.contains_key(key) && self.0.len() >= MAX_TRACKED {
            self.0.retain(|_, w| now < w.opened.plus(limit.window));
            if self.0.len() >= MAX_TRACKED {
                return None;
            }
        }
        self.0.insert(key.to_owned(), window);
        Some(window)
    }
}

/// Counts in this process's memory. Several server instances each count
/// on their own, so the budgets then hold per instance; configure Redis to
/// share them.
#[derive(Debug)]
pub struct InProcessLoginLimiter {
    limits: LoginLimits,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    users: Table,
    ips: Table,
}

impl InProcessLoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    pub fn limits(&self) -> LoginLimits {
        self.limits
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The tables stay consistent whatever a panicking holder did: every
        // update is a single insert or remove.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl LoginRateLimiter for InProcessLoginLimiter {
    fn admit(&self, user: Option<&str>, ip: Option<&str>, now: Timestamp) -> Admission {
        let mut state = self.state();
        let mut wait = Duration::ZERO;
        let LoginLimits { per_user, per_ip } = self.limits;
        if let Some(w) = ip.and_then(|ip| state.ips.count(ip, per_ip, now)) {
            if w.count > per_ip.count {
                wait = wait.max(now.until(w.opened.plus(per_ip.window)));
            }
        }
        if let Some(w) = user.and_then(|u| state.users.open(u, per_user, now)) {
            if w.count >= per_user.count {
                wait = wait.max(now.until(w.opened.plus(per_user.window)));
            }
        }
        if wait.is_zero() {
            Admission::Allowed
        } else {
            Admission::Limited { retry_after: wait }
        }
    }

    fn record_failure(&self, user: &str, now: Timestamp) {
        let per_user = self.limits.per_user;
        self.state().users.count(user, per_user, now);
    }

    fn reset(&self, user: &str) {
        self.state().users.0.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    fn at(secs: u64) -> Timestamp {
        T0.plus(Duration::from_secs(secs))
    }

    fn limiter(user: u32, ip: u32) -> InProcessLoginLimiter {
        InProcessLoginLimiter::new(LoginLimits {
            per_user: Limit::per_minute(user),
            per_ip: Limit::per_minute(ip),
        })
    }

    fn fail(l: &InProcessLoginLimiter, user: &str, now: Timestamp) -> Admission {
        let admission = l.admit(Some(user), None, now);
        l.record_failure(user, now);
        admission
    }

    #[test]
    fn a_username_is_limited_after_its_failures_until_the_window_closes() {
        let l = limiter(3, 1000);
        for s in 0..3 {
            assert_eq!(fail(&l, "alice", at(s)), Admission::Allowed);
        }
        assert_eq!(
            l.admit(Some("alice"), None, at(10)),
            Admission::Limited {
                retry_after: Duration::from_secs(50)
            }
        );
        assert_eq!(l.admit(Some("alice"), None, at(60)), Admission::Allowed);
    }

    #[test]
    fn other_usernames_are_not_affected() {
        let l = limiter(2, 1000);
        fail(&l, "alice", at(0));
        fail(&l, "alice", at(0));
        assert!(matches!(
            l.admit(Some("alice"), None, at(1)),
            Admission::Limited { .. }
        ));
        assert_eq!(l.admit(Some("bob"), None, at(1)), Admission::Allowed);
    }

    #[test]
    fn a_success_forgets_the_failures() {
        let l = limiter(2, 1000);
        fail(&l, "alice", at(0));
        l.reset("alice");
        fail(&l, "alice", at(1));
        assert_eq!(l.admit(Some("alice"), None, at(2)), Admission::Allowed);
    }

    #[test]
    fn every_attempt_counts_against_the_ip() {
        let l = limiter(100, 3);
        for s in 0..3 {
            assert_eq!(
                l.admit(None, Some("203.0.113.9"), at(s)),
                Admission::Allowed
            );
        }
        assert_eq!(
            l.admit(Some("bob"), Some("203.0.113.9"), at(30)),
            Admission::Limited {
                retry_after: Duration::from_secs(30)
            }
        );
        assert_eq!(
            l.admit(None, Some("203.0.113.10"), at(30)),
            Admission::Allowed
        );
        assert_eq!(
            l.admit(None, Some("203.0.113.9"), at(60)),
            Admission::Allowed
        );
    }

    #[test]
    fn the_longer_wait_is_reported() {
        let l = InProcessLoginLimiter::new(LoginLimits {
            per_user: Limit {
                count: 1,
                window: Duration::from_secs(600),
            },
            per_ip: Limit::per_minute(1),
        });
        fail(&l, "alice", at(0));
        assert_eq!(
            l.admit(Some("alice"), Some("192.0.2.1"), at(0)),
            Admission::Limited {
                retry_after: Duration::from_secs(600)
            }
        );
    }

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
            Unlimited.record_failure("alice", T0);
        }
        assert_eq!(
            Unlimited.admit(Some("alice"), Some("192.0.2.1"), T0),
            Admission::Allowed
        );
    }
}
