//! Issue 18: timers, `delay`, `sleep` and tasks bound to an `AbortSignal`,
//! in the three styles: aborted before the start, while in flight, after
//! completion; aborted from a timer, a microtask, another task and another
//! thread; and nothing left keeping the loop alive afterwards.

mod support;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::abort::{AbortController, AbortSignal};
use evloop::promise::{delay_with_signal, Promise, Rejection};
use evloop::task::{sleep, sleep_with_signal, spawn_with_signal};
use evloop::{set_interval_with_signal, set_timeout_with_signal, EventLoop};

const HOUR: Duration = Duration::from_secs(3600);

/// Handles that keep the loop alive.
fn refed() -> Vec<evloop::HandleInfo> {
    evloop::active_handles()
        .into_iter()
        .filter(|h| h.refed)
        .collect()
}

/// Counts its drops.
struct Tracker(Rc<Cell<usize>>);
impl Drop for Tracker {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

use support::abort::{Via, ALL_VIA as ALL_FROM};

/// Aborts `controller` with the reason "stop", from `from`, soon.
fn abort_from(from: Via, controller: AbortController) {
    support::abort::abort_via(from, controller, Duration::from_millis(5));
}

/// Runs `main` on a fresh loop, to the end; returns how long it took.
fn run_timed(main: impl FnOnce()) -> Duration {
    support::init_log();
    let t0 = Instant::now();
    let el = EventLoop::new().unwrap();
    el.run_main(main).unwrap();
    el.run().unwrap();
    assert!(!el.is_alive());
    t0.elapsed()
}

fn is_stop(e: &Rejection) -> bool {
    e.is_aborted() && e.abort_reason().map(|r| r.to_string()) == Some("stop".into())
}

// ---- callbacks: set_timeout_with_signal, set_interval_with_signal ----

#[test]
fn timeout_aborted_before_start_arms_nothing() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let took = run_timed(move || {
        let signal = AbortSignal::abort(None);
        let t = set_timeout_with_signal(HOUR, &signal, move || r.set(true));
        assert!(!t.is_pending());
        assert!(refed().is_empty(), "{:?}", refed());
        let i = set_interval_with_signal(HOUR, &signal, || unreachable!());
        assert!(!i.is_pending());
        assert!(refed().is_empty());
    });
    assert!(!ran.get());
    assert!(took < Duration::from_secs(1));
}

#[test]
fn timeout_aborted_in_flight_from_everywhere() {
    for from in ALL_FROM {
        let drops = Rc::new(Cell::new(0));
        let tracker = Tracker(drops.clone());
        let took = run_timed(move || {
            let controller = AbortController::new();
            let t = set_timeout_with_signal(HOUR, &controller.signal(), move || {
                let _t = tracker;
                unreachable!("aborted first");
            });
            assert!(t.is_pending());
            abort_from(from, controller);
        });
        assert_eq!(drops.get(), 1, "{from:?}: the callback is dropped");
        assert!(took < Duration::from_secs(1), "{from:?}: {took:?}");
    }
}

#[test]
fn timeout_abort_releases_the_timer_at_once() {
    run_timed(|| {
        let controller = AbortController::new();
        let t = set_timeout_with_signal(HOUR, &controller.signal(), || unreachable!());
        assert_eq!(refed().len(), 1);
        controller.abort(None);
        assert!(!t.is_pending());
        assert!(refed().is_empty(), "{:?}", refed());
    });
}

#[test]
fn timeout_aborted_after_it_fired_does_nothing() {
    let ran = Rc::new(Cell::new(0));
    let r = ran.clone();
    run_timed(move || {
        let controller = AbortController::new();
        set_timeout_with_signal(Duration::from_millis(1), &controller.signal(), move || {
            r.set(r.get() + 1)
        });
        evloop::set_timeout(Duration::from_millis(10), move || controller.abort(None));
    });
    assert_eq!(ran.get(), 1);
}

/// A timeout that fires, or is cleared, removes its listener from the
/// signal: a listened-to signal stays alive (as in Node), so with a
/// listener left behind, this `timeout` signal's own (unref'd) timer
/// would still be listed after the signal was dropped.
#[test]
fn timeout_done_leaves_no_listener() {
    run_timed(|| {
        let signal = AbortSignal::timeout(HOUR);
        let fired = set_timeout_with_signal(Duration::from_millis(1), &signal, || {});
        let cleared = set_timeout_with_signal(HOUR, &signal, || unreachable!());
        cleared.clear();
        drop(signal);
        evloop::set_timeout(Duration::from_millis(10), move || {
            assert!(!fired.is_pending());
            assert!(
                evloop::active_handles().is_empty(),
                "the signal and its timer are gone: {:?}",
                evloop::active_handles()
            );
        });
    });
}

#[test]
fn interval_stops_on_abort() {
    for from in ALL_FROM {
        let ticks = Rc::new(Cell::new(0u32));
        let t = ticks.clone();
        let after = Rc::new(Cell::new(None));
        let a = after.clone();
        let took = run_timed(move || {
            let controller = AbortController::new();
            let signal = controller.signal();
            let tt = t.clone();
            set_interval_with_signal(Duration::from_millis(1), &signal, move || {
                tt.set(tt.get() + 1)
            });
            let _ = signal.on_abort(move |_| a.set(Some(t.get())));
            abort_from(from, controller);
        });
        let at_abort = after.get().expect("aborted");
        assert_eq!(ticks.get(), at_abort, "{from:?}: no tick after the abort");
        assert!(took < Duration::from_secs(1), "{from:?}: {took:?}");
    }
}

#[test]
fn interval_aborted_from_its_own_callback() {
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    run_timed(move || {
        let controller = AbortController::new();
        let signal = controller.signal();
        set_interval_with_signal(Duration::from_millis(1), &signal, move || {
            t.set(t.get() + 1);
            if t.get() == 3 {
                controller.abort(None);
            }
        });
    });
    assert_eq!(ticks.get(), 3);
}

#[test]
fn interval_cleared_then_aborted_does_nothing() {
    run_timed(|| {
        let controller = AbortController::new();
        let i = set_interval_with_signal(Duration::from_millis(1), &controller.signal(), || {});
        i.clear();
        controller.abort(None);
        assert!(refed().is_empty());
    });
}

// ---- promises: delay_with_signal ----

#[test]
fn delay_aborted_before_start_rejects_asynchronously() {
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    run_timed(move || {
        let signal = AbortSignal::abort(Rejection::msg("stop"));
        let p = delay_with_signal(HOUR, &signal);
        assert!(refed().is_empty(), "no timer armed");
        let g2 = g.clone();
        p.catch(move |e| {
            *g2.borrow_mut() = Some(is_stop(&e));
        });
        assert!(g.borrow().is_none(), "not synchronously");
    });
    assert_eq!(*got.borrow(), Some(true));
}

#[test]
fn delay_aborted_in_flight_from_everywhere() {
    for from in ALL_FROM {
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        let took = run_timed(move || {
            let controller = AbortController::new();
            delay_with_signal(HOUR, &controller.signal())
                .then(|()| unreachable!("aborted first"))
                .catch(move |e| *g.borrow_mut() = Some(is_stop(&e)));
            abort_from(from, controller);
        });
        assert_eq!(*got.borrow(), Some(true), "{from:?}");
        assert!(took < Duration::from_secs(1), "{from:?}: {took:?}");
    }
}

#[test]
fn delay_abort_releases_the_timer_at_once() {
    run_timed(|| {
        let controller = AbortController::new();
        let p = delay_with_signal(HOUR, &controller.signal());
        assert_eq!(refed().len(), 1);
        controller.abort(None);
        assert!(refed().is_empty(), "{:?}", refed());
        p.catch(|e| assert!(e.is_aborted()));
    });
}

#[test]
fn delay_aborted_after_completion_stays_fulfilled() {
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    run_timed(move || {
        let controller = AbortController::new();
        let p = delay_with_signal(Duration::from_millis(1), &controller.signal());
        let p2 = p.clone();
        evloop::set_timeout(Duration::from_millis(10), move || {
            controller.abort(None);
            p2.then(move |()| d.set(true));
        });
        drop(p);
    });
    assert!(done.get());
}

/// An abort is never an unhandled rejection by itself.
#[test]
fn aborted_delay_nobody_handles_is_not_uncaught() {
    run_timed(|| {
        let controller = AbortController::new();
        let _ = delay_with_signal(HOUR, &controller.signal());
        let _ = delay_with_signal(HOUR, &AbortSignal::abort(None));
        controller.abort(None);
    });
}

// ---- async/await: sleep_with_signal, spawn_with_signal ----

#[test]
fn sleep_aborted_before_start() {
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    run_timed(move || {
        let signal = AbortSignal::abort(Rejection::msg("stop"));
        evloop::spawn(async move {
            let r = sleep_with_signal(HOUR, &signal).await;
            g.set(Some(r.unwrap_err().reason().to_string() == "stop"));
            assert!(refed().is_empty());
        });
    });
    assert_eq!(got.get(), Some(true));
}

#[test]
fn sleep_aborted_in_flight_from_everywhere() {
    for from in ALL_FROM {
        let got = Rc::new(Cell::new(None));
        let g = got.clone();
        let took = run_timed(move || {
            let controller = AbortController::new();
            let signal = controller.signal();
            evloop::spawn(async move {
                let r = sleep_with_signal(HOUR, &signal).await;
                let e = r.unwrap_err();
                g.set(Some(e.reason().to_string() == "stop"));
            });
            abort_from(from, controller);
        });
        assert_eq!(got.get(), Some(true), "{from:?}");
        assert!(took < Duration::from_secs(1), "{from:?}: {took:?}");
    }
}

#[test]
fn sleep_abort_releases_the_timer_before_the_task_runs() {
    run_timed(|| {
        let controller = AbortController::new();
        let signal = controller.signal();
        let woke = Rc::new(Cell::new(false));
        let w = woke.clone();
        evloop::spawn(async move {
            let r = sleep_with_signal(HOUR, &signal).await;
            assert!(r.is_err());
            w.set(true);
        });
        assert_eq!(refed().len(), 1);
        controller.abort(None);
        assert!(!woke.get(), "the task runs later, in a microtask");
        assert!(refed().is_empty(), "{:?}", refed());
    });
}

#[test]
fn sleep_completed_then_aborted_is_ok() {
    let got = Rc::new(Cell::new(None));
    let g = got.clone();
    run_timed(move || {
        let controller = AbortController::new();
        let signal = controller.signal();
        evloop::spawn(async move {
            let mut s = std::pin::pin!(sleep_with_signal(Duration::from_millis(1), &signal));
            // Arm it (first poll), wait until its timer has fired, then
            // abort before polling it again.
            std::future::poll_fn(|cx| {
                assert!(s.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
            sleep(Duration::from_millis(10)).await;
            assert!(s.is_elapsed());
            controller.abort(None);
            g.set(Some(s.as_mut().await.is_ok()));
        });
    });
    assert_eq!(got.get(), Some(true));
}

#[test]
fn spawn_aborted_before_start_never_polls() {
    let polled = Rc::new(Cell::new(false));
    let got = Rc::new(Cell::new(None));
    let (p, g) = (polled.clone(), got.clone());
    run_timed(move || {
        let signal = AbortSignal::abort(Rejection::msg("stop"));
        spawn_with_signal(&signal, async move { p.set(true) })
            .catch(move |e| g.set(Some(is_stop(&e))));
    });
    assert!(!polled.get());
    assert_eq!(got.get(), Some(true));
}

#[test]
fn spawn_aborted_in_flight_from_everywhere() {
    for from in ALL_FROM {
        let drops = Rc::new(Cell::new(0));
        let tracker = Tracker(drops.clone());
        let got = Rc::new(Cell::new(None));
        let g = got.clone();
        let took = run_timed(move || {
            let controller = AbortController::new();
            spawn_with_signal(&controller.signal(), async move {
                let _t = tracker;
                sleep(HOUR).await;
                unreachable!("aborted first");
            })
            .catch(move |e| g.set(Some(is_stop(&e))));
            abort_from(from, controller);
        });
        assert_eq!(got.get(), Some(true), "{from:?}");
        assert_eq!(drops.get(), 1, "{from:?}: the future is dropped");
        assert!(took < Duration::from_secs(1), "{from:?}: {took:?}");
    }
}

#[test]
fn spawn_abort_drops_the_task_at_once() {
    let drops = Rc::new(Cell::new(0));
    let tracker = Tracker(drops.clone());
    let d = drops.clone();
    run_timed(move || {
        let controller = AbortController::new();
        let p = spawn_with_signal(&controller.signal(), async move {
            let _t = tracker;
            sleep(HOUR).await;
        });
        assert_eq!(refed().len(), 1, "the task's sleep");
        controller.abort(None);
        assert_eq!(d.get(), 1, "dropped inside the abort");
        assert!(refed().is_empty(), "{:?}", refed());
        p.catch(|e| assert!(e.is_aborted()));
    });
    assert_eq!(drops.get(), 1);
}

#[test]
fn spawn_completed_then_aborted_stays_fulfilled() {
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    run_timed(move || {
        let controller = AbortController::new();
        let p = spawn_with_signal(&controller.signal(), async {
            sleep(Duration::from_millis(1)).await;
            7
        });
        evloop::set_timeout(Duration::from_millis(10), move || {
            controller.abort(None);
            p.then(move |v| g.set(v));
        });
    });
    assert_eq!(got.get(), 7);
}

/// The task aborts its own signal: in its first poll, and later.
#[test]
fn spawn_aborting_its_own_signal() {
    for later in [false, true] {
        let got = Rc::new(Cell::new(None));
        let g = got.clone();
        run_timed(move || {
            let controller = AbortController::new();
            let signal = controller.signal();
            spawn_with_signal(&signal, async move {
                if later {
                    sleep(Duration::from_millis(1)).await;
                }
                controller.abort(Some(Rejection::msg("stop")));
                sleep(HOUR).await;
            })
            .catch(move |e| g.set(Some(is_stop(&e))));
        });
        assert_eq!(got.get(), Some(true), "later: {later}");
    }
}

/// A task that ends by itself takes its listener with it: a long-lived
/// signal gathers none (seen as in `timeout_done_leaves_no_listener`).
#[test]
fn spawn_done_leaves_no_listener() {
    run_timed(|| {
        let signal = AbortSignal::timeout(HOUR);
        for _ in 0..3 {
            let _ = spawn_with_signal(&signal, async { sleep(Duration::from_millis(1)).await });
        }
        let _ = spawn_with_signal(&signal, async { 1 });
        drop(signal);
        evloop::set_timeout(Duration::from_millis(20), || {
            assert!(
                evloop::active_handles().is_empty(),
                "{:?}",
                evloop::active_handles()
            );
        });
    });
}

// ---- the race with a timeout (the case), in the three styles ----

/// A 5 ms operation raced against `AbortSignal::timeout(3 s)`: done in
/// milliseconds, and `run` returns without waiting for the 3 s.
#[test]
fn race_with_timeout_ends_in_milliseconds() {
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    let took = run_timed(move || {
        let deadline = AbortSignal::timeout(Duration::from_secs(3));
        let five = Duration::from_millis(5);
        // Callbacks.
        let d1 = d.clone();
        set_timeout_with_signal(five, &deadline, move || d1.set(d1.get() + 1));
        // Promises: two answers raced, one slow; when the race is won, the
        // loser is aborted too (one signal for both, `any` of the deadline
        // and the race's own controller).
        let d2 = d.clone();
        let won = AbortController::new();
        let both = AbortSignal::any(&[deadline.clone(), won.signal()]);
        let answer = delay_with_signal(five, &both).then(|()| "answer");
        let slow = delay_with_signal(Duration::from_secs(2), &both).then(|()| "slow");
        Promise::race([answer, slow]).then(move |v| {
            won.abort(None);
            assert_eq!(v, "answer");
            d2.set(d2.get() + 1)
        });
        // Async/await.
        let d3 = d.clone();
        let deadline2 = deadline.clone();
        spawn_with_signal(&deadline, async move {
            sleep_with_signal(five, &deadline2).await.unwrap();
            d3.set(d3.get() + 1);
        });
    });
    assert_eq!(done.get(), 3);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

/// The other side: the timeout wins, every style gets the `TimedOut`
/// reason, and nothing is left.
#[test]
fn race_with_timeout_that_fires() {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let took = run_timed(move || {
        let deadline = AbortSignal::timeout(Duration::from_millis(10));
        let timed_out = |e: &Rejection| {
            e.abort_reason().map(|r| r.kind()) == Some(std::io::ErrorKind::TimedOut)
        };
        set_timeout_with_signal(HOUR, &deadline, || unreachable!());
        let g1 = g.clone();
        delay_with_signal(HOUR, &deadline).catch(move |e| g1.borrow_mut().push(timed_out(&e)));
        let g2 = g.clone();
        let d2 = deadline.clone();
        spawn_with_signal(&deadline, async move {
            let r = sleep_with_signal(HOUR, &d2).await;
            unreachable!("the task is dropped first: {r:?}");
        })
        .catch(move |e| g2.borrow_mut().push(timed_out(&e)));
    });
    assert_eq!(*got.borrow(), [true, true]);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

// ---- the foundation ----

/// A `timeout` or `any` signal handed straight to operations (no clone
/// kept) still aborts them: a listened-to signal stays alive.
#[test]
fn unkept_timeout_and_any_signals_still_abort() {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let took = run_timed(move || {
        let g1 = g.clone();
        delay_with_signal(HOUR, &AbortSignal::timeout(Duration::from_millis(5)))
            .catch(move |e| g1.borrow_mut().push(e.is_aborted()));
        let controller = AbortController::new();
        let either = AbortSignal::any(&[
            controller.signal(),
            AbortSignal::timeout(Duration::from_millis(5)),
        ]);
        let g2 = g.clone();
        let _ = either.on_abort(move |r| {
            g2.borrow_mut()
                .push(r.kind() == std::io::ErrorKind::TimedOut)
        });
        drop(either);
        let g3 = g.clone();
        spawn_with_signal(&AbortSignal::timeout(Duration::from_millis(5)), sleep(HOUR))
            .catch(move |e| g3.borrow_mut().push(e.is_aborted()));
        drop(controller);
    });
    assert_eq!(*got.borrow(), [true, true, true]);
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

/// A signal nobody listens to and nobody keeps is dropped, and with it the
/// timer of a `timeout` signal.
#[test]
fn unlistened_timeout_signal_is_dropped_with_its_timer() {
    run_timed(|| {
        let s = AbortSignal::timeout(HOUR);
        let l = s.on_abort(|_| {});
        assert_eq!(evloop::active_handles().len(), 1);
        l.remove();
        drop(s);
        assert!(evloop::active_handles().is_empty());
    });
}
