//! The cleanup job: every `TOKENWARDEN_CLEANUP_INTERVAL` in `serve`, and
//! once for `tokenwarden cleanup`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::time::Duration;

use application::cleanup::{Batching, Cleanup, CleanupPolicy, CleanupReport, CleanupRun};
use persistence::{Backend, Database};

use crate::config::Config;
use crate::metrics;
use crate::system::SystemClock;

/// How a pass paces its deletes on each backend. PostgreSQL deletes beside
/// refreshes (row locks, `SKIP LOCKED`): 1 000 rows a statement. SQLite has
/// one writer at a time, so a refresh may wait for a whole batch: 25 rows
/// (about half a millisecond) keep that wait within refresh's own p99 (see
/// the cleanup benchmark), and a pause of 2 ms lets refreshes in between.
pub fn batching_for(backend: Backend) -> Batching {
    match backend {
        Backend::Postgres => Batching::default(),
        Backend::Sqlite => Batching {
            batch_size: 25,
            pause: Duration::from_millis(2),
        },
    }
}

/// The cleanup use case over the database.
pub fn cleanup_service(config: &Config, db: &Database) -> Cleanup {
    Cleanup::new(
        Arc::new(db.clone()),
        Arc::new(SystemClock),
        CleanupPolicy {
            audit_retention: config.audit_retention,
            batching: batching_for(db.backend()),
        },
    )
}

/// Adds a pass's removals to `tokenwarden_cleanup_removed_total{kind}`.
fn count_removed(report: &CleanupReport) {
    metrics::cleanup_removed("refresh_tokens", report.refresh_tokens);
    metrics::cleanup_removed("sessions", report.sessions);
    metrics::cleanup_removed("revocations", report.revocations);
    if let Some(audit) = report.audit_rows {
        metrics::cleanup_removed("audit", audit);
    }
}

/// The running job; dropping it stops it (a pass under way ends after its
/// current batch).
pub struct CleanupJob {
    task: tokio::task::JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl Drop for CleanupJob {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.abort();
    }
}

/// Runs a pass every `config.cleanup_interval`, the first one interval
/// after start. Passes run on the blocking pool, one at a time.
pub fn spawn_cleanup_job(config: &Config, db: &Database) -> CleanupJob {
    let cleanup = Arc::new(cleanup_service(config, db));
    let every = config.cleanup_interval;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut clocks = ClockWatch::now();
        loop {
            ticks.tick().await;
            if let Some(jump) = clocks.jumped() {
                // The wall clock stepped since the last pass: what looks
                // expired now may not be once it is corrected. This pass
                // waits; the next one runs on the clock as it is then.
                tracing::warn!(
                    jump_ms = jump,
                    "the wall clock jumped against the monotonic clock since the last cleanup pass; \
                     skipping this pass"
                );
                continue;
            }
            let (cleanup, stop) = (Arc::clone(&cleanup), Arc::clone(&stopping));
            match tokio::task::spawn_blocking(move || cleanup.run_until(&stop)).await {
                Ok(Ok(CleanupRun::Done(report))) if report.total() > 0 => {
                    count_removed(&report);
                    tracing::info!(
                        refresh_tokens = report.refresh_tokens,
                        sessions = report.sessions,
                        revocations = report.revocations,
                        audit_rows = report.audit_rows,
                        "cleanup removed expired rows"
                    );
                }
                Ok(Ok(CleanupRun::Done(_))) => tracing::debug!("cleanup found nothing expired"),
                Ok(Ok(CleanupRun::Skipped)) => {
                    tracing::debug!("cleanup skipped: another instance is running it")
                }
                Ok(Err(error)) => tracing::warn!(%error, "cleanup failed; retrying next interval"),
                Err(error) => tracing::warn!(%error, "cleanup pass did not finish"),
            }
        }
    });
    CleanupJob { task, stop }
}

/// How far the wall clock may drift from the monotonic one between two
/// passes before it counts as a jump (NTP slews by far less).
const CLOCK_JUMP: Duration = Duration::from_secs(5);

/// The wall and monotonic clocks at the last pass.
struct ClockWatch {
    wall: std::time::SystemTime,
    mono: std::time::Instant,
}

impl ClockWatch {
    fn now() -> Self {
        Self {
            wall: std::time::SystemTime::now(),
            mono: std::time::Instant::now(),
        }
    }

    /// The disagreement in ms (wall minus monotonic) when it exceeds
    /// [`CLOCK_JUMP`] since the last call; starts over either way.
    fn jumped(&mut self) -> Option<i128> {
        let next = Self::now();
        let mono = i128::try_from(next.mono.duration_since(self.mono).as_millis()).ok()?;
        let wall = match next.wall.duration_since(self.wall) {
            Ok(ahead) => i128::try_from(ahead.as_millis()).ok()?,
            Err(behind) => -i128::try_from(behind.duration().as_millis()).ok()?,
        };
        *self = next;
        let drift = wall - mono;
        (drift.unsigned_abs() > CLOCK_JUMP.as_millis()).then_some(drift)
    }
}

/// Adds throttled refreshes counted in process to their audit rows (see
/// `application::abuse`) every second; dropping it stops it.
pub struct ThrottleFlush(tokio::task::JoinHandle<()>);

impl Drop for ThrottleFlush {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How often throttled refreshes reach their audit rows' counts.
const THROTTLE_FLUSH_EVERY: Duration = Duration::from_secs(1);

pub fn spawn_throttle_flush(warden: Arc<application::TokenWarden>) -> ThrottleFlush {
    ThrottleFlush(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(THROTTLE_FLUSH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if warden.throttled_refreshes_pending() {
                flush_throttled(Arc::clone(&warden)).await;
            }
        }
    }))
}

/// One flush on the blocking pool; a failure is logged (the counts stay for
/// the next one).
pub async fn flush_throttled(warden: Arc<application::TokenWarden>) {
    match tokio::task::spawn_blocking(move || warden.flush_throttled_refreshes()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "could not count throttled refreshes in the audit trail")
        }
        Err(e) => tracing::warn!(error = %e, "the throttled-refresh flush panicked"),
    }
}
