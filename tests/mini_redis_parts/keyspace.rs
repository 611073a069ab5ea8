//! mini_redis tests: the keyspace as a whole (`KEYS`, `SCAN`, `TYPE`) and
//! expiry times that overflow.

use std::thread::sleep;
use std::time::Duration;

use super::harness::*;

#[test]
fn keys_and_type() {
    let server = Server::start();
    let mut c = server.connect();
    for k in [
        "hello", "hallo", "hxllo", "hllo", "heeeello", "h*llo", "h]llo",
    ] {
        assert_eq!(c.cmd(&["SET", k, "1"]), ok());
    }
    fn sorted_keys(c: &mut Client, pattern: &str) -> Vec<String> {
        let Array(Some(found)) = c.cmd(&["KEYS", pattern]) else {
            panic!("KEYS {pattern} is not an array");
        };
        let mut found: Vec<String> = found
            .into_iter()
            .map(|r| match r {
                Bulk(Some(k)) => String::from_utf8(k).unwrap(),
                other => panic!("KEYS gave {other:?}"),
            })
            .collect();
        found.sort();
        found
    }
    let mut keys = |pattern: &str| sorted_keys(&mut c, pattern);
    // The answers redis-server 7.0.15 gives for the same keys.
    assert_eq!(keys("h?llo"), ["h*llo", "h]llo", "hallo", "hello", "hxllo"]);
    assert_eq!(
        keys("h*llo"),
        ["h*llo", "h]llo", "hallo", "heeeello", "hello", "hllo", "hxllo"]
    );
    assert_eq!(keys("h[ae]llo"), ["hallo", "hello"]);
    assert_eq!(keys("h[^e]llo"), ["h*llo", "h]llo", "hallo", "hxllo"]);
    assert_eq!(keys("h[a-e]llo"), ["hallo", "hello"]);
    assert_eq!(keys("h[e-a]llo"), ["hallo", "hello"]);
    assert_eq!(keys("h\\*llo"), ["h*llo"]);
    assert_eq!(keys("h[\\]]llo"), ["h]llo"]);
    assert_eq!(keys("nothing*"), Vec::<String>::new());
    assert_eq!(keys("*").len(), 7);
    assert_eq!(c.cmd(&["SET", "short", "v", "PX", "1"]), ok());
    sleep(Duration::from_millis(20));
    assert_eq!(
        sorted_keys(&mut c, "short"),
        Vec::<String>::new(),
        "expired keys are not listed"
    );
    assert_eq!(
        c.cmd(&["KEYS"]),
        err("ERR wrong number of arguments for 'keys' command")
    );

    assert_eq!(c.cmd(&["TYPE", "hello"]), Simple("string".into()));
    assert_eq!(c.cmd(&["TYPE", "nope"]), Simple("none".into()));
    assert_eq!(
        c.cmd(&["TYPE"]),
        err("ERR wrong number of arguments for 'type' command")
    );
}

/// A full scan returns every key present throughout exactly once, ends
/// with cursor 0, and keys added and deleted meanwhile do not upset it.
#[test]
fn scan_returns_every_key_once() {
    let server = Server::start();
    let mut c = server.connect();
    let n = 2000;
    for i in 0..n {
        assert_eq!(c.cmd(&["SET", &format!("key:{i}"), "v"]), ok());
    }
    let mut seen = std::collections::HashMap::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let reply = c.cmd(&["SCAN", &cursor, "COUNT", "7"]);
        let Array(Some(parts)) = reply else {
            panic!("SCAN gave {reply:?}");
        };
        let [Bulk(Some(next)), Array(Some(keys))] = &parts[..] else {
            panic!("SCAN gave {parts:?}");
        };
        for k in keys {
            let Bulk(Some(k)) = k else {
                panic!("SCAN key {k:?}");
            };
            *seen.entry(k.clone()).or_insert(0) += 1;
        }
        // Churn: new keys, and some deleted that are then not required.
        for j in 0..5 {
            let k = format!("new:{calls}:{j}");
            assert_eq!(c.cmd(&["SET", &k, "v"]), ok());
        }
        let gone = format!("key:{}", n - 1 - calls);
        c.cmd(&["DEL", &gone]);
        calls += 1;
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            break;
        }
        assert!(calls < 10 * n, "SCAN does not end");
    }
    for i in 0..n - calls {
        let k = format!("key:{i}").into_bytes();
        assert_eq!(
            seen.get(&k),
            Some(&1),
            "key:{i} seen {:?} times",
            seen.get(&k)
        );
    }
    assert!(seen.values().all(|&v| v == 1), "a key came back twice");

    // MATCH and TYPE filter; a large COUNT takes it all at once.
    let all = c.cmd(&["SCAN", "0", "MATCH", "key:1?", "COUNT", "100000"]);
    let Array(Some(parts)) = all else {
        panic!("SCAN gave {all:?}");
    };
    assert_eq!(parts[0], bulk("0"));
    let Array(Some(keys)) = &parts[1] else {
        panic!("SCAN gave {parts:?}");
    };
    assert_eq!(keys.len(), 10, "key:10 to key:19");
    assert_eq!(
        c.cmd(&["SCAN", "0", "TYPE", "list", "COUNT", "100000"]),
        Array(Some(vec![bulk("0"), Array(Some(vec![]))]))
    );
    // Deleting every key (the last places first, so the place list
    // shrinks) and adding new ones: a scan finds exactly the new ones.
    let Array(Some(all)) = c.cmd(&["KEYS", "*"]) else {
        panic!("KEYS * is not an array");
    };
    for k in all.iter().rev() {
        let Bulk(Some(k)) = k else {
            panic!("KEYS gave {k:?}");
        };
        assert_eq!(c.cmd(&["DEL", std::str::from_utf8(k).unwrap()]), Int(1));
    }
    assert_eq!(c.cmd(&["DBSIZE"]), Int(0));
    for i in 0..50 {
        assert_eq!(c.cmd(&["SET", &format!("again:{i}"), "v"]), ok());
    }
    let (mut cursor, mut found) = ("0".to_string(), Vec::new());
    loop {
        let Array(Some(parts)) = c.cmd(&["SCAN", &cursor, "COUNT", "3"]) else {
            panic!("SCAN is not an array");
        };
        let [Bulk(Some(next)), Array(Some(keys))] = &parts[..] else {
            panic!("SCAN gave {parts:?}");
        };
        found.extend(keys.iter().map(|k| format!("{k:?}")));
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    found.sort();
    assert_eq!(found.len(), 50);
    found.dedup();
    assert_eq!(found.len(), 50, "no key twice");

    // A cursor past the end is the end.
    assert_eq!(
        c.cmd(&["SCAN", "18446744073709551615"]),
        Array(Some(vec![bulk("0"), Array(Some(vec![]))]))
    );

    let syntax = err("ERR syntax error");
    assert_eq!(c.cmd(&["SCAN", "x"]), err("ERR invalid cursor"));
    assert_eq!(
        c.cmd(&["SCAN", "18446744073709551616"]),
        err("ERR invalid cursor")
    );
    assert_eq!(c.cmd(&["SCAN", "0", "COUNT", "0"]), syntax);
    assert_eq!(c.cmd(&["SCAN", "0", "COUNT", "-1"]), syntax);
    assert_eq!(
        c.cmd(&["SCAN", "0", "COUNT", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.cmd(&["SCAN", "0", "MATCH"]), syntax);
    assert_eq!(c.cmd(&["SCAN", "0", "FOO", "1"]), syntax);
    assert_eq!(
        c.cmd(&["SCAN"]),
        err("ERR wrong number of arguments for 'scan' command")
    );
}

/// Expiry times that overflow are refused, as Redis refuses them, instead
/// of deleting the key (or setting a deadline in the past).
#[test]
fn expiry_overflow() {
    let server = Server::start();
    let mut c = server.connect();
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    let expire = err("ERR invalid expire time in 'expire' command");
    let pexpire = err("ERR invalid expire time in 'pexpire' command");
    let set = err("ERR invalid expire time in 'set' command");
    let (min, max) = (i64::MIN.to_string(), i64::MAX.to_string());
    assert_eq!(c.cmd(&["EXPIRE", "k", &min]), expire);
    assert_eq!(c.cmd(&["EXPIRE", "k", &max]), expire);
    // i64::MAX / 1000 seconds fits in milliseconds, but not added to now.
    assert_eq!(c.cmd(&["EXPIRE", "k", "9223372036854775"]), expire);
    assert_eq!(c.cmd(&["PEXPIRE", "k", &max]), pexpire);
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", &max]), set);
    assert_eq!(c.cmd(&["SET", "k", "v", "PX", &max]), set);
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "9223372036854775"]), set);
    assert_eq!(c.cmd(&["SET", "k", "v", "PX", &min]), set);
    assert_eq!(c.cmd(&["SET", "k", "v", "EX", "-1"]), set);
    // The key is untouched by all of those.
    assert_eq!(c.cmd(&["GET", "k"]), bulk("v"));
    assert_eq!(c.cmd(&["TTL", "k"]), Int(-1));
    // A large deadline that fits is taken.
    assert_eq!(c.cmd(&["EXPIRE", "k", "100000000000"]), Int(1));
    assert!(matches!(
        c.cmd(&["TTL", "k"]),
        Int(99_999_999_000..=100_000_000_000)
    ));
    // PEXPIRE i64::MIN does not overflow (now minus that fits): in the
    // past, so the key goes, as in Redis.
    assert_eq!(c.cmd(&["PEXPIRE", "k", &min]), Int(1));
    assert_eq!(c.cmd(&["EXISTS", "k"]), Int(0));
}
