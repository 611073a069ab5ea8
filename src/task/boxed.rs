//! A task's box: its future and its promise, type-erased, in one
//! allocation. The executor's slot holds the box and nothing else of the
//! task but its waker state (see `executor`).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::promise::state::Core;
use crate::promise::{Rejection, Settlement};

/// A task's future, type-erased, and its promise: the future settles the
/// promise itself when it completes (see [`future`]). One allocation,
/// pinned by the box; the slot holds nothing else of the task but its
/// waker state.
pub(crate) type TaskFuture = Pin<Box<dyn Task>>;

/// What the executor does with a task's box.
pub(crate) trait Task {
    /// Polls the future; on completion it has settled the promise.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
    /// The promise, to reject when the task ends without completing (a
    /// panic, an abort). Taken before the future is dropped; `None` once
    /// the future has completed.
    fn take_promise(self: Pin<&mut Self>) -> Option<Rc<dyn TaskPromise>>;
}

/// What a slot holds while its task's box is out being polled: zero-sized,
/// so boxing it allocates nothing.
struct Running;

impl Task for Running {
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }

    fn take_promise(self: Pin<&mut Self>) -> Option<Rc<dyn TaskPromise>> {
        None
    }
}

/// A placeholder box for a slot whose task is being polled.
pub(super) fn running() -> TaskFuture {
    Box::pin(Running)
}

/// The promise side of a task, type-erased, for the two ways a task ends
/// without completing: a panic and an abort.
pub(crate) trait TaskPromise {
    /// Rejects the promise; `handled`: not reported as unhandled (the
    /// caller asked for it).
    fn reject(self: Rc<Self>, reason: Rejection, handled: bool);
}

impl<T: 'static> TaskPromise for Core<T> {
    fn reject(self: Rc<Self>, reason: Rejection, handled: bool) {
        if handled {
            self.mark_handled();
        }
        self.resolve(Settlement::Reject(reason));
    }
}

/// Boxes `fut` so that its output, mapped by `map`, settles `core`.
pub(crate) fn future<T, F, M>(fut: F, map: M, core: Rc<Core<T>>) -> TaskFuture
where
    T: 'static,
    F: Future + 'static,
    M: FnOnce(F::Output) -> Settlement<T> + 'static,
{
    Box::pin(Settling {
        fut,
        then: Some((map, core)),
    })
}

/// The user's future and what to do with its output. Written by hand, not
/// as an `async` block: when a poll panics, an `async` block's unwinding
/// drops the future it holds, and a future whose `Drop` panics too then
/// aborts the process (a panic during unwinding; found by the reliability
/// test T20). Here a panic only unwinds through `poll`; the executor
/// catches it and drops the future afterwards, catching that panic too.
struct Settling<F, M, T> {
    fut: F,
    then: Option<(M, Rc<Core<T>>)>,
}

impl<F, M, T> Settling<F, M, T> {
    /// The pinned future and the unpinned rest.
    #[allow(unsafe_code)]
    #[allow(clippy::type_complexity)]
    fn project(self: Pin<&mut Self>) -> (Pin<&mut F>, &mut Option<(M, Rc<Core<T>>)>) {
        // SAFETY: pin projection. `fut` is structurally pinned: it is never
        // moved out of `Settling` (no method hands it out by value, and
        // `Settling` has no `Drop` impl that could move it); `then` is not
        // pinned and only ever taken.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this` came from a `Pin`.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        (fut, &mut this.then)
    }
}

impl<T, F, M> Task for Settling<F, M, T>
where
    T: 'static,
    F: Future,
    M: FnOnce(F::Output) -> Settlement<T>,
{
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let (fut, then) = self.project();
        let out = std::task::ready!(fut.poll(cx));
        if let Some((map, core)) = then.take() {
            core.resolve(map(out));
        }
        Poll::Ready(())
    }

    fn take_promise(self: Pin<&mut Self>) -> Option<Rc<dyn TaskPromise>> {
        let (_, then) = self.project();
        then.take().map(|(_, core)| core as Rc<dyn TaskPromise>)
    }
}

/// Drops user data whose `Drop` may panic, without letting the panic out.
pub(super) fn drop_quietly<D>(d: D) {
    if catch_unwind(AssertUnwindSafe(move || drop(d))).is_err() {
        log::debug!("a task's future panicked while being dropped");
    }
}

/// A task ended without completing: drops its future (quietly), then
/// rejects its promise; `handled` as in [`TaskPromise::reject`].
pub(super) fn reject_quietly(mut fut: TaskFuture, reason: Rejection, handled: bool) {
    let promise = fut.as_mut().take_promise();
    drop_quietly(fut);
    if let Some(p) = promise {
        p.reject(reason, handled);
    }
}
