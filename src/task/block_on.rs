//! [`block_on`]: run a loop until one future completes.

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
/// # Errors
/// - [`Error::Panicked`] if `fut` panicked (the task's promise was rejected
///   with the panic), or a callback on the loop panicked with no
///   uncaught-panic handler;
/// - [`Error::Stalled`] if `fut` is still pending but nothing keeps the loop
///   alive, so nothing could ever wake it (it would hang in Rust; Node
///   would just exit). The task is aborted;
/// - [`Error::UnhandledRejection`] in strict mode, and [`Error::Io`] if
///   the loop could not be created or polled.
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

fn drive<F>(el: &EventLoop, fut: F) -> Result<F::Output, Error>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let out: Rc<RefCell<Option<F::Output>>> = Rc::default();
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
        }
    }));
    loop {
        if let Some(v) = out.borrow_mut().take() {
            return Ok(v);
        }
        if let Some(e) = failed.borrow_mut().take() {
            return Err(match e.as_panic() {
                Some(p) => Error::Panicked(p.clone()),
                None => Error::UnhandledRejection(e),
            });
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
