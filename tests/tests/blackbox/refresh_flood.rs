//! Refresh floods (API.md "v2 — Abuse limits", "Refresh flood"), black-box:
//! every failed refresh attempt counts against its address's budget,
//! whatever it fails for; over the budget it is answered 429 and only
//! counted in one `rate_limited` audit row per address and minute, shared
//! by every instance; the budget holds exactly under concurrency, in
//! process and across instances through Redis.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::audit_support::LOOPBACK_PROXY;
use integration_tests::*;
use redis_revocation::testing::{test_redis_url, unique_prefix};
use reqwest::header::{CONTENT_TYPE, COOKIE, ORIGIN, USER_AGENT};
use reqwest::StatusCode;
use server::{Application, Config};

on_both_backends!(
    every_failed_refresh_counts_against_the_budget,
    with_redis_every_failed_refresh_counts_against_the_budget,
    simultaneous_bad_refreshes_get_at_most_the_budget_answered,
    with_redis_simultaneous_bad_refreshes_on_two_instances_get_at_most_the_budget,
    two_instances_write_one_throttled_row_per_address_and_minute,
    with_redis_two_instances_write_one_throttled_row_per_address_and_minute,
);

const BUDGET: u32 = 5;

fn per_minute(count: u32) -> server::config::Rate {
    server::config::Rate {
        count,
        per: Duration::from_secs(60),
    }
}

/// Shared Redis settings, with a prefix of the test's own (Redis outlives
/// the test); `None` (after saying why) without a test Redis.
fn with_redis() -> Option<impl Fn(&mut Config) + Clone> {
    let url = test_redis_url()?;
    let prefix = unique_prefix();
    Some(move |c: &mut Config| {
        c.redis_url = Some(url.clone().into());
        c.redis_key_prefix = prefix.clone();
    })
}

/// A second server on `app`'s database, keys and settings: another
/// instance behind the load balancer.
async fn beside(app: &TestApp) -> String {
    let server = Application::build(app.config.clone())
        .await
        .expect("second instance starts");
    let address = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped());
    address
}

/// The kinds of bad refresh request of the audit, each with the answer it
/// gets within the budget.
#[derive(Debug, Clone, Copy)]
enum Bad {
    NotJson,
    WrongShape,
    Oversized,
    ForeignOrigin,
    DuplicateCookies,
    GarbageToken,
}

impl Bad {
    const ALL: [Bad; 6] = [
        Bad::NotJson,
        Bad::WrongShape,
        Bad::Oversized,
        Bad::ForeignOrigin,
        Bad::DuplicateCookies,
        Bad::GarbageToken,
    ];

    fn status(self) -> StatusCode {
        match self {
            Bad::NotJson => StatusCode::BAD_REQUEST,
            Bad::WrongShape => StatusCode::UNPROCESSABLE_ENTITY,
            Bad::Oversized => StatusCode::PAYLOAD_TOO_LARGE,
            Bad::ForeignOrigin => StatusCode::FORBIDDEN,
            Bad::DuplicateCookies | Bad::GarbageToken => StatusCode::UNAUTHORIZED,
        }
    }

    /// Sends one to `base` (a server's address) as client `ip` (the test
    /// servers trust the loopback proxy).
    async fn send(self, client: &reqwest::Client, base: &str, ip: &str) -> reqwest::Response {
        let r = client
            .post(format!("{base}/auth/refresh"))
            .header(USER_AGENT, UA)
            .header("x-forwarded-for", ip);
        let r = match self {
            Bad::NotJson => r.header(CONTENT_TYPE, "application/json").body("{"),
            Bad::WrongShape => r
                .header(CONTENT_TYPE, "application/json")
                .body(r#"{"refresh_token": 5}"#),
            Bad::Oversized => r
                .header(CONTENT_TYPE, "application/json")
                .body(format!(r#"{{"refresh_token": "{}"}}"#, "a".repeat(70_000))),
            Bad::ForeignOrigin => r
                .header(ORIGIN, "https://evil.example")
                .header(COOKIE, "refresh_token=twr_garbage"),
            Bad::DuplicateCookies => r.header(COOKIE, "refresh_token=twr_a; refresh_token=twr_b"),
            Bad::GarbageToken => r.header(COOKIE, "refresh_token=twr_garbage"),
        };
        r.send().await.unwrap()
    }
}

fn rows(m: &BTreeMap<String, u64>, k: &str) -> u64 {
    m.get(k).copied().unwrap_or(0)
}

/// Waits (for the server's flush every second) until the `rate_limited`
/// rows stand for `expected` requests more than in `before`.
async fn throttled_requests_reach(app: &TestApp, before: &BTreeMap<String, u64>, expected: u64) {
    let mut counted = 0;
    for _ in 0..50 {
        counted = rows(&app.audit_requests().await, "rate_limited") - rows(before, "rate_limited");
        if counted >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(counted, expected, "every throttled request is counted");
}

/// The audit's floods, each kind from an address of its own: `BUDGET`
/// answered as usual, then 429 with `Retry-After`, and over the budget no
/// row of their own, only the aggregated one of their address. Successful
/// refreshes do not use the budget.
async fn every_failed_refresh_is_counted(app: &TestApp) {
    let t = app.signed_up("honest").await;
    let before = app.audit_outcomes().await;
    let requests_before = app.audit_requests().await;
    for (i, bad) in Bad::ALL.into_iter().enumerate() {
        let ip = format!("198.51.100.{}", i + 1);
        for n in 0..BUDGET + 2 {
            let r = bad.send(&app.client, &app.address, &ip).await;
            if n < BUDGET {
                assert_eq!(r.status(), bad.status(), "{bad:?} #{n}");
            } else {
                assert!(r.headers().contains_key("retry-after"), "{bad:?}");
                assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
            }
        }
        for _ in 0..30 {
            let r = bad.send(&app.client, &app.address, &ip).await;
            assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{bad:?}");
        }
    }
    let kinds = Bad::ALL.len() as u64;
    let after = app.audit_outcomes().await;
    let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    let throttled_rows = rows(&after, "rate_limited") - rows(&before, "rate_limited");
    assert!(
        (kinds..=2 * kinds).contains(&throttled_rows),
        "one row per address and minute (two if the minute turned): {after:?}"
    );
    assert_eq!(
        total(&after) - total(&before) - throttled_rows,
        kinds * u64::from(BUDGET),
        "a row each only within the budget: {after:?}"
    );
    throttled_requests_reach(app, &requests_before, kinds * 32).await;

    // Successes give their reservation back: many of them, then the whole
    // budget of failures is still there.
    let ip = "203.0.113.9";
    let mut refresh = t.refresh;
    for _ in 0..2 * BUDGET {
        let r = app
            .client
            .post(app.url("/auth/refresh"))
            .header(USER_AGENT, UA)
            .header("x-forwarded-for", ip)
            .header(COOKIE, format!("refresh_token={refresh}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        refresh = tokens_from_cookie(r).await.refresh;
    }
    for _ in 0..BUDGET {
        let r = Bad::GarbageToken.send(&app.client, &app.address, ip).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = Bad::GarbageToken.send(&app.client, &app.address, ip).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

fn flood_config(c: &mut Config) {
    c.refresh_fail_rate_ip = per_minute(BUDGET);
    c.trusted_proxies = vec![LOOPBACK_PROXY.parse().unwrap()];
}

async fn every_failed_refresh_counts_against_the_budget(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, flood_config).await else {
        return;
    };
    every_failed_refresh_is_counted(&app).await;
}

async fn with_redis_every_failed_refresh_counts_against_the_budget(backend: Backend) {
    let Some(redis) = with_redis() else { return };
    let Some(app) = TestApp::spawn_with(backend, |c| {
        flood_config(c);
        redis(c);
    })
    .await
    else {
        return;
    };
    every_failed_refresh_is_counted(&app).await;
}

/// 40 simultaneous garbage refreshes from one address, spread over
/// `servers`: exactly `BUDGET` are looked at, the rest get 429.
async fn at_most_the_budget_answered(app: &TestApp, servers: &[String]) {
    let attempts = (0..40).map(|i| {
        let base = &servers[i % servers.len()];
        async move {
            Bad::GarbageToken
                .send(&app.client, base, "198.51.100.77")
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let looked_at = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((looked_at, refused), (BUDGET as usize, 35), "{statuses:?}");
}

async fn simultaneous_bad_refreshes_get_at_most_the_budget_answered(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, flood_config).await else {
        return;
    };
    let servers = [app.address.clone()];
    at_most_the_budget_answered(&app, &servers).await;
}

async fn with_redis_simultaneous_bad_refreshes_on_two_instances_get_at_most_the_budget(
    backend: Backend,
) {
    let Some(redis) = with_redis() else { return };
    let Some(app) = TestApp::spawn_with(backend, |c| {
        flood_config(c);
        redis(c);
    })
    .await
    else {
        return;
    };
    let servers = [app.address.clone(), beside(&app).await];
    at_most_the_budget_answered(&app, &servers).await;
}

/// 100 garbage refreshes from one address, alternating between two
/// instances on one database: the throttled ones are one row, whose count
/// covers them all. `budget` is how many each instance answers before
/// throttling (per instance without Redis, shared with it).
async fn one_throttled_row(app: &TestApp, budget: u64) {
    let servers = [app.address.clone(), beside(app).await];
    // Start early in a minute, so that the flood does not straddle two.
    let into_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        % 60_000;
    if into_minute > 45_000 {
        tokio::time::sleep(Duration::from_millis(60_100 - into_minute as u64)).await;
    }
    let before = app.audit_outcomes().await;
    let requests_before = app.audit_requests().await;
    let mut throttled = 0;
    for i in 0..100 {
        let r = Bad::GarbageToken
            .send(&app.client, &servers[i % 2], "198.51.100.88")
            .await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled += 1;
        }
    }
    assert_eq!(throttled, 100 - budget);
    throttled_requests_reach(app, &requests_before, throttled).await;
    let after = app.audit_outcomes().await;
    let new_rows = rows(&after, "rate_limited") - rows(&before, "rate_limited");
    assert_eq!(new_rows, 1, "one row per address and minute: {after:?}");
}

async fn two_instances_write_one_throttled_row_per_address_and_minute(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, flood_config).await else {
        return;
    };
    one_throttled_row(&app, 2 * u64::from(BUDGET)).await;
}

async fn with_redis_two_instances_write_one_throttled_row_per_address_and_minute(backend: Backend) {
    let Some(redis) = with_redis() else { return };
    let Some(app) = TestApp::spawn_with(backend, |c| {
        flood_config(c);
        redis(c);
    })
    .await
    else {
        return;
    };
    one_throttled_row(&app, u64::from(BUDGET)).await;
}
