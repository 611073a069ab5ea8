//! The loop itself: its state ([`LoopState`]), liveness, teardown, and the
//! thread's current loop. The phases of a tick are in `phases.rs` (read
//! [`LoopState::run_mode`] top to bottom to see one tick); calling user
//! code, uncaught errors and the microtask checkpoint in `dispatch.rs`; the
//! public [`EventLoop`] handle and the free functions in `handle.rs`; the
//! cached clock in `clock.rs`.
//!
//! The loop core knows nothing of the layers above it (promises, tasks,
//! processes, sockets, files; `scripts/check_layers.sh` keeps it so). They
//! plug in through two mechanisms: per-loop values (`slots.rs`, like
//! `thread_local!` but one per loop) and hooks ([`watchers`]: the
//! end-of-checkpoint hook, and the idle, prepare and check watchers that
//! embedders use too).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Origin, PanicError};
use crate::immediate::ImmediateQueue;
use crate::introspect::{HandleInfo, HandleKind};
use crate::microtasks::{Job, Microtasks};
use crate::pool::Jobs;
use crate::reactor::{split, Reactor, WAKER_TOKEN};
use crate::remote::{Remote, RemoteJob, RemoteQueue};
use crate::timers::TimerStore;
use crate::trace;

mod clock;
mod dispatch;
mod handle;
mod phases;
pub(crate) mod slots;
pub mod watchers;

pub(crate) use clock::{duration_to_ns, Clock};
use slots::Slots;
use watchers::Watchers;

pub use handle::{
    active_handles, clear_uncaught_exception, current_phase, has_current, now,
    on_uncaught_exception, run, stop, EventLoop,
};

thread_local! {
    /// The loop that the free functions (`set_timeout`, ...) act on.
    static CURRENT: RefCell<Option<Rc<LoopState>>> = const { RefCell::new(None) };
}

const NO_LOOP: &str = "no evloop event loop is current on this thread: \
     call this inside evloop::run(|| ..), inside a callback, \
     or after `let _guard = event_loop.enter();`";

/// Runs `f` with the thread's current loop.
///
/// # Panics
/// If there is none (see [`NO_LOOP`]).
///
/// No borrow of the thread's slot is held while `f` runs (`f` may run user
/// code that enters another loop: a task's first poll calling `block_on`).
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<LoopState>) -> R) -> R {
    let inner = CURRENT.with(|c| c.borrow().clone());
    f(inner.as_ref().expect(NO_LOOP))
}

/// [`try_with_current`] for a short step of the loop's own bookkeeping
/// that runs no user code (no callback, no destructor of user data): `f`
/// gets the loop by reference, without cloning the `Rc` (about 10
/// instructions saved on the executor's paths). The thread's slot stays
/// borrowed while `f` runs, so `f` must not enter or leave a loop.
#[inline]
pub(crate) fn try_with_current_ref<R>(f: impl FnOnce(&LoopState) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| {
            let c = c.try_borrow().ok()?;
            Some(f(c.as_deref()?))
        })
        .ok()
        .flatten()
}

/// Runs `f` with the thread's current loop, or returns `None` if there is
/// none (for code that may run while a loop is being dropped).
pub(crate) fn try_with_current<R>(f: impl FnOnce(&Rc<LoopState>) -> R) -> Option<R> {
    let inner = CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()?;
    Some(f(&inner))
}

/// Reports an error nobody listens for to the current loop (see
/// [`LoopState::report_uncaught`]); with no loop current, it is logged.
pub(crate) fn report_uncaught(err: Error) {
    let mut err = Some(err);
    try_with_current(|i| {
        let e = err.take().expect("once");
        i.report_uncaught(e, Origin::UncaughtException)
    });
    if let Some(e) = err {
        log::warn!("uncaught error with no loop current: {e}");
    }
}

/// The thread's current loop, for layers that keep a reference.
///
/// # Panics
/// If there is none.
pub(crate) fn current_inner() -> Rc<LoopState> {
    with_current(Rc::clone)
}

/// A weak reference to a loop, for objects the loop's own registrations
/// keep alive (streams, sockets): a strong one would be a cycle through the
/// reactor, and the loop could never be dropped while one is open. Every
/// method does nothing once the loop is gone.
#[derive(Clone)]
pub(crate) struct LoopRef(std::rc::Weak<LoopState>);

impl LoopRef {
    /// The thread's current loop.
    ///
    /// # Panics
    /// If there is none.
    pub(crate) fn current() -> LoopRef {
        with_current(|i| LoopRef(Rc::downgrade(i)))
    }

    pub(crate) fn defer_pending(&self, job: Job) {
        if let Some(i) = self.0.upgrade() {
            i.defer_pending(job);
        }
    }

    pub(crate) fn defer_close(&self, job: Job) {
        if let Some(i) = self.0.upgrade() {
            i.defer_close(job);
        }
    }

    pub(crate) fn defer_next_turn(&self, job: Job) {
        if let Some(i) = self.0.upgrade() {
            i.defer_next_turn(job);
        }
    }

    /// Queues `job` as a `next_tick` of this loop (whichever loop is
    /// current); with the loop gone, `job` is dropped.
    pub(crate) fn next_tick(&self, job: Job) {
        if let Some(i) = self.0.upgrade() {
            i.micro.push_tick(job);
        }
    }

    pub(crate) fn checkpoint_now(&self) {
        if let Some(i) = self.0.upgrade() {
            i.checkpoint_now();
        }
    }

    /// Reports an error nobody listens for (see [`LoopState::report_uncaught`]);
    /// with the loop gone, it is logged.
    pub(crate) fn report_uncaught(&self, err: Error) {
        match self.0.upgrade() {
            Some(i) => i.report_uncaught(err, Origin::UncaughtException),
            None => log::warn!("uncaught error after the loop ended: {err}"),
        }
    }
}

/// Which part of an iteration the loop is in (shown by `Debug`).
///
/// Non-exhaustive: a later version may split a phase (libuv's idle and
/// prepare hooks run in phases of their own), so a `match` needs a `_` arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Not inside `run`.
    Idle,
    /// `evloop::run` is running the main function.
    Main,
    /// Due timers.
    Timers,
    /// Completions from other threads and deferred I/O callbacks.
    Pending,
    /// Waiting for and dispatching I/O readiness.
    Poll,
    /// `set_immediate` callbacks.
    Check,
    /// Close callbacks.
    Close,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Default,
    Once,
    NoWait,
}

/// What one call of [`EventLoop::run_once`] or [`EventLoop::run_nowait`]
/// (or a whole [`EventLoop::run`]) did, for people stepping through a loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Turn {
    /// Iterations run.
    pub iterations: u64,
    /// Timer callbacks run.
    pub timers: usize,
    /// Pending-phase callbacks run (cross-thread completions, deferred I/O).
    pub pending: usize,
    /// I/O readiness callbacks run.
    pub io: usize,
    /// Immediates run.
    pub immediates: usize,
    /// Close callbacks run.
    pub closes: usize,
    /// Idle, prepare and check watcher callbacks run (see [`watchers`]).
    pub hooks: usize,
    /// `next_tick` and microtask jobs run.
    pub microtasks: usize,
    /// Whether the loop still has work that keeps it alive (libuv's
    /// non-zero return).
    pub alive: bool,
}

impl Turn {
    /// Total callbacks run, microtasks included.
    pub fn callbacks(&self) -> usize {
        self.timers
            + self.pending
            + self.io
            + self.immediates
            + self.closes
            + self.hooks
            + self.microtasks
    }
}

/// The loop's state. Every field is behind its own `RefCell`/`Cell`, and no
/// borrow is ever held while user code runs ("take, then call").
///
/// The loop core's own queues are fields; the layers above keep theirs in
/// per-loop [`slots`](slots::LoopLocal) (the task executor, the
/// unhandled-rejection tracker, the signal registry) and plug into the
/// tick through [hooks](watchers).
pub(crate) struct LoopState {
    pub(crate) timers: RefCell<TimerStore>,
    pub(crate) immediates: RefCell<ImmediateQueue>,
    pub(crate) micro: Microtasks,
    pub(crate) reactor: Reactor,
    remote: Arc<RemoteQueue>,
    remote_buf: RefCell<Vec<RemoteJob>>,
    pending: RefCell<VecDeque<Job>>,
    /// Work a busy source left for the next iteration (a stream that read
    /// its batch and is still readable): moved to `pending` when the next
    /// iteration begins, so the poll in between serves every other source.
    next_turn: RefCell<Vec<Job>>,
    closing: RefCell<VecDeque<Job>>,
    /// The thread pool's jobs in flight (they keep the loop alive).
    pub(crate) jobs: Jobs,
    /// The loop's cached time (`uv_now`).
    pub(crate) clock: Clock,
    /// Idle, prepare and check watchers, and the end-of-checkpoint hooks.
    pub(crate) watchers: Watchers,
    /// The layers' per-loop values.
    slots: Slots,
    stop_flag: Cell<bool>,
    running: Cell<bool>,
    phase: Cell<Phase>,
    iterations: Cell<u64>,
    /// What stops the loop: an uncaught error nobody handled.
    fatal: RefCell<Option<Error>>,
    /// A panicking `next_tick` (taken by the uncaught handler) cut a drain
    /// short: the rest waits for the next callback, and poll must not block
    /// meanwhile (Node's uncaught path queues an empty immediate for this).
    interrupted: Cell<bool>,
    /// This loop started tracing from `EVLOOP_TRACE`, and ends it when
    /// dropped.
    trace_owner: bool,
    /// The uncaught-exception handler (Node's
    /// `process.on('uncaughtException')`).
    uncaught_hook: RefCell<Option<UncaughtHook>>,
    /// Bumped whenever the handler is set or cleared, so a handler that
    /// replaces or clears itself while running is not put back.
    uncaught_hook_gen: Cell<u64>,
}

/// An uncaught-exception handler.
pub(crate) type UncaughtHook = Box<dyn FnMut(Error, Origin)>;

impl LoopState {
    /// A loop's state around its poll instance and cross-thread queue.
    fn new(reactor: Reactor, remote: RemoteQueue) -> LoopState {
        LoopState {
            timers: RefCell::default(),
            immediates: RefCell::default(),
            micro: Microtasks::default(),
            reactor,
            remote: Arc::new(remote),
            remote_buf: RefCell::default(),
            pending: RefCell::default(),
            next_turn: RefCell::default(),
            closing: RefCell::default(),
            jobs: Jobs::default(),
            clock: Clock::new(),
            watchers: Watchers::default(),
            slots: Slots::default(),
            stop_flag: Cell::new(false),
            running: Cell::new(false),
            phase: Cell::new(Phase::Idle),
            iterations: Cell::new(0),
            fatal: RefCell::new(None),
            interrupted: Cell::new(false),
            trace_owner: trace::init_from_env(),
            uncaught_hook: RefCell::new(None),
            uncaught_hook_gen: Cell::new(0),
        }
    }

    // ---- time ----

    /// Reads the clock into the cached `now`; returns it as nanoseconds
    /// since the loop's epoch.
    #[inline]
    pub(crate) fn update_now_ns(&self) -> u64 {
        self.clock.update()
    }

    fn now(&self) -> Instant {
        self.clock.cached()
    }

    // ---- hooks for the layers above ----

    /// A cross-thread handle to this loop.
    pub(crate) fn remote_handle(&self) -> Remote {
        Remote {
            shared: self.remote.clone(),
        }
    }

    /// Whether `remote` points to this loop.
    pub(crate) fn owns_remote(&self, remote: &Remote) -> bool {
        Arc::ptr_eq(&self.remote, &remote.shared)
    }

    /// Whether the loop is inside `run*` or `run_main` (so `block_on` must
    /// not drive it).
    pub(crate) fn is_busy(&self) -> bool {
        self.running.get() || self.phase.get() == Phase::Main
    }

    /// Queues a callback for the next pending phase (libuv's deferred I/O
    /// callbacks: write completions, connect errors).
    pub(crate) fn defer_pending(&self, job: Job) {
        self.pending.borrow_mut().push_back(job);
    }

    /// Runs the microtask checkpoint now: for layers that call several user
    /// callbacks from one dispatch (a read loop calling `on_data` per chunk),
    /// so microtasks drain after each, as Node's do.
    pub(crate) fn checkpoint_now(&self) {
        if self.checkpoint_idle() {
            return;
        }
        self.checkpoint_slow(&mut Turn::default());
    }

    /// Queues `job` for the pending phase of the *next* iteration, after
    /// one more poll: how a source that used up its batch for this turn
    /// (reads, accepts, datagrams) waits its turn, as libuv's bounded read
    /// loops wait for the next poll.
    pub(crate) fn defer_next_turn(&self, job: Job) {
        self.next_turn.borrow_mut().push(job);
    }

    /// Starts an iteration's pending queue with the work left for it.
    fn take_next_turn(&self) {
        if self.next_turn.borrow().is_empty() {
            return;
        }
        // Drained, not taken: both queues keep their memory.
        let mut next = self.next_turn.borrow_mut();
        self.pending.borrow_mut().extend(next.drain(..));
    }

    /// Queues a close callback: it always runs later, in the close phase.
    pub(crate) fn defer_close(&self, job: Job) {
        self.closing.borrow_mut().push_back(job);
    }

    // ---- liveness ----

    /// libuv's `uv__loop_alive`: ref'd active handles, requests, pending
    /// callbacks or closing handles.
    fn alive(&self) -> bool {
        self.timers.borrow().has_refed()
            || self.immediates.borrow().refed() > 0
            || self.reactor.has_refed()
            || self.watchers.has_refed()
            || self.jobs.in_flight() > 0
            || !self.pending.borrow().is_empty()
            || !self.next_turn.borrow().is_empty()
            || !self.closing.borrow().is_empty()
    }

    /// libuv's `uv_backend_timeout`: how long poll may block.
    fn backend_timeout(&self) -> Option<Duration> {
        if self.stop_flag.get()
            || self.interrupted.get()
            || !self.pending.borrow().is_empty()
            || !self.next_turn.borrow().is_empty()
            || !self.closing.borrow().is_empty()
            || self.immediates.borrow().refed() > 0
            || self.watchers.has_idle()
            || self.remote.is_notified()
            || !self.alive()
        {
            return Some(Duration::ZERO);
        }
        match self.timers.borrow().next_deadline() {
            None | Some(u64::MAX) => None,
            Some(deadline) => Some(Duration::from_nanos(
                deadline.saturating_sub(self.clock.cached_ns()),
            )),
        }
    }
}

// ---- teardown ----

/// What one release round hands over: a name, how many things, and a
/// closure that drops them.
type Garbage<'a> = (&'static str, usize, Box<dyn FnOnce() + 'a>);

impl LoopState {
    /// The one list of everything the loop holds of user code, in the
    /// order it is released: the layers' per-loop values first (tasks:
    /// dropping a future may release timers and sources), then the pool's
    /// callbacks, the watchers, and the core's queues.
    fn release_round(&self, release: &mut dyn FnMut(Garbage<'_>)) {
        self.slots.release_each(|r| {
            if let Some(garbage) = r.garbage {
                release((r.what, r.count, Box::new(move || drop(garbage))));
            }
        });
        let done = self.jobs.take_callbacks();
        release(("pool callbacks", done.len(), Box::new(move || drop(done))));
        let watchers = self.watchers.release();
        release(("watchers", watchers.len(), Box::new(move || drop(watchers))));
        let timers = self.timers.borrow_mut().drain_all();
        release(("timers", timers.len(), Box::new(move || drop(timers))));
        let imm = self.immediates.borrow_mut().drain_all();
        release(("immediates", imm.len(), Box::new(move || drop(imm))));
        let micro = self.micro.drain_all();
        let n = micro.0.len() + micro.1.len();
        release(("microtasks", n, Box::new(move || drop(micro))));
        let io = self.reactor.drain_all();
        release(("sources", io.len(), Box::new(move || drop(io))));
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        let n = pending.len();
        release(("pending callbacks", n, Box::new(move || drop(pending))));
        let next = std::mem::take(&mut *self.next_turn.borrow_mut());
        let n = next.len();
        release(("next-turn callbacks", n, Box::new(move || drop(next))));
        let closing = std::mem::take(&mut *self.closing.borrow_mut());
        let n = closing.len();
        release(("close callbacks", n, Box::new(move || drop(closing))));
    }

    /// Releases everything, round after round until nothing is left (at
    /// most 16 rounds): what a destructor creates is released in the next
    /// round, and a destructor that panics is caught and logged, so the
    /// rest is still released.
    fn release_all(&self) {
        for _ in 0..16 {
            let mut dropped = 0;
            self.release_round(&mut |(what, n, garbage)| {
                dropped += n;
                if catch_unwind(AssertUnwindSafe(garbage)).is_err() {
                    log::warn!("a destructor panicked while the loop dropped its {what}");
                }
            });
            if dropped == 0 {
                return;
            }
        }
        log::warn!("destructors kept creating work while the loop was dropped");
    }

    /// Drops every stored closure and task while the loop is still current.
    /// A destructor may use the loop: a future whose `Drop` spawns a task or
    /// sets a timer would otherwise panic with "no loop is current" inside
    /// the loop's `Drop`, a panic during cleanup that aborts the process
    /// (found by the reliability test T16).
    fn teardown(&self) {
        drop(self.remote.close());
        self.release_all();
    }
}

impl Drop for LoopState {
    fn drop(&mut self) {
        log::debug!("event loop dropped");
        // Refuse further cross-thread posts, then drop every stored closure
        // (the same list as `teardown`; usually empty by now). Handles hold
        // `Weak`s, so a closure's captures that touch the loop in their
        // `Drop` find it gone and do nothing.
        drop(self.remote.close());
        self.release_all();
        // The layers' values, newest first (the signal registry hands its
        // running children to a reaper).
        self.slots.drop_all(|value| {
            if catch_unwind(AssertUnwindSafe(move || drop(value))).is_err() {
                log::warn!("a destructor panicked while the loop dropped a layer's state");
            }
        });
        // Join the pool: jobs not started are discarded, running ones
        // finish and their results are dropped on the worker (posts fail).
        self.jobs.shut_down();
        if self.trace_owner {
            if let Err(e) = trace::stop() {
                log::warn!("trace: {e}");
            }
        }
    }
}

/// Marks the loop running and current for the length of a `run_*` call.
struct Running<'a> {
    inner: &'a LoopState,
    _enter: EnterGuard,
}

impl<'a> Running<'a> {
    fn enter(inner: &'a Rc<LoopState>) -> Self {
        inner.running.set(true);
        Running {
            inner,
            _enter: EnterGuard::new(inner.clone()),
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.inner.running.set(false);
        self.inner.phase.set(Phase::Idle);
    }
}

/// Makes a loop the thread's current one until dropped; see
/// [`EventLoop::enter`]. Guards nest and must be dropped in reverse order
/// of creation. Dropping one out of order is a bug in the caller: it is
/// reported on stderr (not a panic: a `Drop` that panics while unwinding
/// aborts the process), and the loop the guard replaced is current again.
#[must_use = "the loop is current only while the guard lives"]
pub struct EnterGuard {
    prev: Option<Rc<LoopState>>,
    mine: *const LoopState,
}

impl EnterGuard {
    fn new(inner: Rc<LoopState>) -> Self {
        let mine = Rc::as_ptr(&inner);
        let prev = CURRENT.with(|c| c.borrow_mut().replace(inner));
        EnterGuard { prev, mine }
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // Ignore a thread that is being torn down.
        let old = CURRENT.try_with(|c| std::mem::replace(&mut *c.borrow_mut(), prev));
        let in_order = match &old {
            Ok(Some(cur)) => std::ptr::eq(Rc::as_ptr(cur), self.mine),
            _ => true,
        };
        drop(old);
        if !in_order {
            // A `Drop` must not panic (a panic while unwinding aborts the
            // process): say so loudly instead. The loop this guard entered
            // is no longer current; the one it replaced is again.
            log::error!("evloop EnterGuards were dropped out of order (drop the newest first)");
            eprintln!("evloop: EnterGuards were dropped out of order (drop the newest first)");
        }
    }
}

impl fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnterGuard")
    }
}
