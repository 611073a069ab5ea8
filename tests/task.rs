//! async/await on the loop: ordering parity with Node 20 for `spawn` and
//! `promise.await`, cancellation, wakers across threads, `block_on`.
//!
//! Each ordering test carries the Node script whose output it reproduces
//! (`counter(n)` is the helper below); run it with `node` to see the same
//! lines. JavaScript's `await null` is `Promise::resolve(()).await` here.

mod support;

use std::cell::{Cell, RefCell};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use evloop::promise::{Promise, Rejection};
use evloop::task::{sleep, spawn_handle, spawn_try, timeout, yield_now, Elapsed};
use evloop::{block_on, next_tick, set_timeout, spawn, Error, EventLoop};
use support::{ms, run_strict, Log};

macro_rules! clone {
    ($($name:ident),+ => $closure:expr) => {{
        $(let $name = $name.clone();)+
        $closure
    }};
}

/// The scripts' `counter(n)`: a chain logging `c1` .. `cn`, one line per
/// microtask hop.
fn counter(l: &Log, n: u32) {
    let mut p = Promise::resolve(());
    for i in 1..=n {
        p = p.then(clone!(l => move |()| l.push(format!("c{i}"))));
    }
}

// function counter(n){ let p=Promise.resolve(); for(let i=1;i<=n;i++) p=p.then(()=>console.log('c'+i)); }
// const p = Promise.resolve(1);
// async function f(){ console.log('f1'); await null; console.log('f2'); await p; console.log('f3'); return 'r'; }
// counter(5);
// f().then(v => console.log('then ' + v));
// console.log('sync');
//
// node: f1 sync c1 f2 c2 f3 c3 then r c4 c5
#[test]
fn async_function_interleaves_with_then_chain() {
    let log = Log::new();
    let l = log.clone();
    run_strict(move || {
        let p = Promise::resolve(1);
        counter(&l, 5);
        spawn(clone!(l => async move {
            l.push("f1");
            Promise::resolve(()).await.unwrap();
            l.push("f2");
            assert_eq!(p.await.unwrap(), 1);
            l.push("f3");
            "r"
        }))
        .then(clone!(l => move |v| l.push(format!("then {v}"))));
        l.push("sync");
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["f1", "sync", "c1", "f2", "c2", "f3", "c3", "then r", "c4", "c5"]
    );
}

// let resolve; const q = new Promise(r => { resolve = r; });
// async function g(){ console.log('g1'); const v = await q; console.log('g2 ' + v); }
// async function h(){ console.log('h1'); await Promise.resolve(); console.log('h2');
//                     await Promise.resolve(); console.log('h3'); }
// counter(4);
// g();
// h();
// Promise.resolve().then(() => { console.log('resolve q'); resolve(7); });
// console.log('sync');
//
// node: g1 h1 sync c1 h2 'resolve q' c2 h3 'g2 7' c3 c4
#[test]
fn await_pending_and_already_settled_promises() {
    let log = Log::new();
    let l = log.clone();
    run_strict(move || {
        let q = Promise::<i32>::with_resolvers();
        counter(&l, 4);
        let qp = q.promise.clone();
        spawn(clone!(l => async move {
            l.push("g1");
            let v = qp.await.unwrap();
            l.push(format!("g2 {v}"));
        }));
        spawn(clone!(l => async move {
            l.push("h1");
            Promise::resolve(()).await.unwrap();
            l.push("h2");
            Promise::resolve(()).await.unwrap();
            l.push("h3");
        }));
        let resolve = q.resolve;
        Promise::resolve(()).then(clone!(l => move |()| {
            l.push("resolve q");
            resolve(7);
        }));
        l.push("sync");
    })
    .unwrap();
    assert_eq!(
        log.take(),
        [
            "g1",
            "h1",
            "sync",
            "c1",
            "h2",
            "resolve q",
            "c2",
            "h3",
            "g2 7",
            "c3",
            "c4"
        ]
    );
}

// async function bad(){ console.log('bad1'); await null; throw new Error('boom'); }
// async function outer(){ try { await bad(); } catch (e) { console.log('caught ' + e.message); } }
// counter(4);
// outer();
// bad().catch(e => console.log('catch ' + e.message));
// console.log('sync');
//
// node: bad1 bad1 sync c1 c2 'caught boom' 'catch boom' c3 c4
fn throw_inside_async(l: Log, bad: fn(Log) -> Promise<()>) {
    counter(&l, 4);
    spawn(clone!(l => async move {
        if let Err(e) = bad(l.clone()).await {
            l.push(format!("caught {}", e.message()));
        }
    }));
    bad(l.clone()).catch(clone!(l => move |e| l.push(format!("catch {}", e.message()))));
    l.push("sync");
}

const THROW_ORDER: [&str; 9] = [
    "bad1",
    "bad1",
    "sync",
    "c1",
    "c2",
    "caught boom",
    "catch boom",
    "c3",
    "c4",
];

#[test]
fn returning_err_rejects_like_throw() {
    fn bad(l: Log) -> Promise<()> {
        spawn_try(async move {
            l.push("bad1");
            Promise::resolve(()).await?;
            Err(Rejection::msg("boom"))
        })
    }
    let log = Log::new();
    let l = log.clone();
    run_strict(move || throw_inside_async(l, bad)).unwrap();
    assert_eq!(log.take(), THROW_ORDER);
}

#[test]
fn panic_rejects_like_throw() {
    fn bad(l: Log) -> Promise<()> {
        spawn(async move {
            l.push("bad1");
            Promise::resolve(()).await.unwrap();
            std::panic::panic_any("boom".to_string());
        })
    }
    let log = Log::new();
    let l = log.clone();
    run_strict(move || throw_inside_async(l, bad)).unwrap();
    let got = log.take();
    // A panic's message is "panicked: boom".
    let got: Vec<String> = got.iter().map(|s| s.replace("panicked: ", "")).collect();
    assert_eq!(got, THROW_ORDER);
}

#[test]
fn panic_in_first_poll_rejects_with_the_panic() {
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    run_strict(move || {
        let p: Promise<()> = spawn(async { panic!("at once") });
        p.catch(move |e| {
            assert!(e.is_panic());
            assert_eq!(e.as_panic().unwrap().message(), "at once");
            s.set(true);
        });
    })
    .unwrap();
    assert!(seen.get());
}

// async function inner(){ console.log('i1'); await null; console.log('i2'); return 5; }
// async function outer(){ console.log('o1'); const v = await inner(); console.log('o2 ' + v); }
// counter(5);
// outer();
// console.log('sync');
//
// node: o1 i1 sync c1 i2 c2 'o2 5' c3 c4 c5
#[test]
fn task_awaits_another_task() {
    let log = Log::new();
    let l = log.clone();
    run_strict(move || {
        counter(&l, 5);
        spawn(clone!(l => async move {
            l.push("o1");
            let v = spawn(clone!(l => async move {
                l.push("i1");
                Promise::resolve(()).await.unwrap();
                l.push("i2");
                5
            }))
            .await
            .unwrap();
            l.push(format!("o2 {v}"));
        }));
        l.push("sync");
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["o1", "i1", "sync", "c1", "i2", "c2", "o2 5", "c3", "c4", "c5"]
    );
}

// async function y(){ console.log('y1'); await null; console.log('y2'); await null; console.log('y3'); }
// counter(3);
// y();
// process.nextTick(() => console.log('tick'));
// console.log('sync');
//
// node: y1 sync tick c1 y2 c2 y3 c3
#[test]
fn yield_now_is_one_microtask_hop() {
    let log = Log::new();
    let l = log.clone();
    run_strict(move || {
        counter(&l, 3);
        spawn(clone!(l => async move {
            l.push("y1");
            yield_now().await;
            l.push("y2");
            yield_now().await;
            l.push("y3");
        }));
        next_tick(clone!(l => move || l.push("tick")));
        l.push("sync");
    })
    .unwrap();
    assert_eq!(
        log.take(),
        ["y1", "sync", "tick", "c1", "y2", "c2", "y3", "c3"]
    );
}

#[test]
fn finished_task_frees_its_slot() {
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let p = spawn(async {
        sleep(ms(2)).await;
        3
    });
    assert_eq!(el.tasks(), 1);
    assert_eq!(el.active_handles().len(), 1, "the sleep's timer");
    el.run().unwrap();
    assert_eq!(p.peek().unwrap().unwrap(), 3);
    assert_eq!(el.tasks(), 0);
    assert!(el.active_handles().is_empty());
}

#[test]
fn abort_drops_the_future_and_clears_its_timer() {
    struct OnDrop(Rc<Cell<bool>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let dropped = Rc::new(Cell::new(false));
    let guard = OnDrop(dropped.clone());
    let (p, handle) = spawn_handle(async move {
        let _guard = guard;
        sleep(Duration::from_secs(3600)).await;
    });
    assert_eq!(el.tasks(), 1);
    assert_eq!(el.active_handles().len(), 1);
    assert!(!handle.is_finished());
    handle.abort();
    assert!(dropped.get(), "the future is dropped at once");
    assert_eq!(el.tasks(), 0);
    assert!(el.active_handles().is_empty(), "its timer is cleared");
    assert!(handle.is_finished());
    let e = p.peek().unwrap().unwrap_err();
    assert!(e.is_aborted(), "{e:?}");
    handle.abort(); // twice: harmless
                    // Not reported unhandled, even in strict mode; and the loop has
                    // nothing left, so run returns at once.
    el.set_unhandled_rejections(evloop::promise::UnhandledRejections::Strict);
    let t = Instant::now();
    el.run().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn abort_from_inside_its_own_poll() {
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let slot: Rc<RefCell<Option<evloop::task::AbortHandle>>> = Rc::default();
    let s = slot.clone();
    let (p, handle) = spawn_handle(async move {
        Promise::resolve(()).await.unwrap();
        s.borrow().as_ref().unwrap().abort();
        sleep(Duration::from_secs(3600)).await;
        unreachable!("aborted");
    });
    *slot.borrow_mut() = Some(handle);
    el.run().unwrap();
    assert!(p.peek().unwrap().unwrap_err().is_aborted());
    assert_eq!(el.tasks(), 0);
    assert!(el.active_handles().is_empty());
}

#[test]
fn timeout_elapses_and_drops_the_inner_future() {
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let t = Instant::now();
    let r = block_on(async { timeout(ms(10), sleep(Duration::from_secs(3600))).await }).unwrap();
    assert_eq!(r, Err(Elapsed));
    assert!(t.elapsed() >= ms(10));
    assert!(
        el.active_handles().is_empty(),
        "the hour-long timer is gone"
    );
    assert_eq!(el.tasks(), 0);
    // In time: the value, and the timeout's own timer is cleared.
    let r = block_on(async { timeout(Duration::from_secs(3600), Promise::resolve(4)).await });
    assert_eq!(r.unwrap().unwrap().unwrap(), 4);
    assert!(el.active_handles().is_empty());
}

#[test]
fn sleep_waits_and_sleep_until_past_is_quick() {
    let t = Instant::now();
    block_on(sleep(ms(20))).unwrap();
    assert!(t.elapsed() >= ms(20));
    let t = Instant::now();
    block_on(evloop::task::sleep_until(Instant::now() - ms(5))).unwrap();
    assert!(t.elapsed() < Duration::from_secs(1));
}

// const {setTimeout: sleep} = require('timers/promises');
// setTimeout(() => console.log('t1'), 5);
// (async () => { await sleep(5); console.log('s'); })();
// setTimeout(() => console.log('t2'), 5);
//
// node: t1 s t2 (the sleep's timer was set between the two; its task
// resumes in the checkpoint right after that timer's callback)
#[test]
fn sleep_resumes_in_timer_order() {
    let log = Log::new();
    let l = log.clone();
    run_strict(move || {
        set_timeout(ms(5), l.rec("t1"));
        spawn(clone!(l => async move {
            sleep(ms(5)).await;
            l.push("s");
        }));
        set_timeout(ms(5), l.rec("t2"));
    })
    .unwrap();
    assert_eq!(log.take(), ["t1", "s", "t2"]);
}

#[test]
fn elapsed_converts_for_spawn_try() {
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    run_strict(move || {
        let p: Promise<()> = spawn_try(async {
            timeout(ms(1), sleep(Duration::from_secs(3600))).await?;
            Ok::<_, Rejection>(())
        });
        p.catch(move |e| {
            assert!(e.downcast_ref::<Elapsed>().is_some(), "{e:?}");
            s.set(true);
        });
    })
    .unwrap();
    assert!(seen.get());
}

/// A future that completes once `count` reaches `target`; on its first poll
/// it starts `threads` threads that each bump the count and wake it `per`
/// times.
struct Counting {
    count: Arc<AtomicUsize>,
    target: usize,
    threads: usize,
    per: usize,
    joins: Vec<std::thread::JoinHandle<()>>,
    polls: Rc<Cell<usize>>,
}

impl Future for Counting {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls.set(self.polls.get() + 1);
        if self.joins.is_empty() {
            for _ in 0..self.threads {
                let (count, waker, per) = (self.count.clone(), cx.waker().clone(), self.per);
                self.joins.push(std::thread::spawn(move || {
                    for _ in 0..per {
                        count.fetch_add(1, Ordering::Relaxed);
                        waker.wake_by_ref();
                    }
                }));
            }
            // Always wait for a wake: on a loaded machine the threads may
            // finish every increment before this poll reads the count,
            // and the test is about wakes reaching the task.
            return Poll::Pending;
        }
        let n = self.count.load(Ordering::Relaxed);
        if n >= self.target {
            for j in self.joins.drain(..) {
                j.join().unwrap();
            }
            Poll::Ready(n)
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn cross_thread_wakes_4_threads_100k_each() {
    const THREADS: usize = 4;
    const PER: usize = 100_000;
    let done = Rc::new(Cell::new(0));
    let polls = Rc::new(Cell::new(0));
    let (d, pl) = (done.clone(), polls.clone());
    let t = Instant::now();
    run_strict(move || {
        // The wakes keep nothing alive by themselves: hold the loop open.
        let keep = set_timeout(Duration::from_secs(3600), || {});
        let fut = Counting {
            count: Arc::default(),
            target: THREADS * PER,
            threads: THREADS,
            per: PER,
            joins: Vec::new(),
            polls: pl,
        };
        spawn(fut).then(move |n| {
            d.set(n);
            keep.clear();
        });
    })
    .unwrap();
    assert_eq!(done.get(), THREADS * PER, "every wake delivered");
    // Coalesced: far fewer polls than wakes, but at least one delivered
    // (the first poll always returns Pending).
    assert!(polls.get() >= 2, "{}", polls.get());
    assert!(t.elapsed() < Duration::from_secs(60));
}

/// A waker that counts its wakes (a foreign executor's).
struct CountWaker(AtomicUsize);

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn promise_future_under_a_foreign_executor() {
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let counter = Arc::new(CountWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mut f = Promise::resolve(5).into_future();
    assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
    assert_eq!(counter.0.load(Ordering::SeqCst), 0, "one hop, not sync");
    el.run().unwrap(); // drains the microtask
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    match Pin::new(&mut f).poll(&mut cx) {
        Poll::Ready(Ok(5)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn wake_after_finish_and_after_loop_drop_is_harmless() {
    let stash: Rc<RefCell<Option<Waker>>> = Rc::default();
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let s = stash.clone();
        spawn(std::future::poll_fn(move |cx| {
            *s.borrow_mut() = Some(cx.waker().clone());
            Poll::Ready(())
        }));
        assert_eq!(el.tasks(), 0);
        // Finished task, loop current: ignored.
        stash.borrow().as_ref().unwrap().wake_by_ref();
        el.run().unwrap();
        assert_eq!(el.tasks(), 0);
    }
    drop(el);
    let w = stash.borrow_mut().take().unwrap();
    w.wake_by_ref(); // same thread, loop gone
    std::thread::spawn(move || w.wake()).join().unwrap(); // other thread
}

#[test]
fn pending_task_is_dropped_with_its_loop() {
    struct OnDrop(Rc<Cell<bool>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let guard = OnDrop(dropped.clone());
        spawn(async move {
            let _guard = guard;
            sleep(Duration::from_secs(3600)).await;
        });
    }
    assert!(!dropped.get());
    drop(el);
    assert!(dropped.get());
}

#[test]
fn block_on_returns_the_value() {
    let v = block_on(async {
        let a = Promise::resolve(40).await.unwrap();
        sleep(ms(1)).await;
        let b = spawn(async { 2 }).await.unwrap();
        a + b
    })
    .unwrap();
    assert_eq!(v, 42);
    // Output need not be Clone.
    struct NotClone(u8);
    assert_eq!(block_on(async { NotClone(7) }).unwrap().0, 7);
}

#[test]
fn block_on_stalls_on_a_promise_that_never_settles() {
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    let q = Promise::<()>::with_resolvers();
    let p = q.promise.clone();
    let r = block_on(async move { p.await });
    assert!(matches!(r, Err(Error::Stalled)), "{r:?}");
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("nothing keeps the loop alive"));
    assert_eq!(el.tasks(), 0, "the stalled task is dropped");
    drop(q);
}

#[test]
fn block_on_reports_a_panic() {
    let r = block_on(async {
        Promise::resolve(()).await.unwrap();
        panic!("in block_on");
    });
    match r {
        Err(Error::Panicked(p)) => assert_eq!(p.message(), "in block_on"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn block_on_uses_the_current_idle_loop_else_a_fresh_one() {
    let log = Log::new();
    let el = EventLoop::new().unwrap();
    let _g = el.enter();
    set_timeout(ms(1), log.rec("timer on the current loop"));
    block_on(sleep(ms(5))).unwrap();
    assert_eq!(log.take(), ["timer on the current loop"]);
    // Inside a callback of a running loop: a fresh loop, no Reentrant error.
    let l = log.clone();
    set_timeout(ms(1), move || {
        let v = block_on(async {
            sleep(ms(1)).await;
            9
        })
        .unwrap();
        l.push(format!("nested {v}"));
    });
    el.run().unwrap();
    assert_eq!(log.take(), ["nested 9"]);
}
