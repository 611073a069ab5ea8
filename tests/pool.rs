//! The thread pool: `queue_work`, parallelism, panics, shutdown.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use evloop::{queue_work, EventLoop, HandleKind};

#[test]
fn done_runs_on_the_loop_thread_and_the_job_keeps_the_loop_alive() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    assert_eq!(el.threadpool_threads(), 0, "the pool must start lazily");
    let got = Rc::new(Cell::new(0u64));
    let loop_thread = std::thread::current().id();
    {
        let _g = el.enter();
        let got = got.clone();
        queue_work(
            move || {
                assert_ne!(std::thread::current().id(), loop_thread);
                std::thread::sleep(Duration::from_millis(20));
                (1..=20u64).product::<u64>()
            },
            move |r| {
                assert_eq!(std::thread::current().id(), loop_thread);
                got.set(r.unwrap());
            },
        );
    }
    assert_eq!(el.threadpool_threads(), evloop::DEFAULT_THREADPOOL_SIZE);
    assert!(el.is_alive(), "a job in flight keeps the loop alive");
    assert!(el
        .active_handles()
        .iter()
        .any(|h| h.kind == HandleKind::Request));
    el.run().unwrap();
    assert_eq!(got.get(), 2_432_902_008_176_640_000);
}

/// Four jobs meet at a rendezvous: each waits until all four are running at
/// once. On a serial pool they could never all arrive.
#[test]
fn jobs_run_in_parallel() {
    support::init_log();
    let arrived = Arc::new(AtomicUsize::new(0));
    let met = Rc::new(Cell::new(0));
    let m = met.clone();
    evloop::run(move || {
        for _ in 0..4 {
            let arrived = arrived.clone();
            let met = m.clone();
            queue_work(
                move || {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    let deadline = Instant::now() + Duration::from_secs(20);
                    while arrived.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
                        std::thread::yield_now();
                    }
                    arrived.load(Ordering::SeqCst) == 4
                },
                move |r| {
                    if r.unwrap() {
                        met.set(met.get() + 1);
                    }
                },
            );
        }
    })
    .unwrap();
    assert_eq!(
        met.get(),
        4,
        "the four jobs were not running at the same time"
    );
}

#[test]
fn a_panicking_job_reaches_done_as_an_error_and_the_pool_lives_on() {
    support::init_log();
    let log = support::Log::new();
    let l = log.clone();
    let el = EventLoop::new().unwrap();
    el.run_main(move || {
        let l2 = l.clone();
        queue_work(
            || -> u32 { panic!("kaboom") },
            move |r| {
                let e = r.unwrap_err();
                assert_eq!(e.kind(), std::io::ErrorKind::Other);
                assert!(e.to_string().contains("kaboom"), "{e}");
                l2.push("error");
                // The pool still works, from inside a done callback.
                let l3 = l2.clone();
                queue_work(|| 7, move |r| l3.push(format!("then {}", r.unwrap())));
            },
        );
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(log.take(), ["error", "then 7"]);
    assert_eq!(el.threadpool_threads(), evloop::DEFAULT_THREADPOOL_SIZE);
}

/// Dropping the loop discards jobs that have not started, waits for the
/// running ones, and never calls their `done`.
#[test]
fn dropping_the_loop_joins_the_pool_and_discards_pending_jobs() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let dones = Rc::new(Cell::new(0));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
    {
        let _g = el.enter();
        for _ in 0..20 {
            let (started, rx, dones) = (started.clone(), release_rx.clone(), dones.clone());
            queue_work(
                move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
                },
                move |_| dones.set(dones.get() + 1),
            );
        }
    }
    // Let the four workers pick up a job each, then release them while the
    // loop is being dropped.
    while started.load(Ordering::SeqCst) < 1 {
        std::thread::yield_now();
    }
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        drop(release_tx); // every recv returns at once from now on
    });
    let start = Instant::now();
    drop(el);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "joining the pool hung"
    );
    releaser.join().unwrap();
    assert!(
        started.load(Ordering::SeqCst) <= 4 + 4,
        "queued jobs ran after the loop was dropped"
    );
    assert_eq!(dones.get(), 0, "a done callback ran without its loop");
}

#[test]
fn many_jobs_all_complete_exactly_once() {
    support::init_log();
    let sum = Rc::new(RefCell::new(0u64));
    let s = sum.clone();
    evloop::run(move || {
        for i in 0..10_000u64 {
            let s = s.clone();
            queue_work(move || i * 2, move |r| *s.borrow_mut() += r.unwrap());
        }
    })
    .unwrap();
    assert_eq!(*sum.borrow(), 2 * (0..10_000u64).sum::<u64>());
}

#[test]
fn finished_results_are_bounded_while_the_loop_is_busy() {
    // One callback queues 5,000 jobs and then keeps the loop busy: the pool
    // may finish at most 1,024 (pool::MAX_UNDELIVERED) before the loop runs
    // their `done`s, so finished results cannot pile up without bound.
    support::init_log();
    const N: usize = 5_000;
    let started = Arc::new(AtomicUsize::new(0));
    let started_while_busy = Rc::new(Cell::new(usize::MAX));
    let done = Rc::new(RefCell::new(vec![0u8; N]));
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        for i in 0..N {
            let (started, done) = (started.clone(), done.clone());
            queue_work(
                move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    vec![0u8; 4096]
                },
                move |r| {
                    assert_eq!(r.unwrap().len(), 4096);
                    done.borrow_mut()[i] += 1;
                },
            );
        }
        // The loop is busy (not yet running): give the pool time to hit
        // the bound.
        std::thread::sleep(Duration::from_millis(300));
        started_while_busy.set(started.load(Ordering::SeqCst));
    }
    el.run().unwrap();
    let busy = started_while_busy.get();
    assert!(busy <= 1024, "{busy} jobs started while the loop was busy");
    assert_eq!(started.load(Ordering::SeqCst), N);
    assert!(
        done.borrow().iter().all(|&n| n == 1),
        "each done exactly once"
    );
}
