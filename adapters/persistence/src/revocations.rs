//! The revocation list in the database: the default backend, and the
//! durable record behind the Redis one.
//!
//! One table, `revocations`, keyed by the entry's storage form
//! (`session:<uuid>`, `jti:<uuid>`). Expired entries are ignored by every
//! read and deleted by the cleanup job.
//!
//! [`DbRevocationList`] keeps a copy of the entries in force in memory, so
//! that a [`Consistency::Cached`] check is a hash lookup rather than a
//! query. A thread polls the table for entries recorded since the last poll
//! (every [`DbRevocationList::POLL_EVERY`]); the copy is trusted only while
//! its last successful poll *started* less than [`DbRevocationList::TRUST_FOR`]
//! ago, otherwise checks read the table. So an entry committed by any
//! instance at `t` is honoured by every instance from `t + TRUST_FOR` at the
//! latest, and by the instance that recorded it at once.
//!
//! `created_at` is the database's clock when the row was written, and each
//! poll asks for rows written since the database's clock at the start of
//! the previous successful poll, minus [`DbRevocationList::POLL_OVERLAP`]:
//! a row written just before that instant but committed just after it is
//! still picked up, and instances' own clocks play no part. An idle table
//! costs one empty indexed query per poll.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use application::ports::{Consistency, Revocation, RevocationKey, RevocationList, StoreError};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use domain::Timestamp;

use crate::connection::{AnyConnection, Database};
use crate::error::{store, DbError};
use crate::schema::revocations;
use crate::transaction::write_transaction;

/// The revocation list over the `revocations` table, with an in-memory copy.
/// Cheap to clone; clones share the copy.
#[derive(Clone)]
pub struct DbRevocationList {
    shared: Arc<Shared>,
}

struct Shared {
    db: Database,
    mirror: RwLock<Mirror>,
    /// Whether the last poll failed (so that a failing database is logged
    /// once, not four times a second).
    failing: AtomicBool,
}

#[derive(Default)]
struct Mirror {
    entries: HashMap<RevocationKey, i64>,
    /// Where the next poll starts reading (`created_at`, database clock).
    next_since: Option<i64>,
    /// When the last successful poll started.
    synced_at: Option<Instant>,
}

impl std::fmt::Debug for DbRevocationList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbRevocationList").finish_non_exhaustive()
    }
}

impl DbRevocationList {
    /// How often the table is polled for other instances' entries.
    pub const POLL_EVERY: Duration = Duration::from_millis(250);
    /// How long a copy is trusted after the poll that made it started.
    pub const TRUST_FOR: Duration = Duration::from_secs(1);
    /// How far before the previous poll's start the next one looks: longer
    /// than any revocation transaction takes from its insert to its commit.
    pub const POLL_OVERLAP: Duration = Duration::from_secs(2);

    /// The list over `db`'s table, with a polling thread that ends when the
    /// last clone is dropped.
    pub fn new(db: Database) -> Self {
        let list = Self::without_polling(db);
        let _ = list.shared.poll();
        let weak = Arc::downgrade(&list.shared);
        let spawned = std::thread::Builder::new()
            .name("tw-revocations-poll".to_owned())
            .spawn(move || poll_until_dropped(&weak));
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the revocation poller; every check reads the table");
        }
        list
    }

    /// The list without the polling thread: `Cached` checks read the table
    /// too. For the Redis adapter's fallback, which must be fresh anyway.
    pub fn without_polling(db: Database) -> Self {
        Self {
            shared: Arc::new(Shared {
                db,
                mirror: RwLock::new(Mirror::default()),
                failing: AtomicBool::new(false),
            }),
        }
    }
}

fn poll_until_dropped(shared: &Weak<Shared>) {
    loop {
        std::thread::sleep(DbRevocationList::POLL_EVERY);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match shared.poll() {
            Ok(()) => {
                if shared.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("revocation list polling works again");
                }
            }
            Err(error) => {
                if !shared.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "revocation list polling failed; checks read the table");
                }
            }
        }
    }
}

fn wall_clock() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[derive(Queryable)]
struct EntryRow {
    key: String,
    expires_at: i64,
}

/// The database's clock in milliseconds since the epoch, as an SQL
/// expression per backend.
const PG_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";
const SQLITE_NOW_MS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

#[derive(QueryableByName)]
struct DbNow {
    #[diesel(sql_type = BigInt)]
    now_ms: i64,
}

fn database_clock(conn: &mut AnyConnection) -> Result<i64, DbError> {
    Ok(match conn {
        AnyConnection::Postgresql(pg) => {
            diesel::sql_query(format!("SELECT {PG_NOW_MS} AS now_ms")).get_result::<DbNow>(pg)?
        }
        AnyConnection::Sqlite(sqlite) => {
            diesel::sql_query(format!("SELECT {SQLITE_NOW_MS} AS now_ms"))
                .get_result::<DbNow>(sqlite)?
        }
    }
    .now_ms)
}

/// Stored keys that are not ours are skipped (and logged): they can only
/// come from outside the service.
fn parse_key(stored: &str) -> Option<RevocationKey> {
    let parsed = stored.parse().ok();
    if parsed.is_none() {
        tracing::warn!("ignoring a malformed key in the revocations table");
    }
    parsed
}

impl Shared {
    /// Merges what was recorded since the last poll into the copy.
    fn poll(&self) -> Result<(), DbError> {
        let started = Instant::now();
        let now = wall_clock();
        let since = self
            .mirror
            .read()
            .ok()
            .and_then(|c| c.next_since)
            .unwrap_or(i64::MIN);
        let mut conn = self.db.conn()?;
        let db_now = database_clock(&mut conn)?;
        let rows: Vec<EntryRow> = revocations::table
            .filter(revocations::created_at.ge(since))
            .filter(revocations::expires_at.gt(now))
            .select((revocations::key, revocations::expires_at))
            .load(&mut conn)?;
        drop(conn);
        let mut mirror = self
            .mirror
            .write()
            .map_err(|_| DbError::Corrupt("revocation copy poisoned"))?;
        mirror.entries.retain(|_, expires_at| *expires_at > now);
        for row in rows {
            if let Some(key) = parse_key(&row.key) {
                let expires_at = mirror.entries.entry(key).or_insert(row.expires_at);
                *expires_at = (*expires_at).max(row.expires_at);
            }
        }
        mirror.next_since = Some(db_now.saturating_sub(millis(DbRevocationList::POLL_OVERLAP)));
        mirror.synced_at = Some(started);
        Ok(())
    }

    /// The copy's answer, or `None` when the copy is not trusted.
    fn cached(&self, keys: &[RevocationKey], now: Timestamp) -> Option<Option<RevocationKey>> {
        let mirror = self.mirror.read().ok()?;
        let trusted = mirror
            .synced_at
            .is_some_and(|at| at.elapsed() < DbRevocationList::TRUST_FOR);
        if !trusted {
            return None;
        }
        Some(first_listed(&mirror.entries, keys, now))
    }

    fn remember(&self, entries: &[Revocation]) {
        if let Ok(mut mirror) = self.mirror.write() {
            for e in entries {
                let expires_at = mirror
                    .entries
                    .entry(e.key)
                    .or_insert(e.expires_at.as_millis());
                *expires_at = (*expires_at).max(e.expires_at.as_millis());
            }
        }
    }

    fn record(&self, entries: &[Revocation]) -> Result<(), DbError> {
        let mut conn = self.db.conn()?;
        write_transaction(&mut conn, self.db.write_lock(), |conn| {
            for e in entries {
                upsert(conn, &e.key.to_string(), e.expires_at.as_millis())?;
            }
            Ok(())
        })
    }

    fn read(
        &self,
        keys: &[RevocationKey],
        now: Timestamp,
    ) -> Result<Option<RevocationKey>, DbError> {
        let stored: Vec<String> = keys.iter().map(ToString::to_string).collect();
        let mut conn = self.db.conn()?;
        let found: Vec<(String, i64)> = revocations::table
            .filter(revocations::key.eq_any(&stored))
            .filter(revocations::expires_at.gt(now.as_millis()))
            .select((revocations::key, revocations::expires_at))
            .load(&mut conn)?;
        let found: HashMap<RevocationKey, i64> = found
            .iter()
            .filter_map(|(k, e)| parse_key(k).map(|k| (k, *e)))
            .collect();
        Ok(first_listed(&found, keys, now))
    }

    fn live(&self, now: Timestamp) -> Result<Vec<Revocation>, DbError> {
        let mut conn = self.db.conn()?;
        let rows: Vec<(String, i64)> = revocations::table
            .filter(revocations::expires_at.gt(now.as_millis()))
            .select((revocations::key, revocations::expires_at))
            .load(&mut conn)?;
        Ok(rows
            .iter()
            .filter_map(|(k, e)| {
                parse_key(k).map(|key| Revocation {
                    key,
                    expires_at: Timestamp::from_millis(*e),
                })
            })
            .collect())
    }
}

/// The first of `keys` (in their order) in force at `now` in `entries`.
fn first_listed(
    entries: &HashMap<RevocationKey, i64>,
    keys: &[RevocationKey],
    now: Timestamp,
) -> Option<RevocationKey> {
    keys.iter()
        .copied()
        .find(|k| entries.get(k).is_some_and(|e| *e > now.as_millis()))
}

/// Inserts an entry, or keeps the later expiry of the two; either way
/// `created_at` becomes the database's clock now, so that pollers see the
/// change.
fn upsert(conn: &mut AnyConnection, key: &str, expires_at: i64) -> Result<(), DbError> {
    match conn {
        AnyConnection::Postgresql(pg) => {
            diesel::sql_query(format!(
                "INSERT INTO revocations (key, expires_at, created_at) \
                 VALUES ($1, $2, {PG_NOW_MS}) \
                 ON CONFLICT (key) DO UPDATE SET \
                 expires_at = GREATEST(revocations.expires_at, EXCLUDED.expires_at), \
                 created_at = EXCLUDED.created_at"
            ))
            .bind::<Text, _>(key)
            .bind::<BigInt, _>(expires_at)
            .execute(pg)?;
        }
        AnyConnection::Sqlite(sqlite) => {
            diesel::sql_query(format!(
                "INSERT INTO revocations (key, expires_at, created_at) \
                 VALUES (?, ?, {SQLITE_NOW_MS}) \
                 ON CONFLICT (key) DO UPDATE SET \
                 expires_at = MAX(revocations.expires_at, excluded.expires_at), \
                 created_at = excluded.created_at"
            ))
            .bind::<Text, _>(key)
            .bind::<BigInt, _>(expires_at)
            .execute(sqlite)?;
        }
    }
    Ok(())
}

impl RevocationList for DbRevocationList {
    fn revoke(&self, entries: &[Revocation]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.shared
            .record(entries)
            .map_err(store("record revocations"))?;
        self.shared.remember(entries);
        Ok(())
    }

    fn check(
        &self,
        keys: &[RevocationKey],
        now: Timestamp,
        consistency: Consistency,
    ) -> Result<Option<RevocationKey>, StoreError> {
        if consistency == Consistency::Cached {
            if let Some(answer) = self.shared.cached(keys, now) {
                return Ok(answer);
            }
        }
        self.shared
            .read(keys, now)
            .map_err(store("check revocations"))
    }

    fn live(&self, now: Timestamp) -> Result<Vec<Revocation>, StoreError> {
        self.shared.live(now).map_err(store("list revocations"))
    }
}
