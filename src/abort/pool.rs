//! Pool jobs bound to a signal. (Here, not in `pool/`, because the loop
//! core knows nothing of signals.)

use std::io;

use super::AbortSignal;

/// [`queue_work`](crate::queue_work), abortable. TO BE WRITTEN.
pub fn queue_work_with_signal<T, W, D>(_work: W, _signal: &AbortSignal, _done: D)
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
    D: FnOnce(io::Result<T>) + 'static,
{
    unimplemented!("helper writes this")
}
