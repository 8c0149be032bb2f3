//! [`RedisRevocationList`]: the revocation list shared through Redis, with
//! the database list as its durable record and fallback.
//!
//! * **Writes** go to the database first (the record every instance can
//!   rebuild from), then to Redis in one round trip: `SET <prefix>revoked:<key>
//!   <expiry> PXAT <expiry>` per entry (Redis drops the key when the last
//!   token it covers has expired) and one `PUBLISH <prefix>revocations`
//!   carrying the entries.
//! * **Every instance keeps a copy** of the entries in force, built from the
//!   database when its subscription starts and kept current by the
//!   published messages. `Cached` checks (every Bearer request and refresh)
//!   read only this copy: no network round trip. The copy is trusted only
//!   while the subscription is up and in sync.
//! * **`Fresh` checks** (introspection) ask Redis (`MGET`).
//! * **When Redis fails** (a call errs or times out, or the subscription
//!   drops), the copy stops being trusted at once, and checks either go to
//!   the database (`OnRedisFailure::Fallback`, fresh reads) or fail
//!   (`OnRedisFailure::FailClosed`; the caller then refuses the token). The
//!   subscriber reconnects with backoff, pushes every entry in force from the
//!   database back into Redis (so nothing recorded during the outage is
//!   missing, even after a Redis restart without persistence), rebuilds the
//!   copy, and only then trusts it again.
//! * **Lost state** (a `FLUSHALL`, eviction, a failover to a replica
//!   missing keys, a restart without persistence) is detected by a marker
//!   key, `<prefix>filled`, written with a run id each time an instance
//!   has filled Redis from the database. `Fresh` checks read it in the same
//!   `MGET` as the entries, and the subscriber looks for it every tick:
//!   when it is gone, Redis's entries cannot be trusted, the check answers
//!   from the database (whatever `on_failure` says: Redis is up, only its
//!   data is gone), and the subscriber fills Redis again from the database
//!   and writes a new marker. The database stays the record of every
//!   revocation.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use application::ports::{Consistency, Revocation, RevocationKey, RevocationList, StoreError};
use domain::Timestamp;

use crate::pool::{pool, TimedManager};
use crate::subscriber;

/// What to do while Redis cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRedisFailure {
    /// Answer from the database (fresh reads): slower, never wrong.
    #[default]
    Fallback,
    /// Refuse: checks fail, so Bearer requests and refreshes get 503 until
    /// Redis is back. Protects the database from the load Redis absorbed.
    FailClosed,
}

/// The Redis adapter's settings.
#[derive(Clone)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` URL (`REDIS_URL`).
    pub url: String,
    /// Prepended to every key and the channel, so that several deployments
    /// (or tests) can share one Redis.
    pub key_prefix: String,
    /// Deadline of every Redis call: connecting, each command, waiting for a
    /// pooled connection.
    pub timeout: Duration,
    pub on_failure: OnRedisFailure,
    pub pool_size: u32,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("on_failure", &self.on_failure)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// The revocation list in Redis. Cheap to clone; clones share everything.
/// The subscriber thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct RedisRevocationList {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisRevocationList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRevocationList")
            .field("in_sync", &self.inner.in_sync.load(Ordering::Relaxed))
            .field("on_failure", &self.inner.on_failure)
            .finish_non_exhaustive()
    }
}

/// Key and channel names under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    prefix: String,
    pub(crate) channel: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            channel: format!("{prefix}revocations"),
        }
    }

    pub(crate) fn key(&self, key: &RevocationKey) -> String {
        format!("{}revoked:{key}", self.prefix)
    }

    /// The marker of a filled list (see the module's documentation).
    pub(crate) fn marker(&self) -> String {
        format!("{}filled", self.prefix)
    }
}

pub(crate) struct Inner {
    pub(crate) pool: r2d2::Pool<TimedManager>,
    pub(crate) fallback: Arc<dyn RevocationList>,
    pub(crate) names: Names,
    pub(crate) on_failure: OnRedisFailure,
    pub(crate) timeout: Duration,
    /// Entries in force: key → expiry (ms since the epoch).
    pub(crate) copy: RwLock<HashMap<RevocationKey, i64>>,
    /// Whether `copy` may be trusted: the subscription is up and has
    /// caught up with the database.
    pub(crate) in_sync: AtomicBool,
    /// A write to Redis failed or was skipped: push everything again.
    pub(crate) needs_push: AtomicBool,
    /// Whether Redis answered last time anyone tried (a write, or the
    /// subscriber connecting). While it does not, writes skip it instead of
    /// each waiting out the timeout; the subscriber pushes them later.
    pub(crate) reachable: AtomicBool,
    /// Redis answers but lost its entries (the marker is gone) and has not
    /// been filled again yet: checks go to the database, whatever
    /// `on_failure` says.
    pub(crate) state_lost: AtomicBool,
    /// Signalled whenever `in_sync` becomes true (start-up waits on it).
    pub(crate) synced: (Mutex<()>, Condvar),
}

impl RedisRevocationList {
    /// Connects to Redis (without failing when it is down: the list then
    /// works as `on_failure` says until it is up) and starts the subscriber.
    /// Waits up to a few timeouts for the first sync, so that a healthy
    /// start serves its first request from the copy.
    ///
    /// # Errors
    /// [`StoreError`] naming `REDIS_URL` when the URL is not usable.
    pub fn new(config: RedisConfig, fallback: Arc<dyn RevocationList>) -> Result<Self, StoreError> {
        if config.timeout.is_zero() {
            return Err(StoreError(
                "the Redis timeout must be longer than zero".to_owned(),
            ));
        }
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| StoreError(format!("REDIS_URL is not a usable Redis URL: {}", e)))?;
        let manager = TimedManager::new(client.clone(), config.timeout);
        let inner = Arc::new(Inner {
            pool: pool(manager, config.pool_size),
            fallback,
            names: Names::new(&config.key_prefix),
            on_failure: config.on_failure,
            timeout: config.timeout,
            copy: RwLock::new(HashMap::new()),
            in_sync: AtomicBool::new(false),
            needs_push: AtomicBool::new(false),
            reachable: AtomicBool::new(true),
            state_lost: AtomicBool::new(false),
            synced: (Mutex::new(()), Condvar::new()),
        });
        subscriber::spawn(
            Arc::downgrade(&inner),
            TimedManager::new(client, config.timeout),
        );
        let list = Self { inner };
        list.wait_until_in_sync(config.timeout.saturating_mul(4));
        Ok(list)
    }

    /// Whether the in-memory copy is trusted right now (for readiness
    /// checks and tests).
    pub fn in_sync(&self) -> bool {
        self.inner.in_sync.load(Ordering::Acquire)
    }

    /// Waits until the copy is in sync, at most `timeout`; returns whether
    /// it is.
    pub fn wait_until_in_sync(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, signal) = &self.inner.synced;
        let Ok(mut guard) = lock.lock() else {
            return self.in_sync();
        };
        while !self.in_sync() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            guard = match signal.wait_timeout(guard, left.min(Duration::from_millis(50))) {
                Ok((g, _)) => g,
                Err(_) => return self.in_sync(),
            };
        }
        true
    }

    /// Pings Redis through the pool (for readiness checks).
    ///
    /// # Errors
    /// When Redis does not answer in time.
    pub fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.inner.conn()?;
        redis::cmd("PING")
            .query::<()>(&mut *conn)
            .map_err(|e| StoreError(format!("redis: {}", e)))
    }
}

impl Inner {
    fn conn(&self) -> Result<r2d2::PooledConnection<TimedManager>, StoreError> {
        self.pool
            .get_timeout(self.timeout)
            .map_err(|_| StoreError("redis: no connection".to_owned()))
    }

    /// Stops trusting the copy; the subscriber catches up before trusting
    /// it again.
    pub(crate) fn lost_sync(&self, why: &str) {
        if self.in_sync.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                why,
                on_failure = ?self.on_failure,
                "redis revocation list out of sync; answering from the database or refusing as configured"
            );
        }
    }

    pub(crate) fn remember(&self, entries: &[Revocation]) {
        if let Ok(mut copy) = self.copy.write() {
            for e in entries {
                let expiry = copy.entry(e.key).or_insert(e.expires_at.as_millis());
                *expiry = (*expiry).max(e.expires_at.as_millis());
            }
        }
    }

    /// `SET ... PXAT` for each entry and one `PUBLISH` for all, in one
    /// round trip.
    pub(crate) fn push(&self, entries: &[Revocation]) -> Result<(), StoreError> {
        // Redis refuses an expiry that has passed; such an entry covers
        // nothing any more anyway.
        let now = wall_clock();
        let entries: Vec<Revocation> = entries
            .iter()
            .filter(|e| e.expires_at.as_millis() > now)
            .copied()
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        let mut pipe = redis::pipe();
        for e in &entries {
            let expiry = e.expires_at.as_millis();
            pipe.cmd("SET")
                .arg(self.names.key(&e.key))
                .arg(expiry)
                .arg("PXAT")
                .arg(expiry)
                .ignore();
        }
        pipe.cmd("PUBLISH")
            .arg(&self.names.channel)
            .arg(encode(&entries))
            .ignore();
        pipe.query::<()>(&mut *conn)
            .map_err(|e| StoreError(format!("redis: {}", e)))
    }

    fn cached(&self, keys: &[RevocationKey], now: Timestamp) -> Option<Option<RevocationKey>> {
        if !self.in_sync.load(Ordering::Acquire) {
            return None;
        }
        let copy = self.copy.read().ok()?;
        Some(
            keys.iter()
                .copied()
                .find(|k| copy.get(k).is_some_and(|e| *e > now.as_millis())),
        )
    }

    /// Asks Redis. `Ok(None)` when Redis's entries cannot be trusted (the
    /// marker of a filled list is gone): the caller asks the database.
    fn fresh(
        &self,
        keys: &[RevocationKey],
        now: Timestamp,
    ) -> Result<Option<Option<RevocationKey>>, StoreError> {
        let mut conn = self.conn()?;
        let mut names: Vec<String> = keys.iter().map(|k| self.names.key(k)).collect();
        names.push(self.names.marker());
        let mut values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&names)
            .query(&mut *conn)
            .map_err(|e| StoreError(format!("redis: {}", e)))?;
        if values.pop().flatten().is_none() {
            self.lost_state();
            return Ok(None);
        }
        Ok(Some(
            keys.iter()
                .zip(values)
                .find(|(_, v)| {
                    v.as_deref()
                        .and_then(|v| v.parse::<i64>().ok())
                        .is_some_and(|expiry| expiry > now.as_millis())
                })
                .map(|(k, _)| *k),
        ))
    }

    /// Redis answers but its entries are gone: stop trusting it until the
    /// subscriber has filled it again.
    pub(crate) fn lost_state(&self) {
        self.state_lost.store(true, Ordering::Release);
        self.needs_push.store(true, Ordering::Release);
        if self.in_sync.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                marker = %self.names.marker(),
                "the revocation entries in redis are gone (flush, eviction or failover): \
                 answering from the database and filling redis again"
            );
        }
    }

    /// Writes a new marker: Redis holds every entry in force.
    pub(crate) fn mark_filled(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        redis::cmd("SET")
            .arg(self.names.marker())
            .arg(run_id())
            .query::<()>(&mut *conn)
            .map_err(|e| StoreError(format!("redis: {}", e)))
    }

    /// Whether the marker is there.
    pub(crate) fn is_filled(&self) -> Result<bool, StoreError> {
        let mut conn = self.conn()?;
        redis::cmd("EXISTS")
            .arg(self.names.marker())
            .query::<bool>(&mut *conn)
            .map_err(|e| StoreError(format!("redis: {}", e)))
    }

    /// The answer while Redis cannot be used.
    fn degraded(
        &self,
        keys: &[RevocationKey],
        now: Timestamp,
    ) -> Result<Option<RevocationKey>, StoreError> {
        if self.state_lost.load(Ordering::Acquire) {
            return self.fallback.check(keys, now, Consistency::Fresh);
        }
        match self.on_failure {
            OnRedisFailure::Fallback => self.fallback.check(keys, now, Consistency::Fresh),
            OnRedisFailure::FailClosed => Err(StoreError(
                "revocation list unavailable: Redis cannot be reached and \
                 TOKENWARDEN_REDIS_FAILURE is fail_closed"
                    .to_owned(),
            )),
        }
    }
}

/// A value unlikely to repeat: which fill wrote the marker (for the logs
/// and `redis-cli`).
fn run_id() -> String {
    format!("{}-{}", std::process::id(), wall_clock())
}

pub(crate) fn wall_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The message published for `entries`: one `<key> <expiry ms>` per line.
pub(crate) fn encode(entries: &[Revocation]) -> String {
    entries
        .iter()
        .map(|e| format!("{} {}", e.key, e.expires_at.as_millis()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The entries of a published message; malformed lines are skipped.
pub(crate) fn decode(payload: &str) -> Vec<Revocation> {
    payload
        .lines()
        .filter_map(|line| {
            let (key, expiry) = line.split_once(' ')?;
            Some(Revocation {
                key: key.parse().ok()?,
                expires_at: Timestamp::from_millis(expiry.parse().ok()?),
            })
        })
        .collect()
}

impl RevocationList for RedisRevocationList {
    fn revoke(&self, entries: &[Revocation]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        // The durable record first: without it nothing happened.
        inner.fallback.revoke(entries)?;
        inner.remember(entries);
        if !inner.reachable.load(Ordering::Acquire) {
            // The subscriber pushes everything in force once Redis is back.
            inner.needs_push.store(true, Ordering::Release);
            return Ok(());
        }
        // Pushed even while this instance's own copy is catching up: the
        // other instances may well be in sync and must hear of it now.
        if let Err(error) = inner.push(entries) {
            tracing::warn!(%error, "revocation not written to redis; it is in the database and will be pushed again");
            inner.reachable.store(false, Ordering::Release);
            inner.needs_push.store(true, Ordering::Release);
            inner.lost_sync("a write to redis failed");
        }
        Ok(())
    }

    fn check(
        &self,
        keys: &[RevocationKey],
        now: Timestamp,
        consistency: Consistency,
    ) -> Result<Option<RevocationKey>, StoreError> {
        let inner = &self.inner;
        match consistency {
            Consistency::Cached => match inner.cached(keys, now) {
                Some(answer) => Ok(answer),
                None => inner.degraded(keys, now),
            },
            Consistency::Fresh => {
                if keys.is_empty() {
                    return Ok(None);
                }
                if inner.in_sync.load(Ordering::Acquire) {
                    match inner.fresh(keys, now) {
                        Ok(Some(answer)) => return Ok(answer),
                        // Redis is up but lost its entries: the database.
                        Ok(None) => return inner.fallback.check(keys, now, Consistency::Fresh),
                        Err(error) => {
                            tracing::debug!(%error, "fresh redis check failed");
                            inner.lost_sync("a read from redis failed");
                        }
                    }
                }
                inner.degraded(keys, now)
            }
        }
    }

    fn live(&self, now: Timestamp) -> Result<Vec<Revocation>, StoreError> {
        self.inner.fallback.live(now)
    }
}

/// Lets the subscriber reach the list without keeping it alive.
pub(crate) type WeakInner = Weak<Inner>;

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{AccessTokenId, SessionId};

    #[test]
    fn messages_round_trip_and_garbage_is_skipped() {
        let entries = vec![
            Revocation {
                key: RevocationKey::Session(SessionId::from_random_bytes([1; 16])),
                expires_at: Timestamp::from_millis(1_700_000_000_123),
            },
            Revocation {
                key: RevocationKey::AccessToken(AccessTokenId::from_random_bytes([2; 16])),
                expires_at: Timestamp::from_millis(5),
            },
        ];
        assert_eq!(decode(&encode(&entries)), entries);
        let noisy = format!("garbage\n{}\nsession:x 5\n jti: 7", encode(&entries[..1]));
        assert_eq!(decode(&noisy), entries[..1].to_vec());
    }

    #[test]
    fn keys_and_channel_live_under_the_prefix() {
        let names = Names::new("tw:test:");
        let key = RevocationKey::Session(SessionId::from_random_bytes([1; 16]));
        assert_eq!(names.key(&key), format!("tw:test:revoked:{key}"));
        assert_eq!(names.channel, "tw:test:revocations");
    }
}
