//! `evloop::fs`: file operations on the thread pool, their errors, open
//! files, concurrency and descriptor hygiene.

mod support;

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use evloop::fs;

/// Every test takes this lock: the fd census must not see descriptors
/// opened by tests running on other threads of this binary.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    support::init_log();
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "evloop-fs-{tag}-{}-{}",
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

/// Runs `main` on a loop and asserts that `done` callbacks ran.
fn run_counting(expected: usize, main: impl FnOnce(Rc<Cell<usize>>)) {
    let done = Rc::new(Cell::new(0));
    let d = done.clone();
    evloop::run(move || main(d)).unwrap();
    assert_eq!(done.get(), expected, "not every callback ran");
}

fn bump(c: &Rc<Cell<usize>>) {
    c.set(c.get() + 1);
}

#[test]
fn write_read_append_round_trip() {
    let _s = serial();
    let dir = TempDir::new("rt");
    let f = dir.join("a.txt");
    let loop_thread = std::thread::current().id();
    run_counting(1, |done| {
        let f2 = f.clone();
        fs::write_file(&f, "hello", move |r| {
            assert_eq!(std::thread::current().id(), loop_thread);
            r.unwrap();
            let f3 = f2.clone();
            fs::append_file(&f2, b" world".to_vec(), move |r| {
                r.unwrap();
                let f4 = f3.clone();
                fs::read_file(&f3, move |r| {
                    assert_eq!(r.unwrap(), b"hello world");
                    fs::read_to_string(&f4, move |r| {
                        assert_eq!(r.unwrap(), "hello world");
                        bump(&done);
                    });
                });
            });
        });
    });
}

#[test]
fn append_creates_and_write_truncates() {
    let _s = serial();
    let dir = TempDir::new("trunc");
    let f = dir.join("b.txt");
    run_counting(1, |done| {
        let f2 = f.clone();
        fs::append_file(&f, "long content", move |r| {
            r.unwrap();
            let f3 = f2.clone();
            fs::write_file(&f2, "x", move |r| {
                r.unwrap();
                fs::read_file(&f3, move |r| {
                    assert_eq!(r.unwrap(), b"x");
                    bump(&done);
                });
            });
        });
    });
}

#[test]
fn read_dir_lists_entries_with_types() {
    let _s = serial();
    let dir = TempDir::new("readdir");
    std::fs::write(dir.join("one"), "1").unwrap();
    std::fs::write(dir.join("two"), "2").unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let root = dir.0.clone();
    run_counting(1, |done| {
        fs::read_dir(&dir.0, move |r| {
            let mut entries = r.unwrap();
            entries.sort_by(|a, b| a.name().cmp(b.name()));
            let names: Vec<_> = entries
                .iter()
                .map(|e| e.name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, ["one", "sub", "two"]);
            assert!(entries[0].file_type().is_file());
            assert!(entries[1].file_type().is_dir());
            assert_eq!(entries[2].path(), root.join("two"));
            bump(&done);
        });
    });
}

#[test]
fn metadata_of_files_and_dirs() {
    let _s = serial();
    let dir = TempDir::new("meta");
    std::fs::write(dir.join("f"), vec![7u8; 1234]).unwrap();
    run_counting(2, |done| {
        let d = done.clone();
        fs::metadata(dir.join("f"), move |r| {
            let m = r.unwrap();
            assert!(m.is_file());
            assert_eq!(m.len(), 1234);
            bump(&d);
        });
        fs::metadata(&dir.0, move |r| {
            assert!(r.unwrap().is_dir());
            bump(&done);
        });
    });
}

#[test]
fn create_dir_and_create_dir_all() {
    let _s = serial();
    let dir = TempDir::new("mkdir");
    let deep = dir.join("a/b/c");
    run_counting(3, |done| {
        let d = done.clone();
        // A plain create_dir cannot create missing parents.
        fs::create_dir(&deep, move |r| {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound);
            bump(&d);
        });
        let deep2 = deep.clone();
        fs::create_dir_all(&deep, move |r| {
            r.unwrap();
            assert!(deep2.is_dir());
            bump(&done);
            // Recursive mkdir of an existing directory succeeds.
            fs::create_dir_all(&deep2, move |r| {
                r.unwrap();
                bump(&done);
            });
        });
    });
}

#[test]
fn rename_moves_and_errors_name_both_paths() {
    let _s = serial();
    let dir = TempDir::new("rename");
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, "data").unwrap();
    run_counting(2, |done| {
        let (a2, b2) = (a.clone(), b.clone());
        fs::rename(&a, &b, move |r| {
            r.unwrap();
            assert!(!a2.exists());
            assert_eq!(std::fs::read(&b2).unwrap(), b"data");
            bump(&done);
            // `a` is gone now: renaming it again fails, naming both paths.
            fs::rename(a2.clone(), b2.clone(), move |r| {
                let e = r.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::NotFound);
                let fe = fs::FsError::of(&e).unwrap();
                assert_eq!(fe.op(), "rename");
                assert_eq!(fe.path(), a2);
                assert_eq!(fe.dest(), Some(b2.as_path()));
                let msg = e.to_string();
                assert!(msg.contains(&*a2.to_string_lossy()), "{msg}");
                assert!(msg.contains(&*b2.to_string_lossy()), "{msg}");
                bump(&done);
            });
        });
    });
}

#[test]
fn copy_file_returns_bytes_copied() {
    let _s = serial();
    let dir = TempDir::new("copy");
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&a, vec![1u8; 4096 + 17]).unwrap();
    run_counting(1, |done| {
        let (a2, b2) = (a.clone(), b.clone());
        fs::copy_file(&a, &b, move |r| {
            assert_eq!(r.unwrap(), 4096 + 17);
            assert_eq!(std::fs::read(&a2).unwrap(), std::fs::read(&b2).unwrap());
            bump(&done);
        });
    });
}

#[test]
fn exists_true_and_false() {
    let _s = serial();
    let dir = TempDir::new("exists");
    std::fs::write(dir.join("here"), "").unwrap();
    run_counting(4, |done| {
        let d = done.clone();
        fs::exists(dir.join("here"), move |e| {
            assert!(e);
            bump(&d);
        });
        let d = done.clone();
        fs::exists(&dir.0, move |e| {
            assert!(e);
            bump(&d);
        });
        let d = done.clone();
        fs::exists(dir.join("missing"), move |e| {
            assert!(!e);
            bump(&d);
        });
        fs::exists("", move |e| {
            assert!(!e);
            bump(&done);
        });
    });
}

#[test]
fn remove_file_dir_and_dir_all() {
    let _s = serial();
    let dir = TempDir::new("remove");
    std::fs::write(dir.join("f"), "x").unwrap();
    std::fs::create_dir(dir.join("empty")).unwrap();
    std::fs::create_dir_all(dir.join("full/inner")).unwrap();
    std::fs::write(dir.join("full/inner/g"), "y").unwrap();
    let root = dir.0.clone();
    run_counting(4, |done| {
        let d = done.clone();
        fs::remove_file(dir.join("f"), move |r| {
            r.unwrap();
            bump(&d);
        });
        let d = done.clone();
        fs::remove_dir(dir.join("empty"), move |r| {
            r.unwrap();
            bump(&d);
        });
        let d = done.clone();
        // rmdir of a non-empty directory fails; rm -r does not.
        fs::remove_dir(dir.join("full"), move |r| {
            assert!(r.is_err());
            bump(&d);
            fs::remove_dir_all(root.join("full"), move |r| {
                r.unwrap();
                bump(&d);
            });
        });
        let _ = done;
    });
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0);
}

#[test]
fn missing_file_is_not_found_with_enoent_and_the_path() {
    let _s = serial();
    let dir = TempDir::new("missing");
    let missing = dir.join("does-not-exist.txt");
    run_counting(1, |done| {
        let m = missing.clone();
        fs::read_file(&missing, move |r| {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound);
            // Documented: the outer io::Error has no raw code; the helper
            // looks through to the FsError inside.
            assert_eq!(e.raw_os_error(), None);
            assert_eq!(fs::raw_os_error(&e), Some(libc::ENOENT));
            assert_eq!(fs::FsError::of(&e).unwrap().os_error(), Some(2));
            assert_eq!(fs::error_path(&e), Some(m.as_path()));
            let msg = e.to_string();
            assert!(msg.contains(&*m.to_string_lossy()), "{msg}");
            assert!(msg.starts_with("read '"), "{msg}");
            bump(&done);
        });
    });
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let _s = serial();
    let dir = TempDir::new("bad");
    run_counting(5, |done| {
        let d = done.clone();
        fs::read_file("", move |r| {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound);
            bump(&d);
        });
        let d = done.clone();
        fs::read_file(&dir.0, move |r| {
            let e = r.unwrap_err();
            assert_eq!(fs::raw_os_error(&e), Some(libc::EISDIR), "{e}");
            bump(&d);
        });
        let d = done.clone();
        fs::File::open(dir.join("x"), "no-such-flag", move |r| {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidInput);
            bump(&d);
        });
        let d = done.clone();
        fs::read_to_string(dir.join("nope"), move |r| {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound);
            bump(&d);
        });
        // Invalid UTF-8.
        std::fs::write(dir.join("bin"), [0xff, 0xfe]).unwrap();
        fs::read_to_string(dir.join("bin"), move |r| {
            assert_eq!(r.unwrap_err().kind(), ErrorKind::InvalidData);
            bump(&done);
        });
    });
}

#[test]
fn callbacks_are_never_synchronous() {
    let _s = serial();
    let returned = Rc::new(Cell::new(false));
    let r2 = returned.clone();
    run_counting(2, |done| {
        let d = done.clone();
        let r = r2.clone();
        fs::File::open("/x", "bogus", move |_| {
            assert!(r.get(), "callback ran before open returned");
            bump(&d);
        });
        let r = r2.clone();
        fs::exists("", move |_| {
            assert!(r.get());
            bump(&done);
        });
        r2.set(true);
    });
    assert!(returned.get());
}

#[test]
fn file_positional_read_write_sync_close() {
    let _s = serial();
    let dir = TempDir::new("file");
    let path = dir.join("pos.bin");
    run_counting(1, |done| {
        fs::File::open(&path, "w+", move |r| {
            let file = r.unwrap();
            assert!(!file.is_closed());
            let f = file.clone();
            // Two writes at different offsets, in flight at once.
            let written = Rc::new(Cell::new(0));
            let after_writes = Rc::new(RefCell::new(Some(move || {
                let g = f.clone();
                f.read(3, 5, move |r| {
                    assert_eq!(r.unwrap(), b"lo wo");
                    let h = g.clone();
                    // Reading past the end gives what there is.
                    g.read(8, 100, move |r| {
                        assert_eq!(r.unwrap(), b"rld");
                        let i = h.clone();
                        h.metadata(move |r| {
                            assert_eq!(r.unwrap().len(), 11);
                            let j = i.clone();
                            i.sync(move |r| {
                                r.unwrap();
                                let k = j.clone();
                                j.close(move |r| {
                                    r.unwrap();
                                    assert!(k.is_closed());
                                    bump(&done);
                                });
                            });
                        });
                    });
                });
            })));
            for (off, data) in [(6u64, &b"world"[..]), (0, &b"hello "[..])] {
                let written = written.clone();
                let next = after_writes.clone();
                file.write(off, data, move |r| {
                    assert_eq!(r.unwrap(), data.len());
                    written.set(written.get() + 1);
                    if written.get() == 2 {
                        (next.borrow_mut().take().unwrap())();
                    }
                });
            }
        });
    });
    assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
}

#[test]
fn use_after_close_is_an_error() {
    let _s = serial();
    let dir = TempDir::new("closed");
    let path = dir.join("c");
    std::fs::write(&path, "abc").unwrap();
    run_counting(6, |done| {
        fs::File::open(&path, "r", move |r| {
            let file = r.unwrap();
            // A read queued before close completes normally.
            let d = done.clone();
            file.read(0, 3, move |r| {
                assert_eq!(r.unwrap(), b"abc");
                bump(&d);
            });
            let d = done.clone();
            file.close(move |r| {
                r.unwrap();
                bump(&d);
            });
            let check = |done: Rc<Cell<usize>>| {
                move |e: std::io::Error| {
                    assert_eq!(e.kind(), ErrorKind::Other);
                    assert!(e.to_string().contains("closed"), "{e}");
                    assert!(fs::error_path(&e).is_some());
                    bump(&done);
                }
            };
            let c = check(done.clone());
            file.read(0, 1, move |r| c(r.unwrap_err()));
            let c = check(done.clone());
            file.write(0, "z", move |r| c(r.unwrap_err()));
            let c = check(done.clone());
            file.metadata(move |r| c(r.unwrap_err()));
            let c = check(done);
            file.close(move |r| c(r.unwrap_err()));
        });
    });
}

#[test]
fn a_hundred_concurrent_reads_all_complete() {
    let _s = serial();
    let dir = TempDir::new("many");
    let n = 100;
    for i in 0..n {
        std::fs::write(dir.join(&format!("f{i}")), format!("file number {i}")).unwrap();
    }
    let seen = Rc::new(RefCell::new(vec![false; n]));
    let s = seen.clone();
    run_counting(n, |done| {
        for i in 0..n {
            let done = done.clone();
            let seen = s.clone();
            fs::read_to_string(dir.join(&format!("f{i}")), move |r| {
                assert_eq!(r.unwrap(), format!("file number {i}"));
                seen.borrow_mut()[i] = true;
                bump(&done);
            });
        }
    });
    assert!(seen.borrow().iter().all(|&b| b));
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn no_descriptor_leaks() {
    let _s = serial();
    if !Path::new("/proc/self/fd").exists() {
        return; // not Linux
    }
    let dir = TempDir::new("fds");
    for i in 0..20 {
        std::fs::write(dir.join(&format!("f{i}")), "x").unwrap();
    }
    let before = open_fds();
    run_counting(20 + 20 + 3, |done| {
        for i in 0..20 {
            let d = done.clone();
            fs::read_file(dir.join(&format!("f{i}")), move |r| {
                r.unwrap();
                bump(&d);
            });
            let d = done.clone();
            fs::read_file(dir.join(&format!("missing{i}")), move |r| {
                assert!(r.is_err());
                bump(&d);
            });
        }
        // One file closed explicitly, one dropped without close, one
        // closed while a read is still in flight.
        let d = done.clone();
        fs::File::open(dir.join("f0"), "r", move |r| {
            r.unwrap().close(move |r| {
                r.unwrap();
                bump(&d);
            });
        });
        let d = done.clone();
        fs::File::open(dir.join("f1"), "r", move |r| {
            drop(r.unwrap());
            bump(&d);
        });
        fs::File::open(dir.join("f2"), "r", move |r| {
            let f = r.unwrap();
            f.read(0, 1, |r| assert_eq!(r.unwrap(), b"x"));
            f.close(move |r| {
                r.unwrap();
                bump(&done);
            });
        });
    });
    assert_eq!(open_fds(), before, "descriptors leaked");
}
