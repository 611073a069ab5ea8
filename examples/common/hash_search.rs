//! The CPU-bound workload of the seed articles: brute-forcing a hash
//! preimage. `hash` is deliberately slow (64 rounds of a 64-bit mixer), so
//! the search is all CPU and no I/O; the same function runs in every
//! process that shares the work.

#![allow(dead_code)]

use std::ops::Range;

/// A 64-bit hash of `n`, slow on purpose.
pub fn hash(n: u64) -> u64 {
    let mut x = n;
    for _ in 0..64 {
        // splitmix64's finaliser.
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
    }
    x
}

/// The `n` in `range` whose hash is `target`, if any.
pub fn search(range: Range<u64>, target: u64) -> Option<u64> {
    range.into_iter().find(|&n| hash(n) == target)
}

/// Splits `0..space` into `parts` contiguous chunks of near-equal size.
pub fn chunks(space: u64, parts: u64) -> Vec<Range<u64>> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| (space * i / parts)..(space * (i + 1) / parts))
        .filter(|r| !r.is_empty())
        .collect()
}
