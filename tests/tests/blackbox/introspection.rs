//! `POST /auth/introspect` (RFC 7662 style) and `POST /auth/revoke` (RFC
//! 7009 style) over HTTP, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use integration_tests::*;
use reqwest::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    introspection_needs_the_secret_or_an_admin,
    a_live_access_token_is_active_with_its_claims,
    expired_revoked_malformed_and_unknown_tokens_are_inactive,
    introspection_takes_a_form_body_and_needs_a_token_field,
    revoking_a_refresh_token_ends_its_session,
    revoking_an_access_token_refuses_only_that_token,
    revocation_always_answers_200_but_needs_a_token_field,
);

const SECRET: &str = "resource-servers-shared-secret";

async fn app(backend: Backend) -> Option<TestApp> {
    TestApp::spawn_with(backend, |c| {
        c.introspection_token = Some(web::IntrospectionSecret::new(SECRET));
    })
    .await
}

async fn introspect_as(app: &TestApp, bearer: Option<&str>, token: &str) -> Response {
    let mut req = app
        .client
        .post(app.url("/auth/introspect"))
        .json(&json!({ "token": token }));
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    req.send().await.unwrap()
}

/// Introspects with the shared secret; the answer's body.
async fn introspect(app: &TestApp, token: &str) -> Value {
    let r = introspect_as(app, Some(SECRET), token).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    r.json().await.unwrap()
}

async fn revoke(app: &TestApp, body: &Value) -> Response {
    app.post_json("/auth/revoke", body).await
}

async fn introspection_needs_the_secret_or_an_admin(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let user = app.signed_up("walt").await;
    let root = app.admin("root").await;

    let r = introspect_as(&app, None, &user.access).await;
    assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
    assert_problem(r, StatusCode::UNAUTHORIZED, "missing_token").await;
    let r = introspect_as(&app, Some("not-the-secret"), &user.access).await;
    assert_eq!(
        r.headers()[WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\""
    );
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    let almost = &SECRET[..SECRET.len() - 1];
    assert_problem(
        introspect_as(&app, Some(almost), &user.access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    assert_problem(
        introspect_as(&app, Some(&user.access), &user.access).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;

    for credential in [SECRET, root.access.as_str()] {
        let r = introspect_as(&app, Some(credential), &user.access).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["active"], true);
    }

    // Without a configured secret, only admins may introspect.
    let Some(closed) = TestApp::spawn(backend).await else {
        return;
    };
    let u = closed.signed_up("xena").await;
    assert_problem(
        introspect_as(&closed, Some(SECRET), &u.access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}

async fn a_live_access_token_is_active_with_its_claims(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let t = app.signed_up("yuri").await;
    let body = introspect(&app, &t.access).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["sub"], t.body["user"]["id"]);
    assert_eq!(body["sid"], t.session_id);
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(body["iss"], "tokenwarden");
    assert_eq!(body["aud"], "tokenwarden");
    assert_eq!(body["token_type"], "Bearer");
    let (iat, exp) = (body["iat"].as_i64().unwrap(), body["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 900);
    assert!(body["jti"].as_str().is_some_and(|j| j.len() == 36));
}

async fn expired_revoked_malformed_and_unknown_tokens_are_inactive(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.introspection_token = Some(web::IntrospectionSecret::new(SECRET));
        // `exp` is in whole seconds: a token lives between 4 and 5 s.
        c.lifetimes.access_ttl = Duration::from_secs(5);
    })
    .await
    else {
        return;
    };
    let inactive = json!({ "active": false });

    // Expired.
    let t = app.signed_up("zack").await;
    assert_eq!(introspect(&app, &t.access).await["active"], true);
    app.advance(Duration::from_millis(3_500));
    assert_eq!(introspect(&app, &t.access).await["active"], true, "not yet");
    app.advance(Duration::from_millis(1_600));
    assert_eq!(introspect(&app, &t.access).await, inactive);

    // Revoked: the session by logout, then one access token of a live
    // session by /auth/revoke.
    let fresh = tokens_from_cookie(app.refresh_cookie(&t.refresh).await).await;
    assert_eq!(introspect(&app, &fresh.access).await["active"], true);
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .header("cookie", format!("refresh_token={}", fresh.refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(introspect(&app, &fresh.access).await, inactive);
    let other = app.login("zack").await;
    assert_eq!(
        revoke(&app, &json!({ "token": other.access }))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(introspect(&app, &other.access).await, inactive);

    // Malformed, and not access tokens at all.
    let mut forged = other.access.clone();
    forged.pop();
    forged.push(if other.access.ends_with('A') {
        'B'
    } else {
        'A'
    });
    for garbage in [
        "",
        "garbage",
        "a.b.c",
        &forged,
        &other.refresh,
        &"x".repeat(10_000),
    ] {
        assert_eq!(introspect(&app, garbage).await, inactive, "{garbage:.20}");
    }

    // Unknown: genuine-looking, but signed by another deployment's key.
    let Some(elsewhere) = TestApp::spawn(backend).await else {
        return;
    };
    let foreign = elsewhere.signed_up("zack").await;
    assert_eq!(introspect(&app, &foreign.access).await, inactive);
}

async fn introspection_takes_a_form_body_and_needs_a_token_field(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let t = app.signed_up("abel").await;
    let r = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(SECRET)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={}&token_type_hint=access_token", t.access))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(body["sid"], t.session_id);

    let r = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(SECRET)
        .json(&json!({ "tokn": t.access }))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    let r = app
        .client
        .post(app.url("/auth/introspect"))
        .bearer_auth(SECRET)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::BAD_REQUEST, "malformed_request").await;
}

async fn revoking_a_refresh_token_ends_its_session(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let t = app.signed_up("bert").await;
    let other = app.login("bert").await;
    let r = revoke(
        &app,
        &json!({ "token": t.refresh, "token_type_hint": "refresh_token" }),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_problem(
        app.refresh_cookie(&t.refresh).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    assert_problem(
        app.get_bearer("/api/me", &t.access).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    assert_eq!(
        app.me_status(&other.access).await,
        StatusCode::OK,
        "other sessions live on"
    );
    // A form body works as RFC 7009 has it; a revoked token again is 200.
    let r = app
        .client
        .post(app.url("/auth/revoke"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={}", other.refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.me_status(&other.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        revoke(&app, &json!({ "token": other.refresh }))
            .await
            .status(),
        StatusCode::OK
    );
}

async fn revoking_an_access_token_refuses_only_that_token(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    let t = app.signed_up("cora").await;
    assert_eq!(
        revoke(&app, &json!({ "token": t.access })).await.status(),
        StatusCode::OK
    );
    let r = app.get_bearer("/api/me", &t.access).await;
    assert_eq!(
        r.headers()[WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\""
    );
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // The session is live: a refresh gives a working access token.
    let next = tokens_from_cookie(app.refresh_cookie(&t.refresh).await).await;
    assert_eq!(next.session_id, t.session_id);
    assert_eq!(app.me_status(&next.access).await, StatusCode::OK);
}

async fn revocation_always_answers_200_but_needs_a_token_field(backend: Backend) {
    let Some(app) = app(backend).await else {
        return;
    };
    for token in [
        json!(""),
        json!("garbage"),
        json!("twr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        json!("eyJhbGciOiJub25lIn0.e30."),
    ] {
        let r = revoke(&app, &json!({ "token": token })).await;
        assert_eq!(r.status(), StatusCode::OK, "{token}");
        assert!(r.text().await.unwrap().is_empty());
    }
    for body in [
        json!({}),
        json!({ "token": 5 }),
        json!({ "token": null }),
        json!(["t"]),
    ] {
        assert_problem(
            revoke(&app, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        )
        .await;
    }
    let r = app
        .client
        .post(app.url("/auth/revoke"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("token_type_hint=refresh_token")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
}
