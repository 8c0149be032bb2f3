//! Concurrent refreshes of one token produce exactly one successor, and
//! SQLite never answers "database is locked".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use integration_tests::*;
use reqwest::StatusCode;
use serde_json::Value;

const PARALLEL: usize = 50;

on_both_backends!(
    fifty_parallel_refreshes_in_one_tab_share_one_successor,
    fifty_parallel_refreshes_without_grace_yield_one_successor,
);

async fn fire(app: &TestApp, refresh: &str) -> Vec<(StatusCode, Option<String>, Value)> {
    let requests = (0..PARALLEL).map(|_| async {
        let r = app.refresh_cookie(refresh).await;
        let status = r.status();
        let cookie = cookie_value(r.headers()).filter(|c| !c.is_empty());
        let body: Value = r.json().await.unwrap_or(Value::Null);
        (status, cookie, body)
    });
    join_all(requests).await
}

async fn fifty_parallel_refreshes_in_one_tab_share_one_successor(backend: Backend) {
    let Some(app) =
        TestApp::spawn_with(backend, |c| c.lifetimes.grace = Duration::from_secs(60)).await
    else {
        return;
    };
    let t = app.signed_up("racer").await;
    let results = fire(&app, &t.refresh).await;
    for (status, _, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let successors: HashSet<&String> = results.iter().filter_map(|(_, c, _)| c.as_ref()).collect();
    assert_eq!(successors.len(), 1, "exactly one successor exists");
    let successor = successors.into_iter().next().unwrap().clone();
    // The successor is live and the family intact.
    assert_eq!(
        app.refresh_cookie(&successor).await.status(),
        StatusCode::OK
    );
}

async fn fifty_parallel_refreshes_without_grace_yield_one_successor(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.lifetimes.grace = Duration::ZERO;
        c.retry_window = Duration::ZERO;
        c.retry_window = Duration::ZERO;
    })
    .await
    else {
        return;
    };
    let t = app.signed_up("racer").await;
    let results = fire(&app, &t.refresh).await;
    let ok: Vec<_> = results
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::OK)
        .collect();
    assert_eq!(ok.len(), 1, "exactly one request rotates");
    for (status, _, body) in results.iter().filter(|(s, _, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
        let code = body["code"].as_str().unwrap();
        // The first loser proves theft and revokes the family; later ones
        // find it revoked already.
        assert!(
            code == "token_reused" || code == "session_revoked",
            "{body}"
        );
    }
    assert!(results.iter().any(|(_, _, b)| b["code"] == "token_reused"));
}
