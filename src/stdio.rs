//! Standard input, output and error as loop streams.
//!
//! What the fd is decides how it is driven, as in Node:
//!
//! | fd is | stdin | stdout / stderr |
//! |---|---|---|
//! | a pipe or socket | non-blocking, watched by the reactor | non-blocking writes, queued with backpressure |
//! | a terminal | `/dev/tty` reopened non-blocking (so the shell's own file description is left as it was) | blocking writes (Node's TTY writes are synchronous on POSIX) |
//! | a regular file | read by a helper thread into a socket pair the loop watches (a file is not pollable) | blocking writes (Node's are synchronous too) |
//! | another fd the poller refuses (`/dev/null` under epoll; a terminal under macOS's kqueue) | read by a blocking reader thread into a pipe the loop watches | blocking writes |
//!
//! Every function returns a [`Stream`] with the usual callbacks: stdin is
//! read-only, stdout and stderr write-only. Each call makes a new stream on
//! a duplicate of the fd; a pipe switched to non-blocking mode is switched
//! back when its stream closes. While a non-blocking stdout pipe is in use,
//! write all output through it (a `println!` would see `WouldBlock`).
//!
//! The reader thread is libuv's answer to the same problem (its `select()`
//! thread for a macOS tty): it waits with `select(2)` on the fd and on a
//! stop pipe, reads, and writes what it read into a pipe whose other end
//! the loop watches as usual, so the stream behaves as for a pipe. The
//! pipe's buffer bounds the memory: while the loop has not read what the
//! thread sent, the thread's write blocks and it reads nothing more. When
//! the stream closes, the stop pipe wakes the thread and it ends; at EOF
//! (or a read error, logged) the thread ends and the stream sees its end.
//! This path is exercised on Linux by forcing it in the unit tests; on
//! macOS it is what a terminal stdin takes (checked there by `cargo
//! check`, not run).

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
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
        return pollable_or_thread(OwnedFd::from(tty));
    }
    let fd = stdin.as_fd().try_clone_to_owned()?;
    if is_regular_file(&fd)? {
        return file_in(File::from(fd));
    }
    pollable_or_thread(fd)
}

/// Whether registering an fd failed because the poller cannot watch that
/// kind of fd: epoll says `EPERM` (`/dev/null`, a regular file), kqueue
/// says `EINVAL` (a terminal on macOS).
fn unpollable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EINVAL))
}

/// Reads `fd` through the reactor, or through the reader thread if the
/// poller refuses it.
fn pollable_or_thread(fd: OwnedFd) -> io::Result<Stream> {
    let spare = fd.try_clone()?;
    match pipe_in(fd) {
        // The refused PipeReader has put the fd back in blocking mode.
        Err(e) if unpollable(&e) => thread_in(spare).map(|(stream, _)| stream),
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

/// A pipe's read end fed by the reader thread, and the stop pipe's write
/// end: dropping it (the stream closed) wakes the thread to end.
struct ThreadFed {
    rx: crate::net::PipeReader,
    _stop: OwnedFd,
}

impl AsRawFd for ThreadFed {
    fn as_raw_fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }
}

impl crate::net::StreamIo for ThreadFed {
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.rx.read_some(buf)
    }
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        self.rx.write_some(buf)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.rx.shutdown_write()
    }
    fn kind(&self) -> &'static str {
        self.rx.kind()
    }
    fn has_write_side(&self) -> bool {
        self.rx.has_write_side()
    }
}

/// Reads `src` (blocking) in a thread that writes what it reads into a
/// pipe the loop watches: for an fd the poller refuses, such as a terminal
/// under kqueue (see the module docs). Returns the thread's handle too, for
/// the tests.
fn thread_in(src: OwnedFd) -> io::Result<(Stream, std::thread::JoinHandle<()>)> {
    let src = mio::unix::pipe::Receiver::from(src);
    src.set_nonblocking(false)?;
    let (data_tx, data_rx) = mio::unix::pipe::new()?;
    data_tx.set_nonblocking(false)?;
    let (stop_tx, stop_rx) = mio::unix::pipe::new()?;
    let thread = std::thread::Builder::new()
        .name("evloop-stdin-reader".into())
        .spawn(move || {
            if let Err(e) = reader_thread(src, data_tx, stop_rx) {
                log::debug!("stdin reader thread: {e}");
            }
        })?;
    let rx = crate::net::PipeReader {
        rx: data_rx,
        kind: "stdin",
        restore_blocking: false,
    };
    let io = ThreadFed {
        rx,
        _stop: OwnedFd::from(stop_tx),
    };
    Ok((Stream::register(Box::new(io), false)?, thread))
}

/// The reader thread's body: select, read a chunk, write it all to the
/// loop's pipe (blocking while the loop has not read what came before),
/// until EOF, an error, or the stop pipe. (A write after the stream closed
/// fails with `EPIPE`: SIGPIPE is ignored, as Rust's runtime sets it.)
fn reader_thread(
    src: mio::unix::pipe::Receiver,
    data: mio::unix::pipe::Sender,
    stop: mio::unix::pipe::Receiver,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if crate::sys::wait_readable(src.as_raw_fd(), stop.as_raw_fd())? {
            return Ok(());
        }
        let n = match (&src).read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        match (&data).write_all(&buf[..n]) {
            Ok(()) => {}
            // The stream closed while we held a chunk: nobody wants it.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e),
        }
    }
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
        Err(e) if unpollable(&e) => {
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

#[cfg(test)]
mod tests {
    //! The reader-thread path, forced on Linux (where epoll takes the tty
    //! and pipes itself): the same bytes and end as through the reactor,
    //! bounded memory while paused, and a thread that ends with its stream.
    use super::*;
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// A pipe for a test to write into (blocking) and its read end as an fd.
    fn source() -> (File, OwnedFd) {
        let (tx, rx) = mio::unix::pipe::new().unwrap();
        tx.set_nonblocking(false).unwrap();
        (File::from(OwnedFd::from(tx)), OwnedFd::from(rx))
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn wait_finished(t: &std::thread::JoinHandle<()>) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while !t.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        t.is_finished()
    }

    #[test]
    fn the_poller_refusals_are_recognised() {
        assert!(unpollable(&io::Error::from_raw_os_error(libc::EPERM)));
        assert!(unpollable(&io::Error::from_raw_os_error(libc::EINVAL)));
        assert!(!unpollable(&io::Error::from_raw_os_error(libc::EBADF)));
    }

    #[test]
    #[cfg_attr(miri, ignore = "select(2), and megabytes through pipes")]
    fn the_reader_thread_delivers_every_byte_then_the_end() {
        let data = payload(300_000);
        let (mut w, r) = source();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            for chunk in sent.chunks(7_000) {
                w.write_all(chunk).unwrap();
            }
        });
        let got = Rc::new(RefCell::new(Vec::new()));
        let ended = Rc::new(Cell::new(false));
        let reader = Rc::new(RefCell::new(None));
        let (g, e, rd) = (got.clone(), ended.clone(), reader.clone());
        crate::run(move || {
            let (stream, thread) = thread_in(r).unwrap();
            *rd.borrow_mut() = Some(thread);
            stream.on_data(move |b| g.borrow_mut().extend_from_slice(b));
            stream.on_end(move || e.set(true));
        })
        .unwrap();
        writer.join().unwrap();
        assert!(ended.get(), "no end");
        assert!(*got.borrow() == data, "bytes differ");
        let thread = reader.borrow_mut().take().unwrap();
        assert!(wait_finished(&thread), "the reader thread outlived EOF");
    }

    #[test]
    #[cfg_attr(miri, ignore = "select(2), and megabytes through pipes")]
    fn an_unpollable_stdin_takes_the_thread_and_ends() {
        // /dev/null: epoll refuses it (EPERM), as kqueue refuses a macOS
        // tty (EINVAL); either way the stream ends at once.
        let null = OwnedFd::from(File::open("/dev/null").unwrap());
        let ended = Rc::new(Cell::new(false));
        let e = ended.clone();
        crate::run(move || {
            let stream = pollable_or_thread(null).unwrap();
            stream.on_data(|b| panic!("data from /dev/null: {b:?}"));
            stream.on_end(move || e.set(true));
        })
        .unwrap();
        assert!(ended.get());
    }

    #[test]
    #[cfg_attr(miri, ignore = "select(2), and megabytes through pipes")]
    fn a_paused_stream_holds_the_thread_back() {
        let data = payload(2 << 20);
        let (mut w, r) = source();
        let written = Arc::new(AtomicUsize::new(0));
        let (sent, wr) = (data.clone(), written.clone());
        let writer = std::thread::spawn(move || {
            for chunk in sent.chunks(4096) {
                w.write_all(chunk).unwrap();
                wr.fetch_add(chunk.len(), Ordering::SeqCst);
            }
        });
        let got = Rc::new(RefCell::new(Vec::new()));
        let held = Rc::new(Cell::new(usize::MAX));
        let (g, h, wr) = (got.clone(), held.clone(), written.clone());
        crate::run(move || {
            let (stream, _thread) = thread_in(r).unwrap();
            stream.pause();
            stream.on_data(move |b| g.borrow_mut().extend_from_slice(b));
            let s = stream.clone();
            crate::set_timeout(Duration::from_millis(300), move || {
                h.set(wr.load(Ordering::SeqCst));
                s.resume();
            });
        })
        .unwrap();
        writer.join().unwrap();
        // Two pipe buffers and the thread's chunk, not the 2 MiB.
        assert!(
            held.get() <= 1 << 20,
            "{} bytes taken while paused",
            held.get()
        );
        assert!(*got.borrow() == data, "bytes differ");
    }

    #[test]
    #[cfg_attr(miri, ignore = "select(2), and megabytes through pipes")]
    fn closing_the_stream_ends_a_waiting_thread() {
        let (w, r) = source();
        let reader = Rc::new(RefCell::new(None));
        let rd = reader.clone();
        crate::run(move || {
            let (stream, thread) = thread_in(r).unwrap();
            *rd.borrow_mut() = Some(thread);
            let s = stream.clone();
            crate::set_timeout(Duration::from_millis(50), move || s.destroy());
        })
        .unwrap();
        let thread = reader.borrow_mut().take().unwrap();
        assert!(wait_finished(&thread), "the thread still waits for input");
        drop(w);
    }
}
