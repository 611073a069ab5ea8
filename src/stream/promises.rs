//! The promise form of [`pipeline`](super::pipeline) (Node's
//! `require('stream/promises').pipeline`).

use super::{Duplex, Readable, Writable};
use crate::abort::AbortSignal;
use crate::promise::{promisify, Promise};

/// [`stream::pipeline`](super::pipeline) as a promise: it resolves when
/// the destination has finished and rejects with the first error (every
/// stage destroyed by then).
///
/// ```
/// use evloop::fs::{create_read_stream, create_write_stream};
///
/// let copy = std::env::temp_dir().join(format!("evloop-doc-ppipeline-{}", std::process::id()));
/// let c = copy.clone();
/// evloop::run(move || {
///     evloop::stream::promises::pipeline(create_read_stream("Cargo.toml"), [], create_write_stream(&c))
///         .then(|()| println!("copied"))
///         .catch(|e| panic!("{e}"));
/// })
/// .unwrap();
/// std::fs::remove_file(copy).unwrap();
/// ```
pub fn pipeline(
    source: impl Readable + 'static,
    middles: impl IntoIterator<Item = Duplex>,
    destination: impl Writable + 'static,
) -> Promise<()> {
    promisify(|done| super::pipeline(source, middles, destination, done))
}

/// [`pipeline`] with a signal: aborting destroys every stage and rejects
/// with the [`AbortError`](crate::abort::AbortError).
pub fn pipeline_with_signal(
    source: impl Readable + 'static,
    middles: impl IntoIterator<Item = Duplex>,
    destination: impl Writable + 'static,
    signal: &AbortSignal,
) -> Promise<()> {
    promisify(|done| super::pipeline_with_signal(source, middles, destination, signal, done))
}
