//! The tokio anchor for the server benchmark: the same HTTP/1.1 hello-world
//! work as `examples/http_hello.rs` and `mio_http_hello` (see
//! `http_common.rs`), one task per connection on tokio's current-thread
//! runtime, or on its multi-thread runtime with `WORKERS` worker threads
//! when that argument is given. Keep-alive, pipelining, `Connection:
//! close` honoured.
//!
//! `cargo run --release --example tokio_http_hello [ADDR] [WORKERS]`
//! (default 127.0.0.1:8082, current thread). Driven by
//! `bash benches/servers/run.sh`, and with `WORKERS` by `scale.sh`.

mod http_common;

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8082".to_string());
    let runtime = match args.next() {
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Some(w) => {
            let workers = w.parse().map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidInput, format!("WORKERS: {e}"))
            })?;
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()?
        }
    };
    runtime.block_on(accept_loop(addr))
}

async fn accept_loop(addr: String) -> io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    eprintln!(
        "tokio_http_hello listening on http://{}/",
        listener.local_addr()?
    );
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let _ = serve(stream).await;
                });
            }
            // EMFILE, ECONNABORTED...: keep serving.
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

async fn serve(mut stream: TcpStream) -> io::Result<()> {
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut len = 0; // bytes of a partial head kept at the front of rbuf
    let mut wbuf = Vec::with_capacity(4096);
    let mut framer = http_common::Framer::default();
    loop {
        if len == rbuf.len() {
            if len > http_common::MAX_HEAD {
                return Ok(());
            }
            rbuf.resize(len * 2, 0);
        }
        let n = stream.read(&mut rbuf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let parsed = framer.answer(&rbuf[..len], &mut wbuf);
        rbuf.copy_within(parsed.consumed..len, 0);
        len -= parsed.consumed;
        if !wbuf.is_empty() {
            stream.write_all(&wbuf).await?;
            wbuf.clear();
        }
        if parsed.close {
            return Ok(());
        }
    }
}
