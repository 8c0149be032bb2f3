//! Webhooks across a crash: an event recorded by a server that is killed
//! (SIGKILL) before delivering it is delivered by the next server on the
//! same database. And start-up refuses webhook settings it cannot use.

use std::process::Stdio;
use std::time::Duration;

use persistence::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::json;
use webhook::testing::{Answer, Receiver};

use crate::support::{serve, tokenwarden};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_recorded_before_a_sigkill_is_delivered_after_restart_sqlite() {
    delivered_across_a_kill(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_recorded_before_a_sigkill_is_delivered_after_restart_postgres() {
    if let Some(db) = TestDatabase::postgres() {
        delivered_across_a_kill(db).await;
    }
}

async fn delivered_across_a_kill(db: TestDatabase) {
    let keys = tempfile::tempdir().unwrap();
    // Refuses everything while the first server lives.
    let receiver = Receiver::start(SECRET, vec![Answer::Status(500); 1_000]);
    let env = [
        ("TOKENWARDEN_WEBHOOK_URL", receiver.url.as_str()),
        ("TOKENWARDEN_WEBHOOK_SECRET", SECRET),
    ];
    let mut first = serve(db.url(), keys.path(), &env).await;
    let client = reqwest::Client::new();
    let r = client
        .post(first.url("/auth/register"))
        .json(&json!({"username": "alice", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client
        .post(first.url("/auth/login"))
        .json(&json!({"username": "alice", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let access = r.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = client
        .post(first.url("/auth/logout-all"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // The event is recorded; kill the server before any delivery succeeds.
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    assert!(receiver.received().iter().all(|r| r.status == 500));
    drop(receiver);

    let receiver = Receiver::start(SECRET, Vec::new());
    let env = [
        ("TOKENWARDEN_WEBHOOK_URL", receiver.url.as_str()),
        ("TOKENWARDEN_WEBHOOK_SECRET", SECRET),
    ];
    let _second = serve(db.url(), keys.path(), &env).await;
    // The first server's retry is at most seconds away (a minute, should
    // the kill have landed inside an attempt: the claim's lease).
    let received = receiver
        .wait_for_delivered(1, Duration::from_secs(90))
        .await;
    let delivered: Vec<_> = received.iter().filter(|r| r.status == 200).collect();
    assert_eq!(delivered.len(), 1, "{received:#?}");
    assert!(delivered[0].verified);
    assert_eq!(delivered[0].body["type"], "logout_all");
}

#[test]
fn start_up_refuses_webhook_settings_it_cannot_use_naming_the_setting() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec![
                ("TOKENWARDEN_WEBHOOK_URL", "ftp://hooks.example.com/"),
                ("TOKENWARDEN_WEBHOOK_SECRET", SECRET),
            ],
            "TOKENWARDEN_WEBHOOK_URL",
        ),
        (
            vec![
                ("TOKENWARDEN_WEBHOOK_URL", "http://127.0.0.1:9/"),
                ("TOKENWARDEN_WEBHOOK_SECRET", "too short"),
            ],
            "TOKENWARDEN_WEBHOOK_SECRET",
        ),
        (
            vec![("TOKENWARDEN_WEBHOOK_URL", "http://127.0.0.1:9/")],
            "TOKENWARDEN_WEBHOOK_SECRET",
        ),
    ];
    for (env, setting) in cases {
        let mut cmd = tokenwarden(db.url(), keys.path());
        cmd.arg("serve")
            .env("TOKENWARDEN_BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{env:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(setting), "{env:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            !stderr.contains("too short"),
            "the secret is never echoed: {stderr}"
        );
    }
}
