//! Accounts over HTTP, on SQLite and PostgreSQL: the password change, user
//! management by admins, disabled and deleted users, the registration
//! policy, and the races that must not leave a session alive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use integration_tests::audit_support::*;
use integration_tests::*;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    a_password_change_revokes_every_other_session_at_once,
    a_wrong_current_password_counts_toward_the_login_limit,
    a_password_change_racing_a_refresh_of_another_session_leaves_it_dead,
    admins_list_users_by_prefix_page_by_page,
    admins_create_read_and_change_users,
    disabling_a_user_ends_everything_at_once,
    an_admin_cannot_lock_themselves_out,
    an_admin_reset_revokes_every_session,
    deleting_a_user_removes_them_but_keeps_the_trail,
    deleting_a_user_while_they_refresh_leaves_nothing_alive,
    closed_registration_leaves_user_creation_to_admins,
);

const NEW_PASSWORD: &str = "a much better passphrase";
const NOBODY: &str = "00000000-0000-4000-8000-000000000000";

async fn change_password(app: &TestApp, access: &str, current: &str, new: &str) -> Response {
    app.client
        .post(app.url("/auth/password"))
        .bearer_auth(access)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
}

async fn login_with(app: &TestApp, username: &str, password: &str) -> Response {
    app.post_json(
        "/auth/login",
        &json!({"username": username, "password": password}),
    )
    .await
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    access: &str,
    body: Option<Value>,
) -> Response {
    let mut r = app
        .client
        .request(method, app.url(path))
        .bearer_auth(access);
    if let Some(body) = body {
        r = r.json(&body);
    }
    r.send().await.unwrap()
}

async fn patch(app: &TestApp, id: &str, access: &str, body: Value) -> Response {
    send(
        app,
        reqwest::Method::PATCH,
        &format!("/admin/users/{id}"),
        access,
        Some(body),
    )
    .await
}

/// The events of `user` (newest first), by kind, with their details.
async fn events_of(app: &TestApp, admin: &Tokens, user: &str) -> Vec<(String, Value)> {
    app.admin_list_all("/admin/security-events", &admin.access)
        .await
        .into_iter()
        .filter(|e| e["user_id"] == user)
        .map(|e| (e["kind"].as_str().unwrap().to_owned(), e["details"].clone()))
        .collect()
}

fn event<'a>(events: &'a [(String, Value)], kind: &str) -> &'a Value {
    &events
        .iter()
        .find(|(k, _)| k == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:?}"))
        .1
}

async fn a_password_change_revokes_every_other_session_at_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("root").await;
    let here = app.signed_up("alice").await;
    let there = app.login("alice").await;
    let elsewhere = app.login("alice").await;
    assert_eq!(app.me_status(&there.access).await, StatusCode::OK);

    let r = change_password(&app, &here.access, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    for other in [&there, &elsewhere] {
        let r = app.get_bearer("/api/me", &other.access).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
        let r = app.refresh_cookie(&other.refresh).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
    }
    // The session that changed it lives on.
    assert_eq!(app.me_status(&here.access).await, StatusCode::OK);
    assert_eq!(
        app.refresh_cookie(&here.refresh).await.status(),
        StatusCode::OK
    );
    let r = login_with(&app, "alice", PASSWORD).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(
        login_with(&app, "alice", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    let id = user_id_of(&here);
    let events = events_of(&app, &admin, &id).await;
    let details = event(&events, "password_changed");
    assert_eq!(details["actor"], id.as_str());
    assert_eq!(details["revoked_sessions"], 2);
}

async fn a_wrong_current_password_counts_toward_the_login_limit(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.login_rate_user.count = 3).await else {
        return;
    };
    let alice = app.signed_up("alice").await;
    // Bad input is refused before anything is counted.
    let r = change_password(&app, &alice.access, PASSWORD, "short").await;
    let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    let r = app
        .client
        .post(app.url("/auth/password"))
        .bearer_auth(&alice.access)
        .json(&json!({"new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    let r = app
        .client
        .post(app.url("/auth/password"))
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "missing_token").await;

    for _ in 0..3 {
        let r = change_password(&app, &alice.access, "not the password", NEW_PASSWORD).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // Limited now, whatever the password, here and at login.
    let r = change_password(&app, &alice.access, PASSWORD, NEW_PASSWORD).await;
    assert!(r.headers().get("retry-after").is_some());
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let r = login_with(&app, "alice", PASSWORD).await;
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Nothing changed: the session is live, the password the old one.
    assert_eq!(app.me_status(&alice.access).await, StatusCode::OK);
}

async fn a_password_change_racing_a_refresh_of_another_session_leaves_it_dead(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let mine = app.signed_up("alice").await;
    let mut current = PASSWORD.to_owned();
    for round in 0..4 {
        let other = app.login_password("alice", &current).await;
        let next = format!("{NEW_PASSWORD} {round}");
        let (changed, refreshed) = tokio::join!(
            change_password(&app, &mine.access, &current, &next),
            app.refresh_cookie(&other.refresh),
        );
        assert_eq!(changed.status(), StatusCode::NO_CONTENT);
        current = next;
        if refreshed.status() == StatusCode::OK {
            // The refresh won the race: what it handed out dies with the session.
            let successor = tokens_from_cookie(refreshed).await;
            let r = app.get_bearer("/api/me", &successor.access).await;
            assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
            let r = app.refresh_cookie(&successor.refresh).await;
            assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
        } else {
            assert_problem(refreshed, StatusCode::UNAUTHORIZED, "session_revoked").await;
        }
        let r = app.get_bearer("/api/me", &other.access).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
    }
    assert_eq!(app.me_status(&mine.access).await, StatusCode::OK);
}

async fn admins_list_users_by_prefix_page_by_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("root").await;
    for name in ["Alpha1", "alpha2", "alPHA3", "beta1", "al.ph"] {
        assert_eq!(app.register(name).await.status(), StatusCode::CREATED);
    }
    let first = app
        .admin_get("/admin/users?q=ALPHA&limit=2", &admin.access)
        .await;
    let names: Vec<_> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alpha1", "alpha2"]);
    let item = &first["items"][0];
    for key in [
        "id",
        "username",
        "roles",
        "disabled",
        "created_at",
        "last_login_at",
    ] {
        assert!(item.get(key).is_some(), "{key} in {item}");
    }
    assert_eq!(item["disabled"], false);
    assert_eq!(item["roles"], json!(["user"]));
    assert!(item["last_login_at"].is_null());
    let next = first["next"].as_str().unwrap();
    let second = app
        .admin_get(
            &format!("/admin/users?q=alpha&limit=2&before={next}"),
            &admin.access,
        )
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["username"], "alPHA3");
    assert!(second["next"].is_null());
    // Everyone, in name order; the admin's last login is recorded.
    let all = app
        .admin_list_all("/admin/users?limit=1", &admin.access)
        .await;
    let names: Vec<_> = all
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["al.ph", "Alpha1", "alpha2", "alPHA3", "beta1", "root"]
    );
    assert!(all[5]["last_login_at"].is_string());

    for bad in [
        format!("/admin/users?q={}", "a".repeat(65)),
        "/admin/users?limit=0".to_owned(),
        "/admin/users?limit=201".to_owned(),
        "/admin/users?before=garbage".to_owned(),
        format!("/admin/users?q=beta&before={next}"),
    ] {
        let r = app.get_bearer(&bad, &admin.access).await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
    let r = app
        .get_bearer(&format!("/admin/users?q={}", "a".repeat(65)), &admin.access)
        .await;
    let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    assert_eq!(body["errors"][0]["field"], "q");
    assert_eq!(
        app.admin_get(&format!("/admin/users?q={}", "a".repeat(64)), &admin.access)
            .await["items"],
        json!([])
    );
    let user = app.login("beta1").await;
    let r = app.get_bearer("/admin/users", &user.access).await;
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = app
        .client
        .get(app.url("/admin/users"))
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "missing_token").await;
}

async fn admins_create_read_and_change_users(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("root").await;
    let create = |body: Value| {
        send(
            &app,
            reqwest::Method::POST,
            "/admin/users",
            &admin.access,
            Some(body),
        )
    };
    let r = create(json!({"username": "carol", "password": PASSWORD, "roles": ["auditor"]})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let carol: Value = r.json().await.unwrap();
    assert_eq!(carol["username"], "carol");
    assert_eq!(carol["roles"], json!(["auditor"]));
    assert_eq!(carol["disabled"], false);
    let id = carol["id"].as_str().unwrap().to_owned();

    let r = create(json!({"username": "CAROL", "password": PASSWORD})).await;
    assert_problem(r, StatusCode::CONFLICT, "username_taken").await;
    for (body, field) in [
        (
            json!({"username": "dave", "password": PASSWORD, "roles": ["Admin"]}),
            "roles",
        ),
        (
            json!({"username": "dave", "password": PASSWORD, "roles": ["2fa"]}),
            "roles",
        ),
        (json!({"username": "d", "password": PASSWORD}), "username"),
        (json!({"username": "dave", "password": "short"}), "password"),
        (json!({"username": "dave"}), "password"),
    ] {
        let r = create(body.clone()).await;
        let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    // Without roles: `user`.
    let r = create(json!({"username": "dave", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["roles"], json!(["user"]));

    let detail = app
        .admin_get(&format!("/admin/users/{id}"), &admin.access)
        .await;
    assert_eq!(detail["live_sessions"], json!([]));
    let session = app.login("carol").await;
    let detail = app
        .admin_get(&format!("/admin/users/{id}"), &admin.access)
        .await;
    let live = detail["live_sessions"].as_array().unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0]["id"], session.session_id.as_str());
    assert!(live[0].get("current").is_none());
    for key in [
        "device_name",
        "created_at",
        "last_used_at",
        "last_ip",
        "last_user_agent",
        "expires_at",
    ] {
        assert!(live[0].get(key).is_some(), "{key}");
    }
    assert!(detail["last_login_at"].is_string());
    let r = app
        .get_bearer(&format!("/admin/users/{NOBODY}"), &admin.access)
        .await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .get_bearer("/admin/users/not-an-id", &admin.access)
        .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;

    // Patches: empty, bad roles, bad types, unknown and malformed ids.
    for body in [
        json!({}),
        json!({"roles": ["no spaces"]}),
        json!({"roles": "admin"}),
        json!({"disabled": "yes"}),
    ] {
        let r = patch(&app, &id, &admin.access, body.clone()).await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
    let r = patch(&app, NOBODY, &admin.access, json!({"disabled": true})).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = patch(&app, "nope", &admin.access, json!({"disabled": true})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;

    // Adding a role keeps the session; the next refresh carries it.
    let r = patch(
        &app,
        &id,
        &admin.access,
        json!({"roles": ["auditor", "user"]}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["roles"],
        json!(["auditor", "user"])
    );
    assert_eq!(app.me_status(&session.access).await, StatusCode::OK);
    let r = app.refresh_cookie(&session.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let refreshed = tokens_from_cookie(r).await;
    assert_eq!(refreshed.body["user"]["roles"], json!(["auditor", "user"]));
    // Taking one away ends the sessions (access tokens carry roles).
    let r = patch(&app, &id, &admin.access, json!({"roles": ["user"]})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.get_bearer("/api/me", &refreshed.access).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;

    let events = events_of(&app, &admin, &id).await;
    let changed = event(&events, "roles_changed");
    assert_eq!(changed["actor"], user_id_of(&admin).as_str());
    assert_eq!(changed["roles_after"], json!(["user"]));
    // A non-admin may do none of it.
    let r = create(json!({"username": "eve", "password": PASSWORD})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let eve = app.login("eve").await;
    let r = patch(&app, &id, &eve.access, json!({"disabled": true})).await;
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    let r = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{id}"),
        &eve.access,
        None,
    )
    .await;
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
}

async fn disabling_a_user_ends_everything_at_once(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("root").await;
    let one = app.signed_up("bob").await;
    let two = app.login("bob").await;
    let id = user_id_of(&one);
    assert_eq!(app.me_status(&two.access).await, StatusCode::OK);

    let r = patch(&app, &id, &admin.access, json!({"disabled": true})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], true);
    for t in [&one, &two] {
        let r = app.get_bearer("/api/me", &t.access).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
        let r = app.refresh_cookie(&t.refresh).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
    }
    let r = login_with(&app, "bob", PASSWORD).await;
    assert_problem(r, StatusCode::FORBIDDEN, "account_disabled").await;
    let r = login_with(&app, "bob", "the wrong password").await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let listed = app.admin_get("/admin/users?q=bob", &admin.access).await;
    assert_eq!(listed["items"][0]["disabled"], true);

    let r = patch(&app, &id, &admin.access, json!({"disabled": false})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        login_with(&app, "bob", PASSWORD).await.status(),
        StatusCode::OK
    );
    // Sessions ended by disabling stay ended.
    let r = app.refresh_cookie(&two.refresh).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;

    let events = events_of(&app, &admin, &id).await;
    let admin_id = user_id_of(&admin);
    assert_eq!(event(&events, "user_disabled")["actor"], admin_id.as_str());
    assert_eq!(event(&events, "user_disabled")["revoked_sessions"], 2);
    assert_eq!(event(&events, "user_enabled")["actor"], admin_id.as_str());
}

async fn an_admin_cannot_lock_themselves_out(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("root").await;
    let me = user_id_of(&admin);
    for body in [
        json!({"disabled": true}),
        json!({"roles": ["user"]}),
        json!({"roles": []}),
        json!({"roles": ["admin"], "disabled": true}),
    ] {
        let r = patch(&app, &me, &admin.access, body).await;
        assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    }
    let r = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{me}"),
        &admin.access,
        None,
    )
    .await;
    assert_problem(r, StatusCode::CONFLICT, "conflict").await;
    // Nothing changed; keeping `admin` while dropping another role is fine.
    assert_eq!(app.me_status(&admin.access).await, StatusCode::OK);
    let r = patch(&app, &me, &admin.access, json!({"roles": ["admin"]})).await;
    assert_eq!(r.status(), StatusCode::OK);
    // Another admin may do it.
    let other = app.admin("root2").await;
    let r = patch(&app, &me, &other.access, json!({"disabled": true})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.get_bearer("/api/me", &admin.access).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn an_admin_reset_revokes_every_session(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("root").await;
    let one = app.signed_up("bob").await;
    let two = app.login("bob").await;
    let id = user_id_of(&one);
    async fn reset(app: &TestApp, admin: &Tokens, id: String, body: Value) -> Response {
        let path = format!("/admin/users/{id}/password");
        send(app, reqwest::Method::POST, &path, &admin.access, Some(body)).await
    }
    let r = reset(&app, &admin, id.clone(), json!({"new_password": "short"})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    let r = reset(&app, &admin, id.clone(), json!({})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    let r = reset(
        &app,
        &admin,
        NOBODY.to_owned(),
        json!({"new_password": NEW_PASSWORD}),
    )
    .await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = reset(
        &app,
        &admin,
        "nope".to_owned(),
        json!({"new_password": NEW_PASSWORD}),
    )
    .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    assert_eq!(app.me_status(&one.access).await, StatusCode::OK);

    let r = reset(
        &app,
        &admin,
        id.clone(),
        json!({"new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for t in [&one, &two] {
        let r = app.get_bearer("/api/me", &t.access).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
        let r = app.refresh_cookie(&t.refresh).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
    }
    let r = login_with(&app, "bob", PASSWORD).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(
        login_with(&app, "bob", NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    let events = events_of(&app, &admin, &id).await;
    let details = event(&events, "password_reset");
    assert_eq!(details["actor"], user_id_of(&admin).as_str());
    assert_eq!(details["revoked_sessions"], 2);
}

async fn deleting_a_user_removes_them_but_keeps_the_trail(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("root").await;
    let bob = app.signed_up("bob").await;
    let id = user_id_of(&bob);
    let refreshed = tokens_from_cookie(app.refresh_cookie(&bob.refresh).await).await;
    let rows_before = app.audit_rows().await;
    assert!(rows_before > 0);

    let path = format!("/admin/users/{id}");
    let r = send(&app, reqwest::Method::DELETE, &path, &admin.access, None).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = app.get_bearer("/api/me", &refreshed.access).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app.refresh_cookie(&refreshed.refresh).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = login_with(&app, "bob", PASSWORD).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = app.get_bearer(&path, &admin.access).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = send(&app, reqwest::Method::DELETE, &path, &admin.access, None).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = send(
        &app,
        reqwest::Method::DELETE,
        "/admin/users/nope",
        &admin.access,
        None,
    )
    .await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;

    // The trail stays until the retention.
    assert!(app.audit_rows().await >= rows_before);
    let events = events_of(&app, &admin, &id).await;
    assert_eq!(
        event(&events, "user_deleted")["actor"],
        user_id_of(&admin).as_str()
    );
    // The name is free again.
    assert_eq!(app.register("bob").await.status(), StatusCode::CREATED);
}

async fn deleting_a_user_while_they_refresh_leaves_nothing_alive(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("root").await;
    for round in 0..4 {
        let name = format!("bob{round}");
        let bob = app.signed_up(&name).await;
        let path = format!("/admin/users/{}", user_id_of(&bob));
        let (deleted, refreshed) = tokio::join!(
            send(&app, reqwest::Method::DELETE, &path, &admin.access, None),
            app.refresh_cookie(&bob.refresh),
        );
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        if refreshed.status() == StatusCode::OK {
            let successor = tokens_from_cookie(refreshed).await;
            assert_eq!(
                app.me_status(&successor.access).await,
                StatusCode::UNAUTHORIZED
            );
            let r = app.refresh_cookie(&successor.refresh).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        } else {
            assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
        }
        assert_eq!(app.me_status(&bob.access).await, StatusCode::UNAUTHORIZED);
        let r = login_with(&app, &name, PASSWORD).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
}

async fn closed_registration_leaves_user_creation_to_admins(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.registration = application::RegistrationPolicy::Closed;
    })
    .await
    else {
        return;
    };
    let r = app.register("walkin").await;
    assert_problem(r, StatusCode::FORBIDDEN, "registration_closed").await;
    let r = app
        .client
        .post(app.url("/auth/register"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "registration_closed").await;
    let admin = app.admin("root").await;
    let r = send(
        &app,
        reqwest::Method::POST,
        "/admin/users",
        &admin.access,
        Some(json!({"username": "invited", "password": PASSWORD})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        login_with(&app, "invited", PASSWORD).await.status(),
        StatusCode::OK
    );
}
