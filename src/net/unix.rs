//! Unix domain stream sockets: a listener and connect.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::listener::Listener;
use super::stream::{ConnectCb, Stream};
use super::tcp::{bind_connect, Attempt};
use crate::abort::AbortSignal;
use crate::event_loop::current_inner;

/// A Unix domain socket server (Node's `net.Server` on a path). It does not
/// remove the socket file when closed, as Node does not either.
///
/// It accepts as the [`TcpListener`](super::TcpListener) does, with the
/// same policy when the process runs out of file descriptors: the pending
/// connections are accepted and closed, the callback gets the error once
/// per burst, and accepting pauses for 100 ms and resumes by itself.
#[derive(Clone)]
pub struct UnixListener {
    inner: Rc<Listener<mio::net::UnixListener>>,
    path: PathBuf,
}

impl UnixListener {
    /// Binds `path` and calls `on_connection` with each accepted stream, or
    /// with an accept error.
    pub fn bind(
        path: impl AsRef<Path>,
        on_connection: impl FnMut(io::Result<Stream>) + 'static,
    ) -> io::Result<UnixListener> {
        let path = path.as_ref().to_path_buf();
        let io = mio::net::UnixListener::bind(&path)?;
        let inner = Listener::start(io, "unix listener", on_connection)?;
        Ok(UnixListener { inner, path })
    }

    /// The path it listens on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops listening. Accepted connections stay open.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Lets the loop exit while the listener is open.
    pub fn unref(&self) -> &Self {
        self.inner.set_ref(false);
        self
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("path", &self.path)
            .finish()
    }
}

/// Connects to the Unix socket at `path`; `cb` runs later with the stream
/// or the error. [`connect_unix_with_signal`] is the abortable form.
pub fn connect_unix(path: impl AsRef<Path>, cb: impl FnOnce(io::Result<Stream>) + 'static) {
    connect_unix_attempt(path.as_ref(), &Attempt::default(), Box::new(cb));
}

/// [`connect_unix`], abortable, as [`connect_with_signal`](super::connect_with_signal)
/// is: already aborted, nothing starts; aborted while connecting, the
/// socket is closed at once and `cb` gets the
/// [`AbortError`](crate::abort::AbortError) (in a `next_tick`); connected
/// first, `cb` gets the stream, which a later abort destroys (Node).
pub fn connect_unix_with_signal(
    path: impl AsRef<Path>,
    signal: &AbortSignal,
    cb: impl FnOnce(io::Result<Stream>) + 'static,
) {
    let attempt = Rc::new(Attempt::default());
    if let Some(done) = bind_connect(signal, &attempt, cb) {
        connect_unix_attempt(path.as_ref(), &attempt, done);
    }
}

fn connect_unix_attempt(path: &Path, attempt: &Attempt, cb: ConnectCb) {
    let started =
        mio::net::UnixStream::connect(path).and_then(|sock| Stream::register(Box::new(sock), true));
    match started {
        Ok(stream) => {
            attempt.connecting(&stream);
            stream.set_connect_callback(cb)
        }
        Err(e) => current_inner().defer_pending(Box::new(move || cb(Err(e)))),
    }
}
