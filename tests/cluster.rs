//! A cluster of worker processes sharing a port: serving, restarting a
//! killed worker, backing off a crash loop, graceful shutdown on SIGTERM.
//!
//! Without libtest's harness (see Cargo.toml): the binary is its own
//! worker, and the tests run one after the other on the main thread.

mod support;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use evloop::process::{
    cluster::SHUTDOWN_GRACE, kill, worker_entry, Cluster, ClusterEvent, ClusterWorker, Signal,
};

fn main() {
    support::init_log();
    match worker_entry().as_deref() {
        Some("pid") => return pid_worker(),
        Some("user_close") => return user_close_worker(),
        Some("crash") => std::process::exit(3),
        Some(other) => panic!("unknown entry {other}"),
        None => {}
    }
    eprint!("test serve_restart_and_shut_down_on_sigterm ... ");
    serve_restart_and_shut_down();
    eprintln!("ok");
    eprint!("test a_crash_loop_backs_off ... ");
    crash_loop_backs_off();
    eprintln!("ok");
    eprint!("test a_user_on_close_on_the_worker_channel_keeps_shutdown_graceful ... ");
    user_on_close_keeps_shutdown_graceful();
    eprintln!("ok");
}

/// A worker that listens on its channel's close itself (the channel is
/// documented as free for the app), and adds shutdown listeners, one
/// removed. Answers each connection with its pid, as `pid_worker`.
fn user_close_worker() {
    evloop::run(|| {
        let w = ClusterWorker::listen(|conn| {
            let s = conn.unwrap();
            // Read the question: unread bytes would hold the end back,
            // and the connection would keep the worker alive.
            s.on_data(|_| {});
            s.write(std::process::id().to_string().as_bytes());
            s.end();
        })
        .unwrap();
        let closed = Rc::new(std::cell::Cell::new(false));
        let c = closed.clone();
        w.channel().on_close(move |r| {
            r.unwrap();
            c.set(true);
        });
        w.channel().on_message(|_| {});
        let gone = w.on_shutdown(|| panic!("removed shutdown listener ran"));
        assert!(gone.remove());
        w.on_shutdown(|| {});
    })
    .unwrap();
}

/// Issue 19: a user's `on_close` on `ClusterWorker::channel()` used to
/// replace the worker's own stop handler, so a graceful shutdown ended in
/// SIGKILL after the grace period. Every worker must exit 0, well within
/// it.
fn user_on_close_keeps_shutdown_graceful() {
    let statuses = Rc::new(RefCell::new(Vec::new()));
    let shutdown_took = Rc::new(std::cell::Cell::new(None));
    let stopped_seen = Rc::new(std::cell::Cell::new(0));
    let (tx, rx) = mpsc::channel::<SocketAddr>();
    let client = std::thread::spawn(move || {
        let addr = rx.recv().unwrap();
        // Serving (and so past its setup), then a graceful shutdown.
        ask(addr);
        kill(std::process::id(), Signal::SIGTERM).unwrap();
    });
    let (st, took, seen) = (
        statuses.clone(),
        shutdown_took.clone(),
        stopped_seen.clone(),
    );
    evloop::run(move || {
        let cluster = Cluster::start("127.0.0.1:0", "user_close", 2).unwrap();
        tx.send(cluster.local_addr()).unwrap();
        let began = Rc::new(std::cell::Cell::new(None));
        cluster.on_event(move |ev| match ev {
            ClusterEvent::ShuttingDown => began.set(Some(Instant::now())),
            ClusterEvent::Exited { status, .. } => st.borrow_mut().push(status.unwrap()),
            ClusterEvent::Stopped => took.set(began.get().map(|t| t.elapsed())),
            _ => {}
        });
        // A second event listener sees the same events.
        cluster.on_event(move |ev| {
            if let ClusterEvent::Stopped = ev {
                seen.set(seen.get() + 1);
            }
        });
    })
    .unwrap();
    client.join().unwrap();
    let statuses = statuses.borrow();
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses.iter().all(|s| s.success()), "{statuses:?}");
    let took = shutdown_took.get().expect("stopped after shutting down");
    assert!(took < SHUTDOWN_GRACE, "shutdown took {took:?}");
    assert_eq!(stopped_seen.get(), 1);
}

/// Answers each connection with this worker's pid, then ends it.
fn pid_worker() {
    evloop::run(|| {
        let w = ClusterWorker::listen(|conn| {
            let s = conn.unwrap();
            // Read the client's "?" (and its end): an unread byte would hold
            // the connection, and the worker, open past a shutdown.
            s.on_data(|_| {});
            s.write(std::process::id().to_string().as_bytes());
            s.end();
        })
        .unwrap();
        w.on_shutdown(|| {});
    })
    .unwrap();
}

/// Connects and reads the serving worker's pid (retrying while a worker
/// restarts).
fn ask(addr: SocketAddr) -> u32 {
    let start = Instant::now();
    loop {
        let r = TcpStream::connect(addr).and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(5)))?;
            c.write_all(b"?")?;
            let mut s = String::new();
            c.read_to_string(&mut s)?;
            Ok(s)
        });
        match r.map(|s| s.parse()) {
            Ok(Ok(pid)) => return pid,
            other => {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "no answer: {other:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn serve_restart_and_shut_down() {
    let events = Rc::new(RefCell::new(Vec::new()));
    let pids_seen = Rc::new(RefCell::new(BTreeSet::new()));
    let (tx, rx) = mpsc::channel::<SocketAddr>();
    let (e, p) = (events.clone(), pids_seen.clone());
    let client = std::thread::spawn(move || {
        let addr = rx.recv().unwrap();
        // Both workers serve; kill whichever answered first.
        let first = ask(addr);
        kill(first, Signal::SIGKILL).unwrap();
        // Service goes on, and a new worker appears.
        let start = Instant::now();
        let mut after = BTreeSet::new();
        while after.len() < 2 || after.contains(&first) {
            after.insert(ask(addr));
            after.remove(&first);
            assert!(start.elapsed() < Duration::from_secs(30), "{after:?}");
        }
        // Graceful shutdown, as `kill -TERM <primary>` would do it.
        kill(std::process::id(), Signal::SIGTERM).unwrap();
        (first, after)
    });
    let started = Instant::now();
    let codes = Rc::new(RefCell::new(Vec::new()));
    let c = codes.clone();
    evloop::run(move || {
        let cluster = Cluster::start("127.0.0.1:0", "pid", 2).unwrap();
        tx.send(cluster.local_addr()).unwrap();
        cluster.on_event(move |ev| {
            match &ev {
                ClusterEvent::Started { pid, .. } => {
                    p.borrow_mut().insert(*pid);
                }
                ClusterEvent::Exited { status, .. } => {
                    let code = status.as_ref().ok().and_then(|s| s.code());
                    c.borrow_mut().push(code);
                }
                _ => {}
            }
            e.borrow_mut().push(format!("{ev:?}"));
        });
    })
    .unwrap();
    let (killed, survivors) = client.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    let events = events.borrow();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.split([' ', '{']).next().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "Started").count(),
        3,
        "{events:#?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "Exited").count(),
        3,
        "{events:#?}"
    );
    assert!(kinds.contains(&"Restarting"), "{events:#?}");
    assert_eq!(
        kinds[kinds.len() - 4..],
        ["ShuttingDown", "Exited", "Exited", "Stopped"],
        "{events:#?}"
    );
    // The killed worker died of SIGKILL (no code); the two stopped by the
    // shutdown exited 0, on their own, not killed after the grace period.
    assert_eq!(*codes.borrow(), [None, Some(0), Some(0)], "{events:#?}");
    // Every worker, the killed one included, was reaped.
    for pid in pids_seen.borrow().iter() {
        assert!(
            std::fs::metadata(format!("/proc/{pid}")).is_err(),
            "worker {pid} still exists"
        );
    }
    assert!(pids_seen.borrow().contains(&killed));
    assert!(survivors.iter().all(|p| pids_seen.borrow().contains(p)));
}

fn crash_loop_backs_off() {
    let delays = Rc::new(RefCell::new(Vec::new()));
    let d = delays.clone();
    let stopped = Rc::new(std::cell::Cell::new(false));
    let stopped2 = stopped.clone();
    evloop::run(move || {
        let cluster = Cluster::start("127.0.0.1:0", "crash", 1).unwrap();
        let c = cluster.clone();
        cluster.on_event(move |ev| match ev {
            ClusterEvent::Exited { status, .. } => {
                assert_eq!(status.unwrap().code(), Some(3));
            }
            ClusterEvent::Restarting { delay, .. } => {
                d.borrow_mut().push(delay);
                if d.borrow().len() == 4 {
                    c.shutdown();
                }
            }
            _ => {}
        });
        // The promise form of `Stopped`.
        let s = stopped2.clone();
        cluster.stopped().then(move |()| s.set(true));
    })
    .unwrap();
    assert!(stopped.get(), "Cluster::stopped() was fulfilled");
    let ms: Vec<u128> = delays.borrow().iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [100, 200, 400, 800]);
}
