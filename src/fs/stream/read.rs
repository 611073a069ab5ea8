//! The file read stream (Node's `fs.ReadStream`).

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::path::Path;
use std::rc::{Rc, Weak};

use super::*;
use crate::abort::AbortError;
use crate::fs::File;
use crate::listeners::{Listener, Listeners, RemoveListener};

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
