//! The real `tokenwarden` binary: CLI commands, start-up failures, and two
//! server processes sharing one PostgreSQL database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::Write as _;
use std::process::Stdio;

use futures_util::future::join_all;
use persistence::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{serve, tokenwarden, Server};

fn create_user(
    db: &str,
    keys: &std::path::Path,
    name: &str,
    password: &str,
    roles: &[&str],
) -> std::process::Output {
    let mut cmd = tokenwarden(db, keys);
    cmd.args(["user", "create", name, "--password-stdin"]);
    for r in roles {
        cmd.args(["--role", r]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn user_create_reads_the_password_from_stdin_and_the_user_can_log_in() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let migrate = tokenwarden(db.url(), keys.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );

    let out = create_user(
        db.url(),
        keys.path(),
        "root_admin",
        "a long admin password",
        &["admin", "user"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains("a long admin password"));
    assert!(printed.contains("admin,user"), "{printed}");

    let dup = create_user(db.url(), keys.path(), "ROOT_ADMIN", "another password", &[]);
    assert!(!dup.status.success());

    let no_stdin = tokenwarden(db.url(), keys.path())
        .args(["user", "create", "x_user"])
        .output()
        .unwrap();
    assert!(!no_stdin.status.success());

    let server = serve(db.url(), keys.path(), &[]).await;
    let r = reqwest::Client::new()
        .post(server.url("/auth/login"))
        .json(&json!({"username": "root_admin", "password": "a long admin password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["roles"], json!(["admin", "user"]));
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let keys = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("TOKENWARDEN_ACCESS_TOKEN_TTL", "fortnight"),
        ("TOKENWARDEN_REUSE_RESPONSE", "panic"),
        ("TOKENWARDEN_ANOMALY_RESPONSE", "ignore"),
        ("TOKENWARDEN_BIND", "nowhere"),
        ("TOKENWARDEN_COOKIE_SECURE", "maybe"),
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

#[test]
fn an_unreachable_database_stops_start_up() {
    let keys = tempfile::tempdir().unwrap();
    let out = tokenwarden("postgres://nobody@127.0.0.1:1/none", keys.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

/// Two processes on one PostgreSQL database: of 50 concurrent refreshes of
/// one token, spread over both, exactly one rotates.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_server_processes_on_one_database_yield_one_successor() {
    let Some(db) = TestDatabase::postgres() else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    // Without grace and retry windows every loser is a reuse: the race is
    // then visible as exactly one 200 (with them, the losers would get the
    // same successor, which `crash.rs` and the black-box races cover).
    let windows = [
        ("TOKENWARDEN_REUSE_GRACE", "0s"),
        ("TOKENWARDEN_RETRY_WINDOW", "0s"),
    ];
    let a = serve(db.url(), keys.path(), &windows).await;
    let b = serve(db.url(), keys.path(), &windows).await;
    let client = reqwest::Client::new();
    let base = |s: &Server| s.url("");
    let r = client
        .post(format!("{}/auth/register", base(&a)))
        .json(&json!({"username": "twin", "password": "password123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client
        .post(format!("{}/auth/login", base(&b)))
        .json(&json!({"username": "twin", "password": "password123", "token_delivery": "body"}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let token = body["refresh_token"].as_str().unwrap().to_owned();

    let requests = (0..50).map(|i| {
        let url = format!(
            "{}/auth/refresh",
            if i % 2 == 0 { base(&a) } else { base(&b) }
        );
        let client = client.clone();
        let token = token.clone();
        async move {
            let r = client
                .post(url)
                .json(&json!({"refresh_token": token}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            (status, body)
        }
    });
    let results = join_all(requests).await;
    let winners: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one successor across both processes"
    );
    let successors: HashSet<&str> = winners
        .iter()
        .filter_map(|b| b["refresh_token"].as_str())
        .collect();
    assert_eq!(successors.len(), 1);
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
    }
}
