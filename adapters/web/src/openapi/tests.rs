//! The OpenAPI document itself. That the app as `tokenwarden serve` wires
//! it serves this document and routes exactly its operations is checked in
//! `server/tests/binary/openapi_routes.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;
use crate::error::{ApiError, Challenge};

/// The document of a port that serves `/metrics`, with the default cookie.
fn served_document() -> Value {
    serde_json::to_value(document("refresh_token", true)).unwrap()
}

#[test]
fn the_document_is_openapi_3_1_with_cookie_and_bearer_schemes() {
    let doc = serde_json::to_value(document("tw_refresh", true)).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes[BEARER]["type"], "http");
    assert_eq!(schemes[BEARER]["scheme"], "bearer");
    assert_eq!(schemes[REFRESH_COOKIE]["type"], "apiKey");
    assert_eq!(schemes[REFRESH_COOKIE]["in"], "cookie");
    assert_eq!(schemes[REFRESH_COOKIE]["name"], "tw_refresh");
    assert_eq!(
        doc["paths"]["/auth/sessions"]["get"]["security"][0][BEARER],
        serde_json::json!([])
    );
    assert!(doc["paths"]["/metrics"].is_object());
    let without = serde_json::to_value(document("refresh_token", false)).unwrap();
    assert!(without["paths"]["/metrics"].is_null());
}

#[test]
fn every_error_response_is_a_problem_document() {
    let doc = served_document();
    let mut errors = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, response) in op["responses"].as_object().unwrap() {
                let code: u16 = status.parse().unwrap();
                if code >= 400 && !(path.starts_with("/docs/") && code == 404) {
                    errors += 1;
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {status} is not documented as a problem"
                    );
                }
            }
        }
    }
    assert!(errors > 20);
}

/// Every `ApiError` variant, by construction: adding a variant breaks this
/// match until the list (and the `ErrorCode` schema) cover it.
fn every_api_error() -> Vec<ApiError> {
    let all = vec![
        ApiError::MalformedRequest,
        ApiError::InvalidHttp,
        ApiError::HeadersTooLarge,
        ApiError::InvalidInput(Vec::new()),
        ApiError::PayloadTooLarge,
        ApiError::UsernameTaken,
        ApiError::InvalidCredentials,
        ApiError::MissingToken {
            challenge: Challenge::Bearer,
        },
        ApiError::InvalidToken {
            challenge: Challenge::Bearer,
        },
        ApiError::TokenExpired {
            challenge: Challenge::Bearer,
        },
        ApiError::TokenReused,
        ApiError::SessionRevoked {
            challenge: Challenge::Bearer,
        },
        ApiError::InvalidDpopProof { login: false },
        ApiError::DpopRequired,
        ApiError::Forbidden,
        ApiError::AccountDisabled,
        ApiError::RegistrationClosed,
        ApiError::Conflict,
        ApiError::ForbiddenOrigin,
        ApiError::NotFound,
        ApiError::MethodNotAllowed,
        ApiError::RateLimited {
            retry_after_secs: 1,
        },
        ApiError::RequestTimeout,
        ApiError::Refused(actix_web::http::StatusCode::URI_TOO_LONG),
        ApiError::Unavailable(String::new()),
        ApiError::Internal(String::new()),
    ];
    for e in &all {
        match e {
            ApiError::MalformedRequest
            | ApiError::InvalidHttp
            | ApiError::HeadersTooLarge
            | ApiError::InvalidInput(_)
            | ApiError::PayloadTooLarge
            | ApiError::UsernameTaken
            | ApiError::InvalidCredentials
            | ApiError::MissingToken { .. }
            | ApiError::InvalidToken { .. }
            | ApiError::TokenExpired { .. }
            | ApiError::TokenReused
            | ApiError::SessionRevoked { .. }
            | ApiError::InvalidDpopProof { .. }
            | ApiError::DpopRequired
            | ApiError::Forbidden
            | ApiError::AccountDisabled
            | ApiError::RegistrationClosed
            | ApiError::Conflict
            | ApiError::ForbiddenOrigin
            | ApiError::NotFound
            | ApiError::MethodNotAllowed
            | ApiError::RateLimited { .. }
            | ApiError::RequestTimeout
            | ApiError::Refused(_)
            | ApiError::Unavailable(_)
            | ApiError::Internal(_) => {}
        }
    }
    all
}

#[test]
fn the_error_code_schema_lists_exactly_the_codes_the_api_answers() {
    let doc = served_document();
    let listed: BTreeSet<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let answered: BTreeSet<&str> = every_api_error().iter().map(ApiError::code).collect();
    assert_eq!(listed, answered);
}

#[test]
fn the_problem_schema_names_every_field_a_problem_body_has() {
    let doc = served_document();
    let properties = doc["components"]["schemas"]["Problem"]["properties"]
        .as_object()
        .unwrap();
    for e in every_api_error() {
        let response = actix_web::ResponseError::error_response(&e);
        let body = actix_web::body::to_bytes(response.into_body());
        let body: Value = serde_json::from_slice(
            &futures_util::FutureExt::now_or_never(body)
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        for field in body.as_object().unwrap().keys() {
            assert!(
                properties.contains_key(field),
                "{field} of {} is not in the schema",
                e.code()
            );
        }
    }
}

/// `docs/api.md` is the repository's API reference; it is rendered from this
/// document, so a route or constraint cannot change without it.
#[test]
fn docs_api_md_is_the_rendered_document() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let rendered = markdown::render(&served_document());
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/api.md is not the rendering of the OpenAPI document; \
         run `UPDATE_DOCS=1 cargo test -p web docs_api_md` and commit the file"
    );
}

#[test]
fn every_429_and_503_documents_retry_after_and_every_503_server_timing() {
    let doc = served_document();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for status in ["429", "503"] {
                if let Some(response) = op["responses"].get(status) {
                    seen += 1;
                    assert!(
                        response["headers"].get("Retry-After").is_some(),
                        "{method} {path} {status} lacks Retry-After"
                    );
                    assert_eq!(
                        response["headers"].get("Server-Timing").is_some(),
                        status == "503",
                        "{method} {path} {status}: Server-Timing on every 503 only"
                    );
                }
            }
        }
    }
    assert!(seen > 10, "only {seen} 429/503 responses documented");
}

#[test]
fn the_security_event_kinds_schema_lists_every_kind() {
    let doc = served_document();
    let listed: BTreeSet<&str> = doc["components"]["schemas"]["SecurityEventKindName"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let kinds: BTreeSet<&str> = domain::SecurityEventKind::ALL
        .into_iter()
        .map(domain::SecurityEventKind::as_str)
        .collect();
    assert_eq!(listed, kinds);
}

#[test]
fn a_user_patch_must_name_a_known_field() {
    let doc = served_document();
    let patch = &doc["components"]["schemas"]["PatchUserRequest"];
    assert_eq!(patch["minProperties"], 1, "{patch}");
    assert_eq!(patch["additionalProperties"], false, "{patch}");
}
