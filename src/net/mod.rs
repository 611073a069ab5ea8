//! Callback-style networking on the reactor: TCP, Unix domain sockets and
//! UDP, in Node's `net` and `dgram` shapes.
//!
//! Every operation takes a callback that runs on the loop thread and gets
//! an `io::Result`; nothing here blocks the loop. A connected socket is a
//! [`Stream`], the same type for TCP, Unix sockets, pipes and the terminal.
//!
//! Every listener (these and the async ones of [`task::net`](crate::task::net))
//! accepts with one policy, in `listener.rs`: bounded batches, errors of
//! one connection skipped, and libuv's answer to running out of file
//! descriptors.
//!
//! Every bind and connect takes one address argument, any [`ToAddrs`]
//! (`"127.0.0.1:80"`, `"localhost:80"`, `("localhost", 80)`, a
//! `SocketAddr`, a list), in every style. Literal forms need no lookup;
//! host names are resolved on the thread pool, as Node's `dns.lookup`
//! does ([`crate::dns`]). Connecting tries each address in turn
//! (sequentially: Node 20's `autoSelectFamily` races them, we do not) and
//! reports the last error; binding takes the first address that binds.
//! Why a callback bind returns at once and may listen later: see
//! [`TcpListener`](TcpListener#binding-one-shape-for-literal-addresses-and-names).

mod addr;
mod listener;
mod pipe;
pub mod promises;
mod stream;
mod tcp;
mod udp;
mod unix;

pub use addr::ToAddrs;
pub use stream::{Stream, DEFAULT_HIGH_WATER_MARK};
pub use tcp::{connect, connect_with_signal, TcpListener};
pub use udp::UdpSocket;
pub use unix::{connect_unix, connect_unix_with_signal, UnixListener};

pub(crate) use addr::{literal, lookup_host, Target};
pub(crate) use listener::{Acceptor, Listen, Step};
pub(crate) use pipe::{PipeReader, PipeWriter};
pub(crate) use stream::StreamIo;
pub(crate) use tcp::listen_first;
