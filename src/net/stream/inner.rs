//! The stream's state machine, on the loop thread: readiness, connecting,
//! reading (with the read-ahead before a data listener is added), the write
//! queue and its flush, half-close, and destroying. The public [`Stream`]
//! methods in `mod.rs` call into it.

use super::*;

impl StreamInner {
    #[inline]
    pub(super) fn ready(self: &Rc<Self>, ready: Ready) {
        if ready.is_readable() || ready.is_read_closed() || ready.is_error() {
            let mut st = self.st.borrow_mut();
            st.readable = true;
            // Sticky: the FIN (or error) was already signalled, so no later
            // edge will announce it.
            st.peer_closed |= ready.is_read_closed() || ready.is_error();
        }
        if self.st.borrow().connecting {
            self.finish_connect();
            return;
        }
        // Most writable edges find nothing queued (epoll reports writable
        // with every readable event): skip the flush then.
        if (ready.is_writable() || ready.is_write_closed() || ready.is_error())
            && self.has_flush_work()
        {
            self.flush();
        }
        self.do_read();
    }

    /// Whether [`flush`](Self::flush) has anything to do: queued bytes, or
    /// an `end` waiting to shut the write side down.
    pub(super) fn has_flush_work(&self) -> bool {
        let st = self.st.borrow();
        !st.queue_is_empty()
            || st.need_drain
            || (st.end_requested && !st.write_closed && !st.destroyed)
    }

    pub(super) fn finish_connect(self: &Rc<Self>) {
        let status = {
            let io = self.io.borrow();
            let Some(io) = io.open() else { return };
            match io.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                Ok(None) => io.is_connected(),
            }
        };
        match status {
            Ok(false) => {} // spurious: still connecting
            Ok(true) => {
                log::debug!("stream connected");
                self.st.borrow_mut().connecting = false;
                let cb = self.cbs.connect.take().map(|cb| *cb);
                if let Some(cb) = cb {
                    cb(Ok(Stream {
                        inner: self.clone(),
                    }));
                    self.lp.checkpoint_now();
                }
                // Writes queued before the connect finished go out now.
                self.flush();
                self.do_read();
            }
            Err(e) => {
                log::debug!("connect failed: {e}");
                let cb = self.cbs.connect.take().map(|cb| *cb);
                self.destroy_quietly();
                if let Some(cb) = cb {
                    cb(Err(e));
                }
            }
        }
    }

    pub(super) fn schedule_read(self: &Rc<Self>) {
        self.schedule_read_in(false);
    }

    /// Reads in the pending phase: of this iteration, or with `next_turn`
    /// of the next one, after a poll has served the other sources.
    fn schedule_read_in(self: &Rc<Self>, next_turn: bool) {
        {
            let mut st = self.st.borrow_mut();
            if st.read_scheduled || st.destroyed {
                return;
            }
            st.read_scheduled = true;
        }
        let me = self.clone();
        let job: crate::microtasks::Job = Box::new(move || {
            me.st.borrow_mut().read_scheduled = false;
            me.do_read();
        });
        if next_turn {
            self.lp.defer_next_turn(job);
        } else {
            self.lp.defer_pending(job);
        }
    }

    pub(super) fn has_data_cb(&self) -> bool {
        !self.cbs.data.is_empty()
    }

    pub(super) fn can_read(&self) -> bool {
        let st = self.st.borrow();
        st.readable
            && !st.paused
            && !st.read_eof
            && !st.destroyed
            && !st.connecting
            // Without a data listener, read ahead into the buffer up to its
            // limit, as a Node socket does before a 'data' listener exists.
            && (st.early_len() < EARLY_LIMIT || self.has_data_cb())
    }

    pub(super) fn do_read(self: &Rc<Self>) {
        if self.deliver_early() {
            return;
        }
        let batch = self.st.borrow().read_batch;
        for _ in 0..batch {
            if !self.can_read() {
                return;
            }
            let r = BUF.with(|buf| {
                // A nested read (impossible by construction) would get a
                // temporary buffer instead of a borrow panic.
                match buf.try_borrow_mut() {
                    Ok(mut buf) => self.read_once(&mut buf),
                    Err(_) => self.read_once(&mut vec![0; READ_BUF]),
                }
            });
            if !r {
                return;
            }
        }
        // Still readable after a full batch: the rest waits for the next
        // iteration, after a poll has served every other source (libuv
        // reads at most 32 times per event, too).
        if self.can_read() {
            self.schedule_read_in(true);
        }
    }

    /// Hands bytes read before `on_data` existed to the new callback, and a
    /// deferred EOF after them. Returns true if the stream should stop
    /// reading for now (paused, closed or ended).
    pub(super) fn deliver_early(self: &Rc<Self>) -> bool {
        {
            // The common case, checked with one borrow: nothing read ahead,
            // not paused, no end waiting.
            let st = self.st.borrow();
            let end_waiting = st.read_eof && !st.end_emitted;
            if st.early_len() == 0 && !st.paused && !end_waiting {
                return false;
            }
        }
        let (early, paused) = {
            let mut st = self.st.borrow_mut();
            if st.early_len() == 0 || st.paused || !self.has_data_cb() {
                (Vec::new(), st.paused)
            } else {
                let early = std::mem::take(&mut st.cold().early);
                st.trim_cold();
                (early, false)
            }
        };
        if paused {
            return true;
        }
        if !early.is_empty() {
            self.emit_data(&early);
        }
        let eof_waiting = {
            let st = self.st.borrow();
            st.read_eof && !st.end_emitted && st.early_len() == 0 && !st.paused
        };
        if eof_waiting {
            self.emit_end();
            return true;
        }
        false
    }

    pub(super) fn emit_data(&self, bytes: &[u8]) {
        self.cbs.data.emit(&self.cbs.c, |cb| cb(bytes));
        self.lp.checkpoint_now();
    }

    /// One read; returns whether to keep reading.
    pub(super) fn read_once(self: &Rc<Self>, buf: &mut [u8]) -> bool {
        // Without a data listener, read no further than the read-ahead
        // limit.
        // No user code runs between here and the delivery below, so whether
        // there is a data listener is read once.
        let has_cb = self.has_data_cb();
        let len = if has_cb {
            buf.len()
        } else {
            let room = EARLY_LIMIT.saturating_sub(self.st.borrow().early_len());
            room.clamp(1, buf.len())
        };
        let r = {
            let io = self.io.borrow();
            match io.open() {
                Some(io) => io.read_some(&mut buf[..len]),
                None => return false,
            }
        };
        match r {
            Ok(0) => {
                log::trace!("stream EOF");
                self.st.borrow_mut().read_eof = true;
                // With bytes still waiting for a data listener, 'end' waits
                // for them (Node emits 'end' only after the data).
                if self.st.borrow().early_len() == 0 {
                    self.emit_end();
                }
                false
            }
            Ok(n) => {
                // A short read drained the socket's receive queue: data that
                // arrives later raises a new edge, so skip the read that
                // would only say WouldBlock (tokio does the same). Saves a
                // syscall per request on a request/response connection.
                // Not after the peer's FIN was signalled: that edge is spent,
                // and the read that returns 0 must still happen. Not on a
                // terminal either: it returns one line per read, and the
                // lines after it raise no new edge.
                let drained = {
                    let mut st = self.st.borrow_mut();
                    let drained = n < len && st.short_read_drains && !st.peer_closed;
                    if drained {
                        st.readable = false;
                    }
                    drained
                };
                if has_cb {
                    self.emit_data(&buf[..n]);
                } else {
                    self.st
                        .borrow_mut()
                        .cold()
                        .early
                        .extend_from_slice(&buf[..n]);
                }
                !drained
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.st.borrow_mut().readable = false;
                false
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(e) => {
                self.destroy(Some(e));
                false
            }
        }
    }

    pub(super) fn emit_end(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.end_emitted || st.destroyed {
                return;
            }
            st.end_emitted = true;
        }
        call_unit(&self.cbs.end, &self.cbs.c);
        self.lp.checkpoint_now();
        if !self.st.borrow().allow_half_open {
            self.end();
        }
        self.maybe_close();
    }

    pub(super) fn write(self: &Rc<Self>, data: &[u8], cb: Option<WriteCb>) -> bool {
        let (refused, direct) = {
            let st = self.st.borrow();
            (
                st.destroyed || st.end_requested,
                st.queue_is_empty() && !st.connecting,
            )
        };
        if refused {
            let e = io::Error::new(ErrorKind::BrokenPipe, "write after end or close");
            self.complete(cb, Err(e));
            return false;
        }
        let mut off = 0;
        if direct {
            let mut failed = None;
            {
                let io = self.io.borrow();
                let io = io.open().expect("an open stream has its fd");
                while off < data.len() {
                    match io.write_some(&data[off..]) {
                        Ok(n) => off += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            if let Some(e) = failed {
                // This write's callback fails with the error's kind; the
                // error itself reaches on_error, then on_close (both later,
                // in the close phase, as in Node).
                self.complete(cb, Err(io::Error::new(e.kind(), "write failed")));
                self.destroy(Some(e));
                return false;
            }
        }
        if off == data.len() {
            if cb.is_some() {
                self.complete(cb, Ok(()));
            }
            return true;
        }
        self.enqueue(&data[off..], cb)
    }

    /// [`write`](Self::write)'s slow path: queues what the kernel did not
    /// take. Kept apart so that the common path (all written at once)
    /// stays small.
    #[inline(never)]
    fn enqueue(self: &Rc<Self>, rest: &[u8], cb: Option<WriteCb>) -> bool {
        let mut st = self.st.borrow_mut();
        let data = rest;
        let rest = data.len();
        let cold = st.cold();
        if let Some(max) = cold.max_write_queue {
            if cold.queued_bytes + rest > max {
                let msg = format!("write queue over its cap of {max} bytes");
                drop(st);
                let e = || io::Error::new(ErrorKind::OutOfMemory, msg.clone());
                self.complete(cb, Err(e()));
                self.destroy(Some(e()));
                return false;
            }
        }
        cold.queue.push_back(WriteReq {
            data: data.to_vec(),
            off: 0,
            cb,
        });
        cold.queued_bytes += rest;
        if cold.queued_bytes >= cold.high_water_mark {
            st.need_drain = true;
            false
        } else {
            true
        }
    }

    /// Writes queued data while the kernel takes it.
    pub(super) fn flush(self: &Rc<Self>) {
        let mut done: Vec<WriteCb> = Vec::new();
        let mut failed = None;
        {
            let io = self.io.borrow();
            let Some(io) = io.open() else { return };
            let mut st = self.st.borrow_mut();
            let mut empty = Cold::default();
            let cold = st.cold.as_deref_mut().unwrap_or(&mut empty);
            while let Some(req) = cold.queue.front_mut() {
                match io.write_some(&req.data[req.off..]) {
                    Ok(n) => {
                        req.off += n;
                        let finished = req.off == req.data.len();
                        cold.queued_bytes -= n;
                        if finished {
                            let req = cold.queue.pop_front().expect("front exists");
                            done.extend(req.cb);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if cold.queue.is_empty() {
                st.trim_cold();
            }
        }
        self.flush_done(done, failed);
    }

    /// The end of a [`flush`](Self::flush): the finished writes' callbacks,
    /// then the error, or `drain` and the pending shutdown once the queue
    /// is empty.
    fn flush_done(self: &Rc<Self>, done: Vec<WriteCb>, failed: Option<io::Error>) {
        for cb in done {
            self.complete(Some(cb), Ok(()));
        }
        if let Some(e) = failed {
            self.destroy(Some(e));
            return;
        }
        let (drain, shutdown) = {
            let mut st = self.st.borrow_mut();
            if !st.queue_is_empty() || st.destroyed {
                return;
            }
            let drain = std::mem::take(&mut st.need_drain);
            let shutdown = st.end_requested && !st.write_closed;
            (drain, shutdown)
        };
        if drain {
            call_unit(&self.cbs.drain, &self.cbs.c);
            self.lp.checkpoint_now();
        }
        if shutdown {
            self.shutdown_now();
        }
    }

    pub(super) fn end(self: &Rc<Self>) {
        let flush_now = {
            let mut st = self.st.borrow_mut();
            if st.end_requested || st.destroyed {
                return;
            }
            st.end_requested = true;
            st.queue_is_empty() && !st.connecting
        };
        if flush_now {
            self.shutdown_now();
        }
    }

    pub(super) fn shutdown_now(self: &Rc<Self>) {
        let r = {
            let io = self.io.borrow();
            match io.open() {
                Some(io) => io.shutdown_write(),
                None => return,
            }
        };
        self.st.borrow_mut().write_closed = true;
        match r {
            // The peer may be gone already; closing is what we wanted.
            Ok(()) | Err(_) => self.maybe_close(),
        }
    }

    pub(super) fn maybe_close(self: &Rc<Self>) {
        let done = {
            let st = self.st.borrow();
            st.end_emitted && st.write_closed && !st.destroyed
        };
        if done {
            self.destroy(None);
        }
    }

    /// Closes without reporting anything (a failed connect reports through
    /// its connect callback instead).
    pub(super) fn destroy_quietly(self: &Rc<Self>) {
        {
            let mut st = self.st.borrow_mut();
            if st.destroyed {
                return;
            }
            st.destroyed = true;
        }
        self.release_signal();
        self.watch.close();
        let io = self.io.borrow_mut().take();
        drop(io);
        let me = self.clone();
        self.lp.defer_close(Box::new(move || me.drop_callbacks()));
    }

    pub(super) fn destroy(self: &Rc<Self>, err: Option<io::Error>) {
        let queued = {
            let mut st = self.st.borrow_mut();
            if st.destroyed {
                return;
            }
            st.destroyed = true;
            // The read-ahead and the queue go; the limits no longer matter.
            st.cold.take().map(|c| c.queue).unwrap_or_default()
        };
        log::debug!(
            "stream closes{}",
            if err.is_some() { " on error" } else { "" }
        );
        self.release_signal();
        // Deregister before closing the fd (the watch contract).
        self.watch.close();
        let io = self.io.borrow_mut().take();
        let emitter = io.as_ref().map_or("stream", |io| io.kind());
        drop(io);
        let me = self.clone();
        self.lp.defer_close(Box::new(move || {
            // Completed writes first, in order, then the failed ones.
            me.run_done();
            let kind = err.as_ref().map_or(ErrorKind::BrokenPipe, io::Error::kind);
            for req in queued {
                if let Some(cb) = req.cb {
                    cb(Err(io::Error::new(
                        kind,
                        "stream closed before the write finished",
                    )));
                }
            }
            let had_error = err.is_some();
            if let Some(e) = err {
                if let Err(e) = call_error(&me.cbs, e) {
                    // Node's 'error' with no listener: an uncaught error,
                    // unless an abort closed the stream (Node does not
                    // report a socket destroyed by its signal either).
                    if crate::abort::is_abort_error(&e) {
                        log::debug!("stream aborted, no error listener: {e}");
                    } else {
                        me.lp
                            .report_uncaught(crate::Error::UnhandledError { emitter, error: e });
                    }
                }
            }
            // From here on, its events are over: a listener added (even
            // by a close listener) is not kept.
            me.st.borrow_mut().released = true;
            me.cbs.close.emit(&me.cbs.c, |cb| cb(had_error));
            me.drop_callbacks();
        }));
    }

    /// Closing: the signal the stream was bound to no longer concerns it.
    fn release_signal(&self) {
        let bound = self.with_extra(|x| x.signal.take());
        if let Some((signal, listener)) = bound {
            listener.remove();
            drop(signal);
        }
    }

    /// Queues a write callback: write callbacks always run later (in the
    /// pending phase, as libuv's do) and in the order the writes were made,
    /// whether the kernel took the data at once or from the queue.
    #[inline(never)]
    pub(super) fn complete(self: &Rc<Self>, cb: Option<WriteCb>, r: io::Result<()>) {
        let Some(cb) = cb else { return };
        self.with_extra(|x| x.done.push_back((cb, r)));
        let scheduled = std::mem::replace(&mut self.st.borrow_mut().done_scheduled, true);
        if !scheduled {
            let me = self.clone();
            self.lp.defer_pending(Box::new(move || me.run_done()));
        }
    }

    pub(super) fn run_done(&self) {
        self.st.borrow_mut().done_scheduled = false;
        loop {
            // Back in its cell before the call: a write the callback
            // makes queues behind.
            let next = self.with_extra(|x| x.done.pop_front());
            let Some((cb, r)) = next else { break };
            cb(r);
            self.lp.checkpoint_now();
        }
    }

    /// After close: drop every callback (they often hold clones of this
    /// stream: the cycle ends here). Dropped outside any borrow.
    pub(super) fn drop_callbacks(&self) {
        self.st.borrow_mut().released = true;
        self.cbs.data.clear(&self.cbs.c);
        self.cbs.end.clear(&self.cbs.c);
        self.cbs.drain.clear(&self.cbs.c);
        self.cbs.error.clear(&self.cbs.c);
        self.cbs.close.clear(&self.cbs.c);
        let connect = self.cbs.connect.take();
        drop(connect);
    }
}
