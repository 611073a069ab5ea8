//! The dispatch boundary: calling user code (catching its panics), the
//! errors nobody handled (the uncaught-exception handler, or what stops
//! the loop), and the microtask checkpoint that runs after every callback.

use super::*;

impl LoopState {
    /// Calls user code at the dispatch boundary, catching a panic. Returns
    /// whether it returned normally.
    pub(crate) fn call(&self, origin: &'static str, f: impl FnOnce()) -> bool {
        let span = trace::begin();
        let r = catch_unwind(AssertUnwindSafe(f));
        trace::end(span, origin, "callback", None);
        match r {
            Ok(()) => true,
            Err(payload) => self.panicked(origin, payload),
        }
    }

    /// Drops what a finished callback captured. That is user code too (a
    /// capture's `Drop` may panic: caught and reported as [`call`](Self::call)
    /// reports it), but it is part of the callback that just ran, not a
    /// callback of its own: it is not traced, so the timeline shows one
    /// box per callback.
    pub(crate) fn drop_captures<T>(&self, origin: &'static str, captures: T) -> bool {
        match catch_unwind(AssertUnwindSafe(move || drop(captures))) {
            Ok(()) => true,
            Err(payload) => self.panicked(origin, payload),
        }
    }

    /// User code panicked: the panic goes to the uncaught-exception
    /// handler. Returns `false` (it did not return normally). Out of line:
    /// the normal path of every dispatch stays a compare.
    #[cold]
    #[inline(never)]
    fn panicked(&self, origin: &'static str, payload: Box<dyn std::any::Any + Send>) -> bool {
        self.report_panic(PanicError::from_payload(&*payload, origin));
        // The payload's own Drop could panic; don't let that escape.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
        false
    }

    /// The checkpoint after a callback, unless it panicked: then (with an
    /// uncaught handler that took the panic) the queues it left drain
    /// after the *next* callback, as Node skips the drain of a callback
    /// that threw (a due timer, immediate or I/O callback runs first).
    #[inline]
    pub(super) fn checkpoint_after(&self, returned: bool, turn: &mut Turn) {
        if returned {
            self.checkpoint(turn);
        }
    }

    /// Routes a caught panic to the uncaught-exception handler, or records
    /// it so the loop stops (Node's default for an uncaught exception).
    fn report_panic(&self, err: PanicError) {
        self.report_uncaught(Error::Panicked(err), Origin::UncaughtException);
    }

    /// An error nobody handled (a panic, an unhandled rejection, an error
    /// with no listener): the uncaught-exception handler gets it and the
    /// loop goes on; without a handler the loop stops and `run` returns it
    /// (the first one wins), as Node exits on an uncaught exception.
    pub(crate) fn report_uncaught(&self, err: Error, origin: Origin) {
        log::debug!("uncaught ({origin}): {err}");
        // Take, then call: the handler may set or clear the handler.
        let hook = self.uncaught_hook.borrow_mut().take();
        let Some(mut hook) = hook else {
            self.set_fatal(err);
            return;
        };
        let gen = self.uncaught_hook_gen.get();
        let r = catch_unwind(AssertUnwindSafe(|| hook(err, origin)));
        if self.uncaught_hook_gen.get() == gen {
            *self.uncaught_hook.borrow_mut() = Some(hook);
        } else {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(hook)));
        }
        if let Err(p) = r {
            // A panicking handler is fatal, as a throw inside Node's
            // 'uncaughtException' listener is.
            let e = PanicError::from_payload(&*p, "uncaught-exception handler");
            let _ = catch_unwind(AssertUnwindSafe(move || drop(p)));
            self.set_fatal(Error::Panicked(e));
        }
    }

    /// Sets (or with `None` clears) the uncaught-exception handler.
    pub(crate) fn replace_uncaught_hook(&self, hook: Option<UncaughtHook>) {
        let gen = &self.uncaught_hook_gen;
        gen.set(gen.get() + 1);
        let old = std::mem::replace(&mut *self.uncaught_hook.borrow_mut(), hook);
        drop(old); // after the borrow: its captures may touch the loop
    }

    /// Records what stops the loop (the first one wins).
    pub(crate) fn set_fatal(&self, e: Error) {
        self.fatal.borrow_mut().get_or_insert(e);
    }

    /// Whether the loop must stop: an uncaught error nobody handled.
    pub(crate) fn has_failed(&self) -> bool {
        self.fatal.borrow().is_some()
    }

    /// The microtask checkpoint: all `next_tick`s, then all microtasks,
    /// until both are empty; then the end-of-checkpoint hooks (the promise
    /// layer reports the promises rejected with no handler there), and if
    /// that queued more work, around again (Node's
    /// `processTicksAndRejections`). Runs after every callback.
    ///
    /// Inline and short for the common case (nothing queued): it runs twice
    /// per request on a busy server, and the full body, out of line, costs
    /// ~45 instructions per call in register saves alone (callgrind,
    /// benches/servers/callgrind.sh).
    #[inline]
    pub(crate) fn checkpoint(&self, turn: &mut Turn) {
        if self.checkpoint_idle() {
            return;
        }
        self.checkpoint_slow(turn);
    }

    /// Nothing for a checkpoint to do: no tick, no microtask, no
    /// end-of-checkpoint hook due (whether or not a panic stopped the loop,
    /// the checkpoint would then return at once).
    #[inline]
    pub(super) fn checkpoint_idle(&self) -> bool {
        self.micro.is_empty() && !self.watchers.checkpoint_due.get()
    }

    #[inline(never)]
    pub(super) fn checkpoint_slow(&self, turn: &mut Turn) {
        loop {
            if self.has_failed() {
                return;
            }
            if !self.micro.is_empty() && !self.drain_queues(turn) {
                return;
            }
            self.interrupted.set(false);
            // The end-of-checkpoint hooks (unhandled rejections): a hook
            // that still has work asks again.
            if !self.watchers.checkpoint_due.replace(false) {
                return;
            }
            self.run_checkpoint_end();
        }
    }

    /// Drains the `next_tick` and microtask queues. Returns false if a panic
    /// means the rest must wait for the next callback boundary.
    fn drain_queues(&self, turn: &mut Turn) -> bool {
        // After a panicking microtask, the microtask queue drains on before
        // the ticks (V8 finishes its queue; Node's tick loop then resumes).
        let mut micro_first = false;
        loop {
            let mut ran = 0;
            let span = trace::begin();
            let r = catch_unwind(AssertUnwindSafe(|| self.micro.drain(&mut ran, micro_first)));
            if ran > 0 {
                trace::end(span, "microtasks", "checkpoint", Some(("jobs", ran)));
            }
            turn.microtasks += ran;
            match r {
                Ok(()) => return true,
                Err(payload) => {
                    let from_tick = self.micro.take_tick_panic();
                    let origin = if from_tick { "next_tick" } else { "microtask" };
                    self.report_panic(PanicError::from_payload(&*payload, origin));
                    // Node: after a throw in a microtask V8 drains on; after
                    // a throw in a tick, the queues resume only at the next
                    // callback boundary.
                    if self.has_failed() {
                        return false;
                    }
                    if from_tick {
                        self.interrupted.set(true);
                        return false;
                    }
                    micro_first = true;
                }
            }
        }
    }
}
