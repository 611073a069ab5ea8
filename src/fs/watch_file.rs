//! Stat polling (Node's `fs.watchFile` and `fs.StatWatcher`): portable,
//! and the only way to watch a file on network file systems, where
//! inotify sees nothing.
//!
//! As libuv's `uv_fs_poll_t`: a `stat` runs on the pool at once (the
//! baseline: no call), then again one interval after each started, driven
//! by a loop timer; when the result differs from the previous one (size,
//! mode, owner, inode, device, or the change, modification or birth time)
//! the listeners get `(current, previous)`. A file that is missing (or
//! cannot be stat'ed) is all-zero [`Stats`], as in Node: its creation is a
//! call with a zeroed `previous`, its deletion one with a zeroed `current`.
//! Missing and still missing is no call.
//!
//! The watcher keeps the loop alive (its timer is ref'd) until
//! [`close`](StatWatcher::close)d or [`unref`](StatWatcher::unref)'d; a
//! `stat` already running on the pool when it closes finishes, and its
//! result is dropped.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::listeners::{Listener, Listeners, RemoveListener};
use crate::pool::queue_work;
use crate::promise::{Promise, Resolve};
use crate::timers::{set_timeout, Timeout};

/// Node's default `interval` for `fs.watchFile`.
pub const DEFAULT_WATCH_FILE_INTERVAL: Duration = Duration::from_millis(5007);

/// A file's status as [`watch_file`] reports it (Node's `fs.Stats`). A
/// missing file is [`Stats::missing`]: every field zero, every time the
/// Unix epoch, as in Node (`std::fs::Metadata` has no such value).
#[derive(Clone, PartialEq, Eq)]
pub struct Stats {
    /// The device.
    pub dev: u64,
    /// The inode number.
    pub ino: u64,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    /// Hard links.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// The device, for a device file.
    pub rdev: u64,
    /// Size in bytes.
    pub size: u64,
    /// Preferred I/O block size.
    pub blksize: u64,
    /// 512-byte blocks allocated.
    pub blocks: u64,
    /// Last access.
    pub atime: SystemTime,
    /// Last modification of the content.
    pub mtime: SystemTime,
    /// Last change of the inode.
    pub ctime: SystemTime,
    /// Creation, where the file system records it (else the epoch).
    pub birthtime: SystemTime,
}

impl Stats {
    /// The stats of a missing file: all zero.
    pub fn missing() -> Stats {
        Stats {
            dev: 0,
            ino: 0,
            mode: 0,
            nlink: 0,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 0,
            blksize: 0,
            blocks: 0,
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            birthtime: UNIX_EPOCH,
        }
    }

    /// From `std`'s metadata.
    pub fn from_metadata(m: &Metadata) -> Stats {
        Stats {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev(),
            size: m.size(),
            blksize: m.blksize(),
            blocks: m.blocks(),
            atime: time(m.atime(), m.atime_nsec()),
            mtime: time(m.mtime(), m.mtime_nsec()),
            ctime: time(m.ctime(), m.ctime_nsec()),
            birthtime: m.created().unwrap_or(UNIX_EPOCH),
        }
    }

    /// Whether the file exists (Node: `stats.nlink > 0 || stats.ino > 0`;
    /// here: not [`missing`](Self::missing)).
    pub fn exists(&self) -> bool {
        *self != Stats::missing()
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        self.mode & S_IFMT == 0o100_000
    }

    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.mode & S_IFMT == 0o040_000
    }

    /// What libuv compares to decide that a file changed.
    fn same_as(&self, o: &Stats) -> bool {
        self.ctime == o.ctime
            && self.mtime == o.mtime
            && self.birthtime == o.birthtime
            && self.size == o.size
            && self.mode == o.mode
            && self.uid == o.uid
            && self.gid == o.gid
            && self.ino == o.ino
            && self.dev == o.dev
    }
}

impl fmt::Debug for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        };
        f.debug_struct("Stats")
            .field("ino", &self.ino)
            .field("mode", &format_args!("{:o}", self.mode))
            .field("nlink", &self.nlink)
            .field("size", &self.size)
            .field("mtime", &secs(self.mtime))
            .field("ctime", &secs(self.ctime))
            .finish_non_exhaustive()
    }
}

/// The file type bits of `st_mode` (the same on every Unix; `libc`'s
/// constants differ in width between systems).
const S_IFMT: u32 = 0o170_000;

fn time(secs: i64, nsec: i64) -> SystemTime {
    let nsec = u32::try_from(nsec.clamp(0, 999_999_999)).unwrap_or(0);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nsec)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::new(0, nsec)
    }
}

/// The stat a poll makes: a missing or unreadable file is zeroed, as in
/// Node (a symlink is followed, as `stat` does).
fn stat(path: &Path) -> Stats {
    match std::fs::metadata(path) {
        Ok(m) => Stats::from_metadata(&m),
        Err(_) => Stats::missing(),
    }
}

type StatFn = dyn FnMut(&Stats, &Stats);

/// A file polled by [`watch_file`] (Node's `fs.StatWatcher`). Cheap to
/// clone; clones are the same watcher. Dropping every handle does not
/// stop it (Node's keeps polling too): call [`close`](Self::close).
#[derive(Clone)]
pub struct StatWatcher {
    inner: Rc<StatInner>,
}

struct StatInner {
    path: PathBuf,
    interval: Duration,
    change: Listeners<StatFn>,
    /// [`StatWatcher::next`]'s promises, settled by the next change.
    waiters: RefCell<Vec<Resolve<Option<StatChange>>>>,
    /// The live [`StatChanges`] streams.
    streams: RefCell<Vec<Weak<StreamState>>>,
    /// The last stat; `None` before the first.
    prev: RefCell<Option<Stats>>,
    /// The timer of the next poll, while one is scheduled.
    timer: RefCell<Option<Timeout>>,
    closed: Cell<bool>,
    refed: Cell<bool>,
}

impl RemoveListener for StatInner {
    fn remove_listener(&self, _: u8, id: u32) -> bool {
        self.change.remove(id)
    }
}

/// Polls `path`'s stats every `interval` (Node's `fs.watchFile(path, {
/// interval }, listener)`; Node's default is
/// [`DEFAULT_WATCH_FILE_INTERVAL`]; zero is taken as 1 ms, as libuv does);
/// `listener(current, previous)` is the first
/// [`on_change`](StatWatcher::on_change) listener. It never fails: a path
/// that cannot be stat'ed is a missing file. Portable, and the only way to
/// watch files on network file systems, where inotify sees nothing.
///
/// As libuv's `uv_fs_poll_t`: a `stat` runs on the pool at once (the
/// baseline: no call), then again one interval after each began, driven
/// by a loop timer. When the result differs from the previous one (size,
/// mode, owner, inode, device, or the change, modification or birth time)
/// the listeners get `(current, previous)`. A missing file is all-zero
/// [`Stats`] ([`Stats::missing`]), as in Node: its creation is a call with
/// a zeroed `previous`, its deletion one with a zeroed `current`; missing
/// and still missing is no call.
///
/// The watcher keeps the loop alive (its timer is ref'd) until
/// [`close`](StatWatcher::close)d or [`unref`](StatWatcher::unref)'d; a
/// `stat` already on the pool when it closes finishes and its result is
/// dropped.
///
/// ```
/// use std::{cell::RefCell, rc::Rc, time::Duration};
/// use evloop::fs;
///
/// let path = std::env::temp_dir().join(format!("evloop-watch-file-doc-{}", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let seen = Rc::new(RefCell::new(None));
/// let s = seen.clone();
/// let p = path.clone();
/// evloop::run(move || {
///     let watcher: Rc<RefCell<Option<fs::StatWatcher>>> = Rc::default();
///     let w = watcher.clone();
///     let started = fs::watch_file(&p, Duration::from_millis(10), move |current, previous| {
///         *s.borrow_mut() = Some((current.exists(), previous.exists(), current.size));
///         w.borrow().as_ref().unwrap().close(); // the loop can end
///     });
///     *watcher.borrow_mut() = Some(started);
///     // the first poll sees it missing; then it appears
///     evloop::set_timeout(Duration::from_millis(50), move || {
///         fs::write_file(p, "hello", |r| r.unwrap());
///     });
/// })
/// .unwrap();
/// assert_eq!(*seen.borrow(), Some((true, false, 5)));
/// std::fs::remove_file(&path).unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn watch_file(
    path: impl AsRef<Path>,
    interval: Duration,
    listener: impl FnMut(&Stats, &Stats) + 'static,
) -> StatWatcher {
    let inner = Rc::new(StatInner {
        path: path.as_ref().to_path_buf(),
        interval: interval.max(Duration::from_millis(1)),
        change: Listeners::default(),
        waiters: RefCell::default(),
        streams: RefCell::default(),
        prev: RefCell::new(None),
        timer: RefCell::new(None),
        closed: Cell::new(false),
        refed: Cell::new(true),
    });
    inner.change.add(Box::new(listener));
    log::debug!(
        "fs watch_file '{}' every {:?}",
        inner.path.display(),
        inner.interval
    );
    // The first poll goes on a zero timer, not straight to the pool, so
    // that `unref` right after this call applies to it.
    StatInner::schedule(&inner, Duration::ZERO);
    StatWatcher { inner }
}

impl StatInner {
    /// The next poll, after `delay`.
    fn schedule(me: &Rc<StatInner>, delay: Duration) {
        if me.closed.get() {
            return;
        }
        let m = me.clone();
        let t = set_timeout(delay, move || StatInner::poll(&m));
        if !me.refed.get() {
            t.unref();
        }
        *me.timer.borrow_mut() = Some(t);
    }

    fn poll(me: &Rc<StatInner>) {
        me.timer.borrow_mut().take();
        if me.closed.get() {
            return;
        }
        let start = Instant::now();
        let path = me.path.clone();
        // The job holds the watcher, as the timer does between polls: an
        // open watcher lives while it polls, even with no handle left.
        let me = me.clone();
        queue_work(
            move || stat(&path),
            move |r: io::Result<Stats>| {
                if me.closed.get() {
                    return;
                }
                let cur = r.unwrap_or_else(|_| Stats::missing());
                me.on_stat(cur);
                let elapsed = start.elapsed();
                StatInner::schedule(&me, me.interval.saturating_sub(elapsed));
            },
        );
    }

    fn on_stat(&self, cur: Stats) {
        let prev = self.prev.borrow_mut().replace(cur.clone());
        let Some(prev) = prev else {
            return; // the baseline
        };
        let changed = match (cur.exists(), prev.exists()) {
            (false, false) => false,
            (true, true) => !cur.same_as(&prev),
            _ => true,
        };
        if changed {
            self.change.emit(|f| f(&cur, &prev));
            let change = StatChange {
                current: cur,
                previous: prev,
            };
            self.deliver(Some(change));
        }
    }

    /// Hands a change (or, with `None`, the end) to the promise and stream
    /// faces; the promises settle later, as every promise does.
    fn deliver(&self, change: Option<StatChange>) {
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in waiters {
            w(change.clone());
        }
        let streams: Vec<Rc<StreamState>> = {
            let mut s = self.streams.borrow_mut();
            s.retain(|w| w.strong_count() > 0);
            s.iter().filter_map(Weak::upgrade).collect()
        };
        for st in streams {
            match &change {
                Some(c) => st.push(c.clone()),
                None => st.end(),
            }
        }
    }
}

/// One change a [`StatWatcher`] saw: the stats now and before (what the
/// listeners get as `(current, previous)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatChange {
    /// The stats now (zeroed if the file is missing).
    pub current: Stats,
    /// The stats at the poll before (zeroed if it was missing).
    pub previous: Stats,
}

/// What a [`StatChanges`] stream holds: changes not yet taken, the
/// promise waiting for the next one, and whether the watcher closed.
#[derive(Default)]
struct StreamState {
    queue: RefCell<VecDeque<StatChange>>,
    waiter: RefCell<Option<Resolve<Option<StatChange>>>>,
    done: Cell<bool>,
}

impl StreamState {
    fn push(&self, c: StatChange) {
        let w = self.waiter.borrow_mut().take();
        match w {
            Some(w) => w(Some(c)),
            None => self.queue.borrow_mut().push_back(c),
        }
    }

    fn end(&self) {
        self.done.set(true);
        let w = self.waiter.borrow_mut().take();
        if let Some(w) = w {
            w(None);
        }
    }
}

/// A [`StatWatcher`]'s changes from the moment [`events`](StatWatcher::events)
/// was called, queued until taken: the async face (`while let
/// Some(c) = changes.next().await? { .. }`).
pub struct StatChanges {
    st: Rc<StreamState>,
}

impl StatChanges {
    /// The next change, queued or to come; `None` once the watcher is
    /// closed and the queue is empty. Calling it again before the last
    /// one settled takes that promise's place (it then never settles).
    // Not `Iterator::next`: it returns a promise, as an async iterator's does.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Promise<Option<StatChange>> {
        if let Some(c) = self.st.queue.borrow_mut().pop_front() {
            return Promise::resolve(Some(c));
        }
        if self.st.done.get() {
            return Promise::resolve(None);
        }
        let w = Promise::with_resolvers();
        *self.st.waiter.borrow_mut() = Some(w.resolve);
        w.promise
    }

    /// How many changes are queued.
    pub fn queued(&self) -> usize {
        self.st.queue.borrow().len()
    }
}

impl fmt::Debug for StatChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatChanges")
            .field("queued", &self.queued())
            .field("done", &self.st.done.get())
            .finish()
    }
}

impl StatWatcher {
    /// Adds a listener (Node's `'change'`), called with `(current,
    /// previous)`.
    pub fn on_change(&self, f: impl FnMut(&Stats, &Stats) + 'static) -> Listener {
        if self.is_closed() {
            return Listener::detached();
        }
        let id = self.inner.change.add(Box::new(f));
        let w: Weak<StatInner> = Rc::downgrade(&self.inner);
        Listener::new(w, 0, id)
    }

    /// Stops polling (Node's `watcher.stop()` / `fs.unwatchFile`): the
    /// timer is cleared, no further stat is queued, a stat in flight is
    /// ignored, and the listeners are dropped. Closing twice is a no-op.
    pub fn close(&self) {
        if self.inner.closed.replace(true) {
            return;
        }
        log::debug!("fs watch_file '{}' closed", self.inner.path.display());
        let t = self.inner.timer.borrow_mut().take();
        if let Some(t) = t {
            t.clear();
        }
        self.inner.change.clear();
        self.inner.deliver(None);
    }

    /// The next change as a promise (the promise face of `'change'`):
    /// `Some(change)`, or `None` once the watcher is closed. Only changes
    /// after this call count; [`events`](Self::events) queues every one.
    pub fn next(&self) -> Promise<Option<StatChange>> {
        if self.is_closed() {
            return Promise::resolve(None);
        }
        let w = Promise::with_resolvers();
        self.inner.waiters.borrow_mut().push(w.resolve);
        w.promise
    }

    /// A stream of this watcher's changes from now on, queued until taken
    /// with [`StatChanges::next`] (awaited: the async face).
    pub fn events(&self) -> StatChanges {
        let st = Rc::new(StreamState::default());
        if self.is_closed() {
            st.done.set(true);
        } else {
            self.inner.streams.borrow_mut().push(Rc::downgrade(&st));
        }
        StatChanges { st }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Lets the loop end while this watcher polls (Node's `unref`, or
    /// `persistent: false`). A stat running on the pool still keeps the
    /// loop until it returns.
    pub fn unref(&self) -> &Self {
        self.set_ref(false);
        self
    }

    /// Makes this watcher keep the loop alive again (the default).
    pub fn ref_(&self) -> &Self {
        self.set_ref(true);
        self
    }

    fn set_ref(&self, refed: bool) {
        self.inner.refed.set(refed);
        if let Some(t) = self.inner.timer.borrow().as_ref() {
            if refed {
                t.ref_();
            } else {
                t.unref();
            }
        }
    }

    /// Whether this watcher keeps the loop alive.
    pub fn has_ref(&self) -> bool {
        self.inner.refed.get()
    }

    /// The polled path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
}

impl fmt::Debug for StatWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatWatcher")
            .field("path", &self.inner.path)
            .field("interval", &self.inner.interval)
            .field("closed", &self.is_closed())
            .field("ref", &self.has_ref())
            .finish()
    }
}
