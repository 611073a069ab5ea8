//! The IPC channel between a parent and a worker process: length-prefixed
//! messages over a Unix socket pair.
//!
//! A frame is the payload's length as 4 bytes, little-endian, then the
//! payload. Messages arrive whole and in order, however the bytes were
//! split on the way. Sending has the same backpressure contract as a
//! socket: [`send`](Channel::send) says `false` once the queue is above its
//! high-water mark, and [`on_drain`](Channel::on_drain) says when to go on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::rc::Rc;

use crate::abort::{AbortError, AbortListener, AbortSignal};
use crate::listeners::{Listener, Listeners, RemoveListener};
use crate::net::Stream;
use crate::promise::{Promise, Resolve, WithResolvers};

/// The largest message by default: 64 MiB. A frame announcing more is
/// taken as a broken peer and closes the channel.
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024 * 1024;

const HEADER: usize = 4;

type MessageFn = dyn FnMut(&[u8]);
type WriteCb = Box<dyn FnOnce(io::Result<()>)>;

/// One end of an IPC channel (Node's `process.send` / `'message'`).
///
/// Cloning gives another handle to the same channel. Messages are taken in
/// one of two ways: pushed to [`on_message`](Channel::on_message), or
/// pulled with [`recv`](Channel::recv) (a promise, for `.await`).
#[derive(Clone)]
pub struct Channel {
    inner: Rc<ChannelInner>,
}

struct ChannelInner {
    stream: Stream,
    /// Bytes of a frame not complete yet.
    partial: RefCell<Vec<u8>>,
    /// Header and payload of one outgoing message, reused.
    scratch: RefCell<Vec<u8>>,
    max_message: Cell<usize>,
    on_message: Listeners<MessageFn>,
    /// Messages waiting for `recv` (pull mode), and the `recv`s waiting
    /// for messages.
    inbox: RefCell<VecDeque<Vec<u8>>>,
    waiting: RefCell<VecDeque<Waiter>>,
    /// Ids of waiters (for an aborted `recv` to find its own).
    next_waiter: Cell<u64>,
    on_close: Listeners<dyn FnMut(io::Result<()>)>,
    /// The library's own reactions to the close (a cluster worker stops):
    /// apart from the user's listeners, so they neither displace one nor
    /// count as one (an error with no user listener stays uncaught).
    close_hooks: RefCell<Vec<Box<dyn FnOnce()>>>,
    /// Why the channel closed, if it was not a clean end.
    error: RefCell<Option<io::Error>>,
    closed: Cell<bool>,
}

/// A `recv` waiting for a message.
struct Waiter {
    id: u64,
    resolve: Resolve<Option<Vec<u8>>>,
    /// For [`Channel::recv_with_signal`]: its listener on the signal.
    listener: Option<AbortListener>,
}

impl Waiter {
    fn settle(self, msg: Option<Vec<u8>>) {
        if let Some(l) = &self.listener {
            l.remove();
        }
        (self.resolve)(msg);
    }
}

/// Pull mode pauses reading while this many messages wait for `recv`.
const INBOX_LIMIT: usize = 64;

impl Channel {
    /// Wraps a connected stream (a Unix socket) as a channel.
    pub(crate) fn new(stream: Stream) -> Channel {
        let inner = Rc::new(ChannelInner {
            stream: stream.clone(),
            partial: RefCell::default(),
            scratch: RefCell::default(),
            max_message: Cell::new(DEFAULT_MAX_MESSAGE),
            on_message: Listeners::default(),
            inbox: RefCell::default(),
            waiting: RefCell::default(),
            next_waiter: Cell::new(0),
            on_close: Listeners::default(),
            close_hooks: RefCell::default(),
            error: RefCell::new(None),
            closed: Cell::new(false),
        });
        // The stream's callbacks hold the channel weakly: the stream's own
        // registration keeps the stream alive, and the channel's handles
        // keep the channel.
        let weak = Rc::downgrade(&inner);
        stream.on_data(move |bytes| {
            if let Some(ch) = weak.upgrade() {
                ch.receive(bytes);
            }
        });
        let weak = Rc::downgrade(&inner);
        stream.on_error(move |e| {
            if let Some(ch) = weak.upgrade() {
                ch.set_error(e);
            }
        });
        // Strong: the close callback must run even if every handle is gone.
        let me = inner.clone();
        stream.on_close(move |_| me.closed());
        Channel { inner }
    }

    /// Sends one message. Returns `false` when the queue is above the
    /// high-water mark (wait for [`on_drain`](Channel::on_drain)); the
    /// message is queued either way. Fails with `InvalidInput` for a
    /// message over [`max_message`](Channel::set_max_message), and
    /// `BrokenPipe` once the channel is closed.
    pub fn send(&self, msg: &[u8]) -> io::Result<bool> {
        self.inner.write_frame(msg, None)
    }

    /// [`send`](Channel::send) as a promise that resolves once the kernel
    /// has taken the message.
    pub fn send_promise(&self, msg: &[u8]) -> Promise<()> {
        let WithResolvers {
            promise,
            resolve,
            reject,
        } = Promise::with_resolvers();
        let done = move |r: io::Result<()>| match r {
            Ok(()) => resolve(()),
            Err(e) => reject(e.into()),
        };
        match self.inner.write_frame(msg, Some(Box::new(done))) {
            Ok(_) => promise,
            Err(e) => Promise::reject(e),
        }
    }

    /// Adds a listener called with each message, in order (push mode;
    /// Node's `on('message')`); returns the [`Listener`] that removes it.
    /// Every listener gets every message, in the order they were added; a
    /// listener added while a message is delivered gets the next one (see
    /// [`Listener`]). Messages that were waiting for
    /// [`recv`](Channel::recv) go to the listeners now.
    pub fn on_message(&self, cb: impl FnMut(&[u8]) + 'static) -> Listener {
        let id = self.inner.on_message.add(Box::new(cb));
        self.inner.listening(MESSAGE, id)
    }

    /// Adds a listener called with the next message only (Node's
    /// `once('message')`); returns the [`Listener`] that removes it before
    /// then. Messages after it go to the other listeners, or wait for
    /// [`recv`](Channel::recv) if there are none.
    pub fn once_message(&self, cb: impl FnOnce(&[u8]) + 'static) -> Listener {
        let mut cb = Some(cb);
        let id = self.inner.on_message.add_once(Box::new(move |m: &[u8]| {
            if let Some(cb) = cb.take() {
                cb(m)
            }
        }));
        self.inner.listening(MESSAGE, id)
    }

    /// The next message, or `None` once the channel has closed (pull mode,
    /// for `.await`; messages go to [`on_message`](Channel::on_message)
    /// instead while one is set). While unclaimed messages pile up,
    /// reading pauses, so a slow consumer pushes back on the sender.
    pub fn recv(&self) -> Promise<Option<Vec<u8>>> {
        let ch = &self.inner;
        if let Some(m) = ch.inbox.borrow_mut().pop_front() {
            ch.stream.resume();
            return Promise::resolve(Some(m));
        }
        if ch.closed.get() {
            return Promise::resolve(None);
        }
        let WithResolvers {
            promise, resolve, ..
        } = Promise::with_resolvers();
        ch.add_waiter(resolve, None);
        ch.stream.resume();
        promise
    }

    /// [`recv`](Channel::recv), abortable: the next message, `None` once
    /// the channel has closed, or a rejection with the
    /// [`AbortError`] carrying the signal's
    /// reason if `signal` aborts first
    /// ([`Rejection::is_aborted`](crate::promise::Rejection::is_aborted)).
    ///
    /// What an abort releases: this pending `recv`, taken off the queue of
    /// waiting `recv`s, so the next message goes to the next `recv` (or
    /// waits in the inbox) instead of being lost. The channel itself stays
    /// open: it is its own handle, closed with [`close`](Channel::close).
    /// If `signal` has already aborted, no message is taken and the
    /// promise rejects. Aborting after the message came does nothing; the
    /// listener this adds to `signal` is removed then.
    pub fn recv_with_signal(&self, signal: &AbortSignal) -> Promise<Option<Vec<u8>>> {
        if let Some(reason) = signal.reason() {
            return Promise::reject(AbortError::new(reason));
        }
        let ch = &self.inner;
        if !ch.inbox.borrow().is_empty() || ch.closed.get() {
            return self.recv();
        }
        let WithResolvers {
            promise,
            resolve,
            reject,
        } = Promise::with_resolvers();
        let id = ch.next_waiter.get();
        let weak = Rc::downgrade(ch);
        let listener = signal.on_abort_op(move |reason| {
            if let Some(ch) = weak.upgrade() {
                let mut waiting = ch.waiting.borrow_mut();
                let gone = waiting
                    .iter()
                    .position(|w| w.id == id)
                    .and_then(|i| waiting.remove(i));
                drop(waiting);
                drop(gone);
            }
            reject(AbortError::new(reason.clone()).into());
        });
        ch.add_waiter(resolve, Some(listener));
        ch.stream.resume();
        promise
    }

    /// Adds a listener called when the send queue empties after `send`
    /// returned `false` (Node's `'drain'`); returns the [`Listener`] that
    /// removes it.
    pub fn on_drain(&self, cb: impl FnMut() + 'static) -> Listener {
        self.inner.stream.on_drain(cb)
    }

    /// Adds a listener called once when the channel has closed: `Ok` when
    /// the peer ended it or [`close`](Channel::close) was called, the error
    /// (each listener its own copy) when a failure or a malformed frame
    /// closed it. Returns the [`Listener`] that removes it. Without any,
    /// such an error is an uncaught error (see
    /// [`crate::on_uncaught_exception`]), as Node's `'error'` with no
    /// listener. Added after the close, it is called from the check phase
    /// (and the handle it returns is detached).
    pub fn on_close(&self, cb: impl FnOnce(io::Result<()>) + 'static) -> Listener {
        if self.inner.closed.get() {
            let r = self.inner.result();
            crate::set_immediate(move || cb(r));
            return Listener::detached();
        }
        let id = self.inner.on_close.add_once(crate::listeners::once_fn(cb));
        let owner = Rc::downgrade(&self.inner);
        Listener::new(owner, CLOSE, id)
    }

    /// Runs `hook` when the channel closes, apart from the user's
    /// [`on_close`](Channel::on_close) listeners (for the library's own
    /// reactions, such as a cluster worker stopping); at once if it has
    /// closed already.
    pub(crate) fn on_close_internal(&self, hook: impl FnOnce() + 'static) {
        if self.inner.closed.get() {
            crate::set_immediate(hook);
        } else {
            self.inner.close_hooks.borrow_mut().push(Box::new(hook));
        }
    }

    /// Closes after the queued messages are sent: the peer reads them,
    /// then sees the channel close.
    pub fn close(&self) {
        self.inner.stream.end();
    }

    /// Sets the largest message accepted and sent (default
    /// [`DEFAULT_MAX_MESSAGE`]).
    pub fn set_max_message(&self, bytes: usize) -> &Self {
        self.inner.max_message.set(bytes);
        self
    }

    /// Sets the queue size at which `send` starts returning `false`.
    pub fn set_high_water_mark(&self, bytes: usize) -> &Self {
        self.inner.stream.set_high_water_mark(bytes);
        self
    }

    /// Bytes queued and not yet taken by the kernel.
    pub fn queued_bytes(&self) -> usize {
        self.inner.stream.write_queue_len()
    }

    /// Whether the channel has closed.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Lets the loop exit while the channel is open (a worker that should
    /// not stay alive just to listen to its parent).
    pub fn unref(&self) -> &Self {
        self.inner.stream.unref();
        self
    }

    /// Makes the channel keep the loop alive again.
    pub fn ref_(&self) -> &Self {
        self.inner.stream.ref_();
        self
    }
}

/// Event numbers of a channel's [`Listener`] handles.
const MESSAGE: u8 = 0;
const CLOSE: u8 = 1;

impl RemoveListener for ChannelInner {
    fn remove_listener(&self, event: u8, id: u32) -> bool {
        match event {
            MESSAGE => self.on_message.remove(id),
            CLOSE => self.on_close.remove(id),
            _ => false,
        }
    }
}

impl ChannelInner {
    /// After a message listener `id` was added: its handle. Messages that
    /// were waiting for `recv` go to the listeners now; once the channel
    /// has closed, the listener is not kept (no message comes any more).
    fn listening(self: &Rc<Self>, event: u8, id: u32) -> Listener {
        let owner = Rc::downgrade(self);
        let l = Listener::new(owner, event, id);
        let queued: Vec<Vec<u8>> = self.inbox.borrow_mut().drain(..).collect();
        for m in queued {
            self.deliver(m.as_slice());
        }
        if self.closed.get() {
            l.remove();
        } else {
            self.stream.resume();
        }
        l
    }

    fn add_waiter(&self, resolve: Resolve<Option<Vec<u8>>>, listener: Option<AbortListener>) {
        let id = self.next_waiter.get();
        self.next_waiter.set(id + 1);
        self.waiting.borrow_mut().push_back(Waiter {
            id,
            resolve,
            listener,
        });
    }

    /// Frames `msg` into one buffer and writes it: one syscall per message
    /// when the socket has room.
    fn write_frame(&self, msg: &[u8], cb: Option<WriteCb>) -> io::Result<bool> {
        if self.closed.get() || self.stream.is_closed() {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the IPC channel is closed",
            ));
        }
        let limit = self.max_message.get();
        let len = u32::try_from(msg.len())
            .ok()
            .filter(|&n| n as usize <= limit)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "IPC message of {} bytes is over the limit of {limit}",
                        msg.len()
                    ),
                )
            })?;
        let mut frame = self.scratch.borrow_mut();
        frame.clear();
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(msg);
        Ok(match cb {
            Some(cb) => self.stream.write_with(&frame, cb),
            None => self.stream.write(&frame),
        })
    }

    /// Splits the bytes read into messages. Whole frames are delivered
    /// straight from `bytes`; only a frame cut by the end of a read is
    /// copied aside.
    fn receive(&self, mut bytes: &[u8]) {
        // Taken out for the length of the call: callbacks never see it
        // borrowed.
        let mut partial = std::mem::take(&mut *self.partial.borrow_mut());
        // Complete the frame left over from the last read first.
        while !partial.is_empty() {
            if partial.len() < HEADER {
                let take = (HEADER - partial.len()).min(bytes.len());
                partial.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if partial.len() < HEADER {
                    *self.partial.borrow_mut() = partial;
                    return;
                }
                if !self.check_len(&partial) {
                    return;
                }
            }
            let need = HEADER + frame_len(&partial).expect("a whole header");
            let take = (need - partial.len()).min(bytes.len());
            partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if partial.len() < need {
                *self.partial.borrow_mut() = partial;
                return;
            }
            self.deliver(&partial[HEADER..]);
            partial.clear();
            if self.closed.get() {
                return;
            }
        }
        while bytes.len() >= HEADER {
            if !self.check_len(bytes) {
                return;
            }
            let n = frame_len(bytes).expect("a whole header");
            if bytes.len() < HEADER + n {
                break;
            }
            self.deliver(&bytes[HEADER..HEADER + n]);
            bytes = &bytes[HEADER + n..];
            if self.closed.get() {
                return;
            }
        }
        if partial.capacity() > 1 << 20 {
            partial = Vec::new(); // do not keep a huge message's buffer
        }
        partial.extend_from_slice(bytes);
        *self.partial.borrow_mut() = partial;
    }

    /// A frame announcing more than the limit means a broken or hostile
    /// peer: close with `InvalidData`.
    fn check_len(&self, header: &[u8]) -> bool {
        let n = frame_len(header).expect("a whole header");
        if n <= self.max_message.get() {
            return true;
        }
        let e = io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "IPC frame of {n} bytes is over the limit of {}",
                self.max_message.get()
            ),
        );
        log::debug!("{e}");
        self.set_error(e);
        self.stream.destroy();
        false
    }

    fn deliver(&self, msg: &[u8]) {
        if self.on_message.emit(|cb| cb(msg)) > 0 {
            return;
        }
        let waiter = self.waiting.borrow_mut().pop_front();
        match waiter {
            Some(waiter) => waiter.settle(Some(msg.to_vec())),
            None => {
                let mut inbox = self.inbox.borrow_mut();
                inbox.push_back(msg.to_vec());
                if inbox.len() >= INBOX_LIMIT {
                    self.stream.pause();
                }
            }
        }
    }

    fn set_error(&self, e: io::Error) {
        let mut slot = self.error.borrow_mut();
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn result(&self) -> io::Result<()> {
        match &*self.error.borrow() {
            None => Ok(()),
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
        }
    }

    fn closed(&self) {
        self.closed.set(true);
        if !self.partial.borrow().is_empty() {
            self.set_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the IPC channel closed in the middle of a message",
            ));
        }
        log::debug!("IPC channel closed");
        for waiter in self.waiting.take() {
            waiter.settle(None);
        }
        // The library's hooks first: a panicking user listener must not
        // keep a cluster worker from stopping.
        for hook in self.close_hooks.take() {
            hook();
        }
        let called = self.on_close.emit(|cb| cb(self.result()));
        if called == 0 {
            // An error nobody listens for is uncaught, as Node's 'error'.
            if let Err(error) = self.result() {
                crate::event_loop::report_uncaught(crate::Error::UnhandledError {
                    emitter: "ipc channel",
                    error,
                });
            }
        }
        // Break the cycle through the listeners' captures.
        self.on_message.clear();
        self.on_close.clear();
    }
}

fn frame_len(bytes: &[u8]) -> Option<usize> {
    let header: [u8; HEADER] = bytes.get(..HEADER)?.try_into().ok()?;
    Some(u32::from_le_bytes(header) as usize)
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channel")
            .field("closed", &self.is_closed())
            .field("queued_bytes", &self.queued_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::abort::AbortController;
    use crate::promise::Rejection;

    fn pair() -> (Channel, Channel) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let wrap = |s: std::os::unix::net::UnixStream| {
            s.set_nonblocking(true).unwrap();
            let stream = mio::net::UnixStream::from_std(s);
            Channel::new(Stream::register(Box::new(stream), false).unwrap())
        };
        (wrap(a), wrap(b))
    }

    type Seen = Rc<RefCell<Vec<String>>>;

    fn outcome(seen: &Seen, what: &'static str, p: Promise<Option<Vec<u8>>>) {
        let (s1, s2) = (seen.clone(), seen.clone());
        let _ = p.then_or_else(
            move |m| {
                let m = String::from_utf8(m.unwrap_or_default()).unwrap();
                s1.borrow_mut().push(format!("{what}: {m}"));
                Ok::<(), Rejection>(())
            },
            move |e| {
                let reason = e.abort_reason().map(|r| r.to_string());
                s2.borrow_mut()
                    .push(format!("{what}: aborted {}", reason.unwrap_or_default()));
                Ok(())
            },
        );
    }

    /// Aborted before, while waiting (from the loop and from another
    /// thread), after: an aborted `recv` takes no message, the next one
    /// gets it.
    #[test]
    #[cfg_attr(miri, ignore = "socketpair and epoll, which Miri does not support")]
    fn recv_with_signal() {
        for from_thread in [false, true] {
            let seen: Seen = Rc::default();
            let s = seen.clone();
            let el = crate::EventLoop::new().unwrap();
            el.run_main(move || {
                let (a, b) = pair();
                let before = AbortSignal::abort(Rejection::msg("early"));
                outcome(&s, "before", b.recv_with_signal(&before));
                let controller = AbortController::new();
                outcome(&s, "in flight", b.recv_with_signal(&controller.signal()));
                outcome(&s, "plain", b.recv());
                let done = AbortController::new();
                outcome(&s, "after", b.recv_with_signal(&done.signal()));
                if from_thread {
                    let sender = controller.sender();
                    std::thread::spawn(move || sender.abort(Some("stop".into())).unwrap());
                } else {
                    controller.abort(Rejection::msg("stop"));
                }
                crate::set_timeout(Duration::from_millis(20), move || {
                    a.send(b"one").unwrap();
                    a.send(b"two").unwrap();
                    crate::set_timeout(Duration::from_millis(20), move || {
                        done.abort(None);
                        a.close();
                        b.close();
                    });
                });
            })
            .unwrap();
            el.run().unwrap();
            assert_eq!(
                *seen.borrow(),
                [
                    "before: aborted early",
                    "in flight: aborted stop",
                    "plain: one",
                    "after: two"
                ],
                "from another thread: {from_thread}"
            );
        }
    }
}
