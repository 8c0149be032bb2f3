//! Security events: their `details` (a JSON object) and the insert, always
//! in the transaction of the revocation they describe.
//!
//! Details carry what a security team needs to follow an incident (where
//! from, with what, what was revoked) and never a token, a cookie or a
//! password: a token appears only as its fingerprint.

use application::ports::ClientInfo;
use domain::{PlannedEvent, PresentedKey, RevocationScope, TokenDigest, TokenFingerprint};
use serde_json::{json, Value};

use super::write::{insert_event, EventDraft};
use crate::connection::AnyConnection;
use crate::error::DbError;
use crate::rows::SessionRow;

/// The configured response a theft response followed, by its scope.
fn response(scope: RevocationScope) -> &'static str {
    match scope {
        RevocationScope::User => "revoke_all",
        RevocationScope::Session => "revoke_family",
    }
}

/// The `details` of a planned event, for a request `via` a refresh, a logout or a
/// login from `client` with `token`, after `revoked_sessions` were revoked.
pub(crate) fn details(
    event: &PlannedEvent,
    via: &str,
    revoked_sessions: usize,
    client: &ClientInfo,
    token: &TokenDigest,
    now: i64,
) -> Value {
    let mut details = match event {
        PlannedEvent::TokenReuse {
            presented,
            current,
            scope,
        } => json!({
            "via": via,
            "presented_generation": presented.value(),
            "current_generation": current.value(),
            "response": response(*scope),
            "revoked_sessions": revoked_sessions,
        }),
        PlannedEvent::Anomaly { previous, revoked } => json!({
            "response": revoked.map_or("log_only", response),
            "revoked_sessions": revoked_sessions,
            "previous_ip": previous.ip,
            "previous_user_agent": previous.user_agent,
            "since_last_use_ms": now.saturating_sub(previous.at.as_millis()),
        }),
        PlannedEvent::DpopMismatch { presented, key } => json!({
            "via": via,
            "presented_generation": presented.value(),
            "proof": match key {
                PresentedKey::None => "missing_or_invalid",
                PresentedKey::Other(_) => "other_key",
            },
            "proof_jkt": match key {
                PresentedKey::None => None,
                PresentedKey::Other(jkt) => Some(jkt.as_str()),
            },
        }),
        PlannedEvent::ReuseAfterEnd {
            presented,
            current,
            ended_at,
        } => json!({
            "via": via,
            "presented_generation": presented.value(),
            "current_generation": current.value(),
            "ended_at": ended_at.as_millis(),
        }),
    };
    if let Some(map) = details.as_object_mut() {
        map.insert("ip".to_owned(), json!(client.ip));
        map.insert("user_agent".to_owned(), json!(client.user_agent));
        map.insert(
            "token_fingerprint".to_owned(),
            json!(TokenFingerprint::of_digest(token).as_str()),
        );
    }
    details
}

/// Records an event about `session` (and its user).
pub(crate) fn record(
    conn: &mut AnyConnection,
    session: &SessionRow,
    kind: domain::SecurityEventKind,
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
