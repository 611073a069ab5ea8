//! The accept policy every listener shares (`src/net/listener.rs`), under
//! the fault shim: the Unix and async listeners go through the accept hook
//! as the TCP listener does, and meet `EINTR`, `ECONNABORTED`, `EPROTO`
//! and `EMFILE` the same way. Run with
//! `RUSTFLAGS="--cfg evloop_fault_injection" CARGO_TARGET_DIR=target/cfg-test
//! cargo test --test accept_faults`.
//!
//! The plan is per thread: each test sets it on its own thread, which runs
//! the loop. The clients are blocking std sockets, which the plan does not
//! touch. (`tests/emfile.rs` runs the same policy out of real fds.)
#![cfg(evloop_fault_injection)]

mod support;

use std::cell::RefCell;
use std::io;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::fault::{self, Op};
use evloop::net::{Stream, UnixListener};
use evloop::EventLoop;

const EINTR: i32 = libc::EINTR;
const EMFILE: i32 = libc::EMFILE;
const ECONNABORTED: i32 = libc::ECONNABORTED;
const EPROTO: i32 = libc::EPROTO;

/// Resets this thread's plan when dropped (also when the test fails).
struct PlanGuard;

impl PlanGuard {
    fn new() -> PlanGuard {
        support::init_log();
        fault::reset();
        PlanGuard
    }
}

impl Drop for PlanGuard {
    fn drop(&mut self) {
        fault::reset();
    }
}

/// A fresh socket path in the temp dir.
fn sock_path(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("evloop-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// What a callback Unix listener saw of `n` clients already waiting.
#[derive(Default)]
struct Seen {
    accepted: usize,
    errors: Vec<io::Error>,
}

/// A callback Unix listener with `n` clients waiting in its backlog, run
/// on this thread under the caller's plan; it closes once all `n` were
/// accepted.
fn unix_callback_run(name: &str, n: usize) -> (Seen, u64) {
    let path = sock_path(name);
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let el = EventLoop::new().unwrap();
    let clients = {
        let _g = el.enter();
        let s = seen.clone();
        let me: Rc<RefCell<Option<UnixListener>>> = Rc::default();
        let me2 = me.clone();
        let keep: RefCell<Vec<Stream>> = RefCell::default();
        let l = UnixListener::bind(&path, move |conn| {
            let mut s = s.borrow_mut();
            match conn {
                Ok(stream) => {
                    s.accepted += 1;
                    keep.borrow_mut().push(stream);
                }
                Err(e) => s.errors.push(e),
            }
            if s.accepted == n {
                for stream in keep.borrow_mut().drain(..) {
                    stream.destroy();
                }
                if let Some(l) = me2.borrow_mut().take() {
                    l.close();
                }
            }
        })
        .unwrap();
        *me.borrow_mut() = Some(l);
        (0..n)
            .map(|_| StdUnixStream::connect(&path).unwrap())
            .collect::<Vec<_>>()
    };
    el.run().unwrap();
    drop(clients);
    let _ = std::fs::remove_file(&path);
    (seen.take(), el.iterations())
}

/// The Unix listener goes through the accept hook: `EINTR` and
/// `ECONNABORTED` are retried silently, `EPROTO` (an error of one
/// connection) is reported and accepting goes on, as for TCP.
#[test]
fn unix_listener_skips_the_errors_of_one_connection() {
    let _p = PlanGuard::new();
    let n = 10;
    fault::fail_next(Op::Accept, 2, EINTR);
    fault::fail_next(Op::Accept, 2, ECONNABORTED);
    fault::fail_next(Op::Accept, 1, EPROTO);
    let (seen, _) = unix_callback_run("faults-transient", n);
    let s = fault::stats();
    assert_eq!(s.errors(Op::Accept), 5, "the hook saw the Unix listener");
    assert_eq!(seen.accepted, n, "every client accepted");
    assert_eq!(
        seen.errors.len(),
        1,
        "only EPROTO reported: {:?}",
        seen.errors
    );
    assert_eq!(seen.errors[0].raw_os_error(), Some(EPROTO));
}

/// EMFILE on the Unix listener's accept (injected): reported once per
/// burst, accepting backs off instead of spinning, and every client
/// waiting is served once the plan ends; as `rel_faults`' H6-EMFILE for
/// TCP.
#[test]
fn unix_listener_emfile_reported_once_backs_off_and_recovers() {
    let _p = PlanGuard::new();
    let n = 10;
    // Each burst is two injected failures: the accept, and the accept the
    // reserve-fd trick makes after closing its reserve. Three bursts.
    fault::fail_next(Op::Accept, 6, EMFILE);
    let started = Instant::now();
    let (seen, iterations) = unix_callback_run("faults-emfile", n);
    let took = started.elapsed();
    assert_eq!(fault::stats().errors(Op::Accept), 6);
    assert_eq!(seen.errors.len(), 1, "reported once: {:?}", seen.errors);
    assert_eq!(seen.errors[0].raw_os_error(), Some(EMFILE));
    assert_eq!(seen.accepted, n, "all served after");
    // Three back-offs of 100 ms, about one iteration each.
    assert!(took >= Duration::from_millis(250), "{took:?}: no back-off");
    assert!(iterations <= 50, "{iterations} iterations: the loop spun");
}

/// The async listeners go through the accept hook, and skip the errors of
/// one connection (`EINTR`, `ECONNABORTED`, `EPROTO`) without returning
/// them.
#[test]
fn async_listeners_skip_the_errors_of_one_connection() {
    use evloop::task::net::{TcpListener, UnixListener};
    let _p = PlanGuard::new();
    let path = sock_path("faults-async-transient");
    let p2 = path.clone();
    let r = evloop::block_on(async move {
        let tcp = TcpListener::bind("127.0.0.1:0").await?;
        let unix = UnixListener::bind(&p2)?;
        let _c1 = std::net::TcpStream::connect(tcp.local_addr()?)?;
        let _c2 = StdUnixStream::connect(&p2)?;
        for errno in [EINTR, ECONNABORTED, EPROTO] {
            fault::fail_next(Op::Accept, 1, errno);
        }
        tcp.accept().await?;
        for errno in [EINTR, ECONNABORTED, EPROTO] {
            fault::fail_next(Op::Accept, 1, errno);
        }
        unix.accept().await?;
        io::Result::Ok(())
    })
    .unwrap();
    let _ = std::fs::remove_file(&path);
    r.unwrap();
    assert_eq!(fault::stats().errors(Op::Accept), 6);
}

/// EMFILE on the async listener's accept (injected, two bursts): `accept`
/// returns the error once, and the next `accept` waits out the back-offs
/// (at least 100 ms each) before it returns the client waiting all along.
#[test]
fn async_listener_emfile_returned_once_then_waits_out_the_back_off() {
    use evloop::task::net::UnixListener;
    let _p = PlanGuard::new();
    let path = sock_path("faults-async-emfile");
    let p2 = path.clone();
    let r = evloop::block_on(async move {
        let l = UnixListener::bind(&p2)?;
        let _c = StdUnixStream::connect(&p2)?;
        fault::fail_next(Op::Accept, 4, EMFILE);
        let first = l.accept().await.err();
        let since = Instant::now();
        l.accept().await?;
        io::Result::Ok((first, since.elapsed()))
    })
    .unwrap();
    let _ = std::fs::remove_file(&path);
    let (first, waited) = r.unwrap();
    let first = first.expect("the first accept failed");
    assert_eq!(first.raw_os_error(), Some(EMFILE), "{first}");
    assert_eq!(fault::stats().errors(Op::Accept), 4);
    assert!(
        waited >= Duration::from_millis(180) && waited < Duration::from_secs(2),
        "the next accept took {waited:?}: not two back-offs"
    );
}
