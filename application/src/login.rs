//! Use case: log in with username and password, starting a new session.

use domain::{NewSession, Password, RefreshToken, SessionId, Username};

use crate::ports::{ClientInfo, EndReason, EndRequest};
use crate::{IssuedTokens, TokenWarden, Unexpected};

/// A login attempt as received. Username and password are checked here, not
/// at the edge, so that a malformed name gets the same answer (and the same
/// argon2 work) as a wrong password.
#[derive(Debug, Clone)]
pub struct LoginInput {
    pub username: String,
    pub password: String,
    pub device_name: Option<String>,
    /// A refresh token the client still carried (old cookie); a successful
    /// login ends its session.
    pub previous_token: Option<String>,
    pub client: ClientInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password: deliberately indistinguishable.
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl TokenWarden {
    /// Verifies the credentials and starts a session.
    ///
    /// # Errors
    /// [`LoginError::InvalidCredentials`] for an unknown user, a wrong
    /// password, or a username or password that could never be valid.
    pub fn login(&self, input: LoginInput) -> Result<IssuedTokens, LoginError> {
        let username = Username::parse(&input.username).ok();
        let password = Password::parse(input.password).ok();
        let found = match &username {
            Some(name) => self.ports.users.find_credentials(name).map_err(Unexpected::from)?,
            None => None,
        };
        let verified = match &password {
            Some(p) => self
                .ports
                .hasher
                .verify(p, found.as_ref().map(|(_, hash)| hash))
                .map_err(Unexpected::from)?,
            None => {
                // Spend the same work on a password that cannot be valid.
                let filler = Password::parse("x".repeat(Password::MIN_LEN))
                    .map_err(|_| LoginError::InvalidCredentials)?;
                let _ = self.ports.hasher.verify(&filler, None);
                false
            }
        };
        let user = match found {
            Some((user, _)) if verified => user,
            _ => return Err(LoginError::InvalidCredentials),
        };

        let now = self.ports.clock.now();
        if let Some(previous) = input.previous_token.as_deref().and_then(|t| RefreshToken::parse(t).ok()) {
            self.ports
                .sessions
                .end_by_token(EndRequest {
                    token: previous.digest(),
                    reason: EndReason::ReplacedByLogin,
                    lifetimes: self.settings.lifetimes.clone(),
                    reuse_response: self.settings.reuse_response,
                    client: input.client.clone(),
                    now,
                })
                .map_err(Unexpected::from)?;
        }

        let refresh_token = RefreshToken::from_random_bytes(self.ports.random.token_bytes());
        let new_session = NewSession {
            id: SessionId::from_random_bytes(self.ports.random.id_bytes()),
            user_id: user.id,
            device_name: input.device_name,
            created_at: now,
            expires_at: now.plus(self.settings.lifetimes.max_lifetime),
            ip: input.client.ip,
            user_agent: input.client.user_agent,
        };
        let session = self
            .ports
            .sessions
            .create(new_session, refresh_token.digest(), self.settings.lifetimes.max_sessions)
            .map_err(Unexpected::from)?;
        Ok(self.issue(&session, user, refresh_token, now)?)
    }
}
