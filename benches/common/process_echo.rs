//! evloop's worker-process IPC (`process::Worker` + `Channel`, bytes over a
//! Unix socket) against an echo worker: pipelined throughput and round-trip
//! latency. Shared by the `ipc` and `worker_threads` benches. The bench
//! binary is its own worker: its `main` must start with
//! `if worker_entry().as_deref() == Some(ECHO) { return echo_worker(); }`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::process::{parent_channel, Worker};

/// The worker entry name for [`echo_worker`].
pub const ECHO: &str = "echo";

/// The worker: echo every message.
pub fn echo_worker() {
    evloop::run(|| {
        let parent = parent_channel().unwrap();
        let p = parent.clone();
        parent.on_message(move |m| {
            let _ = p.send(m);
        });
    })
    .unwrap();
}

/// Sends `n` messages (`msg(i)` for the i-th) as fast as backpressure
/// allows; messages per second until the last echo is back.
pub fn evloop_throughput<B: AsRef<[u8]>>(n: usize, msg: impl Fn(u64) -> B + 'static) -> f64 {
    let elapsed = Rc::new(Cell::new(Duration::ZERO));
    let e = elapsed.clone();
    evloop::run(move || {
        let w = Worker::spawn(ECHO).unwrap();
        let ch = w.channel().clone();
        let start = Instant::now();
        let (sent, got) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let pump: Rc<dyn Fn()> = {
            let (ch, sent) = (ch.clone(), sent.clone());
            Rc::new(move || {
                while sent.get() < n {
                    let m = msg(sent.get() as u64);
                    sent.set(sent.get() + 1);
                    if !ch.send(m.as_ref()).unwrap() {
                        return;
                    }
                }
            })
        };
        let p = pump.clone();
        ch.on_drain(move || p());
        let c = ch.clone();
        ch.on_message(move |_| {
            got.set(got.get() + 1);
            if got.get() == n {
                e.set(start.elapsed());
                c.close();
            }
        });
        pump();
    })
    .unwrap();
    n as f64 / elapsed.get().as_secs_f64()
}

/// `m` round trips one after the other (`msg(i)` for the i-th); each one's
/// time in us.
pub fn evloop_latency<B: AsRef<[u8]>>(m: usize, msg: impl Fn(u64) -> B + 'static) -> Vec<f64> {
    let times = Rc::new(RefCell::new(Vec::with_capacity(m)));
    let t = times.clone();
    evloop::run(move || {
        let w = Worker::spawn(ECHO).unwrap();
        let ch = w.channel().clone();
        let sent_at = Rc::new(Cell::new(Instant::now()));
        let (c, s) = (ch.clone(), sent_at.clone());
        let msg = Rc::new(msg);
        let next = msg.clone();
        ch.on_message(move |_| {
            let done = t.borrow().len() as u64;
            t.borrow_mut().push(s.get().elapsed().as_secs_f64() * 1e6);
            if t.borrow().len() == m {
                c.close();
                return;
            }
            let b = next(done + 1);
            s.set(Instant::now());
            c.send(b.as_ref()).unwrap();
        });
        let b = msg(0);
        sent_at.set(Instant::now());
        ch.send(b.as_ref()).unwrap();
    })
    .unwrap();
    times.take()
}
