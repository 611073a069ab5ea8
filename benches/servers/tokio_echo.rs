//! The tokio anchor for the TCP echo benchmark: the same work as
//! `examples/echo_server_async.rs` (one task per connection, 16 KiB `read`
//! then `write_all`) on tokio's current-thread runtime.
//!
//! `cargo run --release --example tokio_echo [ADDR]` (default
//! 127.0.0.1:7004). Driven by `bash benches/servers/echo.sh`.
//!
//! With `SCALE_FAR_TIMER=1` in the environment it also holds one timer an
//! hour away (a sleeping task), as the idle-loop measurement of
//! `benches/servers/scale.sh` asks of every server.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7004".to_string());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("tokio_echo listening on {}", listener.local_addr()?);
    if std::env::var_os("SCALE_FAR_TIMER").is_some_and(|v| v == "1") {
        tokio::spawn(tokio::time::sleep(std::time::Duration::from_secs(3600)));
    }
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(async move {
                    let _ = echo(stream).await;
                });
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

async fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut buf = [0; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}
