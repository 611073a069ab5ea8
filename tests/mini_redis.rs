//! `examples/mini_redis` as a black box: each test builds the example
//! (once), starts it on a free loopback port, speaks RESP to it with a
//! plain `std::net::TcpStream` (`mini_redis_parts/harness.rs`), or
//! with real clients (`redis-cli`, redis-py), and kills it by its PID at
//! the end.

#[path = "mini_redis_parts/clients.rs"]
mod clients;
#[path = "mini_redis_parts/harness.rs"]
mod harness;
#[path = "mini_redis_parts/keyspace.rs"]
mod keyspace;
#[path = "mini_redis_parts/sessions.rs"]
mod sessions;
mod support;

use std::io::Write;
use std::net::Shutdown;
use std::thread::sleep;
use std::time::{Duration, Instant};

use harness::*;

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
