//! The promise faces of [`process`](super) (Node's promisified
//! `child_process.exec`); a promise is also what `.await` takes. The other
//! promise faces are methods: [`Child::wait`](super::Child::wait),
//! [`Channel::recv`](super::Channel::recv),
//! [`Channel::send_promise`](super::Channel::send_promise), and
//! [`once_signal`](super::once_signal).

use std::process::Output;

use super::Command;
use crate::promise::{promisify, Promise};

/// [`exec`](super::exec), as a promise (Node's promisified `exec`). With a [`Command::signal`], an abort kills the
/// child (`SIGTERM`) and rejects the promise with the
/// [`AbortError`](crate::abort::AbortError)
/// ([`Rejection::is_aborted`](crate::promise::Rejection::is_aborted)); if
/// the signal has already aborted, nothing starts and the promise rejects.
///
/// ```
/// use std::time::Duration;
/// use evloop::abort::AbortSignal;
/// use evloop::process::{promises, Command};
///
/// evloop::run(|| {
///     let deadline = AbortSignal::timeout(Duration::from_millis(20));
///     promises::exec(Command::new("sleep").arg("3600").signal(&deadline))
///         .then(|_| unreachable!("killed first"))
///         .catch(|e| assert!(e.is_aborted()));
/// })
/// .unwrap(); // in about 20 ms: the child is dead and reaped
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn exec(cmd: &mut Command) -> Promise<Output> {
    promisify(|done| super::exec(cmd, done))
}
