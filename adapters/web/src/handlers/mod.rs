pub mod admin;
pub mod auth;
pub mod introspect;
pub mod ops;
mod refresh_audit;
pub mod sessions;
pub mod wellknown;

use actix_web::HttpResponse;

use crate::error::ApiError;

/// Runs blocking work (a use case) off the async workers, inside the
/// current tracing span and under the request's deadline (see
/// [`crate::deadline`]): when the work has not finished by then (plus
/// [`crate::deadline::SLACK`]), the answer is `503` and the work, which sees
/// the same deadline, gives up its waits and commits nothing.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    let deadline = crate::deadline::current();
    let work = actix_web::web::block(move || {
        let _deadline = application::deadline::enter(deadline);
        span.in_scope(f)
    });
    let Some(deadline) = deadline else {
        return Ok(work.await?);
    };
    let until = tokio::time::Instant::from_std(deadline + crate::deadline::SLACK);
    match tokio::time::timeout_at(until, work).await {
        Ok(done) => Ok(done?),
        Err(_) => Err(ApiError::Unavailable(
            "the request's dependencies did not answer before its deadline".to_owned(),
        )),
    }
}

/// Unknown routes and methods get a problem body too.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
