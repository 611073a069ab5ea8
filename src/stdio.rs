//! Standard input, output and error as loop streams.
//!
//! What the fd is decides how it is driven, as in Node:
//!
//! | fd is | stdin | stdout / stderr |
//! |---|---|---|
//! | a pipe or socket | non-blocking, watched by the reactor | non-blocking writes, queued with backpressure |
//! | a terminal | `/dev/tty` reopened non-blocking (so the shell's own file description is left as it was) | blocking writes (Node's TTY writes are synchronous on POSIX) |
//! | a regular file (or another unpollable fd, like `/dev/null`) | read by a helper thread into a socket pair the loop watches (a file is not pollable) | blocking writes (Node's are synchronous too) |
//!
//! Every function returns a [`Stream`] with the usual callbacks: stdin is
//! read-only, stdout and stderr write-only. Each call makes a new stream on
//! a duplicate of the fd; a pipe switched to non-blocking mode is switched
//! back when its stream closes. While a non-blocking stdout pipe is in use,
//! write all output through it (a `println!` would see `WouldBlock`).

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use crate::net::{PipeReader, PipeWriter, Stream};

/// A terminal or file written with blocking writes.
struct BlockingOut {
    file: File,
    kind: &'static str,
}

impl AsRawFd for BlockingOut {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl crate::net::StreamIo for BlockingOut {
    fn read_some(&self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        (&self.file).write(buf)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        (&self.file).flush()
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn has_read_side(&self) -> bool {
        false
    }
    fn pollable(&self) -> bool {
        false
    }
}

fn is_regular_file(fd: &OwnedFd) -> io::Result<bool> {
    let f = File::from(fd.try_clone()?);
    Ok(f.metadata()?.file_type().is_file())
}

/// Standard input as a readable [`Stream`] (see the module docs for how
/// each kind of fd is read). Set [`on_data`](Stream::on_data) and
/// [`on_end`](Stream::on_end).
///
/// # Panics
/// If no event loop is current on this thread.
pub fn stdin() -> io::Result<Stream> {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        // A separate file description: O_NONBLOCK on it does not touch the
        // shell's (libuv reopens the tty for the same reason).
        let tty = std::fs::OpenOptions::new().read(true).open("/dev/tty")?;
        return pipe_in(OwnedFd::from(tty));
    }
    let fd = stdin.as_fd().try_clone_to_owned()?;
    if is_regular_file(&fd)? {
        return file_in(File::from(fd));
    }
    let spare = fd.try_clone()?;
    match pipe_in(fd) {
        // Not pollable after all (a device such as /dev/null): pump it.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => file_in(File::from(spare)),
        r => r,
    }
}

fn pipe_in(fd: OwnedFd) -> io::Result<Stream> {
    let rx = mio::unix::pipe::Receiver::from(fd);
    rx.set_nonblocking(true)?;
    let kind = "stdin";
    Stream::register(
        Box::new(PipeReader {
            rx,
            kind,
            restore_blocking: true,
        }),
        false,
    )
}

/// A regular file cannot be polled: a helper thread copies it into a
/// socket pair, and the loop reads the other end like any socket. The
/// socket buffer is the backpressure; the thread ends at EOF, or when the
/// stream closes (its write fails).
fn file_in(mut file: File) -> io::Result<Stream> {
    let (ours, mut theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("evloop-stdin-file".into())
        .spawn(move || {
            if let Err(e) = io::copy(&mut file, &mut theirs) {
                log::debug!("stdin file pump: {e}");
            }
        })?;
    let stream = Stream::register(Box::new(mio::net::UnixStream::from_std(ours)), false)?;
    // The pump only writes: end our writing side so the stream closes after
    // EOF.
    stream.end();
    Ok(stream)
}

fn output(fd: std::os::fd::BorrowedFd<'_>, is_tty: bool, kind: &'static str) -> io::Result<Stream> {
    let fd = fd.try_clone_to_owned()?;
    if is_tty || is_regular_file(&fd)? {
        let file = File::from(fd);
        return Stream::register(Box::new(BlockingOut { file, kind }), false);
    }
    let spare = fd.try_clone()?;
    let tx = mio::unix::pipe::Sender::from(fd);
    tx.set_nonblocking(true)?;
    let pipe = PipeWriter {
        tx,
        kind,
        restore_blocking: true,
    };
    match Stream::register(Box::new(pipe), false) {
        // Not pollable (a device such as /dev/null): write it blocking.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let file = File::from(spare);
            Stream::register(Box::new(BlockingOut { file, kind }), false)
        }
        r => r,
    }
}

/// Standard output as a writable [`Stream`], with the same
/// [`write`](Stream::write) / [`on_drain`](Stream::on_drain) backpressure
/// as a socket.
///
/// # Panics
/// If no event loop is current on this thread.
pub fn stdout() -> io::Result<Stream> {
    let out = io::stdout();
    let tty = out.is_terminal();
    output(out.as_fd(), tty, "stdout")
}

/// Standard error as a writable [`Stream`].
///
/// # Panics
/// If no event loop is current on this thread.
pub fn stderr() -> io::Result<Stream> {
    let err = io::stderr();
    let tty = err.is_terminal();
    output(err.as_fd(), tty, "stderr")
}
