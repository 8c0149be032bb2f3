//! Builds the application from its configuration.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{App, HttpServer};

use application::{Ports, Settings, TokenWarden};
use domain::{AnomalyPolicy, AnomalyResponse, RefreshSecret};
use jwt::{JwtConfig, JwtSigner, KeyStore};
use password::Argon2Hasher;
use persistence::Database;
use web::{ApiState, JwksSource, WebConfig};

use crate::config::{self, Config};
use crate::system::{OsRandom, SystemClock};

/// Why the server could not start. One line, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot use DATABASE_URL: {0}")]
    Database(String),
    #[error("cannot use TOKENWARDEN_KEYS_DIR: {0}")]
    Keys(String),
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

/// The use cases wired to the real adapters.
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
        audit: Arc::new(db.clone()),
    };
    let settings = Settings {
        lifetimes: config.lifetimes.clone(),
        reuse_response: config.reuse_response,
        refresh_secret: RefreshSecret::from_bytes(keys.refresh_secret()),
        anomaly: AnomalyPolicy {
            window: config.anomaly_window,
            response: match config.anomaly_response {
                config::AnomalyResponse::RevokeAll => AnomalyResponse::Revoke,
                config::AnomalyResponse::LogOnly => AnomalyResponse::LogOnly,
            },
        },
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
}

impl Application {
    /// Migrates the database, loads or creates the keys, binds the socket.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let setup = config.clone();
        let (db, keys) = tokio::task::spawn_blocking(move || -> Result<_, StartupError> {
            Ok((open_database(&setup)?, open_keys(&setup)?))
        })
        .await
        .map_err(|e| StartupError::Database(e.to_string()))??;
        let warden = Arc::new(build_warden(&config, &db, &keys)?);
        let state = ApiState {
            warden,
            config: Arc::new(WebConfig {
                cookie_name: config.cookie_name.clone(),
                cookie_secure: config.cookie_secure,
                allowed_origins: config.allowed_origins.clone(),
                trusted_proxies: config.trusted_proxies.clone(),
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
        Ok(Self { port, server })
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
