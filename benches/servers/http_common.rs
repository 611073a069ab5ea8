//! Request framing and the fixed response shared by the benchmark servers
//! (`mio_http_hello`, `tokio_http_hello`). Included with `mod http_common;`.
//!
//! The work is deliberately minimal and identical for every server: find the
//! end of each request head (`\r\n\r\n`), look for `Connection: close`, and
//! append one fixed response per request. Several requests in one read
//! (pipelining) are answered in order; a partial request waits for more
//! bytes. Request bodies are not expected (wrk sends `GET`s).

/// The one response every request gets.
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Length: 13\r\n\
Content-Type: text/plain\r\n\
\r\n\
Hello, World!";

/// Request heads larger than this (without their terminating blank line)
/// make the server drop the connection.
pub const MAX_HEAD: usize = 64 * 1024;

/// What [`answer`] did with a buffer.
pub struct Parsed {
    /// Bytes consumed from the front of the buffer (complete requests).
    pub consumed: usize,
    /// A request asked for `Connection: close`: stop after its response and
    /// ignore anything after it.
    pub close: bool,
}

/// Answers every complete request at the front of `buf`, appending one
/// [`RESPONSE`] per request to `out`.
pub fn answer(buf: &[u8], out: &mut Vec<u8>) -> Parsed {
    let mut start = 0;
    while let Some(end) = find_head_end(&buf[start..]) {
        let head = &buf[start..start + end];
        out.extend_from_slice(RESPONSE);
        start += end + 4;
        if wants_close(head) {
            return Parsed {
                consumed: start,
                close: true,
            };
        }
    }
    Parsed {
        consumed: start,
        close: false,
    }
}

/// Offset of the `\r\n\r\n` that ends the first request head in `buf`.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 3;
    while i < buf.len() {
        // Step on '\n' candidates; `\r\n\r\n` ends with one.
        match buf[i..].iter().position(|&b| b == b'\n') {
            None => return None,
            Some(off) => i += off,
        }
        if i >= 3 && &buf[i - 3..=i] == b"\r\n\r\n" {
            return Some(i - 3);
        }
        i += 1;
    }
    None
}

/// Whether a request head (request line + headers, no blank line) carries
/// `Connection: close` (names and values compared case-insensitively).
fn wants_close(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        trim(name).eq_ignore_ascii_case(b"connection")
            && value
                .split(|&b| b == b',')
                .any(|tok| trim(tok).eq_ignore_ascii_case(b"close"))
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
