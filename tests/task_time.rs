//! `task::interval` and `run_async` (the async main).

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use evloop::promise::Promise;
use evloop::task::{interval, sleep, timeout};
use evloop::{block_on, run_async, set_timeout, spawn, Error, EventLoop, HandleKind};
use support::{ms, spin, Log};

fn intervals(el: &EventLoop) -> usize {
    el.active_handles()
        .iter()
        .filter(|h| h.kind == HandleKind::Interval)
        .count()
}

#[test]
fn interval_first_tick_at_once_then_every_period_never_early() {
    let period = ms(20);
    let start = Instant::now();
    let ticks = block_on(async move {
        let mut every = interval(period);
        let mut at = Vec::new();
        for _ in 0..6 {
            every.tick().await;
            at.push(start.elapsed());
        }
        at
    })
    .unwrap();
    assert_eq!(ticks.len(), 6);
    assert!(ticks[0] < period, "the first tick waited: {:?}", ticks[0]);
    for (k, t) in ticks.iter().enumerate() {
        // Tick k is due k periods after the first; never earlier.
        assert!(*t >= period * k as u32, "tick {k} early: {t:?}");
    }
    for w in ticks.windows(2).skip(1) {
        // Each timer tick at least (almost: the loop clock is in whole
        // milliseconds) one period after the previous one.
        assert!(w[1] - w[0] >= ms(19), "ticks too close: {w:?}");
    }
}

#[test]
fn interval_tick_returns_when_it_fired() {
    block_on(async {
        let mut every = interval(ms(5));
        let t0 = every.tick().await;
        let t1 = every.tick().await;
        assert!(t1 > t0);
        assert!(t1 <= Instant::now());
        assert_eq!(every.period(), ms(5));
    })
    .unwrap();
}

#[test]
fn interval_counts_ticks_in_a_window() {
    // 100 ms at 10 ms: the immediate tick plus at most 10 timer ticks, and
    // (allowing for a slow, shared machine) a good part of them.
    let n = block_on(async {
        let mut every = interval(ms(10));
        let end = Instant::now() + ms(100);
        let mut n = 0u32;
        while timeout(end.saturating_duration_since(Instant::now()), every.tick())
            .await
            .is_ok()
        {
            n += 1;
        }
        n
    })
    .unwrap();
    assert!((3..=11).contains(&n), "{n} ticks in 100 ms at 10 ms");
}

#[test]
fn interval_missed_ticks_are_not_queued() {
    block_on(async {
        let mut every = interval(ms(5));
        every.tick().await;
        spin(ms(30)); // six periods missed (the loop is blocked: one fire)
        every.tick().await; // the timer fires once: at once
        let t = Instant::now();
        every.tick().await; // the next waits for the timer again
        assert!(t.elapsed() >= ms(3), "missed ticks were queued");
    })
    .unwrap();
}

#[test]
fn dropping_an_interval_clears_its_timer() {
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let el2 = Rc::new(el);
    let el3 = el2.clone();
    block_on(async move {
        let mut every = interval(ms(1));
        assert_eq!(intervals(&el3), 0, "armed before the first tick");
        every.tick().await;
        assert_eq!(intervals(&el3), 1);
        every.tick().await;
        every.tick().await;
        drop(every);
        assert_eq!(intervals(&el3), 0, "the timer outlived its Interval");
    })
    .unwrap();
    assert!(!el2.is_alive());
}

#[test]
fn a_tick_cancelled_by_timeout_loses_nothing() {
    block_on(async {
        let mut every = interval(ms(150));
        let t0 = Instant::now();
        every.tick().await;
        assert!(timeout(ms(1), every.tick()).await.is_err());
        every.tick().await;
        // The next tick is the one due at 150 ms, not one period later
        // (300 ms): the bound between leaves a shared machine 150 ms of
        // slack.
        let t = t0.elapsed();
        assert!(t >= ms(149) && t < ms(300), "second tick at {t:?}");
    })
    .unwrap();
}

#[test]
fn an_interval_from_an_aborted_task_is_cleared() {
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let (_p, abort) = evloop::task::spawn_handle(async {
        let mut every = interval(ms(1));
        loop {
            every.tick().await;
        }
    });
    assert_eq!(intervals(&el), 1);
    abort.abort();
    assert_eq!(intervals(&el), 0);
}

#[test]
fn run_async_keeps_the_loop_running_after_main_completes() {
    let log = Log::new();
    let l = log.clone();
    let n = run_async(async move {
        l.push("main start");
        let l2 = l.clone();
        spawn(async move {
            sleep(ms(5)).await;
            l2.push("task after sleep");
            let l3 = l2.clone();
            set_timeout(ms(1), move || l3.push("timeout from task"));
        });
        let l4 = l.clone();
        set_timeout(ms(2), move || l4.push("timeout from main"));
        let v = Promise::resolve(20).await.unwrap();
        l.push("main end");
        v + 1
    })
    .unwrap();
    assert_eq!(n, 21);
    assert_eq!(
        log.take(),
        [
            "main start",
            "main end",
            "timeout from main",
            "task after sleep",
            "timeout from task"
        ]
    );
}

#[test]
fn run_async_main_runs_synchronously_first() {
    let log = Log::new();
    let l = log.clone();
    run_async(async move {
        let l2 = l.clone();
        evloop::queue_microtask(move || l2.push("microtask"));
        l.push("body");
        evloop::task::yield_now().await;
        l.push("after yield");
    })
    .unwrap();
    assert_eq!(log.take(), ["body", "microtask", "after yield"]);
}

#[test]
fn run_async_a_panic_is_panicked() {
    let r = run_async(async {
        sleep(ms(1)).await;
        panic!("boom");
    });
    match r {
        Err(Error::Panicked(p)) => assert!(p.to_string().contains("boom"), "{p}"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    let r = run_async(async { panic!("at once") });
    assert!(matches!(r, Err(Error::Panicked(_))), "{r:?}");
}

#[test]
fn run_async_a_panic_stops_the_loop() {
    let late = Rc::new(Cell::new(false));
    let l = late.clone();
    let r = run_async(async move {
        set_timeout(ms(200), move || l.set(true));
        sleep(ms(1)).await;
        panic!("boom");
    });
    assert!(matches!(r, Err(Error::Panicked(_))));
    // (No wall-clock bound: printing the panic's backtrace can be slow.)
    assert!(!late.get(), "the loop ran on after the main task panicked");
}

#[test]
fn run_async_a_main_nothing_can_wake_is_stalled() {
    let keep: Rc<RefCell<Vec<evloop::promise::Resolve<u32>>>> = Rc::default();
    let k = keep.clone();
    let r = run_async(async move {
        let w = Promise::<u32>::with_resolvers();
        k.borrow_mut().push(w.resolve);
        w.promise.await.unwrap()
    });
    assert!(matches!(r, Err(Error::Stalled)), "{r:?}");
}
