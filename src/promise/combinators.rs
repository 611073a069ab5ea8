//! `Promise.all`, `allSettled`, `race` and `any`.
//!
//! Each subscribes one reaction to every input, in input order, as the
//! JavaScript versions call `then` on each; results come back in input
//! order whatever the order of settling. Like JavaScript's, they settle
//! asynchronously even when every input has already settled (the reactions
//! run in the next checkpoint), except that `all([])` is fulfilled and
//! `any([])` rejected at once.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::state::{reaction, Core, Outcome};
use super::{Promise, Rejection, Settlement};

/// Slots filled as the inputs settle, and how many are still missing.
struct Gather<T, O> {
    slots: RefCell<Vec<Option<T>>>,
    remaining: Cell<usize>,
    out: Rc<Core<O>>,
}

impl<T, O: 'static> Gather<T, O> {
    fn new(n: usize, out: Rc<Core<O>>) -> Rc<Self> {
        let mut slots = Vec::with_capacity(n);
        slots.resize_with(n, || None);
        Rc::new(Gather {
            slots: RefCell::new(slots),
            remaining: Cell::new(n),
            out,
        })
    }

    /// Stores slot `i`; returns every slot once the last one is in.
    fn fill(&self, i: usize, v: T) -> Option<Vec<T>> {
        self.slots.borrow_mut()[i] = Some(v);
        let left = self.remaining.get() - 1;
        self.remaining.set(left);
        (left == 0).then(|| {
            self.slots
                .take()
                .into_iter()
                .map(|s| s.expect("every slot filled"))
                .collect()
        })
    }
}

/// The shape `all`, `all_settled` and `any` share: with no inputs, settle
/// at once with `empty`; else subscribe `step` to every input, in input
/// order, with the slots the results are gathered in.
fn gather<T, V, O>(
    promises: impl IntoIterator<Item = Promise<T>>,
    empty: impl FnOnce() -> Settlement<O>,
    step: fn(&Gather<V, O>, usize, Outcome<T>),
) -> Promise<O>
where
    T: 'static,
    V: 'static,
    O: 'static,
{
    let inputs: Vec<Promise<T>> = promises.into_iter().collect();
    let out = Core::pending();
    let result = Promise { core: out.clone() };
    if inputs.is_empty() {
        out.resolve(empty());
        return result;
    }
    let g = Gather::new(inputs.len(), out);
    for (i, p) in inputs.into_iter().enumerate() {
        let g = g.clone();
        p.core.subscribe(reaction(move |o| step(&g, i, o)));
    }
    result
}

impl<T: 'static> Promise<T> {
    /// Fulfils with every value, in input order, once all are fulfilled;
    /// rejects with the first rejection (JavaScript's `Promise.all`).
    ///
    /// ```
    /// use evloop::promise::Promise;
    ///
    /// let event_loop = evloop::EventLoop::new()?;
    /// let _current = event_loop.enter();
    /// let later = evloop::promise::delay(std::time::Duration::from_millis(5)).then(|()| 1);
    /// let both = Promise::all([later, Promise::resolve(2)]);
    /// event_loop.run()?;
    /// assert_eq!(both.peek().unwrap().unwrap(), [1, 2]); // input order
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn all(promises: impl IntoIterator<Item = Promise<T>>) -> Promise<Vec<T>> {
        gather(
            promises,
            || Settlement::Fulfill(Vec::new()),
            |g, i, o| match o {
                Ok(v) => {
                    if let Some(all) = g.fill(i, v) {
                        g.out.resolve(Settlement::Fulfill(all));
                    }
                }
                Err(e) => g.out.resolve(Settlement::Reject(e)),
            },
        )
    }

    /// Fulfils, once every input has settled, with each outcome in input
    /// order (JavaScript's `Promise.allSettled`; `Ok` is
    /// `{status: 'fulfilled'}`, `Err` is `{status: 'rejected'}`). Never
    /// rejects.
    pub fn all_settled(
        promises: impl IntoIterator<Item = Promise<T>>,
    ) -> Promise<Vec<Result<T, Rejection>>> {
        gather(
            promises,
            || Settlement::Fulfill(Vec::new()),
            |g, i, o| {
                if let Some(all) = g.fill(i, o) {
                    g.out.resolve(Settlement::Fulfill(all));
                }
            },
        )
    }

    /// Settles as the first input to settle (JavaScript's `Promise.race`;
    /// inputs already settled win in input order). With no inputs it never
    /// settles.
    pub fn race(promises: impl IntoIterator<Item = Promise<T>>) -> Promise<T> {
        let out = Core::pending();
        for p in promises {
            let out = out.clone();
            p.core.subscribe(reaction(move |o| out.resolve(o.into())));
        }
        Promise { core: out }
    }

    /// Fulfils with the first fulfilment; if every input rejects, rejects
    /// with all the reasons in input order (JavaScript's `Promise.any` and
    /// its `AggregateError`: see [`Rejection::errors`]). With no inputs it
    /// rejects at once.
    pub fn any(promises: impl IntoIterator<Item = Promise<T>>) -> Promise<T> {
        gather(
            promises,
            || Settlement::Reject(Rejection::aggregate(Vec::new())),
            |g, i, o| match o {
                Ok(v) => g.out.resolve(Settlement::Fulfill(v)),
                Err(e) => {
                    if let Some(all) = g.fill(i, e) {
                        g.out.resolve(Settlement::Reject(Rejection::aggregate(all)));
                    }
                }
            },
        )
    }
}

impl<T> From<Result<T, Rejection>> for Settlement<T> {
    fn from(r: Result<T, Rejection>) -> Self {
        match r {
            Ok(v) => Settlement::Fulfill(v),
            Err(e) => Settlement::Reject(e),
        }
    }
}
