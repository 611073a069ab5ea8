//! The loop side of the pool: the `done` callbacks of jobs in flight, the
//! pool itself (started on first use), and cancellation.

use std::cell::{Cell, RefCell};
use std::io;

use super::{canceled_error, configured_size, DoneCallback, Pool};
use crate::event_loop::{with_current, LoopState};
use crate::remote::Remote;

/// A loop's pool jobs. Each job in flight is a request that keeps the loop
/// alive until its `done` has run.
#[derive(Default)]
pub(crate) struct Jobs {
    /// The thread pool, started on first use.
    pool: RefCell<Option<Pool>>,
    /// `done` callbacks of jobs in flight, by job key.
    done: RefCell<slab::Slab<DoneCallback>>,
    /// Jobs in flight (the length of `done`, without a borrow).
    in_flight: Cell<usize>,
    /// The id of the next job (never reused, unlike slab keys).
    next_id: Cell<u64>,
}

impl Jobs {
    /// Jobs whose `done` has not run yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Threads in the pool: 0 until it starts.
    pub(crate) fn threads(&self) -> usize {
        self.pool.borrow().as_ref().map_or(0, Pool::threads)
    }

    /// A job starts: remember its `done`; returns its key and the loop's
    /// remote, for the worker to post the result with.
    pub(crate) fn started(&self, state: &LoopState, done: DoneCallback) -> (usize, Remote) {
        let key = self.done.borrow_mut().insert(done);
        self.in_flight.set(self.in_flight.get() + 1);
        (key, state.remote_handle())
    }

    /// Hands a job to the pool, starting the pool on first use. If its
    /// threads cannot be started, the job's `done` gets the error. Returns
    /// the job's id, for [`Jobs::cancel`].
    pub(crate) fn submit(
        &self,
        state: &LoopState,
        key: usize,
        job: Box<dyn FnOnce() + Send>,
    ) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let mut pool = self.pool.borrow_mut();
        if pool.is_none() {
            match Pool::start(configured_size()) {
                Ok(p) => *pool = Some(p),
                Err(e) => {
                    drop(pool);
                    drop(job);
                    log::debug!("thread pool failed to start: {e}");
                    let msg = io::Error::other(format!("cannot start the thread pool: {e}"));
                    state.defer_pending(Box::new(move || finish_with(key, Err(msg))));
                    return id;
                }
            }
        }
        pool.as_ref().expect("started above").submit(id, job);
        id
    }

    /// Cancels queued job `id` (key `key`): its `done` runs in the pending
    /// phase with `ECANCELED`. `EBUSY` if it has started or ended.
    pub(crate) fn cancel(&self, state: &LoopState, id: u64, key: usize) -> io::Result<()> {
        let removed = match self.pool.borrow().as_ref() {
            Some(pool) => pool.cancel(id),
            None => false,
        };
        if !removed {
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        // The job never ran, so nothing was posted for it: its `done` is
        // still stored under `key`, and it still counts as in flight.
        state.defer_pending(Box::new(move || finish_with(key, Err(canceled_error()))));
        Ok(())
    }

    /// A result a worker posted has reached the loop: the pool may start
    /// another job (see `workers::MAX_UNDELIVERED`).
    pub(crate) fn delivered(&self) {
        if let Some(pool) = self.pool.borrow().as_ref() {
            pool.delivered();
        }
    }

    /// A job finished: its `done`, for the caller to call.
    pub(crate) fn finished(&self, key: usize) -> Option<DoneCallback> {
        let done = self.done.borrow_mut().try_remove(key);
        if done.is_some() {
            self.in_flight.set(self.in_flight.get() - 1);
        }
        done
    }

    /// Teardown: the `done` callbacks of jobs in flight, to be dropped by
    /// the caller (their jobs' results will be refused by the closed
    /// remote).
    pub(crate) fn take_callbacks(&self) -> slab::Slab<DoneCallback> {
        let done = std::mem::take(&mut *self.done.borrow_mut());
        self.in_flight.set(0);
        done
    }

    /// Loop drop: joins the pool. Jobs not started are discarded; running
    /// ones finish and their results are dropped on the worker.
    pub(crate) fn shut_down(&mut self) {
        drop(self.pool.get_mut().take());
    }
}

/// Calls job `key`'s `done` with `r`, if it is still waiting.
fn finish_with(key: usize, r: super::WorkResult) {
    let done = with_current(|state| state.jobs.finished(key));
    if let Some(done) = done {
        done(r);
    }
}
