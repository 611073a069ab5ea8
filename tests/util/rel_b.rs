//! Helpers for the reliability tests of sections F–J (`tests/rel_pool_fs.rs`,
//! `rel_tcp.rs`, `rel_udp.rs`, `rel_process.rs`, `rel_soak.rs`). Named
//! `rel_b` to stay apart from the shared harness of sections A–E.
//!
//! * H1 live-heap counter: [`RelBCounting`], installed as the global
//!   allocator by a test file that wants it (`rel_b_heap!()`).
//! * H2 fd census: [`fds`].
//! * H4 CPU meter: [`cpu`].
//! * H5 watchdog: [`Watchdog`], which aborts the test process if a test
//!   overruns its hard limit (so nothing hangs CI).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A counting allocator: live bytes and the peak since [`reset_peak`].
pub struct RelBCounting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the same arguments and
// only adds relaxed counter updates, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for RelBCounting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (the caller upholds alloc's contract).
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            let now = LIVE.fetch_add(new, Ordering::Relaxed) + new;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        q
    }
}

/// Installs [`RelBCounting`] as this test binary's allocator.
#[macro_export]
macro_rules! rel_b_heap {
    () => {
        #[global_allocator]
        static REL_B_ALLOC: rel_b::RelBCounting = rel_b::RelBCounting;
    };
}

/// Live heap bytes (0 unless the binary installed [`RelBCounting`]).
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Peak live heap bytes since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

pub fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

/// H2: the number of open fds of this process.
pub fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// H4: this process's user + system CPU time.
pub fn cpu() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass and nothing else.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Threads of this process whose name starts with `prefix`.
pub fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// All threads of this process.
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// (soft, hard) RLIMIT_NOFILE.
pub fn nofile() -> (u64, u64) {
    getrlimit(libc::RLIMIT_NOFILE)
}

pub fn getrlimit(res: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into `r` only.
    assert_eq!(unsafe { libc::getrlimit(res, &mut r) }, 0);
    (r.rlim_cur, r.rlim_max)
}

/// Sets the soft limit of `res` (the hard limit is left alone).
pub fn set_soft(res: libc::__rlimit_resource_t, soft: u64) {
    let (_, hard) = getrlimit(res);
    let r = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads `r` only.
    assert_eq!(unsafe { libc::setrlimit(res, &r) }, 0);
}

/// One test at a time within a file (rlimits, signals and children are
/// process-wide).
pub fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|p| p.into_inner())
}

/// H5: aborts the process (with a message) if not dropped within `limit`.
pub struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    pub fn new(name: &'static str, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::Builder::new()
            .name("rel_b-watchdog".into())
            .spawn(move || {
                let start = Instant::now();
                while start.elapsed() < limit {
                    if d.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                eprintln!("watchdog: {name} ran over {limit:?}; aborting");
                std::process::abort();
            })
            .unwrap();
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A small deterministic PRNG (xorshift64*) for test payloads.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Prints a measured figure in a greppable form (`cargo test -- --nocapture`
/// shows it; RELIABILITY.md quotes it).
pub fn figure(id: &str, what: std::fmt::Arguments) {
    eprintln!("FIGURE {id}: {what}");
}
