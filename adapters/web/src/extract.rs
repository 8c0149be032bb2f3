//! The Bearer extractor: verifies the access token *and* that its session
//! is still live, on a blocking thread.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};

use application::{AccessCredentials, AuthError, AuthScheme, Principal};
use domain::Role;

use crate::dpop::dpop_input;
use crate::error::{ApiError, Challenge};
use crate::{ApiState, WebConfig};

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

/// The scheme and token of an `Authorization: Bearer <token>` or
/// `Authorization: DPoP <token>` header.
fn authorization(req: &HttpRequest) -> Result<(AuthScheme, String), ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::MissingToken {
            challenge: Challenge::Bearer,
        });
    };
    let value = value.to_str().map_err(|_| ApiError::InvalidToken {
        challenge: Challenge::Bearer,
    })?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::InvalidToken {
        challenge: Challenge::Bearer,
    })?;
    let token = token.trim();
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        AuthScheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        AuthScheme::Dpop
    } else {
        return Err(ApiError::InvalidToken {
            challenge: Challenge::Bearer,
        });
    };
    if token.is_empty() || token.len() > MAX_BEARER_LEN {
        return Err(ApiError::InvalidToken {
            challenge: Challenge::Bearer,
        });
    }
    Ok((scheme, token.to_owned()))
}

/// The access token of the request with its `DPoP` proof, if any.
///
/// # Errors
/// As [`authorization`], and `invalid_dpop_proof` for a `DPoP` header that
/// cannot be read.
pub fn access_credentials(
    req: &HttpRequest,
    config: &WebConfig,
) -> Result<AccessCredentials, ApiError> {
    let (scheme, token) = authorization(req)?;
    let trusted = &config.trusted_proxies;
    let proof = dpop_input(req, trusted, config.public_url.as_deref()).map_err(|why| {
        tracing::info!(reason = %why, "DPoP header refused");
        ApiError::InvalidDpopProof { login: false }
    })?;
    Ok(AccessCredentials {
        token,
        scheme,
        proof,
    })
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            // A revoked access token: its session may be live, so the
            // client should refresh rather than log in again.
            AuthError::Invalid | AuthError::TokenRevoked => ApiError::InvalidToken {
                challenge: Challenge::Bearer,
            },
            AuthError::Expired => ApiError::TokenExpired {
                challenge: Challenge::Bearer,
            },
            AuthError::SessionRevoked => ApiError::SessionRevoked {
                challenge: Challenge::Bearer,
            },
            AuthError::InvalidDpopProof(why) => {
                tracing::info!(reason = %why, "DPoP proof refused");
                ApiError::InvalidDpopProof { login: false }
            }
            AuthError::Unexpected(e) => e.into(),
        }
    }
}

/// `error`, answered in the challenge of the scheme the token came in.
pub(crate) fn with_scheme(error: ApiError, scheme: AuthScheme) -> ApiError {
    match scheme {
        AuthScheme::Bearer => error,
        AuthScheme::Dpop => error.under_dpop(),
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<ApiState>>().cloned() else {
            return Box::pin(async { Err(ApiError::Internal("ApiState missing".to_owned())) });
        };
        let credentials = access_credentials(req, &state.config);
        Box::pin(async move {
            let credentials = credentials?;
            let scheme = credentials.scheme;
            let principal =
                crate::handlers::blocking(move || state.warden.authenticate_request(&credentials))
                    .await?
                    .map_err(|e| with_scheme(e.into(), scheme))?;
            crate::middleware::record_principal(principal.user_id, principal.session_id);
            Ok(Authenticated(principal))
        })
    }
}
