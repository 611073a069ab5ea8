//! The embedder's hooks: idle, prepare and check watchers (libuv's
//! `uv_idle_t`, `uv_prepare_t`, `uv_check_t`) and the ref'able async
//! handle (`uv_async_t`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use evloop::watchers::{Check, Idle, Prepare};
use evloop::{AsyncClosed, AsyncHandle, EventLoop, HandleKind};

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

/// One iteration's order: pending, idle, prepare, poll (I/O), check
/// (watchers, then immediates), close, timers.
#[test]
fn watchers_run_in_libuv_order_within_an_iteration() {
    let el = EventLoop::new().unwrap();
    let l = log();
    let _guard = el.enter();
    let idle = Idle::new();
    let prepare = Prepare::new();
    let check = Check::new();
    let (a, b, c) = (l.clone(), l.clone(), l.clone());
    idle.start(move || push(&a, "idle"));
    prepare.start(move || push(&b, "prepare"));
    check.start(move || push(&c, "check"));
    let d = l.clone();
    evloop::set_immediate(move || push(&d, "immediate"));
    let e = l.clone();
    evloop::set_timeout(Duration::ZERO, move || push(&e, "timer"));
    drop(_guard);
    el.run_once().unwrap();
    // The first run_once runs no due-timer round before the iteration
    // (only `run` does, as Node's start does); the 1 ms timer may or may
    // not be due at the end of the iteration.
    let got = l.borrow().clone();
    assert_eq!(
        got[..4],
        ["idle", "prepare", "check", "immediate"],
        "{got:?}"
    );
    l.borrow_mut().clear();
    el.run_once().unwrap();
    let got = l.borrow().clone();
    assert_eq!(got[..3], ["idle", "prepare", "check"], "{got:?}");
}

/// libuv inserts a started watcher at the head of its list: the newest
/// runs first.
#[test]
fn newest_watcher_of_a_kind_runs_first() {
    let el = EventLoop::new().unwrap();
    let l = log();
    let _guard = el.enter();
    let first = Prepare::new();
    let second = Prepare::new();
    let (a, b) = (l.clone(), l.clone());
    first.start(move || push(&a, "first"));
    second.start(move || push(&b, "second"));
    drop(_guard);
    el.run_nowait().unwrap();
    assert_eq!(*l.borrow(), ["second", "first"]);
}

/// A watcher started during its own phase waits for the next iteration;
/// one stopped during it does not run in it.
#[test]
fn start_and_stop_during_the_phase() {
    let el = EventLoop::new().unwrap();
    let l = log();
    let _guard = el.enter();
    let late = Rc::new(Check::new());
    let victim = Rc::new(Check::new());
    let v = victim.clone();
    let b = l.clone();
    victim.start(move || push(&b, "victim"));
    let starter = Check::new();
    let (lt, a) = (late.clone(), l.clone());
    // Started last, so it runs first: it stops `victim` and starts `late`.
    starter.start(move || {
        push(&a, "starter");
        v.stop();
        let c = a.clone();
        lt.start(move || push(&c, "late"));
    });
    drop(_guard);
    el.run_nowait().unwrap();
    assert_eq!(*l.borrow(), ["starter"]);
    l.borrow_mut().clear();
    el.run_nowait().unwrap();
    // Now `late` is the newest.
    assert_eq!(*l.borrow(), ["late", "starter"]);
}

/// A ref'd active watcher keeps the loop alive; unref'd, it does not.
#[test]
fn ref_and_unref() {
    let el = EventLoop::new().unwrap();
    let _guard = el.enter();
    let prepare = Prepare::new();
    assert!(!el.is_alive());
    prepare.start(|| {});
    assert!(el.is_alive());
    assert!(el
        .active_handles()
        .iter()
        .any(|h| h.kind == HandleKind::Watcher && h.refed));
    prepare.unref();
    assert!(!el.is_alive());
    assert!(!prepare.has_ref());
    prepare.ref_();
    assert!(el.is_alive());
    prepare.stop();
    assert!(!el.is_alive());
    assert!(!prepare.is_active());
    // Unref'd while stopped, then started: still unref'd.
    prepare.unref();
    prepare.start(|| {});
    assert!(!el.is_alive());
    drop(prepare);
    assert!(el.active_handles().is_empty());
}

/// An active idle watcher keeps the poll from blocking: with a timer an
/// hour away, the backend timeout is zero.
#[test]
fn idle_keeps_poll_from_blocking() {
    let el = EventLoop::new().unwrap();
    let _guard = el.enter();
    let t = evloop::set_timeout(Duration::from_secs(3600), || {});
    assert_ne!(el.backend_timeout(), Some(Duration::ZERO));
    let idle = Idle::new();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    idle.start(move || r.set(r.get() + 1));
    assert_eq!(el.backend_timeout(), Some(Duration::ZERO));
    drop(_guard);
    for _ in 0..3 {
        el.run_once().unwrap(); // returns at once each time
    }
    assert_eq!(runs.get(), 3);
    idle.stop();
    assert_ne!(el.backend_timeout(), Some(Duration::ZERO));
    evloop::clear_timeout(&t);
}

/// A watcher's callback is a callback like any other: microtasks drain
/// after it, before the next one; a panic goes to the uncaught handler.
#[test]
fn checkpoint_after_each_watcher_and_panics_are_uncaught() {
    let el = EventLoop::new().unwrap();
    let l = log();
    let caught = Rc::new(Cell::new(0));
    let c = caught.clone();
    el.on_uncaught_exception(move |_, _| c.set(c.get() + 1));
    let _guard = el.enter();
    let older = Prepare::new();
    let newer = Prepare::new();
    let a = l.clone();
    older.start(move || push(&a, "older"));
    let b = l.clone();
    newer.start(move || {
        let m = b.clone();
        evloop::queue_microtask(move || push(&m, "microtask"));
        push(&b, "newer");
    });
    let boom = Check::new();
    boom.start(|| panic!("boom in a check watcher"));
    drop(_guard);
    el.run_nowait().unwrap();
    assert_eq!(*l.borrow(), ["newer", "microtask", "older"]);
    assert_eq!(caught.get(), 1);
    // Still active after the panic.
    el.run_nowait().unwrap();
    assert_eq!(caught.get(), 2);
}

/// Without a handler, a panicking watcher stops the loop like any
/// callback.
#[test]
fn a_panicking_watcher_stops_the_loop() {
    let el = EventLoop::new().unwrap();
    let _guard = el.enter();
    let p = Prepare::new();
    p.start(|| panic!("boom"));
    drop(_guard);
    let err = el.run().unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
}

/// Dropping a watcher from its own callback stops it; the loop ends.
#[test]
fn a_watcher_dropped_by_its_callback_ends_the_loop() {
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    evloop::run(move || {
        let slot = Rc::new(RefCell::new(None::<Idle>));
        let me = slot.clone();
        let idle = Idle::new();
        idle.start(move || {
            r.set(r.get() + 1);
            if r.get() == 5 {
                me.borrow_mut().take();
            }
        });
        *slot.borrow_mut() = Some(idle);
    })
    .unwrap();
    assert_eq!(runs.get(), 5);
}

/// Teardown drops the callbacks of watchers still active.
#[test]
fn teardown_releases_watcher_callbacks() {
    let token = Rc::new(());
    let el = EventLoop::new().unwrap();
    let p = {
        let _guard = el.enter();
        let t = token.clone();
        let p = Prepare::new();
        p.start(move || {
            let _ = &t;
        });
        p
    };
    assert_eq!(Rc::strong_count(&token), 2);
    drop(el); // the handle outlives its loop
    assert_eq!(Rc::strong_count(&token), 1);
    assert!(p.is_active()); // nothing to stop it on any more
    drop(p);
}

/// The case the async handle exists for: the loop's only work is a thread
/// that will post later. A `Remote` alone lets `run` return at once; an
/// async handle keeps the loop alive until it is closed.
#[test]
fn async_handle_keeps_the_loop_alive_until_closed() {
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    evloop::run(move || {
        let slot = Rc::new(RefCell::new(None::<AsyncHandle>));
        let me = slot.clone();
        let handle = AsyncHandle::new(move || {
            g.set(g.get() + 1);
            me.borrow_mut().take(); // closes it
        });
        let sender = handle.sender();
        *slot.borrow_mut() = Some(handle);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            sender.send().unwrap();
        });
    })
    .unwrap();
    assert_eq!(got.get(), 1);
}

/// Sends before the loop gets to the handle are coalesced into one
/// callback; a send after the callback started runs it again.
#[test]
fn async_sends_are_coalesced() {
    let el = EventLoop::new().unwrap();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let handle = {
        let _guard = el.enter();
        AsyncHandle::new(move || r.set(r.get() + 1))
    };
    let sender = handle.sender();
    std::thread::spawn(move || {
        for _ in 0..100 {
            sender.send().unwrap();
        }
    })
    .join()
    .unwrap();
    el.run_nowait().unwrap();
    assert_eq!(runs.get(), 1);
    let sender = handle.sender();
    sender.send().unwrap();
    el.run_nowait().unwrap();
    assert_eq!(runs.get(), 2);
    // Nothing sent: no callback.
    el.run_nowait().unwrap();
    assert_eq!(runs.get(), 2);
    assert!(el
        .active_handles()
        .iter()
        .any(|h| h.kind == HandleKind::Async && h.refed));
    handle.close();
    assert!(handle.is_closed());
    assert_eq!(sender.send(), Err(AsyncClosed));
    assert!(!el.is_alive());
}

/// A wake queued before the handle closed does nothing; sends after the
/// loop is gone fail.
#[test]
fn async_wake_after_close_and_after_loop_drop() {
    let el = EventLoop::new().unwrap();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let handle = {
        let _guard = el.enter();
        AsyncHandle::new(move || r.set(r.get() + 1))
    };
    let sender = handle.sender();
    sender.send().unwrap();
    drop(handle); // closed with a wake queued
    el.run_nowait().unwrap();
    assert_eq!(runs.get(), 0);

    let handle = {
        let _guard = el.enter();
        AsyncHandle::new(|| {})
    };
    let sender = handle.sender();
    drop(el); // the handle outlives its loop
    assert_eq!(sender.send(), Err(AsyncClosed));
    drop(handle);
}

/// Unref'd, an async handle lets the loop end; a wake that arrives while
/// the loop runs for other reasons is still delivered.
#[test]
fn async_unref() {
    let el = EventLoop::new().unwrap();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let _guard = el.enter();
    let handle = AsyncHandle::new(move || r.set(r.get() + 1));
    assert!(handle.has_ref());
    handle.unref();
    assert!(!handle.has_ref());
    assert!(!el.is_alive());
    let sender = handle.sender();
    sender.send().unwrap();
    evloop::set_timeout(Duration::from_millis(1), || {});
    drop(_guard);
    el.run().unwrap();
    assert_eq!(runs.get(), 1);
}
