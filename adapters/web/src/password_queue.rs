//! The queue in front of password work (API.md "v2 — Abuse limits",
//! "Password work is bounded").
//!
//! A use case that hashes or checks a password runs only once it holds one
//! of `workers` turns (the server gives three per argon2 workspace, of which
//! it has one per core: a login's database write and signature then
//! overlap the next login's hash, while the hasher itself still runs at
//! most one hash per core). A request that finds every turn taken waits
//! *here*, as a parked async task, not on a blocking thread; at most
//! `capacity` wait, and one more gets `503 service_unavailable` with
//! `Retry-After` at once.
//! The wait ends at the request's deadline (`TOKENWARDEN_DEPENDENCY_TIMEOUT`)
//! with a 503 too. So a burst costs a few bytes per waiting request, never a
//! thread or argon2 memory.
//!
//! Handlers use it through [`crate::handlers::password_work`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Counter: requests refused because the queue was full.
pub const PASSWORD_QUEUE_FULL: &str = "tokenwarden_password_queue_full_total";

/// Turns of password work, and the requests waiting for one.
#[derive(Debug)]
pub struct PasswordQueue {
    turns: Arc<Semaphore>,
    workers: usize,
    waiting: AtomicUsize,
    capacity: usize,
}

/// A held turn; dropping it lets the next waiting request in. It is moved
/// into the blocking work, so it is held until the work ends even when
/// the request's answer has already left (deadline, client gone).
#[derive(Debug)]
pub struct Turn(#[allow(dead_code, reason = "held, not read")] OwnedSemaphorePermit);

impl PasswordQueue {
    /// `workers` turns (at least 1) and room for `capacity` waiting requests
    /// (`TOKENWARDEN_HASH_QUEUE`; 0: a request that cannot run at once is
    /// refused).
    pub fn new(workers: usize, capacity: usize) -> Self {
        let workers = workers.max(1);
        Self {
            turns: Arc::new(Semaphore::new(workers)),
            workers,
            waiting: AtomicUsize::new(0),
            capacity,
        }
    }

    /// How many requests wait for a turn.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// How many turns are held.
    pub fn running(&self) -> usize {
        self.workers - self.turns.available_permits()
    }

    /// The number of turns.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Waits for a turn, until the request's deadline.
    ///
    /// # Errors
    /// [`ApiError::Unavailable`] (503 with `Retry-After`) at once when the
    /// queue is full, or when the deadline passes while waiting.
    pub async fn turn(&self) -> Result<Turn, ApiError> {
        if let Ok(permit) = Arc::clone(&self.turns).try_acquire_owned() {
            return Ok(Turn(permit));
        }
        let _place = self.join()?;
        let wait = Arc::clone(&self.turns).acquire_owned();
        let permit = match crate::deadline::current() {
            Some(deadline) => {
                tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), wait)
                    .await
                    .map_err(|_| {
                        ApiError::Unavailable(
                            "no password worker became free before the request's deadline"
                                .to_owned(),
                        )
                    })?
            }
            None => wait.await,
        };
        // The semaphore is never closed.
        permit
            .map(Turn)
            .map_err(|_| ApiError::Unavailable("the password queue is closed".to_owned()))
    }

    /// Takes a place in the queue, unless it is full.
    fn join(&self) -> Result<Place<'_>, ApiError> {
        self.waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .map_err(|_| {
                metrics::counter!(PASSWORD_QUEUE_FULL).increment(1);
                ApiError::Unavailable(format!(
                    "the password queue is full ({} waiting)",
                    self.capacity
                ))
            })?;
        Ok(Place(&self.waiting))
    }
}

/// A place in the queue, given up when the wait ends either way (or the
/// request is dropped while waiting).
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_free_turn_is_taken_at_once() {
        let queue = PasswordQueue::new(2, 0);
        let a = queue.turn().await.unwrap();
        let _b = queue.turn().await.unwrap();
        assert_eq!(queue.running(), 2);
        drop(a);
        assert_eq!(queue.running(), 1);
    }

    #[tokio::test]
    async fn a_request_finding_the_queue_full_is_refused_at_once() {
        let queue = Arc::new(PasswordQueue::new(1, 1));
        let held = queue.turn().await.unwrap();
        let waiter = tokio::spawn({
            let queue = Arc::clone(&queue);
            async move { queue.turn().await.map(|_| ()) }
        });
        while queue.waiting() < 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let refused = queue.turn().await;
        assert!(
            matches!(refused, Err(ApiError::Unavailable(_))),
            "{refused:?}"
        );
        assert_eq!(queue.waiting(), 1, "the refused request took no place");

        drop(held);
        waiter.await.unwrap().unwrap();
        assert_eq!(queue.waiting(), 0);
        assert_eq!(queue.running(), 0);
    }

    #[tokio::test]
    async fn a_dropped_waiter_gives_its_place_back() {
        let queue = Arc::new(PasswordQueue::new(1, 1));
        let _held = queue.turn().await.unwrap();
        let waiter = tokio::spawn({
            let queue = Arc::clone(&queue);
            async move { queue.turn().await.map(|_| ()) }
        });
        while queue.waiting() < 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(queue.waiting(), 0);
    }
}
