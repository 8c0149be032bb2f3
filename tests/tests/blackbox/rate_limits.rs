//! Login rate limits over HTTP: per username (failures), per client IP
//! (attempts), in process and shared through Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use integration_tests::*;
use persistence::testing::TestDatabase;
use reqwest::{Response, StatusCode};
use serde_json::json;
use server::config::Rate;

on_both_backends!(
    failures_lock_the_username_even_for_the_right_password,
    a_success_resets_the_failures,
    the_lock_ends_when_the_window_has_passed,
    every_attempt_counts_against_the_address,
);

const WRONG: &str = "not the password at all";

fn per_minute(count: u32) -> Rate {
    Rate {
        count,
        per: Duration::from_secs(60),
    }
}

async fn login_with(app: &TestApp, username: &str, password: &str) -> Response {
    app.post_json(
        "/auth/login",
        &json!({"username": username, "password": password}),
    )
    .await
}

async fn assert_limited(r: Response, window: u64) {
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=window).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn failures_lock_the_username_even_for_the_right_password(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.login_rate_user = per_minute(3)).await
    else {
        return;
    };
    app.register("alice").await;
    app.register("bob").await;
    for _ in 0..3 {
        let r = login_with(&app, "alice", WRONG).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_limited(login_with(&app, "alice", PASSWORD).await, 60).await;
    assert_limited(login_with(&app, "ALICE", PASSWORD).await, 60).await;
    assert_eq!(
        login_with(&app, "bob", PASSWORD).await.status(),
        StatusCode::OK,
        "other users are unaffected"
    );
    // Unknown usernames are limited the same way: a 429 tells nothing.
    for _ in 0..3 {
        let r = login_with(&app, "nobody_here", WRONG).await;
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    assert_limited(login_with(&app, "nobody_here", WRONG).await, 60).await;
}

async fn a_success_resets_the_failures(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.login_rate_user = per_minute(3)).await
    else {
        return;
    };
    app.register("alice").await;
    for _ in 0..2 {
        assert_eq!(
            login_with(&app, "alice", WRONG).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_with(&app, "alice", PASSWORD).await.status(),
        StatusCode::OK
    );
    for _ in 0..2 {
        assert_eq!(
            login_with(&app, "alice", WRONG).await.status(),
            StatusCode::UNAUTHORIZED,
            "the count started again"
        );
    }
    assert_eq!(
        login_with(&app, "alice", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn the_lock_ends_when_the_window_has_passed(backend: Backend) {
    let window = Duration::from_secs(2);
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.login_rate_user = Rate {
            count: 2,
            per: window,
        };
    })
    .await
    else {
        return;
    };
    app.register("alice").await;
    login_with(&app, "alice", WRONG).await;
    login_with(&app, "alice", WRONG).await;
    assert_limited(login_with(&app, "alice", PASSWORD).await, 2).await;
    app.advance(window + Duration::from_millis(200));
    assert_eq!(
        login_with(&app, "alice", PASSWORD).await.status(),
        StatusCode::OK
    );
}

async fn every_attempt_counts_against_the_address(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.login_rate_ip = per_minute(4)).await else {
        return;
    };
    app.register("alice").await;
    app.register("bob").await;
    assert_eq!(
        login_with(&app, "alice", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        login_with(&app, "alice", WRONG).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_with(&app, "bob", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        login_with(&app, "bob", PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_limited(login_with(&app, "bob", PASSWORD).await, 60).await;
    // Other endpoints are not limited.
    assert_eq!(app.register("carol").await.status(), StatusCode::CREATED);
}

/// `TEST_REDIS_URL`, or `None` (saying why) when unset, unless
/// `TOKENWARDEN_TEST_REQUIRE_SERVICES=1` makes that a failure.
fn redis_url() -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert_ne!(
                std::env::var("TOKENWARDEN_TEST_REQUIRE_SERVICES").as_deref(),
                Ok("1"),
                "TEST_REDIS_URL is required"
            );
            eprintln!("skipping: TEST_REDIS_URL is not set");
            None
        }
    }
}

/// Two instances sharing one Redis (each with a database of its own, the
/// same user in both): failures counted by one lock the username on the
/// other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_the_limits_are_shared_by_every_instance() {
    let Some(redis) = redis_url() else {
        return;
    };
    // Redis outlives the test: a name of its own keeps reruns apart.
    let name = format!(
        "shared_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000_000
    );
    let adjust = |c: &mut server::Config| {
        c.redis_url = Some(redis.clone().into());
        c.login_rate_user = per_minute(2);
    };
    let a = TestApp::spawn_on(TestDatabase::sqlite(), adjust).await;
    let b = TestApp::spawn_on(TestDatabase::sqlite(), adjust).await;
    assert_eq!(a.register(&name).await.status(), StatusCode::CREATED);
    assert_eq!(b.register(&name).await.status(), StatusCode::CREATED);
    assert_eq!(
        login_with(&a, &name, WRONG).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_with(&b, &name, WRONG).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_limited(login_with(&a, &name, PASSWORD).await, 60).await;
    assert_limited(login_with(&b, &name, PASSWORD).await, 60).await;

    let ready: serde_json::Value = a
        .client
        .get(a.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["redis"], "up", "{ready}");
}
