//! The audit trail: one record per refresh attempt, and security events.
//!
//! Records never hold a token, a cookie or a password: a presented token is
//! only remembered by its [`TokenFingerprint`], 8 hex digits that cannot be
//! turned back into the token nor into the digest it is looked up by.

use std::fmt;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::ids::{SessionId, UserId};
use crate::refresh_token::TokenDigest;
use crate::time::Timestamp;

/// What happened to one request to `POST /auth/refresh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RefreshOutcome {
    /// Rotated: a new successor was issued.
    Success,
    /// A concurrent request of the same client got the same successor.
    GraceReplay,
    /// The same client retried after a lost answer and got the same
    /// successor (API.md, "Lost responses").
    Retry,
    /// An anomaly under `log_only`: recorded, and the refresh succeeded.
    AnomalyLogged,
    /// No token in the body or cookie.
    MissingToken,
    /// Not shaped like a refresh token; never looked up.
    MalformedToken,
    /// Well-formed, but no such token is on record.
    UnknownToken,
    /// Past the idle or absolute deadline.
    Expired,
    /// An already rotated token: theft response taken.
    Reused,
    /// Another network and device inside the anomaly window: theft response.
    Anomaly,
    /// The session had already ended.
    Revoked,
    /// A session bound to a DPoP key, without a proof by it (401
    /// `invalid_dpop_proof`); nothing was spent.
    DpopMismatch,
    /// The body is not JSON (400).
    MalformedRequest,
    /// The body is JSON of the wrong shape (422).
    InvalidRequest,
    /// The body exceeds the limit (413).
    PayloadTooLarge,
    /// The body did not arrive within the request timeout (408).
    RequestTimeout,
    /// Refused by the origin check (403); nothing was spent.
    ForbiddenOrigin,
    /// Several refresh cookies (401): none was looked at or spent.
    DuplicateCookies,
    /// Refused by the per-IP limit on failed refreshes (429). One row
    /// stands for every such refusal of one client IP in one minute.
    RateLimited,
    /// The request was understood but the server failed (5xx).
    Error,
}

impl RefreshOutcome {
    pub const ALL: [RefreshOutcome; 20] = [
        Self::Success,
        Self::GraceReplay,
        Self::Retry,
        Self::AnomalyLogged,
        Self::MissingToken,
        Self::MalformedToken,
        Self::UnknownToken,
        Self::Expired,
        Self::Reused,
        Self::Anomaly,
        Self::Revoked,
        Self::DpopMismatch,
        Self::MalformedRequest,
        Self::InvalidRequest,
        Self::PayloadTooLarge,
        Self::RequestTimeout,
        Self::ForbiddenOrigin,
        Self::DuplicateCookies,
        Self::RateLimited,
        Self::Error,
    ];

    /// The stable snake_case name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::GraceReplay => "grace_replay",
            Self::Retry => "retry",
            Self::AnomalyLogged => "anomaly_logged",
            Self::MissingToken => "missing_token",
            Self::MalformedToken => "malformed_token",
            Self::UnknownToken => "unknown_token",
            Self::Expired => "expired",
            Self::Reused => "reused",
            Self::Anomaly => "anomaly",
            Self::Revoked => "revoked",
            Self::DpopMismatch => "dpop_mismatch",
            Self::MalformedRequest => "malformed_request",
            Self::InvalidRequest => "invalid_request",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::ForbiddenOrigin => "forbidden_origin",
            Self::DuplicateCookies => "duplicate_cookies",
            Self::RateLimited => "rate_limited",
            Self::Error => "error",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// Whether the client got a token pair.
    pub fn succeeded(self) -> bool {
        matches!(
            self,
            Self::Success | Self::GraceReplay | Self::Retry | Self::AnomalyLogged
        )
    }
}

impl fmt::Display for RefreshOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A short, non-reversible label of a presented token: 8 lower-case hex
/// digits (see [`TokenDigest::fingerprint`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenFingerprint(String);

impl TokenFingerprint {
    pub fn of_digest(digest: &TokenDigest) -> Self {
        Self(digest.fingerprint())
    }

    /// The fingerprint of whatever text was presented, token-shaped or not.
    /// For a well-formed token it equals the fingerprint of its digest, so
    /// rows of one token line up whatever their outcome.
    pub fn of_presented(raw: &str) -> Self {
        Self::of_digest(&TokenDigest::from_bytes(
            Sha256::digest(raw.as_bytes()).into(),
        ))
    }

    /// A stored fingerprint; `None` unless it is 8 lower-case hex digits.
    pub fn from_stored(text: &str) -> Option<Self> {
        (text.len() == 8 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One refresh attempt, about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshAttempt {
    pub at: Timestamp,
    pub outcome: RefreshOutcome,
    pub user_id: Option<UserId>,
    pub session_id: Option<SessionId>,
    pub ip: Option<String>,
    /// Truncated by the HTTP adapter (512 bytes).
    pub user_agent: Option<String>,
    pub fingerprint: Option<TokenFingerprint>,
}

/// A recorded refresh attempt. `(at, id)` orders the records of one user
/// (newest first in lists); `id` is assigned by the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    /// How many requests the row stands for: 1, except for the row of
    /// refreshes throttled by the per-IP failure limit, one per IP and
    /// minute ([`RefreshOutcome::RateLimited`]).
    pub count: u64,
    pub attempt: RefreshAttempt,
}

/// What a security event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityEventKind {
    /// A rotated refresh token came back (on refresh or on login): theft.
    TokenReuse,
    /// Another network and device inside the anomaly window.
    Anomaly,
    /// An admin revoked every session of the user.
    AdminRevoke,
    /// The user logged out everywhere.
    LogoutAll,
    /// The user changed their password (other sessions revoked).
    PasswordChanged,
    /// An admin or the operator set a new password (sessions revoked).
    PasswordReset,
    /// The user's roles were changed.
    RolesChanged,
    /// The account was disabled (sessions revoked).
    UserDisabled,
    /// The account was enabled again.
    UserEnabled,
    /// The account was deleted (its sessions and tokens with it).
    UserDeleted,
    /// A token of a DPoP-bound session without a proof by its key.
    DpopMismatch,
    /// A rotated token of a session ended by logout after that rotation.
    ReuseAfterEnd,
}

impl SecurityEventKind {
    pub const ALL: [SecurityEventKind; 12] = [
        Self::TokenReuse,
        Self::Anomaly,
        Self::AdminRevoke,
        Self::LogoutAll,
        Self::PasswordChanged,
        Self::PasswordReset,
        Self::RolesChanged,
        Self::UserDisabled,
        Self::UserEnabled,
        Self::UserDeleted,
        Self::DpopMismatch,
        Self::ReuseAfterEnd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenReuse => "token_reuse",
            Self::Anomaly => "anomaly",
            Self::AdminRevoke => "admin_revoke",
            Self::LogoutAll => "logout_all",
            Self::PasswordChanged => "password_changed",
            Self::PasswordReset => "password_reset",
            Self::RolesChanged => "roles_changed",
            Self::UserDisabled => "user_disabled",
            Self::UserEnabled => "user_enabled",
            Self::UserDeleted => "user_deleted",
            Self::DpopMismatch => "dpop_mismatch",
            Self::ReuseAfterEnd => "reuse_after_end",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for SecurityEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recorded security event. `details` is a JSON object (text), written by
/// the adapter that recorded the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    pub id: i64,
    pub user_id: UserId,
    pub session_id: Option<SessionId>,
    pub kind: SecurityEventKind,
    pub details: String,
    pub created_at: Timestamp,
}

/// The span of an analysis: 1 to 90 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalysisDays(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("days must be a whole number from 1 to 90")]
pub struct AnalysisDaysError;

impl AnalysisDays {
    pub const MAX: u32 = 90;
    pub const DEFAULT: AnalysisDays = AnalysisDays(7);

    pub fn new(days: u32) -> Result<Self, AnalysisDaysError> {
        if (1..=Self::MAX).contains(&days) {
            Ok(Self(days))
        } else {
            Err(AnalysisDaysError)
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn duration(self) -> Duration {
        Duration::from_secs(u64::from(self.0) * 86_400)
    }
}

/// How many items a page holds: 1 to 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limit must be a whole number from 1 to 200")]
pub struct PageLimitError;

impl PageLimit {
    pub const MAX: u32 = 200;
    pub const DEFAULT: PageLimit = PageLimit(50);

    pub fn new(limit: u32) -> Result<Self, PageLimitError> {
        if (1..=Self::MAX).contains(&limit) {
            Ok(Self(limit))
        } else {
            Err(PageLimitError)
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refresh_token::RefreshToken;

    #[test]
    fn outcomes_round_trip_through_their_names() {
        for o in RefreshOutcome::ALL {
            assert_eq!(RefreshOutcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(RefreshOutcome::parse("Success"), None);
        for k in SecurityEventKind::ALL {
            assert_eq!(SecurityEventKind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn only_issued_token_pairs_count_as_success() {
        let ok: Vec<_> = RefreshOutcome::ALL
            .into_iter()
            .filter(|o| o.succeeded())
            .collect();
        assert_eq!(
            ok,
            [
                RefreshOutcome::Success,
                RefreshOutcome::GraceReplay,
                RefreshOutcome::Retry,
                RefreshOutcome::AnomalyLogged
            ]
        );
    }

    #[test]
    fn a_fingerprint_is_short_and_hides_token_and_digest() {
        let token = RefreshToken::from_random_bytes([3; 32]);
        let f = TokenFingerprint::of_digest(&token.digest());
        assert_eq!(f, TokenFingerprint::of_presented(token.expose()));
        assert_eq!(f.as_str().len(), 8);
        assert!(!token.expose().contains(f.as_str()));
        assert!(!token.digest().to_hex().contains(f.as_str()));
        assert_eq!(TokenFingerprint::from_stored(f.as_str()), Some(f));
        assert_eq!(TokenFingerprint::from_stored("XYZ"), None);
        assert_eq!(TokenFingerprint::of_presented("garbage").as_str().len(), 8);
    }

    #[test]
    fn analysis_days_run_from_one_to_ninety() {
        assert_eq!(AnalysisDays::new(0), Err(AnalysisDaysError));
        assert_eq!(AnalysisDays::new(91), Err(AnalysisDaysError));
        assert_eq!(AnalysisDays::new(90).map(AnalysisDays::get), Ok(90));
        assert_eq!(
            AnalysisDays::new(1).map(AnalysisDays::duration),
            Ok(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn page_limits_run_from_one_to_two_hundred() {
        assert!(PageLimit::new(0).is_err());
        assert!(PageLimit::new(201).is_err());
        assert_eq!(PageLimit::new(200).map(PageLimit::get), Ok(200));
    }
}
