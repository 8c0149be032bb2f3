//! Configurable lifetimes and policies of sessions and tokens.

use std::time::Duration;

/// How long tokens and sessions live. Defaults follow the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifetimes {
    /// Access-token lifetime.
    pub access_ttl: Duration,
    /// A refresh token unused for this long is dead.
    pub idle_ttl: Duration,
    /// A session ends this long after its login, whatever happens.
    pub max_lifetime: Duration,
    /// Replays of the just-rotated token from the same user agent within this
    /// window get the same successor. Zero disables it.
    pub grace: Duration,
    /// Live sessions per user; the least recently used is evicted beyond it.
    pub max_sessions: u32,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            idle_ttl: Duration::from_secs(7 * 24 * 3600),
            max_lifetime: Duration::from_secs(30 * 24 * 3600),
            grace: Duration::from_secs(10),
            max_sessions: 10,
        }
    }
}

/// What a detected theft (reuse or anomaly) revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReuseResponse {
    /// Every session of the user.
    #[default]
    RevokeAll,
    /// Only the session (token family) the token belongs to.
    RevokeFamily,
}
