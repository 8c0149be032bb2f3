//! The rotation plan's v2 rules over HTTP: lost responses (the retry rule),
//! a grace or retry replay from another network, a rotated token after a
//! logout (`reuse_after_end`), and DPoP-bound refreshes.

use std::time::Duration;

use integration_tests::audit_support::LOOPBACK_PROXY;
use integration_tests::dpop::DpopKey;
use integration_tests::{
    assert_problem, cookie_value, on_both_backends, tokens_from_cookie, Backend, TestApp, Tokens,
    PASSWORD, UA,
};
use reqwest::header::{COOKIE, USER_AGENT};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

on_both_backends!(
    a_lost_response_is_retried_from_the_same_network_and_theft_from_another,
    a_rotated_token_after_a_logout_is_reuse_after_end_and_high_risk,
    a_bound_session_refreshes_only_with_a_proof_by_its_key_and_spends_nothing_otherwise,
);

async fn outcomes(app: &TestApp, admin: &Tokens, user: &Tokens) -> Vec<String> {
    let id = user.body["user"]["id"].as_str().unwrap();
    app.admin_list_all(&format!("/admin/users/{id}/refresh-logs"), &admin.access)
        .await
        .iter()
        .map(|row| row["outcome"].as_str().unwrap().to_owned())
        .collect()
}

async fn analysis(app: &TestApp, admin: &Tokens, user: &Tokens) -> Value {
    let id = user.body["user"]["id"].as_str().unwrap();
    app.admin_get(&format!("/admin/users/{id}/token-analysis"), &admin.access)
        .await
}

async fn a_lost_response_is_retried_from_the_same_network_and_theft_from_another(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.trusted_proxies = vec![LOOPBACK_PROXY.parse().unwrap()];
        c.lifetimes.grace = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let admin = app.admin("boss").await;
    let t = app.signed_up("rita").await;
    // The first answer is lost on its way back...
    let first = app.refresh_from(&t.refresh, "198.51.100.7", UA).await;
    assert_eq!(first.status(), StatusCode::OK);
    let successor = cookie_value(first.headers()).unwrap();
    // ...and the client retries from its network (a new address in its /24).
    let retried = app.refresh_from(&t.refresh, "198.51.100.99", UA).await;
    assert_eq!(retried.status(), StatusCode::OK, "a retry is not theft");
    assert_eq!(cookie_value(retried.headers()).unwrap(), successor);
    // The same replay from another network is theft.
    let thief = app.refresh_from(&t.refresh, "203.0.113.9", UA).await;
    assert_problem(thief, StatusCode::UNAUTHORIZED, "token_reused").await;
    assert_eq!(
        outcomes(&app, &admin, &t).await,
        ["reused", "retry", "success"],
        "newest first"
    );
}

/// How a thief who refreshed a stolen token ends the session afterwards.
#[derive(Debug, Clone, Copy)]
enum End {
    Logout,
    DeleteSession,
    LogoutAll,
    LoginToOwnAccount,
}

async fn a_rotated_token_after_a_logout_is_reuse_after_end_and_high_risk(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("boss").await;
    assert_eq!(app.register("thief").await.status(), StatusCode::CREATED);
    for (i, how) in [
        End::Logout,
        End::DeleteSession,
        End::LogoutAll,
        End::LoginToOwnAccount,
    ]
    .into_iter()
    .enumerate()
    {
        let victim = app.signed_up(&format!("vera{i}")).await;
        // A thief uses the stolen token, then ends the session.
        let r = app.refresh_cookie(&victim.refresh).await;
        assert_eq!(r.status(), StatusCode::OK);
        let stolen = tokens_from_cookie(r).await;
        let sid = stolen.body["session_id"].as_str().unwrap().to_owned();
        let r = match how {
            End::Logout => {
                app.client
                    .post(app.url("/auth/logout"))
                    .header(COOKIE, format!("refresh_token={}", stolen.refresh))
                    .send()
                    .await
            }
            End::DeleteSession => {
                app.client
                    .delete(app.url(&format!("/auth/sessions/{sid}")))
                    .bearer_auth(&stolen.access)
                    .send()
                    .await
            }
            End::LogoutAll => {
                app.client
                    .post(app.url("/auth/logout-all"))
                    .bearer_auth(&stolen.access)
                    .send()
                    .await
            }
            End::LoginToOwnAccount => {
                app.client
                    .post(app.url("/auth/login"))
                    .header(COOKIE, format!("refresh_token={}", stolen.refresh))
                    .json(&json!({"username": "thief", "password": PASSWORD}))
                    .send()
                    .await
            }
        }
        .unwrap();
        assert!(r.status().is_success(), "{how:?}: {}", r.status());
        // The victim comes back with the rotated token.
        let back = app.refresh_cookie(&victim.refresh).await;
        assert_problem(back, StatusCode::UNAUTHORIZED, "session_revoked").await;
        let a = analysis(&app, &admin, &victim).await;
        assert_eq!(a["reuse_after_end_events"], 1, "{how:?}");
        assert_eq!(a["risk"]["level"], "high", "{how:?}");
        let id = victim.body["user"]["id"].as_str().unwrap();
        let events = app
            .admin_get(
                &format!("/admin/security-events?user_id={id}&limit=50"),
                &admin.access,
            )
            .await;
        assert!(
            events["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "reuse_after_end"),
            "{how:?}"
        );
    }
}

async fn refresh_with_proof(app: &TestApp, refresh: &str, proof: Option<String>) -> Response {
    let mut request = app
        .client
        .post(app.url("/auth/refresh"))
        .header(USER_AGENT, UA)
        .header(COOKIE, format!("refresh_token={refresh}"));
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

async fn a_bound_session_refreshes_only_with_a_proof_by_its_key_and_spends_nothing_otherwise(
    backend: Backend,
) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let admin = app.admin("boss").await;
    assert_eq!(app.register("bound").await.status(), StatusCode::CREATED);
    let key = DpopKey::es256();
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header(USER_AGENT, UA)
        .header("DPoP", key.proof("POST", &app.url("/auth/login"), None))
        .json(&json!({"username": "bound", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t = tokens_from_cookie(r).await;
    let url = app.url("/auth/refresh");

    // A thief with the token and no key: refused, nothing spent.
    let without = refresh_with_proof(&app, &t.refresh, None).await;
    assert!(
        !integration_tests::clears_cookie(without.headers()),
        "the key holder keeps the cookie"
    );
    assert_problem(without, StatusCode::UNAUTHORIZED, "invalid_dpop_proof").await;
    let other = DpopKey::es256();
    let wrong = refresh_with_proof(&app, &t.refresh, Some(other.proof("POST", &url, None))).await;
    assert_problem(wrong, StatusCode::UNAUTHORIZED, "invalid_dpop_proof").await;

    // The key holder carries on with the very same token.
    let ok = refresh_with_proof(&app, &t.refresh, Some(key.proof("POST", &url, None))).await;
    assert_eq!(ok.status(), StatusCode::OK, "the token was not spent");
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");

    let a = analysis(&app, &admin, &t).await;
    assert_eq!(a["dpop_mismatch_events"], 2);
    let sessions = a["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "the session was not revoked");
    assert_eq!(sessions[0]["dpop_bound"], true);
    assert_eq!(
        outcomes(&app, &admin, &t).await,
        ["success", "dpop_mismatch", "dpop_mismatch"]
    );
}
