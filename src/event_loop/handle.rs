//! [`EventLoop`], the public handle of a loop, and the free functions
//! that reach the thread's current loop (`run`, `stop`, `now`, ...).

use super::*;

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
/// # Fairness
///
/// No source gets more than a bounded batch per iteration; what is left
/// waits for the next one, after a poll has served every other source:
/// a readable stream reads at most 32 times (64 KiB each) per readiness
/// event or turn (as libuv's `uv__read`), a listener accepts at most 128
/// connections, a UDP socket receives at most 64 datagrams, and a task
/// completes at most [`TASK_BUDGET`](crate::task::TASK_BUDGET) socket
/// operations per poll before it yields. Completions from the pool and
/// other threads run in at most 9 pending rounds per iteration.
///
/// # Uncaught errors
///
/// A panicking callback does not corrupt the loop: the panic is caught at
/// the dispatch boundary. By default (Node's uncaught exception) the loop
/// stops after that callback (the poll phase first finishes its batch, as
/// readiness edges would otherwise be lost) and `run` returns
/// [`Error::Panicked`]; an unhandled rejection and an error with no
/// listener stop it the same way ([`Error::UnhandledRejection`],
/// [`Error::UnhandledError`]). Everything else stays queued: the loop can
/// be run again or dropped, which releases all it holds. With
/// [`on_uncaught_exception`](EventLoop::on_uncaught_exception) the handler
/// gets the error and the loop goes on; the `next_tick`s and microtasks a
/// panicking callback queued then run after the next callback, as in Node.
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
///
/// // `evloop::run(main)` is this: a loop, its main script, then `run`.
/// let event_loop = evloop::EventLoop::new()?;
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// event_loop.run_main(move || {
///     let (a, b) = (l.clone(), l.clone());
///     evloop::set_timeout(Duration::from_millis(1), move || a.borrow_mut().push("timer"));
///     evloop::set_immediate(move || b.borrow_mut().push("immediate"));
///     l.borrow_mut().push("main");
/// })?;
/// event_loop.run()?;
/// assert_eq!(*log.borrow(), ["main", "immediate", "timer"]);
/// assert!(event_loop.iterations() >= 1);
/// # Ok::<(), evloop::Error>(())
/// ```
pub struct EventLoop {
    pub(crate) inner: Rc<LoopState>,
}

impl EventLoop {
    /// Creates a loop: an epoll instance, its waker and empty queues. No
    /// thread is started.
    ///
    /// ```
    /// let event_loop = evloop::EventLoop::new()?;
    /// assert!(!event_loop.is_alive()); // nothing to do yet
    /// event_loop.run()?; // so this returns at once
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn new() -> io::Result<EventLoop> {
        crate::sys::ignore_sigxfsz();
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        let inner = Rc::new(LoopState::new(Reactor::new(poll), RemoteQueue::new(waker)));
        log::debug!(
            "event loop created (epoll fd {})",
            inner.reactor.poll.borrow().as_raw_fd()
        );
        Ok(EventLoop { inner })
    }

    /// Makes this loop the thread's current one (the one `set_timeout` and
    /// friends use) until the guard is dropped. `run*` do this themselves.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// let event_loop = evloop::EventLoop::new()?;
    /// let fired = Rc::new(Cell::new(false));
    /// {
    ///     let _guard = event_loop.enter();
    ///     let fired = fired.clone();
    ///     evloop::set_immediate(move || fired.set(true));
    /// }
    /// assert!(!evloop::has_current()); // the guard is gone
    /// event_loop.run()?;
    /// assert!(fired.get());
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn enter(&self) -> EnterGuard {
        EnterGuard::new(self.inner.clone())
    }

    /// Runs until nothing keeps the loop alive, [`stop`](EventLoop::stop)
    /// is called, or a callback panics (libuv's `UV_RUN_DEFAULT`).
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    ///
    /// let event_loop = evloop::EventLoop::new()?;
    /// let ticks = Rc::new(Cell::new(0));
    /// let t = ticks.clone();
    /// event_loop.run_main(move || {
    ///     evloop::set_timeout(Duration::from_millis(1), move || t.set(t.get() + 1));
    /// })?;
    /// assert_eq!(ticks.get(), 0); // timers wait for run
    /// event_loop.run()?;
    /// assert_eq!(ticks.get(), 1);
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn run(&self) -> Result<(), Error> {
        log::debug!("run begins");
        self.inner.run_mode(Mode::Default).map(|_| ())
    }

    /// Runs one iteration, blocking in poll if there is nothing to do yet
    /// (libuv's `UV_RUN_ONCE`). The [`Turn`] says what ran and whether the
    /// loop is still alive.
    ///
    /// ```
    /// let event_loop = evloop::EventLoop::new()?;
    /// event_loop.run_main(|| {
    ///     evloop::set_immediate(|| {
    ///         evloop::set_immediate(|| {});
    ///     });
    /// })?;
    /// let turn = event_loop.run_once()?; // the first immediate
    /// assert_eq!((turn.immediates, turn.alive), (1, true));
    /// let turn = event_loop.run_once()?; // the one it queued
    /// assert_eq!((turn.immediates, turn.alive), (1, false));
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn run_once(&self) -> Result<Turn, Error> {
        self.inner.run_mode(Mode::Once)
    }

    /// Runs one iteration without blocking (libuv's `UV_RUN_NOWAIT`); what
    /// an embedding host calls when [`backend_fd`](EventLoop::backend_fd)
    /// is readable or [`backend_timeout`](EventLoop::backend_timeout) has
    /// passed.
    ///
    /// A host loop that drives evloop (here `poll(2)` stands in for the
    /// host's own poll):
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    ///
    /// let event_loop = evloop::EventLoop::new()?;
    /// let fired = Rc::new(Cell::new(false));
    /// let f = fired.clone();
    /// event_loop.run_main(move || {
    ///     evloop::set_timeout(Duration::from_millis(5), move || f.set(true));
    /// })?;
    /// while event_loop.run_nowait()?.alive {
    ///     // Sleep until evloop's fd is readable or its next timer is due.
    ///     let ms = match event_loop.backend_timeout() {
    ///         None => -1,
    ///         Some(d) => d.as_millis().min(1000) as i32 + 1,
    ///     };
    ///     let mut fd = libc::pollfd { fd: event_loop.backend_fd(), events: libc::POLLIN, revents: 0 };
    ///     unsafe { libc::poll(&mut fd, 1, ms) };
    /// }
    /// assert!(fired.get());
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn run_nowait(&self) -> Result<Turn, Error> {
        self.inner.run_mode(Mode::NoWait)
    }

    /// Asks `run` to return after the current iteration (`uv_stop`). Poll
    /// does not block in that iteration. From another thread use
    /// [`Remote::stop`].
    ///
    /// ```
    /// let event_loop = evloop::EventLoop::new()?;
    /// event_loop.run_main(|| {
    ///     evloop::set_interval(std::time::Duration::from_millis(1), || {});
    ///     evloop::set_immediate(|| evloop::EventLoop::current().unwrap().stop());
    /// })?;
    /// event_loop.run()?; // returns, although the interval is still active
    /// assert!(event_loop.is_alive());
    /// # Ok::<(), evloop::Error>(())
    /// ```
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
        self.inner.jobs.threads()
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

    /// The phase the loop is in.
    pub fn phase(&self) -> Phase {
        self.inner.phase.get()
    }

    /// A `Send + Sync` handle for other threads.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    ///
    /// let event_loop = evloop::EventLoop::new()?;
    /// let remote = event_loop.remote();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// event_loop.run_main(|| {
    ///     // Keeps the loop alive (a `Remote` does not).
    ///     evloop::set_timeout(std::time::Duration::from_secs(10), || {});
    /// })?;
    /// std::thread::spawn(move || {
    ///     // The job runs on the loop's thread, in its pending phase.
    ///     remote
    ///         .post(move || {
    ///             tx.send(evloop::has_current()).unwrap();
    ///             evloop::stop();
    ///         })
    ///         .unwrap();
    /// });
    /// event_loop.run()?;
    /// assert_eq!(rx.try_recv(), Ok(true));
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.inner.remote.clone(),
        }
    }

    /// The epoll fd (`uv_backend_fd`): readable whenever the loop has I/O
    /// to dispatch. A host loop polls it and calls
    /// [`run_nowait`](EventLoop::run_nowait).
    ///
    /// ```
    /// let event_loop = evloop::EventLoop::new()?;
    /// let fd = event_loop.backend_fd();
    /// assert!(fd >= 0);
    /// // A host registers `fd` for readability in its own poll; see
    /// // `run_nowait` for the whole loop.
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn backend_fd(&self) -> RawFd {
        self.inner.reactor.poll.borrow().as_raw_fd()
    }

    /// How long a host may block before calling
    /// [`run_nowait`](EventLoop::run_nowait) (`uv_backend_timeout`): zero if
    /// work is ready, the time to the next timer, or `None` for "until the
    /// backend fd is readable".
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let event_loop = evloop::EventLoop::new()?;
    /// assert_eq!(event_loop.backend_timeout(), Some(Duration::ZERO)); // not alive
    /// event_loop.run_main(|| {
    ///     evloop::set_timeout(Duration::from_secs(60), || {}).unref();
    ///     let _keep = evloop::set_timeout(Duration::from_secs(30), || {});
    /// })?;
    /// let wait = event_loop.backend_timeout().expect("a timer is due");
    /// assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn backend_timeout(&self) -> Option<Duration> {
        self.inner.backend_timeout()
    }

    /// Installs the uncaught-exception handler (Node's
    /// `process.on('uncaughtException', (err, origin) => ..)`): an error that
    /// nobody handled (a panicking callback, an unhandled rejection, an
    /// error with no listener) is handed to it with its [`Origin`], and the
    /// loop keeps running instead of stopping. A handler that panics itself
    /// stops the loop. From inside the loop, use the free
    /// [`on_uncaught_exception`](crate::on_uncaught_exception).
    ///
    /// ```
    /// use evloop::{Error, EventLoop, Origin};
    ///
    /// let event_loop = EventLoop::new()?;
    /// event_loop.on_uncaught_exception(|err: Error, origin: Origin| {
    ///     eprintln!("caught ({origin}): {err}");
    /// });
    /// event_loop.run_main(|| {
    ///     evloop::set_immediate(|| panic!("boom"));
    /// })?;
    /// event_loop.run()?; // the panic went to the handler
    /// # Ok::<(), Error>(())
    /// ```
    pub fn on_uncaught_exception(&self, handler: impl FnMut(Error, Origin) + 'static) {
        self.inner.replace_uncaught_hook(Some(Box::new(handler)));
    }

    /// Removes the handler: uncaught errors stop the loop again.
    pub fn clear_uncaught_exception(&self) {
        self.inner.replace_uncaught_hook(None);
    }

    /// The loop that is current on this thread (the one running the calling
    /// callback or task, or entered with [`enter`](EventLoop::enter)), as a
    /// handle: to reach the settings of [`EventLoop`] from inside
    /// [`crate::run`] or [`crate::run_async`]. `None` outside any loop.
    ///
    /// ```
    /// evloop::run(|| {
    ///     let me = evloop::EventLoop::current().expect("inside run");
    ///     me.on_uncaught_exception(|err, _| eprintln!("handled: {err}"));
    ///     evloop::set_timeout(std::time::Duration::ZERO, || panic!("boom"));
    /// })
    /// .unwrap(); // the handler took the panic
    /// ```
    pub fn current() -> Option<EventLoop> {
        let inner = CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()?;
        Some(EventLoop { inner })
    }

    /// What is active on the loop, with a kind, a label and whether it keeps
    /// the loop alive: the answer to "why doesn't my program exit?".
    pub fn active_handles(&self) -> Vec<HandleInfo> {
        self.inner.active_handles()
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

impl LoopState {
    fn active_handles(&self) -> Vec<HandleInfo> {
        let inner = self;
        let now = inner.clock.cached_ns();
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
        for (kind, refed) in inner.watchers.describe() {
            out.push(HandleInfo {
                kind: HandleKind::Watcher,
                label: format!("{kind} watcher"),
                refed,
            });
        }
        for (label, refed) in crate::remote::describe_async(inner) {
            out.push(HandleInfo {
                kind: HandleKind::Async,
                label,
                refed,
            });
        }
        for _ in 0..inner.jobs.in_flight() {
            out.push(HandleInfo {
                kind: HandleKind::Request,
                label: "request in flight".into(),
                refed: true,
            });
        }
        for _ in 0..inner.pending.borrow().len() + inner.next_turn.borrow().len() {
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
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        // The last owner tears down with the loop current (see
        // `LoopState::teardown`); `LoopState::drop` then releases what is left (the
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
            .field("requests", &i.jobs.in_flight())
            .field("alive", &i.alive())
            .finish()
    }
}

/// Runs `main` as Node runs a script: on a new loop, then a microtask
/// checkpoint, then the loop until nothing keeps it alive.
///
/// Returns the first uncaught error ([`Error::Panicked`] if `main` or any
/// callback panicked, [`Error::UnhandledRejection`],
/// [`Error::UnhandledError`]) if no [uncaught-exception
/// handler](on_uncaught_exception) was installed; the loop is dropped
/// either way, releasing everything it held. Called from inside another
/// loop's callback or task, it runs a separate loop (see
/// [`block_on`](crate::block_on)).
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
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
///
/// let ticks = Rc::new(Cell::new(0));
/// let t = ticks.clone();
/// evloop::run(move || {
///     evloop::set_interval(Duration::from_millis(1), move || {
///         t.set(t.get() + 1);
///         if t.get() == 3 {
///             evloop::stop(); // the interval would run forever
///         }
///     });
/// })
/// .unwrap();
/// assert_eq!(ticks.get(), 3);
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn stop() {
    with_current(|inner| inner.stop_flag.set(true))
}

/// The current loop's cached time (see [`EventLoop::now`]).
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(|| {
///     let start = evloop::now();
///     evloop::set_timeout(Duration::from_millis(5), move || {
///         assert!(evloop::now() - start >= Duration::from_millis(5));
///     });
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn now() -> Instant {
    with_current(|inner| inner.now())
}

/// The phase the current loop is in (see [`EventLoop::phase`]): handy in
/// a callback, to see where it runs.
///
/// ```
/// use evloop::Phase;
///
/// evloop::run(|| {
///     assert_eq!(evloop::current_phase(), Phase::Main);
///     evloop::set_immediate(|| assert_eq!(evloop::current_phase(), Phase::Check));
///     evloop::set_timeout(std::time::Duration::ZERO, || {
///         assert_eq!(evloop::current_phase(), Phase::Timers);
///     });
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn current_phase() -> Phase {
    with_current(|inner| inner.phase.get())
}

/// Installs the current loop's uncaught-exception handler (see
/// [`EventLoop::on_uncaught_exception`]; Node's
/// `process.on('uncaughtException')`), from anywhere inside the loop.
///
/// ```
/// use std::time::Duration;
///
/// evloop::run(|| {
///     evloop::on_uncaught_exception(|err, origin| eprintln!("{origin}: {err}"));
///     evloop::set_timeout(Duration::ZERO, || panic!("handled, not fatal"));
///     let _ = evloop::promise::Promise::<()>::reject(evloop::promise::Rejection::msg("handled too"));
/// })
/// .expect("the handler took both");
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn on_uncaught_exception(handler: impl FnMut(Error, Origin) + 'static) {
    with_current(|inner| inner.replace_uncaught_hook(Some(Box::new(handler))))
}

/// Removes the current loop's uncaught-exception handler: an uncaught
/// error stops the loop again.
///
/// ```
/// evloop::run(|| {
///     evloop::on_uncaught_exception(|err, _| eprintln!("ignored: {err}"));
///     evloop::clear_uncaught_exception();
///     evloop::set_immediate(|| panic!("boom"));
/// })
/// .expect_err("no handler: the panic stops the loop");
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn clear_uncaught_exception() {
    with_current(|inner| inner.replace_uncaught_hook(None))
}

/// What is active on the current loop (see [`EventLoop::active_handles`]):
/// Node's `process.getActiveResourcesInfo()`.
///
/// ```
/// evloop::run(|| {
///     let t = evloop::set_timeout(std::time::Duration::from_secs(1), || {});
///     assert_eq!(evloop::active_handles().len(), 1);
///     t.clear();
///     assert!(evloop::active_handles().is_empty());
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn active_handles() -> Vec<HandleInfo> {
    with_current(|inner| inner.active_handles())
}

/// Whether a loop is current on this thread: inside [`run`], a callback
/// or task, or an [`EventLoop::enter`] guard. The free functions
/// (`set_timeout`, `spawn`, ...) panic without one.
///
/// ```
/// assert!(!evloop::has_current());
/// evloop::run(|| assert!(evloop::has_current())).unwrap();
/// ```
pub fn has_current() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}
