//! Which revocation list the server uses: the database's, or Redis backed
//! by the database's when `REDIS_URL` is set.

use std::sync::Arc;

use application::ports::RevocationList;
use persistence::{Database, DbRevocationList};
use redis_revocation::{RedisConfig, RedisRevocationList};
use secrecy::ExposeSecret as _;

use crate::config::Config;
use crate::startup::StartupError;

/// Redis connections per process.
const REDIS_POOL_SIZE: u32 = 8;

/// The revocation list for `config`. With Redis, a Redis that is down does
/// not stop start-up: the list answers as `TOKENWARDEN_REDIS_FAILURE` says
/// until Redis is back.
pub fn open_revocations(
    config: &Config,
    db: &Database,
) -> Result<Arc<dyn RevocationList>, StartupError> {
    let Some(url) = config.redis_url.as_ref().map(|u| u.expose_secret()) else {
        return Ok(Arc::new(DbRevocationList::new(db.clone())));
    };
    // Redis does the sharing; the database list is the record and the
    // fallback, read fresh, so it needs no polling copy of its own.
    let record = Arc::new(DbRevocationList::without_polling(db.clone()));
    let list = RedisRevocationList::new(
        RedisConfig {
            url: url.to_owned(),
            key_prefix: config.redis_key_prefix.clone(),
            timeout: config.redis_timeout,
            on_failure: config.redis_failure,
            pool_size: REDIS_POOL_SIZE,
        },
        record,
    )
    .map_err(|e| StartupError::Redis(e.0))?;
    if !list.in_sync() {
        tracing::warn!(
            on_failure = ?config.redis_failure,
            "redis is not reachable yet; revocation checks answer from the database \
             (fallback) or refuse (fail_closed) until it is"
        );
    }
    Ok(Arc::new(list))
}
