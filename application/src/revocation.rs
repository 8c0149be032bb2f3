//! The revocation list: revoked sessions and revoked access-token ids,
//! consulted before any token is honoured (every Bearer request, every
//! refresh, every introspection).
//!
//! The session row in the database stays the authority for refresh tokens
//! (a revoked session never rotates again). The list exists for the tokens
//! the database does not see: access tokens are verified by signature alone,
//! so without the list a logged-out session's access tokens would live until
//! their `exp`. An entry therefore lasts exactly as long as the newest token
//! it covers could still be accepted: `revoked_at + access_ttl + leeway` for
//! a session, `exp + leeway` for one access token (see `docs/revocation.md`).
//!
//! Feeding the list happens *after* the revocation is committed in the
//! session store, and is best effort: a failure is logged, the session row
//! still stops every refresh, and Bearer checks re-read the session within
//! [`crate::status_cache::LIVE_STATUS_TTL`] anyway.

use std::fmt;
use std::str::FromStr;

use domain::{AccessTokenId, SessionId, Timestamp};

use crate::ports::StoreError;
use crate::TokenWarden;

/// What an entry revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKey {
    /// Every token of a session (token family).
    Session(SessionId),
    /// One access token, by its `jti`.
    AccessToken(AccessTokenId),
}

const SESSION_PREFIX: &str = "session:";
const ACCESS_TOKEN_PREFIX: &str = "jti:";

impl fmt::Display for RevocationKey {
    /// The storage form, the same in every backend: `session:<uuid>` or
    /// `jti:<uuid>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(id) => write!(f, "{SESSION_PREFIX}{id}"),
            Self::AccessToken(id) => write!(f, "{ACCESS_TOKEN_PREFIX}{id}"),
        }
    }
}

/// A stored key that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a revocation key")]
pub struct RevocationKeyError;

impl FromStr for RevocationKey {
    type Err = RevocationKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(id) = s.strip_prefix(SESSION_PREFIX) {
            id.parse()
                .map(Self::Session)
                .map_err(|_| RevocationKeyError)
        } else if let Some(id) = s.strip_prefix(ACCESS_TOKEN_PREFIX) {
            id.parse()
                .map(Self::AccessToken)
                .map_err(|_| RevocationKeyError)
        } else {
            Err(RevocationKeyError)
        }
    }
}

/// One entry: `key` is revoked until `expires_at`, after which every token
/// it covers has expired by itself and the entry may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    pub key: RevocationKey,
    pub expires_at: Timestamp,
}

/// How current an answer of [`RevocationList::check`] must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// May come from an in-process copy of the list. This instance's own
    /// revocations are in it at once; other instances' within the bound the
    /// adapter documents (Redis pub/sub: at once; database: 1 s).
    Cached,
    /// Asks the shared store itself (introspection, fallback paths).
    Fresh,
}

/// The shared list of revoked sessions and access tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait RevocationList: Send + Sync + 'static {
    /// Adds `entries` (an existing key keeps the later expiry).
    ///
    /// # Errors
    /// [`StoreError`] when the entries could not be recorded durably. An
    /// adapter with a secondary store (Redis) records them in the primary
    /// one and catches the secondary up later instead of failing.
    fn revoke(&self, entries: &[Revocation]) -> Result<(), StoreError>;

    /// The first of `keys` that is revoked at `now`, if any.
    ///
    /// # Errors
    /// [`StoreError`] when the list cannot be asked. Callers then refuse the
    /// token: a list that cannot be read never lets a token through.
    fn check(
        &self,
        keys: &[RevocationKey],
        now: Timestamp,
        consistency: Consistency,
    ) -> Result<Option<RevocationKey>, StoreError>;

    /// Every entry still in force at `now`. Entries last about an access
    /// token's lifetime, so this is a short list; it is how a cache or a
    /// secondary store is (re)built.
    ///
    /// # Errors
    /// [`StoreError`] when the list cannot be read.
    fn live(&self, now: Timestamp) -> Result<Vec<Revocation>, StoreError>;
}

impl TokenWarden {
    /// The entries for sessions revoked at `revoked_at`: each lasts until
    /// the last access token the session may have issued before it was
    /// revoked has expired, leeway included.
    pub(crate) fn session_revocations(
        &self,
        sessions: &[SessionId],
        revoked_at: Timestamp,
    ) -> Vec<Revocation> {
        let expires_at = revoked_at
            .plus(self.settings.lifetimes.access_ttl)
            .plus(self.settings.clock_leeway);
        sessions
            .iter()
            .map(|id| Revocation {
                key: RevocationKey::Session(*id),
                expires_at,
            })
            .collect()
    }

    /// Puts sessions that the session store has just revoked on the list.
    /// Best effort, see the module docs.
    pub(crate) fn publish_revoked_sessions(&self, sessions: &[SessionId], revoked_at: Timestamp) {
        if sessions.is_empty() {
            return;
        }
        let entries = self.session_revocations(sessions, revoked_at);
        self.status_cache.forget(sessions);
        if let Err(error) = self.ports.revocations.revoke(&entries) {
            tracing::error!(
                %error,
                sessions = sessions.len(),
                "revoked sessions could not be put on the revocation list; \
                 their access tokens are refused once the session status is re-read"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_storage_form() {
        let s = RevocationKey::Session(SessionId::from_random_bytes([1; 16]));
        let j = RevocationKey::AccessToken(AccessTokenId::from_random_bytes([2; 16]));
        assert!(s.to_string().starts_with("session:"));
        assert!(j.to_string().starts_with("jti:"));
        assert_eq!(s.to_string().parse(), Ok(s));
        assert_eq!(j.to_string().parse(), Ok(j));
    }

    #[test]
    fn foreign_keys_are_refused() {
        for bad in [
            "",
            "session:",
            "jti:nope",
            "user:1",
            "session:'; drop table x",
        ] {
            assert_eq!(
                bad.parse::<RevocationKey>(),
                Err(RevocationKeyError),
                "{bad}"
            );
        }
    }
}
