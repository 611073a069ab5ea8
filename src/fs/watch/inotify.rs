//! The Linux backend of [`watch`](super::watch): one inotify instance per
//! loop (a per-loop slot), shared by every watcher, as libuv does.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use super::{WatchEvent, WatchEventType, WatcherInner};
use crate::event_loop::slots::{LoopLocal, PerLoop, Released};
use crate::event_loop::{try_with_current, with_current, LoopState};
use crate::reactor::{watch_kind, WatchSlot};
use crate::sys::inotify as sys;
use crate::Interest;

/// What libuv asks inotify for.
const MASK: u32 = sys::IN_ATTRIB
    | sys::IN_CREATE
    | sys::IN_MODIFY
    | sys::IN_DELETE
    | sys::IN_DELETE_SELF
    | sys::IN_MOVE_SELF
    | sys::IN_MOVED_FROM
    | sys::IN_MOVED_TO;

/// The fixed part of `struct inotify_event`: wd, mask, cookie, len.
const HEADER: usize = 16;

/// The loop's instance, while it has watchers.
#[derive(Default)]
struct Slot(RefCell<Option<Rc<Instance>>>);

impl PerLoop for Slot {
    fn new(_: &LoopState) -> Self {
        Slot::default()
    }

    /// Closes the watchers still open at teardown: their listeners (user
    /// closures, which may hold the watcher) are dropped with them.
    fn release(&self) -> Released {
        let inst = self.0.borrow().clone();
        let Some(inst) = inst else {
            return Released::NOTHING;
        };
        let watchers: Vec<Rc<WatcherInner>> = inst
            .wds
            .borrow()
            .values()
            .flatten()
            .filter_map(|s| s.watcher.upgrade())
            .collect();
        let n = watchers.len();
        for w in &watchers {
            w.close();
        }
        drop(inst);
        if n == 0 {
            Released::NOTHING
        } else {
            Released::new("fs watchers", n, watchers)
        }
    }
}

static INOTIFY: LoopLocal<Slot> = LoopLocal::new();

/// One watcher's interest in a watch descriptor.
struct Sub {
    watcher: Weak<WatcherInner>,
    /// The directory's path relative to the watched path (empty for the
    /// watched path itself; set for the subdirectories of a recursive
    /// watch).
    prefix: PathBuf,
}

/// The shared inotify instance.
pub(super) struct Instance {
    /// Declared before `file`: deregistered before the fd closes.
    watch: WatchSlot,
    file: File,
    /// Watch descriptor -> the watchers using it.
    wds: RefCell<HashMap<i32, Vec<Sub>>>,
    /// Open watchers.
    count: Cell<usize>,
    /// Open ref'd watchers: the registration keeps the loop alive while
    /// this is above zero.
    refs: Cell<usize>,
}

impl Instance {
    /// The loop's instance, created with its first watcher.
    fn current() -> io::Result<Rc<Instance>> {
        with_current(|state| {
            let slot = INOTIFY.get(state);
            if let Some(inst) = slot.0.borrow().as_ref() {
                return Ok(inst.clone());
            }
            let fd: OwnedFd = sys::init()?;
            let inst = Rc::new(Instance {
                watch: WatchSlot::default(),
                file: File::from(fd),
                wds: RefCell::new(HashMap::new()),
                count: Cell::new(0),
                refs: Cell::new(0),
            });
            let weak = Rc::downgrade(&inst);
            let w = watch_kind(
                inst.file.as_raw_fd(),
                Interest::READABLE,
                "fs_watch",
                move |_| {
                    if let Some(inst) = weak.upgrade() {
                        inst.on_readable();
                    }
                },
            )?;
            inst.watch.set(w);
            inst.watch.set_ref(false);
            log::debug!("inotify instance fd {} created", inst.file.as_raw_fd());
            *slot.0.borrow_mut() = Some(inst.clone());
            Ok(inst)
        })
    }

    /// Starts `w`: watches its path (and, if recursive, every directory
    /// under it). A failure leaves nothing behind.
    pub(super) fn start(w: &Rc<WatcherInner>) -> io::Result<()> {
        let inst = Instance::current()?;
        inst.count.set(inst.count.get() + 1);
        *w.inst.borrow_mut() = Some(inst.clone());
        let r = inst.add(w, &w.path, PathBuf::new()).map(|()| {
            if w.recursive && w.path.is_dir() {
                inst.add_tree(w, &w.path, Path::new(""));
            }
        });
        if let Err(e) = r {
            w.close();
            return Err(io::Error::new(
                e.kind(),
                crate::fs::FsError::new("watch", w.path.clone(), None, e),
            ));
        }
        Ok(())
    }

    fn add(&self, w: &Rc<WatcherInner>, path: &Path, prefix: PathBuf) -> io::Result<()> {
        let wd = sys::add_watch(self.file.as_fd(), path, MASK)?;
        self.wds.borrow_mut().entry(wd).or_default().push(Sub {
            watcher: Rc::downgrade(w),
            prefix,
        });
        w.wds.borrow_mut().push(wd);
        Ok(())
    }

    /// Watches the directories under `dir` (whose path relative to the
    /// watched one is `rel`); a directory that vanished meanwhile or
    /// cannot be read is skipped, as Node skips it.
    fn add_tree(&self, w: &Rc<WatcherInner>, dir: &Path, rel: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = e.path();
            let rel = rel.join(e.file_name());
            if self.add(w, &path, rel.clone()).is_ok() {
                self.add_tree(w, &path, &rel);
            }
        }
    }

    /// Removes `w`'s watch descriptors; closes the instance with its last
    /// watcher.
    pub(super) fn stop(&self, w: &WatcherInner, wds: Vec<i32>) {
        {
            let mut map = self.wds.borrow_mut();
            for wd in wds {
                let Some(subs) = map.get_mut(&wd) else {
                    continue;
                };
                subs.retain(|s| !std::ptr::eq(s.watcher.as_ptr(), w));
                if subs.is_empty() {
                    map.remove(&wd);
                    sys::rm_watch(self.file.as_fd(), wd);
                }
            }
        }
        self.count.set(self.count.get().saturating_sub(1));
        if self.count.get() == 0 {
            // The last watcher: the slot lets go, and the fd closes when
            // the last `Rc` (perhaps the one dispatching right now) drops.
            let taken = try_with_current(|state| {
                INOTIFY
                    .try_get(state)
                    .and_then(|slot| slot.0.borrow_mut().take())
            })
            .flatten();
            drop(taken);
            self.watch.close();
        }
    }

    /// One more (`true`) or one fewer ref'd watcher.
    pub(super) fn set_ref_one(&self, refed: bool) {
        let n = self.refs.get();
        let m = if refed { n + 1 } else { n.saturating_sub(1) };
        self.refs.set(m);
        if (n == 0) != (m == 0) {
            self.watch.set_ref(m > 0);
        }
    }

    /// Reads every queued event, then delivers them, each followed by a
    /// microtask checkpoint (no borrow is held while user code runs).
    fn on_readable(self: &Rc<Self>) {
        let mut out: Vec<(Weak<WatcherInner>, WatchEvent)> = Vec::new();
        let mut failure = None;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match (&self.file).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.parse(&buf[..n], &mut out),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut panic = None;
        for (w, ev) in out {
            let Some(w) = w.upgrade() else { continue };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.deliver(&ev)));
            if let Err(p) = r {
                panic.get_or_insert(p);
            }
            try_with_current(|state| state.checkpoint_now());
        }
        if let Some(e) = failure {
            log::debug!("inotify read failed: {e}");
            let watchers: Vec<Rc<WatcherInner>> = self
                .wds
                .borrow()
                .values()
                .flatten()
                .filter_map(|s| s.watcher.upgrade())
                .collect();
            for w in watchers {
                w.fail(super::clone_error(&e));
                try_with_current(|state| state.checkpoint_now());
            }
        }
        if let Some(p) = panic {
            std::panic::resume_unwind(p);
        }
    }

    /// Turns a buffer of `struct inotify_event`s into events for the
    /// watchers, and keeps the watch descriptors up to date (removed ones,
    /// new subdirectories of recursive watchers).
    fn parse(&self, buf: &[u8], out: &mut Vec<(Weak<WatcherInner>, WatchEvent)>) {
        let mut i = 0;
        while i + HEADER <= buf.len() {
            let word = |at: usize| {
                let b = &buf[i + at..i + at + 4];
                [b[0], b[1], b[2], b[3]]
            };
            let wd = i32::from_ne_bytes(word(0));
            let mask = u32::from_ne_bytes(word(4));
            let len = u32::from_ne_bytes(word(12)) as usize;
            let end = (i + HEADER).saturating_add(len).min(buf.len());
            let raw = &buf[i + HEADER..end];
            let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
            i = end;
            if mask & sys::IN_Q_OVERFLOW != 0 {
                log::warn!("inotify queue overflow: events were lost");
                continue;
            }
            // As libuv: only content or attributes changed is "change";
            // anything else (even with those bits) is "rename".
            let event_type = if mask & !(sys::IN_ATTRIB | sys::IN_MODIFY) != 0 {
                WatchEventType::Rename
            } else {
                WatchEventType::Change
            };
            let subs: Vec<(Weak<WatcherInner>, PathBuf)> = match self.wds.borrow().get(&wd) {
                Some(subs) => subs
                    .iter()
                    .map(|s| (s.watcher.clone(), s.prefix.clone()))
                    .collect(),
                None => continue,
            };
            let name = (!name.is_empty()).then(|| OsStr::from_bytes(name));
            for (weak, prefix) in &subs {
                let Some(w) = weak.upgrade() else { continue };
                let filename = match name {
                    Some(n) => Some(prefix.join(n)),
                    None if prefix.as_os_str().is_empty() => w.path.file_name().map(PathBuf::from),
                    None => Some(prefix.clone()),
                };
                let new_dir =
                    mask & sys::IN_ISDIR != 0 && mask & (sys::IN_CREATE | sys::IN_MOVED_TO) != 0;
                if w.recursive && new_dir {
                    if let Some(n) = name {
                        let path = w.path.join(prefix).join(n);
                        let rel = prefix.join(n);
                        if self.add(&w, &path, rel.clone()).is_ok() {
                            self.add_tree(&w, &path, &rel);
                        }
                    }
                }
                out.push((
                    weak.clone(),
                    WatchEvent {
                        event_type,
                        filename,
                    },
                ));
            }
            if mask & sys::IN_IGNORED != 0 {
                // The kernel dropped the watch (the inode is gone).
                if let Some(subs) = self.wds.borrow_mut().remove(&wd) {
                    for w in subs.iter().filter_map(|s| s.watcher.upgrade()) {
                        w.wds.borrow_mut().retain(|&x| x != wd);
                    }
                }
            }
        }
    }
}
