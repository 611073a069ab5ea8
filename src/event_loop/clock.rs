//! The loop's clock: libuv's cached `uv_now`. It is read once per
//! iteration (after poll, before the timers) and when a timer is set, and
//! kept as nanoseconds since the loop was created, the unit of the timer
//! store's deadlines.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// A monotonic clock read on demand and cached between reads.
pub(crate) struct Clock {
    epoch: Instant,
    /// The epoch as `CLOCK_MONOTONIC` nanoseconds (the clock `Instant` reads
    /// on Linux), read just after `epoch`, so that the cached time never
    /// runs ahead of `Instant::now()`.
    #[cfg(target_os = "linux")]
    epoch_raw: u64,
    now_ns: Cell<u64>,
}

impl Clock {
    /// A clock whose zero is now.
    pub(crate) fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
            #[cfg(target_os = "linux")]
            epoch_raw: crate::sys::monotonic_ns(),
            now_ns: Cell::new(0),
        }
    }

    /// Reads the clock into the cache; returns nanoseconds since the epoch.
    #[inline]
    pub(crate) fn update(&self) -> u64 {
        #[cfg(target_os = "linux")]
        let ns = crate::sys::monotonic_ns().saturating_sub(self.epoch_raw);
        #[cfg(not(target_os = "linux"))]
        let ns = duration_to_ns(self.epoch.elapsed());
        self.now_ns.set(ns);
        ns
    }

    /// The cached time, in nanoseconds since the epoch.
    #[inline]
    pub(crate) fn cached_ns(&self) -> u64 {
        self.now_ns.get()
    }

    /// The cached time as an `Instant`.
    pub(crate) fn cached(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.now_ns.get())
    }
}

/// Converts a duration to nanoseconds, saturating at "never" (`u64::MAX`).
#[inline]
pub(crate) fn duration_to_ns(d: Duration) -> u64 {
    d.as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(u64::from(d.subsec_nanos())))
        .unwrap_or(u64::MAX)
}
