//! The Promises/A+ specification (https://promisesaplus.com), rule by rule.
//!
//! Each test names the clause it checks and quotes it briefly. Rust's types
//! make some clauses moot (arguments are always functions, a `FnOnce` can
//! only be called once, there are no foreign thenables); those say so and
//! check what is left of the rule.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use evloop::promise::{Promise, PromiseState, Rejection};
use evloop::{set_timeout, EventLoop};
use support::{ms, Log};

macro_rules! clone {
    ($($name:ident),+ => $closure:expr) => {{
        $(let $name = $name.clone();)+
        $closure
    }};
}

/// A user error type, to check that a reason passes through unchanged.
#[derive(Debug, PartialEq, Eq)]
struct Oops(u32);

impl std::fmt::Display for Oops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "oops {}", self.0)
    }
}

impl std::error::Error for Oops {}

/// The message of a settled promise's rejection.
fn reason<T: Clone + 'static>(p: &Promise<T>) -> String {
    match p.peek() {
        Some(Err(e)) => e.message(),
        Some(Ok(_)) => panic!("fulfilled, expected rejected"),
        None => panic!("pending, expected rejected"),
    }
}

// ---------------------------------------------------------------- 2.1 states

/// 2.1.1: "When pending, a promise may transition to either the fulfilled
/// or rejected state."
#[test]
fn a2_1_1_pending_may_transition_to_fulfilled_or_rejected() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    evloop::run(move || {
        let a = Promise::<u32>::with_resolvers();
        let b = Promise::<u32>::with_resolvers();
        s.borrow_mut().push((a.promise.state(), b.promise.state()));
        (a.resolve)(1);
        (b.reject)(Rejection::msg("no"));
        s.borrow_mut().push((a.promise.state(), b.promise.state()));
        assert_eq!(a.promise.peek().unwrap().unwrap(), 1);
        assert_eq!(reason(&b.promise), "no");
        b.promise.catch(|_| 0);
    })
    .unwrap();
    assert_eq!(
        *seen.borrow(),
        [
            (PromiseState::Pending, PromiseState::Pending),
            (PromiseState::Fulfilled, PromiseState::Rejected),
        ]
    );
}

/// 2.1.1 (cont.): a promise stays pending as long as nobody settles it,
/// including across loop iterations.
#[test]
fn a2_1_1_pending_stays_pending_until_settled() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let w = Promise::<u32>::with_resolvers();
        let p = w.promise.clone();
        set_timeout(
            ms(5),
            clone!(l => move || l.push(format!("5ms: {:?}", p.state()))),
        );
        let resolve = w.resolve.clone();
        set_timeout(ms(10), move || resolve(7));
        w.promise
            .then(clone!(l => move |v| l.push(format!("v={v}"))));
    })
    .unwrap();
    assert_eq!(log.take(), ["5ms: Pending", "v=7"]);
}

/// 2.1.2: "When fulfilled, a promise must not transition to any other
/// state, and must have a value, which must not change."
#[test]
fn a2_1_2_fulfilled_does_not_transition_nor_change_value() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let w = Promise::<u32>::with_resolvers();
        (w.resolve)(1);
        (w.reject)(Rejection::msg("late reject"));
        (w.resolve)(2);
        w.resolve.adopt(Promise::resolve(3));
        assert_eq!(w.promise.state(), PromiseState::Fulfilled);
        assert_eq!(w.promise.peek().unwrap().unwrap(), 1);
        w.promise
            .clone()
            .then(clone!(l => move |v| l.push(format!("a{v}"))));

        // The same through the executor of Promise::new.
        let p = Promise::new(|resolve, reject| {
            resolve(10);
            reject(Rejection::msg("ignored"));
            resolve(20);
        });
        p.then(clone!(l => move |v| l.push(format!("b{v}"))));
        let w2 = w.resolve.clone();
        set_timeout(ms(1), move || w2(4));
        let p2 = w.promise.clone();
        set_timeout(
            ms(2),
            clone!(l => move || l.push(format!("still {:?}", p2.peek().unwrap().unwrap()))),
        );
    })
    .unwrap();
    assert_eq!(log.take(), ["a1", "b10", "still 1"]);
}

/// 2.1.3: "When rejected, a promise must not transition to any other
/// state, and must have a reason, which must not change."
#[test]
fn a2_1_3_rejected_does_not_transition_nor_change_reason() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let w = Promise::<u32>::with_resolvers();
        (w.reject)(Rejection::msg("first"));
        (w.resolve)(1);
        (w.reject)(Rejection::msg("second"));
        assert_eq!(w.promise.state(), PromiseState::Rejected);
        assert_eq!(reason(&w.promise), "first");
        w.promise
            .catch(clone!(l => move |e| { l.push(e.message()); 0 }));

        // A panic after reject in the executor does not replace the reason.
        let p = Promise::<u32>::new(|_resolve, reject| {
            reject(Rejection::msg("executor"));
            panic!("after reject");
        });
        assert_eq!(reason(&p), "executor");
        p.catch(clone!(l => move |e| { l.push(e.message()); 0 }));
    })
    .unwrap();
    assert_eq!(log.take(), ["first", "executor"]);
}

/// 2.1 (with 2.3.2): once resolved with a pending promise the promise is
/// "locked in": it is still pending, but later resolve/reject calls are
/// ignored (JavaScript's `alreadyResolved`).
#[test]
fn a2_1_resolved_with_pending_promise_is_locked() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let inner = Promise::<u32>::with_resolvers();
        let outer = Promise::<u32>::with_resolvers();
        outer.resolve.adopt(inner.promise.clone());
        (outer.resolve)(99);
        (outer.reject)(Rejection::msg("ignored"));
        assert_eq!(outer.promise.state(), PromiseState::Pending);
        outer
            .promise
            .then(clone!(l => move |v| l.push(format!("outer {v}"))));
        let r = inner.resolve.clone();
        set_timeout(ms(1), move || r(5));
    })
    .unwrap();
    assert_eq!(log.take(), ["outer 5"]);
}

// ----------------------------------------------------------- 2.2 then method

/// 2.2.1: "Both onFulfilled and onRejected are optional arguments." Rust
/// has no "not a function" arguments; the optional handler is the method
/// that lacks it: `then`/`and_then` have no rejection handler, so a
/// rejection passes through them; `catch`/`or_else` have no fulfilment
/// handler, so a value passes through them.
#[test]
fn a2_2_1_missing_handler_passes_outcome_through() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::<u32>::reject(Rejection::new(Oops(1)))
            .then(clone!(l => move |v| { l.push("then must not run"); v }))
            .and_then(clone!(l => move |v| { l.push("and_then must not run"); Ok(v) }))
            .catch(clone!(l => move |e| {
                l.push(format!("caught {}", e.downcast_ref::<Oops>().unwrap().0));
                0
            }));
        Promise::resolve(2)
            .catch(clone!(l => move |_| { l.push("catch must not run"); 0 }))
            .or_else(clone!(l => move |e| { l.push("or_else must not run"); Err(e) }))
            .then(clone!(l => move |v| l.push(format!("value {v}"))));
    })
    .unwrap();
    // Both chains are three hops long; the first registered runs first.
    assert_eq!(log.take(), ["caught 1", "value 2"]);
}

/// 2.2.2: "If onFulfilled is a function: it must be called after promise
/// is fulfilled, with promise's value as its first argument; it must not
/// be called before promise is fulfilled; it must not be called more than
/// once." (`FnOnce` makes the last one a type rule; the test resolves
/// twice anyway.)
#[test]
fn a2_2_2_on_fulfilled_after_fulfilment_with_value_once() {
    let log = Log::new();
    let l = log.clone();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    evloop::run(move || {
        let w = Promise::<&'static str>::with_resolvers();
        w.promise.then_or_else(
            clone!(l, c => move |v| {
                c.set(c.get() + 1);
                l.push(format!("fulfilled {v}"));
                Ok(())
            }),
            clone!(l => move |_| { l.push("rejected?!"); Ok(()) }),
        );
        let r = w.resolve.clone();
        set_timeout(
            ms(5),
            clone!(l => move || {
                l.push("resolving");
                r("value");
                r("again");
            }),
        );
        let r = w.resolve.clone();
        set_timeout(ms(10), move || r("third"));
    })
    .unwrap();
    assert_eq!(log.take(), ["resolving", "fulfilled value"]);
    assert_eq!(calls.get(), 1);
}

/// 2.2.3: "If onRejected is a function: it must be called after promise
/// is rejected, with promise's reason as its first argument; it must not
/// be called before promise is rejected; it must not be called more than
/// once."
#[test]
fn a2_2_3_on_rejected_after_rejection_with_reason_once() {
    let log = Log::new();
    let l = log.clone();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    evloop::run(move || {
        let w = Promise::<u32>::with_resolvers();
        w.promise.then_or_else(
            clone!(l => move |_| { l.push("fulfilled?!"); Ok(()) }),
            clone!(l, c => move |e| {
                c.set(c.get() + 1);
                l.push(format!("rejected {}", e.downcast_ref::<Oops>().unwrap().0));
                Ok(())
            }),
        );
        let (rej, res) = (w.reject.clone(), w.resolve.clone());
        set_timeout(
            ms(5),
            clone!(l => move || {
                l.push("rejecting");
                rej(Rejection::new(Oops(7)));
                rej(Rejection::new(Oops(8)));
                res(1);
            }),
        );
    })
    .unwrap();
    assert_eq!(log.take(), ["rejecting", "rejected 7"]);
    assert_eq!(calls.get(), 1);
}

/// 2.2.4: "onFulfilled or onRejected must not be called until the
/// execution context stack contains only platform code." Here: never
/// inside the call that subscribes or settles, even on a promise that is
/// already settled; they run in the microtask checkpoint after the
/// current callback.
#[test]
fn a2_2_4_handlers_never_run_synchronously() {
    let log = Log::new();
    let l = log.clone();
    let el = EventLoop::new().unwrap();
    el.run_main(move || {
        // Already fulfilled / rejected before `then`.
        Promise::resolve(1).then(clone!(l => move |_| l.push("fulfilled handler")));
        Promise::<u32>::reject("r").catch(clone!(l => move |_| { l.push("rejected handler"); 0 }));
        // Pending, settled synchronously after `then`.
        let w = Promise::<u32>::with_resolvers();
        w.promise
            .then(clone!(l => move |_| l.push("handler of resolved-later")));
        (w.resolve)(2);
        l.push("end of main");
        // Settled inside a timer: still after that callback returns.
        set_timeout(
            ms(1),
            clone!(l => move || {
                Promise::resolve(()).then(clone!(l => move |()| l.push("timer's handler")));
                l.push("end of timer");
            }),
        );
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "end of main",
            "fulfilled handler",
            "rejected handler",
            "handler of resolved-later",
        ]
    );
    el.run().unwrap();
    assert_eq!(log.take(), ["end of timer", "timer's handler"]);
}

// 2.2.5: "onFulfilled and onRejected must be called as functions (i.e. with
// no `this` value)." Not applicable in Rust: closures have no `this`
// receiver; whatever they use they capture explicitly. No test.

/// 2.2.6: "then may be called multiple times on the same promise. If/when
/// promise is fulfilled, all respective onFulfilled callbacks must execute
/// in the order of their originating calls to then. If/when promise is
/// rejected, all respective onRejected callbacks must execute in the order
/// of their originating calls to then."
#[test]
fn a2_2_6_multiple_then_run_in_registration_order() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let ok = Promise::<u32>::with_resolvers();
        let err = Promise::<u32>::with_resolvers();
        for i in 1..=3 {
            ok.promise
                .clone()
                .then(clone!(l => move |v| l.push(format!("f{i}:{v}"))));
            err.promise.clone().then_or_else(
                clone!(l => move |_| { l.push("fulfilled?!"); Ok(()) }),
                clone!(l => move |e| { l.push(format!("r{i}:{e}")); Ok(()) }),
            );
        }
        // Different methods on one promise share one order too.
        err.promise
            .clone()
            .catch(clone!(l => move |e| { l.push(format!("r4:{e}")); 0 }));
        err.promise
            .or_else(clone!(l => move |e| { l.push(format!("r5:{e}")); Ok::<_, Rejection>(0) }));
        let (res, rej) = (ok.resolve.clone(), err.reject.clone());
        set_timeout(ms(1), move || {
            res(9);
            rej(Rejection::msg("x"));
        });
        // Settled already: the order still holds.
        let p = Promise::resolve("s");
        for i in 1..=3 {
            p.clone()
                .then(clone!(l => move |v| l.push(format!("s{i}:{v}"))));
        }
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["s1:s", "s2:s", "s3:s", "f1:9", "f2:9", "f3:9", "r1:x", "r2:x", "r3:x", "r4:x", "r5:x",]
    );
}

/// 2.2.7: "then must return a promise": `promise2 = promise1.then(..)`,
/// a distinct promise, pending until the handler has run.
#[test]
fn a2_2_7_then_returns_a_new_promise() {
    evloop::run(|| {
        let p1 = Promise::resolve(1);
        let p2 = p1.clone().then(|v| v + 1);
        assert!(!Promise::ptr_eq(&p1, &p2.clone()));
        assert_eq!(p2.state(), PromiseState::Pending);
        let check = p2.clone();
        set_timeout(ms(1), move || {
            assert_eq!(check.peek().unwrap().unwrap(), 2);
        });
    })
    .unwrap();
}

/// 2.2.7.1: "If either onFulfilled or onRejected returns a value x, run the
/// Promise Resolution Procedure [[Resolve]](promise2, x)."
#[test]
fn a2_2_7_1_returned_value_resolves_promise2() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve(1)
            .then(|v| v * 10)
            .and_then(|v| Ok::<_, Rejection>(v + 1))
            .then(clone!(l => move |v| l.push(format!("from fulfil {v}"))));
        Promise::<u32>::reject("r")
            .catch(|_| 5)
            .then(clone!(l => move |v| l.push(format!("from catch {v}"))));
        Promise::<u32>::reject("r")
            .then_or_else(Ok, |_| Ok::<u32, Rejection>(6))
            .then(clone!(l => move |v| l.push(format!("from onRejected {v}"))));
    })
    .unwrap();
    let mut got = log.take();
    got.sort();
    assert_eq!(got, ["from catch 5", "from fulfil 11", "from onRejected 6"]);
}

/// 2.2.7.2: "If either onFulfilled or onRejected throws an exception e,
/// promise2 must be rejected with e as the reason." Rust's throw is
/// returning `Err(e)` (the same `e` arrives), or a panic (caught; the
/// reason `is_panic()` and carries its message).
#[test]
fn a2_2_7_2_thrown_error_rejects_promise2() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve(1)
            .and_then(|_| Err::<u32, _>(Rejection::new(Oops(1))))
            .catch(clone!(l => move |e| {
                l.push(format!("err: {:?}", e.downcast_ref::<Oops>()));
                0
            }));
        Promise::<u32>::reject("first")
            .or_else(|_| Err(Rejection::new(Oops(2))))
            .catch(clone!(l => move |e| {
                l.push(format!("rethrown: {:?}", e.downcast_ref::<Oops>()));
                0
            }));
        Promise::resolve(1)
            .then(|_| -> u32 { panic!("boom in onFulfilled") })
            .catch(clone!(l => move |e| {
                l.push(format!("panic: {} {}", e.is_panic(), e.as_panic().unwrap().message()));
                0
            }));
        Promise::<u32>::reject("x")
            .then_or_else(Ok, |_| -> Result<u32, Rejection> {
                panic!("boom in onRejected")
            })
            .catch(clone!(l => move |e| {
                l.push(format!("panic: {} {}", e.is_panic(), e.as_panic().unwrap().message()));
                0
            }));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "err: Some(Oops(1))",
            "rethrown: Some(Oops(2))",
            "panic: true boom in onFulfilled",
            "panic: true boom in onRejected",
        ]
    );
}

/// 2.2.7.2 (cont.): `then_or_else`'s onRejected does not see a failure of
/// its own onFulfilled: that failure rejects promise2.
#[test]
fn a2_2_7_2_on_rejected_does_not_catch_on_fulfilled_failure() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve(1)
            .then_or_else(
                |_| Err::<u32, _>(Rejection::msg("from onFulfilled")),
                clone!(l => move |_| { l.push("onRejected?!"); Ok(0) }),
            )
            .catch(clone!(l => move |e| { l.push(e.message()); 0 }));
    })
    .unwrap();
    assert_eq!(log.take(), ["from onFulfilled"]);
}

/// 2.2.7.3: "If onFulfilled is not a function and promise1 is fulfilled,
/// promise2 must be fulfilled with the same value as promise1."
#[test]
fn a2_2_7_3_fulfilment_passes_through_without_on_fulfilled() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let w = Promise::<String>::with_resolvers();
        let p2 = w.promise.clone().catch(|_| "recovered".to_string());
        let p3 = w.promise.or_else(Err);
        p2.then(clone!(l => move |v| l.push(format!("p2 {v}"))));
        p3.then(clone!(l => move |v| l.push(format!("p3 {v}"))));
        let r = w.resolve.clone();
        set_timeout(ms(1), move || r("value".to_string()));
    })
    .unwrap();
    assert_eq!(log.take(), ["p2 value", "p3 value"]);
}

/// 2.2.7.4: "If onRejected is not a function and promise1 is rejected,
/// promise2 must be rejected with the same reason as promise1."
#[test]
fn a2_2_7_4_rejection_passes_through_without_on_rejected() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let w = Promise::<u32>::with_resolvers();
        let p2 = w.promise.clone().then(|v| v + 1);
        let p3 = w.promise.clone().and_then(Promise::resolve);
        let p4 = w.promise.finally(|| ());
        for (name, p) in [("p2", p2), ("p3", p3), ("p4", p4)] {
            p.catch(clone!(l => move |e| {
                l.push(format!("{name} {:?}", e.downcast_ref::<Oops>()));
                0
            }));
        }
        let r = w.reject.clone();
        set_timeout(ms(1), move || r(Rejection::new(Oops(4))));
    })
    .unwrap();
    let mut got = log.take();
    got.sort();
    assert_eq!(
        got,
        ["p2 Some(Oops(4))", "p3 Some(Oops(4))", "p4 Some(Oops(4))"]
    );
}

// --------------------------------------------- 2.3 the resolution procedure

/// 2.3.1: "If promise and x refer to the same object, reject promise with
/// a TypeError as the reason." Here `rejection.is_cycle()`.
#[test]
fn a2_3_1_resolving_with_itself_rejects_with_cycle() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let w = Promise::<u32>::with_resolvers();
        w.resolve.adopt(w.promise.clone());
        assert_eq!(w.promise.state(), PromiseState::Rejected);
        w.promise.catch(clone!(l => move |e| {
            l.push(format!("adopt self: cycle={} {e}", e.is_cycle()));
            0
        }));

        // JavaScript's `const p = x.then(() => p)`.
        let slot: Rc<RefCell<Option<Promise<u32>>>> = Rc::default();
        let p = Promise::resolve(1).and_then(clone!(slot => move |_| {
            slot.borrow_mut().take().expect("set before the handler runs")
        }));
        *slot.borrow_mut() = Some(p.clone());
        p.catch(clone!(l => move |e| {
            l.push(format!("then returns itself: cycle={}", e.is_cycle()));
            0
        }));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "adopt self: cycle=true Chaining cycle detected for promise",
            "then returns itself: cycle=true",
        ]
    );
}

/// 2.3.2: "If x is a promise, adopt its state: if x is pending, promise
/// must remain pending until x is fulfilled or rejected; if/when x is
/// fulfilled, fulfill promise with the same value; if/when x is rejected,
/// reject promise with the same reason."
#[test]
fn a2_3_2_adopting_a_promise_takes_its_state() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let x_ok = Promise::<u32>::with_resolvers();
        let x_err = Promise::<u32>::with_resolvers();
        let a = Promise::<u32>::with_resolvers();
        let b = Promise::<u32>::with_resolvers();
        a.resolve.adopt(x_ok.promise.clone());
        b.resolve.adopt(x_err.promise.clone());
        // Through a handler returning a promise, too.
        let xp = x_ok.promise.clone();
        let c = Promise::resolve(()).and_then(move |()| xp);

        let (pa, pb, pc) = (a.promise.clone(), b.promise.clone(), c.clone());
        set_timeout(
            ms(5),
            clone!(l => move || {
                l.push(format!("5ms: {:?} {:?} {:?}", pa.state(), pb.state(), pc.state()));
            }),
        );
        let (res, rej) = (x_ok.resolve.clone(), x_err.reject.clone());
        set_timeout(ms(10), move || {
            res(42);
            rej(Rejection::new(Oops(3)));
        });
        a.promise
            .then(clone!(l => move |v| l.push(format!("a {v}"))));
        b.promise.catch(clone!(l => move |e| {
            l.push(format!("b {:?}", e.downcast_ref::<Oops>()));
            0
        }));
        c.then(clone!(l => move |v| l.push(format!("c {v}"))));
    })
    .unwrap();
    let got = log.take();
    assert_eq!(got[0], "5ms: Pending Pending Pending");
    let mut rest = got[1..].to_vec();
    rest.sort();
    assert_eq!(rest, ["a 42", "b Some(Oops(3))", "c 42"]);
}

/// 2.3.2 (cont.): adopting a promise that has already settled still
/// settles asynchronously (JavaScript's two extra microtask hops), with
/// the same value or reason.
#[test]
fn a2_3_2_adopting_a_settled_promise() {
    let log = Log::new();
    let l = log.clone();
    let el = EventLoop::new().unwrap();
    el.run_main(move || {
        let a = Promise::<u32>::with_resolvers();
        a.resolve.adopt(Promise::resolve(8));
        assert_eq!(a.promise.state(), PromiseState::Pending);
        let b = Promise::<u32>::with_resolvers();
        b.resolve.adopt(Promise::reject(Rejection::new(Oops(9))));
        assert_eq!(b.promise.state(), PromiseState::Pending);
        a.promise
            .then(clone!(l => move |v| l.push(format!("a {v}"))));
        b.promise.catch(clone!(l => move |e| {
            l.push(format!("b {:?}", e.downcast_ref::<Oops>()));
            0
        }));
    })
    .unwrap();
    assert_eq!(log.take(), ["a 8", "b Some(Oops(9))"]);
    el.run().unwrap();
}

/// 2.3.3 / 2.3.4: "if x is an object or function [a thenable], call its
/// then ...; if x is not an object or function, fulfill promise with x."
/// There are no foreign thenables in Rust: only our own `Promise`, and only
/// where the types say so (`and_then`/`or_else`/`adopt` take a `Promise`
/// to follow). Any other value fulfils as is, and a `Promise` returned
/// from `then` (which maps to a value) is a plain value too: the result is
/// a `Promise<Promise<T>>`, not flattened.
#[test]
fn a2_3_3_a2_3_4_plain_values_fulfil_and_nothing_is_a_thenable() {
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve(1)
            .and_then(|v| Ok::<_, Rejection>(v + 1))
            .then(clone!(l => move |v| l.push(format!("plain {v}"))));
        let nested: Promise<Promise<u32>> = Promise::resolve(1).then(|v| Promise::resolve(v + 2));
        nested.then(clone!(l => move |inner| {
            l.push(format!("nested value is a promise: {:?}", inner.state()));
            inner.then(clone!(l => move |v| l.push(format!("inner {v}"))));
        }));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["plain 2", "nested value is a promise: Fulfilled", "inner 3"]
    );
}
