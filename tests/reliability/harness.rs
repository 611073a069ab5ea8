//! The shared harness of the reliability suite (`TESTS.md`, "Shared
//! harness"). Each `tests/rel_*.rs` file includes it with
//! `#[path = "reliability/harness.rs"] mod harness;`.
//!
//! - **H1 live heap:** the counting `#[global_allocator]` of
//!   `benches/common/counting_alloc.rs`, installed in every binary that
//!   includes this file; [`live`] reads it.
//! - **H2 fd census:** [`FdCensus`] counts `/proc/self/fd` and waits (a
//!   bounded time) for it to come back to its baseline.
//! - **H3 loop metrics:** what the loop already exposes, read in one place
//!   by [`Metrics::of`]: iterations, live reactor slab entries (its `Io`
//!   handles), timers, immediates, requests in flight (pool jobs), tasks.
//! - **H4 CPU meter:** [`CpuMeter`] reads the *calling thread's* user + sys
//!   time (`RUSAGE_THREAD`): the loop is single-threaded, and other tests
//!   running in the same binary do not disturb it.
//! - **H5 watchdog:** [`Test::start`] takes the binary-wide lock (tests in
//!   one file run one at a time, so H1 and H2 see only their own test) and
//!   arms a watchdog thread that aborts the whole process if the test has
//!   not finished within its limit: a hung test fails loudly and never
//!   hangs CI. (Process-per-test isolation is what `cargo nextest` gives;
//!   `.config/nextest.toml` sets its slow-timeout for these files.)
#![allow(dead_code)]

use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[path = "../../benches/common/counting_alloc.rs"]
pub mod counting_alloc;

/// H1: live heap bytes of the whole process.
pub fn live() -> isize {
    counting_alloc::live()
}

/// H2: the number of open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// H2: what each open fd is (for failure messages).
pub fn fd_list() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            format!("{}->{}", e.file_name().to_string_lossy(), target.display())
        })
        .collect()
}

/// H2: remembers the fd count at creation.
pub struct FdCensus {
    pub baseline: usize,
}

impl FdCensus {
    pub fn new() -> Self {
        FdCensus {
            baseline: fd_count(),
        }
    }

    /// Waits up to 2 s for the fd count to come back to the baseline
    /// (pool threads and children may still be closing theirs), and
    /// returns the final count.
    pub fn settle(&self) -> usize {
        let end = Instant::now() + Duration::from_secs(2);
        loop {
            let n = fd_count();
            if n <= self.baseline || Instant::now() > end {
                return n;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asserts the fd count is back to the baseline.
    pub fn assert_back(&self, what: &str) {
        let n = self.settle();
        assert!(
            n <= self.baseline,
            "{what}: {n} fds open, baseline {}: {:?}",
            self.baseline,
            fd_list()
        );
    }
}

/// H3: a snapshot of the loop's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    pub iterations: u64,
    /// Live reactor slab entries (registered sources).
    pub sources: usize,
    pub timers: usize,
    pub immediates: usize,
    /// Requests in flight (pool jobs, name lookups).
    pub requests: usize,
    pub pending: usize,
    pub closing: usize,
    /// Spawned tasks not finished.
    pub tasks: usize,
}

impl Metrics {
    pub fn of(el: &evloop::EventLoop) -> Metrics {
        use evloop::HandleKind as K;
        let mut m = Metrics {
            iterations: el.iterations(),
            tasks: el.tasks(),
            ..Metrics::default()
        };
        for h in el.active_handles() {
            match h.kind {
                K::Io => m.sources += 1,
                K::Timeout | K::Interval => m.timers += 1,
                K::Immediate => m.immediates += 1,
                K::Request => m.requests += 1,
                K::Pending => m.pending += 1,
                K::Closing => m.closing += 1,
                _ => {}
            }
        }
        m
    }
}

/// H4: the calling thread's CPU time (user + sys).
pub fn thread_cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass and nothing else.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// H4: CPU and wall time of the calling thread over a window.
pub struct CpuMeter {
    cpu: Duration,
    wall: Instant,
}

impl CpuMeter {
    pub fn start() -> Self {
        CpuMeter {
            cpu: thread_cpu(),
            wall: Instant::now(),
        }
    }
    /// (CPU used, wall time elapsed) since `start`.
    pub fn read(&self) -> (Duration, Duration) {
        (thread_cpu() - self.cpu, self.wall.elapsed())
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// H5: one running reliability test: holds the binary-wide lock and a
/// watchdog. Drop it at the end of the test (keep it in a `_t` binding).
pub struct Test {
    pub id: &'static str,
    started: Instant,
    stop: Option<mpsc::Sender<()>>,
    _serial: MutexGuard<'static, ()>,
}

impl Test {
    /// Starts test `id` with a hard limit: past it the process aborts with
    /// a message naming the test.
    pub fn start(id: &'static str, limit: Duration) -> Test {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let _ = env_logger::builder().is_test(true).try_init();
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(format!("watchdog {id}"))
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                    eprintln!("WATCHDOG: {id} still running after {limit:?}: aborting");
                    std::process::abort();
                }
            })
            .expect("watchdog thread");
        Test {
            id,
            started: Instant::now(),
            stop: Some(tx),
            _serial: serial,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Prints a figure for the report: `FIGURE T05: ...`.
    pub fn figure(&self, text: impl std::fmt::Display) {
        eprintln!("FIGURE {}: {text}", self.id);
    }
}

impl Drop for Test {
    fn drop(&mut self) {
        // Dropping the sender wakes the watchdog with `Disconnected`.
        drop(self.stop.take());
        eprintln!("FIGURE {}: wall {:?}", self.id, self.started.elapsed());
    }
}

/// A count from the environment, or `default`: `EVLOOP_REL_SCALE`
/// multiplies every such count (set it to 10 or 100 for a long run).
pub fn count(default: usize) -> usize {
    let scale: usize = std::env::var("EVLOOP_REL_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    default.saturating_mul(scale.max(1))
}

/// `p`-th percentile of `v` (sorts it).
pub fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// A loopback echo server on its own OS thread (blocking std sockets), so
/// that round trips measured from a loop do not depend on that loop. Each
/// connection is served by one thread; the server thread exits with the
/// test process.
pub fn echo_thread_server() -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if c.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Starts the process-wide signal machinery (a pipe and a dispatcher
/// thread, started once per process on first use, by design) so that an
/// fd or thread census taken afterwards counts it in its baseline.
pub fn warm_process_machinery() {
    let el = evloop::EventLoop::new().unwrap();
    let _g = el.enter();
    evloop::process::Command::new("true")
        .spawn()
        .expect("spawn")
        .on_exit(|r| {
            r.unwrap();
        });
    let s = evloop::process::on_signal(evloop::process::Signal::SIGWINCH, |_| {}).unwrap();
    s.close();
    drop(_g);
    el.run().unwrap();
}

/// Installs a panic hook that stays quiet about the test's own deliberate
/// panics (payloads containing "boom") and reports every other one.
pub fn quiet_booms() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        if !msg.contains("boom") {
            default(info);
        }
    }));
}
