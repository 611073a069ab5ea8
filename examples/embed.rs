//! Embedding: another loop drives evloop, as a GUI toolkit or another
//! runtime would (libuv's `uv_backend_fd` + `UV_RUN_NOWAIT`).
//!
//! The "host" here is a plain `mio::Poll` that knows nothing about evloop.
//! It watches evloop's backend fd (readable when evloop has I/O to
//! dispatch), sleeps at most `backend_timeout()` (evloop's next timer), and
//! calls `run_nowait()` whenever either happens. Meanwhile the host does its
//! own work (here: counting its own wake-ups).
//!
//! It also shows the hooks an embedder gets (libuv's): a
//! [`Prepare`](evloop::watchers::Prepare) watcher that runs just before
//! evloop would poll (flush a batch there), a
//! [`Check`](evloop::watchers::Check) watcher that runs just after, and an
//! [`AsyncHandle`](evloop::AsyncHandle) that a worker thread wakes: it
//! keeps evloop alive until the worker's last result is in (a plain
//! `Remote` would not, and the host would stop too early).
//!
//! `cargo run --example embed`

use std::cell::{Cell, RefCell};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use evloop::watchers::{Check, Prepare};
use evloop::AsyncHandle;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let el = evloop::EventLoop::new()?;
    let (mut peer, ours) = UnixStream::pair()?;
    ours.set_nonblocking(true)?;

    // Work on evloop: a few timers and an I/O watch.
    let _watch = {
        let _g = el.enter();
        for ms in [5u64, 20, 40] {
            let _ = evloop::set_timeout(Duration::from_millis(ms), move || {
                println!("evloop: {ms} ms timer")
            });
        }
        let mut reader = ours.try_clone()?;
        let w = evloop::watch(&ours, evloop::Interest::READABLE, move |_| {
            let mut buf = [0u8; 32];
            while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
                if n == 0 {
                    break;
                }
                println!("evloop: read {:?}", String::from_utf8_lossy(&buf[..n]));
            }
        })?;
        w.unref(); // the socket alone should not keep evloop alive
        let _ = evloop::set_timeout(Duration::from_millis(10), move || {
            std::io::Write::write_all(&mut peer, b"ping").unwrap();
        });
        w
    };

    // The hooks. A batch that callbacks fill and a prepare watcher flushes
    // once per iteration, just before evloop may block.
    let batch = Rc::new(RefCell::new(Vec::<String>::new()));
    let polls = Rc::new(Cell::new(0u32));
    let (_prepare, _check) = {
        let _g = el.enter();
        let prepare = Prepare::new();
        let b = batch.clone();
        prepare.start(move || {
            let items = std::mem::take(&mut *b.borrow_mut());
            if !items.is_empty() {
                println!("evloop prepare: flushing {items:?} before the poll");
            }
        });
        prepare.unref(); // a hook, not a reason to stay alive
        let check = Check::new();
        let p = polls.clone();
        check.start(move || p.set(p.get() + 1));
        check.unref();
        (prepare, check)
    };

    // A worker thread computes three results; each wakes an async handle,
    // whose callback (on the loop thread) drains them into the batch. The
    // handle keeps evloop alive until the last result is in.
    {
        let _g = el.enter();
        let (tx, rx) = mpsc::channel::<u64>();
        let slot = Rc::new(RefCell::new(None::<AsyncHandle>));
        let me = slot.clone();
        let b = batch.clone();
        let mut received = 0;
        let handle = AsyncHandle::new(move || {
            // One callback may stand for several sends (they coalesce).
            for n in rx.try_iter() {
                received += 1;
                b.borrow_mut().push(format!("result {n}"));
            }
            if received == 3 {
                me.borrow_mut().take(); // closed: no longer keeps evloop alive
            }
        });
        let sender = handle.sender();
        *slot.borrow_mut() = Some(handle);
        std::thread::spawn(move || {
            for i in 1..=3u64 {
                std::thread::sleep(Duration::from_millis(15));
                tx.send(i * i).unwrap();
                sender.send().unwrap();
            }
        });
    }

    // The host loop.
    let mut host = Poll::new()?;
    const EVLOOP: Token = Token(0);
    let backend = el.backend_fd();
    host.registry()
        .register(&mut SourceFd(&backend), EVLOOP, Interest::READABLE)?;
    let mut events = Events::with_capacity(16);
    let mut wakeups = 0;
    while el.is_alive() {
        let timeout = el.backend_timeout();
        host.poll(&mut events, timeout)?;
        wakeups += 1;
        for e in events.iter() {
            if e.token() == EVLOOP {
                println!("host: evloop's backend fd {backend} is readable");
            }
        }
        // One non-blocking evloop iteration: due timers, ready I/O.
        let turn = el.run_nowait()?;
        if turn.callbacks() > 0 {
            println!("host: evloop ran {} callbacks", turn.callbacks());
        }
    }
    println!(
        "host: evloop has nothing left; host woke {wakeups} times, evloop polled {} times",
        polls.get()
    );
    // A result that arrived in evloop's last iteration, after its prepare
    // phase, is still in the batch: flush it as the prepare watcher would.
    let rest = std::mem::take(&mut *batch.borrow_mut());
    if !rest.is_empty() {
        println!("host: flushing {rest:?} after evloop's last iteration");
    }
    Ok(())
}
