//! Tokens whose signature was checked recently.
//!
//! A client presents the same access token on every request for its whole
//! lifetime, and an Ed25519 verification costs tens of microseconds, more
//! than the rest of a Bearer request. Only the outcome of the deterministic
//! part is remembered: that exactly this text carries a valid signature by
//! key `kid` and these claims (issuer and audience checked). Every hit
//! still checks that `kid` is a published key *now* and the claims' times
//! against *now*, so a retired key or an expiry takes effect as before.
//! Only tokens that passed are kept: forgeries cannot fill it.

use std::collections::HashMap;
use std::sync::Mutex;

use super::claims::IncomingClaims;

/// Entries kept at most (a few hundred bytes each).
const CAPACITY: usize = 4_096;

#[derive(Clone)]
pub(super) struct Verified {
    pub kid: Box<str>,
    pub claims: IncomingClaims,
}

#[derive(Default)]
pub(super) struct VerifiedTokens {
    by_token: Mutex<HashMap<Box<str>, Verified>>,
}

impl VerifiedTokens {
    pub(super) fn get(&self, token: &str) -> Option<Verified> {
        self.by_token.lock().ok()?.get(token).cloned()
    }

    /// Remembers `token`; when full, first forgets the tokens expired by
    /// `now_secs` and, if that frees nothing, everything.
    pub(super) fn insert(&self, token: &str, verified: Verified, now_secs: i64) {
        let Ok(mut map) = self.by_token.lock() else {
            return;
        };
        if map.len() >= CAPACITY {
            map.retain(|_, v| v.claims.expires_after(now_secs));
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(token.into(), verified);
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_token.lock().map_or(0, |m| m.len())
    }
}
