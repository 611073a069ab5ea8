//! The cooperative budget: how a task that never has to wait still yields.
//!
//! A task whose socket operations keep succeeding (a peer that floods it
//! with data, a write that always fits) would never return `Pending`, and
//! one poll of it would run for as long as the peer keeps up: no other
//! socket, timer or task on the loop would get a turn. So each poll of a
//! task gets a budget of [`TASK_BUDGET`] operations that complete at once
//! (tokio's `coop` does the same). Once it is spent, the next operation
//! returns `Pending` and wakes the task in the *next* iteration's pending
//! phase, after a poll has served every other source. An operation that
//! has to wait anyway costs nothing.

use std::cell::Cell;
use std::task::Context;

use crate::event_loop::with_current;

/// Socket operations (reads, writes, accepts, sends, receives) that a task
/// may complete without waiting in one poll before it yields to the rest
/// of the loop.
///
/// ```
/// assert_eq!(evloop::task::TASK_BUDGET, 128);
/// ```
pub const TASK_BUDGET: u32 = 128;

/// Outside a task's poll nothing is counted.
const UNLIMITED: u32 = u32::MAX;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(UNLIMITED) };
}

/// Gives the task about to be polled a full budget; returns the budget to
/// restore after its poll (a task polled inside another's poll, by a
/// nested `block_on`, must not spend the outer one's).
#[inline]
pub(super) fn start() -> u32 {
    BUDGET.with(|b| b.replace(TASK_BUDGET))
}

/// Restores the budget [`start`] returned.
#[inline]
pub(super) fn restore(prev: u32) {
    BUDGET.with(|b| b.set(prev));
}

/// Whether the polling task may try one more operation. When its budget is
/// spent it is woken again in the next iteration, and must return
/// `Pending` now.
#[inline]
pub(super) fn proceed(cx: &Context<'_>) -> bool {
    if BUDGET.with(Cell::get) > 0 {
        return true;
    }
    yield_to_loop(cx);
    false
}

/// An operation completed: one unit of the budget is spent.
#[inline]
pub(super) fn spend() {
    BUDGET.with(|b| {
        let n = b.get();
        if n != UNLIMITED {
            b.set(n.saturating_sub(1));
        }
    });
}

#[cold]
fn yield_to_loop(cx: &Context<'_>) {
    log::trace!("task budget spent: yielding to the loop");
    with_current(|inner| {
        if !super::executor::yield_current(inner) {
            // Polled by something other than the executor: wake through
            // the waker instead.
            let waker = cx.waker().clone();
            inner.defer_next_turn(Box::new(move || waker.wake()));
        }
    });
}
