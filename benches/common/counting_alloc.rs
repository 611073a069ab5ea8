//! A global allocator that counts live heap bytes, for the memory figures
//! of the benches (the tests have their own, `tests/support/alloc.rs`).
//! Include it as a module (`#[path = "common/counting_alloc.rs"] mod
//! counting_alloc;`): it installs itself as the `#[global_allocator]` of
//! that binary.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Counting costs an atomic add per allocation and free; a bench that
/// times other work switches it off meanwhile.
static ON: AtomicBool = AtomicBool::new(true);

// SAFETY: forwards to the system allocator unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if ON.load(Ordering::Relaxed) {
            LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if ON.load(Ordering::Relaxed) {
            LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Live heap bytes counted so far (allocations minus frees while on).
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Switches counting on or off (on at start). Frees of blocks allocated
/// while it was off are not subtracted, so compare `live()` only across
/// spans that were counted from allocation to free.
pub fn set_counting(on: bool) {
    ON.store(on, Ordering::Relaxed);
}
