//! The ground floor's error types, which every layer uses and which import
//! no layer.
//!
//! [`Error`] is the loop's own error type. I/O failures reach callbacks as
//! plain [`std::io::Error`]s; `Error` is for what goes wrong with *running
//! the loop*: an error nobody handled (an uncaught panic, an unhandled
//! rejection, an `error` with no listener), a re-entrant `run`, or the poll
//! itself failing.
//!
//! Beside it: [`Rejection`], why a promise was rejected (public as
//! [`evloop::promise::Rejection`](crate::promise::Rejection)), and
//! [`FsError`](fs::FsError), what failed in a file operation (public in
//! [`evloop::fs`](crate::fs)). They live here rather than in their layers
//! so that `Error::UnhandledRejection` can hold a `Rejection`, and a
//! `Rejection` can read an fs error's OS code, without the loop core
//! importing the layers above it.

use std::any::Any;
use std::fmt;
use std::io;

pub(crate) mod abort;
pub(crate) mod fs;
mod rejection;

pub use abort::AbortError;
pub use rejection::Rejection;

/// Why [`EventLoop::run`](crate::EventLoop::run) (or [`crate::run`]) returned
/// an error.
///
/// The first three variants are *uncaught errors*, Node's uncaught
/// exception: the loop stops after the callback that raised one (its state
/// stays consistent, and it can be run again or dropped) unless an
/// [uncaught-exception handler](crate::on_uncaught_exception) takes it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A callback panicked and no [uncaught-exception
    /// handler](crate::on_uncaught_exception) took it (Node's uncaught
    /// exception).
    Panicked(PanicError),
    /// `run`, `run_main`, `run_once` or `run_nowait` was called on a loop
    /// from inside one of its own callbacks. Like `uv_run`, a loop is not
    /// re-entrant: use `.await` or a callback instead of driving the loop
    /// from inside it. (The free functions [`crate::run`],
    /// [`crate::run_async`] and [`crate::block_on`] called from inside a
    /// loop run a separate loop instead; see [`crate::block_on`].)
    Reentrant,
    /// A promise was rejected and no handler was attached by the end of the
    /// microtask checkpoint, and no [unhandled-rejection
    /// hook](crate::promise::on_unhandled_rejection) or uncaught-exception
    /// handler took it (Node 20's default, `--unhandled-rejections=throw`).
    /// A spawned task that panics or returns `Err` with nobody awaiting it
    /// ends here too, as an `async` function's throw does in Node.
    UnhandledRejection(Rejection),
    /// An operation failed with nobody listening for its error: a stream, a
    /// socket, a child process or a channel with no error listener (Node's
    /// `'error'` event with no listener, which throws).
    UnhandledError {
        /// What failed: `"tcp"`, `"unix"`, `"pipe"`, `"stdout"`... for a
        /// stream, `"udp socket"`, `"ipc channel"`.
        emitter: &'static str,
        /// The error.
        error: io::Error,
    },
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
                "this event loop is already running (called from inside one of its own \
                 callbacks or tasks, and a loop is not re-entrant): instead of driving \
                 the loop from inside it, .await the work in a task or continue in a callback",
            ),
            Error::Io(e) => write!(f, "event loop poll failed: {e}"),
            Error::UnhandledRejection(r) => write!(f, "unhandled promise rejection: {r}"),
            Error::UnhandledError { emitter, error } => write!(
                f,
                "unhandled error ({emitter}, with no error listener): {error}"
            ),
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
            Error::Io(e) | Error::UnhandledError { error: e, .. } => Some(e),
            Error::Panicked(p) => Some(p),
            Error::UnhandledRejection(r) => Some(r),
            Error::Reentrant | Error::Stalled => None,
        }
    }
}

impl Error {
    /// Where an uncaught error came from, as Node's `'uncaughtException'`
    /// listener is told; `None` for the errors that are not uncaught ones
    /// ([`Reentrant`](Error::Reentrant), [`Stalled`](Error::Stalled),
    /// [`Io`](Error::Io)).
    pub fn origin(&self) -> Option<Origin> {
        match self {
            Error::Panicked(_) | Error::UnhandledError { .. } => Some(Origin::UncaughtException),
            Error::UnhandledRejection(_) => Some(Origin::UnhandledRejection),
            Error::Reentrant | Error::Stalled | Error::Io(_) => None,
        }
    }
}

/// Where an uncaught error came from: the second argument of Node's
/// `process.on('uncaughtException', (err, origin) => ..)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A callback panicked, or an error had no listener (Node's
    /// `'uncaughtException'`).
    UncaughtException,
    /// A promise was rejected and nothing handled it (Node's
    /// `'unhandledRejection'`).
    UnhandledRejection,
}

impl Origin {
    /// Node's name for it: `"uncaughtException"` or `"unhandledRejection"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::UncaughtException => "uncaughtException",
            Origin::UnhandledRejection => "unhandledRejection",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
/// [`message`](PanicError::message) is the panic's own text (JavaScript's
/// `err.message`); where it happened is the separate
/// [`origin`](PanicError::origin), and `Display` says both.
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
    /// `"next_tick"`, `"microtask"`, `"pending"`, `"close"`, `"main"`,
    /// `"promise callback"`, `"promise executor"` or `"task"` (a spawned
    /// future).
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
