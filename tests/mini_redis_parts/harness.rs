//! The harness of `tests/mini_redis.rs`: builds `examples/mini_redis`
//! (once), starts it on a free loopback port, speaks RESP2 and RESP3 to it
//! with a plain `std::net::TcpStream`, and kills it by its PID at the end.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Generous: the machine is shared and slow at times.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// Builds the example with the profile of this test binary and returns its
/// path. Examples have no `CARGO_BIN_EXE_*`, hence the explicit build.
pub fn binary() -> &'static PathBuf {
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
pub struct Server {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server on a free port.
    pub fn start() -> Server {
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
            if crate::support::net::wait_listening(&mut server.child, port, Duration::from_secs(30))
            {
                return server;
            }
            // `server` drops here: killed and reaped before the next try.
        }
        panic!("mini_redis did not start");
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new connection, with generous timeouts.
    pub fn connect(&self) -> Client {
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

/// A reply, RESP2 or RESP3.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
    /// RESP3's null, `_`.
    Null,
    /// RESP3's map, `%`.
    Map(Vec<(Reply, Reply)>),
}

pub use Reply::*;

pub fn ok() -> Reply {
    Simple("OK".into())
}

pub fn bulk(s: &str) -> Reply {
    Bulk(Some(s.as_bytes().to_vec()))
}

pub fn err(s: &str) -> Reply {
    Error(s.into())
}

/// One connection: a buffered reader and the writing half.
pub struct Client {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

/// `args` as one multibulk frame.
pub fn frame(args: &[&[u8]]) -> Vec<u8> {
    let mut f = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        f.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        f.extend_from_slice(a);
        f.extend_from_slice(b"\r\n");
    }
    f
}

impl Client {
    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write");
    }

    /// Sends one command and reads its reply.
    pub fn cmd(&mut self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&frame(&args));
        self.reply()
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.r.read_line(&mut line).expect("read a reply line");
        assert!(line.ends_with("\r\n"), "truncated reply line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    pub fn reply(&mut self) -> Reply {
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
            "_" => Null,
            "%" => {
                let n: usize = rest.parse().expect("map length");
                Map((0..n).map(|_| (self.reply(), self.reply())).collect())
            }
            _ => panic!("not a RESP reply: {line:?}"),
        }
    }

    /// Everything until the server closes the connection.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.r.read_to_end(&mut rest).expect("read until EOF");
        rest
    }
}
