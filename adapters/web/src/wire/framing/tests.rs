use super::*;

/// `bytes` fed in pieces of `piece` bytes; whether a request is still
/// arriving at the end, and in how many pieces one began.
fn read(bytes: &[u8], piece: usize) -> (bool, usize) {
    let mut framing = Framing::default();
    let began = bytes.chunks(piece).filter(|p| framing.feed(p)).count();
    (framing.in_request(), began)
}

fn complete(bytes: &str) {
    for piece in [1, 2, 7, 64, usize::MAX] {
        assert!(!read(bytes.as_bytes(), piece).0, "piece {piece}: {bytes:?}");
    }
}

fn arriving(bytes: &str) {
    for piece in [1, 2, 7, 64, usize::MAX] {
        assert!(read(bytes.as_bytes(), piece).0, "piece {piece}: {bytes:?}");
    }
}

const GET: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn a_head_without_a_body_ends_at_its_empty_line() {
    complete(GET);
    complete("GET /healthz HTTP/1.1\nHost: x\n\n");
    complete(&format!("\r\n{GET}"));
    complete("POST /auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    arriving("GET /healthz HTTP/1.1\r\n");
    arriving("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    arriving("G");
}

#[test]
fn a_content_length_body_ends_after_its_bytes() {
    let head = "POST /auth/login HTTP/1.1\r\nHost: x\r\ncontent-LENGTH:  5 \r\n\r\n";
    complete(&format!("{head}{{\"a\"}}"));
    arriving(&format!("{head}{{\"a\""));
    arriving(head);
}

#[test]
fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
    let head = "POST /auth/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nContent-Length: 3\r\n\r\n";
    complete(&format!("{head}1\r\n{{\r\n1;ext=1\r\n}}\r\n0\r\n\r\n"));
    complete(&format!(
        "{head}A  \r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n"
    ));
    arriving(&format!("{head}1\r\n{{\r\n"));
    arriving(&format!("{head}1\r\n{{\r\n0\r\n"));
    arriving(&format!("{head}1\r\n{{\r\n0\r\nX-Trailer: 1\r\n"));
    arriving(head);
}

#[test]
fn requests_that_read_until_the_connection_ends_never_complete() {
    arriving("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    arriving("CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n");
    // Framing actix refuses (it answers 400 and closes): never complete here.
    let head = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    arriving(&format!("{head}x\r\n"));
    arriving(&format!("{head}1\r\nab\r\n0\r\n\r\n"));
    arriving("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n");
    let padded = format!(
        "POST / HTTP/1.1\r\nContent-Length:{}5\r\n\r\n",
        " ".repeat(200)
    );
    arriving(&padded);
}

#[test]
fn long_lines_are_kept_only_in_part_and_padding_is_ignored() {
    let cookie = "a".repeat(4_000);
    complete(&format!(
        "GET / HTTP/1.1\r\nCookie: {cookie}\r\nHost: x\r\n\r\n"
    ));
    let padded = format!(
        "POST / HTTP/1.1\r\nContent-Length: 2{}\r\n\r\nab",
        " ".repeat(300)
    );
    complete(&padded);
}

#[test]
fn pipelined_and_keep_alive_requests_are_each_followed() {
    let post = "POST /auth/refresh HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    let chunked =
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    let three = format!("{GET}{post}{chunked}");
    assert_eq!(read(three.as_bytes(), 1), (false, 3));
    complete(&three);
    // A second request on a kept-alive connection whose head stalls.
    let (arriving, began) = read(
        format!("{GET}{post}GET /healthz HTTP/1.1\r\n").as_bytes(),
        1,
    );
    assert!(arriving);
    assert_eq!(began, 3);
}
