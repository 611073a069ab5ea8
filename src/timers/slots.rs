//! The timers' slab: slots in fixed-size chunks, each slot's heap position
//! in a parallel chunk.
//!
//! A `Vec` (or the `slab` crate) doubles as it grows, so between two powers
//! of two up to half of its memory is spare capacity: 100,000 pending
//! timers held 131,072 slots, 31% more memory than they used, and every
//! doubling copied all the slots. Chunks of 1024 slots grow linearly: at
//! most one partly used chunk, and a slot never moves once allocated. A
//! chunk's slots are written only as they are first used (its `Vec` never
//! reallocates), so a new chunk costs no up-front initialisation and its
//! pages fault in one at a time.
//!
//! # Which vacant slot a new timer takes
//!
//! The lowest one: the lowest chunk with a vacant slot, and in it the
//! lowest vacant index (a bitmap of 1024 bits per chunk). Timers are freed
//! in deadline order, which is random with respect to their keys. A free
//! *list* threaded through the vacant slots hands them back in that random
//! order, and each arm then reads a slot on a cold cache line just to learn
//! the next one, a chain of dependent misses: with 100,000 timers re-armed
//! into a store that kept its memory, 88 ns per arm against 58 ns when the
//! same slots came back in order (clock read excluded). Lowest-first walks
//! the slab upwards, the order the hardware prefetcher follows, and the
//! bitmap is two cache lines per chunk.
//!
//! Keys stay dense `u32`s, so a heap entry still names its timer in 4
//! bytes, and a key's chunk is `key >> 10`.
//!
//! Positions live in their own chunks, not in the 40-byte slots, so that
//! the position updates a heap sift makes touch a compact array (16 per
//! cache line) instead of scattered slots.

use super::Kind;
use crate::inline_fn::InlineFn;

/// Position value meaning "not in the heap".
pub(super) const NOT_ARMED: u32 = u32::MAX;

/// 1024 slots per chunk; 16 in the unit tests, so that they (and Miri)
/// cross many chunks cheaply.
const SHIFT: u32 = if cfg!(test) { 4 } else { 10 };
/// Slots per chunk: 40 KB of slots and 4 KB of positions.
pub(super) const CHUNK: usize = 1 << SHIFT;
const MASK: u32 = CHUNK as u32 - 1;

/// Words of a chunk's vacancy bitmap.
const WORDS: usize = CHUNK.div_ceil(64);

/// Keeps the loop alive while armed.
pub(super) const REFED: u8 = 1;
/// A `set_timeout_mut` timeout whose handle still exists: kept after it
/// fires, so that `refresh` can run it again.
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
    /// The delay, in nanoseconds.
    pub(super) delay_ns: u64,
    pub(super) gen: u32,
    /// An interval (re-armed after each call).
    pub(super) repeat: bool,
    /// `REFED`, `HANDLE_ALIVE`, `RUNNING`, `CLEARED` (and `VACANT`).
    pub(super) flags: u8,
}

impl TimerSlot {
    /// A slot for a new, armed timer.
    pub(super) fn new(cb: InlineFn, delay_ns: u64, gen: u32, kind: Kind) -> Self {
        TimerSlot {
            cb: Some(cb),
            delay_ns,
            gen,
            repeat: kind == Kind::Interval,
            flags: if kind == Kind::Refreshable {
                REFED | HANDLE_ALIVE
            } else {
                REFED
            },
        }
    }

    fn vacant() -> Self {
        TimerSlot {
            cb: None,
            delay_ns: 0,
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

/// One chunk of slots.
struct Chunk {
    /// Filled up to its high-water mark; its capacity is `CHUNK`, so it
    /// never reallocates.
    slots: Vec<TimerSlot>,
    /// Bit `i` set: slot `i` is free (vacant, or above the high-water mark).
    free: [u64; WORDS],
    /// Number of bits set in `free`.
    free_count: u32,
    /// No word of `free` below this one has a bit set.
    first_word: u32,
}

impl Chunk {
    fn new() -> Self {
        let mut free = [u64::MAX; WORDS];
        if CHUNK % 64 != 0 {
            free[WORDS - 1] = (1 << (CHUNK % 64)) - 1;
        }
        Chunk {
            slots: Vec::with_capacity(CHUNK),
            free,
            free_count: CHUNK as u32,
            first_word: 0,
        }
    }

    /// Takes the lowest free index; the chunk must have one.
    #[inline]
    fn take_lowest(&mut self) -> usize {
        let mut w = self.first_word as usize;
        while self.free[w] == 0 {
            w += 1;
        }
        self.first_word = w as u32;
        let bits = &mut self.free[w];
        let i = w * 64 + bits.trailing_zeros() as usize;
        *bits &= *bits - 1;
        self.free_count -= 1;
        i
    }

    /// Marks index `i` free.
    #[inline]
    fn put(&mut self, i: usize) {
        self.free[i / 64] |= 1 << (i % 64);
        self.free_count += 1;
        self.first_word = self.first_word.min((i / 64) as u32);
    }
}

/// The slab: chunks of slots and of positions.
#[derive(Default)]
pub(super) struct Slots {
    chunks: Vec<Chunk>,
    // Boxed on purpose: a chunk never moves when the outer `Vec` grows
    // (clippy's `vec_box` fires only for the small chunks of the tests).
    #[allow(clippy::vec_box)]
    positions: Vec<Box<[u32; CHUNK]>>,
    /// One bit per chunk: it has a free slot.
    has_free: Vec<u64>,
    /// The lowest chunk with a free slot, or `chunks.len()` if none.
    lowest_free: usize,
    len: usize,
}

#[inline]
fn split(key: u32) -> (usize, usize) {
    ((key >> SHIFT) as usize, (key & MASK) as usize)
}

impl Slots {
    /// Stores `slot` in the lowest free slot; returns its key. Its
    /// position is `NOT_ARMED`.
    #[inline]
    pub(super) fn insert(&mut self, slot: TimerSlot) -> u32 {
        let c = self.lowest_free;
        if c == self.chunks.len() {
            self.grow();
        }
        let chunk = &mut self.chunks[c];
        let i = chunk.take_lowest();
        if i == chunk.slots.len() {
            chunk.slots.push(slot);
        } else {
            let s = &mut chunk.slots[i];
            debug_assert!(s.has(VACANT));
            *s = slot;
        }
        if chunk.free_count == 0 {
            self.chunk_filled(c);
        }
        self.len += 1;
        // At most `CHUNK * 2^22` keys: `grow` checks.
        (c << SHIFT | i) as u32
    }

    /// Chunk `c`, the lowest with a free slot, has none left: find the
    /// next one (a scan of one bit per chunk).
    fn chunk_filled(&mut self, c: usize) {
        self.has_free[c / 64] &= !(1 << (c % 64));
        self.lowest_free = (c / 64..self.has_free.len())
            .find_map(|w| {
                let bits = self.has_free[w];
                (bits != 0).then(|| w * 64 + bits.trailing_zeros() as usize)
            })
            .unwrap_or(self.chunks.len());
    }

    /// Adds an empty chunk. Its slots are written as they are first used.
    #[cold]
    fn grow(&mut self) {
        let c = self.chunks.len();
        assert!(
            // Keys stay below 2^31: handles keep a flag in bit 31.
            (c + 1) * CHUNK <= 1 << 31,
            "more than 2 billion live timers"
        );
        let Ok(positions) = vec![NOT_ARMED; CHUNK].into_boxed_slice().try_into() else {
            unreachable!("a chunk has CHUNK positions")
        };
        self.chunks.push(Chunk::new());
        self.positions.push(positions);
        if c % 64 == 0 {
            self.has_free.push(0);
        }
        self.has_free[c / 64] |= 1 << (c % 64);
        self.lowest_free = c;
    }

    /// Frees slot `key`, which must be occupied and not armed.
    pub(super) fn remove(&mut self, key: u32) -> TimerSlot {
        debug_assert_eq!(self.position(key), NOT_ARMED);
        let (c, i) = split(key);
        let chunk = &mut self.chunks[c];
        let s = &mut chunk.slots[i];
        assert!(!s.has(VACANT), "freeing a vacant timer slot");
        let slot = std::mem::replace(s, TimerSlot::vacant());
        chunk.put(i);
        self.has_free[c / 64] |= 1 << (c % 64);
        self.lowest_free = self.lowest_free.min(c);
        self.len -= 1;
        slot
    }

    /// The occupied slot `key`, if any.
    #[inline]
    pub(super) fn get(&self, key: u32) -> Option<&TimerSlot> {
        let (c, i) = split(key);
        let s = self.chunks.get(c)?.slots.get(i)?;
        (!s.has(VACANT)).then_some(s)
    }

    /// The occupied slot `key`, if any.
    #[inline]
    pub(super) fn get_mut(&mut self, key: u32) -> Option<&mut TimerSlot> {
        let (c, i) = split(key);
        let s = self.chunks.get_mut(c)?.slots.get_mut(i)?;
        (!s.has(VACANT)).then_some(s)
    }

    /// Slot `key`, which must exist.
    #[inline]
    pub(super) fn at(&self, key: u32) -> &TimerSlot {
        let (c, i) = split(key);
        &self.chunks[c].slots[i]
    }

    /// Slot `key`, which must exist.
    #[inline]
    pub(super) fn at_mut(&mut self, key: u32) -> &mut TimerSlot {
        let (c, i) = split(key);
        &mut self.chunks[c].slots[i]
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
        self.chunks.len() * CHUNK
    }

    /// Gives all memory back; the store must be empty.
    pub(super) fn release(&mut self) {
        debug_assert_eq!(self.len, 0);
        *self = Slots::default();
    }

    /// Takes every stored callback out and empties the store.
    pub(super) fn drain(&mut self) -> Vec<InlineFn> {
        let chunks = std::mem::take(self).chunks;
        chunks
            .into_iter()
            .flat_map(|chunk| chunk.slots)
            .filter_map(|s| s.cb)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot() -> TimerSlot {
        TimerSlot::new(InlineFn::new_mut(|| {}), 1, 7, Kind::Once)
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

    /// Within a chunk, the lowest vacant index first, whatever order the
    /// slots were freed in; a chunk is written only up to its high-water
    /// mark.
    #[test]
    fn vacant_slots_are_taken_lowest_first() {
        let mut s = Slots::default();
        for _ in 0..10 {
            s.insert(slot());
        }
        assert_eq!(s.chunks[0].slots.len(), 10);
        for key in [9, 2, 5] {
            s.remove(key);
        }
        assert!(s.get(9).is_none() && s.get(10).is_none() && s.get(8).is_some());
        let again: Vec<u32> = (0..4).map(|_| s.insert(slot())).collect();
        assert_eq!(again, [2, 5, 9, 10]);
        assert_eq!(s.chunks[0].slots.len(), 11);
        assert_eq!(s.len(), 11);
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
