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

use actix_web::web::{self, ServiceConfig};

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

/// Registers every route of the API on `cfg`.
pub fn configure(state: ApiState) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(body::BodyDeadline(state.config.request_timeout))
            .app_data(web::Data::new(state))
            .service(
                web::scope("/auth")
                    .route("/register", web::post().to(handlers::auth::register))
                    .route("/login", web::post().to(handlers::auth::login))
                    .route("/refresh", web::post().to(handlers::auth::refresh))
                    .route("/logout", web::post().to(handlers::auth::logout))
                    .route(
                        "/introspect",
                        web::post().to(handlers::introspect::introspect),
                    )
                    .route("/revoke", web::post().to(handlers::introspect::revoke))
                    .route(
                        "/logout-all",
                        web::post().to(handlers::sessions::logout_all),
                    )
                    .route("/sessions", web::get().to(handlers::sessions::list))
                    .route(
                        "/password",
                        web::post().to(handlers::accounts::change_password),
                    )
                    .route(
                        "/sessions/{id}",
                        web::delete().to(handlers::sessions::delete),
                    ),
            )
            .configure(handlers::admin::routes)
            .route("/api/me", web::get().to(handlers::sessions::me))
            .route(
                "/.well-known/jwks.json",
                web::get().to(handlers::wellknown::jwks),
            )
            .route(
                "/.well-known/openid-configuration",
                web::get().to(handlers::wellknown::openid_configuration),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                web::get().to(handlers::wellknown::oauth_authorization_server),
            )
            .configure(pages::configure)
            .default_service(web::to(handlers::not_found));
    }
}

/// Every route the API port serves: the API ([`configure`]) and the
/// operator endpoints ([`ops::configure`]). The server builds its `App`
/// from this, and so does the test that checks the OpenAPI document
/// against the registered routes.
pub fn routes(state: ApiState, ops: OpsState) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg: &mut ServiceConfig| {
        configure(state)(cfg);
        ops::configure(ops)(cfg);
    }
}
