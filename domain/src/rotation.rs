//! The rotation decision: what presenting a refresh token does.
//!
//! [`decide`] is a pure function of the session's state, the presented
//! token's generation, the caller's user agent, the lifetimes and `now`. The
//! persistence adapter calls it inside the transaction that holds the session,
//! then applies it with [`SessionState::apply`], so the decision and its
//! writes cannot be separated by a concurrent request.
//!
//! Order of the rules (see `docs/rotation.md`):
//! 1. a revoked session answers `Revoked`, and never triggers a new theft
//!    response;
//! 2. past the absolute lifetime everything is `Expired(Absolute)`;
//! 3. the current token rotates, unless its idle deadline has passed;
//! 4. the immediate parent of the current token, replayed inside the grace
//!    window by the user agent that rotated it, is a `GraceReplay`;
//! 5. any other older token is `Reuse`: theft evidence.

use crate::lifetimes::Lifetimes;
use crate::session::Generation;
use crate::time::Timestamp;

/// The part of a session that the rotation decision reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// Generation of the current (only valid) refresh token.
    pub generation: Generation,
    pub revoked: bool,
    /// When the current token was issued.
    pub rotated_at: Timestamp,
    /// Absolute end of the session.
    pub expires_at: Timestamp,
    /// User agent of the request that issued the current token.
    pub rotated_by: Option<String>,
}

/// A presented refresh token, as found in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedToken {
    pub generation: Generation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryKind {
    /// Not used for longer than the idle timeout.
    Idle,
    /// Past the session's absolute lifetime.
    Absolute,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationDecision {
    /// The current token: issue the successor of generation `next`.
    Rotate {
        next: Generation,
    },
    /// A concurrent request of the same client: answer with the successor
    /// already issued, revoke nothing.
    GraceReplay,
    /// An already rotated token came back: theft.
    Reuse,
    Expired(ExpiryKind),
    Revoked,
}

impl RotationDecision {
    /// Whether the caller gets a (new or repeated) successor token.
    pub fn accepts(self) -> bool {
        matches!(self, Self::Rotate { .. } | Self::GraceReplay)
    }
}

/// Decides what presenting `token` to a session in `state` does at `now`.
pub fn decide(
    state: &SessionState,
    token: PresentedToken,
    user_agent: Option<&str>,
    lifetimes: &Lifetimes,
    now: Timestamp,
) -> RotationDecision {
    if state.revoked {
        return RotationDecision::Revoked;
    }
    if now >= state.expires_at {
        return RotationDecision::Expired(ExpiryKind::Absolute);
    }
    if token.generation == state.generation {
        return if now >= state.rotated_at.plus(lifetimes.idle_ttl) {
            RotationDecision::Expired(ExpiryKind::Idle)
        } else {
            RotationDecision::Rotate {
                next: state.generation.next(),
            }
        };
    }
    let in_grace = !lifetimes.grace.is_zero() && now < state.rotated_at.plus(lifetimes.grace);
    if token.generation.is_parent_of(state.generation)
        && in_grace
        && state.rotated_by.as_deref() == user_agent
    {
        return RotationDecision::GraceReplay;
    }
    // An older token, or (impossible unless storage is corrupt) a newer one.
    RotationDecision::Reuse
}

impl SessionState {
    /// The state after `decision` was taken at `now` for `user_agent`.
    pub fn apply(
        &self,
        decision: RotationDecision,
        user_agent: Option<&str>,
        now: Timestamp,
    ) -> Self {
        match decision {
            RotationDecision::Rotate { next } => Self {
                generation: next,
                rotated_at: now,
                rotated_by: user_agent.map(str::to_owned),
                ..self.clone()
            },
            RotationDecision::Reuse => Self {
                revoked: true,
                ..self.clone()
            },
            RotationDecision::GraceReplay
            | RotationDecision::Expired(_)
            | RotationDecision::Revoked => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    const UA: Option<&str> = Some("Firefox/130");

    fn lifetimes() -> Lifetimes {
        Lifetimes {
            access_ttl: Duration::from_secs(60),
            idle_ttl: Duration::from_secs(100),
            max_lifetime: Duration::from_secs(1_000),
            grace: Duration::from_secs(10),
            max_sessions: 10,
        }
    }

    fn fresh(at: i64) -> SessionState {
        SessionState {
            generation: Generation::FIRST,
            revoked: false,
            rotated_at: Timestamp::from_millis(at),
            expires_at: Timestamp::from_millis(at + 1_000_000),
            rotated_by: UA.map(str::to_owned),
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_millis(secs * 1_000)
    }

    fn presented(n: u32) -> PresentedToken {
        PresentedToken {
            generation: Generation::new(n),
        }
    }

    #[test]
    fn the_current_token_rotates_into_the_next_generation() {
        let d = decide(&fresh(0), presented(0), UA, &lifetimes(), at(1));
        assert_eq!(
            d,
            RotationDecision::Rotate {
                next: Generation::new(1)
            }
        );
    }

    #[test]
    fn a_parent_replayed_inside_the_grace_window_by_the_same_agent_is_a_grace_replay() {
        let s = fresh(0).apply(
            RotationDecision::Rotate {
                next: Generation::new(1),
            },
            UA,
            at(5),
        );
        assert_eq!(
            decide(&s, presented(0), UA, &lifetimes(), at(14)),
            RotationDecision::GraceReplay
        );
    }

    #[test]
    fn a_parent_replayed_by_another_agent_is_reuse_even_inside_the_window() {
        let s = fresh(0).apply(
            RotationDecision::Rotate {
                next: Generation::new(1),
            },
            UA,
            at(5),
        );
        let d = decide(&s, presented(0), Some("curl/8"), &lifetimes(), at(6));
        assert_eq!(d, RotationDecision::Reuse);
    }

    #[test]
    fn a_parent_replayed_after_the_window_is_reuse() {
        let s = fresh(0).apply(
            RotationDecision::Rotate {
                next: Generation::new(1),
            },
            UA,
            at(5),
        );
        assert_eq!(
            decide(&s, presented(0), UA, &lifetimes(), at(15)),
            RotationDecision::Reuse
        );
    }

    #[test]
    fn a_grandparent_is_reuse_even_inside_the_window() {
        let s = fresh(0)
            .apply(
                RotationDecision::Rotate {
                    next: Generation::new(1),
                },
                UA,
                at(1),
            )
            .apply(
                RotationDecision::Rotate {
                    next: Generation::new(2),
                },
                UA,
                at(2),
            );
        assert_eq!(
            decide(&s, presented(0), UA, &lifetimes(), at(3)),
            RotationDecision::Reuse
        );
    }

    #[test]
    fn a_zero_grace_window_turns_every_replay_into_reuse() {
        let s = fresh(0).apply(
            RotationDecision::Rotate {
                next: Generation::new(1),
            },
            UA,
            at(5),
        );
        let l = Lifetimes {
            grace: Duration::ZERO,
            ..lifetimes()
        };
        assert_eq!(
            decide(&s, presented(0), UA, &l, at(5)),
            RotationDecision::Reuse
        );
    }

    #[test]
    fn an_idle_token_has_expired() {
        let d = decide(&fresh(0), presented(0), UA, &lifetimes(), at(100));
        assert_eq!(d, RotationDecision::Expired(ExpiryKind::Idle));
    }

    #[test]
    fn a_rotated_token_stays_reuse_after_its_idle_deadline() {
        let s = fresh(0).apply(
            RotationDecision::Rotate {
                next: Generation::new(1),
            },
            UA,
            at(1),
        );
        assert_eq!(
            decide(&s, presented(0), UA, &lifetimes(), at(500)),
            RotationDecision::Reuse
        );
    }

    #[test]
    fn nothing_is_honoured_after_the_absolute_lifetime() {
        let s = SessionState {
            expires_at: at(50),
            ..fresh(0)
        };
        let d = decide(&s, presented(0), UA, &lifetimes(), at(50));
        assert_eq!(d, RotationDecision::Expired(ExpiryKind::Absolute));
    }

    #[test]
    fn a_revoked_session_answers_revoked_for_any_token() {
        let s = SessionState {
            revoked: true,
            ..fresh(0)
        };
        for g in 0..3 {
            assert_eq!(
                decide(&s, presented(g), UA, &lifetimes(), at(1)),
                RotationDecision::Revoked
            );
        }
    }

    #[derive(Debug, Clone)]
    struct Step {
        token: u32,
        dt_ms: i64,
        same_agent: bool,
    }

    fn step() -> impl Strategy<Value = Step> {
        (0u32..6, 0i64..40_000, any::<bool>()).prop_map(|(token, dt_ms, same_agent)| Step {
            token,
            dt_ms,
            same_agent,
        })
    }

    fn lifetimes_strategy() -> impl Strategy<Value = Lifetimes> {
        (0u64..20_000, 1u64..200_000).prop_map(|(grace, idle)| Lifetimes {
            grace: Duration::from_millis(grace),
            idle_ttl: Duration::from_millis(idle),
            ..lifetimes()
        })
    }

    proptest! {
        /// Outside the grace window a generation is accepted at most once,
        /// and every acceptance is of the current or (in grace) parent token.
        #[test]
        fn a_token_is_accepted_at_most_once_outside_the_grace_window(
            steps in proptest::collection::vec(step(), 1..40),
            l in lifetimes_strategy(),
        ) {
            let mut s = fresh(0);
            let mut now = at(1);
            let mut rotated = std::collections::HashSet::new();
            for st in steps {
                now = Timestamp::from_millis(now.as_millis() + st.dt_ms);
                let ua = if st.same_agent { UA } else { Some("Other/1") };
                let before = s.clone();
                let d = decide(&s, presented(st.token), ua, &l, now);
                match d {
                    RotationDecision::Rotate { next } => {
                        prop_assert_eq!(st.token, before.generation.value());
                        prop_assert_eq!(next, before.generation.next());
                        prop_assert!(rotated.insert(st.token), "generation rotated twice");
                    }
                    RotationDecision::GraceReplay => {
                        prop_assert!(Generation::new(st.token).is_parent_of(before.generation));
                        prop_assert!(now < before.rotated_at.plus(l.grace));
                        prop_assert_eq!(ua, before.rotated_by.as_deref());
                    }
                    _ => {}
                }
                s = s.apply(d, ua, now);
            }
        }

        /// Reuse always ends the family: afterwards nothing is accepted.
        #[test]
        fn a_reuse_always_ends_the_family(
            steps in proptest::collection::vec(step(), 1..40),
            l in lifetimes_strategy(),
        ) {
            let mut s = fresh(0);
            let mut now = at(1);
            let mut reused = false;
            for st in steps {
                now = Timestamp::from_millis(now.as_millis() + st.dt_ms);
                let ua = if st.same_agent { UA } else { Some("Other/1") };
                let d = decide(&s, presented(st.token), ua, &l, now);
                if reused {
                    prop_assert_eq!(d, RotationDecision::Revoked);
                }
                reused |= d == RotationDecision::Reuse;
                s = s.apply(d, ua, now);
            }
        }

        /// Nothing outlives the absolute lifetime, whatever came before.
        #[test]
        fn nothing_outlives_the_absolute_lifetime(
            steps in proptest::collection::vec(step(), 1..40),
            l in lifetimes_strategy(),
            lifetime_ms in 1i64..200_000,
        ) {
            let mut s = SessionState { expires_at: Timestamp::from_millis(1_000 + lifetime_ms), ..fresh(1_000) };
            let mut now = at(1);
            for st in steps {
                now = Timestamp::from_millis(now.as_millis() + st.dt_ms);
                let d = decide(&s, presented(st.token), UA, &l, now);
                if now >= s.expires_at {
                    prop_assert!(!d.accepts());
                    prop_assert_ne!(d, RotationDecision::Reuse);
                }
                s = s.apply(d, UA, now);
            }
        }
    }
}
