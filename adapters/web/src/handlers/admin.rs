//! `/admin/*`: token analysis, refresh logs, forced re-authentication and
//! security events, for callers with the role `admin`.
//!
//! Authentication comes first (401 without a valid Bearer token, 403
//! `forbidden` without the role), then the input (422 `invalid_input` naming
//! each bad field: user id, `days`, `limit`, `before`), then the lookup (404
//! for an unknown user).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;

use application::AdminError;
use domain::{AnalysisDays, PageLimit, Role, UserId};

use super::blocking;
use crate::admin_dto::{
    AnalysisBody, AnalysisQuery, PageBody, PageQuery, RefreshLogBody, SecurityEventBody,
};
use crate::error::{ApiError, FieldError};
use crate::openapi::Problem;
use crate::{ApiState, Authenticated};

#[utoipa::path(
    tag = "admin",
    description = "Theft analysis of one user over the last `days` (default 7): attempts by outcome, networks and devices seen, sessions, reuse, anomaly, `reuse_after_end` and `dpop_mismatch` events, the user's live sessions with whether each is DPoP-bound, and a risk level with reasons (see docs/risk-scoring.md). `token_reuse`, `anomaly` and `reuse_after_end` events are theft evidence (risk `high`), `dpop_mismatch` adds points; the account events (`password_changed`, `password_reset`, `roles_changed`, `user_disabled`, `user_enabled`, `user_deleted`, see `SecurityEventKindName`) are listed by `/admin/security-events` and do not change the risk.",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id (a UUID)"), ("days" = Option<u32>, Query, minimum = 1, maximum = 90, description = "1 to 90, default 7")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The analysis", body = AnalysisBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a malformed user id or `days` outside 1..=90", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/admin/users/{user_id}/token-analysis")]
pub async fn token_analysis(
    auth: Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&Role::admin())?;
    let query: AnalysisQuery = query(&req)?;
    let mut errors = Vec::new();
    let user = user_id("user_id", &path, &mut errors);
    let days = match query.days.as_deref() {
        None => Some(AnalysisDays::DEFAULT),
        Some(text) => number(text)
            .and_then(|d| AnalysisDays::new(d).ok())
            .or_else(|| invalid(&mut errors, "days", "a whole number from 1 to 90")),
    };
    let (Some(user), Some(days)) = (user, days) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let analysis = blocking(move || state.warden.token_analysis(&auth.0, user, days))
        .await?
        .map_err(admin_error)?;
    Ok(ok_json(&AnalysisBody::from(&analysis)))
}

#[utoipa::path(
    tag = "admin",
    description = "The user's audit trail of refresh attempts, newest first, keyset-paginated: pass the `next` of a page as `before`.",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id (a UUID)"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50)"), ("before" = Option<String>, Query, min_length = 1, description = "An opaque cursor from `next`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page `{items, next}`", body = crate::openapi::RefreshLogPage),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a malformed user id, limit, or a cursor this server never issued", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/admin/users/{user_id}/refresh-logs")]
pub async fn refresh_logs(
    auth: Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&Role::admin())?;
    let query: PageQuery = query(&req)?;
    let mut errors = Vec::new();
    let user = user_id("user_id", &path, &mut errors);
    let limit = page_limit(query.limit.as_deref(), &mut errors);
    let (Some(user), Some(limit)) = (user, limit) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let before = query.before;
    let page = blocking(move || {
        state
            .warden
            .refresh_logs(&auth.0, user, before.as_deref(), limit)
    })
    .await?
    .map_err(admin_error)?;
    Ok(ok_json(&PageBody::from_page(&page, |r| {
        RefreshLogBody::from(r)
    })))
}

#[utoipa::path(
    tag = "admin",
    description = "Revokes every session of the user (security event `admin_revoke`): refresh and access tokens stop working at once.",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id (a UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a malformed user id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/admin/users/{user_id}/revoke-sessions")]
pub async fn revoke_sessions(
    auth: Authenticated,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&Role::admin())?;
    let mut errors = Vec::new();
    let Some(user) = user_id("user_id", &path, &mut errors) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let revoked = blocking(move || state.warden.revoke_user_sessions(&auth.0, user))
        .await?
        .map_err(admin_error)?;
    tracing::info!(%user, revoked, "admin revoked every session of a user");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "admin",
    description = "Security events, newest first, of one user or of everyone, keyset-paginated. Kinds: `token_reuse`, `anomaly`, `admin_revoke`, `logout_all`, and the account events `password_changed`, `password_reset`, `roles_changed`, `user_disabled`, `user_enabled`, `user_deleted` (whose `details.actor` is the acting user's id: the admin, or the user for their own password change; `null` with `via: \"cli\"` for the operator). A deleted user's events stay until the retention; list them without `user_id` (with it the user must exist). With `TOKENWARDEN_WEBHOOK_URL` set, every event is also POSTed there as `{id, type, created_at, user_id, session_id, details}` (`type` is `kind`), signed per Standard Webhooks, at least once (docs/webhooks.md).",
    params(("user_id" = Option<String>, Query, format = Uuid, description = "Only this user's events (a UUID)"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50)"), ("before" = Option<String>, Query, min_length = 1, description = "An opaque cursor from `next`")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page `{items, next}`", body = crate::openapi::SecurityEventPage),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: `user_id` names no user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a malformed user id, limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/admin/security-events")]
pub async fn security_events(
    auth: Authenticated,
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&Role::admin())?;
    let query: PageQuery = query(&req)?;
    let mut errors = Vec::new();
    let user = match query.user_id.as_deref() {
        None => Some(None),
        Some(text) => user_id("user_id", text, &mut errors).map(Some),
    };
    let limit = page_limit(query.limit.as_deref(), &mut errors);
    let (Some(user), Some(limit)) = (user, limit) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let before = query.before;
    let page = blocking(move || {
        state
            .warden
            .security_events(&auth.0, user, before.as_deref(), limit)
    })
    .await?
    .map_err(admin_error)?;
    Ok(ok_json(&PageBody::from_page(&page, |e| {
        SecurityEventBody::from(e)
    })))
}

pub(crate) fn admin_error(e: AdminError) -> ApiError {
    match e {
        AdminError::Forbidden => ApiError::Forbidden,
        AdminError::UserNotFound => ApiError::NotFound,
        AdminError::UsernameTaken => ApiError::UsernameTaken,
        AdminError::SelfLockout => ApiError::Conflict,
        AdminError::InvalidCursor => ApiError::InvalidInput(vec![FieldError {
            field: "before".to_owned(),
            message: "not a cursor this list handed out".to_owned(),
        }]),
        AdminError::Unexpected(e) => e.into(),
    }
}

/// The query string as `T` (all fields text): only a garbled query string
/// (a repeated parameter, say) fails, as 422.
pub(crate) fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| {
            ApiError::InvalidInput(vec![FieldError {
                field: "query".to_owned(),
                message: "the query string cannot be read".to_owned(),
            }])
        })
}

fn invalid<T>(errors: &mut Vec<FieldError>, field: &str, expected: &str) -> Option<T> {
    errors.push(FieldError {
        field: field.to_owned(),
        message: format!("must be {expected}"),
    });
    None
}

pub(crate) fn user_id(field: &str, text: &str, errors: &mut Vec<FieldError>) -> Option<UserId> {
    text.parse()
        .ok()
        .or_else(|| invalid(errors, field, "a user id (a hyphenated UUID)"))
}

/// A whole number in plain decimal (no sign, no spaces), at most 9 digits.
pub(crate) fn number(text: &str) -> Option<u32> {
    (!text.is_empty() && text.len() <= 9 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

pub(crate) fn page_limit(text: Option<&str>, errors: &mut Vec<FieldError>) -> Option<PageLimit> {
    match text {
        None => Some(PageLimit::DEFAULT),
        Some(text) => number(text)
            .and_then(|n| PageLimit::new(n).ok())
            .or_else(|| invalid(errors, "limit", "a whole number from 1 to 200")),
    }
}

fn ok_json(body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_plain_decimal() {
        assert_eq!(number("7"), Some(7));
        assert_eq!(number("090"), Some(90));
        for bad in ["", "-1", "+1", " 7", "7.0", "1e2", "9999999999", "seven"] {
            assert_eq!(number(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let mut errors = Vec::new();
        assert_eq!(user_id("user_id", "nope", &mut errors), None);
        assert_eq!(page_limit(Some("0"), &mut errors), None);
        assert_eq!(page_limit(None, &mut errors), Some(PageLimit::DEFAULT));
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["user_id", "limit"]);
    }
}
