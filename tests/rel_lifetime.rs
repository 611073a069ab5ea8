//! Reliability suite, section C: loop lifetime, ref/unref, shutdown (T15, T16
//! of the reliability catalogue, TESTS.md in the team's shared docs). Figures
//! are printed as `FIGURE Tnn: ...`.
//!
//! Already covered elsewhere, not repeated: `run()` on an empty loop
//! (`tests/run_modes.rs::run_on_an_empty_loop_returns_at_once`), `stop()`
//! from a callback then `run()` again
//! (`run_modes.rs::stop_from_a_callback_returns_after_the_iteration_and_run_resumes`),
//! `stop()` from another thread (`run_modes.rs::stop_from_another_thread`),
//! nested `run()` (`run_modes.rs::nested_run_is_an_error_not_a_deadlock`).

mod support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use evloop::net::{Stream, TcpListener, UdpSocket};
use evloop::process::{on_signal, Command, Signal, Stdio};
use evloop::{set_immediate, set_timeout, EventLoop};
use support::{fds::FdCensus, watchdog::Test};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// T15: for each handle kind, ref'd keeps the loop alive and unref'd lets
/// `run()` return; unref from inside a check (immediate) callback works.
/// Requests in flight (fs, pool jobs) have no unref, as in libuv: they
/// keep the loop alive until done.
/// One row of the T15 matrix: make a handle, then its (unref, ref_, close)
/// closures.
macro_rules! handle_case {
    ($make:expr, |$h:ident| $close:expr $(, setup |$s:ident| $setup:expr)?) => {
        Box::new(|| {
            let handle = Rc::new($make);
            $({
                let $s = &handle;
                $setup;
            })?
            let (a, b, c) = (handle.clone(), handle.clone(), handle);
            (
                Box::new(move || {
                    a.unref();
                }) as Box<dyn Fn()>,
                Box::new(move || {
                    b.ref_();
                }) as Box<dyn Fn()>,
                Box::new(move || {
                    let $h = &c;
                    $close;
                }) as Box<dyn Fn()>,
            )
        }) as Case
    };
}

#[test]
fn t15_ref_unref_matrix() {
    let t = Test::start("T15", Duration::from_secs(60));
    support::setup::warm_process_machinery();
    let fds = FdCensus::new();
    let mut rows = Vec::new();
    // Each case makes a handle on `el` and returns (unref, ref, cleanup).
    type Case = Box<dyn Fn() -> (Box<dyn Fn()>, Box<dyn Fn()>, Box<dyn Fn()>)>;
    let cases: Vec<(&str, Case)> = vec![
        (
            "timer",
            handle_case!(set_timeout(Duration::from_secs(3600), || {}), |h| h.clear()),
        ),
        (
            "immediate",
            handle_case!(set_immediate(|| {}), |h| h.clear()),
        ),
        (
            "tcp listener",
            handle_case!(TcpListener::bind("127.0.0.1:0", |_| {}).unwrap(), |h| h
                .close()),
        ),
        (
            "tcp stream",
            Box::new(|| {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let slot: Rc<RefCell<Option<Stream>>> = Rc::default();
                let s2 = slot.clone();
                evloop::net::connect(l.local_addr().unwrap(), move |r| {
                    *s2.borrow_mut() = Some(r.unwrap());
                });
                let (a, b, c) = (slot.clone(), slot.clone(), slot);
                let l = Rc::new(l);
                (
                    Box::new(move || {
                        if let Some(s) = a.borrow().as_ref() {
                            s.unref();
                        }
                    }),
                    Box::new(move || {
                        if let Some(s) = b.borrow().as_ref() {
                            s.ref_();
                        }
                    }),
                    Box::new(move || {
                        let _ = &l;
                        if let Some(s) = c.borrow().as_ref() {
                            s.destroy();
                        }
                    }),
                )
            }),
        ),
        (
            "udp",
            handle_case!(
                UdpSocket::bind("127.0.0.1:0").unwrap(),
                |h| h.close(),
                setup | h | h.on_message(|_, _| {})
            ),
        ),
        (
            "child",
            // Our own child, by its handle (its pid).
            handle_case!(
                Command::new("sleep")
                    .arg("30")
                    .stdin(Stdio::Null)
                    .stdout(Stdio::Null)
                    .spawn()
                    .expect("spawn"),
                |h| h.kill(Signal::SIGKILL).unwrap()
            ),
        ),
        (
            "signal",
            handle_case!(on_signal(Signal::SIGWINCH, |_| {}).unwrap(), |h| h.close()),
        ),
    ];
    for (name, make) in &cases {
        let el = EventLoop::new().unwrap();
        let (unref, ref_, cleanup) = {
            let _g = el.enter();
            make()
        };
        // Let connects and first reads run (an immediate would run too:
        // not for it).
        if *name != "immediate" {
            for _ in 0..5 {
                el.run_nowait().unwrap();
            }
        }
        assert!(el.is_alive(), "{name}: ref'd keeps the loop alive");
        unref();
        assert!(!el.is_alive(), "{name}: unref'd does not");
        let start = Instant::now();
        el.run().unwrap();
        let unrefd_run = start.elapsed();
        ref_();
        assert!(el.is_alive(), "{name}: ref'd again");
        // Unref from inside a check-phase callback.
        {
            let _g = el.enter();
            let u = Rc::new(unref);
            let u2 = u.clone();
            set_immediate(move || u2());
        }
        let start = Instant::now();
        el.run().unwrap();
        let from_check = start.elapsed();
        assert!(from_check < Duration::from_secs(5), "{name}");
        ref_();
        cleanup();
        el.run().unwrap(); // the child is reaped, sockets closed
        assert!(!el.is_alive());
        rows.push(format!(
            "{name}: unref'd run {unrefd_run:?}, unref in check {from_check:?}"
        ));
    }
    // Requests: a pool job and an fs op keep the loop alive until done.
    let el = EventLoop::new().unwrap();
    let done = Rc::new(Cell::new(0));
    {
        let _g = el.enter();
        let d = done.clone();
        evloop::queue_work(
            || std::thread::sleep(ms(50)),
            move |r| {
                r.unwrap();
                d.set(d.get() + 1)
            },
        );
        let d = done.clone();
        evloop::fs::read_file("Cargo.toml", move |r| {
            r.unwrap();
            d.set(d.get() + 1)
        });
    }
    assert!(el.is_alive());
    el.run().unwrap();
    assert_eq!(done.get(), 2);
    drop(el);
    // An empty loop.
    let el = EventLoop::new().unwrap();
    let start = Instant::now();
    el.run().unwrap();
    let empty = start.elapsed();
    drop(el);
    t.figure(format_args!(
        "7 handle kinds ref/unref OK ({}); pool job + fs op keep the loop alive until done; \
         empty run {empty:?}",
        rows.join("; ")
    ));
    fds.assert_back("T15");
}

/// Counts drops of itself.
struct Guard(Rc<Cell<usize>>);
impl Drop for Guard {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A future that never finishes and hands its waker out.
struct Forever {
    waker: Rc<RefCell<Option<Waker>>>,
}
impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Its `Drop` wakes a sibling task and spawns a new task.
struct WakeAndSpawnOnDrop {
    sibling: Rc<RefCell<Option<Waker>>>,
    drops: Rc<Cell<usize>>,
}
impl Drop for WakeAndSpawnOnDrop {
    fn drop(&mut self) {
        if let Some(w) = self.sibling.borrow_mut().take() {
            w.wake();
        }
        let g = Guard(self.drops.clone());
        let w = Rc::new(RefCell::new(None));
        evloop::spawn(async move {
            let _g = g;
            Forever { waker: w }.await;
        });
    }
}

/// T16: dropping a loop full of live work (1,000 sockets, 1,000 timers,
/// 100 fs ops in flight, 10 children, 10,000 pending tasks) runs none of
/// their callbacks (the documented policy: none run), drops every future
/// exactly once (including tasks spawned by destructors during the drop),
/// and leaves no fd and no pool thread behind.
#[test]
fn t16_shutdown_with_live_resources() {
    let t = Test::start("T16", Duration::from_secs(120));
    support::setup::warm_process_machinery();
    let fds = FdCensus::new();
    let threads0 = threads();
    let ran = Rc::new(Cell::new(0usize));
    let drops = Rc::new(Cell::new(0usize));
    let spawned_in_drop_drops = Rc::new(Cell::new(0usize));
    const TASKS: usize = 10_000;
    let mut pids = Vec::new();
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        // 500 connections: 1,000 streams.
        let accepted: Rc<RefCell<Vec<Stream>>> = Rc::default();
        let a2 = accepted.clone();
        let r2 = ran.clone();
        let l = TcpListener::bind("127.0.0.1:0", move |c| {
            let s = c.unwrap();
            let r3 = r2.clone();
            s.on_close(move |_| r3.set(r3.get() + 1));
            a2.borrow_mut().push(s);
        })
        .unwrap();
        let clients: Rc<RefCell<Vec<Stream>>> = Rc::default();
        for _ in 0..500 {
            let (c2, r2) = (clients.clone(), ran.clone());
            evloop::net::connect(l.local_addr(), move |r| {
                let s = r.unwrap();
                let r3 = r2.clone();
                s.on_close(move |_| r3.set(r3.get() + 1));
                c2.borrow_mut().push(s);
            });
        }
        drop(_g);
        let start = Instant::now();
        while (accepted.borrow().len() < 500 || clients.borrow().len() < 500)
            && start.elapsed() < Duration::from_secs(30)
        {
            el.run_once().unwrap();
        }
        assert_eq!(accepted.borrow().len() + clients.borrow().len(), 1000);
        let _g = el.enter();
        l.close();
        for _ in 0..1000 {
            let r = ran.clone();
            set_timeout(Duration::from_secs(60), move || r.set(r.get() + 1));
        }
        for _ in 0..100 {
            let r = ran.clone();
            evloop::fs::read_file("Cargo.toml", move |_| r.set(r.get() + 1));
        }
        for _ in 0..10 {
            let c = Command::new("sleep")
                .arg("30")
                .stdin(Stdio::Null)
                .stdout(Stdio::Null)
                .spawn()
                .expect("spawn");
            pids.push(c.pid());
            let r = ran.clone();
            c.on_exit(move |_| r.set(r.get() + 1));
        }
        let mut prev: Rc<RefCell<Option<Waker>>> = Rc::default();
        for i in 0..TASKS {
            let g = Guard(drops.clone());
            let w: Rc<RefCell<Option<Waker>>> = Rc::default();
            let extra = (i % 100 == 0).then(|| WakeAndSpawnOnDrop {
                sibling: prev.clone(),
                drops: spawned_in_drop_drops.clone(),
            });
            prev = w.clone();
            let r = ran.clone();
            evloop::spawn(async move {
                let _g = g;
                let _e = extra;
                Forever { waker: w }.await;
                r.set(r.get() + 1);
            });
        }
        assert_eq!(el.tasks(), TASKS);
    }
    let start = Instant::now();
    drop(el);
    let dropped_in = start.elapsed();
    // Our children, by the pids we started them with.
    for pid in &pids {
        let _ = evloop::process::kill(*pid, Signal::SIGKILL);
    }
    let fd_after = fds.settle();
    let th_end = Instant::now() + Duration::from_secs(1);
    while threads() > threads0 && Instant::now() < th_end {
        std::thread::sleep(ms(5));
    }
    let th_after = threads();
    t.figure(format_args!(
        "drop took {dropped_in:?}; callbacks run after drop: {}; futures dropped {}/{TASKS}, \
         tasks spawned by destructors dropped {}/{}; fds {} -> {fd_after}; threads \
         {threads0} -> {th_after} (1 s after)",
        ran.get(),
        drops.get(),
        spawned_in_drop_drops.get(),
        TASKS / 100,
        fds.baseline
    ));
    assert_eq!(ran.get(), 0, "policy: no callback runs on drop");
    assert_eq!(drops.get(), TASKS, "each future dropped exactly once");
    assert_eq!(spawned_in_drop_drops.get(), TASKS / 100);
    assert!(fd_after <= fds.baseline, "fds leaked");
    assert!(th_after <= threads0, "pool threads not joined");
}
