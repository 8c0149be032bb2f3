//! Use cases around a user's sessions: list, delete one, log out, log out
//! everywhere, and the profile of the caller.

use domain::{RefreshToken, Session, SessionId, User, UserId};

use crate::dpop::DpopInput;
use crate::ports::{ClientInfo, EndOutcome, EndReason, EndRequest, RevokeReason};
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

/// Why a logout ended nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutError {
    /// The token's session is bound to a DPoP key and no valid proof by it
    /// came with the request: nothing ended, the `dpop_mismatch` security
    /// event has been recorded (the holder of a stolen bound token cannot
    /// log its victim out).
    #[error("no DPoP proof by the session's key")]
    DpopMismatch { session: SessionId, user: UserId },
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
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
    /// Ends the sessions of `tokens`: normally one. (A request with
    /// duplicate refresh cookies, one of which may have been planted, is
    /// refused by the HTTP adapter before it gets here: API.md "Duplicate
    /// refresh cookies".) Idempotent: no token, or a
    /// malformed, unknown or dead one, is not an error. Never triggers the
    /// theft response.
    ///
    /// A session bound to a DPoP key ends only with a valid proof by that
    /// key in `dpop` (`htm` POST, `htu` the request's URL, no `ath`); its
    /// `jti` is recorded in the ending's transaction. An unbound session
    /// ignores the proof.
    ///
    /// # Errors
    /// [`LogoutError::DpopMismatch`] when a bound session was refused for
    /// want of its key and no session ended (of several tokens, one that
    /// ended is the client's own: the others are not its to end);
    /// [`LogoutError::Unexpected`] when storage fails.
    pub fn logout(
        &self,
        tokens: &[String],
        dpop: Option<&DpopInput>,
        client: ClientInfo,
    ) -> Result<(), LogoutError> {
        let tokens: Vec<RefreshToken> = tokens
            .iter()
            .filter_map(|t| RefreshToken::parse(t).ok())
            .collect();
        if tokens.is_empty() {
            return Ok(());
        }
        let now = self.ports.clock.now();
        let proof = self.proof_or_none(dpop, "logout", now);
        let (mut ended, mut refused) = (false, None);
        for token in tokens {
            let outcome = self.ports.sessions.end_by_token(EndRequest {
                token: token.digest(),
                reason: EndReason::Logout,
                policy: self.settings.rotation_policy(),
                client: client.clone(),
                now,
                proof: proof.clone(),
                recorded_key: None,
            });
            let outcome = outcome.map_err(Unexpected::from)?;
            self.publish_ended(&outcome, now);
            match outcome {
                EndOutcome::Ended { .. } => ended = true,
                EndOutcome::DpopMismatch { session, user } => {
                    tracing::info!(session_id = %session, "logout of a DPoP-bound session refused: no proof by its key");
                    refused.get_or_insert(LogoutError::DpopMismatch { session, user });
                }
                EndOutcome::UnknownToken
                | EndOutcome::AlreadyEnded { .. }
                | EndOutcome::Reused { .. } => {}
            }
        }
        match refused {
            Some(error) if !ended => Err(error),
            _ => Ok(()),
        }
    }

    /// Puts what ending a session by its token revoked on the revocation list.
    pub(crate) fn publish_ended(&self, outcome: &EndOutcome, now: domain::Timestamp) {
        match outcome {
            EndOutcome::Ended { session, .. } => self.publish_revoked_sessions(&[*session], now),
            EndOutcome::Reused { revoked, .. } => self.publish_revoked_sessions(revoked, now),
            EndOutcome::UnknownToken
            | EndOutcome::AlreadyEnded { .. }
            | EndOutcome::DpopMismatch { .. } => {}
        }
    }

    /// Revokes every session of the caller (security event `logout_all`).
    ///
    /// # Errors
    /// Only [`Unexpected`].
    pub fn logout_all(&self, principal: &Principal) -> Result<u64, Unexpected> {
        let now = self.ports.clock.now();
        let revoked =
            self.ports
                .sessions
                .revoke_all(principal.user_id, RevokeReason::LogoutAll, now)?;
        self.publish_revoked_sessions(&revoked, now);
        Ok(u64::try_from(revoked.len()).unwrap_or(u64::MAX))
    }

    /// The caller's live sessions, exactly one of them `current`.
    ///
    /// # Errors
    /// Only [`Unexpected`].
    pub fn list_sessions(&self, principal: &Principal) -> Result<Vec<SessionView>, Unexpected> {
        let idle = self.settings.lifetimes.idle_ttl;
        let sessions =
            self.ports
                .sessions
                .list_live(principal.user_id, idle, self.ports.clock.now())?;
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
    pub fn delete_session(
        &self,
        principal: &Principal,
        session: SessionId,
    ) -> Result<(), DeleteSessionError> {
        let now = self.ports.clock.now();
        let idle = self.settings.lifetimes.idle_ttl;
        if self
            .ports
            .sessions
            .revoke_one(principal.user_id, session, idle, now)
            .map_err(Unexpected::from)?
        {
            self.publish_revoked_sessions(&[session], now);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use domain::{ReuseResponse, Roles, UserId};

    use super::*;
    use crate::ports::RevocationKey;
    use crate::test_support::{
        alice, checked_proof, client, presented_token, principal_of, proof_input, session_of,
        store_down, with_dpop_in_the_transaction, Mocks, DAY, NOW,
    };
    use domain::ProofRejection;

    /// The presented token, as a logout receives it.
    fn presented() -> Vec<String> {
        vec![presented_token().expose().to_owned()]
    }

    fn caller() -> Principal {
        principal_of(&session_of(&alice()), alice().roles)
    }

    /// Another live session of alice, on another device.
    fn other_session() -> Session {
        Session {
            id: SessionId::from_random_bytes([0x0d; 16]),
            device_name: Some("phone".to_owned()),
            rotated_at: NOW.minus(6 * DAY),
            ..session_of(&alice())
        }
    }

    #[test]
    fn logout_without_a_token_touches_no_port() {
        assert_eq!(
            Mocks::untouchable().build().logout(&[], None, client()),
            Ok(())
        );
    }

    #[test]
    fn logout_with_a_malformed_token_touches_no_port() {
        for bad in ["", "garbage", "twr_short"] {
            assert_eq!(
                Mocks::untouchable()
                    .build()
                    .logout(&[bad.to_owned()], None, client()),
                Ok(())
            );
        }
    }

    #[test]
    fn logout_ends_the_session_of_the_token_as_a_logout() {
        let mut m = Mocks::new();
        m.settings.reuse_response = ReuseResponse::RevokeFamily;
        let warden_policy = m.settings.rotation_policy();
        m.sessions
            .expect_end_by_token()
            .withf(move |r| {
                r.token == presented_token().digest()
                    && r.reason == EndReason::Logout
                    && r.policy == warden_policy
                    && r.policy.reuse_response == ReuseResponse::RevokeFamily
                    && r.client == client()
                    && r.now == NOW
                    && r.proof.is_none()
            })
            .times(1)
            .returning(|_| {
                let s = session_of(&alice());
                Ok(EndOutcome::Ended {
                    session: s.id,
                    user: s.user_id,
                })
            });

        assert_eq!(m.build().logout(&presented(), None, client()), Ok(()));
    }

    #[test]
    fn logout_with_an_unknown_dead_or_rotated_token_still_succeeds() {
        let s = session_of(&alice());
        for outcome in [
            EndOutcome::UnknownToken,
            EndOutcome::AlreadyEnded {
                session: s.id,
                user: s.user_id,
            },
            EndOutcome::Reused {
                session: s.id,
                user: s.user_id,
                revoked: Vec::new(),
            },
        ] {
            let mut m = Mocks::new();
            m.sessions
                .expect_end_by_token()
                .times(1)
                .return_const(Ok(outcome));

            assert_eq!(m.build().logout(&presented(), None, client()), Ok(()));
        }
    }

    #[test]
    fn a_store_failure_at_logout_is_unexpected_store() {
        let mut m = Mocks::new();
        m.sessions
            .expect_end_by_token()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(
            m.build().logout(&presented(), None, client()),
            Err(LogoutError::Unexpected(Unexpected::Store(store_down())))
        );
    }

    #[test]
    fn logout_all_revokes_every_session_of_the_caller_and_reports_how_many() {
        let mut m = Mocks::new();
        let revoked = vec![
            session_of(&alice()).id,
            other_session().id,
            SessionId::from_random_bytes([0x0f; 16]),
        ];
        m.sessions
            .expect_revoke_all()
            .withf(|user, reason, now| {
                *user == alice().id && *reason == RevokeReason::LogoutAll && *now == NOW
            })
            .times(1)
            .return_const(Ok(revoked));

        assert_eq!(m.build().logout_all(&caller()), Ok(3));
    }

    #[test]
    fn a_store_failure_at_logout_all_is_unexpected_store() {
        let mut m = Mocks::new();
        m.sessions
            .expect_revoke_all()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(
            m.build().logout_all(&caller()),
            Err(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn list_sessions_shows_the_callers_live_sessions_with_only_the_asking_one_current() {
        let mut m = Mocks::new();
        let idle = m.settings.lifetimes.idle_ttl;
        m.sessions
            .expect_list_live()
            .withf(move |user, idle_ttl, now| {
                *user == alice().id && *idle_ttl == idle && *now == NOW
            })
            .times(1)
            .return_const(Ok(vec![other_session(), session_of(&alice())]));

        let views = m.build().list_sessions(&caller()).unwrap();

        assert_eq!(views.len(), 2);
        assert_eq!(views[0].session, other_session());
        assert!(!views[0].current);
        assert_eq!(views[1].session, session_of(&alice()));
        assert!(views[1].current);
    }

    #[test]
    fn list_sessions_reports_the_earlier_of_the_idle_and_absolute_deadlines() {
        let mut m = Mocks::new();
        let ends_soon = Session {
            expires_at: NOW.plus(Duration::from_secs(60)),
            ..session_of(&alice())
        };
        let idles_first = other_session();
        let listed = vec![ends_soon.clone(), idles_first.clone()];
        m.sessions
            .expect_list_live()
            .times(1)
            .return_const(Ok(listed));

        let views = m.build().list_sessions(&caller()).unwrap();

        assert_eq!(views[0].expires_at, ends_soon.expires_at);
        assert_eq!(views[1].expires_at, idles_first.rotated_at.plus(7 * DAY));
        assert!(views[1].expires_at < idles_first.expires_at);
    }

    #[test]
    fn list_sessions_of_a_caller_without_live_sessions_is_empty() {
        let mut m = Mocks::new();
        m.sessions
            .expect_list_live()
            .times(1)
            .return_const(Ok(Vec::new()));

        assert_eq!(m.build().list_sessions(&caller()), Ok(Vec::new()));
    }

    #[test]
    fn a_store_failure_listing_sessions_is_unexpected_store() {
        let mut m = Mocks::new();
        m.sessions
            .expect_list_live()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(
            m.build().list_sessions(&caller()),
            Err(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn delete_session_revokes_that_session_of_the_caller() {
        let mut m = Mocks::new();
        let target = other_session().id;
        let idle = m.settings.lifetimes.idle_ttl;
        m.sessions
            .expect_revoke_one()
            .withf(move |user, session, idle_ttl, now| {
                *user == alice().id && *session == target && *idle_ttl == idle && *now == NOW
            })
            .times(1)
            .return_const(Ok(true));

        assert_eq!(m.build().delete_session(&caller(), target), Ok(()));
    }

    #[test]
    fn deleting_a_session_that_is_not_a_live_one_of_the_caller_is_not_found() {
        let mut m = Mocks::new();
        m.sessions
            .expect_revoke_one()
            .times(1)
            .return_const(Ok(false));
        let someone_elses = SessionId::from_random_bytes([0xee; 16]);

        assert_eq!(
            m.build().delete_session(&caller(), someone_elses),
            Err(DeleteSessionError::NotFound)
        );
    }

    #[test]
    fn a_store_failure_deleting_a_session_is_unexpected_store() {
        let mut m = Mocks::new();
        m.sessions
            .expect_revoke_one()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(
            m.build().delete_session(&caller(), other_session().id),
            Err(DeleteSessionError::Unexpected(Unexpected::Store(
                store_down()
            )))
        );
    }

    #[test]
    fn me_returns_the_callers_account() {
        let mut m = Mocks::new();
        m.users
            .expect_find()
            .withf(|id| *id == alice().id)
            .times(1)
            .return_const(Ok(Some(alice())));

        assert_eq!(m.build().me(&caller()), Ok(Some(alice())));
    }

    #[test]
    fn me_of_an_account_that_no_longer_exists_is_none() {
        let mut m = Mocks::new();
        let ghost = Principal {
            user_id: UserId::from_random_bytes([0x99; 16]),
            ..principal_of(&session_of(&alice()), Roles::default())
        };
        m.users
            .expect_find()
            .withf(move |id| *id == ghost.user_id)
            .times(1)
            .return_const(Ok(None));

        assert_eq!(m.build().me(&ghost), Ok(None));
    }

    #[test]
    fn a_store_failure_reading_the_account_is_unexpected_store() {
        let mut m = Mocks::new();
        m.users
            .expect_find()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(
            m.build().me(&caller()),
            Err(Unexpected::Store(store_down()))
        );
    }

    fn listing(m: &mut Mocks, sessions: Vec<SessionId>) {
        let access_ttl = m.settings.lifetimes.access_ttl;
        m.revocations = crate::ports::MockRevocationList::new();
        m.revocations
            .expect_revoke()
            .withf(move |entries| {
                entries.iter().map(|e| (e.key, e.expires_at)).eq(sessions
                    .iter()
                    .map(|s| (RevocationKey::Session(*s), NOW.plus(access_ttl))))
            })
            .times(1)
            .return_const(Ok(()));
    }

    #[test]
    fn logout_puts_the_ended_session_on_the_revocation_list() {
        let mut m = Mocks::new();
        let s = session_of(&alice());
        m.sessions
            .expect_end_by_token()
            .times(1)
            .return_const(Ok(EndOutcome::Ended {
                session: s.id,
                user: s.user_id,
            }));
        listing(&mut m, vec![s.id]);

        assert_eq!(m.build().logout(&presented(), None, client()), Ok(()));
    }

    #[test]
    fn logout_of_an_already_ended_session_lists_nothing_new() {
        let mut m = Mocks::new().strict_revocations();
        let s = session_of(&alice());
        m.sessions
            .expect_end_by_token()
            .times(1)
            .return_const(Ok(EndOutcome::AlreadyEnded {
                session: s.id,
                user: s.user_id,
            }));
        m.revocations.expect_revoke().never();

        assert_eq!(m.build().logout(&presented(), None, client()), Ok(()));
    }

    #[test]
    fn logout_all_puts_every_revoked_session_on_the_list() {
        let mut m = Mocks::new();
        let revoked = vec![session_of(&alice()).id, other_session().id];
        m.sessions
            .expect_revoke_all()
            .times(1)
            .return_const(Ok(revoked.clone()));
        listing(&mut m, revoked);

        assert_eq!(m.build().logout_all(&caller()), Ok(2));
    }

    #[test]
    fn deleting_a_session_puts_it_on_the_list_and_a_failed_delete_does_not() {
        let mut m = Mocks::new();
        m.sessions
            .expect_revoke_one()
            .times(1)
            .return_const(Ok(true));
        listing(&mut m, vec![other_session().id]);
        assert_eq!(
            m.build().delete_session(&caller(), other_session().id),
            Ok(())
        );

        let mut m = Mocks::new().strict_revocations();
        m.sessions
            .expect_revoke_one()
            .times(1)
            .return_const(Ok(false));
        m.revocations.expect_revoke().never();
        assert_eq!(
            m.build().delete_session(&caller(), other_session().id),
            Err(DeleteSessionError::NotFound)
        );
    }

    #[test]
    fn a_list_that_fails_does_not_fail_the_logout_already_committed() {
        let mut m = Mocks::new().strict_revocations();
        let s = session_of(&alice());
        m.sessions
            .expect_end_by_token()
            .times(1)
            .return_const(Ok(EndOutcome::Ended {
                session: s.id,
                user: s.user_id,
            }));
        m.revocations
            .expect_revoke()
            .times(1)
            .return_const(Err(store_down()));

        assert_eq!(m.build().logout(&presented(), None, client()), Ok(()));
    }

    fn ended() -> EndOutcome {
        let s = session_of(&alice());
        EndOutcome::Ended {
            session: s.id,
            user: s.user_id,
        }
    }

    fn refused() -> EndOutcome {
        let s = session_of(&alice());
        EndOutcome::DpopMismatch {
            session: s.id,
            user: s.user_id,
        }
    }

    #[test]
    fn a_valid_proof_goes_to_the_ending_whose_transaction_records_its_jti() {
        let mut m = Mocks::new();
        m.sessions
            .expect_end_by_token()
            .withf(|r| r.proof == Some(checked_proof()) && r.reason == EndReason::Logout)
            .times(1)
            .return_const(Ok(ended()));
        let warden = with_dpop_in_the_transaction(m.build(), Ok(()));

        assert_eq!(
            warden.logout(&presented(), Some(&proof_input()), client()),
            Ok(())
        );
    }

    #[test]
    fn a_refused_proof_goes_to_the_ending_as_no_proof() {
        let mut m = Mocks::new();
        m.sessions
            .expect_end_by_token()
            .withf(|r| r.proof.is_none())
            .times(1)
            .return_const(Ok(ended()));
        let warden = with_dpop_in_the_transaction(m.build(), Err(ProofRejection::Stale));

        assert_eq!(
            warden.logout(&presented(), Some(&proof_input()), client()),
            Ok(())
        );
    }

    #[test]
    fn a_bound_session_refused_for_want_of_its_key_is_a_dpop_mismatch_and_lists_nothing() {
        let mut m = Mocks::new().strict_revocations();
        m.sessions
            .expect_end_by_token()
            .times(1)
            .return_const(Ok(refused()));
        m.revocations.expect_revoke().never();
        let s = session_of(&alice());

        assert_eq!(
            m.build().logout(&presented(), None, client()),
            Err(LogoutError::DpopMismatch {
                session: s.id,
                user: s.user_id
            })
        );
    }

    #[test]
    fn of_several_cookies_one_that_ended_makes_the_logout_a_success() {
        let mut m = Mocks::new();
        let mut outcomes = vec![refused(), ended()].into_iter();
        m.sessions
            .expect_end_by_token()
            .times(2)
            .returning(move |_| Ok(outcomes.next().unwrap()));
        let two = vec![
            presented_token().expose().to_owned(),
            presented_token().expose().to_owned(),
        ];

        assert_eq!(m.build().logout(&two, None, client()), Ok(()));
    }

    #[test]
    fn of_several_cookies_a_refusal_with_nothing_ended_is_a_dpop_mismatch() {
        let mut m = Mocks::new();
        let mut outcomes = vec![EndOutcome::UnknownToken, refused()].into_iter();
        m.sessions
            .expect_end_by_token()
            .times(2)
            .returning(move |_| Ok(outcomes.next().unwrap()));
        let two = vec![
            "twr_malformed".to_owned(),
            presented_token().expose().to_owned(),
            presented_token().expose().to_owned(),
        ];

        assert!(matches!(
            m.build().logout(&two, None, client()),
            Err(LogoutError::DpopMismatch { .. })
        ));
    }

    #[test]
    fn a_logout_without_a_usable_token_never_reads_the_proof() {
        // A reader that would fail the test if asked.
        let mut reader = crate::ports::MockDpopProofReader::new();
        reader.expect_read().never();
        let mut replay = crate::ports::MockDpopReplayStore::new();
        replay.expect_first_use().never();
        let warden = Mocks::untouchable().build().with_dpop(crate::Dpop {
            reader: std::sync::Arc::new(reader),
            replay: std::sync::Arc::new(replay),
            settings: crate::DpopSettings {
                mode: domain::DpopMode::Optional,
                window: domain::ProofWindow {
                    max_age: Duration::from_secs(60),
                    leeway: Duration::ZERO,
                },
            },
        });

        assert_eq!(
            warden.logout(&["garbage".to_owned()], Some(&proof_input()), client()),
            Ok(())
        );
    }
}
