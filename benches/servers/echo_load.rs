//! The load generator for the TCP echo benchmark (`benches/servers/echo.sh`).
//!
//! `echo_load ADDR CONNS SECONDS [SIZE]` opens `CONNS` connections to an
//! echo server at `ADDR`, then, for `SECONDS`, has each one do round trips
//! one after the other: write a `SIZE`-byte message (default 64), read the
//! `SIZE` bytes back (checked), repeat. All connections are in flight at
//! once, on one thread (raw mio, edge-triggered), so the generator costs a
//! single core. Connections are made before the clock starts.
//!
//! Prints one line, `key=value` pairs:
//! `conns=.. size=.. secs=.. round_trips=.. rtps=.. p50_us=.. p99_us=.. errors=..`
//! (latency: from the write of a message to the last byte of its echo).
//! The exit status is non-zero when a connection failed or no round trip
//! completed.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

struct Conn {
    stream: TcpStream,
    /// Bytes of the current message written so far.
    written: usize,
    /// Bytes of its echo read so far.
    read: usize,
    /// When the current message was first written.
    sent_at: Instant,
    /// The connection failed or closed: it takes no further part.
    dead: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: echo_load ADDR CONNS SECONDS [SIZE]");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[1].parse().expect("ADDR: host:port");
    let conns: usize = args[2].parse().expect("CONNS: a number");
    let secs: f64 = args[3].parse().expect("SECONDS: a number");
    let size: usize = args.get(4).map_or(64, |s| s.parse().expect("SIZE"));
    match run(addr, conns, Duration::from_secs_f64(secs), size) {
        Ok(ok) => std::process::exit(if ok { 0 } else { 1 }),
        Err(e) => {
            eprintln!("echo_load: {e}");
            std::process::exit(1);
        }
    }
}

fn run(addr: SocketAddr, n: usize, duration: Duration, size: usize) -> io::Result<bool> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    // The message: a recognisable pattern, so a wrong echo is caught.
    let msg: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut buf = vec![0u8; size.max(4096)];

    // Connect everyone first (blocking connect, then non-blocking mio).
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let std_stream = std::net::TcpStream::connect(addr)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        conns.push(Conn {
            stream,
            written: 0,
            read: 0,
            sent_at: Instant::now(),
            dead: false,
        });
    }

    let start = Instant::now();
    let deadline = start + duration;
    // Latencies in nanoseconds (u32: up to 4.2 s), one per round trip.
    let mut lat: Vec<u32> = Vec::with_capacity(1 << 20);
    let mut errors = 0usize;
    for c in conns.iter_mut() {
        c.sent_at = Instant::now();
        write_some(c, &msg, &mut errors);
    }
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match poll.poll(&mut events, Some(deadline - now)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.dead {
                continue;
            }
            if ev.is_writable() && c.written < size {
                write_some(c, &msg, &mut errors);
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                on_readable(c, &msg, &mut buf, &mut lat, &mut errors);
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();

    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1e3
    };
    println!(
        "conns={n} size={size} secs={elapsed:.3} round_trips={} rtps={:.0} p50_us={:.1} p99_us={:.1} errors={errors}",
        lat.len(),
        lat.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
    );
    Ok(errors == 0 && !lat.is_empty())
}

/// Writes what is left of the current message until done or `WouldBlock`.
fn write_some(c: &mut Conn, msg: &[u8], errors: &mut usize) {
    while c.written < msg.len() {
        match c.stream.write(&msg[c.written..]) {
            Ok(0) => return fail(c, errors, "write returned 0"),
            Ok(k) => c.written += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return fail(c, errors, &e.to_string()),
        }
    }
}

/// Reads the echo; when complete, records the latency and sends the next
/// message. A short read means the socket is drained (edge-triggered).
fn on_readable(c: &mut Conn, msg: &[u8], buf: &mut [u8], lat: &mut Vec<u32>, errors: &mut usize) {
    loop {
        let want = msg.len() - c.read;
        match c.stream.read(&mut buf[..want]) {
            Ok(0) => return fail(c, errors, "server closed the connection"),
            Ok(k) => {
                if buf[..k] != msg[c.read..c.read + k] {
                    return fail(c, errors, "echo differs from the message");
                }
                c.read += k;
                if c.read == msg.len() {
                    if c.written < msg.len() {
                        return fail(c, errors, "echo arrived before the message was sent");
                    }
                    let ns = c.sent_at.elapsed().as_nanos().min(u32::MAX as u128);
                    lat.push(ns as u32);
                    c.read = 0;
                    c.written = 0;
                    c.sent_at = Instant::now();
                    write_some(c, msg, errors);
                    // The next echo cannot be here yet; wait for its edge.
                    return;
                }
                if k < want {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return fail(c, errors, &e.to_string()),
        }
    }
}

fn fail(c: &mut Conn, errors: &mut usize, why: &str) {
    if !c.dead {
        eprintln!("echo_load: connection error: {why}");
        *errors += 1;
        c.dead = true;
    }
}
