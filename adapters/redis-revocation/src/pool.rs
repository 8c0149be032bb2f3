//! An r2d2 pool of Redis connections on which every call has a deadline:
//! connecting, writing a command and reading its reply each give up after
//! the configured timeout, and so does waiting for a pooled connection.
//! A Redis that is down or black-holed makes a call fail, never hang.

use std::fmt;
use std::time::Duration;

use redis::ConnectionLike as _;

/// Opens connections with a connect timeout and sets read and write
/// timeouts on each (the `redis` crate's own `r2d2` manager sets none).
pub struct TimedManager {
    client: redis::Client,
    timeout: Duration,
}

impl fmt::Debug for TimedManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("TimedManager")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TimedManager {
    pub fn new(client: redis::Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    /// A connection with the manager's timeouts, outside the pool.
    ///
    /// # Errors
    /// When Redis cannot be reached in time.
    pub fn open(&self) -> redis::RedisResult<redis::Connection> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }
}

impl r2d2::ManageConnection for TimedManager {
    type Connection = redis::Connection;
    type Error = redis::RedisError;

    fn connect(&self) -> Result<Self::Connection, Self::Error> {
        self.open()
    }

    fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        redis::cmd("PING").query::<()>(conn)
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        !conn.is_open()
    }
}

/// Failed connection attempts are retried by r2d2 in the background while
/// Redis is down; they are expected then, and the adapter reports the
/// outage itself, once.
#[derive(Debug)]
struct QuietErrors;

impl r2d2::HandleError<redis::RedisError> for QuietErrors {
    fn handle_error(&self, error: redis::RedisError) {
        tracing::debug!(%error, "redis connection attempt failed");
    }
}

/// A pool of at most `size` connections. It is built without connecting,
/// so a Redis that is down at start does not stop the server; connections
/// are not pinged on checkout (a broken one fails its command, which the
/// caller handles, and is then discarded).
pub fn pool(manager: TimedManager, size: u32) -> r2d2::Pool<TimedManager> {
    let timeout = manager.timeout;
    r2d2::Pool::builder()
        .max_size(size.max(1))
        .min_idle(Some(1))
        .connection_timeout(timeout)
        .test_on_check_out(false)
        .error_handler(Box::new(QuietErrors))
        .build_unchecked(manager)
}

/// Connects once to the Redis at `url` and `PING`s it, each step within
/// `timeout`, outside any pool: a check that reports why Redis cannot be
/// used (`tokenwarden config check`), where the pool would only time out.
///
/// # Errors
/// Why Redis could not be reached or did not answer; never the URL (it may
/// carry a password).
pub fn ping_once(url: &str, timeout: Duration) -> Result<(), String> {
    let client =
        redis::Client::open(url).map_err(|e| format!("not a Redis URL ({:?})", e.kind()))?;
    let mut conn = TimedManager::new(client, timeout)
        .open()
        .map_err(|e| format!("cannot connect: {e}"))?;
    redis::cmd("PING")
        .query::<()>(&mut conn)
        .map_err(|e| format!("PING failed: {e}"))
}
