//! This thread's CPU time and page faults, for the benches.

use std::time::Duration;

/// This thread's CPU time so far, user + system.
///
/// `CLOCK_THREAD_CPUTIME_ID` brings the running thread's runtime up to
/// date. `/proc/thread-self/schedstat` (used before) can lag by a
/// scheduler tick (4 ms here), which is 40% of a 10 ms span of work.
#[allow(dead_code)] // not every bench uses both helpers
pub fn thread_cpu() -> Duration {
    // SAFETY: clock_gettime writes into the zeroed struct it is given.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Minor page faults of this thread so far: memory the kernel handed over
/// for the first time. Linux only counts the thread (`RUSAGE_THREAD`);
/// elsewhere (macOS has no `RUSAGE_THREAD`) the whole process's count.
#[allow(dead_code)]
pub fn minor_faults() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        #[cfg(target_os = "linux")]
        let who = libc::RUSAGE_THREAD;
        #[cfg(not(target_os = "linux"))]
        let who = libc::RUSAGE_SELF;
        libc::getrusage(who, &mut usage);
        usage
    };
    usage.ru_minflt as u64
}
