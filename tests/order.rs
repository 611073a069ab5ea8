//! Ordering parity with Node 20. Each test carries the Node script whose
//! output it reproduces; run the script with `node` to see the same lines.

mod support;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use evloop::{
    clear_timeout, next_tick, queue_microtask, set_immediate, set_interval, set_timeout,
    set_timeout_mut, watch, Interest,
};
use support::{ms, spin, Log};

// console.log('sync');
// setTimeout(() => console.log('timeout'), 0);
// setImmediate(() => console.log('immediate'));
// Promise.resolve().then(() => console.log('microtask'));
// queueMicrotask(() => console.log('microtask2'));
// process.nextTick(() => console.log('tick'));
//
// node: sync, tick, microtask, microtask2, then timeout and immediate
// (their relative order from the main script is not deterministic in Node).
#[test]
fn sync_then_ticks_then_microtasks_then_macrotasks() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        l.push("sync");
        let _ = set_timeout(ms(0), l.rec("timeout"));
        let _ = set_immediate(l.rec("immediate"));
        queue_microtask(l.rec("microtask"));
        queue_microtask(l.rec("microtask2"));
        next_tick(l.rec("tick"));
    })
    .unwrap();
    let got = log.take();
    assert_eq!(got[..4], ["sync", "tick", "microtask", "microtask2"]);
    let mut rest = got[4..].to_vec();
    rest.sort();
    assert_eq!(rest, ["immediate", "timeout"]);
}

/// Makes `cb` run from an I/O callback: registers one end of a socket pair
/// and writes a byte to the other.
fn from_io_callback(cb: impl FnOnce() + 'static) {
    let (mut a, b) = UnixStream::pair().unwrap();
    let b = Rc::new(b);
    let slot: Rc<std::cell::RefCell<Option<evloop::Watch>>> = Rc::default();
    let (slot2, b2) = (slot.clone(), b.clone());
    let mut cb = Some(cb);
    let w = watch(&*b, Interest::READABLE, move |_| {
        let _keep = &b2;
        slot2.borrow_mut().take();
        if let Some(cb) = cb.take() {
            cb();
        }
    })
    .unwrap();
    *slot.borrow_mut() = Some(w);
    a.write_all(b"x").unwrap();
}

// require('fs').readFile(__filename, () => {
//   setTimeout(() => console.log('timeout'), 0);
//   setImmediate(() => console.log('immediate'));
// });
//
// node: immediate, timeout (always, from an I/O callback)
#[test]
fn immediate_before_zero_timeout_from_io_callback() {
    for _ in 0..50 {
        let log = Log::new();
        let l = log.clone();
        evloop::run(move || {
            from_io_callback(move || {
                let _ = set_timeout(ms(0), l.rec("timeout"));
                let _ = set_immediate(l.rec("immediate"));
            });
        })
        .unwrap();
        assert_eq!(log.take(), ["immediate", "timeout"]);
    }
}

// Promise.resolve().then(() => { console.log('m1');
//   process.nextTick(() => console.log('t-from-m1'));
//   Promise.resolve().then(() => console.log('m2-from-m1')); });
// process.nextTick(() => { console.log('t1'); process.nextTick(() => {
//   console.log('t2'); process.nextTick(() => console.log('t3')); }); });
//
// node: t1 t2 t3 m1 m2-from-m1 t-from-m1
#[test]
fn nested_next_ticks_drain_before_microtasks() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let l1 = l.clone();
        queue_microtask(move || {
            l1.push("m1");
            next_tick(l1.rec("t-from-m1"));
            queue_microtask(l1.rec("m2-from-m1"));
        });
        let l2 = l.clone();
        next_tick(move || {
            l2.push("t1");
            let l3 = l2.clone();
            next_tick(move || {
                l3.push("t2");
                next_tick(l3.rec("t3"));
            });
        });
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["t1", "t2", "t3", "m1", "m2-from-m1", "t-from-m1"]
    );
}

// setTimeout(() => { console.log('t1'); Promise.resolve().then(() => console.log('m1'));
//   process.nextTick(() => console.log('n1')); }, 1);
// setTimeout(() => { console.log('t2'); Promise.resolve().then(() => console.log('m2')); }, 1);
// const s = Date.now(); while (Date.now() - s < 5);
//
// node: t1 n1 m1 t2 m2
#[test]
fn microtasks_drain_between_two_timers_due_in_the_same_tick() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let l1 = l.clone();
        let _ = set_timeout(ms(1), move || {
            l1.push("t1");
            queue_microtask(l1.rec("m1"));
            next_tick(l1.rec("n1"));
        });
        let l2 = l.clone();
        let _ = set_timeout(ms(1), move || {
            l2.push("t2");
            queue_microtask(l2.rec("m2"));
        });
        spin(ms(5));
    })
    .unwrap();
    assert_eq!(log.take(), ["t1", "n1", "m1", "t2", "m2"]);
}

// let b;
// setTimeout(() => { console.log('a'); clearTimeout(b); }, 1);
// b = setTimeout(() => console.log('b'), 1);
// const s = Date.now(); while (Date.now() - s < 5);
//
// node: a
#[test]
fn clearing_a_timer_already_due_in_the_same_tick() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let b_slot: Rc<std::cell::RefCell<Option<evloop::Timeout>>> = Rc::default();
        let (l1, slot) = (l.clone(), b_slot.clone());
        let _ = set_timeout(ms(1), move || {
            l1.push("a");
            clear_timeout(slot.borrow().as_ref().unwrap());
        });
        *b_slot.borrow_mut() = Some(set_timeout(ms(1), l.rec("b")));
        spin(ms(5));
    })
    .unwrap();
    assert_eq!(log.take(), ["a"]);
}

// let n = 0; const i = setInterval(() => { n++; console.log('tick', n);
//   if (n === 3) clearInterval(i); }, 1);
//
// node: tick 1, tick 2, tick 3 (then exits)
#[test]
fn interval_cleared_after_n_ticks() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let me: Rc<std::cell::RefCell<Option<evloop::Interval>>> = Rc::default();
        let me2 = me.clone();
        let mut n = 0;
        *me.borrow_mut() = Some(set_interval(ms(1), move || {
            n += 1;
            l.push(format!("tick {n}"));
            if n == 3 {
                me2.borrow().as_ref().unwrap().clear();
            }
        }));
    })
    .unwrap();
    assert_eq!(log.take(), ["tick 1", "tick 2", "tick 3"]);
}

// const spin = (ms) => { const e = Date.now() + ms; while (Date.now() < e); };
// let n = 0;
// const h = setInterval(() => {
//   n += 1; console.log('I' + n);
//   if (n === 1) setImmediate(() => { console.log('S1'); setImmediate(() => console.log('S2')); });
//   if (n === 2) clearInterval(h);
//   spin(3);
// }, 1);
// spin(3);
//
// node: I1 S1 I2 S2. The interval re-arms from the moment its callback
// *started* (found by tests/differential.rs): its callback outlasts its
// period, so it is due again at the next timers phase, before the
// immediate S1 queues for the iteration after.
#[test]
fn interval_rearms_from_its_callbacks_start() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let me: Rc<std::cell::RefCell<Option<evloop::Interval>>> = Rc::default();
        let me2 = me.clone();
        let mut n = 0;
        *me.borrow_mut() = Some(set_interval(ms(1), move || {
            n += 1;
            l.push(format!("I{n}"));
            if n == 1 {
                let l = l.clone();
                let _ = set_immediate(move || {
                    l.push("S1");
                    let _ = set_immediate(l.rec("S2"));
                });
            }
            if n == 2 {
                me2.borrow().as_ref().unwrap().clear();
            }
            spin(ms(3));
        }));
        spin(ms(3));
    })
    .unwrap();
    assert_eq!(log.take(), ["I1", "S1", "I2", "S2"]);
}

// let m = 0;
// const h = setInterval(() => {
//   m += 1; console.log('J' + m);
//   if (m === 1) setTimeout(() => console.log('T'), 5);
//   if (m === 3) clearInterval(h);
//   spin(2);
// }, 5);
//
// node: J1 T J2 J3. Node keeps a list per delay and puts the re-armed
// interval at the end of its list, after T, although its deadline (from
// its callback's start) is earlier than T's.
#[test]
fn rearmed_interval_runs_after_the_timers_of_its_delay_it_set() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let me: Rc<std::cell::RefCell<Option<evloop::Interval>>> = Rc::default();
        let me2 = me.clone();
        let mut m = 0;
        *me.borrow_mut() = Some(set_interval(ms(5), move || {
            m += 1;
            l.push(format!("J{m}"));
            if m == 1 {
                let _ = set_timeout(ms(5), l.rec("T"));
            }
            if m == 3 {
                me2.borrow().as_ref().unwrap().clear();
            }
            spin(ms(2));
        }));
    })
    .unwrap();
    assert_eq!(log.take(), ["J1", "T", "J2", "J3"]);
}

// let n = 0; const t = setTimeout(() => { n++; console.log('fired', n); }, 5);
// setTimeout(() => { console.log('refresh'); t.refresh(); }, 20);
//
// node: fired 1, refresh, fired 2
#[test]
fn refresh_rearms_a_fired_timeout() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let mut n = 0;
        let l1 = l.clone();
        let t = set_timeout_mut(ms(5), move || {
            n += 1;
            l1.push(format!("fired {n}"));
        });
        let _ = set_timeout(ms(20), move || {
            l.push("refresh");
            assert!(t.refresh());
        });
    })
    .unwrap();
    assert_eq!(log.take(), ["fired 1", "refresh", "fired 2"]);
}

// setImmediate(() => { console.log('i1'); setImmediate(() => console.log('i3'));
//   process.nextTick(()=>console.log('n-i1')); });
// setImmediate(() => console.log('i2'));
//
// node: i1 n-i1 i2 i3
#[test]
fn immediate_from_immediate_runs_next_iteration() {
    let log = Log::new();
    let l = log.clone();
    let el = evloop::EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let l1 = l.clone();
        let _ = set_immediate(move || {
            l1.push("i1");
            let _ = set_immediate(l1.rec("i3"));
            next_tick(l1.rec("n-i1"));
        });
        let _ = set_immediate(l.rec("i2"));
    }
    // Stepping shows the snapshot rule: i3 waits for the next iteration.
    let turn = el.run_nowait().unwrap();
    assert_eq!(turn.immediates, 2);
    assert_eq!(log.take(), ["i1", "n-i1", "i2"]);
    assert!(turn.alive);
    let turn = el.run_nowait().unwrap();
    assert_eq!(turn.immediates, 1);
    assert!(!turn.alive);
    assert_eq!(log.take(), ["i3"]);
}

// const t = setTimeout(() => console.log('never'), 1000); t.unref();
// setTimeout(()=>console.log('short'), 10);
//
// node: short (and exits without waiting a second)
#[test]
fn unrefd_timer_lets_the_loop_exit() {
    let log = Log::new();
    let l = log.clone();
    let start = std::time::Instant::now();
    evloop::run(move || {
        set_timeout(ms(1000), l.rec("never")).unref();
        let _ = set_timeout(ms(10), l.rec("short"));
    })
    .unwrap();
    assert_eq!(log.take(), ["short"]);
    assert!(start.elapsed() < ms(900), "the unref'd timer held the loop");
}

// for (let i = 0; i < 1000; i++) setTimeout(() => out.push(i), 5);
// node: 0, 1, ..., 999 (equal delays fire in the order they were set)
#[test]
fn equal_deadlines_fire_in_insertion_order() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        for i in 0..1000 {
            let l = l.clone();
            let _ = set_timeout(ms(5), move || l.push(i.to_string()));
        }
    })
    .unwrap();
    let want: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    assert_eq!(log.take(), want);
}

// setTimeout(() => console.log('t20'), 20);
// setTimeout(() => console.log('t5'), 5);
// setTimeout(() => console.log('t10'), 10);
// node: t5 t10 t20
#[test]
fn mixed_deadlines_fire_in_deadline_order() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let _ = set_timeout(ms(20), l.rec("t20"));
        let _ = set_timeout(ms(5), l.rec("t5"));
        let _ = set_timeout(ms(10), l.rec("t10"));
    })
    .unwrap();
    assert_eq!(log.take(), ["t5", "t10", "t20"]);
}

// const start = Date.now();
// setTimeout(() => console.log(Date.now() - start >= 30), 30);
// node: true (never early)
#[test]
fn timers_are_never_early() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        for d in [1u64, 2, 3, 7, 15, 30] {
            let l = l.clone();
            let start = std::time::Instant::now();
            let _ = set_timeout(ms(d), move || {
                let now = evloop::now();
                assert!(now >= start + ms(d), "timer {d}ms early");
                l.push("ok");
            });
        }
    })
    .unwrap();
    assert_eq!(log.len(), 6);
}
