//! The audit record of a refresh request refused before the use case ran
//! (foreign origin, unreadable body, a body that did not arrive in time,
//! duplicate cookies): written before the response leaves, so that every
//! request to `/auth/refresh` is in the trail. It is written under the
//! request's dependency deadline, which starts once the body reading has
//! ended (see [`crate::deadline`]). Such a request is a failed refresh: it
//! uses the client's failed-refresh budget, and once that is used up it is
//! answered 429 and only counted in the aggregated `rate_limited` row.

use actix_web::web;

use application::ports::ClientInfo;
use application::RefreshRejection;

use super::blocking;
use crate::error::ApiError;
use crate::ApiState;

/// Counts and records the rejection and hands back the error to answer
/// with: `error`, or `429 rate_limited` when the client is over its
/// failed-refresh budget; when the record cannot be written, that failure
/// instead (no response goes out without its record).
pub(super) async fn rejected(
    state: &web::Data<ApiState>,
    rejection: RefreshRejection,
    token: Option<String>,
    client: ClientInfo,
    error: ApiError,
) -> ApiError {
    let state = state.clone();
    let recorded = blocking(move || {
        state
            .warden
            .reject_refresh(rejection, token.as_deref(), &client)
    })
    .await;
    match recorded {
        Ok(Ok(Ok(()))) => error,
        Ok(Ok(Err(wait))) => ApiError::rate_limited(wait),
        Ok(Err(unexpected)) => unexpected.into(),
        Err(e) => e,
    }
}

/// Which rejection a body error is.
pub(super) fn rejection_of(error: &ApiError) -> RefreshRejection {
    match error {
        ApiError::PayloadTooLarge => RefreshRejection::PayloadTooLarge,
        ApiError::RequestTimeout => RefreshRejection::RequestTimeout,
        ApiError::InvalidInput(_) => RefreshRejection::InvalidRequest,
        _ => RefreshRejection::MalformedRequest,
    }
}
