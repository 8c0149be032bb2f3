//! Login rate limits shared by every instance through Redis.
//!
//! Each budget window is one Redis key holding a counter, created by the
//! first event it counts and expiring `window` later (`INCR`, then
//! `PEXPIRE` on the first increment, in one Lua script so that a crash in
//! between cannot leave a counter without expiry). Redis's own clock closes
//! the windows, so instances with skewed clocks still agree.
//!
//! When Redis cannot be reached, the limiter counts in this process instead
//! (the budgets then hold per instance, as without Redis) and logs a warning
//! at most every 30 seconds: an outage of the limiter never stops logins.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use application::rate_limit::{Admission, InProcessLoginLimiter, LoginLimits, LoginRateLimiter};
use domain::Timestamp;
use redis::{Commands as _, Connection, ConnectionLike as _, RedisError};

/// How long a command may take before Redis counts as unreachable.
const TIMEOUT: Duration = Duration::from_millis(500);

/// Seconds between two warnings about an unreachable Redis.
const WARN_EVERY_SECS: i64 = 30;

/// Counts one event in a window; returns `[count, milliseconds left]`.
/// (Sent with `EVAL`: Redis caches the compiled script by its digest.)
const COUNT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// Connections with bounded connect, read and write times.
#[derive(Debug, Clone)]
pub struct RedisConnector {
    client: redis::Client,
}

impl r2d2::ManageConnection for RedisConnector {
    type Connection = Connection;
    type Error = RedisError;

    fn connect(&self) -> Result<Connection, RedisError> {
        let conn = self.client.get_connection_with_timeout(TIMEOUT)?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        conn.set_write_timeout(Some(TIMEOUT))?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), RedisError> {
        redis::cmd("PING").query::<String>(conn).map(|_| ())
    }

    fn has_broken(&self, conn: &mut Connection) -> bool {
        !conn.is_open()
    }
}

/// Why the limiter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot use REDIS_URL: {0}")]
pub struct RedisSetupError(String);

/// [`LoginRateLimiter`] over Redis, shared by every instance using the same
/// Redis and key prefix.
pub struct RedisLoginLimiter {
    pool: r2d2::Pool<RedisConnector>,
    prefix: String,
    limits: LoginLimits,
    fallback: InProcessLoginLimiter,
    last_warning: AtomicI64,
}

impl std::fmt::Debug for RedisLoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it.
        f.debug_struct("RedisLoginLimiter")
            .field("prefix", &self.prefix)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl RedisLoginLimiter {
    /// Keys are `tokenwarden:login:{user,ip}:…`.
    pub const DEFAULT_PREFIX: &'static str = "tokenwarden:login:";

    /// A limiter over `url` (`redis://…` or `rediss://…`). Connections are
    /// made lazily: an unreachable Redis is not an error here (logins are
    /// then counted in this process).
    ///
    /// # Errors
    /// [`RedisSetupError`] for a malformed URL; the message never repeats
    /// the URL.
    pub fn connect(url: &str, limits: LoginLimits) -> Result<Self, RedisSetupError> {
        Self::connect_with_prefix(url, limits, Self::DEFAULT_PREFIX)
    }

    /// Like [`RedisLoginLimiter::connect`], with another key prefix (tests
    /// use one per test).
    ///
    /// # Errors
    /// See [`RedisLoginLimiter::connect`].
    pub fn connect_with_prefix(
        url: &str,
        limits: LoginLimits,
        prefix: &str,
    ) -> Result<Self, RedisSetupError> {
        let client = redis::Client::open(url)
            .map_err(|e| RedisSetupError(format!("not a Redis URL ({:?})", e.kind())))?;
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(TIMEOUT * 4)
            // Unchecked: Redis being down at start-up must not stop the
            // server; until it answers, logins are counted in this process.
            .build_unchecked(RedisConnector { client });
        Ok(Self {
            pool,
            prefix: prefix.to_owned(),
            limits,
            fallback: InProcessLoginLimiter::new(limits),
            last_warning: AtomicI64::new(i64::MIN),
        })
    }

    /// A limiter whose Redis never answers.
    #[cfg(test)]
    fn unreachable_for_tests(limits: LoginLimits) -> Self {
        let client = redis::Client::open("redis://127.0.0.1:1").unwrap_or_else(|e| panic!("{e}"));
        Self {
            pool: r2d2::Pool::builder()
                .min_idle(Some(0))
                .connection_timeout(Duration::from_millis(100))
                .build_unchecked(RedisConnector { client }),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            limits,
            fallback: InProcessLoginLimiter::new(limits),
            last_warning: AtomicI64::new(i64::MIN),
        }
    }

    /// `PING`, for readiness checks.
    ///
    /// # Errors
    /// Why Redis did not answer.
    pub fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn()?;
        redis::cmd("PING")
            .query::<String>(&mut *conn)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<RedisConnector>, String> {
        self.pool.get().map_err(|e| e.to_string())
    }

    /// Counts one event in `key`'s window: `(count, time left)`.
    fn count(
        &self,
        conn: &mut Connection,
        key: &str,
        window: Duration,
    ) -> Result<(u64, Duration), String> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let (n, ttl): (u64, i64) = redis::cmd("EVAL")
            .arg(COUNT_SCRIPT)
            .arg(1)
            .arg(key)
            .arg(window_ms)
            .query(conn)
            .map_err(|e| e.to_string())?;
        Ok((n, millis(ttl)))
    }

    /// The count in `key`'s open window, if any: `(count, time left)`.
    fn peek(conn: &mut Connection, key: &str) -> Result<(u64, Duration), String> {
        let (n, ttl): (Option<u64>, i64) = redis::pipe()
            .get(key)
            .pttl(key)
            .query(conn)
            .map_err(|e| e.to_string())?;
        Ok((n.unwrap_or(0), millis(ttl)))
    }

    fn try_admit(&self, user: Option<&str>, ip: Option<&str>) -> Result<Admission, String> {
        let mut conn = self.conn()?;
        let LoginLimits { per_user, per_ip } = self.limits;
        let mut wait = Duration::ZERO;
        if let Some(ip) = ip {
            let (n, left) = self.count(&mut conn, &self.key("ip", ip), per_ip.window)?;
            if n > u64::from(per_ip.count) {
                wait = wait.max(left);
            }
        }
        if let Some(user) = user {
            let (n, left) = Self::peek(&mut conn, &self.key("user", user))?;
            if n >= u64::from(per_user.count) {
                wait = wait.max(left);
            }
        }
        Ok(if wait.is_zero() {
            Admission::Allowed
        } else {
            Admission::Limited { retry_after: wait }
        })
    }

    /// Logs that Redis failed, at most every [`WARN_EVERY_SECS`].
    fn warn(&self, error: &str) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY_SECS
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %error,
                "Redis unreachable: login rate limits are counted in this process for now"
            );
        }
    }
}

/// A `PTTL` answer as a duration (negative answers, "no key" or "no
/// expiry", count as zero).
fn millis(ttl: i64) -> Duration {
    Duration::from_millis(u64::try_from(ttl).unwrap_or(0))
}

impl LoginRateLimiter for RedisLoginLimiter {
    fn admit(&self, user: Option<&str>, ip: Option<&str>, now: Timestamp) -> Admission {
        self.try_admit(user, ip).unwrap_or_else(|e| {
            self.warn(&e);
            self.fallback.admit(user, ip, now)
        })
    }

    fn record_failure(&self, user: &str, now: Timestamp) {
        let key = self.key("user", user);
        let result = self
            .conn()
            .and_then(|mut c| self.count(&mut c, &key, self.limits.per_user.window));
        if let Err(e) = result {
            self.warn(&e);
            self.fallback.record_failure(user, now);
        }
    }

    fn reset(&self, user: &str) {
        self.fallback.reset(user);
        let key = self.key("user", user);
        let result = self
            .conn()
            .and_then(|mut c| c.del::<_, ()>(&key).map_err(|e| e.to_string()));
        if let Err(e) = result {
            self.warn(&e);
        }
    }
}

#[cfg(test)]
mod tests;
