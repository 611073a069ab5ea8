//! Accepting connections: the one accept policy of every listener, the
//! callback [`TcpListener`](super::TcpListener) and
//! [`UnixListener`](super::UnixListener) and the async listeners of
//! [`task::net`](crate::task::net).
//!
//! Each `accept(2)` goes through the fault hook (`fault::call(Op::Accept,
//! ..)`) and its result is sorted into a [`Step`] by [`Acceptor::step`];
//! what a listener does with each step is the policy:
//!
//! - **A bounded batch.** A readiness edge drains the backlog, but at most
//!   [`ACCEPTS_PER_TURN`] connections per turn; the rest waits for the next
//!   iteration, so a connection flood cannot starve the other sources. The
//!   async listeners accept one connection per `accept().await`, bounded
//!   by the task's budget instead.
//! - **Errors of one connection do not stop accepting.** `EINTR` and
//!   `ECONNABORTED` are retried at once, silently (libuv ignores
//!   `ECONNABORTED` too). The network errors that accept(2) says to treat
//!   like `EAGAIN` ([`is_transient_accept_error`]) are reported to a
//!   connection callback, as libuv does, and skipped by an async `accept`.
//! - **Out of file descriptors** (`EMFILE`, `ENFILE`, and the kernel's
//!   `ENOBUFS`/`ENOMEM`): libuv's "EMFILE trick", so Node's behaviour. On
//!   `EMFILE`/`ENFILE` the listener closes a reserve fd it keeps, accepts
//!   every pending connection that makes room for and closes it at once,
//!   then takes its reserve back: the clients see their connection end
//!   instead of waiting in the backlog for an fd that may never come. The
//!   error is reported **once per burst** (until a connection is accepted
//!   again), and accepting **pauses** for [`EMFILE_BACKOFF`]: no busy
//!   loop, no error flood. A timer resumes it, since no new readiness edge
//!   comes for connections that were already waiting.
//!
//! To follow it in a debugger: [`Listener::accept_all`] is the callback
//! listeners' loop, `PollIo::poll_accept` in `src/task/net.rs` the async
//! one; both call [`Acceptor::step`] and `match` on the [`Step`], one arm
//! per rule above.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use mio::Interest;

use super::stream::{Stream, StreamIo};
use crate::event_loop::current_inner;
use crate::reactor::{watch_kind, WatchSlot};

/// Connections accepted per readiness turn by a callback listener; a
/// listener with more waiting goes on in the next iteration.
pub(crate) const ACCEPTS_PER_TURN: usize = 128;

/// How long accepting pauses after the process ran out of fds.
pub(crate) const EMFILE_BACKOFF: Duration = Duration::from_millis(100);

/// A listening socket that can accept: mio's `TcpListener` and
/// `UnixListener`.
pub(crate) trait Listen: AsRawFd {
    /// The accepted socket.
    type Conn;
    /// The peer's address.
    type Peer: fmt::Debug;
    /// One `accept(2)`, without the fault hook (see [`Acceptor::step`]).
    fn accept_raw(&self) -> io::Result<(Self::Conn, Self::Peer)>;
    /// Registers an accepted connection as a [`Stream`].
    fn register(conn: Self::Conn) -> io::Result<Stream>;
}

impl Listen for mio::net::TcpListener {
    type Conn = mio::net::TcpStream;
    type Peer = std::net::SocketAddr;
    fn accept_raw(&self) -> io::Result<(Self::Conn, Self::Peer)> {
        self.accept()
    }
    fn register(conn: Self::Conn) -> io::Result<Stream> {
        // Inline in the stream: no second allocation per connection.
        Stream::register_tcp(conn, false)
    }
}

impl Listen for mio::net::UnixListener {
    type Conn = mio::net::UnixStream;
    type Peer = std::os::unix::net::SocketAddr;
    fn accept_raw(&self) -> io::Result<(Self::Conn, Self::Peer)> {
        self.accept()
    }
    fn register(conn: Self::Conn) -> io::Result<Stream> {
        Stream::register(Box::new(conn), false)
    }
}

/// One `accept(2)` through the fault hook.
fn accept<L: Listen>(io: &L) -> io::Result<(L::Conn, L::Peer)> {
    crate::fault::call(crate::fault::Op::Accept, io, || io.accept_raw())
}

/// What one accept came to, sorted by what the listener does next.
pub(crate) enum Step<C, P> {
    /// A connection.
    Conn(C, P),
    /// The backlog is empty: wait for the next readiness edge.
    Drained,
    /// `EINTR` or `ECONNABORTED`: nothing to report, accept again.
    Again,
    /// An error of the one connection that failed (see
    /// [`is_transient_accept_error`]): accept again.
    Transient(io::Error),
    /// Out of fds: the backlog was shed. The listener must now
    /// [`pause`](Acceptor::pause); the error is `Some` once per burst, to be
    /// reported.
    OutOfFds(Option<io::Error>),
    /// Any other error: report it and wait for the next edge.
    Failed(io::Error),
}

/// The accept state of one listener: its reserve fd and where it is in a
/// burst of fd exhaustion.
pub(crate) struct Acceptor {
    /// Accepting is paused after running out of fds until the back-off
    /// timer fires (shared with that timer).
    paused: Rc<Cell<bool>>,
    /// The current burst of fd exhaustion was reported already.
    reported: Cell<bool>,
    /// A spare fd (`/` opened read-only), closed to make room for one
    /// accept when the process is out of fds (see `shed_backlog`).
    reserve: RefCell<Option<std::fs::File>>,
}

impl Acceptor {
    /// A listener's accept state, with its reserve fd.
    pub(crate) fn new() -> Acceptor {
        Acceptor {
            paused: Rc::new(Cell::new(false)),
            reported: Cell::new(false),
            reserve: RefCell::new(open_reserve()),
        }
    }

    /// Whether accepting waits for the back-off timer.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.get()
    }

    /// Accepts one connection from `io` and sorts the result. Out of fds,
    /// it sheds the backlog before it returns [`Step::OutOfFds`].
    pub(crate) fn step<L: Listen>(&self, io: &L) -> Step<L::Conn, L::Peer> {
        let e = match accept(io) {
            Ok((conn, peer)) => {
                // A connection ends the burst: the next shortage is news.
                self.reported.set(false);
                return Step::Conn(conn, peer);
            }
            Err(e) => e,
        };
        match e.kind() {
            ErrorKind::WouldBlock => Step::Drained,
            ErrorKind::Interrupted | ErrorKind::ConnectionAborted => Step::Again,
            _ if is_fd_exhaustion(&e) => {
                let shed = if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                    self.shed_backlog(io)
                } else {
                    0
                };
                log::debug!(
                    "accept: {e}; closed {shed} pending connections; pausing for {EMFILE_BACKOFF:?}"
                );
                // Once per burst, not once per retry.
                let first = !self.reported.replace(true);
                Step::OutOfFds(first.then_some(e))
            }
            _ if is_transient_accept_error(&e) => Step::Transient(e),
            _ => Step::Failed(e),
        }
    }

    /// Pauses accepting for [`EMFILE_BACKOFF`], then calls `resume` (the
    /// listener accepts again). The timer is unref'd: the listener keeps
    /// the loop alive, not its back-off.
    pub(crate) fn pause(&self, resume: impl FnOnce() + 'static) {
        self.paused.set(true);
        let paused = self.paused.clone();
        crate::set_timeout(EMFILE_BACKOFF, move || {
            paused.set(false);
            resume();
        })
        .unref();
    }

    /// Out of fds: closes the reserve fd, then accepts and at once closes
    /// every pending connection that fd makes room for, and takes the
    /// reserve back. Returns how many connections were closed. Without a
    /// reserve (it could not be reopened last time) nothing is shed, and
    /// the back-off retries as before.
    fn shed_backlog<L: Listen>(&self, io: &L) -> usize {
        let Some(reserve) = self.reserve.borrow_mut().take() else {
            return 0;
        };
        drop(reserve);
        let mut shed = 0;
        loop {
            match accept(io) {
                Ok((conn, peer)) => {
                    log::trace!("out of fds: closing the connection from {peer:?}");
                    drop(conn);
                    shed += 1;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        *self.reserve.borrow_mut() = open_reserve();
        shed
    }
}

/// The spare fd a listener keeps for `shed_backlog` (close-on-exec, as std
/// opens every file); `None` if the process has no fd to spare right now.
fn open_reserve() -> Option<std::fs::File> {
    std::fs::File::open("/").ok()
}

/// Errors of one connection that accept(2) says to retry past: EPERM 1,
/// ENONET 64, EPROTO 71, ENOPROTOOPT 92, EOPNOTSUPP 95, ENETDOWN 100,
/// ENETUNREACH 101, EHOSTDOWN 112, EHOSTUNREACH 113.
pub(crate) fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(1 | 64 | 71 | 92 | 95 | 100 | 101 | 112 | 113)
    )
}

/// The process (or the system) is out of fds or socket memory: retrying
/// at once would fail the same way.
fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 on Linux.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

type ConnectionCb = Box<dyn FnMut(io::Result<Stream>)>;

/// The callback listener that [`TcpListener`](super::TcpListener) and
/// [`UnixListener`](super::UnixListener) wrap: a registered listening
/// socket that accepts on every readiness edge and calls back with each
/// connection.
///
/// It lives until [`close`](Listener::close): the reactor's callback holds
/// it, whatever happens to the handles.
pub(crate) struct Listener<L: Listen> {
    io: RefCell<Option<L>>,
    watch: WatchSlot,
    cb: RefCell<Option<ConnectionCb>>,
    acceptor: Acceptor,
}

impl<L> Listener<L>
where
    L: Listen + 'static,
    L::Conn: StreamIo + 'static,
{
    /// Registers `io` with the current loop (as `kind`, for the logs) and
    /// calls `on_connection` with each accepted stream or accept error.
    pub(crate) fn start(
        io: L,
        kind: &'static str,
        on_connection: impl FnMut(io::Result<Stream>) + 'static,
    ) -> io::Result<Rc<Self>> {
        let fd = io.as_raw_fd();
        let me = Rc::new(Listener {
            io: RefCell::new(Some(io)),
            watch: WatchSlot::default(),
            cb: RefCell::new(Some(Box::new(on_connection))),
            acceptor: Acceptor::new(),
        });
        let on_ready = me.clone();
        let watch = watch_kind(fd, Interest::READABLE, kind, move |_| on_ready.accept_all())?;
        me.watch.set(watch);
        Ok(me)
    }

    /// The accept loop: one bounded batch per readiness turn (see the
    /// module docs for the policy).
    fn accept_all(self: &Rc<Self>) {
        if self.acceptor.is_paused() {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            let step = {
                let io = self.io.borrow();
                let Some(io) = io.as_ref() else { return };
                self.acceptor.step(io)
            };
            match step {
                Step::Conn(sock, peer) => {
                    log::trace!("accepted {peer:?}");
                    let stream = L::register(sock);
                    if !self.deliver(stream) {
                        return;
                    }
                }
                Step::Drained => return,
                Step::Again => continue,
                Step::Transient(e) => {
                    if !self.deliver(Err(e)) {
                        return;
                    }
                }
                Step::OutOfFds(first) => {
                    let me = self.clone();
                    self.acceptor.pause(move || me.accept_all());
                    if let Some(e) = first {
                        self.deliver(Err(e));
                    }
                    return;
                }
                Step::Failed(e) => {
                    self.deliver(Err(e));
                    return;
                }
            }
        }
        // A full batch: the rest of the backlog waits for the next
        // iteration, so a connection flood cannot starve the other sources.
        let me = self.clone();
        current_inner().defer_next_turn(Box::new(move || me.accept_all()));
    }

    /// Calls the connection callback (take, then call); false if the
    /// listener closed meanwhile.
    fn deliver(&self, r: io::Result<Stream>) -> bool {
        let cb = self.cb.borrow_mut().take();
        let Some(mut cb) = cb else { return false };
        cb(r);
        let mut slot = self.cb.borrow_mut();
        let open = self.is_open();
        if open && slot.is_none() {
            *slot = Some(cb);
        } else {
            drop(slot);
            drop(cb);
        }
        current_inner().checkpoint_now();
        open
    }
}

impl<L: Listen> Listener<L> {
    /// Stops listening and releases the socket and the callback. Closing
    /// twice does nothing.
    pub(crate) fn close(&self) {
        self.watch.close();
        let io = self.io.borrow_mut().take();
        drop(io);
        let cb = self.cb.borrow_mut().take();
        drop(cb);
    }

    /// Whether the listener keeps the loop alive.
    pub(crate) fn set_ref(&self, refed: bool) {
        self.watch.set_ref(refed);
    }

    /// Whether it is still listening.
    pub(crate) fn is_open(&self) -> bool {
        self.io.borrow().is_some()
    }
}
