//! TCP streams: echo at scale, half-close, resets, backpressure, errors,
//! fd hygiene. The tests take one lock: the fd census must not see the
//! sockets of a test running beside it.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use evloop::net::{connect, Stream, TcpListener};

type Pump = Box<dyn Fn()>;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    support::init_log();
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// An echo server whose connections echo with backpressure.
fn echo_server() -> TcpListener {
    TcpListener::bind("127.0.0.1:0", |conn| {
        let s = conn.unwrap();
        let w = s.clone();
        s.on_data(move |bytes| {
            if !w.write(bytes) {
                w.pause();
                let w2 = w.clone();
                w.on_drain(move || w2.resume());
            }
        });
    })
    .unwrap()
}

/// The bytes client `id` sends: its id then a pattern.
fn payload(id: u32, len: usize) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend((0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(id) as u8));
    v
}

fn echo_round_trips(clients: u32, len: usize) {
    let done = Rc::new(Cell::new(0u32));
    let d = done.clone();
    evloop::run(move || {
        let server = echo_server();
        let addr = server.local_addr();
        for id in 0..clients {
            let (done, server) = (d.clone(), server.clone());
            connect(addr, move |r| {
                let s = r.unwrap();
                let want = payload(id, len);
                let got = Rc::new(RefCell::new(Vec::with_capacity(want.len())));
                let g = got.clone();
                s.on_data(move |b| g.borrow_mut().extend_from_slice(b));
                s.on_end(move || {
                    assert!(*got.borrow() == want, "client {id}: echoed bytes differ");
                    done.set(done.get() + 1);
                    if done.get() == clients {
                        server.close();
                    }
                });
                s.write(&payload(id, len));
                s.end();
            });
        }
    })
    .unwrap();
    assert_eq!(done.get(), clients);
}

#[test]
fn echo_1000_concurrent_connections_every_byte_checked() {
    let _s = serial();
    let fds = support::fds::fd_count();
    echo_round_trips(1000, 16 * 1024);
    assert_eq!(support::fds::fd_count(), fds, "fds leaked");
}

#[test]
fn big_transfers_survive_backpressure() {
    let _s = serial();
    echo_round_trips(4, 8 << 20);
}

#[test]
fn half_close_in_both_directions() {
    let _s = serial();
    let log = support::Log::new();
    let l = log.clone();
    evloop::run(move || {
        // Server side keeps writing after the client ended (allowHalfOpen).
        let l2 = l.clone();
        let server = TcpListener::bind("127.0.0.1:0", move |conn| {
            let s = conn.unwrap();
            s.allow_half_open(true);
            let got = Rc::new(RefCell::new(Vec::new()));
            let (g, w, l3) = (got.clone(), s.clone(), l2.clone());
            s.on_data(move |b| g.borrow_mut().extend_from_slice(b));
            s.on_end(move || {
                l3.push(format!(
                    "server got end after {:?}",
                    String::from_utf8_lossy(&got.borrow())
                ));
                // Our side is still open: answer, then end.
                w.write(b"reply after your FIN");
                w.end();
            });
        })
        .unwrap();
        let addr = server.local_addr();
        connect(addr, move |r| {
            let s = r.unwrap();
            s.allow_half_open(true);
            let got = Rc::new(RefCell::new(Vec::new()));
            let (g, l4) = (got.clone(), l.clone());
            s.on_data(move |b| g.borrow_mut().extend_from_slice(b));
            s.on_end(move || {
                l4.push(format!(
                    "client got {:?} then end",
                    String::from_utf8_lossy(&got.borrow())
                ));
                server.close();
            });
            let l5 = l.clone();
            s.on_close(move |had_error| l5.push(format!("client closed, error: {had_error}")));
            s.write(b"request");
            s.end(); // half-close: we can still read
        });
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "server got end after \"request\"",
            "client got \"reply after your FIN\" then end",
            "client closed, error: false"
        ]
    );
}

#[test]
fn peer_reset_while_writes_are_queued_resolves_each_write_once() {
    let _s = serial();
    let results = Rc::new(RefCell::new(Vec::new()));
    let r2 = results.clone();
    let closed = Rc::new(Cell::new(false));
    let c2 = closed.clone();
    evloop::run(move || {
        let server = TcpListener::bind("127.0.0.1:0", move |conn| {
            let s = conn.unwrap();
            let chunk = vec![7u8; 256 * 1024];
            for i in 0..40 {
                let r = r2.clone();
                s.write_with(&chunk, move |res| {
                    r.borrow_mut().push((i, res.map_err(|e| e.kind())))
                });
            }
            let c = c2.clone();
            s.on_close(move |_| c.set(true));
            s.on_error(|_| {});
        })
        .unwrap();
        let addr = server.local_addr();
        server.unref();
        // A blocking client on another thread that resets the connection
        // (SO_LINGER 0) without reading.
        std::thread::spawn(move || {
            let c = std::net::TcpStream::connect(addr).unwrap();
            socket2::SockRef::from(&c)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            drop(c);
        });
        // Keep the loop alive until the reset has been seen.
        let keep = evloop::set_timeout(Duration::from_secs(10), || panic!("reset never seen"));
        let check = Rc::new(RefCell::new(None::<evloop::Interval>));
        let (ch, c3) = (check.clone(), closed.clone());
        *check.borrow_mut() = Some(evloop::set_interval(Duration::from_millis(5), move || {
            if c3.get() {
                keep.clear();
                ch.borrow_mut().take().unwrap().clear();
            }
        }));
    })
    .unwrap();
    let results = results.borrow();
    assert_eq!(results.len(), 40, "every write resolves exactly once");
    let mut ids: Vec<_> = results.iter().map(|(i, _)| *i).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    assert!(
        results.iter().any(|(_, r)| r.is_err()),
        "the reset failed some writes"
    );
    // Writes resolve in order: once one failed, no later one succeeded.
    let first_err = results.iter().position(|(_, r)| r.is_err()).unwrap();
    assert!(results[first_err..].iter().all(|(_, r)| r.is_err()));
}

#[test]
fn a_slow_reader_keeps_queued_bytes_bounded_when_the_writer_respects_write() {
    let _s = serial();
    let max_queued = Rc::new(Cell::new(0usize));
    let total = 16usize << 20;
    let received = Rc::new(Cell::new(0usize));
    let (m, rcv) = (max_queued.clone(), received.clone());
    evloop::run(move || {
        let m2 = m.clone();
        let server = TcpListener::bind("127.0.0.1:0", move |conn| {
            let s = conn.unwrap();
            let chunk = vec![1u8; 64 * 1024];
            let sent = Rc::new(Cell::new(0usize));
            // Write until write() says stop, then wait for drain.
            let pump: Rc<RefCell<Option<Pump>>> = Rc::default();
            let (p2, w, m3) = (pump.clone(), s.clone(), m2.clone());
            *pump.borrow_mut() = Some(Box::new(move || {
                while sent.get() < total {
                    sent.set(sent.get() + chunk.len());
                    let more = w.write(&chunk);
                    m3.set(m3.get().max(w.write_queue_len()));
                    if !more {
                        return; // on_drain calls us again
                    }
                }
                w.end();
            }));
            let p3 = p2.clone();
            s.on_drain(move || (p3.borrow().as_ref().unwrap())());
            (pump.borrow().as_ref().unwrap())();
            s.on_close(move |_| drop(p2.borrow_mut().take()));
        })
        .unwrap();
        let addr = server.local_addr();
        connect(addr, move |r| {
            let s = r.unwrap();
            let (rc, s2) = (rcv.clone(), s.clone());
            // Slow: read a chunk, then pause for a millisecond.
            s.on_data(move |b| {
                rc.set(rc.get() + b.len());
                s2.pause();
                let s3 = s2.clone();
                evloop::set_timeout(Duration::from_millis(1), move || s3.resume());
            });
            s.on_end(move || server.close());
        });
    })
    .unwrap();
    assert_eq!(received.get(), total);
    // At most one chunk past the 16 KiB high-water mark.
    assert!(
        max_queued.get() <= evloop::net::DEFAULT_HIGH_WATER_MARK + 64 * 1024,
        "queued {} bytes",
        max_queued.get()
    );
}

#[test]
fn connect_refused_and_bind_in_use_give_the_right_error_kinds() {
    let _s = serial();
    let kinds = Rc::new(RefCell::new(vec![]));
    let k = kinds.clone();
    evloop::run(move || {
        let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
        let addr = server.local_addr();
        let e = TcpListener::bind(addr.to_string(), |_| {}).unwrap_err();
        k.borrow_mut().push(e.kind());
        let e = TcpListener::bind("not an address", |_| {}).unwrap_err();
        k.borrow_mut().push(e.kind());
        server.close();
        let k2 = k.clone();
        connect(addr, move |r| k2.borrow_mut().push(r.unwrap_err().kind()));
    })
    .unwrap();
    assert_eq!(
        *kinds.borrow(),
        [
            ErrorKind::AddrInUse,
            ErrorKind::InvalidInput,
            ErrorKind::ConnectionRefused
        ]
    );
}

#[test]
fn connect_by_name_resolves_on_the_pool() {
    let _s = serial();
    let ok = Rc::new(Cell::new(false));
    let o = ok.clone();
    evloop::run(move || {
        let server = TcpListener::bind("127.0.0.1:0", |c| {
            let s = c.unwrap();
            s.write(b"hi");
            s.end();
        })
        .unwrap();
        let port = server.local_addr().port();
        connect(format!("localhost:{port}"), move |r| {
            let s: Stream = r.unwrap();
            let o = o.clone();
            s.on_data(move |b| {
                assert_eq!(b, b"hi");
                o.set(true);
            });
            s.on_end(move || server.close());
        });
    })
    .unwrap();
    assert!(ok.get());
}

#[test]
fn data_sent_before_on_data_is_not_lost_and_std_clients_interoperate() {
    let _s = serial();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    evloop::run(move || {
        let g2 = g.clone();
        let server = TcpListener::bind("127.0.0.1:0", move |conn| {
            let s = conn.unwrap();
            // Install the handler only 20 ms later: the data must wait.
            let (s2, g3) = (s.clone(), g2.clone());
            evloop::set_timeout(Duration::from_millis(20), move || {
                let w = s2.clone();
                s2.on_data(move |b| {
                    g3.borrow_mut().extend_from_slice(b);
                    w.write(b);
                });
            });
        })
        .unwrap();
        let addr = server.local_addr();
        std::thread::spawn(move || {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.write_all(b"early bytes").unwrap();
            let mut back = [0u8; 11];
            c.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"early bytes");
        });
        let keep = evloop::set_timeout(Duration::from_secs(10), || panic!("timeout"));
        let g4 = g.clone();
        let poll: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
        let p2 = poll.clone();
        *poll.borrow_mut() = Some(evloop::set_interval(Duration::from_millis(5), move || {
            if g4.borrow().len() == 11 {
                keep.clear();
                server.close();
                p2.borrow_mut().take().unwrap().clear();
            }
        }));
    })
    .unwrap();
    assert_eq!(&*got.borrow(), b"early bytes");
}

/// Write callbacks run in the order of the writes, whether the kernel took
/// a write at once or from the queue.
#[test]
fn write_callbacks_run_in_write_order() {
    let _s = serial();
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    evloop::run(move || {
        let server = TcpListener::bind("127.0.0.1:0", |c| {
            let s = c.unwrap();
            s.on_data(|_| {}); // a fast reader
        })
        .unwrap();
        let addr = server.local_addr();
        connect(addr, move |r| {
            let s = r.unwrap();
            let big = vec![0u8; 4 << 20];
            for i in 0..20 {
                let o = o.clone();
                let data: &[u8] = if i % 2 == 0 { b"small" } else { &big };
                s.write_with(data, move |r| {
                    r.unwrap();
                    o.borrow_mut().push(i);
                });
            }
            s.end();
            s.on_close(move |_| server.close());
        });
    })
    .unwrap();
    assert_eq!(*order.borrow(), (0..20).collect::<Vec<_>>());
}

/// An open (unref'd) stream does not keep a dropped loop's resources
/// alive: no reference cycle through the reactor.
#[test]
fn dropping_the_loop_with_an_open_stream_releases_everything() {
    let _s = serial();
    let fds = support::fds::fd_count();
    for _ in 0..20 {
        let el = evloop::EventLoop::new().unwrap();
        {
            let _g = el.enter();
            let server = TcpListener::bind("127.0.0.1:0", |c| {
                c.unwrap().unref();
            })
            .unwrap();
            server.unref();
            connect(server.local_addr(), |r| {
                r.unwrap().unref();
            });
        }
        el.run().unwrap();
        el.run().unwrap();
        drop(el);
    }
    assert_eq!(
        support::fds::fd_count(),
        fds,
        "a dropped loop left fds open"
    );
}

/// With an uncaught-panic handler, a data callback that panics once keeps
/// receiving later data (Node keeps a listener that threw).
#[test]
fn a_panicking_data_callback_keeps_its_place() {
    let _s = serial();
    std::panic::set_hook(Box::new(|_| {}));
    let el = evloop::EventLoop::new().unwrap();
    el.on_uncaught_exception(|_, _| {});
    let chunks = Rc::new(Cell::new(0));
    let c = chunks.clone();
    el.run_main(move || {
        let server = TcpListener::bind("127.0.0.1:0", move |conn| {
            let s = conn.unwrap();
            let c = c.clone();
            s.on_data(move |_| {
                c.set(c.get() + 1);
                if c.get() == 1 {
                    panic!("first chunk");
                }
            });
        })
        .unwrap();
        let addr = server.local_addr();
        connect(addr, move |r| {
            let s = r.unwrap();
            s.write(b"one");
            evloop::set_timeout(Duration::from_millis(20), move || {
                s.write(b"two");
                s.end();
                server.close();
            });
        });
    })
    .unwrap();
    el.run().unwrap();
    let _ = std::panic::take_hook();
    assert_eq!(chunks.get(), 2, "the handler was lost after its panic");
}
