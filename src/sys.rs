//! The ground floor's FFI: every libc call the crate makes (signal
//! handlers and dispositions, `kill`, fd inheritance across exec, SIGXFSZ,
//! `select` for the stdin reader thread, inotify in [`inotify`] for
//! `fs::watch`),
//! each `unsafe` block with the reason it holds. It imports no layer; the
//! loop (`ignore_sigxfsz`) and `process/` (signals, children, workers)
//! call it.
//!
//! This is the crate's only foreign code, but not its only `unsafe`: two
//! more places use it for pointer work that is not FFI, `inline_fn.rs`
//! (timer callbacks stored inline, type-erased by hand) and `task/boxed.rs`
//! (one pin projection). The rest of the crate is `deny(unsafe_code)`.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
pub(crate) mod inotify;

use std::io;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicI32, Ordering};

/// `CLOCK_MONOTONIC` in nanoseconds, for the loop's clock
/// (`event_loop/clock.rs`). Every timer arm reads the clock (as Node's
/// `setTimeout` does): this is a few instructions besides the vDSO call,
/// where `Instant::elapsed` spent about 80 (its `Timespec` checks,
/// subtraction and `Duration` conversion).
#[cfg(target_os = "linux")]
#[inline]
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// A signal's disposition, as saved by [`install_handler`].
pub(crate) type Disposition = libc::sigaction;

/// The write end of the process-wide signal pipe; -1 until set.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

/// Sets the fd the handler writes to (once, before any install).
pub(crate) fn set_signal_pipe(fd: RawFd) {
    SIGNAL_PIPE.store(fd, Ordering::Relaxed);
}

/// The handler: write the signal's number, one byte, to the signal pipe,
/// and leave `errno` as it was. Nothing else.
extern "C" fn on_signal(signo: libc::c_int) {
    let errno = errno_location();
    // SAFETY: errno_location points at this thread's errno.
    let saved = unsafe { *errno };
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    let byte = signo as u8;
    // SAFETY: write(2) is async-signal-safe and `byte` outlives the call.
    // The pipe is non-blocking and never closed; when it is full the byte
    // is dropped, and the signal thread has bytes to deliver anyway.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    // SAFETY: as above.
    unsafe { *errno = saved };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: no preconditions; returns this thread's errno.
    unsafe { libc::__errno_location() }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn errno_location() -> *mut libc::c_int {
    // SAFETY: no preconditions; returns this thread's errno.
    unsafe { libc::__error() }
}

/// Installs [`on_signal`] for `signo`; returns the disposition it replaced.
pub(crate) fn install_handler(signo: i32) -> io::Result<Disposition> {
    // SAFETY: an all-zero sigaction is a valid value (no handler, empty
    // mask, no flags), filled in below.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
    new.sa_flags = libc::SA_RESTART;
    if signo == libc::SIGCHLD {
        // Exits only, not stops.
        new.sa_flags |= libc::SA_NOCLDSTOP;
    }
    // SAFETY: as above.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to valid sigaction values, and the handler
    // only makes async-signal-safe calls.
    if unsafe { libc::sigaction(signo, &new, &mut old) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// Puts back a disposition saved by [`install_handler`].
pub(crate) fn restore_handler(signo: i32, old: &Disposition) {
    // SAFETY: `old` is a disposition sigaction gave us for this signal.
    unsafe { libc::sigaction(signo, old, std::ptr::null_mut()) };
}

/// `kill(2)`; `pid` must be positive (one process, not a group).
pub(crate) fn kill(pid: i32, signo: i32) -> io::Result<()> {
    debug_assert!(pid > 0);
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signo) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the child started by `cmd` inherit `fds` (ours are all
/// close-on-exec; the flag is cleared in the child only).
pub(crate) fn inherit_fds(cmd: &mut std::process::Command, fds: Vec<RawFd>) {
    // SAFETY: the closure runs in the child between fork and exec, where
    // only async-signal-safe calls are allowed: fcntl is one, and the
    // closure neither allocates nor locks (`fds` was built before the fork).
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Takes ownership of `fd`, an fd this process inherited at exec (a
/// worker's IPC socket, a cluster's listening socket), once, and sets
/// close-on-exec on it so our own children do not inherit it too.
pub(crate) fn take_inherited_fd(fd: RawFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::sync::Mutex;
    static TAKEN: Mutex<Vec<RawFd>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    if fd < 3 || taken.contains(&fd) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("inherited fd {fd} was already taken (or is stdio)"),
        ));
    }
    // SAFETY: fcntl(F_SETFD) on any fd number has no memory-safety
    // preconditions; a closed fd gives EBADF, which we return.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(io::Error::last_os_error());
    }
    taken.push(fd);
    // SAFETY: the fd is open (fcntl succeeded), our parent handed it to us
    // for this purpose, and TAKEN makes sure only one OwnedFd is ever made
    // from it, so nothing else closes it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Whether [`ignore_sigxfsz`] changed SIGXFSZ (so children get it back).
static SIGXFSZ_IGNORED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets SIGXFSZ to "ignore" if it has the default action, once per process.
///
/// A write past `RLIMIT_FSIZE` raises SIGXFSZ, whose default action kills
/// the whole process; ignored, the write fails with `EFBIG` instead and the
/// error reaches the caller's callback, as every other I/O error does
/// (found by reliability test T31: a pool-thread `fs::write_file` past the
/// limit killed the process). Rust's runtime does the same for SIGPIPE. A
/// handler the program installed itself is left alone.
pub(crate) fn ignore_sigxfsz() {
    // Miri does not model signal dispositions (no `sigaction`); the pure
    // core it checks never writes files.
    if cfg!(miri) {
        return;
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction is plain data; all-zero is a valid value.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: sigaction with a null new action only reads the current
        // one into `old`, a struct we own.
        if unsafe { libc::sigaction(libc::SIGXFSZ, std::ptr::null(), &mut old) } != 0 {
            return;
        }
        if old.sa_sigaction == libc::SIG_DFL {
            // SAFETY: setting SIG_IGN installs no code and touches no memory.
            unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
            SIGXFSZ_IGNORED.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    });
}

/// Gives a child the default SIGXFSZ back if [`ignore_sigxfsz`] ignored it
/// (an ignored disposition survives exec). Returns whether it installed
/// the reset.
pub(crate) fn restore_sigxfsz_in_child(cmd: &mut std::process::Command) -> bool {
    if !SIGXFSZ_IGNORED.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    // SAFETY: the closure runs in the child between fork and exec; signal()
    // is async-signal-safe, and the closure neither allocates nor locks.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_DFL);
            Ok(())
        });
    }
    true
}

/// Waits until `src` or `stop` is readable (`select(2)`, which, unlike
/// `poll(2)`, watches a terminal on macOS too: libuv's choice for the
/// same job). Returns whether `stop` is. Fds past `FD_SETSIZE` cannot be
/// selected: then it returns `Ok(false)` at once, and the caller's read
/// blocks instead. For the stdin reader thread (`stdio.rs`).
pub(crate) fn wait_readable(src: RawFd, stop: RawFd) -> io::Result<bool> {
    let limit = libc::FD_SETSIZE as RawFd;
    if src < 0 || stop < 0 || src >= limit || stop >= limit {
        return Ok(false);
    }
    loop {
        // SAFETY: fd_set is plain data (all-zero is the empty set); both fds
        // are in 0..FD_SETSIZE (checked above), so FD_SET and FD_ISSET stay
        // inside the set we own; select reads and writes that set only and
        // takes null for the others and for the timeout.
        let (r, stopped) = unsafe {
            let mut set: libc::fd_set = std::mem::zeroed();
            libc::FD_ZERO(&mut set);
            libc::FD_SET(src, &mut set);
            libc::FD_SET(stop, &mut set);
            let r = libc::select(
                src.max(stop) + 1,
                &mut set,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
            (r, r > 0 && libc::FD_ISSET(stop, &set))
        };
        if r >= 0 {
            return Ok(stopped);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
