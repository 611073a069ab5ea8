//! Where the `next_tick` and microtask queues resume after a panic that an
//! uncaught-exception handler took, against Node 20 (issue 16, item 6).
//!
//! Each case gives the JavaScript (with this prelude) and the order Node
//! v20.20.2 printed, which evloop must print too:
//!
//! ```js
//! const log = (s) => require('fs').writeSync(1, s + '\n');
//! const busy = (ms) => { const e = Date.now() + ms; while (Date.now() < e); };
//! process.on('uncaughtException', (e) => log(`UE(${e.message})`));
//! ```
//!
//! The rule: a callback that throws skips the drain that would follow it,
//! and a tick that throws cuts its drain short; what is left drains at the
//! next drain point (after the next callback, at the latest at the start of
//! the check phase). A microtask that throws does not stop the drain.

mod support;

use evloop::{next_tick, queue_microtask, set_immediate, set_timeout, EventLoop};
use support::{ms, spin, Log};

/// Runs `main` on a loop whose handler logs `UE(message)`.
fn node_order(main: impl FnOnce(&Log) + 'static) -> Vec<String> {
    std::panic::set_hook(Box::new(|_| {}));
    let log = Log::new();
    let el = EventLoop::new().unwrap();
    let l = log.clone();
    el.on_uncaught_exception(move |e, _| match e {
        evloop::Error::Panicked(p) => l.push(format!("UE({})", p.message())),
        other => l.push(format!("UE({other})")),
    });
    let l = log.clone();
    el.run_main(move || main(&l)).unwrap();
    el.run().unwrap();
    let _ = std::panic::take_hook();
    log.take()
}

// (a1) setTimeout(() => log('timer A'), 0);
//      process.nextTick(() => { log('t1 throws'); throw new Error('t1'); });
//      process.nextTick(() => log('t2')); queueMicrotask(() => log('m1'));
//      setImmediate(() => log('imm')); busy(10); log('main end');
// node: main end, t1 throws, UE(t1), timer A, t2, m1, imm
#[test]
fn a1_main_tick_throws_a_due_timer_runs_first() {
    let got = node_order(|l| {
        set_timeout(ms(0), l.rec("timer A"));
        let la = l.clone();
        next_tick(move || {
            la.push("t1 throws");
            panic!("t1")
        });
        next_tick(l.rec("t2"));
        queue_microtask(l.rec("m1"));
        set_immediate(l.rec("imm"));
        spin(ms(10));
        l.push("main end");
    });
    assert_eq!(
        got,
        [
            "main end",
            "t1 throws",
            "UE(t1)",
            "timer A",
            "t2",
            "m1",
            "imm"
        ]
    );
}

// (a4) a1 without the timer.
// node: main end, t1 throws, UE(t1), t2, m1, imm (drained at the start of
// the check phase)
#[test]
fn a4_main_tick_throws_the_rest_drains_before_the_first_immediate() {
    let got = node_order(|l| {
        let la = l.clone();
        next_tick(move || {
            la.push("t1 throws");
            panic!("t1")
        });
        next_tick(l.rec("t2"));
        queue_microtask(l.rec("m1"));
        set_immediate(l.rec("imm"));
        l.push("main end");
    });
    assert_eq!(got, ["main end", "t1 throws", "UE(t1)", "t2", "m1", "imm"]);
}

// (a2) setTimeout(() => log('timer A'), 0); process.nextTick(() => log('t1'));
//      queueMicrotask(() => log('m1')); setImmediate(() => log('imm'));
//      busy(10); log('main throws'); throw new Error('main');
// node: main throws, UE(main), t1, m1, timer A, imm
#[test]
fn a2_the_main_script_throwing_still_gets_its_drain() {
    let got = node_order(|l| {
        set_timeout(ms(0), l.rec("timer A"));
        next_tick(l.rec("t1"));
        queue_microtask(l.rec("m1"));
        set_immediate(l.rec("imm"));
        spin(ms(10));
        l.push("main throws");
        panic!("main");
    });
    assert_eq!(
        got,
        ["main throws", "UE(main)", "t1", "m1", "timer A", "imm"]
    );
}

// (b1) setTimeout(() => { log('T1 throws'); process.nextTick(() => log('tick from T1'));
//        queueMicrotask(() => log('micro from T1')); throw new Error('T1'); }, 1);
//      setTimeout(() => { log('T2'); process.nextTick(() => log('tick from T2')); }, 1);
//      setTimeout(() => log('T3'), 1); setImmediate(() => log('imm')); busy(10);
// node: T1 throws, UE(T1), T2, tick from T1, tick from T2, micro from T1, T3, imm
#[test]
fn b1_after_a_timer_throws_the_next_timer_runs_first() {
    let got = node_order(|l| {
        let la = l.clone();
        set_timeout(ms(1), move || {
            la.push("T1 throws");
            next_tick(la.rec("tick from T1"));
            queue_microtask(la.rec("micro from T1"));
            panic!("T1")
        });
        let la = l.clone();
        set_timeout(ms(1), move || {
            la.push("T2");
            next_tick(la.rec("tick from T2"));
        });
        set_timeout(ms(1), l.rec("T3"));
        set_immediate(l.rec("imm"));
        spin(ms(10));
    });
    assert_eq!(
        got,
        [
            "T1 throws",
            "UE(T1)",
            "T2",
            "tick from T1",
            "tick from T2",
            "micro from T1",
            "T3",
            "imm"
        ]
    );
}

// (b5) setTimeout(() => { log('T1');
//        process.nextTick(() => { log('tickA throws'); throw new Error('tickA'); });
//        process.nextTick(() => log('tickB')); queueMicrotask(() => log('micro1')); }, 1);
//      setTimeout(() => { log('T2'); process.nextTick(() => log('tick from T2')); }, 1);
//      setTimeout(() => log('T3'), 1); setTimeout(() => log('T4 (2ms)'), 2); busy(10);
// node: T1, tickA throws, UE(tickA), T2, tickB, tick from T2, micro1, T3, T4 (2ms)
#[test]
fn b5_a_tick_throwing_between_timers_resumes_after_the_next_timer() {
    let got = node_order(|l| {
        let la = l.clone();
        set_timeout(ms(1), move || {
            la.push("T1");
            let lb = la.clone();
            next_tick(move || {
                lb.push("tickA throws");
                panic!("tickA")
            });
            next_tick(la.rec("tickB"));
            queue_microtask(la.rec("micro1"));
        });
        let la = l.clone();
        set_timeout(ms(1), move || {
            la.push("T2");
            next_tick(la.rec("tick from T2"));
        });
        set_timeout(ms(1), l.rec("T3"));
        set_timeout(ms(2), l.rec("T4 (2ms)"));
        spin(ms(10));
    });
    assert_eq!(
        got,
        [
            "T1",
            "tickA throws",
            "UE(tickA)",
            "T2",
            "tickB",
            "tick from T2",
            "micro1",
            "T3",
            "T4 (2ms)"
        ]
    );
}

// (c1) setImmediate(() => { log('I1 throws'); process.nextTick(() => log('tick from I1'));
//        queueMicrotask(() => log('micro from I1')); throw new Error('I1'); });
//      setImmediate(() => { log('I2'); process.nextTick(() => log('tick from I2')); });
//      setImmediate(() => log('I3'));
// node: I1 throws, UE(I1), I2, tick from I1, tick from I2, micro from I1, I3
#[test]
fn c1_after_an_immediate_throws_the_next_immediate_runs_first() {
    let got = node_order(|l| {
        let la = l.clone();
        set_immediate(move || {
            la.push("I1 throws");
            next_tick(la.rec("tick from I1"));
            queue_microtask(la.rec("micro from I1"));
            panic!("I1")
        });
        let la = l.clone();
        set_immediate(move || {
            la.push("I2");
            next_tick(la.rec("tick from I2"));
        });
        set_immediate(l.rec("I3"));
    });
    assert_eq!(
        got,
        [
            "I1 throws",
            "UE(I1)",
            "I2",
            "tick from I1",
            "tick from I2",
            "micro from I1",
            "I3"
        ]
    );
}

// (c3) setTimeout(() => { log('T1');
//        queueMicrotask(() => { log('m1 throws'); process.nextTick(() => log('tick from m1'));
//          queueMicrotask(() => log('m3 (from m1)')); throw new Error('m1'); });
//        queueMicrotask(() => log('m2')); process.nextTick(() => log('t1')); }, 1);
//      setTimeout(() => log('T2'), 1); busy(5);
// node: T1, t1, m1 throws, UE(m1), m2, m3 (from m1), tick from m1, T2
#[test]
fn c3_a_throwing_microtask_does_not_stop_the_drain() {
    let got = node_order(|l| {
        let la = l.clone();
        set_timeout(ms(1), move || {
            la.push("T1");
            let lb = la.clone();
            queue_microtask(move || {
                lb.push("m1 throws");
                next_tick(lb.rec("tick from m1"));
                queue_microtask(lb.rec("m3 (from m1)"));
                panic!("m1")
            });
            queue_microtask(la.rec("m2"));
            next_tick(la.rec("t1"));
        });
        set_timeout(ms(1), l.rec("T2"));
        spin(ms(5));
    });
    assert_eq!(
        got,
        [
            "T1",
            "t1",
            "m1 throws",
            "UE(m1)",
            "m2",
            "m3 (from m1)",
            "tick from m1",
            "T2"
        ]
    );
}

// (b2) setTimeout(() => { log('T1(1ms) throws'); process.nextTick(() => log('tick from T1'));
//        queueMicrotask(() => log('micro from T1')); throw new Error('T1'); }, 1);
//      setTimeout(() => { log('T2(2ms)'); process.nextTick(() => log('tick from T2')); }, 2);
//      setTimeout(() => log('T3(3ms)'), 3); setImmediate(() => log('imm')); busy(10);
// node: T1(1ms) throws, UE(T1), tick from T1, micro from T1, T2(2ms), tick from T2,
//       T3(3ms), imm (a timer of another delay is another list: a drain before it)
#[test]
fn b2_a_timer_of_another_delay_gets_a_drain_first() {
    let got = node_order(|l| {
        let la = l.clone();
        set_timeout(ms(1), move || {
            la.push("T1(1ms) throws");
            next_tick(la.rec("tick from T1"));
            queue_microtask(la.rec("micro from T1"));
            panic!("T1")
        });
        let la = l.clone();
        set_timeout(ms(2), move || {
            la.push("T2(2ms)");
            next_tick(la.rec("tick from T2"));
        });
        set_timeout(ms(3), l.rec("T3(3ms)"));
        set_immediate(l.rec("imm"));
        spin(ms(10));
    });
    assert_eq!(
        got,
        [
            "T1(1ms) throws",
            "UE(T1)",
            "tick from T1",
            "micro from T1",
            "T2(2ms)",
            "tick from T2",
            "T3(3ms)",
            "imm"
        ]
    );
}

// (b6) setTimeout(() => { log('T1 throws'); process.nextTick(() => log('tick from T1'));
//        queueMicrotask(() => log('micro from T1')); throw new Error('T1'); }, 1);
//      setImmediate(() => log('imm1')); setImmediate(() => log('imm2')); busy(10);
// node: T1 throws, UE(T1), tick from T1, micro from T1, imm1, imm2
#[test]
fn b6_the_only_timer_throws_the_drain_ends_the_timers_phase() {
    let got = node_order(|l| {
        let la = l.clone();
        set_timeout(ms(1), move || {
            la.push("T1 throws");
            next_tick(la.rec("tick from T1"));
            queue_microtask(la.rec("micro from T1"));
            panic!("T1")
        });
        set_immediate(l.rec("imm1"));
        set_immediate(l.rec("imm2"));
        spin(ms(10));
    });
    assert_eq!(
        got,
        [
            "T1 throws",
            "UE(T1)",
            "tick from T1",
            "micro from T1",
            "imm1",
            "imm2"
        ]
    );
}

// (b9) like a4, but the only other work is a timer far away: Node's
// uncaught path queues an empty immediate, so the rest drains in the next
// check phase, not once poll has waited for the far timer.
// const far = setTimeout(() => log('far'), 5000);
// process.nextTick(() => { log('t1 throws'); throw new Error('t1'); });
// process.nextTick(() => { log('t2'); clearTimeout(far); }); log('main end');
// node: main end, t1 throws, UE(t1), t2 (at once, not after 5 s)
#[test]
fn after_an_interrupted_drain_poll_does_not_block() {
    let start = std::time::Instant::now();
    let got = node_order(|l| {
        let far = set_timeout(std::time::Duration::from_secs(5), l.rec("far"));
        let la = l.clone();
        next_tick(move || {
            la.push("t1 throws");
            panic!("t1")
        });
        let la = l.clone();
        next_tick(move || {
            la.push("t2");
            far.clear();
        });
        l.push("main end");
    });
    assert_eq!(got, ["main end", "t1 throws", "UE(t1)", "t2"]);
    // Had poll blocked, the run would have lasted the far timer's 5 s.
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}
