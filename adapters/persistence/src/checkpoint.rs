//! Copying SQLite's write-ahead log back into the database file off the
//! request path.
//!
//! In WAL mode a commit only appends pages to the log (no sync under
//! `synchronous = NORMAL`). Left to SQLite, the commit that grows the log
//! past `wal_autocheckpoint` pages then copies it back into the database
//! and syncs both files, in that request, and the sync waits for the disk
//! to take every page written since the last one: on a virtual disk most of
//! a refresh's time was spent there. A [`Checkpointer`] thread does it
//! instead, every [`INTERVAL`], on a connection of its own, as a `PASSIVE`
//! checkpoint (it never waits for readers or writers), and restarts the log
//! once it is long (see [`checkpoint`]). Request connections
//! still checkpoint by themselves once the log passes their
//! `wal_autocheckpoint` of 10 000 pages (see `connection.rs`): if the
//! thread stops or falls behind, the log stays bounded.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::sql_types::Integer;
use diesel::{sql_query, Connection, QueryableByName, RunQueryDsl, SqliteConnection};

/// How often the thread checkpoints: about a megabyte of log per
/// 50 refreshes a second, never more than a few hundred milliseconds of
/// writes.
pub(crate) const INTERVAL: Duration = Duration::from_millis(100);

/// Stops its thread when dropped (with the last clone of its `Database`).
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
}

impl Checkpointer {
    /// Starts checkpointing the SQLite file at `path`, on a connection set
    /// up with `pragmas`. `None` (with a warning) when that connection or
    /// thread cannot be had: request connections then checkpoint by
    /// themselves.
    pub(crate) fn start(path: &str, pragmas: &str) -> Option<Self> {
        let mut conn = match SqliteConnection::establish(path)
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                c.batch_execute(pragmas)
                    .map(|()| c)
                    .map_err(|e| e.to_string())
            }) {
            Ok(conn) => conn,
            Err(error) => {
                tracing::warn!(%error, "no checkpoint thread: requests checkpoint the SQLite log");
                return None;
            }
        };
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn(move || {
                let (lock, wake) = &*signal;
                let mut stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                loop {
                    stopped = wake
                        .wait_timeout(stopped, INTERVAL)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                    if *stopped {
                        return;
                    }
                    // Not under the lock: `drop` must not wait for it.
                    drop(stopped);
                    if let Err(error) = checkpoint(&mut conn) {
                        tracing::debug!(%error, "SQLite checkpoint failed; retrying");
                    }
                    stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                }
            });
        match thread {
            Ok(_detached) => Some(Self { stop }),
            Err(error) => {
                tracing::warn!(%error, "no checkpoint thread: requests checkpoint the SQLite log");
                None
            }
        }
    }
}

/// What `PRAGMA wal_checkpoint` reports.
#[derive(QueryableByName)]
struct Checkpointed {
    /// Pages in the log.
    #[diesel(sql_type = Integer)]
    log: i32,
}

/// A log this long (pages) is restarted.
const RESTART_PAGES: i32 = 1_000;

/// Copies the log into the database without waiting for anyone
/// (`PASSIVE`). Under steady writes that never lets the log start over
/// (a writer appends before the copy ends), so a long log is then
/// restarted (`RESTART`): that copies the little written meanwhile and
/// holds writers off for it, then the next commit writes the log from its
/// beginning again.
fn checkpoint(conn: &mut SqliteConnection) -> diesel::QueryResult<()> {
    let passive: Checkpointed = sql_query("PRAGMA wal_checkpoint(PASSIVE)").get_result(conn)?;
    if passive.log >= RESTART_PAGES {
        sql_query("PRAGMA wal_checkpoint(RESTART)").execute(conn)?;
    }
    Ok(())
}

impl Drop for Checkpointer {
    /// Tells the thread to stop; it does so at its next wake-up, which this
    /// brings forward. Not joined: the last clone of a `Database` may drop
    /// on an async worker, which must not wait for a checkpoint under way.
    fn drop(&mut self) {
        let (lock, wake) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
    }
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpointer").finish_non_exhaustive()
    }
}
