//! HTTP/1.1 "Hello, World!" in async/await style, with keep-alive and
//! pipelining: the twin of `http_hello.rs`, one task per connection on the
//! same single loop thread.
//!
//! `cargo run --release --example http_hello_async [ADDR]` (or `PORT=8080`;
//! default 127.0.0.1:8080), then `curl http://127.0.0.1:8080/` or load it
//! with `wrk -t1 -c100 -d10s http://127.0.0.1:8080/`.
//!
//! The request framing is the benchmark servers' own (`http_common.rs`),
//! so it does exactly the work the callback version does, and so does
//! the rest:
//!
//! - **Backpressure**: the responses of one read are written (`write_all`
//!   awaited) before the next read, so a client that pipelines and never
//!   reads costs one read's worth of responses.
//! - **Deadlines** (`http_common::Timeouts`): a request head must be
//!   complete within 10 s of its first byte (else `408`), a connection
//!   idle for 5 s is closed, and so is one whose client takes none of a
//!   response for as long. One [`Watchdog`] per connection races each
//!   read and write against one `Sleep`; a read only sets a flag that the
//!   watchdog checks when its sleep ends (then it sleeps again), so an idle
//!   connection is closed 5 to 10 s after its last activity and a request
//!   costs no timer operation (a `task::timeout` per read costs more than
//!   parsing the request).
//! - **Memory**: no read buffer per connection: `read_chunk` leases one
//!   from the loop thread's pool only once data is there, so an idle
//!   keep-alive connection holds about 1 KiB (its task's state, the
//!   watchdog's timer, the socket's registration), not 17.
//! - **Bad requests**: `400`, `431` or `501`, then close.
//! - **Closing** sends FIN after the last response and reads (and drops)
//!   what the client still sends for up to `LINGER`, so that an error
//!   response is not lost to a reset caused by unread request bytes.

#[path = "../benches/servers/http_common.rs"]
mod http_common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use evloop::task::net::{TcpListener, TcpStream};
use evloop::task::{sleep, sleep_until, timeout, Sleep};

/// How long a closing connection waits for the client to close too.
const LINGER: Duration = Duration::from_secs(2);

/// Why a [`Watchdog`] ended an operation.
enum Expired {
    /// The head being received is late: `408`.
    Head,
    /// Nothing moved for an idle period.
    Idle,
}

/// A connection's deadlines, on one `Sleep` at a time.
struct Watchdog {
    idle: Duration,
    /// Held in place (a `Sleep` is `Unpin`): no allocation per idle
    /// period.
    sleep: Sleep,
    /// Bytes moved since the sleep began.
    active: bool,
    /// When the head being received must be complete (the deadline starts
    /// with its first byte); `None` between requests and before the first.
    head_due: Option<Instant>,
}

impl Watchdog {
    fn new(idle: Duration) -> Watchdog {
        Watchdog {
            idle,
            sleep: sleep(idle),
            active: false,
            head_due: None,
        }
    }

    /// Sets (or, with `None`, lifts) the head deadline.
    fn head_due(&mut self, due: Option<Instant>) {
        self.head_due = due;
        if let Some(due) = due {
            if self.sleep.deadline().map_or(true, |d| d > due) {
                self.sleep = sleep_until(due);
            }
        }
    }

    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Expired> {
        while Pin::new(&mut self.sleep).poll(cx).is_ready() {
            let next = match self.head_due {
                Some(due) if Instant::now() >= due => return Poll::Ready(Expired::Head),
                Some(due) => sleep_until(due),
                None if std::mem::take(&mut self.active) => sleep(self.idle),
                None => return Poll::Ready(Expired::Idle),
            };
            self.sleep = next;
        }
        Poll::Pending
    }

    /// Runs `op` unless a deadline passes first; a completed `op` counts as
    /// activity. Pass the operation pinned where it is
    /// (`dog.guard(pin!(conn.read_chunk()))`).
    fn guard<F: Future + Unpin>(&mut self, op: F) -> Guarded<'_, F> {
        Guarded { dog: self, op }
    }
}

/// [`Watchdog::guard`]'s future: `op` raced against the deadlines. A
/// plain struct over the pinned operation rather than an `async fn`: each
/// idle connection holds this state, and an `async fn` that pins its
/// argument keeps two places for it.
struct Guarded<'a, F> {
    dog: &'a mut Watchdog,
    op: F,
}

impl<F: Future + Unpin> Future for Guarded<'_, F> {
    type Output = Result<F::Output, Expired>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Poll::Ready(v) = Pin::new(&mut this.op).poll(cx) {
            this.dog.active = true;
            return Poll::Ready(Ok(v));
        }
        this.dog.poll_expired(cx).map(Err)
    }
}

/// How a connection ends.
enum End {
    /// The client closed it, or takes no response: close at once.
    Close,
    /// The server ends it (a request asked to close, an error response, a
    /// deadline): send FIN, then [`linger`].
    Linger,
}

/// Serves one connection until the client closes it, a request asks to
/// close, or a deadline passes.
///
/// It returns how to end rather than lingering itself: the task awaits
/// `serve`, then `linger`, one after the other, so the task's state is the
/// larger of the two futures, not their sum (each idle connection holds
/// that state).
async fn serve(conn: &mut TcpStream) -> std::io::Result<End> {
    let _ = conn.set_nodelay(true);
    let http_common::Timeouts { head, idle } = http_common::Timeouts::get();
    // Bytes of a request head not complete yet, and the responses of one
    // read, reused across reads: no allocation per request. There is no
    // read buffer: `read_chunk` leases one from the loop thread's pool
    // only once data is there, and the chunk gives it back when dropped,
    // so an idle connection holds none.
    let mut pending = Vec::new();
    let mut out = Vec::new();
    let mut framer = http_common::Framer::default();
    let mut dog = Watchdog::new(idle);
    loop {
        let read = dog.guard(pin!(conn.read_chunk())).await;
        let chunk = match read {
            Ok(chunk) => chunk?,
            Err(Expired::Head) => {
                // Best effort: a client that is not reading gets no 408.
                dog.head_due(None);
                let _ = dog.guard(pin!(conn.write_all(http_common::TIMEOUT))).await;
                return Ok(End::Linger);
            }
            Err(Expired::Idle) => return Ok(End::Linger),
        };
        if chunk.is_empty() {
            return Ok(End::Close); // the client closed
        }
        out.clear();
        let parsed = if pending.is_empty() {
            let p = framer.answer(&chunk, &mut out);
            pending.extend_from_slice(&chunk[p.consumed..]);
            p
        } else {
            pending.extend_from_slice(&chunk);
            let p = framer.answer(&pending, &mut out);
            pending.drain(..p.consumed);
            p
        };
        drop(chunk); // parsed: its buffer goes back to the pool
        if !out.is_empty() {
            // A client that takes nothing for an idle period is dropped.
            match dog.guard(pin!(conn.write_all(&out))).await {
                Ok(r) => r?,
                Err(_) => return Ok(End::Close),
            }
        }
        if parsed.close {
            return Ok(End::Linger);
        }
        if pending.is_empty() || framer.in_body() {
            dog.head_due(None);
        } else if parsed.consumed > 0 || dog.head_due.is_none() {
            dog.head_due(Some(Instant::now() + head)); // a new head began
        } // else more of the same head: same deadline
    }
}

/// Sends FIN, then drops what the client still sends until it closes too
/// (or [`LINGER`] passes).
async fn linger(mut conn: TcpStream) -> std::io::Result<()> {
    conn.shutdown().await?;
    let _ = timeout(LINGER, async {
        while !conn.read_chunk().await?.is_empty() {}
        Ok::<_, std::io::Error>(())
    })
    .await;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok().map(|p| format!("127.0.0.1:{p}")))
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let addr: SocketAddr = addr.parse()?;
    evloop::block_on(async move {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => return eprintln!("cannot listen on {addr}: {e}"),
        };
        match listener.local_addr() {
            Ok(a) => println!("http_hello_async on http://{a}/"),
            Err(e) => return eprintln!("cannot listen on {addr}: {e}"),
        }
        loop {
            match listener.accept().await {
                Ok((mut conn, _)) => {
                    evloop::spawn(async move {
                        // A connection's error ends only that connection.
                        if let Ok(End::Linger) = serve(&mut conn).await {
                            let _ = linger(conn).await;
                        }
                    });
                }
                // Out of fds: let connections close, then try again.
                Err(_) => evloop::task::sleep(Duration::from_millis(100)).await,
            }
        }
    })?;
    Ok(())
}
