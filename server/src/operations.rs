//! What the server needs for operating it: readiness checks, the login
//! rate limiter chosen by the configuration, and the shutdown signal.

use std::sync::Arc;

use application::rate_limit::{IpLimits, IpRateLimiter, Limit, LoginLimits, LoginRateLimiter};
use limits::{InProcessIpLimiter, InProcessLoginLimiter};
use persistence::Database;
use redis_revocation::{Fallback, LimiterConfig, RedisLimiter};
use secrecy::ExposeSecret as _;
use web::ReadinessCheck;

use crate::config::{Config, Rate};
use crate::metrics::MeteredLimiter;
use crate::startup::StartupError;

/// `/readyz`: the database can be written (a one-row update): not only
/// reachable, but neither full, read-only nor stuck behind a lock.
pub struct DatabaseCheck(pub Database);

impl ReadinessCheck for DatabaseCheck {
    fn name(&self) -> &'static str {
        "database"
    }

    fn check(&self) -> Result<(), String> {
        self.0.check_writable().map_err(|e| e.to_string())
    }
}

/// `/readyz`: Redis answers `PING`.
pub struct RedisCheck(pub Arc<RedisLimiter>);

impl ReadinessCheck for RedisCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> Result<(), String> {
        self.0.ping()
    }
}

/// The readiness checks of a server over `db`, plus `extra` (Redis when
/// configured). Other dependencies add theirs to the list.
pub fn readiness_checks(
    db: &Database,
    extra: Option<Arc<dyn ReadinessCheck>>,
) -> Vec<Arc<dyn ReadinessCheck>> {
    let mut checks: Vec<Arc<dyn ReadinessCheck>> = vec![Arc::new(DatabaseCheck(db.clone()))];
    checks.extend(extra);
    checks
}

/// The abuse limiters and, with Redis, the readiness check of its Redis.
pub struct Limiters {
    pub login: Arc<dyn LoginRateLimiter>,
    pub ip: Arc<dyn IpRateLimiter>,
    pub redis_check: Option<Arc<dyn ReadinessCheck>>,
}

fn limit(rate: Rate) -> Limit {
    Limit {
        count: rate.count,
        window: rate.per,
    }
}

/// The abuse limits of the configuration: shared through Redis when
/// `REDIS_URL` is set (counted in process while Redis is down), counted in
/// this process otherwise.
///
/// # Errors
/// [`StartupError::Redis`] for a malformed `REDIS_URL`.
pub fn limiters(config: &Config) -> Result<Limiters, StartupError> {
    let login = LoginLimits {
        per_user: limit(config.login_rate_user),
        per_ip: limit(config.login_rate_ip),
    };
    let ip = IpLimits {
        registration: limit(config.register_rate_ip),
        refresh_failure: limit(config.refresh_fail_rate_ip),
    };
    let local_login: Arc<dyn LoginRateLimiter> = Arc::new(InProcessLoginLimiter::new(login));
    let local_ip: Arc<dyn IpRateLimiter> = Arc::new(InProcessIpLimiter::new(ip));
    let Some(url) = config.redis_url.as_ref().map(|u| u.expose_secret()) else {
        return Ok(Limiters {
            login: Arc::new(MeteredLimiter(local_login)),
            ip: local_ip,
            redis_check: None,
        });
    };
    let redis = Arc::new(
        RedisLimiter::connect(
            url,
            LimiterConfig {
                prefix: format!("{}login:", config.redis_key_prefix),
                timeout: config.redis_timeout,
                login,
                ip,
            },
            Fallback {
                login: local_login,
                ip: local_ip,
            },
        )
        .map_err(|e| StartupError::Redis(e.to_string()))?,
    );
    Ok(Limiters {
        login: Arc::new(MeteredLimiter(redis.clone())),
        ip: redis.clone(),
        redis_check: Some(Arc::new(RedisCheck(redis))),
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C). Both start a graceful shutdown:
/// actix's own handling would stop at once on SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM/SIGINT");
                return std::future::pending().await;
            }
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(
            signal = name,
            "shutting down: finishing the requests in flight"
        );
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            return std::future::pending().await;
        }
        tracing::info!("shutting down: finishing the requests in flight");
    }
}
