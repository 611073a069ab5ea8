//! The promise forms of every operation in [`fs`](super) (Node's
//! `fs/promises`). Each runs the callback form and settles with its result,
//! so a failure carries the same `io::Error` (kind, OS code and path)
//! inside the [`Rejection`](crate::promise::Rejection).
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
use crate::promise::{promisify, Promise};

/// [`fs::read_file`](super::read_file) as a promise.
pub fn read_file(path: impl AsRef<Path>) -> Promise<Vec<u8>> {
    promisify(|done| super::read_file(path, done))
}

/// [`fs::read_to_string`](super::read_to_string) as a promise.
pub fn read_to_string(path: impl AsRef<Path>) -> Promise<String> {
    promisify(|done| super::read_to_string(path, done))
}

/// [`fs::write_file`](super::write_file) as a promise.
pub fn write_file(path: impl AsRef<Path>, data: impl Into<Vec<u8>>) -> Promise<()> {
    promisify(|done| super::write_file(path, data, done))
}

/// [`fs::append_file`](super::append_file) as a promise.
pub fn append_file(path: impl AsRef<Path>, data: impl Into<Vec<u8>>) -> Promise<()> {
    promisify(|done| super::append_file(path, data, done))
}

/// [`fs::read_dir`](super::read_dir) as a promise.
pub fn read_dir(path: impl AsRef<Path>) -> Promise<Vec<DirEntry>> {
    promisify(|done| super::read_dir(path, done))
}

/// [`fs::metadata`](super::metadata) as a promise (Node's `fsPromises.stat`).
pub fn metadata(path: impl AsRef<Path>) -> Promise<Metadata> {
    promisify(|done| super::metadata(path, done))
}

/// [`fs::symlink_metadata`](super::symlink_metadata) as a promise (Node's
/// `fsPromises.lstat`).
pub fn symlink_metadata(path: impl AsRef<Path>) -> Promise<Metadata> {
    promisify(|done| super::symlink_metadata(path, done))
}

/// [`fs::create_dir`](super::create_dir) as a promise.
pub fn create_dir(path: impl AsRef<Path>) -> Promise<()> {
    promisify(|done| super::create_dir(path, done))
}

/// [`fs::create_dir_all`](super::create_dir_all) as a promise.
pub fn create_dir_all(path: impl AsRef<Path>) -> Promise<()> {
    promisify(|done| super::create_dir_all(path, done))
}

/// [`fs::remove_file`](super::remove_file) as a promise (Node's `unlink`).
pub fn remove_file(path: impl AsRef<Path>) -> Promise<()> {
    promisify(|done| super::remove_file(path, done))
}

/// [`fs::remove_dir`](super::remove_dir) as a promise.
pub fn remove_dir(path: impl AsRef<Path>) -> Promise<()> {
    promisify(|done| super::remove_dir(path, done))
}

/// [`fs::remove_dir_all`](super::remove_dir_all) as a promise.
pub fn remove_dir_all(path: impl AsRef<Path>) -> Promise<()> {
    promisify(|done| super::remove_dir_all(path, done))
}

/// [`fs::rename`](super::rename) as a promise.
pub fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Promise<()> {
    promisify(|done| super::rename(from, to, done))
}

/// [`fs::copy_file`](super::copy_file) as a promise (of the bytes copied).
pub fn copy_file(from: impl AsRef<Path>, to: impl AsRef<Path>) -> Promise<u64> {
    promisify(|done| super::copy_file(from, to, done))
}

/// [`fs::exists`](super::exists) as a promise (it never rejects).
pub fn exists(path: impl AsRef<Path>) -> Promise<bool> {
    promisify(|done| super::exists(path, move |b| done(Ok::<_, std::io::Error>(b))))
}

/// [`File::open`] as a promise (Node's `fsPromises.open`).
pub fn open(path: impl AsRef<Path>, flags: &str) -> Promise<File> {
    promisify(|done| File::open(path, flags, done))
}

/// [`File::open_with`] as a promise.
pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Promise<File> {
    promisify(|done| File::open_with(path, options, done))
}

/// The promise forms of an open [`File`]'s operations (Node's
/// `FileHandle`).
impl File {
    /// [`File::read`] as a promise.
    pub fn read_promise(&self, offset: u64, len: usize) -> Promise<Vec<u8>> {
        promisify(|done| self.read(offset, len, done))
    }

    /// [`File::write`] as a promise (of the bytes written).
    pub fn write_promise(&self, offset: u64, data: impl Into<Vec<u8>>) -> Promise<usize> {
        promisify(|done| self.write(offset, data, done))
    }

    /// [`File::sync`] as a promise.
    pub fn sync_promise(&self) -> Promise<()> {
        promisify(|done| self.sync(done))
    }

    /// [`File::sync_data`] as a promise.
    pub fn sync_data_promise(&self) -> Promise<()> {
        promisify(|done| self.sync_data(done))
    }

    /// [`File::set_len`] as a promise.
    pub fn set_len_promise(&self, len: u64) -> Promise<()> {
        promisify(|done| self.set_len(len, done))
    }

    /// [`File::metadata`] as a promise.
    pub fn metadata_promise(&self) -> Promise<Metadata> {
        promisify(|done| self.metadata(done))
    }

    /// [`File::close`] as a promise.
    pub fn close_promise(&self) -> Promise<()> {
        promisify(|done| self.close(done))
    }
}
