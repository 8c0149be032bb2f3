//! What request instrumentation and `/metrics` cost, as a load test of the
//! real server: refresh throughput over HTTP (SQLite file, WAL, body
//! delivery, four concurrent clients each rotating its own session) of two
//! servers in this process, one built without instrumentation and one with
//! it (request ids, spans, one JSON log line per request at `info` written
//! to a sink, HTTP and store metrics) while `/metrics` is scraped every
//! second.
//!
//! The two are measured in alternating rounds (the order flips every
//! round) and compared by medians, so that other load on the machine hits
//! both alike. `BENCH_ROUNDS` (default 30) and `BENCH_REFRESHES` (per round
//! and server, default 400) size the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use server::startup::BuildOptions;
use server::{Application, Config};
use tokio::sync::Mutex;

const CLIENTS: usize = 4;

struct Target {
    base: String,
    client: reqwest::Client,
    /// The current refresh token of each client's session.
    tokens: Vec<Arc<Mutex<String>>>,
    _dir: tempfile::TempDir,
}

async fn start(instrument: bool) -> Target {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("bench.db").display());
    let mut config = Config::with_defaults(db, dir.path().join("keys"));
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.login_rate_ip.count = 1_000;
    let options = BuildOptions {
        instrument,
        signals: false,
    };
    let app = Application::build_with(config, options).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let credentials = json!({"username": "bench", "password": "bench password"});
    client
        .post(format!("{base}/auth/register"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for _ in 0..CLIENTS {
        let body: Value = client
            .post(format!("{base}/auth/login"))
            .json(&json!({"username": "bench", "password": "bench password", "token_delivery": "body"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(Arc::new(Mutex::new(
            body["refresh_token"].as_str().unwrap().to_owned(),
        )));
    }
    Target {
        base,
        client,
        tokens,
        _dir: dir,
    }
}

async fn refresh(client: &reqwest::Client, url: &str, token: &Mutex<String>) {
    let mut token = token.lock().await;
    let body: Value = client
        .post(url)
        .json(&json!({"refresh_token": *token}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    *token = body["refresh_token"]
        .as_str()
        .expect("a successor token")
        .to_owned();
}

/// Wall time per refresh, with `total` refreshes spread over the clients.
async fn round(target: &Target, total: usize) -> Duration {
    let url = format!("{}/auth/refresh", target.base);
    let per_client = total.div_ceil(CLIENTS);
    let started = Instant::now();
    let tasks: Vec<_> = target
        .tokens
        .iter()
        .map(|token| {
            let (client, url, token) = (target.client.clone(), url.clone(), Arc::clone(token));
            tokio::spawn(async move {
                for _ in 0..per_client {
                    refresh(&client, &url, &token).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed() / u32::try_from(per_client * CLIENTS).unwrap()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that excludes this file
    // (e.g. `cargo bench -p server --bench refresh`) never builds it.
    tracing_subscriber::fmt()
        .json()
        .with_env_filter("info")
        .with_writer(std::io::sink)
        .init();
    let rounds = env_number("BENCH_ROUNDS", 30);
    let refreshes = env_number("BENCH_REFRESHES", 400);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let bare = start(false).await;
        let instrumented = start(true).await;
        let scrape_url = format!("{}/metrics", instrumented.base);
        let scraper = tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let r = client.get(&scrape_url).send().await.unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        // Warm-up: connections, page cache, SQLite WAL.
        round(&bare, refreshes).await;
        round(&instrumented, refreshes).await;

        let (mut b, mut i, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..rounds {
            let (tb, ti) = if r % 2 == 0 {
                let tb = round(&bare, refreshes).await;
                (tb, round(&instrumented, refreshes).await)
            } else {
                let ti = round(&instrumented, refreshes).await;
                (round(&bare, refreshes).await, ti)
            };
            let (tb, ti) = (tb.as_secs_f64() * 1e6, ti.as_secs_f64() * 1e6);
            b.push(tb);
            i.push(ti);
            ratios.push(ti / tb);
        }
        scraper.abort();
        let (mb, mi, mr) = (median(&mut b), median(&mut i), median(&mut ratios));
        println!("http_refresh ({rounds} rounds x {refreshes} refreshes, {CLIENTS} clients)");
        println!(
            "  bare:         {mb:8.1} µs/refresh  {:8.0} refreshes/s",
            1e6 / mb
        );
        println!(
            "  instrumented: {mi:8.1} µs/refresh  {:8.0} refreshes/s",
            1e6 / mi
        );
        println!(
            "  cost of instrumentation (median of per-round ratios): {:+.1}%",
            (mr - 1.0) * 100.0
        );
    });
}
