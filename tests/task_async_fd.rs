//! `evloop::task::AsyncFd`: readiness of any fd for tasks. Pipes, socket
//! pairs, an eventfd; both directions at once; EOF; `into_inner`; fds the
//! reactor refuses or that are closed behind its back.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use evloop::task::{sleep, yield_now, AsyncFd};
use evloop::{block_on, spawn, Interest};

/// A pipe, both ends nonblocking: `(read end, write end)`.
fn pipe() -> (File, File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is an array of two c_ints for pipe(2) to fill.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", io::Error::last_os_error());
    for fd in fds {
        set_nonblocking(fd);
    }
    // SAFETY: pipe(2) succeeded: both fds are open and owned by nothing else.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an open fd with integer arguments only.
    let rc = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)
    };
    assert_eq!(rc, 0, "fcntl: {}", io::Error::last_os_error());
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Writes into `w` until it would block; returns the bytes written.
fn fill(mut w: impl Write) -> usize {
    let chunk = [7u8; 4096];
    let mut total = 0;
    loop {
        match w.write(&chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
            Err(e) => panic!("fill: {e}"),
        }
    }
}

/// Reads from `r` until it would block (or EOF); returns the bytes read.
fn drain(mut r: impl Read) -> usize {
    let mut buf = [0u8; 8192];
    let mut total = 0;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return total,
            Err(e) => panic!("drain: {e}"),
        }
    }
}

#[test]
fn a_task_reads_a_pipe_that_another_task_writes() {
    let got = block_on(async {
        let (r, w) = pipe();
        let r = AsyncFd::with_interest(r, Interest::READABLE).unwrap();
        let w = AsyncFd::with_interest(w, Interest::WRITABLE).unwrap();
        let writer = spawn(async move {
            for i in 0..50u8 {
                let msg = [i; 100];
                let n = w.write_with(|f| (&*f).write(&msg)).await.unwrap();
                assert_eq!(n, 100, "a pipe with room takes 100 bytes at once");
                if i % 10 == 0 {
                    yield_now().await;
                }
            }
            // Dropping `w` deregisters, then closes the write end: EOF.
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 333];
        loop {
            let mut guard = r.readable().await.unwrap();
            match guard.try_io(|f| (&*f).read(&mut buf)) {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => panic!("read: {e}"),
                Err(_would_block) => continue,
            }
        }
        writer.await.unwrap();
        got
    })
    .unwrap();
    let want: Vec<u8> = (0..50u8).flat_map(|i| [i; 100]).collect();
    assert_eq!(got, want);
}

#[test]
fn writable_on_a_full_pipe_waits_until_the_reader_drains_it() {
    block_on(async {
        let (mut r, w) = pipe();
        let filled = fill(&w);
        assert!(filled > 0);
        let w = AsyncFd::with_interest(w, Interest::WRITABLE).unwrap();
        let drained = Rc::new(Cell::new(false));
        let done = Rc::new(Cell::new(false));
        let (d, dn) = (drained.clone(), done.clone());
        let writer = spawn(async move {
            let n = w.write_with(|f| (&*f).write(b"more")).await.unwrap();
            assert!(d.get(), "writable only after the reader made room");
            dn.set(true);
            n
        });
        // Let the loop poll a few times: the pipe is still full.
        for _ in 0..3 {
            sleep(Duration::from_millis(1)).await;
        }
        assert!(!done.get(), "the writer waits while the pipe is full");
        drained.set(true);
        assert_eq!(drain(&mut r), filled);
        assert_eq!(writer.await.unwrap(), 4);
        let mut buf = [0; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 4);
    })
    .unwrap();
}

#[test]
fn one_task_awaits_readable_while_another_awaits_writable() {
    block_on(async {
        let (a, mut b) = pair();
        fill(&a);
        let a = Rc::new(AsyncFd::new(a).unwrap());
        let order = Rc::new(std::cell::RefCell::new(Vec::new()));
        let (a1, o1) = (a.clone(), order.clone());
        let reader = spawn(async move {
            let mut buf = [0; 8];
            let n = a1.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
            o1.borrow_mut().push("read");
            buf[..n].to_vec()
        });
        let (a2, o2) = (a.clone(), order.clone());
        let writer = spawn(async move {
            let n = a2.write_with(|s| (&*s).write(b"w")).await.unwrap();
            o2.borrow_mut().push("write");
            n
        });
        sleep(Duration::from_millis(1)).await;
        assert!(order.borrow().is_empty(), "nothing to read, no room");
        // Make `a` readable: only the reader goes on.
        b.write_all(b"hi").unwrap();
        assert_eq!(reader.await.unwrap(), b"hi");
        assert_eq!(*order.borrow(), ["read"]);
        // Make room: now the writer goes on.
        drain(&mut b);
        assert_eq!(writer.await.unwrap(), 1);
        assert_eq!(*order.borrow(), ["read", "write"]);
    })
    .unwrap();
}

#[test]
fn every_task_waiting_on_a_direction_is_woken() {
    block_on(async {
        let (a, mut b) = pair();
        let a = Rc::new(AsyncFd::with_interest(a, Interest::READABLE).unwrap());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let a = a.clone();
                spawn(async move {
                    // Wait, do not read: every waiter sees the same edge.
                    a.readable().await.unwrap();
                })
            })
            .collect();
        b.write_all(b"x").unwrap();
        for w in waiters {
            w.await.unwrap();
        }
    })
    .unwrap();
}

#[test]
fn eof_and_hang_up_wake_readable() {
    block_on(async {
        // A socket pair: the peer closes.
        let (a, b) = pair();
        let a = AsyncFd::new(a).unwrap();
        let closer = spawn(async move {
            yield_now().await;
            drop(b);
        });
        let mut buf = [0; 8];
        assert_eq!(a.read_with(|s| (&*s).read(&mut buf)).await.unwrap(), 0);
        // EOF stays ready: no further edge would come for it.
        let mut guard = a.readable().await.unwrap();
        guard.clear_ready();
        assert_eq!(a.read_with(|s| (&*s).read(&mut buf)).await.unwrap(), 0);
        closer.await.unwrap();

        // A pipe: the write end closes (HUP on the read end).
        let (r, w) = pipe();
        let r = AsyncFd::with_interest(r, Interest::READABLE).unwrap();
        spawn(async move {
            sleep(Duration::from_millis(1)).await;
            drop(w);
        });
        assert_eq!(r.read_with(|f| (&*f).read(&mut buf)).await.unwrap(), 0);
    })
    .unwrap();
}

#[test]
fn into_inner_returns_the_fd_open_and_deregistered() {
    block_on(async {
        let (a, mut b) = pair();
        let fd = AsyncFd::new(a).unwrap();
        let raw = fd.as_raw_fd();
        let a = fd.into_inner();
        assert_eq!(a.as_raw_fd(), raw);
        // Still open and usable.
        b.write_all(b"ok").unwrap();
        let mut buf = [0; 4];
        assert_eq!((&a).read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ok");
        // Deregistered: registering it again works (epoll would say
        // EEXIST otherwise), and it still reaches a task.
        let fd = AsyncFd::new(a).unwrap();
        b.write_all(b"again").unwrap();
        let n = fd.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], b"agai");
    })
    .unwrap();
}

#[test]
fn get_ref_get_mut_and_the_mut_guard() {
    block_on(async {
        let (a, mut b) = pair();
        let mut fd = AsyncFd::new(a).unwrap();
        assert_eq!(fd.get_ref().as_raw_fd(), fd.as_raw_fd());
        fd.get_mut().set_nonblocking(true).unwrap();
        b.write_all(b"mut").unwrap();
        let mut buf = [0; 8];
        let n = loop {
            let mut guard = fd.readable_mut().await.unwrap();
            if let Ok(r) = guard.try_io(|s| s.read(&mut buf)) {
                break r.unwrap();
            }
        };
        assert_eq!(&buf[..n], b"mut");
        // Drained: the next try sees WouldBlock and clears readiness.
        let mut guard = fd.readable_mut().await.unwrap();
        assert!(guard.try_io(|s| s.read(&mut buf)).is_err());
    })
    .unwrap();
}

#[test]
fn the_direction_not_registered_is_an_error() {
    block_on(async {
        let (a, _b) = pair();
        let fd = AsyncFd::with_interest(a, Interest::WRITABLE).unwrap();
        let err = fd.readable().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        fd.writable().await.unwrap();
    })
    .unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn an_eventfd_counts_what_another_task_adds() {
    block_on(async {
        // SAFETY: eventfd(2) with integer arguments.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        assert!(raw >= 0, "eventfd: {}", io::Error::last_os_error());
        // SAFETY: eventfd succeeded: `raw` is open and owned by nothing else.
        let efd = Rc::new(AsyncFd::new(unsafe { File::from_raw_fd(raw) }).unwrap());
        let e = efd.clone();
        let adder = spawn(async move {
            for n in [1u64, 2, 3] {
                e.write_with(|f| (&*f).write(&n.to_ne_bytes()))
                    .await
                    .unwrap();
                yield_now().await;
            }
        });
        let mut total = 0;
        while total < 6 {
            let mut buf = [0u8; 8];
            let n = efd.read_with(|f| (&*f).read(&mut buf)).await.unwrap();
            assert_eq!(n, 8);
            total += u64::from_ne_bytes(buf);
        }
        assert_eq!(total, 6);
        adder.await.unwrap();
    })
    .unwrap();
}

#[test]
fn a_regular_file_is_refused_with_an_error() {
    block_on(async {
        let file = File::open("Cargo.toml").unwrap();
        let err = AsyncFd::new(file).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        let file = File::open("Cargo.toml").unwrap();
        let raw = file.as_raw_fd();
        let (err, file) = AsyncFd::try_with_interest(file, Interest::READABLE).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        assert_eq!(file.as_raw_fd(), raw);
        // The loop goes on, nothing left registered.
        sleep(Duration::from_millis(1)).await;
        assert!(evloop::active_handles().is_empty());
    })
    .unwrap();
}

/// An fd number the `AsyncFd` does not own.
struct Borrowed(RawFd);

impl AsRawFd for Borrowed {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

#[test]
fn an_fd_closed_behind_its_back_does_not_break_the_loop() {
    block_on(async {
        let (a, mut b) = pair();
        let fd = AsyncFd::new(Borrowed(a.as_raw_fd())).unwrap();
        drop(a); // closed while registered: what the docs say not to do
        assert!(b.write_all(b"x").is_err(), "the peer is gone: EPIPE");
        sleep(Duration::from_millis(1)).await;
        drop(fd); // deregistering a closed fd only logs
        assert!(evloop::active_handles().is_empty());
        // The loop still works, for new fds too.
        let (c, mut d) = pair();
        let c = AsyncFd::new(c).unwrap();
        d.write_all(b"y").unwrap();
        let mut buf = [0; 2];
        assert_eq!(c.read_with(|s| (&*s).read(&mut buf)).await.unwrap(), 1);
    })
    .unwrap();
}

#[test]
fn dropping_it_deregisters() {
    block_on(async {
        let (a, _b) = pair();
        let fd = AsyncFd::new(a).unwrap();
        assert_eq!(evloop::active_handles().len(), 1);
        drop(fd);
        assert!(evloop::active_handles().is_empty());
    })
    .unwrap();
}

#[cfg(target_os = "linux")]
#[test]
fn a_timerfd_is_read_when_it_expires() {
    block_on(async {
        // SAFETY: timerfd_create(2) with integer arguments.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        assert!(raw >= 0, "timerfd_create: {}", io::Error::last_os_error());
        // SAFETY: timerfd_create succeeded: `raw` is open and owned by
        // nothing else.
        let tfd =
            AsyncFd::with_interest(unsafe { File::from_raw_fd(raw) }, Interest::READABLE).unwrap();
        let every_ms = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        let spec = libc::itimerspec {
            it_interval: every_ms,
            it_value: every_ms,
        };
        // SAFETY: `raw` is an open timerfd (owned by `tfd`); `spec` lives
        // across the call and the old value is not asked for.
        let rc = unsafe { libc::timerfd_settime(raw, 0, &spec, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "timerfd_settime: {}", io::Error::last_os_error());
        let mut expirations = 0;
        while expirations < 3 {
            let mut buf = [0u8; 8];
            let n = tfd.read_with(|f| (&*f).read(&mut buf)).await.unwrap();
            assert_eq!(n, 8);
            expirations += u64::from_ne_bytes(buf);
        }
    })
    .unwrap();
}

/// Whether `fd.readable()` would return at once (one poll, no waiting).
async fn read_ready_now<T: AsRawFd>(fd: &AsyncFd<T>) -> bool {
    std::future::poll_fn(|cx| std::task::Poll::Ready(fd.poll_read_ready(cx).is_ready())).await
}

#[test]
fn clear_ready_keeps_an_edge_that_came_after_the_guard() {
    block_on(async {
        let (a, mut b) = pair();
        let fd = AsyncFd::with_interest(a, Interest::READABLE).unwrap();
        b.write_all(b"1").unwrap();
        let mut guard = fd.readable().await.unwrap();
        // More data, and its edge, arrive while the guard is held.
        b.write_all(b"2").unwrap();
        sleep(Duration::from_millis(1)).await;
        guard.clear_ready();
        assert!(read_ready_now(&fd).await, "the later edge was kept");
        // Read everything: WouldBlock inside try_io now clears for real.
        let mut buf = [0; 4];
        let n = fd.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], b"12");
        let mut guard = fd.readable().await.unwrap();
        assert!(guard.try_io(|s| (&*s).read(&mut buf)).is_err());
        assert!(!read_ready_now(&fd).await, "drained: waits for a new edge");
    })
    .unwrap();
}

#[test]
fn a_task_spinning_on_an_always_ready_fd_still_lets_others_run() {
    block_on(async {
        let (a, b) = pair();
        drop(b); // EOF: readable for good, every read returns 0 at once
        let fd = AsyncFd::with_interest(a, Interest::READABLE).unwrap();
        let stop = Rc::new(Cell::new(false));
        let s = stop.clone();
        spawn(async move {
            sleep(Duration::from_millis(1)).await;
            s.set(true);
        });
        let mut reads = 0u64;
        let mut buf = [0; 8];
        // Never `Pending` by itself: only the task budget lets the timer in.
        while !stop.get() {
            assert_eq!(fd.read_with(|s| (&*s).read(&mut buf)).await.unwrap(), 0);
            reads += 1;
        }
        assert!(reads > 0);
    })
    .unwrap();
}
