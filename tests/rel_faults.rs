//! Reliability harness H6: faults injected by the fault shim
//! (`src/fault.rs`, built with the test-only `--cfg evloop_fault_injection`
//! flag) between the runtime and its syscalls. Run with
//! `RUSTFLAGS="--cfg evloop_fault_injection" CARGO_TARGET_DIR=target/cfg-test
//! cargo test --test rel_faults -- --nocapture` (`.ci/run` adds
//! `--cfg evloop_narrow_generation` to share one build with T02); each test
//! prints `FIGURE H6-...:` lines. Without the flag this file compiles to
//! nothing.
//!
//! The plan is per thread: each test sets it on its own thread, which runs
//! the loop. The peers (clients, readers) are plain blocking std sockets on
//! helper threads, which the plan does not touch.
#![cfg(evloop_fault_injection)]

mod support;

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::Duration;

use evloop::fault::{self, Op};
use evloop::net::{Stream, TcpListener, UdpSocket};
use evloop::process::{Command, Stdio};
use evloop::EventLoop;
use support::{cpu::CpuMeter, fds::FdCensus, watchdog::Test};

const EINTR: i32 = libc::EINTR;
const EAGAIN: i32 = libc::EAGAIN;
const EMFILE: i32 = libc::EMFILE;

/// Resets this thread's plan when dropped (also when the test fails).
struct PlanGuard;

impl PlanGuard {
    fn new() -> PlanGuard {
        fault::reset();
        PlanGuard
    }
}

impl Drop for PlanGuard {
    fn drop(&mut self) {
        fault::reset();
    }
}

/// The byte at offset `i` of client `id`'s stream: a pattern that shows
/// lost, repeated or reordered bytes.
fn pattern(id: usize, i: usize) -> u8 {
    ((i * 7 + id * 13 + i / 251) % 256) as u8
}

fn payload(id: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| pattern(id, i)).collect()
}

/// `n` blocking clients: each sends `bytes` of its pattern, half-closes,
/// reads the echo to EOF and reports whether it came back intact.
fn echo_clients(addr: SocketAddr, n: usize, bytes: usize) -> JoinHandle<Vec<bool>> {
    std::thread::spawn(move || {
        let clients: Vec<_> = (0..n)
            .map(|id| {
                std::thread::spawn(move || {
                    let mut c = std::net::TcpStream::connect(addr).unwrap();
                    let mut w = c.try_clone().unwrap();
                    let data = payload(id, bytes);
                    let sent = data.clone();
                    let writer = std::thread::spawn(move || {
                        w.write_all(&sent).unwrap();
                        w.shutdown(std::net::Shutdown::Write).unwrap();
                    });
                    let mut back = Vec::with_capacity(bytes);
                    c.read_to_end(&mut back).unwrap();
                    writer.join().unwrap();
                    back == data
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    })
}

/// What an echo run under a plan saw.
#[derive(Debug, Default)]
struct EchoRun {
    accepted: usize,
    accept_errors: Vec<io::Error>,
    stream_errors: Vec<String>,
    empty_chunks: usize,
    ends: usize,
    closes: usize,
    intact: usize,
    iterations: u64,
    cpu: Duration,
    wall: Duration,
}

/// A loop echo server for `n` clients of `bytes` each, run on this thread
/// under whatever plan the caller set; the listener closes once `n`
/// streams have closed, so the loop ends by itself.
fn echo_run(n: usize, bytes: usize) -> EchoRun {
    let el = EventLoop::new().unwrap();
    let out = Rc::new(RefCell::new(EchoRun::default()));
    let meter = CpuMeter::start();
    let clients = {
        let _g = el.enter();
        let o = out.clone();
        let me: Rc<RefCell<Option<TcpListener>>> = Rc::default();
        let me2 = me.clone();
        let l = TcpListener::bind("127.0.0.1:0", move |conn| {
            let s: Stream = match conn {
                Ok(s) => s,
                Err(e) => {
                    o.borrow_mut().accept_errors.push(e);
                    return;
                }
            };
            o.borrow_mut().accepted += 1;
            let (s2, o2, o3, o4, o5) = (s.clone(), o.clone(), o.clone(), o.clone(), o.clone());
            let me3 = me2.clone();
            s.on_data(move |b| {
                if b.is_empty() {
                    o2.borrow_mut().empty_chunks += 1;
                }
                s2.write(b);
            });
            s.on_end(move || o3.borrow_mut().ends += 1);
            s.on_error(move |e| o4.borrow_mut().stream_errors.push(e.to_string()));
            s.on_close(move |_| {
                let mut o = o5.borrow_mut();
                o.closes += 1;
                if o.closes == n {
                    if let Some(l) = me3.borrow_mut().take() {
                        l.close();
                    }
                }
            });
        })
        .unwrap();
        let addr = l.local_addr();
        *me.borrow_mut() = Some(l);
        echo_clients(addr, n, bytes)
    };
    el.run().unwrap();
    let (cpu, wall) = meter.read();
    let oks = clients.join().unwrap();
    let mut o = out.take();
    o.intact = oks.iter().filter(|ok| **ok).count();
    o.iterations = el.iterations();
    o.cpu = cpu;
    o.wall = wall;
    o
}

/// The checks every echo run must pass: everything accepted, echoed
/// intact, ended and closed once each, no error and no empty chunk.
fn assert_clean_echo(what: &str, r: &EchoRun, n: usize) {
    assert!(r.accept_errors.is_empty(), "{what}: {:?}", r.accept_errors);
    assert!(r.stream_errors.is_empty(), "{what}: {:?}", r.stream_errors);
    assert_eq!(r.accepted, n, "{what}: accepted");
    assert_eq!(r.intact, n, "{what}: clients whose echo came back intact");
    assert_eq!((r.ends, r.closes), (n, n), "{what}: ends and closes");
    assert_eq!(r.empty_chunks, 0, "{what}: empty data chunks");
}

// ------------------------------------------------------------- EINTR ----

/// EINTR on stream reads and writes and on accept is retried where it
/// happens: no error reaches a callback, no byte is lost.
#[test]
fn h6_eintr_on_read_write_accept_is_retried() {
    let t = Test::start("H6-EINTR", Duration::from_secs(60));
    let _p = PlanGuard::new();
    let fds = FdCensus::new();
    let (n, bytes) = (8, 256 * 1024);
    fault::fail_every(Op::Read, 2, EINTR);
    fault::fail_every(Op::Write, 2, EINTR);
    fault::fail_every(Op::Accept, 2, EINTR);
    fault::fail_next(Op::Accept, 5, EINTR);
    let r = echo_run(n, bytes);
    let s = fault::stats();
    assert_clean_echo("EINTR", &r, n);
    for op in [Op::Read, Op::Write, Op::Accept] {
        assert!(s.errors(op) > 0, "no EINTR injected on {op:?}");
    }
    fds.assert_back("EINTR");
    t.figure(format_args!(
        "{n} clients x {} KiB echoed intact; EINTR injected: {} reads, {} writes, {} accepts \
         (of {}, {}, {} calls); 0 errors surfaced; {} iterations, CPU {:?} in {:?}",
        bytes / 1024,
        s.errors(Op::Read),
        s.errors(Op::Write),
        s.errors(Op::Accept),
        s.calls(Op::Read),
        s.calls(Op::Write),
        s.calls(Op::Accept),
        r.iterations,
        r.cpu,
        r.wall
    ));
}

// ------------------------------------------------------------- EAGAIN ---

/// EAGAIN where the kernel had data or room (after readiness) loses
/// nothing: the stream waits for the next edge (which the shim owes it) and
/// goes on. It does not spin: each injected EAGAIN costs at most a bounded
/// number of loop iterations, and an idle stream under the plan sleeps.
#[test]
fn h6_eagain_after_readiness_loses_nothing_and_does_not_spin() {
    let t = Test::start("H6-EAGAIN", Duration::from_secs(60));
    let _p = PlanGuard::new();
    let (n, bytes) = (8, 256 * 1024);
    fault::fail_every(Op::Read, 3, EAGAIN);
    fault::fail_every(Op::Write, 3, EAGAIN);
    fault::fail_every(Op::Accept, 2, EAGAIN);
    let r = echo_run(n, bytes);
    let s = fault::stats();
    assert_clean_echo("EAGAIN", &r, n);
    let injected = s.errors(Op::Read) + s.errors(Op::Write) + s.errors(Op::Accept);
    assert!(injected > 0 && s.errors(Op::Accept) > 0);
    // Each owed edge is one dispatch in a later poll: the iterations stay
    // within the injections plus the real events, never a spin.
    let bound = 2 * injected + 2 * s.calls(Op::Read) + 1000;
    assert!(
        r.iterations <= bound,
        "{} iterations for {injected} injected EAGAINs",
        r.iterations
    );

    // Part 2: one stream with 5 bytes waiting gets EAGAIN on its next
    // 2,000 reads: the bytes arrive after them. One read per injection (no
    // retry loop inside a dispatch) and about one loop iteration per owed
    // edge: the cost is bounded by the injections, not a spin.
    fault::reset();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g2 = got.clone();
    let (el, mut client) = one_connection(move |s| {
        let s2 = s.clone();
        s.on_data(move |d| {
            g2.borrow_mut().extend_from_slice(d);
            if g2.borrow().len() == 5 {
                s2.destroy();
            }
        });
    });
    client.write_all(b"hello").unwrap();
    fault::fail_next(Op::Read, 2000, EAGAIN);
    let it0 = el.iterations();
    let meter = CpuMeter::start();
    el.run().unwrap();
    let (cpu, wall) = meter.read();
    let iters = el.iterations() - it0;
    let s2 = fault::stats();
    assert_eq!(&got.borrow()[..], b"hello");
    assert_eq!(s2.errors(Op::Read), 2000);
    let reads = s2.calls(Op::Read);
    assert!(
        (2001..=2010).contains(&reads),
        "{reads} read calls for 2,000 injected EAGAINs"
    );
    assert!(
        (1000..=2100).contains(&iters),
        "{iters} iterations for 2,000 owed edges"
    );
    // Loose: 2,000 iterations with one read each.
    assert!(cpu < Duration::from_secs(2), "CPU {cpu:?}");
    t.figure(format_args!(
        "echo {n} x {} KiB intact with EAGAIN on 1/3 of reads and writes and 1/2 of accepts \
         ({} + {} + {} injected, {} owed edges delivered): {} iterations (bound {bound}), CPU {:?} \
         in {:?}",
        bytes / 1024,
        s.errors(Op::Read),
        s.errors(Op::Write),
        s.errors(Op::Accept),
        s.owed_edges,
        r.iterations,
        r.cpu,
        r.wall
    ));
    t.figure(format_args!(
        "2,000 EAGAINs on one stream with 5 bytes waiting: {reads} reads, {iters} iterations, \
         CPU {cpu:?} in {wall:?}, the 5 bytes intact"
    ));
}

/// A loop with a listener that hands its first connection to `setup` and
/// closes, and a blocking client already connected to it (the loop accepts
/// it when it runs).
fn one_connection(setup: impl FnOnce(Stream) + 'static) -> (EventLoop, std::net::TcpStream) {
    let el = EventLoop::new().unwrap();
    let client = {
        let _g = el.enter();
        let setup = RefCell::new(Some(setup));
        let me: Rc<RefCell<Option<TcpListener>>> = Rc::default();
        let me2 = me.clone();
        let l = TcpListener::bind("127.0.0.1:0", move |conn| {
            if let Some(l) = me2.borrow_mut().take() {
                l.close();
            }
            if let Some(f) = setup.borrow_mut().take() {
                f(conn.unwrap());
            }
        })
        .unwrap();
        let addr = l.local_addr();
        *me.borrow_mut() = Some(l);
        std::net::TcpStream::connect(addr).unwrap()
    };
    (el, client)
}

// -------------------------------------------------------- short I/O ----

/// Short reads (every read capped at 7 bytes, so each returns less than
/// asked while more is waiting): every byte still arrives, in order,
/// through TCP streams and a child's stdout pipe, and every stream ends.
#[test]
fn h6_short_reads_deliver_everything_in_order() {
    let t = Test::start("H6-SHORT-READ", Duration::from_secs(60));
    let _p = PlanGuard::new();
    let (n, bytes) = (4, 64 * 1024);
    fault::cap(Op::Read, Some(7));
    let r = echo_run(n, bytes);
    assert_clean_echo("short reads", &r, n);
    // A child's stdout: 20,000 numbered lines through `seq`.
    let out = Rc::new(RefCell::new(Vec::new()));
    let ended = Rc::new(Cell::new(false));
    let (o2, e2) = (out.clone(), ended.clone());
    evloop::run(move || {
        let child = Command::new("seq")
            .arg("20000")
            .stdout(Stdio::Piped)
            .spawn()
            .expect("spawn");
        let so = child.stdout.clone().unwrap();
        so.on_data(move |d| o2.borrow_mut().extend_from_slice(d));
        so.on_end(move || e2.set(true));
        child.on_exit(|s| assert!(s.unwrap().success()));
    })
    .unwrap();
    let want: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    assert!(ended.get(), "the child's stdout ended");
    assert!(
        out.borrow().as_slice() == want.as_bytes(),
        "the child's output arrived whole and in order"
    );
    let s = fault::stats();
    assert!(s.short_reads > 1000);
    t.figure(format_args!(
        "reads capped at 7 bytes: {n} x {} KiB echoed intact over TCP and {} bytes of `seq` \
         through a pipe, in order; {} short reads; echo {} iterations, CPU {:?} in {:?}",
        bytes / 1024,
        want.len(),
        s.short_reads,
        r.iterations,
        r.cpu,
        r.wall
    ));
}

/// Short writes (every write capped at 1,000 bytes, and every 5th write
/// failing with EAGAIN so the queue fills): a writer that respects
/// backpressure gets every byte to the peer in order, `on_drain` fires,
/// and the write callbacks run once each, in order, all `Ok`. The same
/// through a child's stdin pipe (`cat` echoes it back).
#[test]
fn h6_short_writes_deliver_everything_in_order() {
    let t = Test::start("H6-SHORT-WRITE", Duration::from_secs(60));
    let _p = PlanGuard::new();
    let total = 2 * 1024 * 1024;
    let chunk = 64 * 1024;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        got
    });
    fault::cap(Op::Write, Some(1000));
    fault::fail_every(Op::Write, 5, EAGAIN);
    let drains = Rc::new(Cell::new(0));
    let done: Rc<RefCell<Vec<(usize, bool)>>> = Rc::default();
    let (d2, done2) = (drains.clone(), done.clone());
    evloop::run(move || {
        evloop::net::connect(addr, move |r| {
            let s = r.unwrap();
            // Writes chunks until `write` says stop, then waits for drain.
            let next = Rc::new(Cell::new(0usize));
            let pump: Rc<dyn Fn()> = {
                let (s, next, done) = (s.clone(), next.clone(), done2.clone());
                Rc::new(move || loop {
                    let i = next.get();
                    if i * chunk >= total {
                        s.end();
                        return;
                    }
                    next.set(i + 1);
                    let data: Vec<u8> = (i * chunk..(i + 1) * chunk)
                        .map(|k| pattern(0, k))
                        .collect();
                    let d = done.clone();
                    if !s.write_with(&data, move |r| d.borrow_mut().push((i, r.is_ok()))) {
                        return;
                    }
                })
            };
            let p2 = pump.clone();
            s.on_drain(move || {
                d2.set(d2.get() + 1);
                p2();
            });
            pump();
        });
    })
    .unwrap();
    let got = peer.join().unwrap();
    let s = fault::stats();
    let chunks = total / chunk;
    assert_eq!(got.len(), total, "bytes at the peer");
    assert!(
        got.iter().enumerate().all(|(k, b)| *b == pattern(0, k)),
        "bytes in order"
    );
    let done = done.borrow();
    assert_eq!(done.len(), chunks, "one write callback per write");
    assert!(
        done.iter().enumerate().all(|(i, (j, ok))| i == *j && *ok),
        "in order, all Ok"
    );
    assert!(drains.get() >= 1, "on_drain fired");
    assert!(s.short_writes > 0 && s.errors(Op::Write) > 0);

    // A child's stdin pipe under the same plan.
    let back = Rc::new(RefCell::new(Vec::new()));
    let b2 = back.clone();
    let sent = payload(1, 256 * 1024);
    let sent2 = sent.clone();
    evloop::run(move || {
        let child = Command::new("cat")
            .stdin(Stdio::Piped)
            .stdout(Stdio::Piped)
            .spawn()
            .expect("spawn");
        let (i, o) = (child.stdin.clone().unwrap(), child.stdout.clone().unwrap());
        o.on_data(move |d| b2.borrow_mut().extend_from_slice(d));
        i.write(&sent2);
        i.end();
        child.on_exit(|s| assert!(s.unwrap().success()));
    })
    .unwrap();
    assert!(
        *back.borrow() == sent,
        "the child's echo came back whole and in order"
    );
    let s2 = fault::stats();
    t.figure(format_args!(
        "writes capped at 1,000 bytes and every 5th EAGAIN: {} MiB over TCP in {chunks} writes \
         arrived in order, {chunks} callbacks in order all Ok, {} drains; 256 KiB through \
         `cat`'s stdin came back whole; {} short writes, {} EAGAINs, {} owed edges",
        total >> 20,
        drains.get(),
        s2.short_writes,
        s2.errors(Op::Write),
        s2.owed_edges
    ));
}

// ------------------------------------------------------ EMFILE accept ----

/// EMFILE on accept: reported to the connection callback once, accepting
/// backs off (no busy loop: few iterations, little CPU), and every client
/// waiting in the backlog is served once the plan ends.
#[test]
fn h6_emfile_on_accept_reported_once_no_spin_recovers() {
    let t = Test::start("H6-EMFILE", Duration::from_secs(60));
    let _p = PlanGuard::new();
    let (n, bytes) = (20, 4096);
    // Each burst is two injected failures: the accept, and the accept that
    // the reserve-fd trick tries after closing its reserve (so nothing is
    // shed, as the fds are not really short). Three bursts, then real
    // accepts serve everyone.
    let backoffs = 6;
    fault::fail_next(Op::Accept, backoffs, EMFILE);
    let r = echo_run(n, bytes);
    let s = fault::stats();
    assert_eq!(r.accept_errors.len(), 1, "EMFILE reported once");
    assert_eq!(r.accept_errors[0].raw_os_error(), Some(EMFILE));
    assert_eq!(s.errors(Op::Accept), backoffs as u64);
    assert_eq!(
        (r.accepted, r.intact, r.closes),
        (n, n, n),
        "all served after"
    );
    assert!(r.stream_errors.is_empty(), "{:?}", r.stream_errors);
    // 3 backoffs of 100 ms: about one iteration each, plus the echoes.
    assert!(r.iterations <= 200, "{} iterations", r.iterations);
    assert!(r.cpu < Duration::from_millis(400), "CPU {:?}", r.cpu);
    t.figure(format_args!(
        "{backoffs} EMFILE on accept with {n} clients waiting: reported {} time(s) ({}), \
         {} of {n} served after; {} iterations, CPU {:?} in {:?}",
        r.accept_errors.len(),
        r.accept_errors[0],
        r.intact,
        r.iterations,
        r.cpu,
        r.wall
    ));
}

// --------------------------------------------------- spurious events ----

/// A spurious readable + writable event to every registered source on
/// every poll: TCP (listener, connecting and connected streams, a paused
/// stream), UDP, a child's stdout pipe, the child watcher and a signal
/// handler. No callback sees bogus data, an EOF, an error or a signal; no
/// callback runs more than the real traffic asks; the loop still ends.
#[test]
fn h6_spurious_readiness_every_poll_is_harmless() {
    let t = Test::start("H6-SPURIOUS", Duration::from_secs(60));
    let _p = PlanGuard::new();
    fault::spurious_every(1);
    let (n, bytes) = (16, 64 * 1024);
    let r = echo_run(n, bytes);
    assert_clean_echo("spurious", &r, n);
    let echo_spurious = fault::stats().spurious;
    assert!(echo_spurious > 0);

    #[derive(Default)]
    struct Seen {
        child_out: Vec<u8>,
        child_ends: usize,
        signals: usize,
        paused_data: usize,
        resumed: Vec<u8>,
        paused_ends: usize,
        connects: usize,
        errors: Vec<String>,
    }
    let seen = Rc::new(RefCell::new(Seen::default()));
    let udp = Rc::new(RefCell::new(UdpSeen::default()));
    let datagrams = 200;
    let (l, addr) = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    };
    // The peer of the paused stream: sends 10 KiB, waits, closes.
    let peer = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        c.write_all(&payload(2, 10 * 1024)).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
    });
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let sn = seen.clone();
        // UDP: 200 numbered datagrams.
        udp_exchange(datagrams, udp.clone());
        // A child's stdout.
        let child = Command::new("seq")
            .arg("5000")
            .stdout(Stdio::Piped)
            .spawn()
            .expect("spawn");
        let (s3, s4) = (sn.clone(), sn.clone());
        let out = child.stdout.clone().unwrap();
        out.on_data(move |d| s3.borrow_mut().child_out.extend_from_slice(d));
        out.on_end(move || s4.borrow_mut().child_ends += 1);
        child.on_exit(|s| assert!(s.unwrap().success()));
        // A signal handler that no signal reaches.
        let s5 = sn.clone();
        let sig = evloop::process::on_signal(evloop::process::Signal::SIGUSR2, move |_| {
            s5.borrow_mut().signals += 1
        })
        .unwrap();
        // A connecting stream, then paused for 200 ms with data waiting.
        let s6 = sn.clone();
        evloop::net::connect(addr, move |r| {
            let s = r.unwrap();
            s6.borrow_mut().connects += 1;
            s.pause();
            let (s7, s8, s9, s10) = (s6.clone(), s6.clone(), s6.clone(), s6.clone());
            let resumed = Rc::new(Cell::new(false));
            let r2 = resumed.clone();
            s.on_data(move |d| {
                let mut s = s7.borrow_mut();
                if r2.get() {
                    s.resumed.extend_from_slice(d);
                } else {
                    s.paused_data += 1;
                }
            });
            s.on_end(move || s8.borrow_mut().paused_ends += 1);
            s.on_error(move |e| s9.borrow_mut().errors.push(e.to_string()));
            let s2 = s.clone();
            // A 1 ms interval makes the loop poll about 200 times while
            // the stream is paused, each poll with its spurious events.
            let tick = evloop::set_interval(Duration::from_millis(1), || {});
            evloop::set_timeout(Duration::from_millis(200), move || {
                tick.clear();
                resumed.set(true);
                s2.resume();
                // The signal handler goes too, so the loop can end.
                sig.close();
                let _ = &s10;
            });
        });
    }
    el.run().unwrap();
    peer.join().unwrap();
    let s = fault::stats();
    let polls = el.iterations();
    assert!(
        s.spurious - echo_spurious >= polls,
        "a spurious event every poll"
    );
    let seen = seen.borrow();
    let want: String = (1..=5000).map(|i| format!("{i}\n")).collect();
    assert!(seen.errors.is_empty(), "{:?}", seen.errors);
    let udp = udp.borrow();
    assert!(udp.errors.is_empty(), "{:?}", udp.errors);
    assert_eq!(udp.sends_ok, datagrams);
    assert_eq!(udp.got, (0..datagrams as u32).collect::<Vec<_>>());
    assert!(seen.child_out == want.as_bytes(), "child output intact");
    assert_eq!(seen.child_ends, 1);
    assert_eq!(seen.signals, 0, "no signal callback from a spurious event");
    assert_eq!(seen.connects, 1);
    assert_eq!(seen.paused_data, 0, "no data while paused");
    assert!(
        seen.resumed == payload(2, 10 * 1024),
        "data after resume intact"
    );
    assert_eq!(seen.paused_ends, 1);
    t.figure(format_args!(
        "spurious readable+writable to every source every poll: echo {n} x {} KiB intact \
         ({echo_spurious} spurious events, {} iterations); then UDP {datagrams}/{datagrams} \
         datagrams in order, `seq` output intact, 0 signal callbacks, 0 data callbacks while \
         paused and 10 KiB intact after resume, 1 connect, 1 end each ({} spurious events in \
         {polls} iterations); 0 errors, the loops ended",
        bytes / 1024,
        r.iterations,
        s.spurious - echo_spurious
    ));
}

// -------------------------------------------------------- poll EINTR ----

/// EINTR from `epoll_wait` 50 times in a row: a 30 ms timer still fires
/// once and not early, and no error reaches `run`.
#[test]
fn h6_eintr_on_poll_is_retried() {
    let t = Test::start("H6-POLL-EINTR", Duration::from_secs(30));
    let _p = PlanGuard::new();
    fault::fail_next(Op::Poll, 50, EINTR);
    let fired = Rc::new(Cell::new(0));
    let f2 = fired.clone();
    let start = std::time::Instant::now();
    let at = Rc::new(Cell::new(Duration::ZERO));
    let a2 = at.clone();
    evloop::run(move || {
        evloop::set_timeout(Duration::from_millis(30), move || {
            f2.set(f2.get() + 1);
            a2.set(start.elapsed());
        });
    })
    .unwrap();
    let s = fault::stats();
    assert_eq!(fired.get(), 1);
    assert!(
        at.get() >= Duration::from_millis(30),
        "fired early: {:?}",
        at.get()
    );
    assert_eq!(s.errors(Op::Poll), 50);
    t.figure(format_args!(
        "50 EINTR from poll: the 30 ms timer fired once, at {:?}; {} poll calls",
        at.get(),
        s.calls(Op::Poll)
    ));
}

// ---------------------------------------------------------- UDP EINTR ----

/// EINTR on every other UDP send and receive: every datagram is sent (each
/// send callback `Ok`) and received, none reports an error.
#[test]
fn h6_eintr_on_udp_send_and_recv_is_retried() {
    let t = Test::start("H6-UDP-EINTR", Duration::from_secs(30));
    let _p = PlanGuard::new();
    fault::fail_every(Op::Send, 2, EINTR);
    fault::fail_every(Op::Recv, 2, EINTR);
    let n = 500;
    let u = Rc::new(RefCell::new(UdpSeen::default()));
    let u2 = u.clone();
    evloop::run(move || udp_exchange(n, u2)).unwrap();
    let u = u.take();
    let s = fault::stats();
    assert!(u.errors.is_empty(), "{:?}", u.errors);
    assert_eq!(u.sends_ok, n);
    assert_eq!(u.got, (0..n as u32).collect::<Vec<_>>());
    t.figure(format_args!(
        "{n} datagrams with EINTR on every other send and receive ({} + {} injected): all sent \
         Ok, all received in order, 0 errors",
        s.errors(Op::Send),
        s.errors(Op::Recv)
    ));
}

/// What [`udp_exchange`] saw.
#[derive(Default)]
struct UdpSeen {
    got: Vec<u32>,
    sends_ok: usize,
    errors: Vec<String>,
}

/// Sends `n` numbered datagrams between two loop UDP sockets, 50 at a
/// time (the next 50 once these arrived, so the receive buffer never
/// overflows), then closes both.
fn udp_exchange(n: usize, seen: Rc<RefCell<UdpSeen>>) {
    const BATCH: usize = 50;
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = b.local_addr().unwrap();
    let send_batch = {
        let (a, b, seen) = (a.clone(), b.clone(), seen.clone());
        move |from: usize| {
            for i in from..(from + BATCH).min(n) {
                let (s, a2, b2) = (seen.clone(), a.clone(), b.clone());
                a.send_to(&(i as u32).to_le_bytes(), to, move |r| match r {
                    Ok(_) => s.borrow_mut().sends_ok += 1,
                    Err(e) => {
                        // That datagram never comes: stop here and report.
                        s.borrow_mut().errors.push(format!("send {i}: {e:?}"));
                        a2.close();
                        b2.close();
                    }
                });
            }
        }
    };
    send_batch(0);
    let (b2, a2, s2, s3) = (b.clone(), a.clone(), seen.clone(), seen);
    b.on_error(move |e| s2.borrow_mut().errors.push(format!("recv: {e:?}")));
    b.on_message(move |d, _| {
        let k = {
            let mut s = s3.borrow_mut();
            match <[u8; 4]>::try_from(d) {
                Ok(v) => s.got.push(u32::from_le_bytes(v)),
                Err(_) => s.errors.push(format!("bad datagram of {} bytes", d.len())),
            }
            s.got.len()
        };
        if k == n {
            b2.close();
            a2.close();
        } else if k % BATCH == 0 {
            send_batch(k);
        }
    });
}

// --------------------------------------------- open and spawn errors ----

/// An injected error on `fs::File::open` and on `Command::spawn` comes
/// back the same through callback, promise and `await`: same kind, same
/// OS code (EMFILE for open; spawn keeps the kind only, as for every
/// spawn error), and the next call works.
#[test]
fn h6_open_and_spawn_errors_same_three_ways() {
    let t = Test::start("H6-OPEN-SPAWN", Duration::from_secs(30));
    let _p = PlanGuard::new();
    type Seen = Rc<RefCell<Vec<(&'static str, io::ErrorKind, Option<i32>)>>>;
    let seen: Seen = Rc::default();
    let path = std::env::temp_dir().join(format!("evloop-h6-{}", std::process::id()));
    std::fs::write(&path, b"x").unwrap();
    let after = Rc::new(Cell::new((false, false)));
    let (sn, p, a2) = (seen.clone(), path.clone(), after.clone());
    evloop::run(move || {
        fault::fail_next(Op::Open, 3, EMFILE);
        fault::fail_next(Op::Spawn, 3, libc::EAGAIN);
        let s = sn.clone();
        evloop::fs::File::open(&p, "r", move |r| {
            let e = r.expect_err("open fails");
            s.borrow_mut()
                .push(("open callback", e.kind(), evloop::fs::raw_os_error(&e)));
        });
        let s = sn.clone();
        evloop::fs::promises::open(&p, "r")
            .then(|_| panic!("open fails"))
            .catch(move |e| {
                s.borrow_mut()
                    .push(("open promise", e.kind(), e.raw_os_error()))
            });
        let s = sn.clone();
        let e = Command::new("true").spawn().expect_err("spawn fails");
        s.borrow_mut()
            .push(("spawn callback", e.kind(), e.raw_os_error()));
        let s = sn.clone();
        evloop::process::promises::exec(&mut Command::new("true"))
            .then(|_| panic!("spawn fails"))
            .catch(move |e| {
                s.borrow_mut()
                    .push(("spawn promise", e.kind(), e.raw_os_error()))
            });
        let (s, p2) = (sn.clone(), p.clone());
        let _ = evloop::spawn(async move {
            let e = evloop::fs::promises::open(&p2, "r")
                .await
                .expect_err("open fails");
            s.borrow_mut()
                .push(("open await", e.kind(), e.raw_os_error()));
            let e = evloop::process::promises::exec(&mut Command::new("true"))
                .await
                .expect_err("spawn fails");
            s.borrow_mut()
                .push(("spawn await", e.kind(), e.raw_os_error()));
            // The plan is used up: both work again.
            let opened = evloop::fs::promises::open(&p2, "r").await.is_ok();
            let spawned = Command::new("true")
                .spawn()
                .expect("spawn")
                .wait()
                .await
                .is_ok();
            a2.set((opened, spawned));
        });
    })
    .unwrap();
    std::fs::remove_file(&path).ok();
    let seen = seen.borrow();
    let get = |name: &str| {
        let (_, k, c) = seen
            .iter()
            .find(|(n, ..)| *n == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        (*k, *c)
    };
    assert_eq!(seen.len(), 6, "{seen:?}");
    let open = get("open callback");
    assert_eq!(
        open,
        (io::Error::from_raw_os_error(EMFILE).kind(), Some(EMFILE))
    );
    assert_eq!(get("open promise"), open);
    assert_eq!(get("open await"), open);
    let spawn = get("spawn callback");
    assert_eq!(spawn.0, io::ErrorKind::WouldBlock);
    assert_eq!(get("spawn promise"), spawn);
    assert_eq!(get("spawn await"), spawn);
    assert_eq!(
        after.get(),
        (true, true),
        "open and spawn work once the plan is used up"
    );
    let s = fault::stats();
    assert_eq!((s.errors(Op::Open), s.errors(Op::Spawn)), (3, 3));
    t.figure(format_args!(
        "open EMFILE: {:?}/{:?} three ways; spawn EAGAIN: {:?}/{:?} three ways; both work after",
        open.0, open.1, spawn.0, spawn.1
    ));
}
