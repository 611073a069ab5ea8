//! The floor for the server benchmark: a raw, single-threaded mio HTTP/1.1
//! hello-world server doing exactly the work `examples/http_hello.rs` does
//! (see `http_common.rs`), with nothing in between but mio.
//!
//! Edge-triggered: on readiness it reads until `WouldBlock` or a short read
//! (which means the socket is drained), answering every complete request of
//! each read (pipelining) and writing the responses until `WouldBlock`;
//! what the kernel does not take is flushed on `WRITABLE`, and reading stops
//! until it is (backpressure, as `mio_echo`: a client that pipelines
//! requests without reading the responses cannot grow the server's memory).
//! Keep-alive by default; `Connection: close` closes after the response.
//!
//! `cargo run --release --example mio_http_hello [ADDR]` (default
//! 127.0.0.1:8081). Driven by `bash benches/servers/run.sh`.

mod http_common;

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: TcpStream,
    /// Bytes of a request head not yet complete.
    rbuf: Vec<u8>,
    /// Request framing state (a body being skipped, a partial head).
    framer: http_common::Framer,
    /// Responses not yet taken by the kernel, from `wpos`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// `WRITABLE` interest is registered.
    want_write: bool,
    /// Close once `wbuf` is flushed (`Connection: close`, EOF, bad request).
    closing: bool,
    /// Reading stopped on responses pending (the socket may hold more
    /// requests): read on once `wbuf` is flushed.
    read_stalled: bool,
}

fn main() -> io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_string())
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;

    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!(
        "mio_http_hello listening on http://{}/",
        listener.local_addr()?
    );

    let mut conns: Slab<Conn> = Slab::with_capacity(1024);
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];

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
            let mut keep = true;
            if conn.read_stalled
                && (event.is_writable() || event.is_write_closed() || event.is_error())
            {
                // Flush first: if the client took everything, read on.
                keep = flush(conn, &poll, key);
            }
            if keep
                && (event.is_readable()
                    || event.is_read_closed()
                    || event.is_error()
                    || conn.read_stalled)
            {
                keep = on_readable(conn, &mut scratch, &poll, key);
            }
            if keep {
                keep = flush(conn, &poll, key);
            }
            if !keep {
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
                let _ = stream.set_nodelay(true);
                let entry = conns.vacant_entry();
                let token = Token(entry.key());
                if poll
                    .registry()
                    .register(&mut stream, token, Interest::READABLE)
                    .is_ok()
                {
                    entry.insert(Conn {
                        stream,
                        rbuf: Vec::new(),
                        framer: http_common::Framer::default(),
                        wbuf: Vec::with_capacity(4096),
                        wpos: 0,
                        want_write: false,
                        closing: false,
                        read_stalled: false,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // EMFILE, ECONNABORTED...: drop this one, keep serving.
            Err(e) => {
                eprintln!("accept: {e}");
                return;
            }
        }
    }
}

/// Reads until `WouldBlock` or a short read and writes the responses;
/// stops early (`read_stalled`) while responses are pending. `false`: drop
/// now.
fn on_readable(conn: &mut Conn, scratch: &mut [u8], poll: &Poll, key: usize) -> bool {
    conn.read_stalled = !conn.wbuf.is_empty();
    while !conn.closing && !conn.read_stalled {
        match conn.stream.read(scratch) {
            Ok(0) => {
                // Peer finished sending: answer what we have, then close.
                conn.closing = true;
            }
            Ok(n) => {
                consume(conn, &scratch[..n]);
                if !flush(conn, poll, key) {
                    return false;
                }
                // Backpressure: the kernel did not take every response.
                conn.read_stalled = !conn.wbuf.is_empty();
                if n < scratch.len() {
                    // A short read emptied the socket: new data brings a
                    // new edge, so no read that ends in `WouldBlock`.
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    true
}

/// Frames `data` (after any partial head kept from before): a bad or
/// oversized request gets its error response and closes the connection.
fn consume(conn: &mut Conn, data: &[u8]) {
    let parsed;
    if conn.rbuf.is_empty() {
        // Fast path: parse straight from the read buffer, keep only a tail.
        parsed = conn.framer.answer(data, &mut conn.wbuf);
        conn.rbuf.extend_from_slice(&data[parsed.consumed..]);
    } else {
        conn.rbuf.extend_from_slice(data);
        parsed = conn.framer.answer(&conn.rbuf, &mut conn.wbuf);
        conn.rbuf.drain(..parsed.consumed);
    }
    if parsed.close {
        conn.closing = true;
        conn.rbuf.clear();
    }
}

/// Writes until done or `WouldBlock`, toggling `WRITABLE` interest.
/// `false`: drop the connection.
fn flush(conn: &mut Conn, poll: &Poll, key: usize) -> bool {
    while conn.wpos < conn.wbuf.len() {
        match conn.stream.write(&conn.wbuf[conn.wpos..]) {
            Ok(0) => return false,
            Ok(n) => conn.wpos += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    if conn.wpos == conn.wbuf.len() {
        conn.wbuf.clear();
        conn.wpos = 0;
        if conn.closing {
            return false;
        }
    }
    let pending = !conn.wbuf.is_empty();
    if pending != conn.want_write {
        let interest = if pending {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if poll
            .registry()
            .reregister(&mut conn.stream, Token(key), interest)
            .is_err()
        {
            return false;
        }
        conn.want_write = pending;
    }
    true
}
