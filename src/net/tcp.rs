//! TCP: a listener that calls back with each connection, and connect.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::rc::Rc;

use super::addr::{Target, ToAddrs};
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
/// # Binding: one shape for literal addresses and names
///
/// [`bind`](TcpListener::bind) takes any [`ToAddrs`] and **returns the
/// listener at once**, as Node's `server.listen(port, host)` does:
///
/// - a literal address (`"127.0.0.1:0"`, a `SocketAddr`, a list) is bound
///   inside the call: bind errors (`EADDRINUSE`, ...) are returned, and
///   [`local_addr`](TcpListener::local_addr) is known at once (the common
///   case stays a one-liner, as with std or tokio);
/// - a host name (`"localhost:8080"`, `("localhost", 0)`) is resolved on
///   the thread pool (never blocking the loop), then the first address that
///   binds is used. Until then [`address`](TcpListener::address) is `None`
///   (Node's `server.address()` is `null`); a lookup or bind failure then
///   reaches `on_connection` as its `Err` (Node's `'error'` after
///   `listen`), and the listener is closed.
///
/// [`on_listening`](TcpListener::on_listening) (Node's `'listening'`) runs
/// once the socket listens, later and never inside the call, in either
/// case: code written for names works unchanged for literals. (Why not a
/// bind with a completion callback: every numeric bind, by far the common
/// case, would pay a nesting level; why not synchronous for names:
/// `getaddrinfo` blocks.)
///
/// # Accepting
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
/// handle is dropped, and keeps the loop alive unless unref'd (while a name
/// is being resolved, the lookup keeps it alive).
#[derive(Clone)]
pub struct TcpListener {
    shared: Rc<Shared>,
}

type ConnectionCb = Box<dyn FnMut(io::Result<Stream>)>;
type ListeningCb = Box<dyn FnOnce(SocketAddr)>;

struct Shared {
    state: RefCell<State>,
    on_listening: RefCell<Option<ListeningCb>>,
    refed: Cell<bool>,
}

enum State {
    /// A host name is being looked up on the pool.
    Resolving {
        work: Option<Work>,
        on_connection: ConnectionCb,
    },
    Listening(Rc<Listener<mio::net::TcpListener>>, SocketAddr),
    Closed,
}

impl TcpListener {
    /// Binds `addr` (any [`ToAddrs`]: `"127.0.0.1:8080"`, `"[::1]:0"`,
    /// `"localhost:8080"`, `("localhost", 0)`, a `SocketAddr`, a list) and
    /// calls `on_connection` with each accepted stream, or with an accept
    /// error. Literal addresses are bound now (their errors returned); a
    /// name is resolved on the pool first and its errors reach
    /// `on_connection`: see [the type's docs](TcpListener#binding-one-shape-for-literal-addresses-and-names).
    /// An empty list or a malformed string is `InvalidInput`, returned.
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
    ///
    ///     // A name: listening a little later.
    ///     let named = TcpListener::bind("localhost:0", |_| {}).unwrap();
    ///     assert_eq!(named.address(), None);
    ///     let n = named.clone();
    ///     named.on_listening(move |addr| {
    ///         assert!(addr.ip().is_loopback());
    ///         n.close();
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn bind(
        addr: impl ToAddrs,
        on_connection: impl FnMut(io::Result<Stream>) + 'static,
    ) -> io::Result<TcpListener> {
        let target = Target::of(&addr);
        let shared = Rc::new(Shared {
            state: RefCell::new(State::Closed),
            on_listening: RefCell::new(None),
            refed: Cell::new(true),
        });
        let on_connection: ConnectionCb = Box::new(on_connection);
        if let Some(addrs) = target.now() {
            let (listener, local) = start(listen_first(&addrs?)?, on_connection)?;
            *shared.state.borrow_mut() = State::Listening(listener, local);
            return Ok(TcpListener { shared });
        }
        // Strong: the listener lives until closed, handle dropped or not.
        let me = shared.clone();
        let work = target.resolve(move |r| {
            let state = std::mem::replace(&mut *me.state.borrow_mut(), State::Closed);
            let State::Resolving {
                mut on_connection, ..
            } = state
            else {
                return; // closed meanwhile
            };
            let bound = r.and_then(|addrs| listen_first(&addrs));
            match bound {
                Ok(io) => {
                    let (listener, local) = match start(io, on_connection) {
                        Ok(l) => l,
                        // Registration failed: the callback went with it.
                        Err(e) => return log::error!("listen: {e}"),
                    };
                    listener.set_ref(me.refed.get());
                    *me.state.borrow_mut() = State::Listening(listener, local);
                    let cb = me.on_listening.borrow_mut().take();
                    if let Some(cb) = cb {
                        cb(local);
                    }
                }
                Err(e) => {
                    log::debug!("listen failed: {e}");
                    me.on_listening.borrow_mut().take();
                    on_connection(Err(e));
                }
            }
        });
        *shared.state.borrow_mut() = State::Resolving {
            work,
            on_connection,
        };
        Ok(TcpListener { shared })
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
        let (listener, local) = start(
            mio::net::TcpListener::from_std(listener),
            Box::new(on_connection),
        )?;
        Ok(TcpListener {
            shared: Rc::new(Shared {
                state: RefCell::new(State::Listening(listener, local)),
                on_listening: RefCell::new(None),
                refed: Cell::new(true),
            }),
        })
    }

    /// The bound address (with the port the OS chose for port 0). Before
    /// a listener bound by name listens (see [`address`](TcpListener::address)),
    /// and after a failed or closed one, the unspecified `0.0.0.0:0`.
    pub fn local_addr(&self) -> SocketAddr {
        self.address()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The bound address once listening, `None` while a name is still
    /// being resolved (Node's `server.address()`), or if that failed.
    pub fn address(&self) -> Option<SocketAddr> {
        match &*self.shared.state.borrow() {
            State::Listening(_, local) => Some(*local),
            _ => None,
        }
    }

    /// Calls `cb` with the bound address once the listener listens (Node's
    /// `'listening'`): in a `next_tick` if it listens already, after the
    /// lookup if it was bound by name. Never called if the bind fails or
    /// the listener is closed first. A second call replaces the first
    /// callback if that has not run yet.
    pub fn on_listening(&self, cb: impl FnOnce(SocketAddr) + 'static) -> &Self {
        match &*self.shared.state.borrow() {
            State::Listening(_, local) => {
                let local = *local;
                crate::next_tick(move || cb(local));
            }
            State::Resolving { .. } => {
                let old = self.shared.on_listening.replace(Some(Box::new(cb)));
                drop(old);
            }
            State::Closed => {}
        }
        self
    }

    /// Stops listening and releases the socket (or gives up a lookup in
    /// progress). Connections already accepted stay open. Closing twice
    /// does nothing.
    pub fn close(&self) {
        let state = std::mem::replace(&mut *self.shared.state.borrow_mut(), State::Closed);
        match state {
            State::Listening(listener, _) => listener.close(),
            State::Resolving { work, .. } => {
                if let Some(work) = work {
                    // EBUSY if a pool thread runs it already: its result is
                    // then dropped when it arrives.
                    let _ = work.cancel();
                }
            }
            State::Closed => {}
        }
        let cb = self.shared.on_listening.borrow_mut().take();
        drop(cb);
    }

    /// Lets the loop exit while the listener is open.
    pub fn unref(&self) -> &Self {
        self.set_ref(false)
    }

    /// Makes the listener keep the loop alive again.
    pub fn ref_(&self) -> &Self {
        self.set_ref(true)
    }

    fn set_ref(&self, refed: bool) -> &Self {
        self.shared.refed.set(refed);
        if let State::Listening(listener, _) = &*self.shared.state.borrow() {
            listener.set_ref(refed);
        }
        self
    }
}

/// A listening socket on the first of `addrs` that binds; the last
/// error if none does.
pub(crate) fn listen_first(addrs: &[SocketAddr]) -> io::Result<mio::net::TcpListener> {
    let mut last = None;
    for addr in addrs {
        match listen(*addr) {
            Ok(io) => return Ok(io),
            Err(e) => {
                log::debug!("bind {addr}: {e}");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(ErrorKind::InvalidInput, "no address to bind")))
}

fn start(
    io: mio::net::TcpListener,
    on_connection: ConnectionCb,
) -> io::Result<(Rc<Listener<mio::net::TcpListener>>, SocketAddr)> {
    let local = io.local_addr()?;
    let inner = Listener::start(io, "tcp listener", on_connection)?;
    log::debug!("listening on {local}");
    Ok((inner, local))
}

/// A non-blocking, close-on-exec listening socket with `SO_REUSEADDR`
/// and our backlog (socket2 does what mio's `bind` does, with the backlog
/// as a parameter).
fn listen(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
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
            .field("address", &self.address())
            .field(
                "open",
                &!matches!(&*self.shared.state.borrow(), State::Closed),
            )
            .finish()
    }
}

/// Connects to `addr`, any [`ToAddrs`]: a literal address connects at
/// once; a name (`"localhost:8080"`, `("localhost", 8080)`) is resolved on
/// the thread pool first, as Node's `dns.lookup`, and each address is
/// tried in turn (sequentially; not Node 20's happy-eyeballs race). `cb`
/// gets the connected stream or the **last** address's error (a name that
/// does not resolve: `NotFound` naming the host; an empty list or a
/// malformed string: `InvalidInput`); it always runs later, never inside
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
pub fn connect(addr: impl ToAddrs, cb: impl FnOnce(io::Result<Stream>) + 'static) {
    connect_attempt(Target::of(&addr), Rc::new(Attempt::default()), Box::new(cb));
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
    addr: impl ToAddrs,
    signal: &AbortSignal,
    cb: impl FnOnce(io::Result<Stream>) + 'static,
) {
    let attempt = Rc::new(Attempt::default());
    if let Some(done) = bind_connect(signal, &attempt, cb) {
        connect_attempt(Target::of(&addr), attempt, done);
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

fn connect_attempt(addr: Target, attempt: Rc<Attempt>, cb: ConnectCb) {
    if let Some(r) = addr.now() {
        return match r {
            Ok(addrs) => connect_each(addrs, 0, cb, attempt),
            // Never call back synchronously: defer to the pending phase.
            Err(e) => current_inner().defer_pending(Box::new(move || cb(Err(e)))),
        };
    }
    let a = attempt.clone();
    let work = addr.resolve(move |r| {
        a.lookup.take();
        if a.is_aborted() {
            return; // the abort answered already
        }
        match r {
            Ok(addrs) => connect_each(addrs, 0, cb, a),
            Err(e) => cb(Err(e)),
        }
    });
    attempt.lookup.set(work);
}

fn connect_each(addrs: Vec<SocketAddr>, i: usize, cb: ConnectCb, attempt: Rc<Attempt>) {
    if attempt.is_aborted() {
        return;
    }
    let addr = addrs[i];
    let started =
        mio::net::TcpStream::connect(addr).and_then(|sock| Stream::register_tcp(sock, true));
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
