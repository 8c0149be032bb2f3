//! The `tokenwarden` command line: each subcommand takes the setting
//! groups it uses, and only those appear in its `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::settings::{
    AccessTokenSettings, AuditSettings, DatabaseSettings, KeysSettings, LogSettings, RedisSettings,
};
use crate::config::{Config, ConfigError, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "tokenwarden",
    version,
    about = "Refresh-token service: rotation, reuse detection, revocation"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// A TOML file of settings (keys as `tokenwarden config check` prints
    /// them); flags and environment variables override it.
    #[arg(long, env = "TOKENWARDEN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum Command {
    /// Run pending migrations, then serve HTTP until SIGTERM/SIGINT.
    Serve(Settings),
    /// Run pending migrations and exit.
    Migrate(DatabaseOnly),
    /// Remove expired refresh tokens, sessions past their absolute lifetime,
    /// expired revocation entries and audit rows past the retention, once;
    /// print what was removed per table.
    Cleanup(CleanupSettings),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new Ed25519 key current; the previous one stays published
    /// until every token it signed has expired. Running servers pick the
    /// new key up within 60 s.
    Rotate(KeySettings),
    /// Add an operator's Ed25519 private key (PKCS#8 PEM, as `openssl
    /// genpkey -algorithm ed25519` writes it) and make it current; the
    /// previous key stays published until every token it signed has expired.
    Import {
        /// The PEM file to import.
        file: PathBuf,
        #[command(flatten)]
        settings: KeySettings,
    },
    /// Print every key of the keys directory: kid, state (current,
    /// published, expired), created, retired, tokens expire by.
    List(KeySettings),
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum ConfigCommand {
    /// Validate the configuration and print it (secrets redacted), then
    /// connect to the database and Redis and check the keys directory;
    /// exits non-zero naming the check that failed.
    Check {
        /// A check to leave out (repeatable): `redis` where a Redis outage
        /// must not stop a start (`serve` starts without Redis).
        #[arg(long = "skip", value_name = "CHECK")]
        skip: Vec<Check>,
        #[command(flatten)]
        settings: Settings,
    },
}

/// What `config check` checks besides the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Check {
    /// Connect to the database and run `SELECT 1`.
    Database,
    /// Connect to Redis (when `REDIS_URL` is set) and `PING` it.
    Redis,
    /// The keys directory exists and its keys load.
    Keys,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        username: String,
        /// A role to grant (repeatable); default `user`.
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Read the password from standard input (required: never from argv).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        settings: DatabaseOnly,
    },
    /// List users (id, username, roles, state, created, last login).
    List {
        /// Only usernames starting with this (any letter case).
        #[arg(long)]
        query: Option<String>,
        #[command(flatten)]
        settings: DatabaseOnly,
    },
    /// Set a user's password, read from standard input; every session of
    /// the user is revoked.
    SetPassword {
        username: String,
        /// Read the password from standard input (required: never from argv).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        settings: RevokingSettings,
    },
    /// Replace a user's roles; taking a role away revokes every session.
    Roles {
        username: String,
        /// A role (repeatable, at least one).
        #[arg(long = "role")]
        roles: Vec<String>,
        #[command(flatten)]
        settings: RevokingSettings,
    },
    /// Disable a user: every session revoked, logins refused.
    Disable {
        username: String,
        #[command(flatten)]
        settings: RevokingSettings,
    },
    /// Enable a disabled user again.
    Enable {
        username: String,
        #[command(flatten)]
        settings: DatabaseOnly,
    },
    /// Delete a user with their sessions and tokens (the audit trail stays
    /// until its retention).
    Delete {
        username: String,
        #[command(flatten)]
        settings: RevokingSettings,
    },
}

/// The database (and logging): `migrate`, `user create|list|enable`.
#[derive(Debug, Clone, Args)]
pub struct DatabaseOnly {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

/// `cleanup`: the database and the audit retention.
#[derive(Debug, Clone, Args)]
pub struct CleanupSettings {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub audit: AuditSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

/// User commands that revoke sessions: the revocation reaches every
/// server through Redis when it is configured, and lasts as long as an
/// access token could (its lifetime plus the leeway).
#[derive(Debug, Clone, Args)]
pub struct RevokingSettings {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub redis: RedisSettings,
    #[command(flatten)]
    pub access: AccessTokenSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

/// `keys …`: the directory, and how long a retired key's tokens live.
#[derive(Debug, Clone, Args)]
pub struct KeySettings {
    #[command(flatten)]
    pub keys: KeysSettings,
    #[command(flatten)]
    pub access: AccessTokenSettings,
    #[command(flatten)]
    pub log: LogSettings,
}

impl Command {
    /// The configuration of the subcommand: the groups it took, every
    /// other setting at its default (which it does not read).
    ///
    /// # Errors
    /// [`ConfigError`] when the settings do not fit together.
    pub fn config(&self) -> Result<Config, ConfigError> {
        let mut all = Settings::defaults()
            .map_err(|e| ConfigError::new("defaults", e.to_string().trim().to_owned()))?;
        match self {
            Self::Serve(settings) | Self::Config(ConfigCommand::Check { settings, .. }) => {
                all = settings.clone();
            }
            Self::Migrate(s)
            | Self::User(
                UserCommand::Create { settings: s, .. }
                | UserCommand::List { settings: s, .. }
                | UserCommand::Enable { settings: s, .. },
            ) => {
                all.database = s.database.clone();
                all.log = s.log.clone();
            }
            Self::Cleanup(s) => {
                all.database = s.database.clone();
                all.audit = s.audit.clone();
                all.log = s.log.clone();
            }
            Self::User(
                UserCommand::SetPassword { settings: s, .. }
                | UserCommand::Roles { settings: s, .. }
                | UserCommand::Disable { settings: s, .. }
                | UserCommand::Delete { settings: s, .. },
            ) => {
                all.database = s.database.clone();
                all.redis = s.redis.clone();
                all.access = s.access.clone();
                all.log = s.log.clone();
            }
            Self::Keys(
                KeysCommand::Rotate(s)
                | KeysCommand::List(s)
                | KeysCommand::Import { settings: s, .. },
            ) => {
                all.keys = s.keys.clone();
                all.access = s.access.clone();
                all.log = s.log.clone();
            }
        }
        Config::from_settings(all)
    }
}
