//! Builds the application from its configuration.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer};

use application::{Ports, Settings, TokenWarden};
use domain::RefreshSecret;
use jwt::{JwtConfig, JwtSigner, KeyStore};
use password::Argon2Hasher;
use persistence::Database;
use web::{ApiState, JwksSource, WebConfig};

use crate::cleanup::{spawn_cleanup_job, CleanupJob};
use crate::config::Config;
use crate::revocations::open_revocations;
use crate::system::{OsRandom, SystemClock};

/// Why the server could not start. One line, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot use DATABASE_URL: {0}")]
    Database(String),
    #[error("cannot use TOKENWARDEN_KEYS_DIR: {0}")]
    Keys(String),
    #[error("cannot use REDIS_URL: {0}")]
    Redis(String),
    #[error("cannot listen on {setting}: {message}")]
    Bind {
        setting: &'static str,
        message: String,
    },
}

/// The database, migrated, as every command needs it.
pub fn open_database(config: &Config) -> Result<Database, StartupError> {
    let db = Database::connect(&config.database_url, config.db_pool_size)
        .map_err(|e| StartupError::Database(e.to_string()))?;
    db.run_migrations()
        .map_err(|e| StartupError::Database(e.to_string()))?;
    Ok(db)
}

/// The use cases wired to the real adapters. Blocks briefly (connecting to
/// Redis when configured): call it off the async workers.
pub fn build_warden(
    config: &Config,
    db: &Database,
    keys: &KeyStore,
) -> Result<TokenWarden, StartupError> {
    let signer = JwtSigner::new(
        keys.clone(),
        JwtConfig {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.clock_leeway,
        },
    );
    let hasher_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ports = Ports {
        users: Arc::new(db.clone()),
        sessions: Arc::new(db.clone()),
        hasher: Arc::new(Argon2Hasher::new(hasher_threads)),
        signer: Arc::new(signer),
        clock: Arc::new(SystemClock),
        random: Arc::new(OsRandom),
        revocations: open_revocations(config, db)?,
    };
    let settings = Settings {
        lifetimes: config.lifetimes.clone(),
        reuse_response: config.reuse_response,
        refresh_secret: RefreshSecret::from_bytes(keys.refresh_secret()),
        clock_leeway: config.clock_leeway,
    };
    Ok(TokenWarden::new(ports, settings))
}

pub fn open_keys(config: &Config) -> Result<KeyStore, StartupError> {
    KeyStore::open(&config.keys_dir).map_err(|e| StartupError::Keys(e.to_string()))
}

struct Jwks(KeyStore);

impl JwksSource for Jwks {
    fn jwks(&self) -> serde_json::Value {
        self.0.jwks()
    }
}

/// A running server; `port` is the real one (tests bind port 0).
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    /// Stops with the server.
    _cleanup: CleanupJob,
}

impl Application {
    /// Migrates the database, loads or creates the keys, binds the socket.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let setup = config.clone();
        let (db, keys, warden) = tokio::task::spawn_blocking(move || -> Result<_, StartupError> {
            let (db, keys) = (open_database(&setup)?, open_keys(&setup)?);
            let warden = build_warden(&setup, &db, &keys)?;
            Ok((db, keys, warden))
        })
        .await
        .map_err(|e| StartupError::Database(e.to_string()))??;
        let warden = Arc::new(warden);
        let state = ApiState {
            warden,
            config: Arc::new(WebConfig {
                cookie_name: config.cookie_name.clone(),
                cookie_secure: config.cookie_secure,
                allowed_origins: config.allowed_origins.clone(),
                trusted_proxies: config.trusted_proxies.clone(),
                introspection_secret: config.introspection_token.clone(),
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
            }),
            jwks: Arc::new(Jwks(keys)),
        };
        let listener = TcpListener::bind(config.bind).map_err(|e| StartupError::Bind {
            setting: "TOKENWARDEN_BIND",
            message: e.to_string(),
        })?;
        let port = listener
            .local_addr()
            .map_err(|e| StartupError::Bind {
                setting: "TOKENWARDEN_BIND",
                message: e.to_string(),
            })?
            .port();
        let server = HttpServer::new(move || App::new().configure(web::configure(state.clone())))
            .listen(listener)
            .map_err(|e| StartupError::Bind {
                setting: "TOKENWARDEN_BIND",
                message: e.to_string(),
            })?
            .shutdown_timeout(30)
            .run();
        Ok(Self {
            port,
            server,
            _cleanup: spawn_cleanup_job(&config, &db),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGTERM/SIGINT (or the server handle stops it), then
    /// finishes the requests in flight.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
