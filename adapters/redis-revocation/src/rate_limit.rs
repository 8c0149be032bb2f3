//! Abuse limits shared by every instance through Redis: login budgets
//! ([`LoginRateLimiter`]) and the per-IP budgets of registrations and failed
//! refreshes ([`IpRateLimiter`]).
//!
//! Each budget window is one Redis key holding a counter, created by the
//! first event it counts and expiring `window` later. Every call is **one**
//! round trip: a Lua script that checks and counts atomically (a login's
//! address count and username reservation together), so the budgets are
//! exact across instances and under any concurrency. Redis's own clock
//! closes the windows, so instances with skewed clocks still agree.
//!
//! Every call is bounded by the configured timeout (connect, write, read and
//! the wait for a pooled connection). When Redis fails, the limiter counts
//! in process instead (the injected fallback: the budgets then hold per
//! instance) and does not try Redis again for [`BACKOFF`]: a frozen Redis
//! costs a login one timeout at most every few seconds, not one per call.
//! A warning is logged at most every 30 seconds.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use application::rate_limit::{
    Admission, IpBudget, IpLimits, IpRateLimiter, Limit, LoginLimits, LoginRateLimiter,
};
use domain::Timestamp;

use crate::pool::{pool, TimedManager};

/// Seconds between two warnings about an unreachable Redis.
const WARN_EVERY_SECS: i64 = 30;

/// After a failed call, Redis is left alone (the fallback counts) this long.
pub const BACKOFF: Duration = Duration::from_secs(5);

/// A login attempt. KEYS: address, username. ARGV: address limit, address
/// window (ms), username limit, username window (ms), whether there is an
/// address, whether there is a username. Returns the milliseconds to wait
/// (0: allowed).
const LOGIN_SCRIPT: &str = r"
local function count(key, window)
  local n = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if n == 1 or ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = tonumber(window)
  end
  return n, ttl
end
if ARGV[5] == '1' then
  local n, ttl = count(KEYS[1], ARGV[2])
  if n > tonumber(ARGV[1]) then return math.max(ttl, 1) end
end
if ARGV[6] == '1' then
  local n = tonumber(redis.call('GET', KEYS[2]) or '0')
  if n >= tonumber(ARGV[3]) then
    return math.max(redis.call('PTTL', KEYS[2]), 1)
  end
  count(KEYS[2], ARGV[4])
end
return 0
";

/// Counts one event. KEYS: the counter. ARGV: limit, window (ms). Returns
/// the milliseconds to wait when over the limit, else 0.
const COUNT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
if n > tonumber(ARGV[1]) then return math.max(ttl, 1) end
return 0
";

/// Gives back one counted event (a failed refresh, a login reservation),
/// within the window still open (the key keeps its expiry). KEYS: the
/// counter. Returns 0.
const REFUND_SCRIPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then redis.call('DECR', KEYS[1]) end
return 0
";

/// Why the limiter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot use REDIS_URL: {0}")]
pub struct RedisSetupError(String);

/// Where the limiter counts while Redis cannot be used.
pub struct Fallback {
    pub login: Arc<dyn LoginRateLimiter>,
    pub ip: Arc<dyn IpRateLimiter>,
}

/// The abuse limits over Redis, shared by every instance using the same
/// Redis and key prefix.
pub struct RedisLimiter {
    pool: r2d2::Pool<TimedManager>,
    prefix: String,
    login: LoginLimits,
    ip: IpLimits,
    fallback: Fallback,
    /// Milliseconds since the epoch until which Redis is left alone.
    down_until: AtomicI64,
    last_warning: AtomicI64,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("login", &self.login)
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

fn epoch_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

fn admission(wait_ms: i64) -> Admission {
    match u64::try_from(wait_ms) {
        Ok(ms) if ms > 0 => Admission::Limited {
            retry_after: Duration::from_millis(ms),
        },
        _ => Admission::Allowed,
    }
}

/// The settings of a [`RedisLimiter`].
#[derive(Debug, Clone)]
pub struct LimiterConfig {
    /// Keys are `<prefix>{user,ip,register,refresh_fail}:…`.
    pub prefix: String,
    /// Deadline of every Redis call.
    pub timeout: Duration,
    pub login: LoginLimits,
    pub ip: IpLimits,
}

impl RedisLimiter {
    /// A limiter over `url` (`redis://…` or `rediss://…`). Connections are
    /// made lazily: an unreachable Redis is not an error here (the
    /// fallback counts until it answers).
    ///
    /// # Errors
    /// [`RedisSetupError`] for a malformed URL; the message never repeats
    /// the URL.
    pub fn connect(
        url: &str,
        config: LimiterConfig,
        fallback: Fallback,
    ) -> Result<Self, RedisSetupError> {
        let client = redis::Client::open(url)
            .map_err(|e| RedisSetupError(format!("not a Redis URL ({:?})", e.kind())))?;
        Ok(Self {
            pool: pool(TimedManager::new(client, config.timeout), 8),
            prefix: config.prefix,
            login: config.login,
            ip: config.ip,
            fallback,
            down_until: AtomicI64::new(i64::MIN),
            last_warning: AtomicI64::new(i64::MIN),
        })
    }

    /// `PING`, for readiness checks.
    ///
    /// # Errors
    /// Why Redis did not answer.
    pub fn ping(&self) -> Result<(), String> {
        let mut conn = self.pool.get().map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query::<String>(&mut *conn)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }

    /// Runs `script` with `keys` and `args` in one round trip, unless Redis
    /// failed less than [`BACKOFF`] ago; `None` when it cannot be used.
    fn eval(&self, script: &str, keys: &[&str], args: &[u64]) -> Option<i64> {
        if epoch_millis() < self.down_until.load(Ordering::Relaxed) {
            return None;
        }
        let result = self
            .pool
            .get()
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(script).arg(keys.len());
                for k in keys {
                    cmd.arg(*k);
                }
                for a in args {
                    cmd.arg(*a);
                }
                cmd.query::<i64>(&mut *c).map_err(|e| e.to_string())
            });
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.down(&e);
                None
            }
        }
    }

    /// Leaves Redis alone for [`BACKOFF`] and logs it, at most every
    /// [`WARN_EVERY_SECS`].
    fn down(&self, error: &str) {
        let now = epoch_millis();
        let backoff = i64::try_from(BACKOFF.as_millis()).unwrap_or(i64::MAX);
        self.down_until
            .store(now.saturating_add(backoff), Ordering::Relaxed);
        let now_secs = now / 1000;
        let last = self.last_warning.load(Ordering::Relaxed);
        if now_secs.saturating_sub(last) >= WARN_EVERY_SECS
            && self
                .last_warning
                .compare_exchange(last, now_secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %error,
                "Redis unreachable: abuse limits are counted in this process for now"
            );
        }
    }

    fn ip_key(&self, budget: IpBudget, ip: &str) -> String {
        self.key(budget.as_str(), ip)
    }
}

impl LoginRateLimiter for RedisLimiter {
    fn reserve(&self, user: Option<&str>, ip: Option<&str>, now: Timestamp) -> Admission {
        let LoginLimits { per_user, per_ip } = self.login;
        let ip_key = self.key("ip", ip.unwrap_or("-"));
        let user_key = self.key("user", user.unwrap_or("-"));
        let args = [
            u64::from(per_ip.count),
            millis(per_ip.window),
            u64::from(per_user.count),
            millis(per_user.window),
            u64::from(ip.is_some()),
            u64::from(user.is_some()),
        ];
        match self.eval(LOGIN_SCRIPT, &[&ip_key, &user_key], &args) {
            Some(wait) => admission(wait),
            None => self.fallback.login.reserve(user, ip, now),
        }
    }

    fn release(&self, user: &str, now: Timestamp) {
        self.fallback.login.release(user, now);
        let key = self.key("user", user);
        // A Redis failure is noted by `eval`; nothing else to give back.
        let _ = self.eval(REFUND_SCRIPT, &[&key], &[]);
    }

    fn reset(&self, user: &str) {
        self.fallback.login.reset(user);
        let key = self.key("user", user);
        if epoch_millis() < self.down_until.load(Ordering::Relaxed) {
            return;
        }
        let result = self
            .pool
            .get()
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                redis::cmd("DEL")
                    .arg(&key)
                    .query::<i64>(&mut *c)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            self.down(&e);
        }
    }
}

impl IpRateLimiter for RedisLimiter {
    fn count(&self, budget: IpBudget, ip: &str, now: Timestamp) -> Admission {
        let Limit { count, window } = self.ip.of(budget);
        let key = self.ip_key(budget, ip);
        match self.eval(COUNT_SCRIPT, &[&key], &[u64::from(count), millis(window)]) {
            Some(wait) => admission(wait),
            None => self.fallback.ip.count(budget, ip, now),
        }
    }

    fn refund(&self, budget: IpBudget, ip: &str, now: Timestamp) {
        let key = self.ip_key(budget, ip);
        if self.eval(REFUND_SCRIPT, &[&key], &[]).is_none() {
            self.fallback.ip.refund(budget, ip, now);
        }
    }
}

#[cfg(test)]
mod tests;
