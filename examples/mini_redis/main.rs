//! A Redis-protocol server on one evloop thread, in callback style. It
//! speaks RESP2, and RESP3 to a client that asks with `HELLO 3` (as
//! redis-py 8 does by default).
//!
//! `cargo run --release --example mini_redis [ADDR]` (default
//! 127.0.0.1:6380), then `redis-cli -p 6380` (or `nc 127.0.0.1 6380` and
//! type inline commands such as `SET k v`), a client library such as
//! redis-py, or load it with `redis-benchmark -p 6380 -t ping,set,get -P 16`.
//! `bash benches/servers/redis.sh` measures it against `redis-server`.
//!
//! Commands: `PING`, `ECHO`, `SET` (`EX`, `PX`, `NX`, `XX`, `KEEPTTL`,
//! `GET`), `GET`, `DEL`, `EXISTS`, `INCR`, `DECR`, `INCRBY`, `DECRBY`,
//! `EXPIRE` and `PEXPIRE` (`NX`, `XX`, `GT`, `LT`), `TTL`, `PTTL`,
//! `PERSIST`, `MGET`, `MSET`, `TYPE`, `KEYS`, `SCAN` (`MATCH`, `COUNT`,
//! `TYPE`), `DBSIZE`, `FLUSHDB`, `FLUSHALL`, `SELECT 0`, `MULTI`, `EXEC`,
//! `DISCARD`, `HELLO`, `CLIENT` (`ID`, `GETNAME`, `SETNAME`, `SETINFO`),
//! `QUIT`, and just enough `COMMAND`, `CONFIG GET` and `INFO` for
//! `redis-cli` and `redis-benchmark`. Errors read as Redis's do.
//!
//! How it works: every read goes through the parser (`resp.rs`) straight
//! from the loop's read buffer; all complete frames are executed in order
//! (`commands.rs`, `keyspace.rs`, `session.rs`) and their replies go out
//! in one write. Only the incomplete tail of a read is copied, to wait for
//! the rest, into a buffer sized for the whole frame once its length is
//! known; a large value then keeps that buffer rather than being copied
//! again, so a 64 MiB `SET` costs 64 MiB, as in redis-server. A malformed
//! frame gets `-ERR Protocol error: ...` and the connection is closed, as
//! Redis does; other clients never notice. Keys expire through one loop
//! timer (`db.rs`).

mod args;
mod commands;
mod db;
mod keyspace;
mod resp;
mod session;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{Stream, TcpListener};

use db::{Db, SharedDb};
use resp::{Args, Parser};
use session::Session;

/// The most bytes one connection may have buffered for an incomplete
/// request (Redis's `client-query-buffer-limit`).
const MAX_QUERY_BUF: usize = 1024 * 1024 * 1024;

/// Reusable buffers above this size are given back after use, so one huge
/// request or reply does not pin its memory for the connection's life.
const KEEP_BUF: usize = 1024 * 1024;

/// How long a connection closed for a protocol error may keep its socket
/// while waiting for the client to close its side.
const LINGER: Duration = Duration::from_secs(5);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6380".into());
    // Set when the address cannot be bound, for the exit status.
    let failed = std::rc::Rc::new(std::cell::Cell::new(false));
    let failed_in_loop = failed.clone();
    evloop::run(move || {
        let db = Db::new();
        let server = TcpListener::bind(&addr, move |conn| match conn {
            Ok(stream) => serve(stream, db.clone()),
            Err(e) => eprintln!("accept failed: {e}"),
        });
        match server {
            Ok(s) => println!("mini_redis listening on {}", s.local_addr()),
            Err(e) => {
                eprintln!("cannot listen on {addr}: {e}");
                failed_in_loop.set(true);
            }
        }
    })?;
    if failed.get() {
        std::process::exit(1);
    }
    Ok(())
}

/// One client's state between reads.
#[derive(Default)]
struct Conn {
    parser: Parser,
    /// The start of an incomplete request, kept for the next read. Shared
    /// because a large value may keep the buffer it was read into (a
    /// `SET` of 64 MiB then costs 64 MiB, not twice that): the connection
    /// then starts a new one.
    pending: Rc<Vec<u8>>,
    /// The replies to one read, reused.
    out: Vec<u8>,
    /// The client's id, name and transaction.
    session: Session,
    /// After a protocol error or `QUIT`: reading on only to see the end.
    closing: bool,
}

/// What the connection does after a batch of requests.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// Go on reading requests.
    KeepReading,
    /// Send the replies so far, then close.
    Close,
}

/// Makes room in `buf` for the rest of an incomplete frame that starts
/// at its beginning, when the parser knows how long it is: exactly, so a
/// large value is not followed by doubling growth (a 64 MiB value in a
/// buffer grown to 128 MiB, and copied on the way).
fn reserve_frame(parser: &Parser, buf: &mut Vec<u8>) {
    let need = parser.need();
    if need > buf.capacity() && need - buf.len() > KEEP_BUF / 16 {
        buf.reserve_exact(need - buf.len());
    }
}

fn serve(stream: Stream, db: SharedDb) {
    let _ = stream.set_nodelay(true);
    // One read (up to 64 KiB, a few thousand pipelined commands) per loop
    // iteration: a client that floods the server with a pipeline then
    // delays the others by one read's work, not 32 (redis-server reads
    // 16 KiB per client per turn for the same reason).
    stream.set_read_batch(1);
    let conn = RefCell::new(Conn::default());
    let s = stream.clone();
    stream.on_data(move |bytes| {
        let mut conn = conn.borrow_mut();
        let Conn {
            parser,
            pending,
            out,
            session,
            closing,
        } = &mut *conn;
        if *closing {
            return;
        }
        let mut db = db.borrow_mut();
        out.clear();
        let after = if pending.is_empty() {
            // The common case: parse in place, copy only a partial tail.
            let (used, after) = run_requests(parser, bytes, None, &mut db, session, out);
            if after == After::KeepReading && used < bytes.len() {
                let p = Rc::make_mut(pending);
                reserve_frame(parser, p);
                p.extend_from_slice(&bytes[used..]);
            }
            after
        } else {
            Rc::make_mut(pending).extend_from_slice(bytes);
            let (used, after) = run_requests(parser, pending, Some(pending), &mut db, session, out);
            match Rc::get_mut(pending) {
                Some(p) => {
                    p.drain(..used);
                    if p.capacity() > KEEP_BUF && p.len() < KEEP_BUF / 2 {
                        p.shrink_to(KEEP_BUF / 2);
                    }
                }
                // A value kept the buffer: what follows moves to a new one.
                None => *pending = Rc::new(pending[used..].to_vec()),
            }
            reserve_frame(parser, Rc::make_mut(pending));
            after
        };
        let after = if after == After::KeepReading && pending.len() > MAX_QUERY_BUF {
            resp::error(out, "ERR Protocol error: query buffer limit exceeded");
            After::Close
        } else {
            after
        };
        if !out.is_empty() && !s.write(out) && after == After::KeepReading {
            // The client is not reading its replies: stop reading its
            // requests until they drain, so the queue stays bounded.
            s.pause();
        }
        if out.capacity() > KEEP_BUF {
            *out = Vec::new();
        }
        if after == After::Close {
            *closing = true;
            *pending = Rc::default();
            // FIN after the replies; the socket closes when the client's FIN
            // arrives (or after LINGER), so the error reply is not lost to a
            // reset.
            s.end();
            let s = s.clone();
            evloop::set_timeout(LINGER, move || s.destroy()).unref();
        }
    });
    let s = stream.clone();
    stream.on_drain(move || s.resume());
    stream.on_error(|e| log::debug!("connection error: {e}"));
}

/// Executes every complete request at the start of `buf`, appending the
/// replies to `out`. Returns the bytes consumed and whether to go on.
/// `owner` is the shared buffer `buf` is, if it is one.
fn run_requests(
    parser: &mut Parser,
    buf: &[u8],
    owner: Option<&Rc<Vec<u8>>>,
    db: &mut Db,
    session: &mut Session,
    out: &mut Vec<u8>,
) -> (usize, After) {
    let mut used = 0;
    loop {
        let frame = &buf[used..];
        match parser.parse(frame) {
            Ok(Some(n)) => {
                let mut args = parser.args(&frame[..n]);
                if let Some(owner) = owner {
                    args = args.owned_by(owner, used);
                }
                used += n;
                if !args.is_empty() && execute(db, session, args, out) == After::Close {
                    return (used, After::Close);
                }
            }
            Ok(None) => return (used, After::KeepReading),
            Err(e) => {
                resp::error(out, &format!("ERR {e}"));
                return (used, After::Close);
            }
        }
    }
}

/// Runs one request: queues it if a transaction is open, else looks the
/// command up, checks its arity and runs it.
fn execute(db: &mut Db, session: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    if session.queue(args, out) {
        return After::KeepReading;
    }
    let Some(cmd) = commands::lookup(args.get(0)) else {
        commands::unknown_command(args, out);
        return After::KeepReading;
    };
    if !commands::arity_ok(cmd, args) {
        commands::wrong_arity(cmd.name, out);
        return After::KeepReading;
    }
    (cmd.run)(db, session, args, out)
}
