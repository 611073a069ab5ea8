//! What a connection knows about its client: its id and name, and the
//! transaction it is building. The commands about them: `HELLO`, `CLIENT`,
//! `MULTI`, `EXEC`, `DISCARD`.
//!
//! A transaction is simple on one thread: the commands between `MULTI`
//! and `EXEC` are queued (each answered `+QUEUED`, after the same name and
//! arity checks as when run at once), and `EXEC` runs them all in a row,
//! with no other client's command in between. A command refused while
//! queueing spoils the transaction: `EXEC` then runs none of it
//! (`-EXECABORT`), as in Redis.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::args::OwnedArgs;
use crate::commands::{self, shown, wrong_arity};
use crate::db::Db;
use crate::resp::{self, Args};
use crate::After;

/// The id of the next client (`CLIENT ID`); ids start at 1 and are never
/// reused.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One client's state.
#[derive(Debug)]
pub struct Session {
    id: u64,
    /// Whether the client asked for RESP3 (`HELLO 3`); RESP2 otherwise.
    resp3: bool,
    /// Set by `CLIENT SETNAME` or `HELLO ... SETNAME`; empty for none.
    name: Vec<u8>,
    /// Between `MULTI` and `EXEC`: the queued commands.
    multi: Option<Multi>,
}

/// A transaction being built.
#[derive(Debug, Default)]
struct Multi {
    queue: Vec<OwnedArgs>,
    /// A command was refused while queueing: `EXEC` must abort.
    spoiled: bool,
}

impl Default for Session {
    fn default() -> Self {
        Session::new()
    }
}

impl Session {
    /// A new client, with the next id.
    pub fn new() -> Session {
        Session {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            resp3: false,
            name: Vec::new(),
            multi: None,
        }
    }

    /// Whether replies are to be in RESP3 (which differs from RESP2, for
    /// the replies this server gives, in nulls and maps).
    pub fn resp3(&self) -> bool {
        self.resp3
    }

    /// Queues `args` if a transaction is open and the command is one to
    /// be queued, answering for it; returns whether it did.
    pub fn queue(&mut self, args: Args, out: &mut Vec<u8>) -> bool {
        let Some(multi) = &mut self.multi else {
            return false;
        };
        let name = args.get(0);
        if name.eq_ignore_ascii_case(b"exec") && args.len() != 1 {
            // Redis ends the transaction on a malformed EXEC.
            self.multi = None;
            resp::error(
                out,
                "EXECABORT Transaction discarded because of: \
                 wrong number of arguments for 'exec' command",
            );
            return true;
        }
        // These act at once even inside a transaction.
        let now = [&b"exec"[..], b"discard", b"multi", b"quit"];
        if now.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return false;
        }
        match commands::lookup(name) {
            None => {
                commands::unknown_command(args, out);
                multi.spoiled = true;
            }
            Some(cmd) if !commands::arity_ok(cmd, args) => {
                wrong_arity(cmd.name, out);
                multi.spoiled = true;
            }
            Some(_) => {
                multi.queue.push(OwnedArgs::copy(args));
                resp::simple(out, "QUEUED");
            }
        }
        true
    }
}

/// `MULTI`: opens a transaction.
pub fn multi(_: &mut Db, s: &mut Session, _: Args, out: &mut Vec<u8>) -> After {
    if s.multi.is_some() {
        resp::error(out, "ERR MULTI calls can not be nested");
    } else {
        s.multi = Some(Multi::default());
        resp::simple(out, "OK");
    }
    After::KeepReading
}

/// `EXEC`: runs the queued commands, their replies in one array.
pub fn exec(db: &mut Db, s: &mut Session, _: Args, out: &mut Vec<u8>) -> After {
    let Some(multi) = s.multi.take() else {
        resp::error(out, "ERR EXEC without MULTI");
        return After::KeepReading;
    };
    if multi.spoiled {
        resp::error(
            out,
            "EXECABORT Transaction discarded because of previous errors.",
        );
        return After::KeepReading;
    }
    resp::array(out, multi.queue.len());
    let mut after = After::KeepReading;
    for args in &multi.queue {
        if crate::execute(db, s, args.args(), out) == After::Close {
            after = After::Close;
        }
    }
    after
}

/// `DISCARD`: drops the queued commands.
pub fn discard(_: &mut Db, s: &mut Session, _: Args, out: &mut Vec<u8>) -> After {
    if s.multi.take().is_some() {
        resp::simple(out, "OK");
    } else {
        resp::error(out, "ERR DISCARD without MULTI");
    }
    After::KeepReading
}

/// Whether `name` may name a client (or a library, `CLIENT SETINFO`):
/// printable ASCII without spaces, as Redis requires.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`: switches to
/// protocol 2 or 3 (RESP3), and answers the server's description as a
/// map (in RESP2, a flat array of names and values). RESP3 is what
/// redis-py 8 asks for by default, without falling back to RESP2.
pub fn hello(_: &mut Db, s: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    let mut version = None;
    if args.len() >= 2 {
        match resp::parse_i64(args.get(1)) {
            None => {
                resp::error(
                    out,
                    "ERR Protocol version is not an integer or out of range",
                );
                return After::KeepReading;
            }
            Some(v @ (2 | 3)) => version = Some(v),
            Some(_) => {
                resp::error(out, "NOPROTO sorry, this protocol version is not supported");
                return After::KeepReading;
            }
        }
    }
    let mut name = None;
    let mut i = 2;
    while i < args.len() {
        let opt = args.get(i);
        let more = args.len() - i - 1;
        if opt.eq_ignore_ascii_case(b"AUTH") && more >= 2 {
            // No passwords here: only the default user, as a Redis without
            // `requirepass` accepts it with any password.
            if args.get(i + 1) != b"default" {
                resp::error(
                    out,
                    "WRONGPASS invalid username-password pair or user is disabled.",
                );
                return After::KeepReading;
            }
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"SETNAME") && more >= 1 {
            name = Some(args.get(i + 1));
            i += 2;
        } else {
            let msg = format!("ERR Syntax error in HELLO option '{}'", shown(opt));
            resp::error(out, &msg);
            return After::KeepReading;
        }
    }
    if let Some(name) = name {
        if !set_name(s, name, out) {
            return After::KeepReading;
        }
    }
    if let Some(v) = version {
        s.resp3 = v == 3;
    }
    resp::map(out, 7, s.resp3);
    for (field, value) in [("server", "redis"), ("version", crate::commands::VERSION)] {
        resp::bulk(out, field.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    resp::bulk(out, b"proto");
    resp::integer(out, if s.resp3 { 3 } else { 2 });
    resp::bulk(out, b"id");
    resp::integer(out, s.id as i64);
    for (field, value) in [("mode", "standalone"), ("role", "master")] {
        resp::bulk(out, field.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    resp::bulk(out, b"modules");
    resp::array(out, 0);
    After::KeepReading
}

/// Names the client (an empty name removes it); false, with the error
/// written, if the name is not valid.
fn set_name(s: &mut Session, name: &[u8], out: &mut Vec<u8>) -> bool {
    if !valid_name(name) {
        resp::error(
            out,
            "ERR Client names cannot contain spaces, newlines or special characters.",
        );
        return false;
    }
    s.name = name.to_vec();
    true
}

/// `CLIENT ID`, `CLIENT GETNAME`, `CLIENT SETNAME name`, and `CLIENT
/// SETINFO LIB-NAME|LIB-VER value` (accepted and checked, as clients send
/// it when they connect, but not kept).
pub fn client(_: &mut Db, s: &mut Session, args: Args, out: &mut Vec<u8>) -> After {
    let sub = args.get(1);
    let is = |name: &str, arity: usize| {
        let matched = sub.eq_ignore_ascii_case(name.as_bytes());
        (matched, matched && args.len() != arity)
    };
    let arity_error = |name: &str, out: &mut Vec<u8>| {
        wrong_arity(&format!("client|{name}"), out);
        After::KeepReading
    };
    match is("id", 2) {
        (true, true) => return arity_error("id", out),
        (true, false) => {
            resp::integer(out, s.id as i64);
            return After::KeepReading;
        }
        _ => {}
    }
    match is("getname", 2) {
        (true, true) => return arity_error("getname", out),
        (true, false) if s.name.is_empty() => {
            resp::null(out, s.resp3);
            return After::KeepReading;
        }
        (true, false) => {
            resp::bulk(out, &s.name);
            return After::KeepReading;
        }
        _ => {}
    }
    match is("setname", 3) {
        (true, true) => return arity_error("setname", out),
        (true, false) => {
            if set_name(s, args.get(2), out) {
                resp::simple(out, "OK");
            }
            return After::KeepReading;
        }
        _ => {}
    }
    match is("setinfo", 4) {
        (true, true) => return arity_error("setinfo", out),
        (true, false) => {
            let (attr, value) = (args.get(2), args.get(3));
            if !attr.eq_ignore_ascii_case(b"LIB-NAME") && !attr.eq_ignore_ascii_case(b"LIB-VER") {
                let msg = format!("ERR Unrecognized option '{}'", shown(attr));
                resp::error(out, &msg);
            } else if !valid_name(value) {
                let msg = format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    shown(attr)
                );
                resp::error(out, &msg);
            } else {
                resp::simple(out, "OK");
            }
            return After::KeepReading;
        }
        _ => {}
    }
    let msg = format!("ERR unknown subcommand '{}'. Try CLIENT HELP.", shown(sub));
    resp::error(out, &msg);
    After::KeepReading
}
