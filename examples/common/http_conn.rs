//! One HTTP/1.1 "Hello, World!" connection in callback style, with
//! keep-alive and pipelining: shared by `http_hello` (one process) and
//! `cluster_http` (N processes).
//!
//! What a server facing the open internet needs, Node's `http` way:
//!
//! - **Backpressure.** When [`Stream::write`] returns `false` (the write
//!   queue is over its high-water mark: the client is not reading its
//!   responses), the connection stops reading (`pause`) until `on_drain`.
//!   A client that pipelines requests and never reads costs one read's
//!   worth of responses, not memory without bound.
//! - **Deadlines** ([`http_common::Timeouts`]): a request head must be
//!   complete within 10 s of its first byte (else `408` and close: a
//!   slowloris client cannot hold connections), and a connection idle for
//!   5 s (no request bytes, and no progress writing) is closed. One timer
//!   per connection, cleared when the connection closes; a read only sets
//!   a flag that the idle timer checks when it fires (then it is re-armed
//!   with `refresh`), so an idle connection is closed 5 to 10 s after its
//!   last activity, and a request costs no timer operation.
//! - **Bad requests** (see `http_common.rs`): `400`, `431` or `501`, then
//!   close.
//! - **Closing** sends FIN after the last response and reads (and drops)
//!   what the client still sends for up to [`LINGER`], so that an error
//!   response is not lost to a reset caused by unread request bytes.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;

use evloop::net::Stream;
use evloop::{set_timeout_mut, Timeout};

#[path = "../../benches/servers/http_common.rs"]
mod http_common;

/// How long a closing connection waits for the client to close too.
const LINGER: Duration = Duration::from_secs(2);

/// What the connection's one timer is counting down.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Deadline {
    /// A request head is incomplete: `408` when it fires.
    Head,
    /// Between requests, or stalled writing: close when it fires.
    Idle,
    /// Closing: destroy when it fires.
    Linger,
}

struct Conn {
    stream: Stream,
    timeouts: http_common::Timeouts,
    framer: RefCell<http_common::Framer>,
    /// Bytes of a request head not complete yet.
    pending: RefCell<Vec<u8>>,
    /// The responses of one read, reused across reads.
    out: RefCell<Vec<u8>>,
    timer: RefCell<Option<(Deadline, Timeout)>>,
    /// The last response is written: drop whatever else arrives.
    closing: Cell<bool>,
    /// Bytes were read or a write queue drained since the idle timer last
    /// fired.
    active: Cell<bool>,
}

/// Answers every request on `stream` until the client closes, a request
/// asks to close, or a deadline passes.
pub fn serve(stream: &Stream) {
    let _ = stream.set_nodelay(true);
    // A client that resets its connection is this connection's business
    // only: without an error listener the error would be uncaught and stop
    // the server (as in Node).
    stream.on_error(|e| log::debug!("connection error: {e}"));
    let conn = Rc::new(Conn {
        stream: stream.clone(),
        timeouts: http_common::Timeouts::get(),
        framer: RefCell::default(),
        pending: RefCell::default(),
        out: RefCell::default(),
        timer: RefCell::new(None),
        closing: Cell::new(false),
        active: Cell::new(false),
    });
    // Nothing received yet: idle (a client that opens connections and
    // sends nothing has them closed; the head deadline starts with the
    // first byte of a head).
    conn.arm(Deadline::Idle);
    // The stream's callbacks hold the connection (a cycle the stream
    // breaks when it closes, by dropping them); its timer only a weak
    // reference.
    let c = conn.clone();
    stream.on_data(move |bytes| c.on_data(bytes));
    let c = conn.clone();
    stream.on_drain(move || {
        // The client took the queued responses: read requests again.
        if !c.closing.get() {
            c.stream.resume();
            c.progress();
        }
    });
    stream.on_close(move |_| {
        if let Some((_, timer)) = conn.timer.borrow_mut().take() {
            timer.clear();
        }
    });
}

impl Conn {
    fn on_data(self: &Rc<Self>, bytes: &[u8]) {
        if self.closing.get() {
            return; // lingering: drop what the client still sends
        }
        let parsed = {
            let mut framer = self.framer.borrow_mut();
            let mut pending = self.pending.borrow_mut();
            let mut out = self.out.borrow_mut();
            out.clear();
            let parsed = if pending.is_empty() {
                let p = framer.answer(bytes, &mut out);
                pending.extend_from_slice(&bytes[p.consumed..]);
                p
            } else {
                pending.extend_from_slice(bytes);
                let p = framer.answer(&pending, &mut out);
                pending.drain(..p.consumed);
                p
            };
            if !out.is_empty() && !self.stream.write(&out) {
                // Backpressure: no more requests until the client reads.
                self.stream.pause();
            }
            parsed
        };
        if parsed.close {
            self.close();
        } else if !self.head_pending() {
            self.progress();
        } else if parsed.consumed > 0 || self.deadline() != Some(Deadline::Head) {
            // A new head began: it has the head timeout from now. (More
            // bytes of the same head do not move its deadline.)
            self.arm(Deadline::Head);
        }
    }

    /// Bytes moved: the connection is not idle. Only a flag, the idle
    /// timer reads it when it fires (a timer refresh per read costs more
    /// than parsing the request). Once a head has completed, the idle
    /// timer replaces the head deadline.
    fn progress(self: &Rc<Self>) {
        self.active.set(true);
        if self.deadline() == Some(Deadline::Head) && !self.head_pending() {
            self.arm(Deadline::Idle);
        }
    }

    /// Whether the unconsumed bytes are part of a request head (not of a
    /// chunk-size line in a body).
    fn head_pending(&self) -> bool {
        !self.pending.borrow().is_empty() && !self.framer.borrow().in_body()
    }

    fn on_timeout(self: &Rc<Self>, deadline: Deadline) {
        match deadline {
            Deadline::Head => {
                self.stream.write(http_common::TIMEOUT);
                self.close();
            }
            // Active since the last check: check again one period later
            // (so an idle connection is closed 1 to 2 periods after its
            // last activity).
            Deadline::Idle if self.active.replace(false) => self.arm(Deadline::Idle),
            Deadline::Idle => self.close(),
            Deadline::Linger => self.stream.destroy(),
        }
    }

    /// Sends FIN after the queued responses, then lingers.
    fn close(self: &Rc<Self>) {
        self.closing.set(true);
        self.pending.borrow_mut().clear();
        self.stream.end();
        // Read on (and drop the bytes) to see the client's FIN.
        self.stream.resume();
        self.arm(Deadline::Linger);
    }

    fn deadline(&self) -> Option<Deadline> {
        self.timer.borrow().as_ref().map(|(d, _)| *d)
    }

    /// Starts `deadline` from now: the running timer is refreshed if it
    /// counts the same thing, else replaced.
    fn arm(self: &Rc<Self>, deadline: Deadline) {
        let mut timer = self.timer.borrow_mut();
        if let Some((d, t)) = timer.as_ref() {
            if *d == deadline && t.refresh() {
                return;
            }
        }
        if let Some((_, t)) = timer.take() {
            t.clear();
        }
        let delay = match deadline {
            Deadline::Head => self.timeouts.head,
            Deadline::Idle => self.timeouts.idle,
            Deadline::Linger => LINGER,
        };
        let conn: Weak<Conn> = Rc::downgrade(self);
        let t = set_timeout_mut(delay, move || {
            if let Some(conn) = conn.upgrade() {
                conn.on_timeout(deadline);
            }
        });
        *timer = Some((deadline, t));
    }
}
