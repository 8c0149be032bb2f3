//! Use case: exchange a refresh token for a new token pair (rotation).

use domain::{ExpiryKind, RefreshToken, RotationDecision, SessionId, UserId};

use crate::ports::{ClientInfo, RotateOutcome, RotateRequest};
use crate::{IssuedTokens, TokenWarden, Unexpected};

/// Every way a refresh can fail, as the client will be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("no refresh token presented")]
    Missing,
    #[error("refresh token malformed or unknown")]
    Invalid,
    #[error("refresh token expired ({kind:?})")]
    Expired { kind: ExpiryKind, session: SessionId, user: UserId },
    /// Theft evidence: the theft response has been committed.
    #[error("refresh token reused")]
    Reused { session: SessionId, user: UserId },
    #[error("session revoked")]
    Revoked { session: SessionId, user: UserId },
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl TokenWarden {
    /// Rotates `token`: the successor is derived from it with the server's
    /// secret, so a grace replay gets the very same successor.
    ///
    /// # Errors
    /// See [`RefreshError`].
    pub fn refresh(&self, token: Option<&str>, client: ClientInfo) -> Result<IssuedTokens, RefreshError> {
        let raw = token.ok_or(RefreshError::Missing)?;
        let presented = RefreshToken::parse(raw).map_err(|_| RefreshError::Invalid)?;
        let successor = presented.successor(&self.settings.refresh_secret);
        let now = self.ports.clock.now();
        let outcome = self
            .ports
            .sessions
            .rotate(RotateRequest {
                presented: presented.digest(),
                successor: successor.digest(),
                lifetimes: self.settings.lifetimes.clone(),
                reuse_response: self.settings.reuse_response,
                client,
                now,
            })
            .map_err(Unexpected::from)?;
        let RotateOutcome::Decided { decision, session, user, .. } = outcome else {
            return Err(RefreshError::Invalid);
        };
        let (sid, uid) = (session.id, user.id);
        match decision {
            RotationDecision::Rotate { .. } | RotationDecision::GraceReplay => {
                Ok(self.issue(&session, user, successor, now)?)
            }
            RotationDecision::Reuse => Err(RefreshError::Reused { session: sid, user: uid }),
            RotationDecision::Expired(kind) => Err(RefreshError::Expired { kind, session: sid, user: uid }),
            RotationDecision::Revoked => Err(RefreshError::Revoked { session: sid, user: uid }),
        }
    }
}
