//! The promise forms of [`net`](super): connect, read a chunk, write.
//!
//! Each has a `_with_signal` form taking an [`AbortSignal`] as its last
//! argument: aborting rejects the promise with the
//! [`AbortError`] ([`Rejection::is_aborted`](crate::error::Rejection::is_aborted))
//! and releases what the operation held (the connection attempt, the
//! read's hold on the stream, a write still queued). Already aborted,
//! nothing starts.
//!
//! ```no_run
//! use evloop::net::promises as net;
//!
//! evloop::run(|| {
//!     net::connect("127.0.0.1:6379")
//!         .and_then(|stream| {
//!             net::write(&stream, b"PING\r\n").and_then(move |()| net::read(&stream))
//!         })
//!         .then(|reply| println!("{:?}", reply.map(|b| String::from_utf8_lossy(&b).into_owned())))
//!         .catch(|e| eprintln!("redis: {e}"));
//! })
//! .unwrap();
//! ```

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::rc::Rc;

use super::{Stream, ToAddrs};
use crate::abort::{AbortError, AbortSignal};
use crate::listeners::Listener;
use crate::promise::{promisify, Promise};

/// [`net::connect`](super::connect) as a promise: `addr` is any
/// [`ToAddrs`] (a name is resolved on the pool, each address tried in
/// turn); rejects with the last address's error.
///
/// ```
/// use evloop::net::{promises as net, TcpListener};
///
/// evloop::run(|| {
///     let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
///     net::connect(("localhost", server.local_addr().port())).then(move |stream| {
///         stream.end();
///         server.close();
///     });
/// })
/// .unwrap();
/// ```
pub fn connect(addr: impl ToAddrs) -> Promise<Stream> {
    promisify(|done| super::connect(addr, done))
}

/// [`net::connect_unix`](super::connect_unix) as a promise.
pub fn connect_unix(path: impl AsRef<Path>) -> Promise<Stream> {
    promisify(|done| super::connect_unix(path, done))
}

/// [`net::connect_with_signal`](super::connect_with_signal) as a promise:
/// aborted while connecting, it rejects with the [`AbortError`] and the
/// attempt is closed at once (its socket, or its name lookup); connected
/// first, it resolves with the stream, which a later abort destroys (as
/// Node's `net.connect({ signal })` does). (Racing the plain promise,
/// `connect(addr).with_signal(&signal)`, is not the same: an abort then
/// leaves the attempt running, and a stream it makes later stays open with
/// nobody to close it.)
///
/// ```
/// use evloop::abort::AbortController;
/// use evloop::net::{promises as net, TcpListener};
///
/// evloop::run(|| {
///     let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
///     let controller = AbortController::new();
///     let addr = server.local_addr().to_string();
///     net::connect_with_signal(&addr, &controller.signal())
///         .then(|_| unreachable!("aborted before the loop polled"))
///         .catch(move |e| {
///             assert!(e.is_aborted());
///             server.close();
///         });
///     controller.abort(None);
/// })
/// .unwrap();
/// ```
pub fn connect_with_signal(addr: impl ToAddrs, signal: &AbortSignal) -> Promise<Stream> {
    promisify(|done| super::connect_with_signal(addr, signal, done))
}

/// [`connect_unix`] with a signal; see [`connect_with_signal`].
pub fn connect_unix_with_signal(path: impl AsRef<Path>, signal: &AbortSignal) -> Promise<Stream> {
    promisify(|done| super::connect_unix_with_signal(path, signal, done))
}

type ReadDone = Box<dyn FnOnce(io::Result<Option<Vec<u8>>>)>;

/// Reads the next chunk: `Some(bytes)`, or `None` once the peer has ended
/// (Node's `await once(stream, 'data')`, or a read of a paused stream).
///
/// While it waits, it adds its own `data`, `end` and `error` listeners to
/// the stream beside yours (your [`on_data`](Stream::on_data) listeners
/// see the chunk too, as in Node), and removes them once it settles; it
/// pauses the stream after each chunk, so bytes that arrive between reads
/// wait in the kernel (backpressure). An error while a read waits rejects
/// that read; an error while none waits, with no `on_error` listener of
/// yours, is uncaught (see [`crate::on_uncaught_exception`]), as a
/// stream's `'error'` with no listener is.
pub fn read(stream: &Stream) -> Promise<Option<Vec<u8>>> {
    read_slot(stream, Rc::default())
}

/// [`read`], abortable: an abort rejects the promise with the
/// [`AbortError`] and releases the read: the stream is paused and the
/// read's hold on it dropped, so no byte is taken from the kernel for it
/// and none is lost: the next `read` gets the data that came meanwhile.
/// The stream stays open. Already aborted, nothing is read.
///
/// ```
/// use evloop::abort::AbortSignal;
/// use evloop::net::{promises as net, TcpListener};
/// use std::time::Duration;
///
/// evloop::run(|| {
///     // A server that never answers.
///     let server = TcpListener::bind("127.0.0.1:0", |_| {}).unwrap();
///     let addr = server.local_addr().to_string();
///     net::connect(&addr)
///         .and_then(|stream| {
///             let signal = AbortSignal::timeout(Duration::from_millis(10));
///             net::read_with_signal(&stream, &signal).finally(move || {
///                 stream.destroy();
///                 server.close();
///             })
///         })
///         .catch(|e| {
///             assert!(e.is_aborted());
///             None
///         });
/// })
/// .unwrap();
/// ```
pub fn read_with_signal(stream: &Stream, signal: &AbortSignal) -> Promise<Option<Vec<u8>>> {
    if let Some(reason) = signal.reason() {
        return Promise::reject(AbortError::new(reason));
    }
    let slot: Rc<ReadWait> = Rc::default();
    let (held, s) = (slot.clone(), stream.downgrade());
    read_slot(stream, slot).bind_signal(signal, move || {
        // Drop the read's `done`: a chunk it would have taken stays in the
        // kernel for the next read.
        if let Some(s) = s.upgrade() {
            s.pause();
        }
        drop(held.take());
    })
}

/// A pending read: its `done`, and its listeners on the stream, removed
/// when it settles or is aborted (they never stay behind to take chunks or
/// errors that are not theirs).
#[derive(Default)]
struct ReadWait {
    done: Cell<Option<ReadDone>>,
    listeners: Cell<Vec<Listener>>,
}

impl ReadWait {
    /// Takes the read's `done` (once) and removes its listeners.
    fn take(&self) -> Option<ReadDone> {
        for l in self.listeners.take() {
            l.remove();
        }
        self.done.take()
    }
}

/// A read whose pending `done` waits in `slot` (so that an abort can take
/// it back).
fn read_slot(stream: &Stream, slot: Rc<ReadWait>) -> Promise<Option<Vec<u8>>> {
    promisify(move |done: ReadDone| {
        if stream.read_finished() {
            done(Ok(None));
            return;
        }
        slot.done.set(Some(done));
        let (on_data, on_end, on_error) = (slot.clone(), slot.clone(), slot.clone());
        let s = stream.clone();
        let listeners = vec![
            stream.on_data(move |chunk| {
                if let Some(done) = on_data.take() {
                    s.pause();
                    done(Ok(Some(chunk.to_vec())));
                }
            }),
            stream.on_end(move || {
                if let Some(done) = on_end.take() {
                    done(Ok(None));
                }
            }),
            stream.on_error(move |e| {
                if let Some(done) = on_error.take() {
                    done(Err(e));
                }
            }),
        ];
        slot.listeners.set(listeners);
        stream.resume();
    })
}

/// Writes `data` and settles once the kernel has taken all of it, or with
/// the error that closed the stream first ([`Stream::write_with`]).
pub fn write(stream: &Stream, data: &[u8]) -> Promise<()> {
    promisify(|done| {
        stream.write_with(data, done);
    })
}

/// [`write`](fn@write), abortable: an abort rejects the promise with the
/// [`AbortError`]. If bytes of the stream's writes are still queued (the
/// kernel has not taken them all), the stream is **destroyed** with the
/// `AbortError`: a write cut short cannot be taken back, so what follows
/// it on the stream could not be trusted (as a Node stream with
/// `addAbortSignal` is destroyed; tokio's `write_all` is not cancel-safe
/// either). If the kernel has taken everything already, the stream is left
/// alone. Already aborted, nothing is written.
pub fn write_with_signal(stream: &Stream, data: &[u8], signal: &AbortSignal) -> Promise<()> {
    if let Some(reason) = signal.reason() {
        return Promise::reject(AbortError::new(reason));
    }
    // Registered before `with_signal`'s listener: the stream is destroyed
    // before the promise rejects. Removed once the write settles.
    let s = stream.downgrade();
    let listener = Rc::new(signal.on_abort_op(move |reason| {
        let Some(s) = s.upgrade() else { return };
        if s.write_queue_len() > 0 && !s.is_closed() {
            log::debug!("write aborted with bytes queued: stream destroyed");
            s.destroy_with(AbortError::new(reason.clone()).into());
        }
    }));
    promisify(|done| {
        stream.write_with(data, move |r| {
            listener.remove();
            done(r)
        });
    })
    .with_signal(signal)
}
