use std::future::poll_fn;

use super::*;

/// A socket that takes at most `chunk` bytes per write.
struct Socket {
    written: Vec<u8>,
    chunk: usize,
    shut: bool,
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = buf.len().min(this.chunk);
        this.written.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().shut = true;
        Poll::Ready(Ok(()))
    }
}

/// Writes `out` as the dispatcher does (the rest of its buffer until all
/// is taken, then flush and shutdown) through a [`ProblemStream`] over a
/// socket taking `chunk` bytes at a time; what reached the socket.
fn through(out: &[u8], chunk: usize) -> String {
    let mut stream = ProblemStream::new(Socket {
        written: Vec::new(),
        chunk,
        shut: false,
    });
    let mut taken = 0;
    while taken < out.len() {
        let n = futures_util::FutureExt::now_or_never(poll_fn(|cx| {
            Pin::new(&mut stream).poll_write(cx, &out[taken..])
        }))
        .unwrap()
        .unwrap();
        assert!(n > 0);
        taken += n;
    }
    futures_util::FutureExt::now_or_never(poll_fn(|cx| Pin::new(&mut stream).poll_flush(cx)))
        .unwrap()
        .unwrap();
    futures_util::FutureExt::now_or_never(poll_fn(|cx| Pin::new(&mut stream).poll_shutdown(cx)))
        .unwrap()
        .unwrap();
    assert!(stream.get_ref().shut);
    String::from_utf8(stream.inner.written).unwrap()
}

const DATE: &str = "date: Thu, 03 Dec 2026 14:20:23 GMT";
const BARE_400: &str = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: Thu, 03 Dec 2026 14:20:23 GMT\r\n\r\n";
const APP_200: &str = "HTTP/1.1 200 OK\r\ncontent-length: 15\r\nx-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\ncontent-type: application/json\r\n\r\n{\"status\":\"ok\"}";

/// The head and the JSON body of one answer.
fn split(answer: &str) -> (&str, serde_json::Value) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head, serde_json::from_str(body).unwrap())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

#[test]
fn a_bare_400_becomes_a_problem_with_the_security_headers_and_its_date() {
    let answer = through(BARE_400.as_bytes(), usize::MAX);
    let (head, body) = split(&answer);
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert_eq!(
        header(head, "content-type"),
        Some("application/problem+json")
    );
    assert_eq!(header(head, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(head, "referrer-policy"), Some("no-referrer"));
    assert_eq!(header(head, "cache-control"), Some("no-store"));
    assert_eq!(header(head, "connection"), Some("close"));
    assert!(head.contains(DATE), "{head}");
    assert_eq!(header(head, "x-request-id").map(str::len), Some(36));
    let length: usize = header(head, "content-length").unwrap().parse().unwrap();
    assert_eq!(length, answer.len() - head.len() - 4);
    assert_eq!(body["code"], "malformed_request");
    assert_eq!(body["status"], 400);
    assert_eq!(body["title"], "The request is not valid HTTP/1.1.");
}

#[test]
fn timeouts_and_oversized_heads_get_their_own_codes_and_the_version_is_kept() {
    for (status, code) in [
        ("408 Request Timeout", "request_timeout"),
        ("431 Request Header Fields Too Large", "headers_too_large"),
        ("413 Payload Too Large", "payload_too_large"),
        ("500 Internal Server Error", "internal_error"),
    ] {
        let bare = format!("HTTP/1.0 {status}\r\ncontent-length: 0\r\n\r\n");
        let answer = through(bare.as_bytes(), usize::MAX);
        let (head, body) = split(&answer);
        assert!(
            head.starts_with(&format!("HTTP/1.0 {status}\r\n")),
            "{head}"
        );
        assert_eq!(body["code"], code);
        assert!(!head.contains("date:"), "no date invented: {head}");
    }
}

#[test]
fn earlier_answers_pass_unchanged_and_the_head_is_never_split_by_short_writes() {
    let pipelined = format!("{APP_200}{APP_200}{BARE_400}");
    for chunk in [1, 7, 64, usize::MAX] {
        let answer = through(pipelined.as_bytes(), chunk);
        let rest = answer
            .strip_prefix(&format!("{APP_200}{APP_200}"))
            .unwrap_or_else(|| panic!("chunk {chunk}: {answer}"));
        let (head, body) = split(rest);
        assert!(head.starts_with("HTTP/1.1 400"), "chunk {chunk}: {head}");
        assert_eq!(body["code"], "malformed_request", "chunk {chunk}");
    }
}

#[test]
fn the_applications_own_answers_are_never_rewritten() {
    for answer in [
        APP_200.to_owned(),
        // An error of the application carries the security headers.
        "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-content-type-options: nosniff\r\n\r\n"
            .to_owned(),
        // Statuses the dispatcher never answers bare.
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_owned(),
        "HTTP/1.1 100 Continue\r\n\r\n".to_owned(),
        // A bare head with a body.
        "HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\nab".to_owned(),
    ] {
        assert_eq!(through(answer.as_bytes(), usize::MAX), answer);
    }
}

/// A connection through a [`ProblemStream`] with a 200 ms request timeout:
/// the client's end and the server's.
fn connection() -> (
    std::net::TcpStream,
    ProblemStream<actix_web::rt::net::TcpStream>,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    let server = actix_web::rt::net::TcpStream::from_std(server).unwrap();
    let timeout = std::time::Duration::from_millis(200);
    (client, ProblemStream::with_request_timeout(server, timeout))
}

/// Reads as the dispatcher does, until the stream fails (or 2 s pass).
async fn read_until_error(stream: &mut ProblemStream<actix_web::rt::net::TcpStream>) -> io::Error {
    let reading = async {
        let mut buf = [0; 256];
        loop {
            let mut read = ReadBuf::new(&mut buf);
            if let Err(e) = poll_fn(|cx| Pin::new(&mut *stream).poll_read(cx, &mut read)).await {
                return e;
            }
            assert!(
                !read.filled().is_empty(),
                "the client never ends the stream"
            );
        }
    };
    actix_web::rt::time::timeout(std::time::Duration::from_secs(2), reading)
        .await
        .expect("the request is timed out")
}

/// What the client receives until the connection closes.
fn received(client: &mut std::net::TcpStream) -> String {
    use std::io::Read as _;
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    String::from_utf8(got).unwrap()
}

#[actix_web::test]
async fn a_kept_alive_request_not_arrived_by_its_deadline_gets_a_408_and_ends_the_connection() {
    use std::io::Write as _;
    let (mut client, mut stream) = connection();
    client
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let error = read_until_error(&mut stream).await;
    assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    assert!(started.elapsed() >= std::time::Duration::from_millis(190));
    drop(stream);
    let answer = received(&mut client);
    let (head, body) = split(&answer);
    assert!(
        head.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{head}"
    );
    assert_eq!(header(head, "connection"), Some("close"));
    assert_eq!(body["code"], "request_timeout");
}

#[actix_web::test]
async fn a_request_already_answered_is_cut_off_without_a_second_answer() {
    use std::io::Write as _;
    let (mut client, mut stream) = connection();
    client
        .write_all(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n",
        )
        .unwrap();
    let mut buf = [0; 256];
    let mut read = ReadBuf::new(&mut buf);
    poll_fn(|cx| Pin::new(&mut stream).poll_read(cx, &mut read))
        .await
        .unwrap();
    let n = poll_fn(|cx| Pin::new(&mut stream).poll_write(cx, APP_200.as_bytes()))
        .await
        .unwrap();
    assert_eq!(n, APP_200.len());
    assert_eq!(
        read_until_error(&mut stream).await.kind(),
        io::ErrorKind::TimedOut
    );
    drop(stream);
    assert_eq!(received(&mut client), APP_200);
}

#[actix_web::test]
async fn a_request_that_arrived_whole_has_no_deadline() {
    use std::io::Write as _;
    let (mut client, mut stream) = connection();
    client
        .write_all(b"POST /auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let mut buf = [0; 256];
    let mut read = ReadBuf::new(&mut buf);
    poll_fn(|cx| Pin::new(&mut stream).poll_read(cx, &mut read))
        .await
        .unwrap();
    let mut read = ReadBuf::new(&mut buf);
    let idle = actix_web::rt::time::timeout(
        std::time::Duration::from_millis(400),
        poll_fn(|cx| Pin::new(&mut stream).poll_read(cx, &mut read)),
    )
    .await;
    assert!(
        idle.is_err(),
        "still waiting for the next request: {idle:?}"
    );
}
