//! Bearer-authenticated endpoints: sessions, logout everywhere, `/api/me`.

use actix_web::{delete, get, post, web, HttpResponse};

use application::DeleteSessionError;
use domain::SessionId;

use super::blocking;
use crate::dto::{MeBody, SessionBody};
use crate::error::{ApiError, Challenge};
#[allow(unused_imports, reason = "named by the OpenAPI attributes")]
use crate::openapi::Problem;
use crate::{ApiState, Authenticated};

#[utoipa::path(
    tag = "sessions",
    description = "Revokes every session of the caller, this one included.",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_revoked`, \
                                      with `WWW-Authenticate`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/auth/logout-all")]
pub async fn logout_all(
    auth: Authenticated,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    blocking(move || state.warden.logout_all(&auth.0)).await??;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "sessions",
    description = "The caller's live sessions, most recently used first; `current` marks the asking one.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = Vec<SessionBody>),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_revoked`, \
                                      with `WWW-Authenticate`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/auth/sessions")]
pub async fn list(
    auth: Authenticated,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let sessions = blocking(move || state.warden.list_sessions(&auth.0)).await??;
    Ok(HttpResponse::Ok().json(sessions.iter().map(SessionBody::from).collect::<Vec<_>>()))
}

#[utoipa::path(
    tag = "sessions",
    description = "Ends one of the caller's sessions.",
    params(("id" = String, Path, format = Uuid, description = "Session id (a UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_revoked`, \
                                      with `WWW-Authenticate`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: not a live session of the caller (or not an id)",
         body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/auth/sessions/{id}")]
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

#[utoipa::path(
    tag = "sessions",
    description = "The protected demo resource: who the access token belongs to.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = MeBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired` or `session_revoked`, \
                                      with `WWW-Authenticate`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/api/me")]
pub async fn me(auth: Authenticated, state: web::Data<ApiState>) -> Result<HttpResponse, ApiError> {
    let principal = auth.0.clone();
    let user =
        blocking(move || state.warden.me(&auth.0))
            .await??
            .ok_or(ApiError::InvalidToken {
                challenge: Challenge::Bearer,
            })?;
    Ok(HttpResponse::Ok().json(MeBody {
        id: user.id.to_string(),
        username: user.username.to_string(),
        roles: user.roles.names(),
        session_id: principal.session_id.to_string(),
    }))
}
