//! Promise benchmarks: evloop's `Promise<T>` side by side with Node's
//! promises (when `node` is on the PATH), in the same run.
//!
//! `cargo bench --bench promise` (add `-- --quick` for 100,000 / 10,000
//! items instead of 1,000,000 / 100,000). Figures are medians of 3 rounds;
//! read the ratios, since the machine is shared and noisy.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::promise::{Promise, Resolve};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
#[path = "common/node.rs"]
mod node;
use counting_alloc::{live, set_counting};

/// Build time and run time of one workload.
#[derive(Clone, Copy, Default)]
struct Timing {
    /// Registering the `then`s (or building the inputs and `all`).
    build: Duration,
    /// From the end of the build until the last callback ran.
    run: Duration,
}

impl Timing {
    fn total(&self) -> Duration {
        self.build + self.run
    }
}

/// Runs `main` on a fresh loop; `main` returns the instant its build ended
/// and a cell the last callback fills with the instant it ran.
fn timed(main: impl FnOnce() -> Rc<Cell<Option<Instant>>>) -> Timing {
    let mut t = Timing::default();
    let mut done = None;
    let start = Instant::now();
    let mut built = start;
    evloop::run(|| {
        done = Some(main());
        built = Instant::now();
    })
    .unwrap();
    let end = done.unwrap().get().expect("the last callback ran");
    t.build = built - start;
    t.run = end - built;
    t
}

/// Workload 1: A chain of `n` `then`s on a resolved promise, each adding one.
fn chain(n: usize) -> Timing {
    timed(|| {
        let end = Rc::new(Cell::new(None));
        let e = end.clone();
        let mut p = Promise::resolve(0u64);
        for _ in 0..n {
            p = p.then(|v| v + 1);
        }
        p.then(move |v| {
            assert_eq!(v, n as u64, "the chain lost a step");
            e.set(Some(Instant::now()));
        });
        end
    })
}

/// Workload 2: `n` `then`s on one resolved promise (fan-out); a last `then`, run
/// last since reactions run in registration order, stops the clock.
fn fan_out(n: usize) -> Timing {
    timed(|| {
        let end = Rc::new(Cell::new(None));
        let e = end.clone();
        let p = Promise::resolve(0u64);
        for _ in 0..n {
            p.clone().then(|v| v + 1);
        }
        p.then(move |_| e.set(Some(Instant::now())));
        end
    })
}

/// Workload 3: `Promise::all` over `n` promises: pending ones (`with_resolvers`)
/// resolved from a `set_immediate` after the build, or already resolved.
fn all(n: usize, pending: bool) -> Timing {
    timed(|| {
        let end = Rc::new(Cell::new(None));
        let e = end.clone();
        let (inputs, resolvers): (Vec<Promise<u64>>, Vec<Resolve<u64>>) = if pending {
            (0..n)
                .map(|_| {
                    let w = Promise::with_resolvers();
                    (w.promise, w.resolve)
                })
                .unzip()
        } else {
            ((0..n as u64).map(Promise::resolve).collect(), Vec::new())
        };
        Promise::all(inputs).then(move |v| {
            assert_eq!(v.len(), n);
            e.set(Some(Instant::now()));
        });
        if pending {
            let _ = evloop::set_immediate(move || {
                for (i, r) in resolvers.into_iter().enumerate() {
                    r(i as u64);
                }
            });
        }
        end
    })
}

/// Workload 4: Live heap bytes per pending promise: `n` `with_resolvers()` promises,
/// keeping only each `resolve` (which keeps its promise alive), with or
/// without a `.then(|v| v)` attached. Returns (bytes, ns to create one).
fn memory(n: usize, with_then: bool) -> (f64, f64) {
    let mut out = (0.0, 0.0);
    evloop::run(|| {
        // Allocated before the baseline: the bench's vector is not the
        // promises' memory (Node's side preallocates its array the same way).
        let mut keep: Vec<Resolve<u64>> = Vec::with_capacity(n);
        set_counting(true);
        let base = live();
        let start = Instant::now();
        for _ in 0..n {
            let w = Promise::<u64>::with_resolvers();
            if with_then {
                w.promise.then(|v| v);
            }
            keep.push(w.resolve);
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        out = ((live() - base) as f64 / n as f64, ns);
        set_counting(false);
        // Settle them, so the loop ends with nothing pending.
        for r in keep {
            r(0);
        }
    })
    .unwrap();
    out
}

fn median<T: Copy>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    v.sort_by(|a, b| key(a).partial_cmp(&key(b)).unwrap());
    v[v.len() / 2]
}

fn rounds<T: Copy>(f: impl Fn() -> T, key: impl Fn(&T) -> f64) -> T {
    median((0..3).map(|_| f()).collect(), key)
}

/// Node's figures, `name value` per line.
fn node(n: usize, m: usize) -> Option<Vec<(String, f64)>> {
    let out = node::run_node(
        &["--expose-gc"],
        "promise.js",
        &[n.to_string(), m.to_string()],
    )?;
    Some(
        out.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((w.next()?.to_string(), w.next()?.parse().ok()?))
            })
            .collect(),
    )
}

fn ns(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn main() {
    // Count only in the memory workload (see counting_alloc::set_counting).
    set_counting(false);
    let quick = std::env::args().any(|a| a == "--quick");
    // n: then chains and fan-out; m: Promise::all inputs and memory.
    let (n, m) = if quick {
        (100_000, 10_000)
    } else {
        (1_000_000, 100_000)
    };
    // `-- --only chain|fan|all|memory`: one workload, evloop only (to profile).
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let on = |w: &str| only.as_deref().map_or(true, |o| o == w);
    println!("promise: n = {n}, m = {m}, medians of 3 rounds; ns per item\n");

    let node = if only.is_some() { None } else { node(n, m) };
    let nd = |k: &str| -> Option<f64> {
        node.as_ref()?
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| *v)
    };
    let line = |label: &str, e: f64, key: &str, unit: &str, higher_is_worse: bool| match nd(key) {
        Some(v) => println!(
            "  {label:<26} evloop {e:8.1} {unit}   node {v:8.1} {unit}   node/evloop {:5.2}x",
            if higher_is_worse { v / e } else { e / v }
        ),
        None => println!("  {label:<26} evloop {e:8.1} {unit}   node      -"),
    };

    let key = |t: &Timing| t.total().as_secs_f64();
    if on("chain") {
        let c = rounds(|| chain(n), key);
        println!("1. chain of {n} thens (p = p.then(v => v + 1)):");
        line("build", ns(c.build, n), "chain_build", "ns", true);
        line("run", ns(c.run, n), "chain_run", "ns", true);
        line("total", ns(c.total(), n), "chain_total", "ns", true);
    }
    if on("fan") {
        let f = rounds(|| fan_out(n), key);
        println!("2. {n} thens on one resolved promise:");
        line("register", ns(f.build, n), "fan_build", "ns", true);
        line("run", ns(f.run, n), "fan_run", "ns", true);
        line("total", ns(f.total(), n), "fan_total", "ns", true);
    }
    if on("all") {
        let a = rounds(|| all(m, true), key);
        println!("3. Promise.all over {m} promises:");
        line(
            "pending, resolved later",
            ns(a.total(), m),
            "all_pending_total",
            "ns",
            true,
        );
        let a = rounds(|| all(m, false), key);
        line(
            "already resolved",
            ns(a.total(), m),
            "all_resolved_total",
            "ns",
            true,
        );
    }
    if on("memory") {
        println!("4. memory per pending promise ({m} with_resolvers, resolve kept):");
        let (b, t) = rounds(|| memory(m, false), |x| x.1);
        line("bare: bytes", b, "mem_bare_bytes", "B ", true);
        line("bare: create", t, "mem_bare_ns", "ns", true);
        let (b, t) = rounds(|| memory(m, true), |x| x.1);
        line("with one then: bytes", b, "mem_then_bytes", "B ", true);
        line("with one then: create", t, "mem_then_ns", "ns", true);
    }
    if node.is_none() {
        println!("\nnode not found (or failed): skipped the Node column");
    } else {
        println!("\n(node/evloop > 1: evloop is faster or smaller; target >= 2x)");
    }
}
