//! T49, the mixed soak (the reliability catalogue, TESTS.md in the team's
//! shared docs, section J): not part of a plain `cargo test` (it is
//! `#[ignore]`d); run it with `scripts/soak.sh [SECONDS]` (60 s by default; 600
//! for the catalogue's 10 minutes). One loop runs, at once:
//!
//! * 500 echo connections that churn (each does one round trip, closes,
//!   and a new one connects in its place a second later);
//! * 10,000 timers per second, half of them cleared before they fire;
//! * 1,000 fs operations per second on the pool;
//! * 1 child process per second;
//! * 1,000 promise chains per second, 1% of them rejected and handled.
//!
//! Every `REL_B_SOAK_SAMPLE` seconds (10 by default) it samples the live
//! heap, open fds, live handles and threads. It fails on a panic, an
//! unhandled rejection (strict mode), or growth: after the first sample
//! (warm-up), the last heap sample must stay within 2% (plus 512 KiB) of
//! the second; fds, handles and threads, which count work in flight at
//! the instant of the sample, within 50% of the largest earlier sample;
//! and neither heap nor fds may grow at every sample. After the loop
//! ends, fds return to their count before it.

mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use evloop::net::{connect, TcpListener};
use evloop::process::Command;
use evloop::promise::{Promise, Rejection};
use evloop::EventLoop;

/// H1: this binary's heap, counted (`support::alloc`).
#[global_allocator]
static HEAP: support::alloc::Counting = support::alloc::Counting;

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    heap: usize,
    fds: usize,
    handles: usize,
    threads: usize,
}

#[derive(Default)]
struct Counts {
    echoes: Cell<u64>,
    timers_fired: Cell<u64>,
    timers_cleared: Cell<u64>,
    fs_ops: Cell<u64>,
    children: Cell<u64>,
    chains_ok: Cell<u64>,
    chains_rejected: Cell<u64>,
}

/// One echo client: connect, send, read the echo back, close, and start a
/// new one in its place until `stop`.
fn echo_client(addr: std::net::SocketAddr, counts: Rc<Counts>, stop: Rc<Cell<bool>>) {
    if stop.get() {
        return;
    }
    connect(addr, move |r| {
        let s = r.expect("soak connect");
        let msg = b"soak echo payload";
        let got = Rc::new(RefCell::new(Vec::new()));
        let (g, s2, c2) = (got.clone(), s.clone(), counts.clone());
        s.on_data(move |b| {
            g.borrow_mut().extend_from_slice(b);
            if g.borrow().len() >= msg.len() {
                assert_eq!(&g.borrow()[..], msg);
                c2.echoes.set(c2.echoes.get() + 1);
                s2.end();
            }
        });
        s.on_close(move |err| {
            assert!(!err, "echo connection failed");
            // The next connection in this slot, after a pause: 500 slots
            // churn about 500 connections a second.
            evloop::set_timeout(Duration::from_secs(1), move || {
                echo_client(addr, counts, stop)
            });
        });
        s.write(msg);
    });
}

#[test]
#[ignore = "the mixed soak runs from scripts/soak.sh (60 s by default)"]
fn t49_mixed_soak() {
    let secs = env_secs("REL_B_SOAK_SECS", 60);
    let sample_every = env_secs("REL_B_SOAK_SAMPLE", 10).max(1);
    let _w = support::watchdog::Watchdog::new("t49", Duration::from_secs(secs + 120));
    support::init_log();
    let (_, hard) = support::limits::nofile();
    support::limits::set_soft(libc::RLIMIT_NOFILE, hard);
    let fds_before = support::fds::fd_count();
    let el = EventLoop::new().unwrap();
    el.set_unhandled_rejections(evloop::promise::UnhandledRejections::Strict);
    let counts = Rc::new(Counts::default());
    let stop = Rc::new(Cell::new(false));
    let samples: Rc<RefCell<Vec<Sample>>> = Rc::default();
    let dir = std::env::temp_dir().join(format!("evloop-rel-b-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("f");
    std::fs::write(&file, vec![1u8; 4096]).unwrap();
    let start = Instant::now();
    let el_handles = Rc::new(Cell::new(0usize));
    {
        let _g = el.enter();
        // Echo server and 500 churning clients.
        let server = TcpListener::bind("127.0.0.1:0", |c| {
            let s = c.unwrap();
            let w = s.clone();
            s.on_data(move |b| {
                w.write(b);
            });
        })
        .unwrap();
        let addr = server.local_addr();
        for _ in 0..500 {
            echo_client(addr, counts.clone(), stop.clone());
        }
        // Every 10 ms: 100 timers (half cleared), 10 fs ops, 10 chains.
        let (c, st) = (counts.clone(), stop.clone());
        let round = Rc::new(Cell::new(0u64));
        let tick: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
        let tick2 = tick.clone();
        *tick.borrow_mut() = Some(evloop::set_interval(Duration::from_millis(10), move || {
            if st.get() {
                tick2.borrow_mut().take().unwrap().clear();
                return;
            }
            let r = round.get();
            round.set(r + 1);
            for i in 0..100u64 {
                let c2 = c.clone();
                let t =
                    evloop::set_timeout(Duration::from_millis(1 + (r * 7 + i) % 40), move || {
                        c2.timers_fired.set(c2.timers_fired.get() + 1)
                    });
                if i % 2 == 0 {
                    t.clear();
                    c.timers_cleared.set(c.timers_cleared.get() + 1);
                }
            }
            for _ in 0..10 {
                let c2 = c.clone();
                evloop::fs::metadata(&file, move |m| {
                    assert_eq!(m.unwrap().len(), 4096);
                    c2.fs_ops.set(c2.fs_ops.get() + 1);
                });
            }
            for i in 0..10u64 {
                let (c2, c3) = (c.clone(), c.clone());
                let fail = (r * 10 + i) % 100 == 0;
                Promise::resolve(r)
                    .then(|v| v + 1)
                    .and_then(move |v| {
                        if fail {
                            Err(Rejection::msg("planned 1% rejection"))
                        } else {
                            Ok(v)
                        }
                    })
                    .then(move |_| c2.chains_ok.set(c2.chains_ok.get() + 1))
                    .catch(move |_| c3.chains_rejected.set(c3.chains_rejected.get() + 1));
            }
        }));
        // One child per second.
        let (c, st) = (counts.clone(), stop.clone());
        let spawner: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
        let sp2 = spawner.clone();
        *spawner.borrow_mut() = Some(evloop::set_interval(Duration::from_secs(1), move || {
            if st.get() {
                sp2.borrow_mut().take().unwrap().clear();
                return;
            }
            let c2 = c.clone();
            Command::new("true")
                .spawn()
                .expect("spawn")
                .on_exit(move |r| {
                    assert!(r.unwrap().success());
                    c2.children.set(c2.children.get() + 1);
                });
        }));
        // Sampling, and the end.
        let (sm, st, hc) = (samples.clone(), stop.clone(), el_handles.clone());
        let sampler: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
        let sa2 = sampler.clone();
        let n_samples = (secs / sample_every).max(3);
        *sampler.borrow_mut() = Some(evloop::set_interval(
            Duration::from_secs(sample_every),
            move || {
                let s = Sample {
                    at: start.elapsed(),
                    heap: support::alloc::live() as usize,
                    fds: support::fds::fd_count(),
                    handles: hc.get(),
                    threads: support::threads::threads(),
                };
                eprintln!("soak sample {s:?}");
                sm.borrow_mut().push(s);
                if sm.borrow().len() as u64 >= n_samples {
                    st.set(true);
                    server.close();
                    sa2.borrow_mut().take().unwrap().clear();
                }
            },
        ));
    }
    // Live handles need the loop object: count them between iterations.
    loop {
        let turn = el.run_once().expect("a panic in the soak");
        el_handles.set(el.active_handles().len());
        if !turn.alive {
            break;
        }
    }
    let took = start.elapsed();
    drop(el);
    let fds_after = support::fds::fd_count();
    let _ = std::fs::remove_dir_all(&dir);
    // The process-wide signal pipe (2 fds) stays once children were run.
    assert!(
        fds_after <= fds_before + 2,
        "fds {fds_before} before the loop, {fds_after} after"
    );
    let samples = samples.borrow();
    let c = &counts;
    eprintln!(
        "soak totals after {took:.1?}: {} echoes, {} timers fired / {} cleared, {} fs ops, {} children, {} chains ok / {} rejected (handled)",
        c.echoes.get(),
        c.timers_fired.get(),
        c.timers_cleared.get(),
        c.fs_ops.get(),
        c.children.get(),
        c.chains_ok.get(),
        c.chains_rejected.get()
    );
    assert!(samples.len() >= 3);
    assert!(c.chains_rejected.get() > 0 && c.children.get() > 0 && c.echoes.get() > 0);
    // Growth checks, after warm-up (the first sample).
    let base = samples[1];
    let last = *samples.last().unwrap();
    let within = |name: &str, b: usize, l: usize, slack: usize| {
        let limit = (b as f64 * 1.02) as usize + slack;
        assert!(
            l <= limit,
            "{name} grew: {b} at {:?} -> {l} at {:?} (limit {limit})",
            base.at,
            last.at
        );
    };
    within("heap", base.heap, last.heap, 512 * 1024);
    let before_last = &samples[1..samples.len() - 1];
    let in_flight = |name: &str, f: fn(&Sample) -> usize| {
        let max = before_last.iter().map(f).max().unwrap();
        let l = f(&last);
        assert!(
            l <= max + max / 2 + 8,
            "{name}: {l} at the end, at most {max} before"
        );
    };
    in_flight("fds", |s| s.fds);
    in_flight("handles", |s| s.handles);
    in_flight("threads", |s| s.threads);
    let rising = |f: fn(&Sample) -> usize| samples[1..].windows(2).all(|w| f(&w[1]) > f(&w[0]));
    if samples.len() >= 4 {
        assert!(
            !rising(|s| s.heap),
            "heap grew at every sample: {samples:?}"
        );
        assert!(!rising(|s| s.fds), "fds grew at every sample: {samples:?}");
    }
    support::figures::figure(
        "T49",
        format_args!(
            "{took:.0?}: heap {} -> {} KiB, fds {} -> {}, handles {} -> {}, threads {} -> {} (sample 2 -> last); fds {fds_before} before the loop, {fds_after} after; 0 panics, 0 unhandled rejections; {} echoes, {} timers, {} fs ops, {} children, {} chains",
            base.heap / 1024,
            last.heap / 1024,
            base.fds,
            last.fds,
            base.handles,
            last.handles,
            base.threads,
            last.threads,
            c.echoes.get(),
            c.timers_fired.get() + c.timers_cleared.get(),
            c.fs_ops.get(),
            c.children.get(),
            c.chains_ok.get() + c.chains_rejected.get()
        ),
    );
}
