//! The CPU-bound workload in every model: scan a space of numbers for the
//! preimage of a hash, in equal chunks. Every model scans every chunk in
//! full, so every model does the same work.

use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use evloop::promise::Promise;

use crate::hash_search::hash;
use crate::measure::Outcome;

/// Scans the whole of `range` (no early exit: equal work everywhere).
pub fn scan(range: Range<u64>, target: u64) -> Option<u64> {
    let mut found = None;
    for n in range {
        if hash(n) == target {
            found = Some(n);
        }
    }
    found
}

pub struct Job {
    pub chunks: Vec<Range<u64>>,
    pub target: u64,
    pub secret: u64,
}

impl Job {
    fn check(&self, found: Option<u64>) -> Outcome {
        Outcome::checked(found == Some(self.secret))
    }
}

pub fn sync(job: &Job) -> Outcome {
    // A fold, not `find`: every chunk is scanned, as in the other models.
    let found = job
        .chunks
        .iter()
        .fold(None, |found, c| scan(c.clone(), job.target).or(found));
    job.check(found)
}

/// Callbacks: each chunk is a `set_immediate` that queues the next, so
/// other callbacks could run between chunks (Node's way to slice CPU work).
pub fn callbacks(job: &Job) -> Outcome {
    fn next(chunks: Rc<Vec<Range<u64>>>, i: usize, target: u64, found: Rc<Cell<Option<u64>>>) {
        if i == chunks.len() {
            return;
        }
        evloop::set_immediate(move || {
            if let Some(n) = scan(chunks[i].clone(), target) {
                found.set(Some(n));
            }
            next(chunks, i + 1, target, found);
        });
    }
    let found = Rc::new(Cell::new(None));
    let (chunks, target, f) = (Rc::new(job.chunks.clone()), job.target, found.clone());
    evloop::run(move || next(chunks, 0, target, f)).expect("the loop");
    job.check(found.get())
}

/// Promises: a chain, one `then` per chunk.
pub fn promises(job: &Job) -> Outcome {
    let result = Rc::new(RefCell::new(None));
    let (r, chunks, target) = (result.clone(), job.chunks.clone(), job.target);
    evloop::run(move || {
        let chain = chunks.into_iter().fold(Promise::resolve(None), |p, c| {
            p.then(move |found: Option<u64>| scan(c, target).or(found))
        });
        *r.borrow_mut() = Some(chain);
    })
    .expect("the loop");
    let chain = result.borrow_mut().take().expect("started");
    job.check(chain.peek().and_then(|r| r.ok()).flatten())
}

/// async/await: a task per chunk, yielding to the loop every 10,000 numbers.
pub fn async_await(job: &Job) -> Outcome {
    let (chunks, target) = (job.chunks.clone(), job.target);
    let found = evloop::block_on(async move {
        let tasks: Vec<Promise<Option<u64>>> = chunks
            .into_iter()
            .map(|c| {
                evloop::spawn(async move {
                    let mut found = None;
                    let mut at = c.start;
                    while at < c.end {
                        let end = (at + 10_000).min(c.end);
                        found = scan(at..end, target).or(found);
                        at = end;
                        evloop::task::yield_now().await;
                    }
                    found
                })
            })
            .collect();
        let mut found = None;
        for t in tasks {
            found = t.await.ok().flatten().or(found);
        }
        found
    })
    .expect("the loop");
    job.check(found)
}

/// Threads: `workers` threads taking chunks from a shared counter.
pub fn threads(job: &Job, workers: usize) -> Outcome {
    let next = AtomicUsize::new(0);
    let found = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = job.chunks.get(i) else { return };
                if let Some(n) = scan(c.clone(), job.target) {
                    *found.lock().unwrap() = Some(n);
                }
            });
        }
    });
    let found = *found.lock().unwrap();
    job.check(found)
}
