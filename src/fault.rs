//! Test-only fault injection (reliability harness H6; built only with
//! `RUSTFLAGS="--cfg evloop_fault_injection"`, a cfg flag rather than a
//! cargo feature, so no crate in a dependency graph can switch it on).
//!
//! A thin layer between the runtime and the syscalls it makes. With the
//! flag on, each hook consults a **per-thread plan** (the loop thread's:
//! a test sets it on the thread that runs the loop) and may, instead of or
//! around the real call:
//!
//! - fail the next `n` calls of an `Op` with an errno (`fail_next`),
//!   or every `n`th call (`fail_every`): `EINTR`, `EAGAIN`, `EMFILE`, ...
//!   The error is `io::Error::from_raw_os_error(errno)`, as the real call
//!   would give;
//! - cap what one read or write moves at `k` bytes (`cap`): a short read
//!   or a short write;
//! - deliver a spurious readable + writable event to every registered
//!   source every `n`th poll (`spurious_every`).
//!
//! An injected `EAGAIN` (`EWOULDBLOCK`) on a read, write or accept replaced
//! a call that would have made progress, so no readiness edge would ever
//! follow it. To model what the kernel does (an edge comes once data or
//! room does), the fd is **owed an edge**: the next poll does not block and
//! delivers a readable + writable event to that fd's source.
//!
//! A short read from a socket or pipe means its buffer was emptied (the
//! stream then skips the read that would say `WouldBlock`); a capped read
//! breaks that, so a stream registered while reads are capped does not
//! rely on it, as for a terminal. Set the cap before making the streams.
//!
//! Hooks and the ops they cover:
//!
//! | op | hooked at |
//! |---|---|
//! | `Op::Read`, `Op::Write` | `read`/`write` of TCP and Unix streams and pipes (`StreamIo` in `src/net/stream/mod.rs`, `src/net/pipe.rs`): callback streams, stdio and child stdio |
//! | `Op::Accept` | every listener's `accept`: callback TCP and Unix listeners and the async ones (`src/net/listener.rs`) |
//! | `Op::Send`, `Op::Recv` | the callback UDP socket (`src/net/udp.rs`) |
//! | `Op::Poll` | `epoll_wait` (`src/event_loop/phases.rs`, the poll phase) |
//! | `Op::Open` | [`fs::File::open`](crate::fs::File::open) (decided on the loop thread, failed on the pool) |
//! | `Op::Spawn` | [`process::Command::spawn`](crate::process::Command::spawn) |
//!
//! Not hooked: the reads and writes of the async sockets of `task::net`
//! (their own syscalls), the other fs operations, blocking stdout writes.
//!
//! With the flag off, every hook is an `#[inline(always)]` pass-through
//! and this module has no public items: zero cost.
//!
//! Tests: `tests/rel_faults.rs` and `tests/accept_faults.rs`
//! (`RUSTFLAGS="--cfg evloop_fault_injection" CARGO_TARGET_DIR=target/cfg-test
//! cargo test --test rel_faults --test accept_faults`).

#[cfg(evloop_fault_injection)]
pub use imp::*;
#[cfg(not(evloop_fault_injection))]
pub(crate) use off::*;

#[cfg(evloop_fault_injection)]
mod imp {
    use std::cell::RefCell;
    use std::collections::{HashMap, HashSet, VecDeque};
    use std::io;
    use std::os::fd::{AsRawFd, RawFd};
    use std::time::Duration;

    use crate::reactor::{Reactor, Ready};

    /// A hooked operation.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Op {
        /// A stream (TCP, Unix socket, pipe) read.
        Read,
        /// A stream (TCP, Unix socket, pipe) write.
        Write,
        /// A listener's accept (TCP or Unix, callback or async).
        Accept,
        /// A UDP send.
        Send,
        /// A UDP receive.
        Recv,
        /// The reactor's `epoll_wait`.
        Poll,
        /// Opening a file ([`fs::File::open`](crate::fs::File::open)).
        Open,
        /// Starting a child process.
        Spawn,
    }

    /// What was injected on this thread since the last [`reset`].
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Stats {
        /// Errors injected, per op.
        pub errors: HashMap<Op, u64>,
        /// Calls seen by the hooks (injected or not), per op.
        pub calls: HashMap<Op, u64>,
        /// Reads cut short by a [`cap`].
        pub short_reads: u64,
        /// Writes cut short by a [`cap`].
        pub short_writes: u64,
        /// Spurious events dispatched (one per source per spurious poll).
        pub spurious: u64,
        /// Edges delivered for fds owed one after an injected `EAGAIN`.
        pub owed_edges: u64,
    }

    impl Stats {
        /// Errors injected for `op`.
        pub fn errors(&self, op: Op) -> u64 {
            self.errors.get(&op).copied().unwrap_or(0)
        }
        /// Calls of `op` seen by its hook.
        pub fn calls(&self, op: Op) -> u64 {
            self.calls.get(&op).copied().unwrap_or(0)
        }
    }

    #[derive(Default)]
    struct Plan {
        next: HashMap<Op, VecDeque<i32>>,
        /// `(n, errno, calls since it was set)`.
        every: HashMap<Op, (u64, i32, u64)>,
        cap: HashMap<Op, usize>,
        spurious_every: u64,
        polls: u64,
        owed: HashSet<RawFd>,
        stats: Stats,
    }

    thread_local! {
        static PLAN: RefCell<Plan> = RefCell::default();
    }

    fn with<R>(f: impl FnOnce(&mut Plan) -> R) -> R {
        PLAN.with(|p| f(&mut p.borrow_mut()))
    }

    /// Makes the next `n` calls of `op` on this thread fail with `errno`
    /// (queued after failures planned before).
    pub fn fail_next(op: Op, n: usize, errno: i32) {
        with(|p| p.next.entry(op).or_default().extend((0..n).map(|_| errno)));
    }

    /// Makes every `n`th call of `op` on this thread fail with `errno`
    /// (counting calls from now); `n == 0` turns it off.
    pub fn fail_every(op: Op, n: u64, errno: i32) {
        with(|p| {
            if n == 0 {
                p.every.remove(&op);
            } else {
                p.every.insert(op, (n, errno, 0));
            }
        });
    }

    /// Caps each [`Op::Read`] or [`Op::Write`] on this thread at `bytes`
    /// (at least 1); `None` removes the cap.
    pub fn cap(op: Op, bytes: Option<usize>) {
        with(|p| match bytes {
            Some(b) => {
                p.cap.insert(op, b.max(1));
            }
            None => {
                p.cap.remove(&op);
            }
        });
    }

    /// Delivers a spurious readable + writable event to every registered
    /// source on every `n`th poll of this thread's loop; 0 turns it off.
    pub fn spurious_every(n: u64) {
        with(|p| {
            p.spurious_every = n;
            p.polls = 0;
        });
    }

    /// Clears the plan and the stats of this thread.
    pub fn reset() {
        with(|p| *p = Plan::default());
    }

    /// What was injected on this thread since the last [`reset`].
    pub fn stats() -> Stats {
        with(|p| p.stats.clone())
    }

    /// Counts a call of `op` and says whether it is to fail, and how.
    fn decide(p: &mut Plan, op: Op) -> Option<io::Error> {
        *p.stats.calls.entry(op).or_insert(0) += 1;
        let periodic = p.every.get_mut(&op).and_then(|(n, e, seen)| {
            *seen += 1;
            (*seen % *n == 0).then_some(*e)
        });
        let queued = p.next.get_mut(&op).and_then(VecDeque::pop_front);
        let errno = queued.or(periodic)?;
        *p.stats.errors.entry(op).or_insert(0) += 1;
        Some(io::Error::from_raw_os_error(errno))
    }

    /// Remembers that `fd` is owed an edge after an injected `EAGAIN`.
    fn owe(p: &mut Plan, fd: RawFd, e: &io::Error) {
        if e.kind() == io::ErrorKind::WouldBlock {
            p.owed.insert(fd);
        }
    }

    /// The plan's verdict on a read or write of `len` bytes on `src`: an
    /// injected error (the fd is then owed an edge), or how many bytes the
    /// real call may move (fewer under a cap: a short read or write).
    fn allowed<S: AsRawFd + ?Sized>(src: &S, op: Op, len: usize) -> io::Result<usize> {
        with(|p| match decide(p, op) {
            Some(e) => {
                owe(p, src.as_raw_fd(), &e);
                Err(e)
            }
            None => {
                let cap = p.cap.get(&op).copied().unwrap_or(usize::MAX);
                if cap < len {
                    if op == Op::Read {
                        p.stats.short_reads += 1;
                    } else {
                        p.stats.short_writes += 1;
                    }
                }
                Ok(cap.min(len))
            }
        })
    }

    /// Hook: a stream read into `buf` by `f` (the real syscall).
    #[inline]
    pub(crate) fn read<S: AsRawFd + ?Sized>(
        src: &S,
        buf: &mut [u8],
        f: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let len = allowed(src, Op::Read, buf.len())?;
        f(&mut buf[..len])
    }

    /// Hook: a stream write of `buf` by `f` (the real syscall).
    #[inline]
    pub(crate) fn write<S: AsRawFd + ?Sized>(
        src: &S,
        buf: &[u8],
        f: impl FnOnce(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let len = allowed(src, Op::Write, buf.len())?;
        f(&buf[..len])
    }

    /// Hook: any other call `f` of `op` on `src` (accept, send, receive,
    /// poll).
    #[inline]
    pub(crate) fn call<S: AsRawFd + ?Sized, T>(
        op: Op,
        src: &S,
        f: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        with(|p| match decide(p, op) {
            Some(e) => {
                owe(p, src.as_raw_fd(), &e);
                Err(e)
            }
            None => Ok(()),
        })?;
        f()
    }

    /// Hook: an operation with no fd yet (open, spawn): `Err` if it is to
    /// fail.
    #[inline]
    pub(crate) fn check(op: Op) -> io::Result<()> {
        with(|p| decide(p, op)).map_or(Ok(()), Err)
    }

    /// Hook: the poll timeout; zero while an fd is owed an edge.
    #[inline]
    pub(crate) fn poll_timeout(t: Option<Duration>) -> Option<Duration> {
        if with(|p| p.owed.is_empty()) {
            t
        } else {
            Some(Duration::ZERO)
        }
    }

    /// Hook: events to dispatch after a poll's real batch: edges owed to
    /// fds, and spurious events for every source every `n`th poll.
    pub(crate) fn extra_events(reactor: &Reactor) -> Vec<(usize, u32, Ready)> {
        let rw = Ready::readable_writable();
        with(|p| {
            p.polls += 1;
            let spurious = p.spurious_every != 0 && p.polls % p.spurious_every == 0;
            if !spurious && p.owed.is_empty() {
                return Vec::new();
            }
            let owed = std::mem::take(&mut p.owed);
            let mut out = Vec::new();
            for (key, gen, fd) in reactor.tokens() {
                if spurious {
                    p.stats.spurious += 1;
                } else if owed.contains(&fd) {
                    p.stats.owed_edges += 1;
                } else {
                    continue;
                }
                out.push((key, gen, rw));
            }
            out
        })
    }

    /// Whether a short read still means the fd's buffer was drained (the
    /// stream's skip-the-`WouldBlock`-read shortcut): not while reads are
    /// capped, since then the kernel may hold more.
    pub(crate) fn short_read_drains() -> bool {
        with(|p| !p.cap.contains_key(&Op::Read))
    }
}

/// The hooks with the flag off: pass-throughs that compile to the call
/// itself.
#[cfg(not(evloop_fault_injection))]
mod off {
    use std::io;
    use std::time::Duration;

    use crate::reactor::{Reactor, Ready};

    /// The hooked operations (only named at the call sites).
    #[derive(Clone, Copy)]
    pub(crate) enum Op {
        Accept,
        Send,
        Recv,
        Poll,
        Open,
        Spawn,
    }

    #[inline(always)]
    pub(crate) fn read<S: ?Sized>(
        _: &S,
        buf: &mut [u8],
        f: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        f(buf)
    }

    #[inline(always)]
    pub(crate) fn write<S: ?Sized>(
        _: &S,
        buf: &[u8],
        f: impl FnOnce(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        f(buf)
    }

    #[inline(always)]
    pub(crate) fn call<S: ?Sized, T>(
        _: Op,
        _: &S,
        f: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        f()
    }

    #[inline(always)]
    pub(crate) fn check(_: Op) -> io::Result<()> {
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn poll_timeout(t: Option<Duration>) -> Option<Duration> {
        t
    }

    #[inline(always)]
    pub(crate) fn extra_events(_: &Reactor) -> [(usize, u32, Ready); 0] {
        []
    }

    #[inline(always)]
    pub(crate) fn short_read_drains() -> bool {
        true
    }
}
