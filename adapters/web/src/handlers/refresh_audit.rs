//! The audit record of a refresh request refused before the use case ran
//! (foreign origin, unreadable body, a body that did not arrive in time):
//! written before the response leaves, so that every request to
//! `/auth/refresh` leaves exactly one record. It is written under the
//! request's dependency deadline, which starts once the body reading has
//! ended (see [`crate::deadline`]).

use actix_web::web;

use application::ports::ClientInfo;
use application::RefreshRejection;

use super::blocking;
use crate::error::ApiError;
use crate::ApiState;

/// Records the rejection and hands back the error to answer with; when the
/// record cannot be written, that failure instead (no response goes out
/// without its record).
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
            .record_refresh_rejection(rejection, token.as_deref(), &client)
    })
    .await;
    match recorded {
        Ok(Ok(())) => error,
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
