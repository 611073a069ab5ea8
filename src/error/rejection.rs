//! Why a promise was rejected (public as
//! [`evloop::promise::Rejection`](crate::promise::Rejection)).
//!
//! JavaScript rejects with any value; Rust needs one type that every
//! promise can carry, that several subscribers can each receive (so it is
//! cheap to clone), and that can cross into an `io::Error` or `anyhow`-style
//! error without losing what went wrong. [`Rejection`] is an `Arc` around
//! the original error: cloning it shares the error instead of copying it,
//! and it is `Send + Sync`, so it can be returned from `main`, logged from
//! another thread or boxed as `Box<dyn Error + Send + Sync>`.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::sync::Arc;

use super::abort::{as_abort_error, AbortError};
use super::fs::raw_os_error;
use super::PanicError;

/// The reason a promise was rejected: an `io::Error` (its kind and OS error
/// code kept), a user error, a plain message, a panic caught in a promise
/// callback, a resolution cycle, or every reason of a failed
/// [`Promise::any`](crate::promise::Promise::any).
///
/// Cloning is cheap (an `Arc` clone), as JavaScript hands every subscriber
/// the same error object.
///
/// ```
/// use evloop::promise::Rejection;
/// use std::io;
///
/// let r = Rejection::from(io::Error::from_raw_os_error(2)); // ENOENT
/// assert_eq!(r.kind(), io::ErrorKind::NotFound);
/// assert_eq!(r.raw_os_error(), Some(2));
/// let back: io::Error = r.clone().into();
/// assert_eq!(back.raw_os_error(), Some(2));
///
/// let r = Rejection::msg("no config");
/// assert_eq!(r.to_string(), "no config");
/// ```
#[derive(Clone)]
pub struct Rejection(Arc<Repr>);

enum Repr {
    Io(io::Error),
    Message(String),
    User(Box<dyn StdError + Send + Sync>),
    Panic(PanicError),
    Cycle,
    Aggregate(Vec<Rejection>),
    Aborted,
}

impl Rejection {
    /// Wraps any error (use `From` for `io::Error`, which keeps its kind
    /// and OS code).
    pub fn new(err: impl StdError + Send + Sync + 'static) -> Self {
        Rejection(Arc::new(Repr::User(Box::new(err))))
    }

    /// A rejection that is just a message (JavaScript's `new Error("..")`).
    pub fn msg(message: impl fmt::Display) -> Self {
        Rejection(Arc::new(Repr::Message(message.to_string())))
    }

    pub(crate) fn panic(p: PanicError) -> Self {
        Rejection(Arc::new(Repr::Panic(p)))
    }

    /// The rejection of a task stopped through its
    /// [`AbortHandle`](crate::task::AbortHandle) (the DOM's `AbortError`),
    /// and the default reason of
    /// [`AbortController::abort`](crate::abort::AbortController::abort).
    pub fn aborted() -> Self {
        Rejection(Arc::new(Repr::Aborted))
    }

    /// Whether this is an abort: the rejection of an aborted task
    /// ([`Rejection::aborted`]) or of an operation stopped by an
    /// [`AbortSignal`](crate::abort::AbortSignal) (an
    /// [`AbortError`](crate::abort::AbortError), also inside an
    /// `io::Error`). An abort is never reported as an unhandled rejection.
    pub fn is_aborted(&self) -> bool {
        match &*self.0 {
            Repr::Aborted => true,
            Repr::Io(e) => as_abort_error(e).is_some(),
            Repr::User(e) => e.downcast_ref::<AbortError>().is_some(),
            _ => false,
        }
    }

    /// For an operation stopped by an
    /// [`AbortSignal`](crate::abort::AbortSignal), the signal's reason.
    pub fn abort_reason(&self) -> Option<&Rejection> {
        match &*self.0 {
            Repr::Io(e) => as_abort_error(e).map(AbortError::reason),
            Repr::User(e) => e.downcast_ref::<AbortError>().map(AbortError::reason),
            _ => None,
        }
    }

    /// Whether this is the plain [`Rejection::aborted`].
    pub(crate) fn is_default_abort(&self) -> bool {
        matches!(&*self.0, Repr::Aborted)
    }

    pub(crate) fn cycle() -> Self {
        Rejection(Arc::new(Repr::Cycle))
    }

    pub(crate) fn aggregate(errors: Vec<Rejection>) -> Self {
        Rejection(Arc::new(Repr::Aggregate(errors)))
    }

    /// The error's text (what `Display` prints): JavaScript's `.message`.
    /// For a caught panic, the panic's own text (`"boom"` for
    /// `panic!("boom")`); where it panicked is
    /// [`as_panic`](Rejection::as_panic)`().origin()`.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The `io::ErrorKind` of an I/O rejection; `Other` for the rest.
    pub fn kind(&self) -> io::ErrorKind {
        match &*self.0 {
            Repr::Io(e) => e.kind(),
            _ => io::ErrorKind::Other,
        }
    }

    /// The OS error code of an I/O rejection (`errno`), also for errors from
    /// [`fs`](crate::fs) that carry their path.
    pub fn raw_os_error(&self) -> Option<i32> {
        match &*self.0 {
            Repr::Io(e) => raw_os_error(e),
            _ => None,
        }
    }

    /// The `io::Error` inside, if the promise was rejected by one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match &*self.0 {
            Repr::Io(e) => Some(e),
            _ => None,
        }
    }

    /// The user error inside, if it has type `E` (for errors made with
    /// [`Rejection::new`], or an `io::Error`).
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        match &*self.0 {
            Repr::User(e) => e.downcast_ref::<E>(),
            Repr::Io(e) => (e as &(dyn StdError + 'static)).downcast_ref::<E>(),
            _ => None,
        }
    }

    /// The panic, if a promise callback (or a spawned task) panicked.
    pub fn as_panic(&self) -> Option<&PanicError> {
        match &*self.0 {
            Repr::Panic(p) => Some(p),
            _ => None,
        }
    }

    /// Whether a promise callback panicked (JavaScript's throw).
    pub fn is_panic(&self) -> bool {
        self.as_panic().is_some()
    }

    /// Whether a promise was resolved with itself (JavaScript's
    /// `TypeError: Chaining cycle detected for promise`).
    pub fn is_cycle(&self) -> bool {
        matches!(&*self.0, Repr::Cycle)
    }

    /// Every reason, in input order, when [`Promise::any`] failed because all
    /// its promises were rejected (JavaScript's `AggregateError.errors`).
    ///
    /// [`Promise::any`]: crate::promise::Promise::any
    pub fn errors(&self) -> Option<&[Rejection]> {
        match &*self.0 {
            Repr::Aggregate(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Repr::Io(e) => fmt::Display::fmt(e, f),
            Repr::Message(m) => f.write_str(m),
            Repr::User(e) => fmt::Display::fmt(e, f),
            Repr::Panic(p) => f.write_str(p.message()),
            Repr::Cycle => f.write_str("Chaining cycle detected for promise"),
            Repr::Aggregate(_) => f.write_str("All promises were rejected"),
            Repr::Aborted => f.write_str("The operation was aborted"),
        }
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Repr::Io(e) => f.debug_tuple("Rejection::Io").field(e).finish(),
            Repr::Message(m) => f.debug_tuple("Rejection::Message").field(m).finish(),
            Repr::User(e) => f.debug_tuple("Rejection::User").field(e).finish(),
            Repr::Panic(p) => f.debug_tuple("Rejection::Panic").field(p).finish(),
            Repr::Cycle => f.write_str("Rejection::Cycle"),
            Repr::Aggregate(v) => f.debug_tuple("Rejection::Aggregate").field(v).finish(),
            Repr::Aborted => f.write_str("Rejection::Aborted"),
        }
    }
}

impl StdError for Rejection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match &*self.0 {
            Repr::Io(e) => Some(e),
            Repr::User(e) => Some(&**e),
            Repr::Panic(p) => Some(p),
            _ => None,
        }
    }
}

impl From<io::Error> for Rejection {
    fn from(e: io::Error) -> Self {
        Rejection(Arc::new(Repr::Io(e)))
    }
}

impl From<PanicError> for Rejection {
    fn from(p: PanicError) -> Self {
        Rejection::panic(p)
    }
}

impl From<&str> for Rejection {
    fn from(m: &str) -> Self {
        Rejection::msg(m)
    }
}

impl From<String> for Rejection {
    fn from(m: String) -> Self {
        Rejection(Arc::new(Repr::Message(m)))
    }
}

/// Back to an `io::Error`, for callback-style code: the original error when
/// this was its last holder, else a new one with the same kind that carries
/// the rejection (its OS code still readable through
/// [`Rejection::raw_os_error`] on the source, and kept exactly for plain OS
/// errors).
impl From<Rejection> for io::Error {
    fn from(r: Rejection) -> Self {
        match Arc::try_unwrap(r.0) {
            Ok(Repr::Io(e)) => e,
            Ok(other) => io::Error::other(Rejection(Arc::new(other))),
            Err(shared) => {
                let r = Rejection(shared);
                match r.io_error() {
                    Some(e) if e.get_ref().is_none() && e.raw_os_error().is_some() => {
                        io::Error::from_raw_os_error(e.raw_os_error().expect("checked"))
                    }
                    _ => io::Error::new(r.kind(), r),
                }
            }
        }
    }
}
