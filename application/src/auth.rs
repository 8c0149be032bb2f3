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
        let claims = self
            .ports
            .signer
            .verify(access_token, now)
            .map_err(|e| match e {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{alice, claims_for, session_of, store_down, Mocks, NOW};

    /// The signer accepts `"the-token"` as a genuine token of alice's session.
    fn genuine(m: &mut Mocks) {
        m.signer
            .expect_verify()
            .withf(|token, now| token == "the-token" && *now == NOW)
            .times(1)
            .returning(|_, _| Ok(claims_for(&alice(), &session_of(&alice()))));
    }

    /// The store reports `status` for alice's session, asked with the
    /// configured idle timeout at [`NOW`].
    fn session_is(m: &mut Mocks, status: SessionStatus) {
        let idle = m.settings.lifetimes.idle_ttl;
        m.sessions
            .expect_status()
            .withf(move |sid, idle_ttl, now| {
                *sid == session_of(&alice()).id && *idle_ttl == idle && *now == NOW
            })
            .times(1)
            .return_const(Ok(status));
    }

    fn refused(m: &mut Mocks, error: VerifyError) {
        m.signer.expect_verify().times(1).return_const(Err(error));
        m.sessions.expect_status().never();
    }

    #[test]
    fn a_genuine_token_of_a_live_session_yields_its_principal() {
        let mut m = Mocks::new();
        genuine(&mut m);
        session_is(&mut m, SessionStatus::Live);

        let principal = m.build().authenticate("the-token").unwrap();

        assert_eq!(
            principal,
            Principal {
                user_id: alice().id,
                session_id: session_of(&alice()).id,
                roles: alice().roles,
            }
        );
        assert!(principal.has_role(&Role::user()));
        assert!(!principal.has_role(&Role::admin()));
    }

    #[test]
    fn an_expired_access_token_is_expired_without_a_session_lookup() {
        let mut m = Mocks::new();
        refused(&mut m, VerifyError::Expired);

        assert_eq!(
            m.build().authenticate("the-token").unwrap_err(),
            AuthError::Expired
        );
    }

    #[test]
    fn an_invalid_access_token_is_invalid_without_a_session_lookup() {
        let mut m = Mocks::new();
        refused(&mut m, VerifyError::Invalid);

        assert_eq!(
            m.build().authenticate("forged").unwrap_err(),
            AuthError::Invalid
        );
    }

    #[test]
    fn a_token_of_a_revoked_session_is_session_revoked() {
        let mut m = Mocks::new();
        genuine(&mut m);
        session_is(&mut m, SessionStatus::Revoked);

        assert_eq!(
            m.build().authenticate("the-token").unwrap_err(),
            AuthError::SessionRevoked
        );
    }

    #[test]
    fn a_token_of_an_expired_session_is_session_revoked() {
        let mut m = Mocks::new();
        genuine(&mut m);
        session_is(&mut m, SessionStatus::Expired);

        assert_eq!(
            m.build().authenticate("the-token").unwrap_err(),
            AuthError::SessionRevoked
        );
    }

    #[test]
    fn a_token_of_an_unknown_session_is_invalid() {
        let mut m = Mocks::new();
        genuine(&mut m);
        session_is(&mut m, SessionStatus::Unknown);

        assert_eq!(
            m.build().authenticate("the-token").unwrap_err(),
            AuthError::Invalid
        );
    }

    #[test]
    fn a_store_failure_checking_the_session_is_unexpected_store() {
        let mut m = Mocks::new();
        genuine(&mut m);
        m.sessions
            .expect_status()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(
            m.build().authenticate("the-token").unwrap_err(),
            AuthError::Unexpected(Unexpected::Store(store_down()))
        );
    }
}
