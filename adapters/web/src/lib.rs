//! Token Warden's HTTP adapter (Actix-web): routes, DTOs, cookies, problem
//! errors. Every use case runs on a blocking thread (`web::block`), since
//! the ports behind it (Diesel, argon2) block.

mod admin_dto;
pub mod body;
pub mod client;
mod cookie;
pub mod cors;
pub mod deadline;
pub mod dpop;
mod dto;
pub mod error;
mod extract;
mod handlers;
pub mod hardening;
pub mod listener;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod password_queue;
pub mod wire;

use std::sync::Arc;

use actix_web::dev::{ServiceFactory, ServiceRequest};
use actix_web::{web, App};
use utoipa_actix_web::service_config::ServiceConfig;

use application::TokenWarden;

pub use client::IpNet;
pub use cookie::CookieSameSite;
pub use dto::rfc3339;
pub use error::ApiError;
pub use extract::Authenticated;
pub use handlers::introspect::IntrospectionSecret;
pub use ops::{MetricsSource, OpsState, ReadinessCheck};
pub use password_queue::PasswordQueue;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub cookie_name: String,
    pub cookie_secure: bool,
    /// The refresh cookie's `Path` (`TOKENWARDEN_COOKIE_PATH`).
    pub cookie_path: String,
    /// The refresh cookie's `Domain`; `None`: host-only.
    pub cookie_domain: Option<String>,
    pub cookie_same_site: CookieSameSite,
    /// Origins besides the server's own that may send cookie-authenticated
    /// POSTs, and that get credentialed CORS (see [`cors`]).
    pub allowed_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Besides admins' access tokens, the Bearer secret that may call
    /// `/auth/introspect` (`TOKENWARDEN_INTROSPECTION_TOKEN`).
    pub introspection_secret: Option<IntrospectionSecret>,
    /// `iss` and `aud` of our access tokens, as introspection reports them.
    pub issuer: String,
    pub audience: String,
    /// How long a request body may take to arrive (`TOKENWARDEN_REQUEST_TIMEOUT`).
    pub request_timeout: std::time::Duration,
    /// `TOKENWARDEN_PUBLIC_URL` without a trailing `/`: the base of the
    /// discovery document's URLs (`None`: the request's own origin).
    pub public_url: Option<String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            cookie_name: "refresh_token".to_owned(),
            cookie_secure: true,
            cookie_path: "/auth".to_owned(),
            cookie_domain: None,
            cookie_same_site: CookieSameSite::Strict,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            introspection_secret: None,
            issuer: "tokenwarden".to_owned(),
            audience: "tokenwarden".to_owned(),
            request_timeout: body::DEFAULT_BODY_DEADLINE,
            public_url: None,
        }
    }
}

/// The published signing keys, as served at `/.well-known/jwks.json`.
pub trait JwksSource: Send + Sync + 'static {
    fn jwks(&self) -> serde_json::Value;
}

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub warden: Arc<TokenWarden>,
    pub config: Arc<WebConfig>,
    pub jwks: Arc<dyn JwksSource>,
    /// Turns of password work (see [`password_queue`]); every handler whose
    /// use case hashes or checks a password takes one through
    /// `handlers::password_work`.
    pub password_queue: Arc<PasswordQueue>,
}

/// Registers every route of the API port, each with its OpenAPI operation:
/// `service(handler)` (`utoipa_actix_web`) routes the method and path of
/// the handler's actix route macro and adds its `#[utoipa::path]` to the
/// document in the same call, so a route cannot exist undocumented. Actix's
/// own `route` and `service` are refused by clippy (`clippy.toml`,
/// `disallowed-methods`). The order here is the document's.
fn register(cfg: &mut ServiceConfig, with_metrics: bool) {
    use handlers::{accounts, admin, auth, introspect, ops, sessions, wellknown};
    cfg.service(auth::register)
        .service(auth::login)
        .service(auth::refresh)
        .service(auth::logout)
        .service(sessions::logout_all)
        .service(accounts::change_password)
        .service(introspect::introspect)
        .service(introspect::revoke)
        .service(sessions::list)
        .service(sessions::delete)
        .service(sessions::me)
        .service(wellknown::jwks)
        .service(wellknown::openid_configuration)
        .service(wellknown::oauth_authorization_server)
        .service(accounts::list_users)
        .service(accounts::create_user)
        .service(accounts::get_user)
        .service(accounts::patch_user)
        .service(accounts::delete_user)
        .service(accounts::reset_password)
        .service(admin::token_analysis)
        .service(admin::refresh_logs)
        .service(admin::revoke_sessions)
        .service(admin::security_events)
        .service(ops::healthz)
        .service(ops::readyz);
    if with_metrics {
        cfg.service(ops::metrics);
    }
    cfg.service(ops::openapi_json)
        .service(ops::docs_redirect)
        .service(crate::ops::SwaggerUiFiles)
        .service(pages::Pages)
        .default_service(web::to(handlers::not_found));
}

/// The API port's app: `app` with every route ([`register`]), the state,
/// and the OpenAPI document made from those very registrations, which
/// `/openapi.json` serves and [`hardening::problems`] answers 405 from.
/// `ops.metrics` says whether `/metrics` is served on this port.
pub fn api<T>(app: App<T>, state: ApiState, mut ops: OpsState) -> App<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    let (app, document) =
        openapi::registered(app, ops.metrics.is_some(), &state.config.cookie_name);
    let routes = hardening::Routes::of(&document);
    ops.openapi = Arc::new(
        document
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the document: {e}\"}}")),
    );
    app.app_data(body::BodyDeadline(state.config.request_timeout))
        .app_data(web::Data::new(state))
        .app_data(web::Data::new(ops))
        .app_data(web::Data::new(routes))
}
