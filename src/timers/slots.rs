//! The timers' slab: slots in fixed-size chunks, each slot's heap position
//! in a parallel chunk.
//!
//! A `Vec` (or the `slab` crate) doubles as it grows, so between two powers
//! of two up to half of its memory is spare capacity: 100,000 pending
//! timers held 131,072 slots, 31% more memory than they used, and every
//! doubling copied all the slots. Chunks of 1024 slots grow linearly: at
//! most one partly used chunk, and a slot never moves once allocated.
//!
//! Each chunk has its own free list, and a new timer takes a slot from the
//! lowest chunk that has one. Timers are freed in deadline order, which is
//! random with respect to their keys, so one store-wide free list hands
//! slots back in random order across the whole slab: every arm then writes
//! a slot on a cold cache line (with 100,000 timers re-armed into a slab
//! that kept its memory, 180 ns of CPU per arm against 130 ns into fresh
//! memory, page faults included). Within one 40 KB chunk the order is
//! still random, but the chunk stays in cache while it fills.
//! Keys stay dense `u32`s, so a heap entry still names its timer in 4
//! bytes, and a key's chunk is `key >> 10`.
//!
//! Positions live in their own chunks, not in the 40-byte slots, so that
//! the position updates a heap sift makes touch a compact array (16 per
//! cache line) instead of scattered slots.

use crate::inline_fn::InlineFn;

/// Position value meaning "not in the heap".
pub(super) const NOT_ARMED: u32 = u32::MAX;

/// 1024 slots per chunk; 16 in the unit tests, so that they (and Miri)
/// cross many chunks cheaply.
const SHIFT: u32 = if cfg!(test) { 4 } else { 10 };
/// Slots per chunk: 40 KB of slots and 4 KB of positions.
pub(super) const CHUNK: usize = 1 << SHIFT;
const MASK: u32 = CHUNK as u32 - 1;

/// End of the free list.
const NONE: u32 = u32::MAX;

/// Keeps the loop alive while armed.
pub(super) const REFED: u8 = 1;
/// A `Timeout`/`Interval` handle still exists for this slot.
pub(super) const HANDLE_ALIVE: u8 = 2;
/// Its callback is running right now.
pub(super) const RUNNING: u8 = 4;
/// Cleared while running: free the slot when the callback returns.
pub(super) const CLEARED: u8 = 8;
/// No timer here: the slot is on the free list.
const VACANT: u8 = 16;

/// A timer's slot: 40 bytes, closure included when it fits inline.
pub(super) struct TimerSlot {
    /// Taken out while the callback runs ("take, then call").
    pub(super) cb: Option<InlineFn>,
    /// The delay, in nanoseconds; in a vacant slot, the next vacant key.
    pub(super) delay_ns: u64,
    pub(super) gen: u32,
    /// An interval (re-armed after each call).
    pub(super) repeat: bool,
    /// `REFED`, `HANDLE_ALIVE`, `RUNNING`, `CLEARED` (and `VACANT`).
    pub(super) flags: u8,
}

impl TimerSlot {
    /// A slot for a new, armed timer.
    pub(super) fn new(cb: InlineFn, delay_ns: u64, gen: u32, repeat: bool) -> Self {
        TimerSlot {
            cb: Some(cb),
            delay_ns,
            gen,
            repeat,
            flags: REFED | HANDLE_ALIVE,
        }
    }

    fn vacant(next: u32) -> Self {
        TimerSlot {
            cb: None,
            delay_ns: u64::from(next),
            gen: 0,
            repeat: false,
            flags: VACANT,
        }
    }

    #[inline]
    pub(super) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    #[inline]
    pub(super) fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }
}

/// The slab: chunks of slots and of positions, and a free list per chunk.
#[derive(Default)]
pub(super) struct Slots {
    // Boxed on purpose: a chunk never moves when the outer `Vec` grows
    // (clippy's `vec_box` fires only for the small chunks of the tests).
    #[allow(clippy::vec_box)]
    slots: Vec<Box<[TimerSlot; CHUNK]>>,
    #[allow(clippy::vec_box)]
    positions: Vec<Box<[u32; CHUNK]>>,
    /// Per chunk, its first vacant key, or `NONE`.
    free: Vec<u32>,
    /// One bit per chunk: its free list is not empty.
    has_free: Vec<u64>,
    /// The lowest chunk with a vacant slot, or `slots.len()` if none.
    lowest_free: usize,
    len: usize,
}

#[inline]
fn split(key: u32) -> (usize, usize) {
    ((key >> SHIFT) as usize, (key & MASK) as usize)
}

impl Slots {
    /// Stores `slot`; returns its key. Its position is `NOT_ARMED`.
    #[inline]
    pub(super) fn insert(&mut self, slot: TimerSlot) -> u32 {
        let c = self.lowest_free;
        if c == self.slots.len() {
            self.grow();
        }
        let key = self.free[c];
        let s = self.at_mut(key);
        debug_assert!(s.has(VACANT));
        let next = s.delay_ns as u32;
        *s = slot;
        self.free[c] = next;
        if next == NONE {
            self.chunk_filled(c);
        }
        self.len += 1;
        key
    }

    /// Chunk `c`, the lowest with a vacant slot, has none left: find the
    /// next one (a scan of one bit per chunk).
    fn chunk_filled(&mut self, c: usize) {
        self.has_free[c / 64] &= !(1 << (c % 64));
        self.lowest_free = (c / 64..self.has_free.len())
            .find_map(|w| {
                let bits = self.has_free[w];
                (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize)
            })
            .unwrap_or(self.slots.len());
    }

    /// Adds a chunk of vacant slots, threaded in key order so that a fresh
    /// store fills its memory sequentially.
    #[cold]
    fn grow(&mut self) {
        let base = u32::try_from(self.slots.len() * CHUNK)
            .ok()
            .filter(|b| b.checked_add(CHUNK as u32).is_some_and(|end| end < NONE))
            .expect("more than 4 billion live timers");
        let end = base + CHUNK as u32;
        let slots: Vec<TimerSlot> = (base + 1..=end)
            .map(|next| TimerSlot::vacant(if next == end { NONE } else { next }))
            .collect();
        let Ok(slots) = slots.into_boxed_slice().try_into() else {
            unreachable!("a chunk has CHUNK slots")
        };
        let Ok(positions) = vec![NOT_ARMED; CHUNK].into_boxed_slice().try_into() else {
            unreachable!("a chunk has CHUNK positions")
        };
        let c = self.slots.len();
        self.slots.push(slots);
        self.positions.push(positions);
        self.free.push(base);
        if c % 64 == 0 {
            self.has_free.push(0);
        }
        self.has_free[c / 64] |= 1 << (c % 64);
        self.lowest_free = c;
    }

    /// Frees slot `key`, which must be occupied and not armed.
    pub(super) fn remove(&mut self, key: u32) -> TimerSlot {
        debug_assert_eq!(self.position(key), NOT_ARMED);
        let c = split(key).0;
        let next = self.free[c];
        let s = self.at_mut(key);
        assert!(!s.has(VACANT), "freeing a vacant timer slot");
        let slot = std::mem::replace(s, TimerSlot::vacant(next));
        self.free[c] = key;
        self.has_free[c / 64] |= 1 << (c % 64);
        self.lowest_free = self.lowest_free.min(c);
        self.len -= 1;
        slot
    }

    /// The occupied slot `key`, if any.
    #[inline]
    pub(super) fn get(&self, key: u32) -> Option<&TimerSlot> {
        let (c, i) = split(key);
        let s = &self.slots.get(c)?[i];
        (!s.has(VACANT)).then_some(s)
    }

    /// The occupied slot `key`, if any.
    #[inline]
    pub(super) fn get_mut(&mut self, key: u32) -> Option<&mut TimerSlot> {
        let (c, i) = split(key);
        let s = &mut self.slots.get_mut(c)?[i];
        (!s.has(VACANT)).then_some(s)
    }

    /// Slot `key`, which must exist.
    #[inline]
    pub(super) fn at(&self, key: u32) -> &TimerSlot {
        let (c, i) = split(key);
        &self.slots[c][i]
    }

    /// Slot `key`, which must exist.
    #[inline]
    pub(super) fn at_mut(&mut self, key: u32) -> &mut TimerSlot {
        let (c, i) = split(key);
        &mut self.slots[c][i]
    }

    /// Heap position of slot `key` (which must exist), or `NOT_ARMED`.
    #[inline]
    pub(super) fn position(&self, key: u32) -> u32 {
        let (c, i) = split(key);
        self.positions[c][i]
    }

    #[inline]
    pub(super) fn set_position(&mut self, key: u32, pos: u32) {
        let (c, i) = split(key);
        self.positions[c][i] = pos;
    }

    /// Occupied slots.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated, occupied or not.
    pub(super) fn capacity(&self) -> usize {
        self.slots.len() * CHUNK
    }

    /// Gives all memory back; the store must be empty.
    pub(super) fn release(&mut self) {
        debug_assert_eq!(self.len, 0);
        *self = Slots::default();
    }

    /// Takes every stored callback out and empties the store.
    pub(super) fn drain(&mut self) -> Vec<InlineFn> {
        let slots = std::mem::take(self).slots;
        slots
            .into_iter()
            .flat_map(|chunk| Vec::from(chunk as Box<[TimerSlot]>))
            .filter_map(|s| s.cb)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> TimerSlot {
        TimerSlot::new(InlineFn::new_mut(|| {}), 1, 7, false)
    }

    #[test]
    fn keys_are_dense_and_reused() {
        let mut s = Slots::default();
        let keys: Vec<u32> = (0..CHUNK + 3).map(|_| s.insert(slot())).collect();
        assert_eq!(keys, (0..CHUNK as u32 + 3).collect::<Vec<_>>());
        assert_eq!((s.len(), s.capacity()), (CHUNK + 3, 2 * CHUNK));
        assert_eq!(s.position(5), NOT_ARMED);
        s.set_position(CHUNK as u32 + 1, 9);
        assert_eq!(s.position(CHUNK as u32 + 1), 9);
        s.set_position(CHUNK as u32 + 1, NOT_ARMED);
        assert!(s.remove(3).cb.is_some());
        assert!(s.remove(CHUNK as u32).cb.is_some());
        assert!(s.get(3).is_none() && s.get(CHUNK as u32).is_none());
        assert!(s.get(4).is_some_and(|t| t.gen == 7));
        assert!(s.get(u32::MAX - 1).is_none());
        // The lowest chunk with a vacant slot first.
        assert_eq!(s.insert(slot()), 3);
        assert_eq!(s.insert(slot()), CHUNK as u32);
        assert_eq!(s.insert(slot()), CHUNK as u32 + 3);
        assert_eq!(s.drain().len(), CHUNK + 4);
        assert_eq!((s.len(), s.capacity()), (0, 0));
        assert_eq!(s.insert(slot()), 0);
    }

    #[test]
    fn vacant_slots_are_taken_from_the_lowest_chunk() {
        let mut s = Slots::default();
        let chunks = 66; // more than one word of `has_free`
        let n = chunks * CHUNK as u32;
        for _ in 0..n {
            s.insert(slot());
        }
        assert_eq!(s.lowest_free, chunks as usize);
        for key in [n - 1, 65 * CHUNK as u32 + 5, 2 * CHUNK as u32 + 1, 7] {
            s.remove(key);
        }
        assert_eq!(s.insert(slot()), 7);
        assert_eq!(s.insert(slot()), 2 * CHUNK as u32 + 1);
        assert_eq!(s.insert(slot()), 65 * CHUNK as u32 + 5);
        assert_eq!(s.insert(slot()), n - 1);
        assert_eq!(s.insert(slot()), n);
        assert_eq!(s.capacity(), (chunks as usize + 1) * CHUNK);
    }
}
