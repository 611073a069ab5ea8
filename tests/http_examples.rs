//! The HTTP example servers (`http_hello`, callbacks, and
//! `http_hello_async`) as black boxes against malformed and hostile
//! clients: each test builds the examples (once), starts each on a free
//! loopback port, speaks raw HTTP/1.1 with a `std::net::TcpStream`, and
//! kills it by its PID at the end. The framing is
//! `benches/servers/http_common.rs`; the connection handling is
//! `examples/common/http_conn.rs` and `examples/http_hello_async.rs`.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

use proptest::prelude::*;

#[path = "../benches/servers/http_common.rs"]
#[allow(dead_code)]
mod http_common;
mod support;

/// Generous: the machine is shared and slow at times.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

const SERVERS: [&str; 2] = ["http_hello", "http_hello_async"];

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
const GET_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";

/// Builds the examples with the profile of this test binary and returns
/// the directory they are in. Examples have no `CARGO_BIN_EXE_*`, hence
/// the explicit build.
fn examples_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/http_examples-<hash> -> target/<profile>
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
        let target_dir = profile_dir.parent().expect("target dir");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args(["build", "--quiet"]);
        for name in SERVERS {
            build.args(["--example", name]);
        }
        build
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build of the HTTP examples failed");
        profile_dir.join("examples")
    })
}

/// A running server, killed (by PID) and reaped on drop.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts example `name` with the environment `env` (its timeouts).
    fn start(name: &'static str, env: &[(&str, &str)]) -> Server {
        let bin = examples_dir().join(name);
        // A port that was free a moment ago; if another process takes it
        // in between, the server exits and we try another.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let child = Command::new(&bin)
                .arg(format!("127.0.0.1:{port}"))
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
            let mut server = Server { name, child, port };
            if support::net::wait_listening(&mut server.child, port, Duration::from_secs(30)) {
                return server;
            }
        }
        panic!("{name} did not start");
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s
    }

    /// Sends `request` on a new connection and reads until the server
    /// closes it.
    fn exchange(&self, request: &[u8]) -> Vec<u8> {
        let mut s = self.connect();
        // The server may answer and close before taking all of a bad
        // request: a failed write is not the test's business.
        let _ = s.write_all(request);
        read_to_eof(&mut s)
    }

    /// The server's peak resident memory (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

/// Everything until EOF; a reset ends it too (what came before it is
/// kept), and so does the read timeout (the test's asserts then fail).
fn read_to_eof(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return got,
        }
    }
}

/// Reads exactly `n` responses (each is a status line, headers and a
/// `Content-Length` body) and returns their status codes.
fn read_responses(s: &mut TcpStream, n: usize) -> Vec<u16> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let codes = statuses(&got);
        if codes.len() >= n {
            return codes;
        }
        match s.read(&mut buf) {
            Ok(0) => panic!("EOF after {:?}", String::from_utf8_lossy(&got)),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(e) => panic!("read: {e} after {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

/// The status codes of the complete responses in `bytes`.
fn statuses(mut bytes: &[u8]) -> Vec<u16> {
    let mut codes = Vec::new();
    while let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = std::str::from_utf8(&bytes[..end]).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap();
        assert!(status.starts_with("HTTP/1.1 "), "status line {status:?}");
        let code = status[9..12].parse().expect("status code");
        let len: usize = lines
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .expect("Content-Length")
            .parse()
            .unwrap();
        if bytes.len() < end + 4 + len {
            break;
        }
        codes.push(code);
        bytes = &bytes[end + 4 + len..];
    }
    codes
}

/// The status codes of everything a server sent before closing.
fn statuses_until_close(got: &[u8]) -> Vec<u16> {
    let codes = statuses(got);
    assert!(
        !codes.is_empty(),
        "no response in {:?}",
        String::from_utf8_lossy(got)
    );
    codes
}

#[test]
fn valid_and_pipelined_requests_are_answered_in_order() {
    for name in SERVERS {
        let server = Server::start(name, &[]);
        let mut s = server.connect();
        s.write_all(GET).unwrap();
        assert_eq!(read_responses(&mut s, 1), [200], "{name}");
        let body = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!";
        s.write_all(GET).unwrap();
        let mut one = vec![0u8; body.len()];
        s.read_exact(&mut one).unwrap();
        assert_eq!(one, body, "{name}: the benchmark's response");
        // Ten in one write, one of them with bare-LF line endings (accepted,
        // as Node and httparse do) and one HTTP/1.0 keep-alive; then close.
        let mut burst = GET.repeat(8);
        burst.extend_from_slice(b"GET /lf HTTP/1.1\nHost: a\n\n");
        burst.extend_from_slice(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        burst.extend_from_slice(GET_CLOSE);
        burst.extend_from_slice(GET); // after the close: ignored
        s.write_all(&burst).unwrap();
        assert_eq!(statuses(&read_to_eof(&mut s)), [200; 11], "{name}");
        // A request split over many writes.
        let mut s = server.connect();
        for chunk in GET_CLOSE.chunks(5) {
            s.write_all(chunk).unwrap();
            sleep(Duration::from_millis(5));
        }
        assert_eq!(statuses(&read_to_eof(&mut s)), [200], "{name}");
        // HTTP/1.0 closes after the response by default.
        let got = server.exchange(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(statuses(&got), [200], "{name}");
    }
}

#[test]
fn bodies_are_skipped_by_content_length() {
    for name in SERVERS {
        let server = Server::start(name, &[]);
        let mut s = server.connect();
        // A body that looks like requests (one without Host: a 400 if it
        // were parsed as one), then a real request.
        let body = b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let mut req = format!(
            "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        req.extend_from_slice(GET);
        s.write_all(&req).unwrap();
        assert_eq!(read_responses(&mut s, 2), [200, 200], "{name}");
        // A body larger than a read, in pieces; equal duplicate lengths
        // are one length.
        let big = 200 * 1024;
        s.write_all(
            format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {big}, {big}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let chunk = vec![b'G'; 8 * 1024];
        for _ in 0..big / chunk.len() {
            s.write_all(&chunk).unwrap();
        }
        s.write_all(GET_CLOSE).unwrap();
        assert_eq!(statuses(&read_to_eof(&mut s)), [200, 200], "{name}");
    }
}

#[test]
fn malformed_requests_get_400_and_close() {
    let bad: &[&[u8]] = &[
        b"garbage\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 binary, a TLS hello",
        b"GET / FTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nno colon\r\n\r\n",
        b"GET / HTTP/1.1\rHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",                       // no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", // two
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    ];
    for name in SERVERS {
        let server = Server::start(name, &[]);
        for req in bad {
            let got = server.exchange(req);
            assert_eq!(
                statuses_until_close(&got),
                [400],
                "{name}: {:?}",
                String::from_utf8_lossy(req)
            );
        }
        // A bad request after good ones: they are answered, then the 400.
        let mut req = GET.repeat(2);
        req.extend_from_slice(b"BAD\x01REQUEST\r\n\r\n");
        req.extend_from_slice(GET);
        assert_eq!(statuses(&server.exchange(&req)), [200, 200, 400], "{name}");
        // The server is still there.
        assert_eq!(statuses(&server.exchange(GET_CLOSE)), [200], "{name}");
    }
}

#[test]
fn oversized_heads_get_431() {
    let mut huge = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat(b'a').take(80 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    let mut many = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 0..100 {
        many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    for name in SERVERS {
        let server = Server::start(name, &[]);
        assert_eq!(
            statuses_until_close(&server.exchange(&huge)),
            [431],
            "{name}: 80 KB"
        );
        assert_eq!(
            statuses_until_close(&server.exchange(&many)),
            [431],
            "{name}: 100 headers"
        );
        // Without its end: 431 once past the cap, not a wait.
        let got = server.exchange(&huge[..huge.len() - 4]);
        assert_eq!(statuses_until_close(&got), [431], "{name}: 80 KB, no end");
    }
}

#[test]
fn chunked_bodies_are_skipped() {
    // Chunks that look like requests, an extension, a trailer; then a
    // request split inside its chunk framing.
    let mut req = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
12\r\nGET / HTTP/1.1\r\n\r\n\r\n\
5;ext=1\r\nhello\r\n\
0\r\nX-Trailer: t\r\n\r\n"
        .to_vec();
    req.extend_from_slice(GET);
    let split = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n\
a\r\n0123456789\r\n0\r\n\r\n";
    for name in SERVERS {
        let server = Server::start(name, &[]);
        let mut s = server.connect();
        s.write_all(&req).unwrap();
        assert_eq!(read_responses(&mut s, 2), [200, 200], "{name}");
        for piece in split.chunks(3) {
            s.write_all(piece).unwrap();
            sleep(Duration::from_millis(2));
        }
        s.write_all(GET_CLOSE).unwrap();
        assert_eq!(statuses(&read_to_eof(&mut s)), [200, 200], "{name}");
    }
}

#[test]
fn conflicting_lengths_and_transfer_encodings_are_rejected() {
    let cases: &[(&[u8], &[u16])] = &[
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            &[400],
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!", &[400]),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", &[501]),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            &[501],
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            &[501],
        ),
        (
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[400],
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            &[200, 400],
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
            &[200, 400],
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[400],
        ),
    ];
    for name in SERVERS {
        let server = Server::start(name, &[]);
        for (req, code) in cases {
            let got = server.exchange(req);
            assert_eq!(
                statuses_until_close(&got),
                *code,
                "{name}: {:?}",
                String::from_utf8_lossy(req)
            );
        }
    }
}

#[test]
fn header_and_idle_timeouts_close_connections() {
    let env = [
        ("HTTP_HEADER_TIMEOUT_MS", "300"),
        ("HTTP_IDLE_TIMEOUT_MS", "600"),
    ];
    for name in SERVERS {
        let server = Server::start(name, &env);
        // Half a request: 408, then closed, after the header timeout.
        let started = Instant::now();
        let got = server.exchange(b"GET / HTTP/1.1\r\nHost: a\r\n");
        let took = started.elapsed();
        assert_eq!(statuses_until_close(&got), [408], "{name}");
        assert!(
            took >= Duration::from_millis(250),
            "{name}: closed after {took:?}"
        );
        // A head dripped a byte at a time does not move its deadline
        // (slowloris): closed while it is still dripping.
        let mut s = server.connect();
        let started = Instant::now();
        let mut closed = false;
        for b in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "
            .iter()
            .chain([b'a'; 100].iter())
        {
            if s.write_all(&[*b]).is_err() {
                closed = true;
                break;
            }
            sleep(Duration::from_millis(50));
        }
        let took = started.elapsed();
        if !closed {
            let got = read_to_eof(&mut s);
            assert_eq!(statuses(&got), [408], "{name}: slow head");
        }
        assert!(
            took < Duration::from_secs(5),
            "{name}: slow head lasted {took:?}"
        );
        // A connection that sends nothing is closed, silently, after the
        // idle timeout.
        let mut s = server.connect();
        let started = Instant::now();
        assert!(
            read_to_eof(&mut s).is_empty(),
            "{name}: nothing for nothing"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(10),
            "{name}: silent connection closed after {took:?}"
        );
        // A head that arrives in time, after the connection was idle for
        // less than the idle timeout, is answered; then, idle, the
        // connection is closed.
        let mut s = server.connect();
        sleep(Duration::from_millis(150));
        s.write_all(GET).unwrap();
        assert_eq!(read_responses(&mut s, 1), [200], "{name}");
        let started = Instant::now();
        assert!(
            read_to_eof(&mut s).is_empty(),
            "{name}: idle close sends nothing"
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(10),
            "{name}: idle connection closed after {took:?}"
        );
    }
}

#[test]
fn a_client_that_never_reads_does_not_stop_the_server() {
    for name in SERVERS {
        let server = Server::start(name, &[]);
        let before = server.peak_rss_kib();
        // Pipelines requests as fast as the server takes them and never
        // reads a response: the server stops taking them once its write
        // queue is full, and this writer blocks.
        let hog = server.connect();
        hog.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let mut hog = hog.try_clone().unwrap();
            std::thread::spawn(move || {
                let burst = GET.repeat(1000);
                let mut sent = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    match hog.write(&burst) {
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == ErrorKind::TimedOut => {}
                        Err(_) => break, // closed by the idle timeout
                    }
                }
                sent
            })
        };
        sleep(Duration::from_millis(1500));
        // Another client is served meanwhile.
        let started = Instant::now();
        let got = server.exchange(GET_CLOSE);
        assert_eq!(statuses(&got), [200], "{name}");
        assert!(started.elapsed() < Duration::from_secs(5), "{name}");
        stop.store(true, Ordering::Relaxed);
        let sent = writer.join().unwrap();
        let after = server.peak_rss_kib();
        assert!(sent > 1 << 20, "{name}: the hog sent only {sent} bytes");
        // Bounded: a few MB of socket and queue buffers at most, not the
        // hog's megabytes of responses.
        assert!(
            after < before + 32 * 1024,
            "{name}: peak RSS went from {before} KiB to {after} KiB ({} name)",
            server.name
        );
        drop(hog);
    }
}

/// Feeds `input` to a [`http_common::Framer`] in pieces cut at `cuts`,
/// keeping the unconsumed bytes as the servers do: the responses, and
/// whether it asked to close.
fn frame_in_pieces(input: &[u8], cuts: &[usize]) -> (Vec<u8>, bool) {
    let mut framer = http_common::Framer::default();
    let mut pending = Vec::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.push(input.len());
    cuts.sort_unstable();
    for cut in cuts {
        if cut <= at {
            continue;
        }
        pending.extend_from_slice(&input[at..cut]);
        at = cut;
        let parsed = framer.answer(&pending, &mut out);
        pending.drain(..parsed.consumed);
        if parsed.close {
            return (out, true);
        }
    }
    (out, false)
}

/// Requests the framing must answer with one 200 each, whatever the reads.
const VALID: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /lf HTTP/1.1\nHost: a\nAccept: */*\n\n",
    b"\r\nGET /after-empty-line HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
3;x=y\r\nGET\r\n12\r\n\r\n\r\nGET / HTTP/1.1\r\n0\r\nT: v\r\n\r\n",
];

proptest! {
    /// However the bytes of pipelined requests are cut into reads, the
    /// framing answers the same, in order, and a body is never a request.
    #[test]
    fn framing_does_not_depend_on_read_boundaries(
        picks in proptest::collection::vec(0..VALID.len(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        bad in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut input: Vec<u8> = picks.iter().flat_map(|&i| VALID[i].iter().copied()).collect();
        let (out, close) = frame_in_pieces(&input, &cuts);
        prop_assert!(!close);
        prop_assert_eq!(out, http_common::RESPONSE.repeat(picks.len()));
        // Arbitrary bytes after them never panic nor change the answers
        // already given; cut into reads, they get the answers they get in
        // one read, or the first of them (a partial head is parsed again
        // only once a blank line may have arrived, so a 400 can wait for
        // more bytes or the header timeout).
        input.extend_from_slice(&bad);
        let (whole, _) = frame_in_pieces(&input, &[]);
        let (pieces, _) = frame_in_pieces(&input, &cuts);
        prop_assert!(whole.starts_with(&http_common::RESPONSE.repeat(picks.len())));
        prop_assert!(pieces.starts_with(&http_common::RESPONSE.repeat(picks.len())));
        prop_assert!(whole.starts_with(&pieces));
    }
}
