//! Scale curves: timers, tasks and promises at 10^3 … 10^7 pending, evloop
//! beside tokio (current-thread runtime, `LocalSet`) and Node, in one run.
//!
//! `cargo bench --bench scale -- [--quick] [--no-node]`: `--quick` stops at
//! 10^5 and repeats less; `--no-node` skips `benches/node/scale.js` (which
//! this bench otherwise runs at the end and whose figures it passes on).
//!
//! Every figure is one stdout line `csv,METRIC,SERIES,X,VALUE` (SERIES is
//! `evloop`, `tokio` or `node`); `benches/servers/scale.sh` parses them.
//! Other lines are for people. Timings are medians over repetitions that
//! alternate evloop and tokio; the machine is shared, so read the ratios.
//!
//! Metrics (X = how many are pending at once):
//! * `timer_arm_ns`: ns per `set_timeout` arming X timers into a fresh loop
//!   (tokio: `spawn_local` of a task awaiting a `Sleep` created before the
//!   spawn, plus its first poll, which registers the timer); page faults
//!   included, printed per 1000 arms;
//! * `timer_fire_ns`: ns per timer when X due timers fire: deadlines spread
//!   at random over 1..50 ms (not one bucket), all due before the timed run;
//! * `timer_cancel_ns`: ns per clear with X pending (tokio: `abort` plus
//!   the runtime dropping the aborted task);
//! * `timer_bytes`: live heap bytes per pending timer (counting allocator);
//! * `task_spawn_ns`: X tasks that each `yield_now` once, spawned then all
//!   completed, per task;
//! * `task_bytes`: per pending task parked on `std::future::pending()`;
//! * `promise_ns`: X `with_resolvers` promises with one `then` each,
//!   created then all resolved and every `then` run, per promise (tokio
//!   has no promise: a `oneshot` channel whose receiver a `spawn_local`
//!   task awaits, the nearest equivalent, is its series);
//! * `promise_bytes`: per pending promise with one `then` attached (tokio:
//!   the `oneshot` and its awaiting task).

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::channel::oneshot;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "common/node.rs"]
mod node;
use counting_alloc::live;
use cpu::minor_faults;

/// One figure in the fixed machine-readable form.
fn csv(metric: &str, series: &str, x: usize, value: f64) {
    println!("csv,{metric},{series},{x},{value:.1}");
}

/// Deterministic delays of `lo_us + [0, span_us)` microseconds (xorshift).
fn delays(n: usize, lo_us: u64, span_us: u64) -> Vec<Duration> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_micros(lo_us + x % span_us)
        })
        .collect()
}

/// Fire rounds: deadlines within 1..50 ms; the round sleeps this long after
/// arming so that every timer is due when the timed run starts.
const FIRE_LO_US: u64 = 1_000;
const FIRE_SPAN_US: u64 = 49_000;
const FIRE_WAIT: Duration = Duration::from_millis(60);
/// Cancel rounds: deadlines 100..150 s away, so none fires meanwhile.
const CANCEL_LO_US: u64 = 100_000_000;

fn per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

/// What one timer round measured.
#[derive(Clone, Copy, Default)]
struct TimerRound {
    arm_ns: f64,
    faults_per_k: f64,
    bytes: f64,
    fire_ns: f64,
}

// ---------------------------------------------------------------- evloop

fn evloop_arm_fire(x: usize) -> TimerRound {
    let el = evloop::EventLoop::new().unwrap();
    let ds = delays(x, FIRE_LO_US, FIRE_SPAN_US);
    let fired = Rc::new(Cell::new(0usize));
    let g = el.enter();
    let (base, faults) = (live(), minor_faults());
    let start = Instant::now();
    for &d in &ds {
        let f = fired.clone();
        drop(evloop::set_timeout(d, move || f.set(f.get() + 1)));
    }
    let arm = start.elapsed();
    let mut r = TimerRound {
        arm_ns: per(arm, x),
        faults_per_k: (minor_faults() - faults) as f64 * 1000.0 / x as f64,
        bytes: (live() - base) as f64 / x as f64,
        fire_ns: 0.0,
    };
    drop(g);
    std::thread::sleep(FIRE_WAIT);
    let start = Instant::now();
    el.run().unwrap();
    r.fire_ns = per(start.elapsed(), x);
    assert_eq!(fired.get(), x, "evloop: every timer fired");
    r
}

fn evloop_cancel(x: usize) -> f64 {
    let el = evloop::EventLoop::new().unwrap();
    let ds = delays(x, CANCEL_LO_US, FIRE_SPAN_US);
    let g = el.enter();
    let handles: Vec<evloop::Timeout> = ds
        .iter()
        .map(|&d| evloop::set_timeout(d, || unreachable!("cancelled")))
        .collect();
    let start = Instant::now();
    for h in &handles {
        h.clear();
    }
    let ns = per(start.elapsed(), x);
    drop(handles);
    drop(g);
    el.run().unwrap();
    ns
}

/// Runs `main` in a fresh loop; returns ns per item from `start` (set by
/// `main`) to the moment `done` was set.
fn evloop_span(x: usize, main: impl FnOnce(Rc<Cell<Option<Instant>>>) -> Instant) -> f64 {
    let done = Rc::new(Cell::new(None));
    let mut start = Instant::now();
    let d = done.clone();
    evloop::run(|| start = main(d)).unwrap();
    per(done.get().expect("finished").duration_since(start), x)
}

fn evloop_tasks(x: usize) -> f64 {
    evloop_span(x, |done| {
        let count = Rc::new(Cell::new(0usize));
        let start = Instant::now();
        for _ in 0..x {
            let (c, done) = (count.clone(), done.clone());
            drop(evloop::spawn(async move {
                evloop::task::yield_now().await;
                c.set(c.get() + 1);
                if c.get() == x {
                    done.set(Some(Instant::now()));
                }
            }));
        }
        start
    })
}

fn evloop_promises(x: usize) -> f64 {
    evloop_span(x, |done| {
        let count = Rc::new(Cell::new(0usize));
        let mut keep = Vec::with_capacity(x);
        let start = Instant::now();
        for _ in 0..x {
            let w = evloop::promise::Promise::<u64>::with_resolvers();
            let (c, done) = (count.clone(), done.clone());
            w.promise.then(move |_| {
                c.set(c.get() + 1);
                if c.get() == x {
                    done.set(Some(Instant::now()));
                }
            });
            keep.push(w.resolve);
        }
        for r in keep {
            r(1);
        }
        start
    })
}

fn evloop_task_bytes(x: usize) -> f64 {
    let mut bytes = 0.0;
    evloop::run(|| {
        let mut keep = Vec::with_capacity(x);
        let base = live();
        for _ in 0..x {
            keep.push(evloop::task::spawn_handle(std::future::pending::<()>()).1);
        }
        bytes = (live() - base) as f64 / x as f64;
        for a in keep {
            a.abort();
        }
    })
    .unwrap();
    bytes
}

fn evloop_promise_bytes(x: usize) -> f64 {
    let mut bytes = 0.0;
    evloop::run(|| {
        let mut keep = Vec::with_capacity(x);
        let base = live();
        for _ in 0..x {
            let w = evloop::promise::Promise::<u64>::with_resolvers();
            w.promise.then(|v| v);
            keep.push(w.resolve);
        }
        bytes = (live() - base) as f64 / x as f64;
        for r in keep {
            r(0);
        }
    })
    .unwrap();
    bytes
}

// ----------------------------------------------------------------- tokio

fn tokio_local<T>(f: impl Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, f)
}

/// Yields until `count` reaches `want` (the spawned tasks' first polls).
async fn until(count: &Cell<usize>, want: usize) {
    while count.get() < want {
        tokio::task::yield_now().await;
    }
}

/// `lead`: how long from now the deadlines start (see below).
fn tokio_arm_fire(x: usize, lead: Duration) -> TimerRound {
    tokio_local(async move {
        let ds = delays(x, FIRE_LO_US, FIRE_SPAN_US);
        let polled = Rc::new(Cell::new(0usize));
        let fired = Rc::new(Cell::new(0usize));
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let done = Rc::new(Cell::new(Some(done_tx)));
        // Tokio's timers fire while it arms (its first polls let the driver
        // run), so its deadlines start after the arming is over: a fire
        // round must find all X pending. Timers that fired early anyway are
        // counted and said.
        let due_from = Instant::now() + lead;
        let (base, faults) = (live(), minor_faults());
        let start = Instant::now();
        for &d in &ds {
            // The deadline is taken here, as evloop's is; the timer is
            // registered at the task's first poll, which `until` awaits.
            let sleep = tokio::time::sleep_until((due_from + d).into());
            let (p, f, done) = (polled.clone(), fired.clone(), done.clone());
            drop(tokio::task::spawn_local(async move {
                p.set(p.get() + 1);
                sleep.await;
                f.set(f.get() + 1);
                if f.get() == x {
                    done.take().map(|t| t.send(()));
                }
            }));
        }
        until(&polled, x).await;
        let arm = start.elapsed();
        let mut r = TimerRound {
            arm_ns: per(arm, x),
            faults_per_k: (minor_faults() - faults) as f64 * 1000.0 / x as f64,
            bytes: (live() - base) as f64 / x as f64,
            fire_ns: 0.0,
        };
        let early = fired.get();
        if early > 0 {
            println!("  (tokio X={x}: {early} timers fired while arming; the arming took {arm:?})");
        }
        std::thread::sleep((due_from + FIRE_WAIT).saturating_duration_since(Instant::now()));
        let start = Instant::now();
        let _ = done_rx.await;
        r.fire_ns = per(start.elapsed(), x - early);
        r
    })
}

/// Counts down when the task holding it is dropped.
struct Alive(Rc<Cell<usize>>);
impl Drop for Alive {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

fn tokio_cancel(x: usize) -> f64 {
    tokio_local(async move {
        let ds = delays(x, CANCEL_LO_US, FIRE_SPAN_US);
        let polled = Rc::new(Cell::new(0usize));
        let alive = Rc::new(Cell::new(x));
        let handles: Vec<_> = ds
            .iter()
            .map(|&d| {
                let (p, guard) = (polled.clone(), Alive(alive.clone()));
                tokio::task::spawn_local(async move {
                    let _guard = guard;
                    p.set(p.get() + 1);
                    tokio::time::sleep(d).await;
                    unreachable!("cancelled");
                })
            })
            .collect();
        until(&polled, x).await;
        let start = Instant::now();
        for h in &handles {
            h.abort();
        }
        while alive.get() > 0 {
            tokio::task::yield_now().await;
        }
        per(start.elapsed(), x)
    })
}

fn tokio_tasks(x: usize) -> f64 {
    tokio_local(async move {
        let count = Rc::new(Cell::new(0usize));
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let done = Rc::new(Cell::new(Some(done_tx)));
        let start = Instant::now();
        for _ in 0..x {
            let (c, done) = (count.clone(), done.clone());
            drop(tokio::task::spawn_local(async move {
                tokio::task::yield_now().await;
                c.set(c.get() + 1);
                if c.get() == x {
                    done.take().map(|t| t.send(()));
                }
            }));
        }
        let _ = done_rx.await;
        per(start.elapsed(), x)
    })
}

fn tokio_promises(x: usize) -> f64 {
    tokio_local(async move {
        let count = Rc::new(Cell::new(0usize));
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let done = Rc::new(Cell::new(Some(done_tx)));
        let mut keep = Vec::with_capacity(x);
        let start = Instant::now();
        for _ in 0..x {
            let (tx, rx) = oneshot::channel::<u64>();
            let (c, done) = (count.clone(), done.clone());
            drop(tokio::task::spawn_local(async move {
                let _ = rx.await;
                c.set(c.get() + 1);
                if c.get() == x {
                    done.take().map(|t| t.send(()));
                }
            }));
            keep.push(tx);
        }
        for tx in keep {
            let _ = tx.send(1);
        }
        let _ = done_rx.await;
        per(start.elapsed(), x)
    })
}

fn tokio_task_bytes(x: usize) -> f64 {
    tokio_local(async move {
        let polled = Rc::new(Cell::new(0usize));
        let mut keep = Vec::with_capacity(x);
        let base = live();
        for _ in 0..x {
            let p = polled.clone();
            keep.push(tokio::task::spawn_local(async move {
                p.set(p.get() + 1);
                std::future::pending::<()>().await
            }));
        }
        until(&polled, x).await;
        let bytes = (live() - base) as f64 / x as f64;
        for h in keep {
            h.abort();
        }
        bytes
    })
}

fn tokio_promise_bytes(x: usize) -> f64 {
    tokio_local(async move {
        let polled = Rc::new(Cell::new(0usize));
        let mut keep = Vec::with_capacity(x);
        let base = live();
        for _ in 0..x {
            let (tx, rx) = oneshot::channel::<u64>();
            let p = polled.clone();
            drop(tokio::task::spawn_local(async move {
                p.set(p.get() + 1);
                rx.await.ok()
            }));
            keep.push(tx);
        }
        until(&polled, x).await;
        let bytes = (live() - base) as f64 / x as f64;
        for tx in keep {
            let _ = tx.send(0);
        }
        tokio::task::yield_now().await;
        bytes
    })
}

// ------------------------------------------------------------------ main

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Kilobytes of memory available, from `/proc/meminfo` (Linux); `None`
/// elsewhere.
fn mem_available_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `bytes` more can be allocated with a 2x margin; says so if not.
fn fits(what: &str, x: usize, bytes: f64) -> bool {
    let ok = mem_available_kb().map_or(true, |kb| kb as f64 * 1024.0 > 2.0 * bytes);
    if !ok {
        println!(
            "  (skipped: {what} at {x} needs ~{:.1} GB; less than twice that is available)",
            bytes / 1e9
        );
    }
    ok
}

fn reps(x: usize, quick: bool) -> usize {
    match (x, quick) {
        (..=10_000, false) => 7,
        (..=100_000, false) => 3,
        (_, false) => 1,
        (..=10_000, true) => 3,
        (_, true) => 1,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let with_node = !args.iter().any(|a| a == "--no-node");
    let top = if quick { 5 } else { 7 };
    let t0 = Instant::now();
    println!(
        "scale: X = 10^3 .. 10^{top} pending{}; medians of alternating evloop/tokio repetitions",
        if quick { " (--quick)" } else { "" }
    );
    println!("timers (fire: deadlines spread over 1..50 ms, all due before the timed run):");
    // Per-timer arming time of tokio's last round (a guess to start with).
    let mut tokio_arm_ns = 2_000.0f64;
    for e in 3..=top {
        let x = 10usize.pow(e);
        let n = reps(x, quick);
        // tokio: ~270 B per pending timer task, plus the cancel round's
        // handles; evloop ~64 B.
        let tokio_ok = fits("tokio", x, 400.0 * x as f64);
        let mut ev = Vec::new();
        let mut tk = Vec::new();
        let (mut evc, mut tkc) = (Vec::new(), Vec::new());
        for _ in 0..n {
            ev.push(evloop_arm_fire(x));
            evc.push(evloop_cancel(x));
            if tokio_ok {
                // Three times the arming time per timer of the last round:
                // little waiting is wasted (10^7 tokio timers take tens of
                // seconds to arm here), and early fires are said.
                let lead = Duration::from_millis(100)
                    + Duration::from_nanos((3.0 * tokio_arm_ns * x as f64) as u64);
                let r = tokio_arm_fire(x, lead);
                tokio_arm_ns = r.arm_ns;
                tk.push(r);
                tkc.push(tokio_cancel(x));
            }
        }
        let emit = |series: &str, rs: &[TimerRound], cs: Vec<f64>| {
            if rs.is_empty() {
                return;
            }
            let arm = median(rs.iter().map(|r| r.arm_ns).collect());
            let faults = median(rs.iter().map(|r| r.faults_per_k).collect());
            let fire = median(rs.iter().map(|r| r.fire_ns).collect());
            let bytes = median(rs.iter().map(|r| r.bytes).collect());
            let cancel = median(cs);
            println!(
                "  {series:6} X={x:>8}: arm {arm:7.1} ns ({faults:5.1} page faults per 1000 arms)  fire {fire:7.1} ns  cancel {cancel:7.1} ns  {bytes:6.1} B per pending timer"
            );
            csv("timer_arm_ns", series, x, arm);
            csv("timer_fire_ns", series, x, fire);
            csv("timer_cancel_ns", series, x, cancel);
            csv("timer_bytes", series, x, bytes);
        };
        emit("evloop", &ev, evc);
        emit("tokio", &tk, tkc);
    }
    println!("tasks (each yields once) and promises (one then each):");
    for e in 3..=top.min(6) {
        let x = 10usize.pow(e);
        let n = reps(x, quick);
        let (mut et, mut tt, mut ep, mut tp) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            et.push(evloop_tasks(x));
            tt.push(tokio_tasks(x));
            ep.push(evloop_promises(x));
            tp.push(tokio_promises(x));
        }
        let (et, tt, ep, tp) = (median(et), median(tt), median(ep), median(tp));
        let (etb, ttb) = (evloop_task_bytes(x), tokio_task_bytes(x));
        let (epb, tpb) = (evloop_promise_bytes(x), tokio_promise_bytes(x));
        println!(
            "  X={x:>8}: task spawn+complete evloop {et:6.1} ns  tokio {tt:6.1} ns   pending task evloop {etb:6.1} B  tokio {ttb:6.1} B"
        );
        println!(
            "  X={x:>8}: promise+then+resolve evloop {ep:6.1} ns  tokio(oneshot+task) {tp:6.1} ns   pending promise+then evloop {epb:6.1} B  tokio {tpb:6.1} B"
        );
        csv("task_spawn_ns", "evloop", x, et);
        csv("task_spawn_ns", "tokio", x, tt);
        csv("task_bytes", "evloop", x, etb);
        csv("task_bytes", "tokio", x, ttb);
        csv("promise_ns", "evloop", x, ep);
        csv("promise_ns", "tokio", x, tp);
        csv("promise_bytes", "evloop", x, epb);
        csv("promise_bytes", "tokio", x, tpb);
    }
    println!("rust part: {:.1} s", t0.elapsed().as_secs_f64());
    if with_node {
        let t = Instant::now();
        let flags = ["--expose-gc", "--max-old-space-size=8192"];
        let mut a = Vec::new();
        if quick {
            a.push("--quick".to_string());
        }
        match node::run_node(&flags, "scale.js", &a) {
            Some(out) => print!("{out}"),
            None => println!("(node: not run)"),
        }
        println!("node part: {:.1} s", t.elapsed().as_secs_f64());
    }
}
