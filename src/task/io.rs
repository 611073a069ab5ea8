//! Moving bytes between async streams: [`copy`] and
//! [`copy_bidirectional`], over a small pair of poll traits,
//! [`AsyncRead`] and [`AsyncWrite`] (tokio's `tokio::io` in miniature).
//!
//! The traits are implemented by the async stream sockets of
//! [`task::net`](crate::task::net) and by their halves
//! ([`split`](crate::task::net::TcpStream::split),
//! [`into_split`](crate::task::net::TcpStream::into_split)), and can be
//! implemented for any other source or sink. They are plain `poll_*`
//! methods on `&mut self` (no `Pin`: every evloop stream is `Unpin`, and
//! `async fn` in traits needs a newer Rust than this crate's MSRV).
//!
//! # Buffering and backpressure
//!
//! A copy owns one buffer of [`COPY_BUF_SIZE`] bytes per direction,
//! allocated once when it starts. It reads into the buffer only once the
//! writer has taken all of it, so a slow writer slows the reader down: at
//! most one buffer per direction is in flight, whatever the peers do
//! (Node's `pipe()` rule of respecting `write()`'s backpressure).
//!
//! # Cancellation
//!
//! Dropping a copy's future stops it; the bytes it had read but not yet
//! written are lost, as with tokio. Race the copy as a whole (with an
//! [`AbortSignal`](crate::abort::AbortSignal) or
//! [`timeout`](crate::task::timeout)) and drop the streams afterwards.

use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::task::{ready, Context, Poll};

use super::net::{TcpStream, UnixStream};

/// The size of the buffer a copy uses for each direction: 16 KiB, large
/// enough that loopback throughput is bounded by the syscalls rather than
/// by the buffer, small enough for thousands of proxied connections.
pub const COPY_BUF_SIZE: usize = 16 * 1024;

/// The reading side of an async byte stream.
pub trait AsyncRead {
    /// Reads into `buf` if data (or EOF) is there, else registers
    /// `cx`'s waker and returns `Pending`. `Ready(Ok(0))` means the end
    /// of the stream (or an empty `buf`).
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
}

/// The writing side of an async byte stream.
pub trait AsyncWrite {
    /// Writes some of `buf` if the sink can take at least one byte, else
    /// registers `cx`'s waker and returns `Pending`.
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;

    /// Pushes out anything buffered. The evloop sockets buffer nothing, so
    /// the default is done at once.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let _ = cx;
        Poll::Ready(Ok(()))
    }

    /// Ends the writing side: the peer reads EOF once it has read what was
    /// written (a socket's `shutdown(Write)`, Node's `end()`).
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl<T: AsyncRead + ?Sized> AsyncRead for &mut T {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        (**self).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + ?Sized> AsyncWrite for &mut T {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        (**self).poll_write(cx, buf)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + ?Sized> AsyncRead for Box<T> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        (**self).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + ?Sized> AsyncWrite for Box<T> {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        (**self).poll_write(cx, buf)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_flush(cx)
    }
    fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_shutdown(cx)
    }
}

/// The traits for the stream sockets: the inherent methods' paths, so no
/// allocation per call.
macro_rules! stream_io {
    ($t:ty) => {
        impl AsyncRead for $t {
            fn poll_read(
                &mut self,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_shared(cx, buf)
            }
        }

        impl AsyncWrite for $t {
            fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.poll_write_shared(cx, buf)
            }
            fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown_write())
            }
        }
    };
}

stream_io!(TcpStream);
stream_io!(UnixStream);

/// Copies everything `reader` yields into `writer` until `reader` ends,
/// then flushes `writer`; returns the number of bytes copied (tokio's
/// `tokio::io::copy`). `writer` is not shut down: call its `shutdown` (or
/// use [`copy_bidirectional`]) for the peer to see EOF.
///
/// An error of either side ends the copy with that error; a writer that
/// takes zero bytes is a `WriteZero` error. One buffer of
/// [`COPY_BUF_SIZE`] bytes is allocated per call (see the module docs).
///
/// ```
/// use evloop::task::io::copy;
/// use evloop::task::net::{TcpListener, TcpStream};
///
/// evloop::block_on(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await?;
///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
///     let (conn, _) = listener.accept().await?;
///     // An echo server in one line: the connection's read half into its
///     // write half.
///     let server = evloop::spawn(async move {
///         let (mut r, mut w) = conn.into_split();
///         copy(&mut r, &mut w).await.unwrap()
///     });
///     client.write_all(b"ping").await?;
///     client.shutdown().await?;
///     let mut back = [0; 4];
///     client.read_exact(&mut back).await?;
///     assert_eq!(&back, b"ping");
///     assert_eq!(server.await.unwrap(), 4);
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub async fn copy<R, W>(reader: &mut R, writer: &mut W) -> io::Result<u64>
where
    R: AsyncRead + ?Sized,
    W: AsyncWrite + ?Sized,
{
    let mut buf = CopyBuffer::new();
    poll_fn(|cx| buf.poll_copy(cx, &mut *reader, &mut *writer)).await
}

/// Copies `a` into `b` and `b` into `a` at the same time, until both
/// directions have ended; returns `(a to b, b to a)` byte counts (tokio's
/// `copy_bidirectional`: a proxy's loop).
///
/// When one side's reading ends (EOF), the other side's writing is shut
/// down, so the EOF travels through, and the copy goes on in the other
/// direction until it ends too. The first error of any read, write or
/// shutdown ends both directions with that error. One buffer of
/// [`COPY_BUF_SIZE`] bytes per direction.
///
/// ```
/// use evloop::task::io::copy_bidirectional;
/// use evloop::task::net::{TcpListener, TcpStream};
///
/// evloop::block_on(async {
///     // An echo server, and a proxy in front of it.
///     let echo = TcpListener::bind("127.0.0.1:0").await?;
///     let echo_addr = echo.local_addr()?;
///     evloop::spawn(async move {
///         let (conn, _) = echo.accept().await.unwrap();
///         let (mut r, mut w) = conn.into_split();
///         evloop::task::io::copy(&mut r, &mut w).await.unwrap();
///     });
///     let proxy = TcpListener::bind("127.0.0.1:0").await?;
///     let proxy_addr = proxy.local_addr()?;
///     let proxied = evloop::spawn(async move {
///         let (mut inbound, _) = proxy.accept().await.unwrap();
///         let mut outbound = TcpStream::connect(echo_addr).await.unwrap();
///         copy_bidirectional(&mut inbound, &mut outbound).await.unwrap()
///     });
///     let mut client = TcpStream::connect(proxy_addr).await?;
///     client.write_all(b"hello").await?;
///     client.shutdown().await?;
///     let mut back = Vec::new();
///     let mut buf = [0; 16];
///     loop {
///         match client.read(&mut buf).await? {
///             0 => break,
///             n => back.extend_from_slice(&buf[..n]),
///         }
///     }
///     assert_eq!(back, b"hello");
///     assert_eq!(proxied.await.unwrap(), (5, 5));
///     Ok::<_, std::io::Error>(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub async fn copy_bidirectional<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + ?Sized,
    B: AsyncRead + AsyncWrite + ?Sized,
{
    let mut a_to_b = Transfer::Running(CopyBuffer::new());
    let mut b_to_a = Transfer::Running(CopyBuffer::new());
    poll_fn(|cx| {
        // Both directions are polled each time, so each one's waker is
        // registered (one task, two wakers: a's read half and b's write
        // half for one direction, the converse for the other).
        let ab = a_to_b.poll(cx, &mut *a, &mut *b)?;
        let ba = b_to_a.poll(cx, &mut *b, &mut *a)?;
        let ab = ready!(ab);
        let ba = ready!(ba);
        Poll::Ready(Ok((ab, ba)))
    })
    .await
}

/// One direction of a copy: a fixed buffer and how far it got.
struct CopyBuffer {
    buf: Box<[u8]>,
    /// `buf[pos..cap]` is read but not yet written.
    pos: usize,
    cap: usize,
    /// Bytes written so far.
    amt: u64,
    read_done: bool,
}

impl CopyBuffer {
    fn new() -> CopyBuffer {
        CopyBuffer {
            buf: vec![0; COPY_BUF_SIZE].into_boxed_slice(),
            pos: 0,
            cap: 0,
            amt: 0,
            read_done: false,
        }
    }

    fn poll_copy<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        writer: &mut W,
    ) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            // Read only into an empty buffer: the writer's pace bounds
            // what is in flight.
            if self.pos == self.cap && !self.read_done {
                match ready!(reader.poll_read(cx, &mut self.buf))? {
                    0 => self.read_done = true,
                    n => {
                        self.pos = 0;
                        self.cap = n;
                    }
                }
            }
            while self.pos < self.cap {
                match ready!(writer.poll_write(cx, &self.buf[self.pos..self.cap]))? {
                    0 => {
                        return Poll::Ready(Err(io::Error::new(
                            ErrorKind::WriteZero,
                            "the writer took zero bytes",
                        )))
                    }
                    n => {
                        self.pos += n;
                        self.amt += n as u64;
                    }
                }
            }
            if self.read_done {
                ready!(writer.poll_flush(cx))?;
                return Poll::Ready(Ok(self.amt));
            }
        }
    }
}

/// One direction of [`copy_bidirectional`].
enum Transfer {
    Running(CopyBuffer),
    /// Copied everything; shutting the writer down.
    ShuttingDown(u64),
    Done(u64),
}

impl Transfer {
    fn poll<R, W>(&mut self, cx: &mut Context<'_>, r: &mut R, w: &mut W) -> Poll<io::Result<u64>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        loop {
            match self {
                Transfer::Running(buf) => {
                    let n = ready!(buf.poll_copy(cx, r, w))?;
                    *self = Transfer::ShuttingDown(n);
                }
                Transfer::ShuttingDown(n) => {
                    let n = *n;
                    ready!(w.poll_shutdown(cx))?;
                    *self = Transfer::Done(n);
                }
                Transfer::Done(n) => return Poll::Ready(Ok(*n)),
            }
        }
    }
}

/// [`AsyncRead`]'s `read_exact`, for the halves' inherent methods.
pub(super) async fn read_exact<R: AsyncRead + ?Sized>(
    reader: &mut R,
    mut buf: &mut [u8],
) -> io::Result<()> {
    while !buf.is_empty() {
        match poll_fn(|cx| reader.poll_read(cx, buf)).await? {
            0 => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "end of stream before the buffer was filled",
                ))
            }
            n => buf = &mut buf[n..],
        }
    }
    Ok(())
}

/// [`AsyncWrite`]'s `write_all`, for the halves' inherent methods.
pub(super) async fn write_all<W: AsyncWrite + ?Sized>(
    writer: &mut W,
    mut buf: &[u8],
) -> io::Result<()> {
    while !buf.is_empty() {
        match poll_fn(|cx| writer.poll_write(cx, buf)).await? {
            0 => return Err(ErrorKind::WriteZero.into()),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}
