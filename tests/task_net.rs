//! Async sockets (`evloop::task::net`): echo, 1,000 concurrent
//! connections, errors, EOF, UDP, Unix, and registrations freed on drop.

mod support;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use evloop::task::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use evloop::task::{sleep, timeout};
use evloop::{block_on, spawn, EventLoop, HandleKind};

/// Echoes what `conn` (a TCP or Unix stream) reads until the peer shuts
/// down its writing half, through a buffer of `$size` bytes.
macro_rules! echo_until_eof {
    ($conn:ident, $size:expr) => {{
        let mut buf = [0; $size];
        loop {
            let n = $conn.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            $conn.write_all(&buf[..n]).await.unwrap();
        }
    }};
}

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A fresh socket path in the temp dir.
fn sock_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("evloop-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// Raises the soft fd limit to at least `n` (up to the hard limit).
fn raise_nofile(n: u64) {
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        if (rl.rlim_cur as u64) < n {
            rl.rlim_cur = std::cmp::min(n, rl.rlim_max as u64) as libc::rlim_t;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
        }
    }
}

fn io_handles(el: &EventLoop) -> usize {
    el.active_handles()
        .iter()
        .filter(|h| h.kind == HandleKind::Io)
        .count()
}

#[test]
fn tcp_echo_round_trip() {
    support::init_log();
    let out = block_on(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            let (mut conn, peer) = listener.accept().await.unwrap();
            assert_eq!(conn.peer_addr().unwrap(), peer);
            echo_until_eof!(conn, 64);
        });
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        assert_eq!(client.peer_addr().unwrap(), addr);
        assert_eq!(client.local_addr().unwrap().ip(), addr.ip());
        client.write_all(b"hello, loop").await.unwrap();
        let mut back = [0; 11];
        client.read_exact(&mut back).await.unwrap();
        client.shutdown().await.unwrap();
        assert_eq!(client.read(&mut back).await.unwrap(), 0);
        server.await.unwrap();
        back
    })
    .unwrap();
    assert_eq!(&out, b"hello, loop");
}

#[test]
fn thousand_concurrent_echo_connections_on_one_loop() {
    const CONNS: usize = 1000;
    const LEN: usize = 4096;
    support::init_log();
    raise_nofile(4 * CONNS as u64 + 256);
    let verified = block_on(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(async move {
            for _ in 0..CONNS {
                let (mut conn, _) = listener.accept().await.unwrap();
                spawn(async move {
                    echo_until_eof!(conn, 1024);
                });
            }
        });
        let clients: Vec<_> = (0..CONNS)
            .map(|i| {
                spawn(async move {
                    let payload: Vec<u8> = (0..LEN).map(|j| (i * 31 + j) as u8).collect();
                    let mut conn = TcpStream::connect(addr).await.unwrap();
                    conn.write_all(&payload).await.unwrap();
                    conn.shutdown().await.unwrap();
                    let mut back = vec![0; LEN];
                    conn.read_exact(&mut back).await.unwrap();
                    assert_eq!(conn.read(&mut [0; 1]).await.unwrap(), 0);
                    assert!(back == payload, "connection {i}: echo differs");
                    back.len()
                })
            })
            .collect();
        let mut total = 0;
        for c in clients {
            total += c.await.unwrap();
        }
        server.await.unwrap();
        total
    })
    .unwrap();
    assert_eq!(verified, CONNS * LEN);
}

#[test]
fn connect_refused_is_connection_refused() {
    support::init_log();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let err = block_on(async move { TcpStream::connect(addr).await.unwrap_err() }).unwrap();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // The failed stream was deregistered.
    assert_eq!(io_handles(&el), 0);
}

#[test]
fn read_returns_zero_at_eof_after_peer_shutdown() {
    support::init_log();
    block_on(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"bye").await.unwrap();
            c.shutdown().await.unwrap();
            // Keep the socket open (only the write half is shut) until the
            // server has seen EOF and answered.
            let mut buf = [0; 2];
            c.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"ok");
        });
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = [0; 16];
        let mut got = Vec::new();
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"bye");
        // EOF stays EOF.
        assert_eq!(conn.read(&mut buf).await.unwrap(), 0);
        conn.write_all(b"ok").await.unwrap();
        client.await.unwrap();
    })
    .unwrap();
}

#[test]
fn read_exact_reports_unexpected_eof() {
    support::init_log();
    block_on(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"ab").await.unwrap();
        });
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = [0; 4];
        let e = conn.read_exact(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        assert_eq!(&buf[..2], b"ab");
    })
    .unwrap();
}

#[test]
fn udp_send_to_and_recv_from() {
    support::init_log();
    block_on(async {
        let a = UdpSocket::bind(localhost()).await.unwrap();
        let b = UdpSocket::bind(localhost()).await.unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let echo = spawn(async move {
            let mut buf = [0; 64];
            for _ in 0..3 {
                let (n, from) = b.recv_from(&mut buf).await.unwrap();
                assert_eq!(from, aa);
                b.send_to(&buf[..n], from).await.unwrap();
            }
        });
        let mut buf = [0; 64];
        for msg in [&b"one"[..], b"two", b"three"] {
            assert_eq!(a.send_to(msg, ba).await.unwrap(), msg.len());
            let (n, from) = a.recv_from(&mut buf).await.unwrap();
            assert_eq!(from, ba);
            assert_eq!(&buf[..n], msg);
        }
        echo.await.unwrap();
    })
    .unwrap();
}

#[test]
fn unix_echo() {
    support::init_log();
    let path = sock_path("echo");
    let p = path.clone();
    block_on(async move {
        let listener = UnixListener::bind(&p).unwrap();
        assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(&*p));
        let server = spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            echo_until_eof!(conn, 64);
            conn.shutdown().await.unwrap();
        });
        let mut c = UnixStream::connect(&p).await.unwrap();
        assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(&*p));
        // 10 kB fits the socket buffers both ways, so writing it all
        // before reading cannot deadlock.
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        c.write_all(&payload).await.unwrap();
        c.shutdown().await.unwrap();
        let mut back = Vec::new();
        let mut buf = [0; 4096];
        loop {
            match c.read(&mut buf).await.unwrap() {
                0 => break,
                n => back.extend_from_slice(&buf[..n]),
            }
        }
        assert!(back == payload);
        server.await.unwrap();
    })
    .unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_unix_paths_are_errors_not_panics() {
    support::init_log();
    block_on(async {
        let nul = "/tmp/evloop\0bad.sock";
        let long = format!("/tmp/{}", "x".repeat(200));
        for bad in [nul, &long] {
            let e = UnixListener::bind(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            let e = UnixStream::connect(bad).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        }
        let missing = sock_path("missing");
        assert!(UnixStream::connect(&missing).await.is_err());
        // Bind twice: the second is AddrInUse.
        let p = sock_path("twice");
        let first = UnixListener::bind(&p).unwrap();
        let e = UnixListener::bind(&p).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddrInUse);
        drop(first);
        std::fs::remove_file(&p).unwrap();
    })
    .unwrap();
}

#[test]
fn dropping_a_socket_frees_its_registration() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    assert_eq!(io_handles(&el), 0);
    // Outside a task: bound synchronously, then handed over.
    let listener =
        TcpListener::from_std(std::net::TcpListener::bind(localhost()).unwrap()).unwrap();
    let udp = UdpSocket::from_std(std::net::UdpSocket::bind(localhost()).unwrap()).unwrap();
    assert_eq!(io_handles(&el), 2);
    assert!(format!("{el:?}").contains("sources: 2"));
    drop(udp);
    assert_eq!(io_handles(&el), 1);

    let addr = listener.local_addr().unwrap();
    let (listener, conns) = block_on(async move {
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (listener, (client, server))
    })
    .unwrap();
    assert_eq!(io_handles(&el), 3);

    // A read left pending (dropped by the timeout) leaves only its waker.
    let (listener, (mut client, server)) = block_on(async move {
        let mut conns = conns;
        let mut buf = [0; 8];
        let r = timeout(Duration::from_millis(5), conns.0.read(&mut buf)).await;
        assert!(r.is_err());
        let r = timeout(Duration::from_millis(5), listener.accept()).await;
        assert!(r.is_err());
        (listener, conns)
    })
    .unwrap();
    assert_eq!(io_handles(&el), 3);
    drop(server);
    assert_eq!(io_handles(&el), 2);
    // The stream still works after its pending read was dropped: it sees
    // the peer's close as EOF.
    let n = block_on(async move { client.read(&mut [0; 8]).await.unwrap() }).unwrap();
    assert_eq!(n, 0);
    drop(listener);
    assert_eq!(io_handles(&el), 0);
    assert!(format!("{el:?}").contains("sources: 0"));
}

#[test]
fn loop_ends_once_sockets_are_dropped() {
    support::run_strict(|| {
        spawn(async {
            let listener = TcpListener::bind(localhost()).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let c = spawn(async move { TcpStream::connect(addr).await.is_ok() });
            let _conn = listener.accept().await.unwrap();
            sleep(Duration::from_millis(1)).await;
            assert!(c.await.unwrap());
            // Everything is dropped here: nothing keeps the loop alive.
        });
    })
    .unwrap();
}

/// Counts this thread's heap allocations, to check the hot path.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static ALLOCS: Cell<usize> = const { Cell::new(0) };
    }

    pub struct Counting;

    // SAFETY: forwards to the system allocator; the counter is a plain
    // thread-local `Cell` with no destructor, which does not allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            ALLOCS.with(|c| c.set(c.get() + 1));
            System.alloc(l)
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            System.dealloc(p, l)
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
            ALLOCS.with(|c| c.set(c.get() + 1));
            System.realloc(p, l, n)
        }
    }

    pub fn allocs() -> usize {
        ALLOCS.with(|c| c.get())
    }
}

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// Reads and writes that complete allocate nothing, and neither does a
/// round trip whose read waits (the wake and the poll allocate nothing).
#[test]
fn reads_and_writes_do_not_allocate() {
    support::init_log();
    let (writes, reads, per_round) = block_on(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The echo side counts what it has sent back, so the read phase
        // below can wait for all of it however busy the machine is.
        let echoed = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let e = echoed.clone();
        spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0; 64];
            loop {
                let n = conn.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                conn.write_all(&buf[..n]).await.unwrap();
                e.set(e.get() + n);
            }
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        for i in 0..100 {
            round(&mut c, i).await; // warm up queues and buffers
        }
        // And the queues a task uses when it yields after its budget
        // (writes that complete at once use it up every 128).
        for i in 0..300u32 {
            c.write_all(&i.to_le_bytes()).await.unwrap();
        }
        while echoed.get() < 4 * 100 + 4 * 300 {
            sleep(Duration::from_millis(5)).await;
        }
        let mut back = vec![0; 4 * 300];
        c.read_exact(&mut back).await.unwrap();

        // 1,000 writes that complete at once (4 kB fits the buffers).
        let before = counting::allocs();
        for i in 0..1000u32 {
            c.write_all(&i.to_le_bytes()).await.unwrap();
        }
        let writes = counting::allocs() - before;

        // Let the echo arrive (on loopback, echoed bytes are in our receive
        // queue once the echo's write returns), then 1,000 reads of data
        // already there. (A fixed sleep was not enough on a loaded machine.)
        while echoed.get() < 4 * 100 + 4 * 300 + 4 * 1000 {
            sleep(Duration::from_millis(5)).await;
        }
        // One more poll phase, so the socket's readiness event is seen.
        sleep(Duration::from_millis(20)).await;
        let before = counting::allocs();
        for i in 0..1000u32 {
            let mut back = [0; 4];
            c.read_exact(&mut back).await.unwrap();
            assert_eq!(back, i.to_le_bytes());
        }
        let reads = counting::allocs() - before;

        // Round trips whose read waits for the echo.
        let before = counting::allocs();
        for i in 0..1000 {
            round(&mut c, i).await;
        }
        let per_round = (counting::allocs() - before) as f64 / 1000.0;
        (writes, reads, per_round)
    })
    .unwrap();
    println!("allocations: {writes} in 1000 writes, {reads} in 1000 reads, {per_round} per waiting round trip");
    assert_eq!(writes, 0);
    assert_eq!(reads, 0);
    // A wake allocates nothing either (the poll microtask captures
    // nothing: see task::executor).
    assert_eq!(per_round, 0.0, "{per_round} allocations per round trip");
}

/// One echo round trip on `c`. The read is pending each time: the echo
/// comes back through the reactor, a wake and the other task.
async fn round(c: &mut TcpStream, i: u32) {
    let msg = i.to_le_bytes();
    c.write_all(&msg).await.unwrap();
    let mut back = [0; 4];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(back, msg);
}
