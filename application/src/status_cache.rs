//! A short-lived memory of sessions found live, so that a Bearer request
//! does not have to read the session row every time.
//!
//! Only "live" is remembered, and for at most [`LIVE_STATUS_TTL`]. That is
//! safe because a session stops being live in only three ways:
//! * revocation, which goes on the revocation list, checked before this
//!   cache on every request (and this instance forgets the session at once);
//! * expiry, which this cache notices at most [`LIVE_STATUS_TTL`] late;
//! * deletion by the cleanup job, which only removes sessions long expired.
//!
//! So if feeding the revocation list ever fails, a revoked session's access
//! tokens are still refused within [`LIVE_STATUS_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use domain::{SessionId, Timestamp};

/// How long a session found live is believed live without asking again.
pub const LIVE_STATUS_TTL: Duration = Duration::from_secs(1);

/// More sessions than this and the oldest answers are dropped.
const CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct LiveSessions {
    /// When each session was last found live.
    seen: Mutex<HashMap<SessionId, Timestamp>>,
}

impl LiveSessions {
    /// Whether `session` was found live less than [`LIVE_STATUS_TTL`] ago.
    pub(crate) fn is_live(&self, session: SessionId, now: Timestamp) -> bool {
        let Ok(seen) = self.seen.lock() else {
            return false;
        };
        seen.get(&session)
            .is_some_and(|at| *at <= now && now < at.plus(LIVE_STATUS_TTL))
    }

    pub(crate) fn remember(&self, session: SessionId, now: Timestamp) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= CAPACITY {
            seen.retain(|_, at| now < at.plus(LIVE_STATUS_TTL));
            if seen.len() >= CAPACITY {
                seen.clear();
            }
        }
        seen.insert(session, now);
    }

    pub(crate) fn forget(&self, sessions: &[SessionId]) {
        if let Ok(mut seen) = self.seen.lock() {
            for s in sessions {
                seen.remove(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn a_live_answer_is_believed_for_less_than_the_ttl() {
        let cache = LiveSessions::default();
        let s = SessionId::from_random_bytes([1; 16]);
        assert!(!cache.is_live(s, T));
        cache.remember(s, T);
        assert!(cache.is_live(s, T));
        assert!(cache.is_live(s, T.plus(Duration::from_millis(999))));
        assert!(!cache.is_live(s, T.plus(LIVE_STATUS_TTL)));
        assert!(
            !cache.is_live(s, T.minus(Duration::from_millis(1))),
            "a clock that went back is not trusted"
        );
    }

    #[test]
    fn forgotten_sessions_are_asked_again() {
        let cache = LiveSessions::default();
        let s = SessionId::from_random_bytes([1; 16]);
        cache.remember(s, T);
        cache.forget(&[s]);
        assert!(!cache.is_live(s, T));
    }
}
