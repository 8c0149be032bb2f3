use super::*;
use proptest::prelude::*;

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";
const FIREFOX_MINOR: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.1";
const CURL: &str = "curl/8.5.0";
const HOME: &str = "198.51.100.7";
const HOME_NEIGHBOUR: &str = "198.51.100.99";
const AWAY: &str = "203.0.113.9";

fn policy() -> RotationPolicy {
    RotationPolicy {
        idle_ttl: Duration::from_secs(100),
        grace: Duration::from_secs(10),
        retry_window: Duration::from_secs(60),
        reuse_response: ReuseResponse::RevokeAll,
        anomaly: AnomalyPolicy {
            window: Duration::ZERO,
            response: AnomalyResponse::Revoke,
        },
    }
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_millis(secs * 1_000)
}

fn client(ip: &'static str, ua: &'static str) -> Sighting<'static> {
    Sighting {
        at: at(0),
        ip: Some(ip),
        user_agent: Some(ua),
    }
}

fn home() -> Sighting<'static> {
    client(HOME, FIREFOX)
}

fn fresh(at_ms: i64) -> SessionState {
    SessionState {
        generation: Generation::FIRST,
        ended: None,
        rotated_at: Timestamp::from_millis(at_ms),
        expires_at: Timestamp::from_millis(at_ms + 1_000_000),
        rotated_by: Some(FIREFOX.to_owned()),
        rotated_from: Some(HOME.to_owned()),
        last_use: LastUse {
            at: Timestamp::from_millis(at_ms),
            ip: Some(HOME.to_owned()),
            user_agent: Some(FIREFOX.to_owned()),
        },
        bound_to: None,
    }
}

fn token(n: u32) -> PresentedToken<'static> {
    PresentedToken {
        generation: Generation::new(n),
        proof_key: None,
    }
}

/// `fresh(0)` rotated once, at `secs`, from home.
fn rotated_at(secs: i64) -> SessionState {
    plan(&fresh(0), token(0), &home(), &policy(), at(secs)).state
}

fn decision(state: &SessionState, n: u32, client: &Sighting<'_>, secs: i64) -> RotationDecision {
    plan(state, token(n), client, &policy(), at(secs)).decision
}

fn key(byte: u8) -> Jkt {
    use base64::Engine as _;
    Jkt::parse(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([byte; 32])).unwrap()
}

#[test]
fn the_current_token_rotates_into_the_next_generation_and_is_counted_a_success() {
    let p = plan(&fresh(0), token(0), &home(), &policy(), at(1));
    assert_eq!(
        p.decision,
        RotationDecision::Rotate {
            next: Generation::new(1)
        }
    );
    assert_eq!(p.outcome, RefreshOutcome::Success);
    assert_eq!(p.state.generation, Generation::new(1));
    assert_eq!(p.state.rotated_at, at(1));
    assert_eq!(p.revoke, None);
    assert_eq!(p.event, None);
}

#[test]
fn a_parent_replayed_inside_the_grace_window_by_the_same_client_is_a_grace_replay() {
    let s = rotated_at(5);
    let p = plan(&s, token(0), &home(), &policy(), at(14));
    assert_eq!(p.decision, RotationDecision::GraceReplay);
    assert_eq!(p.outcome, RefreshOutcome::GraceReplay);
    assert_eq!(p.state.generation, s.generation, "no new successor");
    assert_eq!(p.revoke, None);
}

#[test]
fn a_browser_update_and_a_neighbouring_address_keep_the_grace_window() {
    let s = rotated_at(5);
    assert_eq!(
        decision(&s, 0, &client(HOME_NEIGHBOUR, FIREFOX_MINOR), 6),
        RotationDecision::GraceReplay
    );
}

#[test]
fn a_parent_replayed_by_another_user_agent_family_is_reuse_even_inside_the_window() {
    let s = rotated_at(5);
    let p = plan(&s, token(0), &client(HOME, CURL), &policy(), at(6));
    assert_eq!(p.decision, RotationDecision::Reuse);
    assert_eq!(p.outcome, RefreshOutcome::Reused);
    assert_eq!(
        p.revoke,
        Some(PlannedRevocation {
            scope: RevocationScope::User,
            reason: RevocationReason::TokenReuse
        })
    );
    assert_eq!(
        p.event.map(|e| e.kind()),
        Some(SecurityEventKind::TokenReuse)
    );
    assert!(p.state.ended.is_some());
}

#[test]
fn a_grace_replay_from_another_network_is_reuse() {
    let s = rotated_at(5);
    assert_eq!(
        decision(&s, 0, &client(AWAY, FIREFOX), 6),
        RotationDecision::Reuse
    );
}

#[test]
fn a_parent_replayed_after_the_grace_window_by_the_same_client_is_a_retry() {
    let s = rotated_at(5);
    let p = plan(&s, token(0), &home(), &policy(), at(15));
    assert_eq!(p.decision, RotationDecision::Retry);
    assert_eq!(p.outcome, RefreshOutcome::Retry);
    assert_eq!(p.revoke, None);
    assert_eq!(p.event, None);
    assert_eq!(p.state.generation, s.generation);
}

#[test]
fn a_retry_from_another_network_or_device_is_reuse() {
    let s = rotated_at(5);
    assert_eq!(
        decision(&s, 0, &client(AWAY, FIREFOX), 20),
        RotationDecision::Reuse
    );
    assert_eq!(
        decision(&s, 0, &client(HOME, CURL), 20),
        RotationDecision::Reuse
    );
}

#[test]
fn a_parent_replayed_after_the_retry_window_is_reuse() {
    let s = rotated_at(5);
    assert_eq!(decision(&s, 0, &home(), 64), RotationDecision::Retry);
    assert_eq!(decision(&s, 0, &home(), 65), RotationDecision::Reuse);
}

#[test]
fn a_zero_retry_window_leaves_only_the_grace_window() {
    let s = rotated_at(5);
    let p = RotationPolicy {
        retry_window: Duration::ZERO,
        ..policy()
    };
    assert_eq!(
        plan(&s, token(0), &home(), &p, at(14)).decision,
        RotationDecision::GraceReplay
    );
    assert_eq!(
        plan(&s, token(0), &home(), &p, at(15)).decision,
        RotationDecision::Reuse
    );
}

#[test]
fn a_grandparent_is_reuse_even_inside_the_windows() {
    let s = plan(&rotated_at(1), token(1), &home(), &policy(), at(2)).state;
    assert_eq!(decision(&s, 0, &home(), 3), RotationDecision::Reuse);
}

#[test]
fn zero_windows_turn_every_replay_into_reuse() {
    let s = rotated_at(5);
    let p = RotationPolicy {
        grace: Duration::ZERO,
        retry_window: Duration::ZERO,
        ..policy()
    };
    assert_eq!(
        plan(&s, token(0), &home(), &p, at(5)).decision,
        RotationDecision::Reuse
    );
}

#[test]
fn an_idle_token_has_expired() {
    assert_eq!(
        decision(&fresh(0), 0, &home(), 100),
        RotationDecision::Expired(ExpiryKind::Idle)
    );
}

#[test]
fn a_rotated_token_stays_reuse_after_its_idle_deadline() {
    assert_eq!(
        decision(&rotated_at(1), 0, &home(), 500),
        RotationDecision::Reuse
    );
}

#[test]
fn nothing_is_honoured_after_the_absolute_lifetime() {
    let s = SessionState {
        expires_at: at(50),
        ..fresh(0)
    };
    assert_eq!(
        decision(&s, 0, &home(), 50),
        RotationDecision::Expired(ExpiryKind::Absolute)
    );
}

#[test]
fn an_ended_session_answers_revoked_for_any_token_and_revokes_nothing() {
    let s = SessionState {
        ended: Some(Ended {
            at: at(1),
            reason: Some(RevocationReason::TokenReuse),
        }),
        ..rotated_at(1)
    };
    for g in 0..3 {
        let p = plan(&s, token(g), &home(), &policy(), at(2));
        assert_eq!(p.decision, RotationDecision::Revoked);
        assert_eq!((p.revoke, p.event), (None, None));
    }
}

#[test]
fn a_rotated_token_of_a_session_ended_by_logout_is_recorded_as_reuse_after_end() {
    let s = SessionState {
        ended: Some(Ended {
            at: at(3),
            reason: Some(RevocationReason::Logout),
        }),
        ..rotated_at(1)
    };
    let p = plan(&s, token(0), &home(), &policy(), at(4));
    assert_eq!(p.decision, RotationDecision::Revoked);
    assert_eq!(p.revoke, None, "no further revocation");
    assert_eq!(
        p.event,
        Some(PlannedEvent::ReuseAfterEnd {
            presented: Generation::new(0),
            current: Generation::new(1),
            ended_at: at(3)
        })
    );
    let current = plan(&s, token(1), &home(), &policy(), at(4));
    assert_eq!(
        current.event, None,
        "the last token after a logout is no evidence"
    );
}

#[test]
fn a_rotated_token_of_a_session_ended_any_way_but_by_a_theft_response_is_reuse_after_end() {
    let ended_by = |reason| SessionState {
        ended: Some(Ended {
            at: at(3),
            reason: Some(reason),
        }),
        ..rotated_at(1)
    };
    for reason in RevocationReason::ALL {
        let p = plan(&ended_by(reason), token(0), &home(), &policy(), at(4));
        assert_eq!(p.decision, RotationDecision::Revoked);
        assert_eq!(p.revoke, None, "{reason:?}: no further revocation");
        let theft_response = matches!(
            reason,
            RevocationReason::TokenReuse | RevocationReason::Anomaly
        );
        assert_eq!(
            p.event.map(|e| e.kind()),
            (!theft_response).then_some(SecurityEventKind::ReuseAfterEnd),
            "{reason:?}"
        );
    }
}

#[test]
fn an_anomaly_under_revoke_is_a_theft_response() {
    let p = RotationPolicy {
        anomaly: AnomalyPolicy {
            window: Duration::from_secs(600),
            response: AnomalyResponse::Revoke,
        },
        ..policy()
    };
    let plan = plan(&fresh(0), token(0), &client(AWAY, CURL), &p, at(1));
    assert_eq!(plan.decision, RotationDecision::Anomaly);
    assert_eq!(plan.outcome, RefreshOutcome::Anomaly);
    assert_eq!(
        plan.revoke.map(|r| r.reason),
        Some(RevocationReason::Anomaly)
    );
    assert_eq!(
        plan.event.map(|e| e.kind()),
        Some(SecurityEventKind::Anomaly)
    );
}

#[test]
fn a_bound_session_s_key_holder_is_never_an_anomaly() {
    let p = RotationPolicy {
        anomaly: AnomalyPolicy {
            window: Duration::from_secs(600),
            response: AnomalyResponse::Revoke,
        },
        ..policy()
    };
    let bound = SessionState {
        bound_to: Some(key(1)),
        ..fresh(0)
    };
    let holder = PresentedToken {
        generation: Generation::new(0),
        proof_key: Some(&key(1)),
    };
    let plan = plan(&bound, holder, &client(AWAY, CURL), &p, at(1));
    assert!(matches!(plan.decision, RotationDecision::Rotate { .. }));
    assert_eq!(plan.outcome, RefreshOutcome::Success);
    assert_eq!((plan.revoke, plan.event), (None, None));
}

#[test]
fn an_anomaly_under_log_only_rotates_and_is_recorded() {
    let p = RotationPolicy {
        anomaly: AnomalyPolicy {
            window: Duration::from_secs(600),
            response: AnomalyResponse::LogOnly,
        },
        ..policy()
    };
    let plan = plan(&fresh(0), token(0), &client(AWAY, CURL), &p, at(1));
    assert!(matches!(plan.decision, RotationDecision::Rotate { .. }));
    assert_eq!(plan.outcome, RefreshOutcome::AnomalyLogged);
    assert_eq!(plan.revoke, None);
    assert_eq!(
        plan.event,
        Some(PlannedEvent::Anomaly {
            previous: fresh(0).last_use,
            revoked: None
        })
    );
}

#[test]
fn a_bound_session_refuses_a_token_without_a_proof_by_its_key_and_spends_nothing() {
    let bound = SessionState {
        bound_to: Some(key(1)),
        ..fresh(0)
    };
    let other = key(2);
    for proof_key in [None, Some(&other)] {
        let p = plan(
            &bound,
            PresentedToken {
                generation: Generation::FIRST,
                proof_key,
            },
            &home(),
            &policy(),
            at(1),
        );
        assert_eq!(p.decision, RotationDecision::DpopMismatch);
        assert_eq!(p.outcome, RefreshOutcome::DpopMismatch);
        assert_eq!(p.state, bound, "nothing spent");
        assert_eq!(p.revoke, None, "the victim keeps the session");
        assert_eq!(
            p.event.map(|e| e.kind()),
            Some(SecurityEventKind::DpopMismatch)
        );
    }
    let bound_key = key(1);
    let p = plan(
        &bound,
        PresentedToken {
            generation: Generation::FIRST,
            proof_key: Some(&bound_key),
        },
        &home(),
        &policy(),
        at(1),
    );
    assert!(matches!(p.decision, RotationDecision::Rotate { .. }));
}

#[test]
fn the_key_holder_of_a_bound_session_may_retry_from_another_network_but_not_another_browser() {
    let s = SessionState {
        bound_to: Some(key(1)),
        ..rotated_at(5)
    };
    let bound_key = key(1);
    let replay = |ua, secs| {
        plan(
            &s,
            PresentedToken {
                generation: Generation::FIRST,
                proof_key: Some(&bound_key),
            },
            &client(AWAY, ua),
            &policy(),
            at(secs),
        )
        .decision
    };
    assert_eq!(replay(FIREFOX, 6), RotationDecision::GraceReplay);
    assert_eq!(replay(FIREFOX, 20), RotationDecision::Retry);
    assert_eq!(replay(CURL, 20), RotationDecision::Reuse);
    // Unbound, the same replay from another network is reuse.
    assert_eq!(
        decision(&rotated_at(5), 0, &client(AWAY, FIREFOX), 20),
        RotationDecision::Reuse
    );
}

#[test]
fn an_old_token_of_a_bound_session_without_its_key_revokes_nothing() {
    let s = SessionState {
        bound_to: Some(key(1)),
        ..rotated_at(1)
    };
    assert_eq!(
        decision(&s, 0, &client(AWAY, CURL), 50),
        RotationDecision::DpopMismatch
    );
}

#[test]
fn an_unbound_session_ignores_a_proof() {
    let k = key(9);
    let p = plan(
        &fresh(0),
        PresentedToken {
            generation: Generation::FIRST,
            proof_key: Some(&k),
        },
        &home(),
        &policy(),
        at(1),
    );
    assert!(matches!(p.decision, RotationDecision::Rotate { .. }));
}

#[test]
fn a_logout_ends_a_live_session_with_any_of_its_tokens_and_never_a_theft_response() {
    let s = rotated_at(1);
    for g in [0, 1] {
        let p = plan_end(
            &s,
            token(g),
            &client(AWAY, CURL),
            EndVia::Logout,
            &policy(),
            at(50),
        );
        assert_eq!(p.decision, EndDecision::Ended);
        assert_eq!(
            p.revoke,
            Some(PlannedRevocation {
                scope: RevocationScope::Session,
                reason: RevocationReason::Logout
            })
        );
        assert_eq!(p.event, None);
    }
    let idle = plan_end(&s, token(1), &home(), EndVia::Logout, &policy(), at(101));
    assert_eq!(idle.decision, EndDecision::AlreadyEnded);
}

#[test]
fn a_login_with_a_rotated_cookie_is_reuse_and_with_the_current_one_ends_the_session() {
    let s = rotated_at(1);
    let reused = plan_end(
        &s,
        token(0),
        &client(AWAY, CURL),
        EndVia::ReplacedByLogin,
        &policy(),
        at(50),
    );
    assert_eq!(reused.decision, EndDecision::Reused);
    assert_eq!(
        reused.revoke.map(|r| r.reason),
        Some(RevocationReason::TokenReuse)
    );
    let current = plan_end(
        &s,
        token(1),
        &client(AWAY, CURL),
        EndVia::ReplacedByLogin,
        &policy(),
        at(50),
    );
    assert_eq!(current.decision, EndDecision::Ended);
    assert_eq!(
        current.revoke.map(|r| r.reason),
        Some(RevocationReason::ReplacedByLogin)
    );
}

#[test]
fn a_logout_of_a_bound_session_needs_a_proof_by_its_key_and_otherwise_ends_nothing() {
    let s = SessionState {
        bound_to: Some(key(1)),
        ..rotated_at(1)
    };
    let other = key(2);
    for (proof_key, shown) in [
        (None, PresentedKey::None),
        (Some(&other), PresentedKey::Other(other.clone())),
    ] {
        for g in [0, 1] {
            let presented = PresentedToken {
                generation: Generation::new(g),
                proof_key,
            };
            let p = plan_end(&s, presented, &home(), EndVia::Logout, &policy(), at(50));
            assert_eq!(p.decision, EndDecision::DpopMismatch);
            assert_eq!(p.revoke, None, "nothing ends");
            assert_eq!(
                p.event,
                Some(PlannedEvent::DpopMismatch {
                    presented: Generation::new(g),
                    key: shown.clone(),
                })
            );
        }
    }
    let holder = key(1);
    let p = plan_end(
        &s,
        PresentedToken {
            generation: Generation::new(1),
            proof_key: Some(&holder),
        },
        &client(AWAY, CURL),
        EndVia::Logout,
        &policy(),
        at(50),
    );
    assert_eq!(p.decision, EndDecision::Ended);
    assert_eq!(p.event, None);
}

#[test]
fn a_logout_of_an_ended_bound_session_without_its_key_is_already_ended() {
    let ended = SessionState {
        bound_to: Some(key(1)),
        ended: Some(Ended {
            at: at(2),
            reason: Some(RevocationReason::Logout),
        }),
        ..rotated_at(1)
    };
    let p = plan_end(&ended, token(1), &home(), EndVia::Logout, &policy(), at(3));
    assert_eq!(
        (p.decision, p.revoke, p.event),
        (EndDecision::AlreadyEnded, None, None)
    );
}

#[test]
fn a_login_ends_the_bound_session_of_its_old_cookie_only_with_the_key() {
    let s = SessionState {
        bound_to: Some(key(1)),
        ..rotated_at(1)
    };
    let login = |generation, proof: Option<&Jkt>| {
        let presented = PresentedToken {
            generation: Generation::new(generation),
            proof_key: proof,
        };
        plan_end(
            &s,
            presented,
            &home(),
            EndVia::ReplacedByLogin,
            &policy(),
            at(5),
        )
    };
    let with_key = login(1, Some(&key(1)));
    assert_eq!(with_key.decision, EndDecision::Ended);
    assert_eq!(
        with_key.revoke.map(|r| r.reason),
        Some(RevocationReason::ReplacedByLogin)
    );
    // The password may be the thief's own account's: a stolen bound cookie,
    // current or rotated, neither logs its victim out nor counts as reuse.
    for generation in [0, 1] {
        for proof in [None, Some(&key(2))] {
            let without = login(generation, proof);
            assert_eq!(without.decision, EndDecision::DpopMismatch);
            assert_eq!(without.revoke, None);
            assert_eq!(
                without.event.map(|e| e.kind()),
                Some(SecurityEventKind::DpopMismatch)
            );
        }
    }
}

#[derive(Debug, Clone)]
struct Step {
    token: u32,
    dt_ms: i64,
    ip: &'static str,
    ua: &'static str,
    proof: Option<u8>,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0u32..6,
        0i64..40_000,
        prop::sample::select(vec![HOME, HOME_NEIGHBOUR, AWAY]),
        prop::sample::select(vec![FIREFOX, FIREFOX_MINOR, CURL]),
        prop::option::of(1u8..3),
    )
        .prop_map(|(token, dt_ms, ip, ua, proof)| Step {
            token,
            dt_ms,
            ip,
            ua,
            proof,
        })
}

fn policy_strategy() -> impl Strategy<Value = RotationPolicy> {
    (
        0u64..20_000,
        0u64..60_000,
        1u64..200_000,
        any::<bool>(),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(grace, retry, idle, family, anomaly)| RotationPolicy {
            grace: Duration::from_millis(grace),
            retry_window: Duration::from_millis(retry),
            idle_ttl: Duration::from_millis(idle),
            reuse_response: if family {
                ReuseResponse::RevokeFamily
            } else {
                ReuseResponse::RevokeAll
            },
            anomaly: AnomalyPolicy {
                window: if anomaly.is_some() {
                    Duration::from_secs(600)
                } else {
                    Duration::ZERO
                },
                response: if anomaly == Some(true) {
                    AnomalyResponse::LogOnly
                } else {
                    AnomalyResponse::Revoke
                },
            },
        })
}

/// Runs `steps` against a session (bound to key 1 when `bound`) and checks
/// `check(before, step, now, plan)` after each.
fn run(
    steps: &[Step],
    p: &RotationPolicy,
    bound: bool,
    mut check: impl FnMut(&SessionState, &Step, Timestamp, &RotationPlan) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let mut s = SessionState {
        bound_to: bound.then(|| key(1)),
        ..fresh(0)
    };
    let mut now = at(1);
    for st in steps {
        now = Timestamp::from_millis(now.as_millis() + st.dt_ms);
        let k = st.proof.map(key);
        let c = Sighting {
            at: now,
            ip: Some(st.ip),
            user_agent: Some(st.ua),
        };
        let presented = PresentedToken {
            generation: Generation::new(st.token),
            proof_key: k.as_ref(),
        };
        let planned = plan(&s, presented, &c, p, now);
        prop_assert_eq!(&planned.state, &s.apply(planned.decision, &c, now));
        check(&s, st, now, &planned)?;
        s = planned.state;
    }
    Ok(())
}

proptest! {
    /// Each generation gets at most one successor; a successor is only
    /// ever handed out again for the immediate parent of the current token.
    #[test]
    fn a_generation_has_at_most_one_successor(
        steps in prop::collection::vec(step(), 1..40),
        p in policy_strategy(),
        bound in any::<bool>(),
    ) {
        let mut rotated = std::collections::HashSet::new();
        run(&steps, &p, bound, |before, st, _, planned| {
            match planned.decision {
                RotationDecision::Rotate { next } => {
                    prop_assert_eq!(st.token, before.generation.value());
                    prop_assert_eq!(next, before.generation.next());
                    prop_assert!(rotated.insert(st.token), "generation rotated twice");
                }
                RotationDecision::GraceReplay | RotationDecision::Retry => {
                    prop_assert!(Generation::new(st.token).is_parent_of(before.generation));
                    prop_assert_eq!(planned.state.generation, before.generation);
                }
                _ => prop_assert_eq!(planned.state.generation, before.generation),
            }
            Ok(())
        })?;
    }

    /// Grace replays and retries come only from the network and
    /// user-agent family that rotated, inside their windows.
    #[test]
    fn grace_and_retry_follow_their_windows_and_the_rotating_client(
        steps in prop::collection::vec(step(), 1..40),
        p in policy_strategy(),
    ) {
        run(&steps, &p, false, |before, st, now, planned| {
            let window = match planned.decision {
                RotationDecision::GraceReplay => p.grace,
                RotationDecision::Retry => p.retry_window,
                _ => return Ok(()),
            };
            prop_assert!(now < before.rotated_at.plus(window));
            prop_assert!(same_network(before.rotated_from.as_deref(), Some(st.ip)));
            prop_assert!(!different_families(before.rotated_by.as_deref(), Some(st.ua)));
            if planned.decision == RotationDecision::Retry {
                prop_assert!(p.grace.is_zero() || now >= before.rotated_at.plus(p.grace));
            }
            prop_assert_eq!(&planned.revoke, &None);
            Ok(())
        })?;
    }

    /// A reuse always revokes, and afterwards nothing is accepted.
    #[test]
    fn a_reuse_always_revokes_and_ends_the_family(
        steps in prop::collection::vec(step(), 1..40),
        p in policy_strategy(),
        bound in any::<bool>(),
    ) {
        let mut ended = false;
        run(&steps, &p, bound, |_, _, _, planned| {
            if ended {
                prop_assert_eq!(planned.decision, RotationDecision::Revoked);
                prop_assert_eq!(&planned.revoke, &None);
            }
            if matches!(planned.decision, RotationDecision::Reuse | RotationDecision::Anomaly) {
                prop_assert!(planned.revoke.is_some());
                prop_assert!(planned.state.ended.is_some());
                prop_assert!(planned.event.is_some());
                ended = true;
            } else {
                prop_assert_eq!(&planned.revoke, &None);
            }
            Ok(())
        })?;
    }

    /// Nothing outlives the absolute lifetime, whatever came before.
    #[test]
    fn nothing_outlives_the_absolute_lifetime(
        steps in prop::collection::vec(step(), 1..40),
        p in policy_strategy(),
    ) {
        run(&steps, &p, false, |before, _, now, planned| {
            if now >= before.expires_at {
                prop_assert!(!planned.decision.accepts());
                prop_assert_eq!(&planned.revoke, &None);
            }
            Ok(())
        })?;
    }

    /// A bound session is used only with a proof by its key; without one
    /// nothing changes and nothing is revoked.
    #[test]
    fn a_bound_session_moves_only_with_its_key(
        steps in prop::collection::vec(step(), 1..40),
        p in policy_strategy(),
    ) {
        run(&steps, &p, true, |before, st, _, planned| {
            if st.proof != Some(1) && before.ended.is_none() {
                prop_assert!(!planned.decision.accepts());
                prop_assert_eq!(&planned.state, before);
                prop_assert_eq!(&planned.revoke, &None);
            }
            Ok(())
        })?;
    }

    /// Ending a session by logout follows the binding rule: a live bound
    /// session ends only with a proof by its key; without one nothing is
    /// revoked and a `dpop_mismatch` event is planned. Neither path is
    /// ever a theft response, and an unbound session ignores the proof.
    #[test]
    fn a_bound_session_is_logged_out_only_with_its_key(
        steps in prop::collection::vec(step(), 1..40),
        p in policy_strategy(),
        bound in any::<bool>(),
        ends_with in 0u32..6,
        proof in prop::option::of(1u8..3),
        later_ms in 0i64..300_000,
    ) {
        let mut states = Vec::new();
        run(&steps, &p, bound, |_, _, now, planned| {
            states.push((planned.state.clone(), now));
            Ok(())
        })?;
        let k = proof.map(key);
        for (state, then) in states {
            let now = then.plus(Duration::from_millis(later_ms.unsigned_abs()));
            let presented = PresentedToken {
                generation: Generation::new(ends_with),
                proof_key: k.as_ref(),
            };
            let planned = plan_end(&state, presented, &home(), EndVia::Logout, &p, now);
            let live = state.status(p.idle_ttl, now) == SessionStatus::Live;
            let holder = !bound || proof == Some(1);
            let expected = match (live, holder) {
                (false, _) => EndDecision::AlreadyEnded,
                (true, true) => EndDecision::Ended,
                (true, false) => EndDecision::DpopMismatch,
            };
            prop_assert_eq!(planned.decision, expected);
            match planned.decision {
                EndDecision::Ended => prop_assert_eq!(
                    planned.revoke,
                    Some(PlannedRevocation {
                        scope: RevocationScope::Session,
                        reason: RevocationReason::Logout,
                    })
                ),
                _ => prop_assert_eq!(planned.revoke, None),
            }
            match planned.decision {
                EndDecision::DpopMismatch => prop_assert_eq!(
                    planned.event.as_ref().map(PlannedEvent::kind),
                    Some(SecurityEventKind::DpopMismatch)
                ),
                _ => prop_assert_eq!(planned.event, None),
            }
        }
    }

    /// A login ends its old cookie's bound session only with a proof by the
    /// session's key: without one nothing is revoked, nothing is reuse, and
    /// a refusal plans a `dpop_mismatch` event. An unbound session never
    /// asks for the key.
    #[test]
    fn a_login_ends_a_bound_session_only_with_its_key(
        steps in prop::collection::vec(step(), 1..40),
        p in policy_strategy(),
        bound in any::<bool>(),
        ends_with in 0u32..6,
        proof in prop::option::of(1u8..3),
    ) {
        let k = proof.map(key);
        let holder = !bound || proof == Some(1);
        run(&steps, &p, bound, |_, st, now, planned| {
            let presented = PresentedToken {
                generation: Generation::new(ends_with),
                proof_key: k.as_ref(),
            };
            let c = Sighting { at: now, ip: Some(st.ip), user_agent: Some(st.ua) };
            let end = plan_end(&planned.state, presented, &c, EndVia::ReplacedByLogin, &p, now);
            if holder {
                prop_assert_ne!(end.decision, EndDecision::DpopMismatch);
            } else {
                prop_assert!(matches!(
                    end.decision,
                    EndDecision::DpopMismatch | EndDecision::AlreadyEnded
                ));
                prop_assert_eq!(end.revoke, None);
            }
            if end.decision == EndDecision::DpopMismatch {
                prop_assert_eq!(
                    end.event.as_ref().map(PlannedEvent::kind),
                    Some(SecurityEventKind::DpopMismatch)
                );
            }
            Ok(())
        })?;
    }
}
