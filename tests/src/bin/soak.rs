//! The soak run (issue "Bad days", item 9): mixed login, refresh, reuse,
//! logout and API traffic against a real `tokenwarden serve` process on
//! PostgreSQL and Redis, with the cleanup job running every few seconds.
//!
//! ```sh
//! cargo build --release -p server --bin tokenwarden
//! cargo run --release -p integration-tests --bin soak -- --minutes 30
//! ```
//!
//! Needs `TEST_DATABASE_URL` (a fresh database is made and dropped) and
//! `TEST_REDIS_URL` (used under a key prefix of its own; nothing else in it
//! is touched). The server is the `tokenwarden` beside this binary (same
//! profile) unless `--server PATH` says otherwise; its log goes to
//! `--server-log PATH` (default `target/soak-server.log`).
//!
//! It measures the server's resident memory (`VmRSS` of
//! `/proc/<pid>/status`) after the warm-up (a sixth of the run, between 30 s
//! and 5 min) and at the end, counts the refresh audit rows in the database
//! against the refresh requests sent, and prints a verdict: it exits
//! non-zero when RSS grew by more than 10 %, when the counts differ, when
//! an answer was missing, unexpected or a 5xx other than a 503 (load shed,
//! nothing spent: at most `--max-shed` percent of requests, for a busy
//! machine), when the server logged an error or did not exit 0 on SIGTERM.
//! It also says how many cleanup passes removed rows (sessions live 2 min,
//! access tokens 1 min).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::soak::{client_loop, is_failure, is_shed, register, Tally, REFRESH_KINDS};
use persistence::testing::TestDatabase;

struct Args {
    minutes: f64,
    rate: f64,
    clients: usize,
    /// Percent of requests that may be shed (503) on a busy machine.
    max_shed: f64,
    server: PathBuf,
    server_log: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "soak [--minutes N (30)] [--rate REQ_PER_S (120)] [--clients N (32)] \
         [--max-shed PERCENT (1)] [--server PATH] [--server-log PATH]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("tokenwarden")))
        .unwrap_or_else(|| PathBuf::from("tokenwarden"));
    let mut args = Args {
        minutes: 30.0,
        rate: 120.0,
        clients: 32,
        max_shed: 1.0,
        server: beside,
        server_log: PathBuf::from("target/soak-server.log"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--minutes" => args.minutes = value.parse().unwrap_or_else(|_| usage()),
            "--rate" => args.rate = value.parse().unwrap_or_else(|_| usage()),
            "--max-shed" => args.max_shed = value.parse().unwrap_or_else(|_| usage()),
            "--clients" => args.clients = value.parse().unwrap_or_else(|_| usage()),
            "--server" => args.server = PathBuf::from(value),
            "--server-log" => args.server_log = PathBuf::from(value),
            _ => usage(),
        }
    }
    if !(args.minutes > 0.0 && args.rate > 0.0 && args.clients > 0) {
        usage();
    }
    args
}

/// The server's resident memory in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `tokenwarden serve` on `db`, with short lifetimes and a cleanup pass
/// every 5 s, so that cleanup has work all along.
fn serve(
    args: &Args,
    db: &str,
    redis: &str,
    keys: &std::path::Path,
    port: u16,
) -> std::io::Result<Child> {
    if let Some(dir) = args
        .server_log
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)?;
    }
    let log = std::fs::File::create(&args.server_log)?;
    Command::new(&args.server)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn,server::cleanup=info")
        .env("TOKENWARDEN_LOG_FORMAT", "json")
        .env("DATABASE_URL", db)
        .env("REDIS_URL", redis)
        .env(
            "TOKENWARDEN_REDIS_KEY_PREFIX",
            format!("tw:soak:{}:", std::process::id()),
        )
        .env("TOKENWARDEN_KEYS_DIR", keys)
        .env("TOKENWARDEN_BIND", format!("127.0.0.1:{port}"))
        .env("TOKENWARDEN_CLEANUP_INTERVAL", "5s")
        .env("TOKENWARDEN_ACCESS_TOKEN_TTL", "60s")
        .env("TOKENWARDEN_SESSION_MAX_LIFETIME", "120s")
        .env("TOKENWARDEN_TRUSTED_PROXIES", "127.0.0.1/32")
        .env("TOKENWARDEN_LOGIN_RATE_USER", "100000/min")
        .env("TOKENWARDEN_LOGIN_RATE_IP", "1000000/min")
        .env("TOKENWARDEN_REGISTER_RATE_IP", "100000/min")
        .env("TOKENWARDEN_REFRESH_FAIL_RATE_IP", "1000000/min")
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

async fn wait_until_healthy(http: &reqwest::Client, base: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("soak: the server did not become ready within 60 s");
    false
}

/// Refresh audit requests per outcome, from the database.
async fn audited(url: &str) -> BTreeMap<String, u64> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        persistence::Database::connect(&url, 1)
            .expect("the soak database")
            .refresh_audit_requests()
            .expect("audit counts")
    })
    .await
    .expect("audit count task")
}

/// The server process, killed if the run ends before it is stopped.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let code = run(parse_args()).await;
    std::process::exit(code);
}

/// The whole run; the exit code. Returns (rather than exits) so that the
/// server is stopped and the database dropped whatever happens.
async fn run(args: Args) -> i32 {
    let Ok(redis) = std::env::var("TEST_REDIS_URL") else {
        eprintln!("soak: needs TEST_REDIS_URL (e.g. redis://127.0.0.1:6379)");
        return 2;
    };
    let Some(database) = TestDatabase::postgres() else {
        eprintln!("soak: needs TEST_DATABASE_URL");
        return 2;
    };
    let keys = tempfile::tempdir().expect("a key directory");
    let port = free_port();
    let mut server = match serve(&args, database.url(), &redis, keys.path(), port) {
        Ok(child) => ServerProcess(child),
        Err(e) => {
            eprintln!(
                "soak: cannot run {} with its log in {} ({e}); build it first: \
                 cargo build [--release] -p server --bin tokenwarden",
                args.server.display(),
                args.server_log.display()
            );
            return 2;
        }
    };
    let pid = server.0.id();
    let base = format!("http://127.0.0.1:{port}");
    // Idle connections are given up well before the server's keep-alive
    // (30 s) closes them: otherwise a request sent on a connection at the
    // moment the server closes it is lost in transit (the HTTP/1.1
    // keep-alive race; 2 of 210,587 requests in one 30-minute run), which
    // is the client's doing, not the server's.
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    if !wait_until_healthy(&http, &base).await {
        return 1;
    }

    let run = Duration::from_secs_f64(args.minutes * 60.0);
    let warmup = (run / 6).clamp(Duration::from_secs(30), Duration::from_secs(300));
    let period = Duration::from_secs_f64(args.clients as f64 / args.rate);
    println!(
        "soak: {} for {:.1} min, {} clients, target {:.0} req/s, warm-up {} s, server pid {pid}, log {}",
        args.server.display(),
        args.minutes,
        args.clients,
        args.rate,
        warmup.as_secs(),
        args.server_log.display()
    );
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..args.clients {
        if !register(&http, &base, &format!("soak{i}")).await {
            eprintln!("soak: registering soak{i} failed");
            return 1;
        }
    }
    for i in 0..args.clients {
        clients.push(tokio::spawn(client_loop(
            http.clone(),
            base.clone(),
            format!("soak{i}"),
            period,
            0x50a_u64 + i as u64,
            Arc::clone(&tally),
            Arc::clone(&stop),
        )));
    }

    let started = Instant::now();
    let mut after_warmup = None;
    let mut sent_before = 0u64;
    let mut last_report = Instant::now();
    while started.elapsed() < run {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if after_warmup.is_none() && started.elapsed() >= warmup {
            after_warmup = rss_kib(pid);
            println!("soak: RSS after warm-up: {} KiB", after_warmup.unwrap_or(0));
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            let sent: u64 = tally.snapshot().values().sum();
            println!(
                "soak: {:>5} s, {:.0} req/s, RSS {} KiB",
                started.elapsed().as_secs(),
                (sent - sent_before) as f64 / last_report.elapsed().as_secs_f64(),
                rss_kib(pid).unwrap_or(0)
            );
            sent_before = sent;
            last_report = Instant::now();
        }
        if let Ok(Some(status)) = server.0.try_wait() {
            eprintln!("soak: the server exited during the run ({status})");
            return 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let at_end = rss_kib(pid);
    let elapsed = started.elapsed();

    let answers = tally.snapshot();
    let sent: u64 = answers.values().sum();
    let refreshes: u64 = answers
        .iter()
        .filter(|(k, _)| {
            REFRESH_KINDS
                .iter()
                .any(|kind| k.starts_with(&format!("{kind} ")))
        })
        .map(|(_, n)| n)
        .sum();
    // Throttled refreshes reach their rows within a second; none expected.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let audit = audited(database.url()).await;
    let rows: u64 = audit.values().sum();

    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exit = server.0.wait().map(|s| s.code());

    println!(
        "\nsoak: answers ({sent} requests in {:.0} s, {:.0} req/s):",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    for (what, n) in &answers {
        let mark = match (is_failure(what), is_shed(what)) {
            (true, _) => "  <- unexpected",
            (_, true) => "  <- shed (busy machine)",
            _ => "",
        };
        println!("  {what:<32} {n:>8}{mark}");
    }
    println!("soak: refresh audit rows (requests) per outcome:");
    for (outcome, n) in &audit {
        println!("  {outcome:<32} {n:>8}");
    }
    let log = std::fs::read_to_string(&args.server_log).unwrap_or_default();
    let cleanups = log.matches("cleanup removed expired rows").count();
    // A shed request is logged as an error too (its cause: the deadline).
    let errors = log
        .lines()
        .filter(|l| l.contains(r#""level":"ERROR""#) && !l.contains("deadline"))
        .count();
    println!("soak: cleanup passes that removed rows: {cleanups}; server log errors: {errors}");
    let failures: u64 = answers
        .iter()
        .filter(|(k, _)| is_failure(k))
        .map(|(_, n)| n)
        .sum();
    let shed: u64 = answers
        .iter()
        .filter(|(k, _)| is_shed(k))
        .map(|(_, n)| n)
        .sum();
    let (warm, end) = (after_warmup.unwrap_or(0), at_end.unwrap_or(u64::MAX));
    let growth = (end as f64 - warm as f64) / warm.max(1) as f64 * 100.0;
    let checks = [
        (
            format!(
                "RSS {warm} KiB after warm-up, {end} KiB at the end ({growth:+.1} %), within 10 %"
            ),
            warm > 0 && growth <= 10.0,
        ),
        (
            format!("refresh audit requests {rows} = refresh requests sent {refreshes}"),
            rows == refreshes,
        ),
        (format!("unexpected answers: {failures}"), failures == 0),
        (
            format!("errors in the server log (besides shed requests): {errors}"),
            errors == 0,
        ),
        (
            format!(
                "503 answers (load shed, nothing spent): {shed}, at most {} % of requests",
                args.max_shed
            ),
            shed as f64 <= sent as f64 * args.max_shed / 100.0,
        ),
        (
            format!("server exit on SIGTERM: {exit:?}"),
            matches!(exit, Ok(Some(0))),
        ),
    ];
    let mut ok = true;
    for (what, passed) in &checks {
        println!("{} {what}", if *passed { "PASS" } else { "FAIL" });
        ok &= passed;
    }
    println!("soak verdict: {}", if ok { "PASS" } else { "FAIL" });
    if ok {
        0
    } else {
        1
    }
}
