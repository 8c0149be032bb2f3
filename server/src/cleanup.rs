//! The cleanup job: every `TOKENWARDEN_CLEANUP_INTERVAL` in `serve`, and
//! once for `tokenwarden cleanup`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use std::time::Duration;

use application::cleanup::{Batching, Cleanup, CleanupPolicy, CleanupReport, CleanupRun};
use application::ports::Clock;
use domain::Timestamp;
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
        policy(config, db.backend()),
    )
}

fn policy(config: &Config, backend: Backend) -> CleanupPolicy {
    CleanupPolicy {
        audit_retention: config.audit_retention,
        batching: batching_for(backend),
    }
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
pub fn spawn_cleanup_job(config: &Config, db: &Database, clock: Arc<dyn Clock>) -> CleanupJob {
    let cleanup = Cleanup::new(
        Arc::new(db.clone()),
        Arc::clone(&clock),
        policy(config, db.backend()),
    );
    spawn_cleanup_loop(Arc::new(cleanup), clock, config.cleanup_interval)
}

/// The job's loop over `cleanup`, a pass every `every` (tokio's clock),
/// watching `wall` (the clock the passes use) against tokio's monotonic
/// clock: a pass after a jump of the wall clock is skipped.
fn spawn_cleanup_loop(cleanup: Arc<Cleanup>, wall: Arc<dyn Clock>, every: Duration) -> CleanupJob {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut clocks = ClockWatch::now(wall);
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

/// The wall clock (the one the passes use) and tokio's monotonic clock at
/// the last pass.
struct ClockWatch {
    clock: Arc<dyn Clock>,
    wall: Timestamp,
    mono: tokio::time::Instant,
}

impl ClockWatch {
    fn now(clock: Arc<dyn Clock>) -> Self {
        Self {
            wall: clock.now(),
            mono: tokio::time::Instant::now(),
            clock,
        }
    }

    /// The disagreement in ms (wall minus monotonic) when it exceeds
    /// [`CLOCK_JUMP`] since the last call; starts over either way.
    fn jumped(&mut self) -> Option<i128> {
        let (wall, mono) = (self.clock.now(), tokio::time::Instant::now());
        let mono_ms = i128::try_from(mono.duration_since(self.mono).as_millis()).ok()?;
        let wall_ms = i128::from(wall.as_millis()) - i128::from(self.wall.as_millis());
        (self.wall, self.mono) = (wall, mono);
        let drift = wall_ms - mono_ms;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write;
    use std::sync::atomic::AtomicI64;
    use std::sync::Mutex;

    use application::cleanup::{CleanupCutoffs, ExpiredDataStore};
    use application::ports::StoreError;

    use super::*;

    /// A wall clock that follows tokio's (paused) clock, plus a step the
    /// test sets, as an operator or a bad NTP source would.
    struct SteppingClock {
        start: tokio::time::Instant,
        step_ms: AtomicI64,
    }

    const EPOCH_MS: i64 = 1_780_000_000_000;

    impl Clock for SteppingClock {
        fn now(&self) -> Timestamp {
            let since = i64::try_from(self.start.elapsed().as_millis()).unwrap();
            Timestamp::from_millis(EPOCH_MS + since + self.step_ms.load(Ordering::SeqCst))
        }
    }

    /// Records the `now` of each pass.
    #[derive(Default)]
    struct Passes(Mutex<Vec<Timestamp>>);

    impl ExpiredDataStore for Passes {
        fn purge_expired(
            &self,
            cutoffs: CleanupCutoffs,
            _batching: Batching,
            _stop: &AtomicBool,
        ) -> Result<Option<CleanupReport>, StoreError> {
            self.0.lock().unwrap().push(cutoffs.now);
            Ok(Some(CleanupReport::default()))
        }
    }

    /// The log, as text.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    const EVERY: Duration = Duration::from_secs(10);

    /// One interval of tokio's clock, then until the job has done what
    /// that tick makes it do (a pass runs on the blocking pool).
    async fn next_tick(passes: &Passes, log: &Captured, before: (usize, usize)) -> (usize, usize) {
        tokio::time::advance(EVERY).await;
        for _ in 0..10_000 {
            let now = (
                passes.0.lock().unwrap().len(),
                log.text().matches("wall clock jumped").count(),
            );
            if now != before {
                return now;
            }
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_micros(100));
        }
        panic!("the job did nothing at its tick");
    }

    /// The wall clock steps forward by a minute between two passes, later
    /// back: each time the job logs the jump (with `jump_ms`) and skips
    /// that pass; the next pass runs, on the clock as it is then. A drift of
    /// a second is no jump. No real time passes: tokio's clock is paused
    /// and the wall clock is the test's.
    #[tokio::test(start_paused = true)]
    async fn a_wall_clock_that_jumps_is_logged_and_that_pass_skipped() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let clock = Arc::new(SteppingClock {
            start: tokio::time::Instant::now(),
            step_ms: AtomicI64::new(0),
        });
        let passes = Arc::new(Passes::default());
        let policy = CleanupPolicy {
            audit_retention: Duration::from_secs(3_600),
            batching: Batching::default(),
        };
        let store: Arc<dyn ExpiredDataStore> = passes.clone();
        let cleanup = Arc::new(Cleanup::new(store, clock.clone(), policy));
        let _job = spawn_cleanup_loop(cleanup, clock.clone(), EVERY);
        tokio::task::yield_now().await;

        let mut seen = next_tick(&passes, &log, (0, 0)).await;
        assert_eq!(seen, (1, 0), "an ordinary pass");

        clock.step_ms.fetch_add(60_000, Ordering::SeqCst);
        seen = next_tick(&passes, &log, seen).await;
        assert_eq!(seen, (1, 1), "a step forward: logged, pass skipped");
        assert!(log.text().contains("jump_ms=60000"), "{}", log.text());

        seen = next_tick(&passes, &log, seen).await;
        assert_eq!(seen, (2, 1), "the next pass runs");
        assert_eq!(
            passes.0.lock().unwrap()[1],
            clock.now(),
            "on the clock as it is then"
        );

        clock.step_ms.fetch_sub(60_000, Ordering::SeqCst);
        seen = next_tick(&passes, &log, seen).await;
        assert_eq!(seen, (2, 2), "a step back: logged, pass skipped");
        assert!(log.text().contains("jump_ms=-60000"), "{}", log.text());

        clock.step_ms.fetch_add(1_000, Ordering::SeqCst);
        seen = next_tick(&passes, &log, seen).await;
        assert_eq!(seen, (3, 2), "a drift of a second is no jump");
        assert!(log.text().contains("skipping this pass"));
    }
}
