//! Signals on the loop thread: delivery, several handlers, unref, close
//! restoring the default disposition, bad input.
//!
//! Signals are process-wide and the tests of one binary run on parallel
//! threads: each test here takes `serial()` first.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use evloop::process::{kill, on_signal, once_signal, Signal};
use support::init_log;

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn raise(sig: Signal) {
    kill(std::process::id(), sig).unwrap();
}

/// Whether `sig`'s disposition is the default one.
fn is_default(sig: Signal) -> bool {
    // SAFETY: a null new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(sig.as_raw(), std::ptr::null(), &mut old), 0);
        old.sa_sigaction == libc::SIG_DFL
    }
}

#[test]
fn a_signal_runs_every_handler_on_the_loop_thread_in_order() {
    let _s = serial();
    init_log();
    let log = support::Log::new();
    let l = log.clone();
    let loop_thread = std::thread::current().id();
    evloop::run(move || {
        let (l1, l2) = (l.clone(), l.clone());
        let h1 = on_signal(Signal::SIGUSR1, move |sig| {
            assert_eq!(std::thread::current().id(), loop_thread);
            l1.push(format!("first {sig}"));
            evloop::queue_microtask({
                let l = l1.clone();
                move || l.push("microtask")
            });
        })
        .unwrap();
        let h2 = on_signal(Signal::SIGUSR1, move |sig| {
            l2.push(format!("second {sig}"));
        })
        .unwrap();
        // A third closes all three after the first delivery, so the loop
        // can end.
        let all: Rc<RefCell<Vec<evloop::process::SignalHandle>>> = Rc::default();
        let a = all.clone();
        let h3 = on_signal(Signal::SIGUSR1, move |_| {
            for h in a.borrow_mut().drain(..) {
                h.close();
            }
        })
        .unwrap();
        all.borrow_mut().extend([h1, h2, h3]);
        evloop::set_timeout(Duration::ZERO, move || raise(Signal::SIGUSR1));
    })
    .unwrap();
    let got = log.take();
    assert_eq!(got, ["first SIGUSR1", "microtask", "second SIGUSR1"]);
    assert!(is_default(Signal::SIGUSR1));
}

#[test]
fn a_refed_handler_keeps_the_loop_alive_and_unref_lets_it_end() {
    let _s = serial();
    init_log();
    // Unref'd: run returns at once.
    let start = Instant::now();
    evloop::run(|| {
        on_signal(Signal::SIGUSR2, |_| {}).unwrap().unref();
    })
    .unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));

    // Ref'd: the loop waits for the signal, then the handler closes itself.
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    evloop::run(move || {
        let me: Rc<RefCell<Option<evloop::process::SignalHandle>>> = Rc::default();
        let m = me.clone();
        let h = on_signal(Signal::SIGUSR2, move |_| {
            g.set(g.get() + 1);
            m.borrow_mut().take().unwrap().close();
        })
        .unwrap();
        assert!(h.is_active());
        *me.borrow_mut() = Some(h);
        // From another thread, while the loop sleeps in poll.
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            raise(Signal::SIGUSR2);
        });
    })
    .unwrap();
    assert_eq!(got.get(), 1);
}

#[test]
fn closing_the_last_handler_restores_the_default_disposition() {
    let _s = serial();
    init_log();
    assert!(is_default(Signal::SIGHUP));
    let lp = evloop::EventLoop::new().unwrap();
    let _g = lp.enter();
    let a = on_signal(Signal::SIGHUP, |_| {}).unwrap();
    let b = on_signal(Signal::SIGHUP, |_| {}).unwrap();
    assert!(!is_default(Signal::SIGHUP));
    a.close();
    assert!(!is_default(Signal::SIGHUP), "one handler is left");
    b.close();
    b.close(); // twice is harmless
    assert!(is_default(Signal::SIGHUP));
    assert!(!b.is_active());

    // A dropped loop gives its handlers up too.
    let _c = on_signal(Signal::SIGHUP, |_| {}).unwrap();
    assert!(!is_default(Signal::SIGHUP));
    drop(_g);
    drop(lp);
    assert!(is_default(Signal::SIGHUP));
}

#[test]
fn handlers_on_two_loops_both_run() {
    let _s = serial();
    init_log();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let ready = std::sync::Arc::new(std::sync::Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (hits, ready) = (hits.clone(), ready.clone());
            std::thread::spawn(move || {
                evloop::run(move || {
                    let me: Rc<RefCell<Option<evloop::process::SignalHandle>>> = Rc::default();
                    let m = me.clone();
                    let h = on_signal(Signal::SIGWINCH, move |_| {
                        hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        m.borrow_mut().take().unwrap().close();
                    })
                    .unwrap();
                    *me.borrow_mut() = Some(h);
                    ready.wait();
                })
                .unwrap();
            })
        })
        .collect();
    ready.wait();
    raise(Signal::SIGWINCH);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(is_default(Signal::SIGWINCH));
}

#[test]
fn uncatchable_signals_are_invalid_input() {
    let _s = serial();
    init_log();
    evloop::run(|| {
        for sig in [Signal::SIGKILL, Signal::SIGSTOP] {
            let e = on_signal(sig, |_| {}).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{sig}");
        }
        assert_eq!(Signal::from_raw(0), None);
        assert_eq!(Signal::from_raw(65), None);
        assert_eq!(Signal::from_raw(libc::SIGINT), Some(Signal::SIGINT));
        assert_eq!(Signal::SIGTERM.to_string(), "SIGTERM");
        assert!(kill(0, Signal::SIGTERM).is_err(), "pid 0 is a group");
    })
    .unwrap();
}

#[test]
fn once_signal_resolves_on_the_next_delivery_and_closes() {
    let _s = serial();
    init_log();
    let got = evloop::block_on(async {
        let next = once_signal(Signal::SIGUSR2);
        assert!(!is_default(Signal::SIGUSR2));
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            raise(Signal::SIGUSR2);
        });
        let sig = next.await.unwrap();
        let bad = once_signal(Signal::SIGKILL).await.unwrap_err();
        (sig, bad.kind())
    })
    .unwrap();
    assert_eq!(got, (Signal::SIGUSR2, std::io::ErrorKind::InvalidInput));
    assert!(is_default(Signal::SIGUSR2));
}
