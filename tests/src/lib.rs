//! Test harness: the real server (`Application::build` on port 0) with a
//! fresh database per test, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use application::ports::Clock;
use domain::Timestamp;

use password::HashCost;
use persistence::testing::TestDatabase;
use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE, USER_AGENT};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use server::startup::BuildOptions;
use server::{Application, Config};

pub mod audit_support;
pub mod dpop;
pub mod soak;
pub mod trace;

pub const PASSWORD: &str = "correct horse battery";
pub const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for an `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
            }
        )+
    };
}

/// The clock of a test server: the system's, plus however far the test
/// moved it forward. Time still passes as usual (deadlines, timeouts and
/// tokio's timers are real); a test that waits for something to expire
/// moves the clock past it instead of sleeping.
#[derive(Debug, Default)]
pub struct TestClock {
    ahead_ms: AtomicI64,
}

impl TestClock {
    /// Moves the clock `by` forward, at once.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ahead_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        let system = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Timestamp::from_millis(system.saturating_add(self.ahead_ms.load(Ordering::SeqCst)))
    }
}

/// A running server and what it needs to stay alive.
pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:<port>` of the separate metrics listener, when
    /// `metrics_bind` is set.
    pub metrics_address: Option<String>,
    pub client: reqwest::Client,
    pub config: Config,
    /// The server's clock: [`TestApp::advance`] moves it.
    pub clock: Arc<TestClock>,
    pub database: TestDatabase,
    _keys: tempfile::TempDir,
}

/// What a login or refresh hands out.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
    pub body: Value,
}

impl TestApp {
    /// `None` (after printing why) when the backend is not available here.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestApp> {
        let database = match backend {
            Backend::Sqlite => TestDatabase::sqlite(),
            Backend::Postgres => TestDatabase::postgres()?,
        };
        Some(Self::spawn_on(database, adjust).await)
    }

    /// Starts a server on an existing database (several servers may share one).
    pub async fn spawn_on(database: TestDatabase, adjust: impl FnOnce(&mut Config)) -> TestApp {
        init_test_log();
        let keys = tempfile::tempdir().unwrap();
        let mut config = Config::with_defaults(database.url(), keys.path());
        config.bind = "127.0.0.1:0".parse().unwrap();
        config.cookie_secure = true;
        // Every test client logs in from 127.0.0.1, far more often than a
        // real client would (and with Redis, tests share the counter): the
        // per-IP budget would get in the way. Rate-limit tests set their own.
        config.login_rate_ip.count = 100_000;
        config.register_rate_ip.count = 100_000;
        config.refresh_fail_rate_ip.count = 100_000;
        adjust(&mut config);
        let clock = Arc::new(TestClock::default());
        let options = BuildOptions {
            // Signals stay with the test process (Ctrl-C ends it).
            signals: false,
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            // The suite registers and logs in thousands of times: argon2 at
            // its minimum, not OWASP's 19 MiB and two passes each time
            // (what a password costs is the binary tests' business).
            hash_cost: HashCost::Minimal,
            ..BuildOptions::default()
        };
        let app = Application::build_with(config.clone(), options)
            .await
            .expect("server starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let metrics_address = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        TestApp {
            address,
            metrics_address,
            client,
            config,
            clock,
            database,
            _keys: keys,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Moves the server's clock `by` forward: what a test that waits for a
    /// lifetime or a window to end does instead of sleeping.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .header(USER_AGENT, UA)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, username: &str) -> Response {
        self.post_json(
            "/auth/register",
            &json!({"username": username, "password": PASSWORD}),
        )
        .await
    }

    /// Registers and logs in `username` (cookie delivery).
    pub async fn signed_up(&self, username: &str) -> Tokens {
        assert_eq!(self.register(username).await.status(), StatusCode::CREATED);
        self.login(username).await
    }

    pub async fn login(&self, username: &str) -> Tokens {
        self.login_password(username, PASSWORD).await
    }

    /// Logs `username` in with `password` (cookie delivery), expecting 200.
    pub async fn login_password(&self, username: &str, password: &str) -> Tokens {
        let r = self
            .post_json(
                "/auth/login",
                &json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "login of {username}");
        tokens_from_cookie(r).await
    }

    /// `POST /auth/refresh` with the token in the cookie, as a browser would.
    pub async fn refresh_cookie(&self, refresh: &str) -> Response {
        self.refresh_cookie_as(refresh, UA).await
    }

    pub async fn refresh_cookie_as(&self, refresh: &str, user_agent: &str) -> Response {
        self.client
            .post(self.url("/auth/refresh"))
            .header(USER_AGENT, user_agent)
            .header(COOKIE, format!("refresh_token={refresh}"))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_bearer(&self, path: &str, access: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    pub async fn me_status(&self, access: &str) -> StatusCode {
        self.get_bearer("/api/me", access).await.status()
    }
}

/// `TEST_LOG=1` (or a `RUST_LOG`-style filter such as `TEST_LOG=debug,web=trace`)
/// shows the servers' logs, captured per test by the test harness; without
/// it nothing is logged (and nothing pays for formatting).
fn init_test_log() {
    let Ok(filter) = std::env::var("TEST_LOG") else {
        return;
    };
    let filter = match filter.as_str() {
        "" | "1" | "true" => "debug",
        other => other,
    };
    server::telemetry::init_with_writer(
        filter,
        server::config::LogFormat::Pretty,
        tracing_subscriber::fmt::TestWriter::new(),
    );
}

/// The value of the refresh cookie a response sets, if any.
pub fn set_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("refresh_token="))
        .map(str::to_owned)
}

/// The refresh cookie's value, `None` when not set.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    let c = set_cookie(headers)?;
    let value = c
        .strip_prefix("refresh_token=")?
        .split(';')
        .next()?
        .to_owned();
    Some(value)
}

/// Whether the response clears the refresh cookie.
pub fn clears_cookie(headers: &HeaderMap) -> bool {
    set_cookie(headers).is_some_and(|c| c.starts_with("refresh_token=;") && c.contains("Max-Age=0"))
}

pub async fn tokens_from_cookie(r: Response) -> Tokens {
    let refresh = cookie_value(r.headers()).expect("a refresh cookie");
    let body: Value = r.json().await.unwrap();
    Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        session_id: body["session_id"].as_str().unwrap().to_owned(),
        refresh,
        body,
    }
}

pub async fn problem(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(
        content_type, "application/problem+json",
        "errors are problem documents"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"].as_u64(), Some(u64::from(status.as_u16())));
    assert!(body["type"].is_string() && body["title"].is_string());
    (status, body)
}

/// Asserts a problem answer with this status and code.
pub async fn assert_problem(r: Response, status: StatusCode, code: &str) -> Value {
    let (got, body) = problem(r).await;
    assert_eq!(
        (got, body["code"].as_str().unwrap_or("")),
        (status, code),
        "{body}"
    );
    body
}
