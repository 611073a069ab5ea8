//! Worker processes and their IPC channel.
//!
//! This test runs without libtest's harness (`harness = false` in
//! Cargo.toml): the binary is its own worker. `main` first checks whether it
//! was started as one; if not, it runs the tests one after the other (so the
//! fd census at the end sees only this file's work).

mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use evloop::process::{exit_signal, parent_channel, worker_entry, Signal, Worker};

fn main() {
    support::init_log();
    if let Some(entry) = worker_entry() {
        worker(&entry);
        return;
    }
    let tests: &[(&str, fn())] = &[
        ("ten_thousand_messages_round_trip_in_order", round_trip),
        ("a_panicking_worker_is_reported", panicking_worker),
        ("a_killed_worker_is_reported", killed_worker),
        ("backpressure_both_ways", backpressure),
        ("recv_and_send_promise_in_async", async_style),
        ("an_oversized_frame_closes_the_channel", oversized_frame),
        (
            "a_channel_error_nobody_listens_for_is_uncaught",
            unlistened_channel_error,
        ),
        ("bad_input_is_an_error_not_a_panic", bad_input),
    ];
    // The process-wide signal pipe (two fds, kept for the life of the
    // process) exists after the first child: make it before the census.
    evloop::run(|| {
        evloop::process::Command::new("true")
            .spawn()
            .expect("spawn");
    })
    .unwrap();
    let fds_before = support::fds::fd_count();
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    for (name, test) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        eprint!("test {name} ... ");
        test();
        eprintln!("ok");
    }
    // Every worker reaped, every channel closed.
    assert_eq!(support::fds::fd_count(), fds_before, "fds leaked");
    eprintln!("worker tests: all passed");
}

/// The worker side: each entry is a small program on its own loop.
fn worker(entry: &str) {
    evloop::run(|| {
        let parent = parent_channel().expect("the IPC channel");
        let p = parent.clone();
        match entry {
            // Echo every message back.
            "echo" => {
                parent.on_message(move |msg| {
                    p.send(msg).unwrap();
                });
            }
            // Panic on the first message.
            "panic" => {
                parent.on_message(|_| panic!("worker panics on purpose"));
            }
            // Sleep until killed.
            "sleep" => {
                parent.send(b"ready").unwrap();
                evloop::set_timeout(Duration::from_secs(60), || {});
            }
            // Read slowly (pull mode, one message per 1 ms), then send
            // many big messages back, respecting backpressure.
            "slow" => {
                evloop::spawn(async move {
                    let mut got = 0usize;
                    while let Some(m) = p.recv().await.unwrap() {
                        if m == b"done" {
                            break;
                        }
                        got += m.len();
                        evloop::task::sleep(Duration::from_micros(200)).await;
                    }
                    p.send(got.to_string().as_bytes()).unwrap();
                    let big = vec![7u8; 256 * 1024];
                    for _ in 0..64 {
                        if !p.send(&big).unwrap() {
                            // Wait for the queue to drain (one drain per
                            // `false`).
                            let drained = evloop::promise::Promise::<()>::with_resolvers();
                            let resolve = drained.resolve;
                            p.on_drain(move || resolve(()));
                            drained.promise.await.unwrap();
                        }
                    }
                    p.close();
                });
            }
            // Write a frame header announcing 3 GiB.
            "garbage" => {
                drop(p);
                parent.send(b"fine").unwrap();
                raw_write(&[0, 0, 0, 0xC0]);
            }
            other => panic!("unknown worker entry {other}"),
        }
    })
    .unwrap();
}

/// Writes raw bytes on the IPC socket, bypassing the framing.
fn raw_write(bytes: &[u8]) {
    // The channel set close-on-exec on the fd but left it open: write to a
    // duplicate of it.
    let fd: i32 = std::env::var("EVLOOP_IPC_FD").unwrap().parse().unwrap();
    // SAFETY: dup returns a new fd that we own (or -1).
    let dup = unsafe { libc::dup(fd) };
    assert!(dup >= 0);
    // SAFETY: `dup` is a fresh fd nobody else owns.
    let mut f: std::fs::File = unsafe { std::os::fd::FromRawFd::from_raw_fd(dup) };
    io::Write::write_all(&mut f, bytes).unwrap();
}

fn round_trip() {
    const N: usize = 10_000;
    let got = Rc::new(RefCell::new(Vec::with_capacity(N)));
    let status = Rc::new(Cell::new(None));
    let (g, st) = (got.clone(), status.clone());
    evloop::run(move || {
        let w = Worker::spawn("echo").unwrap();
        // Sizes from empty to 64 KiB, so frames split across reads.
        for i in 0..N {
            let len = [0, 1, 7, 100, 4096, 65536][i % 6];
            let mut msg = (i as u32).to_le_bytes().to_vec();
            msg.resize(4 + len, (i % 251) as u8);
            w.send(&msg).unwrap();
        }
        let ch = w.channel().clone();
        w.on_message(move |msg| {
            g.borrow_mut().push(msg.to_vec());
            if g.borrow().len() == N {
                ch.close();
            }
        });
        w.child().on_exit(move |r| st.set(Some(r.unwrap())));
    })
    .unwrap();
    assert!(status.get().unwrap().success());
    let got = got.borrow();
    assert_eq!(got.len(), N);
    for (i, msg) in got.iter().enumerate() {
        let len = [0, 1, 7, 100, 4096, 65536][i % 6];
        assert_eq!(msg.len(), 4 + len, "message {i}");
        assert_eq!(u32::from_le_bytes(msg[..4].try_into().unwrap()), i as u32);
        assert!(msg[4..].iter().all(|&b| b == (i % 251) as u8));
    }
}

fn panicking_worker() {
    let status = Rc::new(Cell::new(None));
    let closed = Rc::new(Cell::new(false));
    let other = Rc::new(Cell::new(false));
    let (st, cl, ot) = (status.clone(), closed.clone(), other.clone());
    evloop::run(move || {
        let w = Worker::spawn("panic").unwrap();
        w.channel().on_close(move |_| cl.set(true));
        w.child().on_exit(move |r| st.set(Some(r.unwrap())));
        w.send(b"boom").unwrap();
        // The parent's other work goes on.
        evloop::set_timeout(Duration::from_millis(10), move || ot.set(true));
    })
    .unwrap();
    let status = status.get().unwrap();
    // A Rust panic in main exits with 101.
    assert_eq!(status.code(), Some(101), "{status:?}");
    assert!(closed.get());
    assert!(other.get());
}

fn killed_worker() {
    let sig = Rc::new(Cell::new(None));
    let s = sig.clone();
    evloop::run(move || {
        let w = Worker::spawn("sleep").unwrap();
        let c = w.child().clone();
        w.on_message(move |m| {
            assert_eq!(m, b"ready");
            c.kill(Signal::SIGKILL).unwrap();
        });
        w.child().on_exit(move |r| s.set(exit_signal(&r.unwrap())));
    })
    .unwrap();
    assert_eq!(sig.get(), Some(Signal::SIGKILL));
}

/// 16 MiB to a worker that reads slowly: `send` says `false` and
/// `on_drain` resumes; then 16 MiB back to a parent that pulls.
fn backpressure() {
    let drains = Rc::new(Cell::new(0));
    let reply = Rc::new(RefCell::new(None));
    let back = Rc::new(Cell::new(0usize));
    let (d, r, b) = (drains.clone(), reply.clone(), back.clone());
    evloop::run(move || {
        let w = Worker::spawn("slow").unwrap();
        let ch = w.channel().clone();
        let chunk = Rc::new(vec![1u8; 64 * 1024]);
        let sent = Rc::new(Cell::new(0));
        let pump: Rc<dyn Fn()> = {
            let (ch, sent) = (ch.clone(), sent.clone());
            Rc::new(move || {
                while sent.get() < 256 {
                    sent.set(sent.get() + 1);
                    if !ch.send(&chunk).unwrap() {
                        return;
                    }
                }
                ch.send(b"done").unwrap();
            })
        };
        let p = pump.clone();
        ch.on_drain(move || {
            d.set(d.get() + 1);
            p();
        });
        pump();
        evloop::spawn(async move {
            let first = ch.recv().await.unwrap().unwrap();
            *r.borrow_mut() = Some(String::from_utf8(first).unwrap());
            while let Some(m) = ch.recv().await.unwrap() {
                b.set(b.get() + m.len());
            }
        });
    })
    .unwrap();
    assert_eq!(reply.borrow().as_deref(), Some("16777216"));
    assert!(drains.get() > 0, "16 MiB must hit the high-water mark");
    assert_eq!(back.get(), 64 * 256 * 1024);
}

fn async_style() {
    let out = evloop::block_on(async {
        let w = Worker::spawn("echo").unwrap();
        let ch = w.channel().clone();
        let mut replies = Vec::new();
        for i in 0..100u32 {
            ch.send_promise(&i.to_le_bytes()).await.unwrap();
            let m = ch.recv().await.unwrap().unwrap();
            replies.push(u32::from_le_bytes(m.try_into().unwrap()));
        }
        ch.close();
        assert_eq!(ch.recv().await.unwrap(), None);
        let status = w.child().wait().await.unwrap();
        (replies, status)
    })
    .unwrap();
    assert_eq!(out.0, (0..100).collect::<Vec<_>>());
    assert!(out.1.success());
}

fn oversized_frame() {
    let got = Rc::new(RefCell::new(Vec::new()));
    let err = Rc::new(RefCell::new(None));
    let (g, e) = (got.clone(), err.clone());
    evloop::run(move || {
        let w = Worker::spawn("garbage").unwrap();
        w.on_message(move |m| g.borrow_mut().push(m.to_vec()));
        w.channel()
            .on_close(move |r| *e.borrow_mut() = Some(r.unwrap_err().kind()));
    })
    .unwrap();
    // The good message before the bad frame still arrived.
    assert_eq!(*got.borrow(), vec![b"fine".to_vec()]);
    assert_eq!(*err.borrow(), Some(io::ErrorKind::InvalidData));
}

/// A channel closed by an error with no `on_close` listener: an uncaught
/// error (Node's `'error'` with no listener). With no handler `run`
/// returns it; with one, the handler gets it once and the loop goes on.
fn unlistened_channel_error() {
    let r = evloop::run(|| {
        let w = Worker::spawn("garbage").unwrap();
        w.on_message(|_| {});
    });
    match r {
        Err(evloop::Error::UnhandledError { emitter, error }) => {
            assert_eq!(emitter, "ipc channel");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        }
        other => panic!("{other:?}"),
    }
    let seen = Rc::new(RefCell::new(Vec::new()));
    let later = Rc::new(Cell::new(false));
    let (s, l) = (seen.clone(), later.clone());
    evloop::run(move || {
        evloop::on_uncaught_exception(move |e, o| s.borrow_mut().push(format!("{o}: {e}")));
        let w = Worker::spawn("garbage").unwrap();
        w.on_message(|_| {});
        evloop::set_timeout(Duration::from_millis(50), move || l.set(true));
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("uncaughtException: "), "{seen:?}");
    assert!(later.get());
}

fn bad_input() {
    evloop::run(|| {
        // Not a worker: no channel to the parent.
        assert_eq!(
            parent_channel().unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // A program that does not exist.
        let mut cmd = evloop::process::Command::new("/nonexistent/evloop-worker");
        let e = Worker::spawn_with("echo", &mut cmd).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        // Over the size limit, and after close.
        let w = Worker::spawn("echo").unwrap();
        w.channel().set_max_message(10);
        let e = w.send(&[0; 11]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        w.channel().close();
        let ch = w.channel().clone();
        w.child().on_exit(move |_| {
            let e = ch.send(b"late").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        });
    })
    .unwrap();
}
