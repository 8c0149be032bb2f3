//! What request instrumentation and `/metrics` cost, as a load test of the
//! real server: refresh throughput over HTTP (SQLite file, WAL, body
//! delivery, four concurrent clients each rotating its own session) of two
//! servers in this process, one built without instrumentation and one with
//! it (request ids, spans, one JSON log line per request at `info` written
//! to a sink, HTTP and store metrics) while `/metrics` is scraped every
//! second.
//!
//! A second bare server is the control. The three are measured in rounds
//! (the order rotates every round) and compared by medians of per-round
//! ratios, so that other load on the machine hits them alike; the control's
//! ratio shows how much of a difference is noise. `BENCH_ROUNDS` (default 60) and `BENCH_REFRESHES` (per round
//! and server, default 200) size the run; `BENCH_LOG` is the log filter
//! (default `info`); `BENCH_SKIP_ALONE=1` skips the middleware-alone part
//! (for profiling the load test with `perf record`).
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
        ..BuildOptions::default()
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

/// CPU time this process has used (all threads, live or ended), in
/// seconds, from `/proc/self/stat` (clock ticks of 10 ms: summed over many
/// rounds, the rounding evens out). `None` where there is no procfs.
fn process_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
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

/// The middleware alone: requests through an in-process app whose handler
/// does nothing but record the caller (as login and refresh do), with and
/// without it. CPU-bound and short, so far less noisy than the load test.
#[expect(
    clippy::disallowed_methods,
    reason = "a stand-in app for the middleware, not the API"
)]
fn middleware_alone() -> (f64, f64) {
    use actix_web::middleware::{from_fn, Condition};
    use actix_web::{test, web as actix, App, HttpResponse};
    async fn handler() -> HttpResponse {
        web::middleware::record_principal(
            "9cd9f878-ac65-40fd-994d-780db9bbb7a9",
            "b686400c-c777-469d-8ea9-a581eb224b02",
        );
        HttpResponse::Ok().body("{}")
    }
    actix_web::rt::System::new().block_on(async {
        let mut results = [Vec::new(), Vec::new()];
        for round in 0..10 {
            for on in [round % 2 == 0, round % 2 == 1] {
                let app = test::init_service(
                    App::new()
                        .wrap(Condition::new(on, from_fn(web::middleware::instrument)))
                        .service(
                            actix::scope("/auth").route("/refresh", actix::post().to(handler)),
                        ),
                )
                .await;
                let n = 20_000;
                let started = Instant::now();
                for _ in 0..n {
                    let req = test::TestRequest::post().uri("/auth/refresh").to_request();
                    std::hint::black_box(test::call_service(&app, req).await);
                }
                results[usize::from(on)].push(started.elapsed().as_secs_f64() * 1e6 / f64::from(n));
            }
        }
        let [mut off, mut on] = results;
        (median(&mut off), median(&mut on))
    })
}

fn main() {
    server::telemetry::init_with_writer(
        &std::env::var("BENCH_LOG").unwrap_or_else(|_| "info".to_owned()),
        server::config::LogFormat::Json,
        std::io::sink,
    );
    if std::env::var_os("BENCH_SKIP_ALONE").is_none() {
        let (off, on) = middleware_alone();
        println!("middleware alone (in-process app, trivial handler)");
        println!(
            "  without: {off:6.2} µs/request   with: {on:6.2} µs/request   cost: {:.2} µs/request",
            on - off
        );
    }
    let rounds = env_number("BENCH_ROUNDS", 60);
    let refreshes = env_number("BENCH_REFRESHES", 200);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Two bare servers: their difference shows the noise floor.
        let targets = [start(false).await, start(true).await, start(false).await];
        let (bare_a, instr, bare_b) = (0, 1, 2);
        let scrape_url = format!("{}/metrics", targets[instr].base);
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
        for t in &targets {
            round(t, refreshes).await;
        }
        let mut times: [Vec<f64>; 3] = Default::default();
        let mut cpu = [0.0_f64; 3];
        let (mut cost, mut noise) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            let mut this = [0.0; 3];
            for k in 0..3 {
                let which = (r + k) % 3;
                let before = process_cpu().unwrap_or(0.0);
                this[which] = round(&targets[which], refreshes).await.as_secs_f64() * 1e6;
                cpu[which] += process_cpu().unwrap_or(0.0) - before;
            }
            for (all, t) in times.iter_mut().zip(this) {
                all.push(t);
            }
            noise.push(this[bare_b] / this[bare_a]);
            cost.push(this[instr] / this[bare_a]);
        }
        scraper.abort();
        let medians = times.map(|mut t| median(&mut t));
        let (bare, control, instrumented) = (medians[bare_a], medians[bare_b], medians[instr]);
        let total = (rounds * refreshes) as f64;
        let cpu = cpu.map(|c| c * 1e6 / total);
        println!(
            "http_refresh ({rounds} rounds x {refreshes} refreshes per server, {CLIENTS} clients)"
        );
        println!("  server         wall µs/refresh  refreshes/s  CPU µs/refresh (client + server)");
        for (k, name, us) in [
            (bare_a, "bare", bare),
            (bare_b, "bare again", control),
            (instr, "instrumented", instrumented),
        ] {
            println!("  {name:<13} {us:16.1} {:12.0} {:16.1}", 1e6 / us, cpu[k]);
        }
        println!(
            "  CPU per refresh, instrumented vs bare: {:+.1}% (bare again vs bare: {:+.1}%)",
            (cpu[instr] / cpu[bare_a] - 1.0) * 100.0,
            (cpu[bare_b] / cpu[bare_a] - 1.0) * 100.0
        );
        println!(
            "  wall time, instrumented vs bare (median of per-round ratios): {:+.1}%",
            (median(&mut cost) - 1.0) * 100.0
        );
        println!(
            "  wall time, bare again vs bare (the noise floor):                {:+.1}%",
            (median(&mut noise) - 1.0) * 100.0
        );
    });
}
