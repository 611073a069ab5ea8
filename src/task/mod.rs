//! `async`/`await` on the loop: the third style.
//!
//! [`spawn`] starts a Rust future as a task on the current loop, as calling
//! a JavaScript `async` function starts its body, and hands back a
//! [`Promise`] of its output. A [`Promise`] can be `.await`ed inside a task
//! (it is `IntoFuture`, giving `Result<T, Rejection>`), with JavaScript's
//! timing, so the three styles mix freely:
//!
//! ```
//! use evloop::promise::Promise;
//! use std::time::Duration;
//!
//! evloop::run(|| {
//!     let p = evloop::spawn(async {
//!         evloop::task::sleep(Duration::from_millis(5)).await;
//!         let n = Promise::resolve(20).await.unwrap();
//!         n + 1
//!     });
//!     p.then(|n| println!("{n}")); // 21
//! })
//! .unwrap();
//! ```
//!
//! ## Mapping from JavaScript
//!
//! | JavaScript | evloop |
//! |---|---|
//! | `const p = f()` for `async function f() {..}` | `let p = evloop::spawn(async { .. })` |
//! | `await p` | `p.await` (`Ok(v)` or `Err(rejection)`) |
//! | `throw e` inside an async function | return `Err(e)` from a [`spawn_try`] task, or panic: either rejects the promise |
//! | `await null` | [`yield_now`]`().await` |
//! | `await setTimeout(ms)` (`timers/promises`) | [`sleep`]`(d).await` |
//! | `AbortController.abort()` | [`AbortHandle::abort`] from [`spawn_handle`], or an [`AbortSignal`] given to [`spawn_with_signal`] |
//! | `await setTimeout(ms, undefined, { signal })` | [`sleep_with_signal`]`(d, &signal).await` |
//!
//! ## When a task runs
//!
//! - At [`spawn`]: synchronously, up to its first pending `.await`.
//! - After an awaited [`Promise`] settles: inside that promise's reaction
//!   job in the microtask checkpoint. That is one microtask hop, exactly as
//!   a JavaScript `await`, so `.then` chains and `.await`s interleave as in
//!   Node.
//! - After any other wake (a timer of [`sleep`], I/O, another thread): in
//!   a microtask queued by the waker (from another thread: through the
//!   loop's [`Remote`](crate::Remote), in the pending phase, then a
//!   microtask).
//!
//! Tasks keep nothing alive, like pending promises in Node: the loop ends
//! when its timers, sockets and requests do, whatever tasks still wait.
//! Futures need not be `Send`; the wakers are `Send + Sync`.
//!
//! [`net`] has the async sockets (TCP, UDP, Unix) on the same reactor.

mod async_fd;
mod await_promise;
mod block_on;
mod boxed;
pub mod chunk;
mod coop;
mod executor;
pub mod io;
pub mod net;
mod split;
mod stdio;
mod time;
mod waker;

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

pub use async_fd::{AsyncFd, ReadyGuard, ReadyMutGuard, TryIoError};
pub use await_promise::PromiseFuture;
pub use block_on::{block_on, run_async};
pub use chunk::Chunk;
pub use coop::TASK_BUDGET;

pub use stdio::{stderr, stdin, stdout, Stdin, Stdout};
pub use time::{
    interval, sleep, sleep_until, sleep_with_signal, timeout, yield_now, Elapsed, Interval, Sleep,
    SleepWithSignal, WithTimeout, YieldNow,
};

use crate::abort::{AbortError, AbortListener, AbortSignal};
use crate::event_loop::{with_current, LoopState};
use crate::promise::state::Core;
use crate::promise::{Promise, Rejection, Settlement};
use executor::TaskId;

/// Starts `fut` as a task on the current loop and returns a promise of its
/// output: JavaScript's call of an `async` function.
///
/// The future is polled once before `spawn` returns (the body runs up to
/// its first pending `.await`). When it completes the promise is fulfilled
/// with the output; if a poll panics the promise is rejected with the panic
/// ([`Rejection::is_panic`](crate::promise::Rejection::is_panic)), and, like
/// any rejection nobody handles, reported as unhandled.
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(|| {
///     let p = evloop::spawn(async {
///         evloop::task::sleep(Duration::from_millis(1)).await;
///         6 * 7
///     });
///     // A promise: chain it, or `.await` it in another task.
///     p.then(|n| assert_eq!(n, 42));
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn spawn<T, F>(fut: F) -> Promise<T>
where
    T: 'static,
    F: Future<Output = T> + 'static,
{
    spawn_handle(fut).0
}

/// Like [`spawn`] for a fallible future: `Ok(v)` fulfils the promise with
/// `v`, `Err(e)` rejects it with `e` (JavaScript's `throw` inside an
/// `async` function).
///
/// ```
/// evloop::run(|| {
///     let p = evloop::task::spawn_try(async {
///         let n: u32 = "x".parse().map_err(evloop::promise::Rejection::new)?;
///         Ok::<_, evloop::promise::Rejection>(n)
///     });
///     p.catch(|e| { println!("rejected: {e}"); 0 });
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn spawn_try<T, E, F>(fut: F) -> Promise<T>
where
    T: 'static,
    E: Into<Rejection>,
    F: Future<Output = Result<T, E>> + 'static,
{
    start(fut, |r| match r {
        Ok(v) => Settlement::Fulfill(v),
        Err(e) => Settlement::Reject(e.into()),
    })
    .0
}

/// Like [`spawn`], and also returns a handle that can abort the task.
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(|| {
///     let (p, handle) = evloop::task::spawn_handle(async {
///         evloop::task::sleep(Duration::from_secs(60)).await; // dropped by the abort
///     });
///     handle.abort();
///     assert!(handle.is_finished());
///     p.catch(|e| assert!(e.is_aborted()));
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn spawn_handle<T, F>(fut: F) -> (Promise<T>, AbortHandle)
where
    T: 'static,
    F: Future<Output = T> + 'static,
{
    start(fut, Settlement::Fulfill)
}

/// [`spawn`], bound to `signal`: when it aborts, the task is aborted as
/// [`AbortHandle::abort`] does (its future dropped at once, releasing the
/// timers, sockets and subscriptions it holds), and its promise rejects
/// with the [`AbortError`] carrying the signal's reason
/// ([`Rejection::is_aborted`] is true, [`Rejection::abort_reason`] is the
/// reason; never reported as unhandled by itself).
///
/// If `signal` has already aborted, the future is dropped without being
/// polled and the promise is rejected. Aborting after the task finished
/// does nothing. The listener it adds to `signal` is removed when the task
/// ends, however it ends. The signal comes before the future, as it comes
/// before the callback of the other `_with_signal` functions.
///
/// ```
/// use std::time::Duration;
/// use evloop::abort::AbortSignal;
///
/// evloop::run(|| {
///     let deadline = AbortSignal::timeout(Duration::from_millis(5));
///     evloop::task::spawn_with_signal(&deadline, async {
///         evloop::task::sleep(Duration::from_secs(3600)).await;
///         unreachable!("aborted first");
///     })
///     .catch(|e| assert!(e.is_aborted()));
/// })
/// .unwrap(); // in about 5 ms: the task's sleep went with it
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn spawn_with_signal<T, F>(signal: &AbortSignal, fut: F) -> Promise<T>
where
    T: 'static,
    F: Future<Output = T> + 'static,
{
    if let Some(reason) = signal.reason() {
        drop(fut);
        return Promise::reject(AbortError::new(reason));
    }
    let slot: Rc<Cell<Option<AbortListener>>> = Rc::default();
    let fut = ListenerOwner {
        fut: Box::pin(fut),
        slot: slot.clone(),
    };
    let core = Core::pending();
    let boxed = boxed::future(fut, Settlement::Fulfill, core.clone());
    with_current(|inner| {
        let id = executor::spawn_future(inner, boxed);
        if !executor::is_alive(inner, id) {
            // Finished (or panicked) in its first poll.
            return;
        }
        let weak = Rc::downgrade(inner);
        let c = core.clone();
        let abort = move |reason: &Rejection| {
            c.resolve(Settlement::Reject(AbortError::new(reason.clone()).into()));
            if let Some(inner) = weak.upgrade() {
                executor::abort(&inner, id);
            }
        };
        match signal.reason() {
            // The task aborted its own signal in its first poll.
            Some(reason) => abort(&reason),
            None => slot.set(Some(signal.on_abort_op(abort))),
        }
    });
    Promise { core }
}

/// A task's future and its abort listener, removed when the future goes.
struct ListenerOwner<F> {
    /// Boxed, so that pinning needs no `unsafe` projection.
    fut: Pin<Box<F>>,
    slot: Rc<Cell<Option<AbortListener>>>,
}

impl<F: Future> Future for ListenerOwner<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.fut.as_mut().poll(cx)
    }
}

impl<F> Drop for ListenerOwner<F> {
    fn drop(&mut self) {
        if let Some(l) = self.slot.take() {
            l.remove();
        }
    }
}

/// `map` turns the output into the settlement (no `async` wrapper: see
/// `boxed::future`).
fn start<T, F, M>(fut: F, map: M) -> (Promise<T>, AbortHandle)
where
    T: 'static,
    F: Future + 'static,
    M: FnOnce(F::Output) -> Settlement<T> + 'static,
{
    let core = Core::pending();
    let fut = boxed::future(fut, map, core.clone());
    with_current(|inner| {
        let inner = inner.clone();
        let id = executor::spawn_future(&inner, fut);
        (
            Promise { core },
            AbortHandle {
                inner: Rc::downgrade(&inner),
                id,
            },
        )
    })
}

/// Aborts a task started with [`spawn_handle`]. Dropping the handle does
/// not abort the task.
#[derive(Clone)]
pub struct AbortHandle {
    inner: Weak<LoopState>,
    id: TaskId,
}

impl AbortHandle {
    /// Drops the task's future now, releasing what it holds (timers,
    /// sockets, subscriptions), and rejects its promise with
    /// [`Rejection::aborted`](crate::promise::Rejection::aborted). That
    /// rejection is not reported as unhandled: the caller asked for it.
    ///
    /// From inside the task's own poll, the future is dropped as soon as
    /// that poll returns `Pending`. Aborting a finished task, or one whose
    /// loop is gone, does nothing.
    pub fn abort(&self) {
        if let Some(inner) = self.inner.upgrade() {
            executor::abort(&inner, self.id);
        }
    }

    /// Whether the task has finished (completed, panicked or aborted), or
    /// its loop is gone.
    pub fn is_finished(&self) -> bool {
        self.inner
            .upgrade()
            .map_or(true, |inner| !executor::is_alive(&inner, self.id))
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("task", &self.id.key)
            .field("finished", &self.is_finished())
            .finish()
    }
}
