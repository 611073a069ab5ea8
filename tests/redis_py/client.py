"""redis-py against mini_redis: `python3 tests/redis_py/client.py PORT [PROTOCOL]`.

Run by `redis_py_as_a_client` in tests/mini_redis.rs. Uses the client with
its default settings (`redis.Redis(port=PORT)`), so whatever protocol the
installed redis-py negotiates by default is the one tested (redis-py 8
sends `HELLO 3`). Prints "redis-py OK" and exits 0 if every check passes;
an assertion error (non-zero exit) names the first that does not. A second
argument, 2 or 3, makes the client ask for that protocol instead.
"""

import sys

import redis


def main(port: int, protocol) -> None:
    extra = {} if protocol is None else {"protocol": protocol}
    r = redis.Redis(
        host="127.0.0.1", port=port, socket_timeout=20, socket_connect_timeout=20, **extra
    )
    # Connecting runs the handshake: HELLO (redis-py >= 8 by default),
    # CLIENT SETINFO LIB-NAME / LIB-VER.
    assert r.ping() is True
    proto = r.connection_pool.connection_kwargs.get("protocol")
    conn = r.connection_pool.get_connection()
    try:
        meta = conn.handshake_metadata
    finally:
        r.connection_pool.release(conn)
    if meta is not None:
        assert meta.get(b"server") == b"redis", meta
        assert meta.get(b"proto") in (2, 3), meta
    r.flushdb()

    # set/get
    assert r.set("greeting", "hello") is True
    assert r.get("greeting") == b"hello"
    assert r.get("missing") is None
    assert r.set("greeting", "again", nx=True) is None
    assert r.mget("greeting", "missing") == [b"hello", None]

    # expire / ttl
    assert r.expire("greeting", 100) is True
    assert 99 <= r.ttl("greeting") <= 100
    assert r.persist("greeting") is True
    assert r.ttl("greeting") == -1
    assert r.expire("missing", 100) is False
    try:
        r.expire("greeting", -9223372036854775808)
        raise AssertionError("an overflowing EXPIRE was accepted")
    except redis.ResponseError as e:
        assert "invalid expire time" in str(e), e
    assert r.get("greeting") == b"hello"

    # type
    assert r.type("greeting") == b"string"
    assert r.type("missing") == b"none"

    # client name
    assert r.client_setname("py-test") is True
    assert r.client_getname() in ("py-test", b"py-test")  # redis-py decodes it
    assert isinstance(r.client_id(), int)

    # keys / scan_iter
    for i in range(300):
        r.set(f"user:{i}", i)
    assert sorted(r.keys("user:1?")) == sorted(f"user:1{d}".encode() for d in range(10))
    scanned = list(r.scan_iter(match="user:*", count=17))
    assert len(scanned) == 300 and len(set(scanned)) == 300, len(scanned)
    assert set(r.scan_iter()) == set(r.keys("*"))

    # pipeline with transaction (MULTI ... EXEC)
    with r.pipeline(transaction=True) as pipe:
        pipe.set("counter", 10)
        pipe.incr("counter")
        pipe.incrby("counter", 5)
        pipe.get("counter")
        assert pipe.execute() == [True, 11, 16, b"16"]
    # An error at run time comes back in its place (raise_on_error=False).
    with r.pipeline(transaction=True) as pipe:
        pipe.set("text", "x")
        pipe.incr("text")
        res = pipe.execute(raise_on_error=False)
        assert res[0] is True and isinstance(res[1], redis.ResponseError), res
    # A plain pipeline (no transaction).
    with r.pipeline(transaction=False) as pipe:
        for i in range(100):
            pipe.incr("piped")
        assert pipe.execute()[-1] == 100

    r.close()
    print(f"redis-py OK (redis-py {redis.__version__}, protocol {proto or 'default'}, handshake {meta and meta.get(b'proto')})")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
