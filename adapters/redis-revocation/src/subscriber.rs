//! The subscriber thread: keeps the in-memory copy of the list current and
//! decides when it may be trusted.
//!
//! One subscription at a time:
//! 1. connect (with the timeout) and `SUBSCRIBE` to the channel;
//! 2. catch up: read every entry in force from the database, push them all
//!    into Redis (and publish them, for instances that never lost their
//!    subscription) and merge them into the copy. Anything published after
//!    step 1 arrives as a message, anything recorded before step 2 is in
//!    the database: nothing falls between the two;
//! 3. mark the copy in sync, and apply messages as they come.
//!
//! Every [`TICK`] without a message it pings Redis over the subscription
//! (a silent network partition is noticed within about two ticks), drops
//! expired entries, checks that the marker of a filled list is still there
//! (a flush or a failover removes it), and catches up again if it is gone
//! or a write failed meanwhile. Any
//! error marks the copy out of sync and starts over after a backoff.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use application::ports::Revocation;
use domain::Timestamp;

use crate::pool::TimedManager;
use crate::revocation::{decode, wall_clock, Inner, WeakInner};

/// How long the subscriber waits for a message before doing its chores.
pub(crate) const TICK: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Entries pushed per round trip when catching up.
const PUSH_CHUNK: usize = 500;

pub(crate) fn spawn(inner: WeakInner, manager: TimedManager) {
    let spawned = std::thread::Builder::new()
        .name("tw-redis-revocations".to_owned())
        .spawn(move || run(&inner, &manager));
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the redis subscriber; the list answers as if redis were down");
    }
}

/// Why a subscription ended.
enum Ended {
    /// The list was dropped: the thread ends.
    Dropped,
    Failed(String),
}

fn run(inner: &WeakInner, manager: &TimedManager) {
    let mut backoff = Duration::from_millis(100);
    let mut reported = false;
    loop {
        let started = Instant::now();
        match subscription(inner, manager) {
            Ended::Dropped => return,
            Ended::Failed(why) => {
                let Some(list) = inner.upgrade() else {
                    return;
                };
                list.reachable.store(false, Ordering::Release);
                list.lost_sync(&why);
                if !reported {
                    tracing::warn!(why, "redis subscription lost; reconnecting");
                    reported = true;
                }
            }
        }
        // A subscription that lasted a while was healthy: start the
        // backoff over.
        if started.elapsed() > MAX_BACKOFF {
            backoff = Duration::from_millis(100);
            reported = false;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn failed(e: impl std::fmt::Display) -> Ended {
    Ended::Failed(e.to_string())
}

fn subscription(weak: &WeakInner, manager: &TimedManager) -> Ended {
    let mut conn = match manager.open() {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    if let Err(e) = conn.set_read_timeout(Some(TICK)) {
        return failed(e);
    }
    let channel = match weak.upgrade() {
        Some(inner) => inner.names.channel.clone(),
        None => return Ended::Dropped,
    };
    let mut pubsub = conn.as_pubsub();
    if let Err(e) = pubsub.subscribe(&channel) {
        return failed(e);
    }
    if let Some(inner) = weak.upgrade() {
        inner.reachable.store(true, Ordering::Release);
    }
    match weak.upgrade() {
        Some(inner) => {
            if let Err(why) = catch_up(&inner) {
                return Ended::Failed(why);
            }
            tracing::info!("redis revocation list in sync");
        }
        None => return Ended::Dropped,
    }
    let mut chores_done = Instant::now();
    loop {
        let message = pubsub.get_message();
        let Some(inner) = weak.upgrade() else {
            return Ended::Dropped;
        };
        match message {
            Ok(msg) => {
                if let Ok(payload) = msg.get_payload::<String>() {
                    inner.remember(&decode(&payload));
                }
            }
            Err(e) if e.is_timeout() => {}
            Err(e) => return failed(e),
        }
        if chores_done.elapsed() >= TICK {
            if let Err(e) = pubsub.ping::<redis::Value>() {
                return failed(e);
            }
            if let Err(why) = chores(&inner) {
                return Ended::Failed(why);
            }
            chores_done = Instant::now();
        }
    }
}

/// Drops expired entries; catches up again when the copy went out of sync
/// (a write or read failed) while the subscription stayed up.
fn chores(inner: &Inner) -> Result<(), String> {
    let now = wall_clock();
    if let Ok(mut copy) = inner.copy.write() {
        copy.retain(|_, expiry| *expiry > now);
    }
    // A flush, an eviction or a failover took Redis's entries (and the
    // marker with them): fill it again.
    if inner.in_sync.load(Ordering::Acquire) && !inner.is_filled().map_err(|e| e.to_string())? {
        inner.lost_state();
    }
    if inner.needs_push.load(Ordering::Acquire) || !inner.in_sync.load(Ordering::Acquire) {
        catch_up(inner)?;
        tracing::info!("redis revocation list back in sync");
    }
    Ok(())
}

/// Step 2 of a subscription: database → Redis and copy, then in sync.
fn catch_up(inner: &Inner) -> Result<(), String> {
    inner.needs_push.store(false, Ordering::Release);
    let entries: Vec<Revocation> = inner
        .fallback
        .live(Timestamp::from_millis(wall_clock()))
        .map_err(|e| e.to_string())?;
    for chunk in entries.chunks(PUSH_CHUNK) {
        if let Err(e) = inner.push(chunk) {
            inner.needs_push.store(true, Ordering::Release);
            return Err(e.to_string());
        }
    }
    // Written after the entries: its presence says they are all there.
    if let Err(e) = inner.mark_filled() {
        inner.needs_push.store(true, Ordering::Release);
        return Err(e.to_string());
    }
    inner.remember(&entries);
    inner.state_lost.store(false, Ordering::Release);
    inner.reachable.store(true, Ordering::Release);
    inner.in_sync.store(true, Ordering::Release);
    let (lock, signal) = &inner.synced;
    let _guard = lock.lock();
    signal.notify_all();
    Ok(())
}
