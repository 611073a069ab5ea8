//! The promise forms of every operation in [`fs`](super) (Node's
//! `fs/promises`). Each runs the callback form and settles with its result,
//! so a failure carries the same `io::Error` (kind, OS code and path)
//! inside the [`Rejection`](crate::promise::Rejection).
//!
//! Each has a `_with_signal` variant taking an
//! [`AbortSignal`] as its last argument (Node's `{ signal }`
//! option): it rejects with the [`AbortError`](crate::abort::AbortError)
//! ([`Rejection::is_aborted`](crate::promise::Rejection::is_aborted)) if the
//! signal aborts first; what the abort stops is described in
//! [Cancellation](super#cancellation). In async code, await them (a
//! promise is `IntoFuture`): there are no separate `fs` futures.
//!
//! ```
//! use evloop::abort::AbortSignal;
//! use std::time::Duration;
//!
//! let r = evloop::block_on(async {
//!     let signal = AbortSignal::timeout(Duration::from_secs(5));
//!     evloop::fs::promises::read_to_string_with_signal("Cargo.toml", &signal).await
//! });
//! assert!(r.unwrap().unwrap().contains("[package]"));
//! let r = evloop::block_on(async {
//!     let signal = AbortSignal::abort(None);
//!     evloop::fs::promises::read_to_string_with_signal("Cargo.toml", &signal).await
//! });
//! assert!(r.unwrap().unwrap_err().is_aborted());
//! ```
//!
//! ```
//! use evloop::fs::promises as fs;
//!
//! let event_loop = evloop::EventLoop::new()?;
//! let _current = event_loop.enter();
//! let dir = std::env::temp_dir().join(format!("evloop-doc-{}", std::process::id()));
//! let file = dir.join("hello.txt");
//! let (f1, f2) = (file.clone(), file.clone());
//! let text = fs::create_dir_all(&dir)
//!     .and_then(move |()| fs::write_file(f1, "hello"))
//!     .and_then(move |()| fs::read_to_string(f2))
//!     .finally_with(move || fs::remove_dir_all(dir));
//! event_loop.run()?;
//! assert_eq!(text.peek().unwrap().unwrap(), "hello");
//! # Ok::<(), evloop::Error>(())
//! ```

use std::fs::{Metadata, OpenOptions};
use std::path::Path;

use super::{DirEntry, File};
use crate::abort::AbortSignal;
use crate::promise::{promisify, Promise};

/// Defines a promise operation and its abortable twin: each runs the
/// callback operation of the same name in [`fs`](super).
macro_rules! promise_op {
    ($(
        $(#[$doc:meta])*
        pub fn $name:ident / $with_signal:ident($($arg:ident: $ty:ty),*) -> $t:ty;
    )*) => {$(
        $(#[$doc])*
        ///
        #[doc = concat!("Abortable: [`", stringify!($with_signal), "`].")]
        pub fn $name($($arg: $ty),*) -> Promise<$t> {
            promisify(|done| super::$name($($arg,)* done))
        }

        #[doc = concat!(
            "[`", stringify!($name), "`], abortable: if `signal` aborts first, the ",
            "pool job is cancelled if it has not started (its result is dropped if it ",
            "has) and the promise rejects with the ",
            "[`AbortError`](crate::abort::AbortError) ",
            "([`Rejection::is_aborted`](crate::promise::Rejection::is_aborted)). ",
            "Already aborted: nothing starts. Awaitable, as every promise. See ",
            "[`fs::", stringify!($with_signal), "`](super::", stringify!($with_signal), ")."
        )]
        pub fn $with_signal($($arg: $ty,)* signal: &AbortSignal) -> Promise<$t> {
            promisify(|done| super::$with_signal($($arg,)* signal, done))
        }
    )*};
}

promise_op! {
    /// [`fs::read_file`](super::read_file) as a promise.
    ///
    /// ```
    /// // Awaited in a task...
    /// let bytes = evloop::block_on(async { evloop::fs::promises::read_file("Cargo.toml").await })?;
    /// assert!(bytes.unwrap().starts_with(b"[package]"));
    ///
    /// // ...or chained on the loop.
    /// evloop::run(|| {
    ///     evloop::fs::promises::read_file("/no/such/file")
    ///         .then(|_| unreachable!())
    ///         .catch(|e| assert_eq!(e.io_error().unwrap().kind(), std::io::ErrorKind::NotFound));
    /// })?;
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn read_file / read_file_with_signal(path: impl AsRef<Path>) -> Vec<u8>;

    /// [`fs::read_to_string`](super::read_to_string) as a promise.
    ///
    /// ```
    /// let text = evloop::block_on(async {
    ///     evloop::fs::promises::read_to_string("Cargo.toml").await
    /// })?;
    /// assert!(text.unwrap().contains("name = \"evloop\""));
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn read_to_string / read_to_string_with_signal(path: impl AsRef<Path>) -> String;

    /// [`fs::write_file`](super::write_file) as a promise.
    ///
    /// ```
    /// use evloop::fs::promises as fs;
    ///
    /// let path = std::env::temp_dir().join(format!("evloop-doc-{}.txt", std::process::id()));
    /// let text = evloop::block_on(async move {
    ///     fs::write_file(&path, "one ").await?;
    ///     fs::append_file(&path, "two").await?;
    ///     let text = fs::read_to_string(&path).await?;
    ///     fs::remove_file(&path).await?;
    ///     Ok::<_, evloop::promise::Rejection>(text)
    /// })?;
    /// assert_eq!(text.unwrap(), "one two");
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn write_file / write_file_with_signal(path: impl AsRef<Path>, data: impl Into<Vec<u8>>) -> ();

    /// [`fs::append_file`](super::append_file) as a promise.
    pub fn append_file / append_file_with_signal(path: impl AsRef<Path>, data: impl Into<Vec<u8>>) -> ();

    /// [`fs::read_dir`](super::read_dir) as a promise.
    ///
    /// ```
    /// let entries = evloop::block_on(async { evloop::fs::promises::read_dir("src").await })?;
    /// assert!(entries.unwrap().iter().any(|e| e.name() == "lib.rs"));
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn read_dir / read_dir_with_signal(path: impl AsRef<Path>) -> Vec<DirEntry>;

    /// [`fs::metadata`](super::metadata) as a promise (Node's `fsPromises.stat`).
    ///
    /// ```
    /// let meta = evloop::block_on(async { evloop::fs::promises::metadata("src").await })?;
    /// assert!(meta.unwrap().is_dir());
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn metadata / metadata_with_signal(path: impl AsRef<Path>) -> Metadata;

    /// [`fs::symlink_metadata`](super::symlink_metadata) as a promise (Node's
    /// `fsPromises.lstat`).
    pub fn symlink_metadata / symlink_metadata_with_signal(path: impl AsRef<Path>) -> Metadata;

    /// [`fs::create_dir`](super::create_dir) as a promise.
    pub fn create_dir / create_dir_with_signal(path: impl AsRef<Path>) -> ();

    /// [`fs::create_dir_all`](super::create_dir_all) as a promise.
    ///
    /// ```
    /// use evloop::fs::promises as fs;
    ///
    /// let top = std::env::temp_dir().join(format!("evloop-doc-{}", std::process::id()));
    /// let r = evloop::block_on(async move {
    ///     fs::create_dir_all(top.join("a/b")).await?;
    ///     fs::rename(top.join("a/b"), top.join("c")).await?;
    ///     let names: Vec<_> = fs::read_dir(&top).await?.iter().map(|e| e.name().to_owned()).collect();
    ///     fs::remove_dir_all(&top).await?;
    ///     Ok::<_, evloop::promise::Rejection>(names.len())
    /// })?;
    /// assert_eq!(r.unwrap(), 2); // a and c
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn create_dir_all / create_dir_all_with_signal(path: impl AsRef<Path>) -> ();

    /// [`fs::remove_file`](super::remove_file) as a promise (Node's `unlink`).
    pub fn remove_file / remove_file_with_signal(path: impl AsRef<Path>) -> ();

    /// [`fs::remove_dir`](super::remove_dir) as a promise.
    pub fn remove_dir / remove_dir_with_signal(path: impl AsRef<Path>) -> ();

    /// [`fs::remove_dir_all`](super::remove_dir_all) as a promise.
    pub fn remove_dir_all / remove_dir_all_with_signal(path: impl AsRef<Path>) -> ();

    /// [`fs::rename`](super::rename) as a promise.
    pub fn rename / rename_with_signal(from: impl AsRef<Path>, to: impl AsRef<Path>) -> ();

    /// [`fs::copy_file`](super::copy_file) as a promise (of the bytes copied).
    ///
    /// ```
    /// use evloop::fs::promises as fs;
    ///
    /// let to = std::env::temp_dir().join(format!("evloop-doc-{}.toml", std::process::id()));
    /// let copied = evloop::block_on(async move {
    ///     let n = fs::copy_file("Cargo.toml", &to).await?;
    ///     fs::remove_file(&to).await?;
    ///     Ok::<_, evloop::promise::Rejection>(n)
    /// })?;
    /// assert_eq!(copied.unwrap(), std::fs::metadata("Cargo.toml").unwrap().len());
    /// # Ok::<(), evloop::Error>(())
    /// ```
    pub fn copy_file / copy_file_with_signal(from: impl AsRef<Path>, to: impl AsRef<Path>) -> u64;
}

/// [`fs::exists`](super::exists) as a promise (it never rejects).
///
/// ```
/// let found = evloop::block_on(async { evloop::fs::promises::exists("Cargo.toml").await })?;
/// assert_eq!(found.ok(), Some(true));
/// # Ok::<(), evloop::Error>(())
/// ```
///
/// Abortable: [`exists_with_signal`].
pub fn exists(path: impl AsRef<Path>) -> Promise<bool> {
    promisify(|done| super::exists(path, move |b| done(Ok::<_, std::io::Error>(b))))
}

/// [`exists`], abortable: it rejects only with the
/// [`AbortError`](crate::abort::AbortError), if `signal` aborts first. See
/// [`fs::exists_with_signal`](super::exists_with_signal).
pub fn exists_with_signal(path: impl AsRef<Path>, signal: &AbortSignal) -> Promise<bool> {
    promisify(|done| super::exists_with_signal(path, signal, done))
}

/// [`File::open`] as a promise (Node's `fsPromises.open`); the
/// [`File`]'s methods have promise forms too (`read_promise`,
/// `write_promise`, `close_promise`, ...).
///
/// ```
/// let head = evloop::block_on(async {
///     let file = evloop::fs::promises::open("Cargo.toml", "r").await?;
///     let head = file.read_promise(0, 9).await?;
///     file.close_promise().await?;
///     Ok::<_, evloop::promise::Rejection>(head)
/// })?;
/// assert_eq!(head.unwrap(), b"[package]");
/// # Ok::<(), evloop::Error>(())
/// ```
///
/// Abortable: [`open_with_signal`].
pub fn open(path: impl AsRef<Path>, flags: &str) -> Promise<File> {
    promisify(|done| File::open(path, flags, done))
}

/// [`open`], abortable: the promise rejects with the
/// [`AbortError`](crate::abort::AbortError) if `signal` aborts first (a
/// file opened meanwhile is closed). See [`File::open_with_signal`].
pub fn open_with_signal(
    path: impl AsRef<Path>,
    flags: &str,
    signal: &AbortSignal,
) -> Promise<File> {
    promisify(|done| File::open_with_signal(path, flags, signal, done))
}

/// [`File::open_with`] as a promise.
///
/// Abortable: [`open_with_with_signal`].
pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Promise<File> {
    promisify(|done| File::open_with(path, options, done))
}

/// [`open_with`], abortable, as [`open_with_signal`] is.
pub fn open_with_with_signal(
    path: impl AsRef<Path>,
    options: &OpenOptions,
    signal: &AbortSignal,
) -> Promise<File> {
    promisify(|done| File::open_with_with_signal(path, options, signal, done))
}

/// Defines the promise form of a [`File`] method and its abortable twin.
macro_rules! file_promise_op {
    ($(
        $(#[$doc:meta])*
        pub fn $name:ident / $with_signal:ident($($arg:ident: $ty:ty),*) -> $t:ty
            = $op:ident / $op_with_signal:ident;
    )*) => {$(
        $(#[$doc])*
        ///
        #[doc = concat!("Abortable: [`", stringify!($with_signal), "`](File::", stringify!($with_signal), ").")]
        pub fn $name(&self, $($arg: $ty),*) -> Promise<$t> {
            promisify(|done| self.$op($($arg,)* done))
        }

        #[doc = concat!(
            "[`", stringify!($name), "`](File::", stringify!($name), "), abortable: ",
            "the promise rejects with the [`AbortError`](crate::abort::AbortError) ",
            "if `signal` aborts first. See [`File::", stringify!($op_with_signal),
            "`](File::", stringify!($op_with_signal), ")."
        )]
        pub fn $with_signal(&self, $($arg: $ty,)* signal: &AbortSignal) -> Promise<$t> {
            promisify(|done| self.$op_with_signal($($arg,)* signal, done))
        }
    )*};
}

/// The promise forms of an open [`File`]'s operations (Node's
/// `FileHandle`).
impl File {
    file_promise_op! {
        /// [`File::read`] as a promise.
        pub fn read_promise / read_promise_with_signal(offset: u64, len: usize) -> Vec<u8>
            = read / read_with_signal;

        /// [`File::write`] as a promise (of the bytes written).
        pub fn write_promise / write_promise_with_signal(offset: u64, data: impl Into<Vec<u8>>) -> usize
            = write / write_with_signal;

        /// [`File::sync`] as a promise.
        pub fn sync_promise / sync_promise_with_signal() -> () = sync / sync_with_signal;

        /// [`File::sync_data`] as a promise.
        pub fn sync_data_promise / sync_data_promise_with_signal() -> ()
            = sync_data / sync_data_with_signal;

        /// [`File::set_len`] as a promise.
        pub fn set_len_promise / set_len_promise_with_signal(len: u64) -> ()
            = set_len / set_len_with_signal;

        /// [`File::metadata`] as a promise.
        pub fn metadata_promise / metadata_promise_with_signal() -> Metadata
            = metadata / metadata_with_signal;
    }

    /// [`File::close`] as a promise. (No abortable form: see
    /// [`File::close`].)
    pub fn close_promise(&self) -> Promise<()> {
        promisify(|done| self.close(done))
    }
}
