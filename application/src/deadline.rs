//! The time a request has left for its dependencies.
//!
//! Every request is answered within `TOKENWARDEN_DEPENDENCY_TIMEOUT` of its
//! arrival (API.md, "503, fast and honest"). The HTTP adapter knows when
//! the request arrived; the storage adapters are where the waits are (pool
//! checkout, write locks). Passing the deadline through every port would
//! touch every signature for what is only an upper bound on waiting, so the
//! HTTP adapter sets it for the thread that runs the use case ([`enter`])
//! and the adapters ask how much of it is left ([`remaining`]). Work that
//! runs outside a request (cleanup, start-up) has no deadline; the adapters
//! then wait at most their own configured bound.
//!
//! Whoever answers the request and the thread that does its work agree on
//! one [`Fate`]: past the deadline the answer is `503` only if the work has
//! not begun to commit ([`Fate::abandon`]), and the work commits only if
//! its client has not been told `503` ([`may_commit`]). Without that
//! agreement a commit that started just before the deadline and ended just
//! after it would spend a token whose client was told `503` (API.md, "A
//! refusal spends nothing").

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static FATE: RefCell<Option<Fate>> = const { RefCell::new(None) };
}

const RUNNING: u8 = 0;
const COMMITTING: u8 = 1;
const ABANDONED: u8 = 2;

/// What became of a request's work, shared by the thread doing it and
/// whoever answers: still running, committing (the answer is then whatever
/// the work returns), or abandoned (the client was told `503`, and the
/// work must commit nothing). Each step happens at most once, atomically.
#[derive(Debug, Clone, Default)]
pub struct Fate(Arc<AtomicU8>);

impl Fate {
    /// A fate for work that has not started.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives up on the work unless it has begun to commit. `true`: the
    /// work will commit nothing, answer `503`; `false`: it is committing,
    /// wait for its own answer (a commit's waits are bounded by the
    /// adapters' own timeouts).
    pub fn abandon(&self) -> bool {
        match self
            .0
            .compare_exchange(RUNNING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == ABANDONED,
        }
    }

    /// Claims the right to commit unless the work was abandoned.
    fn commit(&self) -> bool {
        match self
            .0
            .compare_exchange(RUNNING, COMMITTING, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == COMMITTING,
        }
    }
}

/// Restores the thread's previous deadline and fate when dropped.
#[derive(Debug)]
#[must_use = "the deadline holds only while the guard lives"]
pub struct DeadlineGuard {
    previous: Option<Instant>,
    previous_fate: Option<Fate>,
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.previous));
        let fate = self.previous_fate.take();
        FATE.with(|f| *f.borrow_mut() = fate);
    }
}

/// Sets this thread's deadline (`None`: no deadline) until the guard
/// drops, with a fate of its own (nobody else answers for the work).
pub fn enter(deadline: Option<Instant>) -> DeadlineGuard {
    enter_with(deadline, Fate::new())
}

/// Sets this thread's deadline and the fate it shares with whoever
/// answers the request, until the guard drops.
pub fn enter_with(deadline: Option<Instant>, fate: Fate) -> DeadlineGuard {
    let previous = DEADLINE.with(|d| d.replace(deadline));
    let previous_fate = FATE.with(|f| f.borrow_mut().replace(fate));
    DeadlineGuard {
        previous,
        previous_fate,
    }
}

/// This thread's deadline, if it runs a request.
pub fn current() -> Option<Instant> {
    DEADLINE.with(Cell::get)
}

/// The fate this thread's work shares with whoever answers its request, if
/// any: for an adapter that hands the work to another thread (which then
/// [`enter_with`]s it), so that the answer and the commit still agree.
pub fn current_fate() -> Option<Fate> {
    FATE.with(|f| f.borrow().clone())
}

/// How long a wait may last: `bound`, or less when this thread's deadline
/// is nearer (zero once it has passed).
pub fn remaining(bound: Duration) -> Duration {
    match current() {
        Some(deadline) => deadline
            .saturating_duration_since(Instant::now())
            .min(bound),
        None => bound,
    }
}

/// Whether this thread's deadline has passed: work that would answer too
/// late (a commit whose answer nobody waits for) should stop.
pub fn expired() -> bool {
    current().is_some_and(|deadline| Instant::now() >= deadline)
}

/// Whether the work may commit now: always outside a request; inside one,
/// only before its deadline and only if its client has not been told
/// `503` meanwhile. A `true` is binding: from then on whoever answers waits
/// for the work's own answer. Past the deadline the work is abandoned here,
/// so that the answer and the rollback agree.
pub fn may_commit() -> bool {
    if current().is_none() {
        return true;
    }
    FATE.with(|f| match f.borrow().as_ref() {
        Some(fate) if expired() => {
            fate.abandon();
            false
        }
        Some(fate) => fate.commit(),
        None => !expired(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_deadline_the_bound_applies() {
        assert_eq!(remaining(Duration::from_secs(3)), Duration::from_secs(3));
        assert!(!expired());
    }

    #[test]
    fn a_near_deadline_shortens_the_wait_and_the_guard_restores_the_old_one() {
        {
            let _request = enter(Some(Instant::now() + Duration::from_millis(200)));
            let left = remaining(Duration::from_secs(3));
            assert!(left <= Duration::from_millis(200), "{left:?}");
            assert!(left > Duration::from_millis(100), "{left:?}");
            {
                let _inner = enter(Some(Instant::now()));
                assert!(expired());
                assert_eq!(remaining(Duration::from_secs(3)), Duration::ZERO);
            }
            assert!(!expired());
        }
        assert_eq!(current(), None);
    }

    #[test]
    fn a_commit_claimed_first_makes_the_answerer_wait_for_it() {
        let fate = Fate::new();
        let _request = enter_with(Some(Instant::now() + Duration::from_secs(5)), fate.clone());
        assert!(may_commit());
        assert!(!fate.abandon(), "committing: wait for the work's answer");
        assert!(may_commit(), "a second transaction of the same work");
    }

    #[test]
    fn an_abandoned_request_commits_nothing() {
        let fate = Fate::new();
        let _request = enter_with(Some(Instant::now() + Duration::from_secs(5)), fate.clone());
        assert!(fate.abandon());
        assert!(fate.abandon(), "abandoning twice is still abandoned");
        assert!(!may_commit());
    }

    #[test]
    fn past_the_deadline_the_work_abandons_itself() {
        let fate = Fate::new();
        let _request = enter_with(Some(Instant::now()), fate.clone());
        assert!(!may_commit());
        assert!(fate.abandon(), "the answerer agrees: 503");
    }

    #[test]
    fn work_handed_to_another_thread_keeps_its_deadline_and_fate() {
        let fate = Fate::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let _request = enter_with(Some(deadline), fate.clone());
        let (handed_deadline, handed_fate) = (current(), current_fate());
        let claimed = std::thread::spawn(move || {
            let _work = enter_with(handed_deadline, handed_fate.unwrap_or_default());
            (current(), may_commit())
        })
        .join()
        .unwrap();
        assert_eq!(claimed, (Some(deadline), true));
        assert!(!fate.abandon(), "the other thread claimed the commit");
    }

    #[test]
    fn outside_a_request_commits_are_always_allowed() {
        assert!(may_commit());
    }
}
