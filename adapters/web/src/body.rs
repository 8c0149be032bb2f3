//! Request bodies: read with a hard 64 KiB limit and parsed so that every
//! failure is one of the contract's problems (413, 400 or 422), never
//! Actix's plain-text defaults.

use actix_web::http::header;
use actix_web::HttpRequest;
use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// The largest body any endpoint accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a request body may take to arrive (`TOKENWARDEN_REQUEST_TIMEOUT`),
/// as app data; without it, [`DEFAULT_BODY_DEADLINE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyDeadline(pub std::time::Duration);

pub const DEFAULT_BODY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] without
/// buffering it, and answering 408 `request_timeout` when it has not
/// arrived within the request's deadline: on a connection that has one
/// ([`crate::wire::RequestArrival`], the request timeout from the request's
/// first bytes), that one, which the connection itself enforces only
/// [`crate::wire::CONNECTION_SLACK`] later; elsewhere (an app without
/// that listener) the [`BodyDeadline`] from the handler's start.
///
/// When the reading ends, whichever way, the request has arrived: its
/// dependency deadline starts then ([`crate::deadline::restart`]), so that
/// a slow upload within the request timeout is served like a fast one, and
/// a refused one can still be recorded (a refresh's audit row).
pub async fn read_body(
    req: &HttpRequest,
    payload: &mut actix_web::web::Payload,
) -> Result<Vec<u8>, ApiError> {
    let deadline = match req
        .conn_data::<crate::wire::RequestArrival>()
        .and_then(crate::wire::RequestArrival::deadline)
    {
        // The connection's deadline for this request (from its first
        // bytes): answered here first, so that what the handler records
        // on a refusal (a refresh's audit row) is written before the
        // connection gives up on it.
        Some(at) => at.saturating_duration_since(tokio::time::Instant::now()),
        None => req
            .app_data::<BodyDeadline>()
            .map_or(DEFAULT_BODY_DEADLINE, |d| d.0),
    };
    let body = actix_web::rt::time::timeout(deadline, read_body_unbounded(req, payload))
        .await
        .unwrap_or(Err(ApiError::RequestTimeout));
    crate::deadline::restart();
    body
}

async fn read_body_unbounded(
    req: &HttpRequest,
    payload: &mut actix_web::web::Payload,
) -> Result<Vec<u8>, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(MAX_BODY_BYTES));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::MalformedRequest)?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Parses JSON: syntax errors are 400 `malformed_request`, wrong types or
/// missing fields 422 `invalid_input` naming the field where serde tells.
///
/// Bodies must be JSON objects: serde would otherwise accept `["a", "b"]`
/// for a struct.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| ApiError::MalformedRequest)?;
    if !value.is_object() {
        return Err(ApiError::InvalidInput(vec![FieldError {
            field: "body".to_owned(),
            message: "must be a JSON object".to_owned(),
        }]));
    }
    serde_json::from_value(value).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::InvalidInput(vec![FieldError {
            field: field_of(&e.to_string()),
            message: "missing or of the wrong type".to_owned(),
        }]),
        _ => ApiError::MalformedRequest,
    })
}

/// Like [`parse_json`], but an empty body (a cookie-only client) or a JSON
/// `null` is `None`.
pub fn parse_optional_json<T: DeserializeOwned>(body: &[u8]) -> Result<Option<T>, ApiError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() || trimmed == b"null" {
        Ok(None)
    } else {
        parse_json(body).map(Some)
    }
}

/// serde says "missing field `x`" or "invalid type: integer `5`, expected
/// ..."; keep only the field name, never the value the client sent (which is
/// what the backticks hold in the second form).
fn field_of(message: &str) -> String {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .filter(|f| f.len() <= 64 && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or("body")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Login {
        #[allow(dead_code)]
        username: String,
    }

    #[test]
    fn syntax_errors_are_malformed_and_type_errors_invalid() {
        assert!(matches!(
            parse_json::<Login>(b"{"),
            Err(ApiError::MalformedRequest)
        ));
        assert!(matches!(
            parse_json::<Login>(b"nonsense"),
            Err(ApiError::MalformedRequest)
        ));
        match parse_json::<Login>(b"{}") {
            Err(ApiError::InvalidInput(errors)) => assert_eq!(errors[0].field, "username"),
            other => panic!("unexpected {other:?}"),
        }
        match parse_json::<Login>(br#"{"username": 5}"#) {
            Err(ApiError::InvalidInput(errors)) => {
                assert_eq!(errors[0].field, "body", "the value is never echoed")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_json::<Login>(br#"["alice"]"#),
            Err(ApiError::InvalidInput(_))
        ));
        assert!(matches!(
            parse_json::<Login>(b"null"),
            Err(ApiError::InvalidInput(_))
        ));
    }

    #[test]
    fn an_empty_body_is_no_body() {
        assert!(matches!(parse_optional_json::<Login>(b"  \n"), Ok(None)));
    }

    #[test]
    fn a_json_null_body_is_no_body_but_other_non_objects_are_refused() {
        assert!(matches!(parse_optional_json::<Login>(b" null "), Ok(None)));
        assert!(matches!(
            parse_optional_json::<Login>(b"[]"),
            Err(ApiError::InvalidInput(_))
        ));
    }
}
