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
//! - **Deadlines** (`http_common::Timeouts`, with `task::timeout`): a
//!   request head must be complete within 10 s of its first byte (else
//!   `408`), a connection idle for 5 s is closed, and so is one whose
//!   client takes none of a response for 5 s. The timers go with the
//!   futures that armed them.
//! - **Bad requests**: `400`, `431` or `501`, then close.
//! - **Closing** sends FIN after the last response and reads (and drops)
//!   what the client still sends for up to `LINGER`, so that an error
//!   response is not lost to a reset caused by unread request bytes.

#[path = "../benches/servers/http_common.rs"]
mod http_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use evloop::task::net::{TcpListener, TcpStream};
use evloop::task::timeout;

/// How long a closing connection waits for the client to close too.
const LINGER: Duration = Duration::from_secs(2);

/// Serves one connection until the client closes it, a request asks to
/// close, or a deadline passes.
async fn serve(mut conn: TcpStream) -> std::io::Result<()> {
    let _ = conn.set_nodelay(true);
    let limits = http_common::Timeouts::get();
    // Bytes of a request head not complete yet, and the responses of one
    // read, reused across reads: no allocation per request.
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = Vec::new();
    let mut out = Vec::new();
    let mut framer = http_common::Framer::default();
    // When the head being received must be complete (the deadline starts
    // with its first byte); `None` between requests, and before the first.
    let mut head_due: Option<Instant> = None;
    loop {
        let wait = match head_due {
            Some(due) => due.saturating_duration_since(Instant::now()),
            None => limits.idle,
        };
        let n = match timeout(wait, conn.read(&mut buf)).await {
            Ok(n) => n?,
            Err(_) if head_due.is_some() => {
                // Best effort: a client that is not reading gets no 408.
                let _ = timeout(limits.idle, conn.write_all(http_common::TIMEOUT)).await;
                return linger(conn).await;
            }
            Err(_) => return linger(conn).await,
        };
        if n == 0 {
            return Ok(()); // the client closed
        }
        out.clear();
        let parsed = if pending.is_empty() {
            let p = framer.answer(&buf[..n], &mut out);
            pending.extend_from_slice(&buf[p.consumed..n]);
            p
        } else {
            pending.extend_from_slice(&buf[..n]);
            let p = framer.answer(&pending, &mut out);
            pending.drain(..p.consumed);
            p
        };
        if !out.is_empty() {
            // A client that takes nothing for the idle timeout is dropped.
            timeout(limits.idle, conn.write_all(&out)).await??;
        }
        if parsed.close {
            return linger(conn).await;
        }
        head_due = if pending.is_empty() || framer.in_body() {
            None
        } else if parsed.consumed > 0 || head_due.is_none() {
            Some(Instant::now() + limits.head) // a new head began
        } else {
            head_due // more of the same head: same deadline
        };
    }
}

/// Sends FIN, then drops what the client still sends until it closes too
/// (or [`LINGER`] passes).
async fn linger(mut conn: TcpStream) -> std::io::Result<()> {
    conn.shutdown().await?;
    let _ = timeout(LINGER, async {
        let mut buf = [0u8; 4096];
        while conn.read(&mut buf).await? > 0 {}
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
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => return eprintln!("cannot listen on {addr}: {e}"),
        };
        match listener.local_addr() {
            Ok(a) => println!("http_hello_async on http://{a}/"),
            Err(e) => return eprintln!("cannot listen on {addr}: {e}"),
        }
        loop {
            match listener.accept().await {
                Ok((conn, _)) => {
                    evloop::spawn(async move {
                        // A connection's error ends only that connection.
                        let _ = serve(conn).await;
                    });
                }
                // Out of fds: let connections close, then try again.
                Err(_) => evloop::task::sleep(Duration::from_millis(100)).await,
            }
        }
    })?;
    Ok(())
}
