//! Unix domain stream sockets: a listener and connect.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, ErrorKind};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use mio::Interest;

use super::stream::Stream;
use crate::event_loop::current_inner;
use crate::reactor::{watch_kind, WatchSlot};

type ConnectionCb = Box<dyn FnMut(io::Result<Stream>)>;

struct Inner {
    /// Accepting is paused after EMFILE until the retry timer fires, and
    /// the burst was reported (as for TCP).
    backoff: Cell<bool>,
    reported: Cell<bool>,
    io: RefCell<Option<mio::net::UnixListener>>,
    watch: WatchSlot,
    cb: RefCell<Option<ConnectionCb>>,
    path: PathBuf,
}

/// A Unix domain socket server (Node's `net.Server` on a path). It does not
/// remove the socket file when closed, as Node does not either.
#[derive(Clone)]
pub struct UnixListener {
    inner: Rc<Inner>,
}

impl UnixListener {
    /// Binds `path` and calls `on_connection` with each accepted stream.
    pub fn bind(
        path: impl AsRef<Path>,
        on_connection: impl FnMut(io::Result<Stream>) + 'static,
    ) -> io::Result<UnixListener> {
        let path = path.as_ref().to_path_buf();
        let io = mio::net::UnixListener::bind(&path)?;
        let fd = io.as_raw_fd();
        let inner = Rc::new(Inner {
            backoff: Cell::new(false),
            reported: Cell::new(false),
            io: RefCell::new(Some(io)),
            watch: WatchSlot::default(),
            cb: RefCell::new(Some(Box::new(on_connection))),
            path,
        });
        let me = inner.clone();
        let watch = watch_kind(
            fd,
            Interest::READABLE,
            "unix listener",
            Box::new(move |_| me.accept_all()),
        )?;
        inner.watch.set(watch);
        Ok(UnixListener { inner })
    }

    /// The path it listens on.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Stops listening. Accepted connections stay open.
    pub fn close(&self) {
        self.inner.watch.close();
        let io = self.inner.io.borrow_mut().take();
        drop(io);
        let cb = self.inner.cb.borrow_mut().take();
        drop(cb);
    }

    /// Lets the loop exit while the listener is open.
    pub fn unref(&self) -> &Self {
        self.inner.watch.set_ref(false);
        self
    }
}

impl Inner {
    fn accept_all(self: &Rc<Self>) {
        if self.backoff.get() {
            return;
        }
        for _ in 0..super::tcp::ACCEPTS_PER_TURN {
            let r = {
                let io = self.io.borrow();
                match io.as_ref() {
                    Some(io) => io.accept(),
                    None => return,
                }
            };
            let r = match r {
                Ok((sock, _)) => {
                    self.reported.set(false);
                    Stream::register(Box::new(sock), false)
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if super::tcp::is_fd_exhaustion(&e) => {
                    // Out of fds: report once, retry later (connections wait
                    // in the backlog; an edge will not come again for them).
                    self.backoff.set(true);
                    let me = self.clone();
                    crate::set_timeout(super::tcp::EMFILE_BACKOFF, move || {
                        me.backoff.set(false);
                        me.accept_all();
                    })
                    .unref();
                    if self.reported.replace(true) {
                        return;
                    }
                    Err(e)
                }
                Err(e) => Err(e),
            };
            let failed = match &r {
                Err(e) => !super::tcp::is_transient_accept_error(e),
                Ok(_) => false,
            };
            let cb = self.cb.borrow_mut().take();
            let Some(mut cb) = cb else { return };
            cb(r);
            let mut slot = self.cb.borrow_mut();
            if self.io.borrow().is_some() && slot.is_none() {
                *slot = Some(cb);
            } else {
                drop(slot);
                drop(cb);
                return;
            }
            drop(slot);
            current_inner().checkpoint_now();
            if failed {
                return;
            }
        }
        // A full batch: the rest of the backlog waits for the next
        // iteration, so a connection flood cannot starve the other sources.
        let me = self.clone();
        current_inner().defer_next_turn(Box::new(move || me.accept_all()));
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// Connects to the Unix socket at `path`; `cb` runs later with the stream
/// or the error.
pub fn connect_unix(path: impl AsRef<Path>, cb: impl FnOnce(io::Result<Stream>) + 'static) {
    let started = mio::net::UnixStream::connect(path.as_ref())
        .and_then(|sock| Stream::register(Box::new(sock), true));
    match started {
        Ok(stream) => stream.set_connect_callback(Box::new(cb)),
        Err(e) => current_inner().defer_pending(Box::new(move || cb(Err(e)))),
    }
}
