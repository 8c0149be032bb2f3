//! A small counting semaphore for blocking threads.
//!
//! Argon2 callers run on blocking threads, never on async workers, so a
//! `Mutex` + `Condvar` is all that is needed. The counters double as metrics.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

#[derive(Debug, Default)]
struct Counts {
    in_flight: usize,
    waiting: usize,
}

#[derive(Debug)]
pub(crate) struct Semaphore {
    capacity: usize,
    counts: Mutex<Counts>,
    freed: Condvar,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    semaphore: &'a Semaphore,
}

impl Semaphore {
    /// `capacity` must be at least 1 (the caller clamps it).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            counts: Mutex::new(Counts::default()),
            freed: Condvar::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Blocks until a slot is free and takes it.
    pub(crate) fn acquire(&self) -> Permit<'_> {
        let mut counts = self.lock();
        if counts.in_flight >= self.capacity {
            counts.waiting += 1;
            while counts.in_flight >= self.capacity {
                counts = self
                    .freed
                    .wait(counts)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            counts.waiting -= 1;
        }
        counts.in_flight += 1;
        Permit { semaphore: self }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.lock().in_flight
    }

    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiting
    }

    // The counters stay consistent even if a holder panicked: every update
    // is a single statement under the lock, so a poisoned lock is still safe
    // to use.
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut counts = self.semaphore.lock();
        counts.in_flight -= 1;
        drop(counts);
        self.semaphore.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::*;

    fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if cond() {
                return true;
            }
            thread::sleep(Duration::from_millis(1));
        }
        cond()
    }

    #[test]
    fn a_full_semaphore_queues_callers_until_a_slot_is_freed() {
        let sem = Arc::new(Semaphore::new(1));
        let held = sem.acquire();
        assert_eq!(sem.in_flight(), 1);

        let waiter = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || {
                let _p = sem.acquire();
                sem.in_flight()
            })
        };
        assert!(wait_until(Duration::from_secs(5), || sem.waiting() == 1));
        assert_eq!(
            sem.in_flight(),
            1,
            "the waiter must not enter while the slot is held"
        );

        drop(held);
        assert_eq!(waiter.join().unwrap(), 1);
        assert_eq!(sem.waiting(), 0);
        assert_eq!(sem.in_flight(), 0);
    }

    #[test]
    fn capacity_two_admits_two_at_once() {
        let sem = Semaphore::new(2);
        let a = sem.acquire();
        let b = sem.acquire();
        assert_eq!(sem.in_flight(), 2);
        drop(a);
        drop(b);
        assert_eq!(sem.in_flight(), 0);
    }
}
