//! IPC between processes: messages per second (pipelined, with
//! backpressure) and round-trip latency (one message at a time), for
//! evloop's worker channel, blocking reads and writes with the same framing
//! (one syscall per message each way: the latency floor, not a throughput
//! ceiling, since evloop reads many frames per syscall when pipelined), and
//! Node's `fork()` IPC (when `node` is on the PATH), in the same run.
//!
//! `cargo bench --bench ipc` (add `-- --quick` to divide the counts by 10).
//! The bench binary is its own worker (it re-runs itself), so the worker
//! side is the same code in every evloop case. Read the ratios: the
//! machine is shared and noisy. A watchdog ends the process after 110 s.

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use evloop::process::worker_entry;

#[path = "common/node.rs"]
mod node;
#[path = "common/process_echo.rs"]
mod process_echo;

use process_echo::{echo_worker, ECHO};

const MSG: usize = 64;

fn main() {
    match worker_entry().as_deref() {
        Some(ECHO) => return echo_worker(),
        Some("raw") => return raw_echo_worker(),
        _ => {}
    }
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(110));
        eprintln!("ipc bench: watchdog fired");
        std::process::exit(2);
    });
    let quick = std::env::args().any(|a| a == "--quick");
    let (n, m) = if quick {
        (20_000, 2_000)
    } else {
        (200_000, 20_000)
    };
    println!("IPC, {MSG}-byte messages: {n} pipelined, {m} one at a time");
    for round in 1..=2 {
        println!("round {round}");
        let (ev_tp, ev_lat) = (
            process_echo::evloop_throughput(n, |_| [7u8; MSG]),
            process_echo::evloop_latency(m, |_| [7u8; MSG]),
        );
        let (raw_tp, raw_lat) = (raw_throughput(n), raw_latency(m));
        let node = node(n, m);
        report("evloop", ev_tp, &ev_lat);
        report("raw blocking floor", raw_tp, &raw_lat);
        if let Some((tp, lat)) = &node {
            report("node fork()", *tp, lat);
        }
        println!(
            "  evloop/raw: throughput {:.2}x, p50 latency {:.2}x",
            ev_tp / raw_tp,
            p(&ev_lat, 50.0) / p(&raw_lat, 50.0)
        );
        if let Some((tp, lat)) = &node {
            println!(
                "  evloop/node: throughput {:.2}x, p50 latency {:.2}x",
                ev_tp / tp,
                p(&ev_lat, 50.0) / p(lat, 50.0)
            );
        }
    }
}

fn report(name: &str, tp: f64, lat: &[f64]) {
    println!(
        "  {name:<20} {:>9.0} msg/s   round trip p50 {:6.1} us  p99 {:6.1} us",
        tp,
        p(lat, 50.0),
        p(lat, 99.0)
    );
}

/// The `pct` percentile of `v` (microseconds).
fn p(v: &[f64], pct: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * pct / 100.0).round() as usize]
}

// ---- the floor: blocking reads and writes, same framing ----

fn raw_echo_worker() {
    let fd: i32 = std::env::var("EVLOOP_IPC_FD").unwrap().parse().unwrap();
    // SAFETY: the parent passed us this fd, and nothing else in this
    // process uses it.
    let mut s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    let mut frame = [0u8; 4 + MSG];
    while s.read_exact(&mut frame).is_ok() {
        if s.write_all(&frame).is_err() {
            break;
        }
    }
}

/// Starts the raw worker; returns it and our blocking end.
fn raw_worker() -> (std::process::Child, std::os::unix::net::UnixStream) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = theirs.as_raw_fd();
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.env("EVLOOP_WORKER", "raw")
        .env("EVLOOP_IPC_FD", fd.to_string());
    // SAFETY: fcntl is async-signal-safe, and the closure does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            libc::fcntl(fd, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop(theirs);
    (child, ours)
}

fn frame() -> [u8; 4 + MSG] {
    let mut f = [7u8; 4 + MSG];
    f[..4].copy_from_slice(&(MSG as u32).to_le_bytes());
    f
}

/// The floor's throughput: a writer thread and a reader, both blocking.
fn raw_throughput(n: usize) -> f64 {
    let (mut child, sock) = raw_worker();
    let mut writer = sock.try_clone().unwrap();
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        let f = frame();
        for _ in 0..n {
            writer.write_all(&f).unwrap();
        }
    });
    let mut reader = sock;
    let mut f = frame();
    for _ in 0..n {
        reader.read_exact(&mut f).unwrap();
    }
    let elapsed = start.elapsed();
    t.join().unwrap();
    drop(reader);
    child.wait().unwrap();
    n as f64 / elapsed.as_secs_f64()
}

fn raw_latency(m: usize) -> Vec<f64> {
    let (mut child, mut sock) = raw_worker();
    let mut f = frame();
    let mut times = Vec::with_capacity(m);
    for _ in 0..m {
        let t = Instant::now();
        sock.write_all(&f).unwrap();
        sock.read_exact(&mut f).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(sock);
    child.wait().unwrap();
    times
}

// ---- Node ----

/// Node's fork() IPC, from benches/node/ipc.js: (msg/s, round trips in us).
fn node(n: usize, m: usize) -> Option<(f64, Vec<f64>)> {
    let text = node::run_node(&[], "ipc.js", &[n.to_string(), m.to_string()])?;
    let mut lines = text.lines();
    let tp = lines.next()?.parse().ok()?;
    let lat = lines
        .next()?
        .split(' ')
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((tp, lat))
}
