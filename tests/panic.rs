//! Panics in callbacks: contained, reported, and the loop stays usable and
//! droppable without leaks. Memory is measured with a counting allocator
//! (live bytes), fds with a census of /proc/self/fd. The tests in this file
//! take one lock so that their measurements do not see each other.

mod support;

use std::cell::Cell;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Mutex;

use evloop::{
    next_tick, queue_microtask, set_immediate, set_interval, set_timeout, watch, Error, EventLoop,
    Interest,
};
use support::alloc::live;
use support::ms;

/// H1: this binary's heap, counted (`support::alloc`).
#[global_allocator]
static HEAP: support::alloc::Counting = support::alloc::Counting;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn quiet_panics() {
    // The default hook prints each caught panic; keep the output readable.
    std::panic::set_hook(Box::new(|_| {}));
}

/// Schedules a panic from one kind of callback.
fn panic_from(site: &str) {
    match site {
        "timer" => {
            let _ = set_timeout(ms(1), || panic!("boom"));
        }
        "immediate" => {
            let _ = set_immediate(|| panic!("boom"));
        }
        "microtask" => queue_microtask(|| panic!("boom")),
        "tick" => next_tick(|| panic!("boom")),
        "interval" => {
            let _ = set_interval(ms(1), || panic!("boom"));
        }
        "io" => {
            let (mut a, b) = UnixStream::pair().unwrap();
            a.write_all(b"x").unwrap();
            let w = watch(&b, Interest::READABLE, |_| panic!("boom")).unwrap();
            // Keep the socket and the watch alive past the panic; the timer
            // closes them (watch first) so the loop can end.
            let _ = set_timeout(ms(50), move || {
                drop(w);
                drop((a, b));
            });
        }
        "pending" => {
            // A cross-thread post runs in the pending phase.
            let r = current_remote();
            let keep = set_timeout(ms(1000), || {});
            std::thread::spawn(move || {
                let _ = r.post(|| panic!("boom"));
            });
            let _ = set_timeout(ms(20), move || keep.clear());
        }
        _ => unreachable!(),
    }
}

thread_local!(static REMOTE: std::cell::RefCell<Option<evloop::Remote>> = const { std::cell::RefCell::new(None) });
fn current_remote() -> evloop::Remote {
    REMOTE.with(|r| r.borrow().clone().unwrap())
}

const SITES: [&str; 7] = [
    "timer",
    "immediate",
    "microtask",
    "tick",
    "interval",
    "io",
    "pending",
];

#[test]
fn a_panic_in_any_callback_returns_an_error_from_run() {
    let _s = serial();
    quiet_panics();
    for site in SITES {
        let el = EventLoop::new().unwrap();
        REMOTE.with(|r| *r.borrow_mut() = Some(el.remote()));
        let survived = Rc::new(Cell::new(false));
        {
            let _g = el.enter();
            panic_from(site);
            let s = survived.clone();
            let _ = set_timeout(ms(30), move || s.set(true));
        }
        let err = el.run().expect_err(site);
        match &err {
            Error::Panicked(p) => {
                assert_eq!(p.message(), "boom", "{site}");
                assert!(err.to_string().contains("boom"));
            }
            other => panic!("{site}: {other:?}"),
        }
        // The rest of the loop is intact: run again and the other timer
        // fires (an interval that panics again would stop it again).
        if site != "interval" {
            el.run().unwrap();
            assert!(survived.get(), "{site}: other work was lost");
        }
        REMOTE.with(|r| r.borrow_mut().take());
    }
}

#[test]
fn a_panic_in_main_is_reported_by_evloop_run() {
    let _s = serial();
    quiet_panics();
    let err = evloop::run(|| panic!("in main")).unwrap_err();
    match err {
        Error::Panicked(p) => {
            assert_eq!(p.origin(), "main");
            assert_eq!(p.message(), "in main");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_uncaught_panic_handler_keeps_the_loop_running() {
    let _s = serial();
    quiet_panics();
    let el = EventLoop::new().unwrap();
    let caught = Rc::new(std::cell::RefCell::new(vec![]));
    let c = caught.clone();
    el.on_uncaught_exception(move |e, _| {
        let evloop::Error::Panicked(p) = e else {
            panic!("{e}")
        };
        c.borrow_mut()
            .push(format!("{}:{}", p.origin(), p.message()))
    });
    let after = Rc::new(Cell::new(0));
    {
        let _g = el.enter();
        let _ = set_timeout(ms(1), || panic!("t"));
        queue_microtask(|| panic!("m"));
        let a = after.clone();
        queue_microtask(move || a.set(a.get() + 1));
        let a = after.clone();
        let _ = set_timeout(ms(5), move || a.set(a.get() + 1));
    }
    el.run().unwrap();
    assert_eq!(*caught.borrow(), ["microtask:m", "timer:t"]);
    assert_eq!(after.get(), 2, "work after the panics still ran");
}

/// Live bytes and fds after building a loop full of work, panicking in it,
/// and dropping it, return to the baseline.
#[test]
fn dropping_a_loop_after_a_panic_leaks_nothing() {
    let _s = serial();
    quiet_panics();
    let round = || {
        let el = EventLoop::new().unwrap();
        REMOTE.with(|r| *r.borrow_mut() = Some(el.remote()));
        {
            let _g = el.enter();
            for site in SITES {
                panic_from(site);
            }
            let big = Rc::new(vec![0u8; 1 << 20]);
            for i in 0..1000 {
                let b = big.clone();
                let _ = set_timeout(ms(10_000 + i), move || drop(b));
                let b = big.clone();
                let _ = set_immediate(move || drop(b));
                let b = big.clone();
                queue_microtask(move || drop(b));
            }
        }
        assert!(el.run().is_err());
        REMOTE.with(|r| r.borrow_mut().take());
        drop(el);
    };
    round(); // warm up: thread-locals, lazy statics, logger
    std::thread::sleep(ms(50)); // let the helper thread from "pending" exit
    let fds = support::fds::fd_count();
    let before = live();
    for _ in 0..5 {
        round();
    }
    std::thread::sleep(ms(50));
    let grown = live() - before;
    assert!(grown < 16 * 1024, "live heap grew by {grown} bytes");
    assert_eq!(support::fds::fd_count(), fds, "fd leak");
}

#[test]
fn closing_the_loop_closes_its_fds() {
    let _s = serial();
    support::init_log();
    let before = support::fds::fd_count();
    for _ in 0..100 {
        let el = EventLoop::new().unwrap();
        let _g = el.enter();
        let (a, _b) = UnixStream::pair().unwrap();
        let _w = watch(&a, Interest::READABLE, |_| {}).unwrap();
    }
    assert_eq!(support::fds::fd_count(), before);
}

/// A closure whose captures panic when dropped (the loop drops a watch's
/// callback after it closed itself): reported as a panic, and the loop
/// stays usable.
#[test]
fn a_panic_while_dropping_a_callback_is_contained() {
    let _s = serial();
    quiet_panics();
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("bomb");
        }
    }
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"x").unwrap();
        let slot: Rc<std::cell::RefCell<Option<evloop::Watch>>> = Rc::default();
        let s2 = slot.clone();
        let bomb = Bomb;
        let keep = (a, b);
        let fd = std::os::fd::AsRawFd::as_raw_fd(&keep.1);
        *slot.borrow_mut() = Some(
            evloop::watch_fd(fd, Interest::READABLE, move |_| {
                let _ = (&bomb, &keep);
                s2.borrow_mut().take(); // closes itself: the loop drops us
            })
            .unwrap(),
        );
    }
    match el.run() {
        Err(Error::Panicked(p)) => assert_eq!(p.message(), "bomb"),
        other => panic!("{other:?}"),
    }
    // The loop still works.
    let ran = Rc::new(Cell::new(false));
    {
        let _g = el.enter();
        let r = ran.clone();
        let _ = set_timeout(ms(1), move || r.set(true));
    }
    el.run().unwrap();
    assert!(ran.get());
}

#[test]
fn a_panic_handler_can_remove_itself() {
    let _s = serial();
    quiet_panics();
    let el = Rc::new(EventLoop::new().unwrap());
    let calls = Rc::new(Cell::new(0));
    let (c, el2) = (calls.clone(), Rc::downgrade(&el));
    el.on_uncaught_exception(move |_, _| {
        c.set(c.get() + 1);
        el2.upgrade().unwrap().clear_uncaught_exception();
    });
    {
        let _g = el.enter();
        let _ = set_timeout(ms(1), || panic!("first"));
        let _ = set_timeout(ms(5), || panic!("second"));
    }
    // The handler takes the first panic and removes itself; the second is
    // uncaught and stops the loop.
    match el.run() {
        Err(Error::Panicked(p)) => assert_eq!(p.message(), "second"),
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.get(), 1);
}

/// The same for a timer: a one-shot timeout whose captures panic on drop.
#[test]
fn a_panic_while_dropping_a_fired_timer_is_contained() {
    let _s = serial();
    quiet_panics();
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("timer bomb");
        }
    }
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let bomb = Bomb;
        let _ = set_timeout(ms(1), move || {
            let _ = &bomb;
        });
    }
    match el.run() {
        Err(Error::Panicked(p)) => assert_eq!(p.message(), "timer bomb"),
        other => panic!("{other:?}"),
    }
    el.run().unwrap();
}

// process.on('uncaughtException', (e) => console.log('caught', e.message));
// setTimeout(() => {
//   console.log('A');
//   process.nextTick(() => { throw new Error('t1'); });
//   process.nextTick(() => console.log('t2'));
//   Promise.resolve().then(() => console.log('p1'));
// }, 1);
// setTimeout(() => console.log('B'), 1);
// const s = Date.now(); while (Date.now() - s < 5);
//
// node: A, caught t1, B, t2, p1 (after a throw in a tick, the queues resume
// at the next callback boundary)
#[test]
fn after_a_panicking_tick_the_queues_resume_at_the_next_callback() {
    let _s = serial();
    quiet_panics();
    let log = support::Log::new();
    let el = EventLoop::new().unwrap();
    let l = log.clone();
    el.on_uncaught_exception(move |e, _| match e {
        evloop::Error::Panicked(p) => l.push(format!("caught {}", p.message())),
        other => panic!("{other}"),
    });
    let l = log.clone();
    el.run_main(move || {
        let la = l.clone();
        let _ = set_timeout(ms(1), move || {
            la.push("A");
            next_tick(|| panic!("t1"));
            next_tick(la.rec("t2"));
            queue_microtask(la.rec("p1"));
        });
        let _ = set_timeout(ms(1), l.rec("B"));
        support::spin(ms(5));
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(log.take(), ["A", "caught t1", "B", "t2", "p1"]);
}
