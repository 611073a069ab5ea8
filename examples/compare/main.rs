//! The seed articles' comparison, measured: the same two workloads in seven
//! models, side by side.
//!
//! `cargo run --release --example compare` (about half a minute on 2
//! cores). Options:
//!
//! ```text
//! --requests N   I/O-bound: requests to the local server (default 200)
//! --delay-ms D   I/O-bound: the server answers each after D ms (default 50)
//! --space S      CPU-bound: numbers to hash (default 4000000)
//! --chunks K     CPU-bound: equal chunks of the space (default 16)
//! --workers W    threads and processes for the parallel models (default: cores)
//! --only io|cpu  run one workload
//! --json         print the figures as JSON (progress still goes to stderr)
//! --svg FILE     also draw the figures as bar charts in FILE (svg.rs)
//! ```
//!
//! The models:
//! - **synchronous**: one thread that blocks on each step in turn;
//! - **callbacks**, **promises**, **async/await**: one evloop thread, in
//!   each of the library's three styles;
//! - **threads**: OS threads that block (one per request for I/O, one per
//!   core for CPU);
//! - **processes**: evloop worker processes (this program, re-run), each
//!   with its own loop, talking to the parent over IPC;
//! - **worker threads**: `evloop::worker_threads` workers, an OS thread
//!   and a loop each, talking to the parent through typed message ports.
//!
//! The I/O server runs in a process of its own, started here, so its CPU
//! time is not counted. CPU time is this process plus the worker processes
//! it waited for; peak memory is this process's (reset before each model)
//! plus each worker's.

#[path = "../common/hash_search.rs"]
mod hash_search;

mod cpu;
mod io;
mod measure;
mod processes;
mod svg;
mod worker_threads;

use std::io::BufRead;
use std::time::Duration;

use measure::{measure, Row};

const USAGE: &str = "cargo run --release --example compare -- [options]
  --requests N   I/O-bound: requests to the local server (default 200)
  --delay-ms D   I/O-bound: the server answers each after D ms (default 50)
  --space S      CPU-bound: numbers to hash (default 4000000)
  --chunks K     CPU-bound: equal chunks of the space (default 16)
  --workers W    threads and processes for the parallel models (default: cores)
  --only io|cpu  run one workload
  --json         print the figures as JSON (progress still goes to stderr)
  --svg FILE     also draw the figures as bar charts in FILE";

struct Options {
    requests: u64,
    delay: Duration,
    space: u64,
    chunks: u64,
    workers: usize,
    only: Option<String>,
    json: bool,
    svg: Option<std::path::PathBuf>,
}

fn options() -> Result<Options, String> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut o = Options {
        requests: 200,
        delay: Duration::from_millis(50),
        space: 4_000_000,
        chunks: 16,
        workers: cores,
        only: None,
        json: false,
        svg: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .ok_or(format!("{name} takes a positive number"))
        };
        match a.as_str() {
            "--requests" => o.requests = value("--requests")?,
            "--delay-ms" => o.delay = Duration::from_millis(value("--delay-ms")?),
            "--space" => o.space = value("--space")?,
            "--chunks" => o.chunks = value("--chunks")?,
            "--workers" => o.workers = value("--workers")? as usize,
            "--json" => o.json = true,
            "--svg" => match args.next() {
                Some(f) if !f.starts_with("--") => o.svg = Some(f.into()),
                _ => return Err("--svg takes a file name".into()),
            },
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--only" => match args.next().as_deref() {
                Some(w @ ("io" | "cpu")) => o.only = Some(w.to_string()),
                _ => return Err("--only takes io or cpu".into()),
            },
            other => {
                return Err(format!(
                    "unknown option {other} (see the top of examples/compare/main.rs)"
                ))
            }
        }
    }
    Ok(o)
}

fn main() {
    match evloop::process::worker_entry().as_deref() {
        Some("compare-worker") => return processes::worker(),
        Some("delay-server") => {
            let ms = std::env::var("DELAY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(50);
            return io::delay_server(Duration::from_millis(ms));
        }
        _ => {}
    }
    env_logger::init();
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("compare: {e}");
            std::process::exit(2);
        }
    };
    let mut json = Vec::new();
    let mut all_ok = true;
    let mut charts = Vec::new();
    if o.only.as_deref() != Some("cpu") {
        let rows = io_workload(&o);
        all_ok &= rows.iter().all(|r| r.ok);
        let title = format!(
            "I/O-bound: {} requests, the server answers each after {:?}",
            o.requests, o.delay
        );
        if o.json {
            json.push(measure::json("io", &rows));
        } else {
            measure::print_table(&title, &rows);
        }
        charts.push((title, rows));
    }
    if o.only.as_deref() != Some("io") {
        let rows = cpu_workload(&o);
        all_ok &= rows.iter().all(|r| r.ok);
        let title = format!(
            "CPU-bound: hashing {} numbers in {} chunks ({} cores here)",
            o.space,
            o.chunks,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        if o.json {
            json.push(measure::json("cpu", &rows));
        } else {
            measure::print_table(&title, &rows);
        }
        charts.push((title, rows));
    }
    if o.json {
        println!("[\n{}\n]", json.join(",\n"));
    }
    if let Some(path) = &o.svg {
        if let Err(e) = std::fs::write(path, svg::render(&charts)) {
            eprintln!("compare: cannot write {}: {e}", path.display());
            std::process::exit(2);
        }
        eprintln!("compare: the charts are in {}", path.display());
    }
    if !all_ok {
        eprintln!("compare: a model gave a wrong answer");
        std::process::exit(1);
    }
}

fn progress(what: &str) {
    eprintln!("  running {what} ...");
}

/// Starts the delay server (this program, re-run) and reads its address.
fn start_server(delay: Duration) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = std::process::Command::new(std::env::current_exe().expect("our own path"))
        .env("EVLOOP_WORKER", "delay-server")
        .env("DELAY_MS", delay.as_millis().to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the delay server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the server's address");
    (child, line.trim().parse().expect("an address"))
}

fn io_workload(o: &Options) -> Vec<Row> {
    eprintln!("I/O-bound workload: starting the delay server");
    let (mut server, addr) = start_server(o.delay);
    let (n, w) = (o.requests, o.workers);
    let mut rows = Vec::new();
    progress(&format!("synchronous (about {:?})", o.delay * n as u32));
    rows.push(measure("synchronous", 1, 1, || io::sync(addr, n)));
    progress("callbacks");
    rows.push(measure("callbacks", 1, 1, || io::callbacks(addr, 0..n)));
    progress("promises");
    rows.push(measure("promises", 1, 1, || io::promises(addr, n)));
    progress("async/await");
    rows.push(measure("async/await", 1, 1, || io::async_await(addr, n)));
    progress(&format!("threads ({n})"));
    rows.push(measure("threads", n as usize + 1, 1, || {
        io::threads(addr, n)
    }));
    progress(&format!("processes ({w})"));
    rows.push(measure("processes", w + 1, w + 1, || {
        processes::io(addr, n, w)
    }));
    progress(&format!("worker threads ({w})"));
    rows.push(measure("worker threads", w + 1, 1, || {
        worker_threads::io(addr, n, w)
    }));
    let _ = server.kill();
    let _ = server.wait();

    let base = rows[0].wall.as_secs_f64();
    for r in &mut rows {
        let speedup = base / r.wall.as_secs_f64();
        let busy = 100.0 * r.cpu.as_secs_f64() / r.wall.as_secs_f64();
        r.reading = match r.model {
            "synchronous" => {
                format!("waits for each reply in turn; the CPU is busy {busy:.0}% of the time")
            }
            "threads" => format!(
                "{speedup:.0}x faster, but {} threads to wait in parallel",
                r.threads - 1
            ),
            "processes" => {
                format!("{speedup:.0}x faster; start-up and a loop per process cost memory")
            }
            "worker threads" => {
                format!("{speedup:.0}x faster; a loop per thread, one address space")
            }
            _ => format!("{speedup:.0}x faster: one thread waits for all replies at once"),
        };
    }
    rows
}

fn cpu_workload(o: &Options) -> Vec<Row> {
    // The secret is in the last chunk; every model scans all of them.
    let secret = o.space - o.space / (2 * o.chunks).max(2) - 1;
    let job = cpu::Job {
        chunks: hash_search::chunks(o.space, o.chunks),
        target: hash_search::hash(secret),
        secret,
    };
    let w = o.workers;
    eprintln!("CPU-bound workload");
    let mut rows = Vec::new();
    progress("synchronous");
    rows.push(measure("synchronous", 1, 1, || cpu::sync(&job)));
    progress("callbacks");
    rows.push(measure("callbacks", 1, 1, || cpu::callbacks(&job)));
    progress("promises");
    rows.push(measure("promises", 1, 1, || cpu::promises(&job)));
    progress("async/await");
    rows.push(measure("async/await", 1, 1, || cpu::async_await(&job)));
    progress(&format!("threads ({w})"));
    rows.push(measure("threads", w + 1, 1, || cpu::threads(&job, w)));
    progress(&format!("processes ({w})"));
    rows.push(measure("processes", w + 1, w + 1, || {
        processes::cpu(&job, w)
    }));
    progress(&format!("worker threads ({w})"));
    rows.push(measure("worker threads", w + 1, 1, || {
        worker_threads::cpu(&job, w)
    }));

    let base = rows[0].wall.as_secs_f64();
    for r in &mut rows {
        let speedup = base / r.wall.as_secs_f64();
        let cores = r.cpu.as_secs_f64() / r.wall.as_secs_f64();
        r.reading = match r.model {
            "synchronous" => "one core, flat out".to_string(),
            "threads" | "processes" | "worker threads" => {
                format!("{speedup:.2}x: {cores:.1} cores busy at once")
            }
            _ => format!("{speedup:.2}x: one thread cannot out-compute itself; the loop only stays responsive between chunks"),
        };
    }
    rows
}
