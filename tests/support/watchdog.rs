//! H5: one test at a time per binary, under a watchdog. Rlimits, signals,
//! children and the H1/H2 counters are process-wide, so the reliability
//! tests of one file run one at a time ([`serial`], or [`Test::start`]);
//! and a [`Watchdog`] aborts the whole process if a test has not finished
//! within its limit: a hung test fails loudly and never hangs CI.
//! (Process-per-test isolation is what `cargo nextest` gives;
//! `.config/nextest.toml` sets its slow-timeout.)

use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::figures::figure;

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the binary-wide lock: one test at a time within a file. A test
/// that panicked while holding it does not poison it for the next.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Aborts the process (with a message) if not dropped within its limit.
pub struct Watchdog {
    /// Dropping the sender wakes the watchdog thread with `Disconnected`.
    stop: Option<mpsc::Sender<()>>,
}

impl Watchdog {
    /// Arms a watchdog for test `name`, which must end within `limit`.
    pub fn new(name: &'static str, limit: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(format!("watchdog {name}"))
            .spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                    eprintln!("WATCHDOG: {name} still running after {limit:?}: aborting");
                    std::process::abort();
                }
            })
            .expect("watchdog thread");
        Watchdog { stop: Some(tx) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

/// One running reliability test: holds the binary-wide lock ([`serial`])
/// and a [`Watchdog`], and prints the test's wall time when dropped. Keep
/// it in a `_t` binding (or `t`, to print figures) until the test ends.
pub struct Test {
    /// The catalogue's id of the test, `T05` say: the figures' prefix.
    pub id: &'static str,
    started: Instant,
    watchdog: Option<Watchdog>,
    _serial: MutexGuard<'static, ()>,
}

impl Test {
    /// Starts test `id` with a hard limit: past it the process aborts with
    /// a message naming the test.
    pub fn start(id: &'static str, limit: Duration) -> Test {
        let serial = serial();
        super::init_log();
        Test {
            id,
            started: Instant::now(),
            watchdog: Some(Watchdog::new(id, limit)),
            _serial: serial,
        }
    }

    /// Wall time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Prints a figure for the report: `FIGURE T05: ...`.
    pub fn figure(&self, text: impl std::fmt::Display) {
        figure(self.id, format_args!("{text}"));
    }
}

impl Drop for Test {
    fn drop(&mut self) {
        drop(self.watchdog.take());
        figure(self.id, format_args!("wall {:?}", self.started.elapsed()));
    }
}
