//! The load tool for the fairness benchmark (`benches/servers/fairness.sh`):
//! does a busy connection starve the others?
//!
//! `fair_load ADDR MODE FLOODERS SECONDS [SIZE [INTERVAL_MS [TIMEOUT_MS [WARMUP_MS]]]]`
//!
//! - `FLOODERS` connections each write as fast as the socket takes, `SIZE`
//!   bytes per write (default 16384; 64 for small messages), and read and
//!   discard whatever comes back, so the server is kept busy both ways. They
//!   all run on one thread (raw mio, a bounded number of reads and writes
//!   per connection per pass, so no flooder hogs the generator).
//! - One probe connection, on its own thread, sends a small message, waits
//!   for its reply, records the round-trip time, and repeats every
//!   `INTERVAL_MS` (default 10; the next probe leaves `INTERVAL_MS` after the
//!   previous one left, or at once if its reply took longer).
//!
//! The probe connects first and makes one untimed round trip (so it is
//! accepted and answering), then the flooders connect and flood for
//! `WARMUP_MS` (default 500) before the probe's `SECONDS` of measurement
//! begin. The flooders stop when the probe does.
//!
//! `MODE`:
//! - `echo`: raw bytes. The probe sends 32 bytes and waits for the same 32
//!   bytes (checked); the flooders send a byte pattern.
//! - `redis`: RESP. The probe sends `*1\r\n$4\r\nPING\r\n` and waits for
//!   `+PONG\r\n`; each flooder write is as many whole RESP PINGs as fit in
//!   `SIZE` bytes (at least one), pipelined.
//! - `redis-inline`: the same with inline `PING\r\n`.
//! - `http`: HTTP/1.1 keep-alive. Each flooder write is as many whole
//!   `GET / HTTP/1.1\r\nHost: x\r\n\r\n` requests (27 bytes) as fit in
//!   `SIZE` bytes (at least one), pipelined; the responses are read and
//!   discarded. The probe sends one such `GET` and waits for one complete
//!   response: the head up to its blank line, then `Content-Length` bytes
//!   of body. It must be a `200` with a `Content-Length` and the body
//!   `Hello, World!` (what the benchmark's HTTP servers answer), with
//!   nothing after it.
//!
//! A probe with no complete reply within `TIMEOUT_MS` (default 3000) is
//! *missed*: it is printed on its own line, counted in the percentiles at
//! `TIMEOUT_MS` (a lower bound on what it would have taken), and the probe
//! reconnects (its old connection is out of step). A reply that completes
//! just past the timeout is counted as missed too, at its real time. So the run is bounded by
//! `WARMUP_MS + SECONDS + TIMEOUT_MS`, plus connecting.
//!
//! Output on stdout: one line of `key=value` pairs:
//! `mode=.. flooders=.. size=.. secs=.. probes=.. p50_us=.. p99_us=..
//! max_us=.. missed=.. flood_out_mb_s=.. flood_in_mb_s=.. errors=..`
//! (flood_*: the flooders' bytes written to and read from the server per
//! second of the measurement, in MB of 10^6 bytes), then one line per missed
//! probe. The exit status is non-zero when the probe failed (an error, a
//! wrong reply, no probe completed) or a flooder hit an error other than the
//! server closing it.
//! Loopback use only.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Echo,
    Redis,
    RedisInline,
    Http,
}

/// The request the `http` mode sends, the probe and the flooders alike.
const HTTP_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// The body every response to it must carry.
const HTTP_BODY: &[u8] = b"Hello, World!";

/// The largest response head the probe accepts.
const HTTP_MAX_HEAD: usize = 4096;

/// What the probe waits for.
enum Expect {
    /// These bytes, exactly.
    Exact(Vec<u8>),
    /// One complete HTTP response (head and `Content-Length` body).
    Http,
}

impl Expect {
    /// The most bytes a reply can take (the probe's read buffer size).
    fn max_len(&self) -> usize {
        match self {
            Expect::Exact(r) => r.len(),
            Expect::Http => HTTP_MAX_HEAD + HTTP_BODY.len(),
        }
    }

    /// Whether `got`, the bytes read so far, is the whole reply: an error
    /// if it cannot be (a wrong byte, a bad response, bytes after it).
    fn complete(&self, got: &[u8]) -> Result<bool, String> {
        match self {
            Expect::Exact(r) => {
                if got != &r[..got.len()] {
                    return Err(format!(
                        "unexpected reply to the probe: {:?}",
                        String::from_utf8_lossy(got)
                    ));
                }
                Ok(got.len() == r.len())
            }
            Expect::Http => {
                let Some((head, end)) = http_response_end(got)? else {
                    if got.len() >= HTTP_MAX_HEAD {
                        return Err(format!(
                            "no end of the response head in {HTTP_MAX_HEAD} bytes"
                        ));
                    }
                    return Ok(false);
                };
                if got.len() < end {
                    return Ok(false);
                }
                if got.len() > end {
                    return Err(format!(
                        "{} bytes after the response to the probe's one request",
                        got.len() - end
                    ));
                }
                if &got[head..] != HTTP_BODY {
                    return Err(format!(
                        "unexpected response body: {:?}",
                        String::from_utf8_lossy(&got[head..])
                    ));
                }
                Ok(true)
            }
        }
    }
}

/// Where the head of the HTTP response at the start of `b` ends (after its
/// blank line) and where the response ends (the head plus its
/// `Content-Length`), or `None` while the head is incomplete. Anything but
/// a `200` with one valid `Content-Length` is an error.
fn http_response_end(b: &[u8]) -> Result<Option<(usize, usize)>, String> {
    let Some(head_len) = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&b[..head_len])
        .map_err(|_| "a response head that is not UTF-8".to_string())?;
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 200 ") {
        return Err(format!("unexpected status line: {status:?}"));
    }
    let mut len = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad response header line: {line:?}"))?;
        if name.eq_ignore_ascii_case("content-length") {
            let v: usize = value
                .trim()
                .parse()
                .map_err(|_| format!("bad Content-Length: {value:?}"))?;
            if len.is_some_and(|l| l != v) {
                return Err("two different Content-Lengths".to_string());
            }
            len = Some(v);
        }
    }
    let len = len.ok_or_else(|| "a response without Content-Length".to_string())?;
    Ok(Some((head_len, head_len + len)))
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        match s {
            "echo" => Some(Mode::Echo),
            "redis" => Some(Mode::Redis),
            "redis-inline" => Some(Mode::RedisInline),
            "http" => Some(Mode::Http),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Redis => "redis",
            Mode::RedisInline => "redis-inline",
            Mode::Http => "http",
        }
    }

    /// One request in this mode's framing: a PING (redis modes) or a GET
    /// (http; not used in echo mode).
    fn ping(self) -> &'static [u8] {
        match self {
            Mode::RedisInline => b"PING\r\n",
            Mode::Http => HTTP_GET,
            _ => b"*1\r\n$4\r\nPING\r\n",
        }
    }

    /// What a flooder writes, over and over (a partial write goes on from
    /// where it stopped, so the byte stream stays well formed).
    fn flood_message(self, size: usize) -> Vec<u8> {
        match self {
            Mode::Echo => (0..size).map(|i| b'a' + (i % 26) as u8).collect(),
            _ => {
                let one = self.ping();
                one.repeat((size / one.len()).max(1))
            }
        }
    }

    /// The probe's message and the reply it waits for.
    fn probe(self) -> (Vec<u8>, Expect) {
        match self {
            Mode::Echo => {
                let m = b"probe: is anyone listening?....\n".to_vec();
                (m.clone(), Expect::Exact(m))
            }
            Mode::Http => (self.ping().to_vec(), Expect::Http),
            _ => (self.ping().to_vec(), Expect::Exact(b"+PONG\r\n".to_vec())),
        }
    }
}

struct Config {
    addr: SocketAddr,
    mode: Mode,
    flooders: usize,
    duration: Duration,
    size: usize,
    interval: Duration,
    timeout: Duration,
    warmup: Duration,
}

fn usage() -> ! {
    eprintln!(
        "usage: fair_load ADDR echo|redis|redis-inline|http FLOODERS SECONDS \
         [SIZE [INTERVAL_MS [TIMEOUT_MS [WARMUP_MS]]]]"
    );
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        usage();
    }
    let num = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map_or(Some(default), |s| s.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let cfg = Config {
        addr: args[1].parse().unwrap_or_else(|_| usage()),
        mode: Mode::parse(&args[2]).unwrap_or_else(|| usage()),
        flooders: args[3].parse().unwrap_or_else(|_| usage()),
        duration: Duration::from_secs_f64(args[4].parse().unwrap_or_else(|_| usage())),
        size: num(5, 16384).max(1) as usize,
        interval: Duration::from_millis(num(6, 10)),
        timeout: Duration::from_millis(num(7, 3000).max(1)),
        warmup: Duration::from_millis(num(8, 500)),
    };
    match run(&cfg) {
        Ok(ok) => std::process::exit(if ok { 0 } else { 1 }),
        Err(e) => {
            eprintln!("fair_load: {e}");
            std::process::exit(1);
        }
    }
}

fn run(cfg: &Config) -> io::Result<bool> {
    // The probe first: connected and answering before the flood starts.
    let (msg, reply) = cfg.mode.probe();
    let mut probe = connect_probe(cfg.addr, cfg.timeout)?;
    let mut buf = vec![0u8; reply.max_len()];
    if !round_trip(
        &mut probe,
        &msg,
        &reply,
        &mut buf,
        Instant::now() + cfg.timeout,
    )? {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the probe's first round trip (before any flooding) got no reply",
        ));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let flood_start = Instant::now();
    let measure_start = flood_start + cfg.warmup;
    let flood = {
        let (addr, mode, n, size, stop) =
            (cfg.addr, cfg.mode, cfg.flooders, cfg.size, stop.clone());
        std::thread::spawn(move || flood(addr, mode, n, size, measure_start, &stop))
    };

    // Let the flood build up, then probe.
    std::thread::sleep(measure_start.saturating_duration_since(Instant::now()));
    let probe_start = Instant::now();
    let deadline = probe_start + cfg.duration;
    let mut lat_ns: Vec<u64> = Vec::with_capacity(8192);
    let mut missed: Vec<(usize, f64)> = Vec::new();
    let mut probe_error = None;
    let mut next = probe_start;
    while next < deadline {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let sent = Instant::now();
        next = sent + cfg.interval;
        match round_trip(&mut probe, &msg, &reply, &mut buf, sent + cfg.timeout) {
            Ok(true) => {
                let took = sent.elapsed();
                // A reply that completed past the timeout (the last read
                // returned just after it) is late too, though in step.
                if took > cfg.timeout {
                    missed.push((lat_ns.len(), (sent - probe_start).as_secs_f64()));
                }
                lat_ns.push(took.as_nanos() as u64);
            }
            Ok(false) => {
                missed.push((lat_ns.len(), (sent - probe_start).as_secs_f64()));
                lat_ns.push(cfg.timeout.as_nanos() as u64);
                // Out of step with its replies: start over on a new connection.
                match connect_probe(cfg.addr, cfg.timeout) {
                    Ok(s) => probe = s,
                    Err(e) => {
                        probe_error = Some(format!("reconnecting after a miss: {e}"));
                        break;
                    }
                }
            }
            Err(e) => {
                probe_error = Some(e.to_string());
                break;
            }
        }
    }
    let probe_secs = probe_start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let flood = flood
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the flood thread panicked")))?;

    lat_ns.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat_ns.is_empty() {
            return f64::NAN;
        }
        let i = ((lat_ns.len() as f64 * p).ceil() as usize).clamp(1, lat_ns.len()) - 1;
        lat_ns[i] as f64 / 1e3
    };
    let mb_s = |bytes: u64| bytes as f64 / 1e6 / flood.secs.max(1e-9);
    let errors = flood.errors + usize::from(probe_error.is_some());
    println!(
        "mode={} flooders={} size={} secs={probe_secs:.3} probes={} p50_us={:.1} p99_us={:.1} \
         max_us={:.1} missed={} flood_out_mb_s={:.1} flood_in_mb_s={:.1} flood_closed={} errors={errors}",
        cfg.mode.name(),
        cfg.flooders,
        cfg.size,
        lat_ns.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
        missed.len(),
        mb_s(flood.out_bytes),
        mb_s(flood.in_bytes),
        flood.closed,
    );
    for (i, at) in &missed {
        println!(
            "missed probe {i}, sent {at:.3} s into the measurement: no reply within {} ms",
            cfg.timeout.as_millis()
        );
    }
    if let Some(e) = &probe_error {
        eprintln!("fair_load: probe: {e}");
    }
    Ok(errors == 0 && lat_ns.len() > missed.len())
}

fn connect_probe(addr: SocketAddr, timeout: Duration) -> io::Result<std::net::TcpStream> {
    let s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// Sends `msg` and reads until `reply` has come back whole: `Ok(true)`;
/// `Ok(false)` if `by` passed first. A different reply is an error. `buf`
/// holds at least `reply.max_len()` bytes.
fn round_trip(
    s: &mut std::net::TcpStream,
    msg: &[u8],
    reply: &Expect,
    buf: &mut [u8],
    by: Instant,
) -> io::Result<bool> {
    match s.write_all(msg) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            return Ok(false)
        }
        Err(e) => return Err(e),
    }
    let limit = reply.max_len().min(buf.len());
    let mut got = 0;
    loop {
        if reply
            .complete(&buf[..got])
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidData, m))?
        {
            return Ok(true);
        }
        if got == limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a reply to the probe longer than {limit} bytes"),
            ));
        }
        let left = by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf[got..limit]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the probe's connection",
                ))
            }
            Ok(k) => got += k,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sets the calling thread's niceness (Linux: `setpriority` on a thread id
/// applies to that thread alone).
#[cfg(target_os = "linux")]
fn lower_this_threads_priority(nice: libc::c_int) {
    // SAFETY: gettid has no preconditions; setpriority only reads its
    // integer arguments.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, nice)
    };
    if rc != 0 {
        eprintln!(
            "fair_load: could not lower the flood thread's priority: {}",
            io::Error::last_os_error()
        );
    }
}

/// Elsewhere `setpriority` takes no thread id (it would lower the whole
/// process, server included): the flood thread keeps its priority.
#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority(_nice: libc::c_int) {
    eprintln!("fair_load: thread priorities are Linux-only; the flood thread keeps its priority");
}

struct Flooder {
    stream: TcpStream,
    /// Where the next write starts in the (repeated) message.
    off: usize,
    readable: bool,
    writable: bool,
    dead: bool,
}

struct FloodReport {
    /// Seconds from the start of the measurement to the end of the flood.
    secs: f64,
    /// Bytes written and read over those seconds.
    out_bytes: u64,
    in_bytes: u64,
    /// Flooders the server closed (not counted as errors).
    closed: usize,
    errors: usize,
}

/// Writes at most this much per flooder per pass, and reads at most
/// `READS_PER_PASS` buffers, so one flooder cannot hold the thread.
const WRITE_BYTES_PER_PASS: usize = 64 * 1024;
const READS_PER_PASS: usize = 4;

fn flood(
    addr: SocketAddr,
    mode: Mode,
    n: usize,
    size: usize,
    measure_start: Instant,
    stop: &AtomicBool,
) -> io::Result<FloodReport> {
    // The flood thread shares its core with the probe thread: niceness 10
    // (a tenth of the weight) lets the probe run as soon as its reply is in,
    // so the generator adds little to the probe's round trips. Raising
    // niceness needs no privilege; if it fails, the run goes on.
    lower_this_threads_priority(10);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(256);
    let msg = mode.flood_message(size);
    let writes_per_pass = (WRITE_BYTES_PER_PASS / msg.len()).clamp(1, 256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let s = std::net::TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(s);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        conns.push(Flooder {
            stream,
            off: 0,
            readable: true,
            writable: true,
            dead: false,
        });
    }

    let (mut out_bytes, mut in_bytes) = (0u64, 0u64);
    // The counts at the start of the measurement (taken once).
    let mut base: Option<(u64, u64, Instant)> = None;
    let (mut closed, mut errors) = (0usize, 0usize);
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if base.is_none() && now >= measure_start {
            base = Some((out_bytes, in_bytes, now));
        }
        let busy = conns.iter().any(|c| !c.dead && (c.readable || c.writable));
        let wait = if busy {
            Duration::ZERO
        } else {
            Duration::from_millis(20)
        };
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.readable = true;
            }
            if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                c.writable = true;
            }
        }
        for c in conns.iter_mut().filter(|c| !c.dead) {
            if c.readable {
                for _ in 0..READS_PER_PASS {
                    match c.stream.read(&mut buf) {
                        Ok(0) => {
                            c.dead = true;
                            closed += 1;
                            break;
                        }
                        Ok(k) => in_bytes += k as u64,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            c.readable = false;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            if e.kind() == io::ErrorKind::ConnectionReset {
                                closed += 1;
                            } else {
                                eprintln!("fair_load: flooder read: {e}");
                                errors += 1;
                            }
                            c.dead = true;
                            break;
                        }
                    }
                }
            }
            if c.writable && !c.dead {
                for _ in 0..writes_per_pass {
                    match c.stream.write(&msg[c.off..]) {
                        Ok(0) => {
                            c.dead = true;
                            errors += 1;
                            break;
                        }
                        Ok(k) => {
                            out_bytes += k as u64;
                            c.off = (c.off + k) % msg.len();
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            c.writable = false;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            // A server that closed on us (EPIPE, ECONNRESET)
                            // is reported, not a failure of the tool.
                            if !matches!(
                                e.kind(),
                                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                            ) {
                                eprintln!("fair_load: flooder write: {e}");
                                errors += 1;
                            } else {
                                closed += 1;
                            }
                            c.dead = true;
                            break;
                        }
                    }
                }
            }
        }
    }
    let (o0, i0, t0) = base.unwrap_or((out_bytes, in_bytes, Instant::now()));
    Ok(FloodReport {
        secs: t0.elapsed().as_secs_f64(),
        out_bytes: out_bytes - o0,
        in_bytes: in_bytes - i0,
        closed,
        errors,
    })
}
