//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::blocking;
use crate::error::ApiError;
use crate::ops::OpsState;

/// `/healthz`: the process is alive.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// `/readyz`: every dependency answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Each dependency checked and its state (`up` or `down`).
    #[schema(example = json!({"database": "up"}))]
    pub checks: BTreeMap<&'static str, &'static str>,
}

/// `/readyz` when a dependency is down: a problem document with the states.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReady {
    #[serde(rename = "type")]
    #[schema(example = "https://tokenwarden.dev/problems/service-unavailable")]
    pub kind: &'static str,
    pub title: &'static str,
    #[schema(example = 503)]
    pub status: u16,
    #[schema(example = "service_unavailable")]
    pub code: &'static str,
    #[schema(example = json!({"database": "down"}))]
    pub checks: BTreeMap<&'static str, &'static str>,
}

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    description = "Liveness: answers as long as the process serves HTTP. Checks no dependency.",
    responses((status = 200, description = "Alive", body = Health)),
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Health { status: "ok" })
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    description = "Readiness: the database (and Redis when configured) answer. \
                   Load balancers should send traffic only while this is 200.",
    responses(
        (status = 200, description = "Every dependency is reachable", body = Readiness),
        (status = 503, description = "`service_unavailable`: a dependency is down; \
                                      `checks` names it (causes are only logged)",
         body = NotReady, content_type = "application/problem+json"),
    ),
)]
pub async fn readyz(state: web::Data<OpsState>) -> Result<HttpResponse, ApiError> {
    let checks = state.readiness.clone();
    let results = blocking(move || {
        checks
            .iter()
            .map(|c| (c.name(), c.check()))
            .collect::<Vec<_>>()
    })
    .await?;
    let mut states = BTreeMap::new();
    let mut ready = true;
    for (name, result) in results {
        let state = match result {
            Ok(()) => "up",
            Err(cause) => {
                tracing::warn!(check = name, cause = %cause, "readiness check failed");
                ready = false;
                "down"
            }
        };
        states.insert(name, state);
    }
    let response = if ready {
        HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(Readiness {
                status: "ready",
                checks: states,
            })
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("application/problem+json")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(NotReady {
                kind: "https://tokenwarden.dev/problems/service-unavailable",
                title: "A dependency of the service is unavailable.",
                status: 503,
                code: "service_unavailable",
                checks: states,
            })
    };
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    description = "Prometheus text exposition, every metric prefixed `tokenwarden_`. \
                   Served on the API port unless `TOKENWARDEN_METRICS_BIND` names another \
                   address (then only there, and this path is absent from this document).",
    responses((status = 200, description = "Metrics", body = String,
               content_type = "text/plain; version=0.0.4")),
)]
pub async fn metrics(state: web::Data<OpsState>) -> HttpResponse {
    let Some(source) = state.metrics.clone() else {
        return actix_web::ResponseError::error_response(&ApiError::NotFound);
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(source.render())
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    description = "This document (OpenAPI 3.1).",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
)]
pub async fn openapi_json(state: web::Data<OpsState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.as_str().to_owned())
}

#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    description = "Redirects to the Swagger UI at `/docs/`.",
    responses((status = 308, description = "To `/docs/`",
               headers(("Location" = String, description = "`docs/`")))),
)]
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "docs/"))
        .finish()
}

/// Placeholder for the OpenAPI document: the Swagger UI files are served by
/// `utoipa_swagger_ui`, registered in [`crate::ops::configure`].
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "operations",
    description = "Swagger UI, served from the binary (no CDN). `/docs/` is its page.",
    params(("file" = String, Path, description = "A Swagger UI file; empty for the page")),
    responses(
        (status = 200, description = "The file", content_type = "text/html"),
        (status = 404, description = "No such file"),
    ),
)]
#[allow(
    dead_code,
    reason = "documents the Swagger UI route registered by utoipa_swagger_ui"
)]
pub(crate) async fn swagger_ui() {}
