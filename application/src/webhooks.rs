//! When a webhook delivery that failed is tried again, and when it is given
//! up. Pure: the clock and the jitter are arguments.
//!
//! The delay doubles from [`RetryPolicy::first_delay`] up to
//! [`RetryPolicy::max_delay`], each drawn in its upper half ("equal
//! jitter": receivers that were down for everyone are not hit by every
//! sender at once when they come back, and no delay shrinks below half its
//! step). Attempts stop [`RetryPolicy::give_up_after`] the event; the last
//! one is made at that deadline.

use std::time::Duration;

use domain::Timestamp;

/// The retry schedule of webhook deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failed attempt (before jitter).
    pub first_delay: Duration,
    /// The longest delay between two attempts (before jitter).
    pub max_delay: Duration,
    /// How long after the event attempts go on.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 5 s, 10 s, 20 s… up to an hour between attempts, for 24 hours.
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(3_600),
            give_up_after: Duration::from_secs(24 * 3_600),
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(Timestamp),
    GiveUp,
}

impl RetryPolicy {
    /// The last instant an attempt may be made for an event of `created_at`.
    pub fn deadline(&self, created_at: Timestamp) -> Timestamp {
        created_at.plus(self.give_up_after)
    }

    /// Whether an event of `created_at` is past its last attempt at `now`:
    /// a row found that late (webhooks were off, or every instance was down
    /// for a day) is given up without being sent.
    pub fn expired(&self, created_at: Timestamp, now: Timestamp) -> bool {
        now > self.deadline(created_at)
    }

    /// After attempt number `attempt` (1 for the first) of an event of
    /// `created_at` failed at `now`: when to try again, with `jitter` (in
    /// `[0, 1)`, drawn by the caller) placing the delay in the upper half of
    /// its step.
    pub fn after_failure(
        &self,
        attempt: u32,
        created_at: Timestamp,
        now: Timestamp,
        jitter: f64,
    ) -> AfterFailure {
        let deadline = self.deadline(created_at);
        if now >= deadline {
            return AfterFailure::GiveUp;
        }
        let step = self.step(attempt);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let delay = step / 2 + step.div_f64(2.0).mul_f64(jitter);
        AfterFailure::RetryAt(now.plus(delay).min(deadline))
    }

    /// `first_delay · 2^(attempt − 1)`, at most `max_delay`.
    fn step(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1);
        2u32.checked_pow(doublings)
            .and_then(|factor| self.first_delay.checked_mul(factor))
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    fn retry_at(policy: &RetryPolicy, attempt: u32, now: Timestamp, jitter: f64) -> Duration {
        match policy.after_failure(attempt, T0, now, jitter) {
            AfterFailure::RetryAt(at) => now.until(at),
            AfterFailure::GiveUp => panic!("gave up"),
        }
    }

    #[test]
    fn delays_double_from_the_first_and_stop_growing_at_the_maximum() {
        let p = RetryPolicy::default();
        let full = |attempt| retry_at(&p, attempt, T0, 1.0);
        assert_eq!(full(1), Duration::from_secs(5));
        assert_eq!(full(2), Duration::from_secs(10));
        assert_eq!(full(3), Duration::from_secs(20));
        assert_eq!(full(11), Duration::from_secs(3_600));
        assert_eq!(full(500), Duration::from_secs(3_600));
    }

    #[test]
    fn jitter_keeps_each_delay_in_the_upper_half_of_its_step() {
        let p = RetryPolicy::default();
        assert_eq!(retry_at(&p, 2, T0, 0.0), Duration::from_secs(5));
        assert_eq!(retry_at(&p, 2, T0, 0.5), Duration::from_millis(7_500));
        // Out-of-range jitter is clamped, not trusted.
        assert_eq!(retry_at(&p, 2, T0, 7.0), Duration::from_secs(10));
        assert_eq!(retry_at(&p, 2, T0, f64::NAN), Duration::from_secs(5));
    }

    #[test]
    fn the_last_attempt_is_at_the_deadline_and_then_it_gives_up() {
        let p = RetryPolicy::default();
        let deadline = T0.plus(Duration::from_secs(24 * 3_600));
        let late = deadline.minus(Duration::from_secs(60));
        assert_eq!(
            p.after_failure(20, T0, late, 0.9),
            AfterFailure::RetryAt(deadline)
        );
        assert_eq!(p.after_failure(21, T0, deadline, 0.9), AfterFailure::GiveUp);
        assert!(!p.expired(T0, deadline));
        assert!(p.expired(T0, deadline.plus(Duration::from_millis(1))));
    }
}
