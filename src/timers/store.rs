//! The timer store: the slots and the indexed 4-ary min-heap that orders
//! the armed timers (see the module docs of `timers` for the design and
//! the semantics it implements).

use std::time::Duration;

use super::slots::{Slots, TimerSlot, CLEARED, HANDLE_ALIVE, NOT_ARMED, REFED, RUNNING};
use super::{Kind, MIN_DELAY};
use crate::event_loop::duration_to_ns;
use crate::inline_fn::InlineFn;

/// An emptied timer store larger than this many slots gives its memory
/// back (see `TimerStore::remove_slot`); smaller ones keep it for reuse.
const SHRINK_ABOVE: usize = 1024;

/// Children per heap node: four 16-byte entries, 64 bytes. The root is at
/// index 0 and the vector is not line-aligned, so a node's children
/// usually straddle two cache lines.
const ARITY: usize = 4;

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

/// What the timers phase gets when it pops a due timer.
pub(crate) struct DueTimer {
    pub(crate) key: u32,
    pub(crate) gen: u32,
    pub(crate) cb: InlineFn,
    /// An interval: the phase reads the clock before its callback, where
    /// it re-arms from (Node's `start = getLibuvNow()`).
    pub(crate) repeat: bool,
}

/// `TimerStore::interval_delay` when no interval's callback is running.
const NO_INTERVAL: u64 = u64::MAX;

/// The timer store: a slab of timers and an indexed heap of the armed ones.
pub(crate) struct TimerStore {
    /// The timers, with each one's heap position.
    slots: Slots,
    heap: Vec<HeapEntry>,
    next_seq: u32,
    next_gen: u32,
    /// Armed timers that are ref'd: they keep the loop alive.
    refed_armed: usize,
    /// While an interval's callback runs: its delay ([`NO_INTERVAL`]
    /// otherwise), and the latest deadline of the timers of that same
    /// delay armed meanwhile. Node keeps a list per delay and re-inserts
    /// the interval at its end, after those timers: it runs after them
    /// even though it re-arms from the moment its callback started.
    interval_delay: u64,
    interval_after: u64,
}

impl Default for TimerStore {
    fn default() -> TimerStore {
        TimerStore {
            slots: Slots::default(),
            heap: Vec::new(),
            next_seq: 0,
            next_gen: 0,
            refed_armed: 0,
            interval_delay: NO_INTERVAL,
            interval_after: 0,
        }
    }
}

/// A user closure taken out of the store, to be dropped by the caller once
/// no borrow is held (its captures may own handles whose `Drop` re-enters).
pub(crate) type Garbage = Option<InlineFn>;

impl TimerStore {
    /// Adds and arms a timer; returns its slot key and generation.
    pub(crate) fn insert(
        &mut self,
        cb: InlineFn,
        delay: Duration,
        kind: Kind,
        now_ns: u64,
    ) -> (u32, u32) {
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        let delay_ns = delay_to_ns(delay);
        let key = self.slots.insert(TimerSlot::new(cb, delay_ns, gen, kind));
        // A new timer is ref'd.
        self.refed_armed += 1;
        let deadline = now_ns.saturating_add(delay_ns);
        self.note_same_delay(delay_ns, deadline);
        self.push(key, deadline);
        (key, gen)
    }

    /// Records a timer armed with the running interval's delay (see
    /// `interval_delay`).
    #[inline]
    fn note_same_delay(&mut self, delay_ns: u64, deadline: u64) {
        if delay_ns == self.interval_delay {
            self.interval_after = self.interval_after.max(deadline);
        }
    }

    /// Frees slot `key`. When that empties the store, its memory goes back
    /// too: a burst of a million timers would otherwise leave ~60 MB of
    /// slab, heap and position capacity behind for the life of the loop
    /// (found by the reliability test T09). Handles of freed timers stay
    /// harmless: their generation no longer matches any slot.
    fn remove_slot(&mut self, key: u32) -> TimerSlot {
        let slot = self.slots.remove(key);
        if self.slots.len() == 0 && self.slots.capacity() > SHRINK_ABOVE {
            debug_assert!(self.heap.is_empty());
            self.slots.release();
            self.heap = Vec::new();
        }
        slot
    }

    fn slot(&self, key: u32, gen: u32) -> Option<&TimerSlot> {
        self.slots.get(key).filter(|s| s.gen == gen)
    }

    fn slot_mut(&mut self, key: u32, gen: u32) -> Option<&mut TimerSlot> {
        self.slots.get_mut(key).filter(|s| s.gen == gen)
    }

    /// Whether the timer in slot `key` (which must exist) is in the heap.
    #[inline]
    fn armed_key(&self, key: u32) -> bool {
        self.slots.position(key) != NOT_ARMED
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
        let slot = self.slots.at_mut(top.key);
        slot.set(RUNNING, true);
        let cb = slot.cb.take().expect("armed timer without a callback");
        let repeat = slot.repeat;
        let gen = slot.gen;
        if repeat {
            self.interval_delay = slot.delay_ns;
            self.interval_after = 0;
        }
        Some(DueTimer {
            key: top.key,
            gen,
            cb,
            repeat,
        })
    }

    /// The delay of the timer in slot `key` (one being fired).
    pub(crate) fn delay_of(&self, key: u32) -> u64 {
        self.slots.at(key).delay_ns
    }

    /// The delay of the next due timer, if one is due at `now_ns`: Node
    /// groups timers by delay in lists, which matters after a throw.
    pub(crate) fn due_delay(&self, now_ns: u64) -> Option<u64> {
        let top = self.heap.first()?;
        (top.deadline <= now_ns).then(|| self.slots.at(top.key).delay_ns)
    }

    /// Called after a due timer's callback returned: puts the callback back,
    /// re-arms an interval, or frees the slot. Returns the closure if it is
    /// to be dropped. `start_ns`: for an interval, the time its callback
    /// started (Node re-arms from there, not from its return).
    pub(crate) fn finish(&mut self, due: DueTimer, start_ns: u64) -> Garbage {
        // Timers armed from here on go after the interval, as in Node.
        let after = std::mem::replace(&mut self.interval_delay, NO_INTERVAL);
        let after = if after == NO_INTERVAL {
            0
        } else {
            self.interval_after
        };
        let armed = self.slots.get(due.key).is_some() && self.armed_key(due.key);
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
        // An interval re-arms from its callback's start, unless the
        // callback refreshed it, and no earlier than the timers of its
        // delay armed meanwhile (they come first in Node's list; ties go by
        // arming order, so it runs after them).
        if slot.repeat && !armed {
            let deadline = start_ns.saturating_add(slot.delay_ns).max(after);
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

    /// The handle of a `Kind::Refreshable` timer was dropped: free the slot
    /// unless the timer is still armed (fire and forget) or running.
    pub(crate) fn handle_dropped(&mut self, key: u32, gen: u32) -> Garbage {
        let slot = self.slot_mut(key, gen)?;
        slot.set(HANDLE_ALIVE, false);
        if slot.has(RUNNING) || slot.repeat || self.armed_key(key) {
            return None;
        }
        self.remove_slot(key).cb
    }

    /// Re-arms from `now_ns` with the same delay, behind any timer with the
    /// same deadline. Works on a fired `Kind::Refreshable` timeout too (a
    /// fired `Kind::Once` one is gone). Returns false if the timer was
    /// cleared, or is a `Kind::Once` whose callback is running.
    pub(crate) fn refresh(&mut self, key: u32, gen: u32, now_ns: u64) -> bool {
        let Some(slot) = self.slot_mut(key, gen) else {
            return false;
        };
        // A `Kind::Once` timer (not an interval, no handle keeping it)
        // whose `FnOnce` is running has nothing left to run again.
        let once_spent = slot.has(RUNNING) && !slot.repeat && !slot.has(HANDLE_ALIVE);
        if slot.has(CLEARED) || once_spent {
            return false;
        }
        let delay_ns = slot.delay_ns;
        let deadline = now_ns.saturating_add(delay_ns);
        if self.armed_key(key) {
            self.disarm(key);
        }
        self.note_same_delay(delay_ns, deadline);
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
            let s = self.slots.at(e.key);
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
        self.refed_armed = 0;
        self.slots.drain()
    }

    // ---- the indexed 4-ary heap ----

    #[inline]
    fn place(&mut self, pos: usize, entry: HeapEntry) {
        self.heap[pos] = entry;
        self.slots.set_position(entry.key, pos as u32);
    }

    /// Arms the (disarmed) timer in slot `key`.
    fn arm(&mut self, key: u32, deadline: u64) {
        if self.slots.at(key).has(REFED) {
            self.refed_armed += 1;
        }
        self.push(key, deadline);
    }

    /// Adds `key` to the heap; `refed_armed` is the caller's.
    #[inline]
    fn push(&mut self, key: u32, deadline: u64) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let pos = self.heap.len();
        if pos == self.heap.capacity() {
            self.heap.reserve_exact(heap_growth(pos));
        }
        self.heap.push(HeapEntry { deadline, seq, key });
        self.sift_up(pos);
    }

    fn disarm(&mut self, key: u32) {
        let pos = self.slots.position(key) as usize;
        self.slots.set_position(key, NOT_ARMED);
        if self.slots.at(key).has(REFED) {
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

    #[inline]
    fn sift_up(&mut self, mut pos: usize) {
        // The slice ends at `pos`, so the compiler sees every parent index
        // in bounds (the arm path had a bounds check per level).
        let heap = &mut self.heap[..=pos];
        let entry = heap[pos];
        while pos > 0 {
            let parent = (pos - 1) / ARITY;
            let above = heap[parent];
            if !entry.before(&above) {
                break;
            }
            heap[pos] = above;
            self.slots.set_position(above.key, pos as u32);
            pos = parent;
        }
        heap[pos] = entry;
        self.slots.set_position(entry.key, pos as u32);
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
            assert_eq!(self.slots.position(e.key) as usize, i);
            if i > 0 {
                assert!(!e.before(&self.heap[(i - 1) / ARITY]));
            }
        }
        let refed = self
            .heap
            .iter()
            .filter(|e| self.slots.at(e.key).has(REFED))
            .count();
        assert_eq!(refed, self.refed_armed);
    }
}

/// A timer's delay in nanoseconds: at least `MIN_DELAY`; a delay over
/// [`TIMEOUT_MAX`](super::TIMEOUT_MAX) becomes `MIN_DELAY`, with a warning,
/// as in Node.
#[inline]
fn delay_to_ns(delay: Duration) -> u64 {
    let ns = duration_to_ns(delay);
    if ns > super::TIMEOUT_MAX.as_nanos() as u64 {
        return overflowed(delay);
    }
    ns.max(MIN_DELAY.as_nanos() as u64)
}

/// Node's `TimeoutOverflowWarning`: the delay does not fit, the timer fires
/// after 1 ms, and stderr says so (each time, as Node's warning does).
#[cold]
#[inline(never)]
fn overflowed(delay: Duration) -> u64 {
    log::warn!("timer delay {delay:?} is over TIMEOUT_MAX: set to 1 ms");
    eprintln!(
        "evloop: TimeoutOverflowWarning: {delay:?} does not fit into a 32-bit signed \
         integer of milliseconds (TIMEOUT_MAX, about 24.8 days). \
         Timeout duration was set to 1 ms."
    );
    MIN_DELAY.as_nanos() as u64
}

/// How much to grow the heap when it is full: double while small, then by
/// a quarter, so that at most a fifth of its memory is spare capacity
/// (doubling left up to half; the copies a realloc makes cost about four
/// 16-byte moves per timer).
fn heap_growth(len: usize) -> usize {
    if len < 4096 {
        len.max(16)
    } else {
        len / 4
    }
}

/// Bytes of the store's own structures per pending timer: its slot (with
/// the closure when it is stored inline), heap entry and position.
pub(super) const BYTES_PER_TIMER: usize = std::mem::size_of::<TimerSlot>()
    + std::mem::size_of::<HeapEntry>()
    + std::mem::size_of::<u32>();

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> InlineFn {
        InlineFn::new_mut(|| {})
    }

    #[test]
    fn pops_in_deadline_then_insertion_order() {
        let mut h = TimerStore::default();
        let d = |ms| Duration::from_millis(ms);
        let a = h.insert(noop(), d(5), Kind::Refreshable, 0);
        let b = h.insert(noop(), d(3), Kind::Refreshable, 0);
        let c = h.insert(noop(), d(5), Kind::Refreshable, 0);
        let e = h.insert(noop(), d(3), Kind::Refreshable, 0);
        h.check_invariants();
        let mut order = vec![];
        while let Some(due) = h.pop_due(u64::MAX - 1) {
            order.push((due.key, due.gen));
            drop(h.finish(due, 0));
            h.check_invariants();
        }
        assert_eq!(order, vec![b, e, a, c]);
    }

    #[test]
    fn cancel_anywhere_keeps_heap_valid() {
        let mut h = TimerStore::default();
        let mut ids = vec![];
        let mut x: u64 = 12345;
        for _ in 0..2000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ids.push(h.insert(
                noop(),
                Duration::from_micros(x % 1_000_000),
                Kind::Refreshable,
                0,
            ));
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
            let dl = h.slots.at(due.key).delay_ns;
            assert!(dl >= last);
            last = dl;
            n += 1;
            drop(h.finish(due, 0));
        }
        assert_eq!(n, 1000);
        // Dropped handles free the fired slots.
        for (k, g) in ids {
            drop(h.handle_dropped(k, g));
        }
        assert_eq!(h.slots.len(), 0);
    }

    #[test]
    fn a_delay_over_timeout_max_becomes_one_ms() {
        let mut h = TimerStore::default();
        let one_ms = MIN_DELAY.as_nanos() as u64;
        h.insert(noop(), Duration::MAX, Kind::Once, 10);
        assert_eq!(h.next_deadline(), Some(10 + one_ms));
        let over = super::super::TIMEOUT_MAX + Duration::from_nanos(1);
        h.insert(noop(), over, Kind::Once, 10);
        h.insert(noop(), super::super::TIMEOUT_MAX, Kind::Once, 10);
        let mut due = 0;
        while h.pop_due(10 + one_ms).is_some() {
            due += 1;
        }
        assert_eq!(due, 2, "MAX and TIMEOUT_MAX + 1 ns fire after 1 ms");
        let max_ns = super::super::TIMEOUT_MAX.as_nanos() as u64;
        assert_eq!(
            h.next_deadline(),
            Some(10 + max_ns),
            "TIMEOUT_MAX itself is kept"
        );
    }
}
