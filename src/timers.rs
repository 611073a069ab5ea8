//! Timers: `set_timeout`, `set_interval`, and the heap that orders them.
//!
//! The functions are also at the crate root (`evloop::set_timeout`, as
//! Node's are global); [`delay`] is the promise form.
//!
//! # Data structure
//!
//! Each timer lives in a [`Slab`] slot (its callback, delay and flags); an
//! *indexed* binary min-heap of small `(deadline, seq, key)` entries orders
//! the armed ones. A dense side table remembers each key's position in the
//! heap, so cancelling is a true O(log n) removal: nothing is left behind to be
//! skipped later, so schedule/cancel churn cannot grow the heap (the bug
//! calloop#238 had with lazy deletion).
//!
//! The heap is 4-ary: a node's four children share one 64-byte cache line,
//! and the tree is half as deep as a binary one, which matters when a
//! million timers fire in a second. Positions live in their own `Vec<u32>`
//! rather than in the 40-byte slots, so the position updates a sift makes
//! touch a compact array instead of scattered slots.
//!
//! A pending timer costs one heap entry (16 bytes), one slot (40 bytes) and
//! one position (4 bytes). The slot holds the closure itself when its
//! captures fit in 16 bytes (two pointers, e.g. two `Rc`s), with no
//! allocation of its own; a bigger one is boxed (`InlineFn`).
//!
//! # Semantics (Node's)
//!
//! * Deadlines are `now + delay` with `now` read when the timer is created
//!   (Node refreshes libuv's clock in `setTimeout`), so a timer never fires
//!   early.
//! * Equal deadlines fire in the order they were armed (`seq`).
//! * A delay below 1 ms is clamped to 1 ms, as in Node. A delay too large for
//!   the clock saturates to "never" (Node would clamp to 1 ms; a Rust
//!   `Duration` is deliberate, so we honour it). A ref'd "never" timer keeps
//!   the loop alive until it is cleared.
//! * A timer cleared while it is already due in the current timers pass does
//!   not run: the pass pops one timer at a time, it never pre-collects.
//! * An interval is re-armed *after* its callback, `delay` from the moment
//!   the callback returned: after a stall it runs once, not once per missed
//!   period.
//! * Dropping a [`Timeout`] does not cancel it (fire and forget, like
//!   ignoring Node's return value). A fired timeout whose handle is still
//!   alive keeps its callback so that [`Timeout::refresh`] can re-arm it.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use slab::Slab;

use crate::event_loop::{with_current, Inner};
use crate::inline_fn::InlineFn;

/// A promise fulfilled after a delay (Node's `timers/promises`
/// `setTimeout`); it lives in the promise layer.
pub use crate::promise::delay;

/// Position value meaning "not in the heap".
const NOT_ARMED: u32 = u32::MAX;

/// An emptied timer store larger than this many slots gives its memory
/// back (see `TimerHeap::remove_slot`); smaller ones keep it for reuse.
const SHRINK_ABOVE: usize = 1024;

/// Children per heap node: four 16-byte entries fill one cache line.
const ARITY: usize = 4;

/// The smallest delay, as in Node: `setTimeout(f, 0)` means 1 ms.
pub(crate) const MIN_DELAY: Duration = Duration::from_millis(1);

/// One entry of the heap. Ordered by `(deadline, seq)`; `seq` compares with
/// serial-number arithmetic so it may wrap.
#[derive(Clone, Copy, Debug)]
struct HeapEntry {
    /// Nanoseconds since the loop's epoch; `u64::MAX` means never.
    deadline: u64,
    seq: u32,
    key: u32,
}

impl HeapEntry {
    #[inline]
    fn before(&self, other: &HeapEntry) -> bool {
        self.deadline < other.deadline
            || (self.deadline == other.deadline && (self.seq.wrapping_sub(other.seq) as i32) < 0)
    }
}

/// A timer's slot in the slab.
struct TimerSlot {
    /// Taken out while the callback runs ("take, then call").
    cb: Option<InlineFn>,
    delay_ns: u64,
    gen: u32,
    /// An interval (re-armed after each call). A `bool` rather than a flag:
    /// its invalid values are the niche that keeps `Option<TimerSlot>` (and
    /// the slab's entry) at 40 bytes.
    repeat: bool,
    /// `REFED`, `HANDLE_ALIVE`, `RUNNING`, `CLEARED`: one byte, so that the
    /// slot stays 40 bytes.
    flags: u8,
}

/// Keeps the loop alive while armed.
const REFED: u8 = 2;
/// A `Timeout`/`Interval` handle still exists for this slot.
const HANDLE_ALIVE: u8 = 4;
/// Its callback is running right now.
const RUNNING: u8 = 8;
/// Cleared while running: free the slot when the callback returns.
const CLEARED: u8 = 16;

impl TimerSlot {
    #[inline]
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    #[inline]
    fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// What the timers phase gets when it pops a due timer.
pub(crate) struct DueTimer {
    pub(crate) key: u32,
    pub(crate) gen: u32,
    pub(crate) cb: InlineFn,
}

/// The timer store: a slab of timers and an indexed heap of the armed ones.
#[derive(Default)]
pub(crate) struct TimerHeap {
    slots: Slab<TimerSlot>,
    heap: Vec<HeapEntry>,
    /// Heap index of each slab key, or `NOT_ARMED`.
    positions: Vec<u32>,
    next_seq: u32,
    next_gen: u32,
    /// Armed timers that are ref'd: they keep the loop alive.
    refed_armed: usize,
}

/// A user closure taken out of the store, to be dropped by the caller once
/// no borrow is held (its captures may own handles whose `Drop` re-enters).
pub(crate) type Garbage = Option<InlineFn>;

impl TimerHeap {
    /// Adds and arms a timer; returns its slot key and generation.
    pub(crate) fn insert(
        &mut self,
        cb: InlineFn,
        delay: Duration,
        repeat: bool,
        now_ns: u64,
    ) -> (u32, u32) {
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        let delay_ns = duration_to_ns(delay.max(MIN_DELAY));
        let key = self.slots.insert(TimerSlot {
            cb: Some(cb),
            delay_ns,
            gen,
            repeat,
            flags: REFED | HANDLE_ALIVE,
        });
        let key = u32::try_from(key).expect("more than 4 billion live timers");
        if self.positions.len() <= key as usize {
            let len = self.slots.capacity().max(key as usize + 1);
            self.positions.resize(len, NOT_ARMED);
        }
        self.arm(key, now_ns.saturating_add(delay_ns));
        (key, gen)
    }

    /// Frees slot `key`. When that empties the store, its memory goes back
    /// too: a burst of a million timers would otherwise leave ~60 MB of
    /// slab, heap and position capacity behind for the life of the loop
    /// (found by the reliability test T09). Handles of freed timers stay
    /// harmless: their generation no longer matches any slot.
    fn remove_slot(&mut self, key: u32) -> TimerSlot {
        let slot = self.slots.remove(key as usize);
        if self.slots.is_empty() && self.slots.capacity() > SHRINK_ABOVE {
            debug_assert!(self.heap.is_empty());
            self.slots = Slab::new();
            self.heap = Vec::new();
            self.positions = Vec::new();
        }
        slot
    }

    fn slot(&self, key: u32, gen: u32) -> Option<&TimerSlot> {
        self.slots.get(key as usize).filter(|s| s.gen == gen)
    }

    fn slot_mut(&mut self, key: u32, gen: u32) -> Option<&mut TimerSlot> {
        self.slots.get_mut(key as usize).filter(|s| s.gen == gen)
    }

    /// Whether the timer in slot `key` (which must exist) is in the heap.
    #[inline]
    fn armed_key(&self, key: u32) -> bool {
        self.positions[key as usize] != NOT_ARMED
    }

    /// Number of timers in the heap.
    pub(crate) fn armed(&self) -> usize {
        self.heap.len()
    }

    /// Whether armed, ref'd timers keep the loop alive.
    pub(crate) fn has_refed(&self) -> bool {
        self.refed_armed > 0
    }

    /// The earliest deadline, if any timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.heap.first().map(|e| e.deadline)
    }

    /// Removes the earliest timer if it is due at `now_ns` and takes its
    /// callback out. A "never" deadline is never due.
    pub(crate) fn pop_due(&mut self, now_ns: u64) -> Option<DueTimer> {
        let top = *self.heap.first()?;
        if top.deadline > now_ns || top.deadline == u64::MAX {
            return None;
        }
        self.disarm(top.key);
        let slot = &mut self.slots[top.key as usize];
        slot.set(RUNNING, true);
        let cb = slot.cb.take().expect("armed timer without a callback");
        Some(DueTimer {
            key: top.key,
            gen: slot.gen,
            cb,
        })
    }

    /// Called after a due timer's callback returned: puts the callback back,
    /// re-arms an interval, or frees the slot. Returns the closure if it is
    /// to be dropped.
    pub(crate) fn finish(&mut self, due: DueTimer, now_ns: impl FnOnce() -> u64) -> Garbage {
        let armed = self.slots.contains(due.key as usize) && self.armed_key(due.key);
        let Some(slot) = self.slot_mut(due.key, due.gen) else {
            return Some(due.cb);
        };
        slot.set(RUNNING, false);
        // A cleared timer was disarmed by `clear`, so dropping it is all.
        let keep = !slot.has(CLEARED) && (slot.repeat || slot.has(HANDLE_ALIVE) || armed);
        if !keep {
            self.remove_slot(due.key);
            return Some(due.cb);
        }
        slot.cb = Some(due.cb);
        // An interval re-arms from now, unless its callback refreshed it.
        if slot.repeat && !armed {
            let deadline = now_ns().saturating_add(slot.delay_ns);
            self.arm(due.key, deadline);
        }
        None
    }

    /// Cancels a timer (`clearTimeout`): never runs again, slot freed.
    pub(crate) fn clear(&mut self, key: u32, gen: u32) -> Garbage {
        let slot = self.slot_mut(key, gen)?;
        let running = slot.has(RUNNING);
        if running {
            // Its callback is on the stack: `finish` frees the slot.
            slot.set(CLEARED, true);
        }
        if self.armed_key(key) {
            self.disarm(key);
        }
        if running {
            return None;
        }
        self.remove_slot(key).cb
    }

    /// The handle was dropped: free the slot unless the timer is still armed
    /// (fire and forget) or running.
    pub(crate) fn handle_dropped(&mut self, key: u32, gen: u32) -> Garbage {
        let armed = self.slots.contains(key as usize) && self.armed_key(key);
        let slot = self.slot_mut(key, gen)?;
        slot.set(HANDLE_ALIVE, false);
        if !armed && !slot.has(RUNNING) && !slot.repeat {
            return self.remove_slot(key).cb;
        }
        None
    }

    /// Re-arms from `now_ns` with the same delay, behind any timer with the
    /// same deadline. Works on a fired timeout too. Returns false if the
    /// timer was cleared.
    pub(crate) fn refresh(&mut self, key: u32, gen: u32, now_ns: u64) -> bool {
        let Some(slot) = self.slot_mut(key, gen) else {
            return false;
        };
        if slot.has(CLEARED) {
            return false;
        }
        let deadline = now_ns.saturating_add(slot.delay_ns);
        if self.armed_key(key) {
            self.disarm(key);
        }
        self.arm(key, deadline);
        true
    }

    pub(crate) fn set_ref(&mut self, key: u32, gen: u32, refed: bool) {
        let Some(slot) = self.slot_mut(key, gen) else {
            return;
        };
        if slot.has(REFED) == refed {
            return;
        }
        slot.set(REFED, refed);
        if self.armed_key(key) {
            if refed {
                self.refed_armed += 1;
            } else {
                self.refed_armed -= 1;
            }
        }
    }

    pub(crate) fn has_ref(&self, key: u32, gen: u32) -> bool {
        self.slot(key, gen).is_some_and(|s| s.has(REFED))
    }

    pub(crate) fn is_armed(&self, key: u32, gen: u32) -> bool {
        self.slot(key, gen).is_some() && self.armed_key(key)
    }

    /// Armed timers for introspection: `(repeat, delay, refed, deadline)`.
    pub(crate) fn describe(&self) -> impl Iterator<Item = (bool, Duration, bool, u64)> + '_ {
        self.heap.iter().map(|e| {
            let s = &self.slots[e.key as usize];
            (
                s.repeat,
                Duration::from_nanos(s.delay_ns),
                s.has(REFED),
                e.deadline,
            )
        })
    }

    /// Every stored closure, to be dropped when the loop goes away.
    pub(crate) fn drain_all(&mut self) -> Vec<InlineFn> {
        self.heap.clear();
        self.positions.clear();
        self.refed_armed = 0;
        self.slots.drain().filter_map(|s| s.cb).collect()
    }

    // ---- the indexed 4-ary heap ----

    #[inline]
    fn place(&mut self, pos: usize, entry: HeapEntry) {
        self.heap[pos] = entry;
        self.positions[entry.key as usize] = pos as u32;
    }

    fn arm(&mut self, key: u32, deadline: u64) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let pos = self.heap.len();
        self.heap.push(HeapEntry { deadline, seq, key });
        self.positions[key as usize] = pos as u32;
        if self.slots[key as usize].has(REFED) {
            self.refed_armed += 1;
        }
        self.sift_up(pos);
    }

    fn disarm(&mut self, key: u32) {
        let pos = self.positions[key as usize] as usize;
        self.positions[key as usize] = NOT_ARMED;
        if self.slots[key as usize].has(REFED) {
            self.refed_armed -= 1;
        }
        let last = self.heap.pop().expect("an armed timer is in the heap");
        if pos < self.heap.len() {
            // Move the last entry into the hole; it may belong above or below.
            self.place(pos, last);
            if pos > 0 && last.before(&self.heap[(pos - 1) / ARITY]) {
                self.sift_up(pos);
            } else {
                self.sift_down(pos);
            }
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        let entry = self.heap[pos];
        while pos > 0 {
            let parent = (pos - 1) / ARITY;
            if !entry.before(&self.heap[parent]) {
                break;
            }
            self.place(pos, self.heap[parent]);
            pos = parent;
        }
        self.place(pos, entry);
    }

    fn sift_down(&mut self, mut pos: usize) {
        let entry = self.heap[pos];
        let len = self.heap.len();
        loop {
            let first = ARITY * pos + 1;
            if first >= len {
                break;
            }
            let mut child = first;
            for c in first + 1..(first + ARITY).min(len) {
                if self.heap[c].before(&self.heap[child]) {
                    child = c;
                }
            }
            if !self.heap[child].before(&entry) {
                break;
            }
            self.place(pos, self.heap[child]);
            pos = child;
        }
        self.place(pos, entry);
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        for (i, e) in self.heap.iter().enumerate() {
            assert_eq!(self.positions[e.key as usize] as usize, i);
            if i > 0 {
                assert!(!e.before(&self.heap[(i - 1) / ARITY]));
            }
        }
        let refed = self
            .heap
            .iter()
            .filter(|e| self.slots[e.key as usize].has(REFED))
            .count();
        assert_eq!(refed, self.refed_armed);
    }
}

/// Converts a duration to nanoseconds, saturating at "never".
pub(crate) fn duration_to_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// The public API: handles and free functions.
// ---------------------------------------------------------------------------

/// A handle to a timer created by [`set_timeout`]; Node's `Timeout`.
///
/// Dropping the handle does **not** cancel the timer. While the handle
/// exists, a timeout that already fired can be re-armed with
/// [`refresh`](Timeout::refresh).
pub struct Timeout {
    timer: TimerRef,
}

/// A handle to a repeating timer created by [`set_interval`]; Node's
/// `Timeout` returned by `setInterval`.
///
/// Dropping the handle does **not** stop the interval; call
/// [`clear`](Interval::clear) (or [`clear_interval`]).
pub struct Interval {
    timer: TimerRef,
}

/// What the two handle types share: a weak link to the loop and a
/// generation-checked slot key.
struct TimerRef {
    inner: Weak<Inner>,
    key: u32,
    gen: u32,
}

impl TimerRef {
    fn with<R>(&self, f: impl FnOnce(&Inner, &RefCell<TimerHeap>) -> R) -> Option<R> {
        let inner = self.inner.upgrade()?;
        Some(f(&inner, &inner.timers))
    }

    fn clear(&self) {
        let garbage = self.with(|_, t| t.borrow_mut().clear(self.key, self.gen));
        drop(garbage);
    }

    fn refresh(&self) -> bool {
        self.with(|inner, t| {
            let now = inner.update_now_ns();
            t.borrow_mut().refresh(self.key, self.gen, now)
        })
        .unwrap_or(false)
    }

    fn set_ref(&self, refed: bool) {
        self.with(|_, t| t.borrow_mut().set_ref(self.key, self.gen, refed));
    }

    fn has_ref(&self) -> bool {
        self.with(|_, t| t.borrow().has_ref(self.key, self.gen))
            .unwrap_or(false)
    }

    fn is_armed(&self) -> bool {
        self.with(|_, t| t.borrow().is_armed(self.key, self.gen))
            .unwrap_or(false)
    }
}

impl Drop for TimerRef {
    fn drop(&mut self) {
        let garbage = self.with(|_, t| t.borrow_mut().handle_dropped(self.key, self.gen));
        drop(garbage);
    }
}

impl Timeout {
    /// Cancels the timeout (Node's `clearTimeout`). Clearing a timeout that
    /// already fired, or twice, does nothing.
    pub fn clear(&self) {
        self.timer.clear()
    }

    /// Restarts the timer from now with its original delay (Node's
    /// `timeout.refresh()`); re-arms it if it already fired. Returns `false`
    /// if it was cleared or its loop is gone.
    pub fn refresh(&self) -> bool {
        self.timer.refresh()
    }

    /// Lets the loop exit even though this timer is pending (`timeout.unref()`).
    pub fn unref(&self) -> &Self {
        self.timer.set_ref(false);
        self
    }

    /// Makes this timer keep the loop alive again (`timeout.ref()`); a flag,
    /// not a counter.
    pub fn ref_(&self) -> &Self {
        self.timer.set_ref(true);
        self
    }

    /// Whether the timer keeps the loop alive when armed (`timeout.hasRef()`).
    pub fn has_ref(&self) -> bool {
        self.timer.has_ref()
    }

    /// Whether the timer is armed (scheduled to fire).
    pub fn is_pending(&self) -> bool {
        self.timer.is_armed()
    }
}

impl Interval {
    /// Stops the interval (Node's `clearInterval`). Safe from inside its own
    /// callback.
    pub fn clear(&self) {
        self.timer.clear()
    }

    /// Restarts the period from now.
    pub fn refresh(&self) -> bool {
        self.timer.refresh()
    }

    /// Lets the loop exit even though this interval is active.
    pub fn unref(&self) -> &Self {
        self.timer.set_ref(false);
        self
    }

    /// Makes this interval keep the loop alive again.
    pub fn ref_(&self) -> &Self {
        self.timer.set_ref(true);
        self
    }

    /// Whether the interval keeps the loop alive.
    pub fn has_ref(&self) -> bool {
        self.timer.has_ref()
    }

    /// Whether the interval is still active.
    pub fn is_pending(&self) -> bool {
        self.timer.is_armed()
    }
}

impl std::fmt::Debug for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout")
            .field("key", &self.timer.key)
            .field("pending", &self.is_pending())
            .finish()
    }
}

impl std::fmt::Debug for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interval")
            .field("key", &self.timer.key)
            .field("pending", &self.is_pending())
            .finish()
    }
}

fn add_timer(cb: InlineFn, delay: Duration, repeat: bool) -> TimerRef {
    with_current(|inner: &Rc<Inner>| {
        let now = inner.update_now_ns();
        let (key, gen) = inner.timers.borrow_mut().insert(cb, delay, repeat, now);
        log::trace!(
            "arm {} #{key} in {delay:?}",
            if repeat { "interval" } else { "timeout" }
        );
        TimerRef {
            inner: Rc::downgrade(inner),
            key,
            gen,
        }
    })
}

/// Runs `cb` once after `delay` (Node's `setTimeout`). A delay under 1 ms
/// counts as 1 ms.
///
/// # Panics
/// If no event loop is current on this thread (see [`crate::run`]).
///
/// ```
/// use std::time::Duration;
/// evloop::run(|| {
///     let _ = evloop::set_timeout(Duration::from_millis(5), || println!("later"));
/// })
/// .unwrap();
/// ```
pub fn set_timeout(delay: Duration, cb: impl FnOnce() + 'static) -> Timeout {
    // A timeout's callback is kept after firing so `refresh` can re-arm it;
    // Node calls the same function again, but a `FnOnce` cannot run twice:
    // after its first call the stored callback is empty and a refreshed
    // timeout fires with nothing to run.
    Timeout {
        timer: add_timer(InlineFn::new_once(cb), delay, false),
    }
}

/// Like [`set_timeout`] with a callback that can run again after
/// [`Timeout::refresh`], as Node's does.
pub fn set_timeout_mut(delay: Duration, cb: impl FnMut() + 'static) -> Timeout {
    Timeout {
        timer: add_timer(InlineFn::new_mut(cb), delay, false),
    }
}

/// Runs `cb` every `period` until cleared (Node's `setInterval`).
///
/// # Panics
/// If no event loop is current on this thread.
pub fn set_interval(period: Duration, cb: impl FnMut() + 'static) -> Interval {
    Interval {
        timer: add_timer(InlineFn::new_mut(cb), period, true),
    }
}

/// Cancels a timeout (Node's `clearTimeout`).
pub fn clear_timeout(timeout: &Timeout) {
    timeout.clear()
}

/// Stops an interval (Node's `clearInterval`).
pub fn clear_interval(interval: &Interval) {
    interval.clear()
}

/// Bytes the loop's own structures hold per pending timer (its slab slot,
/// heap entry and position), closure included when it is stored inline
/// (captures of at most 16 bytes); reported by the benchmarks.
#[doc(hidden)]
pub const TIMER_OVERHEAD_BYTES: usize = std::mem::size_of::<Option<TimerSlot>>()
    + std::mem::size_of::<HeapEntry>()
    + std::mem::size_of::<u32>();
// The issue's budget: at most 64 bytes of loop structures per pending timer.
const _: () = assert!(TIMER_OVERHEAD_BYTES <= 64);

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> InlineFn {
        InlineFn::new_mut(|| {})
    }

    #[test]
    fn pops_in_deadline_then_insertion_order() {
        let mut h = TimerHeap::default();
        let d = |ms| Duration::from_millis(ms);
        let a = h.insert(noop(), d(5), false, 0);
        let b = h.insert(noop(), d(3), false, 0);
        let c = h.insert(noop(), d(5), false, 0);
        let e = h.insert(noop(), d(3), false, 0);
        h.check_invariants();
        let mut order = vec![];
        while let Some(due) = h.pop_due(u64::MAX - 1) {
            order.push((due.key, due.gen));
            drop(h.finish(due, || 0));
            h.check_invariants();
        }
        assert_eq!(order, vec![b, e, a, c]);
    }

    #[test]
    fn cancel_anywhere_keeps_heap_valid() {
        let mut h = TimerHeap::default();
        let mut ids = vec![];
        let mut x: u64 = 12345;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ids.push(h.insert(noop(), Duration::from_micros(x % 1_000_000), false, 0));
        }
        for (i, (k, g)) in ids.iter().enumerate() {
            if i % 2 == 0 {
                assert!(h.clear(*k, *g).is_some());
                assert!(h.clear(*k, *g).is_none(), "double clear is a no-op");
            }
        }
        h.check_invariants();
        assert_eq!(h.armed(), 1000);
        let mut last = 0;
        let mut n = 0;
        while let Some(due) = h.pop_due(u64::MAX - 1) {
            let dl = h.slots[due.key as usize].delay_ns;
            assert!(dl >= last);
            last = dl;
            n += 1;
            drop(h.finish(due, || 0));
        }
        assert_eq!(n, 1000);
        // Dropped handles free the fired slots.
        for (k, g) in ids {
            drop(h.handle_dropped(k, g));
        }
        assert!(h.slots.is_empty());
    }

    /// Counts its drops.
    struct Tracker(Rc<std::cell::Cell<usize>>);
    impl Drop for Tracker {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    /// Every way a timer's closure goes away drops its captures exactly
    /// once: fired, cleared, never fired (loop dropped), panicking; small
    /// (inline) and big (boxed) closures alike.
    #[test]
    fn captures_dropped_exactly_once() {
        let drops = Rc::new(std::cell::Cell::new(0));
        let t = || Tracker(drops.clone());
        let el = crate::EventLoop::new().unwrap();
        let g = el.enter();
        let (a, b, c) = (t(), t(), t());
        drop(set_timeout(MIN_DELAY, move || drop(a)));
        let big = [7u8; 64];
        drop(set_timeout(MIN_DELAY, move || drop((b, big))));
        // A fired timeout whose handle lives: its `FnOnce` is consumed.
        let kept = set_timeout(MIN_DELAY, move || drop(c));
        let d = t();
        set_timeout(MIN_DELAY, move || drop(d)).clear();
        assert_eq!(drops.get(), 1, "cleared: dropped at once");
        let (e, e2) = (t(), t());
        let mut_kept = set_timeout_mut(MIN_DELAY, move || {
            let _ = &e;
        });
        let interval = Rc::new(RefCell::new(None::<Interval>));
        let i2 = interval.clone();
        *interval.borrow_mut() = Some(set_interval(MIN_DELAY, move || {
            let _ = &e2;
            i2.borrow().as_ref().unwrap().clear();
        }));
        let f = t();
        set_timeout(Duration::from_secs(3600), move || drop(f)).unref();
        drop(g);
        el.run().unwrap();
        // a, b, c fired, d cleared, e2's interval cleared itself.
        assert_eq!(drops.get(), 5);
        assert!(kept.refresh(), "a fired timeout can be refreshed");
        el.run().unwrap();
        assert_eq!(drops.get(), 5, "its consumed callback does not run twice");
        drop((kept, mut_kept, interval));
        assert_eq!(drops.get(), 6, "a fired FnMut timeout kept for refresh");
        drop(el);
        assert_eq!(drops.get(), 7, "never fired: dropped with the loop");

        // A panicking callback drops its captures once, the loop reports it.
        let el = crate::EventLoop::new().unwrap();
        let g = el.enter();
        let (p, q) = (t(), t());
        drop(set_timeout(MIN_DELAY, move || {
            let _p = p;
            panic!("boom (expected by the test)");
        }));
        let big = [0u8; 64];
        drop(set_interval(MIN_DELAY, move || {
            let _ = (&q, big);
            panic!("boom (expected by the test)");
        }));
        drop(g);
        assert!(el.run().is_err());
        drop(el);
        assert_eq!(drops.get(), 9);
    }

    #[test]
    fn never_deadline_is_not_due() {
        let mut h = TimerHeap::default();
        h.insert(noop(), Duration::MAX, false, 10);
        assert_eq!(h.next_deadline(), Some(u64::MAX));
        assert!(h.pop_due(u64::MAX).is_none());
        assert!(h.has_refed());
    }
}
