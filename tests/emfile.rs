//! Accepting when the process is out of file descriptors: the error is
//! reported once per burst, the loop does not spin, and accepting recovers
//! by itself once fds are free again. Its own binary: it lowers the
//! process's fd limit.

mod util;

use std::cell::Cell;
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
fn accept_under_emfile_reports_once_does_not_spin_and_recovers() {
    util::init_log();
    const CLIENTS: usize = 50;
    let original = nofile();
    let accepted = Rc::new(Cell::new(0usize));
    let errors = Rc::new(Cell::new(0usize));
    let el = evloop::EventLoop::new().unwrap();
    let clients;
    {
        let _g = el.enter();
        let (a, e) = (accepted.clone(), errors.clone());
        let keep: Rc<std::cell::RefCell<Vec<evloop::net::Stream>>> = Rc::default();
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
        clients = (0..CLIENTS)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect::<Vec<_>>();
        // Room for only a few more fds: accepting runs out part-way.
        set_nofile(util::fd_count() as u64 + 5);
        // Give the fds back after 300 ms; then everything gets accepted.
        let _ = evloop::set_timeout(Duration::from_millis(300), move || set_nofile(original));
        let a2 = accepted.clone();
        let check: Rc<std::cell::RefCell<Option<evloop::Interval>>> = Rc::default();
        let c2 = check.clone();
        *check.borrow_mut() = Some(evloop::set_interval(Duration::from_millis(10), move || {
            if a2.get() == CLIENTS {
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
    drop(clients);
    set_nofile(original);
    assert_eq!(
        accepted.get(),
        CLIENTS,
        "every connection is accepted in the end"
    );
    assert!(errors.get() >= 1, "the EMFILE was reported");
    assert_eq!(errors.get(), 1, "reported once per burst");
    // About 30 iterations of the 10 ms interval plus the accepts; a spinning
    // loop would run hundreds of thousands in 300 ms.
    assert!(iterations < 200, "{iterations} iterations: the loop spun");
    assert!(
        cpu < Duration::from_millis(150),
        "{cpu:?} of CPU in ~300 ms"
    );
}
