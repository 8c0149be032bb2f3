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

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Restores the thread's previous deadline when dropped.
#[derive(Debug)]
#[must_use = "the deadline holds only while the guard lives"]
pub struct DeadlineGuard {
    previous: Option<Instant>,
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(self.previous));
    }
}

/// Sets this thread's deadline (`None`: no deadline) until the guard drops.
pub fn enter(deadline: Option<Instant>) -> DeadlineGuard {
    let previous = DEADLINE.with(|d| d.replace(deadline));
    DeadlineGuard { previous }
}

/// This thread's deadline, if it runs a request.
pub fn current() -> Option<Instant> {
    DEADLINE.with(Cell::get)
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
}
