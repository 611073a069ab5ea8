//! RESP2, the Redis wire protocol: a resumable, zero-copy request parser
//! and the reply encoders.
//!
//! A request is either a multibulk frame (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`,
//! what every client library sends) or an inline command (`GET k\r\n`, what
//! a person types into `nc`). The parser never copies an argument: it
//! records each one as a byte range of the frame, and [`Parser::args`] lends
//! them out as slices of the caller's buffer.
//!
//! The limits are Redis's own, so garbage cannot make the server allocate
//! without bound: bulk strings up to 512 MiB (`proto-max-bulk-len`), at
//! most [`MAX_MULTIBULK_LEN`] arguments, and header and inline lines up to
//! 64 KiB. The connection in `main.rs` also caps the whole buffered frame.

use std::fmt;
use std::ops::Range;

pub use crate::args::Args;

/// The largest bulk string accepted (Redis's `proto-max-bulk-len`).
pub const MAX_BULK_LEN: usize = 512 * 1024 * 1024;

/// The most arguments one multibulk frame may declare (Redis before 7.0
/// had the same bound; it keeps a bogus count from reserving memory).
pub const MAX_MULTIBULK_LEN: usize = 1024 * 1024;

/// The longest inline command, or `*`/`$` header line, without its end
/// (Redis's `PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE_LEN: usize = 64 * 1024;

/// A malformed frame. The message is Redis's, without the
/// `ERR Protocol error: ` prefix; after it the connection must be closed,
/// as the stream can no longer be framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first byte of a frame.
    Start,
    /// An inline command; `Parser::pos` is how far `\n` was searched for.
    Inline,
    /// Inside a multibulk frame, with this many arguments still to come.
    Multibulk(usize),
    /// A frame was returned; the next call starts a new one.
    Done,
}

/// Splits a byte stream into requests.
///
/// Call [`parse`](Parser::parse) with a buffer that begins at the start of
/// the current frame. `Ok(Some(n))`: a frame of `n` bytes is complete, and
/// [`args`](Parser::args) of those bytes yields its arguments (none for an
/// empty frame, which is to be skipped). `Ok(None)`: the frame is
/// incomplete; call again with the same bytes and more after them. The
/// parser remembers how far it got, so a frame arriving in many reads is
/// not parsed again from its start, and a large bulk string is not looked
/// at until all of it is there.
#[derive(Debug)]
pub struct Parser {
    state: State,
    /// The arguments found so far, as ranges of the frame.
    args: Vec<Range<usize>>,
    /// Bytes of the frame already parsed (or, inline, searched).
    pos: usize,
    /// The frame cannot progress before the buffer holds this many bytes.
    need: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// A parser waiting for the first frame.
    pub fn new() -> Parser {
        Parser {
            state: State::Start,
            args: Vec::new(),
            pos: 0,
            need: 0,
        }
    }

    /// How many bytes the current frame needs before it can progress,
    /// counted from its start: once a bulk string's header is read, the
    /// end of that string, so a buffer can be sized for it exactly.
    /// Zero between frames.
    pub fn need(&self) -> usize {
        if self.state == State::Done {
            0
        } else {
            self.need
        }
    }

    /// Parses the frame at the start of `buf`; see [`Parser`].
    pub fn parse(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        if self.state == State::Done {
            self.args.clear();
            // A request with a million arguments should not pin 16 MB of
            // ranges for the rest of the connection.
            if self.args.capacity() > 4096 {
                self.args = Vec::new();
            }
            self.state = State::Start;
            self.pos = 0;
            self.need = 0;
        }
        if buf.len() < self.need.max(1) {
            return Ok(None);
        }
        if self.state == State::Start {
            if buf[0] == b'*' {
                let Some((count, next)) = header_line(buf, 1, "mbulk")? else {
                    self.need = buf.len() + 1;
                    return Ok(None);
                };
                if count > MAX_MULTIBULK_LEN as i64 {
                    return err("invalid multibulk length");
                }
                self.pos = next;
                if count <= 0 {
                    // `*0` and `*-1` are empty requests: Redis skips them.
                    self.state = State::Done;
                    return Ok(Some(next));
                }
                // Reserve for a plausible count only: the rest grows as
                // arguments actually arrive.
                self.args.reserve((count as usize).min(1024));
                self.state = State::Multibulk(count as usize);
            } else {
                self.state = State::Inline;
            }
        }
        match self.state {
            State::Inline => self.parse_inline(buf),
            State::Multibulk(_) => self.parse_multibulk(buf),
            State::Start | State::Done => unreachable!("handled above"),
        }
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let Some(nl) = find(buf, self.pos, b'\n') else {
            if buf.len() > MAX_INLINE_LEN {
                return err("too big inline request");
            }
            self.pos = buf.len();
            self.need = buf.len() + 1;
            return Ok(None);
        };
        if nl > MAX_INLINE_LEN {
            return err("too big inline request");
        }
        // Arguments are separated by blanks; quoting (Redis's
        // `sdssplitargs`) is not supported: a quote is an ordinary byte.
        let line = &buf[..nl];
        let mut i = 0;
        while i < line.len() {
            if is_blank(line[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < line.len() && !is_blank(line[i]) {
                i += 1;
            }
            self.args.push(start..i);
        }
        self.state = State::Done;
        Ok(Some(nl + 1))
    }

    fn parse_multibulk(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        let State::Multibulk(mut remaining) = self.state else {
            unreachable!("called in a multibulk frame")
        };
        while remaining > 0 {
            let pos = self.pos;
            if pos >= buf.len() {
                self.need = pos + 1;
                break;
            }
            if buf[pos] != b'$' {
                return err(format!("expected '$', got '{}'", printable(buf[pos])));
            }
            let Some((len, start)) = header_line(buf, pos + 1, "bulk")? else {
                self.need = buf.len() + 1;
                break;
            };
            if len < 0 || len > MAX_BULK_LEN as i64 {
                return err("invalid bulk length");
            }
            let end = start + len as usize;
            if buf.len() < end + 2 {
                // Wait for the whole string (and its CRLF) before looking
                // again; the header is re-read then, which is cheap.
                self.need = end + 2;
                break;
            }
            if &buf[end..end + 2] != b"\r\n" {
                return err("expected CRLF after bulk string");
            }
            self.args.push(start..end);
            self.pos = end + 2;
            remaining -= 1;
        }
        if remaining > 0 {
            self.state = State::Multibulk(remaining);
            return Ok(None);
        }
        self.state = State::Done;
        Ok(Some(self.pos))
    }

    /// The arguments of the frame just completed, as slices of `frame` (the
    /// buffer given to [`parse`](Parser::parse)).
    pub fn args<'a>(&'a self, frame: &'a [u8]) -> Args<'a> {
        Args::new(frame, &self.args)
    }
}

/// Reads a `*N\r\n` or `$N\r\n` line whose digits start at `from`:
/// `Some((N, offset after the CRLF))`, or `None` if the line is incomplete.
///
/// This runs once per argument, so the common line (a few digits, then
/// CRLF) is read inline, without overflow checks (18 digits cannot
/// overflow); anything else (a sign, a leading zero, a long, incomplete or
/// invalid line) goes to [`header_line_checked`], which decides. Callgrind
/// put this function at 78 instructions per call, the largest single cost
/// of a `SET`, before the fast path.
#[inline]
fn header_line(buf: &[u8], from: usize, what: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
    let mut i = from;
    let mut n: i64 = 0;
    while i < buf.len() && i - from < 18 && buf[i].is_ascii_digit() {
        n = n * 10 + i64::from(buf[i] - b'0');
        i += 1;
    }
    let digits = i - from;
    if digits > 0
        && (digits == 1 || buf[from] != b'0')
        && buf.get(i) == Some(&b'\r')
        && buf.get(i + 1) == Some(&b'\n')
    {
        return Ok(Some((n, i + 2)));
    }
    header_line_checked(buf, from, what)
}

/// [`header_line`] for every line: one pass over the digits, without
/// searching for the line end first. The number is read as [`parse_i64`]
/// reads it; a byte that cannot be part of one fails at once.
#[inline(never)]
fn header_line_checked(
    buf: &[u8],
    from: usize,
    what: &str,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let invalid = || {
        err(if what == "bulk" {
            "invalid bulk length"
        } else {
            "invalid multibulk length"
        })
    };
    let neg = buf.get(from) == Some(&b'-');
    let start = from + usize::from(neg);
    let mut i = start;
    // Accumulate negatively (i64::MIN has no positive twin); `None` once
    // it overflows, which is invalid but still a line to be read to its end.
    let mut n: Option<i64> = Some(0);
    while let Some(&b) = buf.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        n = n
            .and_then(|n| n.checked_mul(10))
            .and_then(|n| n.checked_sub(i64::from(b - b'0')));
        i += 1;
    }
    if i + 1 >= buf.len() {
        // No CRLF yet (or only its CR).
        if buf.len() - from > MAX_INLINE_LEN {
            return err(format!("too big {what} count string"));
        }
        return match buf.get(i) {
            None | Some(b'\r') => Ok(None),
            Some(_) => invalid(),
        };
    }
    let digits = i - start;
    let leading_zero = buf[start] == b'0' && (digits > 1 || neg);
    if buf[i] != b'\r' || buf[i + 1] != b'\n' || digits == 0 || leading_zero {
        return invalid();
    }
    match if neg { n } else { n.and_then(i64::checked_neg) } {
        Some(n) => Ok(Some((n, i + 2))),
        None => invalid(),
    }
}

fn find(buf: &[u8], from: usize, byte: u8) -> Option<usize> {
    buf[from..]
        .iter()
        .position(|&b| b == byte)
        .map(|i| i + from)
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn printable(b: u8) -> char {
    if b.is_ascii_graphic() || b == b' ' {
        b as char
    } else {
        '?'
    }
}

/// Parses a decimal `i64` as Redis does (`string2ll`): an optional `-`,
/// then digits with no leading zero (except `0` itself), no blanks, no `+`,
/// and no overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!neg).then_some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    if digits.len() > 19 {
        return None;
    }
    // Accumulate negatively: i64::MIN has no positive twin.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if neg {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Appends `+s\r\n` (`s` must hold no CR or LF).
pub fn simple(out: &mut Vec<u8>, s: &str) {
    out.push(b'+');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `-msg\r\n`; CR and LF in `msg` become spaces, as Redis does, so
/// the reply stays one line.
pub fn error(out: &mut Vec<u8>, msg: &str) {
    out.push(b'-');
    out.extend(
        msg.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Appends `:n\r\n`.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    push_i64(out, n);
    out.extend_from_slice(b"\r\n");
}

/// Appends `$len\r\nbytes\r\n`.
pub fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    push_i64(out, bytes.len() as i64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends the null reply (a missing key): RESP2's null bulk string,
/// `$-1\r\n`, or RESP3's null, `_\r\n`.
pub fn null(out: &mut Vec<u8>, resp3: bool) {
    out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

/// Appends the header of a map of `n` pairs (which follow, name then
/// value): RESP3's `%n`, or in RESP2 a flat array of `2n` replies.
pub fn map(out: &mut Vec<u8>, n: usize, resp3: bool) {
    if resp3 {
        out.push(b'%');
        push_i64(out, n as i64);
        out.extend_from_slice(b"\r\n");
    } else {
        array(out, 2 * n);
    }
}

/// Appends the header of an array of `n` replies (which follow).
pub fn array(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    push_i64(out, n as i64);
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal, without going through `fmt`.
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses every frame of `input`; panics on an incomplete tail.
    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = Parser::new();
        let mut off = 0;
        let mut frames = Vec::new();
        while off < input.len() {
            let n = p.parse(&input[off..])?.expect("a complete frame");
            let args = p.args(&input[off..off + n]);
            frames.push(args.iter_from(0).map(<[u8]>::to_vec).collect());
            off += n;
        }
        Ok(frames)
    }

    fn strs(frame: &[&str]) -> Vec<Vec<u8>> {
        frame.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    const FRAMES: &[(&[u8], &[&str])] = &[
        (b"*1\r\n$4\r\nPING\r\n", &["PING"]),
        (
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n",
            &["SET", "k", "hello"],
        ),
        (b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", &["GET", ""]),
        // A bulk string may hold CR, LF and any byte.
        (b"*2\r\n$4\r\nECHO\r\n$4\r\na\r\nb\r\n", &["ECHO", "a\r\nb"]),
        (b"PING\r\n", &["PING"]),
        (b"SET  k\tv\n", &["SET", "k", "v"]),
        (b"\r\n", &[]),
        (b"*0\r\n", &[]),
        (b"*-1\r\n", &[]),
    ];

    #[test]
    fn complete_frames() {
        for (input, want) in FRAMES {
            assert_eq!(parse_all(input).unwrap(), vec![strs(want)], "{input:?}");
        }
    }

    #[test]
    fn pipelined_frames_one_buffer() {
        let mut input = Vec::new();
        let mut want = Vec::new();
        for (frame, args) in FRAMES {
            input.extend_from_slice(frame);
            want.push(strs(args));
        }
        assert_eq!(parse_all(&input).unwrap(), want);
    }

    /// Every frame, cut at every byte: the prefix is incomplete, and the
    /// whole buffer (the prefix plus the rest) then parses, with the state
    /// kept from the first call.
    #[test]
    fn split_at_every_byte() {
        for (input, want) in FRAMES {
            for cut in 0..input.len() {
                let mut p = Parser::new();
                assert_eq!(p.parse(&input[..cut]), Ok(None), "{input:?} cut at {cut}");
                let n = p.parse(input).unwrap().expect("complete");
                assert_eq!(n, input.len());
                let got: Vec<Vec<u8>> = p.args(input).iter_from(0).map(<[u8]>::to_vec).collect();
                assert_eq!(got, strs(want), "{input:?} cut at {cut}");
            }
        }
    }

    /// One byte at a time, as a slow client would send it.
    #[test]
    fn byte_by_byte() {
        let input: &[u8] = b"*3\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n$2\r\nxy\r\n";
        let mut p = Parser::new();
        for len in 1..input.len() {
            assert_eq!(p.parse(&input[..len]), Ok(None), "at {len}");
        }
        assert_eq!(p.parse(input), Ok(Some(input.len())));
        let got: Vec<&[u8]> = p.args(input).iter_from(0).collect();
        assert_eq!(got, [&b"SET"[..], b"0123456789", b"xy"]);
        // The parser starts afresh after a complete frame.
        assert_eq!(p.parse(b"PING\r\n"), Ok(Some(6)));
        assert_eq!(p.args(b"PING\r\n").get(0), b"PING");
    }

    #[test]
    fn large_bulk_is_not_rescanned() {
        let mut p = Parser::new();
        let head = b"*1\r\n$100000\r\n";
        assert_eq!(p.parse(head), Ok(None));
        assert_eq!(p.need, head.len() + 100_000 + 2);
        let mut input = head.to_vec();
        input.extend(std::iter::repeat(b'x').take(100_000));
        assert_eq!(p.parse(&input), Ok(None));
        input.extend_from_slice(b"\r\n");
        assert_eq!(p.parse(&input), Ok(Some(input.len())));
        assert_eq!(p.args(&input).get(0).len(), 100_000);
    }

    fn malformed(input: &[u8]) -> String {
        let mut p = Parser::new();
        match p.parse(input) {
            Err(ProtocolError(m)) => m,
            other => panic!("{input:?} gave {other:?}"),
        }
    }

    #[test]
    fn malformed_frames() {
        let cases: &[(&[u8], &str)] = &[
            (b"*x\r\n", "invalid multibulk length"),
            (b"*\r\n", "invalid multibulk length"),
            (b"*1 \r\n", "invalid multibulk length"),
            (b"*01\r\n", "invalid multibulk length"),
            (b"*1\n", "invalid multibulk length"),
            (b"*99999999999999999999\r\n", "invalid multibulk length"),
            (b"*1048577\r\n", "invalid multibulk length"),
            (b"*1\r\n+PING\r\n", "expected '$', got '+'"),
            (b"*1\r\n\x01", "expected '$', got '?'"),
            (b"*1\r\n$-1\r\n", "invalid bulk length"),
            (b"*1\r\n$abc\r\n", "invalid bulk length"),
            (b"*1\r\n$536870913\r\n", "invalid bulk length"),
            (b"*1\r\n$4\r\nPINGxx", "expected CRLF after bulk string"),
            (
                b"*2\r\n$4\r\nPING\r\n$1\r\nab\r\n",
                "expected CRLF after bulk string",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(malformed(input), *want, "{input:?}");
        }
    }

    /// The inline fast path of `header_line` answers as the checked
    /// reader does, for every kind of line.
    #[test]
    fn header_line_fast_path_agrees() {
        let bodies = [
            "0",
            "1",
            "12",
            "007",
            "00",
            "-1",
            "-0",
            "",
            "123456789012345678",
            "1234567890123456789",
            "9223372036854775807",
            "9223372036854775808",
            "99999999999999999999",
            "1x",
            "+1",
        ];
        for body in bodies {
            for tail in ["\r\n", "\r", "", "\n", "\rx", "x\r\n", "\r\nmore"] {
                let line = format!("${body}{tail}").into_bytes();
                for what in ["bulk", "mbulk"] {
                    assert_eq!(
                        header_line(&line, 1, what),
                        header_line_checked(&line, 1, what),
                        "{line:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn overlong_lines_are_refused() {
        let mut inline = vec![b'a'; MAX_INLINE_LEN + 1];
        assert_eq!(malformed(&inline), "too big inline request");
        inline.push(b'\n');
        assert_eq!(malformed(&inline), "too big inline request");
        let mut mbulk = b"*1".to_vec();
        mbulk.extend(vec![b'1'; MAX_INLINE_LEN + 1]);
        assert_eq!(malformed(&mbulk), "too big mbulk count string");
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(vec![b'1'; MAX_INLINE_LEN + 1]);
        assert_eq!(malformed(&bulk), "too big bulk count string");
        // Just under the limit is only incomplete.
        let mut p = Parser::new();
        assert_eq!(p.parse(&vec![b'a'; MAX_INLINE_LEN]), Ok(None));
    }

    #[test]
    fn integers_as_redis_reads_them() {
        for (s, want) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("-7", Some(-7)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-0", None),
            ("007", None),
            ("+1", None),
            (" 1", None),
            ("1.5", None),
            ("", None),
            ("-", None),
        ] {
            assert_eq!(parse_i64(s.as_bytes()), want, "{s:?}");
        }
    }

    #[test]
    fn replies() {
        let mut out = Vec::new();
        simple(&mut out, "OK");
        error(&mut out, "ERR bad\r\nthing");
        integer(&mut out, -12);
        integer(&mut out, i64::MIN);
        bulk(&mut out, b"hi");
        null(&mut out, false);
        array(&mut out, 2);
        null(&mut out, true);
        map(&mut out, 2, false);
        map(&mut out, 2, true);
        assert_eq!(
            out,
            b"+OK\r\n-ERR bad  thing\r\n:-12\r\n:-9223372036854775808\r\n$2\r\nhi\r\n$-1\r\n*2\r\n_\r\n*4\r\n%2\r\n"
        );
    }
}
