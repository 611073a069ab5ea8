//! `promise.await`: [`Promise<T>`] is `IntoFuture`.
//!
//! Timing follows JavaScript's `await`: awaiting a promise costs exactly one
//! microtask hop. On its first poll the future subscribes a reaction to the
//! promise (JavaScript's `PerformPromiseThen`). When the reaction job runs,
//! it stores the outcome and, if the future is awaited by an evloop task,
//! polls that task right there, inside the reaction job, as V8 resumes an
//! async function inside its reaction job. No second microtask is queued,
//! so `.await` and `.then` chains interleave exactly as in Node. Polled by
//! another executor, the future wakes that executor's waker instead.
//!
//! The reaction and the future share one allocation, the await slot: the
//! promise holds it as its reaction, the future as the place its outcome
//! arrives.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::executor::{current_task, is_task_waker, queue_delivery, run, Deliver, TaskId};
use crate::event_loop::try_with_current;
use crate::microtasks::MicroJob;
use crate::promise::state::{Outcome, SharedReaction};
use crate::promise::{Promise, Rejection};

/// The await slot: the promise's reaction, and what the future reads.
struct Shared<T> {
    /// Set when the promise settles; the future sees it only once the
    /// reaction job has run (`arrived`), one microtask hop later.
    outcome: RefCell<Option<Outcome<T>>>,
    arrived: Cell<bool>,
    /// The evloop task that polled the future last, if any.
    task: Cell<Option<TaskId>>,
    /// The waker of the last poll (the fallback, and the only way for a
    /// foreign executor).
    waker: RefCell<Option<Waker>>,
}

impl<T> Shared<T> {
    fn update(&self, cx: &Context<'_>) {
        let task = current_task();
        self.task.set(task);
        if task.is_some() && is_task_waker(cx.waker()) {
            // Polled by the task itself: `deliver` polls the task directly
            // and would wake it only if it were gone (nothing to wake), so
            // no clone is kept, and the task needs no waker of its own.
            let old = self.waker.borrow_mut().take();
            drop(old);
            return;
        }
        let mut w = self.waker.borrow_mut();
        if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *w = Some(cx.waker().clone());
        }
    }

    /// The outcome, if the reaction job has run.
    fn take(&self) -> Option<Outcome<T>> {
        if !self.arrived.get() {
            return None;
        }
        self.outcome.borrow_mut().take()
    }
}

impl<T: Clone + 'static> SharedReaction<T> for Shared<T> {
    /// The promise settled: keep the outcome and queue the reaction job.
    fn schedule(self: Rc<Self>, outcome: Outcome<T>) -> MicroJob {
        *self.outcome.borrow_mut() = Some(outcome);
        queue_delivery(self)
    }
}

impl<T> Deliver for Shared<T> {
    /// The reaction job: let the outcome be seen, then resume the waiter.
    fn deliver(&self) {
        self.arrived.set(true);
        if let Some(id) = self.task.get() {
            if let Some(inner) = try_with_current(Rc::clone) {
                if run(&inner, id, false) {
                    return;
                }
            }
        }
        let waker = self.waker.borrow().clone();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The future of `promise.await`: the promise's value, or its rejection as
/// `Err`. Create it with `.await` (or `.into_future()`).
///
/// It must be polled on the promise's loop thread, and not again after it
/// completed (that panics). Dropping it before the promise settles only
/// stops the wake: the promise keeps running.
#[must_use = "futures do nothing unless awaited"]
pub struct PromiseFuture<T> {
    promise: Promise<T>,
    shared: Option<Rc<Shared<T>>>,
    done: bool,
}

impl<T: Clone + 'static> Future for PromiseFuture<T> {
    type Output = Result<T, Rejection>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "PromiseFuture polled after it completed");
        match &this.shared {
            Some(shared) => {
                let o = shared.take();
                match o {
                    Some(o) => {
                        this.done = true;
                        Poll::Ready(o)
                    }
                    None => {
                        shared.update(cx);
                        Poll::Pending
                    }
                }
            }
            None => {
                let shared = Rc::new(Shared {
                    outcome: RefCell::new(None),
                    arrived: Cell::new(false),
                    task: Cell::new(None),
                    waker: RefCell::new(None),
                });
                shared.update(cx);
                this.promise.core.subscribe_shared(shared.clone());
                this.shared = Some(shared);
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for PromiseFuture<T> {
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            s.task.set(None);
            // Not `take()` under a borrow: dropping a waker runs no user
            // code here, but keep the borrow short anyway.
            let w = s.waker.borrow_mut().take();
            drop(w);
        }
    }
}

impl<T: Clone + 'static> fmt::Debug for PromiseFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromiseFuture")
            .field("promise", &self.promise)
            .finish()
    }
}

/// `promise.await` gives `Ok(value)` or `Err(rejection)`, one microtask hop
/// after the promise settles (or after the await, if it already had), as
/// JavaScript's `await` does.
impl<T: Clone + 'static> IntoFuture for Promise<T> {
    type Output = Result<T, Rejection>;
    type IntoFuture = PromiseFuture<T>;

    fn into_future(self) -> PromiseFuture<T> {
        PromiseFuture {
            promise: self,
            shared: None,
            done: false,
        }
    }
}
