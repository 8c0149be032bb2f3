//! The labelled trace (see `integration_tests::trace`) as a command:
//!
//! ```sh
//! cargo run -p integration-tests --bin trace -- [--seed N] [--runs N] [--postgres]
//! ```
//!
//! It starts a real server in this process (SQLite in a temporary file, or
//! a fresh database on `TEST_DATABASE_URL` with `--postgres`), plays every
//! behaviour with and without DPoP, prints the table and the targets, and
//! exits non-zero when a target is missed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use integration_tests::{trace, Backend, TestApp};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let mut seed = 7u64;
    let mut runs = 3usize;
    let mut backend = Backend::Sqlite;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--postgres" => backend = Backend::Postgres,
            other => {
                eprintln!("trace: unknown argument {other} (--seed N, --runs N, --postgres)");
                std::process::exit(2);
            }
        }
    }
    let Some(app) = TestApp::spawn_with(backend, trace::configure).await else {
        eprintln!("trace: --postgres needs TEST_DATABASE_URL");
        std::process::exit(2);
    };
    let rows = trace::run(&app, seed, runs).await;
    println!("seed {seed}, {runs} runs per behaviour, {backend:?}\n");
    print!("{}", trace::report(&rows));
    let missed = trace::targets(&rows).iter().filter(|t| !t.met).count();
    std::process::exit(if missed == 0 { 0 } else { 1 });
}
