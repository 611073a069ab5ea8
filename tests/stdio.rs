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
