//! The `tty` module in pseudo-terminals made by each test (`openpty`), so
//! the tests need no terminal of their own: is_tty, raw mode and its
//! restoration, the window size, resize events, errors for bad fds, and
//! `examples/keys.rs` driven through a pty.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::tty;

/// A pseudo-terminal pair: the master (the "terminal emulator" side) and
/// the slave (what a program sees as its terminal).
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

fn openpty() -> Pty {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: both out-pointers point at our ints; the name, termios and
    // winsize arguments may be null.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            // `*const` on Linux, `*mut` on the BSDs: null_mut fits both.
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty just opened both fds for us; nothing else owns them.
    unsafe {
        Pty {
            master: OwnedFd::from_raw_fd(m),
            slave: OwnedFd::from_raw_fd(s),
        }
    }
}

fn lflag(fd: RawFd) -> libc::tcflag_t {
    // SAFETY: termios is plain data; tcgetattr writes into ours.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd, &mut t), 0);
        t.c_lflag
    }
}

fn set_size(fd: RawFd, cols: u16, rows: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, ours.
    assert_eq!(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) }, 0);
}

/// Taken by every test that switches modes: `reset_mode` restores every
/// terminal in the process, other tests' ptys included.
static MODES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn modes() -> std::sync::MutexGuard<'static, ()> {
    MODES.lock().unwrap_or_else(|p| p.into_inner())
}

fn cooked(fd: RawFd) -> bool {
    let l = lflag(fd);
    l & libc::ICANON != 0 && l & libc::ECHO != 0
}

fn raw(fd: RawFd) -> bool {
    let l = lflag(fd);
    l & libc::ICANON == 0 && l & libc::ECHO == 0
}

#[test]
fn a_pty_slave_is_a_tty_and_a_pipe_is_not() {
    let pty = openpty();
    assert!(tty::is_tty(pty.slave.as_raw_fd()));
    let (rx, tx) = std::os::unix::net::UnixStream::pair().unwrap();
    assert!(!tty::is_tty(rx.as_raw_fd()));
    drop(tx);
    let (prx, ptx) = mio::unix::pipe::new().unwrap();
    assert!(!tty::is_tty(prx.as_raw_fd()));
    assert!(!tty::is_tty(ptx.as_raw_fd()));
    assert!(!tty::is_tty(-1));
}

#[test]
fn set_raw_mode_switches_icanon_and_echo_and_back() {
    let _modes = modes();
    let pty = openpty();
    let fd = pty.slave.as_raw_fd();
    assert!(cooked(fd));
    assert!(!tty::is_raw(fd).unwrap());
    tty::set_raw_mode(fd, true).unwrap();
    assert!(raw(fd));
    assert!(lflag(fd) & libc::ISIG == 0, "^C is a byte in raw mode");
    assert!(tty::is_raw(fd).unwrap());
    // Idempotent, as Node's: the original stays the one to go back to.
    tty::set_raw_mode(fd, true).unwrap();
    tty::set_raw_mode(fd, false).unwrap();
    assert!(cooked(fd));
    assert!(lflag(fd) & libc::ISIG != 0);
    // false without true first changes nothing.
    tty::set_raw_mode(fd, false).unwrap();
    assert!(cooked(fd));
}

#[test]
fn the_guard_restores_on_drop_and_nests() {
    let _modes = modes();
    let pty = openpty();
    let fd = pty.slave.as_raw_fd();
    let outer = tty::RawMode::enable(fd).unwrap();
    assert!(raw(fd));
    let inner = tty::RawMode::enable(fd).unwrap();
    drop(inner);
    assert!(raw(fd), "the inner guard puts back what it found: raw");
    drop(outer);
    assert!(cooked(fd));

    // restore() reports; the caller's fd may be closed by then.
    let dup = pty.slave.try_clone().unwrap();
    let guard = tty::RawMode::enable(dup.as_raw_fd()).unwrap();
    drop(dup);
    assert!(raw(fd));
    guard.restore().unwrap();
    assert!(cooked(fd));
}

#[test]
fn the_guard_restores_on_an_unwinding_panic() {
    let _modes = modes();
    let pty = openpty();
    let fd = pty.slave.as_raw_fd();
    let r = std::panic::catch_unwind(|| {
        let _raw = tty::RawMode::enable(fd).unwrap();
        assert!(raw(fd));
        panic!("while raw");
    });
    assert!(r.is_err());
    assert!(cooked(fd));
}

#[test]
fn the_loop_restores_at_teardown() {
    let _modes = modes();
    let pty = openpty();
    let fd = pty.slave.as_raw_fd();
    evloop::run(move || {
        // Node-style, no guard: the loop's end puts it back.
        tty::set_raw_mode(fd, true).unwrap();
        evloop::set_timeout(Duration::from_millis(5), move || assert!(raw(fd)));
    })
    .unwrap();
    assert!(cooked(fd));

    // Also when the run ends with a panic's error.
    let r = evloop::run(move || {
        tty::set_raw_mode(fd, true).unwrap();
        evloop::set_immediate(|| panic!("uncaught"));
    });
    assert!(r.is_err());
    assert!(cooked(fd));
}

#[test]
fn reset_mode_restores_every_terminal() {
    let _modes = modes();
    let (a, b) = (openpty(), openpty());
    tty::set_raw_mode(a.slave.as_raw_fd(), true).unwrap();
    let _guard = tty::RawMode::enable(b.slave.as_raw_fd()).unwrap();
    tty::reset_mode().unwrap();
    assert!(cooked(a.slave.as_raw_fd()));
    assert!(cooked(b.slave.as_raw_fd()));
}

#[test]
fn the_window_size_set_on_the_master_is_read_back() {
    let pty = openpty();
    set_size(pty.master.as_raw_fd(), 132, 43);
    assert_eq!(tty::window_size(pty.slave.as_raw_fd()).unwrap(), (132, 43));
    set_size(pty.master.as_raw_fd(), 80, 24);
    assert_eq!(tty::window_size(pty.slave.as_raw_fd()).unwrap(), (80, 24));
}

#[test]
fn a_resize_reaches_on_resize_with_the_new_size() {
    let pty = openpty();
    set_size(pty.master.as_raw_fd(), 80, 24);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    let master = pty.master.as_raw_fd();
    let slave = pty.slave.as_raw_fd();
    evloop::run(move || {
        let handle =
            tty::on_resize(slave, move |cols, rows| s.borrow_mut().push((cols, rows))).unwrap();
        // A SIGWINCH with no change says nothing (Node's _refreshSize).
        evloop::process::kill(std::process::id(), evloop::process::Signal::SIGWINCH).unwrap();
        evloop::set_timeout(Duration::from_millis(50), move || {
            set_size(master, 100, 30);
            // Sent by hand: the kernel sends it to the pty's foreground
            // group, and this process is not in one.
            evloop::process::kill(std::process::id(), evloop::process::Signal::SIGWINCH).unwrap();
        });
        // The handle is unref'd: a timer keeps the loop up meanwhile.
        evloop::set_timeout(Duration::from_millis(300), move || handle.close());
    })
    .unwrap();
    assert_eq!(*seen.borrow(), [(100, 30)]);
}

#[test]
fn bad_fds_are_errors_not_panics() {
    let (rx, _tx) = mio::unix::pipe::new().unwrap();
    let pipe = rx.as_raw_fd();
    let codes = |e: std::io::Error| e.raw_os_error();
    for fd in [-1, 99_999] {
        assert_eq!(codes(tty::window_size(fd).unwrap_err()), Some(libc::EBADF));
        assert_eq!(
            codes(tty::set_raw_mode(fd, true).unwrap_err()),
            Some(libc::EBADF)
        );
        assert_eq!(
            codes(tty::RawMode::enable(fd).unwrap_err()),
            Some(libc::EBADF)
        );
        assert_eq!(codes(tty::is_raw(fd).unwrap_err()), Some(libc::EBADF));
    }
    assert_eq!(
        codes(tty::window_size(pipe).unwrap_err()),
        Some(libc::ENOTTY)
    );
    assert_eq!(
        codes(tty::set_raw_mode(pipe, true).unwrap_err()),
        Some(libc::ENOTTY)
    );
    assert_eq!(
        codes(tty::set_raw_mode(pipe, false).unwrap_err()),
        Some(libc::ENOTTY)
    );
    assert_eq!(
        codes(tty::RawMode::enable(pipe).unwrap_err()),
        Some(libc::ENOTTY)
    );
    evloop::run(move || {
        let e = tty::on_resize(pipe, |_, _| unreachable!()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
        let e = tty::on_resize(-1, |_, _| unreachable!()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    })
    .unwrap();
}

// ---- examples/keys.rs in a pty ----

/// The example's binary: built by `cargo test` beside this test's, or
/// built here when only this test file was asked for.
fn keys_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap(); // target/debug
    let bin = dir.join("examples").join("keys");
    if !bin.exists() {
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--example", "keys"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "cargo build --example keys");
    }
    bin
}

/// Reads the master until `want` appears in everything read (or 10 s).
fn read_until(master: &mut std::fs::File, all: &mut String, want: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while !all.contains(want) {
        assert!(Instant::now() < end, "no {want:?} in {all:?}");
        match master.read(&mut buf) {
            Ok(0) => panic!("EOF before {want:?} in {all:?}"),
            Ok(n) => all.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO: the child closed the slave (it exited).
            Err(e) => panic!("{e} before {want:?} in {all:?}"),
        }
    }
}

#[test]
fn the_keys_example_names_keys_redraws_on_resize_and_quits_on_q() {
    use std::os::unix::process::CommandExt;
    let bin = keys_binary();
    let pty = openpty();
    set_size(pty.master.as_raw_fd(), 60, 20);
    let slave = pty.slave.as_raw_fd();
    let mut cmd = std::process::Command::new(bin);
    cmd.stdin(pty.slave.try_clone().unwrap())
        .stdout(pty.slave.try_clone().unwrap())
        .stderr(pty.slave.try_clone().unwrap());
    // SAFETY: between fork and exec: setsid and ioctl are async-signal-safe
    // and nothing is allocated. The pty becomes the child's controlling
    // terminal, so its /dev/tty is the pty and it gets SIGWINCH.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut master = std::fs::File::from(pty.master.try_clone().unwrap());
    let mut all = String::new();
    read_until(&mut master, &mut all, "press keys");
    // Wait until raw mode is on before typing (or the line discipline
    // would hold the bytes for a newline).
    let end = Instant::now() + Duration::from_secs(10);
    while !raw(slave) {
        assert!(Instant::now() < end, "never raw");
        std::thread::sleep(Duration::from_millis(10));
    }
    for (keys, name) in [
        (&b"\x1b[A"[..], "key: up"),
        (b"\x1b[D", "key: left"),
        (b"\r", "key: enter"),
        (b"\x18", "key: ctrl-x"),
        (b"a", "key: a"),
        (b"\x03", "key: ctrl-c"),
    ] {
        master.write_all(keys).unwrap();
        read_until(&mut master, &mut all, name);
    }
    // The kernel sends SIGWINCH to the pty's foreground group: the child.
    set_size(pty.master.as_raw_fd(), 100, 30);
    read_until(&mut master, &mut all, "resized to 100x30");
    master.write_all(b"q").unwrap();
    read_until(&mut master, &mut all, "bye");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(cooked(slave), "the terminal is back in line mode");
}

#[test]
fn the_keys_example_exits_0_without_a_terminal() {
    let out = std::process::Command::new(keys_binary())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not a terminal"));
}

/// The child half of the test below: raw mode on its stdin (the pty),
/// then `exit` with nothing dropped and no loop torn down.
#[test]
fn exit_child_leaves_raw_mode_on_stdin() {
    if std::env::var_os("EVLOOP_TTY_EXIT_CHILD").is_none() {
        return;
    }
    tty::set_raw_mode(0, true).unwrap();
    let guard = tty::RawMode::enable(0).unwrap();
    assert!(raw(0));
    std::mem::forget(guard);
    std::process::exit(0);
}

#[test]
fn the_terminal_is_restored_at_exit() {
    let pty = openpty();
    let slave = pty.slave.as_raw_fd();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "exit_child_leaves_raw_mode_on_stdin",
            "--nocapture",
        ])
        .env("EVLOOP_TTY_EXIT_CHILD", "1")
        .stdin(pty.slave.try_clone().unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(cooked(slave), "atexit put the terminal back");
}
