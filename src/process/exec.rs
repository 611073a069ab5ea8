//! Run a command to the end and collect its output (Node's
//! `child_process.execFile`), in callback and promise form.

use std::cell::{Cell, RefCell};
use std::io;
use std::process::{ExitStatus, Output};
use std::rc::Rc;

use super::{Command, Signal, Stdio};

/// Runs `cmd` to the end and collects its stdout and stderr (Node's
/// `child_process.execFile`): `cb` gets the `Output`, whatever the exit
/// code (check `output.status`), or an error if the child could not start
/// or wrote more than [`max_output`](Command::max_output) bytes to either
/// stream (it is then killed with `SIGTERM`).
///
/// Stdout and stderr are always piped; stdin is `/dev/null` unless set.
///
/// To make it abortable, give the command a signal
/// ([`Command::signal`]): on abort the child is killed with `SIGTERM` and
/// `cb` gets the [`AbortError`](crate::abort::AbortError) once it is gone;
/// if the signal has already aborted, nothing starts and `cb` gets the
/// error from the next pending phase.
///
/// ```
/// use evloop::process::{exec, Command};
/// evloop::run(|| {
///     exec(Command::new("printf").arg("a b"), |out| {
///         let out = out.unwrap();
///         assert!(out.status.success());
///         assert_eq!(out.stdout, b"a b");
///     });
/// })
/// .unwrap();
/// ```
///
/// # Panics
/// If no event loop is current on this thread.
pub fn exec(cmd: &mut Command, cb: impl FnOnce(io::Result<Output>) + 'static) {
    if cmd.stdio[0].is_none() {
        cmd.stdin(Stdio::Null);
    }
    cmd.stdout(Stdio::Piped).stderr(Stdio::Piped);
    let limit = cmd.max_output;
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            // Node's exec calls back with the spawn error, never at once.
            crate::event_loop::LoopRef::current().defer_pending(Box::new(move || cb(Err(e))));
            return;
        }
    };
    let job = Rc::new(Collect {
        out: RefCell::default(),
        err: RefCell::default(),
        status: Cell::new(None),
        error: RefCell::new(None),
        waiting: Cell::new(1),
        cb: RefCell::new(Some(Box::new(cb))),
    });
    for (stream, which) in [(&child.stdout, 1), (&child.stderr, 2)] {
        let Some(stream) = stream else { continue };
        job.waiting.set(job.waiting.get() + 1);
        let (j, me, c) = (job.clone(), stream.clone(), child.clone());
        stream.on_data(move |bytes| {
            let mut buf = if which == 1 { &j.out } else { &j.err }.borrow_mut();
            if buf.len() + bytes.len() > limit {
                let name = if which == 1 { "stdout" } else { "stderr" };
                j.fail(io::Error::other(format!(
                    "{name} exceeded max_output ({limit} bytes)"
                )));
                let _ = c.kill(Signal::SIGTERM);
                me.destroy();
                return;
            }
            buf.extend_from_slice(bytes);
        });
        // A read error fails the whole exec (never a truncated `Ok`).
        let j = job.clone();
        stream.on_error(move |e| j.fail(e));
        let j = job.clone();
        stream.on_close(move |_| j.one_done());
    }
    let j = job.clone();
    child.on_exit(move |r| {
        match r {
            Ok(status) => j.status.set(Some(status)),
            Err(e) => j.fail(e),
        }
        j.one_done();
    });
}

/// What [`exec`] gathers until stdout, stderr and the exit are all in.
struct Collect {
    out: RefCell<Vec<u8>>,
    err: RefCell<Vec<u8>>,
    status: Cell<Option<ExitStatus>>,
    error: RefCell<Option<io::Error>>,
    waiting: Cell<u32>,
    #[allow(clippy::type_complexity)]
    cb: RefCell<Option<Box<dyn FnOnce(io::Result<Output>)>>>,
}

impl Collect {
    fn fail(&self, e: io::Error) {
        let mut slot = self.error.borrow_mut();
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn one_done(&self) {
        self.waiting.set(self.waiting.get() - 1);
        if self.waiting.get() > 0 {
            return;
        }
        let Some(cb) = self.cb.borrow_mut().take() else {
            return;
        };
        let error = self.error.borrow_mut().take();
        let r = match (error, self.status.get()) {
            (Some(e), _) => Err(e),
            (None, Some(status)) => Ok(Output {
                status,
                stdout: self.out.take(),
                stderr: self.err.take(),
            }),
            (None, None) => Err(io::Error::other("no exit status")),
        };
        cb(r);
    }
}
