//! The pool's threads and their queue: workers take jobs in order, and
//! pause while too many results wait for the loop (the backpressure
//! described in the parent module).
//!
//! The synchronisation is three pieces: a mutex-guarded queue, one condvar
//! for "a job or room is available", and an atomic count of undelivered
//! results. Under `--cfg evloop_loom` they are loom's types, and the model tests
//! at the bottom check every interleaving of submit, take, deliver and
//! shutdown for lost wakeups (`RUSTFLAGS="--cfg evloop_loom" cargo test --release
//! --lib pool::workers`; `.ci/run` does).

use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use sync::{spawn, Arc, AtomicUsize, Condvar, JoinHandle, Mutex, MutexGuard, Ordering};

/// std's primitives, or loom's in a `--cfg evloop_loom` build.
mod sync {
    #[cfg(evloop_loom)]
    pub(super) use loom::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Condvar, Mutex, MutexGuard,
    };
    #[cfg(evloop_loom)]
    pub(super) use loom::thread::JoinHandle;
    #[cfg(not(evloop_loom))]
    pub(super) use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Condvar, Mutex, MutexGuard,
    };
    #[cfg(not(evloop_loom))]
    pub(super) use std::thread::JoinHandle;

    /// Starts a named worker thread.
    #[cfg(not(evloop_loom))]
    pub(super) fn spawn(
        name: String,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new().name(name).spawn(f)
    }

    /// Starts a worker thread of the model.
    #[cfg(evloop_loom)]
    pub(super) fn spawn(
        _name: String,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<JoinHandle<()>> {
        Ok(loom::thread::spawn(f))
    }
}

/// A job for a worker thread.
pub(crate) type PoolJob = Box<dyn FnOnce() + Send>;

/// At most this many jobs are running or finished with their `done` not yet
/// run on the loop: it bounds the memory that finished results can hold
/// while the loop is busy.
pub(crate) const MAX_UNDELIVERED: usize = 1024;

#[derive(Default)]
struct State {
    /// Queued jobs with their id (for [`Pool::cancel`]), oldest first.
    queue: VecDeque<(u64, PoolJob)>,
    shutdown: bool,
}

/// What the loop and the workers share: the queue of jobs (under a mutex,
/// with the condvar workers sleep on) and the backpressure count.
struct JobQueue {
    state: Mutex<State>,
    available: Condvar,
    /// Jobs taken by a worker whose result the loop has not delivered yet.
    /// Raised under the `state` lock; lowered by the loop without it.
    undelivered: AtomicUsize,
    /// The bound on `undelivered` (`MAX_UNDELIVERED`; smaller in models).
    max_undelivered: usize,
    /// Once full, workers resume when the count is down to this, so they
    /// wake in a batch rather than one per delivered result.
    resume_at: usize,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A job panicking never holds this lock (jobs run outside it), so a
    // poisoned lock can only come from a panic in our own few lines.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The worker threads of one loop.
pub(crate) struct Pool {
    shared: Arc<JobQueue>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    pub(crate) fn start(size: usize) -> io::Result<Pool> {
        Pool::with_bound(size, MAX_UNDELIVERED)
    }

    fn with_bound(size: usize, max_undelivered: usize) -> io::Result<Pool> {
        let shared = Arc::new(JobQueue {
            state: Mutex::new(State::default()),
            available: Condvar::new(),
            undelivered: AtomicUsize::new(0),
            max_undelivered,
            resume_at: max_undelivered / 2,
        });
        let mut pool = Pool {
            shared,
            threads: Vec::with_capacity(size),
        };
        for i in 0..size {
            let shared = pool.shared.clone();
            let t = spawn(format!("evloop-pool-{i}"), move || worker(&shared))?;
            pool.threads.push(t);
        }
        log::debug!("thread pool started with {size} threads");
        Ok(pool)
    }

    pub(crate) fn submit(&self, id: u64, job: PoolJob) {
        lock(&self.shared.state).queue.push_back((id, job));
        self.shared.available.notify_one();
    }

    /// Removes job `id` if no worker has taken it yet. The job is dropped
    /// here, outside the lock.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let job = {
            let mut st = lock(&self.shared.state);
            let at = st.queue.iter().position(|(i, _)| *i == id);
            at.and_then(|at| st.queue.remove(at))
        };
        job.is_some()
    }

    pub(crate) fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Loop side: the result of one job taken by a worker was delivered
    /// (its `done` is about to run), so a waiting worker may start another.
    pub(crate) fn delivered(&self) {
        let before = self.shared.undelivered.fetch_sub(1, Ordering::AcqRel);
        if before == self.shared.resume_at + 1 {
            // Workers may be waiting for room. Taking the lock orders this
            // after a worker's check-then-wait, so the wakeup is not lost.
            drop(lock(&self.shared.state));
            self.shared.available.notify_all();
        }
    }
}

fn worker(shared: &JobQueue) {
    loop {
        let job = {
            let mut st = lock(&shared.state);
            loop {
                if st.shutdown {
                    return;
                }
                if shared.undelivered.load(Ordering::Acquire) < shared.max_undelivered {
                    if let Some((_, job)) = st.queue.pop_front() {
                        shared.undelivered.fetch_add(1, Ordering::AcqRel);
                        break job;
                    }
                }
                st = shared.available.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        // The job catches the user's panic itself; this guards our own code.
        let span = crate::trace::begin();
        let _ = catch_unwind(AssertUnwindSafe(job));
        crate::trace::end(span, "work", "pool", None);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let discarded = {
            let mut st = lock(&self.shared.state);
            st.shutdown = true;
            std::mem::take(&mut st.queue)
        };
        self.shared.available.notify_all();
        drop(discarded);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        log::debug!("thread pool joined");
    }
}

/// Model tests: every interleaving of the workers and the loop thread, up
/// to loom's preemption bound (`RUSTFLAGS="--cfg evloop_loom" cargo test
/// --release --lib pool::workers`).
#[cfg(all(test, evloop_loom))]
mod loom_tests {
    use super::*;

    /// Runs `f` under loom, with at most 3 preemptions per execution unless
    /// `LOOM_MAX_PREEMPTIONS` says otherwise (CI uses 2: about 10 s instead
    /// of 5 minutes; a lost wakeup needs only one).
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        if b.preemption_bound.is_none() {
            b.preemption_bound = Some(3);
        }
        b.check(f);
    }

    /// Queues `jobs` jobs on a pool of `threads` with room for `bound`
    /// undelivered results; the test thread plays the loop, waiting for a
    /// posted result (as the real loop waits in `epoll_wait` for the
    /// `Remote`'s wake) and delivering it. Every job must run and be
    /// delivered: a lost wakeup shows as a deadlock, which loom reports.
    fn deliver_all(threads: usize, bound: usize, jobs: usize) {
        model(move || {
            let pool = Pool::with_bound(threads, bound).unwrap();
            // The loop's queue of posted results (the `Remote` in real life).
            let posted = Arc::new((Mutex::new(0usize), Condvar::new()));
            for id in 0..jobs {
                let posted = posted.clone();
                pool.submit(
                    id as u64,
                    Box::new(move || {
                        *posted.0.lock().unwrap() += 1;
                        posted.1.notify_one();
                    }),
                );
            }
            let mut delivered = 0;
            while delivered < jobs {
                let mut n = posted.0.lock().unwrap();
                while *n == 0 {
                    n = posted.1.wait(n).unwrap();
                }
                *n -= 1;
                drop(n);
                pool.delivered();
                delivered += 1;
            }
            assert_eq!(pool.shared.undelivered.load(Ordering::Acquire), 0);
            drop(pool);
        });
    }

    #[test]
    fn one_worker_bound_of_one() {
        deliver_all(1, 1, 2);
    }

    #[test]
    fn two_workers_bound_of_one() {
        deliver_all(2, 1, 2);
    }

    #[test]
    fn two_workers_bound_of_two_resume_at_one() {
        deliver_all(2, 2, 3);
    }

    /// Dropping the pool while workers wait for room must still join them.
    #[test]
    fn shutdown_while_workers_wait_for_room() {
        model(|| {
            let pool = Pool::with_bound(2, 1).unwrap();
            for id in 0..3 {
                pool.submit(id, Box::new(|| {}));
            }
            drop(pool);
        });
    }
}
