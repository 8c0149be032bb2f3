//! Slow clients (API.md "v2 — Abuse limits") against the real binary: the
//! issue's attack, scaled to the CI machine. 2,000 connections that each
//! send a head and one body byte, then nothing, are all closed within the
//! request timeout plus a margin, and `/healthz` answers in under a second
//! throughout. The server is its own process, so its file descriptors are
//! its own; run it on a release build with `TOKENWARDEN_TEST_BIN` (see
//! `support::bin`).

use std::time::{Duration, Instant};

use persistence::testing::TestDatabase;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::serve;

const SLOW: usize = 2_000;
const SLOW_BODY: &str = "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_slow_bodies_are_closed_while_healthz_answers() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let server = serve(
        db.url(),
        keys.path(),
        &[("TOKENWARDEN_REQUEST_TIMEOUT", "3s")],
    )
    .await;
    let started = Instant::now();
    let mut opened = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let mut s = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        s.write_all(SLOW_BODY.as_bytes()).await.unwrap();
        opened.push(s);
    }
    let opening = started.elapsed();
    let health = reqwest::Client::new();
    let health_url = server.url("/healthz");
    let probe = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            let t = Instant::now();
            let r = health.get(&health_url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            worst = worst.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        worst
    });
    let closing: Vec<_> = opened
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let mut sink = Vec::new();
                tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut sink))
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut closed = 0;
    for c in closing {
        closed += usize::from(c.await.unwrap());
    }
    let all_closed = started.elapsed();
    let worst_health = probe.await.unwrap();
    eprintln!(
        "{SLOW} slow bodies: opened in {opening:?}, all closed after {all_closed:?}; \
         slowest /healthz {worst_health:?}"
    );
    assert_eq!(closed, SLOW, "every slow connection is closed");
    assert!(all_closed < Duration::from_secs(30), "{all_closed:?}");
    assert!(worst_health < Duration::from_secs(1), "{worst_health:?}");
}
