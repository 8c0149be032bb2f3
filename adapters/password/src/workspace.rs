//! Argon2's working memory, allocated once per slot and reused.
//!
//! Every hash or check needs `m_cost` KiB of blocks. Allocated per call,
//! that memory is freed to glibc, which keeps it (a freed 19 MiB block
//! raises its mmap threshold, so the next one comes from an arena that
//! never shrinks): under a burst the process grew to gigabytes. Here a
//! fixed number of workspaces is allocated when the hasher is built; a
//! computation borrows one and gives it back, and a caller finding none
//! free waits. The count of workspaces is therefore also the bound on
//! concurrent computations. Callers are blocking threads (never async
//! workers), so a `Mutex` + `Condvar` is all that is needed; the counters
//! double as metrics.

use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use argon2::Block;

#[derive(Debug)]
struct Free {
    workspaces: Vec<Box<[Block]>>,
    waiting: usize,
}

#[derive(Debug)]
pub(crate) struct Workspaces {
    capacity: usize,
    free: Mutex<Free>,
    returned: Condvar,
}

/// A borrowed workspace; dropping it gives it back.
#[derive(Debug)]
pub(crate) struct Workspace<'a> {
    pool: &'a Workspaces,
    /// `Some` until dropped.
    blocks: Option<Box<[Block]>>,
}

impl Workspaces {
    /// `capacity` workspaces (the caller makes it at least 1) of `blocks`
    /// blocks each. The memory is reserved here; pages become resident as
    /// the first computations touch them, and stay (they are never freed).
    pub(crate) fn new(capacity: usize, blocks: usize) -> Self {
        let workspaces = (0..capacity)
            .map(|_| vec![Block::new(); blocks].into_boxed_slice())
            .collect();
        Self {
            capacity,
            free: Mutex::new(Free {
                workspaces,
                waiting: 0,
            }),
            returned: Condvar::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Blocks until a workspace is free and borrows it.
    pub(crate) fn borrow(&self) -> Workspace<'_> {
        let mut free = self.lock();
        if free.workspaces.is_empty() {
            free.waiting += 1;
            while free.workspaces.is_empty() {
                free = self
                    .returned
                    .wait(free)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            free.waiting -= 1;
        }
        let blocks = free.workspaces.pop();
        Workspace { pool: self, blocks }
    }

    /// How many computations hold a workspace now.
    pub(crate) fn in_use(&self) -> usize {
        self.capacity - self.lock().workspaces.len()
    }

    /// How many callers wait for a workspace.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().waiting
    }

    // Every update is a single statement under the lock, so a lock poisoned
    // by a panicking holder is still consistent.
    fn lock(&self) -> MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Deref for Workspace<'_> {
    type Target = [Block];

    fn deref(&self) -> &[Block] {
        self.blocks.as_deref().unwrap_or(&[])
    }
}

impl DerefMut for Workspace<'_> {
    fn deref_mut(&mut self) -> &mut [Block] {
        self.blocks.as_deref_mut().unwrap_or(&mut [])
    }
}

impl Drop for Workspace<'_> {
    fn drop(&mut self) {
        if let Some(blocks) = self.blocks.take() {
            self.pool.lock().workspaces.push(blocks);
            self.pool.returned.notify_one();
        }
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
    fn a_caller_finding_no_free_workspace_waits_until_one_is_returned() {
        let pool = Arc::new(Workspaces::new(1, 8));
        let held = pool.borrow();
        assert_eq!(pool.in_use(), 1);

        let waiter = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let w = pool.borrow();
                (pool.in_use(), w.len())
            })
        };
        assert!(wait_until(Duration::from_secs(5), || pool.waiting() == 1));
        assert_eq!(
            pool.in_use(),
            1,
            "the waiter must not get one while it is held"
        );

        drop(held);
        assert_eq!(waiter.join().unwrap(), (1, 8));
        assert_eq!(pool.waiting(), 0);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn the_same_memory_is_lent_again() {
        let pool = Workspaces::new(1, 8);
        let first = pool.borrow().as_ptr();
        let second = pool.borrow().as_ptr();
        assert_eq!(first, second, "no new allocation per computation");
    }

    #[test]
    fn capacity_two_lends_two_at_once() {
        let pool = Workspaces::new(2, 8);
        let a = pool.borrow();
        let b = pool.borrow();
        assert_eq!(pool.in_use(), 2);
        assert_ne!(a.as_ptr(), b.as_ptr());
        drop(a);
        drop(b);
        assert_eq!(pool.in_use(), 0);
    }
}
