//! Reliability suite, section B: timers (T09–T14 of the reliability
//! catalogue, TESTS.md in the team's shared docs). Figures are printed as
//! `FIGURE Tnn: ...` (run with `--nocapture`).
//!
//! Already covered elsewhere, not repeated: mixed deadlines in deadline
//! order (`tests/order.rs::mixed_deadlines_fire_in_deadline_order`), a timer
//! cleared while due in the same pass
//! (`tests/order.rs::clearing_a_timer_already_due_in_the_same_tick`, T13
//! case 2), `Duration::MAX`/`u64::MAX` ms/zero/1 ns/interval of MAX
//! (`tests/run_modes.rs::huge_durations_saturate_without_panicking`).

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::net::TcpListener;
use evloop::{set_interval, set_timeout, EventLoop, Timeout};
use support::{alloc::live, figures::count, figures::percentile, watchdog::Test};

/// H1: this binary's heap, counted (`support::alloc`).
#[global_allocator]
static HEAP: support::alloc::Counting = support::alloc::Counting;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// T09: a million timers, 1,000 due per millisecond over 1..1,000 ms,
/// every other one cancelled (also twice, and after firing). Exactly the
/// other half fire; a second identical cycle does not grow the heap.
#[test]
fn t09_million_timers_half_cancelled() {
    let t = Test::start("T09", Duration::from_secs(240));
    let n = count(1_000_000);
    let el = EventLoop::new().unwrap();
    let fired = Rc::new(Cell::new(0usize));
    let wrong = Rc::new(Cell::new(0usize));
    let mut lives = Vec::new();
    let mut times = Vec::new();
    let base = live();
    for _cycle in 0..2 {
        let start = Instant::now();
        {
            let _g = el.enter();
            let mut handles: Vec<Timeout> = Vec::with_capacity(n);
            for i in 0..n {
                let (f, w) = (fired.clone(), wrong.clone());
                let d = Duration::from_micros(1000 + (i as u64 * 1000) / 1000);
                handles.push(set_timeout(d, move || {
                    if i % 2 == 1 {
                        w.set(w.get() + 1);
                    }
                    f.set(f.get() + 1);
                }));
            }
            for h in handles.iter().skip(1).step_by(2) {
                h.clear();
                h.clear(); // twice: a no-op
            }
            drop(_g);
            el.run().unwrap();
            // Late cancel, after firing: a no-op.
            for h in handles.iter().step_by(2) {
                h.clear();
            }
        }
        times.push(start.elapsed());
        lives.push(live() - base);
    }
    t.figure(format_args!(
        "{n} timers x 2 cycles: {} callbacks ({} for cancelled timers); cycle times {:?} \
         ({} build); live heap after cycle 1 {} B over the baseline, cycle 2 grew {} B",
        fired.get(),
        wrong.get(),
        times,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        lives[0],
        lives[1] - lives[0]
    ));
    assert_eq!(fired.get(), n, "n/2 per cycle");
    assert_eq!(wrong.get(), 0);
    assert!(lives[0] <= 1 << 20, "heap after the drain: {} B", lives[0]);
    assert!(lives[1] - lives[0] <= 64 << 10);
}

/// T10: 10,000 timers with one deadline fire in start order; refreshing an
/// active timer keeps only the last deadline (one callback).
#[test]
fn t10_timer_ordering() {
    let t = Test::start("T10", Duration::from_secs(60));
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    let refreshed_at = Rc::new(Cell::new(None::<Instant>));
    let fired_at = Rc::new(RefCell::new(Vec::new()));
    let (ra, fa) = (refreshed_at.clone(), fired_at.clone());
    evloop::run(move || {
        for i in 0..10_000 {
            let o = o.clone();
            // Deadlines are equal or increasing (the clock is read per call).
            let _ = set_timeout(ms(5), move || o.borrow_mut().push(i));
        }
        let fa2 = fa.clone();
        let tm = set_timeout(ms(20), move || fa2.borrow_mut().push(Instant::now()));
        set_timeout(ms(10), move || {
            ra.set(Some(Instant::now()));
            assert!(tm.refresh());
        });
    })
    .unwrap();
    let got = order.borrow();
    assert_eq!(got.len(), 10_000);
    let inversions = got.windows(2).filter(|w| w[0] > w[1]).count();
    let fired = fired_at.borrow();
    assert_eq!(
        fired.len(),
        1,
        "refreshed timer fired {} times",
        fired.len()
    );
    let gap = fired[0] - refreshed_at.get().unwrap();
    t.figure(format_args!(
        "10,000 equal deadlines: {inversions} out of order; a 20 ms timer refreshed at \
         10 ms fired once, {gap:?} after the refresh"
    ));
    assert_eq!(inversions, 0);
    assert!(gap >= ms(20));
}

/// T11: 2,000 timers with random 1–100 ms delays on an idle loop: none
/// early (by the loop's `now` or the real clock); lateness reported.
#[test]
fn t11_never_early_bounded_late() {
    let t = Test::start("T11", Duration::from_secs(60));
    let late = Rc::new(RefCell::new(Vec::new()));
    let early = Rc::new(Cell::new(0usize));
    let (l2, e2) = (late.clone(), early.clone());
    evloop::run(move || {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let d = ms(1 + rng % 100);
            let start = Instant::now();
            let (l3, e3) = (l2.clone(), e2.clone());
            let _ = set_timeout(d, move || {
                let real = Instant::now();
                if evloop::now() < start + d || real < start + d {
                    e3.set(e3.get() + 1);
                }
                l3.borrow_mut()
                    .push(real.saturating_duration_since(start + d));
            });
        }
    })
    .unwrap();
    let mut l = late.borrow_mut();
    assert_eq!(l.len(), 2000);
    let p50 = percentile(&mut l, 0.5);
    let p99 = percentile(&mut l, 0.99);
    let max = *l.last().unwrap();
    t.figure(format_args!(
        "2,000 timers: {} early; lateness p50 {p50:?}, p99 {p99:?}, max {max:?}",
        early.get()
    ));
    assert_eq!(early.get(), 0);
    // Soft: a loaded 2-core machine can be late, but not by seconds.
    assert!(p99 < Duration::from_secs(1), "p99 lateness {p99:?}");
}

/// T12 (the parts `run_modes.rs` does not check): a delay over
/// `TIMEOUT_MAX` (2^31 - 1 ms) becomes 1 ms, as in Node, whatever its size
/// (`Duration::MAX`, `u64::MAX` ms, seconds near `u64::MAX`), with no
/// panic; a `MAX` interval repeats every 1 ms; refresh and clear of such a
/// timer work, and nothing keeps the loop alive once they have fired.
#[test]
fn t12_extreme_durations() {
    let t = Test::start("T12", Duration::from_secs(60));
    let el = EventLoop::new().unwrap();
    let huge_fired = Rc::new(Cell::new(0));
    let ticks = Rc::new(Cell::new(0));
    {
        let _g = el.enter();
        let hf = huge_fired.clone();
        let huge: Vec<Timeout> = [
            Duration::MAX,
            Duration::from_millis(u64::MAX),
            Duration::from_secs(u64::MAX / 2),
            Duration::new(u64::MAX, 999_999_999),
            evloop::timers::TIMEOUT_MAX + Duration::from_nanos(1),
        ]
        .into_iter()
        .map(|d| {
            let hf = hf.clone();
            set_timeout(d, move || hf.set(hf.get() + 1))
        })
        .collect();
        for h in &huge {
            assert!(h.refresh(), "refresh of a huge timer");
        }
        let cleared = set_timeout(Duration::MAX, || panic!("cleared"));
        cleared.clear();
        let tk = ticks.clone();
        let iv = set_interval(Duration::MAX, move || tk.set(tk.get() + 1));
        let tk = ticks.clone();
        set_timeout(ms(30), move || {
            assert!(tk.get() >= 2, "a MAX interval repeats every 1 ms");
            iv.clear();
        });
    }
    el.run().unwrap();
    assert!(!el.is_alive());
    t.figure(format_args!(
        "5 huge timers fired {} times, a MAX interval ran {} times in 30 ms, no panic",
        huge_fired.get(),
        ticks.get()
    ));
    assert_eq!(huge_fired.get(), 5);
}

/// T13 case 1: a 0 ms timer re-arming itself forever runs at most once per
/// iteration, and 1,000 TCP echo round trips still finish meanwhile. Case
/// 3: a timer that clears itself and starts C for 0 ms: C runs in a later
/// iteration, not in the same pass.
#[test]
fn t13_timers_from_timers() {
    let t = Test::start("T13", Duration::from_secs(120));
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let stop = Rc::new(Cell::new(false));
    let spins = Rc::new(Cell::new(0usize));
    fn rearm(stop: Rc<Cell<bool>>, spins: Rc<Cell<usize>>) {
        set_timeout(Duration::ZERO, move || {
            spins.set(spins.get() + 1);
            if !stop.get() {
                rearm(stop, spins);
            }
        });
    }
    rearm(stop.clone(), spins.clone());
    let server = TcpListener::bind("127.0.0.1:0", |c| {
        let s = c.unwrap();
        let s2 = s.clone();
        s.on_data(move |b| {
            s2.write(b);
        });
    })
    .unwrap();
    let trips = Rc::new(Cell::new(0usize));
    let tr = trips.clone();
    evloop::net::connect(server.local_addr(), move |r| {
        let s = r.unwrap();
        s.write(b"ping");
        let s2 = s.clone();
        s.on_data(move |_| {
            tr.set(tr.get() + 1);
            if tr.get() < 1000 {
                s2.write(b"ping");
            } else {
                s2.destroy();
            }
        });
    });
    let start = Instant::now();
    let mut max_per_iter = 0;
    while trips.get() < 1000 {
        let turn = el.run_once().unwrap();
        max_per_iter = max_per_iter.max(turn.timers);
        assert!(start.elapsed() < Duration::from_secs(60), "echo starved");
    }
    let took = start.elapsed();
    stop.set(true);
    server.close();
    // Case 3.
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let a: Rc<RefCell<Option<Timeout>>> = Rc::default();
    let a2 = a.clone();
    *a.borrow_mut() = Some(set_timeout(ms(1), move || {
        l.borrow_mut().push("A");
        a2.borrow().as_ref().unwrap().clear();
        let l2 = l.clone();
        set_timeout(Duration::ZERO, move || l2.borrow_mut().push("C"));
        l.borrow_mut().push("A end");
    }));
    let mut turns = Vec::new();
    while log.borrow().len() < 3 {
        turns.push(el.run_once().unwrap().timers);
    }
    drop(_g);
    el.run().unwrap();
    t.figure(format_args!(
        "self re-arming 0 ms timer ran {} times, at most {max_per_iter} per iteration, \
         while 1,000 echo round trips took {took:?}; clear-self-then-start-C: C ran in a \
         later iteration (timers per iteration {turns:?})",
        spins.get()
    ));
    assert!(max_per_iter <= 1);
    assert_eq!(*log.borrow(), ["A", "A end", "C"]);
    assert!(
        turns.iter().filter(|&&n| n > 0).count() >= 2,
        "C ran in A's pass"
    );
}

/// T14: a 10 ms interval whose callback once blocks for 25 ms is called
/// once afterwards, not 2–3 times to catch up: the next run is a full
/// period after the callback returned (the documented rule in
/// `src/timers.rs`).
#[test]
fn t14_repeat_timer_after_stall() {
    let t = Test::start("T14", Duration::from_secs(60));
    let calls = Rc::new(RefCell::new(Vec::<(Instant, Instant)>::new()));
    let c = calls.clone();
    evloop::run(move || {
        let n = Rc::new(Cell::new(0));
        let holder: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
        let h2 = holder.clone();
        let iv = set_interval(ms(10), move || {
            let began = Instant::now();
            n.set(n.get() + 1);
            if n.get() == 3 {
                let end = Instant::now() + ms(25);
                while Instant::now() < end {
                    std::hint::spin_loop();
                }
            }
            c.borrow_mut().push((began, Instant::now()));
            if n.get() == 8 {
                h2.borrow().as_ref().unwrap().clear();
            }
        });
        *holder.borrow_mut() = Some(iv);
    })
    .unwrap();
    let calls = calls.borrow();
    assert_eq!(calls.len(), 8);
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].0 - w[0].1).collect();
    let min_gap = *gaps.iter().min().unwrap();
    t.figure(format_args!(
        "after the 25 ms stall the next call came {:?} after it returned; smallest gap \
         between a return and the next call {min_gap:?} over 8 calls",
        gaps[2]
    ));
    assert!(min_gap >= ms(10), "a catch-up call: gaps {gaps:?}");
}
