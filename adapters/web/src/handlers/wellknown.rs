use actix_web::http::header;
use actix_web::http::uri::Authority;
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::blocking;
use crate::error::ApiError;
use crate::ApiState;

#[utoipa::path(
    tag = "keys",
    description = "The public keys access tokens may be signed with: the current key and, during a \
                   rotation, the previous one until every token it signed has expired.",
    responses((status = 200, description = "JWKS (RFC 7517)", body = crate::openapi::Jwks)),
)]
/// `GET /.well-known/jwks.json`: every key a valid token may be signed with.
/// The key store may re-read its directory, so this runs off the async workers.
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let keys = blocking(move || state.jwks.jwks()).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=60"))
        .json(keys))
}

/// Authorization-server metadata (RFC 8414; also the OpenID Connect
/// discovery document): where the keys, introspection and revocation are.
#[derive(Debug, Serialize, ToSchema)]
pub struct Discovery {
    /// Exactly the `iss` of the access tokens (`TOKENWARDEN_ISSUER`).
    #[schema(example = "tokenwarden")]
    issuer: String,
    #[schema(
        format = "uri",
        example = "https://auth.example.com/.well-known/jwks.json"
    )]
    jwks_uri: String,
    #[schema(format = "uri", example = "https://auth.example.com/auth/introspect")]
    introspection_endpoint: String,
    #[schema(format = "uri", example = "https://auth.example.com/auth/revoke")]
    revocation_endpoint: String,
    /// Access tokens are signed with Ed25519.
    #[schema(example = json!(["EdDSA"]))]
    id_token_signing_alg_values_supported: Vec<&'static str>,
    /// What DPoP proofs may be signed with.
    #[schema(example = json!(["ES256", "EdDSA"]))]
    dpop_signing_alg_values_supported: Vec<&'static str>,
}

impl Discovery {
    fn new(issuer: &str, base: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            jwks_uri: format!("{base}/.well-known/jwks.json"),
            introspection_endpoint: format!("{base}/auth/introspect"),
            revocation_endpoint: format!("{base}/auth/revoke"),
            id_token_signing_alg_values_supported: vec!["EdDSA"],
            dpop_signing_alg_values_supported: vec!["ES256", "EdDSA"],
        }
    }
}

/// The origin URLs are built on: `TOKENWARDEN_PUBLIC_URL`, else the scheme
/// this listener speaks and the request's `Host` (forwarded headers are not
/// believed here: behind a proxy, set the public URL).
fn base_url(state: &ApiState, req: &HttpRequest) -> String {
    if let Some(public) = &state.config.public_url {
        return public.clone();
    }
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(Authority::as_str))
        .and_then(|h| h.parse::<Authority>().ok())
        .filter(|a| !a.as_str().contains('@'))
        .map_or_else(|| req.app_config().host().to_owned(), |a| a.to_string());
    format!("{scheme}://{host}")
}

fn discovery(state: &ApiState, req: &HttpRequest) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .json(Discovery::new(&state.config.issuer, &base_url(state, req)))
}

#[utoipa::path(
    tag = "keys",
    description = "Discovery metadata for JWT middlewares: `issuer` (exactly the tokens' `iss`), \
                   `jwks_uri`, introspection and revocation endpoints, signing algorithms. \
                   URLs are absolute, built from `TOKENWARDEN_PUBLIC_URL` or else the request's \
                   own origin. Same body as `/.well-known/oauth-authorization-server`.",
    responses((status = 200, description = "Discovery metadata", body = Discovery)),
)]
/// `GET /.well-known/openid-configuration`.
#[get("/.well-known/openid-configuration")]
pub async fn openid_configuration(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    discovery(&state, &req)
}

#[utoipa::path(
    tag = "keys",
    description = "RFC 8414 authorization-server metadata; the same body as \
                   `/.well-known/openid-configuration`.",
    responses((status = 200, description = "Discovery metadata", body = Discovery)),
)]
/// `GET /.well-known/oauth-authorization-server`.
#[get("/.well-known/oauth-authorization-server")]
pub async fn oauth_authorization_server(
    state: web::Data<ApiState>,
    req: HttpRequest,
) -> HttpResponse {
    discovery(&state, &req)
}
