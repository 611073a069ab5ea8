//! A CPU-bound search split across worker processes (Node's
//! `child_process.fork`): the seeds' "brute-force a hash" example, with one
//! event loop per process and messages over the IPC channels.
//!
//! `cargo run --release --example workers_hash [WORKERS] [SPACE]` (default:
//! one worker per core, a space of 4,000,000 numbers). The parent hides a
//! secret number, hands out chunks of the space to workers (a new chunk to
//! whichever worker finishes first, so a slow core does not hold everyone
//! up), and stops them all as soon as one finds the secret's hash. It exits
//! non-zero if the answer is wrong or missing.

#[path = "common/hash_search.rs"]
mod hash_search;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ops::Range;
use std::rc::Rc;
use std::time::Instant;

use evloop::process::{parent_channel, worker_entry, Worker};

fn main() {
    env_logger::init();
    if worker_entry().as_deref() == Some("hash") {
        return worker();
    }
    let mut args = std::env::args().skip(1);
    let workers: usize = args
        .next()
        .map(|a| a.parse().expect("WORKERS is a number"))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let space: u64 = args
        .next()
        .map(|a| a.parse().expect("SPACE is a number"))
        .unwrap_or(4_000_000);
    // Near the end of the space, so most of it is searched.
    let secret = space - space / 7 - 1;
    let target = hash_search::hash(secret);
    println!("searching 0..{space} for the preimage of {target:#018x} with {workers} workers");

    let found = Rc::new(Cell::new(None));
    let searched = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let (f, s) = (found.clone(), searched.clone());
    evloop::run(move || {
        let todo: Rc<RefCell<VecDeque<Range<u64>>>> = Rc::new(RefCell::new(
            hash_search::chunks(space, workers as u64 * 8).into(),
        ));
        let all: Rc<RefCell<Vec<Worker>>> = Rc::default();
        for id in 0..workers {
            let w = Worker::spawn("hash").expect("start a worker");
            let me = w.clone();
            let (todo2, all2, f, s) = (todo.clone(), all.clone(), f.clone(), s.clone());
            w.on_message(move |msg| {
                // "<start> <end> <found or ->"
                let text = String::from_utf8_lossy(msg);
                let mut parts = text.split(' ');
                let a: u64 = parts.next().unwrap().parse().unwrap();
                let b: u64 = parts.next().unwrap().parse().unwrap();
                s.set(s.get() + (b - a));
                if let Some(n) = parts.next().and_then(|p| p.parse().ok()) {
                    println!(
                        "worker {id} (pid {:?}) found {n} in {a}..{b}",
                        me.child().pid()
                    );
                    f.set(Some(n));
                    // Done: closing the channels ends every worker.
                    for w in all2.borrow().iter() {
                        w.channel().close();
                    }
                    return;
                }
                give_work(&me, &todo2, target);
            });
            w.child().on_exit(move |status| match status {
                Ok(s) if s.success() => {}
                other => eprintln!("worker {id} ended badly: {other:?}"),
            });
            give_work(&w, &todo, target);
            all.borrow_mut().push(w);
        }
    })
    .expect("the loop");
    let elapsed = start.elapsed();
    let searched = searched.get();
    println!(
        "searched {searched} numbers in {elapsed:.2?} ({:.1} M hashes/s)",
        searched as f64 / elapsed.as_secs_f64() / 1e6
    );
    match found.get() {
        Some(n) if n == secret && hash_search::hash(n) == target => println!("correct: {n}"),
        other => {
            eprintln!("MISMATCH: expected {secret}, got {other:?}");
            std::process::exit(1);
        }
    }
}

/// Sends the next chunk, or closes the worker's channel when none is left.
fn give_work(w: &Worker, todo: &RefCell<VecDeque<Range<u64>>>, target: u64) {
    let next = todo.borrow_mut().pop_front();
    match next {
        Some(r) => {
            let msg = format!("{} {} {target}", r.start, r.end);
            let _ = w.send(msg.as_bytes());
        }
        None => w.channel().close(),
    }
}

/// A worker: search each chunk the parent sends, answer, repeat; the loop
/// ends when the parent closes the channel.
fn worker() {
    evloop::run(|| {
        let parent = parent_channel().expect("the IPC channel");
        let p = parent.clone();
        parent.on_message(move |msg| {
            let text = String::from_utf8_lossy(msg);
            let n: Vec<u64> = text.split(' ').map(|x| x.parse().unwrap()).collect();
            let (range, target) = (n[0]..n[1], n[2]);
            // Blocking the loop is fine here: this process exists to compute.
            let answer = match hash_search::search(range.clone(), target) {
                Some(found) => format!("{} {} {found}", range.start, range.end),
                None => format!("{} {} -", range.start, range.end),
            };
            let _ = p.send(answer.as_bytes());
        });
    })
    .expect("the worker loop");
}
