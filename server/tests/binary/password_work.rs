//! Password work is bounded (API.md "v2 — Abuse limits"): a burst of
//! logins and registrations against the real binary, its memory and
//! threads read from `/proc/<pid>/status` while it runs; a full queue
//! answers 503 with `Retry-After` at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use persistence::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{serve, Server};

const PASSWORD: &str = "correct horse battery";
const BURST: usize = 200;
/// The contract's targets (issue 11): peak RSS and threads during the
/// burst, RSS within 10 s after it.
const PEAK_RSS_MIB: u64 = 150;
const MAX_THREADS: u64 = 64;
const SETTLED_RSS_MIB: u64 = 80;

/// `VmRSS`, `VmHWM` (KiB) and `Threads` of a process.
#[derive(Debug, Clone, Copy, Default)]
struct Status {
    rss_kib: u64,
    hwm_kib: u64,
    threads: u64,
}

fn status(pid: u32) -> Status {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read the status of process {pid}: {e}"));
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Status {
        rss_kib: field("VmRSS:"),
        hwm_kib: field("VmHWM:"),
        threads: field("Threads:"),
    }
}

/// `VmRSS` less the pages of the executable file itself (KiB). A debug
/// build's code alone is over 20 MiB resident, a release build's a few: the
/// figure that does not depend on the build is what the process allocated
/// (heap, argon2 workspaces, stacks) plus the shared libraries.
fn settled_rss_kib(pid: u32) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .unwrap_or_else(|e| panic!("cannot read the mappings of process {pid}: {e}"));
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let exe = exe.to_string_lossy();
    let mut in_exe = false;
    let mut exe_kib = 0;
    for line in smaps.lines() {
        // Mapping lines start with the address range; field lines with a
        // capitalised name.
        if line.starts_with(|c: char| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
            in_exe = line.ends_with(exe.as_ref());
        } else if let Some(rss) = line.strip_prefix("Rss:").filter(|_| in_exe) {
            exe_kib += rss
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    status(pid).rss_kib.saturating_sub(exe_kib)
}

/// Samples `pid` every 10 ms until `stop`; the largest RSS and thread
/// count seen.
fn watch(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Status> {
    std::thread::spawn(move || {
        let mut peak = Status::default();
        while !stop.load(Ordering::SeqCst) {
            let now = status(pid);
            peak.rss_kib = peak.rss_kib.max(now.rss_kib);
            peak.threads = peak.threads.max(now.threads);
            std::thread::sleep(Duration::from_millis(10));
        }
        peak
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

async fn post(
    client: &reqwest::Client,
    server: &Server,
    path: &str,
    user: &str,
) -> reqwest::Response {
    client
        .post(server.url(path))
        .json(&json!({"username": user, "password": PASSWORD, "token_delivery": "body"}))
        .send()
        .await
        .unwrap()
}

/// Settings that let a burst from 127.0.0.1 through the abuse limits.
const OPEN_LIMITS: [(&str, &str); 2] = [
    ("TOKENWARDEN_LOGIN_RATE_USER", "100000/min"),
    ("TOKENWARDEN_LOGIN_RATE_IP", "100000/min"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_logins_and_registrations_keeps_memory_and_threads_bounded() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    // Room for the whole burst in the queue, and time for it: every request
    // is served, so the figures are those of 400 hashes, not of 503s.
    let mut env = OPEN_LIMITS.to_vec();
    env.extend([
        ("TOKENWARDEN_HASH_QUEUE", "1000"),
        ("TOKENWARDEN_DEPENDENCY_TIMEOUT", "120s"),
    ]);
    let server = serve(db.url(), keys.path(), &env).await;
    let pid = server.child.id();
    let client = client();
    for i in 0..BURST {
        // Sequential, before the measurement: the users who log in.
        let r = post(&client, &server, "/auth/register", &format!("known{i}")).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        if i == 0 {
            eprintln!("after the first registration: {:?}", status(pid));
        }
    }
    let before = status(pid);
    eprintln!("before the burst: {before:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch(pid, Arc::clone(&stop));
    let started = Instant::now();
    let logins = (0..BURST).map(|i| {
        let (client, server) = (&client, &server);
        async move {
            post(client, server, "/auth/login", &format!("known{i}"))
                .await
                .status()
        }
    });
    let registrations = (0..BURST).map(|i| {
        let (client, server) = (&client, &server);
        async move {
            post(client, server, "/auth/register", &format!("new{i}"))
                .await
                .status()
        }
    });
    let (logins, registrations) = tokio::join!(join_all(logins), join_all(registrations));
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let peak = watcher.join().unwrap();

    assert!(logins.iter().all(|s| *s == StatusCode::OK), "{logins:?}");
    assert!(
        registrations.iter().all(|s| *s == StatusCode::CREATED),
        "{registrations:?}"
    );
    // The clients go away (their keep-alive connections close).
    drop(client);
    let hwm_mib = status(pid).hwm_kib / 1024;
    let settle_start = Instant::now();
    let mut settled = settled_rss_kib(pid);
    while settled / 1024 >= SETTLED_RSS_MIB && settle_start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        settled = settled_rss_kib(pid);
    }
    eprintln!(
        "{BURST} logins + {BURST} registrations in {took:?}: peak RSS {} MiB (VmHWM {hwm_mib} MiB), \
         peak threads {}, RSS {} MiB (without the executable's code) {:?} after",
        peak.rss_kib / 1024,
        peak.threads,
        settled / 1024,
        settle_start.elapsed(),
    );
    assert!(hwm_mib < PEAK_RSS_MIB, "peak RSS {hwm_mib} MiB");
    assert!(peak.threads < MAX_THREADS, "peak threads {}", peak.threads);
    assert!(
        settled / 1024 < SETTLED_RSS_MIB,
        "RSS {} MiB 10 s after the burst",
        settled / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_finding_the_password_queue_full_gets_503_with_retry_after_at_once() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let mut env = OPEN_LIMITS.to_vec();
    env.extend([
        ("TOKENWARDEN_HASH_QUEUE", "4"),
        ("TOKENWARDEN_DEPENDENCY_TIMEOUT", "60s"),
    ]);
    let server = serve(db.url(), keys.path(), &env).await;
    let client = client();
    assert_eq!(
        post(&client, &server, "/auth/register", "someone")
            .await
            .status(),
        StatusCode::CREATED
    );

    let slowest_refusal_ms = AtomicU64::new(0);
    let slowest_served_ms = AtomicU64::new(0);
    let started = Instant::now();
    let burst = (0..64).map(|i| {
        let (client, server) = (&client, &server);
        let (slowest, slowest_served) = (&slowest_refusal_ms, &slowest_served_ms);
        async move {
            let path = if i % 2 == 0 {
                "/auth/login"
            } else {
                "/auth/register"
            };
            let user = if i % 2 == 0 {
                "someone".to_owned()
            } else {
                format!("user{i}")
            };
            let sent = Instant::now();
            let r = post(client, server, path, &user).await;
            let status = r.status();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                slowest.fetch_max(
                    u64::try_from(sent.elapsed().as_millis()).unwrap(),
                    Ordering::SeqCst,
                );
                let retry_after = r.headers().get("retry-after").cloned();
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["code"], "service_unavailable", "{body}");
                let secs: u64 = retry_after
                    .expect("Retry-After on the 503")
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(secs >= 1);
            } else {
                slowest_served.fetch_max(
                    u64::try_from(sent.elapsed().as_millis()).unwrap(),
                    Ordering::SeqCst,
                );
            }
            status
        }
    });
    let statuses = join_all(burst).await;
    let took = started.elapsed();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let served = statuses
        .iter()
        .filter(|s| matches!(**s, StatusCode::OK | StatusCode::CREATED))
        .count();
    let slowest = slowest_refusal_ms.load(Ordering::SeqCst);
    let slowest_served = slowest_served_ms.load(Ordering::SeqCst);
    eprintln!(
        "64 at once, queue 4: {served} served (slowest {slowest_served} ms), \
         {refused} refused (slowest {slowest} ms), all in {took:?}"
    );
    assert_eq!(served + refused, 64, "{statuses:?}");
    assert!(refused > 0, "a queue of 4 cannot hold 64 requests");
    assert!(served >= 4, "the queue's own requests are served");
    // "At once": a refusal does not wait for password work, as the last
    // request served had to (behind the others' argon2 computations).
    assert!(
        slowest < slowest_served,
        "slowest refusal {slowest} ms, slowest served {slowest_served} ms"
    );

    // The queue empties: the next request is served.
    assert_eq!(
        post(&client, &server, "/auth/login", "someone")
            .await
            .status(),
        StatusCode::OK
    );
}

/// A login refused 503 because no password worker was free never had its
/// password checked: it is no failed login, and does not count against the
/// username's budget (`TOKENWARDEN_LOGIN_RATE_USER`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_refused_for_want_of_a_password_worker_is_no_failed_login() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let env = [
        ("TOKENWARDEN_LOGIN_RATE_USER", "3/min"),
        ("TOKENWARDEN_LOGIN_RATE_IP", "100000/min"),
        ("TOKENWARDEN_REGISTER_RATE_IP", "100000/hour"),
        ("TOKENWARDEN_HASH_QUEUE", "1"),
        ("TOKENWARDEN_DEPENDENCY_TIMEOUT", "60s"),
    ];
    let server = serve(db.url(), keys.path(), &env).await;
    let client = client();
    assert_eq!(
        post(&client, &server, "/auth/register", "alice")
            .await
            .status(),
        StatusCode::CREATED
    );

    // Registrations, 32 at a time, keep the workers and the queue of one
    // busy while alice logs in, one login after the other.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = (0..32).map(|i| {
        let (client, server, stop) = (&client, &server, Arc::clone(&stop));
        async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                post(client, server, "/auth/register", &format!("u{i}x{n}")).await;
                n += 1;
            }
        }
    });
    let alice = async {
        let mut statuses = Vec::new();
        for _ in 0..12 {
            statuses.push(
                post(&client, &server, "/auth/login", "alice")
                    .await
                    .status(),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::SeqCst);
        statuses
    };
    let (statuses, _) = tokio::join!(alice, join_all(flood));
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    eprintln!("alice's logins during the flood: {statuses:?}");
    assert!(refused >= 4, "the queue was full for alice: {statuses:?}");
    assert!(
        !statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "a 503 is no failed login: {statuses:?}"
    );
    assert_eq!(
        post(&client, &server, "/auth/login", "alice")
            .await
            .status(),
        StatusCode::OK
    );
}

/// Logins per second of the server against argon2 verifies per second on
/// the same cores, measured one after the other in this run. Timing on a
/// shared machine: not part of the default run.
///
/// ```sh
/// cargo test --release -p server --test binary password_work::login_throughput -- --ignored --nocapture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run it alone on a quiet machine"]
async fn login_throughput_is_at_least_90_percent_of_raw_argon2() {
    use application::ports::PasswordHasher as _;

    const SECONDS: u64 = 5;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    // Raw: one thread per core verifying with the server's parameters.
    let hasher = Arc::new(password::Argon2Hasher::new(cores));
    let password = domain::Password::parse(PASSWORD.to_owned()).unwrap();
    let hash = hasher.hash(&password).unwrap();
    let verified = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(SECONDS);
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            let (hasher, password, hash, verified) = (
                Arc::clone(&hasher),
                password.clone(),
                hash.clone(),
                Arc::clone(&verified),
            );
            std::thread::spawn(move || {
                while Instant::now() < until {
                    assert!(hasher.verify(&password, Some(&hash)).unwrap());
                    verified.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(hasher);
    let raw = verified.load(Ordering::Relaxed) as f64 / SECONDS as f64;

    // The server: 16 clients logging in back to back.
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let server = serve(db.url(), keys.path(), &OPEN_LIMITS).await;
    let client = client();
    for i in 0..16 {
        post(&client, &server, "/auth/register", &format!("bench{i}")).await;
    }
    let logged_in = AtomicU64::new(0);
    let until = Instant::now() + Duration::from_secs(SECONDS);
    let loops = (0..16).map(|i| {
        let (client, server, logged_in) = (&client, &server, &logged_in);
        async move {
            while Instant::now() < until {
                let r = post(client, server, "/auth/login", &format!("bench{i}")).await;
                if r.status() == StatusCode::OK {
                    logged_in.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    join_all(loops).await;
    let logins = logged_in.load(Ordering::Relaxed) as f64 / SECONDS as f64;
    let ratio = logins / raw;
    eprintln!(
        "{cores} cores: argon2 verifies {raw:.1}/s, logins {logins:.1}/s, ratio {:.0} %",
        ratio * 100.0
    );
    assert!(
        ratio >= 0.9,
        "logins reach {:.0} % of raw argon2",
        ratio * 100.0
    );
}
