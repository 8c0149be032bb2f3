//! The audit trail and theft analysis over HTTP, on SQLite and PostgreSQL:
//! the seed scenario end to end, one audit row per refresh request under
//! load, client IPs behind trusted proxies, and the anomaly response.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::future::join_all;
use integration_tests::audit_support::*;
use integration_tests::*;
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN, USER_AGENT};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_backends!(
    seed_scenario_a_stolen_token_is_answered_and_visible_to_the_admin,
    every_refresh_request_leaves_exactly_one_audit_row,
    forwarded_for_is_believed_only_from_trusted_proxies,
    another_network_and_device_right_after_use_is_answered_like_reuse,
    anomalies_under_log_only_are_recorded_and_let_through,
    a_phone_changing_networks_keeps_its_session,
);

const HOME: &str = "198.51.100.10";
const ATTACKER: &str = "203.0.113.66";
const ATTACKER_UA: &str = "curl/8.5.0";

fn trusting_loopback(c: &mut server::Config) {
    c.trusted_proxies = vec![LOOPBACK_PROXY.parse().unwrap()];
}

fn values<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v[key].as_str().unwrap())
        .collect()
}

async fn seed_scenario_a_stolen_token_is_answered_and_visible_to_the_admin(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, trusting_loopback).await else {
        return;
    };
    let admin = app.admin("security_lead").await;
    let victim = app.signed_up("victim").await;
    let victim_id = user_id_of(&victim);
    let laptop = app.login("victim").await;

    // The user refreshes normally from home; the first token is stolen.
    let stolen = victim.refresh.clone();
    let r = app.refresh_from(&stolen, HOME, UA).await;
    assert_eq!(r.status(), StatusCode::OK);
    let current = tokens_from_cookie(r).await;
    let r = app.refresh_from(&current.refresh, HOME, UA).await;
    assert_eq!(r.status(), StatusCode::OK);
    let current = tokens_from_cookie(r).await;

    // The attacker replays it from another network and device.
    let r = app.refresh_from(&stolen, ATTACKER, ATTACKER_UA).await;
    assert!(clears_cookie(r.headers()));
    assert_problem(r, StatusCode::UNAUTHORIZED, "token_reused").await;

    // Every session is revoked: refresh and access tokens alike.
    assert_problem(
        app.refresh_from(&current.refresh, HOME, UA).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    assert_eq!(
        app.me_status(&current.access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.me_status(&laptop.access).await,
        StatusCode::UNAUTHORIZED
    );
    // The legitimate user logs in again.
    let again = app.login("victim").await;
    assert_eq!(app.me_status(&again.access).await, StatusCode::OK);

    // The admin sees it at a glance.
    let a = app
        .admin_get(
            &format!("/admin/users/{victim_id}/token-analysis"),
            &admin.access,
        )
        .await;
    assert_eq!(a["user_id"], victim_id.as_str());
    assert_eq!(a["days"], 7);
    assert_eq!(a["risk"]["level"], "high", "{a}");
    assert!(a["risk"]["score"].as_u64().unwrap() >= 60);
    assert!(a["risk"]["reason_codes"]
        .as_array()
        .unwrap()
        .contains(&json!("token_reuse")));
    assert!(!a["risk"]["reasons"].as_array().unwrap().is_empty());
    assert_eq!(a["reuse_events"], 1);
    assert_eq!(a["anomaly_events"], 0);
    assert_eq!(a["attempts"]["total"], 4);
    assert_eq!(a["attempts"]["succeeded"], 2);
    assert_eq!(a["attempts"]["failed"], 2);
    assert_eq!(a["attempts"]["by_outcome"]["success"], 2);
    assert_eq!(a["attempts"]["by_outcome"]["reused"], 1);
    assert_eq!(a["attempts"]["by_outcome"]["revoked"], 1);
    assert_eq!(a["attempts"]["by_outcome"]["anomaly"], 0);
    let mut ips = values(&a["distinct_ips"], "ip");
    ips.sort_unstable();
    assert_eq!(ips, [HOME, ATTACKER]);
    let mut agents = values(&a["distinct_user_agents"], "user_agent");
    agents.sort_unstable();
    assert_eq!(agents, [UA, ATTACKER_UA]);
    assert_eq!(a["distinct_ips"][0]["ip"], HOME, "most attempts first");
    assert_eq!(a["distinct_ips"][0]["count"], 3);
    assert!(a["distinct_ips"][0]["first_seen"].is_string());
    assert_eq!(a["sessions_seen"], 1);

    // One audit row per attempt, newest first, never a token.
    let logs = app
        .admin_list_all(
            &format!("/admin/users/{victim_id}/refresh-logs"),
            &admin.access,
        )
        .await;
    let outcomes: Vec<&str> = logs
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["revoked", "reused", "success", "success"]);
    assert_eq!(logs[1]["ip"], ATTACKER);
    assert_eq!(logs[1]["user_agent"], ATTACKER_UA);
    assert_eq!(logs[1]["session_id"], victim.session_id.as_str());
    assert_eq!(logs[1]["token_fingerprint"], logs[3]["token_fingerprint"]);
    let text = serde_json::to_string(&logs).unwrap();
    for token in [&stolen, &current.refresh, &again.refresh] {
        assert!(!text.contains(token.as_str()));
    }
    assert_eq!(app.audit_rows().await, 4);

    // The incident, with what was revoked.
    let events = app
        .admin_list_all(
            &format!("/admin/security-events?user_id={victim_id}"),
            &admin.access,
        )
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "token_reuse");
    assert_eq!(events[0]["session_id"], victim.session_id.as_str());
    assert_eq!(events[0]["details"]["revoked_sessions"], 2);
    assert_eq!(events[0]["details"]["ip"], ATTACKER);
    assert!(!events[0].to_string().contains(stolen.as_str()));
}

/// A burst of concurrent refresh requests of every kind: exactly one audit
/// row each, and never a server error.
async fn every_refresh_request_leaves_exactly_one_audit_row(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.lifetimes.grace = Duration::from_secs(60);
        c.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await
    else {
        return;
    };
    const USERS: usize = 12;
    let mut current = Vec::new();
    let mut rotated = Vec::new();
    for i in 0..USERS {
        let t = app.signed_up(&format!("load{i}")).await;
        let r = app.refresh_cookie(&t.refresh).await;
        assert_eq!(r.status(), StatusCode::OK);
        rotated.push(t.refresh);
        current.push(tokens_from_cookie(r).await.refresh);
    }
    let sequential = USERS as u64;
    assert_eq!(app.audit_rows().await, sequential);

    let cookie_refresh = |token: String, ua: &'static str| {
        app.client
            .post(app.url("/auth/refresh"))
            .header(USER_AGENT, ua)
            .header(COOKIE, format!("refresh_token={token}"))
    };
    let mut requests = Vec::new();
    // Valid tokens, five requests each (one rotates, the others replay in grace).
    for t in &current {
        for _ in 0..5 {
            requests.push(cookie_refresh(t.clone(), UA));
        }
    }
    // Rotated tokens from another device: reuse, then revoked.
    for t in &rotated {
        for _ in 0..3 {
            requests.push(cookie_refresh(t.clone(), "curl/8.5.0"));
        }
    }
    let garbage = [
        ("missing", 20),
        ("malformed", 30),
        ("unknown", 30),
        ("bad_json", 20),
        ("wrong_type", 10),
        ("too_large", 10),
        ("origin", 10),
    ];
    for (kind, n) in garbage {
        for i in 0..n {
            let base = app
                .client
                .post(app.url("/auth/refresh"))
                .header(USER_AGENT, UA);
            requests.push(match kind {
                "missing" => base,
                "malformed" => base.json(&json!({ "refresh_token": format!("garbage-{i}") })),
                "unknown" => base.json(&json!({
                    "refresh_token": format!("twr_{}", "A".repeat(42) + ["A", "E", "I", "M"][i % 4])
                })),
                "bad_json" => base
                    .header(CONTENT_TYPE, "application/json")
                    .body("{\"refresh_token\": "),
                "wrong_type" => base.json(&json!({ "refresh_token": 42 })),
                "too_large" => base.body("x".repeat(70 * 1024)),
                _ => base
                    .header(ORIGIN, "https://evil.example")
                    .header(COOKIE, format!("refresh_token={}", current[i % USERS])),
            });
        }
    }
    let sent = requests.len();
    assert!(sent <= 300, "{sent} requests");
    let statuses = join_all(
        requests
            .into_iter()
            .map(|r| async move { r.send().await.unwrap().status() }),
    )
    .await;
    for s in &statuses {
        assert!(
            [200, 400, 401, 403, 413, 422].contains(&s.as_u16()),
            "{s}: never a server error"
        );
    }

    let outcomes = app.audit_outcomes().await;
    let total: u64 = outcomes.values().sum();
    assert_eq!(total, sequential + sent as u64, "{outcomes:?}");
    let count = |o: &str| outcomes.get(o).copied().unwrap_or(0);
    assert_eq!(count("missing_token"), 20);
    assert_eq!(count("malformed_token"), 30);
    assert_eq!(count("unknown_token"), 30);
    assert_eq!(count("malformed_request"), 20);
    assert_eq!(count("invalid_request"), 10);
    assert_eq!(count("payload_too_large"), 10);
    assert_eq!(count("forbidden_origin"), 10);
    assert_eq!(count("error"), 0);
    assert_eq!(
        count("success") + count("grace_replay") + count("reused") + count("revoked"),
        sequential + (USERS * 8) as u64
    );
    assert_eq!(
        count("reused"),
        USERS as u64,
        "one theft response per family"
    );
}

async fn forwarded_for_is_believed_only_from_trusted_proxies(backend: Backend) {
    for trusted in [false, true] {
        let Some(app) = TestApp::spawn_with(backend, |c| {
            if trusted {
                trusting_loopback(c);
            }
        })
        .await
        else {
            return;
        };
        let admin = app.admin("auditor").await;
        let t = app.signed_up("proxied").await;
        let r = app
            .refresh_from(&t.refresh, "6.6.6.6, 198.51.100.7, 127.0.0.1", UA)
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let logs = app
            .admin_get(
                &format!("/admin/users/{}/refresh-logs", user_id_of(&t)),
                &admin.access,
            )
            .await;
        let expected = if trusted {
            // The right-most entry that is not a trusted proxy.
            "198.51.100.7"
        } else {
            // A forged header from an untrusted peer changes nothing.
            "127.0.0.1"
        };
        assert_eq!(logs["items"][0]["ip"], expected, "trusted: {trusted}");
    }
}

async fn another_network_and_device_right_after_use_is_answered_like_reuse(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, trusting_loopback).await else {
        return;
    };
    let admin = app.admin("watcher").await;
    let victim = app.signed_up("target").await;
    let phone = app.login("target").await;
    let r = app.refresh_from(&victim.refresh, HOME, UA).await;
    assert_eq!(r.status(), StatusCode::OK);
    let current = tokens_from_cookie(r).await;

    // The current token, moments later, from elsewhere with another client.
    let r = app
        .refresh_from(&current.refresh, ATTACKER, ATTACKER_UA)
        .await;
    assert!(clears_cookie(r.headers()));
    assert_problem(r, StatusCode::UNAUTHORIZED, "token_reused").await;
    assert_problem(
        app.refresh_from(&current.refresh, HOME, UA).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    assert_eq!(app.me_status(&phone.access).await, StatusCode::UNAUTHORIZED);

    let id = user_id_of(&victim);
    let events = app
        .admin_get(
            &format!("/admin/security-events?user_id={id}"),
            &admin.access,
        )
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);
    let e = &events["items"][0];
    assert_eq!(e["kind"], "anomaly");
    assert_eq!(e["details"]["previous_ip"], HOME);
    assert_eq!(e["details"]["ip"], ATTACKER);
    assert_eq!(e["details"]["response"], "revoke_all");
    let a = app
        .admin_get(&format!("/admin/users/{id}/token-analysis"), &admin.access)
        .await;
    assert_eq!(a["risk"]["level"], "high");
    assert_eq!(a["anomaly_events"], 1);
    assert_eq!(a["reuse_events"], 0);
    assert_eq!(a["attempts"]["by_outcome"]["anomaly"], 1);
}

async fn anomalies_under_log_only_are_recorded_and_let_through(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        trusting_loopback(c);
        c.anomaly_response = server::config::AnomalyResponse::LogOnly;
    })
    .await
    else {
        return;
    };
    let admin = app.admin("watcher").await;
    let t = app.signed_up("traveller").await;
    let r = app.refresh_from(&t.refresh, ATTACKER, ATTACKER_UA).await;
    assert_eq!(r.status(), StatusCode::OK);
    let next = tokens_from_cookie(r).await;
    assert_eq!(app.me_status(&next.access).await, StatusCode::OK);

    let id = user_id_of(&t);
    let a = app
        .admin_get(&format!("/admin/users/{id}/token-analysis"), &admin.access)
        .await;
    assert_eq!(a["anomaly_events"], 1);
    assert_eq!(a["risk"]["level"], "high", "the risk level counts it");
    assert_eq!(a["attempts"]["by_outcome"]["anomaly_logged"], 1);
    assert_eq!(a["attempts"]["succeeded"], 1);
    let events = app.admin_get("/admin/security-events", &admin.access).await;
    assert_eq!(events["items"][0]["details"]["response"], "log_only");
}

async fn a_phone_changing_networks_keeps_its_session(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, trusting_loopback).await else {
        return;
    };
    let admin = app.admin("watcher").await;
    let t = app.signed_up("commuter").await;
    let mut token = t.refresh.clone();
    let update = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.1";
    for (ip, ua) in [(HOME, UA), ("192.0.2.44", UA), ("192.0.2.45", update)] {
        let r = app.refresh_from(&token, ip, ua).await;
        assert_eq!(r.status(), StatusCode::OK, "{ip} {ua}");
        token = tokens_from_cookie(r).await.refresh;
    }
    let a = app
        .admin_get(
            &format!("/admin/users/{}/token-analysis", user_id_of(&t)),
            &admin.access,
        )
        .await;
    assert_eq!(a["risk"]["level"], "low", "{a}");
    assert_eq!(a["anomaly_events"], 0);
    assert_eq!(a["attempts"]["succeeded"], 3);
}
