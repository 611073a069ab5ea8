//! A cluster (Node's `cluster`): N worker processes serving one TCP port,
//! each on its own loop, so one server uses every core.
//!
//! **How the port is shared.** The primary binds the listening socket once
//! and every worker inherits it (its fd passed as [`LISTEN_FD_ENV`]); all
//! workers accept from the one kernel queue. The alternative, each worker
//! binding with `SO_REUSEPORT`, gives every worker a queue of its own, and
//! the connections waiting in a dying worker's queue die with it; with one
//! shared queue a restart loses nothing, because the primary keeps its
//! copy of the socket open.
//!
//! **Restart.** A worker that exits while the cluster runs is started
//! again at once, or after a delay that doubles (from 100 ms up to 5 s)
//! while workers keep dying within a second of starting, so a crash loop
//! does not spin.
//!
//! **Shutdown.** On `SIGTERM` or `SIGINT` (or [`Cluster::shutdown`]) the
//! primary closes each worker's IPC channel. A [`ClusterWorker`] takes
//! that as the signal to stop: it closes its listener and runs the
//! worker's `on_shutdown`, which ends its open connections; its loop then
//! runs out of work and the process exits. Workers still running after the
//! grace period (5 s) are killed. Workers ignore `SIGINT`, which a terminal
//! sends to the whole process group: the primary decides. A worker whose
//! primary dies sees its channel close and stops too.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::listeners::{Listener, Listeners, RemoveListener};
use crate::net::{Stream, TcpListener, ToAddrs};
use crate::promise::{Promise, Resolve, WithResolvers};
use crate::timers::Timeout;

use super::{on_signal, parent_channel, Channel, Command, Signal, SignalHandle, Worker};

/// The environment variable holding a cluster worker's listening fd.
pub const LISTEN_FD_ENV: &str = "EVLOOP_LISTEN_FD";

/// How long workers get to finish after a shutdown before being killed.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

const RESTART_MIN: Duration = Duration::from_millis(100);
const RESTART_MAX: Duration = Duration::from_secs(5);
/// A worker that lived less than this counts as crashing on start.
const EARLY_DEATH: Duration = Duration::from_secs(1);

/// What a cluster reports to [`Cluster::on_event`].
///
/// Non-exhaustive: more events may come (Node's cluster also reports
/// `listening` and `disconnect`), so a `match` needs a `_` arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// Worker `index` started as `pid`.
    Started {
        /// Its slot, 0 to N-1.
        index: usize,
        /// Its process id.
        pid: u32,
    },
    /// A worker ended (`status` is how, or why it could not start).
    Exited {
        /// Its slot.
        index: usize,
        /// Its process id, if it had started.
        pid: Option<u32>,
        /// Its exit status.
        status: io::Result<ExitStatus>,
    },
    /// A dead worker's slot will be filled again after `delay`.
    Restarting {
        /// Its slot.
        index: usize,
        /// The wait before the restart.
        delay: Duration,
    },
    /// Shutdown began (a signal, or [`Cluster::shutdown`]).
    ShuttingDown,
    /// Every worker has exited; the cluster is done.
    Stopped,
}

/// The primary's side of a cluster.
///
/// The program re-runs itself as the workers (this example runs as a
/// test, as the primary and as two workers):
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use evloop::process::{worker_entry, Cluster, ClusterWorker};
///
/// fn main() {
///     if worker_entry().as_deref() == Some("hello") {
///         // A worker: answer each connection on the shared port.
///         evloop::run(|| {
///             ClusterWorker::listen(|conn| {
///                 let stream = conn.unwrap();
///                 stream.write(format!("hello from {}", std::process::id()).as_bytes());
///                 stream.end();
///             })
///             .unwrap();
///         })
///         .unwrap();
///         return; // the primary said stop
///     }
///     let reply = Rc::new(RefCell::new(Vec::new()));
///     let r = reply.clone();
///     evloop::run(move || {
///         let cluster = Cluster::start("127.0.0.1:0", "hello", 2).unwrap();
///         let c = cluster.clone();
///         evloop::net::connect(cluster.local_addr(), move |conn| {
///             let stream = conn.unwrap();
///             stream.on_data(move |bytes| r.borrow_mut().extend_from_slice(bytes));
///             stream.on_close(move |_| c.shutdown()); // then `run` returns
///         });
///     })
///     .unwrap();
///     assert!(reply.borrow().starts_with(b"hello from "));
/// }
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Rc<ClusterInner>,
}

struct ClusterInner {
    entry: String,
    /// The primary's copy of the listening socket, kept so restarted
    /// workers can inherit it; closed when the cluster stops.
    listener: RefCell<Option<std::net::TcpListener>>,
    local: SocketAddr,
    slots: RefCell<Vec<Slot>>,
    shutting_down: Cell<bool>,
    signals: RefCell<Vec<SignalHandle>>,
    kill_timer: RefCell<Option<Timeout>>,
    on_event: Listeners<dyn FnMut(ClusterEvent)>,
    /// Promises from [`Cluster::stopped`], fulfilled at `Stopped`.
    stopped: RefCell<Vec<Resolve<()>>>,
    is_stopped: Cell<bool>,
}

#[derive(Default)]
struct Slot {
    worker: Option<Worker>,
    started: Option<Instant>,
    /// Early deaths in a row (for the restart delay).
    crashes: u32,
    restart: Option<Timeout>,
}

impl Cluster {
    /// Binds `addr` (a literal [`ToAddrs`]: `"127.0.0.1:0"`, a
    /// `SocketAddr`, `(IpAddr, u16)`, a list whose first bindable address
    /// is taken; a host name is `InvalidInput`, since this call is
    /// synchronous and a lookup would block) and starts `workers` processes of the current
    /// executable serving `entry` (see [`worker_entry`](super::worker_entry)):
    /// each should call [`ClusterWorker::listen`]. The cluster then keeps
    /// the loop alive until it stops, and handles `SIGTERM` and `SIGINT`.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn start(addr: impl ToAddrs, entry: &str, workers: usize) -> io::Result<Cluster> {
        if workers == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a cluster needs at least one worker",
            ));
        }
        // Synchronous, so literal addresses only: a name would need a
        // lookup on the pool (resolve it first with `dns::lookup`).
        let addrs = crate::net::literal(&addr, "Cluster::start")?;
        let mio = crate::net::listen_first(&addrs)?;
        let listener = std::net::TcpListener::from(std::os::fd::OwnedFd::from(mio));
        let local = listener.local_addr()?;
        let inner = Rc::new(ClusterInner {
            entry: entry.to_string(),
            listener: RefCell::new(Some(listener)),
            local,
            slots: RefCell::new((0..workers).map(|_| Slot::default()).collect()),
            shutting_down: Cell::new(false),
            signals: RefCell::default(),
            kill_timer: RefCell::new(None),
            on_event: Listeners::default(),
            stopped: RefCell::default(),
            is_stopped: Cell::new(false),
        });
        // The handlers own the cluster (as the loop owns them): it lives
        // until shutdown closes them, whoever keeps a handle.
        for sig in [Signal::SIGTERM, Signal::SIGINT] {
            let me = inner.clone();
            let h = on_signal(sig, move |sig| {
                log::debug!("cluster: {sig}, shutting down");
                me.shutdown();
            })?;
            inner.signals.borrow_mut().push(h);
        }
        log::debug!("cluster of {workers} {entry:?} workers on {local}");
        // From the check phase, so that `on_event`, set after `start`
        // returns, sees the workers start.
        let me = inner.clone();
        crate::set_immediate(move || {
            for index in 0..workers {
                if !me.shutting_down.get() {
                    me.start_worker(index);
                }
            }
        });
        Ok(Cluster { inner })
    }

    /// Adds a listener called with each [`ClusterEvent`] (for logging);
    /// returns the [`Listener`] that removes it. Listeners run in the order
    /// they were added (see [`Listener`]); without any, the events
    /// are logged at `info` level.
    pub fn on_event(&self, cb: impl FnMut(ClusterEvent) + 'static) -> Listener {
        let id = self.inner.on_event.add(Box::new(cb));
        let owner = Rc::downgrade(&self.inner);
        Listener::new(owner, 0, id)
    }

    /// The address served (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// The pids of the workers running now.
    pub fn pids(&self) -> Vec<u32> {
        self.inner
            .slots
            .borrow()
            .iter()
            .filter_map(|s| Some(s.worker.as_ref()?.child().pid()))
            .collect()
    }

    /// A promise fulfilled once every worker has exited after a shutdown
    /// (the promise form of [`ClusterEvent::Stopped`]; `.await` it in a
    /// task).
    pub fn stopped(&self) -> Promise<()> {
        if self.inner.is_stopped.get() {
            return Promise::resolve(());
        }
        let WithResolvers {
            promise, resolve, ..
        } = Promise::with_resolvers();
        self.inner.stopped.borrow_mut().push(resolve);
        promise
    }

    /// Stops the cluster gracefully (what `SIGTERM` does).
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }
}

impl ClusterInner {
    fn emit(&self, e: ClusterEvent) {
        if self.on_event.is_empty() {
            log::info!("cluster: {e:?}");
            return;
        }
        // Each listener its own copy (an `io::Error` is not `Clone`).
        self.on_event.emit(|cb| cb(e.dup()));
    }

    fn start_worker(self: &Rc<Self>, index: usize) {
        let fd = match self.listener.borrow().as_ref() {
            Some(l) => l.as_raw_fd(),
            None => return,
        };
        let spawned = std::env::current_exe().and_then(|exe| {
            let mut cmd = Command::new(exe);
            cmd.env(LISTEN_FD_ENV, fd.to_string()).pass_fd(fd);
            Worker::spawn_with(&self.entry, &mut cmd)
        });
        let worker = match spawned {
            Ok(w) => w,
            Err(e) => {
                self.emit(ClusterEvent::Exited {
                    index,
                    pid: None,
                    status: Err(e),
                });
                self.schedule_restart(index, false);
                return;
            }
        };
        let pid = worker.child().pid();
        let me = self.clone();
        worker
            .child()
            .on_exit(move |status| me.worker_exited(index, pid, status));
        {
            let mut slots = self.slots.borrow_mut();
            slots[index].worker = Some(worker);
            slots[index].started = Some(Instant::now());
        }
        self.emit(ClusterEvent::Started { index, pid });
    }

    fn worker_exited(self: &Rc<Self>, index: usize, pid: u32, status: io::Result<ExitStatus>) {
        let lived = {
            let mut slots = self.slots.borrow_mut();
            slots[index].worker = None;
            slots[index].started.take().map(|t| t.elapsed())
        };
        self.emit(ClusterEvent::Exited {
            index,
            pid: Some(pid),
            status,
        });
        if self.shutting_down.get() {
            self.maybe_stopped();
        } else {
            self.schedule_restart(index, lived.is_some_and(|d| d >= EARLY_DEATH));
        }
    }

    fn schedule_restart(self: &Rc<Self>, index: usize, lived_long: bool) {
        let delay = {
            let mut slots = self.slots.borrow_mut();
            let slot = &mut slots[index];
            if lived_long {
                slot.crashes = 0;
                Duration::ZERO
            } else {
                slot.crashes += 1;
                (RESTART_MIN * 2u32.saturating_pow(slot.crashes - 1)).min(RESTART_MAX)
            }
        };
        self.emit(ClusterEvent::Restarting { index, delay });
        let weak = Rc::downgrade(self);
        let t = crate::set_timeout(delay, move || {
            if let Some(c) = weak.upgrade() {
                c.slots.borrow_mut()[index].restart = None;
                if !c.shutting_down.get() {
                    c.start_worker(index);
                }
            }
        });
        self.slots.borrow_mut()[index].restart = Some(t);
    }

    fn shutdown(self: &Rc<Self>) {
        if self.shutting_down.replace(true) {
            return;
        }
        self.emit(ClusterEvent::ShuttingDown);
        for h in self.signals.take() {
            h.close();
        }
        let workers: Vec<Worker> = {
            let mut slots = self.slots.borrow_mut();
            for slot in slots.iter_mut() {
                if let Some(t) = slot.restart.take() {
                    t.clear();
                }
            }
            slots.iter().filter_map(|s| s.worker.clone()).collect()
        };
        // A closed channel is a worker's cue to stop.
        for w in &workers {
            w.channel().close();
        }
        let weak = Rc::downgrade(self);
        let t = crate::set_timeout(SHUTDOWN_GRACE, move || {
            if let Some(c) = weak.upgrade() {
                for w in c.slots.borrow().iter().filter_map(|s| s.worker.as_ref()) {
                    log::warn!(
                        "cluster: worker {:?} ignored shutdown; killing it",
                        w.child().pid()
                    );
                    let _ = w.child().kill(Signal::SIGKILL);
                }
            }
        });
        *self.kill_timer.borrow_mut() = Some(t);
        self.maybe_stopped();
    }

    fn maybe_stopped(&self) {
        let running = self.slots.borrow().iter().any(|s| s.worker.is_some());
        if running {
            return;
        }
        if let Some(t) = self.kill_timer.borrow_mut().take() {
            t.clear();
        }
        drop(self.listener.borrow_mut().take());
        self.is_stopped.set(true);
        self.emit(ClusterEvent::Stopped);
        for resolve in self.stopped.take() {
            resolve(());
        }
    }
}

impl RemoveListener for ClusterInner {
    fn remove_listener(&self, _event: u8, id: u32) -> bool {
        self.on_event.remove(id)
    }
}

impl ClusterEvent {
    /// A copy for one more listener.
    fn dup(&self) -> ClusterEvent {
        match self {
            ClusterEvent::Started { index, pid } => ClusterEvent::Started {
                index: *index,
                pid: *pid,
            },
            ClusterEvent::Exited { index, pid, status } => ClusterEvent::Exited {
                index: *index,
                pid: *pid,
                status: match status {
                    Ok(s) => Ok(*s),
                    Err(e) => Err(crate::listeners::dup_error(e)),
                },
            },
            ClusterEvent::Restarting { index, delay } => ClusterEvent::Restarting {
                index: *index,
                delay: *delay,
            },
            ClusterEvent::ShuttingDown => ClusterEvent::ShuttingDown,
            ClusterEvent::Stopped => ClusterEvent::Stopped,
        }
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("addr", &self.inner.local)
            .field("entry", &self.inner.entry)
            .field("pids", &self.pids())
            .field("shutting_down", &self.inner.shutting_down.get())
            .finish()
    }
}

/// A cluster worker's side: the shared listener, the channel to the
/// primary, and shutdown.
#[derive(Clone)]
pub struct ClusterWorker {
    inner: Rc<WorkerInner>,
}

struct WorkerInner {
    listener: TcpListener,
    channel: Channel,
    signals: RefCell<Vec<SignalHandle>>,
    on_shutdown: Listeners<dyn FnMut(())>,
    stopped: Cell<bool>,
}

impl ClusterWorker {
    /// In a cluster worker: serves the inherited listening socket, calling
    /// `on_connection` with each connection, and stops when the primary
    /// says so (see the module docs).
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn listen(
        on_connection: impl FnMut(io::Result<Stream>) + 'static,
    ) -> io::Result<ClusterWorker> {
        let fd = super::worker::take_fd_from_env(LISTEN_FD_ENV, "a cluster worker")?;
        let listener = std::net::TcpListener::from(fd);
        let listener = TcpListener::from_std(listener, on_connection)?;
        let channel = parent_channel()?;
        let inner = Rc::new(WorkerInner {
            listener,
            channel: channel.clone(),
            signals: RefCell::default(),
            on_shutdown: Listeners::default(),
            stopped: Cell::new(false),
        });
        // The channel's and the handler's callbacks own the worker state:
        // it lives until it stops, whoever keeps a handle. An internal
        // hook, not an `on_close` listener: the channel is the app's too,
        // and its listeners neither displace this one nor are counted
        // with it.
        let me = inner.clone();
        channel.on_close_internal(move || me.stop());
        // Ctrl-C reaches the whole process group: the primary decides.
        let sigint = on_signal(Signal::SIGINT, |_| {})?;
        sigint.unref();
        let me = inner.clone();
        let sigterm = on_signal(Signal::SIGTERM, move |_| me.stop())?;
        sigterm.unref();
        inner.signals.borrow_mut().extend([sigint, sigterm]);
        Ok(ClusterWorker { inner })
    }

    /// Adds a listener called once when the worker stops accepting: end
    /// the open connections there, and the process exits once they are
    /// done. Several may be added (they run in the order they were added);
    /// returns the [`Listener`] that removes it. Added after the stop, it
    /// is called from the check phase (and its handle is detached).
    pub fn on_shutdown(&self, cb: impl FnOnce() + 'static) -> Listener {
        if self.inner.stopped.get() {
            crate::set_immediate(cb);
            return Listener::detached();
        }
        let mut cb = Some(cb);
        let id = self.inner.on_shutdown.add_once(Box::new(move |()| {
            if let Some(cb) = cb.take() {
                cb()
            }
        }));
        let owner = Rc::downgrade(&self.inner);
        Listener::new(owner, 0, id)
    }

    /// The shared listening socket.
    pub fn listener(&self) -> &TcpListener {
        &self.inner.listener
    }

    /// The channel to the primary (free for the application's messages).
    pub fn channel(&self) -> &Channel {
        &self.inner.channel
    }
}

impl WorkerInner {
    fn stop(&self) {
        if self.stopped.replace(true) {
            return;
        }
        log::debug!("cluster worker {} stopping", std::process::id());
        self.listener.close();
        self.channel.close();
        for h in self.signals.take() {
            h.close();
        }
        self.on_shutdown.emit(|cb| cb(()));
        self.on_shutdown.clear();
    }
}

impl RemoveListener for WorkerInner {
    fn remove_listener(&self, _event: u8, id: u32) -> bool {
        self.on_shutdown.remove(id)
    }
}
