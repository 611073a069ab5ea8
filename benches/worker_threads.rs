//! Messages between two threads: evloop's worker threads (a loop on each
//! side, a typed `MessagePort<u64>`), `std::sync::mpsc` between plain
//! blocking threads (the floor: no loop, no wake-up coalescing), and
//! Node's `worker_threads` `postMessage` (when `node` is on the PATH), in
//! the same run; with, for comparison, evloop's worker *process*
//! (`process::Worker` + `Channel`: the 8 bytes of each number over a Unix
//! socket, the code shared with the `ipc` bench). Two figures each:
//! pipelined throughput (N numbers sent at once and echoed back) and
//! round-trip latency (M numbers one at a time).
//!
//! `cargo bench --bench worker_threads` (add `-- --quick` to divide the
//! counts by 10). Read the ratios: the machine is shared and noisy. A
//! watchdog ends the process after 110 s.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use evloop::process::worker_entry;
use evloop::worker_threads::{MessagePort, Worker};

#[path = "common/node.rs"]
mod node;
#[path = "common/process_echo.rs"]
mod process_echo;

/// The worker's "ready" message, sent before it echoes anything.
const READY: u64 = u64::MAX;

fn main() {
    // The bench binary is also the worker process of the IPC row.
    if worker_entry().as_deref() == Some(process_echo::ECHO) {
        return process_echo::echo_worker();
    }
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(110));
        eprintln!("worker_threads bench: watchdog fired");
        std::process::exit(2);
    });
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, m) = if quick {
        (20_000, 2_000)
    } else {
        (200_000, 20_000)
    };
    println!("messages between two threads: {n} pipelined, {m} one at a time");
    println!(
        "  {:<28} {:>10}   {:>12} {:>12}",
        "", "msg/s", "rtt p50 us", "rtt p99 us"
    );
    for round in 1..=2 {
        println!("round {round}");
        let ev = (evloop_throughput(n), evloop_latency(m));
        let std = (mpsc_throughput(n), mpsc_latency(m));
        let proc = (
            process_echo::evloop_throughput(n, u64::to_le_bytes),
            process_echo::evloop_latency(m, u64::to_le_bytes),
        );
        let node = node_figures(n, m);
        report("evloop worker_threads", ev.0, &ev.1);
        report("std mpsc, plain threads", std.0, &std.1);
        if let Some((tp, lat)) = &node {
            report("node worker_threads", *tp, lat);
        }
        report("evloop worker process (IPC)", proc.0, &proc.1);
        println!(
            "  evloop/mpsc: throughput {:.2}x, p50 latency {:.2}x",
            ev.0 / std.0,
            p(&ev.1, 50.0) / p(&std.1, 50.0)
        );
        println!(
            "  process/mpsc: throughput {:.2}x, p50 latency {:.2}x",
            proc.0 / std.0,
            p(&proc.1, 50.0) / p(&std.1, 50.0)
        );
        if let Some((tp, lat)) = &node {
            println!(
                "  evloop/node: throughput {:.2}x, p50 latency {:.2}x",
                ev.0 / tp,
                p(&ev.1, 50.0) / p(lat, 50.0)
            );
            println!(
                "  process/node: throughput {:.2}x, p50 latency {:.2}x",
                proc.0 / tp,
                p(&proc.1, 50.0) / p(lat, 50.0)
            );
        }
    }
}

fn report(name: &str, tp: f64, lat: &[f64]) {
    println!(
        "  {name:<28} {tp:>10.0}   {:>12.1} {:>12.1}",
        p(lat, 50.0),
        p(lat, 99.0)
    );
}

/// The `pct` percentile of `v` (microseconds).
fn p(v: &[f64], pct: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((pct / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i]
}

/// The worker: says it is ready, then echoes every number until the
/// parent closes the port.
fn echo(parent: MessagePort<u64>) {
    parent.post_message(READY).unwrap();
    let reply = parent.clone();
    parent.on_message(move |x| {
        let _ = reply.post_message(x);
    });
}

fn evloop_throughput(n: usize) -> f64 {
    let rate = Rc::new(Cell::new(0.0));
    let r = rate.clone();
    evloop::run(move || {
        let worker = Worker::spawn(echo).unwrap();
        let got = Rc::new(Cell::new(0usize));
        let start = Rc::new(Cell::new(Instant::now()));
        let w = worker.clone();
        worker.on_message(move |x| {
            if x == READY {
                start.set(Instant::now());
                for i in 0..n as u64 {
                    w.post_message(i).unwrap();
                }
                return;
            }
            got.set(got.get() + 1);
            if got.get() == n {
                r.set(n as f64 / start.get().elapsed().as_secs_f64());
                w.port().close();
            }
        });
    })
    .unwrap();
    rate.get()
}

fn evloop_latency(m: usize) -> Vec<f64> {
    let times = Rc::new(RefCell::new(Vec::with_capacity(m)));
    let t = times.clone();
    evloop::run(move || {
        let worker = Worker::spawn(echo).unwrap();
        let sent = Rc::new(Cell::new(Instant::now()));
        let w = worker.clone();
        worker.on_message(move |x| {
            if x != READY {
                t.borrow_mut()
                    .push(sent.get().elapsed().as_secs_f64() * 1e6);
                if t.borrow().len() == m {
                    w.port().close();
                    return;
                }
            }
            sent.set(Instant::now());
            w.post_message(x.wrapping_add(1)).unwrap();
        });
    })
    .unwrap();
    let v = times.borrow().clone();
    v
}

/// An echo thread over two `mpsc` channels; ends when the parent's sender
/// is dropped.
fn mpsc_echo() -> (
    mpsc::Sender<u64>,
    mpsc::Receiver<u64>,
    std::thread::JoinHandle<()>,
) {
    let (to_tx, to_rx) = mpsc::channel::<u64>();
    let (back_tx, back_rx) = mpsc::channel::<u64>();
    let t = std::thread::spawn(move || {
        back_tx.send(READY).unwrap();
        for x in to_rx {
            if back_tx.send(x).is_err() {
                break;
            }
        }
    });
    assert_eq!(back_rx.recv().unwrap(), READY);
    (to_tx, back_rx, t)
}

fn mpsc_throughput(n: usize) -> f64 {
    let (tx, rx, t) = mpsc_echo();
    let start = Instant::now();
    for i in 0..n as u64 {
        tx.send(i).unwrap();
    }
    for _ in 0..n {
        rx.recv().unwrap();
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(tx);
    t.join().unwrap();
    rate
}

fn mpsc_latency(m: usize) -> Vec<f64> {
    let (tx, rx, t) = mpsc_echo();
    let mut times = Vec::with_capacity(m);
    for i in 0..m as u64 {
        let sent = Instant::now();
        tx.send(i).unwrap();
        rx.recv().unwrap();
        times.push(sent.elapsed().as_secs_f64() * 1e6);
    }
    drop(tx);
    t.join().unwrap();
    times
}

fn node_figures(n: usize, m: usize) -> Option<(f64, Vec<f64>)> {
    let text = node::run_node(&[], "worker_threads.js", &[n.to_string(), m.to_string()])?;
    let mut lines = text.lines();
    let tp = lines.next()?.parse().ok()?;
    let lat = lines
        .next()?
        .split(' ')
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((tp, lat))
}
