//! `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, `/docs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::rt::time::timeout;
use actix_web::{get, web, HttpResponse};
use futures_util::future::join_all;
use serde::Serialize;
use utoipa::ToSchema;

use super::blocking;
use crate::error::ApiError;
use crate::ops::OpsState;

/// How long `/readyz` waits for a dependency: probes give up after a
/// second or two, and a check that hangs means "not ready" anyway.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

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
    tag = "operations",
    description = "Liveness: answers as long as the process serves HTTP. Checks no dependency.",
    responses((status = 200, description = "Alive", body = Health)),
)]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Health { status: "ok" })
}

#[utoipa::path(
    tag = "operations",
    description = "Readiness: the database (and Redis when configured) answer within 2 s each. \
                   Load balancers should send traffic only while this is 200.",
    responses(
        (status = 200, description = "Every dependency is reachable", body = Readiness),
        (status = 503, description = "`service_unavailable`: a dependency is down; \
                                      `checks` names it (causes are only logged)",
         body = NotReady, content_type = "application/problem+json"),
    ),
)]
#[get("/readyz")]
pub async fn readyz(state: web::Data<OpsState>) -> HttpResponse {
    let checks = state.readiness.iter().map(|check| {
        let check = Arc::clone(check);
        async move {
            let name = check.name();
            let result = match timeout(CHECK_TIMEOUT, blocking(move || check.check())).await {
                Ok(Ok(result)) => result,
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            (name, result)
        }
    });
    let results = join_all(checks).await;
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
    if ready {
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
    }
}

#[utoipa::path(
    tag = "operations",
    description = "Prometheus text exposition, every metric prefixed `tokenwarden_`. \
                   Served on the API port unless `TOKENWARDEN_METRICS_BIND` names another \
                   address (then only there, and this path is absent from this document).",
    responses((status = 200, description = "Metrics", body = String,
               content_type = "text/plain; version=0.0.4")),
)]
#[get("/metrics")]
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
    tag = "operations",
    description = "This document (OpenAPI 3.1).",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
)]
#[get("/openapi.json")]
pub async fn openapi_json(state: web::Data<OpsState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.as_str().to_owned())
}

#[utoipa::path(
    tag = "operations",
    description = "Redirects to the Swagger UI at `/docs/`.",
    responses((status = 308, description = "To `/docs/`",
               headers(("Location" = String, description = "`docs/`")))),
)]
#[get("/docs")]
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "docs/"))
        .finish()
}

/// The operation of the Swagger UI files, which `utoipa_swagger_ui` serves:
/// [`crate::ops::SwaggerUiFiles`] registers both.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "operations",
    summary = "Swagger UI files",
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

#[cfg(test)]
mod tests {
    use actix_web::{test as actix_test, App};
    use serde_json::Value;

    use utoipa_actix_web::AppExt as _;

    use crate::ops::{OpsState, ReadinessCheck};

    struct Check(&'static str, Result<(), String>, Duration);

    impl ReadinessCheck for Check {
        fn name(&self) -> &'static str {
            self.0
        }
        fn check(&self) -> Result<(), String> {
            std::thread::sleep(self.2);
            self.1.clone()
        }
    }

    async fn readyz(checks: Vec<Arc<dyn ReadinessCheck>>) -> (u16, String, Value) {
        let app = App::new()
            .into_utoipa_app()
            .app_data(web::Data::new(OpsState::new(checks, None)))
            .service(super::readyz)
            .into_app();
        let app = actix_test::init_service(app).await;
        let res = actix_test::call_service(
            &app,
            actix_test::TestRequest::get().uri("/readyz").to_request(),
        )
        .await;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = serde_json::from_slice(&actix_test::read_body(res).await).unwrap_or_default();
        (status, content_type, body)
    }

    #[actix_web::test]
    async fn ready_when_every_check_passes() {
        let (status, _, body) =
            readyz(vec![Arc::new(Check("database", Ok(()), Duration::ZERO))]).await;
        assert_eq!(status, 200);
        assert_eq!(body["status"], "ready");
        assert_eq!(body["checks"]["database"], "up");
    }

    #[actix_web::test]
    async fn a_failing_check_is_a_503_problem_naming_it_without_the_cause() {
        let (status, content_type, body) = readyz(vec![
            Arc::new(Check(
                "database",
                Err("password authentication failed for tw".into()),
                Duration::ZERO,
            )),
            Arc::new(Check("redis", Ok(()), Duration::ZERO)),
        ])
        .await;
        assert_eq!(status, 503);
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["code"], "service_unavailable");
        assert_eq!(body["status"], 503);
        assert_eq!(body["checks"]["database"], "down");
        assert_eq!(body["checks"]["redis"], "up");
        assert!(!body.to_string().contains("password"), "{body}");
    }

    #[actix_web::test]
    async fn a_hanging_check_counts_as_down_after_the_timeout() {
        let started = std::time::Instant::now();
        let (status, _, body) = readyz(vec![Arc::new(Check(
            "database",
            Ok(()),
            CHECK_TIMEOUT + Duration::from_secs(1),
        ))])
        .await;
        assert_eq!(status, 503);
        assert_eq!(body["checks"]["database"], "down");
        assert!(started.elapsed() < CHECK_TIMEOUT + Duration::from_millis(900));
    }

    use super::*;
}
