//! One API, three faces: every operation of the crate in the callback,
//! promise and async styles, side by side (issue 19's parity table).
//!
//! The rules behind the table:
//!
//! - **The promise face is the async face.** A [`Promise`](crate::promise::Promise)
//!   is `IntoFuture`, so `fs::promises::read_file(p).await` is the async
//!   way to read a file; a separate async function exists only where the
//!   async style needs a different shape (a socket you `read().await` in a
//!   loop, a `sleep` future, an `interval` you `tick()`).
//! - **Where the promise faces live.** A free function `x::f(args, cb)`
//!   has its promise face at `x::promises::f(args)` (Node's
//!   `fs/promises`, `stream/promises`, `dns/promises`); a method
//!   `thing.f(args, cb)` has `thing.f_promise(args)` (a method cannot move
//!   to a module).
//! - **The same arguments.** Each face takes the same arguments in the
//!   same order; a cancellable operation has a `_with_signal` twin (the
//!   [`AbortSignal`](crate::abort::AbortSignal) last before the callback)
//!   or a `.signal(&s)` builder option. Addresses are one argument type in
//!   every bind and connect ([`net::ToAddrs`](crate::net::ToAddrs)).
//! - **The same errors.** The callback gets an `io::Result`; the promise
//!   rejects with a [`Rejection`](crate::promise::Rejection) that keeps
//!   the `io::Error`'s kind, OS code and message
//!   ([`Rejection::kind`](crate::promise::Rejection::kind),
//!   [`io_error`](crate::promise::Rejection::io_error)); `.await` gives
//!   `Result<T, Rejection>` for a promise and `io::Result<T>` for an async
//!   socket. An abort is the [`AbortError`](crate::abort::AbortError) in
//!   every face ([`abort::is_abort_error`](crate::abort::is_abort_error),
//!   [`Rejection::is_aborted`](crate::promise::Rejection::is_aborted)).
//! - **Events** (data, end, message, exit, signal) are listeners in the
//!   callback style (`on_*` adds one and returns a
//!   [`Listener`](crate::Listener)); their promise face is "the next one"
//!   (`recv`, `read`, `once_signal`, `wait`), and their async face awaits
//!   that promise or reads an async type.
//!
//! A dash marks a face that does not exist, with the reason.
//!
//! ## Scheduling
//!
//! | Operation | Callback | Promise | Async |
//! |---|---|---|---|
//! | run after a delay | [`set_timeout`](crate::set_timeout) (`_with_signal`) | [`promise::delay`](crate::promise::delay) (`_with_signal`) | [`task::sleep`](crate::task::sleep) (`sleep_with_signal`, `sleep_until`) |
//! | repeat | [`set_interval`](crate::set_interval) (`_with_signal`) | — (a promise settles once) | [`task::interval`](crate::task::interval) `.tick().await` |
//! | after I/O, this turn | [`set_immediate`](crate::set_immediate) | — (a promise reaction is a microtask: [`queue_microtask`](crate::queue_microtask)) | [`task::yield_now`](crate::task::yield_now) |
//! | before any I/O | [`next_tick`](crate::next_tick), [`queue_microtask`](crate::queue_microtask) | `Promise::resolve(v).then(..)` | the code after an `.await` of a settled promise |
//! | give up after a time | a timer that destroys the operation | [`Promise::with_signal`](crate::promise::Promise::with_signal) + [`AbortSignal::timeout`](crate::abort::AbortSignal::timeout) | [`task::timeout`](crate::task::timeout), [`AbortSignal::race`](crate::abort::AbortSignal::race) |
//! | run blocking work on the pool | [`queue_work`](crate::queue_work) (`queue_work_cancelable`, `queue_work_with_signal`) | [`promise::queue_work`](crate::promise::queue_work) (`_with_signal`) | `promise::queue_work(..).await` |
//! | start concurrent work | any callback | any promise | [`spawn`](crate::spawn) (`spawn_with_signal`, `task::spawn_handle`) |
//!
//! The value of a promise or a task need not be `Clone`: it moves to its
//! one subscriber (see [`promise`](crate::promise#values-move-a-second-subscriber-needs-clone)).
//!
//! ## Files
//!
//! | Operation | Callback (`fs::`) | Promise (`fs::promises::`) | Async |
//! |---|---|---|---|
//! | read a whole file | [`read_file`](crate::fs::read_file), [`read_to_string`](crate::fs::read_to_string) | [`read_file`](crate::fs::promises::read_file), [`read_to_string`](crate::fs::promises::read_to_string) | the promise, `.await`ed |
//! | write, append | [`write_file`](crate::fs::write_file), [`append_file`](crate::fs::append_file) | [`write_file`](crate::fs::promises::write_file), [`append_file`](crate::fs::promises::append_file) | the promise, `.await`ed |
//! | directories | [`read_dir`](crate::fs::read_dir), [`create_dir`](crate::fs::create_dir)(`_all`), [`remove_dir`](crate::fs::remove_dir)(`_all`) | the same names | the promise, `.await`ed |
//! | metadata, existence | [`metadata`](crate::fs::metadata), [`symlink_metadata`](crate::fs::symlink_metadata), [`exists`](crate::fs::exists) | the same names | the promise, `.await`ed |
//! | rename, copy, remove | [`rename`](crate::fs::rename), [`copy_file`](crate::fs::copy_file), [`remove_file`](crate::fs::remove_file) | the same names | the promise, `.await`ed |
//! | open a file | [`File::open`](crate::fs::File::open), [`File::open_with`](crate::fs::File::open_with) | [`open`](crate::fs::promises::open), [`open_with`](crate::fs::promises::open_with) | the promise, `.await`ed |
//! | read, write, sync an open file | [`File::read`](crate::fs::File::read), `write`, `sync`, `sync_data`, `set_len`, `metadata`, `close` | `File::read_promise`, `write_promise`, `sync_promise`, `sync_data_promise`, `set_len_promise`, `metadata_promise`, `close_promise` | the promise, `.await`ed |
//! | watch a path | [`watch`](crate::fs::watch) (inotify; `on_change` adds listeners) | [`FsWatcher::next`](crate::fs::FsWatcher::next) (the next event) | [`FsWatcher::events`](crate::fs::FsWatcher::events) `.next().await` |
//! | poll a file's stats | [`watch_file`](crate::fs::watch_file) (`on_change` adds listeners) | [`StatWatcher::next`](crate::fs::StatWatcher::next) (the next change) | [`StatWatcher::events`](crate::fs::StatWatcher::events) `.next().await` |
//! | stream a file | [`create_read_stream`](crate::fs::create_read_stream), [`create_write_stream`](crate::fs::create_write_stream) (events) | [`stream::promises::pipeline`](crate::stream::promises::pipeline) into or out of one | — (read with `File::read_promise` in a loop, or pipe: the file streams are callback streams) |
//!
//! Every one of them has a `_with_signal` twin (methods: `read_with_signal`,
//! `read_promise_with_signal`, ...). Errors: [`FsError`](crate::fs::FsError)
//! inside the `io::Error` names the path and the call, in every face.
//!
//! ## Network
//!
//! | Operation | Callback (`net::`) | Promise (`net::promises::`) | Async (`task::net::`) |
//! |---|---|---|---|
//! | resolve a host name | [`dns::lookup`](crate::dns::lookup) | [`dns::promises::lookup`](crate::dns::promises::lookup) | the promise, `.await`ed |
//! | connect TCP | [`connect`](crate::net::connect) (`_with_signal`) | [`connect`](crate::net::promises::connect) (`_with_signal`) | [`TcpStream::connect`](crate::task::net::TcpStream::connect) (`connect_with_signal`) |
//! | listen on TCP | [`TcpListener::bind`](crate::net::TcpListener::bind) (a callback per connection) | — (connections are many: a promise settles once; the callback listener serves promise code) | [`TcpListener::bind`](crate::task::net::TcpListener::bind) + `accept().await` |
//! | connect, listen on a Unix socket | [`connect_unix`](crate::net::connect_unix), [`UnixListener::bind`](crate::net::UnixListener::bind) | [`connect_unix`](crate::net::promises::connect_unix) | [`UnixStream::connect`](crate::task::net::UnixStream::connect), [`UnixListener::bind`](crate::task::net::UnixListener::bind) |
//! | read | [`Stream::on_data`](crate::net::Stream::on_data), `on_end` | [`read`](crate::net::promises::read) (the next chunk; `None` at the end) | `read(&mut buf).await`, `read_exact`; [`read_chunk().await`](crate::task::net::TcpStream::read_chunk) (a pooled [`Chunk`](crate::task::Chunk): no buffer held while idle); [`readable().await`](crate::task::net::TcpStream::readable) + [`try_read`](crate::task::net::TcpStream::try_read) |
//! | write | [`Stream::write`](crate::net::Stream::write) (`false`: wait for `on_drain`), `write_with` | [`write`](crate::net::promises::write) (settles when the kernel has it) | `write(..).await`, `write_all` |
//! | end the writing side | [`Stream::end`](crate::net::Stream::end) | — (a call, nothing to wait for; `write` then `end`) | `shutdown().await` |
//! | read and write from two places | clones of the [`Stream`](crate::net::Stream) | clones of the `Stream` | [`split`](crate::task::net::TcpStream::split), [`into_split`](crate::task::net::TcpStream::into_split) |
//! | copy one stream into another | [`stream::pipeline`](crate::stream::pipeline) | [`stream::promises::pipeline`](crate::stream::promises::pipeline) | [`task::io::copy`](crate::task::io::copy), [`copy_bidirectional`](crate::task::io::copy_bidirectional) |
//! | UDP | [`UdpSocket::bind`](crate::net::UdpSocket::bind), `on_message`, `send_to` | — (datagrams are many; see below) | [`UdpSocket::bind`](crate::task::net::UdpSocket::bind), `recv_from().await`, `send_to().await` |
//!
//! UDP has no promise face: the callback socket hands every datagram to
//! its `on_message` listeners as it arrives, and a "next datagram" promise
//! would need a queue of its own between two calls (the async socket reads
//! in a loop instead, from the kernel's queue). Node has no promise face
//! for `dgram` either.
//!
//! Addresses: every bind and connect above takes any
//! [`ToAddrs`](crate::net::ToAddrs) (`SocketAddr`, `"ip:port"`,
//! `"host:port"`, `(host, port)`, a list); a host name is resolved on the
//! pool and each address is tried in turn. A callback bind by name returns
//! the listener at once and reports a failed lookup or bind to its
//! connection callback, as Node's `listen` reports to `'error'`. The
//! synchronous calls take the literal forms only (a host name is
//! `InvalidInput` naming [`dns::lookup`](crate::dns::lookup)): the callback
//! UDP socket's `send_to` and `connect` (datagrams go out in order, so one
//! is not held back by a lookup) and
//! [`Cluster::start`](crate::process::Cluster::start); the async
//! `UdpSocket::send_to` awaits the lookup.
//!
//! ## Processes
//!
//! | Operation | Callback (`process::`) | Promise | Async |
//! |---|---|---|---|
//! | start a child | [`Command::spawn`](crate::process::Command::spawn) (synchronous: fails at the call) | the same | the same |
//! | wait for its exit | [`Child::on_exit`](crate::process::Child::on_exit) | [`Child::wait`](crate::process::Child::wait) | `child.wait().await` |
//! | run and collect output | [`exec`](crate::process::exec) | [`process::promises::exec`](crate::process::promises::exec) | the promise, `.await`ed |
//! | signal a child | [`Child::kill`](crate::process::Child::kill), [`kill`](crate::process::kill) (synchronous) | the same | the same |
//! | cancel | [`Command::signal`](crate::process::Command::signal) (kills the child on abort) | the same | the same |
//! | receive a signal | [`on_signal`](crate::process::on_signal) | [`once_signal`](crate::process::once_signal) (`_with_signal`) | `once_signal(..).await` |
//! | messages to a worker | [`Channel::send`](crate::process::Channel::send) (`false`: wait for `on_drain`), `on_message` | [`Channel::send_promise`](crate::process::Channel::send_promise), [`Channel::recv`](crate::process::Channel::recv) (`recv_with_signal`) | `recv().await` |
//! | a worker thread | [`worker_threads::Worker::spawn`](crate::worker_threads::Worker::spawn), `on_message`, `on_exit`, `on_error` | [`Worker::recv`](crate::worker_threads::Worker::recv), [`exited`](crate::worker_threads::Worker::exited), [`terminate`](crate::worker_threads::Worker::terminate) | `recv().await`, `exited().await` |
//! | messages between threads | [`MessagePort::post_message`](crate::worker_threads::MessagePort::post_message), `on_message` (`T: Clone`: each listener its copy) | [`MessagePort::recv`](crate::worker_threads::MessagePort::recv) (any `T`: moved) | `recv().await` |
//! | a cluster | [`Cluster::start`](crate::process::Cluster::start), `on_event` | — (runs until shutdown: events, not one result) | — (as promise) |
//!
//! ## Standard streams
//!
//! | Operation | Callback | Promise | Async (`task::`) |
//! |---|---|---|---|
//! | read stdin | [`stdio::stdin`](crate::stdio::stdin) (a `Stream`: `on_data`) | [`net::promises::read`](crate::net::promises::read) on it | [`task::stdin`](crate::task::stdin) `.read().await` |
//! | the terminal | [`tty::set_raw_mode`](crate::tty::set_raw_mode), [`RawMode`](crate::tty::RawMode), [`window_size`](crate::tty::window_size), [`on_resize`](crate::tty::on_resize) (synchronous calls, and a listener) | — (no waiting involved; a resize is an event) | the same calls |
//! | readiness of any fd | [`watch_fd`](crate::watch_fd) (a callback per readiness) | — (readiness repeats; a promise settles once) | [`task::AsyncFd`](crate::task::AsyncFd) `readable().await`, `writable().await` |
//! | write stdout, stderr | [`stdio::stdout`](crate::stdio::stdout) (a `Stream`: `write`) | [`net::promises::write`](crate::net::promises::write) on it | [`task::stdout`](crate::task::stdout) `.write_all().await` |
//!
//! ## Cancellation
//!
//! | Operation | Callback | Promise | Async |
//! |---|---|---|---|
//! | cancel one operation | its `_with_signal` twin: the callback gets the `AbortError` | its `_with_signal` twin: the promise rejects with it | its `_with_signal` twin, or [`AbortSignal::race`](crate::abort::AbortSignal::race) around any future |
//! | cancel a group | one [`AbortController`](crate::abort::AbortController) for all; [`AbortSignal::any`](crate::abort::AbortSignal::any) | the same | the same, or dropping the futures |
