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
use crate::error::Error;
use crate::event_loop::{EventLoop, Inner};

/// What the loop does with a promise rejected and left without a handler
/// (Node's `--unhandled-rejections`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnhandledRejections {
    /// Log a warning through `log::warn!` and go on (Node's `warn`). A hook
    /// set with [`EventLoop::on_unhandled_rejection`] replaces the warning.
    #[default]
    Warn,
    /// Stop the loop: `run()` returns [`Error::UnhandledRejection`] (Node's
    /// `strict`, and its default `throw` when nothing listens). The hook, if
    /// set, is called first.
    Strict,
    /// Report nothing, except to the hook if one is set (Node's `none`).
    None,
}

type Hook = Box<dyn FnMut(&Rejection)>;

/// The loop's list of rejections waiting for the end of the checkpoint.
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

impl Tracker {
    pub(crate) fn track(&self, promise: Rc<dyn Tracked>, reason: Rejection) {
        self.pending.borrow_mut().push((promise, reason));
    }

    pub(crate) fn handled_late(&self, reason: Rejection) {
        self.handled_late.borrow_mut().push(reason);
    }

    /// Nothing to report.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.borrow().is_empty() && self.handled_late.borrow().is_empty()
    }

    /// One round of reports (Node's `processPromiseRejections`): first the
    /// late handlers, then the rejections still unhandled.
    pub(crate) fn process(&self, inner: &Inner) {
        let late = std::mem::take(&mut *self.handled_late.borrow_mut());
        for reason in late {
            log::debug!("rejection handled late: {reason}");
            self.call_hook(&self.on_handled, inner, "rejection-handled hook", &reason);
        }
        let round = std::mem::take(&mut *self.pending.borrow_mut());
        for (promise, reason) in round {
            if promise.is_handled() {
                continue;
            }
            promise.mark_warned();
            log::trace!("unhandled rejection: {reason}");
            let hooked = self.on_unhandled.borrow().is_some();
            match self.mode.get() {
                UnhandledRejections::Strict => {
                    if hooked {
                        self.call_hook(
                            &self.on_unhandled,
                            inner,
                            "unhandled-rejection hook",
                            &reason,
                        );
                    }
                    inner.set_fatal(Error::UnhandledRejection(reason));
                    return;
                }
                _ if hooked => self.call_hook(
                    &self.on_unhandled,
                    inner,
                    "unhandled-rejection hook",
                    &reason,
                ),
                UnhandledRejections::Warn => log::warn!(
                    "unhandled promise rejection: {reason} \
                     (attach a catch, or set a hook with EventLoop::on_unhandled_rejection)"
                ),
                UnhandledRejections::None => {}
            }
        }
    }

    /// Take, then call: the hook is out of its slot while it runs, and put
    /// back unless it set a new one.
    fn call_hook(
        &self,
        slot: &RefCell<Option<Hook>>,
        inner: &Inner,
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
    /// of a microtask checkpoint (default: [`UnhandledRejections::Warn`]).
    pub fn set_unhandled_rejections(&self, mode: UnhandledRejections) {
        self.inner.rejections.mode.set(mode);
    }

    /// Calls `hook` with the reason of each promise rejected with no handler
    /// by the end of a microtask checkpoint (Node's
    /// `process.on('unhandledRejection')`), instead of the warning. The hook
    /// runs on the loop thread and may use the loop. A panic in it is an
    /// uncaught panic.
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
        *self.inner.rejections.on_unhandled.borrow_mut() = Some(Box::new(hook));
    }

    /// Calls `hook` when a promise already reported unhandled gets a handler
    /// (Node's `process.on('rejectionHandled')`), at the end of the
    /// checkpoint after the one that attached it.
    pub fn on_rejection_handled(&self, hook: impl FnMut(&Rejection) + 'static) {
        *self.inner.rejections.on_handled.borrow_mut() = Some(Box::new(hook));
    }

    /// Removes both rejection hooks.
    pub fn clear_rejection_hooks(&self) {
        self.inner.rejections.on_unhandled.borrow_mut().take();
        self.inner.rejections.on_handled.borrow_mut().take();
    }
}
