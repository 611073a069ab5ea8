//! One-way pipes as streams: standard input and output, and a child
//! process's piped stdio.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

/// The read end of a pipe (or a terminal), non-blocking while we hold it.
pub(crate) struct PipeReader {
    pub(crate) rx: mio::unix::pipe::Receiver,
    pub(crate) kind: &'static str,
    /// Put the fd back in blocking mode on close: for fds shared with
    /// other processes (our own stdin), not for pipes we created.
    pub(crate) restore_blocking: bool,
}

impl AsRawFd for PipeReader {
    fn as_raw_fd(&self) -> RawFd {
        self.rx.as_raw_fd()
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        if self.restore_blocking {
            let _ = self.rx.set_nonblocking(false);
        }
    }
}

impl super::StreamIo for PipeReader {
    fn read_some(&self, buf: &mut [u8]) -> io::Result<usize> {
        crate::fault::read(self, buf, |buf| (&self.rx).read(buf))
    }
    fn write_some(&self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{} is not writable", self.kind),
        ))
    }
    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn has_write_side(&self) -> bool {
        false
    }
    /// A terminal in canonical mode returns one line per read, however
    /// many are waiting: a short read does not mean it is drained.
    fn short_read_drains(&self) -> bool {
        use std::io::IsTerminal;
        use std::os::fd::AsFd;
        !self.rx.as_fd().is_terminal() && crate::fault::short_read_drains()
    }
}

/// The write end of a pipe (or a socket used as one), non-blocking while
/// we hold it.
pub(crate) struct PipeWriter {
    pub(crate) tx: mio::unix::pipe::Sender,
    pub(crate) kind: &'static str,
    /// As for [`PipeReader`].
    pub(crate) restore_blocking: bool,
}

impl AsRawFd for PipeWriter {
    fn as_raw_fd(&self) -> RawFd {
        self.tx.as_raw_fd()
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        if self.restore_blocking {
            let _ = self.tx.set_nonblocking(false);
        }
    }
}

impl super::StreamIo for PipeWriter {
    fn read_some(&self, _: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
    fn write_some(&self, buf: &[u8]) -> io::Result<usize> {
        crate::fault::write(self, buf, |buf| (&self.tx).write(buf))
    }
    /// A pipe cannot half-close; its end closes when the stream does.
    fn shutdown_write(&self) -> io::Result<()> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn has_read_side(&self) -> bool {
        false
    }
}
