//! Reliability tests T27–T31 (the reliability catalogue, TESTS.md in the team's
//! shared docs, section F): the thread pool and files under saturation, panics,
//! a dropped loop and bad input. Already covered elsewhere and not repeated
//! here: `tests/pool.rs` (a panicking job's `done`, dropping the loop while
//! jobs are queued, 10,000 jobs exactly once) and `tests/fs.rs` (bad paths, use
//! after close, no descriptor leaks).

mod support;

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use evloop::{fs, queue_work, queue_work_cancelable, EventLoop};

/// H1: this binary's heap, counted (`support::alloc`).
#[global_allocator]
static HEAP: support::alloc::Counting = support::alloc::Counting;

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("evloop-rel-b-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pool_size() -> usize {
    evloop::DEFAULT_THREADPOOL_SIZE // EVLOOP_THREADPOOL_SIZE is not set by the tests
}

/// T27: a saturated pool; half of 1,000 queued fs jobs are cancelled.
/// Each of the 1,000 completes exactly once: 500 with `ECANCELED`, 500 with
/// their result; cancelling a running job is `EBUSY`.
#[test]
fn t27_pool_saturation_and_cancel() {
    let _s = support::watchdog::serial();
    let _w = support::watchdog::Watchdog::new("t27", Duration::from_secs(60));
    support::init_log();
    let dir = TempDir::new("t27");
    let file = dir.0.join("f");
    std::fs::write(&file, b"x").unwrap();
    const N: usize = 1000;
    type Outcomes = Vec<Vec<Result<u64, i32>>>;
    let outcomes: Rc<RefCell<Outcomes>> = Rc::new(RefCell::new(vec![vec![]; N]));
    let blockers_done = Rc::new(Cell::new(0));
    let busy_err = Rc::new(Cell::new(None));
    let el = EventLoop::new().unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    {
        let _g = el.enter();
        let mut running = Vec::new();
        for _ in 0..pool_size() {
            let (st, rx, bd) = (started.clone(), release_rx.clone(), blockers_done.clone());
            running.push(queue_work_cancelable(
                move || {
                    st.fetch_add(1, Ordering::SeqCst);
                    // Wait for the release (the sender is dropped).
                    let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(30));
                },
                move |r| {
                    r.unwrap();
                    bd.set(bd.get() + 1)
                },
            ));
        }
        let mut queued = Vec::new();
        for i in 0..N {
            let (f, o) = (file.clone(), outcomes.clone());
            queued.push(queue_work_cancelable(
                move || std::fs::metadata(&f).map(|m| m.len()).unwrap(),
                move |r| o.borrow_mut()[i].push(r.map_err(|e| e.raw_os_error().unwrap_or(-1))),
            ));
        }
        // Every worker is blocked on a job: nothing queued has started.
        let t = Instant::now();
        while started.load(Ordering::SeqCst) < pool_size() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the pool never filled"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let e = running[0].cancel().unwrap_err();
        busy_err.set(e.raw_os_error());
        for w in queued.iter().step_by(2) {
            w.cancel().unwrap();
        }
        // A second cancel of the same job finds nothing to cancel.
        assert_eq!(
            queued[0].cancel().unwrap_err().raw_os_error(),
            Some(libc::EBUSY)
        );
        drop(release_tx);
    }
    el.run().unwrap();
    assert_eq!(busy_err.get(), Some(libc::EBUSY), "cancel of a running job");
    assert_eq!(blockers_done.get(), pool_size());
    let outcomes = outcomes.borrow();
    let mut canceled = 0;
    let mut ok = 0;
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.len(), 1, "job {i} completed {} times", o.len());
        match o[0] {
            Ok(1) if i % 2 == 1 => ok += 1,
            Err(libc::ECANCELED) if i % 2 == 0 => canceled += 1,
            ref other => panic!("job {i}: {other:?}"),
        }
    }
    assert_eq!((canceled, ok), (500, 500));
    support::figures::figure(
        "T27",
        format_args!("{canceled} ECANCELED + {ok} ok of {N}, running job: EBUSY"),
    );
}

/// T28: 100,000 fs operations in flight from one loop (50,000 `metadata`
/// and 50,000 `read_file` of a 4 KiB file, which opens, reads and closes):
/// each completes exactly once; completions are batched, so the loop runs
/// far fewer iterations than there are operations; the heap peak is
/// bounded.
#[test]
fn t28_completion_storm() {
    let _s = support::watchdog::serial();
    let _w = support::watchdog::Watchdog::new("t28", Duration::from_secs(240));
    support::init_log();
    let dir = TempDir::new("t28");
    let file = dir.0.join("f");
    std::fs::write(&file, vec![7u8; 4096]).unwrap();
    const N: usize = 100_000;
    let seen = Rc::new(RefCell::new(vec![0u8; N]));
    let el = EventLoop::new().unwrap();
    let heap0 = support::alloc::live();
    support::alloc::reset_peak();
    let start = Instant::now();
    {
        let _g = el.enter();
        for i in 0..N {
            let s = seen.clone();
            if i % 2 == 0 {
                fs::metadata(&file, move |r| {
                    assert_eq!(r.unwrap().len(), 4096);
                    s.borrow_mut()[i] += 1;
                });
            } else {
                fs::read_file(&file, move |r| {
                    assert_eq!(r.unwrap().len(), 4096);
                    s.borrow_mut()[i] += 1;
                });
            }
        }
    }
    let it0 = el.iterations();
    el.run().unwrap();
    let took = start.elapsed();
    let iterations = el.iterations() - it0;
    let peak = support::alloc::peak().saturating_sub(heap0);
    assert!(
        seen.borrow().iter().all(|&n| n == 1),
        "an op did not complete exactly once"
    );
    // Batched: fewer wakeups than ops (the catalogue). Once the backlog bound is
    // reached (pool::MAX_UNDELIVERED), the loop keeps pace with the workers
    // and each wake delivers a few results (about 2 in release, 4 in
    // debug), not thousands.
    assert!(
        iterations < N as u64,
        "{iterations} iterations for {N} ops: not batched"
    );
    // The catalogue: <= 100 MiB. The queued jobs are small closures; finished
    // results are bounded by the pool's backpressure (at most 1,024 wait
    // for the loop), so the 4 KiB buffers never pile up.
    assert!(peak < 100 << 20, "heap peak {peak} bytes");
    assert!(took < Duration::from_secs(200), "took {took:?}");
    drop(el);
    let after = support::alloc::live().saturating_sub(heap0);
    assert!(after < 4 << 20, "{after} bytes still live after the loop");
    support::figures::figure(
        "T28",
        format_args!(
            "{N} ops exactly once in {took:.2?}, {iterations} loop iterations, heap peak +{:.1} MiB, +{} KiB after",
            peak as f64 / (1 << 20) as f64,
            after / 1024
        ),
    );
}

/// Pool threads alive in this process.
fn pool_threads() -> usize {
    support::threads::threads_named("evloop-pool-")
}

/// T29: a panicking job reaches callback, promise and `await` as an error;
/// all pool workers live on and the next 1,000 jobs run.
/// (`tests/pool.rs::a_panicking_job_reaches_done_as_an_error_and_the_pool_lives_on`
/// covers the callback alone.)
#[test]
fn t29_worker_job_panic_in_three_styles() {
    let _s = support::watchdog::serial();
    let _w = support::watchdog::Watchdog::new("t29", Duration::from_secs(60));
    support::init_log();
    let got = Rc::new(RefCell::new(Vec::<String>::new()));
    let after = Rc::new(Cell::new(0usize));
    let threads_after = Rc::new(Cell::new(0usize));
    let (g, a, ta) = (got.clone(), after.clone(), threads_after.clone());
    support::run_strict(move || {
        let g1 = g.clone();
        queue_work(
            || -> u32 { panic!("boom-callback") },
            move |r| {
                g1.borrow_mut()
                    .push(format!("callback: {}", r.unwrap_err()))
            },
        );
        let g2 = g.clone();
        evloop::promise::queue_work(|| -> u32 { panic!("boom-promise") })
            .then(|_| unreachable!())
            .catch(move |e| g2.borrow_mut().push(format!("promise: {}", e.message())));
        let g3 = g.clone();
        let _ = evloop::spawn(async move {
            let r = evloop::promise::queue_work(|| -> u32 { panic!("boom-await") }).await;
            g3.borrow_mut()
                .push(format!("await: {}", r.unwrap_err().message()));
            // Every worker is still alive: 1,000 more jobs run.
            let jobs: Vec<_> = (0..1000u64)
                .map(|i| evloop::promise::queue_work(move || i))
                .collect();
            let sum: u64 = evloop::promise::Promise::all(jobs)
                .await
                .unwrap()
                .iter()
                .sum();
            assert_eq!(sum, (0..1000).sum::<u64>());
            a.set(1000);
            ta.set(pool_threads());
        });
    })
    .unwrap();
    let mut got = got.borrow().clone();
    got.sort();
    assert_eq!(got.len(), 3, "{got:?}");
    for (line, word) in got
        .iter()
        .zip(["boom-await", "boom-callback", "boom-promise"])
    {
        assert!(line.contains(word) && line.contains("panicked"), "{line}");
    }
    assert_eq!(after.get(), 1000);
    assert_eq!(
        threads_after.get(),
        pool_size(),
        "pool threads alive after the panics"
    );
    support::figures::figure(
        "T29",
        format_args!(
            "3/3 styles got the panic as an error; {} live workers ran 1000 more jobs",
            threads_after.get()
        ),
    );
}

/// T30: a 500 ms job that returns an open file; the loop is dropped at
/// 100 ms. Dropping waits for the job, drops its result (the fd is closed)
/// without calling `done`, and joins the workers.
/// (`tests/pool.rs::dropping_the_loop_joins_the_pool_and_discards_pending_jobs`
/// covers the discarded queue and the uncalled `done`.)
#[test]
fn t30_late_completion_after_loop_drop() {
    let _s = support::watchdog::serial();
    let _w = support::watchdog::Watchdog::new("t30", Duration::from_secs(60));
    support::init_log();
    let fds0 = support::fds::fd_count();
    let threads0 = pool_threads();
    let called = Rc::new(Cell::new(false));
    let el = EventLoop::new().unwrap();
    {
        let _g = el.enter();
        let c = called.clone();
        queue_work(
            || {
                std::thread::sleep(Duration::from_millis(500));
                std::fs::File::open("Cargo.toml").unwrap()
            },
            move |_| c.set(true),
        );
        evloop::set_timeout(Duration::from_millis(100), evloop::stop);
    }
    el.run().unwrap();
    let during = pool_threads();
    let start = Instant::now();
    drop(el);
    let waited = start.elapsed();
    assert!(!called.get(), "done ran after its loop was dropped");
    assert_eq!(during, threads0 + pool_size());
    assert_eq!(pool_threads(), threads0, "pool threads left after drop");
    assert_eq!(
        support::fds::fd_count(),
        fds0,
        "the job's file (or the loop's fds) leaked"
    );
    support::figures::figure(
        "T30",
        format_args!("drop waited {waited:.0?} for the running job; fds {fds0} -> {fds0}; pool threads {during} -> {}", pool_threads()),
    );
}

/// Finds our fd for `path` in /proc/self/fd.
fn fd_of(path: &std::path::Path) -> i32 {
    let path = path.canonicalize().unwrap();
    for e in std::fs::read_dir("/proc/self/fd").unwrap() {
        let e = e.unwrap();
        if std::fs::read_link(e.path()).ok().as_deref() == Some(path.as_path()) {
            return e.file_name().to_str().unwrap().parse().unwrap();
        }
    }
    panic!("no fd for {}", path.display());
}

/// T31: fs bad input and partial I/O: EOF, a 0-byte read, RLIMIT_FSIZE,
/// an fd replaced underneath, and 10,000 opens over RLIMIT_NOFILE.
#[test]
fn t31_fs_bad_input_and_partial_io() {
    let _s = support::watchdog::serial();
    let _w = support::watchdog::Watchdog::new("t31", Duration::from_secs(120));
    support::init_log();
    let dir = TempDir::new("t31");
    let data = dir.0.join("data");
    std::fs::write(&data, b"0123456789").unwrap();
    let big = dir.0.join("big");
    let log = support::Log::new();
    let l = log.clone();
    let (d2, b2) = (data.clone(), big.clone());
    let emfile_count = Rc::new(Cell::new(0usize));
    let opened_ok = Rc::new(Cell::new(0usize));
    let (em, ok) = (emfile_count.clone(), opened_ok.clone());
    let nofile0 = support::limits::nofile();
    let iterations = Rc::new(Cell::new(0u64));
    let its = iterations.clone();
    let cpu0 = support::cpu::cpu_time();
    support::run_strict(move || {
        // EOF: a read at the end gives 0 bytes (each time it is asked),
        // a 0-length read gives 0 bytes at once.
        let l1 = l.clone();
        fs::File::open(&d2, "r", move |f| {
            let f = f.unwrap();
            let (l, f2) = (l1.clone(), f.clone());
            f.read(0, 100, move |r| {
                l.push(format!("read {}", r.unwrap().len()));
                // One after another: the fd swap below must not overtake
                // these reads on the pool.
                let (l2, f3) = (l.clone(), f2.clone());
                f2.read(10, 100, move |r| {
                    l2.push(format!("at eof {}", r.unwrap().len()));
                    let f4 = f3.clone();
                    f3.read(3, 0, move |r| {
                        l2.push(format!("zero-length {}", r.unwrap().len()));
                        // The fd is replaced underneath by a write-only
                        // one: reads fail with EBADF (the handle still owns
                        // a valid fd, so its close is clean).
                        let fd = fd_of(f4.path());
                        let devnull = std::fs::OpenOptions::new()
                            .write(true)
                            .open("/dev/null")
                            .unwrap();
                        // SAFETY: dup2 onto an fd this test owns (the
                        // handle's, with no operation of it in flight); it
                        // stays open, pointing at /dev/null, until the
                        // handle closes it.
                        let fd2 =
                            unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&devnull), fd) };
                        assert!(fd2 >= 0);
                        let f5 = f4.clone();
                        f4.read(0, 1, move |r| {
                            l2.push(format!(
                                "swapped fd: {:?}",
                                fs::raw_os_error(&r.unwrap_err())
                            ));
                            f5.close(|r| r.unwrap());
                        });
                    });
                });
            });
        });
        // RLIMIT_FSIZE 1 MiB: writing 2 MiB gives EFBIG and we survive
        // (SIGXFSZ would otherwise kill the process).
        support::limits::set_soft(libc::RLIMIT_FSIZE, 1 << 20);
        let l4 = l.clone();
        fs::write_file(&b2, vec![1u8; 2 << 20], move |r| {
            support::limits::set_soft(libc::RLIMIT_FSIZE, support::limits::INFINITY);
            l4.push(format!("fsize: {:?}", fs::raw_os_error(&r.unwrap_err())));
        });
    })
    .unwrap();
    support::limits::set_soft(libc::RLIMIT_FSIZE, support::limits::INFINITY);
    let mut lines = log.take();
    lines.sort();
    assert_eq!(
        lines,
        [
            "at eof 0".to_string(),
            format!("fsize: Some({})", libc::EFBIG),
            "read 10".to_string(),
            format!("swapped fd: Some({})", libc::EBADF),
            "zero-length 0".to_string(),
        ]
    );

    // 10,000 opens with room for only 16 more fds: each gets its own
    // EMFILE (or opens), none hangs.
    let el = EventLoop::new().unwrap();
    let held: Rc<RefCell<Vec<fs::File>>> = Rc::default();
    {
        let _g = el.enter();
        // Start the pool first: its threads need no fds, but be explicit.
        queue_work(|| (), |_| {});
        support::limits::set_soft(libc::RLIMIT_NOFILE, support::fds::fd_count() as u64 + 16);
        for _ in 0..10_000 {
            let (em, ok, h) = (em.clone(), ok.clone(), held.clone());
            fs::File::open(&data, "r", move |r| match r {
                Ok(f) => {
                    ok.set(ok.get() + 1);
                    h.borrow_mut().push(f);
                }
                Err(e) => {
                    assert_eq!(fs::raw_os_error(&e), Some(libc::EMFILE), "{e}");
                    em.set(em.get() + 1);
                }
            });
        }
    }
    let it0 = el.iterations();
    let res = el.run();
    its.set(el.iterations() - it0);
    support::limits::set_soft(libc::RLIMIT_NOFILE, nofile0.0);
    res.unwrap();
    drop(held.borrow_mut().drain(..).collect::<Vec<_>>());
    let cpu = support::cpu::cpu_time() - cpu0;
    assert_eq!(emfile_count.get() + opened_ok.get(), 10_000);
    assert!(
        emfile_count.get() >= 10_000 - 64,
        "{} EMFILE",
        emfile_count.get()
    );
    support::figures::figure(
        "T31",
        format_args!(
            "EOF 0 bytes, 0-length read 0 bytes, EFBIG under RLIMIT_FSIZE, EBADF; 10,000 opens: {} EMFILE + {} ok in {} iterations ({cpu:.2?} CPU for the whole test)",
            emfile_count.get(),
            opened_ok.get(),
            iterations.get()
        ),
    );
}
