//! Pool jobs bound to a signal. (Here, not in `pool/`, because the loop
//! core knows nothing of signals.)
//!
//! What an abort does to a job depends on where the job is:
//!
//! - **not submitted yet** (the signal was aborted before the call): the
//!   job is never queued and `work` never runs;
//! - **queued** (no pool thread has taken it): it is cancelled
//!   ([`Work::cancel`]), `work` never runs, and its place in the loop's
//!   count of requests is released in the next pending phase;
//! - **running**: a pool thread cannot be interrupted, so `work` runs to
//!   its end and its result is dropped; the job stays a request that keeps
//!   the loop alive until it returns (as a libuv `uv_work_t` that
//!   `uv_cancel` refuses with `EBUSY`);
//! - **finished**: the abort does nothing.
//!
//! In the first three cases `done` gets the [`AbortError`](super::AbortError)
//! at once, asynchronously (in a `next_tick` after the abort), never later
//! than the abort's own callbacks.

use std::cell::Cell;
use std::io;
use std::rc::{Rc, Weak};

use super::AbortSignal;
use crate::event_loop::{try_with_current, with_current, LoopState};
use crate::pool::{queue_work_cancelable, Work};

/// [`queue_work`](crate::queue_work), abortable: runs `work` on the pool
/// and `done` with its result, unless `signal` aborts first; then `done`
/// gets the [`AbortError`](super::AbortError) (an `io::Error` that
/// [`is_abort_error`](super::is_abort_error) recognizes) and never the
/// result.
///
/// - Already aborted: `work` never runs; `done` gets the error in a
///   `next_tick`.
/// - Aborted while the job waits for a pool thread: the job is cancelled
///   (`work` never runs) and `done` gets the error in a `next_tick`; the
///   job stops keeping the loop alive in the next pending phase.
/// - Aborted while `work` runs: `done` gets the error in a `next_tick`,
///   but `work` cannot be interrupted. It finishes on its thread, its
///   result is dropped there or on the loop thread, and until it returns
///   the job still keeps the loop alive (it is a request, like a libuv
///   `uv_work_t`). Make long jobs check a flag of their own (an
///   `Arc<AtomicBool>` set from an [`on_abort`](AbortSignal::on_abort)
///   listener) if they must stop early.
/// - Aborted after `done` ran: nothing happens.
///
/// Its promise form is `promisify(|done| queue_work_with_signal(work,
/// &signal, done))` (see [`promisify`](crate::promise::promisify)).
///
/// # Panics
/// If no event loop is current on this thread.
///
/// ```
/// use evloop::abort::{is_abort_error, AbortController};
///
/// evloop::run(|| {
///     let controller = AbortController::new();
///     evloop::queue_work_with_signal(
///         || (1..=20u64).product::<u64>(),
///         &controller.signal(),
///         |r| assert!(is_abort_error(&r.unwrap_err())),
///     );
///     controller.abort(None); // before the job's result is delivered
/// })
/// .unwrap();
/// ```
pub fn queue_work_with_signal<T, W, D>(work: W, signal: &AbortSignal, done: D)
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
    D: FnOnce(io::Result<T>) + 'static,
{
    signal.queue_work_mapped(work, |r| r, done);
}

impl AbortSignal {
    /// The building block of every abortable pool job: runs `work` on the
    /// pool, turns its result into `done`'s with `map` (on the loop
    /// thread), and calls `done` with it, or with the [`AbortError`]
    /// (never passed through `map`) if this signal aborts first, as
    /// [`queue_work_with_signal`] describes. `fs` uses `map` to name the
    /// path in its errors while an abort stays a plain `AbortError`.
    ///
    /// For the promise form: `promisify(|done|
    /// abort::queue_work_with_signal(work, signal, done))`.
    ///
    /// [`AbortError`]: super::AbortError
    pub(crate) fn queue_work_mapped<U, T, W, M, D>(&self, work: W, map: M, done: D)
    where
        U: Send + 'static,
        T: 'static,
        W: FnOnce() -> U + Send + 'static,
        M: FnOnce(io::Result<U>) -> io::Result<T> + 'static,
        D: FnOnce(io::Result<T>) + 'static,
    {
        // The job, once queued; the abort listener cancels it.
        let job: Rc<Cell<Option<Work>>> = Rc::new(Cell::new(None));
        let to_cancel = job.clone();
        let owner = with_current(Rc::downgrade);
        let release = move || {
            if let Some(work) = to_cancel.take() {
                cancel(&owner, work);
            }
        };
        let Some(done) = self.bind_callback(done, release) else {
            log::trace!("pool job not queued: its signal is already aborted");
            return;
        };
        // The job holds its signal, as a Node operation does: a signal
        // nobody else keeps (`AbortSignal::timeout(..)` passed inline, or a
        // controller dropped after taking a sender) still aborts it. No
        // cycle: the signal's listener holds the user's callback, not this.
        let signal = self.clone();
        let work = queue_work_cancelable(work, move |r| {
            drop(signal);
            done(map(r))
        });
        job.set(Some(work));
    }
}

/// Cancels `work`, a job of the loop `owner`, if it is still queued.
/// An abort normally fires on the loop thread with that loop current.
/// Otherwise (a controller aborted while another loop is current on this
/// thread, or after `run` returned) the cancel is posted to the owner, to
/// run in its next pending phase; if the owner is gone, its pool discarded
/// the job already.
fn cancel(owner: &Weak<LoopState>, work: Work) {
    let current = try_with_current(|lp| Rc::as_ptr(lp) == owner.as_ptr()).unwrap_or(false);
    if current {
        match work.cancel() {
            Ok(()) => log::trace!("pool job aborted before it started: cancelled"),
            Err(_) => log::trace!("pool job aborted while running: its result will be dropped"),
        }
    } else if let Some(lp) = owner.upgrade() {
        log::trace!("pool job aborted away from its loop: cancel posted to it");
        let _ = lp.remote_handle().post(move || {
            let _ = work.cancel();
        });
    }
}
