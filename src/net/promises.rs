//! The promise forms of [`net`](super): connect, read a chunk, write.
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
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use super::Stream;
use crate::promise::{promisify, Promise};

/// [`net::connect`](super::connect) as a promise.
pub fn connect(addr: &str) -> Promise<Stream> {
    promisify(|done| super::connect(addr, done))
}

/// [`net::connect_addr`](super::connect_addr) as a promise.
pub fn connect_addr(addr: SocketAddr) -> Promise<Stream> {
    promisify(|done| super::connect_addr(addr, done))
}

/// [`net::connect_unix`](super::connect_unix) as a promise.
pub fn connect_unix(path: impl AsRef<Path>) -> Promise<Stream> {
    promisify(|done| super::connect_unix(path, done))
}

type ReadDone = Box<dyn FnOnce(io::Result<Option<Vec<u8>>>)>;

/// Reads the next chunk: `Some(bytes)`, or `None` once the peer has ended
/// (Node's `await once(stream, 'data')`, or a read of a paused stream).
///
/// It takes over the stream's `on_data`, `on_end` and `on_error` callbacks
/// and pauses the stream after each chunk, so bytes that arrive between
/// reads wait in the kernel (backpressure). Don't mix it with your own
/// `on_data` on the same stream. An error while a read waits rejects that
/// read; an error while none waits is uncaught (see
/// [`crate::on_uncaught_exception`]), as a stream's `'error'` with no
/// listener is.
pub fn read(stream: &Stream) -> Promise<Option<Vec<u8>>> {
    promisify(|done: ReadDone| {
        if stream.read_finished() {
            done(Ok(None));
            return;
        }
        let slot: Rc<Cell<Option<ReadDone>>> = Rc::new(Cell::new(Some(done)));
        let (on_data, on_end, on_error) = (slot.clone(), slot.clone(), slot);
        let s = stream.clone();
        stream
            .on_data(move |chunk| {
                if let Some(done) = on_data.take() {
                    s.pause();
                    done(Ok(Some(chunk.to_vec())));
                }
            })
            .on_end(move || {
                if let Some(done) = on_end.take() {
                    done(Ok(None));
                }
            })
            .on_error(move |e| match on_error.take() {
                Some(done) => done(Err(e)),
                // No read waits: nobody listens for the error, which is
                // then uncaught, as after Node's `once(stream, 'data')`.
                None => crate::event_loop::report_uncaught(crate::Error::UnhandledError {
                    emitter: "stream",
                    error: e,
                }),
            });
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
