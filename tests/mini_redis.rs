//! `examples/mini_redis` as a black box: each test builds the example
//! (once), starts it on a free loopback port, speaks RESP to it with a
//! plain `std::net::TcpStream`, and kills it by its PID at the end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Generous: the machine is shared and slow at times.
const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Builds the example with the profile of this test binary and returns its
/// path. Examples have no `CARGO_BIN_EXE_*`, hence the explicit build.
fn binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // target/<profile>/deps/mini_redis-<hash> -> target/<profile>
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
        let target_dir = profile_dir.parent().expect("target dir");
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build
            .args(["build", "--example", "mini_redis", "--quiet"])
            .arg("--manifest-path")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .env("CARGO_TARGET_DIR", target_dir);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build --example mini_redis failed");
        let bin = profile_dir.join("examples").join("mini_redis");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
}

/// A running server, killed (by PID) and reaped on drop.
struct Server {
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
    fn start() -> Server {
        let bin = binary();
        // A port that was free a moment ago; if another process takes it
        // in between, the server exits and we try another.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let child = Command::new(bin)
                .arg(format!("127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start mini_redis");
            let mut server = Server { child, port };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = server.child.try_wait() {
                    break; // exited: the port was taken
                }
                // A probe that connected to itself (TCP simultaneous open:
                // the port is in the ephemeral range and the kernel can
                // pick it as the source port) proves nothing; nor does one
                // answered while our server is exiting because another
                // process holds the port.
                if let Ok(probe) = TcpStream::connect(("127.0.0.1", port)) {
                    let self_connect = probe.local_addr().ok() == probe.peer_addr().ok();
                    if !self_connect && matches!(server.child.try_wait(), Ok(None)) {
                        return server;
                    }
                }
                sleep(Duration::from_millis(20));
            }
            // `server` drops here: killed and reaped before the next try.
        }
        panic!("mini_redis did not start");
    }

    fn connect(&self) -> Client {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

use Reply::*;

fn ok() -> Reply {
    Simple("OK".into())
}

fn bulk(s: &str) -> Reply {
    Bulk(Some(s.as_bytes().to_vec()))
}

fn err(s: &str) -> Reply {
    Error(s.into())
}

struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

/// `args` as one multibulk frame.
fn frame(args: &[&[u8]]) -> Vec<u8> {
    let mut f = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        f.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        f.extend_from_slice(a);
        f.extend_from_slice(b"\r\n");
    }
    f
}

impl Client {
    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write");
    }

    /// Sends one command and reads its reply.
    fn cmd(&mut self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&frame(&args));
        self.reply()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.r.read_line(&mut line).expect("read a reply line");
        assert!(line.ends_with("\r\n"), "truncated reply line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn reply(&mut self) -> Reply {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Simple(rest.into()),
            "-" => Error(rest.into()),
            ":" => Int(rest.parse().expect("integer reply")),
            "$" => {
                let n: i64 = rest.parse().expect("bulk length");
                if n < 0 {
                    return Bulk(None);
                }
                let mut data = vec![0; n as usize + 2];
                self.r.read_exact(&mut data).expect("bulk body");
                assert_eq!(&data[n as usize..], b"\r\n");
                data.truncate(n as usize);
                Bulk(Some(data))
            }
            "*" => {
                let n: i64 = rest.parse().expect("array length");
                if n < 0 {
                    return Array(None);
                }
                Array(Some((0..n).map(|_| self.reply()).collect()))
            }
            _ => panic!("not a RESP reply: {line:?}"),
        }
    }

    /// Everything until the server closes the connection.
    fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.r.read_to_end(&mut rest).expect("read until EOF");
        rest
    }
}

#[test]
fn each_command() {
    let server = Server::start();
    let mut c = server.connect();
    assert_eq!(c.cmd(&["PING"]), Simple("PONG".into()));
    assert_eq!(c.cmd(&["ping", "hi"]), bulk("hi"));
    assert_eq!(c.cmd(&["ECHO", "a\r\nb"]), bulk("a\r\nb"));
    assert_eq!(c.cmd(&["GET", "k"]), Bulk(None));
    assert_eq!(c.cmd(&["SET", "k", "v1"]), ok());
    assert_eq!(c.cmd(&["get", "k"]), bulk("v1"));
    assert_eq!(c.cmd(&["SET", "k", "v2", "NX"]), Bulk(None));
    assert_eq!(c.cmd(&["SET", "k", "v2", "XX"]), ok());
    assert_eq!(c.cmd(&["SET", "k", "v3", "GET"]), bulk("v2"));
    assert_eq!(c.cmd(&["SET", "new", "x", "XX"]), Bulk(None));
    assert_eq!(c.cmd(&["SET", "new", "x", "NX"]), ok());
    assert_eq!(
        c.cmd(&["SET", "k", "v", "NX", "XX"]),
        err("ERR syntax error")
    );
    assert_eq!(c.cmd(&["SET", "k", "v", "EX"]), err("ERR syntax error"));
    assert_eq!(
        c.cmd(&["SET", "k", "v", "EX", "ten"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        c.cmd(&["SET", "k", "v", "PX", "0"]),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(c.cmd(&["EXISTS", "k", "new", "nope", "k"]), Int(3));
    assert_eq!(c.cmd(&["DEL", "k", "nope"]), Int(1));
    assert_eq!(c.cmd(&["EXISTS", "k"]), Int(0));

    assert_eq!(c.cmd(&["INCR", "n"]), Int(1));
    assert_eq!(c.cmd(&["INCR", "n"]), Int(2));
    assert_eq!(c.cmd(&["INCRBY", "n", "40"]), Int(42));
    assert_eq!(c.cmd(&["DECR", "n"]), Int(41));
    assert_eq!(c.cmd(&["DECRBY", "n", "-1"]), Int(42));
    assert_eq!(c.cmd(&["GET", "n"]), bulk("42"));
    assert_eq!(
        c.cmd(&["INCR", "new"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd(&["SET", "big", &i64::MAX.to_string()]), ok());
    assert_eq!(
        c.cmd(&["INCR", "big"]),
        err("ERR increment or decrement would overflow")
    );

    assert_eq!(c.cmd(&["MSET", "a", "1", "b", "2"]), ok());
    assert_eq!(
        c.cmd(&["MGET", "a", "nope", "b"]),
        Array(Some(vec![bulk("1"), Bulk(None), bulk("2")]))
    );
    assert_eq!(
        c.cmd(&["MSET", "a", "1", "b"]),
        err("ERR wrong number of arguments for 'mset' command")
    );

    assert_eq!(c.cmd(&["TTL", "a"]), Int(-1));
    assert_eq!(c.cmd(&["TTL", "nope"]), Int(-2));
    assert_eq!(c.cmd(&["EXPIRE", "a", "100"]), Int(1));
    assert!(matches!(c.cmd(&["TTL", "a"]), Int(99..=100)));
    assert!(matches!(c.cmd(&["PTTL", "a"]), Int(1..=100_000)));
    assert_eq!(c.cmd(&["EXPIRE", "a", "200", "NX"]), Int(0));
    assert_eq!(c.cmd(&["EXPIRE", "a", "200", "GT"]), Int(1));
    assert_eq!(c.cmd(&["EXPIRE", "nope", "100"]), Int(0));
    assert_eq!(c.cmd(&["PERSIST", "a"]), Int(1));
    assert_eq!(c.cmd(&["TTL", "a"]), Int(-1));
    assert_eq!(c.cmd(&["EXPIRE", "a", "-1"]), Int(1));
    assert_eq!(c.cmd(&["EXISTS", "a"]), Int(0));

    assert_eq!(c.cmd(&["COMMAND"]), Array(Some(vec![])));
    assert_eq!(c.cmd(&["COMMAND", "DOCS"]), Array(Some(vec![])));
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "save"]),
        Array(Some(vec![bulk("save"), bulk("")]))
    );
    assert_eq!(
        c.cmd(&["config", "get", "appendonly"]),
        Array(Some(vec![bulk("appendonly"), bulk("no")]))
    );
    assert_eq!(c.cmd(&["SELECT", "0"]), ok());
    assert_eq!(c.cmd(&["DBSIZE"]), Int(4), "new, n, big, b");

    // Errors read as Redis's.
    assert_eq!(
        c.cmd(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        c.cmd(&["get", "a", "b"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        c.cmd(&["NOSUCH", "x", "y"]),
        err("ERR unknown command 'NOSUCH', with args beginning with: 'x' 'y' ")
    );
    // The connection is still in step after all of those.
    assert_eq!(c.cmd(&["PING"]), Simple("PONG".into()));
    assert_eq!(c.cmd(&["QUIT"]), ok());
    assert!(c.read_to_end().is_empty());
}

#[test]
fn inline_commands() {
    let server = Server::start();
    let mut c = server.connect();
    c.send(b"PING\r\nSET greeting  hello\r\n\r\nget greeting\nINCR greeting\r\n");
    assert_eq!(c.reply(), Simple("PONG".into()));
    assert_eq!(c.reply(), ok());
    assert_eq!(c.reply(), bulk("hello"));
    assert_eq!(
        c.reply(),
        err("ERR value is not an integer or out of range")
    );
}

#[test]
fn pipelining_replies_in_order() {
    let server = Server::start();
    let mut c = server.connect();
    // Several hundred KiB in one write: the server sees it in many reads,
    // with frames cut anywhere.
    let n = 5000;
    let mut batch = Vec::new();
    for i in 0..n {
        let (k, v) = (format!("key:{i}"), format!("value-{i}"));
        batch.extend(frame(&[b"SET", k.as_bytes(), v.as_bytes()]));
        batch.extend(frame(&[b"GET", k.as_bytes()]));
        batch.extend(frame(&[b"INCR", b"counter"]));
    }
    // Write from another thread: the replies must be read meanwhile, or
    // both sides could fill their socket buffers.
    let mut w = c.w.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&batch).unwrap());
    for i in 0..n {
        assert_eq!(c.reply(), ok());
        assert_eq!(c.reply(), bulk(&format!("value-{i}")));
        assert_eq!(c.reply(), Int(i as i64 + 1));
    }
    writer.join().unwrap();
    assert_eq!(c.cmd(&["DBSIZE"]), Int(n as i64 + 1));
}

#[test]
fn large_values() {
    let server = Server::start();
    let mut c = server.connect();
    let value: String = (0..3_000_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    assert_eq!(c.cmd(&["SET", "big", &value]), ok());
    assert_eq!(c.cmd(&["GET", "big"]), Bulk(Some(value.into_bytes())));
}

#[test]
fn expiry_with_px() {
    let server = Server::start();
    let mut c = server.connect();
    assert_eq!(c.cmd(&["SET", "long", "v", "PX", "600000"]), ok());
    assert_eq!(c.cmd(&["SET", "short", "v", "PX", "50"]), ok());
    // Many keys that nobody reads again: only the timer can reclaim them.
    for i in 0..200 {
        assert_eq!(c.cmd(&["SET", &format!("gone:{i}"), "v", "PX", "30"]), ok());
    }
    assert_eq!(c.cmd(&["GET", "long"]), bulk("v"));
    assert!(matches!(c.cmd(&["TTL", "long"]), Int(1..=600)));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        sleep(Duration::from_millis(200));
        // DBSIZE counts keys not yet deleted, expired or not: it drops to
        // 1 only when the active expiry has deleted them.
        if c.cmd(&["DBSIZE"]) == Int(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired keys were never reclaimed"
        );
    }
    assert_eq!(c.cmd(&["GET", "short"]), Bulk(None));
    assert_eq!(c.cmd(&["TTL", "short"]), Int(-2));
    assert_eq!(c.cmd(&["GET", "long"]), bulk("v"));

    // Lazy expiry: an expired key is gone for every command at once, even
    // before the timer runs.
    assert_eq!(c.cmd(&["SET", "lazy", "v", "PX", "1"]), ok());
    sleep(Duration::from_millis(50));
    assert_eq!(c.cmd(&["EXISTS", "lazy"]), Int(0));
    assert_eq!(c.cmd(&["INCR", "lazy"]), Int(1));
    assert_eq!(c.cmd(&["TTL", "lazy"]), Int(-1));
}

/// Each malformed input: what precedes it is answered, then one
/// `-ERR Protocol error: ...` and the connection closes. Another client,
/// connected throughout, does not notice.
#[test]
fn malformed_frames_close_only_that_connection() {
    let server = Server::start();
    let mut bystander = server.connect();
    assert_eq!(bystander.cmd(&["SET", "k", "v"]), ok());
    let mut overlong_inline = vec![b'x'; 70 * 1024];
    overlong_inline.extend_from_slice(b"\r\n");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"*x\r\n".to_vec(), "invalid multibulk length"),
        (b"*3000000\r\n".to_vec(), "invalid multibulk length"),
        (b"*1\r\n+PING\r\n".to_vec(), "expected '$', got '+'"),
        (b"*1\r\n$-5\r\n".to_vec(), "invalid bulk length"),
        (b"*1\r\n$999999999999\r\n".to_vec(), "invalid bulk length"),
        (
            b"*1\r\n$4\r\nPINGPONG\r\n".to_vec(),
            "expected CRLF after bulk string",
        ),
        (overlong_inline, "too big inline request"),
    ];
    for (input, why) in cases {
        let mut c = server.connect();
        let mut sent = b"PING\r\n".to_vec();
        sent.extend_from_slice(&input);
        c.send(&sent);
        let got = String::from_utf8_lossy(&c.read_to_end()).into_owned();
        assert_eq!(got, format!("+PONG\r\n-ERR Protocol error: {why}\r\n"));
        assert_eq!(bystander.cmd(&["GET", "k"]), bulk("v"), "after {why}");
    }
}

#[test]
fn truncated_frames_wait_for_the_rest() {
    let server = Server::start();
    let mut c = server.connect();
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhel");
    sleep(Duration::from_millis(100));
    c.send(b"lo\r\n*2\r\n$3\r");
    sleep(Duration::from_millis(100));
    c.send(b"\nGET\r\n$1\r\nk\r\n");
    assert_eq!(c.reply(), ok());
    assert_eq!(c.reply(), bulk("hello"));
    // One byte per write (and, with TCP_NODELAY, mostly per read).
    for b in frame(&[b"ECHO", b"byte by byte"]) {
        c.send(&[b]);
    }
    assert_eq!(c.reply(), bulk("byte by byte"));
}

#[test]
fn clients_that_vanish_mid_frame() {
    let server = Server::start();
    let mut bystander = server.connect();
    for partial in [
        &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc"[..],
        b"*2\r\n$3\r\nGET",
        b"PIN",
    ] {
        let mut c = server.connect();
        c.send(partial);
        drop(c);
        assert_eq!(bystander.cmd(&["PING"]), Simple("PONG".into()));
    }
    // One that announces 500 MB, sends 4 MB of it and goes.
    let mut c = server.connect();
    c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n");
    c.send(&vec![b'x'; 4 << 20]);
    c.w.shutdown(Shutdown::Both).unwrap();
    drop(c);
    assert_eq!(bystander.cmd(&["SET", "after", "ok"]), ok());
    assert_eq!(bystander.cmd(&["EXISTS", "k", "after"]), Int(1));
}

#[test]
fn redis_cli_as_a_client() {
    let Ok(out) = Command::new("redis-cli").arg("--version").output() else {
        println!("note: redis-cli is not on PATH; skipping the real-client test");
        return;
    };
    assert!(out.status.success());
    let server = Server::start();
    let port = server.port.to_string();
    let cli = |args: &[&str]| -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(cli(&["PING"]), "PONG\n");
    assert_eq!(cli(&["SET", "cli", "hello world"]), "OK\n");
    assert_eq!(cli(&["GET", "cli"]), "hello world\n");
    assert_eq!(cli(&["INCR", "ctr"]), "1\n");
    assert_eq!(cli(&["MGET", "cli", "nope"]), "hello world\n\n");
    // (redis-cli prints an error with a blank line after it.)
    assert_eq!(
        cli(&["GET"]).trim_end(),
        "ERR wrong number of arguments for 'get' command"
    );
    // Commands on stdin, as a script would pipe them.
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run redis-cli");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SET piped 7\nINCRBY piped 3\nGET piped\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "OK\n10\n10\n");
}
