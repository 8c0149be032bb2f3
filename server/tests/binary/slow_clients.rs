//! Slow clients (API.md "v2 — Abuse limits") against the real binary: the
//! issue's attack, scaled to the CI machine. 2,000 connections that each
//! send a head and one body byte, then nothing, and 2,000 that dribble a
//! chunked body forever, are all closed within the request timeout plus a
//! margin, and `/healthz` answers in under a second throughout. One deadline
//! holds a whole request, head and body, chunked or not, on a fresh or a
//! kept-alive connection: raw sockets show when the 408 comes and the
//! connection closes. The server is its own process, so its file
//! descriptors are its own; run it on a release build with
//! `TOKENWARDEN_TEST_BIN` (see `support::bin`).

use std::time::{Duration, Instant};

use persistence::testing::TestDatabase;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{serve, Server};

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

/// The request timeout of the tests below but the 2,000-body one, and how
/// much later than it a connection may close (a debug build on a busy CI
/// machine).
const TIMEOUT: Duration = Duration::from_secs(2);
const MARGIN: Duration = Duration::from_secs(2);

const CHUNKED_LOGIN: &str = "POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
const CHUNK: &str = "1\r\n{\r\n";
const HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

async fn server_with_timeout(db: &TestDatabase, keys: &std::path::Path, timeout: &str) -> Server {
    serve(db.url(), keys, &[("TOKENWARDEN_REQUEST_TIMEOUT", timeout)]).await
}

/// Reads until the server closes the connection (or `limit` passes): what
/// it sent, and when it closed, from `since` (`None`: still open).
async fn until_closed<R: tokio::io::AsyncRead + Unpin>(
    read: &mut R,
    since: Instant,
    limit: Duration,
) -> (String, Option<Duration>) {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return since.elapsed(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// Writes `bytes` every `every` until the connection fails.
fn dribble(mut write: tokio::net::tcp::OwnedWriteHalf, bytes: &'static str, every: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if write.write_all(bytes.as_bytes()).await.is_err() {
                return;
            }
        }
    });
}

fn assert_timeout_problem(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.contains("content-type: application/problem+json"),
        "{answer}"
    );
    assert!(answer.contains("\"request_timeout\""), "{answer}");
}

#[tokio::test]
async fn a_stalled_chunked_body_is_answered_408_and_the_connection_closed() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let server = server_with_timeout(&db, keys.path(), "2s").await;
    let mut s = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let started = Instant::now();
    s.write_all(format!("{CHUNKED_LOGIN}{CHUNK}").as_bytes())
        .await
        .unwrap();
    let (answer, closed) = until_closed(&mut s, started, Duration::from_secs(20)).await;
    assert_timeout_problem(&answer);
    let closed = closed.expect("the connection is closed");
    assert!(closed < TIMEOUT + MARGIN, "closed after {closed:?}");
}

#[tokio::test]
async fn chunks_dribbled_forever_are_cut_off_at_the_deadline() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let server = server_with_timeout(&db, keys.path(), "2s").await;
    // Answered at once (it reads no body), then held by its chunks; and a
    // login whose body never ends.
    for head in [
        "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        CHUNKED_LOGIN,
    ] {
        let s = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        let (mut read, mut write) = s.into_split();
        let started = Instant::now();
        write
            .write_all(format!("{head}{CHUNK}").as_bytes())
            .await
            .unwrap();
        dribble(write, CHUNK, Duration::from_millis(300));
        let (answer, closed) = until_closed(&mut read, started, Duration::from_secs(20)).await;
        let closed = closed.unwrap_or_else(|| panic!("{head}: still open; {answer}"));
        assert!(closed < TIMEOUT + MARGIN, "{head}: closed after {closed:?}");
        if head == CHUNKED_LOGIN {
            assert_timeout_problem(&answer);
        } else {
            assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
            assert!(!answer.contains(" 408 "), "one answer only: {answer}");
        }
    }
}

#[tokio::test]
async fn a_kept_alive_connection_holds_its_next_request_to_the_deadline() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let server = server_with_timeout(&db, keys.path(), "2s").await;
    // The second request's head stalls; or it comes a byte at a time.
    for dripped in [false, true] {
        let mut s = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        s.write_all(HEALTHZ.as_bytes()).await.unwrap();
        let mut first = vec![0; 4096];
        let n = s.read(&mut first).await.unwrap();
        let first = String::from_utf8_lossy(&first[..n]).into_owned();
        assert!(first.starts_with("HTTP/1.1 200 "), "{first}");
        let (mut read, mut write) = s.into_split();
        let started = Instant::now();
        // Kept open (dropping it would end the connection) until the end.
        let _stalled = if dripped {
            write.write_all(b"G").await.unwrap();
            dribble(write, "E", Duration::from_millis(300));
            None
        } else {
            write.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
            Some(write)
        };
        let (answer, closed) = until_closed(&mut read, started, Duration::from_secs(20)).await;
        assert_timeout_problem(&answer);
        let closed = closed.unwrap_or_else(|| panic!("dripped {dripped}: still open"));
        assert!(
            closed < TIMEOUT + MARGIN,
            "dripped {dripped}: closed after {closed:?}"
        );
    }
}

#[tokio::test]
async fn a_slow_head_and_a_slow_body_share_one_deadline() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let server = server_with_timeout(&db, keys.path(), "3s").await;
    let s = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let (mut read, mut write) = s.into_split();
    let started = Instant::now();
    // The head takes 2 of the 3 seconds, then the body is slow.
    for line in SLOW_BODY.split_inclusive("\r\n") {
        write.write_all(line.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    dribble(write, "\"", Duration::from_millis(300));
    let (answer, closed) = until_closed(&mut read, started, Duration::from_secs(20)).await;
    assert_timeout_problem(&answer);
    let closed = closed.expect("the connection is closed");
    // Two deadlines, one for the head and one for the body, would close it
    // after 5 s.
    assert!(
        closed < Duration::from_secs(3) + Duration::from_millis(1_500),
        "closed after {closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_chunked_dribblers_are_closed_while_healthz_answers() {
    let db = TestDatabase::sqlite();
    let keys = tempfile::tempdir().unwrap();
    let server = server_with_timeout(&db, keys.path(), "3s").await;
    let started = Instant::now();
    let mut closing = Vec::with_capacity(SLOW);
    for _ in 0..SLOW {
        let s = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        let (mut read, mut write) = s.into_split();
        write
            .write_all(format!("{CHUNKED_LOGIN}{CHUNK}").as_bytes())
            .await
            .unwrap();
        dribble(write, CHUNK, Duration::from_secs(1));
        closing.push(tokio::spawn(async move {
            until_closed(&mut read, started, Duration::from_secs(30))
                .await
                .1
                .is_some()
        }));
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
    let mut closed = 0;
    for c in closing {
        closed += usize::from(c.await.unwrap());
    }
    let all_closed = started.elapsed();
    let worst_health = probe.await.unwrap();
    eprintln!(
        "{SLOW} chunked dribblers: opened in {opening:?}, all closed after {all_closed:?}; \
         slowest /healthz {worst_health:?}"
    );
    assert_eq!(closed, SLOW, "every dribbling connection is closed");
    assert!(all_closed < Duration::from_secs(30), "{all_closed:?}");
    assert!(worst_health < Duration::from_secs(1), "{worst_health:?}");
}
