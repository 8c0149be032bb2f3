//! The OpenAPI 3.1 document, made from the routes as they are registered:
//! each handler's `#[utoipa::path]` and its actix route macro (method and
//! path), the DTOs' `ToSchema` derives, and what this module adds (info,
//! tags, security schemes, `Retry-After` on every 429 and 503).
//!
//! **Adding an endpoint**: put `#[utoipa::path(...)]` and then the actix
//! route macro (`#[get("/path")]`) on its handler, and register it with
//! `.service(handler)` in `register` (`lib.rs`). That one call routes it
//! and documents it; there is no other list to keep. Actix's own `route`
//! and `service` are refused by clippy (`disallowed-methods` in
//! `clippy.toml`), so a route cannot be added past the document.

use actix_web::dev::{ServiceFactory, ServiceRequest};
use actix_web::App;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_actix_web::AppExt as _;

use crate::admin_dto::{
    AdminSessionBody, AdminUserBody, AdminUserDetailBody, CreateUserRequest, NewPasswordRequest,
    PasswordChangeRequest, PatchUserRequest, RoleName,
};
use crate::admin_dto::{
    AnalysedSessionBody, AnalysisBody, AttemptsBody, RefreshLogBody, RiskBody, SecurityEventBody,
    SeenIpBody, SeenUserAgentBody,
};
use crate::dto::{
    LoginRequest, MeBody, RefreshRequest, RegisterRequest, SessionBody, TokenDelivery,
    TokenResponse, UserBody,
};
use crate::error::FieldError;
use crate::handlers::ops::{Health, NotReady, Readiness};

/// Name of the Bearer (access token) security scheme.
pub const BEARER: &str = "bearer";
/// Name of the refresh-cookie security scheme.
pub const REFRESH_COOKIE: &str = "refresh_cookie";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Token Warden",
        description = "Refresh-token service: password login, short-lived EdDSA access tokens \
                       (RFC 9068), opaque refresh tokens rotated on every use, reuse detection, \
                       server-side logout.\n\n\
                       Every error is an RFC 9457 problem document \
                       (`application/problem+json`, schema `Problem`) whose `code` is one of \
                       `ErrorCode`. Unknown routes answer 404 `not_found`, a known path with \
                       a method it does not have 405 `method_not_allowed` with `Allow`. So do \
                       the answers to requests that cannot be read as HTTP/1.1: a malformed \
                       request line or header (400 `malformed_request`), a header section \
                       over 96 headers or 128 KiB (431 `headers_too_large`), a head not \
                       received within the request timeout (408 `request_timeout`); the \
                       connection is closed after them. A body not received within the \
                       request timeout is 408 `request_timeout` too, and the connection is \
                       closed. A `503 service_unavailable` for a dependency that did not \
                       answer comes within the dependency timeout of the request's arrival, \
                       which is when its body has been read: a slow upload does not use it \
                       up. Every response carries \
                       `X-Request-Id` (the caller's, when it is 1-128 characters of \
                       `[A-Za-z0-9._:-]`, else a fresh one).",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(
        Problem,
        ErrorCode,
        FieldError,
        RegisterRequest,
        LoginRequest,
        TokenDelivery,
        RefreshRequest,
        TokenResponse,
        UserBody,
        SessionBody,
        MeBody,
        Jwks,
        Jwk,
        crate::handlers::wellknown::Discovery,
        Health,
        Readiness,
        NotReady,
        TokenField,
        Introspection,
        AnalysisBody,
        AnalysedSessionBody,
        AttemptsBody,
        SeenIpBody,
        SeenUserAgentBody,
        RiskBody,
        RefreshLogBody,
        SecurityEventBody,
        RefreshLogPage,
        SecurityEventPage,
        UserPage,
        AdminUserBody,
        AdminUserDetailBody,
        AdminSessionBody,
        PasswordChangeRequest,
        NewPasswordRequest,
        CreateUserRequest,
        PatchUserRequest,
        RoleName,
        SecurityEventKindName,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Login, refresh-token rotation, logout"),
        (name = "sessions", description = "The caller's sessions (Bearer)"),
        (name = "keys", description = "Public signing keys and discovery metadata"),
        (name = "admin", description = "Theft analysis and incident response (role `admin`)"),
        (name = "operations", description = "Health, metrics, this document"),
        (name = "pages", description = "The web client (`/`) and the security console (`/console`), served from the binary"),
    ),
)]
pub struct ApiDoc;

/// Registers every route of the API port on `app` (`crate::register`) and
/// returns it with the document those registrations make, as served: the
/// refresh cookie's configured name, `/metrics` only when `with_metrics`
/// (it is then registered), `Retry-After` on every 429 and 503.
pub fn registered<T>(app: App<T>, with_metrics: bool, cookie_name: &str) -> (App<T>, Document)
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    let (app, mut doc) = app
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(|cfg| crate::register(cfg, with_metrics))
        .split_for_parts();
    RetryAfter.modify(&mut doc);
    if let Some(components) = doc.components.as_mut() {
        components.add_security_scheme(REFRESH_COOKIE, cookie_scheme(cookie_name));
    }
    (app, doc)
}

/// The document of the API port (what [`registered`] makes), without an app.
pub fn document(cookie_name: &str, with_metrics: bool) -> Document {
    registered(App::new(), with_metrics, cookie_name).1
}

fn cookie_scheme(name: &str) -> SecurityScheme {
    SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
        name,
        "The refresh token, `HttpOnly; Secure; SameSite=Strict; Path=/auth`, set by login \
         and refresh. Native clients send `refresh_token` in the body instead.",
    )))
}

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from login or refresh (EdDSA, `typ: at+jwt`). \
                         Failures answer 401 with `WWW-Authenticate` per RFC 6750 §3.1.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(REFRESH_COOKIE, cookie_scheme("refresh_token"));
    }
}

/// Every 429 and 503 carries `Retry-After` (whole seconds): the contract
/// promises it, so the document says it once for all of them rather than
/// relying on each handler's attribute. Every 503 also says how long the
/// server spent on the request (`Server-Timing`, see `deadline.rs`).
struct RetryAfter;

impl Modify for RetryAfter {
    fn modify(&self, openapi: &mut Document) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::{ObjectBuilder, RefOr, Type};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if status != "429" && status != "503" {
                        continue;
                    }
                    response
                        .headers
                        .entry("Retry-After".to_owned())
                        .or_insert_with(|| {
                            RefOr::T(
                                HeaderBuilder::new()
                                    .schema(Some(
                                        ObjectBuilder::new()
                                            .schema_type(Type::Integer)
                                            .minimum(Some(1)),
                                    ))
                                    .description(Some("Seconds to wait before trying again"))
                                    .build(),
                            )
                        });
                    if status == "503" {
                        response
                            .headers
                            .entry("Server-Timing".to_owned())
                            .or_insert_with(|| {
                                RefOr::T(
                                    HeaderBuilder::new()
                                        .schema(Some(
                                            ObjectBuilder::new()
                                                .schema_type(Type::String)
                                                .pattern(Some(r"^total;dur=[0-9]+(\.[0-9]+)?$")),
                                        ))
                                        .description(Some(
                                            "How long the server spent on the request since \
                                             it arrived (its body read), in milliseconds by its \
                                             own clock (W3C Server Timing), for example \
                                             `total;dur=1003.2`",
                                        ))
                                        .build(),
                                )
                            });
                    }
                }
            }
        }
    }
}

/// A page of the refresh audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: admin_dto::PageBody is what is written"
)]
pub struct RefreshLogPage {
    items: Vec<RefreshLogBody>,
    /// Pass as `before` for the next page; `null` on the last page.
    next: Option<String>,
}

/// A page of security events.
#[derive(Debug, Serialize, ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: admin_dto::PageBody is what is written"
)]
pub struct SecurityEventPage {
    items: Vec<SecurityEventBody>,
    /// Pass as `before` for the next page; `null` on the last page.
    next: Option<String>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: admin_dto::PageBody is what is written"
)]
pub struct UserPage {
    items: Vec<AdminUserBody>,
    /// Pass as `before` (with the same `q`) for the next page; `null` on
    /// the last page.
    next: Option<String>,
}

/// The kinds of security events (`kind` of `/admin/security-events`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(
    dead_code,
    reason = "a schema only: SecurityEventKind::as_str writes the values"
)]
pub enum SecurityEventKindName {
    /// A rotated refresh token came back: theft response.
    TokenReuse,
    /// Another network and device inside the anomaly window.
    Anomaly,
    /// An admin revoked every session of the user.
    AdminRevoke,
    /// The user logged out everywhere.
    LogoutAll,
    /// The user changed their password; every other session revoked.
    PasswordChanged,
    /// An admin (or the operator) set a new password; every session revoked.
    PasswordReset,
    /// The roles changed (`details.roles_before`, `details.roles_after`).
    RolesChanged,
    /// The account was disabled; every session revoked.
    UserDisabled,
    /// The account was enabled again.
    UserEnabled,
    /// The account was deleted with its sessions and tokens.
    UserDeleted,
    /// A DPoP-bound session's refresh token came without a proof by its
    /// key: refused, nothing spent, the session not revoked.
    DpopMismatch,
    /// A rotated token of a session that a logout ended after that
    /// rotation: someone else used the session, then logged it out.
    ReuseAfterEnd,
}

/// The body of `/auth/introspect` and `/auth/revoke` (JSON or form).
#[derive(Debug, Serialize, ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: handlers::introspect reads the bodies"
)]
pub struct TokenField {
    /// An access token (introspection) or a refresh token (revocation).
    token: String,
    /// Accepted and ignored: the token's shape says what it is.
    token_type_hint: Option<String>,
}

/// The answer of `/auth/introspect` (RFC 7662). Only `active` is present
/// when the token is not active.
#[derive(Debug, Serialize, ToSchema)]
#[allow(
    dead_code,
    reason = "a schema only: handlers::introspect writes the bodies"
)]
pub struct Introspection {
    active: bool,
    /// `Bearer`.
    token_type: Option<String>,
    /// User id.
    sub: Option<String>,
    /// Session id.
    sid: Option<String>,
    roles: Option<Vec<String>>,
    exp: Option<i64>,
    iat: Option<i64>,
    iss: Option<String>,
    aud: Option<String>,
    jti: Option<String>,
}

/// An RFC 9457 problem document: the body of every error.
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code, reason = "a schema only: error.rs writes the bodies")]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    #[schema(example = "https://tokenwarden.dev/problems/invalid-credentials")]
    kind: String,
    /// A short human-readable summary, the same for every occurrence.
    #[schema(example = "Invalid username or password.")]
    title: String,
    /// The HTTP status.
    #[schema(example = 401)]
    status: u16,
    code: ErrorCode,
    /// For `invalid_input`: the fields at fault. The values sent are never echoed.
    #[schema(nullable = false)]
    errors: Option<Vec<FieldError>>,
    /// For 5xx: quote it to the operator; the cause is only in the server log.
    #[schema(nullable = false, example = "5f3a1c-2")]
    error_id: Option<String>,
}

/// The stable machine-readable error codes.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code, reason = "a schema only: ApiError::code writes the values")]
pub enum ErrorCode {
    MalformedRequest,
    InvalidInput,
    PayloadTooLarge,
    HeadersTooLarge,
    UsernameTaken,
    InvalidCredentials,
    MissingToken,
    InvalidToken,
    TokenExpired,
    TokenReused,
    SessionRevoked,
    InvalidDpopProof,
    DpopRequired,
    Forbidden,
    AccountDisabled,
    RegistrationClosed,
    Conflict,
    ForbiddenOrigin,
    NotFound,
    MethodNotAllowed,
    RateLimited,
    RequestTimeout,
    RequestRefused,
    ServiceUnavailable,
    InternalError,
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code, reason = "a schema only: the key store writes the set")]
pub struct Jwks {
    /// The current key and, during a rotation, the previous ones.
    keys: Vec<Jwk>,
}

/// An Ed25519 public key (RFC 8037).
#[derive(Debug, Serialize, ToSchema)]
#[allow(dead_code, reason = "a schema only")]
pub struct Jwk {
    #[schema(example = "OKP")]
    kty: String,
    #[schema(example = "Ed25519")]
    crv: String,
    /// The public key, base64url.
    x: String,
    /// Key id; access tokens name it in their header.
    kid: String,
    #[schema(example = "EdDSA")]
    alg: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    key_use: String,
}

pub mod markdown;

#[cfg(test)]
mod tests;
