//! Use case: exchange a refresh token for a new token pair (rotation).
//!
//! Every call leaves exactly one audit record: the store writes it inside
//! the rotation's transaction; a missing or malformed token, which never
//! reaches the store, and a rotation that failed are recorded here.

use domain::{
    ExpiryKind, RefreshOutcome, RefreshToken, RotationDecision, SessionId, TokenFingerprint, UserId,
};

use crate::ports::{ClientInfo, Consistency, RevocationKey, RotateOutcome, RotateRequest};
use crate::{IssuedTokens, TokenWarden, Unexpected};

/// Every way a refresh can fail, as the client will be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("no refresh token presented")]
    Missing,
    #[error("refresh token malformed or unknown")]
    Invalid,
    #[error("refresh token expired ({kind:?})")]
    Expired {
        kind: ExpiryKind,
        session: SessionId,
        user: UserId,
    },
    /// Theft evidence: the theft response has been committed.
    #[error("refresh token reused")]
    Reused { session: SessionId, user: UserId },
    /// The session was last used from another network and device moments
    /// ago: answered like a reuse, the theft response has been committed.
    #[error("refresh from another network and device")]
    Anomaly { session: SessionId, user: UserId },
    #[error("session revoked")]
    Revoked { session: SessionId, user: UserId },
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl TokenWarden {
    /// Rotates `token`: the successor is derived from it with the server's
    /// secret, so a grace replay gets the very same successor.
    ///
    /// Sessions the theft response revoked go on the revocation list, and a
    /// token is only honoured if its session is not on it (the session row,
    /// read in the same transaction as the rotation, stays the authority).
    ///
    /// # Errors
    /// See [`RefreshError`]. When the audit record of a missing or malformed
    /// token cannot be written, [`RefreshError::Unexpected`].
    pub fn refresh(
        &self,
        token: Option<&str>,
        client: ClientInfo,
    ) -> Result<IssuedTokens, RefreshError> {
        let now = self.ports.clock.now();
        let Some(raw) = token else {
            self.record_refresh_attempt(RefreshOutcome::MissingToken, None, &client, now)?;
            return Err(RefreshError::Missing);
        };
        let Ok(presented) = RefreshToken::parse(raw) else {
            let fingerprint = TokenFingerprint::of_presented(raw);
            self.record_refresh_attempt(
                RefreshOutcome::MalformedToken,
                Some(fingerprint),
                &client,
                now,
            )?;
            return Err(RefreshError::Invalid);
        };
        let successor = presented.successor(&self.settings.refresh_secret);
        let digest = presented.digest();
        let rotated = self.ports.sessions.rotate(RotateRequest {
            presented: digest,
            successor: successor.digest(),
            lifetimes: self.settings.lifetimes.clone(),
            reuse_response: self.settings.reuse_response,
            client: client.clone(),
            now,
            anomaly: self.settings.anomaly,
        });
        let outcome = match rotated {
            Ok(outcome) => outcome,
            Err(e) => {
                // The rotation rolled back, its audit record with it. Record
                // the failure on its own if storage still lets us; the
                // caller hears about the original error either way.
                let fingerprint = TokenFingerprint::of_digest(&digest);
                let _ = self.record_refresh_attempt(
                    RefreshOutcome::Error,
                    Some(fingerprint),
                    &client,
                    now,
                );
                return Err(Unexpected::from(e).into());
            }
        };
        let RotateOutcome::Decided {
            decision,
            session,
            user,
            revoked,
            anomaly,
            ..
        } = outcome
        else {
            return Err(RefreshError::Invalid);
        };
        self.publish_revoked_sessions(&revoked, now);
        let (sid, uid) = (session.id, user.id);
        match decision {
            RotationDecision::Rotate { .. } | RotationDecision::GraceReplay => {
                let listed = self
                    .ports
                    .revocations
                    .check(&[RevocationKey::Session(sid)], now, Consistency::Cached)
                    .map_err(Unexpected::from)?;
                if listed.is_some() {
                    return Err(RefreshError::Revoked {
                        session: sid,
                        user: uid,
                    });
                }
                Ok(self.issue(&session, user, successor, now)?)
            }
            RotationDecision::Reuse if anomaly.is_some() => Err(RefreshError::Anomaly {
                session: sid,
                user: uid,
            }),
            RotationDecision::Reuse => Err(RefreshError::Reused {
                session: sid,
                user: uid,
            }),
            RotationDecision::Expired(kind) => Err(RefreshError::Expired {
                kind,
                session: sid,
                user: uid,
            }),
            RotationDecision::Revoked => Err(RefreshError::Revoked {
                session: sid,
                user: uid,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use domain::{
        AnomalyPolicy, AnomalyResponse, Generation, RefreshAttempt, RefreshSecret, ReuseResponse,
        Session, TokenDigest, User,
    };

    use super::*;
    use crate::test_support::{
        alice, client, crypto_broken, expected_successor, fixed_clock, presented_token, session_of,
        store_down, Mocks, DAY, NOW,
    };

    /// The session after a rotation at [`NOW`].
    fn rotated_session() -> Session {
        let s = session_of(&alice());
        Session {
            generation: s.generation.next(),
            rotated_at: NOW,
            last_used_at: NOW,
            ..s
        }
    }

    fn decided(decision: RotationDecision, session: Session, user: User) -> RotateOutcome {
        RotateOutcome::Decided {
            decision,
            presented: Generation::new(3),
            session,
            user,
            revoked: Vec::new(),
            anomaly: None,
        }
    }

    /// The audit trail expects exactly one standalone record, of `outcome`
    /// with `fingerprint`, at [`NOW`] from [`client`].
    fn audited(m: &mut Mocks, outcome: RefreshOutcome, fingerprint: Option<TokenFingerprint>) {
        m.audit
            .expect_record_refresh()
            .withf(move |a| {
                *a == RefreshAttempt {
                    at: NOW,
                    outcome,
                    user_id: None,
                    session_id: None,
                    ip: client().ip,
                    user_agent: client().user_agent,
                    fingerprint: fingerprint.clone(),
                }
            })
            .times(1)
            .return_const(Ok(()));
    }

    /// The store decides `decision` for the one rotation it is asked for.
    fn rotating_to(m: &mut Mocks, decision: RotationDecision) {
        let session = match decision {
            RotationDecision::Rotate { .. } => rotated_session(),
            _ => session_of(&alice()),
        };
        m.sessions
            .expect_rotate()
            .times(1)
            .return_const(Ok(decided(decision, session, alice())));
    }

    fn refresh_presented(m: Mocks) -> Result<IssuedTokens, RefreshError> {
        m.build()
            .refresh(Some(presented_token().expose()), client())
    }

    fn rotate() -> RotationDecision {
        RotationDecision::Rotate {
            next: Generation::new(4),
        }
    }

    #[test]
    fn a_missing_token_is_missing_and_only_recorded_in_the_audit_trail() {
        let mut m = Mocks::untouchable();
        m.clock = fixed_clock();
        audited(&mut m, RefreshOutcome::MissingToken, None);
        assert_eq!(
            m.build().refresh(None, client()).unwrap_err(),
            RefreshError::Missing
        );
    }

    #[test]
    fn a_malformed_token_is_invalid_and_only_recorded_by_its_fingerprint() {
        let token = presented_token();
        let truncated = &token.expose()[..20];
        for bad in [
            "",
            "garbage",
            truncated,
            "twr_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            let mut m = Mocks::untouchable();
            m.clock = fixed_clock();
            audited(
                &mut m,
                RefreshOutcome::MalformedToken,
                Some(TokenFingerprint::of_presented(bad)),
            );
            assert_eq!(
                m.build().refresh(Some(bad), client()).unwrap_err(),
                RefreshError::Invalid
            );
        }
    }

    #[test]
    fn a_missing_token_whose_record_cannot_be_written_is_unexpected() {
        let mut m = Mocks::untouchable();
        m.clock = fixed_clock();
        m.audit
            .expect_record_refresh()
            .times(1)
            .return_const(Err(store_down()));
        assert_eq!(
            m.build().refresh(None, client()).unwrap_err(),
            RefreshError::Unexpected(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn the_anomaly_policy_goes_to_the_store_with_the_rotation() {
        let mut m = Mocks::new().signing_anything();
        let policy = AnomalyPolicy {
            window: std::time::Duration::from_secs(42),
            response: AnomalyResponse::LogOnly,
        };
        m.settings.anomaly = policy;
        m.sessions
            .expect_rotate()
            .withf(move |r| r.anomaly == policy)
            .times(1)
            .return_const(Ok(decided(rotate(), rotated_session(), alice())));
        m.audit.expect_record_refresh().never();

        assert!(refresh_presented(m).is_ok());
    }

    #[test]
    fn an_anomaly_answered_with_revocation_is_reported_as_an_anomaly() {
        let mut m = Mocks::new();
        m.sessions
            .expect_rotate()
            .times(1)
            .return_const(Ok(RotateOutcome::Decided {
                decision: RotationDecision::Reuse,
                presented: Generation::new(3),
                session: session_of(&alice()),
                user: alice(),
                revoked: vec![session_of(&alice()).id],
                anomaly: Some(AnomalyResponse::Revoke),
            }));
        m.signer.expect_sign().never();
        let s = session_of(&alice());

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Anomaly {
                session: s.id,
                user: s.user_id
            }
        );
    }

    #[test]
    fn an_anomaly_only_logged_still_issues_tokens() {
        let mut m = Mocks::new().signing_anything();
        m.sessions
            .expect_rotate()
            .times(1)
            .return_const(Ok(RotateOutcome::Decided {
                decision: rotate(),
                presented: Generation::new(3),
                session: rotated_session(),
                user: alice(),
                revoked: Vec::new(),
                anomaly: Some(AnomalyResponse::LogOnly),
            }));

        let issued = refresh_presented(m).unwrap();
        assert_eq!(issued.refresh_token, expected_successor());
    }

    #[test]
    fn a_rotation_passes_the_digest_of_the_presented_token_and_of_its_derived_successor() {
        let mut m = Mocks::new().signing_anything();
        m.settings.reuse_response = ReuseResponse::RevokeFamily;
        let lifetimes = m.settings.lifetimes.clone();
        m.sessions
            .expect_rotate()
            .withf(move |r| {
                r.presented == presented_token().digest()
                    && r.successor == expected_successor().digest()
                    && r.lifetimes == lifetimes
                    && r.reuse_response == ReuseResponse::RevokeFamily
                    && r.client == client()
                    && r.now == NOW
            })
            .times(1)
            .return_const(Ok(decided(rotate(), rotated_session(), alice())));

        assert!(refresh_presented(m).is_ok());
    }

    #[test]
    fn a_rotation_returns_the_successor_and_a_fresh_access_token() {
        let mut m = Mocks::new();
        rotating_to(&mut m, rotate());
        let access_ttl = m.settings.lifetimes.access_ttl;
        m.signer
            .expect_sign()
            .withf(move |c| {
                c.user_id == alice().id
                    && c.session_id == rotated_session().id
                    && c.roles == alice().roles
                    && c.issued_at == NOW
                    && c.expires_at == NOW.plus(access_ttl)
            })
            .times(1)
            .returning(|_| Ok("signed".to_owned()));

        let issued = refresh_presented(m).unwrap();

        assert_eq!(issued.refresh_token, expected_successor());
        assert_ne!(issued.refresh_token, presented_token());
        assert_eq!(issued.access_token, "signed");
        assert_eq!(issued.session_id, rotated_session().id);
        assert_eq!(issued.user, alice());
        assert_eq!(issued.refresh_expires_in, 7 * DAY);
        assert_eq!(
            issued.session_expires_in,
            NOW.until(rotated_session().expires_at)
        );
    }

    #[test]
    fn the_successor_is_derived_with_the_settings_refresh_secret() {
        let other = RefreshSecret::from_bytes([0x01; 32]);
        let successor = presented_token().successor(&other);
        assert_ne!(successor, expected_successor());
        let mut m = Mocks::new().signing_anything();
        m.settings.refresh_secret = other;
        m.sessions
            .expect_rotate()
            .withf(move |r| r.successor == successor.digest())
            .times(1)
            .return_const(Ok(decided(rotate(), rotated_session(), alice())));

        let issued = refresh_presented(m).unwrap();

        assert_eq!(
            issued.refresh_token,
            presented_token().successor(&RefreshSecret::from_bytes([0x01; 32]))
        );
    }

    #[test]
    fn a_grace_replay_returns_the_same_successor_as_the_rotation_did() {
        let mut m = Mocks::new().signing_anything();
        let successors: Arc<Mutex<Vec<TokenDigest>>> = Arc::default();
        let seen = Arc::clone(&successors);
        let mut decisions = vec![RotationDecision::GraceReplay, rotate()];
        m.sessions.expect_rotate().times(2).returning(move |r| {
            seen.lock().unwrap().push(r.successor);
            Ok(decided(
                decisions.pop().unwrap(),
                rotated_session(),
                alice(),
            ))
        });
        m.sessions.expect_revoke_all().never();
        m.sessions.expect_end_by_token().never();
        let warden = m.build();

        let first = warden
            .refresh(Some(presented_token().expose()), client())
            .unwrap();
        let replay = warden
            .refresh(Some(presented_token().expose()), client())
            .unwrap();

        assert_eq!(replay.refresh_token, first.refresh_token);
        assert_eq!(replay.refresh_token, expected_successor());
        assert_eq!(replay.session_id, first.session_id);
        assert_ne!(
            replay.access_token, first.access_token,
            "a fresh access token (new jti)"
        );
        let successors = successors.lock().unwrap();
        assert_eq!(*successors, vec![expected_successor().digest(); 2]);
    }

    #[test]
    fn an_unknown_token_is_invalid_and_signs_nothing() {
        let mut m = Mocks::new();
        m.sessions
            .expect_rotate()
            .times(1)
            .return_const(Ok(RotateOutcome::UnknownToken));
        m.signer.expect_sign().never();

        assert_eq!(refresh_presented(m).unwrap_err(), RefreshError::Invalid);
    }

    #[test]
    fn a_reused_token_is_reported_with_its_session() {
        let mut m = Mocks::new();
        rotating_to(&mut m, RotationDecision::Reuse);
        m.signer.expect_sign().never();
        let s = session_of(&alice());

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Reused {
                session: s.id,
                user: s.user_id
            }
        );
    }

    #[test]
    fn an_idle_token_is_reported_expired_with_its_kind_and_session() {
        let mut m = Mocks::new();
        rotating_to(&mut m, RotationDecision::Expired(ExpiryKind::Idle));
        m.signer.expect_sign().never();
        let s = session_of(&alice());

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Expired {
                kind: ExpiryKind::Idle,
                session: s.id,
                user: s.user_id
            }
        );
    }

    #[test]
    fn a_token_past_the_absolute_lifetime_is_reported_expired_absolute() {
        let mut m = Mocks::new();
        rotating_to(&mut m, RotationDecision::Expired(ExpiryKind::Absolute));
        m.signer.expect_sign().never();
        let s = session_of(&alice());

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Expired {
                kind: ExpiryKind::Absolute,
                session: s.id,
                user: s.user_id
            }
        );
    }

    #[test]
    fn a_token_of_a_revoked_session_is_reported_revoked_with_its_session() {
        let mut m = Mocks::new();
        rotating_to(&mut m, RotationDecision::Revoked);
        m.signer.expect_sign().never();
        let s = session_of(&alice());

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Revoked {
                session: s.id,
                user: s.user_id
            }
        );
    }

    #[test]
    fn a_store_failure_during_rotation_is_unexpected_store_and_recorded_as_an_error() {
        let mut m = Mocks::new();
        m.sessions
            .expect_rotate()
            .times(1)
            .return_const(Err(store_down()));
        m.signer.expect_sign().never();
        audited(
            &mut m,
            RefreshOutcome::Error,
            Some(TokenFingerprint::of_digest(&presented_token().digest())),
        );

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Unexpected(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn a_signer_failure_after_rotation_is_unexpected_crypto() {
        let mut m = Mocks::new();
        rotating_to(&mut m, rotate());
        m.signer
            .expect_sign()
            .times(1)
            .returning(|_| Err(crypto_broken()));

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Unexpected(Unexpected::Crypto(crypto_broken()))
        );
    }

    #[test]
    fn the_sessions_a_theft_response_revoked_go_on_the_list_until_their_access_tokens_expire() {
        let mut m = Mocks::new().strict_revocations();
        m.settings.clock_leeway = std::time::Duration::from_secs(5);
        let access_ttl = m.settings.lifetimes.access_ttl;
        let other = domain::SessionId::from_random_bytes([0x0e; 16]);
        let s = session_of(&alice());
        m.sessions.expect_rotate().times(1).returning(move |_| {
            Ok(RotateOutcome::Decided {
                decision: RotationDecision::Reuse,
                presented: Generation::new(3),
                session: session_of(&alice()),
                user: alice(),
                revoked: vec![s.id, other],
                anomaly: None,
            })
        });
        m.revocations
            .expect_revoke()
            .withf(move |entries| {
                let until = NOW.plus(access_ttl).plus(std::time::Duration::from_secs(5));
                entries
                    == [
                        crate::ports::Revocation {
                            key: RevocationKey::Session(s.id),
                            expires_at: until,
                        },
                        crate::ports::Revocation {
                            key: RevocationKey::Session(other),
                            expires_at: until,
                        },
                    ]
            })
            .times(1)
            .return_const(Ok(()));
        m.signer.expect_sign().never();

        assert!(matches!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Reused { .. }
        ));
    }

    #[test]
    fn a_list_that_fails_to_take_the_theft_response_does_not_change_the_answer() {
        let mut m = Mocks::new().strict_revocations();
        m.sessions.expect_rotate().times(1).returning(|_| {
            Ok(RotateOutcome::Decided {
                decision: RotationDecision::Reuse,
                presented: Generation::new(3),
                session: session_of(&alice()),
                user: alice(),
                revoked: vec![session_of(&alice()).id],
                anomaly: None,
            })
        });
        m.revocations
            .expect_revoke()
            .times(1)
            .return_const(Err(store_down()));

        assert!(matches!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Reused { .. }
        ));
    }

    #[test]
    fn a_rotation_of_a_session_on_the_list_is_refused_as_revoked() {
        let mut m = Mocks::new().strict_revocations();
        rotating_to(&mut m, rotate());
        let sid = rotated_session().id;
        m.revocations
            .expect_check()
            .withf(move |keys, now, consistency| {
                keys == [RevocationKey::Session(sid)]
                    && *now == NOW
                    && *consistency == Consistency::Cached
            })
            .times(1)
            .return_const(Ok(Some(RevocationKey::Session(sid))));
        m.signer.expect_sign().never();

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Revoked {
                session: sid,
                user: alice().id
            }
        );
    }

    #[test]
    fn a_list_that_cannot_be_asked_refuses_the_refresh() {
        let mut m = Mocks::new().strict_revocations();
        rotating_to(&mut m, rotate());
        m.revocations
            .expect_check()
            .times(1)
            .return_const(Err(store_down()));
        m.signer.expect_sign().never();

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Unexpected(Unexpected::Store(store_down()))
        );
    }
}
