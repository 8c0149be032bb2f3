//! Group commit of SQLite rotations: one writer thread runs the rotations
//! that arrive together in one write transaction, one after the other.
//!
//! SQLite admits one writer at a time. With one transaction per refresh,
//! every rotation took the write lock, began, committed (appending its pages
//! to the log) and handed the lock to the next waiting thread, which the
//! kernel had to wake first: under 32 concurrent refreshes the server spent
//! a third of its CPU in the scheduler and the futex calls of that hand-off
//! (`docs/performance.md`), and the lock sat idle while the next holder
//! was being woken. Here the requests queue (`try_send`, bounded) for one
//! writer thread, which takes every rotation waiting (up to
//! [`MAX_BATCH`]), runs them back to back in one `BEGIN IMMEDIATE` …
//! `COMMIT` on its kept connection, and then answers each. Pages that
//! several rotations of a batch touch are written to the log once.
//!
//! What does not change:
//!
//! * **Exactly one successor.** The rotations of a batch run one after the
//!   other on one connection; each reads its session inside the
//!   transaction, after the writes of the rotations before it.
//! * **The audit row is in the rotation's transaction**, which is the
//!   batch's: a rotation and its audit row commit together or not at all.
//! * **A refusal spends nothing** (API.md, "503, fast and honest"). Each
//!   rotation runs under its request's deadline and [`Fate`]
//!   ([`deadline::enter_with`]) and claims its commit ([`deadline::may_commit`])
//!   *before* it runs: one whose client has been told `503` is skipped, and
//!   from the claim on, its client waits for the batch's answer. If any
//!   rotation of a batch fails (a storage error: a full disk, an I/O
//!   error), the whole batch rolls back and every request in it is
//!   answered with an error, which the client hears as `503`: SQLite may
//!   have rolled back the whole transaction on such an error, so no
//!   rotation of it can be reported as committed. Nothing of it was spent.
//! * **Every wait is bounded**: the queue has a fixed capacity (a full
//!   queue is a `503` at once), the request waits at most until its
//!   deadline for its answer unless its rotation has claimed the commit,
//!   and the writer waits for the write lock and its connection at most
//!   the lock's bound.
//!
//! Only rotations go through here: they are the hot path. Every other write
//! still takes the write lock itself ([`crate::transaction::write_transaction`]),
//! which the writer thread takes too, for each batch.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use application::deadline::{self, Fate};
use application::ports::RotateOutcome;

use crate::connection::AnyConnection;
use crate::error::DbError;
use crate::transaction::{begin_immediate, commit, roll_back, WriteLock};

/// The most rotations one transaction commits. A batch's first request
/// waits for all of it (tens of microseconds each).
pub(crate) const MAX_BATCH: usize = 64;

/// Rotations waiting for the writer at most; one more is refused at once.
/// Each waiting request holds a blocking thread, which the server bounds
/// anyway; this bounds the queue on its own.
const QUEUE: usize = 1_024;

/// A rotation, run on the writer's connection inside the batch's
/// transaction.
pub(crate) type Work = Box<dyn FnOnce(&mut AnyConnection) -> Result<RotateOutcome, DbError> + Send>;

struct Job {
    deadline: Option<Instant>,
    fate: Fate,
    work: Work,
    answer: Answer,
}

/// Where a job's answer goes. The request may have stopped waiting
/// (abandoned): then nobody is told.
struct Answer(SyncSender<Result<RotateOutcome, DbError>>);

impl Answer {
    fn send(self, result: Result<RotateOutcome, DbError>) {
        let _ = self.0.send(result);
    }
}

/// The queue to the writer thread; the thread ends when the last clone of
/// its `Database` (and so this) is dropped.
pub(crate) struct GroupCommit {
    jobs: SyncSender<Job>,
    /// How long a request without a deadline waits for its answer.
    wait: Duration,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Starts the writer thread of `lock` (which must keep a writer, see
    /// [`WriteLock::keeping_writer`]). `None` (with a warning) when no thread
    /// can be had: rotations then take the lock one by one as before.
    pub(crate) fn start(lock: Arc<WriteLock>, wait: Duration) -> Option<Self> {
        let (jobs, queue) = mpsc::sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || serve(&queue, &lock));
        match thread {
            Ok(_detached) => Some(Self { jobs, wait }),
            Err(error) => {
                tracing::warn!(%error, "no SQLite writer thread: rotations commit one by one");
                None
            }
        }
    }

    /// Runs `work` in the writer's next batch and returns its answer once
    /// the batch has committed (or failed).
    pub(crate) fn run(&self, work: Work) -> Result<RotateOutcome, DbError> {
        let fate = deadline::current_fate().unwrap_or_default();
        let (answer, answered) = mpsc::sync_channel(1);
        let job = Job {
            deadline: deadline::current(),
            fate: fate.clone(),
            work,
            answer: Answer(answer),
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(DbError::Timeout(
                    "queueing for the SQLite writer: the queue is full",
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(DbError::Batch(
                    "the SQLite writer thread has stopped".to_owned(),
                ))
            }
        }
        match answered.recv_timeout(deadline::remaining(self.wait)) {
            Ok(result) => result,
            // Not begun: it never will (the writer skips abandoned work).
            Err(RecvTimeoutError::Timeout) if fate.abandon() => {
                Err(DbError::Timeout("waiting for the SQLite writer"))
            }
            // It claimed its commit: the answer comes once the batch has
            // committed, within the writer's own bounds.
            Err(RecvTimeoutError::Timeout) => answered.recv().unwrap_or_else(|_| {
                Err(DbError::Batch(
                    "the SQLite writer dropped the rotation".to_owned(),
                ))
            }),
            Err(RecvTimeoutError::Disconnected) => Err(DbError::Batch(
                "the SQLite writer dropped the rotation".to_owned(),
            )),
        }
    }
}

/// The writer thread: a batch of whatever is queued, until every sender is
/// gone.
fn serve(queue: &Receiver<Job>, lock: &WriteLock) {
    while let Ok(first) = queue.recv() {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A panic in one batch must not end the thread: every later
        // rotation would then be refused until a restart. The batch's
        // answers are dropped with it (their requests hear an error, 503),
        // its transaction is still open on the writer, which the pool
        // therefore discards, and the lock's guard is released on unwind.
        if std::panic::catch_unwind(AssertUnwindSafe(|| commit_batch(lock, batch))).is_err() {
            tracing::error!("SQLite group commit panicked; its rotations are refused");
        }
    }
}

/// Runs `batch` in one transaction and answers every job of it.
fn commit_batch(lock: &WriteLock, batch: Vec<Job>) {
    let mut jobs = Some(batch);
    let mut unanswered = Vec::new();
    let written =
        lock.with_writer(|conn| run_batch(conn, jobs.take().unwrap_or_default(), &mut unanswered));
    match written {
        Ok(Ok(done)) => {
            for (answer, outcome) in done {
                answer.send(Ok(outcome));
            }
        }
        Ok(Err(error)) | Err(error) => {
            tracing::warn!(%error, "SQLite group commit failed; its rotations are refused, nothing of them spent");
            let reason = error.to_string();
            let never_run = jobs.into_iter().flatten().map(|job| job.answer);
            for answer in unanswered.into_iter().chain(never_run) {
                answer.send(Err(DbError::Batch(reason.clone())));
            }
        }
    }
}

/// The batch's transaction: on success, the answers of the rotations that
/// committed, with their outcomes; on failure, the error, with every job
/// not yet answered in `unanswered`.
fn run_batch(
    conn: &mut AnyConnection,
    batch: Vec<Job>,
    unanswered: &mut Vec<Answer>,
) -> Result<Vec<(Answer, RotateOutcome)>, DbError> {
    if let Err(error) = begin_immediate(conn) {
        unanswered.extend(batch.into_iter().map(|job| job.answer));
        return Err(error);
    }
    let mut done: Vec<(Answer, RotateOutcome)> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    while let Some(job) = jobs.next() {
        let _request = deadline::enter_with(job.deadline, job.fate);
        // Claimed before the work: from here on its client waits for this
        // batch's answer; one already told 503 is skipped.
        if !deadline::may_commit() {
            job.answer.send(Err(DbError::Timeout(
                "the request's deadline passed before its rotation began",
            )));
            continue;
        }
        match (job.work)(conn) {
            Ok(outcome) => done.push((job.answer, outcome)),
            Err(error) => {
                roll_back(conn, &error);
                job.answer.send(Err(error));
                unanswered.extend(done.into_iter().map(|(answer, _)| answer));
                unanswered.extend(jobs.map(|job| job.answer));
                return Err(DbError::Batch(
                    "another rotation of the same transaction failed".to_owned(),
                ));
            }
        }
    }
    if let Err(error) = commit(conn) {
        unanswered.extend(done.into_iter().map(|(answer, _)| answer));
        return Err(error);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use diesel::prelude::*;

    use super::*;
    use crate::connection::Database;
    use crate::testing::TestDatabase;

    type Answered = Receiver<Result<RotateOutcome, DbError>>;

    fn job(
        fate: Fate,
        deadline: Option<Instant>,
        work: impl FnOnce(&mut AnyConnection) -> Result<RotateOutcome, DbError> + Send + 'static,
    ) -> (Job, Answered) {
        let (answer, answered) = mpsc::sync_channel(1);
        let job = Job {
            deadline,
            fate,
            work: Box::new(work),
            answer: Answer(answer),
        };
        (job, answered)
    }

    /// A write standing in for a rotation: bumps the write probe.
    fn bump(conn: &mut AnyConnection) -> Result<RotateOutcome, DbError> {
        diesel::sql_query("UPDATE write_probe SET checked_at = checked_at + 1 WHERE id = 1")
            .execute(conn)?;
        Ok(RotateOutcome::UnknownToken)
    }

    #[derive(QueryableByName)]
    struct Probe {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        checked_at: i64,
    }

    fn probe(db: &Database) -> i64 {
        let mut conn = db.conn().unwrap();
        diesel::sql_query("SELECT checked_at FROM write_probe WHERE id = 1")
            .get_result::<Probe>(&mut *conn)
            .unwrap()
            .checked_at
    }

    fn sqlite() -> (TestDatabase, Database) {
        let test = TestDatabase::sqlite();
        let db = test.open(2);
        (test, db)
    }

    fn answer(answered: &Answered) -> Result<RotateOutcome, DbError> {
        answered.recv_timeout(Duration::from_secs(5)).unwrap()
    }

    #[test]
    fn a_batch_commits_its_rotations_together_and_answers_each() {
        let (_test, db) = sqlite();
        let before = probe(&db);
        let (first, first_answer) = job(Fate::new(), None, bump);
        let (second, second_answer) = job(Fate::new(), None, bump);
        commit_batch(db.write_lock(), vec![first, second]);
        assert!(answer(&first_answer).is_ok());
        assert!(answer(&second_answer).is_ok());
        assert_eq!(probe(&db), before + 2);
    }

    #[test]
    fn a_failing_rotation_rolls_back_its_whole_batch_and_every_request_hears_it() {
        let (_test, db) = sqlite();
        let before = probe(&db);
        let (first, first_answer) = job(Fate::new(), None, bump);
        let (failing, failing_answer) = job(Fate::new(), None, |conn| {
            bump(conn)?;
            Err(DbError::Corrupt("a row the domain refuses"))
        });
        let ran_after = Arc::new(AtomicBool::new(false));
        let ran = Arc::clone(&ran_after);
        let (third, third_answer) = job(Fate::new(), None, move |conn| {
            ran.store(true, Ordering::SeqCst);
            bump(conn)
        });
        commit_batch(db.write_lock(), vec![first, failing, third]);
        assert!(matches!(answer(&failing_answer), Err(DbError::Corrupt(_))));
        assert!(matches!(answer(&first_answer), Err(DbError::Batch(_))));
        assert!(matches!(answer(&third_answer), Err(DbError::Batch(_))));
        assert!(
            !ran_after.load(Ordering::SeqCst),
            "the batch stops at the failure"
        );
        assert_eq!(probe(&db), before, "nothing of the batch was written");
        // The writer is healthy for the next batch.
        let (next, next_answer) = job(Fate::new(), None, bump);
        commit_batch(db.write_lock(), vec![next]);
        assert!(answer(&next_answer).is_ok());
        assert_eq!(probe(&db), before + 1);
    }

    #[test]
    fn a_rotation_whose_client_was_told_503_never_runs_and_one_that_began_holds_its_client() {
        let (_test, db) = sqlite();
        let before = probe(&db);
        let later = Some(Instant::now() + Duration::from_secs(30));
        let told_503 = Fate::new();
        assert!(told_503.abandon());
        let ran = Arc::new(AtomicBool::new(false));
        let ran_in = Arc::clone(&ran);
        let (abandoned, abandoned_answer) = job(told_503, later, move |conn| {
            ran_in.store(true, Ordering::SeqCst);
            bump(conn)
        });
        let (late, late_answer) = job(Fate::new(), Some(Instant::now()), bump);
        let waiting = Fate::new();
        let (live, live_answer) = job(waiting.clone(), later, bump);
        commit_batch(db.write_lock(), vec![abandoned, late, live]);
        assert!(matches!(
            answer(&abandoned_answer),
            Err(DbError::Timeout(_))
        ));
        assert!(!ran.load(Ordering::SeqCst));
        assert!(matches!(answer(&late_answer), Err(DbError::Timeout(_))));
        assert!(answer(&live_answer).is_ok());
        assert!(
            !waiting.abandon(),
            "its commit was claimed: its client waited for it"
        );
        assert_eq!(probe(&db), before + 1);
    }

    #[test]
    fn a_panicking_rotation_fails_its_batch_and_the_writer_carries_on() {
        let (_test, db) = sqlite();
        let before = probe(&db);
        let group = db.group_commit().expect("SQLite has a group commit");
        let panicked = group.run(Box::new(|conn| {
            bump(conn)?;
            panic!("a bug in a rotation");
        }));
        assert!(matches!(panicked, Err(DbError::Batch(_))), "{panicked:?}");
        assert!(group.run(Box::new(bump)).is_ok(), "the writer still runs");
        assert_eq!(probe(&db), before + 1, "the panicking batch wrote nothing");
    }

    #[test]
    fn a_request_past_its_deadline_is_refused_and_its_rotation_is_skipped() {
        let (_test, db) = sqlite();
        let before = probe(&db);
        // The writer waits for a lock another writer holds past the
        // request's deadline.
        let group = db.group_commit().expect("SQLite has a group commit");
        let fate = Fate::new();
        let refused = db
            .write_lock()
            .with_writer(|_| {
                let _request = deadline::enter_with(
                    Some(Instant::now() + Duration::from_millis(50)),
                    fate.clone(),
                );
                let started = Instant::now();
                let result = group.run(Box::new(bump));
                (result, started.elapsed())
            })
            .unwrap();
        assert!(
            matches!(refused.0, Err(DbError::Timeout(_))),
            "{:?}",
            refused.0
        );
        assert!(refused.1 < Duration::from_secs(1), "{:?}", refused.1);
        assert!(fate.abandon(), "abandoned: the client hears 503");
        // The writer gets the lock now and skips the abandoned rotation.
        let after = group.run(Box::new(bump));
        assert!(after.is_ok());
        assert_eq!(probe(&db), before + 1);
    }
}
