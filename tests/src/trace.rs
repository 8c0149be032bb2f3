//! A labelled trace of honest clients and thieves, driven against a real
//! server, measuring what the rotation, reuse-detection, anomaly and DPoP
//! rules catch and whom they throw out.
//!
//! Deterministic for a seed: the seed chooses every network, user agent,
//! tab count and loop length. Each behaviour runs `runs` times with and
//! without DPoP, each run with its own user; all runs go at once.
//! `cargo run -p integration-tests --bin trace -- --seed 7` prints the table
//! and the targets of `docs/risk-scoring.md`; the black-box test
//! `trace::the_targets_hold` asserts them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::time::Duration;

use futures_util::future::join_all;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use reqwest::header::{AUTHORIZATION, USER_AGENT};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::audit_support::LOOPBACK_PROXY;
use crate::dpop::DpopKey;
use crate::{TestApp, PASSWORD};

/// The grace window the trace runs with: short, so that "after the grace
/// window" costs a second, not ten.
pub const GRACE: Duration = Duration::from_millis(1500);
/// The access-token lifetime of the trace (the idle behaviour outlives it).
pub const ACCESS_TTL: Duration = Duration::from_secs(2);

/// Adjusts a server's configuration for the trace.
pub fn configure(config: &mut server::Config) {
    config.lifetimes.grace = GRACE;
    config.lifetimes.access_ttl = ACCESS_TTL;
    config.trusted_proxies = vec![LOOPBACK_PROXY.parse().unwrap()];
    // Dozens of registrations and logins start at once (argon2 in a debug
    // build takes a second or more): the trace measures detection, not
    // the hashing queue.
    config.dependency_timeout = Duration::from_secs(60);
}

/// At most this many registrations and logins at once.
static PASSWORD_WORK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Honest,
    Thief,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Steady,
    Tabs,
    MobileNetworkChange,
    BrowserMinorUpdate,
    BrowserMajorUpdate,
    LostResponseRetrySameNetwork,
    LostResponseRetryNewNetwork,
    IdleThenResume,
    RestartBeforeAnswer,
    ReplayRotated,
    StolenCurrentOtherDevice,
    StolenCurrentCopiedUserAgent,
    AttackerStaysAhead,
    GraceReplayOtherNetwork,
    StealThenLogout,
    SameDeviceMalware,
}

impl Behaviour {
    pub const ALL: [Behaviour; 16] = [
        Self::Steady,
        Self::Tabs,
        Self::MobileNetworkChange,
        Self::BrowserMinorUpdate,
        Self::BrowserMajorUpdate,
        Self::LostResponseRetrySameNetwork,
        Self::LostResponseRetryNewNetwork,
        Self::IdleThenResume,
        Self::RestartBeforeAnswer,
        Self::ReplayRotated,
        Self::StolenCurrentOtherDevice,
        Self::StolenCurrentCopiedUserAgent,
        Self::AttackerStaysAhead,
        Self::GraceReplayOtherNetwork,
        Self::StealThenLogout,
        Self::SameDeviceMalware,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady refresh",
            Self::Tabs => "2-5 tabs at once",
            Self::MobileNetworkChange => "mobile: new IP every refresh",
            Self::BrowserMinorUpdate => "browser minor update",
            Self::BrowserMajorUpdate => "browser major update",
            Self::LostResponseRetrySameNetwork => "lost answer, retry, same network",
            Self::LostResponseRetryNewNetwork => "lost answer, retry, new network",
            Self::IdleThenResume => "idle past the access token, resume",
            Self::RestartBeforeAnswer => "server restart before the answer",
            Self::ReplayRotated => "replay of a rotated token",
            Self::StolenCurrentOtherDevice => "stolen current token, other network+device",
            Self::StolenCurrentCopiedUserAgent => "stolen current token, copied user agent",
            Self::AttackerStaysAhead => "attacker refreshes in a loop",
            Self::GraceReplayOtherNetwork => "grace-window replay, other network",
            Self::StealThenLogout => "steal, use, then log out",
            Self::SameDeviceMalware => "same-device malware",
        }
    }

    pub fn label(self) -> Label {
        match self {
            Self::Steady
            | Self::Tabs
            | Self::MobileNetworkChange
            | Self::BrowserMinorUpdate
            | Self::BrowserMajorUpdate
            | Self::LostResponseRetrySameNetwork
            | Self::LostResponseRetryNewNetwork
            | Self::IdleThenResume
            | Self::RestartBeforeAnswer => Label::Honest,
            _ => Label::Thief,
        }
    }
}

/// What one run of a behaviour came to.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Honest runs: the user was refused or lost the session.
    pub honest_ended: bool,
    /// Thief runs: the thief's requests stopped working (refused) or the
    /// user's risk level is `high`.
    pub caught: bool,
    /// Thief runs: attacker requests made up to and including the first one
    /// refused (`None`: never refused).
    pub refused_at: Option<u32>,
    /// Thief runs: refreshes the attacker got a 200 for.
    pub attacker_refreshes: u32,
    /// Thief runs: the attacker's access tokens that were accepted by
    /// `GET /api/me` once the theft was detected (or at the end).
    pub attacker_access_after: u32,
    /// Thief runs: the attacker's access tokens that were ever accepted.
    pub attacker_access_accepted: u32,
    /// Steal-then-logout runs: the victim's session did not survive the
    /// thief's logout (its next refresh was refused).
    pub victim_logged_out: bool,
    /// The user's risk level after the run.
    pub risk: String,
    /// Why an honest run ended, for the report.
    pub note: Option<String>,
}

/// One row of the report: a behaviour with or without DPoP over its runs.
#[derive(Debug, Clone)]
pub struct Row {
    pub behaviour: Behaviour,
    pub dpop: bool,
    pub runs: Vec<RunResult>,
}

impl Row {
    pub fn honest_ended(&self) -> usize {
        self.runs.iter().filter(|r| r.honest_ended).count()
    }
    pub fn caught(&self) -> usize {
        self.runs.iter().filter(|r| r.caught).count()
    }
    pub fn max_refused_at(&self) -> Option<u32> {
        self.runs.iter().map(|r| r.refused_at).max().flatten()
    }
    pub fn never_refused(&self) -> usize {
        self.runs.iter().filter(|r| r.refused_at.is_none()).count()
    }
    pub fn max_attacker_refreshes(&self) -> u32 {
        self.runs
            .iter()
            .map(|r| r.attacker_refreshes)
            .max()
            .unwrap_or(0)
    }
    pub fn max_access_after(&self) -> u32 {
        self.runs
            .iter()
            .map(|r| r.attacker_access_after)
            .max()
            .unwrap_or(0)
    }
    pub fn max_access_accepted(&self) -> u32 {
        self.runs
            .iter()
            .map(|r| r.attacker_access_accepted)
            .max()
            .unwrap_or(0)
    }
    pub fn high_risk(&self) -> usize {
        self.runs.iter().filter(|r| r.risk == "high").count()
    }
    pub fn victims_logged_out(&self) -> usize {
        self.runs.iter().filter(|r| r.victim_logged_out).count()
    }
}

/// Runs every behaviour `runs` times with and without DPoP against `app`
/// (configured with [`configure`]).
pub async fn run(app: &TestApp, seed: u64, runs: usize) -> Vec<Row> {
    let admin_name = format!("trace-admin-{seed}");
    let first = app.admin(&admin_name).await;
    let admin = Admin {
        username: admin_name,
        token: tokio::sync::Mutex::new((first.access, std::time::Instant::now())),
    };
    let admin = &admin;
    let mut jobs = Vec::new();
    for (b, behaviour) in Behaviour::ALL.into_iter().enumerate() {
        for dpop in [false, true] {
            for i in 0..runs {
                let run_seed = seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add((b * 1000 + usize::from(dpop) * 100 + i) as u64);
                jobs.push(async move {
                    let user = format!("t{seed}-{b}-{}-{i}", u8::from(dpop));
                    let result = Scenario::new(app, run_seed, dpop, user, admin)
                        .play(behaviour)
                        .await;
                    (behaviour, dpop, result)
                });
            }
        }
    }
    let results = join_all(jobs).await;
    let mut rows: Vec<Row> = Vec::new();
    for (behaviour, dpop, result) in results {
        match rows
            .iter_mut()
            .find(|r| r.behaviour == behaviour && r.dpop == dpop)
        {
            Some(row) => row.runs.push(result),
            None => rows.push(Row {
                behaviour,
                dpop,
                runs: vec![result],
            }),
        }
    }
    rows
}

/// A target of `docs/risk-scoring.md` and whether the trace met it.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: &'static str,
    pub met: bool,
    pub detail: String,
}

pub fn targets(rows: &[Row]) -> Vec<Target> {
    // Without a key, a retry from a new network looks exactly like a thief
    // replaying inside the grace window from another network, which must be
    // reuse; only a DPoP-bound client proves it is the same client.
    let honest_ended: usize = rows
        .iter()
        .filter(|r| r.behaviour.label() == Label::Honest)
        .filter(|r| r.dpop || r.behaviour != Behaviour::LostResponseRetryNewNetwork)
        .map(Row::honest_ended)
        .sum();
    let replay: Vec<&Row> = rows
        .iter()
        .filter(|r| r.behaviour == Behaviour::ReplayRotated)
        .collect();
    let replay_first = replay.iter().all(|r| {
        r.max_refused_at() == Some(1) && r.never_refused() == 0 && r.caught() == r.runs.len()
    });
    let bound_thieves: Vec<&Row> = rows
        .iter()
        .filter(|r| r.dpop && r.behaviour.label() == Label::Thief)
        .collect();
    let bound_zero = bound_thieves
        .iter()
        .all(|r| r.max_attacker_refreshes() == 0 && r.max_access_accepted() == 0);
    // Same-device malware (same network, same browser) is left out: to the
    // server its refreshes and the victim's are one client retrying after
    // lost answers (the contract's retry rule); only DPoP stops it.
    let stolen_current = [
        Behaviour::StolenCurrentOtherDevice,
        Behaviour::StolenCurrentCopiedUserAgent,
        Behaviour::AttackerStaysAhead,
    ];
    let unbound_stolen: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.dpop && stolen_current.contains(&r.behaviour))
        .collect();
    let unbound_caught = unbound_stolen
        .iter()
        .all(|r| r.caught() == r.runs.len() && r.max_access_after() <= 1);
    let must_be_high = [
        Behaviour::GraceReplayOtherNetwork,
        Behaviour::StealThenLogout,
    ];
    // Unbound sessions: these were the escapes. Bound ones refuse the
    // thief outright (the DPoP target above).
    let high: Vec<&Row> = rows
        .iter()
        .filter(|r| !r.dpop && must_be_high.contains(&r.behaviour))
        .collect();
    let high_met = high.iter().all(|r| r.high_risk() == r.runs.len());
    let bound_logout: Vec<&Row> = rows
        .iter()
        .filter(|r| r.dpop && r.behaviour == Behaviour::StealThenLogout)
        .collect();
    let bound_logout_kept = bound_logout.iter().all(|r| r.victims_logged_out() == 0);
    vec![
        Target {
            name: "0 honest sessions ended (unbound retries from a new network aside)",
            met: honest_ended == 0,
            detail: format!("{honest_ended} ended"),
        },
        Target {
            name: "every replay of a rotated token caught at the first replay",
            met: replay_first,
            detail: replay
                .iter()
                .map(|r| format!("{}/{} caught", r.caught(), r.runs.len()))
                .collect::<Vec<_>>()
                .join(", "),
        },
        Target {
            name: "a thief of a DPoP-bound token: 0 refreshes, 0 accepted access tokens",
            met: bound_zero,
            detail: format!(
                "max {} refreshes, max {} access tokens accepted",
                bound_thieves.iter().map(|r| r.max_attacker_refreshes()).max().unwrap_or(0),
                bound_thieves.iter().map(|r| r.max_access_accepted()).max().unwrap_or(0)
            ),
        },
        Target {
            name: "unbound stolen current token (from another device): caught by the victim's next refresh, thief keeps <= 1 access token",
            met: unbound_caught,
            detail: unbound_stolen
                .iter()
                .map(|r| {
                    format!(
                        "{}: {}/{} caught, {} after",
                        r.behaviour.name(),
                        r.caught(),
                        r.runs.len(),
                        r.max_access_after()
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        },
        Target {
            name: "unbound: grace-window replay from another network and steal-then-logout raise the risk to high",
            met: high_met,
            detail: high
                .iter()
                .map(|r| {
                    format!(
                        "{}{}: {}/{} high",
                        r.behaviour.name(),
                        if r.dpop { " (DPoP)" } else { "" },
                        r.high_risk(),
                        r.runs.len()
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
        },
        Target {
            name: "DPoP-bound steal-then-logout: the thief's logout is refused, the victim keeps its session",
            met: bound_logout_kept,
            detail: bound_logout
                .iter()
                .map(|r| format!("{}/{} victims logged out", r.victims_logged_out(), r.runs.len()))
                .collect::<Vec<_>>()
                .join("; "),
        },
    ]
}

/// The report as a Markdown table plus the targets.
pub fn report(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| behaviour | DPoP | runs | honest ended | thefts caught | refused at attacker request (max) | attacker refreshes (max) | attacker access tokens accepted after detection (max) | risk high |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let honest = row.behaviour.label() == Label::Honest;
        let dash = || "-".to_owned();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
            row.behaviour.name(),
            if row.dpop { "yes" } else { "no" },
            row.runs.len(),
            if honest {
                row.honest_ended().to_string()
            } else {
                dash()
            },
            if honest {
                dash()
            } else {
                format!("{}/{}", row.caught(), row.runs.len())
            },
            if honest {
                dash()
            } else if row.never_refused() > 0 {
                format!("never ({} runs)", row.never_refused())
            } else {
                row.max_refused_at()
                    .map(|n| n.to_string())
                    .unwrap_or_else(dash)
            },
            if honest {
                dash()
            } else {
                row.max_attacker_refreshes().to_string()
            },
            if honest {
                dash()
            } else {
                row.max_access_after().to_string()
            },
            row.high_risk(),
            row.runs.len(),
        );
    }
    out.push('\n');
    for target in targets(rows) {
        let _ = writeln!(
            out,
            "- [{}] {} ({})",
            if target.met { "x" } else { " " },
            target.name,
            target.detail
        );
    }
    let notes: Vec<String> = rows
        .iter()
        .flat_map(|r| {
            r.runs.iter().filter_map(move |run| {
                run.note.as_ref().map(|n| {
                    format!(
                        "{}{}: {n}",
                        r.behaviour.name(),
                        if r.dpop { " (DPoP)" } else { "" }
                    )
                })
            })
        })
        .collect();
    if !notes.is_empty() {
        out.push_str("\nWhy honest sessions ended:\n");
        let mut unique = notes;
        unique.sort();
        unique.dedup();
        for note in unique {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

/// A client: where it is, what it runs, the key it holds, its tokens.
#[derive(Clone)]
struct Client {
    ip: String,
    user_agent: String,
    key: Option<DpopKey>,
    refresh: String,
    access: String,
    token_type: String,
}

/// The answer to a refresh: the status and, on 200, the new tokens.
struct Answer {
    status: StatusCode,
    code: Option<String>,
    tokens: Option<(String, String, String)>,
}

/// The admin whose token reads the analyses; access tokens live
/// [`ACCESS_TTL`] here, so it logs in again when its token is half gone.
struct Admin {
    username: String,
    token: tokio::sync::Mutex<(String, std::time::Instant)>,
}

impl Admin {
    async fn access(&self, app: &TestApp) -> String {
        let mut token = self.token.lock().await;
        if token.1.elapsed() > ACCESS_TTL / 2 {
            let _permit = PASSWORD_WORK.acquire().await.unwrap();
            *token = (
                app.login(&self.username).await.access,
                std::time::Instant::now(),
            );
        }
        token.0.clone()
    }
}

struct Scenario<'a> {
    app: &'a TestApp,
    rng: StdRng,
    dpop: bool,
    username: String,
    admin: &'a Admin,
    user_id: String,
}

const BROWSERS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.{minor}.71 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:{major}.0) Gecko/20100101 Firefox/{major}.{minor}",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{major}.0.{minor}.0 Safari/537.36 Edg/{major}.0.{minor}.0",
    "okhttp/{major}.{minor}.0",
];

impl<'a> Scenario<'a> {
    fn new(app: &'a TestApp, seed: u64, dpop: bool, username: String, admin: &'a Admin) -> Self {
        Scenario {
            app,
            rng: StdRng::seed_from_u64(seed),
            dpop,
            username,
            admin,
            user_id: String::new(),
        }
    }

    fn network(&mut self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.rng.random_range(11..=223),
            self.rng.random_range(0..=255),
            self.rng.random_range(0..=255),
            self.rng.random_range(1..=254)
        )
    }

    /// Another address in the same /24 (a phone's NAT changing port and
    /// address inside one carrier block is not modelled; this is one LAN).
    fn same_network(ip: &str) -> String {
        let (prefix, _) = ip.rsplit_once('.').unwrap();
        format!("{prefix}.{}", if ip.ends_with(".7") { 8 } else { 7 })
    }

    fn browser(&mut self, family: usize, major: u32, minor: u32) -> String {
        BROWSERS[family % BROWSERS.len()]
            .replace("{major}", &major.to_string())
            .replace("{minor}", &minor.to_string())
    }

    fn random_browser(&mut self) -> (usize, u32, u32) {
        (
            self.rng.random_range(0..BROWSERS.len()),
            self.rng.random_range(100..130),
            self.rng.random_range(1..9000),
        )
    }

    fn key(&mut self) -> DpopKey {
        DpopKey::es256_from_seed(self.rng.random())
    }

    async fn register_and_login(&mut self, ip: String, user_agent: String) -> Client {
        let _permit = PASSWORD_WORK.acquire().await.unwrap();
        let r = self.app.register(&self.username).await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "register {}",
            self.username
        );
        let key = self.dpop.then(|| self.key());
        let url = self.app.url("/auth/login");
        let mut request = self
            .app
            .client
            .post(&url)
            .header(USER_AGENT, &user_agent)
            .header("x-forwarded-for", &ip)
            .json(
                &json!({"username": self.username, "password": PASSWORD, "token_delivery": "body"}),
            );
        if let Some(key) = &key {
            request = request.header("DPoP", key.proof("POST", &url, None));
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "login {}", self.username);
        let body: Value = r.json().await.unwrap();
        self.user_id = body["user"]["id"].as_str().unwrap().to_owned();
        Client {
            ip,
            user_agent,
            key,
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
            access: body["access_token"].as_str().unwrap().to_owned(),
            token_type: body["token_type"].as_str().unwrap_or("Bearer").to_owned(),
        }
    }

    async fn send_refresh(&self, client: &Client, token: &str) -> Answer {
        let url = self.app.url("/auth/refresh");
        let mut request = self
            .app
            .client
            .post(&url)
            .header(USER_AGENT, &client.user_agent)
            .header("x-forwarded-for", &client.ip)
            .json(&json!({"refresh_token": token}));
        if let Some(key) = &client.key {
            request = request.header("DPoP", key.proof("POST", &url, None));
        }
        answer(request.send().await.unwrap()).await
    }

    /// Refreshes with the client's token; on 200 the client takes the new
    /// tokens.
    async fn refresh(&self, client: &mut Client) -> Answer {
        let answer = self.send_refresh(client, &client.refresh.clone()).await;
        if let Some((refresh, access, token_type)) = &answer.tokens {
            client.refresh = refresh.clone();
            client.access = access.clone();
            client.token_type = token_type.clone();
        }
        answer
    }

    /// `GET /api/me` with the client's access token (and a proof by its
    /// key when the token is DPoP-bound and the client holds a key).
    async fn me(&self, client: &Client) -> StatusCode {
        let url = self.app.url("/api/me");
        let mut request = self
            .app
            .client
            .get(&url)
            .header(USER_AGENT, &client.user_agent)
            .header("x-forwarded-for", &client.ip);
        if client.token_type == "DPoP" {
            request = request.header(AUTHORIZATION, format!("DPoP {}", client.access));
            if let Some(key) = &client.key {
                request = request.header("DPoP", key.proof("GET", &url, Some(&client.access)));
            }
        } else {
            request = request.bearer_auth(&client.access);
        }
        request.send().await.unwrap().status()
    }

    async fn logout(&self, client: &Client) -> StatusCode {
        let url = self.app.url("/auth/logout");
        let mut request = self
            .app
            .client
            .post(&url)
            .header(USER_AGENT, &client.user_agent)
            .header("x-forwarded-for", &client.ip)
            .json(&json!({"refresh_token": client.refresh}));
        if let Some(key) = &client.key {
            request = request.header("DPoP", key.proof("POST", &url, None));
        }
        request.send().await.unwrap().status()
    }

    async fn risk(&self) -> String {
        let r = self
            .app
            .get_bearer(
                &format!("/admin/users/{}/token-analysis?days=1", self.user_id),
                &self.admin.access(self.app).await,
            )
            .await;
        let body: Value = r.json().await.unwrap_or(Value::Null);
        body["risk"]["level"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned()
    }

    async fn play(mut self, behaviour: Behaviour) -> RunResult {
        let ip = self.network();
        let (family, major, minor) = self.random_browser();
        let user_agent = self.browser(family, major, minor);
        let mut victim = self.register_and_login(ip, user_agent).await;
        let mut result = match behaviour.label() {
            Label::Honest => {
                self.honest(behaviour, &mut victim, family, major, minor)
                    .await
            }
            Label::Thief => self.thief(behaviour, &mut victim).await,
        };
        result.risk = self.risk().await;
        result
    }

    /// Plays an honest behaviour; any refusal ends the session.
    async fn honest(
        &mut self,
        behaviour: Behaviour,
        client: &mut Client,
        family: usize,
        major: u32,
        minor: u32,
    ) -> RunResult {
        let steps = self.rng.random_range(3..6);
        let mut failure: Option<String> = None;
        macro_rules! check {
            ($what:expr, $answer:expr) => {{
                let answer: &Answer = $answer;
                if answer.status != StatusCode::OK && failure.is_none() {
                    failure = Some(format!(
                        "{}: {} {}",
                        $what,
                        answer.status.as_u16(),
                        answer.code.clone().unwrap_or_default()
                    ));
                }
            }};
        }
        match behaviour {
            Behaviour::Steady => {
                for _ in 0..steps {
                    check!("refresh", &self.refresh(client).await);
                }
            }
            Behaviour::Tabs => {
                for _ in 0..steps {
                    let tabs = self.rng.random_range(2..=5);
                    let token = client.refresh.clone();
                    let answers =
                        join_all((0..tabs).map(|_| self.send_refresh(client, &token))).await;
                    let mut successors = Vec::new();
                    for answer in &answers {
                        check!("concurrent tab refresh", answer);
                        if let Some(tokens) = &answer.tokens {
                            successors.push(tokens.clone());
                        }
                    }
                    successors.dedup_by(|a, b| a.0 == b.0);
                    if successors.len() > 1 && failure.is_none() {
                        failure = Some("tabs got different successors".to_owned());
                    }
                    if let Some((refresh, access, token_type)) = successors.pop() {
                        client.refresh = refresh;
                        client.access = access;
                        client.token_type = token_type;
                    }
                }
            }
            Behaviour::MobileNetworkChange => {
                for _ in 0..steps {
                    client.ip = self.network();
                    check!("refresh from a new network", &self.refresh(client).await);
                }
            }
            Behaviour::BrowserMinorUpdate | Behaviour::BrowserMajorUpdate => {
                check!("refresh", &self.refresh(client).await);
                client.user_agent = if behaviour == Behaviour::BrowserMinorUpdate {
                    self.browser(family, major, minor + 1)
                } else {
                    self.browser(family, major + 1, 1)
                };
                for _ in 0..steps {
                    check!("refresh after the update", &self.refresh(client).await);
                }
            }
            Behaviour::LostResponseRetrySameNetwork
            | Behaviour::LostResponseRetryNewNetwork
            | Behaviour::RestartBeforeAnswer => {
                check!("refresh", &self.refresh(client).await);
                let lost = client.refresh.clone();
                // The server rotates; the answer never arrives.
                let _ = self.send_refresh(client, &lost).await;
                match behaviour {
                    // A client timeout: it retries at once.
                    Behaviour::LostResponseRetrySameNetwork => {
                        client.ip = Self::same_network(&client.ip);
                    }
                    Behaviour::LostResponseRetryNewNetwork => client.ip = self.network(),
                    // The server went down and came back after the grace
                    // window: the client retries then, same network.
                    _ => tokio::time::sleep(GRACE + Duration::from_millis(500)).await,
                }
                check!("retry of the lost refresh", &self.refresh(client).await);
                for _ in 0..steps {
                    check!("refresh after the retry", &self.refresh(client).await);
                }
            }
            Behaviour::IdleThenResume => {
                check!("refresh", &self.refresh(client).await);
                tokio::time::sleep(ACCESS_TTL + Duration::from_millis(500)).await;
                let status = self.me(client).await;
                if status == StatusCode::OK && failure.is_none() {
                    failure = Some("an expired access token was accepted".to_owned());
                }
                check!("refresh after idling", &self.refresh(client).await);
            }
            _ => unreachable!("not an honest behaviour"),
        }
        if failure.is_none() && self.me(client).await != StatusCode::OK {
            failure = Some("the final access token was refused".to_owned());
        }
        RunResult {
            honest_ended: failure.is_some(),
            note: failure,
            ..RunResult::default()
        }
    }

    /// Plays a theft. The thief copies the victim's tokens, never its key;
    /// with DPoP it signs proofs with a key of its own.
    async fn thief(&mut self, behaviour: Behaviour, victim: &mut Client) -> RunResult {
        let mut result = RunResult::default();
        let (family, major, minor) = self.random_browser();
        let own_device = self.browser(family + 1, major, minor);
        let mut thief = Client {
            ip: self.network(),
            user_agent: own_device,
            key: self.dpop.then(|| self.key()),
            ..victim.clone()
        };
        let mut requests = 0u32;
        let mut detected = false;
        // An attacker refresh; true when it worked.
        macro_rules! attack {
            () => {{
                requests += 1;
                let answer = self.refresh(&mut thief).await;
                if answer.status == StatusCode::OK {
                    result.attacker_refreshes += 1;
                    if self.me(&thief).await == StatusCode::OK {
                        result.attacker_access_accepted += 1;
                    }
                    true
                } else {
                    if result.refused_at.is_none() {
                        result.refused_at = Some(requests);
                    }
                    false
                }
            }};
        }
        match behaviour {
            Behaviour::ReplayRotated => {
                let old = victim.refresh.clone();
                self.refresh(victim).await;
                tokio::time::sleep(GRACE + Duration::from_millis(300)).await;
                thief.refresh = old;
                thief.user_agent = victim.user_agent.clone();
                detected = !attack!();
            }
            Behaviour::StolenCurrentOtherDevice
            | Behaviour::StolenCurrentCopiedUserAgent
            | Behaviour::AttackerStaysAhead
            | Behaviour::SameDeviceMalware => {
                match behaviour {
                    Behaviour::StolenCurrentCopiedUserAgent | Behaviour::AttackerStaysAhead => {
                        thief.user_agent = victim.user_agent.clone();
                    }
                    Behaviour::SameDeviceMalware => {
                        thief.user_agent = victim.user_agent.clone();
                        thief.ip = victim.ip.clone();
                    }
                    _ => {}
                }
                let loops = if behaviour == Behaviour::AttackerStaysAhead {
                    self.rng.random_range(3..8)
                } else {
                    1
                };
                for _ in 0..loops {
                    if !attack!() {
                        detected = true;
                        break;
                    }
                }
                // The victim comes back.
                tokio::time::sleep(GRACE + Duration::from_millis(300)).await;
                let answer = self.refresh(victim).await;
                if answer.status != StatusCode::OK {
                    detected = true;
                }
                if !detected {
                    // The thief's next move after the victim's refresh.
                    detected = !attack!();
                }
            }
            Behaviour::GraceReplayOtherNetwork => {
                let old = victim.refresh.clone();
                self.refresh(victim).await;
                thief.refresh = old;
                thief.user_agent = victim.user_agent.clone();
                detected = !attack!();
            }
            Behaviour::StealThenLogout => {
                thief.user_agent = victim.user_agent.clone();
                // The thief logs the session out, whether or not it could
                // use it: bound, its logout is refused as its refresh was.
                attack!();
                let _ = self.logout(&thief).await;
                tokio::time::sleep(GRACE + Duration::from_millis(300)).await;
                let answer = self.refresh(victim).await;
                // Unbound, only the analysis catches this one (the victim's
                // token was rotated by the thief, then the session ended);
                // bound, the thief's first refresh is refused.
                result.victim_logged_out = answer.status != StatusCode::OK;
                detected = result.refused_at.is_some();
            }
            _ => unreachable!("not a theft"),
        }
        // What the thief still holds: its latest access token.
        if self.me(&thief).await == StatusCode::OK {
            result.attacker_access_after = 1;
        }
        result.caught = detected || self.risk().await == "high";
        result
    }
}

async fn answer(r: Response) -> Answer {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if status == StatusCode::OK {
        Answer {
            status,
            code: None,
            tokens: Some((
                body["refresh_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                body["access_token"].as_str().unwrap_or_default().to_owned(),
                body["token_type"].as_str().unwrap_or("Bearer").to_owned(),
            )),
        }
    } else {
        Answer {
            status,
            code: body["code"].as_str().map(str::to_owned),
            tokens: None,
        }
    }
}
