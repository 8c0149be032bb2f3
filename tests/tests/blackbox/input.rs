//! Bad input of every kind gets the contract's error: never a 5xx, a panic
//! or a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use integration_tests::*;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_backends!(
    invalid_registrations_are_422,
    malformed_json_is_400_and_oversized_bodies_413,
    wrong_password_and_unknown_user_look_the_same,
    hostile_input_never_causes_a_server_error,
    foreign_origins_are_refused_and_spend_nothing,
);

async fn invalid_registrations_are_422(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for body in [
        json!({"username": "ab", "password": PASSWORD}),
        json!({"username": "a".repeat(65), "password": PASSWORD}),
        json!({"username": "jörg", "password": PASSWORD}),
        json!({"username": "x' OR '1'='1", "password": PASSWORD}),
        json!({"username": "valid_name", "password": "short"}),
        json!({"username": "valid_name", "password": "p".repeat(257)}),
        json!({"username": "valid_name"}),
        json!({"username": 42, "password": PASSWORD}),
        json!({"username": null, "password": PASSWORD}),
        json!(["username", "password"]),
    ] {
        let r = app.post_json("/auth/register", &body).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
    // A password of 8 multi-byte characters is long enough.
    let r = app
        .post_json(
            "/auth/register",
            &json!({"username": "unicode", "password": "пароль12"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
}

async fn malformed_json_is_400_and_oversized_bodies_413(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/logout",
    ] {
        let r = app
            .client
            .post(app.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body("{\"username\": ")
            .send()
            .await
            .unwrap();
        assert_problem(r, StatusCode::BAD_REQUEST, "malformed_request").await;
        let huge = json!({"username": "a".repeat(70 * 1024), "password": PASSWORD}).to_string();
        let r = app
            .client
            .post(app.url(path))
            .header(CONTENT_TYPE, "application/json")
            .body(huge)
            .send()
            .await
            .unwrap();
        assert_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    }
}

async fn wrong_password_and_unknown_user_look_the_same(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.register("yuri").await.status(), StatusCode::CREATED);
    let wrong = app
        .post_json(
            "/auth/login",
            &json!({"username": "yuri", "password": "not the password"}),
        )
        .await;
    let unknown = app
        .post_json(
            "/auth/login",
            &json!({"username": "nobody", "password": "not the password"}),
        )
        .await;
    let invalid = app
        .post_json("/auth/login", &json!({"username": "é", "password": "x"}))
        .await;
    let a = assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let b = assert_problem(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let c = assert_problem(invalid, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(a, b);
    assert_eq!(b, c);
}

async fn hostile_input_never_causes_a_server_error(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let t = app.signed_up("zoe").await;
    let long = "A".repeat(7_000);
    let cookies = [
        "refresh_token=".to_owned(),
        "refresh_token=garbage".to_owned(),
        format!("refresh_token={long}"),
        "refresh_token=twr_%00%ff".to_owned(),
        "refresh_token=twr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        "refresh_token='; DROP TABLE sessions; --".to_owned(),
        ";;;==;".to_owned(),
    ];
    for cookie in &cookies {
        for path in ["/auth/refresh", "/auth/logout", "/auth/login"] {
            let r = app
                .client
                .post(app.url(path))
                .header(COOKIE, cookie.as_str())
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_client_error() || r.status().is_success(),
                "{path} {cookie}: {}",
                r.status()
            );
        }
    }
    for auth in [
        long.as_str(),
        "Bearer ",
        "Bearer a.b",
        "Bearer ' OR 1=1 --",
        "bearer \u{7f}",
    ] {
        let r = app
            .client
            .get(app.url("/api/me"))
            .header("authorization", auth)
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth}");
        }
    }
    for body in [
        json!({"username": "'; DROP TABLE users; --", "password": PASSWORD}),
        json!({"username": "名前", "password": "パスワードパスワード"}),
        json!({"username": "zoe", "password": PASSWORD, "device_name": 5}),
        json!({"username": "zoe", "password": PASSWORD, "token_delivery": "carrier-pigeon"}),
        json!({"refresh_token": 12}),
        json!({"refresh_token": "x".repeat(60_000)}),
    ] {
        for path in [
            "/auth/login",
            "/auth/refresh",
            "/auth/register",
            "/auth/logout",
        ] {
            let r = app.post_json(path, &body).await;
            assert!(
                r.status().is_client_error() || r.status().is_success(),
                "{path} {body}: {}",
                r.status()
            );
            if !r.status().is_success() {
                problem(r).await;
            }
        }
    }
    let r = app
        .client
        .delete(app.url("/auth/sessions/%27%20OR%201%3D1"))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    // The user's session survived all of it.
    assert_eq!(app.me_status(&t.access).await, StatusCode::OK);
}

async fn foreign_origins_are_refused_and_spend_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.allowed_origins = vec!["https://app.example.com".into()]
    })
    .await
    else {
        return;
    };
    let t = app.signed_up("abe").await;
    let refresh_from = |origin: &str| {
        app.client
            .post(app.url("/auth/refresh"))
            .header(ORIGIN, origin)
            .header(COOKIE, format!("refresh_token={}", t.refresh))
            .header("user-agent", UA)
            .send()
    };
    let r = refresh_from("https://evil.example").await.unwrap();
    assert!(
        set_cookie(r.headers()).is_none(),
        "a refused origin leaves the cookie alone"
    );
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden_origin").await;
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header(ORIGIN, "null")
        .json(&json!({"username": "abe", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden_origin").await;
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden_origin").await;
    // The token was not spent: the allowed origin and the server's own origin work.
    assert_eq!(
        refresh_from("https://app.example.com")
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let body: Value = app
        .post_json(
            "/auth/login",
            &json!({"username": "abe", "password": PASSWORD}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(body["access_token"].is_string());
    let own = app.address.clone();
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header(ORIGIN, own)
        .json(&json!({"username": "abe", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// A database that goes away mid-flight answers 503 problems that say
/// nothing internal, and the server keeps serving what needs no database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_database_is_a_503_without_internals() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let t = app.signed_up("gone").await;
    let (client, address) = (app.client.clone(), app.address.clone());
    drop(app.database); // DROP DATABASE … WITH (FORCE): every connection dies
    let url = |p: &str| format!("{address}{p}");
    let responses = [
        client
            .post(url("/auth/register"))
            .json(&json!({"username": "later", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
        client
            .get(url("/api/me"))
            .bearer_auth(&t.access)
            .send()
            .await
            .unwrap(),
        client
            .post(url("/auth/refresh"))
            .header(COOKIE, format!("refresh_token={}", t.refresh))
            .send()
            .await
            .unwrap(),
    ];
    for r in responses {
        assert!(
            set_cookie(r.headers()).is_none(),
            "an outage does not log the browser out"
        );
        let body = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
        let text = body.to_string().to_lowercase();
        for internal in ["database", "postgres", "diesel", "connection", "tw_"] {
            assert!(!text.contains(internal), "{text}");
        }
        assert!(body["error_id"].is_string());
    }
    let r = client
        .get(url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
