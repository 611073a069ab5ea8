//! The file write stream (Node's `fs.WriteStream`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::Path;
use std::rc::{Rc, Weak};

use super::*;
use crate::abort::AbortError;
use crate::fs::File;
use crate::listeners::{Listener, Listeners, RemoveListener};

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
