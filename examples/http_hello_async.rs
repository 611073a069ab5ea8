//! HTTP/1.1 "Hello, World!" in async/await style, with keep-alive and
//! pipelining: the twin of `http_hello.rs`, one task per connection on the
//! same single loop thread.
//!
//! `cargo run --release --example http_hello_async [ADDR]` (or `PORT=8080`;
//! default 127.0.0.1:8080), then `curl http://127.0.0.1:8080/` or load it
//! with `wrk -t1 -c100 -d10s http://127.0.0.1:8080/`.
//!
//! The request framing is the benchmark servers' own (`http_common.rs`),
//! so it does exactly the work the callback version does.

#[path = "../benches/servers/http_common.rs"]
mod http_common;

use std::net::SocketAddr;
use std::time::Duration;

use evloop::task::net::{TcpListener, TcpStream};

/// Serves one connection until the client closes it or asks to.
async fn serve(mut conn: TcpStream) -> std::io::Result<()> {
    let _ = conn.set_nodelay(true);
    // Bytes of a request head not complete yet, and the responses of one
    // read, reused across reads: no allocation per request.
    let mut buf = vec![0u8; 16 * 1024];
    let mut pending = Vec::new();
    let mut out = Vec::new();
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(()); // the client closed
        }
        out.clear();
        let parsed = if pending.is_empty() {
            let p = http_common::answer(&buf[..n], &mut out);
            pending.extend_from_slice(&buf[p.consumed..n]);
            p
        } else {
            pending.extend_from_slice(&buf[..n]);
            let p = http_common::answer(&pending, &mut out);
            pending.drain(..p.consumed);
            p
        };
        if !out.is_empty() {
            conn.write_all(&out).await?;
        }
        if parsed.close || pending.len() > http_common::MAX_HEAD {
            return conn.shutdown().await;
        }
    }
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
