//! Task benchmarks: spawning and completing `async` tasks on evloop, side
//! by side with tokio's `LocalSet` + `spawn_local` (current-thread runtime)
//! in the same run.
//!
//! `cargo bench --bench task` (add `-- --quick` for 100,000 tasks instead
//! of 1,000,000). Figures are medians of 3 rounds, in ns per task; read the
//! ratios, since the machine is shared and noisy.
//! `-- --only trivial|await|yield|serial` runs one workload, evloop only
//! (to profile).
//!
//! Workloads:
//! 1. a trivial future (`async { 1 }`): evloop polls it at `spawn` and it
//!    completes there; tokio polls it from the `LocalSet`'s run queue;
//! 2. a task that suspends once: evloop `Promise::resolve(1).await` (one
//!    microtask hop, JavaScript's `await`), tokio `yield_now().await` (the
//!    nearest equivalent: one trip through its run queue);
//! 3. the same suspension on both sides: `yield_now().await` (evloop's
//!    wakes the task and is polled again from a microtask; tokio's goes
//!    through its run queue). Nothing is allocated besides the task, so
//!    this is the like-for-like memory figure (workload 2's evloop side
//!    also allocates the awaited promise);
//! 4. one at a time: one task spawns each of the `n` (with workload 2's
//!    body) and awaits it before the next: the steady state of a server,
//!    where finished tasks make room for new ones.
//!
//! Allocations per task are counted in separate, untimed rounds, for evloop
//! and tokio alike; for workloads 2 and 3, so is the peak heap per task
//! (all pending at once).
//!
//! The rounds alternate (evloop, tokio, evloop, ...), so a change in the
//! machine's load hits both alike. Besides wall time, the thread's CPU
//! time (user + system, from `CLOCK_THREAD_CPUTIME_ID`) is measured:
//! both runtimes run on this thread only, and CPU time does not count the
//! time another process had the CPU.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use evloop::promise::Promise;

/// Counts allocations while `COUNTING` is on.
struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);
/// Heap bytes allocated and not yet freed while counting, and their peak.
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grow(by: isize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged and only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            grow(l.size() as isize);
        }
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            grow(-(l.size() as isize));
        }
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            grow(new as isize - l.size() as isize);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    Trivial,
    Await,
    Yield,
    Serial,
}

/// evloop: spawn `n` tasks from the main callback and run the loop until
/// all completed; the time from before the first spawn to the loop's end.
fn evloop_tasks(n: usize, w: Work) -> Spent {
    let done = Rc::new(Cell::new(0usize));
    let start = Clock::start();
    evloop::run(|| {
        for _ in 0..n {
            let d = done.clone();
            match w {
                Work::Trivial => drop(evloop::spawn(async move {
                    d.set(d.get() + 1);
                })),
                Work::Await => drop(evloop::spawn(async move {
                    let v = Promise::resolve(1usize).await.unwrap();
                    d.set(d.get() + v);
                })),
                Work::Yield => drop(evloop::spawn(async move {
                    evloop::task::yield_now().await;
                    d.set(d.get() + 1);
                })),
                Work::Serial => {
                    drop(evloop::spawn(async move {
                        for _ in 0..n {
                            let v =
                                evloop::spawn(async { Promise::resolve(1usize).await.unwrap() })
                                    .await
                                    .unwrap();
                            d.set(d.get() + v);
                        }
                    }));
                    break;
                }
            }
        }
    })
    .unwrap();
    let t = start.elapsed();
    assert_eq!(done.get(), n, "a task did not complete");
    t
}

/// tokio: the same on a current-thread runtime with a `LocalSet`.
fn tokio_tasks(n: usize, w: Work) -> Spent {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let done = Rc::new(Cell::new(0usize));
    let start = Clock::start();
    let local = tokio::task::LocalSet::new();
    for _ in 0..n {
        let d = done.clone();
        match w {
            Work::Trivial => drop(local.spawn_local(async move {
                d.set(d.get() + 1);
            })),
            Work::Await | Work::Yield => drop(local.spawn_local(async move {
                tokio::task::yield_now().await;
                d.set(d.get() + 1);
            })),
            Work::Serial => {
                drop(local.spawn_local(async move {
                    for _ in 0..n {
                        tokio::task::spawn_local(async { tokio::task::yield_now().await })
                            .await
                            .unwrap();
                        d.set(d.get() + 1);
                    }
                }));
                break;
            }
        }
    }
    rt.block_on(local);
    let t = start.elapsed();
    assert_eq!(done.get(), n, "a task did not complete");
    t
}

#[path = "common/cpu.rs"]
mod cpu;
use cpu::thread_cpu;

/// Wall and CPU time of a timed span.
#[derive(Clone, Copy)]
struct Spent {
    wall: Duration,
    cpu: Duration,
}

/// Starts timing; `.elapsed()` on the result ends it.
struct Clock(Instant, Duration);

impl Clock {
    fn start() -> Self {
        Clock(Instant::now(), thread_cpu())
    }
    fn elapsed(&self) -> Spent {
        Spent {
            wall: self.0.elapsed(),
            cpu: thread_cpu().saturating_sub(self.1),
        }
    }
}

/// Medians of 3 rounds of `a` and of `b`, run alternately.
fn medians(a: impl Fn() -> Spent, b: impl Fn() -> Spent) -> (Spent, Spent) {
    let (mut va, mut vb) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        va.push(a());
        vb.push(b());
    }
    (median(va), median(vb))
}

fn median(v: Vec<Spent>) -> Spent {
    let mid = |mut d: Vec<Duration>| {
        d.sort();
        d[1]
    };
    Spent {
        wall: mid(v.iter().map(|s| s.wall).collect()),
        cpu: mid(v.iter().map(|s| s.cpu).collect()),
    }
}

/// Allocations per task while `n` tasks run through `f`; the runtime's own
/// allocations, counted alone (no task), are subtracted.
fn allocs_per_task(n: usize, f: impl Fn(usize) -> Spent) -> f64 {
    let count = |k: usize| {
        ALLOCS.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        f(k);
        COUNTING.store(false, Ordering::Relaxed);
        ALLOCS.load(Ordering::Relaxed)
    };
    let base = count(0);
    (count(n) - base) as f64 / n as f64
}

/// Peak heap bytes per task while `n` tasks run through `f` (blocks freed
/// during the run are not counted twice); the runtime's own peak with no
/// task is subtracted. For workload 2 all `n` tasks are pending at once, so
/// this is the memory per pending task.
fn peak_bytes_per_task(n: usize, f: impl Fn(usize) -> Spent) -> f64 {
    let peak = |k: usize| {
        LIVE.store(0, Ordering::Relaxed);
        PEAK.store(0, Ordering::Relaxed);
        COUNTING.store(true, Ordering::Relaxed);
        f(k);
        COUNTING.store(false, Ordering::Relaxed);
        PEAK.load(Ordering::Relaxed)
    };
    let base = peak(0);
    (peak(n) - base) as f64 / n as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let n = if quick { 100_000 } else { 1_000_000 };
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    println!("task: n = {n}, medians of 3 alternating rounds; ns per task spawned and completed\n");
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    for (i, (key, w, label)) in [
        ("trivial", Work::Trivial, "trivial future (async { .. })"),
        (
            "await",
            Work::Await,
            "suspends once (evloop: Promise::resolve(1).await; tokio: yield_now)",
        ),
        (
            "yield",
            Work::Yield,
            "suspends once, the same way (evloop and tokio: yield_now)",
        ),
        (
            "serial",
            Work::Serial,
            "one at a time: a task spawns the next (same body) and awaits it",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        if only.as_deref().is_some_and(|o| o != key) {
            continue;
        }
        println!("{}. {label}:", i + 1);
        if only.is_some() {
            let e = per(evloop_tasks(n, w).wall);
            println!("  evloop {e:8.1} ns");
            continue;
        }
        let (e, t) = medians(|| evloop_tasks(n, w), || tokio_tasks(n, w));
        let (ew, tw, ec, tc) = (per(e.wall), per(t.wall), per(e.cpu), per(t.cpu));
        println!(
            "  spawn + complete   evloop {ew:8.1} ns   tokio {tw:8.1} ns   tokio/evloop {:5.2}x",
            tw / ew
        );
        println!(
            "  cpu time           evloop {ec:8.1} ns   tokio {tc:8.1} ns   tokio/evloop {:5.2}x",
            tc / ec
        );
        let m = n.min(100_000);
        let ea = allocs_per_task(m, |k| evloop_tasks(k, w));
        let ta = allocs_per_task(m, |k| tokio_tasks(k, w));
        println!("  allocations/task   evloop {ea:8.2}      tokio {ta:8.2}");
        if matches!(w, Work::Await | Work::Yield) {
            let eb = peak_bytes_per_task(m, |k| evloop_tasks(k, w));
            let tb = peak_bytes_per_task(m, |k| tokio_tasks(k, w));
            println!(
                "  peak heap/task     evloop {eb:8.1} B    tokio {tb:8.1} B    tokio/evloop {:5.2}x   ({m} pending at once)",
                tb / eb
            );
        }
    }
}
