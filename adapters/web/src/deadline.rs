//! Every request's deadline (`TOKENWARDEN_DEPENDENCY_TIMEOUT` after its
//! arrival) and the count of requests in flight.
//!
//! [`bound_requests`] wraps every route: it starts the request's clock,
//! makes the deadline known to [`crate::handlers::blocking`] (a task-local,
//! since handlers are plain functions) and counts the request while it
//! runs.
//!
//! A request *arrives* when its body has been read to its end (or the
//! reading has ended otherwise: 408, 413, a broken connection); a request
//! without a body, when its handler starts. The middleware starts the clock
//! when the headers are in, and [`crate::body::read_body`] starts it again
//! ([`restart`]) when the body is done: the time a client takes to upload,
//! bounded on its own by `TOKENWARDEN_REQUEST_TIMEOUT`, never uses up the
//! time the dependencies get. (Work done before the body is read, such as
//! checking a Bearer token, runs under the clock started with the headers.)
//!
//! `blocking` answers `503 service_unavailable` with `Retry-After`
//! when the work is not done by the deadline, and hands the deadline to the
//! thread that does it (`application::deadline`), so that the storage
//! adapters wait no longer than that for a connection or a lock, and roll
//! back rather than commit work whose client has been told 503.
//!
//! A `503` says how long the server spent on the request, from its
//! arrival to the answer, in a `Server-Timing: total;dur=<ms>`
//! header: the wait that the contract bounds by the timeout plus 100 ms,
//! as the server saw it (a client's own clock adds its scheduling).

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::Error;

/// The running request's clock: when it arrived (see the module's
/// documentation) and how long its dependencies may take from then.
struct Clock {
    arrived: Cell<Instant>,
    timeout: Duration,
}

tokio::task_local! {
    static CLOCK: Clock;
}

/// How much later than the deadline `blocking` gives up waiting for its
/// work: the adapters, which see the same deadline, then answer first with
/// their own (more precise) error, and the answer still leaves within the
/// contract's 100 ms.
pub const SLACK: Duration = Duration::from_millis(50);

/// The current request's deadline, when running inside [`bound_requests`].
pub fn current() -> Option<Instant> {
    CLOCK.try_with(|c| c.arrived.get() + c.timeout).ok()
}

/// The request has arrived now (its body is read): its deadline is
/// `TOKENWARDEN_DEPENDENCY_TIMEOUT` from here. Outside [`bound_requests`],
/// nothing.
pub fn restart() {
    let _ = CLOCK.try_with(|c| c.arrived.set(Instant::now()));
}

/// When the current request arrived, as its clock says now.
fn arrived() -> Option<Instant> {
    CLOCK.try_with(|c| c.arrived.get()).ok()
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

/// `Server-Timing: total;dur=<milliseconds>` (W3C Server Timing).
fn add_server_timing(headers: &mut actix_web::http::header::HeaderMap, spent: Duration) {
    let value = format!("total;dur={:.1}", spent.as_secs_f64() * 1_000.0);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&value) {
        headers.insert(
            actix_web::http::header::HeaderName::from_static("server-timing"),
            value,
        );
    }
}

/// The middleware: `App::new().wrap(from_fn(bound_requests(timeout, in_flight)))`.
pub fn bound_requests<B: MessageBody + 'static>(
    timeout: Duration,
    in_flight: InFlight,
) -> impl Fn(ServiceRequest, Next<B>) -> Answer<B> + Clone + 'static {
    move |req: ServiceRequest, next: Next<B>| {
        let guard = in_flight.enter();
        let clock = Clock {
            arrived: Cell::new(Instant::now()),
            timeout,
        };
        Box::pin(CLOCK.scope(clock, async move {
            let mut result = next.call(req).await;
            drop(guard);
            if let Ok(answer) = &mut result {
                if answer.status() == actix_web::http::StatusCode::SERVICE_UNAVAILABLE {
                    let spent = arrived().map_or(Duration::ZERO, |at| at.elapsed());
                    add_server_timing(answer.headers_mut(), spent);
                }
            }
            result
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::blocking;
    use actix_web::middleware::from_fn;
    use actix_web::{test, web, App, HttpResponse};

    const TIMEOUT: Duration = Duration::from_millis(200);

    /// Work that takes `ms` and, when `commits`, claims its commit first
    /// (as a write transaction does before `COMMIT`).
    async fn work(ms: u64, commits: bool) -> Result<HttpResponse, crate::error::ApiError> {
        blocking(move || {
            if commits {
                assert!(application::deadline::may_commit());
            }
            std::thread::sleep(Duration::from_millis(ms));
        })
        .await
        .map(|()| HttpResponse::Ok().finish())
    }

    /// A request whose body takes 300 ms to arrive (longer than the
    /// timeout), then needs 100 ms of work.
    async fn slow_upload() -> Result<HttpResponse, crate::error::ApiError> {
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
        restart();
        work(100, true).await
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "a stand-in app for the middleware, not the API"
    )]
    async fn call(path: &str) -> (actix_web::http::StatusCode, Option<String>, Duration) {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(bound_requests(TIMEOUT, InFlight::default())))
                .route("/slow", web::get().to(|| work(600, false)))
                .route("/committing", web::get().to(|| work(400, true)))
                .route("/slow-upload", web::get().to(slow_upload)),
        )
        .await;
        let started = Instant::now();
        let answer =
            test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        let timing = answer
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (answer.status(), timing, started.elapsed())
    }

    #[actix_web::test]
    async fn work_past_its_deadline_is_a_503_that_says_how_long_it_took() {
        let (status, timing, elapsed) = call("/slow").await;
        assert_eq!(status, actix_web::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(elapsed < Duration::from_millis(550), "{elapsed:?}");
        let ms: f64 = timing
            .as_deref()
            .and_then(|t| t.strip_prefix("total;dur="))
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("Server-Timing: {timing:?}"));
        assert!((200.0..550.0).contains(&ms), "{ms}");
    }

    #[actix_web::test]
    async fn work_that_began_to_commit_is_awaited_not_refused() {
        let (status, timing, elapsed) = call("/committing").await;
        assert_eq!(status, actix_web::http::StatusCode::OK, "its own answer");
        assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
        assert_eq!(timing, None, "no Server-Timing on a 200");
    }

    #[actix_web::test]
    async fn the_deadline_counts_from_the_arrival_of_the_body() {
        let (status, timing, elapsed) = call("/slow-upload").await;
        assert_eq!(status, actix_web::http::StatusCode::OK, "{timing:?}");
        assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    }

    #[actix_web::test]
    async fn outside_the_middleware_there_is_no_deadline() {
        restart();
        assert_eq!(current(), None);
    }
}
