//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Starts `env_logger` once (set `RUST_LOG=evloop=trace` to see a tick).
pub fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// An ordered log of what happened, shared by callbacks.
#[derive(Clone, Default)]
pub struct Log(Rc<RefCell<Vec<String>>>);

impl Log {
    pub fn new() -> Self {
        init_log();
        Self::default()
    }
    pub fn push(&self, s: impl Into<String>) {
        self.0.borrow_mut().push(s.into());
    }
    /// A closure that records `s`.
    pub fn rec(&self, s: &'static str) -> impl FnOnce() + 'static {
        let me = self.clone();
        move || me.push(s)
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.borrow_mut())
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
}

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

/// This process's user + system CPU time.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass and nothing else.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The number of open fds of this process (H2 fd census).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
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

/// Whether a client the server never wrote to is still connected
/// (`Some(true)`: accepted and held), or was closed by the server
/// (`Some(false)`: EOF or reset); `None` if it unexpectedly got data.
pub fn still_connected(c: &std::net::TcpStream) -> Option<bool> {
    use std::io::{ErrorKind, Read};
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    match (&*c).read(&mut b) {
        Ok(0) => Some(false),
        Ok(_) => None,
        Err(e) if e.kind() == ErrorKind::WouldBlock => Some(true),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(false),
        Err(e) => panic!("client read: {e}"),
    }
}
