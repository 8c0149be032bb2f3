//! Load benchmark of the real `tokenwarden` binary over HTTP, driven by
//! `wrk` (Debian package `wrk`), with references measured in the same run.
//!
//! ```sh
//! apt-get install wrk                # once; pgbench (postgresql-client) for the PostgreSQL reference
//! TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p server --bench load
//! ```
//!
//! Scenarios, on SQLite and (with `TEST_DATABASE_URL`) PostgreSQL, each
//! `LOAD_SECONDS` (default 3) long, 32 connections unless said:
//! - `refresh`: refresh chains (body delivery), every token spent once;
//! - `refresh, DPoP-bound`: the same chains, each session bound to a DPoP
//!   key at login and every refresh with a fresh ES256 proof (signed before
//!   the run, so the figure is the server's cost);
//! - `bearer`: `GET /api/me` with an access token;
//! - `login` (16 connections): successful logins;
//! - `mixed`: 1 % logins, 19 % refreshes, 80 % Bearer requests;
//! - `refresh 10^3` / `refresh 10^6`: refresh chains with that many live
//!   sessions in the database (seeded directly; `LOAD_SESSIONS` sets the
//!   larger count, 0 skips it).
//!
//! `LOAD_ONLY` (comma-separated: `references`, `sqlite`, `postgres`,
//! `refresh`, `dpop`, `bearer`, `login`, `mixed`, `sessions`) runs only what
//! it names, for a quick look at one figure; the rest of the table is empty.
//!
//! References, same run, same cores: an empty actix endpoint under the same
//! `wrk`; a single-row write transaction on SQLite (WAL,
//! `synchronous=NORMAL`, one writer) and a single-row `UPDATE` by `pgbench`
//! on the same PostgreSQL (32 clients); argon2id verifies with the server's
//! parameters (at the start, and alternated with the rounds of each login
//! scenario, which is compared with their mean: a shared machine's speed
//! drifts over a run, `LOAD_LOGIN_ROUNDS`) and Ed25519 signatures and
//! verifications, one thread per core.
//! Prints a Markdown table with each figure as a ratio to its reference and
//! the server's peak RSS (`VmHWM`), and writes it to `target/load-report.md`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use application::ports::PasswordHasher as _;
use diesel::connection::SimpleConnection as _;
use diesel::{Connection as _, PgConnection, SqliteConnection};
use domain::{Password, Timestamp};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};
use persistence::testing::{seed_expired_sessions, TestDatabase};
use serde_json::{json, Value};

#[path = "support/dpop_proof.rs"]
mod dpop_proof;
use dpop_proof::ProofKey;

const BIN: &str = env!("CARGO_BIN_EXE_tokenwarden");
const PASSWORD: &str = "correct horse battery staple";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) tokenwarden-load";
/// wrk threads: one per core of the development machine.
const THREADS: usize = 2;
const CONNECTIONS: usize = 32;
const LOGIN_CONNECTIONS: usize = 16;
/// The mixed profile's shares of logins and refreshes (the rest is Bearer).
const MIX_LOGIN: f64 = 0.01;
const MIX_REFRESH: f64 = 0.19;

const REPORT: &str = include_str!("load/report.lua");
const CHAINS: &str = include_str!("load/chains.lua");
const LOGIN: &str = include_str!("load/login.lua");
const BEARER: &str = include_str!("load/bearer.lua");
const EMPTY: &str = include_str!("load/empty.lua");

/// Whether a scenario runs: all of them unless `LOAD_ONLY` lists some
/// (comma-separated: `refresh`, `dpop`, `bearer`, `login`, `mixed`,
/// `sessions`, `references`, `sqlite`, `postgres`), for a quicker look at
/// one figure (a profile, say); the table then shows the rest as empty.
fn runs(what: &str) -> bool {
    std::env::var("LOAD_ONLY").map_or(true, |only| only.split(',').any(|o| o.trim() == what))
}

fn seconds() -> u64 {
    std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    requests: u64,
    duration: Duration,
    errors: u64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.duration.as_secs_f64()
    }

    /// Two runs of one scenario as one: their requests over their time;
    /// the slower of their percentiles (a bound, not a merge).
    fn and(self, other: Run) -> Run {
        Run {
            requests: self.requests + other.requests,
            duration: self.duration + other.duration,
            errors: self.errors + other.errors,
            p50_us: self.p50_us.max(other.p50_us),
            p99_us: self.p99_us.max(other.p99_us),
            p999_us: self.p999_us.max(other.p999_us),
        }
    }
}

/// How many times the login scenario alternates with its argon2 reference
/// (`LOAD_LOGIN_ROUNDS`, default 3).
fn login_rounds() -> usize {
    std::env::var("LOAD_LOGIN_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(3)
}

/// Runs wrk with `script` (plus the report function) against `url`.
fn wrk(url: &str, script: &str, args: &[&str], connections: usize, work: &Path) -> Run {
    let file = work.join("scenario.lua");
    std::fs::write(&file, format!("{script}\n{REPORT}")).unwrap();
    let out = Command::new("wrk")
        .arg(format!("-t{THREADS}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{}s", seconds()))
        .args(["--timeout", "5s", "-s"])
        .arg(&file)
        .arg(url)
        .arg("--")
        .args(args)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("WRK "))
        .unwrap_or_else(|| {
            panic!(
                "wrk printed no summary: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    Run {
        requests: field("requests"),
        duration: Duration::from_micros(field("duration_us")),
        errors: field("errors"),
        p50_us: field("p50"),
        p99_us: field("p99"),
        p999_us: field("p999"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tokenwarden serve` in its own process (its RSS is its own).
struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(database_url: &str, keys: &Path) -> Server {
        let port = free_port();
        let child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", database_url)
            .env("TOKENWARDEN_KEYS_DIR", keys)
            .env("TOKENWARDEN_BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            // One address makes every request of the benchmark.
            .env("TOKENWARDEN_LOGIN_RATE_IP", "100000000/min")
            // The login scenario logs the same users in again and again.
            .env("TOKENWARDEN_LOGIN_RATE_USER", "100000000/min")
            .env("TOKENWARDEN_REGISTER_RATE_IP", "100000000/min")
            .env("TOKENWARDEN_REFRESH_FAIL_RATE_IP", "100000000/min")
            // Logins of the login and mixed scenarios add sessions to their
            // users; no eviction, so chains of the same users stay live.
            .env("TOKENWARDEN_MAX_SESSIONS", "100000000")
            // DPoP proofs are signed before their run: they must stay fresh
            // for all of it.
            .env("TOKENWARDEN_DPOP_MAX_AGE", "1h")
            .stdout(Stdio::null())
            .spawn()
            .expect("tokenwarden starts");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if server
                .client
                .get(server.url("/healthz"))
                .send()
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tokenwarden did not start");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    }

    async fn register(&self, username: &str) {
        let r = self
            .client
            .post(self.url("/auth/register"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "register {username}");
    }

    /// (refresh token, access token) of a new session of `username`.
    async fn login(&self, username: &str) -> (String, String) {
        self.login_with(username, None).await
    }

    /// [`Server::login`], bound to `key` when given.
    async fn login_with(&self, username: &str, key: Option<&ProofKey>) -> (String, String) {
        let mut request = self
            .client
            .post(self.url("/auth/login"))
            .header("User-Agent", UA)
            .json(&json!({"username": username, "password": PASSWORD, "token_delivery": "body"}));
        if let Some(key) = key {
            request = request.header("DPoP", key.proof("POST", &self.url("/auth/login")));
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 200, "login {username}");
        let body: Value = r.json().await.unwrap();
        (
            body["refresh_token"].as_str().unwrap().to_owned(),
            body["access_token"].as_str().unwrap().to_owned(),
        )
    }

    /// One new session per connection of the `chain<i>` users, written as
    /// `<prefix>.<thread>` files for `chains.lua`.
    async fn chains(&self, work: &Path) -> PathBuf {
        self.chains_of(work, "tokens", None).await
    }

    /// One new session per connection of the `chain<i>` users, bound to
    /// `key` when given, written as `<work>/<name>.<thread>` files.
    async fn chains_of(&self, work: &Path, name: &str, key: Option<&ProofKey>) -> PathBuf {
        let logins = (0..CONNECTIONS).map(|i| {
            let username = format!("chain{i}");
            async move { self.login_with(&username, key).await }
        });
        let pairs = futures_util::future::join_all(logins).await;
        let prefix = work.join(name);
        for thread in 0..THREADS {
            let lines: String = pairs
                .iter()
                .skip(thread)
                .step_by(THREADS)
                .map(|(r, a)| format!("{r} {a}\n"))
                .collect();
            std::fs::write(format!("{}.{thread}", prefix.display()), lines).unwrap();
        }
        prefix
    }

    /// [`Server::chains`] of sessions bound to `key`, and for each wrk
    /// thread `per_thread` refresh proofs by it (`<prefix>.<thread>.proofs`,
    /// which `chains.lua` then sends, one per refresh).
    async fn bound_chains(&self, work: &Path, key: &ProofKey, per_thread: usize) -> PathBuf {
        let prefix = self.chains_of(work, "bound", Some(key)).await;
        let url = self.url("/auth/refresh");
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let (prefix, url) = (&prefix, &url);
                scope.spawn(move || {
                    let mut proofs = String::new();
                    for _ in 0..per_thread {
                        proofs.push_str(&key.proof("POST", url));
                        proofs.push('\n');
                    }
                    std::fs::write(format!("{}.{thread}.proofs", prefix.display()), proofs)
                        .unwrap();
                });
            }
        });
        prefix
    }
}

/// Throughput of `f` on one thread per core for `secs` seconds.
fn per_second(secs: f64, f: impl Fn() + Send + Sync + 'static) -> f64 {
    let f = Arc::new(f);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (f, stop, done) = (f.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    f();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Single-row write transactions on one SQLite connection, as the server
/// configures SQLite (WAL, `synchronous=NORMAL`), `BEGIN IMMEDIATE`.
fn sqlite_row_writes(path: &Path) -> f64 {
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    conn.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
         CREATE TABLE one (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
         INSERT INTO one VALUES (1, 0);",
    )
    .unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(seconds()) {
        conn.immediate_transaction(|c| c.batch_execute("UPDATE one SET n = n + 1 WHERE id = 1"))
            .unwrap();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// `pgbench`: 32 clients each updating one random row of 1 000 per
/// transaction, on the benchmark's own database.
fn pgbench_row_updates(url: &str, work: &Path) -> Option<f64> {
    let mut conn = PgConnection::establish(url).unwrap();
    conn.batch_execute(
        "CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, n BIGINT NOT NULL);
         INSERT INTO bench_rows SELECT g, 0 FROM generate_series(1, 1000) AS g;",
    )
    .unwrap();
    let script = work.join("update.sql");
    std::fs::write(
        &script,
        "\\set id random(1, 1000)\nUPDATE bench_rows SET n = n + 1 WHERE id = :id;\n",
    )
    .unwrap();
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &CONNECTIONS.to_string(),
            "-j",
            &THREADS.to_string(),
        ])
        .args(["-T", &seconds().to_string(), "-f"])
        .arg(&script)
        .arg(url)
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Raw argon2id verifications a second with the server's parameters, one
/// thread per core.
fn argon2_verifies() -> f64 {
    let hasher = Arc::new(password::Argon2Hasher::new(THREADS));
    let password = Password::parse(PASSWORD.to_owned()).unwrap();
    let hash = hasher.hash(&password).unwrap();
    per_second(seconds() as f64, move || {
        assert!(hasher.verify(&password, Some(&hash)).unwrap());
    })
}

/// Everything the same run measures once.
struct References {
    empty: Run,
    sqlite_write: f64,
    argon2_verify: f64,
    ed25519_sign: f64,
    ed25519_verify: f64,
}

#[expect(
    clippy::disallowed_methods,
    reason = "a bare actix server as the reference, not the API"
)]
async fn references(work: &Path) -> References {
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().route("/", actix_web::web::get().to(actix_web::HttpResponse::Ok))
    })
    .workers(THREADS)
    .bind("127.0.0.1:0")
    .unwrap();
    let port = server.addrs()[0].port();
    let running = server.run();
    let handle = running.handle();
    tokio::spawn(running);
    let url = format!("http://127.0.0.1:{port}/");
    let work_owned = work.to_owned();
    let empty =
        tokio::task::spawn_blocking(move || wrk(&url, EMPTY, &[], CONNECTIONS, &work_owned))
            .await
            .unwrap();
    handle.stop(true).await;

    let sqlite_file = work.join("reference.db");
    let sqlite_write = sqlite_row_writes(&sqlite_file);

    let argon2_verify = argon2_verifies();

    let key = SigningKey::from_bytes(&rand::random());
    let message = [7u8; 300];
    let signing = key.clone();
    let ed25519_sign = per_second(1.0, move || {
        std::hint::black_box(signing.sign(&message));
    });
    let verifying = key.verifying_key();
    let signature = key.sign(&message);
    let ed25519_verify = per_second(1.0, move || {
        assert!(verifying.verify(&message, &signature).is_ok());
    });
    References {
        empty,
        sqlite_write,
        argon2_verify,
        ed25519_sign,
        ed25519_verify,
    }
}

/// The figures of one backend.
struct Backend {
    name: &'static str,
    /// Single-row writes per second on this database (the refresh reference).
    row_writes: Option<f64>,
    refresh: Run,
    /// Refresh of DPoP-bound sessions, one fresh ES256 proof each.
    refresh_dpop: Run,
    bearer: Run,
    login: Run,
    mixed: Run,
    /// Raw argon2id verifies a second, the mean of the references
    /// alternated with the rounds of `login`.
    argon2_verify: f64,
    /// Refresh with 10^3 and with `LOAD_SESSIONS` live sessions.
    sessions: Option<(u64, Run, Run)>,
    peak_rss_mib: f64,
}

async fn measure(name: &'static str, db: &TestDatabase, work: &Path) -> Backend {
    let keys = tempfile::tempdir().unwrap();
    let server = Server::start(db.url(), keys.path()).await;
    let mut users: Vec<String> = (0..CONNECTIONS).map(|i| format!("chain{i}")).collect();
    users.extend((0..THREADS).map(|i| format!("login{i}")));
    for user in &users {
        server.register(user).await;
    }
    let wrk_at = |script: &'static str, args: Vec<String>, connections: usize| {
        let url = server.url("/");
        let work = work.to_owned();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            wrk(&url, script, &args, connections, &work)
        })
    };
    let chain_args = |prefix: &Path| vec![prefix.display().to_string()];

    let mut refresh = Run::default();
    if runs("refresh") {
        let prefix = server.chains(work).await;
        refresh = wrk_at(CHAINS, chain_args(&prefix), CONNECTIONS)
            .await
            .unwrap();
        println!("[{name}] refresh: {refresh:?}");
    }

    // Proofs for 1.5 times the unbound run's refreshes (a bound refresh
    // never costs less), signed now so that the run measures the server.
    let mut refresh_dpop = Run::default();
    if runs("dpop") {
        let expected = if runs("refresh") {
            refresh.rate()
        } else {
            10_000.0
        };
        let per_thread = (expected * seconds() as f64 * 1.5 / THREADS as f64) as usize + 1_000;
        let key = ProofKey::new();
        let prefix = server.bound_chains(work, &key, per_thread).await;
        refresh_dpop = wrk_at(CHAINS, chain_args(&prefix), CONNECTIONS)
            .await
            .unwrap();
        println!("[{name}] refresh, DPoP-bound: {refresh_dpop:?}");
    }

    let mut bearer = Run::default();
    if runs("bearer") {
        let (_, access) = server.login("chain0").await;
        bearer = wrk_at(BEARER, vec![access], CONNECTIONS).await.unwrap();
        println!("[{name}] bearer: {bearer:?}");
    }

    let mut login = Run::default();
    let mut argon2_verify = f64::NAN;
    if runs("login") {
        // Alternated with argon2 on the idle server, reference first and
        // last: the speed of a shared machine drifts over seconds, and a
        // reference taken once before the scenario measured the drift as
        // much as the server. Login over all rounds against the mean of
        // the references around them.
        let login_args = vec!["login".to_owned(), PASSWORD.to_owned()];
        let mut references = Vec::new();
        for _ in 0..login_rounds() {
            references.push(tokio::task::spawn_blocking(argon2_verifies).await.unwrap());
            let round = wrk_at(LOGIN, login_args.clone(), LOGIN_CONNECTIONS)
                .await
                .unwrap();
            println!(
                "[{name}] login round: {round:?}, argon2 before: {:.1}/s",
                references[references.len() - 1]
            );
            login = login.and(round);
        }
        references.push(tokio::task::spawn_blocking(argon2_verifies).await.unwrap());
        argon2_verify = references.iter().sum::<f64>() / references.len() as f64;
        println!("[{name}] login: {login:?}, argon2 references: {references:.1?}");
    }

    let mut mixed = Run::default();
    if runs("mixed") {
        let prefix = server.chains(work).await;
        let mut mixed_args = chain_args(&prefix);
        mixed_args.extend([
            MIX_LOGIN.to_string(),
            MIX_REFRESH.to_string(),
            "login".to_owned(),
            PASSWORD.to_owned(),
        ]);
        mixed = wrk_at(CHAINS, mixed_args, CONNECTIONS).await.unwrap();
        println!("[{name}] mixed: {mixed:?}");
    }

    let many: u64 = std::env::var("LOAD_SESSIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let sessions = if many > 1_000 && runs("sessions") {
        // Created and ending in the future: live whatever the idle timeout.
        let end = Timestamp::from_millis(
            i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis(),
            )
            .unwrap()
                + 30 * 86_400_000,
        );
        // Seeding 10^6 rows in one statement takes longer than the
        // server's 3 s statement timeout on PostgreSQL.
        let store = persistence::Database::connect_with(db.url(), 2, Duration::from_secs(600))
            .expect("a seeding connection");
        // The benchmark's own sessions (a few hundred) come on top.
        seed_expired_sessions(&store, 1_000, 1, end);
        let prefix = server.chains(work).await;
        let few = wrk_at(CHAINS, chain_args(&prefix), CONNECTIONS)
            .await
            .unwrap();
        println!("[{name}] refresh with 10^3 sessions: {few:?}");
        let seeding = Instant::now();
        seed_expired_sessions(&store, many - 1_000, 1, end);
        println!(
            "[{name}] seeded {} live sessions in {:.1?}",
            many - 1_000,
            seeding.elapsed()
        );
        let prefix = server.chains(work).await;
        let lots = wrk_at(CHAINS, chain_args(&prefix), CONNECTIONS)
            .await
            .unwrap();
        println!("[{name}] refresh with {many} sessions: {lots:?}");
        Some((many, few, lots))
    } else {
        None
    };
    Backend {
        name,
        row_writes: None,
        refresh,
        refresh_dpop,
        bearer,
        login,
        argon2_verify,
        mixed,
        sessions,
        peak_rss_mib: server.peak_rss_mib(),
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn rate(r: f64) -> String {
    if r >= 100.0 {
        format!("{:.0}", r)
    } else {
        format!("{r:.1}")
    }
}

/// The rate a profile would reach if each kind of request cost what it
/// costs alone: what the mixed figure is compared with.
fn mixed_expectation(b: &Backend) -> f64 {
    let bearer_share = 1.0 - MIX_LOGIN - MIX_REFRESH;
    1.0 / (MIX_LOGIN / b.login.rate()
        + MIX_REFRESH / b.refresh.rate()
        + bearer_share / b.bearer.rate())
}

fn report(refs: &References, backends: &[Backend]) -> String {
    let mut t = String::new();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    writeln!(
        t,
        "Machine: {cores} cores ({cpu}), load average {load} at the end; wrk {THREADS} threads \
         on the same machine, {}s a scenario.\n",
        seconds()
    )
    .unwrap();
    writeln!(
        t,
        "| scenario | backend | req/s | p50 ms | p99 ms | p99.9 ms | errors | reference (same run) | ratio |"
    )
    .unwrap();
    writeln!(t, "|---|---|---|---|---|---|---|---|---|").unwrap();
    let row = |t: &mut String, what: &str, b: &str, r: &Run, reference: String, ratio: f64| {
        // A scenario `LOAD_ONLY` left out has no row.
        if r.requests == 0 && r.duration.is_zero() {
            return;
        }
        writeln!(
            t,
            "| {what} | {b} | {} | {} | {} | {} | {} | {reference} | {:.0} % |",
            rate(r.rate()),
            ms(r.p50_us),
            ms(r.p99_us),
            ms(r.p999_us),
            r.errors,
            ratio * 100.0
        )
        .unwrap();
    };
    for b in backends {
        let (write_name, writes) = match (b.name, b.row_writes) {
            ("SQLite", _) => ("SQLite single-row write tx", refs.sqlite_write),
            (_, Some(w)) => ("pgbench single-row UPDATE", w),
            (_, None) => ("pgbench (not run)", f64::NAN),
        };
        row(
            &mut t,
            "refresh",
            b.name,
            &b.refresh,
            format!("{write_name}: {}/s", rate(writes)),
            b.refresh.rate() / writes,
        );
        row(
            &mut t,
            "refresh",
            b.name,
            &b.refresh,
            format!("Ed25519 signatures: {}/s", rate(refs.ed25519_sign)),
            b.refresh.rate() / refs.ed25519_sign,
        );
        row(
            &mut t,
            "refresh, DPoP-bound (ES256)",
            b.name,
            &b.refresh_dpop,
            format!("refresh, unbound: {}/s", rate(b.refresh.rate())),
            b.refresh_dpop.rate() / b.refresh.rate(),
        );
        row(
            &mut t,
            "Bearer `/api/me`",
            b.name,
            &b.bearer,
            format!("empty actix endpoint: {}/s", rate(refs.empty.rate())),
            b.bearer.rate() / refs.empty.rate(),
        );
        row(
            &mut t,
            "Bearer `/api/me`",
            b.name,
            &b.bearer,
            format!("Ed25519 verifications: {}/s", rate(refs.ed25519_verify)),
            b.bearer.rate() / refs.ed25519_verify,
        );
        row(
            &mut t,
            "login (16 conns)",
            b.name,
            &b.login,
            format!(
                "argon2id verifies alternated with it: {}/s (at the start: {}/s)",
                rate(b.argon2_verify),
                rate(refs.argon2_verify)
            ),
            b.login.rate() / b.argon2_verify,
        );
        let expected = mixed_expectation(b);
        row(
            &mut t,
            "mixed (1/19/80 % login/refresh/Bearer)",
            b.name,
            &b.mixed,
            format!("the three alone, weighted: {}/s", rate(expected)),
            b.mixed.rate() / expected,
        );
        if let Some((many, few, lots)) = &b.sessions {
            row(
                &mut t,
                "refresh, 10^3 sessions",
                b.name,
                few,
                "—".to_owned(),
                1.0,
            );
            row(
                &mut t,
                &format!("refresh, {many} sessions"),
                b.name,
                lots,
                "refresh, 10^3 sessions".to_owned(),
                lots.rate() / few.rate(),
            );
        }
    }
    writeln!(t).unwrap();
    writeln!(
        t,
        "Empty actix endpoint: {}/s, p99 {} ms. Peak RSS of the server process over all its scenarios: {}.",
        rate(refs.empty.rate()),
        ms(refs.empty.p99_us),
        backends
            .iter()
            .map(|b| format!("{} {:.0} MiB", b.name, b.peak_rss_mib))
            .collect::<Vec<_>>()
            .join(", ")
    )
    .unwrap();
    t
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list` and `cargo test --benches` ask for names.
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let refs = if runs("references") {
        references(work.path()).await
    } else {
        References {
            empty: Run::default(),
            sqlite_write: f64::NAN,
            argon2_verify: f64::NAN,
            ed25519_sign: f64::NAN,
            ed25519_verify: f64::NAN,
        }
    };
    println!(
        "references: empty actix {:.0}/s, SQLite row write {:.0}/s, argon2 {:.1}/s, \
         Ed25519 sign {:.0}/s verify {:.0}/s",
        refs.empty.rate(),
        refs.sqlite_write,
        refs.argon2_verify,
        refs.ed25519_sign,
        refs.ed25519_verify
    );
    let mut backends = Vec::new();
    if runs("sqlite") {
        let sqlite = TestDatabase::sqlite();
        backends.push(measure("SQLite", &sqlite, work.path()).await);
    }
    if !runs("postgres") {
        println!("PostgreSQL skipped: not in LOAD_ONLY");
    } else if let Some(pg) = TestDatabase::postgres() {
        let mut b = measure("PostgreSQL", &pg, work.path()).await;
        if runs("references") {
            b.row_writes = pgbench_row_updates(pg.url(), work.path());
        }
        backends.push(b);
    } else {
        println!("PostgreSQL skipped: TEST_DATABASE_URL is not set");
    }
    let table = report(&refs, &backends);
    println!("\n{table}");
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/load-report.md");
    let _ = std::fs::write(target, &table);
}
