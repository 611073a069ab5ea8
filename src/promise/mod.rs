//! Promises on the loop, with JavaScript's semantics: the second style.
//!
//! A [`Promise<T>`] is pending, then fulfilled with a `T` or rejected with
//! a [`Rejection`], once. Callbacks registered with [`then`](Promise::then)
//! and friends run in the loop's microtask checkpoint, in the order they
//! were registered, never synchronously (not even on a promise that has
//! already settled), so a Rust program built from promises prints its lines
//! in the same order as its JavaScript twin:
//!
//! ```
//! use evloop::promise::{Promise, Rejection};
//!
//! evloop::run(|| {
//!     let p = Promise::resolve(1);
//!     // Two subscribers, so two handles (`then` consumes one).
//!     p.clone().then(|v| println!("a{v}")).then(|()| println!("a2"));
//!     p.then(|v| println!("b{v}")).then(|()| println!("b2"));
//!     println!("sync");
//! })
//! .unwrap();
//! // sync, a1, b1, a2, b2 (as in node)
//! ```
//!
//! ## Mapping from JavaScript
//!
//! | JavaScript | evloop |
//! |---|---|
//! | `new Promise((resolve, reject) => ..)` | [`Promise::new`]`(\|resolve, reject\| ..)`: `resolve(v)`, `reject(e)`, `resolve.adopt(p)` |
//! | `Promise.withResolvers()` | [`Promise::with_resolvers`] |
//! | `.then(v => v + 1)` | [`then`](Promise::then)`(\|v\| v + 1)` |
//! | `.then(v => { throw e })`, `.then(v => otherPromise)` | [`and_then`](Promise::and_then) returning `Err(e)`, `Ok(v)` or a `Promise` |
//! | `.catch(e => fallback)` | [`catch`](Promise::catch) (a value) or [`or_else`](Promise::or_else) (`Result` or `Promise`) |
//! | `.then(onF, onR)` | [`then_or_else`](Promise::then_or_else) |
//! | `.finally(() => ..)` | [`finally`](Promise::finally), [`finally_with`](Promise::finally_with) |
//! | `Promise.all/allSettled/race/any` | [`Promise::all`], [`all_settled`](Promise::all_settled), [`race`](Promise::race), [`any`](Promise::any) |
//! | a `throw` inside a callback | returning `Err(..)`; a panic is caught and rejects too |
//! | `util.promisify`, `util.callbackify` | [`promisify`], [`callbackify`] |
//! | `timers/promises` `setTimeout` | [`delay`] |
//! | `process.on('unhandledRejection')` | [`on_unhandled_rejection`] |
//! | `process.on('uncaughtException')` | [`crate::on_uncaught_exception`] |
//! | `--unhandled-rejections=throw/strict/warn/none` | [`set_unhandled_rejections`] |
//!
//! ## Values move; a second subscriber needs `Clone`
//!
//! JavaScript hands every subscriber the same object; Rust hands each its
//! own `T`. [`then`](Promise::then) and the other subscribing methods (and
//! `.await`) consume the handle they are called on, and a handle can be
//! cloned only when `T: Clone`. So:
//!
//! - a promise of any value, `Clone` or not (an `io::Error`, a
//!   [`File`](std::fs::File), a big `Vec`), has one subscriber, which gets
//!   the value itself, moved: `spawn(async { std::fs::read("x") })` is a
//!   `Promise<io::Result<Vec<u8>>>` that can be awaited or `then`ed;
//! - subscribing twice (JavaScript's `p.then(a); p.then(b)`) takes a clone
//!   of the handle (`p.clone().then(a); p.then(b)`), which the compiler
//!   allows only for a `Clone` value; each subscriber then gets a copy,
//!   except the last one once no handle is left, which gets the original.
//!
//! The timing is JavaScript's either way: moving instead of copying changes
//! no microtask.
//!
//! ```
//! use evloop::promise::Promise;
//!
//! evloop::run(|| {
//!     let file = evloop::spawn(async { std::fs::File::open("Cargo.toml") });
//!     file.then(|r| {
//!         let f = r.expect("opened"); // a `File`: moved, never cloned
//!         assert!(f.metadata().unwrap().len() > 0);
//!     });
//! })
//! .unwrap();
//! ```
//!
//! A second subscriber of a value that is not `Clone` does not compile:
//!
//! ```compile_fail
//! use evloop::promise::Promise;
//!
//! struct Unique(Vec<u8>);
//! let p = Promise::resolve(Unique(vec![1]));
//! let second = p.clone(); // error: `Unique` is not `Clone`
//! ```
//!
//! ## Unhandled rejections
//!
//! A promise rejected with no handler attached by the end of the microtask
//! checkpoint is reported as Node 20 reports it (its default,
//! `--unhandled-rejections=throw`): the hook set with
//! [`on_unhandled_rejection`] gets it if there is one; otherwise it is an
//! uncaught error, which the [uncaught-exception
//! handler](crate::on_uncaught_exception) gets, or which stops the loop:
//! `run()` returns [`Error::UnhandledRejection`]. So a rejection never
//! vanishes: handle it, or the program ends with it. The other modes
//! ([`UnhandledRejections`]) are Node's `strict`, `warn` and `none`. A
//! handler attached later is reported through [`on_rejection_handled`].
//!
//! Pending promises keep nothing alive: the loop ends when its handles and
//! requests do, as Node's does.
//!
//! [`Error::UnhandledRejection`]: crate::Error::UnhandledRejection

mod abortable;
mod combinators;
mod promisify;
pub(crate) mod state;
pub(crate) mod unhandled;

use std::fmt;
use std::ops::Deref;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

pub use crate::error::Rejection;
pub use promisify::{
    callbackify, delay, delay_with_signal, promisify, queue_work, queue_work_with_signal,
};
pub use unhandled::{
    clear_rejection_hooks, on_rejection_handled, on_unhandled_rejection, set_unhandled_rejections,
    UnhandledRejections,
};

use crate::error::PanicError;
use state::{reaction, Core, Outcome};

/// A value that will be there later, or the reason it never will: a
/// JavaScript promise on the evloop loop. See the [module docs](self).
///
/// `Promise` is a cheap handle (an `Rc`): clones are the same promise.
/// It is `!Send`, like everything on the loop.
pub struct Promise<T> {
    pub(crate) core: Rc<Core<T>>,
}

/// A second handle to the same promise, for a second subscriber: each
/// subscriber gets its own copy of the value, so only a promise of a
/// `Clone` value can be cloned (a promise of any other value has one
/// subscriber, which gets the value itself).
impl<T: Clone + 'static> Clone for Promise<T> {
    fn clone(&self) -> Self {
        self.core.set_copy(T::clone);
        Promise {
            core: self.core.clone(),
        }
    }
}

/// How a callback settles the promise it returns into: a value, a
/// rejection, or another promise to follow (JavaScript's resolution
/// procedure, Promises/A+ 2.3).
pub enum Settlement<T> {
    /// Fulfil with this value.
    Fulfill(T),
    /// Reject with this reason.
    Reject(Rejection),
    /// Follow this promise: settle as it settles (two microtask hops later,
    /// as JavaScript adopts a promise).
    Adopt(Promise<T>),
}

/// What a promise callback may return to settle the next promise: a
/// `Result<T, Rejection>` (`Err` is JavaScript's `throw`; `?` converts an
/// `io::Error`), another [`Promise<T>`] (adopted), or a [`Settlement<T>`].
pub trait Resolution<T> {
    /// Converts into a settlement.
    fn into_settlement(self) -> Settlement<T>;
}

impl<T> Resolution<T> for Result<T, Rejection> {
    fn into_settlement(self) -> Settlement<T> {
        match self {
            Ok(v) => Settlement::Fulfill(v),
            Err(e) => Settlement::Reject(e),
        }
    }
}

impl<T> Resolution<T> for Promise<T> {
    fn into_settlement(self) -> Settlement<T> {
        Settlement::Adopt(self)
    }
}

impl<T> Resolution<T> for Settlement<T> {
    fn into_settlement(self) -> Settlement<T> {
        self
    }
}

/// The state of a promise, for inspection (JavaScript hides it; a debugger
/// shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromiseState {
    /// Not settled yet (possibly following another promise).
    Pending,
    /// Settled with a value.
    Fulfilled,
    /// Settled with a rejection.
    Rejected,
}

/// The `resolve` function a [`Promise::new`] executor receives: call it
/// (`resolve(v)`), or [`adopt`](Resolve::adopt) another promise. The first
/// call of `resolve` or `reject` wins; later ones are ignored. Cloneable, so
/// it can be moved into several callbacks.
pub struct Resolve<T> {
    core: Rc<Core<T>>,
    call: Rc<dyn Fn(T)>,
}

impl<T> Clone for Resolve<T> {
    fn clone(&self) -> Self {
        Resolve {
            core: self.core.clone(),
            call: self.call.clone(),
        }
    }
}

impl<T> Deref for Resolve<T> {
    type Target = dyn Fn(T);

    /// Makes `resolve(v)` callable like JavaScript's.
    fn deref(&self) -> &Self::Target {
        &*self.call
    }
}

impl<T: 'static> Resolve<T> {
    fn new(core: Rc<Core<T>>) -> Self {
        let c = core.clone();
        let call: Rc<dyn Fn(T)> = Rc::new(move |v| c.resolve(Settlement::Fulfill(v)));
        Resolve { core, call }
    }

    /// Follows `other` (JavaScript's `resolve(otherPromise)`): this promise
    /// settles as `other` does. Resolving a promise with itself rejects it
    /// with a cycle error.
    pub fn adopt(&self, other: Promise<T>) {
        self.core.resolve(Settlement::Adopt(other));
    }

    /// Settles with any [`Resolution`]: a `Result` or a promise.
    pub fn settle(&self, r: impl Resolution<T>) {
        self.core.resolve(r.into_settlement());
    }
}

/// The `reject` function a [`Promise::new`] executor receives:
/// `reject(reason)`. Cloneable.
#[derive(Clone)]
pub struct Reject {
    call: Rc<dyn Fn(Rejection)>,
}

impl Deref for Reject {
    type Target = dyn Fn(Rejection);

    /// Makes `reject(e)` callable like JavaScript's.
    fn deref(&self) -> &Self::Target {
        &*self.call
    }
}

impl Reject {
    fn new<T: 'static>(core: Rc<Core<T>>) -> Self {
        Reject {
            call: Rc::new(move |e| core.resolve(Settlement::Reject(e))),
        }
    }
}

/// A promise with its `resolve` and `reject` (JavaScript's
/// `Promise.withResolvers()`).
pub struct WithResolvers<T> {
    /// The promise.
    pub promise: Promise<T>,
    /// Fulfils it (or adopts another promise).
    pub resolve: Resolve<T>,
    /// Rejects it.
    pub reject: Reject,
}

/// Turns a panic payload into a rejection.
pub(crate) fn panic_rejection(
    payload: Box<dyn std::any::Any + Send>,
    origin: &'static str,
) -> Rejection {
    let r = Rejection::panic(PanicError::from_payload(&*payload, origin));
    // The payload's own Drop could panic; don't let that escape.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
    r
}

impl<T: 'static> Promise<T> {
    /// Creates a promise and runs `executor` at once (synchronously, as
    /// JavaScript does) with its `resolve` and `reject` functions. A panic in
    /// the executor rejects the promise, unless it was already resolved.
    ///
    /// ```
    /// use evloop::promise::Promise;
    /// use std::time::Duration;
    ///
    /// let event_loop = evloop::EventLoop::new()?;
    /// let _current = event_loop.enter();
    /// let p = Promise::new(|resolve, _reject| {
    ///     evloop::set_timeout(Duration::from_millis(5), move || resolve(21));
    /// });
    /// let doubled = p.then(|v| v * 2);
    /// event_loop.run()?;
    /// assert_eq!(doubled.peek().unwrap().unwrap(), 42);
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn new(executor: impl FnOnce(Resolve<T>, Reject)) -> Self {
        let core = Core::pending();
        let (resolve, reject) = (Resolve::new(core.clone()), Reject::new(core.clone()));
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| executor(resolve, reject))) {
            core.resolve(Settlement::Reject(panic_rejection(p, "promise executor")));
        }
        Promise { core }
    }

    /// A promise already fulfilled with `value` (JavaScript's
    /// `Promise.resolve(v)`; to follow another promise, clone it, as
    /// `Promise.resolve(p)` returns `p` itself).
    #[inline]
    pub fn resolve(value: T) -> Self {
        Promise {
            core: Core::fulfilled(value),
        }
    }

    /// A promise already rejected (JavaScript's `Promise.reject(e)`). It is
    /// reported as unhandled if no handler is attached by the end of the
    /// current microtask checkpoint.
    pub fn reject(reason: impl Into<Rejection>) -> Self {
        let core = Core::pending();
        core.resolve(Settlement::Reject(reason.into()));
        Promise { core }
    }

    /// A pending promise with its `resolve` and `reject`.
    pub fn with_resolvers() -> WithResolvers<T> {
        let core = Core::pending();
        WithResolvers {
            resolve: Resolve::new(core.clone()),
            reject: Reject::new(core.clone()),
            promise: Promise { core },
        }
    }

    /// The general `then`: `f` gets the outcome and says how the new
    /// promise settles. A panic in `f` rejects it.
    fn chain<U: 'static>(
        self,
        f: impl FnOnce(Outcome<T>) -> Settlement<U> + 'static,
    ) -> Promise<U> {
        let derived = Core::<U>::pending();
        let d = derived.clone();
        self.core.subscribe(reaction(move |outcome| {
            let s = match catch_unwind(AssertUnwindSafe(|| f(outcome))) {
                Ok(s) => s,
                Err(p) => Settlement::Reject(panic_rejection(p, "promise callback")),
            };
            d.resolve_unlocked(s);
        }));
        Promise { core: derived }
    }

    /// When fulfilled, maps the value (JavaScript's `.then(v => u)`). A
    /// rejection passes through to the returned promise.
    pub fn then<U: 'static>(self, f: impl FnOnce(T) -> U + 'static) -> Promise<U> {
        self.chain(move |o| match o {
            Ok(v) => Settlement::Fulfill(f(v)),
            Err(e) => Settlement::Reject(e),
        })
    }

    /// When fulfilled, runs `f`, which may fail (`Err` is JavaScript's
    /// `throw`) or return a promise to follow (adopted, with JavaScript's two
    /// extra microtask hops).
    ///
    /// ```
    /// use evloop::promise::{Promise, Rejection};
    ///
    /// let event_loop = evloop::EventLoop::new()?;
    /// let _current = event_loop.enter();
    /// let n = Promise::resolve("42")
    ///     .and_then(|s| s.parse::<u32>().map_err(Rejection::new)) // may fail
    ///     .and_then(|n| Promise::resolve(n + 1)); // follows another promise
    /// let bad = Promise::resolve("x").and_then(|s| s.parse::<u32>().map_err(Rejection::new));
    /// let _ = bad.clone().catch(|_| 0); // handled, so not reported
    /// event_loop.run()?;
    /// assert_eq!(n.peek().unwrap().unwrap(), 43);
    /// assert!(bad.peek().unwrap().is_err());
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn and_then<U: 'static, R: Resolution<U>>(
        self,
        f: impl FnOnce(T) -> R + 'static,
    ) -> Promise<U> {
        self.chain(move |o| match o {
            Ok(v) => f(v).into_settlement(),
            Err(e) => Settlement::Reject(e),
        })
    }

    /// When rejected, recovers with a value (JavaScript's `.catch(e => v)`).
    /// A fulfilment passes through.
    pub fn catch(self, f: impl FnOnce(Rejection) -> T + 'static) -> Promise<T> {
        self.chain(move |o| match o {
            Ok(v) => Settlement::Fulfill(v),
            Err(e) => Settlement::Fulfill(f(e)),
        })
    }

    /// When rejected, runs `f`, which may recover (`Ok`), fail again
    /// (`Err`, JavaScript's rethrow) or return a promise to follow.
    pub fn or_else<R: Resolution<T>>(self, f: impl FnOnce(Rejection) -> R + 'static) -> Promise<T> {
        self.chain(move |o| match o {
            Ok(v) => Settlement::Fulfill(v),
            Err(e) => f(e).into_settlement(),
        })
    }

    /// JavaScript's two-handler `.then(onFulfilled, onRejected)`: exactly one
    /// runs. As in JavaScript, `on_rejected` does not see a failure of
    /// `on_fulfilled`.
    pub fn then_or_else<U: 'static, R: Resolution<U>>(
        self,
        on_fulfilled: impl FnOnce(T) -> R + 'static,
        on_rejected: impl FnOnce(Rejection) -> R + 'static,
    ) -> Promise<U> {
        self.chain(move |o| match o {
            Ok(v) => on_fulfilled(v).into_settlement(),
            Err(e) => on_rejected(e).into_settlement(),
        })
    }

    /// Runs `f` however the promise settles, and passes the value or the
    /// rejection through (JavaScript's `.finally(() => ..)`, with its
    /// microtask hops).
    pub fn finally(self, f: impl FnOnce() + 'static) -> Promise<T> {
        self.finally_with(move || {
            f();
            Settlement::Fulfill(())
        })
    }

    /// Like [`finally`](Promise::finally), but `f` may fail, which replaces
    /// the outcome with its rejection, or return a promise, which is waited
    /// for (and whose rejection replaces the outcome).
    pub fn finally_with<R: Resolution<()>>(self, f: impl FnOnce() -> R + 'static) -> Promise<T> {
        // As the spec's thenFinally / catchFinally: run f, make its result a
        // promise, and follow `result.then(() => outcome)`.
        self.chain(move |o| {
            let after = match f().into_settlement() {
                Settlement::Reject(e) => return Settlement::Reject(e),
                Settlement::Fulfill(()) => Promise::resolve(()),
                Settlement::Adopt(p) => p,
            };
            Settlement::Adopt(match o {
                Ok(v) => after.then(move |()| v),
                Err(e) => after.and_then(move |()| Err::<T, _>(e)),
            })
        })
    }

    /// Where the promise is now.
    pub fn state(&self) -> PromiseState {
        if self.core.is_pending() {
            PromiseState::Pending
        } else if self.core.is_rejected() {
            PromiseState::Rejected
        } else {
            PromiseState::Fulfilled
        }
    }
}

impl<T: Clone + 'static> Promise<T> {
    /// The outcome, if settled (a copy), without subscribing: reading a
    /// rejection this way does not count as handling it. `None` also once
    /// the value has moved to the promise's last subscriber.
    pub fn peek(&self) -> Option<Result<T, Rejection>> {
        self.core.peek()
    }
}

impl<T> Promise<T> {
    /// Whether two handles are the same promise (JavaScript's `===`).
    pub fn ptr_eq(a: &Promise<T>, b: &Promise<T>) -> bool {
        Rc::ptr_eq(&a.core, &b.core)
    }
}

impl<T: 'static> fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Promise {{ <{:?}> }}", self.state())
    }
}
