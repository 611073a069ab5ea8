//! The cancellation foundation: AbortController, AbortSignal (timeout,
//! any, listeners, awaiting, senders from other threads), the one abort
//! error in every style, and the glue (`AbortSignal::race`,
//! `Promise::with_signal`). The operations that take a signal are tested in
//! `abort_timers.rs`, `abort_fs.rs`, `abort_net.rs` and `abort_process.rs`.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::abort::{is_abort_error, AbortController, AbortError, AbortSignal};
use evloop::promise::{Promise, Rejection};
use evloop::EventLoop;

#[test]
fn controller_aborts_once_with_its_reason_and_calls_listeners_in_order() {
    evloop::run(|| {
        let c = AbortController::new();
        let s = c.signal();
        assert!(!s.aborted());
        assert!(s.reason().is_none());
        assert!(s.throw_if_aborted().is_ok());
        let log = Rc::new(RefCell::new(Vec::new()));
        let (a, b) = (log.clone(), log.clone());
        let _first = s.on_abort(move |r| a.borrow_mut().push(format!("first: {r}")));
        let removed = s.on_abort(|_| panic!("removed listeners never run"));
        let _second = s.on_abort(move |r| b.borrow_mut().push(format!("second: {r}")));
        removed.remove();
        c.abort(Rejection::msg("stop"));
        c.abort(Rejection::msg("again")); // does nothing
        assert!(s.aborted());
        assert_eq!(s.reason().unwrap().to_string(), "stop");
        assert_eq!(*log.borrow(), ["first: stop", "second: stop"]);
        let err = s.throw_if_aborted().unwrap_err();
        assert_eq!(err.reason().to_string(), "stop");
        // A listener added after the abort is not called (as the web's).
        let _late = s.on_abort(|_| panic!("not called"));
    })
    .unwrap();
}

#[test]
fn default_reason_and_the_one_error_in_each_style() {
    let c = AbortController::new();
    c.abort(None);
    let reason = c.signal().reason().unwrap();
    assert!(reason.is_aborted());
    let err: io::Error = c.signal().error().into();
    assert!(is_abort_error(&err));
    assert_eq!(err.kind(), io::ErrorKind::Other);
    assert_eq!(err.to_string(), "The operation was aborted");
    let r = Rejection::from(err);
    assert!(r.is_aborted());
    assert!(r.abort_reason().unwrap().is_aborted());
    // With a reason of one's own.
    let e = AbortError::new(Rejection::msg("user left"));
    assert_eq!(e.to_string(), "The operation was aborted: user left");
    let r: Rejection = e.into();
    assert!(r.is_aborted());
    assert_eq!(r.abort_reason().unwrap().to_string(), "user left");
    // Other errors are not aborts.
    assert!(!is_abort_error(&io::Error::other("no")));
    assert!(!Rejection::msg("no").is_aborted());
}

#[test]
fn already_aborted_signal() {
    let s = AbortSignal::abort(Rejection::msg("at once"));
    assert!(s.aborted());
    assert_eq!(s.reason().unwrap().to_string(), "at once");
    assert!(AbortSignal::abort(None).reason().unwrap().is_aborted());
}

/// `AbortSignal::timeout` aborts by itself with a `TimedOut` reason, and
/// its timer does not keep the loop alive.
#[test]
fn timeout_signal_aborts_and_does_not_keep_the_loop_alive() {
    let fired = Rc::new(RefCell::new(None));
    let f = fired.clone();
    let start = Instant::now();
    evloop::run(move || {
        let s = AbortSignal::timeout(Duration::from_millis(10));
        let keep = s.clone();
        let _l = s.on_abort(move |r| *f.borrow_mut() = Some(r.kind()));
        // Something keeps the loop alive past the deadline.
        evloop::set_timeout(Duration::from_millis(30), move || drop(keep));
    })
    .unwrap();
    assert_eq!(*fired.borrow(), Some(io::ErrorKind::TimedOut));

    // Nothing else to do: the loop ends at once, not after an hour.
    evloop::run(|| {
        let s = AbortSignal::timeout(Duration::from_secs(3600));
        std::mem::forget(s.clone()); // even alive, its timer is unref'd
        drop(s);
    })
    .unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn any_follows_the_first_to_abort() {
    evloop::run(|| {
        let (a, b) = (AbortController::new(), AbortController::new());
        let either = AbortSignal::any(&[a.signal(), b.signal()]);
        assert!(!either.aborted());
        b.abort(Rejection::msg("b"));
        assert!(either.aborted());
        assert_eq!(either.reason().unwrap().to_string(), "b");
        a.abort(Rejection::msg("a")); // too late for `either`
        assert_eq!(either.reason().unwrap().to_string(), "b");
        // Already aborted input: already aborted output.
        let done = AbortSignal::any(&[AbortSignal::abort(Rejection::msg("x"))]);
        assert_eq!(done.reason().unwrap().to_string(), "x");
        // With a timeout.
        let c = AbortController::new();
        let with_deadline =
            AbortSignal::any(&[c.signal(), AbortSignal::timeout(Duration::from_millis(5))]);
        let keep = with_deadline.clone();
        evloop::set_timeout(Duration::from_millis(20), move || {
            assert_eq!(keep.reason().unwrap().kind(), io::ErrorKind::TimedOut);
        });
    })
    .unwrap();
}

/// A dropped `any` signal removes its listeners from its sources, so a
/// long-lived signal does not collect them.
#[test]
fn dropped_any_signals_leave_nothing_on_their_sources() {
    let c = AbortController::new();
    let token = Rc::new(());
    for _ in 0..1000 {
        let s = AbortSignal::any(&[c.signal()]);
        let t = token.clone();
        let _l = s.on_abort(move |_| drop(t));
    }
    // The composites are gone: their listeners (holding `token`) too.
    assert_eq!(Rc::strong_count(&token), 1);
    c.abort(None);
}

#[test]
fn a_signal_is_awaitable() {
    let reason = evloop::block_on(async {
        let c = AbortController::new();
        let s = c.signal();
        evloop::set_timeout(Duration::from_millis(5), move || {
            c.abort(Rejection::msg("later"))
        });
        s.await
    })
    .unwrap();
    assert_eq!(reason.to_string(), "later");
}

#[test]
fn race_a_future_against_a_signal() {
    evloop::block_on(async {
        // The future wins.
        let s = AbortSignal::timeout(Duration::from_secs(3600));
        assert_eq!(s.race(async { 7 }).await.unwrap(), 7);
        // The signal wins; the timer behind the sleep is released.
        let c = AbortController::new();
        let s = c.signal();
        evloop::set_timeout(Duration::from_millis(5), move || c.abort(None));
        let r = s.race(evloop::task::sleep(Duration::from_secs(3600))).await;
        assert!(r.unwrap_err().reason().is_aborted());
    })
    .unwrap();
}

/// Aborting from another thread goes through the loop's remote.
#[test]
fn abort_from_another_thread() {
    let got = Rc::new(Cell::new(false));
    let g = got.clone();
    evloop::run(move || {
        let c = AbortController::new();
        let sender = c.sender();
        let s = c.signal();
        // Keeps the loop alive until the abort arrives.
        let t = evloop::set_timeout(Duration::from_secs(3600), || {});
        let _l = s.on_abort(move |r| {
            assert_eq!(r.to_string(), "from a thread");
            g.set(true);
            evloop::clear_timeout(&t);
            drop(c);
        });
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            sender.abort(Some("from a thread".into())).unwrap();
        });
    })
    .unwrap();
    assert!(got.get());
}

/// A sender whose controller is gone does nothing; one whose loop is gone
/// fails.
#[test]
fn stale_senders() {
    let el = EventLoop::new().unwrap();
    let sender = {
        let _g = el.enter();
        let c = AbortController::new();
        c.sender()
    }; // the controller and its signal are gone
    sender.abort(None).unwrap();
    el.run().unwrap(); // nothing happens, nothing panics
    drop(el);
    assert!(sender.abort(None).is_err());
}

#[test]
fn promise_with_signal() {
    evloop::run(|| {
        // Settled first: the abort comes too late.
        let c = AbortController::new();
        let p = Promise::resolve(1).with_signal(&c.signal());
        p.then(|v| assert_eq!(v, 1));
        let c2 = AbortController::new();
        let pending = Promise::<u32>::with_resolvers();
        let aborted = pending.promise.with_signal(&c2.signal());
        let seen = Rc::new(Cell::new(false));
        let s = seen.clone();
        aborted.catch(move |e| {
            assert!(e.is_aborted());
            assert_eq!(e.abort_reason().unwrap().to_string(), "enough");
            s.set(true);
            0
        });
        evloop::queue_microtask(move || {
            c2.abort(Rejection::msg("enough")); // from a microtask
            c.abort(None);
        });
        evloop::set_timeout(Duration::from_millis(1), move || assert!(seen.get()));
        // Resolving the original later changes nothing.
        evloop::set_timeout(Duration::from_millis(2), move || (pending.resolve)(5));
    })
    .unwrap();
}

/// An abort is never reported as an unhandled rejection by itself: the
/// default mode (throw) would otherwise stop the loop.
#[test]
fn an_unhandled_abort_is_not_reported() {
    evloop::run(|| {
        let c = AbortController::new();
        let never = Promise::<()>::with_resolvers().promise;
        let _ = never.with_signal(&c.signal()); // nobody catches it
        c.abort(None);
        let _ = Promise::<()>::reject(AbortError::new(Rejection::msg("x")));
    })
    .expect("aborts are not unhandled rejections");
}

/// Aborting while no loop is current (the operation's loop not running,
/// or gone) does not panic: the error is queued on the operation's own
/// loop, or dropped with it.
#[test]
fn abort_outside_the_loop() {
    let el = EventLoop::new().unwrap();
    let c = AbortController::new();
    let got = Rc::new(RefCell::new(None));
    {
        let _g = el.enter();
        let g = got.clone();
        evloop::queue_work_with_signal(
            || std::thread::sleep(Duration::from_millis(20)),
            &c.signal(),
            move |r| *g.borrow_mut() = Some(r.map_err(|e| is_abort_error(&e))),
        );
    }
    c.abort(None); // no loop is current here
    el.run().unwrap();
    assert_eq!(*got.borrow(), Some(Err(true)));

    // The loop is dropped with an operation in flight: its listener goes
    // with it, and a later abort finds nothing to call.
    let el = EventLoop::new().unwrap();
    let c = AbortController::new();
    let token = Rc::new(());
    {
        let _g = el.enter();
        let t = token.clone();
        evloop::queue_work_with_signal(|| (), &c.signal(), move |_| drop(t));
    }
    drop(el);
    assert_eq!(
        Rc::strong_count(&token),
        1,
        "the callback went with the loop"
    );
    c.abort(None);
}
