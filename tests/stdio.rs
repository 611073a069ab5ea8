//! stdin and stdout as loop streams, through the `cat` example (which
//! `cargo test` builds): a pipe, a regular file and /dev/null on stdin; a
//! pipe and a file on stdout; a reader that goes away early.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn cat() -> PathBuf {
    example("cat")
}

/// The path of example `name`, built if `cargo test` did not build it.
fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/stdio-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let cat = dir.join("examples").join(name);
    if !cat.exists() {
        // `cargo test --test stdio` alone does not build examples.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "--example", name])
            .status()
            .unwrap();
        assert!(
            ok.success() && cat.exists(),
            "cannot build {}",
            cat.display()
        );
    }
    cat
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("evloop-stdio-{}-{name}", std::process::id()))
}

/// Runs `exe` with `input` written to its stdin pipe (from a thread, so
/// neither pipe can fill up and stall) and returns its stdout; asserts it
/// exited successfully.
fn pipe_through(exe: &std::path::Path, input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&feed).unwrap());
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    out
}

#[test]
fn a_pipe_in_and_a_pipe_out() {
    let input = data(8 << 20);
    let out = pipe_through(&cat(), &input);
    assert!(out == input, "output differs ({} bytes)", out.len());
}

#[test]
fn a_regular_file_in_and_a_file_out() {
    let input = data(3 << 20);
    let (src, dst) = (temp("in"), temp("out"));
    std::fs::write(&src, &input).unwrap();
    let status = Command::new(cat())
        .stdin(std::fs::File::open(&src).unwrap())
        .stdout(std::fs::File::create(&dst).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let out = std::fs::read(&dst).unwrap();
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    assert!(out == input);
}

#[test]
fn dev_null_in_gives_empty_output() {
    let out = Command::new(cat())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn a_reader_that_closes_early_ends_the_copy() {
    let mut child = Command::new(cat())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        // Keeps writing until cat stops reading and closes its stdin.
        for _ in 0..10_000 {
            if stdin.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    let mut first = [0u8; 100];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take()); // the reader goes away
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    writer.join().unwrap();
}

/// The async twin (`examples/cat_async.rs`, on `evloop::task::stdin` and
/// `stdout`): a pipe in and out, and a regular file in.
#[test]
fn the_async_cat_copies_a_pipe_and_a_file() {
    let input = data(4 << 20);
    let out = pipe_through(&example("cat_async"), &input);
    assert_eq!(out.len(), input.len());
    assert!(out == input, "piped bytes differ");

    let path = temp("async-in");
    std::fs::write(&path, &input).unwrap();
    let out = Command::new(example("cat_async"))
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(out.status.success());
    assert!(out.stdout == input, "file bytes differ");
}

/// A terminal on stdin returns one line per read, however many are waiting
/// (canonical mode), and raises no new edge for the lines left: lines
/// pasted at once must all arrive, not just the first. Runs `cat` with a
/// pseudo-terminal as its controlling terminal and stdin (echo off), its
/// stdout to a file. Before the fix only "a\n" arrived.
#[test]
fn lines_pasted_into_a_terminal_all_arrive() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let (mut master, slave) = {
        let (mut m, mut s) = (-1, -1);
        // SAFETY: openpty writes two fds into the ints we pass; the null
        // name, termios and winsize pointers are allowed.
        let r = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both fds were just opened and are owned by nobody else.
        unsafe {
            (
                std::fs::File::from(OwnedFd::from_raw_fd(m)),
                OwnedFd::from_raw_fd(s),
            )
        }
    };
    // Echo off, so nothing but the program's own reads touch the terminal.
    // SAFETY: tcgetattr/tcsetattr read and write the termios we own.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(slave.as_raw_fd(), &mut t), 0);
        t.c_lflag &= !(libc::ECHO | libc::ECHONL);
        assert_eq!(libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t), 0);
    }
    let out = temp("tty-out");
    let mut cmd = Command::new(cat());
    cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(std::fs::File::create(&out).unwrap());
    // SAFETY: setsid and ioctl are async-signal-safe; they make the pty
    // (the child's stdin) its controlling terminal, so /dev/tty is it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(slave);
    // Give cat time to start reading, then "paste" three lines at once.
    std::thread::sleep(std::time::Duration::from_millis(300));
    master.write_all(b"a\nb\nc\n").unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut got = Vec::new();
    while std::time::Instant::now() < end {
        got = std::fs::read(&out).unwrap();
        if got.len() >= 6 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_file(&out).ok();
    assert_eq!(String::from_utf8_lossy(&got), "a\nb\nc\n");
}
