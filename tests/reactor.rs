//! The reactor: generation tokens, bad registrations, cross-thread posts.

mod support;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use evloop::{set_timeout, watch, watch_fd, EventLoop, Interest, Watch};

type Slot = Rc<RefCell<Option<Watch>>>;

/// T01: A and B are ready in the same poll batch. The first of them to run
/// closes the other and registers C, which reuses the other's slab key. The
/// other's event, still in the batch, must not reach C (nor the closed one).
#[test]
fn stale_event_after_slab_key_reuse_is_dropped() {
    support::init_log();
    let mut reused = 0;
    for _ in 0..1000 {
        let el = EventLoop::new().unwrap();
        let _g = el.enter();
        let (mut aw, ar) = UnixStream::pair().unwrap();
        let (mut bw, br) = UnixStream::pair().unwrap();
        let (_cw, cr) = UnixStream::pair().unwrap();
        let cr = Rc::new(cr);
        aw.write_all(b"a").unwrap();
        bw.write_all(b"b").unwrap();

        let slots: [Slot; 2] = [Rc::default(), Rc::default()];
        let c_slot: Slot = Rc::default();
        let calls = Rc::new(Cell::new(0));
        let c_calls = Rc::new(Cell::new(0));
        let c_key = Rc::new(Cell::new(usize::MAX));
        let other_key = Rc::new(Cell::new(usize::MAX));
        for (i, fd) in [ar.as_raw_fd(), br.as_raw_fd()].into_iter().enumerate() {
            let other = slots[1 - i].clone();
            let (calls, c_calls, c_slot) = (calls.clone(), c_calls.clone(), c_slot.clone());
            let (cr, c_key, other_key) = (cr.clone(), c_key.clone(), other_key.clone());
            let w = watch_fd(fd, Interest::READABLE, move |_| {
                calls.set(calls.get() + 1);
                // Close the sibling (if it has not run yet) and reuse its key.
                let Some(sib) = other.borrow_mut().take() else {
                    return;
                };
                other_key.set(sib.key());
                drop(sib);
                let c_calls = c_calls.clone();
                let c = watch(&*cr, Interest::READABLE, move |_| {
                    c_calls.set(c_calls.get() + 1);
                })
                .unwrap();
                c_key.set(c.key());
                *c_slot.borrow_mut() = Some(c);
            })
            .unwrap();
            *slots[i].borrow_mut() = Some(w);
        }
        // Clean up in the check phase, right after the first poll phase
        // (which sees both fds ready: the bytes were written above). A
        // timer here could fire before the first poll on a loaded machine.
        let _ = evloop::set_immediate(move || {
            for s in &slots {
                s.borrow_mut().take();
            }
            c_slot.borrow_mut().take();
        });
        el.run().unwrap();
        assert_ne!(
            calls.get(),
            0,
            "neither A nor B was called in the first poll"
        );
        assert_eq!(calls.get(), 1, "the closed sibling got a callback");
        assert_eq!(c_calls.get(), 0, "C received its predecessor's event");
        if c_key.get() == other_key.get() {
            reused += 1;
        }
    }
    assert!(reused > 900, "key reuse exercised only {reused} times");
}

#[test]
fn bad_registrations_are_errors_and_leak_nothing() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let file = std::fs::File::open("Cargo.toml").unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    let first = watch(&a, Interest::READABLE, |_| {}).unwrap();
    for _ in 0..10_000 {
        // Not an open fd.
        let e = watch_fd(1_000_000, Interest::READABLE, |_| {}).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
        // A regular file is not pollable (EPERM).
        let e = watch(&file, Interest::READABLE, |_| {}).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied);
        // The same fd twice.
        let e = watch(&a, Interest::WRITABLE, |_| {}).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    }
    assert_eq!(
        el.active_handles().len(),
        1,
        "a failed registration leaked a slot"
    );
    first.close();
    first.close(); // twice is a no-op
    assert!(first.set_interest(Interest::READABLE).is_err());
    assert!(!first.is_active());
    drop(first);
    assert!(el.active_handles().is_empty());
    el.run().unwrap();
}

#[test]
fn unrefd_watch_lets_the_loop_exit() {
    support::init_log();
    let (a, _b) = UnixStream::pair().unwrap();
    let w = Rc::new(RefCell::new(None));
    let w2 = w.clone();
    evloop::run(move || {
        let watch = watch(&a, Interest::READABLE, |_| {}).unwrap();
        watch.unref();
        assert!(!watch.has_ref());
        *w2.borrow_mut() = Some((watch, a));
    })
    .unwrap();
    drop(w);
}

#[test]
fn posts_from_four_threads_all_run_exactly_once_on_the_loop_thread() {
    support::init_log();
    const PER_THREAD: usize = 100_000;
    let el = EventLoop::new().unwrap();
    let seen = Rc::new(Cell::new(0usize));
    let posted = Arc::new(AtomicUsize::new(0));
    let loop_thread = std::thread::current().id();
    {
        let _g = el.enter();
        // Keeps the loop alive until every post has arrived.
        let keep = set_timeout(Duration::from_secs(60), || panic!("posts were lost"));
        let seen = seen.clone();
        thread_local!(static COUNTER: RefCell<Option<(Rc<Cell<usize>>, evloop::Timeout)>> = const { RefCell::new(None) });
        COUNTER.with(|c| *c.borrow_mut() = Some((seen, keep)));
        let mut threads = vec![];
        for _ in 0..4 {
            let remote = el.remote();
            let posted = posted.clone();
            threads.push(std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    remote
                        .post(move || {
                            assert_eq!(std::thread::current().id(), loop_thread);
                            COUNTER.with(|c| {
                                let c = c.borrow();
                                let (seen, keep) = c.as_ref().unwrap();
                                seen.set(seen.get() + 1);
                                if seen.get() == 4 * PER_THREAD {
                                    keep.clear();
                                }
                            });
                        })
                        .unwrap();
                    posted.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        drop(_g);
        el.run().unwrap();
        for t in threads {
            t.join().unwrap();
        }
    }
    assert_eq!(seen.get(), 4 * PER_THREAD);
    assert_eq!(posted.load(Ordering::Relaxed), 4 * PER_THREAD);
    // After the loop is gone, posts are refused instead of lost silently.
    let remote = el.remote();
    drop(el);
    assert!(remote.is_closed());
    assert!(remote.post(|| {}).is_err());
}
