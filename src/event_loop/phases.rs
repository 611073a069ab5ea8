//! The phases of one loop run, in the order Node 20 runs them (libuv's
//! `uv_run`): read [`LoopState::run_mode`] top to bottom to see one tick.

use super::watchers::Kind;
use super::*;

impl LoopState {
    /// One run of `uv_run` (libuv >= 1.45, as in Node 20).
    pub(super) fn run_mode(self: &Rc<Self>, mode: Mode) -> Result<Turn, Error> {
        if self.is_busy() {
            return Err(Error::Reentrant);
        }
        let _running = Running::enter(self);
        let mut turn = Turn::default();

        // Work queued from outside any callback (an embedder's code, the
        // first poll of `block_on`'s task) drains now. What a panicking
        // `next_tick` interrupted waits for the first callback instead, as
        // in Node: a due timer runs first.
        // (`interrupted` stays set until a checkpoint completes, so poll
        // does not block meanwhile.)
        if !self.interrupted.get() || !self.alive() {
            self.checkpoint(&mut turn);
        }
        let mut alive = self.alive();
        if !alive {
            self.update_now_ns();
        }
        // Node runs due timers once before the first iteration.
        if mode == Mode::Default && alive && !self.stop_flag.get() {
            self.update_now_ns();
            self.traced("timers", &mut turn, |me, turn| me.run_timers(turn));
        }

        while alive && !self.stop_flag.get() && !self.has_failed() {
            let n = self.iterations.get() + 1;
            self.iterations.set(n);
            turn.iterations += 1;
            log::trace!("iteration {n} begins");

            self.take_next_turn();
            let can_sleep = self.pending.borrow().is_empty();
            self.traced("pending", &mut turn, |me, turn| me.run_pending(turn));
            self.traced("idle", &mut turn, |me, turn| {
                me.run_watchers(Kind::Idle, turn)
            });
            self.traced("prepare", &mut turn, |me, turn| {
                me.run_watchers(Kind::Prepare, turn)
            });

            let timeout = if (mode == Mode::Once && can_sleep) || mode == Mode::Default {
                self.backend_timeout()
            } else {
                Some(Duration::ZERO)
            };
            let span = trace::begin();
            let polled = self.poll(timeout, &mut turn);
            trace::end(span, "poll", "phase", None);
            polled?;

            // Completions that arrived during poll run now, a bounded number
            // of rounds so a flood cannot starve the other phases.
            for _ in 0..8 {
                if self.pending.borrow().is_empty() || self.has_failed() {
                    break;
                }
                self.traced("pending", &mut turn, |me, turn| me.run_pending(turn));
            }

            self.traced("check", &mut turn, |me, turn| me.run_check(turn));
            self.traced("close", &mut turn, |me, turn| me.run_closing(turn));

            self.update_now_ns();
            self.traced("timers", &mut turn, |me, turn| me.run_timers(turn));

            // A boundary for jobs left queued by a panicking tick.
            self.checkpoint(&mut turn);
            trace::flush();
            alive = self.alive();
            if mode != Mode::Default {
                break;
            }
        }

        self.stop_flag.set(false);
        self.phase.set(Phase::Idle);
        turn.alive = self.alive();
        if let Some(e) = self.fatal.borrow_mut().take() {
            return Err(e);
        }
        Ok(turn)
    }

    /// Runs one phase, as a span on the timeline when tracing (phases
    /// that ran no callback are left out, so an idle tick stays short).
    fn traced(&self, name: &str, turn: &mut Turn, phase: impl FnOnce(&Self, &mut Turn)) {
        let span = trace::begin();
        let before = turn.callbacks();
        phase(self, turn);
        if turn.callbacks() > before {
            trace::end(
                span,
                name,
                "phase",
                Some(("callbacks", turn.callbacks() - before)),
            );
        }
    }

    fn run_timers(&self, turn: &mut Turn) {
        self.phase.set(Phase::Timers);
        let now = self.clock.cached_ns();
        log::trace!("phase timers ({} armed)", self.timers.borrow().armed());
        // The delay of a timer that panicked (its checkpoint skipped).
        let mut panicked: Option<u64> = None;
        while !self.has_failed() {
            if let Some(delay) = panicked.take() {
                // Node drains before a timer of another list (delay), and
                // at the end of the phase; one of the same list runs
                // first, then the drain.
                if self.timers.borrow().due_delay(now) != Some(delay) {
                    self.checkpoint(turn);
                }
            }
            // Pop one at a time: a callback may clear a timer that is due.
            let Some(mut due) = self.timers.borrow_mut().pop_due(now) else {
                break;
            };
            log::trace!("dispatch timer #{}", due.key);
            // An interval re-arms from the moment its callback starts.
            let start = if due.repeat { self.update_now_ns() } else { 0 };
            let mut ok = self.call("timer", || due.cb.call());
            let delay = if ok {
                0
            } else {
                self.timers.borrow().delay_of(due.key)
            };
            turn.timers += 1;
            let garbage = self.timers.borrow_mut().finish(due, start);
            // Dropping user captures is user code too: it may panic.
            if let Some(garbage) = garbage {
                ok &= self.drop_captures("timer", garbage);
            }
            if !ok {
                panicked = Some(delay);
            }
            self.checkpoint_after(ok, turn);
        }
    }

    /// Moves cross-thread jobs into the pending queue; honours a remote stop.
    fn take_remote(&self) {
        let mut buf = self.remote_buf.borrow_mut();
        if self.remote.take(&mut buf) {
            log::debug!("stop requested from another thread");
            self.stop_flag.set(true);
        }
        if !buf.is_empty() {
            let mut pending = self.pending.borrow_mut();
            for job in buf.drain(..) {
                pending.push_back(job);
            }
        }
    }

    fn run_pending(&self, turn: &mut Turn) {
        self.phase.set(Phase::Pending);
        if self.remote.is_notified() {
            self.take_remote();
        }
        // A snapshot: callbacks deferred by these run next time.
        let n = self.pending.borrow().len();
        log::trace!("phase pending ({n} queued)");
        for _ in 0..n {
            if self.has_failed() {
                break;
            }
            let Some(job) = self.pending.borrow_mut().pop_front() else {
                break;
            };
            let ok = self.call("pending", job);
            turn.pending += 1;
            self.checkpoint_after(ok, turn);
        }
    }

    fn poll(&self, timeout: Option<Duration>, turn: &mut Turn) -> io::Result<()> {
        // An uncaught error earlier in this iteration (a pending callback,
        // a watcher) stops the loop: no poll, which might block, and no
        // more callbacks. Events not fetched stay queued in the kernel.
        if self.has_failed() {
            return Ok(());
        }
        self.phase.set(Phase::Poll);
        log::trace!("phase poll (timeout {timeout:?})");
        let mut events = self
            .reactor
            .events
            .borrow_mut()
            .take()
            .expect("poll is not re-entrant");
        let span = trace::begin();
        let r = self.poll_retrying(&mut events, timeout);
        trace::end(span, "poll wait", "wait", None);
        self.update_now_ns();
        if let Err(e) = r {
            *self.reactor.events.borrow_mut() = Some(events);
            return Err(e);
        }
        // Dispatch the whole batch even after a panic: readiness is
        // edge-triggered, so an undispatched event would be lost for good.
        for event in events.iter() {
            if event.token() == WAKER_TOKEN {
                self.take_remote();
                continue;
            }
            let (key, gen) = split(event.token());
            self.dispatch_io(key, gen, crate::reactor::Ready::from_mio(event), turn);
        }
        for (key, gen, ready) in crate::fault::extra_events(&self.reactor) {
            self.dispatch_io(key, gen, ready, turn);
        }
        *self.reactor.events.borrow_mut() = Some(events);
        Ok(())
    }

    /// Runs the callback of source `key` for one event.
    fn dispatch_io(&self, key: usize, gen: u32, ready: crate::reactor::Ready, turn: &mut Turn) {
        // A stale token (closed source, key perhaps reused) or a callback
        // already on the stack yields nothing.
        let Some(cb) = self.reactor.take_callback(key, gen) else {
            log::trace!("drop stale event for #{key} (gen {gen})");
            return;
        };
        log::trace!("dispatch io #{key} {ready:?}");
        let label = if trace::is_enabled() {
            self.reactor.kind(key)
        } else {
            "io"
        };
        let mut ok = self.call(label, || crate::reactor::call(&cb, ready));
        turn.io += 1;
        if let Some(garbage) = self.reactor.restore_callback(key, gen, cb) {
            ok &= self.call("io", move || drop(garbage));
        }
        self.checkpoint_after(ok, turn);
    }

    /// `Poll::poll`, retried on `EINTR` with the *remaining* timeout.
    fn poll_retrying(&self, events: &mut mio::Events, timeout: Option<Duration>) -> io::Result<()> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut timeout = crate::fault::poll_timeout(timeout);
        loop {
            let injected = crate::fault::check(crate::fault::Op::Poll);
            match injected.and_then(|()| self.reactor.poll.borrow_mut().poll(events, timeout)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                }
                r => return r,
            }
        }
    }

    fn run_check(&self, turn: &mut Turn) {
        self.phase.set(Phase::Check);
        // Queues left by a panic (taken by the uncaught handler) drain
        // here at the latest, before the first immediate, as in Node. A
        // no-op otherwise: every callback is followed by a checkpoint.
        self.checkpoint(turn);
        // Check watchers, then the immediates (Node's own check handle is
        // the oldest, and libuv runs the newest first).
        self.run_watchers(Kind::Check, turn);
        // Only immediates queued before this phase began run now.
        let end = self.immediates.borrow().snapshot();
        log::trace!("phase check ({} queued)", self.immediates.borrow().live());
        while !self.has_failed() {
            let Some(cb) = self.immediates.borrow_mut().pop_before(end) else {
                break;
            };
            log::trace!("dispatch immediate");
            let ok = self.call("immediate", cb);
            turn.immediates += 1;
            self.checkpoint_after(ok, turn);
        }
    }

    fn run_closing(&self, turn: &mut Turn) {
        self.phase.set(Phase::Close);
        let n = self.closing.borrow().len();
        if n > 0 {
            log::trace!("phase close ({n} closing)");
        }
        for _ in 0..n {
            if self.has_failed() {
                break;
            }
            let Some(job) = self.closing.borrow_mut().pop_front() else {
                break;
            };
            let ok = self.call("close", job);
            turn.closes += 1;
            self.checkpoint_after(ok, turn);
        }
    }
}
