//! Accepting when the process is out of file descriptors: the pending
//! connections are accepted and closed (the reserve-fd trick), the error is
//! reported once per burst, the loop does not spin, and accepting recovers
//! by itself once fds are free again. The same policy for every listener
//! (`src/net/listener.rs`): the callback TCP and Unix listeners and the
//! async one. Its own binary: it lowers the process's fd limit, so its
//! tests take turns (`short_of_fds`).

mod support;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use evloop::net::{TcpListener, UnixListener};

fn set_nofile(soft: u64) {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl.rlim_cur = soft as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
    }
}

fn nofile() -> u64 {
    // SAFETY: as above.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl.rlim_cur as u64
    }
}

/// The tests of this binary change the process's fd limit: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// This test's turn with the fd limit; the limit it found is put back when
/// the turn ends, even if the test fails.
struct FdLimitTurn {
    original: u64,
    _turn: MutexGuard<'static, ()>,
}

impl Drop for FdLimitTurn {
    fn drop(&mut self) {
        set_nofile(self.original);
    }
}

fn short_of_fds() -> FdLimitTurn {
    support::init_log();
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    FdLimitTurn {
        original: nofile(),
        _turn: turn,
    }
}

/// The number the next new fd would get: with the limit set to it, the
/// process has no fd to spare.
fn lowest_free_fd() -> u64 {
    use std::os::fd::AsRawFd;
    let probe = std::fs::File::open("/").unwrap();
    probe.as_raw_fd() as u64
}

/// [`support::net::still_connected`] for a Unix socket client.
fn unix_still_connected(c: &UnixStream) -> Option<bool> {
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

/// A fresh socket path in the temp dir.
fn sock_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("evloop-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn accept_under_emfile_sheds_the_backlog_reports_once_does_not_spin_and_recovers() {
    let turn = short_of_fds();
    const CLIENTS: usize = 50;
    const LATER: usize = 5;
    let original = turn.original;
    let accepted = Rc::new(Cell::new(0usize));
    let errors = Rc::new(Cell::new(0usize));
    // (still connected, closed by the server) among the first clients,
    // taken while fds are still short.
    let census = Rc::new(Cell::new((0usize, 0usize)));
    let el = evloop::EventLoop::new().unwrap();
    let later: Rc<RefCell<Vec<std::net::TcpStream>>> = Rc::default();
    {
        let _g = el.enter();
        let (a, e) = (accepted.clone(), errors.clone());
        let keep: Rc<RefCell<Vec<evloop::net::Stream>>> = Rc::default();
        let streams = keep.clone();
        let server = TcpListener::bind("127.0.0.1:0", move |conn| match conn {
            Ok(s) => {
                a.set(a.get() + 1);
                keep.borrow_mut().push(s);
            }
            Err(err) => {
                assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
                e.set(e.get() + 1);
            }
        })
        .unwrap();
        let addr = server.local_addr();
        // The clients connect now (the kernel completes the handshakes into
        // the backlog) and hold their fds in this process.
        let clients = (0..CLIENTS)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect::<Vec<_>>();
        // Room for only a few more fds: accepting runs out part-way, and
        // the rest of the backlog is accepted and closed (the reserve fd).
        set_nofile(support::fds::fd_count() as u64 + 5);
        // At 300 ms, still short of fds: every client was either accepted
        // or closed, none is left waiting. Then the fds come back and new
        // clients are accepted.
        let (cs, l2, a3) = (census.clone(), later.clone(), accepted.clone());
        let _ = evloop::set_timeout(Duration::from_millis(300), move || {
            let seen: Vec<_> = clients.iter().map(support::net::still_connected).collect();
            let alive = seen.iter().filter(|s| **s == Some(true)).count();
            let closed = seen.iter().filter(|s| **s == Some(false)).count();
            cs.set((alive, closed));
            assert_eq!(
                alive,
                a3.get(),
                "the clients still connected are the accepted ones"
            );
            set_nofile(original);
            drop(clients);
            l2.borrow_mut()
                .extend((0..LATER).map(|_| std::net::TcpStream::connect(addr).unwrap()));
        });
        let (a2, cs2) = (accepted.clone(), census.clone());
        let check: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
        let c2 = check.clone();
        *check.borrow_mut() = Some(evloop::set_interval(Duration::from_millis(10), move || {
            // (`>=` so that a regression that leaves the backlog waiting
            // ends here too, and fails the assertions below.)
            let (alive, closed) = cs2.get();
            if alive + closed > 0 && a2.get() >= alive + LATER {
                server.close();
                for s in streams.borrow_mut().drain(..) {
                    s.destroy();
                }
                c2.borrow_mut().take().unwrap().clear();
            }
        }));
    }
    let cpu = support::cpu::cpu_time();
    let iterations = el.iterations();
    el.run().unwrap();
    let cpu = support::cpu::cpu_time() - cpu;
    let iterations = el.iterations() - iterations;
    drop(later);
    set_nofile(original);
    let (alive, closed) = census.get();
    assert_eq!(
        alive + closed,
        CLIENTS,
        "no client left waiting in the backlog"
    );
    assert!(closed >= 1, "the backlog was shed");
    assert_eq!(
        accepted.get(),
        alive + LATER,
        "the later clients were accepted"
    );
    assert_eq!(errors.get(), 1, "reported once per burst");
    // About 30 iterations of the 10 ms interval plus the accepts; a spinning
    // loop would run hundreds of thousands in 300 ms.
    assert!(iterations < 200, "{iterations} iterations: the loop spun");
    assert!(
        cpu < Duration::from_millis(150),
        "{cpu:?} of CPU in ~300 ms"
    );
}

/// The Unix listener follows the TCP listener's policy: the backlog is
/// shed (it used to stay waiting), the error is reported once per burst,
/// the loop does not spin, and new clients are accepted once fds are back.
#[test]
fn unix_accept_under_emfile_sheds_the_backlog_reports_once_and_recovers() {
    let turn = short_of_fds();
    const CLIENTS: usize = 50;
    const LATER: usize = 5;
    let original = turn.original;
    let path = sock_path("emfile-unix");
    let accepted = Rc::new(Cell::new(0usize));
    let errors = Rc::new(Cell::new(0usize));
    let census = Rc::new(Cell::new((0usize, 0usize)));
    let later: Rc<RefCell<Vec<UnixStream>>> = Rc::default();
    let el = evloop::EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let (a, e) = (accepted.clone(), errors.clone());
        let keep: Rc<RefCell<Vec<evloop::net::Stream>>> = Rc::default();
        let streams = keep.clone();
        let server = UnixListener::bind(&path, move |conn| match conn {
            Ok(s) => {
                a.set(a.get() + 1);
                keep.borrow_mut().push(s);
            }
            Err(err) => {
                assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
                e.set(e.get() + 1);
            }
        })
        .unwrap();
        // A Unix connect completes into the backlog at once.
        let clients = (0..CLIENTS)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect::<Vec<_>>();
        set_nofile(support::fds::fd_count() as u64 + 5);
        let (cs, l2, a3, p2) = (
            census.clone(),
            later.clone(),
            accepted.clone(),
            path.clone(),
        );
        let _ = evloop::set_timeout(Duration::from_millis(300), move || {
            let seen: Vec<_> = clients.iter().map(unix_still_connected).collect();
            let alive = seen.iter().filter(|s| **s == Some(true)).count();
            let closed = seen.iter().filter(|s| **s == Some(false)).count();
            cs.set((alive, closed));
            assert_eq!(
                alive,
                a3.get(),
                "the clients still connected are the accepted ones"
            );
            set_nofile(original);
            drop(clients);
            l2.borrow_mut()
                .extend((0..LATER).map(|_| UnixStream::connect(&p2).unwrap()));
        });
        let (a2, cs2) = (accepted.clone(), census.clone());
        let check: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
        let c2 = check.clone();
        *check.borrow_mut() = Some(evloop::set_interval(Duration::from_millis(10), move || {
            let (alive, closed) = cs2.get();
            if alive + closed > 0 && a2.get() >= alive + LATER {
                server.close();
                for s in streams.borrow_mut().drain(..) {
                    s.destroy();
                }
                c2.borrow_mut().take().unwrap().clear();
            }
        }));
    }
    let cpu = support::cpu::cpu_time();
    let iterations = el.iterations();
    el.run().unwrap();
    let cpu = support::cpu::cpu_time() - cpu;
    let iterations = el.iterations() - iterations;
    drop(later);
    drop(turn);
    let _ = std::fs::remove_file(&path);
    let (alive, closed) = census.get();
    assert_eq!(
        alive + closed,
        CLIENTS,
        "no client left waiting in the backlog"
    );
    assert!(closed >= 1, "the backlog was shed");
    assert_eq!(
        accepted.get(),
        alive + LATER,
        "the later clients were accepted"
    );
    assert_eq!(errors.get(), 1, "reported once per burst");
    assert!(iterations < 200, "{iterations} iterations: the loop spun");
    assert!(
        cpu < Duration::from_millis(150),
        "{cpu:?} of CPU in ~300 ms"
    );
}

/// What the async listener's accept loop saw.
#[derive(Default)]
struct AsyncAccepts {
    accepted: usize,
    errors: Vec<std::io::Error>,
    /// (still connected, closed by the server) among the first clients,
    /// taken when the error came back.
    census: (usize, usize),
    /// From fds coming back (with a client waiting) to that client's
    /// accept.
    after_error: Option<Duration>,
}

/// The async listener under EMFILE (its documented policy): the backlog is
/// shed before `accept` returns the error, the error comes once per burst
/// (fds stay short for 300 ms, three back-offs), nothing spins, and it
/// accepts again once fds are back.
#[test]
fn async_accept_under_emfile_sheds_returns_the_error_once_per_burst_and_recovers() {
    use evloop::task::net::TcpListener;
    let turn = short_of_fds();
    const CLIENTS: usize = 50;
    const LATER: usize = 5;
    let original = turn.original;
    let seen: Rc<RefCell<AsyncAccepts>> = Rc::default();
    let el = evloop::EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let listener =
            TcpListener::from_std(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let clients = (0..CLIENTS)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect::<Vec<_>>();
        set_nofile(support::fds::fd_count() as u64 + 5);
        let s = seen.clone();
        let later: Rc<RefCell<Vec<std::net::TcpStream>>> = Rc::default();
        let _ = evloop::spawn(async move {
            let mut keep = Vec::new();
            let mut clients = Some(clients);
            loop {
                match listener.accept().await {
                    Ok((conn, _)) => {
                        keep.push(conn);
                        let mut s = s.borrow_mut();
                        s.accepted += 1;
                        let (alive, closed) = s.census;
                        if alive + closed > 0 && s.accepted >= alive + LATER {
                            break;
                        }
                    }
                    Err(e) => {
                        let mut s = s.borrow_mut();
                        s.errors.push(e);
                        // The backlog was shed before the error came back.
                        if let Some(clients) = clients.take() {
                            let seen: Vec<_> =
                                clients.iter().map(support::net::still_connected).collect();
                            let alive = seen.iter().filter(|s| **s == Some(true)).count();
                            let closed = seen.iter().filter(|s| **s == Some(false)).count();
                            s.census = (alive, closed);
                            // Fds come back later; the clients then connect.
                            let l2 = later.clone();
                            let _ = evloop::set_timeout(Duration::from_millis(300), move || {
                                set_nofile(original);
                                drop(clients);
                                l2.borrow_mut().extend(
                                    (0..LATER).map(|_| std::net::TcpStream::connect(addr).unwrap()),
                                );
                            });
                        }
                    }
                }
            }
        });
    }
    let cpu = support::cpu::cpu_time();
    let iterations = el.iterations();
    el.run().unwrap();
    let cpu = support::cpu::cpu_time() - cpu;
    let iterations = el.iterations() - iterations;
    drop(turn);
    let s = seen.borrow();
    let (alive, closed) = s.census;
    assert_eq!(s.errors.len(), 1, "once per burst: {:?}", s.errors.first());
    assert_eq!(
        s.errors[0].raw_os_error(),
        Some(libc::EMFILE),
        "{}",
        s.errors[0]
    );
    assert_eq!(
        alive + closed,
        CLIENTS,
        "no client left waiting in the backlog"
    );
    assert!(closed >= 1, "the backlog was shed");
    assert_eq!(
        s.accepted,
        alive + LATER,
        "the accepted ones, then the later clients"
    );
    assert!(iterations < 200, "{iterations} iterations: the loop spun");
    assert!(
        cpu < Duration::from_millis(150),
        "{cpu:?} of CPU in ~300 ms"
    );
}

/// After the async listener returned EMFILE, the next `accept` waits out
/// the back-off (100 ms) before it tries again, even with fds free and a
/// client waiting: a server loop that just logs the error does not spin.
#[test]
fn async_accept_after_emfile_waits_out_the_back_off() {
    use evloop::task::net::TcpListener;
    let turn = short_of_fds();
    let original = turn.original;
    let seen: Rc<RefCell<AsyncAccepts>> = Rc::default();
    let el = evloop::EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let listener =
            TcpListener::from_std(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        // No fd to spare at all: the first accept fails.
        let first = std::net::TcpStream::connect(addr).unwrap();
        set_nofile(lowest_free_fd());
        let s = seen.clone();
        let _ = evloop::spawn(async move {
            let e = listener.accept().await.err();
            // Fds come back, and a client waits in the backlog.
            set_nofile(original);
            let since = Instant::now();
            let _waiting = std::net::TcpStream::connect(addr).unwrap();
            let r = listener.accept().await;
            let mut s = s.borrow_mut();
            s.after_error = Some(since.elapsed());
            s.errors.extend(e);
            // The first client was shed (with the reserve fd) before the
            // error came back.
            s.census = (
                0,
                (support::net::still_connected(&first) == Some(false)) as usize,
            );
            s.accepted += r.is_ok() as usize;
        });
    }
    el.run().unwrap();
    drop(turn);
    let s = seen.borrow();
    assert_eq!(s.errors.len(), 1, "the first accept failed");
    assert_eq!(s.census, (0, 1), "the client waiting then was shed");
    assert_eq!(
        s.errors[0].raw_os_error(),
        Some(libc::EMFILE),
        "{}",
        s.errors[0]
    );
    assert_eq!(s.accepted, 1, "then the waiting client was accepted");
    let waited = s.after_error.unwrap();
    assert!(
        waited >= Duration::from_millis(80) && waited < Duration::from_secs(2),
        "the next accept came {waited:?} after fds were back: not after the back-off"
    );
}
