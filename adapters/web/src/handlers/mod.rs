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
/// current tracing span.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    Ok(actix_web::web::block(move || span.in_scope(f)).await?)
}

/// Unknown routes and methods get a problem body too.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
