//! The session lifecycle over HTTP: register, login, refresh, logout,
//! sessions, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use integration_tests::*;
use reqwest::header::{COOKIE, USER_AGENT};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_backends!(
    register_login_refresh_logout,
    usernames_are_unique_regardless_of_case,
    rotation_changes_the_cookie_and_keeps_the_session,
    the_cookie_has_the_contract_attributes,
    reuse_kills_every_session_of_the_user,
    reuse_with_revoke_family_spares_other_sessions,
    logout_kills_refresh_and_access_at_once_and_is_idempotent,
    logout_all_ends_every_session,
    sessions_list_devices_with_exactly_one_current,
    deleting_another_users_session_is_not_found,
    native_clients_get_the_token_in_the_body,
    body_token_wins_over_cookie,
    grace_replay_gets_the_same_successor,
    another_agent_inside_the_grace_window_is_reuse,
    idle_sessions_expire,
    sessions_end_at_their_absolute_lifetime,
    login_with_an_old_cookie_ends_that_session,
    login_with_a_rotated_cookie_is_reuse_but_succeeds,
    the_oldest_session_is_evicted_beyond_the_limit,
);

async fn register_login_refresh_logout(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let r = app.register("alice").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["username"], "alice");
    assert_eq!(user["roles"], json!(["user"]));
    assert!(user["id"].as_str().unwrap().len() == 36);

    let tokens = app.login("alice").await;
    assert_eq!(tokens.body["token_type"], "Bearer");
    assert_eq!(tokens.body["expires_in"], 900);
    assert_eq!(tokens.body["user"]["username"], "alice");
    assert!(
        tokens.body.get("refresh_token").is_none(),
        "cookie delivery keeps the token out of the body"
    );
    assert!(tokens.body["refresh_expires_in"].as_u64().unwrap() > 0);

    let me: Value = app
        .get_bearer("/api/me", &tokens.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["session_id"], tokens.session_id);
    assert_eq!(me["id"], user["id"]);

    let r = app.refresh_cookie(&tokens.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let next = tokens_from_cookie(r).await;
    assert_eq!(app.me_status(&next.access).await, StatusCode::OK);

    let r = app
        .client
        .post(app.url("/auth/logout"))
        .header(COOKIE, format!("refresh_token={}", next.refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(clears_cookie(r.headers()));
    assert_problem(
        app.refresh_cookie(&next.refresh).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
}

async fn usernames_are_unique_regardless_of_case(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.register("Bob").await.status(), StatusCode::CREATED);
    assert_problem(
        app.register("Bob").await,
        StatusCode::CONFLICT,
        "username_taken",
    )
    .await;
    assert_problem(
        app.register("bOB").await,
        StatusCode::CONFLICT,
        "username_taken",
    )
    .await;
    // The name is kept as given and login works in any case.
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "bob", "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["username"], "Bob");
}

async fn rotation_changes_the_cookie_and_keeps_the_session(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let first = app.signed_up("carol").await;
    let second = tokens_from_cookie(app.refresh_cookie(&first.refresh).await).await;
    let third = tokens_from_cookie(app.refresh_cookie(&second.refresh).await).await;
    assert_ne!(first.refresh, second.refresh);
    assert_ne!(second.refresh, third.refresh);
    assert_eq!(first.session_id, second.session_id);
    assert_eq!(second.session_id, third.session_id);
    assert_ne!(first.access, second.access);
}

async fn the_cookie_has_the_contract_attributes(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.register("dave").await.status(), StatusCode::CREATED);
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "dave", "password": PASSWORD}),
        )
        .await;
    let cookie = set_cookie(r.headers()).unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/auth"] {
        assert!(
            cookie.split("; ").any(|a| a == attribute),
            "{cookie} lacks {attribute}"
        );
    }
    let max_age: u64 = cookie
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap()
        .parse()
        .unwrap();
    let thirty_days = 30 * 86_400;
    assert!(
        max_age <= thirty_days && max_age > thirty_days - 60,
        "Max-Age {max_age} is the session's time left"
    );
}

async fn reuse_kills_every_session_of_the_user(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.lifetimes.grace = std::time::Duration::ZERO;
        c.retry_window = std::time::Duration::ZERO;
        c.retry_window = std::time::Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let laptop = app.signed_up("erin").await;
    let phone = app.login("erin").await;
    let rotated = tokens_from_cookie(app.refresh_cookie(&laptop.refresh).await).await;

    // The old laptop token comes back: theft.
    let r = app.refresh_cookie(&laptop.refresh).await;
    assert!(clears_cookie(r.headers()), "the cookie is cleared");
    assert_problem(r, StatusCode::UNAUTHORIZED, "token_reused").await;

    // Every session of the user is dead, refresh and access alike.
    for access in [&rotated.access, &phone.access] {
        let r = app.get_bearer("/api/me", access).await;
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .unwrap()
                .to_str()
                .unwrap(),
            "Bearer error=\"invalid_token\""
        );
        assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
    }
    assert_problem(
        app.refresh_cookie(&rotated.refresh).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    assert_problem(
        app.refresh_cookie(&phone.refresh).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    // Other users are untouched.
    let other = app.signed_up("frank").await;
    assert_eq!(app.me_status(&other.access).await, StatusCode::OK);
    // The user can log in again.
    let again = app.login("erin").await;
    assert_eq!(app.me_status(&again.access).await, StatusCode::OK);
}

async fn reuse_with_revoke_family_spares_other_sessions(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.lifetimes.grace = std::time::Duration::ZERO;
        c.retry_window = std::time::Duration::ZERO;
        c.reuse_response = domain::ReuseResponse::RevokeFamily;
    })
    .await
    else {
        return;
    };
    let laptop = app.signed_up("gina").await;
    let phone = app.login("gina").await;
    let rotated = tokens_from_cookie(app.refresh_cookie(&laptop.refresh).await).await;
    assert_problem(
        app.refresh_cookie(&laptop.refresh).await,
        StatusCode::UNAUTHORIZED,
        "token_reused",
    )
    .await;
    assert_eq!(
        app.me_status(&rotated.access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me_status(&phone.access).await, StatusCode::OK);
    assert_eq!(
        app.refresh_cookie(&phone.refresh).await.status(),
        StatusCode::OK
    );
}

async fn logout_kills_refresh_and_access_at_once_and_is_idempotent(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let t = app.signed_up("hank").await;
    let logout = |cookie: Option<String>| {
        let mut req = app.client.post(app.url("/auth/logout"));
        if let Some(c) = cookie {
            req = req.header(COOKIE, format!("refresh_token={c}"));
        }
        req.send()
    };
    let r = logout(Some(t.refresh.clone())).await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(clears_cookie(r.headers()));
    assert_problem(
        app.get_bearer("/api/me", &t.access).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    assert_problem(
        app.refresh_cookie(&t.refresh).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    // Again, with no token, with garbage: still 204.
    assert_eq!(
        logout(Some(t.refresh.clone())).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(logout(None).await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(
        logout(Some("garbage".into())).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
}

async fn logout_all_ends_every_session(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let a = app.signed_up("ivy").await;
    let b = app.login("ivy").await;
    let r = app
        .client
        .post(app.url("/auth/logout-all"))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.me_status(&a.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&b.access).await, StatusCode::UNAUTHORIZED);
    assert_problem(
        app.refresh_cookie(&b.refresh).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    let r = app
        .client
        .post(app.url("/auth/logout-all"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_problem(r, StatusCode::UNAUTHORIZED, "missing_token").await;
}

async fn sessions_list_devices_with_exactly_one_current(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.register("jane").await.status(), StatusCode::CREATED);
    let mut sessions = Vec::new();
    for device in ["laptop", "phone", "tablet"] {
        let r = app
            .post_json(
                "/auth/login",
                &json!({"username": "jane", "password": PASSWORD, "device_name": device}),
            )
            .await;
        sessions.push(tokens_from_cookie(r).await);
    }
    let list: Value = app
        .get_bearer("/auth/sessions", &sessions[1].access)
        .await
        .json()
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3);
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], sessions[1].session_id);
    assert_eq!(current[0]["device_name"], "phone");
    for s in list {
        for field in [
            "id",
            "created_at",
            "last_used_at",
            "expires_at",
            "last_ip",
            "last_user_agent",
        ] {
            assert!(!s[field].is_null(), "{field} in {s}");
        }
        assert_eq!(s["last_user_agent"], UA);
        assert_eq!(s["last_ip"], "127.0.0.1");
    }
    // Deleting one of them removes it from the list and kills its tokens.
    let r = app
        .client
        .delete(app.url(&format!("/auth/sessions/{}", sessions[2].session_id)))
        .bearer_auth(&sessions[1].access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.me_status(&sessions[2].access).await,
        StatusCode::UNAUTHORIZED
    );
    let list: Value = app
        .get_bearer("/auth/sessions", &sessions[1].access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
}

async fn deleting_another_users_session_is_not_found(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let kim = app.signed_up("kim").await;
    let lee = app.signed_up("lee").await;
    let delete = |id: String| {
        app.client
            .delete(app.url(&format!("/auth/sessions/{id}")))
            .bearer_auth(&kim.access)
            .send()
    };
    assert_problem(
        delete(lee.session_id.clone()).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        app.me_status(&lee.access).await,
        StatusCode::OK,
        "lee's session survives"
    );
    assert_problem(
        delete("not-a-uuid".into()).await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

async fn native_clients_get_the_token_in_the_body(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    assert_eq!(app.register("mia").await.status(), StatusCode::CREATED);
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "mia", "password": PASSWORD, "token_delivery": "body"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        set_cookie(r.headers()).is_none(),
        "no cookie for body delivery"
    );
    let body: Value = r.json().await.unwrap();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .post_json("/auth/refresh", &json!({"refresh_token": refresh}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        set_cookie(r.headers()).is_none(),
        "a body token gets its successor in the body"
    );
    let next: Value = r.json().await.unwrap();
    let successor = next["refresh_token"].as_str().unwrap();
    assert_ne!(successor, refresh);
    let r = app
        .post_json("/auth/logout", &json!({"refresh_token": successor}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app
        .post_json("/auth/refresh", &json!({"refresh_token": successor}))
        .await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn body_token_wins_over_cookie(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let cookie_session = app.signed_up("ned").await;
    let r = app
        .post_json(
            "/auth/login",
            &json!({"username": "ned", "password": PASSWORD, "token_delivery": "body"}),
        )
        .await;
    let body: Value = r.json().await.unwrap();
    let body_token = body["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .client
        .post(app.url("/auth/refresh"))
        .header(USER_AGENT, UA)
        .header(COOKIE, format!("refresh_token={}", cookie_session.refresh))
        .json(&json!({"refresh_token": body_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let next: Value = r.json().await.unwrap();
    assert_eq!(next["session_id"], body["session_id"]);
    assert!(next["refresh_token"].is_string());
    // The cookie's token was not spent.
    assert_eq!(
        app.refresh_cookie(&cookie_session.refresh).await.status(),
        StatusCode::OK
    );
}

async fn grace_replay_gets_the_same_successor(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let t = app.signed_up("olga").await;
    let first = tokens_from_cookie(app.refresh_cookie(&t.refresh).await).await;
    let replay = tokens_from_cookie(app.refresh_cookie(&t.refresh).await).await;
    assert_eq!(
        first.refresh, replay.refresh,
        "the second tab gets the same successor"
    );
    assert_eq!(first.session_id, replay.session_id);
    assert_eq!(
        app.me_status(&first.access).await,
        StatusCode::OK,
        "nothing was revoked"
    );
    assert_eq!(app.me_status(&replay.access).await, StatusCode::OK);
    // The successor still rotates normally.
    assert_eq!(
        app.refresh_cookie(&first.refresh).await.status(),
        StatusCode::OK
    );
}

async fn another_agent_inside_the_grace_window_is_reuse(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let t = app.signed_up("pete").await;
    let first = tokens_from_cookie(app.refresh_cookie(&t.refresh).await).await;
    let r = app.refresh_cookie_as(&t.refresh, "curl/8.5.0").await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token_reused").await;
    assert_eq!(app.me_status(&first.access).await, StatusCode::UNAUTHORIZED);
}

async fn idle_sessions_expire(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.lifetimes.idle_ttl = std::time::Duration::from_millis(1_500)
    })
    .await
    else {
        return;
    };
    let t = app.signed_up("quinn").await;
    let next = tokens_from_cookie(app.refresh_cookie(&t.refresh).await).await;
    app.advance(std::time::Duration::from_millis(1_700));
    let r = app.refresh_cookie(&next.refresh).await;
    assert!(clears_cookie(r.headers()));
    assert_problem(r, StatusCode::UNAUTHORIZED, "token_expired").await;
    assert_problem(
        app.get_bearer("/api/me", &next.access).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
}

async fn sessions_end_at_their_absolute_lifetime(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.lifetimes.max_lifetime = std::time::Duration::from_millis(2_000);
        c.lifetimes.grace = std::time::Duration::ZERO;
        c.retry_window = std::time::Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let t = app.signed_up("rita").await;
    let mut refresh = t.refresh;
    // Keep rotating: activity does not extend the absolute lifetime.
    for _ in 0..3 {
        app.advance(std::time::Duration::from_millis(400));
        let r = app.refresh_cookie(&refresh).await;
        assert_eq!(r.status(), StatusCode::OK);
        refresh = tokens_from_cookie(r).await.refresh;
    }
    app.advance(std::time::Duration::from_millis(1_000));
    assert_problem(
        app.refresh_cookie(&refresh).await,
        StatusCode::UNAUTHORIZED,
        "token_expired",
    )
    .await;
}

async fn login_with_an_old_cookie_ends_that_session(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let old = app.signed_up("sam").await;
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header(COOKIE, format!("refresh_token={}", old.refresh))
        .json(&json!({"username": "sam", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let new = tokens_from_cookie(r).await;
    assert_ne!(new.session_id, old.session_id);
    assert_eq!(app.me_status(&old.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&new.access).await, StatusCode::OK);
    // A failed login ends nothing.
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header(COOKIE, format!("refresh_token={}", new.refresh))
        .json(&json!({"username": "sam", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(app.me_status(&new.access).await, StatusCode::OK);
}

async fn login_with_a_rotated_cookie_is_reuse_but_succeeds(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.lifetimes.grace = std::time::Duration::ZERO;
        c.retry_window = std::time::Duration::ZERO;
        c.retry_window = std::time::Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let old = app.signed_up("tina").await;
    let other_device = app.login("tina").await;
    let rotated = tokens_from_cookie(app.refresh_cookie(&old.refresh).await).await;
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header(COOKIE, format!("refresh_token={}", old.refresh))
        .json(&json!({"username": "tina", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let new = tokens_from_cookie(r).await;
    assert_eq!(app.me_status(&new.access).await, StatusCode::OK);
    assert_eq!(
        app.me_status(&rotated.access).await,
        StatusCode::UNAUTHORIZED,
        "reuse revoked the family"
    );
    assert_eq!(
        app.me_status(&other_device.access).await,
        StatusCode::UNAUTHORIZED,
        "and every other session"
    );
}

async fn the_oldest_session_is_evicted_beyond_the_limit(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.lifetimes.max_sessions = 2).await else {
        return;
    };
    let first = app.signed_up("uma").await;
    let second = app.login("uma").await;
    let third = app.login("uma").await;
    assert_eq!(app.me_status(&first.access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me_status(&second.access).await, StatusCode::OK);
    assert_eq!(app.me_status(&third.access).await, StatusCode::OK);
}
