//! Sessions: one token family per login.

use crate::dpop::Jkt;
use crate::ids::{SessionId, UserId};
use crate::time::Timestamp;

/// The rotation counter of a session: the login's token is generation 0 and
/// every rotation issues the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(u32);

impl Generation {
    pub const FIRST: Generation = Generation(0);

    pub fn new(n: u32) -> Self {
        Self(n)
    }

    pub fn value(self) -> u32 {
        self.0
    }

    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// Whether `self` is the generation right before `current`.
    pub fn is_parent_of(self, current: Generation) -> bool {
        self.0.checked_add(1) == Some(current.0)
    }
}

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub generation: Generation,
    pub device_name: Option<String>,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    /// When the current refresh token was issued (login or last rotation).
    pub rotated_at: Timestamp,
    /// Absolute end of the session.
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_ip: Option<String>,
    pub last_user_agent: Option<String>,
    /// The proof key the session is bound to (DPoP), if any: every
    /// refresh then needs a proof by it.
    pub dpop_jkt: Option<Jkt>,
}

impl Session {
    /// When the current refresh token dies unless it is used: the idle
    /// deadline, never later than the absolute one.
    pub fn refresh_expires_at(&self, idle_ttl: std::time::Duration) -> Timestamp {
        self.rotated_at.plus(idle_ttl).min(self.expires_at)
    }

    pub fn status(&self, idle_ttl: std::time::Duration, now: Timestamp) -> SessionStatus {
        if self.revoked_at.is_some() {
            SessionStatus::Revoked
        } else if now >= self.refresh_expires_at(idle_ttl) {
            SessionStatus::Expired
        } else {
            SessionStatus::Live
        }
    }
}

/// A session about to be created by a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub device_name: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The key of the login's DPoP proof: the session is bound to it.
    pub dpop_jkt: Option<Jkt>,
}

/// Whether the tokens of a session may still be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Live,
    /// Revoked by logout, theft response or an admin.
    Revoked,
    /// Past its idle or absolute deadline.
    Expired,
    /// No such session.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn session(rotated_at: i64, expires_at: i64) -> Session {
        Session {
            id: SessionId::from_random_bytes([1; 16]),
            user_id: UserId::from_random_bytes([2; 16]),
            generation: Generation::new(3),
            device_name: None,
            created_at: Timestamp::from_millis(0),
            last_used_at: Timestamp::from_millis(rotated_at),
            rotated_at: Timestamp::from_millis(rotated_at),
            expires_at: Timestamp::from_millis(expires_at),
            revoked_at: None,
            last_ip: None,
            last_user_agent: None,
            dpop_jkt: None,
        }
    }

    #[test]
    fn the_refresh_deadline_never_passes_the_absolute_one() {
        let s = session(1_000, 5_000);
        assert_eq!(
            s.refresh_expires_at(Duration::from_secs(1)),
            Timestamp::from_millis(2_000)
        );
        assert_eq!(
            s.refresh_expires_at(Duration::from_secs(60)),
            Timestamp::from_millis(5_000)
        );
    }

    #[test]
    fn status_reports_revoked_before_expired() {
        let mut s = session(0, 1_000);
        assert_eq!(
            s.status(Duration::from_secs(60), Timestamp::from_millis(10)),
            SessionStatus::Live
        );
        assert_eq!(
            s.status(Duration::from_secs(60), Timestamp::from_millis(1_000)),
            SessionStatus::Expired
        );
        s.revoked_at = Some(Timestamp::from_millis(5));
        assert_eq!(
            s.status(Duration::from_secs(60), Timestamp::from_millis(2_000)),
            SessionStatus::Revoked
        );
    }

    #[test]
    fn parent_generation_is_exactly_one_behind() {
        let g = Generation::new(4);
        assert!(Generation::new(3).is_parent_of(g));
        assert!(!Generation::new(2).is_parent_of(g));
        assert!(!g.is_parent_of(g));
    }
}
