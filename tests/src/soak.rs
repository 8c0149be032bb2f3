//! The soak run's traffic (`cargo run -p integration-tests --bin soak`):
//! clients that log in, refresh, replay an old token from another network
//! (reuse), log out and call the API, paced to a total request rate, with
//! a tally of what they sent and what they were told.
//!
//! Each client is its own user, so that the theft response one client's
//! replay sets off ends only that client's sessions. A client whose session
//! ended (logout, reuse, its lifetime) logs in again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};

pub const PASSWORD: &str = "soak test password";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0";
/// The replaying "thief": another network (believed through the trusted
/// loopback proxy) and another device.
const THIEF_IP: &str = "203.0.113.7";
const THIEF_UA: &str = "curl/8.5.0";

/// What was sent and what came back, per request kind and answer
/// (`refresh 200`, `reuse 401 token_reused`, `login transport error`…).
#[derive(Debug, Default)]
pub struct Tally {
    answers: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn count(&self, what: String) {
        if let Ok(mut answers) = self.answers.lock() {
            *answers.entry(what).or_default() += 1;
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.answers.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

/// The request kinds that reach `POST /auth/refresh`, each leaving one
/// audit row.
pub const REFRESH_KINDS: [&str; 2] = ["refresh", "reuse"];

/// Whether an answer is the server shedding load (`503
/// service_unavailable`, nothing spent): honest on a busy machine, counted
/// on its own.
pub fn is_shed(what: &str) -> bool {
    what.ends_with(" 503 service_unavailable")
}

/// Answers that mean the server misbehaved: another 5xx, no answer at all,
/// an honest refresh refused for anything but its session's end, a replay
/// that was not taken for reuse.
pub fn is_failure(what: &str) -> bool {
    if is_shed(what) {
        return false;
    }
    let expected = [
        "refresh 200",
        "refresh 401 token_expired",
        "refresh 401 session_revoked",
        "reuse 401 token_reused",
        "login 200",
        "logout 204",
        "me 200",
        "me 401 session_revoked",
        "me 401 token_expired",
    ];
    !expected.contains(&what)
}

/// Why a request got no 2xx.
enum Refused {
    /// `503`: the server shed it, nothing was spent.
    Shed,
    Other,
}

/// One client's state: its user and the tokens it holds.
struct Client {
    http: reqwest::Client,
    base: String,
    username: String,
    access: Option<String>,
    refresh: Option<String>,
    /// The token before the last rotation: what a thief would replay.
    previous: Option<String>,
    tally: Arc<Tally>,
}

impl Client {
    async fn post(
        &self,
        kind: &str,
        path: &str,
        body: Value,
        thief: bool,
    ) -> Result<Value, Refused> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .header("user-agent", if thief { THIEF_UA } else { UA });
        if thief {
            request = request.header("x-forwarded-for", THIEF_IP);
        }
        self.answer(kind, request).await
    }

    /// Sends, counts the answer under `kind`, returns the body of a 2xx.
    async fn answer(&self, kind: &str, request: reqwest::RequestBuilder) -> Result<Value, Refused> {
        let r = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timeout"
                } else if e.is_connect() {
                    "connect"
                } else {
                    "other"
                };
                eprintln!("soak: {kind}: transport error ({what}): {e:?}");
                self.tally.count(format!("{kind} transport error ({what})"));
                return Err(Refused::Other);
            }
        };
        let status = r.status();
        let body: Value = if status == StatusCode::NO_CONTENT {
            Value::Null
        } else {
            r.json().await.unwrap_or(Value::Null)
        };
        let code = body["code"]
            .as_str()
            .map(|c| format!(" {c}"))
            .unwrap_or_default();
        self.tally
            .count(format!("{kind} {}{code}", status.as_u16()));
        match status {
            s if s.is_success() => Ok(body),
            StatusCode::SERVICE_UNAVAILABLE => Err(Refused::Shed),
            _ => Err(Refused::Other),
        }
    }

    fn forget_session(&mut self) {
        self.access = None;
        self.refresh = None;
        self.previous = None;
    }

    async fn login(&mut self) {
        let body = json!({
            "username": self.username,
            "password": PASSWORD,
            "token_delivery": "body",
        });
        self.forget_session();
        if let Ok(b) = self.post("login", "/auth/login", body, false).await {
            self.access = b["access_token"].as_str().map(str::to_owned);
            self.refresh = b["refresh_token"].as_str().map(str::to_owned);
        }
    }

    async fn refresh(&mut self) {
        let Some(token) = self.refresh.clone() else {
            return self.login().await;
        };
        let body = json!({ "refresh_token": token });
        match self.post("refresh", "/auth/refresh", body, false).await {
            Ok(b) => {
                self.previous = Some(token);
                self.access = b["access_token"].as_str().map(str::to_owned);
                self.refresh = b["refresh_token"].as_str().map(str::to_owned);
            }
            // Shed: nothing was spent, the same token next time.
            Err(Refused::Shed) => {}
            // Its session ended (lifetime) or the answer was lost.
            Err(Refused::Other) => self.forget_session(),
        }
    }

    /// A thief replays the token before the last rotation: the theft
    /// response ends the session, the client logs in again next time.
    async fn reuse(&mut self) {
        let Some(old) = self.previous.take() else {
            return self.refresh().await;
        };
        let _ = self
            .post(
                "reuse",
                "/auth/refresh",
                json!({ "refresh_token": old }),
                true,
            )
            .await;
        self.forget_session();
    }

    async fn logout(&mut self) {
        let Some(token) = self.refresh.clone() else {
            return self.login().await;
        };
        let ended = self
            .post(
                "logout",
                "/auth/logout",
                json!({ "refresh_token": token }),
                false,
            )
            .await;
        if !matches!(ended, Err(Refused::Shed)) {
            self.forget_session();
        }
    }

    async fn me(&mut self) {
        let Some(access) = self.access.clone() else {
            return self.login().await;
        };
        let request = self
            .http
            .get(format!("{}/api/me", self.base))
            .bearer_auth(access);
        let _ = self.answer("me", request).await;
    }
}

/// The mix, out of 100 requests (a login follows each ended session).
fn act(roll: u32) -> Action {
    match roll {
        0..=84 => Action::Refresh,
        85..=92 => Action::Me,
        93..=95 => Action::Logout,
        96..=98 => Action::Reuse,
        _ => Action::ExtraLogin,
    }
}

enum Action {
    Refresh,
    Me,
    Logout,
    Reuse,
    /// Another session of the same user (another tab), left to expire.
    ExtraLogin,
}

/// Registers `username` (201), trying again a few times while the server
/// sheds load (503).
pub async fn register(http: &reqwest::Client, base: &str, username: &str) -> bool {
    for _ in 0..5 {
        let status = http
            .post(format!("{base}/auth/register"))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .map(|r| r.status());
        match status {
            Ok(StatusCode::CREATED) => return true,
            Ok(StatusCode::SERVICE_UNAVAILABLE) => tokio::time::sleep(Duration::from_secs(1)).await,
            _ => return false,
        }
    }
    false
}

/// Runs one client until `stop`, one request every `period`.
pub async fn client_loop(
    http: reqwest::Client,
    base: String,
    username: String,
    period: Duration,
    seed: u64,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut client = Client {
        http,
        base,
        username,
        access: None,
        refresh: None,
        previous: None,
        tally,
    };
    // Clients start spread over one period, not all at once.
    tokio::time::sleep(period.mul_f64(rng.random_range(0.0..1.0))).await;
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        ticks.tick().await;
        if client.refresh.is_none() {
            client.login().await;
            continue;
        }
        match act(rng.random_range(0..100)) {
            Action::Refresh => client.refresh().await,
            Action::Me => client.me().await,
            Action::Logout => client.logout().await,
            Action::Reuse => client.reuse().await,
            Action::ExtraLogin => {
                let (access, refresh, previous) = (
                    client.access.take(),
                    client.refresh.take(),
                    client.previous.take(),
                );
                client.login().await;
                // Keep using the first session; the extra one expires.
                client.access = access;
                client.refresh = refresh;
                client.previous = previous;
            }
        }
    }
}
