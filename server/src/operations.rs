//! What the server needs for operating it: readiness checks, the login
//! rate limiter chosen by the configuration, and the shutdown signal.

use std::sync::Arc;

use application::rate_limit::{InProcessLoginLimiter, Limit, LoginLimits, LoginRateLimiter};
use persistence::Database;
use redis_revocation::RedisLoginLimiter;
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
pub struct RedisCheck(pub Arc<RedisLoginLimiter>);

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

/// The login limiter and, with Redis, the readiness check of its Redis.
pub type LimiterAndCheck = (Arc<dyn LoginRateLimiter>, Option<Arc<dyn ReadinessCheck>>);

fn limit(rate: Rate) -> Limit {
    Limit {
        count: rate.count,
        window: rate.per,
    }
}

/// The login limits of the configuration: shared through Redis when
/// `REDIS_URL` is set, counted in this process otherwise. Blocks (it
/// connects to Redis).
///
/// # Errors
/// [`StartupError::Redis`] when Redis is configured but does not answer.
pub fn login_limiter(config: &Config) -> Result<LimiterAndCheck, StartupError> {
    let limits = LoginLimits {
        per_user: limit(config.login_rate_user),
        per_ip: limit(config.login_rate_ip),
    };
    let (inner, check): LimiterAndCheck = match &config.redis_url {
        Some(url) => {
            let redis = Arc::new(
                RedisLoginLimiter::connect_with_prefix(
                    url,
                    limits,
                    &format!("{}login:", config.redis_key_prefix),
                )
                .map_err(|e| StartupError::Redis(e.to_string()))?,
            );
            (redis.clone(), Some(Arc::new(RedisCheck(redis))))
        }
        None => (Arc::new(InProcessLoginLimiter::new(limits)), None),
    };
    Ok((Arc::new(MeteredLimiter(inner)), check))
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
