#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::dev::ServiceResponse;
use actix_web::http::header::HeaderName;
use actix_web::middleware::from_fn;
use actix_web::test::{self as actix_test, TestRequest};
use actix_web::{web, App, HttpResponse};
use serde_json::Value;

use super::*;

const APP: &str = "https://app.example.com";

/// Calls an app with CORS for [`APP`] around three routes.
#[expect(
    clippy::disallowed_methods,
    reason = "a stand-in app for the middleware, not the API"
)]
async fn call(req: TestRequest) -> ServiceResponse {
    let config = WebConfig {
        allowed_origins: vec![APP.to_owned()],
        ..WebConfig::default()
    };
    let app = actix_test::init_service(
        App::new()
            .wrap(cors(&config))
            .wrap(from_fn(cors_answers))
            .route("/auth/refresh", web::post().to(HttpResponse::Ok))
            .route("/api/me", web::get().to(HttpResponse::Ok))
            .route("/healthz", web::get().to(HttpResponse::Ok)),
    )
    .await;
    actix_test::call_service(&app, req.to_request()).await
}

fn header(res: &ServiceResponse, name: HeaderName) -> Option<&str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

fn preflight(path: &str, origin: &str, headers: &str) -> TestRequest {
    TestRequest::default()
        .method(Method::OPTIONS)
        .uri(path)
        .insert_header((header::ORIGIN, origin))
        .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
        .insert_header((header::ACCESS_CONTROL_REQUEST_HEADERS, headers))
}

#[actix_web::test]
async fn a_listed_origins_preflight_answers_204_with_methods_headers_and_credentials() {
    let res = call(preflight(
        "/auth/refresh",
        APP,
        "content-type, dpop, x-request-id",
    ))
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(APP));
    assert_eq!(
        header(&res, header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        Some("true")
    );
    let methods = header(&res, header::ACCESS_CONTROL_ALLOW_METHODS).unwrap();
    for m in ["GET", "POST", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = header(&res, header::ACCESS_CONTROL_ALLOW_HEADERS)
        .unwrap()
        .to_ascii_lowercase();
    for h in REQUEST_HEADERS {
        assert!(headers.contains(h), "{headers} lacks {h}");
    }
    assert!(header(&res, header::VARY).unwrap().contains("Origin"));
}

#[actix_web::test]
async fn origins_compare_case_insensitively() {
    let res = call(preflight(
        "/auth/refresh",
        "HTTPS://APP.EXAMPLE.COM",
        "content-type",
    ))
    .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[actix_web::test]
async fn preflights_from_other_origins_to_other_paths_or_for_other_headers_get_403_without_cors_headers(
) {
    for (path, origin, headers) in [
        ("/auth/refresh", "https://evil.example", "content-type"),
        (
            "/auth/refresh",
            "https://app.example.com.evil.example",
            "content-type",
        ),
        ("/auth/refresh", "null", "content-type"),
        ("/healthz", APP, "content-type"),
        ("/auth/refresh", APP, "content-type, x-evil"),
    ] {
        let res = call(preflight(path, origin, headers)).await;
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "{path} {origin} {headers}"
        );
        assert_eq!(header(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), None);
        assert_eq!(header(&res, header::ACCESS_CONTROL_ALLOW_CREDENTIALS), None);
        assert_eq!(
            header(&res, header::CONTENT_TYPE),
            Some("application/problem+json")
        );
        let body: Value = actix_test::read_body_json(res).await;
        assert_eq!(body["code"], "forbidden_origin");
    }
}

#[actix_web::test]
async fn actual_requests_get_cors_headers_only_for_listed_origins_on_cors_paths() {
    let get = |path: &str, origin: Option<&str>| {
        let mut r = TestRequest::get().uri(path);
        if let Some(o) = origin {
            r = r.insert_header((header::ORIGIN, o));
        }
        r
    };
    let res = call(get("/api/me", Some(APP))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some(APP));
    assert_eq!(
        header(&res, header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        Some("true")
    );
    assert!(header(&res, header::ACCESS_CONTROL_EXPOSE_HEADERS)
        .unwrap()
        .to_ascii_lowercase()
        .contains("retry-after"));
    assert!(header(&res, header::VARY).unwrap().contains("Origin"));

    for (path, origin) in [
        ("/api/me", Some("https://evil.example")),
        ("/api/me", None),
        ("/healthz", Some(APP)),
    ] {
        let res = call(get(path, origin)).await;
        assert_eq!(res.status(), StatusCode::OK, "served as before: {path}");
        assert_eq!(
            header(&res, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            None,
            "{path} {origin:?}"
        );
        assert_eq!(header(&res, header::ACCESS_CONTROL_ALLOW_CREDENTIALS), None);
        assert!(header(&res, header::VARY).unwrap().contains("Origin"));
    }
}

#[test]
fn only_the_three_prefixes_speak_cors() {
    let listed = [APP.to_owned()];
    assert!(is_allowed(&listed, APP.as_bytes(), "/auth/login"));
    assert!(is_allowed(&listed, APP.as_bytes(), "/admin/users"));
    assert!(is_allowed(&listed, APP.as_bytes(), "/api/me"));
    for path in [
        "/",
        "/console",
        "/healthz",
        "/authx/login",
        "/.well-known/jwks.json",
    ] {
        assert!(!is_allowed(&listed, APP.as_bytes(), path), "{path}");
    }
    assert!(!is_allowed(&[], APP.as_bytes(), "/auth/login"));
}
