//! The rotation plan: everything that presenting a refresh token does.
//!
//! [`plan`] is a pure function of the session's state, the presented token
//! (its generation and the key of a DPoP proof that came with it), where the
//! client is, the policy and `now`. It returns the whole plan: the decision,
//! the audit outcome, the session's next state (through
//! [`SessionState::apply`]), what to revoke and why, and the security event
//! to record. [`plan_end`] does the same for ending a session through one
//! of its tokens (logout and revocation, or a login that carries an old
//! refresh cookie); a session bound to a DPoP key is ended by a logout only
//! with a proof by that key, as it is refreshed.
//! The persistence adapter finds the token, locks its session, asks for the
//! plan and executes it in the same transaction; it decides nothing.
//!
//! Order of the rules (see `docs/rotation.md`):
//! 1. an ended session answers `Revoked` and never triggers a new theft
//!    response (a rotated token of a session ended other than by a theft
//!    response is recorded as `reuse_after_end`);
//! 2. past the absolute lifetime everything is `Expired(Absolute)`;
//! 3. a session bound to a DPoP key needs a proof by that key, else
//!    `DpopMismatch`: refused, nothing spent, nothing revoked;
//! 4. the current token rotates, unless its idle deadline has passed, or the
//!    anomaly rule flags the request of an unbound session (`Anomaly`, a
//!    theft response);
//! 5. the immediate parent of the current token, replayed from the network
//!    (any network, for a bound session's key holder) and user-agent family
//!    of the request that rotated it, while the
//!    current token is alive: inside the grace window a `GraceReplay`,
//!    inside the retry window a `Retry` (a lost response); both get the
//!    successor already issued;
//! 6. any other older token is `Reuse`: theft evidence.

use std::time::Duration;

use crate::anomaly::{AnomalyPolicy, AnomalyResponse, Sighting};
use crate::audit::{RefreshOutcome, SecurityEventKind};
use crate::dpop::{binding_verdict, BindingVerdict, Jkt};
use crate::lifetimes::{Lifetimes, ReuseResponse};
use crate::network::same_network;
use crate::session::{status_of, Generation, RevocationReason, SessionStatus};
use crate::time::Timestamp;
use crate::user_agent::different_families;

#[cfg(test)]
mod tests;

/// Where and with what a session was last used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUse {
    pub at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl LastUse {
    fn sighting(&self) -> Sighting<'_> {
        Sighting {
            at: self.at,
            ip: self.ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
        }
    }
}

/// When and why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub at: Timestamp,
    /// `None` when the stored reason is not one this version knows.
    pub reason: Option<RevocationReason>,
}

/// The part of a session that the plan reads and changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// Generation of the current (only valid) refresh token.
    pub generation: Generation,
    pub ended: Option<Ended>,
    /// When the current token was issued (login or last rotation).
    pub rotated_at: Timestamp,
    /// Absolute end of the session.
    pub expires_at: Timestamp,
    /// User agent of the request that issued the current token.
    pub rotated_by: Option<String>,
    /// Client IP of the request that issued the current token.
    pub rotated_from: Option<String>,
    pub last_use: LastUse,
    /// The DPoP key the session is bound to, if any.
    pub bound_to: Option<Jkt>,
}

/// A presented refresh token, as found in storage, with the key of the
/// valid DPoP proof that came with it (`None`: no proof, or one refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedToken<'a> {
    pub generation: Generation,
    pub proof_key: Option<&'a Jkt>,
}

/// The configured rules a plan follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// A refresh token unused for this long is dead.
    pub idle_ttl: Duration,
    /// `TOKENWARDEN_REUSE_GRACE`: concurrent tabs. Zero disables it.
    pub grace: Duration,
    /// `TOKENWARDEN_RETRY_WINDOW`: lost responses. Zero disables it.
    pub retry_window: Duration,
    /// What a theft response revokes.
    pub reuse_response: ReuseResponse,
    pub anomaly: AnomalyPolicy,
}

impl RotationPolicy {
    /// The default retry window of the contract (`1h`).
    pub const DEFAULT_RETRY_WINDOW: Duration = Duration::from_secs(3600);

    pub fn new(
        lifetimes: &Lifetimes,
        retry_window: Duration,
        reuse_response: ReuseResponse,
        anomaly: AnomalyPolicy,
    ) -> Self {
        Self {
            idle_ttl: lifetimes.idle_ttl,
            grace: lifetimes.grace,
            retry_window,
            reuse_response,
            anomaly,
        }
    }
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
    /// The same client retrying after an answer it never got: the
    /// successor already issued, nothing revoked.
    Retry,
    /// An already rotated token came back: theft.
    Reuse,
    /// The current token from another network and device moments after the
    /// session's last use, under the `revoke` anomaly response: theft.
    Anomaly,
    /// A session bound to a DPoP key, without a proof by it: refused,
    /// nothing spent.
    DpopMismatch,
    Expired(ExpiryKind),
    Revoked,
}

impl RotationDecision {
    /// Whether the caller gets a (new or repeated) successor token.
    pub fn accepts(self) -> bool {
        matches!(self, Self::Rotate { .. } | Self::GraceReplay | Self::Retry)
    }
}

/// Which sessions a revocation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationScope {
    /// The session (token family) the token belongs to.
    Session,
    /// Every live session of its user.
    User,
}

impl From<ReuseResponse> for RevocationScope {
    fn from(response: ReuseResponse) -> Self {
        match response {
            ReuseResponse::RevokeAll => Self::User,
            ReuseResponse::RevokeFamily => Self::Session,
        }
    }
}

/// What a plan revokes, and the reason stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedRevocation {
    pub scope: RevocationScope,
    pub reason: RevocationReason,
}

/// Whether a refused bound session saw no proof or another key's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresentedKey {
    /// No valid proof came with the token.
    None,
    Other(Jkt),
}

/// The security event a plan records, with what its details need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedEvent {
    /// A rotated token came back; the theft response revoked `scope`.
    TokenReuse {
        presented: Generation,
        current: Generation,
        scope: RevocationScope,
    },
    /// Another network and device after `previous`; `revoked` is the scope
    /// of the theft response, `None` under `log_only`.
    Anomaly {
        previous: LastUse,
        revoked: Option<RevocationScope>,
    },
    /// A bound session's token without a proof by its key.
    DpopMismatch {
        presented: Generation,
        key: PresentedKey,
    },
    /// A rotated token of a session that a logout ended after that
    /// rotation: someone else held the session (steal, use, log out).
    ReuseAfterEnd {
        presented: Generation,
        current: Generation,
        ended_at: Timestamp,
    },
}

impl PlannedEvent {
    pub fn kind(&self) -> SecurityEventKind {
        match self {
            Self::TokenReuse { .. } => SecurityEventKind::TokenReuse,
            Self::Anomaly { .. } => SecurityEventKind::Anomaly,
            Self::DpopMismatch { .. } => SecurityEventKind::DpopMismatch,
            Self::ReuseAfterEnd { .. } => SecurityEventKind::ReuseAfterEnd,
        }
    }
}

/// Everything a refresh does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationPlan {
    pub decision: RotationDecision,
    /// What the audit row, the metrics and the answer say.
    pub outcome: RefreshOutcome,
    /// The session after the plan.
    pub state: SessionState,
    pub revoke: Option<PlannedRevocation>,
    pub event: Option<PlannedEvent>,
}

impl SessionState {
    /// The liveness rule ([`status_of`]) on this state.
    pub fn status(&self, idle_ttl: Duration, now: Timestamp) -> SessionStatus {
        let deadline = self.rotated_at.plus(idle_ttl).min(self.expires_at);
        status_of(self.ended.is_some(), deadline, now)
    }

    /// The state after `decision` was taken at `now` for `client`.
    pub fn apply(&self, decision: RotationDecision, client: &Sighting<'_>, now: Timestamp) -> Self {
        let ended = |reason| Self {
            ended: Some(Ended {
                at: now,
                reason: Some(reason),
            }),
            ..self.clone()
        };
        match decision {
            RotationDecision::Rotate { next } => Self {
                generation: next,
                rotated_at: now,
                rotated_by: client.user_agent.map(str::to_owned),
                rotated_from: client.ip.map(str::to_owned),
                last_use: LastUse {
                    at: now,
                    ip: client.ip.map(str::to_owned),
                    user_agent: client.user_agent.map(str::to_owned),
                },
                ..self.clone()
            },
            RotationDecision::GraceReplay | RotationDecision::Retry => Self {
                last_use: LastUse {
                    at: now,
                    ..self.last_use.clone()
                },
                ..self.clone()
            },
            RotationDecision::Reuse => ended(RevocationReason::TokenReuse),
            RotationDecision::Anomaly => ended(RevocationReason::Anomaly),
            RotationDecision::DpopMismatch
            | RotationDecision::Expired(_)
            | RotationDecision::Revoked => self.clone(),
        }
    }

    /// Whether `client` is where and what the request that issued the
    /// current token was: same network, same user-agent family. A request
    /// that proved it holds the session's DPoP key (`proved_key`) is that
    /// client wherever it is now (a phone that changed networks while its
    /// answer was lost): only the user-agent family must match.
    fn rotated_by_same_client(&self, client: &Sighting<'_>, proved_key: bool) -> bool {
        (proved_key || same_network(self.rotated_from.as_deref(), client.ip))
            && !different_families(self.rotated_by.as_deref(), client.user_agent)
    }
}

/// Which rules a use of the token is subject to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// A refresh: every rule.
    Refresh,
    /// A login ending the session of its old cookie: a fresh
    /// authentication, so not the anomaly rule; but the key binding holds
    /// (the password may be another account's: a stolen bound cookie must
    /// not end its victim's session).
    Login,
}

/// The decision, and the anomaly response taken, if the rule fired.
fn decide(
    state: &SessionState,
    token: PresentedToken<'_>,
    client: &Sighting<'_>,
    policy: &RotationPolicy,
    now: Timestamp,
    use_: Use,
) -> (RotationDecision, Option<AnomalyResponse>) {
    if state.ended.is_some() {
        return (RotationDecision::Revoked, None);
    }
    if now >= state.expires_at {
        return (RotationDecision::Expired(ExpiryKind::Absolute), None);
    }
    if binding_verdict(state.bound_to.as_ref(), token.proof_key) == BindingVerdict::Mismatch {
        return (RotationDecision::DpopMismatch, None);
    }
    let current_alive = now < state.rotated_at.plus(policy.idle_ttl);
    if token.generation == state.generation {
        if !current_alive {
            return (RotationDecision::Expired(ExpiryKind::Idle), None);
        }
        let here = Sighting { at: now, ..*client };
        // Past the binding check, a bound session's request carries a proof
        // by its key: a new network and device are the key holder's, no
        // sign of a copied token (a phone that changed networks while its
        // app updated).
        let anomaly = (use_ == Use::Refresh
            && state.bound_to.is_none()
            && policy
                .anomaly
                .is_anomalous(&state.last_use.sighting(), &here))
        .then_some(policy.anomaly.response);
        let decision = match anomaly {
            Some(AnomalyResponse::Revoke) => RotationDecision::Anomaly,
            _ => RotationDecision::Rotate {
                next: state.generation.next(),
            },
        };
        return (decision, anomaly);
    }
    // Past the binding check, a use of a bound session carries a proof by
    // its key.
    let proved_key = state.bound_to.is_some();
    if token.generation.is_parent_of(state.generation)
        && current_alive
        && state.rotated_by_same_client(client, proved_key)
    {
        let within = |window: Duration| !window.is_zero() && now < state.rotated_at.plus(window);
        if within(policy.grace) {
            return (RotationDecision::GraceReplay, None);
        }
        if within(policy.retry_window) {
            return (RotationDecision::Retry, None);
        }
    }
    // An older token, or (impossible unless storage is corrupt) a newer one.
    (RotationDecision::Reuse, None)
}

/// The `reuse_after_end` event due when `token` is a rotated token of a
/// session that a logout ended.
fn reuse_after_end(state: &SessionState, token: PresentedToken<'_>) -> Option<PlannedEvent> {
    let ended = state.ended?;
    let rotated = token.generation < state.generation;
    // Whoever ended the session (a logout, the user's own revocation, a
    // login, an admin), someone else still held an older token of it. A
    // theft response already recorded its own event.
    let by_theft_response = matches!(
        ended.reason,
        Some(RevocationReason::TokenReuse | RevocationReason::Anomaly)
    );
    (!by_theft_response && rotated).then_some(PlannedEvent::ReuseAfterEnd {
        presented: token.generation,
        current: state.generation,
        ended_at: ended.at,
    })
}

/// The `dpop_mismatch` event of a bound session's `token` presented without
/// a proof by the bound key.
fn dpop_mismatch(token: PresentedToken<'_>) -> PlannedEvent {
    PlannedEvent::DpopMismatch {
        presented: token.generation,
        key: token
            .proof_key
            .map_or(PresentedKey::None, |k| PresentedKey::Other(k.clone())),
    }
}

/// The theft response of `policy`, for `reason`.
fn theft_response(policy: &RotationPolicy, reason: RevocationReason) -> PlannedRevocation {
    PlannedRevocation {
        scope: policy.reuse_response.into(),
        reason,
    }
}

/// Plans what presenting `token` to refresh a session in `state` does at
/// `now`, for a request from `client`.
pub fn plan(
    state: &SessionState,
    token: PresentedToken<'_>,
    client: &Sighting<'_>,
    policy: &RotationPolicy,
    now: Timestamp,
) -> RotationPlan {
    let (decision, anomaly) = decide(state, token, client, policy, now, Use::Refresh);
    let scope = RevocationScope::from(policy.reuse_response);
    let (outcome, revoke, event) = match decision {
        RotationDecision::Rotate { .. } => match anomaly {
            Some(_) => (
                RefreshOutcome::AnomalyLogged,
                None,
                Some(PlannedEvent::Anomaly {
                    previous: state.last_use.clone(),
                    revoked: None,
                }),
            ),
            None => (RefreshOutcome::Success, None, None),
        },
        RotationDecision::GraceReplay => (RefreshOutcome::GraceReplay, None, None),
        RotationDecision::Retry => (RefreshOutcome::Retry, None, None),
        RotationDecision::Reuse => (
            RefreshOutcome::Reused,
            Some(theft_response(policy, RevocationReason::TokenReuse)),
            Some(PlannedEvent::TokenReuse {
                presented: token.generation,
                current: state.generation,
                scope,
            }),
        ),
        RotationDecision::Anomaly => (
            RefreshOutcome::Anomaly,
            Some(theft_response(policy, RevocationReason::Anomaly)),
            Some(PlannedEvent::Anomaly {
                previous: state.last_use.clone(),
                revoked: Some(scope),
            }),
        ),
        RotationDecision::DpopMismatch => (
            RefreshOutcome::DpopMismatch,
            None,
            Some(dpop_mismatch(token)),
        ),
        RotationDecision::Expired(_) => (RefreshOutcome::Expired, None, None),
        RotationDecision::Revoked => (RefreshOutcome::Revoked, None, reuse_after_end(state, token)),
    };
    RotationPlan {
        decision,
        outcome,
        state: state.apply(decision, client, now),
        revoke,
        event,
    }
}

/// Why a session is being ended through one of its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndVia {
    /// The client logged out (or revoked the token, RFC 7009): the session
    /// ends, whatever token was shown, and no theft response follows; a
    /// session bound to a DPoP key only with a proof by that key.
    Logout,
    /// A successful login carried this old token: the session ends, but an
    /// already rotated token (outside grace and retry) is reuse. A session
    /// bound to a DPoP key ends only if the login's proof is by that key
    /// (else `DpopMismatch`: the login may be to the thief's own account).
    ReplacedByLogin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndDecision {
    /// The session was live and ends now.
    Ended,
    /// The session had already ended or expired; nothing changes.
    AlreadyEnded,
    /// A rotated token came with a login: theft response.
    Reused,
    /// A logout, or a login's old cookie, of a live session bound to a DPoP
    /// key without a proof by that key: refused, nothing ends (the holder
    /// of a stolen bound token cannot log its victim out), a
    /// `dpop_mismatch` event is recorded.
    DpopMismatch,
}

/// Everything ending a session through one of its tokens does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndPlan {
    pub decision: EndDecision,
    pub revoke: Option<PlannedRevocation>,
    pub event: Option<PlannedEvent>,
}

/// Plans ending the session in `state` through `token` (with the key of the
/// valid DPoP proof that came with it, if any) at `now`.
///
/// Order of the rules for a logout: a session already ended or expired
/// stays so (nothing to refuse, nothing to record); a live session bound to
/// a key needs a proof by it, else `DpopMismatch`; otherwise it ends.
pub fn plan_end(
    state: &SessionState,
    token: PresentedToken<'_>,
    client: &Sighting<'_>,
    via: EndVia,
    policy: &RotationPolicy,
    now: Timestamp,
) -> EndPlan {
    let end = |reason| EndPlan {
        decision: EndDecision::Ended,
        revoke: Some(PlannedRevocation {
            scope: RevocationScope::Session,
            reason,
        }),
        event: None,
    };
    let already = |event| EndPlan {
        decision: EndDecision::AlreadyEnded,
        revoke: None,
        event,
    };
    match via {
        // Any token of the session ends it; never a theft response.
        EndVia::Logout => match state.status(policy.idle_ttl, now) {
            SessionStatus::Live
                if binding_verdict(state.bound_to.as_ref(), token.proof_key)
                    == BindingVerdict::Mismatch =>
            {
                EndPlan {
                    decision: EndDecision::DpopMismatch,
                    revoke: None,
                    event: Some(dpop_mismatch(token)),
                }
            }
            SessionStatus::Live => end(RevocationReason::Logout),
            _ => already(None),
        },
        EndVia::ReplacedByLogin => match decide(state, token, client, policy, now, Use::Login).0 {
            RotationDecision::Reuse => EndPlan {
                decision: EndDecision::Reused,
                revoke: Some(theft_response(policy, RevocationReason::TokenReuse)),
                event: Some(PlannedEvent::TokenReuse {
                    presented: token.generation,
                    current: state.generation,
                    scope: policy.reuse_response.into(),
                }),
            },
            RotationDecision::Rotate { .. }
            | RotationDecision::GraceReplay
            | RotationDecision::Retry
            | RotationDecision::Anomaly => end(RevocationReason::ReplacedByLogin),
            RotationDecision::DpopMismatch => EndPlan {
                decision: EndDecision::DpopMismatch,
                revoke: None,
                event: Some(dpop_mismatch(token)),
            },
            RotationDecision::Revoked => already(reuse_after_end(state, token)),
            RotationDecision::Expired(_) => already(None),
        },
    }
}
