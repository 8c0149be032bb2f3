//! Use cases for resource servers and clients: token introspection (RFC 7662
//! style) and token revocation (RFC 7009 style).

use domain::{AccessTokenId, RefreshToken, SessionId, SessionStatus, UserId};

use crate::dpop::{DpopError, DpopInput};
use crate::ports::{AccessClaims, ClientInfo, Consistency, Revocation, RevocationKey};
use crate::sessions::LogoutError;
use crate::{TokenWarden, Unexpected};

/// Why a token was not revoked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevokeError {
    /// The token is bound to a DPoP key (a bound session's refresh token,
    /// an access token with `cnf.jkt`) and no valid proof by that key came
    /// with the request: nothing was revoked. Only the key holder revokes a
    /// bound token, as only it can use one.
    #[error("no DPoP proof by the token's key")]
    DpopMismatch { session: SessionId, user: UserId },
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<LogoutError> for RevokeError {
    fn from(e: LogoutError) -> Self {
        match e {
            LogoutError::DpopMismatch { session, user } => Self::DpopMismatch { session, user },
            LogoutError::Unexpected(e) => Self::Unexpected(e),
        }
    }
}

impl TokenWarden {
    /// The claims of `token` if it is an access token that may be honoured
    /// right now: genuine, unexpired, neither it nor its session revoked,
    /// its session live. `None` for anything else (expired, revoked,
    /// malformed, unknown, a refresh token).
    ///
    /// Unlike [`TokenWarden::authenticate`], nothing is answered from a
    /// cache: introspection is for callers that cannot afford to miss a
    /// revocation made a moment ago on another instance.
    ///
    /// # Errors
    /// Only [`Unexpected`]: when the list or the session store cannot be
    /// asked, the caller gets an error rather than a guess.
    pub fn introspect(&self, token: &str) -> Result<Option<AccessClaims>, Unexpected> {
        let now = self.ports.clock.now();
        let Ok(claims) = self.ports.signer.verify(token, now) else {
            return Ok(None);
        };
        let Ok(jti) = claims.token_id.parse::<AccessTokenId>() else {
            return Ok(None);
        };
        let revoked = self.ports.revocations.check(
            &[
                RevocationKey::Session(claims.session_id),
                RevocationKey::AccessToken(jti),
            ],
            now,
            Consistency::Fresh,
        )?;
        if revoked.is_some() {
            return Ok(None);
        }
        let status =
            self.ports
                .sessions
                .status(claims.session_id, self.settings.lifetimes.idle_ttl, now)?;
        Ok((status == SessionStatus::Live).then_some(claims))
    }

    /// Revokes `token` (RFC 7009): a refresh token ends its session, as a
    /// logout does (no theft response); a genuine access token is put on the
    /// revocation list until it expires. Anything else, including an
    /// expired access token, is ignored: there is nothing left to revoke.
    ///
    /// A token bound to a DPoP key is revoked only with a valid proof by
    /// that key in `dpop` (`htm` POST, `htu` the revocation URL, no `ath`):
    /// for a refresh token as [`TokenWarden::logout`] says, for an access
    /// token its `jti` recorded in the replay store.
    ///
    /// # Errors
    /// [`RevokeError::DpopMismatch`] for a bound token without its key;
    /// [`RevokeError::Unexpected`] when storage or the list fails.
    pub fn revoke_token(
        &self,
        token: &str,
        dpop: Option<&DpopInput>,
        client: ClientInfo,
    ) -> Result<(), RevokeError> {
        if RefreshToken::parse(token).is_ok() {
            return Ok(self.logout(&[token.to_owned()], dpop, client)?);
        }
        let now = self.ports.clock.now();
        let Ok(claims) = self.ports.signer.verify(token, now) else {
            return Ok(());
        };
        let Ok(jti) = claims.token_id.parse::<AccessTokenId>() else {
            return Ok(());
        };
        if let Some(bound) = &claims.confirmation {
            let refused = RevokeError::DpopMismatch {
                session: claims.session_id,
                user: claims.user_id,
            };
            let key = match dpop.map(|input| self.accept_proof(input, None, now)) {
                Some(Ok(key)) => key,
                None => return Err(refused),
                Some(Err(DpopError::Invalid(why))) => {
                    tracing::info!(reason = %why, "DPoP proof refused at revocation");
                    return Err(refused);
                }
                Some(Err(DpopError::Unexpected(e))) => return Err(e.into()),
            };
            if !bound.matches(&key) {
                return Err(refused);
            }
        }
        let entry = Revocation {
            key: RevocationKey::AccessToken(jti),
            expires_at: claims.expires_at.plus(self.settings.clock_leeway),
        };
        self.ports
            .revocations
            .revoke(&[entry])
            .map_err(Unexpected::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ports::{EndOutcome, EndReason, VerifyError};
    use crate::test_support::{
        alice, claims_for, client, jti_of, presented_token, proof_claims, proof_input, proof_key,
        session_of, store_down, with_dpop, with_dpop_reading, Mocks, NOW,
    };
    use domain::{DpopMode, ProofRejection};

    fn genuine(m: &mut Mocks) -> AccessClaims {
        let claims = claims_for(&alice(), &session_of(&alice()));
        let returned = claims.clone();
        m.signer
            .expect_verify()
            .withf(|token, now| token == "the-token" && *now == NOW)
            .times(1)
            .returning(move |_, _| Ok(returned.clone()));
        claims
    }

    fn keys_of(claims: &AccessClaims) -> [RevocationKey; 2] {
        [
            RevocationKey::Session(claims.session_id),
            RevocationKey::AccessToken(jti_of(claims)),
        ]
    }

    fn list_answers(m: &mut Mocks, claims: &AccessClaims, answer: Option<RevocationKey>) {
        let expected = keys_of(claims);
        m.revocations
            .expect_check()
            .withf(move |keys, now, consistency| {
                keys == expected && *now == NOW && *consistency == Consistency::Fresh
            })
            .times(1)
            .return_const(Ok(answer));
    }

    fn session_is(m: &mut Mocks, status: SessionStatus) {
        m.sessions
            .expect_status()
            .withf(|sid, _, now| *sid == session_of(&alice()).id && *now == NOW)
            .times(1)
            .return_const(Ok(status));
    }

    #[test]
    fn a_live_access_token_is_active_with_its_claims_after_fresh_checks() {
        let mut m = Mocks::new().strict_revocations();
        let claims = genuine(&mut m);
        list_answers(&mut m, &claims, None);
        session_is(&mut m, SessionStatus::Live);

        assert_eq!(m.build().introspect("the-token"), Ok(Some(claims)));
    }

    #[test]
    fn expired_forged_and_malformed_tokens_are_inactive_without_any_lookup() {
        for error in [VerifyError::Expired, VerifyError::Invalid] {
            let mut m = Mocks::new().strict_revocations();
            m.signer.expect_verify().times(1).return_const(Err(error));
            m.sessions.expect_status().never();

            assert_eq!(m.build().introspect("the-token"), Ok(None));
        }
    }

    #[test]
    fn a_token_whose_session_or_id_is_revoked_is_inactive() {
        let claims = claims_for(&alice(), &session_of(&alice()));
        for key in keys_of(&claims) {
            let mut m = Mocks::new().strict_revocations();
            let claims = genuine(&mut m);
            list_answers(&mut m, &claims, Some(key));
            m.sessions.expect_status().never();

            assert_eq!(m.build().introspect("the-token"), Ok(None));
        }
    }

    #[test]
    fn a_token_of_a_session_that_is_not_live_is_inactive() {
        for status in [
            SessionStatus::Revoked,
            SessionStatus::Expired,
            SessionStatus::Unknown,
        ] {
            let mut m = Mocks::new().strict_revocations();
            let claims = genuine(&mut m);
            list_answers(&mut m, &claims, None);
            session_is(&mut m, status);

            assert_eq!(m.build().introspect("the-token"), Ok(None));
        }
    }

    #[test]
    fn a_list_that_cannot_be_asked_is_an_error_not_a_guess() {
        let mut m = Mocks::new().strict_revocations();
        genuine(&mut m);
        m.revocations
            .expect_check()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(
            m.build().introspect("the-token"),
            Err(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn revoking_a_refresh_token_logs_its_session_out() {
        let mut m = Mocks::new().strict_revocations();
        let s = session_of(&alice());
        m.sessions
            .expect_end_by_token()
            .withf(|r| r.token == presented_token().digest() && r.reason == EndReason::Logout)
            .times(1)
            .return_const(Ok(EndOutcome::Ended {
                session: s.id,
                user: s.user_id,
            }));
        m.revocations
            .expect_revoke()
            .withf(move |entries| {
                entries.len() == 1 && entries[0].key == RevocationKey::Session(s.id)
            })
            .times(1)
            .return_const(Ok(()));

        assert_eq!(
            m.build()
                .revoke_token(presented_token().expose(), None, client()),
            Ok(())
        );
    }

    #[test]
    fn revoking_an_access_token_lists_its_id_until_it_expires_plus_the_leeway() {
        let mut m = Mocks::new().strict_revocations();
        m.settings.clock_leeway = Duration::from_secs(30);
        let claims = genuine(&mut m);
        let expected = Revocation {
            key: RevocationKey::AccessToken(jti_of(&claims)),
            expires_at: claims.expires_at.plus(Duration::from_secs(30)),
        };
        m.revocations
            .expect_revoke()
            .withf(move |entries| entries == [expected])
            .times(1)
            .return_const(Ok(()));
        m.sessions.expect_end_by_token().never();

        assert_eq!(m.build().revoke_token("the-token", None, client()), Ok(()));
    }

    #[test]
    fn revoking_garbage_or_an_expired_access_token_changes_nothing() {
        for error in [VerifyError::Expired, VerifyError::Invalid] {
            let mut m = Mocks::new().strict_revocations();
            m.signer.expect_verify().times(1).return_const(Err(error));
            m.sessions.expect_end_by_token().never();

            assert_eq!(m.build().revoke_token("garbage", None, client()), Ok(()));
        }
    }

    /// The signer accepts `"the-token"` as an access token of alice's
    /// session bound to [`proof_key`].
    fn genuine_bound(m: &mut Mocks) -> AccessClaims {
        let claims = AccessClaims {
            confirmation: Some(proof_key()),
            ..claims_for(&alice(), &session_of(&alice()))
        };
        let returned = claims.clone();
        m.signer
            .expect_verify()
            .times(1)
            .returning(move |_, _| Ok(returned.clone()));
        claims
    }

    fn refused() -> RevokeError {
        let s = session_of(&alice());
        RevokeError::DpopMismatch {
            session: s.id,
            user: s.user_id,
        }
    }

    #[test]
    fn a_bound_access_token_is_revoked_with_a_proof_by_its_key() {
        let mut m = Mocks::new().strict_revocations();
        let claims = genuine_bound(&mut m);
        let id = jti_of(&claims);
        m.revocations
            .expect_revoke()
            .withf(move |entries| {
                entries.len() == 1 && entries[0].key == RevocationKey::AccessToken(id)
            })
            .times(1)
            .return_const(Ok(()));
        let warden = with_dpop(m.build(), DpopMode::Optional, Ok(()));

        assert_eq!(
            warden.revoke_token("the-token", Some(&proof_input()), client()),
            Ok(())
        );
    }

    #[test]
    fn a_bound_access_token_without_a_proof_by_its_key_is_not_revoked() {
        let other = domain::ProofClaims {
            jkt: domain::Jkt::of_canonical_jwk("{\"another\":\"key\"}"),
            ..proof_claims()
        };
        for (proof, read) in [
            (None, Ok(proof_claims())),
            (Some(proof_input()), Err(ProofRejection::BadSignature)),
            (Some(proof_input()), Ok(other)),
        ] {
            let mut m = Mocks::new().strict_revocations();
            genuine_bound(&mut m);
            m.revocations.expect_revoke().never();
            let warden = with_dpop_reading(m.build(), DpopMode::Optional, read);

            assert_eq!(
                warden.revoke_token("the-token", proof.as_ref(), client()),
                Err(refused())
            );
        }
    }

    #[test]
    fn a_bound_refresh_token_without_its_key_is_refused_as_its_logout_is() {
        let mut m = Mocks::new().strict_revocations();
        let s = session_of(&alice());
        m.sessions
            .expect_end_by_token()
            .withf(|r| r.reason == EndReason::Logout && r.proof.is_none())
            .times(1)
            .return_const(Ok(EndOutcome::DpopMismatch {
                session: s.id,
                user: s.user_id,
            }));
        m.revocations.expect_revoke().never();

        assert_eq!(
            m.build()
                .revoke_token(presented_token().expose(), None, client()),
            Err(refused())
        );
    }

    #[test]
    fn an_unbound_access_token_needs_no_proof() {
        let mut m = Mocks::new().strict_revocations();
        genuine(&mut m);
        m.revocations.expect_revoke().times(1).return_const(Ok(()));
        // A reader that refuses everything would turn a read into a refusal.
        let warden = with_dpop(
            m.build(),
            DpopMode::Optional,
            Err(ProofRejection::Malformed),
        );

        assert_eq!(
            warden.revoke_token("the-token", Some(&proof_input()), client()),
            Ok(())
        );
    }
}
