pub mod accounts;
pub mod admin;
pub mod auth;
pub mod introspect;
pub mod ops;
mod refresh_audit;
pub mod sessions;
pub mod wellknown;

use actix_web::HttpResponse;

use crate::error::ApiError;
use crate::ApiState;

/// Runs blocking work (a use case) off the async workers, inside the
/// current tracing span and under the request's deadline (see
/// [`crate::deadline`]): when the work has not finished by then (plus
/// [`crate::deadline::SLACK`]), the answer is `503` and the work, which sees
/// the same deadline, gives up its waits and commits nothing; unless it has
/// already begun to commit, and then its own answer is awaited (the two
/// agree through an [`application::deadline::Fate`], so a client told `503`
/// never finds its token spent).
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    let deadline = crate::deadline::current();
    let fate = application::deadline::Fate::new();
    let work_fate = fate.clone();
    let work = actix_web::web::block(move || {
        let _deadline = application::deadline::enter_with(deadline, work_fate);
        span.in_scope(f)
    });
    let Some(deadline) = deadline else {
        return Ok(work.await?);
    };
    let until = tokio::time::Instant::from_std(deadline + crate::deadline::SLACK);
    let mut work = std::pin::pin!(work);
    match tokio::time::timeout_at(until, work.as_mut()).await {
        Ok(done) => Ok(done?),
        Err(_) if fate.abandon() => Err(ApiError::Unavailable(
            "the request's dependencies did not answer before its deadline".to_owned(),
        )),
        Err(_) => Ok(work.await?),
    }
}

/// [`blocking`] for a use case that hashes or checks a password: it runs
/// once the request holds a turn of the password queue (waiting for one
/// parks the request, not a thread), and keeps the turn until it ends.
///
/// # Errors
/// `503 service_unavailable` with `Retry-After` at once when the queue is
/// full, or when no turn came before the request's deadline; otherwise as
/// [`blocking`].
pub async fn password_work<T, F>(state: &ApiState, f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    password_work_on(state, (), |()| f())
        .await
        .map_err(|(busy, ())| busy)?
}

/// [`password_work`] on `input`, which comes back with the refusal when no
/// turn came in time (the work never ran), for the caller to undo what it
/// stood for (a login's rate-limit reservation).
///
/// # Errors
/// `Err((503, input))` when no turn came; `Ok(Err(_))` as [`blocking`].
pub async fn password_work_on<I, T, F>(
    state: &ApiState,
    input: I,
    f: F,
) -> Result<Result<T, ApiError>, (ApiError, I)>
where
    I: Send + 'static,
    F: FnOnce(I) -> T + Send + 'static,
    T: Send + 'static,
{
    let turn = match state.password_queue.turn().await {
        Ok(turn) => turn,
        Err(busy) => return Err((busy, input)),
    };
    Ok(blocking(move || {
        let _turn = turn;
        f(input)
    })
    .await)
}

/// Unknown routes and methods get a problem body too.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
