//! The promise state machine: pending, then fulfilled or rejected, once.
//!
//! A [`Core`] is the shared state behind every handle to one promise. Its
//! reactions (what `then` registered) wait in it while it is pending; when
//! it settles they move, in registration order, onto the loop's microtask
//! queue, each carrying its own copy of the outcome. A reaction added to a
//! promise that has already settled is queued at once. Either way it runs
//! later, never inside the call that settled or subscribed: that is the
//! rule that makes promise code run in the same order as in JavaScript.
//!
//! Reactions do not point back at the promise they wait on, so a promise
//! that never settles is freed with its last handle, reactions included (no
//! `Rc` cycle).

use std::cell::Cell;
use std::mem;
use std::rc::Rc;

use super::unhandled::Tracker;
use super::Rejection;
use crate::event_loop::try_with_current;
use crate::microtasks::{MicroJob, Microtask};

/// What a promise settled with.
pub(crate) type Outcome<T> = Result<T, Rejection>;

/// How to copy a promise's value (`T::clone`, recorded by a handle clone).
type CopyFn<T> = fn(&T) -> T;

/// Something waiting for a promise's outcome: handed the outcome, it
/// becomes a microtask.
pub(crate) trait Reaction<T> {
    fn schedule(self: Box<Self>, outcome: Outcome<T>) -> MicroJob;
}

/// The reaction every `then`-like method builds: a closure and, once the
/// promise settled, its outcome. Boxed once when it is registered; settling
/// only fills in the outcome and moves the same box to the microtask queue.
pub(crate) struct ReactionJob<T, F> {
    f: F,
    outcome: Option<Outcome<T>>,
}

/// Boxes `f` as a reaction.
pub(crate) fn reaction<T: 'static, F: FnOnce(Outcome<T>) + 'static>(f: F) -> Box<dyn Reaction<T>> {
    Box::new(ReactionJob { f, outcome: None })
}

impl<T: 'static, F: FnOnce(Outcome<T>) + 'static> Reaction<T> for ReactionJob<T, F> {
    fn schedule(mut self: Box<Self>, outcome: Outcome<T>) -> MicroJob {
        self.outcome = Some(outcome);
        self
    }
}

impl<T, F: FnOnce(Outcome<T>)> Microtask for ReactionJob<T, F> {
    fn run(self: Box<Self>) {
        let ReactionJob { f, outcome } = *self;
        if let Some(outcome) = outcome {
            f(outcome);
        }
    }
}

/// A reaction its subscriber keeps a handle to: an awaiting future shares
/// one allocation with it (its await slot is the reaction), where a boxed
/// reaction plus a shared slot would take two.
pub(crate) trait SharedReaction<T> {
    /// Handed the outcome, it becomes a microtask.
    fn schedule(self: Rc<Self>, outcome: Outcome<T>) -> MicroJob;
}

/// A registered reaction: boxed (`then` and friends) or shared (`await`).
enum AnyReaction<T> {
    Boxed(Box<dyn Reaction<T>>),
    Shared(Rc<dyn SharedReaction<T>>),
}

impl<T> AnyReaction<T> {
    fn schedule(self, outcome: Outcome<T>) -> MicroJob {
        match self {
            AnyReaction::Boxed(r) => r.schedule(outcome),
            AnyReaction::Shared(r) => r.schedule(outcome),
        }
    }
}

/// The reactions of a pending promise. Most promises get at most one (a
/// link of a chain, an input of `all`, an awaited promise), so the first is
/// kept inline: no vector until a second one comes. The vector is boxed:
/// a pointer fits beside the first reaction's tag, where the vector would
/// not (24 bytes instead of 32 for every promise).
enum Reactions<T> {
    None,
    One(AnyReaction<T>),
    #[allow(clippy::box_collection)]
    Many(Box<Vec<AnyReaction<T>>>),
}

impl<T> Reactions<T> {
    fn push(&mut self, r: AnyReaction<T>) {
        *self = match mem::replace(self, Reactions::None) {
            Reactions::None => Reactions::One(r),
            Reactions::One(first) => Reactions::Many(Box::new(vec![first, r])),
            Reactions::Many(mut v) => {
                v.push(r);
                Reactions::Many(v)
            }
        };
    }

    /// Queues each reaction with its copy of `outcome`, in registration
    /// order; the last one gets `outcome` itself. Two or more reactions
    /// mean the promise's handle was cloned, which recorded how to copy the
    /// value (`copy`).
    fn schedule_all(self, outcome: Outcome<T>, copy: Option<CopyFn<T>>) {
        match self {
            Reactions::None => {}
            Reactions::One(r) => queue(r.schedule(outcome)),
            Reactions::Many(mut v) => {
                let Some(last) = v.pop() else { return };
                for r in *v {
                    queue(r.schedule(copy_outcome(&outcome, copy)));
                }
                queue(last.schedule(outcome));
            }
        }
    }
}

enum State<T> {
    Pending(Reactions<T>),
    Settled(Outcome<T>),
    /// Settled, and the value was moved into the last reaction because no
    /// handle was left that could subscribe again.
    Delivered {
        rejected: bool,
    },
    /// Taken out of its cell by [`Core::with_state`] for the moment.
    Busy,
}

/// A copy of `outcome`: a rejection is cheap to copy; a value needs `copy`,
/// which a clone of the promise's handle recorded (only a `Promise<T>`
/// with `T: Clone` can be cloned). Without it there is only one handle, so
/// one subscriber, and nothing to copy: the `None` branch is not reached
/// by the public API, and answers with a rejection instead of a panic.
#[inline]
fn copy_outcome<T>(outcome: &Outcome<T>, copy: Option<CopyFn<T>>) -> Outcome<T> {
    match (outcome, copy) {
        (Ok(v), Some(copy)) => Ok(copy(v)),
        (Ok(_), None) => Err(Rejection::msg(
            "a promise of a value that is not Clone has a second subscriber",
        )),
        (Err(e), _) => Err(e.clone()),
    }
}

/// The shared state of one promise: 40 bytes for a `Core<u64>` (checked
/// below), 56 with the `Rc`'s counts.
///
/// **Values that are not `Clone`.** JavaScript hands every subscriber the
/// same object; here each subscriber gets a `T` of its own. Subscribing
/// consumes a [`Promise`](super::Promise) handle, and a handle can be
/// cloned only when `T: Clone`, so a promise of a non-`Clone` value has at
/// most one subscriber, which gets the value itself, by move. Cloning a
/// handle records `T::clone` here (`copy`), which every later copy uses.
pub(crate) struct Core<T> {
    /// A `Cell`, not a `RefCell` (8 bytes less): used only through
    /// [`Core::with_state`], which behaves like a mutable borrow.
    state: Cell<State<T>>,
    /// How to copy the value: set when a handle is cloned (`T: Clone`).
    copy: Cell<Option<CopyFn<T>>>,
    /// JavaScript's `[[PromiseIsHandled]]`: a reaction was ever attached.
    handled: Cell<bool>,
    /// Reported as unhandled, so a later handler reports it handled.
    warned: Cell<bool>,
    /// JavaScript's `alreadyResolved`: `resolve` or `reject` was called, so
    /// later calls are ignored, even while the promise still waits on a
    /// promise it adopted.
    locked: Cell<bool>,
}

const _: () = assert!(mem::size_of::<Core<u64>>() <= 40);

/// Puts a state taken out by [`Core::with_state`] back, also when the
/// caller unwinds.
struct PutBack<'a, T> {
    cell: &'a Cell<State<T>>,
    state: State<T>,
}

impl<T> Drop for PutBack<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let state = mem::replace(&mut self.state, State::Busy);
        // What comes out is the `Busy` put there: nothing to drop.
        mem::forget(self.cell.replace(state));
    }
}

/// Queues a job on the current loop's microtask queue. With no loop (it is
/// being dropped) the job is dropped: nothing could run it.
pub(crate) fn queue(job: MicroJob) {
    try_with_current(|inner| inner.micro.push_micro(job));
}

impl<T> Core<T> {
    /// Runs `f` on the state, taken out of its cell meanwhile and put back
    /// afterwards, even if `f` panics: a `RefCell` borrow without the
    /// borrow flag. A use of the state from inside `f` (only a `T::clone`
    /// could get there) finds [`State::Busy`] and panics, as a second
    /// borrow of a `RefCell` would.
    fn with_state<R>(&self, f: impl FnOnce(&mut State<T>) -> R) -> R {
        let mut put = PutBack {
            cell: &self.state,
            state: self.state.replace(State::Busy),
        };
        if let State::Busy = put.state {
            panic!("a promise's state was used from inside a use of it (re-entrantly)");
        }
        f(&mut put.state)
    }
}

impl<T: 'static> Core<T> {
    pub(crate) fn pending() -> Rc<Self> {
        Rc::new(Core {
            state: Cell::new(State::Pending(Reactions::None)),
            copy: Cell::new(None),
            handled: Cell::new(false),
            warned: Cell::new(false),
            locked: Cell::new(false),
        })
    }

    #[inline]
    pub(crate) fn fulfilled(value: T) -> Rc<Self> {
        Rc::new(Core {
            state: Cell::new(State::Settled(Ok(value))),
            copy: Cell::new(None),
            handled: Cell::new(false),
            warned: Cell::new(false),
            locked: Cell::new(true),
        })
    }

    /// JavaScript's resolve function: the first call wins.
    pub(crate) fn resolve(self: &Rc<Self>, s: super::Settlement<T>) {
        if !self.locked.replace(true) {
            self.resolve_unlocked(s);
        }
    }

    /// Settles, or adopts another promise. Adopting costs two microtask
    /// hops, as in JavaScript: one job subscribes to the other promise
    /// (`NewPromiseResolveThenableJob`), and its reaction settles this one.
    pub(crate) fn resolve_unlocked(self: &Rc<Self>, s: super::Settlement<T>) {
        use super::Settlement::*;
        match s {
            Fulfill(v) => self.settle(Ok(v)),
            Reject(e) => self.settle(Err(e)),
            Adopt(other) => {
                if Rc::ptr_eq(&other.core, self) {
                    self.settle(Err(Rejection::cycle()));
                    return;
                }
                let me = self.clone();
                queue(Box::new(move || {
                    log::trace!("promise adopts another promise");
                    other.core.subscribe(reaction(move |o| me.settle(o)));
                }));
            }
        }
    }

    /// Fulfils or rejects, once; later calls do nothing. The reactions move
    /// to the microtask queue in the order they were registered.
    pub(crate) fn settle(self: &Rc<Self>, outcome: Outcome<T>) {
        self.with_state(|state| self.settle_in(state, outcome));
    }

    fn settle_in(self: &Rc<Self>, state: &mut State<T>, outcome: Outcome<T>) {
        let State::Pending(reactions) = state else {
            return;
        };
        let reactions = mem::replace(reactions, Reactions::None);
        // (Queueing a reaction only pushes onto the microtask queue: no user
        // code runs while the state is borrowed.)
        if let Reactions::None = reactions {
            if let Err(e) = &outcome {
                if !self.handled.get() {
                    let me: Rc<dyn Tracked> = self.clone();
                    let e = e.clone();
                    try_with_current(|inner| Tracker::track(inner, me, e));
                }
            }
            *state = State::Settled(outcome);
        } else if Rc::strong_count(self) == 1 || self.copy.get().is_none() {
            // Only this caller holds the promise, or its one handle was
            // consumed by the subscription: nobody can subscribe again, so
            // the last reaction can have the value itself instead of a copy.
            *state = State::Delivered {
                rejected: outcome.is_err(),
            };
            reactions.schedule_all(outcome, self.copy.get());
        } else {
            *state = State::Settled(copy_outcome(&outcome, self.copy.get()));
            reactions.schedule_all(outcome, self.copy.get());
        }
    }

    /// Registers a reaction (JavaScript's `PerformPromiseThen`): queued at
    /// once if the promise has settled, else when it does.
    pub(crate) fn subscribe(self: &Rc<Self>, r: Box<dyn Reaction<T>>) {
        self.subscribe_any(AnyReaction::Boxed(r));
    }

    /// [`subscribe`](Self::subscribe) for a reaction the caller keeps a
    /// handle to.
    pub(crate) fn subscribe_shared(self: &Rc<Self>, r: Rc<dyn SharedReaction<T>>) {
        self.subscribe_any(AnyReaction::Shared(r));
    }

    fn subscribe_any(self: &Rc<Self>, r: AnyReaction<T>) {
        // One look at the state: push onto a pending promise's reactions,
        // or copy a settled one's outcome.
        let settled = self.with_state(|state| match state {
            State::Pending(reactions) => {
                reactions.push(r);
                None
            }
            State::Settled(_) => Some((r, self.take_or_copy(state))),
            // (Subscribing needs a handle, and `Delivered` means none was
            // left, so this is not reached.)
            _ => None,
        });
        match settled {
            Some((r, outcome)) => {
                self.note_handler(&outcome);
                queue(r.schedule(outcome));
            }
            None => self.handled.set(true),
        }
    }

    /// What [`subscribe`](Self::subscribe) does on a settled promise (it
    /// counts as handled; a late handler of a reported rejection is
    /// reported), except that the outcome is returned instead of queued:
    /// an `await` that queues its own resume job. `None` if not settled.
    pub(crate) fn subscribe_settled(&self) -> Option<Outcome<T>> {
        let outcome = self.with_state(|state| match state {
            State::Settled(_) => Some(self.take_or_copy(state)),
            _ => None,
        })?;
        self.note_handler(&outcome);
        Some(outcome)
    }

    /// The outcome of a settled promise for a new subscriber: a copy while
    /// other handles could still subscribe, else the outcome itself (the
    /// state becomes `Delivered`). `state` is `Settled`.
    #[inline]
    fn take_or_copy(&self, state: &mut State<T>) -> Outcome<T> {
        let copy = self.copy.get();
        if let (State::Settled(o), Some(_)) = (&*state, copy) {
            return copy_outcome(o, copy);
        }
        let rejected = matches!(state, State::Settled(Err(_)));
        match mem::replace(state, State::Delivered { rejected }) {
            State::Settled(o) => o,
            _ => Err(Rejection::msg("a promise's value was already taken")),
        }
    }

    /// Records how to copy the value: a handle of this promise was cloned.
    pub(crate) fn set_copy(&self, copy: CopyFn<T>) {
        self.copy.set(Some(copy));
    }

    /// A handler was attached to this settled promise: it counts as
    /// handled, and a rejection reported unhandled is reported handled late.
    fn note_handler(&self, outcome: &Outcome<T>) {
        let first = !self.handled.replace(true);
        if let (true, true, Err(e)) = (first, self.warned.get(), outcome) {
            let e = e.clone();
            try_with_current(|inner| Tracker::handled_late(inner, e));
        }
    }

    /// Counts as handled (a rejection is not reported as unhandled), without
    /// subscribing: for rejections the caller asked for, such as an abort.
    pub(crate) fn mark_handled(&self) {
        self.handled.set(true);
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.with_state(|state| matches!(state, State::Pending(_)))
    }

    pub(crate) fn is_rejected(&self) -> bool {
        self.with_state(|state| {
            matches!(
                state,
                State::Settled(Err(_)) | State::Delivered { rejected: true }
            )
        })
    }
}

impl<T: Clone> Core<T> {
    /// The outcome, if settled (a copy).
    pub(crate) fn peek(&self) -> Option<Outcome<T>> {
        self.with_state(|state| match state {
            State::Settled(o) => Some(o.clone()),
            _ => None,
        })
    }
}

/// A rejected promise the unhandled-rejection tracker is watching.
pub(crate) trait Tracked {
    /// A handler was attached since.
    fn is_handled(&self) -> bool;
    /// It was reported unhandled (so a late handler is reported too).
    fn mark_warned(&self);
}

impl<T> Tracked for Core<T> {
    fn is_handled(&self) -> bool {
        self.handled.get()
    }

    fn mark_warned(&self) {
        self.warned.set(true);
    }
}

#[cfg(test)]
mod tests {
    //! The state's cell behaves as a `RefCell` borrow would: put back when
    //! a `T::clone` panics, and a re-entrant use panics instead of seeing
    //! a half-updated state.

    use std::cell::{Cell, RefCell};
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::rc::Rc;

    use super::Core;

    thread_local! {
        static PANIC_ON_CLONE: Cell<bool> = const { Cell::new(false) };
        /// A promise that the next clone uses (re-entrantly).
        static REENTER: RefCell<Option<Rc<Core<Odd>>>> = const { RefCell::new(None) };
    }

    /// A value whose `Clone` can panic, or use its own promise.
    struct Odd(u32);

    impl Clone for Odd {
        fn clone(&self) -> Self {
            if PANIC_ON_CLONE.with(Cell::get) {
                panic!("clone");
            }
            if let Some(core) = REENTER.with(|r| r.borrow_mut().take()) {
                let _ = core.is_pending();
            }
            Odd(self.0)
        }
    }

    #[test]
    fn a_panicking_clone_leaves_the_state_in_place() {
        let core = Core::fulfilled(Odd(7));
        PANIC_ON_CLONE.with(|p| p.set(true));
        assert!(catch_unwind(AssertUnwindSafe(|| core.peek())).is_err());
        PANIC_ON_CLONE.with(|p| p.set(false));
        assert!(!core.is_pending());
        assert_eq!(core.peek().unwrap().ok().unwrap().0, 7);
    }

    #[test]
    fn a_reentrant_use_panics_and_the_state_survives() {
        let core = Core::fulfilled(Odd(9));
        REENTER.with(|r| *r.borrow_mut() = Some(core.clone()));
        let r = catch_unwind(AssertUnwindSafe(|| core.peek()));
        assert!(r.is_err(), "a use from inside the clone panics");
        assert_eq!(core.peek().unwrap().ok().unwrap().0, 9);
    }
}
