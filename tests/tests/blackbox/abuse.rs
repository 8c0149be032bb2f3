//! Hostile clients (API.md "v2 — Abuse limits"), black-box against the real
//! server: exact login limits, registration and refresh-flood limits (in
//! process and through Redis), planted cookies, forwarded headers, stored text, framework
//! errors (the HTTP parser's own answers too) and security headers, slow clients, file modes.

use std::time::{Duration, Instant};

use integration_tests::audit_support::LOOPBACK_PROXY;
use integration_tests::*;
use reqwest::header::{COOKIE, ORIGIN, USER_AGENT};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

on_both_backends!(
    login_limits_are_exact_under_concurrency,
    registrations_are_limited_per_address_and_ipv6_per_64,
    refresh_floods_are_limited_per_address,
    duplicate_refresh_cookies_spend_nothing_and_clear_nothing,
    forwarded_headers_count_only_from_trusted_proxies,
    stored_text_is_cleaned_for_display,
    a_slow_body_within_the_request_timeout_is_served_normally,
    a_refresh_body_that_never_completes_is_a_408_with_its_audit_row,
);

/// The security headers every answer carries.
fn assert_security_headers(r: &reqwest::Response) {
    let h = r.headers();
    assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
    assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
}

async fn duplicate_refresh_cookies_spend_nothing_and_clear_nothing(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let victim = app.signed_up("victim").await;
    let planted = app.signed_up("planter").await;
    for cookies in [
        format!(
            "refresh_token={}; refresh_token={}",
            planted.refresh, victim.refresh
        ),
        format!("refresh_token={}; refresh_token=garbage", victim.refresh),
    ] {
        let r = app
            .client
            .post(app.url("/auth/refresh"))
            .header(USER_AGENT, UA)
            .header(COOKIE, cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(set_cookie(r.headers()), None, "the cookie is not touched");
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    // Nothing was spent: both tokens still rotate, neither is reuse.
    assert_eq!(
        app.refresh_cookie(&victim.refresh).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.refresh_cookie(&planted.refresh).await.status(),
        StatusCode::OK
    );
    // A logout carrying two cookies (one planted) ends neither session and
    // leaves the cookie alone: refused `invalid_token`.
    let victim = app.login("victim").await;
    let planted = app.login("planter").await;
    for cookies in [
        format!(
            "refresh_token={}; refresh_token={}",
            planted.refresh, victim.refresh
        ),
        format!("refresh_token={}; refresh_token=garbage", victim.refresh),
    ] {
        let r = app
            .client
            .post(app.url("/auth/logout"))
            .header(USER_AGENT, UA)
            .header(COOKIE, cookies)
            .send()
            .await
            .unwrap();
        assert_eq!(set_cookie(r.headers()), None, "the cookie is not cleared");
        assert_problem(r, StatusCode::UNAUTHORIZED, "invalid_token").await;
    }
    assert_eq!(app.me_status(&victim.access).await, StatusCode::OK);
    assert_eq!(app.me_status(&planted.access).await, StatusCode::OK);
    let victim = tokens_from_cookie(app.refresh_cookie(&victim.refresh).await).await;
    let planted = tokens_from_cookie(app.refresh_cookie(&planted.refresh).await).await;
    // A login carrying two live cookies ends neither old session (the
    // login itself goes ahead).
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header(
            COOKIE,
            format!(
                "refresh_token={}; refresh_token={}",
                planted.refresh, victim.refresh
            ),
        )
        .json(&json!({"username": "victim", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.me_status(&victim.access).await, StatusCode::OK);
    assert_eq!(app.me_status(&planted.access).await, StatusCode::OK);
}

async fn forwarded_headers_count_only_from_trusted_proxies(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let t = app.signed_up("alice").await;
    // From an untrusted peer, X-Forwarded-Host cannot make a foreign origin
    // look like our own.
    let r = app
        .client
        .post(app.url("/auth/refresh"))
        .header(COOKIE, format!("refresh_token={}", t.refresh))
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "host=evil.example;proto=https")
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN, "forbidden_origin").await;
    let me: Value = app
        .get_bearer("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me[0]["last_ip"], "127.0.0.1", "X-Forwarded-For ignored");

    // Behind a trusted proxy: garbage entries are skipped, ports stripped,
    // and the proxy's own host header counts for the origin check.
    let proxied = TestApp::spawn_on(app.database, |c| {
        c.trusted_proxies = vec![LOOPBACK_PROXY.parse().unwrap()];
    })
    .await;
    let t = proxied.login("alice").await;
    for (xff, expected) in [
        ("198.51.100.7:4711, not-an-ip", "198.51.100.7"),
        ("unknown, [2001:db8::5]:443", "2001:db8::5"),
    ] {
        let tokens = proxied.login("alice").await;
        let r = proxied
            .client
            .post(proxied.url("/auth/refresh"))
            .header(COOKIE, format!("refresh_token={}", tokens.refresh))
            .header(USER_AGENT, UA)
            .header("x-forwarded-for", xff)
            .header("x-forwarded-host", "auth.example")
            .header("x-forwarded-proto", "https")
            .header(ORIGIN, "https://auth.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{xff}");
        let sessions: Vec<Value> = proxied
            .get_bearer("/auth/sessions", &t.access)
            .await
            .json()
            .await
            .unwrap();
        let session = sessions
            .iter()
            .find(|s| s["id"] == tokens.session_id.as_str())
            .unwrap();
        assert_eq!(session["last_ip"], expected, "{xff}");
    }
}

async fn stored_text_is_cleaned_for_display(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    app.register("alice").await;
    for device in [
        "phone\u{202E}gpj",
        "a\u{2066}b",
        "line\u{2028}break",
        "tab\there",
    ] {
        let r = app
            .post_json(
                "/auth/login",
                &json!({"username": "alice", "password": PASSWORD, "device_name": device}),
            )
            .await;
        assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;
    }
    let r = app
        .client
        .post(app.url("/auth/login"))
        .header(USER_AGENT, "Admin\u{202E}txt.exe\u{2069} curl/8.5")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t = tokens_from_cookie(r).await;
    let sessions: Value = app
        .get_bearer("/auth/sessions", &t.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["last_user_agent"], "Admintxt.exe curl/8.5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_error_is_a_problem_and_every_answer_carries_the_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_security_headers(&r);
    assert_eq!(r.status(), StatusCode::OK);
    for (method, path, allow) in [
        (reqwest::Method::GET, "/auth/login", "POST"),
        (reqwest::Method::PUT, "/auth/refresh", "POST"),
        (reqwest::Method::POST, "/healthz", "GET"),
        (reqwest::Method::GET, "/auth/sessions/some-id", "DELETE"),
    ] {
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_security_headers(&r);
        assert_eq!(
            r.headers().get("allow").map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}: {}",
            r.status()
        );
        assert_problem(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    }
    let r = app.client.get(app.url("/no/such")).send().await.unwrap();
    assert_security_headers(&r);
    assert_problem(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .client
        .post(app.url("/auth/login"))
        .body(vec![b'x'; 70_000])
        .send()
        .await
        .unwrap();
    assert_security_headers(&r);
    assert_problem(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

/// Sends `head` on a fresh connection and returns it.
async fn connect_and_send(port: u16, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

fn port_of(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().unwrap().parse().unwrap()
}

const SLOW_BODY: &str = "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_that_does_not_arrive_in_time_is_a_408_problem_and_the_connection_closes() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.request_timeout = Duration::from_millis(800);
    })
    .await
    .unwrap();
    let started = Instant::now();
    let (head, body) = answer_to(port_of(&app), SLOW_BODY).await;
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert_eq!(body["code"], "request_timeout", "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // A head that never ends is cut too (Actix's HTTP parser answers that
    // one itself; see `the_http_parsers_own_answers_are_problems`).
    let (head, body) = answer_to(port_of(&app), "GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    assert!(head.starts_with("http/1.1 408"), "{head}");
    assert_eq!(body["code"], "request_timeout", "{body}");
}

/// Sends `request` on a fresh connection and reads until the server closes
/// the connection.
async fn exchange(port: u16, request: &str) -> String {
    let mut s = connect_and_send(port, request).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8(answer).unwrap()
}

/// [`exchange`]: the head of the answer, lower-cased, and its body as JSON.
async fn answer_to(port: u16, request: &str) -> (String, Value) {
    let answer = exchange(port, request).await;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head: {answer:?}"));
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    (head.to_ascii_lowercase(), body)
}

/// Sends a `POST` of `body` to `path` with `Connection: close`, the head at
/// once and the body in five pieces spread over `over`, and returns the
/// answer as [`answer_to`] does.
async fn post_slowly(port: u16, path: &str, body: &str, over: Duration) -> (String, Value) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut s = connect_and_send(port, &head).await;
    let pieces = 5;
    let step = body.len().div_ceil(pieces);
    for piece in body.as_bytes().chunks(step) {
        tokio::time::sleep(over / pieces as u32).await;
        s.write_all(piece).await.unwrap();
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes the connection")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head: {answer:?}"));
    let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    (head.to_ascii_lowercase(), body)
}

/// The dependency deadline counts from the request's arrival, when its
/// body is complete: a client that takes three times the dependency
/// timeout to upload, but stays within the request timeout, is served as
/// if it had sent at once (before, its time to upload used the deadline
/// up: 503).
async fn a_slow_body_within_the_request_timeout_is_served_normally(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.dependency_timeout = Duration::from_millis(500);
        c.request_timeout = Duration::from_secs(5);
    })
    .await
    else {
        return;
    };
    let port = port_of(&app);
    let upload = Duration::from_millis(1_500);
    app.signed_up("slowpoke").await;

    let login =
        json!({"username": "slowpoke", "password": PASSWORD, "token_delivery": "body"}).to_string();
    let (head, body) = post_slowly(port, "/auth/login", &login, upload).await;
    assert!(head.starts_with("http/1.1 200"), "{head}\n{body}");
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

    let refresh = json!({ "refresh_token": refresh_token }).to_string();
    let (head, body) = post_slowly(port, "/auth/refresh", &refresh, upload).await;
    assert!(head.starts_with("http/1.1 200"), "{head}\n{body}");
    assert!(body["refresh_token"].is_string(), "{body}");
    assert_eq!(app.audit_outcomes().await.get("success"), Some(&1));
}

/// A refresh whose body never completes is answered `408 request_timeout`
/// when the request timeout ends (not 503: the dependency deadline starts
/// when the reading ends), and leaves its one audit row, outcome
/// `request_timeout` (before, the row was written under an expired
/// deadline: 503 and no row).
async fn a_refresh_body_that_never_completes_is_a_408_with_its_audit_row(backend: Backend) {
    let request_timeout = Duration::from_millis(1_000);
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.dependency_timeout = Duration::from_millis(300);
        c.request_timeout = request_timeout;
    })
    .await
    else {
        return;
    };
    let started = Instant::now();
    let (head, body) = answer_to(
        port_of(&app),
        "POST /auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{\"refresh_token\": \"",
    )
    .await;
    assert!(head.starts_with("http/1.1 408"), "{head}\n{body}");
    assert!(
        head.contains("content-type: application/problem+json"),
        "{head}"
    );
    assert_eq!(body["code"], "request_timeout", "{body}");
    assert!(
        started.elapsed() >= request_timeout,
        "{:?}",
        started.elapsed()
    );

    let outcomes = app.audit_outcomes().await;
    assert_eq!(
        outcomes,
        std::collections::BTreeMap::from([("request_timeout".to_owned(), 1)]),
        "exactly one row, naming the timeout"
    );
}

/// What Actix's HTTP/1 parser answers before any application code runs
/// (bytes that are not HTTP, a header section over its limits, a head that
/// does not arrive in time) is a problem+json answer with the security
/// headers, and the connection closes after it; an answer to a request
/// that came before it on the same connection is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_http_parsers_own_answers_are_problems() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.request_timeout = Duration::from_millis(800);
    })
    .await
    .unwrap();
    let port = port_of(&app);
    let many_headers: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (request, status, code) in [
        ("GARBAGE\r\n\r\n".to_owned(), "400", "malformed_request"),
        (
            "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_owned(),
            "400",
            "malformed_request",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n"),
            "431",
            "headers_too_large",
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Never: ends".to_owned(),
            "408",
            "request_timeout",
        ),
    ] {
        let (head, body) = answer_to(port, &request).await;
        assert!(
            head.starts_with(&format!("http/1.1 {status} ")),
            "{request:?}: {head}"
        );
        for line in [
            "content-type: application/problem+json",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "connection: close",
        ] {
            assert!(head.contains(line), "{request:?}: {line} missing in {head}");
        }
        assert_eq!(body["code"], code, "{request:?}: {body}");
        assert_eq!(body["status"].to_string(), status, "{body}");
    }

    // Pipelined after a good request: that one's answer, then the problem.
    let answer = exchange(
        port,
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n",
    )
    .await;
    let (first, second) = answer.split_once("{\"status\":\"ok\"}").unwrap();
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(second.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
    assert!(
        second.ends_with("\"code\":\"malformed_request\"}"),
        "{answer}"
    );

    // The server still serves.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

// The 2,000 slow bodies of the issue: `server/tests/binary/slow_clients.rs`
// (against the binary, whose file descriptors are its own).

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_database_files_are_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    app.signed_up("alice").await;
    let path = app
        .database
        .url()
        .trim_start_matches("sqlite://")
        .to_owned();
    for file in [path.clone(), format!("{path}-wal"), format!("{path}-shm")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}: {mode:o}");
    }
}

async fn login_as(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/auth/login",
        &json!({"username": username, "password": password}),
    )
    .await
}

fn per_minute(count: u32) -> server::config::Rate {
    server::config::Rate {
        count,
        per: Duration::from_secs(60),
    }
}

/// The race: 40 simultaneous wrong guesses for one username with a
/// budget of 5. Exactly 5 are checked (401), the rest refused (429), and
/// the right password is refused afterwards too.
async fn simultaneous_guesses_are_checked_at_most_the_budget(app: &TestApp) {
    assert_eq!(app.register("target").await.status(), StatusCode::CREATED);
    let guesses = (0..40).map(|i| async move {
        login_as(app, "target", &format!("wrong guess {i}"))
            .await
            .status()
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (5, 35), "{statuses:?}");
    let r = login_as(app, "target", PASSWORD).await;
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn login_limits_are_exact_under_concurrency(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.login_rate_user = per_minute(5)).await
    else {
        return;
    };
    simultaneous_guesses_are_checked_at_most_the_budget(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_login_limits_are_exact_across_instances() {
    let Some(redis) = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert_ne!(
            std::env::var("TOKENWARDEN_TEST_REQUIRE_SERVICES").as_deref(),
            Ok("1"),
            "TEST_REDIS_URL is required"
        );
        return;
    };
    let prefix = format!(
        "tokenwarden-test-{}-{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        c.redis_url = Some(redis.clone().into());
        c.redis_key_prefix = prefix.clone();
        c.login_rate_user = per_minute(5);
        c.refresh_fail_rate_ip = per_minute(3);
    })
    .await
    .unwrap();
    simultaneous_guesses_are_checked_at_most_the_budget(&app).await;
    refreshes_are_refused_after_the_failure_budget(&app, 3).await;
}

async fn registrations_are_limited_per_address_and_ipv6_per_64(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| {
        c.register_rate_ip = server::config::Rate {
            count: 2,
            per: Duration::from_secs(3_600),
        };
        c.trusted_proxies = vec![LOOPBACK_PROXY.parse().unwrap()];
    })
    .await
    else {
        return;
    };
    let register_from = |name: &'static str, ip: &'static str| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/auth/register"))
                .header("x-forwarded-for", ip)
                .json(&json!({"username": name, "password": PASSWORD}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        register_from("one", "2001:db8:1:2::1").await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        register_from("two", "2001:db8:1:2:ffff::9").await.status(),
        StatusCode::CREATED
    );
    let r = register_from("three", "2001:db8:1:2::77").await;
    let retry_after: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3_500..=3_600).contains(&retry_after), "{retry_after}");
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert_eq!(
        register_from("four", "2001:db8:1:3::1").await.status(),
        StatusCode::CREATED,
        "another /64"
    );
}

/// `budget` failed refreshes from one address, then every refresh from it
/// is refused (even a valid one) and audited once per minute, in a row
/// whose `count` says how many were refused.
async fn refreshes_are_refused_after_the_failure_budget(app: &TestApp, budget: u32) {
    let t = app.signed_up("flooded").await;
    let before = app.audit_outcomes().await;
    let requests_before = app.audit_requests().await;
    for _ in 0..budget {
        let r = app.refresh_cookie("twr_garbage").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    for _ in 0..20 {
        let r = app.refresh_cookie("twr_garbage").await;
        assert!(r.headers().contains_key("retry-after"));
        assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    }
    let r = app.refresh_cookie(&t.refresh).await;
    assert_problem(r, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    let after = app.audit_outcomes().await;
    let rows =
        |m: &std::collections::BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    assert!(
        rows(&after, "rate_limited") - rows(&before, "rate_limited") <= 2,
        "one row per address and minute (two if the minute turned): {after:?}"
    );
    // The rows count every refused request (the server adds the counts
    // kept in process every second).
    let mut counted = 0;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let requests = app.audit_requests().await;
        counted = rows(&requests, "rate_limited") - rows(&requests_before, "rate_limited");
        if counted >= 21 {
            break;
        }
    }
    assert_eq!(counted, 21, "20 garbage and 1 valid refresh were refused");
    // The valid token was not spent by the refusal.
    assert_eq!(
        app.refresh_cookie(&t.refresh).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn refresh_floods_are_limited_per_address(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |c| c.refresh_fail_rate_ip = per_minute(4)).await
    else {
        return;
    };
    refreshes_are_refused_after_the_failure_budget(&app, 4).await;
}
