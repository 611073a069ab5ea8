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

/// Waits (up to `within`) until the server process `child` answers on
/// 127.0.0.1:`port`. False if it exited first (the port was taken) or never
/// answered. A probe that connected to itself (TCP simultaneous open: the
/// port is in the ephemeral range and the kernel can pick it as the source
/// port) proves nothing; nor does one answered while our server is exiting
/// because another process holds the port.
pub fn wait_listening(child: &mut std::process::Child, port: u16, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok(probe) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let self_connect = probe.local_addr().ok() == probe.peer_addr().ok();
            if !self_connect && matches!(child.try_wait(), Ok(None)) {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
