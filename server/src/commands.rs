//! Commands besides `serve`.

use std::path::Path;

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

/// `tokenwarden keys import <file.pem>`: an operator's Ed25519 key becomes
/// current, the previous one is retired as by `keys rotate`.
///
/// # Errors
/// When the file is not an Ed25519 private key (PKCS#8 PEM), is already in
/// the directory, or the directory cannot be written; nothing is changed.
pub fn import_key(config: &Config, file: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let pem = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let keys = open_keys(config)?;
    let previous = keys.current_kid();
    let kid = keys.import(file, &pem, SystemClock.now(), config.lifetimes.access_ttl)?;
    println!("imported signing key {kid}; it is now current; {previous} stays published until its tokens have expired");
    Ok(())
}

/// `tokenwarden keys list`: one line per key, current first.
///
/// # Errors
/// When the keys directory cannot be read.
pub fn list_keys(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let keys = open_keys(config)?;
    let date = |t: Option<domain::Timestamp>| t.map_or_else(|| "-".to_owned(), web::rfc3339);
    println!("kid\tstate\tcreated_at\tretired_at\ttokens_expire_by");
    for key in keys.list(SystemClock.now(), config.clock_leeway)? {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            key.kid,
            key.state.as_str(),
            web::rfc3339(key.created_at),
            date(key.retired_at),
            date(key.tokens_expire_by)
        );
    }
    Ok(())
}
