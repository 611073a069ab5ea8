//! Child processes: spawn with inherited, ignored or piped stdio; exit
//! status through a callback, a promise or `.await`; kill; reaping.
//!
//! Spawning is `std::process::Command`'s (fork/exec or posix_spawn, with
//! every fd but 0, 1 and 2 close-on-exec, as std opens all of its fds). What
//! the loop adds is waiting without blocking: on `SIGCHLD` (see
//! [`signal`](super::signal)) the loop asks each of its own children,
//! by pid, whether it has exited (`waitpid(pid, WNOHANG)`, never
//! `waitpid(-1)`, which would steal other code's children). A child is
//! reaped even when every handle to it was dropped; children still running
//! when the loop is dropped are handed to a thread that waits for them, so
//! none is left a zombie.

use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::Path;
use std::process::ExitStatus;
use std::rc::{Rc, Weak};

use crate::abort::{AbortError, AbortListener, AbortSignal};
use crate::event_loop::LoopRef;
use crate::listeners::{Listener, Listeners, RemoveListener};
use crate::net::{PipeReader, PipeWriter, Stream};
use crate::promise::{promisify, Promise, Rejection};

use super::signal::{Signal, SignalReceiver};

/// What a child's standard input, output or error is connected to.
///
/// Non-exhaustive: more kinds may come (Node also offers an IPC channel or
/// an existing stream or fd).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stdio {
    /// The parent's own (std's default, and this crate's).
    Inherit,
    /// `/dev/null`.
    Null,
    /// A pipe to the parent, which gets it as a [`Stream`] on the [`Child`].
    Piped,
}

impl From<Stdio> for std::process::Stdio {
    fn from(s: Stdio) -> Self {
        match s {
            Stdio::Inherit => std::process::Stdio::inherit(),
            Stdio::Null => std::process::Stdio::null(),
            Stdio::Piped => std::process::Stdio::piped(),
        }
    }
}

/// The most bytes [`exec`](super::exec) collects from each of stdout and stderr unless
/// told otherwise (Node's `maxBuffer`).
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;

/// A process to start: program, arguments, environment, working directory
/// and stdio, as `std::process::Command` (which it wraps), started on the
/// loop by [`spawn`](Command::spawn) or [`exec`](super::exec).
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use evloop::process::{exec, Command, Stdio};
///
/// let out = Rc::new(RefCell::new(String::new()));
/// let o = out.clone();
/// evloop::run(move || {
///     // Collect the output (`exec`), here of `sh -c` with an argument and a variable.
///     let mut cmd = Command::new("sh");
///     cmd.args(["-c", "echo \"$GREETING, $0\"", "loop"]).env("GREETING", "hello");
///     exec(&mut cmd, move |r| {
///         let output = r.unwrap();
///         assert!(output.status.success());
///         *o.borrow_mut() = String::from_utf8(output.stdout).unwrap();
///     });
///
///     // Or stream it: `spawn` with piped stdio, each pipe a `Stream`.
///     let child = Command::new("cat").stdin(Stdio::Piped).stdout(Stdio::Piped).spawn().unwrap();
///     let stdin = child.stdin.clone().unwrap();
///     stdin.write(b"ping");
///     stdin.end();
///     child.stdout.as_ref().unwrap().on_data(|bytes| assert_eq!(bytes, b"ping"));
///     child.on_exit(|status| assert!(status.unwrap().success()));
/// })
/// .unwrap();
/// assert_eq!(*out.borrow(), "hello, loop\n");
/// ```
pub struct Command {
    std: std::process::Command,
    program: String,
    pub(crate) stdio: [Option<Stdio>; 3],
    pub(crate) max_output: usize,
    /// Fds the child inherits (a worker's IPC socket, a cluster's listening
    /// socket): close-on-exec is cleared in the child only.
    pass_fds: Vec<RawFd>,
    /// The SIGXFSZ reset is installed (once, however often we spawn).
    sigxfsz_reset: bool,
    /// Kills the child when it aborts (see [`Command::signal`]).
    signal: Option<AbortSignal>,
}

impl Command {
    /// A command running `program` (looked up in `PATH` if it has no `/`).
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        let mut std = std::process::Command::new(program.as_ref());
        // A worker's markers are for the worker only, not its children.
        std.env_remove(super::worker::WORKER_ENV)
            .env_remove(super::worker::IPC_FD_ENV);
        Command {
            std,
            program: program.as_ref().to_string_lossy().into_owned(),
            stdio: [None; 3],
            max_output: DEFAULT_MAX_OUTPUT,
            pass_fds: Vec::new(),
            sigxfsz_reset: false,
            signal: None,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, value);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what
    /// [`env`](Command::env) adds after).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// Where the child's standard input comes from (default: inherited;
    /// [`exec`](super::exec) defaults it to [`Stdio::Null`]).
    pub fn stdin(&mut self, s: Stdio) -> &mut Command {
        self.stdio[0] = Some(s);
        self
    }

    /// Where the child's standard output goes (default: inherited).
    pub fn stdout(&mut self, s: Stdio) -> &mut Command {
        self.stdio[1] = Some(s);
        self
    }

    /// Where the child's standard error goes (default: inherited).
    pub fn stderr(&mut self, s: Stdio) -> &mut Command {
        self.stdio[2] = Some(s);
        self
    }

    /// The most bytes [`exec`](super::exec) collects from each of stdout and stderr
    /// (default [`DEFAULT_MAX_OUTPUT`]); past it the child is killed with
    /// `SIGTERM` and `exec` fails.
    pub fn max_output(&mut self, bytes: usize) -> &mut Command {
        self.max_output = bytes;
        self
    }

    /// Binds the child to `signal` (Node's `signal` option of `spawn` and
    /// `execFile`, with the default `killSignal`): when it aborts, the
    /// child is sent `SIGTERM`, and once it has died and been reaped its
    /// [`on_exit`](Child::on_exit) callbacks, [`wait`](Child::wait)
    /// promise and [`exec`](super::exec) / [`promises::exec`](super::promises::exec)
    /// get the [`AbortError`] with the signal's reason
    /// ([`is_abort_error`](crate::abort::is_abort_error), or
    /// [`Rejection::is_aborted`](crate::promise::Rejection::is_aborted)),
    /// while [`Child::exit_status`] shows the real status (killed by
    /// `SIGTERM`). (Node emits `'error'` with the `AbortError` at the
    /// abort, then `'exit'`; here the one exit report carries the error,
    /// and comes when the child is gone, so nothing of it is left.)
    ///
    /// What an abort releases: the child process (killed, then reaped as
    /// any child is; it keeps the loop alive until it has died, and its
    /// pipes close with it). A child that ignores `SIGTERM` goes on
    /// running. If `signal` has already aborted, [`spawn`](Command::spawn)
    /// starts nothing and returns the `AbortError` (and `exec` calls back
    /// with it, asynchronously). Aborting after the child was reaped does
    /// nothing; the listener this adds to `signal` is removed then.
    ///
    /// ```
    /// use std::os::unix::process::ExitStatusExt;
    /// use evloop::abort::AbortController;
    /// use evloop::process::Command;
    ///
    /// evloop::run(|| {
    ///     let controller = AbortController::new();
    ///     let child = Command::new("sleep").arg("3600").signal(&controller.signal()).spawn();
    ///     let child = child.unwrap();
    ///     let c = child.clone();
    ///     child.on_exit(move |r| {
    ///         assert!(evloop::abort::is_abort_error(&r.unwrap_err()));
    ///         assert_eq!(c.exit_status().unwrap().signal(), Some(libc::SIGTERM));
    ///     });
    ///     controller.abort(None);
    /// })
    /// .unwrap();
    /// ```
    pub fn signal(&mut self, signal: &AbortSignal) -> &mut Command {
        self.signal = Some(signal.clone());
        self
    }

    /// Lets the child inherit `fd` under the same number.
    pub(crate) fn pass_fd(&mut self, fd: RawFd) -> &mut Command {
        self.pass_fds.push(fd);
        self
    }

    /// The program's name, as given.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// Starts the child, or returns why it cannot start (a program that
    /// does not exist gives `NotFound`), as `std` and tokio do: a child that
    /// never started is an error at the call, not a `Child` without pipes.
    ///
    /// ```
    /// use evloop::process::{Command, Stdio};
    /// evloop::run(|| {
    ///     let child = Command::new("echo").arg("hi").stdout(Stdio::Piped).spawn();
    ///     let child = child.expect("echo starts");
    ///     let out = child.stdout.clone().unwrap();
    ///     out.on_data(|bytes| assert_eq!(bytes, b"hi\n"));
    ///     child.on_exit(|status| assert!(status.unwrap().success()));
    ///
    ///     let missing = Command::new("no-such-program").spawn();
    ///     assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    /// The error of `fork`/`exec` (with the program's name in its message
    /// for a missing program), or of setting up its pipes.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn spawn(&mut self) -> io::Result<Child> {
        if let Some(signal) = &self.signal {
            // Already aborted: start nothing.
            signal.throw_if_aborted()?;
        }
        self.try_spawn().map_err(|e| {
            log::debug!("spawn {}: {e}", self.program);
            io::Error::new(e.kind(), format!("spawn {}: {e}", self.program))
        })
    }

    fn try_spawn(&mut self) -> io::Result<Child> {
        let hub = SignalReceiver::current()?;
        // Listen before the child exists, so its exit cannot be missed.
        hub.children.watch(&hub)?;
        let [i, o, e] = self.stdio;
        self.std
            .stdin(i.unwrap_or(Stdio::Inherit))
            .stdout(o.unwrap_or(Stdio::Inherit))
            .stderr(e.unwrap_or(Stdio::Inherit));
        if !self.pass_fds.is_empty() {
            crate::sys::inherit_fds(&mut self.std, self.pass_fds.clone());
        }
        if !self.sigxfsz_reset {
            self.sigxfsz_reset = crate::sys::restore_sigxfsz_in_child(&mut self.std);
        }
        if let Some(vars) = crate::trace::child_env() {
            self.std.envs(vars);
        }
        crate::fault::check(crate::fault::Op::Spawn)?;
        let mut proc = self.std.spawn()?;
        let pid = proc.id();
        log::debug!("spawned {} as pid {pid}", self.program);
        crate::trace::instant(&format!("spawn {} (pid {pid})", self.program), "process");
        let pipes = (|| {
            let stdin = match proc.stdin.take() {
                Some(p) => Some(pipe_out(mio::unix::pipe::Sender::from(p), "child stdin")?),
                None => None,
            };
            let stdout = match proc.stdout.take() {
                Some(p) => Some(pipe_in(mio::unix::pipe::Receiver::from(p), "child stdout")?),
                None => None,
            };
            let stderr = match proc.stderr.take() {
                Some(p) => Some(pipe_in(mio::unix::pipe::Receiver::from(p), "child stderr")?),
                None => None,
            };
            io::Result::Ok((stdin, stdout, stderr))
        })();
        let (stdin, stdout, stderr) = match pipes {
            Ok(pipes) => pipes,
            Err(e) => {
                // The child runs, but we cannot talk to it: end it and reap
                // it here (it has just started), rather than leave it
                // running untracked.
                let _ = proc.kill();
                let _ = proc.wait();
                return Err(e);
            }
        };
        let inner = Rc::new(ChildInner {
            pid,
            proc: RefCell::new(Some(proc)),
            outcome: RefCell::new(None),
            listeners: Listeners::default(),
            refed: Cell::new(true),
            hub: Rc::downgrade(&hub),
            lp: LoopRef::current(),
            aborted: RefCell::new(None),
            abort_listener: Cell::new(None),
        });
        hub.add_ref();
        hub.children.list.borrow_mut().push(inner.clone());
        if let Some(signal) = &self.signal {
            let weak = Rc::downgrade(&inner);
            let listener = signal.on_abort_op(move |reason| {
                if let Some(inner) = weak.upgrade() {
                    inner.abort(reason);
                }
            });
            inner.abort_listener.set(Some(listener));
        }
        Ok(Child {
            inner,
            stdin,
            stdout,
            stderr,
        })
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("command", &self.std)
            .field("stdio", &self.stdio)
            .field("max_output", &self.max_output)
            .field("signal", &self.signal)
            .finish()
    }
}

fn pipe_out(tx: mio::unix::pipe::Sender, kind: &'static str) -> io::Result<Stream> {
    tx.set_nonblocking(true)?;
    let pipe = PipeWriter {
        tx,
        kind,
        restore_blocking: false,
    };
    Stream::register(Box::new(pipe), false)
}

fn pipe_in(rx: mio::unix::pipe::Receiver, kind: &'static str) -> io::Result<Stream> {
    rx.set_nonblocking(true)?;
    let pipe = PipeReader {
        rx,
        kind,
        restore_blocking: false,
    };
    Stream::register(Box::new(pipe), false)
}

#[derive(Clone)]
enum Outcome {
    Exited(ExitStatus),
    /// `io::Error` is not `Clone`: kept as kind and message, rebuilt for
    /// each listener.
    Failed(io::ErrorKind, String),
}

impl Outcome {
    fn to_result(&self) -> io::Result<ExitStatus> {
        match self {
            Outcome::Exited(s) => Ok(*s),
            Outcome::Failed(kind, msg) => Err(io::Error::new(*kind, msg.clone())),
        }
    }
}

pub(crate) struct ChildInner {
    pid: u32,
    /// std's handle, for `try_wait`; `None` once reaped.
    proc: RefCell<Option<std::process::Child>>,
    outcome: RefCell<Option<Outcome>>,
    listeners: Listeners<dyn FnMut(io::Result<ExitStatus>)>,
    /// Whether it is counted in the hub's refs (running and ref'd).
    refed: Cell<bool>,
    hub: Weak<SignalReceiver>,
    lp: LoopRef,
    /// The reason of the signal that killed it (see [`Command::signal`]).
    aborted: RefCell<Option<Rejection>>,
    /// Its listener on that signal, removed when the child is reaped.
    abort_listener: Cell<Option<AbortListener>>,
}

impl ChildInner {
    /// Reaps the child if it has exited.
    fn try_reap(&self) -> Option<Outcome> {
        let mut proc = self.proc.borrow_mut();
        let r = proc.as_mut()?.try_wait();
        let outcome = match r {
            Ok(Some(status)) => Outcome::Exited(status),
            Ok(None) => return None,
            // ECHILD: someone else reaped it (a `waitpid(-1)` elsewhere, or
            // SIGCHLD set to SIG_IGN); its status is lost.
            Err(e) => Outcome::Failed(e.kind(), format!("waitpid {}: {e}", self.pid)),
        };
        *proc = None;
        Some(outcome)
    }

    /// Its signal aborted: kill it, unless it has been reaped already.
    fn abort(&self, reason: &Rejection) {
        if self.proc.borrow().is_none() {
            return;
        }
        log::debug!("pid {} aborted: {reason}", self.pid);
        *self.aborted.borrow_mut() = Some(reason.clone());
        if let Err(e) = super::signal::kill(self.pid, Signal::SIGTERM) {
            log::debug!("kill pid {} on abort: {e}", self.pid);
        }
    }

    /// What its exit listeners get: the `AbortError` if its signal killed
    /// it, else how it ended.
    fn report(&self, outcome: &Outcome) -> io::Result<ExitStatus> {
        match &*self.aborted.borrow() {
            Some(reason) => Err(AbortError::new(reason.clone()).into()),
            None => outcome.to_result(),
        }
    }

    fn finish(&self, outcome: Outcome, hub: &SignalReceiver) {
        if let Some(l) = self.abort_listener.take() {
            l.remove();
        }
        log::debug!("pid {} ended: {}", self.pid, describe(&outcome));
        if crate::trace::is_enabled() {
            let what = format!("pid {} ended: {}", self.pid, describe(&outcome));
            crate::trace::instant(&what, "process");
        }
        *self.outcome.borrow_mut() = Some(outcome.clone());
        if self.refed.replace(false) {
            hub.release_ref();
        }
        self.listeners.emit(|cb| {
            cb(self.report(&outcome));
            self.lp.checkpoint_now();
        });
        self.listeners.clear();
    }
}

impl RemoveListener for ChildInner {
    fn remove_listener(&self, _event: u8, id: u32) -> bool {
        self.listeners.remove(id)
    }
}

impl Drop for ChildInner {
    fn drop(&mut self) {
        // The loop went first: a signal that outlives it keeps no listener.
        if let Some(l) = self.abort_listener.get_mut().take() {
            l.remove();
        }
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Exited(s) => s.to_string(),
        Outcome::Failed(_, m) => m.clone(),
    }
}

/// A loop's running children (inside its [`SignalReceiver`]).
#[derive(Default)]
pub(crate) struct Children {
    pub(crate) list: RefCell<Vec<Rc<ChildInner>>>,
    watching: Cell<bool>,
}

impl Children {
    /// Listens to `SIGCHLD` from the first child on.
    fn watch(&self, hub: &SignalReceiver) -> io::Result<()> {
        if !self.watching.get() {
            hub.listen(Signal::SIGCHLD)?;
            self.watching.set(true);
        }
        Ok(())
    }

    /// `SIGCHLD` arrived: reap every child of ours that has exited. (One
    /// `SIGCHLD` may stand for several exits: signals coalesce.)
    pub(crate) fn reap(&self, hub: &SignalReceiver) {
        let running: Vec<Rc<ChildInner>> = self.list.borrow().clone();
        for child in running {
            if let Some(outcome) = child.try_reap() {
                self.list.borrow_mut().retain(|c| !Rc::ptr_eq(c, &child));
                child.finish(outcome, hub);
            }
        }
    }

    /// The loop is going away: a thread waits for the children still
    /// running, so that none is left a zombie.
    pub(crate) fn hand_to_reaper(&self) {
        let procs: Vec<std::process::Child> = self
            .list
            .take()
            .into_iter()
            .filter_map(|c| c.proc.borrow_mut().take())
            .collect();
        if procs.is_empty() {
            return;
        }
        log::debug!(
            "{} children still running: a thread reaps them",
            procs.len()
        );
        let spawned = std::thread::Builder::new()
            .name("evloop-reaper".into())
            .spawn(move || {
                for mut p in procs {
                    let _ = p.wait();
                }
            });
        if let Err(e) = spawned {
            log::error!("cannot start the reaper thread: {e}");
        }
    }
}

/// A started child process (Node's `ChildProcess`).
///
/// Cloning gives another handle to the same child. The child is reaped when
/// it exits whether or not handles remain; while it runs it keeps the loop
/// alive unless [`unref`](Child::unref)'d.
#[derive(Clone)]
pub struct Child {
    inner: Rc<ChildInner>,
    /// Its standard input, when [`Stdio::Piped`]: write to it;
    /// [`end`](Stream::end) it to send end-of-file.
    pub stdin: Option<Stream>,
    /// Its standard output, when piped: set [`on_data`](Stream::on_data).
    pub stdout: Option<Stream>,
    /// Its standard error, when piped.
    pub stderr: Option<Stream>,
}

impl Child {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// Calls `cb` once with how the child ended: its `ExitStatus` (see
    /// `std::os::unix::process::ExitStatusExt::signal` for a signal that
    /// killed it, or [`exit_signal`]), the error that kept it from being
    /// reaped, or the [`AbortError`] if the signal given to
    /// [`Command::signal`] killed it (Node's `'exit'`). Adds a listener:
    /// several may be added, and run in the order they were added; returns
    /// the [`Listener`] that removes it. One added after the end is called
    /// from the next pending phase (and its handle is detached).
    pub fn on_exit(&self, cb: impl FnOnce(io::Result<ExitStatus>) + 'static) -> Listener {
        let done = self.inner.outcome.borrow().clone();
        match done {
            Some(outcome) => {
                let r = self.inner.report(&outcome);
                self.inner.lp.defer_pending(Box::new(move || cb(r)));
                Listener::detached()
            }
            None => {
                let id = self.inner.listeners.add_once(crate::listeners::once_fn(cb));
                let owner = Rc::downgrade(&self.inner);
                Listener::new(owner, 0, id)
            }
        }
    }

    /// A promise of the exit status (the promise form of
    /// [`on_exit`](Child::on_exit); `.await` it in a task).
    pub fn wait(&self) -> Promise<ExitStatus> {
        promisify(|done| {
            self.on_exit(done);
        })
    }

    /// The exit status, if the child has exited and been reaped.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        match &*self.inner.outcome.borrow() {
            Some(Outcome::Exited(s)) => Some(*s),
            _ => None,
        }
    }

    /// Sends `sig` to the child. Fails with `ESRCH` once it has been
    /// reaped (its pid may then belong to another process).
    pub fn kill(&self, sig: Signal) -> io::Result<()> {
        let running = self.inner.proc.borrow().is_some();
        match self.inner.pid {
            // Not yet reaped: even if it has exited, the pid is still ours
            // (a zombie's pid is not reused).
            pid if running => super::signal::kill(pid, sig),
            _ => Err(io::Error::from_raw_os_error(libc::ESRCH)),
        }
    }

    /// Lets the loop exit while the child runs.
    pub fn unref(&self) -> &Self {
        if self.inner.refed.replace(false) {
            if let Some(hub) = self.inner.hub.upgrade() {
                hub.release_ref();
            }
        }
        self
    }

    /// Makes a running child keep the loop alive again.
    pub fn ref_(&self) -> &Self {
        let running = self.inner.proc.borrow().is_some();
        if running && !self.inner.refed.replace(true) {
            if let Some(hub) = self.inner.hub.upgrade() {
                hub.add_ref();
            }
        }
        self
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("pid", &self.inner.pid)
            .field("exit_status", &self.exit_status())
            .finish()
    }
}

/// The signal that killed a process, if one did.
pub fn exit_signal(status: &ExitStatus) -> Option<Signal> {
    use std::os::unix::process::ExitStatusExt;
    status.signal().and_then(Signal::from_raw)
}
