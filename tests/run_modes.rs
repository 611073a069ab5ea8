//! `run`, `run_once`, `run_nowait`, `stop`, re-entrancy and embedding hooks.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::{set_immediate, set_timeout, Error, EventLoop, HandleKind};
use support::{ms, Log};

#[test]
fn run_on_an_empty_loop_returns_at_once() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let start = Instant::now();
    el.run().unwrap();
    let turn = el.run_once().unwrap();
    assert!(!turn.alive);
    assert_eq!(turn.callbacks(), 0);
    assert!(start.elapsed() < ms(100));
}

#[test]
fn run_nowait_never_blocks_and_reports_remaining_work() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let log = Log::new();
    {
        let _g = el.enter();
        let _ = set_timeout(ms(50), log.rec("timer"));
    }
    let start = Instant::now();
    let turn = el.run_nowait().unwrap();
    assert!(start.elapsed() < ms(40), "run_nowait blocked");
    assert!(turn.alive);
    assert_eq!(turn.timers, 0);
    assert_eq!(turn.iterations, 1);
    // The host would now wait backend_timeout() before the next step.
    let t = el.backend_timeout().expect("a timer is armed");
    assert!(t <= ms(50) && t > ms(0), "{t:?}");
}

#[test]
fn run_once_blocks_until_something_happens_and_makes_progress() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let log = Log::new();
    {
        let _g = el.enter();
        let _ = set_timeout(ms(20), log.rec("first"));
        let _ = set_timeout(ms(40), log.rec("second"));
    }
    let start = Instant::now();
    let turn = el.run_once().unwrap();
    assert!(start.elapsed() >= ms(20));
    assert_eq!(turn.timers, 1);
    assert!(turn.alive);
    assert_eq!(log.take(), ["first"]);
    let turn = el.run_once().unwrap();
    assert_eq!(turn.timers, 1);
    assert!(!turn.alive);
    assert_eq!(log.take(), ["second"]);
}

#[test]
fn stop_from_a_callback_returns_after_the_iteration_and_run_resumes() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let log = Log::new();
    {
        let _g = el.enter();
        let l = log.clone();
        let _ = set_timeout(ms(1), move || {
            l.push("stopper");
            evloop::stop();
            // Queued in the same tick: runs before run() returns? No: the
            // immediate belongs to the next iteration, after the stop.
            let _ = set_immediate(l.rec("after resume"));
        });
        let _ = set_timeout(ms(30), log.rec("late"));
    }
    el.run().unwrap();
    assert_eq!(log.take(), ["stopper"]);
    assert!(el.is_alive());
    el.run().unwrap();
    assert_eq!(log.take(), ["after resume", "late"]);
}

#[test]
fn stop_from_another_thread() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let _ = set_timeout(Duration::from_secs(3600), || {});
    }
    let remote = el.remote();
    let t = std::thread::spawn(move || {
        std::thread::sleep(ms(20));
        remote.stop();
    });
    let start = Instant::now();
    el.run().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    t.join().unwrap();
}

#[test]
fn nested_run_is_an_error_not_a_deadlock() {
    support::init_log();
    let el = Rc::new(EventLoop::new().unwrap());
    let seen = Rc::new(Cell::new(false));
    {
        let _g = el.enter();
        let (el2, seen2) = (el.clone(), seen.clone());
        let _ = set_immediate(move || {
            assert!(matches!(el2.run(), Err(Error::Reentrant)));
            assert!(matches!(el2.run_once(), Err(Error::Reentrant)));
            assert!(matches!(el2.run_nowait(), Err(Error::Reentrant)));
            seen2.set(true);
        });
    }
    el.run().unwrap();
    assert!(seen.get());
}

#[test]
fn active_handles_say_what_keeps_the_loop_alive() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let t = set_timeout(ms(1000), || {});
    let _i = set_immediate(|| {});
    let u = set_timeout(ms(5), || {});
    u.unref();
    let handles = el.active_handles();
    assert_eq!(handles.len(), 3);
    assert_eq!(
        handles
            .iter()
            .filter(|h| h.kind == HandleKind::Timeout && h.refed)
            .count(),
        1
    );
    assert!(handles.iter().any(|h| h.kind == HandleKind::Immediate));
    assert!(
        handles[0].label.starts_with("set_timeout("),
        "{}",
        handles[0]
    );
    let dbg = format!("{el:?}");
    assert!(
        dbg.contains("timers: 2") && dbg.contains("immediates: 1"),
        "{dbg}"
    );
    t.clear();
    assert_eq!(el.active_handles().len(), 2);
}

#[test]
fn ref_and_unref_are_flags_not_counters() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let t = set_timeout(ms(1000), || {});
    t.unref().unref();
    assert!(!t.has_ref());
    assert!(!el.is_alive());
    t.ref_();
    assert!(el.is_alive());
    t.unref();
    let i = set_immediate(|| {});
    i.unref();
    assert!(!el.is_alive());
    i.ref_().ref_();
    i.unref();
    assert!(!el.is_alive());
}

/// A delay over `TIMEOUT_MAX` becomes 1 ms (Node's rule, with a
/// `TimeoutOverflowWarning` on stderr), in all three styles: `set_timeout`,
/// `promise::delay` and `task::sleep`. None of them keeps the loop alive
/// for ever.
#[test]
fn huge_durations_become_one_ms_in_every_style() {
    support::init_log();
    let log = Log::new();
    let l = log.clone();
    let start = Instant::now();
    evloop::run(move || {
        let _ = set_timeout(Duration::MAX, l.rec("timeout MAX"));
        let _ = set_timeout(
            Duration::from_millis(u64::MAX),
            l.rec("timeout u64::MAX ms"),
        );
        let l2 = l.clone();
        evloop::promise::delay(Duration::MAX).then(move |()| l2.push("delay MAX"));
        let l3 = l.clone();
        let _ = evloop::spawn(async move {
            evloop::task::sleep(Duration::MAX).await;
            l3.push("sleep MAX");
        });
        let _ = set_timeout(ms(50), l.rec("50 ms"));
    })
    .unwrap();
    let mut got = log.take();
    assert_eq!(got.pop().as_deref(), Some("50 ms"), "{got:?}");
    got.sort();
    assert_eq!(
        got,
        [
            "delay MAX",
            "sleep MAX",
            "timeout MAX",
            "timeout u64::MAX ms"
        ]
    );
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn free_functions_without_a_loop_panic_with_a_helpful_message() {
    let r = std::panic::catch_unwind(|| {
        let _ = set_timeout(ms(1), || {});
    });
    let payload = r.unwrap_err();
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(msg.contains("evloop::run"), "{msg}");
}

#[test]
fn now_is_cached_per_iteration() {
    support::init_log();
    evloop::run(|| {
        let _ = set_timeout(ms(2), || {
            let a = evloop::now();
            support::spin(ms(3));
            // Still the iteration's time, not the wall clock.
            assert_eq!(evloop::now(), a);
        });
    })
    .unwrap();
}

#[test]
fn run_main_inside_a_running_loop_is_an_error() {
    support::init_log();
    let el = Rc::new(EventLoop::new().unwrap());
    let seen = Rc::new(Cell::new(false));
    let (el2, s) = (el.clone(), seen.clone());
    el.run_main(move || {
        let _ = set_immediate(move || {
            assert!(matches!(el2.run_main(|| {}), Err(Error::Reentrant)));
            s.set(true);
        });
    })
    .unwrap();
    el.run().unwrap();
    assert!(seen.get());
}

/// Guards dropped out of order: reported on stderr, never a panic (a
/// `Drop` that panics while unwinding aborts the process); the loop the
/// dropped guard replaced is current again.
#[test]
fn enter_guards_dropped_out_of_order_do_not_panic() {
    support::init_log();
    let a = EventLoop::new().unwrap();
    let b = EventLoop::new().unwrap();
    let ga = a.enter();
    let gb = b.enter();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(ga)));
    assert!(r.is_ok());
    assert!(
        !evloop::has_current(),
        "a's guard restored what was before it"
    );
    drop(gb);
    assert!(
        evloop::has_current(),
        "b's guard restored a (a caller's bug)"
    );
}
