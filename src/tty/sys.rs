//! The terminal's FFI: `isatty`, `tcgetattr`/`tcsetattr`, the window-size
//! `ioctl`, `fstat` for a terminal's device number, `dup`, and `atexit`.
//! Each `unsafe` block says why it holds; [`super`] has none.
//!
//! It lives beside the `tty` module rather than in the crate's `sys.rs`
//! because nothing below the callback layer needs a terminal; it is
//! ground-floor code all the same (it imports nothing from the crate).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A terminal's settings, as `tcgetattr` reports them.
pub(super) type Termios = libc::termios;

/// `isatty(3)`: `Ok(())` for a terminal, else the reason (`EBADF`,
/// `ENOTTY`, ...).
pub(super) fn check_tty(fd: RawFd) -> io::Result<()> {
    // SAFETY: isatty only reads the fd's kind; any fd number, open or not,
    // is a valid argument (a bad one gives 0 and EBADF).
    if unsafe { libc::isatty(fd) } == 1 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    // Some systems report EINVAL for an fd that is open but not a tty.
    Err(match e.raw_os_error() {
        Some(libc::EBADF) | Some(libc::ENOTTY) => e,
        _ => io::Error::from_raw_os_error(libc::ENOTTY),
    })
}

/// `tcgetattr(3)`.
pub(super) fn get_attr(fd: RawFd) -> io::Result<Termios> {
    // SAFETY: termios is plain data; all-zero is a valid value, and
    // tcgetattr overwrites it.
    let mut t: Termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a termios we own; tcgetattr writes only into it.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(t)
}

/// `tcsetattr(3)`, after output already written has drained
/// (`TCSADRAIN`, as libuv sets modes), retried on `EINTR`.
pub(super) fn set_attr(fd: RawFd, t: &Termios) -> io::Result<()> {
    loop {
        // SAFETY: `t` points at a valid termios for the call's duration;
        // tcsetattr only reads it.
        if unsafe { libc::tcsetattr(fd, libc::TCSADRAIN, t) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Whether `t` is our raw mode: no canonical input, no echo.
pub(super) fn is_raw(t: &Termios) -> bool {
    t.c_lflag & (libc::ICANON | libc::ECHO) == 0
}

/// `t` in raw mode, libuv's `UV_TTY_MODE_RAW` (what Node's `setRawMode`
/// asks for): bytes as they are typed (no line editing, `VMIN` 1), no
/// echo, no signals from `^C`/`^Z`/`^\` (they arrive as bytes), no
/// `^S`/`^Q` flow control and no CR-to-NL on input. Unlike
/// `cfmakeraw`, output processing stays on, so `\n` still starts a line.
pub(super) fn raw(mut t: Termios) -> Termios {
    t.c_iflag &= !(libc::BRKINT | libc::ICRNL | libc::INPCK | libc::ISTRIP | libc::IXON);
    t.c_oflag |= libc::ONLCR;
    t.c_cflag |= libc::CS8;
    t.c_lflag &= !(libc::ECHO | libc::ICANON | libc::IEXTEN | libc::ISIG);
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    t
}

/// The terminal's size in character cells, `(columns, rows)`
/// (`TIOCGWINSZ`).
pub(super) fn window_size(fd: RawFd) -> io::Result<(u16, u16)> {
    // SAFETY: winsize is plain data; all-zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which
    // points at ours; any fd number is a valid argument (a bad one gives
    // EBADF, a non-terminal ENOTTY).
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((ws.ws_col, ws.ws_row))
}

/// The device number of the terminal open on `fd` (`st_rdev`): termios
/// settings belong to the device, so this is what identifies a terminal
/// across fds and dups.
pub(super) fn device(fd: RawFd) -> io::Result<u64> {
    // SAFETY: stat is plain data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one stat into ours; any fd number is valid.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // `dev_t` is u64 on Linux, i32 on macOS, u64 on FreeBSD.
    #[allow(clippy::unnecessary_cast)]
    Ok(st.st_rdev as u64)
}

/// A close-on-exec duplicate of `fd`, owned: kept so the terminal can be
/// restored even after the caller closed its own fd.
pub(super) fn dup(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC has no memory-safety preconditions; a bad fd
    // gives EBADF.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` is a fresh fd that fcntl just opened for us and that
    // nothing else knows of, so this OwnedFd is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Registers `f` to run at `exit(3)` (a return from `main` included).
pub(super) fn at_exit(f: extern "C" fn()) -> io::Result<()> {
    // SAFETY: `f` is a plain function that lives for the whole program;
    // atexit stores the pointer and calls it once, at exit.
    if unsafe { libc::atexit(f) } != 0 {
        return Err(io::Error::other("atexit failed"));
    }
    Ok(())
}
