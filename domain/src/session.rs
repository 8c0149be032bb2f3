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
        status_of(
            self.revoked_at.is_some(),
            self.refresh_expires_at(idle_ttl),
            now,
        )
    }
}

/// The liveness rule, written once: a session is revoked once it has been
/// ended, expired once `now` reached the deadline of its current refresh
/// token (the idle one, never later than the absolute one), else live.
/// [`Session::status`] and [`crate::SessionState::status`] both apply it.
pub fn status_of(revoked: bool, refresh_expires_at: Timestamp, now: Timestamp) -> SessionStatus {
    if revoked {
        SessionStatus::Revoked
    } else if now >= refresh_expires_at {
        SessionStatus::Expired
    } else {
        SessionStatus::Live
    }
}

/// Why a session ended, as stored (`sessions.revoked_reason`) and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// The theft response to a reused refresh token.
    TokenReuse,
    /// The theft response to an anomaly (another network and device).
    Anomaly,
    /// An admin revoked every session of the user.
    AdminRevoke,
    /// The client logged out with one of the session's tokens.
    Logout,
    /// A successful login carried this session's refresh cookie.
    ReplacedByLogin,
    /// The least recently used session beyond the per-user limit.
    Evicted,
    /// The user logged out everywhere.
    RevokeAll,
    /// The user ended this one session.
    RevokeOne,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 8] = [
        Self::TokenReuse,
        Self::Anomaly,
        Self::AdminRevoke,
        Self::Logout,
        Self::ReplacedByLogin,
        Self::Evicted,
        Self::RevokeAll,
        Self::RevokeOne,
    ];

    /// The stable snake_case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenReuse => "token_reuse",
            Self::Anomaly => "anomaly",
            Self::AdminRevoke => "admin_revoke",
            Self::Logout => "logout",
            Self::ReplacedByLogin => "replaced_by_login",
            Self::Evicted => "evicted",
            Self::RevokeAll => "revoke_all",
            Self::RevokeOne => "revoke_one",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
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
    fn revocation_reasons_round_trip_through_their_names() {
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(RevocationReason::parse("Logout"), None);
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
