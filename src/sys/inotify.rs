//! inotify (Linux): the three calls `fs::watch` needs. Reading the events
//! is a plain `read` on the fd (done safely through `std::fs::File`), and
//! parsing them is safe byte slicing; only these calls are foreign.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(crate) use libc::{
    IN_ATTRIB, IN_CREATE, IN_DELETE, IN_DELETE_SELF, IN_IGNORED, IN_ISDIR, IN_MODIFY,
    IN_MOVED_FROM, IN_MOVED_TO, IN_MOVE_SELF, IN_Q_OVERFLOW,
};

/// A new inotify instance, non-blocking and close-on-exec.
pub(crate) fn init() -> io::Result<OwnedFd> {
    // SAFETY: inotify_init1 takes only flags and returns a new fd or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Watches `path` for `mask`; returns the watch descriptor (the same one
/// for every watch of the same inode on this instance).
pub(crate) fn add_watch(fd: BorrowedFd<'_>, path: &Path, mask: u32) -> io::Result<i32> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `fd` is a live inotify fd (borrowed for the call) and `c` a
    // NUL-terminated string that outlives the call.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
    if wd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(wd)
}

/// Stops watch descriptor `wd`; an error (the kernel already dropped it,
/// as after the file's deletion) is ignored.
pub(crate) fn rm_watch(fd: BorrowedFd<'_>, wd: i32) {
    // SAFETY: `fd` is a live inotify fd; a stale `wd` only makes the call
    // fail with EINVAL.
    let _ = unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), wd) };
}
