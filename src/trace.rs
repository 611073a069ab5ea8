//! A timeline of the loop that you can see: every phase, every callback
//! with its source, each microtask checkpoint, thread-pool jobs on their
//! own threads, and worker processes on their own tracks.
//!
//! Turn it on with an environment variable, or from code:
//!
//! - `EVLOOP_TRACE=trace.json` (or [`start`]) writes a Chrome trace-event
//!   file; open it in <https://ui.perfetto.dev> or `chrome://tracing`.
//! - `EVLOOP_TRACE=trace.html` (or [`start`] with a path ending in
//!   `.html`) writes the same events as one self-contained page: a lane per
//!   thread and process, zoom and pan with the mouse, details on hover. It
//!   needs no network (no external script or style).
//! - `EVLOOP_TRACE=-` (or [`start_text`]) prints a plain-text timeline on
//!   stderr as it happens.
//!
//! Tracing is process-wide: every loop and pool thread of the process
//! writes to the one timeline, each on its own track (pid, thread). Child
//! processes started through [`process::Command`](crate::process::Command)
//! inherit it: each writes `trace.json.<pid>.part`, and [`stop`] (or the end
//! of the loop whose creation started it from the environment) merges those
//! parts into the file. Timestamps are wall-clock microseconds, so the
//! processes line up.
//!
//! Off, each hook costs one relaxed atomic load and a branch (measured in
//! `benches/loop_core.rs`: see `benches/README.md`).
//!
//! ```no_run
//! evloop::trace::start("trace.json").unwrap();
//! evloop::run(|| {
//!     evloop::set_timeout(std::time::Duration::from_millis(5), || {});
//!     evloop::set_immediate(|| {});
//! })
//! .unwrap();
//! evloop::trace::stop().unwrap(); // trace.json is complete
//! ```

use std::cell::Cell;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

mod html;

/// The environment variable that turns tracing on: a file path (`.html`
/// for the timeline page, anything else for the JSON file), or `-` for the
/// text timeline on stderr.
pub const TRACE_ENV: &str = "EVLOOP_TRACE";
/// Set in child processes: write a `.part` file for the parent to merge.
const PART_ENV: &str = "EVLOOP_TRACE_PART";

static ON: AtomicBool = AtomicBool::new(false);
static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Whether tracing is on (one relaxed load: the fast path when off).
#[inline]
pub fn is_enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

enum Out {
    Json {
        file: File,
        path: PathBuf,
        /// A child's part: no brackets, merged by the parent.
        part: bool,
        /// Rewrite the finished JSON as the timeline page (see [`html`]).
        html: bool,
    },
    Text(io::Stderr),
}

struct Sink {
    out: Out,
    buf: String,
    pid: u32,
    /// When tracing started (for the text timeline's offsets).
    started: f64,
}

fn sink() -> MutexGuard<'static, Option<Sink>> {
    SINK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts writing a Chrome trace-event file at `path` (replacing it), or
/// the self-contained timeline page when `path` ends in `.html` or `.htm`
/// (the events are gathered in the file as JSON and the page replaces them
/// at [`stop`]). Fails if tracing is already on.
pub fn start(path: impl AsRef<Path>) -> io::Result<()> {
    start_json(path.as_ref().to_path_buf(), false)
}

/// Starts printing the text timeline on stderr. Fails if tracing is
/// already on.
pub fn start_text() -> io::Result<()> {
    install(Out::Text(io::stderr()), String::new())
}

fn start_json(path: PathBuf, part: bool) -> io::Result<()> {
    let file = File::create(&path)?;
    let head = if part {
        String::new()
    } else {
        "[\n".to_string()
    };
    let html = !part && html::is_page_path(&path);
    install(
        Out::Json {
            file,
            path,
            part,
            html,
        },
        head,
    )
}

fn install(out: Out, head: String) -> io::Result<()> {
    let mut g = sink();
    if g.is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "tracing is already on",
        ));
    }
    let pid = std::process::id();
    let mut s = Sink {
        out,
        buf: head,
        pid,
        started: now_us(),
    };
    let name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "evloop".into());
    s.meta("process_name", 0, &format!("{name} ({pid})"));
    *g = Some(s);
    GENERATION.fetch_add(1, Ordering::Relaxed);
    ON.store(true, Ordering::Relaxed);
    log::debug!("tracing on");
    Ok(())
}

/// Stops tracing: flushes, merges child processes' parts, and closes the
/// file (a no-op when tracing is off).
pub fn stop() -> io::Result<()> {
    ON.store(false, Ordering::Relaxed);
    let Some(mut s) = sink().take() else {
        return Ok(());
    };
    s.flush()?;
    if let Out::Json {
        file,
        path,
        part,
        html,
    } = &mut s.out
    {
        if !*part {
            merge_parts(file, path)?;
            // The last event has no trailing comma.
            writeln!(
                file,
                "{{\"name\":\"trace end\",\"ph\":\"i\",\"s\":\"g\",\"ts\":{:.3},\"pid\":{},\"tid\":0}}\n]",
                now_us(),
                s.pid
            )?;
        }
        file.flush()?;
        if *html {
            html::rewrite_as_page(path)?;
        }
    }
    log::debug!("tracing off");
    Ok(())
}

/// Appends every complete event line of `<path>.<pid>.part` files, then
/// removes them.
fn merge_parts(file: &mut File, path: &Path) -> io::Result<()> {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(());
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let prefix = format!("{name}.");
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let fname = entry.file_name().to_string_lossy().into_owned();
        if !(fname.starts_with(&prefix) && fname.ends_with(".part")) {
            continue;
        }
        let text = std::fs::read_to_string(entry.path())?;
        // A child killed mid-write leaves a partial last line: skip it.
        for line in text.lines().filter(|l| l.ends_with("},")) {
            writeln!(file, "{line}")?;
        }
        let _ = std::fs::remove_file(entry.path());
    }
    Ok(())
}

/// Called when a loop is created: starts tracing from `EVLOOP_TRACE`, once
/// per process. Returns true if this call started it (the loop then stops
/// it when dropped).
pub(crate) fn init_from_env() -> bool {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) || is_enabled() {
        return false;
    }
    let Some(target) = std::env::var_os(TRACE_ENV).filter(|v| !v.is_empty()) else {
        return false;
    };
    let r = if target == "-" {
        start_text()
    } else if std::env::var_os(PART_ENV).is_some() {
        let mut p = target.clone();
        p.push(format!(".{}.part", std::process::id()));
        start_json(PathBuf::from(p), true)
    } else {
        start(&target)
    };
    match r {
        Ok(()) => true,
        Err(e) => {
            log::warn!("{TRACE_ENV}={target:?}: cannot trace: {e}");
            false
        }
    }
}

/// What a child process needs to join the trace: environment variables
/// for [`process::Command`](crate::process::Command) to set.
pub(crate) fn child_env() -> Option<Vec<(&'static str, std::ffi::OsString)>> {
    let g = sink();
    match &g.as_ref()?.out {
        Out::Json {
            path, part: false, ..
        } => Some(vec![
            (TRACE_ENV, path.clone().into_os_string()),
            (PART_ENV, "1".into()),
        ]),
        // A part's children write parts of their own next to it.
        Out::Json {
            path, part: true, ..
        } => {
            let s = path.to_string_lossy();
            let base = s.rsplit_once('.').and_then(|(b, _)| b.rsplit_once('.'));
            Some(vec![
                (TRACE_ENV, base.map_or(s.as_ref(), |(b, _)| b).into()),
                (PART_ENV, "1".into()),
            ])
        }
        Out::Text(_) => Some(vec![(TRACE_ENV, "-".into())]),
    }
}

// ---- recording ----

/// Wall-clock microseconds: the same clock in every process, read through
/// `Instant` so it never goes backwards.
fn now_us() -> f64 {
    static BASE: OnceLock<(Instant, f64)> = OnceLock::new();
    let (at, wall) = BASE.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1e6);
        (Instant::now(), wall)
    });
    wall + at.elapsed().as_secs_f64() * 1e6
}

/// A span's start, or `None` when tracing is off.
#[inline]
pub(crate) fn begin() -> Option<f64> {
    if is_enabled() {
        Some(now_us())
    } else {
        None
    }
}

/// Records a span begun with [`begin`]: `name` in category `cat`, with an
/// optional count in its args.
#[inline]
pub(crate) fn end(start: Option<f64>, name: &str, cat: &str, count: Option<(&str, usize)>) {
    if let Some(t0) = start {
        record(t0, name, cat, count);
    }
}

/// An instant event (a child spawned, a signal arrived).
pub(crate) fn instant(name: &str, cat: &str) {
    if is_enabled() {
        let ts = now_us();
        let tid = thread_id();
        with_sink(|s| {
            if s.is_text() {
                s.text_line(ts, tid, cat, name, None, None);
                return;
            }
            let _ = writeln!(
                s.buf,
                "{{\"name\":{},\"cat\":\"{cat}\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{ts:.3},\"pid\":{},\"tid\":{tid}}},",
                json_str(name),
                s.pid
            );
        });
    }
}

fn record(t0: f64, name: &str, cat: &str, count: Option<(&str, usize)>) {
    let t1 = now_us();
    let tid = thread_id();
    with_sink(|s| {
        if s.is_text() {
            s.text_line(t0, tid, cat, name, Some(t1 - t0), count);
            return;
        }
        // The loop's own events say which iteration of this thread's loop
        // they belong to (the timeline page shows it); pool jobs do not.
        let iter = matches!(cat, "phase" | "callback" | "checkpoint" | "wait")
            .then(|| iterations_done() + 1);
        let args = match (count, iter) {
            (Some((k, v)), Some(i)) => format!(",\"args\":{{\"{k}\":{v},\"iter\":{i}}}"),
            (Some((k, v)), None) => format!(",\"args\":{{\"{k}\":{v}}}"),
            (None, Some(i)) => format!(",\"args\":{{\"iter\":{i}}}"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            s.buf,
            "{{\"name\":{},\"cat\":\"{cat}\",\"ph\":\"X\",\"ts\":{t0:.3},\"dur\":{:.3},\"pid\":{},\"tid\":{tid}{args}}},",
            json_str(name),
            t1 - t0,
            s.pid
        );
    });
}

fn with_sink(f: impl FnOnce(&mut Sink)) {
    let mut g = sink();
    if let Some(s) = g.as_mut() {
        f(s);
        if s.buf.len() > 64 * 1024 || s.is_text() {
            let _ = s.flush();
        }
    }
}

/// Bumped each time tracing starts, so iterations count from 1 again.
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Loop iterations this thread has finished while tracing (counted at
    /// [`flush`], which a loop calls once at the end of each iteration),
    /// with the tracing generation they were counted in.
    static ITERATION: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// This thread's loop iterations finished since tracing started.
fn iterations_done() -> u64 {
    let generation = GENERATION.load(Ordering::Relaxed);
    ITERATION.with(|i| match i.get() {
        (g, n) if g == generation => n,
        _ => 0,
    })
}

/// Flushes this process's buffered events (a loop calls it once per
/// iteration, so a killed process loses little).
pub(crate) fn flush() {
    if is_enabled() {
        let n = iterations_done() + 1;
        ITERATION.with(|i| i.set((GENERATION.load(Ordering::Relaxed), n)));
        if let Some(s) = sink().as_mut() {
            let _ = s.flush();
        }
    }
}

impl Sink {
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = match &mut self.out {
            Out::Json { file, .. } => file.write_all(self.buf.as_bytes()),
            Out::Text(e) => e.write_all(self.buf.as_bytes()),
        };
        self.buf.clear();
        r
    }

    fn meta(&mut self, what: &str, tid: u64, name: &str) {
        if let Out::Json { .. } = self.out {
            let _ = writeln!(
                self.buf,
                "{{\"name\":\"{what}\",\"ph\":\"M\",\"pid\":{},\"tid\":{tid},\"args\":{{\"name\":{}}}}},",
                self.pid,
                json_str(name)
            );
        }
    }

    fn is_text(&self) -> bool {
        matches!(self.out, Out::Text(_))
    }

    /// The text timeline's line for an event: when it began (ms since
    /// tracing started), where, what, and how long it took. Lines come in
    /// the order events end, so a phase follows its callbacks.
    fn text_line(
        &mut self,
        ts: f64,
        tid: u64,
        cat: &str,
        name: &str,
        dur: Option<f64>,
        count: Option<(&str, usize)>,
    ) {
        let at = (ts - self.started) / 1000.0;
        let _ = write!(
            self.buf,
            "+{at:>10.3}ms pid {} t{tid} {cat:<10} {name}",
            self.pid
        );
        if let Some((k, v)) = count {
            let _ = write!(self.buf, " ({v} {k})");
        }
        if let Some(d) = dur {
            let _ = write!(self.buf, " {d:.1}us");
        }
        self.buf.push('\n');
    }
}

/// A small number for this thread, named in the trace on first use.
fn thread_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static ID: Cell<u64> = const { Cell::new(0) };
    }
    ID.with(|id| {
        if id.get() == 0 {
            id.set(NEXT.fetch_add(1, Ordering::Relaxed));
            let name = std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_string();
            if let Some(s) = sink().as_mut() {
                s.meta("thread_name", id.get(), &name);
            }
        }
        id.get()
    })
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
