//! Timers bound to a signal: cleared when it aborts. (They live here, not
//! in `timers/`, because the loop core knows nothing of signals.)
//!
//! How: the timer's closure owns a guard that removes the abort listener
//! when the closure goes (it ran, or the timer was cleared, by the abort or
//! by anyone else, or the loop was dropped), and the abort listener holds
//! a second handle to the timer, which it clears. So a long-lived signal
//! gathers no listeners from timers that are done, and an abort leaves no
//! timer behind.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use super::{AbortListener, AbortSignal};
use crate::error::Rejection;
use crate::timers::{Interval, Timeout};

/// Removes the abort listener it holds when dropped.
struct RemoveOnDrop(Rc<Cell<Option<AbortListener>>>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(l) = self.0.take() {
            l.remove();
        }
    }
}

/// Arms a `set_timeout` that is cleared when `signal` aborts, then calls
/// `on_abort` with the reason (inside the abort, after the timer was
/// cleared). `None`, arming nothing, if `signal` has already aborted. The
/// abort listener is removed when the timer fires (before `cb` runs) or
/// is cleared.
pub(crate) fn arm_timeout(
    delay: Duration,
    signal: &AbortSignal,
    cb: impl FnOnce() + 'static,
    on_abort: impl FnOnce(&Rejection) + 'static,
) -> Option<Timeout> {
    if signal.aborted() {
        return None;
    }
    let slot = Rc::new(Cell::new(None));
    let guard = RemoveOnDrop(slot.clone());
    let timer = crate::set_timeout(delay, move || {
        drop(guard);
        cb();
    });
    // A `set_timeout` handle can always be shared.
    let shared = timer.share();
    slot.set(Some(signal.on_abort_op(move |reason| {
        if let Some(t) = shared {
            t.clear();
        }
        on_abort(reason);
    })));
    Some(timer)
}

/// [`set_timeout`](crate::set_timeout), cleared when `signal` aborts: the
/// callback then never runs (Node's `timers/promises` `setTimeout` with
/// `{ signal }`, in callback form; the promise form is
/// [`promise::delay_with_signal`](crate::promise::delay_with_signal)).
///
/// What an abort releases: the timer (it no longer keeps the loop alive)
/// and the callback with everything it captured, dropped at once. If
/// `signal` has already aborted, nothing is armed and the returned
/// [`Timeout`] is not pending. The listener this adds to `signal` is
/// removed when the timer fires or is cleared, so a long-lived signal does
/// not collect listeners. Aborting after the callback ran does nothing.
///
/// ```
/// use std::time::Duration;
/// use evloop::abort::AbortController;
///
/// evloop::run(|| {
///     let controller = AbortController::new();
///     let t = evloop::set_timeout_with_signal(
///         Duration::from_secs(3600),
///         &controller.signal(),
///         || unreachable!("aborted first"),
///     );
///     controller.abort(None);
///     assert!(!t.is_pending());
///     assert!(evloop::active_handles().is_empty());
/// })
/// .unwrap(); // returns at once: nothing keeps the loop alive
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn set_timeout_with_signal(
    delay: Duration,
    signal: &AbortSignal,
    cb: impl FnOnce() + 'static,
) -> Timeout {
    match arm_timeout(delay, signal, cb, |_| {}) {
        Some(t) => t,
        None => {
            // A handle to a timer that is already gone.
            let t = crate::set_timeout(delay, || {});
            t.clear();
            t
        }
    }
}

/// [`set_interval`](crate::set_interval), cleared when `signal` aborts:
/// the callback does not run again.
///
/// What an abort releases: the interval's timer (it no longer keeps the
/// loop alive) and the callback with its captures, dropped at once. If
/// `signal` has already aborted, nothing is armed and the returned
/// [`Interval`] is not pending. The listener this adds to `signal` is
/// removed when the interval is cleared (by the abort or by
/// [`Interval::clear`]).
///
/// ```
/// use std::time::Duration;
/// use evloop::abort::AbortSignal;
///
/// evloop::run(|| {
///     // Ticks every 2 ms for about 20 ms.
///     let deadline = AbortSignal::timeout(Duration::from_millis(20));
///     evloop::set_interval_with_signal(Duration::from_millis(2), &deadline, || {});
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn set_interval_with_signal(
    period: Duration,
    signal: &AbortSignal,
    mut cb: impl FnMut() + 'static,
) -> Interval {
    if signal.aborted() {
        let i = crate::set_interval(period, || {});
        i.clear();
        return i;
    }
    let slot = Rc::new(Cell::new(None));
    let guard = RemoveOnDrop(slot.clone());
    let interval = crate::set_interval(period, move || {
        let _ = &guard;
        cb();
    });
    let shared = interval.share();
    slot.set(Some(signal.on_abort_op(move |_| shared.clear())));
    interval
}
