//! The settings, one group per adapter or area, each setting defined once
//! here with its flag, environment variable, default and parser. A
//! subcommand flattens the groups it uses, so its `--help` lists only
//! those; [`Settings`] holds them all (`serve`, `config check`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches, ValueEnum};
use secrecy::SecretString;
use url::Url;
use web::IpNet;
use webhook::WebhookSecret;

use super::parse::{self, List, OrEmpty};
use super::{AnomalyResponse, LogFormat, Rate};

/// Where the data lives.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseSettings {
    /// Database: `sqlite://<file>` or `postgres://…`
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://tokenwarden.db",
        value_parser = parse::database_url,
        hide_env_values = true
    )]
    pub database_url: SecretString,
    /// Database connections per process.
    #[arg(
        long,
        env = "TOKENWARDEN_DB_POOL_SIZE",
        default_value = "16",
        value_parser = parse::whole(1u32..=1000)
    )]
    pub db_pool_size: u32,
    /// The longest a request waits for its dependencies (database, Redis
    /// under `fail_closed`) before it is answered 503 with `Retry-After`.
    #[arg(
        long,
        env = "TOKENWARDEN_DEPENDENCY_TIMEOUT",
        default_value = "3s",
        value_parser = parse::positive_duration
    )]
    pub dependency_timeout: Duration,
}

/// The shared revocation list and rate-limit counters.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Redis")]
pub struct RedisSettings {
    /// Redis for the shared revocation list and login limits (unset: the database).
    #[arg(long, env = "REDIS_URL", value_parser = parse::redis_url, hide_env_values = true)]
    pub redis_url: Option<SecretString>,
    /// While Redis cannot be used: `fallback` (check the database) or `fail_closed` (refuse, 503).
    #[arg(long, env = "TOKENWARDEN_REDIS_FAILURE", default_value = "fallback")]
    pub redis_failure: RedisFailure,
    /// Deadline of every Redis call (connect, command, pool wait).
    #[arg(
        long,
        env = "TOKENWARDEN_REDIS_TIMEOUT",
        default_value = "250ms",
        value_parser = parse::positive_duration
    )]
    pub redis_timeout: Duration,
    /// Prefix of every Redis key and channel (several deployments can share one Redis).
    #[arg(
        long,
        env = "TOKENWARDEN_REDIS_KEY_PREFIX",
        default_value = "tokenwarden:",
        value_parser = parse::redis_key_prefix
    )]
    pub redis_key_prefix: String,
}

/// The signing keys.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Signing keys")]
pub struct KeysSettings {
    /// Directory of the signing keys (created, with a first key, when missing).
    #[arg(long, env = "TOKENWARDEN_KEYS_DIR", default_value = "./keys")]
    pub keys_dir: PathBuf,
}

/// Who this service is, in tokens and discovery.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Identity")]
pub struct IdentitySettings {
    /// `iss` of access tokens.
    #[arg(long, env = "TOKENWARDEN_ISSUER", default_value = "tokenwarden", value_parser = parse::non_empty)]
    pub issuer: String,
    /// `aud` of access tokens.
    #[arg(long, env = "TOKENWARDEN_AUDIENCE", default_value = "tokenwarden", value_parser = parse::non_empty)]
    pub audience: String,
    /// Base URL of this service as clients reach it (`https://auth.example.com`),
    /// for the discovery documents (unset: the request's own origin).
    #[arg(long, env = "TOKENWARDEN_PUBLIC_URL", value_parser = parse::public_url)]
    pub public_url: Option<String>,
}

/// How long access tokens live, which also bounds revocation entries and
/// key retirement.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Access tokens")]
pub struct AccessTokenSettings {
    /// Access-token lifetime (`500ms`, `2s`, `15m`, `7d`).
    #[arg(
        long,
        env = "TOKENWARDEN_ACCESS_TOKEN_TTL",
        default_value = "15m",
        value_parser = parse::positive_duration
    )]
    pub access_token_ttl: Duration,
    /// Clock leeway when verifying access tokens.
    #[arg(long, env = "TOKENWARDEN_CLOCK_LEEWAY", default_value = "0s", value_parser = parse::duration)]
    pub clock_leeway: Duration,
}

/// Refresh sessions: lifetimes, rotation, theft responses, registration, DPoP.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Sessions")]
pub struct SessionSettings {
    /// A refresh token unused this long is dead.
    #[arg(
        long,
        env = "TOKENWARDEN_REFRESH_IDLE_TTL",
        default_value = "7d",
        value_parser = parse::positive_duration
    )]
    pub refresh_idle_ttl: Duration,
    /// Absolute session lifetime from login.
    #[arg(
        long,
        env = "TOKENWARDEN_SESSION_MAX_LIFETIME",
        default_value = "30d",
        value_parser = parse::positive_duration
    )]
    pub session_max_lifetime: Duration,
    /// Grace window for concurrent refreshes of the same client (0 disables).
    #[arg(long, env = "TOKENWARDEN_REUSE_GRACE", default_value = "10s", value_parser = parse::duration)]
    pub reuse_grace: Duration,
    /// How long after a rotation its client may retry with the parent token
    /// (same network and user-agent family) and get the same successor (0 disables).
    #[arg(long, env = "TOKENWARDEN_RETRY_WINDOW", default_value = "1h", value_parser = parse::duration)]
    pub retry_window: Duration,
    /// Window since a session's last use inside which an IP and device change is an anomaly.
    #[arg(long, env = "TOKENWARDEN_ANOMALY_WINDOW", default_value = "10m", value_parser = parse::duration)]
    pub anomaly_window: Duration,
    /// What a reused refresh token revokes.
    #[arg(long, env = "TOKENWARDEN_REUSE_RESPONSE", default_value = "revoke_all")]
    pub reuse_response: ReuseResponse,
    /// What an anomaly does.
    #[arg(
        long,
        env = "TOKENWARDEN_ANOMALY_RESPONSE",
        default_value = "revoke_all"
    )]
    pub anomaly_response: AnomalyResponse,
    /// Live sessions per user; the least recently used is evicted.
    #[arg(
        long,
        env = "TOKENWARDEN_MAX_SESSIONS",
        default_value = "10",
        value_parser = parse::whole(1u32..=u32::MAX)
    )]
    pub max_sessions: u32,
    /// `open` (anyone may `POST /auth/register`) or `closed` (admins and
    /// the CLI create users; registration answers 403).
    #[arg(long, env = "TOKENWARDEN_REGISTRATION", default_value = "open")]
    pub registration: Registration,
    /// `optional` (a login with a DPoP proof binds its session) or `required`.
    #[arg(long, env = "TOKENWARDEN_DPOP", default_value = "optional")]
    pub dpop: Dpop,
    /// How old a DPoP proof (`iat`) may be, plus the clock leeway.
    #[arg(
        long,
        env = "TOKENWARDEN_DPOP_MAX_AGE",
        default_value = "60s",
        value_parser = parse::positive_duration
    )]
    pub dpop_max_age: Duration,
}

/// The HTTP server of `serve`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerSettings {
    /// Address to serve the API on.
    #[arg(long, env = "TOKENWARDEN_BIND", default_value = "127.0.0.1:8080", value_parser = parse::socket)]
    pub bind: SocketAddr,
    /// Separate address for /metrics (unset: the API port).
    #[arg(long, env = "TOKENWARDEN_METRICS_BIND", value_parser = parse::socket)]
    pub metrics_bind: Option<SocketAddr>,
    /// A request's headers and body must arrive within this, else 408 and the connection closes.
    #[arg(
        long,
        env = "TOKENWARDEN_REQUEST_TIMEOUT",
        default_value = "10s",
        value_parser = parse::positive_duration
    )]
    pub request_timeout: Duration,
    /// Idle keep-alive connections are closed after this.
    #[arg(long, env = "TOKENWARDEN_KEEP_ALIVE", default_value = "30s", value_parser = parse::duration)]
    pub keep_alive: Duration,
    /// Open connections at most (all workers together); further ones wait to be accepted.
    #[arg(
        long,
        env = "TOKENWARDEN_MAX_CONNECTIONS",
        default_value = "10000",
        value_parser = parse::whole(1usize..=1_000_000)
    )]
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish.
    #[arg(long, env = "TOKENWARDEN_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse::duration)]
    pub shutdown_timeout: Duration,
    /// How often `serve` removes expired tokens, sessions, revocation entries and old audit rows.
    #[arg(
        long,
        env = "TOKENWARDEN_CLEANUP_INTERVAL",
        default_value = "5m",
        value_parser = parse::positive_duration
    )]
    pub cleanup_interval: Duration,
    /// Shared secret resource servers may introspect with (at least 16 characters).
    #[arg(
        long,
        env = "TOKENWARDEN_INTROSPECTION_TOKEN",
        value_parser = parse::introspection_token,
        hide_env_values = true
    )]
    pub introspection_token: Option<OrEmpty<SecretString>>,
    /// Comma-separated IPs/CIDRs whose X-Forwarded-For is trusted.
    #[arg(long, env = "TOKENWARDEN_TRUSTED_PROXIES", default_value = "", value_parser = parse::ip_nets)]
    pub trusted_proxies: List<IpNet>,
    /// Comma-separated origins allowed besides the server's own (Origin check and CORS).
    #[arg(long, env = "TOKENWARDEN_ALLOWED_ORIGINS", default_value = "", value_parser = parse::origins)]
    pub allowed_origins: List<String>,
}

/// The refresh cookie.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Refresh cookie")]
pub struct CookieSettings {
    /// Name of the refresh cookie.
    #[arg(long, env = "TOKENWARDEN_COOKIE_NAME", default_value = "refresh_token", value_parser = parse::cookie_name)]
    pub cookie_name: String,
    /// Whether the refresh cookie carries `Secure`.
    #[arg(
        long,
        env = "TOKENWARDEN_COOKIE_SECURE",
        default_value = "true",
        value_parser = parse::boolean,
        action = clap::ArgAction::Set
    )]
    pub cookie_secure: bool,
    /// `Path` of the refresh cookie (a proxy that moves `/auth` elsewhere sets it to match).
    #[arg(long, env = "TOKENWARDEN_COOKIE_PATH", default_value = "/auth", value_parser = parse::cookie_path)]
    pub cookie_path: String,
    /// `Domain` of the refresh cookie (unset: host-only).
    #[arg(long, env = "TOKENWARDEN_COOKIE_DOMAIN", value_parser = parse::cookie_domain)]
    pub cookie_domain: Option<OrEmpty<String>>,
    /// `SameSite` of the refresh cookie (`none` needs Secure).
    #[arg(
        long,
        env = "TOKENWARDEN_COOKIE_SAMESITE",
        default_value = "strict",
        ignore_case = true
    )]
    pub cookie_samesite: SameSite,
}

/// Abuse limits.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Abuse limits")]
pub struct LimitSettings {
    /// Failed logins per username before 429 (`5/min`).
    #[arg(long, env = "TOKENWARDEN_LOGIN_RATE_USER", default_value = "5/min", value_parser = parse::rate)]
    pub login_rate_user: Rate,
    /// Login attempts per client IP before 429 (`30/min`).
    #[arg(long, env = "TOKENWARDEN_LOGIN_RATE_IP", default_value = "30/min", value_parser = parse::rate)]
    pub login_rate_ip: Rate,
    /// Registrations per client IP (IPv6: per /64) before 429 (`10/hour`).
    #[arg(long, env = "TOKENWARDEN_REGISTER_RATE_IP", default_value = "10/hour", value_parser = parse::rate)]
    pub register_rate_ip: Rate,
    /// Failed refreshes per client IP before 429 (`60/min`).
    #[arg(
        long,
        env = "TOKENWARDEN_REFRESH_FAIL_RATE_IP",
        default_value = "60/min",
        value_parser = parse::rate
    )]
    pub refresh_fail_rate_ip: Rate,
    /// Password checks and hashes that may wait for a hashing thread; more get 503.
    #[arg(
        long,
        env = "TOKENWARDEN_HASH_QUEUE",
        default_value = "64",
        value_parser = parse::whole(1usize..=100_000)
    )]
    pub hash_queue: usize,
}

/// How long the audit trail is kept.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Audit")]
pub struct AuditSettings {
    /// How long audit rows are kept.
    #[arg(
        long,
        env = "TOKENWARDEN_AUDIT_RETENTION",
        default_value = "90d",
        value_parser = parse::positive_duration
    )]
    pub audit_retention: Duration,
}

/// Security events pushed to a receiver.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookSettings {
    /// Where every security event is POSTed, signed (http or https; unset: no webhooks).
    #[arg(
        long,
        env = "TOKENWARDEN_WEBHOOK_URL",
        value_parser = parse::webhook_url,
        hide_env_values = true
    )]
    pub webhook_url: Option<OrEmpty<Url>>,
    /// Key the webhooks are signed with: at least 32 bytes (`whsec_<base64>`: the decoded bytes).
    #[arg(
        long,
        env = "TOKENWARDEN_WEBHOOK_SECRET",
        value_parser = parse::webhook_secret,
        hide_env_values = true
    )]
    pub webhook_secret: Option<OrEmpty<WebhookSecret>>,
}

/// Logging, for every command.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogSettings {
    /// Log filter, as `RUST_LOG`.
    #[arg(long = "log", env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,
    /// Log format.
    #[arg(long, env = "TOKENWARDEN_LOG_FORMAT", default_value = "pretty")]
    pub log_format: LogFormat,
}

/// Every setting: what `serve` and `config check` take.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub redis: RedisSettings,
    #[command(flatten)]
    pub keys: KeysSettings,
    #[command(flatten)]
    pub identity: IdentitySettings,
    #[command(flatten)]
    pub access: AccessTokenSettings,
    #[command(flatten)]
    pub sessions: SessionSettings,
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub cookies: CookieSettings,
    #[command(flatten)]
    pub limits: LimitSettings,
    #[command(flatten)]
    pub audit: AuditSettings,
    #[command(flatten)]
    pub webhooks: WebhookSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

impl Settings {
    /// Every setting at its default, whatever the environment says: the
    /// groups a subcommand does not take, and what tests start from.
    ///
    /// # Errors
    /// Only if a default above fails its own parser (a unit test makes
    /// sure none does).
    pub fn defaults() -> Result<Self, clap::Error> {
        defaults()
    }
}

/// `T` parsed from no arguments and no environment: its defaults.
///
/// # Errors
/// When a default does not parse, or a setting without one is required.
pub fn defaults<T: Args + FromArgMatches>() -> Result<T, clap::Error> {
    let cmd = T::augment_args(clap::Command::new("defaults")).mut_args(|a| a.env(None));
    T::from_arg_matches(&cmd.try_get_matches_from(["defaults"])?)
}

/// `TOKENWARDEN_REUSE_RESPONSE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ReuseResponse {
    /// Every session of the user.
    RevokeAll,
    /// Only the session the token belongs to.
    RevokeFamily,
}

impl From<ReuseResponse> for domain::ReuseResponse {
    fn from(value: ReuseResponse) -> Self {
        match value {
            ReuseResponse::RevokeAll => Self::RevokeAll,
            ReuseResponse::RevokeFamily => Self::RevokeFamily,
        }
    }
}

/// `TOKENWARDEN_REGISTRATION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Registration {
    Open,
    Closed,
}

impl From<Registration> for application::RegistrationPolicy {
    fn from(value: Registration) -> Self {
        match value {
            Registration::Open => Self::Open,
            Registration::Closed => Self::Closed,
        }
    }
}

/// `TOKENWARDEN_DPOP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dpop {
    Optional,
    Required,
}

impl From<Dpop> for domain::DpopMode {
    fn from(value: Dpop) -> Self {
        match value {
            Dpop::Optional => Self::Optional,
            Dpop::Required => Self::Required,
        }
    }
}

/// `TOKENWARDEN_REDIS_FAILURE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum RedisFailure {
    Fallback,
    FailClosed,
}

impl From<RedisFailure> for redis_revocation::OnRedisFailure {
    fn from(value: RedisFailure) -> Self {
        match value {
            RedisFailure::Fallback => Self::Fallback,
            RedisFailure::FailClosed => Self::FailClosed,
        }
    }
}

/// `TOKENWARDEN_COOKIE_SAMESITE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl From<SameSite> for web::CookieSameSite {
    fn from(value: SameSite) -> Self {
        match value {
            SameSite::Strict => Self::Strict,
            SameSite::Lax => Self::Lax,
            SameSite::None => Self::None,
        }
    }
}
