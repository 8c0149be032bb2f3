//! The operator surface over HTTP: health, readiness, metrics, request ids,
//! the OpenAPI document and the Swagger UI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use integration_tests::*;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use serde_json::Value;

on_both_backends!(
    health_and_readiness_answer,
    metrics_count_requests_by_route_pattern_and_what_the_store_decided,
    every_response_carries_a_request_id,
);

async fn health_and_readiness_answer(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ok");
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "up");
}

/// Every sample line of `metric` whose labels include all of `labels`.
fn samples(text: &str, metric: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, rest) = series.split_once('{').unwrap_or((series, ""));
            let ok = name == metric
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            ok.then(|| value.parse().ok()).flatten()
        })
        .collect()
}

fn at_least_one(text: &str, metric: &str, labels: &[(&str, &str)]) {
    let found = samples(text, metric, labels);
    assert!(
        found.iter().any(|v| *v >= 1.0),
        "no {metric}{labels:?} >= 1 in\n{text}"
    );
}

async fn metrics_count_requests_by_route_pattern_and_what_the_store_decided(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let first = app.signed_up("metered").await;
    let r = app.refresh_cookie(&first.refresh).await;
    assert_eq!(r.status(), StatusCode::OK);
    let second = tokens_from_cookie(r).await;
    // The first token again, from another agent: reuse.
    let r = app.refresh_cookie_as(&first.refresh, "curl/8").await;
    assert_problem(r, StatusCode::UNAUTHORIZED, "token_reused").await;
    let r = app
        .client
        .delete(app.url(&format!("/auth/sessions/{}", second.session_id)))
        .bearer_auth(&second.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.client
        .get(app.url("/no/such/route/42"))
        .send()
        .await
        .unwrap();

    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let refresh_200 = [
        ("method", "POST"),
        ("route", "/auth/refresh"),
        ("status", "200"),
    ];
    at_least_one(&text, "tokenwarden_http_requests_total", &refresh_200);
    at_least_one(
        &text,
        "tokenwarden_http_request_duration_seconds_count",
        &refresh_200,
    );
    at_least_one(
        &text,
        "tokenwarden_http_request_duration_seconds_bucket",
        &[("route", "/auth/refresh"), ("le", "+Inf")],
    );
    at_least_one(
        &text,
        "tokenwarden_http_requests_total",
        &[("route", "/auth/sessions/{id}"), ("status", "401")],
    );
    at_least_one(
        &text,
        "tokenwarden_http_requests_total",
        &[("route", "unmatched"), ("status", "404")],
    );
    assert!(
        !text.contains(&second.session_id) && !text.contains("/no/such/route"),
        "raw paths never become labels"
    );
    at_least_one(
        &text,
        "tokenwarden_refresh_total",
        &[("outcome", "success")],
    );
    at_least_one(&text, "tokenwarden_refresh_total", &[("outcome", "reused")]);
    at_least_one(
        &text,
        "tokenwarden_reuse_detections_total",
        &[("via", "refresh")],
    );
    at_least_one(
        &text,
        "tokenwarden_revocations_total",
        &[("reason", "reuse")],
    );
    at_least_one(&text, "tokenwarden_db_pool_max_connections", &[]);
    for gauge in [
        "tokenwarden_db_pool_connections",
        "tokenwarden_db_pool_utilisation_ratio",
        "tokenwarden_argon2_queue_depth",
        "tokenwarden_argon2_in_flight",
    ] {
        assert!(!samples(&text, gauge, &[]).is_empty(), "{gauge} missing");
    }
    assert!(text.contains("# HELP tokenwarden_refresh_total"));
}

async fn every_response_carries_a_request_id(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("X-Request-Id", "edge-7f3a.42")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r).as_deref(), Some("edge-7f3a.42"));
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header("X-Request-Id", "<script>")
        .body("{")
        .send()
        .await
        .unwrap();
    let fresh = id_of(&r).unwrap();
    assert_ne!(fresh, "<script>");
    assert_eq!(fresh.len(), 36, "a UUID: {fresh}");
    assert_problem(r, StatusCode::BAD_REQUEST, "malformed_request").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_live_on_their_own_listener_only() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
    .unwrap();
    let metrics = app.metrics_address.clone().expect("a metrics listener");
    let r = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("tokenwarden_"));
    let r = app
        .client
        .post(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET");
    assert_problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    for path in ["/healthz", "/auth/login", "/openapi.json"] {
        let r = app
            .client
            .get(format!("{metrics}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::NOT_FOUND,
            "{path} on the metrics port"
        );
    }
    assert_problem(
        app.client.get(app.url("/metrics")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["paths"]["/metrics"].is_null(),
        "the document describes this port"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_and_swagger_ui_are_served_from_the_binary() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.cookie_name = "tw_rt".into())
        .await
        .unwrap();
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/auth/login",
        "/auth/refresh",
        "/auth/sessions/{id}",
        "/.well-known/jwks.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["refresh_cookie"]["name"], "tw_rt",
        "the cookie scheme names the configured cookie"
    );
    assert!(
        doc["paths"]["/auth/login"]["post"]["responses"]["429"]["headers"]["Retry-After"]
            .is_object()
    );

    let r = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()[LOCATION], "docs/");
    let r = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    // An HTML page: a policy without inline scripts that forbids framing.
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(!page.contains("<script>"), "no inline script: {page}");
    assert!(
        !page.contains("https://"),
        "no CDN: every asset comes from the binary"
    );
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
    let css = app
        .client
        .get(app.url("/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
}

/// PostgreSQL refusing connections makes `/readyz` a 503 problem, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_with_a_problem_when_the_database_is_gone() {
    use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let url = app.database.url().to_owned();
    let name = url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let admin = std::env::var("TEST_DATABASE_URL").unwrap();
    let mut conn = PgConnection::establish(&admin).unwrap();
    sql_query(format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"))
        .execute(&mut conn)
        .unwrap();
    sql_query(format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    ))
    .execute(&mut conn)
    .unwrap();

    let started = std::time::Instant::now();
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let body = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    assert_eq!(body["checks"]["database"], "down");
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "alive all the same");
}
