//! [`Stream`]: a connected, byte-oriented, non-blocking socket or pipe with
//! Node's events as callbacks. The contract is documented on [`Stream`].

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use mio::Interest;

use crate::abort::{AbortError, AbortListener, AbortSignal};
use crate::event_loop::LoopRef;
use crate::listeners::{Counters, Listener, ListenerList, RemoveListener};
use crate::reactor::{watch_source, OnReady, Ready, WatchSlot};

mod inner;

/// The default high-water mark of a stream's write queue (Node's 16 KiB).
pub const DEFAULT_HIGH_WATER_MARK: usize = 16 * 1024;

/// Reads per readiness event or loop iteration before yielding to the
/// other sources (libuv's `uv__read` reads at most 32 times too).
const READS_PER_TURN: u32 = 32;

/// How much a stream reads ahead before it has a data listener (Node's
/// readable high-water mark); past it, data waits in the kernel.
const EARLY_LIMIT: usize = 64 * 1024;

/// The size of the loop thread's shared read buffer.
const READ_BUF: usize = 64 * 1024;

thread_local! {
    /// One read buffer for every stream on this thread: reads happen only in
    /// dispatch, never nested, so no stream needs its own.
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

/// What a stream's fd can do; implemented for mio's TCP and Unix streams
/// and pipes.
pub(crate) trait StreamIo: AsRawFd {
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize>;
    fn write_some(&self, buf: &[u8]) -> io::Result<usize>;
    /// Half-close the writing side (`shutdown(SHUT_WR)`); for a pipe,
    /// closing the write end is done by dropping it instead.
    fn shutdown_write(&self) -> io::Result<()>;
    /// A pending socket error (connect failure).
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(None)
    }
    /// Whether a non-blocking connect has finished.
    fn is_connected(&self) -> io::Result<bool> {
        Ok(true)
    }
    fn tcp(&self) -> Option<&mio::net::TcpStream> {
        None
    }
    fn kind(&self) -> &'static str;
    /// A write-only fd (stdout) has no read side.
    fn has_read_side(&self) -> bool {
        true
    }
    /// A read-only fd (stdin) has no write side.
    fn has_write_side(&self) -> bool {
        true
    }
    /// Whether epoll can watch it; a regular file or a terminal written
    /// with blocking writes is not registered.
    fn pollable(&self) -> bool {
        true
    }
    /// Whether a read that returns less than asked means the fd's buffer
    /// is empty, so that the `WouldBlock` read after it can be skipped:
    /// true for sockets and pipes, not for a terminal (it returns one line
    /// per read), nor while the fault shim caps reads.
    fn short_read_drains(&self) -> bool {
        crate::fault::short_read_drains()
    }
    /// Whether this is the fd of a closed stream ([`Closed`]).
    fn is_closed(&self) -> bool {
        false
    }
}

/// mio's TCP and Unix streams have the same shape: one impl for both.
macro_rules! socket_stream_io {
    ($ty:ty, $kind:literal, |$me:ident| $tcp:expr) => {
        impl StreamIo for $ty {
            fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
                crate::fault::read(self, buf, |buf| Read::read(&mut &*self, buf))
            }
            fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
                crate::fault::write(self, buf, |buf| Write::write(&mut &*self, buf))
            }
            fn shutdown_write(&self) -> io::Result<()> {
                self.shutdown(std::net::Shutdown::Write)
            }
            fn take_error(&self) -> io::Result<Option<io::Error>> {
                <$ty>::take_error(self)
            }
            fn is_connected(&self) -> io::Result<bool> {
                match self.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
                    Err(e) => Err(e),
                }
            }
            fn tcp(&self) -> Option<&mio::net::TcpStream> {
                let $me = self;
                $tcp
            }
            fn kind(&self) -> &'static str {
                $kind
            }
        }
    };
}

socket_stream_io!(mio::net::TcpStream, "tcp", |me| Some(me));
socket_stream_io!(mio::net::UnixStream, "unix", |me| {
    let _ = me;
    None
});

/// A stream's fd: a TCP socket inline (an accepted connection costs no
/// second allocation for it), anything else boxed; once closed, `Other`
/// of the zero-sized [`Closed`] (no allocation either). 16 bytes: the
/// `Option` a closed state would add costs 8 more per stream.
pub(crate) enum Io {
    Tcp(mio::net::TcpStream),
    Other(Box<dyn StreamIo>),
}

/// The fd of a closed stream: none ([`Io::open`] says so).
struct Closed;

impl AsRawFd for Closed {
    fn as_raw_fd(&self) -> RawFd {
        -1
    }
}

impl StreamIo for Closed {
    fn read_some(&self, _: &mut [u8]) -> io::Result<usize> {
        Err(closed_error())
    }
    fn write_some(&self, _: &[u8]) -> io::Result<usize> {
        Err(closed_error())
    }
    fn shutdown_write(&self) -> io::Result<()> {
        Err(closed_error())
    }
    fn kind(&self) -> &'static str {
        "closed"
    }
    fn is_closed(&self) -> bool {
        true
    }
}

impl Io {
    /// The fd, unless closed.
    #[inline]
    fn open(&self) -> Option<&Io> {
        match self {
            Io::Tcp(_) => Some(self),
            Io::Other(b) if !b.is_closed() => Some(self),
            Io::Other(_) => None,
        }
    }

    /// Reads (a TCP socket's read called directly, not through the
    /// trait object: it runs once or twice per event).
    #[inline]
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(t) => t.read_some(buf),
            Io::Other(b) => b.read_some(buf),
        }
    }

    /// Writes, as [`read_some`](Io::read_some) reads.
    #[inline]
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Tcp(t) => t.write_some(buf),
            Io::Other(b) => b.write_some(buf),
        }
    }

    /// Takes the fd out (to close it), leaving the closed state.
    fn take(&mut self) -> Option<Io> {
        self.open()?;
        Some(std::mem::replace(self, Io::Other(Box::new(Closed))))
    }
}

impl std::ops::Deref for Io {
    type Target = dyn StreamIo;

    #[inline]
    fn deref(&self) -> &(dyn StreamIo + 'static) {
        match self {
            Io::Tcp(t) => t,
            Io::Other(b) => &**b,
        }
    }
}

type DataFn = dyn FnMut(&[u8]);
type WriteCb = Box<dyn FnOnce(io::Result<()>)>;
pub(crate) type ConnectCb = Box<dyn FnOnce(io::Result<Stream>)>;

/// A write the kernel has not fully taken yet.
struct WriteReq {
    data: Vec<u8>,
    off: usize,
    cb: Option<WriteCb>,
}

/// The stream's flags and, boxed apart, its cold state: an idle
/// connection has no write queue, no read-ahead and default limits, and
/// keeps none of them (memory per idle connection counts: issue 25).
#[derive(Default)]
struct State {
    /// The fd may have data (edge-triggered: remembered until WouldBlock).
    readable: bool,
    paused: bool,
    read_eof: bool,
    /// The peer's FIN or an error was reported by the reactor.
    peer_closed: bool,
    end_emitted: bool,
    read_scheduled: bool,
    /// A short read means the fd is drained ([`StreamIo::short_read_drains`]).
    short_read_drains: bool,
    end_requested: bool,
    write_closed: bool,
    destroyed: bool,
    connecting: bool,
    allow_half_open: bool,
    need_drain: bool,
    /// A job to run the finished writes' callbacks is queued.
    done_scheduled: bool,
    /// Set once the stream has closed and drops its listeners: later
    /// `on_*` calls keep nothing (the events are over).
    released: bool,
    /// Reads per batch ([`Stream::set_read_batch`]).
    read_batch: u32,
    /// Allocated when first needed, dropped when back to its defaults.
    cold: Option<Box<Cold>>,
}

/// What a stream needs only while it queues writes, reads ahead, or has
/// non-default limits.
struct Cold {
    /// Bytes read before a data listener existed (at most `EARLY_LIMIT`).
    early: Vec<u8>,
    queue: VecDeque<WriteReq>,
    queued_bytes: usize,
    high_water_mark: usize,
    /// The hard cap on queued bytes ([`Stream::set_max_write_queue`]).
    max_write_queue: Option<usize>,
}

impl Default for Cold {
    fn default() -> Self {
        Cold {
            early: Vec::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            high_water_mark: DEFAULT_HIGH_WATER_MARK,
            max_write_queue: None,
        }
    }
}

impl State {
    /// The cold state, allocated on first use.
    fn cold(&mut self) -> &mut Cold {
        self.cold.get_or_insert_with(Box::default)
    }

    /// Drops the cold state once it holds nothing and only defaults, so
    /// that a connection that has queued once is small again when idle.
    fn trim_cold(&mut self) {
        if let Some(c) = &self.cold {
            if c.early.is_empty()
                && c.queue.is_empty()
                && c.high_water_mark == DEFAULT_HIGH_WATER_MARK
                && c.max_write_queue.is_none()
            {
                self.cold = None;
            }
        }
    }

    #[inline]
    fn queue_is_empty(&self) -> bool {
        self.cold.as_ref().map_or(true, |c| c.queue.is_empty())
    }

    #[inline]
    fn early_len(&self) -> usize {
        self.cold.as_ref().map_or(0, |c| c.early.len())
    }

    fn queued_bytes(&self) -> usize {
        self.cold.as_ref().map_or(0, |c| c.queued_bytes)
    }
}

/// The listeners of a stream's events, by event (Node's `EventEmitter`
/// lists; see [`crate::Listener`]). `end` and `close` happen once, so
/// their listeners are one-shot.
#[derive(Default)]
struct Callbacks {
    data: ListenerList<DataFn>,
    end: ListenerList<dyn FnMut()>,
    drain: ListenerList<dyn FnMut()>,
    error: ListenerList<dyn FnMut(io::Error)>,
    close: ListenerList<dyn FnMut(bool)>,
    /// The ids and delivery count of all five lists.
    c: Counters,
    /// Taken (never borrowed) when the connect finishes; boxed once more
    /// to keep an accepted stream, which never has one, 8 bytes smaller.
    #[allow(clippy::box_collection, clippy::redundant_allocation)]
    connect: Cell<Option<Box<ConnectCb>>>,
}

/// Event numbers of a stream's [`Listener`] handles.
const DATA: u8 = 0;
const END: u8 = 1;
const DRAIN: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 4;

impl OnReady for StreamInner {
    #[inline]
    fn on_ready(self: Rc<Self>, ready: Ready) {
        self.ready(ready);
    }
}

impl RemoveListener for StreamInner {
    fn remove_listener(&self, event: u8, id: u32) -> bool {
        match event {
            DATA => self.cbs.data.remove(&self.cbs.c, id),
            END => self.cbs.end.remove(&self.cbs.c, id),
            DRAIN => self.cbs.drain.remove(&self.cbs.c, id),
            ERROR => self.cbs.error.remove(&self.cbs.c, id),
            CLOSE => self.cbs.close.remove(&self.cbs.c, id),
            _ => false,
        }
    }
}

pub(crate) struct StreamInner {
    io: RefCell<Io>,
    watch: WatchSlot,
    st: RefCell<State>,
    cbs: Callbacks,
    /// Finished writes waiting for their callbacks, and the signal: what
    /// an idle accepted stream does not have (allocated when needed,
    /// dropped when empty; taken out of its cell, never borrowed).
    extra: Cell<Option<Box<Extra>>>,
    lp: LoopRef,
}

/// The rarely used parts of a stream ([`StreamInner::extra`]).
#[derive(Default)]
struct Extra {
    /// Finished writes whose callbacks wait for the pending phase.
    done: VecDeque<(WriteCb, io::Result<()>)>,
    /// The signal the stream was connected with, if any, and its listener
    /// (which destroys the stream on abort, as Node's `{ signal }` option
    /// of `net.connect` does): released when the stream closes.
    signal: Option<(AbortSignal, AbortListener)>,
}

impl StreamInner {
    /// Changes the extra state; drops it once it holds nothing.
    fn with_extra<R>(&self, f: impl FnOnce(&mut Extra) -> R) -> R {
        let keep = |x: &Extra| !x.done.is_empty() || x.signal.is_some();
        match self.extra.take() {
            Some(mut extra) => {
                let r = f(&mut extra);
                if keep(&extra) {
                    self.extra.set(Some(extra));
                }
                r
            }
            None => {
                // Boxed only if it ends up holding something.
                let mut extra = Extra::default();
                let r = f(&mut extra);
                if keep(&extra) {
                    self.extra.set(Some(Box::new(extra)));
                }
                r
            }
        }
    }
}

/// A connected stream: TCP or Unix socket, pipe or terminal (Node's
/// `net.Socket`). Cheap to clone: clones are handles to one stream.
///
/// # Events
///
/// Each `on_*` method adds a listener, as Node's `socket.on(event, f)`:
/// several may listen to one event, they run in the order they were added,
/// and each returns a [`Listener`] whose [`remove`](Listener::remove) takes
/// it off again (Node's `off`). [`once_data`](Stream::once_data) and
/// [`once_drain`](Stream::once_drain) listen to the next event only; `end`
/// and `close` happen once, so their listeners are one-shot. The rules
/// (snapshot per event, panics, errors without a listener) are on
/// [`Listener`].
///
/// # Reading
///
/// Like a Node socket, a stream reads ahead up to 64 KiB before it has a
/// data listener and hands those bytes to the first [`on_data`](Stream::on_data)
/// listener (past 64 KiB the data waits in the kernel), so nothing is lost
/// between accept (or connect) and the moment you install your handlers;
/// the end of the stream is seen, and [`on_end`](Stream::on_end) runs, even
/// if you never read, once no unread bytes are left.
///
/// Readiness is edge-triggered, so a read drains the socket until
/// `WouldBlock` or a short read (at most 32 reads per turn, then it yields
/// to the other sources and continues in the next pending phase). While paused the
/// stream remembers that data is waiting and [`resume`](Stream::resume)
/// reads it, without waiting for an edge that will not come.
///
/// # Writing
///
/// [`write`](Stream::write) never blocks: what the kernel does not take at
/// once is queued. It returns `false` once the queue holds
/// [`high_water_mark`](Stream::set_high_water_mark) bytes or more (16 KiB
/// by default), and [`on_drain`](Stream::on_drain) fires when it empties: a
/// writer that waits for it keeps memory bounded. The data is accepted
/// either way. [`write_with`](Stream::write_with) callbacks run later, in
/// the pending phase, in the order of the writes.
///
/// # Ending and closing
///
/// [`end`](Stream::end) half-closes after the queue flushes. When the peer
/// half-closes, [`on_end`](Stream::on_end) fires and, unless
/// [`allow_half_open`](Stream::allow_half_open) was set, the stream ends its
/// side too (Node's default). Once both directions are done, or on
/// [`destroy`](Stream::destroy) or an error, the stream closes: the fd is
/// released at once, and queued write callbacks, [`on_error`](Stream::on_error)
/// and then [`on_close`](Stream::on_close) run later, in the close phase.
/// After that the stream drops its listeners (breaking any `Rc` cycle
/// through them), and keeps none added later.
///
/// A stream stays open while its handles are dropped (like a Node socket,
/// it lives until closed), and keeps the loop alive unless
/// [`unref`](Stream::unref)'d.
///
/// An echo server and a client on a loopback port (the `echo_server`
/// here is the one the methods' examples use):
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use evloop::net::{connect, TcpListener};
///
/// fn echo_server() -> std::net::SocketAddr {
///     let server = TcpListener::bind("127.0.0.1:0", |conn| {
///         let s = conn.unwrap();
///         let w = s.clone();
///         s.on_data(move |b| {
///             w.write(b);
///         });
///     })
///     .unwrap();
///     server.unref(); // served while the loop runs; does not keep it alive
///     server.local_addr()
/// }
///
/// let got = Rc::new(RefCell::new(String::new()));
/// let g = got.clone();
/// evloop::run(move || {
///     connect(echo_server(), move |r| {
///         let stream = r.expect("connected");
///         stream.on_data(move |chunk| g.borrow_mut().push_str(std::str::from_utf8(chunk).unwrap()));
///         stream.write(b"hello, ");
///         stream.write(b"loop");
///         stream.end(); // the server ends too, then both close
///     });
/// })
/// .unwrap();
/// assert_eq!(*got.borrow(), "hello, loop");
/// ```
#[derive(Clone)]
pub struct Stream {
    inner: Rc<StreamInner>,
}

/// Calls the error listeners; without one, hands the error back.
fn call_error(cbs: &Callbacks, arg: io::Error) -> Result<(), io::Error> {
    crate::listeners::emit_error_in(&cbs.error, &cbs.c, arg)
}

fn call_unit(list: &ListenerList<dyn FnMut()>, c: &Counters) {
    list.emit(c, |cb| cb());
}

impl Stream {
    /// Wraps a connected (or connecting) fd and registers it with the
    /// current loop.
    pub(crate) fn register(io: Box<dyn StreamIo>, connecting: bool) -> io::Result<Stream> {
        Stream::register_io(Io::Other(io), connecting)
    }

    /// [`register`](Stream::register) for a TCP socket, kept inline.
    pub(crate) fn register_tcp(sock: mio::net::TcpStream, connecting: bool) -> io::Result<Stream> {
        Stream::register_io(Io::Tcp(sock), connecting)
    }

    fn register_io(io: Io, connecting: bool) -> io::Result<Stream> {
        let lp = LoopRef::current();
        let fd = io.as_raw_fd();
        let kind = io.kind();
        let (read_side, write_side, pollable) =
            (io.has_read_side(), io.has_write_side(), io.pollable());
        let short_read_drains = io.short_read_drains();
        let inner = Rc::new(StreamInner {
            io: RefCell::new(io),
            watch: WatchSlot::default(),
            st: RefCell::new(State {
                readable: read_side,
                // A one-way fd starts with its other direction already done.
                read_eof: !read_side,
                end_emitted: !read_side,
                end_requested: !write_side,
                write_closed: !write_side,
                connecting,
                short_read_drains,
                read_batch: READS_PER_TURN,
                ..State::default()
            }),
            cbs: Callbacks::default(),
            extra: Cell::new(None),
            lp,
        });
        if !pollable {
            // Blocking writes never queue; nothing to watch, nothing that
            // keeps the loop alive (Node's stdout to a file or terminal).
            return Ok(Stream { inner });
        }
        // The registration owns a strong reference: an open stream lives
        // until it closes, whoever holds handles. `destroy` breaks the cycle.
        // The stream is its own reactor callback ([`OnReady`]): no closure
        // allocated per connection.
        let watch = watch_source(
            fd,
            Interest::READABLE | Interest::WRITABLE,
            kind,
            inner.clone(),
        )?;
        inner.watch.set(watch);
        Ok(Stream { inner })
    }

    pub(crate) fn set_connect_callback(&self, cb: ConnectCb) {
        let old = self.inner.cbs.connect.replace(Some(Box::new(cb)));
        drop(old);
    }

    /// A handle that does not keep the stream alive (for a connection
    /// attempt that an abort may close).
    pub(crate) fn downgrade(&self) -> WeakStream {
        WeakStream(Rc::downgrade(&self.inner))
    }

    /// Closes at once without reporting anything: a connection attempt
    /// given up (aborted), whose callback reports instead.
    pub(crate) fn destroy_quietly(&self) {
        self.inner.destroy_quietly();
    }

    /// Closes at once with `err`: `on_error` gets it (unless it is an
    /// [`AbortError`], which is never uncaught), then `on_close(true)`.
    pub(crate) fn destroy_with(&self, err: io::Error) {
        self.inner.destroy(Some(err));
    }

    /// Ties the stream's life to `signal` (Node's `{ signal }` option of
    /// `net.connect`, after the connection is made): when it aborts, the
    /// stream is destroyed with the [`AbortError`]. The stream keeps the
    /// signal alive until it closes; closing removes the listener.
    pub(crate) fn bind_signal(&self, signal: &AbortSignal) {
        if self.is_closed() {
            return;
        }
        if let Some(reason) = signal.reason() {
            self.destroy_with(AbortError::new(reason).into());
            return;
        }
        let weak = Rc::downgrade(&self.inner);
        let listener = signal.on_abort_op(move |reason| {
            if let Some(inner) = weak.upgrade() {
                log::debug!("stream destroyed by its signal");
                inner.destroy(Some(AbortError::new(reason.clone()).into()));
            }
        });
        let old = self
            .inner
            .with_extra(|x| x.signal.replace((signal.clone(), listener)));
        if let Some((_, l)) = old {
            l.remove();
        }
    }

    /// Adds a listener called with each chunk read, and starts reading
    /// (Node's `on('data')`, which switches a socket to flowing mode);
    /// returns the [`Listener`] that removes it. Every data listener gets
    /// every chunk, in the order they were added; one added during a chunk
    /// gets the next (the rules are on [`Listener`]). Once the last is
    /// removed, the stream reads ahead again (up to 64 KiB). A chunk
    /// is at most 64 KiB, and a stream reads at most 32 chunks per loop
    /// iteration: a peer that sends faster than that waits for the next
    /// iteration, so it cannot starve the loop's other sources.
    ///
    /// ```
    /// # use std::{cell::{Cell, RefCell}, rc::Rc};
    /// # use evloop::net::{connect, TcpListener};
    /// # fn echo_server() -> std::net::SocketAddr {
    /// #     let server = TcpListener::bind("127.0.0.1:0", |conn| {
    /// #         let s = conn.unwrap();
    /// #         let w = s.clone();
    /// #         s.on_data(move |b| { w.write(b); });
    /// #     })
    /// #     .unwrap();
    /// #     server.unref();
    /// #     server.local_addr()
    /// # }
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// let g = got.clone();
    /// evloop::run(move || {
    ///     // `echo_server()`: a TcpListener on 127.0.0.1:0 that writes back what
    ///     // it reads (see `Stream`).
    ///     connect(echo_server(), move |r| {
    ///         let stream = r.unwrap();
    ///         stream.on_data(move |chunk| g.borrow_mut().extend_from_slice(chunk));
    ///         stream.write(b"hello");
    ///         stream.end();
    ///     });
    /// })
    /// .unwrap();
    /// assert_eq!(*got.borrow(), b"hello");
    /// ```
    pub fn on_data(&self, cb: impl FnMut(&[u8]) + 'static) -> Listener {
        let l = self.listen(DATA, |cbs| cbs.data.add(&cbs.c, Box::new(cb)));
        self.inner.schedule_read();
        l
    }

    /// Calls `cb` with the next chunk only (Node's `once('data')`), and
    /// starts reading. Once it has run, and if no other data listener is
    /// there, the stream reads ahead again (up to 64 KiB) instead of
    /// losing data. Returns the [`Listener`] that removes it before then.
    ///
    /// ```
    /// # use std::{cell::RefCell, rc::Rc};
    /// # use evloop::net::{connect, TcpListener};
    /// # fn echo_server() -> std::net::SocketAddr {
    /// #     let server = TcpListener::bind("127.0.0.1:0", |conn| {
    /// #         let s = conn.unwrap();
    /// #         let w = s.clone();
    /// #         s.on_data(move |b| { w.write(b); });
    /// #     })
    /// #     .unwrap();
    /// #     server.unref();
    /// #     server.local_addr()
    /// # }
    /// let first = Rc::new(RefCell::new(Vec::new()));
    /// let f = first.clone();
    /// evloop::run(move || {
    ///     connect(echo_server(), move |r| {
    ///         let stream = r.unwrap();
    ///         let s = stream.clone();
    ///         stream.once_data(move |chunk| {
    ///             f.borrow_mut().extend_from_slice(chunk);
    ///             s.destroy();
    ///         });
    ///         stream.write(b"ping");
    ///     });
    /// })
    /// .unwrap();
    /// assert_eq!(*first.borrow(), b"ping");
    /// ```
    pub fn once_data(&self, cb: impl FnOnce(&[u8]) + 'static) -> Listener {
        let mut cb = Some(cb);
        let l = self.listen(DATA, |cbs| {
            cbs.data.add_once(
                &cbs.c,
                Box::new(move |b: &[u8]| {
                    if let Some(cb) = cb.take() {
                        cb(b)
                    }
                }),
            )
        });
        self.inner.schedule_read();
        l
    }

    /// Adds a listener with `add` (which returns its id) and builds its
    /// handle; once the stream has closed and dropped its listeners, keeps
    /// nothing (its events are over) and returns a detached handle.
    fn listen(&self, event: u8, add: impl FnOnce(&Callbacks) -> u32) -> Listener {
        if self.inner.st.borrow().released {
            return Listener::detached();
        }
        let id = add(&self.inner.cbs);
        let owner = Rc::downgrade(&self.inner);
        Listener::new(owner, event, id)
    }

    /// Adds a listener called once when the peer has ended its side (EOF),
    /// after the last data (Node's `'end'`); returns the [`Listener`] that
    /// removes it. Listeners run in the order they were added.
    ///
    /// ```
    /// # use std::{cell::{Cell, RefCell}, rc::Rc};
    /// # use evloop::net::{connect, TcpListener};
    /// # fn echo_server() -> std::net::SocketAddr {
    /// #     let server = TcpListener::bind("127.0.0.1:0", |conn| {
    /// #         let s = conn.unwrap();
    /// #         let w = s.clone();
    /// #         s.on_data(move |b| { w.write(b); });
    /// #     })
    /// #     .unwrap();
    /// #     server.unref();
    /// #     server.local_addr()
    /// # }
    /// let ended = Rc::new(Cell::new(false));
    /// let e = ended.clone();
    /// evloop::run(move || {
    ///     connect(echo_server(), move |r| {
    ///         let stream = r.unwrap();
    ///         stream.on_data(|_| {}); // reading must start for EOF to be seen
    ///         stream.on_end(move || e.set(true));
    ///         stream.end(); // the echo server ends its side in turn
    ///     });
    /// })
    /// .unwrap();
    /// assert!(ended.get());
    /// ```
    pub fn on_end(&self, cb: impl FnOnce() + 'static) -> Listener {
        let mut cb = Some(cb);
        self.listen(END, |cbs| {
            cbs.end.add_once(
                &cbs.c,
                Box::new(move || {
                    if let Some(cb) = cb.take() {
                        cb()
                    }
                }),
            )
        })
    }

    /// Adds a listener called each time the write queue empties after
    /// [`write`](Stream::write) returned `false` (Node's `on('drain')`);
    /// returns the [`Listener`] that removes it. To wait for one drain,
    /// [`once_drain`](Stream::once_drain).
    ///
    /// ```
    /// # use std::{cell::{Cell, RefCell}, rc::Rc};
    /// # use evloop::net::{connect, TcpListener};
    /// # fn echo_server() -> std::net::SocketAddr {
    /// #     let server = TcpListener::bind("127.0.0.1:0", |conn| {
    /// #         let s = conn.unwrap();
    /// #         let w = s.clone();
    /// #         s.on_data(move |b| { w.write(b); });
    /// #     })
    /// #     .unwrap();
    /// #     server.unref();
    /// #     server.local_addr()
    /// # }
    /// let drained = Rc::new(Cell::new(false));
    /// let d = drained.clone();
    /// evloop::run(move || {
    ///     connect(echo_server(), move |r| {
    ///         let stream = r.unwrap();
    ///         stream.on_data(|_| {}); // read (and drop) the echo
    ///         // More than the kernel buffers hold: the rest waits in the queue.
    ///         let more = stream.write(&vec![0u8; 16 << 20]);
    ///         assert!(!more);
    ///         let s = stream.clone();
    ///         stream.on_drain(move || {
    ///             d.set(true);
    ///             s.end();
    ///         });
    ///     });
    /// })
    /// .unwrap();
    /// assert!(drained.get());
    /// ```
    pub fn on_drain(&self, cb: impl FnMut() + 'static) -> Listener {
        self.listen(DRAIN, |cbs| cbs.drain.add(&cbs.c, Box::new(cb)))
    }

    /// Calls `cb` at the next `'drain'` only (Node's `once('drain')`, the
    /// usual way to wait after [`write`](Stream::write) returned `false`).
    /// Returns the [`Listener`] that removes it before then.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use evloop::net::{connect, TcpListener};
    /// # fn echo_server() -> std::net::SocketAddr {
    /// #     let server = TcpListener::bind("127.0.0.1:0", |conn| {
    /// #         let s = conn.unwrap();
    /// #         let w = s.clone();
    /// #         s.on_data(move |b| { w.write(b); });
    /// #     })
    /// #     .unwrap();
    /// #     server.unref();
    /// #     server.local_addr()
    /// # }
    /// let drains = Rc::new(Cell::new(0));
    /// let d = drains.clone();
    /// evloop::run(move || {
    ///     connect(echo_server(), move |r| {
    ///         let stream = r.unwrap();
    ///         stream.on_data(|_| {});
    ///         if !stream.write(&vec![0u8; 16 << 20]) {
    ///             let s = stream.clone();
    ///             stream.once_drain(move || {
    ///                 d.set(d.get() + 1);
    ///                 s.end();
    ///             });
    ///         }
    ///     });
    /// })
    /// .unwrap();
    /// assert_eq!(drains.get(), 1);
    /// ```
    pub fn once_drain(&self, cb: impl FnOnce() + 'static) -> Listener {
        let mut cb = Some(cb);
        self.listen(DRAIN, |cbs| {
            cbs.drain.add_once(
                &cbs.c,
                Box::new(move || {
                    if let Some(cb) = cb.take() {
                        cb()
                    }
                }),
            )
        })
    }

    /// Adds a listener called with the error that closes the stream (Node's
    /// `'error'`; each listener gets its own copy of the `io::Error`), and
    /// returns the [`Listener`] that removes it; `on_close` follows.
    /// Without any, the error is an uncaught error, as an
    /// `'error'` event with no listener is in Node: the [uncaught-exception
    /// handler](crate::on_uncaught_exception) gets it, or the loop stops
    /// and `run()` returns [`Error::UnhandledError`](crate::Error::UnhandledError);
    /// `on_close` still gets `true`.
    ///
    /// ```
    /// use std::{cell::RefCell, io::ErrorKind, rc::Rc, time::Duration};
    ///
    /// // A peer that resets the connection (closes with SO_LINGER 0) when
    /// // told to, once the client is connected.
    /// let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = peer.local_addr().unwrap();
    /// let (go, wait) = std::sync::mpsc::channel::<()>();
    /// let resetter = std::thread::spawn(move || {
    ///     let (conn, _) = peer.accept().unwrap();
    ///     wait.recv().unwrap();
    ///     socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO)).unwrap();
    /// });
    /// let kind = Rc::new(RefCell::new(None));
    /// let k = kind.clone();
    /// evloop::run(move || {
    ///     evloop::net::connect(addr, move |r| {
    ///         let stream = r.unwrap();
    ///         stream.on_data(|_| {});
    ///         stream.on_error(move |e| *k.borrow_mut() = Some(e.kind()));
    ///         stream.on_close(|had_error| assert!(had_error));
    ///         go.send(()).unwrap();
    ///     });
    /// })
    /// .expect("on_error handled it");
    /// resetter.join().unwrap();
    /// assert_eq!(*kind.borrow(), Some(ErrorKind::ConnectionReset));
    /// ```
    pub fn on_error(&self, cb: impl FnMut(io::Error) + 'static) -> Listener {
        self.listen(ERROR, |cbs| cbs.error.add(&cbs.c, Box::new(cb)))
    }

    /// Adds a listener called once, in the close phase, when the stream has
    /// closed; its argument says whether an error closed it (Node's
    /// `'close'`). Returns the [`Listener`] that removes it. Listeners run
    /// in the order they were added; one added after the close is not kept.
    ///
    /// ```
    /// # use std::{cell::{Cell, RefCell}, rc::Rc};
    /// # use evloop::net::{connect, TcpListener};
    /// # fn echo_server() -> std::net::SocketAddr {
    /// #     let server = TcpListener::bind("127.0.0.1:0", |conn| {
    /// #         let s = conn.unwrap();
    /// #         let w = s.clone();
    /// #         s.on_data(move |b| { w.write(b); });
    /// #     })
    /// #     .unwrap();
    /// #     server.unref();
    /// #     server.local_addr()
    /// # }
    /// let closed = Rc::new(Cell::new(None));
    /// let c = closed.clone();
    /// evloop::run(move || {
    ///     connect(echo_server(), move |r| {
    ///         let stream = r.unwrap();
    ///         stream.on_close(move |had_error| c.set(Some(had_error)));
    ///         stream.destroy();
    ///         assert!(stream.is_closed()); // at once; `on_close` runs later
    ///     });
    /// })
    /// .unwrap();
    /// assert_eq!(closed.get(), Some(false));
    /// ```
    pub fn on_close(&self, cb: impl FnOnce(bool) + 'static) -> Listener {
        self.listen(CLOSE, |cbs| {
            cbs.close.add_once(&cbs.c, crate::listeners::once_fn(cb))
        })
    }

    /// Writes `data`; see [`write_with`](Stream::write_with). Returns
    /// whether the caller may keep writing (`false` once the queue reaches
    /// the [high-water mark](Stream::set_high_water_mark); wait for
    /// [`on_drain`](Stream::on_drain) then).
    ///
    /// ```
    /// # use std::{cell::{Cell, RefCell}, rc::Rc};
    /// # use evloop::net::{connect, TcpListener};
    /// # fn echo_server() -> std::net::SocketAddr {
    /// #     let server = TcpListener::bind("127.0.0.1:0", |conn| {
    /// #         let s = conn.unwrap();
    /// #         let w = s.clone();
    /// #         s.on_data(move |b| { w.write(b); });
    /// #     })
    /// #     .unwrap();
    /// #     server.unref();
    /// #     server.local_addr()
    /// # }
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// let g = got.clone();
    /// evloop::run(move || {
    ///     connect(echo_server(), move |r| {
    ///         let stream = r.unwrap();
    ///         assert!(stream.write(b"ping ")); // small: far below the mark
    ///         assert!(stream.write(b"pong"));
    ///         stream.on_data(move |chunk| g.borrow_mut().extend_from_slice(chunk));
    ///         stream.end();
    ///     });
    /// })
    /// .unwrap();
    /// assert_eq!(*got.borrow(), b"ping pong");
    /// ```
    pub fn write(&self, data: &[u8]) -> bool {
        self.inner.write(data, None)
    }

    /// Writes `data` and calls `cb` once: with `Ok` when the kernel has
    /// taken all of it, or with the error if the stream fails or closes
    /// first. Returns whether the caller may keep writing (`false` once the
    /// queue reaches the high-water mark); the data is accepted either way.
    /// Writing after [`end`](Stream::end) or a close fails the callback
    /// with `BrokenPipe` and returns `false`.
    ///
    /// ```
    /// # use std::{cell::{Cell, RefCell}, rc::Rc};
    /// # use evloop::net::{connect, TcpListener};
    /// # fn echo_server() -> std::net::SocketAddr {
    /// #     let server = TcpListener::bind("127.0.0.1:0", |conn| {
    /// #         let s = conn.unwrap();
    /// #         let w = s.clone();
    /// #         s.on_data(move |b| { w.write(b); });
    /// #     })
    /// #     .unwrap();
    /// #     server.unref();
    /// #     server.local_addr()
    /// # }
    /// use std::io::ErrorKind;
    ///
    /// let results = Rc::new(RefCell::new(Vec::new()));
    /// let r2 = results.clone();
    /// evloop::run(move || {
    ///     connect(echo_server(), move |r| {
    ///         let stream = r.unwrap();
    ///         stream.on_data(|_| {}); // read the echo (and see the server's end)
    ///         let a = r2.clone();
    ///         stream.write_with(b"sent", move |r| a.borrow_mut().push(r.map_err(|e| e.kind())));
    ///         stream.end();
    ///         let b = r2.clone();
    ///         let more = stream.write_with(b"too late", move |r| b.borrow_mut().push(r.map_err(|e| e.kind())));
    ///         assert!(!more);
    ///     });
    /// })
    /// .unwrap();
    /// assert_eq!(*results.borrow(), [Ok(()), Err(ErrorKind::BrokenPipe)]);
    /// ```
    pub fn write_with(&self, data: &[u8], cb: impl FnOnce(io::Result<()>) + 'static) -> bool {
        self.inner.write(data, Some(Box::new(cb)))
    }

    /// Half-closes: sends FIN once every queued write is flushed (Node's
    /// `end()`). Reading goes on until the peer ends too.
    ///
    /// ```
    /// # use std::{cell::{Cell, RefCell}, rc::Rc};
    /// # use evloop::net::{connect, TcpListener};
    /// # fn echo_server() -> std::net::SocketAddr {
    /// #     let server = TcpListener::bind("127.0.0.1:0", |conn| {
    /// #         let s = conn.unwrap();
    /// #         let w = s.clone();
    /// #         s.on_data(move |b| { w.write(b); });
    /// #     })
    /// #     .unwrap();
    /// #     server.unref();
    /// #     server.local_addr()
    /// # }
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// let g = got.clone();
    /// evloop::run(move || {
    ///     connect(echo_server(), move |r| {
    ///         let stream = r.unwrap();
    ///         stream.write(b"bye");
    ///         stream.end(); // after "bye" is flushed
    ///         // Still reading: the echo arrives after our end.
    ///         stream.on_data(move |chunk| g.borrow_mut().extend_from_slice(chunk));
    ///     });
    /// })
    /// .unwrap();
    /// assert_eq!(*got.borrow(), b"bye");
    /// ```
    pub fn end(&self) {
        self.inner.end();
    }

    /// Closes at once: queued writes fail, `on_close` follows in the close
    /// phase (Node's `destroy()`). Closing twice does nothing.
    pub fn destroy(&self) {
        self.inner.destroy(None);
    }

    /// Stops calling `on_data` until [`resume`](Stream::resume); data
    /// waits in the kernel (read backpressure).
    pub fn pause(&self) {
        self.inner.st.borrow_mut().paused = true;
    }

    /// Resumes reading, including data that arrived while paused.
    pub fn resume(&self) {
        self.inner.st.borrow_mut().paused = false;
        self.inner.schedule_read();
    }

    /// Whether the read side is over: the end was delivered, or the stream
    /// was destroyed (a read now would wait forever).
    pub(crate) fn read_finished(&self) -> bool {
        let st = self.inner.st.borrow();
        st.end_emitted || st.destroyed
    }

    /// Whether reading is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.st.borrow().paused
    }

    /// Keeps the writable side open when the peer ends (Node's
    /// `allowHalfOpen`); by default the stream ends too.
    pub fn allow_half_open(&self, allow: bool) -> &Self {
        self.inner.st.borrow_mut().allow_half_open = allow;
        self
    }

    /// Sets a hard cap on the bytes queued in user space (none by default,
    /// as in Node). A write that would queue more fails: its callback gets
    /// an error of kind `OutOfMemory` (`ENOBUFS`), and the stream is
    /// destroyed with that error (`on_error`, then `on_close`), so a writer
    /// that ignores [`write`](Stream::write)'s `false` cannot grow memory
    /// without bound (Redis's `client-output-buffer-limit`; reliability
    /// test T36).
    pub fn set_max_write_queue(&self, bytes: Option<usize>) -> &Self {
        let mut st = self.inner.st.borrow_mut();
        st.cold().max_write_queue = bytes;
        st.trim_cold();
        self
    }

    /// How many reads (of up to 64 KiB each) the stream makes in one batch
    /// while data keeps coming; the rest waits for the next loop iteration,
    /// after the other sources had their turn. The default, 32, is libuv's.
    /// A server whose work per byte is heavy (a pipelined protocol that
    /// runs a command per few bytes) can lower it so that one busy client
    /// delays the others less; 0 counts as 1.
    ///
    /// ```
    /// evloop::run(|| {
    ///     let server = evloop::net::TcpListener::bind("127.0.0.1:0", |conn| {
    ///         if let Ok(stream) = conn {
    ///             stream.set_read_batch(1); // 64 KiB per iteration at most
    ///         }
    ///     })
    ///     .unwrap();
    ///     server.close();
    /// })
    /// .unwrap();
    /// ```
    pub fn set_read_batch(&self, reads: u32) -> &Self {
        self.inner.st.borrow_mut().read_batch = reads.max(1);
        self
    }

    /// Sets the write queue size at which [`write`](Stream::write) starts
    /// returning `false`.
    pub fn set_high_water_mark(&self, bytes: usize) -> &Self {
        let mut st = self.inner.st.borrow_mut();
        st.cold().high_water_mark = bytes;
        st.trim_cold();
        self
    }

    /// Bytes accepted by `write` and not yet taken by the kernel (Node's
    /// `writableLength`).
    pub fn write_queue_len(&self) -> usize {
        self.inner.st.borrow().queued_bytes()
    }

    /// Whether the stream has closed (or is closing).
    pub fn is_closed(&self) -> bool {
        self.inner.st.borrow().destroyed
    }

    /// Lets the loop exit while this stream is open.
    pub fn unref(&self) -> &Self {
        self.inner.watch.set_ref(false);
        self
    }

    /// Makes this stream keep the loop alive again (the default).
    pub fn ref_(&self) -> &Self {
        self.inner.watch.set_ref(true);
        self
    }

    fn with_tcp<R>(&self, f: impl FnOnce(&mio::net::TcpStream) -> io::Result<R>) -> io::Result<R> {
        let io = self.inner.io.borrow();
        let io = io.open().ok_or_else(closed_error)?;
        let tcp = io
            .tcp()
            .ok_or_else(|| io::Error::new(ErrorKind::Unsupported, "not a TCP stream"))?;
        f(tcp)
    }

    /// Disables (or enables) Nagle's algorithm (Node's `setNoDelay`); TCP
    /// only.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.with_tcp(|t| t.set_nodelay(nodelay))
    }

    /// Turns TCP keep-alive probes on or off (Node's `setKeepAlive`); TCP
    /// only.
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        // mio has no keep-alive setter; socket2 sets SO_KEEPALIVE on the
        // borrowed fd without taking ownership of it.
        self.with_tcp(|t| socket2::SockRef::from(t).set_keepalive(on))
    }

    /// The local address; TCP only.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with_tcp(|t| t.local_addr())
    }

    /// The peer's address; TCP only.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with_tcp(|t| t.peer_addr())
    }

    /// The fd, while open.
    pub fn as_raw_fd(&self) -> Option<RawFd> {
        self.inner.io.borrow().open().map(|io| io.as_raw_fd())
    }
}

/// A [`Stream`] handle that does not keep it alive.
pub(crate) struct WeakStream(std::rc::Weak<StreamInner>);

impl WeakStream {
    /// The stream, if it still exists.
    pub(crate) fn upgrade(&self) -> Option<Stream> {
        self.0.upgrade().map(|inner| Stream { inner })
    }
}

fn closed_error() -> io::Error {
    io::Error::new(ErrorKind::NotConnected, "stream is closed")
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("Stream")
            .field("fd", &self.as_raw_fd())
            .field("paused", &st.paused)
            .field("queued_bytes", &st.queued_bytes())
            .field("ended", &st.end_requested)
            .field("read_eof", &st.read_eof)
            .field("closed", &st.destroyed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_idle_stream_is_small() {
        // Memory per idle connection counts (issue 25): print the size, and
        // keep it from growing back unnoticed.
        let size = std::mem::size_of::<super::StreamInner>();
        eprintln!("StreamInner: {size} bytes");
        eprintln!(
            "io {} watch {} state {} callbacks {}",
            std::mem::size_of::<std::cell::RefCell<super::Io>>(),
            std::mem::size_of::<crate::reactor::WatchSlot>(),
            std::mem::size_of::<std::cell::RefCell<super::State>>(),
            std::mem::size_of::<super::Callbacks>(),
        );
        assert!(size <= 288, "StreamInner is {size} bytes");
    }
}
