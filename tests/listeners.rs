//! Listener lists on every handle (issue 19): each `on_*` adds a listener
//! and returns a `Listener` that removes it, as Node's `on` and `off`;
//! events run over a snapshot of the list, in the order of addition.
//!
//! Without libtest's harness (`harness = false` in Cargo.toml): the binary
//! is its own worker for the channel and worker tests, and the tests run
//! one after the other on the main thread.

mod support;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use evloop::net::{connect, Stream, TcpListener, UdpSocket};
use evloop::process::{parent_channel, worker_entry, Worker};
use evloop::{EventLoop, Listener};
use support::{ms, Log};

fn main() {
    support::init_log();
    if let Some(entry) = worker_entry() {
        worker(&entry);
        return;
    }
    let tests: &[(&str, fn())] = &[
        (
            "two_on_data_both_get_every_chunk_in_order",
            two_data_listeners,
        ),
        ("remove_takes_a_listener_off", remove_takes_off),
        (
            "removing_inside_a_listener_follows_the_snapshot",
            remove_inside,
        ),
        (
            "a_listener_added_during_an_event_gets_the_next_one",
            added_during,
        ),
        ("once_data_and_once_drain_fire_once", once_forms),
        ("end_and_close_listeners_all_run_once", end_and_close),
        ("every_error_listener_gets_the_error", error_listeners),
        (
            "a_panicking_listener_is_uncaught_and_the_stream_goes_on",
            panicking_listener,
        ),
        ("a_closed_stream_keeps_no_new_listener", closed_stream),
        ("udp_message_listeners_add_and_remove", udp_listeners),
        ("channel_and_worker_message_listeners", channel_listeners),
    ];
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    for (name, test) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        eprint!("test {name} ... ");
        test();
        eprintln!("ok");
    }
    eprintln!("listener tests: all passed");
}

/// The worker side of the channel tests.
fn worker(entry: &str) {
    evloop::run(|| {
        let parent = parent_channel().expect("the IPC channel");
        let p = parent.clone();
        match entry {
            // Sends "m1".."m4", then echoes every message back.
            "chatty" => {
                for m in ["m1", "m2", "m3", "m4"] {
                    parent.send(m.as_bytes()).unwrap();
                }
                parent.on_message(move |msg| {
                    p.send(msg).unwrap();
                });
            }
            other => panic!("unknown entry {other}"),
        }
    })
    .unwrap();
}

/// A server on a loopback port that writes each of `chunks` to every
/// connection, one per 20 ms (separate reads on the client), then ends.
fn chunk_server(chunks: &'static [&'static str]) -> SocketAddr {
    let server = TcpListener::bind("127.0.0.1:0", move |conn| {
        let s = conn.unwrap();
        s.on_data(|_| {});
        // A client that destroys its end may reset this one.
        s.on_error(|_| {});
        send_chunks(s, chunks);
    })
    .unwrap();
    server.unref();
    server.local_addr()
}

fn send_chunks(s: Stream, rest: &'static [&'static str]) {
    match rest.split_first() {
        None => s.end(),
        Some((first, rest)) => {
            s.write(first.as_bytes());
            evloop::set_timeout(ms(20), move || send_chunks(s, rest));
        }
    }
}

/// Connects to a [`chunk_server`] and hands the stream to `f`.
fn with_chunks(chunks: &'static [&'static str], f: impl FnOnce(Stream) + 'static) {
    evloop::run(move || {
        connect(chunk_server(chunks), move |r| f(r.unwrap()));
    })
    .unwrap();
}

/// A data listener that logs `name:chunk`.
fn logger(log: &Log, name: &'static str) -> impl FnMut(&[u8]) + 'static {
    let log = log.clone();
    move |b| log.push(format!("{name}:{}", String::from_utf8_lossy(b)))
}

fn two_data_listeners() {
    let log = Log::new();
    let l = log.clone();
    with_chunks(&["one", "two", "three"], move |s| {
        s.on_data(logger(&l, "a"));
        s.on_data(logger(&l, "b"));
    });
    assert_eq!(
        log.take(),
        ["a:one", "b:one", "a:two", "b:two", "a:three", "b:three"]
    );
}

fn remove_takes_off() {
    let log = Log::new();
    let l = log.clone();
    with_chunks(&["one", "two"], move |s| {
        let gone = s.on_data(logger(&l, "gone"));
        s.on_data(logger(&l, "a"));
        assert!(gone.remove());
        assert!(!gone.remove(), "a second remove finds nothing");
        let b = s.on_data(logger(&l, "b"));
        // After the first chunk, from a timer (outside any event).
        evloop::set_timeout(ms(10), move || {
            assert!(b.remove());
        });
    });
    assert_eq!(log.take(), ["a:one", "b:one", "a:two"]);
}

fn remove_inside() {
    // Node: `emit` calls the listeners present when the event began, so
    // one removed by an earlier listener still gets this event, not the
    // next; a listener may remove itself.
    let log = Log::new();
    let l = log.clone();
    with_chunks(&["one", "two"], move |s| {
        let second: Rc<RefCell<Option<Listener>>> = Rc::default();
        let me: Rc<RefCell<Option<Listener>>> = Rc::default();
        let (l1, sec, me2) = (l.clone(), second.clone(), me.clone());
        *me.borrow_mut() = Some(s.on_data(move |b| {
            l1.push(format!("first:{}", String::from_utf8_lossy(b)));
            if let Some(h) = sec.borrow_mut().take() {
                assert!(h.remove());
            }
            // Itself, after the first chunk.
            if let Some(h) = me2.borrow_mut().take() {
                assert!(h.remove());
            }
        }));
        *second.borrow_mut() = Some(s.on_data(logger(&l, "second")));
        s.on_data(logger(&l, "third"));
    });
    assert_eq!(
        log.take(),
        ["first:one", "second:one", "third:one", "third:two"]
    );
}

fn added_during() {
    let log = Log::new();
    let l = log.clone();
    with_chunks(&["one", "two"], move |s| {
        let (l1, s1, added) = (l.clone(), s.clone(), Cell::new(false));
        s.on_data(move |b| {
            l1.push(format!("a:{}", String::from_utf8_lossy(b)));
            if !added.replace(true) {
                s1.on_data(logger(&l1, "late"));
            }
        });
    });
    assert_eq!(log.take(), ["a:one", "a:two", "late:two"]);
}

fn once_forms() {
    let log = Log::new();
    let l = log.clone();
    with_chunks(&["one", "two"], move |s| {
        s.once_data(logger(&l, "once"));
        s.on_data(logger(&l, "on"));
        // A once listener removed before its event never runs.
        let never = s.once_data(logger(&l, "never"));
        assert!(never.remove());
    });
    assert_eq!(log.take(), ["once:one", "on:one", "on:two"]);

    // once_drain: a writer far above the high-water mark sees two drains;
    // the once listener only the first.
    let (ons, onces) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let (o, n) = (ons.clone(), onces.clone());
    evloop::run(move || {
        let server = TcpListener::bind("127.0.0.1:0", |conn| {
            let s = conn.unwrap();
            s.on_data(|_| {});
        })
        .unwrap();
        server.unref();
        connect(server.local_addr(), move |r| {
            let s = r.unwrap();
            let big = vec![0u8; 8 << 20];
            assert!(!s.write(&big));
            s.on_drain(move || o.set(o.get() + 1));
            let n1 = n.clone();
            s.once_drain(move || n1.set(n1.get() + 1));
            let s2 = s.clone();
            s.once_drain(move || {
                assert!(!s2.write(&big));
                let s3 = s2.clone();
                s2.once_drain(move || s3.destroy());
            });
        });
    })
    .unwrap();
    assert_eq!((ons.get(), onces.get()), (2, 1));
}

fn end_and_close() {
    let log = Log::new();
    let l = log.clone();
    with_chunks(&["one"], move |s| {
        s.on_data(|_| {});
        s.on_end(l.rec("end a"));
        s.on_end(l.rec("end b"));
        let gone = s.on_end(l.rec("end gone"));
        gone.remove();
        let l2 = l.clone();
        s.on_close(move |e| l2.push(format!("close a {e}")));
        let l3 = l.clone();
        s.on_close(move |e| l3.push(format!("close b {e}")));
    });
    assert_eq!(
        log.take(),
        ["end a", "end b", "close a false", "close b false"]
    );
}

/// A peer that resets the connection (SO_LINGER 0) once the client is in.
fn resetting_peer() -> (
    SocketAddr,
    std::sync::mpsc::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = peer.local_addr().unwrap();
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let (conn, _) = peer.accept().unwrap();
        wait.recv().unwrap();
        socket2::SockRef::from(&conn)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    });
    (addr, go, t)
}

fn error_listeners() {
    let log = Log::new();
    let l = log.clone();
    let (addr, go, peer) = resetting_peer();
    evloop::run(move || {
        connect(addr, move |r| {
            let s = r.unwrap();
            s.on_data(|_| {});
            for name in ["a", "b"] {
                let l = l.clone();
                s.on_error(move |e| l.push(format!("{name} {:?}", e.kind())));
            }
            let gone = s.on_error(|_| panic!("removed"));
            gone.remove();
            go.send(()).unwrap();
        });
    })
    .expect("the error listeners took it");
    peer.join().unwrap();
    assert_eq!(log.take(), ["a ConnectionReset", "b ConnectionReset"]);

    // With every error listener removed, the error is uncaught (Node's
    // 'error' with no listener).
    let (addr, go, peer) = resetting_peer();
    let r = evloop::run(move || {
        connect(addr, move |r| {
            let s = r.unwrap();
            s.on_data(|_| {});
            s.on_error(|_| panic!("removed")).remove();
            go.send(()).unwrap();
        });
    });
    peer.join().unwrap();
    assert!(
        matches!(r, Err(evloop::Error::UnhandledError { .. })),
        "{r:?}"
    );
}

fn panicking_listener() {
    // Node: a throwing listener is an uncaught exception; it stays
    // registered, and the emitter goes on with the next event.
    std::panic::set_hook(Box::new(|_| {}));
    let el = EventLoop::new().unwrap();
    let caught = Log::new();
    let c = caught.clone();
    el.on_uncaught_exception(move |e, _| match e {
        evloop::Error::Panicked(p) => c.push(p.message().to_string()),
        other => panic!("{other}"),
    });
    let log = Log::new();
    {
        let _g = el.enter();
        let l = log.clone();
        connect(chunk_server(&["one", "two"]), move |r| {
            let s = r.unwrap();
            let l1 = l.clone();
            s.on_data(move |b| {
                l1.push(format!("bomb:{}", String::from_utf8_lossy(b)));
                if b == b"one" {
                    panic!("listener bomb");
                }
            });
            s.on_data(logger(&l, "after"));
            let l2 = l.clone();
            s.on_close(move |_| l2.push("closed"));
        });
    }
    el.run().unwrap();
    let _ = std::panic::take_hook();
    assert_eq!(caught.take(), ["listener bomb"]);
    // The listener after the panicking one misses that event (as after a
    // throw in Node), both get the next one, and the stream ends normally.
    assert_eq!(log.take(), ["bomb:one", "bomb:two", "after:two", "closed"]);
}

fn closed_stream() {
    let log = Log::new();
    let l = log.clone();
    with_chunks(&["one"], move |s| {
        s.destroy();
        let (s2, l1) = (s.clone(), l.clone());
        // Before the close phase: the close listeners still run.
        s.on_close(move |_| {
            let late = s2.on_data(|_| panic!("after close"));
            assert!(!late.remove(), "not kept: detached");
            s2.on_close(move |_| l1.push("never"));
        });
        let l = l.clone();
        s.on_close(move |_| l.push("closed"));
    });
    assert_eq!(log.take(), ["closed"]);
}

fn udp_listeners() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let (l1, l2) = (l.clone(), l.clone());
        rx.on_message(move |m, _| l1.push(format!("a:{}", String::from_utf8_lossy(m))));
        let b = rx.on_message(move |m, _| l2.push(format!("b:{}", String::from_utf8_lossy(m))));
        let (rx2, l3) = (rx.clone(), l.clone());
        let count = Cell::new(0);
        rx.on_message(move |_, _| {
            count.set(count.get() + 1);
            if count.get() == 1 {
                assert!(b.remove());
            }
            if count.get() == 2 {
                l3.push("close");
                rx2.close();
            }
        });
        rx.on_error(|e| panic!("{e}"));
        let tx2 = tx.clone();
        tx.send_to(b"one", to, move |r| {
            r.unwrap();
            tx2.send_to(b"two", to, move |r| {
                r.unwrap();
            });
        });
        evloop::set_timeout(ms(200), move || tx.close());
    })
    .unwrap();
    assert_eq!(log.take(), ["a:one", "b:one", "a:two", "close"]);

    // A closed socket keeps no new listener.
    evloop::run(|| {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.close();
        assert!(!s.on_message(|_, _| {}).remove());
        assert!(!s.on_error(|_| {}).remove());
    })
    .unwrap();
}

fn channel_listeners() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let w = Worker::spawn("chatty").unwrap();
        let (l1, l2) = (l.clone(), l.clone());
        // "m1".."m4" come unasked: a once listener takes the first, the
        // worker's listener every one, the channel's second listener
        // every one until it removes itself.
        w.once_message(move |m| l1.push(format!("once:{}", String::from_utf8_lossy(m))));
        w.on_message(move |m| l2.push(format!("w:{}", String::from_utf8_lossy(m))));
        let me: Rc<RefCell<Option<Listener>>> = Rc::default();
        let (me2, l3, ch) = (me.clone(), l.clone(), w.channel().clone());
        *me.borrow_mut() = Some(w.channel().on_message(move |m| {
            l3.push(format!("ch:{}", String::from_utf8_lossy(m)));
            if m == b"m2" {
                me2.borrow_mut().take().unwrap().remove();
                ch.close();
            }
        }));
        let (l4, l5) = (l.clone(), l.clone());
        w.channel()
            .on_close(move |r| l4.push(format!("close a {}", r.is_ok())));
        w.channel()
            .on_close(move |r| l5.push(format!("close b {}", r.is_ok())));
        w.child().on_exit(|r| assert!(r.unwrap().success()));
    })
    .unwrap();
    let got = log.take();
    assert_eq!(
        got[..5],
        ["once:m1", "w:m1", "ch:m1", "w:m2", "ch:m2"],
        "{got:?}"
    );
    // After the close, the messages already read still come (m3, m4),
    // to the worker's listener only; then both close listeners.
    assert_eq!(
        got[got.len() - 2..],
        ["close a true", "close b true"],
        "{got:?}"
    );
    assert!(
        got[5..got.len() - 2].iter().all(|m| m.starts_with("w:")),
        "{got:?}"
    );
}
