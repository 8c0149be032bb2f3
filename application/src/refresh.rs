//! Use case: exchange a refresh token for a new token pair (rotation).
//!
//! Every call leaves exactly one audit record: the store writes it inside
//! the rotation's transaction; a refresh refused before that transaction
//! (no token, a malformed or unknown one, a revocation list that cannot
//! answer) is recorded here. Everything that can refuse a refresh is
//! decided before the rotation commits ("a refusal spends nothing"): the
//! revocation list is asked first; the DPoP binding, and the proof's `jti`,
//! inside the rotation's own transaction.

use domain::{
    ExpiryKind, RefreshAttempt, RefreshOutcome, RefreshToken, RotationDecision, SessionId,
    Timestamp, TokenFingerprint, UserId,
};

use crate::dpop::DpopInput;
use crate::ports::{
    ClientInfo, Consistency, RevocationKey, RotateOutcome, RotateRequest, TokenLocation,
};
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
    /// The session is bound to a DPoP key and no valid proof by it came
    /// with the token: nothing was spent, nothing revoked.
    #[error("no DPoP proof by the session's key")]
    DpopMismatch { session: SessionId, user: UserId },
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl TokenWarden {
    /// Rotates `token`: the successor is derived from it with the server's
    /// secret, so a grace replay or a retry gets the very same successor.
    /// `dpop` is the request's `DPoP` header, if any: a session bound to a
    /// key needs a valid proof by it; an unbound session ignores it.
    ///
    /// A session on the revocation list is refused before anything is
    /// written; the session row, read in the rotation's transaction, stays
    /// the authority. Sessions a theft response revoked go on the list.
    ///
    /// # Errors
    /// See [`RefreshError`]. When storage or the revocation list fails,
    /// [`RefreshError::Unexpected`] and nothing was spent (not even the
    /// proof's `jti`).
    pub fn refresh(
        &self,
        token: Option<&str>,
        dpop: Option<&DpopInput>,
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
        let digest = presented.digest();
        let fingerprint = TokenFingerprint::of_digest(&digest);
        // A failure before the rotation's transaction changed nothing;
        // record it on its own if storage still lets us. The caller hears
        // about the original error either way.
        let failed = |location: Option<&TokenLocation>, e: Unexpected| {
            let _ =
                self.record_located(RefreshOutcome::Error, location, &fingerprint, &client, now);
            RefreshError::Unexpected(e)
        };
        let location = match self.ports.sessions.locate(&digest) {
            Ok(Some(location)) => location,
            Ok(None) => {
                self.record_refresh_attempt(
                    RefreshOutcome::UnknownToken,
                    Some(fingerprint.clone()),
                    &client,
                    now,
                )?;
                return Err(RefreshError::Invalid);
            }
            Err(e) => return Err(failed(None, e.into())),
        };
        let sid = location.session;
        // Checked here (no I/O); for a bound session its `jti` is recorded
        // by the rotation, and a refused one is no proof (the plan decides).
        // An unbound session binds to nothing, but a proof that came with
        // it must still be valid (RFC 9449 §5): a bad one is refused
        // before anything is spent.
        let proof = match dpop {
            Some(input) if location.bound => self.proof_or_none(Some(input), "refresh", now),
            Some(input) => {
                if let Err(why) = self.check_proof_input(input, None, now) {
                    tracing::info!(reason = %why, "DPoP proof refused at the refresh of an unbound session");
                    self.record_located(
                        RefreshOutcome::DpopMismatch,
                        Some(&location),
                        &fingerprint,
                        &client,
                        now,
                    )?;
                    return Err(RefreshError::DpopMismatch {
                        session: sid,
                        user: location.user,
                    });
                }
                None
            }
            None => None,
        };
        // Asked before the rotation, so that a list that cannot answer
        // (Redis down under `fail_closed`) refuses without spending. A
        // session on the list still goes through the plan, which finds it
        // ended in the database (the record of every revocation) and
        // records what a rotated token of it means (`reuse_after_end`).
        let listed = match self.ports.revocations.check(
            &[RevocationKey::Session(sid)],
            now,
            Consistency::Cached,
        ) {
            Ok(listed) => listed.is_some(),
            Err(e) => return Err(failed(Some(&location), e.into())),
        };
        let successor = presented.successor(&self.settings.refresh_secret);
        let rotated = self.ports.sessions.rotate(RotateRequest {
            presented: digest,
            location,
            successor: successor.digest(),
            policy: self.settings.rotation_policy(),
            client: client.clone(),
            now,
            proof,
        });
        let (decision, session, user, revoked) = match rotated {
            // The rotation rolled back, its audit record with it.
            Err(e) => return Err(failed(Some(&location), e.into())),
            Ok(RotateOutcome::UnknownToken) => return Err(RefreshError::Invalid),
            Ok(RotateOutcome::Decided {
                decision,
                session,
                user,
                revoked,
                ..
            }) => (decision, session, user, revoked),
        };
        self.publish_revoked_sessions(&revoked, now);
        let (session_id, user_id) = (session.id, user.id);
        match decision {
            // Only if the list and the database disagree, which the
            // database being the record of every revocation rules out.
            _ if listed && decision.accepts() => {
                tracing::error!(session_id = %sid, "session on the revocation list but live in the database");
                Err(RefreshError::Revoked {
                    session: session_id,
                    user: user_id,
                })
            }
            RotationDecision::Rotate { .. }
            | RotationDecision::GraceReplay
            | RotationDecision::Retry => Ok(self.issue(&session, user, successor, now)?),
            RotationDecision::Reuse => Err(RefreshError::Reused {
                session: session_id,
                user: user_id,
            }),
            RotationDecision::Anomaly => Err(RefreshError::Anomaly {
                session: session_id,
                user: user_id,
            }),
            RotationDecision::DpopMismatch => Err(RefreshError::DpopMismatch {
                session: session_id,
                user: user_id,
            }),
            RotationDecision::Expired(kind) => Err(RefreshError::Expired {
                kind,
                session: session_id,
                user: user_id,
            }),
            RotationDecision::Revoked => Err(RefreshError::Revoked {
                session: session_id,
                user: user_id,
            }),
        }
    }

    /// Records a refresh refused before the rotation's transaction, with the
    /// user and session of the token when it was located.
    fn record_located(
        &self,
        outcome: RefreshOutcome,
        location: Option<&TokenLocation>,
        fingerprint: &TokenFingerprint,
        client: &ClientInfo,
        now: Timestamp,
    ) -> Result<(), Unexpected> {
        self.ports.audit.record_refresh(RefreshAttempt {
            at: now,
            outcome,
            user_id: location.map(|l| l.user),
            session_id: location.map(|l| l.session),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            fingerprint: Some(fingerprint.clone()),
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use domain::{
        AnomalyPolicy, AnomalyResponse, Generation, RefreshSecret, ReuseResponse, Session,
        TokenDigest, User,
    };

    use super::*;
    use crate::test_support::{
        alice, checked_proof, client, crypto_broken, expected_successor, fixed_clock,
        presented_token, proof_input, session_of, store_down, with_dpop_in_the_transaction, Mocks,
        DAY, NOW,
    };
    use domain::ProofRejection;

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
            outcome: RefreshOutcome::Success,
            presented: Generation::new(3),
            session,
            user,
            revoked: Vec::new(),
            event: None,
        }
    }

    /// Where alice's presented token belongs.
    fn location(bound: bool) -> TokenLocation {
        let s = session_of(&alice());
        TokenLocation {
            session: s.id,
            user: s.user_id,
            generation: Generation::new(3),
            bound,
        }
    }

    /// The store finds the presented token in alice's (unbound) session.
    fn located(m: &mut Mocks) {
        located_as(m, false);
    }

    fn located_as(m: &mut Mocks, bound: bool) {
        m.sessions
            .expect_locate()
            .withf(|d| *d == presented_token().digest())
            .times(1)
            .return_const(Ok(Some(location(bound))));
    }

    /// The audit trail expects exactly one standalone record of `outcome`
    /// for alice's located token.
    fn audited_located(m: &mut Mocks, outcome: RefreshOutcome) {
        let l = location(false);
        m.audit
            .expect_record_refresh()
            .withf(move |a| {
                *a == RefreshAttempt {
                    at: NOW,
                    outcome,
                    user_id: Some(l.user),
                    session_id: Some(l.session),
                    ip: client().ip,
                    user_agent: client().user_agent,
                    fingerprint: Some(TokenFingerprint::of_digest(&presented_token().digest())),
                }
            })
            .times(1)
            .return_const(Ok(()));
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
        located(m);
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
            .refresh(Some(presented_token().expose()), None, client())
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
            m.build().refresh(None, None, client()).unwrap_err(),
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
                m.build().refresh(Some(bad), None, client()).unwrap_err(),
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
            m.build().refresh(None, None, client()).unwrap_err(),
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
        located(&mut m);
        m.sessions
            .expect_rotate()
            .withf(move |r| r.policy.anomaly == policy)
            .times(1)
            .return_const(Ok(decided(rotate(), rotated_session(), alice())));
        m.audit.expect_record_refresh().never();

        assert!(refresh_presented(m).is_ok());
    }

    #[test]
    fn an_anomaly_answered_with_revocation_is_reported_as_an_anomaly() {
        let mut m = Mocks::new();
        located(&mut m);
        m.sessions
            .expect_rotate()
            .times(1)
            .return_const(Ok(RotateOutcome::Decided {
                decision: RotationDecision::Anomaly,
                outcome: RefreshOutcome::Anomaly,
                presented: Generation::new(3),
                session: session_of(&alice()),
                user: alice(),
                revoked: vec![session_of(&alice()).id],
                event: Some(domain::SecurityEventKind::Anomaly),
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
        located(&mut m);
        m.sessions
            .expect_rotate()
            .times(1)
            .return_const(Ok(RotateOutcome::Decided {
                decision: rotate(),
                outcome: RefreshOutcome::AnomalyLogged,
                presented: Generation::new(3),
                session: rotated_session(),
                user: alice(),
                revoked: Vec::new(),
                event: Some(domain::SecurityEventKind::Anomaly),
            }));

        let issued = refresh_presented(m).unwrap();
        assert_eq!(issued.refresh_token, expected_successor());
    }

    #[test]
    fn a_rotation_passes_the_digest_of_the_presented_token_and_of_its_derived_successor() {
        let mut m = Mocks::new().signing_anything();
        m.settings.reuse_response = ReuseResponse::RevokeFamily;
        let policy = m.settings.rotation_policy();
        located(&mut m);
        m.sessions
            .expect_rotate()
            .withf(move |r| {
                r.presented == presented_token().digest()
                    && r.location == location(false)
                    && r.successor == expected_successor().digest()
                    && r.policy == policy
                    && r.policy.reuse_response == ReuseResponse::RevokeFamily
                    && r.proof.is_none()
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
        located(&mut m);
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
        m.sessions
            .expect_locate()
            .times(2)
            .return_const(Ok(Some(location(false))));
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
            .refresh(Some(presented_token().expose()), None, client())
            .unwrap();
        let replay = warden
            .refresh(Some(presented_token().expose()), None, client())
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
    fn an_unknown_token_is_invalid_signs_nothing_and_is_recorded_by_its_fingerprint() {
        let mut m = Mocks::new();
        m.sessions.expect_locate().times(1).return_const(Ok(None));
        m.sessions.expect_rotate().never();
        m.signer.expect_sign().never();
        audited(
            &mut m,
            RefreshOutcome::UnknownToken,
            Some(TokenFingerprint::of_digest(&presented_token().digest())),
        );

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
        located(&mut m);
        m.sessions
            .expect_rotate()
            .times(1)
            .return_const(Err(store_down()));
        m.signer.expect_sign().never();
        audited_located(&mut m, RefreshOutcome::Error);

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
        located(&mut m);
        m.revocations.expect_check().return_const(Ok(None));
        m.sessions.expect_rotate().times(1).returning(move |_| {
            Ok(RotateOutcome::Decided {
                decision: RotationDecision::Reuse,
                outcome: RefreshOutcome::Reused,
                presented: Generation::new(3),
                session: session_of(&alice()),
                user: alice(),
                revoked: vec![s.id, other],
                event: Some(domain::SecurityEventKind::TokenReuse),
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
        located(&mut m);
        m.revocations.expect_check().return_const(Ok(None));
        m.sessions.expect_rotate().times(1).returning(|_| {
            Ok(RotateOutcome::Decided {
                decision: RotationDecision::Reuse,
                outcome: RefreshOutcome::Reused,
                presented: Generation::new(3),
                session: session_of(&alice()),
                user: alice(),
                revoked: vec![session_of(&alice()).id],
                event: Some(domain::SecurityEventKind::TokenReuse),
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
    fn a_session_on_the_list_goes_through_the_plan_and_is_never_honoured() {
        let mut m = Mocks::new().strict_revocations();
        rotating_to(&mut m, RotationDecision::Revoked);
        let sid = location(false).session;
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
    fn a_session_on_the_list_is_never_honoured_even_if_the_store_disagrees() {
        let mut m = Mocks::new().strict_revocations();
        rotating_to(&mut m, rotate());
        m.revocations
            .expect_check()
            .times(1)
            .return_const(Ok(Some(RevocationKey::Session(location(false).session))));
        m.signer.expect_sign().never();

        assert!(matches!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Revoked { .. }
        ));
    }

    #[test]
    fn a_list_that_cannot_be_asked_refuses_the_refresh_and_spends_nothing() {
        let mut m = Mocks::new().strict_revocations();
        located(&mut m);
        m.revocations
            .expect_check()
            .times(1)
            .return_const(Err(store_down()));
        m.sessions.expect_rotate().never();
        m.signer.expect_sign().never();
        audited_located(&mut m, RefreshOutcome::Error);

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::Unexpected(Unexpected::Store(store_down()))
        );
    }

    #[test]
    fn a_store_that_cannot_locate_the_token_refuses_the_refresh() {
        let mut m = Mocks::new();
        m.sessions
            .expect_locate()
            .times(1)
            .return_const(Err(store_down()));
        m.sessions.expect_rotate().never();
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
    fn a_retry_returns_the_same_successor_as_the_rotation_did() {
        let mut m = Mocks::new().signing_anything();
        rotating_to(&mut m, RotationDecision::Retry);

        let issued = refresh_presented(m).unwrap();

        assert_eq!(issued.refresh_token, expected_successor());
    }

    #[test]
    fn a_dpop_mismatch_is_reported_with_its_session_and_issues_nothing() {
        let mut m = Mocks::new();
        rotating_to(&mut m, RotationDecision::DpopMismatch);
        m.signer.expect_sign().never();
        let s = session_of(&alice());

        assert_eq!(
            refresh_presented(m).unwrap_err(),
            RefreshError::DpopMismatch {
                session: s.id,
                user: s.user_id
            }
        );
    }

    #[test]
    fn a_valid_proof_goes_to_the_rotation_whose_transaction_records_its_jti() {
        let mut m = Mocks::new().signing_anything();
        located_as(&mut m, true);
        m.sessions
            .expect_rotate()
            .withf(|r| r.proof == Some(checked_proof()))
            .times(1)
            .return_const(Ok(decided(rotate(), rotated_session(), alice())));
        // The standalone replay store is never asked: one `jti` insert, in
        // the rotation's transaction.
        let warden = with_dpop_in_the_transaction(m.build(), Ok(()));

        assert!(warden
            .refresh(
                Some(presented_token().expose()),
                Some(&proof_input()),
                client()
            )
            .is_ok());
    }

    #[test]
    fn a_refused_proof_leaves_the_plan_without_a_key() {
        let mut m = Mocks::new();
        located_as(&mut m, true);
        m.sessions
            .expect_rotate()
            .withf(|r| r.proof.is_none())
            .times(1)
            .return_const(Ok(decided(
                RotationDecision::DpopMismatch,
                session_of(&alice()),
                alice(),
            )));
        let warden = with_dpop_in_the_transaction(m.build(), Err(ProofRejection::BadSignature));

        assert!(matches!(
            warden.refresh(
                Some(presented_token().expose()),
                Some(&proof_input()),
                client()
            ),
            Err(RefreshError::DpopMismatch { .. })
        ));
    }

    #[test]
    fn an_unbound_session_rotates_with_a_valid_proof_and_records_no_jti() {
        let mut m = Mocks::new().signing_anything();
        located(&mut m);
        m.sessions
            .expect_rotate()
            .withf(|r| r.proof.is_none())
            .times(1)
            .return_const(Ok(decided(rotate(), rotated_session(), alice())));
        let warden = with_dpop_in_the_transaction(m.build(), Ok(()));

        assert!(warden
            .refresh(
                Some(presented_token().expose()),
                Some(&proof_input()),
                client()
            )
            .is_ok());
    }

    #[test]
    fn an_unbound_session_refuses_a_bad_proof_before_spending_anything() {
        let mut m = Mocks::new();
        located(&mut m);
        m.sessions.expect_rotate().never();
        m.audit
            .expect_record_refresh()
            .withf(|a| a.outcome == RefreshOutcome::DpopMismatch && a.session_id.is_some())
            .times(1)
            .return_const(Ok(()));
        m.signer.expect_sign().never();
        let warden = with_dpop_in_the_transaction(m.build(), Err(ProofRejection::BadSignature));

        assert!(matches!(
            warden.refresh(
                Some(presented_token().expose()),
                Some(&proof_input()),
                client()
            ),
            Err(RefreshError::DpopMismatch { .. })
        ));
    }
}
