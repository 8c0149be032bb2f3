//! The abuse limits counted in this process's memory: the implementation
//! of [`application::rate_limit`]'s ports used when no shared store is
//! configured, and the fallback of the Redis one while Redis is down.
//!
//! Every budget is a fixed window that opens with the first event it counts
//! and closes `window` later. All checks and counts of one call happen under
//! one lock, so they are exact under any concurrency: of N simultaneous
//! wrong guesses for one username, at most the budget are let through.
//! Several server instances each count on their own; configure Redis to
//! share the budgets.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use application::rate_limit::{
    Admission, IpBudget, IpLimits, IpRateLimiter, Limit, LoginLimits, LoginRateLimiter,
};
use domain::Timestamp;

/// At most this many keys are tracked per table. Past it, expired windows
/// are swept; if the table is still full, new keys go uncounted until
/// windows close (known keys stay limited).
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

    /// The wait until `key`'s window closes when it holds `limit.count`
    /// events or more (no room for another), else zero.
    fn wait_if_full(&self, key: &str, limit: Limit, now: Timestamp) -> Duration {
        match self.open(key, limit, now) {
            Some(w) if w.count >= limit.count => now.until(w.opened.plus(limit.window)),
            _ => Duration::ZERO,
        }
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

    /// Takes back one event counted for `key` in its window still open.
    fn give_back(&mut self, key: &str, limit: Limit, now: Timestamp) {
        if let Some(w) = self
            .0
            .get_mut(key)
            .filter(|w| now < w.opened.plus(limit.window))
        {
            w.count = w.count.saturating_sub(1);
        }
    }

    /// Counts one event and answers the wait when it went over `limit`.
    fn count_over(&mut self, key: &str, limit: Limit, now: Timestamp) -> Duration {
        match self.count(key, limit, now) {
            Some(w) if w.count > limit.count => now.until(w.opened.plus(limit.window)),
            _ => Duration::ZERO,
        }
    }
}

fn admission(wait: Duration) -> Admission {
    if wait.is_zero() {
        Admission::Allowed
    } else {
        Admission::Limited { retry_after: wait }
    }
}

/// Login budgets counted in process.
#[derive(Debug)]
pub struct InProcessLoginLimiter {
    limits: LoginLimits,
    state: Mutex<LoginTables>,
}

#[derive(Debug, Default)]
struct LoginTables {
    users: Table,
    ips: Table,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The tables stay consistent whatever a panicking holder did: every
    // update is a single insert or remove.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl InProcessLoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(LoginTables::default()),
        }
    }

    pub fn limits(&self) -> LoginLimits {
        self.limits
    }
}

impl LoginRateLimiter for InProcessLoginLimiter {
    fn reserve(&self, user: Option<&str>, ip: Option<&str>, now: Timestamp) -> Admission {
        let LoginLimits { per_user, per_ip } = self.limits;
        let mut state = lock(&self.state);
        if let Some(ip) = ip {
            let wait = state.ips.count_over(ip, per_ip, now);
            if !wait.is_zero() {
                return admission(wait);
            }
        }
        if let Some(user) = user {
            let wait = state.users.wait_if_full(user, per_user, now);
            if !wait.is_zero() {
                return admission(wait);
            }
            state.users.count(user, per_user, now);
        }
        Admission::Allowed
    }

    fn reset(&self, user: &str) {
        lock(&self.state).users.0.remove(user);
    }

    fn release(&self, user: &str, now: Timestamp) {
        lock(&self.state)
            .users
            .give_back(user, self.limits.per_user, now);
    }
}

/// Per-IP budgets (registrations, failed refreshes) counted in process.
#[derive(Debug)]
pub struct InProcessIpLimiter {
    limits: IpLimits,
    tables: [Mutex<Table>; 2],
}

impl InProcessIpLimiter {
    pub fn new(limits: IpLimits) -> Self {
        Self {
            limits,
            tables: [Mutex::default(), Mutex::default()],
        }
    }

    fn table(&self, budget: IpBudget) -> &Mutex<Table> {
        match budget {
            IpBudget::Registration => &self.tables[0],
            IpBudget::RefreshFailure => &self.tables[1],
        }
    }
}

impl IpRateLimiter for InProcessIpLimiter {
    fn count(&self, budget: IpBudget, ip: &str, now: Timestamp) -> Admission {
        let limit = self.limits.of(budget);
        admission(lock(self.table(budget)).count_over(ip, limit, now))
    }

    fn refund(&self, budget: IpBudget, ip: &str, now: Timestamp) {
        let limit = self.limits.of(budget);
        lock(self.table(budget)).give_back(ip, limit, now);
    }
}

#[cfg(test)]
mod tests;
