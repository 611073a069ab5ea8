//! Aborting file operations and pool jobs (issue 18): every `fs` operation
//! and `queue_work`, in the three styles (callbacks, promises, async/await),
//! aborted before it starts, while its job is queued, while it runs and
//! after it completed; aborts from a timer, a microtask, another task and
//! another thread; what is left keeping the loop alive afterwards.
//!
//! To keep a job queued, the pool is first filled with jobs that wait on a
//! [`Gate`]: a job queued after them stays in the queue until the gate
//! opens (the pool takes jobs in order).

mod support;

use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use evloop::abort::{is_abort_error, AbortController, AbortSignal};
use evloop::fs::{self, promises as fsp, File};
use evloop::promise::{Promise, Rejection};
use evloop::{EventLoop, HandleKind};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "evloop-abort-fs-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
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

/// Jobs that wait until it opens (for at most 20 s, so a failing test
/// cannot hang). Dropping it opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    fn is_open(&self) -> bool {
        *self.0 .0.lock().unwrap()
    }

    fn wait(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut open = self.0 .0.lock().unwrap();
        while !*open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            open = self.0 .1.wait_timeout(open, left).unwrap().0;
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) == 1 {
            self.open();
        }
    }
}

/// Occupies every thread of the current loop's pool with a job waiting on
/// `gate`; returns how many (the pool's size).
fn fill_pool(el: &EventLoop, gate: &Gate) -> usize {
    let block = |g: Gate| evloop::queue_work(move || g.wait(), |_| {});
    block(gate.clone());
    let n = el.threadpool_threads();
    for _ in 1..n {
        block(gate.clone());
    }
    n
}

/// Pool jobs in flight on the current loop, as `active_handles` shows them.
fn requests() -> usize {
    evloop::active_handles()
        .iter()
        .filter(|h| h.kind == HandleKind::Request)
        .count()
}

/// Calls `then(true)` as soon as the current loop has `n` requests in
/// flight, checking once per iteration (in the check phase) for up to 5
/// iterations, else `then(false)`.
fn when_requests_are(n: usize, tries: u32, then: impl FnOnce(bool) + 'static) {
    if requests() == n {
        then(true);
    } else if tries == 0 {
        then(false);
    } else {
        evloop::set_immediate(move || when_requests_are(n, tries - 1, then));
    }
}

/// Whether some descriptor of this process is open on `path`.
fn fd_open_on(path: &Path) -> bool {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
}

fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo: {}", io::Error::last_os_error());
}

/// On another thread: waits until a reader has `fifo` open (a pool job
/// blocked in `open`), then opens it for writing without writing, so the
/// reader blocks in `read`. Sets `reader_in` then; closes the writer (the
/// reader gets end of file) when `release` is set.
fn hold_fifo(fifo: PathBuf, reader_in: Arc<AtomicBool>, release: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        use std::os::unix::fs::OpenOptionsExt;
        let deadline = Instant::now() + Duration::from_secs(20);
        let writer = loop {
            // ENXIO until a reader has it open.
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
            {
                Ok(w) => break Some(w),
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => break None,
            }
        };
        reader_in.store(true, Ordering::SeqCst);
        while !release.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(writer);
    });
}

// ---------------------------------------------------------------------------
// The operations, the styles and the outcomes
// ---------------------------------------------------------------------------

/// How an operation ended, in any style.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Ok,
    /// The abort error, with the signal's reason.
    Aborted(String),
    Failed(String),
}

fn from_io(r: io::Result<()>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(e) if is_abort_error(&e) => {
            assert_eq!(e.kind(), io::ErrorKind::Other, "{e}");
            assert!(
                fs::FsError::of(&e).is_none(),
                "abort errors are not wrapped"
            );
            let r = Rejection::from(e);
            Outcome::Aborted(r.abort_reason().unwrap().to_string())
        }
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn from_rejection(r: Result<(), Rejection>) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(e) if e.is_aborted() => Outcome::Aborted(e.abort_reason().unwrap().to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

#[derive(Clone, Copy, Debug)]
enum Style {
    Callbacks,
    Promises,
    Await,
}

const STYLES: [Style; 3] = [Style::Callbacks, Style::Promises, Style::Await];

/// What an operation works on: the test's directory, and the open file
/// `a` (opened `r+`) for the methods of [`File`].
#[derive(Clone)]
struct Env {
    dir: PathBuf,
    file: Option<File>,
}

impl Env {
    fn p(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn file(&self) -> &File {
        self.file.as_ref().unwrap()
    }
}

type Done = Box<dyn FnOnce(io::Result<()>)>;

/// One abortable operation, in its callback and promise forms.
struct Op {
    name: &'static str,
    needs_file: bool,
    cb: fn(&Env, &AbortSignal, Done),
    promise: fn(&Env, &AbortSignal) -> Promise<()>,
    /// Whether its effect shows in the directory (`None`: it has none).
    ran: fn(&Path) -> Option<bool>,
}

/// The directory every operation starts from: a file `a` ("hello"), an
/// empty directory `d`, and a directory `t` holding `t/x`.
fn populate(dir: &Path) {
    std::fs::write(dir.join("a"), "hello").unwrap();
    std::fs::create_dir(dir.join("d")).unwrap();
    std::fs::create_dir(dir.join("t")).unwrap();
    std::fs::write(dir.join("t/x"), "x").unwrap();
}

fn none(_: &Path) -> Option<bool> {
    None
}

fn content(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("a")).unwrap_or_default()
}

/// Every abortable operation of `fs`, `fs::promises` and [`File`].
fn ops() -> Vec<Op> {
    macro_rules! op {
        ($name:literal, |$e:ident, $s:ident, $d:ident| $cb:expr, $p:expr, $ran:expr) => {
            Op {
                name: $name,
                needs_file: false,
                cb: |$e, $s, $d| $cb,
                promise: |$e, $s| $p,
                ran: $ran,
            }
        };
        (file $name:literal, |$e:ident, $s:ident, $d:ident| $cb:expr, $p:expr, $ran:expr) => {
            Op {
                name: $name,
                needs_file: true,
                cb: |$e, $s, $d| $cb,
                promise: |$e, $s| $p,
                ran: $ran,
            }
        };
    }
    vec![
        op!(
            "read_file",
            |e, s, d| fs::read_file_with_signal(e.p("a"), s, |r| d(r.map(drop))),
            fsp::read_file_with_signal(e.p("a"), s).then(drop),
            none
        ),
        op!(
            "read_to_string",
            |e, s, d| fs::read_to_string_with_signal(e.p("a"), s, |r| d(r.map(drop))),
            fsp::read_to_string_with_signal(e.p("a"), s).then(drop),
            none
        ),
        op!(
            "write_file",
            |e, s, d| fs::write_file_with_signal(e.p("w"), "new", s, d),
            fsp::write_file_with_signal(e.p("w"), "new", s),
            |d| Some(d.join("w").exists())
        ),
        op!(
            "append_file",
            |e, s, d| fs::append_file_with_signal(e.p("a"), "+", s, d),
            fsp::append_file_with_signal(e.p("a"), "+", s),
            |d| Some(content(d) == "hello+")
        ),
        op!(
            "read_dir",
            |e, s, d| fs::read_dir_with_signal(&e.dir, s, |r| d(r.map(drop))),
            fsp::read_dir_with_signal(&e.dir, s).then(drop),
            none
        ),
        op!(
            "metadata",
            |e, s, d| fs::metadata_with_signal(e.p("a"), s, |r| d(r.map(drop))),
            fsp::metadata_with_signal(e.p("a"), s).then(drop),
            none
        ),
        op!(
            "symlink_metadata",
            |e, s, d| fs::symlink_metadata_with_signal(e.p("a"), s, |r| d(r.map(drop))),
            fsp::symlink_metadata_with_signal(e.p("a"), s).then(drop),
            none
        ),
        op!(
            "create_dir",
            |e, s, d| fs::create_dir_with_signal(e.p("new"), s, d),
            fsp::create_dir_with_signal(e.p("new"), s),
            |d| Some(d.join("new").exists())
        ),
        op!(
            "create_dir_all",
            |e, s, d| fs::create_dir_all_with_signal(e.p("n1/n2"), s, d),
            fsp::create_dir_all_with_signal(e.p("n1/n2"), s),
            |d| Some(d.join("n1").exists())
        ),
        op!(
            "remove_file",
            |e, s, d| fs::remove_file_with_signal(e.p("a"), s, d),
            fsp::remove_file_with_signal(e.p("a"), s),
            |d| Some(!d.join("a").exists())
        ),
        op!(
            "remove_dir",
            |e, s, d| fs::remove_dir_with_signal(e.p("d"), s, d),
            fsp::remove_dir_with_signal(e.p("d"), s),
            |d| Some(!d.join("d").exists())
        ),
        op!(
            "remove_dir_all",
            |e, s, d| fs::remove_dir_all_with_signal(e.p("t"), s, d),
            fsp::remove_dir_all_with_signal(e.p("t"), s),
            |d| Some(!d.join("t").exists())
        ),
        op!(
            "rename",
            |e, s, d| fs::rename_with_signal(e.p("a"), e.p("r"), s, d),
            fsp::rename_with_signal(e.p("a"), e.p("r"), s),
            |d| Some(d.join("r").exists())
        ),
        op!(
            "copy_file",
            |e, s, d| fs::copy_file_with_signal(e.p("a"), e.p("c"), s, |r| d(r.map(drop))),
            fsp::copy_file_with_signal(e.p("a"), e.p("c"), s).then(drop),
            |d| Some(d.join("c").exists())
        ),
        op!(
            "exists",
            |e, s, d| fs::exists_with_signal(e.p("a"), s, |r| d(r.map(|b| assert!(b)))),
            fsp::exists_with_signal(e.p("a"), s).then(|b| assert!(b)),
            none
        ),
        op!(
            "File::open",
            |e, s, d| File::open_with_signal(e.p("o"), "wx", s, |r| d(r.map(drop))),
            fsp::open_with_signal(e.p("o"), "wx", s).then(drop),
            |d| Some(d.join("o").exists())
        ),
        op!(
            "File::open_with",
            |e, s, d| {
                let mut o = fs::OpenOptions::new();
                o.write(true).create_new(true);
                File::open_with_with_signal(e.p("o"), &o, s, |r| d(r.map(drop)))
            },
            {
                let mut o = fs::OpenOptions::new();
                o.write(true).create_new(true);
                fsp::open_with_with_signal(e.p("o"), &o, s).then(drop)
            },
            |d| Some(d.join("o").exists())
        ),
        op!(
            file "File::read",
            |e, s, d| e.file().read_with_signal(0, 5, s, |r| d(r.map(drop))),
            e.file().read_promise_with_signal(0, 5, s).then(drop),
            none
        ),
        op!(
            file "File::write",
            |e, s, d| e.file().write_with_signal(5, "!", s, |r| d(r.map(drop))),
            e.file().write_promise_with_signal(5, "!", s).then(drop),
            |d| Some(content(d) == "hello!")
        ),
        op!(
            file "File::sync",
            |e, s, d| e.file().sync_with_signal(s, d),
            e.file().sync_promise_with_signal(s),
            none
        ),
        op!(
            file "File::sync_data",
            |e, s, d| e.file().sync_data_with_signal(s, d),
            e.file().sync_data_promise_with_signal(s),
            none
        ),
        op!(
            file "File::set_len",
            |e, s, d| e.file().set_len_with_signal(2, s, d),
            e.file().set_len_promise_with_signal(2, s),
            |d| Some(content(d) == "he")
        ),
        op!(
            file "File::metadata",
            |e, s, d| e.file().metadata_with_signal(s, |r| d(r.map(drop))),
            e.file().metadata_promise_with_signal(s).then(drop),
            none
        ),
    ]
}

/// Starts `op` in `style`; `on_done` gets how it ended.
fn start(
    op: &Op,
    style: Style,
    env: &Env,
    signal: &AbortSignal,
    on_done: impl FnOnce(Outcome) + 'static,
) {
    match style {
        Style::Callbacks => (op.cb)(env, signal, Box::new(move |r| on_done(from_io(r)))),
        Style::Promises => {
            (op.promise)(env, signal)
                .then(|()| Outcome::Ok)
                .catch(|e| from_rejection(Err(e)))
                .then(on_done);
        }
        Style::Await => {
            let (f, env, signal) = (op.promise, env.clone(), signal.clone());
            evloop::spawn(async move { on_done(from_rejection(f(&env, &signal).await)) });
        }
    }
}

/// A loop and a populated directory for `op`, with the file opened if it
/// needs one (by running the loop once).
fn setup(op: &Op, tag: &str) -> (EventLoop, TempDir, Env) {
    support::init_log();
    let tmp = TempDir::new(tag);
    populate(&tmp.0);
    let el = EventLoop::new().unwrap();
    let mut env = Env {
        dir: tmp.0.clone(),
        file: None,
    };
    if op.needs_file {
        let slot = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let a = tmp.0.join("a");
        el.run_main(move || File::open(a, "r+", move |r| *s.borrow_mut() = Some(r.unwrap())))
            .unwrap();
        el.run().unwrap();
        env.file = slot.borrow_mut().take();
        assert!(env.file.is_some());
    }
    (el, tmp, env)
}

type Got = Rc<RefCell<Vec<Outcome>>>;

fn recorder() -> (Got, impl Fn(Outcome) + Clone) {
    let got: Got = Rc::default();
    let g = got.clone();
    (got, move |o| g.borrow_mut().push(o))
}

// ---------------------------------------------------------------------------
// Aborted before it starts
// ---------------------------------------------------------------------------

/// An already aborted signal: nothing is queued (the pool does not even
/// start), the work never runs, and the error comes asynchronously.
fn aborted_before_start(style: Style) {
    for op in ops() {
        let (el, tmp, env) = setup(&op, "before");
        let threads_before = el.threadpool_threads();
        let (got, record) = recorder();
        let signal = AbortSignal::abort(Rejection::msg("early"));
        let g = got.clone();
        el.run_main(|| {
            start(&op, style, &env, &signal, move |o| {
                record(o);
                assert_eq!(requests(), 0, "a job was queued");
            });
            assert!(g.borrow().is_empty(), "{}: called synchronously", op.name);
            assert_eq!(requests(), 0);
        })
        .unwrap();
        el.run().unwrap();
        let ctx = format!("{} ({style:?})", op.name);
        assert_eq!(*got.borrow(), [Outcome::Aborted("early".into())], "{ctx}");
        assert_eq!(
            el.threadpool_threads(),
            threads_before,
            "{ctx}: the pool started"
        );
        assert_ne!((op.ran)(&tmp.0), Some(true), "{ctx}: the work ran");
        assert!(!el.is_alive());
    }
}

#[test]
fn aborted_before_start_callbacks() {
    aborted_before_start(Style::Callbacks);
}

#[test]
fn aborted_before_start_promises() {
    aborted_before_start(Style::Promises);
}

#[test]
fn aborted_before_start_await() {
    aborted_before_start(Style::Await);
}

// ---------------------------------------------------------------------------
// Aborted while queued, from everywhere
// ---------------------------------------------------------------------------

use support::abort::{Via as Source, ALL_VIA as SOURCES};

/// Aborts `c` with reason "stop" from `source`.
fn abort_from(source: Source, c: AbortController) {
    support::abort::abort_via(source, c, Duration::from_millis(2));
}

/// The pool is busy, so the job waits in its queue; the abort cancels it:
/// the callback gets the error while the pool is still busy, the job stops
/// counting as a request within an iteration, and its work never runs
/// (not even once the pool frees up).
fn aborted_while_queued(style: Style) {
    for op in ops() {
        for source in SOURCES {
            let (el, tmp, env) = setup(&op, "queued");
            let ctx = format!("{} ({style:?}, abort from {source:?})", op.name);
            let (got, record) = recorder();
            let released = Rc::new(RefCell::new(None));
            let gate = Gate::default();
            let (r, g) = (released.clone(), gate.clone());
            el.run_main(|| {
                let blockers = fill_pool(&el, &gate);
                let c = AbortController::new();
                start(&op, style, &env, &c.signal(), move |o| {
                    record(o);
                    assert!(!g.is_open());
                    // The cancelled job is released in the next pending
                    // phase; the blockers are still running.
                    when_requests_are(blockers, 5, move |ok| {
                        *r.borrow_mut() = Some(ok);
                        g.open();
                    });
                });
                assert_eq!(requests(), blockers + 1, "{ctx}");
                abort_from(source, c);
            })
            .unwrap();
            el.run().unwrap();
            assert_eq!(*got.borrow(), [Outcome::Aborted("stop".into())], "{ctx}");
            assert_eq!(*released.borrow(), Some(true), "{ctx}: still a request");
            assert_ne!(
                (op.ran)(&tmp.0),
                Some(true),
                "{ctx}: the cancelled work ran"
            );
            assert!(!el.is_alive());
            assert!(el.active_handles().is_empty(), "{ctx}");
        }
    }
}

#[test]
fn aborted_while_queued_callbacks() {
    aborted_while_queued(Style::Callbacks);
}

#[test]
fn aborted_while_queued_promises() {
    aborted_while_queued(Style::Promises);
}

#[test]
fn aborted_while_queued_await() {
    aborted_while_queued(Style::Await);
}

// ---------------------------------------------------------------------------
// Aborted once a pool thread has taken the job
// ---------------------------------------------------------------------------

/// The job has been taken by a pool thread (the loop thread waits until
/// its effect shows, or 50 ms, in a microtask) when the abort comes: it cannot be
/// cancelled, its result is dropped, and the operation ends with the abort
/// error. The work did run (an abort does not undo it).
fn aborted_after_it_started(style: Style) {
    for op in ops() {
        let (el, tmp, env) = setup(&op, "started");
        let ctx = format!("{} ({style:?})", op.name);
        let (got, record) = recorder();
        let dir = tmp.0.clone();
        let ran = op.ran;
        el.run_main(|| {
            let c = AbortController::new();
            start(&op, style, &env, &c.signal(), record);
            // In main's checkpoint, before any pending phase could deliver
            // the result: block the loop thread until the pool thread has
            // done the work, then abort.
            evloop::queue_microtask(move || {
                let deadline = Instant::now() + Duration::from_secs(5);
                let wait_until = Instant::now() + Duration::from_millis(50);
                while Instant::now() < deadline {
                    match ran(&dir) {
                        Some(true) => break,
                        None if Instant::now() >= wait_until => break,
                        _ => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
                c.abort(Rejection::msg("late"));
            });
        })
        .unwrap();
        el.run().unwrap();
        assert_eq!(*got.borrow(), [Outcome::Aborted("late".into())], "{ctx}");
        assert_ne!((op.ran)(&tmp.0), Some(false), "{ctx}: the work did not run");
        assert!(!el.is_alive());
    }
}

#[test]
fn aborted_after_it_started_callbacks() {
    aborted_after_it_started(Style::Callbacks);
}

#[test]
fn aborted_after_it_started_promises() {
    aborted_after_it_started(Style::Promises);
}

#[test]
fn aborted_after_it_started_await() {
    aborted_after_it_started(Style::Await);
}

// ---------------------------------------------------------------------------
// Aborted after it completed
// ---------------------------------------------------------------------------

/// Aborting after completion does nothing: one outcome, `Ok`, and the work
/// done.
fn aborted_after_completion(style: Style) {
    for op in ops() {
        let (el, tmp, env) = setup(&op, "after");
        let ctx = format!("{} ({style:?})", op.name);
        let (got, record) = recorder();
        el.run_main(|| {
            let c = Rc::new(AbortController::new());
            let c2 = c.clone();
            start(&op, style, &env, &c.signal(), move |o| {
                record(o);
                c2.abort(Rejection::msg("too late"));
                evloop::set_timeout(Duration::from_millis(1), move || c2.abort(None));
            });
        })
        .unwrap();
        el.run().unwrap();
        assert_eq!(*got.borrow(), [Outcome::Ok], "{ctx}");
        assert_ne!((op.ran)(&tmp.0), Some(false), "{ctx}");
        assert!(!el.is_alive());
    }
}

#[test]
fn aborted_after_completion_callbacks() {
    aborted_after_completion(Style::Callbacks);
}

#[test]
fn aborted_after_completion_promises() {
    aborted_after_completion(Style::Promises);
}

#[test]
fn aborted_after_completion_await() {
    aborted_after_completion(Style::Await);
}

// ---------------------------------------------------------------------------
// Aborted while the job is really running (blocked on a FIFO)
// ---------------------------------------------------------------------------

/// `read_file` of a FIFO blocks in its pool job until the writer closes.
/// An abort then ends the operation at once, while the job still runs; the
/// job stays a request keeping the loop alive until it returns, and the
/// loop ends as soon as it does.
#[test]
fn read_file_aborted_while_running() {
    for style in STYLES {
        support::init_log();
        let tmp = TempDir::new("fifo");
        let fifo = tmp.0.join("fifo");
        mkfifo(&fifo);
        let (reader_in, release) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        hold_fifo(fifo.clone(), reader_in.clone(), release.clone());
        let el = EventLoop::new().unwrap();
        let (got, record) = recorder();
        let checked = Rc::new(RefCell::new(false));
        let ch = checked.clone();
        let env = Env {
            dir: tmp.0.clone(),
            file: None,
        };
        let op = Op {
            name: "read_file of a FIFO",
            needs_file: false,
            cb: |e, s, d| fs::read_file_with_signal(e.p("fifo"), s, |r| d(r.map(drop))),
            promise: |e, s| fsp::read_file_with_signal(e.p("fifo"), s).then(drop),
            ran: none,
        };
        let rel = release.clone();
        el.run_main(|| {
            let c = AbortController::new();
            start(&op, style, &env, &c.signal(), move |o| {
                record(o);
                // The job is still blocked in `read`: it is a request.
                assert!(!rel.load(Ordering::SeqCst));
                assert_eq!(requests(), 1);
                *ch.borrow_mut() = true;
                rel.store(true, Ordering::SeqCst);
            });
            // Abort from a timer once the job is inside the FIFO.
            let ri = reader_in.clone();
            let c = Rc::new(c);
            let t = Rc::new(RefCell::new(None));
            let t2 = t.clone();
            *t.borrow_mut() = Some(evloop::set_interval(Duration::from_millis(1), move || {
                if ri.load(Ordering::SeqCst) {
                    c.abort(Rejection::msg("stop"));
                    if let Some(i) = t2.borrow_mut().take() {
                        evloop::clear_interval(&i);
                    }
                }
            }));
        })
        .unwrap();
        let started = Instant::now();
        el.run().unwrap();
        release.store(true, Ordering::SeqCst);
        assert_eq!(
            *got.borrow(),
            [Outcome::Aborted("stop".into())],
            "{style:?}"
        );
        assert!(*checked.borrow());
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!el.is_alive());
    }
}

/// `File::open` aborted after its job opened the file: the `File` it made
/// is dropped, so its descriptor is closed; none is left on the path.
#[test]
fn open_aborted_after_the_file_was_opened_closes_it() {
    for style in STYLES {
        support::init_log();
        let tmp = TempDir::new("open-fd");
        let path = tmp.0.join("a");
        std::fs::write(&path, "hello").unwrap();
        let el = EventLoop::new().unwrap();
        let (got, record) = recorder();
        let env = Env {
            dir: tmp.0.clone(),
            file: None,
        };
        let op = Op {
            name: "open",
            needs_file: false,
            cb: |e, s, d| File::open_with_signal(e.p("a"), "r", s, |r| d(r.map(drop))),
            promise: |e, s| fsp::open_with_signal(e.p("a"), "r", s).then(drop),
            ran: none,
        };
        let p = path.clone();
        el.run_main(|| {
            let c = AbortController::new();
            start(&op, style, &env, &c.signal(), record);
            evloop::queue_microtask(move || {
                // Wait until the pool thread holds the descriptor (its
                // result cannot be delivered meanwhile).
                let deadline = Instant::now() + Duration::from_secs(5);
                while !fd_open_on(&p) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert!(fd_open_on(&p));
                c.abort(None);
            });
        })
        .unwrap();
        el.run().unwrap();
        assert_eq!(
            *got.borrow(),
            [Outcome::Aborted(Rejection::aborted().to_string())],
            "{style:?}"
        );
        assert!(!fd_open_on(&path), "{style:?}: the opened file leaked");
    }
}

// ---------------------------------------------------------------------------
// queue_work_with_signal
// ---------------------------------------------------------------------------

/// A queued job that is aborted never runs its work, and after the abort
/// only the pool's busy jobs keep the loop alive.
#[test]
fn queue_work_aborted_while_queued_never_runs() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let gate = Gate::default();
    let ran = Arc::new(AtomicBool::new(false));
    let (got, record) = recorder();
    let _g = el.enter();
    let blockers = fill_pool(&el, &gate);
    let c = AbortController::new();
    let r = ran.clone();
    evloop::queue_work_with_signal(
        move || r.store(true, Ordering::SeqCst),
        &c.signal(),
        move |res| record(from_io(res)),
    );
    assert_eq!(el.active_handles().len(), blockers + 1);
    c.abort(None);
    // One turn: the abort's callback runs, and the cancelled job is
    // released in the pending phase.
    for _ in 0..3 {
        el.run_nowait().unwrap();
    }
    assert_eq!(got.borrow().len(), 1);
    assert!(got.borrow()[0] != Outcome::Ok);
    assert_eq!(
        el.active_handles()
            .iter()
            .filter(|h| h.kind == HandleKind::Request)
            .count(),
        blockers,
        "the cancelled job still counts"
    );
    gate.open();
    el.run().unwrap();
    assert!(!ran.load(Ordering::SeqCst), "the cancelled work ran");
    assert!(!el.is_alive());
}

/// A running job: `done` gets the abort error at once, before the job
/// returns; the job keeps the loop alive until it does; its result is
/// dropped.
#[test]
fn queue_work_aborted_while_running() {
    support::init_log();
    let el = EventLoop::new().unwrap();
    let gate = Gate::default();
    let (started, finished) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (got, record) = recorder();
    let (g, s, f) = (gate.clone(), started.clone(), finished.clone());
    let (g2, f2) = (gate.clone(), finished.clone());
    el.run_main(move || {
        let c = AbortController::new();
        evloop::queue_work_with_signal(
            move || {
                s.store(true, Ordering::SeqCst);
                g.wait();
                f.store(true, Ordering::SeqCst);
                42
            },
            &c.signal(),
            move |r: io::Result<i32>| {
                record(from_io(r.map(|_| panic!("the result was delivered"))));
                assert!(!f2.load(Ordering::SeqCst), "not at once");
                assert!(evloop::active_handles()
                    .iter()
                    .any(|h| h.kind == HandleKind::Request));
                g2.open();
            },
        );
        let sender = c.sender();
        std::thread::spawn(move || {
            while !started.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            sender.abort(Some("from a thread".into())).unwrap();
        });
    })
    .unwrap();
    el.run().unwrap();
    assert_eq!(*got.borrow(), [Outcome::Aborted("from a thread".into())]);
    assert!(
        finished.load(Ordering::SeqCst),
        "run returned before the job did"
    );
    assert!(!el.is_alive());
}

/// The basic three: already aborted, completed then aborted, and the
/// promise form built on it.
#[test]
fn queue_work_before_start_and_after_completion() {
    support::init_log();
    let ran = Arc::new(AtomicBool::new(false));
    let (got, record) = recorder();
    let r = ran.clone();
    let rec = record.clone();
    evloop::run(move || {
        evloop::queue_work_with_signal(
            move || r.store(true, Ordering::SeqCst),
            &AbortSignal::abort(None),
            move |res| rec(from_io(res)),
        );
        assert_eq!(requests(), 0);
        let c = Rc::new(AbortController::new());
        let c2 = c.clone();
        evloop::queue_work_with_signal(
            || 7,
            &c.signal(),
            move |res| {
                record(from_io(res.map(|v| assert_eq!(v, 7))));
                c2.abort(None);
            },
        );
    })
    .unwrap();
    assert_eq!(
        *got.borrow(),
        [
            Outcome::Aborted(Rejection::aborted().to_string()),
            Outcome::Ok
        ]
    );
    assert!(!ran.load(Ordering::SeqCst));
}

/// A deadline: `AbortSignal::timeout` on a job stuck in the queue ends it
/// in milliseconds, and the loop does not wait for the deadline's timer
/// when the work finishes first.
#[test]
fn timeout_signal_on_fs_promises() {
    support::init_log();
    let tmp = TempDir::new("timeout");
    let path = tmp.0.join("a");
    std::fs::write(&path, "hello").unwrap();
    let started = Instant::now();
    let text = evloop::block_on(async move {
        let signal = AbortSignal::timeout(Duration::from_secs(3));
        fsp::read_to_string_with_signal(&path, &signal).await
    })
    .unwrap();
    assert_eq!(text.unwrap(), "hello");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited for the deadline"
    );

    let el = EventLoop::new().unwrap();
    let gate = Gate::default();
    let (got, record) = recorder();
    let p = tmp.0.join("a");
    el.run_main(|| {
        fill_pool(&el, &gate);
        let g = gate.clone();
        fsp::read_file_with_signal(p, &AbortSignal::timeout(Duration::from_millis(10)))
            .then(|_| Outcome::Ok)
            .catch(|e| from_rejection(Err(e)))
            .then(move |o| {
                record(o);
                g.open();
            });
    })
    .unwrap();
    el.run().unwrap();
    assert!(matches!(&got.borrow()[..], [Outcome::Aborted(r)] if r.contains("timeout")));
}
