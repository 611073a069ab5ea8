//! The helpers the integration tests share, in one place: the reliability
//! suite's harness (the reliability catalogue, TESTS.md in the team's
//! shared docs, calls it H1-H5) and the everyday helpers of the feature
//! tests. A test file includes it with `mod support;` (cargo builds each
//! file of `tests/` as its own crate; this directory is not a test).
//!
//! - everyday: [`init_log`], [`Log`], [`ms`], [`spin`], [`run_strict`];
//! - **H1 live heap:** [`alloc`], a counting allocator that a test file
//!   installs as its `#[global_allocator]` when it reads the heap;
//! - **H2 fd census:** [`fds`]; rlimits in [`limits`]; threads in
//!   [`threads`];
//! - **H3 loop metrics:** [`metrics`];
//! - **H4 CPU meter:** [`cpu`];
//! - **H5 watchdog:** [`watchdog`] (one test at a time per binary, and a
//!   watchdog that aborts a hung test so nothing hangs CI);
//! - figures for RELIABILITY.md, scaled counts, percentiles: [`figures`];
//! - peers and probes on plain std sockets: [`net`]; process-wide set-up
//!   (signal machinery, panic hook): [`setup`]; test payloads: [`rng`].
//!
//! The benches keep their own helpers in `benches/common/`.
#![allow(dead_code)] // each test binary uses a part of it

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

pub mod abort;
pub mod alloc;
pub mod cpu;
pub mod fds;
pub mod figures;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod rng;
pub mod setup;
pub mod threads;
pub mod watchdog;

/// Starts `env_logger` once (set `RUST_LOG=evloop=trace` to see a tick).
pub fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// An ordered log of what happened, shared by callbacks.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    /// An empty log (and the logger started).
    pub fn new() -> Self {
        init_log();
        Self::default()
    }
    /// Appends `s`.
    pub fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
    /// A closure that records `s`.
    pub fn rec(&self, s: &'static str) -> impl FnOnce() + 'static {
        let me = self.clone();
        move || me.push(s)
    }
    /// Everything recorded so far, leaving the log empty.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
    /// How many entries are recorded.
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Busy-waits (keeps the thread on CPU), as the Node scripts do with
/// `while (Date.now() - s < n);`.
pub fn spin(d: Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// `evloop::run` with unhandled rejections fatal, so an assertion that
/// fails inside a promise callback (a panic, which rejects the promise)
/// fails the test instead of being logged as a warning.
pub fn run_strict(main: impl FnOnce()) -> Result<(), evloop::Error> {
    init_log();
    let el = evloop::EventLoop::new().expect("a loop");
    el.set_unhandled_rejections(evloop::promise::UnhandledRejections::Strict);
    el.run_main(main)?;
    el.run().map(|_| ())
}
