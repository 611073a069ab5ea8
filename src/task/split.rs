//! Splitting an async stream into a read half and a write half (tokio's
//! `split` / `into_split`), so one task can read a connection while
//! others write to it: a chat server's reader task per client and a
//! broadcast that writes to every client.
//!
//! ```
//! use evloop::task::net::{TcpListener, TcpStream};
//!
//! evloop::block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0").await?;
//!     let client = TcpStream::connect(listener.local_addr()?).await?;
//!     let (mut conn, _) = listener.accept().await?;
//!     let (mut rd, mut wr) = client.into_split();
//!     // A task parked in a read on one half...
//!     let reader = evloop::spawn(async move {
//!         let mut buf = [0; 5];
//!         rd.read_exact(&mut buf).await.unwrap();
//!         buf
//!     });
//!     // ...while this one writes on the other.
//!     wr.write_all(b"hello").await?;
//!     let mut buf = [0; 5];
//!     conn.read_exact(&mut buf).await?;
//!     conn.write_all(&buf).await?;
//!     assert_eq!(&reader.await.unwrap(), b"hello");
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap()
//! .unwrap();
//! ```
//!
//! # Why the halves can run at once
//!
//! A socket keeps one readiness record and one waker per direction (see
//! [`task::net`](crate::task::net)): a task parked in a read on the read
//! half and another parked in a write on the write half are woken
//! independently. Each half is the only user of its direction, so the
//! "one waker per direction" rule is kept by construction.
//!
//! # Borrowed and owned halves
//!
//! [`split`](TcpStream::split) borrows the stream: no allocation, the
//! halves live in one task (polled together with `join`-like code, or one
//! inside [`copy`](crate::task::io::copy)). [`into_split`](TcpStream::into_split)
//! moves the stream into an [`Rc`] shared by two owned halves that can go
//! to different tasks; like everything on the loop they are `!Send`.
//! [`OwnedReadHalf::reunite`] puts the stream back together. An unsplit
//! stream's reads and writes are untouched by all this: no `Rc` on their
//! path.
//!
//! # Dropping the write half
//!
//! Dropping an [`OwnedWriteHalf`] shuts the socket's writing side down
//! (the peer reads EOF), as tokio does: once the writer is gone, nothing
//! can write again, and a peer waiting for the end of the data should see
//! it even while the read half lives on in another task. The socket itself
//! closes when both halves are dropped. [`OwnedWriteHalf::forget`] drops a
//! write half without the shutdown; [`reunite`](OwnedReadHalf::reunite)
//! does not shut down either. A borrowed [`WriteHalf`] does nothing on
//! drop (the stream is still yours). Errors of the shutdown on drop (a
//! peer that reset the connection: `NotConnected`) are ignored: `Drop`
//! cannot report them, and the socket is done with anyway.

use std::error::Error;
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::chunk::Chunk;
use super::io::{AsyncRead, AsyncWrite};
use super::net::{TcpStream, UnixStream};

mod sealed {
    use std::io;
    use std::task::{Context, Poll};

    /// The `&self` paths of a stream socket that its halves share.
    pub trait Shared {
        fn poll_read_ref(&self, cx: &Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
        fn poll_read_chunk_ref(&self, cx: &Context<'_>) -> Poll<io::Result<super::Chunk>>;
        fn poll_write_ref(&self, cx: &Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
        fn shutdown_ref(&self) -> io::Result<()>;
    }
}

/// A stream socket that can be split: [`TcpStream`] or [`UnixStream`]
/// (sealed: implemented for those two only).
pub trait SplitStream: sealed::Shared {}

macro_rules! shared {
    ($t:ty) => {
        impl sealed::Shared for $t {
            fn poll_read_ref(&self, cx: &Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                <$t>::poll_read_shared(self, cx, buf)
            }
            fn poll_read_chunk_ref(&self, cx: &Context<'_>) -> Poll<io::Result<Chunk>> {
                <$t>::poll_read_chunk_shared(self, cx)
            }
            fn poll_write_ref(&self, cx: &Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                <$t>::poll_write_shared(self, cx, buf)
            }
            fn shutdown_ref(&self) -> io::Result<()> {
                <$t>::shutdown_write(self)
            }
        }

        impl SplitStream for $t {}

        impl $t {
            /// Splits the stream into a read half and a write half that
            /// borrow it: reads on one and writes on the other can be in
            /// flight at once (each direction has its own waker). No
            /// allocation; see [`into_split`](Self::into_split) for halves
            /// that go to different tasks.
            ///
            /// ```
            /// use evloop::task::io::copy;
            /// use evloop::task::net::{TcpListener, TcpStream};
            ///
            /// evloop::block_on(async {
            ///     let listener = TcpListener::bind("127.0.0.1:0").await?;
            ///     let mut client = TcpStream::connect(listener.local_addr()?).await?;
            ///     let (mut conn, _) = listener.accept().await?;
            ///     evloop::spawn(async move {
            ///         // Echo: the connection's own read half into its write half.
            ///         let (mut r, mut w) = conn.split();
            ///         copy(&mut r, &mut w).await.unwrap();
            ///     });
            ///     client.write_all(b"echo").await?;
            ///     let mut buf = [0; 4];
            ///     client.read_exact(&mut buf).await?;
            ///     assert_eq!(&buf, b"echo");
            ///     Ok::<_, std::io::Error>(())
            /// })
            /// .unwrap()
            /// .unwrap();
            /// ```
            pub fn split(&mut self) -> (ReadHalf<'_, $t>, WriteHalf<'_, $t>) {
                let stream: &$t = self;
                (ReadHalf { stream }, WriteHalf { stream })
            }

            /// Splits the stream into owned halves sharing it through an
            /// [`Rc`]: give the read half to one task and the write half to
            /// another (or keep it in a list for a broadcast). Dropping the
            /// write half shuts the writing side down (see
            /// [`OwnedWriteHalf`]); the socket
            /// closes when both are dropped.
            /// [`OwnedReadHalf::reunite`] gives the stream back.
            ///
            /// ```
            /// use evloop::task::net::{TcpListener, TcpStream};
            ///
            /// evloop::block_on(async {
            ///     let listener = TcpListener::bind("127.0.0.1:0").await?;
            ///     let client = TcpStream::connect(listener.local_addr()?).await?;
            ///     let (mut conn, _) = listener.accept().await?;
            ///     let (mut rd, wr) = client.into_split();
            ///     let writer = evloop::spawn(async move {
            ///         let mut wr = wr;
            ///         wr.write_all(b"bye").await.unwrap();
            ///         // `wr` dropped here: the server reads EOF.
            ///     });
            ///     let mut got = Vec::new();
            ///     let mut buf = [0; 8];
            ///     loop {
            ///         match conn.read(&mut buf).await? {
            ///             0 => break,
            ///             n => got.extend_from_slice(&buf[..n]),
            ///         }
            ///     }
            ///     assert_eq!(got, b"bye");
            ///     writer.await.unwrap();
            ///     // The read half still works.
            ///     conn.write_all(b"ok").await?;
            ///     let mut buf = [0; 2];
            ///     rd.read_exact(&mut buf).await?;
            ///     assert_eq!(&buf, b"ok");
            ///     Ok::<_, std::io::Error>(())
            /// })
            /// .unwrap()
            /// .unwrap();
            /// ```
            pub fn into_split(self) -> (OwnedReadHalf<$t>, OwnedWriteHalf<$t>) {
                let stream = Rc::new(self);
                let write = OwnedWriteHalf {
                    stream: stream.clone(),
                    shutdown_on_drop: true,
                };
                (OwnedReadHalf { stream }, write)
            }
        }
    };
}

shared!(TcpStream);
shared!(UnixStream);

/// The reading half of a stream borrowed by [`TcpStream::split`] or
/// [`UnixStream::split`].
pub struct ReadHalf<'a, S: SplitStream = TcpStream> {
    stream: &'a S,
}

/// The writing half of a stream borrowed by [`TcpStream::split`] or
/// [`UnixStream::split`]. Dropping it does nothing.
pub struct WriteHalf<'a, S: SplitStream = TcpStream> {
    stream: &'a S,
}

/// The owned reading half of [`TcpStream::into_split`] or
/// [`UnixStream::into_split`].
pub struct OwnedReadHalf<S: SplitStream = TcpStream> {
    stream: Rc<S>,
}

/// The owned writing half of [`TcpStream::into_split`] or
/// [`UnixStream::into_split`]. Dropping it shuts the socket's writing
/// side down (see below), unless it is
/// [forgotten](OwnedWriteHalf::forget) or
/// [reunited](OwnedReadHalf::reunite).
///
/// # Dropping it shuts the writing side down
///
/// As with tokio: once the writer is gone nothing can write again, and a
/// peer waiting for the end of the data should see it even while the read
/// half lives on in another task (a chat server drops a client's write
/// half when it leaves the broadcast list; a proxy's writer task ends).
/// The socket itself closes when both halves are dropped. A borrowed
/// [`WriteHalf`] does nothing on drop (the stream is still yours). An
/// error of the shutdown on drop (a peer that reset the connection:
/// `NotConnected`) is ignored: `Drop` cannot report it, and the writing
/// side is over either way. Call [`shutdown`](OwnedWriteHalf::shutdown)
/// first to see it.
pub struct OwnedWriteHalf<S: SplitStream = TcpStream> {
    stream: Rc<S>,
    shutdown_on_drop: bool,
}

/// The methods of a read half, over its `&S`.
macro_rules! read_methods {
    () => {
        /// Reads into `buf`, waiting until some data (or EOF) is there:
        /// the stream's [`read`](TcpStream::read), cancel-safe likewise.
        pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let stream = &*self.stream;
            poll_fn(|cx| stream.poll_read_ref(cx, buf)).await
        }

        /// Waits until data is there, then reads it into a pooled buffer:
        /// the stream's [`read_chunk`](TcpStream::read_chunk) (no buffer
        /// held while waiting; cancel-safe).
        pub async fn read_chunk(&mut self) -> io::Result<Chunk> {
            let stream = &*self.stream;
            poll_fn(|cx| stream.poll_read_chunk_ref(cx)).await
        }

        /// Reads exactly `buf.len()` bytes; `UnexpectedEof` if the stream
        /// ends first. Not cancel-safe (see the stream's
        /// [`read_exact`](TcpStream::read_exact)).
        pub async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
            super::io::read_exact(self, buf).await
        }
    };
}

/// The methods of a write half, over its `&S`.
macro_rules! write_methods {
    () => {
        /// Writes some of `buf`, waiting until the socket can take at
        /// least one byte: the stream's [`write`](TcpStream::write).
        pub async fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let stream = &*self.stream;
            poll_fn(|cx| stream.poll_write_ref(cx, buf)).await
        }

        /// Writes all of `buf`, waiting as needed. Not cancel-safe (see the
        /// stream's [`write_all`](TcpStream::write_all)).
        pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            super::io::write_all(self, buf).await
        }
    };
}

impl<S: SplitStream> ReadHalf<'_, S> {
    read_methods!();
}

impl<S: SplitStream> WriteHalf<'_, S> {
    write_methods!();

    /// Shuts the socket's writing side down: the peer reads EOF once it
    /// has read what was written; the read half goes on working.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.stream.shutdown_ref()
    }
}

impl<S: SplitStream> OwnedReadHalf<S> {
    read_methods!();

    /// Puts the halves back together into the stream they came from; a
    /// [`ReuniteError`] giving both back if they are not from the same
    /// [`into_split`](TcpStream::into_split). The write half's
    /// shutdown-on-drop does not happen.
    pub fn reunite(self, other: OwnedWriteHalf<S>) -> Result<S, ReuniteError<S>> {
        if !Rc::ptr_eq(&self.stream, &other.stream) {
            return Err(ReuniteError(self, other));
        }
        other.forget();
        match Rc::try_unwrap(self.stream) {
            Ok(stream) => Ok(stream),
            // The two halves hold the only references (neither is Clone
            // nor lends its `Rc`), and the write half's is gone.
            Err(_) => unreachable!("a reunited stream has one owner"),
        }
    }
}

impl<S: SplitStream> OwnedWriteHalf<S> {
    write_methods!();

    /// Shuts the socket's writing side down now: the peer reads EOF once
    /// it has read what was written; the read half goes on working.
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.stream.shutdown_ref()
    }

    /// [`reunite`](OwnedReadHalf::reunite) from this side.
    pub fn reunite(self, other: OwnedReadHalf<S>) -> Result<S, ReuniteError<S>> {
        other.reunite(self)
    }

    /// Drops the write half without shutting the writing side down (the
    /// peer sees no EOF until the read half is dropped too and the socket
    /// closes).
    pub fn forget(mut self) {
        self.shutdown_on_drop = false;
    }
}

impl<S: SplitStream> Drop for OwnedWriteHalf<S> {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // `Drop` cannot report it; see the type's docs.
            let _ = self.stream.shutdown_ref();
        }
    }
}

impl<S: SplitStream> AsRef<S> for ReadHalf<'_, S> {
    fn as_ref(&self) -> &S {
        self.stream
    }
}

impl<S: SplitStream> AsRef<S> for WriteHalf<'_, S> {
    fn as_ref(&self) -> &S {
        self.stream
    }
}

impl<S: SplitStream> AsRef<S> for OwnedReadHalf<S> {
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

impl<S: SplitStream> AsRef<S> for OwnedWriteHalf<S> {
    fn as_ref(&self) -> &S {
        &self.stream
    }
}

macro_rules! debug {
    ($name:literal, $t:ident $(, $lt:lifetime)?) => {
        impl<$($lt,)? S: SplitStream + fmt::Debug> fmt::Debug for $t<$($lt,)? S> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple($name).field(&*self.stream).finish()
            }
        }
    };
}

debug!("ReadHalf", ReadHalf, 'a);
debug!("WriteHalf", WriteHalf, 'a);
debug!("OwnedReadHalf", OwnedReadHalf);
debug!("OwnedWriteHalf", OwnedWriteHalf);

/// The halves given to [`OwnedReadHalf::reunite`] were not split from the
/// same stream; both are given back.
pub struct ReuniteError<S: SplitStream = TcpStream>(pub OwnedReadHalf<S>, pub OwnedWriteHalf<S>);

impl<S: SplitStream + fmt::Debug> fmt::Debug for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ReuniteError")
            .field(&self.0)
            .field(&self.1)
            .finish()
    }
}

impl<S: SplitStream> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves that are not from the same stream")
    }
}

impl<S: SplitStream + fmt::Debug> Error for ReuniteError<S> {}

impl<S: SplitStream> AsyncRead for ReadHalf<'_, S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_read_ref(cx, buf)
    }
}

impl<S: SplitStream> AsyncRead for OwnedReadHalf<S> {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_read_ref(cx, buf)
    }
}

impl<S: SplitStream> AsyncWrite for WriteHalf<'_, S> {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_write_ref(cx, buf)
    }
    fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.stream.shutdown_ref())
    }
}

impl<S: SplitStream> AsyncWrite for OwnedWriteHalf<S> {
    fn poll_write(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.stream.poll_write_ref(cx, buf)
    }
    fn poll_shutdown(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.stream.shutdown_ref())
    }
}

/// `futures-io`'s traits for the halves (cargo feature `futures-io`), as
/// for the streams themselves.
#[cfg(feature = "futures-io")]
mod futures_io_impls {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, SplitStream, WriteHalf};

    impl<S: SplitStream> futures_io::AsyncRead for ReadHalf<'_, S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.stream.poll_read_ref(cx, buf)
        }
    }

    impl<S: SplitStream> futures_io::AsyncRead for OwnedReadHalf<S> {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            self.stream.poll_read_ref(cx, buf)
        }
    }

    macro_rules! write_impl {
        ($t:ty) => {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.stream.poll_write_ref(cx, buf)
            }

            /// Nothing is buffered here: always flushed.
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            /// Shuts the writing side down (the peer reads EOF).
            fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.stream.shutdown_ref())
            }
        };
    }

    impl<S: SplitStream> futures_io::AsyncWrite for WriteHalf<'_, S> {
        write_impl!(WriteHalf);
    }

    impl<S: SplitStream> futures_io::AsyncWrite for OwnedWriteHalf<S> {
        write_impl!(OwnedWriteHalf);
    }
}
