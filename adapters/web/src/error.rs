//! The one error type of the HTTP API: an exhaustive status table and
//! RFC 9457 problem+json bodies. Public messages are written here; internal
//! causes go to the log only, under an error id the client can quote.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use application::Unexpected;

/// `Retry-After` of a 503: a dependency that did not answer in time. Short,
/// since a refused request changed nothing and retrying it is safe; not
/// zero, so that clients do not pile onto a dependency that is struggling.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;
/// The challenge of a refused proof (RFC 9449 §7.1), naming the algorithms
/// we accept.
pub const DPOP_CHALLENGE: &str = "DPoP error=\"invalid_dpop_proof\", algs=\"ES256 EdDSA\"";

/// The challenge of an access token refused under the `DPoP` scheme
/// (RFC 9449 §7.1).
pub const DPOP_INVALID_TOKEN: &str = "DPoP error=\"invalid_token\", algs=\"ES256 EdDSA\"";

/// Which `WWW-Authenticate` challenge a token failure carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// None: the refresh endpoints (their token is no access token).
    None,
    /// `Bearer` (RFC 6750 §3.1): a resource request.
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): a resource request under the `DPoP` scheme.
    Dpop,
}

/// One invalid field of a request body.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request")]
    MalformedRequest,
    /// Bytes that are not an HTTP/1 request (a malformed request line or
    /// header), answered by the server's HTTP parser (see [`crate::wire`]).
    #[error("not valid HTTP")]
    InvalidHttp,
    /// A header section over the HTTP parser's limits.
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("invalid input")]
    InvalidInput(Vec<FieldError>),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("username taken")]
    UsernameTaken,
    #[error("invalid credentials")]
    InvalidCredentials,
    /// No credentials at all. `challenge` selects the `WWW-Authenticate`
    /// form.
    #[error("missing token")]
    MissingToken { challenge: Challenge },
    #[error("invalid token")]
    InvalidToken { challenge: Challenge },
    #[error("token expired")]
    TokenExpired { challenge: Challenge },
    #[error("token reused")]
    TokenReused,
    #[error("session revoked")]
    SessionRevoked { challenge: Challenge },
    /// A DPoP proof is missing where the token needs one, malformed, or
    /// not valid for this request (RFC 9449 §7.1). 400 on login (the
    /// proof is a request parameter there), 401 elsewhere.
    #[error("invalid DPoP proof")]
    InvalidDpopProof { login: bool },
    /// `TOKENWARDEN_DPOP=required` and the login carried no proof.
    #[error("DPoP proof required")]
    DpopRequired,
    #[error("forbidden")]
    Forbidden,
    /// The right password of a disabled account.
    #[error("account disabled")]
    AccountDisabled,
    /// `TOKENWARDEN_REGISTRATION=closed`.
    #[error("registration closed")]
    RegistrationClosed,
    /// The change contradicts the resource's state (an admin locking
    /// themselves out).
    #[error("conflict")]
    Conflict,
    #[error("forbidden origin")]
    ForbiddenOrigin,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// The request (its body) did not arrive in time.
    #[error("request timeout")]
    RequestTimeout,
    /// A refusal by the framework with no more specific code (its status
    /// is kept).
    #[error("request refused")]
    Refused(StatusCode),
    #[error("storage unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl From<Unexpected> for ApiError {
    fn from(e: Unexpected) -> Self {
        match e {
            Unexpected::Store(e) => Self::Unavailable(e.to_string()),
            Unexpected::Crypto(e) => Self::Internal(e.to_string()),
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl ApiError {
    /// 429 with `Retry-After` in whole seconds, rounded up (at least 1).
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        let secs = retry_after
            .as_secs()
            .saturating_add(u64::from(retry_after.subsec_nanos() > 0));
        Self::RateLimited {
            retry_after_secs: secs.max(1),
        }
    }

    /// The stable machine-readable name of the error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedRequest | Self::InvalidHttp => "malformed_request",
            Self::HeadersTooLarge => "headers_too_large",
            Self::InvalidInput(_) => "invalid_input",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UsernameTaken => "username_taken",
            Self::InvalidCredentials => "invalid_credentials",
            Self::MissingToken { .. } => "missing_token",
            Self::InvalidToken { .. } => "invalid_token",
            Self::TokenExpired { .. } => "token_expired",
            Self::TokenReused => "token_reused",
            Self::SessionRevoked { .. } => "session_revoked",
            Self::InvalidDpopProof { .. } => "invalid_dpop_proof",
            Self::DpopRequired => "dpop_required",
            Self::Forbidden => "forbidden",
            Self::AccountDisabled => "account_disabled",
            Self::RegistrationClosed => "registration_closed",
            Self::Conflict => "conflict",
            Self::ForbiddenOrigin => "forbidden_origin",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::RequestTimeout => "request_timeout",
            Self::Refused(_) => "request_refused",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::MalformedRequest => "The request body is not valid JSON.",
            Self::InvalidHttp => "The request is not valid HTTP/1.1.",
            Self::HeadersTooLarge => {
                "The request's header section is too large (at most 96 headers and 128 KiB)."
            }
            Self::InvalidInput(_) => "The request is well-formed but some fields are invalid.",
            Self::PayloadTooLarge => "The request body exceeds 64 KiB.",
            Self::UsernameTaken => "This username is already taken.",
            Self::InvalidCredentials => "Invalid username or password.",
            Self::MissingToken { .. } => "No token was presented.",
            Self::InvalidToken { .. } => "The token is malformed, unknown or not valid here.",
            Self::TokenExpired { .. } => "The token has expired.",
            Self::TokenReused => {
                "This refresh token was already used; all affected sessions have been ended."
            }
            Self::SessionRevoked { .. } => "The session has ended; log in again.",
            Self::InvalidDpopProof { .. } => {
                "The DPoP proof is missing, malformed or not valid for this request."
            }
            Self::DpopRequired => "This server requires a DPoP proof with every login.",
            Self::Forbidden => "You lack the role this resource requires.",
            Self::AccountDisabled => "This account is disabled.",
            Self::RegistrationClosed => {
                "Self-registration is closed; an administrator creates accounts."
            }
            Self::Conflict => {
                "An admin cannot disable, delete or remove the admin role from themselves."
            }
            Self::ForbiddenOrigin => "Requests from this origin are not allowed.",
            Self::NotFound => "No such resource.",
            Self::MethodNotAllowed => "This method is not allowed on this resource.",
            Self::RateLimited { .. } => "Too many attempts; try again later.",
            Self::RequestTimeout => "The request did not arrive in time.",
            Self::Refused(_) => "The request was refused.",
            Self::Unavailable(_) => "The service is temporarily unavailable.",
            Self::Internal(_) => "An internal error occurred.",
        }
    }

    /// The `WWW-Authenticate` challenge of a failed resource request: the
    /// scheme the credentials came in (RFC 6750 §3.1, RFC 9449 §7.1).
    fn challenge(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken {
                challenge: Challenge::Bearer,
            } => Some("Bearer"),
            Self::InvalidToken { challenge }
            | Self::TokenExpired { challenge }
            | Self::SessionRevoked { challenge } => match challenge {
                Challenge::None => None,
                Challenge::Bearer => Some("Bearer error=\"invalid_token\""),
                Challenge::Dpop => Some(DPOP_INVALID_TOKEN),
            },
            Self::InvalidDpopProof { .. } => Some(DPOP_CHALLENGE),
            _ => None,
        }
    }

    /// This error as the answer to a request whose access token came under
    /// the `DPoP` scheme: its challenge is a `DPoP` one (RFC 9449 §7.1).
    #[must_use]
    pub fn under_dpop(self) -> Self {
        let dpop = |challenge| match challenge {
            Challenge::Bearer => Challenge::Dpop,
            other => other,
        };
        match self {
            Self::InvalidToken { challenge } => Self::InvalidToken {
                challenge: dpop(challenge),
            },
            Self::TokenExpired { challenge } => Self::TokenExpired {
                challenge: dpop(challenge),
            },
            Self::SessionRevoked { challenge } => Self::SessionRevoked {
                challenge: dpop(challenge),
            },
            other => other,
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_id: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MalformedRequest | Self::InvalidHttp => StatusCode::BAD_REQUEST,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::InvalidInput(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UsernameTaken => StatusCode::CONFLICT,
            Self::InvalidCredentials
            | Self::MissingToken { .. }
            | Self::InvalidToken { .. }
            | Self::TokenExpired { .. }
            | Self::TokenReused
            | Self::SessionRevoked { .. }
            | Self::InvalidDpopProof { login: false } => StatusCode::UNAUTHORIZED,
            Self::InvalidDpopProof { login: true } | Self::DpopRequired => StatusCode::BAD_REQUEST,
            Self::Forbidden
            | Self::ForbiddenOrigin
            | Self::AccountDisabled
            | Self::RegistrationClosed => StatusCode::FORBIDDEN,
            Self::Conflict => StatusCode::CONFLICT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Refused(status) => *status,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let error_id = match self {
            Self::Unavailable(cause) | Self::Internal(cause) => {
                let id = error_id();
                tracing::error!(error_id = %id, cause = %cause, "request failed");
                Some(id)
            }
            _ => None,
        };
        let code = self.code();
        let body = Problem {
            kind: format!(
                "https://tokenwarden.dev/problems/{}",
                code.replace('_', "-")
            ),
            title: self.title(),
            status: status.as_u16(),
            code,
            errors: match self {
                Self::InvalidInput(errors) => Some(errors),
                _ => None,
            },
            error_id,
        };
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if let Some(challenge) = self.challenge() {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            ));
        }
        match self {
            Self::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, UNAVAILABLE_RETRY_AFTER_SECS));
            }
            _ => {}
        }
        response.json(body)
    }
}

/// A short random id that ties a 5xx answer to its log line.
fn error_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}-{:x}",
        nanos & 0xffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
