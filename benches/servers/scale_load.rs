//! Load tools for the scaling benchmark (`benches/servers/scale.sh`).
//!
//! `scale_load hold ADDR N SECONDS [echo|ping]` opens `N` connections to
//! `ADDR`, one after the other; on each, one exchange: an 8-byte echo
//! (`echo`, the default: write 8 bytes, read them back, checked) or one
//! Redis `PING` (`ping`: expects `+PONG`). Then it prints `ready N` on
//! stdout and holds every connection open, idle, until `SECONDS` have
//! passed or it is killed. One process holds up to its fd limit (20,000
//! here): the script uses one per 15,000 connections at most.
//!
//! `scale_load accept ADDR TOTAL INFLIGHT [SECONDS]` makes `TOTAL` short
//! connections, `INFLIGHT` at a time (non-blocking, one thread, mio): each
//! connects, does one 8-byte echo, and closes with `SO_LINGER` 0 (a RST, so
//! no `TIME_WAIT` uses up the ~28k ephemeral ports). Stops after `SECONDS`
//! (default 120) even if not done. Prints one line:
//! `conns=.. secs=.. rate=.. errors=..` (rate: connections completed per
//! second). The exit status is non-zero when nothing completed.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};

const MSG: &[u8; 8] = b"scale-8b";
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";
const PONG: &[u8] = b"+PONG\r\n";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: scale_load hold ADDR N SECONDS [echo|ping] | accept ADDR TOTAL INFLIGHT [SECONDS]";
    if args.len() < 5 {
        eprintln!("{usage}");
        std::process::exit(2);
    }
    let addr: SocketAddr = match args[2].parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ADDR {}: {e}", args[2]);
            std::process::exit(2);
        }
    };
    let num = |i: usize| -> f64 {
        args.get(i).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            eprintln!("{usage}");
            std::process::exit(2)
        })
    };
    let res = match args[1].as_str() {
        "hold" => hold(
            addr,
            num(3) as usize,
            Duration::from_secs_f64(num(4)),
            args.get(5).map(String::as_str) == Some("ping"),
        ),
        "accept" => {
            let secs = if args.len() > 5 { num(5) } else { 120.0 };
            accept(
                addr,
                num(3) as usize,
                (num(4) as usize).max(1),
                Duration::from_secs_f64(secs),
            )
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    if let Err(e) = res {
        eprintln!("scale_load: {e}");
        std::process::exit(1);
    }
}

fn hold(addr: SocketAddr, n: usize, secs: Duration, ping: bool) -> io::Result<()> {
    let start = Instant::now();
    let (send, want) = if ping {
        (PING, PONG)
    } else {
        (&MSG[..], &MSG[..])
    };
    let mut conns = Vec::with_capacity(n);
    let mut buf = [0u8; 64];
    for i in 0..n {
        let mut s = StdStream::connect(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("connection {i}: connect: {e}")))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(send)?;
        s.read_exact(&mut buf[..want.len()])
            .map_err(|e| io::Error::new(e.kind(), format!("connection {i}: reply: {e}")))?;
        if &buf[..want.len()] != want {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("connection {i}: unexpected reply"),
            ));
        }
        conns.push(s);
    }
    println!(
        "ready {n} connect_secs={:.3}",
        start.elapsed().as_secs_f64()
    );
    io::stdout().flush()?;
    let end = start + secs;
    while Instant::now() < end {
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(500)));
    }
    drop(conns);
    Ok(())
}

struct Short {
    stream: TcpStream,
    written: usize,
    read: usize,
}

fn open(addr: SocketAddr) -> io::Result<TcpStream> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    sock.set_linger(Some(Duration::ZERO))?;
    sock.set_nodelay(true)?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(StdStream::from(sock)))
}

/// Fills slot `i` with a new connection while any are left to make.
fn refill(
    registry: &Registry,
    addr: SocketAddr,
    i: usize,
    slots: &mut [Option<Short>],
    left: &mut usize,
    errors: &mut usize,
) {
    while *left > 0 {
        *left -= 1;
        let res = open(addr).and_then(|mut stream| {
            registry.register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        match res {
            Ok(stream) => {
                slots[i] = Some(Short {
                    stream,
                    written: 0,
                    read: 0,
                });
                return;
            }
            Err(e) => {
                if *errors < 5 {
                    eprintln!("scale_load: connect: {e}");
                }
                *errors += 1;
            }
        }
    }
}

/// Advances one short connection: write the message, read it back.
/// `Ok(true)`: done; `Ok(false)`: waiting for readiness.
fn step(c: &mut Short, buf: &mut [u8]) -> io::Result<bool> {
    while c.written < MSG.len() {
        match c.stream.write(&MSG[c.written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(k) => c.written += k,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            // Not connected yet: wait for WRITABLE.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    while c.read < MSG.len() {
        match c.stream.read(&mut buf[..MSG.len() - c.read]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(k) => {
                if buf[..k] != MSG[c.read..c.read + k] {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "wrong echo"));
                }
                c.read += k;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn accept(addr: SocketAddr, total: usize, inflight: usize, limit: Duration) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut slots: Vec<Option<Short>> = (0..inflight).map(|_| None).collect();
    let (mut left, mut done, mut errors) = (total, 0usize, 0usize);
    let mut buf = [0u8; 64];
    let start = Instant::now();
    for i in 0..inflight {
        refill(poll.registry(), addr, i, &mut slots, &mut left, &mut errors);
    }
    while slots.iter().any(Option::is_some) && start.elapsed() < limit {
        match poll.poll(&mut events, Some(Duration::from_millis(500))) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(c) = slots[i].as_mut() else { continue };
            let finished = match step(c, &mut buf) {
                Ok(true) => {
                    done += 1;
                    true
                }
                Ok(false) if ev.is_error() => {
                    errors += 1;
                    true
                }
                Ok(false) => false,
                Err(e) => {
                    if errors < 5 {
                        eprintln!("scale_load: connection: {e}");
                    }
                    errors += 1;
                    true
                }
            };
            if finished {
                // Dropping the stream closes it: SO_LINGER 0 sends a RST.
                if let Some(mut c) = slots[i].take() {
                    let _ = poll.registry().deregister(&mut c.stream);
                }
                refill(poll.registry(), addr, i, &mut slots, &mut left, &mut errors);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "conns={done} secs={secs:.3} rate={:.0} errors={errors}",
        done as f64 / secs
    );
    if done == 0 {
        return Err(io::Error::other("no connection completed"));
    }
    Ok(())
}
