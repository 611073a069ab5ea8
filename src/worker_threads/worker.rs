//! The [`Worker`] handle: an OS thread running its own loop, the port to
//! it, and its exit.
//!
//! The thread reports its end through an [`AsyncHandle`] on the parent's
//! loop: it stores the outcome (exit code, error) under a mutex and wakes
//! the handle, whose callback joins the thread and emits `'error'` and
//! `'exit'` on the parent's thread. That handle is what keeps the parent
//! alive while the worker runs (Node's ref'd `Worker`).
//!
//! Termination goes through the worker loop's [`Remote`]: the thread
//! publishes it once its loop exists, and `terminate` asks it to stop,
//! which takes effect at the loop's next iteration boundary (a callback
//! that never returns cannot be interrupted: there is no preemption in
//! Rust, as there is none for a JS busy loop before V8's interrupt).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, PanicError};
use crate::event_loop::{report_uncaught, EventLoop};
use crate::listeners::{once_fn, Listener, Listeners, RemoveListener};
use crate::promise::{Promise, WithResolvers};
use crate::remote::{AsyncHandle, Remote};

use super::port::{pair, MessagePort};
use super::{enter_worker, take_exit_code};

static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);

const EXIT: u8 = 0;
const ERROR: u8 = 1;

/// Why a worker ended with an error (Node's worker `'error'` event): a
/// panic in one of its callbacks, with the panic's message, or another
/// error its loop ended with (an unhandled rejection, an `'error'` nobody
/// listened to, or the loop failing to start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerError {
    message: String,
    panicked: bool,
}

impl WorkerError {
    fn from_error(e: &Error) -> WorkerError {
        match e {
            Error::Panicked(p) => WorkerError {
                message: p.message().to_string(),
                panicked: true,
            },
            other => WorkerError {
                message: other.to_string(),
                panicked: false,
            },
        }
    }

    /// The panic's message, or the error's description.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the worker panicked (rather than ending with another
    /// uncaught error).
    pub fn is_panic(&self) -> bool {
        self.panicked
    }
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.panicked {
            write!(f, "the worker panicked: {}", self.message)
        } else {
            write!(f, "the worker failed: {}", self.message)
        }
    }
}

impl std::error::Error for WorkerError {}

/// What the thread and the parent share.
struct Shared {
    /// The worker loop's remote, while it runs.
    remote: Mutex<Option<Remote>>,
    terminate: AtomicBool,
    /// The exit code and error, set once by the thread as it ends.
    outcome: Mutex<Option<(i32, Option<WorkerError>)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A worker thread (Node's `new Worker(...)` from `worker_threads`): an OS
/// thread running its own [`EventLoop`], with a [`MessagePort`] to it.
///
/// The entry closure runs on the new thread as the worker loop's main
/// script (as [`EventLoop::run_main`]), with the worker's end of the port
/// (Node's `parentPort`); the loop then runs until nothing keeps it alive.
/// Values of type `T` go both ways through [`post_message`](Worker::post_message)
/// and [`port`](Worker::port); they move, they are not copied.
///
/// The handle keeps the parent's loop alive until the worker ends (unless
/// [`unref`](Worker::unref)'d). Its end is reported on the parent's loop:
/// [`on_error`](Worker::on_error) first, if it ended with an error (an
/// `'error'` nobody listens to is uncaught in the parent, as in Node), then
/// [`on_exit`](Worker::on_exit) with the exit code: 0 for a normal end,
/// the code given to [`exit`](super::exit), 1 after an error or
/// [`terminate`](Worker::terminate). Cloning gives another handle to the
/// same worker.
///
/// ```
/// use evloop::worker_threads::Worker;
///
/// evloop::run(|| {
///     let worker = Worker::spawn(|parent| {
///         parent.post_message("hello from the worker".to_string()).unwrap();
///     })
///     .unwrap();
///     worker.on_message(|msg: String| println!("{msg}"));
///     worker.on_exit(|code| assert_eq!(code, 0));
/// })
/// .unwrap();
/// ```
pub struct Worker<T> {
    inner: Rc<Inner<T>>,
}

impl<T> Clone for Worker<T> {
    fn clone(&self) -> Self {
        Worker {
            inner: self.inner.clone(),
        }
    }
}

impl<T> fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("thread_id", &self.inner.thread_id)
            .field("exit_code", &self.inner.exit_code.get())
            .finish()
    }
}

struct Inner<T> {
    thread_id: u64,
    port: MessagePort<T>,
    shared: Arc<Shared>,
    /// The parent-side handle the thread wakes as it ends; `None` once the
    /// exit was delivered.
    handle: RefCell<Option<AsyncHandle>>,
    thread: RefCell<Option<JoinHandle<()>>>,
    exit_code: Cell<Option<i32>>,
    on_exit: Listeners<dyn FnMut(i32)>,
    on_error: Listeners<dyn FnMut(WorkerError)>,
}

impl<T: Send + 'static> Worker<T> {
    /// Starts a worker thread running `entry` on its own loop, with the
    /// worker's end of the port (Node's `new Worker(file)`, `entry` being
    /// the file's top level and its argument `parentPort`). Fails if the
    /// thread cannot be started.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn spawn(entry: impl FnOnce(MessagePort<T>) + Send + 'static) -> io::Result<Worker<T>> {
        // Our end does not ref this loop (the worker handle does); the
        // worker's does ref its loop, as `parentPort.on('message')` does.
        let (ours, theirs) = pair::<T>(false, true);
        let thread_id = NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            remote: Mutex::new(None),
            terminate: AtomicBool::new(false),
            outcome: Mutex::new(None),
        });
        let inner = Rc::new(Inner {
            thread_id,
            port: ours,
            shared: shared.clone(),
            handle: RefCell::new(None),
            thread: RefCell::new(None),
            exit_code: Cell::new(None),
            on_exit: Listeners::default(),
            on_error: Listeners::default(),
        });
        // A cycle while the worker runs (the handle's callback holds the
        // worker, the worker the handle), so the exit is reported even if
        // every `Worker` is dropped. `ended` breaks it by closing the
        // handle; so does the loop's teardown, dropping the callbacks.
        let me = inner.clone();
        let handle = AsyncHandle::new(move || me.clone().ended());
        *inner.handle.borrow_mut() = Some(handle);
        let sender = inner
            .handle
            .borrow()
            .as_ref()
            .map(|h| h.sender())
            .expect("the handle was just made");
        let thread = std::thread::Builder::new()
            .name(format!("evloop-worker-{thread_id}"))
            .spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    run_worker(thread_id, entry, theirs, &shared)
                }))
                .unwrap_or_else(|payload| {
                    let p = PanicError::from_payload(&*payload, "worker");
                    (1, Some(WorkerError::from_error(&Error::Panicked(p))))
                });
                *lock(&shared.outcome) = Some(outcome);
                // The parent's loop may be gone: nobody to tell.
                let _ = sender.send();
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                // No thread: close the handle (and the cycle) now.
                let handle = inner.handle.borrow_mut().take();
                drop(handle);
                return Err(e);
            }
        };
        *inner.thread.borrow_mut() = Some(thread);
        log::debug!("worker thread {thread_id} started");
        Ok(Worker { inner })
    }
}

/// The thread's body: a loop, the entry as its main script, then `run`.
fn run_worker<T: Send + 'static>(
    thread_id: u64,
    entry: impl FnOnce(MessagePort<T>),
    port: MessagePort<T>,
    shared: &Shared,
) -> (i32, Option<WorkerError>) {
    let el = match EventLoop::new() {
        Ok(el) => el,
        Err(e) => {
            let err = WorkerError {
                message: format!("cannot create the worker's event loop: {e}"),
                panicked: false,
            };
            return (1, Some(err));
        }
    };
    *lock(&shared.remote) = Some(el.remote());
    // Terminated before the remote was published: never start.
    if shared.terminate.load(Ordering::Acquire) {
        return (1, None);
    }
    enter_worker(thread_id);
    let r = el.run_main(move || entry(port)).and_then(|()| el.run());
    *lock(&shared.remote) = None;
    let code = take_exit_code();
    drop(el);
    match r {
        Err(e) => (1, Some(WorkerError::from_error(&e))),
        Ok(()) if shared.terminate.load(Ordering::Acquire) => (1, None),
        Ok(()) => (code.unwrap_or(0), None),
    }
}

impl<T: 'static> Inner<T> {
    fn listener(self: &Rc<Self>, event: u8, id: u32) -> Listener {
        let weak: std::rc::Weak<dyn RemoveListener> =
            Rc::downgrade(self) as std::rc::Weak<dyn RemoveListener>;
        Listener::new(weak, event, id)
    }

    /// On the parent's loop, after the thread stored its outcome.
    fn ended(self: Rc<Self>)
    where
        T: Send,
    {
        let Some((code, error)) = lock(&self.shared.outcome).take() else {
            return; // a spurious wake
        };
        // Messages the worker posted before it ended come first (Node
        // delivers them before 'exit'); they are being delivered by the
        // port's own handle, so look again after them.
        if self.port.has_deliverable() {
            *lock(&self.shared.outcome) = Some((code, error));
            if let Some(h) = self.handle.borrow().as_ref() {
                let _ = h.sender().send();
            }
            return;
        }
        if let Some(t) = self.thread.borrow_mut().take() {
            // It has stored its outcome: it is at its very end.
            let _ = t.join();
        }
        log::debug!("worker thread {} exited with {code}", self.thread_id);
        self.exit_code.set(Some(code));
        // Closing the handle drops its callback (after this call ends),
        // which breaks the cycle.
        let handle = self.handle.borrow_mut().take();
        drop(handle);
        if let Some(err) = error {
            let mut err = Some(err);
            let mut left = self.on_error.len();
            self.on_error.emit(|f| {
                left = left.saturating_sub(1);
                match (left, err.as_ref()) {
                    (0, _) => f(err.take().expect("the last listener")),
                    (_, Some(e)) => f(e.clone()),
                    (_, None) => {}
                }
            });
            if let Some(err) = err {
                // Node: an 'error' nobody listens to is thrown.
                report_uncaught(Error::UnhandledError {
                    emitter: "worker",
                    error: io::Error::other(err),
                });
            }
        }
        self.on_exit.emit(|f| f(code));
        self.on_exit.clear();
        self.on_error.clear();
    }
}

impl<T: 'static> RemoveListener for Inner<T> {
    fn remove_listener(&self, event: u8, id: u32) -> bool {
        match event {
            EXIT => self.on_exit.remove(id),
            _ => self.on_error.remove(id),
        }
    }
}

impl<T: Send + 'static> Worker<T> {
    /// Sends `value` to the worker (Node's `worker.postMessage`); see
    /// [`MessagePort::post_message`].
    pub fn post_message(&self, value: T) -> io::Result<()> {
        self.inner.port.post_message(value)
    }

    /// The parent's end of the port to the worker. Receiving on it does
    /// not keep the loop alive by itself: the worker handle does that.
    pub fn port(&self) -> &MessagePort<T> {
        &self.inner.port
    }

    /// The next message from the worker, `None` once the port is closed
    /// (the worker closed it or ended); see [`MessagePort::recv`].
    pub fn recv(&self) -> Promise<Option<T>> {
        self.inner.port.recv()
    }

    /// Adds a listener called once when the worker ends, with its exit
    /// code (Node's `worker.on('exit')`); returns the [`Listener`] that
    /// removes it. Added after the end, it is not kept (see
    /// [`exit_code`](Worker::exit_code)).
    pub fn on_exit(&self, cb: impl FnOnce(i32) + 'static) -> Listener {
        if self.inner.exit_code.get().is_some() {
            return Listener::detached();
        }
        let id = self.inner.on_exit.add_once(once_fn(cb));
        self.inner.listener(EXIT, id)
    }

    /// Adds a listener called if the worker ends with an error: a panic,
    /// or another uncaught error of its loop (Node's `worker.on('error')`).
    /// It runs before the exit listeners. With no error listener, the
    /// error is uncaught on the parent's loop.
    pub fn on_error(&self, cb: impl FnMut(WorkerError) + 'static) -> Listener {
        if self.inner.exit_code.get().is_some() {
            return Listener::detached();
        }
        let id = self.inner.on_error.add(Box::new(cb));
        self.inner.listener(ERROR, id)
    }

    /// The exit code, as a promise (resolves when the worker ends, at
    /// once if it has).
    pub fn exited(&self) -> Promise<i32> {
        if let Some(code) = self.inner.exit_code.get() {
            return Promise::resolve(code);
        }
        let WithResolvers {
            promise, resolve, ..
        } = Promise::with_resolvers();
        self.on_exit(move |code| (*resolve)(code));
        promise
    }

    /// Stops the worker (Node's `worker.terminate()`): its loop stops at
    /// its next iteration boundary, the thread ends, and the exit code is
    /// then 1. A callback that never returns cannot be stopped. Returns
    /// the [`exited`](Worker::exited) promise.
    pub fn terminate(&self) -> Promise<i32> {
        let shared = &self.inner.shared;
        shared.terminate.store(true, Ordering::Release);
        if let Some(remote) = lock(&shared.remote).as_ref() {
            remote.stop();
        }
        self.exited()
    }
}

impl<T: Send + Clone + 'static> Worker<T> {
    /// Adds a listener called with each message from the worker (Node's
    /// `worker.on('message')`); see [`MessagePort::on_message`]. It does
    /// not keep the loop alive beyond the worker's own life.
    pub fn on_message(&self, cb: impl FnMut(T) + 'static) -> Listener {
        self.inner.port.on_message(cb)
    }

    /// Adds a listener called with the next message from the worker only
    /// (Node's `worker.once('message')`).
    pub fn once_message(&self, cb: impl FnOnce(T) + 'static) -> Listener {
        self.inner.port.once_message(cb)
    }
}

impl<T> Worker<T> {
    /// The worker's thread id (Node's `worker.threadId`), as
    /// [`thread_id`](super::thread_id) reads it inside the worker.
    pub fn thread_id(&self) -> u64 {
        self.inner.thread_id
    }

    /// The exit code once the worker has ended (and its exit was
    /// delivered on this loop).
    pub fn exit_code(&self) -> Option<i32> {
        self.inner.exit_code.get()
    }

    /// Lets the parent's loop end while the worker runs (Node's
    /// `worker.unref()`); its exit is reported if the loop is still
    /// running then.
    pub fn unref(&self) -> &Self {
        if let Some(h) = self.inner.handle.borrow().as_ref() {
            h.unref();
        }
        self
    }

    /// Undoes [`unref`](Worker::unref) (Node's `worker.ref()`).
    pub fn ref_(&self) -> &Self {
        if let Some(h) = self.inner.handle.borrow().as_ref() {
            h.ref_();
        }
        self
    }

    /// Whether the worker keeps the loop alive.
    pub fn has_ref(&self) -> bool {
        self.inner
            .handle
            .borrow()
            .as_ref()
            .is_some_and(|h| h.has_ref())
    }
}
