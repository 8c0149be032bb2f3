//! Credentialed CORS for pages on the origins listed in
//! `TOKENWARDEN_ALLOWED_ORIGINS`, on `/auth/*`, `/api/*` and `/admin/*`,
//! with `actix-cors`.
//!
//! A listed origin gets `Access-Control-Allow-Origin` (its own origin, never
//! `*`), `Access-Control-Allow-Credentials: true`, and its preflights answer
//! 204 with the methods and headers below. Any other origin, or any other
//! path, gets no CORS headers: its actual requests are served as before
//! (the browser then hides the answer from the page, and cookie POSTs meet
//! the Origin check), and its preflights are refused with 403
//! `forbidden_origin`. Every response says `Vary: Origin`.
//!
//! Wrap the app in [`cors`] first and [`cors_answers`] around it:
//! `App::new().wrap(cors(&config)).wrap(from_fn(cors_answers))`.

use actix_cors::Cors;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError as _};

use crate::error::ApiError;
use crate::WebConfig;

/// The paths that speak CORS.
pub const PATH_PREFIXES: [&str; 3] = ["/auth/", "/api/", "/admin/"];

/// Methods a listed origin may use.
pub const METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PATCH, Method::DELETE];

/// Request headers a listed origin may send (besides the CORS-safelisted).
pub const REQUEST_HEADERS: [&str; 4] = ["content-type", "authorization", "dpop", "x-request-id"];

/// Response headers a listed origin's script may read.
pub const EXPOSED_HEADERS: [&str; 4] = [
    "retry-after",
    "www-authenticate",
    "x-request-id",
    "dpop-nonce",
];

/// How long a browser may cache a preflight answer.
pub const MAX_AGE_SECS: usize = 600;

/// Whether `origin` may use CORS on `path`: the path is under one of
/// [`PATH_PREFIXES`] and the origin is listed (compared case-insensitively,
/// as the Origin check does).
pub fn is_allowed(allowed_origins: &[String], origin: &[u8], path: &str) -> bool {
    PATH_PREFIXES.iter().any(|p| path.starts_with(p))
        && allowed_origins
            .iter()
            .any(|o| o.as_bytes().eq_ignore_ascii_case(origin))
}

/// The CORS middleware for `config.allowed_origins`.
pub fn cors(config: &WebConfig) -> Cors {
    let allowed = config.allowed_origins.clone();
    Cors::default()
        .allowed_origin_fn(move |origin, head| {
            is_allowed(&allowed, origin.as_bytes(), head.uri.path())
        })
        .allowed_methods(METHODS)
        .allowed_headers(REQUEST_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        .supports_credentials()
        .max_age(MAX_AGE_SECS)
}

/// A CORS preflight, as `actix-cors` recognises one: `OPTIONS` with a valid
/// `Access-Control-Request-Method`.
fn is_preflight(req: &ServiceRequest) -> bool {
    req.method() == Method::OPTIONS
        && req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| Method::from_bytes(v.as_bytes()).ok())
            .is_some()
}

/// Middleware around [`cors`]: an accepted preflight answers `204 No
/// Content` (`actix-cors` says 200), a refused one `403 forbidden_origin` as
/// a problem document (`actix-cors` says 400 in plain text) without any CORS
/// header; a response without `Access-Control-Allow-Origin` loses the other
/// CORS headers too (`actix-cors` sends `-Allow-Credentials` to anyone).
///
/// # Errors
/// Passes the inner service's errors on unchanged.
pub async fn cors_answers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if !is_preflight(&req) {
        let mut res = next.call(req).await?.map_into_boxed_body();
        let headers = res.headers_mut();
        if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
            headers.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
        }
        return Ok(res);
    }
    let res = next.call(req).await?;
    if res.status().is_success() {
        let mut res = res.map_into_boxed_body();
        *res.response_mut().status_mut() = StatusCode::NO_CONTENT;
        return Ok(res);
    }
    let (req, _) = res.into_parts();
    let mut refusal = ApiError::ForbiddenOrigin.error_response();
    refusal.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    Ok(ServiceResponse::new(req, refusal))
}

#[cfg(test)]
mod tests;
