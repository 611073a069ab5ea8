//! The one error of an aborted operation, in every style (the DOM's
//! `AbortError`): a callback gets it as an `io::Error`, a promise as a
//! [`Rejection`], a task as either, and each says
//! [`is_aborted`](Rejection::is_aborted) and carries the signal's reason.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use super::Rejection;

/// An operation was stopped by an [`AbortSignal`](crate::abort::AbortSignal)
/// (Node's `AbortError`, whose `cause` is the signal's reason).
///
/// As an `io::Error` its kind is [`io::ErrorKind::Other`] (not
/// `Interrupted`, which read loops retry), and
/// [`is_abort_error`](crate::abort::is_abort_error) recognizes it; as a
/// [`Rejection`], [`Rejection::is_aborted`] does.
///
/// ```
/// use evloop::abort::AbortError;
/// use evloop::promise::Rejection;
///
/// let err: std::io::Error = AbortError::new(Rejection::msg("user left")).into();
/// assert!(evloop::abort::is_abort_error(&err));
/// let r = Rejection::from(err);
/// assert!(r.is_aborted());
/// assert_eq!(r.abort_reason().unwrap().to_string(), "user left");
/// ```
#[derive(Clone, Debug)]
pub struct AbortError {
    reason: Rejection,
}

impl AbortError {
    /// The error for an abort with `reason`.
    pub fn new(reason: Rejection) -> AbortError {
        AbortError { reason }
    }

    /// Why the signal was aborted: what
    /// [`AbortController::abort`](crate::abort::AbortController::abort) was
    /// given, [`Rejection::aborted`] by default, a `TimedOut` error for
    /// [`AbortSignal::timeout`](crate::abort::AbortSignal::timeout).
    pub fn reason(&self) -> &Rejection {
        &self.reason
    }
}

impl fmt::Display for AbortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_default_abort() {
            f.write_str("The operation was aborted")
        } else {
            write!(f, "The operation was aborted: {}", self.reason)
        }
    }
}

impl StdError for AbortError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.reason)
    }
}

impl From<AbortError> for io::Error {
    fn from(e: AbortError) -> io::Error {
        io::Error::other(e)
    }
}

impl From<AbortError> for Rejection {
    fn from(e: AbortError) -> Rejection {
        Rejection::from(io::Error::from(e))
    }
}

/// The `AbortError` inside `e`, if it is one.
pub(crate) fn as_abort_error(e: &io::Error) -> Option<&AbortError> {
    e.get_ref()?.downcast_ref::<AbortError>()
}
