//! `set_immediate`: callbacks for the check phase, right after poll.
//!
//! The queue is FIFO and drained as a *snapshot*: the check phase runs only
//! the immediates queued before it began, so an immediate that queues
//! another one lets the loop poll for I/O first (Node's rule, and what keeps
//! a self-rescheduling immediate from starving the loop).
//!
//! Entries carry increasing ids, so the queue is sorted by id and
//! [`clear_immediate`] finds its entry by binary search; a cleared entry
//! drops its closure at once and leaves a 24-byte husk that the next check
//! phase pops.

use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use crate::event_loop::{with_current, LoopState};

struct Entry {
    id: u64,
    cb: Option<Box<dyn FnOnce()>>,
    refed: bool,
}

/// The queue of immediates.
#[derive(Default)]
pub(crate) struct ImmediateQueue {
    queue: VecDeque<Entry>,
    next_id: u64,
    /// Live (not cleared, not run) immediates.
    live: usize,
    /// Live and ref'd: these keep the loop alive and make poll not block.
    refed: usize,
}

impl ImmediateQueue {
    pub(crate) fn push(&mut self, cb: Box<dyn FnOnce()>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.queue.push_back(Entry {
            id,
            cb: Some(cb),
            refed: true,
        });
        self.live += 1;
        self.refed += 1;
        id
    }

    /// The id the next immediate will get: the check phase runs ids below
    /// the value it read when it began.
    pub(crate) fn snapshot(&self) -> u64 {
        self.next_id
    }

    /// Pops the next live immediate with an id below `end`.
    pub(crate) fn pop_before(&mut self, end: u64) -> Option<Box<dyn FnOnce()>> {
        while let Some(front) = self.queue.front() {
            if front.id >= end {
                return None;
            }
            let e = self.queue.pop_front().expect("front exists");
            if let Some(cb) = e.cb {
                self.live -= 1;
                if e.refed {
                    self.refed -= 1;
                }
                return Some(cb);
            }
        }
        None
    }

    fn find(&mut self, id: u64) -> Option<&mut Entry> {
        let i = self.queue.binary_search_by_key(&id, |e| e.id).ok()?;
        let e = &mut self.queue[i];
        e.cb.is_some().then_some(e)
    }

    /// Cancels an immediate; returns its closure for the caller to drop.
    pub(crate) fn clear(&mut self, id: u64) -> Option<Box<dyn FnOnce()>> {
        let e = self.find(id)?;
        let cb = e.cb.take();
        let refed = e.refed;
        self.live -= 1;
        if refed {
            self.refed -= 1;
        }
        cb
    }

    pub(crate) fn set_ref(&mut self, id: u64, refed: bool) {
        let Some(e) = self.find(id) else { return };
        if e.refed != refed {
            e.refed = refed;
            if refed {
                self.refed += 1;
            } else {
                self.refed -= 1;
            }
        }
    }

    pub(crate) fn is_pending(&mut self, id: u64) -> bool {
        self.find(id).is_some()
    }

    pub(crate) fn has_ref(&mut self, id: u64) -> bool {
        self.find(id).is_some_and(|e| e.refed)
    }

    pub(crate) fn live(&self) -> usize {
        self.live
    }

    pub(crate) fn refed(&self) -> usize {
        self.refed
    }

    pub(crate) fn refed_flags(&self) -> impl Iterator<Item = bool> + '_ {
        self.queue
            .iter()
            .filter(|e| e.cb.is_some())
            .map(|e| e.refed)
    }

    pub(crate) fn drain_all(&mut self) -> Vec<Box<dyn FnOnce()>> {
        self.live = 0;
        self.refed = 0;
        self.queue.drain(..).filter_map(|e| e.cb).collect()
    }
}

/// A handle to a queued immediate; Node's `Immediate`. Dropping it does not
/// cancel the callback.
pub struct Immediate {
    inner: Weak<LoopState>,
    id: u64,
}

impl Immediate {
    fn with<R>(&self, f: impl FnOnce(&mut ImmediateQueue) -> R) -> Option<R> {
        let inner = self.inner.upgrade()?;
        let mut q = inner.immediates.borrow_mut();
        Some(f(&mut q))
    }

    /// Cancels the immediate if it has not run yet (Node's `clearImmediate`).
    pub fn clear(&self) {
        let garbage = self.with(|q| q.clear(self.id));
        drop(garbage);
    }

    /// Lets the loop exit (and poll block) even though this immediate is
    /// queued.
    pub fn unref(&self) -> &Self {
        self.with(|q| q.set_ref(self.id, false));
        self
    }

    /// Makes this immediate keep the loop alive again.
    pub fn ref_(&self) -> &Self {
        self.with(|q| q.set_ref(self.id, true));
        self
    }

    /// Whether it keeps the loop alive.
    pub fn has_ref(&self) -> bool {
        self.with(|q| q.has_ref(self.id)).unwrap_or(false)
    }

    /// Whether it is still queued.
    pub fn is_pending(&self) -> bool {
        self.with(|q| q.is_pending(self.id)).unwrap_or(false)
    }
}

impl std::fmt::Debug for Immediate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Immediate").field("id", &self.id).finish()
    }
}

/// Queues `cb` for the check phase of the current iteration, right after
/// poll (Node's `setImmediate`). Scheduled from an I/O callback, an
/// immediate always runs before any timer.
///
/// # Panics
/// If no event loop is current on this thread.
///
/// ```
/// evloop::run(|| {
///     let _ = evloop::set_immediate(|| println!("after I/O, before timers"));
/// })
/// .unwrap();
/// ```
pub fn set_immediate(cb: impl FnOnce() + 'static) -> Immediate {
    with_current(|inner: &Rc<LoopState>| {
        let id = inner.immediates.borrow_mut().push(Box::new(cb));
        log::trace!("queue immediate #{id}");
        Immediate {
            inner: Rc::downgrade(inner),
            id,
        }
    })
}

/// Cancels an immediate (Node's `clearImmediate`).
///
/// ```
/// evloop::run(|| {
///     let i = evloop::set_immediate(|| unreachable!());
///     evloop::clear_immediate(&i);
///     assert!(!i.is_pending());
/// })
/// .unwrap();
/// ```
pub fn clear_immediate(immediate: &Immediate) {
    immediate.clear()
}
