//! Accounts: `POST /auth/password` for the user, and user management under
//! `/admin/users` for admins.
//!
//! As for every admin endpoint: authentication first (401, then 403
//! `forbidden` without the role `admin`), then the input (422
//! `invalid_input` naming each bad field, a malformed user id included),
//! then the lookup (404 `not_found`). Every error is a problem document.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};

use application::{ChangePasswordError, Manager, RegisterInput, UserPatch};
use domain::{Password, Role, Roles, Username, UsernamePrefix};

use super::admin::{admin_error, page_limit, query, user_id};
use super::{blocking, password_work};
use crate::admin_dto::{
    AdminUserBody, AdminUserDetailBody, CreateUserRequest, NewPasswordRequest,
    PasswordChangeRequest, PatchUserRequest, UsersQuery,
};
use crate::body::{parse_json, read_body};
use crate::error::{ApiError, FieldError};
#[allow(unused_imports, reason = "named by the OpenAPI attributes")]
use crate::openapi::{Problem, UserPage};
use crate::{ApiState, Authenticated};

fn field(errors: &mut Vec<FieldError>, name: &str, message: impl ToString) {
    errors.push(FieldError {
        field: name.to_owned(),
        message: message.to_string(),
    });
}

fn password(raw: String, name: &str, errors: &mut Vec<FieldError>) -> Option<Password> {
    Password::parse(raw)
        .map_err(|e| field(errors, name, e))
        .ok()
}

/// Role names as sent: each `[a-z][a-z0-9_-]{0,31}`.
fn roles(raw: Vec<String>, errors: &mut Vec<FieldError>) -> Option<Roles> {
    let parsed: Result<Vec<Role>, _> = raw.iter().map(|r| Role::parse(r)).collect();
    parsed
        .map(Roles::new)
        .map_err(|e| field(errors, "roles", e))
        .ok()
}

fn created_json(body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

fn ok_json(body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .json(body)
}

#[utoipa::path(
    tag = "sessions",
    description = "Changes the caller's password. The current password is checked under the login limit of the \
                   caller's username (`TOKENWARDEN_LOGIN_RATE_USER`): every wrong one counts as a failed login, \
                   and while the username is limited the answer is 429 whatever the password, so this cannot be \
                   used to guess it. On success every *other* session of the user is revoked at once (their \
                   refresh tokens answer `session_revoked`, their access tokens are refused on the next request); \
                   the calling session lives on. Security event `password_changed`.",
    request_body = PasswordChangeRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Changed; every other session revoked"),
        (status = 400, description = "`malformed_request`: the body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`: the current password is wrong (counted by the login limit); \
                                      `missing_token`, `invalid_token`, `token_expired`, `session_revoked` for the Bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a missing field, or `new_password` outside 8-256 characters", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: the username is over its login limit",
         body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds until the window closes"))),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/auth/password")]
pub async fn change_password(
    auth: Authenticated,
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    let body: PasswordChangeRequest = parse_json(&read_body(&req, &mut payload).await?)?;
    let mut errors = Vec::new();
    let Some(new) = password(body.new_password, "new_password", &mut errors) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let current = body.current_password;
    let work = state.clone();
    password_work(&state, move || {
        work.warden.change_password(&auth.0, current, new)
    })
    .await?
    .map_err(|e| match e {
        ChangePasswordError::InvalidCredentials => ApiError::InvalidCredentials,
        ChangePasswordError::RateLimited { retry_after } => ApiError::rate_limited(retry_after),
        ChangePasswordError::Unexpected(e) => e.into(),
    })?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "admin",
    description = "Users ordered by username (case-insensitively, byte order of the lower-case name), keyset-paginated: \
                   pass the `next` of a page as `before`. `q` keeps the usernames that start with it, compared without \
                   regard to letter case. Served by an index: a page among 100 000 users takes well under 50 ms.",
    params(
        ("q" = Option<String>, Query, max_length = 64, description = "A username prefix, at most 64 characters (case-insensitive); empty or absent: everyone"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50)"),
        ("before" = Option<String>, Query, min_length = 1, description = "An opaque cursor from `next` (valid for the same `q` only)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page `{items, next}`", body = UserPage),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: `q` over 64 characters, a bad `limit`, or a cursor this list never issued", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/admin/users")]
pub async fn list_users(
    auth: Authenticated,
    req: HttpRequest,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&Role::admin())?;
    let query: UsersQuery = query(&req)?;
    let mut errors = Vec::new();
    let prefix = UsernamePrefix::parse(query.q.as_deref().unwrap_or(""))
        .map_err(|e| field(&mut errors, "q", e))
        .ok();
    let limit = page_limit(query.limit.as_deref(), &mut errors);
    let (Some(prefix), Some(limit)) = (prefix, limit) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let before = query.before;
    let page = blocking(move || {
        state
            .warden
            .list_users(Manager::Admin(&auth.0), prefix, before.as_deref(), limit)
    })
    .await?
    .map_err(admin_error)?;
    Ok(ok_json(&crate::admin_dto::PageBody::from_page(
        &page,
        |u| AdminUserBody::from(u),
    )))
}

#[utoipa::path(
    tag = "admin",
    description = "Creates a user with the given roles (default `[\"user\"]`); works whatever `TOKENWARDEN_REGISTRATION` says. \
                   Usernames: 3-64 characters of `[A-Za-z0-9_.-]`, unique case-insensitively; passwords 8-256 characters; \
                   roles `[a-z][a-z0-9_-]{0,31}`.",
    request_body = CreateUserRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = AdminUserBody),
        (status = 400, description = "`malformed_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`username_taken`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: `errors` names the bad fields (`username`, `password`, `roles`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/admin/users")]
pub async fn create_user(
    auth: Authenticated,
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&Role::admin())?;
    let body: CreateUserRequest = parse_json(&read_body(&req, &mut payload).await?)?;
    let mut errors = Vec::new();
    let username = Username::parse(&body.username)
        .map_err(|e| field(&mut errors, "username", e))
        .ok();
    let password = password(body.password, "password", &mut errors);
    let roles = match body.roles {
        None => Some(Roles::new([Role::user()])),
        Some(raw) => roles(raw, &mut errors),
    };
    let (Some(username), Some(password), Some(roles)) = (username, password, roles) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let input = RegisterInput {
        username,
        password,
        roles,
    };
    let work = state.clone();
    let user = password_work(&state, move || {
        work.warden.create_user(Manager::Admin(&auth.0), input)
    })
    .await?
    .map_err(admin_error)?;
    Ok(created_json(&AdminUserBody::from(&user)))
}

#[utoipa::path(
    tag = "admin",
    description = "One user, with their live sessions as `GET /auth/sessions` shows them (without `current`).",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id (a UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = AdminUserDetailBody),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a malformed user id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[get("/admin/users/{user_id}")]
pub async fn get_user(
    auth: Authenticated,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&Role::admin())?;
    let mut errors = Vec::new();
    let Some(user) = user_id("user_id", &path, &mut errors) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let detail = blocking(move || state.warden.user_detail(Manager::Admin(&auth.0), user))
        .await?
        .map_err(admin_error)?;
    Ok(ok_json(&AdminUserDetailBody::from(&detail)))
}

#[utoipa::path(
    tag = "admin",
    description = "Changes roles and/or the disabled state, in one transaction. `roles` replaces the user's roles \
                   (each `[a-z][a-z0-9_-]{0,31}`); taking a role away revokes every session of the user (access \
                   tokens carry roles), adding one revokes nothing (the next refresh carries it). `disabled: true` \
                   revokes every session at once (refresh tokens answer `session_revoked`, access tokens are refused \
                   on the next request) and makes the right password answer `403 account_disabled`; `disabled: false` \
                   lets the user log in again. Security events `roles_changed`, `user_disabled`, `user_enabled`, with \
                   the acting admin in `details.actor`. An admin cannot disable themselves nor remove their own \
                   `admin` role (409 `conflict`, nothing changed).",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id (a UUID)")),
    request_body = PatchUserRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user as it now is", body = AdminUserBody),
        (status = 400, description = "`malformed_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: an admin disabling themselves or removing their own `admin` role", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a malformed user id, an empty patch (neither `roles` nor `disabled`), an invalid role name, wrong types", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[patch("/admin/users/{user_id}")]
pub async fn patch_user(
    auth: Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&Role::admin())?;
    let mut errors = Vec::new();
    let user = user_id("user_id", &path, &mut errors);
    let body: PatchUserRequest = parse_json(&read_body(&req, &mut payload).await?)?;
    let roles = match body.roles {
        None => Some(None),
        Some(raw) => roles(raw, &mut errors).map(Some),
    };
    let patch = roles.map(|roles| UserPatch {
        roles,
        disabled: body.disabled,
    });
    if patch.as_ref().is_some_and(UserPatch::is_empty) {
        field(&mut errors, "body", "must change `roles` or `disabled`");
    }
    let (Some(user), Some(patch), true) = (user, patch, errors.is_empty()) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let updated = blocking(move || {
        state
            .warden
            .update_user(Manager::Admin(&auth.0), user, patch)
    })
    .await?
    .map_err(admin_error)?;
    Ok(ok_json(&AdminUserBody::from(&updated)))
}

#[utoipa::path(
    tag = "admin",
    description = "Sets a new password (8-256 characters) and revokes every session of the user at once (security \
                   event `password_reset`, the acting admin in `details.actor`).",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id (a UUID)")),
    request_body = NewPasswordRequest,
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Reset; every session revoked"),
        (status = 400, description = "`malformed_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a malformed user id, `new_password` missing or outside 8-256 characters", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[post("/admin/users/{user_id}/password")]
pub async fn reset_password(
    auth: Authenticated,
    req: HttpRequest,
    path: web::Path<String>,
    mut payload: web::Payload,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&Role::admin())?;
    let mut errors = Vec::new();
    let user = user_id("user_id", &path, &mut errors);
    let body: NewPasswordRequest = parse_json(&read_body(&req, &mut payload).await?)?;
    let new = password(body.new_password, "new_password", &mut errors);
    let (Some(user), Some(new)) = (user, new) else {
        return Err(ApiError::InvalidInput(errors));
    };
    let work = state.clone();
    password_work(&state, move || {
        work.warden
            .reset_password(Manager::Admin(&auth.0), user, &new)
    })
    .await?
    .map_err(admin_error)?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    tag = "admin",
    description = "Deletes the user: their sessions and refresh tokens go with them (access tokens are refused at once, \
                   a login answers `invalid_credentials`, the username is free again). Audit rows and security events \
                   stay until the retention (`TOKENWARDEN_AUDIT_RETENTION`) removes them. Security event \
                   `user_deleted`, the acting admin in `details.actor`. An admin cannot delete themselves (409).",
    params(("user_id" = String, Path, format = Uuid, description = "The user's id (a UUID)")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`missing_token`, `invalid_token`, `token_expired`, `session_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller lacks the role `admin`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: an admin deleting themselves", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: a malformed user id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[delete("/admin/users/{user_id}")]
pub async fn delete_user(
    auth: Authenticated,
    path: web::Path<String>,
    state: web::Data<ApiState>,
) -> Result<HttpResponse, ApiError> {
    auth.require(&Role::admin())?;
    let mut errors = Vec::new();
    let Some(user) = user_id("user_id", &path, &mut errors) else {
        return Err(ApiError::InvalidInput(errors));
    };
    blocking(move || state.warden.delete_user(Manager::Admin(&auth.0), user))
        .await?
        .map_err(admin_error)?;
    tracing::info!(%user, "admin deleted a user");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_checked_one_by_one() {
        let mut errors = Vec::new();
        assert_eq!(
            roles(
                vec!["admin".into(), "user".into(), "admin".into()],
                &mut errors
            ),
            Some(Roles::new([Role::admin(), Role::user()]))
        );
        assert!(errors.is_empty());
        for bad in ["Admin", "2fa", "", "a b", &"x".repeat(33)] {
            assert_eq!(roles(vec![bad.to_owned()], &mut errors), None, "{bad}");
        }
        assert!(errors.iter().all(|e| e.field == "roles"));
    }
}
