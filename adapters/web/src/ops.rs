//! The operator endpoints: `/healthz`, `/readyz`, `/metrics`,
//! `/openapi.json` and the Swagger UI at `/docs`. What they report comes
//! from the server through [`ReadinessCheck`] and [`MetricsSource`].

use std::sync::Arc;

use actix_web::web::{self, ServiceConfig};
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

use crate::handlers::ops as handlers;
use crate::openapi;

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
    /// The OpenAPI document, serialised once.
    pub(crate) openapi: Arc<String>,
}

impl OpsState {
    /// `metrics`: `Some` to serve `/metrics` on this port, `None` when it is
    /// served elsewhere (`TOKENWARDEN_METRICS_BIND`) or not at all. The
    /// OpenAPI document then leaves `/metrics` out, so it describes exactly
    /// what this port serves. `cookie_name` is the refresh cookie's name,
    /// for the cookie security scheme.
    pub fn new(
        readiness: Vec<Arc<dyn ReadinessCheck>>,
        metrics: Option<Arc<dyn MetricsSource>>,
        cookie_name: &str,
    ) -> Self {
        let document = openapi::document(cookie_name, metrics.is_some());
        let openapi = document
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the document: {e}\"}}"));
        Self {
            readiness: readiness.into(),
            metrics,
            openapi: Arc::new(openapi),
        }
    }
}

/// Registers the operator endpoints.
pub fn configure(state: OpsState) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg: &mut ServiceConfig| {
        let serve_metrics = state.metrics.is_some();
        cfg.app_data(web::Data::new(state))
            .route("/healthz", web::get().to(handlers::healthz))
            .route("/readyz", web::get().to(handlers::readyz))
            .route("/openapi.json", web::get().to(handlers::openapi_json))
            .route("/docs", web::get().to(handlers::docs_redirect))
            .service(SwaggerUi::new("/docs/{_:.*}").config(SwaggerConfig::new(["/openapi.json"])));
        if serve_metrics {
            cfg.route("/metrics", web::get().to(handlers::metrics));
        }
    }
}

/// The only route of a separate metrics listener (`TOKENWARDEN_METRICS_BIND`).
pub fn configure_metrics_only(source: Arc<dyn MetricsSource>) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(OpsState {
            readiness: Arc::new([]),
            metrics: Some(source),
            openapi: Arc::new(String::new()),
        }))
        .route("/metrics", web::get().to(handlers::metrics))
        .default_service(web::to(crate::handlers::not_found));
    }
}
