//! File streams (`fs::create_read_stream`, `fs::create_write_stream`):
//! exact bytes, ranges, errors, backpressure, abort, listener handles.

mod support;

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::path::PathBuf;
use std::rc::Rc;

use evloop::abort::{is_abort_error, AbortController};
use evloop::fs::{
    create_read_stream, create_read_stream_with, create_write_stream, create_write_stream_with,
    ReadStreamOptions, WriteStreamOptions,
};
use support::{init_log, rng::Rng, Log};

/// A temp path unique to this test process and `name`, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let p =
            std::env::temp_dir().join(format!("evloop-fs-streams-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        Tmp(p)
    }
    fn with(name: &str, data: &[u8]) -> Tmp {
        let t = Tmp::new(name);
        std::fs::write(&t.0, data).unwrap();
        t
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn payload(n: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0; n];
    Rng::new(seed).fill(&mut v);
    v
}

/// Reads `path` with `options`; returns the bytes, the chunk sizes and the
/// event log.
fn read_all(path: PathBuf, options: ReadStreamOptions) -> (Vec<u8>, Vec<usize>, Vec<String>) {
    init_log();
    let got = Rc::new(RefCell::new(Vec::new()));
    let sizes = Rc::new(RefCell::new(Vec::new()));
    let log = Log::new();
    let (g, s, l) = (got.clone(), sizes.clone(), log.clone());
    evloop::run(move || {
        let rs = create_read_stream_with(path, options);
        rs.on_data(move |c| {
            g.borrow_mut().extend_from_slice(c);
            s.borrow_mut().push(c.len());
        });
        let l2 = l.clone();
        rs.on_end(move || l2.push("end"));
        let l3 = l.clone();
        rs.on_error(move |e| l3.push(format!("error {:?}", e.kind())));
        rs.on_close(move |had_error| l.push(format!("close {had_error}")));
    })
    .unwrap();
    let got = got.borrow().clone();
    let sizes = sizes.borrow().clone();
    (got, sizes, log.take())
}

#[test]
fn read_stream_reads_a_file_exactly_in_64k_chunks() {
    let data = payload(300_000, 1);
    let t = Tmp::with("exact", &data);
    let (got, sizes, log) = read_all(t.0.clone(), ReadStreamOptions::default());
    assert_eq!(got, data);
    assert_eq!(sizes, [65536, 65536, 65536, 65536, 37856]);
    assert_eq!(log, ["end", "close false"]);
}

#[test]
fn read_stream_ranges_are_inclusive_like_node() {
    let data = payload(10_000, 2);
    let t = Tmp::with("range", &data);
    let opts = ReadStreamOptions {
        start: 100,
        end: Some(4099),
        high_water_mark: 1000,
        ..Default::default()
    };
    let (got, sizes, log) = read_all(t.0.clone(), opts);
    assert_eq!(got, &data[100..4100]);
    assert_eq!(sizes, [1000, 1000, 1000, 1000]);
    assert_eq!(log, ["end", "close false"]);
    // A range past the end stops at the end; a one-byte range.
    let opts = ReadStreamOptions {
        start: 9_990,
        end: Some(1 << 40),
        ..Default::default()
    };
    assert_eq!(read_all(t.0.clone(), opts).0, &data[9_990..]);
    let opts = ReadStreamOptions {
        start: 5,
        end: Some(5),
        ..Default::default()
    };
    assert_eq!(read_all(t.0.clone(), opts).0, &data[5..6]);
}

#[test]
fn read_stream_of_an_empty_file_just_ends() {
    let t = Tmp::with("empty", b"");
    let (got, sizes, log) = read_all(t.0.clone(), ReadStreamOptions::default());
    assert!(got.is_empty() && sizes.is_empty());
    assert_eq!(log, ["end", "close false"]);
}

#[test]
fn read_stream_errors_missing_file_and_bad_range() {
    let (got, _, log) = read_all("/no/such/evloop/file".into(), ReadStreamOptions::default());
    assert!(got.is_empty());
    assert_eq!(log, ["error NotFound", "close true"]);
    let t = Tmp::with("bad-range", b"abc");
    let opts = ReadStreamOptions {
        start: 2,
        end: Some(1),
        ..Default::default()
    };
    assert_eq!(
        read_all(t.0.clone(), opts).2,
        ["error InvalidInput", "close true"]
    );
}

#[test]
fn read_stream_error_without_listener_is_uncaught() {
    init_log();
    let r = evloop::run(|| {
        let rs = create_read_stream("/no/such/evloop/file");
        rs.on_data(|_| {});
    });
    match r {
        Err(evloop::Error::UnhandledError { emitter, error }) => {
            assert_eq!(emitter, "file read stream");
            assert_eq!(error.kind(), ErrorKind::NotFound);
        }
        other => panic!("expected an uncaught error, got {other:?}"),
    }
}

#[test]
fn read_stream_pause_holds_one_chunk_and_resume_goes_on() {
    init_log();
    let data = payload(200_000, 3);
    let t = Tmp::with("pause", &data);
    let got = Rc::new(RefCell::new(Vec::new()));
    let held = Rc::new(Cell::new(0usize));
    let (g, h, p) = (got.clone(), held.clone(), t.0.clone());
    evloop::run(move || {
        let rs = create_read_stream_with(
            p,
            ReadStreamOptions {
                high_water_mark: 10_000,
                ..Default::default()
            },
        );
        let r2 = rs.clone();
        rs.on_data(move |c| {
            g.borrow_mut().extend_from_slice(c);
            // Pause after every chunk, resume 1 ms later.
            r2.pause();
            let (r3, h2) = (r2.clone(), h.clone());
            evloop::set_timeout(std::time::Duration::from_millis(1), move || {
                h2.set(h2.get().max(r3.buffered_len()));
                r3.resume();
            });
        });
    })
    .unwrap();
    assert_eq!(*got.borrow(), data);
    assert!(held.get() <= 10_000, "held {}", held.get());
}

#[test]
fn read_stream_listener_handles_remove() {
    init_log();
    let t = Tmp::with("remove", &payload(1000, 4));
    let counts = Rc::new(RefCell::new((0, 0)));
    let (c1, c2, p) = (counts.clone(), counts.clone(), t.0.clone());
    evloop::run(move || {
        let rs = create_read_stream(p);
        rs.on_data(move |_| c1.borrow_mut().0 += 1);
        let second = rs.on_data(move |_| c2.borrow_mut().1 += 1);
        assert!(second.remove());
        assert!(!second.remove());
    })
    .unwrap();
    assert_eq!(*counts.borrow(), (1, 0));
}

#[test]
fn read_stream_abort_destroys_it() {
    init_log();
    let t = Tmp::with("abort-read", &payload(1 << 20, 5));
    let log = Log::new();
    let l = log.clone();
    let p = t.0.clone();
    evloop::run(move || {
        let ac = AbortController::new();
        let rs = create_read_stream_with(
            p,
            ReadStreamOptions {
                high_water_mark: 1024,
                signal: Some(ac.signal()),
                ..Default::default()
            },
        );
        let l1 = l.clone();
        let n = Rc::new(Cell::new(0));
        rs.on_data(move |_| {
            n.set(n.get() + 1);
            if n.get() == 3 {
                ac.abort(None);
            }
            l1.push("data");
        });
        let l2 = l.clone();
        rs.on_error(move |e| {
            assert!(is_abort_error(&e));
            l2.push("abort")
        });
        rs.on_close(move |e| l.push(format!("close {e}")));
    })
    .unwrap();
    assert_eq!(log.take(), ["data", "data", "data", "abort", "close true"]);
}

#[test]
fn write_stream_writes_exactly_and_respects_backpressure() {
    init_log();
    let t = Tmp::new("write");
    let data = Rc::new(payload(1 << 20, 6));
    let log = Log::new();
    let max_queue = Rc::new(Cell::new(0usize));
    let (d, l, mq, p) = (data.clone(), log.clone(), max_queue.clone(), t.0.clone());
    evloop::run(move || {
        let ws = create_write_stream(p);
        let off = Rc::new(Cell::new(0usize));
        // Write 4 KiB chunks while `write` says go on; drain resumes.
        let pump: Rc<dyn Fn()> = {
            let (ws, off, d, l, mq) = (ws.clone(), off.clone(), d.clone(), l.clone(), mq.clone());
            Rc::new(move || loop {
                let at = off.get();
                if at == d.len() {
                    ws.end();
                    return;
                }
                let end = (at + 4096).min(d.len());
                off.set(end);
                let more = ws.write(&d[at..end]);
                mq.set(mq.get().max(ws.write_queue_len()));
                if !more {
                    l.push("false");
                    return;
                }
            })
        };
        let (p2, l2) = (pump.clone(), l.clone());
        ws.on_drain(move || {
            l2.push("drain");
            p2()
        });
        let l3 = l.clone();
        ws.on_finish(move || l3.push("finish"));
        ws.on_close(move |e| l.push(format!("close {e}")));
        pump();
    })
    .unwrap();
    assert_eq!(std::fs::read(&t.0).unwrap(), *data);
    let log = log.take();
    let falses = log.iter().filter(|s| *s == "false").count();
    let drains = log.iter().filter(|s| *s == "drain").count();
    assert!(falses > 10, "{falses}");
    assert_eq!(falses, drains, "every false is followed by a drain");
    assert_eq!(&log[log.len() - 2..], ["finish", "close false"]);
    // The writer stopped at the mark: the queue never held more than
    // 16 KiB (the mark) plus nothing: 4 KiB chunks reach it exactly.
    assert!(max_queue.get() <= 16 * 1024, "{}", max_queue.get());
}

#[test]
fn write_stream_options_start_and_append() {
    init_log();
    let t = Tmp::with("append", b"hello");
    let p = t.0.clone();
    evloop::run(move || {
        let ws = create_write_stream_with(
            p,
            WriteStreamOptions {
                flags: "a".into(),
                ..Default::default()
            },
        );
        ws.write(b", world");
        ws.end_with(|r| r.unwrap());
    })
    .unwrap();
    assert_eq!(std::fs::read(&t.0).unwrap(), b"hello, world");
    let p = t.0.clone();
    evloop::run(move || {
        let ws = create_write_stream_with(
            p,
            WriteStreamOptions {
                flags: "r+".into(),
                start: 7,
                ..Default::default()
            },
        );
        ws.write(b"WORLD");
        ws.end();
    })
    .unwrap();
    assert_eq!(std::fs::read(&t.0).unwrap(), b"hello, WORLD");
}

#[test]
fn write_stream_errors() {
    init_log();
    let log = Log::new();
    let l = log.clone();
    evloop::run(move || {
        let ws = create_write_stream("/no/such/dir/evloop-file");
        let l1 = l.clone();
        ws.on_error(move |e| l1.push(format!("error {:?}", e.kind())));
        ws.on_close(move |e| l.push(format!("close {e}")));
        ws.write(b"x");
        ws.end_with(|r| assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound));
    })
    .unwrap();
    assert_eq!(log.take(), ["error NotFound", "close true"]);
    // Write after end: destroyed with BrokenPipe.
    let t = Tmp::new("after-end");
    let (l, p) = (log.clone(), t.0.clone());
    evloop::run(move || {
        let ws = create_write_stream(p);
        ws.write(b"a");
        ws.end();
        assert!(!ws.write(b"b"));
        ws.on_error(move |e| l.push(format!("error {:?}", e.kind())));
    })
    .unwrap();
    assert_eq!(log.take(), ["error BrokenPipe"]);
}

#[test]
fn write_stream_abort_drops_queued_data() {
    init_log();
    let t = Tmp::new("abort-write");
    let log = Log::new();
    let (l, p) = (log.clone(), t.0.clone());
    evloop::run(move || {
        let ac = AbortController::new();
        let ws = create_write_stream_with(
            p,
            WriteStreamOptions {
                signal: Some(ac.signal()),
                ..Default::default()
            },
        );
        ws.write(&[1; 100_000]);
        let l1 = l.clone();
        ws.on_error(move |e| l1.push(format!("abort {}", is_abort_error(&e))));
        ws.on_close(move |e| l.push(format!("close {e}")));
        ac.abort(None);
        assert!(ws.is_closed());
    })
    .unwrap();
    assert_eq!(log.take(), ["abort true", "close true"]);
}
