//! Read chunks: the bytes of one stream read, in a buffer leased from a
//! per-thread pool and given back when the [`Chunk`] is dropped.
//!
//! A task that reads with `read(&mut buf)` owns `buf` for its whole life,
//! idle or not: a server that keeps a 16 KiB buffer per connection holds
//! 160 MB for 10,000 idle clients. [`TcpStream::read_chunk`] waits for
//! readiness first, holding no buffer; only when the socket has data does
//! it take a buffer from the pool, read into it, and hand it over as a
//! `Chunk`. Dropping the chunk (after the echo is written, the request
//! parsed, ...) puts the buffer back for the next read of any task on this
//! thread. Idle connections hold no buffer; busy ones share a few.
//!
//! A chunk is owned: it stays valid across `.await` (a `write_all` that
//! waits for the peer keeps its bytes; no other task can reuse that buffer
//! until the chunk is dropped).
//!
//! The pool is a free list per thread (a loop runs on one thread), of at
//! most [`POOL_MAX`] buffers of [`CHUNK_SIZE`] bytes; a buffer given back
//! to a full pool is freed.
//!
//! [`TcpStream::read_chunk`]: crate::task::net::TcpStream::read_chunk

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Deref;

/// The capacity of a chunk's buffer: the most one
/// [`read_chunk`](crate::task::net::TcpStream::read_chunk) returns.
pub const CHUNK_SIZE: usize = 16 * 1024;

/// How many free buffers a thread's pool keeps (256 KiB at most).
pub const POOL_MAX: usize = 16;

type Buf = Box<[u8; CHUNK_SIZE]>;

thread_local! {
    /// The last buffer given back: a request-response loop leases and
    /// gives back one buffer per round, which this one slot serves.
    static SPARE: Cell<Option<Buf>> = const { Cell::new(None) };
    /// The other free buffers.
    static POOL: RefCell<Vec<Buf>> = const { RefCell::new(Vec::new()) };
}

/// A buffer from the pool, or a new one if the pool is empty.
fn lease() -> Buf {
    if let Some(buf) = SPARE.try_with(Cell::take).ok().flatten() {
        return buf;
    }
    let reused = POOL.try_with(|p| p.borrow_mut().pop()).ok().flatten();
    reused.unwrap_or_else(|| {
        log::trace!("chunk pool empty: a new {CHUNK_SIZE}-byte buffer");
        // A zeroed allocation (calloc: fresh pages are not touched).
        let v = vec![0u8; CHUNK_SIZE].into_boxed_slice();
        v.try_into().expect("CHUNK_SIZE bytes")
    })
}

/// Gives `buf` back to the pool, or frees it if the pool is full (or this
/// thread is exiting).
fn give_back(buf: Buf) {
    let Ok(Some(older)) = SPARE.try_with(|s| s.replace(Some(buf))) else {
        return;
    };
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.len() + 1 < POOL_MAX {
            p.push(older);
        }
    });
}

/// How many free buffers this thread's pool holds now (for tests and
/// diagnostics).
pub fn pooled() -> usize {
    let spare = SPARE
        .try_with(|s| {
            let b = s.take();
            let some = b.is_some();
            s.set(b);
            usize::from(some)
        })
        .unwrap_or(0);
    spare + POOL.try_with(|p| p.borrow().len()).unwrap_or(0)
}

/// The bytes of one stream read, in a pooled buffer that goes back to the
/// pool when the chunk is dropped. Dereferences to `[u8]`; empty means
/// the end of the stream (an empty chunk holds no buffer).
///
/// ```
/// use evloop::task::net::{TcpListener, TcpStream};
///
/// evloop::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
///     let (mut conn, _) = listener.accept().await?;
///     client.write_all(b"ping").await?;
///     let chunk = conn.read_chunk().await?; // no buffer held while waiting
///     assert_eq!(&chunk[..], b"ping");
///     conn.write_all(&chunk).await?; // the chunk stays valid across .await
///     drop(chunk); // its buffer goes back to the pool
///     drop(conn);
///     assert!(client.read_chunk().await?.len() == 4);
///     assert!(client.read_chunk().await?.is_empty()); // EOF
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub struct Chunk {
    /// `None` for the empty chunk of EOF.
    buf: Option<Buf>,
    len: usize,
}

impl Chunk {
    /// A leased buffer, empty, to read into with [`Chunk::spare_mut`].
    pub(crate) fn lease() -> Chunk {
        Chunk {
            buf: Some(lease()),
            len: 0,
        }
    }

    /// The whole buffer, to read into (before [`Chunk::set_len`]).
    pub(crate) fn spare_mut(&mut self) -> &mut [u8] {
        match &mut self.buf {
            Some(b) => &mut b[..],
            None => &mut [],
        }
    }

    /// Records that the first `n` bytes were read; `0` gives the buffer
    /// back at once (the end of the stream holds nothing).
    pub(crate) fn set_len(&mut self, n: usize) {
        debug_assert!(n <= CHUNK_SIZE);
        self.len = n;
        if n == 0 {
            if let Some(b) = self.buf.take() {
                give_back(b);
            }
        }
    }

    /// The bytes, as a new `Vec` (the chunk's buffer goes back to the pool
    /// when it is dropped).
    pub fn to_vec(&self) -> Vec<u8> {
        self[..].to_vec()
    }
}

impl Deref for Chunk {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.buf {
            Some(b) => &b[..self.len],
            None => &[],
        }
    }
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            give_back(b);
        }
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk").field("len", &self.len).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_chunk_returns_its_buffer() {
        let before = pooled();
        let mut c = Chunk::lease();
        c.spare_mut()[..3].copy_from_slice(b"abc");
        c.set_len(3);
        assert_eq!(&c[..], b"abc");
        let during = pooled();
        drop(c);
        assert_eq!(pooled(), during + 1);
        assert!(pooled() >= before);
    }

    #[test]
    fn an_empty_chunk_holds_no_buffer() {
        let mut c = Chunk::lease();
        let during = pooled();
        c.set_len(0);
        assert!(c.is_empty());
        assert_eq!(pooled(), during + 1);
        drop(c);
        assert_eq!(pooled(), during + 1);
    }

    #[test]
    fn the_pool_is_bounded() {
        let chunks: Vec<Chunk> = (0..POOL_MAX + 4).map(|_| Chunk::lease()).collect();
        drop(chunks);
        assert_eq!(pooled(), POOL_MAX);
    }
}
