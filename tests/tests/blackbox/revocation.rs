//! The revocation list over HTTP: through the database and through Redis,
//! across two server instances sharing them, with Redis down or going away,
//! and the cleanup job. Every test runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use integration_tests::*;
use redis_revocation::testing::{test_redis_url, unique_prefix, RedisServer};
use redis_revocation::OnRedisFailure;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::json;
use server::{Application, Config};

on_both_backends!(
    without_redis_another_instance_refuses_a_logged_out_token_within_a_second,
    with_redis_another_instance_refuses_a_logged_out_token_at_once,
    with_redis_every_revocation_path_reaches_the_other_instance,
    a_redis_that_is_down_falls_back_to_the_database,
    a_redis_that_is_down_fails_closed_when_so_configured,
    a_redis_stopped_mid_test_never_lets_a_revoked_session_through,
    a_flushed_redis_never_lets_a_revoked_access_token_through,
    the_cleanup_job_removes_sessions_past_their_lifetime,
);

/// Another server on the same database, keys and settings (with
/// `adjust`): a second instance behind the load balancer.
struct Instance {
    address: String,
    client: reqwest::Client,
}

impl Instance {
    async fn beside(app: &TestApp, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = app.config.clone();
        adjust(&mut config);
        let server = Application::build(config)
            .await
            .expect("second instance starts");
        let address = format!("http://127.0.0.1:{}", server.port());
        tokio::spawn(server.run_until_stopped());
        Self {
            address,
            client: quick_client(),
        }
    }

    async fn me_status(&self, access: &str) -> StatusCode {
        self.client
            .get(format!("{}/api/me", self.address))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status()
    }
}

/// Every request of these tests must be answered promptly, Redis or not.
fn quick_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn with_redis(url: &str, prefix: &str, on_failure: OnRedisFailure) -> impl Fn(&mut Config) {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    move |c: &mut Config| {
        c.redis_url = Some(url.clone().into());
        c.redis_key_prefix = prefix.clone();
        c.redis_failure = on_failure;
    }
}

async fn logout(app: &TestApp, refresh: &str) {
    let r = app
        .client
        .post(app.url("/auth/logout"))
        .header(COOKIE, format!("refresh_token={refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

/// How long until `b` refuses `access`; fails past `limit`.
async fn refused_within(b: &Instance, access: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if b.me_status(access).await == StatusCode::UNAUTHORIZED {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "the other instance still honoured the token after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn without_redis_another_instance_refuses_a_logged_out_token_within_a_second(
    backend: Backend,
) {
    let Some(a) = TestApp::spawn(backend).await else {
        return;
    };
    let b = Instance::beside(&a, |_| {}).await;
    let t = a.signed_up("dora").await;
    // B has seen the session live (and may remember that for a second).
    assert_eq!(b.me_status(&t.access).await, StatusCode::OK);
    logout(&a, &t.refresh).await;
    assert_eq!(
        a.me_status(&t.access).await,
        StatusCode::UNAUTHORIZED,
        "A at once"
    );
    let took = refused_within(&b, &t.access, Duration::from_millis(1_500)).await;
    eprintln!("database backend: B refused the token after {took:?}");
}

async fn with_redis_another_instance_refuses_a_logged_out_token_at_once(backend: Backend) {
    let Some(url) = test_redis_url() else {
        return;
    };
    let redis = with_redis(&url, &unique_prefix(), OnRedisFailure::FailClosed);
    let Some(a) = TestApp::spawn_with(backend, &redis).await else {
        return;
    };
    let b = Instance::beside(&a, |_| {}).await;
    let t = a.signed_up("eddy").await;
    assert_eq!(b.me_status(&t.access).await, StatusCode::OK);
    logout(&a, &t.refresh).await;
    // As soon as Redis has delivered the message to B's subscription: under
    // a millisecond on an idle machine, a few on a loaded one.
    let took = refused_within(&b, &t.access, Duration::from_millis(200)).await;
    eprintln!("redis backend: B refused the token after {took:?}");
    let r = b
        .client
        .get(format!("{}/api/me", b.address))
        .bearer_auth(&t.access)
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNAUTHORIZED, "session_revoked").await;
}

async fn with_redis_every_revocation_path_reaches_the_other_instance(backend: Backend) {
    let Some(url) = test_redis_url() else {
        return;
    };
    let redis = with_redis(&url, &unique_prefix(), OnRedisFailure::FailClosed);
    let Some(a) = TestApp::spawn_with(backend, |c| {
        redis(c);
        c.lifetimes.max_sessions = 3;
        c.lifetimes.grace = Duration::ZERO;
        c.retry_window = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let b = Instance::beside(&a, |_| {}).await;
    // B learns of revocations through Redis pub/sub: a few milliseconds
    // after A answered. Ask B for up to half a second before concluding that
    // a token is still honoured there.
    let check = |access: String| {
        let b = &b;
        async move {
            let deadline = std::time::Instant::now() + Duration::from_millis(500);
            loop {
                let status = b.me_status(&access).await;
                if status == StatusCode::UNAUTHORIZED || std::time::Instant::now() >= deadline {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };

    // Logout everywhere.
    let x = a.signed_up("finn").await;
    let y = a.login("finn").await;
    let r = a
        .client
        .post(a.url("/auth/logout-all"))
        .bearer_auth(&x.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(check(x.access.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(check(y.access.clone()).await, StatusCode::UNAUTHORIZED);

    // Deleting one session.
    let p = a.login("finn").await;
    let q = a.login("finn").await;
    let r = a
        .client
        .delete(a.url(&format!("/auth/sessions/{}", q.session_id)))
        .bearer_auth(&p.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(check(q.access.clone()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(check(p.access.clone()).await, StatusCode::OK);

    // Eviction beyond the limit (p, then two more: p is the oldest of 3).
    let _ = a.login("finn").await;
    let _ = a.login("finn").await;
    let _ = a.login("finn").await;
    assert_eq!(check(p.access.clone()).await, StatusCode::UNAUTHORIZED);

    // Reuse: the theft response revokes every session of the user.
    let s = a.signed_up("gwen").await;
    let s2 = a.login("gwen").await;
    let rotated = tokens_from_cookie(a.refresh_cookie(&s.refresh).await).await;
    assert_problem(
        a.refresh_cookie(&s.refresh).await,
        StatusCode::UNAUTHORIZED,
        "token_reused",
    )
    .await;
    for access in [rotated.access, s2.access] {
        assert_eq!(check(access).await, StatusCode::UNAUTHORIZED);
    }

    // One access token through /auth/revoke.
    let t = a.signed_up("hugo").await;
    let r = a
        .post_json("/auth/revoke", &json!({ "token": t.access }))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(check(t.access.clone()).await, StatusCode::UNAUTHORIZED);
    let next = tokens_from_cookie(a.refresh_cookie(&t.refresh).await).await;
    assert_eq!(check(next.access).await, StatusCode::OK);
}

async fn a_redis_that_is_down_falls_back_to_the_database(backend: Backend) {
    let down = with_redis(
        "redis://127.0.0.1:1",
        &unique_prefix(),
        OnRedisFailure::Fallback,
    );
    let started = Instant::now();
    let Some(a) = TestApp::spawn_with(backend, &down).await else {
        return;
    };
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "start-up does not hang"
    );
    let b = Instance::beside(&a, |_| {}).await;
    let started = Instant::now();
    let t = a.signed_up("ines").await;
    assert_eq!(b.me_status(&t.access).await, StatusCode::OK);
    let next = tokens_from_cookie(a.refresh_cookie(&t.refresh).await).await;
    logout(&a, &next.refresh).await;
    for access in [&t.access, &next.access] {
        assert_eq!(a.me_status(access).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            b.me_status(access).await,
            StatusCode::UNAUTHORIZED,
            "at once"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no request waits for the dead Redis"
    );
}

async fn a_redis_that_is_down_fails_closed_when_so_configured(backend: Backend) {
    let down = with_redis(
        "redis://127.0.0.1:1",
        &unique_prefix(),
        OnRedisFailure::FailClosed,
    );
    let Some(app) = TestApp::spawn_with(backend, &down).await else {
        return;
    };
    let started = Instant::now();
    let t = app.signed_up("jack").await;
    assert_problem(
        app.get_bearer("/api/me", &t.access).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    assert_problem(
        app.refresh_cookie(&t.refresh).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    )
    .await;
    // Ending sessions still works: the database records it.
    logout(&app, &t.refresh).await;
    assert!(started.elapsed() < Duration::from_secs(5), "nothing hangs");
}

async fn a_redis_stopped_mid_test_never_lets_a_revoked_session_through(backend: Backend) {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let prefix = unique_prefix();
    let Some(a) = TestApp::spawn_with(
        backend,
        with_redis(&redis.url(), &prefix, OnRedisFailure::Fallback),
    )
    .await
    else {
        return;
    };
    let b = Instance::beside(&a, |_| {}).await;
    let strict = Instance::beside(&a, |c| c.redis_failure = OnRedisFailure::FailClosed).await;
    let t = a.signed_up("kate").await;
    let u = a.login("kate").await;
    for i in [&b, &strict] {
        assert_eq!(i.me_status(&t.access).await, StatusCode::OK);
    }

    redis.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    logout(&a, &t.refresh).await;
    assert_eq!(
        b.me_status(&t.access).await,
        StatusCode::UNAUTHORIZED,
        "fallback, at once"
    );
    assert_eq!(
        b.me_status(&u.access).await,
        StatusCode::OK,
        "fallback keeps serving"
    );
    assert_eq!(
        strict.me_status(&u.access).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "fail closed"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "nothing hangs");

    // Back, empty: the entry made during the outage is pushed again, and
    // the fail-closed instance serves again.
    redis.restart();
    let back = Instant::now();
    while strict.me_status(&u.access).await != StatusCode::OK {
        assert!(back.elapsed() < Duration::from_secs(15), "never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in [&b, &strict] {
        assert_eq!(i.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
    }
    // The revoking instance reconnects on its own backoff (at most 2 s,
    // then one catch-up): wait that out, so that the bound below measures
    // Redis's delivery, not `a`'s reconnection (which a loaded machine made
    // longer than the bound).
    tokio::time::sleep(Duration::from_secs(3)).await;
    logout(&a, &u.refresh).await;
    // Through Redis again: as soon as its message arrives (the same bound
    // as the test with Redis up; on a loaded machine it is not always
    // there before the very next request).
    refused_within(&strict, &u.access, Duration::from_millis(200)).await;
}

/// `FLUSHALL` on the Redis the instances share (their own server): an
/// access token revoked before is still refused, by Bearer checks and by
/// introspection, on both instances, at once and after.
async fn a_flushed_redis_never_lets_a_revoked_access_token_through(backend: Backend) {
    const SECRET: &str = "flush-test-introspection-secret";
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let shared = with_redis(&redis.url(), &unique_prefix(), OnRedisFailure::FailClosed);
    let Some(a) = TestApp::spawn_with(backend, |c| {
        shared(c);
        c.introspection_token = Some(web::IntrospectionSecret::new(SECRET));
    })
    .await
    else {
        return;
    };
    let b = Instance::beside(&a, |_| {}).await;
    let t = a.signed_up("flora").await;
    let revoked = a
        .client
        .post(a.url("/auth/revoke"))
        .json(&json!({ "token": t.access }))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let active = |base: String| {
        let (client, token) = (a.client.clone(), t.access.clone());
        async move {
            let r = client
                .post(format!("{base}/auth/introspect"))
                .bearer_auth(SECRET)
                .json(&json!({ "token": token }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<serde_json::Value>().await.unwrap()["active"].clone()
        }
    };
    assert_eq!(active(a.address.clone()).await, json!(false));

    redis.flush_all();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        for base in [a.address.clone(), b.address.clone()] {
            assert_eq!(
                active(base.clone()).await,
                json!(false),
                "introspection after FLUSHALL"
            );
        }
        assert_eq!(a.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
        assert_eq!(b.me_status(&t.access).await, StatusCode::UNAUTHORIZED);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn the_cleanup_job_removes_sessions_past_their_lifetime(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.cleanup_interval = Duration::from_millis(200);
        c.lifetimes.max_lifetime = Duration::from_millis(1_000);
    })
    .await
    else {
        return;
    };
    let t = app.signed_up("liam").await;
    app.advance(Duration::from_millis(1_100));
    // Past its lifetime: first "expired"; once the job has run, the token
    // is simply unknown.
    let start = Instant::now();
    loop {
        let r = app.refresh_cookie(&t.refresh).await;
        let (status, body) = problem(r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        match body["code"].as_str() {
            Some("token_expired") => {}
            Some("invalid_token") => break,
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the job never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A live session of another user is untouched.
    let live = app.signed_up("mona").await;
    assert_eq!(app.me_status(&live.access).await, StatusCode::OK);
}
