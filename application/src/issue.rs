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
    /// The session is bound to a DPoP key: the access token carries
    /// `cnf.jkt` and its type is `DPoP`.
    pub dpop_bound: bool,
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
            confirmation: session.dpop_jkt.clone(),
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
            dpop_bound: session.dpop_jkt.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::test_support::{
        alice, crypto_broken, nth_id_bytes, presented_token, session_of, Mocks, DAY, NOW,
    };

    fn issue_for(m: Mocks, session: &Session) -> Result<IssuedTokens, Unexpected> {
        m.build().issue(session, alice(), presented_token(), NOW)
    }

    #[test]
    fn the_access_claims_carry_user_session_roles_and_the_access_lifetime() {
        let mut m = Mocks::new();
        let access_ttl = m.settings.lifetimes.access_ttl;
        m.signer
            .expect_sign()
            .withf(move |c| {
                *c == AccessClaims {
                    user_id: alice().id,
                    session_id: session_of(&alice()).id,
                    roles: alice().roles,
                    issued_at: NOW,
                    expires_at: NOW.plus(access_ttl),
                    token_id: AccessTokenId::from_random_bytes(nth_id_bytes(1)).to_string(),
                    confirmation: None,
                }
            })
            .times(1)
            .returning(|_| Ok("signed".to_owned()));

        let issued = issue_for(m, &session_of(&alice())).unwrap();

        assert_eq!(issued.access_token, "signed");
        assert_eq!(issued.access_expires_in, access_ttl);
    }

    #[test]
    fn every_access_token_gets_a_fresh_token_id() {
        let mut m = Mocks::new();
        let ids: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = Arc::clone(&ids);
        m.signer.expect_sign().times(2).returning(move |c| {
            seen.lock().unwrap().push(c.token_id.clone());
            Ok("signed".to_owned())
        });
        let warden = m.build();
        let session = session_of(&alice());

        warden
            .issue(&session, alice(), presented_token(), NOW)
            .unwrap();
        warden
            .issue(&session, alice(), presented_token(), NOW)
            .unwrap();

        let ids = ids.lock().unwrap();
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn the_refresh_token_session_and_user_are_handed_back_unchanged() {
        let issued = issue_for(Mocks::new().signing_anything(), &session_of(&alice())).unwrap();

        assert_eq!(issued.refresh_token, presented_token());
        assert_eq!(issued.session_id, session_of(&alice()).id);
        assert_eq!(issued.user, alice());
    }

    #[test]
    fn the_refresh_expiry_counts_the_idle_timeout_from_the_last_rotation() {
        let session = Session {
            rotated_at: NOW.minus(DAY),
            ..session_of(&alice())
        };

        let issued = issue_for(Mocks::new().signing_anything(), &session).unwrap();

        assert_eq!(issued.refresh_expires_in, 6 * DAY);
        assert_eq!(issued.session_expires_in, NOW.until(session.expires_at));
    }

    #[test]
    fn the_refresh_expiry_never_passes_the_end_of_the_session() {
        let session = Session {
            rotated_at: NOW,
            expires_at: NOW.plus(DAY),
            ..session_of(&alice())
        };

        let issued = issue_for(Mocks::new().signing_anything(), &session).unwrap();

        assert_eq!(issued.refresh_expires_in, DAY);
        assert_eq!(issued.session_expires_in, DAY);
    }

    #[test]
    fn deadlines_already_passed_leave_zero_time() {
        let session = Session {
            rotated_at: NOW.minus(10 * DAY),
            expires_at: NOW.minus(DAY),
            ..session_of(&alice())
        };

        let issued = issue_for(Mocks::new().signing_anything(), &session).unwrap();

        assert_eq!(issued.refresh_expires_in, Duration::ZERO);
        assert_eq!(issued.session_expires_in, Duration::ZERO);
    }

    #[test]
    fn a_signer_failure_is_unexpected_crypto() {
        let mut m = Mocks::new();
        m.signer
            .expect_sign()
            .times(1)
            .returning(|_| Err(crypto_broken()));

        assert_eq!(
            issue_for(m, &session_of(&alice())).unwrap_err(),
            Unexpected::Crypto(crypto_broken())
        );
    }
}
