//! What [`EventLoop::active_handles`](crate::EventLoop::active_handles)
//! reports: the things that are active on a loop, for people stepping
//! through it.

use std::fmt;

/// What kind of thing an active handle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandleKind {
    /// A [`set_timeout`](crate::set_timeout) timer.
    Timeout,
    /// A [`set_interval`](crate::set_interval) timer.
    Interval,
    /// A queued [`set_immediate`](crate::set_immediate).
    Immediate,
    /// A registered I/O source ([`watch`](crate::watch) or a socket).
    Io,
    /// Work in flight elsewhere (thread pool, name lookup).
    Request,
    /// A callback deferred to the next pending phase.
    Pending,
    /// A close callback waiting for the close phase.
    Closing,
    /// An active idle, prepare or check watcher (see
    /// [`watchers`](crate::watchers)).
    Watcher,
    /// An open [`AsyncHandle`](crate::AsyncHandle).
    Async,
}

/// One active handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandleInfo {
    /// Its kind.
    pub kind: HandleKind,
    /// A human-readable description, e.g. `set_timeout(1s), due in 998ms`.
    pub label: String,
    /// Whether it keeps the loop alive.
    pub refed: bool,
}

impl fmt::Display for HandleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}: {}{}",
            self.kind,
            self.label,
            if self.refed { "" } else { " (unref'd)" }
        )
    }
}
