//! Cancellation, as the web and Node do it: an [`AbortController`] and
//! its [`AbortSignal`].
//!
//! An operation that waits takes a signal; aborting the signal stops the
//! operation at once, releases what it held (its timer, socket, pool job
//! or child process), and ends it with one error in every style: an
//! [`AbortError`] carrying the signal's reason, which a callback gets as an
//! `io::Error` (see [`is_abort_error`]), a promise as a [`Rejection`] whose
//! [`is_aborted`](Rejection::is_aborted) is true, and a task as either.
//! Aborting after the operation completed does nothing, and an abort is
//! never reported as an unhandled rejection by itself.
//!
//! ```
//! use std::time::Duration;
//! use evloop::abort::{AbortController, AbortSignal};
//!
//! evloop::run(|| {
//!     let controller = AbortController::new();
//!     let signal = controller.signal();
//!     signal.on_abort(|reason| println!("aborted: {reason}"));
//!     evloop::set_timeout(Duration::from_millis(5), move || controller.abort(None));
//!     // A signal that aborts by itself (its timer does not keep the loop
//!     // alive), and one that follows either.
//!     let deadline = AbortSignal::timeout(Duration::from_secs(3));
//!     let either = AbortSignal::any(&[signal, deadline]);
//!     either.on_abort(|reason| println!("the first abort wins: {reason}"));
//! })
//! .unwrap();
//! ```
//!
//! An operation keeps the signal it was given alive until it completes,
//! so a temporary (`&AbortSignal::timeout(d)`) works.
//!
//! A signal is `!Send`, like the loop's other handles. To abort from
//! another thread, take an [`AbortSender`] from the controller.
//!
//! # How an operation takes a signal
//!
//! One convention across the crate, in place of Node's `{ signal }`
//! option:
//!
//! - a function that starts an operation has a **`_with_signal`** variant
//!   whose last argument before the callback (or last argument, for
//!   promises and futures) is `&AbortSignal`:
//!   `set_timeout_with_signal(delay, &signal, cb)`,
//!   `fs::read_file_with_signal(path, &signal, cb)`,
//!   `promise::delay_with_signal(delay, &signal)`,
//!   `task::sleep_with_signal(delay, &signal)`;
//! - a builder has a **`signal(&signal)`** method
//!   (`process::Command::new("sleep").signal(&signal)`);
//! - any future, including a method of an async socket, is raced against a
//!   signal with [`AbortSignal::race`]
//!   (`signal.race(stream.read(&mut buf)).await`), and any promise with
//!   [`Promise::with_signal`](crate::promise::Promise::with_signal).
//!
//! What an abort releases, and what each operation's callback, promise or
//! future gets, is listed on each `_with_signal` function.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::Rejection;
use crate::event_loop::slots::{LoopLocal, PerLoop};
use crate::event_loop::{with_current, LoopRef, LoopState};
use crate::remote::{LoopClosed, Remote};
use crate::timers::Timeout;

pub use crate::error::AbortError;

mod pool;
mod timers;

pub use pool::queue_work_with_signal;
pub(crate) use timers::arm_timeout;
pub use timers::{set_interval_with_signal, set_timeout_with_signal};

/// Whether `e` is the error of an aborted operation (an [`AbortError`]).
pub fn is_abort_error(e: &io::Error) -> bool {
    crate::error::abort::as_abort_error(e).is_some()
}

type Listener = Box<dyn FnOnce(&Rejection)>;

/// A signal's state, shared by its clones and its controller.
struct State {
    reason: RefCell<Option<Rejection>>,
    listeners: RefCell<slab::Slab<(u64, Listener)>>,
    /// Ids of listeners (never reused, unlike slab keys).
    next_id: Cell<u64>,
    /// For [`AbortSignal::timeout`]: its timer, cleared when the signal
    /// aborts otherwise or is dropped.
    timer: RefCell<Option<Timeout>>,
    /// For [`AbortSignal::any`]: its sources (kept alive, as the web's
    /// garbage collector keeps them: `any(&[AbortSignal::timeout(..)])`
    /// must still time out) and the listeners it registered on them,
    /// removed when it aborts or is dropped.
    sources: RefCell<Vec<(AbortSignal, AbortListener)>>,
    /// Its entry in the loop's table of signals with senders, if any.
    sender: RefCell<Option<(Weak<LoopState>, usize)>>,
    /// Itself, while it has listeners and has not aborted, for a signal
    /// that aborts by itself (a [`timeout`](AbortSignal::timeout), or an
    /// [`any`](AbortSignal::any) of one): listened to, it stays alive when
    /// its clones are dropped, so `signal.on_abort(..)` on a temporary
    /// timeout still runs. Node keeps such signals alive the same way.
    /// Cleared when the last listener is removed or the signal aborts (a
    /// timeout always does, so this cycle always ends). A controller's
    /// signal never keeps itself: with its controller gone it can never
    /// abort, and its listeners are dropped with its last clone.
    keep_alive: RefCell<Option<Rc<State>>>,
    /// It aborts by itself (see `keep_alive`).
    self_aborting: Cell<bool>,
}

impl Drop for State {
    fn drop(&mut self) {
        if let Some(t) = self.timer.get_mut().take() {
            crate::timers::clear_timeout(&t);
        }
        for (_, l) in self.sources.get_mut().drain(..) {
            l.remove();
        }
        if let Some((lp, key)) = self.sender.get_mut().take() {
            if let Some(lp) = lp.upgrade() {
                let entry = ABORTERS.get(&lp).entries.borrow_mut().try_remove(key);
                drop(entry);
            }
        }
    }
}

/// The signal of an [`AbortController`], or one that aborts by itself
/// ([`timeout`](AbortSignal::timeout), [`any`](AbortSignal::any)). Pass it
/// to an operation to make it abortable. Cheap to clone; all clones are
/// the same signal.
///
/// Awaiting a signal (`signal.clone().await`) waits until it aborts and
/// gives its reason.
#[derive(Clone)]
pub struct AbortSignal {
    state: Rc<State>,
}

/// Aborts its [`signal`](AbortController::signal) (the web's
/// `AbortController`).
pub struct AbortController {
    signal: AbortSignal,
}

/// A listener added with [`AbortSignal::on_abort`]: keep it to
/// [`remove`](AbortListener::remove) the listener. Dropping it leaves the
/// listener in place (as Node's `addEventListener` does).
#[must_use = "dropping it leaves the listener in place; keep it to remove the listener"]
pub struct AbortListener {
    state: Weak<State>,
    key: usize,
    id: u64,
    /// For an operation's listener ([`AbortSignal::on_abort_op`]): the
    /// signal, kept alive while the operation holds this handle.
    _hold: Option<AbortSignal>,
}

impl AbortSignal {
    fn fresh() -> AbortSignal {
        AbortSignal {
            state: Rc::new(State {
                reason: RefCell::new(None),
                listeners: RefCell::new(slab::Slab::new()),
                next_id: Cell::new(0),
                timer: RefCell::new(None),
                sources: RefCell::new(Vec::new()),
                sender: RefCell::new(None),
                keep_alive: RefCell::new(None),
                self_aborting: Cell::new(false),
            }),
        }
    }

    /// A signal that is already aborted with `reason` (`None`: the default
    /// reason, [`Rejection::aborted`]) (the web's `AbortSignal.abort()`).
    pub fn abort(reason: impl Into<Option<Rejection>>) -> AbortSignal {
        let s = AbortSignal::fresh();
        s.fire(reason.into().unwrap_or_else(Rejection::aborted));
        s
    }

    /// A signal that aborts by itself after `delay`, with a `TimedOut`
    /// reason (the web's `AbortSignal.timeout`: Node's `TimeoutError`). Its
    /// timer is unref'd: it does not keep the loop alive, so a program
    /// whose work finished first ends without waiting for it.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn timeout(delay: Duration) -> AbortSignal {
        let s = AbortSignal::fresh();
        s.state.self_aborting.set(true);
        let weak = Rc::downgrade(&s.state);
        let timer = crate::timers::set_timeout(delay, move || {
            if let Some(state) = weak.upgrade() {
                state.timer.borrow_mut().take();
                AbortSignal { state }.fire(Rejection::from(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "The operation was aborted due to timeout",
                )));
            }
        });
        timer.unref();
        *s.state.timer.borrow_mut() = Some(timer);
        s
    }

    /// A signal that aborts when the first of `signals` does, with its
    /// reason (the web's `AbortSignal.any`). Already aborted if one of them
    /// is.
    pub fn any(signals: &[AbortSignal]) -> AbortSignal {
        let s = AbortSignal::fresh();
        if let Some(r) = signals.iter().find_map(AbortSignal::reason) {
            s.fire(r);
            return s;
        }
        s.state
            .self_aborting
            .set(signals.iter().any(|x| x.state.self_aborting.get()));
        let mut sources = Vec::with_capacity(signals.len());
        for source in signals {
            let weak = Rc::downgrade(&s.state);
            let l = source.on_abort(move |reason| {
                if let Some(state) = weak.upgrade() {
                    AbortSignal { state }.fire(reason.clone());
                }
            });
            sources.push((source.clone(), l));
        }
        *s.state.sources.borrow_mut() = sources;
        s
    }

    /// Whether it was aborted.
    pub fn aborted(&self) -> bool {
        self.state.reason.borrow().is_some()
    }

    /// The reason it was aborted with, if it was.
    pub fn reason(&self) -> Option<Rejection> {
        self.state.reason.borrow().clone()
    }

    /// `Err` with the [`AbortError`] if it was aborted (the web's
    /// `throwIfAborted`): the first line of an abortable operation.
    pub fn throw_if_aborted(&self) -> Result<(), AbortError> {
        match self.reason() {
            Some(r) => Err(AbortError::new(r)),
            None => Ok(()),
        }
    }

    /// The error an operation stopped by this signal ends with (its
    /// reason, or the default one if it was not aborted).
    pub fn error(&self) -> AbortError {
        AbortError::new(self.reason().unwrap_or_else(Rejection::aborted))
    }

    /// Calls `listener` with the reason when the signal aborts (the web's
    /// `addEventListener('abort', ..)`), once. Listeners run in the order
    /// they were added. A listener added after the abort is never called
    /// (check [`aborted`](AbortSignal::aborted) first). While it has
    /// listeners, the signal stays alive even if every clone of it is
    /// dropped (so a [`timeout`](AbortSignal::timeout) still fires them),
    /// as Node keeps a listened-to signal; remove listeners you no longer
    /// need.
    pub fn on_abort(&self, listener: impl FnOnce(&Rejection) + 'static) -> AbortListener {
        let id = self.state.next_id.get();
        self.state.next_id.set(id + 1);
        let key = self
            .state
            .listeners
            .borrow_mut()
            .insert((id, Box::new(listener)));
        if !self.aborted() && self.state.self_aborting.get() {
            let mut keep = self.state.keep_alive.borrow_mut();
            if keep.is_none() {
                *keep = Some(self.state.clone());
            }
        }
        AbortListener {
            state: Rc::downgrade(&self.state),
            key,
            id,
            _hold: None,
        }
    }

    /// [`on_abort`](AbortSignal::on_abort) for an operation: the returned
    /// handle also keeps the signal alive, so an operation that holds it
    /// until it completes (to remove the listener) can still be aborted
    /// through a signal whose other clones are gone (a temporary
    /// `AbortSignal::timeout`, a controller dropped after taking an
    /// [`AbortSender`]).
    pub(crate) fn on_abort_op(&self, listener: impl FnOnce(&Rejection) + 'static) -> AbortListener {
        let mut l = self.on_abort(listener);
        l._hold = Some(self.clone());
        l
    }

    /// Aborts: records the reason, then calls the listeners in the order
    /// they were added. Does nothing if already aborted.
    fn fire(&self, reason: Rejection) {
        if self.aborted() {
            return;
        }
        log::debug!("abort signal fired: {reason}");
        *self.state.reason.borrow_mut() = Some(reason.clone());
        if let Some(t) = self.state.timer.borrow_mut().take() {
            crate::timers::clear_timeout(&t);
        }
        // Take, then call: in insertion order (ids grow).
        let mut all: Vec<(u64, Listener)> = self.state.listeners.borrow_mut().drain().collect();
        all.sort_by_key(|(id, _)| *id);
        for (_, l) in all {
            l(&reason);
        }
        // This signal no longer needs to follow its sources.
        let sources = std::mem::take(&mut *self.state.sources.borrow_mut());
        for (_, l) in sources {
            l.remove();
        }
        // Nothing left to call: its clones alone keep it now.
        let me = self.state.keep_alive.borrow_mut().take();
        drop(me);
    }
}

impl AbortListener {
    /// Removes the listener (the web's `removeEventListener`); does nothing
    /// if it already ran or the signal is gone.
    pub fn remove(&self) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let mut listeners = state.listeners.borrow_mut();
        if listeners
            .get(self.key)
            .is_some_and(|(id, _)| *id == self.id)
        {
            let l = listeners.remove(self.key);
            let last = listeners.is_empty();
            drop(listeners);
            drop(l);
            if last {
                // `state` (upgraded above) outlives this.
                let me = state.keep_alive.borrow_mut().take();
                drop(me);
            }
        }
    }
}

impl fmt::Debug for AbortListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortListener")
            .field("id", &self.id)
            .finish()
    }
}

impl fmt::Debug for AbortSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortSignal")
            .field("aborted", &self.aborted())
            .field("reason", &self.reason())
            .finish()
    }
}

impl Default for AbortController {
    fn default() -> Self {
        Self::new()
    }
}

impl AbortController {
    /// A controller and its signal, not aborted.
    pub fn new() -> AbortController {
        AbortController {
            signal: AbortSignal::fresh(),
        }
    }

    /// Its signal (a clone: all clones are the same signal).
    pub fn signal(&self) -> AbortSignal {
        self.signal.clone()
    }

    /// Aborts the signal with `reason` (`None`: the default reason,
    /// [`Rejection::aborted`]): every operation that took it ends with an
    /// [`AbortError`]. Does nothing the second time.
    pub fn abort(&self, reason: impl Into<Option<Rejection>>) {
        self.signal
            .fire(reason.into().unwrap_or_else(Rejection::aborted));
    }

    /// A `Send` handle that aborts this controller's signal from another
    /// thread (through the loop's [`Remote`]).
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn sender(&self) -> AbortSender {
        with_current(|lp| {
            let me = &self.signal.state;
            let mut sender = me.sender.borrow_mut();
            let key = match &*sender {
                Some((_, key)) => *key,
                None => {
                    let table = ABORTERS.get(lp);
                    let id = table.next_id.get();
                    table.next_id.set(id + 1);
                    let key = table.entries.borrow_mut().insert((id, Rc::downgrade(me)));
                    *sender = Some((Rc::downgrade(lp), key));
                    key
                }
            };
            let id = ABORTERS.get(lp).entries.borrow()[key].0;
            AbortSender {
                remote: lp.remote_handle(),
                key,
                id,
            }
        })
    }
}

impl fmt::Debug for AbortController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortController")
            .field("signal", &self.signal)
            .finish()
    }
}

/// Aborts an [`AbortController`]'s signal from another thread: the abort
/// runs on the loop thread, in its pending phase. Cheap to clone.
#[derive(Clone)]
pub struct AbortSender {
    remote: Remote,
    key: usize,
    /// The entry's id (never reused, unlike keys): a sender whose signal
    /// is gone, its entry reused, does nothing.
    id: u64,
}

impl AbortSender {
    /// Asks the loop to abort the signal with a message as its reason
    /// (`None`: the default reason). Fails only if the loop is gone.
    pub fn abort(&self, reason: Option<String>) -> Result<(), LoopClosed> {
        let (key, id) = (self.key, self.id);
        self.remote.post(move || {
            with_current(|state| {
                let weak = ABORTERS.get(state).entries.borrow().get(key).cloned();
                let Some(s) = weak
                    .filter(|(i, _)| *i == id)
                    .and_then(|(_, w)| w.upgrade())
                else {
                    return;
                };
                let signal = AbortSignal { state: s };
                signal.fire(reason.map_or_else(Rejection::aborted, Rejection::msg));
            })
        })
    }
}

impl fmt::Debug for AbortSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortSender")
            .field("closed", &self.remote.is_closed())
            .finish()
    }
}

/// The loop's signals that have senders (a per-loop slot).
#[derive(Default)]
struct Aborters {
    entries: RefCell<slab::Slab<(u64, Weak<State>)>>,
    next_id: Cell<u64>,
}

impl PerLoop for Aborters {
    fn new(_: &LoopState) -> Self {
        Aborters::default()
    }
}

static ABORTERS: LoopLocal<Aborters> = LoopLocal::new();

/// Waits until the signal aborts; gives its reason.
pub struct Aborted {
    signal: AbortSignal,
    waker: Rc<RefCell<Option<Waker>>>,
    listener: Option<AbortListener>,
}

impl IntoFuture for AbortSignal {
    type Output = Rejection;
    type IntoFuture = Aborted;

    fn into_future(self) -> Aborted {
        Aborted {
            signal: self,
            waker: Rc::new(RefCell::new(None)),
            listener: None,
        }
    }
}

impl Future for Aborted {
    type Output = Rejection;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Rejection> {
        if let Some(r) = self.signal.reason() {
            return Poll::Ready(r);
        }
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        if self.listener.is_none() {
            let w = self.waker.clone();
            let l = self.signal.on_abort(move |_| {
                if let Some(w) = w.borrow_mut().take() {
                    w.wake();
                }
            });
            self.listener = Some(l);
        }
        Poll::Pending
    }
}

impl Drop for Aborted {
    fn drop(&mut self) {
        if let Some(l) = self.listener.take() {
            l.remove();
        }
    }
}

impl fmt::Debug for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aborted")
            .field("signal", &self.signal)
            .finish()
    }
}

// ---- the glue operations use ----

impl AbortSignal {
    /// Runs `fut` until it completes or the signal aborts, whichever comes
    /// first: `Ok` with its output, or `Err` with the [`AbortError`] (then
    /// `fut` is dropped when the returned future is, which for evloop's
    /// futures releases their timer, socket registration or connection
    /// attempt). How any future becomes abortable, the async face of the
    /// `{ signal }` option: `signal.race(stream.read(&mut buf)).await`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::abort::AbortSignal;
    ///
    /// let r = evloop::block_on(async {
    ///     let signal = AbortSignal::timeout(Duration::from_millis(5));
    ///     signal.race(evloop::task::sleep(Duration::from_secs(3600))).await
    /// });
    /// assert!(r.unwrap().unwrap_err().reason().kind() == std::io::ErrorKind::TimedOut);
    /// ```
    pub fn race<F: IntoFuture>(&self, fut: F) -> Race<F::IntoFuture> {
        Race {
            fut: Box::pin(fut.into_future()),
            aborted: self.clone().into_future(),
        }
    }

    /// Makes a callback operation abortable (the glue behind every
    /// `_with_signal` function): returns the callback to hand to the
    /// operation. It runs `cb` exactly once: with the operation's result,
    /// or, if the signal aborts first, with the [`AbortError`] (in a
    /// `next_tick`, never inside `abort` itself), after `release` has
    /// stopped the operation (cancel the pool job, close the socket, kill
    /// the child). A result that arrives after the abort is dropped.
    /// Returns `None` (and queues `cb` with the error) if the signal is
    /// already aborted: the operation must not start.
    pub(crate) fn bind_callback<T: 'static>(
        &self,
        cb: impl FnOnce(io::Result<T>) + 'static,
        release: impl FnOnce() + 'static,
    ) -> Option<impl FnOnce(io::Result<T>) + 'static> {
        // The loop the operation runs on: the abort error is queued there,
        // even if the signal fires while another loop (or none) is current.
        let home = LoopRef::current();
        if let Some(reason) = self.reason() {
            home.next_tick(Box::new(move || cb(Err(AbortError::new(reason).into()))));
            return None;
        }
        let slot: CallbackSlot<T> = Rc::new(RefCell::new(Some(Box::new(cb))));
        let on_abort = slot.clone();
        let listener = self.on_abort(move |reason| {
            let cb = on_abort.borrow_mut().take();
            if let Some(cb) = cb {
                release();
                let err = AbortError::new(reason.clone());
                home.next_tick(Box::new(move || cb(Err(err.into()))));
            }
        });
        // Removes the listener however the operation ends: called back, or
        // dropped uncalled (its loop torn down), so the user's callback
        // does not stay on a long-lived signal. It also keeps the signal
        // alive while the operation runs (a temporary
        // `AbortSignal::timeout(..)` must still fire).
        let bound = Bound {
            listener,
            _signal: self.clone(),
        };
        Some(move |r: io::Result<T>| {
            drop(bound);
            let cb = slot.borrow_mut().take();
            if let Some(cb) = cb {
                cb(r);
            }
        })
    }
}

type CallbackSlot<T> = Rc<RefCell<Option<Box<dyn FnOnce(io::Result<T>)>>>>;

/// An operation's hold on its signal (see [`AbortSignal::bind_callback`]).
struct Bound {
    listener: AbortListener,
    _signal: AbortSignal,
}

impl Drop for Bound {
    fn drop(&mut self) {
        self.listener.remove();
    }
}

/// The future of [`AbortSignal::race`].
pub struct Race<F> {
    fut: Pin<Box<F>>,
    aborted: Aborted,
}

impl<F: Future> Future for Race<F> {
    type Output = Result<F::Output, AbortError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(reason) = Pin::new(&mut self.aborted).poll(cx) {
            return Poll::Ready(Err(AbortError::new(reason)));
        }
        self.fut.as_mut().poll(cx).map(Ok)
    }
}

impl<F> fmt::Debug for Race<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Race")
            .field("signal", &self.aborted.signal)
            .finish()
    }
}
