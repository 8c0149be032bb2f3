//! `POST /auth/introspect` (RFC 7662 style) and `POST /auth/revoke` (RFC
//! 7009 style). Both take the token as a `token` field, in a JSON object or
//! an `application/x-www-form-urlencoded` body (as the RFCs have it).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{post, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use application::ports::AccessClaims;
use application::{AuthScheme, RevokeError};
use domain::Role;

use super::blocking;
use crate::body::{parse_json, read_body};
use crate::client::client_info;
use crate::dpop::dpop_input;
use crate::error::{ApiError, FieldError};
use crate::extract::{access_credentials, with_scheme};
use crate::openapi::Problem;
use crate::ApiState;

/// The shared secret resource servers introspect with
/// (`TOKENWARDEN_INTROSPECTION_TOKEN`). Redacted in `Debug`; compared in
/// constant time.
#[derive(Clone)]
pub struct IntrospectionSecret([u8; 32]);

impl IntrospectionSecret {
    pub fn new(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Compares digests, so that neither the content nor the length of the
    /// secret shows in the time taken.
    fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.0.ct_eq(&presented).into()
    }
}

impl std::fmt::Debug for IntrospectionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntrospectionSecret([REDACTED])")
    }
}

/// The request body of both endpoints. `token_type_hint` is accepted and
/// ignored (the token's shape says what it is), but must be a string.
#[derive(Debug, Deserialize)]
struct TokenRequest {
    token: String,
    #[serde(default)]
    #[allow(dead_code, reason = "parsed only to refuse a hint of the wrong type")]
    token_type_hint: Option<String>,
}

const FORM: &str = "application/x-www-form-urlencoded";

/// The `token` field of a JSON or form body.
fn token_field(req: &HttpRequest, body: &[u8]) -> Result<String, ApiError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with(FORM));
    if !is_form {
        return parse_json::<TokenRequest>(body).map(|r| r.token);
    }
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| ApiError::MalformedRequest)?;
    fields
        .into_iter()
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value)
        .ok_or_else(|| {
            ApiError::InvalidInput(vec![FieldError {
                field: "token".to_owned(),
                message: "missing or of the wrong type".to_owned(),
            }])
        })
}

/// An active token, as RFC 7662 describes it.
#[derive(Debug, Serialize)]
struct Active<'a> {
    active: bool,
    token_type: &'static str,
    sub: String,
    sid: String,
    roles: Vec<String>,
    exp: i64,
    iat: i64,
    iss: &'a str,
    aud: &'a str,
    jti: &'a str,
    /// The DPoP key a bound token is confirmed by (RFC 9449 §6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

#[derive(Debug, Serialize)]
struct Confirmation<'a> {
    jkt: &'a str,
}

#[derive(Debug, Serialize)]
struct Inactive {
    active: bool,
}

/// The caller must present the introspection secret or an admin's access
/// token: 401 without valid credentials, 403 for a valid non-admin token.
async fn authorize(req: &HttpRequest, state: &web::Data<ApiState>) -> Result<(), ApiError> {
    let presented = access_credentials(req, &state.config)?;
    if let Some(secret) = &state.config.introspection_secret {
        if presented.scheme == AuthScheme::Bearer && secret.matches(&presented.token) {
            return Ok(());
        }
    }
    let warden = state.warden.clone();
    let scheme = presented.scheme;
    let principal = blocking(move || warden.authenticate_request(&presented))
        .await?
        .map_err(|e| with_scheme(e.into(), scheme))?;
    if principal.has_role(&Role::admin()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

#[utoipa::path(
    tag = "auth",
    description = "RFC 7662-style token introspection for resource servers that cannot afford to \
                   miss a revocation. `token` as a JSON field or an \
                   `application/x-www-form-urlencoded` field. Anything expired, revoked, malformed \
                   or unknown is `{\"active\": false}`. Authenticated with \
                   `Bearer <TOKENWARDEN_INTROSPECTION_TOKEN>` or an admin's access token.",
    request_body(content = crate::openapi::TokenField, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token's state", body = crate::openapi::Introspection),
        (status = 400, description = "`malformed_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`: no valid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: a valid access token without the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: no `token` field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/auth/introspect")]
pub async fn introspect(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state).await?;
    let token = token_field(&req, &read_body(&req, &mut payload).await?)?;
    let warden = state.warden.clone();
    let claims = blocking(move || warden.introspect(&token)).await??;
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    Ok(match claims {
        Some(claims) => response.json(active(&claims, &state)),
        None => response.json(Inactive { active: false }),
    })
}

fn active<'a>(claims: &'a AccessClaims, state: &'a ApiState) -> Active<'a> {
    Active {
        active: true,
        token_type: if claims.confirmation.is_some() {
            "DPoP"
        } else {
            "Bearer"
        },
        sub: claims.user_id.to_string(),
        sid: claims.session_id.to_string(),
        roles: claims.roles.names(),
        exp: claims.expires_at.as_secs(),
        iat: claims.issued_at.as_secs(),
        iss: &state.config.issuer,
        aud: &state.config.audience,
        jti: &claims.token_id,
        cnf: claims
            .confirmation
            .as_ref()
            .map(|jkt| Confirmation { jkt: jkt.as_str() }),
    }
}

#[utoipa::path(
    tag = "auth",
    description = "RFC 7009-style revocation of a refresh token (ends that token's session, as a logout \
                   does) or an access token (refused until it expires). Unknown or malformed tokens also get \
                   200. `token` as a JSON or form field. A token bound to a DPoP key (a bound session's refresh \
                   token, an access token with `cnf.jkt`) is revoked only with a `DPoP` proof by that key \
                   (`htm` POST, `htu` this URL, no `ath`): only its key holder can use it, so only its key \
                   holder revokes it, and a thief holding it cannot end its victim's session.",
    request_body(content = crate::openapi::TokenField, content_type = "application/json"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, description = "`malformed_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_dpop_proof`: the token is bound to a DPoP key and no valid proof by it \
                                      came with the request (with `WWW-Authenticate: DPoP error=\"invalid_dpop_proof\"`); \
                                      nothing was revoked; for a refresh token a `dpop_mismatch` security event is recorded",
         body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: no `token` field", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/auth/revoke")]
pub async fn revoke(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let token = token_field(&req, &read_body(&req, &mut payload).await?)?;
    let client = client_info(&req, &state.config);
    // An unusable `DPoP` header is no proof: a bound token then stays.
    let dpop = dpop_input(
        &req,
        &state.config.trusted_proxies,
        state.config.public_url.as_deref(),
    )
    .unwrap_or_else(|why| {
        tracing::info!(reason = %why, "DPoP header refused");
        None
    });
    let warden = state.warden.clone();
    blocking(move || warden.revoke_token(&token, dpop.as_ref(), client))
        .await?
        .map_err(|e| match e {
            RevokeError::DpopMismatch { .. } => ApiError::InvalidDpopProof { login: false },
            RevokeError::Unexpected(e) => e.into(),
        })?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .finish())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn form() -> HttpRequest {
        TestRequest::default()
            .insert_header((
                header::CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            ))
            .to_http_request()
    }

    fn json() -> HttpRequest {
        TestRequest::default()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .to_http_request()
    }

    #[test]
    fn the_token_comes_from_a_json_object_or_a_form() {
        assert_eq!(token_field(&json(), br#"{"token": "abc"}"#).unwrap(), "abc");
        assert_eq!(
            token_field(
                &json(),
                br#"{"token": "abc", "token_type_hint": "refresh_token"}"#
            )
            .unwrap(),
            "abc"
        );
        assert_eq!(
            token_field(&form(), b"token_type_hint=access_token&token=a%2Bb.c").unwrap(),
            "a+b.c"
        );
        assert_eq!(token_field(&form(), b"token=").unwrap(), "");
    }

    #[test]
    fn a_missing_or_mistyped_token_is_invalid_input_and_garbage_malformed() {
        for (req, body) in [
            (json(), &br#"{}"#[..]),
            (json(), br#"{"token": 5}"#),
            (json(), br#"["token"]"#),
            (form(), b"tokens=abc"),
            (form(), b""),
        ] {
            match token_field(&req, body) {
                Err(ApiError::InvalidInput(errors)) => {
                    assert!(errors[0].field == "token" || errors[0].field == "body")
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            token_field(&json(), b"{"),
            Err(ApiError::MalformedRequest)
        ));
    }

    #[test]
    fn the_secret_matches_only_itself_and_never_shows_in_debug() {
        let secret = IntrospectionSecret::new("a shared secret of resource servers");
        assert!(secret.matches("a shared secret of resource servers"));
        assert!(!secret.matches("a shared secret of resource server"));
        assert!(!secret.matches(""));
        assert!(!format!("{secret:?}").contains("shared"));
    }
}
