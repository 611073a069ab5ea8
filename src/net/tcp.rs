//! TCP: a listener that calls back with each connection, and connect.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use super::listener::Listener;
use super::stream::{ConnectCb, Stream, WeakStream};
use crate::abort::AbortSignal;
use crate::event_loop::current_inner;
use crate::Work;

/// The listen backlog. mio (like std) uses 128, which a burst of clients
/// overflows: their SYNs are then retried only after a second. Node asks
/// for 511; we ask for 1024 (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 1024;

/// A TCP server socket (Node's `net.Server`): calls back with every
/// accepted connection.
///
/// Accepting drains the backlog on every readiness edge, in batches of
/// 128 per loop iteration (the policy all listeners share, in
/// `src/net/listener.rs`). When the process
/// runs out of file descriptors (`EMFILE`/`ENFILE`), the pending
/// connections are **accepted and closed at once** with the help of a
/// reserved fd (libuv's "EMFILE trick", so Node's too): their clients see
/// the connection end instead of waiting in the backlog for an fd that may
/// never come. The callback gets the error **once** per burst, accepting
/// pauses for 100 ms and resumes by itself: no busy loop, no error flood.
///
/// The listener lives until [`close`](TcpListener::close), even if its
/// handle is dropped, and keeps the loop alive unless unref'd.
#[derive(Clone)]
pub struct TcpListener {
    inner: Rc<Listener<mio::net::TcpListener>>,
    local: SocketAddr,
}

impl TcpListener {
    /// Binds `addr` (a literal address such as `"127.0.0.1:8080"` or
    /// `"[::1]:0"`) and calls `on_connection` with each accepted stream, or
    /// with an accept error.
    ///
    /// ```
    /// use evloop::net::TcpListener;
    /// evloop::run(|| {
    ///     let server = TcpListener::bind("127.0.0.1:0", |conn| {
    ///         let stream = conn.unwrap();
    ///         let s = stream.clone();
    ///         stream.on_data(move |bytes| {
    ///             s.write(bytes); // echo
    ///         });
    ///     })
    ///     .unwrap();
    ///     println!("listening on {}", server.local_addr());
    ///     server.close();
    /// })
    /// .unwrap();
    /// ```
    pub fn bind(
        addr: &str,
        on_connection: impl FnMut(io::Result<Stream>) + 'static,
    ) -> io::Result<TcpListener> {
        let addr: SocketAddr = addr.parse().map_err(|_| {
            io::Error::new(
                ErrorKind::InvalidInput,
                format!("not a socket address: {addr:?} (bind takes a literal IP and port)"),
            )
        })?;
        Self::bind_addr(addr, on_connection)
    }

    /// [`bind`](TcpListener::bind) with a parsed address.
    pub fn bind_addr(
        addr: SocketAddr,
        on_connection: impl FnMut(io::Result<Stream>) + 'static,
    ) -> io::Result<TcpListener> {
        Self::from_mio(listen(addr)?, on_connection)
    }

    /// Serves a listening socket made elsewhere: one bound with options of
    /// your own, or one inherited from a parent process (how a
    /// [`Cluster`](crate::process::cluster::Cluster)'s workers share a
    /// port). It is switched to non-blocking mode.
    pub fn from_std(
        listener: std::net::TcpListener,
        on_connection: impl FnMut(io::Result<Stream>) + 'static,
    ) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        Self::from_mio(mio::net::TcpListener::from_std(listener), on_connection)
    }

    fn from_mio(
        io: mio::net::TcpListener,
        on_connection: impl FnMut(io::Result<Stream>) + 'static,
    ) -> io::Result<TcpListener> {
        let local = io.local_addr()?;
        let inner = Listener::start(io, "tcp listener", on_connection)?;
        log::debug!("listening on {local}");
        Ok(TcpListener { inner, local })
    }

    /// The bound address (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops listening and releases the socket. Connections already
    /// accepted stay open. Closing twice does nothing.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Lets the loop exit while the listener is open.
    pub fn unref(&self) -> &Self {
        self.inner.set_ref(false);
        self
    }

    /// Makes the listener keep the loop alive again.
    pub fn ref_(&self) -> &Self {
        self.inner.set_ref(true);
        self
    }
}

/// A non-blocking, close-on-exec listening socket with `SO_REUSEADDR`
/// and our backlog (socket2 does what mio's `bind` does, with the backlog
/// as a parameter).
pub(crate) fn listen(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local)
            .field("open", &self.inner.is_open())
            .finish()
    }
}

/// Connects to `addr`, a `host:port` string: a literal IP connects at
/// once; a name (`"localhost:8080"`) is resolved on the thread pool first,
/// as Node's `dns.lookup`, and each address is tried in turn. `cb` gets the
/// connected stream or the last error; it always runs later, never inside
/// this call. [`connect_with_signal`] is the abortable form.
///
/// ```
/// use evloop::net::{connect, TcpListener};
/// evloop::run(|| {
///     let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
///     let addr = server.local_addr().to_string();
///     connect(&addr, move |r| {
///         let stream = r.unwrap();
///         stream.end();
///         server.close();
///     });
/// })
/// .unwrap();
/// ```
pub fn connect(addr: &str, cb: impl FnOnce(io::Result<Stream>) + 'static) {
    connect_attempt(addr, Rc::new(Attempt::default()), Box::new(cb));
}

/// Connects to one address; see [`connect`].
pub fn connect_addr(addr: SocketAddr, cb: impl FnOnce(io::Result<Stream>) + 'static) {
    connect_each(vec![addr], 0, Box::new(cb), Rc::new(Attempt::default()))
}

/// [`connect`], abortable (Node's `net.connect({ signal })`).
///
/// - Already aborted: nothing starts; `cb` gets the
///   [`AbortError`](crate::abort::AbortError) (as an
///   `io::Error`, see [`is_abort_error`](crate::abort::is_abort_error)),
///   later, never inside this call.
/// - Aborted while connecting: the attempt is released at once (the
///   connecting socket is deregistered and closed; a name lookup still
///   queued on the thread pool is cancelled, one already running on a
///   pool thread cannot be interrupted and its result is dropped) and `cb`
///   gets the `AbortError` in a `next_tick`. Nothing the attempt held keeps
///   the loop alive (but a lookup already running, until it returns).
/// - Connected before the abort: `cb` gets the stream as usual. As in
///   Node, the signal then governs the stream's life: a later abort
///   **destroys the stream** with the `AbortError` (its `on_error` gets it,
///   then `on_close(true)`; with no `on_error` the abort is not an
///   uncaught error). Once the stream has closed, aborting does nothing;
///   the stream keeps the signal alive until it closes (an
///   [`AbortSignal::timeout`] passed here is thus a deadline for the
///   whole connection, as in Node, not for the connect alone).
///
/// ```
/// use evloop::abort::{is_abort_error, AbortController};
/// use evloop::net::{connect_with_signal, TcpListener};
///
/// evloop::run(|| {
///     let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
///     let controller = AbortController::new();
///     let addr = server.local_addr().to_string();
///     connect_with_signal(&addr, &controller.signal(), move |r| {
///         assert!(is_abort_error(&r.unwrap_err()));
///         server.close();
///     });
///     controller.abort(None); // before the loop even polls
/// })
/// .unwrap();
/// ```
pub fn connect_with_signal(
    addr: &str,
    signal: &AbortSignal,
    cb: impl FnOnce(io::Result<Stream>) + 'static,
) {
    let attempt = Rc::new(Attempt::default());
    if let Some(done) = bind_connect(signal, &attempt, cb) {
        connect_attempt(addr, attempt, done);
    }
}

/// [`connect_addr`], abortable: see [`connect_with_signal`].
pub fn connect_addr_with_signal(
    addr: SocketAddr,
    signal: &AbortSignal,
    cb: impl FnOnce(io::Result<Stream>) + 'static,
) {
    let attempt = Rc::new(Attempt::default());
    if let Some(done) = bind_connect(signal, &attempt, cb) {
        connect_each(vec![addr], 0, done, attempt);
    }
}

/// The connect callback bound to `signal` (see
/// [`AbortSignal::bind_callback`]): an abort releases `attempt`; a stream
/// delivered before the abort is bound to the signal for the rest of its
/// life (Node). `None` if the signal is already aborted (`cb` is queued
/// with the error; nothing must start).
pub(crate) fn bind_connect(
    signal: &AbortSignal,
    attempt: &Rc<Attempt>,
    cb: impl FnOnce(io::Result<Stream>) + 'static,
) -> Option<ConnectCb> {
    let a = attempt.clone();
    let done = signal.bind_callback(cb, move || a.release())?;
    // Held by the connecting socket, not by the signal's listener: no
    // cycle through the signal while the attempt is in flight.
    let sig = signal.clone();
    Some(Box::new(move |r: io::Result<Stream>| {
        if let Ok(stream) = &r {
            if !sig.aborted() {
                stream.bind_signal(&sig);
            }
        }
        done(r)
    }))
}

/// A connection attempt in flight, as an abort sees it: the name lookup
/// on the pool, then the socket connecting (one address after another).
#[derive(Default)]
pub(crate) struct Attempt {
    aborted: Cell<bool>,
    lookup: Cell<Option<Work>>,
    /// Weak: the attempt is reachable from the signal's listener, and the
    /// connecting stream holds the callback that holds the signal.
    stream: RefCell<Option<WeakStream>>,
}

impl Attempt {
    /// Whether the attempt was given up: nothing more must start.
    pub(crate) fn is_aborted(&self) -> bool {
        self.aborted.get()
    }

    /// The socket now connecting.
    pub(crate) fn connecting(&self, stream: &Stream) {
        *self.stream.borrow_mut() = Some(stream.downgrade());
    }

    /// Gives the attempt up: cancels a lookup still queued, closes the
    /// connecting socket at once (deregistered, fd closed), and stops any
    /// further address from being tried.
    pub(crate) fn release(&self) {
        self.aborted.set(true);
        if let Some(work) = self.lookup.take() {
            if crate::event_loop::has_current() {
                // EBUSY if a pool thread runs it already: its result is
                // dropped when it arrives.
                let _ = work.cancel();
            }
        }
        let stream = self.stream.borrow_mut().take();
        if let Some(stream) = stream.and_then(|s| s.upgrade()) {
            log::debug!("connection attempt aborted: socket closed");
            stream.destroy_quietly();
        }
    }
}

fn connect_attempt(addr: &str, attempt: Rc<Attempt>, cb: ConnectCb) {
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        return connect_each(vec![addr], 0, cb, attempt);
    }
    let host = addr.to_string();
    let a = attempt.clone();
    let work = crate::queue_work_cancelable(
        move || host.to_socket_addrs().map(|a| a.collect::<Vec<_>>()),
        move |r| {
            a.lookup.take();
            if a.is_aborted() {
                return; // the abort answered already
            }
            match r.and_then(|r| r) {
                Ok(addrs) if addrs.is_empty() => cb(Err(io::Error::new(
                    ErrorKind::NotFound,
                    "the name resolved to no address",
                ))),
                Ok(addrs) => connect_each(addrs, 0, cb, a),
                Err(e) => cb(Err(e)),
            }
        },
    );
    attempt.lookup.set(Some(work));
}

fn connect_each(addrs: Vec<SocketAddr>, i: usize, cb: ConnectCb, attempt: Rc<Attempt>) {
    if attempt.is_aborted() {
        return;
    }
    let addr = addrs[i];
    let started =
        mio::net::TcpStream::connect(addr).and_then(|sock| Stream::register(Box::new(sock), true));
    let a = attempt.clone();
    let on_done: ConnectCb = Box::new(move |r| match r {
        Err(e) if i + 1 < addrs.len() => {
            log::debug!("connect {addr}: {e}; trying the next address");
            connect_each(addrs, i + 1, cb, a)
        }
        r => cb(r),
    });
    match started {
        Ok(stream) => {
            attempt.connecting(&stream);
            stream.set_connect_callback(on_done)
        }
        // Never call back synchronously: defer to the pending phase.
        Err(e) => current_inner().defer_pending(Box::new(move || on_done(Err(e)))),
    }
}
