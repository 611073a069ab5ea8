//! Accepting when the process is out of file descriptors: the pending
//! connections are accepted and closed (the reserve-fd trick), the error is
//! reported once per burst, the loop does not spin, and accepting recovers
//! by itself once fds are free again. Its own binary: it lowers the
//! process's fd limit.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use evloop::net::TcpListener;

fn set_nofile(soft: u64) {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &rl), 0);
    }
}

fn nofile() -> u64 {
    // SAFETY: as above.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl), 0);
        rl.rlim_cur
    }
}

#[test]
fn accept_under_emfile_sheds_the_backlog_reports_once_does_not_spin_and_recovers() {
    util::init_log();
    const CLIENTS: usize = 50;
    const LATER: usize = 5;
    let original = nofile();
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
        set_nofile(util::fd_count() as u64 + 5);
        // At 300 ms, still short of fds: every client was either accepted
        // or closed, none is left waiting. Then the fds come back and new
        // clients are accepted.
        let (cs, l2, a3) = (census.clone(), later.clone(), accepted.clone());
        let _ = evloop::set_timeout(Duration::from_millis(300), move || {
            let seen: Vec<_> = clients.iter().map(util::still_connected).collect();
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
    let cpu = util::cpu_time();
    let iterations = el.iterations();
    el.run().unwrap();
    let cpu = util::cpu_time() - cpu;
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
