//! Callback-style file operations, run on the loop's thread pool.
//!
//! # Why files go to the pool
//!
//! Regular files are not pollable on Linux: `epoll` refuses them, and a
//! `read` from a file "ready" by `select`'s definition can still sleep on the
//! disk. So, as in libuv and Node, every operation here is a blocking
//! `std::fs` call made on a pool thread through [`queue_work`]; the loop
//! thread never waits on the disk. The callback runs on the loop thread in
//! the pending phase, followed by a microtask checkpoint, and every
//! operation in flight keeps the loop alive, like a libuv `uv_fs_t` request.
//!
//! Callbacks are never called synchronously, not even for input that is
//! rejected without touching the disk (an unknown open flag, a closed
//! [`File`]). Independent operations run in parallel (up to the pool's
//! size) and complete in whatever order the disk allows.
//!
//! | here | Node |
//! |---|---|
//! | [`read_file`], [`read_to_string`] | `fs.readFile(path[, 'utf8'], cb)` |
//! | [`write_file`], [`append_file`] | `fs.writeFile`, `fs.appendFile` |
//! | [`read_dir`] | `fs.readdir(path, { withFileTypes: true }, cb)` |
//! | [`metadata`], [`symlink_metadata`] | `fs.stat`, `fs.lstat` |
//! | [`create_dir`], [`create_dir_all`] | `fs.mkdir`, `fs.mkdir(.., { recursive: true })` |
//! | [`remove_file`], [`remove_dir`], [`remove_dir_all`] | `fs.unlink`, `fs.rmdir`, `fs.rm(.., { recursive: true })` |
//! | [`rename`], [`copy_file`] | `fs.rename`, `fs.copyFile` |
//! | [`exists`] | `fs.exists` |
//! | [`File::open`], [`File::read`], [`File::write`], [`File::sync`], [`File::close`] | `fs.open`, `fs.read`, `fs.write`, `fs.fsync`, `fs.close` |
//!
//! # Cancellation
//!
//! Every operation above except [`File::close`] has a `_with_signal`
//! variant taking an [`AbortSignal`] just before the callback (Node's `{
//! signal }` option, which Node takes on `readFile`, `writeFile` and
//! `appendFile`; here every pool job takes one): `read_file_with_signal(path,
//! &signal, cb)`, `File::read_with_signal(offset, len, &signal, cb)`, and
//! so on. [`promises`] has the same variants, returning promises. If the
//! signal aborts before the operation completes, the callback gets the
//! [`AbortError`](crate::abort::AbortError) (an `io::Error` that
//! [`is_abort_error`](crate::abort::is_abort_error) recognizes, carrying the
//! signal's reason, without the path wrapping above) instead of the result,
//! in a `next_tick` after the abort. What the abort releases depends on
//! where the pool job is:
//!
//! | the job | on abort |
//! |---|---|
//! | not started: the signal was already aborted | nothing is queued; the callback gets the error in a `next_tick` |
//! | queued, waiting for a pool thread | cancelled: its `std::fs` call never runs; it stops keeping the loop alive in the next pending phase |
//! | running on a pool thread | it cannot be interrupted: it finishes (the file may be read, written, renamed, ...), its result is dropped (a file [`File::open`] opened is closed), and until it returns it is a request that keeps the loop alive |
//! | completed (its callback ran) | nothing |
//!
//! So an abort never undoes work: it stops waiting for it, and stops it
//! only if it had not begun. `File::close` takes no signal: the handle is
//! closed as soon as it is called, and an abort could not reopen it.
//!
//! ```
//! use evloop::abort::{is_abort_error, AbortController};
//!
//! evloop::run(|| {
//!     let controller = AbortController::new();
//!     evloop::fs::read_file_with_signal("Cargo.toml", &controller.signal(), |r| {
//!         assert!(is_abort_error(&r.unwrap_err()));
//!     });
//!     controller.abort(None); // the read's result, if any, is dropped
//! })
//! .unwrap();
//! ```
//!
//! With async/await, await the promise forms (a [`Promise`](crate::promise::Promise)
//! is `IntoFuture`): `fs::promises::read_file_with_signal(path,
//! &signal).await` is `Err` with the abort's
//! [`Rejection`](crate::promise::Rejection), whose
//! [`is_aborted`](crate::promise::Rejection::is_aborted) is true.
//!
//! # Errors: kind, OS code and path
//!
//! Every error reaching a callback is an [`io::Error`] whose
//! [`kind()`](io::Error::kind) is the kind of the underlying OS error and
//! whose message names the operation and the path, as Node's does:
//!
//! ```text
//! open '/tmp/nope.txt': No such file or directory (os error 2)
//! ```
//!
//! `std` cannot make an `io::Error` carry both a raw OS code and a custom
//! message, so the error wraps an [`FsError`] (`io::Error::new(kind,
//! FsError)`). As a consequence **`io::Error::raw_os_error()` on the error
//! you receive is `None`**; get the code, path and operation through:
//!
//! * [`raw_os_error(&e)`](raw_os_error): the OS code (`ENOENT` is 2), from
//!   the error itself or from the `FsError` inside;
//! * [`error_path(&e)`](error_path): the path that failed;
//! * [`FsError::of(&e)`](FsError::of): everything (operation, path,
//!   destination of a rename or copy, the original `io::Error` as
//!   [`source()`](std::error::Error::source)).
//!
//! ```
//! use std::io::ErrorKind;
//!
//! evloop::run(|| {
//!     evloop::fs::read_file("/no/such/file", |r| {
//!         let e = r.unwrap_err();
//!         assert_eq!(e.kind(), ErrorKind::NotFound);
//!         assert_eq!(evloop::fs::raw_os_error(&e), Some(2)); // ENOENT
//!         assert_eq!(
//!             evloop::fs::error_path(&e),
//!             Some(std::path::Path::new("/no/such/file"))
//!         );
//!         assert!(e.to_string().contains("/no/such/file"));
//!     });
//! })
//! .unwrap();
//! ```
//!
//! A panic inside `std::fs` (there should be none) reaches the callback as
//! an error of kind `Other`, wrapped the same way.
//!
//! # Panics
//!
//! Every function here panics if no event loop is current on this thread,
//! as [`queue_work`] does. Bad input (an empty path, a directory passed to
//! [`read_file`], a missing file, a huge read length) is an error given to
//! the callback, never a panic.

pub mod promises;
pub(crate) mod stream;
mod watch;
mod watch_file;

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs as sfs;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::abort::AbortSignal;
use crate::pool::queue_work;

pub use std::fs::{FileType, Metadata, OpenOptions, Permissions};
pub use stream::{
    create_read_stream, create_read_stream_with, create_write_stream, create_write_stream_with,
    ReadStream, ReadStreamOptions, WriteStream, WriteStreamOptions, DEFAULT_READ_CHUNK,
    DEFAULT_WRITE_HIGH_WATER_MARK,
};
pub use watch::{watch, FsWatcher, WatchEvent, WatchEventType, WatchEvents, WatchOptions};
pub use watch_file::{
    watch_file, StatChange, StatChanges, StatWatcher, Stats, DEFAULT_WATCH_FILE_INTERVAL,
};

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

pub use crate::error::fs::{error_path, raw_os_error, FsError};

/// What an operation needs to describe its own failure.
#[derive(Clone)]
struct Ctx {
    op: &'static str,
    path: PathBuf,
    dest: Option<PathBuf>,
}

impl Ctx {
    fn new(op: &'static str, path: &Path) -> Ctx {
        Ctx {
            op,
            path: path.to_path_buf(),
            dest: None,
        }
    }

    fn two(op: &'static str, from: &Path, to: &Path) -> Ctx {
        Ctx {
            op,
            path: from.to_path_buf(),
            dest: Some(to.to_path_buf()),
        }
    }

    fn wrap(self, source: io::Error) -> io::Error {
        io::Error::new(
            source.kind(),
            FsError::new(self.op, self.path, self.dest, source),
        )
    }
}

/// The one way an `fs` operation reaches the pool: runs `work` there and
/// `cb` with its result on the loop thread; every error (including a panic
/// in `work`) is wrapped with `ctx`. With a `signal`, the job is bound to it
/// (see [Cancellation](self#cancellation)); the abort error is not wrapped,
/// so it stays recognizable.
fn dispatch<T, W, C>(ctx: Ctx, signal: Option<&AbortSignal>, work: W, cb: C)
where
    T: Send + 'static,
    W: FnOnce() -> io::Result<T> + Send + 'static,
    C: FnOnce(io::Result<T>) + 'static,
{
    log::trace!(
        "fs: {} '{}' dispatched to the pool{}",
        ctx.op,
        ctx.path.display(),
        if signal.is_some() {
            " with a signal"
        } else {
            ""
        }
    );
    let wrap =
        move |r: io::Result<io::Result<T>>| r.and_then(|inner| inner).map_err(|e| ctx.wrap(e));
    match signal {
        None => queue_work(work, move |r| cb(wrap(r))),
        Some(signal) => signal.queue_work_mapped(work, wrap, cb),
    }
}

fn owned(path: impl AsRef<Path>) -> PathBuf {
    path.as_ref().to_path_buf()
}

// ---------------------------------------------------------------------------
// Whole-file and path operations
// ---------------------------------------------------------------------------

/// Defines a path operation and its abortable twin from one body. The
/// body turns the arguments into the operation's error context and its
/// pool job, `(Ctx, work)`; the two public functions differ only in the
/// signal they hand to [`dispatch`].
macro_rules! fs_op {
    ($(
        $(#[$doc:meta])*
        pub fn $name:ident / $with_signal:ident($($arg:ident: $ty:ty),*) -> $t:ty $body:block
    )*) => {$(
        $(#[$doc])*
        ///
        #[doc = concat!("Abortable: [`", stringify!($with_signal), "`].")]
        pub fn $name($($arg: $ty,)* cb: impl FnOnce(io::Result<$t>) + 'static) {
            let (ctx, work) = $body;
            dispatch(ctx, None, work, cb)
        }

        #[doc = concat!(
            "[`", stringify!($name), "`], abortable: if `signal` aborts first, ",
            "the pool job is cancelled if it has not started (its result is ",
            "dropped if it has) and `cb` gets the [`AbortError`](crate::abort::AbortError) ",
            "instead, in a `next_tick`. Already aborted: nothing starts. ",
            "See [Cancellation](self#cancellation)."
        )]
        pub fn $with_signal(
            $($arg: $ty,)*
            signal: &AbortSignal,
            cb: impl FnOnce(io::Result<$t>) + 'static,
        ) {
            let (ctx, work) = $body;
            dispatch(ctx, Some(signal), work, cb)
        }
    )*};
}

fs_op! {
    /// Reads the whole file at `path` (Node's `fs.readFile(path, cb)`).
    ///
    /// A directory gives an error (`EISDIR`), as in Node.
    ///
    /// ```
    /// evloop::run(|| {
    ///     evloop::fs::read_file("Cargo.toml", |r| {
    ///         let bytes = r.expect("read");
    ///         assert!(bytes.starts_with(b"[package]"));
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn read_file / read_file_with_signal(path: impl AsRef<Path>) -> Vec<u8> {
        let path = owned(path);
        (Ctx::new("read", &path), move || sfs::read(&path))
    }

    /// Reads the whole file at `path` as UTF-8 (Node's
    /// `fs.readFile(path, 'utf8', cb)`); invalid UTF-8 is an error of kind
    /// [`InvalidData`](io::ErrorKind::InvalidData) (Node would substitute
    /// U+FFFD instead).
    ///
    /// ```
    /// evloop::run(|| {
    ///     evloop::fs::read_to_string("Cargo.toml", |r| {
    ///         assert!(r.unwrap().contains("name = \"evloop\""));
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn read_to_string / read_to_string_with_signal(path: impl AsRef<Path>) -> String {
        let path = owned(path);
        (Ctx::new("read", &path), move || sfs::read_to_string(&path))
    }

    /// Creates or truncates the file at `path` and writes all of `data` to it
    /// (Node's `fs.writeFile`).
    ///
    /// ```
    /// use evloop::fs;
    ///
    /// let path = std::env::temp_dir().join(format!("evloop-doc-{}.txt", std::process::id()));
    /// evloop::run(move || {
    ///     fs::write_file(path.clone(), "hello", move |r| {
    ///         r.unwrap();
    ///         fs::read_to_string(path.clone(), move |r| {
    ///             assert_eq!(r.unwrap(), "hello");
    ///             fs::remove_file(path, |r| r.unwrap());
    ///         });
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn write_file / write_file_with_signal(
        path: impl AsRef<Path>,
        data: impl Into<Vec<u8>>
    ) -> () {
        let path = owned(path);
        let data = data.into();
        (Ctx::new("write", &path), move || sfs::write(&path, data))
    }

    /// Appends all of `data` to the file at `path`, creating it if needed
    /// (Node's `fs.appendFile`).
    ///
    /// ```
    /// use evloop::fs;
    ///
    /// let path = std::env::temp_dir().join(format!("evloop-doc-{}.log", std::process::id()));
    /// evloop::run(move || {
    ///     fs::append_file(path.clone(), "one\n", move |r| {
    ///         r.unwrap(); // created
    ///         fs::append_file(path.clone(), "two\n", move |r| {
    ///             r.unwrap();
    ///             fs::read_to_string(path.clone(), move |r| {
    ///                 assert_eq!(r.unwrap(), "one\ntwo\n");
    ///                 fs::remove_file(path, |r| r.unwrap());
    ///             });
    ///         });
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn append_file / append_file_with_signal(
        path: impl AsRef<Path>,
        data: impl Into<Vec<u8>>
    ) -> () {
        let path = owned(path);
        let data = data.into();
        (Ctx::new("append", &path), move || {
            use std::io::Write;
            sfs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)?
                .write_all(&data)
        })
    }

    /// Lists the directory at `path` (Node's `fs.readdir` with
    /// `withFileTypes: true`).
    ///
    /// The entries exclude `.` and `..` and come in the order the OS returns
    /// them, which is unspecified (Node does not sort either); sort them by
    /// [`DirEntry::name`] if you need an order.
    ///
    /// ```
    /// evloop::run(|| {
    ///     evloop::fs::read_dir("src", |r| {
    ///         let mut names: Vec<_> = r.unwrap().into_iter().map(|e| e.name().to_owned()).collect();
    ///         names.sort();
    ///         assert!(names.iter().any(|n| n == "lib.rs"));
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn read_dir / read_dir_with_signal(path: impl AsRef<Path>) -> Vec<DirEntry> {
        let path = owned(path);
        (Ctx::new("scandir", &path), move || -> io::Result<Vec<DirEntry>> {
            sfs::read_dir(&path)?
                .map(|entry| {
                    let entry = entry?;
                    Ok(DirEntry {
                        name: entry.file_name(),
                        path: entry.path(),
                        file_type: entry.file_type()?,
                    })
                })
                .collect()
        })
    }

    /// The metadata of `path`, following symlinks (Node's `fs.stat`).
    ///
    /// ```
    /// evloop::run(|| {
    ///     evloop::fs::metadata("Cargo.toml", |r| {
    ///         let meta = r.unwrap();
    ///         assert!(meta.is_file() && meta.len() > 0);
    ///     });
    ///     evloop::fs::metadata("src", |r| assert!(r.unwrap().is_dir()));
    /// })
    /// .unwrap();
    /// ```
    pub fn metadata / metadata_with_signal(path: impl AsRef<Path>) -> Metadata {
        let path = owned(path);
        (Ctx::new("stat", &path), move || sfs::metadata(&path))
    }

    /// The metadata of `path` itself, not following a symlink (Node's
    /// `fs.lstat`).
    ///
    /// ```
    /// use evloop::fs;
    ///
    /// let dir = std::env::temp_dir().join(format!("evloop-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let link = dir.join("link");
    /// std::os::unix::fs::symlink("Cargo.toml", &link).unwrap();
    /// evloop::run(move || {
    ///     fs::symlink_metadata(link, move |r| {
    ///         assert!(r.unwrap().file_type().is_symlink()); // the link, not its target
    ///         fs::remove_dir_all(dir, |r| r.unwrap());
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn symlink_metadata / symlink_metadata_with_signal(path: impl AsRef<Path>) -> Metadata {
        let path = owned(path);
        (Ctx::new("lstat", &path), move || sfs::symlink_metadata(&path))
    }

    /// Creates the directory `path`; its parent must exist and `path` must not
    /// (Node's `fs.mkdir`).
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use evloop::fs;
    ///
    /// let dir = std::env::temp_dir().join(format!("evloop-doc-{}", std::process::id()));
    /// evloop::run(move || {
    ///     fs::create_dir(dir.clone(), move |r| {
    ///         r.unwrap();
    ///         fs::create_dir(dir.clone(), move |r| {
    ///             assert_eq!(r.unwrap_err().kind(), ErrorKind::AlreadyExists);
    ///             fs::remove_dir(dir, |r| r.unwrap());
    ///         });
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn create_dir / create_dir_with_signal(path: impl AsRef<Path>) -> () {
        let path = owned(path);
        (Ctx::new("mkdir", &path), move || sfs::create_dir(&path))
    }

    /// Creates the directory `path` and any missing parents; succeeds if it
    /// already exists as a directory (Node's `fs.mkdir` with `recursive: true`).
    ///
    /// ```
    /// use evloop::fs;
    ///
    /// let top = std::env::temp_dir().join(format!("evloop-doc-{}", std::process::id()));
    /// let deep = top.join("a/b/c");
    /// evloop::run(move || {
    ///     fs::create_dir_all(deep.clone(), move |r| {
    ///         r.unwrap();
    ///         assert!(deep.is_dir());
    ///         fs::remove_dir_all(top, |r| r.unwrap()); // and everything in it
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn create_dir_all / create_dir_all_with_signal(path: impl AsRef<Path>) -> () {
        let path = owned(path);
        (Ctx::new("mkdir", &path), move || sfs::create_dir_all(&path))
    }

    /// Removes the file (or symlink) at `path` (Node's `fs.unlink`).
    ///
    /// ```
    /// use std::io::ErrorKind;
    ///
    /// let path = std::env::temp_dir().join(format!("evloop-doc-{}.tmp", std::process::id()));
    /// std::fs::write(&path, "x").unwrap();
    /// evloop::run(move || {
    ///     evloop::fs::remove_file(path.clone(), move |r| {
    ///         r.unwrap();
    ///         evloop::fs::remove_file(path, |r| {
    ///             assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound); // gone
    ///         });
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn remove_file / remove_file_with_signal(path: impl AsRef<Path>) -> () {
        let path = owned(path);
        (Ctx::new("unlink", &path), move || sfs::remove_file(&path))
    }

    /// Removes the empty directory at `path` (Node's `fs.rmdir`); see
    /// [`create_dir`] for an example.
    pub fn remove_dir / remove_dir_with_signal(path: impl AsRef<Path>) -> () {
        let path = owned(path);
        (Ctx::new("rmdir", &path), move || sfs::remove_dir(&path))
    }

    /// Removes the directory at `path` and everything in it, without following
    /// symlinks (Node's `fs.rm` with `recursive: true`). The whole walk is one
    /// pool job (so an abort while it runs leaves it to finish). See
    /// [`create_dir_all`] for an example.
    pub fn remove_dir_all / remove_dir_all_with_signal(path: impl AsRef<Path>) -> () {
        let path = owned(path);
        (Ctx::new("rm", &path), move || sfs::remove_dir_all(&path))
    }

    /// Renames `from` to `to`, replacing `to` if it is a file (Node's
    /// `fs.rename`). Errors name both paths.
    ///
    /// ```
    /// use evloop::fs;
    ///
    /// let dir = std::env::temp_dir().join(format!("evloop-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let (from, to) = (dir.join("old.txt"), dir.join("new.txt"));
    /// std::fs::write(&from, "moved").unwrap();
    /// evloop::run(move || {
    ///     fs::rename(from.clone(), to.clone(), move |r| {
    ///         r.unwrap();
    ///         assert!(!from.exists());
    ///         assert_eq!(std::fs::read_to_string(&to).unwrap(), "moved");
    ///         fs::remove_dir_all(dir, |r| r.unwrap());
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn rename / rename_with_signal(from: impl AsRef<Path>, to: impl AsRef<Path>) -> () {
        let (from, to) = (owned(from), owned(to));
        (Ctx::two("rename", &from, &to), move || sfs::rename(&from, &to))
    }

    /// Copies the contents and permissions of the file `from` to `to`, creating
    /// or truncating `to`; the callback gets the number of bytes copied (Node's
    /// `fs.copyFile`). Errors name both paths.
    ///
    /// ```
    /// let to = std::env::temp_dir().join(format!("evloop-doc-{}.toml", std::process::id()));
    /// evloop::run(move || {
    ///     evloop::fs::copy_file("Cargo.toml", to.clone(), move |r| {
    ///         let copied = r.unwrap();
    ///         assert_eq!(copied, std::fs::metadata("Cargo.toml").unwrap().len());
    ///         std::fs::remove_file(to).unwrap();
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn copy_file / copy_file_with_signal(from: impl AsRef<Path>, to: impl AsRef<Path>) -> u64 {
        let (from, to) = (owned(from), owned(to));
        (Ctx::two("copyfile", &from, &to), move || sfs::copy(&from, &to))
    }
}

/// One entry of a directory listing from [`read_dir`]: an owned snapshot,
/// so it can travel from the pool thread to the loop thread.
#[derive(Debug, Clone)]
pub struct DirEntry {
    name: OsString,
    path: PathBuf,
    file_type: FileType,
}

impl DirEntry {
    /// The entry's file name, without the directory (Node's `dirent.name`).
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The directory's path joined with [`name`](Self::name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entry's type, not following symlinks (`dirent.isFile()`,
    /// `isDirectory()`, `isSymbolicLink()`).
    pub fn file_type(&self) -> FileType {
        self.file_type
    }
}

/// Whether something exists at `path`, following symlinks (Node's
/// deprecated-but-loved `fs.exists`). Any error, including permission
/// denied on a parent, counts as `false`; use [`metadata`] to tell them
/// apart.
///
/// ```
/// evloop::run(|| {
///     evloop::fs::exists("Cargo.toml", |yes| assert!(yes));
///     evloop::fs::exists("/no/such/file", |yes| assert!(!yes));
/// })
/// .unwrap();
/// ```
///
/// Abortable: [`exists_with_signal`].
pub fn exists(path: impl AsRef<Path>, cb: impl FnOnce(bool) + 'static) {
    let path = owned(path);
    log::trace!("fs: exists '{}' dispatched to the pool", path.display());
    queue_work(
        move || sfs::metadata(&path).is_ok(),
        move |r: io::Result<bool>| cb(r.unwrap_or(false)),
    )
}

/// [`exists`], abortable. Since a `bool` cannot say "aborted", the
/// callback gets an `io::Result<bool>`: `Ok` with the answer, or `Err` with
/// the [`AbortError`](crate::abort::AbortError) if `signal` aborts first
/// (never another error: failures still count as `false`). The pool job is
/// cancelled if it has not started. See [Cancellation](self#cancellation).
pub fn exists_with_signal(
    path: impl AsRef<Path>,
    signal: &AbortSignal,
    cb: impl FnOnce(io::Result<bool>) + 'static,
) {
    let path = owned(path);
    log::trace!("fs: exists '{}' dispatched to the pool", path.display());
    signal.queue_work_mapped(
        move || sfs::metadata(&path).is_ok(),
        |r: io::Result<bool>| Ok(r.unwrap_or(false)),
        cb,
    )
}
// ---------------------------------------------------------------------------
// Open files
// ---------------------------------------------------------------------------

/// The `OpenOptions` for a Node open flag: `r`, `r+`, `rs+`, `w`, `wx`,
/// `w+`, `wx+`, `a`, `ax`, `a+`, `ax+` (`xw`-style spellings too).
fn parse_flags(flags: &str) -> io::Result<sfs::OpenOptions> {
    let mut o = sfs::OpenOptions::new();
    match flags {
        "r" | "rs" | "sr" => o.read(true),
        "r+" | "rs+" | "sr+" => o.read(true).write(true),
        "w" => o.write(true).create(true).truncate(true),
        "wx" | "xw" => o.write(true).create_new(true),
        "w+" => o.read(true).write(true).create(true).truncate(true),
        "wx+" | "xw+" => o.read(true).write(true).create_new(true),
        "a" | "as" | "sa" => o.append(true).create(true),
        "ax" | "xa" => o.append(true).create_new(true),
        "a+" | "as+" | "sa+" => o.read(true).append(true).create(true),
        "ax+" | "xa+" => o.read(true).append(true).create_new(true),
        _ => {
            let msg = format!("unknown open flag {flags:?} (expected r, r+, w, wx, w+, a, ...)");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
    };
    Ok(o)
}

/// The error for an operation on a closed [`File`].
fn closed() -> io::Error {
    io::Error::other("file handle is closed")
}

/// Reads through `FileExt::read_at` from a moving offset, so
/// `Read::take(..).read_to_end` can do positional reads with a buffer that
/// grows with what is actually read (a huge `len` allocates nothing up front).
struct ReadAt<'a> {
    file: &'a sfs::File,
    offset: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset = self.offset.saturating_add(n as u64);
        Ok(n)
    }
}

/// An open file whose operations run on the pool (Node's `FileHandle`, or
/// the fd of `fs.open`).
///
/// The `std::fs::File` lives in an `Arc`, shared with the pool jobs using
/// it; a `File` itself is a cheap handle that stays on the loop thread
/// (`!Send`). Clones share one open file: closing through any clone closes
/// it for all.
///
/// Reads and writes are positional (`pread`/`pwrite`), so concurrent
/// operations never race on a shared cursor. On Linux a file opened for
/// appending (`a`, `a+`) writes at the end whatever the offset (a
/// documented `pwrite` quirk, as in Node).
///
/// After [`close`](Self::close), every operation (including another
/// `close`) gives its callback an error of kind `Other`: "file handle is
/// closed". Operations already in flight finish normally; the descriptor is
/// released when the last of them has. Dropping every clone without closing
/// closes the descriptor on the loop thread (Node warns and does the same
/// when a `FileHandle` is garbage-collected).
///
/// ```
/// use evloop::fs::File;
///
/// let path = std::env::temp_dir().join(format!("evloop-doc-{}.bin", std::process::id()));
/// evloop::run(move || {
///     File::open(path.clone(), "w+", move |r| {
///         let file = r.unwrap();
///         file.clone().write(0, "hello, file", move |r| {
///             assert_eq!(r.unwrap(), 11);
///             file.clone().read(7, 4, move |r| {
///                 assert_eq!(r.unwrap(), b"file");
///                 file.close(move |r| {
///                     r.unwrap();
///                     std::fs::remove_file(path).unwrap();
///                 });
///             });
///         });
///     });
/// })
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct File {
    inner: Rc<FileInner>,
}

struct FileInner {
    path: PathBuf,
    file: RefCell<Option<Arc<sfs::File>>>,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("path", &self.inner.path)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Defines a method of an open [`File`] and its abortable twin from one
/// body: the operation's name (for errors) and its pool job, a closure on
/// the `std::fs::File`.
macro_rules! file_op {
    ($(
        $(#[$doc:meta])*
        pub fn $name:ident / $with_signal:ident($($arg:ident: $ty:ty),*) -> $t:ty {
            $op:literal, $work:expr
        }
    )*) => {$(
        $(#[$doc])*
        ///
        #[doc = concat!("Abortable: [`", stringify!($with_signal), "`](Self::", stringify!($with_signal), ").")]
        pub fn $name(&self, $($arg: $ty,)* cb: impl FnOnce(io::Result<$t>) + 'static) {
            self.with_file($op, None, $work, cb)
        }

        #[doc = concat!(
            "[`", stringify!($name), "`](Self::", stringify!($name), "), abortable: ",
            "if `signal` aborts first, the pool job is cancelled if it has not ",
            "started (its result is dropped if it has: the bytes may have been ",
            "read or written) and `cb` gets the ",
            "[`AbortError`](crate::abort::AbortError) instead, in a `next_tick`. ",
            "Already aborted: nothing starts. The file stays open either way. ",
            "See [Cancellation](self#cancellation)."
        )]
        pub fn $with_signal(
            &self,
            $($arg: $ty,)*
            signal: &AbortSignal,
            cb: impl FnOnce(io::Result<$t>) + 'static,
        ) {
            self.with_file($op, Some(signal), $work, cb)
        }
    )*};
}

impl File {
    /// Opens `path` with a Node open flag (Node's `fs.open(path, flags,
    /// cb)`): `"r"` read, `"r+"` read/write, `"w"` create/truncate,
    /// `"wx"` create new only, `"w+"`, `"wx+"`, `"a"` append/create, `"ax"`,
    /// `"a+"`, `"ax+"`. An unknown flag is an
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) error in the callback.
    /// New files get mode `0o666` minus the umask.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use evloop::fs::File;
    ///
    /// evloop::run(|| {
    ///     File::open("Cargo.toml", "r", |r| {
    ///         let file = r.unwrap();
    ///         file.clone().read(0, 9, move |r| {
    ///             assert_eq!(r.unwrap(), b"[package]");
    ///             file.close(|r| r.unwrap());
    ///         });
    ///     });
    ///     File::open("/no/such/file", "r", |r| {
    ///         assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFound);
    ///     });
    /// })
    /// .unwrap();
    /// ```
    ///
    /// Abortable: [`open_with_signal`](Self::open_with_signal).
    pub fn open(path: impl AsRef<Path>, flags: &str, cb: impl FnOnce(io::Result<File>) + 'static) {
        Self::open_impl(owned(path), parse_flags(flags), None, cb)
    }

    /// [`open`](Self::open), abortable: if `signal` aborts first, the pool
    /// job is cancelled if it has not started, and `cb` gets the
    /// [`AbortError`](crate::abort::AbortError) instead, in a `next_tick`.
    /// If the open already ran, the file it opened is closed (nothing
    /// leaks; a file that `"w"` created or truncated stays so). Already
    /// aborted: nothing starts. See [Cancellation](self#cancellation).
    pub fn open_with_signal(
        path: impl AsRef<Path>,
        flags: &str,
        signal: &AbortSignal,
        cb: impl FnOnce(io::Result<File>) + 'static,
    ) {
        Self::open_impl(owned(path), parse_flags(flags), Some(signal), cb)
    }

    /// Opens `path` with explicit [`OpenOptions`], for what the flag strings
    /// do not cover (e.g. `std::os::unix::fs::OpenOptionsExt::mode`).
    ///
    /// ```
    /// use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    ///
    /// let path = std::env::temp_dir().join(format!("evloop-doc-{}.key", std::process::id()));
    /// let mut options = std::fs::OpenOptions::new();
    /// options.write(true).create_new(true).mode(0o600);
    /// evloop::run(move || {
    ///     evloop::fs::File::open_with(path.clone(), &options, move |r| {
    ///         let file = r.unwrap();
    ///         file.metadata(move |r| {
    ///             assert_eq!(r.unwrap().permissions().mode() & 0o777, 0o600);
    ///             std::fs::remove_file(path).unwrap();
    ///         });
    ///     });
    /// })
    /// .unwrap();
    /// ```
    ///
    /// Abortable: [`open_with_with_signal`](Self::open_with_with_signal).
    pub fn open_with(
        path: impl AsRef<Path>,
        options: &OpenOptions,
        cb: impl FnOnce(io::Result<File>) + 'static,
    ) {
        Self::open_impl(owned(path), Ok(options.clone()), None, cb)
    }

    /// [`open_with`](Self::open_with), abortable, as
    /// [`open_with_signal`](Self::open_with_signal) is.
    pub fn open_with_with_signal(
        path: impl AsRef<Path>,
        options: &OpenOptions,
        signal: &AbortSignal,
        cb: impl FnOnce(io::Result<File>) + 'static,
    ) {
        Self::open_impl(owned(path), Ok(options.clone()), Some(signal), cb)
    }

    fn open_impl(
        path: PathBuf,
        options: io::Result<sfs::OpenOptions>,
        signal: Option<&AbortSignal>,
        cb: impl FnOnce(io::Result<File>) + 'static,
    ) {
        let ctx = Ctx::new("open", &path);
        let options = crate::fault::check(crate::fault::Op::Open).and(options);
        let p = path.clone();
        // An open whose result is dropped after an abort drops the
        // `std::fs::File` with it: the descriptor is closed.
        dispatch(
            ctx,
            signal,
            move || options?.open(&p),
            move |r: io::Result<sfs::File>| {
                cb(r.map(|f| File {
                    inner: Rc::new(FileInner {
                        path,
                        file: RefCell::new(Some(Arc::new(f))),
                    }),
                }))
            },
        )
    }

    /// The path this file was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether [`close`](Self::close) has been called (on any clone).
    pub fn is_closed(&self) -> bool {
        self.inner.file.borrow().is_none()
    }

    /// Runs `work` on the open file in the pool, or fails with "closed".
    fn with_file<T, W, C>(&self, op: &'static str, signal: Option<&AbortSignal>, work: W, cb: C)
    where
        T: Send + 'static,
        W: FnOnce(&sfs::File) -> io::Result<T> + Send + 'static,
        C: FnOnce(io::Result<T>) + 'static,
    {
        let ctx = Ctx::new(op, &self.inner.path);
        let file = self.inner.file.borrow().clone();
        dispatch(
            ctx,
            signal,
            move || match file {
                Some(f) => work(&f),
                None => Err(closed()),
            },
            cb,
        )
    }
}

impl File {
    file_op! {
        /// Reads up to `len` bytes starting at byte `offset` (Node's
        /// `fs.read(fd, { position })`), without moving any cursor. The bytes
        /// come back fewer than `len` only at end of file (empty at or past it).
        ///
        /// ```
        /// evloop::run(|| {
        ///     evloop::fs::File::open("Cargo.toml", "r", |r| {
        ///         let file = r.unwrap();
        ///         file.read(1, 7, |r| assert_eq!(r.unwrap(), b"package"));
        ///         file.read(1 << 40, 10, |r| assert!(r.unwrap().is_empty())); // past the end
        ///     });
        /// })
        /// .unwrap();
        /// ```
        pub fn read / read_with_signal(offset: u64, len: usize) -> Vec<u8> {
            "read",
            move |f: &sfs::File| {
                let mut buf = Vec::new();
                ReadAt { file: f, offset }
                    .take(len as u64)
                    .read_to_end(&mut buf)?;
                Ok(buf)
            }
        }

        /// Writes all of `data` at byte `offset` (Node's `fs.write(fd, buffer,
        /// 0, length, position)`); the callback gets the number of bytes
        /// written, always `data.len()` on success.
        ///
        /// ```
        /// let path = std::env::temp_dir().join(format!("evloop-doc-{}.dat", std::process::id()));
        /// evloop::run(move || {
        ///     evloop::fs::File::open(path.clone(), "w", move |r| {
        ///         let file = r.unwrap();
        ///         file.write(4, "tail", |r| assert_eq!(r.unwrap(), 4));
        ///         file.write(0, "head", move |r| {
        ///             assert_eq!(r.unwrap(), 4);
        ///             assert_eq!(std::fs::read(&path).unwrap(), b"headtail");
        ///             std::fs::remove_file(path).unwrap();
        ///         });
        ///     });
        /// })
        /// .unwrap();
        /// ```
        pub fn write / write_with_signal(offset: u64, data: impl Into<Vec<u8>>) -> usize {
            "write",
            {
                let data = data.into();
                move |f: &sfs::File| {
                    f.write_all_at(&data, offset)?;
                    Ok(data.len())
                }
            }
        }

        /// Flushes the file's data and metadata to the device (Node's
        /// `fs.fsync`).
        pub fn sync / sync_with_signal() -> () {
            "fsync", |f: &sfs::File| f.sync_all()
        }

        /// Flushes the file's data, and only the metadata needed to read it back
        /// (Node's `fs.fdatasync`).
        pub fn sync_data / sync_data_with_signal() -> () {
            "fdatasync", |f: &sfs::File| f.sync_data()
        }

        /// Truncates or extends the file to `len` bytes (Node's `fs.ftruncate`).
        pub fn set_len / set_len_with_signal(len: u64) -> () {
            "ftruncate", move |f: &sfs::File| f.set_len(len)
        }

        /// The open file's metadata (Node's `fs.fstat`).
        pub fn metadata / metadata_with_signal() -> Metadata {
            "fstat", |f: &sfs::File| f.metadata()
        }
    }

    /// Closes the file (Node's `fs.close`). The handle is closed at once for
    /// every clone, so later operations fail; the descriptor itself is
    /// released on the pool once operations already in flight finish.
    /// Closing twice gives the second callback the "closed" error.
    ///
    /// `std` does not report errors from `close(2)`; call [`sync`](Self::sync)
    /// first if you need to know the data reached the disk.
    ///
    /// There is no `close_with_signal`: the handle is closed when this is
    /// called, and aborting could not reopen it.
    ///
    /// ```
    /// evloop::run(|| {
    ///     evloop::fs::File::open("Cargo.toml", "r", |r| {
    ///         let file = r.unwrap();
    ///         file.close(|r| r.unwrap());
    ///         assert!(file.is_closed()); // at once, for every clone
    ///         file.read(0, 1, |r| assert!(r.unwrap_err().to_string().contains("closed")));
    ///     });
    /// })
    /// .unwrap();
    /// ```
    pub fn close(&self, cb: impl FnOnce(io::Result<()>) + 'static) {
        let ctx = Ctx::new("close", &self.inner.path);
        let file = self.inner.file.borrow_mut().take();
        dispatch(
            ctx,
            None,
            move || match file {
                // Dropping the last `Arc` closes the fd, here on the pool.
                Some(f) => {
                    drop(f);
                    Ok(())
                }
                None => Err(closed()),
            },
            cb,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_errors_keep_kind_code_and_path() {
        let e = Ctx::two("rename", Path::new("/a"), Path::new("/b"))
            .wrap(io::Error::from_raw_os_error(2));
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(e.raw_os_error(), None, "std cannot keep both; see docs");
        assert_eq!(raw_os_error(&e), Some(2));
        assert_eq!(error_path(&e), Some(Path::new("/a")));
        let fe = FsError::of(&e).unwrap();
        assert_eq!(fe.op(), "rename");
        assert_eq!(fe.dest(), Some(Path::new("/b")));
        assert!(e.to_string().starts_with("rename '/a' -> '/b': "), "{e}");
        assert!(std::error::Error::source(fe).is_some());
    }

    #[test]
    fn plain_errors_pass_through_the_helpers() {
        let e = io::Error::from_raw_os_error(13);
        assert_eq!(raw_os_error(&e), Some(13));
        assert_eq!(error_path(&e), None);
        assert!(FsError::of(&io::Error::other("x")).is_none());
    }

    #[test]
    fn node_flags() {
        for f in [
            "r", "r+", "rs+", "w", "wx", "w+", "wx+", "a", "ax", "a+", "ax+",
        ] {
            assert!(parse_flags(f).is_ok(), "{f}");
        }
        let e = parse_flags("rw").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }
}
