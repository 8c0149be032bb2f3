//! Use case: authenticate a Bearer access token.

use domain::{AccessTokenId, ProofRejection, Role, Roles, SessionId, SessionStatus, UserId};

use crate::dpop::{DpopError, DpopInput};
use crate::ports::{AccessClaims, Consistency, RevocationKey, VerifyError};
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
    /// This one access token was revoked (`POST /auth/revoke`); its session
    /// may well be live.
    #[error("access token revoked")]
    TokenRevoked,
    /// The token is bound to a DPoP key and the request's proof is missing,
    /// invalid, or by another key.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(ProofRejection),
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// The `Authorization` scheme an access token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    Bearer,
    /// `Authorization: DPoP <token>` (RFC 9449 §7.1), with a `DPoP` proof.
    Dpop,
}

/// An access token as a request presents it.
#[derive(Debug, Clone)]
pub struct AccessCredentials {
    pub token: String,
    pub scheme: AuthScheme,
    /// The request's `DPoP` header, if any.
    pub proof: Option<DpopInput>,
}

impl TokenWarden {
    /// [`TokenWarden::authenticate_request`] for `Authorization: Bearer
    /// <access_token>` without a proof: tokens bound to a DPoP key fail.
    ///
    /// # Errors
    /// See [`AuthError`].
    pub fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        self.authenticate_request(&AccessCredentials {
            token: access_token.to_owned(),
            scheme: AuthScheme::Bearer,
            proof: None,
        })
    }

    /// A token bound to a DPoP key (`cnf.jkt`) is accepted only under the
    /// `DPoP` scheme with a valid proof by that key whose `ath` is the
    /// token's hash; an unbound token only under `Bearer` (RFC 9449 §7).
    fn check_binding(
        &self,
        claims: &AccessClaims,
        credentials: &AccessCredentials,
        now: domain::Timestamp,
    ) -> Result<(), AuthError> {
        match (&claims.confirmation, credentials.scheme) {
            (None, AuthScheme::Bearer) => Ok(()),
            (None, AuthScheme::Dpop) | (Some(_), AuthScheme::Bearer) => Err(AuthError::Invalid),
            (Some(bound), AuthScheme::Dpop) => {
                let proof = credentials
                    .proof
                    .as_ref()
                    .ok_or(AuthError::InvalidDpopProof(ProofRejection::Malformed))?;
                let key = self
                    .accept_proof(proof, Some(&credentials.token), now)
                    .map_err(|e| match e {
                        DpopError::Invalid(why) => AuthError::InvalidDpopProof(why),
                        DpopError::Unexpected(e) => AuthError::Unexpected(e),
                    })?;
                if bound.matches(&key) {
                    Ok(())
                } else {
                    Err(AuthError::InvalidDpopProof(ProofRejection::KeyMismatch))
                }
            }
        }
    }

    /// Verifies the token and checks, on every request, that neither it nor
    /// its session is on the revocation list and that its session is live:
    /// a logout takes effect at once, not at `exp`.
    ///
    /// Both checks may be answered from memory: the list's cached view
    /// (this instance's revocations at once, other instances' within the
    /// bound of the list's adapter), and a session found live less than
    /// [`crate::status_cache::LIVE_STATUS_TTL`] ago.
    ///
    /// # Errors
    /// See [`AuthError`]. A list or store that cannot be asked is
    /// [`AuthError::Unexpected`]: the token is refused, not waved through.
    pub fn authenticate_request(
        &self,
        credentials: &AccessCredentials,
    ) -> Result<Principal, AuthError> {
        let now = self.ports.clock.now();
        let claims = self
            .ports
            .signer
            .verify(&credentials.token, now)
            .map_err(|e| match e {
                VerifyError::Expired => AuthError::Expired,
                VerifyError::Invalid => AuthError::Invalid,
            })?;
        self.check_binding(&claims, credentials, now)?;
        // Every token we sign has a UUID `jti`.
        let jti: AccessTokenId = claims.token_id.parse().map_err(|_| AuthError::Invalid)?;
        let revoked = self
            .ports
            .revocations
            .check(
                &[
                    RevocationKey::Session(claims.session_id),
                    RevocationKey::AccessToken(jti),
                ],
                now,
                Consistency::Cached,
            )
            .map_err(Unexpected::from)?;
        match revoked {
            Some(RevocationKey::Session(_)) => return Err(AuthError::SessionRevoked),
            Some(RevocationKey::AccessToken(_)) => return Err(AuthError::TokenRevoked),
            None => {}
        }
        if !self.status_cache.is_live(claims.session_id, now) {
            let status = self
                .ports
                .sessions
                .status(claims.session_id, self.settings.lifetimes.idle_ttl, now)
                .map_err(Unexpected::from)?;
            match status {
                SessionStatus::Live => self.status_cache.remember(claims.session_id, now),
                SessionStatus::Revoked | SessionStatus::Expired => {
                    return Err(AuthError::SessionRevoked)
                }
                SessionStatus::Unknown => return Err(AuthError::Invalid),
            }
        }
        Ok(Principal {
            user_id: claims.user_id,
            session_id: claims.session_id,
            roles: claims.roles,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{
        alice, claims_for, jti_of, proof_claims, proof_input, proof_key, session_of, store_down,
        with_dpop, with_dpop_reading, Mocks, NOW,
    };
    use domain::DpopMode;

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

    /// The list is asked, from its cache, about alice's session and the
    /// token's `jti`, and answers `answer`.
    fn list_answers(m: &mut Mocks, answer: Option<RevocationKey>) {
        let claims = claims_for(&alice(), &session_of(&alice()));
        let expected = [
            RevocationKey::Session(claims.session_id),
            RevocationKey::AccessToken(jti_of(&claims)),
        ];
        m.revocations = crate::ports::MockRevocationList::new();
        m.revocations
            .expect_check()
            .withf(move |keys, now, consistency| {
                keys == expected && *now == NOW && *consistency == Consistency::Cached
            })
            .times(1)
            .return_const(Ok(answer));
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

    /// The signer accepts `"the-token"` as a token of alice's session
    /// bound to [`proof_key`].
    fn genuine_bound(m: &mut Mocks) {
        m.signer.expect_verify().times(1).returning(|_, _| {
            Ok(AccessClaims {
                confirmation: Some(proof_key()),
                ..claims_for(&alice(), &session_of(&alice()))
            })
        });
    }

    fn dpop_credentials() -> AccessCredentials {
        AccessCredentials {
            token: "the-token".to_owned(),
            scheme: AuthScheme::Dpop,
            proof: Some(DpopInput {
                method: "GET".to_owned(),
                ..proof_input()
            }),
        }
    }

    /// A proof for a GET with the token, as [`dpop_credentials`] sends it.
    fn proof_for_the_token(jkt: domain::Jkt) -> domain::ProofClaims {
        domain::ProofClaims {
            jkt,
            htm: "GET".to_owned(),
            ath: Some(domain::access_token_hash("the-token")),
            ..proof_claims()
        }
    }

    #[test]
    fn a_bound_token_with_a_proof_by_its_key_yields_its_principal() {
        let mut m = Mocks::new();
        genuine_bound(&mut m);
        session_is(&mut m, SessionStatus::Live);
        let warden = with_dpop_reading(
            m.build(),
            DpopMode::Optional,
            Ok(proof_for_the_token(proof_key())),
        );

        let principal = warden.authenticate_request(&dpop_credentials()).unwrap();

        assert_eq!(principal.session_id, session_of(&alice()).id);
    }

    #[test]
    fn a_bound_token_with_a_proof_by_another_key_is_refused() {
        let mut m = Mocks::new();
        genuine_bound(&mut m);
        m.sessions.expect_status().never();
        let other = domain::Jkt::of_canonical_jwk("{\"other\":\"key\"}");
        let warden = with_dpop_reading(
            m.build(),
            DpopMode::Optional,
            Ok(proof_for_the_token(other)),
        );

        assert_eq!(
            warden
                .authenticate_request(&dpop_credentials())
                .unwrap_err(),
            AuthError::InvalidDpopProof(ProofRejection::KeyMismatch)
        );
    }

    #[test]
    fn a_bound_token_without_a_proof_is_refused() {
        let mut m = Mocks::new();
        genuine_bound(&mut m);
        m.sessions.expect_status().never();
        let warden = with_dpop(m.build(), DpopMode::Optional, Ok(()));
        let credentials = AccessCredentials {
            proof: None,
            ..dpop_credentials()
        };

        assert_eq!(
            warden.authenticate_request(&credentials).unwrap_err(),
            AuthError::InvalidDpopProof(ProofRejection::Malformed)
        );
    }

    #[test]
    fn a_bound_token_presented_as_bearer_is_invalid() {
        let mut m = Mocks::new();
        genuine_bound(&mut m);
        m.sessions.expect_status().never();

        assert_eq!(
            m.build().authenticate("the-token").unwrap_err(),
            AuthError::Invalid
        );
    }

    #[test]
    fn an_unbound_token_presented_as_dpop_is_invalid() {
        let mut m = Mocks::new();
        genuine(&mut m);
        m.sessions.expect_status().never();
        let warden = with_dpop(m.build(), DpopMode::Optional, Ok(()));

        assert_eq!(
            warden
                .authenticate_request(&dpop_credentials())
                .unwrap_err(),
            AuthError::Invalid
        );
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

    #[test]
    fn the_revocation_list_is_asked_about_the_session_and_the_token_id_before_the_session() {
        let mut m = Mocks::new();
        genuine(&mut m);
        list_answers(&mut m, None);
        session_is(&mut m, SessionStatus::Live);

        assert!(m.build().authenticate("the-token").is_ok());
    }

    #[test]
    fn a_session_on_the_revocation_list_is_session_revoked_without_a_session_lookup() {
        let mut m = Mocks::new();
        genuine(&mut m);
        list_answers(
            &mut m,
            Some(RevocationKey::Session(session_of(&alice()).id)),
        );
        m.sessions.expect_status().never();

        assert_eq!(
            m.build().authenticate("the-token").unwrap_err(),
            AuthError::SessionRevoked
        );
    }

    #[test]
    fn a_revoked_access_token_id_is_token_revoked() {
        let mut m = Mocks::new();
        genuine(&mut m);
        let jti = jti_of(&claims_for(&alice(), &session_of(&alice())));
        list_answers(&mut m, Some(RevocationKey::AccessToken(jti)));
        m.sessions.expect_status().never();

        assert_eq!(
            m.build().authenticate("the-token").unwrap_err(),
            AuthError::TokenRevoked
        );
    }

    #[test]
    fn a_list_that_cannot_be_asked_refuses_the_token() {
        let mut m = Mocks::new().strict_revocations();
        genuine(&mut m);
        m.revocations
            .expect_check()
            .times(1)
            .return_const(Err(store_down()));
        m.sessions.expect_status().never();

        assert_eq!(
            m.build().authenticate("the-token").unwrap_err(),
            AuthError::Unexpected(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn a_token_with_a_jti_we_never_issue_is_invalid() {
        let mut m = Mocks::new().strict_revocations();
        m.signer.expect_verify().times(1).returning(|_, _| {
            Ok(crate::ports::AccessClaims {
                token_id: "not-a-uuid".to_owned(),
                ..claims_for(&alice(), &session_of(&alice()))
            })
        });

        assert_eq!(
            m.build().authenticate("the-token").unwrap_err(),
            AuthError::Invalid
        );
    }

    #[test]
    fn a_session_found_live_is_not_read_again_within_the_ttl_but_the_list_is() {
        let mut m = Mocks::new().strict_revocations();
        m.signer
            .expect_verify()
            .times(2)
            .returning(|_, _| Ok(claims_for(&alice(), &session_of(&alice()))));
        m.revocations
            .expect_check()
            .times(2)
            .returning(|_, _, _| Ok(None));
        m.sessions
            .expect_status()
            .times(1)
            .return_const(Ok(SessionStatus::Live));
        let warden = m.build();

        assert!(warden.authenticate("the-token").is_ok());
        assert!(warden.authenticate("the-token").is_ok());
    }

    #[test]
    fn a_session_found_dead_is_read_again_next_time() {
        let mut m = Mocks::new();
        m.signer
            .expect_verify()
            .times(2)
            .returning(|_, _| Ok(claims_for(&alice(), &session_of(&alice()))));
        m.sessions
            .expect_status()
            .times(2)
            .return_const(Ok(SessionStatus::Expired));
        let warden = m.build();

        for _ in 0..2 {
            assert_eq!(
                warden.authenticate("the-token").unwrap_err(),
                AuthError::SessionRevoked
            );
        }
    }
}
