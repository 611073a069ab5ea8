//! Tasks woken one after the other share one poll microtask (the
//! executor's runs): the order must stay that of one microtask per task.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::task::Waker;

use evloop::promise::Promise;
use evloop::task::{spawn_handle, yield_now};
use evloop::{queue_microtask, spawn};
use support::{run_strict, Log};

/// Three tasks yielding twice, a microtask queued between the second and
/// the third.
fn yielding(l: &Log, n: u32) -> impl std::future::Future<Output = ()> + 'static {
    let l = l.clone();
    async move {
        l.push(format!("{n}a"));
        yield_now().await;
        l.push(format!("{n}b"));
        yield_now().await;
        l.push(format!("{n}c"));
    }
}

// const log = [];
// async function t(n){ log.push(n+'a'); await null; log.push(n+'b'); await null; log.push(n+'c'); }
// t(1); t(2); queueMicrotask(() => log.push('m')); t(3);
//
// node: 1a 2a 3a 1b 2b m 3b 1c 2c 3c
#[test]
fn tasks_woken_in_a_row_keep_one_hop_each() {
    let log = Log::new();
    let l = log.clone();
    run_strict(move || {
        drop(spawn(yielding(&l, 1)));
        drop(spawn(yielding(&l, 2)));
        let m = l.clone();
        queue_microtask(move || m.push("m"));
        drop(spawn(yielding(&l, 3)));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["1a", "2a", "3a", "1b", "2b", "m", "3b", "1c", "2c", "3c"]
    );
}

/// A task aborted while queued in a run is skipped; the rest of the run
/// is polled, in order.
#[test]
fn a_task_aborted_in_a_run_is_skipped() {
    let log = Log::new();
    let l = log.clone();
    run_strict(move || {
        drop(spawn(yielding(&l, 1)));
        let (p, h) = spawn_handle(yielding(&l, 2));
        p.catch(|_| ());
        drop(spawn(yielding(&l, 3)));
        h.abort();
    })
    .unwrap();
    assert_eq!(log.take(), ["1a", "2a", "3a", "1b", "3b", "1c", "3c"]);
}

/// Wakes from inside a run (one task waking another through a kept
/// waker) queue behind the run, as a microtask queued there would.
#[test]
fn a_wake_from_inside_a_run_goes_after_it() {
    let log = Log::new();
    let l = log.clone();
    let parked: Rc<RefCell<Option<Waker>>> = Rc::default();
    run_strict(move || {
        let w = parked.clone();
        let l2 = l.clone();
        drop(spawn(async move {
            let mut first = true;
            std::future::poll_fn(|cx| {
                if first {
                    first = false;
                    *w.borrow_mut() = Some(cx.waker().clone());
                    l2.push("parked");
                    std::task::Poll::Pending
                } else {
                    l2.push("unparked");
                    std::task::Poll::Ready(())
                }
            })
            .await;
        }));
        drop(spawn(yielding(&l, 1)));
        let w = parked.clone();
        let l3 = l.clone();
        drop(spawn(async move {
            yield_now().await;
            l3.push("waker");
            let waker = w.borrow_mut().take();
            waker.unwrap().wake();
            let m = l3.clone();
            queue_microtask(move || m.push("m"));
        }));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["parked", "1a", "1b", "waker", "1c", "unparked", "m"]
    );
}

/// As [`yielding`], awaiting promises that have already settled (resumes,
/// which share a microtask as polls do).
fn awaiting(l: &Log, n: u32) -> impl std::future::Future<Output = ()> + 'static {
    let l = l.clone();
    async move {
        l.push(format!("{n}a"));
        Promise::resolve(1).await.unwrap();
        l.push(format!("{n}b"));
        Promise::resolve(2).await.unwrap();
        l.push(format!("{n}c"));
    }
}

// async function w(n){ log.push(n+'a'); await 1; log.push(n+'b'); await 2; log.push(n+'c'); }
// (t as in the first test.)
// w(1); w(2); queueMicrotask(() => log.push('m')); t(3); w(4); w(5);
//
// node: 1a 2a 3a 4a 5a 1b 2b m 3b 4b 5b 1c 2c 3c 4c 5c
#[test]
fn resumes_in_a_row_and_mixed_with_polls_keep_one_hop_each() {
    let log = Log::new();
    let l = log.clone();
    run_strict(move || {
        drop(spawn(awaiting(&l, 1)));
        drop(spawn(awaiting(&l, 2)));
        let m = l.clone();
        queue_microtask(move || m.push("m"));
        drop(spawn(yielding(&l, 3)));
        drop(spawn(awaiting(&l, 4)));
        drop(spawn(awaiting(&l, 5)));
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "1a", "2a", "3a", "4a", "5a", "1b", "2b", "m", "3b", "4b", "5b", "1c", "2c", "3c",
            "4c", "5c"
        ]
    );
}
