//! Promises and [`AbortSignal`]s: a promise that rejects with the
//! [`AbortError`] when a signal aborts first (the promise face of Node's
//! `{ signal }` option).

use std::rc::Rc;

use super::{Promise, Rejection, WithResolvers};
use crate::abort::{AbortError, AbortSignal};

impl<T: 'static> Promise<T> {
    /// A promise that settles as this one does, or rejects with the
    /// [`AbortError`] if `signal` aborts first (at once if it already has).
    /// This promise goes on; to stop the work behind it as well, pass the
    /// signal to the operation itself (the `_with_signal` functions).
    ///
    /// ```
    /// use std::time::Duration;
    /// use evloop::abort::AbortController;
    /// use evloop::promise::{self, Promise};
    ///
    /// evloop::run(|| {
    ///     let controller = AbortController::new();
    ///     let p = Promise::resolve(1).with_signal(&controller.signal());
    ///     controller.abort(None); // too late: `p` is resolved already
    ///     p.then(|v| assert_eq!(v, 1));
    ///
    ///     let never = Promise::<u32>::with_resolvers().promise;
    ///     let controller = AbortController::new();
    ///     never
    ///         .with_signal(&controller.signal())
    ///         .catch(|e| {
    ///             assert!(e.is_aborted());
    ///             0
    ///         });
    ///     controller.abort(None);
    /// })
    /// .unwrap();
    /// ```
    pub fn with_signal(self, signal: &AbortSignal) -> Promise<T> {
        self.bind_signal(signal, || {})
    }

    /// [`with_signal`](Promise::with_signal), calling `release` once when
    /// the signal aborts first (before the promise rejects): how an
    /// operation stops its work (cancels its pool job, closes its socket,
    /// kills its child).
    pub(crate) fn bind_signal(
        self,
        signal: &AbortSignal,
        release: impl FnOnce() + 'static,
    ) -> Promise<T> {
        if let Some(reason) = signal.reason() {
            release();
            // This promise's own outcome no longer matters.
            let _ = self.then_or_else(|_| Ok::<(), Rejection>(()), |_| Ok(()));
            return Promise::reject(AbortError::new(reason));
        }
        let WithResolvers {
            promise,
            resolve,
            reject,
        } = Promise::with_resolvers();
        let on_abort = reject.clone();
        let listener = Rc::new(signal.on_abort_op(move |reason| {
            release();
            on_abort(AbortError::new(reason.clone()).into());
        }));
        let l = listener.clone();
        // Kept alive until this promise settles (a temporary signal must
        // still fire).
        let keep = signal.clone();
        let _ = self.then_or_else(
            move |v| {
                drop(keep);
                l.remove();
                resolve(v);
                Ok::<(), Rejection>(())
            },
            move |e| {
                listener.remove();
                reject(e);
                Ok(())
            },
        );
        promise
    }
}
