//! The loop itself: its state (`Inner`), liveness, teardown, and the
//! thread's current loop. The phases of a tick are in `phases.rs` (read
//! [`Inner::run_mode`] top to bottom to see one tick); calling user code,
//! uncaught errors and the microtask checkpoint in `dispatch.rs`; the
//! public [`EventLoop`] handle and the free functions in `handle.rs`.

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
use crate::pool::{configured_size, DoneCallback, Pool};
use crate::reactor::{split, Reactor, WAKER_TOKEN};
use crate::remote::{Remote, RemoteJob, Shared};
use crate::timers::TimerHeap;
use crate::trace;

mod dispatch;
mod handle;
mod phases;

pub use handle::{
    active_handles, clear_uncaught_exception, current_phase, has_current, now,
    on_uncaught_exception, run, stop, EventLoop,
};

thread_local! {
    /// The loop that the free functions (`set_timeout`, ...) act on.
    static CURRENT: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
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
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Inner>) -> R) -> R {
    let inner = CURRENT.with(|c| c.borrow().clone());
    f(inner.as_ref().expect(NO_LOOP))
}

/// Runs `f` with the thread's current loop, or returns `None` if there is
/// none (for code that may run while a loop is being dropped).
pub(crate) fn try_with_current<R>(f: impl FnOnce(&Rc<Inner>) -> R) -> Option<R> {
    let inner = CURRENT
        .try_with(|c| c.try_borrow().ok().and_then(|c| c.clone()))
        .ok()
        .flatten()?;
    Some(f(&inner))
}

/// Reports an error nobody listens for to the current loop (see
/// [`Inner::report_uncaught`]); with no loop current, it is logged.
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
pub(crate) fn current_inner() -> Rc<Inner> {
    with_current(Rc::clone)
}

/// A weak reference to a loop, for objects the loop's own registrations
/// keep alive (streams, sockets): a strong one would be a cycle through the
/// reactor, and the loop could never be dropped while one is open. Every
/// method does nothing once the loop is gone.
#[derive(Clone)]
pub(crate) struct LoopRef(std::rc::Weak<Inner>);

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

    pub(crate) fn checkpoint_now(&self) {
        if let Some(i) = self.0.upgrade() {
            i.checkpoint_now();
        }
    }

    /// Reports an error nobody listens for (see [`Inner::report_uncaught`]);
    /// with the loop gone, it is logged.
    pub(crate) fn report_uncaught(&self, err: Error) {
        match self.0.upgrade() {
            Some(i) => i.report_uncaught(err, Origin::UncaughtException),
            None => log::warn!("uncaught error after the loop ended: {err}"),
        }
    }
}

/// Which part of an iteration the loop is in (shown by `Debug`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// `next_tick` and microtask jobs run.
    pub microtasks: usize,
    /// Whether the loop still has work that keeps it alive (libuv's
    /// non-zero return).
    pub alive: bool,
}

impl Turn {
    /// Total callbacks run, microtasks included.
    pub fn callbacks(&self) -> usize {
        self.timers + self.pending + self.io + self.immediates + self.closes + self.microtasks
    }
}

/// The loop's state. Every field is behind its own `RefCell`/`Cell`, and no
/// borrow is ever held while user code runs ("take, then call").
pub(crate) struct Inner {
    pub(crate) timers: RefCell<TimerHeap>,
    pub(crate) immediates: RefCell<ImmediateQueue>,
    pub(crate) micro: Microtasks,
    pub(crate) reactor: Reactor,
    remote: Arc<Shared>,
    remote_buf: RefCell<Vec<RemoteJob>>,
    pending: RefCell<VecDeque<Job>>,
    /// Work a busy source left for the next iteration (a stream that read
    /// its batch and is still readable): moved to `pending` when the next
    /// iteration begins, so the poll in between serves every other source.
    next_turn: RefCell<Vec<Job>>,
    closing: RefCell<VecDeque<Job>>,
    /// Requests in flight (pool jobs, ...): they keep the loop alive.
    requests: Cell<usize>,
    /// The thread pool, started on first use.
    pool: RefCell<Option<Pool>>,
    /// `done` callbacks of pool jobs in flight, by job key.
    work: RefCell<slab::Slab<DoneCallback>>,
    /// The id of the next pool job (never reused, unlike slab keys).
    next_work_id: Cell<u64>,
    epoch: Instant,
    now_ns: Cell<u64>,
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
    /// Rejected promises waiting for the end of a checkpoint to be
    /// reported unhandled, and the reporting policy.
    pub(crate) rejections: crate::promise::unhandled::Tracker,
    /// Spawned `async` tasks that have not finished (see [`crate::task`]).
    pub(crate) tasks: crate::task::Tasks,
    /// Signal handlers and child processes, created on first use (see
    /// [`crate::process`]).
    pub(crate) process: RefCell<Option<Rc<crate::process::signal::Hub>>>,
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

impl Inner {
    // ---- time ----

    /// Reads the clock into the cached `now`; returns it as nanoseconds
    /// since the loop's epoch.
    pub(crate) fn update_now_ns(&self) -> u64 {
        let ns = crate::timers::duration_to_ns(self.epoch.elapsed());
        self.now_ns.set(ns);
        ns
    }

    fn now(&self) -> Instant {
        self.epoch + Duration::from_nanos(self.now_ns.get())
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

    /// A pool job starts: remember its `done`, count it as a request.
    pub(crate) fn work_started(&self, done: DoneCallback) -> (usize, Remote) {
        let key = self.work.borrow_mut().insert(done);
        self.requests.set(self.requests.get() + 1);
        let remote = Remote {
            shared: self.remote.clone(),
        };
        (key, remote)
    }

    /// Hands a job to the pool, starting the pool on first use. If its
    /// threads cannot be started, the job's `done` gets the error.
    /// Returns the job's id, for [`Inner::cancel_work`].
    pub(crate) fn submit_work(&self, key: usize, job: Box<dyn FnOnce() + Send>) -> u64 {
        let id = self.next_work_id.get();
        self.next_work_id.set(id + 1);
        let mut pool = self.pool.borrow_mut();
        if pool.is_none() {
            match Pool::start(configured_size()) {
                Ok(p) => *pool = Some(p),
                Err(e) => {
                    drop(pool);
                    drop(job);
                    log::debug!("thread pool failed to start: {e}");
                    let msg = io::Error::other(format!("cannot start the thread pool: {e}"));
                    self.defer_pending(Box::new(move || {
                        let done = with_current(|inner| inner.work_finished(key));
                        if let Some(done) = done {
                            done(Err(msg));
                        }
                    }));
                    return id;
                }
            }
        }
        pool.as_ref().expect("started above").submit(id, job);
        id
    }

    /// Cancels queued job `id` (slab key `key`): its `done` runs in the
    /// pending phase with `ECANCELED`. `EBUSY` if it has started or ended.
    pub(crate) fn cancel_work(&self, id: u64, key: usize) -> io::Result<()> {
        let removed = match self.pool.borrow().as_ref() {
            Some(pool) => pool.cancel(id),
            None => false,
        };
        if !removed {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        // The job never ran, so nothing was posted for it: its `done` is
        // still in the slab under `key`, and the request still counts.
        self.defer_pending(Box::new(move || {
            let done = with_current(|inner| inner.work_finished(key));
            if let Some(done) = done {
                done(Err(crate::pool::canceled_error()));
            }
        }));
        Ok(())
    }

    /// A result a pool worker posted has reached the loop: the pool may
    /// start another job (see `pool::MAX_UNDELIVERED`).
    pub(crate) fn work_delivered(&self) {
        if let Some(pool) = self.pool.borrow().as_ref() {
            pool.delivered();
        }
    }

    /// A pool job finished: its `done`, to be called by the caller.
    pub(crate) fn work_finished(&self, key: usize) -> Option<DoneCallback> {
        let done = self.work.borrow_mut().try_remove(key);
        if done.is_some() {
            self.requests.set(self.requests.get() - 1);
        }
        done
    }

    // ---- liveness ----

    /// libuv's `uv__loop_alive`: ref'd active handles, requests, pending
    /// callbacks or closing handles.
    fn alive(&self) -> bool {
        self.timers.borrow().has_refed()
            || self.immediates.borrow().refed() > 0
            || self.reactor.has_refed()
            || self.requests.get() > 0
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
            || self.remote.is_notified()
            || !self.alive()
        {
            return Some(Duration::ZERO);
        }
        match self.timers.borrow().next_deadline() {
            None | Some(u64::MAX) => None,
            Some(deadline) => Some(Duration::from_nanos(
                deadline.saturating_sub(self.now_ns.get()),
            )),
        }
    }
}

impl Inner {
    /// Drops every stored closure and task while the loop is still current,
    /// round after round until nothing is left (at most 16 rounds). A
    /// destructor may use the loop: a future whose `Drop` spawns a task or
    /// sets a timer would otherwise panic with "no loop is current" inside
    /// `Inner::drop`, a panic during cleanup that aborts the process (found
    /// by the reliability test T16). What such destructors create is dropped
    /// in the next round, and a destructor that panics is caught and logged,
    /// so the rest is still released.
    fn teardown(&self) {
        drop(self.remote.close());
        for _ in 0..16 {
            let mut dropped = 0;
            let mut release = |what: &str, n: usize, garbage: Box<dyn FnOnce() + '_>| {
                dropped += n;
                if catch_unwind(AssertUnwindSafe(garbage)).is_err() {
                    log::warn!("a destructor panicked while the loop dropped its {what}");
                }
            };
            let tasks = self.tasks.drain_all();
            release("tasks", tasks.len(), Box::new(move || drop(tasks)));
            let work = std::mem::take(&mut *self.work.borrow_mut());
            release("pool callbacks", work.len(), Box::new(move || drop(work)));
            let timers = self.timers.borrow_mut().drain_all();
            release("timers", timers.len(), Box::new(move || drop(timers)));
            let imm = self.immediates.borrow_mut().drain_all();
            release("immediates", imm.len(), Box::new(move || drop(imm)));
            let micro = self.micro.drain_all();
            let n = micro.0.len() + micro.1.len();
            release("microtasks", n, Box::new(move || drop(micro)));
            let io = self.reactor.drain_all();
            release("sources", io.len(), Box::new(move || drop(io)));
            let pending = std::mem::take(&mut *self.pending.borrow_mut());
            release(
                "pending callbacks",
                pending.len(),
                Box::new(move || drop(pending)),
            );
            let next = std::mem::take(&mut *self.next_turn.borrow_mut());
            release(
                "next-turn callbacks",
                next.len(),
                Box::new(move || drop(next)),
            );
            let closing = std::mem::take(&mut *self.closing.borrow_mut());
            release(
                "close callbacks",
                closing.len(),
                Box::new(move || drop(closing)),
            );
            if dropped == 0 {
                return;
            }
        }
        log::warn!("destructors kept creating work while the loop was dropped");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        log::debug!("event loop dropped");
        // Refuse further cross-thread posts, then drop every stored closure.
        // Handles hold `Weak`s, so a closure's captures that touch the loop
        // in their `Drop` find it gone and do nothing.
        drop(self.remote.close());
        // Tasks first: dropping a future may release timers and sources.
        drop(self.tasks.drain_all());
        // Leave the signal registry; hand running children to a reaper.
        drop(self.process.get_mut().take());
        // Join the pool: jobs not started are discarded, running ones
        // finish and their results are dropped on the worker (posts fail).
        drop(self.pool.get_mut().take());
        drop(std::mem::take(self.work.get_mut()));
        drop(self.timers.get_mut().drain_all());
        drop(self.immediates.get_mut().drain_all());
        drop(self.micro.drain_all());
        drop(self.reactor.drain_all());
        drop(std::mem::take(self.pending.get_mut()));
        drop(std::mem::take(self.next_turn.get_mut()));
        drop(std::mem::take(self.closing.get_mut()));
        if self.trace_owner {
            if let Err(e) = trace::stop() {
                log::warn!("trace: {e}");
            }
        }
    }
}

/// Marks the loop running and current for the length of a `run_*` call.
struct Running<'a> {
    inner: &'a Inner,
    _enter: EnterGuard,
}

impl<'a> Running<'a> {
    fn enter(inner: &'a Rc<Inner>) -> Self {
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
    prev: Option<Rc<Inner>>,
    mine: *const Inner,
}

impl EnterGuard {
    fn new(inner: Rc<Inner>) -> Self {
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
