//! Phase hooks: libuv's loop watchers ([`Idle`], [`Prepare`], [`Check`])
//! for embedders, and the end-of-checkpoint hook the layers above plug
//! into (the promise layer reports unhandled rejections there).
//!
//! Where they run in an iteration (libuv's `uv_run`):
//!
//! ```text
//! pending -> idle -> prepare -> poll -> check (watchers, then immediates) -> close -> timers
//! ```
//!
//! Each active watcher's callback runs once per iteration, followed by a
//! microtask checkpoint as every callback is. Within one kind, the watcher
//! started last runs first, as in libuv (it inserts at the head of the
//! list); one started during its phase waits for the next iteration, and
//! one stopped during its phase does not run in it. An active idle
//! watcher makes the poll return at once. A ref'd active watcher keeps the
//! loop alive, as any libuv handle does; [`unref`](Prepare::unref) it to
//! let the loop end without it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::{Rc, Weak};

use super::{with_current, LoopState, Turn};

/// The three kinds of loop watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Idle = 0,
    Prepare = 1,
    Check = 2,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Idle => "idle",
            Kind::Prepare => "prepare",
            Kind::Check => "check",
        }
    }
}

type Callback = Box<dyn FnMut()>;

/// One watcher's state, shared by its handle and (while active) its list.
struct Watcher {
    kind: Kind,
    active: Cell<bool>,
    refed: Cell<bool>,
    cb: RefCell<Option<Callback>>,
    /// Bumped by each `start`, so a callback that restarts its own watcher
    /// with a new callback is not overwritten by the old one.
    starts: Cell<u64>,
    /// Its handle was dropped (perhaps by its own running callback).
    closed: Cell<bool>,
}

/// A loop's watchers and its end-of-checkpoint hooks.
#[derive(Default)]
pub(crate) struct Watchers {
    /// The active watchers of each kind, in start order.
    lists: [RefCell<Vec<Rc<Watcher>>>; 3],
    /// Active watchers of all kinds: zero on a loop without any, so an
    /// iteration checks one `Cell` to skip the idle, prepare and check
    /// hooks.
    active: Cell<usize>,
    /// Active idle watchers (poll must not block).
    idle: Cell<usize>,
    /// Active ref'd watchers, and other ref'd hooks of the core (async
    /// handles): they keep the loop alive.
    refed: Cell<usize>,
    /// Hooks run at the end of a microtask checkpoint, when
    /// `checkpoint_due` is set.
    checkpoint_end: RefCell<Vec<fn(&LoopState)>>,
    /// A layer has work for the end of the next checkpoint.
    pub(super) checkpoint_due: Cell<bool>,
    /// The snapshot buffer of [`LoopState::run_watchers`], kept between
    /// phases so an iteration allocates nothing.
    scratch: RefCell<Vec<Rc<Watcher>>>,
}

impl Watchers {
    /// Whether an active ref'd watcher keeps the loop alive.
    pub(super) fn has_refed(&self) -> bool {
        self.refed.get() > 0
    }

    /// Whether an idle watcher is active (poll must not block).
    pub(super) fn has_idle(&self) -> bool {
        self.idle.get() > 0
    }

    /// Whether any watcher is active.
    #[inline]
    pub(super) fn any_active(&self) -> bool {
        self.active.get() > 0
    }

    /// Counts one more (or one less) ref'd hook that keeps the loop alive.
    pub(crate) fn add_ref(&self, on: bool) {
        let n = self.refed.get();
        self.refed.set(if on { n + 1 } else { n - 1 });
    }

    /// Active watchers by kind, and whether each is ref'd (for
    /// `active_handles`).
    pub(super) fn describe(&self) -> Vec<(&'static str, bool)> {
        let mut out = Vec::new();
        for list in &self.lists {
            for w in list.borrow().iter() {
                out.push((w.kind.label(), w.refed.get()));
            }
        }
        out
    }

    fn start(&self, w: &Rc<Watcher>) {
        if w.active.replace(true) {
            return;
        }
        self.lists[w.kind as usize].borrow_mut().push(w.clone());
        self.active.set(self.active.get() + 1);
        if w.kind == Kind::Idle {
            self.idle.set(self.idle.get() + 1);
        }
        if w.refed.get() {
            self.add_ref(true);
        }
    }

    fn stop(&self, w: &Rc<Watcher>) {
        if !w.active.replace(false) {
            return;
        }
        let mut list = self.lists[w.kind as usize].borrow_mut();
        if let Some(i) = list.iter().position(|x| Rc::ptr_eq(x, w)) {
            list.remove(i);
        }
        drop(list);
        self.active.set(self.active.get() - 1);
        if w.kind == Kind::Idle {
            self.idle.set(self.idle.get() - 1);
        }
        if w.refed.get() {
            self.add_ref(false);
        }
    }

    /// Drops every watcher's callback (teardown); returns how many.
    pub(super) fn release(&self) -> Vec<Callback> {
        let mut out = Vec::new();
        for list in &self.lists {
            for w in list.borrow().iter() {
                if let Ok(mut cb) = w.cb.try_borrow_mut() {
                    out.extend(cb.take());
                }
            }
        }
        out
    }
}

impl LoopState {
    /// Registers a hook for the end of every microtask checkpoint that
    /// follows a [`request_checkpoint_end`](Self::request_checkpoint_end)
    /// (the promise layer's unhandled-rejection reports). A hook that
    /// still has work after it ran requests again.
    pub(crate) fn on_checkpoint_end(&self, hook: fn(&LoopState)) {
        self.watchers.checkpoint_end.borrow_mut().push(hook);
    }

    /// Asks for the end-of-checkpoint hooks to run at the end of the
    /// current (or next) checkpoint.
    pub(crate) fn request_checkpoint_end(&self) {
        self.watchers.checkpoint_due.set(true);
    }

    /// Runs the end-of-checkpoint hooks.
    pub(super) fn run_checkpoint_end(&self) {
        // By index, copying each out: a hook may register another.
        let mut i = 0;
        loop {
            let Some(hook) = self.watchers.checkpoint_end.borrow().get(i).copied() else {
                return;
            };
            hook(self);
            i += 1;
        }
    }

    /// Runs the callbacks of the active watchers of `kind` (see the module
    /// docs for the order).
    pub(super) fn run_watchers(&self, kind: Kind, turn: &mut Turn) {
        if !self.watchers.any_active() {
            return;
        }
        // A snapshot, newest first: who is active when the phase begins.
        let mut snapshot = std::mem::take(&mut *self.watchers.scratch.borrow_mut());
        {
            let list = self.watchers.lists[kind as usize].borrow();
            if list.is_empty() {
                *self.watchers.scratch.borrow_mut() = snapshot;
                return;
            }
            snapshot.extend(list.iter().rev().cloned());
        }
        log::trace!("phase {} ({} watchers)", kind.label(), snapshot.len());
        for w in snapshot.drain(..) {
            if self.has_failed() {
                break;
            }
            // Stopped by an earlier callback of this phase.
            if !w.active.get() {
                continue;
            }
            // Take, then call.
            let Some(mut cb) = w.cb.try_borrow_mut().ok().and_then(|mut c| c.take()) else {
                continue;
            };
            let starts = w.starts.get();
            let ok = self.call(kind.label(), &mut cb);
            turn.hooks += 1;
            if w.starts.get() == starts && !w.closed.get() && w.cb.borrow().is_none() {
                *w.cb.borrow_mut() = Some(cb);
            } else {
                // Restarted with a new callback, or dropped: it goes.
                let _ = self.drop_captures(kind.label(), cb);
            }
            self.checkpoint_after(ok, turn);
        }
        // Give the buffer back (drained; a watcher's phase never nests).
        *self.watchers.scratch.borrow_mut() = snapshot;
    }
}

/// The handle shared by [`Idle`], [`Prepare`] and [`Check`].
struct Handle {
    state: Weak<LoopState>,
    w: Rc<Watcher>,
}

impl Handle {
    fn new(kind: Kind) -> Handle {
        with_current(|state| Handle {
            state: Rc::downgrade(state),
            w: Rc::new(Watcher {
                kind,
                active: Cell::new(false),
                refed: Cell::new(true),
                cb: RefCell::new(None),
                starts: Cell::new(0),
                closed: Cell::new(false),
            }),
        })
    }

    fn start(&self, cb: Callback) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        self.w.starts.set(self.w.starts.get() + 1);
        let old = self.w.cb.borrow_mut().replace(cb);
        state.watchers.start(&self.w);
        drop(old); // after the borrow: its captures may touch the loop
    }

    fn stop(&self) {
        if let Some(state) = self.state.upgrade() {
            state.watchers.stop(&self.w);
        }
    }

    fn set_ref(&self, on: bool) {
        if self.w.refed.replace(on) == on || !self.w.active.get() {
            return;
        }
        if let Some(state) = self.state.upgrade() {
            state.watchers.add_ref(on);
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.w.closed.set(true);
        self.stop();
        // Its callback goes with it (outside any borrow).
        let cb = self.w.cb.try_borrow_mut().ok().and_then(|mut c| c.take());
        drop(cb);
    }
}

macro_rules! watcher_handle {
    ($(#[$doc:meta])* $name:ident, $kind:expr) => {
        $(#[$doc])*
        pub struct $name(Handle);

        impl $name {
            /// A stopped watcher on the current loop.
            ///
            /// # Panics
            /// If no loop is current on this thread.
            pub fn new() -> $name {
                $name(Handle::new($kind))
            }

            /// Starts it with `cb`, to be called once per iteration until
            /// stopped (libuv's `uv_*_start`). Starting an active watcher
            /// replaces its callback.
            pub fn start(&self, cb: impl FnMut() + 'static) -> &Self {
                self.0.start(Box::new(cb));
                self
            }

            /// Stops it; it can be started again. Dropping it stops it too.
            pub fn stop(&self) -> &Self {
                self.0.stop();
                self
            }

            /// Whether it is started.
            pub fn is_active(&self) -> bool {
                self.0.w.active.get()
            }

            /// Lets the loop end while it is active.
            pub fn unref(&self) -> &Self {
                self.0.set_ref(false);
                self
            }

            /// Makes it keep the loop alive while active again (the
            /// default).
            pub fn ref_(&self) -> &Self {
                self.0.set_ref(true);
                self
            }

            /// Whether it keeps the loop alive while active.
            pub fn has_ref(&self) -> bool {
                self.0.w.refed.get()
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("active", &self.is_active())
                    .field("refed", &self.has_ref())
                    .finish()
            }
        }
    };
}

watcher_handle!(
    /// Runs a callback once per iteration just before the loop polls for
    /// I/O (libuv's `uv_prepare_t`; calloop's `before_sleep`): the place to
    /// flush work batched during the iteration before the thread may
    /// block. See the [module docs](crate::watchers) for the order.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// use evloop::watchers::Prepare;
    ///
    /// evloop::run(|| {
    ///     let polls = Rc::new(Cell::new(0));
    ///     let prepare = Prepare::new();
    ///     let p = polls.clone();
    ///     prepare.start(move || p.set(p.get() + 1));
    ///     prepare.unref(); // only the timer keeps the loop alive
    ///     evloop::set_timeout(Duration::from_millis(5), move || {
    ///         assert!(polls.get() >= 1);
    ///         drop(prepare);
    ///     });
    /// })
    /// .unwrap();
    /// ```
    Prepare,
    Kind::Prepare
);

watcher_handle!(
    /// Runs a callback once per iteration just after the poll for I/O, at
    /// the start of the check phase, before the immediates (libuv's
    /// `uv_check_t`). See the [module docs](crate::watchers) for the order.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use evloop::watchers::Check;
    ///
    /// let log = Rc::new(RefCell::new(Vec::new()));
    /// let l = log.clone();
    /// evloop::run(move || {
    ///     let check = Check::new();
    ///     let l2 = l.clone();
    ///     evloop::set_immediate(move || l2.borrow_mut().push("immediate"));
    ///     let l3 = l.clone();
    ///     let once = Rc::new(RefCell::new(None::<Check>));
    ///     let slot = once.clone();
    ///     check.start(move || {
    ///         l3.borrow_mut().push("check");
    ///         slot.borrow_mut().take(); // stop after one round
    ///     });
    ///     *once.borrow_mut() = Some(check);
    /// })
    /// .unwrap();
    /// assert_eq!(*log.borrow(), ["check", "immediate"]);
    /// ```
    Check,
    Kind::Check
);

watcher_handle!(
    /// Runs a callback once per iteration, before the prepare watchers,
    /// and keeps the poll from blocking while active (libuv's `uv_idle_t`):
    /// background work in small slices between I/O, without ever sleeping.
    /// Stop it when the work is done, or the loop spins.
    ///
    /// ```
    /// use std::{cell::{Cell, RefCell}, rc::Rc};
    /// use evloop::watchers::Idle;
    ///
    /// let slices = Rc::new(Cell::new(0));
    /// let s = slices.clone();
    /// evloop::run(move || {
    ///     let slot = Rc::new(RefCell::new(None::<Idle>));
    ///     let me = slot.clone();
    ///     let idle = Idle::new();
    ///     idle.start(move || {
    ///         s.set(s.get() + 1); // one slice of the work
    ///         if s.get() == 3 {
    ///             me.borrow_mut().take(); // done: dropping it stops it
    ///         }
    ///     });
    ///     *slot.borrow_mut() = Some(idle);
    /// })
    /// .unwrap();
    /// assert_eq!(slices.get(), 3);
    /// ```
    Idle,
    Kind::Idle
);
