//! Fair under load (issue 17): one busy connection or task does not starve
//! the others. Two kinds of check, neither timing anything:
//!
//! - **bounds**: how much one flooded stream (callbacks) or one task whose
//!   reads never wait (async) may do between two check phases, i.e. in one
//!   loop iteration, counted with an immediate that re-queues itself;
//! - **service**: while one client floods an echo server, a second
//!   client's round trips are all answered (with a generous deadline).
//!
//! The latency figures are a benchmark's job (benches/servers/fairness.sh).

mod support;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream as StdTcp};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use evloop::net::TcpListener;
use evloop::task::net::{TcpListener as AsyncListener, TcpStream as AsyncStream};
use evloop::{set_immediate, EventLoop};

/// Marks iterations: each immediate records the most work units done since
/// the previous one, and re-queues itself until `done`.
fn per_iteration_max(work: Rc<Cell<usize>>, max: Rc<Cell<usize>>, done: Rc<Cell<bool>>) {
    set_immediate(move || {
        max.set(max.get().max(work.replace(0)));
        if !done.get() {
            per_iteration_max(work, max, done);
        }
    });
}

/// A client on its own thread that writes `total` bytes as fast as the
/// socket takes them, and reads and drops whatever comes back.
fn flood(addr: SocketAddr, total: usize) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut s = StdTcp::connect(addr).unwrap();
        let mut r = s.try_clone().unwrap();
        let reader = thread::spawn(move || {
            let mut buf = vec![0; 64 * 1024];
            while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
        });
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        let _ = s.shutdown(Shutdown::Write);
        let _ = reader.join();
    })
}

/// A callback stream reads a bounded batch per iteration: its own batch in
/// the pending phase and at most one more for a new readiness event, never
/// the eight extra pending rounds it could take before.
#[test]
fn a_flooded_callback_stream_reads_a_bounded_batch_per_iteration() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let reads = Rc::new(Cell::new(0));
    let max = Rc::new(Cell::new(0));
    let done = Rc::new(Cell::new(false));
    let total = Rc::new(Cell::new(0usize));
    let addr;
    {
        let _g = el.enter();
        let (r, d, t) = (reads.clone(), done.clone(), total.clone());
        let listener = TcpListener::bind("127.0.0.1:0", move |conn| {
            let s = conn.unwrap();
            let (r, t) = (r.clone(), t.clone());
            s.on_data(move |b| {
                r.set(r.get() + 1);
                t.set(t.get() + b.len());
            });
            let d = d.clone();
            s.on_end(move || d.set(true));
        })
        .unwrap();
        addr = listener.local_addr();
        let l = listener.clone();
        let d = done.clone();
        per_iteration_max(reads.clone(), max.clone(), done.clone());
        // Close the listener once the flood is in.
        evloop::set_interval(Duration::from_millis(5), move || {
            if d.get() {
                l.close();
            }
        })
        .unref();
    }
    let flooder = flood(addr, 64 << 20);
    el.run().unwrap();
    flooder.join().unwrap();
    assert_eq!(total.get(), 64 << 20);
    eprintln!("most reads of one stream in one iteration: {}", max.get());
    assert!(max.get() <= 2 * 32, "{} reads in one iteration", max.get());
}

/// A task whose reads never wait yields after its budget: it does at most
/// a budget of operations per poll, so a few per iteration (and an
/// immediate queued before it started runs long before it is done).
#[test]
fn a_task_whose_reads_never_wait_yields_after_its_budget() {
    support::init_log();
    let ops = Rc::new(Cell::new(0));
    let max = Rc::new(Cell::new(0));
    let done = Rc::new(Cell::new(false));
    let (o, m, d) = (ops.clone(), max.clone(), done.clone());
    let total = evloop::block_on(async move {
        let listener = AsyncListener::bind("127.0.0.1:0").await.unwrap();
        let flooder = flood(listener.local_addr().unwrap(), 16 << 20);
        let (mut s, _) = listener.accept().await.unwrap();
        per_iteration_max(o.clone(), m, d.clone());
        // Small reads, so that the socket's buffer holds more of them than
        // one budget.
        let mut buf = [0u8; 512];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            o.set(o.get() + 1);
            if n == 0 {
                break;
            }
            total += n;
        }
        d.set(true);
        drop(s); // the flooder's reader waits for our end
        flooder.join().unwrap();
        total
    })
    .unwrap();
    assert_eq!(total, 16 << 20);
    eprintln!("most reads of one task in one iteration: {}", max.get());
    // One budget in the pending phase (where a yielded task resumes), and
    // at most one more if a readiness event wakes it in the poll phase.
    let budget = evloop::task::TASK_BUDGET as usize;
    assert!(
        max.get() <= 2 * budget + 1,
        "{} reads in one iteration",
        max.get()
    );
}

/// The echo service a probe checks: callbacks or async.
#[derive(Clone, Copy, Debug)]
enum Style {
    Callbacks,
    Async,
}

/// Starts an echo server of `style` on the current loop.
fn echo_server(style: Style) -> SocketAddr {
    match style {
        Style::Callbacks => {
            let l = TcpListener::bind("127.0.0.1:0", |conn| {
                let s = conn.unwrap();
                let w = s.clone();
                s.on_data(move |b| {
                    w.write(b);
                });
                s.on_error(|_| {});
            })
            .unwrap();
            l.local_addr()
        }
        Style::Async => {
            let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let l = AsyncListener::from_std(std).unwrap();
            let addr = l.local_addr().unwrap();
            let _ = evloop::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    let _ = evloop::spawn(echo(s));
                }
            });
            addr
        }
    }
}

async fn echo(mut s: AsyncStream) {
    let mut buf = vec![0; 16 * 1024];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// While one client floods the server (both ways), a second client's 20
/// round trips are all answered.
#[test]
fn a_probe_is_served_while_another_client_floods() {
    support::init_log();
    for style in [Style::Callbacks, Style::Async] {
        let el = EventLoop::new().unwrap();
        let addr = {
            let _g = el.enter();
            echo_server(style)
        };
        let remote = el.remote();
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        // The flooder: 2 s at most, until the probe is done.
        let flooder = thread::spawn(move || {
            let mut s = StdTcp::connect(addr).unwrap();
            let mut r = s.try_clone().unwrap();
            let reader = thread::spawn(move || {
                let mut buf = vec![0; 64 * 1024];
                while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
            });
            let chunk = vec![b'f'; 16 * 1024];
            let end = Instant::now() + Duration::from_secs(2);
            while !st.load(Ordering::Relaxed) && Instant::now() < end {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
            let _ = s.shutdown(Shutdown::Both);
            let _ = reader.join();
        });
        let st = stop.clone();
        let probe = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50)); // the flood is on
            let mut s = StdTcp::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut slowest = Duration::ZERO;
            for i in 0..20u64 {
                let t = Instant::now();
                s.write_all(&i.to_le_bytes()).unwrap();
                let mut back = [0u8; 8];
                s.read_exact(&mut back).expect("the probe is answered");
                assert_eq!(u64::from_le_bytes(back), i);
                slowest = slowest.max(t.elapsed());
            }
            st.store(true, Ordering::Relaxed);
            remote.stop();
            slowest
        });
        el.run().unwrap();
        let slowest = probe.join().expect("every probe answered");
        flooder.join().unwrap();
        eprintln!("{style:?}: 20 probes answered under a flood, slowest {slowest:?}");
    }
}
