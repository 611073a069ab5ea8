//! A Redis-protocol (RESP2) server on one evloop thread, in callback style.
//!
//! `cargo run --release --example mini_redis [ADDR]` (default
//! 127.0.0.1:6380), then `redis-cli -p 6380` (or `nc 127.0.0.1 6380` and
//! type inline commands such as `SET k v`), or load it with
//! `redis-benchmark -p 6380 -t ping,set,get -P 16`.
//! `bash benches/servers/redis.sh` measures it against `redis-server`.
//!
//! Commands: `PING`, `ECHO`, `SET` (`EX`, `PX`, `NX`, `XX`, `KEEPTTL`,
//! `GET`), `GET`, `DEL`, `EXISTS`, `INCR`, `DECR`, `INCRBY`, `DECRBY`,
//! `EXPIRE` and `PEXPIRE` (`NX`, `XX`, `GT`, `LT`), `TTL`, `PTTL`,
//! `PERSIST`, `MGET`, `MSET`, `DBSIZE`, `FLUSHDB`, `FLUSHALL`, `SELECT 0`,
//! `QUIT`, and just enough `COMMAND`, `CONFIG GET` and `INFO` for
//! `redis-cli` and `redis-benchmark`. Errors read as Redis's do.
//!
//! How it works: every read goes through the parser (`resp.rs`) straight
//! from the loop's read buffer; all complete frames are executed in order
//! and their replies go out in one write. Only the incomplete tail of a
//! read is copied, to wait for the rest. A malformed frame gets
//! `-ERR Protocol error: ...` and the connection is closed, as Redis does;
//! other clients never notice. Keys expire through one loop timer (`db.rs`).

mod db;
mod resp;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use evloop::net::{Stream, TcpListener};

use db::{Db, IncrError, SharedDb};
use resp::{Args, Parser};

/// The most bytes one connection may have buffered for an incomplete
/// request (Redis's `client-query-buffer-limit`).
const MAX_QUERY_BUF: usize = 1024 * 1024 * 1024;

/// Reusable buffers above this size are given back after use, so one huge
/// request or reply does not pin its memory for the connection's life.
const KEEP_BUF: usize = 1024 * 1024;

/// How long a connection closed for a protocol error may keep its socket
/// while waiting for the client to close its side.
const LINGER: Duration = Duration::from_secs(5);

const WRONG_TYPE_INT: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";

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
    /// The start of an incomplete request, kept for the next read.
    pending: Vec<u8>,
    /// The replies to one read, reused.
    out: Vec<u8>,
    /// After a protocol error or `QUIT`: reading on only to see the end.
    closing: bool,
}

/// What the connection does after a batch of requests.
#[derive(PartialEq, Eq)]
enum After {
    KeepReading,
    Close,
}

fn serve(stream: Stream, db: SharedDb) {
    let _ = stream.set_nodelay(true);
    let conn = RefCell::new(Conn::default());
    let s = stream.clone();
    stream.on_data(move |bytes| {
        let mut conn = conn.borrow_mut();
        let Conn {
            parser,
            pending,
            out,
            closing,
        } = &mut *conn;
        if *closing {
            return;
        }
        let mut db = db.borrow_mut();
        out.clear();
        let after = if pending.is_empty() {
            // The common case: parse in place, copy only a partial tail.
            let (used, after) = run_requests(parser, bytes, &mut db, out);
            if after == After::KeepReading {
                pending.extend_from_slice(&bytes[used..]);
            }
            after
        } else {
            pending.extend_from_slice(bytes);
            let (used, after) = run_requests(parser, pending, &mut db, out);
            pending.drain(..used);
            if pending.capacity() > KEEP_BUF && pending.len() < KEEP_BUF / 2 {
                pending.shrink_to(KEEP_BUF / 2);
            }
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
            pending.clear();
            pending.shrink_to_fit();
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
fn run_requests(parser: &mut Parser, buf: &[u8], db: &mut Db, out: &mut Vec<u8>) -> (usize, After) {
    let mut used = 0;
    loop {
        let frame = &buf[used..];
        match parser.parse(frame) {
            Ok(Some(n)) => {
                used += n;
                let args = parser.args(&frame[..n]);
                if !args.is_empty() && execute(db, args, out) == After::Close {
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

/// A command: its name as Redis reports it, its arity (exact if positive,
/// a minimum if negative, the name included) and its body.
struct Command {
    name: &'static str,
    arity: i32,
    run: fn(&mut Db, Args, &mut Vec<u8>) -> After,
}

/// The commands, most frequent first (the lookup is a linear scan that
/// rejects most entries on length alone).
const COMMANDS: &[Command] = &[
    Command {
        name: "get",
        arity: 2,
        run: get,
    },
    Command {
        name: "set",
        arity: -3,
        run: set,
    },
    Command {
        name: "ping",
        arity: -1,
        run: ping,
    },
    Command {
        name: "mget",
        arity: -2,
        run: mget,
    },
    Command {
        name: "mset",
        arity: -3,
        run: mset,
    },
    Command {
        name: "del",
        arity: -2,
        run: del,
    },
    Command {
        name: "exists",
        arity: -2,
        run: exists,
    },
    Command {
        name: "incr",
        arity: 2,
        run: |db, a, out| incr(db, a.get(1), Ok(1), out),
    },
    Command {
        name: "decr",
        arity: 2,
        run: |db, a, out| incr(db, a.get(1), Ok(-1), out),
    },
    Command {
        name: "incrby",
        arity: 3,
        run: |db, a, out| incr(db, a.get(1), int_arg(a.get(2)), out),
    },
    Command {
        name: "decrby",
        arity: 3,
        run: |db, a, out| {
            let delta = int_arg(a.get(2))
                .and_then(|n| n.checked_neg().ok_or("ERR decrement would overflow"));
            incr(db, a.get(1), delta, out)
        },
    },
    Command {
        name: "echo",
        arity: 2,
        run: |_, a, out| {
            resp::bulk(out, a.get(1));
            After::KeepReading
        },
    },
    Command {
        name: "expire",
        arity: -3,
        run: |db, a, out| expire(db, a, 1000, "expire", out),
    },
    Command {
        name: "pexpire",
        arity: -3,
        run: |db, a, out| expire(db, a, 1, "pexpire", out),
    },
    Command {
        name: "ttl",
        arity: 2,
        run: |db, a, out| ttl(db, a, 1000, out),
    },
    Command {
        name: "pttl",
        arity: 2,
        run: |db, a, out| ttl(db, a, 1, out),
    },
    Command {
        name: "persist",
        arity: 2,
        run: persist,
    },
    Command {
        name: "dbsize",
        arity: 1,
        run: |db, _, out| {
            resp::integer(out, db.len() as i64);
            After::KeepReading
        },
    },
    Command {
        name: "flushdb",
        arity: -1,
        run: flush,
    },
    Command {
        name: "flushall",
        arity: -1,
        run: flush,
    },
    Command {
        name: "select",
        arity: 2,
        run: select,
    },
    Command {
        name: "command",
        arity: -1,
        run: command,
    },
    Command {
        name: "config",
        arity: -2,
        run: config,
    },
    Command {
        name: "info",
        arity: -1,
        run: info,
    },
    Command {
        name: "quit",
        arity: -1,
        run: |_, _, out| {
            resp::simple(out, "OK");
            After::Close
        },
    },
];

/// Runs one request.
fn execute(db: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    let name = args.get(0);
    let Some(cmd) = COMMANDS
        .iter()
        .find(|c| name.eq_ignore_ascii_case(c.name.as_bytes()))
    else {
        unknown_command(args, out);
        return After::KeepReading;
    };
    let n = args.len() as i32;
    if (cmd.arity > 0 && n != cmd.arity) || n < -cmd.arity {
        wrong_arity(cmd.name, out);
        return After::KeepReading;
    }
    (cmd.run)(db, args, out)
}

fn wrong_arity(name: &str, out: &mut Vec<u8>) {
    resp::error(
        out,
        &format!("ERR wrong number of arguments for '{name}' command"),
    );
}

/// Redis's message, quoting the first arguments.
fn unknown_command(args: Args, out: &mut Vec<u8>) {
    let mut msg = format!(
        "ERR unknown command '{}', with args beginning with: ",
        shown(args.get(0))
    );
    for a in args.iter_from(1) {
        if msg.len() > 256 {
            break;
        }
        msg.push_str(&format!("'{}' ", shown(a)));
    }
    resp::error(out, &msg);
}

/// An argument as quoted in an error: at most 128 bytes, lossy UTF-8.
fn shown(arg: &[u8]) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(128)]).into_owned()
}

fn int_arg(arg: &[u8]) -> Result<i64, &'static str> {
    resp::parse_i64(arg).ok_or(WRONG_TYPE_INT)
}

/// `now + n * unit_ms` milliseconds, if it fits the clock.
fn deadline(n: i64, unit_ms: u64) -> Option<Instant> {
    let ms = u64::try_from(n).ok()?.checked_mul(unit_ms)?;
    evloop::now().checked_add(Duration::from_millis(ms))
}

fn get(db: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    match db.get(args.get(1)) {
        Some(v) => resp::bulk(out, v),
        None => resp::null(out),
    }
    After::KeepReading
}

fn set(db: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    let (key, value) = (args.get(1), args.get(2));
    let mut expires = None;
    let (mut nx, mut xx, mut keep_ttl, mut get) = (false, false, false, false);
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        let unit = if opt.eq_ignore_ascii_case(b"EX") {
            Some(1000)
        } else if opt.eq_ignore_ascii_case(b"PX") {
            Some(1)
        } else {
            None
        };
        if let Some(unit) = unit {
            if expires.is_some() || keep_ttl || i + 1 >= args.len() {
                resp::error(out, SYNTAX);
                return After::KeepReading;
            }
            i += 1;
            let n = match int_arg(args.get(i)) {
                Ok(n) => n,
                Err(e) => {
                    resp::error(out, e);
                    return After::KeepReading;
                }
            };
            match deadline(n, unit) {
                Some(t) if n > 0 => expires = Some(t),
                _ => {
                    resp::error(out, "ERR invalid expire time in 'set' command");
                    return After::KeepReading;
                }
            }
        } else if opt.eq_ignore_ascii_case(b"NX") && !xx {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"XX") && !nx {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"KEEPTTL") && expires.is_none() {
            keep_ttl = true;
        } else if opt.eq_ignore_ascii_case(b"GET") {
            get = true;
        } else {
            resp::error(out, SYNTAX);
            return After::KeepReading;
        }
        i += 1;
    }
    if get {
        match db.get(key) {
            Some(v) => resp::bulk(out, v),
            None => resp::null(out),
        }
    }
    if (nx || xx) && db.exists(key) != xx {
        if !get {
            resp::null(out);
        }
        return After::KeepReading;
    }
    db.set(key, value, expires, keep_ttl);
    if !get {
        resp::simple(out, "OK");
    }
    After::KeepReading
}

fn ping(_: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    match args.len() {
        1 => resp::simple(out, "PONG"),
        2 => resp::bulk(out, args.get(1)),
        _ => wrong_arity("ping", out),
    }
    After::KeepReading
}

fn mget(db: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    resp::array(out, args.len() - 1);
    for key in args.iter_from(1) {
        match db.get(key) {
            Some(v) => resp::bulk(out, v),
            None => resp::null(out),
        }
    }
    After::KeepReading
}

fn mset(db: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    if args.len() % 2 == 0 {
        wrong_arity("mset", out);
        return After::KeepReading;
    }
    for i in (1..args.len()).step_by(2) {
        db.set(args.get(i), args.get(i + 1), None, false);
    }
    resp::simple(out, "OK");
    After::KeepReading
}

fn del(db: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    let n = args.iter_from(1).filter(|k| db.remove(k)).count();
    resp::integer(out, n as i64);
    After::KeepReading
}

fn exists(db: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    let n = args.iter_from(1).filter(|k| db.exists(k)).count();
    resp::integer(out, n as i64);
    After::KeepReading
}

fn incr(db: &mut Db, key: &[u8], delta: Result<i64, &str>, out: &mut Vec<u8>) -> After {
    let reply = delta.and_then(|d| {
        db.incr_by(key, d).map_err(|e| match e {
            IncrError::NotAnInteger => WRONG_TYPE_INT,
            IncrError::Overflow => "ERR increment or decrement would overflow",
        })
    });
    match reply {
        Ok(n) => resp::integer(out, n),
        Err(e) => resp::error(out, e),
    }
    After::KeepReading
}

/// `EXPIRE key n [NX|XX|GT|LT]`, `n` in units of `unit_ms`.
fn expire(db: &mut Db, args: Args, unit_ms: u64, name: &str, out: &mut Vec<u8>) -> After {
    let key = args.get(1);
    let n = match int_arg(args.get(2)) {
        Ok(n) => n,
        Err(e) => {
            resp::error(out, e);
            return After::KeepReading;
        }
    };
    let mut flag: Option<&[u8]> = None;
    for opt in args.iter_from(3) {
        let known = [&b"NX"[..], b"XX", b"GT", b"LT"]
            .into_iter()
            .find(|f| opt.eq_ignore_ascii_case(f));
        match (known, flag) {
            (Some(f), None) => flag = Some(f),
            (Some(f), Some(g)) if f == g => {}
            (Some(_), Some(_)) => {
                resp::error(
                    out,
                    "ERR NX and XX, GT or LT options at the same time are not compatible",
                );
                return After::KeepReading;
            }
            (None, _) => {
                resp::error(out, &format!("ERR Unsupported option {}", shown(opt)));
                return After::KeepReading;
            }
        }
    }
    // A time at or before now deletes the key (Redis does the same).
    let new = if n <= 0 {
        Some(evloop::now())
    } else {
        match deadline(n, unit_ms) {
            Some(t) => Some(t),
            None => {
                resp::error(out, &format!("ERR invalid expire time in '{name}' command"));
                return After::KeepReading;
            }
        }
    };
    let Some(current) = db.ttl(key) else {
        resp::integer(out, 0);
        return After::KeepReading;
    };
    let now = evloop::now();
    let current = current.map(|d| now + d);
    let allowed = match flag {
        Some(b"NX") => current.is_none(),
        Some(b"XX") => current.is_some(),
        // No deadline counts as an infinite one.
        Some(b"GT") => current.is_some_and(|c| new > Some(c)),
        Some(b"LT") => current.map_or(true, |c| new < Some(c)),
        _ => true,
    };
    let done = allowed && db.set_expiry(key, new);
    resp::integer(out, i64::from(done));
    After::KeepReading
}

/// `TTL` (`unit_ms` 1000, rounded as Redis rounds) or `PTTL` (1).
fn ttl(db: &mut Db, args: Args, unit_ms: u128, out: &mut Vec<u8>) -> After {
    let n = match db.ttl(args.get(1)) {
        None => -2,
        Some(None) => -1,
        Some(Some(left)) => ((left.as_millis() + unit_ms / 2) / unit_ms) as i64,
    };
    resp::integer(out, n);
    After::KeepReading
}

fn persist(db: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    let key = args.get(1);
    let had = matches!(db.ttl(key), Some(Some(_)));
    let done = had && db.set_expiry(key, None);
    resp::integer(out, i64::from(done));
    After::KeepReading
}

fn flush(db: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    let mode_ok = args
        .iter_from(1)
        .all(|a| a.eq_ignore_ascii_case(b"ASYNC") || a.eq_ignore_ascii_case(b"SYNC"));
    if args.len() > 2 || !mode_ok {
        resp::error(out, SYNTAX);
    } else {
        db.clear();
        resp::simple(out, "OK");
    }
    After::KeepReading
}

fn select(_: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    match resp::parse_i64(args.get(1)) {
        Some(0) => resp::simple(out, "OK"),
        Some(_) => resp::error(out, "ERR DB index is out of range"),
        None => resp::error(out, WRONG_TYPE_INT),
    }
    After::KeepReading
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS`, `COMMAND INFO`: clients ask
/// at startup. An empty list means "no documentation", which `redis-cli`
/// and `redis-benchmark` accept.
fn command(_: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    if args.len() == 1 {
        resp::array(out, 0);
        return After::KeepReading;
    }
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"COUNT") && args.len() == 2 {
        resp::integer(out, COMMANDS.len() as i64);
    } else if sub.eq_ignore_ascii_case(b"DOCS") {
        resp::array(out, 0);
    } else if sub.eq_ignore_ascii_case(b"INFO") {
        // One null per name: "no such command" as far as a client knows.
        resp::array(out, args.len() - 2);
        for _ in 2..args.len() {
            out.extend_from_slice(b"*-1\r\n");
        }
    } else {
        let msg = format!("ERR unknown subcommand '{}'. Try COMMAND HELP.", shown(sub));
        resp::error(out, &msg);
    }
    After::KeepReading
}

/// The settings `CONFIG GET` reports: what `redis-benchmark` asks for, and
/// a few that describe this server honestly (no persistence, one db).
const CONFIG: &[(&str, &str)] = &[
    ("save", ""),
    ("appendonly", "no"),
    ("databases", "1"),
    ("maxmemory", "0"),
    ("proto-max-bulk-len", "536870912"),
    ("client-query-buffer-limit", "1073741824"),
];

/// `CONFIG GET name...`: the matching pairs as a flat array (RESP2's map);
/// a name may be `*`. Other subcommands are refused.
fn config(_: &mut Db, args: Args, out: &mut Vec<u8>) -> After {
    if !args.get(1).eq_ignore_ascii_case(b"GET") {
        let sub = shown(args.get(1));
        resp::error(
            out,
            &format!("ERR unknown subcommand '{sub}'. Try CONFIG HELP."),
        );
        return After::KeepReading;
    }
    if args.len() < 3 {
        wrong_arity("config|get", out);
        return After::KeepReading;
    }
    let matches: Vec<_> = CONFIG
        .iter()
        .filter(|(name, _)| {
            args.iter_from(2)
                .any(|p| p == b"*" || p.eq_ignore_ascii_case(name.as_bytes()))
        })
        .collect();
    resp::array(out, matches.len() * 2);
    for (name, value) in matches {
        resp::bulk(out, name.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    After::KeepReading
}

/// A minimal `INFO`: the server and keyspace sections.
fn info(db: &mut Db, _: Args, out: &mut Vec<u8>) -> After {
    let text = format!(
        "# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\nserver_name:mini_redis\r\n\
         process_id:{}\r\n\r\n# Keyspace\r\ndb0:keys={},expires={}\r\n",
        std::process::id(),
        db.len(),
        db.volatile_len()
    );
    resp::bulk(out, text.as_bytes());
    After::KeepReading
}
