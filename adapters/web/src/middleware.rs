//! Per-request instrumentation, wrapped around every route: a request id
//! (the caller's `X-Request-Id` when it is sane, a fresh one otherwise,
//! returned in the response), a tracing span that the handlers' events and
//! blocking work run in, one log line per request, and the HTTP metrics.
//!
//! Nothing from the request but its method, route pattern and id is
//! recorded: no raw path (it may carry ids), no query string, no header
//! value, no body.

use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage as _};
use tracing::field::Empty;
use tracing::Instrument as _;

/// The request id header, read and written.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest incoming request id honoured.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Counter of answered requests, labelled `method`, `route`, `status`.
pub const HTTP_REQUESTS: &str = "tokenwarden_http_requests_total";
/// Histogram of request durations in seconds, same labels.
pub const HTTP_DURATION: &str = "tokenwarden_http_request_duration_seconds";

/// The `route` label of requests that matched no route: raw paths would
/// let any client create label values without bound.
pub const UNMATCHED: &str = "unmatched";

/// The id of the current request, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Whether an incoming `X-Request-Id` is used as it is: 1 to 128 characters
/// of `[A-Za-z0-9._:-]`. Anything else (spaces, quotes, control characters
/// that could forge log lines) is replaced by a fresh id.
pub fn is_sane_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane_request_id(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Standard methods by name; anything else is `other`, so clients cannot
/// create label values.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Requests slower than this are logged at info level even when they
/// succeed.
pub const SLOW: Duration = Duration::from_secs(1);

/// The middleware: `App::new().wrap(actix_web::middleware::from_fn(instrument))`.
///
/// # Errors
/// Passes the inner service's errors on unchanged.
pub async fn instrument(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let route = req.match_pattern();
    let route = route.as_deref().unwrap_or(UNMATCHED);
    let method = method_label(req.method());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method,
        route,
        user_id = Empty,
        session_id = Empty,
    );
    req.extensions_mut().insert(RequestId(id.clone()));
    let result = next.call(req).instrument(span.clone()).await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    let elapsed = started.elapsed();
    record_metrics(method, route, status, elapsed);
    span.in_scope(|| log_completed(status, elapsed));
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(res)
}

fn record_metrics(method: &'static str, route: &str, status: StatusCode, elapsed: Duration) {
    let status = match status_label(status) {
        Some(s) => metrics::Label::new("status", s),
        None => metrics::Label::new("status", status.as_str().to_owned()),
    };
    let labels = vec![
        metrics::Label::new("method", method),
        metrics::Label::new("route", route.to_owned()),
        status,
    ];
    metrics::counter!(HTTP_REQUESTS, labels.iter()).increment(1);
    metrics::histogram!(HTTP_DURATION, labels).record(elapsed.as_secs_f64());
}

/// The statuses this API answers, as static labels (no allocation).
fn status_label(status: StatusCode) -> Option<&'static str> {
    Some(match status.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        308 => "308",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => return None,
    })
}

/// One line per request: at info level for failures (4xx, 5xx) and slow
/// requests, at debug level for the rest, which the metrics count anyway.
/// A JSON line per successful refresh would cost more than all the other
/// instrumentation together (see the `instrumentation` benchmark);
/// `RUST_LOG=info,web::middleware=debug` logs every request.
fn log_completed(status: StatusCode, elapsed: Duration) {
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    if status.is_client_error() || status.is_server_error() || elapsed >= SLOW {
        tracing::info!(status = status.as_u16(), duration_ms, "request completed");
    } else {
        tracing::debug!(status = status.as_u16(), duration_ms, "request completed");
    }
}

/// Records who is asking on the current request span, once a handler knows.
/// Both fields in one go: the JSON log format re-parses a span's fields on
/// every record.
pub fn record_principal(user_id: impl std::fmt::Display, session_id: impl std::fmt::Display) {
    let span = tracing::Span::current();
    let Some(fields) = span.metadata().map(tracing::Metadata::fields) else {
        return;
    };
    let (Some(user_field), Some(session_field)) =
        (fields.field("user_id"), fields.field("session_id"))
    else {
        return;
    };
    let user = tracing::field::display(user_id);
    let session = tracing::field::display(session_id);
    span.record_all(&fields.value_set(&[
        (&user_field, Some(&user as &dyn tracing::Value)),
        (&session_field, Some(&session as &dyn tracing::Value)),
    ]));
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::from_fn;
    use actix_web::{test as actix_test, web, App, HttpResponse};

    use super::*;

    #[test]
    fn request_ids_are_sane_only_when_short_and_plain() {
        assert!(is_sane_request_id("a1b2-c3d4.e5_f6:7"));
        assert!(is_sane_request_id(&"x".repeat(128)));
        for bad in [
            "",
            "has space",
            "quote\"",
            "new\nline",
            "ünï",
            &"x".repeat(129),
        ] {
            assert!(!is_sane_request_id(bad), "{bad:?}");
        }
    }

    #[expect(
        clippy::disallowed_methods,
        reason = "a stand-in app for the middleware, not the API"
    )]
    async fn id_of(request_id: Option<&str>) -> String {
        let app = actix_test::init_service(
            App::new()
                .wrap(from_fn(instrument))
                .route("/x", web::get().to(HttpResponse::Ok)),
        )
        .await;
        let mut req = actix_test::TestRequest::get().uri("/x");
        if let Some(id) = request_id {
            req = req.insert_header((REQUEST_ID, id));
        }
        let res = actix_test::call_service(&app, req.to_request()).await;
        res.headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    #[actix_web::test]
    async fn a_sane_incoming_id_is_returned_and_an_insane_one_replaced() {
        assert_eq!(id_of(Some("trace-42")).await, "trace-42");
        let fresh = id_of(Some("bad id; rm -rf")).await;
        assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
        let fresh = id_of(None).await;
        assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "{fresh}");
        assert_ne!(fresh, id_of(None).await);
    }
}
