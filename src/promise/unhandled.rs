//! Unhandled rejections, reported as Node reports them.
//!
//! A promise rejected while it has no handler is remembered. At the end of
//! the microtask checkpoint (after the `next_tick` and microtask queues are
//! both empty) each remembered promise that still has no handler is
//! reported, in the order they were rejected; a handler attached in the
//! same checkpoint prevents the report. A handler attached to a promise
//! already reported is itself reported, at the end of the next checkpoint
//! (Node's `rejectionHandled`). Work the reports queue runs after the whole
//! round of reports, and a rejection made during the round is reported in
//! the next round.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::state::Tracked;
use super::Rejection;
use crate::error::{Error, Origin};
use crate::event_loop::slots::{LoopLocal, PerLoop, Released};
use crate::event_loop::{with_current, EventLoop, LoopState};

/// The warning of the `warn` and `strict` modes, on stderr as Node's.
fn warn(reason: &Rejection) {
    log::warn!("unhandled promise rejection: {reason}");
    eprintln!(
        "evloop: unhandled promise rejection: {reason} \
         (attach a catch, or set a hook with evloop::promise::on_unhandled_rejection)"
    );
}

/// What the loop does with a promise rejected and left without a handler
/// (Node's `--unhandled-rejections`). Set it with
/// [`set_unhandled_rejections`] (or [`EventLoop::set_unhandled_rejections`]).
///
/// In every mode a rejection of an aborted task
/// ([`Rejection::is_aborted`]) is never reported by itself, and a promise
/// reported unhandled that gets a handler later is reported to the
/// [`on_rejection_handled`] hook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnhandledRejections {
    /// Node 20's default (`throw`): the [`on_unhandled_rejection`] hook gets
    /// it if one is set; otherwise it is raised as an uncaught error, which
    /// the [uncaught-exception handler](crate::on_uncaught_exception) gets
    /// (with [`Origin::UnhandledRejection`](crate::Origin)), or which stops
    /// the loop: `run()` returns [`Error::UnhandledRejection`].
    #[default]
    Throw,
    /// Raise it as an uncaught error whether or not a hook is set (Node's
    /// `strict`); then the hook, if set, is called, else a warning is
    /// printed on stderr.
    Strict,
    /// Print a warning on stderr, and call the hook if one is set (Node's
    /// `warn`). The loop goes on.
    Warn,
    /// Report nothing, except to the hook if one is set (Node's `none`).
    None,
}

type Hook = Box<dyn FnMut(&Rejection)>;

/// The loop's list of rejections waiting for the end of the checkpoint (a
/// per-loop slot, run by the loop's end-of-checkpoint hook).
#[derive(Default)]
pub(crate) struct Tracker {
    /// Rejected with no handler, in rejection order.
    pending: RefCell<Vec<(Rc<dyn Tracked>, Rejection)>>,
    /// Reported, then handled.
    handled_late: RefCell<Vec<Rejection>>,
    mode: Cell<UnhandledRejections>,
    on_unhandled: RefCell<Option<Hook>>,
    on_handled: RefCell<Option<Hook>>,
}

impl PerLoop for Tracker {
    fn new(state: &LoopState) -> Self {
        state.on_checkpoint_end(|state| Tracker::of(state).process(state));
        Tracker::default()
    }

    fn release(&self) -> Released {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        let late = std::mem::take(&mut *self.handled_late.borrow_mut());
        let n = pending.len() + late.len();
        Released::new("tracked rejections", n, (pending, late))
    }
}

static TRACKER: LoopLocal<Tracker> = LoopLocal::new();

impl Tracker {
    /// The loop's tracker.
    #[inline]
    pub(crate) fn of(state: &LoopState) -> &Tracker {
        TRACKER.get(state)
    }

    /// A promise was rejected with no handler: report it at the end of
    /// the checkpoint unless it gets one by then.
    pub(crate) fn track(state: &LoopState, promise: Rc<dyn Tracked>, reason: Rejection) {
        Tracker::of(state)
            .pending
            .borrow_mut()
            .push((promise, reason));
        state.request_checkpoint_end();
    }

    /// A promise reported unhandled got a handler.
    pub(crate) fn handled_late(state: &LoopState, reason: Rejection) {
        Tracker::of(state).handled_late.borrow_mut().push(reason);
        state.request_checkpoint_end();
    }

    /// Nothing to report.
    fn is_idle(&self) -> bool {
        self.pending.borrow().is_empty() && self.handled_late.borrow().is_empty()
    }

    /// One round of reports (Node's `processPromiseRejections`): first the
    /// late handlers, then the rejections still unhandled.
    fn process(&self, inner: &LoopState) {
        if self.is_idle() {
            return;
        }
        let late = std::mem::take(&mut *self.handled_late.borrow_mut());
        for reason in late {
            log::debug!("rejection handled late: {reason}");
            self.call_hook(&self.on_handled, inner, "rejection-handled hook", &reason);
        }
        let round = std::mem::take(&mut *self.pending.borrow_mut());
        let mut round = round.into_iter();
        for (promise, reason) in round.by_ref() {
            if promise.is_handled() || reason.is_aborted() {
                continue;
            }
            promise.mark_warned();
            log::trace!("unhandled rejection: {reason}");
            let hooked = self.on_unhandled.borrow().is_some();
            let hook = || {
                self.call_hook(
                    &self.on_unhandled,
                    inner,
                    "unhandled-rejection hook",
                    &reason,
                )
            };
            match self.mode.get() {
                UnhandledRejections::Throw if hooked => hook(),
                UnhandledRejections::Throw => inner.report_uncaught(
                    Error::UnhandledRejection(reason.clone()),
                    Origin::UnhandledRejection,
                ),
                UnhandledRejections::Strict => {
                    inner.report_uncaught(
                        Error::UnhandledRejection(reason.clone()),
                        Origin::UnhandledRejection,
                    );
                    if hooked {
                        hook();
                    } else {
                        warn(&reason);
                    }
                }
                UnhandledRejections::Warn => {
                    hook();
                    warn(&reason);
                }
                UnhandledRejections::None => hook(),
            }
            if inner.has_failed() {
                break;
            }
        }
        // The loop stops: what is left is reported when it runs again.
        let rest: Vec<_> = round.collect();
        if !rest.is_empty() {
            let mut pending = self.pending.borrow_mut();
            let newer = std::mem::replace(&mut *pending, rest);
            pending.extend(newer);
        }
        if !self.is_idle() {
            inner.request_checkpoint_end();
        }
    }

    /// Take, then call: the hook is out of its slot while it runs, and put
    /// back unless it set a new one.
    fn call_hook(
        &self,
        slot: &RefCell<Option<Hook>>,
        inner: &LoopState,
        origin: &'static str,
        reason: &Rejection,
    ) {
        let Some(mut hook) = slot.borrow_mut().take() else {
            return;
        };
        inner.call(origin, || hook(reason));
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(hook);
        }
    }
}

impl EventLoop {
    /// Chooses what happens to a promise rejected with no handler by the end
    /// of a microtask checkpoint (default: [`UnhandledRejections::Throw`],
    /// as Node 20). From inside the loop, use the free
    /// [`set_unhandled_rejections`].
    pub fn set_unhandled_rejections(&self, mode: UnhandledRejections) {
        Tracker::of(&self.inner).mode.set(mode);
    }

    /// Calls `hook` with the reason of each promise rejected with no handler
    /// by the end of a microtask checkpoint (Node's
    /// `process.on('unhandledRejection')`): in the default mode, the hook
    /// takes the rejection and the loop goes on. The hook runs on the loop
    /// thread and may use the loop. A panic in it is an uncaught panic.
    /// From inside the loop, use the free [`on_unhandled_rejection`].
    ///
    /// ```
    /// use evloop::promise::{Promise, Rejection};
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// let event_loop = evloop::EventLoop::new()?;
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let s = seen.clone();
    /// event_loop.on_unhandled_rejection(move |e| s.borrow_mut().push(e.to_string()));
    /// event_loop.run_main(|| {
    ///     let _ = Promise::<()>::reject(Rejection::msg("nobody caught me"));
    /// })?;
    /// assert_eq!(*seen.borrow(), ["nobody caught me"]);
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn on_unhandled_rejection(&self, hook: impl FnMut(&Rejection) + 'static) {
        Tracker::of(&self.inner).set_unhandled_hook(Some(Box::new(hook)));
    }

    /// Calls `hook` when a promise already reported unhandled gets a handler
    /// (Node's `process.on('rejectionHandled')`), at the end of the
    /// checkpoint after the one that attached it.
    pub fn on_rejection_handled(&self, hook: impl FnMut(&Rejection) + 'static) {
        Tracker::of(&self.inner).set_handled_hook(Some(Box::new(hook)));
    }

    /// Removes both rejection hooks.
    pub fn clear_rejection_hooks(&self) {
        Tracker::of(&self.inner).clear_hooks();
    }
}

impl Tracker {
    fn set_unhandled_hook(&self, hook: Option<Hook>) {
        let old = std::mem::replace(&mut *self.on_unhandled.borrow_mut(), hook);
        drop(old); // after the borrow: its captures may touch the loop
    }

    fn set_handled_hook(&self, hook: Option<Hook>) {
        let old = std::mem::replace(&mut *self.on_handled.borrow_mut(), hook);
        drop(old);
    }

    fn clear_hooks(&self) {
        self.set_unhandled_hook(None);
        self.set_handled_hook(None);
    }
}

/// Chooses the current loop's unhandled-rejection mode (see
/// [`EventLoop::set_unhandled_rejections`]; Node's
/// `--unhandled-rejections`), from anywhere inside the loop.
///
/// ```
/// use evloop::promise::{self, Promise, UnhandledRejections};
///
/// evloop::run(|| {
///     promise::set_unhandled_rejections(UnhandledRejections::None);
///     let _ = Promise::<()>::reject(evloop::promise::Rejection::msg("ignored"));
/// })
/// .expect("nothing is reported in None mode");
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn set_unhandled_rejections(mode: UnhandledRejections) {
    with_current(|inner| Tracker::of(inner).mode.set(mode))
}

/// Sets the current loop's unhandled-rejection hook (see
/// [`EventLoop::on_unhandled_rejection`]; Node's
/// `process.on('unhandledRejection')`), from anywhere inside the loop.
///
/// ```
/// use evloop::promise::{self, Promise};
///
/// evloop::run(|| {
///     promise::on_unhandled_rejection(|e| eprintln!("unhandled: {e}"));
///     let _ = Promise::<()>::reject(evloop::promise::Rejection::msg("reported to the hook"));
/// })
/// .expect("the hook took it");
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn on_unhandled_rejection(hook: impl FnMut(&Rejection) + 'static) {
    with_current(|inner| Tracker::of(inner).set_unhandled_hook(Some(Box::new(hook))))
}

/// Sets the current loop's rejection-handled hook (see
/// [`EventLoop::on_rejection_handled`]; Node's
/// `process.on('rejectionHandled')`).
///
/// # Panics
/// If no event loop is current on this thread.
pub fn on_rejection_handled(hook: impl FnMut(&Rejection) + 'static) {
    with_current(|inner| Tracker::of(inner).set_handled_hook(Some(Box::new(hook))))
}

/// Removes the current loop's two rejection hooks.
///
/// # Panics
/// If no event loop is current on this thread.
pub fn clear_rejection_hooks() {
    with_current(|inner| Tracker::of(inner).clear_hooks())
}
