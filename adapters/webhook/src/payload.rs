//! The JSON body of a delivery: `{id, type, created_at, user_id,
//! session_id, details}`, the fields of the admin API's security events
//! with `kind` named `type` as webhook receivers expect.

use domain::{SecurityEvent, Timestamp};
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The body of `event`'s delivery, as bytes (what is signed is what is sent).
pub fn body(event: &SecurityEvent) -> Vec<u8> {
    json!({
        "id": event.id.to_string(),
        "type": event.kind.as_str(),
        "created_at": rfc3339(event.created_at),
        "user_id": event.user_id.to_string(),
        "session_id": event.session_id.map(|s| s.to_string()),
        // Written by the storage adapter as a JSON object; should a stored
        // value ever not parse, it is sent as the text it is.
        "details": serde_json::from_str::<Value>(&event.details)
            .unwrap_or_else(|_| Value::String(event.details.clone())),
    })
    .to_string()
    .into_bytes()
}

/// RFC 3339 in UTC with three fractional digits, as the admin API writes
/// instants (`2024-05-01T12:00:00.100Z`).
fn rfc3339(t: Timestamp) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millis()) * 1_000_000)
        .ok()
        .and_then(|dt| dt.format(FORMAT).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use domain::{SecurityEventKind, SessionId, UserId};

    use super::*;

    #[test]
    fn the_body_carries_the_event_with_its_kind_as_type() {
        let user: UserId = "0b9d7e4c-4a52-4e0b-9a57-1c1f2f6c0a11".parse().unwrap();
        let session: SessionId = "5f0c6a56-8f0e-4b8a-a1d4-3c2b1a0f9e88".parse().unwrap();
        let event = SecurityEvent {
            id: 42,
            user_id: user,
            session_id: Some(session),
            kind: SecurityEventKind::TokenReuse,
            details: r#"{"via":"refresh"}"#.to_owned(),
            created_at: Timestamp::from_millis(1_700_000_000_100),
        };
        let body: Value = serde_json::from_slice(&body(&event)).unwrap();
        assert_eq!(
            body,
            json!({
                "id": "42",
                "type": "token_reuse",
                "created_at": "2023-11-14T22:13:20.100Z",
                "user_id": "0b9d7e4c-4a52-4e0b-9a57-1c1f2f6c0a11",
                "session_id": "5f0c6a56-8f0e-4b8a-a1d4-3c2b1a0f9e88",
                "details": {"via": "refresh"},
            })
        );
    }
}
