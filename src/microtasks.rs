//! `next_tick` and microtasks, and the checkpoint that drains them.
//!
//! Node's rule: after **every** callback the loop runs (a timer, an
//! immediate, an I/O callback, ...), drain the `next_tick` queue completely
//! (including ticks queued while draining), then the microtask queue
//! completely, and repeat until both are empty. Promise reactions (a later
//! layer) go through the microtask queue.
//!
//! A consequence worth knowing: a tick that queues a tick forever starves
//! the loop, exactly as `process.nextTick` recursion does in Node.

use std::cell::RefCell;
use std::collections::VecDeque;

use crate::event_loop::with_current;

/// A queued job: a boxed closure (no allocation for closures that capture
/// nothing).
pub(crate) type Job = Box<dyn FnOnce()>;

/// A job on the microtask queue. Any `FnOnce()` is one; promise reactions
/// are their own types, so that settling a promise queues its reactions
/// without allocating again (the reaction was boxed when `then` was called).
pub(crate) trait Microtask {
    fn run(self: Box<Self>);
}

impl<F: FnOnce()> Microtask for F {
    fn run(self: Box<Self>) {
        (*self)()
    }
}

/// A boxed microtask.
pub(crate) type MicroJob = Box<dyn Microtask>;

/// The two queues.
#[derive(Default)]
pub(crate) struct Microtasks {
    ticks: RefCell<VecDeque<Job>>,
    micro: RefCell<VecDeque<MicroJob>>,
    /// A `next_tick` job is running (tells a panic's origin).
    in_tick: std::cell::Cell<bool>,
    /// Jobs ever pushed onto the microtask queue: unchanged since a push,
    /// the job pushed then is still the last one queued (or has run).
    pushes: std::cell::Cell<u64>,
}

impl Microtasks {
    pub(crate) fn push_tick(&self, job: Job) {
        self.ticks.borrow_mut().push_back(job);
    }

    pub(crate) fn push_micro(&self, job: MicroJob) {
        self.micro.borrow_mut().push_back(job);
        self.pushes.set(self.pushes.get().wrapping_add(1));
    }

    /// How many jobs were ever pushed onto the microtask queue.
    pub(crate) fn micro_pushes(&self) -> u64 {
        self.pushes.get()
    }

    pub(crate) fn ticks_len(&self) -> usize {
        self.ticks.borrow().len()
    }

    pub(crate) fn micro_len(&self) -> usize {
        self.micro.borrow().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ticks.borrow().is_empty() && self.micro.borrow().is_empty()
    }

    /// Drains both queues in Node's order; returns how many jobs ran. A
    /// panicking job unwinds out of here with the rest still queued (the
    /// caller catches it and decides whether to resume). With
    /// `micro_first` (resuming after a panicking microtask) the microtask
    /// queue drains before the ticks, as V8 finishes its queue first.
    pub(crate) fn drain(&self, ran: &mut usize, micro_first: bool) {
        let mut skip_ticks = micro_first;
        loop {
            // Take, then call: the borrow ends before the job runs.
            if !skip_ticks {
                while let Some(job) = pop(&self.ticks) {
                    *ran += 1;
                    self.in_tick.set(true);
                    job();
                    self.in_tick.set(false);
                }
            }
            skip_ticks = false;
            let mut any = false;
            while let Some(job) = pop(&self.micro) {
                any = true;
                *ran += 1;
                job.run();
            }
            if !any && self.ticks.borrow().is_empty() {
                return;
            }
        }
    }

    /// Whether the last panic out of `drain` came from a `next_tick` job
    /// (and clears the mark).
    pub(crate) fn take_tick_panic(&self) -> bool {
        self.in_tick.replace(false)
    }

    pub(crate) fn drain_all(&self) -> (Vec<Job>, Vec<MicroJob>) {
        let ticks = self.ticks.borrow_mut().drain(..).collect();
        let micro = self.micro.borrow_mut().drain(..).collect();
        (ticks, micro)
    }
}

#[inline]
fn pop<J>(q: &RefCell<VecDeque<J>>) -> Option<J> {
    q.borrow_mut().pop_front()
}

/// Queues `cb` on the `next_tick` queue (Node's `process.nextTick`): it runs
/// as soon as the current callback returns, before any microtask.
///
/// # Panics
/// If no event loop is current on this thread.
///
/// ```
/// evloop::run(|| {
///     evloop::queue_microtask(|| println!("second"));
///     evloop::next_tick(|| println!("first"));
/// })
/// .unwrap();
/// ```
pub fn next_tick(cb: impl FnOnce() + 'static) {
    with_current(|inner| inner.micro.push_tick(Box::new(cb)))
}

/// Queues `cb` on the microtask queue (Node's `queueMicrotask`; promise
/// reactions use the same queue).
///
/// # Panics
/// If no event loop is current on this thread.
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
///
/// let order = Rc::new(RefCell::new(Vec::new()));
/// let o = order.clone();
/// evloop::run(move || {
///     let (a, b, c) = (o.clone(), o.clone(), o.clone());
///     evloop::set_immediate(move || a.borrow_mut().push("immediate"));
///     evloop::queue_microtask(move || b.borrow_mut().push("microtask"));
///     evloop::next_tick(move || c.borrow_mut().push("next_tick"));
///     o.borrow_mut().push("main");
/// })
/// .unwrap();
/// assert_eq!(*order.borrow(), ["main", "next_tick", "microtask", "immediate"]);
/// ```
pub fn queue_microtask(cb: impl FnOnce() + 'static) {
    with_current(|inner| inner.micro.push_micro(Box::new(cb)))
}
