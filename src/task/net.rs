//! Async sockets on the loop's reactor, in tokio's shape: [`TcpListener`],
//! [`TcpStream`], [`UdpSocket`], [`UnixListener`] and [`UnixStream`].
//!
//! ```
//! use evloop::task::net::{TcpListener, TcpStream};
//!
//! evloop::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     let server = evloop::spawn(async move {
//!         let (mut conn, _) = listener.accept().await.unwrap();
//!         let mut buf = [0; 5];
//!         conn.read_exact(&mut buf).await.unwrap();
//!         conn.write_all(&buf).await.unwrap(); // echo
//!     });
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"hello").await?;
//!     let mut back = [0; 5];
//!     client.read_exact(&mut back).await?;
//!     assert_eq!(&back, b"hello");
//!     server.await.unwrap();
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap()
//! .unwrap();
//! ```
//!
//! # How readiness reaches a task
//!
//! Each socket registers once with the reactor (for reading and writing)
//! when it is made, with a callback that records the readable / writable
//! edge and wakes the task waiting for that direction. An operation tries
//! its syscall unless the direction is known to be drained; on `WouldBlock`
//! it clears the flag, stores the task's waker (cloned only if it would not
//! wake the same task) and returns `Pending`. The futures are plain state
//! borrowing the socket and the buffer: nothing is allocated per read or
//! write (a [`read_chunk`](TcpStream::read_chunk) leases a pooled buffer,
//! allocated only when the pool is empty).
//!
//! A stream read that fills only part of the buffer also clears the flag
//! (as tokio does on Linux): with edge-triggered epoll a short read means
//! the socket's buffer was emptied, and new data brings a new edge. That
//! saves the `WouldBlock` read a request-response loop would otherwise make
//! each round. A closed or failed direction stays ready for good, so its
//! EOF or error is always read (no new edge would come for it).
//!
//! One waker is kept per direction: if two tasks wait to read (or accept,
//! or receive) on the same socket at once, only the last one to poll is
//! woken.
//!
//! Dropping a socket deregisters it at once (before its fd is closed);
//! dropping a pending operation leaves its waker in the socket until the
//! next operation in that direction replaces it or the socket is dropped
//! (as tokio's does; a stale wake only polls the task once more), and an
//! edge that came meanwhile stays recorded for the next operation. Taking
//! the waker back on every drop cost ~8% of an async echo round trip's
//! instructions, for nothing a user could observe. A socket keeps the loop
//! alive while it exists, as a Node socket does while open.
//!
//! # Idle connections: `read_chunk`
//!
//! `read(&mut buf)` needs the buffer while it waits, so a server that
//! reads that way holds a buffer per connection, idle or not (16 KiB each
//! is 160 MB for 10,000 idle clients; tokio's examples do the same).
//! [`TcpStream::read_chunk`] waits for readiness holding nothing, then
//! reads into a buffer leased from the loop thread's pool and returns it as
//! a [`Chunk`] that gives the buffer back when dropped (see
//! [`task::chunk`](crate::task::chunk)); [`readable`](TcpStream::readable)
//! and [`try_read`](TcpStream::try_read) are tokio's shape of the same
//! idea, with a buffer of your own. The async echo server
//! (`examples/echo_server_async.rs`) holds about 0.6 KiB per idle
//! connection that way (the task, its state, the socket's registration);
//! with a `[0; 16 * 1024]` it held 17 KiB.
//!
//! ```
//! use evloop::task::net::TcpStream;
//!
//! async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
//!     loop {
//!         let chunk = stream.read_chunk().await?; // no buffer while idle
//!         if chunk.is_empty() {
//!             return Ok(()); // EOF
//!         }
//!         stream.write_all(&chunk).await?; // the chunk is owned across .await
//!     }
//! }
//! ```
//!
//! # Cancellation: aborting, timeouts, `select`
//!
//! An operation is cancelled by dropping its future before it completes:
//! racing it against an [`AbortSignal`] (`signal.race(stream.read(&mut
//! buf)).await`, which gives `Err(AbortError)` and drops the read when
//! the signal aborts first), [`timeout`](crate::task::timeout), or a
//! `select`. Whether that loses anything depends on the operation, as
//! tokio documents it ("cancel safety"):
//!
//! | operation | cancel-safe | what a cancelled one did |
//! |---|---|---|
//! | `read`, `recv_from` | yes | nothing: no byte (datagram) was taken; the next read gets it |
//! | `read_chunk` | yes | nothing: no byte was taken, and no buffer is held (a buffer leased for a read that would block goes back to the pool in the same poll) |
//! | `readable` | yes | nothing (readiness is only observed); `try_read` never waits, so it cannot be cancelled |
//! | `write`, `send_to` | yes | nothing: no byte was written (a write that wrote some completed with that count) |
//! | `accept` | yes | nothing: no connection was taken from the backlog |
//! | `read_exact` | **no** | bytes already read into `buf` are lost to the next read |
//! | `write_all` | **no** | a part of `buf` may have been written: the stream's framing is then unknown |
//! | `connect`, `connect_with_signal` | yes | the connection attempt is closed (socket deregistered, fd closed) |
//!
//! A single `read`, `write` or `accept` makes its syscall only inside the
//! poll that returns `Ready` with its result, so a cancelled one has done
//! nothing. In a loop of `read_exact`s or `write_all`s that must be
//! abortable, race the whole job (and drop the stream) rather than each
//! call, or keep the progress yourself around single `read`s and `write`s.
//! Nothing of a cancelled operation keeps the loop alive: only the socket
//! does, until dropped; its waker stays until the next operation replaces
//! it, as with tokio.
//!
//! ```
//! use std::time::Duration;
//! use evloop::abort::AbortSignal;
//! use evloop::task::net::{TcpListener, TcpStream};
//!
//! evloop::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let signal = AbortSignal::timeout(Duration::from_millis(10));
//!     let mut client =
//!         TcpStream::connect_with_signal(listener.local_addr()?, &signal).await?;
//!     let (mut conn, _) = listener.accept().await?;
//!     let mut buf = [0; 16];
//!     // Nothing comes within 10 ms: the read is cancelled, nothing lost.
//!     assert!(signal.race(client.read(&mut buf)).await.is_err());
//!     conn.write_all(b"late").await?;
//!     let n = client.read(&mut buf).await?;
//!     assert_eq!(&buf[..n], b"late");
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap()
//! .unwrap();
//! ```
//!
//! # Splitting: one task reads while others write
//!
//! [`TcpStream::split`] (borrowed halves, no allocation) and
//! [`TcpStream::into_split`] (owned halves sharing the stream through an
//! `Rc`, for different tasks; [`OwnedReadHalf::reunite`] undoes it) give
//! a [`ReadHalf`] and a [`WriteHalf`] whose operations can be in flight at
//! once: each direction has its own waker. Dropping an
//! [`OwnedWriteHalf`] shuts the writing side down, as tokio does. The
//! streams and the halves implement [`task::io`](crate::task::io)'s
//! traits, for [`copy`](crate::task::io::copy) and
//! [`copy_bidirectional`](crate::task::io::copy_bidirectional).
//!
//! All methods must be called on the loop thread, with that loop current
//! (inside a task, [`block_on`](crate::block_on) or a loop callback).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use mio::Interest;

use super::chunk::Chunk;
use crate::abort::AbortSignal;
use crate::net::{Acceptor, Listen, Step, Target, ToAddrs};
use crate::reactor::{watch_source, OnReady, Ready, Watch};

pub use super::split::{
    OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, SplitStream, WriteHalf,
};

/// Which half of a socket an operation waits on.
#[derive(Clone, Copy)]
enum Dir {
    Read,
    Write,
}

/// One direction's readiness: the last edge and the task waiting for it.
struct Half {
    /// Not known to be drained: the next operation tries its syscall.
    /// Set by every edge; cleared by `WouldBlock` and by a short stream
    /// read.
    ready: Cell<bool>,
    /// The peer closed this direction, or the socket has an error: ready
    /// for good (sticky).
    closed: Cell<bool>,
    /// A `Cell`, not a `RefCell`: taken and put back, never borrowed (no
    /// borrow flag: 16 bytes less per socket).
    waker: Cell<Option<Waker>>,
}

impl Default for Half {
    /// Ready: nothing is known yet, so the first operation tries.
    fn default() -> Self {
        Half {
            ready: Cell::new(true),
            closed: Cell::new(false),
            waker: Cell::new(None),
        }
    }
}

impl Half {
    fn is_ready(&self) -> bool {
        self.ready.get() || self.closed.get()
    }

    fn wake(&self, closed: bool) {
        self.ready.set(true);
        if closed {
            self.closed.set(true);
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    fn park(&self, cx: &Context<'_>) {
        self.ready.set(false);
        let w = match self.waker.take() {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        };
        self.waker.set(Some(w));
    }
}

/// What the reactor callback shares with the socket.
#[derive(Default)]
struct Readiness {
    read: Half,
    write: Half,
}

impl OnReady for Readiness {
    fn on_ready(self: Rc<Self>, ready: Ready) {
        self.on_event(ready)
    }
}

impl Readiness {
    fn half(&self, dir: Dir) -> &Half {
        match dir {
            Dir::Read => &self.read,
            Dir::Write => &self.write,
        }
    }

    fn on_event(&self, ready: Ready) {
        let read_closed = ready.is_read_closed() || ready.is_error();
        if ready.is_readable() || read_closed {
            self.read.wake(read_closed);
        }
        let write_closed = ready.is_write_closed() || ready.is_error();
        if ready.is_writable() || write_closed {
            self.write.wake(write_closed);
        }
    }
}

/// A mio socket registered with the current loop.
///
/// Field order matters: the watch is dropped (deregistered) before the fd
/// is closed, as the [`watch`](crate::watch) contract asks.
struct PollIo<T: AsRawFd> {
    watch: Watch,
    readiness: Rc<Readiness>,
    io: T,
}

impl<T: AsRawFd> PollIo<T> {
    fn new(io: T, interest: Interest, kind: &'static str) -> io::Result<Self> {
        let readiness = Rc::new(Readiness::default());
        // The readiness state is the reactor's source itself: no closure
        // is allocated per socket.
        let watch = watch_source(io.as_raw_fd(), interest, kind, readiness.clone())?;
        Ok(PollIo {
            watch,
            readiness,
            io,
        })
    }

    /// Runs `op` until it does not return `WouldBlock` (parking the task
    /// when it does) or `Interrupted`. Parks without calling `op` while
    /// `dir` is known to be drained, and yields without calling it when the
    /// task has spent its [budget](super::TASK_BUDGET) for this poll.
    fn poll_op<R>(
        &self,
        cx: &Context<'_>,
        dir: Dir,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let half = self.readiness.half(dir);
        if !half.is_ready() {
            half.park(cx);
            return Poll::Pending;
        }
        // Ready, but the task may have had its share of this turn.
        let Some(budget) = super::coop::proceed(cx) else {
            return Poll::Pending;
        };
        loop {
            match op(&self.io) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    half.park(cx);
                    return Poll::Pending;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                r => {
                    super::coop::spend(budget);
                    return Poll::Ready(r);
                }
            }
        }
    }

    async fn op<R>(&self, dir: Dir, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_op(cx, dir, &mut op)).await
    }

    fn is_registered(&self) -> bool {
        self.watch.is_active()
    }
}

impl<T: AsRawFd> fmt::Debug for PollIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollIo")
            .field("fd", &self.io.as_raw_fd())
            .field("registered", &self.is_registered())
            .field("readable", &self.readiness.read.ready.get())
            .field("writable", &self.readiness.write.ready.get())
            .finish()
    }
}

impl<T: Listen> PollIo<T> {
    /// One poll of `accept`, with the policy every listener shares (see
    /// `src/net/listener.rs`): errors of the one connection that failed
    /// are skipped; out of fds, the backlog is shed, the error is returned
    /// once per burst, and accepting pauses for the back-off, whose timer
    /// wakes the read half again.
    fn poll_accept(
        &self,
        cx: &Context<'_>,
        acceptor: &Acceptor,
    ) -> Poll<io::Result<(T::Conn, T::Peer)>> {
        if acceptor.is_paused() {
            // Out of fds a moment ago: wait out the back-off.
            self.readiness.read.park(cx);
            return Poll::Pending;
        }
        self.poll_op(cx, Dir::Read, |io| loop {
            match acceptor.step(io) {
                Step::Conn(conn, peer) => return Ok((conn, peer)),
                Step::Drained => return Err(ErrorKind::WouldBlock.into()),
                Step::Again | Step::Transient(_) => continue,
                Step::OutOfFds(first) => {
                    let readiness = self.readiness.clone();
                    acceptor.pause(move || readiness.read.wake(false));
                    // Reported already in this burst: park (as for
                    // `WouldBlock`) until the back-off timer wakes us.
                    return Err(first.unwrap_or_else(|| ErrorKind::WouldBlock.into()));
                }
                Step::Failed(e) => return Err(e),
            }
        })
    }

    async fn accept(&self, acceptor: &Acceptor) -> io::Result<(T::Conn, T::Peer)> {
        poll_fn(|cx| self.poll_accept(cx, acceptor)).await
    }
}

/// A connected stream socket (TCP or Unix), for the shared stream code.
trait StreamSock: AsRawFd
where
    for<'a> &'a Self: Read + Write,
{
    fn take_error(&self) -> io::Result<Option<io::Error>>;
    /// `Ok` once connected; `NotConnected` while connecting.
    fn check_connected(&self) -> io::Result<()>;
}

impl StreamSock for mio::net::TcpStream {
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.take_error()
    }
    fn check_connected(&self) -> io::Result<()> {
        self.peer_addr().map(drop)
    }
}

impl StreamSock for mio::net::UnixStream {
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.take_error()
    }
    fn check_connected(&self) -> io::Result<()> {
        self.peer_addr().map(drop)
    }
}

impl<T: StreamSock> PollIo<T>
where
    for<'a> &'a T: Read + Write,
{
    /// Waits for a nonblocking connect to finish: writable, then no
    /// pending error and a peer.
    async fn connected(&self) -> io::Result<()> {
        poll_fn(|cx| {
            self.poll_op(cx, Dir::Write, |io| {
                if let Some(e) = io.take_error()? {
                    return Err(e);
                }
                match io.check_connected() {
                    // Still connecting (or a spurious edge): wait again.
                    Err(e) if e.kind() == ErrorKind::NotConnected => {
                        Err(ErrorKind::WouldBlock.into())
                    }
                    r => r,
                }
            })
        })
        .await
    }

    /// One stream read; a short one marks the read half drained (see the
    /// module docs).
    fn poll_read(&self, cx: &Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let len = buf.len();
        let r = self.poll_op(cx, Dir::Read, |mut io| io.read(buf));
        if let Poll::Ready(Ok(n)) = r {
            if 0 < n && n < len {
                self.readiness.read.ready.set(false);
            }
        }
        r
    }

    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    /// One poll of `read_chunk`: parks holding no buffer while the read
    /// half is drained; leases one only to make the read (and gives it
    /// back at once if the read would block).
    fn poll_read_chunk(&self, cx: &Context<'_>) -> Poll<io::Result<Chunk>> {
        let half = &self.readiness.read;
        if !half.is_ready() {
            half.park(cx);
            return Poll::Pending;
        }
        let mut chunk = Chunk::lease();
        match self.poll_read(cx, chunk.spare_mut()) {
            Poll::Ready(Ok(n)) => {
                chunk.set_len(n);
                Poll::Ready(Ok(chunk))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// One poll of `readable`: ready when the read half is not known to be
    /// drained (data, EOF or an error may be there; a `try_read` may still
    /// find nothing). Counts against the task's budget, as a read does.
    fn poll_readable(&self, cx: &Context<'_>) -> Poll<io::Result<()>> {
        let half = &self.readiness.read;
        if !half.is_ready() {
            half.park(cx);
            return Poll::Pending;
        }
        let Some(budget) = super::coop::proceed(cx) else {
            return Poll::Pending;
        };
        super::coop::spend(budget);
        Poll::Ready(Ok(()))
    }

    /// A read that never waits: `WouldBlock` (without a syscall when the
    /// read half is known to be drained) if no data is there; like
    /// `poll_read`, `WouldBlock` and a short read mark the half drained, so
    /// the next `readable` waits for a new edge.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let half = &self.readiness.read;
        if !half.is_ready() {
            return Err(ErrorKind::WouldBlock.into());
        }
        loop {
            match (&self.io).read(buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    half.ready.set(false);
                    return Err(e);
                }
                Ok(n) if 0 < n && n < buf.len() => {
                    half.ready.set(false);
                    return Ok(n);
                }
                r => return r,
            }
        }
    }

    async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| self.poll_op(cx, Dir::Write, |mut io| io.write(buf))).await
    }

    async fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read(buf).await? {
                0 => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "end of stream before the buffer was filled",
                    ))
                }
                n => buf = &mut buf[n..],
            }
        }
        Ok(())
    }

    /// One `poll_fn` over the writes rather than a loop of `write`
    /// futures: the state a task holds while its write waits is one level
    /// deep (each idle connection holds that state).
    async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        poll_fn(|cx| {
            while !buf.is_empty() {
                match self.poll_op(cx, Dir::Write, |mut io| io.write(buf)) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => buf = &buf[n..],
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Ready(Ok(()))
        })
        .await
    }
}

/// The stream methods shared by [`TcpStream`] and [`UnixStream`], written
/// once over [`PollIo`].
macro_rules! stream_methods {
    () => {
        /// Reads into `buf`, waiting until some data (or EOF) is there.
        /// Returns the number of bytes read; `0` means the peer shut down
        /// its writing half (or `buf` is empty).
        pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.io.read(buf).await
        }

        /// Waits until data is there, then reads it into a buffer leased
        /// from the thread's pool (see [`Chunk`]) and returns it; an empty
        /// chunk means the peer shut down its writing half. While it waits
        /// the task holds **no buffer**: an idle connection costs no read
        /// buffer, and busy ones share a few. Dropping the chunk gives its
        /// buffer back. At most [`CHUNK_SIZE`](crate::task::chunk::CHUNK_SIZE)
        /// bytes per chunk.
        ///
        /// Cancel-safe, as `read` is: a cancelled `read_chunk` took no byte.
        ///
        /// ```
        /// # use evloop::task::net::TcpStream;
        /// async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
        ///     loop {
        ///         let chunk = stream.read_chunk().await?;
        ///         if chunk.is_empty() {
        ///             return Ok(()); // the peer closed
        ///         }
        ///         stream.write_all(&chunk).await?;
        ///     } // each chunk goes back to the pool here
        /// }
        /// ```
        pub async fn read_chunk(&mut self) -> io::Result<Chunk> {
            poll_fn(|cx| self.io.poll_read_chunk(cx)).await
        }

        /// Waits until the stream may be readable (tokio's `readable`):
        /// data, EOF or an error may be there. Pair it with
        /// [`try_read`](Self::try_read), which can still give
        /// `WouldBlock` (readiness is a hint); then wait again. Holds
        /// nothing while it waits. Cancel-safe.
        ///
        /// ```
        /// # use evloop::task::net::TcpStream;
        /// async fn first_bytes(stream: &TcpStream) -> std::io::Result<Vec<u8>> {
        ///     loop {
        ///         stream.readable().await?;
        ///         let mut buf = [0; 512]; // only once data is there
        ///         match stream.try_read(&mut buf) {
        ///             Ok(n) => return Ok(buf[..n].to_vec()),
        ///             Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
        ///             Err(e) => return Err(e),
        ///         }
        ///     }
        /// }
        /// ```
        pub async fn readable(&self) -> io::Result<()> {
            poll_fn(|cx| self.io.poll_readable(cx)).await
        }

        /// Reads what is there into `buf` without waiting (tokio's
        /// `try_read`): `Ok(0)` is EOF (or an empty `buf`), `WouldBlock`
        /// means nothing is there yet (wait with
        /// [`readable`](Self::readable)).
        pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
            self.io.try_read(buf)
        }

        /// Writes some of `buf`, waiting until the socket can take at least
        /// one byte. Returns how many bytes were written.
        pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.io.write(buf).await
        }

        /// Reads exactly `buf.len()` bytes; an `UnexpectedEof` error if the
        /// stream ends first (what was read by then is in `buf`).
        pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
            self.io.read_exact(buf).await
        }

        /// Writes all of `buf`, waiting as needed.
        pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            self.io.write_all(buf).await
        }

        /// Shuts the writing half down: the peer reads EOF once it has read
        /// what was written. Reading stays possible. It completes at once
        /// (writes are not buffered here); it is `async` for tokio's shape.
        pub async fn shutdown(&mut self) -> io::Result<()> {
            self.io.io.shutdown(Shutdown::Write)
        }

        // The same paths through `&self`, for the halves of
        // `src/task/split.rs` (which share the stream) and the
        // `task::io` traits.
        pub(super) fn poll_read_shared(
            &self,
            cx: &Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.io.poll_read(cx, buf)
        }

        pub(super) fn poll_read_chunk_shared(&self, cx: &Context<'_>) -> Poll<io::Result<Chunk>> {
            self.io.poll_read_chunk(cx)
        }

        pub(super) fn poll_write_shared(
            &self,
            cx: &Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.io.poll_op(cx, Dir::Write, |mut io| io.write(buf))
        }

        pub(super) fn shutdown_write(&self) -> io::Result<()> {
            self.io.io.shutdown(Shutdown::Write)
        }
    };
}

/// A TCP connection (tokio's `TcpStream`).
pub struct TcpStream {
    io: PollIo<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr`, any [`ToAddrs`] (`"127.0.0.1:80"`,
    /// `"localhost:80"`, `("localhost", 80)`, a `SocketAddr`, a list), as
    /// tokio's `TcpStream::connect`: a host name is resolved on the thread
    /// pool (never blocking the loop), then each address is tried in turn
    /// (sequentially, not Node's happy eyeballs) with a nonblocking connect
    /// and a wait until the socket is writable and its pending error, if
    /// any, is reported (for instance `ConnectionRefused`). If every
    /// address fails, the **last** error is returned. The future borrows
    /// nothing (`addr` is read at the call).
    ///
    /// ```
    /// use evloop::task::net::{TcpListener, TcpStream};
    ///
    /// evloop::block_on(async {
    ///     let listener = TcpListener::bind("localhost:0").await?;
    ///     let port = listener.local_addr()?.port();
    ///     let client = TcpStream::connect(("localhost", port)).await?;
    ///     assert_eq!(client.peer_addr()?, listener.local_addr()?);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn connect(addr: impl ToAddrs) -> impl Future<Output = io::Result<TcpStream>> + 'static {
        let target = Target::of(&addr);
        async move {
            let mut last = None;
            for addr in resolve(target).await? {
                match TcpStream::connect_one(addr).await {
                    Ok(stream) => return Ok(stream),
                    Err(e) => {
                        log::debug!("connect {addr}: {e}; trying the next address");
                        last = Some(e);
                    }
                }
            }
            Err(last.expect("resolve gives at least one address"))
        }
    }

    async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let sock = mio::net::TcpStream::connect(addr)?;
        let io = PollIo::new(sock, Interest::READABLE | Interest::WRITABLE, "async tcp")?;
        io.connected().await?;
        Ok(TcpStream { io })
    }

    /// [`connect`](TcpStream::connect), abortable (Node's
    /// `net.connect({ signal })`, the convention of
    /// [`abort`](crate::abort)): `Err` with the
    /// [`AbortError`](crate::abort::AbortError) (as an `io::Error`, see
    /// [`is_abort_error`](crate::abort::is_abort_error)) if `signal`
    /// aborts first; the attempt's socket is then deregistered and closed
    /// as the task resumes (in the checkpoint after the abort), before this
    /// returns. Already aborted when first polled, nothing starts. The
    /// future keeps its own clone of the signal (it borrows nothing). The signal covers the
    /// connect only: a stream connected first is yours, and a later abort
    /// does nothing to it (race its reads and writes with
    /// [`AbortSignal::race`] to cancel them, and drop it to close it).
    ///
    /// ```
    /// use evloop::abort::{is_abort_error, AbortController};
    /// use evloop::task::net::{TcpListener, TcpStream};
    ///
    /// evloop::block_on(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    ///     let controller = AbortController::new();
    ///     controller.abort(None);
    ///     let r = TcpStream::connect_with_signal(listener.local_addr().unwrap(), &controller.signal()).await;
    ///     assert!(is_abort_error(&r.unwrap_err()));
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn connect_with_signal(
        addr: impl ToAddrs,
        signal: &AbortSignal,
    ) -> impl Future<Output = io::Result<TcpStream>> + 'static {
        // The future holds its own clone: it borrows nothing, and a
        // temporary signal still fires.
        let signal = signal.clone();
        let connect = TcpStream::connect(addr);
        async move {
            signal.throw_if_aborted()?;
            signal.race(connect).await?
        }
    }

    fn accepted(sock: mio::net::TcpStream) -> io::Result<TcpStream> {
        let io = PollIo::new(sock, Interest::READABLE | Interest::WRITABLE, "async tcp")?;
        Ok(TcpStream { io })
    }

    stream_methods!();

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.io.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.io.local_addr()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm when `true`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.io.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.io.nodelay()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .field("io", &self.io)
            .finish()
    }
}

/// A TCP server socket (tokio's `TcpListener`).
pub struct TcpListener {
    io: PollIo<mio::net::TcpListener>,
    acceptor: Acceptor,
}

impl TcpListener {
    /// Binds `addr`, any [`ToAddrs`] (port 0 picks a free port), and
    /// listens, with `SO_REUSEADDR` and a backlog of 1024 (capped by
    /// `somaxconn`), as tokio's `TcpListener::bind(addr).await`: a host
    /// name is resolved on the thread pool first, and the first address
    /// that binds is taken (the last error if none does). The future
    /// borrows nothing.
    ///
    /// ```
    /// use evloop::task::net::TcpListener;
    ///
    /// evloop::block_on(async {
    ///     let listener = TcpListener::bind("localhost:0").await.unwrap();
    ///     assert!(listener.local_addr().unwrap().ip().is_loopback());
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn bind(addr: impl ToAddrs) -> impl Future<Output = io::Result<TcpListener>> + 'static {
        let target = Target::of(&addr);
        async move { TcpListener::bind_now(&resolve(target).await?) }
    }

    /// Serves a listening socket made elsewhere (tokio's `from_std`): one
    /// bound with options of your own, or bound synchronously where no
    /// task can await. It is switched to non-blocking mode.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        TcpListener::from_mio(mio::net::TcpListener::from_std(listener))
    }

    fn bind_now(addrs: &[SocketAddr]) -> io::Result<TcpListener> {
        TcpListener::from_mio(crate::net::listen_first(addrs)?)
    }

    fn from_mio(sock: mio::net::TcpListener) -> io::Result<TcpListener> {
        let io = PollIo::new(sock, Interest::READABLE, "async tcp listener")?;
        Ok(TcpListener {
            io,
            acceptor: Acceptor::new(),
        })
    }

    /// Waits for the next connection.
    ///
    /// Errors that concern only the failed connection (`ECONNABORTED` and
    /// the like) are skipped.
    ///
    /// # Out of file descriptors
    ///
    /// Running out of file descriptors (`EMFILE`, `ENFILE`) is handled as
    /// the callback [`net::TcpListener`](crate::net::TcpListener) handles
    /// it, the same error in each style:
    ///
    /// 1. the connections waiting in the backlog are accepted and closed
    ///    at once (libuv's reserve-fd trick): their clients see the
    ///    connection end rather than hang;
    /// 2. `accept` returns the error **once per burst**;
    /// 3. the next `accept` waits out a 100 ms back-off before it tries
    ///    again, and while fds stay short it keeps retrying every 100 ms
    ///    without returning the error again, until a connection comes.
    ///
    /// Why return it rather than only log it: errors are values here, and
    /// a server should be able to see that it is short of fds (tokio also
    /// returns it). Why the back-off: with tokio, the caller must sleep
    /// after such an error or its accept loop spins (hyper and axum sleep
    /// for a second); here the plain loop below neither spins nor floods
    /// its log, and a loop that ends on the first error with `?` still
    /// sees it.
    ///
    /// ```no_run
    /// # use evloop::task::net::TcpListener;
    /// # async fn serve(listener: TcpListener) {
    /// loop {
    ///     match listener.accept().await {
    ///         Ok((conn, _peer)) => drop(conn), // (serve it in a task)
    ///         Err(e) => eprintln!("accept: {e}"), // EMFILE: once per burst
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (sock, addr) = self.io.accept(&self.acceptor).await?;
        Ok((TcpStream::accepted(sock)?, addr))
    }

    /// The bound address (with the port the OS chose for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.io.local_addr()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local_addr().ok())
            .field("io", &self.io)
            .finish()
    }
}

/// The addresses of `target`: at once for literal forms, else looked up
/// on the pool while the task waits. Dropping the future cancels a lookup
/// still queued (one already running is left to finish; its result is
/// dropped).
async fn resolve(target: Target) -> io::Result<Vec<SocketAddr>> {
    if let Some(r) = target.now() {
        return r;
    }
    type Slot = (Option<io::Result<Vec<SocketAddr>>>, Option<Waker>);
    let slot: Rc<RefCell<Slot>> = Rc::default();
    let s = slot.clone();
    let work = target.resolve(move |r| {
        let waker = {
            let mut s = s.borrow_mut();
            s.0 = Some(r);
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    });
    struct CancelOnDrop(Option<crate::Work>);
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            if let Some(work) = self.0.take() {
                if crate::event_loop::has_current() {
                    let _ = work.cancel(); // EBUSY once running: dropped then
                }
            }
        }
    }
    let mut guard = CancelOnDrop(work);
    let r = poll_fn(|cx| {
        let mut s = slot.borrow_mut();
        match s.0.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await;
    guard.0 = None;
    r
}

/// A UDP socket (tokio's `UdpSocket`).
pub struct UdpSocket {
    io: PollIo<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds `addr`, any [`ToAddrs`] (port 0 picks a free port), as
    /// tokio's `UdpSocket::bind(addr).await`: a host name is resolved on
    /// the thread pool first, and the first address that binds is taken
    /// (the last error if none does). The future borrows nothing.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn bind(addr: impl ToAddrs) -> impl Future<Output = io::Result<UdpSocket>> + 'static {
        let target = Target::of(&addr);
        async move { UdpSocket::bind_now(&resolve(target).await?) }
    }

    fn bind_now(addrs: &[SocketAddr]) -> io::Result<UdpSocket> {
        let mut last = None;
        let sock = addrs
            .iter()
            .find_map(|a| match mio::net::UdpSocket::bind(*a) {
                Ok(s) => Some(s),
                Err(e) => {
                    last = Some(e);
                    None
                }
            });
        let sock = sock.ok_or_else(|| last.expect("resolve gives at least one address"))?;
        UdpSocket::from_mio(sock)
    }

    /// Serves a UDP socket made elsewhere (tokio's `from_std`). It is
    /// switched to non-blocking mode.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<UdpSocket> {
        socket.set_nonblocking(true)?;
        UdpSocket::from_mio(mio::net::UdpSocket::from_std(socket))
    }

    fn from_mio(sock: mio::net::UdpSocket) -> io::Result<UdpSocket> {
        let io = PollIo::new(sock, Interest::READABLE | Interest::WRITABLE, "async udp")?;
        Ok(UdpSocket { io })
    }

    /// Sends `buf` as one datagram to `target` (any [`ToAddrs`]); returns
    /// the bytes sent.
    pub async fn send_to(&self, buf: &[u8], target: impl ToAddrs) -> io::Result<usize> {
        // A literal address costs nothing; a host name is looked up on the
        // pool first, and the datagram goes to its first address (Node's
        // `dgram` `send` does the same through `dns.lookup`).
        let target = resolve(Target::of(&target))
            .await?
            .first()
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
        self.io.op(Dir::Write, |io| io.send_to(buf, target)).await
    }

    /// Waits for a datagram and copies it into `buf` (the excess of a
    /// datagram longer than `buf` is lost); returns its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.op(Dir::Read, |io| io.recv_from(buf)).await
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.io.local_addr()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .field("io", &self.io)
            .finish()
    }
}

/// A Unix domain stream connection (tokio's `UnixStream`).
pub struct UnixStream {
    io: PollIo<mio::net::UnixStream>,
}

/// The address of a Unix socket.
pub type UnixSocketAddr = std::os::unix::net::SocketAddr;

impl UnixStream {
    /// Connects to the socket at `path`. A path that cannot be a socket
    /// address (too long, or with a NUL byte) is an `InvalidInput` error.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let sock = mio::net::UnixStream::connect(path.as_ref())?;
        let io = PollIo::new(sock, Interest::READABLE | Interest::WRITABLE, "async unix")?;
        io.connected().await?;
        Ok(UnixStream { io })
    }

    /// [`connect`](UnixStream::connect), abortable: see
    /// [`TcpStream::connect_with_signal`].
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn connect_with_signal(
        path: impl AsRef<Path>,
        signal: &AbortSignal,
    ) -> impl Future<Output = io::Result<UnixStream>> + 'static {
        let (path, signal) = (path.as_ref().to_path_buf(), signal.clone());
        async move {
            signal.throw_if_aborted()?;
            signal.race(UnixStream::connect(path)).await?
        }
    }

    stream_methods!();

    /// The address of the peer.
    pub fn peer_addr(&self) -> io::Result<UnixSocketAddr> {
        self.io.io.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<UnixSocketAddr> {
        self.io.io.local_addr()
    }
}

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream").field("io", &self.io).finish()
    }
}

/// A Unix domain socket server (tokio's `UnixListener`). Like Node, it does
/// not remove the socket file when dropped.
pub struct UnixListener {
    io: PollIo<mio::net::UnixListener>,
    acceptor: Acceptor,
}

impl UnixListener {
    /// Binds `path` and listens. A path that cannot be a socket address is
    /// an `InvalidInput` error; an existing file is `AddrInUse`.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let sock = mio::net::UnixListener::bind(path.as_ref())?;
        let io = PollIo::new(sock, Interest::READABLE, "async unix listener")?;
        Ok(UnixListener {
            io,
            acceptor: Acceptor::new(),
        })
    }

    /// Waits for the next connection; see [`TcpListener::accept`] for the
    /// errors.
    pub async fn accept(&self) -> io::Result<(UnixStream, UnixSocketAddr)> {
        let (sock, addr) = self.io.accept(&self.acceptor).await?;
        let io = PollIo::new(sock, Interest::READABLE | Interest::WRITABLE, "async unix")?;
        Ok((UnixStream { io }, addr))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<UnixSocketAddr> {
        self.io.io.local_addr()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("local", &self.local_addr().ok())
            .field("io", &self.io)
            .finish()
    }
}

/// `futures-io`'s `AsyncRead` / `AsyncWrite` for the stream sockets (cargo
/// feature `futures-io`), so the `futures::io` utilities (`copy`,
/// `BufReader`, `AsyncReadExt`, ...) work on them. Same readiness path as
/// the inherent methods: no allocation per call.
#[cfg(feature = "futures-io")]
mod futures_io_impls {
    use std::io::{self, Write};
    use std::net::Shutdown;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::{Dir, TcpStream, UnixStream};

    macro_rules! futures_io {
        ($t:ty) => {
            impl futures_io::AsyncRead for $t {
                fn poll_read(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &mut [u8],
                ) -> Poll<io::Result<usize>> {
                    self.io.poll_read(cx, buf)
                }
            }

            impl futures_io::AsyncWrite for $t {
                fn poll_write(
                    self: Pin<&mut Self>,
                    cx: &mut Context<'_>,
                    buf: &[u8],
                ) -> Poll<io::Result<usize>> {
                    self.io.poll_op(cx, Dir::Write, |mut io| io.write(buf))
                }

                /// Nothing is buffered here: always flushed.
                fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                    Poll::Ready(Ok(()))
                }

                /// Shuts the writing half down (the peer reads EOF).
                fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                    Poll::Ready(self.io.io.shutdown(Shutdown::Write))
                }
            }
        };
    }

    futures_io!(TcpStream);
    futures_io!(UnixStream);
}
