//! Beyond one thread: child processes, signals, worker processes with an
//! IPC channel, and a cluster of workers sharing a port, all on the loop
//! (Node's `child_process`, `process.on('SIGINT')` and `cluster`).
//!
//! - [`Command::spawn`] starts a [`Child`] whose piped stdio are ordinary
//!   [`Stream`](crate::net::Stream)s; its exit arrives through
//!   [`Child::on_exit`], [`Child::wait`] (a promise) or `child.wait().await`.
//!   [`exec`] / [`promises::exec`] run a command and collect its output.
//! - [`on_signal`] runs a callback on the loop thread when the process gets
//!   a signal ([`once_signal`] is the promise form); see [`signal`] for how
//!   a signal reaches the loop.
//! - [`Worker::spawn`] re-runs the current program as a worker serving a
//!   named entry point, with an IPC [`Channel`] (length-prefixed messages
//!   over a Unix socket pair) on both sides; see [`worker`].
//! - [`Cluster::start`] runs N workers serving one TCP port, restarts the
//!   ones that die and stops them all on `SIGTERM`; see [`cluster`].
//!
//! Unix only, as the rest of the crate.

pub mod child;
pub mod cluster;
mod exec;
pub mod ipc;
pub mod promises;
pub mod signal;
pub mod worker;

pub use child::{exit_signal, Child, Command, Stdio, DEFAULT_MAX_OUTPUT};
pub use cluster::{Cluster, ClusterEvent, ClusterWorker};
pub use exec::exec;
pub use ipc::{Channel, DEFAULT_MAX_MESSAGE};
pub use signal::{kill, on_signal, once_signal, once_signal_with_signal, Signal, SignalHandle};
pub use worker::{parent_channel, worker_entry, Worker};
