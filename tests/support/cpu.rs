//! H4, CPU time: the process's, or the calling thread's over a window.

use std::time::{Duration, Instant};

/// User + system time of one `getrusage` target.
fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass and nothing else.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(who, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// This process's user + system CPU time (all its threads).
pub fn cpu_time() -> Duration {
    rusage(libc::RUSAGE_SELF)
}

/// The calling thread's user + system CPU time: the loop is
/// single-threaded, and other tests running in the same binary do not
/// disturb it. Linux: `getrusage(RUSAGE_THREAD)`; elsewhere (macOS has
/// no `RUSAGE_THREAD`) the thread CPU clock.
#[cfg(target_os = "linux")]
pub fn thread_cpu() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

/// The calling thread's user + system CPU time: the loop is
/// single-threaded, and other tests running in the same binary do not
/// disturb it. Linux: `getrusage(RUSAGE_THREAD)`; elsewhere (macOS has
/// no `RUSAGE_THREAD`) the thread CPU clock.
#[cfg(not(target_os = "linux"))]
pub fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes into the zeroed struct we pass only.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        assert_eq!(
            libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts),
            0
        );
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU and wall time of the calling thread over a window.
pub struct CpuMeter {
    cpu: Duration,
    wall: Instant,
}

impl CpuMeter {
    /// Opens the window now.
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
