//! Commands besides `serve`.

use crate::config::Config;
use crate::startup::open_keys;
use crate::system::SystemClock;
use application::ports::Clock as _;

/// `tokenwarden keys rotate`: a new Ed25519 key becomes current. The old
/// one stays in the JWKS and keeps verifying until every token it signed
/// has expired (`TOKENWARDEN_ACCESS_TOKEN_TTL` from now, plus the 60 s in
/// which running servers re-read the directory), then it is retired.
///
/// # Errors
/// When the keys directory cannot be read or written.
pub fn rotate_keys(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let keys = open_keys(config)?;
    let previous = keys.current_kid();
    let kid = keys
        .rotate(SystemClock.now(), config.lifetimes.access_ttl)
        .map_err(|e| format!("cannot use TOKENWARDEN_KEYS_DIR: {e}"))?;
    println!("signing key {kid} is now current; {previous} stays published until its tokens have expired");
    Ok(())
}
