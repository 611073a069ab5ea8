//! mini_redis tests: what a connection knows about its client (`HELLO`,
//! RESP3, `CLIENT`) and transactions (`MULTI`/`EXEC`/`DISCARD`).

use super::harness::*;

#[test]
fn hello_and_client() {
    let server = Server::start();
    let mut c = server.connect();
    let Int(id) = c.cmd(&["CLIENT", "ID"]) else {
        panic!("CLIENT ID is not an integer");
    };
    // RESP2: the map as a flat array, as Redis sends it.
    let hello = c.cmd(&["HELLO", "2", "SETNAME", "first"]);
    let Array(Some(fields)) = hello else {
        panic!("HELLO 2 gave {hello:?}");
    };
    assert_eq!(fields.len(), 14);
    assert_eq!(fields[0..2], [bulk("server"), bulk("redis")]);
    assert_eq!(fields[4..6], [bulk("proto"), Int(2)]);
    assert_eq!(fields[6..8], [bulk("id"), Int(id)]);
    assert_eq!(fields[12..14], [bulk("modules"), Array(Some(vec![]))]);
    assert!(matches!(c.cmd(&["HELLO"]), Array(Some(f)) if f.len() == 14));
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), bulk("first"));
    let Int(other) = server.connect().cmd(&["CLIENT", "ID"]) else {
        panic!("CLIENT ID is not an integer");
    };
    assert_ne!(other, id);

    let noproto = err("NOPROTO sorry, this protocol version is not supported");
    assert_eq!(c.cmd(&["HELLO", "4"]), noproto);
    assert_eq!(c.cmd(&["HELLO", "1"]), noproto);
    assert_eq!(
        c.cmd(&["HELLO", "x"]),
        err("ERR Protocol version is not an integer or out of range")
    );
    assert_eq!(
        c.cmd(&["HELLO", "2", "foo"]),
        err("ERR Syntax error in HELLO option 'foo'")
    );
    assert_eq!(
        c.cmd(&["HELLO", "2", "SETNAME"]),
        err("ERR Syntax error in HELLO option 'SETNAME'")
    );
    assert_eq!(
        c.cmd(&["HELLO", "2", "AUTH", "bob", "pw"]),
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert!(matches!(
        c.cmd(&["HELLO", "2", "AUTH", "default", "any"]),
        Array(Some(_))
    ));

    let bad_name = err("ERR Client names cannot contain spaces, newlines or special characters.");
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "a b"]), bad_name);
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", "a\nb"]), bad_name);
    assert_eq!(c.cmd(&["HELLO", "2", "SETNAME", "a b"]), bad_name);
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), bulk("first"));
    assert_eq!(c.cmd(&["client", "setname", "second"]), ok());
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), bulk("second"));
    assert_eq!(c.cmd(&["CLIENT", "SETNAME", ""]), ok());
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), Bulk(None));
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]), ok());
    assert_eq!(c.cmd(&["CLIENT", "SETINFO", "lib-ver", "7.0.1"]), ok());
    assert_eq!(
        c.cmd(&["CLIENT", "SETINFO", "foo", "x"]),
        err("ERR Unrecognized option 'foo'")
    );
    assert_eq!(
        c.cmd(&["CLIENT", "SETINFO", "LIB-VER", "1 2"]),
        err("ERR LIB-VER cannot contain spaces, newlines or special characters.")
    );
    assert_eq!(
        c.cmd(&["CLIENT", "SETNAME"]),
        err("ERR wrong number of arguments for 'client|setname' command")
    );
    assert_eq!(
        c.cmd(&["CLIENT", "ID", "x"]),
        err("ERR wrong number of arguments for 'client|id' command")
    );
    assert_eq!(
        c.cmd(&["CLIENT", "FOO"]),
        err("ERR unknown subcommand 'FOO'. Try CLIENT HELP.")
    );
    assert_eq!(
        c.cmd(&["CLIENT"]),
        err("ERR wrong number of arguments for 'client' command")
    );
}

/// `HELLO 3` switches the connection to RESP3 (what redis-py 8 asks for
/// by default): nulls and maps change, the rest reads the same.
#[test]
fn hello_3_speaks_resp3() {
    let server = Server::start();
    let mut c = server.connect();
    let Map(fields) = c.cmd(&["HELLO", "3"]) else {
        panic!("HELLO 3 is not a map");
    };
    assert_eq!(fields.len(), 7);
    assert!(fields.contains(&(bulk("proto"), Int(3))));
    assert!(fields.contains(&(bulk("server"), bulk("redis"))));
    assert_eq!(c.cmd(&["GET", "nope"]), Null);
    assert_eq!(c.cmd(&["SET", "k", "v"]), ok());
    assert_eq!(
        c.cmd(&["MGET", "k", "nope"]),
        Array(Some(vec![bulk("v"), Null]))
    );
    assert_eq!(c.cmd(&["SET", "k", "v", "NX"]), Null);
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), Null);
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "save"]),
        Map(vec![(bulk("save"), bulk(""))])
    );
    // And back.
    assert!(matches!(c.cmd(&["HELLO", "2"]), Array(Some(_))));
    assert_eq!(c.cmd(&["GET", "nope"]), Bulk(None));
    // Another connection was never switched.
    assert_eq!(server.connect().cmd(&["GET", "nope"]), Bulk(None));
}

#[test]
fn transactions() {
    let server = Server::start();
    let mut c = server.connect();
    let mut other = server.connect();
    let queued = || Simple("QUEUED".into());
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["SET", "a", "1"]), queued());
    assert_eq!(c.cmd(&["INCR", "a"]), queued());
    assert_eq!(c.cmd(&["GET", "a"]), queued());
    // Nothing has run yet: another client sees no "a".
    assert_eq!(other.cmd(&["GET", "a"]), Bulk(None));
    assert_eq!(c.cmd(&["MULTI"]), err("ERR MULTI calls can not be nested"));
    assert_eq!(c.cmd(&["EXEC"]), Array(Some(vec![ok(), Int(2), bulk("2")])));
    assert_eq!(other.cmd(&["GET", "a"]), bulk("2"));

    // An error at run time is one of the replies; the rest still run.
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["SET", "s", "x"]), queued());
    assert_eq!(c.cmd(&["INCR", "s"]), queued());
    assert_eq!(c.cmd(&["SET", "t", "y"]), queued());
    assert_eq!(
        c.cmd(&["EXEC"]),
        Array(Some(vec![
            ok(),
            err("ERR value is not an integer or out of range"),
            ok()
        ]))
    );

    // A command refused while queueing spoils the whole transaction.
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["SET", "spoiled", "1"]), queued());
    assert_eq!(
        c.cmd(&["NOSUCH"]),
        err("ERR unknown command 'NOSUCH', with args beginning with: ")
    );
    assert_eq!(
        c.cmd(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        c.cmd(&["EXEC"]),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(c.cmd(&["EXISTS", "spoiled"]), Int(0));

    // DISCARD drops the queue; errors outside a transaction.
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["SET", "dropped", "1"]), queued());
    assert_eq!(c.cmd(&["DISCARD"]), ok());
    assert_eq!(c.cmd(&["EXISTS", "dropped"]), Int(0));
    assert_eq!(c.cmd(&["EXEC"]), err("ERR EXEC without MULTI"));
    assert_eq!(c.cmd(&["DISCARD"]), err("ERR DISCARD without MULTI"));
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(c.cmd(&["EXEC"]), Array(Some(vec![])));
    // A malformed EXEC ends the transaction, as in Redis.
    assert_eq!(c.cmd(&["MULTI"]), ok());
    assert_eq!(
        c.cmd(&["EXEC", "x"]),
        err("EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command")
    );
    assert_eq!(c.cmd(&["EXEC"]), err("ERR EXEC without MULTI"));
    // Pipelined, the way client libraries send a transaction.
    let mut batch = Vec::new();
    for args in [&["MULTI"][..], &["INCR", "p"], &["INCR", "p"], &["EXEC"]] {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        batch.extend(frame(&args));
    }
    c.send(&batch);
    assert_eq!(c.reply(), ok());
    assert_eq!(c.reply(), queued());
    assert_eq!(c.reply(), queued());
    assert_eq!(c.reply(), Array(Some(vec![Int(1), Int(2)])));
}
