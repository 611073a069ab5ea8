//! The floor for the TCP echo benchmark: a raw, single-threaded mio echo
//! server doing what `examples/echo_server.rs` does, with nothing in between
//! but mio.
//!
//! Edge-triggered. On readiness it reads into one 16 KiB buffer and writes
//! the bytes straight back; a read that fills less than the buffer means the
//! socket is drained (new data brings a new edge), so there is no read that
//! ends in `WouldBlock` (read + write + a share of `epoll_wait` per round
//! trip). What the kernel does not take is kept and flushed on `WRITABLE`;
//! reading stops until it is (backpressure).
//!
//! `cargo run --release --example mio_echo [ADDR]` (default 127.0.0.1:7003).
//! Driven by `bash benches/servers/echo.sh`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: TcpStream,
    /// Echo bytes the kernel has not taken yet, from `wpos`.
    pending: Vec<u8>,
    wpos: usize,
}

fn main() -> io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7003".to_string())
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("mio_echo listening on {}", listener.local_addr()?);

    let mut conns: Slab<Conn> = Slab::with_capacity(1024);
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                accept_all(&poll, &listener, &mut conns);
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if !serve(conn, &poll, key, &mut buf) {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

fn accept_all(poll: &Poll, listener: &TcpListener, conns: &mut Slab<Conn>) {
    loop {
        match listener.accept() {
            Ok((mut stream, _)) => {
                let entry = conns.vacant_entry();
                let token = Token(entry.key());
                if poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE)
                    .is_ok()
                {
                    entry.insert(Conn {
                        stream,
                        pending: Vec::new(),
                        wpos: 0,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("accept: {e}");
                return;
            }
        }
    }
}

/// Flushes what is pending, then echoes what can be read. `false`: drop.
fn serve(conn: &mut Conn, poll: &Poll, key: usize, buf: &mut [u8]) -> bool {
    if conn.wpos < conn.pending.len() {
        match write_from(&mut conn.stream, &conn.pending[conn.wpos..]) {
            Some(n) => conn.wpos += n,
            None => return false,
        }
        if conn.wpos < conn.pending.len() {
            return true; // still backed up: wait for WRITABLE
        }
        conn.pending.clear();
        conn.wpos = 0;
        // Drained: back to reading only. Data may have arrived meanwhile
        // without an edge we acted on, so read now.
        if poll
            .registry()
            .reregister(&mut conn.stream, Token(key), Interest::READABLE)
            .is_err()
        {
            return false;
        }
    }
    loop {
        let n = match conn.stream.read(buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let Some(w) = write_from(&mut conn.stream, &buf[..n]) else {
            return false;
        };
        if w < n {
            conn.pending.extend_from_slice(&buf[w..n]);
            return poll
                .registry()
                .reregister(
                    &mut conn.stream,
                    Token(key),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_ok();
        }
        if n < buf.len() {
            return true; // short read: the socket is drained
        }
    }
}

/// Writes until done or `WouldBlock`: the bytes taken, `None` on error.
fn write_from(stream: &mut TcpStream, data: &[u8]) -> Option<usize> {
    let mut off = 0;
    while off < data.len() {
        match stream.write(&data[off..]) {
            Ok(0) => return None,
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
    Some(off)
}
