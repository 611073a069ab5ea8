//! A TCP echo server in async style: the twin of `echo_server.rs`.
//!
//! `cargo run --example echo_server_async [ADDR]` (default 127.0.0.1:7000),
//! then in another terminal: `nc 127.0.0.1 7000` and type; every line comes
//! back. Ctrl-C stops it.

use std::time::Duration;

use evloop::task::net::{TcpListener, TcpStream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::init();
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    evloop::block_on(async move {
        // Any address form: "127.0.0.1:7000", "localhost:7000", "[::1]:7000".
        let server = match TcpListener::bind(addr.as_str()).await {
            Ok(s) => s,
            Err(e) => return eprintln!("cannot listen on {addr}: {e}"),
        };
        if let Ok(local) = server.local_addr() {
            println!(
                "echo server on {local} (try: nc {} {})",
                local.ip(),
                local.port()
            );
        }
        loop {
            let (stream, peer) = match server.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of fds, most likely: the connection waits in the
                    // backlog; pause instead of spinning on the error.
                    eprintln!("accept failed: {e}");
                    evloop::task::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            println!("{peer} connected");
            // One task per connection, as the callback version has one
            // set of callbacks per stream.
            evloop::spawn(async move {
                if let Err(e) = echo(stream).await {
                    eprintln!("connection error: {e}");
                }
                println!("{peer} disconnected");
            });
        }
    })?;
    Ok(())
}

/// Echoes until the peer closes. Backpressure comes for free: the next
/// read waits until `write_all` has handed the whole echo to the kernel, so
/// a peer that reads slower than it sends slows its own sending down.
///
/// `read_chunk` waits for data holding no buffer, then reads into one
/// leased from the loop thread's pool; dropping the chunk gives it back.
/// So an idle connection costs no read buffer (a `[0; 16 * 1024]` here
/// would cost 16 KiB per connection, idle or not).
async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    loop {
        let chunk = stream.read_chunk().await?;
        if chunk.is_empty() {
            return Ok(()); // the peer closed
        }
        stream.write_all(&chunk).await?;
    }
}
