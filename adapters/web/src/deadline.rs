//! Every request's deadline (`TOKENWARDEN_DEPENDENCY_TIMEOUT` after its
//! arrival) and the count of requests in flight.
//!
//! [`bound_requests`] wraps every route: it starts the request's clock,
//! makes the deadline known to [`crate::handlers::blocking`] (a task-local,
//! since handlers are plain functions) and counts the request while it
//! runs. `blocking` answers `503 service_unavailable` with `Retry-After`
//! when the work is not done by the deadline, and hands the deadline to the
//! thread that does it (`application::deadline`), so that the storage
//! adapters wait no longer than that for a connection or a lock, and roll
//! back rather than commit work whose client has been told 503.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::Error;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// How much later than the deadline `blocking` gives up waiting for its
/// work: the adapters, which see the same deadline, then answer first with
/// their own (more precise) error, and the answer still leaves within the
/// contract's 100 ms.
pub const SLACK: Duration = Duration::from_millis(50);

/// The current request's deadline, when running inside [`bound_requests`].
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// The requests running now, shared between the middleware and whoever
/// reports on them (shutdown).
#[derive(Debug, Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// How many requests are running.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn enter(&self) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(Arc::clone(&self.0))
    }
}

/// Counts one request until it is answered or dropped.
struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What the middleware's future resolves to.
type Answer<B> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<ServiceResponse<B>, Error>>>>;

/// The middleware: `App::new().wrap(from_fn(bound_requests(timeout, in_flight)))`.
pub fn bound_requests<B: MessageBody + 'static>(
    timeout: Duration,
    in_flight: InFlight,
) -> impl Fn(ServiceRequest, Next<B>) -> Answer<B> + Clone + 'static {
    move |req: ServiceRequest, next: Next<B>| {
        let guard = in_flight.enter();
        let deadline = Instant::now() + timeout;
        Box::pin(async move {
            let result = DEADLINE.scope(deadline, next.call(req)).await;
            drop(guard);
            result
        })
    }
}
