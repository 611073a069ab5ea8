//! Reliability suite, section E: microtasks, promises, async (T21–T26 of the
//! reliability catalogue, TESTS.md in the team's shared docs). Figures are
//! printed as `FIGURE Tnn: ...`.
//!
//! Already covered elsewhere, not repeated: resolving twice and rejecting
//! after resolve (`tests/promise_aplus.rs::a2_1_2_*`, `a2_1_3_*`), resolving
//! a promise with itself (`promise_aplus.rs::a2_3_1_resolving_with_itself_rejects_with_cycle`),
//! `then` on a settled promise never runs inline
//! (`promise_aplus.rs::a2_2_4_handlers_never_run_synchronously`), ENOENT
//! through callback and promise (`tests/promise_io.rs::fs_promises_round_trip_and_report_errors_as_the_callbacks_do`),
//! a waker used after its task finished and after the loop was dropped,
//! once (`tests/task.rs::wake_after_finish_and_after_loop_drop_is_harmless`).

mod support;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use evloop::promise::{Promise, Rejection, UnhandledRejections};
use evloop::{next_tick, queue_microtask, set_immediate, set_timeout, EventLoop};
use support::{alloc::live, fds::FdCensus, figures::count, metrics::Metrics, watchdog::Test};

/// H1: this binary's heap, counted (`support::alloc`).
#[global_allocator]
static HEAP: support::alloc::Counting = support::alloc::Counting;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------- T21 ----

/// One case of T21: what it does in the main script, and what it should
/// produce: (unhandled reports, "handled late" reports, the message of
/// the reported reason).
struct Case {
    name: &'static str,
    main: fn(),
    unhandled: usize,
    late: usize,
    reason: &'static str,
}

fn rejected(msg: &'static str) -> Promise<u32> {
    Promise::reject(Rejection::msg(msg))
}

const CASES: [Case; 7] = [
    Case {
        name: "1 sync reject, no handler",
        main: || {
            rejected("r1");
        },
        unhandled: 1,
        late: 0,
        reason: "r1",
    },
    Case {
        name: "2 handler in the same tick",
        main: || {
            rejected("r2").catch(|_| 0);
        },
        unhandled: 0,
        late: 0,
        reason: "",
    },
    Case {
        name: "3 handler after 4 hops of microtasks and ticks",
        main: || {
            let p = rejected("r3");
            queue_microtask(move || {
                next_tick(move || {
                    queue_microtask(move || {
                        next_tick(move || {
                            p.catch(|_| 0);
                        })
                    })
                })
            });
        },
        unhandled: 0,
        late: 0,
        reason: "",
    },
    Case {
        name: "4 handler after an immediate and a timer",
        main: || {
            let p = rejected("r4");
            set_immediate(move || {
                set_timeout(ms(1), move || {
                    p.catch(|_| 0);
                });
            });
        },
        unhandled: 1,
        late: 1,
        reason: "r4",
    },
    Case {
        name: "5 rethrow in a catch",
        main: || {
            rejected("old").or_else(|_| Err::<u32, _>(Rejection::msg("new")));
        },
        unhandled: 1,
        late: 0,
        reason: "new",
    },
    Case {
        name: "6 all([rejected]) without a handler",
        main: || {
            Promise::all([rejected("r6")]);
        },
        unhandled: 1,
        late: 0,
        reason: "r6",
    },
    Case {
        name: "7 all([rejected]) with a handler",
        main: || {
            Promise::all([rejected("r7")]).catch(|_| Vec::new());
        },
        unhandled: 0,
        late: 0,
        reason: "",
    },
];

/// T21: Node's unhandled-rejection cases in the three modes. Each case
/// counts "unhandled" and "handled late" reports (through the hooks, which
/// every mode calls) and checks what `run` returns: strict stops with
/// `Err(UnhandledRejection)` at the first report (so a late handler never
/// comes), warn and none go on. Node's case 8 (a non-`Error` reason wrapped
/// with `ERR_UNHANDLED_REJECTION`) has no counterpart: a `Rejection` is
/// always an error value.
#[test]
fn t21_unhandled_rejection_matrix() {
    let t = Test::start("T21", Duration::from_secs(60));
    let mut cells = 0;
    for mode in [
        UnhandledRejections::Strict,
        UnhandledRejections::Warn,
        UnhandledRejections::None,
    ] {
        for case in &CASES {
            let el = EventLoop::new().unwrap();
            el.set_unhandled_rejections(mode);
            let reports = Rc::new(RefCell::new(Vec::<String>::new()));
            let late = Rc::new(Cell::new(0));
            let r = reports.clone();
            el.on_unhandled_rejection(move |e| r.borrow_mut().push(e.message()));
            let l = late.clone();
            el.on_rejection_handled(move |_| l.set(l.get() + 1));
            let mut result = el.run_main(case.main);
            if result.is_ok() {
                result = el.run();
            }
            let strict = mode == UnhandledRejections::Strict;
            let (want_unhandled, want_late) = (case.unhandled, if strict { 0 } else { case.late });
            assert_eq!(
                reports.borrow().len(),
                want_unhandled,
                "{mode:?} {}: {:?}",
                case.name,
                reports.borrow()
            );
            assert_eq!(late.get(), want_late, "{mode:?} {}", case.name);
            if want_unhandled > 0 {
                assert!(
                    reports.borrow()[0].contains(case.reason),
                    "{mode:?} {}: {:?}",
                    case.name,
                    reports.borrow()
                );
            }
            match (strict && want_unhandled > 0, result) {
                (true, Err(evloop::Error::UnhandledRejection(e))) => {
                    assert!(e.message().contains(case.reason))
                }
                (false, Ok(())) => {}
                (_, other) => panic!("{mode:?} {}: run returned {other:?}", case.name),
            }
            cells += 1;
        }
    }
    t.figure(format_args!(
        "{cells} cells (7 cases x strict/warn/none), each promise reported at most once; \
         case 8 (non-Error reason) not applicable"
    ));
}

// ---------------------------------------------------------------- T22 ----

/// T22: the same error through the callback, the promise and `await`, for
/// a missing file, a directory read as a file, a path over PATH_MAX and a
/// path with a NUL. The EACCES case (mode 000) is skipped as root.
#[test]
fn t22_same_error_three_ways() {
    let t = Test::start("T22", Duration::from_secs(60));
    let dir = std::env::temp_dir().join(format!("evloop-t22-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let long = dir.join("x".repeat(5000));
    let mut inputs: Vec<(&str, std::path::PathBuf)> = vec![
        ("ENOENT", dir.join("missing")),
        ("EISDIR", dir.clone()),
        ("ENAMETOOLONG", long),
        ("NUL", std::path::PathBuf::from("a\0b")),
    ];
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        let locked = dir.join("locked");
        std::fs::write(&locked, b"x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        inputs.push(("EACCES", locked));
    }
    let mut rows = Vec::new();
    for (name, path) in inputs {
        type Seen = Rc<RefCell<Option<(io::ErrorKind, Option<i32>, String)>>>;
        let (cb, pr, aw): (Seen, Seen, Seen) = Default::default();
        let (c2, p2, a2) = (cb.clone(), pr.clone(), aw.clone());
        let path2 = path.clone();
        evloop::run(move || {
            let path = path2;
            evloop::fs::read_file(&path, move |r| {
                let e = r.unwrap_err();
                // A callback's fs error wraps an `FsError` (with the path),
                // so its code is read with `fs::raw_os_error` (documented in
                // `evloop::fs`, "Errors: kind, OS code and path").
                let code = evloop::fs::raw_os_error(&e);
                *c2.borrow_mut() = Some((e.kind(), code, e.to_string()));
            });
            evloop::fs::promises::read_file(&path).catch(move |e| {
                *p2.borrow_mut() = Some((e.kind(), e.raw_os_error(), e.message()));
                Vec::new()
            });
            let path = path.clone();
            evloop::spawn(async move {
                let e = evloop::fs::promises::read_file(&path).await.unwrap_err();
                *a2.borrow_mut() = Some((e.kind(), e.raw_os_error(), e.message()));
            });
        })
        .unwrap();
        let (cb, pr, aw) = (
            cb.borrow().clone().unwrap(),
            pr.borrow().clone().unwrap(),
            aw.borrow().clone().unwrap(),
        );
        assert_eq!((cb.0, cb.1), (pr.0, pr.1), "{name}: callback vs promise");
        assert_eq!((cb.0, cb.1), (aw.0, aw.1), "{name}: callback vs await");
        if name != "NUL" {
            let shown = path.display().to_string();
            let tail = &shown[shown.len().saturating_sub(20)..];
            for m in [&cb.2, &pr.2, &aw.2] {
                assert!(m.contains(tail), "{name}: message {m:?} lacks the path");
            }
        } else {
            assert_eq!(cb.0, io::ErrorKind::InvalidInput);
        }
        rows.push(format!("{name}: {:?}/{:?}", cb.0, cb.1));
    }
    std::fs::remove_dir_all(&dir).ok();
    t.figure(format_args!(
        "{} inputs identical three ways ({}){}",
        rows.len(),
        rows.join(", "),
        if root {
            "; EACCES skipped (running as root)"
        } else {
            ""
        }
    ));
}

// ---------------------------------------------------------------- T23 ----

/// T23 (depth): on a thread with a 2 MiB stack, a 100,000-deep `then`
/// chain whose head settles late, a 100,000-deep chain of adoptions, and a
/// microtask that re-queues itself 1,000,000 times all drain without
/// overflowing the stack, and the chains are dropped without recursion
/// trouble.
#[test]
fn t23_promise_depth() {
    let t = Test::start("T23", Duration::from_secs(120));
    let depth = 100_000;
    let steps = 1_000_000;
    let out = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let chain = Rc::new(Cell::new(0usize));
            let adopted = Rc::new(Cell::new(0usize));
            let requeued = Rc::new(Cell::new(0usize));
            let (c2, a2, r2) = (chain.clone(), adopted.clone(), requeued.clone());
            let start = Instant::now();
            evloop::run(move || {
                // A then chain with a pending head.
                let head = Promise::<usize>::with_resolvers();
                let mut p = head.promise.clone();
                for _ in 0..depth {
                    p = p.then(|v| v + 1);
                }
                p.then(move |v| c2.set(v));
                set_timeout(ms(1), move || (head.resolve)(0));
                // Adoption: each promise resolves with the previous one.
                let first = Promise::<usize>::with_resolvers();
                let mut q = first.promise.clone();
                for _ in 0..depth {
                    let next = Promise::<usize>::with_resolvers();
                    next.resolve.adopt(q);
                    q = next.promise;
                }
                q.then(move |v| a2.set(v));
                set_timeout(ms(2), move || (first.resolve)(depth));
                // A self re-queueing microtask.
                fn again(n: Rc<Cell<usize>>, left: usize) {
                    n.set(n.get() + 1);
                    if left > 1 {
                        queue_microtask(move || again(n, left - 1));
                    }
                }
                queue_microtask(move || again(r2, steps));
            })
            .unwrap();
            (chain.get(), adopted.get(), requeued.get(), start.elapsed())
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    t.figure(format_args!(
        "2 MiB stack: {depth}-deep then chain gave {}, {depth}-deep adoption chain gave {}, \
         {} self re-queued microtasks; {:?} in all",
        out.0, out.1, out.2, out.3
    ));
    assert_eq!(out.0, depth);
    assert_eq!(out.1, depth);
    assert_eq!(out.2, steps);
}

// ---------------------------------------------------------------- T24 ----

/// A promise fulfilled by an immediate: awaiting it yields to the whole
/// loop (I/O, timers), unlike `yield_now`, which is one microtask hop.
fn next_iteration() -> Promise<()> {
    let p = Promise::with_resolvers();
    let r = p.resolve;
    set_immediate(move || r(()));
    p.promise
}

/// Measures, while `hog` keeps the loop busy, when a 10 ms timer fires and
/// how long a TCP echo round trip takes.
fn starvation_case(hog: impl FnOnce(Rc<Cell<bool>>) + 'static) -> (Duration, Duration) {
    let stop = Rc::new(Cell::new(false));
    let timer_at = Rc::new(Cell::new(Duration::ZERO));
    let echo_took = Rc::new(Cell::new(Duration::ZERO));
    let (s2, ta, et) = (stop.clone(), timer_at.clone(), echo_took.clone());
    let echo_addr = support::net::echo_thread_server();
    evloop::run(move || {
        hog(s2.clone());
        let start = Instant::now();
        let done = Rc::new(Cell::new(0));
        let (d1, s3) = (done.clone(), s2.clone());
        set_timeout(ms(10), move || {
            ta.set(start.elapsed());
            d1.set(d1.get() + 1);
            if d1.get() == 2 {
                s3.set(true);
            }
        });
        let (d2, s4) = (done, s2);
        evloop::net::connect(echo_addr, move |r| {
            let s = r.unwrap();
            let t0 = Instant::now();
            s.write(b"ping");
            let s2 = s.clone();
            s.on_data(move |_| {
                et.set(t0.elapsed());
                s2.destroy();
                d2.set(d2.get() + 1);
                if d2.get() == 2 {
                    s4.set(true);
                }
            });
        });
    })
    .unwrap();
    (timer_at.get(), echo_took.get())
}

/// T24: (a) an immediate that re-queues itself forever, (b) an
/// always-ready task that yields to the loop each turn: a 10 ms timer and
/// a TCP echo still get through. (c) a flood of 10^6 microtasks starves
/// I/O and timers until it drains, as in Node (documented in
/// `task::yield_now`): a timer due at 1 ms runs only after the last one.
#[test]
fn t24_starvation_policy() {
    let t = Test::start("T24", Duration::from_secs(60));
    let imm_spins = Rc::new(Cell::new(0usize));
    let is = imm_spins.clone();
    let (a_timer, a_echo) = starvation_case(move |stop| {
        fn spin(stop: Rc<Cell<bool>>, n: Rc<Cell<usize>>) {
            set_immediate(move || {
                n.set(n.get() + 1);
                if !stop.get() {
                    spin(stop, n);
                }
            });
        }
        spin(stop, is);
    });
    let task_spins = Rc::new(Cell::new(0usize));
    let ts = task_spins.clone();
    let (b_timer, b_echo) = starvation_case(move |stop| {
        evloop::spawn(async move {
            while !stop.get() {
                ts.set(ts.get() + 1);
                next_iteration().await.unwrap();
            }
        });
    });
    // (c)
    let drained_at = Rc::new(Cell::new(None::<Instant>));
    let timer_ran = Rc::new(Cell::new(None::<(Instant, usize)>));
    let n_done = Rc::new(Cell::new(0usize));
    let (da, tr, nd) = (drained_at.clone(), timer_ran.clone(), n_done.clone());
    let start = Instant::now();
    evloop::run(move || {
        let nd2 = nd.clone();
        set_timeout(ms(1), move || tr.set(Some((Instant::now(), nd2.get()))));
        set_immediate(move || {
            for i in 0..1_000_000 {
                let (nd, da) = (nd.clone(), da.clone());
                queue_microtask(move || {
                    nd.set(nd.get() + 1);
                    if i == 999_999 {
                        da.set(Some(Instant::now()));
                    }
                });
            }
        });
    })
    .unwrap();
    let (t_at, seen) = timer_ran.get().unwrap();
    let flood = drained_at.get().unwrap() - start;
    t.figure(format_args!(
        "(a) immediate loop ({} spins): 10 ms timer at {a_timer:?}, echo {a_echo:?}; \
         (b) yielding task ({} turns): timer at {b_timer:?}, echo {b_echo:?}; (c) 10^6 \
         microtasks drained in {flood:?}, the 1 ms timer ran after {seen} of them",
        imm_spins.get(),
        task_spins.get()
    ));
    for (what, d) in [("a timer", a_timer), ("b timer", b_timer)] {
        assert!(d >= ms(10) && d < ms(500), "{what}: {d:?}");
    }
    for (what, d) in [("a echo", a_echo), ("b echo", b_echo)] {
        assert!(d > Duration::ZERO && d < ms(1000), "{what}: {d:?}");
    }
    assert!(imm_spins.get() > 10 && task_spins.get() > 10);
    assert!(t_at >= drained_at.get().unwrap());
    assert_eq!(seen, 1_000_000, "the timer ran inside the flood");
}

// ---------------------------------------------------------------- T25 ----

thread_local! {
    static LAST_WAKE: RefCell<Option<Waker>> = const { RefCell::new(None) };
}

struct WakeOnThreadExit(Option<Waker>);
impl Drop for WakeOnThreadExit {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            w.wake();
        }
    }
}

thread_local! {
    static EXIT_WAKER: RefCell<Option<WakeOnThreadExit>> = const { RefCell::new(None) };
}

/// T25: a finished task's waker, cloned to 4 threads, is woken 100,000
/// times per thread (wake and wake_by_ref) while the loop lives and again
/// after it is dropped; one clone is woken from a thread-local destructor
/// at thread exit. No panic; the task's memory is freed when the last
/// waker goes (H1).
#[test]
fn t25_waker_after_completion_and_after_loop_drop() {
    let t = Test::start("T25", Duration::from_secs(120));
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Waker>();
    let per = count(100_000);
    let base = live();
    let stash: Rc<RefCell<Option<Waker>>> = Rc::default();
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let s = stash.clone();
        evloop::spawn(std::future::poll_fn(move |cx| {
            *s.borrow_mut() = Some(cx.waker().clone());
            Poll::Ready(())
        }));
    }
    el.run().unwrap();
    assert_eq!(el.tasks(), 0);
    let w = stash.borrow_mut().take().unwrap();
    let storm = |w: &Waker| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        if i % 2 == 0 {
                            w.wake_by_ref();
                        } else {
                            // `wake` by value, on a clone of its own.
                            let c = w.clone();
                            c.wake();
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
    };
    let s1 = Instant::now();
    storm(&w);
    el.run().unwrap(); // whatever the wakes posted: nothing to run
    let while_alive = s1.elapsed();
    drop(el);
    let s2 = Instant::now();
    storm(&w);
    let after_drop = s2.elapsed();
    // Woken from a thread-local destructor at thread exit.
    let w2 = w.clone();
    std::thread::spawn(move || {
        EXIT_WAKER.with(|e| *e.borrow_mut() = Some(WakeOnThreadExit(Some(w2))));
        LAST_WAKE.with(|l| *l.borrow_mut() = None);
    })
    .join()
    .unwrap();
    drop(w);
    let grown = live() - base;
    t.figure(format_args!(
        "4 threads x {per} wakes after completion: {while_alive:?} with the loop alive, \
         {after_drop:?} after it was dropped; thread-exit wake OK; heap {grown} B over the \
         baseline once the last waker went"
    ));
    assert!(grown < 16 << 10, "task memory not freed: {grown} B");
}

// ---------------------------------------------------------------- T26 ----

/// T26: 10,000 times, a task holding a socket with an accept, a read or a
/// connect in flight is aborted (its future dropped): the socket is
/// deregistered at once (live slab entries back to the baseline) and the
/// loop gets no event for it afterwards.
#[test]
fn t26_cancellation_frees_registrations() {
    let t = Test::start("T26", Duration::from_secs(180));
    let fds = FdCensus::new();
    let per_kind = count(3400);
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    peer.set_nonblocking(true).unwrap();
    let peer_addr = peer.local_addr().unwrap();
    // A listener whose accept queue is full and never drained: a connect
    // to it stays in flight (Linux drops the SYN).
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    full.listen(0).unwrap();
    let full_addr = full.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let c = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        c.set_nonblocking(true).unwrap();
        let _ = c.connect(&full_addr.into());
        fillers.push(c);
    }
    std::thread::sleep(ms(50));
    let el = EventLoop::new().unwrap();
    let base = Metrics::of(&el).sources;
    let mut max_sources = 0;
    let mut aborted = 0;
    let finished = Rc::new(Cell::new(0usize));
    for kind in ["accept", "read", "connect"] {
        for _ in 0..per_kind {
            let (_p, abort) = {
                let _g = el.enter();
                let f = finished.clone();
                evloop::task::spawn_handle(async move {
                    use evloop::task::net::{TcpListener, TcpStream};
                    match kind {
                        "accept" => {
                            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                            let _ = l.accept().await;
                        }
                        "read" => {
                            let mut s = TcpStream::connect(peer_addr).await.unwrap();
                            let mut buf = [0u8; 16];
                            let _ = s.read(&mut buf).await;
                        }
                        _ => {
                            let _ = TcpStream::connect(full_addr).await;
                        }
                    }
                    f.set(f.get() + 1);
                })
            };
            // Let it reach its await (a read needs the connect done first).
            if kind == "read" {
                for _ in 0..3 {
                    el.run_nowait().unwrap();
                }
            }
            max_sources = max_sources.max(Metrics::of(&el).sources);
            abort.abort();
            aborted += 1;
            let after = Metrics::of(&el).sources;
            assert_eq!(after, base, "{kind}: registration left after abort");
            // Drain the peer's backlog (accepted then dropped: the peer
            // side closes; the aborted side is already gone).
            while let Ok((c, _)) = peer.accept() {
                drop(c);
            }
        }
    }
    // Nothing left to deliver an event to.
    let turn = el.run_nowait().unwrap();
    t.figure(format_args!(
        "{aborted} tasks aborted with an accept, read or connect in flight ({per_kind} each): \
         live slab entries back to {base} each time (at most {max_sources} while in flight), \
         {} finished, {} I/O callbacks afterwards",
        finished.get(),
        turn.io
    ));
    assert_eq!(finished.get(), 0);
    assert_eq!(turn.io, 0);
    drop(el);
    drop((peer, full, fillers));
    fds.assert_back("T26");
}
