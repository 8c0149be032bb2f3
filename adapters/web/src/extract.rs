//! The Bearer extractor: verifies the access token *and* that its session
//! is still live, on a blocking thread.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use application::{AuthError, Principal};
use domain::Role;

use crate::error::ApiError;
use crate::ApiState;

/// Longest `Authorization` header value looked at; anything longer is invalid.
const MAX_BEARER_LEN: usize = 8 * 1024;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl Authenticated {
    /// 403 `forbidden` unless the caller has `role`.
    pub fn require(&self, role: &Role) -> Result<(), ApiError> {
        if self.0.has_role(role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::MissingToken { bearer: true });
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidToken { bearer: true })?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or(ApiError::InvalidToken { bearer: true })?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > MAX_BEARER_LEN {
        return Err(ApiError::InvalidToken { bearer: true });
    }
    Ok(token.to_owned())
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<ApiState>>().cloned();
        Box::pin(async move {
            let token = token?;
            let state = state.ok_or_else(|| ApiError::Internal("ApiState missing".to_owned()))?;
            let principal = crate::handlers::blocking(move || state.warden.authenticate(&token))
                .await?
                .map_err(|e| match e {
                    // A revoked access token: its session may be live, so
                    // the client should refresh rather than log in again.
                    AuthError::Invalid | AuthError::TokenRevoked => {
                        ApiError::InvalidToken { bearer: true }
                    }
                    AuthError::Expired => ApiError::TokenExpired { bearer: true },
                    AuthError::SessionRevoked => ApiError::SessionRevoked { bearer: true },
                    AuthError::Unexpected(e) => e.into(),
                })?;
            crate::middleware::record_principal(principal.user_id, principal.session_id);
            Ok(Authenticated(principal))
        })
    }
}
