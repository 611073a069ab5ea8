//! Promise ordering parity with Node 20. Each test carries the Node script
//! whose output it reproduces (the scripts' `counter(n)` is the `counter`
//! helper below); run the script with `node` to see the same lines.
//!
//! `clone!(a, b => move || ..)` hands the closure its own clones of `a` and
//! `b` (JS closures capture by reference; ours must own what they use).

mod support;

use std::cell::RefCell;
use std::fmt::Display;
use std::rc::Rc;

use evloop::promise::{Promise, Rejection, WithResolvers};
use evloop::{next_tick, queue_microtask, set_immediate, set_timeout, EventLoop};
use support::{ms, spin, Log};

macro_rules! clone {
    ($($name:ident),+ => $closure:expr) => {{
        $(let $name = $name.clone();)+
        $closure
    }};
}

/// `() => console.log(s)`: a handler that logs `s` and ignores its argument.
fn say<A>(l: &Log, s: &'static str) -> impl FnOnce(A) + 'static {
    let l = l.clone();
    move |_| l.push(s)
}

/// The scripts' `counter(n)`: a chain logging `c1` .. `cn`, one line per
/// microtask hop, to measure other chains against.
fn counter(l: &Log, n: u32) {
    let mut p = Promise::resolve(());
    for i in 1..=n {
        p = p.then(clone!(l => move |()| l.push(format!("c{i}"))));
    }
}

/// JavaScript's `array.join(',')`.
fn join<T: Display>(v: &[T]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A fresh loop whose unhandled-rejection reports go to the log as
/// `unhandled <message>` (what the Node twins print from their
/// `process.on('unhandledRejection')`).
fn loop_logging_unhandled() -> (Log, EventLoop) {
    let log = Log::new();
    let el = EventLoop::new().unwrap();
    let l = log.clone();
    el.on_unhandled_rejection(move |r: &Rejection| l.push(format!("unhandled {}", r.message())));
    (log, el)
}

// js/01_interleaved_chains.js:
// const a = Promise.resolve();
// const b = Promise.resolve();
// a.then(() => console.log('a1')).then(() => console.log('a2')).then(() => console.log('a3'));
// b.then(() => console.log('b1')).then(() => console.log('b2')).then(() => console.log('b3'));
// console.log('sync');
//
// node:
//   sync
//   a1
//   b1
//   a2
//   b2
//   a3
//   b3
#[test]
fn two_then_chains_interleave() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let a = Promise::resolve(());
        let b = Promise::resolve(());
        a.then(say(&l, "a1"))
            .then(say(&l, "a2"))
            .then(say(&l, "a3"));
        b.then(say(&l, "b1"))
            .then(say(&l, "b2"))
            .then(say(&l, "b3"));
        l.push("sync");
    })
    .unwrap();
    assert_eq!(log.take(), ["sync", "a1", "b1", "a2", "b2", "a3", "b3"]);
}

// js/02_then_returns_promise.js:
// Promise.resolve()
//   .then(() => { console.log('a1'); return Promise.resolve('x'); })
//   .then((v) => console.log('a2', v));
// Promise.resolve()
//   .then(() => { console.log('b1'); return 'y'; })
//   .then((v) => console.log('b2', v));
// Promise.resolve()
//   .then(() => console.log('c1'))
//   .then(() => console.log('c2'))
//   .then(() => console.log('c3'))
//   .then(() => console.log('c4'))
//   .then(() => console.log('c5'));
//
// node:
//   a1
//   b1
//   c1
//   b2 y
//   c2
//   c3
//   a2 x
//   c4
//   c5
#[test]
fn returning_a_promise_from_then_costs_two_extra_hops() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve(())
            .and_then(clone!(l => move |()| { l.push("a1"); Promise::resolve("x") }))
            .then(clone!(l => move |v| l.push(format!("a2 {v}"))));
        Promise::resolve(())
            .then(clone!(l => move |()| { l.push("b1"); "y" }))
            .then(clone!(l => move |v| l.push(format!("b2 {v}"))));
        Promise::resolve(())
            .then(say(&l, "c1"))
            .then(say(&l, "c2"))
            .then(say(&l, "c3"))
            .then(say(&l, "c4"))
            .then(say(&l, "c5"));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["a1", "b1", "c1", "b2 y", "c2", "c3", "a2 x", "c4", "c5"]
    );
}

// js/03_throw_skips_to_catch.js:
// Promise.resolve(1)
//   .then((v) => { console.log('then1', v); throw new Error('boom'); })
//   .then((v) => { console.log('skipped1'); return v; })
//   .then((v) => { console.log('skipped2'); return v; })
//   .catch((e) => { console.log('caught', e.message); return 'recovered'; })
//   .then((v) => console.log('after', v));
// Promise.resolve()
//   .then(() => console.log('c1'))
//   .then(() => console.log('c2'))
//   .then(() => console.log('c3'))
//   .then(() => console.log('c4'))
//   .then(() => console.log('c5'));
//
// node:
//   then1 1
//   c1
//   c2
//   c3
//   caught boom
//   c4
//   after recovered
//   c5
#[test]
fn an_error_skips_thens_one_hop_each_until_catch() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve(1)
            .and_then(clone!(l => move |v| -> Result<&'static str, Rejection> {
                l.push(format!("then1 {v}"));
                Err(Rejection::msg("boom"))
            }))
            .then(clone!(l => move |v| { l.push("skipped1"); v }))
            .then(clone!(l => move |v| { l.push("skipped2"); v }))
            .catch(clone!(l => move |e| { l.push(format!("caught {}", e.message())); "recovered" }))
            .then(clone!(l => move |v| l.push(format!("after {v}"))));
        Promise::resolve(())
            .then(say(&l, "c1"))
            .then(say(&l, "c2"))
            .then(say(&l, "c3"))
            .then(say(&l, "c4"))
            .then(say(&l, "c5"));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "then1 1",
            "c1",
            "c2",
            "c3",
            "caught boom",
            "c4",
            "after recovered",
            "c5"
        ]
    );
}

// js/04_finally_pass_through.js:
// function counter(n) {
//   let p = Promise.resolve();
//   for (let i = 1; i <= n; i++) p = p.then(() => console.log('c' + i));
// }
// Promise.resolve('v')
//   .finally(() => console.log('finally1'))
//   .then((v) => console.log('then', v));
// Promise.reject(new Error('r'))
//   .finally(() => console.log('finally2'))
//   .catch((e) => console.log('catch', e.message));
// Promise.resolve('w')
//   .then((v) => v)
//   .then((v) => console.log('plain then', v));
// counter(6);
//
// node:
//   finally1
//   finally2
//   c1
//   plain then w
//   c2
//   c3
//   then v
//   catch r
//   c4
//   c5
//   c6
#[test]
fn finally_passes_values_and_rejections_through_two_hops_late() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve("v")
            .finally(l.rec("finally1"))
            .then(clone!(l => move |v| l.push(format!("then {v}"))));
        Promise::<()>::reject(Rejection::msg("r"))
            .finally(l.rec("finally2"))
            .catch(clone!(l => move |e| l.push(format!("catch {}", e.message()))));
        Promise::resolve("w")
            .then(|v| v)
            .then(clone!(l => move |v| l.push(format!("plain then {v}"))));
        counter(&l, 6);
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "finally1",
            "finally2",
            "c1",
            "plain then w",
            "c2",
            "c3",
            "then v",
            "catch r",
            "c4",
            "c5",
            "c6"
        ]
    );
}

// js/05_finally_replaces.js:
// function counter(n) {
//   let p = Promise.resolve();
//   for (let i = 1; i <= n; i++) p = p.then(() => console.log('c' + i));
// }
// Promise.resolve('v')
//   .finally(() => { console.log('finally throws'); throw new Error('f'); })
//   .then((v) => console.log('not reached', v), (e) => console.log('replaced', e.message));
// Promise.reject(new Error('r'))
//   .finally(() => Promise.reject(new Error('f2')))
//   .catch((e) => console.log('replaced again', e.message));
// Promise.resolve('kept')
//   .finally(() => new Promise((r) => setTimeout(() => { console.log('finally waited'); r('ignored'); }, 5)))
//   .then((v) => console.log('then', v));
// counter(7);
//
// node:
//   finally throws
//   c1
//   replaced f
//   c2
//   c3
//   replaced again f2
//   c4
//   c5
//   c6
//   c7
//   finally waited
//   then kept
#[test]
fn finally_that_throws_replaces_the_outcome_and_a_returned_promise_is_awaited() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve("v")
            .finally_with(clone!(l => move || -> Result<(), Rejection> {
                l.push("finally throws");
                Err(Rejection::msg("f"))
            }))
            .then_or_else(
                clone!(l => move |v| -> Result<(), Rejection> {
                    l.push(format!("not reached {v}"));
                    Ok(())
                }),
                clone!(l => move |e| -> Result<(), Rejection> {
                    l.push(format!("replaced {}", e.message()));
                    Ok(())
                }),
            );
        Promise::<()>::reject(Rejection::msg("r"))
            .finally_with(|| Promise::<()>::reject(Rejection::msg("f2")))
            .catch(clone!(l => move |e| l.push(format!("replaced again {}", e.message()))));
        // JS resolves the finally's promise with 'ignored'; ours is a Promise<()>.
        Promise::resolve("kept")
            .finally_with(clone!(l => move || Promise::new(move |r, _| {
                let _ = set_timeout(ms(5), move || {
                    l.push("finally waited");
                    r(());
                });
            })))
            .then(clone!(l => move |v| l.push(format!("then {v}"))));
        counter(&l, 7);
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "finally throws",
            "c1",
            "replaced f",
            "c2",
            "c3",
            "replaced again f2",
            "c4",
            "c5",
            "c6",
            "c7",
            "finally waited",
            "then kept"
        ]
    );
}

// js/06_all_order.js:
// function counter(n) {
//   let p = Promise.resolve();
//   for (let i = 1; i <= n; i++) p = p.then(() => console.log('c' + i));
// }
// const a = Promise.resolve('a');
// const b = Promise.resolve().then(() => 'b');
// const c = Promise.resolve().then(() => 'c0').then(() => 'c');
// Promise.all([c, a, b]).then((v) => console.log('all', v.join(',')));
// counter(5);
//
// node:
//   c1
//   c2
//   c3
//   all c,a,b
//   c4
//   c5
#[test]
fn all_keeps_input_order_and_settles_after_the_last_input() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let a = Promise::resolve("a");
        let b = Promise::resolve(()).then(|()| "b");
        let c = Promise::resolve(()).then(|()| "c0").then(|_| "c");
        Promise::all([c, a, b]).then(clone!(l => move |v| l.push(format!("all {}", v.join(",")))));
        counter(&l, 5);
    })
    .unwrap();
    assert_eq!(log.take(), ["c1", "c2", "c3", "all c,a,b", "c4", "c5"]);
}

// js/07_all_short_circuit.js:
// function counter(n) {
//   let p = Promise.resolve();
//   for (let i = 1; i <= n; i++) p = p.then(() => console.log('c' + i));
// }
// const slow = new Promise((r) => setTimeout(() => { console.log('slow resolves'); r('slow'); }, 5));
// const bad = Promise.resolve().then(() => { throw new Error('bad'); });
// const worse = Promise.resolve().then(() => 0).then(() => { throw new Error('worse'); });
// Promise.all([slow, bad, worse, Promise.resolve('ok')])
//   .then((v) => console.log('never', v), (e) => console.log('all rejected', e.message));
// counter(4);
//
// node:
//   c1
//   c2
//   all rejected bad
//   c3
//   c4
//   slow resolves
#[test]
fn all_rejects_on_the_first_rejection() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let slow = Promise::new(clone!(l => move |r, _| {
            let _ = set_timeout(ms(5), move || {
                l.push("slow resolves");
                r("slow");
            });
        }));
        let bad = Promise::resolve(())
            .and_then(|()| -> Result<&'static str, Rejection> { Err(Rejection::msg("bad")) });
        let worse = Promise::resolve(())
            .then(|()| 0)
            .and_then(|_| -> Result<&'static str, Rejection> { Err(Rejection::msg("worse")) });
        Promise::all([slow, bad, worse, Promise::resolve("ok")]).then_or_else(
            clone!(l => move |v| -> Result<(), Rejection> {
                l.push(format!("never {v:?}"));
                Ok(())
            }),
            clone!(l => move |e| -> Result<(), Rejection> {
                l.push(format!("all rejected {}", e.message()));
                Ok(())
            }),
        );
        counter(&l, 4);
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["c1", "c2", "all rejected bad", "c3", "c4", "slow resolves"]
    );
}

// js/08_all_settled.js:
// const late = new Promise((r) => setTimeout(() => { console.log('late resolves'); r(3); }, 5));
// Promise.allSettled([late, Promise.reject(new Error('no')), Promise.resolve(1)])
//   .then((rs) => rs.forEach((r) => {
//     if (r.status === 'fulfilled') console.log('fulfilled', r.value);
//     else console.log('rejected', r.reason.message);
//   }));
// console.log('sync');
//
// node:
//   sync
//   late resolves
//   fulfilled 3
//   rejected no
//   fulfilled 1
#[test]
fn all_settled_reports_every_outcome_in_input_order() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let late = Promise::new(clone!(l => move |r, _| {
            let _ = set_timeout(ms(5), move || {
                l.push("late resolves");
                r(3);
            });
        }));
        Promise::all_settled([
            late,
            Promise::reject(Rejection::msg("no")),
            Promise::resolve(1),
        ])
        .then(clone!(l => move |rs| {
            for r in rs {
                match r {
                    Ok(v) => l.push(format!("fulfilled {v}")),
                    Err(e) => l.push(format!("rejected {}", e.message())),
                }
            }
        }));
        l.push("sync");
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "sync",
            "late resolves",
            "fulfilled 3",
            "rejected no",
            "fulfilled 1"
        ]
    );
}

// js/09_race.js:
// const slow = new Promise((r) => setTimeout(() => r('slow'), 30));
// const fast = new Promise((r) => setTimeout(() => r('fast'), 5));
// Promise.race([slow, fast]).then((v) => console.log('race1', v));
// Promise.race([Promise.resolve().then(() => 'later'), Promise.resolve('settled')])
//   .then((v) => console.log('race2', v));
// Promise.race([new Promise((r) => setTimeout(() => r('ok'), 5)), Promise.reject(new Error('first'))])
//   .then((v) => console.log('race3', v), (e) => console.log('race3 rejected', e.message));
// Promise.race([Promise.resolve().then(() => { throw new Error('slower rejection'); }), Promise.resolve('value')])
//   .then((v) => console.log('race4', v), (e) => console.log('race4 rejected', e.message));
//
// node:
//   race2 settled
//   race3 rejected first
//   race4 value
//   race1 fast
#[test]
fn race_takes_the_first_settled_input() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let slow = Promise::new(|r, _| {
            let _ = set_timeout(ms(30), move || r("slow"));
        });
        let fast = Promise::new(|r, _| {
            let _ = set_timeout(ms(5), move || r("fast"));
        });
        Promise::race([slow, fast]).then(clone!(l => move |v| l.push(format!("race1 {v}"))));
        Promise::race([
            Promise::resolve(()).then(|()| "later"),
            Promise::resolve("settled"),
        ])
        .then(clone!(l => move |v| l.push(format!("race2 {v}"))));
        let ok = Promise::new(|r, _| {
            let _ = set_timeout(ms(5), move || r("ok"));
        });
        Promise::race([ok, Promise::reject(Rejection::msg("first"))]).then_or_else(
            clone!(l => move |v| -> Result<(), Rejection> {
                l.push(format!("race3 {v}"));
                Ok(())
            }),
            clone!(l => move |e| -> Result<(), Rejection> {
                l.push(format!("race3 rejected {}", e.message()));
                Ok(())
            }),
        );
        let slower = Promise::resolve(()).and_then(|()| -> Result<&'static str, Rejection> {
            Err(Rejection::msg("slower rejection"))
        });
        Promise::race([slower, Promise::resolve("value")]).then_or_else(
            clone!(l => move |v| -> Result<(), Rejection> {
                l.push(format!("race4 {v}"));
                Ok(())
            }),
            clone!(l => move |e| -> Result<(), Rejection> {
                l.push(format!("race4 rejected {}", e.message()));
                Ok(())
            }),
        );
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "race2 settled",
            "race3 rejected first",
            "race4 value",
            "race1 fast"
        ]
    );
}

// js/10_any.js:
// Promise.any([Promise.reject(new Error('e1')), Promise.resolve().then(() => 'second'), Promise.resolve('third')])
//   .then((v) => console.log('any1', v));
// Promise.any([Promise.resolve().then(() => { throw new Error('x'); }), Promise.reject(new Error('y'))])
//   .catch((e) => console.log('any2', e.message, e.errors.map((x) => x.message).join(',')));
// Promise.any([])
//   .catch((e) => console.log('any3', e.message, e.errors.length));
// console.log('sync');
//
// node:
//   sync
//   any3 All promises were rejected 0
//   any1 third
//   any2 All promises were rejected x,y
#[test]
fn any_takes_the_first_fulfilment_or_rejects_with_all_reasons() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::any([
            Promise::reject(Rejection::msg("e1")),
            Promise::resolve(()).then(|()| "second"),
            Promise::resolve("third"),
        ])
        .then(clone!(l => move |v| l.push(format!("any1 {v}"))));
        Promise::any([
            Promise::resolve(()).and_then(|()| -> Result<(), Rejection> { Err(Rejection::msg("x")) }),
            Promise::reject(Rejection::msg("y")),
        ])
        .catch(clone!(l => move |e| {
            let errors: Vec<String> = e.errors().unwrap_or_default().iter().map(Rejection::message).collect();
            l.push(format!("any2 {} {}", e.message(), errors.join(",")));
        }));
        Promise::<()>::any([])
            .catch(clone!(l => move |e| {
                l.push(format!("any3 {} {}", e.message(), e.errors().unwrap_or_default().len()));
            }));
        l.push("sync");
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "sync",
            "any3 All promises were rejected 0",
            "any1 third",
            "any2 All promises were rejected x,y"
        ]
    );
}

// js/11_settle_once.js:
// const p = new Promise((resolve, reject) => {
//   resolve('first');
//   resolve('second');
//   reject(new Error('late'));
// });
// p.then((v) => console.log('p', v), (e) => console.log('p rejected', e.message));
// const r = new Promise((resolve, reject) => {
//   reject(new Error('r1'));
//   resolve('no');
//   reject(new Error('r2'));
// });
// r.then((v) => console.log('r', v), (e) => console.log('r rejected', e.message));
// const q = new Promise((resolve) => {
//   resolve(new Promise((r2) => setTimeout(() => r2('adopted'), 5)));
//   resolve('too late, already locked in');
// });
// q.then((v) => console.log('q', v));
//
// node:
//   p first
//   r rejected r1
//   q adopted
#[test]
fn a_promise_settles_once() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let p = Promise::new(|resolve, reject| {
            resolve("first");
            resolve("second");
            reject(Rejection::msg("late"));
        });
        p.then_or_else(
            clone!(l => move |v| -> Result<(), Rejection> {
                l.push(format!("p {v}"));
                Ok(())
            }),
            clone!(l => move |e| -> Result<(), Rejection> {
                l.push(format!("p rejected {}", e.message()));
                Ok(())
            }),
        );
        let r = Promise::new(|resolve, reject| {
            reject(Rejection::msg("r1"));
            resolve("no");
            reject(Rejection::msg("r2"));
        });
        r.then_or_else(
            clone!(l => move |v| -> Result<(), Rejection> {
                l.push(format!("r {v}"));
                Ok(())
            }),
            clone!(l => move |e| -> Result<(), Rejection> {
                l.push(format!("r rejected {}", e.message()));
                Ok(())
            }),
        );
        let q = Promise::new(|resolve, _| {
            resolve.adopt(Promise::new(|r2, _| {
                let _ = set_timeout(ms(5), move || r2("adopted"));
            }));
            resolve("too late, already locked in");
        });
        q.then(clone!(l => move |v| l.push(format!("q {v}"))));
    })
    .unwrap();
    assert_eq!(log.take(), ["p first", "r rejected r1", "q adopted"]);
}

// js/12_executor_throws.js:
// const p = new Promise((resolve) => {
//   resolve('kept');
//   throw new Error('ignored');
// });
// p.then((v) => console.log('p', v), (e) => console.log('p rejected', e.message));
// const q = new Promise(() => {
//   throw new Error('executor threw');
// });
// q.catch(() => console.log('q rejected'));
//
// node:
//   p kept
//   q rejected
//
// A JS throw in the executor is a panic here (the executor returns nothing).
#[test]
fn a_throw_in_the_executor_rejects_unless_already_resolved() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let p = Promise::new(|resolve, _| {
            resolve("kept");
            panic!("ignored");
        });
        p.then_or_else(
            clone!(l => move |v| -> Result<(), Rejection> {
                l.push(format!("p {v}"));
                Ok(())
            }),
            clone!(l => move |e| -> Result<(), Rejection> {
                l.push(format!("p rejected {}", e.message()));
                Ok(())
            }),
        );
        let q = Promise::<()>::new(|_, _| panic!("executor threw"));
        q.catch(clone!(l => move |_| l.push("q rejected")));
    })
    .unwrap();
    assert_eq!(log.take(), ["p kept", "q rejected"]);
}

// js/13_settled_then_is_async.js:
// const p = Promise.resolve('v');
// p.then((v) => console.log('sub1', v));
// p.then((v) => console.log('sub2', v));
// console.log('sync after two thens');
// p.then((v) => console.log('sub3', v));
// const r = Promise.reject(new Error('r'));
// r.catch((e) => console.log('catch1', e.message));
// r.then((v) => console.log('never', v), (e) => console.log('catch2', e.message));
// r.catch((e) => console.log('catch3', e.message));
// console.log('sync end');
//
// node:
//   sync after two thens
//   sync end
//   sub1 v
//   sub2 v
//   sub3 v
//   catch1 r
//   catch2 r
//   catch3 r
#[test]
fn then_on_a_settled_promise_runs_later_in_registration_order() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let p = Promise::resolve("v");
        p.clone()
            .then(clone!(l => move |v| l.push(format!("sub1 {v}"))));
        p.clone()
            .then(clone!(l => move |v| l.push(format!("sub2 {v}"))));
        l.push("sync after two thens");
        p.then(clone!(l => move |v| l.push(format!("sub3 {v}"))));
        let r = Promise::<()>::reject(Rejection::msg("r"));
        r.clone()
            .catch(clone!(l => move |e| l.push(format!("catch1 {}", e.message()))));
        r.clone().then_or_else(
            clone!(l => move |v| -> Result<(), Rejection> {
                l.push(format!("never {v:?}"));
                Ok(())
            }),
            clone!(l => move |e| -> Result<(), Rejection> {
                l.push(format!("catch2 {}", e.message()));
                Ok(())
            }),
        );
        r.catch(clone!(l => move |e| l.push(format!("catch3 {}", e.message()))));
        l.push("sync end");
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "sync after two thens",
            "sync end",
            "sub1 v",
            "sub2 v",
            "sub3 v",
            "catch1 r",
            "catch2 r",
            "catch3 r"
        ]
    );
}

// js/14_executor_is_sync.js:
// console.log('before');
// const p = new Promise((resolve) => {
//   console.log('executor');
//   resolve('x');
//   console.log('executor after resolve');
// });
// console.log('after');
// p.then((v) => console.log('then', v));
// console.log('end');
//
// node:
//   before
//   executor
//   executor after resolve
//   after
//   end
//   then x
#[test]
fn the_executor_runs_at_once() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        l.push("before");
        let p = Promise::new(clone!(l => move |resolve, _| {
            l.push("executor");
            resolve("x");
            l.push("executor after resolve");
        }));
        l.push("after");
        p.then(clone!(l => move |v| l.push(format!("then {v}"))));
        l.push("end");
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "before",
            "executor",
            "executor after resolve",
            "after",
            "end",
            "then x"
        ]
    );
}

// js/15_ticks_microtasks_promises.js:
// process.nextTick(() => console.log('tick1'));
// Promise.resolve()
//   .then(() => {
//     console.log('then1');
//     process.nextTick(() => console.log('tick from then1'));
//     queueMicrotask(() => console.log('micro from then1'));
//   })
//   .then(() => console.log('then2'));
// queueMicrotask(() => console.log('micro1'));
// Promise.resolve().then(() => console.log('then-b'));
// process.nextTick(() => {
//   console.log('tick2');
//   Promise.resolve().then(() => console.log('then from tick2'));
// });
// console.log('sync');
//
// node:
//   sync
//   tick1
//   tick2
//   then1
//   micro1
//   then-b
//   then from tick2
//   micro from then1
//   then2
//   tick from then1
#[test]
fn next_ticks_queued_by_a_reaction_wait_for_the_microtask_queue_to_drain() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        next_tick(l.rec("tick1"));
        Promise::resolve(())
            .then(clone!(l => move |()| {
                l.push("then1");
                next_tick(l.rec("tick from then1"));
                queue_microtask(l.rec("micro from then1"));
            }))
            .then(say(&l, "then2"));
        queue_microtask(l.rec("micro1"));
        Promise::resolve(()).then(say(&l, "then-b"));
        next_tick(clone!(l => move || {
            l.push("tick2");
            Promise::resolve(()).then(say(&l, "then from tick2"));
        }));
        l.push("sync");
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "sync",
            "tick1",
            "tick2",
            "then1",
            "micro1",
            "then-b",
            "then from tick2",
            "micro from then1",
            "then2",
            "tick from then1"
        ]
    );
}

// js/16_two_handler_then.js:
// Promise.resolve(1)
//   .then(
//     (v) => { console.log('onF', v); throw new Error('from onF'); },
//     (e) => console.log('onR not called', e.message),
//   )
//   .catch((e) => console.log('next catch', e.message));
// Promise.reject(new Error('r'))
//   .then(
//     (v) => { console.log('onF not called', v); return 'f'; },
//     (e) => { console.log('onR', e.message); return 'handled'; },
//   )
//   .then((v) => console.log('then', v));
//
// node:
//   onF 1
//   onR r
//   next catch from onF
//   then handled
#[test]
fn the_rejection_handler_of_a_then_does_not_see_its_own_fulfil_handler_throw() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve(1)
            .then_or_else(
                clone!(l => move |v| -> Result<(), Rejection> {
                    l.push(format!("onF {v}"));
                    Err(Rejection::msg("from onF"))
                }),
                clone!(l => move |e| -> Result<(), Rejection> {
                    l.push(format!("onR not called {}", e.message()));
                    Ok(())
                }),
            )
            .catch(clone!(l => move |e| l.push(format!("next catch {}", e.message()))));
        Promise::<i32>::reject(Rejection::msg("r"))
            .then_or_else(
                clone!(l => move |v| -> Result<&'static str, Rejection> {
                    l.push(format!("onF not called {v}"));
                    Ok("f")
                }),
                clone!(l => move |e| -> Result<&'static str, Rejection> {
                    l.push(format!("onR {}", e.message()));
                    Ok("handled")
                }),
            )
            .then(clone!(l => move |v| l.push(format!("then {v}"))));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["onF 1", "onR r", "next catch from onF", "then handled"]
    );
}

// js/17_unhandled_after_checkpoint.js:
// process.on('unhandledRejection', (r) => console.log('unhandled', r.message));
// Promise.reject(new Error('lost'));
// Promise.resolve().then(() => { throw new Error('thrown in then'); });
// Promise.resolve().then(() => console.log('m1')).then(() => console.log('m2'));
// process.nextTick(() => console.log('tick'));
// setTimeout(() => console.log('timeout'), 0);
// console.log('sync');
//
// node:
//   sync
//   tick
//   m1
//   m2
//   unhandled lost
//   unhandled thrown in then
//   timeout
#[test]
fn unhandled_rejections_are_reported_after_the_microtask_checkpoint() {
    let (log, el) = loop_logging_unhandled();
    let l = log.clone();
    el.run_main(move || {
        Promise::<()>::reject(Rejection::msg("lost"));
        Promise::resolve(())
            .and_then(|()| -> Result<(), Rejection> { Err(Rejection::msg("thrown in then")) });
        Promise::resolve(()).then(say(&l, "m1")).then(say(&l, "m2"));
        next_tick(l.rec("tick"));
        let _ = set_timeout(ms(0), l.rec("timeout"));
        l.push("sync");
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(
        log.take(),
        [
            "sync",
            "tick",
            "m1",
            "m2",
            "unhandled lost",
            "unhandled thrown in then",
            "timeout"
        ]
    );
}

// js/18_unhandled_per_callback.js:
// process.on('unhandledRejection', (r) => console.log('unhandled', r.message));
// setTimeout(() => {
//   console.log('t1');
//   Promise.reject(new Error('from t1'));
//   Promise.resolve().then(() => console.log('t1 then'));
// }, 1);
// setTimeout(() => console.log('t2'), 1);
// const s = Date.now(); while (Date.now() - s < 5);
//
// node:
//   t1
//   t1 then
//   unhandled from t1
//   t2
#[test]
fn an_unhandled_rejection_in_a_timer_is_reported_before_the_next_timer() {
    let (log, el) = loop_logging_unhandled();
    let l = log.clone();
    el.run_main(move || {
        let _ = set_timeout(
            ms(1),
            clone!(l => move || {
                l.push("t1");
                Promise::<()>::reject(Rejection::msg("from t1"));
                Promise::resolve(()).then(say(&l, "t1 then"));
            }),
        );
        let _ = set_timeout(ms(1), l.rec("t2"));
        spin(ms(5));
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(log.take(), ["t1", "t1 then", "unhandled from t1", "t2"]);
}

// js/19_handled_in_time.js:
// process.on('unhandledRejection', (r) => console.log('unhandled', r.message));
// const p = Promise.reject(new Error('p'));
// Promise.resolve()
//   .then(() => {})
//   .then(() => { console.log('attach p'); p.catch((e) => console.log('caught', e.message)); });
// const q = Promise.reject(new Error('q'));
// Promise.resolve().then(() => process.nextTick(() => {
//   console.log('attach q');
//   q.catch((e) => console.log('caught', e.message));
// }));
// const derived = Promise.reject(new Error('d')).then(() => console.log('never'));
// setTimeout(() => console.log('timeout'), 0);
//
// node:
//   attach p
//   caught p
//   attach q
//   caught q
//   unhandled d
//   timeout
#[test]
fn a_handler_attached_before_the_checkpoint_ends_prevents_the_report() {
    let (log, el) = loop_logging_unhandled();
    let l = log.clone();
    el.run_main(move || {
        let p = Promise::<()>::reject(Rejection::msg("p"));
        Promise::resolve(())
            .then(|()| {})
            .then(clone!(l => move |()| {
                l.push("attach p");
                p.catch(clone!(l => move |e| l.push(format!("caught {}", e.message()))));
            }));
        let q = Promise::<()>::reject(Rejection::msg("q"));
        Promise::resolve(()).then(clone!(l => move |()| next_tick(move || {
            l.push("attach q");
            q.catch(clone!(l => move |e| l.push(format!("caught {}", e.message()))));
        })));
        let _derived = Promise::<()>::reject(Rejection::msg("d")).then(say(&l, "never"));
        let _ = set_timeout(ms(0), l.rec("timeout"));
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(
        log.take(),
        [
            "attach p",
            "caught p",
            "attach q",
            "caught q",
            "unhandled d",
            "timeout"
        ]
    );
}

// js/20_handled_later.js:
// const reasons = new Map();
// process.on('unhandledRejection', (r, p) => { reasons.set(p, r); console.log('unhandled', r.message); });
// process.on('rejectionHandled', (p) => console.log('rejectionHandled', reasons.get(p).message));
// const p = Promise.reject(new Error('late'));
// setTimeout(() => {
//   console.log('timeout attaches');
//   p.catch((e) => console.log('caught', e.message));
//   Promise.resolve().then(() => console.log('timeout then'));
// }, 1);
// const q = Promise.reject(new Error('later'));
// setImmediate(() => {
//   console.log('immediate attaches');
//   q.then(null, (e) => console.log('caught', e.message));
// });
// const s = Date.now(); while (Date.now() - s < 5);
//
// node:
//   unhandled late
//   unhandled later
//   timeout attaches
//   caught late
//   timeout then
//   rejectionHandled late
//   immediate attaches
//   caught later
//   rejectionHandled later
//
// Node hands 'rejectionHandled' the promise, which the script maps back to
// its reason; `on_rejection_handled` is handed the reason itself.
#[test]
fn a_handler_attached_in_a_later_callback_reports_rejection_handled() {
    let (log, el) = loop_logging_unhandled();
    let l = log.clone();
    el.on_rejection_handled(move |r: &Rejection| {
        l.push(format!("rejectionHandled {}", r.message()))
    });
    let l = log.clone();
    el.run_main(move || {
        let p = Promise::<()>::reject(Rejection::msg("late"));
        let _ = set_timeout(
            ms(1),
            clone!(l => move || {
                l.push("timeout attaches");
                p.catch(clone!(l => move |e| l.push(format!("caught {}", e.message()))));
                Promise::resolve(()).then(say(&l, "timeout then"));
            }),
        );
        let q = Promise::<()>::reject(Rejection::msg("later"));
        let _ = set_immediate(clone!(l => move || {
            l.push("immediate attaches");
            q.catch(clone!(l => move |e| l.push(format!("caught {}", e.message()))));
        }));
        spin(ms(5));
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(
        log.take(),
        [
            "unhandled late",
            "unhandled later",
            "timeout attaches",
            "caught late",
            "timeout then",
            "rejectionHandled late",
            "immediate attaches",
            "caught later",
            "rejectionHandled later"
        ]
    );
}

// js/21_timers_and_chains.js:
// setTimeout(() => {
//   console.log('t1');
//   Promise.resolve().then(() => console.log('t1 then1')).then(() => console.log('t1 then2'));
//   setImmediate(() => {
//     console.log('immediate');
//     Promise.resolve().then(() => console.log('immediate then'));
//   });
//   process.nextTick(() => console.log('t1 tick'));
// }, 1);
// setTimeout(() => {
//   console.log('t2');
//   Promise.resolve().then(() => console.log('t2 then'));
// }, 1);
// const p = new Promise((resolve) => setTimeout(() => {
//   console.log('t3 resolves');
//   resolve('v');
//   console.log('t3 end');
// }, 1));
// p.then((v) => console.log('p then', v));
// const s = Date.now(); while (Date.now() - s < 5);
//
// node:
//   t1
//   t1 tick
//   t1 then1
//   t1 then2
//   t2
//   t2 then
//   t3 resolves
//   t3 end
//   p then v
//   immediate
//   immediate then
#[test]
fn microtasks_drain_after_each_timer_and_immediate() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let _ = set_timeout(
            ms(1),
            clone!(l => move || {
                l.push("t1");
                Promise::resolve(()).then(say(&l, "t1 then1")).then(say(&l, "t1 then2"));
                let _ = set_immediate(clone!(l => move || {
                    l.push("immediate");
                    Promise::resolve(()).then(say(&l, "immediate then"));
                }));
                next_tick(l.rec("t1 tick"));
            }),
        );
        let _ = set_timeout(
            ms(1),
            clone!(l => move || {
                l.push("t2");
                Promise::resolve(()).then(say(&l, "t2 then"));
            }),
        );
        let p = Promise::new(clone!(l => move |resolve, _| {
            let _ = set_timeout(ms(1), move || {
                l.push("t3 resolves");
                resolve("v");
                l.push("t3 end");
            });
        }));
        p.then(clone!(l => move |v| l.push(format!("p then {v}"))));
        spin(ms(5));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "t1",
            "t1 tick",
            "t1 then1",
            "t1 then2",
            "t2",
            "t2 then",
            "t3 resolves",
            "t3 end",
            "p then v",
            "immediate",
            "immediate then"
        ]
    );
}

// js/22_resolve_identity_vs_adoption.js:
// function counter(n) {
//   let p = Promise.resolve();
//   for (let i = 1; i <= n; i++) p = p.then(() => console.log('c' + i));
// }
// const p = Promise.resolve('v');
// new Promise((resolve) => resolve(p)).then((v) => console.log('new Promise(r => r(p))', v));
// Promise.resolve(p).then((v) => console.log('Promise.resolve(p)', v));
// p.then((v) => console.log('p', v));
// counter(4);
//
// node:
//   Promise.resolve(p) v
//   p v
//   c1
//   c2
//   new Promise(r => r(p)) v
//   c3
//   c4
//
// `Promise.resolve(p)` returns `p` itself: here, a clone of the handle.
#[test]
fn resolving_with_a_promise_adopts_it_two_hops_late() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let p = Promise::resolve("v");
        Promise::new(clone!(p => move |resolve, _| resolve.adopt(p)))
            .then(clone!(l => move |v| l.push(format!("new Promise(r => r(p)) {v}"))));
        p.clone()
            .then(clone!(l => move |v| l.push(format!("Promise.resolve(p) {v}"))));
        p.then(clone!(l => move |v| l.push(format!("p {v}"))));
        counter(&l, 4);
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "Promise.resolve(p) v",
            "p v",
            "c1",
            "c2",
            "new Promise(r => r(p)) v",
            "c3",
            "c4"
        ]
    );
}

// js/23_self_resolution_cycle.js:
// let resolveSelf;
// const p = new Promise((resolve) => { resolveSelf = resolve; });
// resolveSelf(p);
// p.catch((e) => console.log('p cycle', e instanceof TypeError && e.message.startsWith('Chaining cycle')));
// const q = Promise.resolve().then(() => q);
// q.catch((e) => console.log('q cycle', e instanceof TypeError && e.message.startsWith('Chaining cycle')));
//
// node:
//   p cycle true
//   q cycle true
//
// `let resolveSelf; new Promise((resolve) => { resolveSelf = resolve; })`
// is `with_resolvers`.
#[test]
fn a_promise_resolved_with_itself_rejects_with_a_cycle_error() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let WithResolvers {
            promise: p,
            resolve: resolve_self,
            ..
        } = Promise::<()>::with_resolvers();
        resolve_self.adopt(p.clone());
        p.catch(clone!(l => move |e| l.push(format!("p cycle {}", e.is_cycle()))));
        let slot: Rc<RefCell<Option<Promise<()>>>> = Rc::default();
        let q = Promise::resolve(())
            .and_then(clone!(slot => move |()| slot.borrow_mut().take().expect("q is set")));
        *slot.borrow_mut() = Some(q.clone());
        q.catch(clone!(l => move |e| l.push(format!("q cycle {}", e.is_cycle()))));
    })
    .unwrap();
    assert_eq!(log.take(), ["p cycle true", "q cycle true"]);
}

// js/24_combinators_settled_inputs_async.js:
// function counter(n) {
//   let p = Promise.resolve();
//   for (let i = 1; i <= n; i++) p = p.then(() => console.log('c' + i));
// }
// Promise.all([Promise.resolve(1), Promise.resolve(2)]).then((v) => console.log('all', v.join(',')));
// Promise.all([]).then((v) => console.log('all empty', v.length));
// Promise.allSettled([Promise.resolve(1)]).then((v) => console.log('allSettled', v.length));
// Promise.race([Promise.resolve('r')]).then((v) => console.log('race', v));
// Promise.any([Promise.resolve('a')]).then((v) => console.log('any', v));
// Promise.all([Promise.reject(new Error('x'))]).catch((e) => console.log('all rejected', e.message));
// console.log('sync');
// counter(3);
//
// node:
//   sync
//   all empty 0
//   c1
//   all 1,2
//   allSettled 1
//   race r
//   any a
//   all rejected x
//   c2
//   c3
#[test]
fn combinators_over_settled_inputs_still_settle_asynchronously() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::all([Promise::resolve(1), Promise::resolve(2)])
            .then(clone!(l => move |v| l.push(format!("all {}", join(&v)))));
        Promise::<i32>::all([])
            .then(clone!(l => move |v| l.push(format!("all empty {}", v.len()))));
        Promise::all_settled([Promise::resolve(1)])
            .then(clone!(l => move |v| l.push(format!("allSettled {}", v.len()))));
        Promise::race([Promise::resolve("r")])
            .then(clone!(l => move |v| l.push(format!("race {v}"))));
        Promise::any([Promise::resolve("a")])
            .then(clone!(l => move |v| l.push(format!("any {v}"))));
        // `catch` recovers with a T: an empty Vec where JS returns undefined.
        Promise::all([Promise::<()>::reject(Rejection::msg("x"))]).catch(clone!(l => move |e| {
            l.push(format!("all rejected {}", e.message()));
            Vec::new()
        }));
        l.push("sync");
        counter(&l, 3);
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "sync",
            "all empty 0",
            "c1",
            "all 1,2",
            "allSettled 1",
            "race r",
            "any a",
            "all rejected x",
            "c2",
            "c3"
        ]
    );
}

// js/25_then_returns_rejected_promise.js:
// function counter(n) {
//   let p = Promise.resolve();
//   for (let i = 1; i <= n; i++) p = p.then(() => console.log('c' + i));
// }
// Promise.resolve()
//   .then(() => Promise.reject(new Error('inner')))
//   .catch((e) => console.log('caught', e.message));
// Promise.reject(new Error('outer'))
//   .catch((e) => Promise.resolve('recovered from ' + e.message))
//   .then((v) => console.log(v));
// Promise.resolve()
//   .then(() => { throw new Error('thrown'); })
//   .catch((e) => console.log('caught', e.message));
// counter(5);
//
// node:
//   c1
//   caught thrown
//   c2
//   c3
//   caught inner
//   recovered from outer
//   c4
//   c5
#[test]
fn a_returned_rejected_promise_is_adopted_two_hops_later_than_a_throw() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve(())
            .and_then(|()| Promise::<()>::reject(Rejection::msg("inner")))
            .catch(clone!(l => move |e| l.push(format!("caught {}", e.message()))));
        Promise::<String>::reject(Rejection::msg("outer"))
            .or_else(|e| Promise::resolve(format!("recovered from {}", e.message())))
            .then(clone!(l => move |v| l.push(v)));
        Promise::resolve(())
            .and_then(|()| -> Result<(), Rejection> { Err(Rejection::msg("thrown")) })
            .catch(clone!(l => move |e| l.push(format!("caught {}", e.message()))));
        counter(&l, 5);
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "c1",
            "caught thrown",
            "c2",
            "c3",
            "caught inner",
            "recovered from outer",
            "c4",
            "c5"
        ]
    );
}

// js/26_pending_promise_does_not_keep_loop.js:
// Promise.race([]).then(() => console.log('never'));
// new Promise(() => {}).then(() => console.log('never either'));
// setTimeout(() => console.log('timeout'), 1);
// console.log('sync');
//
// node:
//   sync
//   timeout
#[test]
fn a_pending_promise_does_not_keep_the_loop_alive() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::<()>::race([]).then(say(&l, "never"));
        Promise::<()>::new(|_, _| {}).then(say(&l, "never either"));
        let _ = set_timeout(ms(1), l.rec("timeout"));
        l.push("sync");
    })
    .unwrap();
    assert_eq!(log.take(), ["sync", "timeout"]);
}

// js/27_unhandled_handler_reentry.js:
// process.on('unhandledRejection', (r) => {
//   console.log('unhandled', r.message);
//   if (r.message === 'first') {
//     process.nextTick(() => console.log('tick from handler'));
//     Promise.resolve().then(() => console.log('then from handler'));
//     Promise.reject(new Error('second'));
//   }
// });
// setTimeout(() => {
//   console.log('t1');
//   Promise.reject(new Error('first'));
//   Promise.reject(new Error('also first round'));
// }, 1);
// setTimeout(() => console.log('t2'), 1);
// const s = Date.now(); while (Date.now() - s < 5);
//
// node:
//   t1
//   unhandled first
//   unhandled also first round
//   tick from handler
//   then from handler
//   unhandled second
//   t2
#[test]
fn work_queued_by_the_unhandled_handler_runs_before_the_next_round_of_reports() {
    let log = Log::new();
    let el = EventLoop::new().unwrap();
    let l = log.clone();
    el.on_unhandled_rejection(move |r: &Rejection| {
        l.push(format!("unhandled {}", r.message()));
        if r.message() == "first" {
            next_tick(l.rec("tick from handler"));
            Promise::resolve(()).then(say(&l, "then from handler"));
            Promise::<()>::reject(Rejection::msg("second"));
        }
    });
    let l = log.clone();
    el.run_main(move || {
        let _ = set_timeout(
            ms(1),
            clone!(l => move || {
                l.push("t1");
                Promise::<()>::reject(Rejection::msg("first"));
                Promise::<()>::reject(Rejection::msg("also first round"));
            }),
        );
        let _ = set_timeout(ms(1), l.rec("t2"));
        spin(ms(5));
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(
        log.take(),
        [
            "t1",
            "unhandled first",
            "unhandled also first round",
            "tick from handler",
            "then from handler",
            "unhandled second",
            "t2"
        ]
    );
}

// js/28_catch_that_throws.js:
// process.on('unhandledRejection', (r) => console.log('unhandled', r.message));
// const p = Promise.reject(new Error('original'));
// p.catch((e) => { console.log('catch', e.message); throw new Error('rethrown'); });
// p.then((v) => console.log('never', v)).catch((e) => console.log('second chain', e.message));
//
// node:
//   catch original
//   second chain original
//   unhandled rethrown
#[test]
fn a_catch_that_throws_makes_a_new_unhandled_rejection() {
    let (log, el) = loop_logging_unhandled();
    let l = log.clone();
    el.run_main(move || {
        let p = Promise::<()>::reject(Rejection::msg("original"));
        p.clone()
            .or_else(clone!(l => move |e| -> Result<(), Rejection> {
                l.push(format!("catch {}", e.message()));
                Err(Rejection::msg("rethrown"))
            }));
        p.then(clone!(l => move |v| l.push(format!("never {v:?}"))))
            .catch(clone!(l => move |e| l.push(format!("second chain {}", e.message()))));
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(
        log.take(),
        [
            "catch original",
            "second chain original",
            "unhandled rethrown"
        ]
    );
}
