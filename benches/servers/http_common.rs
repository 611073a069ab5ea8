//! Request framing and the fixed response shared by the HTTP servers: the
//! benchmark anchors (`mio_http_hello`, `tokio_http_hello`) and evloop's
//! own (`examples/common/http_conn.rs`, `examples/http_hello_async.rs`).
//! Included with `mod http_common;`, so every server in the comparison does
//! exactly the same parsing work.
//!
//! Each request head is parsed with `httparse` (request line, header syntax)
//! and then checked:
//!
//! - a head over [`MAX_HEAD`] bytes, or with more than [`MAX_HEADERS`]
//!   headers: `431`, then close;
//! - bad syntax anywhere in the head (garbage, a bad request line, a bad
//!   header line), an HTTP/1.1 request without exactly one `Host`, a
//!   `Content-Length` that is not a number or two that differ, or
//!   `Transfer-Encoding` together with `Content-Length`: `400`, then close;
//! - a `Transfer-Encoding` other than a lone `chunked` (`gzip, chunked`,
//!   ...): `501`, then close; one in an HTTP/1.0 request: `400`;
//! - otherwise the fixed [`RESPONSE`]; the body, by `Content-Length` or
//!   `chunked` (a bad chunk line is a `400`), is skipped, never parsed as
//!   further requests. `Connection: close`, or an HTTP/1.0
//!   request without `Connection: keep-alive`, closes after the response.
//!
//! Line endings: a bare LF is accepted wherever CRLF is, as `httparse` and
//! Node's parser do (RFC 9112 §2.2 allows it); a lone CR is a `400`.
//!
//! Several requests in one read (pipelining) are answered in order; a
//! partial head waits for more bytes. A [`Framer`] keeps what must survive
//! between reads (the rest of a body to skip, how much of a partial head
//! has been scanned); the caller keeps the unconsumed bytes and passes them
//! again, followed by the new ones.

/// The one response every valid request gets.
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Length: 13\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hello, World!";

/// The response to a malformed request (then the server closes).
pub const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The response to a request head that is too large (then close).
pub const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
Content-Length: 0\r\nConnection: close\r\n\r\n";

/// The response to a `Transfer-Encoding` this framing does not decode.
pub const NOT_IMPLEMENTED: &[u8] =
    b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The response when a request head does not arrive in time (evloop's
/// servers: the anchors have no timers).
#[allow(dead_code)]
pub const TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The largest request head accepted, blank line included.
pub const MAX_HEAD: usize = 64 * 1024;

/// The most header lines a request may have.
pub const MAX_HEADERS: usize = 64;

/// The per-connection deadlines of evloop's servers (the anchors have no
/// timers): a request head must arrive within `head` of its first byte
/// (else `408` and close), and a connection with nothing to do for `idle`
/// (no request bytes read, no response bytes taken by a client that
/// stopped reading; a new connection that sends nothing) is closed
/// without a word. Node's `headersTimeout` and
/// `keepAliveTimeout`; set with `HTTP_HEADER_TIMEOUT_MS` (default 10000) and
/// `HTTP_IDLE_TIMEOUT_MS` (default 5000).
#[allow(dead_code)]
#[derive(Clone, Copy)]
pub struct Timeouts {
    pub head: std::time::Duration,
    pub idle: std::time::Duration,
}

#[allow(dead_code)]
impl Timeouts {
    /// The deadlines from the environment, read once per process.
    pub fn get() -> Timeouts {
        static TIMEOUTS: std::sync::OnceLock<Timeouts> = std::sync::OnceLock::new();
        *TIMEOUTS.get_or_init(|| {
            let ms = |var: &str, default: u64| {
                let ms = std::env::var(var).ok().and_then(|v| v.parse().ok());
                std::time::Duration::from_millis(ms.unwrap_or(default))
            };
            Timeouts {
                head: ms("HTTP_HEADER_TIMEOUT_MS", 10_000),
                idle: ms("HTTP_IDLE_TIMEOUT_MS", 5_000),
            }
        })
    }
}

/// What [`Framer::answer`] did with a buffer.
pub struct Parsed {
    /// Bytes consumed from the front of the buffer (complete requests and
    /// skipped body bytes); the rest is the start of a head.
    pub consumed: usize,
    /// Stop after the responses written: `Connection: close`, or a bad
    /// request (its error response is the last one). Anything after it is
    /// ignored.
    pub close: bool,
}

/// The longest chunk-size line (with extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Where a connection is in the body it is skipping.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Body {
    /// No body: the next bytes are a head.
    #[default]
    None,
    /// `Content-Length` bytes still to skip.
    Length(u64),
    /// Chunked: at a chunk-size line.
    ChunkSize,
    /// Chunked: data bytes of the chunk still to skip.
    ChunkData(u64),
    /// Chunked: at the CRLF after a chunk's data.
    ChunkEnd,
    /// Chunked: at the trailer section after the last chunk.
    Trailers,
}

/// The framing state of one connection.
#[derive(Default)]
pub struct Framer {
    /// The body being skipped.
    body: Body,
    /// Bytes at the front of the unconsumed input known to hold no
    /// complete head: a partial head is parsed again only once a blank line
    /// may have arrived, so a head sent a byte at a time costs linear, not
    /// quadratic, time.
    scanned: usize,
}

/// Why a request is refused.
enum Refusal {
    Bad,
    TooLarge,
    NotImplemented,
}

impl Refusal {
    fn response(&self) -> &'static [u8] {
        match self {
            Refusal::Bad => BAD_REQUEST,
            Refusal::TooLarge => TOO_LARGE,
            Refusal::NotImplemented => NOT_IMPLEMENTED,
        }
    }
}

/// What a valid head asks for.
struct Head {
    /// Its length in bytes.
    len: usize,
    body: Body,
    close: bool,
}

impl Framer {
    /// Whether a body is being skipped: unconsumed bytes are not the
    /// start of a head (no head deadline for them).
    #[allow(dead_code)]
    pub fn in_body(&self) -> bool {
        self.body != Body::None
    }

    /// Answers every complete request at the front of `buf` (the bytes
    /// not consumed by the previous call, then the new ones), appending one
    /// response per request to `out`.
    pub fn answer(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Parsed {
        let mut start = 0;
        loop {
            match self.skip_body(&buf[start..]) {
                Ok(n) => start += n,
                Err(refusal) => {
                    out.extend_from_slice(refusal.response());
                    return Parsed {
                        consumed: buf.len(),
                        close: true,
                    };
                }
            }
            if self.body != Body::None || start == buf.len() {
                break;
            }
            match self.head(&buf[start..]) {
                Ok(None) => break,
                Ok(Some(head)) => {
                    out.extend_from_slice(RESPONSE);
                    start += head.len;
                    self.body = head.body;
                    if head.close {
                        return Parsed {
                            consumed: start,
                            close: true,
                        };
                    }
                }
                Err(refusal) => {
                    out.extend_from_slice(refusal.response());
                    return Parsed {
                        consumed: buf.len(),
                        close: true,
                    };
                }
            }
        }
        Parsed {
            consumed: start,
            close: false,
        }
    }

    /// Parses the head at the front of `buf`: `None` while incomplete.
    fn head(&mut self, buf: &[u8]) -> Result<Option<Head>, Refusal> {
        // A partial head already parsed once is parsed again only if a
        // blank line (LF LF or LF CR LF) may have arrived since.
        if self.scanned > 0 && !has_blank_line(&buf[self.scanned.saturating_sub(2)..]) {
            self.scanned = buf.len();
            return partial(buf.len());
        }
        // Left uninitialised: httparse writes the ones it returns (no 2 KB
        // memset per request).
        let mut headers = [std::mem::MaybeUninit::<httparse::Header>::uninit(); MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                self.scanned = buf.len();
                return partial(buf.len());
            }
            Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
            Err(_) => return Err(Refusal::Bad),
        };
        self.scanned = 0;
        if len > MAX_HEAD {
            return Err(Refusal::TooLarge);
        }
        let http11 = req.version == Some(1);
        let mut hosts = 0;
        let mut length: Option<u64> = None;
        let mut encodings = 0;
        let mut chunked = false;
        let mut close = !http11;
        for h in req.headers.iter() {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"host") {
                hosts += 1;
            } else if name.eq_ignore_ascii_case(b"content-length") {
                // `5` or the list `5, 5`; every value must be the same.
                for v in h.value.split(|&b| b == b',') {
                    let n = parse_length(trim(v)).ok_or(Refusal::Bad)?;
                    if length.is_some_and(|l| l != n) {
                        return Err(Refusal::Bad);
                    }
                    length = Some(n);
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                encodings += 1;
                chunked = trim(h.value).eq_ignore_ascii_case(b"chunked");
            } else if name.eq_ignore_ascii_case(b"connection") {
                for tok in h.value.split(|&b| b == b',').map(trim) {
                    if tok.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if tok.eq_ignore_ascii_case(b"keep-alive") && !http11 {
                        close = false;
                    }
                }
            }
        }
        if (http11 && hosts != 1) || hosts > 1 {
            return Err(Refusal::Bad);
        }
        let body = if encodings > 0 {
            // With Content-Length too it is a smuggling attempt, and HTTP/1.0
            // has no transfer codings (RFC 9112 §6.1).
            if length.is_some() || !http11 {
                return Err(Refusal::Bad);
            }
            // Only a lone `chunked` is decoded (enough to skip the body);
            // `gzip, chunked` and the like are not.
            if encodings > 1 || !chunked {
                return Err(Refusal::NotImplemented);
            }
            Body::ChunkSize
        } else {
            match length {
                None | Some(0) => Body::None,
                Some(n) => Body::Length(n),
            }
        };
        Ok(Some(Head { len, body, close }))
    }

    /// Skips body bytes at the front of `buf`: how many, stopping where the
    /// body ends or the input does. Chunk framing needs CRLF line ends
    /// (`httparse`'s chunk-size parser); trailers are parsed as headers.
    fn skip_body(&mut self, buf: &[u8]) -> Result<usize, Refusal> {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            match self.body {
                Body::None => return Ok(at),
                Body::Length(left) | Body::ChunkData(left) => {
                    let n = left.min(rest.len() as u64);
                    at += n as usize;
                    let left = left - n;
                    self.body = match (self.body, left) {
                        (Body::Length(_), 0) => Body::None,
                        (Body::Length(_), _) => Body::Length(left),
                        (_, 0) => Body::ChunkEnd,
                        _ => Body::ChunkData(left),
                    };
                    if left > 0 {
                        return Ok(at);
                    }
                }
                Body::ChunkSize => {
                    // httparse takes an empty size as 0: one hex digit first.
                    match rest.first() {
                        None => return Ok(at),
                        Some(b) if !b.is_ascii_hexdigit() => return Err(Refusal::Bad),
                        Some(_) => {}
                    }
                    match httparse::parse_chunk_size(rest) {
                        Ok(httparse::Status::Complete((n, size))) => {
                            at += n;
                            self.body = if size == 0 {
                                Body::Trailers
                            } else {
                                Body::ChunkData(size)
                            };
                        }
                        Ok(httparse::Status::Partial) if rest.len() <= MAX_CHUNK_LINE => {
                            return Ok(at)
                        }
                        _ => return Err(Refusal::Bad),
                    }
                }
                Body::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        at += 2;
                        self.body = Body::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(at),
                    _ => return Err(Refusal::Bad),
                },
                Body::Trailers => {
                    let mut trailers = [httparse::EMPTY_HEADER; 16];
                    match httparse::parse_headers(rest, &mut trailers) {
                        Ok(httparse::Status::Complete((n, _))) => {
                            at += n;
                            self.body = Body::None;
                        }
                        Ok(httparse::Status::Partial) => return partial(rest.len()).map(|_| at),
                        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
                        Err(_) => return Err(Refusal::Bad),
                    }
                }
            }
        }
    }
}

/// An incomplete head of `len` bytes: wait for more, unless it is already
/// too large.
fn partial(len: usize) -> Result<Option<Head>, Refusal> {
    if len > MAX_HEAD {
        Err(Refusal::TooLarge)
    } else {
        Ok(None)
    }
}

/// Whether `buf` holds LF LF or LF CR LF (the end of a head).
fn has_blank_line(buf: &[u8]) -> bool {
    let mut rest = buf;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        rest = &rest[i + 1..];
        match rest {
            [b'\n', ..] | [b'\r', b'\n', ..] => return true,
            // A CR at the very end: its LF may come with the next read.
            [b'\r'] => return false,
            _ => {}
        }
    }
    false
}

/// A `Content-Length` value: digits only, no overflow.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// ASCII whitespace trimmed from both ends (`<[u8]>::trim_ascii` is newer
/// than the crate's MSRV).
fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !first.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !last.is_ascii_whitespace() {
            break;
        }
        s = rest;
    }
    s
}
