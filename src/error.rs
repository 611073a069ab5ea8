//! The loop's own error type.
//!
//! I/O failures reach callbacks as plain [`std::io::Error`]s; this type is for
//! what goes wrong with *running the loop*: an uncaught panic in a callback,
//! a re-entrant `run`, or the poll itself failing.

use std::any::Any;
use std::fmt;
use std::io;

/// Why [`EventLoop::run`](crate::EventLoop::run) (or [`crate::run`]) returned
/// an error.
#[derive(Debug)]
pub enum Error {
    /// A callback panicked and no [uncaught-panic
    /// handler](crate::EventLoop::on_uncaught_panic) took it. This mirrors
    /// Node's uncaught exception: the loop stops after the callback, keeps
    /// its state consistent, and reports the panic. The loop can be dropped
    /// (everything it holds is released) or run again.
    Panicked(PanicError),
    /// `run`, `run_once` or `run_nowait` was called from inside a callback of
    /// the same loop. Like `uv_run`, the loop is not re-entrant.
    Reentrant,
    /// A promise was rejected and no handler was attached by the end of the
    /// microtask checkpoint, with
    /// [`UnhandledRejections::Strict`](crate::promise::UnhandledRejections::Strict)
    /// (Node's `--unhandled-rejections=strict`).
    UnhandledRejection(crate::promise::Rejection),
    /// [`block_on`](crate::block_on): the future is still pending, but
    /// nothing is left on the loop that could wake it (no timer, I/O
    /// source, request or pending callback keeps the loop alive).
    Stalled,
    /// The operating system's poll failed (other than `EINTR`, which is
    /// retried with the remaining timeout).
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Panicked(p) => write!(f, "{p}"),
            Error::Reentrant => f.write_str(
                "the event loop is already running on this thread (run() is not re-entrant)",
            ),
            Error::Io(e) => write!(f, "event loop poll failed: {e}"),
            Error::UnhandledRejection(r) => write!(f, "unhandled promise rejection: {r}"),
            Error::Stalled => f.write_str(
                "block_on: the future is still pending but nothing keeps the loop alive \
                 (no timer, I/O, request or pending callback could ever wake it)",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Panicked(p) => Some(p),
            Error::UnhandledRejection(r) => Some(r),
            Error::Reentrant | Error::Stalled => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

/// A panic caught at the loop's dispatch boundary.
///
/// Only the message is kept (the payload of `panic!("..")` as text), so the
/// error stays `Send + Sync` and can travel inside an `io::Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PanicError {
    message: String,
    origin: &'static str,
}

impl PanicError {
    pub(crate) fn from_payload(payload: &(dyn Any + Send), origin: &'static str) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "Box<dyn Any>".to_string()
        };
        PanicError { message, origin }
    }

    /// The panic's message (`"boom"` for `panic!("boom")`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Which kind of callback panicked: `"timer"`, `"immediate"`, `"io"`,
    /// `"next_tick"`, `"microtask"`, `"pending"`, `"close"` or `"main"`.
    pub fn origin(&self) -> &'static str {
        self.origin
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uncaught panic in {} callback: {}",
            self.origin, self.message
        )
    }
}

impl std::error::Error for PanicError {}
