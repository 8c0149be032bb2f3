//! The operator endpoints: `/healthz`, `/readyz`, `/metrics`,
//! `/openapi.json` and the Swagger UI at `/docs`. What they report comes
//! from the server through [`ReadinessCheck`] and [`MetricsSource`].

use std::sync::Arc;

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::web::{self, ServiceConfig};
use utoipa::openapi::path::Paths;
use utoipa::openapi::{RefOr, Schema};
use utoipa_actix_web::OpenApiFactory;
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

use crate::handlers::ops as handlers;

/// One dependency `/readyz` checks. Checks block (a database ping): they
/// run on a blocking thread.
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Short name shown in the `/readyz` answer (`database`, `redis`).
    fn name(&self) -> &'static str;

    /// # Errors
    /// Why the dependency cannot be used; logged, never sent to the client.
    fn check(&self) -> Result<(), String>;
}

/// The Prometheus text exposition of every metric.
pub trait MetricsSource: Send + Sync + 'static {
    fn render(&self) -> String;
}

/// What the operator endpoints share.
#[derive(Clone)]
pub struct OpsState {
    pub(crate) readiness: Arc<[Arc<dyn ReadinessCheck>]>,
    pub(crate) metrics: Option<Arc<dyn MetricsSource>>,
    /// The OpenAPI document of the app these endpoints are part of,
    /// serialised once; set by [`crate::api`], which makes it from the
    /// routes it registers.
    pub(crate) openapi: Arc<String>,
}

impl OpsState {
    /// `metrics`: `Some` to serve `/metrics` on this port, `None` when it is
    /// served elsewhere (`TOKENWARDEN_METRICS_BIND`) or not at all. The
    /// route is then not registered, so the OpenAPI document leaves it out
    /// and describes exactly what this port serves.
    pub fn new(
        readiness: Vec<Arc<dyn ReadinessCheck>>,
        metrics: Option<Arc<dyn MetricsSource>>,
    ) -> Self {
        Self {
            readiness: readiness.into(),
            metrics,
            openapi: Arc::default(),
        }
    }
}

/// The Swagger UI's files under `/docs/` (`utoipa_swagger_ui`, served from
/// the binary), registered with `service(SwaggerUiFiles)`: that routes them
/// and adds their operation (`GET /docs/{file}`, written on
/// `handlers::ops::swagger_ui`) to the OpenAPI document.
pub struct SwaggerUiFiles;

impl HttpServiceFactory for SwaggerUiFiles {
    fn register(self, config: &mut AppService) {
        SwaggerUi::new("/docs/{_:.*}")
            .config(SwaggerConfig::new(["/openapi.json"]))
            .register(config);
    }
}

impl OpenApiFactory for SwaggerUiFiles {
    fn paths(&self) -> Paths {
        handlers::__path_swagger_ui.paths()
    }

    fn schemas(&self, schemas: &mut Vec<(String, RefOr<Schema>)>) {
        handlers::__path_swagger_ui.schemas(schemas);
    }
}

/// `405 method_not_allowed` with `Allow: GET`: a method `/metrics` does not
/// answer, on the separate metrics listener.
async fn metrics_method_not_allowed() -> actix_web::HttpResponse {
    use actix_web::ResponseError as _;
    let mut answer = crate::error::ApiError::MethodNotAllowed.error_response();
    answer.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static("GET"),
    );
    answer
}

/// The only route of a separate metrics listener (`TOKENWARDEN_METRICS_BIND`).
#[expect(
    clippy::disallowed_methods,
    reason = "the metrics port is not the API: it serves no OpenAPI document"
)]
pub fn configure_metrics_only(source: Arc<dyn MetricsSource>) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(OpsState::new(Vec::new(), Some(source))))
            .service(handlers::metrics)
            // Any other method on the one path.
            .route("/metrics", web::to(metrics_method_not_allowed))
            .default_service(web::to(crate::handlers::not_found));
    }
}
