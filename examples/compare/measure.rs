//! What `compare` measures for each model: wall time, CPU time (this
//! process and the worker processes it waited for), threads and processes
//! used, and peak memory.

use std::time::{Duration, Instant};

/// One model's figures for one workload.
pub struct Row {
    pub model: &'static str,
    pub wall: Duration,
    pub cpu: Duration,
    pub threads: usize,
    pub processes: usize,
    /// Peak resident memory, KiB, summed over the processes used.
    pub peak_kib: u64,
    /// Whether the model's answers checked out.
    pub ok: bool,
    pub reading: String,
}

/// What a model's run returns: whether its answers were right, and the
/// peak memory (KiB) of worker processes it used, if any.
pub struct Outcome {
    pub ok: bool,
    pub workers_peak_kib: u64,
}

impl Outcome {
    pub fn checked(ok: bool) -> Outcome {
        Outcome {
            ok,
            workers_peak_kib: 0,
        }
    }
}

/// Runs `f` and measures it.
pub fn measure(
    model: &'static str,
    threads: usize,
    processes: usize,
    f: impl FnOnce() -> Outcome,
) -> Row {
    reset_peak_rss();
    let cpu0 = cpu_time();
    let start = Instant::now();
    let outcome = f();
    let wall = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    Row {
        model,
        wall,
        cpu,
        threads,
        processes,
        peak_kib: peak_rss_kib() + outcome.workers_peak_kib,
        ok: outcome.ok,
        reading: String::new(),
    }
}

/// User + system CPU time of this process and of its children that have
/// been waited for (the worker processes of a finished model).
pub fn cpu_time() -> Duration {
    fn usage(who: i32) -> Duration {
        // SAFETY: getrusage only writes the struct we hand it.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut ru);
            ru
        };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
    usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN)
}

/// This process's peak resident memory since the last reset, KiB.
///
/// Linux: `VmHWM` from `/proc/self/status`, which `reset_peak_rss` can
/// lower. Elsewhere: `getrusage(RUSAGE_SELF).ru_maxrss`, the peak over
/// the whole process life (bytes on macOS, KiB on the BSDs), so a later
/// model's figure includes the peaks of the ones before it.
pub fn peak_rss_kib() -> u64 {
    #[cfg(target_os = "linux")]
    {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: getrusage only writes the struct we hand it.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut ru);
            ru
        };
        let max = ru.ru_maxrss.max(0) as u64;
        if cfg!(target_vendor = "apple") {
            max / 1024
        } else {
            max
        }
    }
}

/// Resets the peak to the current size (Linux: `5` to `clear_refs`), so
/// each model's peak is its own. Elsewhere there is no reset: a no-op.
pub fn reset_peak_rss() {
    #[cfg(target_os = "linux")]
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

/// Prints the table of one workload.
pub fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "  {:<14} {:>9} {:>9} {:>8} {:>10} {:>10}  reading",
        "model", "wall", "CPU", "threads", "processes", "peak mem"
    );
    for r in rows {
        println!(
            "  {:<14} {:>9} {:>9} {:>8} {:>10} {:>7.1} MiB  {}{}",
            r.model,
            human(r.wall),
            human(r.cpu),
            r.threads,
            r.processes,
            r.peak_kib as f64 / 1024.0,
            if r.ok { "" } else { "WRONG ANSWER: " },
            r.reading
        );
    }
}

/// The rows as JSON (no dependency needed for flat records).
pub fn json(workload: &str, rows: &[Row]) -> String {
    let items: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"workload\":\"{workload}\",\"model\":\"{}\",\"wall_s\":{:.6},\"cpu_s\":{:.6},\"threads\":{},\"processes\":{},\"peak_kib\":{},\"ok\":{},\"reading\":\"{}\"}}",
                r.model,
                r.wall.as_secs_f64(),
                r.cpu.as_secs_f64(),
                r.threads,
                r.processes,
                r.peak_kib,
                r.ok,
                r.reading.replace('\\', "\\\\").replace('"', "\\\"")
            )
        })
        .collect();
    items.join(",\n")
}
