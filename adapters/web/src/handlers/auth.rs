//! `/auth/register`, `/auth/login`, `/auth/refresh`, `/auth/logout`.

use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};

use application::{
    IssuedTokens, LoginError, LoginInput, LogoutError, RefreshError, RefreshRejection,
    RegisterError, RegisterInput,
};
use domain::{Password, Role, Roles, Username};

use super::refresh_audit::{rejected, rejection_of};
use super::{blocking, password_work, password_work_on};
use crate::body::{parse_json, parse_optional_json, read_body};
use crate::client::{check_origin, client_info, is_display_hazard};
use crate::cookie::{self, Presented};
use crate::dpop::dpop_input;
use crate::dto::{
    LoginRequest, RefreshRequest, RegisterRequest, TokenDelivery, TokenResponse, UserBody,
};
use crate::error::{ApiError, Challenge, FieldError};
#[allow(unused_imports, reason = "named by the OpenAPI attributes")]
use crate::openapi::Problem;
use crate::{ApiState, WebConfig};

/// Longest accepted device name, in characters.
const MAX_DEVICE_NAME: usize = 100;

#[utoipa::path(
    tag = "auth",
    description = "Creates a user with the role `user` (other roles: `POST /admin/users` or `tokenwarden user create`). \
                   Refused with `403 registration_closed` under `TOKENWARDEN_REGISTRATION=closed`.",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Created", body = UserBody),
        (status = 400, description = "`malformed_request`: the body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`registration_closed`: `TOKENWARDEN_REGISTRATION=closed`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`username_taken` (usernames are unique case-insensitively)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: `errors` names the fields", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: the password queue is full (at once) or a dependency did not answer in time",
         body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[post("/auth/register")]
pub async fn register(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    // Closed is closed whatever the body says: nothing is read or counted.
    state
        .warden
        .admit_self_registration()
        .map_err(register_error)?;
    let body: RegisterRequest = parse_json(&read_body(&req, &mut payload).await?)?;
    let mut errors = Vec::new();
    let username = Username::parse(&body.username)
        .map_err(|e| {
            errors.push(FieldError {
                field: "username".into(),
                message: e.to_string(),
            })
        })
        .ok();
    let password = Password::parse(body.password)
        .map_err(|e| {
            errors.push(FieldError {
                field: "password".into(),
                message: e.to_string(),
            })
        })
        .ok();
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let input = RegisterInput {
        username,
        password,
        roles: Roles::new([Role::user()]),
    };
    let client = client_info(&req, &state.config);
    // The limit first: a refused registration never waits for password work.
    let admit = state.clone();
    blocking(move || admit.warden.admit_registration(client.ip.as_deref()))
        .await?
        .map_err(ApiError::rate_limited)?;
    let work = state.clone();
    let user = password_work(&state, move || work.warden.register(input))
        .await?
        .map_err(register_error)?;
    Ok(HttpResponse::Created().json(UserBody::from(&user)))
}

fn register_error(e: RegisterError) -> ApiError {
    match e {
        RegisterError::UsernameTaken => ApiError::UsernameTaken,
        RegisterError::Closed => ApiError::RegistrationClosed,
        RegisterError::Unexpected(e) => e.into(),
    }
}

#[utoipa::path(
    tag = "auth",
    description = "Verifies the password and starts a session. The refresh token is set as a cookie, \
                   or returned in the body for `\"token_delivery\": \"body\"`. A refresh cookie \
                   still present ends its old session once the login succeeds (a DPoP-bound one only with this \
                   login's proof by its key: the password may be another account's); with several refresh \
                   cookies (one may be planted) none is ended, the login itself goes ahead. With a valid `DPoP` \
                   proof header (RFC 9449: ES256 or EdDSA, `htm` POST, `htu` this URL) the session \
                   is bound to the proof's key: `token_type` is `DPoP`, the access token carries \
                   `cnf.jkt`, and every refresh needs a proof by that key.",
    request_body = LoginRequest,
    security((), ("refresh_cookie" = [])),
    responses(
        (status = 200, description = "Logged in", body = TokenResponse,
         headers(("Set-Cookie" = String, description = "The refresh cookie (cookie delivery)"))),
        (status = 400, description = "`malformed_request`; `invalid_dpop_proof`: a `DPoP` header that is not a valid proof \
                                      for this request (with `WWW-Authenticate: DPoP error=\"invalid_dpop_proof\"`); \
                                      `dpop_required`: no proof while `TOKENWARDEN_DPOP=required`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`: unknown user or wrong password (indistinguishable)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`account_disabled`: the right password of a disabled account (a wrong one is `invalid_credentials`); \
                                      `forbidden_origin`: an `Origin` that is neither this server nor allowed", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: missing fields, wrong types, `device_name` over 100 characters", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many failures for this username or attempts from this \
                                      address; refused whatever the password",
         body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until the window closes"))),
        (status = 503, description = "`service_unavailable`: the password queue is full (at once) or a dependency did not answer in time",
         body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ),
)]
#[post("/auth/login")]
pub async fn login(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req, &state.config)?;
    let body: LoginRequest = parse_json(&read_body(&req, &mut payload).await?)?;
    if body
        .device_name
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DEVICE_NAME || d.chars().any(is_display_hazard))
    {
        return Err(ApiError::InvalidInput(vec![FieldError {
            field: "device_name".into(),
            message: format!(
                "at most {MAX_DEVICE_NAME} characters, without control, bidirectional or \
                 line separator characters"
            ),
        }]));
    }
    let delivery = body.token_delivery;
    let dpop = dpop_input(
        &req,
        &state.config.trusted_proxies,
        state.config.public_url.as_deref(),
    )
    .map_err(|why| {
        tracing::info!(reason = %why, "DPoP header refused");
        ApiError::InvalidDpopProof { login: true }
    })?;
    let input = LoginInput {
        username: body.username,
        password: body.password,
        device_name: body.device_name,
        previous_token: cookie::read(&req, &state.config),
        client: client_info(&req, &state.config),
        dpop,
    };
    let config = state.config.clone();
    // Limits and proof first: a refused login never waits for password work.
    let admit = state.clone();
    let issued = match blocking(move || admit.warden.admit_login(input)).await? {
        Ok(admitted) => {
            let work = state.clone();
            match password_work_on(&state, admitted, move |a| work.warden.complete_login(a)).await {
                Ok(done) => done?,
                // No password worker in time: the password was never
                // checked, so the username's reservation is given back (the
                // address keeps the attempt). Past the request's deadline,
                // off the async workers all the same (Redis may be asked).
                Err((busy, admitted)) => {
                    let giver = state.clone();
                    let _ = web::block(move || giver.warden.abandon_login(admitted)).await;
                    return Err(busy);
                }
            }
        }
        Err(refused) => Err(refused),
    }
    .map_err(|e| match e {
        LoginError::InvalidCredentials => ApiError::InvalidCredentials,
        LoginError::AccountDisabled => ApiError::AccountDisabled,
        LoginError::RateLimited { retry_after } => ApiError::rate_limited(retry_after),
        LoginError::InvalidDpopProof(why) => {
            tracing::info!(reason = %why, "DPoP proof refused at login");
            ApiError::InvalidDpopProof { login: true }
        }
        LoginError::DpopRequired => ApiError::DpopRequired,
        LoginError::Unexpected(e) => e.into(),
    })?;
    Ok(token_response(&config, &issued, delivery))
}

#[utoipa::path(
    tag = "auth",
    description = "Rotates the refresh token: answers a new token pair, delivered the way the old token came \
                   (body wins over cookie). The parent of the current token, replayed from the network \
                   (IPv4 /24, IPv6 /64) and user-agent family of the request that rotated it, gets the same \
                   successor again: within `TOKENWARDEN_REUSE_GRACE` as a concurrent tab (`grace_replay`), \
                   within `TOKENWARDEN_RETRY_WINDOW` as a retry after a lost answer (`retry`). Any other \
                   rotated token is theft evidence: the user's sessions are revoked and the answer is \
                   `token_reused`. A session bound to a DPoP key (login with a `DPoP` proof) needs a \
                   `DPoP` proof by that key (`htm` POST, `htu` this URL) on every refresh. A refused \
                   refresh spends nothing. Every 401 clears the cookie, except `invalid_dpop_proof` and \
                   `invalid_token` for several refresh cookies (one may be planted: none is spent). Failed \
                   attempts (any 400, 401 but `token_reused`, 403, 413 or 422) count per client IP against \
                   `TOKENWARDEN_REFRESH_FAIL_RATE_IP`; over it every refresh from that address is answered \
                   429, even with a valid token, and audited in one `rate_limited` row per IP and minute.",
    request_body(content = Option<RefreshRequest>,
                 description = "Optional: native clients send the token here; browsers send nothing"),
    security(("refresh_cookie" = []), ()),
    responses(
        (status = 200, description = "Rotated", body = TokenResponse,
         headers(("Set-Cookie" = String, description = "The successor cookie (cookie delivery)"))),
        (status = 400, description = "`malformed_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `token_reused` or \
                                      `session_revoked`; the cookie is cleared. `invalid_dpop_proof`: the session is \
                                      bound to a DPoP key and no valid proof by it came with the token (with \
                                      `WWW-Authenticate: DPoP error=\"invalid_dpop_proof\"`); nothing is spent or \
                                      revoked and the cookie is kept", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_origin`: nothing changes, no token is spent", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "`request_timeout`: the body did not arrive within `TOKENWARDEN_REQUEST_TIMEOUT`; \
                                      nothing is spent, the audit row says `request_timeout`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many failed refreshes from this address; refused whatever the token",
         body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until the window closes"))),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/auth/refresh")]
pub async fn refresh(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let config = state.config.clone();
    match refresh_inner(&req, &mut payload, state).await {
        Ok((issued, delivery)) => token_response(&config, &issued, delivery),
        Err(Refused {
            error,
            clear_cookie: true,
        }) => with_cleared_cookie(&config, error),
        Err(Refused { error, .. }) => actix_web::ResponseError::error_response(&error),
    }
}

/// A refused refresh, and whether the answer clears the cookie: every 401
/// does, except the one for duplicate cookies (clearing would log the
/// victim of a planted cookie out).
struct Refused {
    error: ApiError,
    clear_cookie: bool,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            clear_cookie: true,
        }
    }
}

async fn refresh_inner(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: web::Data<ApiState>,
) -> Result<(IssuedTokens, TokenDelivery), Refused> {
    let client = client_info(req, &state.config);
    // Refusals before the use case runs are recorded here; everything after
    // by the use case (see `refresh_audit.rs`).
    if let Err(e) = check_origin(req, &state.config) {
        let cookie = cookie::read(req, &state.config);
        let rejection = RefreshRejection::ForbiddenOrigin;
        return Err(rejected(&state, rejection, cookie, client, e).await.into());
    }
    let body = match read_body(req, payload).await {
        Ok(bytes) => parse_optional_json::<RefreshRequest>(&bytes),
        Err(e) => Err(e),
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            let cookie = cookie::read(req, &state.config);
            return Err(rejected(&state, rejection_of(&e), cookie, client, e)
                .await
                .into());
        }
    };
    let (token, delivery) = match body.and_then(|b| b.refresh_token) {
        Some(t) => (Some(t), TokenDelivery::Body),
        None => match cookie::presented(req, &state.config) {
            Presented::One(t) => (Some(t), TokenDelivery::Cookie),
            Presented::None => (None, TokenDelivery::Cookie),
            Presented::Several => {
                let refusal = ApiError::InvalidToken {
                    challenge: Challenge::None,
                };
                let rejection = RefreshRejection::DuplicateCookies;
                return Err(Refused {
                    error: rejected(&state, rejection, None, client, refusal).await,
                    clear_cookie: false,
                });
            }
        },
    };
    // An unusable `DPoP` header is no proof: a bound session then refuses
    // the refresh, an unbound one never looks.
    let dpop = dpop_input(
        req,
        &state.config.trusted_proxies,
        state.config.public_url.as_deref(),
    )
    .unwrap_or_else(|why| {
        tracing::info!(reason = %why, "DPoP header refused");
        None
    });
    // The attempt reserves one failure of the client's budget before any
    // token is looked at; a refresh that did not fail gives it back.
    let issued = blocking(move || {
        if let Err(wait) = state.warden.admit_refresh(&client)? {
            return Ok(Err(ApiError::rate_limited(wait)));
        }
        let result = state
            .warden
            .refresh(token.as_deref(), dpop.as_ref(), client.clone());
        state.warden.settle_refresh(&client, &result);
        Ok::<_, application::Unexpected>(Ok(result))
    })
    .await?
    .map_err(ApiError::from)??;
    let issued = match issued {
        Ok(issued) => issued,
        // Nothing was spent: the token stays the key holder's, and clearing
        // the cookie would log out a victim whose token was replayed.
        Err(RefreshError::DpopMismatch { .. }) => {
            return Err(Refused {
                error: ApiError::InvalidDpopProof { login: false },
                clear_cookie: false,
            })
        }
        Err(e) => return Err(refresh_error(e).into()),
    };
    Ok((issued, delivery))
}

/// The answer to a refresh the use case refused.
fn refresh_error(e: RefreshError) -> ApiError {
    match e {
        RefreshError::Missing => ApiError::MissingToken {
            challenge: Challenge::None,
        },
        RefreshError::Invalid => ApiError::InvalidToken {
            challenge: Challenge::None,
        },
        RefreshError::Expired { .. } => ApiError::TokenExpired {
            challenge: Challenge::None,
        },
        RefreshError::Reused { .. } | RefreshError::Anomaly { .. } => ApiError::TokenReused,
        RefreshError::Revoked { .. } => ApiError::SessionRevoked {
            challenge: Challenge::None,
        },
        RefreshError::DpopMismatch { .. } => ApiError::InvalidDpopProof { login: false },
        RefreshError::Unexpected(e) => e.into(),
    }
}

#[utoipa::path(
    tag = "auth",
    description = "Ends the session of the refresh token (any of its tokens, current or rotated): the \
                   session's access tokens are refused at once. Idempotent: 204 also with no or a dead token. \
                   A session bound to a DPoP key ends only with a `DPoP` proof by that key (`htm` POST, \
                   `htu` this URL): a stolen bound token cannot log its victim out. Without one the answer is \
                   `401 invalid_dpop_proof`, nothing ends, the cookie is kept and a `dpop_mismatch` security \
                   event is recorded. With several refresh cookies (one may be planted by a sibling subdomain) \
                   and no token in the body, the answer is `401 invalid_token`: nothing ends and the cookie \
                   is kept, so a planted cookie cannot log its victim out.",
    request_body(content = Option<RefreshRequest>,
                 description = "Optional: native clients send the token here"),
    security(("refresh_cookie" = []), ()),
    responses(
        (status = 204, description = "Logged out; the cookie is cleared",
         headers(("Set-Cookie" = String, description = "Clears the refresh cookie"))),
        (status = 400, description = "`malformed_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_dpop_proof`: the session is bound to a DPoP key and no valid proof by it \
                                      came with the token (with `WWW-Authenticate: DPoP error=\"invalid_dpop_proof\"`); \
                                      `invalid_token`: several refresh cookies. Nothing ended and the cookie is kept",
         body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden_origin`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/auth/logout")]
pub async fn logout(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req, &state.config)?;
    let body: Option<RefreshRequest> = parse_optional_json(&read_body(&req, &mut payload).await?)?;
    // Several cookies (one may be planted): which is the client's cannot be
    // told, so none ends and the cookie stays (ending them all would let a
    // planted cookie log its victim out).
    let tokens = match body.and_then(|b| b.refresh_token) {
        Some(t) => vec![t],
        None => match cookie::presented(&req, &state.config) {
            Presented::None => Vec::new(),
            Presented::One(t) => vec![t],
            Presented::Several => {
                return Err(ApiError::InvalidToken {
                    challenge: Challenge::None,
                })
            }
        },
    };
    // An unusable `DPoP` header is no proof: a bound session then refuses
    // the logout, an unbound one ignores it.
    let dpop = dpop_input(
        &req,
        &state.config.trusted_proxies,
        state.config.public_url.as_deref(),
    )
    .unwrap_or_else(|why| {
        tracing::info!(reason = %why, "DPoP header refused");
        None
    });
    let client = client_info(&req, &state.config);
    let config = state.config.clone();
    blocking(move || state.warden.logout(&tokens, dpop.as_ref(), client))
        .await?
        .map_err(|e| match e {
            // Nothing ended: the cookie stays with whoever holds the key.
            LogoutError::DpopMismatch { .. } => ApiError::InvalidDpopProof { login: false },
            LogoutError::Unexpected(e) => e.into(),
        })?;
    Ok(HttpResponse::NoContent()
        .cookie(cookie::clear(&config))
        .finish())
}

fn token_response(
    config: &WebConfig,
    issued: &IssuedTokens,
    delivery: TokenDelivery,
) -> HttpResponse {
    crate::middleware::record_principal(issued.user.id, issued.session_id);
    let mut response = HttpResponse::Ok();
    response.insert_header(("Cache-Control", "no-store"));
    if delivery == TokenDelivery::Cookie {
        response.cookie(cookie::set(
            config,
            issued.refresh_token.expose(),
            issued.session_expires_in,
        ));
    }
    response.json(TokenResponse::new(issued, delivery))
}

/// Every 401 from refresh clears the cookie, so a browser stops sending a
/// dead token. Other failures keep it: a refused origin changes nothing, and
/// a token must survive a database outage (503) or a malformed request.
fn with_cleared_cookie(config: &WebConfig, e: ApiError) -> HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&e);
    if response.status() == StatusCode::UNAUTHORIZED {
        let _ = response.add_cookie(&cookie::clear(config));
    }
    response
}
