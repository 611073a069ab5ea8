//! `fs::watch` (inotify) and `fs::watch_file` (stat polling): the events
//! and names Node gives, the fd and the timer a closed watcher releases,
//! what keeps the loop alive, many watchers at once, the promise and async
//! forms. Every wait is bounded by a watchdog, never a sleep-and-assert.

// The inotify tests are Linux-only; elsewhere their helpers go unused.
#![cfg_attr(not(target_os = "linux"), allow(unused))]

mod support;

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::MutexGuard;
use std::time::Duration;

use evloop::fs::{self, Stats, WatchEvent, WatchEventType, WatchEvents, WatchOptions};
use support::fds::fd_count;
use support::watchdog::{serial, Watchdog};

use WatchEventType::{Change, Rename};

/// One test at a time (the fd counts are process-wide), under a watchdog.
fn start(name: &'static str) -> (MutexGuard<'static, ()>, Watchdog) {
    let g = serial();
    support::init_log();
    (g, Watchdog::new(name, Duration::from_secs(60)))
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "evloop-watch-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ev(t: WatchEventType, name: &str) -> WatchEvent {
    WatchEvent {
        event_type: t,
        filename: Some(PathBuf::from(name)),
    }
}

/// Takes events until `want` arrives; returns them all (with `want`).
async fn until(events: &mut WatchEvents, want: WatchEvent) -> Vec<WatchEvent> {
    let mut seen = Vec::new();
    loop {
        let e = events
            .next()
            .await
            .expect("no error")
            .expect("the watcher is open");
        let done = e == want;
        seen.push(e);
        if done {
            return seen;
        }
    }
}

#[cfg(target_os = "linux")]
mod inotify {
    use super::*;

    #[test]
    fn a_directory_watch_sees_create_modify_rename_and_delete_by_name() {
        let _t = start("dir events");
        let dir = TempDir::new("dir");
        let d = dir.0.clone();
        let heard = Rc::new(RefCell::new(Vec::new()));
        let h = heard.clone();
        evloop::block_on(async move {
            let w = fs::watch(&d, WatchOptions::default(), move |e| {
                h.borrow_mut().push(e.clone())
            })
            .unwrap();
            let mut events = w.events();
            std::fs::write(d.join("a"), "x").unwrap();
            until(&mut events, ev(Rename, "a")).await;
            std::fs::write(d.join("a"), "xy").unwrap();
            until(&mut events, ev(Change, "a")).await;
            std::fs::rename(d.join("a"), d.join("b")).unwrap();
            let seen = until(&mut events, ev(Rename, "b")).await;
            assert!(seen.contains(&ev(Rename, "a")), "the old name: {seen:?}");
            std::fs::remove_file(d.join("b")).unwrap();
            until(&mut events, ev(Rename, "b")).await;
            w.close();
            assert_eq!(
                events.next().await.unwrap(),
                None,
                "closed: the stream ends"
            );
        })
        .unwrap();
        let heard = heard.borrow();
        for e in [ev(Rename, "a"), ev(Change, "a"), ev(Rename, "b")] {
            assert!(heard.contains(&e), "the listener saw {e:?}: {heard:?}");
        }
    }

    #[test]
    fn a_file_watch_names_the_file_itself() {
        let _t = start("file events");
        let dir = TempDir::new("file");
        let f = dir.join("f.txt");
        std::fs::write(&f, "1").unwrap();
        evloop::block_on(async move {
            let w = fs::watch(&f, WatchOptions::default(), |_| {}).unwrap();
            let mut events = w.events();
            std::fs::write(&f, "22").unwrap();
            until(&mut events, ev(Change, "f.txt")).await;
            std::fs::remove_file(&f).unwrap();
            until(&mut events, ev(Rename, "f.txt")).await;
            w.close();
        })
        .unwrap();
    }

    #[test]
    fn next_is_a_promise_of_the_next_event_and_none_after_close() {
        let _t = start("next");
        let dir = TempDir::new("next");
        let d = dir.0.clone();
        evloop::block_on(async move {
            let w = fs::watch(&d, WatchOptions::default(), |_| {}).unwrap();
            let next = w.next();
            std::fs::write(d.join("n"), "").unwrap();
            assert_eq!(next.await.unwrap(), Some(ev(Rename, "n")));
            let pending = w.next();
            w.close();
            assert_eq!(pending.await.unwrap(), None);
            assert_eq!(w.next().await.unwrap(), None);
        })
        .unwrap();
    }

    #[test]
    fn next_works_with_then_callbacks_too() {
        let _t = start("next then");
        let dir = TempDir::new("then");
        let d = dir.0.clone();
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        evloop::run(move || {
            let w = fs::watch(&d, WatchOptions::default(), |_| {}).unwrap();
            let w2 = w.clone();
            w.next().then(move |e| {
                *g.borrow_mut() = e;
                w2.close();
            });
            fs::write_file(d.join("p"), "", |r| r.unwrap());
        })
        .unwrap();
        assert_eq!(*got.borrow(), Some(ev(Rename, "p")));
    }

    #[test]
    fn recursive_watches_subdirectories_old_and_new() {
        let _t = start("recursive");
        let dir = TempDir::new("rec");
        std::fs::create_dir_all(dir.join("sub/deep")).unwrap();
        let d = dir.0.clone();
        evloop::block_on(async move {
            let options = WatchOptions {
                recursive: true,
                ..WatchOptions::default()
            };
            let w = fs::watch(&d, options, |_| {}).unwrap();
            let mut events = w.events();
            std::fs::write(d.join("sub/deep/x"), "").unwrap();
            until(&mut events, ev(Rename, "sub/deep/x")).await;
            std::fs::create_dir(d.join("new")).unwrap();
            until(&mut events, ev(Rename, "new")).await;
            std::fs::write(d.join("new/y"), "").unwrap();
            until(&mut events, ev(Rename, "new/y")).await;
            w.close();
        })
        .unwrap();
    }

    #[test]
    fn a_missing_path_fails_at_once() {
        let _t = start("missing");
        evloop::run(|| {
            let e = fs::watch("/no/such/dir/evloop", WatchOptions::default(), |_| {}).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
            assert!(e.to_string().contains("/no/such/dir/evloop"), "{e}");
            assert_eq!(fs::raw_os_error(&e), Some(2), "ENOENT, as Node's");
        })
        .unwrap();
    }

    #[test]
    fn watchers_share_one_inotify_fd_and_the_last_close_releases_it() {
        let _t = start("fds");
        let dir = TempDir::new("fds");
        let d = dir.0.clone();
        let before_loop = fd_count();
        evloop::run(move || {
            let n0 = fd_count();
            let a = fs::watch(&d, WatchOptions::default(), |_| {}).unwrap();
            assert_eq!(fd_count(), n0 + 1, "one inotify fd");
            let b = fs::watch(&d, WatchOptions::default(), |_| {}).unwrap();
            assert_eq!(fd_count(), n0 + 1, "shared");
            a.close();
            assert_eq!(fd_count(), n0 + 1, "b still watches");
            b.close();
            assert_eq!(fd_count(), n0, "the last close released the fd");
            b.close(); // twice: a no-op
            assert!(b.is_closed());
        })
        .unwrap();
        assert!(fd_count() <= before_loop);
    }

    #[test]
    fn an_open_watcher_keeps_the_loop_alive_a_closed_or_unrefed_one_does_not() {
        let _t = start("liveness");
        let dir = TempDir::new("live");
        let fired = Rc::new(Cell::new(false));
        let f = fired.clone();
        let d = dir.0.clone();
        evloop::run(move || {
            let w = fs::watch(&d, WatchOptions::default(), |_| {}).unwrap();
            assert!(w.has_ref());
            // Unref'd: only the watcher keeps the loop running until it fires.
            evloop::set_timeout(Duration::from_millis(30), move || {
                f.set(true);
                w.close();
            })
            .unref();
        })
        .unwrap();
        assert!(fired.get(), "the ref'd watcher kept the loop alive");

        // Unref'd and not persistent: the loop ends at once.
        let d = dir.0.clone();
        let kept = Rc::new(RefCell::new(Vec::new()));
        let k = kept.clone();
        evloop::run(move || {
            let a = fs::watch(&d, WatchOptions::default(), |_| {}).unwrap();
            a.unref();
            assert!(!a.has_ref());
            let options = WatchOptions {
                persistent: false,
                ..WatchOptions::default()
            };
            let b = fs::watch(&d, options, |_| {}).unwrap();
            assert!(!b.has_ref());
            k.borrow_mut().extend([a, b]);
        })
        .unwrap();
        // Left open at the end of the loop: closed by its teardown.
        assert!(kept.borrow().iter().all(|w| w.is_closed()));
    }

    #[test]
    fn a_thousand_watchers_on_a_thousand_files_on_one_fd() {
        let _t = start("thousand");
        const N: usize = 1000;
        let dir = TempDir::new("many");
        let paths: Vec<PathBuf> = (0..N).map(|i| dir.join(&format!("f{i}"))).collect();
        for p in &paths {
            std::fs::write(p, "").unwrap();
        }
        let seen = Rc::new(RefCell::new(vec![false; N]));
        let s = seen.clone();
        let before = fd_count();
        evloop::run(move || {
            let n0 = fd_count();
            let left = Rc::new(Cell::new(N));
            let watchers: Rc<RefCell<Vec<fs::FsWatcher>>> = Rc::default();
            for (i, p) in paths.iter().enumerate() {
                let (s, left, all) = (s.clone(), left.clone(), watchers.clone());
                let w = fs::watch(p, WatchOptions::default(), move |e| {
                    assert_eq!(e.filename.as_deref(), Some(Path::new(&format!("f{i}"))));
                    if !std::mem::replace(&mut s.borrow_mut()[i], true) {
                        left.set(left.get() - 1);
                        if left.get() == 0 {
                            for w in all.borrow().iter() {
                                w.close();
                            }
                        }
                    }
                })
                .unwrap();
                watchers.borrow_mut().push(w);
            }
            assert_eq!(fd_count(), n0 + 1, "one inotify instance for all");
            for p in &paths {
                std::fs::write(p, "changed").unwrap();
            }
        })
        .unwrap();
        assert!(seen.borrow().iter().all(|&b| b));
        assert!(fd_count() <= before, "the fd was released");
    }

    #[test]
    fn a_watcher_captured_by_its_own_listener_is_released_at_teardown() {
        let _t = start("cycle");
        let dir = TempDir::new("cycle");
        let d = dir.0.clone();
        let weak = Rc::new(RefCell::new(None));
        let wk = weak.clone();
        evloop::run(move || {
            let me: Rc<RefCell<Option<fs::FsWatcher>>> = Rc::default();
            let m = me.clone();
            let w = fs::watch(&d, WatchOptions::default(), move |_| {
                let _ = m.borrow();
            })
            .unwrap();
            w.unref();
            *wk.borrow_mut() = Some(Rc::downgrade(&me));
            *me.borrow_mut() = Some(w);
        })
        .unwrap();
        let weak = weak.borrow_mut().take().unwrap();
        assert!(weak.upgrade().is_none(), "the cycle was broken");
    }
}

#[cfg(not(target_os = "linux"))]
#[test]
fn watch_is_unsupported_here() {
    evloop::run(|| {
        let e = fs::watch(".", WatchOptions::default(), |_| {}).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
    })
    .unwrap();
}

// ---- watch_file ----

#[test]
fn watch_file_reports_creation_modification_and_deletion_with_stats() {
    let _t = start("watch_file");
    let dir = TempDir::new("stat");
    let f = dir.join("polled");
    let calls: Rc<RefCell<Vec<(Stats, Stats)>>> = Rc::default();
    let c = calls.clone();
    evloop::run(move || {
        let step = Rc::new(Cell::new(0));
        let step_out = step.clone();
        let me: Rc<RefCell<Option<fs::StatWatcher>>> = Rc::default();
        let (m, path) = (me.clone(), f.clone());
        let w = fs::watch_file(&f, Duration::from_millis(5), move |cur, prev| {
            c.borrow_mut().push((cur.clone(), prev.clone()));
            step.set(step.get() + 1);
            match step.get() {
                // created: now grow it (a new size, whatever the clock)
                1 => std::fs::write(&path, "0123456789").unwrap(),
                // modified: now delete it
                2 => std::fs::remove_file(&path).unwrap(),
                _ => m.borrow().as_ref().unwrap().close(),
            }
        });
        *me.borrow_mut() = Some(w);
        // After the baseline poll (missing), create it; if a slow pool
        // made the baseline see it, growing it again is a change too, so
        // the test cannot hang on timing.
        let (path, st) = (f.clone(), step_out.clone());
        let round = Cell::new(0);
        let iv: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
        let iv2 = iv.clone();
        *iv.borrow_mut() = Some(evloop::set_interval(Duration::from_millis(50), move || {
            if st.get() > 0 {
                iv2.borrow().as_ref().unwrap().clear();
                return;
            }
            round.set(round.get() + 1);
            std::fs::write(&path, "1".repeat(round.get())).unwrap();
        }));
    })
    .unwrap();
    let calls = calls.borrow();
    assert_eq!(calls.len(), 3, "{calls:?}");
    let (cur, prev) = &calls[0];
    assert!(cur.exists() && cur.is_file(), "created");
    if prev.exists() {
        // the baseline was late and saw the first write: grown since
        assert!(prev.size < cur.size, "{prev:?} -> {cur:?}");
    } else {
        assert_eq!(*prev, Stats::missing(), "zeroed, as in Node");
    }
    let first = cur.size;
    let (cur, prev) = &calls[1];
    assert_eq!((cur.size, prev.size), (10, first), "modified");
    let (cur, prev) = &calls[2];
    assert!(!cur.exists() && prev.exists(), "deleted: zeroed current");
}

#[test]
fn a_closed_stat_watcher_stops_its_timer_and_an_unrefed_one_lets_the_loop_end() {
    let _t = start("watch_file liveness");
    let dir = TempDir::new("statlive");
    let f = dir.join("x");
    std::fs::write(&f, "").unwrap();
    let fired = Rc::new(Cell::new(false));
    let fr = fired.clone();
    let path = f.clone();
    evloop::run(move || {
        let w = fs::watch_file(&path, Duration::from_millis(5), |_, _| {});
        assert!(w.has_ref());
        // Unref'd: only the watcher's timer keeps the loop running.
        evloop::set_timeout(Duration::from_millis(40), move || {
            fr.set(true);
            w.close(); // the loop can end now
            assert!(w.is_closed());
        })
        .unref();
    })
    .unwrap();
    assert!(fired.get());
    evloop::run(move || {
        fs::watch_file(&f, Duration::from_millis(5), |_, _| {}).unref();
    })
    .unwrap();
}

#[test]
fn a_thousand_stat_watchers() {
    let _t = start("stat thousand");
    const N: usize = 1000;
    let dir = TempDir::new("statmany");
    let paths: Vec<PathBuf> = (0..N).map(|i| dir.join(&format!("s{i}"))).collect();
    let seen = Rc::new(RefCell::new(vec![false; N]));
    let s = seen.clone();
    evloop::run(move || {
        let left = Rc::new(Cell::new(N));
        let watchers: Rc<RefCell<Vec<fs::StatWatcher>>> = Rc::default();
        let iv: Rc<RefCell<Option<evloop::Interval>>> = Rc::default();
        for (i, p) in paths.iter().enumerate() {
            let (s, all, left, iv) = (s.clone(), watchers.clone(), left.clone(), iv.clone());
            let w = fs::watch_file(p, Duration::from_millis(20), move |cur, _| {
                assert!(cur.exists());
                if !std::mem::replace(&mut s.borrow_mut()[i], true) {
                    left.set(left.get() - 1);
                }
                if left.get() == 0 {
                    all.borrow().iter().for_each(|w| w.close());
                    if let Some(iv) = iv.borrow().as_ref() {
                        iv.clear();
                    }
                }
            });
            watchers.borrow_mut().push(w);
        }
        // Each round (re)writes, one byte longer, the files whose watcher
        // has not reported yet: a change whenever its baseline was taken.
        let round = Cell::new(0);
        let s = s.clone();
        *iv.borrow_mut() = Some(evloop::set_interval(
            Duration::from_millis(100),
            move || {
                round.set(round.get() + 1);
                for (i, p) in paths.iter().enumerate() {
                    if !s.borrow()[i] {
                        std::fs::write(p, "x".repeat(round.get())).unwrap();
                    }
                }
            },
        ));
    })
    .unwrap();
    assert!(seen.borrow().iter().all(|&b| b));
}

/// `watch_file`'s promise face (`next`) and async face (`events`): both
/// see a change; after `close`, the stream ends and `next` is `None`.
#[test]
fn watch_file_has_a_promise_and_an_async_face() {
    let _t = start("watch_file promise and stream");
    let dir = TempDir::new("statfaces");
    let f = dir.join("grown");
    std::fs::write(&f, "1").unwrap();
    let (first, streamed, rest_ok, after) = evloop::block_on(async move {
        let w = fs::watch_file(&f, Duration::from_millis(5), |_, _| {});
        let mut changes = w.events();
        let next = w.next();
        // Grow the file until both faces saw a change: sizes only grow,
        // so every change has `current.size > previous.size`, and a slow
        // pool cannot make the test hang.
        let (path, round) = (f.clone(), Rc::new(Cell::new(1)));
        let iv = evloop::set_interval(Duration::from_millis(30), move || {
            round.set(round.get() + 1);
            std::fs::write(&path, "1".repeat(round.get())).unwrap();
        });
        let first = next.await.unwrap().unwrap();
        let streamed = changes.next().await.unwrap().unwrap();
        iv.clear();
        w.close();
        let mut rest_ok = true;
        while let Some(c) = changes.next().await.unwrap() {
            rest_ok &= c.current.size > c.previous.size;
        }
        let after = w.next().await.unwrap();
        (first, streamed, rest_ok, after)
    })
    .unwrap();
    assert!(first.current.size > first.previous.size, "{first:?}");
    assert!(
        streamed.current.size > streamed.previous.size,
        "{streamed:?}"
    );
    assert!(rest_ok);
    assert_eq!(after, None, "closed: no next change");
}
