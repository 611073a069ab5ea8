//! The worker-threads model: `evloop::worker_threads` workers, each an OS
//! thread with its own event loop, told what to do over typed message
//! ports. The same split of the work as the processes model, without the
//! process start-up, the serialisation or the second address space: the
//! messages are Rust values that move between the threads.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::ops::Range;
use std::rc::Rc;

use evloop::worker_threads::{MessagePort, Worker};

use crate::cpu::{scan, Job};
use crate::measure::Outcome;

/// What the parent asks.
#[derive(Debug, Clone)]
enum Task {
    /// Make these requests (callback style, all at once).
    Io(SocketAddr, Range<u64>),
    /// Scan this chunk for the number hashing to `target`.
    Cpu(Range<u64>, u64),
}

/// A message either way (one port type carries both directions).
#[derive(Debug, Clone)]
enum Msg {
    Task(Task),
    Answer(Answer),
}

/// What the worker answers.
#[derive(Debug, Clone)]
enum Answer {
    /// The requests all got their replies, or not.
    Io(bool),
    /// The chunk's answer.
    Cpu(Option<u64>),
}

/// The worker's side, for either workload: one answer per task, until the
/// parent closes the port.
fn worker(parent: MessagePort<Msg>) {
    let p = parent.clone();
    parent.on_message(move |msg| {
        let answer = match msg {
            Msg::Task(Task::Io(addr, range)) => Answer::Io(crate::io::callbacks(addr, range).ok),
            Msg::Task(Task::Cpu(range, target)) => Answer::Cpu(scan(range, target)),
            Msg::Answer(_) => return, // answers only go the other way
        };
        let _ = p.post_message(Msg::Answer(answer));
    });
}

/// I/O: the requests split evenly across `workers` threads.
pub fn io(addr: SocketAddr, n: u64, workers: usize) -> Outcome {
    let good = Rc::new(Cell::new(0u64));
    let g = good.clone();
    evloop::run(move || {
        for part in crate::hash_search::chunks(n, workers as u64) {
            let w = Worker::spawn(worker).expect("start a worker thread");
            let (g, me) = (g.clone(), w.clone());
            let len = part.end - part.start;
            w.on_message(move |answer| {
                if let Msg::Answer(Answer::Io(true)) = answer {
                    g.set(g.get() + len);
                }
                me.port().close(); // the worker's loop then ends
            });
            let _ = w.post_message(Msg::Task(Task::Io(addr, part)));
        }
    })
    .expect("the loop");
    // The threads' memory is this process's: no separate peak to add.
    Outcome::checked(good.get() == n)
}

/// CPU: chunks handed to whichever worker is free.
pub fn cpu(job: &Job, workers: usize) -> Outcome {
    let found = Rc::new(Cell::new(None));
    let f = found.clone();
    let todo: Rc<RefCell<VecDeque<Range<u64>>>> = Rc::new(RefCell::new(job.chunks.clone().into()));
    let target = job.target;
    evloop::run(move || {
        for _ in 0..workers {
            let w = Worker::spawn(worker).expect("start a worker thread");
            let (f, todo, me) = (f.clone(), todo.clone(), w.clone());
            let give = move |w: &Worker<Msg>| {
                let next = todo.borrow_mut().pop_front();
                match next {
                    Some(c) => {
                        let _ = w.post_message(Msg::Task(Task::Cpu(c, target)));
                    }
                    None => w.port().close(),
                }
            };
            give(&w);
            w.on_message(move |answer| {
                if let Msg::Answer(Answer::Cpu(Some(n))) = answer {
                    f.set(Some(n));
                }
                give(&me);
            });
        }
    })
    .expect("the loop");
    Outcome::checked(found.get() == Some(job.secret))
}
