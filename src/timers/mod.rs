//! Timers: `set_timeout`, `set_interval`, and the heap that orders them.
//!
//! The functions are also at the crate root (`evloop::set_timeout`, as
//! Node's are global); [`promise::delay`](crate::promise::delay) is the
//! promise form.
//!
//! # Data structure
//!
//! Each timer lives in a slab slot (its callback, delay and flags); an
//! *indexed* min-heap of small `(deadline, seq, key)` entries orders
//! the armed ones (`store.rs`). A dense side table remembers each key's
//! position in the heap, so cancelling is a true O(log n) removal: nothing
//! is left behind to be skipped later, so schedule/cancel churn cannot grow
//! the heap (the bug calloop#238 had with lazy deletion).
//!
//! The heap is 4-ary: four 16-byte children are one cache line's worth
//! (64 bytes; not aligned to a line, so they usually span two),
//! and the tree is half as deep as a binary one, which matters when a
//! million timers fire in a second. The slab (`slots.rs`) grows in chunks
//! of 1024 slots, so it has no doubling slack and never copies a slot;
//! positions live in parallel chunks of `u32` rather than in the 40-byte
//! slots, so the position updates a sift makes touch a compact array
//! instead of scattered slots.
//!
//! A pending timer costs one heap entry (16 bytes), one slot (40 bytes) and
//! one position (4 bytes), plus the heap's spare capacity (at most a
//! fifth of it). The slot holds the closure itself when its captures fit in
//! 16 bytes (two pointers, e.g. two `Rc`s), with no allocation of its own;
//! a bigger one is boxed (`InlineFn`).
//!
//! # Semantics (Node's)
//!
//! * Deadlines are `now + delay` with `now` read when the timer is created
//!   (Node refreshes libuv's clock in `setTimeout`), so a timer never fires
//!   early.
//! * Equal deadlines fire in the order they were armed (`seq`).
//! * A delay below 1 ms is clamped to 1 ms, as in Node. A delay over
//!   [`TIMEOUT_MAX`] (2^31 - 1 ms, about 24.8 days) becomes 1 ms, with a
//!   `TimeoutOverflowWarning` on stderr, as in Node: `Duration::MAX` does
//!   not mean "never" (a timer that never fires would keep the loop alive
//!   for ever, with no word). This holds for every face of a timer:
//!   `set_timeout`, `set_interval`, [`promise::delay`](crate::promise::delay)
//!   and `task::sleep`.
//! * A timer cleared while it is already due in the current timers pass does
//!   not run: the pass pops one timer at a time, it never pre-collects.
//! * An interval is re-armed *after* its callback, `delay` from the moment
//!   the callback started (as Node's), and behind the timers of the same
//!   delay that its callback set (Node appends it to its delay's list,
//!   after them). A callback that outlasts its period is due again at the
//!   next timers phase, not within the same one: after a stall it runs
//!   once, not once per missed period.
//! * Dropping a [`Timeout`] does not cancel it (fire and forget, like
//!   ignoring Node's return value). A fired [`set_timeout_mut`] timeout
//!   whose handle is still alive keeps its callback, so that
//!   [`Timeout::refresh`] runs it again, as Node's does. A [`set_timeout`]
//!   callback is an `FnOnce`: once it has run there is nothing to run
//!   again, so its slot is freed as it fires and `refresh` returns `false`.

use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::event_loop::{with_current, LoopState};
use crate::inline_fn::InlineFn;

mod slots;
mod store;

pub(crate) use store::TimerStore;

/// The smallest delay, as in Node: `setTimeout(f, 0)` means 1 ms.
pub(crate) const MIN_DELAY: Duration = Duration::from_millis(1);

/// The longest delay a timer takes: 2^31 - 1 ms (about 24.8 days), Node's
/// `TIMEOUT_MAX`. A longer one becomes 1 ms, with a warning on stderr.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(evloop::timers::TIMEOUT_MAX, Duration::from_millis(2_147_483_647));
/// ```
pub const TIMEOUT_MAX: Duration = Duration::from_millis(2_147_483_647);

// ---------------------------------------------------------------------------
// The public API: handles and free functions.
// ---------------------------------------------------------------------------

/// A handle to a timer created by [`set_timeout`]; Node's `Timeout`.
///
/// Dropping the handle does **not** cancel the timer. While the handle
/// exists, a [`set_timeout_mut`] timeout that already fired can be re-armed
/// with [`refresh`](Timeout::refresh); a [`set_timeout`] one cannot (its
/// `FnOnce` has run).
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

/// What a timer's slot is kept for after it fires.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// `set_timeout`: its `FnOnce` has run, so the slot is freed at once
    /// (unless it was re-armed from its own callback). Its handle's drop
    /// has nothing to tell the store.
    Once,
    /// `set_timeout_mut`: kept while its handle lives, so that `refresh`
    /// can run it again; the handle's drop frees it.
    Refreshable,
    /// `set_interval`: re-armed after each run until cleared.
    Interval,
}

/// What the two handle types share: a weak link to the loop and a
/// generation-checked slot key (16 bytes).
struct TimerRef {
    inner: Weak<LoopState>,
    /// The slot key, and in bit 31 (`REFRESHABLE`) whether the timer is a
    /// `Kind::Refreshable`, whose slot the store keeps until this handle is
    /// dropped. For the other kinds, dropping the handle touches nothing
    /// but the weak count (the common fire-and-forget `set_timeout`).
    /// Keys stay below 2^31 (`slots.rs` checks).
    key_kind: u32,
    gen: u32,
}

/// Bit of `TimerRef::key_kind`: a `Kind::Refreshable` timer.
const REFRESHABLE: u32 = 1 << 31;

impl TimerRef {
    /// The timer's slot key.
    fn key(&self) -> u32 {
        self.key_kind & !REFRESHABLE
    }

    fn with<R>(&self, f: impl FnOnce(&LoopState, &RefCell<TimerStore>) -> R) -> Option<R> {
        let inner = self.inner.upgrade()?;
        Some(f(&inner, &inner.timers))
    }

    fn clear(&self) {
        let garbage = self.with(|_, t| t.borrow_mut().clear(self.key(), self.gen));
        drop(garbage);
    }

    fn refresh(&self) -> bool {
        self.with(|inner, t| {
            let now = inner.update_now_ns();
            t.borrow_mut().refresh(self.key(), self.gen, now)
        })
        .unwrap_or(false)
    }

    fn set_ref(&self, refed: bool) {
        self.with(|_, t| t.borrow_mut().set_ref(self.key(), self.gen, refed));
    }

    fn has_ref(&self) -> bool {
        self.with(|_, t| t.borrow().has_ref(self.key(), self.gen))
            .unwrap_or(false)
    }

    fn is_armed(&self) -> bool {
        self.with(|_, t| t.borrow().is_armed(self.key(), self.gen))
            .unwrap_or(false)
    }
}

impl TimerRef {
    /// A second reference to the same timer, for the loop's own glue (an
    /// abort listener that clears a timer whose handle it returned). Only
    /// for kinds whose handle's drop tells the store nothing: a
    /// `Refreshable` one's slot is freed by its one handle's drop.
    fn share(&self) -> Option<TimerRef> {
        (!self.is_refreshable()).then(|| TimerRef {
            inner: self.inner.clone(),
            key_kind: self.key_kind,
            gen: self.gen,
        })
    }

    fn is_refreshable(&self) -> bool {
        self.key_kind & REFRESHABLE != 0
    }
}

impl Drop for TimerRef {
    fn drop(&mut self) {
        if self.key_kind & REFRESHABLE != 0 {
            let garbage = self.with(|_, t| t.borrow_mut().handle_dropped(self.key(), self.gen));
            drop(garbage);
        }
    }
}

impl Timeout {
    /// Cancels the timeout (Node's `clearTimeout`). Clearing a timeout that
    /// already fired, or twice, does nothing.
    pub fn clear(&self) {
        self.timer.clear()
    }

    /// Restarts the timer from now with its original delay (Node's
    /// `timeout.refresh()`). A [`set_timeout_mut`] timeout is re-armed even
    /// if it already fired, or from inside its own callback. Returns `false`
    /// if it was cleared, if it is a [`set_timeout`] whose callback has
    /// started (its `FnOnce` cannot run again), or if its loop is gone.
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

    /// Another handle to this timer, to clear it from elsewhere (the
    /// abort glue); `None` for a [`set_timeout_mut`] one (its handle owns
    /// its slot).
    pub(crate) fn share(&self) -> Option<Timeout> {
        self.timer.share().map(|timer| Timeout { timer })
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

    /// Another handle to this interval, to clear it from elsewhere (the
    /// abort glue).
    pub(crate) fn share(&self) -> Interval {
        // An interval's handle is never `REFRESHABLE`.
        debug_assert!(!self.timer.is_refreshable());
        Interval {
            timer: TimerRef {
                inner: self.timer.inner.clone(),
                key_kind: self.timer.key_kind,
                gen: self.timer.gen,
            },
        }
    }
}

impl std::fmt::Debug for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timeout")
            .field("key", &self.timer.key())
            .field("pending", &self.is_pending())
            .finish()
    }
}

impl std::fmt::Debug for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interval")
            .field("key", &self.timer.key())
            .field("pending", &self.is_pending())
            .finish()
    }
}

fn add_timer(cb: InlineFn, delay: Duration, kind: Kind) -> TimerRef {
    with_current(|inner: &Rc<LoopState>| {
        let now = inner.update_now_ns();
        let (key, gen) = inner.timers.borrow_mut().insert(cb, delay, kind, now);
        log::trace!("arm {kind:?} #{key} in {delay:?}");
        let refreshable = if kind == Kind::Refreshable {
            REFRESHABLE
        } else {
            0
        };
        TimerRef {
            inner: Rc::downgrade(inner),
            key_kind: key | refreshable,
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
    // Node's `refresh` calls the same function again, but a `FnOnce`
    // cannot run twice: the slot is freed as it fires (`Kind::Once`), and
    // dropping the handle costs nothing but the weak count.
    Timeout {
        timer: add_timer(InlineFn::new_once(cb), delay, Kind::Once),
    }
}

/// Like [`set_timeout`] with a callback that can run again after
/// [`Timeout::refresh`], as Node's does.
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
///
/// let runs = Rc::new(Cell::new(0));
/// let r = runs.clone();
/// evloop::run(move || {
///     let t = Rc::new(Cell::new(None::<evloop::Timeout>));
///     let me = t.clone();
///     t.set(Some(evloop::set_timeout_mut(Duration::from_millis(1), move || {
///         r.set(r.get() + 1);
///         if r.get() < 3 {
///             let t = me.take().unwrap();
///             t.refresh(); // arms it again: the same callback runs once more
///             me.set(Some(t));
///         }
///     })));
/// })
/// .unwrap();
/// assert_eq!(runs.get(), 3);
/// ```
pub fn set_timeout_mut(delay: Duration, cb: impl FnMut() + 'static) -> Timeout {
    Timeout {
        timer: add_timer(InlineFn::new_mut(cb), delay, Kind::Refreshable),
    }
}

/// Runs `cb` every `period` until cleared (Node's `setInterval`).
///
/// # Panics
/// If no event loop is current on this thread.
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
///
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// evloop::run(move || {
///     let me = Rc::new(Cell::new(None::<evloop::Interval>));
///     let me2 = me.clone();
///     me.set(Some(evloop::set_interval(Duration::from_millis(1), move || {
///         t.set(t.get() + 1);
///         if t.get() == 3 {
///             evloop::clear_interval(&me2.take().unwrap());
///         }
///     })));
/// })
/// .unwrap();
/// assert_eq!(ticks.get(), 3);
/// ```
pub fn set_interval(period: Duration, cb: impl FnMut() + 'static) -> Interval {
    Interval {
        timer: add_timer(InlineFn::new_mut(cb), period, Kind::Interval),
    }
}

/// Cancels a timeout (Node's `clearTimeout`). Clearing a timeout that
/// already ran or was cleared does nothing.
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(|| {
///     let t = evloop::set_timeout(Duration::from_millis(1), || unreachable!());
///     evloop::clear_timeout(&t);
///     assert!(!t.is_pending());
/// })
/// .unwrap();
/// ```
pub fn clear_timeout(timeout: &Timeout) {
    timeout.clear()
}

/// Stops an interval (Node's `clearInterval`); see [`set_interval`].
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(|| {
///     let i = evloop::set_interval(Duration::from_millis(1), || unreachable!());
///     evloop::clear_interval(&i);
///     assert!(evloop::active_handles().is_empty()); // so `run` returns
/// })
/// .unwrap();
/// ```
pub fn clear_interval(interval: &Interval) {
    interval.clear()
}

/// Bytes the loop's own structures hold per pending timer (its slab slot,
/// heap entry and position), closure included when it is stored inline
/// (captures of at most 16 bytes); reported by the benchmarks.
#[doc(hidden)]
pub const TIMER_OVERHEAD_BYTES: usize = store::BYTES_PER_TIMER;
// The issue's budget: at most 64 bytes of loop structures per pending timer.
const _: () = assert!(TIMER_OVERHEAD_BYTES <= 64);

// A handle is 16 bytes: the loop's `Weak`, the key (with its kind bit) and
// the generation.
const _: () = assert!(std::mem::size_of::<Timeout>() == 16);

#[cfg(test)]
mod tests {
    use super::*;

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
        // A fired `FnOnce` timeout whose handle lives: freed as it fires.
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
        assert!(
            !kept.refresh(),
            "a fired FnOnce timeout cannot be refreshed"
        );
        // Nor from inside its own callback.
        let me: Rc<RefCell<Option<Timeout>>> = Rc::default();
        let me2 = me.clone();
        let refreshed = Rc::new(std::cell::Cell::new(None));
        let r2 = refreshed.clone();
        *me.borrow_mut() = Some({
            let _g = el.enter();
            set_timeout(MIN_DELAY, move || {
                r2.set(Some(me2.borrow().as_ref().unwrap().refresh()));
            })
        });
        el.run().unwrap();
        assert_eq!(refreshed.get(), Some(false));
        drop(me.borrow_mut().take());
        assert!(!kept.is_pending());
        assert!(mut_kept.refresh(), "a fired FnMut timeout can");
        el.run().unwrap();
        assert_eq!(drops.get(), 5);
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
}
