//! `promise.await`: [`Promise<T>`] is `IntoFuture`.
//!
//! Timing follows JavaScript's `await`: awaiting a promise costs exactly one
//! microtask hop. On its first poll the future subscribes a reaction to the
//! promise (JavaScript's `PerformPromiseThen`). When the reaction job runs,
//! it stores the outcome and, if the future is awaited by an evloop task,
//! polls that task right there, inside the reaction job, as V8 resumes an
//! async function inside its reaction job. No second microtask is queued,
//! so `.await` and `.then` chains interleave exactly as in Node. Polled with
//! any other waker (another executor's, or a combinator's own waker such as
//! `FuturesUnordered`'s), the future wakes that waker instead.
//!
//! The reaction and the future share one allocation, the await slot: the
//! promise holds it as its reaction, the future as the place its outcome
//! arrives. An await of a promise that has already settled, polled by its
//! task, needs no slot at all: the future keeps a copy of the outcome and
//! queues a microtask that polls the task (where the reaction job would
//! have been queued), and completes once that microtask has run.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::executor::{
    current_task, has_resumed, is_task_waker, queue_delivery, queue_resume, redirect_resume, run,
    Deliver, Queued, TaskId,
};
use crate::event_loop::try_with_current;
use crate::microtasks::MicroJob;
use crate::promise::state::{Outcome, SharedReaction};
use crate::promise::{Promise, Rejection};

/// The await slot: the promise's reaction, and what the future reads.
struct AwaitSlot<T> {
    /// Set when the promise settles; the future sees it only once the
    /// reaction job has run (`arrived`), one microtask hop later.
    outcome: RefCell<Option<Outcome<T>>>,
    arrived: Cell<bool>,
    /// The evloop task to poll directly: set when the last poll was by that
    /// task with its own waker.
    task: Cell<Option<TaskId>>,
    /// The waker of the last poll (the fallback, and the only way for a
    /// foreign executor).
    waker: RefCell<Option<Waker>>,
}

impl<T> AwaitSlot<T> {
    /// A slot whose outcome, if any, is not seen before the reaction job.
    fn new(outcome: Option<Outcome<T>>) -> Rc<Self> {
        Rc::new(AwaitSlot {
            outcome: RefCell::new(outcome),
            arrived: Cell::new(false),
            task: Cell::new(None),
            waker: RefCell::new(None),
        })
    }

    fn update(&self, cx: &Context<'_>) {
        if is_task_waker(cx.waker()) {
            // Polled by the task itself: `deliver` polls the task directly
            // and would wake it only if it were gone (nothing to wake), so
            // no clone is kept, and the task needs no waker of its own.
            self.task.set(current_task());
            let old = self.waker.borrow_mut().take();
            drop(old);
            return;
        }
        // Polled with another waker (another executor's, or a combinator's
        // such as `FuturesUnordered`'s, which polls only what its own waker
        // woke): polling the task would not reach this future, so wake.
        self.task.set(None);
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

impl<T: 'static> SharedReaction<T> for AwaitSlot<T> {
    /// The promise settled: keep the outcome and queue the reaction job.
    fn schedule(self: Rc<Self>, outcome: Outcome<T>) -> MicroJob {
        *self.outcome.borrow_mut() = Some(outcome);
        queue_delivery(self)
    }
}

impl<T> Deliver for AwaitSlot<T> {
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
    state: Await<T>,
}

const _: () = assert!(std::mem::size_of::<PromiseFuture<u64>>() <= 40);

/// Unpin for any `T`, as when it held only `Rc`s: the outcome it may keep
/// is plain data it moves out, never pinned.
impl<T> Unpin for PromiseFuture<T> {}

enum Await<T> {
    /// Not polled yet.
    Start,
    /// Subscribed: the await slot is the promise's reaction.
    Waiting(Rc<AwaitSlot<T>>),
    /// The promise had settled when `task` first polled the future: the
    /// outcome waits here until the resume microtask `ticket` has run.
    Resuming {
        outcome: Option<Outcome<T>>,
        /// (In 8 bytes: a `PromiseFuture` is part of every future that
        /// awaits one.)
        task: Queued,
        ticket: u64,
    },
    Done,
}

impl<T: 'static> PromiseFuture<T> {
    /// The first poll: resume the task one hop later if the promise has
    /// settled and the task polls the future itself, else subscribe.
    fn start(&mut self, cx: &Context<'_>) {
        if let Some(task) = current_task().filter(|_| is_task_waker(cx.waker())) {
            if let Some(outcome) = self.promise.core.subscribe_settled() {
                if let Some(ticket) = queue_resume(task) {
                    self.state = Await::Resuming {
                        outcome: Some(outcome),
                        task: Queued::new(task),
                        ticket,
                    };
                    return;
                }
            }
        }
        let shared = AwaitSlot::new(None);
        shared.update(cx);
        self.promise.core.subscribe_shared(shared.clone());
        self.state = Await::Waiting(shared);
    }
}

impl<T: 'static> Future for PromiseFuture<T> {
    type Output = Result<T, Rejection>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            Await::Start => {
                this.start(cx);
                Poll::Pending
            }
            Await::Waiting(shared) => match shared.take() {
                Some(o) => {
                    this.state = Await::Done;
                    Poll::Ready(o)
                }
                None => {
                    shared.update(cx);
                    Poll::Pending
                }
            },
            Await::Resuming {
                outcome,
                task,
                ticket,
            } => {
                if has_resumed(*ticket) {
                    let o = outcome.take().expect("the outcome waits until taken");
                    this.state = Await::Done;
                    return Poll::Ready(o);
                }
                if current_task().map(Queued::new) == Some(*task) && is_task_waker(cx.waker()) {
                    // Polled early (another wake of the same task): the
                    // resume microtask will poll it again.
                    return Poll::Pending;
                }
                // Polled from somewhere else before the resume (moved into
                // a combinator or another task): the resume microtask
                // delivers to an await slot instead, which wakes whoever
                // polled last.
                let shared = AwaitSlot::new(outcome.take());
                shared.update(cx);
                redirect_resume(*ticket, Some(shared.clone()));
                this.state = Await::Waiting(shared);
                Poll::Pending
            }
            Await::Done => panic!("PromiseFuture polled after it completed"),
        }
    }
}

impl<T> Drop for PromiseFuture<T> {
    fn drop(&mut self) {
        match &self.state {
            Await::Waiting(s) => {
                s.task.set(None);
                // Not `take()` under a borrow: dropping a waker runs no user
                // code here, but keep the borrow short anyway.
                let w = s.waker.borrow_mut().take();
                drop(w);
            }
            // Dropped before its resume: that microtask polls nothing.
            Await::Resuming { ticket, .. } if !has_resumed(*ticket) => {
                redirect_resume(*ticket, None);
            }
            _ => {}
        }
    }
}

impl<T: 'static> fmt::Debug for PromiseFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromiseFuture")
            .field("promise", &self.promise)
            .finish()
    }
}

/// `promise.await` gives `Ok(value)` or `Err(rejection)`, one microtask hop
/// after the promise settles (or after the await, if it already had), as
/// JavaScript's `await` does.
impl<T: 'static> IntoFuture for Promise<T> {
    type Output = Result<T, Rejection>;
    type IntoFuture = PromiseFuture<T>;

    fn into_future(self) -> PromiseFuture<T> {
        PromiseFuture {
            promise: self,
            state: Await::Start,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The paths of an await of an already settled promise that the
    //! ordering tests do not reach.

    use std::cell::Cell;
    use std::future::{poll_fn, Future, IntoFuture};
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::Poll;

    use futures::stream::{FuturesUnordered, StreamExt};

    use crate::promise::Promise;

    /// Polls `f` once with the task's own context.
    async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
    }

    #[test]
    fn moved_into_a_combinator_before_its_resume() {
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        crate::run(move || {
            drop(crate::spawn(async move {
                let mut f = Promise::resolve(5).into_future();
                assert!(poll_once(&mut f).await.is_pending());
                // Polled next under FuturesUnordered's own waker: the resume
                // must wake that waker, not only poll the task.
                let mut set = FuturesUnordered::new();
                set.push(f);
                g.set(set.next().await.unwrap().unwrap());
            }));
        })
        .unwrap();
        assert_eq!(got.get(), 5);
    }

    #[test]
    fn pending_promise_awaited_inside_futures_unordered() {
        let got = Rc::new(Cell::new(0));
        let g = got.clone();
        crate::run(move || {
            let w = Promise::<u32>::with_resolvers();
            let (p, resolve) = (w.promise, w.resolve);
            drop(crate::spawn(async move {
                let mut set = FuturesUnordered::new();
                set.push(p.into_future());
                g.set(set.next().await.unwrap().unwrap());
            }));
            crate::set_timeout(std::time::Duration::from_millis(1), move || resolve(7));
        })
        .unwrap();
        assert_eq!(got.get(), 7);
    }

    #[test]
    fn awaiting_a_rejected_promise_handles_it() {
        let el = crate::EventLoop::new().unwrap();
        el.set_unhandled_rejections(crate::promise::UnhandledRejections::Strict);
        let got = Rc::new(Cell::new(false));
        let g = got.clone();
        // Strict mode would stop the loop with the rejection if the await
        // (settled fast path) had not counted as a handler.
        el.run_main(|| {
            let p = Promise::<u32>::reject(std::io::Error::other("no"));
            drop(crate::spawn(async move { g.set(p.await.is_err()) }));
        })
        .unwrap();
        assert!(got.get());
    }

    #[test]
    fn dropped_before_its_resume_polls_nothing_more() {
        let polls = Rc::new(Cell::new(0));
        let p = polls.clone();
        crate::run(move || {
            drop(crate::spawn(async move {
                let mut f = Some(Promise::resolve(1).into_future());
                poll_fn(|cx| {
                    p.set(p.get() + 1);
                    if let Some(mut fut) = f.take() {
                        assert!(Pin::new(&mut fut).poll(cx).is_pending());
                    }
                    Poll::<()>::Pending
                })
                .await;
            }));
        })
        .unwrap();
        assert_eq!(polls.get(), 1, "no poll for an await that was dropped");
    }

    #[test]
    fn polled_early_by_its_own_task_waits_for_the_hop() {
        let log = Rc::new(std::cell::RefCell::new(Vec::new()));
        let l = log.clone();
        crate::run(move || {
            let l2 = l.clone();
            drop(crate::spawn(async move {
                let mut f = Promise::resolve("await").into_future();
                assert!(poll_once(&mut f).await.is_pending());
                // Polled again before the resume microtask, the await must
                // still wait for its hop.
                assert!(poll_once(&mut f).await.is_pending());
                let v = f.await.unwrap();
                l2.borrow_mut().push(v);
            }));
            Promise::resolve("then").then(move |v| l.borrow_mut().push(v));
        })
        .unwrap();
        // As in JavaScript: the await's hop was queued first.
        assert_eq!(*log.borrow(), ["await", "then"]);
    }
}
