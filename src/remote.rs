//! The only door into the loop from other threads: a queue of jobs and one
//! `mio::Waker`.
//!
//! Other threads never touch loop state. They push a `Send` job into a
//! mutex-guarded queue and wake the poll; the loop moves the jobs into its
//! pending phase and runs them on its own thread. Wakes are coalesced: only
//! the push that finds the queue un-notified pays the `eventfd` write, so a
//! storm of posts costs one syscall per loop turn, not one per post (libuv's
//! `uv_async_send` does the same).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::event_loop::slots::{LoopLocal, PerLoop, Released};
use crate::event_loop::{with_current, LoopState};

/// A job sent from another thread.
pub(crate) type RemoteJob = Box<dyn FnOnce() + Send>;

/// The loop's cross-thread queue: jobs other threads posted, and the flags
/// they raise (notified, stop, closed).
pub(crate) struct RemoteQueue {
    waker: mio::Waker,
    queue: Mutex<Vec<RemoteJob>>,
    /// Set by the first post after the loop last drained; cleared by the
    /// loop before it drains.
    notified: AtomicBool,
    /// A stop was requested from another thread.
    stop: AtomicBool,
    /// The loop is gone: posts are refused.
    closed: AtomicBool,
}

impl RemoteQueue {
    pub(crate) fn new(waker: mio::Waker) -> Self {
        RemoteQueue {
            waker,
            queue: Mutex::new(Vec::new()),
            notified: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            // An eventfd write; it can only fail if the fd is gone.
            if let Err(e) = self.waker.wake() {
                log::debug!("waker failed: {e}");
            }
        }
    }

    /// Whether a post or stop arrived since the last `take`.
    pub(crate) fn is_notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Loop side: takes every queued job (appending to `out`) and returns
    /// whether a stop was requested.
    pub(crate) fn take(&self, out: &mut Vec<RemoteJob>) -> bool {
        self.notified.store(false, Ordering::Release);
        let mut q = lock(&self.queue);
        out.append(&mut q);
        drop(q);
        self.stop.swap(false, Ordering::AcqRel)
    }

    /// Loop side, on drop: refuse further posts and drop what is queued.
    pub(crate) fn close(&self) -> Vec<RemoteJob> {
        let mut q = lock(&self.queue);
        self.closed.store(true, Ordering::Release);
        std::mem::take(&mut *q)
    }
}

/// A poisoned lock only means a job's `Drop` panicked on another thread;
/// the queue itself is still a valid `Vec`.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A `Send + Sync` handle that other threads use to reach the loop:
/// [`post`](Remote::post) a job to run on the loop thread, or
/// [`stop`](Remote::stop) it. Cheap to clone.
///
/// A `Remote` does not keep the loop alive: if nothing else does, `run()`
/// returns and later posts are refused once the loop is dropped. A thread
/// the loop must wait for wakes an [`AsyncHandle`] instead, which keeps
/// the loop alive until it is closed.
///
/// ```
/// use std::time::Duration;
/// let el = evloop::EventLoop::new().unwrap();
/// let remote = el.remote();
/// {
///     let _guard = el.enter();
///     // Something that would keep the loop alive for a long time.
///     evloop::set_timeout(Duration::from_secs(3600), || {});
/// }
/// std::thread::spawn(move || {
///     remote
///         .post(|| {
///             println!("on the loop thread");
///             evloop::stop();
///         })
///         .unwrap();
/// });
/// el.run().unwrap();
/// ```
#[derive(Clone)]
pub struct Remote {
    pub(crate) shared: Arc<RemoteQueue>,
}

/// The loop a [`Remote`] points to has been dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopClosed;

impl fmt::Display for LoopClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the event loop is gone")
    }
}

impl std::error::Error for LoopClosed {}

impl Remote {
    /// Runs `job` on the loop thread, in its pending phase. Jobs from one
    /// thread run in the order they were posted.
    pub fn post(&self, job: impl FnOnce() + Send + 'static) -> Result<(), LoopClosed> {
        self.post_boxed(Box::new(job))
    }

    pub(crate) fn post_boxed(&self, job: RemoteJob) -> Result<(), LoopClosed> {
        // Checked under the lock that `close` takes, so a job is either
        // refused or queued before the loop drains the queue for good.
        let mut q = lock(&self.shared.queue);
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(LoopClosed);
        }
        q.push(job);
        drop(q);
        self.shared.notify();
        Ok(())
    }

    /// Asks the loop to stop, as [`EventLoop::stop`](crate::EventLoop::stop)
    /// does from inside: `run()` returns after its current iteration.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.notify();
    }

    /// Wakes the loop's poll without posting anything.
    pub fn wake(&self) {
        if let Err(e) = self.shared.waker.wake() {
            log::debug!("waker failed: {e}");
        }
    }

    /// Whether the loop has been dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("closed", &self.is_closed())
            .finish()
    }
}

// ---- async handles (libuv's `uv_async_t`) ----

/// A handle that another thread can wake, which runs a callback on the
/// loop thread and, unlike a [`Remote`], keeps the loop alive until it is
/// closed (libuv's `uv_async_t`).
///
/// Create it on the loop thread with a callback, hand its
/// [`sender`](AsyncHandle::sender) to other threads, and
/// [`close`](AsyncHandle::close) (or drop) it when no more wakes are
/// expected. Wakes are coalesced: however many
/// [`send`](AsyncSender::send)s arrive before the loop gets to it, the
/// callback runs once, in the pending phase; a send after the callback
/// started runs it again.
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use evloop::AsyncHandle;
///
/// let got = Rc::new(RefCell::new(None));
/// let g = got.clone();
/// evloop::run(move || {
///     let (tx, rx) = std::sync::mpsc::channel();
///     // Nothing else keeps the loop alive: the handle does, until closed.
///     let slot = Rc::new(RefCell::new(None::<AsyncHandle>));
///     let me = slot.clone();
///     let handle = AsyncHandle::new(move || {
///         *g.borrow_mut() = rx.try_recv().ok();
///         me.borrow_mut().take(); // close it: the loop may end now
///     });
///     let sender = handle.sender();
///     *slot.borrow_mut() = Some(handle);
///     std::thread::spawn(move || {
///         tx.send(42).unwrap();
///         sender.send().unwrap();
///     });
/// })
/// .unwrap();
/// assert_eq!(*got.borrow(), Some(42));
/// ```
pub struct AsyncHandle {
    state: std::rc::Weak<LoopState>,
    key: usize,
    shared: Arc<AsyncShared>,
}

/// The `Send + Sync` side of an [`AsyncHandle`]: wakes it from any thread.
/// Cheap to clone.
#[derive(Clone)]
pub struct AsyncSender {
    shared: Arc<AsyncShared>,
}

/// What an [`AsyncHandle`] and its senders share.
struct AsyncShared {
    /// The handle's key in the loop's table.
    key: usize,
    /// The loop's queue: a send posts the handle's job there.
    remote: Remote,
    /// A wake is queued and its callback has not started yet.
    pending: AtomicBool,
    /// The handle was closed: sends are refused.
    closed: AtomicBool,
}

/// [`AsyncSender::send`] failed: the handle was closed or its loop is
/// gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncClosed;

impl fmt::Display for AsyncClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the async handle is closed or its event loop is gone")
    }
}

impl std::error::Error for AsyncClosed {}

/// One handle's loop side.
struct AsyncEntry {
    shared: Arc<AsyncShared>,
    refed: bool,
    cb: Option<Box<dyn FnMut()>>,
}

/// A loop's async handles (a per-loop slot).
#[derive(Default)]
struct AsyncTable {
    entries: RefCell<slab::Slab<AsyncEntry>>,
}

impl PerLoop for AsyncTable {
    fn new(_: &LoopState) -> Self {
        AsyncTable::default()
    }

    fn release(&self) -> Released {
        let mut cbs = Vec::new();
        for (_, e) in self.entries.borrow_mut().iter_mut() {
            cbs.extend(e.cb.take());
        }
        Released::new("async handle callbacks", cbs.len(), cbs)
    }
}

static ASYNC_HANDLES: LoopLocal<AsyncTable> = LoopLocal::new();

/// The loop's async handles for `active_handles`: a label and whether
/// each keeps the loop alive.
pub(crate) fn describe_async(state: &LoopState) -> Vec<(String, bool)> {
    let Some(table) = ASYNC_HANDLES.try_get(state) else {
        return Vec::new();
    };
    let entries = table.entries.borrow();
    entries
        .iter()
        .map(|(key, e)| (format!("async handle #{key}"), e.refed))
        .collect()
}

impl AsyncHandle {
    /// A ref'd handle on the current loop that runs `cb` on the loop
    /// thread after each (coalesced) [`AsyncSender::send`].
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn new(cb: impl FnMut() + 'static) -> AsyncHandle {
        with_current(|state| {
            let mut entries = ASYNC_HANDLES.get(state).entries.borrow_mut();
            let entry = entries.vacant_entry();
            let key = entry.key();
            let shared = Arc::new(AsyncShared {
                key,
                remote: state.remote_handle(),
                pending: AtomicBool::new(false),
                closed: AtomicBool::new(false),
            });
            entry.insert(AsyncEntry {
                shared: shared.clone(),
                refed: true,
                cb: Some(Box::new(cb)),
            });
            drop(entries);
            state.watchers.add_ref(true);
            log::debug!("async handle #{key} opened");
            AsyncHandle {
                state: Rc::downgrade(state),
                key,
                shared,
            }
        })
    }

    /// A sender for other threads.
    pub fn sender(&self) -> AsyncSender {
        AsyncSender {
            shared: self.shared.clone(),
        }
    }

    /// Closes it: later sends fail with [`AsyncClosed`], a wake already
    /// queued does nothing, and it no longer keeps the loop alive. Dropping
    /// the handle closes it too.
    pub fn close(&self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let entry = ASYNC_HANDLES
            .get(&state)
            .entries
            .borrow_mut()
            .try_remove(self.key);
        if let Some(entry) = entry {
            if entry.refed {
                state.watchers.add_ref(false);
            }
            log::debug!("async handle #{} closed", self.key);
            drop(entry); // outside the borrow: its callback's captures may use the loop
        }
    }

    /// Whether it was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Lets the loop end while the handle is open (a wake that arrives
    /// while the loop still runs is still delivered).
    pub fn unref(&self) -> &Self {
        self.set_ref(false);
        self
    }

    /// Makes it keep the loop alive again (the default).
    pub fn ref_(&self) -> &Self {
        self.set_ref(true);
        self
    }

    /// Whether it keeps the loop alive.
    pub fn has_ref(&self) -> bool {
        let Some(state) = self.state.upgrade() else {
            return false;
        };
        let refed = ASYNC_HANDLES
            .get(&state)
            .entries
            .borrow()
            .get(self.key)
            .is_some_and(|e| e.refed);
        refed
    }

    fn set_ref(&self, on: bool) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let mut entries = ASYNC_HANDLES.get(&state).entries.borrow_mut();
        if let Some(e) = entries.get_mut(self.key) {
            if e.refed != on {
                e.refed = on;
                state.watchers.add_ref(on);
            }
        }
    }
}

impl Drop for AsyncHandle {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for AsyncHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncHandle")
            .field("key", &self.key)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl AsyncSender {
    /// Wakes the handle: its callback runs on the loop thread, once for
    /// all the sends made before it starts (libuv's `uv_async_send`).
    /// Costs a queue push and at most one `eventfd` write per loop turn.
    pub fn send(&self) -> Result<(), AsyncClosed> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(AsyncClosed);
        }
        if self.shared.pending.swap(true, Ordering::AcqRel) {
            return Ok(()); // coalesced with the wake already queued
        }
        let shared = self.shared.clone();
        let job: RemoteJob = Box::new(move || fire(&shared));
        self.shared.remote.post_boxed(job).map_err(|_| {
            self.shared.pending.store(false, Ordering::Release);
            AsyncClosed
        })
    }

    /// Whether the handle was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl fmt::Debug for AsyncSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Loop side of a wake: runs the handle's callback if it is still open.
fn fire(shared: &Arc<AsyncShared>) {
    // Sends from now on queue another wake.
    shared.pending.store(false, Ordering::Release);
    with_current(|state| {
        let table = ASYNC_HANDLES.get(state);
        let key = shared.key;
        // The same handle, not a later one that got its key.
        let cb = match table.entries.borrow_mut().get_mut(key) {
            Some(e) if Arc::ptr_eq(&e.shared, shared) => e.cb.take(),
            _ => None,
        };
        let Some(mut cb) = cb else {
            return;
        };
        // Take, then call; put back unless it was closed meanwhile.
        let _ = state.call("async", &mut cb);
        let mut entries = table.entries.borrow_mut();
        match entries.get_mut(key) {
            Some(e) if Arc::ptr_eq(&e.shared, shared) && e.cb.is_none() => e.cb = Some(cb),
            _ => {
                drop(entries);
                let _ = state.call("async", move || drop(cb));
            }
        }
    });
}
