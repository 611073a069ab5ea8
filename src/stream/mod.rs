//! Streams that compose: Node's `stream.pipeline` for evloop's callback
//! streams.
//!
//! Two small traits say what a pipeline needs from a stage: a
//! [`Readable`] gives chunks and can be paused, a [`Writable`] takes
//! chunks, says when to stop (`write` returning `false`) and when to go on
//! (drain), and can be ended. [`net::Stream`](crate::net::Stream) (TCP,
//! Unix sockets, pipes, stdio, a child's stdio) is both; the file streams
//! of [`fs`](crate::fs) are one each. A stage in the middle is a
//! [`Duplex`]: a writable side and a readable side, which may be one
//! socket (an echo peer) or two pipes (a child process's stdin and
//! stdout, [`Duplex::from_child`]).
//!
//! [`pipeline`] connects them with Node's rules: backpressure on every
//! link, the end passed on, the first error destroying every stage, and
//! `done` called exactly once. [`promises::pipeline`] is its promise form
//! (Node's `stream/promises`).
//!
//! This is its own module, not part of `net` or `fs`, because it joins
//! both (and `process`): it sits on the callback layer, beside them, as
//! Node's `stream` module sits beside `net` and `fs`.
//!
//! ```
//! use evloop::fs::{create_read_stream, create_write_stream};
//! use evloop::process::{Command, Stdio};
//! use evloop::stream::{pipeline, Duplex};
//!
//! let dir = std::env::temp_dir();
//! let out = dir.join(format!("evloop-doc-stream-{}.txt", std::process::id()));
//! let o = out.clone();
//! evloop::run(move || {
//!     let cat = Command::new("cat").stdin(Stdio::Piped).stdout(Stdio::Piped).spawn().unwrap();
//!     pipeline(
//!         create_read_stream("Cargo.toml"),
//!         [Duplex::from_child(&cat).unwrap()],
//!         create_write_stream(&o),
//!         |r| r.expect("copied through cat"),
//!     );
//! })
//! .unwrap();
//! assert_eq!(std::fs::read(&out).unwrap(), std::fs::read("Cargo.toml").unwrap());
//! std::fs::remove_file(out).unwrap();
//! ```

use std::io;
use std::rc::Rc;

use crate::listeners::Listener;

mod glue;
mod pipeline;
pub mod promises;

pub use pipeline::{pipeline, pipeline_with_signal};

mod sealed {
    /// Keeps [`Readable`](super::Readable) and
    /// [`Writable`](super::Writable) to the crate's streams.
    pub trait Sealed {}
    impl Sealed for crate::net::Stream {}
    impl Sealed for crate::fs::ReadStream {}
    impl Sealed for crate::fs::WriteStream {}
}

/// A data listener, as [`Readable::add_data_listener`] takes it.
pub type DataListener = dyn FnMut(&[u8]);

/// What a [`pipeline`] reads from: Node's `stream.Readable`, as the
/// pipeline uses it. Implemented by [`net::Stream`](crate::net::Stream)
/// and [`fs::ReadStream`](crate::fs::ReadStream).
///
/// Each `add_*_listener` adds a listener (never replacing another one)
/// and returns its handle, which the pipeline removes when it is over.
///
/// Sealed: implemented by evloop's streams only, for now (a stage of your
/// own, Node's `Transform`, would need a public way to make a
/// [`Listener`]; a child process or a socket can be a middle stage
/// meanwhile, see [`Duplex`]).
pub trait Readable: sealed::Sealed {
    /// Adds a data listener; starts the flow of chunks (Node's `'data'`).
    fn add_data_listener(&self, f: Box<DataListener>) -> Listener;
    /// Adds a listener for the end of the data (Node's `'end'`).
    fn add_end_listener(&self, f: Box<dyn FnMut()>) -> Listener;
    /// Adds an error listener (Node's `'error'`).
    fn add_error_listener(&self, f: Box<dyn FnMut(io::Error)>) -> Listener;
    /// Adds a close listener; the argument says whether an error closed
    /// the stream (Node's `'close'`).
    fn add_close_listener(&self, f: Box<dyn FnMut(bool)>) -> Listener;
    /// Stops the data listeners until [`resume`](Readable::resume).
    fn pause(&self);
    /// Restarts the data listeners.
    fn resume(&self);
    /// Closes the stream at once, with `err` for its error listeners
    /// (Node's `destroy(err)`).
    fn destroy_stream(&self, err: Option<io::Error>);
}

/// What a [`pipeline`] writes to: Node's `stream.Writable`, as the
/// pipeline uses it. Implemented by [`net::Stream`](crate::net::Stream)
/// and [`fs::WriteStream`](crate::fs::WriteStream). Sealed, as
/// [`Readable`].
pub trait Writable: sealed::Sealed {
    /// Writes a chunk; `false` asks the caller to wait for a drain.
    fn write(&self, chunk: &[u8]) -> bool;
    /// Ends the stream; `done` runs once every chunk is written (`Ok`) or
    /// the stream failed or closed first (Node's `end(cb)`).
    fn end_with(&self, done: Box<dyn FnOnce(io::Result<()>)>);
    /// Adds a drain listener (Node's `'drain'`).
    fn add_drain_listener(&self, f: Box<dyn FnMut()>) -> Listener;
    /// Adds an error listener (Node's `'error'`).
    fn add_error_listener(&self, f: Box<dyn FnMut(io::Error)>) -> Listener;
    /// Adds a close listener (Node's `'close'`).
    fn add_close_listener(&self, f: Box<dyn FnMut(bool)>) -> Listener;
    /// Closes the stream at once, with `err` for its error listeners.
    fn destroy_stream(&self, err: Option<io::Error>);
}

/// A middle stage of a [`pipeline`]: what is written to its writable side
/// comes out, transformed or not, of its readable side (Node's
/// `stream.Duplex`, or `Duplex.from({ writable, readable })`).
#[derive(Clone)]
pub struct Duplex {
    pub(crate) writable: Rc<dyn Writable>,
    pub(crate) readable: Rc<dyn Readable>,
}

impl Duplex {
    /// A duplex of two streams: the pipeline writes into `writable` and
    /// reads from `readable`.
    pub fn new(writable: impl Writable + 'static, readable: impl Readable + 'static) -> Duplex {
        Duplex {
            writable: Rc::new(writable),
            readable: Rc::new(readable),
        }
    }

    /// A child process as a stage: the pipeline writes to its stdin and
    /// reads its stdout (`cat`, `gzip`, `sort`...). Both must be
    /// [piped](crate::process::Stdio::Piped), else an `InvalidInput` error.
    pub fn from_child(child: &crate::process::Child) -> io::Result<Duplex> {
        match (&child.stdin, &child.stdout) {
            (Some(stdin), Some(stdout)) => Ok(Duplex::new(stdin.clone(), stdout.clone())),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a child in a pipeline needs piped stdin and stdout",
            )),
        }
    }
}

impl From<crate::net::Stream> for Duplex {
    /// One socket as both sides: what the pipeline writes goes to the
    /// peer, and what the peer sends back is read on.
    fn from(s: crate::net::Stream) -> Duplex {
        Duplex::new(s.clone(), s)
    }
}

impl std::fmt::Debug for Duplex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Duplex").finish_non_exhaustive()
    }
}
