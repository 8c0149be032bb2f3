//! What every response gets, whatever produced it (a handler, an extractor
//! or Actix's router): the security headers, and a problem+json body for
//! every error, including the framework's own empty 404s and 405s. A wrong
//! method on a known path is `405 method_not_allowed` with `Allow`.
//!
//! Wrap the app with [`problems`] innermost and [`security_headers`]
//! outermost, so that the headers land on the rewritten answers too.
//!
//! What Actix's HTTP/1 parser answers by itself before any application
//! code runs (a malformed request line or header, 400; a header section
//! over its limits, 431; a head that did not arrive within
//! `TOKENWARDEN_REQUEST_TIMEOUT`, 408) is rewritten on the connection
//! instead: see [`crate::wire`].

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{web, Error, ResponseError as _};
use utoipa::openapi::OpenApi as Document;

use crate::error::ApiError;

/// The headers every response carries.
pub const SECURITY_HEADERS: [(header::HeaderName, &str); 2] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
];

/// [`SECURITY_HEADERS`] on every response (a handler's own value wins).
pub fn security_headers() -> DefaultHeaders {
    SECURITY_HEADERS
        .into_iter()
        .fold(DefaultHeaders::new(), |headers, header| headers.add(header))
}

/// The policy of HTML that sets none of its own (Swagger UI's pages under
/// `/docs`): scripts only from this origin, never inline; inline styles,
/// which Swagger UI's markup uses; no framing.
pub const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Gives an HTML response without a Content-Security-Policy
/// [`DOCS_CONTENT_SECURITY_POLICY`] (the pages of `crate::pages` set their
/// own, stricter one).
fn html_policy(headers: &mut header::HeaderMap) {
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html && !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CONTENT_SECURITY_POLICY),
        );
    }
}

/// One documented path: its segments (`None` for a `{parameter}`) and
/// the methods it answers.
struct Route {
    segments: Vec<Option<String>>,
    methods: Vec<Method>,
}

/// Every route of an app, read from the OpenAPI document that registering
/// them made (`crate::api` puts it in the app data), so that [`problems`]
/// knows which methods a path has.
pub struct Routes(Vec<Route>);

impl Routes {
    /// The paths and methods of `doc`.
    pub fn of(doc: &Document) -> Self {
        Self(
            doc.paths
                .paths
                .iter()
                .map(|(path, item)| Route {
                    segments: path
                        .split('/')
                        .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                        .collect(),
                    methods: [
                        (item.get.is_some(), Method::GET),
                        (item.post.is_some(), Method::POST),
                        (item.put.is_some(), Method::PUT),
                        (item.patch.is_some(), Method::PATCH),
                        (item.delete.is_some(), Method::DELETE),
                    ]
                    .into_iter()
                    .filter_map(|(has, m)| has.then_some(m))
                    .collect(),
                })
                .collect(),
        )
    }

    /// The methods answered on `path`; `None` when no route has it.
    pub fn allowed_methods(&self, path: &str) -> Option<Vec<Method>> {
        let segments: Vec<&str> = path.split('/').collect();
        let mut allowed: Vec<Method> = Vec::new();
        let mut known = false;
        for route in &self.0 {
            let matches = route.segments.len() == segments.len()
                && route
                    .segments
                    .iter()
                    .zip(&segments)
                    .all(|(want, got)| want.as_deref().is_none_or(|w| w == *got));
            if matches {
                known = true;
                for m in &route.methods {
                    if !allowed.contains(m) {
                        allowed.push(m.clone());
                    }
                }
            }
        }
        known.then_some(allowed)
    }
}

fn is_problem(res: &ServiceResponse<BoxBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"))
}

/// The problem for an error status that came without one.
fn problem_for(status: StatusCode) -> ApiError {
    match status {
        StatusCode::BAD_REQUEST => ApiError::MalformedRequest,
        StatusCode::NOT_FOUND => ApiError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeadersTooLarge,
        s if s.is_server_error() => ApiError::Internal(format!("framework answered {s}")),
        s => ApiError::Refused(s),
    }
}

/// The middleware: `App::new().wrap(actix_web::middleware::from_fn(problems))`.
///
/// # Errors
/// Passes the inner service's errors on unchanged (handlers and
/// extractors answer with responses; only middleware returns errors, and
/// ours are [`ApiError`]s).
pub async fn problems(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let mut res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        html_policy(res.headers_mut());
        return Ok(res);
    }
    // A 404 or 405 for a method the path does not have: handlers only
    // answer their own methods, so a 404 of theirs is never rewritten.
    if matches!(
        status,
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
    ) {
        let allowed = res
            .request()
            .app_data::<web::Data<Routes>>()
            .and_then(|routes| routes.allowed_methods(res.request().path()));
        if let Some(allowed) = allowed {
            if !allowed.contains(res.request().method()) {
                let mut answer = ApiError::MethodNotAllowed.error_response();
                let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
                if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                    answer.headers_mut().insert(header::ALLOW, value);
                }
                return Ok(res.into_response(answer));
            }
        }
    }
    if is_problem(&res) {
        return Ok(res);
    }
    let answer = problem_for(status).error_response();
    Ok(res.into_response(answer))
}

#[cfg(test)]
mod tests {
    use actix_web::middleware::from_fn;
    use actix_web::{test as actix_test, web, App, HttpResponse};

    use super::*;

    fn api_routes() -> Routes {
        Routes::of(&crate::openapi::document("refresh_token", true))
    }

    #[test]
    fn documented_paths_know_their_methods_and_parameters_match_any_segment() {
        let routes = api_routes();
        assert_eq!(
            routes.allowed_methods("/auth/login"),
            Some(vec![Method::POST])
        );
        assert_eq!(
            routes.allowed_methods("/auth/sessions/abc"),
            Some(vec![Method::DELETE])
        );
        assert_eq!(
            routes.allowed_methods("/admin/users/abc"),
            Some(vec![Method::GET, Method::PATCH, Method::DELETE])
        );
        assert_eq!(routes.allowed_methods("/auth/nothing"), None);
        assert_eq!(routes.allowed_methods("/auth/sessions/abc/def"), None);
    }

    #[actix_web::test]
    #[expect(
        clippy::disallowed_methods,
        reason = "a stand-in app for the middleware, not the API"
    )]
    async fn framework_errors_become_problems_with_the_security_headers() {
        let app = actix_test::init_service(
            App::new()
                .wrap(from_fn(problems))
                .wrap(security_headers())
                .app_data(web::Data::new(api_routes()))
                .service(web::resource("/auth/login").route(web::post().to(HttpResponse::Ok)))
                .route("/plain", web::get().to(HttpResponse::BadRequest)),
        )
        .await;
        let res = actix_test::call_service(
            &app,
            actix_test::TestRequest::get()
                .uri("/auth/login")
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers().get(header::ALLOW).unwrap(), "POST");
        assert_eq!(
            res.headers().get(header::X_CONTENT_TYPE_OPTIONS).unwrap(),
            "nosniff"
        );
        assert_eq!(
            res.headers().get(header::REFERRER_POLICY).unwrap(),
            "no-referrer"
        );
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );

        let res = actix_test::call_service(
            &app,
            actix_test::TestRequest::get().uri("/plain").to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value = actix_test::read_body_json(res).await;
        assert_eq!(body["code"], "malformed_request");

        let res = actix_test::call_service(
            &app,
            actix_test::TestRequest::get().uri("/unknown").to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let body: serde_json::Value = actix_test::read_body_json(res).await;
        assert_eq!(body["code"], "not_found");
    }
}
