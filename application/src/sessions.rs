//! Use cases around a user's sessions: list, delete one, log out, log out
//! everywhere, and the profile of the caller.

use domain::{RefreshToken, Session, SessionId, User};

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
        let now = self.ports.clock.now();
        let outcome = self.ports.sessions.end_by_token(EndRequest {
            token: token.digest(),
            reason: EndReason::Logout,
            policy: self.settings.rotation_policy(),
            client,
            now,
        })?;
        self.publish_ended(&outcome, now);
        Ok(())
    }

    /// Puts what ending a session by its token revoked on the revocation list.
    pub(crate) fn publish_ended(&self, outcome: &EndOutcome, now: domain::Timestamp) {
        match outcome {
            EndOutcome::Ended { session, .. } => self.publish_revoked_sessions(&[*session], now),
            EndOutcome::Reused { revoked, .. } => self.publish_revoked_sessions(revoked, now),
            EndOutcome::UnknownToken | EndOutcome::AlreadyEnded { .. } => {}
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
        alice, client, presented_token, principal_of, session_of, store_down, Mocks, DAY, NOW,
    };

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
        assert_eq!(Mocks::untouchable().build().logout(None, client()), Ok(()));
    }

    #[test]
    fn logout_with_a_malformed_token_touches_no_port() {
        for bad in ["", "garbage", "twr_short"] {
            assert_eq!(
                Mocks::untouchable().build().logout(Some(bad), client()),
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
            })
            .times(1)
            .returning(|_| {
                let s = session_of(&alice());
                Ok(EndOutcome::Ended {
                    session: s.id,
                    user: s.user_id,
                })
            });

        assert_eq!(
            m.build().logout(Some(presented_token().expose()), client()),
            Ok(())
        );
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

            assert_eq!(
                m.build().logout(Some(presented_token().expose()), client()),
                Ok(())
            );
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
            m.build().logout(Some(presented_token().expose()), client()),
            Err(Unexpected::Store(store_down()))
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

        assert_eq!(
            m.build().logout(Some(presented_token().expose()), client()),
            Ok(())
        );
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

        assert_eq!(
            m.build().logout(Some(presented_token().expose()), client()),
            Ok(())
        );
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

        assert_eq!(
            m.build().logout(Some(presented_token().expose()), client()),
            Ok(())
        );
    }
}
