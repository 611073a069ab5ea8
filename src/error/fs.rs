//! The error of a file operation: [`FsError`], and the helpers that read
//! the OS code and path out of the `io::Error` that carries it.
//!
//! It lives on the ground floor, beside [`Error`](crate::Error) and
//! [`Rejection`](crate::promise::Rejection), because a rejection reads the
//! OS code of an fs error too; [`crate::fs`] re-exports everything here.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// What failed in a file operation: the operation, its path(s) and the
/// original OS error.
///
/// Callbacks receive it inside an [`io::Error`] of the same
/// [`kind`](io::Error::kind); see [the `fs` module docs](crate::fs#errors-kind-os-code-and-path).
/// Its [`Display`](fmt::Display) is `"{op} '{path}': {source}"` (or
/// `"{op} '{path}' -> '{dest}': {source}"` for two-path operations).
#[derive(Debug)]
pub struct FsError {
    op: &'static str,
    path: PathBuf,
    dest: Option<PathBuf>,
    source: io::Error,
}

impl FsError {
    /// `op` on `path` (and `dest`, for a rename or copy) failed with `source`.
    pub(crate) fn new(
        op: &'static str,
        path: PathBuf,
        dest: Option<PathBuf>,
        source: io::Error,
    ) -> FsError {
        FsError {
            op,
            path,
            dest,
            source,
        }
    }

    /// The `FsError` inside an error received from this module, if any.
    pub fn of(e: &io::Error) -> Option<&FsError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<FsError>())
    }

    /// The operation that failed, e.g. `"open"`, `"read"`, `"rename"`.
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// The path the operation was given (the source of a rename or copy).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The destination of a [`rename`](crate::fs::rename) or
    /// [`copy_file`](crate::fs::copy_file); `None` otherwise.
    pub fn dest(&self) -> Option<&Path> {
        self.dest.as_deref()
    }

    /// The OS error code (`errno`), if the failure came from the OS.
    pub fn os_error(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// The kind of the original error (the outer `io::Error` has the same).
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The original error, as `std::fs` returned it.
    pub fn io_error(&self) -> &io::Error {
        &self.source
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} '{}'", self.op, self.path.display())?;
        if let Some(dest) = &self.dest {
            write!(f, " -> '{}'", dest.display())?;
        }
        write!(f, ": {}", self.source)
    }
}

impl std::error::Error for FsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The OS error code of an error from this module: the error's own
/// [`raw_os_error`](io::Error::raw_os_error) if it has one, else that of the
/// [`FsError`] inside it.
pub fn raw_os_error(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
        .or_else(|| FsError::of(e).and_then(FsError::os_error))
}

/// The path named by an error from this module (the source path of a
/// rename or copy), or `None` for an error that did not come from here.
pub fn error_path(e: &io::Error) -> Option<&Path> {
    FsError::of(e).map(FsError::path)
}
