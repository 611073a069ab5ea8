//! Worker threads (Node's `worker_threads`): more loops, one per OS
//! thread, talking through typed message ports.
//!
//! [`Worker::spawn`] starts a thread running its own
//! [`EventLoop`](crate::EventLoop) with an entry closure as its main script;
//! the entry gets the worker's end of a [`MessagePort`] (Node's
//! `parentPort`), and the [`Worker`] handle holds the other. Values of any
//! `Send` type `T` travel in order between the two loops: they move, they
//! are not serialised (Node's structured clone has no equivalent to pay
//! for here). Each message is delivered in its own callback, followed by
//! the microtask checkpoint, like every callback on a loop.
//! [`MessageChannel::new`] makes further pairs, and a port is `Send`: post
//! one inside a message, or move it into an entry, and it attaches to the
//! loop of the thread that receives on it.
//!
//! A worker that doubles numbers, in callbacks on its side and `await` on
//! the parent's:
//!
//! ```
//! use evloop::worker_threads::Worker;
//!
//! let results = evloop::run_async(async {
//!     let worker = Worker::spawn(|parent| {
//!         let reply = parent.clone();
//!         parent.on_message(move |n: u64| {
//!             reply.post_message(2 * n).unwrap();
//!         });
//!     })
//!     .unwrap();
//!     let mut results = Vec::new();
//!     for n in 1..=3 {
//!         worker.post_message(n).unwrap();
//!         results.push(worker.recv().await.unwrap().unwrap());
//!     }
//!     // Closing the port ends the worker's loop (nothing else keeps it
//!     // alive): exit code 0.
//!     worker.port().close();
//!     assert_eq!(worker.exited().await.unwrap(), 0);
//!     results
//! })
//! .unwrap();
//! assert_eq!(results, [2, 4, 6]);
//! ```
//!
//! ## Node's semantics kept
//!
//! - The `Worker` keeps the parent's loop alive until the worker ends,
//!   unless [`unref`](Worker::unref)'d. A port with a message listener or
//!   a pending `recv` keeps its loop alive until the pair closes (the
//!   worker's `parentPort.on('message')` keeps a worker running).
//! - `'error'` then `'exit'`: a panic in the worker (or another error its
//!   loop ends with) reaches [`Worker::on_error`] with its message, then
//!   [`Worker::on_exit`] gets 1. A normal end is 0; [`exit`] sets the code.
//! - [`Worker::terminate`] stops the worker's loop at its next iteration
//!   boundary; the exit code is 1.
//! - Closing a port closes the pair; the other end delivers what it was
//!   sent, then sees the close. Dropping every handle of a port closes it.

mod port;
mod worker;

use std::cell::Cell;

pub use port::{MessageChannel, MessagePort};
pub use worker::{Worker, WorkerError};

thread_local! {
    /// This thread's worker id; 0 on a thread that is not a worker.
    static THREAD_ID: Cell<u64> = const { Cell::new(0) };
    /// The code given to [`exit`], for the worker's exit.
    static EXIT_CODE: Cell<Option<i32>> = const { Cell::new(None) };
}

/// Marks this thread as worker `id` (at its start).
fn enter_worker(id: u64) {
    THREAD_ID.with(|t| t.set(id));
    EXIT_CODE.with(|c| c.set(None));
}

/// The code [`exit`] set, if it was called.
fn take_exit_code() -> Option<i32> {
    EXIT_CODE.with(|c| c.take())
}

/// Whether this thread is not a worker thread (Node's `isMainThread`).
pub fn is_main_thread() -> bool {
    THREAD_ID.with(|t| t.get()) == 0
}

/// This worker's id (Node's `threadId`): the
/// [`Worker::thread_id`] the parent sees; 0 on a thread that is not a
/// worker.
pub fn thread_id() -> u64 {
    THREAD_ID.with(|t| t.get())
}

/// In a worker, ends it with exit code `code` (Node's `process.exit` in a
/// worker): the worker's loop stops after the current iteration, and the
/// parent's [`Worker::on_exit`] gets `code`. Outside a worker it only
/// stops the current loop (the code is not used).
pub fn exit(code: i32) {
    if !is_main_thread() {
        EXIT_CODE.with(|c| c.set(Some(code)));
    }
    if crate::has_current() {
        crate::stop();
    }
}
