//! [`block_on`]: run a loop until one future completes; [`run_async`]: an
//! async main, then the loop until nothing keeps it alive.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use crate::error::Error;
use crate::event_loop::{try_with_current, EventLoop};
use crate::promise::state::reaction;
use crate::promise::Rejection;

/// Runs `fut` to completion on an event loop and returns its output: for
/// tests, `main` functions and embedding.
///
/// The loop is the thread's current one if there is one and it is not
/// running (not inside `run*` or `run_main`); otherwise a fresh
/// [`EventLoop`] is made for the call (and dropped after, releasing what it
/// holds). `fut` is spawned as a task, then the loop is run
/// ([`run_once`](EventLoop::run_once) at a time) until it completes; other
/// work on the loop runs meanwhile, and what is left when `fut` completes
/// stays queued.
///
/// **Inside a loop.** One rule for `block_on`, [`run_async`] and
/// [`crate::run`]: called from inside a callback, a microtask or a task of
/// a running loop (before or after its first `.await`), they run a
/// *separate*, fresh loop, which blocks the outer one until it ends (as
/// they would on any other thread). A loop itself is never re-entered:
/// `EventLoop::run*` on the running loop return [`Error::Reentrant`].
/// Prefer `.await` inside a task.
///
/// # Errors
/// - [`Error::Panicked`] if `fut` panicked (the task's promise was rejected
///   with the panic), or a callback on the loop panicked with no
///   uncaught-exception handler;
/// - [`Error::Stalled`] if `fut` is still pending but nothing keeps the loop
///   alive, so nothing could ever wake it (it would hang in Rust; Node
///   would just exit). The task is aborted;
/// - [`Error::UnhandledRejection`] or [`Error::UnhandledError`] if an
///   error on the loop was not handled (see [`crate::on_uncaught_exception`]),
///   and [`Error::Io`] if the loop could not be created or polled.
///
/// A future that fails by returning an `Err` is not an error of `block_on`:
/// its output is returned as is (`Ok(Err(e))`).
///
/// ```
/// use evloop::promise::Promise;
/// use std::time::Duration;
///
/// let n = evloop::block_on(async {
///     evloop::task::sleep(Duration::from_millis(1)).await;
///     Promise::resolve(41).await.unwrap() + 1
/// })?;
/// assert_eq!(n, 42);
/// # Ok::<(), evloop::Error>(())
/// ```
pub fn block_on<F>(fut: F) -> Result<F::Output, Error>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let existing = try_with_current(Rc::clone).filter(|i| !i.is_busy());
    let (el, guard) = match existing {
        Some(inner) => (EventLoop { inner }, None),
        None => {
            let el = EventLoop::new()?;
            let guard = el.enter();
            (el, Some(guard))
        }
    };
    let r = drive(&el, fut);
    drop(guard);
    r
}

/// Runs `fut` as an async main, as Node runs an ES module with top-level
/// `await`: on a new loop, `fut` is spawned as the main task (polled
/// synchronously up to its first pending `.await`, then a microtask
/// checkpoint), and the loop runs **until nothing keeps it alive**, even
/// after `fut` completed: what it spawned or armed (tasks woken by timers,
/// I/O, `set_timeout`s) still runs. Its output is returned once the loop
/// has ended. This is the difference with [`block_on`], which returns as
/// soon as its future completes.
///
/// The loop is dropped before this returns, releasing what it held.
///
/// # Errors
/// - [`Error::Panicked`] if `fut` panicked: the loop stops at the end of
///   that iteration (Node exits on an async main's unhandled rejection),
///   or if a callback on the loop panicked with no uncaught-exception handler;
/// - [`Error::Stalled`] if the loop ended with `fut` still pending: nothing
///   could wake it any more (Node exits with code 13, "unsettled top-level
///   await");
/// - [`Error::UnhandledRejection`] or [`Error::UnhandledError`] if an
///   error on the loop was not handled, [`Error::Io`] if the loop could not
///   be created or polled.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
///
/// let later = Rc::new(Cell::new(false));
/// let l = later.clone();
/// let n = evloop::run_async(async move {
///     evloop::spawn(async move {
///         evloop::task::sleep(Duration::from_millis(2)).await;
///         l.set(true); // after main's future completed
///     });
///     7
/// })?;
/// assert_eq!(n, 7);
/// assert!(later.get());
/// # Ok::<(), evloop::Error>(())
/// ```
pub fn run_async<F>(fut: F) -> Result<F::Output, Error>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let el = EventLoop::new()?;
    let mut main_task = None;
    let main = el.run_main(|| main_task = Some(MainTask::spawn(fut, true)));
    let Some(MainTask { out, failed, abort }) = main_task else {
        return Err(main.err().unwrap_or(Error::Stalled));
    };
    let ran = match main {
        Ok(()) if failed.borrow().is_none() => el.run(),
        other => other,
    };
    if let Some(e) = failed.borrow_mut().take() {
        return Err(rejection_error(e));
    }
    ran?;
    let v = out.borrow_mut().take();
    match v {
        Some(v) => Ok(v),
        None => {
            abort.abort();
            Err(Error::Stalled)
        }
    }
}

/// A future run as the main task of `block_on` or `run_async`: where its
/// output or its failure lands, and how to abort it.
struct MainTask<O> {
    out: Rc<RefCell<Option<O>>>,
    failed: Rc<RefCell<Option<Rejection>>>,
    abort: super::AbortHandle,
}

impl<O: 'static> MainTask<O> {
    /// Spawns `fut` on the current loop; with `stop_on_failure`, a
    /// failure also stops the loop (an async main's panic ends the run).
    fn spawn(fut: impl Future<Output = O> + 'static, stop_on_failure: bool) -> Self {
        let out: Rc<RefCell<Option<O>>> = Rc::default();
        let failed: Rc<RefCell<Option<Rejection>>> = Rc::default();
        let o = out.clone();
        let (promise, abort) = super::spawn_handle(async move {
            let v = fut.await;
            *o.borrow_mut() = Some(v);
        });
        let f = failed.clone();
        promise.core.subscribe(reaction(move |r: Result<(), _>| {
            if let Err(e) = r {
                *f.borrow_mut() = Some(e);
                if stop_on_failure {
                    crate::event_loop::stop();
                }
            }
        }));
        MainTask { out, failed, abort }
    }
}

/// The error for a main task's rejection.
fn rejection_error(e: Rejection) -> Error {
    match e.as_panic() {
        Some(p) => Error::Panicked(p.clone()),
        None => Error::UnhandledRejection(e),
    }
}

fn drive<F>(el: &EventLoop, fut: F) -> Result<F::Output, Error>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let MainTask { out, failed, abort } = MainTask::spawn(fut, false);
    loop {
        if let Some(v) = out.borrow_mut().take() {
            return Ok(v);
        }
        if let Some(e) = failed.borrow_mut().take() {
            return Err(rejection_error(e));
        }
        let turn = match el.run_once() {
            Ok(t) => t,
            Err(e) => {
                abort.abort();
                return Err(e);
            }
        };
        if !turn.alive && out.borrow().is_none() && failed.borrow().is_none() {
            abort.abort();
            return Err(Error::Stalled);
        }
    }
}
