//! The timeline: a Chrome trace-event file that parses and holds the
//! loop's phases, callbacks, microtask checkpoints, pool jobs on their own
//! threads and a worker process on its own track; the text timeline; and
//! nothing at all when tracing is off.
//!
//! Tracing is process-wide, so this test runs without libtest's harness
//! (see Cargo.toml), one case after the other; the binary is also its own
//! worker process.

mod support;

use std::time::Duration;

use evloop::process::{exec, parent_channel, worker_entry, Command, Worker};

fn main() {
    support::init_log();
    match worker_entry().as_deref() {
        Some("reply") => return reply_worker(),
        Some("text") => return small_program(),
        // scripts/render_check.sh: the known program, traced to a page.
        Some("render") => return render_program(),
        _ => {}
    }
    for (name, test) in [
        ("off_records_nothing", off_records_nothing as fn()),
        ("json_file_holds_the_expected_events", json_file),
        ("text_timeline_on_stderr", text_timeline),
        ("html_page_holds_the_events", html_page),
    ] {
        eprint!("test {name} ... ");
        test();
        eprintln!("ok");
    }
}

/// Timers, an immediate, microtasks and a pool job.
fn small_program() {
    evloop::run(|| {
        evloop::set_timeout(Duration::from_millis(2), || {
            evloop::queue_microtask(|| {});
        });
        evloop::set_immediate(|| {});
        evloop::queue_work(|| std::thread::sleep(Duration::from_millis(2)), |_| {});
    })
    .unwrap();
}

/// The program whose page `scripts/render_check.sh` opens in a headless
/// browser: exactly 3 timers, 2 immediates, 1 pool job (and its
/// completion callback), 1 microtask checkpoint, the main script: 9
/// boxes, 8 on the loop thread and 1 on a pool thread (dropping a one-shot
/// timer's closure is part of its callback, not a box of its own). Keep
/// the check's expectations in step with it.
fn render_program() {
    evloop::run(|| {
        for ms in [1, 3, 5] {
            evloop::set_timeout(Duration::from_millis(ms), move || {
                if ms == 3 {
                    evloop::queue_microtask(|| {});
                }
            });
        }
        evloop::set_immediate(|| {});
        evloop::set_immediate(|| {});
        evloop::queue_work(|| std::thread::sleep(Duration::from_millis(2)), |_| {});
    })
    .unwrap();
}

fn reply_worker() {
    evloop::run(|| {
        let p = parent_channel().unwrap();
        let p2 = p.clone();
        p.on_message(move |m| {
            p2.send(m).unwrap();
            p2.close();
        });
    })
    .unwrap();
}

fn off_records_nothing() {
    assert!(!evloop::trace::is_enabled());
    small_program();
    // Stopping when off is a no-op.
    evloop::trace::stop().unwrap();
}

fn json_file() {
    let dir = std::env::temp_dir().join(format!("evloop-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.json");
    evloop::trace::start(&path).unwrap();
    assert!(evloop::trace::is_enabled());
    assert!(evloop::trace::start(&path).is_err(), "already on");
    small_program();
    // A worker process: its events arrive in a part file, merged by stop().
    let worker_pid = evloop::block_on(async {
        let w = Worker::spawn("reply").unwrap();
        w.send(b"hi").unwrap();
        let m = w.channel().recv().await.unwrap();
        assert_eq!(m.as_deref(), Some(&b"hi"[..]));
        w.child().wait().await.unwrap();
        w.child().pid()
    })
    .unwrap();
    evloop::trace::stop().unwrap();
    assert!(!evloop::trace::is_enabled());

    let text = std::fs::read_to_string(&path).unwrap();
    let events: Vec<serde_json::Value> = serde_json::from_str(&text).expect("the trace parses");
    let me = std::process::id() as u64;
    let has = |pid: u64, cat: &str, name: &str| {
        events
            .iter()
            .any(|e| e["pid"].as_u64() == Some(pid) && e["cat"] == cat && e["name"] == name)
    };
    for (cat, name) in [
        ("phase", "timers"),
        ("phase", "check"),
        ("phase", "poll"),
        ("wait", "poll wait"),
        ("callback", "main"),
        ("callback", "timer"),
        ("callback", "immediate"),
        ("callback", "pending"),
        ("checkpoint", "microtasks"),
        ("pool", "work"),
    ] {
        assert!(has(me, cat, name), "no {cat}/{name} event in {text}");
    }
    // Complete events have a duration; pool work is on a pool thread.
    let pool_tid = events
        .iter()
        .find(|e| e["cat"] == "pool")
        .and_then(|e| e["tid"].as_u64())
        .unwrap();
    let thread_name = |tid: u64| {
        events
            .iter()
            .find(|e| {
                e["name"] == "thread_name"
                    && e["pid"].as_u64() == Some(me)
                    && e["tid"].as_u64() == Some(tid)
            })
            .and_then(|e| e["args"]["name"].as_str().map(str::to_string))
    };
    assert!(thread_name(pool_tid).unwrap().starts_with("evloop-pool"));
    assert!(events
        .iter()
        .filter(|e| e["ph"] == "X")
        .all(|e| e["dur"].as_f64().is_some_and(|d| d >= 0.0) && e["ts"].as_f64().is_some()));
    // The worker's own track.
    let wpid = worker_pid as u64;
    assert!(has(wpid, "callback", "main"), "no worker events");
    assert!(events
        .iter()
        .any(|e| e["pid"].as_u64() == Some(wpid) && e["name"] == "process_name"));
    assert!(events.iter().any(|e| e["cat"] == "process"
        && e["name"]
            .as_str()
            .is_some_and(|n| n.contains(&format!("pid {worker_pid}")))));
    assert_eq!(events.last().unwrap()["name"], "trace end");
    // No part file is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `EVLOOP_TRACE=-` in a child: its stderr holds the text timeline.
fn text_timeline() {
    let exe = std::env::current_exe().unwrap();
    let out = std::rc::Rc::new(std::cell::RefCell::new(None));
    let o = out.clone();
    evloop::run(move || {
        let mut cmd = Command::new(exe);
        cmd.env("EVLOOP_WORKER", "text").env("EVLOOP_TRACE", "-");
        exec(&mut cmd, move |r| *o.borrow_mut() = Some(r.unwrap()));
    })
    .unwrap();
    let out = out.borrow_mut().take().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stderr).unwrap();
    for needle in [
        "callback   main",
        "phase      timers",
        "callback   timer",
        "callback   immediate",
        "checkpoint microtasks",
        "pool       work",
        "wait       poll wait",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    assert!(text.lines().all(|l| l.starts_with('+')), "{text}");
}

/// `start` with an `.html` path: one self-contained page holding the same
/// events as the JSON file would, with no reference to the network.
fn html_page() {
    let dir = std::env::temp_dir().join(format!("evloop-trace-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.html");
    evloop::trace::start(&path).unwrap();
    render_program();
    evloop::trace::stop().unwrap();
    let page = std::fs::read_to_string(&path).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    for offline in [
        "http://",
        "https://",
        "src=",
        "fetch(",
        "XMLHttpRequest",
        "@import",
    ] {
        assert!(!page.contains(offline), "the page refers to {offline:?}");
    }
    assert_eq!(page.matches("<script>").count(), 1);
    assert_eq!(page.matches("</script>").count(), 1);
    // The embedded events: between `const EVENTS = ` and the line's `;`.
    let json = page
        .split_once("const EVENTS = ")
        .and_then(|(_, rest)| rest.split_once(";\n"))
        .map(|(json, _)| json)
        .expect("the events literal");
    let events: Vec<serde_json::Value> = serde_json::from_str(json).expect("the events parse");
    let me = std::process::id() as u64;
    let count = |cat: &str, name: &str| {
        events
            .iter()
            .filter(|e| e["pid"].as_u64() == Some(me) && e["cat"] == cat && e["name"] == name)
            .count()
    };
    assert_eq!(count("callback", "main"), 1);
    // One box per timer: the drop of its closure is not traced apart.
    assert_eq!(count("callback", "timer"), 3);
    assert_eq!(count("callback", "immediate"), 2);
    assert_eq!(count("callback", "pending"), 1);
    assert_eq!(count("checkpoint", "microtasks"), 1);
    assert_eq!(count("pool", "work"), 1);
    // Loop events carry their iteration; the main script is in the first.
    let iter = |e: &serde_json::Value| e["args"]["iter"].as_u64();
    let main = events.iter().find(|e| e["name"] == "main").unwrap();
    assert_eq!(iter(main), Some(1));
    let timers: Vec<u64> = events
        .iter()
        .filter(|e| e["name"] == "timer")
        .map(|e| iter(e).expect("a timer's iteration"))
        .collect();
    assert!(timers.windows(2).all(|w| w[0] <= w[1]), "{timers:?}");
    assert!(events
        .iter()
        .filter(|e| e["cat"] == "pool")
        .all(|e| iter(e).is_none()));
    assert_eq!(events.last().unwrap()["name"], "trace end");
    std::fs::remove_dir_all(&dir).unwrap();
}
