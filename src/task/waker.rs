//! The task waker: `Send + Sync`, built from an `Arc` (`std::task::Wake`).
//!
//! On the loop's own thread, with that loop current, a wake queues a
//! microtask that polls the task. From anywhere else it goes through the
//! loop's [`Remote`]: a job in the cross-thread queue, run in the pending
//! phase, which then schedules the task. Repeated cross-thread wakes before
//! the loop gets to the first are coalesced into one post. Waking a task
//! that has finished, or whose loop is gone, does nothing.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;
use std::thread::{self, ThreadId};

use super::executor::{schedule, TaskId};
use crate::event_loop::{try_with_current, try_with_current_ref};
use crate::remote::Remote;

pub(crate) struct TaskWaker {
    id: TaskId,
    remote: Remote,
    thread: ThreadId,
    /// A cross-thread post for this task is queued and not yet run.
    posted: AtomicBool,
}

/// The waker state of task `id` on the loop reached through `remote`,
/// whose thread is this one (`Waker::from` a clone of it makes the waker).
pub(crate) fn new(id: TaskId, remote: Remote) -> Arc<TaskWaker> {
    Arc::new(TaskWaker {
        id,
        remote,
        thread: thread::current().id(),
        posted: AtomicBool::new(false),
    })
}

/// Readies a spare waker state (kept by the executor after a poll or a
/// task that no longer needs it) for task `id` of the same loop, if no
/// waker made from it is still around (it is not shared); gives it back
/// otherwise.
pub(crate) fn reuse(mut w: Arc<TaskWaker>, id: TaskId) -> Result<Arc<TaskWaker>, Arc<TaskWaker>> {
    match Arc::get_mut(&mut w) {
        Some(tw) => {
            tw.id = id;
            *tw.posted.get_mut() = false;
            Ok(w)
        }
        None => Err(w),
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if thread::current().id() == self.thread {
            // Scheduling runs no user code: the loop by reference will do.
            let scheduled = try_with_current_ref(|inner| {
                let mine = inner.owns_remote(&self.remote);
                if mine {
                    schedule(inner, self.id);
                }
                mine
            });
            if scheduled == Some(true) {
                return;
            }
        }
        // Another thread, or this loop is not current: post. The swap
        // pairs with the loop's swap below, so a value written before a
        // coalesced wake is visible to the poll that follows.
        if self.posted.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        let r = self.remote.post(move || {
            me.posted.swap(false, Ordering::AcqRel);
            if let Some(inner) = try_with_current(Rc::clone) {
                schedule(&inner, me.id);
            }
        });
        // The loop is gone: nothing to wake, and that is fine.
        if r.is_err() {
            log::trace!("wake of task #{} after its loop was dropped", self.id.key);
        }
    }
}
