//! Worker processes (Node's `child_process.fork`): the same program,
//! re-run to serve a named entry point, with an IPC [`Channel`] to it.
//!
//! The parent starts the current executable again with two environment
//! variables: `EVLOOP_WORKER` (the entry's name) and `EVLOOP_IPC_FD` (the
//! fd number of its end of a Unix socket pair, the one fd it inherits).
//! The program's `main` checks [`worker_entry`] first and, in a worker,
//! runs that entry on its own loop, talking to the parent through
//! [`parent_channel`]:
//!
//! ```no_run
//! use evloop::process::{parent_channel, worker_entry, Worker};
//!
//! fn main() {
//!     if worker_entry().as_deref() == Some("double") {
//!         // The worker: answer each message, end when the parent goes.
//!         evloop::run(|| {
//!             let parent = parent_channel().unwrap();
//!             let p = parent.clone();
//!             parent.on_message(move |msg| {
//!                 let n: u64 = std::str::from_utf8(msg).unwrap().parse().unwrap();
//!                 p.send((2 * n).to_string().as_bytes()).unwrap();
//!             });
//!         })
//!         .unwrap();
//!         return;
//!     }
//!     // The parent.
//!     evloop::run(|| {
//!         let worker = Worker::spawn("double").unwrap();
//!         let w = worker.clone();
//!         worker.on_message(move |msg| {
//!             println!("2 * 21 = {}", String::from_utf8_lossy(msg));
//!             w.channel().close();
//!         });
//!         worker.send(b"21").unwrap();
//!         worker.child().on_exit(|status| println!("worker ended: {status:?}"));
//!     })
//!     .unwrap();
//! }
//! ```
//!
//! A worker that panics or is killed is reported through
//! [`Child::on_exit`] and its channel closing; nothing else in the parent
//! is touched.

use std::io;
use std::os::fd::AsRawFd;

use crate::listeners::Listener;
use crate::net::Stream;

use super::ipc::Channel;
use super::{Child, Command};

/// The environment variable naming a worker's entry point.
pub const WORKER_ENV: &str = "EVLOOP_WORKER";
/// The environment variable holding a worker's IPC fd number.
pub const IPC_FD_ENV: &str = "EVLOOP_IPC_FD";

/// A worker process and the channel to it.
///
/// The program re-runs itself: `main` serves the entry in a worker, and
/// starts the worker otherwise (this example runs as a test, as both):
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use evloop::process::{parent_channel, worker_entry, Worker};
///
/// fn main() {
///     if worker_entry().as_deref() == Some("upper") {
///         evloop::run(|| {
///             let parent = parent_channel().unwrap();
///             let p = parent.clone();
///             parent.on_message(move |msg| {
///                 p.send(&msg.to_ascii_uppercase()).unwrap();
///             });
///         })
///         .unwrap();
///         return; // the parent closed the channel
///     }
///     let reply = Rc::new(RefCell::new(Vec::new()));
///     let r = reply.clone();
///     evloop::run(move || {
///         let worker = Worker::spawn("upper").unwrap();
///         let w = worker.clone();
///         worker.on_message(move |msg| {
///             r.borrow_mut().extend_from_slice(msg);
///             w.channel().close(); // the worker's loop then ends
///         });
///         worker.send(b"hello").unwrap();
///         worker.child().on_exit(|status| assert!(status.unwrap().success()));
///     })
///     .unwrap();
///     assert_eq!(*reply.borrow(), b"HELLO");
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Worker {
    child: Child,
    channel: Channel,
}

impl Worker {
    /// Starts the current executable as a worker serving `entry`; see
    /// [`Worker`] for an example.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn spawn(entry: &str) -> io::Result<Worker> {
        let exe = std::env::current_exe()?;
        Worker::spawn_with(entry, &mut Command::new(exe))
    }

    /// Starts `cmd` (args, env, cwd and stdio as set there) as a worker
    /// serving `entry`. A failure to start is returned here.
    ///
    /// # Panics
    /// If no event loop is current on this thread.
    pub fn spawn_with(entry: &str, cmd: &mut Command) -> io::Result<Worker> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let fd = theirs.as_raw_fd();
        cmd.env(WORKER_ENV, entry)
            .env(IPC_FD_ENV, fd.to_string())
            .pass_fd(fd);
        let child = cmd.spawn();
        // Our copy of their end: the child has its own now.
        drop(theirs);
        let child = child?;
        ours.set_nonblocking(true)?;
        let stream = Stream::register(Box::new(mio::net::UnixStream::from_std(ours)), false)?;
        log::debug!("worker {entry:?} started as pid {:?}", child.pid());
        Ok(Worker {
            child,
            channel: Channel::new(stream),
        })
    }

    /// The process (pid, exit, kill).
    pub fn child(&self) -> &Child {
        &self.child
    }

    /// The IPC channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Sends a message; see [`Channel::send`].
    pub fn send(&self, msg: &[u8]) -> io::Result<bool> {
        self.channel.send(msg)
    }

    /// Adds a listener called with each message from the worker; returns
    /// the [`Listener`] that removes it. See [`Channel::on_message`].
    pub fn on_message(&self, cb: impl FnMut(&[u8]) + 'static) -> Listener {
        self.channel.on_message(cb)
    }

    /// Adds a listener called with the next message from the worker only;
    /// see [`Channel::once_message`].
    pub fn once_message(&self, cb: impl FnOnce(&[u8]) + 'static) -> Listener {
        self.channel.once_message(cb)
    }

    /// Lets the loop exit while the worker runs and its channel is open.
    pub fn unref(&self) -> &Self {
        self.child.unref();
        self.channel.unref();
        self
    }
}

/// In a worker process, the name of the entry point the parent asked for;
/// `None` in a process that is not a worker.
pub fn worker_entry() -> Option<String> {
    std::env::var(WORKER_ENV).ok()
}

/// In a worker process, the channel to the parent. It can be taken once;
/// the fd is made close-on-exec so the worker's own children do not
/// inherit it.
///
/// # Panics
/// If no event loop is current on this thread.
pub fn parent_channel() -> io::Result<Channel> {
    let owned = take_fd_from_env(IPC_FD_ENV, "a worker process")?;
    let sock = std::os::unix::net::UnixStream::from(owned);
    sock.set_nonblocking(true)?;
    let stream = Stream::register(Box::new(mio::net::UnixStream::from_std(sock)), false)?;
    Ok(Channel::new(stream))
}

/// Takes the inherited fd whose number the environment variable `var`
/// holds (see [`sys::take_inherited_fd`](crate::sys::take_inherited_fd));
/// `NotFound` when it is not set, as in a process that is not `what`.
pub(crate) fn take_fd_from_env(var: &str, what: &str) -> io::Result<std::os::fd::OwnedFd> {
    let fd: i32 = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("not {what} ({var} is not set)"),
            )
        })?;
    crate::sys::take_inherited_fd(fd)
}
