//! File streams: Node's `fs.createReadStream` and `fs.createWriteStream`.
//!
//! Both sit on [`File`]: every read and write is a positional pool job
//! (files are not pollable; see [the module docs](super)), and each stream
//! keeps **at most one job in flight**, so its memory is one chunk being
//! read, or the write queue (which `write` reports against the high-water
//! mark) plus the chunk being written.
//!
//! Events are listener lists, as on every evloop emitter: each `on_*`
//! adds a listener and returns a [`Listener`] whose `remove` takes it off.
//! Like Node's, the streams close their file by themselves (`autoClose`):
//! after `end` for a read stream, after `finish` for a write stream, and on
//! any error, which is delivered to the `on_error` listeners and then
//! `on_close(true)`. An error with no `on_error` listener is uncaught (the
//! loop's uncaught-exception path), as an `'error'` event with no listener
//! is in Node; an abort through the stream's signal never is.
//!
//! Events are never emitted synchronously from the call that causes them
//! (`on_data`, `resume`, `destroy`, `write`, `end`): they come from pool
//! completions, a `next_tick`, or the close phase.

use std::cell::{Cell, RefCell};
use std::io;
use std::path::PathBuf;

use super::File;
use crate::abort::{AbortListener, AbortSignal};
use crate::event_loop::LoopRef;
use crate::listeners::Listeners;

/// A read stream's default chunk size (Node's 64 KiB `highWaterMark` for
/// `fs.ReadStream`).
pub const DEFAULT_READ_CHUNK: usize = 64 * 1024;

/// A write stream's default high-water mark (Node's 16 KiB).
pub const DEFAULT_WRITE_HIGH_WATER_MARK: usize = 16 * 1024;

/// The most a write stream hands to one pool write: queued chunks are
/// joined up to this size, so many small writes cost few jobs.
const WRITE_BATCH: usize = 64 * 1024;

/// Options of [`create_read_stream_with`] (Node's `fs.createReadStream`
/// options).
#[derive(Clone, Debug)]
pub struct ReadStreamOptions {
    /// The first byte to read (Node's `start`); 0 by default.
    pub start: u64,
    /// The last byte to read, **inclusive** as in Node (`end`); `None`
    /// reads to the end of the file. `end < start` is an `InvalidInput`
    /// error on `on_error`.
    pub end: Option<u64>,
    /// The size of each read, hence of each chunk (Node's
    /// `highWaterMark`); 64 KiB by default. 0 is an `InvalidInput` error.
    pub high_water_mark: usize,
    /// Aborting it destroys the stream with the
    /// [`AbortError`](crate::abort::AbortError) (Node's `signal` option).
    pub signal: Option<AbortSignal>,
}

impl Default for ReadStreamOptions {
    fn default() -> Self {
        ReadStreamOptions {
            start: 0,
            end: None,
            high_water_mark: DEFAULT_READ_CHUNK,
            signal: None,
        }
    }
}

/// Options of [`create_write_stream_with`] (Node's `fs.createWriteStream`
/// options).
#[derive(Clone, Debug)]
pub struct WriteStreamOptions {
    /// The open flag ([`File::open`]'s): `"w"` (the default) truncates,
    /// `"a"` appends, `"r+"` writes over an existing file.
    pub flags: String,
    /// Where the first write goes (Node's `start`); 0 by default. Ignored
    /// when appending.
    pub start: u64,
    /// The queue size at which [`write`](WriteStream::write) returns
    /// `false` (Node's `highWaterMark`, 16 KiB by default).
    pub high_water_mark: usize,
    /// Aborting it destroys the stream with the [`AbortError`](crate::abort::AbortError); queued
    /// data is dropped.
    pub signal: Option<AbortSignal>,
}

impl Default for WriteStreamOptions {
    fn default() -> Self {
        WriteStreamOptions {
            flags: "w".to_string(),
            start: 0,
            high_water_mark: DEFAULT_WRITE_HIGH_WATER_MARK,
            signal: None,
        }
    }
}

/// A data listener.
type DataFn = dyn FnMut(&[u8]);

// Event numbers of the listener handles.
const DATA: u8 = 0;
const END: u8 = 1;
const ERROR: u8 = 2;
const CLOSE: u8 = 3;
const DRAIN: u8 = 4;
const FINISH: u8 = 5;

/// The events both kinds of file stream have, and what closing them
/// shares: the file, the signal binding, the error and close listeners.
struct Common {
    path: PathBuf,
    lp: LoopRef,
    error: Listeners<dyn FnMut(io::Error)>,
    close: Listeners<dyn FnMut(bool)>,
    file: RefCell<Option<File>>,
    destroyed: Cell<bool>,
    /// `close` was emitted: the stream's events are over.
    closed: Cell<bool>,
    signal: RefCell<Option<AbortListener>>,
}

impl Common {
    fn new(path: PathBuf) -> Common {
        Common {
            path,
            lp: LoopRef::current(),
            error: Listeners::default(),
            close: Listeners::default(),
            file: RefCell::new(None),
            destroyed: Cell::new(false),
            closed: Cell::new(false),
            signal: RefCell::new(None),
        }
    }

    /// Marks the stream destroyed (false if it already was), closes its
    /// file on the pool and then calls `after` (the close phase when there
    /// is no file): `after` emits `error` and `close`.
    fn destroy(&self, after: Box<dyn FnOnce()>) -> bool {
        if self.destroyed.replace(true) {
            return false;
        }
        if let Some(l) = self.signal.borrow_mut().take() {
            l.remove();
        }
        let file = self.file.borrow_mut().take();
        match file {
            // The descriptor is released once a job in flight finishes.
            Some(f) => f.close(move |_| after()),
            None => self.lp.defer_close(after),
        }
        true
    }

    /// Emits `error` (or reports it uncaught when nobody listens, unless
    /// it is an abort), then `close`.
    fn emit_error_and_close(&self, emitter: &'static str, err: Option<io::Error>) {
        let had_error = err.is_some();
        self.emit_error(emitter, err);
        self.emit_close(had_error);
    }

    fn emit_error(&self, emitter: &'static str, err: Option<io::Error>) {
        if let Some(e) = err {
            let mut e = Some(e);
            let heard = self
                .error
                .emit(|f| f(clone_error(e.as_ref().expect("set"))));
            let e = e.take().expect("set");
            if heard == 0 {
                if crate::abort::is_abort_error(&e) {
                    log::debug!("{emitter} aborted, no error listener: {e}");
                } else {
                    self.lp
                        .report_uncaught(crate::Error::UnhandledError { emitter, error: e });
                }
            }
            self.lp.checkpoint_now();
        }
    }

    fn emit_close(&self, had_error: bool) {
        self.closed.set(true);
        self.close.emit(|f| f(had_error));
        self.lp.checkpoint_now();
    }

    fn remove(&self, event: u8, id: u32) -> bool {
        match event {
            ERROR => self.error.remove(id),
            CLOSE => self.close.remove(id),
            _ => false,
        }
    }
}

/// `io::Error` is not `Clone`: each listener gets the same kind and
/// message (an abort stays an abort).
pub(crate) fn clone_error(e: &io::Error) -> io::Error {
    if let Some(a) = crate::error::abort::as_abort_error(e) {
        return a.clone().into();
    }
    io::Error::new(e.kind(), e.to_string())
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

mod read;
mod write;

pub use read::{create_read_stream, create_read_stream_with, ReadStream};
pub(crate) use write::premature_close;
pub use write::{create_write_stream, create_write_stream_with, WriteStream};
