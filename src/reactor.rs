//! The reactor: one `mio::Poll` and a [`Slab`] of registered sources.
//!
//! # Tokens carry a generation
//!
//! A source's mio [`Token`] is its slab key in the low 32 bits and a
//! generation in the high 32 bits. When a source is closed its key is free
//! for reuse at once, but an event for the old source may still sit in the
//! batch `poll` just returned. Dispatch compares generations and drops such
//! an event, so a reused key never receives its predecessor's readiness
//! (mio#219, libuv's `uv__platform_invalidate_fd`).
//!
//! The generation is one counter for the whole loop, so a `(key, gen)` pair
//! comes back only after 2^32 registrations. The test-only cfg flag
//! `evloop_narrow_generation` (`RUSTFLAGS="--cfg evloop_narrow_generation"`)
//! keeps 8 bits of it, so that it wraps every 256 registrations and the
//! wrap itself is exercised (T02 in RELIABILITY.md).
//!
//! # Edge triggering
//!
//! mio reports *edges*: a source that was readable stays silent until new
//! data arrives. A callback must read (or accept, or write) until the call
//! returns `WouldBlock`, or remember that data is still there; otherwise
//! bytes are stranded. [`watch`] passes this contract on to its users.
//!
//! # Spurious events
//!
//! As with mio, a callback may be told a source is ready when it is not;
//! the following read returns `WouldBlock` and nothing else happens.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::{Rc, Weak};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use slab::Slab;

use crate::event_loop::{with_current, LoopState};

/// The generation bits kept: all 32, or 8 in the test build with
/// `--cfg evloop_narrow_generation`.
const GEN_MASK: u32 = if cfg!(evloop_narrow_generation) {
    0xFF
} else {
    u32::MAX
};

/// The token of the loop's cross-thread waker.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

/// Readiness delivered to a [`watch`] callback.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Ready {
    bits: u8,
}

impl Ready {
    const READABLE: u8 = 1;
    const WRITABLE: u8 = 2;
    const READ_CLOSED: u8 = 4;
    const WRITE_CLOSED: u8 = 8;
    const ERROR: u8 = 16;
    const PRIORITY: u8 = 32;

    pub(crate) fn from_mio(e: &mio::event::Event) -> Ready {
        let mut bits = 0;
        for (on, bit) in [
            (e.is_readable(), Self::READABLE),
            (e.is_writable(), Self::WRITABLE),
            (e.is_read_closed(), Self::READ_CLOSED),
            (e.is_write_closed(), Self::WRITE_CLOSED),
            (e.is_error(), Self::ERROR),
            (e.is_priority(), Self::PRIORITY),
        ] {
            if on {
                bits |= bit;
            }
        }
        Ready { bits }
    }

    /// Readable and writable: a spurious event of the fault shim.
    #[cfg(evloop_fault_injection)]
    pub(crate) fn readable_writable() -> Ready {
        Ready {
            bits: Self::READABLE | Self::WRITABLE,
        }
    }

    /// Data (or a connection, or EOF) can be read.
    pub fn is_readable(self) -> bool {
        self.bits & Self::READABLE != 0
    }
    /// A write would make progress.
    pub fn is_writable(self) -> bool {
        self.bits & Self::WRITABLE != 0
    }
    /// The peer closed its writing half (EOF follows the buffered data).
    pub fn is_read_closed(self) -> bool {
        self.bits & Self::READ_CLOSED != 0
    }
    /// The peer can no longer receive.
    pub fn is_write_closed(self) -> bool {
        self.bits & Self::WRITE_CLOSED != 0
    }
    /// The source has a pending error (read it with `take_error`).
    pub fn is_error(self) -> bool {
        self.bits & Self::ERROR != 0
    }
    /// Out-of-band or priority data.
    pub fn is_priority(self) -> bool {
        self.bits & Self::PRIORITY != 0
    }
}

impl fmt::Debug for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.is_readable(), "READABLE"),
            (self.is_writable(), "WRITABLE"),
            (self.is_read_closed(), "READ_CLOSED"),
            (self.is_write_closed(), "WRITE_CLOSED"),
            (self.is_error(), "ERROR"),
            (self.is_priority(), "PRIORITY"),
        ];
        let mut first = true;
        for (on, name) in names {
            if on {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("(empty)")?;
        }
        Ok(())
    }
}

/// What the reactor calls with a source's readiness: a closure
/// ([`io_callback`]), or an object that is its own callback (a stream:
/// its `Rc` is the callback, with no closure allocated per connection).
pub(crate) trait OnReady {
    /// Handles one readiness event.
    fn on_ready(self: Rc<Self>, ready: Ready);
}

/// A callback, taken out of its slot while it runs (so a closure's
/// `RefCell` is never borrowed twice).
pub(crate) type IoCallback = Rc<dyn OnReady>;

/// A closure as an [`OnReady`] source.
struct ClosureSource<F>(RefCell<F>);

impl<F: FnMut(Ready)> OnReady for ClosureSource<F> {
    fn on_ready(self: Rc<Self>, ready: Ready) {
        (self.0.borrow_mut())(ready)
    }
}

/// Wraps a closure as an [`IoCallback`].
pub(crate) fn io_callback(f: impl FnMut(Ready) + 'static) -> IoCallback {
    Rc::new(ClosureSource(RefCell::new(f)))
}

/// Runs a callback taken out of its slot (it stays owned by the caller,
/// to be put back).
#[inline]
pub(crate) fn call(cb: &IoCallback, ready: Ready) {
    Rc::clone(cb).on_ready(ready)
}

struct SourceSlot {
    cb: Option<IoCallback>,
    gen: u32,
    fd: RawFd,
    interest: Interest,
    refed: bool,
    /// What this source is, for `active_handles` ("fd", "tcp", ...): an
    /// index into [`Reactor::kinds`] (a slot per source counts: 32 bytes,
    /// not 48 with the label itself).
    kind: u8,
}

/// Registered sources.
pub(crate) struct Reactor {
    pub(crate) poll: RefCell<mio::Poll>,
    /// Taken out (`None`) while a batch is being dispatched.
    pub(crate) events: RefCell<Option<mio::Events>>,
    sources: RefCell<Slab<SourceSlot>>,
    next_gen: Cell<u32>,
    /// Registrations since the loop was created (a metric).
    registrations: Cell<u64>,
    refed: Cell<usize>,
    /// The kind labels sources were registered with (a few: "tcp",
    /// "pipe", "signal", ...), indexed by [`SourceSlot::kind`].
    kinds: RefCell<Vec<&'static str>>,
}

fn token(key: usize, gen: u32) -> Token {
    Token(((gen as usize) << 32) | key)
}

/// Splits a token into `(key, gen)`.
pub(crate) fn split(t: Token) -> (usize, u32) {
    (t.0 & 0xFFFF_FFFF, (t.0 >> 32) as u32)
}

impl Reactor {
    pub(crate) fn new(poll: mio::Poll) -> Reactor {
        Reactor {
            poll: RefCell::new(poll),
            events: RefCell::new(Some(mio::Events::with_capacity(1024))),
            sources: RefCell::new(Slab::new()),
            next_gen: Cell::new(0),
            registrations: Cell::new(0),
            refed: Cell::new(0),
            kinds: RefCell::new(vec!["io"]),
        }
    }

    pub(crate) fn register(
        &self,
        fd: RawFd,
        interest: Interest,
        kind: &'static str,
        cb: IoCallback,
    ) -> io::Result<(usize, u32)> {
        let mut sources = self.sources.borrow_mut();
        let entry = sources.vacant_entry();
        let key = entry.key();
        if key > u32::MAX as usize {
            return Err(io::Error::other("too many registered sources"));
        }
        let gen = self.next_gen.get();
        self.next_gen.set(gen.wrapping_add(1) & GEN_MASK);
        self.registrations.set(self.registrations.get() + 1);
        self.poll
            .borrow()
            .registry()
            .register(&mut SourceFd(&fd), token(key, gen), interest)?;
        let kind = self.kind_index(kind);
        entry.insert(SourceSlot {
            cb: Some(cb),
            gen,
            fd,
            interest,
            refed: true,
            kind,
        });
        self.refed.set(self.refed.get() + 1);
        Ok((key, gen))
    }

    /// The index of a kind label in `kinds`, added if new; past 255
    /// labels, 0 ("io").
    fn kind_index(&self, kind: &'static str) -> u8 {
        let mut kinds = self.kinds.borrow_mut();
        if let Some(i) = kinds.iter().position(|k| *k == kind) {
            return i as u8;
        }
        match u8::try_from(kinds.len()) {
            Ok(i) => {
                kinds.push(kind);
                i
            }
            Err(_) => 0,
        }
    }

    fn kind_name(&self, kind: u8) -> &'static str {
        self.kinds
            .borrow()
            .get(kind as usize)
            .copied()
            .unwrap_or("io")
    }

    /// Sources registered since the loop was created.
    pub(crate) fn registrations(&self) -> u64 {
        self.registrations.get()
    }

    pub(crate) fn set_interest(&self, key: usize, gen: u32, interest: Interest) -> io::Result<()> {
        let mut sources = self.sources.borrow_mut();
        let slot = match sources.get_mut(key) {
            Some(s) if s.gen == gen => s,
            _ => return Err(closed()),
        };
        self.poll.borrow().registry().reregister(
            &mut SourceFd(&slot.fd),
            token(key, gen),
            interest,
        )?;
        slot.interest = interest;
        Ok(())
    }

    /// Deregisters and frees the slot; returns the callback for the caller
    /// to drop outside any borrow. Closing twice is a no-op.
    pub(crate) fn close(&self, key: usize, gen: u32) -> Option<IoCallback> {
        let mut sources = self.sources.borrow_mut();
        match sources.get(key) {
            Some(s) if s.gen == gen => {}
            _ => return None,
        }
        let slot = sources.remove(key);
        if slot.refed {
            self.refed.set(self.refed.get() - 1);
        }
        // The fd may already be closed by its owner (epoll then forgot it
        // on its own); that is not an error worth reporting.
        if let Err(e) = self
            .poll
            .borrow()
            .registry()
            .deregister(&mut SourceFd(&slot.fd))
        {
            log::trace!("deregister fd {}: {e}", slot.fd);
        }
        slot.cb
    }

    pub(crate) fn set_ref(&self, key: usize, gen: u32, refed: bool) {
        let mut sources = self.sources.borrow_mut();
        if let Some(s) = sources.get_mut(key).filter(|s| s.gen == gen) {
            if s.refed != refed {
                s.refed = refed;
                let n = self.refed.get();
                self.refed.set(if refed { n + 1 } else { n - 1 });
            }
        }
    }

    pub(crate) fn has_ref(&self, key: usize, gen: u32) -> bool {
        let sources = self.sources.borrow();
        sources.get(key).is_some_and(|s| s.gen == gen && s.refed)
    }

    pub(crate) fn is_active(&self, key: usize, gen: u32) -> bool {
        let sources = self.sources.borrow();
        sources.get(key).is_some_and(|s| s.gen == gen)
    }

    /// Takes the callback for an event, or `None` if the event is stale
    /// (the source was closed, its key perhaps reused) or the callback is
    /// already running.
    pub(crate) fn take_callback(&self, key: usize, gen: u32) -> Option<IoCallback> {
        let mut sources = self.sources.borrow_mut();
        match sources.get_mut(key) {
            Some(s) if s.gen == gen => s.cb.take(),
            _ => None,
        }
    }

    /// Puts a callback back after it ran, if its source is still there;
    /// otherwise hands it back to be dropped.
    pub(crate) fn restore_callback(
        &self,
        key: usize,
        gen: u32,
        cb: IoCallback,
    ) -> Option<IoCallback> {
        let mut sources = self.sources.borrow_mut();
        match sources.get_mut(key) {
            Some(s) if s.gen == gen && s.cb.is_none() => {
                s.cb = Some(cb);
                None
            }
            _ => Some(cb),
        }
    }

    pub(crate) fn has_refed(&self) -> bool {
        self.refed.get() > 0
    }

    /// The kind label of source `key` ("tcp", "signal", ...).
    pub(crate) fn kind(&self, key: usize) -> &'static str {
        let kind = self.sources.borrow().get(key).map(|s| s.kind);
        kind.map_or("io", |k| self.kind_name(k))
    }

    pub(crate) fn len(&self) -> usize {
        self.sources.borrow().len()
    }

    pub(crate) fn describe(&self) -> Vec<(&'static str, RawFd, Interest, bool)> {
        let sources = self.sources.borrow();
        sources
            .iter()
            .map(|(_, s)| (self.kind_name(s.kind), s.fd, s.interest, s.refed))
            .collect()
    }

    /// Every registered source as `(key, gen, fd)`, for the fault shim.
    #[cfg(evloop_fault_injection)]
    pub(crate) fn tokens(&self) -> Vec<(usize, u32, RawFd)> {
        let sources = self.sources.borrow();
        sources.iter().map(|(k, s)| (k, s.gen, s.fd)).collect()
    }

    pub(crate) fn drain_all(&self) -> Vec<IoCallback> {
        self.refed.set(0);
        let mut sources = self.sources.borrow_mut();
        sources.drain().filter_map(|s| s.cb).collect()
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "watch is closed")
}

/// A registration made with [`watch`] or [`watch_fd`]. Dropping it (or
/// calling [`close`](Watch::close)) deregisters the fd and frees the slot;
/// no callback runs after that.
///
/// Like libuv's `uv_poll_t`, the fd must stay open while the watch is
/// active: close the watch first, then the fd.
pub struct Watch {
    inner: Weak<LoopState>,
    /// The slab key (at most `u32::MAX`, checked by `register`): 16
    /// bytes in all, part of every open stream.
    key: u32,
    gen: u32,
}

impl Watch {
    fn with<R>(&self, f: impl FnOnce(&Reactor) -> R) -> Option<R> {
        let inner = self.inner.upgrade()?;
        Some(f(&inner.reactor))
    }

    /// Changes which readiness the callback is told about.
    pub fn set_interest(&self, interest: Interest) -> io::Result<()> {
        self.with(|r| r.set_interest(self.key as usize, self.gen, interest))
            .unwrap_or_else(|| Err(closed()))
    }

    /// Deregisters now. Safe from inside the watch's own callback; an event
    /// already in the current batch is dropped.
    pub fn close(&self) {
        let garbage = self
            .with(|r| r.close(self.key as usize, self.gen))
            .flatten();
        if garbage.is_some() {
            log::debug!("close watch #{}", self.key);
        }
        drop(garbage);
    }

    /// Lets the loop exit while this watch is active.
    pub fn unref(&self) -> &Self {
        self.with(|r| r.set_ref(self.key as usize, self.gen, false));
        self
    }

    /// Makes this watch keep the loop alive again (the default).
    pub fn ref_(&self) -> &Self {
        self.with(|r| r.set_ref(self.key as usize, self.gen, true));
        self
    }

    /// Whether this watch keeps the loop alive.
    pub fn has_ref(&self) -> bool {
        self.with(|r| r.has_ref(self.key as usize, self.gen))
            .unwrap_or(false)
    }

    /// Whether it is still registered.
    pub fn is_active(&self) -> bool {
        self.with(|r| r.is_active(self.key as usize, self.gen))
            .unwrap_or(false)
    }

    /// The slab key (the low half of its mio token), for debugging and
    /// tests that check key reuse.
    pub fn key(&self) -> usize {
        self.key as usize
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("key", &self.key)
            .field("gen", &self.gen)
            .field("active", &self.is_active())
            .finish()
    }
}

/// The registration of a socket-like object: set once registered, emptied
/// on close. Shared by streams, listeners and UDP sockets so that close and
/// ref/unref are written once.
#[derive(Default)]
pub(crate) struct WatchSlot(RefCell<Option<Watch>>);

impl WatchSlot {
    pub(crate) fn set(&self, w: Watch) {
        let old = self.0.replace(Some(w));
        drop(old);
    }

    /// Deregisters (a no-op once closed). The watch is dropped after the
    /// borrow ends: dropping it drops its callback, which may hold the
    /// object that owns this slot.
    pub(crate) fn close(&self) {
        let w = self.0.borrow_mut().take();
        drop(w);
    }

    /// Sets whether the registration keeps the loop alive.
    pub(crate) fn set_ref(&self, refed: bool) {
        if let Some(w) = self.0.borrow().as_ref() {
            if refed {
                w.ref_();
            } else {
                w.unref();
            }
        }
    }
}

/// Registers any fd-backed source (a mio socket, a std pipe, a terminal)
/// with the current loop; `cb` runs on the loop thread with each readiness
/// edge. This is the primitive the socket, pipe and terminal layers build on.
///
/// The callback must drain the source (read until `WouldBlock`) or remember
/// that it has not: readiness is edge-triggered.
///
/// A regular file is not pollable on Linux: registering one fails with
/// `PermissionDenied` (`EPERM`) and leaves nothing behind.
///
/// # Panics
/// If no event loop is current on this thread.
///
/// ```
/// use std::cell::RefCell;
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use std::rc::Rc;
/// use evloop::{watch, Interest, Watch};
///
/// evloop::run(|| {
///     let (mut a, b) = UnixStream::pair().unwrap();
///     b.set_nonblocking(true).unwrap();
///     let b = Rc::new(b);
///     let me: Rc<RefCell<Option<Watch>>> = Rc::default();
///     let (reader, me2) = (b.clone(), me.clone());
///     let w = watch(&*b, Interest::READABLE, move |ready| {
///         assert!(ready.is_readable());
///         let mut buf = [0; 16];
///         let n = (&*reader).read(&mut buf).unwrap();
///         assert_eq!(&buf[..n], b"hi");
///         me2.borrow_mut().take(); // dropping the Watch deregisters it
///     })
///     .unwrap();
///     *me.borrow_mut() = Some(w);
///     a.write_all(b"hi").unwrap();
/// })
/// .unwrap();
/// ```
pub fn watch<S: AsRawFd + ?Sized>(
    source: &S,
    interest: Interest,
    cb: impl FnMut(Ready) + 'static,
) -> io::Result<Watch> {
    watch_fd(source.as_raw_fd(), interest, cb)
}

/// Registers a raw fd with the current loop; see [`watch`]. The fd must
/// stay open until the [`Watch`] is closed or dropped.
///
/// ```
/// use std::{cell::Cell, io::Write, os::fd::AsRawFd, os::unix::net::UnixStream, rc::Rc};
/// use evloop::Interest;
///
/// let seen = Rc::new(Cell::new(false));
/// let s = seen.clone();
/// evloop::run(move || {
///     let (mut a, b) = UnixStream::pair().unwrap();
///     b.set_nonblocking(true).unwrap();
///     let w = evloop::watch_fd(b.as_raw_fd(), Interest::READABLE, move |ready| {
///         s.set(ready.is_readable());
///     })
///     .unwrap();
///     a.write_all(b"x").unwrap();
///     evloop::set_timeout(std::time::Duration::from_millis(5), move || {
///         w.close(); // deregister before `b` closes
///         drop(b);
///     });
/// })
/// .unwrap();
/// assert!(seen.get());
/// ```
pub fn watch_fd(
    fd: RawFd,
    interest: Interest,
    cb: impl FnMut(Ready) + 'static,
) -> io::Result<Watch> {
    watch_kind(fd, interest, "fd", cb)
}

/// [`watch_fd`] with a kind label for `active_handles` (used by later
/// layers: "tcp", "pipe", ...).
pub(crate) fn watch_kind(
    fd: RawFd,
    interest: Interest,
    kind: &'static str,
    cb: impl FnMut(Ready) + 'static,
) -> io::Result<Watch> {
    watch_source(fd, interest, kind, io_callback(cb))
}

/// [`watch_kind`] for a source that is its own callback ([`OnReady`]).
pub(crate) fn watch_source(
    fd: RawFd,
    interest: Interest,
    kind: &'static str,
    cb: IoCallback,
) -> io::Result<Watch> {
    with_current(|inner: &Rc<LoopState>| {
        let (key, gen) = inner.reactor.register(fd, interest, kind, cb)?;
        log::debug!("watch {kind} fd {fd} as #{key} (gen {gen}) for {interest:?}");
        Ok(Watch {
            inner: Rc::downgrade(inner),
            key: key as u32,
            gen,
        })
    })
}

/// The generation-token bookkeeping on its own (no polling), so it can run
/// under Miri (`scripts/miri.sh`).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_never_equal_the_wakers() {
        for (key, gen) in [
            (0, 0),
            (1, 7),
            (u32::MAX as usize - 1, u32::MAX),
            (12345, 1 << 31),
        ] {
            let t = token(key, gen);
            assert_eq!(split(t), (key, gen));
            assert_ne!(t, WAKER_TOKEN);
        }
    }

    #[test]
    fn a_reused_key_gets_a_new_generation_and_stale_lookups_miss() {
        let reactor = Reactor::new(mio::Poll::new().unwrap());
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (ka, ga) = reactor
            .register(
                a.as_raw_fd(),
                Interest::READABLE,
                "test",
                io_callback(|_| {}),
            )
            .unwrap();
        assert!(reactor.close(ka, ga).is_some());
        assert!(reactor.close(ka, ga).is_none(), "closing twice is a no-op");
        // The key is reused at once, with another generation.
        let (kb, gb) = reactor
            .register(
                b.as_raw_fd(),
                Interest::READABLE,
                "test",
                io_callback(|_| {}),
            )
            .unwrap();
        assert_eq!(kb, ka);
        assert_ne!(gb, ga);
        // An event for the old source finds nothing.
        assert!(reactor.take_callback(ka, ga).is_none());
        assert!(!reactor.is_active(ka, ga));
        assert!(reactor.set_interest(ka, ga, Interest::WRITABLE).is_err());
        // The new one works, and a callback handed back after its source
        // closed comes back to the caller to drop.
        let cb = reactor
            .take_callback(kb, gb)
            .expect("the live source's callback");
        assert!(
            reactor.take_callback(kb, gb).is_none(),
            "taken while running"
        );
        assert!(reactor.restore_callback(kb, gb, cb).is_none());
        let cb = reactor.take_callback(kb, gb).unwrap();
        assert!(reactor.close(kb, gb).is_none(), "its callback was out");
        assert!(reactor.restore_callback(kb, gb, cb).is_some());
        assert_eq!(reactor.len(), 0);
        assert!(!reactor.has_refed());
    }

    #[test]
    fn generations_wrap_without_panicking() {
        let reactor = Reactor::new(mio::Poll::new().unwrap());
        reactor.next_gen.set(u32::MAX);
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (k1, g1) = reactor
            .register(
                a.as_raw_fd(),
                Interest::READABLE,
                "test",
                io_callback(|_| {}),
            )
            .unwrap();
        assert_eq!(g1, u32::MAX);
        reactor.close(k1, g1);
        let (k2, g2) = reactor
            .register(
                a.as_raw_fd(),
                Interest::READABLE,
                "test",
                io_callback(|_| {}),
            )
            .unwrap();
        assert_eq!((k2, g2), (k1, 0));
        assert!(reactor.take_callback(k1, g1).is_none());
        reactor.close(k2, g2);
    }
}
