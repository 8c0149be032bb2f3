//! Webhooks (API.md, "v2 — Integration"): every security event POSTed to
//! a receiver that checks its Standard Webhooks signature, again after a
//! 500 or a hang, on SQLite and PostgreSQL. The crash case (SIGKILL before
//! delivery) is in `server/tests/binary/webhooks.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use application::webhooks::RetryPolicy;
use integration_tests::audit_support::*;
use integration_tests::*;
use reqwest::StatusCode;
use serde_json::Value;
use webhook::testing::{Answer, Received, Receiver};
use webhook::{WebhookConfig, WebhookSecret};

on_both_backends!(
    every_kind_of_security_event_is_posted_signed,
    a_receiver_answering_500_gets_the_event_again_until_it_takes_it,
    a_hanging_receiver_is_timed_out_and_the_event_sent_again,
);

/// The Standard Webhooks specification's example secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A server posting to `receiver`, polling often, retrying after 200 ms
/// (doubling), each attempt bounded by `timeout`.
async fn spawn(backend: Backend, receiver: &Receiver, timeout: Duration) -> Option<TestApp> {
    let url = webhook::parse_url(&receiver.url).unwrap();
    TestApp::spawn_with(backend, move |c| {
        // A replayed token is reuse at once (no grace or retry window).
        c.lifetimes.grace = Duration::ZERO;
        c.retry_window = Duration::ZERO;
        let mut hook = WebhookConfig::new(url, WebhookSecret::parse(SECRET).unwrap());
        hook.poll_interval = Duration::from_millis(50);
        hook.timeout = timeout;
        hook.retry = RetryPolicy {
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
            give_up_after: Duration::from_secs(3_600),
        };
        c.webhook = Some(hook);
    })
    .await
}

fn delivered(received: &[Received]) -> Vec<&Received> {
    received.iter().filter(|r| r.status == 200).collect()
}

async fn every_kind_of_security_event_is_posted_signed(backend: Backend) {
    let receiver = Receiver::start(SECRET, Vec::new());
    let Some(app) = spawn(backend, &receiver, Duration::from_secs(5)).await else {
        return;
    };
    let admin = app.admin("security_lead").await;
    let victim = app.signed_up("victim").await;
    let victim_id = user_id_of(&victim);

    // token_reuse: a rotated token comes back.
    let r = app.refresh_cookie(&victim.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.refresh_cookie(&victim.refresh).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // logout_all, then admin_revoke.
    let again = app.login("victim").await;
    let r = app
        .client
        .post(app.url("/auth/logout-all"))
        .bearer_auth(&again.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.login("victim").await;
    let r = app
        .client
        .post(app.url(&format!("/admin/users/{victim_id}/revoke-sessions")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let received = receiver
        .wait_for_delivered(3, Duration::from_secs(20))
        .await;
    let got = delivered(&received);
    assert_eq!(got.len(), 3, "{received:#?}");
    let events = app
        .admin_list_all("/admin/security-events", &admin.access)
        .await;
    assert_eq!(events.len(), 3);
    for r in &got {
        assert!(r.verified, "signature of {r:?}");
        assert_eq!(
            r.body["id"],
            Value::String(r.id.clone()),
            "webhook-id is the event id"
        );
        // The body is the admin API's event, `kind` named `type`.
        let event = events.iter().find(|e| e["id"] == r.body["id"]).unwrap();
        for field in ["user_id", "session_id", "created_at", "details"] {
            assert_eq!(r.body[field], event[field], "{field}");
        }
        assert_eq!(r.body["type"], event["kind"]);
        assert_eq!(r.body["user_id"], victim_id.as_str());
    }
    let kinds: BTreeSet<&str> = got
        .iter()
        .map(|r| r.body["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["admin_revoke", "logout_all", "token_reuse"])
    );
    // Each once: nothing is sent again after a 2xx.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 3);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("tokenwarden_webhook_delivered_total"),
        "{text}"
    );
    assert!(text.contains("tokenwarden_webhook_pending"), "{text}");
}

/// Logs out everywhere as a fresh user: one `logout_all` event.
async fn one_event(app: &TestApp) {
    let user = app.signed_up("someone").await;
    let r = app
        .client
        .post(app.url("/auth/logout-all"))
        .bearer_auth(&user.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

async fn a_receiver_answering_500_gets_the_event_again_until_it_takes_it(backend: Backend) {
    let receiver = Receiver::start(SECRET, vec![Answer::Status(500), Answer::Status(503)]);
    let Some(app) = spawn(backend, &receiver, Duration::from_secs(5)).await else {
        return;
    };
    one_event(&app).await;
    let received = receiver
        .wait_for_delivered(1, Duration::from_secs(20))
        .await;
    let statuses: Vec<u16> = received.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 503, 200], "{received:#?}");
    // The same event each time, each attempt signed afresh.
    assert!(received
        .iter()
        .all(|r| r.verified && r.id == received[0].id));
    assert!(received.iter().all(|r| r.body == received[0].body));
}

async fn a_hanging_receiver_is_timed_out_and_the_event_sent_again(backend: Backend) {
    let receiver = Receiver::start(SECRET, vec![Answer::Hang(Duration::from_secs(30))]);
    let Some(app) = spawn(backend, &receiver, Duration::from_secs(1)).await else {
        return;
    };
    let started = std::time::Instant::now();
    one_event(&app).await;
    let received = receiver
        .wait_for_delivered(1, Duration::from_secs(20))
        .await;
    let statuses: Vec<u16> = received.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 200], "{received:#?}");
    assert!(received
        .iter()
        .all(|r| r.verified && r.id == received[0].id));
    // Timed out after the attempt's bound, not after the receiver's 30 s.
    assert!(started.elapsed() < Duration::from_secs(10));
    // Requests never waited for any of it.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
