//! `/auth/register`, `/auth/login`, `/auth/refresh`, `/auth/logout`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use application::{
    IssuedTokens, LoginError, LoginInput, RefreshError, RefreshRejection, RegisterError,
    RegisterInput,
};
use domain::{Password, Role, Roles, Username};

use super::blocking;
use super::refresh_audit::{rejected, rejection_of};
use crate::body::{parse_json, parse_optional_json, read_body};
use crate::client::{check_origin, client_info};
use crate::dto::{
    LoginRequest, RefreshRequest, RegisterRequest, TokenDelivery, TokenResponse, UserBody,
};
use crate::error::{ApiError, FieldError};
use crate::{cookie, ApiState, WebConfig};

/// Longest accepted device name, in characters.
const MAX_DEVICE_NAME: usize = 100;

pub async fn register(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
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
    let user = blocking(move || state.warden.register(input))
        .await?
        .map_err(|e| match e {
            RegisterError::UsernameTaken => ApiError::UsernameTaken,
            RegisterError::Unexpected(e) => e.into(),
        })?;
    Ok(HttpResponse::Created().json(UserBody::from(&user)))
}

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
        .is_some_and(|d| d.chars().count() > MAX_DEVICE_NAME || d.chars().any(char::is_control))
    {
        return Err(ApiError::InvalidInput(vec![FieldError {
            field: "device_name".into(),
            message: format!("at most {MAX_DEVICE_NAME} printable characters"),
        }]));
    }
    let delivery = body.token_delivery;
    let input = LoginInput {
        username: body.username,
        password: body.password,
        device_name: body.device_name,
        previous_token: cookie::read(&req, &state.config),
        client: client_info(&req, &state.config),
    };
    let config = state.config.clone();
    let issued = blocking(move || state.warden.login(input))
        .await?
        .map_err(|e| match e {
            LoginError::InvalidCredentials => ApiError::InvalidCredentials,
            LoginError::Unexpected(e) => e.into(),
        })?;
    Ok(token_response(&config, &issued, delivery))
}

pub async fn refresh(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> HttpResponse {
    let config = state.config.clone();
    match refresh_inner(&req, &mut payload, state).await {
        Ok((issued, delivery)) => token_response(&config, &issued, delivery),
        Err(e) => with_cleared_cookie(&config, e),
    }
}

async fn refresh_inner(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: web::Data<ApiState>,
) -> Result<(IssuedTokens, TokenDelivery), ApiError> {
    let client = client_info(req, &state.config);
    // Refusals before the use case runs are recorded here; everything after
    // by the use case (see `refresh_audit.rs`).
    if let Err(e) = check_origin(req, &state.config) {
        let cookie = cookie::read(req, &state.config);
        let rejection = RefreshRejection::ForbiddenOrigin;
        return Err(rejected(&state, rejection, cookie, client, e).await);
    }
    let body = match read_body(req, payload).await {
        Ok(bytes) => parse_optional_json::<RefreshRequest>(&bytes),
        Err(e) => Err(e),
    };
    let body = match body {
        Ok(body) => body,
        Err(e) => {
            let cookie = cookie::read(req, &state.config);
            return Err(rejected(&state, rejection_of(&e), cookie, client, e).await);
        }
    };
    let (token, delivery) = match body.and_then(|b| b.refresh_token) {
        Some(t) => (Some(t), TokenDelivery::Body),
        None => (cookie::read(req, &state.config), TokenDelivery::Cookie),
    };
    let issued = blocking(move || state.warden.refresh(token.as_deref(), client))
        .await?
        .map_err(|e| match e {
            RefreshError::Missing => ApiError::MissingToken { bearer: false },
            RefreshError::Invalid => ApiError::InvalidToken { bearer: false },
            RefreshError::Expired { .. } => ApiError::TokenExpired { bearer: false },
            RefreshError::Reused { .. } | RefreshError::Anomaly { .. } => ApiError::TokenReused,
            RefreshError::Revoked { .. } => ApiError::SessionRevoked { bearer: false },
            RefreshError::Unexpected(e) => e.into(),
        })?;
    Ok((issued, delivery))
}

pub async fn logout(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    check_origin(&req, &state.config)?;
    let body: Option<RefreshRequest> = parse_optional_json(&read_body(&req, &mut payload).await?)?;
    let token = body
        .and_then(|b| b.refresh_token)
        .or_else(|| cookie::read(&req, &state.config));
    let client = client_info(&req, &state.config);
    let config = state.config.clone();
    blocking(move || state.warden.logout(token.as_deref(), client)).await??;
    Ok(HttpResponse::NoContent()
        .cookie(cookie::clear(&config))
        .finish())
}

fn token_response(
    config: &WebConfig,
    issued: &IssuedTokens,
    delivery: TokenDelivery,
) -> HttpResponse {
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

/// Every 401 of a refresh clears the cookie, so a browser stops sending a
/// dead token. Other failures leave it alone: a refused origin changes
/// nothing, and a bad body or an unavailable server says nothing about the
/// token.
fn with_cleared_cookie(config: &WebConfig, e: ApiError) -> HttpResponse {
    let mut response = actix_web::ResponseError::error_response(&e);
    if response.status() == StatusCode::UNAUTHORIZED {
        let _ = response.add_cookie(&cookie::clear(config));
    }
    response
}
