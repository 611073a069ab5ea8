//! UDP sockets (Node's `dgram`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;

use mio::Interest;

use super::addr::{Target, ToAddrs};
use crate::event_loop::LoopRef;
use crate::listeners::{Listener, Listeners, RemoveListener};
use crate::reactor::{watch_kind, Ready, WatchSlot};
use crate::Work;

/// Largest UDP payload (IPv4: 65,507 bytes; the buffer allows any).
const MAX_DATAGRAM: usize = 64 * 1024;

/// Datagrams read per readiness turn before yielding.
const RECVS_PER_TURN: usize = 64;

/// Datagrams queued while the socket's send buffer is full, at most.
const MAX_QUEUED: usize = 1024;

type MessageFn = dyn FnMut(&[u8], SocketAddr);
type SendCb = Box<dyn FnOnce(io::Result<usize>)>;

struct Queued {
    data: Vec<u8>,
    to: Option<SocketAddr>,
    cb: Option<SendCb>,
}

struct Inner {
    io: RefCell<Option<mio::net::UdpSocket>>,
    watch: WatchSlot,
    on_message: Listeners<MessageFn>,
    on_error: Listeners<dyn FnMut(io::Error)>,
    queue: RefCell<VecDeque<Queued>>,
    buf: RefCell<Vec<u8>>,
    lp: LoopRef,
    binding: Binding,
}

/// A UDP socket. Sends never block: a datagram the kernel cannot take yet
/// is queued (up to 1,024 of them; past that `send_to` fails with
/// `WouldBlock`, since UDP may drop anyway) and sent when writable. Send
/// callbacks run later, in the pending phase, as libuv's do.
///
/// The socket lives until [`close`](UdpSocket::close).
#[derive(Clone)]
pub struct UdpSocket {
    inner: Rc<Inner>,
}

impl UdpSocket {
    /// Binds `addr`, any [`ToAddrs`] (`"127.0.0.1:0"`, `"localhost:0"`,
    /// `("::1", 0)`, a `SocketAddr`, a list: the first address that binds
    /// is taken), and returns the socket at once, as Node's
    /// `socket.bind(port, address)` does (the same shape as
    /// [`TcpListener::bind`](super::TcpListener::bind)):
    ///
    /// - a literal address is bound inside the call; its errors are
    ///   returned;
    /// - a host name is resolved on the thread pool first (never blocking
    ///   the loop). Meanwhile sends are queued (as Node queues them) and
    ///   [`local_addr`](UdpSocket::local_addr) is `NotConnected`. A lookup
    ///   or bind failure goes to [`on_listening`](UdpSocket::on_listening)'s
    ///   callback, or is an uncaught error if there is none (Node's
    ///   `'error'` with no listener); queued sends then fail with it.
    ///
    /// An empty list or a malformed string is `InvalidInput`, returned.
    ///
    /// ```
    /// use evloop::net::UdpSocket;
    /// evloop::run(|| {
    ///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = UdpSocket::bind(("localhost", 0)).unwrap();
    ///     let to = a.local_addr().unwrap();
    ///     b.send_to(b"hi", to, |r| assert_eq!(r.unwrap(), 2)); // queued until bound
    ///     let b2 = b.clone();
    ///     b.on_listening(move |r| {
    ///         assert!(r.unwrap().ip().is_loopback());
    ///         b2.close();
    ///     });
    ///     let a2 = a.clone();
    ///     a.on_message(move |msg, _| {
    ///         assert_eq!(msg, b"hi");
    ///         a2.close();
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn bind(addr: impl ToAddrs) -> io::Result<UdpSocket> {
        let target = Target::of(&addr);
        let inner = Rc::new(Inner {
            io: RefCell::new(None),
            watch: WatchSlot::default(),
            on_message: Listeners::default(),
            on_error: Listeners::default(),
            queue: RefCell::new(VecDeque::new()),
            buf: RefCell::new(vec![0; MAX_DATAGRAM]),
            lp: LoopRef::current(),
            binding: Binding::default(),
        });
        if let Some(addrs) = target.now() {
            inner.bind_first(&addrs?)?;
            return Ok(UdpSocket { inner });
        }
        inner.binding.resolving.set(true);
        let me = inner.clone();
        let work = target.resolve(move |r| {
            if !me.binding.resolving.replace(false) {
                return; // closed meanwhile
            }
            me.binding.work.take();
            let r = r.and_then(|addrs| me.bind_first(&addrs));
            let cb = me.binding.on_listening.borrow_mut().take();
            match r {
                Ok(local) => {
                    // Sends queued meanwhile go first, as in Node.
                    me.flush();
                    if let Some(cb) = cb {
                        cb(Ok(local));
                    }
                }
                Err(e) => {
                    log::debug!("udp bind failed: {e}");
                    let queued = std::mem::take(&mut *me.queue.borrow_mut());
                    for q in queued {
                        if let Some(done) = q.cb {
                            let e = io::Error::new(e.kind(), e.to_string());
                            me.lp.defer_pending(Box::new(move || done(Err(e))));
                        }
                    }
                    match cb {
                        Some(cb) => cb(Err(e)),
                        None => me.lp.report_uncaught(crate::Error::UnhandledError {
                            emitter: "udp socket",
                            error: e,
                        }),
                    }
                }
            }
        });
        inner.binding.work.set(work);
        Ok(UdpSocket { inner })
    }

    /// Calls `cb` once the socket is bound, with its address (Node's
    /// `'listening'`), or with the error if a bind by name failed: in a
    /// `next_tick` if it is bound already, after the lookup if it was
    /// bound by name. Not called if the socket is closed first.
    pub fn on_listening(&self, cb: impl FnOnce(io::Result<SocketAddr>) + 'static) -> &Self {
        if self.inner.binding.resolving.get() {
            let old = self.inner.binding.on_listening.replace(Some(Box::new(cb)));
            drop(old);
        } else if let Ok(local) = self.local_addr() {
            crate::next_tick(move || cb(Ok(local)));
        }
        self
    }

    fn with<R>(&self, f: impl FnOnce(&mio::net::UdpSocket) -> io::Result<R>) -> io::Result<R> {
        let io = self.inner.io.borrow();
        match io.as_ref() {
            Some(io) => f(io),
            None if self.inner.binding.resolving.get() => Err(io::Error::new(
                ErrorKind::NotConnected,
                "socket not bound yet (its address is being resolved)",
            )),
            None => Err(closed()),
        }
    }

    /// Adds a listener called with each datagram and its sender (Node's
    /// `on('message')`); returns the [`Listener`] that removes it. Every
    /// listener gets every datagram, in the order they were added (see
    /// [`Listener`]). Without any, datagrams wait in the kernel.
    pub fn on_message(&self, cb: impl FnMut(&[u8], SocketAddr) + 'static) -> Listener {
        let id = self.inner.on_message.add(Box::new(cb));
        // Datagrams may already be waiting: read them on the next turn.
        let me = self.inner.clone();
        self.inner.lp.defer_pending(Box::new(move || me.recv_all()));
        self.handle(MESSAGE, id)
    }

    /// The handle of listener `id`; once the socket is closed, the
    /// listener is not kept (its events are over: no `Rc` cycle through
    /// it stays behind) and the handle is detached.
    fn handle(&self, event: u8, id: u32) -> Listener {
        let owner = Rc::downgrade(&self.inner);
        let l = Listener::new(owner, event, id);
        if self.inner.io.borrow().is_none() {
            l.remove();
            return Listener::detached();
        }
        l
    }

    /// Adds a listener called with receive errors (for example an ICMP
    /// port unreachable on a connected socket; each listener gets its own
    /// copy); returns the [`Listener`] that removes it. The socket stays
    /// open. Without any, a receive error is an uncaught error, as Node's
    /// `'error'` with no listener: the
    /// [uncaught-exception handler](crate::on_uncaught_exception) gets it,
    /// or the loop stops with
    /// [`Error::UnhandledError`](crate::Error::UnhandledError).
    pub fn on_error(&self, cb: impl FnMut(io::Error) + 'static) -> Listener {
        let id = self.inner.on_error.add(Box::new(cb));
        self.handle(ERROR, id)
    }

    /// Sends one datagram to `to`; `cb` gets the bytes sent or the error.
    /// `to` is a literal [`ToAddrs`](super::ToAddrs) (`SocketAddr`,
    /// `"ip:port"`, `(ip, port)`): a datagram is sent in order with the
    /// others, so a host name is not resolved here (`cb` gets
    /// `InvalidInput`); resolve it once with [`dns::lookup`](crate::dns::lookup).
    pub fn send_to(
        &self,
        data: &[u8],
        to: impl super::ToAddrs,
        cb: impl FnOnce(io::Result<usize>) + 'static,
    ) {
        match super::addr::literal_first(&to, "UdpSocket::send_to") {
            Ok(to) => self.inner.send(data, Some(to), Some(Box::new(cb))),
            Err(e) => {
                // Later, as every send callback runs.
                crate::next_tick(move || cb(Err(e)));
            }
        }
    }

    /// Sends on a [connected](UdpSocket::connect) socket.
    pub fn send(&self, data: &[u8], cb: impl FnOnce(io::Result<usize>) + 'static) {
        self.inner.send(data, None, Some(Box::new(cb)));
    }

    /// Sets the default peer: `send` goes there and only its datagrams are
    /// received. `peer` is a literal [`ToAddrs`](super::ToAddrs) (a host
    /// name is `InvalidInput`: resolve it with
    /// [`dns::lookup`](crate::dns::lookup) first; the call is synchronous).
    pub fn connect(&self, peer: impl super::ToAddrs) -> io::Result<()> {
        let peer = super::addr::literal_first(&peer, "UdpSocket::connect")?;
        self.with(|s| s.connect(peer))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with(|s| s.local_addr())
    }

    /// Allows sending to broadcast addresses.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.with(|s| s.set_broadcast(on))
    }

    /// Sets the IP time-to-live.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.with(|s| s.set_ttl(ttl))
    }

    /// Joins an IPv4 multicast group on `interface`.
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.with(|s| s.join_multicast_v4(&group, &interface))
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.with(|s| s.leave_multicast_v4(&group, &interface))
    }

    /// Joins an IPv6 multicast group on interface index `interface`.
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.with(|s| s.join_multicast_v6(&group, interface))
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.with(|s| s.leave_multicast_v6(&group, interface))
    }

    /// Whether multicast sent from this socket loops back (IPv4).
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.with(|s| s.set_multicast_loop_v4(on))
    }

    /// The TTL of multicast datagrams (IPv4).
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.with(|s| s.set_multicast_ttl_v4(ttl))
    }

    /// Datagrams waiting for the kernel to take them.
    pub fn send_queue_len(&self) -> usize {
        self.inner.queue.borrow().len()
    }

    /// Closes the socket; queued sends fail with `BrokenPipe` (later, in
    /// the pending phase). Closing twice does nothing.
    pub fn close(&self) {
        if self.inner.binding.resolving.replace(false) {
            if let Some(work) = self.inner.binding.work.take() {
                // EBUSY if a pool thread runs it already: its result is
                // then dropped when it arrives.
                let _ = work.cancel();
            }
            self.inner.binding.on_listening.borrow_mut().take();
        }
        self.inner.watch.close();
        let io = self.inner.io.borrow_mut().take();
        drop(io);
        let queued = std::mem::take(&mut *self.inner.queue.borrow_mut());
        self.inner.on_message.clear();
        self.inner.on_error.clear();
        for q in queued {
            if let Some(cb) = q.cb {
                self.inner.lp.defer_pending(Box::new(move || {
                    cb(Err(io::Error::new(ErrorKind::BrokenPipe, "socket closed")))
                }));
            }
        }
    }

    /// Lets the loop exit while the socket is open.
    pub fn unref(&self) -> &Self {
        self.inner.watch.set_ref(false);
        self
    }

    /// Makes the socket keep the loop alive again.
    pub fn ref_(&self) -> &Self {
        self.inner.watch.set_ref(true);
        self
    }
}

/// One datagram out: `send_to` with an address, `send` on a connected
/// socket. Retried on `EINTR`, which is not the sender's error.
fn send_one(s: &mio::net::UdpSocket, data: &[u8], to: Option<SocketAddr>) -> io::Result<usize> {
    loop {
        let r = crate::fault::call(crate::fault::Op::Send, s, || match to {
            Some(to) => s.send_to(data, to),
            None => s.send(data),
        });
        match r {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(ErrorKind::NotConnected, "socket is closed")
}

/// Event numbers of a socket's [`Listener`] handles.
const MESSAGE: u8 = 0;
const ERROR: u8 = 1;

impl RemoveListener for Inner {
    fn remove_listener(&self, event: u8, id: u32) -> bool {
        match event {
            MESSAGE => self.on_message.remove(id),
            ERROR => self.on_error.remove(id),
            _ => false,
        }
    }
}

/// A bind by name in progress.
#[derive(Default)]
struct Binding {
    /// True while the name is being resolved (the socket has no fd yet).
    resolving: Cell<bool>,
    work: Cell<Option<Work>>,
    on_listening: RefCell<Option<ListeningCb>>,
}

type ListeningCb = Box<dyn FnOnce(io::Result<SocketAddr>)>;

impl Inner {
    /// Binds the first of `addrs` that binds (the last error if none
    /// does) and registers the socket.
    fn bind_first(self: &Rc<Self>, addrs: &[SocketAddr]) -> io::Result<SocketAddr> {
        let mut last = None;
        let io = addrs
            .iter()
            .find_map(|addr| match mio::net::UdpSocket::bind(*addr) {
                Ok(io) => Some(io),
                Err(e) => {
                    log::debug!("udp bind {addr}: {e}");
                    last = Some(e);
                    None
                }
            });
        let io = match io {
            Some(io) => io,
            None => {
                return Err(last.unwrap_or_else(|| {
                    io::Error::new(ErrorKind::InvalidInput, "no address to bind")
                }))
            }
        };
        let local = io.local_addr()?;
        let fd = io.as_raw_fd();
        *self.io.borrow_mut() = Some(io);
        let me = self.clone();
        let watch = watch_kind(
            fd,
            Interest::READABLE | Interest::WRITABLE,
            "udp",
            move |ready| me.on_ready(ready),
        );
        match watch {
            Ok(watch) => self.watch.set(watch),
            Err(e) => {
                self.io.borrow_mut().take();
                return Err(e);
            }
        }
        Ok(local)
    }

    fn on_ready(self: &Rc<Self>, ready: Ready) {
        if ready.is_writable() || ready.is_error() {
            self.flush();
        }
        if ready.is_readable() || ready.is_error() {
            self.recv_all();
        }
    }

    fn send(self: &Rc<Self>, data: &[u8], to: Option<SocketAddr>, cb: Option<SendCb>) {
        // Not bound yet (a name being resolved): queue, as Node does.
        let r = if self.queue.borrow().is_empty() && !self.binding.resolving.get() {
            let io = self.io.borrow();
            match io.as_ref() {
                None => Err(closed()),
                Some(s) => send_one(s, data, to),
            }
        } else {
            Err(io::Error::from(ErrorKind::WouldBlock))
        };
        let r = match r {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut q = self.queue.borrow_mut();
                if q.len() < MAX_QUEUED {
                    q.push_back(Queued {
                        data: data.to_vec(),
                        to,
                        cb,
                    });
                    return;
                }
                Err(io::Error::new(
                    ErrorKind::WouldBlock,
                    "UDP send queue full: datagram dropped",
                ))
            }
            r => r,
        };
        if let Some(cb) = cb {
            self.lp.defer_pending(Box::new(move || cb(r)));
        }
    }

    fn flush(self: &Rc<Self>) {
        loop {
            let front = self.queue.borrow_mut().pop_front();
            let Some(q) = front else { return };
            let r = {
                let io = self.io.borrow();
                match io.as_ref() {
                    None => Err(closed()),
                    Some(s) => send_one(s, &q.data, q.to),
                }
            };
            match r {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.queue.borrow_mut().push_front(q);
                    return;
                }
                r => {
                    if let Some(cb) = q.cb {
                        self.lp.defer_pending(Box::new(move || cb(r)));
                    }
                }
            }
        }
    }

    fn recv_all(self: &Rc<Self>) {
        for _ in 0..RECVS_PER_TURN {
            if self.on_message.is_empty() || self.io.borrow().is_none() {
                return;
            }
            let mut buf = self.buf.borrow_mut();
            let r = {
                let io = self.io.borrow();
                match io.as_ref() {
                    None => return,
                    Some(s) => {
                        crate::fault::call(crate::fault::Op::Recv, s, || s.recv_from(&mut buf))
                    }
                }
            };
            match r {
                Ok((n, from)) => {
                    self.on_message.emit(|cb| cb(&buf[..n], from));
                    drop(buf);
                    self.lp.checkpoint_now();
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    drop(buf);
                    if let Err(e) = crate::listeners::emit_error(&self.on_error, e) {
                        // Node's 'error' with no listener: uncaught.
                        self.lp.report_uncaught(crate::Error::UnhandledError {
                            emitter: "udp socket",
                            error: e,
                        });
                    }
                }
            }
        }
        // More may be waiting: continue next turn instead of starving others.
        let me = self.clone();
        self.lp.defer_next_turn(Box::new(move || me.recv_all()));
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .field("queued", &self.send_queue_len())
            .finish()
    }
}
