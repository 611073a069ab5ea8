//! Calling a loop from inside itself is an error or a separate loop, never
//! a panic or an abort (issue 16): one rule for every entry point, from
//! every kind of place user code runs.
//!
//! - `evloop::run`, `evloop::run_async` and `evloop::block_on` run a
//!   separate, fresh loop (which blocks the outer one until it ends);
//! - `EventLoop::{run, run_once, run_nowait, run_main}` on the loop that is
//!   running return `Error::Reentrant`.

mod support;

use std::cell::RefCell;
use std::rc::Rc;

use evloop::task::sleep;
use evloop::{Error, EventLoop};
use support::ms;

/// Runs every entry point and returns what each gave, as text.
fn try_every_entry_point(outer: &EventLoop) -> Vec<String> {
    let mut out = Vec::new();
    let v = evloop::block_on(async {
        sleep(ms(1)).await;
        1
    });
    out.push(format!("block_on {v:?}"));
    let v = evloop::run_async(async {
        sleep(ms(1)).await;
        2
    });
    out.push(format!("run_async {v:?}"));
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    let v = evloop::run(move || {
        evloop::set_timeout(ms(1), move || *r.borrow_mut() = true);
    });
    out.push(format!("run {v:?} {}", ran.borrow()));
    let reentrant = |r: Result<(), Error>| matches!(r, Err(Error::Reentrant));
    out.push(format!(
        "same loop reentrant: {} {} {} {}",
        reentrant(outer.run()),
        reentrant(outer.run_once().map(drop)),
        reentrant(outer.run_nowait().map(drop)),
        reentrant(outer.run_main(|| {})),
    ));
    out
}

const WANT: [&str; 4] = [
    "block_on Ok(1)",
    "run_async Ok(2)",
    "run Ok(()) true",
    "same loop reentrant: true true true true",
];

#[test]
fn every_entry_point_from_every_context() {
    support::init_log();
    for place in [
        "main",
        "callback",
        "microtask",
        "task before await",
        "task after await",
    ] {
        let el = Rc::new(EventLoop::new().unwrap());
        let got: Rc<RefCell<Vec<String>>> = Rc::default();
        let (g, e) = (got.clone(), el.clone());
        let body = move || *g.borrow_mut() = try_every_entry_point(&e);
        el.run_main(move || match place {
            "main" => body(),
            "callback" => drop(evloop::set_timeout(ms(1), body)),
            "microtask" => evloop::queue_microtask(body),
            "task before await" => drop(evloop::spawn(async move { body() })),
            "task after await" => drop(evloop::spawn(async move {
                sleep(ms(1)).await;
                body()
            })),
            _ => unreachable!(),
        })
        .unwrap();
        el.run().unwrap_or_else(|e| panic!("{place}: {e}"));
        assert_eq!(*got.borrow(), WANT, "{place}");
    }
}

/// `block_on` inside `run_async`'s future before its first `.await` (the
/// case that aborted the process with "RefCell already borrowed").
#[test]
fn block_on_inside_run_async() {
    let v = evloop::run_async(async { evloop::block_on(async { 1 }) }).unwrap();
    assert_eq!(v.unwrap(), 1);
    let v = evloop::run_async(async {
        let p = evloop::spawn(async { evloop::block_on(async { 2 }).unwrap() });
        p.await.unwrap()
    })
    .unwrap();
    assert_eq!(v, 2);
}

/// The error names the fix.
#[test]
fn reentrant_says_what_to_do() {
    let text = Error::Reentrant.to_string();
    assert!(text.contains(".await"), "{text}");
}
