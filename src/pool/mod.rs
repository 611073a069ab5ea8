//! The thread pool: blocking and CPU-bound work off the loop thread.
//!
//! As in libuv, some work cannot be made non-blocking (regular files are
//! not pollable on Linux; `getaddrinfo` blocks; hashing is just CPU), so it
//! runs on a few worker threads. The loop never waits for them: a finished
//! job posts its result through the loop's [`Remote`](crate::Remote) queue
//! and the `done` callback runs on the loop thread in the pending phase.
//!
//! * The pool starts lazily, on the first [`queue_work`], so a loop that
//!   never uses it starts no thread.
//! * It has 4 threads unless `EVLOOP_THREADPOOL_SIZE` says otherwise (1 to
//!   1024), read when the pool starts, like `UV_THREADPOOL_SIZE`.
//! * Each loop owns its pool; dropping the loop discards jobs that have not
//!   started and joins the threads (waiting for jobs that are running). Their
//!   results are dropped on the worker thread and their `done` callbacks
//!   never run.
//! * A job in flight keeps the loop alive, like a libuv request.
//! * A panic in `work` is caught on the worker, which lives on; `done` gets
//!   an `io::Error` carrying the panic message.
//! * A job that has not started can be cancelled ([`Work::cancel`], libuv's
//!   `uv_cancel`): it never runs and `done` gets `ECANCELED`.
//! * Results are backpressured: at most `workers::MAX_UNDELIVERED` (1,024) jobs may be
//!   running or finished-but-not-yet-delivered at once. A worker waits
//!   before starting another job until the loop has run some `done`
//!   callbacks. Without this, one callback that queues 100,000 file reads
//!   lets the pool finish them all while the loop is still busy, and every
//!   result (4 KiB each, say) waits in memory at once; with it, the jobs
//!   that wait are the small closures, and finished results stay bounded.
//!   libuv has no such bound; the loop never waits for it, only workers do.

use std::any::Any;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::PanicError;
use crate::event_loop::with_current;

mod jobs;
mod workers;

pub(crate) use jobs::Jobs;
pub(crate) use workers::{Pool, PoolJob};

/// The default number of pool threads (libuv's too).
pub const DEFAULT_THREADPOOL_SIZE: usize = 4;

/// What a worker sends back: the job's value, boxed, or the error `done`
/// gets (the job panicked, was cancelled, or the pool could not start).
pub(crate) type WorkResult = Result<Box<dyn Any + Send>, io::Error>;

/// A `done` callback waiting on the loop thread.
pub(crate) type DoneCallback = Box<dyn FnOnce(WorkResult)>;

/// `EVLOOP_THREADPOOL_SIZE`, clamped to 1..=1024, or 4.
pub(crate) fn configured_size() -> usize {
    std::env::var("EVLOOP_THREADPOOL_SIZE")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(|n| n.clamp(1, 1024))
        .unwrap_or(DEFAULT_THREADPOOL_SIZE)
}

/// Runs `work` on the loop's thread pool and then `done` with its result on
/// the loop thread, in the pending phase (libuv's `uv_queue_work`).
///
/// A panic in `work` reaches `done` as an `io::Error` (kind `Other`) with
/// the panic message; the pool keeps its threads. The job keeps the loop
/// alive until `done` has run.
///
/// Finished results are bounded: while 1,024 results wait for the loop to
/// run their `done` (the loop is busy in a long callback, say), the pool
/// starts no further job. So a job should not wait for a later job's side
/// effects while the loop thread itself blocks.
///
/// # Panics
/// If no event loop is current on this thread.
///
/// ```
/// evloop::run(|| {
///     evloop::queue_work(
///         || (1..=20u64).product::<u64>(), // on a pool thread
///         |r| println!("20! = {}", r.unwrap()), // back on the loop thread
///     );
/// })
/// .unwrap();
/// ```
///
/// [`queue_work_cancelable`] is the same and returns a handle that can
/// cancel the job while it is still queued.
pub fn queue_work<T, W, D>(work: W, done: D)
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
    D: FnOnce(io::Result<T>) + 'static,
{
    queue_work_cancelable(work, done);
}

/// [`queue_work`], returning a [`Work`] whose [`cancel`](Work::cancel)
/// removes the job if no pool thread has started it (libuv's `uv_cancel`).
/// A separate function so that `queue_work` keeps returning `()`.
///
/// # Panics
/// If no event loop is current on this thread.
///
/// ```
/// evloop::run(|| {
///     let work = evloop::queue_work_cancelable(|| 1, |r| {
///         // Either it ran (the pool was idle) or it was cancelled.
///         if let Err(e) = r {
///             assert_eq!(e.raw_os_error(), Some(libc::ECANCELED));
///         }
///     });
///     let _ = work.cancel(); // Err(EBUSY) if it already started
/// })
/// .unwrap();
/// ```
pub fn queue_work_cancelable<T, W, D>(work: W, done: D) -> Work
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
    D: FnOnce(io::Result<T>) + 'static,
{
    let done: DoneCallback = Box::new(move |r: WorkResult| {
        done(match r {
            Ok(v) => Ok(*v.downcast::<T>().expect("a pool result has its job's type")),
            Err(e) => Err(e),
        })
    });
    with_current(|inner| {
        let (key, remote) = inner.jobs.started(inner, done);
        let job: PoolJob = Box::new(move || {
            let r: WorkResult = catch_unwind(AssertUnwindSafe(work))
                .map(|v| Box::new(v) as Box<dyn Any + Send>)
                .map_err(|p| {
                    let msg = PanicError::from_payload(&*p, "work").message().to_string();
                    io::Error::other(format!("queue_work job panicked: {msg}"))
                });
            // If the loop is gone the post is refused and `r` is dropped here.
            let _ = remote.post(move || complete(key, r));
        });
        let id = inner.jobs.submit(inner, key, job);
        Work { id, key }
    })
}

/// A job queued with [`queue_work_cancelable`]: lets it be cancelled
/// before it starts.
///
/// Dropping it does nothing (the job still runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Work {
    /// Unique per loop, never reused: a stale handle cannot cancel another
    /// job that got the same slab key.
    id: u64,
    key: usize,
}

impl Work {
    /// Cancels the job if no pool thread has started it (libuv's
    /// `uv_cancel`). Then `work` never runs, and `done` still runs exactly
    /// once, later, in the pending phase, with an error whose
    /// `raw_os_error()` is `ECANCELED`.
    ///
    /// A job that is running or has finished cannot be cancelled: that
    /// returns an error with `raw_os_error()` `EBUSY` (as `uv_cancel`), and
    /// `done` gets the job's result as usual.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn cancel(&self) -> io::Result<()> {
        with_current(|inner| inner.jobs.cancel(inner, self.id, self.key))
    }
}

/// The error a cancelled job's `done` gets.
pub(crate) fn canceled_error() -> io::Error {
    io::Error::from_raw_os_error(libc::ECANCELED)
}

/// Loop side of a finished job: find its `done` and call it.
fn complete(key: usize, r: WorkResult) {
    let done = with_current(|inner| {
        inner.jobs.delivered();
        inner.jobs.finished(key)
    });
    if let Some(done) = done {
        done(r);
    }
}
