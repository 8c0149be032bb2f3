//! What the worker counts, through the [`metrics`] facade; the server
//! describes and exports these names.

use metrics::{counter, gauge};

/// Rows in the outbox: waiting, scheduled for a retry, or being sent.
pub const PENDING: &str = "tokenwarden_webhook_pending";
/// Events the receiver acknowledged with a 2xx.
pub const DELIVERED: &str = "tokenwarden_webhook_delivered_total";
/// Events given up without an acknowledgement (24 h of retries).
pub const FAILED: &str = "tokenwarden_webhook_failed_total";
/// Attempts that failed (and were retried or given up).
pub const ATTEMPT_FAILURES: &str = "tokenwarden_webhook_attempt_failures_total";

pub(crate) fn pending(n: u64) {
    gauge!(PENDING).set(n as f64);
}

pub(crate) fn delivered() {
    counter!(DELIVERED).increment(1);
}

pub(crate) fn failed() {
    counter!(FAILED).increment(1);
}

pub(crate) fn attempt_failed() {
    counter!(ATTEMPT_FAILURES).increment(1);
}
