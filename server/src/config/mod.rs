//! Typed configuration. Every setting of the contract is a flag with an
//! environment fallback (the flag wins) and may come from the settings file
//! ([`crate::config_file`]); [`settings`] defines each one once, in groups,
//! with its default and parser, so a bad value stops the command with one
//! line naming the flag, variable or file key that held it. [`Config`] is
//! the validated whole that the wiring reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;
use secrecy::{ExposeSecret as _, SecretString};

use application::RegistrationPolicy;
use domain::{DpopMode, Lifetimes, ReuseResponse};
use redis_revocation::OnRedisFailure;
use web::{CookieSameSite, IntrospectionSecret, IpNet};
use webhook::WebhookConfig;

pub mod parse;
pub mod settings;

pub use settings::Settings;

use parse::given;

/// A setting that could not be used. Displays as one line.
#[derive(Debug, thiserror::Error)]
#[error("invalid {}: {message}", .origin.as_deref().unwrap_or(.setting))]
pub struct ConfigError {
    /// The setting's environment variable: its name in the contract.
    pub setting: String,
    /// Where the bad value came from, when known: `--flag`, the variable,
    /// or `key in <file>`.
    pub origin: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            origin: None,
            message: message.into(),
        }
    }

    /// The same error, naming where the value came from.
    #[must_use]
    pub fn from_origin(mut self, origin: Option<String>) -> Self {
        self.origin = origin;
        self
    }
}

/// `TOKENWARDEN_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people.
    Pretty,
    /// One JSON object per line, for collectors.
    Json,
}

/// `TOKENWARDEN_ANOMALY_RESPONSE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum AnomalyResponse {
    /// Revoke as for a reuse.
    RevokeAll,
    /// Record a security event, revoke nothing.
    LogOnly,
}

/// A rate limit: `count` events per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Secret: it may carry the database password.
    pub database_url: SecretString,
    pub redis_url: Option<SecretString>,
    pub bind: SocketAddr,
    pub issuer: String,
    /// Without a trailing `/`.
    pub public_url: Option<String>,
    pub audience: String,
    pub lifetimes: Lifetimes,
    pub clock_leeway: Duration,
    pub anomaly_window: Duration,
    /// `TOKENWARDEN_RETRY_WINDOW`: lost responses (see `domain::RotationPolicy`).
    pub retry_window: Duration,
    pub reuse_response: ReuseResponse,
    pub anomaly_response: AnomalyResponse,
    pub registration: RegistrationPolicy,
    pub dpop: DpopMode,
    pub dpop_max_age: Duration,
    /// Kept only as a digest, redacted in `Debug`.
    pub introspection_token: Option<IntrospectionSecret>,
    pub cookie_name: String,
    pub cookie_secure: bool,
    pub cookie_path: String,
    /// `None`: a host-only cookie.
    pub cookie_domain: Option<String>,
    pub cookie_same_site: CookieSameSite,
    pub trusted_proxies: Vec<IpNet>,
    pub allowed_origins: Vec<String>,
    pub keys_dir: PathBuf,
    pub login_rate_user: Rate,
    pub login_rate_ip: Rate,
    pub audit_retention: Duration,
    pub metrics_bind: Option<SocketAddr>,
    pub rust_log: String,
    pub log_format: LogFormat,
    pub db_pool_size: u32,
    pub shutdown_timeout: Duration,
    pub cleanup_interval: Duration,
    pub redis_failure: OnRedisFailure,
    pub redis_timeout: Duration,
    pub redis_key_prefix: String,
    pub dependency_timeout: Duration,
    pub request_timeout: Duration,
    pub keep_alive: Duration,
    pub max_connections: usize,
    pub hash_queue: usize,
    pub register_rate_ip: Rate,
    pub refresh_fail_rate_ip: Rate,
    /// `None`: no webhooks. The secret is redacted in `Debug`.
    pub webhook: Option<WebhookConfig>,
}

impl Config {
    /// The defaults of the contract, with the given database and keys dir:
    /// what tests start from. The defaults are those of [`settings`],
    /// whatever the environment holds.
    #[allow(clippy::expect_used)] // constants, proven by `the_defaults_are_the_contracts`
    pub fn with_defaults(database_url: impl Into<String>, keys_dir: impl Into<PathBuf>) -> Self {
        let mut settings = Settings::defaults().expect("the built-in defaults parse");
        settings.database.database_url = SecretString::from(database_url.into());
        settings.keys.keys_dir = keys_dir.into();
        Self::from_settings(settings).expect("the built-in defaults are consistent")
    }

    /// The configuration of `settings`, checked as a whole (each value was
    /// checked by its parser).
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting whose value does not fit the
    /// others.
    pub fn from_settings(settings: Settings) -> Result<Self, ConfigError> {
        let Settings {
            database,
            redis,
            keys,
            identity,
            access,
            sessions,
            server,
            cookies,
            limits,
            audit,
            webhooks,
            log,
        } = settings;
        let cookie_same_site = CookieSameSite::from(cookies.cookie_samesite);
        if cookie_same_site == CookieSameSite::None && !cookies.cookie_secure {
            return Err(ConfigError::new(
                "TOKENWARDEN_COOKIE_SAMESITE",
                "none requires TOKENWARDEN_COOKIE_SECURE=true (browsers drop SameSite=None cookies without Secure)",
            ));
        }
        Ok(Self {
            database_url: database.database_url,
            redis_url: redis.redis_url,
            bind: server.bind,
            issuer: identity.issuer,
            public_url: identity.public_url,
            audience: identity.audience,
            lifetimes: Lifetimes {
                access_ttl: access.access_token_ttl,
                idle_ttl: sessions.refresh_idle_ttl,
                max_lifetime: sessions.session_max_lifetime,
                grace: sessions.reuse_grace,
                max_sessions: sessions.max_sessions,
            },
            clock_leeway: access.clock_leeway,
            anomaly_window: sessions.anomaly_window,
            retry_window: sessions.retry_window,
            reuse_response: sessions.reuse_response.into(),
            anomaly_response: sessions.anomaly_response,
            registration: sessions.registration.into(),
            dpop: sessions.dpop.into(),
            dpop_max_age: sessions.dpop_max_age,
            introspection_token: given(server.introspection_token)
                .map(|t| IntrospectionSecret::new(t.expose_secret())),
            cookie_name: cookies.cookie_name,
            cookie_secure: cookies.cookie_secure,
            cookie_path: cookies.cookie_path,
            cookie_domain: given(cookies.cookie_domain),
            cookie_same_site,
            trusted_proxies: server.trusted_proxies.0,
            allowed_origins: server.allowed_origins.0,
            keys_dir: keys.keys_dir,
            login_rate_user: limits.login_rate_user,
            login_rate_ip: limits.login_rate_ip,
            audit_retention: audit.audit_retention,
            metrics_bind: server.metrics_bind,
            rust_log: log.rust_log,
            log_format: log.log_format,
            db_pool_size: database.db_pool_size,
            shutdown_timeout: server.shutdown_timeout,
            cleanup_interval: server.cleanup_interval,
            redis_failure: redis.redis_failure.into(),
            redis_timeout: redis.redis_timeout,
            redis_key_prefix: redis.redis_key_prefix,
            dependency_timeout: database.dependency_timeout,
            request_timeout: server.request_timeout,
            keep_alive: server.keep_alive,
            max_connections: server.max_connections,
            hash_queue: limits.hash_queue,
            register_rate_ip: limits.register_rate_ip,
            refresh_fail_rate_ip: limits.refresh_fail_rate_ip,
            webhook: webhook_config(webhooks)?,
        })
    }
}

/// `TOKENWARDEN_WEBHOOK_URL` and `TOKENWARDEN_WEBHOOK_SECRET`: both or
/// neither (an unsigned webhook would be trusted by nobody).
fn webhook_config(
    webhooks: settings::WebhookSettings,
) -> Result<Option<WebhookConfig>, ConfigError> {
    match (given(webhooks.webhook_url), given(webhooks.webhook_secret)) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(
            "TOKENWARDEN_WEBHOOK_SECRET",
            "must be set when TOKENWARDEN_WEBHOOK_URL is",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "TOKENWARDEN_WEBHOOK_URL",
            "must be set when TOKENWARDEN_WEBHOOK_SECRET is",
        )),
        (Some(url), Some(secret)) => Ok(Some(WebhookConfig::new(url, secret))),
    }
}

#[cfg(test)]
mod tests;
