//! The promise API around the A+ core: unhandled-rejection modes and
//! hooks, panics in callbacks, the combinators, promisify / callbackify,
//! `delay` and `queue_work`, memory (no `Rc` cycles) and clone counts.

mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::{Rc, Weak};
use std::sync::Mutex;
use std::time::Instant;

use evloop::promise::UnhandledRejections;
use evloop::promise::{callbackify, promisify, Promise, PromiseState, Rejection};
use evloop::{set_timeout, Error, EventLoop};
use support::{ms, Log};

macro_rules! clone {
    ($($name:ident),+ => $closure:expr) => {{
        $(let $name = $name.clone();)+
        $closure
    }};
}

// ------------------------------------------------------ a capturing logger

/// Records every warning with the thread that logged it, so a test can see
/// whether the loop (on its own test thread) warned.
struct Capture;

static WARNINGS: Mutex<Vec<(std::thread::ThreadId, String)>> = Mutex::new(Vec::new());

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            WARNINGS
                .lock()
                .unwrap()
                .push((std::thread::current().id(), r.args().to_string()));
        }
    }
    fn flush(&self) {}
}

/// A `Log`, with the capturing logger installed first (so `util`'s
/// `env_logger` never is, in this binary).
fn log() -> Log {
    if log::set_logger(&Capture).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
    Log::new()
}

/// The warnings this thread logged.
fn my_warnings() -> Vec<String> {
    let me = std::thread::current().id();
    WARNINGS
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t == me)
        .map(|(_, m)| m.clone())
        .collect()
}

/// A promise settled by a timer after `after` ms: `Ok(v)` fulfils, `Err(m)`
/// rejects with message `m`.
fn later<T: Clone + 'static>(after: u64, r: Result<T, &'static str>) -> Promise<T> {
    Promise::new(move |resolve, reject| {
        set_timeout(ms(after), move || match r {
            Ok(v) => resolve(v),
            Err(m) => reject(Rejection::msg(m)),
        });
    })
}

// -------------------------------------------------- unhandled rejections

/// `Warn`: the rejection is logged as a warning (and printed on stderr)
/// and the loop goes on; `run` returns `Ok` and later timers fire.
#[test]
fn unhandled_rejection_warn_does_not_stop_the_loop() {
    let log = log();
    let l = log.clone();
    let el = EventLoop::new().unwrap();
    el.set_unhandled_rejections(UnhandledRejections::Warn);
    el.run_main(move || {
        set_timeout(ms(1), || {
            let _ = Promise::<()>::reject("nobody listens");
        });
        set_timeout(ms(10), l.rec("later timer"));
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(log.take(), ["later timer"]);
    let w = my_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("nobody listens"), "{w:?}");
}

/// `Strict`: `run` returns `Error::UnhandledRejection` with the reason, at
/// the end of the checkpoint of the callback that rejected; later
/// callbacks do not run.
#[test]
fn unhandled_rejection_strict_stops_the_loop() {
    let log = log();
    let l = log.clone();
    let el = EventLoop::new().unwrap();
    el.set_unhandled_rejections(UnhandledRejections::Strict);
    el.run_main(move || {
        // Timer 1 is armed from the immediate: armed from here, it could be
        // due before the first check phase on a slow machine (as in Node,
        // a 1 ms timeout and an immediate from the main script race).
        evloop::set_immediate(clone!(l => move || {
            l.push("immediate");
            set_timeout(
                ms(1),
                clone!(l => move || {
                    let _ = Promise::<()>::reject(Rejection::msg("fatal"));
                    // Same checkpoint: still runs, before the report.
                    Promise::resolve(()).then(clone!(l => move |()| l.push("microtask")));
                    l.push("timer 1");
                }),
            );
        }));
        set_timeout(ms(500), l.rec("timer 2"));
    })
    .unwrap();
    match el.run() {
        Err(Error::UnhandledRejection(r)) => assert_eq!(r.message(), "fatal"),
        other => panic!("expected UnhandledRejection, got {other:?}"),
    }
    assert_eq!(log.take(), ["immediate", "timer 1", "microtask"]);
}

/// `Strict` in `run_main`: a rejection left unhandled by the main script
/// makes `run_main` itself return the error.
#[test]
fn unhandled_rejection_strict_in_main() {
    let _log = log();
    let el = EventLoop::new().unwrap();
    el.set_unhandled_rejections(UnhandledRejections::Strict);
    let r = el.run_main(|| {
        let _ = Promise::<()>::reject("top level");
    });
    assert!(
        matches!(&r, Err(Error::UnhandledRejection(e)) if e.message() == "top level"),
        "{r:?}"
    );
}

/// A handler attached in the same checkpoint prevents the report, even in
/// `Strict` mode.
#[test]
fn rejection_handled_within_checkpoint_is_not_reported() {
    let log = log();
    let l = log.clone();
    let el = EventLoop::new().unwrap();
    el.set_unhandled_rejections(UnhandledRejections::Strict);
    el.run_main(move || {
        let p = Promise::<u32>::reject("handled in time");
        Promise::resolve(()).then(clone!(l => move |()| {
            p.catch(clone!(l => move |e| { l.push(e.message()); 0 }));
        }));
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(log.take(), ["handled in time"]);
}

/// `None`: nothing is logged and the loop goes on.
#[test]
fn unhandled_rejection_none_is_silent() {
    let log = log();
    let l = log.clone();
    let el = EventLoop::new().unwrap();
    el.set_unhandled_rejections(UnhandledRejections::None);
    el.run_main(move || {
        let _ = Promise::<()>::reject("silent");
        set_timeout(ms(1), l.rec("timer"));
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(log.take(), ["timer"]);
    assert_eq!(my_warnings(), Vec::<String>::new());
}

/// The hook receives each reason, in rejection order, instead of the
/// warning.
#[test]
fn unhandled_rejection_hook_receives_reasons() {
    let log = log();
    let l = log.clone();
    let el = EventLoop::new().unwrap();
    el.on_unhandled_rejection(clone!(l => move |e| l.push(format!("hook: {e}"))));
    el.run_main(move || {
        let _ = Promise::<()>::reject("one");
        let _ = Promise::<()>::reject("two");
        let _ = Promise::<()>::reject("handled").catch(|_| ());
        set_timeout(ms(1), || {
            let _ = Promise::<()>::reject(io::Error::from(io::ErrorKind::NotFound));
        });
    })
    .unwrap();
    el.run().unwrap();
    let got = log.take();
    assert_eq!(got[..2], ["hook: one", "hook: two"]);
    assert_eq!(got.len(), 3);
    assert!(got[2].starts_with("hook: "), "{got:?}");
    assert_eq!(my_warnings(), Vec::<String>::new());
}

/// `on_rejection_handled` fires when a handler is attached to a promise
/// already reported unhandled (Node's `rejectionHandled`).
#[test]
fn rejection_handled_hook_fires_for_late_handler() {
    let log = log();
    let l = log.clone();
    let el = EventLoop::new().unwrap();
    el.on_unhandled_rejection(clone!(l => move |e| l.push(format!("unhandled: {e}"))));
    el.on_rejection_handled(clone!(l => move |e| l.push(format!("handled: {e}"))));
    el.run_main(clone!(l => move || {
        let p = Promise::<u32>::reject("late");
        set_timeout(ms(1), clone!(l => move || {
            l.push("attaching");
            p.catch(clone!(l => move |e| { l.push(format!("catch: {e}")); 0 }));
        }));
    }))
    .unwrap();
    assert_eq!(log.take(), ["unhandled: late"]);
    el.run().unwrap();
    assert_eq!(log.take(), ["attaching", "catch: late", "handled: late"]);
}

/// A panic in the unhandled-rejection hook is an uncaught panic:
/// `Error::Panicked`.
#[test]
fn panic_in_rejection_hook_is_fatal() {
    let log = log();
    let l = log.clone();
    let el = EventLoop::new().unwrap();
    el.on_unhandled_rejection(|e| panic!("hook saw {e}"));
    el.run_main(move || {
        set_timeout(ms(1), || {
            let _ = Promise::<()>::reject("x");
        });
        set_timeout(ms(20), l.rec("later"));
    })
    .unwrap();
    match el.run() {
        Err(Error::Panicked(p)) => assert_eq!(p.message(), "hook saw x"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(log.take(), Vec::<String>::new());
}

// ------------------------------------------------- panics in callbacks

/// A panic in a `then` callback rejects the derived promise (`is_panic()`,
/// with the message); the loop keeps running.
#[test]
fn panic_in_then_rejects_derived_promise() {
    let log = log();
    let l = log.clone();
    evloop::run(move || {
        Promise::resolve(1)
            .then(|_| -> u32 { panic!("kaboom") })
            .catch(clone!(l => move |e| {
                l.push(format!("{} {} {}", e.is_panic(), e.as_panic().unwrap().message(), e));
                0
            }));
        set_timeout(ms(2), l.rec("timer still fires"));
    })
    .unwrap();
    assert_eq!(log.take(), ["true kaboom kaboom", "timer still fires"]);
}

// ------------------------------------------------------------ combinators

/// `all` fulfils with every value in input order, whatever the settling
/// order, mixing pending and settled inputs.
#[test]
fn all_fulfils_in_input_order() {
    let log = log();
    let l = log.clone();
    evloop::run(move || {
        Promise::all([
            later(20, Ok("slow")),
            Promise::resolve("now"),
            later(5, Ok("fast")),
        ])
        .then(clone!(l => move |v| l.push(v.join(","))));
    })
    .unwrap();
    assert_eq!(log.take(), ["slow,now,fast"]);
}

/// `all` rejects with the first rejection in time, not in input order.
#[test]
fn all_rejects_with_first_rejection() {
    let log = log();
    let l = log.clone();
    evloop::run(move || {
        Promise::all([later(20, Ok(1)), later(10, Err("r10")), later(5, Err("r5"))])
            .then(clone!(l => move |_| l.push("fulfilled?!")))
            .catch(clone!(l => move |e| l.push(e.message())));
    })
    .unwrap();
    assert_eq!(log.take(), ["r5"]);
}

/// `all_settled` waits for every input and reports each outcome in input
/// order; it never rejects.
#[test]
fn all_settled_reports_every_outcome() {
    let log = log();
    let l = log.clone();
    evloop::run(move || {
        Promise::all_settled([
            later(10, Err("late err")),
            Promise::resolve(1),
            Promise::reject("now err"),
            later(5, Ok(2)),
        ])
        .then(clone!(l => move |v| {
            for o in v {
                l.push(match o {
                    Ok(v) => format!("ok {v}"),
                    Err(e) => format!("err {e}"),
                });
            }
        }));
    })
    .unwrap();
    assert_eq!(log.take(), ["err late err", "ok 1", "err now err", "ok 2"]);
}

/// `race` settles as the first input to settle; settled inputs win in
/// input order.
#[test]
fn race_settles_as_first() {
    let log = log();
    let l = log.clone();
    evloop::run(move || {
        Promise::race([later(20, Ok("slow")), later(5, Ok("fast"))])
            .then(clone!(l => move |v| l.push(format!("a {v}"))));
        Promise::race([
            later(1, Ok("pending")),
            Promise::resolve("first"),
            Promise::resolve("second"),
        ])
        .then(clone!(l => move |v| l.push(format!("b {v}"))));
        Promise::race([later(20, Ok(0)), later(5, Err("fast err"))])
            .catch(clone!(l => move |e| { l.push(format!("c {e}")); 0 }));
    })
    .unwrap();
    assert_eq!(log.take(), ["b first", "a fast", "c fast err"]);
}

/// `race([])` never settles, and, as pending promises keep nothing alive,
/// the loop still exits.
#[test]
fn race_of_nothing_stays_pending_and_loop_exits() {
    let slot: Rc<RefCell<Option<Promise<u32>>>> = Rc::default();
    let s = slot.clone();
    let start = Instant::now();
    evloop::run(move || {
        let p = Promise::<u32>::race(Vec::new());
        p.clone().then(|_| panic!("race([]) settled"));
        *s.borrow_mut() = Some(p);
    })
    .unwrap();
    assert!(start.elapsed() < ms(1000));
    assert_eq!(
        slot.borrow().as_ref().unwrap().state(),
        PromiseState::Pending
    );
}

/// `any` fulfils with the first fulfilment, ignoring rejections.
#[test]
fn any_fulfils_with_first_fulfilment() {
    let log = log();
    let l = log.clone();
    evloop::run(move || {
        Promise::any([
            Promise::reject("now err"),
            later(20, Ok("slow")),
            later(5, Err("fast err")),
            later(10, Ok("medium")),
        ])
        .then(clone!(l => move |v| l.push(v)));
    })
    .unwrap();
    assert_eq!(log.take(), ["medium"]);
}

/// `any` of all-rejected inputs rejects with every reason, in input
/// order (`errors()`), whatever the rejection order.
#[test]
fn any_all_rejected_gives_errors_in_input_order() {
    let log = log();
    let l = log.clone();
    evloop::run(move || {
        Promise::<u32>::any([
            later(20, Err("a")),
            Promise::reject("b"),
            later(5, Err("c")),
        ])
        .catch(clone!(l => move |e| {
            l.push(e.message());
            for r in e.errors().expect("aggregate") {
                l.push(r.message());
            }
            0
        }));
        Promise::<u32>::any([]).catch(clone!(l => move |e| {
            l.push(format!("empty: {}", e.errors().unwrap().len()));
            0
        }));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["empty: 0", "All promises were rejected", "a", "b", "c"]
    );
}

// ---------------------------------------------- promisify / callbackify

/// An error's kind and OS code.
type KindCode = (io::ErrorKind, Option<i32>);

const MISSING: &str = "/nonexistent-evloop-dir/missing-file";

/// The same failure through the callback and through `promisify` carries
/// the same `io::ErrorKind` and OS error code.
#[test]
fn promisify_keeps_io_error_kind_and_os_code() {
    let log = log();
    let got: Rc<RefCell<Vec<KindCode>>> = Rc::default();
    let g = got.clone();
    evloop::run(move || {
        evloop::fs::read_file(
            MISSING,
            clone!(g => move |r| {
                let e = r.unwrap_err();
                g.borrow_mut().push((e.kind(), evloop::fs::raw_os_error(&e)));
            }),
        );
        promisify(|done| evloop::fs::read_file(MISSING, done)).catch(clone!(g => move |e| {
            g.borrow_mut().push((e.kind(), e.raw_os_error()));
            assert!(e.io_error().is_some());
            Vec::new()
        }));
    })
    .unwrap();
    let got = got.borrow();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], (io::ErrorKind::NotFound, Some(libc::ENOENT)));
    assert_eq!(got[0], got[1]);
    drop(log);
}

/// `io::Error::from(rejection)` keeps the kind, both when the rejection is
/// the last holder (the original error comes back, OS code included) and
/// when it is shared (a new error of the same kind).
#[test]
fn rejection_into_io_error_keeps_kind() {
    let _log = log();
    let got: Rc<RefCell<Vec<KindCode>>> = Rc::default();
    let g = got.clone();
    evloop::run(move || {
        promisify(|done| evloop::fs::read_file(MISSING, done)).catch(clone!(g => move |e| {
            let keep = e.clone();
            let shared = io::Error::from(e);
            g.borrow_mut()
                .push((shared.kind(), evloop::fs::raw_os_error(&shared)));
            // `shared` wraps the rejection (so holds `keep`'s Arc): drop it.
            drop(shared);
            let unique = io::Error::from(keep);
            g.borrow_mut()
                .push((unique.kind(), evloop::fs::raw_os_error(&unique)));
            Vec::new()
        }));
        let plain = Rejection::from(io::Error::from_raw_os_error(libc::EACCES));
        let kept = plain.clone();
        let back = io::Error::from(plain);
        g.borrow_mut().push((back.kind(), back.raw_os_error()));
        drop(kept);
    })
    .unwrap();
    let got = got.borrow();
    assert_eq!(
        got[0],
        (io::ErrorKind::PermissionDenied, Some(libc::EACCES)),
        "shared plain OS error keeps its code"
    );
    assert_eq!(got[1].0, io::ErrorKind::NotFound, "shared fs error: kind");
    assert_eq!(
        got[2],
        (io::ErrorKind::NotFound, Some(libc::ENOENT)),
        "unique"
    );
}

/// `callbackify` delivers `Ok` and `Err` to the callback.
#[test]
fn callbackify_delivers_ok_and_err() {
    let log = log();
    let l = log.clone();
    evloop::run(move || {
        let half = callbackify(|n: u32| {
            if n % 2 == 0 {
                Promise::resolve(n / 2)
            } else {
                Promise::reject(Rejection::msg(format!("{n} is odd")))
            }
        });
        half(84, Box::new(clone!(l => move |r| l.push(format!("{r:?}")))));
        half(
            7,
            Box::new(clone!(l => move |r| l.push(format!("{}", r.unwrap_err())))),
        );
        let later_ok = callbackify(|()| later(5, Ok(1)));
        later_ok(
            (),
            Box::new(clone!(l => move |r| l.push(format!("later {r:?}")))),
        );
    })
    .unwrap();
    assert_eq!(log.take(), ["Ok(42)", "7 is odd", "later Ok(1)"]);
}

// ----------------------------------------------- delay and queue_work

/// `delay(20 ms)` resolves no earlier than 20 ms after it was called.
#[test]
fn delay_resolves_no_earlier_than_its_duration() {
    let elapsed = Rc::new(Cell::new(None));
    let e = elapsed.clone();
    evloop::run(move || {
        let start = Instant::now();
        evloop::promise::delay(ms(20)).then(move |()| e.set(Some(start.elapsed())));
    })
    .unwrap();
    let d = elapsed.get().expect("delay resolved");
    assert!(d >= ms(20), "{d:?}");
}

/// `queue_work` resolves with the job's result; a panicking job rejects
/// with an `io::ErrorKind::Other` rejection carrying the panic message.
#[test]
fn queue_work_resolves_and_panic_rejects() {
    let log = log();
    let l = log.clone();
    evloop::run(move || {
        evloop::promise::queue_work(|| 6 * 7).then(clone!(l => move |v| l.push(format!("{v}"))));
        evloop::promise::queue_work(|| -> u32 { panic!("job blew up") }).catch(
            clone!(l => move |e| {
                assert_eq!(e.kind(), io::ErrorKind::Other);
                assert!(e.io_error().is_some());
                assert!(!e.is_panic());
                assert!(e.message().contains("job blew up"), "{e}");
                l.push("rejected");
                0
            }),
        );
    })
    .unwrap();
    let mut got = log.take();
    got.sort();
    assert_eq!(got, ["42", "rejected"]);
}

// ----------------------------------------------------------------- memory

/// A promise that never settles, with reactions attached, is freed with
/// its handles: reactions do not point back at the promise, so there is no
/// `Rc` cycle.
#[test]
fn never_settled_promise_is_freed_with_its_handles() {
    let _log = log();
    let token = Rc::new(());
    let weak: Weak<()> = Rc::downgrade(&token);
    let el = EventLoop::new().unwrap();
    el.run_main(clone!(token => move || {
        let w = Promise::<u32>::with_resolvers();
        let derived = w.promise.clone().then(clone!(token => move |_| drop(token)));
        derived.catch(clone!(token => move |_| { drop(token) }));
        w.promise.clone().finally(clone!(token => move || drop(token)));
        // An adoption waiting on it holds it only from its side.
        let follower = Promise::<u32>::with_resolvers();
        follower.resolve.adopt(w.promise.clone());
        follower.promise.then(clone!(token => move |_| drop(token)));
        assert!(Rc::strong_count(&token) > 2);
        drop(token);
        // w, derived, follower: all dropped here.
    }))
    .unwrap();
    el.run().unwrap();
    assert_eq!(Rc::strong_count(&token), 1);
    drop(token);
    assert!(weak.upgrade().is_none());
}

// ------------------------------------------------------------ clone counts

thread_local! {
    static CLONES: Cell<usize> = const { Cell::new(0) };
}

/// A value that counts its clones.
struct Counted(u32);

impl Clone for Counted {
    fn clone(&self) -> Self {
        CLONES.with(|c| c.set(c.get() + 1));
        Counted(self.0)
    }
}

fn clones() -> usize {
    CLONES.with(Cell::get)
}

/// Values move through a chain with single subscribers: `then` consumes
/// its handle, and a handle never cloned means one subscriber, which gets
/// the value itself (`State::Delivered`). `Promise::resolve`'s value moves
/// to the first `then`, each derived promise's value to the next: no clone
/// at all.
#[test]
fn values_move_through_a_chain_without_handles() {
    let _log = log();
    let seen = Rc::new(Cell::new(0));
    let s = seen.clone();
    evloop::run(move || {
        CLONES.with(|c| c.set(0));
        Promise::resolve(Counted(1))
            .then(|v| Counted(v.0 + 1))
            .then(|v| v)
            .then(|v| v)
            .then(move |v| s.set(v.0));
    })
    .unwrap();
    assert_eq!(seen.get(), 2);
    assert_eq!(clones(), 0);
}

/// Where a handle is kept, the value is stored and each delivery clones.
/// `settle` keeps the original whenever a handle is alive and hands each
/// reaction a clone; with no reaction it stores the original (no clone).
/// `subscribe` on a settled promise clones; `peek` clones.
///
/// - `Promise::resolve(v)`, subscribed twice: 2 clones.
/// - `mid` (handle kept, one reaction): 1 clone for the reaction, the
///   original stays stored.
/// - `end` (handle kept, no reaction): stored as is, no clone.
/// - `end.peek()`: 1 clone.
#[test]
fn values_clone_where_handles_are_kept() {
    let _log = log();
    let counts = Rc::new(RefCell::new(Vec::new()));
    let c = counts.clone();
    let el = EventLoop::new().unwrap();
    el.run_main(move || {
        CLONES.with(|c| c.set(0));
        let start = Promise::resolve(Counted(1));
        let mid = start.clone().then(|v| v);
        start.clone().then(|_| ());
        let end = mid.clone().then(|v| v);
        c.borrow_mut().push(clones()); // subscribing to a settled promise: 2
        set_timeout(ms(1), move || {
            c.borrow_mut().push(clones()); // + mid's reaction: 3
            let _ = end.peek();
            c.borrow_mut().push(clones()); // + peek: 4
            drop((start, mid));
        });
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(*counts.borrow(), [2, 3, 4]);
}
