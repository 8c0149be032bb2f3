//! Issuing a token pair for a session: shared by login and refresh.

use std::time::Duration;

use domain::{AccessTokenId, RefreshToken, Session, SessionId, Timestamp, User};

use crate::ports::AccessClaims;
use crate::{TokenWarden, Unexpected};

/// What a successful login or refresh hands to the client.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub access_expires_in: Duration,
    pub refresh_token: RefreshToken,
    /// Until the refresh token dies unless used (idle or absolute deadline).
    pub refresh_expires_in: Duration,
    /// Until the session's absolute end: the cookie's `Max-Age`.
    pub session_expires_in: Duration,
    pub session_id: SessionId,
    pub user: User,
}

impl TokenWarden {
    pub(crate) fn issue(
        &self,
        session: &Session,
        user: User,
        refresh_token: RefreshToken,
        now: Timestamp,
    ) -> Result<IssuedTokens, Unexpected> {
        let lifetimes = &self.settings.lifetimes;
        let expires_at = now.plus(lifetimes.access_ttl);
        let claims = AccessClaims {
            user_id: user.id,
            session_id: session.id,
            roles: user.roles.clone(),
            issued_at: now,
            expires_at,
            token_id: AccessTokenId::from_random_bytes(self.ports.random.id_bytes()).to_string(),
        };
        let access_token = self.ports.signer.sign(&claims)?;
        Ok(IssuedTokens {
            access_token,
            access_expires_in: lifetimes.access_ttl,
            refresh_token,
            refresh_expires_in: now.until(session.refresh_expires_at(lifetimes.idle_ttl)),
            session_expires_in: now.until(session.expires_at),
            session_id: session.id,
            user,
        })
    }
}
