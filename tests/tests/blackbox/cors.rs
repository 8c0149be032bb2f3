//! CORS and the cookie settings over HTTP on the real server (the Chromium
//! tests in `tests/tests/browser` drive the pages themselves).

use integration_tests::{assert_problem, set_cookie, Backend, TestApp, PASSWORD, UA};
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, USER_AGENT, VARY,
};
use reqwest::{Method, StatusCode};
use serde_json::json;
use web::CookieSameSite;

const APP: &str = "https://app.example.com";

async fn app() -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |c| {
        c.allowed_origins = vec![APP.to_owned()];
        c.cookie_same_site = CookieSameSite::None;
        c.cookie_path = "/id/auth".to_owned();
        c.cookie_domain = Some("example.com".to_owned());
    })
    .await
    .unwrap()
}

fn header(r: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_origin_gets_credentialed_cors_and_the_configured_cookie() {
    let app = app().await;
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/auth/login"))
        .header(ORIGIN, APP)
        .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(ACCESS_CONTROL_REQUEST_HEADERS, "content-type,dpop")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header(&preflight, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some(APP)
    );
    assert!(header(&preflight, ACCESS_CONTROL_ALLOW_HEADERS)
        .unwrap()
        .to_ascii_lowercase()
        .contains("dpop"));

    assert_eq!(app.register("carol").await.status(), StatusCode::CREATED);
    let login = app
        .client
        .post(app.url("/auth/login"))
        .header(ORIGIN, APP)
        .header(USER_AGENT, UA)
        .json(&json!({"username": "carol", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(
        header(&login, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(),
        Some(APP)
    );
    assert_eq!(
        header(&login, ACCESS_CONTROL_ALLOW_CREDENTIALS).as_deref(),
        Some("true")
    );
    assert!(header(&login, VARY).unwrap().contains("Origin"));
    let cookie = set_cookie(login.headers()).unwrap();
    for part in [
        "HttpOnly",
        "Secure",
        "SameSite=None",
        "Path=/id/auth",
        "Domain=example.com",
    ] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlisted_origin_gets_no_cors_headers_and_a_refused_preflight() {
    let app = app().await;
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/auth/refresh"))
        .header(ORIGIN, "https://evil.example")
        .header(ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&preflight, ACCESS_CONTROL_ALLOW_ORIGIN), None);
    assert_problem(preflight, StatusCode::FORBIDDEN, "forbidden_origin").await;

    // The actual request is refused by the Origin check, without CORS
    // headers, so a page there cannot even read that answer.
    let refresh = app
        .client
        .post(app.url("/auth/refresh"))
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&refresh, ACCESS_CONTROL_ALLOW_ORIGIN), None);
    assert_eq!(header(&refresh, ACCESS_CONTROL_ALLOW_CREDENTIALS), None);
    assert_problem(refresh, StatusCode::FORBIDDEN, "forbidden_origin").await;
}
