//! Running the real `tokenwarden` binary in tests: a command with a clean
//! environment, a free port, and a `serve` process that is killed when the
//! test drops it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: `TOKENWARDEN_TEST_BIN` when set (to measure a
/// release build without building the tests in release:
/// `TOKENWARDEN_TEST_BIN=target/release/tokenwarden`), else the one cargo
/// built with the tests.
pub fn bin() -> String {
    std::env::var("TOKENWARDEN_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_tokenwarden").to_owned())
}

/// `tokenwarden` on `db` and `keys`, with nothing else from the test's
/// environment but `PATH`, logging warnings only.
pub fn tokenwarden(db: &str, keys: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db)
        .env("TOKENWARDEN_KEYS_DIR", keys)
        .env("RUST_LOG", "warn")
        // Every test client is 127.0.0.1 (and Redis outlives a run): tests
        // of these limits set their own.
        .env("TOKENWARDEN_REGISTER_RATE_IP", "100000/min")
        .env("TOKENWARDEN_REFRESH_FAIL_RATE_IP", "100000/min");
    c
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tokenwarden serve` process, killed if the test leaves it running.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Runs `cmd serve` (or `cmd` if it already names `serve`, with flags
/// after it) on `port` and waits until it answers `/healthz`.
pub async fn start(mut cmd: Command, port: u16) -> Server {
    if !cmd.get_args().any(|a| a == "serve") {
        cmd.arg("serve");
    }
    cmd.env("TOKENWARDEN_BIND", format!("127.0.0.1:{port}"));
    let server = Server {
        child: cmd.spawn().unwrap(),
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(server.url("/healthz")).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server on port {} did not start", server.port);
}

/// `tokenwarden serve` on `db` and `keys` with the settings `env`, its
/// output discarded.
pub async fn serve(db: &str, keys: &Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = tokenwarden(db, keys);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    start(cmd, free_port()).await
}
