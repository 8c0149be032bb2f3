//! A crash is not a theft: SIGKILL of the server under 32 refreshing
//! clients, a restart after more than the grace window, and every client
//! carries on with the token it holds (API.md "v2 — Availability", lost
//! responses). On SQLite and PostgreSQL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use persistence::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{free_port, start, tokenwarden, Server};

const CLIENTS: usize = 32;
/// Sessions per user: a false `token_reused` would end all of them.
const SESSIONS_PER_USER: usize = 8;
const PASSWORD: &str = "crash test password";
const GRACE: &str = "1s";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn serve_on(db: &str, keys: &std::path::Path, port: u16) -> Server {
    let mut cmd = tokenwarden(db, keys);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .env("TOKENWARDEN_REUSE_GRACE", GRACE)
        .env("TOKENWARDEN_LOGIN_RATE_USER", "100000/min")
        .env("TOKENWARDEN_LOGIN_RATE_IP", "100000/min");
    start(cmd, port).await
}

/// What the clients saw, for the audit comparison.
#[derive(Default)]
struct Seen {
    /// Refreshes that got an answer (any status).
    answered: AtomicU64,
    /// Refreshes answered with something else than 200.
    refused: AtomicU64,
}

/// One refresh with body delivery: `Some(new token)` on 200, `None` when
/// the answer never came (the server died), a panic on any refusal.
async fn refresh(http: &reqwest::Client, port: u16, token: &str, seen: &Seen) -> Option<String> {
    let r = http
        .post(format!("http://127.0.0.1:{port}/auth/refresh"))
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
        )
        .json(&json!({"refresh_token": token}))
        .send()
        .await
        .ok()?;
    let status = r.status();
    let body: Value = r.json().await.ok()?;
    seen.answered.fetch_add(1, Ordering::SeqCst);
    if status != StatusCode::OK {
        seen.refused.fetch_add(1, Ordering::SeqCst);
        return Some(format!("refused {status} {}", body["code"]));
    }
    body["refresh_token"].as_str().map(str::to_owned)
}

async fn sigkill_under_refreshing_clients(database: TestDatabase) {
    let keys = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = serve_on(database.url(), keys.path(), port).await;
    let http = client();

    // 32 sessions of 4 users.
    let mut tokens = Vec::new();
    for u in 0..CLIENTS / SESSIONS_PER_USER {
        let name = format!("crash{u}");
        let r = http
            .post(server.url("/auth/register"))
            .json(&json!({"username": name, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        for _ in 0..SESSIONS_PER_USER {
            let r = http
                .post(server.url("/auth/login"))
                .header(
                    "user-agent",
                    "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0",
                )
                .json(&json!({"username": name, "password": PASSWORD, "token_delivery": "body"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let body: Value = r.json().await.unwrap();
            tokens.push(body["refresh_token"].as_str().unwrap().to_owned());
        }
    }

    // Every client refreshes in a loop until the server dies under it.
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for token in tokens {
        let (http, seen, stop) = (http.clone(), seen.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut token = token;
            while !stop.load(Ordering::SeqCst) {
                match refresh(&http, port, &token, &seen).await {
                    Some(next) if next.starts_with("refused") => panic!("before the crash: {next}"),
                    Some(next) => token = next,
                    // The answer was lost: keep the token, as a client does.
                    None => break,
                }
            }
            token
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut held = Vec::new();
    for c in clients {
        held.push(c.await.unwrap());
    }
    assert!(
        seen.answered.load(Ordering::SeqCst) >= CLIENTS as u64,
        "the clients refreshed before the crash"
    );

    // Back after more than the grace window: every client retries with what
    // it holds, then goes on.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let server = serve_on(database.url(), keys.path(), port).await;
    for round in 0..2 {
        let answers = futures_util::future::join_all(
            held.iter()
                .map(|token| refresh(&http, server.port, token, &seen)),
        )
        .await;
        for (i, answer) in answers.into_iter().enumerate() {
            let next = answer.expect("the restarted server answers");
            assert!(
                !next.starts_with("refused"),
                "round {round}, client {i}: an honest client was refused after the crash: {next}"
            );
            held[i] = next;
        }
    }
    assert_eq!(seen.refused.load(Ordering::SeqCst), 0);

    // The trail: no theft recorded, and one row per answered request plus
    // one per request whose rotation committed while its answer died (each
    // of those was retried, audit outcome `retry`).
    let url = database.url().to_owned();
    let outcomes = tokio::task::spawn_blocking(move || {
        persistence::Database::connect(&url, 1)
            .unwrap()
            .refresh_audit_outcomes()
            .unwrap()
    })
    .await
    .unwrap();
    for theft in ["reused", "anomaly"] {
        assert_eq!(outcomes.get(theft), None, "no theft verdict: {outcomes:?}");
    }
    let retried = outcomes.get("retry").copied().unwrap_or(0);
    let rows: u64 = outcomes.values().sum();
    assert_eq!(
        rows,
        seen.answered.load(Ordering::SeqCst) + retried,
        "audit rows = answered requests + committed in-flight ones: {outcomes:?}"
    );
    assert!(retried <= CLIENTS as u64, "{outcomes:?}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_32_refreshing_clients_is_no_theft_on_sqlite() {
    sigkill_under_refreshing_clients(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_32_refreshing_clients_is_no_theft_on_postgres() {
    let Some(database) = TestDatabase::postgres() else {
        return;
    };
    sigkill_under_refreshing_clients(database).await;
}
