//! Loop-core benchmarks: evloop side by side with tokio's current-thread
//! runtime (and Node, when `node` is on the PATH), in the same run.
//!
//! `cargo bench --bench loop_core` (add `-- --quick` for 100,000 instead
//! of 1,000,000 items). Figures are medians of 3 rounds; what matters are
//! the ratios, since the machine is shared and noisy.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
#[path = "common/cpu.rs"]
mod cpu;
use counting_alloc::live;
use cpu::{minor_faults, thread_cpu};

/// Deterministic delays within 1 s (xorshift).
fn delays(n: usize) -> Vec<Duration> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_micros(1 + x % 999_999)
        })
        .collect()
}

/// Arms per timed batch.
const BATCH: usize = 1000;

/// Times `f` over `n` items in batches of `BATCH` (`f` gets the range);
/// returns (median, mean) nanoseconds per item.
fn batched(n: usize, mut f: impl FnMut(std::ops::Range<usize>)) -> (f64, f64) {
    let mut per_item = Vec::with_capacity(n / BATCH + 1);
    let start = Instant::now();
    for lo in (0..n).step_by(BATCH) {
        let hi = (lo + BATCH).min(n);
        let t = Instant::now();
        f(lo..hi);
        per_item.push(t.elapsed().as_nanos() as f64 / (hi - lo) as f64);
    }
    let mean = start.elapsed().as_nanos() as f64 / n as f64;
    per_item.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (per_item[per_item.len() / 2], mean)
}

/// What a round of arms is measured by besides its wall time: the thread's
/// CPU time, its page faults and the live heap, read before the round.
struct Meter {
    cpu: Duration,
    faults: u64,
    live: isize,
}

impl Meter {
    fn start() -> Meter {
        Meter {
            live: live(),
            faults: minor_faults(),
            cpu: thread_cpu(),
        }
    }

    /// Fills in `f`'s CPU, faults and bytes per item for `n` items.
    fn finish(&self, f: &mut TimerFigures, n: usize) {
        f.arm_cpu_ns = thread_cpu().saturating_sub(self.cpu).as_nanos() as f64 / n as f64;
        f.faults_per_k = (minor_faults() - self.faults) as f64 * 1000.0 / n as f64;
        f.bytes = (live() - self.live) as f64 / n as f64;
    }
}

#[derive(Clone, Copy, Default)]
struct TimerFigures {
    /// Nanoseconds to arm one timer: the median over batches of `BATCH`
    /// arms, so that a batch the scheduler preempted (this machine is
    /// shared) does not move the figure.
    arm_ns: f64,
    /// The mean over all arms.
    arm_mean_ns: f64,
    /// The same in this thread's CPU time: what the wall time is when no
    /// other process takes the CPU (this machine is shared).
    arm_cpu_ns: f64,
    /// Minor page faults per 1000 arms: memory the kernel handed over for
    /// the first time (each costs microseconds on a VM).
    faults_per_k: f64,
    /// Live heap bytes per pending timer (handle dropped / task detached).
    bytes: f64,
    /// Wall time from the first arm to the last callback.
    total: Duration,
    /// How late the last timer fired after its deadline.
    last_late: Duration,
    fired: usize,
}

fn evloop_timers(n: usize, cancel_half: bool) -> (TimerFigures, TimerFigures, TimerFigures) {
    let el = evloop::EventLoop::new().unwrap();
    // Round 1 arms into a fresh loop (slab and heap grow, pages fault in);
    // round 2 into the same loop. The store gives its memory back when it
    // empties (above 1024 slots), so round 2 grows it again too: what
    // differs is the allocator's state (before callbacks were stored
    // inline, 100,000 boxes freed in deadline order made round 2 slower).
    let cold = evloop_timer_round(&el, n, cancel_half);
    let warm = evloop_timer_round(&el, n, cancel_half);
    // Steady state, as on a server: a long (unref'd) timer stays pending,
    // so the store never empties and keeps its memory; the second round on
    // that loop arms into slots and pages the first round left.
    let el = evloop::EventLoop::new().unwrap();
    let sentinel = {
        let _g = el.enter();
        evloop::set_timeout(Duration::from_secs(3600), || {})
    };
    sentinel.unref();
    evloop_timer_round(&el, n, cancel_half);
    let steady = evloop_timer_round(&el, n, cancel_half);
    {
        let _g = el.enter();
        sentinel.clear();
    }
    (cold, warm, steady)
}

fn evloop_timer_round(el: &evloop::EventLoop, n: usize, cancel_half: bool) -> TimerFigures {
    let delays = delays(n);
    let (imax, max) = delays.iter().enumerate().max_by_key(|(_, d)| **d).unwrap();
    let max = *max;
    let fired = Rc::new(Cell::new(0usize));
    let last = Rc::new(Cell::new(Instant::now()));
    let mut f = TimerFigures::default();
    let g = el.enter();
    let mut handles = Vec::with_capacity(if cancel_half { n } else { 0 });
    let meter = Meter::start();
    let start = Instant::now();
    let mut max_armed_at = start;
    (f.arm_ns, f.arm_mean_ns) = batched(n, |range| {
        if let Some(at) = evloop_arm_all(
            &delays,
            range,
            imax,
            &fired,
            &last,
            &mut handles,
            cancel_half,
        ) {
            max_armed_at = at;
        }
    });
    meter.finish(&mut f, n);
    if cancel_half {
        // (The bench's own vector of handles was allocated before `base`:
        // it is not in `bytes`. It used to be subtracted as well, which
        // understated this row by 16 B.)
        // Cancel every other one, keeping the max-delay timer armed.
        for (i, t) in handles.iter().enumerate() {
            if i % 2 == 1 - imax % 2 {
                t.clear();
            }
        }
        drop(handles);
    }
    drop(g);
    el.run().unwrap();
    f.total = start.elapsed();
    f.last_late = last.get().saturating_duration_since(max_armed_at + max);
    f.fired = fired.get();
    f
}

/// The timed loop: arms one timer per delay in `range`; returns when the
/// one at `imax` was armed, if it was in the range. Not inlined, so that a
/// profiler can count it alone
/// (`valgrind --tool=callgrind --toggle-collect='*evloop_arm_all*'`).
#[inline(never)]
fn evloop_arm_all(
    delays: &[Duration],
    range: std::ops::Range<usize>,
    imax: usize,
    fired: &Rc<Cell<usize>>,
    last: &Rc<Cell<Instant>>,
    handles: &mut Vec<evloop::Timeout>,
    keep_handles: bool,
) -> Option<Instant> {
    let mut max_armed_at = None;
    for i in range {
        if i == imax {
            max_armed_at = Some(Instant::now());
        }
        let (fired, last) = (fired.clone(), last.clone());
        let t = evloop::set_timeout(delays[i], move || {
            fired.set(fired.get() + 1);
            last.set(Instant::now());
        });
        if keep_handles {
            handles.push(t);
        }
    }
    max_armed_at
}

/// Tokio's rounds: into a fresh runtime, then (steady) a second round
/// into the same runtime, as evloop's steady row (a long sleeping task
/// stays pending through both).
fn tokio_timers(n: usize, cancel_half: bool) -> (TimerFigures, TimerFigures) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let sentinel = tokio::task::spawn_local(tokio::time::sleep(Duration::from_secs(3600)));
        let fresh = tokio_timer_round(n, cancel_half).await;
        let steady = tokio_timer_round(n, cancel_half).await;
        sentinel.abort();
        (fresh, steady)
    })
}

async fn tokio_timer_round(n: usize, cancel_half: bool) -> TimerFigures {
    let delays = delays(n);
    let (imax, max) = delays.iter().enumerate().max_by_key(|(_, d)| **d).unwrap();
    let max = *max;
    let fired = Rc::new(Cell::new(0usize));
    let last = Rc::new(Cell::new(Instant::now()));
    let mut f = TimerFigures::default();
    let mut handles = Vec::with_capacity(if cancel_half { n } else { 0 });
    let mut max_armed_at = Instant::now();
    let meter = Meter::start();
    let start = Instant::now();
    (f.arm_ns, f.arm_mean_ns) = batched(n, |range| {
        for i in range {
            if i == imax {
                max_armed_at = Instant::now();
            }
            let (fired, last, d) = (fired.clone(), last.clone(), delays[i]);
            let h = tokio::task::spawn_local(async move {
                tokio::time::sleep(d).await;
                fired.set(fired.get() + 1);
                last.set(Instant::now());
            });
            if cancel_half {
                handles.push(h);
            }
        }
    });
    meter.finish(&mut f, n);
    if cancel_half {
        // The vector of handles predates `base`: not in `bytes`.
        for (i, h) in handles.iter().enumerate() {
            if i % 2 == 1 - imax % 2 {
                h.abort();
            }
        }
        drop(handles);
    }
    // Wait for every task, as evloop's run() does.
    let want = if cancel_half { n - n / 2 } else { n };
    while fired.get() < want {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    f.total = start.elapsed();
    f.last_late = last.get().saturating_duration_since(max_armed_at + max);
    f.fired = fired.get();
    f
}

/// 1,000,000 `set_immediate`s queued from main, then run.
fn evloop_immediates(n: usize) -> Duration {
    let el = evloop::EventLoop::new().unwrap();
    let count = Rc::new(Cell::new(0usize));
    let start = Instant::now();
    {
        let _g = el.enter();
        for _ in 0..n {
            let c = count.clone();
            let _ = evloop::set_immediate(move || c.set(c.get() + 1));
        }
    }
    el.run().unwrap();
    assert_eq!(count.get(), n);
    start.elapsed()
}

/// The tokio analogue: 1,000,000 tasks spawned, then run.
fn tokio_spawns(n: usize) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let count = Rc::new(Cell::new(0usize));
    let start = Instant::now();
    local.block_on(&rt, async {
        for _ in 0..n {
            let c = count.clone();
            tokio::task::spawn_local(async move { c.set(c.get() + 1) });
        }
        while count.get() < n {
            tokio::task::yield_now().await;
        }
    });
    start.elapsed()
}

/// A chain of 1,000,000 microtasks, each queuing the next: the cost of one
/// hop (queue, pop, call), with no syscall.
fn evloop_microtask_chain(n: usize) -> Duration {
    fn hop(left: usize, done: Rc<Cell<bool>>) {
        if left == 0 {
            done.set(true);
        } else {
            evloop::queue_microtask(move || hop(left - 1, done));
        }
    }
    let done = Rc::new(Cell::new(false));
    let d = done.clone();
    let start = Instant::now();
    evloop::run(move || hop(n, d)).unwrap();
    assert!(done.get());
    start.elapsed()
}

/// The tokio analogue of a microtask hop: a task yielding 1,000,000 times
/// (a trip through the scheduler's run queue).
fn tokio_yield_chain(n: usize) -> Duration {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let start = Instant::now();
    rt.block_on(async {
        for _ in 0..n {
            tokio::task::yield_now().await;
        }
    });
    start.elapsed()
}

fn median<T: Copy>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    v.sort_by(|a, b| key(a).partial_cmp(&key(b)).unwrap());
    v[v.len() / 2]
}

fn rounds<T: Copy>(f: impl Fn() -> T, key: impl Fn(&T) -> f64) -> T {
    median((0..3).map(|_| f()).collect(), key)
}

fn node(script: &str, n: usize) -> Option<String> {
    let out = std::process::Command::new("node")
        .arg(format!(
            "{}/benches/node/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(n.to_string())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 100_000 } else { 1_000_000 };
    if std::env::args().any(|a| a == "--timers-only") {
        // For profilers and repeated runs: evloop's timer rounds alone.
        for cancel in [false, true] {
            let (e, ew, es) = evloop_timers(n, cancel);
            println!(
                "evloop timers{}: arm {:.1} ns (mean {:.1}, CPU {:.1}, {:.1} faults/1000), warm {:.1} ns (mean {:.1}, CPU {:.1}, {:.1} faults/1000), steady {:.1} ns (mean {:.1}, CPU {:.1}, {:.1} faults/1000), {:.1} B per pending timer",
                if cancel { ", half cancelled" } else { "" },
                e.arm_ns,
                e.arm_mean_ns,
                e.arm_cpu_ns,
                e.faults_per_k,
                ew.arm_ns,
                ew.arm_mean_ns,
                ew.arm_cpu_ns,
                ew.faults_per_k,
                es.arm_ns,
                es.arm_mean_ns,
                es.arm_cpu_ns,
                es.faults_per_k,
                e.bytes
            );
        }
        return;
    }
    println!(
        "loop_core: n = {n}, medians of 3 rounds (the timer rounds alternate evloop, tokio)\n"
    );

    for (name, cancel) in [("timers", false), ("timers, half cancelled", true)] {
        // Each row is the median of its own three rounds (by the mean arm time).
        // Rounds alternate (evloop, tokio, evloop, ...), so that a change in
        // the machine's speed (it is shared) hits both alike.
        let (mut triples, mut tokio_pairs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            triples.push(evloop_timers(n, cancel));
            tokio_pairs.push(tokio_timers(n, cancel));
        }
        let e = median(triples.iter().map(|t| t.0).collect(), |f| f.arm_mean_ns);
        let ew = median(triples.iter().map(|t| t.1).collect(), |f| f.arm_mean_ns);
        let es = median(triples.iter().map(|t| t.2).collect(), |f| f.arm_mean_ns);
        let t = median(tokio_pairs.iter().map(|p| p.0).collect(), |f| f.arm_mean_ns);
        let ts = median(tokio_pairs.iter().map(|p| p.1).collect(), |f| f.arm_mean_ns);
        let want = if cancel { n - n / 2 } else { n };
        for (a, b, c) in &triples {
            for f in [a, b, c] {
                assert_eq!(f.fired, want, "evloop fired the wrong number of timers");
            }
        }
        for (a, b) in &tokio_pairs {
            for f in [a, b] {
                assert_eq!(f.fired, want, "tokio fired the wrong number of timers");
            }
        }
        println!("{name} ({n} random deadlines within 1 s):");
        println!(
            "  arm:       evloop {:7.1} ns   tokio {:7.1} ns   ratio tokio/evloop {:5.2}x   (fresh loop; median of {BATCH}-arm batches; page faults per 1000 arms: evloop {:.1}, tokio {:.1})",
            e.arm_ns,
            t.arm_ns,
            t.arm_ns / e.arm_ns,
            e.faults_per_k,
            t.faults_per_k
        );
        println!(
            "  arm, mean: evloop {:7.1} ns   tokio {:7.1} ns   ratio tokio/evloop {:5.2}x   (fresh loop; all arms, preempted batches included)",
            e.arm_mean_ns,
            t.arm_mean_ns,
            t.arm_mean_ns / e.arm_mean_ns
        );
        println!(
            "  arm CPU:   evloop {:7.1} ns   tokio {:7.1} ns   ratio tokio/evloop {:5.2}x   (thread CPU time, fresh loop)",
            e.arm_cpu_ns,
            t.arm_cpu_ns,
            t.arm_cpu_ns / e.arm_cpu_ns
        );
        println!(
            "  arm, warm: evloop {:7.1} ns   mean {:7.1} ns   CPU {:7.1} ns   (second round on the same loop, after the store emptied; {:.1} faults per 1000)",
            ew.arm_ns, ew.arm_mean_ns, ew.arm_cpu_ns, ew.faults_per_k
        );
        println!(
            "  steady:    evloop {:7.1} ns   mean {:7.1} ns   CPU {:7.1} ns   (a long timer stays pending, so the store keeps its memory, as on a server; {:.1} faults per 1000)",
            es.arm_ns, es.arm_mean_ns, es.arm_cpu_ns, es.faults_per_k
        );
        println!(
            "  steady, means: evloop {:7.1} ns   tokio {:7.1} ns   ratio tokio/evloop {:5.2}x   (second round into the same runtime; page faults per 1000 arms: evloop {:.1}, tokio {:.1})",
            es.arm_mean_ns,
            ts.arm_mean_ns,
            ts.arm_mean_ns / es.arm_mean_ns,
            es.faults_per_k,
            ts.faults_per_k
        );
        println!(
            "  memory:    evloop {:7.1} B    tokio {:7.1} B    per pending timer (closure included)",
            e.bytes, t.bytes
        );
        println!(
            "  all fired: evloop {:7.1?}   tokio {:7.1?}   last one late by evloop {:?}, tokio {:?}",
            e.total, t.total, e.last_late, t.last_late
        );
        println!(
            "  structure: {} B per pending evloop timer (slot + heap entry + position; closures of up to 16 B inline)",
            evloop::TIMER_OVERHEAD_BYTES
        );
    }

    let e = rounds(|| evloop_immediates(n), |d| d.as_secs_f64());
    let t = rounds(|| tokio_spawns(n), |d| d.as_secs_f64());
    println!("\n{n} set_immediate (evloop) vs spawn_local of a trivial task (tokio):");
    println!(
        "  per item:  evloop {:7.1} ns   tokio {:7.1} ns   ratio tokio/evloop {:5.2}x",
        e.as_nanos() as f64 / n as f64,
        t.as_nanos() as f64 / n as f64,
        t.as_secs_f64() / e.as_secs_f64()
    );

    let e = rounds(|| evloop_microtask_chain(n), |d| d.as_secs_f64());
    let t = rounds(|| tokio_yield_chain(n), |d| d.as_secs_f64());
    println!("\n{n} chained microtask hops (evloop) vs yield_now (tokio):");
    println!(
        "  per hop:   evloop {:7.1} ns   tokio {:7.1} ns   ratio tokio/evloop {:5.2}x",
        e.as_nanos() as f64 / n as f64,
        t.as_nanos() as f64 / n as f64,
        t.as_secs_f64() / e.as_secs_f64()
    );

    // The timeline (evloop::trace): off is the figures above (each hook is
    // one relaxed load); on, every callback and checkpoint is an event.
    let trace_file = std::env::temp_dir().join(format!("evloop-bench-{}.json", std::process::id()));
    let off = rounds(|| evloop_immediates(n / 10), |d| d.as_secs_f64());
    evloop::trace::start(&trace_file).unwrap();
    let on = rounds(|| evloop_immediates(n / 10), |d| d.as_secs_f64());
    evloop::trace::stop().unwrap();
    let bytes = std::fs::metadata(&trace_file).map_or(0, |m| m.len());
    let _ = std::fs::remove_file(&trace_file);
    println!(
        "
{} set_immediate with the timeline off vs on (a Chrome trace file):",
        n / 10
    );
    println!(
        "  per item:  off {:7.1} ns   on {:7.1} ns   on/off {:5.2}x   ({} bytes of trace per item)",
        off.as_nanos() as f64 / (n / 10) as f64,
        on.as_nanos() as f64 / (n / 10) as f64,
        on.as_secs_f64() / off.as_secs_f64(),
        bytes / (3 * n as u64 / 10).max(1)
    );

    match node("loop_core.js", n) {
        Some(out) => println!("\nnode (same workloads, same run):\n{out}"),
        None => println!("\nnode not found: skipped the Node column"),
    }
}
