//! Where each request on a connection ends, found in the bytes as they are
//! read, so that [`super::ProblemStream`] can hold every request (head and
//! body, chunked or not, the first on the connection or a later one) to one
//! deadline. actix-http's dispatcher cannot: its head timer covers only the
//! first request's head, and nothing bounds a body.
//!
//! The rules are actix-http 3's (`h1/decoder.rs` for the head,
//! `h1/chunked.rs` for chunks): a head ends at an empty line (LF or CRLF);
//! `Transfer-Encoding: chunked` wins over `Content-Length`; an
//! `Upgrade: websocket` request, and a `CONNECT` without a length, read
//! until the connection ends. Where the bytes are not valid HTTP the
//! dispatcher answers 400 and closes by itself; this reader then only has to
//! err on the safe side, never ending the request early: such a request (and
//! one whose framing header does not fit [`LINE`]) runs [`State::UntilEof`],
//! so its deadline still applies.
//!
//! Bounded: one [`LINE`]-byte buffer per connection, the rest of the state
//! a few integers. A head line is found with one search for its LF, a body
//! skipped by count, so a request that arrives whole costs one pass over its
//! head.

/// The start of a head line that is kept: enough for every framing header
/// (`transfer-encoding: chunked` is 26 bytes) with its padding.
const LINE: usize = 96;

/// The request being received on one connection.
#[derive(Debug)]
pub struct Framing {
    state: State,
    /// The start of the head line being read, and how long the line is.
    line: [u8; LINE],
    line_len: usize,
    /// What the head read so far says.
    head: Head,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between requests: no byte of the next one yet.
    Idle,
    /// In the head.
    Head,
    /// In a `Content-Length` body: how many bytes are left.
    Length(u64),
    /// In a chunked body.
    Chunked(Chunk),
    /// A body that ends with the connection (or framing this reader does not
    /// follow): the request never completes.
    UntilEof,
}

/// actix-http's `ChunkedState`, with the size and what is left of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    SizeFirst,
    SizeRest(u64),
    SizeLws(u64),
    Extension(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
}

#[derive(Debug, Default, Clone, Copy)]
struct Head {
    /// The request line was read (empty lines before it are skipped).
    started: bool,
    connect: bool,
    chunked: bool,
    websocket: bool,
    length: Option<u64>,
    /// A framing header this reader could not read.
    unreadable: bool,
}

impl Default for Framing {
    fn default() -> Self {
        Self {
            state: State::Idle,
            line: [0; LINE],
            line_len: 0,
            head: Head::default(),
        }
    }
}

impl Framing {
    /// Whether a request has begun and not completely arrived.
    pub fn in_request(&self) -> bool {
        self.state != State::Idle
    }

    /// Reads `bytes`, the next ones on the connection; whether a request
    /// began in them.
    pub fn feed(&mut self, mut bytes: &[u8]) -> bool {
        let mut began = false;
        while !bytes.is_empty() {
            let used = match self.state {
                State::Idle => {
                    began = true;
                    self.state = State::Head;
                    self.head = Head::default();
                    self.line_len = 0;
                    0
                }
                State::Head => self.head_bytes(bytes),
                State::Length(left) => {
                    let n = left.min(bytes.len() as u64);
                    self.state = match left - n {
                        0 => State::Idle,
                        left => State::Length(left),
                    };
                    // `n` is at most `bytes.len()`.
                    n as usize
                }
                State::Chunked(chunk) => self.chunk_bytes(chunk, bytes),
                State::UntilEof => bytes.len(),
            };
            bytes = &bytes[used..];
        }
        began
    }

    /// Reads head bytes up to the end of the current line; how many it used.
    fn head_bytes(&mut self, bytes: &[u8]) -> usize {
        let (piece, used, ended) = match bytes.iter().position(|&b| b == b'\n') {
            Some(at) => (&bytes[..at], at + 1, true),
            None => (bytes, bytes.len(), false),
        };
        let at = self.line_len.min(LINE);
        let keep = piece.len().min(LINE - at);
        self.line[at..at + keep].copy_from_slice(&piece[..keep]);
        self.line_len = self.line_len.max(at + keep);
        if keep < piece.len() && piece[keep..].iter().any(|b| !b.is_ascii_whitespace()) {
            // Past the kept start, more than padding: only a problem if
            // this is a framing header (see `end_line`).
            self.line_len = LINE + 1;
        }
        if ended {
            self.end_line();
        }
        used
    }

    /// A whole head line was read.
    fn end_line(&mut self) {
        let overflowed = self.line_len > LINE;
        let line = &self.line[..self.line_len.min(LINE)];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.line_len = 0;
        if !self.head.started {
            if !line.is_empty() {
                self.head.started = true;
                self.head.connect = line.starts_with(b"CONNECT ");
            }
            return;
        }
        if line.is_empty() {
            self.state = self.body();
            return;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        let framing = ["content-length", "transfer-encoding", "upgrade"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_bytes()));
        if !framing {
            return;
        }
        if overflowed {
            self.head.unreadable = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                Some(n) if !value.starts_with(b"+") => self.head.length = Some(n),
                _ => self.head.unreadable = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.head.chunked |= value.eq_ignore_ascii_case(b"chunked");
        } else {
            self.head.websocket |= value.eq_ignore_ascii_case(b"websocket");
        }
    }

    /// The state after a complete head.
    fn body(&self) -> State {
        let head = self.head;
        if head.unreadable {
            State::UntilEof
        } else if head.chunked {
            State::Chunked(Chunk::SizeFirst)
        } else if head.websocket {
            State::UntilEof
        } else if let Some(n) = head.length.filter(|&n| n > 0) {
            State::Length(n)
        } else if head.connect {
            State::UntilEof
        } else {
            State::Idle
        }
    }

    /// Reads chunked-body bytes; how many it used.
    fn chunk_bytes(&mut self, chunk: Chunk, bytes: &[u8]) -> usize {
        if let Chunk::Data(left) = chunk {
            let n = left.min(bytes.len() as u64);
            self.state = State::Chunked(match left - n {
                0 => Chunk::DataCr,
                left => Chunk::Data(left),
            });
            // `n` is at most `bytes.len()`.
            return n as usize;
        }
        self.state = match (chunk, bytes[0]) {
            (Chunk::EndLf, b'\n') => State::Idle,
            // Not valid chunked framing: actix answers 400 and closes.
            (chunk, b) => step(chunk, b).map_or(State::UntilEof, State::Chunked),
        };
        1
    }
}

/// One byte of a chunked body outside chunk data, as actix-http reads it;
/// `None` where it fails. The LF after `EndLf`, the body's end, is
/// [`Framing::chunk_bytes`]'s.
fn step(chunk: Chunk, b: u8) -> Option<Chunk> {
    let hex = |b: u8| (b as char).to_digit(16).map(u64::from);
    Some(match chunk {
        Chunk::SizeFirst => Chunk::SizeRest(hex(b)?),
        Chunk::SizeRest(size) => match b {
            b'\t' | b' ' => Chunk::SizeLws(size),
            b';' => Chunk::Extension(size),
            b'\r' => Chunk::SizeLf(size),
            _ => Chunk::SizeRest(size.checked_mul(16)?.checked_add(hex(b)?)?),
        },
        Chunk::SizeLws(size) => match b {
            b'\t' | b' ' => Chunk::SizeLws(size),
            b';' => Chunk::Extension(size),
            b'\r' => Chunk::SizeLf(size),
            _ => return None,
        },
        Chunk::Extension(size) => match b {
            b'\r' => Chunk::SizeLf(size),
            0x00..=0x08 | 0x0a..=0x1f | 0x7f => return None,
            _ => Chunk::Extension(size),
        },
        Chunk::SizeLf(0) if b == b'\n' => Chunk::EndCr,
        Chunk::SizeLf(size) if b == b'\n' => Chunk::Data(size),
        Chunk::DataCr if b == b'\r' => Chunk::DataLf,
        Chunk::DataLf if b == b'\n' => Chunk::SizeFirst,
        Chunk::Trailer if b == b'\r' => Chunk::TrailerLf,
        Chunk::Trailer => Chunk::Trailer,
        Chunk::TrailerLf if b == b'\n' => Chunk::EndCr,
        Chunk::EndCr if b == b'\r' => Chunk::EndLf,
        Chunk::EndCr => Chunk::Trailer,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
