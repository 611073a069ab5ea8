//! The loop itself: Node's phases, the run modes, liveness, and the
//! thread's current loop.
//!
//! Read [`Inner::run_mode`] top to bottom to see one tick.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, PanicError};
use crate::immediate::ImmediateQueue;
use crate::introspect::{HandleInfo, HandleKind};
use crate::microtasks::{Job, Microtasks};
use crate::pool::{configured_size, DoneCallback, Pool};
use crate::reactor::{split, Reactor, WAKER_TOKEN};
use crate::remote::{Remote, RemoteJob, Shared};
use crate::timers::TimerHeap;
use crate::trace;

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
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Inner>) -> R) -> R {
    CURRENT.with(|c| f(c.borrow().as_ref().expect(NO_LOOP)))
}

/// Runs `f` with the thread's current loop, or returns `None` if there is
/// none (for code that may run while a loop is being dropped).
pub(crate) fn try_with_current<R>(f: impl FnOnce(&Rc<Inner>) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(f))
        .ok()
        .flatten()
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

    pub(crate) fn checkpoint_now(&self) {
        if let Some(i) = self.0.upgrade() {
            i.checkpoint_now();
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
    /// What stops the loop: an uncaught panic, or an unhandled rejection
    /// in strict mode.
    fatal: RefCell<Option<Error>>,
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
    #[allow(clippy::type_complexity)]
    panic_hook: RefCell<Option<Box<dyn FnMut(PanicError)>>>,
    /// Bumped whenever the handler is set or cleared, so a handler that
    /// replaces or clears itself while running is not put back.
    panic_hook_gen: Cell<u64>,
}

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
            || !self.closing.borrow().is_empty()
    }

    /// libuv's `uv_backend_timeout`: how long poll may block.
    fn backend_timeout(&self) -> Option<Duration> {
        if self.stop_flag.get()
            || !self.pending.borrow().is_empty()
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

    // ---- calling user code ----

    /// Calls user code at the dispatch boundary, catching a panic.
    pub(crate) fn call(&self, origin: &'static str, f: impl FnOnce()) {
        let span = trace::begin();
        let r = catch_unwind(AssertUnwindSafe(f));
        trace::end(span, origin, "callback", None);
        if let Err(payload) = r {
            self.report_panic(PanicError::from_payload(&*payload, origin));
            // The payload's own Drop could panic; don't let that escape.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
        }
    }

    /// Routes a caught panic to the user's handler, or records it so the
    /// loop stops (Node's default for an uncaught exception).
    fn report_panic(&self, err: PanicError) {
        log::debug!("{err}");
        let hook = self.panic_hook.borrow_mut().take();
        match hook {
            Some(mut hook) => {
                let gen = self.panic_hook_gen.get();
                let r = catch_unwind(AssertUnwindSafe(|| hook(err)));
                if self.panic_hook_gen.get() == gen {
                    *self.panic_hook.borrow_mut() = Some(hook);
                } else {
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(hook)));
                }
                if let Err(p) = r {
                    // A panicking handler is fatal, as a throw inside
                    // Node's 'uncaughtException' listener is.
                    let e = PanicError::from_payload(&*p, "uncaught-panic handler");
                    self.fatal.borrow_mut().get_or_insert(Error::Panicked(e));
                }
            }
            None => {
                self.fatal.borrow_mut().get_or_insert(Error::Panicked(err));
            }
        }
    }

    /// Records what stops the loop (the first one wins).
    pub(crate) fn set_fatal(&self, e: Error) {
        self.fatal.borrow_mut().get_or_insert(e);
    }

    /// Whether the loop must stop: a panic nobody handled, or a strict-mode
    /// unhandled rejection.
    fn has_panicked(&self) -> bool {
        self.fatal.borrow().is_some()
    }

    /// The microtask checkpoint: all `next_tick`s, then all microtasks,
    /// until both are empty; then the promises rejected with no handler are
    /// reported, and if that queued more work, around again (Node's
    /// `processTicksAndRejections`). Runs after every callback.
    ///
    /// Inline and short for the common case (nothing queued): it runs twice
    /// per request on a busy server, and the full body, out of line, costs
    /// ~45 instructions per call in register saves alone (callgrind,
    /// benches/servers/callgrind.sh).
    #[inline]
    pub(crate) fn checkpoint(&self, turn: &mut Turn) {
        if self.checkpoint_idle() {
            return;
        }
        self.checkpoint_slow(turn);
    }

    /// Nothing for a checkpoint to do: no tick, no microtask, no rejection
    /// to report (whether or not a panic stopped the loop, the checkpoint
    /// would then return at once).
    #[inline]
    fn checkpoint_idle(&self) -> bool {
        self.micro.is_empty() && self.rejections.is_idle()
    }

    #[inline(never)]
    fn checkpoint_slow(&self, turn: &mut Turn) {
        loop {
            if self.has_panicked() {
                return;
            }
            if !self.micro.is_empty() && !self.drain_queues(turn) {
                return;
            }
            if self.rejections.is_idle() {
                return;
            }
            self.rejections.process(self);
        }
    }

    /// Drains the `next_tick` and microtask queues. Returns false if a panic
    /// means the rest must wait for the next callback boundary.
    fn drain_queues(&self, turn: &mut Turn) -> bool {
        loop {
            let mut ran = 0;
            let span = trace::begin();
            let r = catch_unwind(AssertUnwindSafe(|| self.micro.drain(&mut ran)));
            if ran > 0 {
                trace::end(span, "microtasks", "checkpoint", Some(("jobs", ran)));
            }
            turn.microtasks += ran;
            match r {
                Ok(()) => return true,
                Err(payload) => {
                    let from_tick = self.micro.take_tick_panic();
                    let origin = if from_tick { "next_tick" } else { "microtask" };
                    self.report_panic(PanicError::from_payload(&*payload, origin));
                    // Node: after a throw in a microtask V8 drains on; after
                    // a throw in a tick, the queues resume only at the next
                    // callback boundary.
                    if self.has_panicked() || from_tick {
                        return false;
                    }
                }
            }
        }
    }

    // ---- the phases ----

    /// One run of `uv_run` (libuv >= 1.45, as in Node 20).
    fn run_mode(self: &Rc<Self>, mode: Mode) -> Result<Turn, Error> {
        if self.running.get() {
            return Err(Error::Reentrant);
        }
        let _running = Running::enter(self);
        let mut turn = Turn::default();

        // Work left queued by a panic that stopped the previous run.
        self.checkpoint(&mut turn);

        let mut alive = self.alive();
        if !alive {
            self.update_now_ns();
        }
        // Node runs due timers once before the first iteration.
        if mode == Mode::Default && alive && !self.stop_flag.get() {
            self.update_now_ns();
            self.traced("timers", &mut turn, |me, turn| me.run_timers(turn));
        }

        while alive && !self.stop_flag.get() && !self.has_panicked() {
            let n = self.iterations.get() + 1;
            self.iterations.set(n);
            turn.iterations += 1;
            log::trace!("iteration {n} begins");

            let can_sleep = self.pending.borrow().is_empty();
            self.traced("pending", &mut turn, |me, turn| me.run_pending(turn));

            let timeout = if (mode == Mode::Once && can_sleep) || mode == Mode::Default {
                self.backend_timeout()
            } else {
                Some(Duration::ZERO)
            };
            let span = trace::begin();
            let polled = self.poll(timeout, &mut turn);
            trace::end(span, "poll", "phase", None);
            polled?;

            // Completions that arrived during poll run now, a bounded number
            // of rounds so a flood cannot starve the other phases.
            for _ in 0..8 {
                if self.pending.borrow().is_empty() || self.has_panicked() {
                    break;
                }
                self.traced("pending", &mut turn, |me, turn| me.run_pending(turn));
            }

            self.traced("check", &mut turn, |me, turn| me.run_check(turn));
            self.traced("close", &mut turn, |me, turn| me.run_closing(turn));

            self.update_now_ns();
            self.traced("timers", &mut turn, |me, turn| me.run_timers(turn));

            // A boundary for jobs left queued by a panicking tick.
            self.checkpoint(&mut turn);
            trace::flush();
            alive = self.alive();
            if mode != Mode::Default {
                break;
            }
        }

        self.stop_flag.set(false);
        self.phase.set(Phase::Idle);
        turn.alive = self.alive();
        if let Some(e) = self.fatal.borrow_mut().take() {
            return Err(e);
        }
        Ok(turn)
    }

    /// Runs one phase, as a span on the timeline when tracing (phases
    /// that ran no callback are left out, so an idle tick stays short).
    fn traced(&self, name: &str, turn: &mut Turn, phase: impl FnOnce(&Self, &mut Turn)) {
        let span = trace::begin();
        let before = turn.callbacks();
        phase(self, turn);
        if turn.callbacks() > before {
            trace::end(
                span,
                name,
                "phase",
                Some(("callbacks", turn.callbacks() - before)),
            );
        }
    }

    fn run_timers(&self, turn: &mut Turn) {
        self.phase.set(Phase::Timers);
        let now = self.now_ns.get();
        log::trace!("phase timers ({} armed)", self.timers.borrow().armed());
        while !self.has_panicked() {
            // Pop one at a time: a callback may clear a timer that is due.
            let Some(mut due) = self.timers.borrow_mut().pop_due(now) else {
                break;
            };
            log::trace!("dispatch timer #{}", due.key);
            self.call("timer", || due.cb.call());
            turn.timers += 1;
            let garbage = self
                .timers
                .borrow_mut()
                .finish(due, || self.update_now_ns());
            // Dropping user captures is user code too: it may panic.
            if let Some(garbage) = garbage {
                self.call("timer", move || drop(garbage));
            }
            self.checkpoint(turn);
        }
    }

    /// Moves cross-thread jobs into the pending queue; honours a remote stop.
    fn take_remote(&self) {
        let mut buf = self.remote_buf.borrow_mut();
        if self.remote.take(&mut buf) {
            log::debug!("stop requested from another thread");
            self.stop_flag.set(true);
        }
        if !buf.is_empty() {
            let mut pending = self.pending.borrow_mut();
            for job in buf.drain(..) {
                pending.push_back(job);
            }
        }
    }

    fn run_pending(&self, turn: &mut Turn) {
        self.phase.set(Phase::Pending);
        if self.remote.is_notified() {
            self.take_remote();
        }
        // A snapshot: callbacks deferred by these run next time.
        let n = self.pending.borrow().len();
        log::trace!("phase pending ({n} queued)");
        for _ in 0..n {
            if self.has_panicked() {
                break;
            }
            let Some(job) = self.pending.borrow_mut().pop_front() else {
                break;
            };
            self.call("pending", job);
            turn.pending += 1;
            self.checkpoint(turn);
        }
    }

    fn poll(&self, timeout: Option<Duration>, turn: &mut Turn) -> io::Result<()> {
        self.phase.set(Phase::Poll);
        log::trace!("phase poll (timeout {timeout:?})");
        let mut events = self
            .reactor
            .events
            .borrow_mut()
            .take()
            .expect("poll is not re-entrant");
        let span = trace::begin();
        let r = self.poll_retrying(&mut events, timeout);
        trace::end(span, "poll wait", "wait", None);
        self.update_now_ns();
        if let Err(e) = r {
            *self.reactor.events.borrow_mut() = Some(events);
            return Err(e);
        }
        // Dispatch the whole batch even after a panic: readiness is
        // edge-triggered, so an undispatched event would be lost for good.
        for event in events.iter() {
            if event.token() == WAKER_TOKEN {
                self.take_remote();
                continue;
            }
            let (key, gen) = split(event.token());
            self.dispatch_io(key, gen, crate::reactor::Ready::from_mio(event), turn);
        }
        for (key, gen, ready) in crate::fault::extra_events(&self.reactor) {
            self.dispatch_io(key, gen, ready, turn);
        }
        *self.reactor.events.borrow_mut() = Some(events);
        Ok(())
    }

    /// Runs the callback of source `key` for one event.
    fn dispatch_io(&self, key: usize, gen: u32, ready: crate::reactor::Ready, turn: &mut Turn) {
        // A stale token (closed source, key perhaps reused) or a callback
        // already on the stack yields nothing.
        let Some(mut cb) = self.reactor.take_callback(key, gen) else {
            log::trace!("drop stale event for #{key} (gen {gen})");
            return;
        };
        log::trace!("dispatch io #{key} {ready:?}");
        let label = if trace::is_enabled() {
            self.reactor.kind(key)
        } else {
            "io"
        };
        self.call(label, || cb(ready));
        turn.io += 1;
        if let Some(garbage) = self.reactor.restore_callback(key, gen, cb) {
            self.call("io", move || drop(garbage));
        }
        self.checkpoint(turn);
    }

    /// `Poll::poll`, retried on `EINTR` with the *remaining* timeout.
    fn poll_retrying(&self, events: &mut mio::Events, timeout: Option<Duration>) -> io::Result<()> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut timeout = crate::fault::poll_timeout(timeout);
        loop {
            let injected = crate::fault::check(crate::fault::Op::Poll);
            match injected.and_then(|()| self.reactor.poll.borrow_mut().poll(events, timeout)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                }
                r => return r,
            }
        }
    }

    fn run_check(&self, turn: &mut Turn) {
        self.phase.set(Phase::Check);
        // Only immediates queued before this phase began run now.
        let end = self.immediates.borrow().snapshot();
        log::trace!("phase check ({} queued)", self.immediates.borrow().live());
        while !self.has_panicked() {
            let Some(cb) = self.immediates.borrow_mut().pop_before(end) else {
                break;
            };
            log::trace!("dispatch immediate");
            self.call("immediate", cb);
            turn.immediates += 1;
            self.checkpoint(turn);
        }
    }

    fn run_closing(&self, turn: &mut Turn) {
        self.phase.set(Phase::Close);
        let n = self.closing.borrow().len();
        if n > 0 {
            log::trace!("phase close ({n} closing)");
        }
        for _ in 0..n {
            if self.has_panicked() {
                break;
            }
            let Some(job) = self.closing.borrow_mut().pop_front() else {
                break;
            };
            self.call("close", job);
            turn.closes += 1;
            self.checkpoint(turn);
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
/// of creation (dropping one out of order panics, as tokio's do: the
/// alternative is a loop that stays current, and alive, forever).
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
        if !in_order && !std::thread::panicking() {
            panic!("evloop EnterGuards were dropped out of order (drop the newest first)");
        }
    }
}

impl fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnterGuard")
    }
}

/// A single-threaded event loop in the Node.js model.
///
/// # One tick
///
/// `run` first fires due timers, then repeats, while the loop is alive:
///
/// 1. **pending**: jobs posted from other threads ([`Remote`]) and I/O
///    callbacks deferred from the previous iteration;
/// 2. **poll**: wait for I/O (not at all if immediates, pending callbacks,
///    closing handles or a stop are waiting; else until the next timer;
///    else until something happens) and dispatch readiness to
///    [`watch`](crate::watch) callbacks;
/// 3. **check**: the immediates queued before this phase began;
/// 4. **close**: close callbacks;
/// 5. update the cached [`now`](EventLoop::now), then **timers**: every due
///    timer, earliest first, equal deadlines in the order they were set.
///
/// After **every** callback the microtask checkpoint runs: all
/// [`next_tick`](crate::next_tick) jobs, then all
/// [microtasks](crate::queue_microtask), until both queues are empty.
///
/// # What keeps it alive
///
/// Ref'd timers, immediates and watches, requests in flight, pending and
/// closing callbacks. `unref()` on a handle lets the loop exit while it is
/// still active; ref/unref are flags, not counters. Queued microtasks alone
/// keep nothing alive.
///
/// # Panics in callbacks
///
/// A panicking callback does not corrupt the loop: the panic is caught at
/// the dispatch boundary. By default (Node's uncaught exception) the loop
/// stops after that callback (the poll phase first finishes its batch, as
/// readiness edges would otherwise be lost) and `run` returns
/// [`Error::Panicked`]. Everything else stays queued: the loop can be run
/// again or dropped, which releases all it holds. With
/// [`on_uncaught_panic`](EventLoop::on_uncaught_panic) the handler gets the
/// panic and the loop goes on.
pub struct EventLoop {
    pub(crate) inner: Rc<Inner>,
}

impl EventLoop {
    /// Creates a loop: an epoll instance, its waker and empty queues. No
    /// thread is started.
    pub fn new() -> io::Result<EventLoop> {
        crate::process::sys::ignore_sigxfsz();
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let inner = Rc::new(Inner {
            timers: RefCell::default(),
            immediates: RefCell::default(),
            micro: Microtasks::default(),
            reactor: Reactor::new(poll),
            remote: Arc::new(Shared::new(waker)),
            remote_buf: RefCell::default(),
            pending: RefCell::default(),
            closing: RefCell::default(),
            requests: Cell::new(0),
            pool: RefCell::new(None),
            work: RefCell::default(),
            next_work_id: Cell::new(0),
            epoch: Instant::now(),
            now_ns: Cell::new(0),
            stop_flag: Cell::new(false),
            running: Cell::new(false),
            phase: Cell::new(Phase::Idle),
            iterations: Cell::new(0),
            fatal: RefCell::new(None),
            rejections: Default::default(),
            tasks: Default::default(),
            process: RefCell::new(None),
            trace_owner: trace::init_from_env(),
            panic_hook: RefCell::new(None),
            panic_hook_gen: Cell::new(0),
        });
        log::debug!(
            "event loop created (epoll fd {})",
            inner.reactor.poll.borrow().as_raw_fd()
        );
        Ok(EventLoop { inner })
    }

    /// Makes this loop the thread's current one (the one `set_timeout` and
    /// friends use) until the guard is dropped. `run*` do this themselves.
    pub fn enter(&self) -> EnterGuard {
        EnterGuard::new(self.inner.clone())
    }

    /// Runs until nothing keeps the loop alive, [`stop`](EventLoop::stop)
    /// is called, or a callback panics (libuv's `UV_RUN_DEFAULT`).
    pub fn run(&self) -> Result<(), Error> {
        log::debug!("run begins");
        self.inner.run_mode(Mode::Default).map(|_| ())
    }

    /// Runs one iteration, blocking in poll if there is nothing to do yet
    /// (libuv's `UV_RUN_ONCE`). The [`Turn`] says what ran and whether the
    /// loop is still alive.
    pub fn run_once(&self) -> Result<Turn, Error> {
        self.inner.run_mode(Mode::Once)
    }

    /// Runs one iteration without blocking (libuv's `UV_RUN_NOWAIT`); what
    /// an embedding host calls when [`backend_fd`](EventLoop::backend_fd)
    /// is readable or [`backend_timeout`](EventLoop::backend_timeout) has
    /// passed.
    pub fn run_nowait(&self) -> Result<Turn, Error> {
        self.inner.run_mode(Mode::NoWait)
    }

    /// Asks `run` to return after the current iteration (`uv_stop`). Poll
    /// does not block in that iteration. From another thread use
    /// [`Remote::stop`].
    pub fn stop(&self) {
        self.inner.stop_flag.set(true);
    }

    /// The loop's cached time, updated once per iteration (after poll,
    /// before timers) and when a timer is set (`uv_now`).
    pub fn now(&self) -> Instant {
        self.inner.now()
    }

    /// Whether anything keeps the loop alive (`uv_loop_alive`).
    pub fn is_alive(&self) -> bool {
        self.inner.alive()
    }

    /// Threads in this loop's pool: 0 until the first
    /// [`queue_work`](crate::queue_work) starts it.
    pub fn threadpool_threads(&self) -> usize {
        self.inner.pool.borrow().as_ref().map_or(0, Pool::threads)
    }

    /// Iterations run so far.
    pub fn iterations(&self) -> u64 {
        self.inner.iterations.get()
    }

    /// I/O sources registered with the reactor since the loop was created
    /// (sockets, pipes, watched fds; each reuse of a slab key counts).
    pub fn registrations(&self) -> u64 {
        self.inner.reactor.registrations()
    }

    /// Spawned `async` tasks that have not finished yet (see
    /// [`spawn`](crate::spawn)). Pending tasks keep nothing alive.
    pub fn tasks(&self) -> usize {
        self.inner.tasks.len()
    }

    /// The phase the loop is in.
    pub fn phase(&self) -> Phase {
        self.inner.phase.get()
    }

    /// A `Send + Sync` handle for other threads.
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.inner.remote.clone(),
        }
    }

    /// The epoll fd (`uv_backend_fd`): readable whenever the loop has I/O
    /// to dispatch. A host loop polls it and calls
    /// [`run_nowait`](EventLoop::run_nowait).
    pub fn backend_fd(&self) -> RawFd {
        self.inner.reactor.poll.borrow().as_raw_fd()
    }

    /// How long a host may block before calling
    /// [`run_nowait`](EventLoop::run_nowait) (`uv_backend_timeout`): zero if
    /// work is ready, the time to the next timer, or `None` for "until the
    /// backend fd is readable".
    pub fn backend_timeout(&self) -> Option<Duration> {
        self.inner.backend_timeout()
    }

    /// Installs a handler for panics in callbacks (Node's
    /// `process.on('uncaughtException')`): the loop hands it the panic and
    /// keeps running instead of stopping. A handler that panics itself stops
    /// the loop.
    pub fn on_uncaught_panic(&self, handler: impl FnMut(PanicError) + 'static) {
        self.replace_panic_hook(Some(Box::new(handler)));
    }

    /// Removes the handler: panics stop the loop again.
    pub fn clear_uncaught_panic(&self) {
        self.replace_panic_hook(None);
    }

    #[allow(clippy::type_complexity)]
    fn replace_panic_hook(&self, hook: Option<Box<dyn FnMut(PanicError)>>) {
        let gen = &self.inner.panic_hook_gen;
        gen.set(gen.get() + 1);
        let old = std::mem::replace(&mut *self.inner.panic_hook.borrow_mut(), hook);
        drop(old); // after the borrow: its captures may touch the loop
    }

    /// What is active on the loop, with a kind, a label and whether it keeps
    /// the loop alive: the answer to "why doesn't my program exit?".
    pub fn active_handles(&self) -> Vec<HandleInfo> {
        let inner = &self.inner;
        let now = inner.now_ns.get();
        let mut out = Vec::new();
        for (repeat, delay, refed, deadline) in inner.timers.borrow().describe() {
            let (kind, name) = if repeat {
                (HandleKind::Interval, "set_interval")
            } else {
                (HandleKind::Timeout, "set_timeout")
            };
            let label = if deadline == u64::MAX {
                format!("{name}({delay:?}), never due")
            } else {
                let left = Duration::from_nanos(deadline.saturating_sub(now));
                format!("{name}({delay:?}), due in {left:?}")
            };
            out.push(HandleInfo { kind, label, refed });
        }
        for refed in inner.immediates.borrow().refed_flags() {
            out.push(HandleInfo {
                kind: HandleKind::Immediate,
                label: "set_immediate".into(),
                refed,
            });
        }
        for (kind, fd, interest, refed) in inner.reactor.describe() {
            out.push(HandleInfo {
                kind: HandleKind::Io,
                label: format!("{kind} {fd} {interest:?}"),
                refed,
            });
        }
        for _ in 0..inner.requests.get() {
            out.push(HandleInfo {
                kind: HandleKind::Request,
                label: "request in flight".into(),
                refed: true,
            });
        }
        for _ in 0..inner.pending.borrow().len() {
            out.push(HandleInfo {
                kind: HandleKind::Pending,
                label: "pending callback".into(),
                refed: true,
            });
        }
        for _ in 0..inner.closing.borrow().len() {
            out.push(HandleInfo {
                kind: HandleKind::Closing,
                label: "close callback".into(),
                refed: true,
            });
        }
        out
    }

    /// Runs `main` as Node runs a script's top level: with this loop
    /// current, followed by a microtask checkpoint (its `next_tick`s and
    /// microtasks run before this returns; timers, immediates and I/O wait
    /// for [`run`](EventLoop::run)). [`crate::run`] is `run_main` then `run`.
    pub fn run_main(&self, main: impl FnOnce()) -> Result<(), Error> {
        if self.inner.running.get() || self.inner.phase.get() == Phase::Main {
            return Err(Error::Reentrant);
        }
        let _guard = self.enter();
        self.inner.phase.set(Phase::Main);
        self.inner.call("main", main);
        self.inner.checkpoint(&mut Turn::default());
        self.inner.phase.set(Phase::Idle);
        match self.inner.fatal.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        // The last owner tears down with the loop current (see
        // `Inner::teardown`); `Inner::drop` then releases what is left (the
        // pool, signal registrations) as before. Not while the thread's
        // locals are being destroyed, when the loop cannot be made current.
        if Rc::strong_count(&self.inner) == 1 && CURRENT.try_with(|_| ()).is_ok() {
            let _guard = self.enter();
            self.inner.teardown();
        }
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let imm = i.immediates.borrow();
        f.debug_struct("EventLoop")
            .field("phase", &i.phase.get())
            .field("iterations", &i.iterations.get())
            .field("timers", &i.timers.borrow().armed())
            .field("immediates", &imm.live())
            .field("next_ticks", &i.micro.ticks_len())
            .field("microtasks", &i.micro.micro_len())
            .field("sources", &i.reactor.len())
            .field("pending", &i.pending.borrow().len())
            .field("closing", &i.closing.borrow().len())
            .field("requests", &i.requests.get())
            .field("alive", &i.alive())
            .finish()
    }
}

/// Runs `main` as Node runs a script: on a new loop, then a microtask
/// checkpoint, then the loop until nothing keeps it alive.
///
/// Returns [`Error::Panicked`] if `main` or any callback panicked (and no
/// [uncaught-panic handler](EventLoop::on_uncaught_panic) was installed);
/// the loop is dropped either way, releasing everything it held.
///
/// ```
/// use std::time::Duration;
/// evloop::run(|| {
///     evloop::set_timeout(Duration::from_millis(1), || println!("timeout"));
///     evloop::set_immediate(|| println!("immediate"));
///     evloop::queue_microtask(|| println!("microtask"));
///     evloop::next_tick(|| println!("tick"));
///     println!("main");
/// })
/// .unwrap();
/// ```
pub fn run(main: impl FnOnce()) -> Result<(), Error> {
    let el = EventLoop::new()?;
    el.run_main(main)?;
    el.run()
}

/// Stops the current loop after its current iteration (see
/// [`EventLoop::stop`]).
///
/// # Panics
/// If no event loop is current on this thread.
pub fn stop() {
    with_current(|inner| inner.stop_flag.set(true))
}

/// The current loop's cached time (see [`EventLoop::now`]).
///
/// # Panics
/// If no event loop is current on this thread.
pub fn now() -> Instant {
    with_current(|inner| inner.now())
}

/// The phase the current loop is in (see [`EventLoop::phase`]): handy in
/// a callback, to see where it runs.
///
/// # Panics
/// If no event loop is current on this thread.
pub fn current_phase() -> Phase {
    with_current(|inner| inner.phase.get())
}

/// Whether a loop is current on this thread.
pub fn has_current() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}
