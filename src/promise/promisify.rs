//! Bridges between callbacks and promises, and the promise forms of the
//! loop's own operations (`delay`, `queue_work`).
//!
//! A callback-style operation reports once, through `FnOnce(Result<T, E>)`;
//! [`promisify`] gives it a promise instead, and [`callbackify`] goes the
//! other way. The error is carried unchanged: an `io::Error` from a
//! callback is the same `io::Error` (kind and OS code) inside the
//! [`Rejection`].

use std::io;
use std::time::Duration;

use super::state::{reaction, Core};
use super::{Promise, Rejection, Settlement};
use crate::abort::{AbortError, AbortSignal};

/// Runs a callback-style operation and returns a promise of its result
/// (Node's `util.promisify`, applied at the call). `op` receives the
/// callback to hand to the operation; when the operation calls it, the
/// promise settles. If the callback is dropped without being called, the
/// promise stays pending.
///
/// ```
/// use evloop::promise::promisify;
///
/// let event_loop = evloop::EventLoop::new()?;
/// let _current = event_loop.enter();
/// let text = promisify(|done| evloop::fs::read_to_string("Cargo.toml", done));
/// event_loop.run()?;
/// assert!(text.peek().unwrap().unwrap().contains("[package]"));
/// # Ok::<(), evloop::Error>(())
/// ```
pub fn promisify<T, E, F>(op: F) -> Promise<T>
where
    T: 'static,
    E: Into<Rejection>,
    F: FnOnce(Box<dyn FnOnce(Result<T, E>)>),
{
    let core = Core::<T>::pending();
    let c = core.clone();
    op(Box::new(move |r: Result<T, E>| {
        c.resolve(r.map_err(Into::into).into());
    }));
    Promise { core }
}

/// Turns a promise-returning function into a callback-style one (Node's
/// `util.callbackify`): the callback gets `Ok(value)` or `Err(reason)`.
/// As in Node, it is called from a `next_tick` queued when the promise
/// settles, so a panic in it is an uncaught panic, not a rejection.
///
/// ```
/// use evloop::promise::{callbackify, Promise};
///
/// evloop::run(|| {
///     let double = callbackify(|n: u32| Promise::resolve(n * 2));
///     double(21, Box::new(|r| assert_eq!(r.unwrap(), 42)));
/// })
/// .unwrap();
/// ```
#[allow(clippy::type_complexity)]
pub fn callbackify<A, T, F>(f: F) -> impl Fn(A, Box<dyn FnOnce(Result<T, Rejection>)>)
where
    T: 'static,
    F: Fn(A) -> Promise<T>,
{
    move |arg, cb| {
        f(arg)
            .core
            .subscribe(reaction(move |o| crate::next_tick(move || cb(o))));
    }
}

/// A promise fulfilled after `d` (Node's `timers/promises` `setTimeout`).
/// It holds a timer, so it keeps the loop alive until it fires.
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(|| {
///     evloop::promise::delay(Duration::from_millis(10)).then(|()| println!("10 ms later"));
/// })
/// .unwrap();
/// ```
pub fn delay(d: Duration) -> Promise<()> {
    let core = Core::<()>::pending();
    let c = core.clone();
    let _ = crate::set_timeout(d, move || c.resolve(Settlement::Fulfill(())));
    Promise { core }
}

/// [`delay`], abortable (Node's `timers/promises` `setTimeout(ms, undefined,
/// { signal })`): fulfilled after `d`, or rejected with the
/// [`AbortError`](crate::abort::AbortError) carrying the signal's reason if
/// `signal` aborts first ([`Rejection::is_aborted`]; never reported as
/// unhandled by itself).
///
/// What an abort releases: the timer, cleared at once, so it no longer
/// keeps the loop alive. If `signal` has already aborted, no timer is
/// armed and the promise is rejected (its reactions run as microtasks, as
/// always). Aborting after it was fulfilled does nothing. The listener it
/// adds to `signal` is removed when the timer fires.
///
/// ```
/// use std::time::Duration;
/// use evloop::abort::AbortController;
/// use evloop::promise::delay_with_signal;
///
/// evloop::run(|| {
///     let controller = AbortController::new();
///     delay_with_signal(Duration::from_secs(3600), &controller.signal())
///         .then(|()| unreachable!("aborted first"))
///         .catch(|e| assert!(e.is_aborted()));
///     controller.abort(None); // the hour-long timer goes at once
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn delay_with_signal(d: Duration, signal: &AbortSignal) -> Promise<()> {
    let core = Core::<()>::pending();
    let (c, r) = (core.clone(), core.clone());
    let armed = crate::abort::arm_timeout(
        d,
        signal,
        move || c.resolve(Settlement::Fulfill(())),
        move |reason| {
            let e = AbortError::new(reason.clone());
            r.resolve(Settlement::Reject(e.into()));
        },
    );
    match armed {
        Some(_) => Promise { core },
        None => Promise::reject(signal.error()),
    }
}

/// Runs `work` on the loop's thread pool and returns a promise of its
/// result (the promise form of [`crate::queue_work`]). A panic in `work`
/// rejects the promise with the same `io::Error` the callback form gets.
///
/// # Panics
/// If no event loop is current on this thread.
pub fn queue_work<T, W>(work: W) -> Promise<T>
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
{
    promisify(|done: Box<dyn FnOnce(io::Result<T>)>| crate::queue_work(work, done))
}

/// [`queue_work`], abortable (the promise form of
/// [`queue_work_with_signal`](crate::queue_work_with_signal)): if `signal`
/// aborts while the job is queued, it is cancelled and never runs; if it
/// is running, its result is discarded. Either way the promise rejects
/// with the [`AbortError`] at once ([`Rejection::is_aborted`]).
///
/// ```
/// use evloop::abort::AbortSignal;
/// use evloop::promise;
///
/// evloop::run(|| {
///     let aborted = AbortSignal::abort(None);
///     promise::queue_work_with_signal(|| 6 * 7, &aborted)
///         .catch(|e| {
///             assert!(e.is_aborted());
///             0
///         });
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn queue_work_with_signal<T, W>(work: W, signal: &AbortSignal) -> Promise<T>
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
{
    promisify(|done: Box<dyn FnOnce(io::Result<T>)>| {
        crate::queue_work_with_signal(work, signal, done)
    })
}
