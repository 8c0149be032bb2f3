//! Bearer-authenticated endpoints: sessions, logout everywhere, `/api/me`.

use actix_web::{web, HttpResponse};

use application::DeleteSessionError;
use domain::SessionId;

use super::blocking;
use crate::dto::{MeBody, SessionBody};
use crate::error::ApiError;
use crate::{ApiState, Authenticated};

pub async fn logout_all(
    auth: Authenticated,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    blocking(move || state.warden.logout_all(&auth.0)).await??;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list(
    auth: Authenticated,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let sessions = blocking(move || state.warden.list_sessions(&auth.0)).await??;
    Ok(HttpResponse::Ok().json(sessions.iter().map(SessionBody::from).collect::<Vec<_>>()))
}

pub async fn delete(
    auth: Authenticated,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    // A malformed id cannot be one of the caller's sessions.
    let id: SessionId = path.into_inner().parse().map_err(|_| ApiError::NotFound)?;
    blocking(move || state.warden.delete_session(&auth.0, id))
        .await?
        .map_err(|e| match e {
            DeleteSessionError::NotFound => ApiError::NotFound,
            DeleteSessionError::Unexpected(e) => e.into(),
        })?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn me(auth: Authenticated, state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let principal = auth.0.clone();
    let user = blocking(move || state.warden.me(&auth.0))
        .await??
        .ok_or(ApiError::InvalidToken { bearer: true })?;
    Ok(HttpResponse::Ok().json(MeBody {
        id: user.id.to_string(),
        username: user.username.to_string(),
        roles: user.roles.names(),
        session_id: principal.session_id.to_string(),
    }))
}
