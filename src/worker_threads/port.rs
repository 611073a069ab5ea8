//! Message ports (Node's `MessagePort` and `MessageChannel`): a typed,
//! two-ended channel between loops on different threads.
//!
//! Each end owns an inbox: a mutex-guarded queue of values the other end
//! posted, the flag saying the pair is closed, and, once the end is bound
//! to a loop, the [`AsyncSender`] that wakes that loop. Posting is a push
//! and at most one wake per loop turn (the async handle coalesces them);
//! the values themselves move, they are never serialised or cloned.
//!
//! A port is `Send` so that it can travel: into a worker's entry closure,
//! or inside a message. It is bound to a loop the first time it is asked
//! to receive there (`on_message`, `once_close`, `recv`): the loop side
//! (listeners, waiting `recv`s, the async handle) is created then, in a
//! per-loop table keyed by the port's id, and lives as long as the port
//! stays open. Receiving on a second loop is refused; posting works from
//! anywhere.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak as ArcWeak};

use crate::event_loop::slots::{LoopLocal, PerLoop, Released};
use crate::event_loop::{try_with_current, LoopRef, LoopState};
use crate::listeners::{once_fn, Listener, Listeners, RemoveListener};
use crate::promise::{Promise, Resolve, WithResolvers};
use crate::remote::{AsyncHandle, AsyncSender, Remote};

/// Messages one wake delivers before it lets the rest of the loop run
/// (the fairness rule: a busy peer must not starve other sources).
const BATCH: usize = 64;

const MESSAGE: u8 = 0;
const CLOSE: u8 = 1;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A poisoned lock means a value's `Drop` panicked on another thread; the
/// queue is still valid.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one end receives.
struct Inbox<T> {
    state: Mutex<InboxState<T>>,
}

struct InboxState<T> {
    queue: VecDeque<T>,
    /// The pair is closed: no more posts are taken.
    closed: bool,
    /// Wakes the loop this end is bound to.
    waker: Option<AsyncSender>,
}

impl<T> Inbox<T> {
    fn new() -> Arc<Self> {
        Arc::new(Inbox {
            state: Mutex::new(InboxState {
                queue: VecDeque::new(),
                closed: false,
                waker: None,
            }),
        })
    }

    fn wake(&self) {
        let waker = lock(&self.state).waker.clone();
        if let Some(w) = waker {
            // Fails only when the bound loop is gone: nobody to tell.
            let _ = w.send();
        }
    }
}

/// One end of a pair, shared by the clones of its [`MessagePort`]. The
/// last clone's drop closes the pair.
struct End<T> {
    id: u64,
    me: Arc<Inbox<T>>,
    peer: Arc<Inbox<T>>,
    /// The loop the end was bound to, if it was.
    bound: Mutex<Option<Remote>>,
    /// Whether receiving keeps the loop alive (not for a worker's own
    /// port: the `Worker` handle refs the loop for it).
    keep_alive: bool,
}

impl<T> End<T> {
    fn close(&self) {
        let dropped = {
            let mut me = lock(&self.me.state);
            if me.closed {
                return;
            }
            me.closed = true;
            // Node: a closed port emits no more messages.
            std::mem::take(&mut me.queue)
        };
        lock(&self.peer.state).closed = true;
        drop(dropped);
        self.me.wake();
        self.peer.wake();
    }
}

impl<T> Drop for End<T> {
    fn drop(&mut self) {
        self.close();
    }
}

/// One end of a typed message channel (Node's `MessagePort`): values of
/// type `T` posted at one end arrive at the other, in order, each in its
/// own callback followed by the microtask checkpoint.
///
/// Cloning gives another handle to the same end; dropping the last one
/// closes the pair (the other end sees the close), as does
/// [`close`](MessagePort::close). While the end has a message listener or
/// a pending `recv`, its loop holds it open (Node does not collect a port
/// with a listener): dropping the handles closes it once nobody receives. A port is `Send` (when `T` is): move it
/// into a [`Worker`](super::Worker)'s entry or post it inside a message;
/// it attaches to the loop of the thread that first receives on it.
///
/// Messages are taken in one of two ways: pushed to the listeners of
/// [`on_message`](MessagePort::on_message) (Node's `port.on('message')`;
/// each listener gets the value, the last one the original and the others
/// clones), or pulled with [`recv`](MessagePort::recv), a promise for
/// `.await`. A pending `recv` takes the next message before the listeners
/// do. Messages posted before anyone receives wait in the inbox (Node's
/// port starts when a listener is added).
///
/// ```
/// use evloop::worker_threads::MessageChannel;
///
/// let got = std::rc::Rc::new(std::cell::Cell::new(0));
/// let g = got.clone();
/// evloop::run(move || {
///     let (a, b) = MessageChannel::new();
///     a.post_message(20).unwrap();
///     a.post_message(22).unwrap();
///     evloop::spawn(async move {
///         while let Ok(Some(n)) = b.recv().await {
///             g.set(g.get() + n);
///             if g.get() == 42 {
///                 b.close(); // the pair closes: recv gives None
///             }
///         }
///     });
/// })
/// .unwrap();
/// assert_eq!(got.get(), 42);
/// ```
pub struct MessagePort<T> {
    end: Arc<End<T>>,
}

impl<T> Clone for MessagePort<T> {
    fn clone(&self) -> Self {
        MessagePort {
            end: self.end.clone(),
        }
    }
}

impl<T> fmt::Debug for MessagePort<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessagePort")
            .field("id", &self.end.id)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Makes connected port pairs (Node's `new MessageChannel()`).
#[derive(Debug)]
pub struct MessageChannel;

impl MessageChannel {
    /// A new pair of connected ports (Node's `port1` and `port2`): what one
    /// posts, the other receives. Neither is bound to a loop yet.
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T: Send + 'static>() -> (MessagePort<T>, MessagePort<T>) {
        pair(true, true)
    }
}

/// A pair; `keep_a` and `keep_b` say whether receiving on each end refs
/// its loop.
pub(crate) fn pair<T>(keep_a: bool, keep_b: bool) -> (MessagePort<T>, MessagePort<T>) {
    let (x, y) = (Inbox::new(), Inbox::new());
    let end = |me: &Arc<Inbox<T>>, peer: &Arc<Inbox<T>>, keep_alive: bool| MessagePort {
        end: Arc::new(End {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            me: me.clone(),
            peer: peer.clone(),
            bound: Mutex::new(None),
            keep_alive,
        }),
    };
    (end(&x, &y, keep_a), end(&y, &x, keep_b))
}

impl<T> MessagePort<T> {
    /// Sends `value` to the other end (Node's `port.postMessage`). Works
    /// from any thread. Fails with `BrokenPipe` once the pair is closed
    /// (the value is dropped).
    pub fn post_message(&self, value: T) -> io::Result<()> {
        let mut peer = lock(&self.end.peer.state);
        if peer.closed {
            drop(peer);
            drop(value);
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the message port is closed",
            ));
        }
        peer.queue.push_back(value);
        let waker = peer.waker.clone();
        drop(peer);
        if let Some(w) = waker {
            let _ = w.send();
        }
        Ok(())
    }

    /// Closes the pair (Node's `port.close()`): this end drops what it has
    /// not delivered yet, the other end delivers what was posted to it and
    /// then sees the close (its `recv` gives `None`, its close listeners
    /// run). Closing twice does nothing.
    pub fn close(&self) {
        self.end.close();
    }

    /// Whether the pair is closed.
    pub fn is_closed(&self) -> bool {
        lock(&self.end.me.state).closed
    }

    /// Whether `self` and `other` are handles to the same end.
    pub fn ptr_eq(&self, other: &MessagePort<T>) -> bool {
        Arc::ptr_eq(&self.end, &other.end)
    }
}

impl<T: Send + 'static> MessagePort<T> {
    /// The next message, or `None` once the pair is closed and everything
    /// posted before has been taken. Binds the port to the current loop; a
    /// pending `recv` keeps the loop alive. Rejects (with an `io::Error`)
    /// if there is no current loop or the port is bound to another one.
    pub fn recv(&self) -> Promise<Option<T>> {
        let bound = match self.bind() {
            Ok(b) => b,
            // Closed, and the close was delivered here already.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Promise::resolve(None),
            Err(e) => return Promise::reject(e),
        };
        let WithResolvers {
            promise, resolve, ..
        } = Promise::with_resolvers();
        bound.waiting.borrow_mut().push_back(resolve);
        bound.update_ref();
        bound.me.wake();
        promise
    }

    /// Adds a listener called once when the pair closes (Node's
    /// `port.once('close')`), after every message posted before the close
    /// was delivered; returns the [`Listener`] that removes it. Binds the
    /// port like [`on_message`](MessagePort::on_message), but does not
    /// keep the loop alive by itself.
    pub fn once_close(&self, cb: impl FnOnce() + 'static) -> Listener {
        let Ok(bound) = self.bind() else {
            return Listener::detached();
        };
        let id = bound.on_close.add_once(once_fn(move |()| cb()));
        bound.me.wake();
        bound.listener(CLOSE, id)
    }

    /// Keeps receiving on this port from keeping the loop alive (Node's
    /// `port.unref()`): messages still arrive while the loop runs.
    pub fn unref(&self) -> &Self {
        if let Ok(b) = self.bind() {
            b.refed.set(false);
            b.update_ref();
        }
        self
    }

    /// Undoes [`unref`](MessagePort::unref) (Node's `port.ref()`).
    pub fn ref_(&self) -> &Self {
        if let Ok(b) = self.bind() {
            b.refed.set(true);
            b.update_ref();
        }
        self
    }

    /// Whether messages are waiting here with someone to take them (for
    /// a worker's exit, which waits for them).
    pub(crate) fn has_deliverable(&self) -> bool {
        let queued = !lock(&self.end.me.state).queue.is_empty();
        queued && self.bind().is_ok_and(|b| b.has_consumer())
    }

    /// The loop side on the current loop, created on first use.
    fn bind(&self) -> io::Result<Rc<Bound<T>>> {
        try_with_current(|state| self.bind_on(state))
            .unwrap_or_else(|| Err(io::Error::other("no event loop is current on this thread")))
    }

    fn bind_on(&self, state: &Rc<LoopState>) -> io::Result<Rc<Bound<T>>> {
        let table = PORTS.get(state);
        let found = table.ports.borrow().get(&self.end.id).cloned();
        if let Some(any) = found {
            return any
                .downcast::<Bound<T>>()
                .map_err(|_| io::Error::other("port type mismatch"));
        }
        {
            let mut bound = lock(&self.end.bound);
            match &*bound {
                Some(r) if !state.owns_remote(r) => {
                    return Err(io::Error::other(
                        "the message port receives on another event loop",
                    ))
                }
                Some(_) => {
                    // Bound here before, and closed since: the close was
                    // delivered, nothing more will come.
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the message port is closed",
                    ));
                }
                None => *bound = Some(state.remote_handle()),
            }
        }
        let bound = Rc::new_cyclic(|weak: &Weak<Bound<T>>| {
            let w = weak.clone();
            let handle = AsyncHandle::new(move || {
                if let Some(b) = w.upgrade() {
                    b.fire();
                }
            });
            handle.unref();
            Bound {
                id: self.end.id,
                end: Arc::downgrade(&self.end),
                hold: RefCell::new(None),
                me: self.end.me.clone(),
                sender: handle.sender(),
                handle,
                on_message: Listeners::default(),
                on_close: Listeners::default(),
                waiting: RefCell::default(),
                refed: Cell::new(true),
                keep_alive: self.end.keep_alive,
                loop_ref: LoopRef::current(),
                cloner: Cell::new(None),
                done: Cell::new(false),
            }
        });
        let any: Rc<dyn Any> = bound.clone();
        table.ports.borrow_mut().insert(self.end.id, any);
        let wake = {
            let mut me = lock(&self.end.me.state);
            me.waker = Some(bound.sender.clone());
            !me.queue.is_empty() || me.closed
        };
        if wake {
            let _ = bound.sender.send();
        }
        Ok(bound)
    }
}

impl<T: Send + Clone + 'static> MessagePort<T> {
    /// Adds a listener called with each message (Node's
    /// `port.on('message')`); returns the [`Listener`] that removes it.
    /// Binds the port to the current loop; while it has a listener (and is
    /// not [`unref`](MessagePort::unref)'d) the port keeps the loop alive,
    /// until the pair closes.
    ///
    /// With several listeners, each gets the message: the last one the
    /// value itself, the others clones. Without a current loop, or on a
    /// port bound to another loop, the listener is not kept.
    pub fn on_message(&self, cb: impl FnMut(T) + 'static) -> Listener {
        let Ok(bound) = self.bind() else {
            return Listener::detached();
        };
        bound.cloner.set(Some(T::clone));
        let id = bound.on_message.add(Box::new(cb));
        bound.update_ref();
        bound.me.wake();
        bound.listener(MESSAGE, id)
    }

    /// Adds a listener called with the next message only (Node's
    /// `port.once('message')`).
    pub fn once_message(&self, cb: impl FnOnce(T) + 'static) -> Listener {
        let Ok(bound) = self.bind() else {
            return Listener::detached();
        };
        bound.cloner.set(Some(T::clone));
        let id = bound.on_message.add_once(once_fn(cb));
        bound.update_ref();
        bound.me.wake();
        bound.listener(MESSAGE, id)
    }
}

/// `T::clone`, for the listeners of a message but the last.
type CloneFn<T> = fn(&T) -> T;

/// The loop side of a bound port.
struct Bound<T> {
    id: u64,
    end: ArcWeak<End<T>>,
    /// The end, held while someone receives on it.
    hold: RefCell<Option<Arc<End<T>>>>,
    me: Arc<Inbox<T>>,
    handle: AsyncHandle,
    sender: AsyncSender,
    on_message: Listeners<dyn FnMut(T)>,
    on_close: Listeners<dyn FnMut(())>,
    waiting: RefCell<VecDeque<Resolve<Option<T>>>>,
    /// Not `unref`'d by the user.
    refed: Cell<bool>,
    keep_alive: bool,
    loop_ref: LoopRef,
    /// `T::clone`, set by `on_message` (which requires `T: Clone`).
    cloner: Cell<Option<CloneFn<T>>>,
    /// The close was delivered.
    done: Cell<bool>,
}

impl<T: 'static> Bound<T> {
    fn listener(self: &Rc<Self>, event: u8, id: u32) -> Listener {
        let weak: Weak<dyn RemoveListener> = Rc::downgrade(self) as Weak<dyn RemoveListener>;
        Listener::new(weak, event, id)
    }

    fn has_consumer(&self) -> bool {
        !self.waiting.borrow().is_empty() || !self.on_message.is_empty()
    }

    /// Keeps the loop alive while someone waits for messages on an open
    /// port (Node refs a port with a `'message'` listener).
    fn update_ref(&self) {
        // While someone receives, the loop holds the end open, as Node
        // keeps a port with a listener from being collected.
        let consumed = !self.done.get() && self.has_consumer();
        let released = if consumed {
            let mut hold = self.hold.borrow_mut();
            if hold.is_none() {
                *hold = self.end.upgrade();
            }
            None
        } else {
            self.hold.borrow_mut().take()
        };
        // Outside the borrow: the last handle's drop closes the pair.
        drop(released);
        let on = self.keep_alive && self.refed.get() && consumed;
        if on {
            self.handle.ref_();
        } else {
            self.handle.unref();
        }
    }

    /// The async handle's callback: delivers up to [`BATCH`] messages,
    /// each followed by a checkpoint, then the close if it came.
    fn fire(self: Rc<Self>) {
        for _ in 0..BATCH {
            if self.done.get() {
                return;
            }
            if !self.has_consumer() {
                // Wait in the inbox for a listener or a recv; a closed,
                // drained port still reports its close.
                let (empty, closed) = {
                    let s = lock(&self.me.state);
                    (s.queue.is_empty(), s.closed)
                };
                if empty && closed {
                    self.finish();
                }
                return;
            }
            let msg = {
                let mut s = lock(&self.me.state);
                match s.queue.pop_front() {
                    Some(m) => Ok(m),
                    None => Err(s.closed),
                }
            };
            match msg {
                Ok(m) => {
                    self.deliver(m);
                    self.loop_ref.checkpoint_now();
                }
                Err(true) => {
                    self.finish();
                    return;
                }
                Err(false) => return,
            }
        }
        // More may be waiting: let the rest of the loop run first.
        let _ = self.sender.send();
    }

    fn deliver(&self, m: T)
    where
        T: 'static,
    {
        let waiter = self.waiting.borrow_mut().pop_front();
        if let Some(resolve) = waiter {
            resolve(Some(m));
            self.update_ref();
            return;
        }
        // Each listener present now gets the message (the snapshot rule:
        // as many calls as listeners now): clones for all but the last.
        // `cloner` is set by `on_message`, the only way to add one.
        let mut value = Some(m);
        let mut left = self.on_message.len();
        let cloner = self.cloner.get();
        self.on_message.emit(|f| {
            left = left.saturating_sub(1);
            if left == 0 {
                if let Some(v) = value.take() {
                    f(v);
                }
            } else if let Some(v) = value.as_ref() {
                if let Some(c) = cloner {
                    f(c(v));
                }
            }
        });
        self.update_ref();
    }

    /// The pair closed and everything was delivered: resolve the waiting
    /// `recv`s with `None`, run the close listeners, and leave the loop.
    fn finish(&self) {
        self.done.set(true);
        let waiting = std::mem::take(&mut *self.waiting.borrow_mut());
        for resolve in waiting {
            resolve(None);
        }
        self.on_close.emit(|f| f(()));
        self.on_message.clear();
        self.handle.close();
        let held = self.hold.borrow_mut().take();
        drop(held);
        lock(&self.me.state).waker = None;
        let id = self.id;
        let removed = try_with_current(|state| PORTS.get(state).ports.borrow_mut().remove(&id));
        // Dropped outside the table's borrow: listeners may hold ports.
        drop(removed);
    }
}

impl<T: 'static> RemoveListener for Bound<T> {
    fn remove_listener(&self, event: u8, id: u32) -> bool {
        let found = match event {
            MESSAGE => self.on_message.remove(id),
            _ => self.on_close.remove(id),
        };
        self.update_ref();
        found
    }
}

/// The ports bound to a loop (a per-loop slot), type-erased: each is a
/// `Bound<T>` for its own `T`.
#[derive(Default)]
struct PortTable {
    ports: RefCell<HashMap<u64, Rc<dyn Any>>>,
}

impl PerLoop for PortTable {
    fn new(_: &LoopState) -> Self {
        PortTable::default()
    }

    fn release(&self) -> Released {
        let ports = std::mem::take(&mut *self.ports.borrow_mut());
        Released::new("message ports", ports.len(), ports)
    }
}

static PORTS: LoopLocal<PortTable> = LoopLocal::new();
