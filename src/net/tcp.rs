//! TCP: a listener that calls back with each connection, and connect.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use mio::Interest;

use super::stream::{ConnectCb, Stream};
use crate::event_loop::current_inner;
use crate::reactor::{watch_kind, WatchSlot};

/// The listen backlog. mio (like std) uses 128, which a burst of clients
/// overflows: their SYNs are then retried only after a second. Node asks
/// for 511; we ask for 1024 (the kernel caps it at `somaxconn`).
const BACKLOG: i32 = 1024;

/// Connections accepted per readiness turn (TCP and Unix listeners); a
/// listener with more waiting goes on in the next iteration.
pub(super) const ACCEPTS_PER_TURN: usize = 128;

/// How long accepting pauses after the process ran out of fds.
pub(crate) const EMFILE_BACKOFF: Duration = Duration::from_millis(100);

type ConnectionCb = Box<dyn FnMut(io::Result<Stream>)>;

struct ListenerInner {
    io: RefCell<Option<mio::net::TcpListener>>,
    watch: WatchSlot,
    cb: RefCell<Option<ConnectionCb>>,
    /// Accepting is paused after EMFILE until the retry timer fires.
    backoff: Cell<bool>,
    /// The current burst of EMFILE errors was reported already.
    reported: Cell<bool>,
    /// A spare fd (`/` opened read-only), closed to make room for one
    /// accept when the process is out of fds (see `shed_backlog`).
    reserve: RefCell<Option<std::fs::File>>,
    local: SocketAddr,
}

/// A TCP server socket (Node's `net.Server`): calls back with every
/// accepted connection.
///
/// Accepting drains the backlog on every readiness edge. When the process
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
    inner: Rc<ListenerInner>,
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
        let inner = Rc::new(ListenerInner {
            io: RefCell::new(Some(io)),
            watch: WatchSlot::default(),
            cb: RefCell::new(Some(Box::new(on_connection))),
            backoff: Cell::new(false),
            reported: Cell::new(false),
            reserve: RefCell::new(open_reserve()),
            local,
        });
        let fd = {
            use std::os::fd::AsRawFd;
            inner.io.borrow().as_ref().expect("just bound").as_raw_fd()
        };
        let me = inner.clone();
        let watch = watch_kind(
            fd,
            Interest::READABLE,
            "tcp listener",
            Box::new(move |_| me.accept_all()),
        )?;
        inner.watch.set(watch);
        log::debug!("listening on {local}");
        Ok(TcpListener { inner })
    }

    /// The bound address (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Stops listening and releases the socket. Connections already
    /// accepted stay open. Closing twice does nothing.
    pub fn close(&self) {
        self.inner.watch.close();
        let io = self.inner.io.borrow_mut().take();
        drop(io);
        let cb = self.inner.cb.borrow_mut().take();
        drop(cb);
    }

    /// Lets the loop exit while the listener is open.
    pub fn unref(&self) -> &Self {
        self.inner.watch.set_ref(false);
        self
    }

    /// Makes the listener keep the loop alive again.
    pub fn ref_(&self) -> &Self {
        self.inner.watch.set_ref(true);
        self
    }
}

impl ListenerInner {
    fn accept_all(self: &Rc<Self>) {
        if self.backoff.get() {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            let r = {
                let io = self.io.borrow();
                match io.as_ref() {
                    Some(io) => crate::fault::call(crate::fault::Op::Accept, io, || io.accept()),
                    None => return,
                }
            };
            match r {
                Ok((sock, peer)) => {
                    log::trace!("accepted {peer}");
                    self.reported.set(false);
                    let stream = Stream::register(Box::new(sock), false);
                    if !self.deliver(stream) {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e)
                    if e.kind() == ErrorKind::Interrupted
                        || e.kind() == ErrorKind::ConnectionAborted =>
                {
                    continue
                }
                Err(e) if is_fd_exhaustion(&e) => {
                    let shed = if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        self.shed_backlog()
                    } else {
                        0
                    };
                    log::debug!(
                        "accept: {e}; closed {shed} pending connections; pausing for {EMFILE_BACKOFF:?}"
                    );
                    self.backoff.set(true);
                    let me = self.clone();
                    let retry = crate::set_timeout(EMFILE_BACKOFF, move || {
                        me.backoff.set(false);
                        me.accept_all();
                    });
                    retry.unref();
                    // Once per burst, not once per retry.
                    if !self.reported.replace(true) {
                        self.deliver(Err(e));
                    }
                    return;
                }
                Err(e) => {
                    // accept(2): network errors of one pending connection
                    // are to be treated like EAGAIN; keep draining past them.
                    let transient = is_transient_accept_error(&e);
                    if !self.deliver(Err(e)) || !transient {
                        return;
                    }
                }
            }
        }
        // A full batch: the rest of the backlog waits for the next
        // iteration, so a connection flood cannot starve the other sources.
        let me = self.clone();
        current_inner().defer_next_turn(Box::new(move || me.accept_all()));
    }

    /// Out of fds: closes the reserve fd, then accepts and at once closes
    /// every pending connection that fd makes room for, and takes the
    /// reserve back. Returns how many connections were closed. Without a
    /// reserve (it could not be reopened last time) nothing is shed, and
    /// the back-off retries as before.
    fn shed_backlog(&self) -> usize {
        let Some(reserve) = self.reserve.borrow_mut().take() else {
            return 0;
        };
        drop(reserve);
        let mut shed = 0;
        if let Some(io) = self.io.borrow().as_ref() {
            loop {
                match crate::fault::call(crate::fault::Op::Accept, io, || io.accept()) {
                    Ok((sock, peer)) => {
                        log::trace!("out of fds: closing the connection from {peer}");
                        drop(sock);
                        shed += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        *self.reserve.borrow_mut() = open_reserve();
        shed
    }

    /// Calls the connection callback; false if the listener closed meanwhile.
    fn deliver(&self, r: io::Result<Stream>) -> bool {
        let cb = self.cb.borrow_mut().take();
        let Some(mut cb) = cb else { return false };
        cb(r);
        let mut slot = self.cb.borrow_mut();
        let open = self.io.borrow().is_some();
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

/// Errors of one connection that accept(2) says to retry past: EPERM 1,
/// ENONET 64, EPROTO 71, ENOPROTOOPT 92, EOPNOTSUPP 95, ENETDOWN 100,
/// ENETUNREACH 101, EHOSTDOWN 112, EHOSTUNREACH 113.
pub(crate) fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(1 | 64 | 71 | 92 | 95 | 100 | 101 | 112 | 113)
    )
}

/// The spare fd a listener keeps for `shed_backlog` (close-on-exec, as std
/// opens every file); `None` if the process has no fd to spare right now.
fn open_reserve() -> Option<std::fs::File> {
    std::fs::File::open("/").ok()
}

pub(crate) fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 on Linux.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.inner.local)
            .field("open", &self.inner.io.borrow().is_some())
            .finish()
    }
}

/// Connects to `addr`, a `host:port` string: a literal IP connects at
/// once; a name (`"localhost:8080"`) is resolved on the thread pool first,
/// as Node's `dns.lookup`, and each address is tried in turn. `cb` gets the
/// connected stream or the last error; it always runs later, never inside
/// this call.
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
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        return connect_addr(addr, cb);
    }
    let host = addr.to_string();
    crate::queue_work(
        move || host.to_socket_addrs().map(|a| a.collect::<Vec<_>>()),
        move |r| match r.and_then(|r| r) {
            Ok(addrs) if addrs.is_empty() => cb(Err(io::Error::new(
                ErrorKind::NotFound,
                "the name resolved to no address",
            ))),
            Ok(addrs) => connect_each(addrs, 0, Box::new(cb)),
            Err(e) => cb(Err(e)),
        },
    );
}

/// Connects to one address; see [`connect`].
pub fn connect_addr(addr: SocketAddr, cb: impl FnOnce(io::Result<Stream>) + 'static) {
    connect_each(vec![addr], 0, Box::new(cb))
}

fn connect_each(addrs: Vec<SocketAddr>, i: usize, cb: ConnectCb) {
    let addr = addrs[i];
    let started =
        mio::net::TcpStream::connect(addr).and_then(|sock| Stream::register(Box::new(sock), true));
    let on_done: ConnectCb = Box::new(move |r| match r {
        Err(e) if i + 1 < addrs.len() => {
            log::debug!("connect {addr}: {e}; trying the next address");
            connect_each(addrs, i + 1, cb)
        }
        r => cb(r),
    });
    match started {
        Ok(stream) => stream.set_connect_callback(on_done),
        // Never call back synchronously: defer to the pending phase.
        Err(e) => current_inner().defer_pending(Box::new(move || on_done(Err(e)))),
    }
}
