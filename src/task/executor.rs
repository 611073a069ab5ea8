//! The executor: a per-loop slab of tasks, polled on the loop thread.
//!
//! A task is a boxed future plus the promise it settles. Its slot is keyed
//! by slab key + generation ([`TaskId`]), so a wake for a task that has
//! finished (its key perhaps reused) is ignored.
//!
//! **Take, then call.** The future is taken out of its slot while it is
//! polled; no borrow of the slab is held while user code runs. A wake that
//! arrives during its own poll only marks the slot, and the task is polled
//! again afterwards from a microtask, never recursively.
//!
//! Four things poll a task:
//! - [`spawn`](crate::spawn), once, synchronously (a JS async function runs
//!   its body up to the first `await` before returning its promise);
//! - the reaction of an awaited promise, inline, inside the promise job
//!   itself (so `await` costs one microtask hop, as in JS);
//! - for an await of a promise that had already settled, the resume
//!   microtask queued in place of that reaction job ([`queue_resume`]);
//! - a microtask queued by its [`Waker`] (timers, I/O, other threads).
//!
//! **Nothing is allocated per poll or per wake.** The microtasks above
//! capture nothing (boxing them allocates nothing): what each is for waits
//! in a per-loop first-in-first-out list beside the microtask queue
//! (`queued`, `deliveries`, `resumes`); polls and resumes queued in a row
//! share one microtask (`Runs`). A task's waker state (`Arc`) is
//! its own only while a clone of its waker is held somewhere; otherwise
//! polls borrow one of a few spare states.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use slab::Slab;

use super::boxed::{drop_quietly, reject_quietly, running, TaskFuture};
use super::waker::TaskWaker;
use crate::event_loop::slots::{LoopLocal, PerLoop, Released};
use crate::event_loop::{try_with_current, try_with_current_ref, EventLoop, LoopState};
use crate::promise::{panic_rejection, Rejection};

thread_local! {
    /// The task being polled on this thread, if any.
    static CURRENT_TASK: Cell<Option<TaskId>> = const { Cell::new(None) };
    /// The address of the `Waker` that poll was given: only compared,
    /// never read (see [`is_task_waker`]).
    static CURRENT_WAKER: Cell<*const Waker> = const { Cell::new(std::ptr::null()) };
}

/// Generations are unique process-wide, so an id never matches a task of
/// another loop either.
static NEXT_GEN: AtomicU64 = AtomicU64::new(1);

/// A task's slab key and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskId {
    pub(crate) key: usize,
    pub(crate) gen: u64,
}

/// The task the executor is polling on this thread right now, if any.
pub(crate) fn current_task() -> Option<TaskId> {
    CURRENT_TASK.try_with(Cell::get).ok().flatten()
}

/// Whether `w` is the very waker the executor is polling the current task
/// with (not a clone, nor a combinator's own waker): then a future that
/// needs to wake the task later can leave it to [`run`] instead of keeping
/// a clone, and the task's waker state can be lent to the next task.
/// The comparison is by address: that `Waker` lives on [`run`]'s stack for
/// the whole poll, so no other waker can have its address meanwhile.
pub(crate) fn is_task_waker(w: &Waker) -> bool {
    CURRENT_WAKER
        .try_with(|c| std::ptr::eq(c.get(), w))
        .unwrap_or(false)
}

/// A task in the slab: 32 bytes (checked below), so 100,000 pending tasks
/// take 3.2 MB of slab, plus what the vector's doubling leaves spare.
pub(crate) struct Slot {
    /// The generation, shifted left by [`FLAG_BITS`], and the flags
    /// [`RUNNING`], [`SCHEDULED`], [`WOKEN`] and [`ABORT`] (one word
    /// instead of a word and four `bool`s).
    word: u64,
    /// The future and its promise; [`running`] while it is being polled.
    fut: TaskFuture,
    /// This task's waker state while a clone of its waker is out (a
    /// socket or a timer keeps one to wake it). `None` when nothing holds
    /// one: each poll then borrows a spare state (see [`run`]), so a task
    /// that only awaits promises needs none of its own.
    waker: Option<Arc<TaskWaker>>,
}

/// The box is out being polled (the slot holds [`running`]).
const RUNNING: u64 = 1;
/// A microtask that polls it is queued.
const SCHEDULED: u64 = 2;
/// Woken during its own poll: poll again afterwards.
const WOKEN: u64 = 4;
/// Aborted during its own poll: drop it afterwards.
const ABORT: u64 = 8;
/// How many low bits of [`Slot::word`] are flags.
const FLAG_BITS: u32 = 4;

const _: () = assert!(std::mem::size_of::<Slot>() <= 32);

impl Slot {
    fn new(gen: u64, fut: TaskFuture) -> Slot {
        Slot {
            word: gen << FLAG_BITS,
            fut,
            waker: None,
        }
    }

    fn gen(&self) -> u64 {
        self.word >> FLAG_BITS
    }

    fn is(&self, flag: u64) -> bool {
        self.word & flag != 0
    }

    fn set(&mut self, flag: u64, on: bool) {
        if on {
            self.word |= flag;
        } else {
            self.word &= !flag;
        }
    }

    /// Clears `flag`; returns whether it was set.
    fn take(&mut self, flag: u64) -> bool {
        let was = self.is(flag);
        self.set(flag, false);
        was
    }
}

/// At most this many finished tasks' waker states are kept for reuse.
const SPARE_WAKERS: usize = 1024;

/// The loop's tasks (a per-loop slot: [`Tasks::of`]).
#[derive(Default)]
pub(crate) struct Tasks {
    slab: RefCell<Slab<Slot>>,
    /// Waker states that nothing else holds, ready for the next poll of
    /// any task: a poll whose future kept no clone of its waker gives the
    /// state back here, so tasks that only await promises share a few
    /// states instead of allocating one each.
    spare: RefCell<Vec<Arc<TaskWaker>>>,
    /// The tasks whose poll microtask is queued, in queue order. Those
    /// microtasks are [`poll_queued`], which captures nothing (so boxing it
    /// allocates nothing): each polls the next tasks of this list, as many
    /// as its count in `poll_runs` says.
    queued: RefCell<VecDeque<Queued>>,
    /// How many tasks each queued [`poll_queued`] polls.
    poll_runs: Runs,
    /// The same for awaited promises whose reaction job is queued (see
    /// [`queue_delivery`]).
    deliveries: RefCell<VecDeque<Rc<dyn Deliver>>>,
    /// The same for awaits of promises that had already settled (see
    /// [`queue_resume`]): the task to poll and the await's ticket. Resumes
    /// queued in a row share one [`resume_queued`] as polls do.
    resumes: RefCell<VecDeque<(Queued, u64)>>,
    /// How many resumes each queued [`resume_queued`] runs.
    resume_runs: Runs,
    /// The last ticket [`queue_resume`] handed out, and the last one whose
    /// microtask has run. Tickets grow by one and their microtasks run in
    /// that order, so ticket `t`'s has run exactly when `t <= resumed`.
    tickets: Cell<u64>,
    resumed: Cell<u64>,
    /// Resumes whose await changed before its microtask ran (polled from
    /// somewhere else, or dropped): deliver there instead of polling the
    /// task, or (`None`) do nothing. Almost always empty.
    redirects: RefCell<Vec<Redirect>>,
    /// Tasks that spent their budget (see `coop`), to be polled in the
    /// next iteration's pending phase by one [`poll_yielded`] job.
    yielded: RefCell<Vec<TaskId>>,
}

/// A task id in 8 bytes, as the poll and resume queues and a resuming
/// await keep it: its slab key and the low 32 bits of its generation. A
/// stale one (its task finished and the key went to a task whose
/// generation matches modulo 2^32, more than four billion spawns later)
/// can at worst poll that task spuriously, which any future must allow.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued {
    key: u32,
    gen: u32,
}

impl Queued {
    pub(crate) fn new(id: TaskId) -> Queued {
        Queued {
            key: u32::try_from(id.key).expect("fewer than 2^32 tasks"),
            gen: id.gen as u32,
        }
    }

    /// The task, if its slot still holds it.
    fn find(self, tasks: &Tasks) -> Option<TaskId> {
        let key = self.key as usize;
        let gen = tasks.slab.borrow().get(key).map(Slot::gen)?;
        (gen as u32 == self.gen).then_some(TaskId { key, gen })
    }
}

/// Runs of executor microtasks of one kind: items queued one after the
/// other, with no other microtask queued in between, share one microtask,
/// which handles them all in order. That is what one microtask each would
/// do, and a million tasks woken in a row take one entry of the microtask
/// queue, not a million.
#[derive(Default)]
struct Runs {
    /// For each queued microtask of this kind, in queue order, how many
    /// items it handles.
    counts: RefCell<VecDeque<u32>>,
    /// [`Microtasks::micro_pushes`](crate::microtasks::Microtasks) right
    /// after the last microtask of this kind was pushed: while unchanged
    /// and `counts` is not empty, that microtask is still the last one
    /// queued (it leaves `counts` when it starts).
    last_push: Cell<u64>,
}

impl Runs {
    /// One more item: it joins the last run if that run's microtask is
    /// still the last one queued, else `job` is queued for a new run.
    /// `job` captures nothing, so boxing it allocates nothing.
    fn add(&self, micro: &crate::microtasks::Microtasks, job: impl FnOnce() + 'static) {
        let mut counts = self.counts.borrow_mut();
        if self.last_push.get() == micro.micro_pushes() {
            if let Some(n) = counts.back_mut() {
                if let Some(m) = n.checked_add(1) {
                    *n = m;
                    return;
                }
            }
        }
        counts.push_back(1);
        drop(counts);
        micro.push_micro(Box::new(job));
        self.last_push.set(micro.micro_pushes());
    }

    /// The microtask of the first run starts: how many items it handles.
    /// Items added from now on go to a later run.
    fn start(&self) -> u32 {
        let n = self.counts.borrow_mut().pop_front();
        debug_assert!(n.is_some(), "an executor microtask without its run");
        n.unwrap_or(0)
    }
}

/// A resume ticket and where its microtask delivers instead.
type Redirect = (u64, Option<Rc<dyn Deliver>>);

/// A reaction job's work, queued with [`queue_delivery`].
pub(crate) trait Deliver {
    fn deliver(&self);
}

impl PerLoop for Tasks {
    fn new(_: &LoopState) -> Self {
        Tasks::default()
    }

    /// Every task (dropping a future may release timers and sources, so
    /// the loop releases this slot first).
    fn release(&self) -> Released {
        let tasks = std::mem::take(&mut *self.slab.borrow_mut());
        Released::new("tasks", tasks.len(), tasks)
    }
}

static TASKS: LoopLocal<Tasks> = LoopLocal::new();

impl Tasks {
    /// The loop's tasks.
    #[inline]
    pub(crate) fn of(state: &LoopState) -> &Tasks {
        TASKS.get(state)
    }

    /// Tasks not finished.
    pub(crate) fn len(&self) -> usize {
        self.slab.borrow().len()
    }
}

/// Inserts a task and polls it once, synchronously.
pub(crate) fn spawn_future(inner: &Rc<LoopState>, fut: TaskFuture) -> TaskId {
    let tasks = Tasks::of(inner);
    let gen = NEXT_GEN.fetch_add(1, Ordering::Relaxed);
    let id = {
        let mut slab = tasks.slab.borrow_mut();
        let entry = slab.vacant_entry();
        let id = TaskId {
            key: entry.key(),
            gen,
        };
        entry.insert(Slot::new(gen, fut));
        id
    };
    log::trace!("spawn task #{} (gen {gen})", id.key);
    run_in(inner, tasks, id, false);
    id
}

/// Polls task `id` now. Returns false if there is no such task (finished,
/// or of another loop). A task already being polled is marked to be polled
/// again afterwards instead.
pub(crate) fn run(inner: &LoopState, id: TaskId, from_microtask: bool) -> bool {
    run_in(inner, Tasks::of(inner), id, from_microtask)
}

/// [`run`] with the loop's tasks already looked up.
fn run_in(inner: &LoopState, tasks: &Tasks, id: TaskId, from_microtask: bool) -> bool {
    let (mut fut, task_waker) = {
        let mut slab = tasks.slab.borrow_mut();
        let Some(slot) = slab.get_mut(id.key).filter(|s| s.gen() == id.gen) else {
            return false;
        };
        if from_microtask {
            slot.set(SCHEDULED, false);
        }
        if slot.is(RUNNING) {
            slot.set(WOKEN, true);
            return true;
        }
        slot.set(RUNNING, true);
        let fut = std::mem::replace(&mut slot.fut, running());
        let w = slot.waker.take();
        (fut, w.unwrap_or_else(|| lend_waker(inner, tasks, id)))
    };
    let waker = Waker::from(task_waker.clone());
    let prev = CURRENT_TASK.with(|c| c.replace(Some(id)));
    let prev_waker = CURRENT_WAKER.with(|c| c.replace(&waker));
    let budget = super::coop::start();
    let r = catch_unwind(AssertUnwindSafe(|| {
        fut.as_mut().poll(&mut Context::from_waker(&waker))
    }));
    super::coop::restore(budget);
    CURRENT_WAKER.with(|c| c.set(prev_waker));
    CURRENT_TASK.with(|c| c.set(prev));
    drop(waker);
    match r {
        Ok(Poll::Pending) => {
            let mut slab = tasks.slab.borrow_mut();
            let slot = slab
                .get_mut(id.key)
                .expect("a running task stays in its slot");
            slot.set(RUNNING, false);
            if slot.is(ABORT) {
                drop(slab.remove(id.key));
                drop(slab);
                log::trace!("task #{} aborted", id.key);
                reject_quietly(fut, Rejection::aborted(), true);
                keep_spare(tasks, task_waker, id);
                return true;
            }
            slot.fut = fut;
            // Still held by a clone: the task keeps it, so those wakes reach
            // it. Else any task may have it for its next poll.
            if Arc::strong_count(&task_waker) > 1 {
                slot.waker = Some(task_waker);
            } else {
                keep_spare(tasks, task_waker, id);
            }
            if slot.take(WOKEN) && !slot.is(SCHEDULED) {
                slot.set(SCHEDULED, true);
                drop(slab);
                queue_poll(inner, tasks, id);
            }
        }
        Ok(Poll::Ready(())) => {
            let slot = tasks.slab.borrow_mut().remove(id.key);
            log::trace!("task #{} finished", id.key);
            drop(slot);
            drop_quietly(fut);
            keep_spare(tasks, task_waker, id);
        }
        Err(payload) => {
            let slot = tasks.slab.borrow_mut().remove(id.key);
            log::trace!("task #{} panicked", id.key);
            drop(slot);
            reject_quietly(fut, panic_rejection(payload, "task"), false);
            keep_spare(tasks, task_waker, id);
        }
    }
    true
}

/// A waker state for one poll of task `id`: a spare one rewritten for it,
/// or a new one.
fn lend_waker(inner: &LoopState, tasks: &Tasks, id: TaskId) -> Arc<TaskWaker> {
    let spare = tasks.spare.borrow_mut().pop();
    match spare.map(|w| super::waker::reuse(w, id)) {
        Some(Ok(w)) => w,
        _ => super::waker::new(id, inner.remote_handle()),
    }
}

/// Keeps a waker state for reuse if nothing else holds it (its key and
/// generation are rewritten when it is lent again, so a stale wake can
/// never reach it: nothing can wake it at all).
fn keep_spare(tasks: &Tasks, waker: Arc<TaskWaker>, id: TaskId) {
    if Arc::strong_count(&waker) != 1 {
        return;
    }
    let mut spare = tasks.spare.borrow_mut();
    if spare.len() < SPARE_WAKERS {
        if let Ok(w) = super::waker::reuse(waker, id) {
            spare.push(w);
        }
    }
}

/// Queues a microtask that polls `id`. Nothing is allocated per wake: the
/// id waits in the loop's `queued` list, and the microtask is
/// [`poll_queued`]. If the last microtask queued is a [`poll_queued`] that
/// has not started, the task joins it instead: polling both tasks in one
/// microtask is what two microtasks in a row would do, and a million
/// tasks woken in a row take one queue entry, not a million.
fn queue_poll(inner: &LoopState, tasks: &Tasks, id: TaskId) {
    tasks.queued.borrow_mut().push_back(Queued::new(id));
    tasks.poll_runs.add(&inner.micro, poll_queued);
}

/// The microtask [`queue_poll`] queues: polls the first tasks of the list,
/// as many as its run counts. The lists and the microtask queue are all
/// first in, first out, and each run begins with a push to the microtask
/// queue on the same loop, so the tasks taken are the ones this microtask
/// was queued for. Tasks woken meanwhile go to a later run.
fn poll_queued() {
    let Some(inner) = try_with_current(Rc::clone) else {
        return;
    };
    let tasks = Tasks::of(&inner);
    for _ in 0..tasks.poll_runs.start() {
        let q = tasks.queued.borrow_mut().pop_front();
        debug_assert!(q.is_some(), "a poll run shorter than its count");
        let Some(q) = q else {
            return;
        };
        if let Some(id) = q.find(tasks) {
            run_in(&inner, tasks, id, true);
        }
    }
}

/// Queues `job` as a microtask on the current loop (none: dropped), in the
/// same way as [`queue_poll`]: the microtask itself captures nothing.
/// Returns the microtask for the caller to push, right after, onto the
/// same loop's queue (with none current, the caller drops it too).
pub(crate) fn queue_delivery(job: Rc<dyn Deliver>) -> crate::microtasks::MicroJob {
    try_with_current_ref(|inner| Tasks::of(inner).deliveries.borrow_mut().push_back(job));
    Box::new(deliver_queued)
}

/// For an await of a promise that has already settled, polled by task `id`
/// itself: queues a microtask that polls the task again, where a reaction
/// job would have been queued (so the await still costs one hop), and
/// returns its ticket ([`has_resumed`] tells when it has run). Nothing is
/// allocated: the await keeps the outcome itself.
pub(crate) fn queue_resume(id: TaskId) -> Option<u64> {
    try_with_current_ref(|inner| {
        let tasks = Tasks::of(inner);
        let ticket = tasks.tickets.get() + 1;
        tasks.tickets.set(ticket);
        tasks
            .resumes
            .borrow_mut()
            .push_back((Queued::new(id), ticket));
        tasks.resume_runs.add(&inner.micro, resume_queued);
        ticket
    })
}

/// The microtask of [`queue_resume`]: for each resume of its run, marks
/// the ticket as run, then polls its task (or follows its redirect).
fn resume_queued() {
    let Some(inner) = try_with_current(Rc::clone) else {
        return;
    };
    let tasks = Tasks::of(&inner);
    for _ in 0..tasks.resume_runs.start() {
        let first = tasks.resumes.borrow_mut().pop_front();
        debug_assert!(first.is_some(), "a resume run shorter than its count");
        let Some((q, ticket)) = first else {
            return;
        };
        resume(&inner, tasks, q, ticket);
    }
}

/// One resume of [`resume_queued`].
fn resume(inner: &LoopState, tasks: &Tasks, q: Queued, ticket: u64) {
    tasks.resumed.set(ticket);
    let redirect = {
        let mut r = tasks.redirects.borrow_mut();
        let i = r.iter().position(|(t, _)| *t == ticket);
        i.map(|i| r.swap_remove(i).1)
    };
    match redirect {
        None => {
            if let Some(id) = q.find(tasks) {
                run_in(inner, tasks, id, false);
            }
        }
        Some(Some(to)) => to.deliver(),
        Some(None) => {}
    }
}

/// Whether the microtask of `ticket` (from [`queue_resume`]) has run.
pub(crate) fn has_resumed(ticket: u64) -> bool {
    try_with_current_ref(|inner| ticket <= Tasks::of(inner).resumed.get()).unwrap_or(false)
}

/// Makes the microtask of `ticket`, not run yet, deliver to `to` instead of
/// polling its task (`None`: do nothing).
pub(crate) fn redirect_resume(ticket: u64, to: Option<Rc<dyn Deliver>>) {
    try_with_current_ref(|inner| Tasks::of(inner).redirects.borrow_mut().push((ticket, to)));
}

/// The microtask of [`queue_delivery`]: runs the first delivery.
fn deliver_queued() {
    if let Some(inner) = try_with_current(Rc::clone) {
        let job = Tasks::of(&inner).deliveries.borrow_mut().pop_front();
        debug_assert!(job.is_some(), "a delivery microtask without its job");
        if let Some(job) = job {
            job.deliver();
        }
    }
}

/// The task being polled spent its budget: poll it again in the next
/// iteration, after a poll of the reactor. Returns false outside a task's
/// poll. Allocates nothing once warm (the job captures nothing).
pub(crate) fn yield_current(inner: &LoopState) -> bool {
    let tasks = Tasks::of(inner);
    let Some(id) = current_task() else {
        return false;
    };
    // Marked scheduled: a readiness wake before the next iteration (in
    // this one's poll phase) must not poll it again, or it would get a
    // second budget in one iteration.
    match tasks.slab.borrow_mut().get_mut(id.key) {
        Some(slot) if slot.gen() == id.gen => slot.set(SCHEDULED, true),
        _ => return false,
    }
    let mut yielded = tasks.yielded.borrow_mut();
    if yielded.is_empty() {
        inner.defer_next_turn(Box::new(poll_yielded));
    }
    yielded.push(id);
    true
}

/// Queues the polls of the tasks that yielded in the last iteration.
fn poll_yielded() {
    try_with_current(|inner| {
        let tasks = Tasks::of(inner);
        let ids = std::mem::take(&mut *tasks.yielded.borrow_mut());
        for &id in &ids {
            // Still there, and not polled since it yielded (its scheduled
            // mark is cleared only by the poll microtask).
            let live = tasks
                .slab
                .borrow()
                .get(id.key)
                .is_some_and(|s| s.gen() == id.gen && s.is(SCHEDULED));
            if live {
                queue_poll(inner, tasks, id);
            }
        }
        // Give the list's memory back for the next round.
        let mut ids = ids;
        ids.clear();
        let mut yielded = tasks.yielded.borrow_mut();
        if yielded.is_empty() {
            *yielded = ids;
        }
    });
}

/// A wake on the loop thread: queue a microtask that polls the task, unless
/// one is queued already, the task is gone, or it is running (then it is
/// polled again after its current poll).
pub(crate) fn schedule(inner: &LoopState, id: TaskId) {
    let tasks = Tasks::of(inner);
    let mut slab = tasks.slab.borrow_mut();
    let Some(slot) = slab.get_mut(id.key).filter(|s| s.gen() == id.gen) else {
        return;
    };
    if slot.is(RUNNING) {
        slot.set(WOKEN, true);
        return;
    }
    if !slot.is(SCHEDULED) {
        slot.set(SCHEDULED, true);
        drop(slab);
        queue_poll(inner, tasks, id);
    }
}

/// Aborts `id`: drops its future now and rejects its promise; a task being
/// polled is dropped right after its current poll. A finished task is
/// left alone.
pub(crate) fn abort(inner: &LoopState, id: TaskId) {
    let tasks = Tasks::of(inner);
    let mut slab = tasks.slab.borrow_mut();
    let Some(slot) = slab.get_mut(id.key).filter(|s| s.gen() == id.gen) else {
        return;
    };
    if slot.is(RUNNING) {
        slot.set(ABORT, true);
        return;
    }
    let Slot { fut, waker, .. } = slab.remove(id.key);
    drop(slab);
    log::trace!("task #{} aborted", id.key);
    reject_quietly(fut, Rejection::aborted(), true);
    drop(waker);
}

/// Whether `id` is still a live task of `inner`.
pub(crate) fn is_alive(inner: &LoopState, id: TaskId) -> bool {
    let tasks = Tasks::of(inner);
    tasks
        .slab
        .borrow()
        .get(id.key)
        .is_some_and(|s| s.gen() == id.gen)
}

impl EventLoop {
    /// Spawned `async` tasks that have not finished yet (see
    /// [`spawn`](crate::spawn)). Pending tasks keep nothing alive.
    pub fn tasks(&self) -> usize {
        Tasks::of(&self.inner).len()
    }
}
