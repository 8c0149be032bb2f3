//! Typed configuration: every setting of the contract as a flag with an
//! environment fallback (the flag wins). Values arrive as text and are
//! validated here, so that a bad one stops start-up with one line naming
//! the setting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use application::RegistrationPolicy;
use domain::{DpopMode, Lifetimes, ReuseResponse};
use redis_revocation::OnRedisFailure;
use web::{CookieSameSite, IntrospectionSecret, IpNet};
use webhook::{WebhookConfig, WebhookSecret};

/// A setting that could not be used. Displays as one line.
#[derive(Debug, thiserror::Error)]
#[error("invalid {setting}: {message}")]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: &'static str, message: impl Into<String>) -> Self {
        Self {
            setting,
            message: message.into(),
        }
    }
}

/// The settings as given on the command line or in the environment.
#[derive(Debug, Clone, Args)]
pub struct RawSettings {
    /// Database: `sqlite://<file>` or `postgres://…`
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://tokenwarden.db",
        global = true
    )]
    pub database_url: String,
    /// Redis for the shared revocation list (unset: the database).
    #[arg(long, env = "REDIS_URL", global = true)]
    pub redis_url: Option<String>,
    /// Address to serve the API on.
    #[arg(
        long,
        env = "TOKENWARDEN_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: String,
    /// `iss` of access tokens.
    #[arg(
        long,
        env = "TOKENWARDEN_ISSUER",
        default_value = "tokenwarden",
        global = true
    )]
    pub issuer: String,
    /// Base URL of this service as clients reach it (`https://auth.example.com`),
    /// for the discovery documents (unset: the request's own origin).
    #[arg(long, env = "TOKENWARDEN_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// `aud` of access tokens.
    #[arg(
        long,
        env = "TOKENWARDEN_AUDIENCE",
        default_value = "tokenwarden",
        global = true
    )]
    pub audience: String,
    /// Access-token lifetime (`500ms`, `2s`, `15m`, `7d`).
    #[arg(
        long,
        env = "TOKENWARDEN_ACCESS_TOKEN_TTL",
        default_value = "15m",
        global = true
    )]
    pub access_token_ttl: String,
    /// A refresh token unused this long is dead.
    #[arg(
        long,
        env = "TOKENWARDEN_REFRESH_IDLE_TTL",
        default_value = "7d",
        global = true
    )]
    pub refresh_idle_ttl: String,
    /// Absolute session lifetime from login.
    #[arg(
        long,
        env = "TOKENWARDEN_SESSION_MAX_LIFETIME",
        default_value = "30d",
        global = true
    )]
    pub session_max_lifetime: String,
    /// Grace window for concurrent refreshes of the same client (0 disables).
    #[arg(
        long,
        env = "TOKENWARDEN_REUSE_GRACE",
        default_value = "10s",
        global = true
    )]
    pub reuse_grace: String,
    /// How long after a rotation its client may retry with the parent token
    /// (same network and user-agent family) and get the same successor (0 disables).
    #[arg(
        long,
        env = "TOKENWARDEN_RETRY_WINDOW",
        default_value = "1h",
        global = true
    )]
    pub retry_window: String,
    /// Clock leeway when verifying access tokens.
    #[arg(
        long,
        env = "TOKENWARDEN_CLOCK_LEEWAY",
        default_value = "0s",
        global = true
    )]
    pub clock_leeway: String,
    /// Window since a session's last use inside which an IP and device change is an anomaly.
    #[arg(
        long,
        env = "TOKENWARDEN_ANOMALY_WINDOW",
        default_value = "10m",
        global = true
    )]
    pub anomaly_window: String,
    /// `revoke_all` or `revoke_family`.
    #[arg(
        long,
        env = "TOKENWARDEN_REUSE_RESPONSE",
        default_value = "revoke_all",
        global = true
    )]
    pub reuse_response: String,
    /// `open` (anyone may `POST /auth/register`) or `closed` (admins and
    /// the CLI create users; registration answers 403).
    #[arg(
        long,
        env = "TOKENWARDEN_REGISTRATION",
        default_value = "open",
        global = true
    )]
    pub registration: String,
    /// `revoke_all` or `log_only`.
    #[arg(
        long,
        env = "TOKENWARDEN_ANOMALY_RESPONSE",
        default_value = "revoke_all",
        global = true
    )]
    pub anomaly_response: String,
    /// `optional` (a login with a DPoP proof binds its session) or `required`.
    #[arg(
        long,
        env = "TOKENWARDEN_DPOP",
        default_value = "optional",
        global = true
    )]
    pub dpop: String,
    /// How old a DPoP proof (`iat`) may be, plus the clock leeway.
    #[arg(
        long,
        env = "TOKENWARDEN_DPOP_MAX_AGE",
        default_value = "60s",
        global = true
    )]
    pub dpop_max_age: String,
    /// Live sessions per user; the least recently used is evicted.
    #[arg(
        long,
        env = "TOKENWARDEN_MAX_SESSIONS",
        default_value = "10",
        global = true
    )]
    pub max_sessions: String,
    /// Shared secret resource servers may introspect with.
    #[arg(
        long,
        env = "TOKENWARDEN_INTROSPECTION_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub introspection_token: Option<String>,
    /// Name of the refresh cookie.
    #[arg(
        long,
        env = "TOKENWARDEN_COOKIE_NAME",
        default_value = "refresh_token",
        global = true
    )]
    pub cookie_name: String,
    /// Whether the refresh cookie carries `Secure`.
    #[arg(
        long,
        env = "TOKENWARDEN_COOKIE_SECURE",
        default_value = "true",
        global = true
    )]
    pub cookie_secure: String,
    /// `Path` of the refresh cookie (a proxy that moves `/auth` elsewhere sets it to match).
    #[arg(
        long,
        env = "TOKENWARDEN_COOKIE_PATH",
        default_value = "/auth",
        global = true
    )]
    pub cookie_path: String,
    /// `Domain` of the refresh cookie (unset: host-only).
    #[arg(long, env = "TOKENWARDEN_COOKIE_DOMAIN", global = true)]
    pub cookie_domain: Option<String>,
    /// `SameSite` of the refresh cookie: `strict`, `lax` or `none` (needs Secure).
    #[arg(
        long,
        env = "TOKENWARDEN_COOKIE_SAMESITE",
        default_value = "strict",
        global = true
    )]
    pub cookie_samesite: String,
    /// Comma-separated IPs/CIDRs whose X-Forwarded-For is trusted.
    #[arg(
        long,
        env = "TOKENWARDEN_TRUSTED_PROXIES",
        default_value = "",
        global = true
    )]
    pub trusted_proxies: String,
    /// Comma-separated origins allowed besides the server's own (Origin check and CORS).
    #[arg(
        long,
        env = "TOKENWARDEN_ALLOWED_ORIGINS",
        default_value = "",
        global = true
    )]
    pub allowed_origins: String,
    /// Directory of the signing keys.
    #[arg(
        long,
        env = "TOKENWARDEN_KEYS_DIR",
        default_value = "./keys",
        global = true
    )]
    pub keys_dir: PathBuf,
    /// Failed logins per username before 429 (`5/min`).
    #[arg(
        long,
        env = "TOKENWARDEN_LOGIN_RATE_USER",
        default_value = "5/min",
        global = true
    )]
    pub login_rate_user: String,
    /// Login attempts per client IP before 429 (`30/min`).
    #[arg(
        long,
        env = "TOKENWARDEN_LOGIN_RATE_IP",
        default_value = "30/min",
        global = true
    )]
    pub login_rate_ip: String,
    /// How long audit rows are kept.
    #[arg(
        long,
        env = "TOKENWARDEN_AUDIT_RETENTION",
        default_value = "90d",
        global = true
    )]
    pub audit_retention: String,
    /// Separate address for /metrics (unset: the API port).
    #[arg(long, env = "TOKENWARDEN_METRICS_BIND", global = true)]
    pub metrics_bind: Option<String>,
    /// Log filter, as `RUST_LOG`.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info", global = true)]
    pub rust_log: String,
    /// `pretty` or `json`.
    #[arg(
        long,
        env = "TOKENWARDEN_LOG_FORMAT",
        default_value = "pretty",
        global = true
    )]
    pub log_format: String,
    /// Database connections per process.
    #[arg(
        long,
        env = "TOKENWARDEN_DB_POOL_SIZE",
        default_value = "16",
        global = true
    )]
    pub db_pool_size: String,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish.
    #[arg(
        long,
        env = "TOKENWARDEN_SHUTDOWN_TIMEOUT",
        default_value = "30s",
        global = true
    )]
    pub shutdown_timeout: String,
    /// How often `serve` removes expired tokens, sessions, revocation entries and old audit rows.
    #[arg(
        long,
        env = "TOKENWARDEN_CLEANUP_INTERVAL",
        default_value = "5m",
        global = true
    )]
    pub cleanup_interval: String,
    /// While Redis cannot be used: `fallback` (check the database) or `fail_closed` (refuse, 503).
    #[arg(
        long,
        env = "TOKENWARDEN_REDIS_FAILURE",
        default_value = "fallback",
        global = true
    )]
    pub redis_failure: String,
    /// Deadline of every Redis call (connect, command, pool wait).
    #[arg(
        long,
        env = "TOKENWARDEN_REDIS_TIMEOUT",
        default_value = "250ms",
        global = true
    )]
    pub redis_timeout: String,
    /// Prefix of every Redis key and channel (several deployments can share one Redis).
    #[arg(
        long,
        env = "TOKENWARDEN_REDIS_KEY_PREFIX",
        default_value = "tokenwarden:",
        global = true
    )]
    pub redis_key_prefix: String,
    /// The longest a request waits for its dependencies (database, Redis
    /// under `fail_closed`) before it is answered 503 with `Retry-After`.
    #[arg(
        long,
        env = "TOKENWARDEN_DEPENDENCY_TIMEOUT",
        default_value = "3s",
        global = true
    )]
    pub dependency_timeout: String,
    /// A request's headers and body must arrive within this, else 408 and the connection closes.
    #[arg(
        long,
        env = "TOKENWARDEN_REQUEST_TIMEOUT",
        default_value = "10s",
        global = true
    )]
    pub request_timeout: String,
    /// Idle keep-alive connections are closed after this.
    #[arg(
        long,
        env = "TOKENWARDEN_KEEP_ALIVE",
        default_value = "30s",
        global = true
    )]
    pub keep_alive: String,
    /// Open connections at most (all workers together); further ones wait to be accepted.
    #[arg(
        long,
        env = "TOKENWARDEN_MAX_CONNECTIONS",
        default_value = "10000",
        global = true
    )]
    pub max_connections: String,
    /// Password checks and hashes that may wait for a hashing thread; more get 503.
    #[arg(
        long,
        env = "TOKENWARDEN_HASH_QUEUE",
        default_value = "64",
        global = true
    )]
    pub hash_queue: String,
    /// Registrations per client IP (IPv6: per /64) before 429 (`10/hour`).
    #[arg(
        long,
        env = "TOKENWARDEN_REGISTER_RATE_IP",
        default_value = "10/hour",
        global = true
    )]
    pub register_rate_ip: String,
    /// Failed refreshes per client IP before 429 (`60/min`).
    #[arg(
        long,
        env = "TOKENWARDEN_REFRESH_FAIL_RATE_IP",
        default_value = "60/min",
        global = true
    )]
    pub refresh_fail_rate_ip: String,
    /// Where every security event is POSTed, signed (http or https; unset: no webhooks).
    #[arg(long, env = "TOKENWARDEN_WEBHOOK_URL", global = true)]
    pub webhook_url: Option<String>,
    /// Key the webhooks are signed with: at least 32 bytes (`whsec_<base64>`: the decoded bytes).
    #[arg(
        long,
        env = "TOKENWARDEN_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub webhook_secret: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnomalyResponse {
    RevokeAll,
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
    pub database_url: String,
    pub redis_url: Option<String>,
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
    /// what tests start from.
    pub fn with_defaults(database_url: impl Into<String>, keys_dir: impl Into<PathBuf>) -> Self {
        Self {
            database_url: database_url.into(),
            redis_url: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: "tokenwarden".to_owned(),
            public_url: None,
            audience: "tokenwarden".to_owned(),
            lifetimes: Lifetimes::default(),
            clock_leeway: Duration::ZERO,
            anomaly_window: Duration::from_secs(600),
            retry_window: domain::RotationPolicy::DEFAULT_RETRY_WINDOW,
            reuse_response: ReuseResponse::RevokeAll,
            anomaly_response: AnomalyResponse::RevokeAll,
            registration: RegistrationPolicy::Open,
            dpop: DpopMode::Optional,
            dpop_max_age: Duration::from_secs(60),
            introspection_token: None,
            cookie_name: "refresh_token".to_owned(),
            cookie_secure: true,
            cookie_path: "/auth".to_owned(),
            cookie_domain: None,
            cookie_same_site: CookieSameSite::Strict,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            keys_dir: keys_dir.into(),
            login_rate_user: Rate {
                count: 5,
                per: Duration::from_secs(60),
            },
            login_rate_ip: Rate {
                count: 30,
                per: Duration::from_secs(60),
            },
            audit_retention: Duration::from_secs(90 * 86_400),
            metrics_bind: None,
            rust_log: "info".to_owned(),
            log_format: LogFormat::Pretty,
            db_pool_size: 16,
            shutdown_timeout: Duration::from_secs(30),
            cleanup_interval: Duration::from_secs(300),
            redis_failure: OnRedisFailure::Fallback,
            redis_timeout: Duration::from_millis(250),
            redis_key_prefix: "tokenwarden:".to_owned(),
            dependency_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(30),
            max_connections: 10_000,
            hash_queue: 64,
            register_rate_ip: Rate {
                count: 10,
                per: Duration::from_secs(3_600),
            },
            refresh_fail_rate_ip: Rate {
                count: 60,
                per: Duration::from_secs(60),
            },
            webhook: None,
        }
    }

    pub fn from_raw(raw: &RawSettings) -> Result<Self, ConfigError> {
        let database_url = raw.database_url.trim().to_owned();
        let scheme_ok = ["sqlite://", "postgres://", "postgresql://"]
            .iter()
            .any(|p| database_url.starts_with(p));
        if !scheme_ok || database_url.len() <= "sqlite://".len() {
            return Err(ConfigError::new(
                "DATABASE_URL",
                "must start with sqlite:// (a file path) or postgres://",
            ));
        }
        if let Some(url) = &raw.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError::new(
                    "REDIS_URL",
                    "must start with redis:// or rediss://",
                ));
            }
        }
        let lifetimes = Lifetimes {
            access_ttl: positive("TOKENWARDEN_ACCESS_TOKEN_TTL", &raw.access_token_ttl)?,
            idle_ttl: positive("TOKENWARDEN_REFRESH_IDLE_TTL", &raw.refresh_idle_ttl)?,
            max_lifetime: positive(
                "TOKENWARDEN_SESSION_MAX_LIFETIME",
                &raw.session_max_lifetime,
            )?,
            grace: duration("TOKENWARDEN_REUSE_GRACE", &raw.reuse_grace)?,
            max_sessions: raw
                .max_sessions
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    ConfigError::new(
                        "TOKENWARDEN_MAX_SESSIONS",
                        "must be a whole number of at least 1",
                    )
                })?,
        };
        let cookie_secure = boolean("TOKENWARDEN_COOKIE_SECURE", &raw.cookie_secure)?;
        let cookie_same_site = CookieSameSite::parse(&raw.cookie_samesite).ok_or_else(|| {
            ConfigError::new("TOKENWARDEN_COOKIE_SAMESITE", "must be strict, lax or none")
        })?;
        if cookie_same_site == CookieSameSite::None && !cookie_secure {
            return Err(ConfigError::new(
                "TOKENWARDEN_COOKIE_SAMESITE",
                "none requires TOKENWARDEN_COOKIE_SECURE=true (browsers drop SameSite=None cookies without Secure)",
            ));
        }
        Ok(Self {
            database_url,
            redis_url: raw.redis_url.clone(),
            bind: socket("TOKENWARDEN_BIND", &raw.bind)?,
            issuer: non_empty("TOKENWARDEN_ISSUER", &raw.issuer)?,
            public_url: raw.public_url.as_deref().map(public_url).transpose()?,
            audience: non_empty("TOKENWARDEN_AUDIENCE", &raw.audience)?,
            lifetimes,
            clock_leeway: duration("TOKENWARDEN_CLOCK_LEEWAY", &raw.clock_leeway)?,
            anomaly_window: duration("TOKENWARDEN_ANOMALY_WINDOW", &raw.anomaly_window)?,
            retry_window: duration("TOKENWARDEN_RETRY_WINDOW", &raw.retry_window)?,
            reuse_response: match raw.reuse_response.trim() {
                "revoke_all" => ReuseResponse::RevokeAll,
                "revoke_family" => ReuseResponse::RevokeFamily,
                _ => {
                    return Err(ConfigError::new(
                        "TOKENWARDEN_REUSE_RESPONSE",
                        "must be revoke_all or revoke_family",
                    ))
                }
            },
            registration: match raw.registration.trim() {
                "open" => RegistrationPolicy::Open,
                "closed" => RegistrationPolicy::Closed,
                _ => {
                    return Err(ConfigError::new(
                        "TOKENWARDEN_REGISTRATION",
                        "must be open or closed",
                    ))
                }
            },
            dpop: match raw.dpop.trim() {
                "optional" => DpopMode::Optional,
                "required" => DpopMode::Required,
                _ => {
                    return Err(ConfigError::new(
                        "TOKENWARDEN_DPOP",
                        "must be optional or required",
                    ))
                }
            },
            dpop_max_age: match duration("TOKENWARDEN_DPOP_MAX_AGE", &raw.dpop_max_age)? {
                d if d.is_zero() => {
                    return Err(ConfigError::new(
                        "TOKENWARDEN_DPOP_MAX_AGE",
                        "must be longer than 0s",
                    ))
                }
                d => d,
            },
            anomaly_response: match raw.anomaly_response.trim() {
                "revoke_all" => AnomalyResponse::RevokeAll,
                "log_only" => AnomalyResponse::LogOnly,
                _ => {
                    return Err(ConfigError::new(
                        "TOKENWARDEN_ANOMALY_RESPONSE",
                        "must be revoke_all or log_only",
                    ))
                }
            },
            introspection_token: match raw.introspection_token.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(t) if t.len() < 16 => {
                    return Err(ConfigError::new(
                        "TOKENWARDEN_INTROSPECTION_TOKEN",
                        "must be at least 16 characters",
                    ))
                }
                Some(t) => Some(IntrospectionSecret::new(t)),
            },
            cookie_name: cookie_name(&raw.cookie_name)?,
            cookie_secure,
            cookie_path: cookie_path(&raw.cookie_path)?,
            cookie_domain: raw
                .cookie_domain
                .as_deref()
                .map(cookie_domain)
                .transpose()?
                .flatten(),
            cookie_same_site,
            trusted_proxies: list(&raw.trusted_proxies)
                .map(|p| {
                    p.parse::<IpNet>()
                        .map_err(|m| ConfigError::new("TOKENWARDEN_TRUSTED_PROXIES", m))
                })
                .collect::<Result<_, _>>()?,
            allowed_origins: list(&raw.allowed_origins)
                .map(origin)
                .collect::<Result<_, _>>()?,
            keys_dir: raw.keys_dir.clone(),
            login_rate_user: rate("TOKENWARDEN_LOGIN_RATE_USER", &raw.login_rate_user)?,
            login_rate_ip: rate("TOKENWARDEN_LOGIN_RATE_IP", &raw.login_rate_ip)?,
            audit_retention: positive("TOKENWARDEN_AUDIT_RETENTION", &raw.audit_retention)?,
            metrics_bind: raw
                .metrics_bind
                .as_deref()
                .map(|b| socket("TOKENWARDEN_METRICS_BIND", b))
                .transpose()?,
            rust_log: raw.rust_log.clone(),
            log_format: match raw.log_format.trim() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::new(
                        "TOKENWARDEN_LOG_FORMAT",
                        "must be pretty or json",
                    ))
                }
            },
            db_pool_size: raw
                .db_pool_size
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ConfigError::new(
                        "TOKENWARDEN_DB_POOL_SIZE",
                        "must be a number from 1 to 1000",
                    )
                })?,
            shutdown_timeout: duration("TOKENWARDEN_SHUTDOWN_TIMEOUT", &raw.shutdown_timeout)?,
            cleanup_interval: positive("TOKENWARDEN_CLEANUP_INTERVAL", &raw.cleanup_interval)?,
            redis_failure: match raw.redis_failure.trim() {
                "fallback" => OnRedisFailure::Fallback,
                "fail_closed" => OnRedisFailure::FailClosed,
                _ => {
                    return Err(ConfigError::new(
                        "TOKENWARDEN_REDIS_FAILURE",
                        "must be fallback or fail_closed",
                    ))
                }
            },
            redis_timeout: positive("TOKENWARDEN_REDIS_TIMEOUT", &raw.redis_timeout)?,
            redis_key_prefix: {
                let p = raw.redis_key_prefix.trim();
                if p.is_empty()
                    || p.len() > 64
                    || p.chars().any(|c| c.is_whitespace() || c.is_control())
                {
                    return Err(ConfigError::new(
                        "TOKENWARDEN_REDIS_KEY_PREFIX",
                        "must be 1 to 64 characters without spaces",
                    ));
                }
                p.to_owned()
            },
            dependency_timeout: positive(
                "TOKENWARDEN_DEPENDENCY_TIMEOUT",
                &raw.dependency_timeout,
            )?,
            request_timeout: positive("TOKENWARDEN_REQUEST_TIMEOUT", &raw.request_timeout)?,
            keep_alive: duration("TOKENWARDEN_KEEP_ALIVE", &raw.keep_alive)?,
            max_connections: whole_number(
                "TOKENWARDEN_MAX_CONNECTIONS",
                &raw.max_connections,
                1..=1_000_000,
            )?,
            hash_queue: whole_number("TOKENWARDEN_HASH_QUEUE", &raw.hash_queue, 1..=100_000)?,
            register_rate_ip: rate("TOKENWARDEN_REGISTER_RATE_IP", &raw.register_rate_ip)?,
            refresh_fail_rate_ip: rate(
                "TOKENWARDEN_REFRESH_FAIL_RATE_IP",
                &raw.refresh_fail_rate_ip,
            )?,
            webhook: webhook_config(raw)?,
        })
    }
}

/// `TOKENWARDEN_WEBHOOK_URL` and `TOKENWARDEN_WEBHOOK_SECRET`: both or
/// neither (an unsigned webhook would be trusted by nobody).
fn webhook_config(raw: &RawSettings) -> Result<Option<WebhookConfig>, ConfigError> {
    let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    match (given(&raw.webhook_url), given(&raw.webhook_secret)) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(
            "TOKENWARDEN_WEBHOOK_SECRET",
            "must be set when TOKENWARDEN_WEBHOOK_URL is",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "TOKENWARDEN_WEBHOOK_URL",
            "must be set when TOKENWARDEN_WEBHOOK_SECRET is",
        )),
        (Some(url), Some(secret)) => Ok(Some(WebhookConfig::new(
            webhook::parse_url(&url)
                .map_err(|e| ConfigError::new("TOKENWARDEN_WEBHOOK_URL", e.to_string()))?,
            WebhookSecret::parse(&secret)
                .map_err(|e| ConfigError::new("TOKENWARDEN_WEBHOOK_SECRET", e.to_string()))?,
        ))),
    }
}

fn whole_number(
    setting: &'static str,
    text: &str,
    range: std::ops::RangeInclusive<usize>,
) -> Result<usize, ConfigError> {
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            ConfigError::new(
                setting,
                format!(
                    "must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// Parses `500ms`, `2s`, `15m`, `1h`, `7d` (and `0`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms_per_unit).map(Duration::from_millis)
}

fn duration(setting: &'static str, text: &str) -> Result<Duration, ConfigError> {
    parse_duration(text).ok_or_else(|| {
        ConfigError::new(
            setting,
            format!("'{text}' is not a duration (use 500ms, 2s, 15m, 1h or 7d)"),
        )
    })
}

fn positive(setting: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let d = duration(setting, text)?;
    if d.is_zero() {
        return Err(ConfigError::new(setting, "must be longer than zero"));
    }
    Ok(d)
}

fn rate(setting: &'static str, text: &str) -> Result<Rate, ConfigError> {
    let bad = || {
        ConfigError::new(
            setting,
            format!("'{text}' is not a rate (use 5/min, 30/min, 100/hour)"),
        )
    };
    let (count, unit) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|c| *c >= 1)
        .ok_or_else(bad)?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3_600),
        "d" | "day" => Duration::from_secs(86_400),
        _ => return Err(bad()),
    };
    Ok(Rate { count, per })
}

fn socket(setting: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.trim().parse().map_err(|_| {
        ConfigError::new(
            setting,
            format!("'{text}' is not an address like 127.0.0.1:8080"),
        )
    })
}

fn non_empty(setting: &'static str, text: &str) -> Result<String, ConfigError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ConfigError::new(setting, "must not be empty"));
    }
    Ok(t.to_owned())
}

fn boolean(setting: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            setting,
            format!("'{text}' is not true or false"),
        )),
    }
}

fn cookie_name(text: &str) -> Result<String, ConfigError> {
    let t = text.trim();
    let ok = !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(ConfigError::new(
            "TOKENWARDEN_COOKIE_NAME",
            "must be 1 to 64 characters of letters, digits, '_', '-', '.'",
        ))
    }
}

/// A cookie `Path`: `/` followed by printable ASCII without `;` or `,`.
fn cookie_path(text: &str) -> Result<String, ConfigError> {
    let t = text.trim();
    let ok = t.starts_with('/')
        && t.len() <= 256
        && t.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b','));
    if ok {
        Ok(t.to_owned())
    } else {
        Err(ConfigError::new(
            "TOKENWARDEN_COOKIE_PATH",
            format!("'{text}' is not a path like /auth"),
        ))
    }
}

/// A cookie `Domain`: a host name (a leading dot is dropped, as browsers
/// do); empty means host-only.
fn cookie_domain(text: &str) -> Result<Option<String>, ConfigError> {
    let t = text.trim().trim_start_matches('.');
    if t.is_empty() {
        return Ok(None);
    }
    let ok = t.len() <= 253
        && t.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(Some(t.to_ascii_lowercase()))
    } else {
        Err(ConfigError::new(
            "TOKENWARDEN_COOKIE_DOMAIN",
            format!("'{text}' is not a domain like example.com"),
        ))
    }
}

fn origin(text: &str) -> Result<String, ConfigError> {
    let t = text.trim_end_matches('/');
    let ok = (t.starts_with("http://") || t.starts_with("https://"))
        && !t["https://".len().min(t.len())..].contains('/');
    if ok {
        Ok(t.to_owned())
    } else {
        Err(ConfigError::new(
            "TOKENWARDEN_ALLOWED_ORIGINS",
            format!("'{text}' is not an origin like https://app.example.com"),
        ))
    }
}

fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// An absolute http(s) URL without credentials, query or fragment, kept
/// without its trailing `/` so that paths can be appended.
fn public_url(raw: &str) -> Result<String, ConfigError> {
    let bad = |m: &str| ConfigError::new("TOKENWARDEN_PUBLIC_URL", m);
    let url = url::Url::parse(raw.trim()).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(bad("must be an http:// or https:// URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        raw: RawSettings,
    }

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("tokenwarden").chain(args.iter().copied()))
            .unwrap();
        Config::from_raw(&cli.raw)
    }

    #[test]
    fn durations_take_the_documented_units() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in ["", "5", "m", "5x", "-5s", "1.5s", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_public_url_is_an_absolute_http_url_kept_without_its_trailing_slash() {
        let ok = |v: &str| parse(&["--public-url", v]).unwrap().public_url;
        assert_eq!(
            ok("https://auth.example.com/"),
            Some("https://auth.example.com".into())
        );
        assert_eq!(
            ok("http://127.0.0.1:8080"),
            Some("http://127.0.0.1:8080".into())
        );
        assert_eq!(
            ok("https://example.com/auth/"),
            Some("https://example.com/auth".into())
        );
        assert_eq!(parse(&[]).unwrap().public_url, None);
        for bad in [
            "",
            "auth.example.com",
            "ftp://x",
            "https://u:p@x",
            "https://x/?a=1",
            "https://x/#f",
        ] {
            let e = parse(&["--public-url", bad]).unwrap_err();
            assert_eq!(e.setting, "TOKENWARDEN_PUBLIC_URL", "{bad}");
        }
    }

    #[test]
    fn a_bad_value_names_its_setting() {
        let e = parse(&["--access-token-ttl", "soon"]).unwrap_err();
        assert_eq!(e.setting, "TOKENWARDEN_ACCESS_TOKEN_TTL");
        assert!(!e.to_string().contains('\n'));
        assert_eq!(
            parse(&["--reuse-response", "shrug"]).unwrap_err().setting,
            "TOKENWARDEN_REUSE_RESPONSE"
        );
        assert_eq!(
            parse(&["--registration", "invite-only"])
                .unwrap_err()
                .setting,
            "TOKENWARDEN_REGISTRATION"
        );
        assert_eq!(
            parse(&["--registration", "closed"]).unwrap().registration,
            RegistrationPolicy::Closed
        );
        assert_eq!(
            parse(&["--database-url", "mysql://x"]).unwrap_err().setting,
            "DATABASE_URL"
        );
        assert_eq!(
            parse(&["--trusted-proxies", "10.0.0.0/99"])
                .unwrap_err()
                .setting,
            "TOKENWARDEN_TRUSTED_PROXIES"
        );
        assert_eq!(
            parse(&["--login-rate-user", "5/fortnight"])
                .unwrap_err()
                .setting,
            "TOKENWARDEN_LOGIN_RATE_USER"
        );
    }

    #[test]
    fn the_defaults_are_the_contracts() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.database_url, "sqlite://tokenwarden.db");
        assert_eq!(c.lifetimes, Lifetimes::default());
        assert_eq!(c.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.login_rate_user,
            Rate {
                count: 5,
                per: Duration::from_secs(60)
            }
        );
        assert!(c.cookie_secure);
        assert_eq!(c.reuse_response, ReuseResponse::RevokeAll);
        assert_eq!(c.registration, RegistrationPolicy::Open);
        assert_eq!(c.cleanup_interval, Duration::from_secs(300));
        assert_eq!(c.redis_failure, OnRedisFailure::Fallback);
        assert_eq!(c.redis_timeout, Duration::from_millis(250));
        assert_eq!(c.redis_key_prefix, "tokenwarden:");
        assert_eq!(c.redis_url, None);
    }

    #[test]
    fn the_abuse_limits_default_to_the_contract_and_are_validated() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert_eq!(c.keep_alive, Duration::from_secs(30));
        assert_eq!(c.hash_queue, 64);
        assert_eq!(
            c.register_rate_ip,
            Rate {
                count: 10,
                per: Duration::from_secs(3_600)
            }
        );
        assert_eq!(
            c.refresh_fail_rate_ip,
            Rate {
                count: 60,
                per: Duration::from_secs(60)
            }
        );
        let defaults = Config::with_defaults("sqlite://x.db", "keys");
        assert_eq!(defaults.request_timeout, c.request_timeout);
        assert_eq!(defaults.keep_alive, c.keep_alive);
        assert_eq!(defaults.max_connections, c.max_connections);
        assert_eq!(defaults.hash_queue, c.hash_queue);
        assert_eq!(defaults.register_rate_ip, c.register_rate_ip);
        assert_eq!(defaults.refresh_fail_rate_ip, c.refresh_fail_rate_ip);
        for (flag, value, setting) in [
            ("--request-timeout", "0s", "TOKENWARDEN_REQUEST_TIMEOUT"),
            ("--keep-alive", "long", "TOKENWARDEN_KEEP_ALIVE"),
            ("--max-connections", "0", "TOKENWARDEN_MAX_CONNECTIONS"),
            ("--hash-queue", "none", "TOKENWARDEN_HASH_QUEUE"),
            ("--register-rate-ip", "10", "TOKENWARDEN_REGISTER_RATE_IP"),
            (
                "--refresh-fail-rate-ip",
                "0/min",
                "TOKENWARDEN_REFRESH_FAIL_RATE_IP",
            ),
        ] {
            assert_eq!(
                parse(&[flag, value]).unwrap_err().setting,
                setting,
                "{flag} {value}"
            );
        }
    }

    #[test]
    fn the_cookie_settings_default_to_the_contract_and_are_validated() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.cookie_path, "/auth");
        assert_eq!(c.cookie_domain, None);
        assert_eq!(c.cookie_same_site, CookieSameSite::Strict);

        let c = parse(&[
            "--cookie-path",
            "/id/auth",
            "--cookie-domain",
            ".Example.com",
            "--cookie-samesite",
            "none",
        ])
        .unwrap();
        assert_eq!(c.cookie_path, "/id/auth");
        assert_eq!(c.cookie_domain.as_deref(), Some("example.com"));
        assert_eq!(c.cookie_same_site, CookieSameSite::None);
        assert_eq!(parse(&["--cookie-domain", ""]).unwrap().cookie_domain, None);

        for (flag, value, setting) in [
            ("--cookie-path", "auth", "TOKENWARDEN_COOKIE_PATH"),
            ("--cookie-path", "/a;b", "TOKENWARDEN_COOKIE_PATH"),
            ("--cookie-path", "/a b", "TOKENWARDEN_COOKIE_PATH"),
            (
                "--cookie-domain",
                "exa mple.com",
                "TOKENWARDEN_COOKIE_DOMAIN",
            ),
            ("--cookie-domain", "a..b", "TOKENWARDEN_COOKIE_DOMAIN"),
            ("--cookie-domain", "x.com;", "TOKENWARDEN_COOKIE_DOMAIN"),
            (
                "--cookie-samesite",
                "sometimes",
                "TOKENWARDEN_COOKIE_SAMESITE",
            ),
        ] {
            assert_eq!(
                parse(&[flag, value]).unwrap_err().setting,
                setting,
                "{flag} {value}"
            );
        }
    }

    #[test]
    fn same_site_none_without_secure_stops_start_up() {
        let e = parse(&["--cookie-samesite", "none", "--cookie-secure", "false"]).unwrap_err();
        assert_eq!(e.setting, "TOKENWARDEN_COOKIE_SAMESITE");
        assert!(e.to_string().contains("Secure"), "{e}");
        assert!(parse(&["--cookie-samesite", "lax", "--cookie-secure", "false"]).is_ok());
    }

    #[test]
    fn the_revocation_and_cleanup_settings_are_validated() {
        let c = parse(&[
            "--redis-url",
            "redis://cache:6379/2",
            "--redis-failure",
            "fail_closed",
            "--cleanup-interval",
            "30s",
            "--redis-timeout",
            "100ms",
        ])
        .unwrap();
        assert_eq!(c.redis_failure, OnRedisFailure::FailClosed);
        assert_eq!(c.cleanup_interval, Duration::from_secs(30));
        assert_eq!(c.redis_timeout, Duration::from_millis(100));
        for (flag, value, setting) in [
            ("--redis-failure", "shrug", "TOKENWARDEN_REDIS_FAILURE"),
            ("--cleanup-interval", "0s", "TOKENWARDEN_CLEANUP_INTERVAL"),
            (
                "--cleanup-interval",
                "often",
                "TOKENWARDEN_CLEANUP_INTERVAL",
            ),
            ("--redis-timeout", "0ms", "TOKENWARDEN_REDIS_TIMEOUT"),
            ("--redis-key-prefix", "a b", "TOKENWARDEN_REDIS_KEY_PREFIX"),
            ("--redis-url", "http://cache", "REDIS_URL"),
        ] {
            assert_eq!(
                parse(&[flag, value]).unwrap_err().setting,
                setting,
                "{flag} {value}"
            );
        }
    }
}
