//! The processes model: worker processes (this same program, re-run), each
//! with its own event loop, told what to do over their IPC channels.
//!
//! Messages are short text lines:
//! - `io <addr> <start> <end>`: make those requests (callback style, all at
//!   once); the worker answers `ok <peak KiB>` or `bad <peak KiB>`.
//! - `cpu <start> <end> <target>`: scan that chunk; the answer is the number
//!   found or `-`. Then `done`, answered with `peak <KiB>`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;

use evloop::process::{parent_channel, Worker};

use crate::cpu::{scan, Job};
use crate::measure::{peak_rss_kib, Outcome};

/// The worker's side, for either workload.
pub fn worker() {
    evloop::run(|| {
        let parent = parent_channel().expect("the IPC channel");
        let p = parent.clone();
        parent.on_message(move |msg| {
            let text = String::from_utf8_lossy(msg).into_owned();
            let words: Vec<&str> = text.split(' ').collect();
            let reply = match words.as_slice() {
                ["io", addr, a, b] => {
                    let addr: SocketAddr = addr.parse().expect("an address");
                    let range = a.parse().expect("a number")..b.parse().expect("a number");
                    let ok = crate::io::callbacks(addr, range).ok;
                    format!("{} {}", if ok { "ok" } else { "bad" }, peak_rss_kib())
                }
                ["cpu", a, b, target] => {
                    let range = a.parse().expect("a number")..b.parse().expect("a number");
                    match scan(range, target.parse().expect("a number")) {
                        Some(n) => n.to_string(),
                        None => "-".into(),
                    }
                }
                ["done"] => format!("peak {}", peak_rss_kib()),
                _ => "bad request".into(),
            };
            let _ = p.send(reply.as_bytes());
        });
    })
    .expect("the worker loop");
}

fn peak_of(reply: &str) -> u64 {
    reply
        .rsplit(' ')
        .next()
        .and_then(|k| k.parse().ok())
        .unwrap_or(0)
}

/// I/O: the requests split evenly across `workers` processes.
pub fn io(addr: SocketAddr, n: u64, workers: usize) -> Outcome {
    let good = Rc::new(Cell::new(0u64));
    let peak = Rc::new(Cell::new(0u64));
    let (g, pk) = (good.clone(), peak.clone());
    evloop::run(move || {
        for part in crate::hash_search::chunks(n, workers as u64) {
            let w = Worker::spawn("compare-worker").expect("start a worker");
            let (g, pk, me) = (g.clone(), pk.clone(), w.clone());
            let len = part.end - part.start;
            w.on_message(move |reply| {
                let reply = String::from_utf8_lossy(reply);
                if reply.starts_with("ok ") {
                    g.set(g.get() + len);
                }
                pk.set(pk.get() + peak_of(&reply));
                me.channel().close();
            });
            let _ = w.send(format!("io {addr} {} {}", part.start, part.end).as_bytes());
        }
    })
    .expect("the loop");
    Outcome {
        ok: good.get() == n,
        workers_peak_kib: peak.get(),
    }
}

/// CPU: chunks handed to whichever worker is free.
pub fn cpu(job: &Job, workers: usize) -> Outcome {
    let found = Rc::new(Cell::new(None));
    let peak = Rc::new(Cell::new(0u64));
    let (f, pk) = (found.clone(), peak.clone());
    let todo: Rc<RefCell<VecDeque<Range<u64>>>> = Rc::new(RefCell::new(job.chunks.clone().into()));
    let target = job.target;
    evloop::run(move || {
        for _ in 0..workers {
            let w = Worker::spawn("compare-worker").expect("start a worker");
            let (f, pk, todo, me) = (f.clone(), pk.clone(), todo.clone(), w.clone());
            let give = move |w: &Worker, todo: &RefCell<VecDeque<Range<u64>>>| {
                let next = todo.borrow_mut().pop_front();
                let msg = match next {
                    Some(c) => format!("cpu {} {} {target}", c.start, c.end),
                    None => "done".into(),
                };
                let _ = w.send(msg.as_bytes());
            };
            give(&w, &todo);
            w.on_message(move |reply| {
                let reply = String::from_utf8_lossy(reply);
                if reply.starts_with("peak ") {
                    pk.set(pk.get() + peak_of(&reply));
                    me.channel().close();
                    return;
                }
                if let Ok(n) = reply.parse() {
                    f.set(Some(n));
                }
                give(&me, &todo);
            });
        }
    })
    .expect("the loop");
    Outcome {
        ok: found.get() == Some(job.secret),
        workers_peak_kib: peak.get(),
    }
}
