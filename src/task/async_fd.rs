//! [`AsyncFd`]: async readiness for any fd, tokio's `AsyncFd` and
//! async-io's `Async<T>` on the loop's reactor.
//!
//! The async sockets of [`net`](super::net) know their syscalls; an
//! `AsyncFd` does not. It registers any `T: AsRawFd` (a pipe, an eventfd,
//! a timerfd, a tty, a socket from another crate) with the current loop,
//! and lets a task wait until the fd is readable or writable; the task
//! then makes its own nonblocking syscall.
//!
//! The contract (edge triggering, EOF, waiters, closing) is documented
//! on [`AsyncFd`] itself, since this module is private.

use std::cell::{Cell, RefCell};
use std::error::Error as StdError;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use mio::Interest;

use crate::reactor::{watch_kind, Ready, Watch};

/// Which direction a wait is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    Read,
    Write,
}

/// One direction's readiness. Unlike the sockets' `Half`, it counts the
/// edges (`tick`), so a guard can tell whether readiness came after it was
/// made, and it keeps every waiting task's waker, since any number of
/// tasks may share an `AsyncFd`.
#[derive(Default)]
struct Direction {
    /// An edge came and no `WouldBlock` was reported since.
    ready: Cell<bool>,
    /// Closed or failed: ready for good.
    closed: Cell<bool>,
    /// Edges seen, wrapping.
    tick: Cell<u32>,
    wakers: RefCell<Vec<Waker>>,
}

impl Direction {
    fn is_ready(&self) -> bool {
        self.ready.get() || self.closed.get()
    }

    fn on_edge(&self, closed: bool) {
        self.ready.set(true);
        if closed {
            self.closed.set(true);
        }
        self.tick.set(self.tick.get().wrapping_add(1));
        // Take, then call: a woken waker may run code that waits again.
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    fn park(&self, cx: &Context<'_>) {
        let mut wakers = self.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
    }

    /// Clears readiness seen at `tick`, unless an edge came since.
    fn clear(&self, tick: u32) {
        if self.tick.get() == tick {
            self.ready.set(false);
        }
    }
}

/// What the reactor callback shares with the `AsyncFd`.
#[derive(Default)]
struct FdState {
    read: Direction,
    write: Direction,
}

impl FdState {
    fn dir(&self, dir: Dir) -> &Direction {
        match dir {
            Dir::Read => &self.read,
            Dir::Write => &self.write,
        }
    }

    fn on_event(&self, ready: Ready) {
        let read_closed = ready.is_read_closed() || ready.is_error();
        if ready.is_readable() || read_closed {
            self.read.on_edge(read_closed);
        }
        let write_closed = ready.is_write_closed() || ready.is_error();
        if ready.is_writable() || write_closed {
            self.write.on_edge(write_closed);
        }
    }
}

/// An fd registered with the current loop's reactor, whose readiness tasks
/// can `.await`: tokio's `AsyncFd`, async-io's `Async<T>`. It registers any
/// `T: AsRawFd` (a pipe, an eventfd, a timerfd, a tty, a socket from
/// another crate) and lets a task wait until the fd is readable or
/// writable; the task then makes its own nonblocking syscall.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use evloop::task::AsyncFd;
///
/// evloop::block_on(async {
///     let (a, b) = UnixStream::pair()?;
///     a.set_nonblocking(true)?;
///     b.set_nonblocking(true)?;
///     let (a, b) = (AsyncFd::new(a)?, AsyncFd::new(b)?);
///
///     let reader = evloop::spawn(async move {
///         let mut buf = [0; 16];
///         loop {
///             let mut guard = b.readable().await?;
///             // A `WouldBlock` inside `try_io` clears readiness: wait again.
///             if let Ok(n) = guard.try_io(|s| (&*s).read(&mut buf)) {
///                 let n = n?;
///                 return Ok::<_, std::io::Error>(buf[..n].to_vec());
///             }
///         }
///     });
///
///     let mut guard = a.writable().await?;
///     guard.try_io(|s| (&*s).write_all(b"ping")).expect("a fresh socket has room")?;
///     assert_eq!(reader.await.unwrap()?, b"ping");
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
///
/// # Edge triggering, and what it asks of you
///
/// The reactor is edge-triggered (see [`watch`](crate::watch)): epoll
/// reports a *change* to readable, not the state. So an `AsyncFd`
/// remembers, per direction, that an edge came, and keeps saying "ready"
/// until you tell it otherwise: [`readable`](AsyncFd::readable) returns
/// at once while the flag is set. You clear it when a syscall returns
/// `WouldBlock`, either by calling [`ReadyGuard::clear_ready`] or, more
/// simply, by making the syscall inside [`ReadyGuard::try_io`], which
/// clears it for you. Clearing it without having seen `WouldBlock` can
/// strand data: no new edge comes for bytes that are already there.
/// Forgetting to clear it only costs a busy loop (which the task's
/// [budget](super::TASK_BUDGET) still interrupts to let others run).
///
/// A readiness that arrived after the guard was made is not cleared by
/// that guard (each edge bumps a counter the guard compares), so an edge
/// that came while the task held a guard is never lost.
///
/// The flags start cleared: epoll reports the fd's current state as a first
/// edge at registration, so an fd that is already readable is reported in
/// the next poll phase.
///
/// # EOF, hang-up, errors
///
/// The peer closing its end (`read_closed`, `HUP`) or an error on the fd
/// make [`readable`](AsyncFd::readable) ready for good, and
/// [`writable`](AsyncFd::writable) too for write-closed or an error: the
/// following read returns 0 (or the error), and no further edge would come
/// to report it again, so that readiness is never cleared.
///
/// # Directions and waiters
///
/// Readable and writable are independent: one task can wait to read while
/// another waits to write. Any number of tasks can wait on the same
/// direction; an edge wakes them all (each then races for the data, and
/// the losers see `WouldBlock` and wait again). A cancelled wait leaves its
/// waker behind until the next edge in that direction, as the sockets do:
/// a stale wake only polls the task once more.
///
/// # Closing
///
/// Dropping an `AsyncFd` deregisters the fd, then drops `T` (which closes
/// the fd, if `T` owns it). [`into_inner`](AsyncFd::into_inner)
/// deregisters and hands `T` back, fd open. As with
/// [`watch`](crate::watch) and libuv's `uv_poll_t`, **deregister before
/// closing**. If the fd is closed behind the `AsyncFd`'s back (a `T` that
/// does not own it, a `libc::close`), the loop keeps running and dropping
/// the `AsyncFd` still frees its registration (the failed `EPOLL_CTL_DEL`
/// is only logged). But epoll deregisters by fd *number*: if that number
/// was reused in the meantime by another source of this loop, the drop
/// removes the other source's registration, and it goes deaf. Drop the
/// `AsyncFd` or call [`into_inner`](AsyncFd::into_inner) first, then
/// close.
///
/// An `AsyncFd` keeps the loop alive while it exists, as a socket does.
/// All methods must be called on the loop thread of the loop it was made
/// on.
// Field order matters: the watch is dropped (deregistered) before `inner`
// is, so the fd is closed only after the reactor forgot it.
pub struct AsyncFd<T: AsRawFd> {
    watch: Watch,
    state: Rc<FdState>,
    interest: Interest,
    inner: T,
}

impl<T: AsRawFd> AsyncFd<T> {
    /// Registers `inner`'s fd with the current loop for reading and
    /// writing. The fd should be in nonblocking mode (a blocking syscall
    /// would block the whole loop).
    ///
    /// Fails, returning the error and dropping `inner`, if the reactor
    /// refuses the fd: a regular file gives `PermissionDenied` (`EPERM`)
    /// on Linux, a closed fd `EBADF`, an fd already registered with this
    /// loop `AlreadyExists` (`EEXIST`). Use [`try_with_interest`] to get
    /// `inner` back on failure.
    ///
    /// [`try_with_interest`]: AsyncFd::try_with_interest
    ///
    /// ```
    /// use evloop::task::AsyncFd;
    ///
    /// evloop::block_on(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    ///     a.set_nonblocking(true)?;
    ///     let a = AsyncFd::new(a)?;
    ///     a.writable().await?; // an empty socket buffer has room
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn new(inner: T) -> io::Result<Self> {
        Self::with_interest(inner, Interest::READABLE | Interest::WRITABLE)
    }

    /// Like [`new`](AsyncFd::new), registered only for `interest`: waiting
    /// for the other direction then fails with `InvalidInput`.
    ///
    /// ```
    /// use evloop::{task::AsyncFd, Interest};
    ///
    /// evloop::block_on(async {
    ///     let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    ///     a.set_nonblocking(true)?;
    ///     let fd = AsyncFd::with_interest(a, Interest::READABLE)?;
    ///     assert_eq!(fd.writable().await.unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn with_interest(inner: T, interest: Interest) -> io::Result<Self> {
        Self::try_with_interest(inner, interest).map_err(|(e, _)| e)
    }

    /// Like [`with_interest`](AsyncFd::with_interest), handing `inner` back
    /// beside the error when the fd cannot be registered.
    ///
    /// ```
    /// use evloop::{task::AsyncFd, Interest};
    ///
    /// evloop::run(|| {
    ///     // A regular file cannot be polled: epoll says EPERM.
    ///     let file = std::fs::File::open("Cargo.toml").unwrap();
    ///     let (err, file) = AsyncFd::try_with_interest(file, Interest::READABLE).unwrap_err();
    ///     assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    ///     drop(file);
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn try_with_interest(inner: T, interest: Interest) -> Result<Self, (io::Error, T)> {
        let state = Rc::new(FdState::default());
        let s = state.clone();
        match watch_kind(inner.as_raw_fd(), interest, "fd", move |ready| {
            s.on_event(ready)
        }) {
            Ok(watch) => Ok(AsyncFd {
                watch,
                state,
                interest,
                inner,
            }),
            Err(e) => Err((e, inner)),
        }
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The wrapped value, mutably. Replacing it with a value of another fd
    /// leaves the old fd registered: don't.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Deregisters the fd and returns the wrapped value, fd still open.
    /// No task can be waiting on it: waiting borrows the `AsyncFd`.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use evloop::task::AsyncFd;
    ///
    /// evloop::block_on(async {
    ///     let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
    ///     b.set_nonblocking(true)?;
    ///     let b = AsyncFd::new(b)?.into_inner(); // back to a plain socket
    ///     a.write_all(b"still open")?;
    ///     b.set_nonblocking(false)?;
    ///     let mut buf = [0; 10];
    ///     (&b).read_exact(&mut buf)?;
    ///     assert_eq!(&buf, b"still open");
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    pub fn into_inner(self) -> T {
        let AsyncFd { watch, inner, .. } = self;
        drop(watch); // deregisters
        inner
    }

    /// The interest the fd was registered with.
    pub fn interest(&self) -> Interest {
        self.interest
    }

    /// Waits until the fd is readable (or at EOF, hung up or failed), and
    /// returns a guard to make the read with. Returns at once while an
    /// earlier edge has not been cleared.
    ///
    /// Errors: `InvalidInput` if registered without
    /// [`Interest::READABLE`], `NotConnected` if the loop it was
    /// registered with is gone.
    ///
    /// The syscall made by hand, and readiness cleared by hand:
    ///
    /// ```
    /// use std::io::{ErrorKind, Read, Write};
    /// use evloop::task::AsyncFd;
    ///
    /// evloop::block_on(async {
    ///     let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
    ///     b.set_nonblocking(true)?;
    ///     let b = AsyncFd::new(b)?;
    ///     a.write_all(b"abc")?;
    ///     drop(a); // then EOF
    ///     let mut got = Vec::new();
    ///     let mut buf = [0; 2];
    ///     loop {
    ///         let mut guard = b.readable().await?;
    ///         match b.get_ref().read(&mut buf) {
    ///             Ok(0) => break,
    ///             Ok(n) => got.extend_from_slice(&buf[..n]),
    ///             // Drained: only now may readiness be forgotten.
    ///             Err(e) if e.kind() == ErrorKind::WouldBlock => guard.clear_ready(),
    ///             Err(e) => return Err(e),
    ///         }
    ///     }
    ///     assert_eq!(got, b"abc");
    ///     Ok(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    pub async fn readable(&self) -> io::Result<ReadyGuard<'_, T>> {
        poll_fn(|cx| self.poll_read_ready(cx)).await
    }

    /// Waits until the fd is writable (or closed for writing, or failed);
    /// see [`readable`](AsyncFd::readable).
    pub async fn writable(&self) -> io::Result<ReadyGuard<'_, T>> {
        poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    /// [`readable`](AsyncFd::readable) with `&mut self`, whose guard's
    /// [`try_io`](ReadyMutGuard::try_io) gives `&mut T` (for types whose
    /// `Read` takes `&mut self`).
    pub async fn readable_mut(&mut self) -> io::Result<ReadyMutGuard<'_, T>> {
        let tick = poll_fn(|cx| self.poll_dir(cx, Dir::Read)).await?;
        Ok(ReadyMutGuard {
            fd: self,
            dir: Dir::Read,
            tick,
        })
    }

    /// [`writable`](AsyncFd::writable) with `&mut self`; see
    /// [`readable_mut`](AsyncFd::readable_mut).
    pub async fn writable_mut(&mut self) -> io::Result<ReadyMutGuard<'_, T>> {
        let tick = poll_fn(|cx| self.poll_dir(cx, Dir::Write)).await?;
        Ok(ReadyMutGuard {
            fd: self,
            dir: Dir::Write,
            tick,
        })
    }

    /// Polls for read readiness: `Pending` stores the task's waker, woken
    /// at the next readable edge. For hand-written futures.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyGuard<'_, T>>> {
        self.poll_dir(cx, Dir::Read)
            .map_ok(|tick| self.guard(Dir::Read, tick))
    }

    /// Polls for write readiness; see
    /// [`poll_read_ready`](AsyncFd::poll_read_ready).
    pub fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<ReadyGuard<'_, T>>> {
        self.poll_dir(cx, Dir::Write)
            .map_ok(|tick| self.guard(Dir::Write, tick))
    }

    /// Waits until readable and runs `op` on the inner value, until it
    /// returns something other than `WouldBlock` (async-io's `read_with`).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use evloop::task::AsyncFd;
    ///
    /// evloop::block_on(async {
    ///     let (mut a, b) = std::os::unix::net::UnixStream::pair()?;
    ///     b.set_nonblocking(true)?;
    ///     let b = AsyncFd::new(b)?;
    ///     a.write_all(b"hi")?;
    ///     let mut buf = [0; 8];
    ///     let n = b.read_with(|s| (&*s).read(&mut buf)).await?;
    ///     assert_eq!(&buf[..n], b"hi");
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    pub async fn read_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io_with(Dir::Read, op).await
    }

    /// Waits until writable and runs `op` on the inner value, until it
    /// returns something other than `WouldBlock` (async-io's `write_with`).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use evloop::task::AsyncFd;
    ///
    /// evloop::block_on(async {
    ///     let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
    ///     a.set_nonblocking(true)?;
    ///     let a = AsyncFd::new(a)?;
    ///     let n = a.write_with(|s| (&*s).write(b"hey")).await?;
    ///     let mut buf = [0; 3];
    ///     b.read_exact(&mut buf[..n])?;
    ///     assert_eq!(&buf, b"hey");
    ///     Ok::<_, std::io::Error>(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    pub async fn write_with<R>(&self, op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        self.io_with(Dir::Write, op).await
    }

    async fn io_with<R>(&self, dir: Dir, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        loop {
            let tick = poll_fn(|cx| self.poll_dir(cx, dir)).await?;
            let mut guard = self.guard(dir, tick);
            if let Ok(r) = guard.try_io(&mut op) {
                return r;
            }
        }
    }

    fn guard(&self, dir: Dir, tick: u32) -> ReadyGuard<'_, T> {
        ReadyGuard {
            fd: self,
            dir,
            tick,
        }
    }

    /// Ready with the direction's edge count, or parks the task.
    fn poll_dir(&self, cx: &Context<'_>, dir: Dir) -> Poll<io::Result<u32>> {
        let wanted = match dir {
            Dir::Read => self.interest.is_readable(),
            Dir::Write => self.interest.is_writable(),
        };
        if !wanted {
            return Poll::Ready(Err(io::Error::new(
                ErrorKind::InvalidInput,
                match dir {
                    Dir::Read => "AsyncFd is not registered for reading",
                    Dir::Write => "AsyncFd is not registered for writing",
                },
            )));
        }
        if !self.watch.is_active() {
            // Its loop is gone: no edge will ever come.
            return Poll::Ready(Err(io::Error::new(
                ErrorKind::NotConnected,
                "AsyncFd's event loop is gone",
            )));
        }
        let d = self.state.dir(dir);
        if !d.is_ready() {
            d.park(cx);
            return Poll::Pending;
        }
        // Ready, but the task may have had its share of this turn.
        let Some(budget) = super::coop::proceed(cx) else {
            return Poll::Pending;
        };
        super::coop::spend(budget);
        Poll::Ready(Ok(d.tick.get()))
    }

    fn clear(&self, dir: Dir, tick: u32) {
        self.state.dir(dir).clear(tick);
    }
}

impl<T: AsRawFd> AsRawFd for AsyncFd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl<T: AsRawFd + fmt::Debug> fmt::Debug for AsyncFd<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncFd")
            .field("inner", &self.inner)
            .field("registered", &self.watch.is_active())
            .field("readable", &self.state.read.is_ready())
            .field("writable", &self.state.write.is_ready())
            .finish()
    }
}

/// Readiness seen by [`AsyncFd::readable`] or [`AsyncFd::writable`]:
/// make the syscall with [`try_io`](ReadyGuard::try_io), or make it
/// yourself and call [`clear_ready`](ReadyGuard::clear_ready) on
/// `WouldBlock`. Dropping the guard keeps the readiness.
pub struct ReadyGuard<'a, T: AsRawFd> {
    fd: &'a AsyncFd<T>,
    dir: Dir,
    tick: u32,
}

impl<'a, T: AsRawFd> ReadyGuard<'a, T> {
    /// Forgets the readiness: the next wait parks until a new edge. Call it
    /// only after a syscall returned `WouldBlock` (see the module docs).
    /// An edge that came after this guard was made is kept; a closed or
    /// failed direction stays ready.
    pub fn clear_ready(&mut self) {
        self.fd.clear(self.dir, self.tick);
    }

    /// Runs `op` on the inner value. `WouldBlock` clears the readiness and
    /// gives `Err(TryIoError)`: wait again. Any other result is passed on
    /// as `Ok(result)`.
    pub fn try_io<R>(
        &mut self,
        op: impl FnOnce(&'a T) -> io::Result<R>,
    ) -> Result<io::Result<R>, TryIoError> {
        match op(&self.fd.inner) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.clear_ready();
                Err(TryIoError(()))
            }
            r => Ok(r),
        }
    }

    /// The `AsyncFd` this guard came from.
    pub fn get_ref(&self) -> &'a AsyncFd<T> {
        self.fd
    }

    /// The wrapped value.
    pub fn get_inner(&self) -> &'a T {
        &self.fd.inner
    }
}

impl<T: AsRawFd> fmt::Debug for ReadyGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyGuard")
            .field("fd", &self.fd.as_raw_fd())
            .field("dir", &self.dir)
            .finish()
    }
}

/// [`ReadyGuard`] from [`AsyncFd::readable_mut`] or
/// [`AsyncFd::writable_mut`]: its [`try_io`](ReadyMutGuard::try_io) gives
/// `&mut T`.
pub struct ReadyMutGuard<'a, T: AsRawFd> {
    fd: &'a mut AsyncFd<T>,
    dir: Dir,
    tick: u32,
}

impl<T: AsRawFd> ReadyMutGuard<'_, T> {
    /// See [`ReadyGuard::clear_ready`].
    pub fn clear_ready(&mut self) {
        self.fd.clear(self.dir, self.tick);
    }

    /// See [`ReadyGuard::try_io`]; `op` gets the inner value mutably.
    pub fn try_io<R>(
        &mut self,
        op: impl FnOnce(&mut T) -> io::Result<R>,
    ) -> Result<io::Result<R>, TryIoError> {
        match op(&mut self.fd.inner) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.clear_ready();
                Err(TryIoError(()))
            }
            r => Ok(r),
        }
    }

    /// The `AsyncFd` this guard came from.
    pub fn get_ref(&self) -> &AsyncFd<T> {
        self.fd
    }

    /// The `AsyncFd` this guard came from, mutably.
    pub fn get_mut(&mut self) -> &mut AsyncFd<T> {
        self.fd
    }

    /// The wrapped value.
    pub fn get_inner(&self) -> &T {
        &self.fd.inner
    }

    /// The wrapped value, mutably.
    pub fn get_inner_mut(&mut self) -> &mut T {
        &mut self.fd.inner
    }
}

impl<T: AsRawFd> fmt::Debug for ReadyMutGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadyMutGuard")
            .field("fd", &self.fd.as_raw_fd())
            .field("dir", &self.dir)
            .finish()
    }
}

/// The operation given to [`ReadyGuard::try_io`] returned `WouldBlock`:
/// the readiness was cleared; wait for it again.
#[derive(Debug)]
pub struct TryIoError(());

impl fmt::Display for TryIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("operation would block; readiness cleared")
    }
}

impl StdError for TryIoError {}
