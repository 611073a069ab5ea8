//! Sockets and [`AbortSignal`]s (issue 18): connect in the three styles
//! (callbacks, promises, async/await), aborted before it starts, while in
//! flight and after it completed; the promise read and write; accept,
//! read and write raced with a signal in async code, aborted from a timer,
//! a microtask, another task and another thread; nothing left behind (fds,
//! registrations, wakers, pool jobs); and the race-with-timeout case.
//!
//! Loopback only. A connect "in flight" for long is one to a listener
//! whose backlog is full (the kernel drops the SYN and retries after a
//! second), or a name lookup held in the pool's queue behind blocking
//! jobs. Every test runs alone ([`support::watchdog::Test`]: the fd census
//! is process-wide) under a watchdog.

mod support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use evloop::abort::{is_abort_error, AbortController, AbortSignal};
use evloop::net::{self, promises as pnet, Stream, TcpListener};
use evloop::task::net as anet;
use evloop::{EventLoop, HandleKind};
use support::fds::FdCensus;
use support::watchdog::Test;

const LIMIT: Duration = Duration::from_secs(30);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The loop's open sockets (registered I/O sources that keep it alive).
fn sockets(el: &EventLoop) -> usize {
    el.active_handles()
        .iter()
        .filter(|h| h.kind == HandleKind::Io && h.refed)
        .count()
}

/// Runs `main` on a fresh loop to its end; then nothing may be left on it.
fn run_clean(main: impl FnOnce()) -> EventLoop {
    let el = EventLoop::new().unwrap();
    el.run_main(main).unwrap();
    el.run().unwrap();
    assert!(!el.is_alive(), "{:?}", el.active_handles());
    assert!(el.active_handles().is_empty(), "{:?}", el.active_handles());
    el
}

/// A listener whose accept queue is full and which never accepts: a
/// connect to it stays in flight (its SYN is dropped and retried after a
/// second). Keep it alive while it is used.
struct Jammed {
    _listener: socket2::Socket,
    _fillers: Vec<std::net::TcpStream>,
    addr: SocketAddr,
}

fn jammed_listener() -> Jammed {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    l.bind(&any.into()).unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, ms(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => {
                return Jammed {
                    _listener: l,
                    _fillers: fillers,
                    addr,
                }
            }
        }
    }
    panic!("the backlog of a listen(0) socket never filled");
}

fn assert_aborted(r: &io::Result<Stream>) {
    match r {
        Err(e) => assert!(is_abort_error(e), "not an abort: {e}"),
        Ok(_) => panic!("connected despite the abort"),
    }
}

// ---------------------------------------------------------------------------
// Callbacks: net::connect_with_signal
// ---------------------------------------------------------------------------

#[test]
fn callback_connect_already_aborted_starts_nothing() {
    let _t = Test::start("abort_net cb already", LIMIT);
    let fds = FdCensus::new();
    let got = Rc::new(Cell::new(false));
    let g = got.clone();
    run_clean(move || {
        let server = TcpListener::bind("127.0.0.1:0", |_| panic!("no connection")).unwrap();
        let addr = server.local_addr().to_string();
        let signal = AbortSignal::abort(None);
        let before = support::fds::fd_count();
        let inside = Rc::new(Cell::new(true));
        let i = inside.clone();
        net::connect_with_signal(&addr, &signal, move |r| {
            assert!(!i.get(), "called back inside connect_with_signal");
            assert_aborted(&r);
            g.set(true);
            server.close();
        });
        inside.set(false);
        assert_eq!(support::fds::fd_count(), before, "no socket was made");
        // Only the listener: no socket, no lookup.
        assert_eq!(evloop::active_handles().len(), 1);
    });
    assert!(got.get());
    fds.assert_back("after an aborted connect");
}

/// Aborted right after it started, before the loop polled: the socket is
/// closed at once (nothing keeps the loop alive), the callback gets the
/// AbortError later.
#[test]
fn callback_connect_aborted_synchronously_after_start() {
    let _t = Test::start("abort_net cb sync", LIMIT);
    let fds = FdCensus::new();
    let got = Rc::new(Cell::new(false));
    let g = got.clone();
    run_clean(move || {
        let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
        let addr = server.local_addr().to_string();
        let c = AbortController::new();
        let called = Rc::new(Cell::new(false));
        let cl = called.clone();
        net::connect_with_signal(&addr, &c.signal(), move |r| {
            assert_aborted(&r);
            cl.set(true);
            g.set(true);
        });
        let lp = EventLoop::current().unwrap();
        assert_eq!(sockets(&lp), 2, "the listener and the attempt");
        c.abort(None);
        assert!(!called.get(), "never inside abort()");
        assert_eq!(sockets(&lp), 1, "the attempt was closed at once");
        server.close();
    });
    assert!(got.get());
    fds.assert_back("after an aborted connect");
}

/// In flight for real (a full backlog): aborted from a timer.
#[test]
fn callback_connect_in_flight_aborted_from_a_timer() {
    let _t = Test::start("abort_net cb in flight", LIMIT);
    let jam = jammed_listener();
    let fds = FdCensus::new();
    let started = Instant::now();
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    let addr = jam.addr.to_string();
    run_clean(move || {
        let c = AbortController::new();
        net::connect_with_signal(&addr, &c.signal(), move |r| {
            assert_aborted(&r);
            g.set(Some(started.elapsed()));
        });
        evloop::set_timeout(ms(30), move || c.abort(None));
    });
    let took = got.get().expect("called back");
    assert!(took < ms(900), "the abort ended it at once: {took:?}");
    fds.assert_back("after an aborted connect");
}

/// A name lookup held in the pool's queue (every pool thread busy) is
/// cancelled by the abort: it never runs, nothing connects, and only the
/// blocking jobs remain in flight.
#[test]
fn callback_connect_by_name_aborted_while_the_lookup_waits() {
    let _t = Test::start("abort_net cb lookup", LIMIT);
    let fds = FdCensus::new();
    let accepted = Rc::new(Cell::new(0));
    let got = Rc::new(Cell::new(false));
    let (a, g) = (accepted.clone(), got.clone());
    run_clean(move || {
        // Occupy every pool thread until `gates` are dropped.
        let mut gates = Vec::new();
        let lp = EventLoop::current().unwrap();
        loop {
            let (tx, rx) = mpsc::channel::<()>();
            gates.push(tx);
            evloop::queue_work(move || rx.recv_timeout(Duration::from_secs(10)), |_| {});
            if gates.len() >= lp.threadpool_threads() {
                break;
            }
        }
        let blockers = gates.len();
        let server = TcpListener::bind("127.0.0.1:0", move |_| a.set(a.get() + 1)).unwrap();
        let addr = format!("localhost:{}", server.local_addr().port());
        let c = AbortController::new();
        let requests = |lp: &EventLoop| {
            lp.active_handles()
                .iter()
                .filter(|h| h.kind == HandleKind::Request)
                .count()
        };
        net::connect_with_signal(&addr, &c.signal(), move |r| {
            assert_aborted(&r);
            g.set(true);
            // The lookup's job was cancelled: once its ECANCELED is
            // delivered, only the blockers are in flight.
            evloop::set_timeout(ms(5), move || {
                let lp = EventLoop::current().unwrap();
                assert_eq!(requests(&lp), blockers, "{:?}", lp.active_handles());
                drop(gates);
                server.close();
            });
        });
        assert_eq!(requests(&lp), blockers + 1, "the lookup waits in the queue");
        evloop::set_timeout(ms(10), move || c.abort(None));
    });
    assert!(got.get());
    assert_eq!(accepted.get(), 0, "nothing connected after the abort");
    fds.assert_back("after an aborted lookup");
}

/// Connected before the abort: the callback gets the stream; a later abort
/// destroys it with the AbortError (Node's `net.connect({ signal })`):
/// `on_error`, then `on_close(true)`, and the peer sees the end.
#[test]
fn callback_connect_completed_then_abort_destroys_the_stream_as_node() {
    let _t = Test::start("abort_net cb after", LIMIT);
    let fds = FdCensus::new();
    let log = support::Log::new();
    let l = log.clone();
    run_clean(move || {
        let peer_log = l.clone();
        let server = TcpListener::bind("127.0.0.1:0", move |conn| {
            let conn = conn.unwrap();
            let pl = peer_log.clone();
            conn.on_end(move || pl.push("peer: end"));
        })
        .unwrap();
        let addr = server.local_addr().to_string();
        let c = AbortController::new();
        let signal = c.signal();
        net::connect_with_signal(&addr, &signal, move |r| {
            let stream = r.unwrap();
            l.push("connected");
            let (l1, l2) = (l.clone(), l.clone());
            stream.on_error(move |e| {
                assert!(is_abort_error(&e));
                l1.push("error: abort")
            });
            stream.on_close(move |had_error| {
                l2.push(format!("close {had_error}"));
                evloop::set_timeout(ms(20), move || server.close());
            });
            evloop::set_timeout(ms(5), move || c.abort(None));
        });
        drop(signal);
    });
    let log = log.take();
    // The fd is closed at once: the peer may see the end before the close
    // phase reports the error and the close here.
    let mine: Vec<_> = log.iter().filter(|e| !e.starts_with("peer")).collect();
    assert_eq!(mine, ["connected", "error: abort", "close true"], "{log:?}");
    assert!(log.contains(&"peer: end".to_string()), "{log:?}");
    fds.assert_back("after the stream was destroyed");
}

/// The same without an error listener: an abort is not an uncaught error
/// (Node does not crash either).
#[test]
fn callback_abort_after_connect_without_error_listener_is_not_uncaught() {
    let _t = Test::start("abort_net cb no listener", LIMIT);
    let closed = Rc::new(Cell::new(false));
    let cl = closed.clone();
    run_clean(move || {
        let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
        let addr = server.local_addr().to_string();
        let c = AbortController::new();
        net::connect_with_signal(&addr, &c.signal(), move |r| {
            r.unwrap().on_close(move |e| {
                assert!(e);
                cl.set(true);
                server.close();
            });
            c.abort(None);
        });
    });
    assert!(closed.get());
}

/// A stream that closed before the abort: aborting does nothing.
#[test]
fn callback_abort_after_the_stream_closed_does_nothing() {
    let _t = Test::start("abort_net cb closed", LIMIT);
    let log = support::Log::new();
    let l = log.clone();
    run_clean(move || {
        let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
        let addr = server.local_addr().to_string();
        let c = AbortController::new();
        net::connect_with_signal(&addr, &c.signal(), move |r| {
            let stream = r.unwrap();
            let l1 = l.clone();
            stream.on_error(|_| panic!("no error"));
            stream.on_close(move |e| {
                l1.push(format!("close {e}"));
                c.abort(None);
                server.close();
            });
            stream.destroy();
        });
    });
    assert_eq!(log.take(), ["close false"]);
}

#[test]
fn callback_connect_unix_aborted() {
    let _t = Test::start("abort_net cb unix", LIMIT);
    let fds = FdCensus::new();
    let dir = std::env::temp_dir().join(format!("evloop-abort-net-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("s.sock");
    let _ = std::fs::remove_file(&path);
    let n = Rc::new(Cell::new(0));
    let k = n.clone();
    let p = path.clone();
    run_clean(move || {
        let server = net::UnixListener::bind(&p, |_| {}).unwrap();
        // Already aborted.
        let k1 = k.clone();
        net::connect_unix_with_signal(&p, &AbortSignal::abort(None), move |r| {
            assert_aborted(&r);
            k1.set(k1.get() + 1);
        });
        // Aborted in flight.
        let c = AbortController::new();
        net::connect_unix_with_signal(&p, &c.signal(), move |r| {
            assert_aborted(&r);
            k.set(k.get() + 1);
            server.close();
        });
        c.abort(None);
    });
    assert_eq!(n.get(), 2);
    let _ = std::fs::remove_dir_all(&dir);
    fds.assert_back("after aborted unix connects");
}

// ---------------------------------------------------------------------------
// Promises: net::promises::*_with_signal
// ---------------------------------------------------------------------------

#[test]
fn promise_connect_already_aborted_and_aborted_in_flight_and_from_a_microtask() {
    let _t = Test::start("abort_net p connect", LIMIT);
    let jam = jammed_listener();
    let fds = FdCensus::new();
    let n = Rc::new(Cell::new(0));
    let k = n.clone();
    let jammed = jam.addr;
    run_clean(move || {
        let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
        let addr = server.local_addr();
        let count = move |k: &Rc<Cell<i32>>| {
            let k = k.clone();
            move |e: evloop::promise::Rejection| {
                assert!(e.is_aborted(), "{e}");
                k.set(k.get() + 1);
                None::<Stream>
            }
        };
        let ok = |_: Stream| -> Option<Stream> { panic!("connected despite the abort") };
        // Before it starts.
        pnet::connect_with_signal(addr.to_string(), &AbortSignal::abort(None))
            .then(ok)
            .catch(count(&k));
        // Synchronously after it started.
        let c = AbortController::new();
        pnet::connect_with_signal(addr, &c.signal())
            .then(ok)
            .catch(count(&k));
        c.abort(None);
        // In flight, from a microtask.
        let c = AbortController::new();
        pnet::connect_with_signal(jammed, &c.signal())
            .then(ok)
            .catch(count(&k));
        evloop::set_timeout(ms(20), move || {
            evloop::queue_microtask(move || c.abort(None));
        });
        // From a timeout signal.
        pnet::connect_with_signal(jammed, &AbortSignal::timeout(ms(30)))
            .then(ok)
            .catch(count(&k))
            .finally(move || server.close());
    });
    assert_eq!(n.get(), 4);
    drop(jam);
    fds.assert_back("after aborted promise connects");
}

/// Connected first: the promise resolves; aborting later leaves the
/// resolved promise alone (the stream itself is destroyed, as in Node).
#[test]
fn promise_connect_completed_then_abort() {
    let _t = Test::start("abort_net p after", LIMIT);
    let fds = FdCensus::new();
    let log = support::Log::new();
    let l = log.clone();
    run_clean(move || {
        let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
        let addr = server.local_addr().to_string();
        let c = AbortController::new();
        let signal = c.signal();
        let l2 = l.clone();
        pnet::connect_with_signal(&addr, &signal)
            .then(move |stream| {
                l.push("resolved");
                let l = l.clone();
                stream.on_close(move |e| {
                    l.push(format!("close {e}"));
                    server.close();
                });
                c.abort(None);
            })
            .catch(move |e| l2.push(format!("rejected: {e}")));
    });
    assert_eq!(log.take(), ["resolved", "close true"]);
    fds.assert_back("after the stream was destroyed");
}

/// A read aborted from a timer rejects; the stream stays usable and the
/// next read gets the bytes that came later: nothing lost.
#[test]
fn promise_read_aborted_then_read_again_loses_nothing() {
    let _t = Test::start("abort_net p read", LIMIT);
    let fds = FdCensus::new();
    let log = support::Log::new();
    let l = log.clone();
    run_clean(move || {
        let peer = Rc::new(RefCell::new(None::<Stream>));
        let p = peer.clone();
        let server = TcpListener::bind("127.0.0.1:0", move |conn| {
            *p.borrow_mut() = Some(conn.unwrap());
        })
        .unwrap();
        let addr = server.local_addr().to_string();
        pnet::connect(&addr)
            .and_then(move |stream| {
                let signal = AbortSignal::timeout(ms(20));
                let s = stream.clone();
                let l = l.clone();
                pnet::read_with_signal(&stream, &signal)
                    .then(|_| panic!("nothing was sent yet"))
                    .catch(move |e| {
                        assert!(e.is_aborted());
                        l.push("read aborted");
                        // The peer sends now; the next read gets it all.
                        let peer = peer.borrow_mut().take().unwrap();
                        peer.write(b"hello");
                        peer.end();
                        pnet::read(&s).then(move |chunk| {
                            l.push(format!("read {:?}", String::from_utf8(chunk.unwrap())));
                            s.destroy();
                            server.close();
                        })
                    })
            })
            .catch(|e| panic!("{e}"));
    });
    assert_eq!(log.take(), ["read aborted", "read Ok(\"hello\")"]);
    fds.assert_back("after the read");
}

/// A write the peer does not take (its buffers full) is aborted: the
/// promise rejects and the stream is destroyed (its bytes cannot be taken
/// back). A write the kernel took before the abort resolves as usual.
#[test]
fn promise_write_aborted_with_bytes_queued_destroys_the_stream() {
    let _t = Test::start("abort_net p write", LIMIT);
    let fds = FdCensus::new();
    let log = support::Log::new();
    let l = log.clone();
    run_clean(move || {
        let keep = Rc::new(RefCell::new(None::<Stream>));
        let k = keep.clone();
        let server = TcpListener::bind("127.0.0.1:0", move |conn| {
            let conn = conn.unwrap();
            conn.pause(); // never reads
            *k.borrow_mut() = Some(conn);
        })
        .unwrap();
        let addr = server.local_addr().to_string();
        pnet::connect(&addr)
            .and_then(move |stream| {
                let c = AbortController::new();
                let (l1, l2) = (l.clone(), l.clone());
                // A small write the kernel takes at once: done before the abort.
                let small = pnet::write_with_signal(&stream, b"hi", &c.signal())
                    .then(move |()| l1.push("small written"));
                let big = vec![7u8; 64 << 20];
                let s = stream.clone();
                stream.on_close(move |e| l2.push(format!("close {e}")));
                let l3 = l.clone();
                let w = pnet::write_with_signal(&stream, &big, &c.signal()).then_or_else(
                    |()| panic!("64 MiB cannot fit in the socket buffers"),
                    move |e| {
                        assert!(e.is_aborted(), "{e}");
                        l3.push(format!("big aborted, closed {}", s.is_closed()));
                        Ok::<(), evloop::promise::Rejection>(())
                    },
                );
                small.and_then(move |()| {
                    evloop::set_timeout(ms(10), move || c.abort(None));
                    w.finally(move || {
                        if let Some(conn) = keep.borrow_mut().take() {
                            conn.destroy();
                        }
                        server.close();
                    })
                })
            })
            .catch(|e| panic!("{e}"));
    });
    let log = log.take();
    assert_eq!(
        log,
        ["small written", "big aborted, closed true", "close true"],
        "{log:?}"
    );
    fds.assert_back("after the aborted write");
}

// ---------------------------------------------------------------------------
// async/await: connect_with_signal; accept, read, write raced
// ---------------------------------------------------------------------------

#[test]
fn async_connect_before_in_flight_and_after() {
    let _t = Test::start("abort_net a connect", LIMIT);
    let jam = jammed_listener();
    let fds = FdCensus::new();
    let jammed = jam.addr;
    let el = EventLoop::new().unwrap();
    let started = Instant::now();
    let r = {
        let _g = el.enter();
        evloop::block_on(async move {
            let listener = anet::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            // Already aborted: nothing starts.
            let before = support::fds::fd_count();
            let r = anet::TcpStream::connect_with_signal(addr, &AbortSignal::abort(None)).await;
            assert!(is_abort_error(&r.unwrap_err()));
            assert_eq!(support::fds::fd_count(), before);
            // In flight, aborted from another task.
            let c = AbortController::new();
            let signal = c.signal();
            let aborter = evloop::spawn(async move {
                evloop::task::sleep(ms(20)).await;
                c.abort(None);
            });
            let r = anet::TcpStream::connect_with_signal(jammed, &signal).await;
            assert!(is_abort_error(&r.unwrap_err()));
            aborter.await.unwrap();
            let lp = EventLoop::current().unwrap();
            assert_eq!(
                sockets(&lp),
                1,
                "only the listener: {:?}",
                lp.active_handles()
            );
            // Completed first: aborting later does nothing to the stream.
            let c = AbortController::new();
            let mut client = anet::TcpStream::connect_with_signal(addr, &c.signal())
                .await
                .unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            c.abort(None);
            client.write_all(b"still").await.unwrap();
            let mut buf = [0; 5];
            conn.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"still");
        })
    };
    r.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!el.is_alive(), "{:?}", el.active_handles());
    drop(el);
    drop(jam);
    fds.assert_back("after the async connects");
}

/// Counts the clones of a waker alive: where a cancelled operation's
/// waker is.
struct CountingWaker;

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {}
}

/// A pending read, accept or write dropped (cancelled) leaves its waker in
/// the socket (as tokio does) until the next operation replaces it or the
/// socket is dropped: nothing of it outlives the socket.
#[test]
fn async_cancelled_operations_leave_wakers_only_in_their_socket() {
    let _t = Test::start("abort_net a wakers", LIMIT);
    evloop::block_on(async {
        let listener = anet::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let w = Arc::new(CountingWaker);
        let waker = Waker::from(w.clone());
        let mut cx = Context::from_waker(&waker);
        {
            let accept = pin!(listener.accept());
            assert!(accept.poll(&mut cx).is_pending());
        }
        assert_eq!(Arc::strong_count(&w), 3, "the listener keeps it");
        let mut client = anet::TcpStream::connect(addr).await.unwrap();
        // The next accept replaces it.
        let (_conn, _) = listener.accept().await.unwrap();
        assert_eq!(Arc::strong_count(&w), 2, "replaced by the next accept");
        let mut buf = [0; 8];
        {
            let read = pin!(client.read(&mut buf));
            assert!(read.poll(&mut cx).is_pending());
        }
        assert_eq!(Arc::strong_count(&w), 3, "the stream keeps it");
        drop(client);
        assert_eq!(Arc::strong_count(&w), 2, "released with the stream");
        drop(listener);
        assert_eq!(Arc::strong_count(&w), 2);
    })
    .unwrap();
}

/// accept raced with a signal, aborted from a timer while waiting; then
/// the next accept gets the connection that comes later.
#[test]
fn async_accept_aborted_from_a_timer_then_accepts() {
    let _t = Test::start("abort_net a accept", LIMIT);
    let fds = FdCensus::new();
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        evloop::block_on(async {
            let listener = anet::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let c = AbortController::new();
            let signal = c.signal();
            evloop::set_timeout(ms(10), move || c.abort(None));
            let r = signal.race(listener.accept()).await;
            assert!(r.unwrap_err().reason().is_aborted());
            let client = evloop::spawn(async move {
                let s = anet::TcpStream::connect(addr).await.unwrap();
                s.local_addr().unwrap()
            });
            let (_conn, peer) = listener.accept().await.unwrap();
            assert_eq!(client.await.unwrap(), peer);
        })
        .unwrap();
    }
    assert!(!el.is_alive(), "{:?}", el.active_handles());
    drop(el);
    fds.assert_back("after the accepts");
}

/// read raced with a signal, aborted from a microtask, from another task
/// and from another thread while waiting; each time the stream stays
/// usable and the next read gets every byte.
#[test]
fn async_read_aborted_from_a_microtask_a_task_and_a_thread_loses_nothing() {
    let _t = Test::start("abort_net a read", LIMIT);
    let fds = FdCensus::new();
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        evloop::block_on(async {
            let listener = anet::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = anet::TcpStream::connect(addr).await.unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0; 64];

            // From a microtask queued by a timer.
            let c = AbortController::new();
            let signal = c.signal();
            evloop::set_timeout(ms(5), move || {
                evloop::queue_microtask(move || c.abort(None));
            });
            assert!(signal.race(client.read(&mut buf)).await.is_err());
            conn.write_all(b"one").await.unwrap();
            let n = client.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"one");

            // From another task.
            let c = AbortController::new();
            let signal = c.signal();
            let aborter = evloop::spawn(async move {
                evloop::task::sleep(ms(5)).await;
                c.abort(None);
            });
            assert!(signal.race(client.read(&mut buf)).await.is_err());
            aborter.await.unwrap();
            conn.write_all(b"two").await.unwrap();
            let n = client.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"two");

            // From another thread.
            let c = AbortController::new();
            let signal = c.signal();
            let sender = c.sender();
            let thread = std::thread::spawn(move || {
                std::thread::sleep(ms(10));
                sender.abort(Some("from a thread".into())).unwrap();
            });
            let err = signal.race(client.read(&mut buf)).await.unwrap_err();
            assert_eq!(err.reason().to_string(), "from a thread");
            thread.join().unwrap();
            // Bytes that arrived while nobody read are kept for the next read.
            conn.write_all(b"three").await.unwrap();
            let c = AbortController::new();
            c.abort(None);
            assert!(c.signal().race(client.read(&mut buf)).await.is_err());
            let n = client.read(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], b"three");
            drop(c);
        })
        .unwrap();
    }
    assert!(!el.is_alive(), "{:?}", el.active_handles());
    drop(el);
    fds.assert_back("after the reads");
}

/// write raced with a signal: fill the socket until a write waits, abort
/// it; the peer then reads exactly the bytes the completed writes
/// reported (the cancelled write wrote nothing), and writing goes on.
#[test]
fn async_write_aborted_while_waiting_wrote_nothing() {
    let _t = Test::start("abort_net a write", LIMIT);
    let fds = FdCensus::new();
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        evloop::block_on(async {
            let listener = anet::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut client = anet::TcpStream::connect(addr).await.unwrap();
            let (mut conn, _) = listener.accept().await.unwrap();
            let chunk = vec![1u8; 64 << 10];
            let mut written = 0usize;
            let signal = AbortSignal::timeout(ms(50));
            let mut waited = false;
            for _ in 0..100_000 {
                match signal.race(client.write(&chunk)).await {
                    Ok(n) => written += n.unwrap(),
                    Err(_) => {
                        waited = true;
                        break;
                    }
                }
            }
            assert!(waited, "the socket never filled");
            // The peer reads everything now, while this writes the rest.
            let reader = evloop::spawn(async move {
                let mut total = 0usize;
                let mut last = Vec::new();
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    let n = conn.read(&mut buf).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    total += n;
                    last.extend_from_slice(&buf[..n]);
                    let keep = last.len().saturating_sub(3);
                    last.drain(..keep);
                }
                (total, last)
            });
            client.write_all(b"end").await.unwrap();
            client.shutdown().await.unwrap();
            let (total, last) = reader.await.unwrap();
            assert_eq!(total, written + 3, "the cancelled write wrote nothing");
            assert_eq!(last, b"end");
            drop(client);
        })
        .unwrap();
    }
    assert!(!el.is_alive(), "{:?}", el.active_handles());
    drop(el);
    fds.assert_back("after the writes");
}

// ---------------------------------------------------------------------------
// The race with a timeout: a 5 ms answer against AbortSignal::timeout(3 s)
// ---------------------------------------------------------------------------

/// A server on the loop that answers each request after 5 ms, then ends.
fn slow_server() -> TcpListener {
    TcpListener::bind("127.0.0.1:0", |conn| {
        let conn = conn.unwrap();
        let c = conn.clone();
        conn.on_data(move |_| {
            let c = c.clone();
            evloop::set_timeout(ms(5), move || {
                c.write(b"HTTP/1.0 200 OK\r\n\r\nhi");
                c.end();
            });
        });
    })
    .unwrap()
}

const GET: &[u8] = b"GET / HTTP/1.0\r\n\r\n";

#[test]
fn race_with_timeout_callbacks() {
    let _t = Test::start("abort_net race cb", LIMIT);
    let fds = FdCensus::new();
    let started = Instant::now();
    let body = Rc::new(RefCell::new(Vec::new()));
    let b = body.clone();
    run_clean(move || {
        let server = slow_server();
        let signal = AbortSignal::timeout(Duration::from_secs(3));
        net::connect_with_signal(server.local_addr().to_string(), &signal, move |r| {
            let stream = r.unwrap();
            stream.write(GET);
            stream.on_data(move |d| b.borrow_mut().extend_from_slice(d));
            stream.on_close(move |_| server.close());
        });
    });
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(body.borrow().ends_with(b"hi"));
    fds.assert_back("after the exchange");
}

/// Reads until the end, each read bound to `signal`.
fn read_to_end(
    stream: Stream,
    signal: AbortSignal,
    into: Rc<RefCell<Vec<u8>>>,
) -> evloop::promise::Promise<()> {
    pnet::read_with_signal(&stream, &signal).and_then(move |chunk| match chunk {
        Some(bytes) => {
            into.borrow_mut().extend(bytes);
            read_to_end(stream, signal, into)
        }
        None => evloop::promise::Promise::resolve(()),
    })
}

#[test]
fn race_with_timeout_promises() {
    let _t = Test::start("abort_net race p", LIMIT);
    let fds = FdCensus::new();
    let started = Instant::now();
    let body = Rc::new(RefCell::new(Vec::new()));
    let b = body.clone();
    run_clean(move || {
        let server = slow_server();
        let signal = AbortSignal::timeout(Duration::from_secs(3));
        let s2 = signal.clone();
        pnet::connect_with_signal(server.local_addr().to_string(), &signal)
            .and_then(move |stream| {
                let s3 = s2.clone();
                pnet::write_with_signal(&stream, GET, &s2)
                    .and_then(move |()| read_to_end(stream, s3, b))
            })
            .then(move |()| server.close())
            .catch(|e| panic!("{e}"));
    });
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(body.borrow().ends_with(b"hi"));
    fds.assert_back("after the exchange");
}

#[test]
fn race_with_timeout_async() {
    let _t = Test::start("abort_net race async", LIMIT);
    let fds = FdCensus::new();
    let started = Instant::now();
    let body = evloop::run_async(async {
        let server = slow_server();
        let addr = server.local_addr();
        let signal = AbortSignal::timeout(Duration::from_secs(3));
        let body = signal
            .race(async {
                let mut s = anet::TcpStream::connect_with_signal(addr, &signal).await?;
                s.write_all(GET).await?;
                let mut body = Vec::new();
                let mut buf = [0; 256];
                loop {
                    match s.read(&mut buf).await? {
                        0 => break,
                        n => body.extend_from_slice(&buf[..n]),
                    }
                }
                Ok::<_, io::Error>(body)
            })
            .await;
        server.close();
        body
    })
    .unwrap()
    .unwrap()
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(body.ends_with(b"hi"));
    fds.assert_back("after the exchange");
}

/// The losing side of the race: a server that never answers, a 30 ms
/// deadline. The connection is closed by the abort and the loop ends at
/// once, in each style.
#[test]
fn timeout_wins_and_releases_the_connection() {
    let _t = Test::start("abort_net timeout wins", LIMIT);
    let fds = FdCensus::new();
    let started = Instant::now();
    let errors = Rc::new(Cell::new(0));
    let e = errors.clone();
    run_clean(move || {
        // Reads (so that it sees its clients go) and never answers.
        let server = TcpListener::bind("127.0.0.1:0", |conn| {
            conn.unwrap().on_data(|_| {});
        })
        .unwrap();
        let addr = server.local_addr().to_string();
        let server = Rc::new(server);
        let done = {
            let server = server.clone();
            let left = Rc::new(Cell::new(3));
            move || {
                left.set(left.get() - 1);
                if left.get() == 0 {
                    server.close();
                }
            }
        };
        let done = Rc::new(done);
        // Callbacks.
        let signal = AbortSignal::timeout(ms(30));
        let (e1, d1) = (e.clone(), done.clone());
        net::connect_with_signal(&addr, &signal, move |r| {
            let stream = r.unwrap();
            stream.write(GET);
            let d = d1.clone();
            stream.on_data(|_| panic!("no answer"));
            stream.on_error(move |err| {
                assert!(is_abort_error(&err));
                e1.set(e1.get() + 1);
            });
            stream.on_close(move |_| d());
        });
        // Promises.
        let signal = AbortSignal::timeout(ms(30));
        let (e2, d2) = (e.clone(), done.clone());
        let s2 = signal.clone();
        pnet::connect_with_signal(&addr, &signal)
            .and_then(move |stream| pnet::read_with_signal(&stream, &s2))
            .then(|_| panic!("no answer"))
            .catch(move |err| {
                assert!(err.is_aborted());
                e2.set(e2.get() + 1);
                d2();
            });
        // async/await.
        let (e3, d3) = (e.clone(), done);
        let a = addr.clone();
        evloop::spawn(async move {
            let signal = AbortSignal::timeout(ms(30));
            let r = signal
                .race(async {
                    let mut s = anet::TcpStream::connect(a).await?;
                    let mut buf = [0; 8];
                    s.read(&mut buf).await
                })
                .await;
            assert!(r.is_err());
            e3.set(e3.get() + 1);
            d3();
        });
    });
    assert_eq!(errors.get(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    fds.assert_back("after the timeouts");
}

/// recv_from raced and aborted, then the next recv gets the datagram; a
/// Unix connect aborted before it starts and right after it started.
#[test]
fn async_udp_recv_and_unix_connect_aborted() {
    let _t = Test::start("abort_net a udp unix", LIMIT);
    let fds = FdCensus::new();
    let dir = std::env::temp_dir().join(format!("evloop-abort-anet-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("a.sock");
    let _ = std::fs::remove_file(&path);
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let p = path.clone();
        evloop::block_on(async move {
            let a = anet::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let b = anet::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut buf = [0; 16];
            let signal = AbortSignal::timeout(ms(10));
            assert!(signal.race(a.recv_from(&mut buf)).await.is_err());
            b.send_to(b"dgram", a.local_addr().unwrap()).await.unwrap();
            let (n, from) = a.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (&b"dgram"[..], b.local_addr().unwrap()));

            let listener = anet::UnixListener::bind(&p).unwrap();
            let r = anet::UnixStream::connect_with_signal(&p, &AbortSignal::abort(None)).await;
            assert!(is_abort_error(&r.unwrap_err()));
            let c = AbortController::new();
            let connect = anet::UnixStream::connect_with_signal(&p, &c.signal());
            c.abort(None);
            assert!(is_abort_error(&connect.await.unwrap_err()));
            // Not aborted: it connects.
            let c = AbortController::new();
            let _s = anet::UnixStream::connect_with_signal(&p, &c.signal())
                .await
                .unwrap();
            let _conn = listener.accept().await.unwrap();
        })
        .unwrap();
    }
    assert!(!el.is_alive(), "{:?}", el.active_handles());
    drop(el);
    let _ = std::fs::remove_dir_all(&dir);
    fds.assert_back("after udp and unix");
}
