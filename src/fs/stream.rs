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
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use super::File;
use crate::abort::{AbortError, AbortListener, AbortSignal};
use crate::event_loop::LoopRef;
use crate::listeners::{Listener, Listeners, RemoveListener};

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
    /// [`AbortError`] (Node's `signal` option).
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
    /// Aborting it destroys the stream with the [`AbortError`]; queued
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

// ---------------------------------------------------------------------------
// Read streams
// ---------------------------------------------------------------------------

/// A readable stream of a file's bytes, from [`create_read_stream`]
/// (Node's `fs.ReadStream`). Cheap to clone; clones are the same stream.
///
/// Reading starts when a data listener is added (Node's flowing mode) and
/// goes chunk by chunk, one pool read at a time; [`pause`](Self::pause)
/// stops it after the read in flight (whose chunk is held until
/// [`resume`](Self::resume)). At the end of the range: `on_end`, then the
/// file is closed and `on_close(false)`.
#[derive(Clone)]
pub struct ReadStream {
    inner: Rc<ReadInner>,
}

struct ReadInner {
    common: Common,
    data: Listeners<DataFn>,
    end: Listeners<dyn FnMut()>,
    st: RefCell<ReadState>,
}

#[derive(Default)]
struct ReadState {
    pos: u64,
    /// One past the last byte to read.
    limit: Option<u64>,
    chunk: usize,
    reading: bool,
    flowing: bool,
    paused: bool,
    /// A chunk read while paused, delivered on resume.
    held: Option<Vec<u8>>,
    eof: bool,
    end_emitted: bool,
    bytes_read: u64,
    /// A read scheduled for the next tick.
    tick_queued: bool,
}

impl RemoveListener for ReadInner {
    fn remove_listener(&self, event: u8, id: u32) -> bool {
        match event {
            DATA => self.data.remove(id),
            END => self.end.remove(id),
            _ => self.common.remove(event, id),
        }
    }
}

/// Opens `path` as a [`ReadStream`] of 64 KiB chunks (Node's
/// `fs.createReadStream(path)`); see [`create_read_stream_with`] for a
/// range, the chunk size and a signal. A missing file is an error on
/// `on_error` (the open runs on the pool, like every read).
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
///
/// let got = Rc::new(RefCell::new(Vec::new()));
/// let g = got.clone();
/// evloop::run(move || {
///     let stream = evloop::fs::create_read_stream("Cargo.toml");
///     stream.on_data(move |chunk| g.borrow_mut().extend_from_slice(chunk));
///     stream.on_error(|e| panic!("{e}"));
/// })
/// .unwrap();
/// assert_eq!(*got.borrow(), std::fs::read("Cargo.toml").unwrap());
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn create_read_stream(path: impl AsRef<Path>) -> ReadStream {
    create_read_stream_with(path, ReadStreamOptions::default())
}

/// [`create_read_stream`] with options: a byte range (`end` inclusive, as
/// in Node), the chunk size and an abort signal.
///
/// ```
/// use evloop::fs::{create_read_stream_with, ReadStreamOptions};
/// use std::{cell::RefCell, rc::Rc};
///
/// let got = Rc::new(RefCell::new(Vec::new()));
/// let g = got.clone();
/// evloop::run(move || {
///     let options = ReadStreamOptions { start: 1, end: Some(7), ..Default::default() };
///     let stream = create_read_stream_with("Cargo.toml", options);
///     stream.on_data(move |chunk| g.borrow_mut().extend_from_slice(chunk));
/// })
/// .unwrap();
/// assert_eq!(*got.borrow(), b"package");
/// ```
pub fn create_read_stream_with(path: impl AsRef<Path>, options: ReadStreamOptions) -> ReadStream {
    let path = path.as_ref().to_path_buf();
    let inner = Rc::new(ReadInner {
        common: Common::new(path.clone()),
        data: Listeners::default(),
        end: Listeners::default(),
        st: RefCell::new(ReadState {
            pos: options.start,
            limit: options.end.map(|e| e.saturating_add(1)),
            chunk: options.high_water_mark,
            ..ReadState::default()
        }),
    });
    let stream = ReadStream { inner };
    let bad = match options.end {
        Some(end) if end < options.start => Some(invalid(format!(
            "read stream range: end ({end}) is before start ({})",
            options.start
        ))),
        _ if options.high_water_mark == 0 => {
            Some(invalid("read stream high_water_mark is 0".to_string()))
        }
        _ => None,
    };
    if let Some(e) = bad {
        stream.inner.destroy(Some(e));
        return stream;
    }
    if let Some(signal) = &options.signal {
        if let Some(reason) = signal.reason() {
            stream.inner.destroy(Some(AbortError::new(reason).into()));
            return stream;
        }
        let weak = Rc::downgrade(&stream.inner);
        let l = signal.on_abort_op(move |reason| {
            if let Some(inner) = weak.upgrade() {
                inner.destroy(Some(AbortError::new(reason.clone()).into()));
            }
        });
        *stream.inner.common.signal.borrow_mut() = Some(l);
    }
    let me = stream.inner.clone();
    File::open(path, "r", move |r| match r {
        Err(e) => me.destroy(Some(e)),
        Ok(file) => {
            if me.common.destroyed.get() {
                file.close(|_| {});
                return;
            }
            *me.common.file.borrow_mut() = Some(file);
            me.read_more();
        }
    });
    stream
}

impl ReadInner {
    fn owner(self: &Rc<Self>) -> Weak<dyn RemoveListener> {
        let w: Weak<ReadInner> = Rc::downgrade(self);
        w
    }

    /// Starts the next pool read if the stream wants data and has none in
    /// flight (the one-read-at-a-time rule).
    fn read_more(self: &Rc<Self>) {
        let (file, pos, len) = {
            let mut st = self.st.borrow_mut();
            if self.common.destroyed.get()
                || st.reading
                || st.eof
                || !st.flowing
                || st.paused
                || st.held.is_some()
            {
                return;
            }
            let Some(file) = self.common.file.borrow().clone() else {
                return; // still opening: the open's callback reads
            };
            let left = st.limit.map_or(u64::MAX, |l| l.saturating_sub(st.pos));
            let len = (st.chunk as u64).min(left) as usize;
            st.reading = true;
            (file, st.pos, len)
        };
        let me = self.clone();
        file.read(pos, len, move |r| me.on_read(r));
    }

    fn on_read(self: &Rc<Self>, r: io::Result<Vec<u8>>) {
        self.st.borrow_mut().reading = false;
        if self.common.destroyed.get() {
            return;
        }
        let buf = match r {
            Err(e) => return self.destroy(Some(e)),
            Ok(buf) => buf,
        };
        let deliver = {
            let mut st = self.st.borrow_mut();
            if buf.is_empty() {
                st.eof = true;
                None
            } else {
                st.pos += buf.len() as u64;
                st.bytes_read += buf.len() as u64;
                if st.limit.is_some_and(|l| st.pos >= l) {
                    st.eof = true;
                }
                if st.paused {
                    st.held = Some(buf);
                    None
                } else {
                    Some(buf)
                }
            }
        };
        if let Some(buf) = deliver {
            self.emit_data(&buf);
        }
        self.after_data();
    }

    fn emit_data(&self, buf: &[u8]) {
        self.data.emit(|f| f(buf));
        self.common.lp.checkpoint_now();
    }

    /// After a chunk: the end, or the next read.
    fn after_data(self: &Rc<Self>) {
        let at_end = {
            let st = self.st.borrow();
            st.eof && st.held.is_none() && !st.end_emitted
        };
        if at_end && !self.common.destroyed.get() {
            self.st.borrow_mut().end_emitted = true;
            self.end.emit(|f| f());
            self.common.lp.checkpoint_now();
            // autoClose: the file closes after the end.
            self.destroy(None);
        } else {
            self.read_more();
        }
    }

    /// Delivers a held chunk and reads on, from a `next_tick` (never from
    /// inside `on_data` or `resume`).
    fn schedule_flow(self: &Rc<Self>) {
        if self.st.borrow_mut().tick_queued {
            return;
        }
        self.st.borrow_mut().tick_queued = true;
        let me = self.clone();
        self.common.lp.next_tick(Box::new(move || {
            me.st.borrow_mut().tick_queued = false;
            if me.common.destroyed.get() {
                return;
            }
            let held = {
                let mut st = me.st.borrow_mut();
                if st.paused {
                    None
                } else {
                    st.held.take()
                }
            };
            if let Some(buf) = held {
                me.emit_data(&buf);
            }
            me.after_data();
        }));
    }

    fn destroy(self: &Rc<Self>, err: Option<io::Error>) {
        let me = self.clone();
        self.common.destroy(Box::new(move || {
            me.common.emit_error_and_close("file read stream", err);
            me.drop_listeners();
        }));
    }

    fn drop_listeners(&self) {
        self.data.clear();
        self.end.clear();
        self.common.error.clear();
        self.common.close.clear();
    }
}

impl ReadStream {
    /// Adds a data listener (Node's `'data'`) and starts reading if the
    /// stream is not paused; each chunk is at most the
    /// `high_water_mark` (64 KiB by default).
    pub fn on_data(&self, f: impl FnMut(&[u8]) + 'static) -> Listener {
        if self.inner.common.destroyed.get() {
            return Listener::detached();
        }
        let id = self.inner.data.add(Box::new(f));
        self.inner.st.borrow_mut().flowing = true;
        self.inner.schedule_flow();
        Listener::new(self.inner.owner(), DATA, id)
    }

    /// Adds a listener for the end of the data (Node's `'end'`), after the
    /// last chunk; the file is closed next.
    pub fn on_end(&self, f: impl FnMut() + 'static) -> Listener {
        self.listen(END, |i| i.end.add(Box::new(f)))
    }

    /// Adds an error listener (Node's `'error'`): a failed open or read,
    /// a bad option, an abort. `on_close(true)` follows. Without any, the
    /// error is uncaught (except an abort).
    pub fn on_error(&self, f: impl FnMut(io::Error) + 'static) -> Listener {
        self.listen(ERROR, |i| i.common.error.add(Box::new(f)))
    }

    /// Adds a close listener (Node's `'close'`): the file is closed; the
    /// argument says whether an error closed it.
    pub fn on_close(&self, f: impl FnMut(bool) + 'static) -> Listener {
        self.listen(CLOSE, |i| i.common.close.add(Box::new(f)))
    }

    fn listen(&self, event: u8, add: impl FnOnce(&ReadInner) -> u32) -> Listener {
        let id = add(&self.inner);
        Listener::new(self.inner.owner(), event, id)
    }

    /// Stops reading after the read in flight; its chunk is kept for
    /// [`resume`](Self::resume) (read backpressure).
    pub fn pause(&self) {
        self.inner.st.borrow_mut().paused = true;
    }

    /// Reads on (and switches to flowing mode, as Node's `resume`).
    pub fn resume(&self) {
        {
            let mut st = self.inner.st.borrow_mut();
            st.paused = false;
            st.flowing = true;
        }
        self.inner.schedule_flow();
    }

    /// Whether the stream is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.st.borrow().paused
    }

    /// Closes the file and stops reading (Node's `destroy()`):
    /// `on_close(false)` follows.
    pub fn destroy(&self) {
        self.inner.destroy(None);
    }

    /// [`destroy`](Self::destroy) with an error: `on_error` gets it, then
    /// `on_close(true)` (Node's `destroy(err)`).
    pub fn destroy_with(&self, err: io::Error) {
        self.inner.destroy(Some(err));
    }

    /// Whether the stream is destroyed (by an error, `destroy`, or after
    /// its end).
    pub fn is_closed(&self) -> bool {
        self.inner.common.destroyed.get()
    }

    /// Whether the end was delivered.
    pub fn is_ended(&self) -> bool {
        self.inner.st.borrow().end_emitted
    }

    /// Bytes delivered or held so far (Node's `bytesRead`).
    pub fn bytes_read(&self) -> u64 {
        self.inner.st.borrow().bytes_read
    }

    /// Bytes read from the file and not yet given to a data listener: the
    /// chunk held while paused (at most one `high_water_mark`).
    pub fn buffered_len(&self) -> usize {
        self.inner.st.borrow().held.as_ref().map_or(0, Vec::len)
    }

    /// The path being read.
    pub fn path(&self) -> &Path {
        &self.inner.common.path
    }
}

impl fmt::Debug for ReadStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("ReadStream")
            .field("path", &self.inner.common.path)
            .field("pos", &st.pos)
            .field("paused", &st.paused)
            .field("ended", &st.end_emitted)
            .field("closed", &self.inner.common.destroyed.get())
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Write streams
// ---------------------------------------------------------------------------

/// A writable stream into a file, from [`create_write_stream`] (Node's
/// `fs.WriteStream`). Cheap to clone; clones are the same stream.
///
/// [`write`](Self::write) queues the chunk and returns `false` once the
/// queue (the chunk being written included) reaches the high-water mark;
/// `on_drain` follows when it empties. One pool write runs at a time,
/// joining queued chunks up to 64 KiB. After [`end`](Self::end) and the
/// last write: `on_finish`, then the file is closed and `on_close(false)`.
#[derive(Clone)]
pub struct WriteStream {
    inner: Rc<WriteInner>,
}

type EndCb = Box<dyn FnOnce(io::Result<()>)>;

struct WriteInner {
    common: Common,
    drain: Listeners<dyn FnMut()>,
    finish: Listeners<dyn FnMut()>,
    st: RefCell<WriteState>,
    /// `end_with` callbacks, called once the stream has closed.
    end_cbs: RefCell<Vec<EndCb>>,
}

#[derive(Default)]
struct WriteState {
    pos: u64,
    hwm: usize,
    queue: VecDeque<Vec<u8>>,
    /// Queued bytes plus the ones being written.
    queued_bytes: usize,
    writing: bool,
    need_drain: bool,
    ending: bool,
    finished: bool,
    bytes_written: u64,
}

impl RemoveListener for WriteInner {
    fn remove_listener(&self, event: u8, id: u32) -> bool {
        match event {
            DRAIN => self.drain.remove(id),
            FINISH => self.finish.remove(id),
            _ => self.common.remove(event, id),
        }
    }
}

/// Opens (creating or truncating) `path` as a [`WriteStream`] (Node's
/// `fs.createWriteStream(path)`); see [`create_write_stream_with`] for the
/// flags, the start offset, the high-water mark and a signal.
///
/// ```
/// let path = std::env::temp_dir().join(format!("evloop-doc-ws-{}.txt", std::process::id()));
/// let p = path.clone();
/// evloop::run(move || {
///     let out = evloop::fs::create_write_stream(&p);
///     out.write(b"hello, ");
///     out.write(b"file");
///     out.end();
///     out.on_finish(|| println!("all written"));
/// })
/// .unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"hello, file");
/// std::fs::remove_file(path).unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn create_write_stream(path: impl AsRef<Path>) -> WriteStream {
    create_write_stream_with(path, WriteStreamOptions::default())
}

/// [`create_write_stream`] with options. An unknown flag is an
/// `InvalidInput` error on `on_error`.
pub fn create_write_stream_with(
    path: impl AsRef<Path>,
    options: WriteStreamOptions,
) -> WriteStream {
    let path = path.as_ref().to_path_buf();
    let inner = Rc::new(WriteInner {
        common: Common::new(path.clone()),
        drain: Listeners::default(),
        finish: Listeners::default(),
        st: RefCell::new(WriteState {
            pos: options.start,
            hwm: options.high_water_mark,
            ..WriteState::default()
        }),
        end_cbs: RefCell::default(),
    });
    let stream = WriteStream { inner };
    if let Some(signal) = &options.signal {
        if let Some(reason) = signal.reason() {
            stream.inner.destroy(Some(AbortError::new(reason).into()));
            return stream;
        }
        let weak = Rc::downgrade(&stream.inner);
        let l = signal.on_abort_op(move |reason| {
            if let Some(inner) = weak.upgrade() {
                inner.destroy(Some(AbortError::new(reason.clone()).into()));
            }
        });
        *stream.inner.common.signal.borrow_mut() = Some(l);
    }
    let me = stream.inner.clone();
    File::open(path, &options.flags, move |r| match r {
        Err(e) => me.destroy(Some(e)),
        Ok(file) => {
            if me.common.destroyed.get() {
                file.close(|_| {});
                return;
            }
            *me.common.file.borrow_mut() = Some(file);
            me.flush();
        }
    });
    stream
}

impl WriteInner {
    fn owner(self: &Rc<Self>) -> Weak<dyn RemoveListener> {
        let w: Weak<WriteInner> = Rc::downgrade(self);
        w
    }

    fn write(self: &Rc<Self>, data: &[u8]) -> bool {
        if self.common.destroyed.get() || self.st.borrow().ending {
            let e = io::Error::new(io::ErrorKind::BrokenPipe, "write after end");
            self.destroy(Some(e));
            return false;
        }
        let more = {
            let mut st = self.st.borrow_mut();
            if !data.is_empty() {
                st.queue.push_back(data.to_vec());
                st.queued_bytes += data.len();
            }
            let more = st.queued_bytes < st.hwm;
            if !more {
                st.need_drain = true;
            }
            more
        };
        self.flush();
        more
    }

    /// Starts the next pool write (one at a time), or finishes after `end`.
    fn flush(self: &Rc<Self>) {
        if self.common.destroyed.get() {
            return;
        }
        let Some(file) = self.common.file.borrow().clone() else {
            return; // still opening: the open's callback flushes
        };
        let (buf, pos) = {
            let mut st = self.st.borrow_mut();
            if st.writing {
                return;
            }
            if st.queue.is_empty() {
                if st.ending && !st.finished {
                    st.finished = true;
                    drop(st);
                    self.finish.emit(|f| f());
                    self.common.lp.checkpoint_now();
                    self.destroy(None);
                }
                return;
            }
            let mut buf = st.queue.pop_front().expect("not empty");
            while let Some(next) = st.queue.front() {
                if buf.len() + next.len() > WRITE_BATCH {
                    break;
                }
                let next = st.queue.pop_front().expect("front exists");
                buf.extend_from_slice(&next);
            }
            st.writing = true;
            (buf, st.pos)
        };
        let me = self.clone();
        file.write(pos, buf, move |r| me.on_written(r));
    }

    fn on_written(self: &Rc<Self>, r: io::Result<usize>) {
        self.st.borrow_mut().writing = false;
        if self.common.destroyed.get() {
            return;
        }
        let n = match r {
            Err(e) => return self.destroy(Some(e)),
            Ok(n) => n,
        };
        let drain = {
            let mut st = self.st.borrow_mut();
            st.pos += n as u64;
            st.bytes_written += n as u64;
            st.queued_bytes -= n;
            if st.queue.is_empty() && st.need_drain && !st.ending {
                st.need_drain = false;
                true
            } else {
                false
            }
        };
        if drain {
            self.drain.emit(|f| f());
            self.common.lp.checkpoint_now();
        }
        self.flush();
    }

    fn end(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.ending || self.common.destroyed.get() {
                return;
            }
            st.ending = true;
        }
        self.flush();
    }

    fn destroy(self: &Rc<Self>, err: Option<io::Error>) {
        {
            let mut st = self.st.borrow_mut();
            if !self.common.destroyed.get() {
                st.queue.clear();
                st.queued_bytes = 0;
            }
        }
        let me = self.clone();
        self.common.destroy(Box::new(move || {
            let finished = me.st.borrow().finished;
            let result_err = err.as_ref().map(clone_error);
            let had_error = err.is_some();
            me.common.emit_error("file write stream", err);
            // `end_with`'s callbacks before the close listeners: a
            // pipeline learns the stream finished before it sees it close.
            let cbs = std::mem::take(&mut *me.end_cbs.borrow_mut());
            for cb in cbs {
                cb(match (&result_err, finished) {
                    (Some(e), _) => Err(clone_error(e)),
                    (None, true) => Ok(()),
                    (None, false) => Err(premature_close()),
                });
            }
            me.common.emit_close(had_error);
            me.drain.clear();
            me.finish.clear();
            me.common.error.clear();
            me.common.close.clear();
        }));
    }
}

/// The error of a stream closed before it finished (Node's
/// `ERR_STREAM_PREMATURE_CLOSE`).
pub(crate) fn premature_close() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "premature close")
}

impl WriteStream {
    /// Queues `data` for writing; returns whether the caller may go on
    /// (`false` once the queue reaches the high-water mark: wait for
    /// [`on_drain`](Self::on_drain)). Writing after [`end`](Self::end) or
    /// a close destroys the stream with a `BrokenPipe` error ("write after
    /// end", as Node's `ERR_STREAM_WRITE_AFTER_END`).
    pub fn write(&self, data: &[u8]) -> bool {
        self.inner.write(data)
    }

    /// Ends the stream: `on_finish` once every queued byte is written,
    /// then the file is closed and `on_close(false)`.
    pub fn end(&self) {
        self.inner.end();
    }

    /// [`end`](Self::end), then `cb` once the stream has closed: `Ok` if
    /// it finished, else the error (Node's `end(cb)`).
    pub fn end_with(&self, cb: impl FnOnce(io::Result<()>) + 'static) {
        if self.inner.common.closed.get() {
            // Closed already: its callbacks were called; call this one.
            let r = if self.is_finished() {
                Ok(())
            } else {
                Err(premature_close())
            };
            self.inner.common.lp.next_tick(Box::new(move || cb(r)));
            return;
        }
        self.inner.end_cbs.borrow_mut().push(Box::new(cb));
        self.inner.end();
    }

    /// Adds a drain listener (Node's `'drain'`): the queue emptied after
    /// `write` returned `false`.
    pub fn on_drain(&self, f: impl FnMut() + 'static) -> Listener {
        self.listen(DRAIN, |i| i.drain.add(Box::new(f)))
    }

    /// Adds a finish listener (Node's `'finish'`): after `end`, every byte
    /// is written.
    pub fn on_finish(&self, f: impl FnMut() + 'static) -> Listener {
        self.listen(FINISH, |i| i.finish.add(Box::new(f)))
    }

    /// Adds an error listener (Node's `'error'`): a failed open or write,
    /// a write after end, an abort. `on_close(true)` follows. Without any,
    /// the error is uncaught (except an abort).
    pub fn on_error(&self, f: impl FnMut(io::Error) + 'static) -> Listener {
        self.listen(ERROR, |i| i.common.error.add(Box::new(f)))
    }

    /// Adds a close listener (Node's `'close'`): the file is closed; the
    /// argument says whether an error closed it.
    pub fn on_close(&self, f: impl FnMut(bool) + 'static) -> Listener {
        self.listen(CLOSE, |i| i.common.close.add(Box::new(f)))
    }

    fn listen(&self, event: u8, add: impl FnOnce(&WriteInner) -> u32) -> Listener {
        let id = add(&self.inner);
        Listener::new(self.inner.owner(), event, id)
    }

    /// Closes the file at once, dropping queued data (Node's
    /// `destroy()`); `on_close(false)` follows.
    pub fn destroy(&self) {
        self.inner.destroy(None);
    }

    /// [`destroy`](Self::destroy) with an error: `on_error` gets it, then
    /// `on_close(true)`.
    pub fn destroy_with(&self, err: io::Error) {
        self.inner.destroy(Some(err));
    }

    /// Whether the stream is destroyed (by an error, `destroy`, or after
    /// it finished).
    pub fn is_closed(&self) -> bool {
        self.inner.common.destroyed.get()
    }

    /// Whether every byte was written after `end` (Node's
    /// `writableFinished`).
    pub fn is_finished(&self) -> bool {
        self.inner.st.borrow().finished
    }

    /// Bytes accepted by `write` and not yet written, the chunk being
    /// written included (Node's `writableLength`).
    pub fn write_queue_len(&self) -> usize {
        self.inner.st.borrow().queued_bytes
    }

    /// Bytes written to the file so far (Node's `bytesWritten`).
    pub fn bytes_written(&self) -> u64 {
        self.inner.st.borrow().bytes_written
    }

    /// The path being written.
    pub fn path(&self) -> &Path {
        &self.inner.common.path
    }
}

impl fmt::Debug for WriteStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.st.borrow();
        f.debug_struct("WriteStream")
            .field("path", &self.inner.common.path)
            .field("queued_bytes", &st.queued_bytes)
            .field("ending", &st.ending)
            .field("finished", &st.finished)
            .field("closed", &self.inner.common.destroyed.get())
            .finish()
    }
}
