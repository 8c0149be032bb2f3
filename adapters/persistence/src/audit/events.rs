//! Security events: their `details` (a JSON object) and the insert, always
//! in the transaction of the revocation they describe.
//!
//! Details carry what a security team needs to follow an incident (where
//! from, with what, what was revoked) and never a token, a cookie or a
//! password: a token appears only as its fingerprint.

use application::ports::ClientInfo;
use domain::{
    AnomalyResponse, Generation, ReuseResponse, SecurityEventKind, TokenDigest, TokenFingerprint,
};
use serde_json::{json, Value};

use super::write::{insert_event, EventDraft};
use crate::connection::AnyConnection;
use crate::error::DbError;
use crate::rows::SessionRow;

fn scope(scope: ReuseResponse) -> &'static str {
    match scope {
        ReuseResponse::RevokeAll => "revoke_all",
        ReuseResponse::RevokeFamily => "revoke_family",
    }
}

/// `token_reuse`: a rotated token came back `via` a refresh or a login.
pub(crate) fn reuse(
    via: &str,
    presented: Generation,
    session: &SessionRow,
    response: ReuseResponse,
    revoked_sessions: usize,
    client: &ClientInfo,
    token: &TokenDigest,
) -> Value {
    json!({
        "via": via,
        "presented_generation": presented.value(),
        "current_generation": session.generation,
        "response": scope(response),
        "revoked_sessions": revoked_sessions,
        "ip": client.ip,
        "user_agent": client.user_agent,
        "token_fingerprint": TokenFingerprint::of_digest(token).as_str(),
    })
}

/// `anomaly`: the session was last used from `previous` (IP, user agent,
/// when) and now from `client`.
pub(crate) fn anomaly(
    response: AnomalyResponse,
    reuse_response: ReuseResponse,
    revoked_sessions: usize,
    previous: (Option<&str>, Option<&str>, i64),
    client: &ClientInfo,
    now: i64,
    token: &TokenDigest,
) -> Value {
    let (previous_ip, previous_user_agent, last_used_at) = previous;
    json!({
        "response": match response {
            AnomalyResponse::Revoke => scope(reuse_response),
            AnomalyResponse::LogOnly => "log_only",
        },
        "revoked_sessions": revoked_sessions,
        "previous_ip": previous_ip,
        "previous_user_agent": previous_user_agent,
        "ip": client.ip,
        "user_agent": client.user_agent,
        "since_last_use_ms": now.saturating_sub(last_used_at),
        "token_fingerprint": TokenFingerprint::of_digest(token).as_str(),
    })
}

/// Records an event about `session` (and its user).
pub(crate) fn record(
    conn: &mut AnyConnection,
    session: &SessionRow,
    kind: SecurityEventKind,
    details: Value,
    now: i64,
) -> Result<(), DbError> {
    insert_event(
        conn,
        EventDraft {
            user_id: &session.user_id,
            session_id: Some(&session.id),
            kind,
            details,
            at: now,
        },
    )
}
