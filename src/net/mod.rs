//! Callback-style networking on the reactor: TCP, Unix domain sockets and
//! UDP, in Node's `net` and `dgram` shapes.
//!
//! Every operation takes a callback that runs on the loop thread and gets
//! an `io::Result`; nothing here blocks the loop. A connected socket is a
//! [`Stream`], the same type for TCP, Unix sockets, pipes and the terminal.
//!
//! Name lookups (`connect("localhost:8080", ..)`) run on the thread pool,
//! as Node's `dns.lookup` does.

mod pipe;
pub mod promises;
mod stream;
mod tcp;
mod udp;
mod unix;

pub use stream::{Stream, DEFAULT_HIGH_WATER_MARK};
pub use tcp::{connect, connect_addr, TcpListener};
pub use udp::UdpSocket;
pub use unix::{connect_unix, UnixListener};

pub(crate) use pipe::{PipeReader, PipeWriter};
pub(crate) use stream::StreamIo;
pub(crate) use tcp::{is_transient_accept_error, listen};
