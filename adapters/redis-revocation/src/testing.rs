//! Test support (feature `testing`): the shared test Redis, a Redis server
//! of one's own to stop, freeze, flush and restart, and an in-memory
//! revocation list.
//!
//! Tests that need Redis read `TEST_REDIS_URL`. Without it they print why
//! and skip, unless `TOKENWARDEN_TEST_REQUIRE_SERVICES=1` (CI), where they
//! panic. Each test takes a unique key prefix, so tests sharing one Redis
//! never see each other's entries.
//!
//! Failures to set up panic: this is test code.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use application::ports::{Consistency, Revocation, RevocationKey, RevocationList, StoreError};
use domain::Timestamp;

const URL_VAR: &str = "TEST_REDIS_URL";
const REQUIRE_VAR: &str = "TOKENWARDEN_TEST_REQUIRE_SERVICES";

fn required() -> bool {
    std::env::var(REQUIRE_VAR).as_deref() == Ok("1")
}

/// The shared test Redis (`TEST_REDIS_URL`), or `None` after saying why.
///
/// # Panics
/// When it is unset but `TOKENWARDEN_TEST_REQUIRE_SERVICES=1`.
pub fn test_redis_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if required() {
                panic!("{URL_VAR} is not set, but {REQUIRE_VAR}=1 requires the Redis tests to run");
            }
            eprintln!(
                "skipping a Redis test: {URL_VAR} is not set (e.g. {URL_VAR}=redis://127.0.0.1:6379)"
            );
            None
        }
    }
}

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "tw:test:{}:{nanos:x}:{}:",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A `redis-server` child process of one's own, to stop, freeze and start again
/// (never the shared one). Nothing is persisted: a restart starts empty.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port, or `None` (after saying why) when there is
    /// no `redis-server` here.
    ///
    /// # Panics
    /// When `redis-server` is missing but `TOKENWARDEN_TEST_REQUIRE_SERVICES=1`,
    /// or when it does not come up.
    pub fn start() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let mut server = Self { port, child: None };
        if !server.spawn() {
            if required() {
                panic!("redis-server is not installed, but {REQUIRE_VAR}=1 requires the Redis tests to run");
            }
            eprintln!("skipping a Redis test: redis-server is not installed");
            return None;
        }
        Some(server)
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            return false;
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let ok = redis::Client::open(self.url().as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok();
            if ok {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not come up", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `FLUSHALL` on this server (a test's own: never the shared one), as
    /// an operator's mistake, an eviction or a failover would lose keys.
    ///
    /// # Panics
    /// When the server does not answer.
    pub fn flush_all(&self) {
        let flushed = redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .and_then(|mut conn| redis::cmd("FLUSHALL").query::<()>(&mut conn));
        if let Err(e) = flushed {
            panic!("FLUSHALL on redis-server port {} failed: {e}", self.port);
        }
    }

    /// Freezes the server with `SIGSTOP`: connections stay open, nothing
    /// answers (as a stalled host or a long pause would). [`Self::thaw`]
    /// resumes it; dropping it ends it either way.
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a server frozen by [`Self::freeze`] (`SIGCONT`).
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let Some(child) = &self.child else {
            panic!("redis-server on port {} is not running", self.port);
        };
        let sent = Command::new("kill")
            .args([which, &child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(sent, "kill {which} redis-server on port {}", self.port);
    }

    /// Starts it again on the same port, empty.
    ///
    /// # Panics
    /// When it does not come up.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "redis-server could not be started again");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A revocation list in memory: the stand-in for the database list behind
/// the Redis one.
#[derive(Debug, Default)]
pub struct MemoryRevocationList {
    entries: Mutex<HashMap<RevocationKey, i64>>,
}

impl RevocationList for MemoryRevocationList {
    fn revoke(&self, entries: &[Revocation]) -> Result<(), StoreError> {
        let mut map = self
            .entries
            .lock()
            .map_err(|_| StoreError("poisoned".to_owned()))?;
        for e in entries {
            let expiry = map.entry(e.key).or_insert(e.expires_at.as_millis());
            *expiry = (*expiry).max(e.expires_at.as_millis());
        }
        Ok(())
    }

    fn check(
        &self,
        keys: &[RevocationKey],
        now: Timestamp,
        _consistency: Consistency,
    ) -> Result<Option<RevocationKey>, StoreError> {
        let map = self
            .entries
            .lock()
            .map_err(|_| StoreError("poisoned".to_owned()))?;
        Ok(keys
            .iter()
            .copied()
            .find(|k| map.get(k).is_some_and(|e| *e > now.as_millis())))
    }

    fn live(&self, now: Timestamp) -> Result<Vec<Revocation>, StoreError> {
        let map = self
            .entries
            .lock()
            .map_err(|_| StoreError("poisoned".to_owned()))?;
        Ok(map
            .iter()
            .filter(|(_, e)| **e > now.as_millis())
            .map(|(k, e)| Revocation {
                key: *k,
                expires_at: Timestamp::from_millis(*e),
            })
            .collect())
    }
}
