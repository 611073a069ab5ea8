//! # evloop
//!
//! A hand-rolled, single-threaded event loop in the Node.js model, on
//! [`mio`]: the reactor polls sockets, pipes and terminals; timers,
//! immediates, `next_tick` and microtasks follow Node 20's phases exactly;
//! and everything is small enough to step through in a debugger.
//!
//! ```
//! use std::time::Duration;
//!
//! evloop::run(|| {
//!     println!("1: main script");
//!     evloop::set_timeout(Duration::from_millis(10), || println!("5: timeout"));
//!     evloop::set_immediate(|| println!("4: immediate"));
//!     evloop::queue_microtask(|| println!("3: microtask"));
//!     evloop::next_tick(|| println!("2: next_tick"));
//! })
//! .expect("no callback panicked");
//! ```
//!
//! ## One job, in each style
//!
//! Node's history went in three steps, and so does this crate:
//! callbacks came first (Node 0.x: `fs.readFile(path, cb)`), then promises
//! (ES2015, and `util.promisify` in Node 8), then `async`/`await` (Node
//! 7.6) over those promises. Each layer here is built on the one before,
//! on the same loop.
//!
//! Read a file, wait 10 ms, then report its size; on any error, report
//! that. First with callbacks, the primitives:
//!
//! ```
//! use std::time::Duration;
//!
//! evloop::run(|| {
//!     evloop::fs::read_file("Cargo.toml", |r| match r {
//!         Ok(bytes) => {
//!             evloop::set_timeout(Duration::from_millis(10), move || {
//!                 println!("{} bytes", bytes.len());
//!             });
//!         }
//!         Err(e) => eprintln!("failed: {e}"),
//!     });
//! })
//! .unwrap();
//! ```
//!
//! Then with [promises](promise), on the same loop (each step returns a
//! promise; an error skips to the `catch`):
//!
//! ```
//! use std::time::Duration;
//! use evloop::{fs, promise::delay};
//!
//! evloop::run(|| {
//!     fs::promises::read_file("Cargo.toml")
//!         .and_then(|bytes| delay(Duration::from_millis(10)).then(move |()| bytes))
//!         .then(|bytes| println!("{} bytes", bytes.len()))
//!         .catch(|e| eprintln!("failed: {e}"));
//! })
//! .unwrap();
//! ```
//!
//! And the third style, `async`/`await` over the same promises (see
//! [`task`]):
//!
//! ```
//! use std::time::Duration;
//! use evloop::{fs, task::sleep};
//!
//! evloop::run(|| {
//!     evloop::spawn(async {
//!         match fs::promises::read_file("Cargo.toml").await {
//!             Ok(bytes) => {
//!                 sleep(Duration::from_millis(10)).await;
//!                 println!("{} bytes", bytes.len());
//!             }
//!             Err(e) => eprintln!("failed: {e}"),
//!         }
//!     });
//! })
//! .unwrap();
//! ```
//!
//! The examples take this further: `examples/styles/` does a longer job
//! (config, request, retry, output file) in all three styles with identical
//! output, `examples/compare` measures the styles beside threads and
//! processes, `examples/step.rs` runs a program one iteration at a time,
//! and `EVLOOP_TRACE=trace.json` records a [`trace`] of any of them.
//!
//! ## Layers
//!
//! | layer | what it offers |
//! |---|---|
//! | the loop ([`EventLoop`]) | phases, [`set_timeout`], [`set_interval`], [`set_immediate`], [`next_tick`], [`queue_microtask`], raw readiness with [`watch`], cross-thread [`Remote`], the thread pool's [`queue_work`] |
//! | callbacks | TCP, UDP and Unix sockets in [`net`] (one address argument, [`net::ToAddrs`]; names via [`dns`]); files on the pool in [`fs`] (as streams, [`fs::create_read_stream`]; watched, [`fs::watch`], [`fs::watch_file`]); [`stdio`] and the terminal ([`tty`]); streams joined with backpressure by [`stream::pipeline`]; every `on_*` adds a [`Listener`] |
//! | promises ([`promise`]) | [`Promise<T>`](promise::Promise) with JavaScript's semantics on the microtask queue, combinators, unhandled-rejection reports, and the promise forms [`fs::promises`], [`net::promises`], [`promise::delay`], [`promise::queue_work`] |
//! | async/await ([`task`]) | [`spawn`] a future as a task returning a promise, `.await` a promise with JavaScript's timing, [`block_on`], [`task::sleep`], [`task::timeout`], [`task::yield_now`], async sockets ([`task::net`]) with split halves and [`task::io::copy`], readiness of any fd ([`task::AsyncFd`]) |
//! | beyond one thread ([`process`], [`worker_threads`]) | child processes with piped stdio ([`process::Command`]), signals on the loop thread ([`process::on_signal`]), worker processes with an IPC channel ([`process::Worker`]), a cluster sharing a port ([`process::Cluster`]), worker threads with a loop of their own and typed message ports ([`worker_threads::Worker`]); each in callback and promise form |
//!
//! Every operation's three faces, side by side: [`parity`].
//!
//! ## One tick
//!
//! See [`EventLoop`] for the order of phases, when microtasks run, what
//! keeps the loop alive and what happens when a callback panics. Set
//! `RUST_LOG=evloop=trace` (with `env_logger`) to watch a tick happen.
//!
//! ## Threads
//!
//! The loop and everything it owns stay on one thread (the handle types are
//! `!Send`). Other threads reach it only through a [`Remote`]: a queue and a
//! `mio::Waker`.
//! Beyond one core, the thread pool takes blocking and CPU work
//! ([`queue_work`]), [`worker_threads`] starts threads with a loop of
//! their own, and [`process`] starts more processes, each with its own
//! loop.
//!
//! ## Platforms
//!
//! Unix only: Linux (epoll) is where the tests run; macOS (x86_64 and
//! aarch64) and FreeBSD (kqueue) are checked with `cargo check
//! --all-targets` in CI but not run. A terminal stdin that kqueue refuses
//! (macOS) is read by a helper thread, as libuv does (see [`stdio`]).
//! Windows is not supported, and the crate says so when built there.
#![warn(missing_docs)]
#![deny(unsafe_code)] // allowed in five places: sys.rs (the FFI: signals, kill, fds, select), tty/sys.rs (the terminal's FFI: termios, ioctl, atexit), task/boxed.rs (one pin projection), inline_fn.rs (timer callbacks stored inline, type-erased by hand) and event_loop/slots.rs (a per-loop value's typed pointer)

#[cfg(not(unix))]
compile_error!(
    "evloop is Unix-only: it is built on Unix fds, signals and processes \
     (Linux is tested; macOS and FreeBSD are checked). Windows is not supported."
);

pub mod abort;
pub mod dns;
mod error;
mod event_loop;
#[doc(hidden)]
pub mod fault;
// Callback-style file operations on the loop's thread pool (`fs::read_file`,
// `fs::File::open`, ...), as in Node's `fs` module.
pub mod fs;
mod immediate;
mod inline_fn;
mod introspect;
mod listeners;
mod microtasks;
pub mod net;
pub mod parity;
mod pool;
pub mod process;
pub mod promise;
mod reactor;
mod remote;
pub mod stdio;
pub mod stream;
mod sys;
pub mod task;
pub mod timers;
pub mod trace;
pub mod tty;
pub mod worker_threads;

pub use abort::{
    queue_work_with_signal, set_interval_with_signal, set_timeout_with_signal, AbortController,
    AbortSignal,
};
pub use error::{Error, Origin, PanicError};
pub use event_loop::watchers;
pub use event_loop::{
    active_handles, clear_uncaught_exception, current_phase, has_current, now,
    on_uncaught_exception, run, stop, EnterGuard, EventLoop, Phase, Turn,
};
pub use immediate::{clear_immediate, set_immediate, Immediate};
pub use introspect::{HandleInfo, HandleKind};
pub use listeners::Listener;
pub use microtasks::{next_tick, queue_microtask};
pub use mio::Interest;
pub use pool::{queue_work, queue_work_cancelable, Work, DEFAULT_THREADPOOL_SIZE};
pub use reactor::{watch, watch_fd, Ready, Watch};
pub use remote::{AsyncClosed, AsyncHandle, AsyncSender, LoopClosed, Remote};
pub use task::{block_on, run_async, spawn, spawn_with_signal};
pub use timers::{
    clear_interval, clear_timeout, set_interval, set_timeout, set_timeout_mut, Interval, Timeout,
    TIMER_OVERHEAD_BYTES,
};

/// Compiles the README's code blocks as doc tests, so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
