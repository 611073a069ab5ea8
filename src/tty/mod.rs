//! Terminals: Node's `tty` module and `process.stdin.setRawMode`.
//!
//! - [`is_tty`] (Node's `tty.isatty(fd)`), and [`stdin_is_tty`],
//!   [`stdout_is_tty`], [`stderr_is_tty`] (Node's `process.stdin.isTTY`);
//! - raw mode, in two shapes: Node's switch [`set_raw_mode`]`(fd, bool)`,
//!   and a guard, [`RawMode`], that puts the terminal back when dropped;
//! - [`window_size`] (Node's `columns` and `rows`), and [`on_resize`]
//!   (Node's `'resize'` event), on `SIGWINCH` through
//!   [`process::on_signal`](crate::process::on_signal).
//!
//! Functions take a raw fd number, as Node's take a number: `0` for stdin
//! (the [`stdio`](crate::stdio) streams read the same terminal, so putting
//! fd 0 in raw mode changes what [`stdio::stdin`](crate::stdio::stdin)
//! delivers). A number that is not open gives `EBADF`, one that is not a
//! terminal `ENOTTY`: errors, never panics.
//!
//! ```
//! use evloop::tty;
//!
//! evloop::run(|| {
//!     if !tty::stdin_is_tty() {
//!         println!("stdin is not a terminal (a pipe, a file, /dev/null)");
//!         return;
//!     }
//!     let raw = tty::RawMode::enable(0).unwrap();
//!     if let Ok((cols, rows)) = tty::window_size(1) {
//!         print!("{cols}x{rows}\r\n");
//!     }
//!     drop(raw); // back to line mode, echo on
//! })
//! .unwrap();
//! ```
//!
//! ## Putting the terminal back
//!
//! A program that leaves the terminal in raw mode leaves the user's shell
//! without echo or line editing, so the settings a terminal had before
//! this process first made it raw are kept (process-wide, with a dup of
//! the fd, so closing your fd does not prevent it) and put back:
//!
//! | when | by |
//! |---|---|
//! | a [`RawMode`] is dropped (an unwinding panic included) | the guard: the settings it found |
//! | [`set_raw_mode`]`(fd, false)`, [`reset_mode`] | the original settings |
//! | the loop that was current when raw mode was set is torn down (the end of [`run`](crate::run), panics that `run` returns as errors included) | the loop: each terminal made raw while it was current |
//! | `exit(3)`: a return from `main`, [`std::process::exit`], a panic that unwinds out of `main` | an `atexit` handler, registered on first use |
//! | a panic under `panic = "abort"` | a panic hook, installed on first use before the previous hook runs |
//!
//! Not covered: a death by signal (`SIGKILL`; `SIGTERM`, `SIGHUP` or
//! `SIGINT` with the default action: install a handler with
//! [`on_signal`] that calls [`reset_mode`]
//! and exits; in raw mode `^C` is a byte, not `SIGINT`), an abort that
//! is not a panic, and `SIGSTOP`/`SIGTSTP` suspending the process (the
//! shell sees raw mode until it resumes). Node covers the same cases and
//! additionally resets on `SIGINT`/`SIGTERM` it handles itself.
//!
//! A terminal is recognised by the device number of the fd given (its
//! `st_rdev`), so fd 0 and its dups are one terminal; an fd opened from
//! `/dev/tty` has that node's number, so switching both it and fd 0 keeps
//! two records: use one fd for raw mode.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, Once};

use crate::event_loop::slots::{LoopLocal, PerLoop, Released};
use crate::event_loop::{try_with_current_ref, LoopState};
use crate::process::{on_signal, Signal, SignalHandle};

mod sys;

/// Whether `fd` is a terminal (Node's `tty.isatty(fd)`): `false` for a
/// pipe, a file, a socket, or a number that is not open.
///
/// ```
/// // The doc tests' stdin is not a terminal when run under CI.
/// println!("stdin is a terminal: {}", evloop::tty::is_tty(0));
/// assert!(!evloop::tty::is_tty(-1));
/// ```
pub fn is_tty(fd: RawFd) -> bool {
    sys::check_tty(fd).is_ok()
}

/// Whether standard input is a terminal (Node's `process.stdin.isTTY`).
pub fn stdin_is_tty() -> bool {
    is_tty(libc::STDIN_FILENO)
}

/// Whether standard output is a terminal (Node's `process.stdout.isTTY`).
pub fn stdout_is_tty() -> bool {
    is_tty(libc::STDOUT_FILENO)
}

/// Whether standard error is a terminal (Node's `process.stderr.isTTY`).
pub fn stderr_is_tty() -> bool {
    is_tty(libc::STDERR_FILENO)
}

/// The terminal's size in character cells, `(columns, rows)` (Node's
/// `process.stdout.columns` and `.rows`; `TIOCGWINSZ`). A terminal that
/// never had a size set reports `(0, 0)`.
///
/// ```
/// match evloop::tty::window_size(1) {
///     Ok((cols, rows)) => println!("{cols} columns, {rows} rows"),
///     Err(e) => println!("stdout is not a terminal: {e}"),
/// }
/// ```
pub fn window_size(fd: RawFd) -> io::Result<(u16, u16)> {
    sys::window_size(fd)
}

/// Calls `cb(columns, rows)` on the loop thread when the terminal on `fd`
/// changes size (Node's `process.stdout.on('resize')`).
///
/// Built on `SIGWINCH`, which the kernel sends to the terminal's
/// foreground process group on a resize: each time it arrives the size is
/// read again, and `cb` runs if it differs from the last one seen (as
/// Node's `_refreshSize`). The fd is duplicated, so closing yours does not
/// stop it; [`close`](SignalHandle::close) the handle to stop.
///
/// Unlike [`on_signal`]'s, the handle starts unref'd, as Node's listener
/// does: it does not keep the loop alive ([`ref_`](SignalHandle::ref_)
/// makes it).
///
/// Fails with `EBADF` or `ENOTTY` if `fd` is not an open terminal.
///
/// ```
/// evloop::run(|| match evloop::tty::on_resize(1, |cols, rows| println!("{cols}x{rows}")) {
///     Ok(handle) => handle.close(),
///     Err(e) => println!("no terminal to watch: {e}"),
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn on_resize(fd: RawFd, mut cb: impl FnMut(u16, u16) + 'static) -> io::Result<SignalHandle> {
    sys::check_tty(fd)?;
    let term = sys::dup(fd)?;
    let mut last = sys::window_size(term.as_raw_fd())?;
    let handle = on_signal(Signal::SIGWINCH, move |_| {
        // A terminal that went away (hung up) has no size: nothing to say.
        if let Ok(size) = sys::window_size(term.as_raw_fd()) {
            if size != last {
                last = size;
                cb(size.0, size.1);
            }
        }
    })?;
    handle.unref();
    Ok(handle)
}

/// Whether the terminal on `fd` is in raw mode now (Node's `isRaw`): line
/// editing and echo both off, whoever switched them.
pub fn is_raw(fd: RawFd) -> io::Result<bool> {
    sys::check_tty(fd)?;
    Ok(sys::is_raw(&sys::get_attr(fd)?))
}

/// Switches the terminal on `fd` into raw mode or back (Node's
/// `process.stdin.setRawMode(bool)`).
///
/// Raw mode is libuv's: each byte is delivered as typed (no line
/// editing), nothing is echoed, and `^C`, `^Z`, `^\`, `^S`, `^Q` arrive as
/// bytes instead of acting; output still turns `\n` into a new line.
/// `true` on a terminal already raw does nothing; `false` puts back the
/// settings the terminal had before this process first made it raw (and
/// does nothing if it never did). Both are restored automatically too:
/// see the [module docs](self) for when.
///
/// ```
/// if evloop::tty::set_raw_mode(0, true).is_ok() {
///     // ... read keys ...
///     evloop::tty::set_raw_mode(0, false).unwrap();
/// } else {
///     println!("stdin is not a terminal");
/// }
/// ```
pub fn set_raw_mode(fd: RawFd, raw: bool) -> io::Result<()> {
    sys::check_tty(fd)?;
    if raw {
        let current = sys::get_attr(fd)?;
        save_original(fd, &current)?;
        return sys::set_attr(fd, &sys::raw(current));
    }
    let device = sys::device(fd)?;
    let saved = take_saved(device);
    match saved {
        Some(s) => sys::set_attr(s.term.as_raw_fd(), &s.original),
        None => Ok(()),
    }
}

/// Puts back every terminal this process made raw, as it was before
/// (libuv's `uv_tty_reset_mode`): for a signal handler of your own that
/// ends the process. Returns the first error, after trying them all.
pub fn reset_mode() -> io::Result<()> {
    let saved = std::mem::take(&mut *lock());
    restore_each(saved)
}

/// Raw mode for as long as the guard lives: [`enable`](RawMode::enable)
/// switches the terminal on `fd` to raw mode (see [`set_raw_mode`]) and
/// dropping the guard puts back the settings it found, on every path out
/// of the scope, an unwinding panic included.
///
/// Guards nest: each puts back what it found, so dropping them in reverse
/// order ends where the first one started.
///
/// ```
/// use evloop::tty::RawMode;
/// match RawMode::enable(0) {
///     Ok(raw) => {
///         // ... read keys ...
///         raw.restore().unwrap(); // or just drop it
///     }
///     Err(e) => println!("no raw mode: {e}"),
/// }
/// ```
pub struct RawMode {
    /// A dup of the caller's fd: restoring works after they closed it.
    term: OwnedFd,
    device: u64,
    /// The settings found by `enable`.
    found: sys::Termios,
    /// Whether the terminal was not raw (through us) before: then this
    /// guard's drop ends the process-wide record too.
    first: bool,
}

impl RawMode {
    /// Switches the terminal on `fd` to raw mode; fails with `EBADF` or
    /// `ENOTTY` if `fd` is not an open terminal, changing nothing.
    pub fn enable(fd: RawFd) -> io::Result<RawMode> {
        sys::check_tty(fd)?;
        let found = sys::get_attr(fd)?;
        let term = sys::dup(fd)?;
        let (device, first) = save_original(fd, &found)?;
        let guard = RawMode {
            term,
            device,
            found,
            first,
        };
        sys::set_attr(guard.term.as_raw_fd(), &sys::raw(found))?;
        Ok(guard)
    }

    /// Puts the settings back now, reporting an error that a drop would
    /// only log.
    pub fn restore(self) -> io::Result<()> {
        let r = self.put_back();
        std::mem::forget(self);
        r
    }

    fn put_back(&self) -> io::Result<()> {
        if self.first {
            drop(take_saved(self.device));
        }
        sys::set_attr(self.term.as_raw_fd(), &self.found)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(e) = self.put_back() {
            log::debug!("tty: restoring the terminal's mode: {e}");
        }
    }
}

impl fmt::Debug for RawMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawMode")
            .field("fd", &self.term.as_raw_fd())
            .field("device", &self.device)
            .finish()
    }
}

// ---- the process-wide record of original settings ----

/// A terminal this process made raw: its settings before, and a dup of
/// an fd on it to put them back through.
struct Saved {
    device: u64,
    term: OwnedFd,
    original: sys::Termios,
}

/// One entry per terminal device, process-wide: `atexit` and the panic
/// hook need it without a loop, and termios settings belong to the device,
/// not to a thread.
static SAVED: Mutex<Vec<Saved>> = Mutex::new(Vec::new());

fn lock() -> MutexGuard<'static, Vec<Saved>> {
    SAVED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records `current` as the terminal's original settings unless this
/// process already made it raw (then those stay the original). Returns the
/// device and whether it was recorded now.
fn save_original(fd: RawFd, current: &sys::Termios) -> io::Result<(u64, bool)> {
    let device = sys::device(fd)?;
    let mut saved = lock();
    if saved.iter().any(|s| s.device == device) {
        return Ok((device, false));
    }
    saved.push(Saved {
        device,
        term: sys::dup(fd)?,
        original: *current,
    });
    drop(saved);
    install_exit_hooks();
    remember_in_loop(device);
    Ok((device, true))
}

fn take_saved(device: u64) -> Option<Saved> {
    let mut saved = lock();
    let i = saved.iter().position(|s| s.device == device)?;
    Some(saved.swap_remove(i))
}

fn restore_each(saved: Vec<Saved>) -> io::Result<()> {
    let mut result = Ok(());
    for s in saved {
        if let Err(e) = sys::set_attr(s.term.as_raw_fd(), &s.original) {
            log::debug!("tty: restoring terminal {}: {e}", s.device);
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}

/// The `atexit` handler. It must not block (a thread may hold the lock
/// when another calls `exit`) nor unwind (it is called from C).
extern "C" fn restore_at_exit() {
    let saved = match SAVED.try_lock() {
        Ok(mut s) => std::mem::take(&mut *s),
        Err(std::sync::TryLockError::Poisoned(p)) => std::mem::take(&mut *p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    let _ = std::panic::catch_unwind(move || restore_each(saved));
}

fn install_exit_hooks() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = sys::at_exit(restore_at_exit) {
            log::warn!("tty: cannot restore the terminal at exit: {e}");
        }
        // Unwinding panics drop guards and end `run` (teardown restores);
        // an aborting one does neither, so restore before it reports.
        #[cfg(panic = "abort")]
        {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_at_exit();
                previous(info);
            }));
        }
    });
}

// ---- the loop's share: restored at its teardown ----

/// The terminals made raw while this loop was current.
#[derive(Default)]
struct LoopTerminals(RefCell<Vec<u64>>);

impl PerLoop for LoopTerminals {
    fn new(_: &LoopState) -> Self {
        LoopTerminals::default()
    }

    /// The loop is ending, as a Node process does when nothing is left:
    /// put its terminals back (those already restored are no longer
    /// recorded). Nothing of user code is held, so nothing is released.
    fn release(&self) -> Released {
        let devices = std::mem::take(&mut *self.0.borrow_mut());
        let saved: Vec<Saved> = devices.into_iter().filter_map(take_saved).collect();
        if let Err(e) = restore_each(saved) {
            log::debug!("tty: restoring at the loop's end: {e}");
        }
        Released::NOTHING
    }
}

static TERMINALS: LoopLocal<LoopTerminals> = LoopLocal::new();

fn remember_in_loop(device: u64) {
    try_with_current_ref(|state| {
        let mut devices = TERMINALS.get(state).0.borrow_mut();
        if !devices.contains(&device) {
            devices.push(device);
        }
    });
}
