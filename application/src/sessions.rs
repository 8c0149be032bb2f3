//! Use cases around a user's sessions: list, delete one, log out, log out
//! everywhere, and the profile of the caller.

use domain::{RefreshToken, Session, SessionId, User};

use crate::ports::{ClientInfo, EndReason, EndRequest};
use crate::{Principal, TokenWarden, Unexpected};

/// A live session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub session: Session,
    /// Whether this is the session of the access token asking.
    pub current: bool,
    /// When the session ends at the latest (idle or absolute).
    pub expires_at: domain::Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeleteSessionError {
    /// Not a live session of the caller (someone else's is reported the same).
    #[error("no such session")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl TokenWarden {
    /// Ends the session of `token` if there is one. Idempotent: a missing,
    /// malformed, unknown or dead token is not an error. Never triggers the
    /// theft response.
    ///
    /// # Errors
    /// Only [`Unexpected`].
    pub fn logout(&self, token: Option<&str>, client: ClientInfo) -> Result<(), Unexpected> {
        let Some(token) = token.and_then(|t| RefreshToken::parse(t).ok()) else {
            return Ok(());
        };
        self.ports.sessions.end_by_token(EndRequest {
            token: token.digest(),
            reason: EndReason::Logout,
            lifetimes: self.settings.lifetimes.clone(),
            reuse_response: self.settings.reuse_response,
            client,
            now: self.ports.clock.now(),
        })?;
        Ok(())
    }

    /// Revokes every session of the caller.
    ///
    /// # Errors
    /// Only [`Unexpected`].
    pub fn logout_all(&self, principal: &Principal) -> Result<u64, Unexpected> {
        Ok(self.ports.sessions.revoke_all(principal.user_id, self.ports.clock.now())?)
    }

    /// The caller's live sessions, exactly one of them `current`.
    ///
    /// # Errors
    /// Only [`Unexpected`].
    pub fn list_sessions(&self, principal: &Principal) -> Result<Vec<SessionView>, Unexpected> {
        let idle = self.settings.lifetimes.idle_ttl;
        let sessions = self.ports.sessions.list_live(principal.user_id, idle, self.ports.clock.now())?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionView {
                current: session.id == principal.session_id,
                expires_at: session.refresh_expires_at(idle),
                session,
            })
            .collect())
    }

    /// Revokes one of the caller's sessions.
    ///
    /// # Errors
    /// [`DeleteSessionError::NotFound`] when it is not a live session of the
    /// caller.
    pub fn delete_session(&self, principal: &Principal, session: SessionId) -> Result<(), DeleteSessionError> {
        let now = self.ports.clock.now();
        if self.ports.sessions.revoke_one(principal.user_id, session, now).map_err(Unexpected::from)? {
            Ok(())
        } else {
            Err(DeleteSessionError::NotFound)
        }
    }

    /// The caller's account, `None` if it no longer exists.
    ///
    /// # Errors
    /// Only [`Unexpected`].
    pub fn me(&self, principal: &Principal) -> Result<Option<User>, Unexpected> {
        Ok(self.ports.users.find(principal.user_id)?)
    }
}
