//! Watching paths for changes (Node's `fs.watch` and `fs.FSWatcher`), on
//! inotify.
//!
//! # How it works
//!
//! As in libuv, a loop has **one inotify instance** (a per-loop slot),
//! created with its first watcher and closed with its last; every watcher
//! is a watch descriptor on it, and watchers of the same inode share one.
//! So a thousand watchers cost one fd and a thousand watches (bounded by
//! `/proc/sys/fs/inotify/max_user_watches`), not a thousand instances
//! (`max_user_instances` is often 128). The instance's fd is registered with
//! the reactor; when it is readable the loop reads every queued event
//! (until `WouldBlock`: the kernel's queue is bounded, so the batch is too)
//! and delivers them one by one, each followed by a microtask checkpoint.
//!
//! Events are named as libuv names them: an inotify event that only
//! modified the file or its attributes (`IN_MODIFY`, `IN_ATTRIB`) is a
//! `"change"`; anything else (create, delete, move, the watch's removal)
//! is a `"rename"`. The file name is the entry's name for a directory
//! watch, and the watched path's last component for a file watch. Like
//! Node, a deleted file gives `"change"` (its link count), `"rename"`
//! (`IN_DELETE_SELF`) and `"rename"` (`IN_IGNORED`).
//!
//! `recursive: true` is supported on Linux as Node 20 does it: every
//! directory under the path is watched, and directories created (or moved
//! in) later are added when their creation is seen; names are relative to
//! the watched path (`sub/file.txt`). Files created inside a new directory
//! before its watch is added are not reported (the same race as Node's).
//!
//! On other systems (macOS, the BSDs), [`watch`] fails with
//! [`Unsupported`](io::ErrorKind::Unsupported); [`watch_file`](super::watch_file)
//! (stat polling) works everywhere.
//!
//! | here | Node |
//! |---|---|
//! | [`watch(path, options, listener)`](watch) | `fs.watch(path, options, listener)` |
//! | [`FsWatcher::on_change`] | `watcher.on('change', (eventType, filename) => ..)` |
//! | [`FsWatcher::on_error`] | `watcher.on('error', ..)` |
//! | [`FsWatcher::close`], [`ref_`](FsWatcher::ref_), [`unref`](FsWatcher::unref) | `watcher.close()`, `.ref()`, `.unref()` |
//! | [`FsWatcher::next`] | the next event, as a promise |
//! | [`FsWatcher::events`] | `for await (const e of fs.promises.watch(path))` |

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use crate::listeners::{Listener, Listeners, RemoveListener};
use crate::promise::{Promise, Reject, Rejection, Resolve};

#[cfg(target_os = "linux")]
mod inotify;
#[cfg(target_os = "linux")]
use inotify as backend;

#[cfg(not(target_os = "linux"))]
mod backend {
    //! No native watcher here: `watch` fails with `Unsupported`.
    use super::*;

    pub(super) enum Instance {}

    impl Instance {
        pub(super) fn start(_: &Rc<WatcherInner>) -> io::Result<()> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "fs::watch is implemented on Linux (inotify) only; use fs::watch_file",
            ))
        }

        pub(super) fn stop(&self, _: &WatcherInner, _: Vec<i32>) {
            match *self {}
        }

        pub(super) fn set_ref_one(&self, _: bool) {
            match *self {}
        }
    }
}

use backend::Instance;

/// What happened (Node's `eventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchEventType {
    /// The entry appeared, disappeared or was renamed (`"rename"`).
    Rename,
    /// Its content or attributes changed (`"change"`).
    Change,
}

impl WatchEventType {
    /// Node's name: `"rename"` or `"change"`.
    pub fn as_str(self) -> &'static str {
        match self {
            WatchEventType::Rename => "rename",
            WatchEventType::Change => "change",
        }
    }
}

impl fmt::Display for WatchEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event of an [`FsWatcher`]: Node's `(eventType, filename)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// `"rename"` or `"change"`.
    pub event_type: WatchEventType,
    /// The entry's name, relative to the watched directory (or the watched
    /// file's own name); `None` when the system gives none.
    pub filename: Option<PathBuf>,
}

/// Options of [`watch`] (Node's `{ persistent, recursive }`).
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Whether the watcher keeps the loop alive (default `true`); `false`
    /// is an [`unref`](FsWatcher::unref)'d watcher.
    pub persistent: bool,
    /// Watch every directory under the path too (default `false`).
    pub recursive: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            persistent: true,
            recursive: false,
        }
    }
}

const CHANGE: u8 = 0;
const ERROR: u8 = 1;

type ChangeFn = dyn FnMut(&WatchEvent);

/// A path being watched, from [`watch`] (Node's `fs.FSWatcher`). Cheap to
/// clone; clones are the same watcher.
///
/// It keeps the loop alive until [`close`](Self::close)d (unless
/// [`unref`](Self::unref)'d). An error (the inotify fd failing) is given to
/// the error listeners and closes the watcher, as in Node; with no error
/// listener, no [`next`](Self::next) promise and no [`events`](Self::events)
/// stream waiting, it is uncaught. Dropping the handle does not close the
/// watcher (Node's does not either): call `close`.
#[derive(Clone)]
pub struct FsWatcher {
    inner: Rc<WatcherInner>,
}

/// A promise's settle functions.
type Waiter = (Resolve<Option<WatchEvent>>, Reject);

struct WatcherInner {
    path: PathBuf,
    recursive: bool,
    /// The inotify instance while open; `None` once closed.
    inst: RefCell<Option<Rc<Instance>>>,
    /// This watcher's watch descriptors (several when recursive).
    wds: RefCell<Vec<i32>>,
    refed: Cell<bool>,
    change: Listeners<ChangeFn>,
    error: Listeners<dyn FnMut(io::Error)>,
    /// [`FsWatcher::next`] promises waiting for the next event.
    waiters: RefCell<Vec<Waiter>>,
    /// The [`WatchEvents`] streams, each with its own queue.
    streams: RefCell<Vec<Weak<StreamState>>>,
}

impl RemoveListener for WatcherInner {
    fn remove_listener(&self, event: u8, id: u32) -> bool {
        match event {
            CHANGE => self.change.remove(id),
            ERROR => self.error.remove(id),
            _ => false,
        }
    }
}

/// Starts watching `path` (Node's `fs.watch(path, options, listener)`);
/// `listener` is the first [`on_change`](FsWatcher::on_change) listener.
///
/// Fails at once (Node throws) if the path cannot be watched: missing
/// (`NotFound`, an [`FsError`](crate::fs::FsError) naming the path, as
/// every `fs` error), a limit reached (`max_user_watches`: the OS error
/// `ENOSPC`), or not Linux (`Unsupported`).
///
/// # Events
///
/// Named as libuv names them: an inotify event that only modified the
/// file or its attributes (`IN_MODIFY`, `IN_ATTRIB`) is
/// [`Change`](WatchEventType::Change); anything else (create, delete,
/// move, the kernel dropping the watch) is
/// [`Rename`](WatchEventType::Rename). The file name is the entry's name
/// for a directory watch, the watched path's last component for a file
/// watch. As in Node, deleting a watched file gives `change` (its link
/// count), then `rename` twice (`IN_DELETE_SELF`, `IN_IGNORED`). Events
/// are delivered one by one, each followed by a microtask checkpoint.
///
/// # One inotify instance per loop
///
/// As in libuv, every watcher of a loop is a watch descriptor on one
/// inotify instance, created with the first watcher and closed with the
/// last (watchers of the same inode share a descriptor). A thousand
/// watchers cost one fd and a thousand watches (bounded by
/// `/proc/sys/fs/inotify/max_user_watches`), not a thousand instances
/// (`max_user_instances` is often 128).
///
/// # Recursive
///
/// `recursive: true` works on Linux as in Node 20: every directory under
/// the path is watched, and directories created (or moved in) later are
/// added when their creation is seen; names are relative to the watched
/// path (`sub/file.txt`). Entries created inside a new directory before
/// its watch is added are not reported (Node has the same race).
///
/// # Other systems
///
/// On macOS and the BSDs this fails with
/// [`Unsupported`](io::ErrorKind::Unsupported) (FSEvents and kqueue are
/// not wired up); [`watch_file`](crate::fs::watch_file) works everywhere.
///
/// ```
/// # #[cfg(target_os = "linux")] {
/// use std::{cell::RefCell, rc::Rc};
/// use evloop::fs::{self, WatchEventType, WatchOptions};
///
/// let dir = std::env::temp_dir().join(format!("evloop-watch-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let d = dir.clone();
/// evloop::run(move || {
///     let watcher: Rc<RefCell<Option<fs::FsWatcher>>> = Rc::default();
///     let w = watcher.clone();
///     let started = fs::watch(&d, WatchOptions::default(), move |event| {
///         s.borrow_mut().push(event.clone());
///         // the first event is enough: closing lets the loop end
///         w.borrow().as_ref().unwrap().close();
///     })
///     .unwrap();
///     *watcher.borrow_mut() = Some(started);
///     fs::write_file(d.join("new.txt"), "hi", |r| r.unwrap());
/// })
/// .unwrap();
/// let seen = seen.borrow();
/// assert_eq!(seen[0].event_type, WatchEventType::Rename); // created
/// assert_eq!(seen[0].filename.as_deref(), Some(std::path::Path::new("new.txt")));
/// std::fs::remove_dir_all(&dir).unwrap();
/// # }
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn watch(
    path: impl AsRef<Path>,
    options: WatchOptions,
    listener: impl FnMut(&WatchEvent) + 'static,
) -> io::Result<FsWatcher> {
    let path = path.as_ref().to_path_buf();
    if path.as_os_str().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "watch: the path is empty",
        ));
    }
    let inner = Rc::new(WatcherInner {
        path,
        recursive: options.recursive,
        inst: RefCell::new(None),
        wds: RefCell::new(Vec::new()),
        refed: Cell::new(false),
        change: Listeners::default(),
        error: Listeners::default(),
        waiters: RefCell::new(Vec::new()),
        streams: RefCell::new(Vec::new()),
    });
    inner.change.add(Box::new(listener));
    Instance::start(&inner)?;
    let w = FsWatcher { inner };
    if options.persistent {
        w.ref_();
    }
    log::debug!("fs watch '{}'", w.inner.path.display());
    Ok(w)
}

impl FsWatcher {
    fn owner(&self) -> Weak<dyn RemoveListener> {
        let w: Weak<WatcherInner> = Rc::downgrade(&self.inner);
        w
    }

    /// Adds a change listener (Node's `'change'`), called with each event.
    pub fn on_change(&self, f: impl FnMut(&WatchEvent) + 'static) -> Listener {
        if self.is_closed() {
            return Listener::detached();
        }
        let id = self.inner.change.add(Box::new(f));
        Listener::new(self.owner(), CHANGE, id)
    }

    /// Adds an error listener (Node's `'error'`). The watcher is closed
    /// after an error.
    pub fn on_error(&self, f: impl FnMut(io::Error) + 'static) -> Listener {
        if self.is_closed() {
            return Listener::detached();
        }
        let id = self.inner.error.add(Box::new(f));
        Listener::new(self.owner(), ERROR, id)
    }

    /// Stops watching (Node's `watcher.close()`): no event is delivered
    /// after this, waiting [`next`](Self::next) promises and
    /// [`events`](Self::events) streams end with `None`, the listeners are
    /// dropped, and the inotify fd is closed with the loop's last watcher.
    /// Closing twice is a no-op; safe from inside a listener.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether [`close`](Self::close) was called (or an error closed it).
    pub fn is_closed(&self) -> bool {
        self.inner.inst.borrow().is_none()
    }

    /// Lets the loop end while this watcher is open (Node's `unref`).
    pub fn unref(&self) -> &Self {
        self.inner.set_ref(false);
        self
    }

    /// Makes this watcher keep the loop alive again (the default).
    pub fn ref_(&self) -> &Self {
        self.inner.set_ref(true);
        self
    }

    /// Whether this watcher keeps the loop alive.
    pub fn has_ref(&self) -> bool {
        self.inner.refed.get()
    }

    /// The watched path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The next event, as a promise: `Some(event)`, `None` if the watcher
    /// is (or gets) closed first, rejected with the error if one closes
    /// it. Only events after this call count; for every event, use
    /// [`events`](Self::events). A pending promise does not keep the loop
    /// alive; the watcher does.
    pub fn next(&self) -> Promise<Option<WatchEvent>> {
        if self.is_closed() {
            return Promise::resolve(None);
        }
        let w = Promise::with_resolvers();
        self.inner.waiters.borrow_mut().push((w.resolve, w.reject));
        w.promise
    }

    /// A stream of this watcher's events from now on (Node's `for await
    /// (const e of fs.promises.watch(path))`): events are queued until
    /// taken with [`WatchEvents::next`].
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// use evloop::fs::{self, WatchOptions};
    ///
    /// let dir = std::env::temp_dir().join(format!("evloop-events-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let d = dir.clone();
    /// let names = evloop::block_on(async move {
    ///     let watcher = fs::watch(&d, WatchOptions::default(), |_| {}).unwrap();
    ///     let mut events = watcher.events();
    ///     fs::promises::write_file(d.join("a"), "1").await.unwrap();
    ///     let first = events.next().await.unwrap().unwrap();
    ///     watcher.close();
    ///     first.filename
    /// })
    /// .unwrap();
    /// assert_eq!(names.as_deref(), Some(std::path::Path::new("a")));
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// # }
    /// ```
    pub fn events(&self) -> WatchEvents {
        let st = Rc::new(StreamState {
            queue: RefCell::new(VecDeque::new()),
            waiter: RefCell::new(None),
            done: Cell::new(self.is_closed()),
        });
        if !self.is_closed() {
            let mut streams = self.inner.streams.borrow_mut();
            streams.retain(|s| s.strong_count() > 0);
            streams.push(Rc::downgrade(&st));
        }
        WatchEvents { st }
    }
}

impl fmt::Debug for FsWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsWatcher")
            .field("path", &self.inner.path)
            .field("recursive", &self.inner.recursive)
            .field("closed", &self.is_closed())
            .field("ref", &self.has_ref())
            .finish()
    }
}

impl WatcherInner {
    fn set_ref(&self, refed: bool) {
        if self.refed.get() == refed {
            return;
        }
        let inst = self.inst.borrow().clone();
        if let Some(inst) = inst {
            self.refed.set(refed);
            inst.set_ref_one(refed);
        }
    }

    fn close(&self) {
        let Some(inst) = self.inst.borrow_mut().take() else {
            return;
        };
        log::debug!("fs watch '{}' closed", self.path.display());
        if self.refed.replace(false) {
            inst.set_ref_one(false);
        }
        let wds = std::mem::take(&mut *self.wds.borrow_mut());
        inst.stop(self, wds);
        drop(inst);
        // Settle the waiting promises and streams, then drop the listeners
        // (they may hold this watcher: dropping them breaks the cycle).
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (resolve, _) in waiters {
            resolve(None);
        }
        let streams = std::mem::take(&mut *self.streams.borrow_mut());
        for s in streams.iter().filter_map(Weak::upgrade) {
            s.finish();
        }
        self.change.clear();
        self.error.clear();
    }

    /// Delivers one event: the listeners, the `next` promises, the streams.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn deliver(&self, ev: &WatchEvent) {
        if self.inst.borrow().is_none() {
            return;
        }
        self.change.emit(|f| f(ev));
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (resolve, _) in waiters {
            resolve(Some(ev.clone()));
        }
        let streams: Vec<_> = self.streams.borrow().clone();
        for s in streams.iter().filter_map(Weak::upgrade) {
            s.push(Ok(ev.clone()));
        }
    }

    /// An error: the listeners get it, the watcher closes (as Node's does).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn fail(&self, e: io::Error) {
        if self.inst.borrow().is_none() {
            return;
        }
        let heard = self.error.emit(|f| f(clone_error(&e)));
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        let streams: Vec<_> = self.streams.borrow().clone();
        let taken = !waiters.is_empty() || streams.iter().any(|s| s.strong_count() > 0);
        for (_, reject) in waiters {
            reject(Rejection::from(clone_error(&e)));
        }
        for s in streams.iter().filter_map(Weak::upgrade) {
            s.push(Err(clone_error(&e)));
        }
        self.close();
        if heard == 0 && !taken {
            crate::event_loop::report_uncaught(crate::Error::UnhandledError {
                emitter: "fs watcher",
                error: e,
            });
        }
    }
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn clone_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

/// The queue of one [`WatchEvents`] stream.
struct StreamState {
    queue: RefCell<VecDeque<io::Result<WatchEvent>>>,
    waiter: RefCell<Option<Waiter>>,
    done: Cell<bool>,
}

impl StreamState {
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    fn push(&self, item: io::Result<WatchEvent>) {
        let waiter = self.waiter.borrow_mut().take();
        match (waiter, item) {
            (Some((resolve, _)), Ok(ev)) => resolve(Some(ev)),
            (Some((_, reject)), Err(e)) => reject(Rejection::from(e)),
            (None, item) => self.queue.borrow_mut().push_back(item),
        }
    }

    fn finish(&self) {
        self.done.set(true);
        let waiter = self.waiter.borrow_mut().take();
        if let Some((resolve, _)) = waiter {
            resolve(None);
        }
    }
}

/// The events of an [`FsWatcher`], from [`FsWatcher::events`]: an async
/// stream without a `Stream` trait (`while let Some(e) =
/// events.next().await?`).
pub struct WatchEvents {
    st: Rc<StreamState>,
}

impl WatchEvents {
    /// The next event, queued or to come: `Some(event)`, `None` once the
    /// watcher is closed and the queue empty, rejected with an error that
    /// closed the watcher. Calling it again before the last one settled
    /// replaces that promise's place (it then never settles).
    // Not `Iterator::next`: it returns a promise, as an async iterator's does.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Promise<Option<WatchEvent>> {
        if let Some(item) = self.st.queue.borrow_mut().pop_front() {
            return match item {
                Ok(ev) => Promise::resolve(Some(ev)),
                Err(e) => Promise::reject(Rejection::from(e)),
            };
        }
        if self.st.done.get() {
            return Promise::resolve(None);
        }
        let w = Promise::with_resolvers();
        *self.st.waiter.borrow_mut() = Some((w.resolve, w.reject));
        w.promise
    }

    /// How many events are queued.
    pub fn queued(&self) -> usize {
        self.st.queue.borrow().len()
    }
}

impl fmt::Debug for WatchEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchEvents")
            .field("queued", &self.queued())
            .field("done", &self.st.done.get())
            .finish()
    }
}
