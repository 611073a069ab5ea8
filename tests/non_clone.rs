//! Values that are not `Clone` cross promises (issue 19, item 4): a spawned
//! task, a promisified pool job and an awaited promise carry an
//! `io::Error`, a `File` or a `Vec` that is moved, never copied, with
//! JavaScript's timing unchanged. (A second subscriber of such a promise
//! does not compile: the `compile_fail` example in `evloop::promise`.)

mod support;

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::rc::Rc;

use evloop::promise::{self, Promise, Rejection};
use evloop::{run, run_async, spawn, EventLoop};
use support::Log;

/// A value that cannot be copied.
struct Unique {
    bytes: Vec<u8>,
}

#[test]
fn a_spawned_task_returns_an_io_result_that_is_awaited() {
    let got = run_async(async {
        let read = spawn(async { std::fs::read("Cargo.toml") });
        let bad = spawn(async { std::fs::read("/nonexistent/evloop-non-clone") });
        let bytes = read.await.expect("settles").expect("read");
        let err = bad.await.expect("settles").expect_err("missing file");
        (bytes.len(), err.kind())
    })
    .unwrap();
    assert!(got.0 > 100);
    assert_eq!(got.1, io::ErrorKind::NotFound);
}

#[test]
fn a_promisified_pool_job_hands_over_a_file() {
    let len = Rc::new(RefCell::new(None));
    let l = len.clone();
    run(move || {
        // `File` and `io::Error` are Send but not Clone.
        promise::queue_work(|| File::open("Cargo.toml")).then(move |r| {
            let f = r.expect("opened");
            *l.borrow_mut() = Some(f.metadata().expect("metadata").len());
        });
    })
    .unwrap();
    assert!(len.borrow().unwrap() > 100);
}

#[test]
fn a_vec_moves_through_a_chain_and_an_await_without_a_copy() {
    let data = vec![7u8; 1 << 20];
    let ptr = data.as_ptr() as usize;
    let (moved_ptr, total) = run_async(async move {
        let w = Promise::<Unique>::with_resolvers();
        let (resolve, promise) = (w.resolve, w.promise);
        evloop::set_timeout(std::time::Duration::from_millis(1), move || {
            resolve(Unique { bytes: data })
        });
        let chained = promise.then(|u| Unique { bytes: u.bytes });
        let u = chained.await.expect("fulfilled");
        (u.bytes.as_ptr() as usize, u.bytes.len())
    })
    .unwrap();
    assert_eq!(total, 1 << 20);
    assert_eq!(moved_ptr, ptr, "the same buffer arrives: moved, not copied");
}

#[test]
fn all_and_race_take_values_that_are_not_clone() {
    let out = run_async(async {
        let a = spawn(async { Unique { bytes: vec![1] } });
        let b = spawn(async { Unique { bytes: vec![2, 2] } });
        let both = Promise::all([a, b]).await.expect("all");
        let first = Promise::race([spawn(async { Unique { bytes: vec![3; 3] } })])
            .await
            .expect("race");
        (
            both.iter().map(|u| u.bytes.len()).collect::<Vec<_>>(),
            first.bytes.len(),
        )
    })
    .unwrap();
    assert_eq!(out, (vec![1, 2], 3));
}

#[test]
fn a_rejected_promise_of_a_value_that_is_not_clone_is_still_reported() {
    let el = EventLoop::new().unwrap();
    let r = el.run_main(|| {
        let _ = Promise::<Unique>::reject(Rejection::msg("nobody handles this"));
    });
    match r {
        Err(evloop::Error::UnhandledRejection(e)) => {
            assert!(e.to_string().contains("nobody handles this"))
        }
        other => panic!("expected an unhandled rejection, got {other:?}"),
    }
}

/// Moving instead of copying changes no microtask: the same program over a
/// `Clone` value (`u32`) and over a non-`Clone` one logs the same order,
/// which is node's (`p.then(a)`, an await, a `queue_microtask`).
#[test]
fn moving_keeps_javascripts_timing() {
    fn program<T: 'static>(make: fn() -> T, log: &Log) {
        let l = log.clone();
        run(move || {
            let (l1, l2, l3) = (l.clone(), l.clone(), l.clone());
            Promise::resolve(make())
                .then(move |_| l1.push("then 1"))
                .then(move |()| l2.push("then 2"));
            spawn(async move {
                l3.push("task start");
                let _v = Promise::resolve(make()).await;
                l3.push("after await");
            });
            let l4 = l.clone();
            evloop::queue_microtask(move || l4.push("microtask"));
            l.push("sync");
        })
        .unwrap();
    }
    let cloned = Log::new();
    program(|| 5u32, &cloned);
    let moved = Log::new();
    program(|| Unique { bytes: vec![5] }, &moved);
    let (cloned, moved) = (cloned.take(), moved.take());
    assert_eq!(cloned, moved);
    // node 20 prints this order for the same program in JavaScript.
    let node = [
        "task start",
        "sync",
        "then 1",
        "after await",
        "microtask",
        "then 2",
    ];
    assert_eq!(moved, node);
}
