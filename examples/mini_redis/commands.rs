//! The command table and the string, expiry and server commands.

use std::time::{Duration, Instant};

use crate::db::{Db, IncrError};
use crate::resp::{self, Args};
use crate::session::{self, Session};
use crate::{keyspace, After};

/// Redis's reply to an argument that should be an `i64`.
pub const WRONG_TYPE_INT: &str = "ERR value is not an integer or out of range";
/// Redis's reply to options it cannot make sense of.
pub const SYNTAX: &str = "ERR syntax error";

/// The Redis version this server answers as (`INFO`, `HELLO`).
pub const VERSION: &str = "7.0.0";

/// Values at least this large are kept in the buffer they were read into
/// when they can be (see [`Db::set_shared`]) rather than copied.
const SHARE_MIN: usize = 64 * 1024;

/// A command: its name as Redis reports it, its arity (exact if positive,
/// a minimum if negative, the name included) and its body.
pub struct Command {
    /// The lower-case name.
    pub name: &'static str,
    /// The number of arguments, the name included: exact if positive, a
    /// minimum if negative.
    pub arity: i32,
    /// The body: it appends its reply (or replies) to the output.
    pub run: fn(&mut Db, &mut Session, Args, &mut Vec<u8>) -> After,
}

/// The commands, most frequent first (the lookup is a linear scan that
/// rejects most entries on length alone).
pub const COMMANDS: &[Command] = &[
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
        run: |db, _, a, out| incr(db, a.get(1), Ok(1), out),
    },
    Command {
        name: "decr",
        arity: 2,
        run: |db, _, a, out| incr(db, a.get(1), Ok(-1), out),
    },
    Command {
        name: "incrby",
        arity: 3,
        run: |db, _, a, out| incr(db, a.get(1), int_arg(a.get(2)), out),
    },
    Command {
        name: "decrby",
        arity: 3,
        run: |db, _, a, out| {
            let delta = int_arg(a.get(2))
                .and_then(|n| n.checked_neg().ok_or("ERR decrement would overflow"));
            incr(db, a.get(1), delta, out)
        },
    },
    Command {
        name: "echo",
        arity: 2,
        run: |_, _, a, out| {
            resp::bulk(out, a.get(1));
            After::KeepReading
        },
    },
    Command {
        name: "expire",
        arity: -3,
        run: |db, _, a, out| expire(db, a, 1000, "expire", out),
    },
    Command {
        name: "pexpire",
        arity: -3,
        run: |db, _, a, out| expire(db, a, 1, "pexpire", out),
    },
    Command {
        name: "ttl",
        arity: 2,
        run: |db, _, a, out| ttl(db, a, 1000, out),
    },
    Command {
        name: "pttl",
        arity: 2,
        run: |db, _, a, out| ttl(db, a, 1, out),
    },
    Command {
        name: "persist",
        arity: 2,
        run: persist,
    },
    Command {
        name: "dbsize",
        arity: 1,
        run: |db, _, _, out| {
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
        name: "type",
        arity: 2,
        run: keyspace::type_,
    },
    Command {
        name: "keys",
        arity: 2,
        run: keyspace::keys,
    },
    Command {
        name: "scan",
        arity: -2,
        run: keyspace::scan,
    },
    Command {
        name: "multi",
        arity: 1,
        run: session::multi,
    },
    Command {
        name: "exec",
        arity: 1,
        run: session::exec,
    },
    Command {
        name: "discard",
        arity: 1,
        run: session::discard,
    },
    Command {
        name: "hello",
        arity: -1,
        run: session::hello,
    },
    Command {
        name: "client",
        arity: -2,
        run: session::client,
    },
    Command {
        name: "quit",
        arity: -1,
        run: |_, _, _, out| {
            resp::simple(out, "OK");
            After::Close
        },
    },
];

/// The command named `name`, if there is one.
pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    COMMANDS
        .iter()
        .find(|c| name.eq_ignore_ascii_case(c.name.as_bytes()))
}

/// Whether `args` has the number of arguments `cmd` takes.
pub fn arity_ok(cmd: &Command, args: Args) -> bool {
    let n = args.len() as i32;
    if cmd.arity > 0 {
        n == cmd.arity
    } else {
        n >= -cmd.arity
    }
}

/// Redis's reply to a command given the wrong number of arguments.
pub fn wrong_arity(name: &str, out: &mut Vec<u8>) {
    resp::error(
        out,
        &format!("ERR wrong number of arguments for '{name}' command"),
    );
}

/// Redis's message, quoting the first arguments.
pub fn unknown_command(args: Args, out: &mut Vec<u8>) {
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
pub fn shown(arg: &[u8]) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(128)]).into_owned()
}

/// An `i64` argument, or Redis's error.
pub fn int_arg(arg: &[u8]) -> Result<i64, &'static str> {
    resp::parse_i64(arg).ok_or(WRONG_TYPE_INT)
}

/// The deadline `n` units of `unit_ms` from now, with Redis's overflow
/// checks: `None` (an invalid expire time) if `n` times the unit, or that
/// added to the Unix time in milliseconds, does not fit an `i64`. A time
/// at or before now is returned as now (the key is to be deleted).
fn deadline(n: i64, unit_ms: i64) -> Option<Instant> {
    let ms = n.checked_mul(unit_ms)?;
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    if ms > i64::MAX - unix_now {
        return None;
    }
    match u64::try_from(ms) {
        Ok(ms) if ms > 0 => evloop::now().checked_add(Duration::from_millis(ms)),
        _ => Some(evloop::now()),
    }
}

fn get(db: &mut Db, s: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    match db.get(args.get(1)) {
        Some(v) => resp::bulk(out, v),
        None => resp::null(out, s.resp3()),
    }
    After::KeepReading
}

fn set(db: &mut Db, s: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
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
            match deadline(n, unit).filter(|_| n > 0) {
                Some(t) => expires = Some(t),
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
            None => resp::null(out, s.resp3()),
        }
    }
    if (nx || xx) && db.exists(key) != xx {
        if !get {
            resp::null(out, s.resp3());
        }
        return After::KeepReading;
    }
    // A large value read across several reads keeps their buffer.
    match args.shared(2) {
        Some((buf, range)) if value.len() >= SHARE_MIN && value.len() * 2 >= buf.capacity() => {
            db.set_shared(key, buf, range, expires, keep_ttl);
        }
        _ => db.set(key, value, expires, keep_ttl),
    }
    if !get {
        resp::simple(out, "OK");
    }
    After::KeepReading
}

fn ping(_: &mut Db, _: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    match args.len() {
        1 => resp::simple(out, "PONG"),
        2 => resp::bulk(out, args.get(1)),
        _ => wrong_arity("ping", out),
    }
    After::KeepReading
}

fn mget(db: &mut Db, s: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    resp::array(out, args.len() - 1);
    for key in args.iter_from(1) {
        match db.get(key) {
            Some(v) => resp::bulk(out, v),
            None => resp::null(out, s.resp3()),
        }
    }
    After::KeepReading
}

fn mset(db: &mut Db, _: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
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

fn del(db: &mut Db, _: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    let n = args.iter_from(1).filter(|k| db.remove(k)).count();
    resp::integer(out, n as i64);
    After::KeepReading
}

fn exists(db: &mut Db, _: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
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
fn expire(db: &mut Db, args: Args, unit_ms: i64, name: &str, out: &mut Vec<u8>) -> After {
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
    // A time at or before now deletes the key (Redis does the same), but
    // one that overflows is refused first, as Redis refuses it.
    let new = match deadline(n, unit_ms) {
        Some(t) => Some(t),
        None => {
            resp::error(out, &format!("ERR invalid expire time in '{name}' command"));
            return After::KeepReading;
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

fn persist(db: &mut Db, _: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    let key = args.get(1);
    let had = matches!(db.ttl(key), Some(Some(_)));
    let done = had && db.set_expiry(key, None);
    resp::integer(out, i64::from(done));
    After::KeepReading
}

fn flush(db: &mut Db, _: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
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

fn select(_: &mut Db, _: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
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
fn command(_: &mut Db, s: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    if args.len() == 1 {
        resp::array(out, 0);
        return After::KeepReading;
    }
    let sub = args.get(1);
    if sub.eq_ignore_ascii_case(b"COUNT") && args.len() == 2 {
        resp::integer(out, COMMANDS.len() as i64);
    } else if sub.eq_ignore_ascii_case(b"DOCS") {
        resp::map(out, 0, s.resp3());
    } else if sub.eq_ignore_ascii_case(b"INFO") {
        // One null per name: "no such command" as far as a client knows.
        resp::array(out, args.len() - 2);
        for _ in 2..args.len() {
            if s.resp3() {
                resp::null(out, true);
            } else {
                out.extend_from_slice(b"*-1\r\n");
            }
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

/// `CONFIG GET name...`: the matching pairs as a map (in RESP2, a flat
/// array);
/// a name may be `*`. Other subcommands are refused.
fn config(_: &mut Db, s: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
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
    resp::map(out, matches.len(), s.resp3());
    for (name, value) in matches {
        resp::bulk(out, name.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    After::KeepReading
}

/// A minimal `INFO`: the server and keyspace sections.
fn info(db: &mut Db, _: &mut Session, _: Args, out: &mut Vec<u8>) -> After {
    let text = format!(
        "# Server\r\nredis_version:{VERSION}\r\nredis_mode:standalone\r\nserver_name:mini_redis\r\n\
         process_id:{}\r\n\r\n# Keyspace\r\ndb0:keys={},expires={}\r\n",
        std::process::id(),
        db.len(),
        db.volatile_len()
    );
    resp::bulk(out, text.as_bytes());
    After::KeepReading
}
