//! The only door into the loop from other threads: a queue of jobs and one
//! `mio::Waker`.
//!
//! Other threads never touch loop state. They push a `Send` job into a
//! mutex-guarded queue and wake the poll; the loop moves the jobs into its
//! pending phase and runs them on its own thread. Wakes are coalesced: only
//! the push that finds the queue un-notified pays the `eventfd` write, so a
//! storm of posts costs one syscall per loop turn, not one per post (libuv's
//! `uv_async_send` does the same).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A job sent from another thread.
pub(crate) type RemoteJob = Box<dyn FnOnce() + Send>;

pub(crate) struct Shared {
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

impl Shared {
    pub(crate) fn new(waker: mio::Waker) -> Self {
        Shared {
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
/// returns and later posts are refused once the loop is dropped.
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
    pub(crate) shared: Arc<Shared>,
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
