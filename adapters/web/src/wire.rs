//! The answers actix-http writes by itself, rewritten as problem+json.
//!
//! Before a request reaches any application code, actix-http's HTTP/1
//! dispatcher answers a malformed request line or header (400), a header
//! section over its limits (431) and a head that did not arrive within the
//! request timeout (408) on its own: a bare head (`content-length: 0` and at
//! most `connection` and `date` besides), after which it closes the
//! connection. It has no hook for their content, so [`ProblemStream`] wraps
//! each connection and, when what the dispatcher writes ends with such a
//! head, sends the problem+json answer of [`ApiError`] in its place, with
//! the security headers and a fresh `X-Request-Id`.
//!
//! Why a bare head can only be the dispatcher's: every answer the
//! application makes gets the security headers (see [`crate::hardening`]);
//! and no body of ours can end with one, since bodies are JSON (which
//! escapes line breaks) or fixed assets.
//! Why it is found whole at the end of one write: the dispatcher encodes a
//! head into its buffer before writing any of it, writes the buffer from
//! where the last write stopped to its end, and writes nothing after such
//! an answer. [`ProblemStream`] passes the bytes before the head through
//! unchanged and never lets part of the head out, so a write that stops
//! early leaves the whole head for the next one.
//!
//! [`ProblemStream`] also holds every request on its connection to the
//! request timeout, counted from when its first bytes are read: the head and
//! the body (chunked or not) of the first request and of every later one on
//! a kept-alive connection (the dispatcher's own head timer covers only the
//! first request's head, and nothing of it bounds a body). [`Framing`]
//! follows where each request ends; when one has not completely arrived by
//! its deadline, the connection answers 408 problem+json (unless something
//! of an answer was already written) and closes. A request that arrives
//! whole in one read costs a pass over its head and no clock or timer.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody as _;
use actix_web::http::StatusCode;
use actix_web::ResponseError as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;
use crate::hardening::SECURITY_HEADERS;
use crate::middleware::REQUEST_ID;

mod framing;

use framing::Framing;

/// The statuses the dispatcher answers with a bare head.
const BARE_STATUSES: [u16; 5] = [400, 408, 413, 431, 500];
/// A bare head is about 110 bytes; only the end of a write this long is
/// searched for one.
const LONGEST_BARE_HEAD: usize = 256;

/// How long after a request's deadline the connection gives up on it. The
/// handler reading the body sees the deadline itself
/// ([`RequestArrival`]) and answers 408 first, with whatever it records
/// (a refresh's audit row); the connection's own 408 and close are for
/// requests no handler reads (a body nobody waits for, a head that never
/// ends).
pub const CONNECTION_SLACK: Duration = Duration::from_millis(500);

/// The deadline of the request now arriving on a connection, shared with
/// the handlers through the connection's data (`HttpRequest::conn_data`):
/// `timeout` after the request's first bytes, `None` between requests.
#[derive(Debug, Clone, Default)]
pub struct RequestArrival(std::sync::Arc<std::sync::Mutex<Option<Instant>>>);

impl RequestArrival {
    /// When the request now arriving must have arrived.
    pub fn deadline(&self) -> Option<Instant> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, deadline: Option<Instant>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = deadline;
    }
}

/// The interim answer to `Expect: 100-continue`: written before a body
/// arrives, it does not answer the request.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A connection whose bare framework answers leave as problem+json, and
/// whose requests must arrive within a deadline.
#[derive(Debug)]
pub struct ProblemStream<T> {
    inner: T,
    /// The answer that replaced a bare head, and how much of it is written.
    replacement: Vec<u8>,
    sent: usize,
    /// The request deadline, when there is one.
    clock: Option<Box<Clock>>,
    /// A request missed its deadline: the connection is done.
    expired: bool,
}

/// The request timeout's state on one connection.
#[derive(Debug)]
struct Clock {
    timeout: Duration,
    framing: Framing,
    /// When the request now arriving has to be complete, once a read ended
    /// before it did.
    deadline: Option<Instant>,
    /// Something was written since that request began.
    answered: bool,
    /// Wakes the connection at a deadline; made the first time a request
    /// has to wait for its bytes.
    timer: Option<Pin<Box<Sleep>>>,
    /// The same deadline, for the handlers.
    shared: RequestArrival,
}

impl<T> ProblemStream<T> {
    /// A connection without a request deadline.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            replacement: Vec::new(),
            sent: 0,
            clock: None,
            expired: false,
        }
    }

    /// A connection whose every request (head and body) must have arrived
    /// `timeout` after its first bytes are read.
    pub fn with_request_timeout(inner: T, timeout: Duration) -> Self {
        let mut stream = Self::new(inner);
        stream.clock = Some(Box::new(Clock {
            timeout,
            framing: Framing::default(),
            deadline: None,
            answered: false,
            timer: None,
            shared: RequestArrival::default(),
        }));
        stream
    }

    /// The deadline of the request arriving now, for the handlers; `None`
    /// without a request timeout.
    pub fn request_arrival(&self) -> Option<RequestArrival> {
        self.clock.as_ref().map(|c| c.shared.clone())
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncWrite + Unpin> ProblemStream<T> {
    /// Writes what is left of the replacement.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.replacement.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.replacement[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.replacement = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl Clock {
    /// Follows the bytes just read.
    fn received(&mut self, bytes: &[u8]) {
        let before = self.deadline;
        if self.framing.feed(bytes) {
            // A new request: its clock starts at this read.
            self.deadline = None;
            self.answered = false;
        }
        if !self.framing.in_request() {
            self.deadline = None;
        } else if self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.timeout);
        }
        if self.deadline != before {
            self.shared.set(self.deadline);
        }
    }

    /// Whether the request arriving now missed its deadline; if not, the
    /// connection is woken at the deadline.
    fn overdue(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.deadline.map(|d| d + CONNECTION_SLACK) else {
            return false;
        };
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        timer.as_mut().poll(cx).is_ready()
    }

    /// Notes an answer's bytes.
    fn wrote(&mut self, bytes: &[u8]) {
        if self.deadline.is_some() && !CONTINUE.starts_with(bytes) {
            self.answered = true;
        }
    }
}

impl<T: AsyncWrite + Unpin> ProblemStream<T> {
    /// A request missed its deadline: a 408 goes out, if nothing of an
    /// answer did and the socket takes it at once (a client that does not
    /// read must not hold the connection either), and the connection ends
    /// with an error, which makes the dispatcher drop it.
    fn time_out(&mut self, cx: &mut Context<'_>) -> io::Error {
        let answered = self.clock.as_ref().is_some_and(|c| c.answered);
        if !self.expired && !answered && self.replacement.is_empty() {
            self.replacement = problem_answer_for(StatusCode::REQUEST_TIMEOUT, 1, None);
            self.sent = 0;
            let _ = self.poll_replacement(cx);
        }
        self.expired = true;
        self.replacement = Vec::new();
        self.sent = 0;
        timed_out()
    }
}

fn timed_out() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the request did not arrive within the request timeout",
    )
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for ProblemStream<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(timed_out()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(clock) = this.clock.as_mut() else {
            return polled;
        };
        match &polled {
            Poll::Ready(Ok(())) => clock.received(&buf.filled()[before..]),
            Poll::Ready(Err(_)) => return polled,
            Poll::Pending => {}
        }
        // The dispatcher reads until a read is pending (or its buffer is
        // full), so a request still arriving has its timer polled here.
        if clock.overdue(cx) {
            return Poll::Ready(Err(this.time_out(cx)));
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemStream<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(Err(timed_out()));
        }
        ready!(this.poll_replacement(cx))?;
        if let Some(clock) = this.clock.as_mut() {
            clock.wrote(buf);
        }
        let Some(start) = bare_head_at(buf) else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        if start > 0 {
            // What comes before the head (earlier answers) goes out as is;
            // the dispatcher calls again with the rest.
            return Pin::new(&mut this.inner).poll_write(cx, &buf[..start]);
        }
        this.replacement = problem_answer(buf);
        this.sent = 0;
        // Most often the socket takes it at once; otherwise the flush and
        // the shutdown that follow this answer finish it.
        if let Poll::Ready(Err(e)) = this.poll_replacement(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Where a bare framework answer starts, when `buf` ends with one.
fn bare_head_at(buf: &[u8]) -> Option<usize> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let from = buf.len().saturating_sub(LONGEST_BARE_HEAD);
    let start = from + rfind(&buf[from..], b"HTTP/1.")?;
    let bare = parse_bare(&buf[start..])?;
    BARE_STATUSES.contains(&bare.status).then_some(start)
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// A bare head, read.
struct Bare<'a> {
    minor_version: u8,
    status: u16,
    date: Option<&'a [u8]>,
}

/// `head` read as a whole response head without a body and with no header
/// but `content-length: 0`, `connection` and `date`.
fn parse_bare(head: &[u8]) -> Option<Bare<'_>> {
    let mut headers = [httparse::EMPTY_HEADER; 3];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        _ => return None,
    }
    let mut date = None;
    let mut has_length = false;
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") && h.value == b"0" {
            has_length = true;
        } else if h.name.eq_ignore_ascii_case("date") {
            date = Some(h.value);
        } else if !h.name.eq_ignore_ascii_case("connection") {
            return None;
        }
    }
    Some(Bare {
        minor_version: response.version?,
        status: response.code?,
        date,
    })
    .filter(|_| has_length)
}

/// The problem for a status the dispatcher answered by itself.
fn problem_for(status: StatusCode) -> ApiError {
    match status {
        StatusCode::BAD_REQUEST => ApiError::InvalidHttp,
        StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::HeadersTooLarge,
        s if s.is_server_error() => {
            ApiError::Internal(format!("the HTTP/1 dispatcher answered {s}"))
        }
        s => ApiError::Refused(s),
    }
}

/// The whole problem+json answer that replaces the bare `head`: same
/// version, status and date, the connection closed after it.
fn problem_answer(head: &[u8]) -> Vec<u8> {
    let Some(bare) = parse_bare(head) else {
        return head.to_vec();
    };
    let Ok(status) = StatusCode::from_u16(bare.status) else {
        return head.to_vec();
    };
    problem_answer_for(status, bare.minor_version, bare.date)
}

/// The problem+json answer for `status`, in HTTP/1.`minor_version`, the
/// connection closed after it.
fn problem_answer_for(status: StatusCode, minor_version: u8, date: Option<&[u8]>) -> Vec<u8> {
    let response = problem_for(status).error_response();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(
        format!(
            "HTTP/1.{} {} {}\r\n",
            minor_version,
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )
        .as_bytes(),
    );
    let mut header = |name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    for (name, value) in response.headers() {
        header(name.as_str().as_bytes(), value.as_bytes());
    }
    for (name, value) in &SECURITY_HEADERS {
        if !response.headers().contains_key(name) {
            header(name.as_str().as_bytes(), value.as_bytes());
        }
    }
    header(
        REQUEST_ID.as_str().as_bytes(),
        uuid::Uuid::new_v4().to_string().as_bytes(),
    );
    let body = response.into_body().try_into_bytes().unwrap_or_default();
    header(b"content-length", body.len().to_string().as_bytes());
    header(b"connection", b"close");
    if let Some(date) = date {
        header(b"date", date);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests;
