//! Builds the application from its configuration.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::middleware::{from_fn, Condition};
use actix_web::App;

use application::ports::Clock;
use application::{Dpop, DpopSettings, Ports, Settings, TokenWarden};
use domain::{AnomalyPolicy, AnomalyResponse, ProofWindow, RefreshSecret};
use jwt::{DpopReader, JwtConfig, JwtSigner, KeyStore};
use password::{Argon2Hasher, HashCost};
use persistence::Database;
use secrecy::ExposeSecret as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use web::deadline::{bound_requests, InFlight};
use web::listener::{self, Connections};
use web::{ApiState, JwksSource, MetricsSource, OpsState, PasswordQueue, WebConfig};
use webhook::WebhookWorker;

use crate::cleanup::{
    flush_throttled, spawn_cleanup_job, spawn_throttle_flush, CleanupJob, ThrottleFlush,
};
use crate::config::{self, Config};
use crate::metrics::{MeteredSessions, PrometheusMetrics};
use crate::operations::{limiters, readiness_checks, shutdown_signal};
use crate::revocations::open_revocations;
use crate::system::{OsRandom, SystemClock};

/// Why the server could not start. One line, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot use DATABASE_URL: {0}")]
    Database(String),
    #[error("cannot use TOKENWARDEN_KEYS_DIR: {0}")]
    Keys(String),
    #[error("{0}")]
    Redis(String),
    #[error("cannot use TOKENWARDEN_WEBHOOK_URL: {0}")]
    Webhook(String),
    #[error("cannot listen on {setting}: {message}")]
    Bind {
        setting: &'static str,
        message: String,
    },
}

/// The database, migrated, as every command needs it.
pub fn open_database(config: &Config) -> Result<Database, StartupError> {
    let db = Database::connect_with(
        config.database_url.expose_secret(),
        config.db_pool_size,
        config.dependency_timeout,
    )
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
    build_warden_with(
        config,
        db,
        keys,
        Arc::new(Argon2Hasher::new(hasher_threads())),
    )
}

/// Password work: at most one computation per core.
fn hasher_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Turns of the password queue per argon2 workspace. A login holds its
/// turn for all of its work, of which the hash is most but not all: the
/// user's lookup before it, the database write and the signature after it.
/// With one turn per workspace a core idled through that part (login at
/// 69–80 % of the raw argon2 rate in the load benchmark); with two, the next
/// request's hash ran meanwhile, but a workspace still idled when both other
/// turns were between hashes (87–90 %); with three, 90–94 % (A/B in the
/// same minutes, `docs/performance.md`). At most one hash per core still
/// runs at once: the hasher has one workspace per core, and a turn's hash
/// waits for a free one.
const PASSWORD_TURNS_PER_HASHER: usize = 3;

/// Blocking threads per actix worker; see [`Application::build_with`].
const BLOCKING_THREADS_PER_WORKER: usize = 16;

/// [`build_warden`] with a given hasher (whose queue the metrics watch).
pub fn build_warden_with(
    config: &Config,
    db: &Database,
    keys: &KeyStore,
    hasher: Arc<Argon2Hasher>,
) -> Result<TokenWarden, StartupError> {
    wire_warden(config, db, keys, hasher, Arc::new(SystemClock), true)
}

/// The use cases for the operator's `user …` commands, which issue no
/// tokens: no signing key is read or created (the keys directory is not
/// one of their settings), and a refresh secret of this process only is
/// never used.
///
/// # Errors
/// [`StartupError::Redis`] for a malformed `REDIS_URL`.
pub fn build_operator_warden(config: &Config, db: &Database) -> Result<TokenWarden, StartupError> {
    use application::ports::RandomSource as _;
    wire(
        config,
        db,
        Arc::new(NoAccessTokens),
        OsRandom.token_bytes(),
        Arc::new(Argon2Hasher::new(hasher_threads())),
        Arc::new(SystemClock),
        false,
    )
}

/// The signer of the operator's commands: they never sign nor verify.
struct NoAccessTokens;

impl application::ports::AccessTokenSigner for NoAccessTokens {
    fn sign(
        &self,
        _claims: &application::ports::AccessClaims,
    ) -> Result<String, application::ports::CryptoError> {
        Err(application::ports::CryptoError(
            "the operator's commands issue no access tokens".to_owned(),
        ))
    }

    fn verify(
        &self,
        _token: &str,
        _now: domain::Timestamp,
    ) -> Result<application::ports::AccessClaims, application::ports::VerifyError> {
        Err(application::ports::VerifyError::Invalid)
    }
}

/// The wiring; `metered`: count what the session store decides.
fn wire_warden(
    config: &Config,
    db: &Database,
    keys: &KeyStore,
    hasher: Arc<Argon2Hasher>,
    clock: Arc<dyn Clock>,
    metered: bool,
) -> Result<TokenWarden, StartupError> {
    let signer = JwtSigner::new(
        keys.clone(),
        JwtConfig {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway: config.clock_leeway,
        },
    );
    wire(
        config,
        db,
        Arc::new(signer),
        keys.refresh_secret(),
        hasher,
        clock,
        metered,
    )
}

fn wire(
    config: &Config,
    db: &Database,
    signer: Arc<dyn application::ports::AccessTokenSigner>,
    refresh_secret: [u8; 32],
    hasher: Arc<Argon2Hasher>,
    clock: Arc<dyn Clock>,
    metered: bool,
) -> Result<TokenWarden, StartupError> {
    let sessions: Arc<dyn application::ports::SessionRepository> = if metered {
        Arc::new(MeteredSessions(db.clone()))
    } else {
        Arc::new(db.clone())
    };
    let ports = Ports {
        users: Arc::new(db.clone()),
        sessions,
        hasher,
        signer,
        clock,
        random: Arc::new(OsRandom),
        revocations: open_revocations(config, db)?,
        audit: Arc::new(db.clone()),
    };
    let settings = Settings {
        lifetimes: config.lifetimes.clone(),
        reuse_response: config.reuse_response,
        refresh_secret: RefreshSecret::from_bytes(refresh_secret),
        clock_leeway: config.clock_leeway,
        anomaly: AnomalyPolicy {
            window: config.anomaly_window,
            response: match config.anomaly_response {
                config::AnomalyResponse::RevokeAll => AnomalyResponse::Revoke,
                config::AnomalyResponse::LogOnly => AnomalyResponse::LogOnly,
            },
        },
        retry_window: config.retry_window,
    };
    Ok(TokenWarden::new(ports, settings)
        .with_registration(config.registration)
        .with_dpop(Dpop {
            reader: Arc::new(DpopReader),
            replay: Arc::new(db.clone()),
            settings: DpopSettings {
                mode: config.dpop,
                window: ProofWindow {
                    max_age: config.dpop_max_age,
                    leeway: config.clock_leeway,
                },
            },
        }))
}

/// What the API handlers share: the warden, the HTTP settings of
/// `config` and the published keys.
pub fn api_state(config: &Config, warden: TokenWarden, keys: KeyStore) -> ApiState {
    ApiState {
        warden: Arc::new(warden),
        config: Arc::new(WebConfig {
            cookie_name: config.cookie_name.clone(),
            cookie_secure: config.cookie_secure,
            cookie_path: config.cookie_path.clone(),
            cookie_domain: config.cookie_domain.clone(),
            cookie_same_site: config.cookie_same_site,
            allowed_origins: config.allowed_origins.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            introspection_secret: config.introspection_token.clone(),
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            request_timeout: config.request_timeout,
            public_url: config.public_url.clone(),
        }),
        jwks: Arc::new(Jwks(keys)),
        password_queue: Arc::new(PasswordQueue::new(
            PASSWORD_TURNS_PER_HASHER * hasher_threads(),
            config.hash_queue,
        )),
    }
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

/// Switches that are not settings: what benchmarks turn off and tests
/// replace. The defaults are the server's.
#[derive(Clone)]
pub struct BuildOptions {
    /// Request instrumentation (request ids, spans, access log, HTTP
    /// metrics) and `/metrics`.
    pub instrument: bool,
    /// Graceful shutdown on SIGTERM/SIGINT. Tests that run servers inside
    /// the test process turn it off, so that Ctrl-C still ends the process
    /// (such a server stops when its runtime ends).
    pub signals: bool,
    /// The wall clock of the use cases (token and session lifetimes, rate
    /// limit windows, audit times), of the cleanup job and of the webhook
    /// outbox: the system's. Tests move a clock of their own forward
    /// instead of sleeping until something expires.
    pub clock: Arc<dyn Clock>,
    /// The cost of password hashes: OWASP's. Test suites that log in
    /// thousands of times use [`HashCost::Minimal`].
    pub hash_cost: HashCost,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            instrument: true,
            signals: true,
            clock: Arc::new(SystemClock),
            hash_cost: HashCost::Owasp,
        }
    }
}

impl std::fmt::Debug for BuildOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildOptions")
            .field("instrument", &self.instrument)
            .field("signals", &self.signals)
            .field("clock", &self.clock.now())
            .field("hash_cost", &self.hash_cost)
            .finish()
    }
}

fn bind(
    addr: std::net::SocketAddr,
    setting: &'static str,
) -> Result<(TcpListener, u16), StartupError> {
    let fail = |e: std::io::Error| StartupError::Bind {
        setting,
        message: e.to_string(),
    };
    let listener = TcpListener::bind(addr).map_err(fail)?;
    let port = listener.local_addr().map_err(fail)?.port();
    Ok((listener, port))
}

/// Seconds, rounded up: actix counts the shutdown timeout in seconds.
fn whole_seconds(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A running server; `port` is the real one (tests bind port 0).
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    /// The separate `/metrics` listener (`TOKENWARDEN_METRICS_BIND`).
    metrics: Option<(u16, actix_web::dev::Server)>,
    shutdown: Shutdown,
    /// Stops with the server.
    _cleanup: CleanupJob,
    /// Delivers the webhook outbox (`TOKENWARDEN_WEBHOOK_URL`); stopped
    /// after the server, letting deliveries under way finish.
    webhooks: Option<WebhookWorker>,
    /// Counts of throttled refreshes into the audit trail; once more at
    /// shutdown.
    throttle_flush: Option<ThrottleFlush>,
    warden: Arc<application::TokenWarden>,
}

impl Application {
    /// Migrates the database, loads or creates the keys, binds the sockets.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with(config, BuildOptions::default()).await
    }

    /// [`Application::build`] with [`BuildOptions`].
    pub async fn build_with(config: Config, options: BuildOptions) -> Result<Self, StartupError> {
        let setup = config.clone();
        let instrument = options.instrument;
        let (clock, hash_cost) = (Arc::clone(&options.clock), options.hash_cost);
        // Connecting (database, Redis) and the revocation list's first load
        // block: all of it off the async workers.
        let (db, keys, hasher, warden, redis_check) =
            tokio::task::spawn_blocking(move || -> Result<_, StartupError> {
                let (db, keys) = (open_database(&setup)?, open_keys(&setup)?);
                // A server on a database it cannot write would answer every
                // login and refresh 503: better not to start at all.
                db.check_writable().map_err(|e| {
                    StartupError::Database(format!("the database cannot be written: {e}"))
                })?;
                let limiters = limiters(&setup)?;
                let redis_check = limiters.redis_check.clone();
                let hasher = Arc::new(Argon2Hasher::with_cost(hasher_threads(), hash_cost));
                let warden =
                    wire_warden(&setup, &db, &keys, Arc::clone(&hasher), clock, instrument)?
                        .with_login_limiter(limiters.login)
                        .with_ip_limiter(limiters.ip);
                Ok((db, keys, hasher, warden, redis_check))
            })
            .await
            .map_err(|e| StartupError::Database(e.to_string()))??;
        let state = api_state(&config, warden, keys);
        let warden = Arc::clone(&state.warden);
        let password_queue = Arc::clone(&state.password_queue);
        let metrics: Option<Arc<dyn MetricsSource>> = options.instrument.then(|| {
            Arc::new(PrometheusMetrics::new(db.clone(), hasher).with_password_queue(password_queue))
                as Arc<dyn MetricsSource>
        });
        let ops = OpsState::new(
            readiness_checks(&db, redis_check),
            metrics.clone().filter(|_| config.metrics_bind.is_none()),
        );
        // A second more than the setting: the count of abandoned requests
        // (see `Shutdown`) is taken at the setting's end, before actix
        // drops them.
        let timeout = whole_seconds(config.shutdown_timeout) + 1;
        let cors_config = Arc::clone(&state.config);
        let (listener, port) = bind(config.bind, "TOKENWARDEN_BIND")?;
        let in_flight = InFlight::default();
        let stopping = Arc::new(Notify::new());
        let requests = in_flight.clone();
        let dependency_timeout = config.dependency_timeout;
        let workers = hasher_threads();
        let connections = Connections {
            request_timeout: config.request_timeout,
            keep_alive: config.keep_alive,
        };
        let builder = listener::Server::build()
            .workers(workers)
            // Blocking threads per worker (actix's default is 512 in all): use
            // cases are short once they run, password work waits in its queue
            // as a parked task, so a few threads per worker keep the cores
            // busy, and a burst cannot make the process grow hundreds of them.
            .worker_max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
            // Slow clients: each request, head and body, must arrive within
            // the request timeout (`connections`, enforced on each
            // connection by `web::wire`), idle keep-alive connections close,
            // and open connections are capped.
            .max_concurrent_connections(config.max_connections.div_ceil(workers).max(1))
            .shutdown_timeout(timeout)
            .shutdown_signal({
                let stopping = Arc::clone(&stopping);
                let signals = options.signals;
                async move {
                    if signals {
                        shutdown_signal().await;
                        stopping.notify_one();
                    } else {
                        std::future::pending::<()>().await;
                    }
                }
            });
        let server = listener::listen(builder, "tokenwarden", listener, connections, move || {
            let app = App::new()
                .wrap(from_fn(bound_requests(
                    dependency_timeout,
                    requests.clone(),
                )))
                .wrap(web::cors::cors(&cors_config))
                .wrap(from_fn(web::cors::cors_answers))
                .wrap(from_fn(web::hardening::problems))
                .wrap(Condition::new(
                    instrument,
                    from_fn(web::middleware::instrument),
                ))
                .wrap(web::hardening::security_headers());
            web::api(app, state.clone(), ops.clone())
        })
        .map_err(|e| StartupError::Bind {
            setting: "TOKENWARDEN_BIND",
            message: e.to_string(),
        })?
        .run();
        let metrics = match (config.metrics_bind, metrics) {
            (Some(addr), Some(source)) => {
                let (listener, port) = bind(addr, "TOKENWARDEN_METRICS_BIND")?;
                let builder = listener::Server::build()
                    .workers(1)
                    // Stopped with the API server, after its requests are answered.
                    .disable_signals()
                    .shutdown_timeout(timeout);
                let server = listener::listen(
                    builder,
                    "tokenwarden-metrics",
                    listener,
                    connections,
                    move || {
                        App::new()
                            .wrap(web::hardening::security_headers())
                            .configure(web::ops::configure_metrics_only(Arc::clone(&source)))
                    },
                )
                .map_err(|e| StartupError::Bind {
                    setting: "TOKENWARDEN_METRICS_BIND",
                    message: e.to_string(),
                })?
                .run();
                Some((port, server))
            }
            _ => None,
        };
        Ok(Self {
            port,
            server,
            metrics,
            shutdown: Shutdown {
                stopping,
                in_flight,
                timeout: config.shutdown_timeout,
            },
            _cleanup: spawn_cleanup_job(&config, &db, Arc::clone(&options.clock)),
            webhooks: spawn_webhooks(&config, &db, Arc::clone(&options.clock))?,
            throttle_flush: Some(spawn_throttle_flush(Arc::clone(&warden))),
            warden,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the separate metrics listener, if there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// Serves until SIGTERM/SIGINT: then stops accepting, answers every
    /// request already received (for at most `TOKENWARDEN_SHUTDOWN_TIMEOUT`)
    /// and returns.
    ///
    /// # Errors
    /// The server's I/O errors, and [`std::io::ErrorKind::TimedOut`] when
    /// requests were still running at the end of the shutdown timeout (they
    /// are abandoned, and logged with their count): the process then exits
    /// non-zero, so that a supervisor knows answers were lost.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let webhooks = self.webhooks.take();
        let throttle_flush = self.throttle_flush.take();
        let warden = Arc::clone(&self.warden);
        let result = self.serve_until_stopped().await;
        drop(throttle_flush);
        flush_throttled(warden).await;
        if let Some(webhooks) = webhooks {
            webhooks.stop().await;
        }
        result
    }

    async fn serve_until_stopped(self) -> std::io::Result<()> {
        let shutdown = self.shutdown;
        let server = async {
            let Some((_, metrics)) = self.metrics else {
                return self.server.await;
            };
            let metrics_handle = metrics.handle();
            let api = async {
                let result = self.server.await;
                metrics_handle.stop(true).await;
                result
            };
            let (api, metrics) = tokio::join!(api, metrics);
            api.and(metrics)
        };
        tokio::pin!(server);
        let abandoned = tokio::select! {
            result = &mut server => return result,
            abandoned = shutdown.abandoned() => abandoned,
        };
        let result = server.await;
        if abandoned > 0 {
            tracing::error!(
                abandoned,
                timeout = ?shutdown.timeout,
                "shutdown timeout reached with requests still running: they were abandoned"
            );
            result?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "{abandoned} request(s) still running at the end of \
                     TOKENWARDEN_SHUTDOWN_TIMEOUT were abandoned"
                ),
            ));
        }
        result
    }
}

/// The webhook delivery worker, when `TOKENWARDEN_WEBHOOK_URL` is set.
fn spawn_webhooks(
    config: &Config,
    db: &Database,
    clock: Arc<dyn Clock>,
) -> Result<Option<WebhookWorker>, StartupError> {
    let Some(webhook) = config.webhook.clone() else {
        return Ok(None);
    };
    WebhookWorker::spawn(
        webhook,
        Arc::new(db.clone()),
        clock,
        CancellationToken::new(),
    )
    .map(Some)
    .map_err(|e| StartupError::Webhook(e.to_string()))
}

/// What a graceful stop needs to report requests it abandons.
struct Shutdown {
    /// Notified when SIGTERM/SIGINT arrives.
    stopping: Arc<Notify>,
    in_flight: InFlight,
    /// `TOKENWARDEN_SHUTDOWN_TIMEOUT`.
    timeout: std::time::Duration,
}

impl Shutdown {
    /// Once a stop began and its timeout passed: how many requests were
    /// still running then (actix drops them a second later, when its own
    /// timeout ends).
    async fn abandoned(&self) -> usize {
        self.stopping.notified().await;
        tokio::time::sleep(self.timeout).await;
        self.in_flight.count()
    }
}
