//! Use case: authenticate a Bearer access token.

use domain::{Role, Roles, SessionId, SessionStatus, UserId};

use crate::ports::VerifyError;
use crate::{TokenWarden, Unexpected};

/// The authenticated caller of a Bearer request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub roles: Roles,
}

impl Principal {
    pub fn has_role(&self, role: &Role) -> bool {
        self.roles.contains(role)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("access token invalid")]
    Invalid,
    #[error("access token expired")]
    Expired,
    /// The token is genuine but its session has ended (logout, theft
    /// response, admin, expiry).
    #[error("session revoked")]
    SessionRevoked,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl TokenWarden {
    /// Verifies the token and checks, on every request, that its session is
    /// still live: a logout takes effect at once, not at `exp`.
    ///
    /// # Errors
    /// See [`AuthError`].
    pub fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        let now = self.ports.clock.now();
        let claims = self.ports.signer.verify(access_token, now).map_err(|e| match e {
            VerifyError::Expired => AuthError::Expired,
            VerifyError::Invalid => AuthError::Invalid,
        })?;
        let status = self
            .ports
            .sessions
            .status(claims.session_id, self.settings.lifetimes.idle_ttl, now)
            .map_err(Unexpected::from)?;
        match status {
            SessionStatus::Live => Ok(Principal {
                user_id: claims.user_id,
                session_id: claims.session_id,
                roles: claims.roles,
            }),
            SessionStatus::Revoked | SessionStatus::Expired => Err(AuthError::SessionRevoked),
            SessionStatus::Unknown => Err(AuthError::Invalid),
        }
    }
}
