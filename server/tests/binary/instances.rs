//! The real `tokenwarden` binary with the revocation list: two server
//! processes sharing PostgreSQL and Redis, a Redis stopped under them, the
//! `cleanup` command and the new settings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use domain::Timestamp;
use persistence::testing::{seed_expired_sessions, TestDatabase};
use redis_revocation::testing::{test_redis_url, unique_prefix, RedisServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{serve, tokenwarden, Server};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Registers `name` on `at` and logs in with body delivery: (access, refresh).
async fn signed_up(client: &reqwest::Client, at: &Server, name: &str) -> (String, String) {
    let r = client
        .post(at.url("/auth/register"))
        .json(&json!({"username": name, "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    login(client, at, name).await
}

async fn login(client: &reqwest::Client, at: &Server, name: &str) -> (String, String) {
    let r = client
        .post(at.url("/auth/login"))
        .json(&json!({"username": name, "password": "password123", "token_delivery": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn logout(client: &reqwest::Client, at: &Server, refresh: &str) {
    let r = client
        .post(at.url("/auth/logout"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

async fn me(client: &reqwest::Client, at: &Server, access: &str) -> (StatusCode, Value) {
    let r = client
        .get(at.url("/api/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Logout on A; B refuses the access token at once: as soon as Redis has
/// delivered the message to B's subscription (well under a millisecond on
/// an idle machine; a loaded CI machine may take a few to schedule the
/// subscriber thread, hence the 200 ms allowance).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_sharing_postgres_and_redis_refuse_a_logged_out_token_at_once() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let Some(redis) = test_redis_url() else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let prefix = unique_prefix();
    let env = [
        ("REDIS_URL", redis.as_str()),
        ("TOKENWARDEN_REDIS_KEY_PREFIX", prefix.as_str()),
    ];
    let a = serve(db.url(), keys.path(), &env).await;
    let b = serve(db.url(), keys.path(), &env).await;
    let client = client();

    for round in 0..5 {
        let name = format!("twin{round}");
        let (access, refresh) = signed_up(&client, &a, &name).await;
        assert_eq!(me(&client, &b, &access).await.0, StatusCode::OK);
        logout(&client, &a, &refresh).await;
        let started = Instant::now();
        let body = loop {
            let (status, body) = me(&client, &b, &access).await;
            if status == StatusCode::UNAUTHORIZED {
                break body;
            }
            assert!(
                started.elapsed() < Duration::from_millis(200),
                "round {round}: B still honours the token"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        assert_eq!(body["code"], "session_revoked");
        eprintln!("round {round}: refused on B after {:?}", started.elapsed());
    }
}

/// Redis dies under two processes: B answers from the database at once, and
/// catches up when Redis returns (empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_survive_a_redis_stopped_under_them() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let url = redis.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("TOKENWARDEN_REDIS_FAILURE", "fallback"),
    ];
    let a = serve(db.url(), keys.path(), &env).await;
    let b = serve(db.url(), keys.path(), &env).await;
    let client = client();
    let (access, refresh) = signed_up(&client, &a, "kim").await;
    let (other_access, _) = login(&client, &a, "kim").await;
    assert_eq!(me(&client, &b, &access).await.0, StatusCode::OK);

    redis.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    logout(&client, &a, &refresh).await;
    assert_eq!(me(&client, &b, &access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&client, &b, &other_access).await.0, StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "nothing waits for Redis"
    );

    redis.restart();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(me(&client, &b, &access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&client, &b, &other_access).await.0, StatusCode::OK);
}

#[test]
fn cleanup_prints_what_it_removed_per_table() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let migrate = tokenwarden(db.url(), keys.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(migrate.status.success());
    seed_expired_sessions(&db.connect(1), 25, 2, Timestamp::from_millis(1_000_000));

    let out = tokenwarden(db.url(), keys.path())
        .arg("cleanup")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("refresh_tokens: 50"), "{printed}");
    assert!(printed.contains("sessions: 25"), "{printed}");
    assert!(printed.contains("revocations: 0"), "{printed}");
    assert!(printed.contains("audit: "), "{printed}");

    let again = tokenwarden(db.url(), keys.path())
        .arg("cleanup")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&again.stdout);
    assert!(
        printed.contains("refresh_tokens: 0") && printed.contains("sessions: 0"),
        "{printed}"
    );
}

#[test]
fn bad_revocation_and_cleanup_settings_stop_start_up_with_one_line() {
    let keys = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("TOKENWARDEN_CLEANUP_INTERVAL", "sometimes"),
        ("TOKENWARDEN_REDIS_FAILURE", "shrug"),
        ("TOKENWARDEN_REDIS_TIMEOUT", "0s"),
        ("REDIS_URL", "memcached://cache"),
    ] {
        let out = tokenwarden("sqlite://unused.db", keys.path())
            .arg("serve")
            .env(var, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
}
