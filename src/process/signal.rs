//! Signals, delivered on the loop thread.
//!
//! A signal handler may do almost nothing (only async-signal-safe calls), so
//! delivery takes three hops, each simple enough to check by eye:
//!
//! 1. **The handler** (process-wide, installed with `sigaction` while some
//!    loop listens to that signal) writes the signal's number, one byte, to
//!    a process-wide pipe, and restores `errno`. Nothing else.
//! 2. **The signal thread** (`evloop-signals`, started on first use) reads
//!    that pipe and, for every loop listening to the signal, sets the
//!    signal's bit in the loop's pending mask and writes a wake-up byte to
//!    the loop's own pipe if the mask was empty.
//! 3. **The loop** watches its pipe like any other source (so a listening
//!    loop blocks in `epoll_wait` as usual, and ref'd handlers keep it
//!    alive). On readiness it drains the pipe, swaps the mask to zero and
//!    runs the handlers of each signal in it, and reaps children on
//!    `SIGCHLD` (see [`child`](super::child)).
//!
//! Why not the handler writing to each loop's pipe, as libuv does? A loop
//! that is dropped closes its pipe, and a handler that read the fd just
//! before could write into whatever file reuses the number. The thread
//! takes the registry lock, a handler cannot. Why not `signalfd`? It needs
//! the signal blocked in every thread of the process, which a library
//! cannot promise. Why not a crate (`signal-hook`)? The three hops above
//! are the whole mechanism, and people read this code to learn it.
//!
//! Like real signals, deliveries coalesce: several `SIGUSR1`s that arrive
//! before the loop gets to them run the handlers once.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::abort::{AbortError, AbortListener, AbortSignal};
use crate::event_loop::slots::{LoopLocal, PerLoop};
use crate::event_loop::{with_current, LoopState};
use crate::promise::{Promise, WithResolvers};
use crate::reactor::{watch_kind, WatchSlot};
use crate::sys;
use crate::Interest;

use super::child::Children;

/// A POSIX signal number, such as [`Signal::SIGINT`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

impl Signal {
    /// Hangup (the terminal closed).
    pub const SIGHUP: Signal = Signal(libc::SIGHUP);
    /// Interrupt (Ctrl-C).
    pub const SIGINT: Signal = Signal(libc::SIGINT);
    /// Quit (Ctrl-\\).
    pub const SIGQUIT: Signal = Signal(libc::SIGQUIT);
    /// Abort: what a Rust process that aborts dies of.
    pub const SIGABRT: Signal = Signal(libc::SIGABRT);
    /// Kill: cannot be caught, only sent.
    pub const SIGKILL: Signal = Signal(libc::SIGKILL);
    /// User-defined signal 1.
    pub const SIGUSR1: Signal = Signal(libc::SIGUSR1);
    /// User-defined signal 2.
    pub const SIGUSR2: Signal = Signal(libc::SIGUSR2);
    /// Broken pipe.
    pub const SIGPIPE: Signal = Signal(libc::SIGPIPE);
    /// Alarm clock.
    pub const SIGALRM: Signal = Signal(libc::SIGALRM);
    /// Termination request (what `kill` sends by default).
    pub const SIGTERM: Signal = Signal(libc::SIGTERM);
    /// A child process stopped or exited.
    pub const SIGCHLD: Signal = Signal(libc::SIGCHLD);
    /// Continue a stopped process.
    pub const SIGCONT: Signal = Signal(libc::SIGCONT);
    /// Stop: cannot be caught, only sent.
    pub const SIGSTOP: Signal = Signal(libc::SIGSTOP);
    /// The terminal window changed size.
    pub const SIGWINCH: Signal = Signal(libc::SIGWINCH);

    /// The signal with this number, if the number is one (1 to 64).
    pub fn from_raw(signo: i32) -> Option<Signal> {
        (1..=MAX_SIGNAL).contains(&signo).then_some(Signal(signo))
    }

    /// The signal's number.
    pub fn as_raw(self) -> i32 {
        self.0
    }

    /// Its name, such as `"SIGINT"` (`"SIG42"` for one without a name here).
    pub fn name(self) -> std::borrow::Cow<'static, str> {
        let known = [
            Self::SIGHUP,
            Self::SIGINT,
            Self::SIGQUIT,
            Self::SIGABRT,
            Self::SIGKILL,
            Self::SIGUSR1,
            Self::SIGUSR2,
            Self::SIGPIPE,
            Self::SIGALRM,
            Self::SIGTERM,
            Self::SIGCHLD,
            Self::SIGCONT,
            Self::SIGSTOP,
            Self::SIGWINCH,
        ];
        let names = [
            "SIGHUP", "SIGINT", "SIGQUIT", "SIGABRT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGPIPE",
            "SIGALRM", "SIGTERM", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGWINCH",
        ];
        match known.iter().position(|s| *s == self) {
            Some(i) => names[i].into(),
            None => format!("SIG{}", self.0).into(),
        }
    }

    /// Whether a handler may be installed for it: not `SIGKILL` and
    /// `SIGSTOP` (the kernel refuses), nor the faults a program cannot
    /// resume from once a handler has returned (`SIGSEGV`, `SIGBUS`,
    /// `SIGFPE`, `SIGILL`).
    fn catchable(self) -> bool {
        ![
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
        ]
        .contains(&self.0)
    }

    fn bit(self) -> u64 {
        1 << (self.0 - 1)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

const MAX_SIGNAL: i32 = 64;

// ---- hop 1: the handler (in `sys`) ----

// ---- hop 2: the registry and the signal thread ----

/// One loop's entry in the process-wide registry.
struct LoopSlot {
    /// Signals the loop listens to, a bit per signal.
    interest: AtomicU64,
    /// Signals received and not yet handled by the loop.
    pending: AtomicU64,
    /// The loop's wake-up pipe.
    tx: mio::unix::pipe::Sender,
}

struct Registry {
    loops: Vec<Arc<LoopSlot>>,
    /// How many loops listen to each signal (index: signal number).
    listeners: [u32; MAX_SIGNAL as usize + 1],
    /// The disposition found before we installed ours, restored when the
    /// last listener goes.
    previous: Vec<Option<sys::Disposition>>,
}

fn registry() -> io::Result<MutexGuard<'static, Registry>> {
    static REGISTRY: OnceLock<io::Result<Mutex<Registry>>> = OnceLock::new();
    let r = REGISTRY.get_or_init(|| {
        let (tx, mut rx) = mio::unix::pipe::new()?;
        // The thread blocks on its end; handlers must never block on theirs.
        rx.set_nonblocking(false)?;
        sys::set_signal_pipe(tx.into_raw_fd());
        std::thread::Builder::new()
            .name("evloop-signals".into())
            .spawn(move || {
                let mut buf = [0u8; 64];
                loop {
                    match rx.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => forward(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            log::error!("signal pipe: {e}");
                            return;
                        }
                    }
                }
            })?;
        Ok(Mutex::new(Registry {
            loops: Vec::new(),
            listeners: [0; MAX_SIGNAL as usize + 1],
            previous: vec![None; MAX_SIGNAL as usize + 1],
        }))
    });
    match r {
        Ok(m) => Ok(m.lock().unwrap_or_else(|p| p.into_inner())),
        Err(e) => Err(io::Error::new(e.kind(), format!("signal setup: {e}"))),
    }
}

/// The signal thread's work: mark each signal pending on every loop that
/// listens to it, and wake the loops whose mask was empty.
fn forward(signals: &[u8]) {
    let Ok(reg) = registry() else { return };
    for &signo in signals {
        let Some(sig) = Signal::from_raw(signo as i32) else {
            continue;
        };
        log::trace!("signal thread: {sig}");
        for slot in &reg.loops {
            if slot.interest.load(Ordering::Acquire) & sig.bit() == 0 {
                continue;
            }
            if slot.pending.fetch_or(sig.bit(), Ordering::AcqRel) == 0 {
                // Full means a wake-up is already waiting.
                let _ = (&slot.tx).write(&[1]);
            }
        }
    }
}

impl Registry {
    /// One more loop listens to `sig`: install our handler if it is the first.
    fn listen(&mut self, sig: Signal) -> io::Result<()> {
        let n = sig.0 as usize;
        if self.listeners[n] == 0 {
            self.previous[n] = Some(sys::install_handler(sig.0)?);
            log::debug!("installed the {sig} handler");
        }
        self.listeners[n] += 1;
        Ok(())
    }

    /// One loop fewer listens to `sig`: restore the old disposition (the
    /// default, unless someone else had set one) after the last.
    fn unlisten(&mut self, sig: Signal) {
        let n = sig.0 as usize;
        self.listeners[n] = self.listeners[n].saturating_sub(1);
        if self.listeners[n] == 0 {
            if let Some(old) = self.previous[n].take() {
                sys::restore_handler(sig.0, &old);
                log::debug!("restored the {sig} disposition");
            }
        }
    }
}

// ---- hop 3: the loop's receiver ----

/// The loop's signal receiver, created on first use (a per-loop slot). Dropped with the
/// loop: it leaves the registry and hands running children to a reaper.
#[derive(Default)]
struct ReceiverSlot(RefCell<Option<Rc<SignalReceiver>>>);

impl PerLoop for ReceiverSlot {
    fn new(_: &LoopState) -> Self {
        ReceiverSlot::default()
    }
}

static RECEIVER: LoopLocal<ReceiverSlot> = LoopLocal::new();

/// A loop's receiving end of signals (hop 3): its slot in the process-wide
/// registry and the wake-up pipe the handler writes to, the loop's signal
/// handlers, and its child processes (reaped when `SIGCHLD` arrives).
/// Created on first use and kept by the loop.
pub(crate) struct SignalReceiver {
    slot: Arc<LoopSlot>,
    rx: mio::unix::pipe::Receiver,
    watch: WatchSlot,
    /// How many signal handlers each signal has on this loop.
    counts: RefCell<[u32; MAX_SIGNAL as usize + 1]>,
    handlers: RefCell<slab::Slab<Handler>>,
    /// Ref'd handlers and children: the watch keeps the loop alive while
    /// this is above zero.
    refs: Cell<usize>,
    pub(crate) children: Children,
}

struct Handler {
    sig: Signal,
    id: u64,
    refed: bool,
    cb: SignalCb,
}

type SignalCb = Rc<RefCell<dyn FnMut(Signal)>>;

impl SignalReceiver {
    /// The current loop's receiver, created on first use.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub(crate) fn current() -> io::Result<Rc<SignalReceiver>> {
        with_current(|inner| {
            let slot = RECEIVER.get(inner);
            if let Some(hub) = slot.0.borrow().as_ref() {
                return Ok(hub.clone());
            }
            let hub = SignalReceiver::new()?;
            *slot.0.borrow_mut() = Some(hub.clone());
            Ok(hub)
        })
    }

    fn new() -> io::Result<Rc<SignalReceiver>> {
        let (tx, rx) = mio::unix::pipe::new()?;
        let slot = Arc::new(LoopSlot {
            interest: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            tx,
        });
        let hub = Rc::new(SignalReceiver {
            slot: slot.clone(),
            rx,
            watch: WatchSlot::default(),
            counts: RefCell::new([0; MAX_SIGNAL as usize + 1]),
            handlers: RefCell::new(slab::Slab::new()),
            refs: Cell::new(0),
            children: Children::default(),
        });
        let weak: Weak<SignalReceiver> = Rc::downgrade(&hub);
        let watch = watch_kind(
            hub.rx.as_raw_fd(),
            Interest::READABLE,
            "signal",
            move |_| {
                if let Some(hub) = weak.upgrade() {
                    hub.dispatch();
                }
            },
        )?;
        // Nothing listens yet: nothing to keep the loop alive for.
        watch.unref();
        hub.watch.set(watch);
        registry()?.loops.push(slot);
        log::debug!("signal hub created");
        Ok(hub)
    }

    /// Starts listening to `sig` on this loop (counted per handler).
    pub(crate) fn listen(&self, sig: Signal) -> io::Result<()> {
        let first = self.counts.borrow()[sig.0 as usize] == 0;
        if first {
            registry()?.listen(sig)?;
            self.slot.interest.fetch_or(sig.bit(), Ordering::AcqRel);
        }
        self.counts.borrow_mut()[sig.0 as usize] += 1;
        Ok(())
    }

    pub(crate) fn unlisten(&self, sig: Signal) {
        let mut counts = self.counts.borrow_mut();
        let n = &mut counts[sig.0 as usize];
        *n = n.saturating_sub(1);
        if *n == 0 {
            drop(counts);
            self.slot.interest.fetch_and(!sig.bit(), Ordering::AcqRel);
            if let Ok(mut reg) = registry() {
                reg.unlisten(sig);
            }
        }
    }

    /// One more thing keeps the loop alive.
    pub(crate) fn add_ref(&self) {
        self.refs.set(self.refs.get() + 1);
        if self.refs.get() == 1 {
            self.watch.set_ref(true);
        }
    }

    pub(crate) fn release_ref(&self) {
        self.refs.set(self.refs.get().saturating_sub(1));
        if self.refs.get() == 0 {
            self.watch.set_ref(false);
        }
    }

    /// The pipe is readable: run what arrived.
    fn dispatch(self: &Rc<Self>) {
        // Drain first, then take the mask: a signal marked after the swap
        // writes a new byte, so none is missed.
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
        let mask = self.slot.pending.swap(0, Ordering::AcqRel);
        for signo in 1..=MAX_SIGNAL {
            let sig = Signal(signo);
            if mask & sig.bit() == 0 {
                continue;
            }
            log::trace!("dispatch {sig}");
            if sig == Signal::SIGCHLD {
                self.children.reap(self);
            }
            self.run_handlers(sig);
        }
    }

    fn run_handlers(&self, sig: Signal) {
        // Take, then call: a handler may add or close handlers.
        let list: Vec<(usize, u64, SignalCb)> = self
            .handlers
            .borrow()
            .iter()
            .filter(|(_, h)| h.sig == sig)
            .map(|(k, h)| (k, h.id, h.cb.clone()))
            .collect();
        for (key, id, cb) in list {
            let live = matches!(self.handlers.borrow().get(key), Some(h) if h.id == id);
            if !live {
                continue;
            }
            // A handler that raises the same signal from inside itself
            // finds its own RefCell busy; it runs next time instead.
            if let Ok(mut f) = cb.try_borrow_mut() {
                f(sig);
            }
            drop(cb);
            with_current(|i| i.checkpoint_now());
        }
    }
}

impl Drop for SignalReceiver {
    fn drop(&mut self) {
        if let Ok(mut reg) = registry() {
            reg.loops.retain(|s| !Arc::ptr_eq(s, &self.slot));
            let counts = self.counts.get_mut();
            for signo in 1..=MAX_SIGNAL {
                if counts[signo as usize] > 0 {
                    reg.unlisten(Signal(signo));
                }
            }
        }
        self.children.hand_to_reaper();
        log::debug!("signal hub dropped");
    }
}

// ---- the public API ----

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Calls `cb` on the loop thread each time the process receives `sig`.
///
/// Several handlers may listen to one signal; they run in the order they
/// were added, with a microtask checkpoint after each. While any handler
/// listens, the signal's default action (for `SIGINT`, ending the
/// process) does not happen; closing the last one (on every loop) puts
/// back the disposition that was there before.
///
/// The handler keeps the loop alive, as a libuv signal handle does, until
/// [`close`](SignalHandle::close)d or [`unref`](SignalHandle::unref)'d.
/// (Node's `process.on('SIGINT')` is unref'd from the start.) It stays
/// installed when the handle is dropped.
///
/// `SIGKILL` and `SIGSTOP` cannot be caught, and `SIGSEGV`, `SIGBUS`,
/// `SIGFPE` and `SIGILL` cannot be resumed from: those give
/// `InvalidInput`.
///
/// ```
/// use evloop::process::{on_signal, Signal};
/// evloop::run(|| {
///     let handle = on_signal(Signal::SIGUSR1, |sig| println!("got {sig}")).unwrap();
///     // Typically kept open for the life of a server; closed here so the
///     // example ends.
///     handle.close();
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn on_signal(sig: Signal, cb: impl FnMut(Signal) + 'static) -> io::Result<SignalHandle> {
    if !sig.catchable() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{sig} cannot be handled"),
        ));
    }
    let hub = SignalReceiver::current()?;
    hub.listen(sig)?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let key = hub.handlers.borrow_mut().insert(Handler {
        sig,
        id,
        refed: true,
        cb: Rc::new(RefCell::new(cb)),
    });
    hub.add_ref();
    log::debug!("on_signal({sig}) as #{key}");
    Ok(SignalHandle {
        hub: Rc::downgrade(&hub),
        key,
        id,
        sig,
    })
}

/// A promise of the next delivery of `sig` (Node's
/// `events.once(process, 'SIGTERM')`): `.await` it in a task, e.g. to shut
/// a server down. Its handler keeps the loop alive until the signal comes,
/// and is closed then. Fails as [`on_signal`] does for a signal that cannot
/// be handled.
///
/// # Panics
/// If no event loop is current on this thread.
pub fn once_signal(sig: Signal) -> Promise<Signal> {
    let WithResolvers {
        promise,
        resolve,
        reject,
    } = Promise::with_resolvers();
    let slot: Rc<RefCell<Option<SignalHandle>>> = Rc::default();
    let s = slot.clone();
    match on_signal(sig, move |sig| {
        if let Some(h) = s.borrow_mut().take() {
            h.close();
        }
        resolve(sig);
    }) {
        Ok(h) => *slot.borrow_mut() = Some(h),
        Err(e) => reject(e.into()),
    }
    promise
}

/// [`once_signal`], abortable: the promise of the next delivery of `sig`,
/// or rejected with the [`AbortError`] carrying the signal's reason if
/// `signal` aborts first ([`Rejection::is_aborted`](crate::promise::Rejection::is_aborted)).
///
/// What an abort releases: the handler, closed at once, so it no longer
/// keeps the loop alive (and `sig`'s previous disposition comes back if it
/// was the last handler). If `signal` has already aborted, no handler is
/// installed and the promise rejects. Aborting after `sig` came does
/// nothing; the listener this adds to `signal` is removed then.
///
/// ```
/// use std::time::Duration;
/// use evloop::abort::AbortController;
/// use evloop::process::{once_signal_with_signal, Signal};
///
/// evloop::run(|| {
///     let controller = AbortController::new();
///     once_signal_with_signal(Signal::SIGUSR2, &controller.signal())
///         .then(|_| unreachable!("aborted first"))
///         .catch(|e| assert!(e.is_aborted()));
///     controller.abort(None);
///     // The loop's signal pipe stays, unref'd; nothing keeps the loop alive.
///     assert!(evloop::active_handles().iter().all(|h| !h.refed));
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn once_signal_with_signal(sig: Signal, signal: &AbortSignal) -> Promise<Signal> {
    if let Some(reason) = signal.reason() {
        return Promise::reject(AbortError::new(reason));
    }
    let WithResolvers {
        promise,
        resolve,
        reject,
    } = Promise::with_resolvers();
    let handle: Rc<RefCell<Option<SignalHandle>>> = Rc::default();
    let listener: Rc<Cell<Option<AbortListener>>> = Rc::default();
    let (h, l) = (handle.clone(), listener.clone());
    let installed = on_signal(sig, move |sig| {
        if let Some(h) = h.borrow_mut().take() {
            h.close();
        }
        if let Some(l) = l.take() {
            l.remove();
        }
        resolve(sig);
    });
    match installed {
        Ok(hd) => *handle.borrow_mut() = Some(hd),
        Err(e) => {
            reject(e.into());
            return promise;
        }
    }
    let on_abort = reject.clone();
    listener.set(Some(signal.on_abort_op(move |reason| {
        let hd = handle.borrow_mut().take();
        if let Some(hd) = hd {
            hd.close();
        }
        on_abort(AbortError::new(reason.clone()).into());
    })));
    promise
}

/// A handler added by [`on_signal`].
#[derive(Clone)]
pub struct SignalHandle {
    hub: Weak<SignalReceiver>,
    key: usize,
    id: u64,
    sig: Signal,
}

impl SignalHandle {
    fn with<R>(&self, f: impl FnOnce(&SignalReceiver, &mut Handler) -> R) -> Option<R> {
        let hub = self.hub.upgrade()?;
        let mut handlers = hub.handlers.borrow_mut();
        let h = handlers.get_mut(self.key).filter(|h| h.id == self.id)?;
        Some(f(&hub, h))
    }

    /// The signal it listens to.
    pub fn signal(&self) -> Signal {
        self.sig
    }

    /// Removes the handler. Closing twice does nothing.
    pub fn close(&self) {
        let Some(hub) = self.hub.upgrade() else {
            return;
        };
        let removed = {
            let mut handlers = hub.handlers.borrow_mut();
            match handlers.get(self.key) {
                Some(h) if h.id == self.id => Some(handlers.remove(self.key)),
                _ => None,
            }
        };
        let Some(h) = removed else { return };
        if h.refed {
            hub.release_ref();
        }
        hub.unlisten(self.sig);
        log::debug!("on_signal({}) #{} closed", self.sig, self.key);
        drop(h);
    }

    /// Lets the loop exit while the handler is installed.
    pub fn unref(&self) -> &Self {
        self.set_ref(false);
        self
    }

    /// Makes the handler keep the loop alive again.
    pub fn ref_(&self) -> &Self {
        self.set_ref(true);
        self
    }

    fn set_ref(&self, refed: bool) {
        self.with(|hub, h| {
            if h.refed != refed {
                h.refed = refed;
                if refed {
                    hub.add_ref();
                } else {
                    hub.release_ref();
                }
            }
        });
    }

    /// Whether the handler is still installed.
    pub fn is_active(&self) -> bool {
        self.with(|_, _| ()).is_some()
    }
}

impl fmt::Debug for SignalHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalHandle")
            .field("signal", &self.sig)
            .field("active", &self.is_active())
            .finish()
    }
}

/// Sends `sig` to the process `pid` (`kill(2)`).
///
/// Prefer [`Child::kill`](super::Child::kill) for children: it refuses
/// once the child has been reaped, when its pid may belong to someone else.
pub fn kill(pid: u32, sig: Signal) -> io::Result<()> {
    let pid = i32::try_from(pid).ok().filter(|&p| p > 0).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a process id: {pid}"),
        )
    })?;
    sys::kill(pid, sig.0)
}
