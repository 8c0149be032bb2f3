//! The admin API over HTTP, on SQLite and PostgreSQL: who may call it,
//! what bad input gets, pagination, forced re-authentication.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use integration_tests::audit_support::*;
use integration_tests::*;
use reqwest::StatusCode;
use serde_json::Value;

on_both_backends!(
    admin_endpoints_need_a_token_and_the_admin_role,
    unknown_users_are_404_and_bad_input_is_422,
    refresh_logs_page_newest_first,
    security_events_filter_by_user_and_page,
    an_admin_revocation_forces_reauthentication_everywhere,
    a_quiet_user_is_low_risk,
);

const NOBODY: &str = "00000000-0000-4000-8000-000000000000";

/// Every admin endpoint for `user`, as (method, path).
fn endpoints(user: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GET", format!("/admin/users/{user}/token-analysis")),
        ("GET", format!("/admin/users/{user}/token-analysis?days=30")),
        ("GET", format!("/admin/users/{user}/refresh-logs")),
        ("POST", format!("/admin/users/{user}/revoke-sessions")),
        ("GET", "/admin/security-events".to_owned()),
        ("GET", format!("/admin/security-events?user_id={user}")),
    ]
}

async fn call(app: &TestApp, method: &str, path: &str, access: Option<&str>) -> reqwest::Response {
    let mut r = match method {
        "POST" => app.client.post(app.url(path)),
        _ => app.client.get(app.url(path)),
    };
    if let Some(access) = access {
        r = r.bearer_auth(access);
    }
    r.send().await.unwrap()
}

async fn admin_endpoints_need_a_token_and_the_admin_role(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let user = app.signed_up("mallory").await;
    let id = user_id_of(&user);
    for (method, path) in endpoints(&id) {
        let r = call(&app, method, &path, None).await;
        assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
        assert_problem(r, StatusCode::UNAUTHORIZED, "missing_token").await;
        let r = call(&app, method, &path, Some("not.a.token")).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
        let r = call(&app, method, &path, Some(&user.access)).await;
        assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    }
    // A refused caller changed nothing: the user's session lives on.
    assert_eq!(app.me_status(&user.access).await, StatusCode::OK);
    // Even bad input gets 403 first: a non-admin learns nothing.
    let r = call(
        &app,
        "GET",
        "/admin/users/nope/token-analysis?days=0",
        Some(&user.access),
    )
    .await;
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden").await;
    // An admin whose session has ended is refused like anyone else.
    let admin = app.admin("boss").await;
    let r = app
        .client
        .post(app.url("/auth/logout-all"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = call(&app, "GET", "/admin/security-events", Some(&admin.access)).await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn unknown_users_are_404_and_bad_input_is_422(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("boss").await;
    let other = app.signed_up("other").await;
    for (method, path) in endpoints(NOBODY) {
        if path == "/admin/security-events" {
            continue;
        }
        let r = call(&app, method, &path, Some(&admin.access)).await;
        assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    }
    let id = user_id_of(&other);
    // A cursor is only good for the list that handed it out.
    for _ in 0..3 {
        app.refresh_cookie(&app.login("other").await.refresh).await;
    }
    let page = app
        .admin_get(
            &format!("/admin/users/{id}/refresh-logs?limit=1"),
            &admin.access,
        )
        .await;
    let cursor = page["next"].as_str().unwrap().to_owned();
    let bad = [
        (
            "GET",
            "/admin/users/not-a-uuid/token-analysis".to_owned(),
            "user_id",
        ),
        (
            "GET",
            "/admin/users/'%20OR%201=1/refresh-logs".to_owned(),
            "user_id",
        ),
        (
            "POST",
            "/admin/users/123/revoke-sessions".to_owned(),
            "user_id",
        ),
        (
            "GET",
            format!("/admin/users/{id}/token-analysis?days=0"),
            "days",
        ),
        (
            "GET",
            format!("/admin/users/{id}/token-analysis?days=91"),
            "days",
        ),
        (
            "GET",
            format!("/admin/users/{id}/token-analysis?days=-1"),
            "days",
        ),
        (
            "GET",
            format!("/admin/users/{id}/token-analysis?days=seven"),
            "days",
        ),
        (
            "GET",
            format!("/admin/users/{id}/token-analysis?days="),
            "days",
        ),
        (
            "GET",
            format!("/admin/users/{id}/token-analysis?days=99999999999999"),
            "days",
        ),
        (
            "GET",
            format!("/admin/users/{id}/refresh-logs?limit=0"),
            "limit",
        ),
        (
            "GET",
            format!("/admin/users/{id}/refresh-logs?limit=201"),
            "limit",
        ),
        (
            "GET",
            format!("/admin/users/{id}/refresh-logs?before=garbage"),
            "before",
        ),
        (
            "GET",
            format!("/admin/users/{id}/refresh-logs?before="),
            "before",
        ),
        (
            "GET",
            format!(
                "/admin/users/{}/refresh-logs?before={cursor}",
                user_id_of(&admin)
            ),
            "before",
        ),
        (
            "GET",
            format!("/admin/security-events?before={cursor}"),
            "before",
        ),
        (
            "GET",
            "/admin/security-events?user_id=alice".to_owned(),
            "user_id",
        ),
        (
            "GET",
            "/admin/security-events?limit=1000".to_owned(),
            "limit",
        ),
    ];
    for (method, path, field) in bad {
        let r = call(&app, method, &path, Some(&admin.access)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
        assert_eq!(body["errors"][0]["field"], field, "{path}: {body}");
    }
    // The real cursor works where it belongs.
    let next = app
        .admin_get(
            &format!("/admin/users/{id}/refresh-logs?limit=1&before={cursor}"),
            &admin.access,
        )
        .await;
    assert_eq!(next["items"].as_array().unwrap().len(), 1);
    // Days at both ends of the range are fine.
    for days in [1, 90] {
        let a = app
            .admin_get(
                &format!("/admin/users/{id}/token-analysis?days={days}"),
                &admin.access,
            )
            .await;
        assert_eq!(a["days"], days);
    }
    // Unknown admin routes are plain 404s (`/admin/users` is the user list).
    let r = call(&app, "GET", "/admin/groups", Some(&admin.access)).await;
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
}

async fn refresh_logs_page_newest_first(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("boss").await;
    let t = app.signed_up("busy").await;
    let id = user_id_of(&t);
    let mut token = t.refresh.clone();
    for _ in 0..7 {
        let r = app.refresh_cookie(&token).await;
        assert_eq!(r.status(), StatusCode::OK);
        token = tokens_from_cookie(r).await.refresh;
    }
    // Someone else's refreshes never show up in this log.
    let other = app.signed_up("quiet").await;
    app.refresh_cookie(&other.refresh).await;

    let path = format!("/admin/users/{id}/refresh-logs?limit=3");
    let mut pages = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let url = match &next {
            Some(c) => format!("{path}&before={c}"),
            None => path.clone(),
        };
        let page = app.admin_get(&url, &admin.access).await;
        next = page["next"].as_str().map(str::to_owned);
        pages.push(page);
        if next.is_none() {
            break;
        }
    }
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["items"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [3, 3, 1]);
    let items: Vec<&Value> = pages
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap())
        .collect();
    let times: Vec<&str> = items.iter().map(|i| i["at"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    let mut tokens: Vec<&str> = items
        .iter()
        .map(|i| i["token_fingerprint"].as_str().unwrap())
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        7,
        "no row twice: each refresh presented another token"
    );
    for item in &items {
        assert_eq!(item["user_id"], id.as_str());
        assert_eq!(item["outcome"], "success");
        assert_eq!(item["user_agent"], UA);
        assert_eq!(item["ip"], "127.0.0.1");
        assert_eq!(item["token_fingerprint"].as_str().unwrap().len(), 8);
    }
    // The default page holds them all.
    let all = app
        .admin_get(&format!("/admin/users/{id}/refresh-logs"), &admin.access)
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 7);
    assert!(all["next"].is_null());
}

async fn security_events_filter_by_user_and_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("boss").await;
    let ann = app.signed_up("ann").await;
    let ben = app.signed_up("ben").await;
    let logout_all = |access: String| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(app.url("/auth/logout-all"))
                .bearer_auth(access)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::NO_CONTENT);
        }
    };
    logout_all(ann.access.clone()).await;
    logout_all(ben.access.clone()).await;
    logout_all(app.login("ann").await.access).await;
    let ann_id = user_id_of(&ann);
    let r = call(
        &app,
        "POST",
        &format!("/admin/users/{ann_id}/revoke-sessions"),
        Some(&admin.access),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let anns = app
        .admin_list_all(
            &format!("/admin/security-events?user_id={ann_id}&limit=1"),
            &admin.access,
        )
        .await;
    let kinds: Vec<&str> = anns.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    // The admin's revocation found nothing live, yet is on record.
    assert_eq!(kinds, ["admin_revoke", "logout_all", "logout_all"]);
    assert_eq!(anns[0]["details"]["revoked_sessions"], 0);
    assert!(anns.iter().all(|e| e["user_id"] == ann_id.as_str()));
    assert_eq!(anns[0]["details"]["admin_id"], user_id_of(&admin).as_str());
    assert!(anns[0]["created_at"].is_string());
    let everyone = app
        .admin_list_all("/admin/security-events?limit=2", &admin.access)
        .await;
    assert_eq!(everyone.len(), 4);
}

async fn an_admin_revocation_forces_reauthentication_everywhere(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("boss").await;
    let laptop = app.signed_up("suspect").await;
    let phone = app.login("suspect").await;
    let id = user_id_of(&laptop);

    let r = call(
        &app,
        "POST",
        &format!("/admin/users/{id}/revoke-sessions"),
        Some(&admin.access),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    for t in [&laptop, &phone] {
        let r = app.get_bearer("/api/me", &t.access).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
        assert_problem(
            app.refresh_cookie(&t.refresh).await,
            StatusCode::UNAUTHORIZED,
            "session_revoked",
        )
        .await;
    }
    // The admin's own session is untouched, and the user can log in again.
    assert_eq!(app.me_status(&admin.access).await, StatusCode::OK);
    assert_eq!(
        app.me_status(&app.login("suspect").await.access).await,
        StatusCode::OK
    );
    let events = app
        .admin_get(
            &format!("/admin/security-events?user_id={id}"),
            &admin.access,
        )
        .await;
    assert_eq!(events["items"][0]["kind"], "admin_revoke");
    assert_eq!(events["items"][0]["details"]["revoked_sessions"], 2);
}

async fn a_quiet_user_is_low_risk(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("boss").await;
    let t = app.signed_up("calm").await;
    let mut token = t.refresh.clone();
    for _ in 0..3 {
        let r = app.refresh_cookie(&token).await;
        token = tokens_from_cookie(r).await.refresh;
    }
    let id = user_id_of(&t);
    let a = app
        .admin_get(&format!("/admin/users/{id}/token-analysis"), &admin.access)
        .await;
    assert_eq!(a["risk"]["level"], "low", "{a}");
    assert_eq!(a["risk"]["score"], 0);
    assert_eq!(a["risk"]["reasons"], serde_json::json!([]));
    assert_eq!(a["attempts"]["total"], 3);
    assert_eq!(a["attempts"]["failed"], 0);
    assert_eq!(a["distinct_ips"].as_array().unwrap().len(), 1);
    assert_eq!(a["distinct_user_agents"].as_array().unwrap().len(), 1);
    assert_eq!(a["sessions_seen"], 1);
    assert_eq!(a["username"], "calm");
    assert!(a["from"].as_str().unwrap() < a["to"].as_str().unwrap());
    // Zero counts are listed too, so dashboards see every outcome.
    assert_eq!(a["attempts"]["by_outcome"]["reused"], 0);
    // A user who never refreshed is low as well.
    let fresh = app.signed_up("fresh").await;
    let a = app
        .admin_get(
            &format!("/admin/users/{}/token-analysis?days=1", user_id_of(&fresh)),
            &admin.access,
        )
        .await;
    assert_eq!(a["risk"]["level"], "low");
    assert_eq!(a["attempts"]["total"], 0);
}
