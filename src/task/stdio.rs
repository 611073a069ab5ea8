//! Async standard input and output, over the callback layer's
//! [`stdio`](crate::stdio) streams (which already handle pipes, terminals
//! and regular files, each the way it must be).
//!
//! ```no_run
//! evloop::block_on(async {
//!     let (mut input, mut output) = (evloop::task::stdin()?, evloop::task::stdout()?);
//!     let mut buf = [0u8; 64 * 1024];
//!     loop {
//!         let n = input.read(&mut buf).await?;
//!         if n == 0 {
//!             return output.end();
//!         }
//!         output.write_all(&buf[..n]).await?;
//!     }
//! })
//! .unwrap()
//! .unwrap();
//! ```

use std::io;

use crate::net::{promises, Stream};

/// Standard input, read with `.await` (see [`stdin`]).
#[derive(Debug)]
pub struct Stdin {
    stream: Stream,
    /// The chunk being handed out, and how much of it was.
    chunk: Vec<u8>,
    pos: usize,
    eof: bool,
}

/// Standard input as an async reader. Reading pauses the stream between
/// reads, so input waits in the kernel (backpressure).
///
/// # Panics
/// If no event loop is current on this thread.
pub fn stdin() -> io::Result<Stdin> {
    Ok(Stdin {
        stream: crate::stdio::stdin()?,
        chunk: Vec::new(),
        pos: 0,
        eof: false,
    })
}

impl Stdin {
    /// Reads into `buf`, waiting until some input (or its end) is there;
    /// `0` means the input ended (or `buf` is empty). Each chunk the loop
    /// reads is one allocation, handed out over as many reads as it takes.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos == self.chunk.len() && !self.eof {
            match promises::read(&self.stream).await? {
                Some(chunk) => (self.chunk, self.pos) = (chunk, 0),
                None => self.eof = true,
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    /// Reads everything up to the end of input into `out`; returns how many
    /// bytes were added.
    pub async fn read_to_end(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let start = out.len();
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.read(&mut buf).await? {
                0 => return Ok(out.len() - start),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }
}

/// Standard output or error, written with `.await` (see [`stdout`]).
#[derive(Debug)]
pub struct Stdout {
    stream: Stream,
}

/// Standard output as an async writer.
///
/// # Panics
/// If no event loop is current on this thread.
pub fn stdout() -> io::Result<Stdout> {
    Ok(Stdout {
        stream: crate::stdio::stdout()?,
    })
}

/// Standard error as an async writer.
///
/// # Panics
/// If no event loop is current on this thread.
pub fn stderr() -> io::Result<Stdout> {
    Ok(Stdout {
        stream: crate::stdio::stderr()?,
    })
}

impl Stdout {
    /// Writes all of `data`, finishing once the kernel has taken it (so
    /// a slow reader downstream slows the writer: backpressure). A reader
    /// that went away gives `BrokenPipe`.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        Ok(promises::write(&self.stream, data).await?)
    }

    /// Ends the output once everything written has been flushed (closing
    /// it for the reader).
    pub fn end(&mut self) -> io::Result<()> {
        self.stream.end();
        Ok(())
    }
}

/// Closes this handle's stream (a duplicate of the descriptor), so it no
/// longer keeps the loop alive.
impl Drop for Stdin {
    fn drop(&mut self) {
        self.stream.destroy();
    }
}

/// Flushes what was written, then closes this handle's stream (a duplicate
/// of the descriptor: `println!` still works).
impl Drop for Stdout {
    fn drop(&mut self) {
        self.stream.end();
    }
}
